//! The node's own encryption keys while it runs (SPEC.md §4.3.4, §4.3.5): made and destroyed
//! by the policy of `[keys]`, announced to every live peer, and the peers' announced keys
//! remembered across restarts.
//!
//! Every [`CHECK`] the key task takes the key file's lock, brings the file up to date
//! (`hotline_transport::encryption_keys::maintain`), and applies what it holds: so a key made
//! by `hotlined keys rotate` while the node runs is announced within one check, and two
//! writers never lose each other's keys.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::identity::{EncryptionKey, EncryptionKeypair, NodeId};
use hotline_protocol::keyring::{self, KeyChange, KeyPolicy};
use hotline_protocol::time::UnixMillis;
use hotline_transport::{encryption_keys, now_ms};

use super::Shared;
use super::link::LinkMsg;
use crate::store::AuditEvent;

/// How often the key file is checked.
pub const CHECK: Duration = Duration::from_secs(5);
/// Most keys remembered for one peer (its bundle's and its latest announced ones).
const MAX_PEER_KEYS: usize = 16;

/// The key pairs that open envelopes, replaced whole when the key file changes.
#[derive(Debug)]
pub struct OwnKeys {
    pairs: RwLock<Arc<Vec<EncryptionKeypair>>>,
}

impl OwnKeys {
    /// Keys newest first.
    pub fn new(keys: Vec<EncryptionKeypair>) -> Self {
        OwnKeys {
            pairs: RwLock::new(Arc::new(keys)),
        }
    }

