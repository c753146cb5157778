//! The driver of one link: a tokio task that owns the peer's [`Session`], feeds it what the
//! QUIC connection delivers, performs what it asks (stream writes, resets, closes), and handles
//! its events with the crypto pool and the store.
//!
//! Read socket → `handle_*` → drain `poll_transmit` / `poll_event` → write socket / storage.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::codes::{CloseCode, RejectReason};
use hotline_protocol::envelope::{Envelope, MessageId};
use hotline_protocol::hello::Side;
use hotline_protocol::identity::{EncryptionKey, EncryptionKeypair, IdentityKey, NodeId};
use hotline_protocol::receipt::{Receipt, ReceiptBuild, ReceiptKind, Subject};
use hotline_protocol::session::{Config as SessionConfig, Event, Session, StreamId, Transmit};
use hotline_protocol::time::UnixMillis;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::metrics::{self, SharedMetrics};
use super::pool::CryptoPool;
use super::storage::StoreHandle;
use crate::store::{AcceptOutcome, Arrival, AuditEvent, ReceiptRecord};
use hotline_transport::now_ms;

/// Most bytes read from one message stream: an envelope frame plus slack.
const MAX_STREAM_READ: usize =
    hotline_protocol::frame::HEADER_LEN + hotline_protocol::envelope::MAX_ENVELOPE_LEN + 1024;

/// Messages into a link task.
#[derive(Debug)]
pub enum LinkMsg {
    /// An authenticated connection from this peer was accepted by the listener.
    Incoming(quinn::Connection),
    /// Our dial finished.
    Dialed(u64, Result<quinn::Connection, String>),
    /// Something happened on connection `conn`.
    Input(u64, Input),
    /// An asynchronous job for connection `conn` finished.
    Done(u64, Done),
    /// Queue a sealed envelope (already durable in the outbox).
    Send(Box<Envelope>),
    /// Queue an asynchronous receipt (already durable).
    SendReceipt(Box<Receipt>),
    /// The next page of the outbox backlog: sealed envelopes, and whether the page was full.
    Refill(Vec<Bytes>, bool),
    /// Counts of the whole outbox, for status while a backlog is paged.
    Summary(crate::store::PendingSummary),
    /// Shut down: close the connection with SHUTDOWN and stop.
    Shutdown,
}

/// Transport input.
#[derive(Debug)]
pub enum Input {
    /// Stream data.
    Data {
        stream: StreamId,
        data: Bytes,
        fin: bool,
    },
    /// The peer reset a stream.
    Reset { stream: StreamId, code: u64 },
    /// The peer opened message stream `n`.
    Opened {
        n: u64,
        send: quinn::SendStream,
        recv: quinn::RecvStream,
    },
    /// The connection is gone.
    Closed(String),
}

/// Results of asynchronous work.
#[derive(Debug)]
pub enum Done {
    /// Answer an incoming envelope with this receipt.
    Respond {
        stream: StreamId,
        receipt: Box<Receipt>,
    },
    /// Verdict on a receipt for one of our envelopes.
    ReceiptVerdict { id: MessageId, valid: bool },
    /// An asynchronous receipt is stored.
    Stored { stream: StreamId, sha256: [u8; 32] },
    /// Refuse an incoming stream.
    Refuse { stream: StreamId, code: CloseCode },
}

