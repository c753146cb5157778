//! The conformance runner against a real node (`hotline_node::daemon::Node`, in-process on
//! its own thread and runtime, as `hotlined run` runs it), set up the way `.ci/conformance`
//! sets it up: private CA mode for the runner with the committed test PKI, a message queued
//! by an officer of the target for the runner (through the `hotline` CLI and the operator
//! API), which the id-space case needs, and the same `hotline send` as the runner's
//! `--target-send` command, which the sequence-floor case runs. Every case must pass, none
//! skipped, run after run. (The runner against a broken target is tested in its own crate.)

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hotline_conformance::cases;
use hotline_conformance::ctx::{Ctx, Inputs, Sequencer};
use hotline_conformance::suite::{self, CaseResult};
use hotline_node::commands::{self, TlsImport};
use hotline_node::config;
use hotline_node::daemon::Node;
use hotline_node::operator;
use hotline_node::store::TrustMode;
use hotline_node::store::sqlite::SqliteStore;
use hotline_transport::material::Material;

/// Cases the node fails today, each a disagreement with SPEC.md reported with the case. The
/// test requires every other case to pass and each of these to still fail, so the list can
/// only shrink: when the node is fixed, the entry must go.
const KNOWN_TARGET_BUGS: &[(&str, &str)] = &[];

fn pki() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../certs/test-pki")
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

/// The alias under which the target knows the runner.
const RUNNER_ALIAS: &str = "runner";

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
            Some(RUNNER_ALIAS),
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

/// `hotlined operator add` on the target: an officer credential file in `root`.
fn officer(root: &Path, target: &Path) -> PathBuf {
    let out = root.join("officer.credential");
    commands::quietly(|| operator::add(target, "Conformance Officer", "officer", &out))
        .expect("operator add");
    out
}

/// The `hotline send` command line by which the target's officer sends the runner a message
/// with `subject`, through the running target's operator API at `addr`.
fn send_to_runner(credential: &Path, addr: SocketAddr, subject: &str) -> Vec<String> {
    [
        env!("CARGO_BIN_EXE_hotline-e2e-client"),
        "send",
        "--credential",
        &*credential.to_string_lossy(),
        "--node",
        &addr.to_string(),
        "--to",
        RUNNER_ALIAS,
        "--precedence",
        "routine",
        "--tlp",
        "green",
        "--subject",
        subject,
        "--body",
        "Queued for the runner, which never accepts it.",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `args` as one `sh -c` command line, each quoted, with no `HOTLINE_CREDENTIAL` from the
/// test's environment: the runner's `--target-send`.
fn shell_command(args: &[String]) -> String {
    let quoted: Vec<String> = args
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    format!("unset HOTLINE_CREDENTIAL; exec {}", quoted.join(" "))
}

/// `hotline send` by the target's officer to the runner: the target then holds a message for
/// the runner, which it sends on every link and the runner refuses, so it stays queued.
/// Returns its message id (hex).
fn queue_message_to_runner(credential: &Path, addr: SocketAddr) -> String {
    let args = send_to_runner(credential, addr, "conformance: a message from the target");
    let out = std::process::Command::new(&args[0])
        .args(&args[1..])
        .env_remove("HOTLINE_CREDENTIAL")
        .output()
        .expect("hotline send runs");
    assert!(
        out.status.success(),
        "hotline send: {:?}\n{}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn inputs(
    addr: SocketAddr,
    target: &Path,
    runner: &Path,
    pki: Option<PathBuf>,
    target_send: Option<String>,
) -> Inputs {
    Inputs {
        target: addr.to_string(),
        target_bundle: target.join(config::BUNDLE_FILE),
        identity: runner.to_owned(),
        pki,
        step: Duration::from_secs(10),
        target_send,
    }
}

/// `hotlined keys rotate` on the target: the runner's `--target-rotate`.
fn rotate_target(target: &Path) -> String {
    shell_command(&[
        env!("CARGO_BIN_EXE_hotline-e2e-daemon").to_owned(),
        "keys".into(),
        "rotate".into(),
        "--dir".into(),
        target.to_string_lossy().into_owned(),
    ])
}

/// One run, as `hotline-conformance run` does it: load, probe, run. Returns the results and
/// where the run's sequence numbers started.
fn run(inputs: &Inputs, rotate: &str, only: &[&str]) -> (Vec<CaseResult>, u64) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut cx = Ctx::load(inputs).await.expect("inputs load");
        cx.target_rotate = Some(rotate.to_owned());
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

#[test]
fn every_case_passes_against_hotlined_as_ci_sets_it_up_and_again_on_a_second_run() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (target_dir, runner_dir) = ci_setup(tmp.path());
    let credential = officer(tmp.path(), &target_dir);
    let target = Running::node(&target_dir);
    let queued = queue_message_to_runner(&credential, target.addr);
    let target_send = shell_command(&send_to_runner(
        &credential,
        target.addr,
        "conformance: queued by the runner's --target-send",
    ));
    let inputs = inputs(
        target.addr,
        &target_dir,
        &runner_dir,
        Some(pki()),
        Some(target_send),
    );

    let rotate = rotate_target(&target_dir);
    let (results, start) = run(&inputs, &rotate, &[]);
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
                "{} ({}) {:?}: expected {}; observed {}; after: {}",
                r.name, r.spec_section, r.status, r.expected, r.observed, r.still_serving_observed
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
    let id_space = results
        .iter()
        .find(|r| r.name == "envelope-id-of-target-message")
        .expect("the id-space case ran");
    assert!(
        id_space.observed.contains("CONFLICT") && id_space.observed.contains("byte for byte"),
        "{id_space:?} (the queued message is {queued})"
    );

    // A second run against the same target continues the sequence numbers where the first
    // left them, and passes again; the target's message is still queued for the runner.
    let again = [
        "envelope-valid-delivered",
        "envelope-id-of-target-message",
        "envelope-replay-same-bytes",
        "heartbeat-claims-unseen-sequence",
        "sequence-received-through",
    ];
    let (second, start2) = run(&inputs, &rotate, &again);
    assert!(start2 > results.len() as u64, "continued after {start2}");
    assert_eq!(second.len(), again.len());
    for r in &second {
        assert!(r.passed, "second run: {r:?}");
    }
}
