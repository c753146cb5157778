//! Items this side must get the peer to take: envelopes (answered by a receipt) and
//! asynchronous receipts (answered by ReceiptStored). Each has a retransmit deadline while in
//! flight and a backoff after a failed attempt; the queue sends receipts first, then envelopes
//! FLASH first, ascending sequence within a precedence.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::Monotonic;
use crate::envelope::{Envelope, MessageId};
use crate::receipt::Receipt;

/// What identifies an outgoing item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemKey {
    /// An envelope, by message id.
    Envelope(MessageId),
    /// An asynchronous receipt, by the SHA-256 of its bytes.
    Receipt([u8; 32]),
}

/// An outgoing item.
#[derive(Clone, Debug)]
pub enum Item {
    /// An envelope awaiting its receipt.
    Envelope(Envelope),
    /// A receipt awaiting ReceiptStored.
    Receipt(Receipt),
}

impl Item {
    pub(crate) fn key(&self) -> ItemKey {
        match self {
            Item::Envelope(e) => ItemKey::Envelope(*e.message_id()),
            Item::Receipt(r) => ItemKey::Receipt(*r.sha256()),
        }
    }

    /// Queue order: receipts (0) before envelopes; then precedence; then sequence.
    fn order(&self) -> (u8, u8, u64) {
        match self {
            Item::Receipt(r) => (0, 0, r.sequence()),
            Item::Envelope(e) => (1, e.header().precedence as u8, e.header().sequence),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    Queued,
    Delayed(Monotonic),
    InFlight {
        stream: u64,
        deadline: Monotonic,
    },
    /// The answer arrived and the application is verifying it.
    Verifying {
        stream: u64,
    },
}

#[derive(Debug)]
struct Entry {
    item: Item,
    state: State,
    attempts: u32,
}

/// The outgoing table.
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    jitter: Jitter,
    entries: HashMap<ItemKey, Entry>,
    queue: BTreeSet<((u8, u8, u64), ItemKey)>,
    delayed: BTreeSet<(Monotonic, ItemKey)>,
    deadlines: BTreeSet<(Monotonic, ItemKey)>,
    by_stream: BTreeMap<u64, ItemKey>,
}

/// First retry delay after a failed attempt; doubles up to [`MAX_BACKOFF`].
pub(crate) const BASE_BACKOFF: u64 = 250;
/// Longest nominal retry delay (before jitter).
pub(crate) const MAX_BACKOFF: u64 = 30_000;

/// The delay before attempt `attempts + 1` after `attempts` failed ones (SPEC.md §9.7):
/// `min(30000, 250 * 2^(attempts-1))` ms, spread by a factor uniform in 0.75..=1.25 so that
/// items that failed together (a batch whose receipts all timed out, a RATE_LIMITED burst) are
/// not all sent again in the same instant. `unit` is a uniform random number.
pub(crate) fn backoff(attempts: u32, unit: u64) -> u64 {
    let shift = attempts.saturating_sub(1).min(16);
    let nominal = BASE_BACKOFF.saturating_mul(1 << shift).min(MAX_BACKOFF);
    let (lo, hi) = (nominal - nominal / 4, nominal + nominal / 4);
    lo + unit % (hi - lo + 1)
}

/// The randomness of the backoff jitter: SplitMix64 from a seed the session is given
/// (`Config::jitter_seed`), so a simulation replays exactly. Not secret: jitter only keeps
/// retries apart.
#[derive(Debug, Default)]
pub(crate) struct Jitter(u64);

impl Jitter {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Outgoing {
    /// An empty table whose backoff jitter is drawn from `seed`.
    pub(crate) fn with_jitter_seed(seed: u64) -> Self {
        Outgoing {
            jitter: Jitter(seed),
            ..Outgoing::default()
        }
    }

    /// Adds an item; false if an item with the same key is already pending.
    pub(crate) fn push(&mut self, item: Item) -> bool {
        let key = item.key();
        if self.entries.contains_key(&key) {
            return false;
        }
        self.queue.insert((item.order(), key));
        self.entries.insert(
            key,
            Entry {
                item,
                state: State::Queued,
                attempts: 0,
            },
        );
        true
    }

    /// The next item ready to send, if any.
    pub(crate) fn next_ready(&self) -> Option<ItemKey> {
        self.queue.iter().next().map(|(_, k)| *k)
    }

    /// Marks `key` sent on `stream` with a receipt deadline; returns the item.
    pub(crate) fn start(&mut self, key: ItemKey, stream: u64, deadline: Monotonic) -> Option<Item> {
        let e = self.entries.get_mut(&key)?;
        if e.state != State::Queued {
            return None;
        }
        self.queue.remove(&(e.item.order(), key));
        e.state = State::InFlight { stream, deadline };
        e.attempts = e.attempts.saturating_add(1);
        self.deadlines.insert((deadline, key));
        self.by_stream.insert(stream, key);
        Some(e.item.clone())
    }

    /// Removes an item that was never written to a stream (queued since it was pushed, no
    /// attempt made). `Err(())` if an attempt was made: its bytes may have reached the peer.
    /// `None` if no such item is pending.
    pub(crate) fn withdraw(&mut self, key: ItemKey) -> Option<Result<Item, ()>> {
        let e = self.entries.get(&key)?;
        if e.attempts != 0 || e.state != State::Queued {
            return Some(Err(()));
        }
        let e = self.entries.remove(&key)?;
        self.unlink(key, &e);
        Some(Ok(e.item))
    }

    /// The item in flight on `stream`.
    pub(crate) fn on_stream(&self, stream: u64) -> Option<(ItemKey, &Item, State)> {
        let key = self.by_stream.get(&stream)?;
        self.entries.get(key).map(|e| (*key, &e.item, e.state))
    }

