//! What an administrator changes while the node runs — the pinned peers and the operators —
//! and how a change takes effect without a restart.
//!
//! `hotlined peer add | update | remove` and `hotlined operator add | remove` write the
//! database, then tell the running node (its control socket, or SIGHUP); [`Shared::reload`]
//! then reads both tables and applies the difference at once:
//! - a new peer gets a link task; a removed one's link is closed (SHUTDOWN, "peer removed") and
//!   its key leaves the TLS pins, so it can neither reconnect nor be sent to; a peer whose
//!   bundle or address changed gets a new link with the new keys and pin;
//! - the TLS server configuration is rebuilt with the current peer and operator pins (new
//!   connections only; quinn keeps established ones);
//! - every operator connection is told, and one whose credential was revoked is closed, its
//!   Watch streams ended with FORBIDDEN.

use std::sync::Arc;

use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::envelope::Envelope;
use hotline_protocol::identity::NodeId;
use hotline_protocol::session::Config as SessionConfig;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Shared;
use super::link::{self, LinkCtx, LinkMsg};
use super::metrics;
use crate::store::{AuditEvent, InstalledBundle, OperatorRecord, PeerRecord, TrustMode};
use hotline_transport::material::Material;
use hotline_transport::now_ms;
use hotline_transport::tls::{self, CaRoots, PeerTrust, TransportLimits};

/// What every link is made with.
pub(super) struct LinkEnv {
    /// The identity and the key material read at start (its TLS key: see `tls`).
    pub material: Arc<Material>,
    pub keys: Arc<super::own_keys::OwnKeys>,
    pub limits: TransportLimits,
    /// The TLS key and certificate in use: a renewed certificate replaces it while the node
    /// runs (`super::tls_files`).
    pub tls: std::sync::RwLock<tls::NodeTlsKey>,
    /// The private CA of `[ca]`, for peers in private CA mode; re-read when its files change.
    pub ca: std::sync::RwLock<Option<CaRoots>>,
    /// Where `[ca]` is (its presence is read at start).
    pub ca_config: Option<crate::config::CaConfig>,
    /// The node directory, if the node was started from one.
    pub dir: Option<std::path::PathBuf>,
    /// The files of the TLS key and `[ca]` as last read (`super::tls_files`).
    pub tls_seen: std::sync::Mutex<Vec<super::tls_files::Stamp>>,
    pub session: SessionConfig,
    pub window: usize,
    pub deadlines: crate::config::Deadlines,
}

/// A pinned peer and the task that runs its link.
pub(super) struct PeerLink {
    pub record: PeerRecord,
    pub bundle: PeerBundle,
    /// The TLS key of the peer's bundle before the one it sent over the link, accepted until a
    /// connection shows the new one (SPEC.md §4.4.4).
    pub previous_pin: Option<[u8; 32]>,
    pub tx: mpsc::UnboundedSender<LinkMsg>,
    pub task: Option<JoinHandle<()>>,
}

/// The tables an administrator changes, as the node applies them.
#[derive(Default)]
pub(super) struct Registry {
    /// Pinned peers, ordered by alias.
    pub peers: Vec<PeerLink>,
    /// Every operator credential issued, revoked ones included.
    pub operators: Vec<OperatorRecord>,
    /// Every peer bundle ever installed, oldest first (evidence of old messages needs them).
    pub bundles: Vec<InstalledBundle>,
}

impl Registry {
    pub fn peer(&self, id: &NodeId) -> Option<&PeerLink> {
        self.peers.iter().find(|p| p.record.identity == *id)
    }

    /// The peer whose bundle pins this TLS key (or whose previous key it is, §4.4.4).
    pub fn peer_by_spki(&self, spki: &[u8; 32]) -> Option<&PeerLink> {
        self.peers
            .iter()
            .find(|p| p.bundle.tls_spki_sha256() == spki || p.previous_pin.as_ref() == Some(spki))
    }

    /// Whether the operator with this officer key may act now (known and not revoked).
    pub fn operator_active(&self, officer_key: &[u8; 32]) -> bool {
        self.operators
            .iter()
            .any(|o| o.officer_key == *officer_key && o.revoked_ms.is_none())
    }
}

