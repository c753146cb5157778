//! The runner against real targets.
//!
//! - A real node (`hotline_node::daemon::Node`, in-process on its own thread and runtime, as
//!   `hotlined run` runs it) set up the way `.ci/conformance` sets it up: private CA mode for
//!   the runner with the committed test PKI. Every case must pass, run after run.
//! - A deliberately broken target that answers every envelope with DELIVERED: the cases that
//!   must catch it fail, in the library and through the binary's JSON and exit status.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hotline_conformance::cases;
use hotline_conformance::ctx::{Ctx, Inputs, Sequencer};
use hotline_conformance::suite::{self, CaseResult};
use hotline_node::commands::{self, TlsImport};
use hotline_node::config;
use hotline_node::daemon::Node;
use hotline_node::material::{Material, now_ms};
use hotline_node::store::TrustMode;
use hotline_node::store::sqlite::SqliteStore;
use hotline_node::tls::{self, PeerTrust, TransportLimits};
use hotline_protocol::codes::CloseCode;
use hotline_protocol::envelope::Envelope;
use hotline_protocol::frame::{self, Decoder, FrameType, StreamKind};
use hotline_protocol::hello::{self, Offer, Side};
use hotline_protocol::identity::{EncryptionKey, IdentityKey, NodeId};
use hotline_protocol::receipt::{Receipt, ReceiptBuild, Subject};
use hotline_protocol::{ALPN, EXPORTER_LABEL, wire};
use prost::Message;

/// Cases the node fails today, each a disagreement with SPEC.md reported with the case. The
/// test requires every other case to pass and each of these to still fail, so the list can
/// only shrink: when the node is fixed, the entry must go.
const KNOWN_TARGET_BUGS: &[(&str, &str)] = &[];

fn pki() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../certs/test-pki")
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// `hotlined init` in `dir`, with the test PKI's `cert` imported when given.
fn init(dir: &Path, name: &str, cert: Option<&str>) -> String {
    let addr = format!("127.0.0.1:{}", free_udp_port());
    let files = cert.map(|c| {
        (
            pki().join(format!("{c}.pem")),
            pki().join(format!("{c}.key")),
        )
    });
    let tls = files.as_ref().map(|(cert, key)| TlsImport { cert, key });
    commands::quietly(|| commands::init_with_tls(dir, name, &addr, tls)).expect("init");
    addr
}

/// The CI set-up: a target (node-b's certificate) trusting the test CA, and the runner's
/// identity (node-a's certificate, issued by that CA) added to it in private CA mode.
fn ci_setup(root: &Path) -> (PathBuf, PathBuf) {
    let (target, runner) = (root.join("target"), root.join("runner"));
    init(&target, "CERT-TARGET", Some("node-b"));
    let runner_addr = init(&runner, "CONFORMANCE", Some("node-a"));
    let mut cfg = config::Config::load(&target).expect("config");
    cfg.ca = Some(config::CaConfig {
        roots: pki().join("ca.pem"),
        crls: vec![pki().join("ca.crl.pem")],
    });
    std::fs::write(target.join(config::CONFIG_FILE), cfg.to_toml()).expect("write config");
    commands::quietly(|| {
        commands::peer_add_with_trust(
            &target,
            &runner.join(config::BUNDLE_FILE),
            &runner_addr,
            Some("runner"),
            TrustMode::Ca,
        )
    })
    .expect("peer add");
    (target, runner)
}

