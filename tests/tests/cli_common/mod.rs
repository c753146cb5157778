//! Shared fixtures of the CLI tests: node directories and credentials made by the node's own
//! code, a stand-in operator API server, and running the `hotline` binary.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use hotline_node::{commands, config, operator};
use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::content::OpenedContent;
use hotline_protocol::wire::{self, operator_request::Request, operator_response::Response};
use hotline_protocol::{NodeId, OPERATOR_ALPN};
use hotline_transport::material::Material;
use hotline_transport::tls::{self, NodeTlsKey, PeerTrust, TransportLimits};
use prost::Message;

pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// A node directory made by `hotlined init`.
pub struct NodeDir {
    pub dir: PathBuf,
    pub addr: String,
}

impl NodeDir {
    pub fn init(root: &Path, name: &str) -> Self {
        let dir = root.join(name);
        let addr = format!("127.0.0.1:{}", free_udp_port());
        commands::init(&dir, name, &addr).unwrap();
        NodeDir { dir, addr }
    }

    /// `hotlined operator add`: the credential file path.
    pub fn credential(&self, name: &str, role: &str) -> PathBuf {
        let out = self.dir.join(format!("{name}.credential"));
        operator::add(&self.dir, name, role, &out).unwrap();
        out
    }

    pub fn material(&self) -> Material {
        Material::load(&self.dir).unwrap()
    }

    pub fn bundle(&self) -> PeerBundle {
        PeerBundle::from_armored(&std::fs::read(self.dir.join(config::BUNDLE_FILE)).unwrap())
            .unwrap()
    }
}

/// Nodes CERT-A and CERT-B made by `hotlined init` in `root`, pinned to each other (aliases
/// cert-b and cert-a).
pub fn pinned_pair(root: &Path) -> (NodeDir, NodeDir) {
    let a = NodeDir::init(root, "CERT-A");
    let b = NodeDir::init(root, "CERT-B");
    for (at, peer, alias) in [(&a, &b, "cert-b"), (&b, &a, "cert-a")] {
        commands::peer_add(
            &at.dir,
            &peer.dir.join(config::BUNDLE_FILE),
            &peer.addr,
            Some(alias),
        )
        .unwrap();
    }
    (a, b)
}

/// Runs `hotline ARGS` with `stdin` (none: /dev/null) and no credential from the environment.
pub fn hotline(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hotline-e2e-client"));
    cmd.args(args)
        .env_remove("HOTLINE_CREDENTIAL")
        .env("HOME", "/nonexistent")
        .env_remove("XDG_CONFIG_HOME")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

pub fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Messages the stand-in node accepted.
#[derive(Default)]
pub struct MockState {
    pub sent: Vec<(wire::SendRequest, u64)>,
}

/// A stand-in for the node's operator API: real QUIC and TLS (the node's own key, operator
/// pins), real checks of the officer signature on Send, canned answers elsewhere. It lets the
/// client's transport, framing and error mapping be tested before the node serves the API.
pub struct Mock {
    pub addr: std::net::SocketAddr,
    pub state: Arc<Mutex<MockState>>,
    _thread: std::thread::JoinHandle<()>,
}

pub struct MockConfig {
    pub tls: NodeTlsKey,
    pub operator_pins: Vec<[u8; 32]>,
    pub me: NodeId,
    pub own_bundle: PeerBundle,
    pub peer_bundle: PeerBundle,
}

impl Mock {
    pub fn start(cfg: MockConfig) -> Mock {
        let server = tls::server_config(
            &cfg.tls,
            &PeerTrust::Pinned {
                spki_sha256: cfg.operator_pins.clone(),
            },
            &[OPERATOR_ALPN],
            &TransportLimits::default(),
        )
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let state: Arc<Mutex<MockState>> = Arc::default();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let ep = quinn::Endpoint::server(server, "127.0.0.1:0".parse().unwrap()).unwrap();
                tx.send(ep.local_addr().unwrap()).unwrap();
                let cfg = Arc::new(cfg);
                while let Some(inc) = ep.accept().await {
                    let (cfg, st) = (cfg.clone(), st.clone());
                    tokio::spawn(async move {
                        let Ok(conn) = inc.await else { return };
                        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                            let (cfg, st) = (cfg.clone(), st.clone());
                            tokio::spawn(async move {
                                let mut len = [0u8; 4];
                                recv.read_exact(&mut len).await.unwrap();
                                let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
                                recv.read_exact(&mut buf).await.unwrap();
                                let req = wire::OperatorRequest::decode(buf.as_slice()).unwrap();
                                let resp = answer(&cfg, &st, req.request);
                                let body = wire::OperatorResponse {
                                    response: Some(resp),
                                }
                                .encode_to_vec();
                                let _ = send.write_all(&(body.len() as u32).to_be_bytes()).await;
                                let _ = send.write_all(&body).await;
                                let _ = send.finish();
                                let _ = send.stopped().await;
                            });
                        }
                    });
                }
            });
        });
        Mock {
            addr: rx.recv().unwrap(),
            state,
            _thread: thread,
        }
    }
}

fn error(code: wire::OperatorErrorCode, message: &str) -> Response {
    Response::Error(wire::OperatorError {
        code: code as i32,
        message: message.into(),
    })
}

