//! A deterministic two-peer harness: two [`Session`]s wired together over a simulated clock,
//! with hooks to drop, delay, duplicate, reorder and tamper with frames. Time jumps straight
//! to the next deadline; nothing sleeps. Each side runs a small driver that does what
//! `hotlined` does (verify, decrypt, store, sign receipts) with in-memory "storage".
//!
//! Also home of [`TestRng`], the seeded randomness used by tests and the vector generator.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;

use crate::codes::{CloseCode, RejectReason};
use crate::content::{Draft, OpenedContent, Precedence, Tlp};
use crate::envelope::{Envelope, MessageId, SealParams};
use crate::hello::Side;
use crate::identity::{EncryptionKey, EncryptionKeypair, IdentityKey, NodeId};
use crate::officer::{OfficerKey, Role};
use crate::receipt::{Receipt, ReceiptBuild, ReceiptKind, Subject};
use crate::session::{Config, Event, Session, StreamId, Transmit};
use crate::time::{DAY, UnixMillis};

/// Seeded deterministic randomness (SHA-256 in counter mode). **For tests and test vectors
/// only**: it is predictable by design.
#[derive(Clone, Debug)]
pub struct TestRng {
    seed: [u8; 32],
    counter: u64,
    buf: [u8; 32],
    pos: usize,
}

impl TestRng {
    /// A generator from a number.
    pub fn new(seed: u64) -> Self {
        Self::from_seed_bytes(&seed.to_be_bytes())
    }

    /// A generator from arbitrary seed bytes.
    pub fn from_seed_bytes(seed: &[u8]) -> Self {
        TestRng {
            seed: crate::crypto::sha256_parts(&[b"hotline test rng", seed]),
            counter: 0,
            buf: [0; 32],
            pos: 32,
        }
    }

    /// A uniform number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        use rand_core::Rng;
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.below(1_000_000) as f64) < p * 1_000_000.0
    }

    /// 16 random bytes.
    pub fn id16(&mut self) -> [u8; 16] {
        use rand_core::Rng;
        let mut b = [0; 16];
        self.fill_bytes(&mut b);
        b
    }
}

impl rand_core::TryRng for TestRng {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for byte in dst {
            if self.pos == 32 {
                self.buf = crate::crypto::sha256_parts(&[&self.seed, &self.counter.to_be_bytes()]);
                self.counter += 1;
                self.pos = 0;
            }
            *byte = self.buf[self.pos];
            self.pos += 1;
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for TestRng {}

/// Which side of the pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Who {
    /// The dialer.
    A,
    /// The listener.
    B,
}

impl Who {
    fn other(self) -> Who {
        match self {
            Who::A => Who::B,
            Who::B => Who::A,
        }
    }
}

/// A message this node accepted into its inbox.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// The envelope.
    pub envelope: Envelope,
    /// What it said.
    pub content: OpenedContent,
    /// The DELIVERED receipt sent.
    pub receipt: Receipt,
}

/// One simulated node: a session plus the storage and crypto a node driver adds.
pub struct SimNode {
    /// Identity.
    pub identity: Arc<IdentityKey>,
    /// Encryption keys held.
    pub keys: Vec<EncryptionKeypair>,
    /// A duty officer of this node.
    pub officer: OfficerKey,
    /// The link state machine.
    pub session: Session,
    /// The peer's identity.
    pub peer: NodeId,
    /// The peer's encryption key certificates.
    pub peer_keys: Vec<EncryptionKey>,
    /// Accepted messages, by id.
    pub inbox: BTreeMap<MessageId, Accepted>,
    /// Every acceptance, in order (a duplicate would show twice).
    pub accept_log: Vec<MessageId>,
    /// Every envelope sent, by id.
    pub outbox: BTreeMap<MessageId, Envelope>,
    /// Verified receipts for our envelopes: the latest of each kind.
    pub receipts: BTreeMap<MessageId, Vec<Receipt>>,
    /// Asynchronous receipts the peer confirmed storing.
    pub stored_confirmed: Vec<[u8; 32]>,
    /// Every event seen, for assertions.
    pub events: Vec<Event>,
    /// Next sequence number to assign.
    pub next_sequence: u64,
}

