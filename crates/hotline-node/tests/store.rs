//! The SQLite store against its contract (`hotline_node::store::Store`), on temp-file
//! databases: every method, durability across close and reopen, schema versions, refusal of
//! files that are not ours, and crash safety under SIGKILL mid-write.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use hotline_node::store::sqlite::{SCHEMA_VERSION, SqliteStore};
use hotline_node::store::{
    AcceptOutcome, Arrival, AuditEvent, OutState, OwnReceiptOutcome, PeerRecord, ReceiptOutcome,
    ReceiptRecord, Store, StoreError, Submission, SubmitOutcome,
};
use hotline_protocol::NodeId;
use hotline_protocol::content::Precedence;
use hotline_protocol::crypto::sha256;
use hotline_protocol::envelope::MessageId;
use hotline_protocol::identity::IdentityKey;
use hotline_protocol::sim::TestRng;
use tempfile::TempDir;

const T0: u64 = 1_800_000_000_000;

fn node(n: u8) -> NodeId {
    IdentityKey::from_seed(&[n; 32]).expect("a valid seed").id()
}

fn mid(n: u32) -> MessageId {
    let mut id = [0xa5; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    id
}

fn submission(n: u32, peer: NodeId, precedence: Precedence) -> Submission {
    Submission {
        message_id: mid(n),
        peer,
        precedence,
        tlp: "amber".into(),
        created_ms: T0 + u64::from(n),
        content: Bytes::from(format!("content of {n}")),
        subject: format!("subject {n}"),
        officer: "duty officer".into(),
    }
}

/// The sequences of submissions that were all stored as new messages.
fn seqs(outcomes: Vec<SubmitOutcome>) -> Vec<u64> {
    outcomes
        .into_iter()
        .map(|o| match o {
            SubmitOutcome::Stored(n) => n,
            other => panic!("expected a stored message, got {other:?}"),
        })
        .collect()
}

fn routine(ns: impl IntoIterator<Item = u32>, peer: NodeId) -> Vec<Submission> {
    ns.into_iter()
        .map(|n| submission(n, peer, Precedence::Routine))
        .collect()
}

fn envelope_of(n: u32) -> (MessageId, Bytes, [u8; 32]) {
    let bytes = Bytes::from(format!("envelope of {n}"));
    let sha = sha256(&bytes);
    (mid(n), bytes, sha)
}

fn receipt(id: MessageId, peer: NodeId, kind: &str, tag: &str) -> ReceiptRecord {
    let bytes = Bytes::from(format!("{kind} receipt for {id:02x?} {tag}"));
    ReceiptRecord {
        message_id: id,
        peer,
        kind: kind.into(),
        sha256: sha256(&bytes),
        bytes,
        stored_ms: T0 + 5,
    }
}

fn arrival(n: u32, peer: NodeId, sequence: u64, envelope: &str) -> Arrival {
    let envelope = Bytes::from(envelope.to_owned());
    let envelope_sha256 = sha256(&envelope);
    Arrival {
        message_id: mid(n),
        peer,
        sequence,
        precedence: Precedence::Priority,
        tlp: "green".into(),
        created_ms: T0,
        received_ms: T0 + u64::from(n),
        receipt: receipt(
            mid(n),
            peer,
            "DELIVERED",
            &format!("{envelope_sha256:02x?}"),
        ),
        envelope,
        envelope_sha256,
        content: Bytes::from(format!("content of {n}")),
        subject: format!("incoming {n}"),
        officer: "their officer".into(),
    }
}

fn peer_record(alias: &str, n: u8) -> PeerRecord {
    PeerRecord {
        alias: alias.into(),
        identity: node(n),
        address: format!("{alias}.example:4433"),
        bundle: Bytes::from(format!("bundle of {alias}")),
        added_ms: T0,
        trust: Default::default(),
    }
}

fn event(n: u64, kind: &str, peer: Option<NodeId>, message_id: Option<MessageId>) -> AuditEvent {
    AuditEvent {
        time_ms: T0 + n,
        kind: kind.into(),
        peer,
        message_id,
        detail: format!("event {n}"),
    }
}

/// A temp directory holding `node.db`, and the store opened on it.
fn temp_store() -> (TempDir, PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("node.db");
    let store = SqliteStore::open(&path).expect("open a new store");
    (dir, path, store)
}

/// A second, plain connection for looking under the hood.
fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("open a plain connection")
}

fn count(path: &Path, table: &str) -> i64 {
    raw(path)
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count rows")
}

// ----- peers -----

#[test]
fn peers_are_listed_by_alias_and_removed_by_alias() {
    let (_dir, _path, mut s) = temp_store();
    assert!(s.peers().unwrap().is_empty());
    s.add_peer(&peer_record("cert-z", 1)).unwrap();
    s.add_peer(&peer_record("cert-b", 2)).unwrap();
    let peers = s.peers().unwrap();
    assert_eq!(
        peers,
        vec![peer_record("cert-b", 2), peer_record("cert-z", 1)]
    );

    assert!(s.remove_peer("cert-z").unwrap());
    assert!(!s.remove_peer("cert-z").unwrap());
    assert_eq!(s.peers().unwrap(), vec![peer_record("cert-b", 2)]);
}

