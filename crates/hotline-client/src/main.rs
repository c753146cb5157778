//! `hotline`: the duty officers' command-line client.
//!
//! Today it offers `demo`, which runs the whole protocol between two nodes inside one process
//! over the deterministic simulated link of `hotline_protocol::sim`. The operator commands
//! (send, inbox, ack, receipts, status, export, verify) arrive with the node daemon's operator
//! API.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;

/// Secure bilateral hotline between national CERTs: operator client.
#[derive(Parser, Debug)]
#[command(name = "hotline", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run two nodes, send a FLASH message, show and verify both signed receipts.
    Demo {
        /// Seed for the simulated link and keys (the demo is reproducible).
        #[arg(long, default_value_t = 2026)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo { seed } => match demo::run(seed) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("demo failed: {e}");
                ExitCode::from(1)
            }
        },
    }
}
