//! Readers for the tasks' native file formats. Each takes a path, the
//! [`ReadOptions`] and a [`SkipReport`] to count what it leaves out, and
//! returns examples; every malformed line goes through the bad-line policy
//! ([`Sink`]), so it is an `Error::Data{path, line, msg}` or a counted skip.
//!
//! All readers open files through [`super::io::open`], so `.gz` and `.bz2`
//! files are read transparently.

pub mod ccg;
pub mod choice;
pub mod columns;
pub mod generic;
pub mod glue;
pub mod nli;
pub mod squad;
pub mod tatoeba;
pub mod text;

use std::path::Path;

use serde_json::Value;

use super::example::Example;
use super::io::{Lines, ReadOptions, Sink, SkipReport};
use stilts_model::error::Result;

/// The three NLI classes, in the order every NLI task here uses (MNLI's
/// and XNLI's: entailment, neutral, contradiction).
pub const NLI_LABELS: [&str; 3] = ["entailment", "neutral", "contradiction"];

/// `NLI_LABELS` as owned strings (a task's label set).
pub fn nli_labels() -> Vec<String> {
    NLI_LABELS.iter().map(|s| s.to_string()).collect()
}

/// A gold label as found in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gold {
    /// A class index into the label set (NLI: 0 entailment, 1 neutral,
    /// 2 contradiction).
    Label(usize),
    /// `-` (MNLI/SNLI: no annotator majority) or `-1` (Hugging Face datasets).
    None,
}

/// An NLI label in any of the spellings the formats use: the names,
/// `contradictory` (XNLI-MT), `e`/`n`/`c` (ANLI), `0`/`1`/`2` (Hugging Face
/// layout), `-` / `-1` for "no gold label".
pub fn nli_gold(s: &str) -> std::result::Result<Gold, String> {
    let g = match s.trim() {
        "entailment" | "e" | "0" => Gold::Label(0),
        "neutral" | "n" | "1" => Gold::Label(1),
        "contradiction" | "contradictory" | "c" | "2" => Gold::Label(2),
        "-" | "-1" => Gold::None,
        other => {
            return Err(format!(
                "label `{other}` is not one of entailment, neutral, contradiction"
            ))
        }
    };
    Ok(g)
}

/// [`nli_gold`] for a JSON value (string or integer).
pub fn nli_gold_json(v: Option<&Value>, field: &str) -> std::result::Result<Gold, String> {
    match v {
        Some(Value::String(s)) => nli_gold(s),
        Some(Value::Number(n)) => nli_gold(&n.to_string()),
        Some(other) => Err(format!("`{field}` is {other}, not a label")),
        None => Err(format!("no `{field}` field")),
    }
}

/// Looks a label up by name in `labels`.
pub fn label_index(labels: &[String], s: &str) -> std::result::Result<usize, String> {
    labels.iter().position(|l| l == s).ok_or_else(|| {
        format!(
            "label `{s}` is not in the label set [{}]",
            labels.join(", ")
        )
    })
}

/// A string field of a JSON object, required non-empty.
pub fn json_text(obj: &Value, field: &str) -> std::result::Result<String, String> {
    match obj.get(field) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(format!("`{field}` is empty")),
        Some(Value::Null) | None => Err(format!("no `{field}` field")),
        Some(other) => Err(format!("`{field}` is {}, not a string", kind(other))),
    }
}

/// What kind of JSON value `v` is, in words for messages (`a string`,
/// `null`, ...).
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A text required non-empty (after trimming).
pub fn nonempty(s: &str, what: &str) -> std::result::Result<String, String> {
    if s.trim().is_empty() {
        Err(format!("{what} is empty"))
    } else {
        Ok(s.to_string())
    }
}

/// What a row parser makes of one row.
pub enum Row {
    /// An example to keep.
    Keep(Example),
    /// A row without a gold label (`-`), left out and counted.
    NoGold,
    /// A row outside the selection (another language of a one-file
    /// multilingual layout): not part of this dataset, not counted.
    Other,
}

