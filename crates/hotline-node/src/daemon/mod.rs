//! `hotlined run`: the node.
//!
//! One tokio runtime (current-thread: on two cores a multi-threaded runtime measured slower)
//! drives the QUIC endpoint and one task per peer link; cryptography runs on a pool of worker
//! threads sized to the cores; the database lives on its own thread.

pub mod link;
pub mod metrics;
pub mod operator_api;
pub mod pool;
pub mod storage;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::content::{OpenedContent, Precedence, SignedContent, Tlp};
use hotline_protocol::envelope::{Envelope, MessageId, SealParams};
use hotline_protocol::identity::{EncryptionKey, NodeId};
use hotline_protocol::session::Config as SessionConfig;
use prost::Message;
use tokio::sync::mpsc;

use crate::commands::CommandError;
use crate::config::{self, Config};
use crate::store::sqlite::SqliteStore;
use crate::store::{AuditEvent, Store, Submission};
use hotline_transport::material::Material;
use hotline_transport::now_ms;
use hotline_transport::tls::{self, PeerTrust};
use link::{LinkCtx, LinkMsg};
use metrics::SharedMetrics;
use pool::CryptoPool;
use storage::StoreHandle;

/// Sets up logging to stderr: text or JSON lines; `RUST_LOG` overrides the level (default info).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        b.json().try_init()
    } else {
        b.try_init()
    };
}

/// Runs the node in `dir` until SIGTERM or SIGINT.
pub fn run(dir: &Path, metrics_addr: Option<&str>) -> Result<(), CommandError> {
    let cfg = Config::load(dir)?;
    let material = Material::load(dir)?;
    let store = SqliteStore::open(&dir.join(config::DB_FILE))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let node = Node::start(cfg, material, Box::new(store), metrics_addr).await?;
        wait_for_signal().await;
        tracing::info!("shutting down");
        node.shutdown().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubmitError {
    /// The recipient is not a pinned peer.
    #[error("unknown peer: {0}; `hotlined peer list` shows the pinned peers")]
    UnknownPeer(String),
    /// The content is not validly signed by an officer of this node.
    #[error("content refused: {0}")]
    Content(String),
    /// The peer has no encryption key valid now.
    #[error("the peer has no encryption key valid now; ask them for a new bundle")]
    NoPeerKey,
    /// Storage failed: the message was not accepted.
    #[error("not accepted, storage failed: {0}")]
    Store(String),
}

impl SubmitError {
    /// The operator API error code for this refusal.
    pub fn code(&self) -> hotline_protocol::wire::OperatorErrorCode {
        use hotline_protocol::wire::OperatorErrorCode as C;
        match self {
            SubmitError::UnknownPeer(_) => C::UnknownPeer,
            SubmitError::Content(_) => C::BadContent,
            SubmitError::NoPeerKey => C::BadRequest,
            SubmitError::Store(_) => C::Unavailable,
        }
    }
}

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
    link_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Accept loop, operator-pin reloader, metrics server: stopped at shutdown, so the UDP
    /// port and the store are released when `shutdown` returns.
    background: Vec<tokio::task::JoinHandle<()>>,
    store_thread: Option<std::thread::JoinHandle<()>>,
}

