//! The `hotline-conformance` command line: the interop conformance runner (`run`) and the
//! test-vector checker (`vectors`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::ctx::{Ctx, Inputs, Trust};
use crate::{cases, report, suite, vectors};
use clap::{Parser, Subcommand};

/// Exit status when the run could not start: bad arguments or inputs, target unreachable.
const EXIT_SETUP: u8 = 2;

/// Interop conformance for hotline nodes: hostile and valid traffic against a node (`run`),
/// and the committed test vectors (`vectors`).
#[derive(Parser, Debug)]
#[command(name = "hotline-conformance", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the conformance cases against a running node.
    ///
    /// Exit status: 0 no case failed (skipped cases do not count, unless --fail-on-skip),
    /// 1 a case failed, 2 the run could not start.
    Run {
        /// The node under test, HOST:PORT (UDP).
        #[arg(long, required_unless_present = "list")]
        target: Option<String>,
        /// The target's peer bundle file (its identity, encryption keys and TLS pin).
        #[arg(long, required_unless_present = "list")]
        target_bundle: Option<PathBuf>,
        /// A node directory made by `hotlined init` whose bundle the target has pinned as a
        /// peer: the runner dials as that node.
        #[arg(long, required_unless_present = "list")]
        identity: Option<PathBuf>,
        /// The private CA the target trusts for the runner (ca.pem, ca.key, ca.crl.pem, as in
        /// certs/test-pki): the target is in private CA mode for the runner. Without it,
        /// pinned mode, and the revocation case is skipped.
        #[arg(long)]
        pki: Option<PathBuf>,
        /// Print the results as JSON on stdout (the table then goes to stderr).
        #[arg(long)]
        json: bool,
        /// Run only these cases (repeatable).
        #[arg(long = "case", value_name = "NAME")]
        only: Vec<String>,
        /// List the cases (for the trust mode that --pki selects) and exit.
        #[arg(long)]
        list: bool,
        /// Seconds the target gets for one step (a handshake, an answer) before silence
        /// counts as no answer.
        #[arg(long, default_value_t = 10)]
        step_timeout: u64,
        /// A skipped case (one that cannot run against the target's configuration, such as
        /// the revocation case in pinned mode) fails the run: exit status 1.
        #[arg(long)]
        fail_on_skip: bool,
        /// A shell command (run with `sh -c`) that makes the target queue one message to the
        /// runner's identity, e.g. `hotline send ... --to <the runner's alias>`; it may print
        /// the message id (32 hex digits). Cases that need the target to seal a new message
        /// during the run (the sequence floor of SPEC.md §10.1, the use of a key the runner
        /// announced in a KeyUpdate, §4.3.5) are skipped without it.
        #[arg(long, value_name = "CMD")]
        target_send: Option<String>,
        /// A shell command (run with `sh -c`) that makes the target make a new encryption key
        /// while it runs, e.g. `hotlined keys rotate --dir <the target's directory>`. The case
        /// that needs the target to announce a new key on a live link and still open envelopes
        /// sealed to its previous one (SPEC.md §4.3.4, §4.3.5) is skipped without it.
        #[arg(long, value_name = "CMD")]
        target_rotate: Option<String>,
    },
    /// Check another implementation's outputs for the committed test vectors.
    Vectors {
        /// The directory with the other implementation's results files.
        dir: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Write this implementation's own results into DIR instead of checking it.
        #[arg(long)]
        emit: bool,
    },
}

/// Runs `hotline-conformance` with the process's arguments; the exit status to return.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Vectors { dir, json, emit } => {
            vectors::run_args(&vectors::VectorsArgs { dir, json, emit })
        }
        Command::Run {
            target,
            target_bundle,
            identity,
            pki,
            json,
            only,
            list,
            step_timeout,
            fail_on_skip,
            target_send,
            target_rotate,
        } => {
            let trust = if pki.is_some() {
                Trust::Ca
            } else {
                Trust::Pinned
            };
            let mut all = cases::all(trust);
            if !only.is_empty() {
                let unknown: Vec<&String> = only
                    .iter()
                    .filter(|n| !all.iter().any(|c| c.name == n.as_str()))
                    .collect();
                if !unknown.is_empty() {
                    eprintln!(
                        "hotline-conformance: no case named {unknown:?}; `run --list` shows them"
                    );
                    return ExitCode::from(EXIT_SETUP);
                }
                all.retain(|c| only.iter().any(|n| n == c.name));
            }
            if list {
                print!("{}", report::list(&all));
                return ExitCode::SUCCESS;
            }
            let (Some(target), Some(target_bundle), Some(identity)) =
                (target, target_bundle, identity)
            else {
                eprintln!(
                    "hotline-conformance: --target, --target-bundle and --identity are required"
                );
                return ExitCode::from(EXIT_SETUP);
            };
            let inputs = Inputs {
                target,
                target_bundle,
                identity,
                pki,
                step: Duration::from_secs(step_timeout.max(1)),
                target_send,
            };
            run(&inputs, target_rotate, &all, json, fail_on_skip)
        }
    }
}

