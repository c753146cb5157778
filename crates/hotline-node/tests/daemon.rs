//! Two real nodes over loopback, each in its own temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hotline_node::commands;
use hotline_node::config;
use hotline_node::daemon::Node;
use hotline_node::store::OutState;
use hotline_node::store::sqlite::SqliteStore;
use hotline_protocol::content::{Draft, Precedence, Tlp};
use hotline_protocol::officer::{OfficerKey, Role};
use hotline_transport::material::Material;
use hotline_transport::now_ms;

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("port")
}

struct Pair {
    _tmp: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
    a_addr: String,
    b_addr: String,
}

/// `init` two nodes and pin each in the other, as README.md tells an operator to.
fn two_nodes() -> Pair {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let a_addr = format!("127.0.0.1:{}", free_udp_port());
    let b_addr = format!("127.0.0.1:{}", free_udp_port());
    commands::init(&a, "CERT-A", &a_addr).expect("init a");
    commands::init(&b, "CERT-B", &b_addr).expect("init b");
    commands::peer_add(&a, &b.join(config::BUNDLE_FILE), &b_addr, Some("cert-b")).expect("pin b");
    commands::peer_add(&b, &a.join(config::BUNDLE_FILE), &a_addr, Some("cert-a")).expect("pin a");
    Pair {
        _tmp: tmp,
        a,
        b,
        a_addr,
        b_addr,
    }
}

