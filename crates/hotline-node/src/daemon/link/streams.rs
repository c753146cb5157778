//! QUIC streams in and out: the control stream writer, the stream readers, transport input fed
//! to the session, and the session's transmits performed on the connection.

use bytes::Bytes;
use hotline_protocol::codes::CloseCode;
use hotline_protocol::session::{Monotonic, Session, StreamId, Transmit};
use tokio::sync::mpsc;

use super::{CONTROL_QUEUE, Conn, Input, LinkCtx, LinkMsg};
use crate::daemon::metrics;

/// Most bytes read from one message stream: an envelope frame plus slack.
const MAX_STREAM_READ: usize =
    hotline_protocol::frame::HEADER_LEN + hotline_protocol::envelope::MAX_ENVELOPE_LEN + 1024;

/// Writes what the session sends on the control stream, in order. A peer that does not read
/// its control stream holds this writer on QUIC flow control; the bounded queue in front of
/// it then fills ([`queue_control`]).
///
/// After the last frame (a Close, SPEC.md §3.8) it finishes the stream and waits, at most
/// [`CLOSE_FLUSH`], until the peer acknowledged it, then notifies `flushed`: the connection is
/// closed only then, so that the Close frame reaches the peer before CONNECTION_CLOSE.
pub(super) async fn write_control(
    mut send: quinn::SendStream,
    mut rx: mpsc::Receiver<(Bytes, bool)>,
    flushed: std::sync::Arc<tokio::sync::Notify>,
) {
    while let Some((data, fin)) = rx.recv().await {
        if send.write_all(&data).await.is_err() {
            break;
        }
        if fin {
            let _ = send.finish();
            let _ = tokio::time::timeout(CLOSE_FLUSH, send.stopped()).await;
            break;
        }
    }
    flushed.notify_one();
}

/// The longest a Close frame is given to reach the peer before the connection is closed.
pub(super) const CLOSE_FLUSH: std::time::Duration = std::time::Duration::from_millis(300);

/// Closes `conn` once the control stream's last frame is acknowledged, or after
/// [`CLOSE_FLUSH`] (a peer that does not read it cannot hold the close up).
pub(super) fn close_after_flush(
    conn: quinn::Connection,
    flushed: std::sync::Arc<tokio::sync::Notify>,
    code: u32,
    reason: &'static str,
) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(CLOSE_FLUSH, flushed.notified()).await;
        conn.close(quinn::VarInt::from_u32(code), reason.as_bytes());
    });
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
    now: Monotonic,
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
            // A refused certificate repeats at every retry: said once (until it changes).
            let repeated = ctx
                .last_close
                .lock()
                .map(|mut last| std::mem::replace(&mut *last, reason.clone()) == reason)
                .unwrap_or(false);
            if reason.contains("refused") && !repeated {
                tracing::warn!(peer = %ctx.alias, "connection closed: {reason}");
            } else {
                tracing::info!(peer = %ctx.alias, "connection closed: {reason}");
            }
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
            if queue_control(&c.control_tx, data, fin) == Queued::Full {
                tracing::warn!(
                    peer = %ctx.alias,
                    "the peer does not read its control stream ({CONTROL_QUEUE} frames wait to be \
                     written): closing the connection with RATE_LIMITED"
                );
                c.conn.close(
                    quinn::VarInt::from_u32(CloseCode::RateLimited.code()),
                    b"control stream not read",
                );
            }
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
            // Dropping the stream's task drops both halves. Our sending side is finished
            // (the item was written whole), so QUIC sends no RESET_STREAM once that data is
            // acknowledged; dropping the unread receiving side sends STOP_SENDING with code 0,
            // NO_ERROR, the code of an abandoned stream (SPEC.md §1.3, §9.7).
            if let Some(t) = c.out_tasks.remove(&n) {
                t.abort();
            }
        }
        Transmit::ResetStream {
            stream: StreamId::Control,
            code,
        } => {
            c.conn
                .close(quinn::VarInt::from_u32(code.code()), code.name().as_bytes());
        }
        // The Close frame is queued on the control stream just before this: let it reach the
        // peer first (SPEC.md §3.8).
        Transmit::Close { code, .. } => {
            close_after_flush(
                c.conn.clone(),
                c.control_flushed.clone(),
                code.code(),
                code.name(),
            );
        }
    }
}

/// What became of a frame for the control stream.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Queued {
    /// In the queue.
    Yes,
    /// The queue is full: the peer has not been reading.
    Full,
    /// The writer is gone (the stream or the connection ended).
    Gone,
}

/// Queues a frame for the control stream's writer, never waiting: the link task must not
/// block on a peer that does not read.
pub(super) fn queue_control(tx: &mpsc::Sender<(Bytes, bool)>, data: Bytes, fin: bool) -> Queued {
    match tx.try_send((data, fin)) {
        Ok(()) => Queued::Yes,
        Err(mpsc::error::TrySendError::Full(_)) => Queued::Full,
        Err(mpsc::error::TrySendError::Closed(_)) => Queued::Gone,
    }
}

#[cfg(test)]
mod tests {
    use super::{CONTROL_QUEUE, Queued, queue_control};
    use bytes::Bytes;

    /// The control queue holds a bounded number of frames: once the writer stops taking them
    /// (a peer that does not read), the next one is refused as Full, not stored.
    #[test]
    fn the_control_queue_is_bounded() {
        let (tx, mut rx) = tokio::sync::mpsc::channel(CONTROL_QUEUE);
        let frame = Bytes::from_static(b"heartbeat");
        for _ in 0..CONTROL_QUEUE {
            assert_eq!(queue_control(&tx, frame.clone(), false), Queued::Yes);
        }
        assert_eq!(queue_control(&tx, frame.clone(), false), Queued::Full);
        assert!(rx.try_recv().is_ok(), "the writer takes one");
        assert_eq!(queue_control(&tx, frame.clone(), false), Queued::Yes);
        drop(rx);
        assert_eq!(queue_control(&tx, frame, true), Queued::Gone);
    }
}
