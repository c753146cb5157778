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

/// How a case ended, before the still-serving check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The target did what SPEC.md expects.
    Pass,
    /// The target did something else (or the runner could not tell).
    Fail,
    /// The case could not run against this target's configuration (its trust mode, an input
    /// the runner was not given, a precondition on the target): no judgement either way.
    Skip,
}

/// What one case saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the target did what SPEC.md expects, or the case could not run.
    pub verdict: Verdict,
    /// What the target did, in words; for a skipped case, why it did not run and what would
    /// make it run.
    pub observed: String,
}

impl Outcome {
    /// The expected outcome, observed as `observed`.
    pub fn pass(observed: impl Into<String>) -> Self {
        Outcome {
            verdict: Verdict::Pass,
            observed: observed.into(),
        }
    }

    /// Something else, observed as `observed`.
    pub fn fail(observed: impl Into<String>) -> Self {
        Outcome {
            verdict: Verdict::Fail,
            observed: observed.into(),
        }
    }

    /// The case cannot run against this target, for `reason` (which should say what would
    /// make it run).
    pub fn skip(reason: impl Into<String>) -> Self {
        Outcome {
            verdict: Verdict::Skip,
            observed: reason.into(),
        }
    }

    /// Passes if `ok`.
    pub fn check(ok: bool, observed: impl Into<String>) -> Self {
        if ok {
            Outcome::pass(observed)
        } else {
            Outcome::fail(observed)
        }
    }

    /// Whether the target did what SPEC.md expects.
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
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
        "§4.3.5" => "KeyUpdate",
        "§5.2" => "Frame types, placement and limits",
        "§5.3" => "Canonical encoding",
        "§6.3" => "Verifying the peer's Hello",
        "§6.6" => "Hello timeout",
        "§7.5.1" => "Version 2 officer signature",
        "§7.6" => "Opening procedure (receiver)",
        "§8.4" => "Verifying a receipt (sender of the envelope)",
        "§9.1" => "Control stream",
        "§9.2" => "Message streams",
        "§9.4" => "Receipt streams and ReceiptStored",
        "§9.6" => "Concurrency limit (max_inflight)",
        "§10.1" => "Sequence numbers",
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

/// A case's result, after the still-serving check.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The expected outcome, and the target still serving afterwards.
    Passed,
    /// Another outcome, or the target not serving afterwards.
    Failed,
    /// The case could not run against this target (see `skip_reason`); the target still
    /// served afterwards.
    Skipped,
}

impl Status {
    /// `PASS`, `FAIL`, `SKIP`: the table's and the progress lines' first column.
    pub fn label(self) -> &'static str {
        match self {
            Status::Passed => "PASS",
            Status::Failed => "FAIL",
            Status::Skipped => "SKIP",
        }
    }

    /// A case's status from its outcome and the still-serving check: a target that stopped
    /// serving fails the case, whatever the case saw.
    pub fn of(verdict: Verdict, still_serving: bool) -> Status {
        match (verdict, still_serving) {
            (_, false) | (Verdict::Fail, _) => Status::Failed,
            (Verdict::Pass, true) => Status::Passed,
            (Verdict::Skip, true) => Status::Skipped,
        }
    }
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
    /// What the target did (for a skipped case: why it did not run).
    pub observed: String,
    /// `passed`, `failed` or `skipped`.
    pub status: Status,
    /// Why the case did not run and what would make it run; `None` unless skipped.
    pub skip_reason: Option<String>,
    /// The case passed: the expected outcome, and the target still serving afterwards
    /// (`status` is `passed`; false for a skipped case).
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

impl CaseResult {
    /// The result of a case from what it saw and what the still-serving check saw.
    pub fn new(
        case: &Case,
        outcome: Outcome,
        serving: Result<String, String>,
        duration: Duration,
    ) -> CaseResult {
        let (still_serving, still_serving_observed) = match serving {
            Ok(s) => (true, s),
            Err(s) => (false, s),
        };
        let status = Status::of(outcome.verdict, still_serving);
        CaseResult {
            name: case.name.to_owned(),
            spec_section: case.spec_section(),
            expected: case.expected.clone(),
            skip_reason: (outcome.verdict == Verdict::Skip).then(|| outcome.observed.clone()),
            observed: outcome.observed,
            status,
            passed: status == Status::Passed,
            outcome_passed: outcome.verdict == Verdict::Pass,
            still_serving,
            still_serving_observed,
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// How many cases passed, failed and were skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Cases with status `passed`.
    pub passed: usize,
    /// Cases with status `failed`.
    pub failed: usize,
    /// Cases with status `skipped`.
    pub skipped: usize,
}

impl Summary {
    /// Counts `results`.
    pub fn of(results: &[CaseResult]) -> Summary {
        let mut s = Summary::default();
        for r in results {
            match r.status {
                Status::Passed => s.passed += 1,
                Status::Failed => s.failed += 1,
                Status::Skipped => s.skipped += 1,
            }
        }
        s
    }

    /// Whether the run fails: a case failed, or (with `fail_on_skip`) a case was skipped.
    pub fn run_failed(&self, fail_on_skip: bool) -> bool {
        self.failed > 0 || (fail_on_skip && self.skipped > 0)
    }
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
        if let (Verdict::Fail, Ok(mut s)) = (outcome.verdict, cx.seq.lock()) {
            s.refresh_reservation();
        }
        // A skipped case is checked too: "after every case" holds, and a case that gave up
        // for want of an input may still have linked to the target.
        let serving = match tokio::time::timeout(CASE_LIMIT, still_serving(cx)).await {
            Ok(r) => r,
            Err(_) => Err("the check did not finish in time".into()),
        };
        let result = CaseResult::new(case, outcome, serving, t0.elapsed());
        progress(i, &result);
        results.push(result);
    }
    results
}
