//! Sequence safety across a restore, in the store (issue 13 item A9, SPEC.md §10.1): a
//! sequence floor that `submit` assigns above and `check` accounts for, the high-water mark
//! that follows every committed sequence, and the receiver's alert when the peer reuses a
//! sequence for another message.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use hotline_node::store::high_water::{HWM_FILE, HighWater, MAX_SEQUENCE_FLOOR};
use hotline_node::store::sqlite::SqliteStore;
use hotline_node::store::{
    AcceptOutcome, Arrival, FloorSource, ReceiptRecord, Store, StoreError, Submission,
    SubmitOutcome,
};
use hotline_protocol::NodeId;
use hotline_protocol::content::Precedence;
use hotline_protocol::crypto::sha256;
use hotline_protocol::envelope::MessageId;
use hotline_protocol::identity::IdentityKey;
use tempfile::TempDir;

const T0: u64 = 1_800_000_000_000;

fn node(n: u8) -> NodeId {
    IdentityKey::from_seed(&[n; 32]).expect("a valid seed").id()
}

fn mid(n: u32) -> MessageId {
    let mut id = [0x5a; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    id
}

fn hex(id: &MessageId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

fn submission(n: u32, peer: NodeId) -> Submission {
    Submission {
        message_id: mid(n),
        peer,
        precedence: Precedence::Routine,
        tlp: "amber".into(),
        created_ms: T0 + u64::from(n),
        content: Bytes::from(format!("content of {n}")),
        subject: format!("subject {n}"),
        officer: "duty officer".into(),
    }
}

/// Submits messages `ns` to `peer`, each in its own batch; their sequences.
fn submit(s: &mut SqliteStore, ns: impl IntoIterator<Item = u32>, peer: NodeId) -> Vec<u64> {
    ns.into_iter()
        .map(
            |n| match s.submit(&[submission(n, peer)]).expect("submit")[..] {
                [SubmitOutcome::Stored(seq)] => seq,
                ref other => panic!("expected a stored message, got {other:?}"),
            },
        )
        .collect()
}

fn arrival(n: u32, peer: NodeId, sequence: u64) -> Arrival {
    let envelope = Bytes::from(format!("envelope {n}"));
    let envelope_sha256 = sha256(&envelope);
    let receipt = Bytes::from(format!("DELIVERED receipt for {n}"));
    Arrival {
        message_id: mid(n),
        peer,
        sequence,
        precedence: Precedence::Priority,
        tlp: "green".into(),
        created_ms: T0,
        received_ms: T0 + u64::from(n),
        receipt: ReceiptRecord {
            message_id: mid(n),
            peer,
            kind: "DELIVERED".into(),
            sha256: sha256(&receipt),
            bytes: receipt,
            stored_ms: T0,
        },
        envelope,
        envelope_sha256,
        content: Bytes::from(format!("content of {n}")),
        subject: format!("incoming {n}"),
        officer: "their officer".into(),
    }
}

fn temp_store() -> (TempDir, PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("hotline.db");
    let store = SqliteStore::open(&path).expect("open a new store");
    (dir, path, store)
}

fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).expect("open a plain connection")
}

fn audit_of(s: &mut SqliteStore, kind: &str) -> Vec<hotline_node::store::AuditEvent> {
    let mut rows = s.recent_audit(1000).expect("audit");
    rows.retain(|e| e.kind == kind);
    rows
}

