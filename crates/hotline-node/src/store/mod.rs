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

use bytes::Bytes;
use hotline_protocol::NodeId;
use hotline_protocol::content::Precedence;
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

/// A pinned peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRecord {
    /// Local alias, unique (e.g. "cert-b").
    pub alias: String,
    /// The peer's identity key, unique.
    pub identity: NodeId,
    /// Where to dial it: HOST:PORT.
    pub address: String,
    /// The exact peer bundle bytes (not armored) as verified at `peer add`.
    pub bundle: Bytes,
    /// When it was added.
    pub added_ms: UnixMillis,
    /// How its TLS certificate is authenticated.
    pub trust: TrustMode,
}

/// A peer bundle as it was installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalledBundle {
    /// The node it is the bundle of.
    pub identity: NodeId,
    /// The exact bundle bytes.
    pub bundle: Bytes,
    /// When it was installed.
    pub installed_ms: UnixMillis,
}

/// How a peer's TLS certificate is authenticated (SPEC.md §3.6). Either way the certificate's
/// key must be the one the peer's bundle pins: that is how a connection is mapped to a peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum TrustMode {
    /// Pinned mode (§3.6.1): the bundle's SPKI pin alone; no chain, no name check.
    #[default]
    Pinned,
    /// Private CA mode (§3.6.2): the certificate must also chain to the CA configured in
    /// `[ca]` of `hotlined.toml`, pass its CRL and, as a server, name the dialed address.
    Ca,
}

impl TrustMode {
    /// The stored and command-line name: `pinned` or `ca`.
    pub fn as_str(self) -> &'static str {
        match self {
            TrustMode::Pinned => "pinned",
            TrustMode::Ca => "ca",
        }
    }
}

impl std::str::FromStr for TrustMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "pinned" => Ok(TrustMode::Pinned),
            "ca" => Ok(TrustMode::Ca),
            other => Err(format!("trust {other:?} is neither \"pinned\" nor \"ca\"")),
        }
    }
}

/// An operator credential the node issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorRecord {
    /// The operator's name, unique.
    pub name: String,
    /// `officer` or `viewer`.
    pub role: String,
    /// The operator's Ed25519 key (signs messages and acknowledgements).
    pub officer_key: [u8; 32],
    /// SHA-256 of the operator's TLS SubjectPublicKeyInfo (the operator API pin).
    pub tls_spki_sha256: [u8; 32],
    /// The encoded `OfficerCredential` the node signed.
    pub credential: Bytes,
    /// When it was issued.
    pub added_ms: UnixMillis,
    /// When it was revoked, if it was.
    pub revoked_ms: Option<UnixMillis>,
}

/// What [`Store::pending_summary`] counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingSummary {
    /// Messages without a final receipt.
    pub count: u64,
    /// `created_ms` of the oldest of them; 0 if none.
    pub oldest_ms: UnixMillis,
    /// Those past their precedence's delivery deadline.
    pub overdue: u64,
    /// Those accepted but not sealed (no valid key of the peer, or the officer's credential
    /// expired): never sent until that is resolved.
    pub unsealed: u64,
}

/// A new outgoing message, before it is sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission {
    /// Random message id, unique.
    pub message_id: MessageId,
    /// Recipient peer.
    pub peer: NodeId,
    /// Precedence.
    pub precedence: Precedence,
    /// TLP label as its lower-case name (`clear`, `green`, `amber`, `amber+strict`, `red`).
    pub tlp: String,
    /// Creation time (becomes the envelope's `created_ms`).
    pub created_ms: UnixMillis,
    /// The canonical, officer-signed `Content` plaintext.
    pub content: Bytes,
    /// Subject, for listings.
    pub subject: String,
    /// The officer's name, for listings and audit.
    pub officer: String,
}

/// What [`Store::submit`] did with one submission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// Stored as a new message with this sequence number.
    Stored(u64),
    /// The same message (same id, peer, precedence, TLP and content bytes) was submitted
    /// before, with this sequence: nothing was written; the first answer stands.
    Repeated(u64),
    /// The id is already used by another message of this node, sent or received (one id
    /// space per node): nothing was written.
    IdInUse,
}

impl SubmitOutcome {
    /// The sequence of a message stored now or before; `None` if the id is in use.
    pub fn sequence(self) -> Option<u64> {
        match self {
            SubmitOutcome::Stored(n) | SubmitOutcome::Repeated(n) => Some(n),
            SubmitOutcome::IdInUse => None,
        }
    }
}

/// What [`Store::store_own_receipt`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnReceiptOutcome {
    /// Stored (or the same bytes were stored before).
    Stored,
    /// The message already has an ACKNOWLEDGED receipt (at most one per message): these are
    /// its bytes; nothing was written.
    AlreadyAcknowledged(Bytes),
}