    /// The key pairs held now, newest first.
    pub fn current(&self) -> Arc<Vec<EncryptionKeypair>> {
        self.pairs
            .read()
            .map(|p| p.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// What to announce at `now`.
    pub fn announced(&self, now: UnixMillis) -> Vec<EncryptionKey> {
        keyring::announced(&self.current(), now)
    }

    fn replace(&self, keys: Vec<EncryptionKeypair>) {
        match self.pairs.write() {
            Ok(mut p) => *p = Arc::new(keys),
            Err(e) => *e.into_inner() = Arc::new(keys),
        }
    }
}

/// What the key task needs besides `Shared`.
pub(super) struct KeyTask {
    pub dir: PathBuf,
    pub policy: KeyPolicy,
    pub listen: String,
    /// The keys announced at start (in the bundle the node started with).
    pub announced: Vec<EncryptionKey>,
}

/// Runs until the node stops: checks the key file every [`CHECK`].
pub(super) async fn run(shared: Weak<Shared>, mut task: KeyTask) {
    let mut tick = tokio::time::interval(CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error = String::new();
    let mut last_announced = task.announced.clone();
    loop {
        tick.tick().await;
        let Some(s) = shared.upgrade() else { return };
        // A renewed TLS certificate or new [ca] files, if any changed.
        let _ = super::tls_files::refresh(&s, false).await;
        // A next TLS key: announced, or switched to once every peer holds it.
        super::tls_rotation::step(&s, &task.dir, &task.listen, now_ms()).await;
        // `[keys]` as the file says now: a change applies from the next check.
        policy_now(&task.dir, &mut task.policy);
        let (dir, policy, identity, now) =
            (task.dir.clone(), task.policy, s.identity.clone(), now_ms());
        let done = tokio::task::spawn_blocking(move || {
            encryption_keys::maintain(&dir, &identity, now, &policy, false)
        })
        .await;
        match done {
            Ok(Ok((keys, changes))) => {
                last_error.clear();
                apply(&s, &task, keys, &changes, now, &mut last_announced).await;
            }
            Ok(Err(e)) => {
                let e = e.to_string();
                if e != last_error {
                    tracing::error!("encryption keys cannot be checked or renewed: {e}");
                    last_error = e;
                }
            }
            Err(_) => return,
        }
    }
}

/// Reads `[keys]` from the configuration in `dir` and takes it if it changed (logged); a
/// configuration that does not load leaves `policy` as it was (`hotlined check` says why).
fn policy_now(dir: &std::path::Path, policy: &mut KeyPolicy) {
    if let Ok(cfg) = crate::config::Config::load(dir) {
        let new = cfg.keys.policy();
        if new != *policy {
            tracing::info!(
                "[keys] changed: encryption keys live {} days, renewed {} days ahead, secrets \
                 kept {} days after expiry",
                cfg.keys.encryption_lifetime_days,
                cfg.keys.encryption_renew_days,
                cfg.keys.encryption_retention_days
            );
            *policy = new;
        }
    }
}

/// Logs and counts each key made or destroyed; the audit rows to write for them (SPEC.md
/// §4.3.4: a destroyed secret is said so in the audit trail).
pub(super) fn record(
    changes: &[KeyChange],
    now: UnixMillis,
    metrics: &super::metrics::SharedMetrics,
) -> Vec<AuditEvent> {
    changes
        .iter()
        .map(|change| {
            let (kind, key) = match change {
                KeyChange::Created(k) => ("encryption_key_created", k),
                KeyChange::Destroyed(k) => ("encryption_key_destroyed", k),
            };
            let detail = describe(key);
            tracing::info!(event = kind, "{detail}");
            super::metrics::count(metrics, kind, 1);
            AuditEvent {
                time_ms: now,
                kind: kind.into(),
                peer: None,
                message_id: None,
                detail,
            }
        })
        .collect()
}

async fn apply(
    s: &Arc<Shared>,
    task: &KeyTask,
    keys: Vec<EncryptionKeypair>,
    changes: &[KeyChange],
    now: UnixMillis,
    last_announced: &mut Vec<EncryptionKey>,
) {
    let audit = record(changes, now, &s.metrics);
    if !audit.is_empty() {
        let store = s.store.clone();
        if let Some(Err(e)) = store.call(move |st| st.audit(&audit)).await {
            tracing::error!("audit write failed: {e}");
        }
    }
    let held: Vec<_> = s
        .env
        .keys
        .current()
        .iter()
        .map(|k| k.certificate.clone())
        .collect();
    let fresh: Vec<_> = keys.iter().map(|k| k.certificate.clone()).collect();
    if held != fresh {
        s.env.keys.replace(keys);
    }
    let announced = s.env.keys.announced(now);
    if announced == *last_announced {
        return;
    }
    tracing::info!(
        keys = announced.len(),
        "announcing encryption keys to every peer"
    );
    for tx in s.links() {
        let _ = tx.send(LinkMsg::Keys(announced.clone()));
    }
    *last_announced = announced.clone();
    // The bundle handed to peers out of band carries the current keys.
    match s.new_own_bundle(&announced, &task.listen, now) {
        Ok(b) => {
            s.announce_own_bundle(&b);
            // The file handed out of band carries the key in use, not one still announced.
            if b.tls_spki_sha256() == &s.env.tls().spki_sha256() {
                rewrite_bundle_file(&task.dir, &b);
            }
        }
        Err(e) => tracing::error!("{e}"),
    }
}

/// Rewrites the bundle file in `dir` atomically (a reader sees the old file or the new one);
/// its path.
pub(crate) fn write_bundle_file(dir: &std::path::Path, b: &PeerBundle) -> std::io::Result<PathBuf> {
    let path = dir.join(crate::config::BUNDLE_FILE);
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, b.to_armored())?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// [`write_bundle_file`] for the running node: a failure is logged.
fn rewrite_bundle_file(dir: &std::path::Path, b: &PeerBundle) {
    if let Err(e) = write_bundle_file(dir, b) {
        tracing::warn!("cannot rewrite the bundle file in {}: {e}", dir.display());
    }
}

/// A key for logs and the audit trail: its id and validity.
pub fn describe(key: &EncryptionKey) -> String {
    format!(
        "encryption key {} valid {} to {}",
        data_encoding::HEXLOWER.encode(&key.id()),
        hotline_transport::time::utc_minute(key.not_before()),
        hotline_transport::time::utc_minute(key.not_after()),
    )
}

/// The candidate keys of a peer (SPEC.md §4.3.3): `a` and `b` together, without keys expired
/// at `now`, newest first, at most [`MAX_PEER_KEYS`].
pub fn merge(a: &[EncryptionKey], b: &[EncryptionKey], now: UnixMillis) -> Vec<EncryptionKey> {
    let mut out: Vec<EncryptionKey> = Vec::new();
    for k in a.iter().chain(b) {
        if k.not_after() >= now && !out.contains(k) {
            out.push(k.clone());
        }
    }
    out.sort_by_key(|k| core::cmp::Reverse((k.not_before(), k.not_after())));
    out.truncate(MAX_PEER_KEYS);
    out
}

/// The peers' keys at start: each bundle's keys and the keys the peer announced last, as the
/// store remembers them (those that no longer verify for the peer are left out).
pub fn at_start(
    bundles: &[(NodeId, Vec<EncryptionKey>)],
    remembered: &[(NodeId, Vec<u8>)],
    now: UnixMillis,
) -> HashMap<NodeId, Vec<EncryptionKey>> {
    let mut out = HashMap::new();
    for (peer, keys) in bundles {
        let announced = remembered
            .iter()
            .filter(|(p, _)| p == peer)
            .filter_map(|(p, bytes)| hotline_protocol::session::verify_key_update(bytes, p).ok())
            .next()
            .unwrap_or_default();
        out.insert(*peer, merge(keys, &announced, now));
    }
    out
}