/// A node running on its own thread and runtime, as `hotlined run` runs it.
struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn node(dir: &Path) -> Running {
        let dir = dir.to_owned();
        Self::spawn(move |ready, stop| async move {
            let cfg = config::Config::load(&dir).expect("config");
            let material = Material::load(&dir).expect("material");
            let store = SqliteStore::open(&dir.join(config::DB_FILE)).expect("db");
            let node = Node::start(cfg, material, Box::new(store), None)
                .await
                .expect("node starts");
            let _ = ready.send(node.local_addr);
            let _ = stop.await;
            node.shutdown().await;
        })
    }

    fn spawn<F: std::future::Future<Output = ()> + 'static>(
        f: impl FnOnce(std::sync::mpsc::Sender<SocketAddr>, tokio::sync::oneshot::Receiver<()>) -> F
        + Send
        + 'static,
    ) -> Running {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(f(ready_tx, stop_rx));
        });
        let addr = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("target started");
        Running {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn inputs(addr: SocketAddr, target: &Path, runner: &Path, pki: Option<PathBuf>) -> Inputs {
    Inputs {
        target: addr.to_string(),
        target_bundle: target.join(config::BUNDLE_FILE),
        identity: runner.to_owned(),
        pki,
        step: Duration::from_secs(10),
    }
}

/// One run, as `hotline-conformance run` does it: load, probe, run. Returns the results and
/// where the run's sequence numbers started.
fn run(inputs: &Inputs, only: &[&str]) -> (Vec<CaseResult>, u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let cx = Ctx::load(inputs).await.expect("inputs load");
        let start = suite::probe(&cx).await.expect("the target answers");
        *cx.seq.lock().expect("lock") = Sequencer::starting_after(start);
        let mut all = cases::all(cx.trust);
        if !only.is_empty() {
            all.retain(|c| only.contains(&c.name));
        }
        let results = suite::run(&cx, &all, |_, r| {
            eprintln!(
                "{} {}: {}",
                if r.passed { "PASS" } else { "FAIL" },
                r.name,
                r.observed
            )
        })
        .await;
        cx.endpoint.close(quinn::VarInt::from_u32(0), b"done");
        (results, start)
    })
}

#[test]
fn every_case_passes_against_hotlined_as_ci_sets_it_up_and_again_on_a_second_run() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (target_dir, runner_dir) = ci_setup(tmp.path());
    let target = Running::node(&target_dir);
    let inputs = inputs(target.addr, &target_dir, &runner_dir, Some(pki()));

    let (results, start) = run(&inputs, &[]);
    assert_eq!(
        start, 0,
        "a fresh target has received nothing from the runner"
    );
    assert!(results.len() >= 40, "only {} cases", results.len());
    let mut unexpected = Vec::new();
    for r in &results {
        let known = KNOWN_TARGET_BUGS.iter().find(|(n, _)| *n == r.name);
        match (r.passed, known) {
            (true, None) => {}
            (false, Some(_)) if r.still_serving => {}
            (true, Some((n, why))) => unexpected.push(format!(
                "{n} passes now: remove it from KNOWN_TARGET_BUGS ({why})"
            )),
            (false, _) => unexpected.push(format!(
                "{} ({}): expected {}; observed {}; after: {}",
                r.name, r.spec_section, r.expected, r.observed, r.still_serving_observed
            )),
        }
    }
    for (name, _) in KNOWN_TARGET_BUGS {
        assert!(
            results.iter().any(|r| r.name == *name),
            "KNOWN_TARGET_BUGS names {name}, which is no case"
        );
    }
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));

    // A second run against the same target continues the sequence numbers where the first
    // left them, and passes again.
    let again = [
        "envelope-valid-delivered",
        "envelope-replay-same-bytes",
        "heartbeat-claims-unseen-sequence",
        "sequence-received-through",
    ];
    let (second, start2) = run(&inputs, &again);
    assert!(start2 > results.len() as u64, "continued after {start2}");
    assert_eq!(second.len(), again.len());
    for r in &second {
        assert!(r.passed, "second run: {r:?}");
    }
}

// ---- a broken target --------------------------------------------------------------------

