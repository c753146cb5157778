//! Encryption keys that rotate by themselves (SPEC.md §4.3.4, §4.3.5), run in the deterministic
//! harness: a pair through 400 simulated days with the default key policy (and TLS keys rotated
//! every few months, §4.4.4), announcements in
//! KeyUpdate frames on a version 2 link and in the next Hello on a version 1 link, and the
//! checks a receiver makes of a KeyUpdate.

use std::collections::BTreeSet;

use hotline_protocol::CloseCode;
use hotline_protocol::content::Precedence;
use hotline_protocol::frame::{self, FrameType};
use hotline_protocol::hello::Offer;
use hotline_protocol::identity::{EncryptionKey, EncryptionKeypair, IdentityKey};
use hotline_protocol::keyring::{KeyChange, KeyPolicy, MIN_RETENTION};
use hotline_protocol::officer::{OfficerKey, Role};
use hotline_protocol::session::{Config, Event, StreamId, key_update_payload};
use hotline_protocol::sim::{Pair, SimNode, TestRng, Who};
use hotline_protocol::time::DAY;

const HOUR: u64 = DAY / 24;

/// A session config whose heartbeats are sparse enough to simulate years quickly.
fn slow_config() -> Config {
    Config {
        heartbeat_interval: 10 * 60_000,
        liveness_window: 30 * 60_000,
        ..Config::default()
    }
}

/// A pair whose keys follow `policy` from the start (the harness's own keys live a year).
fn rotating_pair(seed: u64, config: Config, policy: &KeyPolicy) -> Pair {
    let mut p = Pair::new(seed, config);
    for who in [Who::A, Who::B] {
        let now = p.now;
        let mut rng = TestRng::new(seed * 10 + who as u64);
        let node = p.node(who);
        node.keys.clear();
        assert_eq!(node.maintain_keys(now, policy, &mut rng).len(), 1);
    }
    // Each side starts out knowing the other's first key, as from its bundle.
    p.a.peer_keys = p.b.keys.iter().map(|k| k.certificate.clone()).collect();
    p.b.peer_keys = p.a.keys.iter().map(|k| k.certificate.clone()).collect();
    p
}

fn count(changes: &[KeyChange]) -> (usize, usize) {
    let made = changes
        .iter()
        .filter(|c| matches!(c, KeyChange::Created(_)))
        .count();
    (made, changes.len() - made)
}

fn key_updates_sent(node: &SimNode) -> usize {
    node.events
        .iter()
        .filter(|e| matches!(e, Event::PeerKeys(_)))
        .count()
}

