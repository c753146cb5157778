//! Two-peer tests of the link state machine over the deterministic harness (`sim`).
//!
//! Every test states a behaviour of SPEC.md §6 and §9–§11 and drives two real sessions with
//! real cryptography; time is simulated and jumps to the next deadline.

use hotline_protocol::codes::{CloseCode, RejectReason};
use hotline_protocol::content::Precedence;
use hotline_protocol::session::{Config, Event, LinkState};
use hotline_protocol::sim::{Faults, Pair, Who, is_rejected_with, receipt_kinds};

fn up_pair(seed: u64) -> Pair {
    let mut p = Pair::new(seed, Config::default());
    p.connect();
    p.run_for(100);
    assert!(
        p.a.session.is_up() && p.b.session.is_up(),
        "link did not come up"
    );
    p
}

fn link_events(p: &Pair, who: Who) -> Vec<String> {
    let n = match who {
        Who::A => &p.a,
        Who::B => &p.b,
    };
    n.events
        .iter()
        .filter_map(|e| match e {
            Event::LinkUp(_) => Some("up".to_string()),
            Event::LinkDown { code, .. } => Some(format!("down:{code}")),
            _ => None,
        })
        .collect()
}

/// Asserts exactly-once acceptance in both directions and a verified delivery receipt for
/// every message sent.
fn assert_exactly_once(p: &Pair) {
    for (sender, receiver) in [(&p.a, &p.b), (&p.b, &p.a)] {
        let mut log = receiver.accept_log.clone();
        log.sort();
        let before = log.len();
        log.dedup();
        assert_eq!(before, log.len(), "a message was accepted twice");
        let sent: Vec<_> = sender.outbox.keys().copied().collect();
        assert_eq!(log, sent, "accepted set differs from sent set");
        assert!(
            sender.all_delivered(),
            "a message lacks a verified delivery receipt"
        );
        let n = sender.outbox.len() as u64;
        assert_eq!(
            receiver.session.status().received_through,
            n,
            "sequence numbers not contiguous"
        );
    }
}

#[test]
fn delivers_both_ways_with_verified_receipts() {
    let mut p = up_pair(1);
    let now = p.now;
    let a1 = p.a.send(now, &mut p.rng, "from A", Precedence::Flash);
    let b1 = p.b.send(now, &mut p.rng, "from B", Precedence::Routine);
    p.run_for(1_000);
    assert_eq!(receipt_kinds(&p.a, &a1), vec!["DELIVERED"]);
    assert_eq!(receipt_kinds(&p.b, &b1), vec!["DELIVERED"]);
    assert_eq!(p.b.inbox[&a1].content.draft.subject, "from A");
    assert_eq!(p.b.inbox[&a1].content.officer.name(), "Alice Officer");
    assert_exactly_once(&p);
}

#[test]
fn officer_acknowledgement_reaches_the_sender_and_names_the_officer() {
    let mut p = up_pair(2);
    let now = p.now;
    let id =
        p.a.send(now, &mut p.rng, "incident 42", Precedence::Immediate);
    p.run_for(1_000);
    let now = p.now;
    let ack = p.b.acknowledge(now, &id, "on it");
    p.run_for(1_000);
    assert_eq!(receipt_kinds(&p.a, &id), vec!["DELIVERED", "ACKNOWLEDGED"]);
    assert_eq!(p.b.stored_confirmed, vec![*ack.sha256()]);
    let got = p.a.receipts[&id].last().unwrap();
    match got.kind() {
        hotline_protocol::receipt::ReceiptKind::Acknowledged { officer, note, .. } => {
            assert_eq!(officer.name(), "Bob Officer");
            assert_eq!(note, "on it");
        }
        other => panic!("expected ACKNOWLEDGED, got {other:?}"),
    }
    assert_eq!(p.b.session.pending(), 0);
}

#[test]
fn exactly_once_under_loss_delay_duplication_and_reordering() {
    for seed in 0..8 {
        let mut p = up_pair(100 + seed);
        p.faults = Faults {
            drop: 0.2,
            duplicate: 0.1,
            jitter: 400,
            tamper: 0.0,
            partition: false,
        };
        for i in 0..60 {
            let now = p.now;
            let prec = Precedence::ALL[i % 4];
            p.a.send(now, &mut p.rng, &format!("a{i}"), prec);
            p.b.send(now, &mut p.rng, &format!("b{i}"), prec);
            p.run_for(20);
        }
        p.run_for(10 * 60_000);
        assert!(p.quiescent(), "seed {seed}: not everything delivered");
        assert_exactly_once(&p);
        let dups =
            p.a.events
                .iter()
                .filter(|e| matches!(e, Event::Retransmit { .. }))
                .count();
        assert!(
            dups > 0,
            "seed {seed}: faults never forced a retransmission; the test tests nothing"
        );
    }
}