/// What the node's tasks share: the links, the store, the workers, the metrics, and what the
/// operator API needs to answer.
pub struct Shared {
    /// This node's identity.
    pub id: NodeId,
    /// This node's name.
    pub name: String,
    /// The identity key (signs receipts).
    pub identity: Arc<hotline_protocol::identity::IdentityKey>,
    material: Arc<Material>,
    /// This node's peer bundle bytes.
    pub own_bundle: Bytes,
    peers: Vec<(crate::store::PeerRecord, PeerBundle)>,
    links: HashMap<NodeId, mpsc::UnboundedSender<LinkMsg>>,
    peer_keys: Arc<Mutex<HashMap<NodeId, Vec<EncryptionKey>>>>,
    /// The store thread.
    pub store: StoreHandle,
    /// The crypto workers.
    pub pool: CryptoPool,
    /// Metrics.
    pub metrics: SharedMetrics,
    /// Events for operators watching (`hotline watch`).
    pub events: tokio::sync::broadcast::Sender<hotline_protocol::wire::OperatorEvent>,
    deadlines: crate::config::Deadlines,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shared({})", self.id)
    }
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
        let peers = store.peers()?;
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
        let peer_keys: HashMap<NodeId, Vec<EncryptionKey>> = bundles
            .iter()
            .map(|(p, b)| (p.identity, b.encryption_keys().to_vec()))
            .collect();
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

        use crate::store::TrustMode;
        // Trust (SPEC.md §3.6): every peer is known by its bundle's SPKI pin; a peer in private
        // CA mode must in addition present a certificate the CA of `[ca]` vouches for.
        let ca = match &cfg.ca {
            Some(c) => Some(c.load().map_err(CommandError)?),
            None => None,
        };
        if let Some(ca) = &ca {
            for problem in tls::check_ca(ca, now) {
                tracing::warn!("[ca]: {problem}");
            }
        }
        let mut pinned = Vec::new();
        let mut ca_pinned = Vec::new();
        // Operators' TLS keys are pinned too; the ALPN decides which role a key may play
        // (SPEC.md §15.3): accept_loop refuses an operator key on hotline/1 and the reverse.
        for op in store.operators()? {
            if op.revoked_ms.is_none() {
                pinned.push(op.tls_spki_sha256);
            }
        }
        for (p, b) in &bundles {
            match p.trust {
                TrustMode::Pinned => pinned.push(*b.tls_spki_sha256()),
                TrustMode::Ca if ca.is_some() => ca_pinned.push(*b.tls_spki_sha256()),
                TrustMode::Ca => {
                    return Err(CommandError(format!(
                        "peer {} is trusted through a private CA (--trust ca) but {} has no \
                         [ca] section; add one (see `hotlined check`)",
                        p.alias,
                        config::CONFIG_FILE
                    )));
                }
            }
        }
        let peer_trust = |mode: TrustMode, pin: [u8; 32]| match (mode, &ca) {
            (TrustMode::Ca, Some(ca)) => PeerTrust::Mixed {
                pinned: Vec::new(),
                ca: Some((ca.clone(), vec![pin])),
            },
            _ => PeerTrust::Pinned {
                spki_sha256: vec![pin],
            },
        };
        // One listener for every peer: a client certificate is accepted for a pinned peer's
        // key, or for a CA peer's key with the full private CA validation.
        let peer_pins = pinned.clone();
        let ca_part = ca
            .clone()
            .filter(|_| !ca_pinned.is_empty())
            .map(|ca| (ca, ca_pinned));
        let trust = PeerTrust::Mixed {
            pinned,
            ca: ca_part.clone(),
        };
        let limits = tls::TransportLimits {
            max_inflight: cfg.limits.max_inflight,
            ..Default::default()
        };
        let server_config = tls::server_config(
            &material.tls,
            &trust,
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
            .map(|b| b.bytes().clone())
            .map_err(|e| CommandError(format!("cannot make this node's bundle: {e}")))?;
        let mut material = material;
        let keys = Arc::new(std::mem::take(&mut material.encryption));
        let material = Arc::new(material);

        let mut pending = Vec::new();
        for (p, b) in &bundles {
            // Only a window of the backlog is held in memory; the link pages in the rest.
            let envs: Vec<Envelope> = store
                .pending_window(&p.identity, &Default::default(), cfg.limits.outbox_window)?
                .into_iter()
                .filter_map(|b| Envelope::parse(b).ok())
                .collect();
            let receipts = store
                .unconfirmed_receipts(&p.identity)?
                .into_iter()
                .filter_map(|r| {
                    hotline_protocol::receipt::Receipt::verify(&r, &material.identity.id()).ok()
                })
                .collect::<Vec<_>>();
            let restore = (
                store.received_sequences(&p.identity)?,
                store.last_sequence(&p.identity)?,
            );
            pending.push((p.clone(), b.clone(), envs, receipts, restore));
        }
        store.audit(&[AuditEvent {
            time_ms: now,
            kind: "started".into(),
            peer: None,
            message_id: None,
            detail: format!("listening on {local_addr}"),
        }])?;
        let (store, store_thread) = StoreHandle::start(store)?;

        let mut links = HashMap::new();
        let mut link_tasks = Vec::new();
        let (events, _) = tokio::sync::broadcast::channel(1024);
        let peer_keys = Arc::new(Mutex::new(peer_keys));
        let mut by_spki: HashMap<[u8; 32], (String, mpsc::UnboundedSender<LinkMsg>)> =
            HashMap::new();
        for (p, b, envs, receipts, restore) in pending {
            // Private CA mode: the dialed host must be a subjectAltName of the peer's certificate.
            let client_config = tls::client_config(
                &material.tls,
                &peer_trust(p.trust, *b.tls_spki_sha256()),
                hotline_protocol::ALPN,
                &limits,
            )?;
            let (tx, rx) = mpsc::unbounded_channel();
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
                ..Default::default()
            };
            metrics::peer(&metrics, &p.alias, |m| m.up = false);
            let ctx = LinkCtx {
                identity: material.identity.clone(),
                keys: keys.clone(),
                alias: p.alias.clone(),
                bundle: b.clone(),
                address: p.address.clone(),
                endpoint: endpoint.clone(),
                client_config,
                session,
                pool: pool.clone(),
                store: store.clone(),
                metrics: metrics.clone(),
                tx: tx.clone(),
                pending: envs,
                pending_receipts: receipts,
                restore,
                window: cfg.limits.outbox_window,
                deadlines: cfg.deadlines.clone(),
                events: events.clone(),
                shared_keys: peer_keys.clone(),
            };
            by_spki.insert(*b.tls_spki_sha256(), (p.alias.clone(), tx.clone()));
            links.insert(p.identity, tx);
            link_tasks.push(tokio::spawn(link::run(ctx, rx)));
        }
        let shared = Arc::new(Shared {
            id: material.identity.id(),
            name: cfg.name.clone(),
            identity: material.identity.clone(),
            material: material.clone(),
            own_bundle,
            peers: bundles,
            links,
            peer_keys,
            store,
            pool,
            metrics,
            events,
            deadlines: cfg.deadlines.clone(),
        });
        let mut background = vec![tokio::spawn(accept_loop(
            endpoint.clone(),
            by_spki,
            shared.clone(),
        ))];
        background.push(tokio::spawn(reload_operator_pins(
            endpoint.clone(),
            shared.clone(),
            material.tls.clone(),
            peer_pins,
            ca_part,
            limits,
        )));
        let metrics = shared.metrics.clone();

        let metrics_addr = match metrics_addr {
            Some(a) => {
                let l = tokio::net::TcpListener::bind(a)
                    .await
                    .map_err(|e| CommandError(format!("cannot serve metrics on {a}: {e}")))?;
                let addr = l.local_addr()?;
                background.push(tokio::spawn(metrics::serve(l, metrics.clone())));
                Some(addr)
            }
            None => None,
        };
        tracing::info!(id = %shared.id, %local_addr, peers = shared.links.len(), "node running");
        Ok(Node {
            id: shared.id,
            local_addr,
            metrics_addr,
            shared,
            endpoint,
            link_tasks,
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

    /// Closes every link with SHUTDOWN, lets queued storage finish, and stops.
    pub async fn shutdown(mut self) {
        for tx in self.shared.links.values() {
            let _ = tx.send(LinkMsg::Shutdown);
        }
        for t in self.link_tasks.drain(..) {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), t).await;
        }
        for t in self.background.drain(..) {
            t.abort();
            let _ = t.await;
        }
        self.endpoint.close(
            quinn::VarInt::from_u32(hotline_protocol::CloseCode::Shutdown.code()),
            b"node shutting down",
        );
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), self.endpoint.wait_idle())
            .await;
        let _ = self
            .shared
            .store
            .call(|s| {
                s.audit(&[AuditEvent {
                    time_ms: now_ms(),
                    kind: "stopped".into(),
                    peer: None,
                    message_id: None,
                    detail: String::new(),
                }])
            })
            .await;
        self.shared.store.stop();
        if let Some(t) = self.store_thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        // Let quinn's endpoint driver see its last handle go and release the UDP socket, so a
        // restart can bind the port as soon as this returns (bounded wait).
        let Node {
            endpoint,
            local_addr,
            ..
        } = self;
        drop(endpoint);
        for _ in 0..200 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            if std::net::UdpSocket::bind(local_addr).is_ok() {
                break;
            }
        }
    }
}

