//! `hotline` run as an operator runs it: credentials issued by the node's own code, the
//! operator API over real QUIC and TLS, exit statuses, `--json`, and offline `verify`.
#![allow(clippy::unwrap_used)]

mod cli_common;
use cli_common as common;

use std::path::Path;

use common::{Mock, MockConfig, NodeDir, hotline, stdout, text};
use hotline_protocol::bundle::PeerBundle;
use hotline_protocol::content::Precedence;
use hotline_protocol::session::Config;
use hotline_protocol::sim::{EPOCH, Pair, SimNode};
use hotline_protocol::wire;
use prost::Message;

fn code(o: &std::process::Output) -> Option<i32> {
    o.status.code()
}

struct Setup {
    _tmp: tempfile::TempDir,
    a: NodeDir,
    b: NodeDir,
    officer: String,
    viewer: String,
    mock: Mock,
}

/// Node A (with an officer and a viewer credential) served by the stand-in operator API, and
/// node B as its peer.
fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let a = NodeDir::init(tmp.path(), "CERT-A");
    let b = NodeDir::init(tmp.path(), "CERT-B");
    let officer = a.credential("Olga", "officer");
    let viewer = a.credential("Vera", "viewer");
    let m = a.material();
    let mock = Mock::start(MockConfig {
        tls: m.tls.clone(),
        operator_pins: vec![
            common::operator_pin(&officer),
            common::operator_pin(&viewer),
        ],
        me: m.identity.id(),
        own_bundle: a.bundle(),
        peer_bundle: b.bundle(),
    });
    for c in [&officer, &viewer] {
        common::set_field(c, "node_address", &mock.addr.to_string());
    }
    Setup {
        _tmp: tmp,
        a,
        b,
        officer: officer.display().to_string(),
        viewer: viewer.display().to_string(),
        mock,
    }
}

#[test]
fn help_documents_the_exit_statuses_and_the_credential() {
    let o = hotline(&["--help"], None);
    assert_eq!(code(&o), Some(0));
    let out = stdout(&o);
    for needle in [
        "Exit status:",
        "node unreachable",
        "HOTLINE_CREDENTIAL",
        "send",
        "verify",
    ] {
        assert!(out.contains(needle), "--help lacks {needle:?}:\n{out}");
    }
    assert_eq!(code(&hotline(&["send", "--bogus"], None)), Some(2));
}

#[test]
fn prints_completions_for_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let o = hotline(&["completions", shell], None);
        assert_eq!(code(&o), Some(0), "{}", text(&o));
        assert!(stdout(&o).contains("inbox"), "{shell}");
    }
}

#[test]
fn a_missing_or_insecure_credential_exits_3() {
    let o = hotline(&["inbox", "--credential", "/nonexistent/cred"], None);
    assert_eq!(code(&o), Some(3), "{}", text(&o));
    assert!(text(&o).contains("--credential"));
    // No flag, no environment, HOME without one: says where it looked.
    let o = hotline(&["status"], None);
    assert_eq!(code(&o), Some(3), "{}", text(&o));

    let s = setup();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&s.officer, std::fs::Permissions::from_mode(0o644)).unwrap();
    let o = hotline(&["whoami", "--credential", &s.officer], None);
    assert_eq!(code(&o), Some(3), "{}", text(&o));
    assert!(text(&o).contains("chmod 600"), "{}", text(&o));
}

#[test]
fn the_credential_comes_from_the_environment_or_the_default_path() {
    let s = setup();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_hotline-e2e-client"))
        .arg("whoami")
        .env("HOTLINE_CREDENTIAL", &s.officer)
        .output()
        .unwrap();
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    let cfg = s._tmp.path().join("xdg");
    std::fs::create_dir_all(cfg.join("hotline")).unwrap();
    std::fs::copy(&s.officer, cfg.join("hotline/credential")).unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_hotline-e2e-client"))
        .arg("whoami")
        .env_remove("HOTLINE_CREDENTIAL")
        .env("XDG_CONFIG_HOME", &cfg)
        .output()
        .unwrap();
    assert_eq!(code(&o), Some(0), "{}", text(&o));
}