/// What a link task needs.
pub struct LinkCtx {
    /// Our identity.
    pub identity: Arc<IdentityKey>,
    /// Our encryption key pairs.
    pub keys: Arc<Vec<EncryptionKeypair>>,
    /// The peer's alias.
    pub alias: String,
    /// The peer's bundle.
    pub bundle: PeerBundle,
    /// Where to dial it.
    pub address: String,
    /// The QUIC endpoint.
    pub endpoint: quinn::Endpoint,
    /// Client config pinned to this peer.
    pub client_config: quinn::ClientConfig,
    /// Session settings.
    pub session: SessionConfig,
    /// Workers.
    pub pool: CryptoPool,
    /// Storage.
    pub store: StoreHandle,
    /// Metrics.
    pub metrics: SharedMetrics,
    /// Our own mailbox (for spawned tasks to report back).
    pub tx: mpsc::UnboundedSender<LinkMsg>,
    /// Envelopes pending at start-up: the first `window` of the outbox.
    pub pending: Vec<Envelope>,
    /// Receipts to re-send at start-up.
    pub pending_receipts: Vec<Receipt>,
    /// Received sequences and last sent, from the store.
    pub restore: (Vec<(u64, u64)>, u64),
    /// Outgoing items held in memory (`[limits] outbox_window`).
    pub window: usize,
    /// Delivery deadlines per precedence.
    pub deadlines: crate::config::Deadlines,
    /// Events for watching operators.
    pub events: tokio::sync::broadcast::Sender<hotline_protocol::wire::OperatorEvent>,
    /// The peer's current encryption keys, shared with the submit path (updated from Hello).
    pub shared_keys: Arc<std::sync::Mutex<HashMap<NodeId, Vec<EncryptionKey>>>>,
}

/// How often overdue messages are looked for.
const OVERDUE_CHECK: Duration = Duration::from_secs(5);

struct Conn {
    id: u64,
    conn: quinn::Connection,
    control_tx: mpsc::UnboundedSender<(Bytes, bool)>,
    in_send: HashMap<u64, quinn::SendStream>,
    tasks: Vec<JoinHandle<()>>,
    out_tasks: HashMap<u64, JoinHandle<()>>,
    /// Readers of the streams the peer opened, each with a way to stop it (STOP_SENDING).
    in_readers: HashMap<u64, (JoinHandle<()>, tokio::sync::oneshot::Sender<u32>)>,
    dialed_by_us: bool,
    group: Option<String>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let readers = self.in_readers.drain().map(|(n, (t, _))| (n, t));
        for (_, t) in self.out_tasks.drain().chain(readers) {
            t.abort();
        }
    }
}

