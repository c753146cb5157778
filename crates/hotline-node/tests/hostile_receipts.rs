//! A hostile peer's receipts against a real node (SPEC.md §8.5, §8.6, §9.4).
//!
//! Node B runs in-process with an officer, Bruno, who sends messages to node A through the
//! operator API; the raw peer of `raw_peer` holds A's keys, takes B's envelopes and answers
//! them as a malicious node would: thousands of distinct, validly signed receipts for one
//! message, and receipts that contradict each other. B must answer every receipt stream, keep
//! one receipt of each kind per message, let the first final receipt decide, keep the
//! contradicting one as evidence and alert its operators, and never send a message again after
//! a final REJECTED.

mod common;
mod raw_peer;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{
    BRUNO, Client, Watch, connect_and_watch, draft, send_request, show, wait_state, with_bruno,
};
use hotline_node::commands;
use hotline_protocol::codes::{CloseCode, RejectReason};
use hotline_protocol::envelope::{Envelope, MessageId};
use hotline_protocol::frame::{self, FrameType};
use hotline_protocol::receipt::{Receipt, ReceiptBuild, Subject};
use hotline_protocol::wire::{self, operator_request::Request, operator_response::Response};
use hotline_transport::now_ms;
use raw_peer::{World, block_on, exchange_on, expect_stored, random_id, step};

/// How long to go on watching for further events once one came.
const SETTLE: Duration = Duration::from_millis(500);

/// Bruno (`common::with_bruno`), connected to B's operator API, and a Watch stream of B's events.
async fn bruno(w: &World) -> (Client, Watch) {
    step(
        "operator connection",
        connect_and_watch(&w.b_dir.join(BRUNO), w.b_addr),
    )
    .await
}

/// Bruno sends a message to A (alias `cert-a`); its id.
async fn send_to_a(w: &World, bruno: &Client, subject: &str) -> MessageId {
    let id = random_id();
    let req = send_request(bruno, id, "cert-a", &w.a.identity.id(), &draft(subject));
    let r = bruno.call(Request::Send(req)).await.expect("send");
    assert!(matches!(r, Response::Send(_)), "{r:?}");
    id
}

/// A receipt by A (the raw peer) about `env`, made at `time`.
fn by_a(w: &World, env: &Envelope, build: ReceiptBuild<'_>, time: u64) -> Receipt {
    Receipt::sign(&w.a.identity, &Subject::from(env), build, time).expect("sign")
}

/// An ACKNOWLEDGED receipt by A's officer about `env`, with `note`.
fn acknowledged(w: &World, env: &Envelope, note: &str) -> Receipt {
    let now = now_ms();
    let ack = w
        .officer
        .acknowledge(env.message_id(), env.sha256(), now, note)
        .expect("ack");
    by_a(w, env, ReceiptBuild::Acknowledged(&ack), now)
}

/// Answers B's envelope stream with `receipt`, as a receiving node does (SPEC.md §9.3).
async fn answer(mut send: quinn::SendStream, receipt: &Receipt) {
    send.write_all(&frame::encode(FrameType::Receipt, receipt.bytes()))
        .await
        .expect("answer B's envelope stream");
    let _ = send.finish();
}

/// B's message `id` as Show gives it: its state and every receipt held.
async fn shown(bruno: &Client, id: MessageId) -> (String, Vec<Bytes>) {
    match show(bruno, id).await {
        Response::Show(s) => (s.summary.expect("summary").state, s.receipts),
        other => panic!("show: {other:?}"),
    }
}

/// The Watch events of `kind` about message `id`: waits up to the step limit for the first,
/// then `settle` longer for more.
async fn events(
    watch: &mut Watch,
    kind: &str,
    id: MessageId,
    settle: Duration,
) -> Vec<wire::OperatorEvent> {
    let mut until = Instant::now() + raw_peer::STEP;
    let mut found = Vec::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match watch.next(left).await {
            Some(Response::Event(e)) if e.kind == kind && e.message_id[..] == id[..] => {
                if found.is_empty() {
                    until = Instant::now() + settle;
                }
                found.push(e);
            }
            Some(_) => {}
            None => break,
        }
    }
    found
}