#[test]
fn add_peer_refuses_a_taken_alias_or_identity_and_says_what_to_do() {
    let (_dir, _path, mut s) = temp_store();
    s.add_peer(&peer_record("cert-b", 2)).unwrap();

    match s.add_peer(&peer_record("cert-b", 3)) {
        Err(StoreError::Conflict(m)) => {
            assert!(m.contains("\"cert-b\""), "{m}");
            assert!(m.contains("hotlined peer remove cert-b"), "{m}");
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    match s.add_peer(&peer_record("cert-c", 2)) {
        Err(StoreError::Conflict(m)) => {
            assert!(m.contains(&node(2).to_string()), "{m}");
            assert!(m.contains("hotlined peer remove cert-b"), "{m}");
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(s.peers().unwrap(), vec![peer_record("cert-b", 2)]);
}

// ----- sending -----

#[test]
fn submit_assigns_contiguous_sequences_per_peer_across_batches_and_reopen() {
    let (_dir, path, mut s) = temp_store();
    let (a, b) = (node(1), node(2));
    assert_eq!(s.last_sequence(&a).unwrap(), 0);

    let mut batch = routine(1..=3, a);
    batch.insert(1, submission(10, b, Precedence::Flash));
    assert_eq!(seqs(s.submit(&batch).unwrap()), vec![1, 1, 2, 3]);
    assert_eq!(seqs(s.submit(&routine(4..=5, a)).unwrap()), vec![4, 5]);
    assert_eq!(seqs(s.submit(&[]).unwrap()), Vec::<u64>::new());
    drop(s);

    let mut s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.last_sequence(&a).unwrap(), 5);
    assert_eq!(s.last_sequence(&b).unwrap(), 1);
    assert_eq!(seqs(s.submit(&routine(11..=12, b)).unwrap()), vec![2, 3]);
    assert_eq!(seqs(s.submit(&routine([6], a)).unwrap()), vec![6]);
    assert_eq!(s.last_sequence(&node(3)).unwrap(), 0);
}

#[test]
fn a_message_id_is_used_once_per_node_and_a_repeated_submission_gets_its_first_answer() {
    let (_dir, path, mut s) = temp_store();
    let (a, b) = (node(1), node(2));
    assert_eq!(seqs(s.submit(&routine([1], a)).unwrap()), vec![1]);

    // The same message again (a client retrying after a lost answer): its first sequence.
    // Another message under a used id (other content, precedence or peer): refused. Neither
    // writes anything or uses up a sequence, and the rest of the batch is stored.
    let mut other_content = submission(1, a, Precedence::Routine);
    other_content.content = Bytes::from_static(b"something else");
    let batch = vec![
        submission(2, a, Precedence::Routine),
        submission(1, a, Precedence::Routine),
        other_content,
        submission(1, a, Precedence::Flash),
        submission(1, b, Precedence::Routine),
        submission(3, a, Precedence::Routine),
        submission(3, a, Precedence::Routine),
    ];
    assert_eq!(
        s.submit(&batch).unwrap(),
        vec![
            SubmitOutcome::Stored(2),
            SubmitOutcome::Repeated(1),
            SubmitOutcome::IdInUse,
            SubmitOutcome::IdInUse,
            SubmitOutcome::IdInUse,
            SubmitOutcome::Stored(3),
            SubmitOutcome::Repeated(3),
        ]
    );
    assert_eq!(count(&path, "outbox"), 3);
    assert_eq!(s.last_sequence(&a).unwrap(), 3);
    assert_eq!(s.last_sequence(&b).unwrap(), 0);

    // The id of a received message cannot be used for a sent one, and the peer cannot use
    // the id of one we sent: it would shadow ours in Show, Receipts and `send --wait`.
    assert_eq!(
        s.accept(&[arrival(9, b, 1, "theirs")]).unwrap(),
        vec![AcceptOutcome::Inserted {
            sequence_reused_by: None
        }]
    );
    assert_eq!(
        s.submit(&routine([9], a)).unwrap(),
        vec![SubmitOutcome::IdInUse]
    );
    assert_eq!(
        s.accept(&[arrival(1, b, 2, "echo of our id")]).unwrap(),
        vec![AcceptOutcome::Conflict]
    );
    assert_eq!(count(&path, "inbox"), 1);
    let shown = s.message(&mid(1)).unwrap().expect("ours");
    assert!(!shown.row.incoming, "Show finds the message we sent");
    assert_eq!(s.last_sequence(&a).unwrap(), 3, "no sequence used up");

    // The schema refuses such rows too, whatever the code above it does.
    let conn = raw(&path);
    let inserted = conn.execute(
        "INSERT INTO inbox (message_id, peer, sequence, precedence, tlp, created_ms, \
         received_ms, envelope, envelope_sha256, content, subject, officer, delivered_receipt) \
         VALUES (?1, ?2, 5, 3, 'green', 1, 1, x'00', ?3, x'00', 's', 'o', ?3)",
        rusqlite::params![&mid(2)[..], &b.as_bytes()[..], &[7u8; 32][..]],
    );
    assert!(inserted.is_err(), "the inbox refused a sent message's id");
    assert!(s.check().unwrap().is_empty(), "{:?}", s.check().unwrap());
}

#[test]
fn attach_envelopes_seals_once_and_unsealed_lists_the_rest_in_sequence_order() {
    let (_dir, _path, mut s) = temp_store();
    let (a, b) = (node(1), node(2));
    s.submit(&routine(1..=3, a)).unwrap();
    s.submit(&routine([4], b)).unwrap();
    assert_eq!(s.out_state(&mid(1)).unwrap(), Some(OutState::Unsealed));
    assert_eq!(s.sent_envelope(&mid(1)).unwrap(), None);

    s.attach_envelopes(&[envelope_of(2)]).unwrap();
    assert_eq!(s.out_state(&mid(2)).unwrap(), Some(OutState::Pending));
    assert_eq!(s.sent_envelope(&mid(2)).unwrap(), Some(envelope_of(2).1));
    assert_eq!(s.sent_envelope(&mid(99)).unwrap(), None);

    let unsealed = s.unsealed().unwrap();
    let listed: Vec<(MessageId, u64)> = unsealed
        .iter()
        .map(|u| (u.submission.message_id, u.sequence))
        .collect();
    // Sequence order; peers tie-broken by their key bytes.
    let mut expected = vec![(mid(1), 1), (mid(4), 1), (mid(3), 3)];
    if b.as_bytes() < a.as_bytes() {
        expected.swap(0, 1);
    }
    assert_eq!(listed, expected);
    assert_eq!(
        unsealed[2].submission,
        submission(3, a, Precedence::Routine)
    );

    // The same envelope again is a no-op; other bytes are a conflict; the batch is atomic.
    s.attach_envelopes(&[envelope_of(2)]).unwrap();
    let (id, _, _) = envelope_of(2);
    let other = Bytes::from_static(b"another sealing");
    let err = s
        .attach_envelopes(&[envelope_of(1), (id, other.clone(), sha256(&other))])
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(s.out_state(&mid(1)).unwrap(), Some(OutState::Unsealed));
    assert_eq!(s.sent_envelope(&mid(2)).unwrap(), Some(envelope_of(2).1));

    let err = s.attach_envelopes(&[envelope_of(42)]).unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
}

#[test]
fn pending_envelopes_sends_flash_first_then_by_sequence() {
    let (_dir, _path, mut s) = temp_store();
    let (a, b) = (node(1), node(2));
    let batch = vec![
        submission(1, a, Precedence::Routine),
        submission(2, a, Precedence::Priority),
        submission(3, a, Precedence::Flash),
        submission(4, a, Precedence::Routine),
        submission(5, a, Precedence::Flash),
        submission(6, a, Precedence::Immediate),
        submission(7, b, Precedence::Flash),
        submission(8, a, Precedence::Routine), // stays unsealed: not pending
    ];
    s.submit(&batch).unwrap();
    s.attach_envelopes(&(1..=7).map(envelope_of).collect::<Vec<_>>())
        .unwrap();
    let order = |s: &mut SqliteStore, p: &NodeId| s.pending_envelopes(p).unwrap();
    let expect = |ns: &[u32]| ns.iter().map(|&n| envelope_of(n).1).collect::<Vec<_>>();
    assert_eq!(order(&mut s, &a), expect(&[3, 5, 6, 2, 1, 4]));
    assert_eq!(order(&mut s, &b), expect(&[7]));

    // A receipt of any kind takes a message out of the queue.
    s.record_receipts(&[
        receipt(mid(3), a, "DELIVERED", ""),
        receipt(mid(2), a, "REJECTED", ""),
    ])
    .unwrap();
    assert_eq!(order(&mut s, &a), expect(&[5, 6, 1, 4]));
}

#[test]
fn pending_window_pages_in_queue_order_skipping_what_the_link_holds() {
    let (_dir, _path, mut s) = temp_store();
    let a = node(1);
    let batch = vec![
        submission(1, a, Precedence::Routine),
        submission(2, a, Precedence::Priority),
        submission(3, a, Precedence::Flash),
        submission(4, a, Precedence::Routine),
        submission(5, a, Precedence::Flash),
        submission(6, a, Precedence::Immediate),
    ];
    s.submit(&batch).unwrap();
    s.attach_envelopes(&(1..=6).map(envelope_of).collect::<Vec<_>>())
        .unwrap();
    let expect = |ns: &[u32]| ns.iter().map(|&n| envelope_of(n).1).collect::<Vec<_>>();
    let none = std::collections::HashSet::new();
    assert_eq!(s.pending_window(&a, &none, 3).unwrap(), expect(&[3, 5, 6]));
    assert_eq!(
        s.pending_window(&a, &none, 100).unwrap(),
        expect(&[3, 5, 6, 2, 1, 4])
    );
    let held: std::collections::HashSet<MessageId> = [mid(3), mid(6)].into();
    assert_eq!(s.pending_window(&a, &held, 3).unwrap(), expect(&[5, 2, 1]));
    assert_eq!(s.pending_window(&a, &held, 0).unwrap(), expect(&[]));
    assert_eq!(s.pending_window(&node(9), &none, 3).unwrap(), expect(&[]));
}

#[test]
fn pending_summary_counts_the_backlog_its_age_and_the_overdue() {
    let (_dir, _path, mut s) = temp_store();
    let a = node(1);
    let mut batch = vec![
        submission(1, a, Precedence::Routine),
        submission(2, a, Precedence::Flash),
        submission(3, a, Precedence::Routine),
        submission(4, a, Precedence::Routine), // stays unsealed: counted too
    ];
    for (i, sub) in batch.iter_mut().enumerate() {
        sub.created_ms = 1_000 * (i as u64 + 1);
    }
    s.submit(&batch).unwrap();
    s.attach_envelopes(&(1..=3).map(envelope_of).collect::<Vec<_>>())
        .unwrap();
    s.record_receipts(&[receipt(mid(1), a, "DELIVERED", "")])
        .unwrap();
    // ROUTINE cutoff 3500: message 3 (created 3000) is overdue, 4 (4000) is not; FLASH
    // cutoff 0: message 2 is not.
    let sum = s.pending_summary(&a, [0, 0, 0, 3_500]).unwrap();
    assert_eq!(sum.count, 3);
    assert_eq!(sum.oldest_ms, 2_000);
    assert_eq!(sum.overdue, 1);
    let sum = s.pending_summary(&a, [u64::MAX / 4; 4]).unwrap();
    assert_eq!(sum.overdue, 3);
    assert_eq!(
        s.pending_summary(&node(9), [0; 4]).unwrap(),
        Default::default()
    );
}

#[test]
fn receipts_advance_the_state_and_never_go_backwards() {
    let (_dir, path, mut s) = temp_store();
    let a = node(1);
    s.submit(&routine(1..=5, a)).unwrap();
    s.attach_envelopes(&(1..=4).map(envelope_of).collect::<Vec<_>>())
        .unwrap();
    let state = |s: &mut SqliteStore, n| s.out_state(&mid(n)).unwrap().unwrap();

    // 1: pending → delivered → acknowledged; a later DELIVERED or REJECTED changes nothing.
    s.record_receipts(&[receipt(mid(1), a, "DELIVERED", "")])
        .unwrap();
    assert_eq!(state(&mut s, 1), OutState::Delivered);
    s.record_receipts(&[receipt(mid(1), a, "ACKNOWLEDGED", "")])
        .unwrap();
    assert_eq!(state(&mut s, 1), OutState::Acknowledged);
    s.record_receipts(&[
        receipt(mid(1), a, "DELIVERED", "again"),
        receipt(mid(1), a, "REJECTED", ""),
    ])
    .unwrap();
    assert_eq!(state(&mut s, 1), OutState::Acknowledged);

    // 2: pending → acknowledged directly; DELIVERED afterwards (arrived late) does not demote.
    s.record_receipts(&[
        receipt(mid(2), a, "ACKNOWLEDGED", ""),
        receipt(mid(2), a, "DELIVERED", ""),
    ])
    .unwrap();
    assert_eq!(state(&mut s, 2), OutState::Acknowledged);

    // 3: the first final receipt decides (SPEC.md §8.6): delivery receipts after a REJECTED
    // contradict it, are kept as evidence and change nothing.
    s.record_receipts(&[receipt(mid(3), a, "REJECTED", "")])
        .unwrap();
    assert_eq!(state(&mut s, 3), OutState::Rejected);
    let outcomes = s
        .record_receipts(&[
            receipt(mid(3), a, "DELIVERED", ""),
            receipt(mid(3), a, "ACKNOWLEDGED", ""),
        ])
        .unwrap();
    assert_eq!(
        outcomes,
        vec![ReceiptOutcome::Contradictory(OutState::Rejected); 2]
    );
    assert_eq!(state(&mut s, 3), OutState::Rejected);

    // 4: delivered cannot turn into rejected.
    s.record_receipts(&[receipt(mid(4), a, "DELIVERED", "")])
        .unwrap();
    s.record_receipts(&[receipt(mid(4), a, "REJECTED", "")])
        .unwrap();
    assert_eq!(state(&mut s, 4), OutState::Delivered);

    // 5: unsealed → delivered.
    s.record_receipts(&[receipt(mid(5), a, "DELIVERED", "")])
        .unwrap();
    assert_eq!(state(&mut s, 5), OutState::Delivered);

    // The first receipt of each kind is kept as evidence, even one that changed nothing; a
    // second of a kind (1's DELIVERED "again") is not.
    assert_eq!(count(&path, "receipts_in"), 11);
    drop(s);
    let mut s = SqliteStore::open(&path).unwrap();
    assert_eq!(state(&mut s, 1), OutState::Acknowledged);
    assert_eq!(state(&mut s, 3), OutState::Rejected);
}

/// SPEC.md §8.5: a peer cannot grow the evidence of one message without bound. Of the valid
/// receipts it sends for a message, the first of each kind is kept; each gets its outcome.
#[test]
fn record_receipts_keeps_one_receipt_per_kind_and_says_what_became_of_each() {
    let (_dir, path, mut s) = temp_store();
    let a = node(1);
    s.submit(&routine(1..=3, a)).unwrap();
    s.attach_envelopes(&(1..=3).map(envelope_of).collect::<Vec<_>>())
        .unwrap();
    let first = receipt(mid(1), a, "DELIVERED", "first");
    let outcomes = s
        .record_receipts(&[
            first.clone(),
            receipt(mid(1), a, "DELIVERED", "second"),
            receipt(mid(1), a, "ACKNOWLEDGED", "by Anna"),
            receipt(mid(1), a, "ACKNOWLEDGED", "by Bert"),
            receipt(mid(1), a, "REJECTED", "late"),
            first.clone(),
            receipt(mid(77), a, "DELIVERED", ""), // we never sent 77
        ])
        .unwrap();
    use ReceiptOutcome::*;
    assert_eq!(
        outcomes,
        vec![
            Stored(OutState::Delivered),
            Discarded,
            Stored(OutState::Acknowledged),
            Discarded,
            Contradictory(OutState::Acknowledged),
            Repeated,
            Unknown,
        ]
    );
    // A flood of distinct, valid receipts of the kinds held: none stored, in one batch or many.
    let flood: Vec<ReceiptRecord> = (0..500)
        .map(|i| {
            receipt(
                mid(1),
                a,
                ["ACKNOWLEDGED", "REJECTED"][i % 2],
                &i.to_string(),
            )
        })
        .collect();
    assert!(
        s.record_receipts(&flood)
            .unwrap()
            .iter()
            .all(|o| *o == Discarded)
    );
    for r in flood.iter().take(20) {
        assert_eq!(
            s.record_receipts(std::slice::from_ref(r)).unwrap(),
            vec![Discarded]
        );
    }
    assert_eq!(count(&path, "receipts_in"), 3);
    let shown = s.message(&mid(1)).unwrap().expect("stored");
    assert_eq!(shown.receipts.len(), 3);
    assert_eq!(shown.receipts[0], first.bytes, "oldest first");
    assert_eq!(shown.row.state, "acknowledged");

    // Message 2: REJECTED first. It is final: out of the queue, and a delivery receipt after
    // it contradicts it without changing it.
    let outcomes = s
        .record_receipts(&[
            receipt(mid(2), a, "REJECTED", ""),
            receipt(mid(2), a, "DELIVERED", ""),
        ])
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            Stored(OutState::Rejected),
            Contradictory(OutState::Rejected)
        ]
    );
    assert_eq!(s.out_state(&mid(2)).unwrap(), Some(OutState::Rejected));
    // Message 3: delivery decided; a REJECTED contradicts it; an ACKNOWLEDGED after that
    // agrees with what was decided and supersedes DELIVERED as usual.
    let outcomes = s
        .record_receipts(&[
            receipt(mid(3), a, "DELIVERED", ""),
            receipt(mid(3), a, "REJECTED", ""),
            receipt(mid(3), a, "ACKNOWLEDGED", ""),
        ])
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            Stored(OutState::Delivered),
            Contradictory(OutState::Delivered),
            Stored(OutState::Acknowledged)
        ]
    );
    assert!(s.pending_envelopes(&a).unwrap().is_empty());
    // `hotlined check` names the messages holding contradictory receipts.
    let problems = s.check().unwrap();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(
        problems
            .iter()
            .all(|p| p.contains("contradictory receipts")),
        "{problems:?}"
    );
}

