//! The retention policy (issue 13 A3, SPEC.md §13.4): what `Store::purge` removes and what it
//! keeps, in a store holding messages of every age and state, and what Show gives for a
//! message after a running node applied `[retention]`.

mod common;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::{Client, draft, runtime, send_request, show, start, two_nodes, wait_state};
use hotline_node::config;
use hotline_node::store::sqlite::SqliteStore;
use hotline_node::store::{
    Arrival, OutState, Purged, ReceiptRecord, RetentionPolicy, Store, StoredMessage, Submission,
};
use hotline_protocol::NodeId;
use hotline_protocol::content::Precedence;
use hotline_protocol::crypto::sha256;
use hotline_protocol::envelope::MessageId;
use hotline_protocol::identity::IdentityKey;
use hotline_protocol::time::DAY;
use hotline_protocol::wire::{self, operator_request::Request, operator_response::Response};

/// "Now" in these tests; messages are stored some days before it.
const NOW: u64 = 1_900_000_000_000;

/// Plaintext 40 days, envelopes and receipts 60 days.
const POLICY: RetentionPolicy = RetentionPolicy {
    plaintext_ms: Some(40 * DAY),
    envelopes_ms: Some(60 * DAY),
    receipts_ms: Some(60 * DAY),
};

fn node(n: u8) -> NodeId {
    IdentityKey::from_seed(&[n; 32]).expect("a valid seed").id()
}

fn mid(n: u8) -> MessageId {
    [n; 16]
}

fn envelope(n: u8) -> Bytes {
    Bytes::from(format!("envelope of message {n}").repeat(10))
}

fn receipt(n: u8, peer: NodeId, kind: &str, stored_ms: u64) -> ReceiptRecord {
    let bytes = Bytes::from(format!("{kind} receipt of message {n}"));
    ReceiptRecord {
        message_id: mid(n),
        peer,
        kind: kind.into(),
        sha256: sha256(&bytes),
        bytes,
        stored_ms,
    }
}

/// Message `n` to `peer`, submitted `days_ago`, then sealed (unless `state` is unsealed) and
/// answered by a receipt of the kind its final `state` needs, stored at the same time.
fn sent(s: &mut SqliteStore, n: u8, peer: NodeId, days_ago: u64, state: OutState) {
    let at = NOW - days_ago * DAY;
    s.submit(&[Submission {
        message_id: mid(n),
        peer,
        precedence: Precedence::Routine,
        tlp: "amber".into(),
        created_ms: at,
        content: Bytes::from(format!("content of message {n}")),
        subject: format!("subject {n}"),
        officer: "Anna".into(),
    }])
    .expect("submit");
    if state == OutState::Unsealed {
        return;
    }
    s.attach_envelopes(&[(mid(n), envelope(n), sha256(&envelope(n)))])
        .expect("seal");
    let kind = match state {
        OutState::Delivered => "DELIVERED",
        OutState::Acknowledged => "ACKNOWLEDGED",
        OutState::Rejected => "REJECTED",
        _ => return,
    };
    s.record_receipts(&[receipt(n, peer, kind, at)])
        .expect("receipt");
    assert_eq!(s.out_state(&mid(n)).expect("state"), Some(state));
}

/// Message `n` from `peer`, received `days_ago` with its DELIVERED receipt.
fn received(s: &mut SqliteStore, n: u8, peer: NodeId, days_ago: u64) {
    s.accept(&[arrival(n, peer, days_ago)]).expect("accept");
}

fn arrival(n: u8, peer: NodeId, days_ago: u64) -> Arrival {
    let at = NOW - days_ago * DAY;
    Arrival {
        message_id: mid(n),
        peer,
        sequence: u64::from(n),
        precedence: Precedence::Flash,
        tlp: "red".into(),
        created_ms: at - 1000,
        received_ms: at,
        envelope: envelope(n),
        envelope_sha256: sha256(&envelope(n)),
        content: Bytes::from(format!("content of message {n}")),
        subject: format!("subject {n}"),
        officer: "Vera".into(),
        receipt: receipt(n, peer, "DELIVERED", at),
    }
}