impl Shared {
    /// Accepts a message an officer signed: stores it durably (then it is accepted and its
    /// id may be shown), seals it and queues it for the peer.
    pub async fn submit(
        &self,
        to: NodeId,
        message_id: MessageId,
        precedence: Precedence,
        tlp: Tlp,
        content: SignedContent,
    ) -> Result<(MessageId, u64), SubmitError> {
        if !self.links.contains_key(&to) {
            return Err(SubmitError::UnknownPeer(to.to_string()));
        }
        let me = self.id;
        let bytes = Bytes::copy_from_slice(content.as_bytes());
        let opened = self
            .pool
            .run(move || OpenedContent::parse(&bytes, &message_id, &me, &to, now_ms()))
            .await
            .ok_or_else(|| SubmitError::Store("worker pool stopped".into()))?
            .map_err(|e| SubmitError::Content(e.to_string()))?;
        self.submit_opened(to, message_id, precedence, tlp, opened)
            .await
    }

    /// [`Shared::submit`] for content already checked with [`OpenedContent::parse`] against
    /// this message id, this node and `to` (the operator API checks it to compare the
    /// officer key with the caller's credential; checking it twice would cost one more strict
    /// signature verification per message).
    pub async fn submit_opened(
        &self,
        to: NodeId,
        message_id: MessageId,
        precedence: Precedence,
        tlp: Tlp,
        opened: OpenedContent,
    ) -> Result<(MessageId, u64), SubmitError> {
        let link = self
            .links
            .get(&to)
            .ok_or_else(|| SubmitError::UnknownPeer(to.to_string()))?
            .clone();
        let now = now_ms();
        let bytes = opened.plaintext.clone();
        let keys = self
            .peer_keys
            .lock()
            .map(|g| g.get(&to).cloned().unwrap_or_default())
            .unwrap_or_default();
        if EncryptionKey::select(&keys, now).is_none() {
            return Err(SubmitError::NoPeerKey);
        }
        let submission = Submission {
            message_id,
            peer: to,
            precedence,
            tlp: tlp.as_str().trim_start_matches("TLP:").to_ascii_lowercase(),
            created_ms: now,
            content: bytes,
            subject: opened.draft.subject.clone(),
            officer: opened.officer.name().to_owned(),
        };
        let s2 = submission.clone();
        let seq = match self.store.submit(s2).await {
            Some(Ok(seq)) => seq,
            Some(Err(e)) => return Err(SubmitError::Store(e.to_string())),
            None => return Err(SubmitError::Store("store stopped".into())),
        };
        metrics::count(&self.metrics, "accepted", 1);
        // Durable from here on: seal and queue. A crash now is recovered at start-up.
        let material = self.material.clone();
        let sealed = self
            .pool
            .run(move || {
                seal(
                    &material,
                    &submission,
                    seq,
                    &keys,
                    &mut rand_core::UnwrapErr(getrandom::SysRng),
                )
            })
            .await
            .ok_or_else(|| SubmitError::Store("worker pool stopped".into()))?;
        match sealed {
            Ok(env) => {
                let att = (message_id, env.bytes().clone(), *env.sha256());
                if let Some(Ok(())) = self.store.attach(att).await {
                    let _ = link.send(LinkMsg::Send(Box::new(env)));
                } else {
                    tracing::error!(
                        "cannot store a sealed envelope; it will be sealed again at restart"
                    );
                }
            }
            Err(e) => tracing::error!(
                "cannot seal an accepted message: {e}; it will be sealed again at restart"
            ),
        }
        self.event(
            "submitted",
            Some(to),
            Some(message_id),
            format!("sequence {seq}"),
        );
        Ok((message_id, seq))
    }

