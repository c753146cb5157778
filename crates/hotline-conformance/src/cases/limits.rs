//! Sequencing and gaps, and the rate limit (SPEC.md §10.1–§10.3, §13.2).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotline_protocol::codes::{CloseCode, RejectReason};
use hotline_protocol::envelope::MessageId;
use hotline_protocol::frame::{self, FrameType};
use hotline_protocol::identity::IdentityKey;
use hotline_protocol::receipt::{Receipt, ReceiptBuild, ReceiptKind, Subject};
use hotline_protocol::wire;
use hotline_transport::now_ms;
use prost::Message;

use super::tri;
use crate::ctx::{Ctx, random_id, rng};
use crate::fate::{Ending, code, code_name};
use crate::peer::{self, Answer, Link, read_answer};
use crate::suite::{Case, Outcome, delivered, receipt};

pub fn cases() -> Vec<Case> {
    vec![
        Case::new(
            "sequence-gap",
            "§10.3",
            "both envelopes DELIVERED (a sequence number is never a reason to refuse, §10.1); \
             the link stays UP past the 10 s gap report; received_through stays below the \
             gap, then passes it",
            |cx| Box::pin(gap(cx)),
        ),
        Case::new(
            "sequence-received-through",
            "§10.2",
            "received_through covers every sequence number of this run (DELIVERED and \
             REJECTED for steps 7–14 count)",
            |cx| Box::pin(received_through(cx)),
        ),
        Case::new(
            "rate-limit-flood-distinct-envelopes",
            "§13.2",
            "beyond the burst (default 1000, refilled at 200/s): streams reset with \
             RATE_LIMITED (0x0A), no receipt; every other one REJECTED WRONG_RECIPIENT; the \
             link stays UP",
            |cx| Box::pin(flood_distinct(cx)),
        ),
        Case::new(
            "rate-limit-flood-replays",
            "§13.2",
            "replays take tokens too: beyond the burst, streams reset with RATE_LIMITED \
             (0x0A); every other answer the original receipt; the link stays UP",
            |cx| Box::pin(flood_replays(cx)),
        ),
        Case::new(
            "rate-limit-flood-receipts",
            "§13.2",
            format!(
                "ACKNOWLEDGED receipts for messages the target never sent take tokens too \
                 (hotlined: from the envelope streams' bucket): beyond the burst, streams reset \
                 with RATE_LIMITED (0x0A), no ReceiptStored; every other one reset with {}, \
                 §8.4 step 6; the link stays UP",
                code_name(code(CloseCode::UnknownMessage))
            ),
            |cx| Box::pin(flood_receipts(cx)),
        ),
    ]
}

/// The gap report delay (SPEC.md §10.3), plus a margin.
const GAP_REPORT: Duration = Duration::from_secs(11);

async fn gap(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let start = tri!(link.ping(cx).await).received_through;
    let ((id_a, a), (id_b, b)) = match cx.seq.lock() {
        Ok(mut s) => s.alloc_pair(),
        Err(_) => return Outcome::fail("sequence state poisoned"),
    };
    let env_b = tri!(cx.seal(id_b, b, "hotline-conformance: after a gap"));
    let answer = link.send_envelope(cx, env_b.bytes()).await;
    tri!(
        delivered(cx, &answer, &env_b),
        format!("sequence {b} before {a}")
    );
    // The runner's heartbeats now carry last_sequence_sent = b: a is implied and missing.
    let during = tri!(link.ping(cx).await);
    tokio::time::sleep(GAP_REPORT).await;
    if let Some(e) = link.raw.conn.close_reason() {
        return Outcome::fail(format!(
            "the target ended the connection during the gap: {}",
            Ending::from_error(&e).describe()
        ));
    }
    let reported = tri!(link.ping(cx).await, "after the gap report delay");
    let env_a = tri!(cx.seal(id_a, a, "hotline-conformance: the gap filled"));
    let answer = link.send_envelope(cx, env_a.bytes()).await;
    tri!(
        delivered(cx, &answer, &env_a),
        format!("sequence {a} after {b}")
    );
    let after = tri!(link.ping(cx).await);
    link.raw.close();
    let mut problems = Vec::new();
    for (when, rt) in [
        ("with the gap", during.received_through),
        ("11 s later", reported.received_through),
    ] {
        if rt >= a {
            problems.push(format!(
                "received_through {rt} {when}, though sequence {a} was not sent"
            ));
        }
    }
    // Without an older gap (start = a - 1), filling this one must carry received_through
    // past b.
    if start + 1 == a && after.received_through < b {
        problems.push(format!(
            "received_through {} after the gap was filled, not ≥ {b}",
            after.received_through
        ));
    }
    if problems.is_empty() {
        Outcome::pass(format!(
            "{b} then {a} DELIVERED; link UP through the gap report; received_through {} \
             with the gap, {} after",
            reported.received_through, after.received_through
        ))
    } else {
        Outcome::fail(problems.join("; "))
    }
}

