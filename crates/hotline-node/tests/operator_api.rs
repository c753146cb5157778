//! The operator API (SPEC.md §15) against two running nodes, with a bare client.

mod common;

use std::time::{Duration, Instant};

use common::{Client, error_code, free_udp_port, start};
use hotline_node::config;
use hotline_node::{commands, operator};
use hotline_protocol::content::Draft;
use hotline_protocol::receipt::{Receipt, ReceiptKind};
use hotline_protocol::wire::{self, operator_request::Request, operator_response::Response};
use hotline_transport::now_ms;

#[test]
fn send_list_ack_show_and_export_through_the_operator_api() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (a_addr, b_addr) = (
        format!("127.0.0.1:{}", free_udp_port()),
        format!("127.0.0.1:{}", free_udp_port()),
    );
    commands::init(&a, "CERT-A", &a_addr).expect("init a");
    commands::init(&b, "CERT-B", &b_addr).expect("init b");
    commands::peer_add(&a, &b.join(config::BUNDLE_FILE), &b_addr, Some("cert-b")).expect("pin b");
    commands::peer_add(&b, &a.join(config::BUNDLE_FILE), &a_addr, Some("cert-a")).expect("pin a");
    operator::add(&a, "Anna Officer", "officer", &a.join("anna.cred")).expect("anna");
    operator::add(&b, "Bruno Officer", "officer", &b.join("bruno.cred")).expect("bruno");
    operator::add(&b, "Vera Viewer", "viewer", &b.join("vera.cred")).expect("vera");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let na = start(a.clone()).await;
        let nb = start(b.clone()).await;
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr).await.expect("anna connects");
        let bruno = Client::connect(&b.join("bruno.cred"), nb.local_addr).await.expect("bruno connects");
        let vera = Client::connect(&b.join("vera.cred"), nb.local_addr).await.expect("vera connects");

        let who = anna.call(Request::Whoami(Default::default())).await.expect("whoami");
        assert!(matches!(&who, Response::Whoami(w) if w.name == "Anna Officer" && w.node_name == "CERT-A"), "{who:?}");

        // Send: signed by Anna's own key, addressed by alias.
        let peers = match anna.call(Request::Peers(Default::default())).await.expect("peers") {
            Response::Peers(p) => p.peers,
            other => panic!("{other:?}"),
        };
        let b_id: hotline_protocol::NodeId = peers[0].node.parse().expect("id");
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).expect("rng");
        let draft = Draft { subject: "Ransomware at a hospital".into(), text: "IOCs follow.".into(), ..Default::default() };
        let content = draft.sign(&id, &b_id, &anna.officer, now_ms()).expect("sign");
        let send = wire::SendRequest {
            to: "cert-b".into(),
            message_id: id.to_vec().into(),
            precedence: wire::Precedence::Flash as i32,
            tlp: wire::Tlp::Amber as i32,
            content: content.as_bytes().to_vec().into(),
        };
        let r = anna.call(Request::Send(send.clone())).await.expect("send");
        assert!(matches!(&r, Response::Send(s) if s.sequence == 1), "{r:?}");
        // A viewer cannot send, and Bruno cannot send content Anna signed.
        let r = vera.call(Request::Send(send.clone())).await.expect("send");
        assert_eq!(error_code(&r), Some(wire::OperatorErrorCode::Forbidden));

        // Wait for DELIVERED at A.
        let t0 = Instant::now();
        loop {
            let r = anna.call(Request::Show(wire::ShowRequest { message_id: id.to_vec().into() })).await.expect("show");
            if matches!(&r, Response::Show(s) if s.summary.as_ref().is_some_and(|m| m.state == "delivered")) {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "not delivered: {r:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // B's inbox lists it, unacknowledged.
        let list = bruno
            .call(Request::List(wire::ListRequest { incoming: true, unacknowledged_only: true, ..Default::default() }))
            .await
            .expect("list");
        let Response::List(l) = list else { panic!("{list:?}") };
        assert_eq!(l.messages.len(), 1);
        assert_eq!(l.messages[0].subject, "Ransomware at a hospital");
        assert_eq!(l.messages[0].officer, "Anna Officer");

        // Ack by Bruno (the viewer cannot).
        let shown = bruno.call(Request::Show(wire::ShowRequest { message_id: id.to_vec().into() })).await.expect("show");
        let Response::Show(shown) = shown else { panic!("{shown:?}") };
        let sha = hotline_protocol::crypto::sha256(&shown.envelope);
        let ack = bruno.officer.acknowledge(&id, &sha, now_ms(), "Isolating hosts.").expect("ack");
        let r = vera.call(Request::Ack(wire::AckRequest { message_id: id.to_vec().into(), ack: Some(ack.clone()) })).await.expect("ack");
        assert_eq!(error_code(&r), Some(wire::OperatorErrorCode::Forbidden));
        let r = bruno.call(Request::Ack(wire::AckRequest { message_id: id.to_vec().into(), ack: Some(ack) })).await.expect("ack");
        assert!(matches!(r, Response::Ack(_)), "{r:?}");

        // A holds the ACKNOWLEDGED receipt naming Bruno.
        let t0 = Instant::now();
        let receipts = loop {
            let r = anna.call(Request::Show(wire::ShowRequest { message_id: id.to_vec().into() })).await.expect("show");
            if let Response::Show(s) = &r
                && s.summary.as_ref().is_some_and(|m| m.state == "acknowledged")
            {
                break s.receipts.clone();
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "not acknowledged: {r:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let acked = receipts
            .iter()
            .filter_map(|r| Receipt::verify(r, &b_id).ok())
            .find_map(|r| match r.kind() {
                ReceiptKind::Acknowledged { officer, .. } => Some(officer.name().to_owned()),
                _ => None,
            });
        assert_eq!(acked.as_deref(), Some("Bruno Officer"));

        // Export from A holds the envelope, both receipts and B's bundle.
        let r = anna.call(Request::Export(Default::default())).await.expect("export");
        let Response::Export(e) = r else { panic!("{r:?}") };
        let bundle = e.bundle.expect("bundle");
        assert_eq!(bundle.items.len(), 1);
        assert_eq!(bundle.items[0].receipts.len(), 2);
        assert_eq!(bundle.peer_bundles.len(), 1);

        // Status shows the link up with the post-quantum group.
        let r = anna.call(Request::Status(Default::default())).await.expect("status");
        assert!(matches!(&r, Response::Status(s) if s.links[0].up && s.links[0].group == "X25519MLKEM768"), "{r:?}");
        na.shutdown().await;
        nb.shutdown().await;
    });
}

#[test]
fn a_credential_issued_by_another_node_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (a_addr, b_addr) = (
        format!("127.0.0.1:{}", free_udp_port()),
        format!("127.0.0.1:{}", free_udp_port()),
    );
    commands::init(&a, "CERT-A", &a_addr).expect("init a");
    commands::init(&b, "CERT-B", &b_addr).expect("init b");
    commands::peer_add(&a, &b.join(config::BUNDLE_FILE), &b_addr, Some("cert-b")).expect("pin b");
    operator::add(&b, "Bruno Officer", "officer", &b.join("bruno.cred")).expect("bruno");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let na = start(a.clone()).await;
        // Bruno's credential (issued by B) pointed at A: A does not pin its key.
        let c = Client::connect(&b.join("bruno.cred"), na.local_addr).await;
        let refused = match c {
            Err(_) => true,
            Ok(c) => c.call(Request::Whoami(Default::default())).await.is_err(),
        };
        assert!(refused, "A accepted a credential B issued");
        let _ = &b_addr;
        na.shutdown().await;
    });
}

