//! The report: a table for people, JSON for machines, and the run's exit status.

use std::fmt::Write as _;
use std::time::Duration;

use crate::suite::{Case, CaseResult, Status, Summary};

/// Exit status when every case passed (and, with `--fail-on-skip`, none was skipped).
pub const EXIT_PASSED: u8 = 0;
/// Exit status when a case failed, or with `--fail-on-skip` a case was skipped.
pub const EXIT_FAILED: u8 = 1;

/// The table: per case its status (PASS, FAIL, SKIP), name and SPEC section, then what SPEC.md
/// expects, what the target did (for a skipped case: why it did not run), and what the
/// still-serving check saw; then the summary line and the cases that failed or were skipped.
pub fn table(results: &[CaseResult], elapsed: Duration, fail_on_skip: bool) -> String {
    let width = results.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for r in results {
        let _ = writeln!(
            out,
            "{}  {:<width$}  {}",
            r.status.label(),
            r.name,
            r.spec_section
        );
        let _ = writeln!(out, "      expected  {}", r.expected);
        match &r.skip_reason {
            Some(reason) => {
                let _ = writeln!(out, "      skipped   {reason}");
            }
            None => {
                let _ = writeln!(
                    out,
                    "      observed  {}{}",
                    r.observed,
                    if r.outcome_passed || r.passed {
                        ""
                    } else {
                        "   <-- not what SPEC.md requires"
                    }
                );
            }
        }
        let _ = writeln!(
            out,
            "      after     {}{}",
            if r.still_serving {
                "still serving: "
            } else {
                "NOT SERVING: "
            },
            r.still_serving_observed
        );
    }
    let _ = writeln!(
        out,
        "\n{} ({:.1} s)",
        summary_line(&Summary::of(results), results.len()),
        elapsed.as_secs_f64()
    );
    for r in results.iter().filter(|r| r.status == Status::Failed) {
        let _ = writeln!(out, "  FAILED {} ({})", r.name, r.spec_section);
    }
    for r in results.iter().filter(|r| r.status == Status::Skipped) {
        let _ = writeln!(
            out,
            "  SKIPPED {} ({}): {}",
            r.name,
            r.spec_section,
            r.skip_reason.as_deref().unwrap_or("")
        );
    }
    if fail_on_skip && Summary::of(results).skipped > 0 {
        let _ = writeln!(out, "  --fail-on-skip: a skipped case fails the run");
    }
    out
}

/// `109 cases: 106 passed, 1 failed, 2 skipped`.
pub fn summary_line(s: &Summary, total: usize) -> String {
    format!(
        "{total} cases: {} passed, {} failed, {} skipped",
        s.passed, s.failed, s.skipped
    )
}

/// The run's exit status: [`EXIT_FAILED`] if a case failed, or if a case was skipped and
/// `fail_on_skip` is set; otherwise [`EXIT_PASSED`].
pub fn exit_status(results: &[CaseResult], fail_on_skip: bool) -> u8 {
    if Summary::of(results).run_failed(fail_on_skip) {
        EXIT_FAILED
    } else {
        EXIT_PASSED
    }
}