#[test]
fn record_receipts_ignores_repeats_unknown_messages_and_wrong_peers() {
    let (_dir, path, mut s) = temp_store();
    let (a, b) = (node(1), node(2));
    s.submit(&routine([1], a)).unwrap();
    s.attach_envelopes(&[envelope_of(1)]).unwrap();
    let delivered = receipt(mid(1), a, "DELIVERED", "");
    s.record_receipts(&[delivered.clone(), delivered.clone()])
        .unwrap();
    s.record_receipts(&[
        delivered,
        receipt(mid(77), a, "DELIVERED", ""), // we never sent 77
        receipt(mid(1), b, "ACKNOWLEDGED", "b"), // b is not 1's recipient
    ])
    .unwrap();
    assert_eq!(count(&path, "receipts_in"), 1);
    assert_eq!(s.out_state(&mid(1)).unwrap(), Some(OutState::Delivered));
}

#[test]
fn record_receipts_refuses_an_unknown_kind_and_rolls_back_the_batch() {
    let (_dir, path, mut s) = temp_store();
    let a = node(1);
    s.submit(&routine(1..=2, a)).unwrap();
    s.attach_envelopes(&(1..=2).map(envelope_of).collect::<Vec<_>>())
        .unwrap();
    let err = s
        .record_receipts(&[
            receipt(mid(1), a, "DELIVERED", ""),
            receipt(mid(2), a, "READ", ""),
        ])
        .unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    assert_eq!(s.out_state(&mid(1)).unwrap(), Some(OutState::Pending));
    assert_eq!(count(&path, "receipts_in"), 0);
}

