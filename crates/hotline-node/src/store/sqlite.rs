//! [`Store`] on SQLite (bundled, through rusqlite): one database file in WAL mode.
//!
//! **Durability.** `journal_mode = WAL` with `synchronous = FULL` fsyncs the WAL at every
//! commit, so a method that returned has its batch on stable storage, as SPEC.md §8.5 needs
//! before an id is shown or a receipt leaves the node. Each write method runs its whole batch
//! in one IMMEDIATE transaction: one fsync per batch, however many messages it holds (group
//! commit), and on any error the transaction rolls back and nothing of the batch is stored.
//! IMMEDIATE takes the write lock up front, so the sequence numbers read and assigned in
//! [`Store::submit`] cannot race with another writer.
//!
//! **Choices the trait leaves open**, each documented on the method too:
//! - A receipt from the peer about a message id we never sent, or from a peer other than that
//!   message's recipient, is ignored: not stored, no error ([`Store::record_receipts`] has no
//!   way to report it). The session verified it against our envelope before it gets here, so
//!   this only happens on a caller bug; storing it would need an outbox row to refer to.
//! - A receipt kind other than `DELIVERED`, `ACKNOWLEDGED`, `REJECTED` is a caller bug: the
//!   batch fails with [`StoreError::Database`].
//! - Sequence numbers *received* from a peer are any u64 (the wire does not bound them), so
//!   they are stored as their two's-complement i64; no peer input can make a write fail.
//!   Sequences we assign are ordinary non-negative integers.
//! - One process should own a database at a time; if a second one opens it, SQLite's locks
//!   make it wait ([`BUSY_TIMEOUT`]) rather than corrupt anything.

mod convert;
mod schema;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use hotline_protocol::NodeId;
use hotline_protocol::envelope::MessageId;
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::{
    AcceptOutcome, Arrival, AuditEvent, ExportItem, InboxRow, MessageRow, OperatorRecord, OutState,
    PeerRecord, PendingSummary, ReceiptRecord, Result, Store, StoreError, StoredMessage,
    StoredSubmission, Submission,
};

use convert::{
    digest, hex, int, is_unique_violation, message_id, node_id, peer_seq, peer_seq_back,
    precedence, precedence_back, push_range, state_back, state_for_kind, uint,
};

pub use schema::SCHEMA_VERSION;

/// How long a statement waits for a lock held by another connection before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQLite store. See the module documentation.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    /// Inside [`Store::group`]: writes nest as savepoints in the group's transaction.
    in_group: bool,
}

/// A write in progress: its own IMMEDIATE transaction, or a savepoint inside a group's.
enum Write<'a> {
    Tx(Transaction<'a>),
    Nested(rusqlite::Savepoint<'a>),
}

impl std::ops::Deref for Write<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Write::Tx(t) => t,
            Write::Nested(s) => s,
        }
    }
}

impl Write<'_> {
    /// Commits (a transaction) or releases (a savepoint: committed with its group).
    fn commit(self) -> rusqlite::Result<()> {
        match self {
            Write::Tx(t) => t.commit(),
            Write::Nested(s) => s.commit(),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(e.to_string())
    }
}

impl SqliteStore {
    /// Opens the database at `path`, creating it if absent, and migrates it to
    /// [`SCHEMA_VERSION`]. Refuses, without writing anything, a database of a newer hotlined
    /// ([`StoreError::TooNew`]) or a file that is not a hotlined database.
    pub fn open(path: &Path) -> Result<Self> {
        let in_file = |e: StoreError| match e {
            StoreError::Database(m) => StoreError::Database(format!("{}: {m}", path.display())),
            other => other,
        };
        let conn = Connection::open(path).map_err(|e| in_file(e.into()))?;
        Self::init(conn, true).map_err(in_file)
    }

