//! QUIC streams in and out: the control stream writer, the stream readers, transport input fed
//! to the session, and the session's transmits performed on the connection.

use bytes::Bytes;
use hotline_protocol::codes::CloseCode;
use hotline_protocol::session::{Session, StreamId, Transmit};
use hotline_protocol::time::UnixMillis;
use tokio::sync::mpsc;

use super::{Conn, Input, LinkCtx, LinkMsg};
use crate::daemon::metrics;

/// Most bytes read from one message stream: an envelope frame plus slack.
const MAX_STREAM_READ: usize =
    hotline_protocol::frame::HEADER_LEN + hotline_protocol::envelope::MAX_ENVELOPE_LEN + 1024;

pub(super) async fn write_control(
    mut send: quinn::SendStream,
    mut rx: mpsc::UnboundedReceiver<(Bytes, bool)>,
) {
    while let Some((data, fin)) = rx.recv().await {
        if send.write_all(&data).await.is_err() {
            return;
        }
        if fin {
            let _ = send.finish();
            return;
        }
    }
}

pub(super) async fn read_stream(
    recv: quinn::RecvStream,
    tx: mpsc::UnboundedSender<LinkMsg>,
    id: u64,
    stream: StreamId,
    limit: usize,
) {
    read_stream_until(recv, tx, id, stream, limit, std::future::pending()).await;
}

/// Reads `recv` into the link until it ends, or until `stop` yields a code: then the stream
/// is stopped with it (STOP_SENDING: a "reset" refuses both directions, SPEC.md §1.3).
async fn read_stream_until(
    mut recv: quinn::RecvStream,
    tx: mpsc::UnboundedSender<LinkMsg>,
    id: u64,
    stream: StreamId,
    limit: usize,
    stop: impl std::future::Future<Output = Option<u32>>,
) {
    let mut total = 0usize;
    let mut stop = std::pin::pin!(stop);
    loop {
        let read = tokio::select! {
            code = &mut stop => {
                if let Some(code) = code {
                    let _ = recv.stop(quinn::VarInt::from_u32(code));
                }
                return;
            }
            read = recv.read_chunk(64 * 1024, true) => read,
        };
        match read {
            Ok(Some(chunk)) => {
                total = total.saturating_add(chunk.bytes.len());
                let _ = tx.send(LinkMsg::Input(
                    id,
                    Input::Data {
                        stream,
                        data: chunk.bytes,
                        fin: false,
                    },
                ));
                if total > limit {
                    let _ = recv.stop(quinn::VarInt::from_u32(CloseCode::FrameTooLarge.code()));
                    return;
                }
            }
            Ok(None) => {
                let _ = tx.send(LinkMsg::Input(
                    id,
                    Input::Data {
                        stream,
                        data: Bytes::new(),
                        fin: true,
                    },
                ));
                return;
            }
            Err(quinn::ReadError::Reset(code)) => {
                let _ = tx.send(LinkMsg::Input(
                    id,
                    Input::Reset {
                        stream,
                        code: code.into_inner(),
                    },
                ));
                return;
            }
            Err(_) => return,
        }
    }
}

pub(super) fn on_input(
    ctx: &LinkCtx,
    session: &mut Session,
    conn: &mut Option<Conn>,
    input: Input,
    now: UnixMillis,
) {
    match input {
        Input::Data { stream, data, fin } => {
            if fin && let Some(c) = conn.as_mut() {
                // The stream's reader is done: forget its task, so a long-lived connection
                // does not keep one handle per message it ever carried.
                match stream {
                    StreamId::Out(n) => {
                        c.out_tasks.remove(&n);
                    }
                    StreamId::In(n) => {
                        c.in_readers.remove(&n);
                    }
                    StreamId::Control => {}
                }
            }
            session.handle_data(now, stream, &data, fin)
        }
        Input::Reset { stream, code } => {
            if let (StreamId::In(n), Some(c)) = (stream, conn.as_mut()) {
                c.in_send.remove(&n);
                c.in_readers.remove(&n);
            }
            session.handle_stream_reset(now, stream, code)
        }
        Input::Opened { n, send, recv } => {
            if let Some(c) = conn.as_mut() {
                c.in_send.insert(n, send);
                let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<u32>();
                let reader = tokio::spawn(read_stream_until(
                    recv,
                    ctx.tx.clone(),
                    c.id,
                    StreamId::In(n),
                    MAX_STREAM_READ,
                    async move { stop_rx.await.ok() },
                ));
                c.in_readers.insert(n, (reader, stop_tx));
            }
        }
        Input::Closed(reason) => {
            tracing::info!(peer = %ctx.alias, "connection closed: {reason}");
            session.handle_disconnected(now);
            *conn = None;
        }
    }
}

pub(super) fn transmit(ctx: &LinkCtx, conn: &mut Option<Conn>, t: Transmit) {
    let Some(c) = conn.as_mut() else { return };
    match t {
        Transmit::Data {
            stream: StreamId::Control,
            data,
            fin,
        } => {
            let _ = c.control_tx.send((data, fin));
        }
        Transmit::Data {
            stream: StreamId::Out(n),
            data,
            fin: _,
        } => {
            metrics::count(&ctx.metrics, "sent", 1);
            let qc = c.conn.clone();
            let tx = ctx.tx.clone();
            let id = c.id;
            let task = tokio::spawn(async move {
                let (mut send, recv) = match qc.open_bi().await {
                    Ok(s) => s,
                    Err(_) => return,
                };
                if send.write_all(&data).await.is_err() {
                    let _ = tx.send(LinkMsg::Input(
                        id,
                        Input::Reset {
                            stream: StreamId::Out(n),
                            code: 0,
                        },
                    ));
                    return;
                }
                let _ = send.finish();
                read_stream(recv, tx, id, StreamId::Out(n), MAX_STREAM_READ).await;
            });
            c.out_tasks.insert(n, task);
        }
        Transmit::Data {
            stream: StreamId::In(n),
            data,
            fin,
        } => {
            if let Some(mut send) = c.in_send.remove(&n) {
                tokio::spawn(async move {
                    if send.write_all(&data).await.is_ok() && fin {
                        let _ = send.finish();
                    }
                });
            }
        }
        Transmit::ResetStream {
            stream: StreamId::In(n),
            code,
        } => {
            if let Some(mut send) = c.in_send.remove(&n) {
                let _ = send.reset(quinn::VarInt::from_u32(code.code()));
            }
            // And the peer's side: STOP_SENDING, unless it already finished.
            if let Some((_, stop)) = c.in_readers.remove(&n) {
                let _ = stop.send(code.code());
            }
        }
        Transmit::ResetStream {
            stream: StreamId::Out(n),
            ..
        } => {
            if let Some(t) = c.out_tasks.remove(&n) {
                t.abort();
            }
        }
        Transmit::ResetStream {
            stream: StreamId::Control,
            code,
        }
        | Transmit::Close { code, .. } => {
            c.conn
                .close(quinn::VarInt::from_u32(code.code()), code.name().as_bytes());
        }
    }
}
