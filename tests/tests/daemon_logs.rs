//! `hotlined`'s log, written to a pipe (a file, journald) rather than a terminal, carries no
//! ANSI colour codes (issue 16, item 3).
#![allow(clippy::unwrap_used)]

mod cli_common;
use cli_common as common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_log_has_no_colour_codes_when_it_is_not_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, _b) = common::pinned_pair(tmp.path());
    let mut child = Command::new(env!("CARGO_BIN_EXE_hotline-e2e-daemon"))
        .args(["run", "--dir", a.dir.to_str().unwrap()])
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = err.read_to_end(&mut all);
        all
    });
    // Long enough for the start-up lines ("node running", the link's first attempts).
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = reader.join().unwrap();
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("node running"), "{text}");
    assert!(
        !log.contains(&0x1b),
        "colour codes in a piped log: {text:?}"
    );
}
