//! The runner against a deliberately broken target that answers every envelope with DELIVERED:
//! the cases that must catch it fail, in the library and through the binary's JSON and exit
//! status. The target is hand-made from the transport layer and the protocol crate, so these
//! tests need nothing of the node daemon; the runner against a real `hotlined` is
//! `tests/tests/conformance.rs` of the workspace's `hotline-tests`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hotline_conformance::cases;
use hotline_conformance::ctx::{Ctx, Inputs, Sequencer};
use hotline_conformance::suite::{self, CaseResult, Status};
use hotline_protocol::codes::CloseCode;
use hotline_protocol::envelope::Envelope;
use hotline_protocol::frame::{self, Decoder, FrameType, StreamKind};
use hotline_protocol::hello::{self, Offer, Side};
use hotline_protocol::identity::{EncryptionKey, IdentityKey, NodeId};
use hotline_protocol::receipt::{Receipt, ReceiptBuild, Subject};
use hotline_protocol::{ALPN, EXPORTER_LABEL, wire};
use hotline_transport::material::{BUNDLE_FILE, Material};
use hotline_transport::now_ms;
use hotline_transport::tls::{self, PeerTrust, TransportLimits};
use prost::Message;

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("port")
}

/// A target running on its own thread and runtime.
struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
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
        target_bundle: target.join(BUNDLE_FILE),
        identity: runner.to_owned(),
        pki,
        step: Duration::from_secs(10),
        target_send: None,
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
            eprintln!("{} {}: {}", r.status.label(), r.name, r.observed)
        })
        .await;
        cx.endpoint.close(quinn::VarInt::from_u32(0), b"done");
        (results, start)
    })
}

// ---- a broken target --------------------------------------------------------------------

/// A target that does TLS and the Hello exchange by the book, answers pings, then answers
/// every readable envelope with DELIVERED: it checks no signature, no key, nothing.
fn broken_target(dir: &Path, runner: &Path) -> Running {
    broken_target_sending(dir, runner, None)
}