#[test]
fn tampered_frames_are_rejected_and_the_original_is_still_delivered_once() {
    let mut p = up_pair(3);
    p.faults = Faults {
        tamper: 0.3,
        ..Faults::default()
    };
    let mut ids = vec![];
    for i in 0..40 {
        let now = p.now;
        ids.push(p.a.send(now, &mut p.rng, &format!("m{i}"), Precedence::Priority));
    }
    p.run_for(60_000);
    p.faults = Faults::default();
    p.run_for(10 * 60_000);
    assert!(p.quiescent());
    assert_exactly_once(&p);
    // The receiver saw tampered envelopes and refused them or reset their streams.
    let refused =
        p.b.events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::StreamError { .. } | Event::MalformedEnvelope { .. }
                )
            })
            .count();
    let retransmits =
        p.a.events
            .iter()
            .filter(|e| matches!(e, Event::Retransmit { .. }))
            .count();
    assert!(refused + retransmits > 0, "tampering had no visible effect");
    for id in ids {
        assert!(receipt_kinds(&p.a, &id).contains(&"DELIVERED"));
    }
}

#[test]
fn redelivers_after_reconnect_without_duplicate() {
    let mut p = up_pair(4);
    p.latency = 50;
    for i in 0..30 {
        let now = p.now;
        p.a.send(now, &mut p.rng, &format!("m{i}"), Precedence::Routine);
    }
    // Cut the connection while envelopes and receipts are in flight.
    p.run_for(60);
    p.disconnect();
    assert_eq!(p.a.session.state(), LinkState::Down);
    let now = p.now;
    p.a.send(now, &mut p.rng, "queued while down", Precedence::Flash);
    p.run_for(5_000);
    p.connect();
    p.run_for(60_000);
    assert!(p.quiescent());
    assert_exactly_once(&p);
}

#[test]
fn replay_with_same_bytes_returns_the_original_receipt() {
    let mut p = up_pair(5);
    let now = p.now;
    let id = p.a.send(now, &mut p.rng, "once", Precedence::Routine);
    p.run_for(1_000);
    let first = p.a.receipts[&id][0].clone();
    // Send the very same envelope bytes again (a replay).
    let env = p.a.outbox[&id].clone();
    p.a.session.send_envelope(p.mono(), env);
    p.run_for(1_000);
    assert_eq!(p.b.accept_log.len(), 1, "replay accepted twice");
    assert_eq!(p.a.receipts[&id].len(), 2);
    assert_eq!(
        p.a.receipts[&id][1].bytes(),
        first.bytes(),
        "replay did not get the original receipt"
    );
}

#[test]
fn same_id_with_different_bytes_is_rejected_as_conflict() {
    let mut p = up_pair(6);
    let now = p.now;
    let id = p.a.send(now, &mut p.rng, "original", Precedence::Routine);
    p.run_for(1_000);
    // A different envelope that reuses the id (a buggy or malicious sender).
    let other = reseal_with_id(&p, id, 2);
    assert_ne!(other.sha256(), p.a.outbox[&id].sha256());
    p.a.outbox.insert(id, other.clone());
    p.a.session.send_envelope(p.mono(), other);
    p.run_for(1_000);
    let last = p.a.receipts[&id].last().unwrap();
    assert!(
        is_rejected_with(last.kind(), RejectReason::Conflict),
        "got {:?}",
        last.kind()
    );
    assert_eq!(
        p.b.inbox[&id].content.draft.subject, "original",
        "the stored message was replaced"
    );
    assert_eq!(p.b.accept_log.len(), 1);
}

fn reseal_with_id(p: &Pair, id: [u8; 16], seq: u64) -> hotline_protocol::envelope::Envelope {
    use hotline_protocol::content::{Draft, Tlp};
    use hotline_protocol::envelope::{Envelope, SealParams};
    use hotline_protocol::identity::EncryptionKey;
    let mut rng = hotline_protocol::sim::TestRng::new(1234);
    let draft = Draft {
        subject: "impostor".into(),
        ..Default::default()
    };
    let content = draft
        .sign(&id, &p.a.peer, &p.a.officer, p.now)
        .expect("fixture");
    let key = EncryptionKey::select(&p.a.peer_keys, p.now).expect("fixture");
    Envelope::seal(
        &p.a.identity,
        &SealParams {
            recipient: p.a.peer,
            recipient_key: key,
            message_id: id,
            sequence: seq,
            created: p.now,
            precedence: Precedence::Routine,
            tlp: Tlp::Red,
        },
        &content,
        &mut rng,
    )
    .expect("fixture")
}