    /// A fresh database in memory, for tests: same schema, no durability.
    pub fn open_in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory()?, false)
    }

    fn init(mut conn: Connection, file: bool) -> Result<Self> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.set_prepared_statement_cache_capacity(64);
        // The first read of the file: garbage fails here ("file is not a database").
        schema::refuse_foreign(&conn)?;
        if file {
            let mode: String =
                conn.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(StoreError::Database(format!(
                    "cannot switch the journal to WAL mode (it stays {mode})"
                )));
            }
        }
        // temp_store = MEMORY keeps the savepoint sub-journals of a group (Store::group) off
        // the disk; a checkpoint every 4000 pages (16 MiB of WAL) instead of 1000 copies each
        // hot page to the database file less often. Neither changes durability: commits are
        // durable in the WAL (synchronous = FULL).
        conn.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA trusted_schema = OFF; \
             PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 4000;",
        )?;
        let fk: i64 = conn.pragma_query_value(None, "foreign_keys", |r| r.get(0))?;
        let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
        if fk != 1 || sync != 2 {
            return Err(StoreError::Database(format!(
                "SQLite refused the required settings (foreign_keys = {fk}, synchronous = {sync})"
            )));
        }
        schema::migrate(&mut conn)?;
        Ok(SqliteStore {
            conn,
            in_group: false,
        })
    }

    /// Starts a write transaction holding the write lock from the start; inside a group, a
    /// savepoint (rolled back alone if this write fails, committed with the group).
    fn write(&mut self) -> Result<Write<'_>> {
        if self.in_group {
            return Ok(Write::Nested(self.conn.savepoint()?));
        }
        Ok(Write::Tx(self.conn.transaction_with_behavior(
            TransactionBehavior::Immediate,
        )?))
    }
}

/// One row of `inbox` or `outbox` in the column order the listing queries select.
fn message_row(r: &rusqlite::Row<'_>, incoming: bool) -> Result<MessageRow> {
    Ok(MessageRow {
        message_id: message_id(&r.get::<_, Vec<u8>>(0)?)?,
        peer: node_id(&r.get::<_, Vec<u8>>(1)?)?,
        incoming,
        sequence: if incoming {
            peer_seq_back(r.get(2)?)
        } else {
            uint(r.get(2)?, "sequence")?
        },
        precedence: precedence_back(r.get(3)?)?,
        tlp: r.get(4)?,
        created_ms: uint(r.get(5)?, "created_ms")?,
        received_ms: uint(r.get(6)?, "received_ms")?,
        subject: r.get(7)?,
        officer: r.get(8)?,
        state: r.get(9)?,
    })
}

impl SqliteStore {
    /// Receipt bytes for a message from `receipts_in` or `receipts_out`, oldest first.
    fn receipts_of(&mut self, table: &str, id: &MessageId) -> Result<Vec<Bytes>> {
        let sql = match table {
            "receipts_in" => {
                "SELECT bytes FROM receipts_in WHERE message_id = ?1 ORDER BY stored_ms, rowid"
            }
            _ => "SELECT bytes FROM receipts_out WHERE message_id = ?1 ORDER BY stored_ms, rowid",
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map([&id[..]], |r| r.get::<_, Vec<u8>>(0))?;
        rows.map(|r| r.map(Bytes::from).map_err(StoreError::from))
            .collect()
    }
}

impl Store for SqliteStore {
    fn group(&mut self, f: &mut dyn FnMut(&mut dyn Store)) -> Result<()> {
        if self.in_group {
            f(self);
            return Ok(());
        }
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        self.in_group = true;
        f(self);
        self.in_group = false;
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            // Nothing of the group is stored; leave no transaction open behind.
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            return Err(e.into());
        }
        Ok(())
    }

