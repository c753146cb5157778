//! Officers bring their own keys (issue 14 item 1, SPEC.md §15.2.5): `hotline keygen` on the
//! officer's machine, `hotlined operator add --request` on the node, `hotline credential import`
//! back on the officer's machine; the node never holds an officer secret.
#![allow(clippy::unwrap_used)]

mod cli_common;
use cli_common as common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{NodeDir, RunningNode, hotline, stdout, text};
use hotline_node::{commands, config};
use hotline_transport::officer_keys::{self, OfficerKeys};

/// Runs `hotlined ARGS` (the real command line).
fn hotlined(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hotline-e2e-daemon"))
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `hotline keygen --name NAME --out DIR`.
fn keygen(dir: &Path, name: &str) {
    let o = hotline(&["keygen", "--name", name, "--out", &s(dir)], None);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("fingerprint"), "{}", text(&o));
}

/// `hotlined operator add --dir NODE --request DIR/request --role officer --out ISSUED`.
fn issue(node: &Path, keys: &Path, out: &Path) -> Output {
    hotlined(&[
        "operator",
        "add",
        "--dir",
        &s(node),
        "--request",
        &s(&keys.join(officer_keys::REQUEST_FILE)),
        "--role",
        "officer",
        "--out",
        &s(out),
    ])
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// The files under `dir` that hold `needle`.
fn holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    files(dir)
        .into_iter()
        .filter(|f| contains(&std::fs::read(f).unwrap(), needle))
        .collect()
}

fn operator_names(node: &Path) -> String {
    stdout(&hotlined(&["operator", "list", "--dir", &s(node)]))
}

#[test]
fn keys_made_by_the_officer_connect_and_send_and_never_reach_the_node() {
    let tmp = tempfile::tempdir().unwrap();
    let a = NodeDir::init(tmp.path(), "CERT-A");
    let b = NodeDir::init(tmp.path(), "CERT-B");
    commands::peer_add(
        &a.dir,
        &b.dir.join(config::BUNDLE_FILE),
        &b.addr,
        Some("cert-b"),
    )
    .unwrap();
    let keys = tmp.path().join("anna-keys");
    keygen(&keys, "Anna Kowalska");
    let issued = tmp.path().join("anna.issued");
    let o = issue(&a.dir, &keys, &issued);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("fingerprint"), "{}", text(&o));
    let o = hotline(
        &[
            "credential",
            "import",
            "--keys",
            &s(&keys),
            "--issued",
            &s(&issued),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let cred = s(&keys.join(officer_keys::CREDENTIAL_FILE));
    assert!(stdout(&o).contains(&cred), "{}", text(&o));

    // The credential works with the unchanged commands against the running node.
    {
        let _node = RunningNode::start(&a.dir);
        let o = hotline(&["--credential", &cred, "whoami", "--json"], None);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(stdout(&o).contains("Anna Kowalska"), "{}", text(&o));
        let o = hotline(
            &[
                "--credential",
                &cred,
                "send",
                "--to",
                "cert-b",
                "--precedence",
                "flash",
                "--subject",
                "Own keys",
                "--body",
                "Signed with a key the node never saw.",
            ],
            None,
        );
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let id = stdout(&o).trim().to_owned();
        assert_eq!(id.len(), 32, "{}", text(&o));
        let o = hotline(&["--credential", &cred, "show", &id, "--json"], None);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["content"]["officer"], "Anna Kowalska");
        assert_eq!(v["verification"]["content_valid"], true);
    }

    // Nothing in the node's directory (keys, configuration, the SQLite database and its
    // journal) holds the officer's seed or TLS private key, in any encoding.
    let k = OfficerKeys::load(&keys).unwrap();
    let seed = k.dangerous_seed();
    let (_, key_pem) = k.tls().to_pem();
    let pem_body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let key_der = data_encoding::BASE64.decode(pem_body.as_bytes()).unwrap();
    let raw_tls_key = &key_der[key_der.len() - 32..];
    let seed_b64 = data_encoding::BASE64.encode(&*seed);
    let seed_hex = data_encoding::HEXLOWER.encode(&*seed);
    let raw_b64 = data_encoding::BASE64.encode(raw_tls_key);
    for (what, needle) in [
        ("seed", &seed[..]),
        ("seed base64", seed_b64.as_bytes()),
        ("seed hex", seed_hex.as_bytes()),
        ("TLS key PKCS#8", &key_der[..]),
        ("TLS key PEM", pem_body.as_bytes()),
        ("TLS key raw", raw_tls_key),
        ("TLS key raw base64", raw_b64.as_bytes()),
    ] {
        let found = holding(&a.dir, needle);
        assert!(found.is_empty(), "the officer's {what} is in {found:?}");
    }
    // The search does look into the database: the officer's public key is there.
    let public = holding(&a.dir, &k.officer_key());
    assert!(
        public
            .iter()
            .any(|f| f.to_string_lossy().contains(config::DB_FILE)),
        "public key not found in the database: {public:?}"
    );
}

