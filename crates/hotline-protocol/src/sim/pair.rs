//! Two simulated nodes wired together over a simulated clock and a network with faults.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;

use super::{SimNode, TestRng};
use crate::hello::Side;
use crate::identity::{EncryptionKeypair, IdentityKey, NodeId};
use crate::officer::{OfficerKey, Role};
use crate::session::{Config, HelloProgress, Monotonic, Session, StreamId, Transmit};
use crate::time::{DAY, UnixMillis};

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
    /// Simulated time (Unix ms). It is both nodes' monotonic clock, and their wall clock
    /// unless [`SimNode::wall_offset`] moves it.
    pub now: UnixMillis,
    /// The dialer.
    pub a: SimNode,
    /// The listener.
    pub b: SimNode,
    /// Faults applied to traffic.
    pub faults: Faults,
    /// One-way base latency, ms.
    pub latency: u64,
    /// Largest piece a write reaches the receiver in: when not 0, the bytes of every write
    /// (control and message streams) are handed to the receiving session in pieces of random
    /// length `1..=split`, as QUIC may deliver them (it keeps no write boundaries).
    pub split: usize,
    /// Randomness for faults and sealing.
    pub rng: TestRng,
    /// Connections refused because a side's TLS key was not one the other accepts.
    pub tls_refusals: usize,
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
    /// Two nodes with fresh keys from `seed`, not yet connected. Each session's backoff
    /// jitter is seeded from `seed` too.
    pub fn new(seed: u64, config: Config) -> Self {
        let mut rng = TestRng::new(seed);
        let now = EPOCH;
        // A generator of its own, so that the keys, ids and faults drawn from `rng` stay what
        // they were before sessions had jitter.
        let mut jitter = TestRng::from_seed_bytes(&[&b"jitter "[..], &seed.to_be_bytes()].concat());
        let seeded = |jitter: &mut TestRng| Config {
            jitter_seed: jitter.below(u64::MAX),
            ..config.clone()
        };
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
                    peer_keys,
                    config: Config| SimNode {
            tls_spki: crate::crypto::sha256(identity.id().as_bytes()),
            session: Session::new(config, identity.clone(), certs(&keys), peer),
            identity,
            keys,
            officer,
            peer,
            peer_keys,
            peer_revocations: Vec::new(),
            next_tls: None,
            own_bundle_created: 0,
            peer_pins: vec![crate::crypto::sha256(peer.as_bytes())],
            peer_bundle: None,
            inbox: BTreeMap::new(),
            accept_log: Vec::new(),
            outbox: BTreeMap::new(),
            receipts: BTreeMap::new(),
            stored_confirmed: Vec::new(),
            events: Vec::new(),
            next_sequence: 1,
            wall_offset: 0,
        };
        let (ca, cb) = (certs(&ka), certs(&kb));
        let (ida, idb) = (ia.id(), ib.id());
        let (config_a, config_b) = (seeded(&mut jitter), seeded(&mut jitter));
        let a = node(ia, ka, oa, idb, cb, config_a);
        let b = node(ib, kb, ob, ida, ca, config_b);
        Pair {
            now,
            a,
            b,
            faults: Faults::default(),
            latency: 1,
            split: 0,
            rng,
            net: Vec::new(),
            order: 0,
            streams: HashMap::new(),
            next_in: 0,
            connected: false,
            tls_refusals: 0,
        }
    }

    /// The monotonic clock both sessions run on: the simulated time.
    pub fn mono(&self) -> Monotonic {
        SimNode::mono(self.now)
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
        // Mutual TLS with pinned keys (SPEC.md §3.6.1): each side's key must be one the other
        // accepts, or the handshake fails and nothing connects.
        if !self.tls_accepted() {
            self.tls_refusals += 1;
            return;
        }
        let (ka, kb) = (self.a.tls_spki, self.b.tls_spki);
        self.a.saw_peer_key(&kb);
        self.b.saw_peer_key(&ka);
        self.net.clear();
        self.streams.clear();
        self.connected = true;
        let now = self.now;
        self.a.tick(now);
        self.b.tick(now);
        self.a
            .session
            .handle_connected(SimNode::mono(now), Side::Client, a);
        self.b
            .session
            .handle_connected(SimNode::mono(now), Side::Server, b);
    }

    /// Drops the connection on both sides.
    pub fn disconnect(&mut self) {
        self.connected = false;
        self.net.clear();
        self.streams.clear();
        let now = self.now;
        self.a.tick(now);
        self.b.tick(now);
        self.a.session.handle_disconnected(SimNode::mono(now));
        self.b.session.handle_disconnected(SimNode::mono(now));
    }

    /// Moves both sides to a new connection the way a dial race's winner replaces an UP one
    /// (SPEC.md §3.9): each side sends its Hello on the new connection beside the old one and
    /// verifies the other's; only if both verified do both adopt it (what was in flight on the
    /// old connection is lost with it). Returns how each side's check ended (A's, B's).
    pub fn replace_connection(&mut self) -> (HelloProgress, HelloProgress) {
        let exporter: [u8; 32] = crate::crypto::sha256(&self.rng.id16());
        let now = self.now;
        self.a.tick(now);
        self.b.tick(now);
        let mono = SimNode::mono(now);
        let (mut pa, hello_a) = self.a.session.start_pending(mono, Side::Client, exporter);
        let (mut pb, hello_b) = self.b.session.start_pending(mono, Side::Server, exporter);
        let ra = self.a.session.pending_data(&mut pa, &hello_b, false);
        let rb = self.b.session.pending_data(&mut pb, &hello_a, false);
        if ra == HelloProgress::Verified && rb == HelloProgress::Verified {
            self.net.clear();
            self.streams.clear();
            self.connected = true;
            self.a.session.adopt(mono, pa);
            self.b.session.adopt(mono, pb);
        }
        (ra, rb)
    }

    /// Whether each side presents a TLS key the other accepts.
    pub fn tls_accepted(&self) -> bool {
        self.b.peer_pins.contains(&self.a.tls_spki) && self.a.peer_pins.contains(&self.b.tls_spki)
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
                    self.a.session.poll_timeout().map(Monotonic::as_millis),
                    self.b.session.poll_timeout().map(Monotonic::as_millis),
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
            node.tick(now);
            let mono = SimNode::mono(now);
            if node.session.poll_timeout().is_some_and(|t| t <= mono) {
                node.session.handle_timeout(mono);
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
        let at = self.now;
        self.node(f.to).tick(at);
        let now = SimNode::mono(at);
        let from = f.to.other();
        match f.what {
            Transmit::Data { stream, data, fin } => {
                if let Some(s) = self.map_stream(from, stream) {
                    let mut rest = &data[..];
                    while self.split > 0 {
                        let n = 1 + self.rng.below(self.split as u64) as usize;
                        if n >= rest.len() {
                            break;
                        }
                        let (piece, tail) = rest.split_at(n);
                        self.node(f.to).session.handle_data(now, s, piece, false);
                        rest = tail;
                    }
                    self.node(f.to).session.handle_data(now, s, rest, fin);
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
