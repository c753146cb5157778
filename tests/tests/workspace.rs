//! Checks that span the workspace.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The protocol crate must stay sans-IO: no async runtime, QUIC, TLS or database in its
/// normal dependency tree (SPEC.md's conformance relies on a deterministic core).
#[test]
fn protocol_crate_has_no_io_dependencies() {
    let out = Command::new(env!("CARGO"))
        .current_dir(root())
        .args([
            "tree",
            "-p",
            "hotline-protocol",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--locked",
            "--offline",
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        tree.contains("hotline-protocol"),
        "unexpected cargo tree output: {tree}"
    );
    for banned in [
        "tokio",
        "quinn",
        "quinn-proto",
        "rustls",
        "rusqlite",
        "libsqlite3-sys",
        "mio",
        "socket2",
    ] {
        let found = tree
            .lines()
            .any(|l| l.split_whitespace().next() == Some(banned));
        assert!(!found, "hotline-protocol depends on {banned}:\n{tree}");
    }
}

/// Every proto file the build compiles is described in SPEC.md.
#[test]
fn spec_names_every_wire_message() {
    let proto = std::fs::read_to_string(root().join("proto/hotline/v1/wire.proto")).expect("proto");
    let spec = std::fs::read_to_string(root().join("SPEC.md")).expect("SPEC.md");
    let missing: Vec<&str> = proto
        .lines()
        .filter_map(|l| l.strip_prefix("message "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| !spec.contains(name))
        .collect();
    assert!(missing.is_empty(), "SPEC.md does not mention: {missing:?}");
}