    /// The answer for `key` arrived; it is being verified.
    pub(crate) fn answered(&mut self, key: ItemKey) {
        if let Some(e) = self.entries.get_mut(&key)
            && let State::InFlight { stream, deadline } = e.state
        {
            self.deadlines.remove(&(deadline, key));
            e.state = State::Verifying { stream };
        }
    }

    /// The item is done: remove it.
    pub(crate) fn complete(&mut self, key: ItemKey) -> Option<Item> {
        let e = self.entries.remove(&key)?;
        self.unlink(key, &e);
        Some(e.item)
    }

    /// The attempt failed: retry after a backoff (or at once with `immediately`).
    /// Returns the stream the attempt used, if any.
    pub(crate) fn retry(&mut self, key: ItemKey, now: Monotonic, immediately: bool) -> Option<u64> {
        let e = self.entries.get_mut(&key)?;
        let stream = match e.state {
            State::InFlight { stream, .. } | State::Verifying { stream } => Some(stream),
            _ => None,
        };
        let old = core::mem::replace(&mut e.state, State::Queued);
        let attempts = e.attempts;
        let order = e.item.order();
        match old {
            State::InFlight { stream, deadline } => {
                self.deadlines.remove(&(deadline, key));
                self.by_stream.remove(&stream);
            }
            State::Verifying { stream } => {
                self.by_stream.remove(&stream);
            }
            State::Delayed(at) => {
                self.delayed.remove(&(at, key));
            }
            State::Queued => {
                self.queue.remove(&(order, key));
            }
        }
        if immediately {
            self.queue.insert((order, key));
        } else {
            let at = now.after(backoff(attempts, self.jitter.next()));
            if let Some(e) = self.entries.get_mut(&key) {
                e.state = State::Delayed(at);
            }
            self.delayed.insert((at, key));
        }
        stream
    }

    /// Moves every in-flight or verifying item back to the queue (the connection is gone);
    /// attempt counters are kept.
    pub(crate) fn requeue_all(&mut self) {
        let keys: Vec<ItemKey> = self.entries.keys().copied().collect();
        for key in keys {
            if let Some(e) = self.entries.get(&key)
                && matches!(
                    e.state,
                    State::InFlight { .. } | State::Verifying { .. } | State::Delayed(_)
                )
            {
                self.retry(key, Monotonic::default(), true);
            }
        }
    }

    /// Moves delayed items whose time has come to the queue.
    pub(crate) fn release_delayed(&mut self, now: Monotonic) {
        while let Some(&(at, key)) = self.delayed.iter().next() {
            if at > now {
                break;
            }
            self.delayed.remove(&(at, key));
            if let Some(e) = self.entries.get_mut(&key) {
                e.state = State::Queued;
                self.queue.insert((e.item.order(), key));
            }
        }
    }

    /// In-flight items whose deadline passed.
    pub(crate) fn overdue(&self, now: Monotonic) -> Vec<ItemKey> {
        self.deadlines
            .iter()
            .take_while(|(d, _)| *d <= now)
            .map(|(_, k)| *k)
            .collect()
    }

    /// The next deadline or delayed-release time.
    pub(crate) fn next_deadline(&self) -> Option<Monotonic> {
        let a = self.deadlines.iter().next().map(|(d, _)| *d);
        let b = self.delayed.iter().next().map(|(d, _)| *d);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Every pending envelope (queued, delayed, in flight or being verified).
    pub(crate) fn envelopes(&self) -> impl Iterator<Item = &Envelope> {
        self.entries.values().filter_map(|e| match &e.item {
            Item::Envelope(env) => Some(env),
            Item::Receipt(_) => None,
        })
    }

    /// How many items are in flight or being verified.
    pub(crate) fn in_flight(&self) -> usize {
        self.by_stream.len()
    }

    /// How many items are pending in total.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn unlink(&mut self, key: ItemKey, e: &Entry) {
        match e.state {
            State::Queued => {
                self.queue.remove(&(e.item.order(), key));
            }
            State::Delayed(at) => {
                self.delayed.remove(&(at, key));
            }
            State::InFlight { stream, deadline } => {
                self.deadlines.remove(&(deadline, key));
                self.by_stream.remove(&stream);
            }
            State::Verifying { stream } => {
                self.by_stream.remove(&stream);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Jitter, MAX_BACKOFF, backoff};

    /// SPEC.md §9.7: the nominal delays 250 ms, 500 ms, 1 s, … capped at 30 s, each spread
    /// over ±25 %, and not all alike.
    #[test]
    fn backoff_doubles_to_the_cap_with_a_quarter_of_jitter_either_way() {
        let mut j = Jitter(7);
        for (attempts, nominal) in [(1, 250), (2, 500), (3, 1000), (8, 30_000), (40, 30_000)] {
            let delays: Vec<u64> = (0..200).map(|_| backoff(attempts, j.next())).collect();
            let (lo, hi) = (nominal * 3 / 4, nominal * 5 / 4);
            assert!(
                delays.iter().all(|d| (lo..=hi).contains(d)),
                "attempt {attempts}: {delays:?} outside {lo}..={hi}"
            );
            let min = delays.iter().min().copied().unwrap_or(0);
            let max = delays.iter().max().copied().unwrap_or(0);
            assert!(
                max - min > (hi - lo) / 2,
                "attempt {attempts}: delays barely spread ({min}..={max})"
            );
        }
        assert_eq!((backoff(1, 0), backoff(1, 124)), (188, 312));
        assert_eq!(
            (backoff(30, 0), backoff(30, 15_000)),
            (MAX_BACKOFF * 3 / 4, MAX_BACKOFF * 5 / 4)
        );
    }
}
