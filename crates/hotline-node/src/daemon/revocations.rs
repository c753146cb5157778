//! Key revocations held by the running node (SPEC.md §4.6): its own, announced to every peer
//! on a version 2 link, and each peer's, consulted when an envelope from it is opened.
//!
//! The store is the record; this is its copy in memory, replaced from the store at each reload
//! (after `hotlined keys revoke` or `operator remove`) and added to as peers send theirs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hotline_protocol::NodeId;
use hotline_protocol::revocation::Revocation;
use hotline_protocol::session::MAX_REVOCATIONS;
use hotline_transport::request::fingerprint;
use hotline_transport::time::utc_second;

/// Most revocations kept per issuer, ours included: what one connection may carry.
pub const MAX_PER_ISSUER: usize = MAX_REVOCATIONS;

/// The revocations the node holds, by issuer.
#[derive(Default)]
pub struct RevocationBook {
    me: Option<NodeId>,
    by_issuer: Mutex<HashMap<NodeId, Arc<Vec<Revocation>>>>,
}

impl RevocationBook {
    /// The book of node `me`, from what the store holds.
    pub fn new(me: NodeId, all: Vec<Revocation>) -> Self {
        let book = RevocationBook {
            me: Some(me),
            by_issuer: Mutex::default(),
        };
        book.replace(all);
        book
    }

    /// Replaces everything with `all` (as read from the store).
    pub fn replace(&self, all: Vec<Revocation>) {
        let mut map: HashMap<NodeId, Vec<Revocation>> = HashMap::new();
        for r in all {
            map.entry(r.issuer()).or_default().push(r);
        }
        let map = map.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        if let Ok(mut g) = self.by_issuer.lock() {
            *g = map;
        }
    }

    /// The revocations `issuer` made.
    pub fn of(&self, issuer: &NodeId) -> Arc<Vec<Revocation>> {
        self.by_issuer
            .lock()
            .ok()
            .and_then(|g| g.get(issuer).cloned())
            .unwrap_or_default()
    }

    /// Our own revocations.
    pub fn own(&self) -> Arc<Vec<Revocation>> {
        self.me.map(|me| self.of(&me)).unwrap_or_default()
    }

    /// Adds revocations `peer` sent: returns those that are new (not held, within the bound).
    pub fn learn(&self, peer: &NodeId, revs: Vec<Revocation>) -> Vec<Revocation> {
        let Ok(mut g) = self.by_issuer.lock() else {
            return Vec::new();
        };
        let entry = g.entry(*peer).or_default();
        let mut list = entry.as_ref().clone();
        let mut new = Vec::new();
        for r in revs {
            if r.issuer() == *peer && !list.contains(&r) && list.len() < MAX_PER_ISSUER {
                list.push(r.clone());
                new.push(r);
            }
        }
        if !new.is_empty() {
            *entry = Arc::new(list);
        }
        new
    }
}

/// One line for logs and the audit trail: the kind, the key's fingerprint, the times, the
/// reason.
pub fn describe(r: &Revocation) -> String {
    let since = match r.compromised_since() {
        Some(c) => format!("compromised since {}", utc_second(c)),
        None => "retired (not compromised)".to_owned(),
    };
    let reason = if r.reason().is_empty() {
        String::new()
    } else {
        format!(": {}", hotline_transport::display::line(r.reason()))
    };
    format!(
        "{} key {} revoked at {}, {since}{reason}",
        r.kind().as_str(),
        fingerprint(r.key()),
        utc_second(r.revoked()),
    )
}

/// Withdraws our messages that a key we just revoked signed at or after the revocation's
/// cutoff and that never left (SPEC.md §4.6.1): cancelled as an officer's cancel would
/// (§15.5.10), by "key revocation". One already written to the link cannot be withdrawn: the
/// peer refuses it (REVOKED_KEY) if the revocation reached it first, and otherwise shows that
/// its signature does not count; the log says which.
pub(super) async fn withdraw(shared: Arc<super::Shared>, revs: Vec<Revocation>) {
    for r in revs {
        let (key, since) = (*r.key(), r.cutoff());
        let ids = match shared
            .store
            .call(move |s| s.unsent_signed_by(&key, since))
            .await
        {
            Some(Ok(ids)) => ids,
            Some(Err(e)) => {
                tracing::error!("cannot look for messages the revoked key signed: {e}");
                continue;
            }
            None => return,
        };
        for id in ids {
            let hex = data_encoding::HEXLOWER.encode(&id);
            match shared.cancel(id, "key revocation".into()).await {
                Ok(c) => tracing::warn!(
                    id = %hex,
                    sequence = c.sequence,
                    "withdrawn before it was sent: its officer key was revoked ({})",
                    describe(&r)
                ),
                Err(e) => tracing::warn!(
                    id = %hex,
                    "signed by a revoked officer key and not withdrawn: {e}; the peer refuses it \
                     if the revocation reached it first, and shows its signature does not count"
                ),
            }
        }
    }
}