/// A target that does TLS and the Hello exchange by the book, answers pings, then answers
/// every readable envelope with DELIVERED: it checks no signature, no key, nothing.
fn broken_target(dir: &Path, runner: &Path) -> Running {
    let material = Material::load(dir).expect("material");
    let runner = Material::load(runner).expect("runner");
    let runner_id = runner.identity.id();
    let server = tls::server_config(
        &material.tls,
        &PeerTrust::Pinned {
            spki_sha256: vec![runner.tls.spki_sha256()],
        },
        &[ALPN],
        &TransportLimits::default(),
    )
    .expect("server config");
    let identity = material.identity.clone();
    let keys = material.certificates();
    Running::spawn(move |ready, stop| async move {
        let endpoint =
            quinn::Endpoint::server(server, "127.0.0.1:0".parse().expect("addr")).expect("bind");
        let _ = ready.send(endpoint.local_addr().expect("addr"));
        let accept = async {
            while let Some(incoming) = endpoint.accept().await {
                let (identity, keys) = (identity.clone(), keys.clone());
                tokio::spawn(async move {
                    if let Ok(conn) = incoming.await {
                        serve(conn, identity, keys, runner_id).await;
                    }
                });
            }
        };
        tokio::select! {
            _ = accept => {}
            _ = stop => {}
        }
    })
}

async fn serve(
    conn: quinn::Connection,
    identity: Arc<IdentityKey>,
    keys: Vec<EncryptionKey>,
    runner: NodeId,
) {
    let exporter = tls::exporter(&conn, EXPORTER_LABEL, b"");
    let Ok((mut send, mut recv)) = conn.accept_bi().await else {
        return;
    };
    let ours = hello::create(
        &identity,
        Side::Server,
        &exporter,
        &Offer::default(),
        &keys,
        now_ms(),
    );
    if send
        .write_all(&frame::encode(FrameType::Hello, &ours))
        .await
        .is_err()
    {
        return;
    }
    let mut control = Decoder::new(StreamKind::Control);
    let mut first = true;
    let c2 = conn.clone();
    let id2 = identity.clone();
    tokio::spawn(async move {
        while let Ok((send, recv)) = c2.accept_bi().await {
            tokio::spawn(answer_delivered(send, recv, id2.clone()));
        }
    });
    loop {
        match control.next_frame() {
            Ok(Some(f)) if first => {
                first = false;
                if let Err(code) = hello::verify(
                    &f.payload,
                    &runner,
                    Side::Client,
                    &exporter,
                    &Offer::default(),
                ) {
                    conn.close(quinn::VarInt::from_u32(code.code()), b"hello");
                    return;
                }
            }
            Ok(Some(f)) if f.ty == FrameType::Heartbeat => {
                let Ok(hb) = wire::Heartbeat::decode(f.payload) else {
                    continue;
                };
                if hb.ping != 0 {
                    let echo = wire::Heartbeat {
                        echo: hb.ping,
                        time_ms: now_ms(),
                        ..Default::default()
                    };
                    let bytes = frame::encode(FrameType::Heartbeat, &echo.encode_to_vec());
                    if send.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
            }
            Ok(Some(_)) => {}
            Ok(None) => match recv.read_chunk(64 * 1024, true).await {
                Ok(Some(c)) => control.push(&c.bytes),
                _ => return,
            },
            Err(e) => {
                conn.close(quinn::VarInt::from_u32(e.code().code()), b"frame");
                return;
            }
        }
    }
}

async fn answer_delivered(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    identity: Arc<IdentityKey>,
) {
    let malformed = quinn::VarInt::from_u32(CloseCode::MalformedFrame.code());
    let Ok(data) = recv.read_to_end(2 << 20).await else {
        let _ = send.reset(malformed);
        return;
    };
    let mut d = Decoder::new(StreamKind::Message);
    d.push(&data);
    let env = match d.next_frame() {
        Ok(Some(f)) if f.ty == FrameType::Envelope => Envelope::parse(f.payload).ok(),
        _ => None,
    };
    let receipt = env.and_then(|e| {
        Receipt::sign(
            &identity,
            &Subject::from(&e),
            ReceiptBuild::Delivered,
            now_ms(),
        )
        .ok()
    });
    match receipt {
        Some(r) => {
            let _ = send
                .write_all(&frame::encode(FrameType::Receipt, r.bytes()))
                .await;
            let _ = send.finish();
        }
        None => {
            let _ = send.reset(malformed);
        }
    }
}

/// The broken target's directory (for its keys and bundle) and the runner's, pinned mode.
fn broken_setup(root: &Path) -> (PathBuf, PathBuf) {
    let (target, runner) = (root.join("broken"), root.join("runner"));
    init(&target, "CERT-BROKEN", None);
    init(&runner, "CONFORMANCE", None);
    (target, runner)
}

#[test]
fn a_target_that_delivers_everything_fails_the_cases_that_check_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (target_dir, runner_dir) = broken_setup(tmp.path());
    let target = broken_target(&target_dir, &runner_dir);
    let inputs = inputs(target.addr, &target_dir, &runner_dir, None);
    let (results, _) = run(
        &inputs,
        &[
            "envelope-valid-delivered",
            "envelope-bad-signature",
            "envelope-too-old",
            "envelope-officer-from-another-node",
        ],
    );
    let by_name = |n: &str| {
        results
            .iter()
            .find(|r| r.name == n)
            .unwrap_or_else(|| panic!("no result for {n}"))
    };
    let valid = by_name("envelope-valid-delivered");
    assert!(valid.passed, "{valid:?}");
    for n in [
        "envelope-bad-signature",
        "envelope-too-old",
        "envelope-officer-from-another-node",
    ] {
        let r = by_name(n);
        assert!(!r.passed && !r.outcome_passed, "{r:?}");
        assert!(r.still_serving, "the broken target still delivers: {r:?}");
        assert!(r.observed.contains("DELIVERED"), "{r:?}");
    }
}