#[test]
fn detects_a_gap_from_heartbeats_and_clears_it_when_filled() {
    let mut p = up_pair(7);
    let now = p.now;
    p.a.send_with_sequence(now, &mut p.rng, "one", Precedence::Routine, 1);
    p.a.send_with_sequence(now, &mut p.rng, "three", Precedence::Routine, 3);
    p.run_for(30_000);
    let gaps: Vec<_> =
        p.b.events
            .iter()
            .filter_map(|e| match e {
                Event::GapDetected { missing } => Some(missing.clone()),
                _ => None,
            })
            .collect();
    assert_eq!(gaps, vec![vec![(2, 2)]], "gap 2 not reported exactly once");
    assert_eq!(p.b.session.status().gaps, vec![(2, 2)]);
    let now = p.now;
    p.a.send_with_sequence(now, &mut p.rng, "two", Precedence::Routine, 2);
    p.run_for(1_000);
    assert!(p.b.events.iter().any(|e| matches!(e, Event::GapClosed)));
    assert!(p.b.session.status().gaps.is_empty());
    assert_eq!(p.b.session.status().received_through, 3);
}

#[test]
fn heartbeat_claiming_unseen_sequences_is_reported_only_after_grace() {
    let mut p = up_pair(8);
    // A claims sequence 5 was sent although nothing was: tamper with its counter.
    let now = p.now;
    p.a.send_with_sequence(now, &mut p.rng, "five", Precedence::Routine, 5);
    // Drop the envelope itself, let heartbeats through.
    p.faults.drop = 1.0;
    p.run_for(9_000);
    assert!(
        !p.b.events
            .iter()
            .any(|e| matches!(e, Event::GapDetected { .. })),
        "reported before grace"
    );
    p.run_for(12_000);
    assert!(
        p.b.events
            .iter()
            .any(|e| matches!(e, Event::GapDetected { missing } if missing == &vec![(1, 5)]))
    );
}

#[test]
fn link_goes_down_when_the_peer_falls_silent() {
    let mut p = up_pair(9);
    p.faults.partition = true;
    let t0 = p.now;
    p.run_for(20_000);
    let downs: Vec<_> =
        p.a.events
            .iter()
            .filter_map(|e| match e {
                Event::LinkDown { code, .. } => Some(*code),
                _ => None,
            })
            .collect();
    assert_eq!(downs.first(), Some(&CloseCode::LinkTimeout));
    assert!(!p.a.session.is_up());
    assert!(p.now - t0 >= 15_000);
    assert_eq!(
        link_events(&p, Who::A),
        vec!["up", &format!("down:{}", CloseCode::LinkTimeout)]
    );
}

#[test]
fn heartbeats_measure_rtt() {
    let mut p = up_pair(10);
    p.latency = 40;
    p.run_for(11_000);
    assert_eq!(p.a.session.rtt(), Some(80));
}

#[test]
fn hello_with_another_channel_binding_is_refused() {
    let mut p = Pair::new(11, Config::default());
    p.connect_with_exporters([1; 32], [2; 32]);
    p.run_for(1_000);
    assert!(!p.a.session.is_up() && !p.b.session.is_up());
    assert!(p.a.events.iter().chain(&p.b.events).any(|e| matches!(
        e,
        Event::LinkDown {
            code: CloseCode::BadChannelBinding,
            ..
        }
    )));
}

#[test]
fn hello_from_an_unpinned_identity_is_refused() {
    let mut p = Pair::new(12, Config::default());
    // B expects someone else than A.
    let stranger = hotline_protocol::identity::IdentityKey::generate(
        &mut hotline_protocol::sim::TestRng::new(77),
    );
    p.b.session = hotline_protocol::session::Session::new(
        Config::default(),
        p.b.identity.clone(),
        p.b.keys.iter().map(|k| k.certificate.clone()).collect(),
        stranger.id(),
    );
    p.connect();
    p.run_for(1_000);
    assert!(p.b.events.iter().any(|e| matches!(
        e,
        Event::LinkDown {
            code: CloseCode::IdentityMismatch,
            ..
        }
    )));
}

#[test]
fn no_hello_in_time_closes_with_hello_timeout() {
    let mut p = Pair::new(13, Config::default());
    p.faults.partition = true;
    p.connect();
    p.run_for(11_000);
    assert!(p.a.events.iter().any(|e| matches!(
        e,
        Event::LinkDown {
            code: CloseCode::HelloTimeout,
            ..
        }
    )));
}

#[test]
fn flash_is_sent_before_routine_backlog() {
    let mut p = Pair::new(
        14,
        Config {
            max_outgoing: 1,
            ..Config::default()
        },
    );
    let now = p.now;
    let mut routine = vec![];
    for i in 0..5 {
        routine.push(p.a.send(now, &mut p.rng, &format!("r{i}"), Precedence::Routine));
    }
    let flash = p.a.send(now, &mut p.rng, "flash", Precedence::Flash);
    p.connect();
    p.run_for(60_000);
    assert_eq!(
        p.b.accept_log.first(),
        Some(&flash),
        "FLASH was not delivered first"
    );
    assert_exactly_once(&p);
}

