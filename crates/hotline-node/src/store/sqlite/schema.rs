//! The SQLite schema, its migrations and the checks `hotlined check` runs.
//!
//! The schema version is `PRAGMA user_version`. `MIGRATIONS[i]` brings a database from version
//! `i` to `i + 1`; each runs in its own IMMEDIATE transaction together with the version bump,
//! so a crash mid-migration leaves the previous version intact. A database whose version is
//! higher than this build knows is refused untouched (`StoreError::TooNew`): an older hotlined
//! must never write rows it does not understand.
//!
//! Rules for future migrations: append, never edit a released script; keep each script free of
//! `BEGIN`/`COMMIT` (the runner owns the transaction); a script that rebuilds a table must
//! follow SQLite's twelve-step procedure (foreign keys are ON and cannot be switched off
//! inside a transaction).

use rusqlite::{Connection, TransactionBehavior};

use super::super::{Result, StoreError};

/// `PRAGMA application_id` of a hotlined database ("HLND"), so a database file of another
/// program is refused instead of being migrated.
pub(crate) const APPLICATION_ID: i32 = 0x484c_4e44;

/// The migration scripts, in order.
const MIGRATIONS: &[&str] = &[
    V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12, V13, V14, V15,
];

/// The schema version this build writes: the number of migrations.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Version 15: the TLS key a peer used before the bundle it sent over the link (SPEC.md §4.4.4),
/// still accepted until a connection shows the new one. Can run again.
const V15: &str = r"
CREATE TABLE IF NOT EXISTS peer_previous_pins (
    peer      BLOB    PRIMARY KEY CHECK (length(peer) = 32),
    spki      BLOB    NOT NULL CHECK (length(spki) = 32),
    since_ms  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
";

/// Version 14: key revocations (SPEC.md §4.6), this node's own (`hotlined keys revoke`,
/// `operator remove`) and those its peers sent, each as the signed `KeyRevocation` bytes with
/// the fields looked up by. Nothing is ever deleted: a revocation is evidence. Can run again.
const V14: &str = r"
CREATE TABLE IF NOT EXISTS revocations (
    sha256                BLOB    PRIMARY KEY CHECK (length(sha256) = 32),
    issuer                BLOB    NOT NULL CHECK (length(issuer) = 32),
    kind                  TEXT    NOT NULL,
    key                   BLOB    NOT NULL CHECK (length(key) = 32),
    revoked_ms            INTEGER NOT NULL,
    compromised_since_ms  INTEGER,
    bytes                 BLOB    NOT NULL CHECK (length(bytes) > 0),
    stored_ms             INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS revocations_by_issuer ON revocations (issuer, stored_ms);
";

/// Version 13: the encryption keys each peer announced last (SPEC.md §4.3.3, §4.3.5), in its
/// Hello or a KeyUpdate frame, stored as a canonical KeyUpdate, so that after a restart the
/// node can seal to a peer whose bundle keys have expired before the link is up again. Can run
/// again on a database that has it.
const V13: &str = r"
CREATE TABLE IF NOT EXISTS peer_announced_keys (
    peer        BLOB    PRIMARY KEY CHECK (length(peer) = 32),
    keys        BLOB    NOT NULL CHECK (length(keys) > 0),
    updated_ms  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
";

/// Version 12: the retention policy (`[retention]` in hotlined.toml, SPEC.md §13.4). A part of
/// a message past its retention period is removed in place: its bytes become empty (no stored
/// envelope, content or receipt is ever empty: each is checked when it is parsed), and a row of
/// `removals` says which part of which message went when, so that Show and Export can say it.
/// The record of the message stays: id, peer, sequence, precedence, TLP, officer, times, the
/// SHA-256 of its envelope and of each receipt. Empty bytes rather than NULL: relaxing the NOT
/// NULL columns would mean rebuilding four tables and rewriting every envelope held (twice the
/// database on disk, in one transaction at start-up). The triggers make the database refuse to
/// empty a message in flight, or a receipt the peer has yet to confirm; `hotlined check`
/// reports an emptied part without its `removals` row and the reverse. The partial indexes
/// hold what is still held, in the order of the time its retention counts from, so that a
/// purge reads what it removes, not what it removed before. Every statement can run again on a
/// database that has them (like versions 4 to 11).
const V12: &str = r"
CREATE TABLE IF NOT EXISTS removals (
    message_id      BLOB    NOT NULL CHECK (length(message_id) = 16),
    incoming        INTEGER NOT NULL CHECK (incoming IN (0, 1)),
    part            TEXT    NOT NULL CHECK (part IN ('content', 'envelope', 'receipt')),
    receipt_sha256  BLOB    NOT NULL DEFAULT x''
        CHECK (length(receipt_sha256) = CASE part WHEN 'receipt' THEN 32 ELSE 0 END),
    removed_ms      INTEGER NOT NULL,
    PRIMARY KEY (message_id, incoming, part, receipt_sha256)
) STRICT, WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS outbox_keeps_what_is_in_flight
BEFORE UPDATE OF content, envelope ON outbox
WHEN (length(NEW.content) = 0 AND NEW.state IN ('unsealed', 'pending'))
  OR (length(NEW.envelope) = 0 AND NEW.state NOT IN ('acknowledged', 'rejected', 'cancelled'))
BEGIN SELECT RAISE(ABORT, 'nothing is removed from a sent message that may still be sent or answered'); END;
CREATE TRIGGER IF NOT EXISTS receipts_out_keeps_unconfirmed BEFORE UPDATE OF bytes ON receipts_out
WHEN length(NEW.bytes) = 0 AND NEW.confirmed = 0
BEGIN SELECT RAISE(ABORT, 'a receipt the peer has not confirmed storing keeps its bytes'); END;
CREATE INDEX IF NOT EXISTS outbox_content_held ON outbox (created_ms)
    WHERE length(content) > 0 AND state NOT IN ('unsealed', 'pending');
CREATE INDEX IF NOT EXISTS outbox_envelope_held ON outbox (created_ms)
    WHERE length(envelope) > 0 AND state IN ('acknowledged', 'rejected', 'cancelled');
CREATE INDEX IF NOT EXISTS inbox_content_held ON inbox (received_ms) WHERE length(content) > 0;
CREATE INDEX IF NOT EXISTS inbox_envelope_held ON inbox (received_ms) WHERE length(envelope) > 0;
CREATE INDEX IF NOT EXISTS receipts_in_held ON receipts_in (stored_ms) WHERE length(bytes) > 0;
CREATE INDEX IF NOT EXISTS receipts_out_held ON receipts_out (stored_ms)
    WHERE length(bytes) > 0 AND confirmed = 1;
";

/// Version 11: sequences from the peer that count as received without a stored message
/// (SPEC.md §10.2): those of envelopes answered REJECTED for a reason of §7.6 steps 7-14 (the
/// envelope was authenticated, its sequence with it). With the inbox's sequences they give
/// `received_through` after a restart; without them a rejected envelope would become a false,
/// permanent gap. Sequences are stored as the inbox stores them (the u64's bits as an i64).
const V11: &str = r"
CREATE TABLE IF NOT EXISTS rejected_sequences (
    peer        BLOB    NOT NULL CHECK (length(peer) = 32),
    sequence    INTEGER NOT NULL CHECK (sequence <> 0),
    message_id  BLOB    NOT NULL CHECK (length(message_id) = 16),
    reason      TEXT    NOT NULL,
    stored_ms   INTEGER NOT NULL,
    PRIMARY KEY (peer, sequence)
) STRICT, WITHOUT ROWID;
";

/// Version 10: sequence floors (SPEC.md §10.1). A node that finds its database restored from
/// an older copy (its high-water mark file, or the peer's `received_through`, is ahead of the
/// highest sequence stored for a peer) records a floor here and assigns sequences above it, so
/// that it never reuses one the lost copy may have sent. One row per detection, kept as
/// evidence of the restore; a peer's highest floor counts. `hotlined check` does not report the
/// holes a floor explains.
const V10: &str = r"
CREATE TABLE IF NOT EXISTS sequence_floors (
    peer    BLOB    NOT NULL CHECK (length(peer) = 32),
    floor   INTEGER NOT NULL CHECK (floor >= 1),
    set_ms  INTEGER NOT NULL,
    source  TEXT    NOT NULL CHECK (source IN ('high_water_mark', 'peer_received_through')),
    PRIMARY KEY (peer, floor)
) STRICT;
";

/// Version 9: at most one receipt of each kind (DELIVERED, ACKNOWLEDGED, REJECTED) from the peer
/// per message we sent (SPEC.md §8.5), so that a peer cannot grow the evidence of one message
/// without bound. The code keeps the first and answers the rest without storing them; this
/// trigger makes the database refuse a second one. A trigger rather than a unique index, as in
/// version 5: a database written before may hold several (evidence is never deleted), and
/// `hotlined check` reports them. The index serves the trigger and the code's look-up.
const V9: &str = r"
CREATE INDEX IF NOT EXISTS receipts_in_message_kind ON receipts_in (message_id, kind);
CREATE TRIGGER IF NOT EXISTS receipts_in_one_per_kind BEFORE INSERT ON receipts_in
WHEN EXISTS (
    SELECT 1 FROM receipts_in WHERE message_id = NEW.message_id AND kind = NEW.kind
        AND sha256 <> NEW.sha256)
BEGIN SELECT RAISE(ABORT, 'the message already holds a receipt of this kind from the peer'); END;
";

/// Version 8: an officer can cancel a message that never left (SPEC.md §15.5.10): the outbox
/// gains the state `cancelled`, who cancelled it and when, and the run of `hotlined` that
/// stored it (`boot`, a row of `boots`): only a message stored by the running process can be
/// known never to have been written to a connection. The outbox is rebuilt (a CHECK changes)
/// by the copy, drop, create, copy-back procedure; foreign keys are deferred so that the
/// receipts referring to outbox rows are checked at commit, against the rebuilt table.
const V8: &str = r"
PRAGMA defer_foreign_keys = ON;
CREATE TABLE IF NOT EXISTS boots (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    started_ms  INTEGER NOT NULL
) STRICT;
CREATE TEMP TABLE outbox_v7 AS SELECT * FROM outbox;
DROP TABLE outbox;
CREATE TABLE outbox (
    message_id       BLOB    PRIMARY KEY CHECK (length(message_id) = 16),
    peer             BLOB    NOT NULL CHECK (length(peer) = 32),
    sequence         INTEGER NOT NULL CHECK (sequence >= 1),
    precedence       INTEGER NOT NULL CHECK (precedence BETWEEN 0 AND 3),
    tlp              TEXT    NOT NULL,
    created_ms       INTEGER NOT NULL,
    content          BLOB    NOT NULL,
    subject          TEXT    NOT NULL,
    officer          TEXT    NOT NULL,
    envelope         BLOB,
    envelope_sha256  BLOB    CHECK (length(envelope_sha256) = 32),
    state            TEXT    NOT NULL DEFAULT 'unsealed'
        CHECK (state IN ('unsealed', 'pending', 'delivered', 'acknowledged', 'rejected',
                         'cancelled')),
    boot             INTEGER REFERENCES boots (id),
    cancelled_ms     INTEGER,
    cancelled_by     TEXT,
    UNIQUE (peer, sequence),
    CHECK ((envelope IS NULL) = (envelope_sha256 IS NULL)),
    CHECK (state <> 'unsealed' OR envelope IS NULL),
    CHECK (state <> 'pending' OR envelope IS NOT NULL),
    CHECK ((state = 'cancelled') = (cancelled_ms IS NOT NULL)),
    CHECK ((cancelled_ms IS NULL) = (cancelled_by IS NULL))
) STRICT;
INSERT INTO outbox (message_id, peer, sequence, precedence, tlp, created_ms, content, subject,
                    officer, envelope, envelope_sha256, state)
    SELECT message_id, peer, sequence, precedence, tlp, created_ms, content, subject, officer,
           envelope, envelope_sha256, state FROM outbox_v7;
DROP TABLE outbox_v7;
CREATE INDEX outbox_pending ON outbox (peer, precedence, sequence) WHERE state = 'pending';
CREATE INDEX outbox_unsealed ON outbox (sequence) WHERE state = 'unsealed';
CREATE INDEX outbox_pending_age ON outbox (peer, precedence, created_ms) WHERE state = 'pending';
CREATE INDEX outbox_created ON outbox (created_ms, message_id);
CREATE TRIGGER outbox_id_not_received BEFORE INSERT ON outbox
WHEN EXISTS (SELECT 1 FROM inbox WHERE message_id = NEW.message_id)
BEGIN SELECT RAISE(ABORT, 'message id already used by a received message'); END;
";

/// Version 7: listings and exports page by `created_ms` and id (SPEC.md §15.5.2, §15.5.7):
/// indexes so that a page reads what it returns, not the whole table.
const V7: &str = r"
CREATE INDEX IF NOT EXISTS inbox_created ON inbox (created_ms, message_id);
CREATE INDEX IF NOT EXISTS outbox_created ON outbox (created_ms, message_id);
";

/// Version 6: every peer bundle ever installed, kept when a peer is removed or its bundle
/// replaced: evidence of the messages exchanged under a bundle needs that bundle.
const V6: &str = r"
CREATE TABLE IF NOT EXISTS peer_bundles (
    identity      BLOB    NOT NULL CHECK (length(identity) = 32),
    bundle        BLOB    NOT NULL,
    installed_ms  INTEGER NOT NULL,
    UNIQUE (identity, bundle)
) STRICT;
INSERT OR IGNORE INTO peer_bundles (identity, bundle, installed_ms)
    SELECT identity, bundle, added_ms FROM peers;
";

/// Version 5: one message id space per node, and at most one ACKNOWLEDGED receipt per message.
/// The code checks both first (a peer reusing one of our ids gets REJECTED CONFLICT, an
/// operator BAD_REQUEST, a second acknowledgement the first receipt); these triggers make the
/// database refuse a row that breaks either rule. Triggers rather than unique indexes: a
/// database written before may already hold such rows (evidence is never deleted), and
/// `hotlined check` reports them.
const V5: &str = r"
CREATE TRIGGER IF NOT EXISTS outbox_id_not_received BEFORE INSERT ON outbox
WHEN EXISTS (SELECT 1 FROM inbox WHERE message_id = NEW.message_id)
BEGIN SELECT RAISE(ABORT, 'message id already used by a received message'); END;
CREATE TRIGGER IF NOT EXISTS inbox_id_not_sent BEFORE INSERT ON inbox
WHEN EXISTS (SELECT 1 FROM outbox WHERE message_id = NEW.message_id)
BEGIN SELECT RAISE(ABORT, 'message id already used by a sent message'); END;
CREATE TRIGGER IF NOT EXISTS receipts_out_one_acknowledged BEFORE INSERT ON receipts_out
WHEN NEW.kind = 'ACKNOWLEDGED' AND EXISTS (
    SELECT 1 FROM receipts_out WHERE message_id = NEW.message_id AND kind = 'ACKNOWLEDGED'
        AND sha256 <> NEW.sha256)
BEGIN SELECT RAISE(ABORT, 'the message already has an ACKNOWLEDGED receipt'); END;
";

/// Version 4: the age of pending messages per peer and precedence, as a covering index, so
/// status and overdue counts over a large backlog read the index alone.
const V4: &str = r"
CREATE INDEX IF NOT EXISTS outbox_pending_age ON outbox (peer, precedence, created_ms) WHERE state = 'pending';
";

/// Version 3: a trust mode per peer (SPEC.md §3.6): `pinned` (every peer added before) or
/// `ca` (private CA mode, with the CA of `[ca]` in hotlined.toml).
const V3: &str = r"
ALTER TABLE peers ADD COLUMN trust TEXT NOT NULL DEFAULT 'pinned'
    CHECK (trust IN ('pinned', 'ca'));
";

/// Version 2: operators (credentials issued by `hotlined operator add`). An operator's TLS
/// key is pinned by its SPKI hash; its officer key signs messages and acknowledgements.
const V2: &str = r"
CREATE TABLE operators (
    name             TEXT    NOT NULL UNIQUE,
    role             TEXT    NOT NULL CHECK (role IN ('officer', 'viewer')),
    officer_key      BLOB    NOT NULL UNIQUE CHECK (length(officer_key) = 32),
    tls_spki_sha256  BLOB    NOT NULL UNIQUE CHECK (length(tls_spki_sha256) = 32),
    credential       BLOB    NOT NULL,
    added_ms         INTEGER NOT NULL,
    revoked_ms       INTEGER
) STRICT;
";

/// Version 1: peers, outbox, inbox, both directions of receipts, audit trail.
///
/// Conventions: every table is STRICT; ids, keys and digests are BLOBs whose length a CHECK
/// pins; times are Unix milliseconds. Messages are never deleted by peer removal (evidence,
/// SPEC.md §8.5), so nothing references `peers`.
const V1: &str = r"
CREATE TABLE peers (
    alias     TEXT    NOT NULL UNIQUE,
    identity  BLOB    NOT NULL UNIQUE CHECK (length(identity) = 32),
    address   TEXT    NOT NULL,
    bundle    BLOB    NOT NULL,
    added_ms  INTEGER NOT NULL
) STRICT;

-- Messages we send. state: unsealed -> pending -> delivered -> acknowledged, or rejected
-- (see SqliteStore::record_receipts). Sequences are assigned here, per peer, 1, 2, 3, ...
CREATE TABLE outbox (
    message_id       BLOB    PRIMARY KEY CHECK (length(message_id) = 16),
    peer             BLOB    NOT NULL CHECK (length(peer) = 32),
    sequence         INTEGER NOT NULL CHECK (sequence >= 1),
    precedence       INTEGER NOT NULL CHECK (precedence BETWEEN 0 AND 3),
    tlp              TEXT    NOT NULL,
    created_ms       INTEGER NOT NULL,
    content          BLOB    NOT NULL,
    subject          TEXT    NOT NULL,
    officer          TEXT    NOT NULL,
    envelope         BLOB,
    envelope_sha256  BLOB    CHECK (length(envelope_sha256) = 32),
    state            TEXT    NOT NULL DEFAULT 'unsealed'
        CHECK (state IN ('unsealed', 'pending', 'delivered', 'acknowledged', 'rejected')),
    UNIQUE (peer, sequence),
    CHECK ((envelope IS NULL) = (envelope_sha256 IS NULL)),
    CHECK (state <> 'unsealed' OR envelope IS NULL),
    CHECK (state <> 'pending' OR envelope IS NOT NULL)
) STRICT;
-- pending_envelopes: one peer, FLASH first, then ascending sequence.
CREATE INDEX outbox_pending ON outbox (peer, precedence, sequence) WHERE state = 'pending';
-- unsealed (after a crash between submit and seal).
CREATE INDEX outbox_unsealed ON outbox (sequence) WHERE state = 'unsealed';

-- Messages we received and answered with DELIVERED (duplicate detection, SPEC.md §10.4).
-- `sequence` is the peer's u64 stored as its two's-complement i64: a peer may send any value,
-- and no peer input may make a write fail. No UNIQUE (peer, sequence): a peer that reuses a
-- sequence for another message id is reported, not refused (SPEC.md §10.1).
CREATE TABLE inbox (
    id                 INTEGER PRIMARY KEY,
    message_id         BLOB    NOT NULL UNIQUE CHECK (length(message_id) = 16),
    peer               BLOB    NOT NULL CHECK (length(peer) = 32),
    sequence           INTEGER NOT NULL,
    precedence         INTEGER NOT NULL CHECK (precedence BETWEEN 0 AND 3),
    tlp                TEXT    NOT NULL,
    created_ms         INTEGER NOT NULL,
    received_ms        INTEGER NOT NULL,
    envelope           BLOB    NOT NULL,
    envelope_sha256    BLOB    NOT NULL CHECK (length(envelope_sha256) = 32),
    content            BLOB    NOT NULL,
    subject            TEXT    NOT NULL,
    officer            TEXT    NOT NULL,
    delivered_receipt  BLOB    NOT NULL
        REFERENCES receipts_out (sha256) DEFERRABLE INITIALLY DEFERRED
) STRICT;
-- received_sequences.
CREATE INDEX inbox_peer_sequence ON inbox (peer, sequence);
-- inbox listing, newest first (the index carries the rowid `id` as tie-break).
CREATE INDEX inbox_received ON inbox (received_ms);
-- The child side of the deferred foreign key to receipts_out: without it, every receipt
-- inserted while a constraint is pending scans the whole inbox. One receipt per message.
CREATE UNIQUE INDEX inbox_delivered_receipt ON inbox (delivered_receipt);

-- Receipts the peer made about our messages: evidence (SPEC.md §8.5, §14.7).
CREATE TABLE receipts_in (
    sha256      BLOB    PRIMARY KEY CHECK (length(sha256) = 32),
    message_id  BLOB    NOT NULL REFERENCES outbox (message_id),
    peer        BLOB    NOT NULL CHECK (length(peer) = 32),
    kind        TEXT    NOT NULL CHECK (kind IN ('DELIVERED', 'ACKNOWLEDGED', 'REJECTED')),
    bytes       BLOB    NOT NULL,
    stored_ms   INTEGER NOT NULL
) STRICT;
CREATE INDEX receipts_in_message ON receipts_in (message_id);

-- Receipts we made about messages we received. The DELIVERED one is made with the inbox row
-- and sent on the envelope's own stream (confirmed = 1 at once); asynchronous ones
-- (ACKNOWLEDGED) stay unconfirmed until the peer answers ReceiptStored.
CREATE TABLE receipts_out (
    sha256      BLOB    PRIMARY KEY CHECK (length(sha256) = 32),
    message_id  BLOB    NOT NULL
        REFERENCES inbox (message_id) DEFERRABLE INITIALLY DEFERRED,
    peer        BLOB    NOT NULL CHECK (length(peer) = 32),
    kind        TEXT    NOT NULL CHECK (kind IN ('DELIVERED', 'ACKNOWLEDGED', 'REJECTED')),
    bytes       BLOB    NOT NULL,
    stored_ms   INTEGER NOT NULL,
    confirmed   INTEGER NOT NULL CHECK (confirmed IN (0, 1))
) STRICT;
CREATE INDEX receipts_out_message ON receipts_out (message_id, kind);
CREATE INDEX receipts_out_unconfirmed ON receipts_out (peer) WHERE confirmed = 0;

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms     INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    peer        BLOB    CHECK (length(peer) = 32),
    message_id  BLOB    CHECK (length(message_id) = 16),
    detail      TEXT    NOT NULL
) STRICT;
";

pub(super) fn user_version(conn: &Connection) -> Result<u32> {
    let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    // user_version is a signed 32-bit header field; a negative one is "newer than us" too.
    Ok(u32::try_from(v).unwrap_or(u32::MAX))
}

pub(super) fn application_id(conn: &Connection) -> Result<i32> {
    Ok(conn.pragma_query_value(None, "application_id", |r| r.get(0))?)
}

/// Refuses a database written by a newer hotlined or by another program, without writing.
pub(crate) fn refuse_foreign(conn: &Connection) -> Result<()> {
    let found = user_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let app = application_id(conn)?;
    if app != 0 && app != APPLICATION_ID {
        return Err(StoreError::Database(format!(
            "not a hotlined database (application_id {app:#x}); check the configured path"
        )));
    }
    if app == 0 {
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
        if tables > 0 {
            return Err(StoreError::Database(
                "not a hotlined database (it already holds another program's tables); \
                 check the configured path"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// Brings the schema to [`SCHEMA_VERSION`], one transaction per migration. Safe against a
/// second process migrating at the same time: the version is re-read inside each transaction.
pub(crate) fn migrate(conn: &mut Connection) -> Result<()> {
    if user_version(conn)? == SCHEMA_VERSION {
        return Ok(()); // the usual case: no write lock needed to find out
    }
    loop {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version = user_version(&tx)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        let Some(script) = usize::try_from(version)
            .ok()
            .and_then(|v| MIGRATIONS.get(v))
        else {
            return Ok(()); // up to date; the empty transaction rolls back on drop
        };
        tx.execute_batch(script)?;
        tx.pragma_update(None, "user_version", version + 1)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use super::super::check::check;
    use super::*;

    /// A database of version 7 holding a message and the peer's receipt for it.
    fn version_7() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("PRAGMA foreign_keys = ON").unwrap();
        for script in &MIGRATIONS[..7] {
            let tx = conn.transaction().unwrap();
            tx.execute_batch(script).unwrap();
            tx.commit().unwrap();
        }
        conn.pragma_update(None, "user_version", 7).unwrap();
        conn.execute_batch(
            "INSERT INTO outbox (message_id, peer, sequence, precedence, tlp, created_ms, \
             content, subject, officer, envelope, envelope_sha256, state) VALUES \
             (zeroblob(16), zeroblob(32), 1, 0, 'red', 5, x'01', 's', 'o', x'02', zeroblob(32), \
              'delivered'), \
             (x'01000000000000000000000000000000', zeroblob(32), 2, 3, 'clear', 6, x'03', 't', \
              'o', NULL, NULL, 'unsealed'); \
             INSERT INTO receipts_in (sha256, message_id, peer, kind, bytes, stored_ms) VALUES \
             (zeroblob(32), zeroblob(16), zeroblob(32), 'DELIVERED', x'04', 7);",
        )
        .unwrap();
        conn
    }

    #[test]
    fn version_8_keeps_every_message_and_receipt_and_the_id_rules() {
        let mut conn = version_7();
        migrate(&mut conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let rows: Vec<(i64, String, Option<i64>)> = conn
            .prepare("SELECT sequence, state, boot FROM outbox ORDER BY sequence")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![(1, "delivered".into(), None), (2, "unsealed".into(), None)]
        );
        let receipts: i64 = conn
            .query_row("SELECT count(*) FROM receipts_in", [], |r| r.get(0))
            .unwrap();
        assert_eq!(receipts, 1);
        assert!(check(&conn).unwrap().is_empty(), "{:?}", check(&conn));
        // The foreign key from receipts to the rebuilt outbox still holds...
        assert!(
            conn.execute(
                "INSERT INTO receipts_in (sha256, message_id, peer, kind, bytes, stored_ms) \
                 VALUES (x'0101010101010101010101010101010101010101010101010101010101010101', \
                 x'09000000000000000000000000000000', zeroblob(32), 'DELIVERED', x'04', 7)",
                [],
            )
            .is_err()
        );
        // ...and so do both id-space triggers, the outbox's (recreated) and the inbox's.
        let inbox_dup = conn.execute(
            "INSERT INTO inbox (message_id, peer, sequence, precedence, tlp, created_ms, \
             received_ms, envelope, envelope_sha256, content, subject, officer, \
             delivered_receipt) VALUES (zeroblob(16), zeroblob(32), 1, 0, 'red', 1, 1, x'00', \
             zeroblob(32), x'00', 's', 'o', zeroblob(32))",
            [],
        );
        assert!(inbox_dup.unwrap_err().to_string().contains("already used"));
        // A cancelled row must say who and when.
        assert!(
            conn.execute(
                "UPDATE outbox SET state = 'cancelled' WHERE sequence = 2",
                []
            )
            .is_err()
        );
        conn.execute(
            "UPDATE outbox SET state = 'cancelled', cancelled_ms = 9, cancelled_by = 'o' \
             WHERE sequence = 2",
            [],
        )
        .unwrap();
    }

    /// A receipt row for `receipts_in`: message 0, from peer 0, of `kind`, digest `sha` (a
    /// byte repeated).
    fn receipt_in(conn: &Connection, sha: u8, kind: &str) -> rusqlite::Result<usize> {
        conn.execute(
            "INSERT INTO receipts_in (sha256, message_id, peer, kind, bytes, stored_ms) \
             VALUES (?1, zeroblob(16), zeroblob(32), ?2, x'04', 7)",
            rusqlite::params![vec![sha; 32], kind],
        )
    }

    #[test]
    fn version_9_keeps_the_receipts_held_reports_them_and_refuses_a_second_of_a_kind() {
        let mut conn = version_7();
        let tx = conn.transaction().unwrap();
        tx.execute_batch(MIGRATIONS[7]).unwrap();
        tx.commit().unwrap();
        conn.pragma_update(None, "user_version", 8).unwrap();
        // Held before version 9: a second and a third ACKNOWLEDGED, and a REJECTED beside the
        // DELIVERED receipt of version_7().
        for (sha, kind) in [(1, "ACKNOWLEDGED"), (2, "ACKNOWLEDGED"), (3, "REJECTED")] {
            receipt_in(&conn, sha, kind).unwrap();
        }
        migrate(&mut conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let held: i64 = conn
            .query_row("SELECT count(*) FROM receipts_in", [], |r| r.get(0))
            .unwrap();
        assert_eq!(held, 4, "nothing stored before is lost");
        let problems = check(&conn).unwrap();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("holds 2 ACKNOWLEDGED receipts")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("contradictory") && p.contains("stays delivered")),
            "{problems:?}"
        );
        // From now on the database refuses a further receipt of a kind the message holds...
        for (sha, kind) in [(4, "ACKNOWLEDGED"), (5, "DELIVERED"), (6, "REJECTED")] {
            let err = receipt_in(&conn, sha, kind).unwrap_err();
            assert!(err.to_string().contains("already holds"), "{kind}: {err}");
        }
        // ...but not the first of a kind of another message.
        conn.execute(
            "INSERT INTO receipts_in (sha256, message_id, peer, kind, bytes, stored_ms) \
             VALUES (?1, x'01000000000000000000000000000000', zeroblob(32), 'DELIVERED', \
             x'04', 8)",
            [vec![7u8; 32]],
        )
        .unwrap();
    }

    #[test]
    fn version_12_keeps_every_row_held_and_refuses_to_empty_what_is_in_flight() {
        let mut conn = version_7();
        for (v, script) in MIGRATIONS.iter().enumerate().take(11).skip(7) {
            let tx = conn.transaction().unwrap();
            tx.execute_batch(script).unwrap();
            tx.commit().unwrap();
            conn.pragma_update(None, "user_version", i64::try_from(v + 1).unwrap())
                .unwrap();
        }
        // A received message with a receipt of ours (2 repeated: its digest) that the peer has
        // not confirmed storing yet.
        let tx = conn.transaction().unwrap();
        tx.execute(
            "INSERT INTO inbox (message_id, peer, sequence, precedence, tlp, created_ms, \
             received_ms, envelope, envelope_sha256, content, subject, officer, \
             delivered_receipt) VALUES (x'02000000000000000000000000000000', zeroblob(32), 1, \
             0, 'red', 1, 1, x'05', zeroblob(32), x'06', 's', 'o', ?1)",
            [vec![2u8; 32]],
        )
        .unwrap();
        tx.execute(
            "INSERT INTO receipts_out (sha256, message_id, peer, kind, bytes, stored_ms, \
             confirmed) VALUES (?1, x'02000000000000000000000000000000', zeroblob(32), \
             'DELIVERED', x'07', 1, 0)",
            [vec![2u8; 32]],
        )
        .unwrap();
        tx.commit().unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(user_version(&conn).unwrap(), SCHEMA_VERSION);
        let held: (i64, i64, i64, i64, i64) = conn
            .query_row(
                "SELECT (SELECT count(*) FROM outbox WHERE length(content) > 0), \
                        (SELECT count(*) FROM inbox WHERE length(envelope) > 0), \
                        (SELECT count(*) FROM receipts_in WHERE length(bytes) > 0), \
                        (SELECT count(*) FROM receipts_out WHERE length(bytes) > 0), \
                        (SELECT count(*) FROM removals)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .unwrap();
        assert_eq!(held, (2, 1, 1, 1, 0), "nothing is removed by the migration");
        assert!(check(&conn).unwrap().is_empty(), "{:?}", check(&conn));
        // The database refuses to empty a message that may still be sent or answered, or a
        // receipt the peer has yet to confirm.
        for sql in [
            "UPDATE outbox SET content = x'', subject = '' WHERE sequence = 2",
            "UPDATE outbox SET envelope = x'' WHERE sequence = 1",
            "UPDATE receipts_out SET bytes = x''",
        ] {
            let err = conn.execute(sql, []).unwrap_err().to_string();
            assert!(
                err.contains("may still be sent") || err.contains("not confirmed"),
                "{sql}: {err}"
            );
        }
        // Emptied parts without their `removals` row, and a row for a part still held, are
        // what `hotlined check` reports.
        conn.execute_batch(
            "UPDATE outbox SET content = x'', subject = '' WHERE sequence = 1; \
             UPDATE inbox SET envelope = x''; \
             INSERT INTO removals (message_id, incoming, part, removed_ms) \
             VALUES (x'02000000000000000000000000000000', 1, 'content', 9);",
        )
        .unwrap();
        let problems = check(&conn).unwrap();
        assert_eq!(problems.len(), 3, "{problems:?}");
        for want in [
            "sent message 00000000000000000000000000000000: its content is empty",
            "received message 02000000000000000000000000000000: its envelope is empty",
            "received message 02000000000000000000000000000000: its content is recorded",
        ] {
            assert!(
                problems.iter().any(|p| p.starts_with(want)),
                "{want}: {problems:?}"
            );
        }
        // Recorded, as the retention policy does it: nothing to report.
        conn.execute_batch(
            "UPDATE inbox SET content = x'', subject = ''; \
             INSERT INTO removals (message_id, incoming, part, removed_ms) VALUES \
             (zeroblob(16), 0, 'content', 9), \
             (x'02000000000000000000000000000000', 1, 'envelope', 9);",
        )
        .unwrap();
        assert!(check(&conn).unwrap().is_empty(), "{:?}", check(&conn));
        // Run again on a database that has it (as after a restore over a newer copy), the
        // script changes nothing.
        conn.execute_batch(V12).unwrap();
        assert!(check(&conn).unwrap().is_empty(), "{:?}", check(&conn));
    }
}
