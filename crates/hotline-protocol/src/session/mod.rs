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

mod dedup;
mod outgoing;
pub mod ranges;
mod rate;
mod timers;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;

pub use dedup::{DedupWindow, Seen};
pub use outgoing::{Item, ItemKey};
pub use rate::RateLimit;

use crate::canonical;
use crate::codes::{CloseCode, RejectReason};
use crate::envelope::{Envelope, MessageId, ParseError};
use crate::frame::{self, Decoder, Frame, FrameType, StreamKind};
use crate::hello::{self, Offer, PeerHello, Side};
use crate::identity::{EncryptionKey, IdentityKey, NodeId};
use crate::receipt::{self, Receipt, ReceiptKind};
use crate::time::UnixMillis;
use crate::wire;
use outgoing::{Outgoing, State};
use ranges::RangeSet;
use timers::{Timer, TimerTable};

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
    /// What we offer in Hello, including how many message streams we accept at once.
    pub offer: Offer,
    /// Most message streams we open at once (further capped by the peer's Hello).
    pub max_outgoing: u32,
    /// Capacity of the dedup window.
    pub dedup_capacity: usize,
    /// Envelope streams accepted per second from the peer, sustained (SPEC.md §13.2: 200).
    pub rate_per_s: u32,
    /// Burst allowance above the rate (SPEC.md §13.2: 1000).
    pub burst: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            heartbeat_interval: 5_000,
            liveness_window: 15_000,
            hello_timeout: 10_000,
            receipt_timeout: 30_000,
            gap_grace: 10_000,
            offer: Offer::default(),
            max_outgoing: 256,
            dedup_capacity: 65_536,
            rate_per_s: 200,
            burst: 1000,
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
    /// A round-trip time measurement, in milliseconds.
    Rtt(u64),
    /// Sequences the peer says it sent have not arrived within the grace period.
    GapDetected {
        /// Missing sequences, as inclusive ranges (at most 16 listed).
        missing: Vec<(u64, u64)>,
    },
    /// Every gap reported before has been filled.
    GapClosed,
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

/// A snapshot for status displays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// State.
    pub state: LinkState,
    /// Since when (Unix ms), as far as the session knows.
    pub since: UnixMillis,
    /// Last RTT measured.
    pub rtt: Option<u64>,
    /// When anything was last received.
    pub last_received: Option<UnixMillis>,
    /// Items pending (queued, delayed, in flight).
    pub pending: usize,
    /// Items in flight.
    pub in_flight: usize,
    /// Highest n with all of 1..=n received from the peer.
    pub received_through: u64,
    /// Highest sequence the peer claims to have sent.
    pub peer_last_sent: u64,
    /// Highest sequence we have sent.
    pub last_sent: u64,
    /// Reported gaps.
    pub gaps: Vec<(u64, u64)>,
    /// The negotiated version, once up.
    pub version: Option<u32>,
}

#[derive(Debug)]
enum Incoming {
    /// Reading the first frame.
    Reading(Decoder),
    /// An envelope or receipt was handed to the application; waiting for its answer.
    Awaiting { envelope: Option<(MessageId, u64)> },
}

/// How many answered or refused peer streams are remembered.
const MAX_FINISHED_IN: usize = 4096;
/// Most frames held while waiting for the peer's Hello.
const MAX_HELD: usize = 1024;
/// Most gap ranges reported in one event.
const MAX_GAP_RANGES: usize = 16;

