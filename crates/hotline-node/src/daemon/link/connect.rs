//! Making a connection: dialing the peer with backoff, and wiring a fresh connection (dialed or
//! accepted) to the session, whose Hello is bound to the TLS exporter.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use hotline_protocol::hello::Side;
use hotline_protocol::session::{Session, StreamId};
use tokio::sync::mpsc;

use super::streams::{read_stream, write_control};
use super::{CONTROL_QUEUE, Conn, Input, LinkCtx, LinkMsg, clock};

pub(super) async fn dial(
    ep: quinn::Endpoint,
    cfg: quinn::ClientConfig,
    addr: &str,
) -> Result<quinn::Connection, String> {
    let sock = tokio::net::lookup_host(addr)
        .await
        .map_err(|e| format!("cannot resolve {addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr} resolves to nothing"))?;
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_matches(['[', ']']);
    let connecting = ep
        .connect_with(cfg, sock, host)
        .map_err(|e| e.to_string())?;
    let conn = tokio::time::timeout(Duration::from_secs(10), connecting)
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| dial_failure(&e))?;
    Ok(conn)
}

/// What a failed dial means for the administrator: above all, which side refused whose
/// certificate (a peer that has not installed this node's bundle refuses every dial).
pub(super) fn dial_failure(e: &quinn::ConnectionError) -> String {
    let reason = hotline_transport::tls::connection_failure_reason(e);
    match e {
        // The peer sent the TLS alert: it refused our certificate.
        quinn::ConnectionError::ConnectionClosed(_) if reason != "other" => format!(
            "the peer refused our certificate ({reason}): has it installed this node's current \
             bundle (`hotlined peer add` or `peer update` on its side)?"
        ),
        // We sent it: the peer's certificate is not the one its bundle here pins.
        quinn::ConnectionError::TransportError(_) if reason != "other" => format!(
            "this node refused the peer's certificate ({reason}): its TLS key is not the one \
             the bundle installed here pins; ask the peer for its current bundle (`hotlined \
             peer update`)"
        ),
        e => e.to_string(),
    }
}

/// Capped exponential backoff with full jitter: base 250 ms, cap 30 s (SPEC.md §3.10).
#[derive(Default)]
pub(super) struct Backoff {
    attempt: u32,
}

impl Backoff {
    pub(super) fn next(&mut self) -> Duration {
        let cap = 250u64.saturating_mul(1 << self.attempt.min(7)).min(30_000);
        self.attempt = self.attempt.saturating_add(1);
        let mut b = [0u8; 8];
        let _ = getrandom::fill(&mut b);
        Duration::from_millis(u64::from_le_bytes(b) % cap.max(1) + 50)
    }
}

/// The connection's exporter value (SPEC.md §6.1), which its Hellos are bound to.
pub(super) fn exporter(conn: &quinn::Connection) -> [u8; hotline_protocol::EXPORTER_LEN] {
    hotline_transport::tls::exporter(conn, hotline_protocol::EXPORTER_LABEL, b"")
}

/// Wires a fresh connection to the session: the session sends its Hello on it.
pub(super) fn attach(
    ctx: &LinkCtx,
    session: &mut Session,
    conn: quinn::Connection,
    id: u64,
    side: Side,
    dialed_by_us: bool,
) -> Conn {
    let exporter = exporter(&conn);
    let now = clock(session);
    session.handle_connected(now, side, exporter);
    attach_io(ctx, conn, id, side, dialed_by_us)
}

/// Starts a fresh connection's streams (the control stream's reader and writer, the acceptor
/// of message streams), reporting to the link task as connection `id`, without telling the
/// session: [`attach`] does, or the replacement of an UP connection (`replace`) once the
/// peer's Hello on this one verified.
pub(super) fn attach_io(
    ctx: &LinkCtx,
    conn: quinn::Connection,
    id: u64,
    side: Side,
    dialed_by_us: bool,
) -> Conn {
    let group = hotline_transport::tls::negotiated_group(&conn);
    tracing::info!(peer = %ctx.alias, remote = %conn.remote_address(), group = group.as_deref().unwrap_or("unknown"), "connected");
    let (control_tx, control_rx) = mpsc::channel::<(Bytes, bool)>(CONTROL_QUEUE);
    let control_flushed = std::sync::Arc::new(tokio::sync::Notify::new());
    let flushed = control_flushed.clone();
    let mut tasks = Vec::new();
    let tx = ctx.tx.clone();
    let c2 = conn.clone();
    // The control stream: the dialer opens it; the listener's first accepted stream is it.
    // Then every further stream the peer opens is a message stream.
    tasks.push(tokio::spawn(async move {
        let streams = if side == Side::Client {
            c2.open_bi().await
        } else {
            c2.accept_bi().await
        };
        let (send, recv) = match streams {
            Ok(s) => s,
            Err(e) => {
                let _ = tx.send(LinkMsg::Input(id, Input::Closed(dial_failure(&e))));
                return;
            }
        };
        tokio::spawn(write_control(send, control_rx, flushed));
        tokio::spawn(read_stream(
            recv,
            tx.clone(),
            id,
            StreamId::Control,
            usize::MAX,
        ));
        let mut n = 0u64;
        loop {
            match c2.accept_bi().await {
                Ok((send, recv)) => {
                    n += 1;
                    let _ = tx.send(LinkMsg::Input(id, Input::Opened { n, send, recv }));
                }
                Err(e) => {
                    let _ = tx.send(LinkMsg::Input(id, Input::Closed(dial_failure(&e))));
                    return;
                }
            }
        }
    }));
    Conn {
        id,
        conn,
        control_tx,
        control_flushed,
        in_send: HashMap::new(),
        tasks,
        out_tasks: HashMap::new(),
        in_readers: HashMap::new(),
        dialed_by_us,
        group,
    }
}

/// The certificate the peer presented on `conn`.
fn peer_certificate(
    conn: &quinn::Connection,
) -> Option<quinn::rustls::pki_types::CertificateDer<'static>> {
    conn.peer_identity()
        .and_then(|id| {
            id.downcast::<Vec<quinn::rustls::pki_types::CertificateDer<'static>>>()
                .ok()
        })
        .and_then(|certs| certs.first().cloned())
}

/// Whether the certificate the peer presented on `conn` is listed in `ca`'s CRLs (a CRL loaded
/// after the connection was set up, SPEC.md §3.6.2).
pub(super) fn peer_certificate_revoked(
    conn: &quinn::Connection,
    ca: &hotline_transport::tls::CaRoots,
) -> bool {
    peer_certificate(conn).is_some_and(|cert| hotline_transport::tls::listed_in_crl(ca, &cert))
}

/// When the certificate the peer presented on `conn` expires (Unix ms).
pub(super) fn peer_certificate_not_after(conn: &quinn::Connection) -> Option<u64> {
    hotline_transport::tls::certificate_not_after(&peer_certificate(conn)?)
}