#[test]
fn four_hundred_days_of_default_rotation_lose_and_duplicate_nothing() {
    let policy = KeyPolicy::default();
    let mut p = rotating_pair(400, slow_config(), &policy);
    let mut rng = TestRng::new(4000);
    let (mut made, mut destroyed) = ([0usize; 2], [0usize; 2]);
    let mut sent = [Vec::new(), Vec::new()];
    let mut tls_rotations = Vec::new();
    p.connect();
    p.run_for(1000);
    for day in 0..400u64 {
        // Keys are looked after every few hours, as hotlined's key task does.
        for slot in 0..4 {
            for (i, who) in [Who::A, Who::B].into_iter().enumerate() {
                let at = p.now;
                let changes = p.node(who).maintain_keys(at, &policy, &mut rng);
                let (m, d) = count(&changes);
                made[i] += m;
                destroyed[i] += d;
            }
            // Messages both ways, every day, at different hours.
            if slot == (day % 4) as usize {
                for (i, who) in [Who::A, Who::B].into_iter().enumerate() {
                    let at = p.now;
                    let subject = format!("day {day} from {who:?}");
                    let node = p.node(who);
                    let id = node.send(at, &mut rng, &subject, Precedence::Routine);
                    sent[i].push(id);
                }
            }
            p.run_for(6 * HOUR);
        }
        // TLS keys rotate too (SPEC.md §4.4.4): A's every 90 days, B's every 120.
        for (who, every) in [(Who::A, 90), (Who::B, 120)] {
            if day % every == every / 2 {
                let at = p.now;
                let before = p.node(who).tls_spki;
                let _ = p.node(who).rotate_tls(at, &mut rng);
                tls_rotations.push((who, before));
            }
        }
        // Officers' credentials are renewed yearly (`hotlined operator renew`).
        if day == 300 {
            for who in [Who::A, Who::B] {
                let now = p.now;
                let node = p.node(who);
                let name = node.officer.credential().name().to_owned();
                node.officer = OfficerKey::generate(
                    &node.identity,
                    &name,
                    Role::Officer,
                    now - DAY,
                    now + 365 * DAY,
                    &mut rng,
                )
                .expect("officer");
            }
        }
        // A reconnection every ten days, with something sealed while the link was down.
        if day % 10 == 9 {
            p.disconnect();
            let at = p.now;
            let id =
                p.a.send(at, &mut rng, "sealed while down", Precedence::Flash);
            sent[0].push(id);
            p.run_for(HOUR);
            p.connect();
            p.run_for(1000);
        }
    }
    p.run_for(HOUR);
    for who in [Who::A, Who::B] {
        let at = p.now;
        let _ = p.node(who).maintain_keys(at, &policy, &mut rng);
    }
    // Every TLS rotation took effect (the node switched once its peer accepted the key), and no
    // connection was ever refused for a key the peer did not accept.
    assert_eq!(p.tls_refusals, 0);
    assert_eq!(tls_rotations.len(), 4 + 3, "{tls_rotations:?}");
    assert!(p.a.next_tls.is_none() && p.b.next_tls.is_none());
    for (who, old) in &tls_rotations {
        let node = if *who == Who::A { &p.a } else { &p.b };
        assert_ne!(node.tls_spki, *old);
    }
    assert_eq!(p.b.peer_pins, vec![p.a.tls_spki]);
    assert_eq!(p.a.peer_pins, vec![p.b.tls_spki]);
    for (i, (sender, receiver)) in [(&p.a, &p.b), (&p.b, &p.a)].into_iter().enumerate() {
        // Every message arrived once and was answered DELIVERED.
        let unique: BTreeSet<_> = receiver.accept_log.iter().collect();
        assert_eq!(unique.len(), receiver.accept_log.len(), "a duplicate");
        assert_eq!(receiver.accept_log.len(), sent[i].len(), "a message lost");
        assert!(sender.all_delivered(), "a message without its receipt");
        assert!(made[i] >= 12, "only {} keys made", made[i]);
        assert!(
            destroyed[i] >= 10,
            "only {} secrets destroyed",
            destroyed[i]
        );
        // No secret is kept past its retention.
        let now = p.now;
        for k in &sender.keys {
            assert!(k.certificate.not_after() + MIN_RETENTION >= now);
        }
        // Rotation reached the peer while up: KeyUpdate frames, not only Hellos.
        assert!(key_updates_sent(receiver) >= 10);
    }
}

#[test]
fn a_version_1_peer_learns_the_new_key_from_the_next_hello() {
    let policy = KeyPolicy::default();
    let v1 = Config {
        offer: Offer {
            versions: vec![1],
            ..Offer::default()
        },
        ..Config::default()
    };
    let mut p = rotating_pair(11, v1, &policy);
    p.connect();
    p.run_for(100);
    assert_eq!(p.a.session.peer_hello().map(|h| h.version), Some(1));
    let mut rng = TestRng::new(12);
    // A rotates: no KeyUpdate on a version 1 link.
    let now = p.now;
    let mut ring = hotline_protocol::keyring::KeyRing::new(std::mem::take(&mut p.a.keys));
    let KeyChange::Created(new) = ring.rotate(&p.a.identity, now, &policy, &mut rng) else {
        panic!("no key made");
    };
    let announced = ring.announced(now);
    p.a.keys = ring.into_keys();
    assert!(!p.a.session.update_keys(p.mono(), announced));
    p.run_for(1000);
    assert!(!p.b.peer_keys.contains(&new));
    // The next connection's Hello carries it, and B seals to it.
    p.disconnect();
    p.connect();
    p.run_for(1000);
    assert!(p.b.peer_keys.contains(&new));
    let at = p.now;
    let env =
        p.b.seal(at, &mut rng, "to the new key", Precedence::Flash, 1);
    assert_eq!(env.header().recipient_key_id, new.id());
}

#[test]
fn an_envelope_sealed_to_the_previous_key_opens_after_the_switch() {
    let policy = KeyPolicy::default();
    let mut p = rotating_pair(21, Config::default(), &policy);
    p.connect();
    p.run_for(100);
    let mut rng = TestRng::new(22);
    let old = p.a.keys[0].certificate.id();
    // B seals to A's current key while the network drops everything.
    p.faults.drop = 1.0;
    let at = p.now;
    let id =
        p.b.send(at, &mut rng, "sealed before the switch", Precedence::Flash);
    assert_eq!(p.b.outbox[&id].header().recipient_key_id, old);
    // A rotates and B learns of it in a KeyUpdate.
    p.faults.drop = 0.0;
    let at = p.now + 20 * DAY;
    p.run_until(at);
    let changes = p.a.maintain_keys(at, &policy, &mut rng);
    assert_eq!(count(&changes), (1, 0));
    p.run_for(1000);
    assert_eq!(key_updates_sent(&p.b), 1);
    assert_ne!(
        EncryptionKey::select(&p.b.peer_keys, p.now).map(|k| k.id()),
        Some(old)
    );
    // The retransmission of the old envelope opens with the kept secret.
    p.run_for(10 * 60_000);
    assert!(p.a.inbox.contains_key(&id));
    assert!(p.b.all_delivered());
}

