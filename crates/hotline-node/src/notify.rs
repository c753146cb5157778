//! Telling the running node that its tables changed: the client side of the control socket
//! (`daemon::control`). Every command that changes peers or operators ends with
//! [`apply_to_running_node`], so the administrator learns whether the change is in effect.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::config;
use crate::say;

/// How long to wait for the node to apply a change.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What the running node said.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied {
    /// The node applied the change; its summary.
    Yes(String),
    /// No node runs in the directory (nobody answers its control socket).
    NotRunning,
    /// A node answered but could not apply the change, or did not answer in time.
    Failed(String),
}

/// Asks the node running in `dir` (if any) to re-read its peers and operators.
pub fn reload(dir: &Path) -> Applied {
    let path = dir.join(config::CONTROL_SOCKET);
    let Ok(mut stream) = UnixStream::connect(&path) else {
        return Applied::NotRunning;
    };
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.set_write_timeout(Some(TIMEOUT));
    if let Err(e) = stream.write_all(b"reload\n") {
        return Applied::Failed(format!("cannot talk to the node: {e}"));
    }
    let mut line = String::new();
    if let Err(e) = BufReader::new(stream).read_line(&mut line) {
        return Applied::Failed(format!("the node did not answer: {e}"));
    }
    let line = line.trim();
    match line.strip_prefix("ok: ") {
        Some(summary) => Applied::Yes(summary.to_owned()),
        None => Applied::Failed(line.strip_prefix("error: ").unwrap_or(line).to_owned()),
    }
}

/// Asks the running node to apply a change, and says plainly whether it is in effect.
pub fn apply_to_running_node(dir: &Path) {
    match reload(dir) {
        Applied::Yes(summary) => say!("The running node applied the change at once ({summary})."),
        Applied::NotRunning => say!(
            "No node answered on {}: the change takes effect when `hotlined run` starts (if a \
             node does run there without its control socket, send it SIGHUP: kill -HUP PID).",
            dir.join(config::CONTROL_SOCKET).display()
        ),
        Applied::Failed(why) => say!(
            "The running node did not apply the change: {why}. It is stored, and takes effect \
             at the next `kill -HUP` of hotlined or restart."
        ),
    }
}
