//! `hotline-conformance vectors`: our own results pass, and every kind of deviation in a
//! results directory is reported as FAIL or MISSING with a non-zero exit (VECTORS.md).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Cases plus independent checks over all eleven vector files.
const ROWS: usize = 276;

fn vectors(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hotline-conformance"))
        .arg("vectors")
        .args(args)
        .output()
        .expect("the binary runs")
}

/// A temporary directory holding our own results (`vectors --emit`).
fn emitted() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = vectors(&["--emit", path(dir.path())]);
    assert!(
        out.status.success(),
        "--emit failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// Runs the check with `--json` and returns the exit code and the rows.
fn check(dir: &Path) -> (i32, Vec<Value>) {
    let out = vectors(&["--json", path(dir)]);
    let code = out.status.code().expect("exited");
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "--json prints a JSON list ({e}); stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, rows.as_array().expect("a list").clone())
}

/// Edits `results[key]` of results file `file` in `dir`.
fn edit(dir: &Path, file: &str, f: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let p = dir.join(file);
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&p).expect("read")).expect("JSON");
    f(doc["results"].as_object_mut().expect("results object"));
    std::fs::write(&p, serde_json::to_string_pretty(&doc).expect("serialise")).expect("write");
}

fn row<'a>(rows: &'a [Value], file: &str, name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["file"] == file && r["name"] == name)
        .unwrap_or_else(|| panic!("no row {file} {name}"))
}

/// The rows that did not pass, as (file, name, status).
fn not_passed(rows: &[Value]) -> Vec<(String, String, String)> {
    rows.iter()
        .filter(|r| r["passed"] != true)
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            (s("file"), s("name"), s("status"))
        })
        .collect()
}

