//! The session script driver: runs [`SessionOp`]s against a [`Session`] and checks its invariants.

use bytes::Bytes;

use super::fixture::{Fixture, fixture};
use super::{FixtureFrame, SessionOp, StreamSel};
use crate::codes::{CloseCode, RejectReason};
use crate::crypto;
use crate::envelope::Envelope;
use crate::frame::{Decoder, FrameType, StreamKind};
use crate::receipt::{Receipt, ReceiptBuild, Subject};
use crate::session::{
    Config, Event, ItemKey, LinkState, MAX_ANNOUNCED_KEYS, Monotonic, Session, StreamId, Transmit,
};
use crate::sim::EPOCH;
use crate::time::UnixMillis;

/// How far a [`session`] script got, for tests that check the seed scripts still reach deep
/// states.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionTrace {
    /// Operations run.
    pub ops: usize,
    /// `LinkUp` events.
    pub link_ups: usize,
    /// `LinkDown` events.
    pub link_downs: usize,
    /// Inbound envelopes that opened and were answered DELIVERED.
    pub delivered_in: usize,
    /// `Receipt` events whose receipt verified and answered our envelope.
    pub receipts_ok: usize,
    /// `ReceiptStored` events.
    pub receipts_stored: usize,
    /// `PeerKeys` events: KeyUpdate frames accepted.
    pub key_updates: usize,
    /// `PeerRevocations` events: Revocations frames accepted.
    pub revocation_frames: usize,
    /// `PeerBundle` and `BundleAccepted` events.
    pub bundle_frames: usize,
    /// `AsyncReceipt` events.
    pub async_receipts: usize,
    /// `MalformedEnvelope` events.
    pub malformed: usize,
    /// Envelope frames received and answered from the dedup window (a `Receipt` sent on an
    /// `In` stream without an `Envelope` event for it).
    pub replays_answered: usize,
    /// `Rtt` events.
    pub rtts: usize,
    /// `GapDetected` events.
    pub gaps: usize,
    /// `GapClosed` events.
    pub gaps_closed: usize,
    /// `ImplausibleClaim` events.
    pub implausible_claims: usize,
    /// `StreamError` events.
    pub stream_errors: usize,
    /// `Retransmit` events.
    pub retransmits: usize,
}

/// An event that waits for the application's answer.
enum Pending {
    Envelope {
        stream: StreamId,
        envelope: Envelope,
    },
    Malformed {
        stream: StreamId,
        subject: Subject,
        detail: &'static str,
    },
    Receipt {
        envelope: Envelope,
        receipt: Bytes,
    },
    Async {
        stream: StreamId,
        receipt: Bytes,
    },
}

/// Most pending events the script driver remembers (the oldest is dropped).
const MAX_PENDING: usize = 64;

/// The session config under test: SPEC.md timers, but a small stream credit and dedup window
/// so the fuzzer reaches flow control and eviction with few operations.
fn fuzz_config() -> Config {
    Config {
        max_outgoing: 2,
        dedup_capacity: 4,
        ..Config::default()
    }
}

/// The link state machine ([`Session`]) driven by a script of [`SessionOp`]s, as the fixed
/// node "me" linked to the fixed peer, starting at the fixture's time. Time only moves
/// forward; the session's monotonic clock and its wall clock read the same.
///
/// After every operation the driver drains `poll_transmit`, reads `poll_timeout` and drains
/// `poll_event`, remembering the events that wait for an answer. [`SessionOp::Answer`] answers
/// one, by `how`:
/// - an inbound envelope: `how % 4` = 0 sign DELIVERED, 1 sign REJECTED (reason from
///   `how / 4`), 2 a prebuilt receipt of the fixture (from `how / 4`, usually for another
///   message), 3 do what a node does (open it, then DELIVERED or REJECTED with the reason);
/// - a malformed envelope: REJECTED (MALFORMED), or with `how % 4 == 2` a prebuilt receipt;
/// - a receipt for our envelope: `receipt_verified` with `how % 3` = 0 the real verdict,
///   1 invalid, 2 valid;
/// - a peer's asynchronous receipt: `how % 3` = 0 verify and answer `respond_stored` or
///   `refuse`, 1 `respond_stored` unverified, 2 `refuse` with UNKNOWN_MESSAGE.
///
/// Pending events survive disconnects, so answers may arrive late, on streams of a connection
/// that is gone, as a node's worker threads may deliver them.
///
/// Invariants asserted: every transmitted chunk is exactly one well-formed frame of a type
/// that belongs on its stream (envelopes only ours, fin exactly where the stream ends); after
/// `handle_timeout(now)` no timer is at or before `now`; items in flight never exceed the
/// pending items, the configured stream credit, nor what the peer's Hello accepts; reported
/// gaps are sorted, disjoint, after `received_through` and within what the peer claims; an
/// up link has the pinned peer's Hello; receipts, ReceiptStored and retransmit events only
/// ever name items we queued; a KeyUpdate accepted (`PeerKeys`) carries 1 to 4 keys, all the
/// peer's.
pub fn session(data: &[u8]) {
    let _ = session_run(data);
}