/// A submission as stored, with the sequence the store assigned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSubmission {
    /// The submission.
    pub submission: Submission,
    /// The per-peer sequence number assigned at submit time (1, 2, 3, … per peer, no holes).
    pub sequence: u64,
}

/// What the sender knows about one of its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutState {
    /// Stored, not yet sealed (after a crash between submit and seal).
    Unsealed,
    /// Sealed, waiting for a receipt.
    Pending,
    /// A valid DELIVERED receipt is stored.
    Delivered,
    /// A valid ACKNOWLEDGED receipt is stored.
    Acknowledged,
    /// A valid REJECTED receipt is stored.
    Rejected,
    /// Withdrawn by an officer before it was ever sent.
    Cancelled,
}

impl OutState {
    /// Its name in listings (SPEC.md §15.5.2): an unsealed message is `pending` too.
    pub fn name(self) -> &'static str {
        match self {
            OutState::Unsealed | OutState::Pending => "pending",
            OutState::Delivered => "delivered",
            OutState::Acknowledged => "acknowledged",
            OutState::Rejected => "rejected",
            OutState::Cancelled => "cancelled",
        }
    }
}

/// What [`Store::cancel`] found, or did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The message is cancelled: it will never be sent.
    Cancelled {
        /// Its recipient.
        peer: NodeId,
        /// Its sequence number, which the peer will never see (a gap, SPEC.md §10.3).
        sequence: u64,
        /// The officer who cancelled it.
        by: String,
        /// When.
        at_ms: UnixMillis,
    },
    /// It can be cancelled (a check without `commit`).
    Cancellable {
        /// Its recipient.
        peer: NodeId,
        /// Its sequence number.
        sequence: u64,
    },
    /// No message of this node has that id.
    NotFound,
    /// The id is a message this node received: only sent messages can be cancelled.
    Received,
    /// The message has a receipt from the peer already (its state).
    Final(OutState),
    /// Stored by an earlier run of `hotlined`, which may have sent it before it stopped.
    EarlierRun,
}

/// A receipt to store (either direction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiptRecord {
    /// The message it is about.
    pub message_id: MessageId,
    /// The peer on the other side.
    pub peer: NodeId,
    /// `DELIVERED`, `ACKNOWLEDGED` or `REJECTED`.
    pub kind: String,
    /// The exact receipt bytes.
    pub bytes: Bytes,
    /// SHA-256 of `bytes`.
    pub sha256: [u8; 32],
    /// When it was stored.
    pub stored_ms: UnixMillis,
}

/// What [`Store::record_receipts`] did with one receipt from the peer (SPEC.md §8.5, §8.6).
///
/// A message holds at most one receipt of each kind from the peer, so a peer cannot grow the
/// evidence of one message without bound; whatever the outcome, the receipt was answered for
/// (the caller completes the envelope, or answers ReceiptStored).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiptOutcome {
    /// Stored, the first receipt of its kind for the message; the message's state after it.
    Stored(OutState),
    /// Stored as evidence, the first of its kind, but it contradicts what the first final
    /// receipt decided: a REJECTED after a DELIVERED or ACKNOWLEDGED one, or one of those
    /// after a REJECTED. The decided state stands; this is it. Operators must be alerted.
    Contradictory(OutState),
    /// These exact bytes are stored already: nothing was written.
    Repeated,
    /// Another receipt of this kind is held for the message already: not stored.
    Discarded,
    /// No message this node sent to that peer has this id: not stored.
    Unknown,
}

/// An envelope that arrived, verified and decrypted, with the receipt prepared for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// Message id.
    pub message_id: MessageId,
    /// The sending peer.
    pub peer: NodeId,
    /// Its sequence.
    pub sequence: u64,
    /// Precedence.
    pub precedence: Precedence,
    /// TLP label, lower-case name.
    pub tlp: String,
    /// The envelope's created_ms.
    pub created_ms: UnixMillis,
    /// When it arrived.
    pub received_ms: UnixMillis,
    /// The exact envelope bytes.
    pub envelope: Bytes,
    /// SHA-256 of `envelope`.
    pub envelope_sha256: [u8; 32],
    /// The decrypted, verified Content plaintext.
    pub content: Bytes,
    /// Subject, for listings.
    pub subject: String,
    /// The sending officer's name.
    pub officer: String,
    /// The DELIVERED receipt made for it (stored with it, sent only after commit).
    pub receipt: ReceiptRecord,
}

