//! Officer keys revoked on a running node (SPEC.md §4.6): `hotlined keys revoke` with a
//! compromise time and `hotlined operator remove` each make a signed revocation that the
//! running node sends its peer at once, over a version 2 link that stays up; the peer keeps it
//! across a restart. The revoked officer can no longer act at their own node.

mod common;

use std::time::{Duration, Instant};

use common::{Client, runtime, start, status, two_nodes, wait_state};
use hotline_node::store::Store;
use hotline_protocol::revocation::{Revocation, RevokedKind, Standing, standing};
use hotline_protocol::wire::{operator_request::Request, operator_response::Response};
use hotline_transport::material::Material;

/// Waits until node `n`'s store holds `count` revocations; returns them.
async fn wait_revocations(n: &hotline_node::daemon::Node, count: usize) -> Vec<Revocation> {
    let t0 = Instant::now();
    loop {
        let held = n
            .with_store(|s| s.revocations())
            .await
            .expect("store")
            .expect("read");
        if held.len() >= count {
            return held;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "the peer holds {} revocations, not {count}",
            held.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn revocations_reach_the_running_peer_at_once_and_are_kept() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = two_nodes(
        tmp.path(),
        &[
            ('a', "Anna Officer", "officer", "anna.cred"),
            ('a', "Carl Officer", "officer", "carl.cred"),
            ('b', "Bruno Officer", "officer", "bruno.cred"),
        ],
    );
    let a_id = Material::load(&a).expect("a").identity.id();
    runtime().block_on(async {
        let na = start(a.clone()).await;
        let nb = start(b.clone()).await;
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        let (r, before) = common::try_send(&anna, "cert-b", "before the theft").await;
        assert!(matches!(r, Response::Send(_)), "{r:?}");
        wait_state(&anna, before, |s| s == "delivered").await;
        let bruno = Client::connect(&b.join("bruno.cred"), nb.local_addr)
            .await
            .expect("bruno");
        // The dial race of the start is over (SPEC.md §3.9) once a message went through.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let up_since = status(&bruno).await.links[0].since_ms;
        let anna_key = *hotline_transport::credential::load(&a.join("anna.cred"))
            .expect("cred")
            .credential
            .officer_key();

        // Anna's laptop was stolen ten minutes ago: A's administrator revokes her key.
        hotline_node::revoke::revoke(&a, "Anna Officer", Some("10m"), "laptop stolen")
            .expect("revoke");
        na.reload().await.expect("reload");
        let held = wait_revocations(&nb, 1).await;
        assert_eq!(held.len(), 1);
        let r = &held[0];
        assert_eq!(
            (r.issuer(), r.kind(), *r.key(), r.reason()),
            (a_id, RevokedKind::Officer, anna_key, "laptop stolen")
        );
        let cutoff = r.compromised_since().expect("a compromise time");
        assert!(cutoff < r.revoked() && r.revoked() - cutoff >= 9 * 60_000);
        // How Anna's signatures stand at B: before the cutoff they count, after it not.
        assert!(matches!(
            standing(&held, &a_id, RevokedKind::Officer, &anna_key, cutoff - 1),
            Standing::BeforeCutoff {
                compromised: true,
                ..
            }
        ));
        assert!(!standing(&held, &a_id, RevokedKind::Officer, &anna_key, cutoff).counts());
        // Show at B carries the revocation with the message Anna signed, so that the client
        // can say her signature (made after the cutoff) does not count.
        match common::show(&bruno, before).await {
            Response::Show(s) => assert_eq!(s.revocations, vec![r.bytes().clone()]),
            other => panic!("{other:?}"),
        }
        // Anna can no longer act at her node.
        match anna.call(Request::Peers(Default::default())).await {
            Err(_) => {}
            Ok(r) => assert_eq!(
                common::error_code(&r),
                Some(hotline_protocol::wire::OperatorErrorCode::Forbidden),
                "{r:?}"
            ),
        }

        // Carl leaves in good order: `operator remove` retires his key.
        hotline_node::operator::remove(&a, "Carl Officer").expect("remove");
        na.reload().await.expect("reload");
        let held = wait_revocations(&nb, 2).await;
        let carl = held
            .iter()
            .find(|r| r.key() != &anna_key)
            .expect("Carl's revocation");
        assert_eq!(carl.compromised_since(), None);

        // The link stayed up throughout.
        let bruno = Client::connect(&b.join("bruno.cred"), nb.local_addr)
            .await
            .expect("bruno");
        let link = status(&bruno).await.links[0].clone();
        assert!(link.up);
        assert!(
            link.since_ms <= up_since + 5_000,
            "the link was re-established"
        );

        // B restarts and still holds both; A's audit trail says what was revoked.
        drop(bruno);
        nb.shutdown().await;
        let nb = start(b.clone()).await;
        assert_eq!(wait_revocations(&nb, 2).await.len(), 2);
        nb.shutdown().await;
        drop(anna);
        na.shutdown().await;
    });
    let audit = hotline_node::store::sqlite::SqliteStore::open(&a.join("hotline.db"))
        .expect("db")
        .recent_audit(100)
        .expect("audit");
    assert_eq!(
        audit.iter().filter(|r| r.kind == "key_revoked").count(),
        2,
        "{audit:#?}"
    );
    let audit_b = hotline_node::store::sqlite::SqliteStore::open(&b.join("hotline.db"))
        .expect("db")
        .recent_audit(100)
        .expect("audit");
    assert_eq!(
        audit_b
            .iter()
            .filter(|r| r.kind == "peer_key_revoked")
            .count(),
        2
    );
}

#[test]
fn messages_a_revoked_key_signed_that_never_left_are_withdrawn() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = two_nodes(
        tmp.path(),
        &[
            ('a', "Anna Officer", "officer", "anna.cred"),
            ('a', "Carl Officer", "officer", "carl.cred"),
            ('b', "Bruno Officer", "officer", "bruno.cred"),
        ],
    );
    runtime().block_on(async {
        // B is down: what A's officers send waits in A's outbox.
        let na = start(a.clone()).await;
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        let carl = Client::connect(&a.join("carl.cred"), na.local_addr)
            .await
            .expect("carl");
        let (r, by_anna) = common::try_send(&anna, "cert-b", "written by the thief").await;
        assert!(matches!(r, Response::Send(_)), "{r:?}");
        let (r, by_carl) = common::try_send(&carl, "cert-b", "written by Carl").await;
        assert!(matches!(r, Response::Send(_)), "{r:?}");

        // Anna's key is revoked as compromised since ten minutes ago.
        hotline_node::revoke::revoke(&a, "Anna Officer", Some("10m"), "laptop stolen")
            .expect("revoke");
        na.reload().await.expect("reload");
        let s = wait_state(&carl, by_anna, |s| s == "cancelled").await;
        assert_eq!(s.summary.expect("summary").state, "cancelled");

        // B comes up: Carl's message arrives, Anna's never does.
        let nb = start(b.clone()).await;
        wait_state(&carl, by_carl, |s| s == "delivered").await;
        let bruno = Client::connect(&b.join("bruno.cred"), nb.local_addr)
            .await
            .expect("bruno");
        match common::show(&bruno, by_anna).await {
            r @ Response::Error(_) => assert_eq!(
                common::error_code(&r),
                Some(hotline_protocol::wire::OperatorErrorCode::NotFound)
            ),
            other => panic!("the withdrawn message reached B: {other:?}"),
        }
        drop((anna, carl, bruno));
        nb.shutdown().await;
        na.shutdown().await;
    });
}
