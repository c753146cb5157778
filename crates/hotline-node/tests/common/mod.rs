//! Shared by the operator API tests: a bare operator client (QUIC, pinned TLS, u32be
//! framing) and node set-up, so the tests speak SPEC.md §15 without the `hotline` client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hotline_node::config;
use hotline_node::daemon::Node;
use hotline_node::store::sqlite::SqliteStore;
use hotline_node::{commands, operator};
use hotline_protocol::NodeId;
use hotline_protocol::content::Draft;
use hotline_protocol::officer::OfficerKey;
use hotline_protocol::wire::{self, operator_request::Request, operator_response::Response};
use hotline_transport::material::Material;
use hotline_transport::now_ms;
use hotline_transport::tls::{self, PeerTrust};
use prost::Message;

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("port")
}

pub struct Client {
    pub conn: quinn::Connection,
    pub officer: OfficerKey,
}

impl Client {
    pub async fn connect(cred: &Path, addr: SocketAddr) -> Result<Client, String> {
        let loaded = hotline_transport::credential::load(cred).map_err(|e| e.to_string())?;
        let cfg = tls::client_config(
            &loaded.tls,
            &PeerTrust::Pinned {
                spki_sha256: vec![loaded.node_pin],
            },
            hotline_protocol::OPERATOR_ALPN,
            &Default::default(),
        )
        .map_err(|e| e.to_string())?;
        let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr"))
            .map_err(|e| e.to_string())?;
        ep.set_default_client_config(cfg);
        let conn = ep
            .connect(addr, "localhost")
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        let officer = loaded.officer;
        Ok(Client { conn, officer })
    }

    pub async fn call(&self, req: Request) -> Result<Response, String> {
        let (mut send, mut recv) = self.conn.open_bi().await.map_err(|e| e.to_string())?;
        let body = wire::OperatorRequest { request: Some(req) }.encode_to_vec();
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        send.write_all(&frame).await.map_err(|e| e.to_string())?;
        let _ = send.finish();
        let data = recv
            .read_to_end(32 * 1024 * 1024)
            .await
            .map_err(|e| e.to_string())?;
        let len = u32::from_be_bytes(data[..4].try_into().expect("len")) as usize;
        let resp = wire::OperatorResponse::decode(&data[4..4 + len]).map_err(|e| e.to_string())?;
        resp.response.ok_or_else(|| "empty response".into())
    }
}

/// An open Watch stream (SPEC.md §15.5.8).
pub struct Watch {
    recv: quinn::RecvStream,
    _send: quinn::SendStream,
}

impl Watch {
    /// The next response within `limit`; `None` at the end of the stream, on a reset, or when
    /// nothing comes in time.
    pub async fn next(&mut self, limit: std::time::Duration) -> Option<Response> {
        let read = async {
            let mut len = [0u8; 4];
            self.recv.read_exact(&mut len).await.ok()?;
            let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
            self.recv.read_exact(&mut body).await.ok()?;
            wire::OperatorResponse::decode(body.as_slice())
                .ok()?
                .response
        };
        tokio::time::timeout(limit, read).await.ok().flatten()
    }
}

impl Client {
    /// Opens a Watch stream.
    pub async fn watch(&self) -> Result<Watch, String> {
        let (mut send, recv) = self.conn.open_bi().await.map_err(|e| e.to_string())?;
        let body = wire::OperatorRequest {
            request: Some(Request::Watch(Default::default())),
        }
        .encode_to_vec();
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        send.write_all(&frame).await.map_err(|e| e.to_string())?;
        let _ = send.finish();
        Ok(Watch { recv, _send: send })
    }
}

pub fn error_code(r: &Response) -> Option<wire::OperatorErrorCode> {
    match r {
        Response::Error(e) => wire::OperatorErrorCode::try_from(e.code).ok(),
        _ => None,
    }
}

pub async fn start(dir: PathBuf) -> Node {
    let cfg = config::Config::load(&dir).expect("cfg");
    let m = Material::load(&dir).expect("material");
    let store = SqliteStore::open(&dir.join(config::DB_FILE)).expect("db");
    Node::start(cfg, m, Box::new(store), None)
        .await
        .expect("start")
}

/// Two node directories, A and B, pinned to each other, with the given operators on each:
/// `(node, name, role, file name)`. Returns A's and B's directories.
pub fn two_nodes(root: &Path, operators: &[(char, &str, &str, &str)]) -> (PathBuf, PathBuf) {
    let (a, b) = (root.join("a"), root.join("b"));
    let (a_addr, b_addr) = (
        format!("127.0.0.1:{}", free_udp_port()),
        format!("127.0.0.1:{}", free_udp_port()),
    );
    commands::init(&a, "CERT-A", &a_addr).expect("init a");
    commands::init(&b, "CERT-B", &b_addr).expect("init b");
    commands::peer_add(&a, &b.join(config::BUNDLE_FILE), &b_addr, Some("cert-b")).expect("pin b");
    commands::peer_add(&b, &a.join(config::BUNDLE_FILE), &a_addr, Some("cert-a")).expect("pin a");
    for (node, name, role, file) in operators {
        let dir = if *node == 'a' { &a } else { &b };
        operator::add(dir, name, role, &dir.join(file)).expect("operator");
    }
    (a, b)
}

