//! Session scripts: the [`SessionOp`] operations, their byte encoding and the script reader.

use super::FixtureFrame;
#[cfg(doc)]
use super::session;
use crate::hello::Side;

// ----- session ------------------------------------------------------------------------

/// A stream named in a session script, encoded in one byte: the low two bits pick the kind,
/// the high six bits (0..=63) the number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamSel {
    /// The control stream.
    Control,
    /// A stream the peer opened, `StreamId::In(n)`.
    In(u8),
    /// `StreamId::Out(n)` by number, whether or not the session opened it.
    Out(u8),
    /// The `k`-th most recent stream the session opened (0 = the latest), or `Out(0)` if it
    /// opened none: how a script answers on the session's own streams.
    RecentOut(u8),
}

impl StreamSel {
    fn byte(self) -> u8 {
        match self {
            StreamSel::Control => 0,
            StreamSel::In(n) => 1 | (n << 2),
            StreamSel::Out(n) => 2 | (n << 2),
            StreamSel::RecentOut(k) => 3 | (k << 2),
        }
    }

    fn from_byte(b: u8) -> Self {
        match b & 3 {
            0 => StreamSel::Control,
            1 => StreamSel::In(b >> 2),
            2 => StreamSel::Out(b >> 2),
            _ => StreamSel::RecentOut(b >> 2),
        }
    }
}

/// One operation of a [`session`] script. Scripts are bytes: an opcode byte, then the
/// operation's argument bytes; a script ends where the bytes run out. Indices wrap around
/// whatever list they index, so every byte string is a valid script.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionOp {
    /// `handle_connected` as `side`, with the fixture's exporter or (if `!exporter_ok`)
    /// another one, so the peer's Hello fails channel binding.
    Connect {
        /// Our end of the connection.
        side: Side,
        /// Whether the exporter matches the fixture's Hellos.
        exporter_ok: bool,
    },
    /// `handle_data` with raw bytes (at most 255).
    Data {
        /// Where.
        stream: StreamSel,
        /// The peer finished the stream.
        fin: bool,
        /// What.
        data: Vec<u8>,
    },
    /// `handle_data` with a fixture frame, in two calls split at `split/256` of its length
    /// (0: one call).
    Frame {
        /// Where.
        stream: StreamSel,
        /// Which frame.
        frame: FixtureFrame,
        /// Where to split it.
        split: u8,
        /// The peer finished the stream after it.
        fin: bool,
    },
    /// `handle_data` with a fixture frame whose byte `at` (modulo its length) is XORed with
    /// `xor`, then fin.
    Mutate {
        /// Where.
        stream: StreamSel,
        /// Which frame.
        frame: FixtureFrame,
        /// Which byte.
        at: u16,
        /// The flip.
        xor: u8,
    },
    /// `handle_stream_reset` with `code`.
    Reset {
        /// Which stream.
        stream: StreamSel,
        /// The application error code.
        code: u8,
    },
    /// Time moves on by `4 * ms` milliseconds; then `handle_timeout`.
    Advance {
        /// A quarter of the step, in ms.
        ms: u16,
    },
    /// Time jumps to the next deadline from `poll_timeout` (if later); then `handle_timeout`.
    NextTimer,
    /// `handle_disconnected`.
    Disconnect,
    /// `send_envelope` of outbound fixture envelope `i` (sequences 1, 2, 3).
    SendEnvelope(u8),
    /// `send_receipt` of our asynchronous fixture receipt `i`.
    SendReceipt(u8),
    /// Answers the `event`-th pending event (oldest first) the way `how` says; see
    /// [`session`].
    Answer {
        /// Which pending event.
        event: u8,
        /// How to answer it.
        how: u8,
    },
    /// `refuse`s the stream of the `event`-th pending event with close code `code`.
    Refuse {
        /// Which pending event.
        event: u8,
        /// Index into the close-code registry.
        code: u8,
    },
    /// `close` with close code `code` (index into the registry).
    Close {
        /// Index into the close-code registry.
        code: u8,
    },
    /// `receipt_verified` for outbound envelope `envelope`, whether or not a receipt came.
    ReceiptVerified {
        /// Which outbound envelope.
        envelope: u8,
        /// The verdict.
        valid: bool,
    },
}

const OP_COUNT: u8 = 14;