// ----- receiving -----

#[test]
fn accept_inserts_then_answers_a_replay_with_the_original_receipt() {
    let (_dir, path, mut s) = temp_store();
    let a = node(1);
    let first = arrival(1, a, 1, "envelope one");
    assert_eq!(
        s.accept(std::slice::from_ref(&first)).unwrap(),
        vec![AcceptOutcome::Inserted {
            sequence_reused_by: None
        }]
    );
    assert_eq!(
        s.received(&mid(1)).unwrap(),
        Some((first.envelope_sha256, first.receipt.bytes.clone()))
    );
    assert_eq!(s.received(&mid(2)).unwrap(), None);

    // A replay carrying a freshly made receipt gets the stored one back; nothing is written.
    let mut replay = first.clone();
    replay.receipt = receipt(mid(1), a, "DELIVERED", "made later");
    replay.received_ms += 1000;
    assert_eq!(
        s.accept(&[replay]).unwrap(),
        vec![AcceptOutcome::Duplicate {
            receipt: first.receipt.bytes.clone()
        }]
    );
    assert_eq!(count(&path, "inbox"), 1);
    assert_eq!(count(&path, "receipts_out"), 1);
    // The DELIVERED receipt travelled on the envelope's stream: it is not waiting for ReceiptStored.
    assert!(s.unconfirmed_receipts(&a).unwrap().is_empty());
}

