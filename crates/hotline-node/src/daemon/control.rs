//! The control socket: how `hotlined` commands tell the running node that its tables changed.
//!
//! A Unix stream socket in the node directory (`control.sock`, mode 0600, like the keys beside
//! it). A client writes one line, `reload`, and reads one line back: `ok: …` once the change is
//! applied ([`Shared::reload`]), or `error: …`. Nothing else is accepted, and nothing secret is
//! ever answered; the socket only lets a local user who can already write the node directory
//! make the node re-read its own database.
//!
//! The client side, which the commands use, is `crate::commands::notify_node`.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::Shared;
use crate::commands::CommandError;

/// The one request.
pub const RELOAD: &str = "reload";

/// Longest request line read (anything longer is refused).
const MAX_LINE: u64 = 64;

/// Binds the socket at `path` and serves it until the task is aborted. Refuses to start if
/// another node answers there; removes a stale socket file left by a node that died.
pub(super) fn serve(
    path: &Path,
    shared: Arc<Shared>,
) -> Result<tokio::task::JoinHandle<()>, CommandError> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(CommandError(format!(
            "another hotlined is running with {} (its control socket answers); stop it first",
            path.display()
        )));
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(CommandError(format!(
                "cannot remove the stale control socket {}: {e}",
                path.display()
            )));
        }
    }
    let listener = UnixListener::bind(path).map_err(|e| {
        CommandError(format!(
            "cannot create the control socket {}: {e} (a Unix socket path is at most 107 bytes; \
             use a shorter node directory path)",
            path.display()
        ))
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
        CommandError(format!(
            "cannot restrict {} to mode 0600: {e}",
            path.display()
        ))
    })?;
    let path = path.to_owned();
    Ok(tokio::spawn(accept(listener, path, shared)))
}

async fn accept(listener: UnixListener, path: PathBuf, shared: Arc<Shared>) {
    let _remove = RemoveOnDrop(path);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            // A client that says nothing is not kept forever.
            let _ = tokio::time::timeout(Duration::from_secs(60), answer(stream, shared)).await;
        });
    }
}

async fn answer(stream: UnixStream, shared: Arc<Shared>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(tokio::io::AsyncReadExt::take(read, MAX_LINE));
    if reader.read_line(&mut line).await.is_err() {
        return;
    }
    let reply = if line.trim() == RELOAD {
        match shared.reload().await {
            Ok(report) => format!("ok: {report}\n"),
            Err(e) => format!("error: {e}\n"),
        }
    } else {
        format!("error: unknown request; the only one is {RELOAD:?}\n")
    };
    let _ = write.write_all(reply.as_bytes()).await;
    let _ = write.shutdown().await;
}

/// Removes the socket file when the serving task ends (node shutdown).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