async fn received_through(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let hb = link.ping(cx).await;
    link.raw.close();
    let hb = tri!(hb);
    let sent = cx.sent_max();
    Outcome::check(
        hb.received_through >= sent,
        format!(
            "received_through {} for sequence numbers up to {sent}",
            hb.received_through
        ),
    )
}

/// What one flood stream should be answered with, if the rate limit lets it through.
#[derive(Clone)]
enum Expect {
    /// This exact receipt (a replay, SPEC.md §10.5).
    Receipt(Bytes),
    /// A REJECTED WRONG_RECIPIENT receipt for this message id.
    WrongRecipient(MessageId),
    /// The stream reset with this code.
    Reset(CloseCode),
}

/// What the flood's answers were.
#[derive(Default)]
struct Tally {
    answered: usize,
    refused: usize,
    first_refused: Option<usize>,
    other: Vec<String>,
}

impl Tally {
    fn add(&mut self, cx: &Ctx, a: Answer, expect: &Expect, sent: usize) {
        let ok = match (&a, expect) {
            (Answer::Reset(c), _) if *c == code(CloseCode::RateLimited) => {
                self.refused += 1;
                self.first_refused.get_or_insert(sent);
                return;
            }
            (Answer::Reset(c), Expect::Reset(want)) => *c == code(*want),
            (Answer::Frame(f), Expect::Receipt(r)) => f.ty == FrameType::Receipt && f.payload == r,
            (Answer::Frame(_), Expect::WrongRecipient(id)) => receipt(cx, &a).is_ok_and(|r| {
                r.message_id() == id
                    && matches!(
                        r.kind(),
                        ReceiptKind::Rejected {
                            reason: RejectReason::WrongRecipient,
                            ..
                        }
                    )
            }),
            _ => false,
        };
        if ok {
            self.answered += 1;
        } else if self.other.len() < 3 {
            self.other.push(a.describe());
        }
    }
}

/// Most envelope streams a flood opens before giving up on seeing the limit.
const FLOOD_MAX: usize = 20_000;
/// How long a flood may last.
const FLOOD_TIME: Duration = Duration::from_secs(40);
/// Streams opened after the first RATE_LIMITED, to see the limit hold.
const AFTER_LIMIT: usize = 100;

/// Opens message streams as fast as `max_inflight` allows, each with the frame `next` makes,
/// until the target answers RATE_LIMITED (and a little beyond), or the caps.
async fn flood(
    cx: &Ctx,
    link: &Link,
    mut next: impl FnMut() -> (Bytes, Expect),
) -> (Tally, usize, Duration) {
    let inflight = usize::try_from(link.hello.offer.max_inflight.clamp(1, 1024)).unwrap_or(256);
    let permits = Arc::new(tokio::sync::Semaphore::new(inflight));
    let mut set = tokio::task::JoinSet::new();
    let mut tally = Tally::default();
    let mut sent = 0usize;
    let t0 = Instant::now();
    while sent < FLOOD_MAX && t0.elapsed() < FLOOD_TIME {
        if tally
            .first_refused
            .is_some_and(|at| sent >= at + AFTER_LIMIT)
            || link.raw.conn.close_reason().is_some()
        {
            break;
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            break;
        };
        let (bytes, expect) = next();
        let conn = link.raw.conn.clone();
        let step = cx.step;
        sent += 1;
        set.spawn(async move {
            let _permit = permit;
            let answer = match conn.open_bi().await {
                Ok((mut send, mut recv)) => match send.write_all(&bytes).await {
                    Ok(()) => {
                        let _ = send.finish();
                        read_answer(&mut recv, step).await
                    }
                    Err(quinn::WriteError::Stopped(c)) => Answer::Stopped(c.into_inner()),
                    Err(e) => Answer::Failed(format!("write: {e}")),
                },
                Err(e) => Answer::Failed(format!("open: {e}")),
            };
            (answer, expect)
        });
        while let Some(done) = set.try_join_next() {
            if let Ok((a, e)) = done {
                tally.add(cx, a, &e, sent);
            }
        }
    }
    while let Some(done) = set.join_next().await {
        if let Ok((a, e)) = done {
            tally.add(cx, a, &e, sent);
        }
    }
    (tally, sent, t0.elapsed())
}

