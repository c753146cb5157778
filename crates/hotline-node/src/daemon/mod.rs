//! `hotlined run`: the node.
//!
//! One tokio runtime (current-thread: on two cores a multi-threaded runtime measured slower)
//! drives the QUIC endpoint and one task per peer link; cryptography runs on a pool of worker
//! threads sized to the cores; the database lives on its own thread.
//!
//! Here: [`Node`], its start-up and shutdown. The state its tasks share is in `shared`, the
//! submit path in `submit`, the listener in `listener`, the process entry in `run`.

pub mod link;
pub mod metrics;
pub mod operator_api;
pub mod pool;
pub mod storage;

mod cancel;
mod control;
mod expiry_watch;
pub mod guard;
mod listener;
pub mod own_keys;
mod peer_bundles;
mod registry;
mod retention;
pub mod revocations;
mod run;
mod sequences;
mod shared;
mod submit;
pub mod systemd;
mod tls_files;
pub mod tls_rotation;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::content::{Precedence, SignedContent, Tlp};
use hotline_protocol::envelope::MessageId;
use hotline_protocol::identity::{EncryptionKey, NodeId};
use hotline_protocol::session::Config as SessionConfig;

use crate::commands::CommandError;
use crate::config::{self, Config};
use crate::store::{AuditEvent, Store};
use hotline_transport::material::Material;
use hotline_transport::now_ms;
use hotline_transport::tls::{self, PeerTrust};
use listener::accept_loop;
use metrics::SharedMetrics;
use pool::CryptoPool;
use registry::LinkEnv;
use storage::StoreHandle;
use submit::seal;

pub use cancel::{CancelError, Cancelled};
pub use registry::ReloadReport;
pub use run::{init_logging, run};
pub use shared::Shared;
pub use submit::SubmitError;

/// A running node.
pub struct Node {
    /// This node's identity.
    pub id: NodeId,
    /// The UDP address it listens on.
    pub local_addr: std::net::SocketAddr,
    /// The metrics address, if serving.
    pub metrics_addr: Option<std::net::SocketAddr>,
    shared: Arc<Shared>,
    endpoint: quinn::Endpoint,
    /// Accept loop, control socket, metrics server: stopped at shutdown, so the UDP
    /// port and the store are released when `shutdown` returns.
    background: Vec<tokio::task::JoinHandle<()>>,
    store_thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Node({})", self.id)
    }
}

