//! A new TLS key reaches the peer before it is used (SPEC.md §3.6.1, §4.4.4), in the
//! deterministic harness: the rotating node sends its new bundle in a BundleUpdate, the peer
//! accepts the new key beside the old one and says so (BundleAccepted), the node switches, and
//! the peer drops the old key when a connection shows the new one. The checks a receiver makes
//! of both frames.

use hotline_protocol::CloseCode;
use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::frame::{self, FrameType};
use hotline_protocol::hello::Offer;
use hotline_protocol::identity::{EncryptionKeypair, IdentityKey};
use hotline_protocol::session::{Config, Event, StreamId};
use hotline_protocol::sim::{Pair, TestRng};
use hotline_protocol::time::DAY;
use hotline_protocol::wire;
use prost::Message;

fn v1() -> Config {
    Config {
        offer: Offer {
            versions: vec![1],
            ..Offer::default()
        },
        ..Config::default()
    }
}

#[test]
fn a_new_tls_key_is_accepted_before_it_is_used_and_the_old_one_dropped_after() {
    let mut p = Pair::new(1, Config::default());
    let mut rng = TestRng::new(2);
    p.connect();
    p.run_for(100);
    let old = p.a.tls_spki;
    let at = p.now;
    let new = p.a.rotate_tls(at, &mut rng);
    // Not switched yet: the bundle is on its way.
    assert_eq!(p.a.tls_spki, old);
    p.run_for(1_000);
    // B holds the new bundle and accepts both keys; A was told and switched.
    assert_eq!(p.b.peer_pins, vec![old, new]);
    assert_eq!(p.a.tls_spki, new);
    assert!(p.b.session.is_up(), "the link stayed up");
    // The next connection shows the new key: B drops the old one.
    p.disconnect();
    p.connect();
    p.run_for(1_000);
    assert!(p.a.session.is_up());
    assert_eq!(p.b.peer_pins, vec![new]);
    assert_eq!(p.tls_refusals, 0);
    // The old key no longer opens a connection.
    p.disconnect();
    p.a.tls_spki = old;
    p.connect();
    assert_eq!(p.tls_refusals, 1);
    assert!(!p.a.session.is_up());
}

#[test]
fn without_the_peers_acceptance_the_old_key_stays_in_use() {
    // A version 1 link carries no BundleUpdate: the node never switches.
    let mut p = Pair::new(3, v1());
    let mut rng = TestRng::new(4);
    p.connect();
    p.run_for(100);
    let old = p.a.tls_spki;
    let at = p.now;
    let _ = p.a.rotate_tls(at, &mut rng);
    p.run_for(5_000);
    assert_eq!(p.a.tls_spki, old);
    assert!(p.a.next_tls.is_some());
    p.disconnect();
    p.connect();
    p.run_for(1_000);
    assert!(p.a.session.is_up() && p.tls_refusals == 0);
}

#[test]
fn bundle_frames_are_checked_and_rate_limited() {
    let mut rng = TestRng::new(5);
    let bundle_of = |id: &IdentityKey, created: u64| {
        let key = EncryptionKeypair::generate(id, created, created + DAY, &mut TestRng::new(9));
        PeerBundle::create(id, "x", [1; 32], &[key.certificate], &[], created)
            .expect("bundle")
            .bytes()
            .clone()
    };
    let update = |bundle| wire::BundleUpdate { bundle }.encode_to_vec();
    // On a version 1 link: UNEXPECTED_FRAME.
    let mut p = Pair::new(6, v1());
    p.connect();
    p.run_for(100);
    let own = bundle_of(&p.a.identity, p.now);
    inject(&mut p, FrameType::BundleUpdate, &update(own));
    assert_eq!(closes(&p), [CloseCode::UnexpectedFrame]);
    // Another node's bundle, bytes that are no bundle, a digest of 31 bytes: MALFORMED_FRAME.
    let stranger = IdentityKey::generate(&mut rng);
    let short = wire::BundleAccepted {
        bundle_sha256: vec![0; 31].into(),
    }
    .encode_to_vec();
    for (ty, payload) in [
        (FrameType::BundleUpdate, update(bundle_of(&stranger, 1))),
        (FrameType::BundleUpdate, update(vec![1, 2, 3].into())),
        (FrameType::BundleAccepted, short),
    ] {
        let mut p = Pair::new(7, Config::default());
        p.connect();
        p.run_for(100);
        inject(&mut p, ty, &payload);
        assert_eq!(closes(&p), [CloseCode::MalformedFrame], "{ty:?}");
    }
    // Four frames at once are taken; the fifth within the minute is RATE_LIMITED.
    let mut p = Pair::new(8, Config::default());
    p.connect();
    p.run_for(100);
    for i in 0..5 {
        let b = bundle_of(&p.a.identity, p.now + i);
        inject(&mut p, FrameType::BundleUpdate, &update(b));
        if i < 4 {
            assert!(closes(&p).is_empty(), "frame {i} refused");
        }
    }
    assert_eq!(closes(&p), [CloseCode::RateLimited]);
    let taken =
        p.b.events
            .iter()
            .filter(|e| matches!(e, Event::PeerBundle(_)))
            .count();
    assert_eq!(taken, 4);
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

/// Hands B a control frame as if A had sent it, and runs.
fn inject(p: &mut Pair, ty: FrameType, payload: &[u8]) {
    let bytes = frame::encode(ty, payload);
    let mono = p.mono();
    p.b.session
        .handle_data(mono, StreamId::Control, &bytes, false);
    p.run_for(10);
}
