//! `hotlined run` as a service manager runs it (issue 16): its log, written to a pipe (a file,
//! journald) rather than a terminal, carries no ANSI colour codes; under systemd (`Type=notify`)
//! it says READY, RELOADING and READY around a SIGHUP, feeds the watchdog, and says STOPPING.
#![allow(clippy::unwrap_used)]

mod cli_common;
use cli_common as common;

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_log_has_no_colour_codes_when_it_is_not_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _b) = common::pinned_pair(tmp.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_hotline-e2e-daemon"))
        .args(["run", "--dir", a.dir.to_str().unwrap()])
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = err.read_to_end(&mut all);
        all
    });
    // Long enough for the start-up lines ("node running", the link's first attempts).
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = reader.join().unwrap();
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("node running"), "{text}");
    assert!(
        !log.contains(&0x1b),
        "colour codes in a piped log: {text:?}"
    );
}

/// The next notification on `sock` within `limit`.
fn next(sock: &UnixDatagram, limit: Duration) -> Option<String> {
    sock.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// Notifications until one contains `want`, within `limit`; all seen.
fn until(sock: &UnixDatagram, want: &str, limit: Duration) -> Vec<String> {
    let t0 = Instant::now();
    let mut seen = Vec::new();
    while t0.elapsed() < limit {
        if let Some(n) = next(sock, limit.saturating_sub(t0.elapsed())) {
            let done = n.contains(want);
            seen.push(n);
            if done {
                return seen;
            }
        }
    }
    panic!("no {want} within {limit:?}: saw {seen:?}");
}

#[test]
fn under_systemd_it_notifies_ready_reload_watchdog_and_stopping() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _b) = common::pinned_pair(tmp.path());
    let path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hotline-e2e-daemon"))
        .args(["run", "--dir", a.dir.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let seen = until(&sock, "READY=1", Duration::from_secs(20));
    assert!(
        seen.last().unwrap().contains("STATUS=listening on"),
        "{seen:?}"
    );
    // The watchdog every 200 ms.
    until(&sock, "WATCHDOG=1", Duration::from_secs(2));
    // SIGHUP: RELOADING, then READY again, and the node lives on.
    let kill = |sig: &str| {
        let s = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(s.success());
    };
    kill("-HUP");
    until(&sock, "RELOADING=1", Duration::from_secs(5));
    until(&sock, "READY=1", Duration::from_secs(10));
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP stopped the node"
    );
    // SIGTERM: STOPPING, and the process exits.
    kill("-TERM");
    until(&sock, "STOPPING=1", Duration::from_secs(5));
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(t0.elapsed() < Duration::from_secs(10), "did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The packaged unit (`packaging/hotlined.service`) is one systemd accepts, and starts the
/// daemon with arguments it takes. Skipped, saying so, where `systemd-analyze` is missing.
#[test]
fn the_systemd_unit_verifies() {
    let unit =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/hotlined.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains("Type=notify") && text.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    // The command line the unit runs is one hotlined accepts (its --help parses the flags).
    let exec = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart=/usr/bin/hotlined "))
        .unwrap();
    let mut args: Vec<&str> = exec.split_whitespace().collect();
    args.push("--help");
    let o = Command::new(env!("CARGO_BIN_EXE_hotline-e2e-daemon"))
        .args(&args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped systemd-analyze verify: systemd-analyze is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("hotlined.service");
    std::fs::write(
        &copy,
        text.replace(
            "/usr/bin/hotlined",
            env!("CARGO_BIN_EXE_hotline-e2e-daemon"),
        ),
    )
    .unwrap();
    let o = Command::new("systemd-analyze")
        .args(["verify", copy.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `hotlined completions SHELL` prints a completion script that knows its subcommands and
/// flags (issue 16 item 8).
#[test]
fn completions_know_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let o = Command::new(env!("CARGO_BIN_EXE_hotline-e2e-daemon"))
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(o.status.success(), "{shell}");
        let text = String::from_utf8_lossy(&o.stdout);
        for want in ["revoke", "compromised-since", "rotate", "renew-tls"] {
            assert!(text.contains(want), "{shell} completions lack {want}");
        }
    }
}

/// A peer that has not installed this node's bundle refuses every dial: the log says so, in
/// words an administrator can act on, once rather than at every retry (issue 16 item 8).
#[test]
fn a_peer_that_has_not_pinned_us_is_named_in_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let a = common::NodeDir::init(tmp.path(), "CERT-A");
    let b = common::NodeDir::init(tmp.path(), "CERT-B");
    // A pins B; B does not pin A.
    hotline_node::commands::peer_add(
        &a.dir,
        &b.dir.join(hotline_node::config::BUNDLE_FILE),
        &b.addr,
        Some("cert-b"),
    )
    .unwrap();
    let spawn = |dir: &std::path::Path, err: Stdio| {
        Command::new(env!("CARGO_BIN_EXE_hotline-e2e-daemon"))
            .args(["run", "--dir", dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .unwrap()
    };
    let mut nb = spawn(&b.dir, Stdio::null());
    let mut na = spawn(&a.dir, Stdio::piped());
    let mut err = na.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = err.read_to_end(&mut all);
        all
    });
    std::thread::sleep(Duration::from_secs(6));
    for c in [&mut na, &mut nb] {
        let _ = c.kill();
        let _ = c.wait();
    }
    let log = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    let said = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("the peer refused our certificate"))
        .count();
    assert_eq!(said, 1, "{log}");
    assert!(
        log.contains("has it installed this node's current bundle"),
        "{log}"
    );
}
