//! Expiry of the node's keys, certificates, CRLs and operators' credentials while it runs
//! (issue: key lifecycle, item 6): exported as `hotline_key_expiry_timestamp_seconds{kind,name}`
//! and, for what lapses within 30 days, a warning in the log at start and once a day.
//!
//! The node's keys (which rotate or are renewed), its `[ca]` files, the peers' newest
//! encryption keys and the operators' credentials are looked at again every [`EVERY`], so a
//! change shows within a minute.

use std::sync::Weak;
use std::time::Duration;

use super::Shared;
use crate::expiry;
use hotline_transport::now_ms;

/// How often the operators' credentials are read again.
pub const EVERY: Duration = Duration::from_secs(60);

/// How often the warnings are logged again.
const WARN_EVERY: Duration = Duration::from_secs(24 * 3600);

/// Runs until the node stops.
pub(super) async fn run(shared: Weak<Shared>, renew_before: u64) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut warned: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        let Some(s) = shared.upgrade() else { return };
        let node = s.id;
        let operators = match s.store.call(|st| st.operators()).await {
            Some(Ok(ops)) => expiry::of_operators(&node, &ops),
            Some(Err(e)) => {
                tracing::error!("cannot read the operators for their credentials' expiry: {e}");
                Vec::new()
            }
            None => return,
        };
        let mut all = expiry::of_parts(&s.env.keys.current(), &s.env.tls(), s.env.ca().as_ref());
        all.extend(s.peer_key_expiries());
        all.extend(operators);
        if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
            warned = Some(tokio::time::Instant::now());
            for w in expiry::warnings(&all, now_ms(), renew_before) {
                tracing::warn!("{w}");
            }
        }
        if let Ok(mut m) = s.metrics.lock() {
            m.expiries = all;
        }
    }
}
