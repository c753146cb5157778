//! Revocation of officer keys with a compromise time (SPEC.md §4.6), in the deterministic
//! harness: a revocation reaches the peer over a version 2 link (and again on each new
//! connection), the peer then refuses envelopes signed by the revoked key after the cutoff
//! with REVOKED_KEY and still accepts those sealed before it; the checks a receiver makes of a
//! Revocations frame.

use hotline_protocol::content::Precedence;
use hotline_protocol::frame::{self, FrameType};
use hotline_protocol::hello::Offer;
use hotline_protocol::identity::IdentityKey;
use hotline_protocol::revocation::{self, Revocation, RevokedKind, Standing};
use hotline_protocol::session::{Config, Event, MAX_REVOCATIONS, StreamId};
use hotline_protocol::sim::{Pair, TestRng, is_rejected_with, receipt_kinds};
use hotline_protocol::{CloseCode, RejectReason};

fn revoke(p: &Pair, since: Option<u64>) -> Revocation {
    Revocation::issue(
        &p.a.identity,
        RevokedKind::Officer,
        *p.a.officer.credential().officer_key(),
        p.now,
        since,
        "laptop stolen",
    )
    .expect("issue")
}

fn revocation_frames(p: &Pair) -> usize {
    p.b.events
        .iter()
        .filter(|e| matches!(e, Event::PeerRevocations(_)))
        .count()
}

#[test]
fn a_revoked_officer_key_is_refused_after_its_compromise_and_accepted_before() {
    let mut p = Pair::new(1, Config::default());
    let mut rng = TestRng::new(2);
    p.connect();
    p.run_for(100);
    // Sealed now (before the compromise time set below), held back by the network.
    p.faults.drop = 1.0;
    let at = p.now;
    let early =
        p.a.send(at, &mut rng, "before the theft", Precedence::Flash);
    p.run_for(60_000);
    p.faults.drop = 0.0;
    p.disconnect();
    // The laptop is stolen a minute later; the node revokes the key an hour after that.
    let stolen_at = p.now;
    p.run_for(3_600_000);
    let r = revoke(&p, Some(stolen_at));
    let mono = p.mono();
    assert_eq!(
        p.a.session.set_revocations(mono, vec![r.clone()]),
        0,
        "link down"
    );
    // Sealed after the compromise (by the thief, in the window before the revocation).
    let at = p.now;
    let late = p.a.send(at, &mut rng, "after the theft", Precedence::Flash);
    p.connect();
    p.run_for(5_000);
    assert_eq!(p.b.peer_revocations, vec![r.clone()]);
    assert_eq!(receipt_kinds(&p.a, &early), ["DELIVERED"]);
    let late_receipts = &p.a.receipts[&late];
    assert!(
        late_receipts
            .iter()
            .any(|rc| is_rejected_with(rc.kind(), RejectReason::RevokedKey)),
        "{:?}",
        receipt_kinds(&p.a, &late)
    );
    assert!(p.b.inbox.contains_key(&early) && !p.b.inbox.contains_key(&late));
    // How each signature stands, for show and verify.
    let key = p.a.officer.credential().officer_key().to_vec();
    let standing = |t| {
        revocation::standing(
            &p.b.peer_revocations,
            &p.a.identity.id(),
            RevokedKind::Officer,
            &key,
            t,
        )
    };
    let created = p.b.inbox[&early].envelope.header().created;
    assert!(matches!(
        standing(created),
        Standing::BeforeCutoff {
            compromised: true,
            ..
        }
    ));
    assert!(!standing(stolen_at).counts());
}

#[test]
fn revocations_are_sent_again_on_each_connection_and_only_once_on_one() {
    let mut p = Pair::new(3, Config::default());
    p.connect();
    p.run_for(100);
    let r = revoke(&p, None);
    let mono = p.mono();
    assert_eq!(p.a.session.set_revocations(mono, vec![r.clone()]), 1);
    p.run_for(1_000);
    assert_eq!(revocation_frames(&p), 1);
    // Nothing new: nothing sent.
    let mono = p.mono();
    assert_eq!(p.a.session.set_revocations(mono, vec![r.clone()]), 0);
    p.disconnect();
    p.connect();
    p.run_for(1_000);
    assert_eq!(
        revocation_frames(&p),
        2,
        "not sent again on the new connection"
    );
    assert_eq!(p.b.peer_revocations, vec![r], "kept once");
    // A retirement (no compromise): signatures before it count, after it do not.
    let key = p.a.officer.credential().officer_key().to_vec();
    let s = revocation::standing(
        &p.b.peer_revocations,
        &p.a.identity.id(),
        RevokedKind::Officer,
        &key,
        p.now,
    );
    assert!(matches!(
        s,
        Standing::AfterCutoff {
            compromised: false,
            ..
        }
    ));
}

#[test]
fn a_version_1_link_gets_no_revocations_and_refuses_the_frame() {
    let v1 = Config {
        offer: Offer {
            versions: vec![1],
            ..Offer::default()
        },
        ..Config::default()
    };
    let mut p = Pair::new(5, v1);
    p.connect();
    p.run_for(100);
    let r = revoke(&p, None);
    let mono = p.mono();
    assert_eq!(p.a.session.set_revocations(mono, vec![r.clone()]), 0);
    p.run_for(1_000);
    assert!(p.b.peer_revocations.is_empty());
    inject(&mut p, &revocation::frame_payload(&[r]));
    assert_eq!(closes(&p), [CloseCode::UnexpectedFrame]);
}

#[test]
fn a_revocations_frame_is_checked_and_rate_limited() {
    let mut rng = TestRng::new(7);
    // Issued by another node: MALFORMED_FRAME.
    let mut p = Pair::new(8, Config::default());
    p.connect();
    p.run_for(100);
    let stranger = IdentityKey::generate(&mut rng);
    let forged =
        Revocation::issue(&stranger, RevokedKind::Officer, [9; 32], p.now, None, "").expect("r");
    inject(&mut p, &revocation::frame_payload(&[forged]));
    assert_eq!(closes(&p), [CloseCode::MalformedFrame]);
    // Empty: MALFORMED_FRAME.
    let mut p = Pair::new(9, Config::default());
    p.connect();
    p.run_for(100);
    inject(&mut p, &revocation::frame_payload(&[]));
    assert_eq!(closes(&p), [CloseCode::MalformedFrame]);
    // 64 frames at once are taken (every revocation a node may have); the 65th within the
    // minute is RATE_LIMITED.
    let mut p = Pair::new(10, Config::default());
    p.connect();
    p.run_for(100);
    let frames = MAX_REVOCATIONS / revocation::MAX_PER_FRAME;
    for i in 0..=frames {
        let r = Revocation::issue(
            &p.a.identity,
            RevokedKind::Officer,
            [i as u8; 32],
            p.now,
            None,
            "",
        )
        .expect("r");
        inject(&mut p, &revocation::frame_payload(&[r]));
        if i < frames {
            assert!(closes(&p).is_empty(), "frame {i} refused");
        }
    }
    assert_eq!(closes(&p), [CloseCode::RateLimited]);
}

fn closes(p: &Pair) -> Vec<CloseCode> {
    p.b.events
        .iter()
        .filter_map(|e| match e {
            Event::LinkDown { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

/// Hands B a Revocations frame as if A had sent it, and runs.
fn inject(p: &mut Pair, payload: &[u8]) {
    let bytes = frame::encode(FrameType::Revocations, payload);
    let mono = p.mono();
    p.b.session
        .handle_data(mono, StreamId::Control, &bytes, false);
    p.run_for(10);
}