    /// Announces an event to watching operators (and nobody else: the audit trail is separate).
    pub fn event(
        &self,
        kind: &str,
        peer: Option<NodeId>,
        message_id: Option<MessageId>,
        detail: String,
    ) {
        let _ = self.events.send(hotline_protocol::wire::OperatorEvent {
            time_ms: now_ms(),
            kind: kind.to_owned(),
            peer: peer.map(|p| self.alias(&p)).unwrap_or_default(),
            message_id: message_id.map(|m| m.to_vec().into()).unwrap_or_default(),
            detail,
        });
    }

    /// The alias of a peer (its id text if unknown).
    pub fn alias(&self, id: &NodeId) -> String {
        self.peers
            .iter()
            .find(|(p, _)| p.identity == *id)
            .map(|(p, _)| p.alias.clone())
            .unwrap_or_else(|| id.to_string())
    }

    /// A peer named by alias or node id text.
    pub fn resolve_peer(&self, name: &str) -> Option<NodeId> {
        let by_alias = self
            .peers
            .iter()
            .find(|(p, _)| p.alias == name)
            .map(|(p, _)| p.identity);
        by_alias.or_else(|| {
            name.parse::<NodeId>()
                .ok()
                .filter(|id| self.links.contains_key(id))
        })
    }

    /// A peer's bundle bytes (empty if unknown).
    pub fn peer_bundle(&self, id: &NodeId) -> Bytes {
        self.peers
            .iter()
            .find(|(p, _)| p.identity == *id)
            .map(|(_, b)| b.bytes().clone())
            .unwrap_or_default()
    }