#[test]
fn an_unreachable_node_exits_4() {
    let s = setup();
    let dead = format!("127.0.0.1:{}", common::free_udp_port());
    let o = hotline(
        &[
            "status",
            "--credential",
            &s.officer,
            "--node",
            &dead,
            "--connect-timeout",
            "1s",
        ],
        None,
    );
    assert_eq!(code(&o), Some(4), "{}", text(&o));
    assert!(text(&o).contains("--node"), "{}", text(&o));
}

#[test]
fn whoami_status_and_peers_answer_in_text_and_json() {
    let s = setup();
    let o = hotline(&["whoami", "--credential", &s.officer], None);
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("Olga (officer)"), "{}", text(&o));
    for cmd in ["whoami", "status", "peers"] {
        let o = hotline(&[cmd, "--json", "--credential", &s.viewer], None);
        assert_eq!(code(&o), Some(0), "{cmd}: {}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{cmd}: {e}\n{}", text(&o)));
        assert!(!v.is_null());
    }
    let o = hotline(&["status", "--credential", &s.viewer], None);
    assert!(stdout(&o).contains("X25519MLKEM768"), "{}", text(&o));
    let o = hotline(&["peers", "--credential", &s.viewer], None);
    assert!(
        stdout(&o).contains("cert-b") && stdout(&o).contains("CERT-B"),
        "{}",
        text(&o)
    );
}

#[test]
fn the_node_listening_on_every_interface_is_dialed_on_loopback() {
    let s = setup();
    let any = format!("0.0.0.0:{}", s.mock.addr.port());
    let o = hotline(
        &["whoami", "--credential", &s.officer, "--node", &any],
        None,
    );
    assert_eq!(code(&o), Some(0), "{}", text(&o));
}

#[test]
fn sends_a_signed_message_with_the_body_from_stdin() {
    let s = setup();
    let o = hotline(
        &[
            "send",
            "--credential",
            &s.officer,
            "--to",
            "cert-b",
            "--precedence",
            "flash",
            "--subject",
            "Phishing wave",
            "--tlp",
            "red",
        ],
        Some("Block evil.example now.\n"),
    );
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    let id = stdout(&o).trim().to_owned();
    assert_eq!(id.len(), 32, "{}", text(&o));
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    {
        let st = s.mock.state.lock().unwrap();
        let (req, _) = &st.sent[0];
        assert_eq!(req.precedence, wire::Precedence::Flash as i32);
        assert_eq!(req.tlp, wire::Tlp::Red as i32);
    }
    // Show checks the officer signature over the content (the envelope is not sealed yet).
    let o = hotline(&["show", &id, "--credential", &s.viewer], None);
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    let out = stdout(&o);
    assert!(
        out.contains("Phishing wave") && out.contains("Block evil.example now."),
        "{out}"
    );
    assert!(out.contains("not sealed yet"), "{out}");
    let o = hotline(
        &["show", &id[..8], "--json", "--credential", &s.viewer],
        None,
    );
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["content"]["officer"], "Olga");
    assert_eq!(v["verification"]["content_valid"], true);
    assert_eq!(v["summary"]["tlp"], "TLP:RED");
    // The outbox lists it.
    let o = hotline(&["outbox", "--json", "--credential", &s.viewer], None);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v[0]["message_id"], id);
}

/// A failed producer in a pipe gives an empty text: it must not become an empty FLASH.
#[test]
fn an_empty_text_from_a_pipe_is_refused_unless_allowed() {
    let s = setup();
    let send = |extra: &[&str]| {
        let mut args = vec![
            "send",
            "--credential",
            &s.officer,
            "--to",
            "cert-b",
            "--precedence",
            "flash",
            "--subject",
            "Urgent",
        ];
        args.extend_from_slice(extra);
        hotline(&args, Some(""))
    };
    let o = send(&[]);
    assert_eq!(code(&o), Some(2), "{}", text(&o));
    assert!(text(&o).contains("--allow-empty"), "{}", text(&o));
    assert!(
        s.mock.state.lock().unwrap().sent.is_empty(),
        "nothing is sent"
    );
    let o = send(&["--allow-empty"]);
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    assert_eq!(s.mock.state.lock().unwrap().sent.len(), 1);
}

