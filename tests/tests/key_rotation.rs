//! Key rotation on real processes (issue 14, SPEC.md §4.3.4, §4.3.5): two `hotlined run`
//! processes; `hotlined keys rotate --dir A` while both run; officers send before, during and
//! after with `hotline send`; the link stays up, every message is delivered once, the peer
//! seals to the new key, and an evidence file exported afterwards verifies for all of them.
#![allow(clippy::unwrap_used)]

mod cli_common;
use cli_common as common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{hotline, poll, stdout, text};
use serde_json::Value;

fn hotlined(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hotline-e2e-daemon"))
        .args(args)
        .output()
        .unwrap()
}

/// `hotlined run --dir DIR` as a process, killed on drop.
struct Daemon(Child);

impl Daemon {
    fn start(dir: &Path) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_hotline-e2e-daemon"))
            .args(["run", "--dir", dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Daemon(child)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn status(cred: &str) -> Value {
    let o = hotline(&["status", "--json", "--credential", cred], None);
    serde_json::from_slice(&o.stdout).unwrap_or(Value::Null)
}

fn send(cred: &str, subject: &str) -> String {
    let o = hotline(
        &[
            "send",
            "--credential",
            cred,
            "--to",
            "cert-a",
            "--precedence",
            "immediate",
            "--subject",
            subject,
            "--body",
            "IOCs attached in the next message.",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    stdout(&o).trim().to_owned()
}

/// The recipient key id (hex) of the envelope of message `id`, as the sender stores it.
fn sealed_to(cred: &str, id: &str) -> String {
    let o = hotline(&["show", id, "--json", "--credential", cred], None);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v["envelope"]["recipient_key_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no recipient_key_id in show --json: {v}"))
        .to_owned()
}

fn newest_key(dir: &Path) -> String {
    let m = hotline_transport::material::Material::load(dir).unwrap();
    data_encoding::HEXLOWER.encode(&m.encryption[0].certificate.id())
}

#[test]
fn keys_rotate_on_a_running_node_without_dropping_the_link_and_evidence_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = common::pinned_pair(tmp.path());
    let olga = a.credential("Olga", "officer").display().to_string();
    let bruno = b.credential("Bruno", "officer").display().to_string();
    let _da = Daemon::start(&a.dir);
    let _db = Daemon::start(&b.dir);
    let up = |o: &Output| {
        serde_json::from_slice::<Value>(&o.stdout).is_ok_and(|v| v["links"][0]["up"] == true)
    };
    let o = poll(
        &["status", "--json", "--credential", &bruno],
        Duration::from_secs(30),
        up,
    );
    assert!(up(&o), "link did not come up: {}", text(&o));

    let first = newest_key(&a.dir);
    let before = send(&bruno, "before the rotation");
    assert_eq!(sealed_to(&bruno, &before), first);
    // Both nodes speak version 2: Bruno's signature binds his credential, precedence and TLP
    // (SPEC.md §7.5.1), and `show` says so on both sides.
    for cred in [&bruno, &olga] {
        let o = poll(
            &["show", &before, "--json", "--credential", cred],
            Duration::from_secs(20),
            |o| o.status.code() == Some(0),
        );
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["verification"]["officer_signature"], "v2", "{v}");
    }
    // Olga acknowledges by the version 2 rule; B verifies the receipt.
    let o = hotline(
        &["ack", &before, "--note", "seen", "--credential", &olga],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = poll(
        &["receipts", &before, "--json", "--credential", &bruno],
        Duration::from_secs(20),
        |o| {
            String::from_utf8_lossy(&o.stdout)
                .to_uppercase()
                .contains("ACKNOWLEDGED")
        },
    );
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
    let acks: Vec<&Value> = v["receipts"]
        .as_array()
        .map(|r| r.iter().filter(|r| r["kind"] == "ACKNOWLEDGED").collect())
        .unwrap_or_default();
    assert_eq!(acks.len(), 1, "{}", text(&o));
    assert_eq!(acks[0]["valid"], true, "{v}");
    assert_eq!(acks[0]["officer_signature"], "v2", "{v}");
    // The dial race of the start is settled once a message went through.
    std::thread::sleep(Duration::from_secs(3));
    let since = status(&bruno)["links"][0]["since_ms"].clone();

    let o = hotlined(&["keys", "rotate", "--dir", a.dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("made encryption key"), "{}", text(&o));
    let second = newest_key(&a.dir);
    assert_ne!(second, first);
    let o = hotlined(&["keys", "list", "--dir", a.dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains(&second), "{}", text(&o));

    let mut ids = vec![before, send(&bruno, "during the rotation")];
    let t0 = Instant::now();
    loop {
        let id = send(&bruno, "after the rotation");
        let key = sealed_to(&bruno, &id);
        ids.push(id);
        if key == second {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "B never sealed to A's new key"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Every message delivered, and listed once at A.
    let t0 = Instant::now();
    loop {
        let o = hotline(&["inbox", "--json", "--credential", &olga], None);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        let got: Vec<&str> = v
            .as_array()
            .map(|a| a.iter().filter_map(|m| m["message_id"].as_str()).collect())
            .unwrap_or_default();
        if ids.iter().all(|id| got.contains(&id.as_str())) {
            let mut sorted = got.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), got.len(), "a message listed twice: {v}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "not all arrived: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The link never went down.
    assert_eq!(status(&bruno)["links"][0]["since_ms"], since);

    // Evidence exported at B afterwards verifies for every message.
    let file = tmp.path().join("after-rotation.hlx");
    let o = hotline(
        &[
            "export",
            "--credential",
            &bruno,
            "--out",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = hotline(&["verify", file.to_str().unwrap(), "--json"], None);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(ids.len()), "{v}");
}

fn tls_pin(dir: &Path) -> String {
    let m = hotline_transport::material::Material::load(dir).unwrap();
    data_encoding::HEXLOWER.encode(&m.tls.spki_sha256())
}

/// A new TLS key on a running node (SPEC.md §3.6.1, §4.4.4): `hotlined keys rotate --tls` at A;
/// A switches once B holds its new bundle, the link stays up, every message arrives once, an
/// operator of A whose client connected during the rotation follows it (her credential file's
/// pin moves to the new key), and evidence exported afterwards verifies.
#[test]
fn a_tls_key_rotates_on_a_running_node_and_its_operators_follow() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = common::pinned_pair(tmp.path());
    let olga = a.credential("Olga", "officer").display().to_string();
    let bruno = b.credential("Bruno", "officer").display().to_string();
    let _da = Daemon::start(&a.dir);
    let _db = Daemon::start(&b.dir);
    let up = |o: &Output| {
        serde_json::from_slice::<Value>(&o.stdout).is_ok_and(|v| v["links"][0]["up"] == true)
    };
    let o = poll(
        &["status", "--json", "--credential", &bruno],
        Duration::from_secs(30),
        up,
    );
    assert!(up(&o), "link did not come up: {}", text(&o));
    let mut ids = vec![send(&bruno, "before the TLS rotation")];
    std::thread::sleep(Duration::from_secs(3));
    let since = status(&bruno)["links"][0]["since_ms"].clone();
    let old = tls_pin(&a.dir);
    let cred_text = || std::fs::read_to_string(&olga).unwrap();
    assert!(cred_text().contains(&old));

    let o = hotlined(&["keys", "rotate", "--tls", "--dir", a.dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    ids.push(send(&bruno, "during the TLS rotation"));
    // Olga's client learns the next key while the old one is in use (or, if A switched first,
    // it can no longer connect: the test would fail there).
    let t0 = Instant::now();
    while !cred_text().contains("node_tls_spki_sha256_next") && tls_pin(&a.dir) == old {
        let o = hotline(&["status", "--json", "--credential", &olga], None);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "never told of the next key"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A switches once B holds the new key.
    let t0 = Instant::now();
    while tls_pin(&a.dir) == old {
        assert!(t0.elapsed() < Duration::from_secs(30), "A never switched");
        std::thread::sleep(Duration::from_millis(200));
    }
    let new = tls_pin(&a.dir);
    ids.push(send(&bruno, "after the TLS rotation"));
    // Olga reaches A on its new key, and her file now pins it.
    let t0 = Instant::now();
    let inbox = loop {
        let o = hotline(&["inbox", "--json", "--credential", &olga], None);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        let got: Vec<String> = v
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m["message_id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if ids.iter().all(|id| got.contains(id)) {
            break got;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "not all arrived: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut sorted = inbox.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), inbox.len(), "a message listed twice");
    let text_now = cred_text();
    assert!(
        text_now.contains(&format!("node_tls_spki_sha256 = \"{new}\"")),
        "{text_now}"
    );
    assert!(
        !text_now.contains("node_tls_spki_sha256_next"),
        "{text_now}"
    );
    // The link never went down.
    assert_eq!(status(&bruno)["links"][0]["since_ms"], since);
    // Evidence exported at B afterwards verifies for every message.
    let file = tmp.path().join("after-tls-rotation.hlx");
    let o = hotline(
        &[
            "export",
            "--credential",
            &bruno,
            "--out",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = hotline(&["verify", file.to_str().unwrap(), "--json"], None);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], true, "{v}");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(ids.len()), "{v}");
}
