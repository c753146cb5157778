//! Checks that span the workspace.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The package names in `cargo tree -p PACKAGE -e EDGES` (one per line, no prefix).
fn tree(package: &str, edges: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .current_dir(root())
        .args([
            "tree",
            "-p",
            package,
            "-e",
            edges,
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
        tree.contains(package),
        "unexpected cargo tree output: {tree}"
    );
    tree.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// The protocol crate must stay sans-IO: no async runtime, QUIC, TLS or database in its
/// normal dependency tree (SPEC.md's conformance relies on a deterministic core).
#[test]
fn protocol_crate_has_no_io_dependencies() {
    let tree = tree("hotline-protocol", "normal");
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
        assert!(
            !tree.iter().any(|p| p == banned),
            "hotline-protocol depends on {banned}: {tree:?}"
        );
    }
}

/// Layers point one way: protocol, then transport, then the daemon and the operator client side
/// by side. The client reaches the node only through the operator API, and the conformance
/// runner judges any implementation, so neither links the daemon (nor its database), not even
/// for their tests; the transport layer links neither program.
#[test]
fn layers_point_one_way() {
    for (package, banned) in [
        (
            "hotline-transport",
            &["hotline-node", "hotline-client", "rusqlite"][..],
        ),
        (
            "hotline-client",
            &["hotline-node", "rusqlite", "libsqlite3-sys"][..],
        ),
        (
            "hotline-conformance",
            &["hotline-node", "hotline-client", "rusqlite"][..],
        ),
    ] {
        // Every edge kind: normal, build and dev dependencies.
        let tree = tree(package, "normal,build,dev");
        for b in banned {
            assert!(
                !tree.iter().any(|p| p == b),
                "{package} depends on {b}: {tree:?}"
            );
        }
    }
}

/// Every file under `crates/*/src` is at most 700 lines (STYLE.md: files that each do one job).
#[test]
fn no_source_file_is_over_700_lines() {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for krate in std::fs::read_dir(root().join("crates")).expect("crates/") {
        let src = krate.expect("entry").path().join("src");
        if src.is_dir() {
            walk(&src, &mut files);
        }
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).expect("text").lines().count();
            (n > 700).then(|| format!("{} ({n} lines)", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over 700 lines: {long:?}");
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