#[test]
fn send_with_json_and_body_flag_defaults_to_amber() {
    let s = setup();
    let o = hotline(
        &[
            "send",
            "--json",
            "--credential",
            &s.officer,
            "--to",
            "cert-b",
            "--precedence",
            "routine",
            "--subject",
            "s",
            "--body",
            "b",
        ],
        None,
    );
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["sequence"], 1);
    assert_eq!(
        s.mock.state.lock().unwrap().sent[0].0.tlp,
        wire::Tlp::Amber as i32
    );
}

#[test]
fn send_errors_have_distinct_exit_statuses() {
    let s = setup();
    let send = |cred: &str, to: &str, extra: &[&str]| {
        let mut args = vec![
            "send",
            "--credential",
            cred,
            "--to",
            to,
            "--precedence",
            "flash",
            "--subject",
            "s",
            "--body",
            "b",
        ];
        args.extend_from_slice(extra);
        hotline(&args, None)
    };
    let o = send(&s.officer, "cert-z", &[]);
    assert_eq!(code(&o), Some(6), "{}", text(&o));
    assert!(text(&o).contains("cert-b"), "lists the peers: {}", text(&o));
    let o = send(&s.viewer, "cert-b", &[]);
    assert_eq!(code(&o), Some(5), "{}", text(&o));
    // Still pending after the timeout.
    let o = send(&s.officer, "cert-b", &["--wait", "--timeout", "1s"]);
    assert_eq!(code(&o), Some(8), "{}", text(&o));
    assert_eq!(
        stdout(&o).trim().len(),
        32,
        "the id is printed before waiting"
    );
    // No body and stdin not a terminal but empty: refused unless --allow-empty (a command
    // that failed before the pipe must not send an empty FLASH).
    let empty = |extra: &[&str]| {
        let mut args = vec![
            "send",
            "--credential",
            &s.officer,
            "--to",
            "cert-b",
            "--precedence",
            "flash",
            "--subject",
            "s",
        ];
        args.extend_from_slice(extra);
        hotline(&args, None)
    };
    let o = empty(&[]);
    assert_eq!(code(&o), Some(2), "{}", text(&o));
    let o = empty(&["--allow-empty"]);
    assert_eq!(code(&o), Some(0), "{}", text(&o));
}

#[test]
fn node_errors_map_to_exit_statuses() {
    let s = setup();
    let o = hotline(&["show", &"ab".repeat(16), "--credential", &s.viewer], None);
    assert_eq!(code(&o), Some(7), "{}", text(&o));
    assert!(
        text(&o).contains("hotline inbox"),
        "the node's advice is shown: {}",
        text(&o)
    );
    let out = s._tmp.path().join("e.bin");
    let o = hotline(
        &[
            "export",
            "--out",
            out.to_str().unwrap(),
            "--credential",
            &s.viewer,
        ],
        None,
    );
    assert_eq!(code(&o), Some(5), "{}", text(&o));
    let o = hotline(&["ack", &"ab".repeat(16), "--credential", &s.viewer], None);
    assert_eq!(
        code(&o),
        Some(5),
        "a viewer cannot acknowledge: {}",
        text(&o)
    );
}

#[test]
fn a_credential_of_another_node_is_refused_with_3() {
    let s = setup();
    // Issued by node B, but pointed at node A (A's address and TLS pin): A does not know it.
    let foreign = s.b.credential("Mallory", "officer");
    let pin = hotline_transport::tls::spki_sha256(&s.a.material().tls.cert_der).unwrap();
    let hex: String = pin.iter().map(|b| format!("{b:02x}")).collect();
    common::set_field(&foreign, "node_tls_spki_sha256", &hex);
    common::set_field(&foreign, "node_address", &s.mock.addr.to_string());
    let o = hotline(&["whoami", "--credential", foreign.to_str().unwrap()], None);
    assert_eq!(code(&o), Some(3), "{}", text(&o));
    assert!(text(&o).contains("refused this credential"), "{}", text(&o));
}

