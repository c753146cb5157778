//! A connection that is to replace the UP one (SPEC.md §3.9, the dial race's winner while the
//! link is UP): its Hello runs beside the UP connection, which is closed only once the peer's
//! Hello on the new one verified. A holder of the peer's TLS key alone gets through TLS, never
//! through Hello, so it can no longer take a working link down by dialing.

use bytes::Bytes;
use hotline_protocol::codes::CloseCode;
use hotline_protocol::frame::{self, FrameType};
use hotline_protocol::hello::Side;
use hotline_protocol::session::{HelloProgress, PendingHello, Session, StreamId};
use hotline_protocol::wire;
use prost::Message;

use super::connect::{attach_io, exporter};
use super::events::audit;
use super::{Conn, Input, LinkCtx, clock};
use crate::daemon::metrics;

/// Most bytes of message streams held for a replacement until its Hello verified. The peer
/// opens message streams once its side is UP, which may be before its Hello reached us; QUIC
/// flow control bounds them too.
const HELD_BYTES: usize = 16 << 20;

/// A connection whose Hello runs beside the UP one.
pub(super) struct Replacement {
    pub(super) conn: Conn,
    hello: PendingHello,
    pub(super) deadline: tokio::time::Instant,
    /// Inputs other than the control stream's, replayed into the session after the adoption.
    held: Vec<Input>,
    held_bytes: usize,
    /// The control stream finished in the same read as the Hello.
    fin: bool,
}

/// What to do with a [`Replacement`] after an input.
pub(super) enum Step {
    Wait,
    /// Its Hello verified: close the UP connection and [`adopt`] this one.
    Adopt,
    /// Its Hello failed (or it sent too much before it): close it, keep the UP one.
    Fail(CloseCode, &'static str),
    /// It ended by itself.
    Gone,
}

impl Replacement {
    /// Starts the connection's streams and sends our Hello on it; the session's connection
    /// stays as it is.
    pub(super) fn start(
        ctx: &LinkCtx,
        session: &mut Session,
        conn: quinn::Connection,
        id: u64,
        side: Side,
        dialed_by_us: bool,
    ) -> Replacement {
        let exporter = exporter(&conn);
        let now = clock(session);
        let (hello, frame) = session.start_pending(now, side, exporter);
        let conn = attach_io(ctx, conn, id, side, dialed_by_us);
        // A fresh queue: it has room.
        let _ = conn.control_tx.try_send((frame, false));
        tracing::info!(
            peer = %ctx.alias,
            remote = %conn.conn.remote_address(),
            "a second connection wins the dial race; the link moves to it once the peer's Hello on it verifies"
        );
        Replacement {
            conn,
            hello,
            deadline: tokio::time::Instant::now()
                + std::time::Duration::from_millis(ctx.session.hello_timeout),
            held: Vec::new(),
            held_bytes: 0,
            fin: false,
        }
    }

    pub(super) fn id(&self) -> u64 {
        self.conn.id
    }

    /// Something arrived on the replacement.
    pub(super) fn input(&mut self, session: &Session, input: Input) -> Step {
        match input {
            Input::Data {
                stream: StreamId::Control,
                data,
                fin,
            } => {
                self.fin |= fin;
                match session.pending_data(&mut self.hello, &data, fin) {
                    HelloProgress::NeedMore => Step::Wait,
                    HelloProgress::Verified => Step::Adopt,
                    HelloProgress::Failed(code, why) => Step::Fail(code, why),
                }
            }
            Input::Closed(reason) => {
                tracing::info!("the second connection closed before its Hello: {reason}");
                Step::Gone
            }
            other => {
                if let Input::Data { data, .. } = &other {
                    self.held_bytes += data.len();
                }
                self.held.push(other);
                if self.held_bytes > HELD_BYTES {
                    Step::Fail(CloseCode::ProtocolViolation, "message data before Hello")
                } else {
                    Step::Wait
                }
            }
        }
    }

    /// Moves the link to this connection (its Hello verified): returns it with the inputs to
    /// replay into the session, and whether its control stream had finished.
    pub(super) fn adopt(self, session: &mut Session) -> (Conn, Vec<Input>, bool) {
        let now = clock(session);
        let adopted = session.adopt(now, self.hello);
        debug_assert!(adopted, "adopt is called on a verified Hello only");
        (self.conn, self.held, self.fin)
    }

    /// Closes it, the UP connection staying: a Close frame on its control stream first (our
    /// Hello went out on it, SPEC.md §3.8), the connection once that frame was sent (bounded).
    pub(super) fn fail(self, ctx: &LinkCtx, code: CloseCode, why: &'static str) {
        let remote = self.conn.conn.remote_address();
        tracing::warn!(
            peer = %ctx.alias,
            %remote,
            %code,
            "refused a second connection whose Hello failed ({why}) and kept the link UP on the existing one; if this repeats, the peer's TLS key may be in other hands"
        );
        metrics::handshake_failure(&ctx.metrics, "replacement_hello_failed");
        audit(
            ctx,
            "duplicate_refused",
            None,
            format!("from {remote}: its Hello failed with {code} ({why})"),
        );
        let close = wire::Close {
            code: code.code(),
            reason: why.to_owned(),
        };
        let frame: Bytes = frame::encode(FrameType::Close, &close.encode_to_vec());
        let _ = self.conn.control_tx.try_send((frame, true));
        super::streams::close_after_flush(
            self.conn.conn.clone(),
            self.conn.control_flushed.clone(),
            code.code(),
            why,
        );
    }
}
