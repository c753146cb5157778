//! A debug build of hotline-bench refuses to measure, and says how to build one that does.

use std::process::Command;

#[test]
fn a_debug_build_refuses_to_run_and_names_the_release_command() {
    if !cfg!(debug_assertions) {
        // A release build would run the whole benchmark here: nothing to check quickly.
        return;
    }
    for args in [
        &["--messages", "10"][..],
        &["backlog", "--messages", "10"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_hotline-bench"))
            .args(args)
            .output()
            .expect("run hotline-bench");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("cargo run --release --locked -p hotline-bench -- "),
            "{err}"
        );
        assert!(out.stdout.is_empty());
    }
}
