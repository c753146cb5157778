//! Running the cases: the probe that starts a run, each case on its own connections, and after
//! each case the check that the target still accepts a valid message.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use hotline_protocol::envelope::Envelope;
use hotline_protocol::frame::FrameType;
use hotline_protocol::receipt::{Receipt, ReceiptKind};
use serde::Serialize;

use crate::ctx::{Ctx, SetupError, Trust};
use crate::peer::{self, Answer};

/// What one case saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the target did what SPEC.md expects.
    pub ok: bool,
    /// What the target did, in words.
    pub observed: String,
}

impl Outcome {
    /// The expected outcome, observed as `observed`.
    pub fn pass(observed: impl Into<String>) -> Self {
        Outcome {
            ok: true,
            observed: observed.into(),
        }
    }

    /// Something else, observed as `observed`.
    pub fn fail(observed: impl Into<String>) -> Self {
        Outcome {
            ok: false,
            observed: observed.into(),
        }
    }

    /// Passes if `ok`.
    pub fn check(ok: bool, observed: impl Into<String>) -> Self {
        Outcome {
            ok,
            observed: observed.into(),
        }
    }
}

impl From<Result<String, String>> for Outcome {
    fn from(r: Result<String, String>) -> Self {
        match r {
            Ok(s) => Outcome::pass(s),
            Err(s) => Outcome::fail(s),
        }
    }
}

/// A case's future.
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = Outcome> + 'a>>;

/// One conformance case.
pub struct Case {
    /// Short stable name (`envelope-bad-signature`).
    pub name: &'static str,
    /// The SPEC.md section it checks, e.g. `§7.6 step 6`.
    pub section: &'static str,
    /// The outcome SPEC.md requires, by SPEC names.
    pub expected: String,
    /// Runs the case; the still-serving check follows separately.
    pub run: fn(&Ctx) -> CaseFuture<'_>,
}

impl Case {
    /// A case.
    pub fn new(
        name: &'static str,
        section: &'static str,
        expected: impl Into<String>,
        run: fn(&Ctx) -> CaseFuture<'_>,
    ) -> Self {
        Case {
            name,
            section,
            expected: expected.into(),
            run,
        }
    }

    /// The section with its SPEC.md heading: `§7.6 Opening procedure (receiver), step 6`.
    pub fn spec_section(&self) -> String {
        let (number, rest) = self
            .section
            .split_once(' ')
            .map_or((self.section, ""), |(n, r)| (n, r));
        let heading = heading(number);
        match (heading, rest.is_empty()) {
            (Some(h), true) => format!("{number} {h}"),
            (Some(h), false) => format!("{number} {h}, {rest}"),
            (None, _) => self.section.to_owned(),
        }
    }
}

/// SPEC.md's headings of the sections the cases cite.
fn heading(number: &str) -> Option<&'static str> {
    Some(match number {
        "§3.1" => "QUIC and TLS",
        "§3.2" => "ALPN",
        "§3.3" => "Mutual authentication, early data and resumption",
        "§3.4" => "Key exchange groups",
        "§3.5" => "Certificate profile",
        "§3.6.1" => "Pinned mode",
        "§3.6.2" => "Private CA mode",
        "§3.7" => "QUIC transport parameters and streams",
        "§3.8" => "Closing a connection",
        "§3.9.1" => "Showing an UP connection dead",
        "§5.2" => "Frame types, placement and limits",
        "§5.3" => "Canonical encoding",
        "§6.3" => "Verifying the peer's Hello",
        "§6.6" => "Hello timeout",
        "§7.6" => "Opening procedure (receiver)",
        "§8.4" => "Verifying a receipt (sender of the envelope)",
        "§9.1" => "Control stream",
        "§9.2" => "Message streams",
        "§9.4" => "Receipt streams and ReceiptStored",
        "§9.6" => "Concurrency limit (max_inflight)",
        "§10.2" => "received_through and last_sequence_sent",
        "§10.3" => "Gaps",
        "§10.4" => "Duplicate detection",
        "§10.5" => "Replay and conflict",
        "§11.1" => "Heartbeat",
        "§11.3" => "Liveness",
        "§13.2" => "Rate limiting",
        _ => return None,
    })
}

/// The result of one case, as printed and as JSON.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CaseResult {
    /// Case name.
    pub name: String,
    /// SPEC.md section and heading.
    pub spec_section: String,
    /// What SPEC.md requires.
    pub expected: String,
    /// What the target did.
    pub observed: String,
    /// The case passed: the expected outcome, and the target still serving afterwards.
    pub passed: bool,
    /// The expected outcome alone.
    pub outcome_passed: bool,
    /// After the case: a fresh connection, Hello, a valid envelope, a DELIVERED receipt that
    /// verifies and answers it.
    pub still_serving: bool,
    /// What the still-serving check saw.
    pub still_serving_observed: String,
    /// How long the case and its check took.
    pub duration_ms: u64,
}