impl core::fmt::Debug for SimNode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SimNode({})", self.identity.id())
    }
}

impl SimNode {
    /// Seals a message to the peer, puts it in the outbox and queues it.
    pub fn send(
        &mut self,
        now: UnixMillis,
        rng: &mut TestRng,
        subject: &str,
        precedence: Precedence,
    ) -> MessageId {
        let seq = self.next_sequence;
        self.next_sequence += 1;
        self.send_with_sequence(now, rng, subject, precedence, seq)
    }

    /// Like [`SimNode::send`] with an explicit sequence number (to simulate a lost one).
    pub fn send_with_sequence(
        &mut self,
        now: UnixMillis,
        rng: &mut TestRng,
        subject: &str,
        precedence: Precedence,
        sequence: u64,
    ) -> MessageId {
        let envelope = self.seal(now, rng, subject, precedence, sequence);
        let id = *envelope.message_id();
        self.outbox.insert(id, envelope.clone());
        self.session.send_envelope(now, envelope);
        id
    }

    /// Seals without sending.
    pub fn seal(
        &self,
        now: UnixMillis,
        rng: &mut TestRng,
        subject: &str,
        precedence: Precedence,
        sequence: u64,
    ) -> Envelope {
        let message_id = rng.id16();
        let draft = Draft {
            subject: subject.into(),
            text: format!("body of {subject}"),
            ..Default::default()
        };
        let content = draft
            .sign(&message_id, &self.peer, &self.officer, now)
            .expect("officer valid");
        let key = EncryptionKey::select(&self.peer_keys, now).expect("peer key valid");
        Envelope::seal(
            &self.identity,
            &SealParams {
                recipient: self.peer,
                recipient_key: key,
                message_id,
                sequence,
                created: now,
                precedence,
                tlp: Tlp::Amber,
            },
            &content,
            rng,
        )
        .expect("seal")
    }

    /// The officer acknowledges an accepted message: an ACKNOWLEDGED receipt goes back.
    pub fn acknowledge(&mut self, now: UnixMillis, id: &MessageId, note: &str) -> Receipt {
        let acc = self.inbox.get(id).expect("accepted");
        let ack = self
            .officer
            .acknowledge(id, acc.envelope.sha256(), now, note)
            .expect("officer");
        let r = Receipt::sign(
            &self.identity,
            &Subject::from(&acc.envelope),
            ReceiptBuild::Acknowledged(&ack),
            now,
        )
        .expect("sign");
        self.session.send_receipt(now, r.clone());
        r
    }

    /// Whether every outbox message has a verified delivery receipt.
    pub fn all_delivered(&self) -> bool {
        self.outbox.keys().all(|id| {
            self.receipts
                .get(id)
                .is_some_and(|rs| rs.iter().any(|r| r.kind().is_delivery()))
        })
    }

    fn reject(
        &self,
        subject: &Subject,
        reason: RejectReason,
        detail: &str,
        now: UnixMillis,
    ) -> Receipt {
        Receipt::sign(
            &self.identity,
            subject,
            ReceiptBuild::Rejected(reason, detail),
            now,
        )
        .expect("sign")
    }

