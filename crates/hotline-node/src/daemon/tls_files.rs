//! The node's TLS certificate and the `[ca]` files, re-read while the node runs (issue 14,
//! item 3; SPEC.md §3.6): a renewed certificate for the same key (`hotlined keys renew-tls`,
//! or one the private CA issued), new CA certificates or a new CRL take effect within a key
//! check (5 s) or at once on SIGHUP or a control-socket reload, without a restart and without
//! dropping links. New connections use them; connections already up keep theirs.
//!
//! A file is re-read when its size or modification time changed. What fails to load is
//! reported and the running configuration kept: a half-written or broken CRL never replaces a
//! good one, and a certificate for another key is refused (peers and operators pin the key)
//! unless it is the next key of a rotation every peer holds already (`super::tls_rotation`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::Shared;
use super::link::LinkMsg;
use crate::config::{self, CaConfig};
use crate::store::AuditEvent;
use hotline_transport::now_ms;
use hotline_transport::tls::{self, NodeTlsKey};

/// A file's path with its size and modification time, if it could be read.
pub type Stamp = (PathBuf, Option<(SystemTime, u64)>);

/// The files watched: the TLS certificate and key, then `[ca]`'s roots and CRLs.
fn files(dir: Option<&Path>, ca: Option<&CaConfig>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Some(dir) = dir {
        out.push(dir.join(config::TLS_CERT_FILE));
        out.push(dir.join(hotline_transport::material::TLS_KEY_FILE));
    }
    if let Some(ca) = ca {
        out.push(ca.roots.clone());
        out.extend(ca.crls.iter().cloned());
    }
    out
}

/// The stamps of the watched files now.
pub fn stamps(dir: Option<&Path>, ca: Option<&CaConfig>) -> Vec<Stamp> {
    files(dir, ca)
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())));
            (p, meta)
        })
        .collect()
}

/// Re-reads the TLS certificate and `[ca]` if their files changed (or always, with `force`),
/// applies what loads, and returns the problems found (each also logged).
pub(super) async fn refresh(s: &Arc<Shared>, force: bool) -> Vec<String> {
    let Some(dir) = s.env.dir.clone() else {
        return Vec::new();
    };
    let now_stamps = stamps(Some(&dir), s.env.ca_config.as_ref());
    {
        let Ok(mut seen) = s.env.tls_seen.lock() else {
            return Vec::new();
        };
        if !force && *seen == now_stamps {
            return Vec::new();
        }
        *seen = now_stamps;
    }
    let now = now_ms();
    let mut changed = Vec::new();
    let mut problems = Vec::new();
    match load_tls(&dir) {
        Ok(new) => {
            let running = s.env.tls();
            // A new key is taken only as the end of a rotation (`super::tls_rotation`): the
            // one announced to every peer, which each holds.
            let announced = s
                .tls_pending
                .lock()
                .ok()
                .and_then(|p| p.as_ref().map(|p| p.spki));
            if new.spki_sha256() != running.spki_sha256() && announced == Some(new.spki_sha256()) {
                changed.push("switched to the new TLS key every peer holds".into());
                if let Ok(mut t) = s.env.tls.write() {
                    *t = new;
                }
            } else if new.spki_sha256() != running.spki_sha256() {
                problems.push(format!(
                    "{} holds another TLS key than the one in use; peers and operators pin the \
                     key, so the running certificate stays (renew the certificate for the same \
                     key: `hotlined keys renew-tls`)",
                    dir.join(config::TLS_CERT_FILE).display()
                ));
            } else if new.cert_der != running.cert_der {
                match tls::check_validity(&new.cert_der, now) {
                    Ok(()) => {
                        let until = tls::certificate_not_after(&new.cert_der).unwrap_or(0);
                        changed.push(format!(
                            "TLS certificate renewed, valid until {}",
                            hotline_transport::time::utc_minute(until)
                        ));
                        if let Ok(mut t) = s.env.tls.write() {
                            *t = new;
                        }
                    }
                    Err(e) => problems.push(format!(
                        "{}: {e}; the running certificate stays",
                        dir.join(config::TLS_CERT_FILE).display()
                    )),
                }
            }
        }
        Err(e) => problems.push(format!("{e}; the running certificate stays")),
    }
    if let Some(ca) = &s.env.ca_config {
        match ca.load() {
            Ok(roots) => {
                for p in tls::check_ca(&roots, now) {
                    problems.push(format!("[ca]: {p}"));
                }
                if let Ok(mut c) = s.env.ca.write() {
                    *c = Some(roots);
                }
                changed.push("[ca] certificates and CRLs re-read".into());
            }
            Err(e) => problems.push(format!("{e}; the running [ca] stays")),
        }
    }
    for p in &problems {
        tracing::warn!("{p}");
    }
    if changed.is_empty() {
        return problems;
    }
    // Links dial with the new configuration; the listener serves it (a forced refresh is part
    // of a reload, which sets the server configuration itself).
    let links: Vec<_> = s
        .registry
        .read()
        .map(|r| {
            r.peers
                .iter()
                .map(|l| {
                    (
                        l.tx.clone(),
                        l.record.trust,
                        l.bundle.clone(),
                        l.previous_pin,
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    for (tx, trust, bundle, previous_pin) in links {
        let crls = (trust == crate::store::TrustMode::Ca)
            .then(|| s.env.ca())
            .flatten();
        match s.client_config(trust, &bundle, previous_pin) {
            Ok(c) => {
                let _ = tx.send(LinkMsg::ClientConfig(Box::new(c), crls));
            }
            Err(e) => problems.push(format!("cannot rebuild a link's TLS configuration: {e}")),
        }
    }
    if !force {
        match s.server_config() {
            Ok(server) => {
                if let Some(endpoint) = s.endpoint() {
                    endpoint.set_server_config(Some(server));
                }
            }
            Err(e) => problems.push(e),
        }
    }
    let detail = changed.join("; ");
    tracing::info!("{detail}: new connections use it, links stay up");
    let _ = s
        .store
        .audit(AuditEvent {
            time_ms: now,
            kind: "tls_reloaded".into(),
            peer: None,
            message_id: None,
            detail,
        })
        .await;
    problems
}

fn load_tls(dir: &Path) -> Result<NodeTlsKey, String> {
    let cert_path = dir.join(config::TLS_CERT_FILE);
    let key_path = dir.join(hotline_transport::material::TLS_KEY_FILE);
    let cert = std::fs::read(&cert_path).map_err(|e| format!("{}: {e}", cert_path.display()))?;
    let key = hotline_transport::keyfile::read_secret(&key_path).map_err(|e| e.to_string())?;
    NodeTlsKey::from_pem(&cert, &key).map_err(|e| format!("{}: {e}", cert_path.display()))
}
