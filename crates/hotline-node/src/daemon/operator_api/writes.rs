//! The operator API's writes: Send (an officer's message stored, sealed, queued) and Ack (an
//! officer's acknowledgement made into an ACKNOWLEDGED receipt), SPEC.md §15.5.1 and §15.5.4.

use std::sync::Arc;

use hotline_protocol::content::{OpenedContent, Precedence, Tlp};
use hotline_protocol::envelope::Envelope;
use hotline_protocol::officer::Role;
use hotline_protocol::receipt::{Receipt, ReceiptBuild, Subject};
use hotline_protocol::wire::OperatorErrorCode as Code;
use hotline_protocol::wire::{self, operator_response::Response};

use super::super::Shared;
use super::{ACK_TIME_WINDOW, Operator, Reply, err, message_id};
use crate::store::{OwnReceiptOutcome, ReceiptRecord};
use hotline_transport::now_ms;

fn require_officer(op: &Operator) -> Result<(), (Code, String)> {
    if op.record.revoked_ms.is_some() {
        return err(
            Code::Forbidden,
            "this credential was revoked; ask the node administrator for a new one",
        );
    }
    if op.credential.role() != Role::Officer {
        return err(
            Code::Forbidden,
            "a viewer credential can only read; sending and acknowledging need an officer credential",
        );
    }
    op.credential.check_officer_at(now_ms()).map_err(|e| {
        (
            Code::Forbidden,
            format!("credential not usable now: {e}; ask for a new one"),
        )
    })
}

pub(super) async fn send(shared: &Arc<Shared>, op: &Operator, s: wire::SendRequest) -> Reply {
    require_officer(op)?;
    let to = shared.resolve_peer(&s.to).ok_or((
        Code::UnknownPeer,
        format!("no pinned peer {:?}; `hotline peers` lists them", s.to),
    ))?;
    let id = message_id(&s.message_id)?;
    let precedence = precedence(s.precedence)?;
    let tlp = tlp(s.tlp)?;
    // The content must be signed by THIS operator: nobody sends in another officer's name.
    let content = s.content;
    let me = shared.id;
    let opened = shared
        .pool
        .run(move || OpenedContent::parse(&content, &id, &me, &to, now_ms(), precedence, tlp))
        .await
        .ok_or((Code::Unavailable, "node shutting down".to_string()))?
        .map_err(|e| (Code::BadContent, format!("content refused: {e}")))?;
    if opened.officer.officer_key() != &op.record.officer_key {
        return err(
            Code::BadContent,
            "the content is signed by another officer's key than this credential's",
        );
    }
    match shared.submit_opened(to, id, precedence, tlp, opened).await {
        Ok((id, sequence)) => Ok(Response::Send(wire::SendResponse {
            message_id: id.to_vec().into(),
            sequence,
        })),
        Err(e) => err(e.code(), e.to_string()),
    }
}

