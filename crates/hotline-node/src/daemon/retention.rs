//! The retention policy at work (`[retention]` in hotlined.toml, SPEC.md §13.4): a task that
//! removes the parts of stored messages past their retention period, through the store thread,
//! once at start and then every [`EVERY`].
//!
//! A pass fixes its time when it starts and asks the store for one batch after another
//! ([`BATCH`] rows, one transaction each) until nothing more is due; every other store request
//! queued meanwhile runs between two batches, so a backlog of any size never holds the store
//! for long. A pass that removed something says so in the log, the audit trail
//! (`retention_purged`) and a Watch event of that kind, and the bytes of received messages it
//! removed stop counting against the peer's storage quota (§13.3). The policy is read at start:
//! a changed `[retention]` takes effect when the node is restarted.

use std::sync::Weak;
use std::time::Duration;

use super::Shared;
use crate::store::{AuditEvent, Purged, RetentionPolicy};
use hotline_protocol::time::DAY;
use hotline_transport::now_ms;

/// How often a pass runs after the first one, at start.
pub const EVERY: Duration = Duration::from_secs(3600);

/// Rows (messages' parts or receipts) removed per transaction, at most.
pub const BATCH: usize = 500;

/// Runs a pass at once and then every [`EVERY`] while the node runs; returns at once if the
/// policy keeps everything (the default).
pub(super) async fn run(shared: Weak<Shared>, policy: RetentionPolicy) {
    if policy.keeps_everything() {
        return;
    }
    tracing::info!("retention policy: {}", describe(&policy));
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if pass(&shared, &policy).await.is_none() {
            return;
        }
    }
}

/// The policy in words, for the log.
fn describe(p: &RetentionPolicy) -> String {
    let days = |ms: Option<u64>| {
        ms.map_or_else(|| "forever".to_owned(), |ms| format!("{} days", ms / DAY))
    };
    format!(
        "plaintext {}, envelopes {}, receipts {} (the records and digests stay)",
        days(p.plaintext_ms),
        days(p.envelopes_ms),
        days(p.receipts_ms)
    )
}

/// One pass: batches until nothing more is due as of its start. Returns what it removed;
/// `None` once the node is stopping. A storage error ends the pass (logged); the next pass
/// tries again.
pub(super) async fn pass(shared: &Weak<Shared>, policy: &RetentionPolicy) -> Option<Purged> {
    let now = now_ms();
    let mut total = Purged::default();
    loop {
        let s = shared.upgrade()?;
        let p = *policy;
        match s.store.call(move |st| st.purge(&p, now, BATCH)).await? {
            Ok(batch) => {
                for (peer, bytes) in &batch.received {
                    s.guard.release(peer, *bytes);
                }
                total.contents += batch.contents;
                total.envelopes += batch.envelopes;
                total.receipts += batch.receipts;
                total.bytes += batch.bytes;
                // A full batch removed something by construction; the check only makes sure
                // that a pass always ends.
                if !(batch.more && batch.any()) {
                    break;
                }
            }
            Err(e) => {
                tracing::error!(
                    "retention: cannot remove expired message data: {e}; the next pass (in \
                     {} min) tries again",
                    EVERY.as_secs() / 60
                );
                break;
            }
        }
        drop(s);
        tokio::task::yield_now().await;
    }
    if total.any() {
        let s = shared.upgrade()?;
        let detail = format!(
            "the retention policy removed the content of {} message(s), {} envelope(s) and {} \
             receipt(s), {} KiB in all; their records and SHA-256 digests stay, and Show and \
             Export say what was removed and when",
            total.contents,
            total.envelopes,
            total.receipts,
            total.bytes.div_ceil(1024)
        );
        tracing::info!(
            contents = total.contents,
            envelopes = total.envelopes,
            receipts = total.receipts,
            bytes = total.bytes,
            "{detail}"
        );
        super::metrics::count(
            &s.metrics,
            "retention_removed",
            total.contents + total.envelopes + total.receipts,
        );
        s.event("retention_purged", None, None, detail.clone());
        let audited = s
            .store
            .audit(AuditEvent {
                time_ms: now,
                kind: "retention_purged".into(),
                peer: None,
                message_id: None,
                detail,
            })
            .await;
        if let Some(Err(e)) = audited {
            tracing::error!("cannot write the retention_purged audit row: {e}");
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_is_described_in_days() {
        let p = RetentionPolicy {
            plaintext_ms: Some(90 * DAY),
            envelopes_ms: None,
            receipts_ms: Some(400 * DAY),
        };
        assert_eq!(
            describe(&p),
            "plaintext 90 days, envelopes forever, receipts 400 days (the records and digests stay)"
        );
    }
}
