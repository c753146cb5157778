//! Encryption keys changed while the link is up (SPEC.md §4.3.5): our own, announced to the
//! peer in a KeyUpdate frame when version 2 was negotiated; and the peer's, taken from its
//! KeyUpdate frames.

use prost::Message;

use super::{Event, LinkState, Monotonic, Session, StreamId, Transmit};
use crate::canonical;
use crate::codes::CloseCode;
use crate::frame::{self, FrameType};
use crate::identity::EncryptionKey;
use crate::wire;

/// Most keys a Hello or a KeyUpdate carries (SPEC.md §4.3.4).
pub const MAX_ANNOUNCED_KEYS: usize = 4;

/// KeyUpdate frames the peer may send: one a minute on average, four at once (SPEC.md §13.2).
pub(super) const KEY_UPDATE_BURST: u32 = 4;
/// Seconds one KeyUpdate token takes to come back.
pub(super) const KEY_UPDATE_REFILL_S: u64 = 60;

impl Session {
    /// Our encryption key certificates changed (a rotation, SPEC.md §4.3.4): the next Hello
    /// carries `keys`, and if the link is up with version 2 the peer is told at once in a
    /// KeyUpdate frame. Returns whether a KeyUpdate was queued; a link up with version 1
    /// learns the keys only from the next connection's Hello. Between 1 and 4 keys are
    /// announced: extra ones are dropped (the oldest by `not_before`), and an empty list
    /// leaves the keys as they were.
    pub fn update_keys(&mut self, _now: Monotonic, mut keys: Vec<EncryptionKey>) -> bool {
        if keys.is_empty() {
            return false;
        }
        keys.sort_by_key(|k| core::cmp::Reverse((k.not_before(), k.not_after())));
        keys.truncate(MAX_ANNOUNCED_KEYS);
        if keys == self.our_keys {
            return false;
        }
        self.our_keys = keys;
        self.announce_keys_if_changed()
    }

    /// On a version 2 link, tells the peer our keys if they differ from what it was told on
    /// this connection (in our Hello, or a KeyUpdate): also right after the link comes up, for
    /// keys that changed while our Hello was on its way. Whether a KeyUpdate was queued.
    pub(super) fn announce_keys_if_changed(&mut self) -> bool {
        if !self.speaks_v2() || self.told_keys == self.our_keys {
            return false;
        }
        self.told_keys = self.our_keys.clone();
        let payload = key_update_payload(&self.our_keys);
        self.transmits.push_back(Transmit::Data {
            stream: StreamId::Control,
            data: frame::encode(FrameType::KeyUpdate, &payload),
            fin: false,
        });
        true
    }

    /// Whether the link is up with protocol version 2 or later.
    pub fn speaks_v2(&self) -> bool {
        self.state == LinkState::Up
            && self
                .peer_hello
                .as_ref()
                .is_some_and(|h| h.version >= crate::PROTOCOL_VERSION_2)
    }

    /// A KeyUpdate frame from the peer (the link is up).
    pub(super) fn peer_key_update(&mut self, now: Monotonic, payload: &[u8]) {
        if !self.speaks_v2() {
            return self.fail(CloseCode::UnexpectedFrame, "KeyUpdate on a version 1 link");
        }
        if !self.key_update_limiter.allow(now) {
            return self.fail(CloseCode::RateLimited, "too many KeyUpdate frames");
        }
        match verify_key_update(payload, &self.peer) {
            Ok(keys) => {
                if let Some(h) = self.peer_hello.as_mut() {
                    h.encryption_keys = keys.clone();
                }
                self.events.push_back(Event::PeerKeys(keys));
            }
            Err(why) => self.fail(CloseCode::MalformedFrame, why),
        }
    }
}

/// The payload of a KeyUpdate frame announcing `keys`.
pub fn key_update_payload(keys: &[EncryptionKey]) -> Vec<u8> {
    wire::KeyUpdate {
        encryption_keys: keys.iter().map(EncryptionKey::to_wire).collect(),
    }
    .encode_to_vec()
}

/// Checks a KeyUpdate payload from `peer` (SPEC.md §4.3.5): canonical, 1..=4 keys, each a
/// valid certificate of `peer`'s.
pub fn verify_key_update(
    payload: &[u8],
    peer: &crate::identity::NodeId,
) -> Result<Vec<EncryptionKey>, &'static str> {
    let update =
        canonical::decode::<wire::KeyUpdate>(payload).ok_or("KeyUpdate is not canonical")?;
    if update.encryption_keys.is_empty() || update.encryption_keys.len() > MAX_ANNOUNCED_KEYS {
        return Err("KeyUpdate must carry 1 to 4 keys");
    }
    update
        .encryption_keys
        .iter()
        .map(|k| EncryptionKey::verify(k, peer))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "KeyUpdate carries a key that does not verify")
}
