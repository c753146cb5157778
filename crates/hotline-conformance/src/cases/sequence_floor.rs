//! The sequence floor after a restore (SPEC.md §10.1): once the runner's Heartbeat says it
//! received more from the target than the target knows it sent, the target numbers its next
//! message above that claim. Seen only in a message the target seals after the claim, which
//! the runner has the target queue with `--target-send CMD`.

use std::time::Duration;

use super::command::{self, hex, message_id_in};
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
    let printed = tri!(command::run(&cmd).await, "--target-send");
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