#[test]
fn a_node_that_is_not_the_credentials_node_is_refused_with_3() {
    let s = setup();
    // B's credential names B's TLS pin; A's stand-in answers at the address.
    let other = s.b.credential("Bruno", "officer");
    common::set_field(&other, "node_address", &s.mock.addr.to_string());
    let o = hotline(&["status", "--credential", other.to_str().unwrap()], None);
    assert_eq!(code(&o), Some(3), "{}", text(&o));
    assert!(
        text(&o).contains("not the node of this credential"),
        "{}",
        text(&o)
    );
}

/// A's evidence of a FLASH it sent (DELIVERED and ACKNOWLEDGED by B), from the simulated pair.
fn evidence() -> Vec<u8> {
    let mut p = Pair::new(5, Config::default());
    p.connect();
    p.run_for(100);
    let now = p.now;
    let id =
        p.a.send(now, &mut p.rng, "Phishing wave", Precedence::Flash);
    p.run_for(1_000);
    let now = p.now;
    p.b.acknowledge(now, &id, "on it");
    p.run_for(1_000);
    let bundle = |n: &SimNode, name: &str| {
        let keys: Vec<_> = n.keys.iter().map(|k| k.certificate.clone()).collect();
        PeerBundle::create(&n.identity, name, [7; 32], &keys, &[], EPOCH)
            .unwrap()
            .bytes()
            .clone()
    };
    wire::EvidenceBundle {
        version: 1,
        created_ms: now,
        exporter_bundle: bundle(&p.a, "CERT-A"),
        peer_bundles: vec![bundle(&p.b, "CERT-B")],
        items: vec![wire::EvidenceItem {
            envelope: p.a.outbox[&id].bytes().clone(),
            receipts: p.a.receipts[&id]
                .iter()
                .map(|r| r.bytes().clone())
                .collect(),
            incoming: false,
            removed: None,
        }],
        revocations: Vec::new(),
    }
    .encode_to_vec()
}

fn verify_file(path: &Path, json: bool) -> std::process::Output {
    let p = path.to_str().unwrap();
    if json {
        hotline(&["verify", "--json", p], None)
    } else {
        hotline(&["verify", p], None)
    }
}

#[test]
fn verify_checks_an_evidence_file_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("evidence.bin");
    let good = evidence();
    std::fs::write(&f, &good).unwrap();
    let o = verify_file(&f, false);
    assert_eq!(code(&o), Some(0), "{}", text(&o));
    let out = stdout(&o);
    for needle in [
        "CERT-A",
        "CERT-B",
        "ACKNOWLEDGED",
        "Bob Officer",
        "on it",
        "VALID",
        "independently",
    ] {
        assert!(
            out.contains(needle),
            "verify output lacks {needle:?}:\n{out}"
        );
    }
    let o = verify_file(&f, true);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["items"][0]["status"], "acknowledged");

    // A flipped byte in the envelope's ciphertext (the middle of the file): exit 9.
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x01;
    std::fs::write(&f, &bad).unwrap();
    let o = verify_file(&f, false);
    assert_eq!(code(&o), Some(9), "{}", text(&o));
    assert!(text(&o).contains("INVALID"), "{}", text(&o));
    let o = verify_file(&f, true);
    assert_eq!(code(&o), Some(9));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["valid"], false);

    std::fs::write(&f, b"this is not evidence").unwrap();
    let o = verify_file(&f, false);
    assert_eq!(code(&o), Some(9), "{}", text(&o));
    assert!(
        text(&o).contains("not a hotline evidence bundle"),
        "{}",
        text(&o)
    );
    let o = verify_file(&tmp.path().join("missing"), false);
    assert_eq!(code(&o), Some(1), "{}", text(&o));
}

/// Two real nodes, in this process, each on its own runtime thread.
mod real_nodes {
    use std::time::Duration;

