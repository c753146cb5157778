//! Framing: `type (1) || length (u32 big-endian) || payload` (SPEC.md §5.1).
//!
//! The decoder works over partial input and enforces the per-type size cap from the 5-byte
//! header alone, before it buffers a single payload byte, so a peer cannot make us allocate
//! more than the limit.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::codes::CloseCode;
use crate::envelope::MAX_ENVELOPE_LEN;
use crate::receipt::MAX_RECEIPT_LEN;

/// Length of a frame header.
pub const HEADER_LEN: usize = 5;
/// Largest control-stream frame payload (Hello, Heartbeat, Close, KeyUpdate,
/// Revocations, BundleUpdate, BundleAccepted).
pub const MAX_CONTROL_LEN: usize = 16 * 1024;
/// Largest ReceiptStored payload.
pub const MAX_STORED_LEN: usize = 1024;

/// The frame types (SPEC.md §12.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FrameType {
    /// 0x01, control stream.
    Hello,
    /// 0x02, control stream.
    Heartbeat,
    /// 0x03, control stream.
    Close,
    /// 0x04, control stream; protocol version 2 only (SPEC.md §4.3.5).
    KeyUpdate,
    /// 0x05, control stream; protocol version 2 only (SPEC.md §4.6).
    Revocations,
    /// 0x06, control stream; protocol version 2 only (SPEC.md §4.4.4).
    BundleUpdate,
    /// 0x07, control stream; protocol version 2 only (SPEC.md §4.4.4).
    BundleAccepted,
    /// 0x10, message stream.
    Envelope,
    /// 0x11, message stream.
    Receipt,
    /// 0x12, message stream.
    ReceiptStored,
}

impl FrameType {
    /// The type byte.
    pub const fn byte(self) -> u8 {
        match self {
            FrameType::Hello => 0x01,
            FrameType::Heartbeat => 0x02,
            FrameType::Close => 0x03,
            FrameType::KeyUpdate => 0x04,
            FrameType::Revocations => 0x05,
            FrameType::BundleUpdate => 0x06,
            FrameType::BundleAccepted => 0x07,
            FrameType::Envelope => 0x10,
            FrameType::Receipt => 0x11,
            FrameType::ReceiptStored => 0x12,
        }
    }

    /// Looks a type byte up.
    pub const fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0x01 => FrameType::Hello,
            0x02 => FrameType::Heartbeat,
            0x03 => FrameType::Close,
            0x04 => FrameType::KeyUpdate,
            0x05 => FrameType::Revocations,
            0x06 => FrameType::BundleUpdate,
            0x07 => FrameType::BundleAccepted,
            0x10 => FrameType::Envelope,
            0x11 => FrameType::Receipt,
            0x12 => FrameType::ReceiptStored,
            _ => return None,
        })
    }

    /// The payload limit for this type.
    pub const fn max_len(self) -> usize {
        match self {
            FrameType::Hello
            | FrameType::Heartbeat
            | FrameType::Close
            | FrameType::KeyUpdate
            | FrameType::Revocations
            | FrameType::BundleUpdate
            | FrameType::BundleAccepted => MAX_CONTROL_LEN,
            FrameType::Envelope => MAX_ENVELOPE_LEN,
            FrameType::Receipt => MAX_RECEIPT_LEN,
            FrameType::ReceiptStored => MAX_STORED_LEN,
        }
    }

    /// Whether this type belongs on the control stream.
    pub const fn is_control(self) -> bool {
        matches!(
            self,
            FrameType::Hello
                | FrameType::Heartbeat
                | FrameType::Close
                | FrameType::KeyUpdate
                | FrameType::Revocations
                | FrameType::BundleUpdate
                | FrameType::BundleAccepted
        )
    }
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Its type.
    pub ty: FrameType,
    /// Its payload bytes, exactly as received.
    pub payload: Bytes,
}

/// Encodes a frame. The caller guarantees `payload` is within the type's limit (everything
/// this crate builds is); an oversize payload is still encoded, for conformance testing.
pub fn encode(ty: FrameType, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + payload.len());
    encode_into(ty, payload, &mut out);
    out.freeze()
}

/// Appends an encoded frame to `out`.
pub fn encode_into(ty: FrameType, payload: &[u8], out: &mut BytesMut) {
    out.put_u8(ty.byte());
    out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    out.put_slice(payload);
}

/// A framing error, with the code to close the stream or connection with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Unknown type byte.
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    /// A type not allowed on this stream.
    #[error("frame type {0:?} not allowed here")]
    WrongStream(FrameType),
    /// Declared length over the type's limit.
    #[error("frame of {len} bytes exceeds the {max}-byte limit for {ty:?}")]
    TooLarge {
        /// The type.
        ty: FrameType,
        /// Declared length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame")]
    Truncated,
}