/// Runs a [`session`] script and reports how far it got.
pub fn session_run(data: &[u8]) -> SessionTrace {
    let Some(fx) = fixture() else {
        return SessionTrace::default();
    };
    let mut d = Driver {
        fx,
        config: fuzz_config(),
        s: Session::new(fuzz_config(), fx.me.clone(), fx.me_certs.clone(), fx.peer),
        now: EPOCH,
        out_streams: Vec::new(),
        pending: Vec::new(),
        answered: Vec::new(),
        trace: SessionTrace::default(),
    };
    let mut script = data;
    while let Some(op) = SessionOp::decode(&mut script) {
        d.run(op);
        d.trace.ops += 1;
        d.drain();
    }
    d.trace
}

struct Driver {
    fx: &'static Fixture,
    config: Config,
    s: Session,
    now: UnixMillis,
    /// Out streams the session opened, oldest first.
    out_streams: Vec<u64>,
    pending: Vec<Pending>,
    /// Streams the driver answered during the current operation.
    answered: Vec<StreamId>,
    trace: SessionTrace,
}

impl Driver {
    fn stream(&self, sel: StreamSel) -> StreamId {
        match sel {
            StreamSel::Control => StreamId::Control,
            StreamSel::In(n) => StreamId::In(u64::from(n)),
            StreamSel::Out(n) => StreamId::Out(u64::from(n)),
            StreamSel::RecentOut(k) => {
                let k = usize::from(k);
                let n = self
                    .out_streams
                    .iter()
                    .rev()
                    .nth(k % self.out_streams.len().max(1));
                StreamId::Out(n.copied().unwrap_or(0))
            }
        }
    }

    fn frame(&self, f: FixtureFrame) -> Bytes {
        self.fx.frames.get(f as usize).cloned().unwrap_or_default()
    }

    /// Both clocks at the driver's time, as a node driver sets them before each input.
    fn clock(&mut self) -> Monotonic {
        let now = Monotonic::from_millis(self.now);
        self.s.set_wall_clock(now, self.now);
        now
    }