/// What [`Store::accept`] did with one arrival.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AcceptOutcome {
    /// New: envelope and receipt stored; send the prepared receipt.
    Inserted {
        /// Another message from the same peer already held with the same sequence number
        /// (the earliest such): the peer reused a sequence (SPEC.md §10.1), for example after
        /// restoring a backup. The arrival is stored all the same (a sequence never causes a
        /// rejection) and a `sequence_reused` audit row naming both ids is written in the same
        /// transaction; operators must be alerted.
        sequence_reused_by: Option<MessageId>,
    },
    /// The same message id with the same envelope bytes was stored before: send this
    /// original receipt again (and nothing was written).
    Duplicate {
        /// The receipt stored with the first copy.
        receipt: Bytes,
    },
    /// The same message id with different envelope bytes was stored before: nothing was
    /// written; answer REJECTED (CONFLICT).
    Conflict,
}

/// What told a node that its database was restored from an older copy
/// ([`Store::raise_sequence_floor`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloorSource {
    /// The high-water mark kept outside the database ([`high_water`]), read at start-up.
    HighWaterMark,
    /// The peer's `received_through` in a Heartbeat (SPEC.md §10.2).
    PeerReceivedThrough,
}

impl FloorSource {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            FloorSource::HighWaterMark => "high_water_mark",
            FloorSource::PeerReceivedThrough => "peer_received_through",
        }
    }
}

/// An audit-trail entry: every event worth proving later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEvent {
    /// When.
    pub time_ms: UnixMillis,
    /// What, a short stable word: `submitted`, `sent`, `delivered`, `acknowledged`, `rejected`,
    /// `received`, `duplicate`, `conflict`, `link_up`, `link_down`, `gap`, `peer_added`, …
    pub kind: String,
    /// Which peer, if any.
    pub peer: Option<NodeId>,
    /// Which message, if any.
    pub message_id: Option<MessageId>,
    /// Free text for people.
    pub detail: String,
}

/// An inbox row for listings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboxRow {
    /// Message id.
    pub message_id: MessageId,
    /// From.
    pub peer: NodeId,
    /// Sequence.
    pub sequence: u64,
    /// Precedence.
    pub precedence: Precedence,
    /// TLP, lower-case name.
    pub tlp: String,
    /// created_ms.
    pub created_ms: UnixMillis,
    /// received_ms.
    pub received_ms: UnixMillis,
    /// Subject.
    pub subject: String,
    /// Sending officer.
    pub officer: String,
    /// Whether an ACKNOWLEDGED receipt was made for it.
    pub acknowledged: bool,
}

/// A message in either direction, for operator listings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageRow {
    /// Message id.
    pub message_id: MessageId,
    /// The other node.
    pub peer: NodeId,
    /// Whether this node received it.
    pub incoming: bool,
    /// Its sequence number.
    pub sequence: u64,
    /// Precedence.
    pub precedence: Precedence,
    /// TLP, lower-case name.
    pub tlp: String,
    /// created_ms.
    pub created_ms: UnixMillis,
    /// received_ms (0 for sent messages).
    pub received_ms: UnixMillis,
    /// Subject.
    pub subject: String,
    /// Sending officer.
    pub officer: String,
    /// Sent: unsealed | pending | delivered | acknowledged | rejected;
    /// received: received | acknowledged.
    pub state: String,
}

/// One message with everything stored about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// The listing fields.
    pub row: MessageRow,
    /// The exact envelope bytes (empty if not sealed yet).
    pub envelope: Bytes,
    /// The Content plaintext.
    pub content: Bytes,
    /// Every receipt held for it, exact bytes, oldest first.
    pub receipts: Vec<Bytes>,
}

/// Where a page of a listing or an export ends: the `created_ms`, direction and id of its last
/// message. The next page starts after it, in the listing's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The message's `created_ms`.
    pub created_ms: UnixMillis,
    /// Whether this node received it.
    pub incoming: bool,
    /// Its id.
    pub message_id: MessageId,
}

/// Which messages [`Store::messages`] lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Received (true) or sent (false).
    pub incoming: bool,
    /// Only this peer's; all if `None`.
    pub peer: Option<NodeId>,
    /// Received only: only those without an ACKNOWLEDGED receipt of ours.
    pub unacknowledged_only: bool,
    /// Only messages older than this one (newest-first order); from the newest if `None`.
    pub before: Option<Position>,
    /// At most this many.
    pub limit: usize,
}

/// An item of an evidence export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportItem {
    /// Where it is in the export's order (its cursor).
    pub position: Position,
    /// The other node.
    pub peer: NodeId,
    /// Whether this node received it.
    pub incoming: bool,
    /// The exact envelope bytes.
    pub envelope: Bytes,
    /// Every receipt held for it, exact bytes, oldest first.
    pub receipts: Vec<Bytes>,
}

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
    /// The sealed envelope bytes of one of our messages, if it exists and is sealed.
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

    // ----- health -----
    /// Runs the engine's integrity check and the schema version check; returns problems found.
    fn check(&mut self) -> Result<Vec<String>>;
}