    /// What `hotlined` does with each event, done inline.
    fn handle_event(&mut self, now: UnixMillis, ev: Event) {
        match &ev {
            Event::Envelope { stream, envelope } => {
                let id = *envelope.message_id();
                let receipt = if let Some(prev) = self.inbox.get(&id) {
                    if prev.envelope.sha256() == envelope.sha256() {
                        prev.receipt.clone()
                    } else {
                        self.reject(
                            &Subject::from(envelope),
                            RejectReason::Conflict,
                            "id reused",
                            now,
                        )
                    }
                } else {
                    match envelope.open(&self.identity.id(), &self.peer, &self.keys, now) {
                        Ok(content) => {
                            let r = Receipt::sign(
                                &self.identity,
                                &Subject::from(envelope),
                                ReceiptBuild::Delivered,
                                now,
                            )
                            .expect("sign");
                            self.inbox.insert(
                                id,
                                Accepted {
                                    envelope: envelope.clone(),
                                    content,
                                    receipt: r.clone(),
                                },
                            );
                            self.accept_log.push(id);
                            r
                        }
                        Err(rej) => {
                            self.reject(&Subject::from(envelope), rej.reason, rej.detail, now)
                        }
                    }
                };
                self.session.respond(now, *stream, &receipt);
            }
            Event::MalformedEnvelope {
                stream,
                subject,
                detail,
            } => {
                let r = self.reject(subject, RejectReason::Malformed, detail, now);
                self.session.respond(now, *stream, &r);
            }
            Event::Receipt { envelope, receipt } => {
                let ok = match Receipt::verify(receipt, &self.peer) {
                    Ok(r) if r.answers(envelope) => {
                        self.receipts.entry(*r.message_id()).or_default().push(r);
                        true
                    }
                    _ => false,
                };
                self.session
                    .receipt_verified(now, envelope.message_id(), ok);
            }
            Event::AsyncReceipt { stream, receipt } => match Receipt::verify(receipt, &self.peer) {
                Ok(r) => match self.outbox.get(r.message_id()) {
                    Some(e) if r.answers(e) => {
                        let sha = *r.sha256();
                        self.receipts.entry(*r.message_id()).or_default().push(r);
                        self.session.respond_stored(*stream, &sha);
                    }
                    _ => self.session.refuse(*stream, CloseCode::UnknownMessage),
                },
                Err(e) => self.session.refuse(*stream, e.code()),
            },
            Event::ReceiptStored { receipt_sha256 } => self.stored_confirmed.push(*receipt_sha256),
            _ => {}
        }
        self.events.push(ev);
    }
}

/// Fault injection applied to message-stream data in flight (control-stream data is
/// delayed by the base latency only, keeping it ordered like a QUIC stream).
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Probability a message-stream transmission is lost (its stream stalls).
    pub drop: f64,
    /// Probability an envelope is delivered twice (on two streams).
    pub duplicate: f64,
    /// Extra random delay, uniform in `0..=jitter` ms (reorders streams).
    pub jitter: u64,
    /// Probability one byte of a message-stream payload is flipped.
    pub tamper: f64,
    /// Drop everything, both directions, control included (a partition).
    pub partition: bool,
}

#[derive(Debug)]
struct InFlight {
    at: UnixMillis,
    order: u64,
    to: Who,
    what: Transmit,
}

/// Two simulated nodes and the network between them.
#[derive(Debug)]
pub struct Pair {
    /// Simulated time (Unix ms).
    pub now: UnixMillis,
    /// The dialer.
    pub a: SimNode,
    /// The listener.
    pub b: SimNode,
    /// Faults applied to traffic.
    pub faults: Faults,
    /// One-way base latency, ms.
    pub latency: u64,
    /// Randomness for faults and sealing.
    pub rng: TestRng,
    net: Vec<InFlight>,
    order: u64,
    /// (sender, sender's stream) → receiver's stream.
    streams: HashMap<(Who, StreamId), StreamId>,
    next_in: u64,
    connected: bool,
}

/// The simulation epoch: 2026-01-01T00:00:00Z.
pub const EPOCH: UnixMillis = 1_767_225_600_000;

impl Pair {
    /// Two nodes with fresh keys from `seed`, not yet connected.
    pub fn new(seed: u64, config: Config) -> Self {
        let mut rng = TestRng::new(seed);
        let now = EPOCH;
        let mk = |rng: &mut TestRng, name: &str| {
            let identity = Arc::new(IdentityKey::generate(rng));
            let keys = vec![EncryptionKeypair::generate(
                &identity,
                now - DAY,
                now + 365 * DAY,
                rng,
            )];
            let officer = OfficerKey::generate(
                &identity,
                name,
                Role::Officer,
                now - DAY,
                now + 365 * DAY,
                rng,
            )
            .expect("officer");
            (identity, keys, officer)
        };
        let (ia, ka, oa) = mk(&mut rng, "Alice Officer");
        let (ib, kb, ob) = mk(&mut rng, "Bob Officer");
        let certs =
            |k: &[EncryptionKeypair]| k.iter().map(|k| k.certificate.clone()).collect::<Vec<_>>();
        let node = |identity: Arc<IdentityKey>,
                    keys: Vec<EncryptionKeypair>,
                    officer,
                    peer: NodeId,
                    peer_keys| SimNode {
            session: Session::new(config.clone(), identity.clone(), certs(&keys), peer),
            identity,
            keys,
            officer,
            peer,
            peer_keys,
            inbox: BTreeMap::new(),
            accept_log: Vec::new(),
            outbox: BTreeMap::new(),
            receipts: BTreeMap::new(),
            stored_confirmed: Vec::new(),
            events: Vec::new(),
            next_sequence: 1,
        };
        let (ca, cb) = (certs(&ka), certs(&kb));
        let (ida, idb) = (ia.id(), ib.id());
        let a = node(ia, ka, oa, idb, cb);
        let b = node(ib, kb, ob, ida, ca);
        Pair {
            now,
            a,
            b,
            faults: Faults::default(),
            latency: 1,
            rng,
            net: Vec::new(),
            order: 0,
            streams: HashMap::new(),
            next_in: 0,
            connected: false,
        }
    }

