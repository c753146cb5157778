//! Administrator changes to peers take effect on the running node at once (issue 12 item 2):
//! `hotlined peer remove` used to leave the link up, the removed peer's messages delivered and
//! Sends to it accepted until a restart.

mod common;

use std::time::{Duration, Instant};

use common::{Client, error_code, runtime, start, two_nodes};
use hotline_node::{commands, config};
use hotline_protocol::content::Draft;
use hotline_protocol::wire::{self, operator_request::Request, operator_response::Response};
use hotline_transport::now_ms;

async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(
            t0.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn send(c: &Client, to: &str, to_id: &hotline_protocol::NodeId) -> Request {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).expect("rng");
    let draft = Draft {
        subject: "s".into(),
        text: "t".into(),
        ..Default::default()
    };
    let content = draft.sign(&id, to_id, &c.officer, now_ms()).expect("sign");
    Request::Send(wire::SendRequest {
        to: to.into(),
        message_id: id.to_vec().into(),
        precedence: wire::Precedence::Routine as i32,
        tlp: wire::Tlp::Green as i32,
        content: content.as_bytes().to_vec().into(),
    })
}

#[test]
fn peers_removed_added_or_updated_while_the_node_runs_take_effect_at_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = two_nodes(tmp.path(), &[('a', "Anna", "officer", "anna.cred")]);
    runtime().block_on(async {
        let mut na = start(a.clone()).await;
        na.serve_control(&a.join(config::CONTROL_SOCKET))
            .expect("control");
        let nb = start(b.clone()).await;
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        let b_id = nb.id;
        wait_until("the link up", Duration::from_secs(10), || {
            na.link_up("cert-b") && nb.link_up("cert-a")
        })
        .await;
        let r = anna.call(send(&anna, "cert-b", &b_id)).await.expect("send");
        assert!(matches!(r, Response::Send(_)), "{r:?}");

        // Removed: the link closes at once on both sides, and B cannot come back.
        let dir = a.clone();
        let t0 = Instant::now();
        tokio::task::spawn_blocking(move || commands::peer_remove(&dir, "cert-b"))
            .await
            .expect("join")
            .expect("remove");
        wait_until("B to see the link down", Duration::from_secs(1), || {
            !nb.link_up("cert-a")
        })
        .await;
        eprintln!("link down at B {:?} after peer remove", t0.elapsed());
        let r = anna.call(send(&anna, "cert-b", &b_id)).await.expect("send");
        assert_eq!(
            error_code(&r),
            Some(wire::OperatorErrorCode::UnknownPeer),
            "{r:?}"
        );
        let r = anna
            .call(Request::Status(Default::default()))
            .await
            .expect("status");
        assert!(
            matches!(&r, Response::Status(s) if s.links.is_empty()),
            "{r:?}"
        );
        assert!(
            !na.metrics_text().contains("cert-b"),
            "{}",
            na.metrics_text()
        );
        // B keeps dialing; A refuses it at the TLS handshake.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(!nb.link_up("cert-a"), "B got back in after its removal");

        // Added again: the link comes up without a restart.
        let (dir, bundle, addr) = (
            a.clone(),
            b.join(config::BUNDLE_FILE),
            nb.local_addr.to_string(),
        );
        tokio::task::spawn_blocking(move || {
            commands::peer_add(&dir, &bundle, &addr, Some("cert-b"))
        })
        .await
        .expect("join")
        .expect("add");
        wait_until("the link up again", Duration::from_secs(10), || {
            na.link_up("cert-b")
        })
        .await;
        let r = anna.call(send(&anna, "cert-b", &b_id)).await.expect("send");
        assert!(matches!(r, Response::Send(_)), "{r:?}");

        // Updated to an address where nobody listens: the link is restarted and stays down
        // (A dials there); the peer stays pinned.
        let dead = format!("127.0.0.1:{}", common::free_udp_port());
        let dir = a.clone();
        tokio::task::spawn_blocking(move || {
            commands::peer_update(&dir, "cert-b", None, Some(&dead))
        })
        .await
        .expect("join")
        .expect("update");
        let r = anna
            .call(Request::Peers(Default::default()))
            .await
            .expect("peers");
        let Response::Peers(p) = r else {
            panic!("{r:?}")
        };
        assert_eq!(p.peers.len(), 1);
        assert_ne!(
            p.peers[0].address,
            nb.local_addr.to_string(),
            "the new address is in use"
        );
        // A bundle of another node is refused.
        let other = tmp.path().join("c");
        commands::init(&other, "CERT-C", "127.0.0.1:9").expect("init c");
        let err = commands::peer_update(&a, "cert-b", Some(&other.join(config::BUNDLE_FILE)), None)
            .expect_err("another node's bundle");
        assert!(err.0.contains("peer add"), "{}", err.0);
        na.shutdown().await;
        nb.shutdown().await;
    });
}