#[test]
fn accept_conflict_leaves_the_first_envelope_untouched() {
    let (_dir, path, mut s) = temp_store();
    let a = node(1);
    let first = arrival(1, a, 1, "envelope one");
    s.accept(std::slice::from_ref(&first)).unwrap();
    let mut other = arrival(1, a, 9, "different bytes, same id");
    other.subject = "forged".into();
    assert_eq!(s.accept(&[other]).unwrap(), vec![AcceptOutcome::Conflict]);

    assert_eq!(
        s.received(&mid(1)).unwrap(),
        Some((first.envelope_sha256, first.receipt.bytes.clone()))
    );
    let inbox = s.inbox(10).unwrap();
    assert_eq!(inbox.len(), 1);
    assert_eq!(
        (inbox[0].subject.as_str(), inbox[0].sequence),
        ("incoming 1", 1)
    );
    assert_eq!(s.received_sequences(&a).unwrap(), vec![(1, 1)]);
    let stored: Vec<u8> = raw(&path)
        .query_row("SELECT envelope FROM inbox", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, first.envelope.to_vec());
}

#[test]
fn accept_handles_duplicates_and_conflicts_inside_one_batch() {
    let (_dir, path, mut s) = temp_store();
    let a = node(1);
    let first = arrival(1, a, 1, "envelope one");
    let outcomes = s
        .accept(&[
            first.clone(),
            arrival(2, a, 2, "envelope two"),
            first.clone(),
            arrival(1, a, 1, "envelope one, altered"),
        ])
        .unwrap();
    assert_eq!(
        outcomes,
        vec![
            AcceptOutcome::Inserted {
                sequence_reused_by: None
            },
            AcceptOutcome::Inserted {
                sequence_reused_by: None
            },
            AcceptOutcome::Duplicate {
                receipt: first.receipt.bytes.clone()
            },
            AcceptOutcome::Conflict,
        ]
    );
    assert_eq!(count(&path, "inbox"), 2);
}

#[test]
fn accept_refuses_a_receipt_about_another_message_and_stores_nothing() {
    let (_dir, path, mut s) = temp_store();
    let a = node(1);
    let mut bad = arrival(2, a, 2, "two");
    bad.receipt = receipt(mid(3), a, "DELIVERED", "");
    let err = s.accept(&[arrival(1, a, 1, "one"), bad]).unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    assert_eq!(count(&path, "inbox"), 0);
    assert_eq!(count(&path, "receipts_out"), 0);
}

#[test]
fn received_sequences_merges_into_inclusive_ranges() {
    let (_dir, _path, mut s) = temp_store();
    let (a, b) = (node(1), node(2));
    assert!(s.received_sequences(&a).unwrap().is_empty());
    let seqs: [u64; 12] = [
        5,
        1,
        2,
        3,
        7,
        8,
        10,
        1 << 62,
        (1 << 63) - 1, // the largest value stored non-negative …
        1 << 63,       // … and the smallest stored negative: still one range
        u64::MAX,
        u64::MAX - 1,
    ];
    let batch: Vec<Arrival> = seqs
        .iter()
        .zip(1..)
        .map(|(&q, n)| arrival(n, a, q, &format!("envelope {n}")))
        .collect();
    s.accept(&batch).unwrap();
    // A broken peer reusing sequence 3 for another message: accepted, counted once.
    s.accept(&[arrival(100, a, 3, "reused three")]).unwrap();
    s.accept(&[arrival(200, b, 4, "from b")]).unwrap();

    assert_eq!(
        s.received_sequences(&a).unwrap(),
        vec![
            (1, 3),
            (5, 5),
            (7, 8),
            (10, 10),
            (1 << 62, 1 << 62),
            ((1 << 63) - 1, 1 << 63),
            (u64::MAX - 1, u64::MAX),
        ]
    );
    assert_eq!(s.received_sequences(&b).unwrap(), vec![(4, 4)]);
    let huge = s.inbox(100).unwrap();
    assert!(huge.iter().any(|r| r.sequence == u64::MAX));
}