#[test]
fn our_emitted_results_pass_every_case() {
    let dir = emitted();
    for file in [
        "identity.json",
        "bundle.json",
        "hello.json",
        "envelope.json",
        "receipts.json",
        "frames.json",
        "negative.json",
        "key_update.json",
        "officer_v2.json",
        "revocation.json",
        "bundle_update.json",
    ] {
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join(file)).expect("emitted"))
                .expect("JSON");
        assert_eq!(doc["format"], "hotline-vector-results/1", "{file}");
        assert!(!doc["results"].as_object().expect("results").is_empty());
    }
    let (code, rows) = check(dir.path());
    assert_eq!(not_passed(&rows), vec![]);
    assert_eq!(rows.len(), ROWS);
    assert_eq!(code, 0);
    for r in &rows {
        for k in ["name", "file", "expected", "observed", "passed"] {
            assert!(r.get(k).is_some(), "row without {k}: {r}");
        }
    }
    // Every negative vector is a case.
    assert_eq!(
        rows.iter().filter(|r| r["file"] == "negative.json").count(),
        36
    );
    assert_eq!(
        rows.iter()
            .filter(|r| r["file"] == "key_update.json"
                && r["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("key_update_")))
            .count(),
        5,
        "the negative vectors of key_update.json"
    );
    assert_eq!(
        rows.iter()
            .filter(|r| r["file"] == "officer_v2.json"
                && r["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("officer_v")))
            .count(),
        4,
        "the envelopes of officer_v2.json"
    );
    let revocation_outcomes = |prefix: &str| {
        rows.iter()
            .filter(|r| {
                r["file"] == "revocation.json"
                    && r["name"].as_str().is_some_and(|n| n.starts_with(prefix))
            })
            .count()
    };
    assert_eq!(
        revocation_outcomes("revoked_key_"),
        4,
        "the envelopes of revocation.json"
    );
    assert_eq!(
        revocation_outcomes("revocations_"),
        11,
        "the negative vectors of revocation.json"
    );
    let bundle_rows = |prefix: &str| {
        rows.iter()
            .filter(|r| {
                r["file"] == "bundle_update.json"
                    && r["name"].as_str().is_some_and(|n| n.starts_with(prefix))
            })
            .count()
    };
    assert_eq!(
        bundle_rows("bundle_update_") + bundle_rows("bundle_accepted_"),
        10,
        "the negative vectors of bundle_update.json"
    );
    assert_eq!(bundle_rows(""), 28, "the rows of bundle_update.json");
}

/// An implementation that answers a BundleUpdate with the SHA-256 of the bundle it received,
/// not of the one it holds, fails the case where the received bundle is older (SPEC.md §4.4.4).
#[test]
fn an_answer_naming_an_older_received_bundle_fails() {
    let read = |f: &str| -> Value {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../../vectors/v1/").to_owned() + f;
        serde_json::from_str(&std::fs::read_to_string(p).expect("vector file")).expect("JSON")
    };
    let v = read("bundle_update.json");
    let older = v["previous_bundle"]["bundle_sha256"]
        .as_str()
        .expect("hex")
        .to_owned();
    let dir = emitted();
    edit(dir.path(), "bundle_update.json", |r| {
        r["receiver.not_newer.answer"] = Value::String(format!("07000000220a20{older}"));
    });
    let (code, rows) = check(dir.path());
    assert_eq!(code, 1);
    assert_eq!(
        not_passed(&rows),
        vec![(
            "bundle_update.json".into(),
            "receiver.not_newer.answer".into(),
            "FAIL".into()
        )]
    );
}

/// An implementation that signs the compromise with node B's identity key instead of node A's
/// fails the byte comparison, and our own check says why: it is not node A's revocation.
#[test]
fn a_revocation_signed_by_the_wrong_node_fails() {
    use hotline_protocol::identity::IdentityKey;
    use hotline_protocol::revocation::{Revocation, RevokedKind};

    let read = |f: &str| -> Value {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../../vectors/v1/").to_owned() + f;
        serde_json::from_str(&std::fs::read_to_string(p).expect("vector file")).expect("JSON")
    };
    let (id, rev) = (read("identity.json"), read("revocation.json"));
    let s = |v: &Value| v.as_str().expect("string").to_owned();
    let n = |v: &Value| v.as_u64().expect("integer");
    let seed: [u8; 32] = unhex(&s(&id["node_b"]["seed"]))
        .try_into()
        .expect("32 bytes");
    let b = IdentityKey::from_seed(&seed).expect("node B");
    let c = &rev["compromised"];
    let wrong = Revocation::issue(
        &b,
        RevokedKind::Officer,
        unhex(&s(&c["key"])).try_into().expect("32 bytes"),
        n(&c["revoked_ms"]),
        Some(n(&c["compromised_since_ms"])),
        &s(&c["reason"]),
    )
    .expect("issue");

    let dir = emitted();
    edit(dir.path(), "revocation.json", |r| {
        r["compromised.key_revocation"] = Value::String(hex(wrong.bytes()));
    });
    let (code, rows) = check(dir.path());
    assert_eq!(code, 1);
    assert_eq!(
        not_passed(&rows),
        vec![
            (
                "revocation.json".into(),
                "compromised.key_revocation".into(),
                "FAIL".into()
            ),
            (
                "revocation.json".into(),
                "verify:compromised.key_revocation".into(),
                "FAIL".into()
            ),
        ]
    );
    assert_eq!(
        row(
            &rows,
            "revocation.json",
            "verify:compromised.key_revocation"
        )["observed"],
        "refused as node A's: key revocation not signed by the expected node"
    );
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An implementation that signs `content_v2` by the version 1 rule (the body only) fails the
/// byte comparison, and our own check says why: its content opens, but by the version 1 rule.
#[test]
fn a_content_signed_by_the_version_1_rule_fails_the_version_2_checks() {
    use hotline_protocol::officer::{Credential, OfficerKey};
    use hotline_protocol::{NodeId, wire};
    use prost::Message;

    let read = |f: &str| -> Value {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../../vectors/v1/").to_owned() + f;
        serde_json::from_str(&std::fs::read_to_string(p).expect("vector file")).expect("JSON")
    };
    let (id, v2) = (read("identity.json"), read("officer_v2.json"));
    let s = |v: &Value| v.as_str().expect("string").to_owned();
    let a = NodeId::from_bytes(&unhex(&s(&id["node_a"]["public"]))).expect("node A");
    let raw = wire::OfficerCredential::decode(&unhex(&s(&id["node_a_officer"]["credential"]))[..])
        .expect("credential");
    let seed: [u8; 32] = unhex(&s(&id["node_a_officer"]["seed"]))
        .try_into()
        .expect("32 bytes");
    let officer =
        OfficerKey::from_parts(&seed, Credential::verify(&raw, &a).expect("A's")).expect("parts");
    let body = unhex(&s(&v2["content_v2"]["body"]));
    let v1 = wire::Content {
        body: body.clone().into(),
        officer: Some(officer.sign_message(&body)),
    }
    .encode_to_vec();

    let dir = emitted();
    edit(dir.path(), "officer_v2.json", |r| {
        r["content_v2.content"] = Value::String(hex(&v1));
    });
    let (code, rows) = check(dir.path());
    assert_eq!(code, 1);
    assert_eq!(
        not_passed(&rows),
        vec![
            (
                "officer_v2.json".into(),
                "content_v2.content".into(),
                "FAIL".into()
            ),
            (
                "officer_v2.json".into(),
                "verify:content_v2.content".into(),
                "FAIL".into()
            ),
        ]
    );
    assert_eq!(
        row(&rows, "officer_v2.json", "verify:content_v2.content")["observed"],
        "verifies, but by the version 1 rule only"
    );
}

#[test]
fn one_flipped_byte_in_an_encoded_envelope_fails_that_case() {
    let dir = emitted();
    edit(dir.path(), "envelope.json", |r| {
        let v = r["envelope"].as_str().expect("hex").to_owned();
        // Flip the low bit of byte 50, inside the header's sender key.
        let i = 100;
        let byte = u8::from_str_radix(&v[i..i + 2], 16).expect("hex") ^ 0x01;
        r["envelope"] = Value::String(format!("{}{byte:02x}{}", &v[..i], &v[i + 2..]));
    });
    let (code, rows) = check(dir.path());
    assert_eq!(code, 1);
    let failed = row(&rows, "envelope.json", "envelope");
    assert_eq!(failed["passed"], false);
    assert_eq!(failed["status"], "FAIL");
    assert_ne!(failed["observed"], failed["expected"]);
    // Our own implementation refuses it as well: it no longer interoperates.
    assert_eq!(
        not_passed(&rows),
        vec![
            ("envelope.json".into(), "envelope".into(), "FAIL".into()),
            (
                "envelope.json".into(),
                "verify:envelope".into(),
                "FAIL".into()
            ),
        ]
    );
}

#[test]
fn a_deleted_entry_is_missing() {
    let dir = emitted();
    edit(dir.path(), "receipts.json", |r| {
        r.remove("acknowledged.receipt").expect("present");
    });
    let (code, rows) = check(dir.path());
    assert_eq!(code, 1);
    let missing = row(&rows, "receipts.json", "acknowledged.receipt");
    assert_eq!(missing["status"], "MISSING");
    assert_eq!(missing["passed"], false);
    assert_eq!(missing["observed"], Value::Null);
    assert_eq!(
        not_passed(&rows),
        vec![
            (
                "receipts.json".into(),
                "acknowledged.receipt".into(),
                "MISSING".into()
            ),
            (
                "receipts.json".into(),
                "verify:acknowledged.receipt".into(),
                "MISSING".into()
            ),
        ]
    );
}

#[test]
fn a_changed_negative_code_fails() {
    let dir = emitted();
    edit(dir.path(), "negative.json", |r| {
        r["hello_wrong_role"] = Value::String("CLOSE:MALFORMED_FRAME".into());
    });
    let (code, rows) = check(dir.path());
    assert_eq!(code, 1);
    let failed = row(&rows, "negative.json", "hello_wrong_role");
    assert_eq!(failed["expected"], "CLOSE:BAD_CHANNEL_BINDING");
    assert_eq!(failed["observed"], "CLOSE:MALFORMED_FRAME");
    assert_eq!(not_passed(&rows).len(), 1);
}

#[test]
fn a_decoded_field_and_an_error_value_fail() {
    let dir = emitted();
    edit(dir.path(), "receipts.json", |r| {
        r["rejected_policy.receipt#reason"] = Value::String("MALFORMED".into());
        r["delivered.receipt#time_ms"] = Value::String("ERROR: cannot decode".into());
    });
    let (code, rows) = check(dir.path());
    assert_eq!(code, 1);
    let names: Vec<String> = not_passed(&rows).into_iter().map(|r| r.1).collect();
    assert_eq!(
        names,
        [
            "delivered.receipt#time_ms",
            "rejected_policy.receipt#reason"
        ]
    );
}

#[test]
fn an_absent_results_file_makes_its_cases_missing() {
    let dir = emitted();
    std::fs::remove_file(dir.path().join("frames.json")).expect("remove");
    let out = vectors(&["--json", path(dir.path())]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("frames.json does not exist"));
    let (_, rows) = check(dir.path());
    let missing = not_passed(&rows);
    assert!(!missing.is_empty());
    assert!(
        missing
            .iter()
            .all(|(file, _, status)| file == "frames.json" && status == "MISSING")
    );
}

#[test]
fn the_table_names_each_failure() {
    let dir = emitted();
    edit(dir.path(), "frames.json", |r| {
        r["heartbeat.frame"] = Value::String("02000000".into());
    });
    let out = vectors(&[path(dir.path())]);
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("FILE"), "{table}");
    let line = table
        .lines()
        .find(|l| l.starts_with("frames.json") && l.contains(" heartbeat.frame "))
        .expect("a row for heartbeat.frame");
    assert!(line.ends_with("FAIL"), "{line}");
    assert!(
        table.contains("length: expected 18 bytes, observed 4; the first 4 are equal"),
        "{table}"
    );
    // The byte comparison and our own decoder both refuse it.
    assert!(table.contains("274 PASS, 2 FAIL, 0 MISSING"), "{table}");
}

#[test]
fn a_malformed_results_file_is_an_error_naming_file_and_key() {
    let dir = emitted();
    edit(dir.path(), "hello.json", |r| {
        r["node_b_hello#version"] = Value::from(1);
        r["node_b_hello"] = Value::String("0ACD".into());
    });
    std::fs::write(dir.path().join("bundle.json"), "{\"results\": {").expect("write");
    let out = vectors(&[path(dir.path())]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bundle.json: not valid JSON"), "{err}");
    assert!(
        err.contains("hello.json: key \"node_b_hello#version\": found a number"),
        "{err}"
    );
    assert!(err.contains("Quote it"), "{err}");
    assert!(
        err.contains(
            "hello.json: key \"node_b_hello\": character 'A' at position 1 is not lower-case hex"
        ),
        "{err}"
    );
}

#[test]
fn an_unreadable_directory_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let gone = dir.path().join("no-such-dir");
    let out = vectors(&[path(&gone)]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read the results directory"), "{err}");
    assert!(err.contains("no-such-dir"), "{err}");
}

#[test]
fn an_unknown_key_is_reported_and_ignored() {
    let dir = emitted();
    edit(dir.path(), "envelope.json", |r| {
        r.insert("envelope.sequence".into(), Value::String("7".into()));
    });
    let out = vectors(&["--json", path(dir.path())]);
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("key \"envelope.sequence\" is not a case of envelope.json"),
        "{err}"
    );
    assert!(err.contains("did you mean \"envelope#sequence\""), "{err}");
}
