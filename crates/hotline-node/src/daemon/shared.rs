//! What the node's tasks share, and the views of it the operator API answers with: aliases,
//! peers, link status, message summaries and operator events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use super::link::LinkMsg;
use super::metrics::SharedMetrics;
use super::pool::CryptoPool;
use super::registry::{LinkEnv, Registry};
use super::storage::StoreHandle;
use bytes::Bytes;
use hotline_protocol::content::{Precedence, Tlp};
use hotline_protocol::envelope::MessageId;
use hotline_protocol::identity::{EncryptionKey, NodeId};
use hotline_transport::now_ms;

/// What the node's tasks share: the links, the store, the workers, the metrics, and what the
/// operator API needs to answer.
pub struct Shared {
    /// This node's identity.
    pub id: NodeId,
    /// This node's name.
    pub name: String,
    /// The identity key (signs receipts).
    pub identity: Arc<hotline_protocol::identity::IdentityKey>,
    /// This node's peer bundle bytes (rewritten when its encryption keys change).
    pub(super) own_bundle: RwLock<Bytes>,
    /// Peers and operators as the administrator set them (changed by [`Shared::reload`]).
    /// Never held across an await.
    pub(super) registry: RwLock<Registry>,
    /// Bumped by every reload: operator connections and Watch streams re-check then.
    pub(super) changes: tokio::sync::watch::Sender<u64>,
    /// One reload at a time.
    pub(super) reloading: tokio::sync::Mutex<()>,
    /// What links are made with.
    pub(super) env: LinkEnv,
    /// The QUIC endpoint (links dial from it; reloads replace its server configuration).
    /// Taken at shutdown, so that no task holding `Shared` keeps the UDP port open.
    pub(super) endpoint: Mutex<Option<quinn::Endpoint>>,
    pub(super) peer_keys: Arc<Mutex<HashMap<NodeId, Vec<EncryptionKey>>>>,
    /// The store thread.
    pub store: StoreHandle,
    /// The crypto workers.
    pub pool: CryptoPool,
    /// Metrics.
    pub metrics: SharedMetrics,
    /// Events for operators watching (`hotline watch`).
    pub events: tokio::sync::broadcast::Sender<hotline_protocol::wire::OperatorEvent>,
    pub(super) deadlines: crate::config::Deadlines,
    /// Disk-space floor and per-peer quota (SPEC.md §13.3).
    pub guard: Arc<super::guard::StorageGuard>,
    /// A next TLS key announced to the peers, until the node switches to it (SPEC.md §3.6.1).
    pub tls_pending: std::sync::Mutex<Option<super::tls_rotation::PendingTls>>,
    /// Which of our bundles each peer told us it holds (SPEC.md §4.4.4), by SHA-256.
    pub bundles_held: std::sync::Mutex<std::collections::HashMap<NodeId, [u8; 32]>>,
    /// Key revocations: ours and the peers' (SPEC.md §4.6).
    pub revocations: Arc<super::revocations::RevocationBook>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shared({})", self.id)
    }
}