#[test]
fn inbox_lists_newest_first_with_the_acknowledged_flag() {
    let (_dir, _path, mut s) = temp_store();
    let a = node(1);
    let mut batch: Vec<Arrival> = (1..=4)
        .map(|n| arrival(n, a, u64::from(n), &format!("e{n}")))
        .collect();
    batch[3].received_ms = batch[1].received_ms; // a tie: arrival order decides
    s.accept(&batch).unwrap();
    s.store_own_receipt(&receipt(mid(2), a, "ACKNOWLEDGED", ""))
        .unwrap();

    let rows = s.inbox(10).unwrap();
    let ids: Vec<MessageId> = rows.iter().map(|r| r.message_id).collect();
    assert_eq!(ids, vec![mid(3), mid(4), mid(2), mid(1)]);
    let acked: Vec<bool> = rows.iter().map(|r| r.acknowledged).collect();
    assert_eq!(acked, vec![false, false, true, false]);
    let r = &rows[2];
    let a2 = &batch[1];
    assert_eq!(
        (
            r.peer,
            r.sequence,
            r.precedence,
            r.tlp.as_str(),
            r.created_ms
        ),
        (a, 2, a2.precedence, "green", a2.created_ms)
    );
    assert_eq!(
        (r.received_ms, r.subject.as_str(), r.officer.as_str()),
        (a2.received_ms, "incoming 2", "their officer")
    );
    assert_eq!(s.inbox(2).unwrap().len(), 2);
    assert!(s.inbox(0).unwrap().is_empty());
}

#[test]
fn own_receipts_stay_unconfirmed_until_the_peer_confirms_them() {
    let (_dir, path, mut s) = temp_store();
    let (a, b) = (node(1), node(2));
    s.accept(&[
        arrival(1, a, 1, "one"),
        arrival(2, a, 2, "two"),
        arrival(3, b, 1, "three"),
    ])
    .unwrap();
    let ack1 = receipt(mid(1), a, "ACKNOWLEDGED", "");
    let ack2 = receipt(mid(2), a, "ACKNOWLEDGED", "");
    let ack3 = receipt(mid(3), b, "ACKNOWLEDGED", "");
    for r in [&ack1, &ack2, &ack3, &ack1] {
        s.store_own_receipt(r).unwrap();
    }
    assert_eq!(count(&path, "receipts_out"), 6); // 3 DELIVERED + 3 ACKNOWLEDGED
    assert_eq!(
        s.unconfirmed_receipts(&a).unwrap(),
        vec![ack1.bytes.clone(), ack2.bytes.clone()]
    );
    assert_eq!(
        s.unconfirmed_receipts(&b).unwrap(),
        vec![ack3.bytes.clone()]
    );

    s.confirm_receipt(&ack1.sha256).unwrap();
    s.confirm_receipt(&[0; 32]).unwrap(); // unknown: ignored
    assert_eq!(
        s.unconfirmed_receipts(&a).unwrap(),
        vec![ack2.bytes.clone()]
    );
    // Storing it again does not make it unconfirmed again.
    s.store_own_receipt(&ack1).unwrap();
    assert_eq!(
        s.unconfirmed_receipts(&a).unwrap(),
        vec![ack2.bytes.clone()]
    );

    drop(s);
    let mut s = SqliteStore::open(&path).unwrap();
    assert_eq!(
        s.unconfirmed_receipts(&a).unwrap(),
        vec![ack2.bytes.clone()]
    );
    assert!(s.inbox(10).unwrap().iter().all(|r| r.acknowledged));

    let err = s
        .store_own_receipt(&receipt(mid(9), a, "ACKNOWLEDGED", ""))
        .unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
}

/// Two officers acknowledging one message at once: the second gets the first receipt, and
/// the database holds (and will send the peer) only one.
#[test]
fn a_message_gets_at_most_one_acknowledged_receipt() {
    let (_dir, path, mut s) = temp_store();
    let a = node(1);
    s.accept(&[arrival(1, a, 1, "one")]).unwrap();
    let first = receipt(mid(1), a, "ACKNOWLEDGED", "first officer");
    let second = receipt(mid(1), a, "ACKNOWLEDGED", "second officer");
    assert_eq!(
        s.store_own_receipt(&first).unwrap(),
        OwnReceiptOutcome::Stored
    );
    assert_eq!(
        s.store_own_receipt(&second).unwrap(),
        OwnReceiptOutcome::AlreadyAcknowledged(first.bytes.clone())
    );
    // The same bytes again are not a second acknowledgement.
    assert_eq!(
        s.store_own_receipt(&first).unwrap(),
        OwnReceiptOutcome::Stored
    );
    assert_eq!(
        s.unconfirmed_receipts(&a).unwrap(),
        vec![first.bytes.clone()]
    );
    // The schema refuses a second one too.
    let conn = raw(&path);
    let inserted = conn.execute(
        "INSERT INTO receipts_out (sha256, message_id, peer, kind, bytes, stored_ms, confirmed) \
         VALUES (?1, ?2, ?3, 'ACKNOWLEDGED', x'00', 1, 0)",
        rusqlite::params![&second.sha256[..], &mid(1)[..], &a.as_bytes()[..]],
    );
    assert!(inserted.is_err(), "a second ACKNOWLEDGED was stored");
}

// ----- audit -----

#[test]
fn audit_returns_the_most_recent_events_newest_first() {
    let (_dir, path, mut s) = temp_store();
    assert!(s.recent_audit(10).unwrap().is_empty());
    let events = vec![
        event(1, "peer_added", Some(node(1)), None),
        event(2, "submitted", Some(node(1)), Some(mid(1))),
        event(0, "link_up", None, None), // clock stepped back: insertion order still rules
    ];
    s.audit(&events).unwrap();
    s.audit(&[event(3, "delivered", Some(node(1)), Some(mid(1)))])
        .unwrap();
    drop(s);

    let mut s = SqliteStore::open(&path).unwrap();
    let recent = s.recent_audit(3).unwrap();
    assert_eq!(
        recent,
        vec![
            event(3, "delivered", Some(node(1)), Some(mid(1))),
            events[2].clone(),
            events[1].clone(),
        ]
    );
    assert_eq!(s.recent_audit(100).unwrap().len(), 4);
}

// ----- durability, health, versions -----

