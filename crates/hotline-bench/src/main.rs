//! `hotline-bench`: throughput, latency, CPU and memory of two real `hotlined` processes on
//! loopback, driven through the operator API, against the transport and crypto floors measured
//! in the same run. `hotline-bench backlog` measures a large outbox: queueing it, restarting
//! with it and draining it. See README.md.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod backlog;
mod floor;
mod load;
mod pipeline;
mod procfs;
mod setup;
mod stats;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

/// Something failed; the message says what.
#[derive(Debug)]
pub struct Error(pub String);

/// Throughput, latency, CPU and memory of two hotline nodes on loopback, through the operator
/// API, compared with the transport and crypto floors of the same build (release builds only).
#[derive(Parser, Debug)]
#[command(
    name = "hotline-bench",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(flatten)]
    pipeline: PipelineArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Debug)]
struct PipelineArgs {
    /// Messages to send (per direction)
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    messages: u64,
    /// Bytes of message text (the body's text field)
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Messages in flight per direction: sent and not yet DELIVERED
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    inflight: u64,
    /// Also send N messages from B to A at the same time
    #[arg(long)]
    both_ways: bool,
    #[command(flatten)]
    common: Common,
    /// Do not measure the transport and crypto floors
    #[arg(long)]
    skip_floors: bool,
}

#[derive(Args, Debug)]
struct Common {
    /// Print one JSON object instead of the text report
    #[arg(long)]
    json: bool,
    /// Keep the temporary directory (node directories, logs, credentials)
    #[arg(long)]
    keep_dir: bool,
    /// Keep the nodes' default rate limit (SPEC.md §13.2: 200 envelopes/s, burst 1000)
    /// instead of raising it out of the way
    #[arg(long)]
    spec_rate_limit: bool,
    /// Check with Show at most this many messages' receipts per direction (an even sample)
    #[arg(long, default_value_t = 20_000)]
    verify_max: usize,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Queue N messages at A while B is down, restart A with them, then start B and drain
    Backlog(BacklogArgs),
    /// Run a node (the code of `hotlined run --dir DIR`); used by the benchmark itself
    #[command(hide = true)]
    Node {
        /// The node directory
        dir: PathBuf,
    },
}

#[derive(Args, Debug)]
struct BacklogArgs {
    /// Messages to queue (issue 6's target is 1000000)
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    messages: u64,
    /// Bytes of message text
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Send requests outstanding while queueing
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    inflight: u64,
    #[command(flatten)]
    common: Common,
}

/// The build's code-generation facts that move the figures.
pub struct Build {
    /// `available_parallelism()`.
    pub cores: usize,
    /// Target features this binary was compiled to use.
    pub features: Vec<&'static str>,
}

impl Build {
    fn detect() -> Self {
        let mut features = Vec::new();
        macro_rules! feature {
            ($($f:tt),*) => {$(
                if cfg!(target_feature = $f) {
                    features.push($f);
                }
            )*};
        }
        feature!(
            "sse4.2",
            "avx",
            "avx2",
            "bmi2",
            "adx",
            "avx512f",
            "avx512ifma",
            "sha",
            "aes"
        );
        Build {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            features,
        }
    }

    /// Whether this looks like a `-C target-cpu=native` (or otherwise CPU-specific) build: a
    /// generic x86-64 build enables none of AVX2, BMI2 or ADX.
    fn cpu_specific(&self) -> bool {
        ["avx2", "bmi2", "adx"]
            .iter()
            .any(|f| self.features.contains(f))
    }

    fn summary(&self) -> String {
        let kind = if self.cpu_specific() {
            "CPU-specific (target-cpu=native or similar)"
        } else {
            "generic (no target-cpu)"
        };
        if self.features.is_empty() {
            format!("release, {kind}")
        } else {
            format!("release, {kind}: {}", self.features.join(" "))
        }
    }

    /// The JSON form.
    pub fn json(&self) -> Value {
        json!({
            "profile": "release",
            "target_cpu_native": self.cpu_specific(),
            "target_features": self.features,
            "arch": std::env::consts::ARCH,
            "summary": self.summary(),
        })
    }
}

/// The run's temporary directory, removed at the end unless kept.
pub struct Workdir {
    temp: Option<tempfile::TempDir>,
    kept: Option<PathBuf>,
}

