//! The link task's loop: one `select!` over the mailbox, the session's timer, the dial and the
//! overdue tick, then the session's outputs drained after each turn.

use std::time::Duration;

use hotline_protocol::codes::CloseCode;
use hotline_protocol::envelope::{Envelope, MessageId};
use hotline_protocol::hello::Side;
use hotline_protocol::identity::EncryptionKey;
use hotline_protocol::session::{Session, Withdrawal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::connect::{Backoff, attach, dial};
use super::duplicate::{
    CANDIDATE_TICK, CANDIDATE_WAIT, Candidate, Verdict, judge, keep_new, received_datagrams,
    settled,
};
use super::events::{audit, check_clock_skew, check_peer_received_through, event};
use super::outbox::{check_overdue, request_page, request_summary};
use super::replace::{Replacement, Step};
use super::streams::{on_input, transmit};
use super::{Conn, Done, LinkCtx, LinkMsg, clock, instant_of};
use crate::daemon::metrics;

/// How often overdue messages are looked for.
const OVERDUE_CHECK: Duration = Duration::from_secs(5);

/// Runs the link until shutdown.
pub async fn run(mut ctx: LinkCtx, mut rx: mpsc::UnboundedReceiver<LinkMsg>) {
    let peer = ctx.bundle.identity();
    // Retransmission jitter (SPEC.md §9.7) from a random seed: two nodes' retries never fall
    // into step. A failed read leaves a fixed seed, which still spreads retries.
    let mut seed = [0u8; 8];
    let _ = getrandom::fill(&mut seed);
    let config = hotline_protocol::session::Config {
        jitter_seed: u64::from_le_bytes(seed),
        ..ctx.session.clone()
    };
    let mut session = Session::new(
        config,
        ctx.identity.clone(),
        ctx.keys.announced(hotline_transport::now_ms()),
        peer,
    );
    session.restore(&ctx.restore.0, ctx.restore.1);
    let now = clock(&mut session);
    // Every revocation we issued is sent once the link is up (SPEC.md §4.6.2), and our bundle
    // (§4.4.4).
    let _ = session.set_revocations(now, ctx.revocations.own().as_ref().clone());
    if let Some(b) = ctx
        .shared
        .upgrade()
        .and_then(|s| hotline_protocol::bundle::PeerBundle::from_bytes(&s.own_bundle()).ok())
    {
        let _ = session.set_bundle(now, b);
    }
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
    // The last dial failure logged at warn level (cleared by a connection).
    let mut last_dial_error = String::new();
    let mut dial_task: Option<JoinHandle<()>> = None;
    let mut next_dial = tokio::time::Instant::now();
    let mut overdue: std::collections::HashSet<MessageId> = std::collections::HashSet::new();
    // Whether the clock-skew warning was given (re-armed when the skew falls back).
    let mut skew_warned = false;
    // Messages officers cancelled in this run: never sent, wherever they turn up again (a page
    // of the backlog read before the cancellation committed, the submit path's hand-over).
    // Grows only by operators' cancellations.
    let mut cancelled: std::collections::HashSet<MessageId> = std::collections::HashSet::new();
    let mut overdue_tick = tokio::time::interval(OVERDUE_CHECK);
    // A connection the peer dialed while ours is UP, held until ours is shown dead (§3.9).
    let mut candidate: Option<Candidate> = None;
    // A connection that won a dial race while ours is UP: its Hello runs beside ours, which
    // is closed only once that Hello verified (§3.9).
    let mut replacement: Option<Replacement> = None;
    // The highest `received_through` of the peer's looked into (SPEC.md §10.1, events).
    let mut received_through_handled = 0u64;

    loop {
        let timeout = session.poll_timeout().map(instant_of);
        // A peer added without an address only dials in.
        let dial_due =
            conn.is_none() && !dialing && replacement.is_none() && !ctx.address.is_empty();
        let had_conn = conn.is_some();
        tokio::select! {
            msg = rx.recv() => {
                let Some(msg) = msg else { break };
                let now = clock(&mut session);
                match msg {
                    LinkMsg::Shutdown(why) => {
                        session.close(now, CloseCode::Shutdown, why);
                        // The session's Close transmit closes the connection once the Close
                        // frame reached the peer (bounded: streams::CLOSE_FLUSH); the same
                        // bounded close covers a connection the session had no Close for.
                        drain(&ctx, &mut session, &mut conn, &mut peer_keys);
                        if let Some(c) = &conn {
                            super::streams::close_after_flush(
                                c.conn.clone(),
                                c.control_flushed.clone(),
                                CloseCode::Shutdown.code(),
                                why,
                            );
                        }
                        // A dial under way holds the endpoint (and its UDP port) for up to its
                        // handshake timeout: stop it.
                        if let Some(t) = dial_task.take() {
                            t.abort();
                        }
                        if let Some(cand) = candidate.take() {
                            cand.conn.close(quinn::VarInt::from_u32(CloseCode::Shutdown.code()), why.as_bytes());
                        }
                        if let Some(r) = replacement.take() {
                            r.conn.conn.close(quinn::VarInt::from_u32(CloseCode::Shutdown.code()), why.as_bytes());
                        }
                        break;
                    }
                    LinkMsg::Incoming(c) => {
                        // The peer dialed this one.
                        if let Some(existing) = &conn {
                            let keep = keep_new(existing, settled(&session, now), false, &peer, &ctx.identity.id());
                            if !keep && !session.is_up() {
                                c.close(quinn::VarInt::from_u32(CloseCode::DuplicateConnection.code()), b"duplicate connection");
                                continue;
                            }
                            // A dial race the peer's dial wins while ours is UP: the link moves
                            // to the new connection once the peer's Hello on it verified.
                            if keep && session.is_up() && existing.dialed_by_us && !settled(&session, now) {
                                if let Some(older) = replacement.take() {
                                    older.conn.conn.close(quinn::VarInt::from_u32(CloseCode::DuplicateConnection.code()), b"duplicate connection");
                                }
                                replacement = Some(Replacement::start(&ctx, &mut session, c, next_conn_id, Side::Server, false));
                                next_conn_id += 1;
                                continue;
                            }
                            // Otherwise, with ours UP (cases 1 and 3, and a race that ids settle
                            // for ours): only a peer that lost our connection dials, but anyone
                            // holding just the peer's TLS key can dial too. Keep ours until it is
                            // shown dead: probe it and hold the new one. A peer that restarted
                            // within the race window gets the link back as soon as ours is
                            // shown dead, not after the liveness window.
                            if session.is_up() {
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
                        // A replacement still in its Hello is older than this one: the newest
                        // connection is the one used.
                        if let Some(older) = replacement.take() {
                            older.conn.conn.close(quinn::VarInt::from_u32(CloseCode::DuplicateConnection.code()), b"duplicate connection");
                        }
                        conn = Some(attach(&ctx, &mut session, c, next_conn_id, Side::Server, false));
                        next_conn_id += 1;
                    }
                    LinkMsg::Dialed(_, result) => {
                        dialing = false;
                        match result {
                            Ok(c) => {
                                last_dial_error.clear();
                                if let Some(existing) = &conn {
                                    if !keep_new(existing, settled(&session, now), true, &peer, &ctx.identity.id()) {
                                        c.close(quinn::VarInt::from_u32(CloseCode::DuplicateConnection.code()), b"duplicate connection");
                                        continue;
                                    }
                                    // Our dial wins the race while the peer's is UP: the link
                                    // moves once the peer's Hello on ours verified.
                                    if session.is_up() {
                                        if let Some(older) = replacement.take() {
                                            older.conn.conn.close(quinn::VarInt::from_u32(CloseCode::DuplicateConnection.code()), b"duplicate connection");
                                        }
                                        replacement = Some(Replacement::start(&ctx, &mut session, c, next_conn_id, Side::Client, true));
                                        next_conn_id += 1;
                                        continue;
                                    }
                                    existing.conn.close(quinn::VarInt::from_u32(CloseCode::DuplicateConnection.code()), b"duplicate connection");
                                    session.handle_disconnected(now);
                                }
                                conn = Some(attach(&ctx, &mut session, c, next_conn_id, Side::Client, true));
                                next_conn_id += 1;
                            }
                            Err(e) => {
                                // Said once per distinct cause, not at every retry.
                                if e != last_dial_error {
                                    tracing::warn!(peer = %ctx.alias, "dial failed: {e}");
                                } else {
                                    tracing::debug!(peer = %ctx.alias, "dial failed: {e}");
                                }
                                last_dial_error = e;
                                next_dial = tokio::time::Instant::now() + backoff.next();
                            }
                        }
                    }
                    LinkMsg::Input(id, input) => {
                        if conn.as_ref().is_some_and(|c| c.id == id) {
                            on_input(&ctx, &mut session, &mut conn, input, now);
                        } else if let Some(mut r) = replacement.take_if(|r| r.id() == id) {
                            match r.input(&session, input) {
                                Step::Wait => replacement = Some(r),
                                Step::Gone => {}
                                Step::Fail(code, why) => r.fail(&ctx, code, why),
                                Step::Adopt => {
                                    if let Some(old) = conn.take() {
                                        old.conn.close(quinn::VarInt::from_u32(CloseCode::DuplicateConnection.code()), b"duplicate connection: replaced by a newer one");
                                    }
                                    // A connection held for the §3.9.1 check is judged against
                                    // the connection that is UP from now on.
                                    let (new, held, fin) = r.adopt(&mut session);
                                    conn = Some(new);
                                    if let Some(cand) = &mut candidate {
                                        cand.rx_at_probe = conn.as_ref().map_or(0, |c| received_datagrams(&c.conn));
                                    }
                                    if fin {
                                        session.handle_data(now, hotline_protocol::session::StreamId::Control, &[], true);
                                    }
                                    for input in held {
                                        on_input(&ctx, &mut session, &mut conn, input, now);
                                    }
                                }
                            }
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
                    LinkMsg::Send(e) if cancelled.contains(e.message_id()) => {}
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
                                Ok(e) if cancelled.contains(e.message_id()) => {}
                                Ok(e) => session.send_envelope(now, e),
                                Err(e) => tracing::error!(peer = %ctx.alias, "a stored envelope does not parse: {e}"),
                            }
                        }
                    }
                    LinkMsg::Cancel(id, reply) => {
                        let w = session.withdraw_envelope(&id);
                        if w != Withdrawal::MayHaveLeft {
                            cancelled.insert(id);
                        }
                        let _ = reply.send(w);
                    }
                    LinkMsg::Uncancel(id) => {
                        if cancelled.remove(&id) {
                            // Still pending in the store: the next page brings it back.
                            backlog = true;
                        }
                    }
                    LinkMsg::Summary(s) => {
                        metrics::peer(&ctx.metrics, &ctx.alias, |m| m.unsealed = s.unsealed);
                        stored_pending = Some(s);
                    }
                    LinkMsg::SendReceipt(r) => session.send_receipt(now, *r),
                    LinkMsg::ClientConfig(c, crls) => {
                        ctx.client_config = *c;
                        if let (Some(ca), Some(c)) = (crls, &conn)
                            && super::connect::peer_certificate_revoked(&c.conn, &ca)
                        {
                            tracing::warn!(peer = %ctx.alias, "a new CRL lists the peer's TLS certificate: closing its connection");
                            metrics::handshake_failure(&ctx.metrics, "revoked");
                            session.close(now, CloseCode::ProtocolViolation, "TLS certificate revoked");
                        }
                    }
                    LinkMsg::OwnBundle(b) => {
                        if session.set_bundle(now, *b) {
                            tracing::debug!(peer = %ctx.alias, "sent our new bundle");
                        }
                    }
                    LinkMsg::PeerBundleHeld(b) => {
                        let sha = hotline_protocol::crypto::sha256(b.bytes());
                        if b.created() > ctx.bundle.created() {
                            ctx.bundle = *b;
                        }
                        let _ = session.bundle_accepted(now, sha);
                    }
                    LinkMsg::Revocations(revs) => {
                        let sent = session.set_revocations(now, revs);
                        if sent > 0 {
                            tracing::info!(peer = %ctx.alias, sent, "key revocations sent to the peer");
                        }
                    }
                    LinkMsg::Keys(keys) => {
                        let sent = session.update_keys(now, keys);
                        tracing::info!(
                            peer = %ctx.alias,
                            "encryption keys changed; {}",
                            if sent {
                                "announced in a KeyUpdate"
                            } else {
                                "the peer learns them from the next Hello"
                            }
                        );
                    }
                }
            }
            _ = sleep_until(timeout) => {
                let now = clock(&mut session);
                session.handle_timeout(now);
            }
            _ = tokio::time::sleep(CANDIDATE_TICK), if candidate.is_some() => {}
            _ = sleep_until(replacement.as_ref().map(|r| r.deadline)), if replacement.is_some() => {
                if let Some(r) = replacement.take() {
                    r.fail(&ctx, CloseCode::HelloTimeout, "no Hello from the peer in time");
                }
            }
            _ = overdue_tick.tick() => {
                check_overdue(&ctx, &session, &mut overdue, stored_pending.filter(|_| backlog));
                // Every tick: the whole outbox's counts (one indexed query), for the overdue
                // count while a backlog is paged, and the unsealed count always.
                request_summary(&ctx);
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
                        let now = clock(&mut session);
                        session.handle_disconnected(now);
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
        let status = session.status();
        check_peer_received_through(&ctx, &status, &mut received_through_handled);
        check_clock_skew(&ctx, status.clock_skew_ms, &mut skew_warned);
        metrics::peer(&ctx.metrics, &ctx.alias, |m| {
            m.up = session.is_up();
            m.queue = match stored_pending {
                Some(s) if backlog => s.count.max(session.pending() as u64),
                _ => session.pending() as u64,
            };
            m.rtt_ms = session.rtt();
            // QUIC's own estimate, in microseconds: a heartbeat sample is whole milliseconds.
            m.quic_rtt = conn
                .as_ref()
                .filter(|_| session.is_up())
                .map(|c| c.conn.rtt());
            let st = &status;
            m.gaps = st.gaps.iter().map(|(a, b)| b - a + 1).sum();
            m.since_ms = st.since;
            m.last_received_ms = st.last_received.unwrap_or(0);
            m.clock_skew_ms = st.clock_skew_ms;
            m.claim_capped = st.claim_capped;
        });
    }
}

fn ctx_pending(ctx: &LinkCtx) -> Vec<Envelope> {
    ctx.pending.clone()
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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
