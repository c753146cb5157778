//! The link's life: connecting and disconnecting, the control stream (Hello, heartbeats,
//! Close), liveness, gap detection, and the timers that drive them.

use prost::Message;

use super::timers::Timer;
use super::{Event, LinkState, Session, StreamId, Transmit};
use crate::canonical;
use crate::codes::CloseCode;
use crate::frame::{self, Decoder, Frame, FrameType, StreamKind};
use crate::hello::{self, PeerHello, Side};
use crate::time::UnixMillis;
use crate::wire;

/// Most gap ranges reported in one event.
const MAX_GAP_RANGES: usize = 16;

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
    pub(super) fn fail(&mut self, code: CloseCode, reason: &str) {
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

    pub(super) fn send_heartbeat(&mut self, now: UnixMillis) {
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