    /// The node `who`.
    pub fn node(&mut self, who: Who) -> &mut SimNode {
        match who {
            Who::A => &mut self.a,
            Who::B => &mut self.b,
        }
    }

    /// Opens a connection: both sides get the same exporter value.
    pub fn connect(&mut self) {
        let exporter: [u8; 32] = crate::crypto::sha256(&self.rng.id16());
        self.connect_with_exporters(exporter, exporter);
    }

    /// Opens a connection with per-side exporter values (differing ones model a
    /// man-in-the-middle that terminated TLS separately towards each side).
    pub fn connect_with_exporters(&mut self, a: [u8; 32], b: [u8; 32]) {
        self.net.clear();
        self.streams.clear();
        self.connected = true;
        let now = self.now;
        self.a.session.handle_connected(now, Side::Client, a);
        self.b.session.handle_connected(now, Side::Server, b);
    }

    /// Drops the connection on both sides.
    pub fn disconnect(&mut self) {
        self.connected = false;
        self.net.clear();
        self.streams.clear();
        let now = self.now;
        self.a.session.handle_disconnected(now);
        self.b.session.handle_disconnected(now);
    }

    /// Whether a connection exists.
    pub fn is_connected(&self) -> bool {
        self.connected
    }

    /// Runs until `deadline` (simulated), or until nothing at all is left to do.
    pub fn run_until(&mut self, deadline: UnixMillis) {
        let mut idle_rounds = 0;
        loop {
            let progressed = self.step();
            if progressed {
                idle_rounds = 0;
                continue;
            }
            idle_rounds += 1;
            if idle_rounds > 1 {
                // Advance the clock to the next thing due.
                let next = [
                    self.net.iter().map(|f| f.at).min(),
                    self.a.session.poll_timeout(),
                    self.b.session.poll_timeout(),
                ]
                .into_iter()
                .flatten()
                .min();
                match next {
                    Some(t) if t <= deadline => {
                        self.now = self.now.max(t);
                        idle_rounds = 0;
                    }
                    _ => {
                        self.now = self.now.max(deadline);
                        return;
                    }
                }
            }
        }
    }

    /// Runs for `ms` of simulated time.
    pub fn run_for(&mut self, ms: u64) {
        let until = self.now + ms;
        self.run_until(until);
    }