impl Node {
    /// Starts the node: endpoint, links, metrics. Must run inside a tokio runtime.
    pub async fn start(
        cfg: Config,
        material: Material,
        mut store: Box<dyn Store>,
        metrics_addr: Option<&str>,
    ) -> Result<Node, CommandError> {
        let now = now_ms();
        // Messages stored from now on are marked with this run: only they can be cancelled
        // (daemon::cancel).
        store.begin_run(now)?;
        let peers = store.peers()?;
        // SPEC.md §10.1: a database restored from an older copy must not reuse sequences.
        let sequence_check = sequences::at_start(store.as_mut(), &peers, now)?;
        if peers.is_empty() {
            tracing::warn!("no peers pinned; add one with `hotlined peer add`");
        }
        let pool = CryptoPool::new(std::thread::available_parallelism().map_or(2, |n| n.get()));
        let metrics: SharedMetrics = Arc::default();

        // Recover messages stored but not sealed before a crash, then load what is pending.
        let mut bundles = Vec::new();
        for p in &peers {
            let b = PeerBundle::from_bytes(&p.bundle).map_err(|e| {
                CommandError(format!("peer {}: stored bundle invalid: {e}", p.alias))
            })?;
            bundles.push((p.clone(), b));
        }
        // The peers' keys: their bundles', and what each announced last (SPEC.md §4.3.3).
        let bundle_keys: Vec<(NodeId, Vec<EncryptionKey>)> = bundles
            .iter()
            .map(|(p, b)| (p.identity, b.encryption_keys().to_vec()))
            .collect();
        let peer_keys: HashMap<NodeId, Vec<EncryptionKey>> =
            own_keys::at_start(&bundle_keys, &store.announced_keys()?, now);
        // Our keys: brought up to date before the first Hello (a node that was off for longer
        // than a key's life makes a new one now, SPEC.md §4.3.4).
        let mut material = material;
        let mut keys_changed = false;
        let mut key_audit = Vec::new();
        if let Some(dir) = &cfg.dir {
            let (keys, changes) = hotline_transport::encryption_keys::maintain(
                dir,
                &material.identity,
                now,
                &cfg.keys.policy(),
                false,
            )?;
            key_audit = own_keys::record(&changes, now, &metrics);
            material.encryption = keys;
            keys_changed = !changes.is_empty();
        }
        let unsealed = store.unsealed()?;
        if !unsealed.is_empty() {
            tracing::info!(
                count = unsealed.len(),
                "sealing messages stored before a restart"
            );
            let mut sealed = Vec::new();
            let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
            for s in unsealed {
                let keys = peer_keys
                    .get(&s.submission.peer)
                    .cloned()
                    .unwrap_or_default();
                match seal(&material, &s.submission, s.sequence, &keys, &mut rng) {
                    Ok(e) => sealed.push((s.submission.message_id, e.bytes().clone(), *e.sha256())),
                    Err(e) => tracing::error!("cannot seal a stored message: {e}"),
                }
            }
            store.attach_envelopes(&sealed)?;
        }

        // Trust (SPEC.md §3.6): every peer is known by its bundle's SPKI pin; a peer in private
        // CA mode must in addition present a certificate the CA of `[ca]` vouches for. The
        // pins are applied by the first reload below, like every later change.
        let ca = match &cfg.ca {
            Some(c) => Some(c.load().map_err(CommandError)?),
            None => None,
        };
        if let Some(ca) = &ca {
            for problem in tls::check_ca(ca, now) {
                tracing::warn!("[ca]: {problem}");
            }
        }
        for (p, _) in &bundles {
            if p.trust == crate::store::TrustMode::Ca && ca.is_none() {
                return Err(CommandError(format!(
                    "peer {} is trusted through a private CA (--trust ca) but {} has no \
                     [ca] section; add one (see `hotlined check`)",
                    p.alias,
                    config::CONFIG_FILE
                )));
            }
        }
        let limits = tls::TransportLimits {
            max_inflight: cfg.limits.max_inflight,
            ..Default::default()
        };
        // Until the first reload has installed the pins, nobody's certificate is accepted.
        let server_config = tls::server_config(
            &material.tls,
            &PeerTrust::Nobody,
            &[hotline_protocol::ALPN, hotline_protocol::OPERATOR_ALPN],
            &limits,
        )?;
        let listen: std::net::SocketAddr = cfg
            .listen
            .parse()
            .map_err(|_| CommandError(format!("listen address {} invalid", cfg.listen)))?;
        // The stateless-reset key is derived from the identity key, so it is the same after a
        // restart: a restarted node can then reset the connections its previous process left
        // open at the peer, instead of the peer holding a dead connection until its liveness
        // window ends (and refusing the restarted node's dials as duplicates meanwhile).
        // The connection-id generator's key is stable too: quinn answers a packet with a
        // stateless reset only if it recognises the connection id as one it could have issued.
        let (reset_key, cid_key) = {
            let seed = material.identity.dangerous_seed();
            let k = hotline_protocol::crypto::sha256_parts(&[
                b"hotline/1 quic stateless reset",
                &[0],
                &*seed,
            ]);
            let c = hotline_protocol::crypto::sha256_parts(&[
                b"hotline/1 quic connection id",
                &[0],
                &*seed,
            ]);
            let mut c8 = [0u8; 8];
            c8.copy_from_slice(&c[..8]);
            (
                aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &k),
                u64::from_le_bytes(c8),
            )
        };
        let mut endpoint_config = quinn::EndpointConfig::new(Arc::new(reset_key));
        endpoint_config.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
        let socket = std::net::UdpSocket::bind(listen)
            .map_err(|e| CommandError(format!("cannot listen on {listen}: {e}")))?;
        let endpoint = quinn::Endpoint::new(
            endpoint_config,
            Some(server_config),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|e| CommandError(format!("cannot listen on {listen}: {e}")))?;
        let local_addr = endpoint.local_addr()?;
        let own_bundle = material
            .bundle(&cfg.name, &cfg.listen, now)
            .map_err(|e| CommandError(format!("cannot make this node's bundle: {e}")))?;
        // New keys at start: the bundle file handed to peers carries them.
        if let (true, Some(dir)) = (keys_changed, &cfg.dir)
            && let Err(e) = own_keys::write_bundle_file(dir, &own_bundle)
        {
            tracing::warn!("cannot rewrite the bundle file in {}: {e}", dir.display());
        }
        let announced_at_start = material.certificates_at(now);
        let own_bundle = own_bundle.bytes().clone();
        let keys = Arc::new(own_keys::OwnKeys::new(std::mem::take(
            &mut material.encryption,
        )));
        let material = Arc::new(material);

