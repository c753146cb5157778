//! The link's life: connecting and disconnecting, the control stream (Hello, heartbeats,
//! Close), liveness, gap detection, and the timers that drive them.

use prost::Message;

use super::timers::Timer;
use super::{Event, LinkState, Monotonic, Session, StreamId, Transmit};
use crate::canonical;
use crate::codes::CloseCode;
use crate::frame::{self, Decoder, Frame, FrameType, StreamKind};
use crate::hello::{self, PeerHello, Side};
use crate::wire;

/// Most gap ranges reported in one event.
const MAX_GAP_RANGES: usize = 16;
/// Most pings answered of those read together: a pinger keeps at least its three latest
/// pings (SPEC.md §11.1), so earlier ones would go unmatched anyway.
pub(super) const ECHOES_PER_READ: usize = 3;

impl Session {
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
        now: Monotonic,
        side: Side,
        exporter: [u8; crate::EXPORTER_LEN],
    ) {
        self.begin_connection(
            now,
            side,
            exporter,
            CloseCode::NoError,
            "replaced by a new connection",
        );
        let hello = hello::create(
            &self.identity,
            side,
            &exporter,
            &self.config.offer,
            &self.our_keys,
            self.wall(now),
        );
        self.told_keys = self.our_keys.clone();
        self.transmits.push_back(Transmit::Data {
            stream: StreamId::Control,
            data: frame::encode(FrameType::Hello, &hello),
            fin: false,
        });
        self.timers
            .set(Timer::Hello, now.after(self.config.hello_timeout));
    }

    /// Starts over on a new connection (`side` our end, `exporter` its exporter value): the
    /// link on the old one, if any, is reported down with `code` and `reason`; items in flight
    /// on it are queued again. The state is Handshaking until the peer's Hello verifies.
    pub(super) fn begin_connection(
        &mut self,
        now: Monotonic,
        side: Side,
        exporter: [u8; crate::EXPORTER_LEN],
        code: CloseCode,
        reason: &str,
    ) {
        if matches!(self.state, LinkState::Up | LinkState::Handshaking) {
            self.events.push_back(Event::LinkDown {
                code,
                reason: reason.into(),
                by_peer: false,
            });
        }
        self.reset_connection();
        self.set_state(LinkState::Handshaking, now);
        self.side = side;
        self.exporter = exporter;
        self.last_rx = Some(self.wall(now));
        // Each connection starts with a full ping allowance (SPEC.md §13.2).
        self.ping_limiter.refill(now);
        self.key_update_limiter.refill(now);
        self.revocation_limiter.refill(now);
        self.our_revocations.reset();
        self.bundle_limiter.refill(now);
        self.our_bundle.reset();
    }

    /// The connection is gone (closed by either side, or lost). In-flight items will be
    /// sent again on the next connection.
    pub fn handle_disconnected(&mut self, now: Monotonic) {
        if matches!(self.state, LinkState::Up | LinkState::Handshaking) {
            self.events.push_back(Event::LinkDown {
                code: CloseCode::NoError,
                reason: "connection lost".into(),
                by_peer: false,
            });
        }
        self.reset_connection();
        self.set_state(LinkState::Down, now);
    }

    /// Bytes arrived on `stream`; `fin` if the peer finished its sending side.
    pub fn handle_data(&mut self, now: Monotonic, stream: StreamId, data: &[u8], fin: bool) {
        if matches!(self.state, LinkState::Down | LinkState::Closing) {
            return;
        }
        self.last_rx = Some(self.wall(now));
        if self.state == LinkState::Up {
            self.timers
                .set(Timer::Liveness, now.after(self.config.liveness_window));
        }
        match stream {
            StreamId::Control => self.control_data(now, data, fin),
            StreamId::Out(n) => self.out_data(now, n, data, fin),
            StreamId::In(_) => self.in_data(now, stream, data, fin),
        }
    }

    /// Time has reached `now`: run the due timers.
    pub fn handle_timeout(&mut self, now: Monotonic) {
        for t in self.timers.expire(now) {
            match t {
                Timer::Hello => {
                    if self.state == LinkState::Handshaking {
                        self.fail(CloseCode::HelloTimeout, "no Hello from the peer in time");
                    }
                }
                Timer::Heartbeat => {
                    if self.state == LinkState::Up {
                        let _ = self.ping_budget.allow(now);
                        self.send_heartbeat(now);
                        self.timers
                            .set(Timer::Heartbeat, now.after(self.config.heartbeat_interval));
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

    // ----- internals -----------------------------------------------------------------

    pub(super) fn reset_connection(&mut self) {
        self.control = Decoder::new(StreamKind::Control);
        self.held.clear();
        self.incoming.clear();
        self.finished_in.clear();
        self.outgoing.requeue_all();
        self.peer_hello = None;
        self.pings.clear();
        self.echo_due.clear();
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
    pub(super) fn fail(&mut self, code: CloseCode, reason: &str) {
        if matches!(self.state, LinkState::Down | LinkState::Closing) {
            return;
        }
        // SPEC.md §3.8 step 1: our Hello is sent (Handshaking or Up), so a Close frame with
        // the code and reason goes first, and the control stream is finished; the driver
        // closes the connection once it reached the peer.
        let close = wire::Close {
            code: code.code(),
            reason: bounded_reason(reason),
        }
        .encode_to_vec();
        self.transmits.push_back(Transmit::Data {
            stream: StreamId::Control,
            data: frame::encode(FrameType::Close, &close),
            fin: true,
        });
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

    fn control_data(&mut self, now: Monotonic, data: &[u8], fin: bool) {
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
        // Pings read together are answered once they are all read: the latest few only
        // (SPEC.md §11.1).
        while let Some(ping) = self.echo_due.pop_front() {
            self.heartbeat_frame(now, 0, ping);
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

    fn control_frame(&mut self, now: Monotonic, f: Frame) {
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
            (LinkState::Up, FrameType::Close) => self.peer_closed(&f.payload),
            (LinkState::Up, FrameType::KeyUpdate) => self.peer_key_update(now, &f.payload),
            (LinkState::Up, FrameType::Revocations) => self.peer_revocations(now, &f.payload),
            (LinkState::Up, FrameType::BundleUpdate) => self.peer_bundle_update(now, &f.payload),
            (LinkState::Up, FrameType::BundleAccepted) => {
                self.peer_bundle_accepted(now, &f.payload)
            }
            (_, FrameType::Hello) => self.fail(CloseCode::UnexpectedFrame, "second Hello"),
            _ => self.fail(
                CloseCode::UnexpectedFrame,
                "frame not allowed on the control stream",
            ),
        }
    }

    /// SPEC.md §3.8: the peer's Close frame ends the link for this connection. Its code (an
    /// unregistered one shown as PROTOCOL_VIOLATION, one that does not decode as
    /// MALFORMED_FRAME) is the reason the link went down; the connection is closed with
    /// NO_ERROR, whatever the peer's code: the peer did nothing wrong by closing.
    fn peer_closed(&mut self, payload: &[u8]) {
        let (code, reason) = match wire::Close::decode(payload) {
            Ok(c) => (
                CloseCode::from_code(c.code).unwrap_or(CloseCode::ProtocolViolation),
                c.reason.chars().take(256).collect(),
            ),
            Err(_) => (CloseCode::MalformedFrame, String::new()),
        };
        self.transmits.push_back(Transmit::Close {
            code: CloseCode::NoError,
            reason: "closed by the peer".into(),
        });
        self.events.push_back(Event::LinkDown {
            code,
            reason,
            by_peer: true,
        });
        self.state = LinkState::Closing;
        self.timers.clear();
    }

    pub(super) fn link_up(&mut self, now: Monotonic, h: PeerHello) {
        self.set_state(LinkState::Up, now);
        self.max_outgoing = (self.config.max_outgoing.min(h.offer.max_inflight).max(1)) as usize;
        self.clock_skew = Some(skew(h.time, self.wall(now), self.rtt));
        self.peer_hello = Some(Box::new(h.clone()));
        self.events.push_back(Event::LinkUp(Box::new(h)));
        self.timers.stop(Timer::Hello);
        self.timers
            .set(Timer::Liveness, now.after(self.config.liveness_window));
        let _ = self.ping_budget.allow(now);
        self.send_heartbeat(now);
        // Keys that changed after our Hello was made (SPEC.md §4.3.5).
        let _ = self.announce_keys_if_changed();
        // Every revocation we issued, on each new connection (SPEC.md §4.6.2).
        let _ = self.announce_revocations();
        // Our bundle, on each new connection (SPEC.md §4.4.4).
        let _ = self.announce_bundle();
        self.timers
            .set(Timer::Heartbeat, now.after(self.config.heartbeat_interval));
        for (stream, frame) in core::mem::take(&mut self.held) {
            self.message_frame(now, stream, frame);
        }
        self.pump(now);
    }

    /// Sends a Heartbeat ping. The caller has taken a token of our own ping allowance, or
    /// sends the heartbeat every interval demands (it takes one whether any is left or not).
    pub(super) fn send_heartbeat(&mut self, now: Monotonic) {
        let ping = self.next_ping;
        self.next_ping += 1;
        self.pings.insert(ping, now);
        while self.pings.len() > 8 {
            self.pings.pop_first();
        }
        self.heartbeat_frame(now, ping, 0);
    }

    fn heartbeat_frame(&mut self, now: Monotonic, ping: u64, echo: u64) {
        let hb = wire::Heartbeat {
            ping,
            echo,
            time_ms: self.wall(now),
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

    fn heartbeat(&mut self, now: Monotonic, hb: wire::Heartbeat) {
        if hb.ping != 0 {
            // SPEC.md §13.2: a few pings a second at most. Each one asks for a reply, which a
            // peer that does not read its control stream would pile up here.
            if !self.ping_limiter.allow(now) {
                return self.fail(
                    CloseCode::RateLimited,
                    &format!(
                        "Heartbeat pings faster than {}/s (burst {})",
                        self.config.ping_rate_per_s, self.config.ping_burst
                    ),
                );
            }
            if self.echo_due.len() == ECHOES_PER_READ {
                self.echo_due.pop_front();
            }
            self.echo_due.push_back(hb.ping);
        }
        if hb.echo != 0
            && let Some(sent) = self.pings.remove(&hb.echo)
        {
            let rtt = now.since(sent);
            self.rtt = Some(rtt);
            self.events.push_back(Event::Rtt(rtt));
        }
        if hb.time_ms != 0 {
            self.clock_skew = Some(skew(hb.time_ms, self.wall(now), self.rtt));
        }
        self.peer_received_through = hb.received_through;
        self.record_claim(now, hb.last_sequence_sent);
        self.update_gaps(now);
    }

    /// Records the peer's `last_sequence_sent` if it is above every claim before, and flags it
    /// when it is the first beyond the bound (SPEC.md §10.3).
    fn record_claim(&mut self, now: Monotonic, claim: u64) {
        let back = self.peer_claims.back().map(|c| c.1);
        if claim <= self.peer_settled || back.is_some_and(|b| b >= claim) {
            return;
        }
        // A claim beyond the bound stays at the back of `peer_claims` until it falls within it
        // (see `update_gaps`), so a back beyond the bound means it was flagged already: one
        // event per excursion, not one per Heartbeat that repeats or raises the claim.
        if let Some(capped) = self.claim_cap(claim)
            && back.is_none_or(|b| self.claim_cap(b).is_none())
        {
            self.events.push_back(Event::ImplausibleClaim {
                claimed: claim,
                capped,
            });
        }
        self.peer_claims.push_back((now, claim));
        while self.peer_claims.len() > 16 {
            self.peer_claims.pop_front();
        }
    }

    /// Settles peer claims older than the grace period, recomputes gaps, and emits events
    /// when the set of gaps changes between empty and not.
    ///
    /// A claim beyond the bound settles only up to it (SPEC.md §10.3), and stays pending: it is
    /// looked at again every grace period, against a bound that rises as sequences arrive, so
    /// that status can show it and it is not flagged again while it stands.
    fn update_gaps(&mut self, now: Monotonic) {
        let mut standing = None;
        while let Some(&(at, last)) = self.peer_claims.front() {
            if at.after(self.config.gap_grace) > now {
                break;
            }
            self.peer_claims.pop_front();
            match self.claim_cap(last) {
                None => self.peer_settled = self.peer_settled.max(last),
                Some(bound) => {
                    // Imply up to the bound only once what arrived has caught up with what is
                    // implied: in between the gaps stay put instead of creeping up (and being
                    // reported again) with every sequence that arrives.
                    let highest = bound.saturating_sub(self.config.max_claim_ahead);
                    if self.peer_settled <= highest {
                        self.peer_settled = bound;
                    }
                    standing = Some(last);
                }
            }
        }
        // Claims are recorded in increasing order, so any left behind `standing` are beyond the
        // bound too and will stand in its place.
        if let Some(last) = standing
            && self.peer_claims.is_empty()
        {
            // A grace period of 0 would have it settle again at once, for ever.
            let again = now.after(u64::from(self.config.gap_grace == 0));
            self.peer_claims.push_back((again, last));
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

    /// The bound `claim` is capped at when it is beyond it: the highest sequence received from
    /// the peer plus [`Config::max_claim_ahead`](super::Config::max_claim_ahead); `None` when
    /// the claim is believed.
    ///
    /// Why the bound is safe: a peer counts a sequence in `last_sequence_sent` once it wrote
    /// the envelope to a stream (SPEC.md §10.2), and it has at most its stream credit (a few
    /// hundred) unanswered at a time, so a real peer's claim exceeds what arrived by little
    /// more than that. Only a sequence that arrived raises the bound, and that costs the peer a
    /// signed envelope within the rate limit.
    fn claim_cap(&self, claim: u64) -> Option<u64> {
        let ahead = self.config.max_claim_ahead;
        // The usual case without walking the ranges: within the bound of the contiguous prefix.
        if claim <= self.received.contiguous_from_one().saturating_add(ahead) {
            return None;
        }
        let bound = self.highest_received().saturating_add(ahead);
        (claim > bound).then_some(bound)
    }

    /// The highest sequence from the peer that counts as received; 0 if none.
    fn highest_received(&self) -> u64 {
        self.received.max().unwrap_or(0)
    }

    /// The peer's claim that stands capped, for status (see `update_gaps`).
    pub(super) fn capped_claim(&self) -> Option<u64> {
        let last = self.peer_claims.back()?.1;
        self.claim_cap(last).map(|_| last)
    }

    fn next_gap_check(&self) -> Option<Monotonic> {
        self.peer_claims
            .front()
            .map(|(at, _)| at.after(self.config.gap_grace))
    }

    pub(super) fn mark_received(&mut self, seq: u64) {
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
}

/// A Close reason within SPEC.md §3.8's 256 bytes, cut at a character boundary.
fn bounded_reason(reason: &str) -> String {
    let mut end = reason.len().min(256);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

/// The peer's clock minus ours (ms) from a `time_ms` the peer sent: it was the peer's time
/// about half a round trip ago (SPEC.md §11.2). Saturating: a peer's absurd time cannot
/// overflow it.
fn skew(peer_time: u64, our_time: u64, rtt: Option<u64>) -> i64 {
    let peer = i64::try_from(peer_time).unwrap_or(i64::MAX);
    let ours = i64::try_from(our_time).unwrap_or(i64::MAX);
    let half = i64::try_from(rtt.unwrap_or(0) / 2).unwrap_or(0);
    peer.saturating_add(half).saturating_sub(ours)
}