fn shown(s: &mut SqliteStore, n: u8) -> StoredMessage {
    s.message(&mid(n))
        .expect("read")
        .expect("the message is held")
}

/// Purges batch after batch, as the daemon does, and adds up what was removed.
fn purge_all(s: &mut SqliteStore, policy: &RetentionPolicy, max_rows: usize) -> (Purged, usize) {
    let mut total = Purged::default();
    let mut batches = 0;
    loop {
        let b = s.purge(policy, NOW, max_rows).expect("purge");
        batches += 1;
        assert!(b.contents + b.envelopes + b.receipts <= max_rows as u64);
        total.contents += b.contents;
        total.envelopes += b.envelopes;
        total.receipts += b.receipts;
        total.bytes += b.bytes;
        total.received.extend(b.received);
        if !b.more {
            return (total, batches);
        }
    }
}

#[test]
fn purge_removes_old_parts_of_final_messages_and_keeps_their_records_and_digests() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut s = SqliteStore::open(&dir.path().join("node.db")).expect("store");
    let (a, b) = (node(1), node(2));
    sent(&mut s, 1, a, 100, OutState::Delivered);
    sent(&mut s, 2, a, 100, OutState::Acknowledged);
    sent(&mut s, 3, a, 100, OutState::Rejected);
    sent(&mut s, 4, a, 100, OutState::Pending);
    sent(&mut s, 5, a, 100, OutState::Unsealed);
    sent(&mut s, 6, a, 50, OutState::Acknowledged);
    sent(&mut s, 7, a, 10, OutState::Acknowledged);
    received(&mut s, 11, b, 100);
    received(&mut s, 12, b, 50);
    received(&mut s, 13, b, 10);
    let quota_before = s.received_bytes_by_peer().unwrap();

    // Nothing is due under the default policy.
    assert_eq!(
        s.purge(&RetentionPolicy::default(), NOW, 500).unwrap(),
        Purged::default()
    );
    let (purged, _) = purge_all(&mut s, &POLICY, 500);
    // Content: 1, 2, 3, 6 sent (final, over 40 days), 11, 12 received. Envelopes: 2 and 3
    // (final, over 60 days; 1 is delivered: an ACKNOWLEDGED receipt may still come) and 11.
    // Receipts: those of 1, 2, 3 and 11 (stored over 60 days ago).
    assert_eq!(
        (purged.contents, purged.envelopes, purged.receipts),
        (6, 3, 4),
        "{purged:?}"
    );

    // A delivered message: content gone, envelope kept, its receipt's bytes gone.
    let m = shown(&mut s, 1);
    assert_eq!(m.content, Bytes::new());
    assert_eq!(m.row.subject, "");
    assert_eq!(m.removed.content_ms, Some(NOW));
    assert_eq!(m.envelope, envelope(1));
    assert_eq!(m.removed.envelope_ms, None);
    assert!(m.receipts.is_empty());
    assert_eq!((m.removed.receipts, m.removed.receipts_ms), (1, Some(NOW)));
    // The record stays: peer, sequence, precedence, TLP, officer, time, state.
    assert_eq!(
        (
            m.row.peer,
            m.row.sequence,
            m.row.tlp.as_str(),
            m.row.officer.as_str()
        ),
        (a, 1, "amber", "Anna")
    );
    assert_eq!(
        (m.row.created_ms, m.row.state.as_str()),
        (NOW - 100 * DAY, "delivered")
    );
    assert_eq!(s.sent_envelope(&mid(1)).unwrap(), Some(envelope(1)));

    // An acknowledged one: the envelope goes too, its SHA-256 stays; it is no longer held for
    // checking a late receipt.
    let m = shown(&mut s, 2);
    assert_eq!(m.envelope, Bytes::new());
    assert_eq!(m.envelope_sha256, Some(sha256(&envelope(2))));
    assert_eq!(m.removed.envelope_ms, Some(NOW));
    assert_eq!(m.row.state, "acknowledged");
    assert_eq!(s.sent_envelope(&mid(2)).unwrap(), None);

    // Pending and unsealed messages are never touched, however old.
    for n in [4, 5] {
        let m = shown(&mut s, n);
        assert_eq!(m.content, Bytes::from(format!("content of message {n}")));
        assert_eq!(m.row.subject, format!("subject {n}"));
        assert!(!m.removed.any(), "{n}: {:?}", m.removed);
    }
    assert_eq!(s.pending_envelopes(&a).unwrap(), vec![envelope(4)]);
    assert_eq!(s.unsealed().unwrap()[0].submission.message_id, mid(5));

    // 50 days: past the plaintext period, within the evidence one.
    let m = shown(&mut s, 6);
    assert_eq!(m.removed.content_ms, Some(NOW));
    assert_eq!((m.envelope, m.receipts.len()), (envelope(6), 1));
    // Young messages keep everything.
    for n in [7, 13] {
        assert!(!shown(&mut s, n).removed.any());
    }

    // A received message of 100 days: content, envelope and our receipt's bytes gone; its
    // digest still answers duplicate detection.
    let m = shown(&mut s, 11);
    assert_eq!(
        (m.content.len(), m.envelope.len(), m.receipts.len()),
        (0, 0, 0)
    );
    assert_eq!(m.envelope_sha256, Some(sha256(&envelope(11))));
    assert_eq!(m.removed.envelope_ms, Some(NOW));
    assert_eq!(
        s.received(&mid(11)).unwrap().map(|r| r.0),
        Some(sha256(&envelope(11)))
    );
    let m = shown(&mut s, 12);
    assert_eq!(
        (m.content.len(), m.envelope, m.receipts.len()),
        (0, envelope(12), 1)
    );

    // The per-peer quota no longer counts what was removed.
    let removed_b: u64 = purged.received.iter().map(|(_, n)| n).sum();
    let before_b = quota_before.iter().find(|(p, _)| *p == b).unwrap().1;
    let after_b = s.received_bytes_by_peer().unwrap();
    assert_eq!(after_b, vec![(b, before_b - removed_b)]);
    assert!(removed_b > 0);

    // `hotlined check` sees nothing wrong; a second purge finds nothing more.
    assert!(s.check().unwrap().is_empty(), "{:?}", s.check().unwrap());
    assert_eq!(s.purge(&POLICY, NOW, 500).unwrap(), Purged::default());
}