impl FrameError {
    /// The close or stream-reset code for this error.
    pub fn code(&self) -> CloseCode {
        match self {
            FrameError::UnknownType(_) | FrameError::WrongStream(_) => CloseCode::UnexpectedFrame,
            FrameError::TooLarge { .. } => CloseCode::FrameTooLarge,
            FrameError::Truncated => CloseCode::TruncatedFrame,
        }
    }
}

/// Which stream a decoder serves: it refuses frame types that do not belong there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamKind {
    /// The control stream.
    Control,
    /// A message stream.
    Message,
}

/// An incremental frame decoder over partial input.
#[derive(Debug)]
pub struct Decoder {
    kind: StreamKind,
    buf: BytesMut,
    /// The header of the frame being read, once known.
    pending: Option<(FrameType, usize)>,
    failed: bool,
}

impl Decoder {
    /// A decoder for a stream of `kind`.
    pub fn new(kind: StreamKind) -> Self {
        Decoder {
            kind,
            buf: BytesMut::new(),
            pending: None,
            failed: false,
        }
    }

    /// Feeds received bytes. A caller that drains [`Decoder::next_frame`] after every push
    /// keeps at most one capped frame plus the last chunk buffered; the cap on the frame is
    /// enforced from its header before its payload is awaited.
    pub fn push(&mut self, data: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(data);
        }
    }

    /// Returns the next complete frame, `Ok(None)` if more input is needed, or an error.
    /// After an error the decoder yields nothing more.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.failed {
            return Ok(None);
        }
        let r = self.decode_one();
        if r.is_err() {
            self.failed = true;
            self.buf = BytesMut::new();
        }
        r
    }

    fn decode_one(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.pending.is_none() {
            if self.buf.len() < HEADER_LEN {
                return Ok(None);
            }
            let tb = self.buf[0];
            let ty = FrameType::from_byte(tb).ok_or(FrameError::UnknownType(tb))?;
            if ty.is_control() != (self.kind == StreamKind::Control) {
                return Err(FrameError::WrongStream(ty));
            }
            let len =
                u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
            if len > ty.max_len() {
                return Err(FrameError::TooLarge {
                    ty,
                    len: len as u64,
                    max: ty.max_len(),
                });
            }
            self.buf.advance(HEADER_LEN);
            // Reserve for the payload, but no more than 64 KiB ahead of the data: a bare
            // header must not make us allocate the full declared length.
            self.buf
                .reserve(len.saturating_sub(self.buf.len()).min(64 * 1024));
            self.pending = Some((ty, len));
        }
        match self.pending {
            Some((ty, len)) if self.buf.len() >= len => {
                self.pending = None;
                let payload = self.buf.split_to(len).freeze();
                Ok(Some(Frame { ty, payload }))
            }
            _ => Ok(None),
        }
    }

    /// Signals the end of the stream: an error if it ended inside a frame.
    pub fn finish(&mut self) -> Result<(), FrameError> {
        if self.failed || (self.pending.is_none() && self.buf.is_empty()) {
            Ok(())
        } else {
            self.failed = true;
            Err(FrameError::Truncated)
        }
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_frames_split_at_every_byte() {
        let a = encode(FrameType::Heartbeat, b"abc");
        let b = encode(FrameType::Close, b"");
        let all = [a.as_ref(), b.as_ref()].concat();
        let mut d = Decoder::new(StreamKind::Control);
        let mut out = vec![];
        for byte in &all {
            d.push(&[*byte]);
            while let Some(f) = d.next_frame().unwrap() {
                out.push(f);
            }
        }
        d.finish().unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].payload.as_ref(), b"abc");
        assert_eq!(out[1].ty, FrameType::Close);
    }

    #[test]
    fn refuses_oversize_from_the_header_alone() {
        let mut d = Decoder::new(StreamKind::Message);
        d.push(&[0x11, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(d.next_frame(), Err(FrameError::TooLarge { .. })));
        assert_eq!(d.buffered(), 0);
        assert_eq!(
            FrameError::TooLarge {
                ty: FrameType::Receipt,
                len: 0,
                max: 0
            }
            .code(),
            CloseCode::FrameTooLarge
        );
    }

    #[test]
    fn refuses_control_frame_on_message_stream() {
        let mut d = Decoder::new(StreamKind::Message);
        d.push(&encode(FrameType::Hello, b"x"));
        assert_eq!(
            d.next_frame(),
            Err(FrameError::WrongStream(FrameType::Hello))
        );
    }

    #[test]
    fn reports_truncation() {
        let mut d = Decoder::new(StreamKind::Message);
        let f = encode(FrameType::Envelope, &[1, 2, 3, 4]);
        d.push(&f[..7]);
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.finish(), Err(FrameError::Truncated));
    }

    #[test]
    fn refuses_unknown_type() {
        let mut d = Decoder::new(StreamKind::Control);
        d.push(&[0x7f, 0, 0, 0, 0]);
        assert_eq!(d.next_frame(), Err(FrameError::UnknownType(0x7f)));
    }
}