#[test]
fn a_forged_or_repeated_request_is_refused_and_issues_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let a = NodeDir::init(tmp.path(), "CERT-A");
    let keys = tmp.path().join("anna-keys");
    keygen(&keys, "Anna Kowalska");
    let request = keys.join(officer_keys::REQUEST_FILE);
    let genuine = std::fs::read_to_string(&request).unwrap();

    // The name changed after signing: the signature over it no longer verifies.
    std::fs::write(
        &request,
        genuine.replace("name = \"Anna Kowalska\"", "name = \"Bruno Lefevre\""),
    )
    .unwrap();
    let out = tmp.path().join("forged.issued");
    let o = issue(&a.dir, &keys, &out);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("signature does not verify"),
        "{}",
        text(&o)
    );
    assert!(!out.exists());
    assert!(!operator_names(&a.dir).contains("Bruno"));

    // Another key put in place of the officer's: its owner did not sign the request.
    let other = tmp.path().join("other-keys");
    keygen(&other, "Mallory");
    let other_key = std::fs::read_to_string(other.join(officer_keys::REQUEST_FILE))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("officer_key = "))
        .unwrap()
        .to_owned();
    let swapped: String = genuine
        .lines()
        .map(|l| {
            if l.starts_with("officer_key = ") {
                other_key.clone()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&request, swapped).unwrap();
    let o = issue(&a.dir, &keys, &out);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("signature does not verify"),
        "{}",
        text(&o)
    );
    assert!(!out.exists());

    // The genuine request is issued once; the same keys again are refused.
    std::fs::write(&request, &genuine).unwrap();
    let issued = tmp.path().join("anna.issued");
    let o = issue(&a.dir, &keys, &issued);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = issue(&a.dir, &keys, &tmp.path().join("again.issued"));
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("already certified"), "{}", text(&o));

    // An issued credential for other keys does not complete this key directory.
    let mallory = tmp.path().join("mallory.issued");
    let o = issue(&a.dir, &other, &mallory);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = hotline(
        &[
            "credential",
            "import",
            "--keys",
            &s(&keys),
            "--issued",
            &s(&mallory),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("another officer key"), "{}", text(&o));
    assert!(!keys.join(officer_keys::CREDENTIAL_FILE).exists());

    // --valid-days is bounded.
    let late = tmp.path().join("late-keys");
    keygen(&late, "Late Officer");
    let o = hotlined(&[
        "operator",
        "add",
        "--dir",
        &s(&a.dir),
        "--request",
        &s(&late.join(officer_keys::REQUEST_FILE)),
        "--role",
        "officer",
        "--valid-days",
        "3650",
        "--out",
        &s(&tmp.path().join("late.issued")),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("1 to 825 days"), "{}", text(&o));
}

#[test]
fn the_old_flow_is_refused_for_officers_unless_keys_on_node() {
    let tmp = tempfile::tempdir().unwrap();
    let a = NodeDir::init(tmp.path(), "CERT-A");
    let out = tmp.path().join("olga.credential");
    let add = |name: &str, role: &str, out: &Path, flag: bool| {
        let mut args = vec![
            "operator".to_owned(),
            "add".into(),
            "--dir".into(),
            s(&a.dir),
            "--name".into(),
            name.into(),
            "--role".into(),
            role.into(),
            "--out".into(),
            s(out),
        ];
        if flag {
            args.push("--keys-on-node".into());
        }
        hotlined(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let o = add("Olga", "officer", &out, false);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    for hint in [
        "hotline keygen",
        "--request",
        "hotline credential import",
        "--keys-on-node",
    ] {
        assert!(err.contains(hint), "{hint}: {err}");
    }
    assert!(!out.exists());
    assert!(!operator_names(&a.dir).contains("Olga"));

    let o = add("Olga", "officer", &out, true);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(hotline_transport::credential::load(&out).is_ok());

    let vera = tmp.path().join("vera.credential");
    let o = add("Vera", "viewer", &vera, false);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(vera.exists());
}

#[test]
fn a_renewed_credential_replaces_the_officers_file_and_works_for_the_same_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let a = NodeDir::init(tmp.path(), "CERT-A");
    let keys = tmp.path().join("anna-keys");
    keygen(&keys, "Anna Kowalska");
    let issued = tmp.path().join("anna.issued");
    let o = issue(&a.dir, &keys, &issued);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let import = |issued: &Path| {
        hotline(
            &[
                "credential",
                "import",
                "--keys",
                &s(&keys),
                "--issued",
                &s(issued),
            ],
            None,
        )
    };
    let o = import(&issued);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let cred = keys.join(officer_keys::CREDENTIAL_FILE);
    let first = hotline_transport::credential::load(&cred).unwrap();

    // Renewal: the same keys, a new validity, nothing secret involved.
    let renewed = tmp.path().join("anna.renewed");
    let o = hotlined(&[
        "operator",
        "renew",
        "--dir",
        &s(&a.dir),
        "--name",
        "Anna Kowalska",
        "--valid-days",
        "30",
        "--out",
        &s(&renewed),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(stdout(&o).contains("valid until"), "{}", text(&o));
    let o = import(&renewed);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let second = hotline_transport::credential::load(&cred).unwrap();
    assert_eq!(
        second.credential.officer_key(),
        first.credential.officer_key()
    );
    let month = hotline_transport::now_ms() + 30 * hotline_protocol::time::DAY;
    assert!(second.credential.not_after().abs_diff(month) < 120_000);
    assert!(second.credential.not_after() < first.credential.not_after());
    // The node knows only the renewed credential, and accepts it.
    {
        let _node = RunningNode::start(&a.dir);
        let o = hotline(&["--credential", &s(&cred), "whoami", "--json"], None);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        assert!(stdout(&o).contains("Anna Kowalska"), "{}", text(&o));
    }
    assert!(operator_names(&a.dir).contains("Anna Kowalska"));

    // Nobody else is renewed: an unknown name, or a removed operator.
    let o = hotlined(&[
        "operator",
        "renew",
        "--dir",
        &s(&a.dir),
        "--name",
        "Nobody",
        "--out",
        &s(&tmp.path().join("nobody")),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no active operator"), "{}", text(&o));
}