fn hotlined() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hotlined"))
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(dir: &Path, metrics: u16) -> Running {
    Running(
        hotlined()
            .args(["run", "--dir"])
            .arg(dir)
            .args(["--metrics", &format!("127.0.0.1:{metrics}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("hotlined starts"),
    )
}

fn scrape(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn wait_for(port: u16, needle: &str, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if scrape(port).is_some_and(|m| m.contains(needle)) {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn two_processes_bring_the_link_up_and_report_a_stopped_peer_down() {
    let p = two_nodes();
    let (ma, mb) = (free_tcp_port(), free_tcp_port());
    let _a = run(&p.a, ma);
    let mut b = run(&p.b, mb);
    let up_a = wait_for(
        ma,
        "hotline_link_up{peer=\"cert-b\"} 1",
        Duration::from_secs(30),
    );
    let up_b = wait_for(
        mb,
        "hotline_link_up{peer=\"cert-a\"} 1",
        Duration::from_secs(30),
    );
    eprintln!("link up after {up_a:?} (A) and {up_b:?} (B)");
    assert!(
        up_a.is_some() && up_b.is_some(),
        "link did not come up; A metrics:\n{:?}",
        scrape(ma)
    );
    let metrics = scrape(ma).unwrap_or_default();
    assert!(
        metrics.contains("hotline_link_info{peer=\"cert-b\",group=\"X25519MLKEM768\"} 1"),
        "post-quantum group not negotiated:\n{metrics}"
    );
    // Stop B: SIGTERM, graceful. A must report the link down.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(b.0.id().to_string())
        .status();
    let status = b.0.wait().expect("wait");
    assert!(
        status.success(),
        "hotlined did not exit cleanly on SIGTERM: {status:?}"
    );
    let down = wait_for(
        ma,
        "hotline_link_up{peer=\"cert-b\"} 0",
        Duration::from_secs(20),
    );
    eprintln!("link down reported after {down:?}");
    assert!(down.is_some(), "A still reports B up");
    let _ = (&p.a_addr, &p.b_addr);
}

#[test]
fn a_killed_peer_is_reported_down_within_the_liveness_window() {
    let p = two_nodes();
    let (ma, mb) = (free_tcp_port(), free_tcp_port());
    let _a = run(&p.a, ma);
    let mut b = run(&p.b, mb);
    assert!(
        wait_for(
            ma,
            "hotline_link_up{peer=\"cert-b\"} 1",
            Duration::from_secs(30)
        )
        .is_some()
    );
    // SIGKILL: no Close frame, no QUIC close; only silence. SPEC.md §11.3: 15 s window.
    b.0.kill().expect("kill");
    let _ = b.0.wait();
    let down = wait_for(
        ma,
        "hotline_link_up{peer=\"cert-b\"} 0",
        Duration::from_secs(40),
    );
    eprintln!("silent peer reported down after {down:?}");
    assert!(down.is_some(), "A still reports a killed B up");
}

#[test]
fn run_refuses_key_files_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let p = two_nodes();
    let key = p.a.join(config::IDENTITY_FILE);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = hotlined()
        .args(["run", "--dir"])
        .arg(&p.a)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("chmod 600"),
        "error does not say what to do: {err}"
    );
    let out = hotlined()
        .args(["check", "--dir"])
        .arg(&p.a)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("chmod 600"));
}

#[test]
fn init_refuses_to_overwrite_and_check_passes_on_a_fresh_node() {
    let p = two_nodes();
    let err = commands::init(&p.a, "CERT-A", "127.0.0.1:1").expect_err("must refuse");
    assert!(err.0.contains("never overwrites"), "{}", err.0);
    assert_eq!(commands::check(&p.a), Vec::<String>::new());
    let mode = std::fs::metadata(p.a.join(config::IDENTITY_FILE)).map(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o777
    });
    assert_eq!(mode.ok(), Some(0o600));
}

/// Both directions over real QUIC, in one process, with real stores.
#[test]
fn delivers_both_ways_with_verified_receipts_and_survives_a_restart() {
    let p = two_nodes();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let (oa, ob) = (officer(&p.a, "Anna"), officer(&p.b, "Bruno"));
        let (ida, idb) = (
            Material::load(&p.a).expect("a").identity.id(),
            Material::load(&p.b).expect("b").identity.id(),
        );
        let a = start(p.a.clone()).await;
        let b = start(p.b.clone()).await;
        let id_ab = send(&a, &oa, idb, "A to B").await;
        let id_ba = send(&b, &ob, ida, "B to A").await;
        let t0 = Instant::now();
        while !(delivered(&a, id_ab).await && delivered(&b, id_ba).await) {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "not delivered in time"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The receipt at A verifies against B's identity and names the exact envelope.
        let (env, rec) = a
            .with_store(move |s| (s.sent_envelope(&id_ab), s.received(&id_ab)))
            .await
            .expect("store");
        let env = env.expect("ok").expect("sealed");
        assert!(
            rec.expect("ok").is_none(),
            "A never received its own message"
        );
        let env = hotline_protocol::envelope::Envelope::parse(env).expect("parses");
        let inbox_b = b
            .with_store(|s| s.inbox(10))
            .await
            .expect("store")
            .expect("ok");
        assert_eq!(inbox_b.len(), 1);
        assert_eq!(inbox_b[0].subject, "A to B");
        assert_eq!(inbox_b[0].officer, "Anna");
        let (sha, receipt) = b
            .with_store(move |s| s.received(&id_ab))
            .await
            .expect("store")
            .expect("ok")
            .expect("stored");
        assert_eq!(&sha, env.sha256());
        let r = hotline_protocol::receipt::Receipt::verify(&receipt, &idb).expect("verifies");
        assert!(r.answers(&env));

        // Restart B with a message queued for it: delivered once, no duplicate.
        b.shutdown().await;
        let id2 = send(&a, &oa, idb, "while B was down").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let b = start(p.b.clone()).await;
        let t0 = Instant::now();
        while !delivered(&a, id2).await {
            assert!(
                t0.elapsed() < Duration::from_secs(40),
                "queued message not delivered after restart"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let inbox_b = b
            .with_store(|s| s.inbox(10))
            .await
            .expect("store")
            .expect("ok");
        assert_eq!(inbox_b.len(), 2, "inbox: {inbox_b:?}");
        a.shutdown().await;
        b.shutdown().await;
    });
}

/// Starts the node in `dir` in this process, as `hotlined run` would.
async fn start(dir: PathBuf) -> Node {
    let cfg = config::Config::load(&dir).expect("cfg");
    let m = Material::load(&dir).expect("material");
    let store = SqliteStore::open(&dir.join(config::DB_FILE)).expect("db");
    Node::start(cfg, m, Box::new(store), None)
        .await
        .expect("start")
}

/// An officer of the node in `dir`, valid for an hour.
fn officer(dir: &Path, name: &str) -> OfficerKey {
    let m = Material::load(dir).expect("material");
    let now = now_ms();
    OfficerKey::generate(
        &m.identity,
        name,
        Role::Officer,
        now - 1000,
        now + 3_600_000,
        &mut rand_core::UnwrapErr(getrandom::SysRng),
    )
    .expect("officer")
}

async fn send(
    node: &Node,
    officer: &OfficerKey,
    to: hotline_protocol::NodeId,
    subject: &str,
) -> [u8; 16] {
    let id: [u8; 16] = rand_id();
    let draft = Draft {
        subject: subject.into(),
        text: "body".into(),
        ..Default::default()
    };
    let content = draft.sign(&id, &to, officer, now_ms()).expect("sign");
    node.submit(to, id, Precedence::Flash, Tlp::Amber, content)
        .await
        .expect("accepted")
}

async fn delivered(node: &Node, id: [u8; 16]) -> bool {
    matches!(
        node.with_store(move |s| s.out_state(&id)).await,
        Some(Ok(Some(OutState::Delivered)))
    )
}

fn rand_id() -> [u8; 16] {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("random");
    b
}

/// An undelivered message past its precedence's deadline is flagged in the metrics.
#[test]
fn undelivered_message_past_its_deadline_is_flagged_overdue() {
    let p = two_nodes();
    // FLASH deadline of one second; B never runs.
    let cfg_path = p.a.join(config::CONFIG_FILE);
    let mut cfg = config::Config::load(&p.a).expect("cfg");
    cfg.deadlines.flash_s = 1;
    std::fs::write(&cfg_path, cfg.to_toml()).expect("write cfg");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let cfg = config::Config::load(&p.a).expect("cfg");
        let m = Material::load(&p.a).expect("material");
        let now = now_ms();
        let officer = OfficerKey::generate(
            &m.identity,
            "Anna",
            Role::Officer,
            now - 1000,
            now + 3_600_000,
            &mut rand_core::UnwrapErr(getrandom::SysRng),
        )
        .expect("officer");
        let idb = Material::load(&p.b).expect("b").identity.id();
        let store = SqliteStore::open(&p.a.join(config::DB_FILE)).expect("db");
        let a = Node::start(cfg, m, Box::new(store), None)
            .await
            .expect("start");
        send(&a, &officer, idb, "nobody is listening").await;
        let t0 = Instant::now();
        while !a
            .metrics_text()
            .contains("hotline_overdue_messages{peer=\"cert-b\"} 1")
        {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "not flagged overdue:\n{}",
                a.metrics_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            a.metrics_text()
                .contains("hotline_queue_depth{peer=\"cert-b\"} 1")
        );
        // The oldest undelivered message is the one just sent (not "0", which means none).
        let text = a.metrics_text();
        let oldest = text
            .lines()
            .find_map(|l| {
                l.strip_prefix("hotline_oldest_undelivered_timestamp_seconds{peer=\"cert-b\"} ")
            })
            .and_then(|v| v.parse::<u64>().ok())
            .expect("oldest undelivered gauge");
        assert!(
            oldest.abs_diff(now / 1000) < 60,
            "oldest undelivered {oldest} is not the message just sent"
        );
        a.shutdown().await;
    });
}

#[test]
fn operator_add_issues_a_private_credential_the_node_signed() {
    use std::os::unix::fs::PermissionsExt;
    let p = two_nodes();
    let out = p.a.join("alice.credential");
    let st = hotlined()
        .args(["operator", "add", "--dir"])
        .arg(&p.a)
        .args([
            "--name",
            "Alice Example",
            "--role",
            "officer",
            "--keys-on-node",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .expect("runs");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let mode = std::fs::metadata(&out)
        .expect("written")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let loaded = hotline_transport::credential::load(&out).expect("loads");
    let cred = loaded.credential;
    assert_eq!(cred.name(), "Alice Example");
    assert_eq!(cred.role(), hotline_protocol::officer::Role::Officer);
    assert_eq!(cred.node(), Material::load(&p.a).expect("a").identity.id());
    assert_eq!(loaded.node_address, p.a_addr);
    // Not issued by B: B's identity does not verify it.
    let raw = hotline_protocol::wire::OfficerCredential {
        body: cred.to_wire().body,
        signature: cred.to_wire().signature,
    };
    let idb = Material::load(&p.b).expect("b").identity.id();
    assert!(hotline_protocol::officer::Credential::verify(&raw, &idb).is_err());
    // Never overwritten; the same name twice is refused.
    let again = hotlined()
        .args(["operator", "add", "--dir"])
        .arg(&p.a)
        .args(["--name", "Alice Example", "--role", "viewer", "--out"])
        .arg(p.a.join("other"))
        .output()
        .expect("runs");
    assert!(!again.status.success());
    let list = hotlined()
        .args(["operator", "list", "--dir"])
        .arg(&p.a)
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&list.stdout).contains("Alice Example"));
    let rm = hotlined()
        .args(["operator", "remove", "--dir"])
        .arg(&p.a)
        .arg("Alice Example")
        .output()
        .expect("runs");
    assert!(rm.status.success());
    let list = hotlined()
        .args(["operator", "list", "--dir"])
        .arg(&p.a)
        .output()
        .expect("runs");
    assert!(String::from_utf8_lossy(&list.stdout).contains("revoked"));
    // For scripts: JSON with the credential's validity and the revocation (issue 16 item 8).
    let json = hotlined()
        .args(["operator", "list", "--json", "--dir"])
        .arg(&p.a)
        .output()
        .expect("runs");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    let alice = v
        .as_array()
        .and_then(|a| a.iter().find(|o| o["name"] == "Alice Example"))
        .expect("Alice listed");
    assert_eq!(alice["state"], "revoked", "{v}");
    assert!(alice["revoked_ms"].as_u64().is_some() && alice["valid_until_ms"].as_u64().is_some());
    assert!(alice["compromised_since_ms"].is_null(), "{v}");
    let peers = hotlined()
        .args(["peer", "list", "--json", "--dir"])
        .arg(&p.a)
        .output()
        .expect("runs");
    let v: serde_json::Value = serde_json::from_slice(&peers.stdout).expect("JSON");
    assert!(v.as_array().is_some_and(|a| !a.is_empty()), "{v}");
    assert!(
        v.as_array().is_some_and(|a| a
            .iter()
            .all(|p| p["encryption_key_until_ms"].as_u64().is_some())),
        "{v}"
    );
}

/// After `shutdown` returns the UDP port is free again, so a restart can bind it at once.
#[test]
fn shutdown_releases_the_port() {
    let p = two_nodes();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        for _ in 0..3 {
            let cfg = config::Config::load(&p.a).expect("cfg");
            let m = Material::load(&p.a).expect("material");
            let store = SqliteStore::open(&p.a.join(config::DB_FILE)).expect("db");
            let node = Node::start(cfg, m, Box::new(store), None)
                .await
                .expect("start");
            let addr = node.local_addr;
            node.shutdown().await;
            std::net::UdpSocket::bind(addr)
                .unwrap_or_else(|e| panic!("{addr} still in use after shutdown: {e}"));
        }
    });
}