    use super::code;
    use super::common::{self, NodeDir, RunningNode, hotline, poll, stdout, text};
    use serde_json::Value;

    struct Two {
        tmp: tempfile::TempDir,
        a: NodeDir,
        b: NodeDir,
        olga: String,
        bruno: String,
        vera: String,
        _na: RunningNode,
        _nb: RunningNode,
    }

    /// Nodes A and B pinned to each other (aliases cert-b and cert-a), officers Olga (A) and
    /// Bruno (B), viewer Vera (B); both running, link up.
    fn two() -> Two {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = common::pinned_pair(tmp.path());
        let olga = a.credential("Olga", "officer").display().to_string();
        let bruno = b.credential("Bruno", "officer").display().to_string();
        let vera = b.credential("Vera", "viewer").display().to_string();
        let na = RunningNode::start(&a.dir);
        let nb = RunningNode::start(&b.dir);
        let up = |o: &std::process::Output| {
            serde_json::from_slice::<Value>(&o.stdout).is_ok_and(|v| v["links"][0]["up"] == true)
        };
        let o = poll(
            &["status", "--json", "--credential", &olga],
            Duration::from_secs(30),
            up,
        );
        assert!(up(&o), "link did not come up: {}", text(&o));
        Two {
            tmp,
            a,
            b,
            olga,
            bruno,
            vera,
            _na: na,
            _nb: nb,
        }
    }