#[test]
fn the_binary_reports_a_failed_case_in_json_and_its_exit_status() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (target_dir, runner_dir) = broken_setup(tmp.path());
    let target = broken_target(&target_dir, &runner_dir);
    let bin = env!("CARGO_BIN_EXE_hotline-conformance");
    let out = std::process::Command::new(bin)
        .args(["run", "--json", "--target", &target.addr.to_string()])
        .arg("--target-bundle")
        .arg(target_dir.join(config::BUNDLE_FILE))
        .arg("--identity")
        .arg(&runner_dir)
        .args([
            "--case",
            "envelope-bad-signature",
            "--case",
            "envelope-valid-delivered",
        ])
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let list = json.as_array().expect("a list");
    assert_eq!(list.len(), 2);
    for r in list {
        for field in ["name", "spec_section", "expected", "observed", "passed"] {
            assert!(r.get(field).is_some(), "{field} missing in {r}");
        }
        let passed = r["passed"].as_bool().expect("bool");
        match r["name"].as_str().expect("name") {
            "envelope-bad-signature" => {
                assert!(!passed, "{r}");
                assert!(r["spec_section"].as_str().expect("s").starts_with("§7.6"));
                assert!(r["expected"].as_str().expect("e").contains("BAD_SIGNATURE"));
            }
            "envelope-valid-delivered" => assert!(passed, "{r}"),
            other => panic!("unexpected case {other}"),
        }
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FAIL  envelope-bad-signature"), "{stderr}");

    // Nothing listens: a setup failure, exit 2, not a case failure.
    let out = std::process::Command::new(bin)
        .args(["run", "--step-timeout", "1"])
        .args(["--target", &format!("127.0.0.1:{}", free_udp_port())])
        .arg("--target-bundle")
        .arg(target_dir.join(config::BUNDLE_FILE))
        .arg("--identity")
        .arg(&runner_dir)
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot link to the target"));

    // The case list, without a target.
    let out = std::process::Command::new(bin)
        .args(["run", "--list"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0));
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("tls-1.2-only-client") && listed.contains("rate-limit-flood-replays"));
}