fn run(
    inputs: &Inputs,
    target_rotate: Option<String>,
    cases: &[suite::Case],
    json: bool,
    fail_on_skip: bool,
) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hotline-conformance: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_SETUP);
        }
    };
    rt.block_on(async {
        let t0 = Instant::now();
        let mut cx = match Ctx::load(inputs).await {
            Ok(cx) => cx,
            Err(e) => {
                eprintln!("hotline-conformance: {e}");
                return ExitCode::from(EXIT_SETUP);
            }
        };
        cx.target_rotate = target_rotate;
        let received_through = match suite::probe(&cx).await {
            Ok(n) => n,
            Err(e) => {
                eprintln!("hotline-conformance: {e}");
                return ExitCode::from(EXIT_SETUP);
            }
        };
        if let Ok(mut s) = cx.seq.lock() {
            *s = crate::ctx::Sequencer::starting_after(received_through);
        }
        eprintln!(
            "hotline-conformance: {} cases against {} ({}) at {}, as {} ({} mode); sequence \
             numbers continue after {received_through}",
            cases.len(),
            cx.target.name,
            cx.target.id.fingerprint(),
            cx.target.addr,
            cx.me.name,
            match cx.trust {
                Trust::Pinned => "pinned",
                Trust::Ca => "private CA",
            }
        );
        let total = cases.len();
        let results = suite::run(&cx, cases, |i, r| {
            eprintln!(
                "[{:>3}/{total}] {} {} ({:.1} s)",
                i + 1,
                r.status.label(),
                r.name,
                r.duration_ms as f64 / 1000.0
            );
        })
        .await;
        cx.endpoint.close(quinn::VarInt::from_u32(0), b"run done");
        let table = report::table(&results, t0.elapsed(), fail_on_skip);
        if json {
            eprint!("{table}");
            println!("{}", report::json(&results));
        } else {
            print!("{table}");
        }
        // Let the last CONNECTION_CLOSE frames leave before the process ends.
        let _ = tokio::time::timeout(Duration::from_secs(2), cx.endpoint.wait_idle()).await;
        ExitCode::from(report::exit_status(&results, fail_on_skip))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail_on_skip(args: &[&str]) -> bool {
        let mut argv = vec!["hotline-conformance", "run", "--list"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Run { fail_on_skip, .. } => fail_on_skip,
            Command::Vectors { .. } => panic!("not run"),
        }
    }

    #[test]
    fn fail_on_skip_is_off_unless_given() {
        assert!(!fail_on_skip(&[]));
        assert!(fail_on_skip(&["--fail-on-skip"]));
        assert!(
            Cli::try_parse_from(["hotline-conformance", "vectors", "d", "--fail-on-skip"]).is_err(),
            "a flag of `run` only"
        );
    }

    #[test]
    fn target_rotate_takes_one_shell_command() {
        let argv = [
            "hotline-conformance",
            "run",
            "--list",
            "--target-rotate",
            "hotlined keys rotate --dir 'a b'",
        ];
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Run {
                target_rotate,
                target_send,
                ..
            } => {
                assert_eq!(
                    target_rotate.as_deref(),
                    Some("hotlined keys rotate --dir 'a b'")
                );
                assert_eq!(target_send, None);
            }
            Command::Vectors { .. } => panic!("not run"),
        }
    }

    #[test]
    fn target_send_takes_one_shell_command() {
        let argv = [
            "hotline-conformance",
            "run",
            "--list",
            "--target-send",
            "hotline send --to runner --subject 'a b'",
        ];
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Run { target_send, .. } => assert_eq!(
                target_send.as_deref(),
                Some("hotline send --to runner --subject 'a b'")
            ),
            Command::Vectors { .. } => panic!("not run"),
        }
    }
}