#[test]
fn everything_survives_close_and_reopen() {
    let (_dir, path, mut s) = temp_store();
    let a = node(1);
    s.add_peer(&peer_record("cert-a", 1)).unwrap();
    s.submit(&routine(1..=2, a)).unwrap();
    s.attach_envelopes(&[envelope_of(1)]).unwrap();
    s.record_receipts(&[receipt(mid(1), a, "DELIVERED", "")])
        .unwrap();
    let inbound = arrival(10, a, 1, "incoming");
    s.accept(std::slice::from_ref(&inbound)).unwrap();
    s.audit(&[event(1, "submitted", Some(a), Some(mid(1)))])
        .unwrap();
    drop(s);

    let mut s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.peers().unwrap(), vec![peer_record("cert-a", 1)]);
    assert_eq!(s.out_state(&mid(1)).unwrap(), Some(OutState::Delivered));
    assert_eq!(s.sent_envelope(&mid(1)).unwrap(), Some(envelope_of(1).1));
    assert_eq!(s.unsealed().unwrap().len(), 1);
    assert_eq!(s.last_sequence(&a).unwrap(), 2);
    assert_eq!(
        s.received(&mid(10)).unwrap(),
        Some((inbound.envelope_sha256, inbound.receipt.bytes))
    );
    assert_eq!(s.recent_audit(1).unwrap().len(), 1);
    assert!(s.check().unwrap().is_empty());
}

#[test]
fn the_database_runs_in_wal_mode() {
    let (_dir, path, _s) = temp_store();
    let mode: String = raw(&path)
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn check_finds_no_problem_in_a_healthy_database() {
    let (_dir, _path, mut s) = temp_store();
    assert_eq!(s.check().unwrap(), Vec::<String>::new());
    let a = node(1);
    s.submit(&routine(1..=3, a)).unwrap();
    s.accept(&[arrival(10, a, 1, "in")]).unwrap();
    s.store_own_receipt(&receipt(mid(10), a, "ACKNOWLEDGED", ""))
        .unwrap();
    assert_eq!(s.check().unwrap(), Vec::<String>::new());
}

#[test]
fn check_reports_sequence_holes_and_dangling_references() {
    let (_dir, path, mut s) = temp_store();
    let a = node(1);
    s.submit(&routine(1..=3, a)).unwrap();
    s.accept(&[arrival(10, a, 1, "in")]).unwrap();
    {
        let c = raw(&path);
        c.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        c.execute("DELETE FROM outbox WHERE sequence = 2", [])
            .unwrap();
        c.execute("DELETE FROM inbox", []).unwrap();
    }
    let problems = s.check().unwrap();
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].contains("receipts_out"), "{problems:#?}");
    assert!(problems[1].contains("holes"), "{problems:#?}");
}

#[test]
fn a_file_that_is_not_a_database_is_refused_with_a_database_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.db");
    let mut garbage = vec![0x5a; 8192];
    garbage[..15].copy_from_slice(b"not sqlite at a");
    std::fs::write(&path, &garbage).unwrap();
    match SqliteStore::open(&path) {
        Err(StoreError::Database(m)) => {
            assert!(m.contains("not a database"), "{m}");
            assert!(m.contains("node.db"), "{m}");
        }
        other => panic!("expected a Database error, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[test]
fn a_database_of_another_program_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    raw(&path)
        .execute_batch("CREATE TABLE notes (text TEXT);")
        .unwrap();
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::Database(m)) if m.contains("not a hotlined database")
    ));
    raw(&path)
        .execute_batch("DROP TABLE notes; PRAGMA application_id = 1;")
        .unwrap();
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::Database(m)) if m.contains("not a hotlined database")
    ));
}

#[test]
fn a_version_0_database_is_migrated_to_the_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.db");
    {
        // What an empty, never-migrated file looks like: a valid SQLite header, version 0.
        let c = raw(&path);
        c.execute_batch("PRAGMA user_version = 0; VACUUM;").unwrap();
        let v: u32 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, 0);
    }
    let mut s = SqliteStore::open(&path).unwrap();
    let v: u32 = raw(&path)
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    assert!(s.check().unwrap().is_empty());
    s.submit(&routine([1], node(1))).unwrap();
    drop(s);
    // Reopening an up-to-date database migrates nothing and loses nothing.
    let mut s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.last_sequence(&node(1)).unwrap(), 1);
}