/// Runs the link until shutdown.
pub async fn run(ctx: LinkCtx, mut rx: mpsc::UnboundedReceiver<LinkMsg>) {
    let peer = ctx.bundle.identity();
    let mut session = Session::new(
        ctx.session.clone(),
        ctx.identity.clone(),
        ctx.keys.iter().map(|k| k.certificate.clone()).collect(),
        peer,
    );
    session.restore(&ctx.restore.0, ctx.restore.1);
    let now = now_ms();
    for e in std::mem::take(&mut ctx_pending(&ctx)) {
        session.send_envelope(now, e);
    }
    for r in ctx.pending_receipts.iter().cloned() {
        session.send_receipt(now, r);
    }
    metrics::peer(&ctx.metrics, &ctx.alias, |m| {
        m.queue = session.pending() as u64
    });
    // Backlog paging: whether the store may hold pending envelopes the session does not,
    // whether a page is being read, and whether an envelope was left to the store meanwhile.
    let window = ctx.window;
    let mut backlog = ctx.pending.len() >= window;
    let mut refilling = false;
    let mut left_during_refill = false;
    let mut stored_pending: Option<crate::store::PendingSummary> = None;
    let mut peer_keys: Vec<EncryptionKey> = ctx.bundle.encryption_keys().to_vec();
    let mut conn: Option<Conn> = None;
    let mut next_conn_id = 1u64;
    let mut backoff = Backoff::default();
    let mut dialing = false;
    let mut dial_task: Option<JoinHandle<()>> = None;
    let mut next_dial = tokio::time::Instant::now();
    let mut overdue: std::collections::HashSet<MessageId> = std::collections::HashSet::new();
    let mut overdue_tick = tokio::time::interval(OVERDUE_CHECK);
    // A connection the peer dialed while ours is UP, held until ours is shown dead (§3.9).
    let mut candidate: Option<Candidate> = None;

    loop {
        let timeout = session.poll_timeout().map(deadline);
        let dial_due = conn.is_none() && !dialing;
        let had_conn = conn.is_some();
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                let now = now_ms();
                match msg {
                    LinkMsg::Shutdown => {
                        session.close(now, CloseCode::Shutdown, "node shutting down");
                        drain(&ctx, &mut session, &mut conn, &mut peer_keys);
                        if let Some(c) = &conn {
                            c.conn.close(quinn::VarInt::from_u32(CloseCode::Shutdown.code()), b"node shutting down");
                        }
                        // A dial under way holds the endpoint (and its UDP port) for up to its
                        // handshake timeout: stop it.
                        if let Some(t) = dial_task.take() {
                            t.abort();
                        }
                        if let Some(cand) = candidate.take() {
                            cand.conn.close(quinn::VarInt::from_u32(CloseCode::Shutdown.code()), b"node shutting down");
                        }
                        break;
                    }
                    LinkMsg::Incoming(c) => {
                        // The peer dialed this one.
                        if let Some(existing) = &conn {
                            if !keep_new(existing, settled(&session, now), false, &peer, &ctx.identity.id()) {
                                // The peer may have restarted and left our connection dead:
                                // probe it, so a stateless reset from its new process ends it
                                // now rather than at the liveness window.
                                session.probe(now);
                                c.close(quinn::VarInt::from_u32(CloseCode::DuplicateConnection.code()), b"duplicate connection");
                                continue;
                            }
                            // Cases 1 and 3 (not a dial race, which ids settle): only a peer
                            // that lost our UP connection dials, but anyone holding just the
                            // peer's TLS key can dial too. Keep ours until it is shown dead:
                            // probe it and hold the new one.
                            if session.is_up() && (!existing.dialed_by_us || settled(&session, now)) {
                                // A newer dial replaces a held one; the wait goes on (§3.9.1).
                                let (rx_at_probe, deadline) = match candidate.take() {
                                    Some(older) => {
                                        older.conn.close(quinn::VarInt::from_u32(CloseCode::DuplicateConnection.code()), b"duplicate connection");
                                        (older.rx_at_probe, older.deadline)
                                    }
                                    None => {
                                        session.probe(now);
                                        (received_datagrams(&existing.conn), tokio::time::Instant::now() + CANDIDATE_WAIT)
                                    }
                                };
                                candidate = Some(Candidate { conn: c, rx_at_probe, deadline });
                                drain(&ctx, &mut session, &mut conn, &mut peer_keys);
                                continue;
                            }
                            existing.conn.close(quinn::VarInt::from_u32(CloseCode::DuplicateConnection.code()), b"duplicate connection");
                            session.handle_disconnected(now);
                        }
                        conn = Some(attach(&ctx, &mut session, c, next_conn_id, Side::Server, false));
                        next_conn_id += 1;
                    }
                    LinkMsg::Dialed(_, result) => {
                        dialing = false;
                        match result {
                            Ok(c) => {
                                if let Some(existing) = &conn {
                                    if !keep_new(existing, settled(&session, now), true, &peer, &ctx.identity.id()) {
                                        c.close(quinn::VarInt::from_u32(CloseCode::DuplicateConnection.code()), b"duplicate connection");
                                        continue;
                                    }
                                    existing.conn.close(quinn::VarInt::from_u32(CloseCode::DuplicateConnection.code()), b"duplicate connection");
                                    session.handle_disconnected(now);
                                }
                                conn = Some(attach(&ctx, &mut session, c, next_conn_id, Side::Client, true));
                                next_conn_id += 1;
                            }
                            Err(e) => {
                                tracing::debug!(peer = %ctx.alias, "dial failed: {e}");
                                next_dial = tokio::time::Instant::now() + backoff.next();
                            }
                        }
                    }
                    LinkMsg::Input(id, input) => {
                        if conn.as_ref().is_some_and(|c| c.id == id) {
                            on_input(&ctx, &mut session, &mut conn, input, now);
                        }
                    }
                    LinkMsg::Done(id, done) => {
                        // Verdicts on receipts hold across connections; answers on streams do not.
                        match done {
                            Done::ReceiptVerdict { id: mid, valid } => session.receipt_verified(now, &mid, valid),
                            other if conn.as_ref().is_some_and(|c| c.id == id) => match other {
                                Done::Respond { stream, receipt } => session.respond(now, stream, &receipt),
                                Done::Stored { stream, sha256 } => session.respond_stored(stream, &sha256),
                                Done::Refuse { stream, code } => session.refuse(stream, code),
                                Done::ReceiptVerdict { .. } => {}
                            },
                            _ => {}
                        }
                    }
                    LinkMsg::Send(e) => {
                        if backlog || session.pending() >= window {
                            // Durable in the store already: it is paged in with the backlog,
                            // in outbox order (FLASH first).
                            backlog = true;
                            left_during_refill |= refilling;
                        } else {
                            session.send_envelope(now, *e);
                        }
                    }
                    LinkMsg::Refill(page, full) => {
                        refilling = false;
                        backlog = full || std::mem::take(&mut left_during_refill);
                        for b in page {
                            match Envelope::parse(b) {
                                Ok(e) => session.send_envelope(now, e),
                                Err(e) => tracing::error!(peer = %ctx.alias, "a stored envelope does not parse: {e}"),
                            }
                        }
                    }
                    LinkMsg::Summary(s) => stored_pending = Some(s),
                    LinkMsg::SendReceipt(r) => session.send_receipt(now, *r),
                }
            }
            _ = sleep_until(timeout) => session.handle_timeout(now_ms()),
            _ = tokio::time::sleep(CANDIDATE_TICK), if candidate.is_some() => {}
            _ = overdue_tick.tick() => {
                check_overdue(&ctx, &session, &mut overdue, stored_pending.filter(|_| backlog));
                if backlog {
                    request_summary(&ctx);
                } else {
                    stored_pending = None;
                }
            }
            _ = tokio::time::sleep_until(next_dial), if dial_due => {
                dialing = true;
                let ep = ctx.endpoint.clone();
                let cfg = ctx.client_config.clone();
                let addr = ctx.address.clone();
                let tx = ctx.tx.clone();
                let id = next_conn_id;
                dial_task = Some(tokio::spawn(async move {
                    let r = dial(ep, cfg, &addr).await;
                    let _ = tx.send(LinkMsg::Dialed(id, r));
                }));
            }
        }
        if let Some(cand) = candidate.take() {
            let verdict = match &conn {
                None => Verdict::Adopt,
                Some(existing) => judge(
                    cand.conn.close_reason().is_some(),
                    existing.conn.close_reason().is_some(),
                    received_datagrams(&existing.conn) > cand.rx_at_probe,
                    tokio::time::Instant::now() >= cand.deadline,
                ),
            };
            match verdict {
                Verdict::Wait => candidate = Some(cand),
                Verdict::Drop => {}
                Verdict::Refuse => {
                    tracing::warn!(
                        peer = %ctx.alias,
                        remote = %cand.conn.remote_address(),
                        "refused a second connection with the peer's TLS key while the existing one still answers; if this repeats, the peer's TLS key may be in other hands"
                    );
                    metrics::handshake_failure(&ctx.metrics, "duplicate_while_up");
                    audit(
                        &ctx,
                        "duplicate_refused",
                        None,
                        format!("from {}", cand.conn.remote_address()),
                    );
                    cand.conn.close(
                        quinn::VarInt::from_u32(CloseCode::DuplicateConnection.code()),
                        b"duplicate connection: the existing one answers",
                    );
                }
                Verdict::Adopt => {
                    if let Some(existing) = conn.take() {
                        existing.conn.close(
                            quinn::VarInt::from_u32(CloseCode::DuplicateConnection.code()),
                            b"duplicate connection",
                        );
                        session.handle_disconnected(now_ms());
                    }
                    conn = Some(attach(
                        &ctx,
                        &mut session,
                        cand.conn,
                        next_conn_id,
                        Side::Server,
                        false,
                    ));
                    next_conn_id += 1;
                }
            }
        }
        drain(&ctx, &mut session, &mut conn, &mut peer_keys);
        if backlog && !refilling && session.pending() <= window / 2 {
            refilling = true;
            request_page(&ctx, &session, window);
        }
        // Whatever ended the connection (peer close, Hello refused, liveness), redial only after
        // a backoff, so a peer that keeps failing is not hammered with handshakes.
        if had_conn && conn.is_none() {
            next_dial = tokio::time::Instant::now() + backoff.next();
        }
        if session.is_up() {
            backoff = Backoff::default();
        }
        metrics::peer(&ctx.metrics, &ctx.alias, |m| {
            m.up = session.is_up();
            m.queue = match stored_pending {
                Some(s) if backlog => s.count.max(session.pending() as u64),
                _ => session.pending() as u64,
            };
            m.rtt_ms = session.rtt();
            let st = session.status();
            m.gaps = st.gaps.iter().map(|(a, b)| b - a + 1).sum();
            m.since_ms = st.since;
            m.last_received_ms = st.last_received.unwrap_or(0);
        });
    }
}

