//! The storage guard (SPEC.md §13.3): what a peer may make this node store, and the free disk
//! space below which the node takes no new messages.
//!
//! - **Disk-space floor.** A task samples the free space of the file system holding the
//!   database every [`SAMPLE`]. Below `[storage] min_free_mib` the node refuses new envelopes
//!   (their streams are reset with INTERNAL_ERROR: the peer keeps them and retries later) and
//!   new Sends (UNAVAILABLE), and says so in its log, Watch events, status and metrics, instead
//!   of letting SQLite writes fail half-way. What is stored stays; receipts, acknowledgements
//!   and reads go on.
//! - **Per-peer quota.** The bytes of received messages (envelope and plaintext) held per
//!   peer are counted (from the database at start, then as messages are stored). A new
//!   envelope from a peer at or over `[storage] peer_quota_mib` is answered REJECTED (POLICY)
//!   with the quota in the detail, after its signature verified (we sign only about what we
//!   authenticated); a retransmission of a message already held still gets its DELIVERED
//!   receipt. What the retention policy removes (`daemon::retention`) stops counting.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hotline_protocol::identity::NodeId;

/// How often the free space is sampled.
pub const SAMPLE: Duration = Duration::from_secs(2);

const MIB: u64 = 1024 * 1024;

/// Shared by the links, the submit path and the status.
#[derive(Debug)]
pub struct StorageGuard {
    /// The database's directory; `None` (a database in memory): the floor is never sampled.
    dir: Option<PathBuf>,
    min_free: u64,
    quota: u64,
    free: AtomicU64,
    refusing: AtomicBool,
    stored: Mutex<HashMap<NodeId, u64>>,
}

/// What a sample changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Nothing.
    Same,
    /// Free space fell below the floor: new messages are refused from now on.
    Low,
    /// Free space is back above the floor.
    Recovered,
}

impl StorageGuard {
    /// A guard for the database in `dir`, with `[storage]` limits in MiB; `stored` is what each
    /// peer holds now (bytes).
    pub fn new(
        dir: Option<PathBuf>,
        min_free_mib: u64,
        peer_quota_mib: u64,
        stored: Vec<(NodeId, u64)>,
    ) -> Self {
        StorageGuard {
            dir,
            min_free: min_free_mib.saturating_mul(MIB),
            quota: peer_quota_mib.saturating_mul(MIB),
            free: AtomicU64::new(u64::MAX),
            refusing: AtomicBool::new(false),
            stored: Mutex::new(stored.into_iter().collect()),
        }
    }