#[test]
fn removed_plaintext_is_not_left_in_the_database_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("node.db");
    let mut s = SqliteStore::open(&path).expect("store");
    let marker = b"INCIDENT-4711-SECRET-DETAILS";
    let files = |path: &Path| -> Vec<u8> {
        let mut all = std::fs::read(path).expect("db");
        all.extend(std::fs::read(path.with_extension("db-wal")).unwrap_or_default());
        all
    };
    let holds = |bytes: &[u8]| bytes.windows(marker.len()).any(|w| w == marker);
    for (n, days) in [(1, 100), (2, 10)] {
        s.accept(&[Arrival {
            content: Bytes::from(
                [&marker[..], format!(" of {n} ").as_bytes()]
                    .concat()
                    .repeat(200),
            ),
            ..arrival(n, node(2), days)
        }])
        .expect("accept");
    }
    assert!(holds(&files(&path)), "the marker is stored at first");
    purge_all(&mut s, &POLICY, 500);
    let after = files(&path);
    let young = [&marker[..], b" of 2 "].concat();
    assert!(
        after.windows(young.len()).any(|w| w == young),
        "a young message keeps its content"
    );
    let old = [&marker[..], b" of 1 "].concat();
    assert!(
        !after.windows(old.len()).any(|w| w == old),
        "removed content is overwritten, in the database file and its write-ahead log"
    );
}

