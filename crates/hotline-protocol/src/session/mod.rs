//! The per-link state machine (SPEC.md §6, §9–§11).
//!
//! A [`Session`] lives as long as the link to one peer, across connections. It frames and
//! parses, runs the Hello exchange, heartbeats and liveness, tracks sequences and gaps, keeps
//! the outgoing items with their retransmit deadlines, and answers replays from its dedup
//! window. It does **no per-message cryptography**: envelopes and receipts that arrive are
//! handed to the application as events, and the application answers with signed receipts.
//! That lets a node verify, decrypt and sign on worker threads, off the reactor.
//!
//! The four kinds of methods (as in quinn-proto):
//! - getters: [`Session::is_up`], [`Session::rtt`], [`Session::status`], …
//! - inputs: [`Session::handle_connected`], [`Session::handle_data`],
//!   [`Session::handle_stream_reset`], [`Session::handle_timeout`], [`Session::handle_disconnected`];
//! - commands: [`Session::send_envelope`], [`Session::send_receipt`], [`Session::respond`],
//!   [`Session::respond_stored`], [`Session::refuse`], [`Session::receipt_verified`],
//!   [`Session::close`];
//! - outputs, polled in this order after every input or command: [`Session::poll_transmit`],
//!   [`Session::poll_timeout`], [`Session::poll_event`].
//!
//! Time comes in two kinds. Every `now` is a [`Monotonic`] reading: all timers run on it, so a
//! wall clock that steps neither stalls nor fires them. The wall clock is given with
//! [`Session::set_wall_clock`] and used only for what goes on the wire or to people: the
//! `time_ms` of Hello and Heartbeat, and the times in [`Status`].
//!
//! The code is split by job: `types` holds the public types (settings, transmits, events,
//! status); `link` the link's life (connecting, the control stream, heartbeats, liveness, gaps
//! and timers); `streams` the message streams the peer opens and the answers to ours;
//! `commands` the application's commands and the sending of queued items.

mod bundles;
mod commands;
mod dedup;
mod keys;
mod link;
mod outgoing;
mod pending;
pub mod ranges;
mod rate;
mod revocations;
mod streams;
mod timers;
mod types;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

pub use bundles::{verify_bundle_accepted, verify_bundle_update};
pub use dedup::{DedupWindow, Seen};
pub use keys::{MAX_ANNOUNCED_KEYS, key_update_payload, verify_key_update};
pub use outgoing::{Item, ItemKey};
pub use pending::{HelloProgress, PendingHello};
pub use rate::RateLimit;
pub use revocations::MAX_REVOCATIONS;
pub use timers::Monotonic;
pub use types::{Config, Event, LinkState, Status, StreamId, Transmit, Withdrawal};

use crate::envelope::Envelope;
use crate::frame::{Decoder, Frame, StreamKind};
use crate::hello::{PeerHello, Side};
use crate::identity::{EncryptionKey, IdentityKey, NodeId};
use crate::time::UnixMillis;
use outgoing::Outgoing;
use ranges::RangeSet;
use streams::Incoming;
use timers::TimerTable;