/// Reads a JSON-lines file: each non-blank line is parsed and handed to `f`,
/// which returns a [`Row`] or `Err(msg)` for a malformed line.
pub fn read_jsonl(
    path: &Path,
    opts: &ReadOptions,
    report: &mut SkipReport,
    mut f: impl FnMut(&Value, usize) -> std::result::Result<Row, String>,
) -> Result<Vec<Example>> {
    let mut out = Vec::new();
    let mut sink = Sink::new(path, opts, report);
    for item in Lines::open(path)? {
        let (no, line) = item?;
        if sink.full(out.len()) {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        let parsed: std::result::Result<Value, String> =
            serde_json::from_str(&line).map_err(|e| format!("bad JSON: {e}"));
        let r = parsed.and_then(|v| {
            if v.is_object() {
                Ok(v)
            } else {
                Err(format!("expected a JSON object, found {}", kind(&v)))
            }
        });
        let Some(v) = sink.check(no, r)? else {
            continue;
        };
        match sink.check(no, f(&v, no))? {
            Some(Row::Keep(ex)) => out.push(ex),
            Some(Row::NoGold) => sink.no_gold(),
            Some(Row::Other) | None => {}
        }
    }
    Ok(out)
}

/// Reads a CSV file with a header row (normal CSV quoting; a row may have
/// another number of fields than the header, which is a bad line): the
/// trimmed header goes to `columns` once, which finds what `f` needs or
/// fails naming line 1; then each record with the header's number of
/// fields goes to `f` with its line, as [`read_jsonl`] hands objects.
pub fn read_csv<C>(
    path: &Path,
    opts: &ReadOptions,
    report: &mut SkipReport,
    columns: impl FnOnce(&[String]) -> Result<C>,
    mut f: impl FnMut(&C, &csv::StringRecord, usize) -> std::result::Result<Row, String>,
) -> Result<Vec<Example>> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(super::io::open(path)?);
    let header: Vec<String> = csv
        .headers()
        .map_err(|e| super::io::data_err(path, 1, format!("bad CSV header: {e}")))?
        .iter()
        .map(|s| s.trim().to_string())
        .collect();
    let cols = columns(&header)?;
    let mut sink = Sink::new(path, opts, report);
    let mut out = Vec::new();
    for rec in csv.records() {
        if sink.full(out.len()) {
            break;
        }
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                sink.bad(line, format!("bad CSV: {e}"))?;
                continue;
            }
        };
        let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
        let r = if rec.len() != header.len() {
            Err(format!(
                "expected {} fields (header: {}), found {}",
                header.len(),
                header.join(","),
                rec.len()
            ))
        } else {
            f(&cols, &rec, line)
        };
        match sink.check(line, r)? {
            Some(Row::Keep(ex)) => out.push(ex),
            Some(Row::NoGold) => sink.no_gold(),
            Some(Row::Other) | None => {}
        }
    }
    Ok(out)
}

/// A tab-separated table with a header row, GLUE style: no quoting, every
/// row split on `\t` and required to have as many fields as the header.
pub struct Tsv {
    /// The header row's column names, in order.
    pub header: Vec<String>,
}

impl Tsv {
    /// The index of the first of `names` found in the header.
    pub fn col(&self, names: &[&str]) -> Option<usize> {
        names
            .iter()
            .find_map(|n| self.header.iter().position(|h| h == n))
    }

    /// The index of the first of `names` found in the header; an error at
    /// line 1 of `path` listing the header when none is there.
    pub fn need(&self, path: &Path, names: &[&str]) -> Result<usize> {
        self.col(names).ok_or_else(|| {
            super::io::data_err(
                path,
                1,
                format!(
                    "header has no column {} (it has: {})",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(" or "),
                    self.header.join(", ")
                ),
            )
        })
    }
}

/// A row's id: its id column when the file has one, else `{prefix}:{line}`.
pub fn row_id(fields: &[&str], column: Option<usize>, prefix: &str, line: usize) -> String {
    match column {
        Some(i) => fields[i].to_string(),
        None => format!("{prefix}:{line}"),
    }
}

/// A row's label from its label column, if the file has one (test files
/// often do not).
pub fn optional_label(
    labels: &[String],
    fields: &[&str],
    column: Option<usize>,
) -> std::result::Result<Option<usize>, String> {
    column
        .map(|l| label_index(labels, fields[l].trim()))
        .transpose()
}

/// Reads a TSV file. With `header`, the first line names the columns and
/// `setup` sees it (to find columns, or fail); rows with another number of
/// fields are malformed. Without a header, `columns` fixes the count
/// (`None`: any count; `f` checks).
#[allow(clippy::type_complexity)]
pub fn read_tsv<S>(
    path: &Path,
    opts: &ReadOptions,
    report: &mut SkipReport,
    header: bool,
    columns: Option<&[usize]>,
    setup: impl FnOnce(&Tsv) -> Result<S>,
    mut f: impl FnMut(&S, &[&str], usize) -> std::result::Result<Row, String>,
) -> Result<Vec<Example>> {
    let mut lines = Lines::open(path)?;
    let mut tsv = Tsv { header: Vec::new() };
    if header {
        match lines.next() {
            Some(r) => {
                let (_, h) = r?;
                tsv.header = h.split('\t').map(|s| s.trim().to_string()).collect();
            }
            None => {
                return Err(super::io::data_err(
                    path,
                    1,
                    "empty file: expected a header row",
                ))
            }
        }
    }
    let state = setup(&tsv)?;
    let mut out = Vec::new();
    let mut sink = Sink::new(path, opts, report);
    for item in lines {
        let (no, line) = item?;
        if sink.full(out.len()) {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let want: Option<Vec<usize>> = if header {
            Some(vec![tsv.header.len()])
        } else {
            columns.map(|c| c.to_vec())
        };
        if let Some(w) = want {
            if !w.contains(&fields.len()) {
                let ws = w
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(" or ");
                let what = if header {
                    format!(" (header: {})", tsv.header.join(" | "))
                } else {
                    String::new()
                };
                sink.bad(
                    no,
                    format!(
                        "expected {ws} tab-separated columns{what}, found {}",
                        fields.len()
                    ),
                )?;
                continue;
            }
        }
        match sink.check(no, f(&state, &fields, no))? {
            Some(Row::Keep(ex)) => out.push(ex),
            Some(Row::NoGold) => sink.no_gold(),
            Some(Row::Other) | None => {}
        }
    }
    Ok(out)
}
