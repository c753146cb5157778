//! Envelopes whose message id was seen before: replay and conflict (SPEC.md §10.4, §10.5),
//! including the id of a message the target itself sent; and an envelope of the maximal size
//! (§5.2).

use std::time::{Duration, Instant};

use hotline_protocol::codes::RejectReason;
use hotline_transport::now_ms;

use super::envelope::{Draft, Rejection, flip_first, rejections};
use super::{Sent, expect_rejected, tri};
use crate::ctx::Ctx;
use crate::peer;
use crate::suite::{Case, Outcome, delivered};

pub fn cases() -> Vec<Case> {
    let table: &[Rejection] = &[(
        "envelope-same-id-different-bytes",
        "§10.5",
        RejectReason::Conflict,
        |cx| Box::pin(conflict(cx)),
    )];
    let mut v = rejections(table);
    v.push(Case::new(
        "envelope-rejected-id-not-recorded",
        "§10.4",
        "REJECTED BAD_SIGNATURE; then the same message id, validly signed: DELIVERED \
         (REJECTED envelopes are not recorded for duplicate detection)",
        |cx| Box::pin(rejected_not_recorded(cx)),
    ));
    v.push(Case::new(
        "envelope-maximal-size",
        "§5.2",
        "an envelope of exactly 1048576 bytes is no frame error: DELIVERED (or REJECTED \
         TOO_LARGE by local policy, §7.6 step 14)",
        |cx| Box::pin(maximal_size(cx)),
    ));
    v.push(Case::new(
        "envelope-id-of-target-message",
        "§10.5 §7.6 step 13",
        "REJECTED CONFLICT receipt naming the envelope sent (one id space per node); the \
         target's own message unchanged: sent again byte for byte on the next link (§9.7). \
         Skipped unless the target sends the runner a message",
        |cx| Box::pin(id_of_target_message(cx)),
    ));
    v.push(Case::new(
        "envelope-replay-same-bytes",
        "§10.5",
        "the original DELIVERED receipt, byte for byte, on the same and on a new connection",
        |cx| Box::pin(replay(cx)),
    ));
    v
}

async fn conflict(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let (id, seq) = cx.alloc();
    let first = tri!(cx.seal(id, seq, "hotline-conformance: the original"));
    let answer = link.send_envelope(cx, first.bytes()).await;
    let original = tri!(delivered(cx, &answer, &first), "the original");
    // Same id and sequence, sealed again: a fresh HPKE encapsulation, so other bytes.
    let other = tri!(cx.seal(id, seq, "hotline-conformance: other bytes, same id"));
    let answer = link.send_envelope(cx, other.bytes()).await;
    let outcome = expect_rejected(
        cx,
        &answer,
        RejectReason::Conflict,
        &Sent {
            bytes: other.bytes(),
            id: &id,
            sequence: seq,
        },
    );
    // The first envelope stays as it was: a replay of it still gets its original receipt.
    let again = link.send_envelope(cx, first.bytes()).await;
    link.raw.close();
    if !outcome.passed() {
        return outcome;
    }
    match crate::suite::receipt(cx, &again) {
        Ok(r) if r.bytes() == original.bytes() => Outcome::pass(format!(
            "{}; the original still answered with its receipt",
            outcome.observed
        )),
        Ok(_) => Outcome::fail(format!(
            "{}, but the original envelope now gets another receipt than its first",
            outcome.observed
        )),
        Err(e) => Outcome::fail(format!("{}; the original again: {e}", outcome.observed)),
    }
}

/// How long the id-space case waits, on an UP link, for the target to send the runner a
/// message (when none arrived earlier in the run). A node sends what it has queued as soon as
/// a link comes UP (SPEC.md §9.7, reconnect), so a few seconds are plenty.
const TARGET_SEND_WAIT: Duration = Duration::from_secs(5);

async fn id_of_target_message(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let Some(theirs) = cx.from_target.wait(TARGET_SEND_WAIT, |_| true).await else {
        link.raw.close();
        return Outcome::skip(format!(
            "the target sent the runner no message (none in this run, none within {} s of a \
             link coming UP): queue a message from the target to the runner's identity first \
             (for hotlined: `hotline send --to <the runner's peer alias>` with an officer \
             credential of the target); .ci/conformance does this",
            TARGET_SEND_WAIT.as_secs()
        ));
    };
    // The runner's own next sequence number (the rejection at step 13 counts it, §10.2), and
    // a valid envelope in every respect but its id.
    let (_, seq) = cx.alloc();
    let env = tri!(cx.seal(
        theirs.id,
        seq,
        "hotline-conformance: the id of the target's own message"
    ));
    let answer = link.send_envelope(cx, env.bytes()).await;
    let outcome = expect_rejected(
        cx,
        &answer,
        RejectReason::Conflict,
        &Sent {
            bytes: env.bytes(),
            id: &theirs.id,
            sequence: seq,
        },
    );
    link.raw.close();
    drop(link);
    if !outcome.passed() {
        return outcome;
    }
    // The target's message is unchanged: it still holds it as unsent and, on the next link,
    // sends it again with the same bytes (§9.7), not the runner's envelope nor anything else.
    let after = Instant::now();
    let link = tri!(peer::link(cx).await, "no second link");
    let again = cx
        .from_target
        .wait(cx.step, |s| s.id == theirs.id && s.last > after)
        .await;
    link.raw.close();
    match again {
        Some(s) if s.sha256 == theirs.sha256 => Outcome::pass(format!(
            "{}; the target's own message (sequence {}) sent again byte for byte on a new link",
            outcome.observed, theirs.sequence
        )),
        Some(_) => Outcome::fail(format!(
            "{}, but the target now sends other bytes under the id of its message",
            outcome.observed
        )),
        None => Outcome::fail(format!(
            "{}, but the target did not send its own message again within {} s of a new link \
             coming UP (§9.7: an item not completed is sent again on the next connection)",
            outcome.observed,
            cx.step.as_secs()
        )),
    }
}