/// B's link-down codes.
fn closes(p: &Pair) -> Vec<CloseCode> {
    p.b.events
        .iter()
        .filter_map(|e| match e {
            Event::LinkDown { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

/// Hands B a KeyUpdate frame as if A had sent it, and runs.
fn inject(p: &mut Pair, payload: &[u8]) {
    let bytes = frame::encode(FrameType::KeyUpdate, payload);
    let mono = p.mono();
    p.b.session
        .handle_data(mono, StreamId::Control, &bytes, false);
    p.run_for(100);
}

#[test]
fn a_key_update_is_refused_on_version_1_unsigned_or_too_often() {
    let mut rng = TestRng::new(31);
    // On a version 1 link: UNEXPECTED_FRAME.
    let v1 = Config {
        offer: Offer {
            versions: vec![1],
            ..Offer::default()
        },
        ..Config::default()
    };
    let mut p = Pair::new(31, v1);
    p.connect();
    p.run_for(100);
    let key = EncryptionKeypair::generate(&p.a.identity, p.now, p.now + DAY, &mut rng);
    inject(
        &mut p,
        &key_update_payload(std::slice::from_ref(&key.certificate)),
    );
    assert_eq!(closes(&p), [CloseCode::UnexpectedFrame]);

    // On version 2, a key certified by another identity: MALFORMED_FRAME.
    let mut p = Pair::new(32, Config::default());
    p.connect();
    p.run_for(100);
    assert_eq!(p.b.session.peer_hello().map(|h| h.version), Some(2));
    let stranger = IdentityKey::generate(&mut rng);
    let forged = EncryptionKeypair::generate(&stranger, p.now, p.now + DAY, &mut rng);
    inject(
        &mut p,
        &key_update_payload(std::slice::from_ref(&forged.certificate)),
    );
    assert_eq!(closes(&p), [CloseCode::MalformedFrame]);

    // Empty, or five keys: MALFORMED_FRAME.
    for n in [0, 5] {
        let mut p = Pair::new(33 + n, Config::default());
        p.connect();
        p.run_for(100);
        let keys: Vec<_> = (0..n)
            .map(|_| {
                EncryptionKeypair::generate(&p.a.identity, p.now, p.now + DAY, &mut rng).certificate
            })
            .collect();
        inject(&mut p, &key_update_payload(&keys));
        assert_eq!(closes(&p), [CloseCode::MalformedFrame], "{n} keys");
    }

    // Four valid updates at once are taken; the fifth within the minute is RATE_LIMITED.
    let mut p = Pair::new(40, Config::default());
    p.connect();
    p.run_for(100);
    for i in 0..5 {
        let key = EncryptionKeypair::generate(&p.a.identity, p.now, p.now + DAY, &mut rng);
        inject(
            &mut p,
            &key_update_payload(std::slice::from_ref(&key.certificate)),
        );
        if i < 4 {
            assert!(closes(&p).is_empty(), "update {i} refused");
            assert_eq!(p.b.peer_keys.last(), Some(&key.certificate));
        }
    }
    assert_eq!(closes(&p), [CloseCode::RateLimited]);
}

#[test]
fn keys_made_while_our_hello_is_on_its_way_are_announced_once_the_link_is_up() {
    let policy = KeyPolicy::default();
    let mut p = rotating_pair(51, Config::default(), &policy);
    let mut rng = TestRng::new(52);
    p.connect();
    // A's Hello is sent with its first key; a new key is made before the link is up.
    let now = p.now;
    let mut ring = hotline_protocol::keyring::KeyRing::new(std::mem::take(&mut p.a.keys));
    let KeyChange::Created(new) = ring.rotate(&p.a.identity, now, &policy, &mut rng) else {
        panic!("no key made");
    };
    let announced = ring.announced(now);
    p.a.keys = ring.into_keys();
    assert!(!p.a.session.update_keys(p.mono(), announced));
    p.run_for(1000);
    assert!(p.b.session.is_up());
    assert_eq!(
        key_updates_sent(&p.b),
        1,
        "no KeyUpdate after the link came up"
    );
    assert!(p.b.peer_keys.contains(&new));
    // Nothing more to tell: no second KeyUpdate.
    p.run_for(60_000);
    assert_eq!(key_updates_sent(&p.b), 1);
}
