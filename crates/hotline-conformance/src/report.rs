//! The report: a table for people, JSON for machines.

use std::fmt::Write as _;
use std::time::Duration;

use crate::suite::{Case, CaseResult};

/// The pass/fail table: per case its result, name and SPEC section, then what SPEC.md
/// expects, what the target did, and (when it failed) what the still-serving check saw.
pub fn table(results: &[CaseResult], elapsed: Duration) -> String {
    let width = results.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for r in results {
        let _ = writeln!(
            out,
            "{}  {:<width$}  {}",
            if r.passed { "PASS" } else { "FAIL" },
            r.name,
            r.spec_section
        );
        let _ = writeln!(out, "      expected  {}", r.expected);
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
    let passed = results.iter().filter(|r| r.passed).count();
    let _ = writeln!(
        out,
        "\n{} cases: {passed} passed, {} failed ({:.1} s)",
        results.len(),
        results.len() - passed,
        elapsed.as_secs_f64()
    );
    for r in results.iter().filter(|r| !r.passed) {
        let _ = writeln!(out, "  FAILED {} ({})", r.name, r.spec_section);
    }
    out
}

/// The results as a JSON list of objects (`name`, `spec_section`, `expected`, `observed`,
/// `passed`, ...).
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