async fn replay(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let (id, seq) = cx.alloc();
    let env = tri!(cx.seal(id, seq, "hotline-conformance: replayed"));
    let answer = link.send_envelope(cx, env.bytes()).await;
    let first = tri!(delivered(cx, &answer, &env), "first send");
    // Later, so that a receipt made afresh would carry another time.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let same_conn = link.send_envelope(cx, env.bytes()).await;
    link.raw.close();
    drop(link);
    let link = tri!(peer::link(cx).await, "no second link");
    let new_conn = link.send_envelope(cx, env.bytes()).await;
    link.raw.close();
    let mut problems = Vec::new();
    for (when, answer) in [
        ("same connection", &same_conn),
        ("new connection", &new_conn),
    ] {
        match crate::suite::receipt(cx, answer) {
            Ok(r) if r.bytes() == first.bytes() => {}
            Ok(r) => problems.push(format!(
                "{when}: a different receipt ({}, time {} instead of {})",
                crate::suite::kind_text(r.kind()),
                r.time(),
                first.time()
            )),
            Err(e) => problems.push(format!("{when}: {e}")),
        }
    }
    if problems.is_empty() {
        Outcome::pass("the original receipt, byte for byte, on the same and on a new connection")
    } else {
        Outcome::fail(problems.join("; "))
    }
}

async fn rejected_not_recorded(cx: &Ctx) -> Outcome {
    let d = tri!(Draft::counting(cx));
    let mut parts = tri!(d.seal(cx));
    flip_first(&mut parts.signature);
    let bad = parts.encode();
    let link = tri!(peer::link(cx).await, "no link");
    let answer = link.send_envelope(cx, &bad).await;
    let first = expect_rejected(
        cx,
        &answer,
        RejectReason::BadSignature,
        &Sent {
            bytes: &bad,
            id: &d.id,
            sequence: d.seq,
        },
    );
    let env = tri!(cx.seal(
        d.id,
        d.seq,
        "hotline-conformance: an id first seen rejected"
    ));
    let answer = link.send_envelope(cx, env.bytes()).await;
    let second = delivered(cx, &answer, &env);
    link.raw.close();
    if !first.passed() {
        return first;
    }
    match second {
        Ok(_) => Outcome::pass(format!(
            "{}; the same id validly signed: DELIVERED",
            first.observed
        )),
        Err(e) => Outcome::fail(format!(
            "{}; the same id validly signed: {e}",
            first.observed
        )),
    }
}

async fn maximal_size(cx: &Ctx) -> Outcome {
    use hotline_protocol::envelope::MAX_ENVELOPE_LEN;
    let (id, seq) = cx.alloc();
    // Grow the text until the envelope is exactly the limit (varint lengths shift it a little).
    let mut len = MAX_ENVELOPE_LEN - 4096;
    let mut env = None;
    for _ in 0..8 {
        let draft = hotline_protocol::content::Draft {
            subject: "hotline-conformance: an envelope of exactly 1 MiB".into(),
            text: "x".repeat(len),
            ..Default::default()
        };
        let e = tri!(cx.seal_draft(id, seq, &draft, now_ms()));
        let size = e.bytes().len();
        if size == MAX_ENVELOPE_LEN {
            env = Some(e);
            break;
        }
        len = (len + MAX_ENVELOPE_LEN).saturating_sub(size);
    }
    let Some(env) = env else {
        return Outcome::fail("could not build an envelope of exactly 1048576 bytes");
    };
    let link = tri!(peer::link(cx).await, "no link");
    let answer = link.send_envelope(cx, env.bytes()).await;
    link.raw.close();
    match crate::suite::receipt(cx, &answer) {
        Ok(r) if r.answers(&env) => match r.kind() {
            hotline_protocol::receipt::ReceiptKind::Delivered => {
                Outcome::pass("DELIVERED (1048576-byte envelope)")
            }
            hotline_protocol::receipt::ReceiptKind::Rejected {
                reason: RejectReason::TooLarge,
                ..
            } => Outcome::pass("REJECTED TOO_LARGE by local policy"),
            other => Outcome::fail(crate::suite::kind_text(other)),
        },
        Ok(r) => Outcome::fail(format!(
            "a receipt that does not answer the envelope: {r:?}"
        )),
        Err(e) => Outcome::fail(e),
    }
}