#[test]
fn export_holds_messages_whose_envelope_was_removed_with_their_digest() {
    let mut s = SqliteStore::open_in_memory().expect("store");
    let a = node(1);
    sent(&mut s, 2, a, 100, OutState::Acknowledged);
    sent(&mut s, 6, a, 50, OutState::Acknowledged);
    purge_all(&mut s, &POLICY, 500);
    let items = s.export_page(None, 0, None, 10).unwrap();
    assert_eq!(items.len(), 2, "a removed envelope still has its item");
    let old = &items[0];
    assert_eq!(old.position.message_id, mid(2));
    assert_eq!(old.envelope, Bytes::new());
    assert_eq!(old.envelope_sha256, sha256(&envelope(2)));
    assert_eq!(old.removed.envelope_ms, Some(NOW));
    assert_eq!(old.removed.receipts, 1);
    assert_eq!(old.removed.content_ms, None, "an export holds no content");
    let young = &items[1];
    assert_eq!(
        (young.envelope.clone(), young.receipts.len()),
        (envelope(6), 1)
    );
    assert!(!young.removed.any());
}

#[test]
fn receipts_that_may_still_be_needed_are_kept_whatever_the_policy() {
    let mut s = SqliteStore::open_in_memory().expect("store");
    let b = node(2);
    // Received 20 days ago: its DELIVERED receipt answers a retransmission for 30 days + 5
    // minutes (SPEC.md §10.4), even under a policy (refused by the configuration) of 1 day.
    received(&mut s, 1, b, 20);
    // Received 100 days ago and acknowledged by an officer; the peer has not confirmed the
    // ACKNOWLEDGED receipt yet, so it is still to be sent.
    received(&mut s, 2, b, 100);
    s.store_own_receipt(&receipt(2, b, "ACKNOWLEDGED", NOW - 90 * DAY))
        .unwrap();
    let policy = RetentionPolicy {
        receipts_ms: Some(DAY),
        ..Default::default()
    };
    let (purged, _) = purge_all(&mut s, &policy, 500);
    assert_eq!(
        purged.receipts, 1,
        "only the old DELIVERED receipt: {purged:?}"
    );
    assert_eq!(
        s.received(&mid(1)).unwrap(),
        Some((
            sha256(&envelope(1)),
            receipt(1, b, "DELIVERED", NOW - 20 * DAY).bytes
        ))
    );
    assert_eq!(
        s.unconfirmed_receipts(&b).unwrap(),
        vec![receipt(2, b, "ACKNOWLEDGED", 0).bytes]
    );
    // Once confirmed, it goes too.
    s.confirm_receipt(&receipt(2, b, "ACKNOWLEDGED", 0).sha256)
        .unwrap();
    assert_eq!(purge_all(&mut s, &policy, 500).0.receipts, 1);
    assert_eq!(shown(&mut s, 2).removed.receipts, 2);
    assert_eq!(shown(&mut s, 2).row.state, "acknowledged");
}

#[test]
fn a_large_backlog_is_purged_in_bounded_batches() {
    let mut s = SqliteStore::open_in_memory().expect("store");
    let a = node(1);
    for n in 1..=7 {
        sent(&mut s, n, a, 100, OutState::Acknowledged);
    }
    // 7 contents, 7 envelopes and 7 receipts, at most 4 per transaction.
    let (purged, batches) = purge_all(&mut s, &POLICY, 4);
    assert_eq!(
        (purged.contents, purged.envelopes, purged.receipts),
        (7, 7, 7)
    );
    assert_eq!(batches, 6, "21 rows, 4 a batch: the last one not full");
    for n in 1..=7 {
        let r = shown(&mut s, n).removed;
        assert!(r.content_ms.is_some() && r.envelope_ms.is_some() && r.receipts == 1);
    }
}

// ----- the node -----

fn set_retention(dir: &Path, r: config::Retention) {
    let mut cfg = config::Config::load(dir).expect("config");
    cfg.retention = r;
    std::fs::write(dir.join(config::CONFIG_FILE), cfg.to_toml()).expect("write config");
}

/// Moves every time B stored for its messages `days` into the past, as if they had arrived
/// then (the node's clock cannot be moved).
fn age(dir: &Path, days: u64) {
    let conn = rusqlite::Connection::open(dir.join(config::DB_FILE)).expect("db");
    let ms = i64::try_from(days * DAY).expect("ms");
    conn.execute_batch(&format!(
        "UPDATE inbox SET received_ms = received_ms - {ms}, created_ms = created_ms - {ms}; \
         UPDATE receipts_out SET stored_ms = stored_ms - {ms};"
    ))
    .expect("age");
}

