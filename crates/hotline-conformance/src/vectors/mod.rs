//! `hotline-conformance vectors DIR`: checks another implementation's encoder and decoder
//! output against the committed test vectors, offline (issue 5).
//!
//! The other implementation reads `vectors/v1/*.json`, computes its own outputs from the
//! inputs given there, and writes them into DIR as one results file per vector file
//! (VECTORS.md defines the format and every case). This module compares them with the
//! committed vectors, which are embedded in the binary, case by case: byte for byte for
//! encodings, exactly for decoded fields and for the outcomes of negative vectors. It also
//! runs the other side's encodings through this implementation (its envelope must open as
//! node B, its receipts must verify as node A, …), which tells an interoperability failure
//! from a mere difference. `--emit DIR` writes this implementation's own results in the same
//! format: the reference to diff against, and what the tests check.

mod bundle_update;
mod committed;
mod hex;
mod inputs;
mod officer_v2;
mod ours;
mod receive;
mod results;
mod revocation;
mod verify;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use committed::{Case, Committed, Kind};
use results::Observed;
use serde_json::{Value, json};

/// Exit status when something failed or is missing.
const EXIT_FAILED: u8 = 1;
/// Exit status when the check could not run (unreadable DIR, malformed results file).
const EXIT_UNUSABLE: u8 = 2;

/// The arguments of `hotline-conformance vectors`.
#[derive(Clone, Debug)]
pub struct VectorsArgs {
    /// The results directory: read by the check, written by `emit`.
    pub dir: PathBuf,
    /// Print the report as a JSON list instead of a table (check only).
    pub json: bool,
    /// Write this implementation's results into `dir` instead of checking it.
    pub emit: bool,
}

/// Runs `vectors` with all its arguments.
pub fn run_args(args: &VectorsArgs) -> ExitCode {
    if args.emit {
        emit(&args.dir)
    } else {
        run(&args.dir, args.json)
    }
}

/// Checks the results files in `dir` and prints the report (a table, or JSON with `json`).
/// Exits 0 if every case passed, 1 if any failed or is missing, 2 if the check could not run.
pub fn run(dir: &Path, json: bool) -> ExitCode {
    match check(dir) {
        Ok(report) => {
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            if json {
                println!("{}", report.json());
            } else {
                print!("{}", report.table(dir));
            }
            if report.all_passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILED)
            }
        }
        Err(problems) => {
            eprintln!(
                "hotline-conformance vectors: cannot check {}:",
                dir.display()
            );
            for p in problems {
                eprintln!("  {p}");
            }
            ExitCode::from(EXIT_UNUSABLE)
        }
    }
}

/// Writes this implementation's results for every case into `dir` (created if needed).
pub fn emit(dir: &Path) -> ExitCode {
    match emit_files(dir) {
        Ok(written) => {
            for (path, n) in written {
                println!("wrote {} ({n} results)", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hotline-conformance vectors --emit: {e}");
            ExitCode::from(EXIT_UNUSABLE)
        }
    }
}

fn emit_files(dir: &Path) -> Result<Vec<(PathBuf, usize)>, String> {
    let c = Committed::load()?;
    let all = ours::results(&c)?;
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the results directory {}: {e}", dir.display()))?;
    let implementation = format!("hotline-rs {}", env!("CARGO_PKG_VERSION"));
    let mut written = Vec::new();
    for file in committed::file_names() {
        let values = all
            .get(file)
            .ok_or_else(|| format!("internal error: no results for {file}"))?;
        let path = dir.join(file);
        results::write(&path, &implementation, values)?;
        written.push((path, values.len()));
    }
    Ok(written)
}

/// The result of one row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Pass,
    Fail,
    Missing,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Missing => "MISSING",
        }
    }
}

/// One line of the report.
struct Row {
    file: &'static str,
    name: String,
    kind: Option<Kind>,
    expected: String,
    observed: Option<String>,
    status: Status,
}

struct Report {
    rows: Vec<Row>,
    implementations: Vec<String>,
    warnings: Vec<String>,
}

