//! The operator API (SPEC.md §15): duty officers' clients talk to their own node over QUIC
//! with ALPN `hotline-operator/1`, authenticated by the pinned TLS key of their credential.
//!
//! Each request is one client-opened stream: `u32be(len) || OperatorRequest`, FIN; the node
//! answers `u32be(len) || OperatorResponse` (a stream of them for Watch), FIN.

use std::sync::Arc;

use hotline_protocol::content::{OpenedContent, Precedence, Tlp};
use hotline_protocol::envelope::{Envelope, MessageId};
use hotline_protocol::officer::{Credential, Role};
use hotline_protocol::receipt::{Receipt, ReceiptBuild, Subject};
use hotline_protocol::wire::{self, operator_request::Request, operator_response::Response};
use hotline_protocol::{NodeId, wire::OperatorErrorCode as Code};
use prost::Message;

use super::Shared;
use crate::store::{OperatorRecord, OwnReceiptOutcome, ReceiptRecord};
use hotline_transport::now_ms;

/// Largest request (SPEC.md §15.4): a Send carries at most a 1 MiB content. An authenticated
/// operator may open many streams, so this bounds what each can make the node buffer.
pub const MAX_REQUEST: usize = 2 * 1024 * 1024;

/// How far an acknowledgement's `time_ms` may be from the node's clock (SPEC.md §15.5.4
/// step 8): 5 minutes.
pub const ACK_TIME_WINDOW: u64 = 5 * 60 * 1000;

/// An authenticated operator connection.
pub struct Operator {
    /// The credential record (pinned by its TLS key).
    pub record: OperatorRecord,
    /// The verified credential.
    pub credential: Credential,
}

type Reply = Result<Response, (Code, String)>;

fn err<T>(code: Code, msg: impl Into<String>) -> Result<T, (Code, String)> {
    Err((code, msg.into()))
}

/// Serves one operator connection until it closes, or until its credential is revoked or
/// expires: then the node closes it (SPEC.md §15.2.4), at once on a revocation (the reload
/// that applies it wakes every connection) and at the end of the credential's validity.
pub async fn serve(shared: Arc<Shared>, conn: quinn::Connection, op: Operator) {
    tracing::debug!(operator = %op.record.name, remote = %conn.remote_address(), "operator connected");
    let op = Arc::new(op);
    let mut changes = shared.changes.subscribe();
    let expiry = until(op.credential.not_after());
    loop {
        tokio::select! {
            stream = conn.accept_bi() => {
                let Ok((send, recv)) = stream else { return };
                let shared = shared.clone();
                let op = op.clone();
                tokio::spawn(async move { handle_stream(shared, op, send, recv).await });
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                if let Err(why) = authorized(&shared, &op) {
                    tracing::info!(operator = %op.record.name, "closing the operator's connection: {why}");
                    conn.close(quinn::VarInt::from_u32(hotline_protocol::CloseCode::NoError.code()), why.as_bytes());
                    return;
                }
            }
            () = tokio::time::sleep(expiry) => {
                conn.close(
                    quinn::VarInt::from_u32(hotline_protocol::CloseCode::NoError.code()),
                    b"operator credential expired; ask the node administrator for a new one",
                );
                return;
            }
        }
    }
}

/// How long until wall-clock time `t` (zero if past).
fn until(t: hotline_protocol::time::UnixMillis) -> std::time::Duration {
    std::time::Duration::from_millis(t.saturating_sub(now_ms()))
}

/// Whether `op` may act now, by the operators as the node last applied them: known, not
/// revoked, credential valid now. (Requests also re-read the operator table, §15.2.4.)
fn authorized(shared: &Shared, op: &Operator) -> Result<(), &'static str> {
    let active = shared
        .registry
        .read()
        .map(|r| r.operator_active(&op.record.officer_key))
        .unwrap_or(false);
    if !active {
        return Err("operator credential revoked; ask the node administrator for a new one");
    }
    if !op.credential.valid_at(now_ms()) {
        return Err("operator credential expired; ask the node administrator for a new one");
    }
    Ok(())
}

async fn read_frame(recv: &mut quinn::RecvStream) -> Result<Vec<u8>, hotline_protocol::CloseCode> {
    use hotline_protocol::CloseCode as C;
    let mut len = [0u8; 4];
    recv.read_exact(&mut len)
        .await
        .map_err(|_| C::TruncatedFrame)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_REQUEST {
        return Err(C::FrameTooLarge);
    }
    let mut buf = vec![0u8; len];
    recv.read_exact(&mut buf)
        .await
        .map_err(|_| C::TruncatedFrame)?;
    Ok(buf)
}

async fn write_frame(send: &mut quinn::SendStream, resp: Response) -> bool {
    let body = wire::OperatorResponse {
        response: Some(resp),
    }
    .encode_to_vec();
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    send.write_all(&out).await.is_ok()
}

