//! Durable storage behind a narrow trait (issue: SQLite now, PostgreSQL later for an HA pair).
//!
//! The rules the daemon relies on (SPEC.md §8.5):
//! - a submitted message is durable (committed) before the operator is told its id;
//! - an arriving envelope and the DELIVERED receipt made for it are committed in one
//!   transaction before the receipt leaves the node;
//! - a receipt from the peer is committed before its message is reported delivered.
//!
//! Every method that writes takes a batch and commits it in **one transaction**, so the
//! daemon's store thread can group-commit many messages per fsync. A method returns only after
//! its transaction committed (or failed and rolled back: then nothing of the batch is stored).
//! Implementations are used from one thread at a time (`&mut self`).

pub mod high_water;
pub mod sqlite;
mod types;

pub use types::*;

use bytes::Bytes;
use hotline_protocol::NodeId;
use hotline_protocol::envelope::MessageId;
use hotline_protocol::time::UnixMillis;

/// A storage failure. Never caused by peer input; the daemon logs it and retries or stops.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database engine failed (I/O error, corruption, locked).
    #[error("database error: {0}")]
    Database(String),
    /// The database was written by a newer hotlined (schema version too high).
    #[error(
        "database schema version {found} is newer than this hotlined supports ({supported}); upgrade hotlined"
    )]
    TooNew {
        /// Version found.
        found: u32,
        /// Highest version this build knows.
        supported: u32,
    },
    /// A uniqueness rule was violated (e.g. a peer alias or identity already present).
    #[error("{0}")]
    Conflict(String),
    /// Stored data failed a consistency check.
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, StoreError>;