/// SPEC.md §8.5: a peer cannot grow the evidence of one of our messages without bound. It
/// sends hundreds of distinct, valid receipts of every kind for one message: each receipt
/// stream is answered with ReceiptStored (§9.4, so the peer has no reason to retry), and B
/// keeps the first of each kind: Show of the message stays small. The REJECTED among them
/// contradicts the delivery already decided (§8.6): kept as evidence, the state unchanged, the
/// operators told once (Watch, audit trail, `hotlined check`).
#[test]
fn a_flood_of_distinct_receipts_is_answered_and_one_receipt_of_each_kind_is_kept() {
    block_on(async {
        let w = World::start_with(with_bruno).await;
        let (bruno, mut watch) = bruno(&w).await;
        let link = w.link(&w.as_a()).await;
        let id = send_to_a(&w, &bruno, "flooded with receipts").await;
        let (env, stream) = link.accept_envelope().await;
        assert_eq!(env.message_id(), &id);
        let delivered = by_a(&w, &env, ReceiptBuild::Delivered, now_ms());
        answer(stream, &delivered).await;
        wait_state(&bruno, id, |s| s == "delivered").await;

        // 450 distinct receipts, all valid: DELIVERED at other times, ACKNOWLEDGED with other
        // notes, REJECTED with other details. Sent 30 streams at a time.
        let t0 = now_ms();
        let flood: Vec<Receipt> = (0..450u64)
            .map(|i| match i % 3 {
                0 => acknowledged(&w, &env, &format!("acknowledgement {i}")),
                1 => by_a(
                    &w,
                    &env,
                    ReceiptBuild::Rejected(RejectReason::Policy, &format!("refusal {i}")),
                    t0 + i,
                ),
                _ => by_a(&w, &env, ReceiptBuild::Delivered, t0 + i),
            })
            .collect();
        for chunk in flood.chunks(30) {
            let mut streams = tokio::task::JoinSet::new();
            for r in chunk {
                let (conn, r) = (link.raw.conn.clone(), r.clone());
                streams.spawn(async move {
                    let frame = frame::encode(FrameType::Receipt, r.bytes());
                    (exchange_on(&conn, &frame).await, r)
                });
            }
            while let Some(done) = streams.join_next().await {
                let (answer, r) = done.expect("stream task");
                expect_stored(&answer, &r);
            }
        }

        // Kept: the DELIVERED answer, the first ACKNOWLEDGED and the first REJECTED.
        let (state, receipts) = shown(&bruno, id).await;
        assert_eq!(receipts.len(), 3, "B kept {} receipts", receipts.len());
        assert_eq!(
            &receipts[0],
            delivered.bytes(),
            "the decisive receipt first"
        );
        assert_eq!(
            state, "acknowledged",
            "delivery decided; the REJECTED changes nothing"
        );
        let alerts = events(&mut watch, "contradictory_receipts", id, SETTLE).await;
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert!(
            alerts[0].detail.contains("REJECTED") && alerts[0].detail.contains("decided delivery"),
            "{:?}",
            alerts[0].detail
        );
        let audit =
            w.b.with_store(|s| s.recent_audit(1000))
                .await
                .expect("store")
                .expect("audit");
        assert_eq!(
            audit
                .iter()
                .filter(|e| e.kind == "contradictory_receipts")
                .count(),
            1
        );
        let hex = data_encoding::HEXLOWER.encode(&id);
        let problems = commands::check(&w.b_dir);
        assert!(
            problems
                .iter()
                .any(|p| p.contains(&hex) && p.contains("contradictory receipts")),
            "{problems:?}"
        );
        w.hang_up(link).await;
        w.assert_still_serving(1).await;
        w.stop().await;
    });
}