/// The results as a JSON list of objects (`name`, `spec_section`, `expected`, `observed`,
/// `status`, `skip_reason`, `passed`, ...).
pub fn json(results: &[CaseResult]) -> String {
    serde_json::to_string_pretty(results).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The case list without running it: name, section, expected.
pub fn list(cases: &[Case]) -> String {
    let width = cases.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in cases {
        let _ = writeln!(out, "{:<width$}  {}", c.name, c.spec_section());
        let _ = writeln!(out, "{:<width$}  expected: {}", "", c.expected);
    }
    let _ = writeln!(out, "\n{} cases", cases.len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::suite::{Outcome, Verdict};

    fn case(name: &'static str) -> Case {
        Case::new(name, "§99", "REJECTED CONFLICT", |_| {
            Box::pin(async { Outcome::pass("") })
        })
    }

    fn result(name: &'static str, outcome: Outcome, serving: bool) -> CaseResult {
        let serving = if serving {
            Ok("DELIVERED (sequence 1)".to_owned())
        } else {
            Err("no link".to_owned())
        };
        CaseResult::new(&case(name), outcome, serving, Duration::from_millis(5))
    }

    fn mixed() -> Vec<CaseResult> {
        vec![
            result("a-passes", Outcome::pass("REJECTED CONFLICT"), true),
            result("b-fails", Outcome::fail("DELIVERED"), true),
            result("c-skipped", Outcome::skip("needs --pki"), true),
            result(
                "d-passes-but-stops",
                Outcome::pass("REJECTED CONFLICT"),
                false,
            ),
            result("e-skipped-but-stops", Outcome::skip("needs --pki"), false),
            result(
                "f-skipped",
                Outcome::skip("no message from the target"),
                true,
            ),
        ]
    }

    #[test]
    fn a_case_is_passed_failed_or_skipped_and_not_serving_fails_it() {
        let r = mixed();
        let status: Vec<Status> = r.iter().map(|r| r.status).collect();
        assert_eq!(
            status,
            [
                Status::Passed,
                Status::Failed,
                Status::Skipped,
                Status::Failed,
                Status::Failed,
                Status::Skipped
            ]
        );
        assert_eq!(
            r.iter().map(|r| r.passed).collect::<Vec<_>>(),
            [true, false, false, false, false, false],
            "`passed` is true for passed cases only"
        );
        assert_eq!(r[2].skip_reason.as_deref(), Some("needs --pki"));
        assert_eq!(r[0].skip_reason, None);
        assert_eq!(r[1].skip_reason, None);
        assert_eq!(
            Summary::of(&r),
            Summary {
                passed: 1,
                failed: 3,
                skipped: 2
            }
        );
        assert_eq!(Status::of(Verdict::Skip, true), Status::Skipped);
        assert_eq!(Status::of(Verdict::Skip, false), Status::Failed);
    }

    #[test]
    fn skipped_cases_fail_the_run_only_with_fail_on_skip() {
        let passed = vec![result("a", Outcome::pass("ok"), true)];
        let skipped = vec![
            result("a", Outcome::pass("ok"), true),
            result("b", Outcome::skip("needs --pki"), true),
        ];
        let failed = vec![
            result("a", Outcome::fail("DELIVERED"), true),
            result("b", Outcome::skip("needs --pki"), true),
        ];
        assert_eq!(exit_status(&passed, false), EXIT_PASSED);
        assert_eq!(exit_status(&passed, true), EXIT_PASSED);
        assert_eq!(exit_status(&skipped, false), EXIT_PASSED);
        assert_eq!(exit_status(&skipped, true), EXIT_FAILED);
        assert_eq!(exit_status(&failed, false), EXIT_FAILED);
        assert_eq!(exit_status(&failed, true), EXIT_FAILED);
        assert_eq!(
            exit_status(&[], true),
            EXIT_PASSED,
            "nothing run, nothing failed"
        );
    }

    #[test]
    fn the_table_shows_skipped_cases_with_their_reason_and_counts_them() {
        let t = table(&mixed(), Duration::from_secs(3), false);
        assert!(t.contains("SKIP  c-skipped"), "{t}");
        assert!(t.contains("      skipped   needs --pki\n"), "{t}");
        assert!(t.contains("PASS  a-passes"), "{t}");
        assert!(t.contains("FAIL  b-fails"), "{t}");
        assert!(
            t.contains("6 cases: 1 passed, 3 failed, 2 skipped (3.0 s)"),
            "{t}"
        );
        assert!(t.contains("  FAILED b-fails (§99)"), "{t}");
        assert!(
            t.contains("  SKIPPED f-skipped (§99): no message from the target"),
            "{t}"
        );
        assert!(!t.contains("SKIPPED e-skipped-but-stops"), "{t}");
        assert!(!t.contains("--fail-on-skip"), "{t}");
        let t = table(&mixed(), Duration::from_secs(3), true);
        assert!(
            t.contains("--fail-on-skip: a skipped case fails the run"),
            "{t}"
        );
    }

    #[test]
    fn json_carries_the_status_and_the_skip_reason() {
        let v: serde_json::Value = serde_json::from_str(&json(&mixed())).expect("JSON");
        let list = v.as_array().expect("list");
        assert_eq!(list[0]["status"], "passed");
        assert_eq!(list[0]["skip_reason"], serde_json::Value::Null);
        assert_eq!(list[1]["status"], "failed");
        assert_eq!(list[2]["status"], "skipped");
        assert_eq!(list[2]["skip_reason"], "needs --pki");
        assert_eq!(list[2]["passed"], false);
        assert_eq!(list[4]["status"], "failed");
    }
}