/// Reads `dir` and builds the report.
fn check(dir: &Path) -> Result<Report, Vec<String>> {
    let c = Committed::load().map_err(|e| vec![e])?;
    let cases = c.cases().map_err(|e| vec![e])?;
    let files: Vec<&'static str> = committed::file_names().collect();
    let found = results::read_dir(dir, &files, &cases)?;
    let mut warnings = Vec::new();
    for file in &found.absent {
        let n = cases.iter().filter(|c| c.file == *file).count();
        warnings.push(format!(
            "{} does not exist: its {n} cases are reported MISSING",
            dir.join(file).display()
        ));
    }
    let mut implementations = Vec::new();
    for (file, r) in &found.files {
        for key in &r.unknown {
            warnings.push(format!(
                "{}: key \"{key}\" is not a case of {file} and is ignored{}",
                dir.join(file).display(),
                suggestion(key, &cases, file)
            ));
        }
        if let Some(i) = &r.implementation
            && !implementations.contains(i)
        {
            implementations.push(i.clone());
        }
    }
    let observed = |file: &str, key: &str| found.files.get(file).and_then(|r| r.values.get(key));
    let mut rows: Vec<Row> = cases
        .iter()
        .map(|case| compare(case, observed(case.file, &case.key)))
        .collect();
    let keys = inputs::Keys::load(&c).map_err(|e| vec![e])?;
    let theirs = |file: &str, key: &str| match observed(file, key) {
        Some(Observed::Value(v)) => Some(v.clone()),
        _ => None,
    };
    let checks = verify::checks(&c, &keys, &theirs).map_err(|e| vec![e])?;
    for check in checks {
        let (observed, status) = match check.outcome {
            None => (None, Status::Missing),
            Some(Ok(())) => (Some("accepted".to_owned()), Status::Pass),
            Some(Err(why)) => (Some(why), Status::Fail),
        };
        // Keep each check next to the cases of its file.
        let at = rows
            .iter()
            .rposition(|r| r.file == check.file)
            .map_or(rows.len(), |i| i + 1);
        rows.insert(
            at,
            Row {
                file: check.file,
                name: check.name,
                kind: None,
                expected: "accepted".to_owned(),
                observed,
                status,
            },
        );
    }
    Ok(Report {
        rows,
        implementations,
        warnings,
    })
}

fn compare(case: &Case, observed: Option<&Observed>) -> Row {
    let (observed, status) = match observed {
        None => (None, Status::Missing),
        Some(Observed::Error(e)) => (Some(e.clone()), Status::Fail),
        Some(Observed::Value(v)) if *v == case.expected => (Some(v.clone()), Status::Pass),
        Some(Observed::Value(v)) => (Some(v.clone()), Status::Fail),
    };
    Row {
        file: case.file,
        name: case.key.clone(),
        kind: Some(case.kind),
        expected: case.expected.clone(),
        observed,
        status,
    }
}

/// " (did you mean …?)" for a key close to a case key of `file`.
fn suggestion(key: &str, cases: &[Case], file: &str) -> String {
    let norm = |s: &str| s.to_ascii_lowercase().replace(['-', '/', ':'], ".");
    cases
        .iter()
        .filter(|c| c.file == file)
        .find(|c| norm(&c.key) == norm(key) || norm(&c.key).replace('#', ".") == norm(key))
        .map(|c| format!(" (did you mean \"{}\"?)", c.key))
        .unwrap_or_default()
}

impl Report {
    fn all_passed(&self) -> bool {
        self.rows.iter().all(|r| r.status == Status::Pass)
    }

    fn count(&self, s: Status) -> usize {
        self.rows.iter().filter(|r| r.status == s).count()
    }

