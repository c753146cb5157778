//! `hotline demo`, run as a user runs it (README.md's first command), with this build's
//! `hotlined`.

use std::process::Command;

#[test]
fn demo_exits_zero_after_verifying_both_receipts_and_cleans_up() {
    let out = Command::new(env!("CARGO_BIN_EXE_hotline-e2e-client"))
        .arg("demo")
        .arg("--hotlined")
        .arg(env!("CARGO_BIN_EXE_hotline-e2e-daemon"))
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "key exchange X25519MLKEM768",
        "DELIVERED receipt from CERT-B",
        "ACKNOWLEDGED receipt back at CERT-A",
        "DELIVERED      ",
        "ACKNOWLEDGED   ",
        "both receipts verified",
    ] {
        assert!(
            stdout.contains(needle),
            "demo output lacks {needle:?}:\n{stdout}"
        );
    }
    // The temporary directory it names is gone.
    let dir = stdout
        .lines()
        .next()
        .and_then(|l| l.rsplit(" in ").next())
        .expect("first line names the directory");
    assert!(
        !std::path::Path::new(dir.trim()).exists(),
        "{dir} was not removed"
    );
}