    /// One pass: timers, outputs, events, deliveries due now. True if anything happened.
    fn step(&mut self) -> bool {
        let now = self.now;
        let mut progressed = false;
        for who in [Who::A, Who::B] {
            let node = self.node(who);
            if node.session.poll_timeout().is_some_and(|t| t <= now) {
                node.session.handle_timeout(now);
                progressed = true;
            }
            while let Some(ev) = node.session.poll_event() {
                node.handle_event(now, ev);
                progressed = true;
            }
            let mut out = Vec::new();
            while let Some(t) = self.node(who).session.poll_transmit() {
                out.push(t);
            }
            for t in out {
                progressed = true;
                self.transmit(who, t);
            }
        }
        // Deliver everything due.
        let mut due: Vec<InFlight> = Vec::new();
        let mut i = 0;
        while i < self.net.len() {
            if self.net[i].at <= now {
                due.push(self.net.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|f| (f.at, f.order));
        for f in due {
            progressed = true;
            self.deliver(f);
        }
        progressed
    }

    fn transmit(&mut self, from: Who, t: Transmit) {
        if !self.connected {
            return;
        }
        let to = from.other();
        if let Transmit::Close { .. } = t {
            // The driver closes the connection: the peer sees the close after the latency,
            // modelled here as an immediate disconnect of both sides.
            self.disconnect();
            return;
        }
        if self.faults.partition {
            return;
        }
        let is_control = matches!(
            &t,
            Transmit::Data {
                stream: StreamId::Control,
                ..
            }
        );
        let mut at = self.now + self.latency;
        let mut copies = vec![t];
        if !is_control {
            if self.rng.chance(self.faults.drop) {
                return;
            }
            at += self.rng.below(self.faults.jitter + 1);
            if let Transmit::Data {
                stream: StreamId::Out(_),
                data,
                fin,
            } = &copies[0]
                && self.rng.chance(self.faults.duplicate)
            {
                // A replay on a fresh stream: the receiver sees a new stream.
                copies.push(Transmit::Data {
                    stream: StreamId::In(u64::MAX),
                    data: data.clone(),
                    fin: *fin,
                });
            }
            if self.rng.chance(self.faults.tamper)
                && let Transmit::Data { data, .. } = &mut copies[0]
                && data.len() > crate::frame::HEADER_LEN
            {
                let mut v = data.to_vec();
                let i = crate::frame::HEADER_LEN
                    + self.rng.below((v.len() - crate::frame::HEADER_LEN) as u64) as usize;
                v[i] ^= 1 << self.rng.below(8);
                *data = Bytes::from(v);
            }
        }
        for what in copies {
            self.order += 1;
            self.net.push(InFlight {
                at,
                order: self.order,
                to,
                what,
            });
        }
    }

    fn map_stream(&mut self, from: Who, stream: StreamId) -> Option<StreamId> {
        match stream {
            StreamId::Control => Some(StreamId::Control),
            StreamId::Out(_) => {
                let next = &mut self.next_in;
                Some(*self.streams.entry((from, stream)).or_insert_with(|| {
                    *next += 1;
                    StreamId::In(*next)
                }))
            }
            StreamId::In(u64::MAX) => {
                // Duplicated envelope: a stream of its own, whose answer goes nowhere.
                self.next_in += 1;
                Some(StreamId::In(self.next_in))
            }
            StreamId::In(_) => {
                // An answer on a stream the peer opened: find the peer's Out id.
                self.streams
                    .iter()
                    .find(|(k, v)| k.0 == from.other() && **v == stream)
                    .map(|(k, _)| k.1)
            }
        }
    }

    fn deliver(&mut self, f: InFlight) {
        if !self.connected {
            return;
        }
        let now = self.now;
        let from = f.to.other();
        match f.what {
            Transmit::Data { stream, data, fin } => {
                if let Some(s) = self.map_stream(from, stream) {
                    self.node(f.to).session.handle_data(now, s, &data, fin);
                }
            }
            Transmit::ResetStream { stream, code } => {
                if let Some(s) = self.map_stream(from, stream) {
                    self.node(f.to)
                        .session
                        .handle_stream_reset(now, s, u64::from(code.code()));
                }
            }
            Transmit::Close { .. } => self.disconnect(),
        }
    }

    /// Both directions delivered and receipted, nothing pending.
    pub fn quiescent(&self) -> bool {
        self.a.all_delivered()
            && self.b.all_delivered()
            && self.a.session.pending() == 0
            && self.b.session.pending() == 0
    }
}

/// Returns every receipt kind name for a message at `node`, for assertions.
pub fn receipt_kinds(node: &SimNode, id: &MessageId) -> Vec<&'static str> {
    node.receipts
        .get(id)
        .map(|rs| rs.iter().map(|r| r.kind().as_str()).collect())
        .unwrap_or_default()
}

/// Whether `kind` is REJECTED with `reason`.
pub fn is_rejected_with(kind: &ReceiptKind, reason: RejectReason) -> bool {
    matches!(kind, ReceiptKind::Rejected { reason: r, .. } if *r == reason)
}
