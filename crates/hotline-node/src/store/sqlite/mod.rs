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
//!   message's recipient, is ignored: not stored, no error ([`ReceiptOutcome::Unknown`]). The
//!   session verified it against our envelope before it gets here, so this only happens on a
//!   caller bug; storing it would need an outbox row to refer to.
//! - A receipt kind other than `DELIVERED`, `ACKNOWLEDGED`, `REJECTED` is a caller bug: the
//!   batch fails with [`StoreError::Database`].
//! - Sequence numbers *received* from a peer are any u64 (the wire does not bound them), so
//!   they are stored as their two's-complement i64; no peer input can make a write fail.
//!   Sequences we assign are ordinary non-negative integers.
//! - One process should own a database at a time; if a second one opens it, SQLite's locks
//!   make it wait ([`BUSY_TIMEOUT`]) rather than corrupt anything.

mod admin;
mod backup;
mod cancel;
mod check;
mod convert;
mod inbox;
mod outbox;
mod pins;
mod query;
mod retention;
mod revocations;
mod schema;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use hotline_protocol::NodeId;
use hotline_protocol::envelope::MessageId;
use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::high_water::{HWM_FILE, HighWater};
use super::{
    AcceptOutcome, Arrival, AuditEvent, CancelOutcome, ExportItem, FloorSource, InboxRow,
    InstalledBundle, ListQuery, MessageRow, OperatorRecord, OutState, OwnReceiptOutcome,
    PeerRecord, PendingSummary, Position, Purged, ReceiptOutcome, ReceiptRecord, RejectedSequence,
    Result, RetentionPolicy, Store, StoreError, StoredMessage, StoredSubmission, Submission,
    SubmitOutcome,
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
    /// This process's run of `hotlined` ([`Store::begin_run`]), written with every message
    /// it stores; `None` for tools that never send.
    run: Option<i64>,
    /// Where the high-water mark is kept (beside the database file); `None` in memory.
    hwm_path: Option<std::path::PathBuf>,
    /// The high-water mark, once [`Store::high_water`] loaded it: every sequence assigned is
    /// noted in it after its commit.
    high_water: Option<std::sync::Arc<HighWater>>,
    /// Sequences assigned inside the current group, noted when (and if) the group commits.
    assigned: Vec<(NodeId, u64)>,
}

impl Drop for SqliteStore {
    /// The last write of the high-water mark, after the last commit (the daemon's store thread
    /// drops the store when it stops).
    fn drop(&mut self) {
        if let Some(hw) = &self.high_water
            && let Err(e) = hw.flush()
        {
            tracing::error!("cannot write {}: {e}", hw.path().display());
        }
    }
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
        // A new database file is created mode 0600 (it holds messages in clear); SQLite gives
        // its WAL and shared-memory files the mode of the database file.
        {
            use std::os::unix::fs::OpenOptionsExt;
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
            {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(StoreError::Database(format!("{}: {e}", path.display())));
                }
            }
        }
        let conn = Connection::open(path).map_err(|e| in_file(e.into()))?;
        let mut store = Self::init(conn, true).map_err(in_file)?;
        store.hwm_path = Some(path.with_file_name(HWM_FILE));
        Ok(store)
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
        // durable in the WAL (synchronous = FULL). secure_delete = ON overwrites with zeros
        // whatever SQLite frees, from the start: what the retention policy removes (Store::purge)
        // must not stay readable in free space, including copies a page split left behind
        // long before the removal. Its cost falls on deletes and page splits, rare here.
        conn.execute_batch(
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA trusted_schema = OFF; \
             PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 4000; \
             PRAGMA secure_delete = ON;",
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
            run: None,
            hwm_path: None,
            high_water: None,
            assigned: Vec::new(),
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

    /// Notes sequences whose write committed (or, inside a group, will commit with it) in the
    /// high-water mark.
    fn note_assigned(&mut self, assigned: impl IntoIterator<Item = (NodeId, u64)>) {
        let Some(hw) = &self.high_water else { return };
        if self.in_group {
            self.assigned.extend(assigned);
        } else {
            for (peer, seq) in assigned {
                hw.note(peer, seq);
            }
        }
    }
}