    fn run(&mut self, op: SessionOp) {
        let now = self.clock();
        match op {
            SessionOp::Connect { side, exporter_ok } => {
                let exporter = if exporter_ok {
                    self.fx.exporter
                } else {
                    crypto::sha256(&self.fx.exporter)
                };
                self.s.handle_connected(now, side, exporter);
            }
            SessionOp::Data { stream, fin, data } => {
                self.s.handle_data(now, self.stream(stream), &data, fin)
            }
            SessionOp::Frame {
                stream,
                frame,
                split,
                fin,
            } => {
                let stream = self.stream(stream);
                let bytes = self.frame(frame);
                let at = bytes.len() * usize::from(split) / 256;
                if at > 0 {
                    self.s.handle_data(now, stream, &bytes[..at], false);
                }
                self.s.handle_data(now, stream, &bytes[at..], fin);
            }
            SessionOp::Mutate {
                stream,
                frame,
                at,
                xor,
            } => {
                let stream = self.stream(stream);
                let mut bytes = self.frame(frame).to_vec();
                let len = bytes.len();
                if let Some(b) = bytes.get_mut(usize::from(at) % len.max(1)) {
                    *b ^= xor;
                }
                self.s.handle_data(now, stream, &bytes, true);
            }
            SessionOp::Reset { stream, code } => {
                self.s
                    .handle_stream_reset(now, self.stream(stream), u64::from(code))
            }
            SessionOp::Advance { ms } => {
                self.now += 4 * u64::from(ms);
                self.timeout();
            }
            SessionOp::NextTimer => {
                if let Some(t) = self.s.poll_timeout() {
                    self.now = self.now.max(t.as_millis());
                }
                self.timeout();
            }
            SessionOp::Disconnect => {
                self.s.handle_disconnected(now);
            }
            SessionOp::SendEnvelope(i) => {
                if let Some(e) = pick(&self.fx.outbound, i) {
                    self.s.send_envelope(now, e.clone());
                }
            }
            SessionOp::SendReceipt(i) => {
                if let Some(r) = pick(&self.fx.our_async, i) {
                    self.s.send_receipt(now, r.clone());
                }
            }
            SessionOp::Answer { event, how } => {
                if !self.pending.is_empty() {
                    let p = self.pending.remove(usize::from(event) % self.pending.len());
                    self.answer(p, how);
                }
            }
            SessionOp::Refuse { event, code } => {
                if !self.pending.is_empty() {
                    let code = pick(CloseCode::ALL, code)
                        .copied()
                        .unwrap_or(CloseCode::InternalError);
                    match self.pending.remove(usize::from(event) % self.pending.len()) {
                        Pending::Envelope { stream, .. }
                        | Pending::Malformed { stream, .. }
                        | Pending::Async { stream, .. } => self.s.refuse(stream, code),
                        Pending::Receipt { envelope, .. } => {
                            self.s.receipt_verified(now, envelope.message_id(), false)
                        }
                    }
                }
            }
            SessionOp::Close { code } => {
                let code = pick(CloseCode::ALL, code)
                    .copied()
                    .unwrap_or(CloseCode::Shutdown);
                self.s.close(now, code, "fuzz close");
            }
            SessionOp::ReceiptVerified { envelope, valid } => {
                if let Some(e) = pick(&self.fx.outbound, envelope) {
                    self.s.receipt_verified(now, e.message_id(), valid);
                }
            }
        }
    }

    fn timeout(&mut self) {
        let now = self.clock();
        self.s.handle_timeout(now);
        if let Some(t) = self.s.poll_timeout() {
            assert!(
                t > now,
                "timer at {t:?} still due after handle_timeout({now:?})"
            );
        }
    }

    fn answer(&mut self, p: Pending, how: u8) {
        let fx = self.fx;
        let mono = self.clock();
        let now = self.now;
        let me = &fx.me;
        let sign =
            |subject: &Subject, kind: ReceiptBuild<'_>| Receipt::sign(me, subject, kind, now).ok();
        match p {
            Pending::Envelope { stream, envelope } => {
                let subject = Subject::from(&envelope);
                let receipt = match how % 4 {
                    0 => sign(&subject, ReceiptBuild::Delivered),
                    1 => {
                        let reason = pick(RejectReason::ALL, how / 4)
                            .copied()
                            .unwrap_or(RejectReason::Policy);
                        sign(&subject, ReceiptBuild::Rejected(reason, "fuzz"))
                    }
                    2 => pick(&fx.our_receipts, how / 4).cloned(),
                    _ => match envelope.open(&me.id(), &fx.peer, &fx.me_keys, now) {
                        Ok(_) => {
                            let r = sign(&subject, ReceiptBuild::Delivered);
                            self.trace.delivered_in += usize::from(r.is_some());
                            r
                        }
                        Err(rej) => sign(&subject, ReceiptBuild::Rejected(rej.reason, rej.detail)),
                    },
                };
                if let Some(r) = receipt {
                    self.answered.push(stream);
                    self.s.respond(mono, stream, &r);
                }
            }
            Pending::Malformed {
                stream,
                subject,
                detail,
            } => {
                let receipt = match how % 4 {
                    2 => pick(&fx.our_receipts, how / 4).cloned(),
                    _ => sign(
                        &subject,
                        ReceiptBuild::Rejected(RejectReason::Malformed, detail),
                    ),
                };
                if let Some(r) = receipt {
                    self.answered.push(stream);
                    self.s.respond(mono, stream, &r);
                }
            }
            Pending::Receipt { envelope, receipt } => {
                let valid = match how % 3 {
                    0 => {
                        let ok =
                            Receipt::verify(&receipt, &fx.peer).is_ok_and(|r| r.answers(&envelope));
                        self.trace.receipts_ok += usize::from(ok);
                        ok
                    }
                    1 => false,
                    _ => true,
                };
                self.s.receipt_verified(mono, envelope.message_id(), valid);
            }
            Pending::Async { stream, receipt } => match how % 3 {
                0 => match Receipt::verify(&receipt, &fx.peer) {
                    Ok(r) if fx.outbound.iter().any(|e| r.answers(e)) => {
                        self.s.respond_stored(stream, r.sha256())
                    }
                    Ok(_) => self.s.refuse(stream, CloseCode::UnknownMessage),
                    Err(_) => self.s.refuse(stream, CloseCode::BadReceipt),
                },
                1 => self.s.respond_stored(stream, &crypto::sha256(&receipt)),
                _ => self.s.refuse(stream, CloseCode::UnknownMessage),
            },
        }
    }

