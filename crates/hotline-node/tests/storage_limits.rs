//! Storage limits (issue 13 A3, SPEC.md §13.3): a peer cannot make this node store more than
//! its quota, and a node below its disk-space floor takes no new messages (the peer keeps them
//! and retries) instead of failing writes.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    Client, draft, error_code, peer_id, random_id, runtime, send_request, start, status, two_nodes,
    wait_state,
};
use hotline_node::config;
use hotline_protocol::wire::OperatorErrorCode as Code;
use hotline_protocol::wire::{operator_request::Request, operator_response::Response};

fn set_storage(dir: &Path, f: impl FnOnce(&mut config::Storage)) {
    let mut cfg = config::Config::load(dir).expect("config");
    f(&mut cfg.storage);
    std::fs::write(dir.join(config::CONFIG_FILE), cfg.to_toml()).expect("write config");
}

#[test]
fn a_peer_over_its_quota_gets_rejected_policy_naming_the_quota() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = two_nodes(
        tmp.path(),
        &[
            ('a', "Anna", "officer", "anna.cred"),
            ('b', "Vera", "viewer", "vera.cred"),
        ],
    );
    set_storage(&b, |s| s.peer_quota_mib = 4);
    runtime().block_on(async {
        let (na, nb) = (start(a.clone()).await, start(b.clone()).await);
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        let vera = Client::connect(&b.join("vera.cred"), nb.local_addr)
            .await
            .expect("vera");
        let b_id = peer_id(&anna).await;
        // Each message holds about 1.6 MiB at B (envelope and plaintext): the third one
        // brings B's count for A over 4 MiB, so the fourth is refused.
        let mut states = Vec::new();
        for n in 0..4 {
            let mut d = draft(&format!("capture part {n}"));
            d.text = "x".repeat(800 * 1024);
            let id = random_id();
            let r = anna
                .call(Request::Send(send_request(&anna, id, "cert-b", &b_id, &d)))
                .await
                .expect("send");
            assert!(matches!(r, Response::Send(_)), "{r:?}");
            let s = wait_state(&anna, id, |s| s == "delivered" || s == "rejected").await;
            states.push((s.summary.expect("summary").state, s.receipts));
        }
        let kinds: Vec<&str> = states.iter().map(|(s, _)| s.as_str()).collect();
        assert_eq!(kinds, ["delivered", "delivered", "delivered", "rejected"]);
        let rejected = hotline_protocol::receipt::Receipt::verify(&states[3].1[0], &b_id)
            .expect("a valid receipt");
        match rejected.kind() {
            hotline_protocol::receipt::ReceiptKind::Rejected { reason, detail } => {
                assert_eq!(*reason, hotline_protocol::codes::RejectReason::Policy);
                assert!(
                    detail.contains("quota") && detail.contains("of 4 MiB"),
                    "{detail}"
                );
            }
            other => panic!("{other:?}"),
        }
        // B's status shows the count and the quota.
        let s = status(&vera).await;
        let l = &s.links[0];
        assert_eq!(l.quota_bytes, 4 * 1024 * 1024);
        assert!(l.stored_bytes >= l.quota_bytes, "{l:?}");
        na.shutdown().await;
        nb.shutdown().await;
    });
}

#[test]
fn below_the_disk_floor_nothing_new_is_taken_and_the_peer_keeps_its_message() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = two_nodes(
        tmp.path(),
        &[
            ('a', "Anna", "officer", "anna.cred"),
            ('b', "Bruno", "officer", "bruno.cred"),
        ],
    );
    // A floor no disk can satisfy: A is "below" it from the start.
    let config = a.join(config::CONFIG_FILE);
    let original = std::fs::read_to_string(&config).expect("config");
    set_storage(&a, |s| s.min_free_mib = 1 << 40);
    runtime().block_on(async {
        let (na, nb) = (start(a.clone()).await, start(b.clone()).await);
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        let bruno = Client::connect(&b.join("bruno.cred"), nb.local_addr)
            .await
            .expect("bruno");
        let s = status(&anna).await;
        assert!(s.refusing_new_messages && s.disk_free_bytes > 0, "{s:?}");
        // A Send at A is refused, and says why and what to do.
        let b_id = peer_id(&anna).await;
        let r = anna
            .call(Request::Send(send_request(
                &anna,
                random_id(),
                "cert-b",
                &b_id,
                &draft("s"),
            )))
            .await
            .expect("send");
        assert_eq!(error_code(&r), Some(Code::Unavailable), "{r:?}");
        let Response::Error(e) = &r else { panic!() };
        assert!(e.message.contains("disk is nearly full"), "{}", e.message);
        // B's message to A is not taken; B keeps it pending.
        let a_id = peer_id(&bruno).await;
        let id = random_id();
        let r = bruno
            .call(Request::Send(send_request(
                &bruno,
                id,
                "cert-a",
                &a_id,
                &draft("for A"),
            )))
            .await
            .expect("send");
        assert!(matches!(r, Response::Send(_)), "{r:?}");
        tokio::time::sleep(Duration::from_secs(3)).await;
        let s = wait_state(&bruno, id, |_| true).await;
        assert_eq!(s.summary.expect("summary").state, "pending");
        na.shutdown().await;

        // With space (the floor back to its default), A takes it: nothing was lost.
        std::fs::write(&config, &original).expect("restore config");
        let na = start(a.clone()).await;
        wait_state(&bruno, id, |s| s == "delivered").await;
        na.shutdown().await;
        nb.shutdown().await;
    });
}
