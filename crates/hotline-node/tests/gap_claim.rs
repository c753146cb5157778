//! A peer's implausible `last_sequence_sent` (issue 13 item A8, SPEC.md §10.3), with the raw
//! peer of `raw_peer` playing node A against a real node B: B counts gaps only up to a bound
//! above what arrived, and alerts its operators once with the raw claim.

mod common;
mod raw_peer;

use std::time::Duration;

use common::{BRUNO, connect_and_watch, next_event, status, with_bruno};
use raw_peer::control::{heartbeat, link_keeping_control};
use raw_peer::{World, block_on, step};

/// How long to go on watching for an event that must not come.
const SETTLE: Duration = Duration::from_millis(700);

/// SPEC.md §10.3: A's Heartbeats claim it sent sequence 2^63; nothing arrived. Past the gap
/// grace period (10 s) B's status counts 65,536 missing sequences (the bound above what
/// arrived), not 2^63, and B alerted its operators once (Watch, audit trail) with the raw
/// claim and the cap, however often the claim is repeated.
#[test]
fn a_huge_last_sequence_sent_is_capped_in_status_and_alerted_once() {
    block_on(async {
        let w = World::start_with(with_bruno).await;
        let (bruno, mut watch) = step(
            "operator connection",
            connect_and_watch(&w.b_dir.join(BRUNO), w.b_addr),
        )
        .await;
        let (link, mut control) = link_keeping_control(&w).await;
        let huge = 1u64 << 63;
        heartbeat(&mut control, huge, 0).await;
        let e = next_event(&mut watch, "gap_claim_capped", raw_peer::STEP)
            .await
            .expect("B alerts its operators");
        assert_eq!(e.peer, "cert-a");
        assert!(
            e.detail.contains(&huge.to_string()) && e.detail.contains("65536"),
            "{e:?}"
        );
        // The claim again, every 3 s, past the grace period (and within B's liveness window).
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(3)).await;
            heartbeat(&mut control, huge, 0).await;
        }
        assert!(
            next_event(&mut watch, "gap_claim_capped", SETTLE)
                .await
                .is_none(),
            "alerted twice"
        );
        let st = status(&bruno).await;
        let a = st
            .links
            .iter()
            .find(|l| l.peer == "cert-a")
            .expect("link to A");
        assert_eq!(a.gaps, 65_536, "gaps not capped: {a:?}");
        assert_eq!(
            a.gap_claim_capped, huge,
            "status names the raw claim: {a:?}"
        );
        let audit =
            w.b.with_store(|s| s.recent_audit(100))
                .await
                .expect("store")
                .expect("audit");
        let rows: Vec<_> = audit
            .iter()
            .filter(|e| e.kind == "gap_claim_capped")
            .collect();
        assert_eq!(rows.len(), 1, "{audit:?}");
        drop(link);
        w.stop().await;
    });
}
