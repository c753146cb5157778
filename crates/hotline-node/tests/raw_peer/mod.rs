//! A hostile peer against a real node, shared by the tests that play one (`hostile.rs`,
//! `hostile_receipts.rs`).
//!
//! Node B runs in-process (`Node::start`, real QUIC, real SQLite) with node A pinned. Instead
//! of node A, a hand-driven "raw peer" holding A's keys dials B: it does the TLS handshake and
//! the Hello exchange itself, then writes whatever bytes a test wants on message streams and
//! reports exactly what B answered (a frame, a stream reset with its code, or the connection
//! closed with its code).
#![allow(dead_code)]

pub mod control;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hotline_node::commands;
use hotline_node::config;
use hotline_node::daemon::Node;
use hotline_node::store::sqlite::SqliteStore;
use hotline_protocol::codes::CloseCode;
use hotline_protocol::content::{Draft, Precedence, Tlp};
use hotline_protocol::crypto::Label;
use hotline_protocol::envelope::{Envelope, MessageId, SealParams};
use hotline_protocol::frame::{self, Decoder, Frame, FrameType, StreamKind};
use hotline_protocol::hello::{self, Offer, PeerHello, Side};
use hotline_protocol::identity::{EncryptionKey, IdentityKey, NodeId};
use hotline_protocol::officer::{OfficerKey, Role};
use hotline_protocol::receipt::{Receipt, ReceiptKind};
use hotline_protocol::time::DAY;
use hotline_protocol::{ALPN, EXPORTER_LABEL, wire};
use hotline_transport::material::Material;
use hotline_transport::now_ms;
use hotline_transport::tls::{self, NodeTlsKey, PeerTrust};
use prost::Message;

/// How long any single step may take before the test fails instead of hanging.
pub const STEP: Duration = Duration::from_secs(10);

pub fn rng() -> rand_core::UnwrapErr<getrandom::SysRng> {
    rand_core::UnwrapErr(getrandom::SysRng)
}

pub fn random_id() -> MessageId {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("random");
    b
}

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// Runs one test on a current-thread runtime, as `hotlined run` does, with an overall limit.
pub fn block_on<F: std::future::Future<Output = ()>>(f: F) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(50), f)
            .await
            .expect("test took longer than 50 s");
    });
}