/// How long a case may run before it counts as failed (the longest waits on a SPEC timer:
/// 15 s of liveness, 10 s of Hello timeout and gap reporting).
pub const CASE_LIMIT: Duration = Duration::from_secs(90);

/// Contacts the target once before the run: a link, a ping, and the target's
/// `received_through` for the runner (SPEC.md §10.2), from which this run's sequence numbers
/// continue. Fails with what the operator should check.
pub async fn probe(cx: &Ctx) -> Result<u64, SetupError> {
    let link = peer::link(cx).await.map_err(|e| {
        let mode = match cx.trust {
            Trust::Pinned => "pinned mode: `hotlined peer add` of the runner's bundle",
            Trust::Ca => {
                "private CA mode: `hotlined peer add --trust ca` of the runner's bundle, [ca] \
                 with the CA and CRL of --pki"
            }
        };
        SetupError(format!(
            "cannot link to the target at {} ({e}). Check that it runs there, that \
             --target-bundle is its bundle, and that it pins the --identity node ({mode})",
            cx.target.addr
        ))
    })?;
    let hb = link
        .ping(cx)
        .await
        .map_err(|e| SetupError(format!("the target does not answer a heartbeat ping: {e}")))?;
    link.raw.close();
    Ok(hb.received_through)
}

/// After each case: the target must still link and accept a valid envelope with a DELIVERED
/// receipt that verifies against its identity and answers the envelope.
pub async fn still_serving(cx: &Ctx) -> Result<String, String> {
    let link = peer::link(cx).await.map_err(|e| format!("no link: {e}"))?;
    let (id, seq) = cx.alloc();
    let env = cx.seal(id, seq, "hotline-conformance: still serving")?;
    let answer = link.send_envelope(cx, env.bytes()).await;
    let r = delivered(cx, &answer, &env);
    link.raw.close();
    r.map(|_| format!("DELIVERED (sequence {seq})"))
}

/// The answer must be a DELIVERED receipt by the target that answers `env`.
pub fn delivered(cx: &Ctx, answer: &Answer, env: &Envelope) -> Result<Receipt, String> {
    let r = receipt(cx, answer)?;
    if !r.answers(env) {
        return Err(format!(
            "a receipt that does not answer the envelope sent (message id, digest, sender or \
             sequence differ): {r:?}"
        ));
    }
    match r.kind() {
        ReceiptKind::Delivered => Ok(r),
        other => Err(format!("{} instead of DELIVERED", kind_text(other))),
    }
}

/// The answer must be a Receipt frame that verifies as the target's (SPEC.md §8.4 steps 1–5).
pub fn receipt(cx: &Ctx, answer: &Answer) -> Result<Receipt, String> {
    match answer {
        Answer::Frame(f) if f.ty == FrameType::Receipt => {
            Receipt::verify(&f.payload, &cx.target.id)
                .map_err(|e| format!("a receipt that does not verify as the target's: {e}"))
        }
        other => Err(other.describe()),
    }
}

/// `REJECTED TOO_OLD ("detail")`, `DELIVERED`, ...
pub fn kind_text(kind: &ReceiptKind) -> String {
    match kind {
        ReceiptKind::Rejected { reason, detail } if detail.is_empty() => {
            format!("REJECTED {reason}")
        }
        ReceiptKind::Rejected { reason, detail } => format!("REJECTED {reason} ({detail:?})"),
        other => other.as_str().to_owned(),
    }
}

/// Runs `cases` in order, each followed by the still-serving check; `progress` sees each
/// result as it is made.
pub async fn run(
    cx: &Ctx,
    cases: &[Case],
    mut progress: impl FnMut(usize, &CaseResult),
) -> Vec<CaseResult> {
    let mut results = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let t0 = Instant::now();
        let outcome = match tokio::time::timeout(CASE_LIMIT, (case.run)(cx)).await {
            Ok(o) => o,
            Err(_) => Outcome::fail(format!("the case did not finish within {CASE_LIMIT:?}")),
        };
        if let (false, Ok(mut s)) = (outcome.ok, cx.seq.lock()) {
            s.refresh_reservation();
        }
        let serving = match tokio::time::timeout(CASE_LIMIT, still_serving(cx)).await {
            Ok(r) => r,
            Err(_) => Err("the check did not finish in time".into()),
        };
        let (still_serving, still_serving_observed) = match serving {
            Ok(s) => (true, s),
            Err(s) => (false, s),
        };
        let result = CaseResult {
            name: case.name.to_owned(),
            spec_section: case.spec_section(),
            expected: case.expected.clone(),
            observed: outcome.observed,
            passed: outcome.ok && still_serving,
            outcome_passed: outcome.ok,
            still_serving,
            still_serving_observed,
            duration_ms: u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        progress(i, &result);
        results.push(result);
    }
    results
}
