//! The sequence floor after a restore (SPEC.md §10.1): once the runner's Heartbeat says it
//! received more from the target than the target knows it sent, the target numbers its next
//! message above that claim. Seen only in a message the target seals after the claim, which
//! the runner has the target queue with `--target-send CMD`.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hotline_protocol::envelope::MessageId;

use super::tri;
use crate::ctx::Ctx;
use crate::fate::Ending;
use crate::peer;
use crate::suite::{Case, Outcome};

pub fn cases() -> Vec<Case> {
    vec![Case::new(
        "sequence-floor-from-received-through",
        "§10.1 after a restore",
        format!(
            "a Heartbeat claims received_through {CLAIM_MARGIN} beyond the highest sequence \
             the target sent; the message --target-send then queues is sealed with a sequence \
             above the claim. Skipped without --target-send"
        ),
        |cx| Box::pin(floor_from_received_through(cx)),
    )]
}

/// How far beyond what the target sent the runner claims to have received: far more than a
/// target queues unsent, far below any cap for implausible claims (`hotlined` ignores claims
/// above 2^48).
const CLAIM_MARGIN: u64 = 1000;

/// After the target echoed the claiming Heartbeat (so it read it), how long the runner waits
/// before having the target queue its message: §10.1 asks for the floor before the next
/// sequence is assigned, and a node may record it off its message path.
const SETTLE: Duration = Duration::from_secs(1);

/// How long `--target-send CMD` may run.
const COMMAND_LIMIT: Duration = Duration::from_secs(30);

/// Most bytes kept of the command's stdout and of its stderr.
const COMMAND_OUTPUT: u64 = 64 * 1024;

async fn floor_from_received_through(cx: &Ctx) -> Outcome {
    let Some(cmd) = cx.target_send.clone() else {
        return Outcome::skip(
            "needs --target-send CMD: a shell command that makes the target queue one message \
             to the runner's identity (for hotlined: `hotline send --credential FILE --node \
             ADDR --to <the runner's peer alias> ...`); only a message the target seals after \
             the runner's claim shows the floor. .ci/conformance passes one",
        );
    };
    let link = tri!(peer::link(cx).await, "no link");
    let hb = tri!(link.ping(cx).await);
    let before = cx.from_target.seen();
    let sent = before
        .iter()
        .map(|s| s.sequence)
        .fold(hb.last_sequence_sent, u64::max);
    let claim = sent + CLAIM_MARGIN;
    tri!(
        link.claim_received_through(cx, claim).await,
        format!("the Heartbeat claiming received_through {claim}")
    );
    tokio::time::sleep(SETTLE).await;
    if let Some(e) = link.raw.conn.close_reason() {
        return Outcome::fail(format!(
            "the target ended the connection after the claim: {}",
            Ending::from_error(&e).describe()
        ));
    }
    let printed = tri!(
        tokio::task::spawn_blocking(move || run_command(&cmd, COMMAND_LIMIT))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r),
        "--target-send"
    );
    let id = message_id_in(&printed);
    // The message CMD queued: by the id it printed, or else the first new one numbered above
    // the claim (the target keeps sending its older messages too: the runner refuses them all).
    let new = |s: &crate::inbound::Seen| !before.iter().any(|b| b.id == s.id);
    let found = match id {
        Some(id) => cx.from_target.wait(cx.step, |s| s.id == id).await,
        None => {
            cx.from_target
                .wait(cx.step, |s| new(s) && s.sequence > claim)
                .await
        }
    };
    let after = link.ping(cx).await;
    link.raw.close();
    let which = match id {
        Some(id) => format!("message {}", hex(&id)),
        None => "the message (CMD printed no id)".to_owned(),
    };
    let Some(s) = found else {
        let others: Vec<String> = cx
            .from_target
            .seen()
            .iter()
            .filter(|s| new(s))
            .map(|s| format!("{} at sequence {}", hex(&s.id), s.sequence))
            .collect();
        return Outcome::fail(format!(
            "claimed received_through {claim} (target's last_sequence_sent {}); the target did \
             not send {which} within {} s of --target-send{}",
            hb.last_sequence_sent,
            cx.step.as_secs(),
            if others.is_empty() {
                String::new()
            } else {
                format!("; new envelopes instead: {}", others.join(", "))
            }
        ));
    };
    let observed = format!(
        "claimed received_through {claim} (target's last_sequence_sent {}); {which} sealed \
         with sequence {}{}",
        hb.last_sequence_sent,
        s.sequence,
        match after {
            Ok(hb) => format!(", last_sequence_sent {} after", hb.last_sequence_sent),
            Err(e) => format!("; then the link failed: {e}"),
        }
    );
    Outcome::check(s.sequence > claim, observed)
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
fn message_id_in(text: &str) -> Option<MessageId> {
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

fn hex(id: &MessageId) -> String {
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
