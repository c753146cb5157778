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
