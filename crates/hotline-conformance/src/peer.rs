//! The raw peer: dials the target as the runner's node, does the Hello exchange itself, then
//! writes whatever bytes a case wants and reports exactly what the target answered (a frame,
//! a stream reset or stop with its code, or the connection closed with its code).
//!
//! Grown from `crates/hotline-node/tests/hostile.rs`, made target-agnostic: nothing here
//! looks inside the target, only at the wire.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotline_protocol::codes::CloseCode;
use hotline_protocol::frame::{self, Decoder, Frame, FrameType, StreamKind};
use hotline_protocol::hello::{self, Offer, PeerHello, Side};
use hotline_protocol::{EXPORTER_LABEL, wire};
use hotline_transport::now_ms;
use prost::Message;
use tokio::task::JoinHandle;

use crate::ctx::Ctx;
use crate::fate::{Ending, code_name};

/// Heartbeat interval (SPEC.md §11.1).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// Most bytes of an answer on a message stream the runner reads: a Receipt or ReceiptStored
/// frame is far smaller; more is itself a wrong answer.
const MAX_ANSWER: usize = 64 * 1024;

/// One QUIC connection to the target, TLS done, nothing sent yet.
pub struct Raw {
    /// The connection.
    pub conn: quinn::Connection,
    /// Its exporter value (SPEC.md §6.1).
    pub exporter: [u8; 32],
}

impl Raw {
    /// Dials the target with `cfg`. A TLS 1.3 client finishes its handshake before the server
    /// has checked the client's certificate: success here proves nothing about that.
    pub async fn connect(cx: &Ctx, cfg: quinn::ClientConfig) -> Result<Raw, Ending> {
        let connecting = cx
            .endpoint
            .connect_with(cfg, cx.target.addr, &cx.target.server_name)
            .map_err(|e| Ending::Other(format!("cannot dial: {e}")))?;
        let conn = match tokio::time::timeout(cx.step, connecting).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(Ending::from_error(&e)),
            Err(_) => {
                return Err(Ending::Other(format!(
                    "no QUIC handshake within {:?}: is the target listening at {}?",
                    cx.step, cx.target.addr
                )));
            }
        };
        let exporter = hotline_transport::tls::exporter(&conn, EXPORTER_LABEL, b"");
        Ok(Raw { conn, exporter })
    }

    /// Opens the control stream (the client's first bidirectional stream) and writes `first`.
    pub async fn open_control(&self, cx: &Ctx, first: &[u8]) -> Result<Control, String> {
        let (mut send, recv) = tokio::time::timeout(cx.step, self.conn.open_bi())
            .await
            .map_err(|_| "could not open the control stream in time".to_owned())?
            .map_err(|e| format!("control stream: {e}"))?;
        send.write_all(first)
            .await
            .map_err(|e| format!("writing on the control stream: {e}"))?;
        Ok(Control {
            send,
            recv,
            decoder: Decoder::new(StreamKind::Control),
        })
    }

    /// The length of the runner's Hello frame (the same for every connection: the exporter
    /// and key sizes are fixed).
    pub fn hello_frame_len(cx: &Ctx) -> usize {
        let hello = hello::create(
            &cx.me.identity,
            Side::Client,
            &[0; hotline_protocol::EXPORTER_LEN],
            &Offer::default(),
            &cx.me.keys,
            now_ms(),
        );
        frame::encode(FrameType::Hello, &hello).len()
    }

    /// A correctly bound Hello of the runner for this connection.
    pub fn hello(&self, cx: &Ctx) -> Vec<u8> {
        hello::create(
            &cx.me.identity,
            Side::Client,
            &self.exporter,
            &Offer::default(),
            &cx.me.keys,
            now_ms(),
        )
    }

    /// Waits up to `limit` for the connection to end; how it ended, or `None`.
    pub async fn ended(&self, limit: Duration) -> Option<Ending> {
        tokio::time::timeout(limit, self.conn.closed())
            .await
            .ok()
            .map(|e| Ending::from_error(&e))
    }

    /// Closes the connection as an orderly peer would.
    pub fn close(&self) {
        self.conn.close(
            quinn::VarInt::from_u32(CloseCode::NoError.code()),
            b"case done",
        );
    }
}

/// The runner's end of the control stream before the Hello exchange is done.
pub struct Control {
    /// Sending side.
    pub send: quinn::SendStream,
    recv: quinn::RecvStream,
    decoder: Decoder,
}

impl Control {
    /// The next complete frame from the target.
    pub async fn read_frame(&mut self) -> Result<Frame, String> {
        read_control_frame(&mut self.recv, &mut self.decoder).await
    }
}

