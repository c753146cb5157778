//! The session's events: link up and down, arriving envelopes and receipts handed to jobs, gaps;
//! the audit trail with the operator events they leave; and sequence safety (SPEC.md §10.1): the
//! alert when the peer reuses a sequence, and the peer's `received_through` checked against
//! what this node's database holds.

use hotline_protocol::codes::{CloseCode, RejectReason};
use hotline_protocol::envelope::MessageId;
use hotline_protocol::identity::EncryptionKey;
use hotline_protocol::receipt::{Receipt, ReceiptBuild};
use hotline_protocol::session::{Event, Session};

use super::receive::{receive_async_receipt, receive_envelope, receive_receipt};
use super::{Conn, Done, LinkCtx, LinkMsg};
use crate::daemon::metrics::{self, SharedMetrics};
use crate::daemon::sequences::rollback;
use crate::store::high_water::MAX_SEQUENCE_FLOOR;
use crate::store::{AuditEvent, FloorSource};
use hotline_protocol::session::{LinkState, Status};
use hotline_protocol::wire::OperatorEvent;
use hotline_transport::now_ms;

/// Events for watching operators.
type Events = tokio::sync::broadcast::Sender<OperatorEvent>;

/// Tells watching operators (SPEC.md §15.5.8), without an audit row.
fn tell(events: &Events, alias: &str, kind: &str, message_id: Option<MessageId>, detail: String) {
    let _ = events.send(OperatorEvent {
        time_ms: now_ms(),
        kind: kind.to_owned(),
        peer: alias.to_owned(),
        message_id: message_id.map(|m| m.to_vec().into()).unwrap_or_default(),
        detail,
    });
}

pub(super) fn audit(ctx: &LinkCtx, kind: &str, message_id: Option<MessageId>, detail: String) {
    tell(&ctx.events, &ctx.alias, kind, message_id, detail.clone());
    let ev = AuditEvent {
        time_ms: now_ms(),
        kind: kind.to_owned(),
        peer: Some(ctx.bundle.identity()),
        message_id,
        detail,
    };
    let store = ctx.store.clone();
    tokio::spawn(async move {
        if let Some(Err(e)) = store.audit(ev).await {
            tracing::error!("audit write failed: {e}");
        }
    });
}

/// The peer announced `keys` (Hello or KeyUpdate, SPEC.md §4.3.3): with its bundle's keys
/// they are the candidates to seal to, replacing what it announced before; remembered in the
/// store so that a restart can seal before the next Hello.
fn learn_peer_keys(ctx: &LinkCtx, peer_keys: &mut Vec<EncryptionKey>, keys: &[EncryptionKey]) {
    let now = hotline_transport::now_ms();
    let merged = crate::daemon::own_keys::merge(ctx.bundle.encryption_keys(), keys, now);
    *peer_keys = merged.clone();
    if let Ok(mut k) = ctx.shared_keys.lock() {
        k.insert(ctx.bundle.identity(), merged);
    }
    let peer = ctx.bundle.identity();
    let bytes = hotline_protocol::session::key_update_payload(keys);
    let store = ctx.store.clone();
    tokio::spawn(async move {
        if let Some(Err(e)) = store
            .call(move |s| s.set_announced_keys(&peer, &bytes, now))
            .await
        {
            tracing::error!("cannot remember the peer's encryption keys: {e}");
        }
    });
}