    /// Queues an asynchronous receipt (already stored) to a peer.
    pub fn send_receipt(&self, peer: NodeId, receipt: hotline_protocol::receipt::Receipt) {
        if let Some(tx) = self.links.get(&peer) {
            let _ = tx.send(LinkMsg::SendReceipt(Box::new(receipt)));
        }
    }

    /// The operator API's view of the pinned peers.
    pub fn peer_infos(&self) -> Vec<hotline_protocol::wire::PeerInfo> {
        self.peers
            .iter()
            .map(|(p, b)| hotline_protocol::wire::PeerInfo {
                alias: p.alias.clone(),
                node: p.identity.to_string(),
                fingerprint: p.identity.fingerprint(),
                name: b.name().to_owned(),
                address: p.address.clone(),
                trust: p.trust.as_str().to_owned(),
            })
            .collect()
    }

    /// Per-link status for the operator API.
    pub fn status(&self) -> hotline_protocol::wire::StatusResponse {
        let m = self.metrics.lock().ok();
        let links = self
            .peers
            .iter()
            .map(|(p, _)| {
                let pm = m
                    .as_ref()
                    .and_then(|g| g.peers.get(&p.alias).cloned())
                    .unwrap_or_default();
                hotline_protocol::wire::LinkStatus {
                    peer: p.alias.clone(),
                    node: p.identity.to_string(),
                    up: pm.up,
                    since_ms: pm.since_ms,
                    rtt_ms: pm.rtt_ms.unwrap_or(0),
                    last_received_ms: pm.last_received_ms,
                    queue: pm.queue,
                    overdue: pm.overdue,
                    gaps: pm.gaps,
                    group: pm.group.unwrap_or_default(),
                    oldest_pending_ms: pm.oldest_pending_ms,
                }
            })
            .collect();
        hotline_protocol::wire::StatusResponse {
            node: self.id.to_string(),
            name: self.name.clone(),
            links,
        }
    }