fn answer(cfg: &MockConfig, st: &Mutex<MockState>, req: Option<Request>) -> Response {
    use wire::OperatorErrorCode as C;
    let peer = wire::PeerInfo {
        alias: "cert-b".into(),
        node: cfg.peer_bundle.identity().to_string(),
        fingerprint: cfg.peer_bundle.identity().fingerprint(),
        name: cfg.peer_bundle.name().into(),
        address: "127.0.0.1:9".into(),
        trust: "pinned".into(),
        version: 2,
    };
    let now = hotline_transport::now_ms();
    match req {
        Some(Request::Whoami(_)) => Response::Whoami(wire::WhoAmIResponse {
            name: "Olga".into(),
            role: wire::Role::Officer as i32,
            node: cfg.me.to_string(),
            node_name: cfg.own_bundle.name().into(),
            bundle: Default::default(),
        }),
        Some(Request::Peers(_)) => Response::Peers(wire::PeersResponse { peers: vec![peer] }),
        Some(Request::Status(_)) => Response::Status(wire::StatusResponse {
            node: cfg.me.to_string(),
            name: cfg.own_bundle.name().into(),
            links: vec![wire::LinkStatus {
                peer: "cert-b".into(),
                node: peer.node,
                up: true,
                since_ms: now,
                rtt_ms: 3,
                queue: 1,
                group: "X25519MLKEM768".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        Some(Request::Send(s)) => {
            if s.to != "cert-b" && s.to != peer.node {
                return error(C::UnknownPeer, "no installed peer");
            }
            let Ok(id) = <[u8; 16]>::try_from(s.message_id.as_ref()) else {
                return error(C::BadRequest, "id");
            };
            let (Some(precedence), Some(tlp)) = (
                hotline_protocol::content::Precedence::from_wire(s.precedence),
                hotline_protocol::content::Tlp::from_wire(s.tlp),
            ) else {
                return error(C::BadRequest, "precedence or TLP");
            };
            if let Err(e) = OpenedContent::parse(
                &s.content,
                &id,
                &cfg.me,
                &cfg.peer_bundle.identity(),
                now,
                precedence,
                tlp,
            ) {
                return error(C::BadContent, &format!("content refused: {e}"));
            }
            let mut st = st.lock().unwrap();
            let seq = st.sent.len() as u64 + 1;
            st.sent.push((s, seq));
            Response::Send(wire::SendResponse {
                message_id: id.to_vec().into(),
                sequence: seq,
            })
        }
        Some(Request::List(l)) => {
            let st = st.lock().unwrap();
            let messages = if l.incoming {
                vec![]
            } else {
                st.sent.iter().map(|(s, q)| summary(s, *q)).collect()
            };
            Response::List(wire::ListResponse {
                messages,
                next_cursor: Default::default(),
            })
        }
        Some(Request::Show(r)) => {
            let st = st.lock().unwrap();
            match st.sent.iter().find(|(s, _)| s.message_id == r.message_id) {
                None => error(
                    C::NotFound,
                    "no message with that id; `hotline inbox` lists them",
                ),
                Some((s, q)) => Response::Show(wire::ShowResponse {
                    summary: Some(summary(s, *q)),
                    envelope: Default::default(),
                    content: s.content.clone(),
                    receipts: vec![],
                    sender_bundle: cfg.own_bundle.bytes().clone(),
                    receiver_bundle: cfg.peer_bundle.bytes().clone(),
                    removed: None,
                    revocations: vec![],
                }),
            }
        }
        Some(Request::Export(_)) => error(C::Forbidden, "this credential was revoked"),
        Some(Request::Ack(_)) => error(C::Unavailable, "node shutting down"),
        _ => error(C::BadRequest, "not in the mock"),
    }
}

fn summary(s: &wire::SendRequest, seq: u64) -> wire::MessageSummary {
    wire::MessageSummary {
        message_id: s.message_id.clone(),
        peer: "cert-b".into(),
        incoming: false,
        sequence: seq,
        precedence: s.precedence,
        tlp: s.tlp,
        created_ms: 0,
        received_ms: 0,
        subject: "(mock)".into(),
        officer: "Olga".into(),
        state: "pending".into(),
        overdue: false,
    }
}

/// Reads a credential file's operator TLS pin.
pub fn operator_pin(credential: &Path) -> [u8; 32] {
    hotline_transport::credential::load(credential)
        .unwrap()
        .tls
        .spki_sha256()
}

/// Rewrites `key = "…"` in a credential file (keeping mode 0600).
pub fn set_field(credential: &Path, key: &str, value: &str) {
    let text = std::fs::read_to_string(credential).unwrap();
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{key} = ")) {
                format!("{key} = {value:?}")
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(credential, out.join("\n") + "\n").unwrap();
}

/// A real node (`hotlined run`, in this process on its own runtime thread); stopped on drop.
pub struct RunningNode {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningNode {
    pub fn start(dir: &Path) -> RunningNode {
        let dir = dir.to_owned();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let cfg = config::Config::load(&dir).unwrap();
                let material = Material::load(&dir).unwrap();
                let store =
                    hotline_node::store::sqlite::SqliteStore::open(&dir.join(config::DB_FILE))
                        .unwrap();
                let node = hotline_node::daemon::Node::start(cfg, material, Box::new(store), None)
                    .await
                    .unwrap();
                ready_tx.send(()).unwrap();
                let _ = stop_rx.await;
                node.shutdown().await;
            });
        });
        ready_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("node started");
        RunningNode {
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `hotline ARGS` until `done(output)` or `limit` passes; the last output.
pub fn poll(args: &[&str], limit: std::time::Duration, done: impl Fn(&Output) -> bool) -> Output {
    let t0 = std::time::Instant::now();
    loop {
        let o = hotline(args, None);
        if done(&o) || t0.elapsed() > limit {
            return o;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}
