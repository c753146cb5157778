//! `hotline send`: build the message, sign it with the operator's key, hand it to the node, and
//! optionally wait for the peer's signed receipt.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Args;
use hotline_protocol::NodeId;
use hotline_protocol::content::{ContentError, Draft, Incident, Indicator, Precedence, Tlp};
use hotline_protocol::envelope::{MAX_CONTENT_LEN, MAX_ENVELOPE_LEN};
use hotline_protocol::wire;
use serde_json::json;

use super::{Ctx, find_peer, now_ms, require_officer};
use crate::client::Client;
use crate::error::{Exit, Failure, Result};
use crate::format::{clean, hex, second};
use crate::parse;
use crate::verify::{self, ReceiptReport};

/// `hotline send`.
#[derive(Args, Debug)]
pub struct SendArgs {
    /// The peer: its alias or node id (`hotline peers` lists them)
    #[arg(long, value_name = "PEER")]
    to: String,
    /// flash, immediate, priority or routine
    #[arg(long, value_parser = parse::precedence)]
    precedence: Precedence,
    /// Subject line (1..=256 bytes)
    #[arg(long)]
    subject: String,
    /// Message text [default: standard input, when it is not a terminal]
    #[arg(long, conflicts_with = "body_file")]
    body: Option<String>,
    /// Read the message text from FILE
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
    /// Send even if the text is empty or only white space (refused otherwise: a command that
    /// failed before the pipe must not send an empty FLASH)
    #[arg(long)]
    allow_empty: bool,
    /// clear, green, amber, amber+strict or red
    #[arg(long, default_value = "amber", value_parser = parse::tlp)]
    tlp: Tlp,
    /// The message this one answers (32 hex digits)
    #[arg(long, value_name = "ID", value_parser = parse::full_id)]
    reply_to: Option<[u8; 16]>,
    /// Thread id (32 hex digits)
    #[arg(long, value_name = "ID", value_parser = parse::full_id)]
    thread: Option<[u8; 16]>,
    /// Your incident identifier
    #[arg(long, value_name = "ID")]
    incident: Option<String>,
    /// Incident severity: low, medium, high or critical
    #[arg(long, value_parser = parse::severity)]
    severity: Option<i32>,
    /// Incident category (e.g. a taxonomy term)
    #[arg(long)]
    category: Option<String>,
    /// An indicator, KIND:VALUE (e.g. domain:evil.example); repeatable
    #[arg(long, value_name = "KIND:VALUE")]
    indicator: Vec<String>,
    /// Language of the text (BCP 47, e.g. en)
    #[arg(long, default_value = "")]
    language: String,
    /// Wait until the peer's DELIVERED receipt arrives
    #[arg(long)]
    wait: bool,
    /// Wait until a duty officer of the peer acknowledges (ACKNOWLEDGED receipt)
    #[arg(long)]
    wait_ack: bool,
    /// How long to wait with --wait / --wait-ack (e.g. 30s, 5m)
    #[arg(long, default_value = "60s", value_parser = parse::duration)]
    timeout: Duration,
    /// Machine-readable output
    #[arg(long)]
    json: bool,
}

const NO_BODY: &str = "no message text: give --body TEXT or --body-file FILE, or pipe it in (echo TEXT | hotline send …)";

/// The message text: `--body`, `--body-file`, or standard input when it is not a terminal.
/// Empty or white-space-only text is refused unless `--allow-empty`.
fn body(args: &SendArgs) -> Result<String> {
    let (text, from) = read_body(args)?;
    if text.trim().is_empty() && !args.allow_empty {
        return Err(Failure::usage(format!(
            "the message text from {from} is empty{}; nothing was sent (give --allow-empty to \
             send an empty text on purpose)",
            if from == "standard input" {
                " (did the command before the pipe fail?)"
            } else {
                ""
            }
        )));
    }
    Ok(text)
}