/// The link state machine. See the module documentation.
pub struct Session {
    config: Config,
    identity: Arc<IdentityKey>,
    our_keys: Vec<EncryptionKey>,
    /// The keys the peer was told on the current connection (in our Hello, then KeyUpdates).
    told_keys: Vec<EncryptionKey>,
    peer: NodeId,
    state: LinkState,
    /// When the state last changed: on the monotonic clock, and by the wall clock for status.
    since: Monotonic,
    since_wall: UnixMillis,
    /// A reading of the wall clock and of the monotonic clock at the same moment.
    wall_clock: (Monotonic, UnixMillis),
    side: Side,
    exporter: [u8; crate::EXPORTER_LEN],
    peer_hello: Option<Box<PeerHello>>,
    control: Decoder,
    held: Vec<(StreamId, Frame)>,
    incoming: HashMap<StreamId, Incoming>,
    /// Peer-opened streams already answered or refused: later bytes on them are ignored
    /// (SPEC.md §5.2). Bounded: the oldest ids are forgotten first.
    finished_in: std::collections::BTreeSet<u64>,
    outgoing: Outgoing,
    next_out: u64,
    max_outgoing: usize,
    dedup: DedupWindow,
    limiter: RateLimit,
    /// Bytes of envelope and receipt frames from the peer (SPEC.md §13.2).
    byte_limiter: RateLimit,
    /// The peer's Heartbeat pings on this connection (SPEC.md §13.2).
    ping_limiter: RateLimit,
    /// Our own pings: probes on top of the heartbeat interval stay within the same limit.
    ping_budget: RateLimit,
    /// The peer's KeyUpdate frames (SPEC.md §13.2).
    key_update_limiter: RateLimit,
    /// Our revocations, and which the peer was told on this connection (SPEC.md §4.6.2).
    our_revocations: revocations::OurRevocations,
    /// The peer's Revocations frames (SPEC.md §13.2).
    revocation_limiter: RateLimit,
    /// Our bundle, and whether the peer was sent it on this connection (SPEC.md §4.4.4).
    our_bundle: bundles::OurBundle,
    /// The peer's BundleUpdate and BundleAccepted frames (SPEC.md §13.2).
    bundle_limiter: RateLimit,
    /// Pings read from the peer and not yet answered, the latest `ECHOES_PER_READ`
    /// of one read of the control stream (SPEC.md §11.1).
    echo_due: VecDeque<u64>,
    received: RangeSet,
    last_sent: u64,
    peer_claims: VecDeque<(Monotonic, u64)>,
    peer_settled: u64,
    /// `received_through` of the peer's last Heartbeat.
    peer_received_through: u64,
    /// The peer's clock minus ours (ms), from its last Hello or Heartbeat `time_ms`, adjusted
    /// by half the round-trip time (SPEC.md §11.2); `None` until measured.
    clock_skew: Option<i64>,
    gaps: Vec<(u64, u64)>,
    pings: BTreeMap<u64, Monotonic>,
    next_ping: u64,
    rtt: Option<u64>,
    last_rx: Option<UnixMillis>,
    timers: TimerTable,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl core::fmt::Debug for Session {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Session")
            .field("peer", &self.peer)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session for the link from `identity` to `peer`. `our_keys` are our current
    /// encryption key certificates, announced in Hello.
    pub fn new(
        config: Config,
        identity: Arc<IdentityKey>,
        our_keys: Vec<EncryptionKey>,
        peer: NodeId,
    ) -> Self {
        let dedup = DedupWindow::new(config.dedup_capacity);
        let start = Monotonic::default();
        let limiter = RateLimit::new(config.rate_per_s, config.burst, start);
        let byte_limiter = RateLimit::bytes(config.bytes_per_s, config.byte_burst, start);
        let ping_limiter = RateLimit::new(config.ping_rate_per_s, config.ping_burst, start);
        let ping_budget = RateLimit::new(config.ping_rate_per_s, config.ping_burst, start);
        let outgoing = Outgoing::with_jitter_seed(config.jitter_seed);
        Session {
            config,
            identity,
            told_keys: our_keys.clone(),
            our_keys,
            peer,
            state: LinkState::Down,
            since: start,
            since_wall: 0,
            wall_clock: (start, 0),
            side: Side::Client,
            exporter: [0; crate::EXPORTER_LEN],
            peer_hello: None,
            control: Decoder::new(StreamKind::Control),
            held: Vec::new(),
            incoming: HashMap::new(),
            finished_in: std::collections::BTreeSet::new(),
            outgoing,
            next_out: 0,
            max_outgoing: 0,
            dedup,
            limiter,
            byte_limiter,
            ping_limiter,
            ping_budget,
            key_update_limiter: RateLimit::per_period(
                keys::KEY_UPDATE_REFILL_S,
                keys::KEY_UPDATE_BURST,
                start,
            ),
            our_revocations: Default::default(),
            revocation_limiter: RateLimit::per_period(
                revocations::REVOCATION_REFILL_S,
                revocations::REVOCATION_BURST,
                start,
            ),
            our_bundle: Default::default(),
            bundle_limiter: RateLimit::per_period(
                bundles::BUNDLE_REFILL_S,
                bundles::BUNDLE_BURST,
                start,
            ),
            echo_due: VecDeque::new(),
            received: RangeSet::default(),
            last_sent: 0,
            peer_claims: VecDeque::new(),
            peer_settled: 0,
            peer_received_through: 0,
            clock_skew: None,
            gaps: Vec::new(),
            pings: BTreeMap::new(),
            next_ping: 1,
            rtt: None,
            last_rx: None,
            timers: TimerTable::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    // ----- getters -------------------------------------------------------------------

    /// The peer's identity.
    pub fn peer(&self) -> NodeId {
        self.peer
    }
    /// Whether the link is up.
    pub fn is_up(&self) -> bool {
        self.state == LinkState::Up
    }
    /// The link state.
    pub fn state(&self) -> LinkState {
        self.state
    }
    /// When the link state last changed, on the monotonic clock.
    pub fn state_since(&self) -> Monotonic {
        self.since
    }
    /// The last RTT measured, in ms.
    pub fn rtt(&self) -> Option<u64> {
        self.rtt
    }
    /// The peer's verified Hello on the current connection.
    pub fn peer_hello(&self) -> Option<&PeerHello> {
        self.peer_hello.as_deref()
    }
    /// How many items are pending.
    pub fn pending(&self) -> usize {
        self.outgoing.len()
    }
    /// Every envelope still waiting for a receipt, in no particular order (for overdue checks).
    pub fn pending_envelopes(&self) -> impl Iterator<Item = &Envelope> {
        self.outgoing.envelopes()
    }

    /// A status snapshot.
    pub fn status(&self) -> Status {
        Status {
            state: self.state,
            since: self.since_wall,
            rtt: self.rtt,
            last_received: self.last_rx,
            pending: self.outgoing.len(),
            in_flight: self.outgoing.in_flight(),
            received_through: self.received.contiguous_from_one(),
            peer_last_sent: self
                .peer_claims
                .iter()
                .map(|c| c.1)
                .max()
                .unwrap_or(0)
                .max(self.peer_settled),
            peer_received_through: self.peer_received_through,
            clock_skew_ms: self.clock_skew,
            last_sent: self.last_sent,
            gaps: self.gaps.clone(),
            claim_capped: self.capped_claim(),
            version: self.peer_hello.as_ref().map(|h| h.version),
        }
    }

    // ----- outputs -------------------------------------------------------------------

    /// The next thing to put on the wire.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// When [`Session::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Monotonic> {
        self.timers.next()
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ----- the wall clock ------------------------------------------------------------

    /// Tells the session the wall clock (Unix ms) at the monotonic instant `now`. Call it
    /// before inputs, as often as convenient: between calls the session advances the last
    /// reading by the monotonic clock. The wall clock only dates what the session sends
    /// (Hello and Heartbeat `time_ms`) and its status; no timer reads it.
    pub fn set_wall_clock(&mut self, now: Monotonic, wall: UnixMillis) {
        self.wall_clock = (now, wall);
    }

    /// The wall clock at `now`, from the last reading.
    pub(super) fn wall(&self, now: Monotonic) -> UnixMillis {
        let (at, wall) = self.wall_clock;
        if now >= at {
            wall.saturating_add(now.since(at))
        } else {
            wall.saturating_sub(at.since(now))
        }
    }

    /// Records a change of the link state at `now`.
    pub(super) fn set_state(&mut self, state: LinkState, now: Monotonic) {
        self.state = state;
        self.since = now;
        self.since_wall = self.wall(now);
    }
}