/// What a reload changed, for the administrator.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// Peers whose links were started.
    pub started: Vec<String>,
    /// Peers whose links were closed (removed).
    pub stopped: Vec<String>,
    /// Peers whose links were restarted with a new bundle or address.
    pub restarted: Vec<String>,
    /// Peers that could not be applied, and why.
    pub problems: Vec<String>,
    /// Active operators.
    pub operators: usize,
}

impl std::fmt::Display for ReloadReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        write!(
            f,
            "links started: {}; closed: {}; restarted: {}; active operators: {}",
            list(&self.started),
            list(&self.stopped),
            list(&self.restarted),
            self.operators
        )?;
        for p in &self.problems {
            write!(f, "; problem: {p}")?;
        }
        Ok(())
    }
}

/// Whether a running link no longer matches its row (bundle, address or trust changed).
fn changed(link: &PeerLink, record: &PeerRecord) -> bool {
    link.record.alias != record.alias
        || link.record.address != record.address
        || link.record.bundle != record.bundle
        || link.record.trust != record.trust
}

impl LinkEnv {
    /// The TLS key and certificate in use.
    pub fn tls(&self) -> tls::NodeTlsKey {
        self.tls
            .read()
            .map(|t| t.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// The private CA in use, if `[ca]` is configured.
    pub fn ca(&self) -> Option<CaRoots> {
        self.ca
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }
}

impl Shared {
    /// Reads the peers and operators from the store and applies them (see the module docs).
    /// One reload runs at a time; a second waits and then reads the newest state.
    pub async fn reload(self: &Arc<Self>) -> Result<ReloadReport, String> {
        let _one_at_a_time = self.reloading.lock().await;
        let read = self
            .store
            .call(|s| -> crate::store::Result<_> {
                Ok((
                    s.peers()?,
                    s.operators()?,
                    s.bundle_history()?,
                    s.revocations()?,
                ))
            })
            .await
            .ok_or("the store has stopped")?
            .map_err(|e| e.to_string())?;
        let (rows, operators, bundles, revocations) = read;
        // Our revocations (`hotlined keys revoke`, `operator remove`): every link tells its
        // peer the new ones at once (SPEC.md §4.6.2); links started below take them at start.
        let own_before = self.revocations.own();
        self.revocations.replace(revocations);
        let own = self.revocations.own();
        let new: Vec<_> = own
            .iter()
            .filter(|r| !own_before.contains(r))
            .cloned()
            .collect();
        if !new.is_empty() {
            if let Ok(reg) = self.registry.read() {
                for l in &reg.peers {
                    let _ = l.tx.send(LinkMsg::Revocations(own.as_ref().clone()));
                }
            }
            // What the revoked keys signed and was never sent is not sent (SPEC.md §4.6.1).
            tokio::spawn(super::revocations::withdraw(self.clone(), new));
        }
        let mut report = ReloadReport::default();
        let mut wanted: Vec<(PeerRecord, PeerBundle)> = Vec::new();
        for row in rows {
            match PeerBundle::from_bytes(&row.bundle) {
                Ok(_) if row.trust == TrustMode::Ca && self.env.ca().is_none() => {
                    report.problems.push(format!(
                        "peer {} is trusted through a private CA but hotlined.toml has no [ca] \
                         section (read at start); not linked",
                        row.alias
                    ));
                }
                Ok(b) => wanted.push((row, b)),
                Err(e) => report
                    .problems
                    .push(format!("peer {}: stored bundle invalid: {e}", row.alias)),
            }
        }
        // Links to close: peers gone, or changed (restarted below with the new row).
        let stop: Vec<PeerLink> = {
            let mut reg = self.registry.write().map_err(|_| "registry poisoned")?;
            let (keep, stop): (Vec<PeerLink>, Vec<PeerLink>) =
                std::mem::take(&mut reg.peers).into_iter().partition(|l| {
                    wanted
                        .iter()
                        .any(|(r, _)| r.identity == l.record.identity && !changed(l, r))
                });
            reg.peers = keep;
            stop
        };
        for mut link in stop {
            let restarting = wanted
                .iter()
                .any(|(r, _)| r.identity == link.record.identity);
            let why = if restarting {
                "peer's bundle or address updated"
            } else {
                "peer removed from this node"
            };
            let _ = link.tx.send(LinkMsg::Shutdown(why));
            if let Some(task) = link.task.take() {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(2), task).await;
            }
            metrics::forget_peer(&self.metrics, &link.record.alias);
            if restarting {
                report.restarted.push(link.record.alias.clone());
            } else {
                report.stopped.push(link.record.alias.clone());
            }
        }
        // Links to start: new peers and the ones just closed for a change.
        let running: Vec<NodeId> = self
            .registry
            .read()
            .map_err(|_| "registry poisoned")?
            .peers
            .iter()
            .map(|l| l.record.identity)
            .collect();
        for (record, bundle) in wanted {
            if running.contains(&record.identity) {
                continue;
            }
            let alias = record.alias.clone();
            match self.start_link(record, bundle).await {
                Ok(link) => {
                    if !report.restarted.contains(&alias) {
                        report.started.push(alias);
                    }
                    let mut reg = self.registry.write().map_err(|_| "registry poisoned")?;
                    reg.peers.push(link);
                    reg.peers
                        .sort_by(|a, b| a.record.alias.cmp(&b.record.alias));
                }
                Err(e) => report.problems.push(format!("peer {alias}: {e}")),
            }
        }
        report.operators = operators.iter().filter(|o| o.revoked_ms.is_none()).count();
        {
            let mut reg = self.registry.write().map_err(|_| "registry poisoned")?;
            reg.operators = operators;
            reg.bundles = bundles;
        }
        // A renewed TLS certificate, new CA certificates or CRLs (SPEC.md §3.6.2).
        for problem in super::tls_files::refresh(self, true).await {
            report.problems.push(problem);
        }
        let server = self.server_config()?;
        if let Some(endpoint) = self.endpoint() {
            endpoint.set_server_config(Some(server));
        }
        // Operator connections and Watch streams re-check their credential now.
        self.changes.send_modify(|n| *n += 1);
        let detail = report.to_string();
        tracing::info!("configuration reloaded: {detail}");
        self.event("reloaded", None, None, detail.clone());
        let _ = self
            .store
            .audit(AuditEvent {
                time_ms: now_ms(),
                kind: "reloaded".into(),
                peer: None,
                message_id: None,
                detail,
            })
            .await;
        Ok(report)
    }

    /// The TLS server configuration for the current peers and operators (SPEC.md §3.6,
    /// §15.3): one listener for both ALPNs; the accept loop decides by ALPN which role a key
    /// may play.
    pub(super) fn server_config(&self) -> Result<quinn::ServerConfig, String> {
        let reg = self.registry.read().map_err(|_| "registry poisoned")?;
        let mut pinned: Vec<[u8; 32]> = reg
            .operators
            .iter()
            .filter(|o| o.revoked_ms.is_none())
            .map(|o| o.tls_spki_sha256)
            .collect();
        let mut ca_pinned = Vec::new();
        for l in &reg.peers {
            let pins = std::iter::once(*l.bundle.tls_spki_sha256()).chain(l.previous_pin);
            match l.record.trust {
                TrustMode::Ca => ca_pinned.extend(pins),
                TrustMode::Pinned => pinned.extend(pins),
            }
        }
        let ca = self
            .env
            .ca()
            .filter(|_| !ca_pinned.is_empty())
            .map(|ca| (ca, ca_pinned));
        let trust = if pinned.is_empty() && ca.is_none() {
            PeerTrust::Nobody
        } else {
            PeerTrust::Mixed { pinned, ca }
        };
        tls::server_config(
            &self.env.tls(),
            &trust,
            &[hotline_protocol::ALPN, hotline_protocol::OPERATOR_ALPN],
            &self.env.limits,
        )
        .map_err(|e| format!("cannot build the TLS server configuration: {e}"))
    }

    /// The TLS client configuration to dial a peer trusted by `trust` whose bundle is `bundle`,
    /// with the TLS key and CA files in use now.
    pub(super) fn client_config(
        &self,
        trust: TrustMode,
        bundle: &PeerBundle,
        previous_pin: Option<[u8; 32]>,
    ) -> Result<quinn::ClientConfig, String> {
        let pins: Vec<[u8; 32]> = std::iter::once(*bundle.tls_spki_sha256())
            .chain(previous_pin)
            .collect();
        // Private CA mode: the dialed host must be a subjectAltName of the peer's certificate.
        let trust = match (trust, self.env.ca()) {
            (TrustMode::Ca, Some(ca)) => PeerTrust::Mixed {
                pinned: Vec::new(),
                ca: Some((ca, pins)),
            },
            _ => PeerTrust::Pinned { spki_sha256: pins },
        };
        tls::client_config(
            &self.env.tls(),
            &trust,
            hotline_protocol::ALPN,
            &self.env.limits,
        )
        .map_err(|e| e.to_string())
    }

    /// Loads what a new link needs from the store and starts its task.
    async fn start_link(
        self: &Arc<Self>,
        record: PeerRecord,
        bundle: PeerBundle,
    ) -> Result<PeerLink, String> {
        let env = &self.env;
        let peer = record.identity;
        let window = env.window;
        let me = env.material.identity.id();
        let loaded = self
            .store
            .call(move |s| -> crate::store::Result<_> {
                Ok((
                    s.pending_window(&peer, &Default::default(), window)?,
                    s.unconfirmed_receipts(&peer)?,
                    s.received_sequences(&peer)?,
                    s.last_sequence(&peer)?,
                    s.previous_pin(&peer)?,
                ))
            })
            .await
            .ok_or("the store has stopped")?
            .map_err(|e| e.to_string())?;
        let (envelopes, receipts, received, last, previous_pin) = loaded;
        let pending: Vec<Envelope> = envelopes
            .into_iter()
            .filter_map(|b| Envelope::parse(b).ok())
            .collect();
        let pending_receipts = receipts
            .into_iter()
            .filter_map(|r| hotline_protocol::receipt::Receipt::verify(&r, &me).ok())
            .collect();
        let client_config = self.client_config(record.trust, &bundle, previous_pin)?;
        if let Ok(mut keys) = self.peer_keys.lock() {
            // A new bundle's keys join those the peer announced last (SPEC.md §4.3.3).
            let held = keys.get(&peer).cloned().unwrap_or_default();
            let merged = super::own_keys::merge(bundle.encryption_keys(), &held, now_ms());
            keys.insert(peer, merged);
        }
        let endpoint = self.endpoint().ok_or("the node is shutting down")?;
        let (tx, rx) = mpsc::unbounded_channel();
        metrics::peer(&self.metrics, &record.alias, |m| m.up = false);
        let ctx = LinkCtx {
            identity: env.material.identity.clone(),
            keys: env.keys.clone(),
            alias: record.alias.clone(),
            bundle: bundle.clone(),
            address: record.address.clone(),
            endpoint,
            client_config,
            session: env.session.clone(),
            pool: self.pool.clone(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            tx: tx.clone(),
            pending,
            pending_receipts,
            restore: (received, last),
            window,
            deadlines: env.deadlines.clone(),
            events: self.events.clone(),
            shared_keys: self.peer_keys.clone(),
            guard: self.guard.clone(),
            revocations: self.revocations.clone(),
            shared: Arc::downgrade(self),
            last_close: Default::default(),
        };
        let task = tokio::spawn(link::run(ctx, rx));
        Ok(PeerLink {
            record,
            bundle,
            previous_pin,
            tx,
            task: Some(task),
        })
    }

    /// Closes every link (node shutdown) and waits for the tasks, at most `grace` each. After
    /// it, no reload can start a link, and no task holding `Shared` keeps the UDP port open.
    pub(super) async fn close_links(&self, grace: std::time::Duration) {
        let _no_reload = self.reloading.lock().await;
        if let Ok(mut e) = self.endpoint.lock() {
            e.take();
        }
        let links: Vec<PeerLink> = match self.registry.write() {
            Ok(mut reg) => std::mem::take(&mut reg.peers),
            Err(_) => return,
        };
        for l in &links {
            let _ = l.tx.send(LinkMsg::Shutdown("node shutting down"));
        }
        for mut l in links {
            if let Some(t) = l.task.take() {
                let _ = tokio::time::timeout(grace, t).await;
            }
        }
    }

    /// The link channel of every pinned peer, by TLS key (the accept loop's routing table).
    pub(super) fn link_by_spki(
        &self,
        spki: &[u8; 32],
    ) -> Option<(String, mpsc::UnboundedSender<LinkMsg>)> {
        let reg = self.registry.read().ok()?;
        reg.peer_by_spki(spki)
            .map(|l| (l.record.alias.clone(), l.tx.clone()))
    }
}