pub async fn step<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(STEP, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

// ---- the world: node B running, node A's keys in the raw peer's hands ------------------

pub struct World {
    pub _tmp: tempfile::TempDir,
    pub b_dir: PathBuf,
    /// Node B, running.
    pub b: Node,
    /// Node A's material (identity, encryption keys, TLS key): the raw peer's keys.
    pub a: Material,
    /// An officer of node A.
    pub officer: OfficerKey,
    pub b_id: NodeId,
    pub b_spki: [u8; 32],
    pub b_addr: SocketAddr,
}

impl World {
    /// `init` A and B, pin each in the other, start B. A never runs; B's own dials to A go
    /// nowhere (nothing listens on A's address) and do not disturb the raw peer.
    pub async fn start() -> World {
        Self::start_with(|_| {}).await
    }

    /// [`World::start`], with `prepare` run on B's directory before B starts (e.g. to issue
    /// an operator credential).
    pub async fn start_with(prepare: impl FnOnce(&std::path::Path)) -> World {
        let tmp = tempfile::tempdir().expect("tmp");
        let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
        let a_addr = format!("127.0.0.1:{}", free_udp_port());
        let b_addr = format!("127.0.0.1:{}", free_udp_port());
        commands::init(&a_dir, "CERT-A", &a_addr).expect("init a");
        commands::init(&b_dir, "CERT-B", &b_addr).expect("init b");
        commands::peer_add(
            &a_dir,
            &b_dir.join(config::BUNDLE_FILE),
            &b_addr,
            Some("cert-b"),
        )
        .expect("pin b");
        commands::peer_add(
            &b_dir,
            &a_dir.join(config::BUNDLE_FILE),
            &a_addr,
            Some("cert-a"),
        )
        .expect("pin a");
        let a = Material::load(&a_dir).expect("a material");
        let bm = Material::load(&b_dir).expect("b material");
        let (b_id, b_spki) = (bm.identity.id(), bm.tls.spki_sha256());
        let now = now_ms();
        let officer = OfficerKey::generate(
            &a.identity,
            "Anna",
            Role::Officer,
            now - 60_000,
            now + DAY,
            &mut rng(),
        )
        .expect("officer");
        prepare(&b_dir);
        let b = start_node(&b_dir).await;
        let b_addr = b.local_addr;
        World {
            _tmp: tmp,
            b_dir,
            b,
            a,
            officer,
            b_id,
            b_spki,
            b_addr,
        }
    }

    /// The raw peer as node A: A's TLS key, A's identity, A's encryption keys.
    pub fn as_a(&self) -> Dialer {
        Dialer {
            tls: self.a.tls.clone(),
            identity: self.a.identity.clone(),
            keys: self.a.certificates(),
        }
    }

    /// A client configuration as a node builds it: `tls_key` as client certificate, B pinned.
    pub fn client_config(&self, tls_key: &NodeTlsKey, alpn: &[u8]) -> quinn::ClientConfig {
        tls::client_config(
            tls_key,
            &PeerTrust::Pinned {
                spki_sha256: vec![self.b_spki],
            },
            alpn,
            &Default::default(),
        )
        .expect("client config")
    }

    /// Dials B and completes the Hello exchange as `d`.
    pub async fn link(&self, d: &Dialer) -> Link {
        let raw = step(
            "dial B",
            Raw::connect(self.client_config(&d.tls, ALPN), self.b_addr),
        )
        .await
        .expect("TLS handshake with B");
        raw.hello(d, &self.b_id).await
    }

    /// Seals an envelope from A to B: `id`, `sequence`, created now.
    pub fn seal(
        &self,
        key: &EncryptionKey,
        id: MessageId,
        sequence: u64,
        subject: &str,
    ) -> Envelope {
        self.seal_created(key, id, sequence, subject, now_ms())
    }

    /// Seals an envelope from A to B whose header says it was created at `now` (the content is
    /// signed by the officer with the real time: the credential may not cover `now`).
    pub fn seal_created(
        &self,
        key: &EncryptionKey,
        id: MessageId,
        sequence: u64,
        subject: &str,
        now: u64,
    ) -> Envelope {
        let content = Draft {
            subject: subject.into(),
            text: "from the raw peer".into(),
            ..Default::default()
        }
        .sign(&id, &self.b_id, &self.officer, now_ms())
        .expect("content");
        Envelope::seal(
            &self.a.identity,
            &SealParams {
                recipient: self.b_id,
                recipient_key: key,
                message_id: id,
                sequence,
                created: now,
                precedence: Precedence::Routine,
                tlp: Tlp::Green,
            },
            &content,
            &mut rng(),
        )
        .expect("seal")
    }

    pub async fn inbox(&self) -> Vec<MessageId> {
        self.b
            .with_store(|s| s.inbox(1000))
            .await
            .expect("store running")
            .expect("inbox")
            .into_iter()
            .map(|r| r.message_id)
            .collect()
    }

    /// B keeps serving: a fresh connection as A, a fresh envelope, a verified DELIVERED
    /// receipt, and the message in B's inbox.
    pub async fn assert_still_serving(&self, sequence: u64) {
        let link = self.link(&self.as_a()).await;
        let env = self.seal(link.b_key(), random_id(), sequence, "still serving?");
        let r = expect_receipt(link.send(env.bytes()).await, &self.b_id);
        assert_eq!(r.kind(), &ReceiptKind::Delivered, "B stopped serving");
        assert!(r.answers(&env));
        assert!(self.inbox().await.contains(env.message_id()));
    }

    /// Closes the raw peer's connection and waits until B has noticed, so that the next
    /// connection does not meet the old one at B (see the duplicate-connection test).
    pub async fn hang_up(&self, link: Link) {
        link.raw.conn.close(quinn::VarInt::from_u32(0), b"done");
        self.wait_for_metric("hotline_link_up{peer=\"cert-a\"} 0")
            .await;
    }

    pub async fn wait_for_metric(&self, needle: &str) {
        let t0 = Instant::now();
        while !self.b.metrics_text().contains(needle) {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "B's metrics never showed {needle}:\n{}",
                self.b.metrics_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The link to A was never reported up: gauge 0 and no `link_up` audit event.
    pub async fn assert_link_never_up(&self) {
        assert!(
            self.b
                .metrics_text()
                .contains("hotline_link_up{peer=\"cert-a\"} 0"),
            "{}",
            self.b.metrics_text()
        );
        let audit = self
            .b
            .with_store(|s| s.recent_audit(1000))
            .await
            .expect("store running")
            .expect("audit");
        assert!(
            audit.iter().all(|e| e.kind != "link_up"),
            "B reported the link up: {audit:?}"
        );
    }

    /// Stops B gracefully and starts it again on the same directory (same address).
    pub async fn restart_b(self) -> World {
        let World {
            _tmp,
            b_dir,
            b,
            a,
            officer,
            b_id,
            b_spki,
            b_addr,
        } = self;
        b.shutdown().await;
        let b = start_node(&b_dir).await;
        assert_eq!(b.local_addr, b_addr);
        World {
            _tmp,
            b_dir,
            b,
            a,
            officer,
            b_id,
            b_spki,
            b_addr,
        }
    }

    pub async fn stop(self) {
        self.b.shutdown().await;
    }
}

/// Starts the node in `dir`. Right after `Node::shutdown` the UDP port can still be bound
/// (tasks holding the endpoint have not run to their end yet): retry for a while.
pub async fn start_node(dir: &std::path::Path) -> Node {
    let t0 = Instant::now();
    loop {
        let cfg = config::Config::load(dir).expect("cfg");
        let m = Material::load(dir).expect("material");
        let store = SqliteStore::open(&dir.join(config::DB_FILE)).expect("db");
        match Node::start(cfg, m, Box::new(store), None).await {
            Ok(node) => {
                if t0.elapsed() > Duration::from_millis(100) {
                    eprintln!("the node's port was free again after {:?}", t0.elapsed());
                }
                return node;
            }
            Err(e) if e.0.contains("in use") && t0.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("start: {e:?}"),
        }
    }
}

// ---- the raw peer ------------------------------------------------------------------------

/// Who the raw peer claims to be, layer by layer.
pub struct Dialer {
    /// The TLS certificate and key it presents.
    pub tls: NodeTlsKey,
    /// The identity key that signs its Hello.
    pub identity: Arc<IdentityKey>,
    /// The encryption keys its Hello announces.
    pub keys: Vec<EncryptionKey>,
}

/// One QUIC connection to B, TLS done, nothing sent yet.
pub struct Raw {
    pub _endpoint: quinn::Endpoint,
    pub conn: quinn::Connection,
    pub exporter: [u8; 32],
}

impl Raw {
    pub async fn connect(
        cfg: quinn::ClientConfig,
        addr: SocketAddr,
    ) -> Result<Raw, quinn::ConnectionError> {
        let endpoint =
            quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
        let conn = endpoint
            .connect_with(cfg, addr, "127.0.0.1")
            .expect("connect")
            .await?;
        let exporter = tls::exporter(&conn, EXPORTER_LABEL, b"");
        Ok(Raw {
            _endpoint: endpoint,
            conn,
            exporter,
        })
    }

    /// Opens the control stream (the first bidirectional stream) and writes `hello_payload`
    /// as a Hello frame.
    pub async fn send_hello(&self, hello_payload: &[u8]) -> Control {
        let (mut send, recv) = step("open the control stream", self.conn.open_bi())
            .await
            .expect("control stream");
        send.write_all(&frame::encode(FrameType::Hello, hello_payload))
            .await
            .expect("write Hello");
        Control {
            send,
            recv,
            decoder: Decoder::new(StreamKind::Control),
        }
    }

    /// The Hello exchange as `d`: a correctly bound Hello, then B's Hello read and verified.
    pub async fn hello(self, d: &Dialer, b_id: &NodeId) -> Link {
        match self.try_hello(d, b_id).await {
            Ok(link) => link,
            Err(e) => panic!("Hello exchange failed: {e}"),
        }
    }

    pub async fn try_hello(self, d: &Dialer, b_id: &NodeId) -> Result<Link, String> {
        let ours = hello::create(
            &d.identity,
            Side::Client,
            &self.exporter,
            &Offer::default(),
            &d.keys,
            now_ms(),
        );
        let mut control = self.send_hello(&ours).await;
        let f = step("B's Hello", control.read_frame()).await.map_err(|e| {
            format!(
                "no Hello from B: {e}; connection: {:?}",
                self.conn.close_reason()
            )
        })?;
        if f.ty != FrameType::Hello {
            return Err(format!("B's first control frame is {:?}", f.ty));
        }
        let b_hello = hello::verify(
            &f.payload,
            b_id,
            Side::Server,
            &self.exporter,
            &Offer::default(),
        )
        .map_err(|c| format!("B's Hello does not verify on this connection: {c}"))?;
        let heartbeats = tokio::spawn(control.answer_heartbeats());
        Ok(Link {
            raw: self,
            hello: ours,
            b_hello,
            heartbeats,
        })
    }

    /// Waits for B to close the connection; the error it reports.
    pub async fn closed(&self) -> quinn::ConnectionError {
        step("B closes the connection", self.conn.closed()).await
    }
}

/// The raw peer's end of the control stream.
pub struct Control {
    pub send: quinn::SendStream,
    pub recv: quinn::RecvStream,
    pub decoder: Decoder,
}

impl Control {
    pub async fn read_frame(&mut self) -> Result<Frame, String> {
        loop {
            if let Some(f) = self.decoder.next_frame().map_err(|e| e.to_string())? {
                return Ok(f);
            }
            match self.recv.read_chunk(64 * 1024, true).await {
                Ok(Some(c)) => self.decoder.push(&c.bytes),
                Ok(None) => return Err("control stream finished".into()),
                Err(e) => return Err(e.to_string()),
            }
        }
    }

    /// Echoes every Heartbeat ping B sends, so that B's liveness window never closes the
    /// link under a slow test; ends when the control stream or the connection does.
    pub async fn answer_heartbeats(mut self) {
        while let Ok(f) = self.read_frame().await {
            if f.ty != FrameType::Heartbeat {
                continue;
            }
            let Ok(hb) = wire::Heartbeat::decode(f.payload) else {
                return;
            };
            if hb.ping != 0 {
                let echo = wire::Heartbeat {
                    ping: 0,
                    echo: hb.ping,
                    time_ms: now_ms(),
                    last_sequence_sent: 0,
                    received_through: 0,
                }
                .encode_to_vec();
                let reply = frame::encode(FrameType::Heartbeat, &echo);
                if self.send.write_all(&reply).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A connection to B on which both Hellos are verified (the link is UP at B).
pub struct Link {
    pub raw: Raw,
    /// The Hello we sent, exactly.
    pub hello: Vec<u8>,
    pub b_hello: PeerHello,
    pub heartbeats: tokio::task::JoinHandle<()>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.heartbeats.abort();
    }
}

/// What B did with one message stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Exactly one complete frame, then FIN.
    Frame(Frame),
    /// B reset its sending side (RESET_STREAM) with this code: seen on our receive side.
    Reset(u64),
    /// B stopped our sending side (STOP_SENDING) with this code: seen while we wrote.
    Stopped(u64),
    /// Anything else (connection gone, an answer that is not one frame, ...).
    Failed(String),
}

impl Link {
    /// B's current encryption key, from its Hello.
    pub fn b_key(&self) -> &EncryptionKey {
        EncryptionKey::select(&self.b_hello.encryption_keys, now_ms()).expect("B has a key")
    }

    /// Opens a message stream, writes `bytes`, finishes, and reads B's answer.
    pub async fn exchange(&self, bytes: &[u8]) -> Answer {
        exchange_on(&self.raw.conn, bytes).await
    }

    /// Sends `payload` as one Envelope frame on a new message stream.
    pub async fn send(&self, payload: &[u8]) -> Answer {
        self.exchange(&frame::encode(FrameType::Envelope, payload))
            .await
    }

    /// Sends `receipt` on a receipt stream (SPEC.md §9.4) and reads B's answer.
    pub async fn send_receipt(&self, receipt: &Receipt) -> Answer {
        self.exchange(&frame::encode(FrameType::Receipt, receipt.bytes()))
            .await
    }

    /// Waits for the next message stream B opens and reads the envelope on it: the envelope
    /// and the stream's sending side, on which the answer goes (or which is reset).
    pub async fn accept_envelope(&self) -> (Envelope, quinn::SendStream) {
        step("B opens an envelope stream", async {
            let (send, mut recv) = self.raw.conn.accept_bi().await.expect("a stream from B");
            let data = recv
                .read_to_end(2 * 1024 * 1024)
                .await
                .expect("B's envelope");
            let mut d = Decoder::new(StreamKind::Message);
            d.push(&data);
            let f = d.next_frame().expect("a frame").expect("one whole frame");
            assert_eq!(
                f.ty,
                FrameType::Envelope,
                "B opened a stream with {:?}",
                f.ty
            );
            (
                Envelope::parse(f.payload).expect("B's envelope parses"),
                send,
            )
        })
        .await
    }

    /// Whether B opens another message stream within `wait`.
    pub async fn opens_a_stream_within(&self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.raw.conn.accept_bi())
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// [`Link::exchange`] on a connection (for streams run side by side in tasks).
pub async fn exchange_on(conn: &quinn::Connection, bytes: &[u8]) -> Answer {
    step("message stream", async {
        let (mut send, mut recv) = match conn.open_bi().await {
            Ok(s) => s,
            Err(e) => return Answer::Failed(format!("open: {e}")),
        };
        match send.write_all(bytes).await {
            Ok(()) => {}
            Err(quinn::WriteError::Stopped(code)) => return Answer::Stopped(code.into_inner()),
            Err(e) => return Answer::Failed(format!("write: {e}")),
        }
        let _ = send.finish();
        read_answer(&mut recv).await
    })
    .await
}

/// The answer must be a ReceiptStored frame naming exactly `receipt` (SPEC.md §9.4).
pub fn expect_stored(answer: &Answer, receipt: &Receipt) {
    match answer {
        Answer::Frame(f) if f.ty == FrameType::ReceiptStored => assert_eq!(
            hotline_protocol::receipt::parse_stored_ack(&f.payload).as_ref(),
            Some(receipt.sha256()),
            "ReceiptStored names another receipt"
        ),
        other => panic!("expected ReceiptStored from B, got {other:?}"),
    }
}

pub async fn read_answer(recv: &mut quinn::RecvStream) -> Answer {
    match recv.read_to_end(64 * 1024).await {
        Ok(data) => {
            let mut d = Decoder::new(StreamKind::Message);
            d.push(&data);
            match d.next_frame() {
                Ok(Some(f)) if d.buffered() == 0 => Answer::Frame(f),
                other => Answer::Failed(format!("answer is not one frame: {other:?}")),
            }
        }
        Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
            Answer::Reset(code.into_inner())
        }
        Err(e) => Answer::Failed(format!("read: {e}")),
    }
}

/// The answer must be a Receipt frame signed by B.
pub fn expect_receipt(answer: Answer, b_id: &NodeId) -> Receipt {
    match answer {
        Answer::Frame(f) if f.ty == FrameType::Receipt => {
            Receipt::verify(&f.payload, b_id).expect("B's receipt verifies")
        }
        other => panic!("expected a receipt from B, got {other:?}"),
    }
}

pub fn code(c: CloseCode) -> u64 {
    u64::from(c.code())
}

/// The application close code of a connection error, if B closed the connection that way.
pub fn app_close_code(e: &quinn::ConnectionError) -> Option<u64> {
    match e {
        quinn::ConnectionError::ApplicationClosed(c) => Some(c.error_code.into_inner()),
        _ => None,
    }
}

/// A Hello whose body names `identity` and announces `keys`, signed by `signer` for the
/// client role over `exporter`. With `signer` = the owner of `identity` this is exactly
/// `hello::create`; otherwise it is a forgery.
pub fn forged_hello(
    signer: &IdentityKey,
    identity: &NodeId,
    keys: &[EncryptionKey],
    exporter: &[u8; 32],
) -> Vec<u8> {
    let offer = Offer::default();
    let body = wire::HelloBody {
        versions: offer.versions,
        suites: offer.suites,
        identity: Bytes::copy_from_slice(identity.as_bytes()),
        encryption_keys: keys.iter().map(EncryptionKey::to_wire).collect(),
        time_ms: now_ms(),
        max_inflight: offer.max_inflight,
    }
    .encode_to_vec();
    let sig = signer.sign(Label::Hello, &[&[Side::Client.byte()], exporter, &body]);
    wire::Hello {
        body: body.into(),
        signature: Bytes::copy_from_slice(&sig),
    }
    .encode_to_vec()
}

/// An envelope frame header announcing `len` payload bytes.
pub fn envelope_header(len: u32) -> Vec<u8> {
    let mut h = vec![FrameType::Envelope.byte()];
    h.extend_from_slice(&len.to_be_bytes());
    h
}
