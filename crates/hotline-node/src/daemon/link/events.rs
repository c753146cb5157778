//! The session's events: link up and down, arriving envelopes and receipts handed to jobs, gaps;
//! and the audit trail with the operator events they leave.

use hotline_protocol::codes::RejectReason;
use hotline_protocol::envelope::MessageId;
use hotline_protocol::identity::EncryptionKey;
use hotline_protocol::receipt::{Receipt, ReceiptBuild};
use hotline_protocol::session::{Event, Session};

use super::receive::{receive_async_receipt, receive_envelope, receive_receipt};
use super::{Conn, Done, LinkCtx, LinkMsg};
use crate::daemon::metrics;
use crate::store::AuditEvent;
use hotline_transport::now_ms;

pub(super) fn audit(ctx: &LinkCtx, kind: &str, message_id: Option<MessageId>, detail: String) {
    let _ = ctx.events.send(hotline_protocol::wire::OperatorEvent {
        time_ms: now_ms(),
        kind: kind.to_owned(),
        peer: ctx.alias.clone(),
        message_id: message_id.map(|m| m.to_vec().into()).unwrap_or_default(),
        detail: detail.clone(),
    });
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
            *peer_keys = hello.encryption_keys.clone();
            if let Ok(mut k) = ctx.shared_keys.lock() {
                k.insert(ctx.bundle.identity(), hello.encryption_keys.clone());
            }
            let group = conn.as_ref().and_then(|c| c.group.clone());
            metrics::peer(&ctx.metrics, &ctx.alias, |m| m.group = group);
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
                if let Some(c) = conn.take() {
                    c.conn
                        .close(quinn::VarInt::from_u32(code.code()), reason.as_bytes());
                }
                session.handle_disconnected(now_ms());
            }
        }
        Event::Envelope { stream, envelope } => {
            tokio::spawn(receive_envelope(
                ctx.clone_parts(),
                conn_id,
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
                if let Some(Ok(receipt)) = r {
                    let _ = p.tx.send(LinkMsg::Done(
                        conn_id,
                        Done::Respond {
                            stream,
                            receipt: Box::new(receipt),
                        },
                    ));
                }
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
        Event::Rtt(_) => {}
        Event::GapDetected { missing } => {
            tracing::warn!(peer = %ctx.alias, ?missing, "sequence gap: the peer sent messages that have not arrived");
            audit(ctx, "gap", None, format!("{missing:?}"));
        }
        Event::GapClosed => {
            tracing::info!(peer = %ctx.alias, "sequence gap closed");
            audit(ctx, "gap_closed", None, String::new());
        }
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
