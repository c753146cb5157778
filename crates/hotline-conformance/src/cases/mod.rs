//! The cases, by SPEC.md area, and the checks they share.

mod bundle_update;
mod command;
mod control;
mod control_limits;
mod envelope;
mod envelope_content;
mod envelope_replay;
mod hello;
mod key_update;
mod limits;
mod officer_v2;
mod receipts;
mod revocation;
mod sequence_floor;
mod streams;
mod tls;

use std::time::Duration;

use hotline_protocol::codes::{CloseCode, RejectReason};
use hotline_protocol::crypto::sha256;
use hotline_protocol::envelope::MessageId;
use hotline_protocol::receipt::ReceiptKind;

use crate::ctx::{Ctx, Trust};
use crate::fate::{Ending, code, code_name};
use crate::peer::{Answer, Raw};
use crate::suite::{Case, Outcome, kind_text, receipt};

/// Every case, in the order they run, with expectations for the trust mode in use.
pub fn all(trust: Trust) -> Vec<Case> {
    let mut cases = tls::cases(trust);
    cases.extend(hello::cases());
    cases.extend(control::cases());
    cases.extend(control_limits::cases());
    cases.extend(streams::cases());
    cases.extend(envelope::cases());
    cases.extend(envelope_content::cases());
    cases.extend(envelope_replay::cases());
    cases.extend(receipts::cases());
    cases.extend(limits::cases());
    cases.extend(sequence_floor::cases());
    cases.extend(key_update::cases());
    cases.extend(officer_v2::cases());
    cases.extend(revocation::cases());
    cases.extend(bundle_update::cases());
    cases
}

/// Unwraps a `Result<T, String>` inside a case, failing the case with the error.
macro_rules! tri {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return $crate::suite::Outcome::fail(e),
        }
    };
    ($e:expr, $what:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return $crate::suite::Outcome::fail(format!("{}: {}", $what, e)),
        }
    };
}
pub(crate) use tri;

/// How long the target gets to close a connection after a fault it must close on.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// The connection must end with an application close carrying `expected`.
pub async fn expect_close(raw: &Raw, expected: CloseCode) -> Outcome {
    match raw.ended(CLOSE_WAIT).await {
        Some(Ending::App(c)) if c == code(expected) => {
            Outcome::pass(format!("connection closed with {}", code_name(c)))
        }
        Some(other) => Outcome::fail(other.describe()),
        None => Outcome::fail(format!("the connection stayed open for {CLOSE_WAIT:?}")),
    }
}

/// A timeout case: the connection must end with an application close carrying `expected`,
/// no earlier than `at_least` and within `limit`; `silence` says what the runner withheld.
pub async fn expect_close_after(
    raw: &Raw,
    expected: CloseCode,
    at_least: Duration,
    limit: Duration,
    silence: &str,
) -> Outcome {
    let t0 = std::time::Instant::now();
    let ended = raw.ended(limit).await;
    let after = t0.elapsed();
    raw.close();
    match ended {
        Some(Ending::App(c)) if c == code(expected) => Outcome::check(
            after >= at_least,
            format!(
                "connection closed with {} after {:.1} s",
                code_name(c),
                after.as_secs_f64()
            ),
        ),
        Some(other) => Outcome::fail(format!(
            "{} after {:.1} s",
            other.describe(),
            after.as_secs_f64()
        )),
        None => Outcome::fail(format!(
            "the connection stayed open for {} s {silence}",
            limit.as_secs()
        )),
    }
}

/// The answer must be a reset of the stream with `expected`.
pub fn expect_reset(answer: &Answer, expected: CloseCode) -> Outcome {
    match answer {
        Answer::Reset(c) if *c == code(expected) => {
            Outcome::pass(format!("stream reset with {}", code_name(*c)))
        }
        other => Outcome::fail(other.describe()),
    }
}

/// What an envelope that must be rejected looked like on the wire.
pub struct Sent<'a> {
    /// The envelope bytes.
    pub bytes: &'a [u8],
    /// Its message id.
    pub id: &'a MessageId,
    /// The header's sequence.
    pub sequence: u64,
}

/// The answer must be a REJECTED receipt by the target with `reason` that names exactly the
/// envelope sent (SPEC.md §8.1: message id, digest of the bytes received, sequence), with
/// `sender` the runner's own node id: the peer the envelope came from, authenticated by the
/// connection, never the header's unauthenticated `sender` bytes.
pub fn expect_rejected(
    cx: &Ctx,
    answer: &Answer,
    reason: RejectReason,
    sent: &Sent<'_>,
) -> Outcome {
    let r = match receipt(cx, answer) {
        Ok(r) => r,
        Err(e) => return Outcome::fail(e),
    };
    let got = kind_text(r.kind());
    if !matches!(r.kind(), ReceiptKind::Rejected { reason: got, .. } if *got == reason) {
        return Outcome::fail(got);
    }
    let mut wrong = Vec::new();
    if r.message_id() != sent.id {
        wrong.push("message_id");
    }
    if r.envelope_sha256() != &sha256(sent.bytes) {
        wrong.push("envelope_sha256");
    }
    if r.sequence() != sent.sequence {
        wrong.push("sequence");
    }
    if r.sender().as_ref() != cx.me.identity.id().as_bytes() {
        wrong.push("sender");
    }
    if wrong.is_empty() {
        Outcome::pass(got)
    } else {
        Outcome::fail(format!(
            "{got}, but its {} do not match the envelope sent (SPEC.md §8.1)",
            wrong.join(", ")
        ))
    }
}