/// How long a link must have been UP before a connection the peer dials is taken to mean
/// that the peer lost ours, rather than a dial race (SPEC.md §3.9).
const RACE_WINDOW_MS: u64 = 2_000;

/// How long a connection the peer dials while ours is UP waits for ours to answer a probe
/// (SPEC.md §3.9.1), and how often the wait is checked.
const CANDIDATE_WAIT: Duration = Duration::from_secs(3);
const CANDIDATE_TICK: Duration = Duration::from_millis(50);

/// A connection the peer dialed while ours was UP: not yet attached to the session (no Hello
/// sent on it), until ours is shown dead.
struct Candidate {
    conn: quinn::Connection,
    /// UDP datagrams ours had received when it was probed.
    rx_at_probe: u64,
    deadline: tokio::time::Instant,
}

/// What to do with a [`Candidate`].
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Keep waiting.
    Wait,
    /// It ended by itself: forget it.
    Drop,
    /// Ours still answers: close the candidate with DUPLICATE_CONNECTION.
    Refuse,
    /// Ours is dead (it ended, or stayed silent for the whole wait): the candidate replaces it.
    Adopt,
}

/// SPEC.md §3.9.1: a packet arriving on our connection after the probe shows the peer's side of
/// it alive, so the new connection was not dialed by the peer's running process (a peer dials
/// only when it has no connection); an ended or silent connection gives way.
fn judge(candidate_ended: bool, ours_ended: bool, ours_answered: bool, waited: bool) -> Verdict {
    if candidate_ended {
        Verdict::Drop
    } else if ours_ended {
        Verdict::Adopt
    } else if ours_answered {
        Verdict::Refuse
    } else if waited {
        Verdict::Adopt
    } else {
        Verdict::Wait
    }
}