/// Evidence survives peer removal (issue 12 item 8): after `peer remove` and a restart, an
/// export still carries the removed peer's bundle, so its messages and receipts verify.
#[test]
fn evidence_of_a_removed_peer_still_carries_its_bundle_after_a_restart() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = two_nodes(tmp.path(), &[('a', "Anna", "officer", "anna.cred")]);
    runtime().block_on(async {
        let na = start(a.clone()).await;
        let nb = start(b.clone()).await;
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr).await.expect("anna");
        let b_id = nb.id;
        let Response::Send(sent) = anna.call(send(&anna, "cert-b", &b_id)).await.expect("send")
        else {
            panic!("not sent")
        };
        let id = sent.message_id.clone();
        let t0 = Instant::now();
        loop {
            let r = anna
                .call(Request::Show(wire::ShowRequest { message_id: id.clone() }))
                .await
                .expect("show");
            if matches!(&r, Response::Show(s) if s.summary.as_ref().is_some_and(|m| m.state == "delivered")) {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "not delivered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(anna);
        na.shutdown().await;
        nb.shutdown().await;
        commands::peer_remove(&a, "cert-b").expect("remove");

        let na = start(a.clone()).await;
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr).await.expect("anna");
        let r = anna.call(Request::Export(Default::default())).await.expect("export");
        let Response::Export(e) = r else { panic!("{r:?}") };
        let bundle = e.bundle.expect("bundle");
        assert_eq!(bundle.items.len(), 1);
        let b_bundle = hotline_protocol::bundle::PeerBundle::from_armored(
            &std::fs::read(b.join(config::BUNDLE_FILE)).expect("b bundle"),
        )
        .expect("parses");
        // The bundle B sent over the link when it came up (SPEC.md §4.4.4), newer than its
        // file: the same node.
        assert_eq!(bundle.peer_bundles.len(), 1);
        let held = hotline_protocol::bundle::PeerBundle::from_bytes(&bundle.peer_bundles[0])
            .expect("a bundle");
        assert_eq!(held.identity(), b_bundle.identity());
        assert!(held.created() >= b_bundle.created());
        for r in &bundle.items[0].receipts {
            hotline_protocol::receipt::Receipt::verify(r, &b_bundle.identity())
                .expect("the receipt verifies with the removed peer's bundle");
        }
        // Show names the removed peer's bundle too.
        let r = anna
            .call(Request::Show(wire::ShowRequest { message_id: id }))
            .await
            .expect("show");
        assert!(matches!(&r, Response::Show(s) if s.receiver_bundle == *held.bytes()), "{r:?}");
        na.shutdown().await;
    });
}

/// A peer added without an address only dials in (issue 16 item 8): B never dials A, A dials
/// B, and the link carries messages; B's officers may name A by its bundle's name too.
#[test]
fn a_peer_added_without_an_address_dials_in() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let b_addr = format!("127.0.0.1:{}", common::free_udp_port());
    let a_addr = format!("127.0.0.1:{}", common::free_udp_port());
    commands::init(&a, "CERT-A", &a_addr).expect("init a");
    commands::init(&b, "CERT-B", &b_addr).expect("init b");
    commands::peer_add(&a, &b.join(config::BUNDLE_FILE), &b_addr, Some("cert-b")).expect("a");
    commands::peer_add(&b, &a.join(config::BUNDLE_FILE), "", Some("cert-a")).expect("b");
    hotline_node::operator::add(&a, "Anna", "officer", &a.join("anna.cred")).expect("anna");
    hotline_node::operator::add(&b, "Bruno", "officer", &b.join("bruno.cred")).expect("bruno");
    runtime().block_on(async {
        let nb = start(b.clone()).await;
        // A is not running yet: B has nobody to dial, and tries nothing.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!nb.link_up("cert-a"));
        let na = start(a.clone()).await;
        wait_until("the link is up at B", Duration::from_secs(20), || {
            nb.link_up("cert-a")
        })
        .await;
        let bruno = Client::connect(&b.join("bruno.cred"), nb.local_addr)
            .await
            .expect("bruno");
        let a_id = common::peer_id(&bruno).await;
        let r = bruno
            .call(send(&bruno, "cert-a", &a_id))
            .await
            .expect("send");
        let Response::Send(sent) = r else {
            panic!("{r:?}")
        };
        let id: [u8; 16] = sent.message_id.as_ref().try_into().expect("id");
        common::wait_state(&bruno, id, |s| s == "delivered").await;
        // `to` may also be the name A's bundle gives itself (SPEC.md §15.5); an unknown one is
        // UNKNOWN_PEER.
        let r = bruno
            .call(send(&bruno, "CERT-A", &a_id))
            .await
            .expect("send");
        assert!(matches!(r, Response::Send(_)), "{r:?}");
        let r = bruno
            .call(send(&bruno, "CERT-Z", &a_id))
            .await
            .expect("send");
        assert_eq!(
            error_code(&r),
            Some(wire::OperatorErrorCode::UnknownPeer),
            "{r:?}"
        );
        na.shutdown().await;
        nb.shutdown().await;
    });
}
