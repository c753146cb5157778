//! The operator API (SPEC.md §15): duty officers' clients talk to their own node over QUIC
//! with ALPN `hotline-operator/1`, authenticated by the pinned TLS key of their credential.
//!
//! Each request is one client-opened stream: `u32be(len) || OperatorRequest`, FIN; the node
//! answers `u32be(len) || OperatorResponse` (a stream of them for Watch), FIN.

mod views;
mod watch;
mod writes;

use std::sync::Arc;

use hotline_protocol::envelope::MessageId;
use hotline_protocol::officer::{Credential, Role};
use hotline_protocol::wire::OperatorErrorCode as Code;
use hotline_protocol::wire::{self, operator_request::Request, operator_response::Response};
use prost::Message;

use super::Shared;
use crate::store::OperatorRecord;
use hotline_transport::now_ms;
use views::{export, list, show};
use watch::watch;
use writes::{ack, cancel, send};

/// Largest request (SPEC.md §15.4): a Send carries at most a 1 MiB content. An authenticated
/// operator may open many streams, so this bounds what each can make the node buffer.
pub const MAX_REQUEST: usize = 2 * 1024 * 1024;

/// How far an acknowledgement's `time_ms` may be from the node's clock (SPEC.md §15.5.4
/// step 8): 5 minutes.
pub const ACK_TIME_WINDOW: u64 = 5 * 60 * 1000;

/// Largest answer (SPEC.md §15.4); a larger one is refused with BAD_REQUEST.
pub const MAX_RESPONSE: usize = 16 * 1024 * 1024;

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
    let expiry = tokio::time::sleep(until(op.credential.not_after()));
    tokio::pin!(expiry);
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
            () = &mut expiry => {
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

/// Writes one response. One over [`MAX_RESPONSE`] is never sent: a BAD_REQUEST saying so goes
/// instead (SPEC.md §15.4; a client would refuse the larger one anyway).
async fn write_frame(send: &mut quinn::SendStream, resp: Response) -> bool {
    let mut body = wire::OperatorResponse {
        response: Some(resp),
    }
    .encode_to_vec();
    if body.len() > MAX_RESPONSE {
        body = wire::OperatorResponse {
            response: Some(Response::Error(wire::OperatorError {
                code: Code::BadRequest as i32,
                message: format!(
                    "the answer would be {} bytes, over the 16 MiB limit of an answer; narrow \
                     the request (a peer, a time, a page)",
                    body.len()
                ),
            })),
        }
        .encode_to_vec();
    }
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
            bundle: shared.own_bundle(),
        })),
        Some(Request::Send(s)) => send(shared, op, s).await,
        Some(Request::Ack(a)) => ack(shared, op, a).await,
        Some(Request::Cancel(c)) => cancel(shared, op, c).await,
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