        key_audit.insert(
            0,
            AuditEvent {
                time_ms: now,
                kind: "started".into(),
                peer: None,
                message_id: None,
                detail: format!("listening on {local_addr}"),
            },
        );
        store.audit(&key_audit)?;
        let guard = Arc::new(guard::StorageGuard::new(
            store.location(),
            cfg.storage.min_free_mib,
            cfg.storage.peer_quota_mib,
            store.received_bytes_by_peer()?,
        ));
        guard.sample();
        if guard.refusing() {
            tracing::error!("{}", guard.low_space_message());
        }
        let revocations = Arc::new(revocations::RevocationBook::new(
            material.identity.id(),
            store.revocations()?,
        ));
        let (store, store_thread) = StoreHandle::start(store)?;
        let (events, _) = tokio::sync::broadcast::channel(1024);
        let session = SessionConfig {
            offer: hotline_protocol::hello::Offer {
                max_inflight: cfg.limits.max_inflight,
                ..Default::default()
            },
            // The store is the authority on duplicates; the session's window only saves a
            // store lookup for a recent replay. A small one keeps memory flat under load
            // (a receipt held there costs about 1.7 KB).
            dedup_capacity: 4096,
            rate_per_s: cfg.limits.rate_per_s,
            burst: cfg.limits.burst,
            bytes_per_s: cfg.limits.byte_rate_mib.saturating_mul(1 << 20),
            byte_burst: cfg.limits.byte_burst_mib.saturating_mul(1 << 20),
            ..Default::default()
        };
        let shared = Arc::new(Shared {
            id: material.identity.id(),
            name: cfg.name.clone(),
            identity: material.identity.clone(),
            own_bundle: std::sync::RwLock::new(own_bundle),
            registry: Default::default(),
            changes: tokio::sync::watch::Sender::new(0),
            reloading: tokio::sync::Mutex::new(()),
            env: LinkEnv {
                tls: std::sync::RwLock::new(material.tls.clone()),
                material: material.clone(),
                keys,
                limits,
                ca: std::sync::RwLock::new(ca),
                ca_config: cfg.ca.clone(),
                dir: cfg.dir.clone(),
                tls_seen: Mutex::new(tls_files::stamps(cfg.dir.as_deref(), cfg.ca.as_ref())),
                session,
                window: cfg.limits.outbox_window,
                deadlines: cfg.deadlines.clone(),
            },
            endpoint: Mutex::new(Some(endpoint.clone())),
            peer_keys: Arc::new(Mutex::new(peer_keys)),
            store,
            pool,
            metrics,
            events,
            deadlines: cfg.deadlines.clone(),
            guard,
            revocations,
            bundles_held: Default::default(),
            tls_pending: Default::default(),
        });
        tokio::spawn(guard::watch(Arc::downgrade(&shared)));
        if let Some(dir) = &cfg.dir {
            tokio::spawn(own_keys::run(
                Arc::downgrade(&shared),
                own_keys::KeyTask {
                    dir: dir.clone(),
                    policy: cfg.keys.policy(),
                    listen: cfg.listen.clone(),
                    announced: announced_at_start,
                },
            ));
        }
        // `[retention]`: a pass now, then hourly (SPEC.md §13.4); stopped with the node.
        let retention = tokio::spawn(retention::run(
            Arc::downgrade(&shared),
            cfg.retention.policy(),
        ));
        // The peers' links and the TLS pins, exactly as every later change is applied.
        let report = shared.reload().await.map_err(CommandError)?;
        for problem in &report.problems {
            tracing::warn!("{problem}");
        }
        // Expiries: started after the first reload, so that its first reading (at once, then
        // every minute) has the peers' keys too.
        tokio::spawn(expiry_watch::run(
            Arc::downgrade(&shared),
            cfg.keys.policy().renew_before,
        ));
        let mut background = vec![
            tokio::spawn(accept_loop(endpoint.clone(), shared.clone())),
            retention,
        ];
        background.extend(sequence_check.report(&shared.events, &shared.metrics));
        let metrics = shared.metrics.clone();

