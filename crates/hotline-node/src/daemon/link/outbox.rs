//! The outbox behind the session: paging the backlog into the window held in memory, counting
//! the whole outbox, and flagging messages past their delivery deadline.

use std::time::Duration;

use hotline_protocol::envelope::MessageId;
use hotline_protocol::session::Session;

use super::events::audit;
use super::{LinkCtx, LinkMsg};
use crate::daemon::metrics;
use hotline_transport::now_ms;

/// Reads the next page of the backlog: the first envelopes of the outbox the session does not
/// hold. Every envelope the session dropped was delivered (its receipt committed before the
/// session let it go), so a page never brings back a delivered message.
pub(super) fn request_page(ctx: &LinkCtx, session: &Session, window: usize) {
    let skip: std::collections::HashSet<MessageId> = session
        .pending_envelopes()
        .map(|e| *e.message_id())
        .collect();
    let want = window.saturating_sub(session.pending());
    let (store, tx, peer) = (ctx.store.clone(), ctx.tx.clone(), ctx.bundle.identity());
    tokio::spawn(async move {
        let page = store
            .call(move |s| s.pending_window(&peer, &skip, want))
            .await;
        let (page, full) = match page {
            Some(Ok(p)) => {
                let full = p.len() >= want;
                (p, full)
            }
            Some(Err(e)) => {
                // Try again later, not at once: a failing store must not make the link spin.
                tracing::error!("cannot read the outbox backlog (retrying in 1 s): {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                (Vec::new(), true)
            }
            None => return,
        };
        let _ = tx.send(LinkMsg::Refill(page, full));
    });
}

/// Counts the whole outbox (status and overdue while a backlog is paged).
pub(super) fn request_summary(ctx: &LinkCtx) {
    let now = now_ms();
    let d = &ctx.deadlines;
    use hotline_protocol::content::Precedence as P;
    let cutoffs = [P::Flash, P::Immediate, P::Priority, P::Routine]
        .map(|p| now.saturating_sub(d.for_precedence(p)));
    let (store, tx, peer) = (ctx.store.clone(), ctx.tx.clone(), ctx.bundle.identity());
    tokio::spawn(async move {
        if let Some(Ok(s)) = store
            .call(move |st| st.pending_summary(&peer, cutoffs))
            .await
        {
            let _ = tx.send(LinkMsg::Summary(s));
        }
    });
}

/// Flags envelopes past their precedence's delivery deadline (logs once per message, metric).
/// While a backlog is paged, `stored` counts the whole outbox; only the window in memory is
/// logged message by message.
pub(super) fn check_overdue(
    ctx: &LinkCtx,
    session: &Session,
    flagged: &mut std::collections::HashSet<MessageId>,
    stored: Option<crate::store::PendingSummary>,
) {
    let now = now_ms();
    let mut current = std::collections::HashSet::new();
    // One pass over the pending envelopes every few seconds, never per event: with a large
    // backlog a scan per event would make the link loop quadratic.
    let mut oldest = 0u64;
    for e in session.pending_envelopes() {
        let h = e.header();
        if oldest == 0 || h.created < oldest {
            oldest = h.created;
        }
        if now.saturating_sub(h.created) > ctx.deadlines.for_precedence(h.precedence) {
            current.insert(h.message_id);
            if !flagged.contains(&h.message_id) {
                tracing::warn!(
                    peer = %ctx.alias,
                    precedence = h.precedence.as_str(),
                    id = %hex(&h.message_id),
                    "message OVERDUE: not delivered within its precedence's deadline"
                );
                audit(
                    ctx,
                    "overdue",
                    Some(h.message_id),
                    h.precedence.as_str().to_owned(),
                );
            }
        }
    }
    if let Some(s) = stored {
        oldest = if oldest == 0 || (s.oldest_ms != 0 && s.oldest_ms < oldest) {
            s.oldest_ms
        } else {
            oldest
        };
    }
    let overdue = (current.len() as u64).max(stored.map_or(0, |s| s.overdue));
    metrics::peer(&ctx.metrics, &ctx.alias, |m| {
        m.overdue = overdue;
        m.oldest_pending_ms = oldest;
    });
    *flagged = current;
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