    /// An export over the 16 MiB answer limit is fetched in pages and written to the file as
    /// they come; `verify` reads it item by item (issue 12 item 4: 18 messages of 0.9 MiB made
    /// `hotline export` fail with "node announced a 16841262-byte answer").
    #[test]
    fn an_export_larger_than_an_answer_is_written_in_pages_and_verifies() {
        let t = two();
        let body = "x".repeat(900 * 1024);
        for n in 0..20 {
            let o = hotline(
                &[
                    "send",
                    "--credential",
                    &t.olga,
                    "--to",
                    "cert-b",
                    "--precedence",
                    "routine",
                    "--subject",
                    &format!("capture part {n}"),
                    "--wait",
                ],
                Some(&body),
            );
            assert_eq!(code(&o), Some(0), "{}", text(&o));
        }
        let file = t.tmp.path().join("big.hlx");
        let o = hotline(
            &[
                "export",
                "--credential",
                &t.olga,
                "--out",
                file.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(code(&o), Some(0), "{}", text(&o));
        assert!(stdout(&o).contains("20 message(s)"), "{}", text(&o));
        let len = std::fs::metadata(&file).unwrap().len();
        assert!(len > 16 * 1024 * 1024, "only {len} bytes");
        assert!(!t.tmp.path().join("big.hlx.partial").exists());
        let o = hotline(&["verify", file.to_str().unwrap(), "--json"], None);
        assert_eq!(code(&o), Some(0), "{}", text(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["valid"], true);
        assert_eq!(v["items"].as_array().map(Vec::len), Some(20));
        let _ = (&t.a, &t.b, &t.bruno, &t.vera);
    }

    #[test]
    fn send_inbox_ack_receipts_export_and_verify_between_two_nodes() {
        let t = two();
        // Officer Olga at A sends a FLASH, the text on stdin, and waits for delivery.
        let o = hotline(
            &[
                "send",
                "--credential",
                &t.olga,
                "--to",
                "cert-b",
                "--precedence",
                "flash",
                "--subject",
                "Phishing wave",
                "--wait",
                "--timeout",
                "30s",
            ],
            Some("Block evil.example at once.\n"),
        );
        assert_eq!(code(&o), Some(0), "{}", text(&o));
        let id = stdout(&o).trim().to_owned();
        assert_eq!(id.len(), 32, "{}", text(&o));
        assert!(text(&o).contains("DELIVERED"), "{}", text(&o));

        // B's inbox shows it, FLASH, unacknowledged.
        let o = hotline(&["inbox", "--credential", &t.vera], None);
        assert_eq!(code(&o), Some(0), "{}", text(&o));
        assert!(
            stdout(&o).contains("FLASH") && stdout(&o).contains("Phishing wave"),
            "{}",
            text(&o)
        );
        let o = hotline(
            &[
                "inbox",
                "--unacknowledged",
                "--json",
                "--credential",
                &t.vera,
            ],
            None,
        );
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v[0]["message_id"], id.as_str());
        assert_eq!(v[0]["state"], "received");
        assert_eq!(v[0]["officer"], "Olga");

        // Show at B verifies everything, including Olga's signature inside the content.
        let o = hotline(&["show", &id, "--json", "--credential", &t.vera], None);
        assert_eq!(code(&o), Some(0), "{}", text(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["content"]["text"], "Block evil.example at once.\n");
        assert_eq!(v["verification"]["valid"], true);

        // A delivered message cannot be cancelled any more, and the node says why.
        let o = hotline(&["cancel", &id[..8], "--credential", &t.olga], None);
        assert_eq!(code(&o), Some(1), "{}", text(&o));
        assert!(text(&o).contains("too late to cancel"), "{}", text(&o));

        // A viewer can neither acknowledge nor send.
        let o = hotline(&["ack", &id, "--credential", &t.vera], None);
        assert_eq!(code(&o), Some(5), "{}", text(&o));
        let o = hotline(
            &[
                "send",
                "--credential",
                &t.vera,
                "--to",
                "cert-a",
                "--precedence",
                "routine",
                "--subject",
                "s",
                "--body",
                "b",
            ],
            None,
        );
        assert_eq!(code(&o), Some(5), "{}", text(&o));

        // Officer Bruno at B acknowledges; A receives the ACKNOWLEDGED receipt naming him.
        let o = hotline(
            &["ack", &id, "--note", "on it", "--credential", &t.bruno],
            None,
        );
        assert_eq!(code(&o), Some(0), "{}", text(&o));
        assert!(
            stdout(&o).contains("ACKNOWLEDGED") && stdout(&o).contains("Bruno"),
            "{}",
            text(&o)
        );
        let acked = |o: &std::process::Output| {
            serde_json::from_slice::<Value>(&o.stdout).is_ok_and(|v| v["status"] == "acknowledged")
        };
        let o = poll(
            &["receipts", &id, "--json", "--credential", &t.olga],
            Duration::from_secs(30),
            acked,
        );
        assert!(acked(&o), "{}", text(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let ack = v["receipts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == "ACKNOWLEDGED")
            .unwrap();
        assert_eq!(ack["officer"], "Bruno");
        assert_eq!(ack["note"], "on it");
        assert_eq!(ack["valid"], true);
        let o = hotline(&["outbox", "--credential", &t.olga], None);
        assert!(stdout(&o).contains("acknowledged"), "{}", text(&o));

        // Evidence: exported by A, verified offline, and a flipped byte fails.
        let f = t.tmp.path().join("evidence.bin");
        let o = hotline(
            &[
                "export",
                "--out",
                f.to_str().unwrap(),
                "--peer",
                "cert-b",
                "--since",
                "1d",
                "--credential",
                &t.olga,
            ],
            None,
        );
        assert_eq!(code(&o), Some(0), "{}", text(&o));
        let o = hotline(&["verify", "--json", f.to_str().unwrap()], None);
        assert_eq!(code(&o), Some(0), "{}", text(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["items"][0]["status"], "acknowledged");
        let mut bytes = std::fs::read(&f).unwrap();
        let n = bytes.len() - 10;
        bytes[n] ^= 0x01;
        std::fs::write(&f, &bytes).unwrap();
        let o = hotline(&["verify", f.to_str().unwrap()], None);
        assert_eq!(code(&o), Some(9), "{}", text(&o));
    }

    #[test]
    fn wait_ack_returns_once_the_peer_acknowledges() {
        let t = two();
        let olga = t.olga.clone();
        let sender = std::thread::spawn(move || {
            hotline(
                &[
                    "send",
                    "--credential",
                    &olga,
                    "--to",
                    "cert-b",
                    "--precedence",
                    "immediate",
                    "--subject",
                    "Please confirm",
                    "--body",
                    "ack me",
                    "--wait-ack",
                    "--timeout",
                    "60s",
                    "--json",
                ],
                None,
            )
        });
        let listed = |o: &std::process::Output| {
            serde_json::from_slice::<Value>(&o.stdout)
                .is_ok_and(|v| v.as_array().is_some_and(|a| !a.is_empty()))
        };
        let o = poll(
            &["inbox", "--json", "--credential", &t.bruno],
            Duration::from_secs(30),
            listed,
        );
        assert!(listed(&o), "{}", text(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        let id = v[0]["message_id"].as_str().unwrap().to_owned();
        let o = hotline(&["ack", &id[..8], "--credential", &t.bruno], None);
        assert_eq!(code(&o), Some(0), "{}", text(&o));
        let o = sender.join().unwrap();
        assert_eq!(code(&o), Some(0), "{}", text(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["receipt"]["kind"], "ACKNOWLEDGED");
        assert_eq!(v["receipt"]["officer"], "Bruno");
    }

    #[test]
    fn the_node_refuses_a_credential_it_did_not_issue() {
        let t = two();
        // Bruno's credential (issued by B), pointed at A with A's TLS pin.
        let foreign = t.tmp.path().join("foreign");
        std::fs::copy(&t.bruno, &foreign).unwrap();
        let pin = hotline_transport::tls::spki_sha256(&t.a.material().tls.cert_der).unwrap();
        let hex: String = pin.iter().map(|b| format!("{b:02x}")).collect();
        common::set_field(&foreign, "node_tls_spki_sha256", &hex);
        let o = hotline(
            &[
                "whoami",
                "--credential",
                foreign.to_str().unwrap(),
                "--node",
                &t.a.addr,
            ],
            None,
        );
        assert_eq!(code(&o), Some(3), "{}", text(&o));
        assert!(text(&o).contains("refused this credential"), "{}", text(&o));
        // And a credential pointed at the wrong node (B's pin, A's address) is refused by us.
        let o = hotline(
            &["whoami", "--credential", &t.bruno, "--node", &t.a.addr],
            None,
        );
        assert_eq!(code(&o), Some(3), "{}", text(&o));
        assert!(
            text(&o).contains("not the node of this credential"),
            "{}",
            text(&o)
        );
        // Unknown peer and unknown message.
        let o = hotline(&["outbox", "--to", "cert-z", "--credential", &t.olga], None);
        assert_eq!(code(&o), Some(6), "{}", text(&o));
        let o = hotline(&["show", &"0".repeat(32), "--credential", &t.olga], None);
        assert_eq!(code(&o), Some(7), "{}", text(&o));
        let _ = &t.b;
    }

    #[test]
    fn watch_prints_events_live_and_stops_on_ctrl_c() {
        use std::io::BufRead;
        let t = two();
        let mut watch = std::process::Command::new(env!("CARGO_BIN_EXE_hotline-e2e-client"))
            .args(["watch", "--json", "--credential", &t.vera])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = watch.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        // Give the watch stream time to open (there is no history), then send.
        std::thread::sleep(Duration::from_millis(500));
        let o = hotline(
            &[
                "send",
                "--credential",
                &t.olga,
                "--to",
                "cert-b",
                "--precedence",
                "priority",
                "--subject",
                "w",
                "--body",
                "b",
            ],
            None,
        );
        assert_eq!(code(&o), Some(0), "{}", text(&o));
        let id = stdout(&o).trim().to_owned();
        let mut seen = None;
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
            if v["kind"] == "received" && v["message_id"] == id.as_str() {
                seen = Some(v);
                break;
            }
        }
        let v = seen.expect("a received event for the message");
        assert_eq!(v["peer"], "cert-a");
        let _ = std::process::Command::new("kill")
            .args(["-INT", &watch.id().to_string()])
            .status();
        let status = watch.wait().unwrap();
        assert_eq!(status.code(), Some(0), "watch ends cleanly on Ctrl-C");
    }
}