async fn read_control_frame(
    recv: &mut quinn::RecvStream,
    decoder: &mut Decoder,
) -> Result<Frame, String> {
    loop {
        if let Some(f) = decoder.next_frame().map_err(|e| e.to_string())? {
            return Ok(f);
        }
        match recv.read_chunk(64 * 1024, true).await {
            Ok(Some(c)) => decoder.push(&c.bytes),
            Ok(None) => return Err("the target finished the control stream".into()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// What the target sent on the control stream after its Hello.
#[derive(Debug, Default)]
pub struct ControlLog {
    /// Heartbeats, with when they arrived.
    pub heartbeats: Vec<(Instant, wire::Heartbeat)>,
    /// Close frames.
    pub closes: Vec<wire::Close>,
    /// KeyUpdate payloads (SPEC.md §4.3.5), unverified, with when they arrived.
    pub key_updates: Vec<(Instant, Bytes)>,
    /// BundleUpdate payloads (SPEC.md §4.4.4): a version 2 target sends its bundle at link-up.
    pub bundle_updates: Vec<Bytes>,
    /// BundleAccepted payloads (SPEC.md §4.4.4), unverified: the target holds a bundle of the
    /// runner's, answering the runner's BundleUpdate.
    pub bundle_accepted: Vec<Bytes>,
    /// Anything else, or a heartbeat that did not decode: described.
    pub other: Vec<String>,
    /// How the stream ended, if it did.
    pub ended: Option<String>,
}

/// How the runner behaves on an UP link.
#[derive(Clone, Copy, Debug)]
pub struct Behaviour {
    /// Send a Heartbeat at once and every 5 s, and echo the target's pings (SPEC.md §11.1).
    /// Off: the runner says nothing after its Hello (the liveness case).
    pub heartbeats: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour { heartbeats: true }
    }
}

/// A connection on which both Hellos are verified: the link is UP at the target.
pub struct Link {
    /// The connection.
    pub raw: Raw,
    /// The target's verified Hello.
    pub hello: PeerHello,
    /// The Hello the runner sent, exactly.
    pub sent_hello: Vec<u8>,
    /// When the target's Hello was verified: the link came UP.
    pub up_at: Instant,
    control: Arc<tokio::sync::Mutex<quinn::SendStream>>,
    log: Arc<Mutex<ControlLog>>,
    changed: Arc<tokio::sync::Notify>,
    next_ping: Arc<Mutex<u64>>,
    /// The `received_through` the runner's heartbeats on this link carry (0 unless a case
    /// claims more, [`Link::claim_received_through`]).
    claim: Arc<AtomicU64>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Link {
    /// Ends the connection in order (a case that gave up early must not leave the control
    /// stream to be finished implicitly, which the target would rightly call a violation).
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.raw.close();
    }
}

/// What the target did with one message stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Exactly one complete frame, then FIN.
    Frame(Frame),
    /// The target reset its sending side (RESET_STREAM) with this code.
    Reset(u64),
    /// The target stopped the runner's sending side (STOP_SENDING) with this code.
    Stopped(u64),
    /// No answer within the step timeout.
    Silent,
    /// Anything else (connection gone, an answer that is not one frame, ...).
    Failed(String),
}

impl Answer {
    /// Words for the observed column.
    pub fn describe(&self) -> String {
        match self {
            Answer::Frame(f) => format!("a {:?} frame ({} bytes)", f.ty, f.payload.len()),
            Answer::Reset(c) => format!("stream reset with {}", code_name(*c)),
            Answer::Stopped(c) => format!("stream stopped with {}", code_name(*c)),
            Answer::Silent => "no answer".into(),
            Answer::Failed(s) => s.clone(),
        }
    }
}

/// Dials with the node's own configuration and completes the Hello exchange.
pub async fn link(cx: &Ctx) -> Result<Link, String> {
    link_with(cx, Behaviour::default()).await
}

/// [`link`] with a chosen behaviour.
pub async fn link_with(cx: &Ctx, behaviour: Behaviour) -> Result<Link, String> {
    link_offering(cx, &Offer::default(), behaviour).await
}

/// [`link`] with a chosen offer (the runner's Hello offers it, and the runner negotiates the
/// target's Hello with it) and behaviour.
pub async fn link_offering(cx: &Ctx, offer: &Offer, behaviour: Behaviour) -> Result<Link, String> {
    let cfg = cx.client_config()?;
    let raw = Raw::connect(cx, cfg).await.map_err(|e| e.describe())?;
    let hello = hello::create(
        &cx.me.identity,
        Side::Client,
        &raw.exporter,
        offer,
        &cx.me.keys,
        now_ms(),
    );
    raw.into_link_offering(cx, hello, behaviour, offer).await
}

impl Raw {
    /// Sends `hello` as the first control frame, then reads and verifies the target's Hello
    /// (SPEC.md §6.3 as seen from the client): the link is UP.
    pub async fn into_link(
        self,
        cx: &Ctx,
        hello: Vec<u8>,
        behaviour: Behaviour,
    ) -> Result<Link, String> {
        self.into_link_offering(cx, hello, behaviour, &Offer::default())
            .await
    }

    /// [`Raw::into_link`] where the runner's `hello` offered `offer`: the target's Hello is
    /// negotiated with it.
    pub async fn into_link_offering(
        self,
        cx: &Ctx,
        hello: Vec<u8>,
        behaviour: Behaviour,
        offer: &Offer,
    ) -> Result<Link, String> {
        let mut control = self
            .open_control(cx, &frame::encode(FrameType::Hello, &hello))
            .await?;
        let first = match tokio::time::timeout(cx.step, control.read_frame()).await {
            Ok(Ok(f)) => f,
            Ok(Err(e)) => {
                return Err(match self.ended(Duration::from_millis(200)).await {
                    Some(end) => format!("no Hello from the target: {}", end.describe()),
                    None => format!("no Hello from the target: {e}"),
                });
            }
            Err(_) => return Err(format!("no Hello from the target within {:?}", cx.step)),
        };
        if first.ty != FrameType::Hello {
            return Err(format!(
                "the target's first control frame is {:?}, not Hello",
                first.ty
            ));
        }
        let peer = hello::verify(
            &first.payload,
            &cx.target.id,
            Side::Server,
            &self.exporter,
            offer,
        )
        .map_err(|c| format!("the target's Hello does not verify on this connection: {c}"))?;
        if let Ok(mut keys) = cx.hello_keys.lock() {
            *keys = peer.encryption_keys.clone();
        }
        let up_at = Instant::now();
        let Control {
            send,
            recv,
            decoder,
        } = control;
        let control = Arc::new(tokio::sync::Mutex::new(send));
        let log = Arc::new(Mutex::new(ControlLog::default()));
        let changed = Arc::new(tokio::sync::Notify::new());
        let next_ping = Arc::new(Mutex::new(1u64));
        let claim = Arc::new(AtomicU64::new(0));
        let mut tasks = vec![tokio::spawn(read_control(
            recv,
            decoder,
            control.clone(),
            log.clone(),
            changed.clone(),
            (cx.seq.clone(), claim.clone()),
            behaviour.heartbeats,
        ))];
        if behaviour.heartbeats {
            tasks.push(tokio::spawn(send_pings(
                control.clone(),
                next_ping.clone(),
                (cx.seq.clone(), claim.clone()),
            )));
        }
        // Streams the target opens (messages it queued for the runner's identity): read far
        // enough to record the envelope, then refused, so the target keeps them.
        tasks.push(tokio::spawn(crate::inbound::refuse_streams(
            self.conn.clone(),
            cx.from_target.clone(),
            cx.target.id,
            cx.me.identity.id(),
            cx.step,
        )));
        Ok(Link {
            raw: self,
            hello: peer,
            sent_hello: hello,
            up_at,
            control,
            log,
            changed,
            next_ping,
            claim,
            tasks,
        })
    }
}

/// The Heartbeat the runner sends: its clock, its `last_sequence_sent`; it never receives
/// envelopes from the target, so `received_through` stays 0 unless the caller says otherwise.
pub fn heartbeat(ping: u64, echo: u64, seq: &Mutex<crate::ctx::Sequencer>) -> Vec<u8> {
    heartbeat_claiming(ping, echo, seq, 0)
}

/// [`heartbeat`] with `received_through` = `claim`.
pub fn heartbeat_claiming(
    ping: u64,
    echo: u64,
    seq: &Mutex<crate::ctx::Sequencer>,
    claim: u64,
) -> Vec<u8> {
    let last = seq.lock().map(|s| s.sent_max()).unwrap_or(0);
    wire::Heartbeat {
        ping,
        echo,
        time_ms: now_ms(),
        last_sequence_sent: last,
        received_through: claim,
    }
    .encode_to_vec()
}

/// What the runner's heartbeats on a link say: its sequences and its `received_through` claim.
type HeartbeatState = (Arc<Mutex<crate::ctx::Sequencer>>, Arc<AtomicU64>);

fn heartbeat_of(ping: u64, echo: u64, (seq, claim): &HeartbeatState) -> Vec<u8> {
    heartbeat_claiming(ping, echo, seq, claim.load(Ordering::Relaxed))
}

async fn read_control(
    mut recv: quinn::RecvStream,
    mut decoder: Decoder,
    control: Arc<tokio::sync::Mutex<quinn::SendStream>>,
    log: Arc<Mutex<ControlLog>>,
    changed: Arc<tokio::sync::Notify>,
    state: HeartbeatState,
    echo: bool,
) {
    loop {
        let f = match read_control_frame(&mut recv, &mut decoder).await {
            Ok(f) => f,
            Err(e) => {
                if let Ok(mut l) = log.lock() {
                    l.ended = Some(e);
                }
                changed.notify_waiters();
                return;
            }
        };
        let mut reply = None;
        if let Ok(mut l) = log.lock() {
            match f.ty {
                FrameType::Heartbeat => match wire::Heartbeat::decode(f.payload.clone()) {
                    Ok(hb) => {
                        if hb.ping != 0 && echo {
                            reply = Some(frame::encode(
                                FrameType::Heartbeat,
                                &heartbeat_of(0, hb.ping, &state),
                            ));
                        }
                        l.heartbeats.push((Instant::now(), hb));
                    }
                    Err(e) => l.other.push(format!("Heartbeat that does not decode: {e}")),
                },
                FrameType::Close => match wire::Close::decode(f.payload.clone()) {
                    Ok(c) => l.closes.push(c),
                    Err(e) => l.other.push(format!("Close that does not decode: {e}")),
                },
                FrameType::KeyUpdate => l.key_updates.push((Instant::now(), f.payload.clone())),
                FrameType::BundleUpdate => l.bundle_updates.push(f.payload.clone()),
                FrameType::BundleAccepted => l.bundle_accepted.push(f.payload.clone()),
                other => l.other.push(format!("{other:?} frame")),
            }
        }
        changed.notify_waiters();
        if let Some(reply) = reply {
            let _ = control.lock().await.write_all(&reply).await;
        }
    }
}

async fn send_pings(
    control: Arc<tokio::sync::Mutex<quinn::SendStream>>,
    next_ping: Arc<Mutex<u64>>,
    state: HeartbeatState,
) {
    loop {
        let ping = take_ping(&next_ping);
        let hb = frame::encode(FrameType::Heartbeat, &heartbeat_of(ping, 0, &state));
        if control.lock().await.write_all(&hb).await.is_err() {
            return;
        }
        tokio::time::sleep(HEARTBEAT_INTERVAL).await;
    }
}

fn take_ping(next: &Mutex<u64>) -> u64 {
    match next.lock() {
        Ok(mut n) => {
            let p = *n;
            *n += 1;
            p
        }
        Err(_) => u64::from(u32::MAX),
    }
}

impl Link {
    /// Writes raw bytes on the control stream.
    pub async fn write_control(&self, bytes: &[u8]) -> Result<(), String> {
        self.control
            .lock()
            .await
            .write_all(bytes)
            .await
            .map_err(|e| format!("writing on the control stream: {e}"))
    }

    /// Finishes the runner's side of the control stream.
    pub async fn finish_control(&self) -> Result<(), String> {
        self.control
            .lock()
            .await
            .finish()
            .map_err(|e| format!("finishing the control stream: {e}"))
    }

    /// The Close frames the target sent on the control stream so far.
    pub fn closes(&self) -> Vec<wire::Close> {
        self.log
            .lock()
            .map(|l| l.closes.clone())
            .unwrap_or_default()
    }

    /// Sends a Heartbeat ping and waits for the target's echo of it (SPEC.md §11.1: "at once").
    pub async fn ping(&self, cx: &Ctx) -> Result<wire::Heartbeat, String> {
        let ping = take_ping(&self.next_ping);
        let claim = self.claim.load(Ordering::Relaxed);
        let hb = frame::encode(
            FrameType::Heartbeat,
            &heartbeat_claiming(ping, 0, &cx.seq, claim),
        );
        self.write_control(&hb).await?;
        self.wait_heartbeat(cx.step, |h| h.echo == ping)
            .await
            .ok_or_else(|| format!("no echo of ping {ping} within {:?}", cx.step))
    }

    /// From now on every Heartbeat the runner sends on this link claims `received_through` =
    /// `through`, as a peer that received that much from the target would (SPEC.md §10.2);
    /// sends one at once as a ping and returns the target's echo: the claim was read.
    pub async fn claim_received_through(
        &self,
        cx: &Ctx,
        through: u64,
    ) -> Result<wire::Heartbeat, String> {
        self.claim.store(through, Ordering::Relaxed);
        self.ping(cx).await
    }

    /// Waits up to `limit` for a heartbeat from the target matching `pred`.
    pub async fn wait_heartbeat(
        &self,
        limit: Duration,
        pred: impl Fn(&wire::Heartbeat) -> bool,
    ) -> Option<wire::Heartbeat> {
        self.wait_log(limit, |l| {
            l.heartbeats
                .iter()
                .map(|(_, h)| h)
                .find(|h| pred(h))
                .cloned()
        })
        .await
    }

    /// Waits up to `limit` until `found` finds something in the control log (checked at once,
    /// then after each frame the target sends and when the control stream ends).
    pub async fn wait_log<T>(
        &self,
        limit: Duration,
        found: impl Fn(&ControlLog) -> Option<T>,
    ) -> Option<T> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Registered before the look, so a frame in between is not missed.
            let notified = self.changed.notified();
            if let Some(t) = self.log(&found) {
                return Some(t);
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// Reads the control log.
    pub fn log<T>(&self, f: impl FnOnce(&ControlLog) -> T) -> T {
        match self.log.lock() {
            Ok(l) => f(&l),
            Err(p) => f(&p.into_inner()),
        }
    }

    /// Opens a message stream, writes `bytes`, finishes, and reads the target's answer.
    pub async fn exchange(&self, cx: &Ctx, bytes: &[u8]) -> Answer {
        let (mut send, mut recv) =
            match tokio::time::timeout(cx.step, self.raw.conn.open_bi()).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return Answer::Failed(format!("cannot open a stream: {e}")),
                Err(_) => return Answer::Failed("the target gives no stream credit".into()),
            };
        match send.write_all(bytes).await {
            Ok(()) => {}
            Err(quinn::WriteError::Stopped(code)) => return Answer::Stopped(code.into_inner()),
            Err(e) => return Answer::Failed(format!("write: {e}")),
        }
        let _ = send.finish();
        read_answer(&mut recv, cx.step).await
    }

    /// Sends `payload` as one Envelope frame on a new message stream. A RATE_LIMITED reset is
    /// retried after the backoff of SPEC.md §9.7 (the runner must not read the target's rate
    /// limit as its answer to the envelope), for up to 15 s.
    pub async fn send_envelope(&self, cx: &Ctx, payload: &[u8]) -> Answer {
        self.exchange_retrying(cx, &frame::encode(FrameType::Envelope, payload))
            .await
    }

    /// [`Link::exchange`], retried with backoff while the target answers RATE_LIMITED.
    pub async fn exchange_retrying(&self, cx: &Ctx, bytes: &[u8]) -> Answer {
        let t0 = Instant::now();
        let mut delay = Duration::from_millis(250);
        loop {
            let answer = self.exchange(cx, bytes).await;
            let limited = crate::fate::code(CloseCode::RateLimited);
            if answer != Answer::Reset(limited) || t0.elapsed() > Duration::from_secs(15) {
                return answer;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(4));
        }
    }
}

/// Reads one answer on a message stream: one frame then FIN, or a reset.
pub async fn read_answer(recv: &mut quinn::RecvStream, limit: Duration) -> Answer {
    match tokio::time::timeout(limit, recv.read_to_end(MAX_ANSWER)).await {
        Err(_) => Answer::Silent,
        Ok(Ok(data)) => {
            let mut d = Decoder::new(StreamKind::Message);
            d.push(&data);
            match d.next_frame() {
                Ok(Some(f)) if d.buffered() == 0 => Answer::Frame(f),
                Ok(Some(_)) => Answer::Failed("the answer is more than one frame".into()),
                Ok(None) if data.is_empty() => {
                    Answer::Failed("the target finished the stream without an answer".into())
                }
                Ok(None) => Answer::Failed("the answer is a truncated frame".into()),
                Err(e) => Answer::Failed(format!("the answer is not a valid frame: {e}")),
            }
        }
        Ok(Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code)))) => {
            Answer::Reset(code.into_inner())
        }
        Ok(Err(quinn::ReadToEndError::TooLong)) => {
            Answer::Failed(format!("the answer is longer than {MAX_ANSWER} bytes"))
        }
        Ok(Err(e)) => Answer::Failed(format!("read: {e}")),
    }
}