#[test]
fn show_after_the_node_applied_retention_says_what_was_removed_and_when() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = two_nodes(
        tmp.path(),
        &[
            ('a', "Anna", "officer", "anna.cred"),
            ('b', "Vera", "viewer", "vera.cred"),
            ('b', "Bruno", "officer", "bruno.cred"),
        ],
    );
    let id = common::random_id();
    let sha = runtime().block_on(async {
        let (na, nb) = (start(a.clone()).await, start(b.clone()).await);
        let anna = Client::connect(&a.join("anna.cred"), na.local_addr)
            .await
            .expect("anna");
        let b_id = common::peer_id(&anna).await;
        let req = send_request(&anna, id, "cert-b", &b_id, &draft("old news"));
        assert!(matches!(
            anna.call(Request::Send(req)).await.expect("send"),
            Response::Send(_)
        ));
        let s = wait_state(&anna, id, |st| st == "delivered").await;
        na.shutdown().await;
        nb.shutdown().await;
        sha256(&s.envelope)
    });
    age(&b, 100);
    set_retention(
        &b,
        config::Retention {
            plaintext_days: 40,
            envelopes_days: 60,
            receipts_days: 60,
        },
    );
    runtime().block_on(async {
        let nb = start(b.clone()).await;
        let vera = Client::connect(&b.join("vera.cred"), nb.local_addr)
            .await
            .expect("vera");
        // The first pass runs at start.
        let t0 = std::time::Instant::now();
        let s: wire::ShowResponse = loop {
            match show(&vera, id).await {
                Response::Show(s) if s.removed.is_some() => break s,
                Response::Show(_) => {}
                other => panic!("{other:?}"),
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "never purged");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let r = s.removed.expect("removal");
        assert!(s.content.is_empty() && s.envelope.is_empty() && s.receipts.is_empty());
        assert_eq!(&r.message_id[..], &id[..]);
        assert_eq!(&r.envelope_sha256[..], &sha[..]);
        let now = hotline_transport::now_ms();
        for at in [r.content_ms, r.envelope_ms, r.receipts_ms] {
            assert!(at > 0 && at <= now && now - at < 60_000, "{r:?}");
        }
        assert_eq!(r.receipts, 1, "the DELIVERED receipt of B");
        let m = s.summary.expect("summary");
        assert_eq!(
            (m.officer.as_str(), m.subject.as_str(), m.state.as_str()),
            ("Anna", "", "received")
        );
        // Its envelope gone, it can no longer be acknowledged; the officer is told why.
        let bruno = Client::connect(&b.join("bruno.cred"), nb.local_addr)
            .await
            .expect("bruno");
        let answer = bruno
            .call(Request::Ack(wire::AckRequest {
                message_id: id.to_vec().into(),
                ack: Some(Default::default()),
            }))
            .await
            .expect("ack");
        match answer {
            Response::Error(e) => {
                assert_eq!(e.code, wire::OperatorErrorCode::BadRequest as i32);
                assert!(
                    e.message.contains("removed by the node's retention policy"),
                    "{e:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        // The pass goes into the audit trail once its last batch is done.
        let conn = rusqlite::Connection::open(b.join(config::DB_FILE)).expect("db");
        let detail: String = loop {
            let row = conn.query_row(
                "SELECT detail FROM audit WHERE kind = 'retention_purged'",
                [],
                |r| r.get(0),
            );
            if let Ok(d) = row {
                break d;
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "no audit row");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(
            detail.contains("content of 1 message(s), 1 envelope(s) and 1 receipt(s)"),
            "{detail}"
        );
        // And in the metrics: one content, one envelope and one receipt.
        assert!(
            nb.metrics_text()
                .contains("\nhotline_retention_removed_total 3\n"),
            "{}",
            nb.metrics_text()
        );
        nb.shutdown().await;
    });
    let mut store = SqliteStore::open(&b.join(config::DB_FILE)).expect("db");
    assert!(store.check().expect("check").is_empty());
}
