//! Jobs spawned for what arrives: an envelope opened, stored and answered (SPEC.md §7.6), and
//! receipts verified and recorded (§8.4), on the crypto pool and the store thread.

use std::sync::Arc;

use bytes::Bytes;
use hotline_protocol::codes::{CloseCode, RejectReason};
use hotline_protocol::envelope::{Envelope, MessageId};
use hotline_protocol::identity::{EncryptionKeypair, IdentityKey, NodeId};
use hotline_protocol::receipt::{Receipt, ReceiptBuild, ReceiptKind, Subject};
use hotline_protocol::session::StreamId;
use tokio::sync::mpsc;

use super::{Done, LinkCtx, LinkMsg};
use crate::daemon::metrics::{self, SharedMetrics};
use crate::daemon::pool::CryptoPool;
use crate::daemon::storage::StoreHandle;
use crate::store::{AcceptOutcome, Arrival, AuditEvent, ReceiptRecord};
use hotline_transport::now_ms;

/// The pieces a spawned job needs.
#[derive(Clone)]
pub(super) struct Parts {
    alias: String,
    events: tokio::sync::broadcast::Sender<hotline_protocol::wire::OperatorEvent>,
    pub(super) identity: Arc<IdentityKey>,
    keys: Arc<Vec<EncryptionKeypair>>,
    peer: NodeId,
    pub(super) pool: CryptoPool,
    store: StoreHandle,
    metrics: SharedMetrics,
    pub(super) tx: mpsc::UnboundedSender<LinkMsg>,
}

impl LinkCtx {
    pub(super) fn clone_parts(&self) -> Parts {
        Parts {
            alias: self.alias.clone(),
            events: self.events.clone(),
            identity: self.identity.clone(),
            keys: self.keys.clone(),
            peer: self.bundle.identity(),
            pool: self.pool.clone(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            tx: self.tx.clone(),
        }
    }
}

/// SPEC.md §7.6: open, then store with its DELIVERED receipt (or find the original), then answer.
pub(super) async fn receive_envelope(p: Parts, conn_id: u64, stream: StreamId, envelope: Envelope) {
    let (identity, keys, peer) = (p.identity.clone(), p.keys.clone(), p.peer);
    let env = envelope.clone();
    let opened = p
        .pool
        .run(move || {
            let now = now_ms();
            let subject = Subject::from(&env);
            match env.open(&identity.id(), &peer, &keys, now) {
                Ok(content) => Receipt::sign(&identity, &subject, ReceiptBuild::Delivered, now)
                    .map(|r| Ok((content, r))),
                Err(rej) => Receipt::sign(
                    &identity,
                    &subject,
                    ReceiptBuild::Rejected(rej.reason, rej.detail),
                    now,
                )
                .map(|r| Err(Box::new(r))),
            }
        })
        .await;
    let receipt = match opened {
        Some(Ok(Ok((content, delivered)))) => {
            let h = envelope.header();
            let arrival = Arrival {
                message_id: h.message_id,
                peer,
                sequence: h.sequence,
                precedence: h.precedence,
                tlp: tlp_name(h.tlp).into(),
                created_ms: h.created,
                received_ms: now_ms(),
                envelope: envelope.bytes().clone(),
                envelope_sha256: *envelope.sha256(),
                content: content.plaintext.clone(),
                subject: content.draft.subject.clone(),
                officer: content.officer.name().to_owned(),
                receipt: ReceiptRecord {
                    message_id: h.message_id,
                    peer,
                    kind: "DELIVERED".into(),
                    bytes: delivered.bytes().clone(),
                    sha256: *delivered.sha256(),
                    stored_ms: now_ms(),
                },
            };
            match p.store.accept(arrival).await {
                Some(Ok(outcome)) => match outcome {
                    AcceptOutcome::Inserted => {
                        metrics::count(&p.metrics, "received", 1);
                        p.note(
                            "received",
                            *envelope.message_id(),
                            content.draft.subject.clone(),
                        );
                        delivered
                    }
                    AcceptOutcome::Duplicate { receipt } => {
                        match Receipt::verify(&receipt, &identity_id(&p)) {
                            Ok(r) => r,
                            Err(e) => {
                                tracing::error!("stored receipt does not verify: {e}");
                                return refuse(&p, conn_id, stream, CloseCode::InternalError);
                            }
                        }
                    }
                    AcceptOutcome::Conflict => {
                        let identity = p.identity.clone();
                        let subject = Subject::from(&envelope);
                        match p
                            .pool
                            .run(move || {
                                Receipt::sign(
                                    &identity,
                                    &subject,
                                    ReceiptBuild::Rejected(
                                        RejectReason::Conflict,
                                        "message id already used by another message on this node",
                                    ),
                                    now_ms(),
                                )
                            })
                            .await
                        {
                            Some(Ok(r)) => r,
                            _ => return refuse(&p, conn_id, stream, CloseCode::InternalError),
                        }
                    }
                },
                Some(Err(e)) => {
                    // Not stored, so no receipt: the sender will retransmit.
                    tracing::error!("cannot store an arriving envelope: {e}");
                    return refuse(&p, conn_id, stream, CloseCode::InternalError);
                }
                None => return,
            }
        }
        Some(Ok(Err(rejected))) => {
            tracing::warn!("envelope rejected: {:?}", rejected.kind());
            if let ReceiptKind::Rejected { reason, detail } = rejected.kind() {
                p.note(
                    "refused",
                    *envelope.message_id(),
                    format!("{reason}: {detail}"),
                );
            }
            *rejected
        }
        _ => return refuse(&p, conn_id, stream, CloseCode::InternalError),
    };
    let _ = p.tx.send(LinkMsg::Done(
        conn_id,
        Done::Respond {
            stream,
            receipt: Box::new(receipt),
        },
    ));
}

impl Parts {
    /// Records an event in the audit trail and tells watching operators.
    fn note(&self, kind: &str, message_id: MessageId, detail: String) {
        let _ = self.events.send(hotline_protocol::wire::OperatorEvent {
            time_ms: now_ms(),
            kind: kind.to_owned(),
            peer: self.alias.clone(),
            message_id: message_id.to_vec().into(),
            detail: detail.clone(),
        });
        let ev = AuditEvent {
            time_ms: now_ms(),
            kind: kind.to_owned(),
            peer: Some(self.peer),
            message_id: Some(message_id),
            detail,
        };
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Some(Err(e)) = store.audit(ev).await {
                tracing::error!("audit write failed: {e}");
            }
        });
    }
}

