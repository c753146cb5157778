//! `hotlined`: the hotline node daemon.
//!
//! The daemon (QUIC links, SQLite store, delivery, operator API) is built on the sans-IO
//! `hotline-protocol` crate; until it lands this binary only reports its version and says so.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    let arg = std::env::args().nth(1);
    match arg.as_deref() {
        Some("--version" | "-V") => {
            println!(
                "hotlined {} (protocol version {})",
                env!("CARGO_PKG_VERSION"),
                hotline_protocol::PROTOCOL_VERSION
            );
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("hotlined: the node daemon is not built yet; only --version works.");
            eprintln!("Try `hotline demo` for the protocol end to end in one process.");
            ExitCode::from(2)
        }
    }
}