async fn handle_stream(
    shared: Arc<Shared>,
    op: Arc<Operator>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let frame = match read_frame(&mut recv).await {
        Ok(f) => f,
        Err(code) => {
            let _ = send.reset(quinn::VarInt::from_u32(code.code()));
            return;
        }
    };
    let Ok(req) = wire::OperatorRequest::decode(frame.as_slice()) else {
        let _ = send.reset(quinn::VarInt::from_u32(
            hotline_protocol::CloseCode::MalformedFrame.code(),
        ));
        return;
    };
    if let Some(Request::Watch(_)) = req.request {
        // Watch is authorized like every request (§15.5), and again before each event.
        return match check_request(&shared, &op).await {
            Ok(()) => watch(shared, op, send).await,
            Err((code, message)) => {
                let resp = Response::Error(wire::OperatorError {
                    code: code as i32,
                    message,
                });
                if write_frame(&mut send, resp).await {
                    let _ = send.finish();
                }
            }
        };
    }
    let reply = handle(&shared, &op, req.request).await;
    let resp = reply.unwrap_or_else(|(code, message)| {
        Response::Error(wire::OperatorError {
            code: code as i32,
            message,
        })
    });
    if write_frame(&mut send, resp).await {
        let _ = send.finish();
    }
}

/// How often an open Watch re-checks its credential when no event comes.
const WATCH_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Streams events until the client goes away, the node stops, or the credential is revoked or
/// expires: then an `OperatorError` FORBIDDEN and FIN (§15.5.8). The credential is checked
/// before every event, on every reload, and every [`WATCH_RECHECK`].
async fn watch(shared: Arc<Shared>, op: Arc<Operator>, mut send: quinn::SendStream) {
    let mut rx = shared.events.subscribe();
    let mut changes = shared.changes.subscribe();
    let mut tick = tokio::time::interval(WATCH_RECHECK);
    let forbidden = |why: &str| {
        Response::Error(wire::OperatorError {
            code: Code::Forbidden as i32,
            message: why.to_owned(),
        })
    };
    loop {
        let ev = tokio::select! {
            ev = rx.recv() => ev,
            _ = changes.changed() => {
                if let Err(why) = authorized(&shared, &op) {
                    if write_frame(&mut send, forbidden(why)).await {
                        let _ = send.finish();
                    }
                    return;
                }
                continue;
            }
            _ = tick.tick() => {
                if let Err(why) = authorized(&shared, &op) {
                    if write_frame(&mut send, forbidden(why)).await {
                        let _ = send.finish();
                    }
                    return;
                }
                continue;
            }
        };
        if let Err(why) = authorized(&shared, &op) {
            if write_frame(&mut send, forbidden(why)).await {
                let _ = send.finish();
            }
            return;
        }
        let ev = match ev {
            Ok(ev) => ev,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => wire::OperatorEvent {
                time_ms: now_ms(),
                kind: "lagged".into(),
                detail: format!("{n} events dropped"),
                ..Default::default()
            },
            Err(_) => {
                let _ = send.finish();
                return;
            }
        };
        if !write_frame(&mut send, Response::Event(ev)).await {
            return;
        }
    }
}

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

fn message_id(b: &[u8]) -> Result<MessageId, (Code, String)> {
    b.try_into().map_err(|_| {
        (
            Code::BadRequest,
            "message id must be 16 bytes (32 hex digits)".to_string(),
        )
    })
}

/// The checks of every request (SPEC.md §15.5): the credential is not revoked (by the
/// operator table as stored now, §15.2.4) and is valid now.
async fn check_request(shared: &Arc<Shared>, op: &Operator) -> Result<(), (Code, String)> {
    // Revocation and validity are judged when each request is processed (SPEC.md §15.2.4),
    // not only when the connection was made.
    let key = op.record.officer_key;
    // The operators table is never among the grouped writes: read it without waiting for them.
    let current = shared
        .store
        .read_committed(move |s| {
            s.operators()
                .map(|ops| ops.into_iter().find(|o| o.officer_key == key))
        })
        .await
        .ok_or((Code::Unavailable, "node shutting down".to_string()))?
        .map_err(|e| (Code::Unavailable, e.to_string()))?;
    match current {
        Some(r) if r.revoked_ms.is_none() => {}
        _ => {
            return err(
                Code::Forbidden,
                "this credential was revoked; ask the node administrator for a new one",
            );
        }
    }
    if !op.credential.valid_at(now_ms()) {
        return err(
            Code::Forbidden,
            "this credential has expired; ask the node administrator for a new one",
        );
    }
    Ok(())
}

