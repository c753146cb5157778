//! A second connection's Hello, run beside the connection that is UP (SPEC.md §3.9): the link
//! moves to it only once the peer's Hello on it verified, so that a connection that passed
//! Hello is never replaced by one that has not (a holder of the peer's TLS key alone gets
//! through TLS, never through Hello).
//!
//! The driver starts it with [`Session::start_pending`] and writes the returned Hello frame on
//! the new connection's control stream, feeds what the peer sends on that stream to
//! [`Session::pending_data`], and on [`HelloProgress::Verified`] closes the old connection and
//! calls [`Session::adopt`]. Anything else the new connection carries before then (message
//! streams the peer opened once its side was UP) is held by the driver and fed to the session
//! after the adoption.

use bytes::Bytes;

use super::{Monotonic, Session, StreamId};
use crate::EXPORTER_LEN;
use crate::codes::CloseCode;
use crate::frame::{self, Decoder, FrameType, StreamKind};
use crate::hello::{self, PeerHello, Side};

/// The Hello exchange of a connection that is to replace the current one.
#[derive(Debug)]
pub struct PendingHello {
    side: Side,
    exporter: [u8; EXPORTER_LEN],
    /// The control stream's frames so far; after the Hello, the bytes that followed it.
    control: Decoder,
    /// The peer's Hello, once verified.
    hello: Option<Box<PeerHello>>,
    failed: bool,
    /// The encryption keys our Hello on this connection carries.
    keys: Vec<crate::identity::EncryptionKey>,
}

/// Where a [`PendingHello`] stands after the peer's bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum HelloProgress {
    /// The peer's Hello is not complete yet.
    NeedMore,
    /// The peer's Hello verified: [`Session::adopt`] may move the link to this connection.
    Verified,
    /// The peer's Hello failed: close the new connection with this code; the current one
    /// stays.
    Failed(CloseCode, &'static str),
}

impl PendingHello {
    /// Whether the peer's Hello verified.
    pub fn verified(&self) -> bool {
        self.hello.is_some()
    }
}

impl Session {
    /// Starts the Hello exchange on a new connection (`side` our end, `exporter` its exporter
    /// value) without touching the current one. Returns the exchange and the frame to write on
    /// the new connection's control stream: our Hello.
    pub fn start_pending(
        &self,
        now: Monotonic,
        side: Side,
        exporter: [u8; EXPORTER_LEN],
    ) -> (PendingHello, Bytes) {
        let hello = hello::create(
            &self.identity,
            side,
            &exporter,
            &self.config.offer,
            &self.our_keys,
            self.wall(now),
        );
        let pending = PendingHello {
            side,
            exporter,
            control: Decoder::new(StreamKind::Control),
            hello: None,
            failed: false,
            keys: self.our_keys.clone(),
        };
        (pending, frame::encode(FrameType::Hello, &hello))
    }

    /// Bytes the peer sent on the new connection's control stream (`fin` if it finished it).
    /// The first frame must be a Hello that verifies (SPEC.md §6.3); bytes after it are kept
    /// for [`Session::adopt`].
    pub fn pending_data(&self, p: &mut PendingHello, data: &[u8], fin: bool) -> HelloProgress {
        if p.failed {
            return HelloProgress::Failed(CloseCode::ProtocolViolation, "Hello already failed");
        }
        p.control.push(data);
        if p.hello.is_none() {
            let progress = match p.control.next_frame() {
                Ok(None) => HelloProgress::NeedMore,
                Ok(Some(f)) if f.ty == FrameType::Hello => match hello::verify(
                    &f.payload,
                    &self.peer,
                    p.side.peer(),
                    &p.exporter,
                    &self.config.offer,
                ) {
                    Ok(h) => {
                        p.hello = Some(Box::new(h));
                        HelloProgress::Verified
                    }
                    Err(code) => HelloProgress::Failed(code, "peer Hello refused"),
                },
                Ok(Some(_)) => HelloProgress::Failed(
                    CloseCode::UnexpectedFrame,
                    "first control frame must be Hello",
                ),
                Err(e) => HelloProgress::Failed(e.code(), "control stream does not decode"),
            };
            if let HelloProgress::Failed(..) = progress {
                p.failed = true;
                return progress;
            }
        }
        match (fin, p.hello.is_some()) {
            (true, false) => {
                p.failed = true;
                HelloProgress::Failed(
                    CloseCode::ProtocolViolation,
                    "control stream finished without Close",
                )
            }
            // A finished control stream after the Hello is the session's to judge, once the
            // connection is adopted: the driver passes `fin` on then.
            (_, true) => HelloProgress::Verified,
            (false, false) => HelloProgress::NeedMore,
        }
    }

    /// Moves the link to the connection of `p`, whose peer Hello verified: the current
    /// connection (which the driver closes) ends as by [`Session::handle_connected`], items in
    /// flight on it are sent again on the new one, and the link is UP on the new one at once
    /// (our Hello was sent by [`Session::start_pending`]). Control-stream bytes that followed
    /// the peer's Hello are processed now. Returns false, and changes nothing, if the Hello
    /// has not verified.
    pub fn adopt(&mut self, now: Monotonic, p: PendingHello) -> bool {
        let PendingHello {
            side,
            exporter,
            control,
            hello,
            failed,
            keys,
        } = p;
        let Some(hello) = hello.filter(|_| !failed) else {
            return false;
        };
        self.begin_connection(
            now,
            side,
            exporter,
            CloseCode::DuplicateConnection,
            "replaced by a new connection whose Hello verified",
        );
        self.control = control;
        self.told_keys = keys;
        self.link_up(now, *hello);
        if self.control.buffered() > 0 {
            self.handle_data(now, StreamId::Control, &[], false);
        }
        true
    }
}
