//! The results file format (VECTORS.md, "Results files"): one JSON file per vector file, named
//! like it, holding `{"format", "implementation", "results": {key: value}}`.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value, json};

use super::committed::{Case, Kind};

/// The `format` every results file carries.
pub const FORMAT: &str = "hotline-vector-results/1";

/// One implementation's value for a case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    /// A value in the case's kind.
    Value(String),
    /// `ERROR: …`: the implementation tried and failed.
    Error(String),
}

/// A parsed results file.
#[derive(Debug, Default)]
pub struct ResultsFile {
    /// The free-text `implementation` field, if any.
    pub implementation: Option<String>,
    /// Values by key; keys whose value was `null` are absent.
    pub values: BTreeMap<String, Observed>,
    /// Keys that are not cases of this file (probably misspelt).
    pub unknown: Vec<String>,
}

/// What reading a results directory found.
pub struct Directory {
    /// Results by file; a file that does not exist is absent.
    pub files: BTreeMap<&'static str, ResultsFile>,
    /// Files that do not exist.
    pub absent: Vec<&'static str>,
}

/// Reads the results files of every vector file from `dir`, checking each value against the
/// kind of its case. Every problem is collected, so one run reports them all.
pub fn read_dir(
    dir: &Path,
    files: &[&'static str],
    cases: &[Case],
) -> Result<Directory, Vec<String>> {
    if let Err(e) = std::fs::read_dir(dir) {
        return Err(vec![format!(
            "cannot read the results directory {}: {e}. Pass the directory your \
             implementation wrote its results files into (VECTORS.md, \"Running the check\").",
            dir.display()
        )]);
    }
    let mut problems = Vec::new();
    let mut out = Directory {
        files: BTreeMap::new(),
        absent: Vec::new(),
    };
    for &file in files {
        let path = dir.join(file);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.absent.push(file);
                continue;
            }
            Err(e) => {
                problems.push(format!(
                    "{}: cannot read: {e}. Make the file readable, or remove it to have its \
                     cases reported MISSING.",
                    path.display()
                ));
                continue;
            }
        };
        let file_cases: Vec<&Case> = cases.iter().filter(|c| c.file == file).collect();
        match parse(&text, &file_cases) {
            Ok(r) => {
                out.files.insert(file, r);
            }
            Err(errs) => {
                problems.extend(errs.into_iter().map(|e| format!("{}: {e}", path.display())))
            }
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Parses one results file against the cases of its vector file.
pub fn parse(text: &str, cases: &[&Case]) -> Result<ResultsFile, Vec<String>> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        vec![format!(
            "not valid JSON ({e}). A results file is one JSON object (VECTORS.md, \"Results files\")."
        )]
    })?;
    let Value::Object(top) = v else {
        return Err(vec![
            "the top level is not a JSON object. Write {\"format\": \"hotline-vector-results/1\", \
             \"results\": {...}}."
                .to_owned(),
        ]);
    };
    let mut problems = Vec::new();
    match top.get("format") {
        Some(Value::String(f)) if f == FORMAT => {}
        Some(other) => problems.push(format!(
            "key \"format\": is {other}, but this checker reads \"{FORMAT}\". Set \"format\": \"{FORMAT}\"."
        )),
        None => problems.push(format!(
            "key \"format\" is missing. Add \"format\": \"{FORMAT}\"."
        )),
    }
    match top.get("vectors") {
        None | Some(Value::Null) => {}
        Some(Value::String(v)) if v == "v1" => {}
        Some(other) => problems.push(format!(
            "key \"vectors\": is {other}, but this checker holds the vectors v1. Set \"vectors\": \"v1\" \
             or leave the key out."
        )),
    }
    let implementation = match top.get("implementation") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            problems.push(format!(
                "key \"implementation\": must be a string naming your implementation, found {other}."
            ));
            None
        }
    };
    let results = match top.get("results") {
        Some(Value::Object(m)) => m.clone(),
        Some(other) => {
            problems.push(format!(
                "key \"results\": must be an object mapping case keys to values, found {}.",
                type_name(other)
            ));
            Map::new()
        }
        None => {
            problems.push(
                "key \"results\" is missing. Put your values under \"results\": {\"<case key>\": \"<value>\", ...}."
                    .to_owned(),
            );
            Map::new()
        }
    };
    for key in top.keys() {
        if !["format", "implementation", "results", "vectors"].contains(&key.as_str()) {
            problems.push(format!(
                "unknown top-level key \"{key}\". Only \"format\", \"implementation\", \
                 \"vectors\" and \"results\" are allowed; case values go under \"results\"."
            ));
        }
    }
    let mut out = ResultsFile {
        implementation,
        ..ResultsFile::default()
    };
    for (key, value) in results {
        let Some(case) = cases.iter().find(|c| c.key == key) else {
            out.unknown.push(key);
            continue;
        };
        match value {
            Value::Null => {}
            Value::String(s) => {
                if s.starts_with("ERROR") {
                    out.values.insert(key, Observed::Error(s));
                } else if let Err(why) = check_value(case.kind, &s) {
                    problems.push(format!(
                        "key \"{key}\": {why}. Write {} (VECTORS.md, \"Values\"), `ERROR: <why>` \
                         if your implementation failed, or null if it does not implement this case.",
                        case.kind.describe()
                    ));
                } else {
                    out.values.insert(key, Observed::Value(s));
                }
            }
            other => problems.push(format!(
                "key \"{key}\": found {}, but every value is a JSON string ({}) or null. \
                 Quote it{}.",
                type_name(&other),
                case.kind.describe(),
                if other.is_number() {
                    ", e.g. \"7\" rather than 7"
                } else {
                    ""
                }
            )),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Whether `s` is well-formed for `kind`.
fn check_value(kind: Kind, s: &str) -> Result<(), String> {
    match kind {
        Kind::Hex => {
            if let Some((i, c)) = s
                .char_indices()
                .find(|(_, c)| !matches!(c, '0'..='9' | 'a'..='f'))
            {
                Err(format!(
                    "character {c:?} at position {i} is not lower-case hex"
                ))
            } else if !s.len().is_multiple_of(2) {
                Err(format!("odd number of hex digits ({})", s.len()))
            } else {
                Ok(())
            }
        }
        Kind::Int => {
            if s.parse::<u64>().is_ok() && (s == "0" || !s.starts_with('0')) && !s.starts_with('+')
            {
                Ok(())
            } else {
                Err(format!("{s:?} is not an unsigned decimal integer"))
            }
        }
        Kind::Name => {
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                Ok(())
            } else {
                Err(format!(
                    "{s:?} is not an upper-case registry name such as FLASH"
                ))
            }
        }
        Kind::Text | Kind::Outcome => Ok(()),
    }
}

/// Writes one results file.
pub fn write(
    path: &Path,
    implementation: &str,
    values: &BTreeMap<String, String>,
) -> Result<(), String> {
    let results: Map<String, Value> = values
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let doc = json!({
        "format": FORMAT,
        "implementation": implementation,
        "vectors": "v1",
        "results": results,
    });
    let text = serde_json::to_string_pretty(&doc)
        .map_err(|e| format!("internal error: cannot serialise results: {e}"))?
        + "\n";
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
