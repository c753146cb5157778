//! VECTORS.md documents every case and every independent check that `vectors` reports, with
//! the right count per file: the other team implements the format from that document alone.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

fn vectors(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hotline-conformance"))
        .arg("vectors")
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn vectors_md_lists_every_case_and_check() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/VECTORS.md"))
        .expect("VECTORS.md");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_str().expect("UTF-8");
    assert!(vectors(&["--emit", path]).status.success());
    let out = vectors(&["--json", path]);
    assert!(out.status.success());
    let rows: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let mut per_file: BTreeMap<String, usize> = BTreeMap::new();
    let mut undocumented = Vec::new();
    for r in rows.as_array().expect("list") {
        let (file, name) = (
            r["file"].as_str().expect("file"),
            r["name"].as_str().expect("name"),
        );
        if !name.starts_with("verify:") {
            *per_file.entry(file.to_owned()).or_default() += 1;
        }
        // Negative cases are the names of negative.json, documented there.
        if file != "negative.json" && !doc.contains(&format!("`{name}`")) {
            undocumented.push(format!("{file} {name}"));
        }
    }
    assert_eq!(undocumented, Vec::<String>::new(), "not in VECTORS.md");
    for (file, n) in per_file {
        let heading = format!("### `{file}` ({n} cases)");
        assert!(
            doc.contains(&heading),
            "VECTORS.md lacks the heading {heading:?}"
        );
    }
}
