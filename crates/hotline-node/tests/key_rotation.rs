//! Encryption keys rotate on running nodes (SPEC.md §4.3.4, §4.3.5): a key made with
//! `hotlined keys rotate` while both nodes run is announced in a KeyUpdate frame without the
//! link going down, the peer seals to it from then on, messages sent before, during and after
//! arrive once each, and the peer remembers the new key across its own restart.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{Client, runtime, show, start, status, two_nodes, wait_state};
use hotline_protocol::envelope::Envelope;
use hotline_protocol::wire::{self, operator_request::Request, operator_response::Response};
use hotline_transport::material::Material;

/// The key id a message's envelope at `c`'s node is sealed to.
async fn sealed_to(c: &Client, id: [u8; 16]) -> [u8; 16] {
    match show(c, id).await {
        Response::Show(s) => {
            Envelope::parse(s.envelope)
                .expect("envelope")
                .header()
                .recipient_key_id
        }
        other => panic!("{other:?}"),
    }
}

fn newest_key(dir: &Path) -> [u8; 16] {
    Material::load(dir).expect("material").encryption[0]
        .certificate
        .id()
}

/// The one link of `c`'s node.
async fn link(c: &Client) -> wire::LinkStatus {
    status(c).await.links.into_iter().next().expect("a link")
}

