//! TLS keys in the harness (SPEC.md §3.6.1, §4.4.4): each node presents a TLS key (its SPKI
//! digest) and accepts a set of pins for its peer; a connection opens only if each side's key is
//! one the other accepts. A node rotates its TLS key by sending a new bundle in a BundleUpdate
//! and switching once the peer has accepted it; the peer drops the old pin when a connection
//! shows the new one.

use crate::bundle::PeerBundle;
use crate::crypto;
use crate::time::UnixMillis;

use super::{SimNode, TestRng};

impl SimNode {
    /// Makes a new TLS key and announces it in a new bundle (`hotlined keys rotate --tls`); the
    /// node keeps presenting its current key until the peer has accepted the bundle.
    pub fn rotate_tls(&mut self, at: UnixMillis, rng: &mut TestRng) -> [u8; 32] {
        let spki = crypto::sha256(&rng.id16());
        let now = self.wall(at);
        let keys = crate::keyring::announced(&self.keys, now);
        let created = now.max(self.own_bundle_created + 1);
        let bundle =
            PeerBundle::create(&self.identity, "sim", spki, &keys, &[], created).expect("bundle");
        self.own_bundle_created = created;
        self.next_tls = Some((spki, crypto::sha256(bundle.bytes())));
        let _ = self.session.set_bundle(Self::mono(at), bundle);
        spki
    }

    /// The peer's bundle arrived (SPEC.md §4.4.4): a newer one is held, its TLS key accepted
    /// beside the old; the peer is told for the one held.
    pub(super) fn take_peer_bundle(&mut self, at: UnixMillis, b: &PeerBundle) {
        let newer = self
            .peer_bundle
            .as_ref()
            .is_none_or(|held| b.created() > held.created());
        if newer {
            if !self.peer_pins.contains(b.tls_spki_sha256()) {
                self.peer_pins.push(*b.tls_spki_sha256());
            }
            self.peer_bundle = Some(b.clone());
        }
        if let Some(held) = &self.peer_bundle {
            let sha = crypto::sha256(held.bytes());
            let _ = self.session.bundle_accepted(Self::mono(at), sha);
        }
    }

    /// The peer holds our bundle `sha`: if it carries our next TLS key, switch to it (new
    /// connections present it).
    pub(super) fn bundle_taken(&mut self, sha: &[u8; 32]) {
        if let Some((spki, want)) = self.next_tls
            && want == *sha
        {
            self.tls_spki = spki;
            self.next_tls = None;
        }
    }

    /// A connection showed the peer's key `presented`: the pins it replaced are dropped.
    pub(super) fn saw_peer_key(&mut self, presented: &[u8; 32]) {
        self.peer_pins.retain(|p| p == presented);
    }
}
