//! The receiver's in-memory window of recent message ids and the receipts sent for them.
//!
//! It answers a replay (same id, same bytes) with the original receipt without touching the
//! store. It is only a cache: the node's durable store is the authority for dedup, and on a
//! miss the envelope goes to the application, which consults the store.

use std::collections::{HashMap, VecDeque};

use crate::envelope::MessageId;
use crate::receipt::Receipt;

/// A bounded map of message id → (envelope SHA-256, receipt), evicting the oldest.
#[derive(Debug)]
pub struct DedupWindow {
    capacity: usize,
    order: VecDeque<MessageId>,
    entries: HashMap<MessageId, Receipt>,
}

/// What the window knows about an arriving envelope.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen<'a> {
    /// Not in the window.
    Unknown,
    /// Same id, same bytes: here is the original receipt.
    Replay(&'a Receipt),
    /// Same id, different bytes.
    Conflict,
}

impl DedupWindow {
    /// A window holding up to `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        DedupWindow {
            capacity,
            order: VecDeque::new(),
            entries: HashMap::new(),
        }
    }

    /// Looks an arriving envelope up.
    pub fn check(&self, id: &MessageId, envelope_sha256: &[u8; 32]) -> Seen<'_> {
        match self.entries.get(id) {
            None => Seen::Unknown,
            Some(r) if r.envelope_sha256() == envelope_sha256 => Seen::Replay(r),
            Some(_) => Seen::Conflict,
        }
    }

    /// Records the receipt sent for an envelope that was accepted (DELIVERED).
    pub fn record(&mut self, receipt: &Receipt) {
        if self.capacity == 0 {
            return;
        }
        let id = *receipt.message_id();
        if self.entries.insert(id, receipt.clone()).is_none() {
            self.order.push_back(id);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.entries.remove(&old);
                }
            }
        }
    }

    /// Number of ids held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