/// `hotlined operator add` and `operator remove` on a running node take effect at once: the
/// commands tell the node through its control socket (issue 12: a new credential used to be
/// refused for up to ~6 s, and a revoked viewer's Watch kept streaming).
#[test]
fn operators_added_or_revoked_while_the_node_runs_take_effect_at_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (a_addr, b_addr) = (
        format!("127.0.0.1:{}", free_udp_port()),
        format!("127.0.0.1:{}", free_udp_port()),
    );
    commands::init(&a, "CERT-A", &a_addr).expect("init a");
    commands::init(&b, "CERT-B", &b_addr).expect("init b");
    commands::peer_add(&a, &b.join(config::BUNDLE_FILE), &b_addr, Some("cert-b")).expect("pin b");
    operator::add(&a, "Vera Viewer", "viewer", &a.join("vera.cred")).expect("vera");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let mut na = start(a.clone()).await;
        na.serve_control(&a.join(config::CONTROL_SOCKET))
            .expect("control socket");
        let vera = Client::connect(&a.join("vera.cred"), na.local_addr)
            .await
            .expect("vera connects");
        let mut watch = vera.watch().await.expect("watch");

        // Issued after start: usable at once, without a restart.
        let dir = a.clone();
        tokio::task::spawn_blocking(move || {
            operator::add(&dir, "Late Officer", "officer", &dir.join("late.cred"))
        })
        .await
        .expect("join")
        .expect("issue");
        let late = Client::connect(&a.join("late.cred"), na.local_addr)
            .await
            .expect("the new operator connects at once");
        let who = late
            .call(Request::Whoami(Default::default()))
            .await
            .expect("whoami");
        assert!(matches!(who, Response::Whoami(_)), "{who:?}");

        // Vera's open Watch sees events while she is an operator.
        let dir = a.clone();
        tokio::task::spawn_blocking(move || operator::remove(&dir, "Late Officer"))
            .await
            .expect("join")
            .expect("revoke");
        // Revoked while connected: the node closes the connection at once.
        let closed = tokio::time::timeout(Duration::from_secs(1), late.conn.closed()).await;
        assert!(
            closed.is_ok(),
            "the revoked operator's connection stays open"
        );
        assert!(
            late.call(Request::Whoami(Default::default()))
                .await
                .is_err()
        );
        // Vera's Watch told her of both changes.
        for _ in 0..2 {
            let ev = watch.next(Duration::from_secs(5)).await.expect("an event");
            assert!(
                matches!(&ev, Response::Event(e) if e.kind == "reloaded"),
                "{ev:?}"
            );
        }

        // Revoking the viewer ends her Watch with FORBIDDEN, and her connection.
        let dir = a.clone();
        tokio::task::spawn_blocking(move || operator::remove(&dir, "Vera Viewer"))
            .await
            .expect("join")
            .expect("revoke");
        let t0 = Instant::now();
        let end = loop {
            match watch.next(Duration::from_secs(1)).await {
                Some(Response::Event(_)) => continue,
                other => break other,
            }
        };
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "the Watch went on for {:?}",
            t0.elapsed()
        );
        assert!(
            matches!(&end, Some(r) if error_code(r) == Some(wire::OperatorErrorCode::Forbidden))
                || end.is_none(),
            "{end:?}"
        );
        let closed = tokio::time::timeout(Duration::from_secs(1), vera.conn.closed()).await;
        assert!(closed.is_ok(), "the revoked viewer's connection stays open");
        // And a new connection with her credential is refused.
        let again = Client::connect(&a.join("vera.cred"), na.local_addr).await;
        let refused = match again {
            Err(_) => true,
            Ok(c) => c.call(Request::Whoami(Default::default())).await.is_err(),
        };
        assert!(refused, "a revoked credential connected");
        na.shutdown().await;
    });
}
