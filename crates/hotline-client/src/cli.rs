//! The `hotline` command line: its arguments, and the dispatch to each command.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};

use crate::commands::{self, Ctx};
use crate::demo;
use crate::error::{EXIT_TABLE, Failure};
use crate::{format, parse};

const AFTER_HELP: &str = "\
Credential: --credential FILE, else $HOTLINE_CREDENTIAL, else $XDG_CONFIG_HOME/hotline/credential
(or ~/.config/hotline/credential). It is secret (mode 0600). Make your keys with `hotline keygen`,
have your node's administrator issue the credential from the request (`hotlined operator add
--request`), then `hotline credential import`.";

/// Secure bilateral hotline between national CERTs: the operator client.
#[derive(Parser, Debug)]
#[command(
    name = "hotline",
    version,
    about,
    after_help = format!("{AFTER_HELP}\n\n{EXIT_TABLE}")
)]
struct Cli {
    /// Credential file [default: $HOTLINE_CREDENTIAL, else ~/.config/hotline/credential]
    #[arg(long, global = true, value_name = "FILE")]
    credential: Option<PathBuf>,
    /// The node's address, instead of the credential's node_address (0.0.0.0 / :: dial loopback)
    #[arg(long, global = true, value_name = "HOST:PORT")]
    node: Option<String>,
    /// How long to wait for the node to answer when connecting
    #[arg(long, global = true, value_name = "DURATION", default_value = "10s", value_parser = parse::duration)]
    connect_timeout: Duration,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send a message to a peer CERT, signed with your officer key; prints its id.
    Send(commands::send::SendArgs),
    /// List received messages, most urgent (FLASH) first.
    Inbox {
        /// Only messages nobody here has acknowledged yet
        #[arg(long)]
        unacknowledged: bool,
        /// Only messages from this peer (alias or node id)
        #[arg(long, value_name = "PEER")]
        from: Option<String>,
        /// At most this many messages (the newest; node default 100)
        #[arg(long, default_value_t = 0, hide_default_value = true)]
        limit: u32,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// List sent messages and their delivery state, most urgent first.
    Outbox {
        /// Only messages to this peer (alias or node id)
        #[arg(long, value_name = "PEER")]
        to: Option<String>,
        /// At most this many messages (the newest; node default 100)
        #[arg(long, default_value_t = 0, hide_default_value = true)]
        limit: u32,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Show a message, its receipts, and the check of every signature.
    Show {
        /// Message id (32 hex digits, or a unique prefix)
        id: String,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Acknowledge a received message in your name (signed with your officer key).
    Ack {
        /// Message id (32 hex digits, or a unique prefix)
        id: String,
        /// A note for the sender (at most 1024 bytes)
        #[arg(long, default_value = "")]
        note: String,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Withdraw a message you (or another officer here) sent that has not left the node yet:
    /// it is never sent, and the audit trail records who cancelled it. Refused once the
    /// message may have reached the peer.
    Cancel {
        /// Message id (32 hex digits, or a unique prefix)
        id: String,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// List a message's receipts with their signers, verified.
    Receipts {
        /// Message id (32 hex digits, or a unique prefix)
        id: String,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Show each link: up or down, since when, RTT, queue, overdue messages, gaps, TLS group.
    Status {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Follow the node's events live (received, delivered, acknowledged, link up/down…) until Ctrl-C.
    Watch {
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// List the installed peers (alias, name, node id, fingerprint, trust).
    Peers {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Show who the node says you are, and your credential.
    Whoami {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Write an evidence bundle (envelopes, receipts, bundles; no secret) to a file.
    Export {
        /// The file to write
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Only messages exchanged with this peer (alias or node id)
        #[arg(long, value_name = "PEER")]
        peer: Option<String>,
        /// Only messages created since TIME: RFC 3339 (2026-01-31, 2026-01-31T12:00:00Z) or a duration ago (7d)
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Overwrite FILE if it exists
        #[arg(long)]
        force: bool,
    },
    /// Check an evidence file offline: no node, no key needed (SPEC.md §15.7).
    Verify {
        /// The evidence file (`hotline export --out`)
        file: PathBuf,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
    },
    /// Make your officer keys on this machine (signing key and operator TLS key, in DIR, mode
    /// 0600) and the public request (DIR/request) to hand to your node's administrator.
    Keygen {
        /// Your name, as receipts will show it (1 to 128 bytes)
        #[arg(long)]
        name: String,
        /// The key directory to create (mode 0700; it must not exist, or be empty)
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Your credential: complete it from what the administrator issued.
    Credential {
        #[command(subcommand)]
        command: CredentialCommand,
    },
    /// Print a shell completion script (e.g. `hotline completions bash > /etc/bash_completion.d/hotline`).
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Start two nodes on loopback in a temporary directory, send a FLASH message from one to
    /// the other through the operator API, and show and verify both signed receipts.
    Demo {
        /// Keep the temporary directory (node keys, databases, credentials, logs) for inspection.
        #[arg(long)]
        keep: bool,
        /// The `hotlined` program to run [default: $HOTLINED, else the one beside `hotline`,
        /// else from PATH]
        #[arg(long, value_name = "FILE")]
        hotlined: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum CredentialCommand {
    /// Check that the issued credential (`hotlined operator add --request ... --out ISSUED`)
    /// certifies the keys of `hotline keygen`, and write the credential file (mode 0600) that
    /// every command reads.
    Import {
        /// The key directory `hotline keygen` made
        #[arg(long, value_name = "DIR")]
        keys: PathBuf,
        /// The issued file the administrator sent back
        #[arg(long, value_name = "FILE")]
        issued: PathBuf,
        /// Where to write the credential file [default: DIR/credential]; never overwritten
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

fn run(cli: Cli) -> Result<(), Failure> {
    let ctx = Ctx {
        credential: cli.credential,
        node: cli.node,
        connect_timeout: cli.connect_timeout,
        style: format::Style::stdout(),
    };
    let rt = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::general(format!("cannot start the runtime: {e}")))
    };
    use commands::{evidence, keys, messages, node, send};
    match cli.command {
        Command::Demo { keep, hotlined } => rt()?
            .block_on(demo::run(keep, hotlined))
            .map_err(|e| Failure::general(format!("demo failed: {e}"))),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "hotline",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::Verify { file, json } => evidence::verify(&ctx, &file, json),
        Command::Keygen { name, out } => keys::keygen(&name, &out),
        Command::Credential {
            command: CredentialCommand::Import { keys, issued, out },
        } => keys::import(&keys, &issued, out.as_deref()),
        Command::Send(args) => rt()?.block_on(send::run(&ctx, args)),
        Command::Inbox {
            unacknowledged,
            from,
            limit,
            json,
        } => rt()?.block_on(messages::list(
            &ctx,
            true,
            unacknowledged,
            from,
            limit,
            json,
        )),
        Command::Outbox { to, limit, json } => {
            rt()?.block_on(messages::list(&ctx, false, false, to, limit, json))
        }
        Command::Show { id, json } => rt()?.block_on(messages::show(&ctx, &id, json)),
        Command::Ack { id, note, json } => rt()?.block_on(messages::ack(&ctx, &id, &note, json)),
        Command::Cancel { id, json } => rt()?.block_on(messages::cancel(&ctx, &id, json)),
        Command::Receipts { id, json } => rt()?.block_on(messages::receipts(&ctx, &id, json)),
        Command::Status { json } => rt()?.block_on(node::status(&ctx, json)),
        Command::Watch { json } => rt()?.block_on(node::watch(&ctx, json)),
        Command::Peers { json } => rt()?.block_on(node::peers(&ctx, json)),
        Command::Whoami { json } => rt()?.block_on(node::whoami(&ctx, json)),
        Command::Export {
            out,
            peer,
            since,
            force,
        } => rt()?.block_on(evidence::export(&ctx, &out, peer, since, force)),
    }
}

/// Runs `hotline` with the process's arguments; the exit status to return.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let style = format::Style {
                colour: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            };
            eprintln!(
                "{} {}",
                style.paint("error:", format::Colour::Red),
                f.message
            );
            ExitCode::from(f.exit.code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_lists_the_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit status:"), "{help}");
        assert!(help.contains("HOTLINE_CREDENTIAL"));
    }
}