#[test]
fn envelope_for_another_recipient_is_rejected_with_wrong_recipient() {
    // A seals to B but B's session believes it is a third node: simulate by having A send an
    // envelope addressed to itself.
    let mut p = up_pair(15);
    let now = p.now;
    let env = {
        use hotline_protocol::content::{Draft, Tlp};
        use hotline_protocol::envelope::{Envelope, SealParams};
        let mut rng = hotline_protocol::sim::TestRng::new(5);
        let id = rng.id16();
        let me = p.a.identity.id();
        let draft = Draft {
            subject: "misaddressed".into(),
            ..Default::default()
        };
        let content = draft.sign(&id, &me, &p.a.officer, now).unwrap();
        Envelope::seal(
            &p.a.identity,
            &SealParams {
                recipient: me,
                recipient_key: &p.a.keys[0].certificate,
                message_id: id,
                sequence: 1,
                created: now,
                precedence: Precedence::Routine,
                tlp: Tlp::Green,
            },
            &content,
            &mut rng,
        )
        .unwrap()
    };
    let id = *env.message_id();
    p.a.session.send_envelope(p.mono(), env);
    p.run_for(1_000);
    assert!(p.b.inbox.is_empty());
    let kinds = &p.a.receipts[&id];
    assert_eq!(kinds.len(), 1);
    assert!(
        is_rejected_with(kinds[0].kind(), RejectReason::WrongRecipient),
        "got {:?}",
        kinds[0].kind()
    );
    assert_eq!(
        p.a.session.pending(),
        0,
        "a REJECTED receipt must end the retries"
    );
}

#[test]
fn a_restarted_receiver_restored_from_its_store_reports_no_false_gap() {
    let mut p = up_pair(16);
    for i in 0..5 {
        let now = p.now;
        p.a.send(now, &mut p.rng, &format!("m{i}"), Precedence::Routine);
    }
    p.run_for(2_000);
    assert_eq!(p.b.session.status().received_through, 5);
    // B restarts: a new session, restored from what its store holds (sequences 1..=5).
    p.disconnect();
    let fresh = |p: &Pair| {
        hotline_protocol::session::Session::new(
            Config::default(),
            p.b.identity.clone(),
            p.b.keys.iter().map(|k| k.certificate.clone()).collect(),
            p.a.identity.id(),
        )
    };
    p.b.session = fresh(&p);
    p.b.session.restore(&[(1, 5)], 0);
    p.connect();
    p.run_for(30_000);
    assert!(
        !p.b.events
            .iter()
            .any(|e| matches!(e, Event::GapDetected { .. })),
        "restored session reported a gap"
    );
    // Control: without restoring, the same restart reports 1..=5 missing.
    p.disconnect();
    p.b.session = fresh(&p);
    p.b.events.clear();
    p.connect();
    p.run_for(30_000);
    assert!(
        p.b.events
            .iter()
            .any(|e| matches!(e, Event::GapDetected { missing } if missing == &vec![(1, 5)]))
    );
}

#[test]
fn a_queued_envelope_is_withdrawn_and_never_sent_but_one_that_left_is_kept() {
    use hotline_protocol::session::Withdrawal;
    let mut p = Pair::new(
        21,
        Config {
            max_outgoing: 1,
            ..Config::default()
        },
    );
    let now = p.now;
    let first = p.a.send(now, &mut p.rng, "first", Precedence::Routine);
    let second = p.a.send(now, &mut p.rng, "second", Precedence::Routine);
    // Link down: nothing was written yet, so both could be withdrawn.
    assert_eq!(
        p.a.session.withdraw_envelope(&second),
        Withdrawal::Withdrawn
    );
    assert_eq!(p.a.session.withdraw_envelope(&second), Withdrawal::NotHeld);
    p.latency = 200;
    p.connect();
    while !p.a.session.is_up() {
        p.run_for(1);
    }
    // The first envelope is on its stream now (one in flight at most): it may have left.
    assert_eq!(
        p.a.session.withdraw_envelope(&first),
        Withdrawal::MayHaveLeft
    );
    p.run_for(60_000);
    assert_eq!(
        p.b.accept_log,
        vec![first],
        "the withdrawn envelope was sent"
    );
    assert_eq!(p.a.session.pending(), 0);
    // After it was sent and answered, the session no longer holds it.
    assert_eq!(p.a.session.withdraw_envelope(&first), Withdrawal::NotHeld);
}