        let metrics_addr = match metrics_addr {
            Some(a) => {
                let l = metrics::bind(a)
                    .await
                    .map_err(|e| CommandError(format!("cannot serve metrics on {a}: {e}")))?;
                let addr = l.local_addr()?;
                background.push(tokio::spawn(metrics::serve(l, metrics.clone())));
                Some(addr)
            }
            None => None,
        };
        let peers = shared.registry.read().map(|r| r.peers.len()).unwrap_or(0);
        tracing::info!(id = %shared.id, %local_addr, peers, "node running");
        Ok(Node {
            id: shared.id,
            local_addr,
            metrics_addr,
            shared,
            endpoint,
            background,
            store_thread: Some(store_thread),
        })
    }

    /// Accepts a message an officer signed: stores it durably (then it is accepted and its
    /// id may be shown), seals it and queues it for the peer.
    pub async fn submit(
        &self,
        to: NodeId,
        message_id: MessageId,
        precedence: Precedence,
        tlp: Tlp,
        content: SignedContent,
    ) -> Result<MessageId, SubmitError> {
        self.shared
            .submit(to, message_id, precedence, tlp, content)
            .await
            .map(|(id, _)| id)
    }

    /// The metrics text, as `--metrics` serves it.
    pub fn metrics_text(&self) -> String {
        self.shared
            .metrics
            .lock()
            .map(|g| metrics::render(&g))
            .unwrap_or_default()
    }

    /// Re-reads the peers and operators from the store and applies them at once (what
    /// `hotlined peer …` and `hotlined operator …` trigger through the control socket).
    pub async fn reload(&self) -> Result<String, String> {
        self.shared.reload().await.map(|r| r.to_string())
    }

    /// Serves the control socket at `path` (SPEC-free, local only): `hotlined` commands that
    /// change the node's tables ask the running node to reload through it.
    pub fn serve_control(&mut self, path: &std::path::Path) -> Result<(), CommandError> {
        let task = control::serve(path, self.shared.clone())?;
        self.background.push(task);
        Ok(())
    }

    /// Whether the link to `peer` is up.
    pub fn link_up(&self, alias: &str) -> bool {
        self.shared
            .metrics
            .lock()
            .map(|g| g.peers.get(alias).is_some_and(|p| p.up))
            .unwrap_or(false)
    }

    /// Runs a closure against the store.
    pub async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> T + Send + 'static,
    ) -> Option<T> {
        self.shared.store.call(f).await
    }

    /// Closes every link with SHUTDOWN, lets queued storage finish, and stops, within
    /// [`SHUTDOWN_BOUND`]; the UDP port is free when it returns.
    ///
    /// In order: the links stop (each closes its connection with SHUTDOWN), 0.5 s at most in
    /// all; the accept loop, control socket and metrics server stop; the endpoint closes every
    /// other connection and gets 0.5 s to send CONNECTION_CLOSE and drain, while the store
    /// commits what is queued (1 s at most); then the port is let go. Waiting longer would buy
    /// nothing the protocol relies on: a write not yet committed was confirmed to nobody (the
    /// peer retransmits, the officer was not told "accepted"), and a peer that misses
    /// CONNECTION_CLOSE finds the link dead by its liveness check.
    pub async fn shutdown(mut self) {
        let _ =
            tokio::time::timeout(LINK_STOP_GRACE, self.shared.close_links(LINK_STOP_GRACE)).await;
        for t in self.background.drain(..) {
            t.abort();
            let _ = t.await;
        }
        self.endpoint.close(
            quinn::VarInt::from_u32(hotline_protocol::CloseCode::Shutdown.code()),
            b"node shutting down",
        );
        let quic = async {
            let _ = tokio::time::timeout(QUIC_CLOSE_GRACE, self.endpoint.wait_idle()).await;
            release_port(&self.endpoint, self.local_addr);
        };
        let store_thread = self.store_thread.take();
        let store = finish_store(&self.shared.store, store_thread);
        let ((), committed) = tokio::join!(quic, store);
        if !committed {
            tracing::error!(
                "the store did not finish its last commit within {} ms; writes still queued are \
                 lost as in a crash (none of them was confirmed to anyone)",
                STORE_GRACE.as_millis()
            );
        }
        // Once quinn's endpoint driver has seen the socket go, the port can be bound again
        // (a restart in the same process); a few turns of the runtime, bounded.
        let Node {
            endpoint,
            local_addr,
            ..
        } = self;
        drop(endpoint);
        for _ in 0..20 {
            if std::net::UdpSocket::bind(local_addr).is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

/// Most time [`Node::shutdown`] takes (plus scheduling delays): the links' grace (0.5 s), then
/// the longer of QUIC's (0.5 s) and the store's (1 s), then at most 200 ms for the port.
/// `hotlined` exits this soon after SIGTERM or SIGINT (README.md, "Running two nodes").
pub const SHUTDOWN_BOUND: std::time::Duration = std::time::Duration::from_secs(2);

/// How long the links get, in all, to close their connections at shutdown.
const LINK_STOP_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// How long the endpoint gets at shutdown to send CONNECTION_CLOSE and let connections drain
/// (a few round trips even between continents; a connection still closing after it is cut).
const QUIC_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// How long shutdown waits for the store to commit what is queued (milliseconds, normally).
const STORE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// Writes the "stopped" audit row after everything queued (a closure is a barrier: queued
/// writes commit before it runs), stops the store thread and waits for it, within
/// [`STORE_GRACE`]. Returns whether it finished in time.
async fn finish_store(store: &StoreHandle, thread: Option<std::thread::JoinHandle<()>>) -> bool {
    let deadline = tokio::time::Instant::now() + STORE_GRACE;
    let stopped = store.call(|s| {
        s.audit(&[AuditEvent {
            time_ms: now_ms(),
            kind: "stopped".into(),
            peer: None,
            message_id: None,
            detail: String::new(),
        }])
    });
    let committed = tokio::time::timeout_at(deadline, stopped).await.is_ok();
    store.stop();
    let Some(thread) = thread else {
        return committed;
    };
    // Polled rather than joined on a blocking thread: a store that overruns is left behind,
    // and nothing then holds up the runtime's exit.
    while !thread.is_finished() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let _ = thread.join();
    committed
}

/// Lets go of the endpoint's UDP port now, although a closed connection may still be in its
/// closing period: quinn keeps one, and with it the socket, for three PTOs, which is 3 s for a
/// dial the peer never answered (no RTT sample: 333 ms initial RTT). Its CONNECTION_CLOSE has
/// been sent; what remains would only repeat it. The endpoint moves to a throwaway loopback
/// socket, twice, since quinn keeps the previous socket of a migration until traffic arrives
/// on the new one. A process exit frees the port anyway; this is for a restart in the same
/// process. On failure the port is freed when the closing periods end.
fn release_port(endpoint: &quinn::Endpoint, local: std::net::SocketAddr) {
    let loopback: std::net::SocketAddr = if local.is_ipv6() {
        (std::net::Ipv6Addr::LOCALHOST, 0).into()
    } else {
        (std::net::Ipv4Addr::LOCALHOST, 0).into()
    };
    for _ in 0..2 {
        match std::net::UdpSocket::bind(loopback) {
            Ok(s) => {
                if let Err(e) = endpoint.rebind(s) {
                    tracing::debug!("cannot move the endpoint off its port: {e}");
                    return;
                }
            }
            Err(e) => {
                tracing::debug!("cannot move the endpoint off its port: {e}");
                return;
            }
        }
    }
}