impl Shared {
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
        self.registry
            .read()
            .ok()
            .and_then(|r| r.peer(id).map(|l| l.record.alias.clone()))
            .unwrap_or_else(|| id.to_string())
    }

    /// A pinned peer named by alias, node id text, or its bundle's name if no other peer has it
    /// (SPEC.md §15.5).
    pub fn resolve_peer(&self, name: &str) -> Option<NodeId> {
        let reg = self.registry.read().ok()?;
        let by_alias = reg
            .peers
            .iter()
            .find(|l| l.record.alias == name)
            .map(|l| l.record.identity);
        by_alias
            .or_else(|| {
                name.parse::<NodeId>()
                    .ok()
                    .filter(|id| reg.peer(id).is_some())
            })
            .or_else(|| {
                // The name the peer's bundle gives itself, if exactly one peer has it.
                let mut named = reg.peers.iter().filter(|l| l.bundle.name() == name);
                match (named.next(), named.next()) {
                    (Some(l), None) => Some(l.record.identity),
                    _ => None,
                }
            })
    }

    /// A peer's current bundle bytes; for a peer no longer pinned, the last bundle it had
    /// (empty if none was ever installed).
    pub fn peer_bundle(&self, id: &NodeId) -> Bytes {
        let Ok(reg) = self.registry.read() else {
            return Bytes::new();
        };
        if let Some(l) = reg.peer(id) {
            return l.bundle.bytes().clone();
        }
        reg.bundles
            .iter()
            .rev()
            .find(|b| b.identity == *id)
            .map(|b| b.bundle.clone())
            .unwrap_or_default()
    }

    /// The QUIC endpoint, unless the node is shutting down.
    pub(super) fn endpoint(&self) -> Option<quinn::Endpoint> {
        self.endpoint.lock().ok()?.clone()
    }

    /// This node's current bundle bytes.
    pub fn own_bundle(&self) -> Bytes {
        self.own_bundle
            .read()
            .map(|b| b.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    pub(super) fn set_own_bundle(&self, bundle: Bytes) {
        match self.own_bundle.write() {
            Ok(mut b) => *b = bundle,
            Err(e) => *e.into_inner() = bundle,
        }
    }

    /// The newest encryption key of each pinned peer, and the TLS certificate it presented
    /// last, by alias (SPEC.md §4.3.3).
    pub(super) fn peer_key_expiries(&self) -> Vec<crate::expiry::Expiry> {
        let aliases: Vec<(NodeId, String)> = self
            .registry
            .read()
            .map(|r| {
                r.peers
                    .iter()
                    .map(|l| (l.record.identity, l.record.alias.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let mut out =
            match self.peer_keys.lock() {
                Ok(keys) => crate::expiry::of_peers(aliases.iter().filter_map(|(id, alias)| {
                    keys.get(id).map(|k| (alias.as_str(), k.as_slice()))
                })),
                Err(_) => Vec::new(),
            };
        if let Ok(m) = self.metrics.lock() {
            out.extend(super::metrics::peer_tls_expiries(&m));
        }
        out
    }

    /// The channels of every pinned peer's link.
    pub(super) fn links(&self) -> Vec<tokio::sync::mpsc::UnboundedSender<LinkMsg>> {
        self.registry
            .read()
            .map(|r| r.peers.iter().map(|l| l.tx.clone()).collect())
            .unwrap_or_default()
    }

    /// The link channel of a pinned peer.
    pub(super) fn link(&self, id: &NodeId) -> Option<tokio::sync::mpsc::UnboundedSender<LinkMsg>> {
        self.registry.read().ok()?.peer(id).map(|l| l.tx.clone())
    }

    /// Queues an asynchronous receipt (already stored) to a peer.
    pub fn send_receipt(&self, peer: NodeId, receipt: hotline_protocol::receipt::Receipt) {
        if let Some(tx) = self.link(&peer) {
            let _ = tx.send(LinkMsg::SendReceipt(Box::new(receipt)));
        }
    }

    /// The operator API's view of the pinned peers.
    pub fn peer_infos(&self) -> Vec<hotline_protocol::wire::PeerInfo> {
        let Ok(reg) = self.registry.read() else {
            return Vec::new();
        };
        let m = self.metrics.lock().ok();
        reg.peers
            .iter()
            .map(|l| hotline_protocol::wire::PeerInfo {
                alias: l.record.alias.clone(),
                node: l.record.identity.to_string(),
                fingerprint: l.record.identity.fingerprint(),
                name: l.bundle.name().to_owned(),
                address: l.record.address.clone(),
                trust: l.record.trust.as_str().to_owned(),
                version: m
                    .as_ref()
                    .and_then(|m| m.peers.get(&l.record.alias))
                    .map_or(0, |p| p.version),
            })
            .collect()
    }

    /// Per-link status for the operator API.
    pub fn status(&self) -> hotline_protocol::wire::StatusResponse {
        let peers: Vec<(String, NodeId)> = self
            .registry
            .read()
            .map(|r| {
                r.peers
                    .iter()
                    .map(|l| (l.record.alias.clone(), l.record.identity))
                    .collect()
            })
            .unwrap_or_default();
        let m = self.metrics.lock().ok();
        let links = peers
            .iter()
            .map(|(alias, identity)| {
                let pm = m
                    .as_ref()
                    .and_then(|g| g.peers.get(alias).cloned())
                    .unwrap_or_default();
                hotline_protocol::wire::LinkStatus {
                    peer: alias.clone(),
                    node: identity.to_string(),
                    up: pm.up,
                    since_ms: pm.since_ms,
                    rtt_ms: pm.rtt_whole_ms(),
                    last_received_ms: pm.last_received_ms,
                    queue: pm.queue,
                    overdue: pm.overdue,
                    gaps: pm.gaps,
                    group: pm.group.unwrap_or_default(),
                    oldest_pending_ms: pm.oldest_pending_ms,
                    stored_bytes: self.guard.stored(identity),
                    quota_bytes: self.guard.quota(),
                    clock_skew_ms: pm.clock_skew_ms.unwrap_or(0),
                    unsealed: pm.unsealed,
                    gap_claim_capped: pm.claim_capped.unwrap_or(0),
                }
            })
            .collect();
        let mut expiries: Vec<hotline_protocol::wire::Expiry> = m
            .as_ref()
            .map(|g| {
                g.expiries
                    .iter()
                    .filter(|e| e.kind != "peer_tls_certificate")
                    .chain(&super::metrics::peer_tls_expiries(g))
                    .map(|e| hotline_protocol::wire::Expiry {
                        kind: e.kind.to_owned(),
                        name: e.name.clone(),
                        at_ms: e.at_ms,
                    })
                    .collect()
            })
            .unwrap_or_default();
        expiries.sort_by_key(|e| e.at_ms);
        hotline_protocol::wire::StatusResponse {
            node: self.id.to_string(),
            name: self.name.clone(),
            links,
            // u64::MAX until the first sample (a database in memory is never sampled).
            disk_free_bytes: match self.guard.free() {
                u64::MAX => 0,
                free => free,
            },
            disk_floor_bytes: self.guard.min_free(),
            refusing_new_messages: self.guard.refusing(),
            expiries,
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