    /// Drains the outputs in the documented order and checks the invariants.
    fn drain(&mut self) {
        while let Some(t) = self.s.poll_transmit() {
            self.check_transmit(&t);
        }
        let _ = self.s.poll_timeout();
        while let Some(ev) = self.s.poll_event() {
            self.check_event(ev);
        }
        self.answered.clear();
        let st = self.s.status();
        assert!(
            st.in_flight <= st.pending,
            "more items in flight than pending"
        );
        assert!(
            st.in_flight <= self.config.max_outgoing as usize,
            "stream credit exceeded"
        );
        assert!(st.last_sent <= 3, "claims a sequence we never sent");
        assert!(st.gaps.len() <= 16, "more gap ranges than reported at once");
        let mut floor = st.received_through;
        for &(a, b) in &st.gaps {
            assert!(
                floor < a && a <= b,
                "gaps {:?} overlap, unsorted or received",
                st.gaps
            );
            assert!(
                b <= st.peer_last_sent,
                "a gap past what the peer claims to have sent"
            );
            floor = b;
        }
        assert!(
            st.claim_capped.is_none_or(|c| c == st.peer_last_sent),
            "a capped claim that is not the peer's latest"
        );
        if let Some(h) = self.s.peer_hello() {
            let credit = h.offer.max_inflight.max(1) as usize;
            assert!(st.in_flight <= credit, "more streams than the peer accepts");
        }
        if self.s.state() == LinkState::Up {
            let h = self.s.peer_hello();
            assert!(
                h.is_some_and(|h| h.identity == self.fx.peer),
                "link up without the pinned peer's Hello"
            );
        }
    }

    fn check_transmit(&mut self, t: &Transmit) {
        let Transmit::Data { stream, data, fin } = t else {
            return;
        };
        let kind = if *stream == StreamId::Control {
            StreamKind::Control
        } else {
            StreamKind::Message
        };
        let mut dec = Decoder::new(kind);
        dec.push(data);
        let f = match dec.next_frame() {
            Ok(Some(f)) => f,
            other => panic!("transmitted bytes on {stream:?} are not a frame: {other:?}"),
        };
        assert_eq!(
            dec.buffered(),
            0,
            "transmitted more than one frame at once on {stream:?}"
        );
        match stream {
            StreamId::Control => {
                assert!(f.ty.is_control());
                assert_eq!(
                    *fin,
                    f.ty == FrameType::Close,
                    "control stream fin without Close, or Close without fin"
                );
            }
            StreamId::Out(n) => {
                assert!(
                    matches!(f.ty, FrameType::Envelope | FrameType::Receipt),
                    "{:?} opened a stream",
                    f.ty
                );
                assert!(*fin, "message stream left open");
                if f.ty == FrameType::Envelope {
                    assert!(
                        self.fx.outbound.iter().any(|e| e.bytes() == &f.payload),
                        "sent an envelope never queued"
                    );
                }
                if !self.out_streams.contains(n) {
                    self.out_streams.push(*n);
                }
            }
            StreamId::In(_) => {
                assert!(
                    matches!(f.ty, FrameType::Receipt | FrameType::ReceiptStored),
                    "{:?} as an answer",
                    f.ty
                );
                assert!(*fin, "answer stream left open");
                if f.ty == FrameType::Receipt && !self.answered.contains(stream) {
                    self.trace.replays_answered += 1;
                }
            }
        }
    }

