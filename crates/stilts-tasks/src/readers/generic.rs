//! A user's own classification data: TSV (header row, tab-split, no
//! quoting, GLUE style), CSV (header row, RFC 4180 quoting) or JSON lines,
//! with named text columns (one, or two for pairs), a label column and a
//! label set. The format comes from the file name (`.tsv`, `.csv`,
//! `.jsonl`, optionally `.gz`/`.bz2`).

use std::path::Path;

use serde_json::Value;

use super::{kind, label_index, nonempty, optional_label, read_jsonl, read_tsv, row_id, Row};
use crate::example::Example;
use crate::io::{data_err, data_ext, ReadOptions, SkipReport};
use stilts_model::error::{Error, Result};

/// Columns and labels of a generic classification task.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GenericSpec {
    /// One text column, or two for sentence pairs.
    pub text_columns: Vec<String>,
    /// The label column; a file without it (test data) reads with no labels.
    pub label_column: String,
    /// The label set, in the order of the classifier's outputs.
    pub labels: Vec<String>,
    /// A column to take example ids from (default: `{file}:{line}`).
    #[serde(default)]
    pub id_column: Option<String>,
}

impl GenericSpec {
    /// A spec with these columns and labels, ids from `{file}:{line}`.
    pub fn new(text_columns: &[&str], label_column: &str, labels: &[&str]) -> Self {
        GenericSpec {
            text_columns: text_columns.iter().map(|s| s.to_string()).collect(),
            label_column: label_column.to_string(),
            labels: labels.iter().map(|s| s.to_string()).collect(),
            id_column: None,
        }
    }

    /// Checks the spec: one or two text columns and at least two labels, else
    /// an error saying which is wrong.
    pub fn check(&self) -> Result<()> {
        if self.text_columns.is_empty() || self.text_columns.len() > 2 {
            return Err(Error::msg(format!(
                "a generic task takes one or two text columns, not {:?}",
                self.text_columns
            )));
        }
        if self.labels.len() < 2 {
            return Err(Error::msg(format!(
                "a generic task needs at least two labels, not {:?}",
                self.labels
            )));
        }
        Ok(())
    }
}

/// A label from a JSON value: its string form if that is in the set, else an
/// integer in 0..n as an index.
fn json_label(labels: &[String], v: &Value) -> std::result::Result<usize, String> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => {
            return Err(format!(
                "the label is {}, not a string or number",
                kind(other)
            ))
        }
    };
    if let Ok(i) = label_index(labels, &s) {
        return Ok(i);
    }
    match v.as_u64() {
        Some(i) if (i as usize) < labels.len() => Ok(i as usize),
        _ => label_index(labels, &s),
    }
}

fn make(id: String, line: usize, texts: Vec<String>, label: Option<usize>) -> Row {
    let mut it = texts.into_iter();
    let a = it.next().unwrap_or_default();
    Row::Keep(Example::Text {
        id,
        line,
        a,
        b: it.next(),
        label,
    })
}

/// Reads one file of a generic task.
pub fn read_generic(
    path: &Path,
    spec: &GenericSpec,
    opts: &ReadOptions,
    report: &mut SkipReport,
) -> Result<Vec<Example>> {
    spec.check()?;
    match data_ext(path).as_str() {
        "tsv" | "txt" => read_tsv(
            path,
            opts,
            report,
            true,
            None,
            |t| {
                let texts = spec.text_columns.iter().map(|c| t.need(path, &[c.as_str()])).collect::<Result<Vec<_>>>()?;
                Ok((texts, Some(t.need(path, &[spec.label_column.as_str()])?), spec.id_column.as_ref().and_then(|c| t.col(&[c.as_str()]))))
            },
            |(texts, l, idc), f, line| {
                let id = row_id(f, *idc, &path.display().to_string(), line);
                let t = texts.iter().zip(&spec.text_columns).map(|(&i, c)| nonempty(f[i], &format!("`{c}`"))).collect::<std::result::Result<Vec<_>, _>>()?;
                let label = optional_label(&spec.labels, f, *l)?;
                Ok(make(id, line, t, label))
            },
        ),
        "csv" => read_csv(path, spec, opts, report),
        "jsonl" | "ndjson" => read_jsonl(path, opts, report, |v, line| {
            let id = spec
                .id_column
                .as_ref()
                .and_then(|c| v.get(c))
                .map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string()))
                .unwrap_or_else(|| format!("{}:{line}", path.display()));
            let t = spec.text_columns.iter().map(|c| super::json_text(v, c)).collect::<std::result::Result<Vec<_>, _>>()?;
            let label = match v.get(&spec.label_column) {
                None | Some(Value::Null) => None,
                Some(x) => Some(json_label(&spec.labels, x)?),
            };
            Ok(make(id, line, t, label))
        }),
        other => Err(data_err(path, 0, format!("cannot tell the format from the extension `.{other}`: name the file .tsv, .csv or .jsonl (optionally .gz / .bz2)"))),
    }
}

fn read_csv(
    path: &Path,
    spec: &GenericSpec,
    opts: &ReadOptions,
    report: &mut SkipReport,
) -> Result<Vec<Example>> {
    // The columns' positions, found once in the header.
    let columns = |header: &[String]| -> Result<(Vec<usize>, usize, Option<usize>)> {
        let col = |c: &str| header.iter().position(|h| h == c);
        let texts = spec
            .text_columns
            .iter()
            .map(|c| {
                col(c).ok_or_else(|| {
                    data_err(
                        path,
                        1,
                        format!("header has no column `{c}` (it has: {})", header.join(", ")),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let lc = col(&spec.label_column).ok_or_else(|| {
            data_err(
                path,
                1,
                format!(
                    "header has no label column `{}` (it has: {}); name it with label_column",
                    spec.label_column,
                    header.join(", ")
                ),
            )
        })?;
        Ok((texts, lc, spec.id_column.as_deref().and_then(col)))
    };
    super::read_csv(
        path,
        opts,
        report,
        columns,
        |(texts, lc, idc), rec, line| {
            let id = idc
                .map(|i| rec[i].to_string())
                .unwrap_or_else(|| format!("{}:{line}", path.display()));
            let t = texts
                .iter()
                .zip(&spec.text_columns)
                .map(|(&i, c)| nonempty(&rec[i], &format!("`{c}`")))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let label = label_index(&spec.labels, rec[*lc].trim())?;
            Ok(make(id, line, t, Some(label)))
        },
    )
}