fn received_datagrams(c: &quinn::Connection) -> u64 {
    c.stats().udp_rx.datagrams
}

/// Whether the link has been UP for longer than a dial race could last.
fn settled(session: &Session, now: UnixMillis) -> bool {
    session.is_up() && now.saturating_sub(session.status().since) >= RACE_WINDOW_MS
}

/// Duplicate connections (SPEC.md §3.9). A peer dials only when it has no connection, so a
/// connection it dials while ours has been UP for a while means it lost ours: the new one is
/// kept (once ours is shown dead, §3.9.1, which the caller sees to). Otherwise (a dial race)
/// the one whose dialer has the larger identity key survives, and a new connection from the
/// same dialer as the existing one replaces it (again after §3.9.1 when ours is UP).
fn keep_new(
    existing: &Conn,
    existing_up: bool,
    new_dialed_by_us: bool,
    peer: &NodeId,
    me: &NodeId,
) -> bool {
    if existing.dialed_by_us == new_dialed_by_us {
        return true;
    }
    if existing_up && !new_dialed_by_us {
        return true;
    }
    let new_dialer = if new_dialed_by_us { me } else { peer };
    let other = if new_dialed_by_us { peer } else { me };
    new_dialer.as_bytes() > other.as_bytes()
}

fn ctx_pending(ctx: &LinkCtx) -> Vec<Envelope> {
    ctx.pending.clone()
}

