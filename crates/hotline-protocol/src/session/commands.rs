//! The application's commands: queueing items, answering the peer's streams, closing; and
//! sending queued items as stream credit allows.

use super::outgoing::Item;
use super::streams::Incoming;
use super::timers::Timer;
use super::{Event, ItemKey, LinkState, Monotonic, Session, StreamId, Transmit, Withdrawal};
use crate::codes::CloseCode;
use crate::envelope::{Envelope, MessageId};
use crate::frame::{self, FrameType};
use crate::receipt::{self, Receipt};

impl Session {
    // ----- commands ------------------------------------------------------------------

    /// Sends a heartbeat now (if the link is up), e.g. to find out at once whether a
    /// connection is still alive when the peer seems to have reconnected. Probes keep within
    /// the ping limit of SPEC.md §13.2 (a burst of 16, then 4 a second): beyond it the
    /// probe is skipped, as the pings already sent answer the same question.
    pub fn probe(&mut self, now: Monotonic) {
        if self.state == LinkState::Up && self.ping_budget.allow(now) {
            self.send_heartbeat(now);
        }
    }

    /// Queues an envelope (already durably in the outbox). Sent when the link is up, in
    /// precedence order; kept until [`Session::receipt_verified`] says a valid receipt came.
    pub fn send_envelope(&mut self, now: Monotonic, envelope: Envelope) {
        self.outgoing.push(Item::Envelope(envelope));
        self.pump(now);
    }

    /// Withdraws a queued envelope that was never written to a stream (an operator cancelled
    /// the message): it is forgotten and will not be sent. An envelope that was written at
    /// least once, on this connection or an earlier one, may have reached the peer and is
    /// kept.
    pub fn withdraw_envelope(&mut self, message_id: &MessageId) -> Withdrawal {
        match self.outgoing.withdraw(ItemKey::Envelope(*message_id)) {
            None => Withdrawal::NotHeld,
            Some(Err(())) => Withdrawal::MayHaveLeft,
            Some(Ok(_)) => Withdrawal::Withdrawn,
        }
    }

    /// Queues an asynchronous receipt (ACKNOWLEDGED, already durably stored), kept until the
    /// peer answers ReceiptStored.
    pub fn send_receipt(&mut self, now: Monotonic, receipt: Receipt) {
        self.outgoing.push(Item::Receipt(receipt));
        self.pump(now);
    }

    /// Answers an [`Event::Envelope`] or [`Event::MalformedEnvelope`] with its (durably
    /// stored, where DELIVERED) receipt, and finishes the stream.
    pub fn respond(&mut self, now: Monotonic, stream: StreamId, receipt: &Receipt) {
        let Some(Incoming::Awaiting { envelope }) = self.incoming.remove(&stream) else {
            return;
        };
        self.finish_in(stream);
        let _ = now;
        if let Some((id, seq)) = envelope
            && receipt.message_id() == &id
            && receipt.kind().counts_as_received()
        {
            self.mark_received(seq);
        }
        if receipt.kind().is_delivery() {
            self.dedup.record(receipt);
        }
        if self.state == LinkState::Up {
            self.transmits.push_back(Transmit::Data {
                stream,
                data: frame::encode(FrameType::Receipt, receipt.bytes()),
                fin: true,
            });
        }
    }

    /// Answers an [`Event::AsyncReceipt`]: the receipt is stored.
    pub fn respond_stored(&mut self, stream: StreamId, receipt_sha256: &[u8; 32]) {
        self.finish_in(stream);
        if self.incoming.remove(&stream).is_some() && self.state == LinkState::Up {
            self.transmits.push_back(Transmit::Data {
                stream,
                data: frame::encode(
                    FrameType::ReceiptStored,
                    &receipt::stored_ack(receipt_sha256),
                ),
                fin: true,
            });
        }
    }

    /// Refuses an incoming stream with `code` (e.g. UNKNOWN_MESSAGE, BAD_RECEIPT,
    /// RATE_LIMITED, INTERNAL_ERROR).
    pub fn refuse(&mut self, stream: StreamId, code: CloseCode) {
        self.finish_in(stream);
        if self.incoming.remove(&stream).is_some() && self.state == LinkState::Up {
            self.transmits
                .push_back(Transmit::ResetStream { stream, code });
        }
    }

    /// Reports the application's verdict on an [`Event::Receipt`]: `valid` means the receipt
    /// verified, answers the envelope and is durably stored; the envelope is then done
    /// (DELIVERED, ACKNOWLEDGED or REJECTED). Otherwise it is sent again after a backoff.
    pub fn receipt_verified(&mut self, now: Monotonic, message_id: &MessageId, valid: bool) {
        let key = ItemKey::Envelope(*message_id);
        if valid {
            self.outgoing.complete(key);
        } else {
            self.outgoing.retry(key, now, false);
            self.events.push_back(Event::Retransmit { key });
        }
        self.arm_retransmit();
        self.pump(now);
    }

    /// Closes the connection with `code` (e.g. SHUTDOWN, DUPLICATE_CONNECTION).
    pub fn close(&mut self, now: Monotonic, code: CloseCode, reason: &str) {
        let _ = now;
        if matches!(self.state, LinkState::Up | LinkState::Handshaking) {
            // `fail` sends the Close frame first (SPEC.md §3.8).
            self.fail(code, reason);
        }
    }

    // ----- internals -----------------------------------------------------------------

    /// Sends queued items while the link is up and stream credit remains.
    pub(super) fn pump(&mut self, now: Monotonic) {
        if self.state != LinkState::Up {
            return;
        }
        while self.outgoing.in_flight() < self.max_outgoing {
            let Some(key) = self.outgoing.next_ready() else {
                break;
            };
            let n = self.next_out;
            self.next_out += 1;
            let Some(item) = self
                .outgoing
                .start(key, n, now.after(self.config.receipt_timeout))
            else {
                break;
            };
            let (ty, bytes) = match &item {
                Item::Envelope(e) => {
                    self.last_sent = self.last_sent.max(e.header().sequence);
                    (FrameType::Envelope, e.bytes())
                }
                Item::Receipt(r) => (FrameType::Receipt, r.bytes()),
            };
            self.transmits.push_back(Transmit::Data {
                stream: StreamId::Out(n),
                data: frame::encode(ty, bytes),
                fin: true,
            });
        }
        self.arm_retransmit();
    }

    pub(super) fn arm_retransmit(&mut self) {
        self.timers
            .set_opt(Timer::Retransmit, self.outgoing.next_deadline());
    }
}
