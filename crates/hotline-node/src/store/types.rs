//! The records the store takes and gives: peers, operators, messages in both directions,
//! receipts, audit events, list queries and export items.

use bytes::Bytes;
use hotline_protocol::NodeId;
use hotline_protocol::content::Precedence;
use hotline_protocol::envelope::MessageId;
use hotline_protocol::time::UnixMillis;

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
    /// The exact envelope bytes (empty if not sealed yet, or removed: see `removed`).
    pub envelope: Bytes,
    /// SHA-256 of the envelope bytes; `None` if not sealed yet. Kept when the bytes are removed.
    pub envelope_sha256: Option<[u8; 32]>,
    /// The Content plaintext (empty if removed: see `removed`).
    pub content: Bytes,
    /// Every receipt whose bytes are held for it, exact bytes, oldest first.
    pub receipts: Vec<Bytes>,
    /// What the retention policy removed from it, and when.
    pub removed: Removed,
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
    /// The exact envelope bytes (empty if removed: see `removed`).
    pub envelope: Bytes,
    /// SHA-256 of the envelope bytes, kept when they are removed.
    pub envelope_sha256: [u8; 32],
    /// Every receipt whose bytes are held for it, exact bytes, oldest first.
    pub receipts: Vec<Bytes>,
    /// What the retention policy removed from it (never the content: an export holds none).
    pub removed: Removed,
}

/// A sequence from the peer that counts as received without a stored message (SPEC.md §10.2):
/// its envelope passed §7.6 steps 1-6 and was answered REJECTED.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedSequence {
    /// The peer that sent it.
    pub peer: NodeId,
    /// The envelope's sequence number (not 0).
    pub sequence: u64,
    /// The envelope's message id.
    pub message_id: MessageId,
    /// The reject reason, as its SPEC name.
    pub reason: String,
    /// When it was recorded.
    pub stored_ms: UnixMillis,
}

/// What the retention policy removed from a stored message, and when (SPEC.md §13.4). The
/// message's record stays: id, peer, sequence, precedence, TLP, officer, times and digests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Removed {
    /// When its content and subject were removed.
    pub content_ms: Option<UnixMillis>,
    /// When its envelope bytes were removed (their SHA-256 stays).
    pub envelope_ms: Option<UnixMillis>,
    /// How many of its receipts had their bytes removed (their SHA-256 stays).
    pub receipts: u32,
    /// When the last of those receipts was removed.
    pub receipts_ms: Option<UnixMillis>,
}

impl Removed {
    /// Whether anything was removed.
    pub fn any(&self) -> bool {
        self.content_ms.is_some() || self.envelope_ms.is_some() || self.receipts > 0
    }
}

/// How long the store keeps each part of a message (`[retention]` of `hotlined.toml`,
/// SPEC.md §13.4), in milliseconds from when the part was stored; `None`: forever.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Content and subject (the plaintext).
    pub plaintext_ms: Option<u64>,
    /// Envelope bytes.
    pub envelopes_ms: Option<u64>,
    /// Receipt bytes, both directions.
    pub receipts_ms: Option<u64>,
}

impl RetentionPolicy {
    /// Whether everything is kept forever (the default): nothing to purge, ever.
    pub fn keeps_everything(&self) -> bool {
        self.plaintext_ms.is_none() && self.envelopes_ms.is_none() && self.receipts_ms.is_none()
    }
}

/// What one [`Store::purge`](super::Store::purge) removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    /// Messages whose content and subject were removed.
    pub contents: u64,
    /// Messages whose envelope bytes were removed.
    pub envelopes: u64,
    /// Receipts whose bytes were removed.
    pub receipts: u64,
    /// Bytes removed, all parts together.
    pub bytes: u64,
    /// Bytes of received messages (envelope and plaintext) removed per peer: what the per-peer
    /// quota of SPEC.md §13.3 no longer counts.
    pub received: Vec<(NodeId, u64)>,
    /// The batch was full: more is due now.
    pub more: bool,
}

impl Purged {
    /// Whether anything was removed.
    pub fn any(&self) -> bool {
        self.contents + self.envelopes + self.receipts > 0
    }
}

/// What [`Store::add_revocation`](super::Store::add_revocation) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevocationAdded {
    /// Stored now.
    Added,
    /// The same revocation was held already.
    Known,
    /// Not stored: its issuer has as many revocations held as allowed.
    Full,
}