fn deadline(at: UnixMillis) -> tokio::time::Instant {
    let now = now_ms();
    tokio::time::Instant::now() + Duration::from_millis(at.saturating_sub(now))
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn dial(
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
        .map_err(|e| e.to_string())?;
    Ok(conn)
}

/// Capped exponential backoff with full jitter: base 250 ms, cap 30 s (SPEC.md §3.10).
#[derive(Default)]
struct Backoff {
    attempt: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let cap = 250u64.saturating_mul(1 << self.attempt.min(7)).min(30_000);
        self.attempt = self.attempt.saturating_add(1);
        let mut b = [0u8; 8];
        let _ = getrandom::fill(&mut b);
        Duration::from_millis(u64::from_le_bytes(b) % cap.max(1) + 50)
    }
}

/// Wires a fresh connection to the session.
fn attach(
    ctx: &LinkCtx,
    session: &mut Session,
    conn: quinn::Connection,
    id: u64,
    side: Side,
    dialed_by_us: bool,
) -> Conn {
    let exporter = hotline_transport::tls::exporter(&conn, hotline_protocol::EXPORTER_LABEL, b"");
    let group = hotline_transport::tls::negotiated_group(&conn);
    tracing::info!(peer = %ctx.alias, remote = %conn.remote_address(), group = group.as_deref().unwrap_or("unknown"), "connected");
    session.handle_connected(now_ms(), side, exporter);
    let (control_tx, control_rx) = mpsc::unbounded_channel::<(Bytes, bool)>();
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
                let _ = tx.send(LinkMsg::Input(id, Input::Closed(e.to_string())));
                return;
            }
        };
        tokio::spawn(write_control(send, control_rx));
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
                    let _ = tx.send(LinkMsg::Input(id, Input::Closed(e.to_string())));
                    return;
                }
            }
        }
    }));
    Conn {
        id,
        conn,
        control_tx,
        in_send: HashMap::new(),
        tasks,
        out_tasks: HashMap::new(),
        in_readers: HashMap::new(),
        dialed_by_us,
        group,
    }
}