    fn check_event(&mut self, ev: Event) {
        let fx = self.fx;
        match ev {
            Event::LinkUp(h) => {
                assert_eq!(h.identity, fx.peer, "link up with someone else");
                self.trace.link_ups += 1;
            }
            Event::LinkDown { .. } => self.trace.link_downs += 1,
            Event::Envelope { stream, envelope } => {
                self.remember(Pending::Envelope { stream, envelope })
            }
            Event::MalformedEnvelope {
                stream,
                subject,
                detail,
            } => {
                self.trace.malformed += 1;
                self.remember(Pending::Malformed {
                    stream,
                    subject,
                    detail,
                });
            }
            Event::Receipt { envelope, receipt } => {
                assert!(
                    fx.outbound.contains(&envelope),
                    "a receipt event for an envelope never queued"
                );
                self.remember(Pending::Receipt { envelope, receipt });
            }
            Event::AsyncReceipt { stream, receipt } => {
                self.trace.async_receipts += 1;
                self.remember(Pending::Async { stream, receipt });
            }
            Event::ReceiptStored { receipt_sha256 } => {
                assert!(
                    fx.our_async.iter().any(|r| r.sha256() == &receipt_sha256),
                    "ReceiptStored for a receipt never queued"
                );
                self.trace.receipts_stored += 1;
            }
            Event::PeerKeys(keys) => {
                assert!(
                    (1..=MAX_ANNOUNCED_KEYS).contains(&keys.len()),
                    "a KeyUpdate accepted with {} keys",
                    keys.len()
                );
                assert!(
                    keys.iter().all(|k| k.owner() == fx.peer),
                    "a KeyUpdate accepted with a key not owned by the peer"
                );
                self.trace.key_updates += 1;
            }
            Event::PeerRevocations(revs) => {
                assert!(
                    (1..=crate::revocation::MAX_PER_FRAME).contains(&revs.len()),
                    "a Revocations frame accepted with {} revocations",
                    revs.len()
                );
                assert!(
                    revs.iter().all(|r| r.issuer() == fx.peer),
                    "a revocation accepted that the peer did not issue"
                );
                self.trace.revocation_frames += 1;
            }
            Event::PeerBundle(b) => {
                assert!(
                    b.identity() == fx.peer,
                    "a BundleUpdate accepted with another node's bundle"
                );
                self.trace.bundle_frames += 1;
            }
            Event::BundleAccepted(_) => self.trace.bundle_frames += 1,
            Event::Rtt(_) => self.trace.rtts += 1,
            Event::GapDetected { .. } => self.trace.gaps += 1,
            Event::GapClosed => self.trace.gaps_closed += 1,
            Event::ImplausibleClaim { claimed, capped } => {
                assert!(capped < claimed, "a claim flagged within its bound");
                self.trace.implausible_claims += 1;
            }
            Event::StreamError { .. } => self.trace.stream_errors += 1,
            Event::Retransmit { key } => {
                let known = match key {
                    ItemKey::Envelope(id) => fx.outbound.iter().any(|e| e.message_id() == &id),
                    ItemKey::Receipt(sha) => fx.our_async.iter().any(|r| r.sha256() == &sha),
                };
                assert!(known, "retransmit of an item never queued");
                self.trace.retransmits += 1;
            }
        }
    }

    fn remember(&mut self, p: Pending) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.remove(0);
        }
        self.pending.push(p);
    }
}

/// `list[i % len]`, or `None` for an empty list.
fn pick<T>(list: &[T], i: u8) -> Option<&T> {
    list.get(usize::from(i) % list.len().max(1))
}