pub(super) async fn ack(shared: &Arc<Shared>, op: &Operator, a: wire::AckRequest) -> Reply {
    require_officer(op)?;
    let id = message_id(&a.message_id)?;
    let ackw = a.ack.ok_or((Code::BadRequest, "ack missing".to_string()))?;
    let msg = shared
        .store
        .call(move |s| s.message(&id))
        .await
        .ok_or((Code::Unavailable, "node shutting down".to_string()))?
        .map_err(|e| (Code::Unavailable, e.to_string()))?
        .ok_or((
            Code::NotFound,
            "no message with that id; `hotline inbox` lists them".to_string(),
        ))?;
    if !msg.row.incoming {
        return err(
            Code::BadRequest,
            "that message was sent by this node; only received messages are acknowledged",
        );
    }
    // Idempotent: an existing ACKNOWLEDGED receipt is returned again.
    for r in &msg.receipts {
        if let Ok(rec) = Receipt::verify(r, &shared.id)
            && matches!(
                rec.kind(),
                hotline_protocol::receipt::ReceiptKind::Acknowledged { .. }
            )
        {
            return Ok(Response::Ack(wire::AckResponse { receipt: r.clone() }));
        }
    }
    // SPEC.md §13.4: what the retention policy removed cannot be acknowledged again.
    if msg.removed.envelope_ms.is_some() || msg.row.state == "acknowledged" {
        return err(
            Code::BadRequest,
            if msg.removed.envelope_ms.is_some() {
                "the envelope of this message was removed by the node's retention policy: it \
                 can no longer be acknowledged (`hotline show` says when)"
            } else {
                "this message was acknowledged already, and that ACKNOWLEDGED receipt was \
                 removed by the node's retention policy (`hotline show` says when)"
            },
        );
    }
    let cred = ackw.credential.as_ref().ok_or((
        Code::BadContent,
        "acknowledgement without credential".to_string(),
    ))?;
    if cred.body != op.credential.to_wire().body {
        return err(
            Code::BadContent,
            "the acknowledgement carries another operator's credential",
        );
    }
    // Step 8 (SPEC.md §15.5.4): the officer's time is the time the evidence will show.
    let now = now_ms();
    if ackw.time_ms.abs_diff(now) > ACK_TIME_WINDOW {
        return err(
            Code::BadContent,
            format!(
                "the acknowledgement is dated {} s from this node's clock (at most {} s allowed); \
                 check the clock of the computer you acknowledge from",
                (i128::from(ackw.time_ms) - i128::from(now)) / 1000,
                ACK_TIME_WINDOW / 1000
            ),
        );
    }
    let envelope = Envelope::parse(msg.envelope.clone()).map_err(|_| {
        (
            Code::Unavailable,
            "stored envelope does not parse".to_string(),
        )
    })?;
    let identity = shared.identity.clone();
    let subject = Subject::from(&envelope);
    let receipt = shared
        .pool
        .run(move || {
            Receipt::sign(
                &identity,
                &subject,
                ReceiptBuild::Acknowledged(&ackw),
                now_ms(),
            )
        })
        .await
        .ok_or((Code::Unavailable, "node shutting down".to_string()))?
        .map_err(|e| (Code::BadContent, format!("acknowledgement refused: {e}")))?;
    let rec = ReceiptRecord {
        message_id: id,
        peer: msg.row.peer,
        kind: "ACKNOWLEDGED".into(),
        bytes: receipt.bytes().clone(),
        sha256: *receipt.sha256(),
        stored_ms: now_ms(),
    };
    // The store checks and writes in one transaction: of two officers acknowledging at once,
    // the second gets the first one's receipt, and only one is ever queued to the peer.
    match shared.store.call(move |s| s.store_own_receipt(&rec)).await {
        Some(Ok(OwnReceiptOutcome::Stored)) => {}
        Some(Ok(OwnReceiptOutcome::AlreadyAcknowledged(first))) => {
            return Ok(Response::Ack(wire::AckResponse { receipt: first }));
        }
        Some(Err(e)) => return err(Code::Unavailable, format!("not stored: {e}")),
        None => return err(Code::Unavailable, "node shutting down"),
    }
    shared.send_receipt(msg.row.peer, receipt.clone());
    shared.event(
        "acknowledged_by_officer",
        Some(msg.row.peer),
        Some(id),
        op.credential.name().to_owned(),
    );
    Ok(Response::Ack(wire::AckResponse {
        receipt: receipt.bytes().clone(),
    }))
}

fn precedence(v: i32) -> Result<Precedence, (Code, String)> {
    Ok(match wire::Precedence::try_from(v) {
        Ok(wire::Precedence::Flash) => Precedence::Flash,
        Ok(wire::Precedence::Immediate) => Precedence::Immediate,
        Ok(wire::Precedence::Priority) => Precedence::Priority,
        Ok(wire::Precedence::Routine) => Precedence::Routine,
        _ => {
            return err(
                Code::BadRequest,
                "precedence must be FLASH, IMMEDIATE, PRIORITY or ROUTINE",
            );
        }
    })
}

fn tlp(v: i32) -> Result<Tlp, (Code, String)> {
    Ok(match wire::Tlp::try_from(v) {
        Ok(wire::Tlp::Clear) => Tlp::Clear,
        Ok(wire::Tlp::Green) => Tlp::Green,
        Ok(wire::Tlp::Amber) => Tlp::Amber,
        Ok(wire::Tlp::AmberStrict) => Tlp::AmberStrict,
        Ok(wire::Tlp::Red) => Tlp::Red,
        _ => {
            return err(
                Code::BadRequest,
                "TLP must be CLEAR, GREEN, AMBER, AMBER+STRICT or RED",
            );
        }
    })
}

/// Cancel (SPEC.md §15.5.10): officers only; the node withdraws the message if it never left.
pub(super) async fn cancel(shared: &Arc<Shared>, op: &Operator, c: wire::CancelRequest) -> Reply {
    require_officer(op)?;
    let id = message_id(&c.message_id)?;
    let done = shared
        .cancel(id, op.credential.name().to_owned())
        .await
        .map_err(|e| (e.code(), e.to_string()))?;
    Ok(Response::Cancel(wire::CancelResponse {
        message_id: id.to_vec().into(),
        sequence: done.sequence,
        cancelled_by: done.by,
        cancelled_ms: done.at_ms,
    }))
}