async fn handle(shared: &Arc<Shared>, op: &Operator, req: Option<Request>) -> Reply {
    check_request(shared, op).await?;
    match req {
        None => err(
            Code::BadRequest,
            "empty or unknown request; is the client newer than the node?",
        ),
        Some(Request::Whoami(_)) => Ok(Response::Whoami(wire::WhoAmIResponse {
            name: op.credential.name().to_owned(),
            role: match op.credential.role() {
                Role::Officer => wire::Role::Officer as i32,
                Role::Viewer => wire::Role::Viewer as i32,
            },
            node: shared.id.to_string(),
            node_name: shared.name.clone(),
        })),
        Some(Request::Send(s)) => send(shared, op, s).await,
        Some(Request::Ack(a)) => ack(shared, op, a).await,
        Some(Request::List(l)) => list(shared, l).await,
        Some(Request::Show(s)) => show(shared, s).await,
        Some(Request::Status(_)) => Ok(Response::Status(shared.status())),
        Some(Request::Peers(_)) => Ok(Response::Peers(wire::PeersResponse {
            peers: shared.peer_infos(),
        })),
        Some(Request::Export(e)) => export(shared, e).await,
        Some(Request::Watch(_)) => err(Code::BadRequest, "watch is handled on its own stream"),
    }
}

async fn send(shared: &Arc<Shared>, op: &Operator, s: wire::SendRequest) -> Reply {
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
        .run(move || OpenedContent::parse(&content, &id, &me, &to, now_ms()))
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

async fn ack(shared: &Arc<Shared>, op: &Operator, a: wire::AckRequest) -> Reply {
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

async fn list(shared: &Arc<Shared>, l: wire::ListRequest) -> Reply {
    let limit = match l.limit {
        0 => 100,
        n => n.min(10_000) as usize,
    };
    let peer = if l.peer.is_empty() {
        None
    } else {
        Some(
            shared
                .resolve_peer(&l.peer)
                .ok_or((Code::UnknownPeer, format!("no pinned peer {:?}", l.peer)))?,
        )
    };
    let incoming = l.incoming;
    // `unacknowledged_only` applies to the inbox only, and before the limit: fetch the most the
    // API allows, filter, then keep the `limit` newest.
    let unacked_only = l.unacknowledged_only && incoming;
    let fetch = if unacked_only { 10_000 } else { limit };
    let rows = shared
        .store
        .call(move |s| s.messages(incoming, peer, fetch))
        .await
        .ok_or((Code::Unavailable, "node shutting down".to_string()))?
        .map_err(|e| (Code::Unavailable, e.to_string()))?;
    let mut messages: Vec<wire::MessageSummary> = rows
        .into_iter()
        .filter(|m| !(unacked_only && m.state == "acknowledged"))
        .take(limit)
        .map(|m| shared.summary(&m))
        .collect();
    // FLASH first, then newest first (SPEC.md §15.5.2: what is most urgent is on top).
    messages.sort_by_key(|m| (m.precedence, std::cmp::Reverse(m.created_ms)));
    Ok(Response::List(wire::ListResponse { messages }))
}

async fn show(shared: &Arc<Shared>, s: wire::ShowRequest) -> Reply {
    let id = message_id(&s.message_id)?;
    let msg = shared
        .store
        .call(move |st| st.message(&id))
        .await
        .ok_or((Code::Unavailable, "node shutting down".to_string()))?
        .map_err(|e| (Code::Unavailable, e.to_string()))?
        .ok_or((
            Code::NotFound,
            "no message with that id; `hotline inbox` lists them".to_string(),
        ))?;
    let own = shared.own_bundle.clone();
    let peer = shared.peer_bundle(&msg.row.peer);
    let (sender_bundle, receiver_bundle) = if msg.row.incoming {
        (peer, own)
    } else {
        (own, peer)
    };
    Ok(Response::Show(wire::ShowResponse {
        summary: Some(shared.summary(&msg.row)),
        envelope: msg.envelope.clone(),
        content: msg.content.clone(),
        receipts: msg.receipts.clone(),
        sender_bundle,
        receiver_bundle,
    }))
}

async fn export(shared: &Arc<Shared>, e: wire::ExportRequest) -> Reply {
    let peer: Option<NodeId> = if e.peer.is_empty() {
        None
    } else {
        Some(
            shared
                .resolve_peer(&e.peer)
                .ok_or((Code::UnknownPeer, format!("no pinned peer {:?}", e.peer)))?,
        )
    };
    let since = e.since_ms;
    let items = shared
        .store
        .call(move |s| s.export(peer, since))
        .await
        .ok_or((Code::Unavailable, "node shutting down".to_string()))?
        .map_err(|e| (Code::Unavailable, e.to_string()))?;
    let mut peers: Vec<NodeId> = items.iter().map(|i| i.peer).collect();
    peers.sort();
    peers.dedup();
    Ok(Response::Export(wire::ExportResponse {
        bundle: Some(wire::EvidenceBundle {
            version: 1,
            created_ms: now_ms(),
            exporter_bundle: shared.own_bundle.clone(),
            peer_bundles: peers.iter().map(|p| shared.peer_bundle(p)).collect(),
            items: items
                .into_iter()
                .map(|i| wire::EvidenceItem {
                    envelope: i.envelope,
                    receipts: i.receipts,
                    incoming: i.incoming,
                })
                .collect(),
        }),
    }))
}
