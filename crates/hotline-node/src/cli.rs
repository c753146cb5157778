//! The `hotlined` command line: its arguments, and the dispatch to each command.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::commands;
use clap::{Parser, Subcommand, ValueEnum};

/// Secure bilateral hotline between national CERTs: node daemon.
#[derive(Parser, Debug)]
#[command(name = "hotlined", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a node directory: keys, certificate, configuration, database and bundle.
    Init {
        /// The node directory to create.
        #[arg(long)]
        dir: PathBuf,
        /// The node's name, shown to the peer (e.g. CERT-A).
        #[arg(long)]
        name: String,
        /// Where to listen, IP:PORT (UDP), e.g. 0.0.0.0:4433.
        #[arg(long)]
        listen: String,
        /// Install this TLS certificate (PEM, e.g. issued by your private CA) instead of
        /// generating a self-signed one.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key (PEM) of --tls-cert; copied into the node directory, mode 0600.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
    },
    /// Manage pinned peers.
    Peer {
        #[command(subcommand)]
        command: PeerCommand,
    },
    /// Run the node.
    Run {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// Serve Prometheus metrics on this HOST:PORT (TCP).
        #[arg(long)]
        metrics: Option<String>,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Manage operator credentials (for the `hotline` client).
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// Check configuration, keys and their permissions, peers and the database.
    Check {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum PeerCommand {
    /// Pin a peer from the bundle file it handed over.
    Add {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// The peer's bundle file.
        bundle: PathBuf,
        /// Where to reach it, HOST:PORT.
        #[arg(long)]
        address: String,
        /// Local alias (default: from the bundle's name).
        #[arg(long)]
        name: Option<String>,
        /// How to authenticate its TLS certificate: pinned (the bundle's key pin alone) or ca
        /// (also the private CA configured in hotlined.toml, with its CRL).
        #[arg(long, value_enum, default_value_t = Trust::Pinned)]
        trust: Trust,
    },
    /// List pinned peers.
    List {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Replace a peer's bundle (same node: new keys) and/or its address.
    Update {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// The peer's alias.
        alias: String,
        /// The peer's new bundle file (it must name the same node).
        #[arg(long)]
        bundle: Option<PathBuf>,
        /// Where to reach it now, HOST:PORT.
        #[arg(long)]
        address: Option<String>,
    },
    /// Unpin a peer.
    Remove {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// Its alias.
        alias: String,
    },
}

#[derive(Subcommand, Debug)]
enum OperatorCommand {
    /// Issue a credential file for an operator.
    Add {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// The operator's name, as receipts will show it.
        #[arg(long)]
        name: String,
        /// officer (reads, sends, acknowledges) or viewer (reads).
        #[arg(long, value_parser = ["officer", "viewer"])]
        role: String,
        /// Where to write the credential file (created mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// List issued credentials.
    List {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Revoke an operator's credential.
    Remove {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// The operator's name.
        name: String,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Trust {
    Pinned,
    Ca,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Runs `hotlined` with the process's arguments; the exit status to return.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init {
            dir,
            name,
            listen,
            tls_cert,
            tls_key,
        } => {
            let tls = match (&tls_cert, &tls_key) {
                (Some(cert), Some(key)) => Some(commands::TlsImport { cert, key }),
                _ => None,
            };
            commands::init_with_tls(&dir, &name, &listen, tls)
        }
        Command::Peer {
            command:
                PeerCommand::Add {
                    dir,
                    bundle,
                    address,
                    name,
                    trust,
                },
        } => {
            let trust = match trust {
                Trust::Pinned => crate::store::TrustMode::Pinned,
                Trust::Ca => crate::store::TrustMode::Ca,
            };
            commands::peer_add_with_trust(&dir, &bundle, &address, name.as_deref(), trust)
        }
        Command::Peer {
            command: PeerCommand::List { dir },
        } => commands::peer_list(&dir),
        Command::Peer {
            command: PeerCommand::Remove { dir, alias },
        } => commands::peer_remove(&dir, &alias),
        Command::Peer {
            command:
                PeerCommand::Update {
                    dir,
                    alias,
                    bundle,
                    address,
                },
        } => commands::peer_update(&dir, &alias, bundle.as_deref(), address.as_deref()),
        Command::Operator {
            command:
                OperatorCommand::Add {
                    dir,
                    name,
                    role,
                    out,
                },
        } => crate::operator::add(&dir, &name, &role, &out),
        Command::Operator {
            command: OperatorCommand::List { dir },
        } => crate::operator::list(&dir),
        Command::Operator {
            command: OperatorCommand::Remove { dir, name },
        } => crate::operator::remove(&dir, &name),
        Command::Check { dir } => {
            let problems = commands::check(&dir);
            for w in commands::expiry_warnings(&dir) {
                println!("warning: {w}");
            }
            if problems.is_empty() {
                println!("{}: no problems found", dir.display());
                return ExitCode::SUCCESS;
            }
            for p in &problems {
                println!("problem: {p}");
            }
            return ExitCode::from(1);
        }
        Command::Run {
            dir,
            metrics,
            log_format,
        } => {
            crate::daemon::init_logging(matches!(log_format, LogFormat::Json));
            crate::daemon::run(&dir, metrics.as_deref())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hotlined: {}", e.0);
            ExitCode::from(2)
        }
    }
}
