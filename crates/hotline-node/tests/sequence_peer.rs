//! Sequence safety against what a peer does (issue 13 item A9, SPEC.md §10.1), with the raw
//! peer of `raw_peer` playing node A against a real node B:
//! - A reuses a sequence for another message: B accepts it (a sequence never causes a
//!   rejection) and alerts its operators, naming both messages;
//! - A's Heartbeat says it has received sequences from B that B's database does not know (B's
//!   database was restored from an older copy): B continues above them, once per detection,
//!   and a claim no node could make is ignored;
//! - A's envelope is authenticated and answered REJECTED: its sequence counts as received, and
//!   still does after B restarts (SPEC.md §10.2), so it never becomes a false gap.

mod common;
mod raw_peer;

use std::time::Duration;

use common::{
    BRUNO, Client, Watch, connect_and_watch, draft, next_event, send_request, with_bruno,
};
use hotline_protocol::NodeId;
use hotline_protocol::envelope::MessageId;
use hotline_protocol::receipt::ReceiptKind;
use hotline_protocol::wire::{operator_request::Request, operator_response::Response};
use hotline_transport::now_ms;
use raw_peer::control::{heartbeat, link_keeping_control};
use raw_peer::{World, block_on, expect_receipt, random_id, step};

/// How long to go on watching for an event that must not come.
const SETTLE: Duration = Duration::from_millis(700);

/// Bruno (`common::with_bruno`), connected to B's operator API, and a Watch stream of B's events.
async fn bruno(w: &World) -> (Client, Watch) {
    step(
        "operator connection",
        connect_and_watch(&w.b_dir.join(BRUNO), w.b_addr),
    )
    .await
}

fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// SPEC.md §10.1: the receiver SHOULD alert when one sequence comes with two message ids. B
/// answers both envelopes DELIVERED, keeps both, and tells its operators (Watch, audit trail)
/// which two messages share the sequence.
#[test]
fn a_sequence_reused_for_another_message_is_accepted_and_alerted_with_both_ids() {
    block_on(async {
        let w = World::start_with(with_bruno).await;
        let (_bruno, mut watch) = bruno(&w).await;
        let link = w.link(&w.as_a()).await;
        let (first, second) = (random_id(), random_id());
        for (id, subject) in [(first, "first"), (second, "second, same sequence")] {
            let env = w.seal(link.b_key(), id, 5, subject);
            let r = expect_receipt(link.send(env.bytes()).await, &w.b_id);
            assert_eq!(r.kind(), &ReceiptKind::Delivered, "{subject}");
        }
        let e = step(
            "the sequence_reused event",
            next_event(&mut watch, "sequence_reused", raw_peer::STEP),
        )
        .await
        .expect("B alerts its operators");
        assert_eq!(e.peer, "cert-a");
        assert_eq!(&e.message_id[..], &second[..]);
        assert!(
            e.detail.contains(&hex(&first)) && e.detail.contains("sequence 5"),
            "{e:?}"
        );
        let inbox = w.inbox().await;
        assert!(inbox.contains(&first) && inbox.contains(&second));
        let audit =
            w.b.with_store(|s| s.recent_audit(100))
                .await
                .expect("store")
                .expect("audit");
        let rows: Vec<_> = audit
            .iter()
            .filter(|e| e.kind == "sequence_reused")
            .collect();
        assert_eq!(rows.len(), 1, "{audit:?}");
        assert_eq!(rows[0].message_id, Some(second));
        assert!(rows[0].detail.contains(&hex(&first)), "{rows:?}");
        // A sequence used once more by a third message: alerted again.
        let third = random_id();
        let env = w.seal(link.b_key(), third, 5, "third");
        expect_receipt(link.send(env.bytes()).await, &w.b_id);
        let e = next_event(&mut watch, "sequence_reused", raw_peer::STEP)
            .await
            .expect("alerted again");
        assert_eq!(&e.message_id[..], &third[..]);
        assert!(e.detail.contains(&hex(&first)), "names the earliest: {e:?}");
        drop(link);
        w.stop().await;
    });
}