/// [`broken_target`] that also sends `outgoing` (envelope bytes) to the runner on every link,
/// as a node does with a message it has queued for a peer.
fn broken_target_sending(dir: &Path, runner: &Path, outgoing: Option<Vec<u8>>) -> Running {
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
                let outgoing = outgoing.clone();
                tokio::spawn(async move {
                    if let Ok(conn) = incoming.await {
                        serve(conn, identity, keys, runner_id, outgoing).await;
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
    outgoing: Option<Vec<u8>>,
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
                if let Some(env) = outgoing.clone() {
                    tokio::spawn(send_to_runner(conn.clone(), env));
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

/// Sends `env` to the runner on a new stream and waits for its answer (which it ignores).
async fn send_to_runner(conn: quinn::Connection, env: Vec<u8>) {
    let Ok((mut send, mut recv)) = conn.open_bi().await else {
        return;
    };
    if send
        .write_all(&frame::encode(FrameType::Envelope, &env))
        .await
        .is_ok()
    {
        let _ = send.finish();
        let _ = recv.read_to_end(64 * 1024).await;
    }
}

/// A valid envelope from the target of `target_dir` to the runner of `runner_dir`.
fn message_to_runner(target_dir: &Path, runner_dir: &Path) -> Envelope {
    use hotline_protocol::content::{Draft, Precedence, Tlp};
    use hotline_protocol::envelope::SealParams;
    use hotline_protocol::officer::{OfficerKey, Role};
    let (target, runner) = (
        Material::load(target_dir).expect("target"),
        Material::load(runner_dir).expect("runner"),
    );
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let now = now_ms();
    let officer = OfficerKey::generate(
        &target.identity,
        "Broken Officer",
        Role::Officer,
        now - 60_000,
        now + 3_600_000,
        &mut rng,
    )
    .expect("officer");
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).expect("random");
    let content = Draft {
        subject: "from the broken target".into(),
        text: "queued for the runner".into(),
        ..Default::default()
    }
    .sign(&id, &runner.identity.id(), &officer, now)
    .expect("content");
    let key = runner.certificates().into_iter().next().expect("a key");
    Envelope::seal(
        &target.identity,
        &SealParams {
            recipient: runner.identity.id(),
            recipient_key: &key,
            message_id: id,
            sequence: 1,
            created: now,
            precedence: Precedence::Routine,
            tlp: Tlp::Green,
        },
        &content,
        &mut rng,
    )
    .expect("seal")
}

/// A node directory as `hotlined init` leaves it, as far as the runner reads it: key files and
/// the node's own bundle (the daemon's configuration and store are not needed here).
fn identity_dir(dir: &Path, name: &str) {
    std::fs::create_dir_all(dir).expect("dir");
    let now = now_ms();
    let material = Material::create(dir, name, now).expect("keys");
    let bundle = material
        .bundle(name, &format!("127.0.0.1:{}", free_udp_port()), now)
        .expect("bundle");
    std::fs::write(dir.join(BUNDLE_FILE), bundle.to_armored()).expect("bundle file");
}

/// The broken target's directory (for its keys and bundle) and the runner's, pinned mode.
fn broken_setup(root: &Path) -> (PathBuf, PathBuf) {
    let (target, runner) = (root.join("broken"), root.join("runner"));
    identity_dir(&target, "CERT-BROKEN");
    identity_dir(&runner, "CONFORMANCE");
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
        .arg(target_dir.join(BUNDLE_FILE))
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
        .arg(target_dir.join(BUNDLE_FILE))
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

#[test]
fn cases_that_cannot_run_are_skipped_with_a_reason_and_fail_only_with_fail_on_skip() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (target_dir, runner_dir) = broken_setup(tmp.path());
    let target = broken_target(&target_dir, &runner_dir);

    // In the library: pinned mode skips the revocation case; a target that sends the runner
    // nothing skips the id-space case; no --target-send skips the sequence-floor case; all are
    // followed by the still-serving check.
    let inputs = inputs(target.addr, &target_dir, &runner_dir, None);
    let (results, _) = run(
        &inputs,
        &[
            "tls-certificate-revoked",
            "envelope-id-of-target-message",
            "sequence-floor-from-received-through",
        ],
    );
    assert_eq!(results.len(), 3);
    for r in &results {
        assert_eq!(r.status, Status::Skipped, "{r:?}");
        assert!(!r.passed && !r.outcome_passed && r.still_serving, "{r:?}");
        assert_eq!(r.skip_reason.as_deref(), Some(r.observed.as_str()), "{r:?}");
    }
    assert!(
        results[0].observed.contains("needs --pki"),
        "{:?}",
        results[0]
    );
    assert!(
        results[1]
            .observed
            .contains("queue a message from the target"),
        "{:?}",
        results[1]
    );
    assert!(
        results[2].observed.contains("needs --target-send"),
        "{:?}",
        results[2]
    );

    // Through the binary: exit 0 with a skipped case, 1 with --fail-on-skip.
    let bin = env!("CARGO_BIN_EXE_hotline-conformance");
    let run_bin = |extra: &[&str]| {
        std::process::Command::new(bin)
            .args(["run", "--json", "--target", &target.addr.to_string()])
            .arg("--target-bundle")
            .arg(target_dir.join(BUNDLE_FILE))
            .arg("--identity")
            .arg(&runner_dir)
            .args([
                "--case",
                "tls-certificate-revoked",
                "--case",
                "envelope-valid-delivered",
            ])
            .args(extra)
            .output()
            .expect("runs")
    };
    let out = run_bin(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SKIP  tls-certificate-revoked"), "{stderr}");
    assert!(
        stderr.contains("2 cases: 1 passed, 0 failed, 1 skipped"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "SKIPPED tls-certificate-revoked (§3.6.2 Private CA mode, step 4): needs --pki"
        ),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let revoked = json
        .as_array()
        .expect("a list")
        .iter()
        .find(|r| r["name"] == "tls-certificate-revoked")
        .expect("the revocation case")
        .clone();
    assert_eq!(revoked["status"], "skipped", "{revoked}");
    assert_eq!(revoked["passed"], false, "{revoked}");
    assert!(
        revoked["skip_reason"]
            .as_str()
            .is_some_and(|s| s.contains("needs --pki")),
        "{revoked}"
    );

    let out = run_bin(&["--fail-on-skip"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--fail-on-skip: a skipped case fails the run"),
        "{stderr}"
    );
}

#[test]
fn a_target_that_delivers_the_id_of_its_own_message_fails_the_id_space_case() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (target_dir, runner_dir) = broken_setup(tmp.path());
    let theirs = message_to_runner(&target_dir, &runner_dir);
    let target = broken_target_sending(&target_dir, &runner_dir, Some(theirs.bytes().to_vec()));
    let inputs = inputs(target.addr, &target_dir, &runner_dir, None);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (results, seen) = rt.block_on(async {
        let cx = Ctx::load(&inputs).await.expect("inputs load");
        let start = suite::probe(&cx).await.expect("the target answers");
        *cx.seq.lock().expect("lock") = Sequencer::starting_after(start);
        let mut all = cases::all(cx.trust);
        all.retain(|c| c.name == "envelope-id-of-target-message");
        let results = suite::run(&cx, &all, |_, _| {}).await;
        cx.endpoint.close(quinn::VarInt::from_u32(0), b"done");
        (results, cx.from_target.seen())
    });
    // The runner read the target's envelope on the streams it opened, and recorded it once.
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].id, *theirs.message_id());
    assert_eq!(seen[0].sha256, *theirs.sha256());
    assert!(seen[0].arrivals >= 2, "one per link: {seen:?}");
    let r = &results[0];
    assert_eq!(r.status, Status::Failed, "{r:?}");
    assert!(!r.outcome_passed && r.still_serving, "{r:?}");
    assert!(r.observed.contains("DELIVERED"), "{r:?}");
}

#[test]
fn a_target_that_ignores_key_updates_fails_the_key_update_cases() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (target_dir, runner_dir) = broken_setup(tmp.path());
    // The broken target offers versions 1 and 2 and ignores every KeyUpdate frame.
    let target = broken_target(&target_dir, &runner_dir);
    let inputs = inputs(target.addr, &target_dir, &runner_dir, None);
    let ignored = [
        "key-update-on-version-1-link",
        "key-update-foreign-key",
        "key-update-empty",
        "key-update-rate-limit",
    ];
    // Each waits 10 s for a close that does not come: side by side, one run each.
    let results: Vec<CaseResult> = std::thread::scope(|s| {
        let runs: Vec<_> = ignored
            .iter()
            .map(|name| s.spawn(|| run(&inputs, &[name]).0))
            .collect();
        runs.into_iter()
            .flat_map(|r| r.join().expect("run"))
            .collect()
    });
    assert_eq!(results.len(), ignored.len());
    for r in &results {
        assert_eq!(r.status, Status::Failed, "{r:?}");
        assert!(!r.outcome_passed && r.still_serving, "{r:?}");
        assert!(r.observed.contains("stayed open"), "{r:?}");
    }
    let rate = results
        .iter()
        .find(|r| r.name == "key-update-rate-limit")
        .expect("the rate-limit case");
    assert!(
        rate.observed.starts_with("4 KeyUpdates accepted"),
        "{rate:?}"
    );

    // Without --target-send and --target-rotate the two others say what they need.
    let (results, _) = run(
        &inputs,
        &["key-update-is-used", "target-key-update-and-previous-key"],
    );
    assert_eq!(results.len(), 2);
    for (r, needs) in results.iter().zip(["--target-send", "--target-rotate"]) {
        assert_eq!(r.status, Status::Skipped, "{r:?}");
        assert!(r.observed.contains(&format!("needs {needs}")), "{r:?}");
    }
}

#[test]
fn a_target_that_delivers_everything_fails_the_v2_officer_signature_cases() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (target_dir, runner_dir) = broken_setup(tmp.path());
    // The broken target offers versions 1 and 2 and checks no officer signature.
    let target = broken_target(&target_dir, &runner_dir);
    let inputs = inputs(target.addr, &target_dir, &runner_dir, None);
    let (results, _) = run(
        &inputs,
        &[
            "officer-signature-v2-accepted",
            "officer-signature-v2-other-tlp",
            "officer-signature-v2-other-credential",
            "officer-signature-v1-still-accepted",
        ],
    );
    assert_eq!(results.len(), 4);
    for r in &results {
        assert!(r.still_serving, "{r:?}");
        assert!(r.observed.contains("DELIVERED"), "{r:?}");
        let refused = r.name.contains("other");
        assert_eq!(r.status == Status::Failed, refused, "{r:?}");
        assert_eq!(r.outcome_passed, !refused, "{r:?}");
    }
}

#[test]
fn a_target_that_ignores_bundle_frames_fails_the_bundle_cases() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (target_dir, runner_dir) = broken_setup(tmp.path());
    // The broken target offers versions 1 and 2, sends no bundle and ignores the runner's.
    let target = broken_target(&target_dir, &runner_dir);
    let inputs = inputs(target.addr, &target_dir, &runner_dir, None);
    let names = ["bundle-update-sent-at-link-up", "bundle-update-answered"];
    let (results, _) = run(&inputs, &names);
    assert_eq!(results.len(), names.len());
    for r in &results {
        assert_eq!(r.status, Status::Failed, "{r:?}");
        assert!(!r.outcome_passed && r.still_serving, "{r:?}");
        assert!(r.observed.starts_with("no Bundle"), "{r:?}");
    }
}
