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

mod listener;
mod run;
mod shared;
mod submit;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::content::{Precedence, SignedContent, Tlp};
use hotline_protocol::envelope::{Envelope, MessageId};
use hotline_protocol::identity::{EncryptionKey, NodeId};
use hotline_protocol::session::Config as SessionConfig;
use tokio::sync::mpsc;

use crate::commands::CommandError;
use crate::config::{self, Config};
use crate::store::{AuditEvent, Store};
use hotline_transport::material::Material;
use hotline_transport::now_ms;
use hotline_transport::tls::{self, PeerTrust};
use link::{LinkCtx, LinkMsg};
use listener::{accept_loop, reload_operator_pins};
use metrics::SharedMetrics;
use pool::CryptoPool;
use storage::StoreHandle;
use submit::seal;

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
    link_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Accept loop, operator-pin reloader, metrics server: stopped at shutdown, so the UDP
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