/// The message text and where it came from.
fn read_body(args: &SendArgs) -> Result<(String, String)> {
    let limit = MAX_ENVELOPE_LEN as u64;
    let (text, from) = if let Some(b) = &args.body {
        return Ok((b.clone(), "--body".to_owned()));
    } else if let Some(f) = &args.body_file {
        let mut buf = Vec::new();
        std::fs::File::open(f)
            .and_then(|file| file.take(limit + 1).read_to_end(&mut buf))
            .map_err(|e| {
                Failure::general(format!("cannot read --body-file {}: {e}", f.display()))
            })?;
        (buf, f.display().to_string())
    } else {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            return Err(Failure::usage(NO_BODY));
        }
        let mut buf = Vec::new();
        stdin
            .lock()
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(|e| Failure::general(format!("cannot read standard input: {e}")))?;
        (buf, "standard input".to_owned())
    };
    if text.len() as u64 > limit {
        return Err(Failure::usage(format!(
            "the text from {from} is over 1 MiB, too large for one message"
        )));
    }
    let text = String::from_utf8(text)
        .map_err(|_| Failure::usage(format!("the text from {from} is not UTF-8")))?;
    Ok((text, from))
}

fn draft(args: &SendArgs, text: String) -> Result<Draft> {
    let indicators = args
        .indicator
        .iter()
        .map(|i| {
            i.split_once(':')
                .filter(|(k, v)| !k.is_empty() && !v.is_empty())
                .map(|(k, v)| Indicator {
                    kind: k.to_owned(),
                    value: v.to_owned(),
                })
                .ok_or_else(|| {
                    Failure::usage(format!(
                        "--indicator {i:?}: write KIND:VALUE, e.g. domain:evil.example"
                    ))
                })
        })
        .collect::<Result<Vec<_>>>()?;
    let has_incident = args.incident.is_some()
        || args.severity.is_some()
        || args.category.is_some()
        || !indicators.is_empty();
    Ok(Draft {
        subject: args.subject.clone(),
        text,
        language: args.language.clone(),
        incident: has_incident.then(|| Incident {
            incident_id: args.incident.clone().unwrap_or_default(),
            severity: args.severity.unwrap_or(0),
            category: args.category.clone().unwrap_or_default(),
            indicators,
        }),
        reply_to: args.reply_to,
        thread_id: args.thread,
    })
}

/// `hotline send`.
pub async fn run(ctx: &Ctx, args: SendArgs) -> Result<()> {
    let text = body(&args)?;
    let draft = draft(&args, text)?;
    let cred = ctx.load()?;
    require_officer(&cred, "sending")?;
    let client = ctx.connect(&cred).await?;
    let peer = find_peer(&client, &args.to).await?;
    let peer_id: NodeId = peer.node.parse().map_err(|e| {
        Failure::general(format!(
            "the node lists peer {} with an invalid node id: {e}",
            clean(&peer.alias)
        ))
    })?;
    let mut id = [0u8; 16];
    getrandom::fill(&mut id)
        .map_err(|e| Failure::general(format!("no system randomness for the message id: {e}")))?;
    // Version 2 officer signatures bind the credential, precedence and TLP (SPEC.md §7.5); a
    // peer that speaks only version 1 (or whose link has not been up this run) gets version 1.
    let signed = if peer.version >= hotline_protocol::PROTOCOL_VERSION_2 {
        draft.sign_marked(
            &id,
            &peer_id,
            &cred.officer,
            now_ms(),
            args.precedence,
            args.tlp,
        )
    } else {
        draft.sign(&id, &peer_id, &cred.officer, now_ms())
    };
    let content = signed.map_err(|e| match e {
        ContentError::Officer(_) => Failure::new(
            Exit::Credential,
            "your credential does not allow sending now (not yet valid, or expired); ask for a new one",
        ),
        e => Failure::usage(format!("cannot build the message: {e}")),
    })?;
    if content.as_bytes().len() > MAX_CONTENT_LEN {
        return Err(Failure::usage(format!(
            "the signed message is {} bytes; at most {MAX_CONTENT_LEN} fit in one envelope \
             (shorten the text or the indicators); nothing was sent",
            content.as_bytes().len()
        )));
    }
    let resp = client
        .send(wire::SendRequest {
            to: peer.alias.clone(),
            message_id: id.to_vec().into(),
            precedence: parse::precedence_wire(args.precedence),
            tlp: parse::tlp_wire(args.tlp),
            content: content.as_bytes().to_vec().into(),
        })
        .await?;
    if !args.json {
        crate::format::emit(&format!("{}\n", hex(&id)));
    }
    let want = match (args.wait_ack, args.wait) {
        (true, _) => Some("ACKNOWLEDGED"),
        (false, true) => Some("DELIVERED"),
        _ => None,
    };
    let waited = match want {
        Some(want) => Some(wait(&client, &id, want, args.timeout, args.json).await),
        None => None,
    };
    client.close().await;
    let receipt = match waited {
        Some(Err(f)) => {
            if args.json {
                crate::format::emit_json(&json!({
                    "message_id": hex(&id), "sequence": resp.sequence, "peer": peer.alias,
                    "error": f.message, "exit": f.exit.code(),
                }));
            }
            return Err(f);
        }
        Some(Ok(r)) => Some(r),
        None => None,
    };
    if args.json {
        crate::format::emit_json(&json!({
            "message_id": hex(&id),
            "sequence": resp.sequence,
            "peer": peer.alias,
            "receipt": receipt,
        }));
    }
    Ok(())
}