    fn json(&self) -> String {
        let list: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                json!({
                    "file": r.file,
                    "name": r.name,
                    "expected": r.expected,
                    "observed": r.observed,
                    "passed": r.status == Status::Pass,
                    "status": r.status.as_str(),
                })
            })
            .collect();
        serde_json::to_string_pretty(&Value::Array(list)).unwrap_or_else(|_| "[]".to_owned())
    }

    fn table(&self, dir: &Path) -> String {
        const VALUE_WIDTH: usize = 34;
        let cells: Vec<[String; 5]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.file.to_owned(),
                    r.name.clone(),
                    shorten(&r.expected, r.kind, VALUE_WIDTH),
                    r.observed
                        .as_deref()
                        .map_or_else(|| "-".to_owned(), |o| shorten(o, r.kind, VALUE_WIDTH)),
                    r.status.as_str().to_owned(),
                ]
            })
            .collect();
        let header = ["FILE", "NAME", "EXPECTED", "OBSERVED", "RESULT"];
        let mut width = header.map(str::len);
        for row in &cells {
            for (w, cell) in width.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = |cells: &[String]| {
            let mut l = String::new();
            for (i, cell) in cells.iter().enumerate() {
                if i + 1 == cells.len() {
                    l.push_str(cell);
                } else {
                    let pad = width[i].saturating_sub(cell.chars().count());
                    let _ = write!(l, "{cell}{}  ", " ".repeat(pad));
                }
            }
            out.push_str(l.trim_end());
            out.push('\n');
        };
        line(&header.map(str::to_owned));
        for (row, cell) in self.rows.iter().zip(&cells) {
            line(cell);
            if row.status == Status::Fail
                && let Some(o) = &row.observed
            {
                for d in difference(&row.expected, o, row.kind) {
                    line(&[String::new(), format!("  {d}")]);
                }
            }
        }
        let (pass, fail, missing) = (
            self.count(Status::Pass),
            self.count(Status::Fail),
            self.count(Status::Missing),
        );
        let who = if self.implementations.is_empty() {
            String::new()
        } else {
            format!(" from {}", self.implementations.join(", "))
        };
        let _ = writeln!(
            out,
            "\n{} checks of {}{who}: {pass} PASS, {fail} FAIL, {missing} MISSING",
            self.rows.len(),
            dir.display()
        );
        if fail + missing == 0 {
            out.push_str("Conformant with vectors/v1.\n");
        } else {
            out.push_str(
                "Not conformant: see the FAIL and MISSING rows (VECTORS.md, \"Reading the report\").\n",
            );
        }
        out
    }
}

/// A value cut down to `width` characters for the table; hex also shows its length.
fn shorten(v: &str, kind: Option<Kind>, width: usize) -> String {
    let v: String = v.escape_debug().collect();
    if v.chars().count() <= width {
        return v;
    }
    if kind == Some(Kind::Hex) {
        let len = format!("…({} B)", v.len() / 2);
        let keep = width.saturating_sub(len.chars().count());
        return format!("{}{len}", &v[..keep.min(v.len())]);
    }
    let keep: String = v.chars().take(width.saturating_sub(1)).collect();
    format!("{keep}…")
}

/// Detail lines under a FAIL: where two values first differ.
fn difference(expected: &str, observed: &str, kind: Option<Kind>) -> Vec<String> {
    if kind != Some(Kind::Hex) || observed.starts_with("ERROR") {
        if observed.chars().count() > 34 || expected.chars().count() > 34 {
            return vec![
                format!("expected: {}", expected.escape_debug()),
                format!("observed: {}", observed.escape_debug()),
            ];
        }
        return Vec::new();
    }
    let (e, o) = match (hex::decode(expected), hex::decode(observed)) {
        (Some(e), Some(o)) => (e, o),
        _ => return Vec::new(),
    };
    let Some(at) = e.iter().zip(&o).position(|(a, b)| a != b) else {
        // One is a prefix of the other.
        return vec![format!(
            "length: expected {} bytes, observed {}; the first {} are equal",
            e.len(),
            o.len(),
            e.len().min(o.len())
        )];
    };
    let mut lines = Vec::new();
    if e.len() != o.len() {
        lines.push(format!(
            "length: expected {} bytes, observed {}",
            e.len(),
            o.len()
        ));
    }
    let window = |b: &[u8]| hex::encode(&b[at..(at + 8).min(b.len())]);
    lines.push(format!(
        "first difference at byte {at}: expected {}…, observed {}…",
        window(&e),
        window(&o)
    ));
    lines
}