/// The link state machine. See the module documentation.
pub struct Session {
    config: Config,
    identity: Arc<IdentityKey>,
    our_keys: Vec<EncryptionKey>,
    peer: NodeId,
    state: LinkState,
    since: UnixMillis,
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
    received: RangeSet,
    last_sent: u64,
    peer_claims: VecDeque<(UnixMillis, u64)>,
    peer_settled: u64,
    gaps: Vec<(u64, u64)>,
    pings: BTreeMap<u64, UnixMillis>,
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
        let limiter = RateLimit::new(config.rate_per_s, config.burst, 0);
        Session {
            config,
            identity,
            our_keys,
            peer,
            state: LinkState::Down,
            since: 0,
            side: Side::Client,
            exporter: [0; crate::EXPORTER_LEN],
            peer_hello: None,
            control: Decoder::new(StreamKind::Control),
            held: Vec::new(),
            incoming: HashMap::new(),
            finished_in: std::collections::BTreeSet::new(),
            outgoing: Outgoing::default(),
            next_out: 0,
            max_outgoing: 0,
            dedup,
            limiter,
            received: RangeSet::default(),
            last_sent: 0,
            peer_claims: VecDeque::new(),
            peer_settled: 0,
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
            since: self.since,
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
            last_sent: self.last_sent,
            gaps: self.gaps.clone(),
            version: self.peer_hello.as_ref().map(|h| h.version),
        }
    }

    // ----- inputs --------------------------------------------------------------------

    /// Restores what the node's store remembers across a restart: the sequences received from
    /// the peer (inclusive ranges) and the highest sequence we have assigned. Call before the
    /// first connection; without it a restarted node would report every old sequence as a gap.
    pub fn restore(&mut self, received: &[(u64, u64)], last_sent: u64) {
        for &(a, b) in received {
            self.received.insert_range(a, b);
        }
        self.last_sent = self.last_sent.max(last_sent);
    }

    /// A connection to the peer completed its TLS handshake. `side` is our end;
    /// `exporter` is the connection's exporter value (SPEC.md §6.1). Sends our Hello.
    pub fn handle_connected(
        &mut self,
        now: UnixMillis,
        side: Side,
        exporter: [u8; crate::EXPORTER_LEN],
    ) {
        if matches!(self.state, LinkState::Up | LinkState::Handshaking) {
            self.events.push_back(Event::LinkDown {
                code: CloseCode::NoError,
                reason: "replaced by a new connection".into(),
                by_peer: false,
            });
        }
        self.reset_connection();
        self.state = LinkState::Handshaking;
        self.since = now;
        self.side = side;
        self.exporter = exporter;
        self.last_rx = Some(now);
        let hello = hello::create(
            &self.identity,
            side,
            &exporter,
            &self.config.offer,
            &self.our_keys,
            now,
        );
        self.transmits.push_back(Transmit::Data {
            stream: StreamId::Control,
            data: frame::encode(FrameType::Hello, &hello),
            fin: false,
        });
        self.timers
            .set(Timer::Hello, now.saturating_add(self.config.hello_timeout));
    }

    /// The connection is gone (closed by either side, or lost). In-flight items will be
    /// sent again on the next connection.
    pub fn handle_disconnected(&mut self, now: UnixMillis) {
        if matches!(self.state, LinkState::Up | LinkState::Handshaking) {
            self.events.push_back(Event::LinkDown {
                code: CloseCode::NoError,
                reason: "connection lost".into(),
                by_peer: false,
            });
        }
        self.reset_connection();
        self.state = LinkState::Down;
        self.since = now;
    }

    /// Bytes arrived on `stream`; `fin` if the peer finished its sending side.
    pub fn handle_data(&mut self, now: UnixMillis, stream: StreamId, data: &[u8], fin: bool) {
        if matches!(self.state, LinkState::Down | LinkState::Closing) {
            return;
        }
        self.last_rx = Some(now);
        if self.state == LinkState::Up {
            self.timers.set(
                Timer::Liveness,
                now.saturating_add(self.config.liveness_window),
            );
        }
        match stream {
            StreamId::Control => self.control_data(now, data, fin),
            StreamId::Out(n) => self.out_data(now, n, data, fin),
            StreamId::In(_) => self.in_data(now, stream, data, fin),
        }
    }

    /// The peer reset or stopped `stream` with `code` (or the driver failed to use it).
    pub fn handle_stream_reset(&mut self, now: UnixMillis, stream: StreamId, code: u64) {
        match stream {
            StreamId::Control => self.fail(CloseCode::ProtocolViolation, "control stream reset"),
            StreamId::In(_) => {
                self.incoming.remove(&stream);
            }
            StreamId::Out(n) => {
                if let Some((key, _, _)) = self.outgoing.on_stream(n) {
                    // RATE_LIMITED or TOO_MANY_STREAMS: back off; anything else too.
                    let _ = code;
                    self.outgoing.retry(key, now, false);
                    self.events.push_back(Event::Retransmit { key });
                    self.arm_retransmit();
                    self.pump(now);
                }
            }
        }
    }

    /// Time has reached `now`: run the due timers.
    pub fn handle_timeout(&mut self, now: UnixMillis) {
        for t in self.timers.expire(now) {
            match t {
                Timer::Hello => {
                    if self.state == LinkState::Handshaking {
                        self.fail(CloseCode::HelloTimeout, "no Hello from the peer in time");
                    }
                }
                Timer::Heartbeat => {
                    if self.state == LinkState::Up {
                        self.send_heartbeat(now);
                        self.timers.set(
                            Timer::Heartbeat,
                            now.saturating_add(self.config.heartbeat_interval),
                        );
                    }
                }
                Timer::Liveness => {
                    if self.state == LinkState::Up {
                        self.fail(
                            CloseCode::LinkTimeout,
                            "nothing received within the liveness window",
                        );
                    }
                }
                Timer::Retransmit => {
                    for key in self.outgoing.overdue(now) {
                        if let Some(stream) = self.outgoing.retry(key, now, false) {
                            self.transmits.push_back(Transmit::ResetStream {
                                stream: StreamId::Out(stream),
                                code: CloseCode::NoError,
                            });
                        }
                        self.events.push_back(Event::Retransmit { key });
                    }
                    self.outgoing.release_delayed(now);
                    self.arm_retransmit();
                    self.pump(now);
                }
                Timer::Gap => self.update_gaps(now),
            }
        }
    }

    // ----- commands ------------------------------------------------------------------

    /// Sends a heartbeat now (if the link is up), e.g. to find out at once whether a
    /// connection is still alive when the peer seems to have reconnected.
    pub fn probe(&mut self, now: UnixMillis) {
        if self.state == LinkState::Up {
            self.send_heartbeat(now);
        }
    }

    /// Queues an envelope (already durably in the outbox). Sent when the link is up, in
    /// precedence order; kept until [`Session::receipt_verified`] says a valid receipt came.
    pub fn send_envelope(&mut self, now: UnixMillis, envelope: Envelope) {
        self.outgoing.push(Item::Envelope(envelope));
        self.pump(now);
    }

    /// Queues an asynchronous receipt (ACKNOWLEDGED, already durably stored), kept until the
    /// peer answers ReceiptStored.
    pub fn send_receipt(&mut self, now: UnixMillis, receipt: Receipt) {
        self.outgoing.push(Item::Receipt(receipt));
        self.pump(now);
    }

    /// Answers an [`Event::Envelope`] or [`Event::MalformedEnvelope`] with its (durably
    /// stored, where DELIVERED) receipt, and finishes the stream.
    pub fn respond(&mut self, now: UnixMillis, stream: StreamId, receipt: &Receipt) {
        let Some(Incoming::Awaiting { envelope }) = self.incoming.remove(&stream) else {
            return;
        };
        self.finish_in(stream);
        let _ = now;
        if let Some((id, seq)) = envelope
            && receipt.message_id() == &id
            && counts_as_received(receipt.kind())
        {
            self.mark_received(seq);
        }
        if receipt.kind().is_delivery() {
            self.dedup.record(receipt);
        }
        if self.state == LinkState::Up {
            self.transmits.push_back(Transmit::Data {
                stream,
                data: frame::encode(FrameType::Receipt, receipt.bytes()),
                fin: true,
            });
        }
    }

    /// Answers an [`Event::AsyncReceipt`]: the receipt is stored.
    pub fn respond_stored(&mut self, stream: StreamId, receipt_sha256: &[u8; 32]) {
        self.finish_in(stream);
        if self.incoming.remove(&stream).is_some() && self.state == LinkState::Up {
            self.transmits.push_back(Transmit::Data {
                stream,
                data: frame::encode(
                    FrameType::ReceiptStored,
                    &receipt::stored_ack(receipt_sha256),
                ),
                fin: true,
            });
        }
    }

    /// Refuses an incoming stream with `code` (e.g. UNKNOWN_MESSAGE, BAD_RECEIPT,
    /// RATE_LIMITED, INTERNAL_ERROR).
    pub fn refuse(&mut self, stream: StreamId, code: CloseCode) {
        self.finish_in(stream);
        if self.incoming.remove(&stream).is_some() && self.state == LinkState::Up {
            self.transmits
                .push_back(Transmit::ResetStream { stream, code });
        }
    }

    /// Reports the application's verdict on an [`Event::Receipt`]: `valid` means the receipt
    /// verified, answers the envelope and is durably stored; the envelope is then done
    /// (DELIVERED, ACKNOWLEDGED or REJECTED). Otherwise it is sent again after a backoff.
    pub fn receipt_verified(&mut self, now: UnixMillis, message_id: &MessageId, valid: bool) {
        let key = ItemKey::Envelope(*message_id);
        if valid {
            self.outgoing.complete(key);
        } else {
            self.outgoing.retry(key, now, false);
            self.events.push_back(Event::Retransmit { key });
        }
        self.arm_retransmit();
        self.pump(now);
    }

    /// Closes the connection with `code` (e.g. SHUTDOWN, DUPLICATE_CONNECTION).
    pub fn close(&mut self, now: UnixMillis, code: CloseCode, reason: &str) {
        let _ = now;
        if matches!(self.state, LinkState::Up | LinkState::Handshaking) {
            let close = wire::Close {
                code: code.code(),
                reason: reason.to_owned(),
            }
            .encode_to_vec();
            self.transmits.push_back(Transmit::Data {
                stream: StreamId::Control,
                data: frame::encode(FrameType::Close, &close),
                fin: true,
            });
            self.fail(code, reason);
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
    pub fn poll_timeout(&self) -> Option<UnixMillis> {
        self.timers.next()
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ----- internals -----------------------------------------------------------------

    fn reset_connection(&mut self) {
        self.control = Decoder::new(StreamKind::Control);
        self.held.clear();
        self.incoming.clear();
        self.finished_in.clear();
        self.outgoing.requeue_all();
        self.peer_hello = None;
        self.pings.clear();
        self.timers.clear();
        self.max_outgoing = 0;
        if self.outgoing.next_deadline().is_some() {
            self.arm_retransmit();
        }
        // Gap state survives reconnects: gaps are about sequences, not connections.
        if !self.peer_claims.is_empty() || !self.gaps.is_empty() {
            self.timers.set_opt(Timer::Gap, self.next_gap_check());
        }
    }

    /// Fails the connection with `code`: tells the driver to close, reports the link down.
    fn fail(&mut self, code: CloseCode, reason: &str) {
        if matches!(self.state, LinkState::Down | LinkState::Closing) {
            return;
        }
        self.transmits.push_back(Transmit::Close {
            code,
            reason: reason.to_owned(),
        });
        self.events.push_back(Event::LinkDown {
            code,
            reason: reason.to_owned(),
            by_peer: false,
        });
        self.state = LinkState::Closing;
        self.timers.clear();
    }

    /// Remembers that a peer-opened stream is done with.
    fn finish_in(&mut self, stream: StreamId) {
        if let StreamId::In(n) = stream {
            self.finished_in.insert(n);
            while self.finished_in.len() > MAX_FINISHED_IN {
                self.finished_in.pop_first();
            }
        }
    }

    fn stream_error(&mut self, stream: StreamId, code: CloseCode, detail: String) {
        self.incoming.remove(&stream);
        self.finish_in(stream);
        self.transmits
            .push_back(Transmit::ResetStream { stream, code });
        self.events.push_back(Event::StreamError {
            stream,
            code,
            detail,
        });
    }

    fn control_data(&mut self, now: UnixMillis, data: &[u8], fin: bool) {
        self.control.push(data);
        loop {
            match self.control.next_frame() {
                Ok(Some(f)) => {
                    self.control_frame(now, f);
                    if matches!(self.state, LinkState::Closing | LinkState::Down) {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => return self.fail(e.code(), &e.to_string()),
            }
        }
        if fin {
            if let Err(e) = self.control.finish() {
                return self.fail(e.code(), &e.to_string());
            }
            self.fail(
                CloseCode::ProtocolViolation,
                "control stream finished without Close",
            );
        }
    }

    fn control_frame(&mut self, now: UnixMillis, f: Frame) {
        match (self.state, f.ty) {
            (LinkState::Handshaking, FrameType::Hello) => {
                match hello::verify(
                    &f.payload,
                    &self.peer,
                    self.side.peer(),
                    &self.exporter,
                    &self.config.offer,
                ) {
                    Ok(h) => self.link_up(now, h),
                    Err(code) => self.fail(code, "peer Hello refused"),
                }
            }
            (LinkState::Handshaking, _) => self.fail(
                CloseCode::UnexpectedFrame,
                "first control frame must be Hello",
            ),
            (LinkState::Up, FrameType::Heartbeat) => {
                match canonical::decode::<wire::Heartbeat>(&f.payload) {
                    Some(hb) => self.heartbeat(now, hb),
                    None => self.fail(CloseCode::MalformedFrame, "heartbeat does not decode"),
                }
            }
            (LinkState::Up, FrameType::Close) => {
                let (code, reason) = match wire::Close::decode(f.payload.clone()) {
                    Ok(c) => (
                        CloseCode::from_code(c.code).unwrap_or(CloseCode::ProtocolViolation),
                        c.reason.chars().take(256).collect(),
                    ),
                    Err(_) => (CloseCode::MalformedFrame, String::new()),
                };
                self.events.push_back(Event::LinkDown {
                    code,
                    reason,
                    by_peer: true,
                });
                self.state = LinkState::Closing;
                self.timers.clear();
            }
            (_, FrameType::Hello) => self.fail(CloseCode::UnexpectedFrame, "second Hello"),
            _ => self.fail(
                CloseCode::UnexpectedFrame,
                "frame not allowed on the control stream",
            ),
        }
    }

    fn link_up(&mut self, now: UnixMillis, h: PeerHello) {
        self.state = LinkState::Up;
        self.since = now;
        self.max_outgoing = (self.config.max_outgoing.min(h.offer.max_inflight).max(1)) as usize;
        self.peer_hello = Some(Box::new(h.clone()));
        self.events.push_back(Event::LinkUp(Box::new(h)));
        self.timers.stop(Timer::Hello);
        self.timers.set(
            Timer::Liveness,
            now.saturating_add(self.config.liveness_window),
        );
        self.send_heartbeat(now);
        self.timers.set(
            Timer::Heartbeat,
            now.saturating_add(self.config.heartbeat_interval),
        );
        for (stream, frame) in core::mem::take(&mut self.held) {
            self.message_frame(now, stream, frame);
        }
        self.pump(now);
    }

    fn send_heartbeat(&mut self, now: UnixMillis) {
        let ping = self.next_ping;
        self.next_ping += 1;
        self.pings.insert(ping, now);
        while self.pings.len() > 8 {
            self.pings.pop_first();
        }
        self.heartbeat_frame(now, ping, 0);
    }

    fn heartbeat_frame(&mut self, now: UnixMillis, ping: u64, echo: u64) {
        let hb = wire::Heartbeat {
            ping,
            echo,
            time_ms: now,
            last_sequence_sent: self.last_sent,
            received_through: self.received.contiguous_from_one(),
        }
        .encode_to_vec();
        self.transmits.push_back(Transmit::Data {
            stream: StreamId::Control,
            data: frame::encode(FrameType::Heartbeat, &hb),
            fin: false,
        });
    }

    fn heartbeat(&mut self, now: UnixMillis, hb: wire::Heartbeat) {
        if hb.ping != 0 {
            self.heartbeat_frame(now, 0, hb.ping);
        }
        if hb.echo != 0
            && let Some(sent) = self.pings.remove(&hb.echo)
        {
            let rtt = now.saturating_sub(sent);
            self.rtt = Some(rtt);
            self.events.push_back(Event::Rtt(rtt));
        }
        if hb.last_sequence_sent > self.peer_settled
            && self
                .peer_claims
                .back()
                .is_none_or(|c| c.1 < hb.last_sequence_sent)
        {
            self.peer_claims.push_back((now, hb.last_sequence_sent));
            while self.peer_claims.len() > 16 {
                self.peer_claims.pop_front();
            }
        }
        self.update_gaps(now);
    }

    /// Settles peer claims older than the grace period, recomputes gaps, and emits events
    /// when the set of gaps changes between empty and not.
    fn update_gaps(&mut self, now: UnixMillis) {
        while let Some(&(at, last)) = self.peer_claims.front() {
            if at.saturating_add(self.config.gap_grace) > now {
                break;
            }
            self.peer_settled = self.peer_settled.max(last);
            self.peer_claims.pop_front();
        }
        let missing = self.received.missing(self.peer_settled, MAX_GAP_RANGES);
        if missing != self.gaps {
            if missing.is_empty() {
                self.events.push_back(Event::GapClosed);
            } else {
                self.events.push_back(Event::GapDetected {
                    missing: missing.clone(),
                });
            }
            self.gaps = missing;
        }
        self.timers.set_opt(Timer::Gap, self.next_gap_check());
    }

    fn next_gap_check(&self) -> Option<UnixMillis> {
        self.peer_claims
            .front()
            .map(|(at, _)| at.saturating_add(self.config.gap_grace))
    }

    fn mark_received(&mut self, seq: u64) {
        if seq == 0 || !self.received.insert(seq) {
            return;
        }
        if !self.gaps.is_empty() {
            let missing = self.received.missing(self.peer_settled, MAX_GAP_RANGES);
            if missing.is_empty() {
                self.events.push_back(Event::GapClosed);
            }
            self.gaps = missing;
        }
    }

    fn in_data(&mut self, now: UnixMillis, stream: StreamId, data: &[u8], fin: bool) {
        if let StreamId::In(n) = stream
            && self.finished_in.contains(&n)
        {
            return;
        }
        let entry = self
            .incoming
            .entry(stream)
            .or_insert_with(|| Incoming::Reading(Decoder::new(StreamKind::Message)));
        let Incoming::Reading(decoder) = entry else {
            if !data.is_empty() {
                self.stream_error(
                    stream,
                    CloseCode::UnexpectedFrame,
                    "data after the frame".into(),
                );
            }
            return;
        };
        decoder.push(data);
        match decoder.next_frame() {
            Ok(Some(f)) => {
                let trailing = decoder.buffered() > 0;
                if trailing {
                    return self.stream_error(
                        stream,
                        CloseCode::UnexpectedFrame,
                        "more than one frame".into(),
                    );
                }
                self.incoming
                    .insert(stream, Incoming::Awaiting { envelope: None });
                if self.state == LinkState::Up {
                    self.message_frame(now, stream, f);
                } else if self.held.len() < MAX_HELD {
                    self.held.push((stream, f));
                } else {
                    self.stream_error(
                        stream,
                        CloseCode::TooManyStreams,
                        "too many streams before Hello".into(),
                    );
                }
            }
            Ok(None) => {
                if fin {
                    let e = decoder
                        .finish()
                        .err()
                        .map_or(CloseCode::TruncatedFrame, |e| e.code());
                    self.stream_error(stream, e, "stream ended before a complete frame".into());
                }
            }
            Err(e) => self.stream_error(stream, e.code(), e.to_string()),
        }
    }

    /// A complete first frame on a stream the peer opened.
    fn message_frame(&mut self, now: UnixMillis, stream: StreamId, f: Frame) {
        match f.ty {
            // Every envelope stream takes a token, whatever it carries (SPEC.md §13.2): a
            // replay answered from the dedup window and an unreadable envelope too.
            FrameType::Envelope if !self.limiter.allow(now) => self.stream_error(
                stream,
                CloseCode::RateLimited,
                "the peer is over its envelope rate limit".into(),
            ),
            FrameType::Envelope => match Envelope::parse(f.payload.clone()) {
                Ok(envelope) => {
                    let id = *envelope.message_id();
                    match self.dedup.check(&id, envelope.sha256()) {
                        Seen::Replay(r) => {
                            let r = r.clone();
                            self.incoming
                                .insert(stream, Incoming::Awaiting { envelope: None });
                            self.respond(now, stream, &r);
                        }
                        // A conflict or a miss goes to the application, which asks the store.
                        Seen::Conflict | Seen::Unknown => {
                            self.incoming.insert(
                                stream,
                                Incoming::Awaiting {
                                    envelope: Some((id, envelope.header().sequence)),
                                },
                            );
                            self.events.push_back(Event::Envelope { stream, envelope });
                        }
                    }
                }
                Err(ParseError::Unreadable) => self.stream_error(
                    stream,
                    CloseCode::MalformedFrame,
                    "envelope unreadable".into(),
                ),
                Err(ParseError::Malformed {
                    message_id,
                    sequence,
                    sender,
                    detail,
                }) => {
                    self.events.push_back(Event::MalformedEnvelope {
                        stream,
                        subject: receipt::Subject {
                            message_id,
                            envelope_sha256: crate::crypto::sha256(&f.payload),
                            sender,
                            sequence,
                        },
                        detail,
                    });
                }
            },
            FrameType::Receipt => {
                self.events.push_back(Event::AsyncReceipt {
                    stream,
                    receipt: f.payload,
                });
            }
            other => {
                self.stream_error(
                    stream,
                    CloseCode::UnexpectedFrame,
                    format!("{other:?} cannot open a stream"),
                );
            }
        }
    }

    /// Data on a stream we opened: the answer to an item.
    fn out_data(&mut self, now: UnixMillis, n: u64, data: &[u8], fin: bool) {
        let Some((key, item, state)) = self.outgoing.on_stream(n) else {
            return; // An answer on a stream we gave up on: ignore.
        };
        if !matches!(state, State::InFlight { .. }) {
            return;
        }
        let item = item.clone();
        let stream = StreamId::Out(n);
        let entry = self
            .incoming
            .entry(stream)
            .or_insert_with(|| Incoming::Reading(Decoder::new(StreamKind::Message)));
        let Incoming::Reading(decoder) = entry else {
            return;
        };
        decoder.push(data);
        let result = decoder.next_frame();
        let truncated = fin && matches!(result, Ok(None));
        match result {
            Ok(Some(f)) => {
                self.incoming.remove(&stream);
                match (f.ty, item) {
                    (FrameType::Receipt, Item::Envelope(envelope)) => {
                        self.outgoing.answered(key);
                        self.events.push_back(Event::Receipt {
                            envelope,
                            receipt: f.payload,
                        });
                    }
                    (FrameType::ReceiptStored, Item::Receipt(r)) => {
                        if receipt::parse_stored_ack(&f.payload).as_ref() == Some(r.sha256()) {
                            self.outgoing.complete(key);
                            self.events.push_back(Event::ReceiptStored {
                                receipt_sha256: *r.sha256(),
                            });
                            self.pump(now);
                        } else {
                            self.retry_after_bad_answer(
                                now,
                                key,
                                stream,
                                "ReceiptStored names another receipt",
                            );
                        }
                    }
                    _ => self.retry_after_bad_answer(now, key, stream, "wrong answer frame"),
                }
            }
            Ok(None) if truncated => {
                self.retry_after_bad_answer(now, key, stream, "answer truncated");
            }
            Ok(None) => {}
            Err(e) => self.retry_after_bad_answer(now, key, stream, &e.to_string()),
        }
        self.arm_retransmit();
    }

    fn retry_after_bad_answer(
        &mut self,
        now: UnixMillis,
        key: ItemKey,
        stream: StreamId,
        detail: &str,
    ) {
        self.incoming.remove(&stream);
        self.outgoing.retry(key, now, false);
        self.transmits.push_back(Transmit::ResetStream {
            stream,
            code: CloseCode::ProtocolViolation,
        });
        self.events.push_back(Event::StreamError {
            stream,
            code: CloseCode::ProtocolViolation,
            detail: detail.into(),
        });
        self.events.push_back(Event::Retransmit { key });
    }

    /// Sends queued items while the link is up and stream credit remains.
    fn pump(&mut self, now: UnixMillis) {
        if self.state != LinkState::Up {
            return;
        }
        while self.outgoing.in_flight() < self.max_outgoing {
            let Some(key) = self.outgoing.next_ready() else {
                break;
            };
            let n = self.next_out;
            self.next_out += 1;
            let Some(item) =
                self.outgoing
                    .start(key, n, now.saturating_add(self.config.receipt_timeout))
            else {
                break;
            };
            let (ty, bytes) = match &item {
                Item::Envelope(e) => {
                    self.last_sent = self.last_sent.max(e.header().sequence);
                    (FrameType::Envelope, e.bytes())
                }
                Item::Receipt(r) => (FrameType::Receipt, r.bytes()),
            };
            self.transmits.push_back(Transmit::Data {
                stream: StreamId::Out(n),
                data: frame::encode(ty, bytes),
                fin: true,
            });
        }
        self.arm_retransmit();
    }

    fn arm_retransmit(&mut self) {
        self.timers
            .set_opt(Timer::Retransmit, self.outgoing.next_deadline());
    }
}

/// Whether a receipt we send means the envelope's sequence number was really received:
/// only when the sender's signature verified, so the sequence can be trusted.
fn counts_as_received(kind: &ReceiptKind) -> bool {
    match kind {
        ReceiptKind::Delivered | ReceiptKind::Acknowledged { .. } => true,
        ReceiptKind::Rejected { reason, .. } => !matches!(
            reason,
            RejectReason::Malformed
                | RejectReason::UnsupportedVersion
                | RejectReason::UnknownSender
                | RejectReason::WrongRecipient
                | RejectReason::BadSignature
        ),
    }
}
