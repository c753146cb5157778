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
use crate::store::{
    AcceptOutcome, Arrival, AuditEvent, ReceiptOutcome, ReceiptRecord, RejectedSequence,
};
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
    guard: Arc<crate::daemon::guard::StorageGuard>,
    revocations: Arc<crate::daemon::revocations::RevocationBook>,
}

impl LinkCtx {
    pub(super) fn clone_parts(&self) -> Parts {
        Parts {
            alias: self.alias.clone(),
            events: self.events.clone(),
            identity: self.identity.clone(),
            keys: self.keys.current(),
            peer: self.bundle.identity(),
            pool: self.pool.clone(),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            tx: self.tx.clone(),
            guard: self.guard.clone(),
            revocations: self.revocations.clone(),
        }
    }
}

/// SPEC.md §7.6: open, then store with its DELIVERED receipt (or find the original), then answer.
/// `version` is the one the connection `conn_id` negotiated.
pub(super) async fn receive_envelope(
    p: Parts,
    (conn_id, version): (u64, u32),
    stream: StreamId,
    envelope: Envelope,
) {
    // SPEC.md §13.3: below the disk-space floor nothing new is taken. INTERNAL_ERROR: the peer
    // did nothing wrong, keeps the envelope and sends it again later.
    if p.guard.refusing() {
        metrics::count(&p.metrics, "refused_low_disk", 1);
        return refuse(&p, conn_id, stream, CloseCode::InternalError);
    }
    // A peer at its storage quota gets REJECTED (POLICY), signed only once the envelope is
    // authenticated (below); a retransmission of a message already held is answered as ever.
    let mut over_quota = p
        .guard
        .over_quota(&p.peer)
        .then(|| p.guard.quota_detail(&p.peer));
    if over_quota.is_some() {
        let id = *envelope.message_id();
        if let Some(Ok(Some(_))) = p.store.call(move |s| s.received(&id)).await {
            over_quota = None;
        }
    }
    let peer = p.peer;
    // The peer's revocations of its officers' keys (SPEC.md §7.6 step 12a). A message held
    // already is answered as ever (its original receipt), whatever was revoked since: only
    // when a revocation refuses the envelope is the store asked (not for every envelope).
    let (mut opened, refused_by_revocation) = open_job(
        &p,
        &envelope,
        version,
        over_quota.clone(),
        p.revocations.of(&peer),
    )
    .await;
    if refused_by_revocation {
        let id = *envelope.message_id();
        if let Some(Ok(Some(_))) = p.store.call(move |s| s.received(&id)).await {
            opened = open_job(&p, &envelope, version, over_quota, Arc::default())
                .await
                .0;
        }
    }
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
            let held = (envelope.bytes().len() + content.plaintext.len()) as u64;
            let accepted = p.store.accept(arrival).await;
            if let Some(Ok(AcceptOutcome::Inserted { .. })) = &accepted {
                p.guard.add(&peer, held);
            }
            match accepted {
                Some(Ok(outcome)) => match outcome {
                    AcceptOutcome::Inserted { sequence_reused_by } => {
                        metrics::count(&p.metrics, "received", 1);
                        if let Some(earlier) = sequence_reused_by {
                            let (seq, id) = (h.sequence, h.message_id);
                            super::events::sequence_reused(
                                &p.events, &p.alias, &p.metrics, seq, id, earlier,
                            );
                        }
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
    // SPEC.md §10.2: an envelope answered REJECTED after it was authenticated makes its
    // sequence count as received. Recorded before the receipt leaves, so that a restart does
    // not turn it into a false, permanent gap; if it cannot be, no receipt is sent and the
    // peer sends the envelope again.
    let sequence = envelope.header().sequence;
    if let ReceiptKind::Rejected { reason, .. } = receipt.kind()
        && receipt.kind().counts_as_received()
        && sequence != 0
    {
        let record = RejectedSequence {
            peer,
            sequence,
            message_id: *envelope.message_id(),
            reason: reason.to_string(),
            stored_ms: now_ms(),
        };
        match p
            .store
            .call(move |s| s.record_rejected_sequence(&record))
            .await
        {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                tracing::error!("cannot record a rejected envelope's sequence: {e}");
                return refuse(&p, conn_id, stream, CloseCode::InternalError);
            }
            None => return,
        }
    }
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

/// SPEC.md §8.4 for the answer on an envelope stream. A valid receipt that is answered for
/// (stored, held already, or of a kind held already) completes the envelope.
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
    let valid = match p.store.record_receipt(record(&p, &receipt)).await {
        Some(Ok(outcome)) => {
            p.report_receipt(&receipt, outcome);
            true
        }
        Some(Err(e)) => {
            tracing::error!("cannot store a receipt from the peer: {e}");
            false
        }
        None => false,
    };
    let _ =
        p.tx.send(LinkMsg::Done(conn_id, Done::ReceiptVerdict { id, valid }));
}

/// An ACKNOWLEDGED (or re-sent) receipt on a stream the peer opened (SPEC.md §9.4): answered
/// with ReceiptStored once stored, and also when it is not kept because the message holds a
/// receipt of its kind already (§8.5), so that the peer stops sending it.
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
    match p.store.record_receipt(record(&p, &verified)).await {
        Some(Ok(outcome)) => {
            p.report_receipt(&verified, outcome);
            if outcome != ReceiptOutcome::Unknown {
                // The message holds a valid receipt now: its envelope is done, whatever the
                // kind (SPEC.md §8.6: after a final REJECTED nothing is sent again). Reported
                // before ReceiptStored, so the envelope is settled when the peer reads it.
                let _ = p.tx.send(LinkMsg::Done(
                    conn_id,
                    Done::ReceiptVerdict { id, valid: true },
                ));
            }
            let _ = p.tx.send(LinkMsg::Done(
                conn_id,
                Done::Stored {
                    stream,
                    sha256: *verified.sha256(),
                },
            ));
        }
        Some(Err(e)) => {
            tracing::error!("cannot store a receipt from the peer: {e}");
            refuse(&p, conn_id, stream, CloseCode::InternalError)
        }
        None => {}
    }
}

/// The store's record of a verified receipt from the peer.
fn record(p: &Parts, receipt: &Receipt) -> ReceiptRecord {
    ReceiptRecord {
        message_id: *receipt.message_id(),
        peer: p.peer,
        kind: receipt.kind().as_str().into(),
        bytes: receipt.bytes().clone(),
        sha256: *receipt.sha256(),
        stored_ms: now_ms(),
    }
}

impl Parts {
    /// Counts, logs and reports to watching operators what became of a valid receipt from
    /// the peer (SPEC.md §8.5, §8.6). A flood of receipts the store did not keep costs one
    /// counter increment each and a log line at 1, 2, 4, 8, … of them, never an event each.
    fn report_receipt(&self, receipt: &Receipt, outcome: ReceiptOutcome) {
        let id = *receipt.message_id();
        match outcome {
            ReceiptOutcome::Stored(_) => match receipt.kind() {
                ReceiptKind::Delivered => {
                    metrics::count(&self.metrics, "delivered", 1);
                    self.note("delivered", id, String::new());
                }
                ReceiptKind::Acknowledged { officer, .. } => {
                    metrics::count(&self.metrics, "acknowledged", 1);
                    self.note("acknowledged", id, officer.name().to_owned());
                }
                ReceiptKind::Rejected { reason, detail } => {
                    metrics::count(&self.metrics, "rejected", 1);
                    tracing::warn!(reason = %reason, "message REJECTED by the peer: {detail}");
                    self.note("rejected", id, format!("{reason}: {detail}"));
                }
            },
            ReceiptOutcome::Contradictory(state) => {
                metrics::count(&self.metrics, RECEIPTS_CONTRADICTORY, 1);
                let (what, decided) = match receipt.kind() {
                    ReceiptKind::Rejected { reason, detail } => (
                        format!("a REJECTED receipt ({reason}: {detail})"),
                        "delivery",
                    ),
                    other => (format!("a {} receipt", other.as_str()), "rejection"),
                };
                let detail = format!(
                    "the peer sent {what} after its earlier receipt decided {decided}; both are \
                     kept as evidence and the message stays {} (SPEC.md §8.6)",
                    state.name()
                );
                tracing::warn!(
                    peer = %self.alias,
                    message = %data_encoding::HEXLOWER.encode(&id),
                    "contradictory receipts: {detail}"
                );
                self.note("contradictory_receipts", id, detail);
            }
            ReceiptOutcome::Discarded => {
                let total = bump(&self.metrics, RECEIPTS_DISCARDED);
                let id = data_encoding::HEXLOWER.encode(&id);
                let kind = receipt.kind().as_str();
                if total.is_power_of_two() {
                    tracing::warn!(
                        peer = %self.alias,
                        message = %id,
                        total,
                        "a {kind} receipt from the peer not stored: the message holds one of \
                         that kind already (SPEC.md §8.5); {total} discarded so far"
                    );
                } else {
                    tracing::debug!(peer = %self.alias, message = %id, "{kind} receipt discarded");
                }
            }
            ReceiptOutcome::Repeated | ReceiptOutcome::Unknown => {}
        }
    }
}

/// Counter (through [`metrics::count`]): valid receipts from the peer not stored because the
/// message holds one of their kind already (SPEC.md §8.5).
const RECEIPTS_DISCARDED: &str = "receipts_discarded";
/// Counter: valid receipts from the peer that contradict the final receipt held (§8.6).
const RECEIPTS_CONTRADICTORY: &str = "receipts_contradictory";

/// Adds one to counter `name` (as [`metrics::count`] does) and returns its new value, under
/// one lock.
fn bump(m: &metrics::SharedMetrics, name: &'static str) -> u64 {
    m.lock().map_or(0, |mut g| {
        let c = g.counters.entry(name).or_default();
        *c += 1;
        *c
    })
}

/// The result of opening an envelope on the crypto pool.
type Opened = Option<
    Result<
        Result<(hotline_protocol::content::OpenedContent, Receipt), Box<Receipt>>,
        hotline_protocol::receipt::ReceiptError,
    >,
>;

/// SPEC.md §7.6 on the crypto pool, with the peer's `revoked` officer keys: the answer, and
/// whether a revocation was what refused the envelope.
async fn open_job(
    p: &Parts,
    envelope: &Envelope,
    version: u32,
    over_quota: Option<String>,
    revoked: Arc<Vec<hotline_protocol::revocation::Revocation>>,
) -> (Opened, bool) {
    let (identity, keys, peer) = (p.identity.clone(), p.keys.clone(), p.peer);
    let env = envelope.clone();
    let hit = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hit2 = hit.clone();
    let opened = p
        .pool
        .run(move || {
            let now = now_ms();
            // Receipts name the peer of this connection as the sender (SPEC.md §8.1): it is
            // authenticated, and equals the header's `sender` for every envelope that passes
            // §7.6 step 4; a REJECTED for steps 1-4 never repeats unauthenticated sender bytes.
            let mut subject = Subject::from(&env);
            subject.sender = Bytes::copy_from_slice(peer.as_bytes());
            let result = env.open_checked(&identity.id(), &peer, &keys, now, &revoked);
            if matches!(&result, Err(r) if r.reason == RejectReason::RevokedKey) {
                hit2.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            match result {
                Ok(_) if over_quota.is_some() => Receipt::sign(
                    &identity,
                    &subject,
                    ReceiptBuild::Rejected(
                        RejectReason::Policy,
                        over_quota.as_deref().unwrap_or(""),
                    ),
                    now,
                )
                .map(|r| Err(Box::new(r))),
                Ok(content) => Receipt::sign(&identity, &subject, ReceiptBuild::Delivered, now)
                    .map(|r| Ok((content, r))),
                // A version 1 peer does not know REVOKED_KEY (§12.3).
                Err(rej) if rej.reason == RejectReason::RevokedKey && version < 2 => Receipt::sign(
                    &identity,
                    &subject,
                    ReceiptBuild::Rejected(
                        RejectReason::BadOfficerSignature,
                        "officer key revoked by the sender",
                    ),
                    now,
                )
                .map(|r| Err(Box::new(r))),
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
    (opened, hit.load(std::sync::atomic::Ordering::Relaxed))
}