/// The peer revoked keys of its officers (SPEC.md §4.6.2): enforced at once on what arrives
/// from it, kept in the store (at most [`MAX_PER_ISSUER`] per peer) and in the audit trail.
///
/// [`MAX_PER_ISSUER`]: crate::daemon::revocations::MAX_PER_ISSUER
fn learn_peer_revocations(ctx: &LinkCtx, revs: Vec<hotline_protocol::revocation::Revocation>) {
    let peer = ctx.bundle.identity();
    let new = ctx.revocations.learn(&peer, revs);
    for r in &new {
        let line = crate::daemon::revocations::describe(r);
        tracing::warn!(peer = %ctx.alias, "the peer revoked an officer key: {line}");
        audit(ctx, "peer_key_revoked", None, line);
    }
    if new.is_empty() {
        return;
    }
    metrics::count(&ctx.metrics, "peer_revocations", new.len() as u64);
    let store = ctx.store.clone();
    let alias = ctx.alias.clone();
    tokio::spawn(async move {
        let now = hotline_transport::now_ms();
        let max = crate::daemon::revocations::MAX_PER_ISSUER;
        let stored = store
            .call(move |s| {
                new.iter()
                    .map(|r| s.add_revocation(r, now, max))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await;
        match stored {
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::error!(peer = %alias, "cannot store the peer's key revocations: {e}")
            }
            None => {
                tracing::error!(peer = %alias, "cannot store the peer's key revocations: the store has stopped")
            }
        }
    });
}

pub(super) fn event(
    ctx: &LinkCtx,
    session: &mut Session,
    conn: &mut Option<Conn>,
    peer_keys: &mut Vec<EncryptionKey>,
    ev: Event,
) {
    let conn_id = conn.as_ref().map_or(0, |c| c.id);
    match ev {
        Event::LinkUp(hello) => {
            tracing::info!(peer = %ctx.alias, version = hello.version, "link up");
            learn_peer_keys(ctx, peer_keys, &hello.encryption_keys);
            // The TLS key the peer showed: once it is its current bundle's, a previous one is
            // no longer accepted (SPEC.md §4.4.4).
            let shown = conn.as_ref().and_then(|c| {
                hotline_transport::tls::peer_certificate(&c.conn)
                    .and_then(|cert| hotline_transport::tls::spki_sha256(&cert).ok())
            });
            if let (Some(spki), Some(shared)) = (shown, ctx.shared.upgrade()) {
                let peer = ctx.bundle.identity();
                tokio::spawn(async move { shared.saw_peer_key(peer, spki).await });
            }
            let group = conn.as_ref().and_then(|c| c.group.clone());
            let version = hello.version;
            let tls_not_after = conn
                .as_ref()
                .and_then(|c| super::connect::peer_certificate_not_after(&c.conn));
            metrics::peer(&ctx.metrics, &ctx.alias, |m| {
                m.group = group;
                m.version = version;
                m.peer_tls_not_after = tls_not_after.or(m.peer_tls_not_after);
            });
            audit(ctx, "link_up", None, format!("version {}", hello.version));
        }
        Event::LinkDown {
            code,
            reason,
            by_peer,
        } => {
            tracing::warn!(peer = %ctx.alias, %code, by_peer, "link down: {reason}");
            audit(ctx, "link_down", None, format!("{code}: {reason}"));
            metrics::peer(&ctx.metrics, &ctx.alias, |m| m.group = None);
            // Only a session that failed or closed its connection (state Closing) takes the
            // connection down here. A LinkDown reported because the driver already replaced
            // or lost the connection must not touch the current one.
            if session.state() == hotline_protocol::session::LinkState::Closing {
                // After the Close frame the session queued has reached the peer (bounded), and
                // with NO_ERROR when the peer's Close frame ended the link (SPEC.md §3.8).
                if let Some(c) = conn.take() {
                    let code = if by_peer { CloseCode::NoError } else { code };
                    super::streams::close_after_flush(
                        c.conn.clone(),
                        c.control_flushed.clone(),
                        code.code(),
                        code.name(),
                    );
                }
                let now = super::clock(session);
                session.handle_disconnected(now);
            }
        }
        Event::Envelope { stream, envelope } => {
            let version = session.peer_hello().map_or(1, |h| h.version);
            tokio::spawn(receive_envelope(
                ctx.clone_parts(),
                (conn_id, version),
                stream,
                envelope,
            ));
        }
        Event::MalformedEnvelope {
            stream,
            subject,
            detail,
        } => {
            let p = ctx.clone_parts();
            tokio::spawn(async move {
                let identity = p.identity.clone();
                let r = p
                    .pool
                    .run(move || {
                        Receipt::sign(
                            &identity,
                            &subject,
                            ReceiptBuild::Rejected(RejectReason::Malformed, detail),
                            now_ms(),
                        )
                    })
                    .await;
                // Never leave the stream unanswered: no receipt, then a reset (a local
                // failure: the peer may send the envelope again).
                let done = match r {
                    Some(Ok(receipt)) => Done::Respond {
                        stream,
                        receipt: Box::new(receipt),
                    },
                    _ => Done::Refuse {
                        stream,
                        code: CloseCode::InternalError,
                    },
                };
                let _ = p.tx.send(LinkMsg::Done(conn_id, done));
            });
        }
        Event::Receipt { envelope, receipt } => {
            tokio::spawn(receive_receipt(
                ctx.clone_parts(),
                conn_id,
                envelope,
                receipt,
            ));
        }
        Event::AsyncReceipt { stream, receipt } => {
            tokio::spawn(receive_async_receipt(
                ctx.clone_parts(),
                conn_id,
                stream,
                receipt,
            ));
        }
        Event::ReceiptStored { receipt_sha256 } => {
            let store = ctx.store.clone();
            tokio::spawn(async move {
                let _ = store.confirm_receipt(receipt_sha256).await;
            });
        }
        Event::PeerKeys(keys) => {
            tracing::info!(peer = %ctx.alias, keys = keys.len(), "the peer announced new encryption keys");
            audit(
                ctx,
                "peer_keys_announced",
                None,
                keys.iter()
                    .map(crate::daemon::own_keys::describe)
                    .collect::<Vec<_>>()
                    .join("; "),
            );
            learn_peer_keys(ctx, peer_keys, &keys);
        }
        Event::PeerRevocations(revs) => learn_peer_revocations(ctx, revs),
        Event::PeerBundle(b) => {
            learn_peer_keys(ctx, peer_keys, b.encryption_keys());
            let (shared, tx, alias) = (ctx.shared.clone(), ctx.tx.clone(), ctx.alias.clone());
            tokio::spawn(async move {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                match shared.take_peer_bundle(*b).await {
                    Ok(held) => {
                        let _ = tx.send(LinkMsg::PeerBundleHeld(Box::new(held)));
                    }
                    Err(e) => tracing::error!(peer = %alias, "cannot take the peer's bundle: {e}"),
                }
            });
        }
        Event::BundleAccepted(sha) => {
            tracing::debug!(peer = %ctx.alias, "the peer holds our bundle");
            if let Some(shared) = ctx.shared.upgrade() {
                shared.peer_holds_bundle(ctx.bundle.identity(), sha);
            }
        }
        Event::Rtt(_) => {}
        Event::GapDetected { missing } => {
            tracing::warn!(peer = %ctx.alias, ?missing, "sequence gap: the peer sent messages that have not arrived");
            audit(ctx, "gap", None, format!("{missing:?}"));
        }
        Event::GapClosed => {
            tracing::info!(peer = %ctx.alias, "sequence gap closed");
            audit(ctx, "gap_cleared", None, String::new());
        }
        Event::ImplausibleClaim { claimed, capped } => gap_claim_capped(ctx, claimed, capped),
        Event::StreamError {
            stream,
            code,
            detail,
        } => {
            tracing::warn!(peer = %ctx.alias, ?stream, %code, "peer stream refused: {detail}");
        }
        Event::Retransmit { key } => tracing::debug!(peer = %ctx.alias, ?key, "retransmitting"),
    }
}

/// Counter (through [`metrics::count`]): times the peer's Heartbeats claimed sequences far
/// beyond what arrived (SPEC.md §10.3).
const GAP_CLAIMS_CAPPED: &str = "gap_claims_capped";

/// The peer's `last_sequence_sent` is beyond what any real peer could have in flight (SPEC.md
/// §10.3): the session counts gaps only up to `capped`, so status and metrics do not report a
/// phantom loss of billions of messages. This warns, counts, and leaves an audit row and a
/// Watch event with the raw claim.
fn gap_claim_capped(ctx: &LinkCtx, claimed: u64, capped: u64) {
    tracing::warn!(
        peer = %ctx.alias,
        claimed,
        capped,
        "the peer claims to have sent sequences far beyond what arrived; gaps are counted only \
         up to the cap (SPEC.md §10.3): is the peer faulty, or was this node's database \
         restored from an older copy?"
    );
    metrics::count(&ctx.metrics, GAP_CLAIMS_CAPPED, 1);
    audit(
        ctx,
        "gap_claim_capped",
        None,
        format!(
            "the peer claims to have sent sequences through {claimed}; gaps are counted only up \
             to {capped}"
        ),
    );
}

/// Counter (through [`metrics::count`]): messages from the peer that reused the sequence of an
/// earlier one (SPEC.md §10.1).
const SEQUENCE_REUSED: &str = "sequence_reused";

/// A message from the peer carried the sequence of an earlier message of the peer's (SPEC.md
/// §10.1: the peer reused it, for example after restoring a backup). The store kept both and
/// wrote the audit row with the message; this warns, counts and tells watching operators.
pub(super) fn sequence_reused(
    events: &Events,
    alias: &str,
    metrics: &SharedMetrics,
    sequence: u64,
    later: MessageId,
    earlier: MessageId,
) {
    let (later_hex, earlier_hex) = (
        data_encoding::HEXLOWER.encode(&later),
        data_encoding::HEXLOWER.encode(&earlier),
    );
    tracing::warn!(
        peer = %alias,
        sequence,
        message = %later_hex,
        earlier = %earlier_hex,
        "the peer reused a sequence number: both messages are kept (SPEC.md §10.1); was its \
         database restored from a backup?"
    );
    metrics::count(metrics, SEQUENCE_REUSED, 1);
    tell(
        events,
        alias,
        "sequence_reused",
        Some(later),
        format!("sequence {sequence} already carried by message {earlier_hex}"),
    );
}

/// The second line of defence against reusing sequences after a restore (SPEC.md §10.1): the
/// peer's `received_through` from its Heartbeats. While the link is UP, a value above the
/// highest sequence this link knows of (what it sent, and the store's highest when it started)
/// means the peer holds sequences this database has forgotten: the store is asked to record it
/// as a floor, which it does (with the audit row) only if it is above its own highest and any
/// floor already recorded (for example from the high-water mark at start-up). `handled` is the
/// highest value asked about, so each detection costs one store call, not one per Heartbeat.
pub(super) fn check_peer_received_through(ctx: &LinkCtx, st: &Status, handled: &mut u64) {
    let through = st.peer_received_through;
    if st.state != LinkState::Up || through <= st.last_sent || through <= *handled {
        return;
    }
    *handled = through;
    if through > MAX_SEQUENCE_FLOOR {
        tracing::warn!(
            peer = %ctx.alias,
            through,
            "the peer claims to have received sequences no node could have sent; ignored"
        );
        return;
    }
    let (store, events, metrics) = (ctx.store.clone(), ctx.events.clone(), ctx.metrics.clone());
    let (alias, peer) = (ctx.alias.clone(), ctx.bundle.identity());
    tokio::spawn(async move {
        let raised = store
            .call(move |s| {
                s.raise_sequence_floor(&peer, through, FloorSource::PeerReceivedThrough, now_ms())
            })
            .await;
        match raised {
            Some(Ok(Some(highest))) => {
                let source = FloorSource::PeerReceivedThrough;
                rollback(&events, &alias, &metrics, source, highest, through);
            }
            Some(Ok(None)) | None => {}
            Some(Err(e)) => tracing::error!(peer = %alias, "cannot record a sequence floor: {e}"),
        }
    });
}

/// Clock skew beyond which operators are warned (SPEC.md §11.2, §14.8: well below the
/// 5 minutes after which envelopes are refused as CREATED_IN_FUTURE).
pub(super) const SKEW_WARNING_MS: u64 = 60_000;

/// Warns once (log, audit trail, Watch event) when the skew to the peer's clock goes beyond
/// [`SKEW_WARNING_MS`], and re-arms once it is back under half of it.
pub(super) fn check_clock_skew(ctx: &LinkCtx, skew: Option<i64>, warned: &mut bool) {
    let Some(skew) = skew else { return };
    if skew.unsigned_abs() > SKEW_WARNING_MS && !*warned {
        *warned = true;
        let detail = format!(
            "the peer's clock is {} s {} this node's: check both clocks (NTP); beyond 5 minutes \
             messages are refused as CREATED_IN_FUTURE or judged TOO_OLD",
            skew.unsigned_abs() / 1000,
            if skew > 0 { "ahead of" } else { "behind" }
        );
        tracing::warn!(peer = %ctx.alias, skew_ms = skew, "clock skew: {detail}");
        audit(ctx, "clock_skew", None, detail);
    } else if skew.unsigned_abs() <= SKEW_WARNING_MS / 2 {
        *warned = false;
    }
}