/// A current-thread runtime, as `hotlined run` uses.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt")
}

pub fn random_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).expect("rng");
    id
}

/// A Send request for `draft`, signed by `officer` for `to_id` (alias `to`).
pub fn send_request(
    c: &Client,
    id: [u8; 16],
    to: &str,
    to_id: &NodeId,
    draft: &Draft,
) -> wire::SendRequest {
    let content = draft.sign(&id, to_id, &c.officer, now_ms()).expect("sign");
    wire::SendRequest {
        to: to.into(),
        message_id: id.to_vec().into(),
        precedence: wire::Precedence::Flash as i32,
        tlp: wire::Tlp::Amber as i32,
        content: content.as_bytes().to_vec().into(),
    }
}

pub fn draft(subject: &str) -> Draft {
    Draft {
        subject: subject.into(),
        text: "text".into(),
        ..Default::default()
    }
}

pub async fn peer_id(c: &Client) -> NodeId {
    match c
        .call(Request::Peers(Default::default()))
        .await
        .expect("peers")
    {
        Response::Peers(p) => p.peers[0].node.parse().expect("id"),
        other => panic!("{other:?}"),
    }
}

pub async fn show(c: &Client, id: [u8; 16]) -> Response {
    c.call(Request::Show(wire::ShowRequest {
        message_id: id.to_vec().into(),
    }))
    .await
    .expect("show")
}

/// Waits until `c` shows message `id` in a state `done` accepts.
pub async fn wait_state(
    c: &Client,
    id: [u8; 16],
    done: impl Fn(&str) -> bool,
) -> wire::ShowResponse {
    let t0 = Instant::now();
    loop {
        if let Response::Show(s) = show(c, id).await
            && s.summary.as_ref().is_some_and(|m| done(&m.state))
        {
            return s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "message never reached the state"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The credential file of Bruno, an officer of node B in the raw-peer tests.
pub const BRUNO: &str = "bruno.credential";

/// Issues Bruno's credential in `b_dir` (a `World::start_with` set-up step).
pub fn with_bruno(b_dir: &Path) {
    commands::quietly(|| operator::add(b_dir, "Bruno", "officer", &b_dir.join(BRUNO)))
        .expect("operator add");
}

/// An operator connected with credential `cred` to the node at `addr`, and a Watch stream of
/// that node's events.
pub async fn connect_and_watch(cred: &Path, addr: SocketAddr) -> (Client, Watch) {
    let c = Client::connect(cred, addr)
        .await
        .expect("operator connects");
    let watch = c.watch().await.expect("watch");
    // A round trip after the Watch request: the node takes its streams in order on one thread,
    // so once Status is answered the Watch has subscribed (an event before that would be lost
    // to it, and a loaded machine made that race visible).
    let _ = status(&c).await;
    (c, watch)
}

/// The node's Status answer to `c`.
pub async fn status(c: &Client) -> wire::StatusResponse {
    match c
        .call(Request::Status(Default::default()))
        .await
        .expect("status")
    {
        Response::Status(s) => s,
        other => panic!("{other:?}"),
    }
}

/// The next Watch event of `kind` within `limit`, if any.
pub async fn next_event(
    watch: &mut Watch,
    kind: &str,
    limit: Duration,
) -> Option<wire::OperatorEvent> {
    let until = Instant::now() + limit;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        match watch.next(left).await {
            Some(Response::Event(e)) if e.kind == kind => return Some(e),
            Some(_) => {}
            None => return None,
        }
    }
}

/// A file of the committed test PKI (`certs/test-pki`).
pub fn pki(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../certs/test-pki")
        .join(name)
}

/// The test PKI's CA as an rcgen issuer (its key, and the name `certs/gen` gives it): to issue
/// certificates and CRLs in tests.
pub fn test_ca() -> rcgen::Issuer<'static, rcgen::KeyPair> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(pki("ca.key")).expect("ca.key")).expect("key");
    let mut ca = CertificateParams::new(Vec::new()).expect("params");
    ca.distinguished_name
        .push(DnType::CommonName, "hotline test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    Issuer::new(ca, ca_key)
}

/// Sends a message from `c` to peer `to` (alias) with `subject`: the node's answer and the id.
pub async fn try_send(c: &Client, to: &str, subject: &str) -> (Response, [u8; 16]) {
    let id = random_id();
    let peer = peer_id(c).await;
    let r = c
        .call(Request::Send(send_request(
            c,
            id,
            to,
            &peer,
            &draft(subject),
        )))
        .await
        .expect("send");
    (r, id)
}

/// [`try_send`], which must be accepted: the id.
pub async fn send_ok(c: &Client, to: &str, subject: &str) -> [u8; 16] {
    let (r, id) = try_send(c, to, subject).await;
    assert!(matches!(r, Response::Send(_)), "{r:?}");
    id
}
