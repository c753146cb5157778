//! Gap tracking against a peer's implausible `last_sequence_sent` (SPEC.md §10.3): a claim
//! beyond the bound is capped for gap tracking and flagged once, never reported raw.
//!
//! The peer's claim is made real the way `tests/session.rs` makes a lost sequence: A sends an
//! envelope with the sequence to claim while every envelope frame is dropped, so only its
//! Heartbeats reach B, and they carry that sequence as `last_sequence_sent`.

use hotline_protocol::content::Precedence;
use hotline_protocol::session::{Config, Event};
use hotline_protocol::sim::Pair;

/// SPEC.md §10.3's bound, the default of [`Config::max_claim_ahead`].
const BOUND: u64 = 65_536;

fn up_pair(seed: u64, config: Config) -> Pair {
    let mut p = Pair::new(seed, config);
    p.connect();
    p.run_for(100);
    assert!(
        p.a.session.is_up() && p.b.session.is_up(),
        "link did not come up"
    );
    p
}

/// Makes A claim `sequence` in its Heartbeats without B receiving it, for `ms` of time.
fn claim(p: &mut Pair, sequence: u64, ms: u64) {
    p.faults.drop = 1.0;
    let now = p.now;
    p.a.send_with_sequence(now, &mut p.rng, "claimed", Precedence::Routine, sequence);
    p.run_for(ms);
}

/// B's `ImplausibleClaim` events, as (claimed, capped).
fn flags(p: &Pair) -> Vec<(u64, u64)> {
    p.b.events
        .iter()
        .filter_map(|e| match e {
            Event::ImplausibleClaim { claimed, capped } => Some((*claimed, *capped)),
            _ => None,
        })
        .collect()
}

/// The missing sequences B's gap events reported, one total per event.
fn reported_totals(p: &Pair) -> Vec<u64> {
    p.b.events
        .iter()
        .filter_map(|e| match e {
            Event::GapDetected { missing } => Some(missing.iter().map(|(a, b)| b - a + 1).sum()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_huge_claim_is_capped_and_flagged_once() {
    for (seed, huge) in [(1, 1u64 << 63), (2, u64::MAX)] {
        let mut p = up_pair(seed, Config::default());
        // Sequence 1 arrives; then the claim, repeated by a dozen Heartbeats.
        let now = p.now;
        p.a.send(now, &mut p.rng, "one", Precedence::Routine);
        p.run_for(1_000);
        assert_eq!(p.b.session.status().received_through, 1);
        claim(&mut p, huge, 60_000);

        assert_eq!(
            flags(&p),
            vec![(huge, 1 + BOUND)],
            "claim {huge}: not flagged exactly once"
        );
        let st = p.b.session.status();
        assert_eq!(
            st.gaps,
            vec![(2, 1 + BOUND)],
            "claim {huge}: gaps not capped"
        );
        assert_eq!(st.claim_capped, Some(huge));
        assert_eq!(st.peer_last_sent, huge, "status shows the raw claim");
        let totals = reported_totals(&p);
        assert!(!totals.is_empty(), "claim {huge}: no gap reported");
        assert!(
            totals.iter().all(|&t| t <= BOUND),
            "claim {huge}: a gap event reported {totals:?} missing"
        );
    }
}

#[test]
fn a_claim_at_the_bound_is_believed_and_one_past_it_is_capped() {
    let mut p = up_pair(3, Config::default());
    claim(&mut p, BOUND, 30_000);
    assert_eq!(flags(&p), vec![]);
    let st = p.b.session.status();
    assert_eq!(st.gaps, vec![(1, BOUND)]);
    assert_eq!(st.claim_capped, None);

    let mut p = up_pair(4, Config::default());
    claim(&mut p, BOUND + 1, 30_000);
    assert_eq!(flags(&p), vec![(BOUND + 1, BOUND)]);
    let st = p.b.session.status();
    assert_eq!(st.gaps, vec![(1, BOUND)]);
    assert_eq!(st.claim_capped, Some(BOUND + 1));
}

#[test]
fn a_normal_claim_is_reported_as_a_gap_and_not_flagged() {
    let mut p = up_pair(5, Config::default());
    claim(&mut p, 5, 30_000);
    assert_eq!(flags(&p), vec![]);
    let st = p.b.session.status();
    assert_eq!(st.gaps, vec![(1, 5)]);
    assert_eq!(st.claim_capped, None);
    assert_eq!(reported_totals(&p), vec![5]);
}

#[test]
fn a_raised_claim_is_not_flagged_again_until_the_claims_were_believed() {
    let config = Config {
        max_claim_ahead: 10,
        ..Config::default()
    };
    let mut p = up_pair(6, config);
    claim(&mut p, 20, 20_000);
    assert_eq!(flags(&p), vec![(20, 10)]);
    assert_eq!(p.b.session.status().gaps, vec![(1, 10)]);

    // Raising the claim while it stands capped neither flags it again nor moves the gaps.
    claim(&mut p, 25, 20_000);
    assert_eq!(flags(&p), vec![(20, 10)], "flagged again while capped");
    let st = p.b.session.status();
    assert_eq!(st.gaps, vec![(1, 10)]);
    assert_eq!(st.claim_capped, Some(25));

    // The envelopes get through on retransmission: the claim is within the bound again, and
    // the sequences it implies are gaps as usual.
    p.faults.drop = 0.0;
    p.run_for(120_000);
    let st = p.b.session.status();
    assert_eq!(st.claim_capped, None);
    assert_eq!(st.gaps, vec![(1, 19), (21, 24)]);

    // A new excursion beyond the bound is flagged again.
    claim(&mut p, 100, 20_000);
    assert_eq!(flags(&p), vec![(20, 10), (100, 35)]);
    assert_eq!(p.b.session.status().claim_capped, Some(100));
}
