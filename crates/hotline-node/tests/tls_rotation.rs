//! A new TLS key on running nodes (SPEC.md §3.6.1, §4.4.4): `hotlined keys rotate --tls` at A
//! while both run; A announces the new key in a bundle update, B holds it beside the old one
//! and says so, A switches, the link stays up, messages before, during and after arrive once
//! each, and B drops the old key once a new connection shows the new one.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Client, runtime, start, status, two_nodes, wait_state};
use hotline_protocol::bundle::PeerBundle;
use hotline_transport::material::Material;

fn tls_pin(dir: &Path) -> [u8; 32] {
    Material::load(dir).expect("material").tls.spki_sha256()
}

/// Polls `check` every 100 ms for 30 s.
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let t0 = Instant::now();
    while !check().await {
        assert!(t0.elapsed() < Duration::from_secs(30), "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_tls_key_rotated_on_a_running_node_reaches_the_peer_before_it_is_used() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = two_nodes(
        tmp.path(),
        &[
            ('a', "Anna Officer", "officer", "anna.cred"),
            ('b', "Bruno Officer", "officer", "bruno.cred"),
        ],
    );
    let old = tls_pin(&a);
    let a_id = Material::load(&a).expect("a").identity.id();
    runtime().block_on(async {
        let na = start(a.clone()).await;
        let nb = start(b.clone()).await;
        let bruno = Client::connect(&b.join("bruno.cred"), nb.local_addr)
            .await
            .expect("bruno");
        let before = common::send_ok(&bruno, "cert-a", "before the rotation").await;
        wait_state(&bruno, before, |s| s == "delivered").await;
        // The dial race of the start is over (SPEC.md §3.9) once a message went through.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let up_since = status(&bruno).await.links[0].since_ms;

        // A's administrator makes a new TLS key while both run.
        hotline_node::keys::rotate_tls(&a, false).expect("rotate --tls");
        let during = common::send_ok(&bruno, "cert-a", "during the rotation").await;
        // B holds A's new bundle, with the old key still accepted; A switches to the new key.
        until("A switches to its new TLS key", async || tls_pin(&a) != old).await;
        let new = tls_pin(&a);
        let held = nb
            .with_store(move |s| {
                let bundle = s
                    .peers()
                    .ok()?
                    .into_iter()
                    .find(|p| p.identity == a_id)?
                    .bundle;
                Some((bundle, s.previous_pin(&a_id).ok()?))
            })
            .await
            .flatten()
            .expect("B's record of A");
        let bundle = PeerBundle::from_bytes(&held.0).expect("bundle");
        assert_eq!(bundle.tls_spki_sha256(), &new);
        assert_eq!(
            held.1,
            Some(old),
            "B no longer accepts A's old key meanwhile"
        );
        // The bundle file A hands out carries the new key once A switched.
        until("A's bundle file carries the new key", async || {
            let text = std::fs::read(a.join(hotline_node::config::BUNDLE_FILE)).expect("bundle");
            let file = PeerBundle::from_armored(&text).expect("bundle file");
            file.tls_spki_sha256() == &new
        })
        .await;

        let after = common::send_ok(&bruno, "cert-a", "after the switch").await;
        for id in [during, after] {
            wait_state(&bruno, id, |s| s == "delivered").await;
        }
        // The link never went down.
        let link = status(&bruno).await.links[0].clone();
        assert!(link.up);
        assert_eq!(link.since_ms, up_since, "the link was re-established");

        // B restarts: the new connection shows A's new key, which B accepts, and B drops the
        // old one.
        drop(bruno);
        nb.shutdown().await;
        let nb = start(b.clone()).await;
        let bruno = Client::connect(&b.join("bruno.cred"), nb.local_addr)
            .await
            .expect("bruno");
        let later = common::send_ok(&bruno, "cert-a", "on a new connection").await;
        wait_state(&bruno, later, |s| s == "delivered").await;
        until("B drops A's old TLS key", async || {
            nb.with_store(move |s| s.previous_pin(&a_id).ok())
                .await
                .flatten()
                == Some(None)
        })
        .await;
        // A holds each message once.
        let inbox = na
            .with_store(|s| s.inbox(100))
            .await
            .expect("store")
            .expect("inbox");
        for id in [before, during, after, later] {
            assert_eq!(inbox.iter().filter(|m| m.message_id == id).count(), 1);
        }
        drop(bruno);
        nb.shutdown().await;
        na.shutdown().await;
    });
}
