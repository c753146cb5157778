//! A node whose database is restored from an older copy (issue 13 item A9, SPEC.md §10.1),
//! end to end with two in-process nodes: A sends three messages to B, then A's `hotline.db` is
//! replaced by a copy `hotlined backup` took after the first, while A ran.
//!
//! - With the high-water mark file beside it, A continues at sequence 4 as soon as it starts.
//! - With the mark lost too, a message A accepts before the link is up cannot avoid reusing a
//!   sequence (nothing tells A yet): B keeps both and raises `sequence_reused`. Once the link is
//!   up, B's `received_through` tells A, which continues above it: B never holds two messages
//!   with one sequence otherwise.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Client, draft, peer_id, random_id, runtime, send_request, start, two_nodes};
use hotline_node::config;
use hotline_node::daemon::Node;
use hotline_node::store::high_water::{HWM_FILE, HighWater};
use hotline_protocol::NodeId;
use hotline_protocol::wire::{operator_request::Request, operator_response::Response};

/// Sends a message to B; its id and sequence.
async fn send(anna: &Client, b_id: &NodeId, subject: &str) -> ([u8; 16], u64) {
    let id = random_id();
    let req = send_request(anna, id, "cert-b", b_id, &draft(subject));
    match anna.call(Request::Send(req)).await.expect("send") {
        Response::Send(s) => (id, s.sequence),
        other => panic!("{other:?}"),
    }
}

async fn delivered(anna: &Client, id: [u8; 16]) {
    common::wait_state(anna, id, |s| s == "delivered").await;
}

async fn audit(node: &Node, kind: &'static str) -> Vec<hotline_node::store::AuditEvent> {
    let mut rows = node
        .with_store(|s| s.recent_audit(1000))
        .await
        .expect("store running")
        .expect("audit");
    rows.retain(|e| e.kind == kind);
    rows
}

/// The messages B received from A, by sequence.
async fn b_holds(nb: &Node) -> BTreeMap<u64, Vec<[u8; 16]>> {
    let rows = nb
        .with_store(|s| s.inbox(1000))
        .await
        .expect("store running")
        .expect("inbox");
    let mut by_seq: BTreeMap<u64, Vec<[u8; 16]>> = BTreeMap::new();
    for r in rows {
        by_seq.entry(r.sequence).or_default().push(r.message_id);
    }
    for ids in by_seq.values_mut() {
        ids.sort();
    }
    by_seq
}

/// Puts the copy back as A's database (A is stopped): the file, and no WAL or shared memory
/// of the later database beside it.
fn restore(a: &Path, copy: &Path) {
    let db = a.join(config::DB_FILE);
    for stale in [db.with_extension("db-wal"), db.with_extension("db-shm")] {
        let _ = std::fs::remove_file(stale);
    }
    std::fs::copy(copy, &db).expect("restore the copy");
}

fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_node_restored_from_an_older_copy_does_not_reuse_the_sequences_its_peer_holds() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = two_nodes(
        tmp.path(),
        &[
            ('a', "Anna", "officer", "anna.cred"),
            ('b', "Bruno", "officer", "bruno.cred"),
        ],
    );
    let copy = tmp.path().join("hotline.db.after-first");
    runtime().block_on(async {
        let na = start(a.clone()).await;
        let nb = start(b.clone()).await;
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        let b_id = peer_id(&anna).await;
        let mut sent = Vec::new();
        for n in 1..=3 {
            let (id, seq) = send(&anna, &b_id, &format!("message {n}")).await;
            assert_eq!(seq, n);
            delivered(&anna, id).await;
            if n == 1 {
                // The backup, while A runs: `hotlined backup` (a consistent copy of the live
                // database, WAL included, mode 0600; never over an existing file).
                hotline_node::backup::backup(&a, &copy).expect("backup");
                let mode = std::fs::metadata(&copy).expect("copy").permissions();
                assert_eq!(
                    std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
                    0o600
                );
                assert!(
                    hotline_node::backup::backup(&a, &copy).is_err(),
                    "overwrote"
                );
            }
            sent.push(id);
        }
        na.shutdown().await;
        let (hw, _) = HighWater::load(&a.join(HWM_FILE)).expect("the mark");
        assert_eq!(
            hw.marks().get(&b_id),
            Some(&3),
            "written at the latest on stop"
        );

        // 1. The database is restored; the high-water mark is not.
        restore(&a, &copy);
        let na = start(a.clone()).await;
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        let (fourth, seq) = send(&anna, &b_id, "after the restore").await;
        assert_eq!(seq, 4, "continues above the high-water mark");
        delivered(&anna, fourth).await;
        let rows = audit(&na, "sequence_rollback").await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(rows[0].detail.contains("high-water mark"), "{rows:?}");
        let problems = na.with_store(|s| s.check()).await.expect("store");
        assert_eq!(problems.expect("check"), Vec::<String>::new());
        na.shutdown().await;
        nb.shutdown().await;

        // 2. Restored again, and the high-water mark is lost too; B is down for a while.
        restore(&a, &copy);
        std::fs::remove_file(a.join(HWM_FILE)).expect("remove the mark");
        let na = start(a.clone()).await;
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        let mut watch = anna.watch().await.expect("watch");
        let (early, seq) = send(&anna, &b_id, "accepted before the link is up").await;
        assert_eq!(seq, 2, "nothing can tell A yet");
        let nb = start(b.clone()).await;
        // The link comes up; B's Heartbeat says it holds 1..=4.
        let t0 = Instant::now();
        let event = loop {
            let left = Duration::from_secs(20).saturating_sub(t0.elapsed());
            match watch.next(left).await {
                Some(Response::Event(e)) if e.kind == "sequence_rollback" => break e,
                Some(_) => {}
                None => panic!("A never found the rollback"),
            }
        };
        assert_eq!(event.peer, "cert-b");
        assert!(event.detail.contains("received_through"), "{event:?}");
        let (late, seq) = send(&anna, &b_id, "after the link came up").await;
        assert_eq!(seq, 5, "continues above what B has received");
        delivered(&anna, early).await;
        delivered(&anna, late).await;
        let rows = audit(&na, "sequence_rollback").await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        let problems = na.with_store(|s| s.check()).await.expect("store");
        assert_eq!(problems.expect("check"), Vec::<String>::new());

        // B holds every message; the one collision is the early message, and B raised it.
        let mut two = vec![sent[1], early];
        two.sort();
        let expected = BTreeMap::from([
            (1, vec![sent[0]]),
            (2, two),
            (3, vec![sent[2]]),
            (4, vec![fourth]),
            (5, vec![late]),
        ]);
        assert_eq!(b_holds(&nb).await, expected);
        let rows = audit(&nb, "sequence_reused").await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].message_id, Some(early));
        assert!(rows[0].detail.contains(&hex(&sent[1])), "{rows:?}");
        na.shutdown().await;
        nb.shutdown().await;
    });
}
