//! Bundle updates on a live link (SPEC.md §4.4.4): our current bundle, sent to the peer in a
//! BundleUpdate frame when version 2 was negotiated (at each link-up, and at once when it
//! changes); the peer's, checked and handed to the application, which answers with
//! [`Session::bundle_accepted`] once it holds it durably. This is how a new TLS key reaches the
//! peer before it is used (§3.6.1).

use prost::Message;

use super::{Event, Monotonic, Session, StreamId, Transmit};
use crate::bundle::PeerBundle;
use crate::canonical;
use crate::codes::CloseCode;
use crate::frame::{self, FrameType};
use crate::wire;

/// BundleUpdate and BundleAccepted frames the peer may send: four at once, then one a minute
/// (SPEC.md §13.2).
pub(super) const BUNDLE_BURST: u32 = 4;
/// Seconds one token takes to come back.
pub(super) const BUNDLE_REFILL_S: u64 = 60;

/// Our bundle, and whether the peer was sent it on the current connection.
#[derive(Default)]
pub(super) struct OurBundle {
    current: Option<PeerBundle>,
    told: bool,
}

impl OurBundle {
    /// A new connection: not told yet.
    pub(super) fn reset(&mut self) {
        self.told = false;
    }
}

impl Session {
    /// Our current bundle (SPEC.md §4.4.4): sent to the peer at once if the link is up with
    /// version 2 and it differs from what was sent on this connection, else at the next link-up
    /// (every link-up sends it). Returns whether a BundleUpdate was queued now.
    pub fn set_bundle(&mut self, _now: Monotonic, bundle: PeerBundle) -> bool {
        if self.our_bundle.current.as_ref() != Some(&bundle) {
            self.our_bundle.current = Some(bundle);
            self.our_bundle.told = false;
        }
        self.announce_bundle()
    }

    /// On a version 2 link, sends our bundle if it was not sent on this connection.
    pub(super) fn announce_bundle(&mut self) -> bool {
        if !self.speaks_v2() || self.our_bundle.told {
            return false;
        }
        let Some(b) = &self.our_bundle.current else {
            return false;
        };
        let payload = wire::BundleUpdate {
            bundle: b.bytes().clone(),
        }
        .encode_to_vec();
        self.our_bundle.told = true;
        self.transmits.push_back(Transmit::Data {
            stream: StreamId::Control,
            data: frame::encode(FrameType::BundleUpdate, &payload),
            fin: false,
        });
        true
    }

    /// The application holds the peer's bundle whose SHA-256 is `bundle_sha256` durably (the
    /// one of a [`Event::PeerBundle`], or the one it held already): the peer is told, if the
    /// link is up with version 2. Returns whether a BundleAccepted was queued.
    pub fn bundle_accepted(&mut self, _now: Monotonic, bundle_sha256: [u8; 32]) -> bool {
        if !self.speaks_v2() {
            return false;
        }
        let payload = wire::BundleAccepted {
            bundle_sha256: bundle_sha256.to_vec().into(),
        }
        .encode_to_vec();
        self.transmits.push_back(Transmit::Data {
            stream: StreamId::Control,
            data: frame::encode(FrameType::BundleAccepted, &payload),
            fin: false,
        });
        true
    }

    /// A BundleUpdate frame from the peer (the link is up).
    pub(super) fn peer_bundle_update(&mut self, now: Monotonic, payload: &[u8]) {
        if !self.speaks_v2() {
            return self.fail(
                CloseCode::UnexpectedFrame,
                "BundleUpdate on a version 1 link",
            );
        }
        if !self.bundle_limiter.allow(now) {
            return self.fail(CloseCode::RateLimited, "too many BundleUpdate frames");
        }
        match verify_bundle_update(payload, &self.peer) {
            Ok(b) => self.events.push_back(Event::PeerBundle(Box::new(b))),
            Err(why) => self.fail(CloseCode::MalformedFrame, why),
        }
    }

    /// A BundleAccepted frame from the peer (the link is up).
    pub(super) fn peer_bundle_accepted(&mut self, now: Monotonic, payload: &[u8]) {
        if !self.speaks_v2() {
            return self.fail(
                CloseCode::UnexpectedFrame,
                "BundleAccepted on a version 1 link",
            );
        }
        if !self.bundle_limiter.allow(now) {
            return self.fail(CloseCode::RateLimited, "too many BundleAccepted frames");
        }
        match verify_bundle_accepted(payload) {
            Ok(sha) => self.events.push_back(Event::BundleAccepted(sha)),
            Err(why) => self.fail(CloseCode::MalformedFrame, why),
        }
    }
}

/// Checks a BundleUpdate payload from `peer` (SPEC.md §4.4.4): canonical, and its bundle
/// verifies (§4.4.3) with `peer`'s identity.
pub fn verify_bundle_update(
    payload: &[u8],
    peer: &crate::identity::NodeId,
) -> Result<PeerBundle, &'static str> {
    let u =
        canonical::decode::<wire::BundleUpdate>(payload).ok_or("BundleUpdate is not canonical")?;
    let b = PeerBundle::from_bytes(&u.bundle)
        .map_err(|_| "BundleUpdate carries a bundle that does not verify")?;
    if b.identity() != *peer {
        return Err("BundleUpdate carries another node's bundle");
    }
    Ok(b)
}

/// Checks a BundleAccepted payload (SPEC.md §4.4.4): canonical, a 32-byte digest.
pub fn verify_bundle_accepted(payload: &[u8]) -> Result<[u8; 32], &'static str> {
    let a = canonical::decode::<wire::BundleAccepted>(payload)
        .ok_or("BundleAccepted is not canonical")?;
    a.bundle_sha256
        .as_ref()
        .try_into()
        .map_err(|_| "BundleAccepted digest is not 32 bytes")
}