/// A backlog longer than the outbox window (kept small here) is paged in from the store:
/// while the peer is down the whole backlog counts in the queue and overdue gauges, a restart
/// keeps it, and when the peer comes up every message is delivered exactly once, FLASH first.
#[test]
fn a_backlog_longer_than_the_window_is_paged_in_and_delivered_exactly_once() {
    const WINDOW: usize = 8;
    const N: usize = 60;
    let p = two_nodes();
    let mut cfg = config::Config::load(&p.a).expect("cfg");
    cfg.limits.outbox_window = WINDOW;
    cfg.deadlines.routine_s = 1;
    std::fs::write(p.a.join(config::CONFIG_FILE), cfg.to_toml()).expect("write cfg");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let officer = officer(&p.a, "Anna");
        let idb = Material::load(&p.b).expect("b").identity.id();
        let a = start(p.a.clone()).await;
        let mut ids = Vec::new();
        for i in 0..N {
            // Every tenth message is FLASH: those must overtake the ROUTINE backlog.
            let precedence = if i % 10 == 9 {
                Precedence::Flash
            } else {
                Precedence::Routine
            };
            let id = rand_id();
            let content = Draft {
                subject: format!("backlog {i}"),
                text: "body".into(),
                ..Default::default()
            }
            .sign(&id, &idb, &officer, now_ms())
            .expect("sign");
            a.submit(idb, id, precedence, Tlp::Green, content)
                .await
                .expect("accepted");
            ids.push((id, precedence));
        }
        // The queue gauge counts the whole backlog, not the window in memory.
        let needle = format!("hotline_queue_depth{{peer=\"cert-b\"}} {N}");
        let t0 = Instant::now();
        while !a.metrics_text().contains(&needle) {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "queue depth never showed {N}:\n{}",
                a.metrics_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Past the (one second) ROUTINE deadline every ROUTINE message of the backlog counts
        // as overdue (the FLASH ones have ten minutes).
        let needle = format!("hotline_overdue_messages{{peer=\"cert-b\"}} {}", N - N / 10);
        while !a.metrics_text().contains(&needle) {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "overdue never showed {}:\n{}",
                N - N / 10,
                a.metrics_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A restart keeps the backlog (and loads only a window of it).
        a.shutdown().await;
        let a = start(p.a.clone()).await;
        let b = start(p.b.clone()).await;
        let t0 = Instant::now();
        loop {
            let mut all = true;
            for (id, _) in &ids {
                all &= delivered(&a, *id).await;
            }
            if all {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "backlog not delivered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let inbox = b
            .with_store(|s| s.inbox(10_000))
            .await
            .expect("store")
            .expect("ok");
        assert_eq!(inbox.len(), N, "exactly once: {} rows", inbox.len());
        let mut seen: Vec<_> = inbox.iter().map(|r| r.message_id).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), N, "no duplicates");
        // FLASH first: every FLASH message arrived before the last ROUTINE one.
        let rank = |id: &[u8; 16]| {
            inbox
                .iter()
                .find(|r| &r.message_id == id)
                .map(|r| r.received_ms)
                .expect("received")
        };
        let last_routine = ids
            .iter()
            .filter(|(_, p)| *p == Precedence::Routine)
            .map(|(id, _)| rank(id))
            .max()
            .expect("routine");
        for (id, _) in ids.iter().filter(|(_, p)| *p == Precedence::Flash) {
            assert!(rank(id) <= last_routine, "a FLASH message came last");
        }
        a.shutdown().await;
        b.shutdown().await;
    });
}

