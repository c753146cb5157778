//! Shell commands the operator gives the runner (`--target-send CMD`, `--target-rotate CMD`):
//! how they run, and what the runner reads from their output.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hotline_protocol::envelope::MessageId;

/// How long a command may run.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);

/// Most bytes kept of the command's stdout and of its stderr.
const COMMAND_OUTPUT: u64 = 64 * 1024;

/// [`run_command`] off the runtime (whose tasks keep the case's link alive meanwhile), with
/// [`COMMAND_LIMIT`]; its stdout.
pub async fn run(cmd: &str) -> Result<String, String> {
    let cmd = cmd.to_owned();
    tokio::task::spawn_blocking(move || run_command(&cmd, COMMAND_LIMIT))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r)
}

/// Runs `cmd` with `sh -c`, stdin empty, and returns its stdout; fails on a non-zero exit
/// (with the end of its stderr) or after `limit` (the shell is killed). Blocking: run it off
/// the runtime, whose tasks keep the link alive meanwhile.
fn run_command(cmd: &str, limit: Duration) -> Result<String, String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `sh -c`: {e}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let t0 = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if t0.elapsed() < limit => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("did not finish within {} s", limit.as_secs()));
            }
            Err(e) => return Err(format!("waiting for it: {e}")),
        }
    };
    // A command that leaves a process behind holding the pipes open is not waited for.
    let collect = |rx: mpsc::Receiver<Vec<u8>>| {
        let bytes = rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    let (out, err) = (collect(stdout), collect(stderr));
    if status.success() {
        Ok(out)
    } else {
        let tail: Vec<&str> = err.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        Err(format!("exited with {status}: {}", tail.join(" / ")))
    }
}

/// Reads a pipe to its end on a thread of its own (keeping the first [`COMMAND_OUTPUT`]
/// bytes), so that the child never blocks on a full pipe.
fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.by_ref().take(COMMAND_OUTPUT).read_to_end(&mut kept);
            let _ = std::io::copy(&mut p, &mut std::io::sink());
        }
        let _ = tx.send(kept);
    });
    rx
}

/// The first word of `text` that is a message id in hex (32 hex digits), as `hotline send`
/// prints it.
pub fn message_id_in(text: &str) -> Option<MessageId> {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .filter(|w| w.len() == 32)
        .find_map(|w| {
            let mut id = [0u8; 16];
            for (i, b) in id.iter_mut().enumerate() {
                *b = u8::from_str_radix(w.get(2 * i..2 * i + 2)?, 16).ok()?;
            }
            Some(id)
        })
}

pub fn hex(id: &MessageId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_message_id_hotline_send_prints() {
        let id = message_id_in("0123456789abcdef0123456789ABCDEF\n");
        let mut want = [0u8; 16];
        for (i, b) in want.iter_mut().enumerate() {
            *b = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef][i % 8];
        }
        assert_eq!(id, Some(want));
        assert_eq!(
            message_id_in("queued: id=00112233445566778899aabbccddeeff."),
            Some([
                0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                0xee, 0xff
            ])
        );
        assert_eq!(message_id_in("sent"), None);
        assert_eq!(
            message_id_in("00112233445566778899aabbccddeeff00"),
            None,
            "34 digits are no id"
        );
    }

    #[test]
    fn runs_the_command_and_reports_its_failure() {
        let limit = Duration::from_secs(10);
        assert_eq!(
            run_command("echo one; echo two", limit).as_deref(),
            Ok("one\ntwo\n")
        );
        let e = run_command("echo no >&2; exit 3", limit).expect_err("fails");
        assert!(e.contains("3") && e.contains("no"), "{e}");
        let e = run_command("sleep 5", Duration::from_millis(200)).expect_err("too slow");
        assert!(e.contains("did not finish"), "{e}");
    }
}
