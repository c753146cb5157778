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
    /// The node's encryption keys: list them, or make a new one now (they also rotate by
    /// themselves, by `[keys]` in hotlined.toml).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Check configuration, keys and their permissions, peers and the database.
    Check {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Write a consistent copy of the node's database while it runs, and say how to restore.
    Backup {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// Where to write the copy (must not exist).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print a shell completion script (e.g. `hotlined completions bash >
    /// /etc/bash_completion.d/hotlined`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// List the encryption keys, their validity and state.
    List {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Make a new encryption key now (a running node announces it within seconds); with
    /// --tls, a new TLS key, which the running node announces to its peers and switches to
    /// once every peer holds it.
    Rotate {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// Rotate the TLS key instead (pinned mode, SPEC 3.6.1).
        #[arg(long)]
        tls: bool,
        /// With --tls: switch to the waiting next TLS key now, even if some peers do not hold
        /// it yet (they then need the new bundle file: `hotlined peer update`).
        #[arg(long, requires = "tls")]
        now: bool,
    },
    /// Revoke an officer's key: the credential is revoked here, and the peers are told that
    /// signatures by the key from --compromised-since on (or, without it, from now on) do not
    /// count.
    Revoke {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// The operator whose officer key is revoked.
        #[arg(long, value_name = "NAME")]
        officer: String,
        /// Since when the key is believed stolen: an RFC 3339 time (2026-01-31T12:00:00Z), a
        /// duration ago (3d, 12h), or `now`. Without it the key is retired in good order.
        #[arg(long, value_name = "WHEN")]
        compromised_since: Option<String>,
        /// Why, for the peer's administrators (at most 256 bytes).
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Renew the TLS certificate for the same key (its pin stays): self-signed, or the one
    /// your private CA issued with --tls-cert. A running node uses it within seconds.
    RenewTls {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// A certificate (PEM) the private CA issued for this node's TLS key.
        #[arg(long, value_name = "FILE")]
        tls_cert: Option<PathBuf>,
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
        /// Where to reach it, HOST:PORT. Without it this node never dials the peer: the peer
        /// dials in (it must have this node's address).
        #[arg(long)]
        address: Option<String>,
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
        /// One JSON array, for scripts.
        #[arg(long)]
        json: bool,
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
    /// Renew an operator's credential: the same keys, a new validity. Writes the issued file
    /// the operator imports with `hotline credential import`.
    Renew {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// The operator's name (see `hotlined operator list`).
        #[arg(long)]
        name: String,
        /// How many days the new credential is valid, 1 to 825.
        #[arg(long, value_name = "N", default_value_t = crate::operator::DEFAULT_VALID_DAYS)]
        valid_days: u32,
        /// Where to write the issued credential (public).
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue an operator credential: from the officer's key request (`hotline keygen` on
    /// their machine; the node never sees their secret keys), or, for viewers, with keys made
    /// here.
    #[command(group = clap::ArgGroup::new("from").required(true).args(["name", "request"]))]
    Add {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// The operator's key request (DIR/request of `hotline keygen`): issues the credential
        /// for the keys it names, with the name it carries, and writes --out, a public file to
        /// hand back.
        #[arg(long, value_name = "FILE")]
        request: Option<PathBuf>,
        /// Make the operator's keys here (old flow): the operator's name, as receipts will
        /// show it. Officers need --keys-on-node too.
        #[arg(long, conflicts_with = "request")]
        name: Option<String>,
        /// officer (reads, sends, acknowledges) or viewer (reads).
        #[arg(long, value_parser = ["officer", "viewer"])]
        role: String,
        /// With --request: how many days the credential is valid, 1 to 825 [default: 365].
        #[arg(long, value_name = "N")]
        valid_days: Option<u32>,
        /// With --name and --role officer: generate the officer's signing key on this host
        /// anyway (demos, tests). Whoever administers the node then holds it.
        #[arg(long, conflicts_with = "request")]
        keys_on_node: bool,
        /// Where to write: with --request, the issued credential (public, for the officer's
        /// `hotline credential import`); with --name, the credential file (secret, mode 0600).
        /// Never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// List issued credentials.
    List {
        /// The node directory.
        #[arg(long)]
        dir: PathBuf,
        /// One JSON array, for scripts.
        #[arg(long)]
        json: bool,
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
            commands::peer_add_with_trust(
                &dir,
                &bundle,
                address.as_deref().unwrap_or(""),
                name.as_deref(),
                trust,
            )
        }
        Command::Peer {
            command: PeerCommand::List { dir, json },
        } => crate::listing::peers(&dir, json),
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
                    request,
                    name,
                    role,
                    valid_days,
                    keys_on_node,
                    out,
                },
        } => match (request, name) {
            (Some(request), _) => crate::operator::add_from_request(
                &dir,
                &request,
                &role,
                valid_days.unwrap_or(crate::operator::DEFAULT_VALID_DAYS),
                &out,
            ),
            (None, Some(_)) if valid_days.is_some() => Err(commands::CommandError(
                "--valid-days applies to --request only (keys made here are valid one year)".into(),
            )),
            (None, Some(name)) if role == "officer" && !keys_on_node => {
                Err(crate::operator::officer_keys_on_node_refused(&dir, &name))
            }
            (None, Some(name)) => crate::operator::add(&dir, &name, &role, &out),
            // clap's group "from" requires one of the two.
            (None, None) => Err(commands::CommandError(
                "give --request FILE (or --name NAME)".into(),
            )),
        },
        Command::Operator {
            command: OperatorCommand::List { dir, json },
        } => crate::listing::operators(&dir, json),
        Command::Operator {
            command:
                OperatorCommand::Renew {
                    dir,
                    name,
                    valid_days,
                    out,
                },
        } => crate::operator_renew::renew(&dir, &name, valid_days, &out),
        Command::Operator {
            command: OperatorCommand::Remove { dir, name },
        } => crate::operator::remove(&dir, &name),
        Command::Keys {
            command: KeysCommand::List { dir },
        } => crate::keys::list(&dir),
        Command::Keys {
            command: KeysCommand::Rotate { dir, tls, now },
        } => {
            if tls {
                crate::keys::rotate_tls(&dir, now)
            } else {
                crate::keys::rotate(&dir)
            }
        }
        Command::Keys {
            command: KeysCommand::RenewTls { dir, tls_cert },
        } => crate::keys::renew_tls(&dir, tls_cert.as_deref()),
        Command::Keys {
            command:
                KeysCommand::Revoke {
                    dir,
                    officer,
                    compromised_since,
                    reason,
                },
        } => crate::revoke::revoke(&dir, &officer, compromised_since.as_deref(), &reason),
        Command::Backup { dir, out } => crate::backup::backup(&dir, &out),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "hotlined",
                &mut std::io::stdout(),
            );
            Ok(())
        }
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