/// The storage operations the daemon needs. See the module documentation for the rules.
pub trait Store: Send + 'static {
    // ----- peers -----
    /// All pinned peers, ordered by alias.
    fn peers(&mut self) -> Result<Vec<PeerRecord>>;
    /// Pins a peer; `Conflict` if the alias or the identity is already pinned.
    fn add_peer(&mut self, peer: &PeerRecord) -> Result<()>;
    /// Unpins a peer by alias; false if there was none. Its messages stay, and so do the
    /// bundles it ever had (evidence of its messages needs them).
    fn remove_peer(&mut self, alias: &str) -> Result<bool>;
    /// Replaces a pinned peer's bundle and/or address; false if there is no such peer. The
    /// new bundle must name the same node (`Conflict` otherwise); the old one stays in the
    /// bundle history.
    fn update_peer(
        &mut self,
        alias: &str,
        bundle: Option<&Bytes>,
        address: Option<&str>,
        now: UnixMillis,
    ) -> Result<bool>;
    /// Every peer bundle ever installed (by `add_peer` or `update_peer`), oldest first: the
    /// node id, the exact bundle bytes, and when it was installed.
    fn bundle_history(&mut self) -> Result<Vec<InstalledBundle>>;

    // ----- operators -----
    /// Every operator credential issued, revoked ones included, ordered by name.
    fn operators(&mut self) -> Result<Vec<OperatorRecord>>;
    /// Records a new operator; `Conflict` if the name, key or TLS key is taken.
    fn add_operator(&mut self, op: &OperatorRecord) -> Result<()>;
    /// Revokes an operator by name at `now`; false if there is no such unrevoked operator.
    fn revoke_operator(&mut self, name: &str, now: UnixMillis) -> Result<bool>;
    /// Replaces the credential of the unrevoked operator `name` (a renewal: same keys, new
    /// validity); false if there is no such operator.
    fn renew_operator(&mut self, name: &str, credential: &[u8]) -> Result<bool>;

    // ----- grouping -----
    /// Runs `f`, nesting every write it makes through the store in one transaction: one
    /// commit (one fsync) for all of them. A write that fails inside rolls back alone and
    /// returns its error to `f` as usual. Only when this returns `Ok` are the writes durable;
    /// on `Err` none of them is stored.
    fn group(&mut self, f: &mut dyn FnMut(&mut dyn Store)) -> Result<()>;

    // ----- sending -----
    /// Stores new messages, assigning each the next sequence number of its peer (the highest
    /// stored sequence for that peer or its floor ([`Store::raise_sequence_floor`]), whichever
    /// is higher, + 1, in batch order), in one transaction. Returns one outcome per
    /// submission, in batch order: a message id is used once per node, sent or received, so a
    /// repeated submission of the same message gets its first sequence back and any other
    /// reuse of an id is refused; neither writes anything nor uses up a sequence.
    fn submit(&mut self, batch: &[Submission]) -> Result<Vec<SubmitOutcome>>;
    /// Attaches sealed envelope bytes to submitted messages (state Unsealed → Pending).
    fn attach_envelopes(&mut self, batch: &[(MessageId, Bytes, [u8; 32])]) -> Result<()>;
    /// Messages stored but not sealed (found after a crash), in sequence order.
    fn unsealed(&mut self) -> Result<Vec<StoredSubmission>>;
    /// Sealed envelopes to `peer` that have no DELIVERED/ACKNOWLEDGED/REJECTED receipt yet,
    /// FLASH first, then ascending sequence.
    fn pending_envelopes(&mut self, peer: &NodeId) -> Result<Vec<Bytes>>;
    /// The first `want` of [`Store::pending_envelopes`] whose message id is not in `skip`
    /// (the ones a link already holds), in the same order. Reads no further than it must, so
    /// a link can page through a backlog of any size.
    fn pending_window(
        &mut self,
        peer: &NodeId,
        skip: &std::collections::HashSet<MessageId>,
        want: usize,
    ) -> Result<Vec<Bytes>>;
    /// How many messages to `peer` are pending (sealed or not), the oldest one's `created_ms`
    /// (0: none), and how many were created before the cutoff of their precedence
    /// (`cutoffs[p]` for FLASH, IMMEDIATE, PRIORITY, ROUTINE): overdue.
    fn pending_summary(
        &mut self,
        peer: &NodeId,
        cutoffs: [UnixMillis; 4],
    ) -> Result<PendingSummary>;
    /// Stores receipts received for our messages and updates their state: the first final
    /// receipt decides (DELIVERED, ACKNOWLEDGED or REJECTED), a later ACKNOWLEDGED supersedes
    /// DELIVERED, and nothing else changes a decided state (SPEC.md §8.6). At most one receipt
    /// of each kind is kept per message; a receipt whose bytes are already stored, or of a
    /// kind already held, is not stored. Returns one outcome per receipt, in batch order.
    fn record_receipts(&mut self, batch: &[ReceiptRecord]) -> Result<Vec<ReceiptOutcome>>;
    /// The state of one of our messages, if it exists.
    fn out_state(&mut self, message_id: &MessageId) -> Result<Option<OutState>>;
    /// Records that a new run of `hotlined` starts at `now` and returns its number; every
    /// message this store stores from now on is marked with it ([`Store::cancel`]).
    fn begin_run(&mut self, now: UnixMillis) -> Result<u64>;
    /// Cancels one of our messages on behalf of `officer` at `now` (`commit`), or only says
    /// whether it could be (`None`). Only a message stored in the current run (see
    /// [`Store::begin_run`]) and still unsealed or pending can be: the caller must also know
    /// that the running process never wrote it to a connection. Cancelling an already
    /// cancelled message answers its first cancellation and writes nothing.
    fn cancel(
        &mut self,
        message_id: &MessageId,
        commit: Option<(&str, UnixMillis)>,
    ) -> Result<CancelOutcome>;
    /// The sealed envelope bytes of one of our messages, if it exists, is sealed and its
    /// envelope was not removed by the retention policy ([`Store::purge`]).
    fn sent_envelope(&mut self, message_id: &MessageId) -> Result<Option<Bytes>>;
    /// The highest sequence assigned to messages for `peer` (0 if none).
    fn last_sequence(&mut self, peer: &NodeId) -> Result<u64>;
    /// The high-water mark of this store's sequences, kept outside its database, once loaded
    /// (the first call loads it); `None` for a store without a file. From the first call on,
    /// every sequence the store assigns is noted in it once committed. Also returns the
    /// problems met reading it (lines skipped).
    fn high_water(
        &mut self,
    ) -> Result<(Option<std::sync::Arc<high_water::HighWater>>, Vec<String>)>;
    /// Records that sequences up to `floor` were assigned to `peer` by a copy of this database
    /// that was lost (a restore from an older copy, as `source` shows), if `floor` is above
    /// both the highest sequence stored for `peer` and its floor so far: from then on
    /// [`Store::submit`] assigns above it. Writes a `sequence_rollback` audit row in the same
    /// transaction and returns the highest sequence known before; `None` (nothing written) if
    /// the floor is not higher. A floor above [`high_water::MAX_SEQUENCE_FLOOR`] is refused
    /// (`Conflict`).
    fn raise_sequence_floor(
        &mut self,
        peer: &NodeId,
        floor: u64,
        source: FloorSource,
        now: UnixMillis,
    ) -> Result<Option<u64>>;

    // ----- receiving -----
    /// Stores arrivals with their receipts, each insert-if-absent by message id, in one
    /// transaction. Returns one outcome per arrival, in order. Two arrivals with the same id in
    /// one batch: the second gets Duplicate or Conflict against the first. An arrival whose id
    /// is the id of a message this node sent is a Conflict (one id space per node). An arrival
    /// whose sequence the peer already used for another message is stored and flagged
    /// ([`AcceptOutcome::Inserted`]), with its audit row.
    fn accept(&mut self, batch: &[Arrival]) -> Result<Vec<AcceptOutcome>>;
    /// The DELIVERED receipt and envelope SHA-256 stored for an id we received, if any.
    fn received(&mut self, message_id: &MessageId) -> Result<Option<([u8; 32], Bytes)>>;
    /// The directory of the database file; `None` for a database in memory.
    fn location(&self) -> Option<std::path::PathBuf>;
    /// Bytes of received messages held per peer (envelope and plaintext), for the per-peer
    /// storage quota (SPEC.md §13.3). Reads the whole inbox: called once at start.
    fn received_bytes_by_peer(&mut self) -> Result<Vec<(NodeId, u64)>>;
    /// Every sequence number received from `peer` (to restore gap tracking after a restart),
    /// as inclusive ranges in ascending order.
    fn received_sequences(&mut self, peer: &NodeId) -> Result<Vec<(u64, u64)>>;
    /// Records that `sequence` from `peer` counts as received although no message is stored:
    /// its envelope was authenticated and answered REJECTED (SPEC.md §10.2). Committed before
    /// the receipt is sent; a sequence already recorded is left as it is.
    fn record_rejected_sequence(&mut self, r: &RejectedSequence) -> Result<()>;
    /// Remembers the encryption keys `peer` announced last (a canonical KeyUpdate payload,
    /// SPEC.md §4.3.5), replacing what was remembered.
    fn set_announced_keys(&mut self, peer: &NodeId, keys: &[u8], now: UnixMillis) -> Result<()>;
    /// Every peer's remembered announced keys, as stored by [`Store::set_announced_keys`].
    fn announced_keys(&mut self) -> Result<Vec<(NodeId, Vec<u8>)>>;
    /// Keeps a key revocation (SPEC.md §4.6), ours or a peer's: `Known` if held already,
    /// `Full` (and nothing stored) if its issuer has `max_per_issuer` already.
    fn add_revocation(
        &mut self,
        revocation: &hotline_protocol::revocation::Revocation,
        now: UnixMillis,
        max_per_issuer: usize,
    ) -> Result<RevocationAdded>;
    /// Our messages not answered yet (unsealed or pending), created at or after `since`, whose
    /// content `officer_key` signed: what a revocation of that key withdraws (SPEC.md §4.6).
    fn unsent_signed_by(
        &mut self,
        officer_key: &[u8; 32],
        since: UnixMillis,
    ) -> Result<Vec<MessageId>>;
    /// Replaces `peer`'s bundle with one it sent over the link (SPEC.md §4.4.4), adding it to the
    /// bundle history if `history`, and remembers `previous_pin` (the TLS key of the replaced
    /// bundle, if it differs) as still accepted. False if `peer` is not pinned.
    fn take_peer_bundle(
        &mut self,
        peer: &NodeId,
        bundle: &Bytes,
        previous_pin: Option<[u8; 32]>,
        history: bool,
        now: UnixMillis,
    ) -> Result<bool>;
    /// The TLS key `peer` used before its current bundle, while still accepted.
    fn previous_pin(&mut self, peer: &NodeId) -> Result<Option<[u8; 32]>>;
    /// `peer` was seen with its current bundle's TLS key: the previous one is no longer accepted.
    fn forget_previous_pin(&mut self, peer: &NodeId) -> Result<()>;
    /// Every revocation held, each checked again against its issuer, oldest first.
    fn revocations(&mut self) -> Result<Vec<hotline_protocol::revocation::Revocation>>;
    /// The inbox, newest first, at most `limit` rows.
    fn inbox(&mut self, limit: usize) -> Result<Vec<InboxRow>>;
    /// Stores a receipt we made asynchronously (ACKNOWLEDGED) for a message we received; it
    /// stays "unconfirmed" until [`Store::confirm_receipt`]. A message has at most one
    /// ACKNOWLEDGED receipt: if it has one already, that one is returned and nothing is written.
    fn store_own_receipt(&mut self, receipt: &ReceiptRecord) -> Result<OwnReceiptOutcome>;
    /// Our asynchronous receipts to `peer` not yet confirmed stored by the peer.
    fn unconfirmed_receipts(&mut self, peer: &NodeId) -> Result<Vec<Bytes>>;
    /// The peer confirmed storing our receipt with this SHA-256.
    fn confirm_receipt(&mut self, sha256: &[u8; 32]) -> Result<()>;

    // ----- operator views -----
    /// Messages received or sent as `q` selects, newest first (by created_ms, then id).
    fn messages(&mut self, q: &ListQuery) -> Result<Vec<MessageRow>>;
    /// One message with its envelope, content and receipts. Ids are unique across both
    /// directions; in a database written before that rule, a sent message is found before a
    /// received one with the same id (the peer chose the latter's id).
    fn message(&mut self, message_id: &MessageId) -> Result<Option<StoredMessage>>;
    /// Up to `limit` sealed messages, both directions, optionally for one peer, created at or
    /// after `since`, after `after` in the export order (oldest first: created_ms, direction,
    /// id), each with every receipt held.
    fn export_page(
        &mut self,
        peer: Option<NodeId>,
        since: UnixMillis,
        after: Option<Position>,
        limit: usize,
    ) -> Result<Vec<ExportItem>>;
    /// The peers of the messages a whole export selects (each once).
    fn export_peers(&mut self, peer: Option<NodeId>, since: UnixMillis) -> Result<Vec<NodeId>>;

    // ----- audit -----
    /// Appends events to the audit trail.
    fn audit(&mut self, events: &[AuditEvent]) -> Result<()>;
    /// The most recent `limit` audit events, newest first.
    fn recent_audit(&mut self, limit: usize) -> Result<Vec<AuditEvent>>;

    // ----- retention -----
    /// Removes, as of `now`, the parts of messages past their retention period under `policy`
    /// (SPEC.md §13.4): at most `max_rows` of them in one transaction, oldest first, so that a
    /// large backlog is worked off in batches that never hold the store for long. A part is
    /// removed only from a message that is no longer sent (not unsealed, not pending); the
    /// message's record, the SHA-256 of its envelope and of each receipt, and the time of each
    /// removal stay. A DELIVERED receipt of ours is kept at least 30 days + 5 minutes whatever
    /// the policy (§10.4), and an unconfirmed receipt until the peer confirms it. `more` says
    /// whether the batch was full: call again for the rest.
    fn purge(
        &mut self,
        policy: &RetentionPolicy,
        now: UnixMillis,
        max_rows: usize,
    ) -> Result<Purged>;

    // ----- health -----
    /// Runs the engine's integrity check and the schema version check; returns problems found.
    fn check(&mut self) -> Result<Vec<String>>;
}