/// Bruno sends a message to A; the sequence B assigned it.
async fn send_to_a(w: &World, bruno: &Client, to: &NodeId, subject: &str) -> (MessageId, u64) {
    let id = random_id();
    let req = send_request(bruno, id, "cert-a", to, &draft(subject));
    match bruno.call(Request::Send(req)).await.expect("send") {
        Response::Send(s) => (id, s.sequence),
        other => panic!("{other:?} ({})", w.b_dir.display()),
    }
}

/// SPEC.md §10.1, the peer's `received_through` as the second line of defence: A says it has
/// received every sequence up to 5 from B, whose database holds none (restored, with its
/// high-water mark, from before they were sent). B records the floor once, alerts, and numbers
/// its next messages from 6; a repeated claim changes nothing; a claim no node could make is
/// ignored.
#[test]
fn the_peers_received_through_above_what_the_database_holds_sets_a_floor_once() {
    block_on(async {
        let w = World::start_with(with_bruno).await;
        let (bruno, mut watch) = bruno(&w).await;
        let a_id = w.a.identity.id();
        let (link, mut control) = link_keeping_control(&w).await;
        heartbeat(&mut control, 0, 5).await;
        let e = next_event(&mut watch, "sequence_rollback", raw_peer::STEP)
            .await
            .expect("B alerts its operators");
        assert_eq!(e.peer, "cert-a");
        assert!(e.detail.contains("received_through"), "{e:?}");

        let (id, seq) = send_to_a(&w, &bruno, &a_id, "after the restore").await;
        assert_eq!(seq, 6, "B continues above what A holds");
        let (env, _stream) = link.accept_envelope().await;
        assert_eq!((env.message_id(), env.header().sequence), (&id, 6));

        // The same claim again, and one beyond any sequence: no new floor, no new alert.
        heartbeat(&mut control, 0, 5).await;
        heartbeat(&mut control, 0, u64::MAX).await;
        assert!(
            next_event(&mut watch, "sequence_rollback", SETTLE)
                .await
                .is_none(),
            "alerted twice"
        );
        let (_, seq) = send_to_a(&w, &bruno, &a_id, "next").await;
        assert_eq!(seq, 7);
        let audit =
            w.b.with_store(|s| s.recent_audit(100))
                .await
                .expect("store")
                .expect("audit");
        let rows: Vec<_> = audit
            .iter()
            .filter(|e| e.kind == "sequence_rollback")
            .collect();
        assert_eq!(rows.len(), 1, "{audit:?}");
        assert!(rows[0].detail.contains("from 6 on"), "{rows:?}");
        drop(link);
        w.stop().await;
    });
}

/// SPEC.md §10.2: an envelope answered REJECTED for a reason after authentication (here
/// CREATED_IN_FUTURE, §7.6 step 7) makes its sequence count as received, durably: after B restarts, the
/// sequences it restores its gap tracking from still run 1..=3 without a hole. Before this was
/// recorded, sequence 2 came back as a permanent gap.
#[test]
fn a_sequence_answered_rejected_still_counts_as_received_after_a_restart() {
    block_on(async {
        let w = World::start().await;
        let a_id = w.a.identity.id();
        let link = w.link(&w.as_a()).await;
        let ahead = now_ms() + 120 * hotline_protocol::time::MINUTE;
        for (seq, created, subject) in [
            (1, now_ms(), "one"),
            (2, ahead, "two, two hours ahead"),
            (3, now_ms(), "three"),
        ] {
            let env = w.seal_created(link.b_key(), random_id(), seq, subject, created);
            let r = expect_receipt(link.send(env.bytes()).await, &w.b_id);
            match (seq, r.kind()) {
                (2, ReceiptKind::Rejected { reason, .. }) => {
                    assert_eq!(
                        reason,
                        &hotline_protocol::codes::RejectReason::CreatedInFuture
                    );
                }
                (2, other) => panic!("an envelope from the future was answered {other:?}"),
                (_, kind) => assert_eq!(kind, &ReceiptKind::Delivered, "{subject}"),
            }
        }
        w.hang_up(link).await;
        let w = w.restart_b().await;
        let held =
            w.b.with_store(move |s| s.received_sequences(&a_id))
                .await
                .expect("store running")
                .expect("received sequences");
        assert_eq!(held, vec![(1, 3)], "sequence 2 was forgotten");
        assert_eq!(
            w.inbox().await.len(),
            2,
            "the rejected message is not stored"
        );
        w.stop().await;
    });
}