/// SPEC.md §8.6: the first final receipt decides. A message answered REJECTED on its envelope
/// stream, and one rejected by a REJECTED on a receipt stream while its envelope stream was
/// still open, both stay rejected when the peer later sends DELIVERED or ACKNOWLEDGED for
/// them: those are kept as evidence and raise the `contradictory_receipts` alert. And a
/// rejected message is never sent again, even when the envelope stream it was in flight on is
/// then reset.
#[test]
fn the_first_final_receipt_decides_and_a_rejected_message_is_not_sent_again() {
    block_on(async {
        let w = World::start_with(with_bruno).await;
        let (bruno, mut watch) = bruno(&w).await;
        let link = w.link(&w.as_a()).await;

        // 1: REJECTED on the envelope stream, then DELIVERED on a receipt stream.
        let first = send_to_a(&w, &bruno, "rejected, then delivered").await;
        let (env, stream) = link.accept_envelope().await;
        assert_eq!(env.message_id(), &first);
        let rejected = by_a(
            &w,
            &env,
            ReceiptBuild::Rejected(RejectReason::Policy, "not for us"),
            now_ms(),
        );
        answer(stream, &rejected).await;
        wait_state(&bruno, first, |s| s == "rejected").await;
        let delivered = by_a(&w, &env, ReceiptBuild::Delivered, now_ms());
        expect_stored(&link.send_receipt(&delivered).await, &delivered);
        let alert = events(&mut watch, "contradictory_receipts", first, SETTLE).await;
        assert_eq!(alert.len(), 1, "{alert:?}");
        assert!(
            alert[0].detail.contains("DELIVERED") && alert[0].detail.contains("stays rejected"),
            "{alert:?}"
        );
        let (state, receipts) = shown(&bruno, first).await;
        assert_eq!(state, "rejected");
        assert_eq!(
            receipts,
            vec![rejected.bytes().clone(), delivered.bytes().clone()]
        );

        // 2: REJECTED on a receipt stream while the envelope stream is open, unanswered.
        let second = send_to_a(&w, &bruno, "rejected while in flight").await;
        let (env, stream) = link.accept_envelope().await;
        assert_eq!(env.message_id(), &second);
        let rejected = by_a(
            &w,
            &env,
            ReceiptBuild::Rejected(RejectReason::Policy, "changed our mind"),
            now_ms(),
        );
        expect_stored(&link.send_receipt(&rejected).await, &rejected);
        wait_state(&bruno, second, |s| s == "rejected").await;
        // The envelope stream fails now: an envelope still owed a receipt would be sent again
        // after a backoff of about 250 ms (§9.7). A rejected one must not be.
        let mut stream = stream;
        let _ = stream.reset(quinn::VarInt::from_u32(CloseCode::InternalError.code()));
        assert!(
            !link.opens_a_stream_within(Duration::from_secs(3)).await,
            "B sent a rejected message again"
        );
        // An officer's acknowledgement afterwards contradicts the REJECTED: kept, alerted.
        let ack = acknowledged(&w, &env, "read it after all");
        expect_stored(&link.send_receipt(&ack).await, &ack);
        // Sent again, a receipt already held is answered as before and changes nothing.
        expect_stored(&link.send_receipt(&ack).await, &ack);
        let alert = events(&mut watch, "contradictory_receipts", second, SETTLE).await;
        assert_eq!(alert.len(), 1, "{alert:?}");
        assert!(alert[0].detail.contains("ACKNOWLEDGED"), "{alert:?}");
        let (state, receipts) = shown(&bruno, second).await;
        assert_eq!(state, "rejected");
        assert_eq!(
            receipts,
            vec![rejected.bytes().clone(), ack.bytes().clone()]
        );
        drop(link);
        w.stop().await;
    });
}
