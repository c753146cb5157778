//! `hotline cancel` (issue 12 item 7, SPEC.md §15.5.10): an officer withdraws a message that
//! never left the node; it is never sent, the audit trail says who cancelled it, and a message
//! that may have left (written to a connection, or stored before a restart) is refused.

mod common;

use common::{
    Client, draft, error_code, peer_id, random_id, runtime, send_request, show, start, two_nodes,
    wait_state,
};
use hotline_node::config;
use hotline_node::store::Store;
use hotline_node::store::sqlite::SqliteStore;
use hotline_protocol::wire::{self, OperatorErrorCode as Code};
use hotline_protocol::wire::{operator_request::Request, operator_response::Response};

async fn cancel(c: &Client, id: [u8; 16]) -> Response {
    c.call(Request::Cancel(wire::CancelRequest {
        message_id: id.to_vec().into(),
    }))
    .await
    .expect("cancel")
}

async fn state(c: &Client, id: [u8; 16]) -> String {
    match show(c, id).await {
        Response::Show(s) => s.summary.expect("summary").state,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_message_that_never_left_is_cancelled_and_never_sent() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = two_nodes(
        tmp.path(),
        &[
            ('a', "Anna", "officer", "anna.cred"),
            ('a', "Vera", "viewer", "vera.cred"),
            ('b', "Bruno", "officer", "bruno.cred"),
        ],
    );
    runtime().block_on(async {
        // B is down: A's messages wait in its queue.
        let na = start(a.clone()).await;
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        let vera = Client::connect(&a.join("vera.cred"), na.local_addr)
            .await
            .expect("vera");
        let b_id = peer_id(&anna).await;
        let (withdrawn, kept) = (random_id(), random_id());
        for (id, subject) in [(withdrawn, "withdrawn"), (kept, "kept")] {
            let req = send_request(&anna, id, "cert-b", &b_id, &draft(subject));
            let r = anna.call(Request::Send(req)).await.expect("send");
            assert!(matches!(r, Response::Send(_)), "{r:?}");
        }

        // A viewer may not cancel.
        let r = cancel(&vera, withdrawn).await;
        assert_eq!(error_code(&r), Some(Code::Forbidden), "{r:?}");
        // An officer may; a repetition gets the first answer.
        let first = cancel(&anna, withdrawn).await;
        let Response::Cancel(c) = &first else {
            panic!("{first:?}")
        };
        assert_eq!((c.sequence, c.cancelled_by.as_str()), (1, "Anna"));
        assert_eq!(&c.message_id[..], &withdrawn[..]);
        assert_eq!(cancel(&anna, withdrawn).await, first);
        assert_eq!(state(&anna, withdrawn).await, "cancelled");

        // B comes up: it gets the other message, never the cancelled one.
        let nb = start(b.clone()).await;
        let bruno = Client::connect(&b.join("bruno.cred"), nb.local_addr)
            .await
            .expect("bruno");
        wait_state(&anna, kept, |s| s == "delivered").await;
        wait_state(&bruno, kept, |s| s == "received").await;
        let r = show(&bruno, withdrawn).await;
        assert_eq!(error_code(&r), Some(Code::NotFound), "{r:?}");
        assert_eq!(state(&anna, withdrawn).await, "cancelled");

        // Too late for a delivered message; a received one is not ours to cancel; an unknown
        // id is not found.
        let r = cancel(&anna, kept).await;
        assert_eq!(error_code(&r), Some(Code::BadRequest), "{r:?}");
        let Response::Error(e) = &r else { panic!() };
        assert!(e.message.contains("delivered"), "{}", e.message);
        let r = cancel(&bruno, kept).await;
        assert_eq!(error_code(&r), Some(Code::BadRequest), "{r:?}");
        let r = cancel(&anna, random_id()).await;
        assert_eq!(error_code(&r), Some(Code::NotFound), "{r:?}");
        na.shutdown().await;
        nb.shutdown().await;
    });
    // The audit trail names who cancelled what.
    let mut store = SqliteStore::open(&a.join(config::DB_FILE)).expect("db");
    let audit = store.recent_audit(100).expect("audit");
    let row = audit
        .iter()
        .find(|e| e.kind == "cancelled")
        .expect("an audit row for the cancellation");
    assert!(
        row.detail.contains("Anna") && row.detail.contains("sequence 1"),
        "{row:?}"
    );
}

#[test]
fn a_message_stored_before_a_restart_is_not_cancelled() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, _b) = two_nodes(tmp.path(), &[('a', "Anna", "officer", "anna.cred")]);
    runtime().block_on(async {
        let id = random_id();
        let na = start(a.clone()).await;
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        let b_id = peer_id(&anna).await;
        let req = send_request(&anna, id, "cert-b", &b_id, &draft("before restart"));
        let r = anna.call(Request::Send(req)).await.expect("send");
        assert!(matches!(r, Response::Send(_)), "{r:?}");
        na.shutdown().await;

        // The earlier process may have written it to a connection before it stopped.
        let na = start(a.clone()).await;
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        let r = cancel(&anna, id).await;
        assert_eq!(error_code(&r), Some(Code::BadRequest), "{r:?}");
        let Response::Error(e) = &r else { panic!() };
        assert!(e.message.contains("restarted"), "{}", e.message);
        assert_eq!(state(&anna, id).await, "pending");
        na.shutdown().await;
    });
}