    /// Free bytes for an unprivileged writer on the file system of `dir`.
    pub fn free_bytes(dir: &std::path::Path) -> std::io::Result<u64> {
        let st = rustix::fs::statvfs(dir)?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Samples the free space now (a failed sample changes nothing).
    pub fn sample(&self) -> Transition {
        let Some(dir) = &self.dir else {
            return Transition::Same;
        };
        match Self::free_bytes(dir) {
            Ok(free) => self.observe(free),
            Err(e) => {
                tracing::warn!("cannot read the free disk space of {}: {e}", dir.display());
                Transition::Same
            }
        }
    }

    /// Records `free` bytes and says what changed.
    pub fn observe(&self, free: u64) -> Transition {
        self.free.store(free, Ordering::Relaxed);
        let low = free < self.min_free;
        match (self.refusing.swap(low, Ordering::Relaxed), low) {
            (false, true) => Transition::Low,
            (true, false) => Transition::Recovered,
            _ => Transition::Same,
        }
    }

    /// Whether new messages are refused for lack of disk space.
    pub fn refusing(&self) -> bool {
        self.refusing.load(Ordering::Relaxed)
    }

    /// The last free space sampled (bytes; `u64::MAX` before the first sample).
    pub fn free(&self) -> u64 {
        self.free.load(Ordering::Relaxed)
    }

    /// The floor, bytes.
    pub fn min_free(&self) -> u64 {
        self.min_free
    }

    /// The per-peer quota, bytes.
    pub fn quota(&self) -> u64 {
        self.quota
    }

    /// Bytes of received messages held for `peer`.
    pub fn stored(&self, peer: &NodeId) -> u64 {
        self.stored
            .lock()
            .map(|m| m.get(peer).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Whether `peer` is at or over its quota.
    pub fn over_quota(&self, peer: &NodeId) -> bool {
        self.stored(peer) >= self.quota
    }

    /// A message of `bytes` from `peer` was stored.
    pub fn add(&self, peer: &NodeId, bytes: u64) {
        if let Ok(mut m) = self.stored.lock() {
            let v = m.entry(*peer).or_insert(0);
            *v = v.saturating_add(bytes);
        }
    }

    /// `bytes` of `peer`'s messages are no longer held (the retention policy removed them).
    pub fn release(&self, peer: &NodeId, bytes: u64) {
        if let Ok(mut m) = self.stored.lock()
            && let Some(v) = m.get_mut(peer)
        {
            *v = v.saturating_sub(bytes);
        }
    }

    /// The operator-facing sentence for the refusal.
    pub fn low_space_message(&self) -> String {
        format!(
            "the node's disk is nearly full ({} MiB free, floor {} MiB, [storage] min_free_mib): \
             new messages are refused until space is freed; nothing stored is lost",
            self.free() / MIB,
            self.min_free / MIB
        )
    }

    /// The REJECTED detail for a peer over its quota (at most 256 bytes).
    pub fn quota_detail(&self, peer: &NodeId) -> String {
        format!(
            "storage quota for messages from your node exhausted: {} of {} MiB held; ask the \
             receiving CERT to raise it or free space",
            self.stored(peer) / MIB,
            self.quota / MIB
        )
    }
}

/// Samples the free space every [`SAMPLE`] while the node runs, and tells the operators when
/// the floor is crossed either way (log, Watch event, audit trail).
pub(super) async fn watch(shared: std::sync::Weak<super::Shared>) {
    let mut tick = tokio::time::interval(SAMPLE);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let g = &shared.guard;
        let transition = g.sample();
        if let Ok(mut m) = shared.metrics.lock() {
            m.disk_free_bytes = (g.free() != u64::MAX).then(|| g.free());
            m.storage_refusing = g.refusing();
        }
        let (kind, detail) = match transition {
            Transition::Same => continue,
            Transition::Low => {
                let m = g.low_space_message();
                tracing::error!("{m}");
                ("storage_low", m)
            }
            Transition::Recovered => {
                let m = format!(
                    "free disk space is back above the floor ({} MiB free, floor {} MiB): new \
                     messages are taken again",
                    g.free() / MIB,
                    g.min_free() / MIB
                );
                tracing::warn!("{m}");
                ("storage_ok", m)
            }
        };
        shared.event(kind, None, None, detail.clone());
        let _ = shared
            .store
            .audit(crate::store::AuditEvent {
                time_ms: hotline_transport::now_ms(),
                kind: kind.into(),
                peer: None,
                message_id: None,
                detail,
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(n: u8) -> NodeId {
        hotline_protocol::identity::IdentityKey::from_seed(&[n; 32])
            .expect("key")
            .id()
    }

    #[test]
    fn the_floor_is_crossed_both_ways_once() {
        let g = StorageGuard::new(None, 10, 4, vec![]);
        assert_eq!(g.observe(11 * MIB), Transition::Same);
        assert!(!g.refusing());
        assert_eq!(g.observe(9 * MIB), Transition::Low);
        assert_eq!(g.observe(8 * MIB), Transition::Same);
        assert!(g.refusing());
        assert!(g.low_space_message().contains("8 MiB free, floor 10 MiB"));
        assert_eq!(g.observe(10 * MIB), Transition::Recovered);
        assert!(!g.refusing());
    }

    #[test]
    fn the_quota_counts_what_each_peer_holds() {
        let (a, b) = (peer(1), peer(2));
        let g = StorageGuard::new(None, 0, 4, vec![(a, 3 * MIB)]);
        assert!(!g.over_quota(&a) && !g.over_quota(&b));
        g.add(&a, MIB);
        assert!(g.over_quota(&a) && !g.over_quota(&b));
        let d = g.quota_detail(&a);
        assert!(d.contains("4 of 4 MiB") && d.len() <= 256, "{d}");
        // What the retention policy removed no longer counts.
        g.release(&a, MIB / 2);
        assert!(!g.over_quota(&a));
        g.release(&b, MIB);
        assert_eq!(g.stored(&b), 0);
    }

    #[test]
    fn free_space_is_read_from_the_file_system() {
        let free = StorageGuard::free_bytes(std::path::Path::new(".")).expect("statvfs");
        assert!(free > 0);
    }
}