#[test]
fn a_database_of_a_newer_hotlined_is_refused_untouched() {
    let (_dir, path, s) = temp_store();
    drop(s);
    raw(&path)
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let before = std::fs::read(&path).unwrap();
    match SqliteStore::open(&path) {
        Err(StoreError::TooNew { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected TooNew, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn open_in_memory_gives_a_working_store() {
    let mut s = SqliteStore::open_in_memory().unwrap();
    assert_eq!(
        seqs(s.submit(&routine(1..=2, node(1))).unwrap()),
        vec![1, 2]
    );
    assert!(s.check().unwrap().is_empty());
}

// ----- crash safety -----

const CHILD_DB: &str = "HOTLINE_STORE_CRASH_DB";
const CHILD_SEED: &str = "HOTLINE_STORE_CRASH_SEED";
const CRASH_ROUNDS: u32 = 10;
/// The peer the child submits to, the peers it receives from.
const CRASH_PEERS: [u8; 3] = [1, 2, 3];

/// Runs in the child process only (started by the test below): writes batches until killed,
/// printing `committed N` after each batch's last transaction returned.
#[test]
#[ignore = "the child process of kill_during_writes_leaves_whole_batches_and_contiguous_sequences"]
fn crash_child_process() {
    let (Ok(path), Ok(seed)) = (std::env::var(CHILD_DB), std::env::var(CHILD_SEED)) else {
        return; // run by hand with --ignored: nothing to do
    };
    let mut rng = TestRng::new(seed.parse().unwrap());
    let mut s = SqliteStore::open(Path::new(&path)).unwrap();
    let mut out = std::io::stdout().lock();
    // On a line of its own: the harness has printed "test crash_child_process ... " already.
    writeln!(out, "\nready").unwrap();
    out.flush().unwrap();
    let mut in_seq = 0u64;
    for batch in 0u32.. {
        let k = 1 + rng.below(24) as u32;
        let subs: Vec<Submission> = (0..k)
            .map(|i| {
                let peer = node(CRASH_PEERS[rng.below(3) as usize]);
                let mut sub = submission(batch * 1000 + i, peer, Precedence::Routine);
                sub.subject = format!("{batch}/{k}");
                sub
            })
            .collect();
        s.submit(&subs).unwrap();
        let envs: Vec<_> = (0..k).map(|i| envelope_of(batch * 1000 + i)).collect();
        s.attach_envelopes(&envs).unwrap();
        let arrivals: Vec<Arrival> = (0..k)
            .map(|i| {
                in_seq += 1;
                // Received messages have ids of their own: one id space per node.
                let id = (batch * 1000 + i) | 0x8000_0000;
                let mut a = arrival(id, node(9), in_seq, &format!("{batch}.{i}"));
                a.subject = format!("{batch}/{k}");
                a
            })
            .collect();
        s.accept(&arrivals).unwrap();
        s.audit(&[event(u64::from(batch), "batch", None, None)])
            .unwrap();
        writeln!(out, "committed {batch}").unwrap();
        out.flush().unwrap();
    }
}

/// Kills a writing child at a random moment, ten times, and checks after each that the
/// database opens clean, that every batch is whole (all or nothing per transaction), that
/// outgoing and incoming sequences have no holes, and that every batch the child saw
/// committed is there. (A SIGKILL keeps the OS page cache: this proves atomicity and
/// recovery, not fsync against power loss.)
#[test]
fn kill_during_writes_leaves_whole_batches_and_contiguous_sequences() {
    let seed = {
        use std::hash::{BuildHasher, RandomState};
        RandomState::new().hash_one(std::process::id())
    };
    let mut rng = TestRng::new(seed);
    let mut batches_seen = 0;
    for round in 0..CRASH_ROUNDS {
        let ctx = format!("seed {seed}, round {round}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.db");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash_child_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DB, &path)
            .env(CHILD_SEED, rng.below(u64::MAX).to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut committed = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line == "ready" {
                    let _ = tx.send(());
                } else if let Some(Ok(n)) = line.strip_prefix("committed ").map(str::parse) {
                    committed.push(n);
                }
            }
            committed
        });
        rx.recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{ctx}: child never got ready: {e}"));
        std::thread::sleep(Duration::from_millis(rng.below(150)));
        child.kill().unwrap();
        child.wait().unwrap();
        let committed = reader.join().unwrap();

        let mut s = SqliteStore::open(&path).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert_eq!(s.check().unwrap(), Vec::<String>::new(), "{ctx}");
        let c = raw(&path);
        let integrity: String = c
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(integrity, "ok", "{ctx}");

        // Outgoing: per peer 1..=n; per batch all rows present and all sealed or none.
        let mut total = 0;
        for p in CRASH_PEERS {
            let peer = node(p);
            let n = s.last_sequence(&peer).unwrap();
            let (rows, lo): (i64, i64) = c
                .query_row(
                    "SELECT count(*), coalesce(min(sequence), 1) FROM outbox WHERE peer = ?1",
                    [&peer.as_bytes()[..]],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            assert_eq!(
                (rows as u64, lo),
                (n, 1),
                "{ctx}: outgoing sequences to peer {p}"
            );
            total += n;
        }
        let whole = |sql: &str| -> BTreeSet<u32> {
            let mut stmt = c.prepare(sql).unwrap();
            let rows: Vec<(String, u32, u32)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            rows.iter()
                .map(|(subject, n, sealed)| {
                    let (b, k) = subject.split_once('/').unwrap();
                    let k: u32 = k.parse().unwrap();
                    assert_eq!(*n, k, "{ctx}: batch {subject} is not whole");
                    assert!(
                        *sealed == 0 || *sealed == k,
                        "{ctx}: batch {subject} half sealed"
                    );
                    b.parse().unwrap()
                })
                .collect()
        };
        let out_batches =
            whole("SELECT subject, count(*), count(envelope) FROM outbox GROUP BY subject");
        let in_batches = whole("SELECT subject, count(*), 0 FROM inbox GROUP BY subject");
        assert_eq!(total, count(&path, "outbox") as u64, "{ctx}");

        // Incoming: 1..=n from the one sending peer, no holes.
        let received = s.received_sequences(&node(9)).unwrap();
        let n_in = count(&path, "inbox") as u64;
        if n_in > 0 {
            assert_eq!(received, vec![(1, n_in)], "{ctx}");
        }

        // Batches 0..m are stored, where m is the last reported commit or the one after it
        // (committed, killed before it was printed); nothing reported is missing.
        let reported: BTreeSet<u32> = committed.iter().copied().collect();
        let expected_min: BTreeSet<u32> = (0..committed.len() as u32).collect();
        assert_eq!(reported, expected_min, "{ctx}");
        for stored in [&out_batches, &in_batches] {
            assert!(
                stored.is_superset(&reported),
                "{ctx}: a reported batch is missing"
            );
            let extra: Vec<u32> = stored.difference(&reported).copied().collect();
            assert!(
                extra.iter().all(|&b| b == committed.len() as u32),
                "{ctx}: unexpected batches {extra:?}"
            );
        }
        assert!(in_batches.is_subset(&out_batches), "{ctx}");
        eprintln!(
            "{ctx}: {} batches reported, {} stored, {total} messages out, {n_in} in",
            committed.len(),
            out_batches.len()
        );
        batches_seen += out_batches.len();
    }
    assert!(
        batches_seen > 0,
        "seed {seed}: no child ever committed a batch; the test proved nothing"
    );
}

#[test]
fn a_group_commits_its_writes_together_and_a_failing_write_rolls_back_alone() {
    let (_dir, path, mut s) = temp_store();
    let a = node(1);
    let mut results = Vec::new();
    s.group(&mut |st| {
        results.push(st.submit(&routine([1, 2], a)).map(|v| v.len()));
        // Message 1's envelope, then one for a message that does not exist: this write fails
        // and rolls back alone, message 1's envelope with it.
        results.push(
            st.attach_envelopes(&[
                (mid(1), Bytes::from_static(b"e1"), sha256(b"e1")),
                (mid(99), Bytes::from_static(b"e"), sha256(b"e")),
            ])
            .map(|()| 0),
        );
        results.push(st.submit(&routine([4], a)).map(|v| v.len()));
    })
    .unwrap();
    assert!(matches!(results[0], Ok(2)), "{results:?}");
    assert!(
        matches!(results[1], Err(StoreError::Database(_))),
        "{results:?}"
    );
    assert!(matches!(results[2], Ok(1)), "{results:?}");
    drop(s);
    // Durable: a fresh connection sees messages 1, 2 and 4, and message 1 still unsealed.
    assert_eq!(count(&path, "outbox"), 3);
    let mut s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.last_sequence(&a).unwrap(), 3);
    assert_eq!(s.out_state(&mid(1)).unwrap(), Some(OutState::Unsealed));
}