impl SessionOp {
    /// Appends this operation's bytes to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            SessionOp::Connect { side, exporter_ok } => {
                out.extend([
                    0,
                    u8::from(*side == Side::Server) | (u8::from(!exporter_ok) << 1),
                ]);
            }
            SessionOp::Data { stream, fin, data } => {
                let data = &data[..data.len().min(255)];
                out.extend([1, stream.byte(), u8::from(*fin), data.len() as u8]);
                out.extend_from_slice(data);
            }
            SessionOp::Frame {
                stream,
                frame,
                split,
                fin,
            } => {
                out.extend([2, stream.byte(), *frame as u8, *split, u8::from(*fin)]);
            }
            SessionOp::Mutate {
                stream,
                frame,
                at,
                xor,
            } => {
                let [hi, lo] = at.to_be_bytes();
                out.extend([3, stream.byte(), *frame as u8, hi, lo, *xor]);
            }
            SessionOp::Reset { stream, code } => out.extend([4, stream.byte(), *code]),
            SessionOp::Advance { ms } => {
                let [hi, lo] = ms.to_be_bytes();
                out.extend([5, hi, lo]);
            }
            SessionOp::NextTimer => out.push(6),
            SessionOp::Disconnect => out.push(7),
            SessionOp::SendEnvelope(i) => out.extend([8, *i]),
            SessionOp::SendReceipt(i) => out.extend([9, *i]),
            SessionOp::Answer { event, how } => out.extend([10, *event, *how]),
            SessionOp::Refuse { event, code } => out.extend([11, *event, *code]),
            SessionOp::Close { code } => out.extend([12, *code]),
            SessionOp::ReceiptVerified { envelope, valid } => {
                out.extend([13, *envelope, u8::from(*valid)])
            }
        }
    }

    /// Reads one operation from the front of `data`; `None` when the script is over.
    pub(super) fn decode(data: &mut &[u8]) -> Option<SessionOp> {
        let mut r = Reader(data);
        Some(match r.byte()? % OP_COUNT {
            0 => {
                let flags = r.byte()?;
                SessionOp::Connect {
                    side: if flags & 1 == 0 {
                        Side::Client
                    } else {
                        Side::Server
                    },
                    exporter_ok: flags & 2 == 0,
                }
            }
            1 => {
                let stream = StreamSel::from_byte(r.byte()?);
                let fin = r.byte()? & 1 == 1;
                let len = r.byte()?;
                SessionOp::Data {
                    stream,
                    fin,
                    data: r.take(usize::from(len)).to_vec(),
                }
            }
            2 => SessionOp::Frame {
                stream: StreamSel::from_byte(r.byte()?),
                frame: FixtureFrame::from_byte(r.byte()?),
                split: r.byte()?,
                fin: r.byte()? & 1 == 1,
            },
            3 => SessionOp::Mutate {
                stream: StreamSel::from_byte(r.byte()?),
                frame: FixtureFrame::from_byte(r.byte()?),
                at: u16::from_be_bytes([r.byte()?, r.byte()?]),
                xor: r.byte()?,
            },
            4 => SessionOp::Reset {
                stream: StreamSel::from_byte(r.byte()?),
                code: r.byte()?,
            },
            5 => SessionOp::Advance {
                ms: u16::from_be_bytes([r.byte()?, r.byte()?]),
            },
            6 => SessionOp::NextTimer,
            7 => SessionOp::Disconnect,
            8 => SessionOp::SendEnvelope(r.byte()?),
            9 => SessionOp::SendReceipt(r.byte()?),
            10 => SessionOp::Answer {
                event: r.byte()?,
                how: r.byte()?,
            },
            11 => SessionOp::Refuse {
                event: r.byte()?,
                code: r.byte()?,
            },
            12 => SessionOp::Close { code: r.byte()? },
            _ => SessionOp::ReceiptVerified {
                envelope: r.byte()?,
                valid: r.byte()? & 1 == 1,
            },
        })
    }
}

/// Reads a script from the front of a slice, advancing it.
struct Reader<'a, 'b>(&'b mut &'a [u8]);

impl<'a> Reader<'a, '_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        *self.0 = rest;
        Some(b)
    }

    /// Up to `n` bytes (fewer if the script ends).
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        *self.0 = rest;
        head
    }
}

/// Encodes a session script.
pub fn session_script(ops: &[SessionOp]) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops {
        op.encode(&mut out);
    }
    out
}