#[test]
fn submit_assigns_above_a_recorded_floor_and_only_a_higher_floor_is_recorded() {
    let (_dir, path, mut s) = temp_store();
    let (a, b) = (node(1), node(2));
    assert_eq!(submit(&mut s, 1..=2, a), [1, 2]);

    // The restored database knew 2; the lost copy had assigned up to 7.
    let raised = s.raise_sequence_floor(&a, 7, FloorSource::HighWaterMark, T0);
    assert_eq!(raised.unwrap(), Some(2));
    let rows = audit_of(&mut s, "sequence_rollback");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].peer, Some(a));
    assert!(
        rows[0].detail.contains("up to 2") && rows[0].detail.contains("from 8 on"),
        "{rows:?}"
    );

    // Not higher than what is known: nothing recorded, nothing audited.
    for floor in [7, 5, 2, 1] {
        let again = s.raise_sequence_floor(&a, floor, FloorSource::PeerReceivedThrough, T0);
        assert_eq!(again.unwrap(), None, "floor {floor}");
    }
    assert_eq!(audit_of(&mut s, "sequence_rollback").len(), 1);

    // New messages continue above the floor, in one batch or several, and across reopen.
    let both = s
        .submit(&[submission(3, a), submission(4, a), submission(5, b)])
        .unwrap();
    assert_eq!(
        both,
        [
            SubmitOutcome::Stored(8),
            SubmitOutcome::Stored(9),
            SubmitOutcome::Stored(1), // another peer's sequences are not touched
        ]
    );
    drop(s);
    let mut s = SqliteStore::open(&path).unwrap();
    assert_eq!(submit(&mut s, [6], a), [10]);
    assert_eq!(s.last_sequence(&a).unwrap(), 10);

    // A later floor above the stored sequences is recorded beside the first.
    let third = s.raise_sequence_floor(&a, 12, FloorSource::PeerReceivedThrough, T0 + 1);
    assert_eq!(third.unwrap(), Some(10));
    let rows = audit_of(&mut s, "sequence_rollback");
    assert!(rows[0].detail.contains("received_through"), "{rows:?}");
    assert_eq!(submit(&mut s, [7], a), [13]);
    let floors: i64 = raw(&path)
        .query_row("SELECT count(*) FROM sequence_floors", [], |r| r.get(0))
        .unwrap();
    assert_eq!(floors, 2);

    // A floor no node could have reached is refused: it would exhaust the sequence space.
    let huge = s.raise_sequence_floor(&a, MAX_SEQUENCE_FLOOR + 1, FloorSource::HighWaterMark, T0);
    assert!(matches!(huge, Err(StoreError::Conflict(_))), "{huge:?}");
    assert_eq!(submit(&mut s, [8], a), [14]);
}

#[test]
fn check_accepts_the_holes_a_floor_explains_and_reports_real_ones() {
    let (_dir, path, mut s) = temp_store();
    let (a, b) = (node(1), node(2));
    submit(&mut s, 1..=2, a);
    s.raise_sequence_floor(&a, 5, FloorSource::HighWaterMark, T0)
        .unwrap();
    submit(&mut s, 3..=4, a); // 6, 7
    s.raise_sequence_floor(&a, 9, FloorSource::PeerReceivedThrough, T0)
        .unwrap();
    submit(&mut s, [5], a); // 10
    submit(&mut s, 6..=7, b); // 1, 2: no floor
    assert_eq!(s.check().unwrap(), Vec::<String>::new());

    // A hole above a floor is still a hole; so is one below the first floor, and one of a peer
    // without a floor.
    {
        let c = raw(&path);
        c.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        for (peer, seq) in [(a, 6), (a, 1), (b, 1)] {
            c.execute(
                "DELETE FROM outbox WHERE peer = ?1 AND sequence = ?2",
                rusqlite::params![&peer.as_bytes()[..], seq],
            )
            .unwrap();
        }
    }
    let problems = s.check().unwrap();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(
        problems.iter().any(|p| p.contains("holes")
            && p.contains("from sequence 6 to 7")
            && p.contains("resumed above 5")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("from sequence 1 to 2") && !p.contains("resumed")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("1 messages, highest sequence 2")),
        "{problems:#?}"
    );
}