    fn peers(&mut self) -> Result<Vec<PeerRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT alias, identity, address, bundle, added_ms, trust FROM peers ORDER BY alias",
        )?;
        let rows = stmt.query_and_then([], |r| -> Result<PeerRecord> {
            Ok(PeerRecord {
                alias: r.get(0)?,
                identity: node_id(&r.get::<_, Vec<u8>>(1)?)?,
                address: r.get(2)?,
                bundle: Bytes::from(r.get::<_, Vec<u8>>(3)?),
                added_ms: uint(r.get(4)?, "added_ms")?,
                trust: r
                    .get::<_, String>(5)?
                    .parse()
                    .map_err(|e| StoreError::Corrupt(format!("peer: {e}")))?,
            })
        })?;
        rows.collect()
    }

    /// `Conflict` names what is pinned already and how to unpin it.
    fn add_peer(&mut self, peer: &PeerRecord) -> Result<()> {
        let added_ms = int(peer.added_ms, "added_ms")?;
        let tx = self.write()?;
        {
            let by_alias = tx
                .prepare_cached("SELECT 1 FROM peers WHERE alias = ?1")?
                .exists([&peer.alias])?;
            if by_alias {
                return Err(StoreError::Conflict(format!(
                    "a peer with alias {alias:?} is already pinned; remove it first with \
                     `hotlined peer remove {alias}`",
                    alias = peer.alias
                )));
            }
            let by_identity: Option<String> = tx
                .prepare_cached("SELECT alias FROM peers WHERE identity = ?1")?
                .query_row([&peer.identity.as_bytes()[..]], |r| r.get(0))
                .optional()?;
            if let Some(alias) = by_identity {
                return Err(StoreError::Conflict(format!(
                    "node {} is already pinned as {alias:?}; remove it first with \
                     `hotlined peer remove {alias}`",
                    peer.identity
                )));
            }
            tx.prepare_cached(
                "INSERT INTO peers (alias, identity, address, bundle, added_ms, trust) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                peer.alias,
                &peer.identity.as_bytes()[..],
                peer.address,
                &peer.bundle[..],
                added_ms,
                peer.trust.as_str()
            ])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn operators(&mut self) -> Result<Vec<OperatorRecord>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT name, role, officer_key, tls_spki_sha256, credential, added_ms, revoked_ms \
             FROM operators ORDER BY name",
        )?;
        let rows = stmt.query_and_then([], |r| -> Result<OperatorRecord> {
            let key32 = |v: Vec<u8>, what: &str| -> Result<[u8; 32]> {
                v.try_into()
                    .map_err(|_| StoreError::Corrupt(format!("operator {what} is not 32 bytes")))
            };
            Ok(OperatorRecord {
                name: r.get(0)?,
                role: r.get(1)?,
                officer_key: key32(r.get(2)?, "key")?,
                tls_spki_sha256: key32(r.get(3)?, "TLS pin")?,
                credential: Bytes::from(r.get::<_, Vec<u8>>(4)?),
                added_ms: uint(r.get(5)?, "added_ms")?,
                revoked_ms: r
                    .get::<_, Option<i64>>(6)?
                    .map(|v| uint(v, "revoked_ms"))
                    .transpose()?,
            })
        })?;
        rows.collect()
    }

    fn add_operator(&mut self, op: &OperatorRecord) -> Result<()> {
        let added_ms = int(op.added_ms, "added_ms")?;
        let tx = self.write()?;
        let taken = tx
            .prepare_cached("SELECT 1 FROM operators WHERE name = ?1 OR officer_key = ?2 OR tls_spki_sha256 = ?3")?
            .exists(params![op.name, &op.officer_key[..], &op.tls_spki_sha256[..]])?;
        if taken {
            return Err(StoreError::Conflict(format!(
                "an operator named {:?} (or with the same keys) exists already; choose another name, \
                 or revoke it first with `hotlined operator remove`",
                op.name
            )));
        }
        tx.prepare_cached(
            "INSERT INTO operators (name, role, officer_key, tls_spki_sha256, credential, added_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![op.name, op.role, &op.officer_key[..], &op.tls_spki_sha256[..], &op.credential[..], added_ms])?;
        tx.commit()?;
        Ok(())
    }

    fn revoke_operator(
        &mut self,
        name: &str,
        now: hotline_protocol::time::UnixMillis,
    ) -> Result<bool> {
        let now = int(now, "revoked_ms")?;
        let tx = self.write()?;
        let n = tx
            .prepare_cached(
                "UPDATE operators SET revoked_ms = ?2 WHERE name = ?1 AND revoked_ms IS NULL",
            )?
            .execute(params![name, now])?;
        tx.commit()?;
        Ok(n > 0)
    }

    fn remove_peer(&mut self, alias: &str) -> Result<bool> {
        let tx = self.write()?;
        let n = tx
            .prepare_cached("DELETE FROM peers WHERE alias = ?1")?
            .execute([alias])?;
        tx.commit()?;
        Ok(n > 0)
    }

    fn submit(&mut self, batch: &[Submission]) -> Result<Vec<u64>> {
        let tx = self.write()?;
        let mut next: HashMap<NodeId, u64> = HashMap::new();
        let mut sequences = Vec::with_capacity(batch.len());
        {
            let mut last = tx.prepare_cached(LAST_SEQUENCE)?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO outbox (message_id, peer, sequence, precedence, tlp, created_ms, \
                 content, subject, officer) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for s in batch {
                let prev = match next.get(&s.peer) {
                    Some(&n) => n,
                    None => uint(
                        last.query_row([&s.peer.as_bytes()[..]], |r| r.get(0))?,
                        "sequence",
                    )?,
                };
                let seq = prev.saturating_add(1);
                insert
                    .execute(params![
                        &s.message_id[..],
                        &s.peer.as_bytes()[..],
                        int(seq, "sequence")?,
                        precedence(s.precedence),
                        s.tlp,
                        int(s.created_ms, "created_ms")?,
                        &s.content[..],
                        s.subject,
                        s.officer,
                    ])
                    .map_err(|e| {
                        if is_unique_violation(&e) {
                            StoreError::Conflict(format!(
                                "message id {} already exists; nothing of this batch was \
                                 stored (submit it again under a new id)",
                                hex(&s.message_id)
                            ))
                        } else {
                            e.into()
                        }
                    })?;
                next.insert(s.peer, seq);
                sequences.push(seq);
            }
        }
        tx.commit()?;
        Ok(sequences)
    }

    /// Idempotent for the same envelope. `Conflict` if a message is already sealed with other
    /// bytes (a message is sealed once, SPEC.md §10.1); `Database` for an unknown id.
    fn attach_envelopes(&mut self, batch: &[(MessageId, Bytes, [u8; 32])]) -> Result<()> {
        let tx = self.write()?;
        {
            let mut update = tx.prepare_cached(
                "UPDATE outbox SET envelope = ?2, envelope_sha256 = ?3, \
                 state = CASE state WHEN 'unsealed' THEN 'pending' ELSE state END \
                 WHERE message_id = ?1 AND envelope IS NULL",
            )?;
            let mut current =
                tx.prepare_cached("SELECT envelope_sha256 FROM outbox WHERE message_id = ?1")?;
            for (id, envelope, sha) in batch {
                if update.execute(params![&id[..], &envelope[..], &sha[..]])? == 1 {
                    continue;
                }
                let stored: Option<Option<Vec<u8>>> =
                    current.query_row([&id[..]], |r| r.get(0)).optional()?;
                match stored {
                    None => {
                        return Err(StoreError::Database(format!(
                            "no submitted message has id {}",
                            hex(id)
                        )));
                    }
                    Some(Some(s)) if s == sha[..] => {} // the same envelope, attached before
                    Some(_) => {
                        return Err(StoreError::Conflict(format!(
                            "message {} is already sealed with a different envelope; \
                             a message is sealed once",
                            hex(id)
                        )));
                    }
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Ordered by sequence, then peer.
    fn unsealed(&mut self) -> Result<Vec<StoredSubmission>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT message_id, peer, sequence, precedence, tlp, created_ms, content, subject, \
             officer FROM outbox WHERE state = 'unsealed' ORDER BY sequence, peer",
        )?;
        let rows = stmt.query_and_then([], |r| -> Result<StoredSubmission> {
            Ok(StoredSubmission {
                submission: Submission {
                    message_id: message_id(&r.get::<_, Vec<u8>>(0)?)?,
                    peer: node_id(&r.get::<_, Vec<u8>>(1)?)?,
                    precedence: precedence_back(r.get(3)?)?,
                    tlp: r.get(4)?,
                    created_ms: uint(r.get(5)?, "created_ms")?,
                    content: Bytes::from(r.get::<_, Vec<u8>>(6)?),
                    subject: r.get(7)?,
                    officer: r.get(8)?,
                },
                sequence: uint(r.get(2)?, "sequence")?,
            })
        })?;
        rows.collect()
    }

    fn pending_envelopes(&mut self, peer: &NodeId) -> Result<Vec<Bytes>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT envelope FROM outbox WHERE peer = ?1 AND state = 'pending' \
             ORDER BY precedence, sequence",
        )?;
        let rows = stmt.query_map([&peer.as_bytes()[..]], |r| {
            r.get::<_, Vec<u8>>(0).map(Bytes::from)
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn pending_window(
        &mut self,
        peer: &NodeId,
        skip: &std::collections::HashSet<MessageId>,
        want: usize,
    ) -> Result<Vec<Bytes>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT message_id, envelope FROM outbox WHERE peer = ?1 AND state = 'pending' \
             ORDER BY precedence, sequence",
        )?;
        let mut rows = stmt.query([&peer.as_bytes()[..]])?;
        let mut out = Vec::with_capacity(want.min(4096));
        while out.len() < want {
            let Some(row) = rows.next()? else { break };
            let id: Vec<u8> = row.get(0)?;
            if <[u8; 16]>::try_from(id.as_slice()).is_ok_and(|id| skip.contains(&id)) {
                continue;
            }
            out.push(Bytes::from(row.get::<_, Vec<u8>>(1)?));
        }
        Ok(out)
    }

    fn pending_summary(
        &mut self,
        peer: &NodeId,
        cutoffs: [hotline_protocol::time::UnixMillis; 4],
    ) -> Result<PendingSummary> {
        let c = |i: usize| int(cutoffs[i], "cutoff");
        let mut total = PendingSummary::default();
        // Pending rows through the covering index `outbox_pending_age`, unsealed ones (only
        // after a crash, few) through `outbox_unsealed`.
        for state in ["pending", "unsealed"] {
            let (count, oldest, overdue): (i64, Option<i64>, Option<i64>) = self
                .conn
                .prepare_cached(
                    "SELECT count(*), min(created_ms), sum(created_ms < CASE precedence \
                     WHEN 0 THEN ?2 WHEN 1 THEN ?3 WHEN 2 THEN ?4 ELSE ?5 END) \
                     FROM outbox WHERE peer = ?1 AND state = ?6",
                )?
                .query_row(
                    params![&peer.as_bytes()[..], c(0)?, c(1)?, c(2)?, c(3)?, state],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
            let oldest = uint(oldest.unwrap_or(0), "created_ms")?;
            total.count += uint(count, "count")?;
            total.overdue += uint(overdue.unwrap_or(0), "count")?;
            if oldest != 0 && (total.oldest_ms == 0 || oldest < total.oldest_ms) {
                total.oldest_ms = oldest;
            }
        }
        Ok(total)
    }

    /// Transitions: Unsealed/Pending → Delivered, Acknowledged or Rejected; Delivered →
    /// Acknowledged; Rejected → Delivered or Acknowledged (SPEC.md §8.6: if a correct peer's
    /// impossible mix of REJECTED and a delivery receipt is held, the delivery decides);
    /// nothing else goes backwards. A receipt that
    /// changes no state is still stored: it is evidence. A receipt for a message id we never
    /// sent, or whose peer is not that message's recipient, is ignored (module docs).
    fn record_receipts(&mut self, batch: &[ReceiptRecord]) -> Result<()> {
        let tx = self.write()?;
        {
            let mut message = tx.prepare_cached("SELECT peer FROM outbox WHERE message_id = ?1")?;
            let mut insert = tx.prepare_cached(
                "INSERT INTO receipts_in (sha256, message_id, peer, kind, bytes, stored_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (sha256) DO NOTHING",
            )?;
            let mut advance = tx.prepare_cached(
                "UPDATE outbox SET state = ?2 WHERE message_id = ?1 \
                 AND (state IN ('unsealed', 'pending') \
                      OR (state = 'delivered' AND ?2 = 'acknowledged') \
                      OR (state = 'rejected' AND ?2 IN ('delivered', 'acknowledged')))",
            )?;
            for r in batch {
                let new_state = state_for_kind(&r.kind)?;
                let recipient: Option<Vec<u8>> = message
                    .query_row([&r.message_id[..]], |row| row.get(0))
                    .optional()?;
                if recipient.as_deref() != Some(&r.peer.as_bytes()[..]) {
                    continue;
                }
                let stored = insert.execute(params![
                    &r.sha256[..],
                    &r.message_id[..],
                    &r.peer.as_bytes()[..],
                    r.kind,
                    &r.bytes[..],
                    int(r.stored_ms, "stored_ms")?,
                ])?;
                if stored == 1 {
                    advance.execute(params![&r.message_id[..], new_state])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn out_state(&mut self, message_id: &MessageId) -> Result<Option<OutState>> {
        let state: Option<String> = self
            .conn
            .prepare_cached("SELECT state FROM outbox WHERE message_id = ?1")?
            .query_row([&message_id[..]], |r| r.get(0))
            .optional()?;
        state.as_deref().map(state_back).transpose()
    }

    fn sent_envelope(&mut self, message_id: &MessageId) -> Result<Option<Bytes>> {
        let envelope: Option<Option<Vec<u8>>> = self
            .conn
            .prepare_cached("SELECT envelope FROM outbox WHERE message_id = ?1")?
            .query_row([&message_id[..]], |r| r.get(0))
            .optional()?;
        Ok(envelope.flatten().map(Bytes::from))
    }

    fn last_sequence(&mut self, peer: &NodeId) -> Result<u64> {
        let last: i64 = self
            .conn
            .prepare_cached(LAST_SEQUENCE)?
            .query_row([&peer.as_bytes()[..]], |r| r.get(0))?;
        uint(last, "sequence")
    }

    /// The arrival's receipt must be about the arrival's message (else `Database`: a caller
    /// bug); it is stored as an outgoing receipt already confirmed, since it travels back on
    /// the envelope's own stream.
    fn accept(&mut self, batch: &[Arrival]) -> Result<Vec<AcceptOutcome>> {
        let tx = self.write()?;
        let mut outcomes = Vec::with_capacity(batch.len());
        {
            let mut existing = tx.prepare_cached(RECEIVED)?;
            let mut receipt = tx.prepare_cached(
                "INSERT INTO receipts_out (sha256, message_id, peer, kind, bytes, stored_ms, \
                 confirmed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)",
            )?;
            let mut inbox = tx.prepare_cached(
                "INSERT INTO inbox (message_id, peer, sequence, precedence, tlp, created_ms, \
                 received_ms, envelope, envelope_sha256, content, subject, officer, \
                 delivered_receipt) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?;
            for a in batch {
                if a.receipt.message_id != a.message_id {
                    return Err(StoreError::Database(format!(
                        "the receipt prepared for message {} is about message {}",
                        hex(&a.message_id),
                        hex(&a.receipt.message_id)
                    )));
                }
                let found: Option<(Vec<u8>, Vec<u8>)> = existing
                    .query_row([&a.message_id[..]], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?;
                if let Some((sha, original)) = found {
                    outcomes.push(if sha == a.envelope_sha256[..] {
                        AcceptOutcome::Duplicate {
                            receipt: Bytes::from(original),
                        }
                    } else {
                        AcceptOutcome::Conflict
                    });
                    continue;
                }
                let r = &a.receipt;
                receipt.execute(params![
                    &r.sha256[..],
                    &r.message_id[..],
                    &r.peer.as_bytes()[..],
                    r.kind,
                    &r.bytes[..],
                    int(r.stored_ms, "stored_ms")?,
                ])?;
                inbox.execute(params![
                    &a.message_id[..],
                    &a.peer.as_bytes()[..],
                    peer_seq(a.sequence),
                    precedence(a.precedence),
                    a.tlp,
                    int(a.created_ms, "created_ms")?,
                    int(a.received_ms, "received_ms")?,
                    &a.envelope[..],
                    &a.envelope_sha256[..],
                    &a.content[..],
                    a.subject,
                    a.officer,
                    &r.sha256[..],
                ])?;
                outcomes.push(AcceptOutcome::Inserted);
            }
        }
        tx.commit()?;
        Ok(outcomes)
    }

    fn received(&mut self, message_id: &MessageId) -> Result<Option<([u8; 32], Bytes)>> {
        let found: Option<(Vec<u8>, Vec<u8>)> = self
            .conn
            .prepare_cached(RECEIVED)?
            .query_row([&message_id[..]], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        found
            .map(|(sha, receipt)| Ok((digest(&sha)?, Bytes::from(receipt))))
            .transpose()
    }

    /// Gaps and islands in SQL: one pass over the (peer, sequence) index with `lag`/`lead`
    /// returns only the first and last sequence of each run, so a peer with a million
    /// messages and no gap costs two rows. Stored sequences are two's-complement, so the
    /// u64 order is the non-negative half, then the negative half (2^63 and above, which only
    /// a broken peer sends); each half is one query and the halves are merged.
    fn received_sequences(&mut self, peer: &NodeId) -> Result<Vec<(u64, u64)>> {
        let key = &peer.as_bytes()[..];
        let mut out = Vec::new();
        let mut bounds = self.conn.prepare_cached(
            "SELECT s, prev IS NULL OR s - prev > 1, next IS NULL OR next - s > 1 FROM ( \
                 SELECT sequence AS s, lag(sequence) OVER w AS prev, \
                        lead(sequence) OVER w AS next \
                 FROM inbox WHERE peer = ?1 AND sequence BETWEEN ?2 AND ?3 \
                 WINDOW w AS (ORDER BY sequence)) \
             WHERE prev IS NULL OR s - prev > 1 OR next IS NULL OR next - s > 1 \
             ORDER BY s",
        )?;
        // Differences are taken within one half only, where they cannot overflow.
        for (from, to) in [(0, i64::MAX), (i64::MIN, -1)] {
            let rows = bounds.query_map(params![key, from, to], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, bool>(1)?,
                    r.get::<_, bool>(2)?,
                ))
            })?;
            let mut first = None;
            for row in rows {
                let (s, starts, ends) = row?;
                let s = peer_seq_back(s);
                if starts {
                    first = Some(s);
                }
                if ends {
                    push_range(&mut out, (first.take().unwrap_or(s), s));
                }
            }
        }
        Ok(out)
    }

    /// Newest first by arrival time (then by arrival order).
    fn inbox(&mut self, limit: usize) -> Result<Vec<InboxRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT i.message_id, i.peer, i.sequence, i.precedence, i.tlp, i.created_ms, \
                    i.received_ms, i.subject, i.officer, \
                    EXISTS (SELECT 1 FROM receipts_out AS r \
                            WHERE r.message_id = i.message_id AND r.kind = 'ACKNOWLEDGED') \
             FROM inbox AS i ORDER BY i.received_ms DESC, i.id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_and_then([limit], |r| -> Result<InboxRow> {
            Ok(InboxRow {
                message_id: message_id(&r.get::<_, Vec<u8>>(0)?)?,
                peer: node_id(&r.get::<_, Vec<u8>>(1)?)?,
                sequence: peer_seq_back(r.get(2)?),
                precedence: precedence_back(r.get(3)?)?,
                tlp: r.get(4)?,
                created_ms: uint(r.get(5)?, "created_ms")?,
                received_ms: uint(r.get(6)?, "received_ms")?,
                subject: r.get(7)?,
                officer: r.get(8)?,
                acknowledged: r.get(9)?,
            })
        })?;
        rows.collect()
    }

    fn messages(
        &mut self,
        incoming: bool,
        peer: Option<NodeId>,
        limit: usize,
    ) -> Result<Vec<MessageRow>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let peer_blob: Option<Vec<u8>> = peer.map(|p| p.as_bytes().to_vec());
        let sql = if incoming {
            "SELECT i.message_id, i.peer, i.sequence, i.precedence, i.tlp, i.created_ms, i.received_ms, \
                    i.subject, i.officer, \
                    CASE WHEN EXISTS (SELECT 1 FROM receipts_out AS r WHERE r.message_id = i.message_id \
                                      AND r.kind = 'ACKNOWLEDGED') THEN 'acknowledged' ELSE 'received' END \
             FROM inbox AS i WHERE (?1 IS NULL OR i.peer = ?1) \
             ORDER BY i.created_ms DESC, i.id DESC LIMIT ?2"
        } else {
            "SELECT o.message_id, o.peer, o.sequence, o.precedence, o.tlp, o.created_ms, 0, \
                    o.subject, o.officer, o.state \
             FROM outbox AS o WHERE (?1 IS NULL OR o.peer = ?1) \
             ORDER BY o.created_ms DESC, o.sequence DESC LIMIT ?2"
        };
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_and_then(params![peer_blob, limit], |r| message_row(r, incoming))?;
        rows.collect()
    }

    fn message(&mut self, id: &MessageId) -> Result<Option<StoredMessage>> {
        let inbox = self
            .conn
            .prepare_cached(
                "SELECT i.message_id, i.peer, i.sequence, i.precedence, i.tlp, i.created_ms, i.received_ms, \
                        i.subject, i.officer, \
                        CASE WHEN EXISTS (SELECT 1 FROM receipts_out AS r WHERE r.message_id = i.message_id \
                                          AND r.kind = 'ACKNOWLEDGED') THEN 'acknowledged' ELSE 'received' END, \
                        i.envelope, i.content \
                 FROM inbox AS i WHERE i.message_id = ?1",
            )?
            .query_and_then([&id[..]], |r| -> Result<(MessageRow, Vec<u8>, Vec<u8>)> {
                Ok((message_row(r, true)?, r.get(10)?, r.get(11)?))
            })?
            .next()
            .transpose()?;
        let (row, envelope, content, table) = match inbox {
            Some((row, e, c)) => (row, e, c, "receipts_out"),
            None => {
                let outbox = self
                    .conn
                    .prepare_cached(
                        "SELECT o.message_id, o.peer, o.sequence, o.precedence, o.tlp, o.created_ms, 0, \
                                o.subject, o.officer, o.state, o.envelope, o.content \
                         FROM outbox AS o WHERE o.message_id = ?1",
                    )?
                    .query_and_then([&id[..]], |r| -> Result<(MessageRow, Option<Vec<u8>>, Vec<u8>)> {
                        Ok((message_row(r, false)?, r.get(10)?, r.get(11)?))
                    })?
                    .next()
                    .transpose()?;
                match outbox {
                    Some((row, e, c)) => (row, e.unwrap_or_default(), c, "receipts_in"),
                    None => return Ok(None),
                }
            }
        };
        let receipts = self.receipts_of(table, id)?;
        Ok(Some(StoredMessage {
            row,
            envelope: Bytes::from(envelope),
            content: Bytes::from(content),
            receipts,
        }))
    }

    fn export(
        &mut self,
        peer: Option<NodeId>,
        since: hotline_protocol::time::UnixMillis,
    ) -> Result<Vec<ExportItem>> {
        let since = int(since, "since")?;
        let peer_blob: Option<Vec<u8>> = peer.map(|p| p.as_bytes().to_vec());
        // (created_ms, incoming, message_id, peer, envelope)
        type Found = (i64, bool, Vec<u8>, Vec<u8>, Vec<u8>);
        let mut found: Vec<Found> = Vec::new();
        for (incoming, sql) in [
            (
                true,
                "SELECT created_ms, message_id, peer, envelope FROM inbox WHERE (?1 IS NULL OR peer = ?1) AND created_ms >= ?2",
            ),
            (
                false,
                "SELECT created_ms, message_id, peer, envelope FROM outbox \
                 WHERE envelope IS NOT NULL AND (?1 IS NULL OR peer = ?1) AND created_ms >= ?2",
            ),
        ] {
            let mut stmt = self.conn.prepare_cached(sql)?;
            let rows = stmt.query_map(params![peer_blob, since], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    incoming,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })?;
            for row in rows {
                found.push(row?);
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.2.cmp(&b.2)));
        let mut items = Vec::with_capacity(found.len());
        for (_, incoming, mid, peer, envelope) in found {
            let id = message_id(&mid)?;
            let receipts = self.receipts_of(
                if incoming {
                    "receipts_out"
                } else {
                    "receipts_in"
                },
                &id,
            )?;
            items.push(ExportItem {
                peer: node_id(&peer)?,
                incoming,
                envelope: Bytes::from(envelope),
                receipts,
            });
        }
        Ok(items)
    }

    /// The message must be in the inbox (else `Database`: a caller bug). Storing the same
    /// receipt bytes again is a no-op.
    fn store_own_receipt(&mut self, receipt: &ReceiptRecord) -> Result<()> {
        state_for_kind(&receipt.kind)?;
        let stored_ms = int(receipt.stored_ms, "stored_ms")?;
        let tx = self.write()?;
        {
            let known = tx
                .prepare_cached("SELECT 1 FROM inbox WHERE message_id = ?1")?
                .exists([&receipt.message_id[..]])?;
            if !known {
                return Err(StoreError::Database(format!(
                    "no received message has id {}; a receipt is made only for one",
                    hex(&receipt.message_id)
                )));
            }
            tx.prepare_cached(
                "INSERT INTO receipts_out (sha256, message_id, peer, kind, bytes, stored_ms, \
                 confirmed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0) ON CONFLICT (sha256) DO NOTHING",
            )?
            .execute(params![
                &receipt.sha256[..],
                &receipt.message_id[..],
                &receipt.peer.as_bytes()[..],
                receipt.kind,
                &receipt.bytes[..],
                stored_ms,
            ])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Oldest first.
    fn unconfirmed_receipts(&mut self, peer: &NodeId) -> Result<Vec<Bytes>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT bytes FROM receipts_out WHERE peer = ?1 AND confirmed = 0 \
             ORDER BY stored_ms, rowid",
        )?;
        let rows = stmt.query_map([&peer.as_bytes()[..]], |r| {
            r.get::<_, Vec<u8>>(0).map(Bytes::from)
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// An unknown SHA-256 is ignored.
    fn confirm_receipt(&mut self, sha256: &[u8; 32]) -> Result<()> {
        let tx = self.write()?;
        tx.prepare_cached("UPDATE receipts_out SET confirmed = 1 WHERE sha256 = ?1")?
            .execute([&sha256[..]])?;
        tx.commit()?;
        Ok(())
    }

    fn audit(&mut self, events: &[AuditEvent]) -> Result<()> {
        let tx = self.write()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO audit (time_ms, kind, peer, message_id, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for e in events {
                insert.execute(params![
                    int(e.time_ms, "time_ms")?,
                    e.kind,
                    e.peer.as_ref().map(|p| &p.as_bytes()[..]),
                    e.message_id.as_ref().map(|m| &m[..]),
                    e.detail,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn recent_audit(&mut self, limit: usize) -> Result<Vec<AuditEvent>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT time_ms, kind, peer, message_id, detail FROM audit ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_and_then([limit], |r| -> Result<AuditEvent> {
            Ok(AuditEvent {
                time_ms: uint(r.get(0)?, "time_ms")?,
                kind: r.get(1)?,
                peer: r
                    .get::<_, Option<Vec<u8>>>(2)?
                    .as_deref()
                    .map(node_id)
                    .transpose()?,
                message_id: r
                    .get::<_, Option<Vec<u8>>>(3)?
                    .as_deref()
                    .map(message_id)
                    .transpose()?,
                detail: r.get(4)?,
            })
        })?;
        rows.collect()
    }

    /// `PRAGMA integrity_check` (reads the whole file: seconds on a large database),
    /// `PRAGMA foreign_key_check`, the schema version and the file's application id, and that
    /// outgoing sequences have no holes.
    fn check(&mut self) -> Result<Vec<String>> {
        schema::check(&self.conn)
    }
}

/// The highest sequence assigned for a peer, 0 if none (served by UNIQUE (peer, sequence)).
const LAST_SEQUENCE: &str = "SELECT coalesce(max(sequence), 0) FROM outbox WHERE peer = ?1";

/// Envelope SHA-256 and DELIVERED receipt bytes of a received message.
const RECEIVED: &str = "SELECT i.envelope_sha256, r.bytes FROM inbox AS i \
     JOIN receipts_out AS r ON r.sha256 = i.delivered_receipt WHERE i.message_id = ?1";
