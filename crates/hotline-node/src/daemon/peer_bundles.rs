//! Bundles over the link (SPEC.md §4.4.4): a peer's newer bundle is held in place of the one
//! pinned, with the TLS key it replaces still accepted until a connection shows the new one;
//! ours is sent to every peer whenever it changes. This is how a new TLS key reaches a peer
//! before it is used, without the link going down.

use std::sync::Arc;

use hotline_protocol::NodeId;
use hotline_protocol::bundle::PeerBundle;
use hotline_transport::now_ms;

use super::Shared;
use super::link::LinkMsg;
use crate::store::AuditEvent;

/// Most bundles of one peer the node keeps (its history, for evidence): a peer changes its TLS
/// key or name a few times in its life, not hundreds.
pub const MAX_PEER_BUNDLES: usize = 256;

impl Shared {
    /// `bundle`, sent by its node over the link: held if it is newer than the one held (by
    /// `created_ms`). Returns the bundle held now (the new one, or the one held already), for
    /// the link to take up and confirm to the peer.
    pub(super) async fn take_peer_bundle(
        self: &Arc<Self>,
        bundle: PeerBundle,
    ) -> Result<PeerBundle, String> {
        let peer = bundle.identity();
        let (held, alias, previous_before) = {
            let reg = self.registry.read().map_err(|_| "registry poisoned")?;
            let link = reg.peer(&peer).ok_or("the peer is no longer pinned")?;
            (
                link.bundle.clone(),
                link.record.alias.clone(),
                link.previous_pin,
            )
        };
        // A bundle dated more than the allowed clock skew ahead is not taken: it would make
        // every later bundle of the peer look older. A newer one that changes nothing the peer
        // is known by (TLS key, name, addresses; its encryption keys arrive in Hello and
        // KeyUpdate, §4.3.5) replaces the held one without joining the bundle history, so that
        // the history grows only with real changes, and at most to MAX_PEER_BUNDLES.
        let ahead =
            bundle.created() > now_ms().saturating_add(hotline_protocol::time::MAX_FUTURE_SKEW);
        if bundle.created() <= held.created() || ahead {
            return Ok(held);
        }
        let same = held.tls_spki_sha256() == bundle.tls_spki_sha256()
            && held.name() == bundle.name()
            && held.addresses() == bundle.addresses();
        let changed_pin = held.tls_spki_sha256() != bundle.tls_spki_sha256();
        let previous = changed_pin.then_some(*held.tls_spki_sha256());
        let (bytes, now) = (bundle.bytes().clone(), now_ms());
        let detail = format!(
            "{alias}: bundle of {} over the link{}",
            hotline_transport::time::utc_second(bundle.created()),
            if changed_pin {
                "; a new TLS key, accepted beside the old one until a connection shows it"
            } else {
                ""
            }
        );
        let stored = self
            .store
            .call(move |s| -> crate::store::Result<bool> {
                if !same {
                    let installed = s
                        .bundle_history()?
                        .iter()
                        .filter(|b| b.identity == peer)
                        .count();
                    if installed >= MAX_PEER_BUNDLES {
                        return Ok(false);
                    }
                }
                let taken = s.take_peer_bundle(&peer, &bytes, previous, !same, now)?;
                if taken && !same {
                    s.audit(&[AuditEvent {
                        time_ms: now,
                        kind: "peer_bundle_updated".into(),
                        peer: Some(peer),
                        message_id: None,
                        detail,
                    }])?;
                }
                Ok(taken)
            })
            .await
            .ok_or("the store has stopped")?
            .map_err(|e| e.to_string())?;
        if !stored {
            return Err(format!(
                "not taken: the peer is no longer pinned, or it sent {MAX_PEER_BUNDLES} bundles \
                 already (update it out of band: `hotlined peer update`)"
            ));
        }
        tracing::info!(peer = %alias, new_tls_key = changed_pin, "took the peer's new bundle");
        let previous_pin = previous.or(previous_before);
        {
            let mut reg = self.registry.write().map_err(|_| "registry poisoned")?;
            if let Some(link) = reg.peers.iter_mut().find(|l| l.record.identity == peer) {
                link.bundle = bundle.clone();
                link.record.bundle = bundle.bytes().clone();
                link.previous_pin = previous_pin;
            }
        }
        self.apply_pins(&peer)?;
        Ok(bundle)
    }

    /// A connection to `peer` showed the TLS key `spki`: if it is the key of the bundle held,
    /// the previous key is no longer accepted.
    pub(super) async fn saw_peer_key(self: &Arc<Self>, peer: NodeId, spki: [u8; 32]) {
        let current = self.registry.read().ok().and_then(|r| {
            r.peer(&peer)
                .filter(|l| l.previous_pin.is_some() && *l.bundle.tls_spki_sha256() == spki)
                .map(|l| l.record.alias.clone())
        });
        let Some(alias) = current else { return };
        match self.store.call(move |s| s.forget_previous_pin(&peer)).await {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                tracing::error!(peer = %alias, "cannot forget the peer's previous TLS key: {e}");
                return;
            }
            None => return,
        }
        if let Ok(mut reg) = self.registry.write()
            && let Some(link) = reg.peers.iter_mut().find(|l| l.record.identity == peer)
        {
            link.previous_pin = None;
        }
        tracing::info!(peer = %alias, "the peer uses its new TLS key; the previous one is no longer accepted");
        if let Err(e) = self.apply_pins(&peer) {
            tracing::error!(peer = %alias, "{e}");
        }
    }

    /// Installs the TLS pins of `peer` as the registry holds them: the listener's, and the
    /// link's for dialing.
    fn apply_pins(&self, peer: &NodeId) -> Result<(), String> {
        let server = self.server_config()?;
        if let Some(endpoint) = self.endpoint() {
            endpoint.set_server_config(Some(server));
        }
        let link = self.registry.read().ok().and_then(|r| {
            r.peer(peer).map(|l| {
                (
                    l.tx.clone(),
                    l.record.trust,
                    l.bundle.clone(),
                    l.previous_pin,
                )
            })
        });
        if let Some((tx, trust, bundle, previous)) = link {
            let config = self.client_config(trust, &bundle, previous)?;
            let _ = tx.send(LinkMsg::ClientConfig(Box::new(config), None));
        }
        Ok(())
    }

    /// `peer` holds our bundle whose SHA-256 is `sha` (SPEC.md §4.4.4): remembered, so that a
    /// new TLS key is used only once every peer holds it.
    pub(super) fn peer_holds_bundle(&self, peer: NodeId, sha: [u8; 32]) {
        if let Ok(mut held) = self.bundles_held.lock() {
            held.insert(peer, sha);
        }
    }

    /// Our bundle changed (new encryption keys, a new TLS key): every link sends it.
    pub(super) fn announce_own_bundle(&self, bundle: &PeerBundle) {
        self.set_own_bundle(bundle.bytes().clone());
        // A bundle with the next TLS key's pin: a peer that holds it accepts that key.
        if let Ok(mut p) = self.tls_pending.lock()
            && let Some(p) = p.as_mut()
            && p.spki == *bundle.tls_spki_sha256()
        {
            p.bundles
                .push(hotline_protocol::crypto::sha256(bundle.bytes()));
        }
        for tx in self.links() {
            let _ = tx.send(LinkMsg::OwnBundle(Box::new(bundle.clone())));
        }
    }
}
