//! The session's public types: its settings, the streams it names, what it transmits, the
//! events it reports, and its status.

use bytes::Bytes;

use super::ItemKey;
#[cfg(doc)]
use super::Session; // for the doc links to its commands
use crate::codes::CloseCode;
use crate::envelope::Envelope;
use crate::hello::{Offer, PeerHello};
use crate::receipt;
use crate::time::UnixMillis;

/// Timing and size settings of a session. Defaults are SPEC.md's values.
#[derive(Clone, Debug)]
pub struct Config {
    /// Heartbeat interval (5 s).
    pub heartbeat_interval: u64,
    /// The link is down when nothing arrives for this long (15 s).
    pub liveness_window: u64,
    /// The peer's Hello must arrive within this (10 s).
    pub hello_timeout: u64,
    /// Retransmit an item whose answer has not arrived within this (30 s).
    pub receipt_timeout: u64,
    /// A gap is reported when it persists this long after the peer implied it (10 s).
    pub gap_grace: u64,
    /// How far beyond the highest sequence received from the peer its `last_sequence_sent` is
    /// believed (SPEC.md §10.3: 65,536). A claim beyond it is capped there for gap tracking and
    /// reported as [`Event::ImplausibleClaim`]: a faulty or hostile peer cannot make the gaps
    /// count billions of messages. A real peer stays far below it: it has at most one stream
    /// credit's worth of envelopes (a few hundred) in flight beyond what arrived.
    pub max_claim_ahead: u64,
    /// What we offer in Hello, including how many message streams we accept at once.
    pub offer: Offer,
    /// Most message streams we open at once (further capped by the peer's Hello).
    pub max_outgoing: u32,
    /// Capacity of the dedup window.
    pub dedup_capacity: usize,
    /// Message streams (envelope and receipt streams, one bucket) accepted per second from
    /// the peer, sustained (SPEC.md §13.2: 200).
    pub rate_per_s: u32,
    /// Burst allowance above the rate (SPEC.md §13.2: 1000).
    pub burst: u32,
    /// Bytes of envelope and receipt frames accepted per second from the peer, sustained
    /// (SPEC.md §13.2: 32 MiB).
    pub bytes_per_s: u64,
    /// Burst allowance in bytes (SPEC.md §13.2: 64 MiB). A driver must not set it below one
    /// largest envelope frame (1048581 bytes), or such an envelope could never pass.
    pub byte_burst: u64,
    /// Heartbeat pings accepted per second from the peer on one connection, sustained; more
    /// closes the connection with RATE_LIMITED (SPEC.md §13.2: 4). Our own pings keep to the
    /// same limit.
    pub ping_rate_per_s: u32,
    /// Burst allowance of pings above that rate (SPEC.md §13.2: 16).
    pub ping_burst: u32,
    /// Seed of the retransmission backoff's jitter (SPEC.md §9.7). Not secret; a driver passes
    /// a random one so that two nodes' retries do not fall into step.
    pub jitter_seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            heartbeat_interval: 5_000,
            liveness_window: 15_000,
            hello_timeout: 10_000,
            receipt_timeout: 30_000,
            gap_grace: 10_000,
            max_claim_ahead: 65_536,
            offer: Offer::default(),
            max_outgoing: 256,
            dedup_capacity: 65_536,
            rate_per_s: 200,
            burst: 1000,
            bytes_per_s: 32 << 20,
            byte_burst: 64 << 20,
            ping_rate_per_s: 4,
            ping_burst: 16,
            jitter_seed: 0,
        }
    }
}

/// A stream as the session names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamId {
    /// The control stream.
    Control,
    /// A message stream this side opened; the number is the session's, never reused.
    Out(u64),
    /// A message stream the peer opened; the number is the driver's, never reused within
    /// one connection.
    In(u64),
}

/// Something to put on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Transmit {
    /// Write `data` on `stream` (opening it first if it is a new `Out` stream), then finish
    /// the stream's sending side if `fin`.
    Data {
        /// Where.
        stream: StreamId,
        /// What.
        data: Bytes,
        /// Finish the sending side after it.
        fin: bool,
    },
    /// Abandon a stream in both directions with `code`.
    ResetStream {
        /// Which.
        stream: StreamId,
        /// Why.
        code: CloseCode,
    },
    /// Close the whole connection with `code`.
    Close {
        /// Why.
        code: CloseCode,
        /// For people.
        reason: String,
    },
}

