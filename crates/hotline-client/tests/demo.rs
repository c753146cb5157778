//! `hotline demo`, run as a user runs it.

use std::process::Command;

#[test]
fn demo_exits_zero_after_verifying_both_receipts() {
    let out = Command::new(env!("CARGO_BIN_EXE_hotline"))
        .arg("demo")
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "DELIVERED receipt",
        "ACKNOWLEDGED receipt",
        "DELIVERED    ",
        "ACKNOWLEDGED ",
        "both receipts verify",
    ] {
        assert!(
            stdout.contains(needle),
            "demo output lacks {needle:?}:\n{stdout}"
        );
    }
}

#[test]
fn demo_is_reproducible_for_a_seed() {
    let run = |seed: &str| {
        Command::new(env!("CARGO_BIN_EXE_hotline"))
            .args(["demo", "--seed", seed])
            .output()
            .expect("runs")
            .stdout
    };
    assert_eq!(run("7"), run("7"));
    assert_ne!(run("7"), run("8"));
}