async fn write_control(
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

async fn read_stream(
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

fn on_input(
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

/// Performs every transmit and handles every event the session has.
fn drain(
    ctx: &LinkCtx,
    session: &mut Session,
    conn: &mut Option<Conn>,
    peer_keys: &mut Vec<EncryptionKey>,
) {
    loop {
        let mut progressed = false;
        while let Some(t) = session.poll_transmit() {
            progressed = true;
            transmit(ctx, conn, t);
        }
        while let Some(ev) = session.poll_event() {
            progressed = true;
            event(ctx, session, conn, peer_keys, ev);
        }
        if !progressed {
            break;
        }
    }
}

fn transmit(ctx: &LinkCtx, conn: &mut Option<Conn>, t: Transmit) {
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

fn audit(ctx: &LinkCtx, kind: &str, message_id: Option<MessageId>, detail: String) {
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

fn event(
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

/// Reads the next page of the backlog: the first envelopes of the outbox the session does not
/// hold. Every envelope the session dropped was delivered (its receipt committed before the
/// session let it go), so a page never brings back a delivered message.
fn request_page(ctx: &LinkCtx, session: &Session, window: usize) {
    let skip: std::collections::HashSet<MessageId> = session
        .pending_envelopes()
        .map(|e| *e.message_id())
        .collect();
    let want = window.saturating_sub(session.pending());
    let (store, tx, peer) = (ctx.store.clone(), ctx.tx.clone(), ctx.bundle.identity());
    tokio::spawn(async move {
        let page = store
            .call(move |s| s.pending_window(&peer, &skip, want))
            .await;
        let (page, full) = match page {
            Some(Ok(p)) => {
                let full = p.len() >= want;
                (p, full)
            }
            Some(Err(e)) => {
                // Try again later, not at once: a failing store must not make the link spin.
                tracing::error!("cannot read the outbox backlog (retrying in 1 s): {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                (Vec::new(), true)
            }
            None => return,
        };
        let _ = tx.send(LinkMsg::Refill(page, full));
    });
}

/// Counts the whole outbox (status and overdue while a backlog is paged).
fn request_summary(ctx: &LinkCtx) {
    let now = now_ms();
    let d = &ctx.deadlines;
    use hotline_protocol::content::Precedence as P;
    let cutoffs = [P::Flash, P::Immediate, P::Priority, P::Routine]
        .map(|p| now.saturating_sub(d.for_precedence(p)));
    let (store, tx, peer) = (ctx.store.clone(), ctx.tx.clone(), ctx.bundle.identity());
    tokio::spawn(async move {
        if let Some(Ok(s)) = store
            .call(move |st| st.pending_summary(&peer, cutoffs))
            .await
        {
            let _ = tx.send(LinkMsg::Summary(s));
        }
    });
}

/// Flags envelopes past their precedence's delivery deadline (logs once per message, metric).
/// While a backlog is paged, `stored` counts the whole outbox; only the window in memory is
/// logged message by message.
fn check_overdue(
    ctx: &LinkCtx,
    session: &Session,
    flagged: &mut std::collections::HashSet<MessageId>,
    stored: Option<crate::store::PendingSummary>,
) {
    let now = now_ms();
    let mut current = std::collections::HashSet::new();
    // One pass over the pending envelopes every few seconds, never per event: with a large
    // backlog a scan per event would make the link loop quadratic.
    let mut oldest = 0u64;
    for e in session.pending_envelopes() {
        let h = e.header();
        if oldest == 0 || h.created < oldest {
            oldest = h.created;
        }
        if now.saturating_sub(h.created) > ctx.deadlines.for_precedence(h.precedence) {
            current.insert(h.message_id);
            if !flagged.contains(&h.message_id) {
                tracing::warn!(
                    peer = %ctx.alias,
                    precedence = h.precedence.as_str(),
                    id = %hex(&h.message_id),
                    "message OVERDUE: not delivered within its precedence's deadline"
                );
                audit(
                    ctx,
                    "overdue",
                    Some(h.message_id),
                    h.precedence.as_str().to_owned(),
                );
            }
        }
    }
    if let Some(s) = stored {
        oldest = if oldest == 0 || (s.oldest_ms != 0 && s.oldest_ms < oldest) {
            s.oldest_ms
        } else {
            oldest
        };
    }
    let overdue = (current.len() as u64).max(stored.map_or(0, |s| s.overdue));
    metrics::peer(&ctx.metrics, &ctx.alias, |m| {
        m.overdue = overdue;
        m.oldest_pending_ms = oldest;
    });
    *flagged = current;
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The pieces a spawned job needs.
#[derive(Clone)]
struct Parts {
    alias: String,
    events: tokio::sync::broadcast::Sender<hotline_protocol::wire::OperatorEvent>,
    identity: Arc<IdentityKey>,
    keys: Arc<Vec<EncryptionKeypair>>,
    peer: NodeId,
    pool: CryptoPool,
    store: StoreHandle,
    metrics: SharedMetrics,
    tx: mpsc::UnboundedSender<LinkMsg>,
}

impl LinkCtx {
    fn clone_parts(&self) -> Parts {
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
async fn receive_envelope(p: Parts, conn_id: u64, stream: StreamId, envelope: Envelope) {
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
                                        "message id already received with different bytes",
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
async fn receive_receipt(p: Parts, conn_id: u64, envelope: Envelope, bytes: Bytes) {
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
async fn receive_async_receipt(p: Parts, conn_id: u64, stream: StreamId, bytes: Bytes) {
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

#[cfg(test)]
mod tests {
    use super::{Verdict, judge};

    /// SPEC.md §3.9.1, every combination: a held connection that ended is forgotten; ours
    /// ending or staying silent for the whole wait lets the new one in; any packet on ours
    /// refuses the new one, even at the deadline.
    #[test]
    fn the_held_connection_verdicts() {
        for ours_ended in [false, true] {
            for answered in [false, true] {
                for waited in [false, true] {
                    assert_eq!(judge(true, ours_ended, answered, waited), Verdict::Drop);
                }
            }
        }
        for answered in [false, true] {
            for waited in [false, true] {
                assert_eq!(judge(false, true, answered, waited), Verdict::Adopt);
            }
        }
        assert_eq!(judge(false, false, true, false), Verdict::Refuse);
        assert_eq!(judge(false, false, true, true), Verdict::Refuse);
        assert_eq!(judge(false, false, false, true), Verdict::Adopt);
        assert_eq!(judge(false, false, false, false), Verdict::Wait);
    }
}