async fn wait_up(c: &Client) -> wire::LinkStatus {
    let t0 = Instant::now();
    loop {
        let l = link(c).await;
        if l.up {
            return l;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "link never up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_key_rotated_on_a_running_node_is_announced_and_sealed_to_without_a_reconnection() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = two_nodes(
        tmp.path(),
        &[
            ('a', "Anna Officer", "officer", "anna.cred"),
            ('b', "Bruno Officer", "officer", "bruno.cred"),
        ],
    );
    let first = newest_key(&a);
    runtime().block_on(async {
        let na = start(a.clone()).await;
        let nb = start(b.clone()).await;
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        let bruno = Client::connect(&b.join("bruno.cred"), nb.local_addr)
            .await
            .expect("bruno");
        wait_up(&bruno).await;

        // Before: sealed to A's first key.
        let before = common::send_ok(&bruno, "cert-a", "before the rotation").await;
        wait_state(&bruno, before, |s| s == "delivered").await;
        assert_eq!(sealed_to(&bruno, before).await, first);
        // The dial race of the start is over (SPEC.md §3.9) once a message went through.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let up = wait_up(&bruno).await;
        // B exports when the TLS certificate A presented lapses (800 days from `init`).
        let gauge =
            "hotline_key_expiry_timestamp_seconds{kind=\"peer_tls_certificate\",name=\"cert-a\"} ";
        let at = nb
            .metrics_text()
            .lines()
            .find_map(|l| l.strip_prefix(gauge).and_then(|v| v.parse::<u64>().ok()));
        let in_800_days = (hotline_transport::now_ms() + 800 * hotline_protocol::time::DAY) / 1000;
        assert!(
            at.is_some_and(|v| v.abs_diff(in_800_days) < 86_400),
            "{}",
            nb.metrics_text()
        );

        // The administrator of A makes a new key while both run.
        hotline_node::keys::rotate(&a).expect("keys rotate");
        let second = newest_key(&a);
        assert_ne!(second, first);
        let during = common::send_ok(&bruno, "cert-a", "during the rotation").await;

        // Within a few key checks, B seals to the new key.
        let t0 = Instant::now();
        let after = loop {
            let id = common::send_ok(&bruno, "cert-a", "after the rotation").await;
            if sealed_to(&bruno, id).await == second {
                break id;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "B never sealed to A's new key"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        for id in [during, after] {
            wait_state(&bruno, id, |s| s == "delivered").await;
        }
        // The link never went down: the same UP since the start.
        let now = wait_up(&bruno).await;
        assert_eq!(now.since_ms, up.since_ms, "the link was re-established");
        // A holds every message once.
        let inbox = match anna
            .call(Request::List(wire::ListRequest {
                incoming: true,
                limit: 1000,
                ..Default::default()
            }))
            .await
            .expect("list")
        {
            Response::List(l) => l.messages,
            other => panic!("{other:?}"),
        };
        let mut ids: Vec<_> = inbox.iter().map(|m| m.message_id.to_vec()).collect();
        let n = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), n, "a message listed twice");
        for id in [before, during, after] {
            assert!(ids.contains(&id.to_vec()), "a message missing at A");
        }

        // A stops; B restarts and, with A down, still seals to A's new key: it remembered
        // what A announced (SPEC.md §4.3.5), not only A's bundle.
        drop(anna);
        na.shutdown().await;
        drop(bruno);
        nb.shutdown().await;
        let nb = start(b.clone()).await;
        let bruno = Client::connect(&b.join("bruno.cred"), nb.local_addr)
            .await
            .expect("bruno");
        let offline = common::send_ok(&bruno, "cert-a", "while A is down").await;
        assert_eq!(sealed_to(&bruno, offline).await, second);
        nb.shutdown().await;
    });
}

#[test]
fn nodes_started_a_year_after_init_renew_their_keys_and_link_without_a_manual_step() {
    use hotline_node::{commands, config, operator};
    use hotline_protocol::time::DAY;
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (a_addr, b_addr) = (
        format!("127.0.0.1:{}", common::free_udp_port()),
        format!("127.0.0.1:{}", common::free_udp_port()),
    );
    // Set up a year and a day ago, and not run since: every encryption key has expired, and
    // so have the ones in the bundles each side pinned.
    let then = hotline_transport::now_ms() - 366 * DAY;
    commands::init_at(&a, "CERT-A", &a_addr, None, then).expect("init a");
    commands::init_at(&b, "CERT-B", &b_addr, None, then).expect("init b");
    commands::peer_add(&a, &b.join(config::BUNDLE_FILE), &b_addr, Some("cert-b")).expect("pin");
    commands::peer_add(&b, &a.join(config::BUNDLE_FILE), &a_addr, Some("cert-a")).expect("pin");
    // Officers' credentials lapse by design (a year by default): these are this year's.
    operator::add(&a, "Anna Officer", "officer", &a.join("anna.cred")).expect("anna");
    operator::add(&b, "Bruno Officer", "officer", &b.join("bruno.cred")).expect("bruno");
    let expired = newest_key(&a);
    runtime().block_on(async {
        let na = start(a.clone()).await;
        let nb = start(b.clone()).await;
        // Each node made a new key at start and destroyed the old secret (past retention).
        let keys = Material::load(&a).expect("a").encryption;
        assert_eq!(keys.len(), 1);
        assert_ne!(keys[0].certificate.id(), expired);
        assert!(keys[0].certificate.valid_at(hotline_transport::now_ms()));
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        let bruno = Client::connect(&b.join("bruno.cred"), nb.local_addr)
            .await
            .expect("bruno");
        wait_up(&anna).await;
        // Messages both ways, sealed to the keys each side learnt from the other's Hello.
        let to_b = common::send_ok(&anna, "cert-b", "a year on, to B").await;
        let to_a = common::send_ok(&bruno, "cert-a", "a year on, to A").await;
        wait_state(&anna, to_b, |s| s == "delivered").await;
        wait_state(&bruno, to_a, |s| s == "delivered").await;
        assert_eq!(sealed_to(&bruno, to_a).await, newest_key(&a));
        assert_eq!(sealed_to(&anna, to_b).await, newest_key(&b));
        na.shutdown().await;
        nb.shutdown().await;
    });
    // The audit trail says so: the new key made, the old secret destroyed (SPEC.md §4.3.4).
    use hotline_node::store::Store;
    let mut store =
        hotline_node::store::sqlite::SqliteStore::open(&a.join(config::DB_FILE)).expect("db");
    let kinds: Vec<String> = store
        .recent_audit(100)
        .expect("audit")
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for k in ["encryption_key_created", "encryption_key_destroyed"] {
        assert!(kinds.iter().any(|x| x == k), "no {k} in {kinds:?}");
    }
}

#[test]
fn a_changed_keys_section_applies_to_the_running_node() {
    use hotline_protocol::time::DAY;
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, _b) = two_nodes(tmp.path(), &[]);
    runtime().block_on(async {
        let na = start(a.clone()).await;
        assert_eq!(Material::load(&a).expect("a").encryption.len(), 1);
        // Longer-lived keys, renewed 45 days ahead: the 30-day key `init` made is due now.
        let cfg_path = a.join(hotline_node::config::CONFIG_FILE);
        let toml = std::fs::read_to_string(&cfg_path).expect("cfg");
        let toml = toml
            .replace(
                "encryption_lifetime_days = 30",
                "encryption_lifetime_days = 60",
            )
            .replace("encryption_renew_days = 10", "encryption_renew_days = 45");
        std::fs::write(&cfg_path, toml).expect("write");
        let t0 = Instant::now();
        loop {
            let keys = Material::load(&a).expect("a").encryption;
            if keys.len() == 2 {
                let c = &keys[0].certificate;
                let life = c.not_after() - c.not_before();
                assert!(life.abs_diff(60 * DAY) < 120_000, "{life}");
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the running node did not apply [keys]"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        na.shutdown().await;
    });
}
