//! Message streams: reading the envelopes and receipts the peer opens streams with, and the
//! answers that arrive on the streams we opened.

use bytes::Bytes;

use super::outgoing::{Item, State};
use super::{Event, ItemKey, LinkState, Monotonic, Seen, Session, StreamId, Transmit};
use crate::codes::CloseCode;
use crate::envelope::{Envelope, MessageId, ParseError};
use crate::frame::{Decoder, Frame, FrameType, StreamKind};
use crate::receipt;

#[derive(Debug)]
pub(super) enum Incoming {
    /// Reading the first frame.
    Reading(Decoder),
    /// An envelope or receipt was handed to the application; waiting for its answer.
    Awaiting { envelope: Option<(MessageId, u64)> },
}

/// How many answered or refused peer streams are remembered.
const MAX_FINISHED_IN: usize = 4096;
/// Most frames held while waiting for the peer's Hello.
const MAX_HELD: usize = 1024;

impl Session {
    // ----- inputs --------------------------------------------------------------------

    /// The peer reset or stopped `stream` with `code` (or the driver failed to use it).
    pub fn handle_stream_reset(&mut self, now: Monotonic, stream: StreamId, code: u64) {
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

    // ----- internals -----------------------------------------------------------------

    /// Remembers that a peer-opened stream is done with.
    pub(super) fn finish_in(&mut self, stream: StreamId) {
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

    pub(super) fn in_data(&mut self, now: Monotonic, stream: StreamId, data: &[u8], fin: bool) {
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
    pub(super) fn message_frame(&mut self, now: Monotonic, stream: StreamId, f: Frame) {
        match f.ty {
            // Every envelope or receipt stream takes a token from one bucket, whatever it
            // carries (SPEC.md §13.2): a replay answered from the dedup window, an unreadable
            // envelope, a receipt that will not verify too.
            FrameType::Envelope | FrameType::Receipt if !self.limiter.allow(now) => self
                .stream_error(
                    stream,
                    CloseCode::RateLimited,
                    format!("the peer is over its rate limit ({:?} stream)", f.ty),
                ),
            // And its bytes from a byte budget: a peer cannot push large frames at the full
            // stream rate.
            FrameType::Envelope | FrameType::Receipt
                if !self
                    .byte_limiter
                    .allow_n(now, (crate::frame::HEADER_LEN + f.payload.len()) as u64) =>
            {
                self.stream_error(
                    stream,
                    CloseCode::RateLimited,
                    format!("the peer is over its byte rate ({:?} stream)", f.ty),
                )
            }
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
                    detail,
                    ..
                }) => {
                    // The receipt names the peer of this connection as the sender (SPEC.md
                    // §8.1): it is authenticated; the header's `sender` bytes are not, and may
                    // be anyone's id or 20 KB of anything.
                    self.events.push_back(Event::MalformedEnvelope {
                        stream,
                        subject: receipt::Subject {
                            message_id,
                            envelope_sha256: crate::crypto::sha256(&f.payload),
                            sender: Bytes::copy_from_slice(self.peer.as_bytes()),
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
    pub(super) fn out_data(&mut self, now: Monotonic, n: u64, data: &[u8], fin: bool) {
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
        now: Monotonic,
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
}
