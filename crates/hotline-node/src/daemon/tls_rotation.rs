//! A new TLS key without downtime (SPEC.md §3.6.1, §4.4.4): `hotlined keys rotate --tls` leaves
//! a next key beside the current one; the running node announces its pin to every peer in a new
//! bundle, keeps presenting the current key, and switches once every peer has said it holds a
//! bundle with the new pin (BundleAccepted). A peer it cannot tell (version 1 link, down for
//! good) holds the switch back until the administrator forces it (`keys rotate --tls --now`)
//! and updates that peer out of band.
//!
//! Runs in the key task, every few seconds.

use std::sync::Arc;

use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::identity::EncryptionKey;
use hotline_protocol::time::UnixMillis;
use hotline_transport::tls_next;

use super::Shared;
use crate::store::AuditEvent;

/// A next TLS key announced to the peers.
#[derive(Clone, Debug, Default)]
pub struct PendingTls {
    /// Its pin.
    pub spki: [u8; 32],
    /// Every bundle we announced that carries it, by SHA-256.
    pub bundles: Vec<[u8; 32]>,
    /// When it was first announced.
    pub since_ms: UnixMillis,
}

impl Shared {
    /// The pin our bundles carry: the next TLS key's while one waits, else the current one's.
    pub(super) fn announced_tls_pin(&self) -> [u8; 32] {
        self.tls_pending
            .lock()
            .ok()
            .and_then(|p| p.as_ref().map(|p| p.spki))
            .unwrap_or_else(|| self.env.tls().spki_sha256())
    }

    /// A new bundle of ours with `keys`, the announced TLS pin and `listen`, dated after the
    /// one we hold (a peer takes only a newer bundle).
    pub(super) fn new_own_bundle(
        &self,
        keys: &[EncryptionKey],
        listen: &str,
        now: UnixMillis,
    ) -> Result<PeerBundle, String> {
        let held = PeerBundle::from_bytes(&self.own_bundle()).map(|b| b.created());
        let created = now.max(held.map_or(0, |c| c + 1));
        PeerBundle::create(
            &self.identity,
            &self.name,
            self.announced_tls_pin(),
            keys,
            std::slice::from_ref(&listen.to_owned()),
            created,
        )
        .map_err(|e| format!("cannot make this node's bundle: {e}"))
    }

    /// Which peers do not hold a bundle with the next TLS key yet, by alias.
    pub fn tls_waiting_for(&self) -> Vec<String> {
        let Some(p) = self.tls_pending.lock().ok().and_then(|p| p.clone()) else {
            return Vec::new();
        };
        let held = self
            .bundles_held
            .lock()
            .map(|h| h.clone())
            .unwrap_or_default();
        self.registry
            .read()
            .map(|r| {
                r.peers
                    .iter()
                    .filter(|l| {
                        !held
                            .get(&l.record.identity)
                            .is_some_and(|sha| p.bundles.contains(sha))
                    })
                    .map(|l| l.record.alias.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One step: announce a next key found in `dir`, or switch to it once every peer holds it.
pub(super) async fn step(s: &Arc<Shared>, dir: &std::path::Path, listen: &str, now: UnixMillis) {
    let dir2 = dir.to_owned();
    let next = match tokio::task::spawn_blocking(move || tls_next::load(&dir2)).await {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => {
            tracing::error!("the next TLS key cannot be read: {e}");
            return;
        }
        Err(_) => return,
    };
    let Some(next) = next else {
        if let Ok(mut p) = s.tls_pending.lock() {
            *p = None;
        }
        return;
    };
    let spki = next.spki_sha256();
    let pending = s.tls_pending.lock().ok().and_then(|p| p.clone());
    if pending.as_ref().is_none_or(|p| p.spki != spki) {
        // Announce it: a new bundle with its pin, to every peer.
        if let Ok(mut p) = s.tls_pending.lock() {
            *p = Some(PendingTls {
                spki,
                bundles: Vec::new(),
                since_ms: now,
            });
        }
        let keys = s.env.keys.announced(now);
        match s.new_own_bundle(&keys, listen, now) {
            Ok(b) => s.announce_own_bundle(&b),
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        }
        tracing::info!(
            "announcing a new TLS key to every peer; the node switches to it once each holds it"
        );
        audit(s, "tls_key_announced", hex(&spki)).await;
        return;
    }
    let waiting = s.tls_waiting_for();
    if !waiting.is_empty() {
        // Said at the first check and then every ten minutes.
        let waited = now.saturating_sub(pending.map_or(now, |p| p.since_ms));
        if waited % 600_000 < super::own_keys::CHECK.as_millis() as u64 {
            tracing::warn!(
                waiting = %waiting.join(", "),
                "the new TLS key waits until these peers hold it (a peer on a version 1 link \
                 never will: update it out of band, then `hotlined keys rotate --tls --now`)"
            );
        }
        return;
    }
    switch(s, dir).await;
}

/// Promotes the next key and installs it at once.
pub(super) async fn switch(s: &Arc<Shared>, dir: &std::path::Path) {
    let dir2 = dir.to_owned();
    let promoted = match tokio::task::spawn_blocking(move || tls_next::promote(&dir2)).await {
        Ok(Ok(Some(k))) => k,
        Ok(Ok(None)) | Err(_) => return,
        Ok(Err(e)) => {
            tracing::error!("cannot switch to the next TLS key: {e}");
            return;
        }
    };
    for problem in super::tls_files::refresh(s, true).await {
        tracing::warn!("{problem}");
    }
    // The listener presents the new key too (a forced refresh leaves that to its caller).
    match s.server_config() {
        Ok(server) => {
            if let Some(endpoint) = s.endpoint() {
                endpoint.set_server_config(Some(server));
            }
        }
        Err(e) => tracing::error!("{e}"),
    }
    if let Ok(mut p) = s.tls_pending.lock() {
        *p = None;
    }
    if let Ok(b) = PeerBundle::from_bytes(&s.own_bundle())
        && let Err(e) = super::own_keys::write_bundle_file(dir, &b)
    {
        tracing::warn!("cannot rewrite the bundle file in {}: {e}", dir.display());
    }
    tracing::info!("switched to the new TLS key: every peer holds it");
    audit(s, "tls_key_rotated", hex(&promoted.spki_sha256())).await;
}

fn hex(spki: &[u8; 32]) -> String {
    format!("TLS key pin {}", data_encoding::HEXLOWER.encode(spki))
}

async fn audit(s: &Arc<Shared>, kind: &str, detail: String) {
    let ev = AuditEvent {
        time_ms: hotline_transport::now_ms(),
        kind: kind.into(),
        peer: None,
        message_id: None,
        detail,
    };
    if let Some(Err(e)) = s.store.audit(ev).await {
        tracing::error!("audit write failed: {e}");
    }
}
