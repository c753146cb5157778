//! README.md lists every case of `run` with its SPEC section and expected outcome: the other
//! team reads the case list there.

use hotline_conformance::cases;
use hotline_conformance::ctx::Trust;

#[test]
fn readme_lists_every_case_as_the_runner_prints_it() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let all = cases::all(Trust::Ca);
    let mut missing = Vec::new();
    for c in &all {
        let row = format!(
            "| `{}` | {} | {} |",
            c.name,
            c.spec_section(),
            c.expected.replace('|', "\\|")
        );
        if !doc.contains(&row) {
            missing.push(row);
        }
    }
    assert!(
        missing.is_empty(),
        "README.md lacks the rows\n{}",
        missing.join("\n")
    );
    assert!(
        doc.contains(&format!("plays {} named", all.len())),
        "README.md gives another number of cases than {}",
        all.len()
    );
    let mut names: Vec<&str> = all.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), all.len(), "case names are unique");
}
