//! Revocations on a live link (SPEC.md §4.6.2): ours, sent to the peer in Revocations frames
//! when version 2 was negotiated (all of them at link-up, new ones at once); and the peer's,
//! checked and handed to the application.

use std::collections::HashSet;

use super::{Event, Monotonic, Session, StreamId, Transmit};
use crate::codes::CloseCode;
use crate::frame::{self, FrameType};
use crate::revocation::{self, MAX_PER_FRAME, Revocation};

/// Most revocations a node announces (and a peer takes from it on one connection): 64 frames.
pub const MAX_REVOCATIONS: usize = 1024;
/// Revocations frames the peer may send: 64 at once (every revocation it may have, at
/// link-up), then one a minute (SPEC.md §13.2).
pub(super) const REVOCATION_BURST: u32 = (MAX_REVOCATIONS / MAX_PER_FRAME) as u32;
/// Seconds one Revocations token takes to come back.
pub(super) const REVOCATION_REFILL_S: u64 = 60;

/// Our revocations and which of them the peer was told on the current connection.
#[derive(Default)]
pub(super) struct OurRevocations {
    all: Vec<Revocation>,
    told: HashSet<[u8; 32]>,
}

impl OurRevocations {
    /// A new connection: nothing told yet.
    pub(super) fn reset(&mut self) {
        self.told.clear();
    }
}

impl Session {
    /// The revocations this node issued (SPEC.md §4.6): the peer is told every one it was not
    /// yet told on this connection, at once if the link is up with version 2, else when it
    /// comes up. At most [`MAX_REVOCATIONS`] are kept (the newest are dropped beyond that:
    /// a node does not issue more, §4.6.1). Returns how many were sent now.
    pub fn set_revocations(&mut self, _now: Monotonic, mut revocations: Vec<Revocation>) -> usize {
        revocations.truncate(MAX_REVOCATIONS);
        self.our_revocations.all = revocations;
        self.announce_revocations()
    }

    /// On a version 2 link, sends the revocations the peer was not yet told on this
    /// connection, 16 to a frame. How many were sent.
    pub(super) fn announce_revocations(&mut self) -> usize {
        if !self.speaks_v2() {
            return 0;
        }
        let ours = &mut self.our_revocations;
        let untold: Vec<Revocation> = ours
            .all
            .iter()
            .filter(|r| !ours.told.contains(&r.sha256()))
            .cloned()
            .collect();
        for chunk in untold.chunks(MAX_PER_FRAME) {
            let payload = revocation::frame_payload(chunk);
            self.transmits.push_back(Transmit::Data {
                stream: StreamId::Control,
                data: frame::encode(FrameType::Revocations, &payload),
                fin: false,
            });
        }
        self.our_revocations
            .told
            .extend(untold.iter().map(Revocation::sha256));
        untold.len()
    }

    /// A Revocations frame from the peer (the link is up).
    pub(super) fn peer_revocations(&mut self, now: Monotonic, payload: &[u8]) {
        if !self.speaks_v2() {
            return self.fail(
                CloseCode::UnexpectedFrame,
                "Revocations on a version 1 link",
            );
        }
        if !self.revocation_limiter.allow(now) {
            return self.fail(CloseCode::RateLimited, "too many Revocations frames");
        }
        match revocation::verify_frame(payload, &self.peer) {
            Ok(revs) => self.events.push_back(Event::PeerRevocations(revs)),
            Err(why) => self.fail(CloseCode::MalformedFrame, why),
        }
    }
}