// Most bodies live in the submodules (`admin`, `outbox`, `inbox`, `query`) as inherent methods
// of the same name; the documentation of the choices made stays here, on the trait methods.
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
        let assigned = std::mem::take(&mut self.assigned);
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            // Nothing of the group is stored; leave no transaction open behind.
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            return Err(e.into());
        }
        self.note_assigned(assigned);
        Ok(())
    }

    fn peers(&mut self) -> Result<Vec<PeerRecord>> {
        SqliteStore::peers(self)
    }

    /// `Conflict` names what is pinned already and how to unpin it.
    fn add_peer(&mut self, peer: &PeerRecord) -> Result<()> {
        SqliteStore::add_peer(self, peer)
    }

    fn operators(&mut self) -> Result<Vec<OperatorRecord>> {
        SqliteStore::operators(self)
    }

    fn add_operator(&mut self, op: &OperatorRecord) -> Result<()> {
        SqliteStore::add_operator(self, op)
    }

    fn renew_operator(&mut self, name: &str, credential: &[u8]) -> Result<bool> {
        SqliteStore::renew_operator(self, name, credential)
    }

    fn revoke_operator(
        &mut self,
        name: &str,
        now: hotline_protocol::time::UnixMillis,
    ) -> Result<bool> {
        SqliteStore::revoke_operator(self, name, now)
    }

    fn remove_peer(&mut self, alias: &str) -> Result<bool> {
        SqliteStore::remove_peer(self, alias)
    }

    fn update_peer(
        &mut self,
        alias: &str,
        bundle: Option<&Bytes>,
        address: Option<&str>,
        now: hotline_protocol::time::UnixMillis,
    ) -> Result<bool> {
        SqliteStore::update_peer(self, alias, bundle, address, now)
    }

    fn bundle_history(&mut self) -> Result<Vec<InstalledBundle>> {
        SqliteStore::bundle_history(self)
    }

    fn submit(&mut self, batch: &[Submission]) -> Result<Vec<SubmitOutcome>> {
        SqliteStore::submit(self, batch)
    }

    /// Idempotent for the same envelope. `Conflict` if a message is already sealed with other
    /// bytes (a message is sealed once, SPEC.md §10.1); `Database` for an unknown id.
    fn attach_envelopes(&mut self, batch: &[(MessageId, Bytes, [u8; 32])]) -> Result<()> {
        SqliteStore::attach_envelopes(self, batch)
    }

    /// Ordered by sequence, then peer.
    fn unsealed(&mut self) -> Result<Vec<StoredSubmission>> {
        SqliteStore::unsealed(self)
    }

    fn pending_envelopes(&mut self, peer: &NodeId) -> Result<Vec<Bytes>> {
        SqliteStore::pending_envelopes(self, peer)
    }

    fn pending_window(
        &mut self,
        peer: &NodeId,
        skip: &std::collections::HashSet<MessageId>,
        want: usize,
    ) -> Result<Vec<Bytes>> {
        SqliteStore::pending_window(self, peer, skip, want)
    }

    fn pending_summary(
        &mut self,
        peer: &NodeId,
        cutoffs: [hotline_protocol::time::UnixMillis; 4],
    ) -> Result<PendingSummary> {
        SqliteStore::pending_summary(self, peer, cutoffs)
    }

    /// Transitions: Unsealed/Pending → Delivered, Acknowledged or Rejected (the first final
    /// receipt decides); Delivered → Acknowledged; nothing else (SPEC.md §8.6). A REJECTED
    /// after a delivery receipt decided, or a delivery receipt after a REJECTED decided, is
    /// stored as evidence and changes nothing ([`ReceiptOutcome::Contradictory`]). A receipt of a kind the message already holds is
    /// not stored ([`ReceiptOutcome::Discarded`]; the trigger of schema version 9 refuses
    /// it too). A receipt for a message id we never sent, or whose peer is not that
    /// message's recipient, is ignored (module docs).
    fn record_receipts(&mut self, batch: &[ReceiptRecord]) -> Result<Vec<ReceiptOutcome>> {
        SqliteStore::record_receipts(self, batch)
    }

    fn out_state(&mut self, message_id: &MessageId) -> Result<Option<OutState>> {
        SqliteStore::out_state(self, message_id)
    }

    fn location(&self) -> Option<std::path::PathBuf> {
        let path = self.conn.path().filter(|p| !p.is_empty())?;
        std::path::Path::new(path).parent().map(|d| d.to_path_buf())
    }

    fn received_bytes_by_peer(&mut self) -> Result<Vec<(NodeId, u64)>> {
        SqliteStore::received_bytes_by_peer(self)
    }

    fn begin_run(&mut self, now: hotline_protocol::time::UnixMillis) -> Result<u64> {
        SqliteStore::begin_run(self, now)
    }

    /// Checks and updates in one IMMEDIATE transaction, with the audit row.
    fn cancel(
        &mut self,
        message_id: &MessageId,
        commit: Option<(&str, hotline_protocol::time::UnixMillis)>,
    ) -> Result<CancelOutcome> {
        SqliteStore::cancel(self, message_id, commit)
    }

    fn sent_envelope(&mut self, message_id: &MessageId) -> Result<Option<Bytes>> {
        SqliteStore::sent_envelope(self, message_id)
    }

    fn last_sequence(&mut self, peer: &NodeId) -> Result<u64> {
        SqliteStore::last_sequence(self, peer)
    }

    /// The file [`HWM_FILE`] beside the database file; none for a store in memory. A file that
    /// cannot be read at all is an error (`Database`); unreadable lines are skipped and named.
    fn high_water(&mut self) -> Result<(Option<std::sync::Arc<HighWater>>, Vec<String>)> {
        if let Some(hw) = &self.high_water {
            return Ok((Some(hw.clone()), Vec::new()));
        }
        let Some(path) = &self.hwm_path else {
            return Ok((None, Vec::new()));
        };
        let (hw, problems) = HighWater::load(path)
            .map_err(|e| StoreError::Database(format!("{}: {e}", path.display())))?;
        let hw = std::sync::Arc::new(hw);
        self.high_water = Some(hw.clone());
        Ok((Some(hw), problems))
    }

    fn raise_sequence_floor(
        &mut self,
        peer: &NodeId,
        floor: u64,
        source: FloorSource,
        now: hotline_protocol::time::UnixMillis,
    ) -> Result<Option<u64>> {
        SqliteStore::raise_sequence_floor(self, peer, floor, source, now)
    }

    /// The arrival's receipt must be about the arrival's message (else `Database`: a caller
    /// bug); it is stored as an outgoing receipt already confirmed, since it travels back on
    /// the envelope's own stream.
    fn accept(&mut self, batch: &[Arrival]) -> Result<Vec<AcceptOutcome>> {
        SqliteStore::accept(self, batch)
    }

    fn received(&mut self, message_id: &MessageId) -> Result<Option<([u8; 32], Bytes)>> {
        SqliteStore::received(self, message_id)
    }

    /// Gaps and islands in SQL: one pass over the (peer, sequence) index with `lag`/`lead`
    /// returns only the first and last sequence of each run, so a peer with a million
    /// messages and no gap costs two rows. Stored sequences are two's-complement, so the
    /// u64 order is the non-negative half, then the negative half (2^63 and above, which only
    /// a broken peer sends); each half is one query and the halves are merged.
    fn received_sequences(&mut self, peer: &NodeId) -> Result<Vec<(u64, u64)>> {
        SqliteStore::received_sequences(self, peer)
    }

    fn record_rejected_sequence(&mut self, r: &RejectedSequence) -> Result<()> {
        SqliteStore::record_rejected_sequence(self, r)
    }

    fn set_announced_keys(
        &mut self,
        peer: &NodeId,
        keys: &[u8],
        now: hotline_protocol::time::UnixMillis,
    ) -> Result<()> {
        SqliteStore::set_announced_keys(self, peer, keys, now)
    }

    fn announced_keys(&mut self) -> Result<Vec<(NodeId, Vec<u8>)>> {
        SqliteStore::announced_keys(self)
    }

    fn add_revocation(
        &mut self,
        revocation: &hotline_protocol::revocation::Revocation,
        now: hotline_protocol::time::UnixMillis,
        max_per_issuer: usize,
    ) -> Result<crate::store::RevocationAdded> {
        SqliteStore::add_revocation(self, revocation, now, max_per_issuer)
    }

    fn unsent_signed_by(
        &mut self,
        officer_key: &[u8; 32],
        since: hotline_protocol::time::UnixMillis,
    ) -> Result<Vec<MessageId>> {
        SqliteStore::unsent_signed_by(self, officer_key, since)
    }

    fn take_peer_bundle(
        &mut self,
        peer: &NodeId,
        bundle: &Bytes,
        previous_pin: Option<[u8; 32]>,
        history: bool,
        now: hotline_protocol::time::UnixMillis,
    ) -> Result<bool> {
        SqliteStore::take_peer_bundle(self, peer, bundle, previous_pin, history, now)
    }

    fn previous_pin(&mut self, peer: &NodeId) -> Result<Option<[u8; 32]>> {
        SqliteStore::previous_pin(self, peer)
    }

    fn forget_previous_pin(&mut self, peer: &NodeId) -> Result<()> {
        SqliteStore::forget_previous_pin(self, peer)
    }

    fn revocations(&mut self) -> Result<Vec<hotline_protocol::revocation::Revocation>> {
        SqliteStore::revocations(self)
    }

    /// Newest first by arrival time (then by arrival order).
    fn inbox(&mut self, limit: usize) -> Result<Vec<InboxRow>> {
        SqliteStore::inbox(self, limit)
    }

    fn messages(&mut self, q: &ListQuery) -> Result<Vec<MessageRow>> {
        SqliteStore::messages(self, q)
    }

    fn message(&mut self, id: &MessageId) -> Result<Option<StoredMessage>> {
        SqliteStore::message(self, id)
    }

    fn export_page(
        &mut self,
        peer: Option<NodeId>,
        since: hotline_protocol::time::UnixMillis,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<ExportItem>> {
        SqliteStore::export_page(self, peer, since, after, limit)
    }

    fn export_peers(
        &mut self,
        peer: Option<NodeId>,
        since: hotline_protocol::time::UnixMillis,
    ) -> Result<Vec<NodeId>> {
        SqliteStore::export_peers(self, peer, since)
    }

    /// The message must be in the inbox (else `Database`: a caller bug). Storing the same
    /// receipt bytes again is a no-op.
    fn store_own_receipt(&mut self, receipt: &ReceiptRecord) -> Result<OwnReceiptOutcome> {
        SqliteStore::store_own_receipt(self, receipt)
    }

    /// Oldest first.
    fn unconfirmed_receipts(&mut self, peer: &NodeId) -> Result<Vec<Bytes>> {
        SqliteStore::unconfirmed_receipts(self, peer)
    }

    /// An unknown SHA-256 is ignored.
    fn confirm_receipt(&mut self, sha256: &[u8; 32]) -> Result<()> {
        SqliteStore::confirm_receipt(self, sha256)
    }

    fn audit(&mut self, events: &[AuditEvent]) -> Result<()> {
        SqliteStore::audit(self, events)
    }

    fn recent_audit(&mut self, limit: usize) -> Result<Vec<AuditEvent>> {
        SqliteStore::recent_audit(self, limit)
    }

    /// The removed bytes become empty (no stored envelope, content or receipt is ever empty)
    /// and a row of `removals` records each removal in the same transaction (schema version
    /// 12); what SQLite frees is overwritten (`secure_delete`, on for the connection) and
    /// copied into the database file at once, and the write-ahead log emptied
    /// (`wal_checkpoint(TRUNCATE)`), so that the removed bytes are left in neither. A batch
    /// also stops after about 32 MiB removed (`retention::BATCH_BYTES`).
    fn purge(
        &mut self,
        policy: &RetentionPolicy,
        now: hotline_protocol::time::UnixMillis,
        max_rows: usize,
    ) -> Result<Purged> {
        SqliteStore::purge(self, policy, now, max_rows)
    }

    /// `PRAGMA integrity_check` (reads the whole file: seconds on a large database),
    /// `PRAGMA foreign_key_check`, the schema version and the file's application id, and that
    /// outgoing sequences have no holes (other than those a restore from an older copy left
    /// below a sequence floor, which are expected).
    fn check(&mut self) -> Result<Vec<String>> {
        check::check(&self.conn)
    }
}
