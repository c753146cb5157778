//! Shutdown is prompt and bounded (`hotline_node::daemon::SHUTDOWN_BOUND`), closes the link so
//! the peer sees it at once, commits the store's last write, and frees the UDP port.
//!
//! Timed assertions carry a margin over the bound: the bound is made of timeouts, so only a
//! starved test thread could exceed it. Before the bound existed, a node dialing an absent
//! peer took 3.0 s to shut down (its unanswered dial kept the endpoint for three 1 s PTOs),
//! which these tests refuse.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{runtime, start, two_nodes};
use hotline_node::config;
use hotline_node::daemon::{Node, SHUTDOWN_BOUND};
use hotline_node::store::Store;
use hotline_node::store::sqlite::SqliteStore;

/// What a shutdown may take here: the bound plus half a second for a loaded test machine.
const LIMIT: Duration = SHUTDOWN_BOUND.saturating_add(Duration::from_millis(500));

/// Shuts `node` down; returns how long it took, after checking the UDP port is free.
async fn timed_shutdown(node: Node) -> Duration {
    let addr = node.local_addr;
    let t0 = Instant::now();
    node.shutdown().await;
    let took = t0.elapsed();
    eprintln!("shutdown of the node at {addr} took {took:?}");
    std::net::UdpSocket::bind(addr)
        .unwrap_or_else(|e| panic!("{addr} still in use after shutdown: {e}"));
    took
}

/// The newest audit row of the node in `dir` (read after it stopped).
fn last_audit(dir: &Path) -> String {
    let mut store = SqliteStore::open(&dir.join(config::DB_FILE)).expect("db");
    store
        .recent_audit(1)
        .expect("audit")
        .first()
        .map(|e| e.kind.clone())
        .unwrap_or_default()
}

async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

#[test]
fn shutdown_is_prompt_while_dialing_an_absent_peer() {
    let root = tempfile::tempdir().expect("tmp");
    let (a, _b) = two_nodes(root.path(), &[]);
    runtime().block_on(async {
        for round in 0..2 {
            let node = start(a.clone()).await;
            // Long enough for the first dial to be under way (B never answers).
            tokio::time::sleep(Duration::from_millis(300)).await;
            let took = timed_shutdown(node).await;
            assert!(
                took < LIMIT,
                "round {round}: shutdown took {took:?}, bound {SHUTDOWN_BOUND:?}"
            );
            assert_eq!(
                last_audit(&a),
                "stopped",
                "the last write was not committed"
            );
        }
    });
}

#[test]
fn shutdown_is_prompt_with_the_link_up_and_the_peer_sees_the_close() {
    let root = tempfile::tempdir().expect("tmp");
    let (a, b) = two_nodes(root.path(), &[]);
    runtime().block_on(async {
        let na = start(a.clone()).await;
        let nb = start(b.clone()).await;
        assert!(
            wait_until(Duration::from_secs(20), || na.link_up("cert-b")
                && nb.link_up("cert-a"))
            .await,
            "link never came up"
        );
        let took = timed_shutdown(na).await;
        assert!(took < LIMIT, "A's shutdown took {took:?}");
        assert_eq!(last_audit(&a), "stopped");
        // B learns from A's close, not from its liveness window (15 s).
        assert!(
            wait_until(Duration::from_secs(3), || !nb.link_up("cert-a")).await,
            "B did not see A's close"
        );
        // B is now redialing A, which is gone.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let took = timed_shutdown(nb).await;
        assert!(took < LIMIT, "B's shutdown took {took:?}");
        assert_eq!(last_audit(&b), "stopped");
    });
}