#[test]
fn the_high_water_mark_follows_every_committed_sequence_and_is_written_at_close() {
    let (dir, path, mut s) = temp_store();
    let (a, b) = (node(1), node(2));
    let hwm = dir.path().join(HWM_FILE);
    // Before the mark is loaded, nothing is noted (tools that open the store never write it).
    submit(&mut s, [1], a);
    let (hw, problems) = s.high_water().unwrap();
    let hw = hw.expect("a store on a file keeps a mark");
    assert!(problems.is_empty());
    assert_eq!(hw.path(), hwm);
    assert!(hw.marks().is_empty());

    submit(&mut s, 2..=3, a);
    submit(&mut s, [4], b);
    // Inside a group, noted when the group commits.
    s.group(&mut |g| {
        assert_eq!(
            g.submit(&[submission(5, a)]).unwrap(),
            [SubmitOutcome::Stored(4)]
        );
    })
    .unwrap();
    // A refused submission uses no sequence and notes none.
    let some = s.submit(&[submission(6, b), submission(1, b)]);
    assert_eq!(
        some.unwrap(),
        [SubmitOutcome::Stored(2), SubmitOutcome::IdInUse]
    );
    assert_eq!(hw.marks(), BTreeMap::from([(a, 4), (b, 2)]));

    // Lazily written: only when asked (the daemon asks once a second), or at close.
    assert!(hw.dirty());
    assert!(!hwm.exists());
    drop(s);
    let (read, problems) = HighWater::load(&hwm).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(read.marks(), BTreeMap::from([(a, 4), (b, 2)]));
    assert!(!hw.dirty(), "the close wrote it");
    // What the file says survives a reopen of the store.
    let mut s = SqliteStore::open(&path).unwrap();
    let (again, _) = s.high_water().unwrap();
    assert_eq!(again.unwrap().marks(), BTreeMap::from([(a, 4), (b, 2)]));
}

#[test]
fn accept_stores_and_flags_a_sequence_the_peer_reused_for_another_message() {
    let (_dir, path, mut s) = temp_store();
    let (a, b) = (node(1), node(2));
    let inserted = |by: Option<MessageId>| AcceptOutcome::Inserted {
        sequence_reused_by: by,
    };
    assert_eq!(
        s.accept(&[arrival(1, a, 7), arrival(2, b, 7)]).unwrap(),
        [inserted(None), inserted(None)],
        "the same sequence from two peers is no reuse"
    );
    // Another message from `a` with sequence 7: stored, flagged, audited.
    assert_eq!(
        s.accept(&[arrival(3, a, 7)]).unwrap(),
        [inserted(Some(mid(1)))]
    );
    // A replay of the same message is a duplicate, not a reuse.
    assert!(matches!(
        s.accept(&[arrival(3, a, 7)]).unwrap()[..],
        [AcceptOutcome::Duplicate { .. }]
    ));
    // Within one batch the earlier arrival counts; the earliest holder is named.
    assert_eq!(
        s.accept(&[arrival(4, a, 8), arrival(5, a, 8), arrival(6, a, 7)])
            .unwrap(),
        [
            inserted(None),
            inserted(Some(mid(4))),
            inserted(Some(mid(1)))
        ]
    );
    // A peer's sequence beyond i64 is compared as stored (two's complement).
    assert_eq!(
        s.accept(&[arrival(7, a, u64::MAX), arrival(8, a, u64::MAX)])
            .unwrap(),
        [inserted(None), inserted(Some(mid(7)))]
    );

    let held: i64 = raw(&path)
        .query_row("SELECT count(*) FROM inbox", [], |r| r.get(0))
        .unwrap();
    assert_eq!(held, 8, "every message is kept");
    let mut rows = audit_of(&mut s, "sequence_reused");
    rows.reverse();
    let named: Vec<_> = rows
        .iter()
        .map(|e| (e.peer, e.message_id, e.time_ms))
        .collect();
    assert_eq!(
        named,
        [
            (Some(a), Some(mid(3)), T0 + 3),
            (Some(a), Some(mid(5)), T0 + 5),
            (Some(a), Some(mid(6)), T0 + 6),
            (Some(a), Some(mid(8)), T0 + 8),
        ]
    );
    assert!(
        rows[0].detail.contains(&hex(&mid(3)))
            && rows[0].detail.contains(&hex(&mid(1)))
            && rows[0].detail.contains("sequence 7"),
        "{rows:?}"
    );
    assert_eq!(s.check().unwrap(), Vec::<String>::new());
}