fn describe(r: &ReceiptReport) -> String {
    let when = r.time_ms.map(second).unwrap_or_default();
    let by = r.signer_fingerprint.clone().unwrap_or_default();
    match (r.kind, &r.officer) {
        (Some("ACKNOWLEDGED"), Some(o)) => format!(
            "ACKNOWLEDGED by duty officer {o:?} at {}; note: {:?} (receipt signed by node {by})",
            r.ack_time_ms.map(second).unwrap_or_default(),
            r.note.clone().unwrap_or_default()
        ),
        (Some(k), _) => format!("{k} at {when} (receipt signed by node {by})"),
        (None, _) => "no receipt".into(),
    }
}

/// Polls Show every 250 ms until the message reaches `want`; a spinner on a terminal.
async fn wait(
    client: &Client,
    id: &[u8; 16],
    want: &str,
    timeout: Duration,
    quiet: bool,
) -> Result<ReceiptReport> {
    let start = Instant::now();
    let spin = std::io::stderr().is_terminal() && !quiet;
    let frames = ['|', '/', '-', '\\'];
    let mut tick = 0usize;
    let clear = || {
        if spin {
            eprint!("\r\x1b[K");
        }
    };
    loop {
        let show = client
            .show(wire::ShowRequest {
                message_id: id.to_vec().into(),
            })
            .await?;
        let state = show
            .summary
            .as_ref()
            .map(|s| s.state.clone())
            .unwrap_or_default();
        if state == "cancelled" {
            clear();
            return Err(Failure::general(format!(
                "message {} was cancelled by an officer before it was sent; it will never be \
                 delivered",
                data_encoding::HEXLOWER.encode(id)
            )));
        }
        let done = match state.as_str() {
            "acknowledged" => true,
            "delivered" => want == "DELIVERED",
            "rejected" => true,
            _ => false,
        };
        if done {
            clear();
            let (report, _) = verify::check_message(&show, id, now_ms());
            let find = |k: &str| {
                report
                    .receipts
                    .iter()
                    .find(|r| r.valid && r.kind == Some(k))
                    .cloned()
            };
            let best = find("ACKNOWLEDGED").or_else(|| find("DELIVERED"));
            return match (best, find("REJECTED")) {
                (Some(r), _) => {
                    if !quiet {
                        eprintln!("{}", describe(&r));
                    }
                    Ok(r)
                }
                (None, Some(r)) => Err(Failure::new(
                    Exit::Rejected,
                    format!(
                        "the peer rejected message {}: {} {} (a new message is needed){}",
                        hex(id),
                        r.reason.unwrap_or_default(),
                        r.detail.unwrap_or_default(),
                        r.advice.map(|a| format!("; {a}")).unwrap_or_default()
                    ),
                )),
                (None, None) => Err(Failure::new(
                    Exit::Verification,
                    format!(
                        "the node reports the message {state}, but no receipt it holds verifies; `hotline show {}` shows the checks",
                        hex(id)
                    ),
                )),
            };
        }
        if start.elapsed() >= timeout {
            clear();
            return Err(Failure::new(
                Exit::Timeout,
                format!(
                    "no {want} receipt after {}s (state: {}). The node keeps the message and keeps sending it; follow it with `hotline show {}` or `hotline watch`",
                    timeout.as_secs(),
                    clean(&state),
                    hex(id)
                ),
            ));
        }
        if spin {
            eprint!(
                "\r{} waiting for {want} ({}s, {})",
                frames[tick % frames.len()],
                start.elapsed().as_secs(),
                clean(&state)
            );
            let _ = std::io::stderr().flush();
            tick += 1;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        args: SendArgs,
    }

    fn args(extra: &[&str]) -> SendArgs {
        let mut v = vec![
            "t",
            "--to",
            "cert-b",
            "--precedence",
            "flash",
            "--subject",
            "S",
        ];
        v.extend_from_slice(extra);
        T::try_parse_from(v).expect("parses").args
    }

    #[test]
    fn an_empty_or_blank_text_is_refused_unless_allowed() {
        for text in ["", " \n\t\n"] {
            let e = body(&args(&["--body", text])).unwrap_err();
            assert_eq!(e.exit, Exit::Usage);
            assert!(e.message.contains("--allow-empty"), "{}", e.message);
            assert_eq!(
                body(&args(&["--body", text, "--allow-empty"])).unwrap(),
                text
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("empty");
        std::fs::write(&f, "").unwrap();
        let e = body(&args(&["--body-file", f.to_str().unwrap()])).unwrap_err();
        assert!(e.message.contains("is empty"), "{}", e.message);
    }

    #[test]
    fn defaults_to_tlp_amber_and_sixty_seconds() {
        let a = args(&["--body", "x"]);
        assert_eq!(a.tlp, Tlp::Amber);
        assert_eq!(a.timeout, Duration::from_secs(60));
        assert_eq!(body(&a).unwrap(), "x");
    }

    #[test]
    fn body_and_body_file_conflict() {
        let v = [
            "t",
            "--to",
            "p",
            "--precedence",
            "flash",
            "--subject",
            "S",
            "--body",
            "x",
            "--body-file",
            "f",
        ];
        assert!(T::try_parse_from(v).is_err());
    }

    #[test]
    fn reads_body_file_and_refuses_non_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("body");
        std::fs::write(&f, "from a file\n").unwrap();
        let a = args(&["--body-file", f.to_str().unwrap()]);
        assert_eq!(body(&a).unwrap(), "from a file\n");
        std::fs::write(&f, [0xff, 0xfe]).unwrap();
        assert_eq!(body(&a).unwrap_err().exit, Exit::Usage);
    }

    #[test]
    fn builds_incident_fields_only_when_given() {
        let a = args(&["--body", "x"]);
        assert!(draft(&a, "x".into()).unwrap().incident.is_none());
        let a = args(&[
            "--body",
            "x",
            "--incident",
            "INC-7",
            "--severity",
            "high",
            "--indicator",
            "domain:evil.example",
        ]);
        let d = draft(&a, "x".into()).unwrap();
        let i = d.incident.unwrap();
        assert_eq!((i.incident_id.as_str(), i.severity), ("INC-7", 3));
        assert_eq!(i.indicators[0].value, "evil.example");
        let a = args(&["--body", "x", "--indicator", "nocolon"]);
        assert_eq!(draft(&a, "x".into()).unwrap_err().exit, Exit::Usage);
    }

    #[test]
    fn refuses_bad_precedence_tlp_and_ids() {
        let base = ["t", "--to", "p", "--subject", "S", "--body", "x"];
        let with = |extra: &[&str]| {
            let mut v = base.to_vec();
            v.extend_from_slice(extra);
            T::try_parse_from(v).is_ok()
        };
        assert!(with(&["--precedence", "routine"]));
        assert!(!with(&["--precedence", "urgent"]));
        assert!(!with(&["--precedence", "flash", "--tlp", "white"]));
        assert!(!with(&["--precedence", "flash", "--reply-to", "abcd"]));
        assert!(!with(&["--precedence", "flash", "--timeout", "30"]));
    }
}