fn identity_id(p: &Parts) -> NodeId {
    p.identity.id()
}

fn refuse(p: &Parts, conn_id: u64, stream: StreamId, code: CloseCode) {
    let _ =
        p.tx.send(LinkMsg::Done(conn_id, Done::Refuse { stream, code }));
}

fn tlp_name(t: hotline_protocol::content::Tlp) -> &'static str {
    use hotline_protocol::content::Tlp;
    match t {
        Tlp::Clear => "clear",
        Tlp::Green => "green",
        Tlp::Amber => "amber",
        Tlp::AmberStrict => "amber+strict",
        Tlp::Red => "red",
    }
}

/// SPEC.md §8.4 for the answer on an envelope stream.
pub(super) async fn receive_receipt(p: Parts, conn_id: u64, envelope: Envelope, bytes: Bytes) {
    let peer = p.peer;
    let env = envelope.clone();
    let verified = p
        .pool
        .run(move || {
            Receipt::verify(&bytes, &peer)
                .ok()
                .filter(|r| r.answers(&env))
        })
        .await
        .flatten();
    let id = *envelope.message_id();
    let Some(receipt) = verified else {
        tracing::warn!(
            "receipt from the peer does not verify or does not answer the envelope; will retransmit"
        );
        let _ = p.tx.send(LinkMsg::Done(
            conn_id,
            Done::ReceiptVerdict { id, valid: false },
        ));
        return;
    };
    let kind = receipt.kind().as_str();
    let rec = ReceiptRecord {
        message_id: id,
        peer,
        kind: kind.into(),
        bytes: receipt.bytes().clone(),
        sha256: *receipt.sha256(),
        stored_ms: now_ms(),
    };
    let stored = matches!(p.store.record_receipt(rec).await, Some(Ok(())));
    if stored {
        match receipt.kind() {
            ReceiptKind::Delivered => {
                metrics::count(&p.metrics, "delivered", 1);
                p.note("delivered", id, String::new());
            }
            ReceiptKind::Acknowledged { officer, .. } => {
                metrics::count(&p.metrics, "acknowledged", 1);
                p.note("acknowledged", id, officer.name().to_owned());
            }
            ReceiptKind::Rejected { reason, detail } => {
                metrics::count(&p.metrics, "rejected", 1);
                tracing::warn!(reason = %reason, "message REJECTED by the peer: {detail}");
                p.note("rejected", id, format!("{reason}: {detail}"));
            }
        }
    }
    let _ = p.tx.send(LinkMsg::Done(
        conn_id,
        Done::ReceiptVerdict { id, valid: stored },
    ));
}

/// An ACKNOWLEDGED (or re-sent) receipt on a stream the peer opened.
pub(super) async fn receive_async_receipt(p: Parts, conn_id: u64, stream: StreamId, bytes: Bytes) {
    let peer = p.peer;
    let b2 = bytes.clone();
    let verified = match p.pool.run(move || Receipt::verify(&b2, &peer)).await {
        Some(Ok(r)) => r,
        Some(Err(e)) => return refuse(&p, conn_id, stream, e.code()),
        None => return,
    };
    let id = *verified.message_id();
    let sent = p.store.call(move |s| s.sent_envelope(&id)).await;
    let env_bytes = match sent {
        Some(Ok(Some(b))) => b,
        Some(Ok(None)) => return refuse(&p, conn_id, stream, CloseCode::UnknownMessage),
        Some(Err(e)) => {
            tracing::error!("cannot look up a sent message: {e}");
            return refuse(&p, conn_id, stream, CloseCode::InternalError);
        }
        None => return,
    };
    let Ok(envelope) = Envelope::parse(env_bytes) else {
        return refuse(&p, conn_id, stream, CloseCode::InternalError);
    };
    // SPEC.md §8.4 step 6: the message must be one this node sent to THIS peer.
    if envelope.header().recipient != peer {
        return refuse(&p, conn_id, stream, CloseCode::UnknownMessage);
    }
    if !verified.answers(&envelope) {
        return refuse(&p, conn_id, stream, CloseCode::BadReceipt);
    }
    let sha = *verified.sha256();
    let kind = verified.kind().as_str();
    let rec = ReceiptRecord {
        message_id: id,
        peer,
        kind: kind.into(),
        bytes: verified.bytes().clone(),
        sha256: sha,
        stored_ms: now_ms(),
    };
    match p.store.record_receipt(rec).await {
        Some(Ok(())) => {
            if let ReceiptKind::Acknowledged { officer, .. } = verified.kind() {
                metrics::count(&p.metrics, "acknowledged", 1);
                p.note("acknowledged", id, officer.name().to_owned());
            }
            let _ = p.tx.send(LinkMsg::Done(
                conn_id,
                Done::Stored {
                    stream,
                    sha256: sha,
                },
            ));
        }
        _ => refuse(&p, conn_id, stream, CloseCode::InternalError),
    }
}