    /// The operator API's summary of a stored message.
    pub fn summary(&self, m: &crate::store::MessageRow) -> hotline_protocol::wire::MessageSummary {
        use hotline_protocol::wire;
        let precedence = match m.precedence {
            Precedence::Flash => wire::Precedence::Flash,
            Precedence::Immediate => wire::Precedence::Immediate,
            Precedence::Priority => wire::Precedence::Priority,
            Precedence::Routine => wire::Precedence::Routine,
        };
        let tlp = match m.tlp.parse::<Tlp>() {
            Ok(Tlp::Clear) => wire::Tlp::Clear,
            Ok(Tlp::Green) => wire::Tlp::Green,
            Ok(Tlp::Amber) => wire::Tlp::Amber,
            Ok(Tlp::AmberStrict) => wire::Tlp::AmberStrict,
            Ok(Tlp::Red) => wire::Tlp::Red,
            Err(_) => wire::Tlp::Unspecified,
        };
        let pending = matches!(m.state.as_str(), "pending" | "unsealed");
        let overdue = !m.incoming
            && pending
            && now_ms().saturating_sub(m.created_ms) > self.deadlines.for_precedence(m.precedence);
        wire::MessageSummary {
            message_id: m.message_id.to_vec().into(),
            peer: self.alias(&m.peer),
            incoming: m.incoming,
            sequence: m.sequence,
            precedence: precedence as i32,
            tlp: tlp as i32,
            created_ms: m.created_ms,
            received_ms: m.received_ms,
            subject: m.subject.clone(),
            officer: m.officer.clone(),
            state: if m.state == "unsealed" {
                "pending".into()
            } else {
                m.state.clone()
            },
            overdue,
        }
    }
}

fn seal(
    material: &Material,
    s: &Submission,
    sequence: u64,
    peer_keys: &[EncryptionKey],
    rng: &mut impl rand_core::CryptoRng,
) -> Result<Envelope, String> {
    let key = EncryptionKey::select(peer_keys, s.created_ms)
        .ok_or("the peer has no encryption key valid at creation time")?;
    let tlp: Tlp = s.tlp.parse().map_err(|e: &str| e.to_owned())?;
    Envelope::seal(
        &material.identity,
        &SealParams {
            recipient: s.peer,
            recipient_key: key,
            message_id: s.message_id,
            sequence,
            created: s.created_ms,
            precedence: s.precedence,
            tlp,
        },
        &SignedContent::from_bytes(s.content.to_vec()),
        rng,
    )
    .map_err(|e| e.to_string())
}

/// Watches the operator table: an operator added or revoked with `hotlined operator` while the
/// node runs can connect (or no longer can) within a few seconds, without a restart. Existing
/// connections are re-checked per request.
async fn reload_operator_pins(
    endpoint: quinn::Endpoint,
    shared: Arc<Shared>,
    tls_key: tls::NodeTlsKey,
    peer_pins: Vec<[u8; 32]>,
    ca: Option<(tls::CaRoots, Vec<[u8; 32]>)>,
    limits: tls::TransportLimits,
) {
    let active = |ops: Vec<crate::store::OperatorRecord>| -> std::collections::BTreeSet<[u8; 32]> {
        ops.into_iter()
            .filter(|o| o.revoked_ms.is_none())
            .map(|o| o.tls_spki_sha256)
            .collect()
    };
    let mut current = match shared.store.call(|s| s.operators()).await {
        Some(Ok(ops)) => active(ops),
        _ => return,
    };
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3));
    loop {
        tick.tick().await;
        let ops = match shared.store.call(|s| s.operators()).await {
            Some(Ok(ops)) => active(ops),
            Some(Err(e)) => {
                tracing::warn!("cannot read operators: {e}");
                continue;
            }
            None => return,
        };
        if ops == current {
            continue;
        }
        let mut pinned = peer_pins.clone();
        pinned.extend(ops.iter().copied());
        let trust = PeerTrust::Mixed {
            pinned,
            ca: ca.clone(),
        };
        match tls::server_config(
            &tls_key,
            &trust,
            &[hotline_protocol::ALPN, hotline_protocol::OPERATOR_ALPN],
            &limits,
        ) {
            Ok(cfg) => {
                endpoint.set_server_config(Some(cfg));
                tracing::info!(operators = ops.len(), "operator credentials reloaded");
                current = ops;
            }
            Err(e) => tracing::warn!("cannot rebuild the server configuration: {e}"),
        }
    }
}