impl Workdir {
    fn new(keep: bool) -> Result<Self, Error> {
        let temp = tempfile::Builder::new()
            .prefix("hotline-bench-")
            .tempdir()
            .map_err(|e| Error(format!("cannot create a temporary directory: {e}")))?;
        Ok(if keep {
            Workdir {
                temp: None,
                kept: Some(temp.keep()),
            }
        } else {
            Workdir {
                temp: Some(temp),
                kept: None,
            }
        })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        match (&self.temp, &self.kept) {
            (Some(t), _) => t.path(),
            (None, Some(k)) => k,
            (None, None) => Path::new("."),
        }
    }

    /// The path, if it is kept after the run.
    pub fn kept(&self) -> Option<String> {
        self.kept.as_ref().map(|p| p.display().to_string())
    }
}

/// The benchmark's own runtime: current-thread, like the node's.
pub fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error(format!("cannot start the runtime: {e}")))
}

/// Refuses to measure a debug build: its figures mean nothing (quinn#1390).
const DEBUG_REFUSAL: &str = "hotline-bench measures release builds only; a debug build's \
     figures mean nothing. Use: cargo run --release --locked -p hotline-bench -- ...";

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cfg!(debug_assertions) {
        eprintln!("hotline-bench: {DEBUG_REFUSAL}");
        return ExitCode::from(2);
    }
    if let Some(Command::Node { dir }) = &cli.command {
        hotline_node::daemon::init_logging(false);
        return match hotline_node::daemon::run(dir, None) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hotline-bench node: {}", e.0);
                ExitCode::from(2)
            }
        };
    }
    let build = Build::detect();
    let say = |s: &str| eprintln!("hotline-bench: {s}");
    let as_usize = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let keep_dir = match &cli.command {
        Some(Command::Backlog(a)) => a.common.keep_dir,
        _ => cli.pipeline.common.keep_dir,
    };
    let (json, result) = match cli.command {
        Some(Command::Backlog(a)) => (
            a.common.json,
            backlog::run(
                &backlog::Options {
                    messages: as_usize(a.messages),
                    size: a.size,
                    inflight: as_usize(a.inflight),
                    spec_rate_limit: a.common.spec_rate_limit,
                    keep_dir: a.common.keep_dir,
                    verify_max: a.common.verify_max,
                },
                &build,
                &say,
            )
            .map(|v| {
                let text = backlog::text(&v);
                (v, text)
            }),
        ),
        Some(Command::Node { .. }) => return ExitCode::SUCCESS,
        None => {
            let p = cli.pipeline;
            (
                p.common.json,
                pipeline::run(
                    &pipeline::Options {
                        messages: as_usize(p.messages),
                        size: p.size,
                        inflight: as_usize(p.inflight),
                        both_ways: p.both_ways,
                        skip_floors: p.skip_floors,
                        spec_rate_limit: p.common.spec_rate_limit,
                        keep_dir: p.common.keep_dir,
                        verify_max: p.common.verify_max,
                    },
                    &build,
                    &say,
                )
                .map(|v| {
                    let text = pipeline::text(&v);
                    (v, text)
                }),
            )
        }
    };
    match result {
        Ok((v, text)) => {
            let out = if json { format!("{v}\n") } else { text };
            let _ = std::io::stdout().write_all(out.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hotline-bench: FAILED: {}", e.0);
            if !keep_dir {
                eprintln!("hotline-bench: run again with --keep-dir to keep the nodes' logs");
            }
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_the_acceptance_parameters() {
        let cli = Cli::try_parse_from(["hotline-bench"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(
            (
                cli.pipeline.messages,
                cli.pipeline.size,
                cli.pipeline.inflight
            ),
            (20_000, 1024, 64)
        );
        assert!(!cli.pipeline.both_ways && !cli.pipeline.common.json);
        let cli =
            Cli::try_parse_from(["hotline-bench", "backlog", "--messages", "20000", "--json"])
                .unwrap();
        let Some(Command::Backlog(b)) = cli.command else {
            panic!("not backlog");
        };
        assert_eq!((b.messages, b.size), (20_000, 1024));
        assert!(b.common.json);
    }

    #[test]
    fn zero_messages_or_zero_in_flight_are_refused() {
        assert!(Cli::try_parse_from(["hotline-bench", "--messages", "0"]).is_err());
        assert!(Cli::try_parse_from(["hotline-bench", "--inflight", "0"]).is_err());
    }
}