/// The database is created mode 0600 (it holds messages in clear), with its WAL and
/// shared-memory files; `run` refuses, and `check` reports, a database or node directory others
/// can read, saying how to fix it (issue 12 item 9).
#[test]
fn the_database_is_private_and_run_refuses_it_exposed() {
    use std::os::unix::fs::PermissionsExt;
    let p = two_nodes();
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    };
    let db = p.a.join(config::DB_FILE);
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&p.a), 0o700);
    let mut a = run(&p.a, free_tcp_port());
    let wal = db.with_extension("db-wal");
    let t0 = Instant::now();
    while !wal.exists() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(mode(&wal), 0o600);
    assert_eq!(mode(&db.with_extension("db-shm")), 0o600);
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(a.0.id().to_string())
        .status();
    let _ = a.0.wait();

    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = hotlined()
        .args(["run", "--dir"])
        .arg(&p.a)
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "run started with an exposed database"
    );
    assert!(err.contains("chmod 600"), "{err}");
    let out = hotlined()
        .args(["check", "--dir"])
        .arg(&p.a)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("chmod 600"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// The real binary: `operator add` and `peer remove` on a running `hotlined` are applied at
/// once (the command says so), and SIGHUP re-reads instead of killing the daemon (issue 12
/// item 2; administrators send HUP to reload).
#[test]
fn admin_commands_reach_the_running_daemon_and_sighup_reloads() {
    let p = two_nodes();
    let ma = free_tcp_port();
    let mut a = run(&p.a, ma);
    assert!(
        wait_for(
            ma,
            "hotline_handshake_failures_total",
            Duration::from_secs(20)
        )
        .is_some()
            || scrape(ma).is_some(),
        "A does not serve metrics"
    );
    let out = hotlined()
        .args(["operator", "add", "--dir"])
        .arg(&p.a)
        .args([
            "--name",
            "Olga",
            "--role",
            "officer",
            "--keys-on-node",
            "--out",
        ])
        .arg(p.a.join("olga.cred"))
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("applied the change at once"), "{text}");
    let _ = Command::new("kill")
        .arg("-HUP")
        .arg(a.0.id().to_string())
        .status();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        a.0.try_wait().expect("status").is_none(),
        "SIGHUP killed hotlined"
    );
    let out = hotlined()
        .args(["peer", "remove", "--dir"])
        .arg(&p.a)
        .arg("cert-b")
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("closed: cert-b"), "{text}");
    assert!(
        !scrape(ma).unwrap_or_default().contains("peer=\"cert-b\""),
        "the removed peer is still reported"
    );
    let _ = &p.b_addr;
}
