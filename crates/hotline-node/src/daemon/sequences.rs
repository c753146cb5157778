//! Sequence safety across a restore (SPEC.md §10.1): the high-water mark checked at start-up
//! and kept written while the node runs, and what operators are told when a restore is found.
//!
//! The store notes every sequence it assigns in the mark ([`HighWater`]) after its commit; the
//! task here writes the file at most once a second, when a mark changed, off the store thread
//! and the message path; the store writes it a last time when it closes. The second line of
//! defence, the peer's `received_through`, is in the link driver.

use std::sync::Arc;
use std::time::Duration;

use hotline_protocol::NodeId;
use hotline_protocol::time::UnixMillis;

use super::metrics::{self, SharedMetrics};
use crate::store::high_water::HighWater;
use crate::store::{FloorSource, PeerRecord, Store};

/// How often the high-water mark file is rewritten at most (when a mark changed).
pub const WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// Counter (through [`metrics::count`]): restores from an older copy found, by either line of
/// defence.
const SEQUENCE_ROLLBACK: &str = "sequence_rollback";

/// What the start-up check found: the mark to keep written, and the peers whose sequences now
/// continue above a floor (alias, highest stored before, floor).
pub(super) struct AtStart {
    high_water: Option<Arc<HighWater>>,
    rollbacks: Vec<(String, u64, u64)>,
}

/// Loads the high-water mark and compares it with the database, before anything is sent: a
/// mark above the highest sequence stored for a peer (and above its floor) means the database
/// was restored from an older copy, and the store records the mark as the peer's floor, with
/// an audit row. Then every peer's highest stored sequence is noted in the mark, so that the
/// file covers every pinned peer from the first write on.
pub(super) fn at_start(
    store: &mut dyn Store,
    peers: &[PeerRecord],
    now: UnixMillis,
) -> crate::store::Result<AtStart> {
    let (high_water, problems) = store.high_water()?;
    for p in problems {
        tracing::warn!("{p}");
    }
    let mut rollbacks = Vec::new();
    let Some(hw) = high_water else {
        return Ok(AtStart {
            high_water: None,
            rollbacks,
        });
    };
    let alias = |id: &NodeId| {
        peers
            .iter()
            .find(|p| p.identity == *id)
            .map_or_else(|| id.to_string(), |p| p.alias.clone())
    };
    for (peer, mark) in hw.marks() {
        if let Some(highest) =
            store.raise_sequence_floor(&peer, mark, FloorSource::HighWaterMark, now)?
        {
            rollbacks.push((alias(&peer), highest, mark));
        }
    }
    for p in peers {
        hw.note(p.identity, store.last_sequence(&p.identity)?);
    }
    Ok(AtStart {
        high_water: Some(hw),
        rollbacks,
    })
}

impl AtStart {
    /// Reports what was found (error log, counter, event) and starts the task that keeps the
    /// mark written; returns it, to be stopped at shutdown.
    pub(super) fn report(
        self,
        events: &tokio::sync::broadcast::Sender<hotline_protocol::wire::OperatorEvent>,
        metrics: &SharedMetrics,
    ) -> Option<tokio::task::JoinHandle<()>> {
        for (alias, highest, floor) in &self.rollbacks {
            rollback(
                events,
                alias,
                metrics,
                FloorSource::HighWaterMark,
                *highest,
                *floor,
            );
        }
        self.high_water.map(|hw| tokio::spawn(keep_written(hw)))
    }
}

/// Rewrites the high-water mark file when a mark changed, at most once per
/// [`WRITE_INTERVAL`], on a blocking thread (it syncs the file). A failure is logged when it
/// starts and when it ends, not every second; the marks stay in memory meanwhile.
async fn keep_written(hw: Arc<HighWater>) {
    let mut tick = tokio::time::interval(WRITE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        if !hw.dirty() {
            continue;
        }
        let h = hw.clone();
        let written = tokio::task::spawn_blocking(move || h.flush())
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|r| r);
        match written {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("{} is written again", hw.path().display());
            }
            Ok(_) => {}
            Err(e) if !failing => {
                failing = true;
                tracing::error!(
                    "cannot write {}: {e}; a restore of the database could then go unnoticed \
                     until the peer's received_through shows it (SPEC.md §10.1)",
                    hw.path().display()
                );
            }
            Err(_) => {}
        }
    }
}

/// The store recorded a sequence floor (`floor`, above its `highest`) for the peer `alias`
/// because the database was restored from an older copy, as `source` showed; the audit row is
/// written with it. Logs an error, counts, and tells watching operators (`sequence_rollback`).
pub(super) fn rollback(
    events: &tokio::sync::broadcast::Sender<hotline_protocol::wire::OperatorEvent>,
    alias: &str,
    metrics: &SharedMetrics,
    source: FloorSource,
    highest: u64,
    floor: u64,
) {
    let how = match source {
        FloorSource::HighWaterMark => "the high-water mark",
        FloorSource::PeerReceivedThrough => "the peer's received_through",
    };
    tracing::error!(
        peer = %alias,
        highest,
        floor,
        "the database was restored from an older copy: {how} is at sequence {floor}, the \
         database at {highest}; new messages to this peer continue from {} (SPEC.md §10.1)",
        floor + 1
    );
    metrics::count(metrics, SEQUENCE_ROLLBACK, 1);
    let _ = events.send(hotline_protocol::wire::OperatorEvent {
        time_ms: hotline_transport::now_ms(),
        kind: "sequence_rollback".into(),
        peer: alias.to_owned(),
        message_id: Default::default(),
        detail: format!(
            "database restored from an older copy ({how} {floor}, database {highest}); new \
             messages continue from sequence {}",
            floor + 1
        ),
    });
}