/// The verdict on a flood of `streams` (envelope, receipt) streams: some RATE_LIMITED, every
/// other answer `what`, link UP.
async fn verdict(
    cx: &Ctx,
    link: Link,
    (streams, what): (&str, &str),
    (tally, sent, elapsed): (Tally, usize, Duration),
) -> Outcome {
    let alive = link.ping(cx).await;
    link.raw.close();
    let summary = format!(
        "{sent} {streams} streams in {:.1} s: {} answered with {what}, {} reset RATE_LIMITED{}",
        elapsed.as_secs_f64(),
        tally.answered,
        tally.refused,
        match tally.first_refused {
            Some(at) => format!(" (the first around stream {at})"),
            None => String::new(),
        }
    );
    if !tally.other.is_empty() {
        return Outcome::fail(format!(
            "{summary}; other answers: {}",
            tally.other.join("; ")
        ));
    }
    if let Err(e) = alive {
        return Outcome::fail(format!("{summary}; then the link failed: {e}"));
    }
    Outcome::check(tally.refused > 0, summary)
}

async fn flood_distinct(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    // Envelopes refused at step 5 (WRONG_RECIPIENT): cheap for both sides, nothing stored,
    // no sequence counted (§10.2), each a new message id.
    let key = tri!(
        cx.recipient_key(now_ms())
            .ok_or("the target has no encryption key valid now")
    );
    let elsewhere = IdentityKey::generate(&mut rng()).id();
    let (_, seq) = cx.reserve();
    let me = cx.me.identity.id();
    let r = flood(cx, &link, || {
        let id = random_id();
        let header = wire::EnvelopeHeader {
            version: hotline_protocol::PROTOCOL_VERSION,
            message_id: Bytes::copy_from_slice(&id),
            sender: Bytes::copy_from_slice(me.as_bytes()),
            recipient: Bytes::copy_from_slice(elsewhere.as_bytes()),
            sequence: seq,
            created_ms: now_ms(),
            precedence: wire::Precedence::Routine as i32,
            tlp: wire::Tlp::Green as i32,
            content_type: hotline_protocol::CONTENT_TYPE_V1,
            suite: hotline_protocol::SUITE_V1_BASE,
            recipient_key_id: Bytes::copy_from_slice(&key.id()),
            enc: Bytes::from_static(&[0x42; 32]),
        };
        let env = wire::Envelope {
            header: header.encode_to_vec().into(),
            ciphertext: Bytes::from_static(&[0x11; 64]),
            signature: Bytes::from_static(&[0x22; 64]),
        }
        .encode_to_vec();
        (
            frame::encode(FrameType::Envelope, &env),
            Expect::WrongRecipient(id),
        )
    })
    .await;
    verdict(cx, link, ("envelope", "REJECTED WRONG_RECIPIENT"), r).await
}

async fn flood_replays(cx: &Ctx) -> Outcome {
    let link = tri!(peer::link(cx).await, "no link");
    let (id, seq) = cx.alloc();
    let env = tri!(cx.seal(id, seq, "hotline-conformance: replayed in a flood"));
    let answer = link.send_envelope(cx, env.bytes()).await;
    let original = tri!(delivered(cx, &answer, &env), "before the flood");
    // Replays of one envelope: what a peer retransmitting in a loop sends. Each takes a token
    // like any envelope stream (§13.2); none stores anything new at the target.
    let bytes = frame::encode(FrameType::Envelope, env.bytes());
    let expect = Expect::Receipt(original.bytes().clone());
    let r = flood(cx, &link, || (bytes.clone(), expect.clone())).await;
    verdict(cx, link, ("envelope", "the original receipt"), r).await
}

async fn flood_receipts(cx: &Ctx) -> Outcome {
    // Asynchronous receipts (§9.4), validly signed by the runner and its officer, each
    // acknowledging another message id the target never sent: every one costs the target its
    // signature checks (§8.4 steps 4–5) before it finds no such message (step 6). Nothing is
    // stored at either end.
    let sender = Bytes::copy_from_slice(cx.target.id.as_bytes());
    let acknowledgement = || -> Result<Bytes, String> {
        let subject = Subject {
            message_id: random_id(),
            envelope_sha256: [0x5a; 32],
            sender: sender.clone(),
            sequence: 1,
        };
        let now = now_ms();
        let ack = cx
            .me
            .officer
            .acknowledge(&subject.message_id, &subject.envelope_sha256, now, "flood")
            .map_err(|e| e.to_string())?;
        let r = Receipt::sign(
            &cx.me.identity,
            &subject,
            ReceiptBuild::Acknowledged(&ack),
            now,
        )
        .map_err(|e| e.to_string())?;
        Ok(frame::encode(FrameType::Receipt, r.bytes()))
    };
    tri!(acknowledgement(), "the runner cannot sign its receipts");
    let link = tri!(peer::link(cx).await, "no link");
    let unknown = CloseCode::UnknownMessage;
    let r = flood(cx, &link, || {
        // Signing worked just above with the same keys; an empty frame would only show up as
        // an unexpected answer.
        let bytes = acknowledgement().unwrap_or_default();
        (bytes, Expect::Reset(unknown))
    })
    .await;
    let what = format!("a reset with {}", code_name(code(unknown)));
    verdict(cx, link, ("receipt", &what), r).await
}