async fn accept_loop(
    endpoint: quinn::Endpoint,
    by_spki: HashMap<[u8; 32], (String, mpsc::UnboundedSender<LinkMsg>)>,
    shared: Arc<Shared>,
) {
    let by_spki = Arc::new(by_spki);
    while let Some(incoming) = endpoint.accept().await {
        let by_spki = by_spki.clone();
        let shared = shared.clone();
        tokio::spawn(async move {
            let metrics = &shared.metrics;
            let remote = incoming.remote_address();
            let conn =
                match tokio::time::timeout(std::time::Duration::from_secs(10), incoming).await {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) => {
                        let reason = tls::connection_failure_reason(&e);
                        tracing::warn!(%remote, reason, "refused connection: {e}");
                        metrics::handshake_failure(metrics, reason);
                        return;
                    }
                    Err(_) => {
                        metrics::handshake_failure(metrics, "timeout");
                        return;
                    }
                };
            let spki = tls::peer_certificate(&conn).and_then(|c| tls::spki_sha256(&c).ok());
            let alpn = conn
                .handshake_data()
                .and_then(|d| d.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
                .and_then(|d| d.protocol);
            let refuse = |reason: &'static str, why: &'static [u8]| {
                metrics::handshake_failure(metrics, reason);
                conn.close(
                    quinn::VarInt::from_u32(hotline_protocol::CloseCode::ProtocolViolation.code()),
                    why,
                );
            };
            // The ALPN decides the role a pinned key may play (SPEC.md §15.3).
            if alpn.as_deref() == Some(hotline_protocol::OPERATOR_ALPN) {
                let Some(spki) = spki else {
                    return refuse("unknown_certificate", b"no certificate");
                };
                let found = shared
                    .store
                    .call(move |s| {
                        s.operators()
                            .map(|ops| ops.into_iter().find(|o| o.tls_spki_sha256 == spki))
                    })
                    .await;
                match found {
                    Some(Ok(Some(record))) if record.revoked_ms.is_none() => {
                        let credential = hotline_protocol::wire::OfficerCredential::decode(
                            record.credential.clone(),
                        )
                        .ok()
                        .and_then(|w| {
                            hotline_protocol::officer::Credential::verify(&w, &shared.id).ok()
                        });
                        match credential {
                            Some(credential) => {
                                tokio::spawn(operator_api::serve(
                                    shared.clone(),
                                    conn,
                                    operator_api::Operator { record, credential },
                                ));
                            }
                            None => refuse("other", b"stored operator credential invalid"),
                        }
                    }
                    Some(Ok(Some(_))) => refuse("revoked", b"operator credential revoked"),
                    _ => refuse(
                        "unknown_certificate",
                        b"not an operator credential of this node",
                    ),
                }
                return;
            }
            match spki.and_then(|s| by_spki.get(&s)) {
                Some((alias, tx)) => {
                    tracing::debug!(%remote, peer = %alias, "accepted connection");
                    let _ = tx.send(LinkMsg::Incoming(conn));
                }
                None => refuse("unknown_certificate", b"certificate not pinned for a peer"),
            }
        });
    }
}