/// Something the application must know or do.
#[derive(Clone, Debug)]
#[must_use]
pub enum Event {
    /// Both Hellos verified: the link is up.
    LinkUp(Box<PeerHello>),
    /// The link went down.
    LinkDown {
        /// Why.
        code: CloseCode,
        /// For people.
        reason: String,
        /// Whether the peer closed it.
        by_peer: bool,
    },
    /// A structurally valid envelope arrived: open it, check the store for replay or
    /// conflict, store it, and answer with [`Session::respond`] (or [`Session::refuse`]).
    Envelope {
        /// The stream to answer on.
        stream: StreamId,
        /// The envelope.
        envelope: Envelope,
    },
    /// A malformed envelope whose message id is known arrived: answer with a REJECTED
    /// (MALFORMED) receipt via [`Session::respond`].
    MalformedEnvelope {
        /// The stream to answer on.
        stream: StreamId,
        /// The receipt subject taken from what could be read.
        subject: receipt::Subject,
        /// What is wrong.
        detail: &'static str,
    },
    /// The answer to one of our envelopes arrived: verify it against `envelope`, store it,
    /// then call [`Session::receipt_verified`].
    Receipt {
        /// The envelope it should answer.
        envelope: Envelope,
        /// The receipt bytes.
        receipt: Bytes,
    },
    /// The peer sent an asynchronous receipt (e.g. ACKNOWLEDGED): verify, store, then
    /// [`Session::respond_stored`] or [`Session::refuse`].
    AsyncReceipt {
        /// The stream to answer on.
        stream: StreamId,
        /// The receipt bytes.
        receipt: Bytes,
    },
    /// The peer stored one of our asynchronous receipts.
    ReceiptStored {
        /// SHA-256 of the receipt.
        receipt_sha256: [u8; 32],
    },
    /// The peer announced new encryption keys in a KeyUpdate frame (SPEC.md §4.3.5). They
    /// replace those of its Hello: seal to the newest valid one from now on.
    PeerKeys(Vec<crate::identity::EncryptionKey>),
    /// The peer sent revocations of its officers' keys (SPEC.md §4.6.2), each checked and
    /// issued by the peer. Store them (duplicates are harmless) and refuse envelopes signed
    /// by a revoked key after its cutoff (§7.6).
    PeerRevocations(Vec<crate::revocation::Revocation>),
    /// The peer sent its current bundle (SPEC.md §4.4.4), verified and of its identity. If it
    /// is newer than the one held, hold it durably (its TLS key is accepted from then on, next
    /// to the previous one until a connection shows the new key), then answer with
    /// [`Session::bundle_accepted`]; answer the same for the bundle held already.
    PeerBundle(Box<crate::bundle::PeerBundle>),
    /// The peer holds our bundle of this SHA-256 durably (SPEC.md §4.4.4).
    BundleAccepted([u8; 32]),
    /// A round-trip time measurement, in milliseconds.
    Rtt(u64),
    /// Sequences the peer says it sent have not arrived within the grace period.
    GapDetected {
        /// Missing sequences, as inclusive ranges (at most 16 listed).
        missing: Vec<(u64, u64)>,
    },
    /// Every gap reported before has been filled.
    GapClosed,
    /// The peer's Heartbeat claims to have sent sequences more than
    /// [`Config::max_claim_ahead`] beyond the highest that arrived (SPEC.md §10.3): gaps are
    /// tracked only up to `capped`. Reported when the peer's claims first go beyond the bound,
    /// not for each Heartbeat that repeats or raises the claim; again only after they fell
    /// back within it. The peer is faulty, or this node's record of what arrived was restored
    /// from an older copy.
    ImplausibleClaim {
        /// The peer's `last_sequence_sent`.
        claimed: u64,
        /// The bound it was capped at: the highest sequence received plus
        /// [`Config::max_claim_ahead`].
        capped: u64,
    },
    /// The peer broke a rule on one stream; the stream was reset with `code`.
    StreamError {
        /// Which.
        stream: StreamId,
        /// The code sent.
        code: CloseCode,
        /// What happened.
        detail: String,
    },
    /// An item will be sent again (its answer was late, or the attempt failed).
    Retransmit {
        /// Which.
        key: ItemKey,
    },
}

/// The link's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// No connection.
    Down,
    /// Connected, waiting for the peer's Hello.
    Handshaking,
    /// Both Hellos verified.
    Up,
    /// Closing; waiting for the driver to report the disconnect.
    Closing,
}

/// What [`Session::withdraw_envelope`](super::Session::withdraw_envelope) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Withdrawal {
    /// The envelope was queued and never written to a stream: it is forgotten.
    Withdrawn,
    /// The envelope was written to a stream at least once: it may have reached the peer, so
    /// it is kept and will be retransmitted as usual.
    MayHaveLeft,
    /// The session holds no envelope with that id.
    NotHeld,
}

/// A snapshot for status displays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// State.
    pub state: LinkState,
    /// Since when (Unix ms, by the wall clock the driver gave), as far as the session knows.
    pub since: UnixMillis,
    /// Last RTT measured.
    pub rtt: Option<u64>,
    /// When anything was last received (Unix ms, by the wall clock the driver gave).
    pub last_received: Option<UnixMillis>,
    /// Items pending (queued, delayed, in flight).
    pub pending: usize,
    /// Items in flight.
    pub in_flight: usize,
    /// Highest n with all of 1..=n received from the peer.
    pub received_through: u64,
    /// Highest sequence the peer claims to have sent.
    pub peer_last_sent: u64,
    /// The peer's `received_through` from its last Heartbeat (SPEC.md §10.2): every sequence
    /// 1..=n from us counts as received there; 0 before any Heartbeat. A value above what we
    /// have sent shows that our storage forgot sequences it assigned (a restore, §10.1).
    pub peer_received_through: u64,
    /// The peer's clock minus this node's, in ms (SPEC.md §11.2): from the peer's Hello and
    /// Heartbeat `time_ms`, adjusted by half the round-trip time; `None` until measured.
    pub clock_skew_ms: Option<i64>,
    /// Highest sequence we have sent.
    pub last_sent: u64,
    /// Reported gaps.
    pub gaps: Vec<(u64, u64)>,
    /// The peer's `last_sequence_sent` while it is beyond the bound and capped for gap
    /// tracking ([`Event::ImplausibleClaim`]); `None` when its claims are believed.
    pub claim_capped: Option<u64>,
    /// The negotiated version, once up.
    pub version: Option<u32>,
}
