//! Multiple-choice formats: HellaSwag, Cosmos QA and CommonsenseQA. Every
//! example becomes a prompt and its candidates; the features are the pairs
//! (prompt, candidate), as jiant builds them:
//! - HellaSwag (jiant `hellaswag.py`, like HF `run_swag.py`'s sent1/sent2):
//!   prompt `ctx_a`, candidates `ctx_b + " " + ending`. Files that kept only
//!   the joined `ctx` (the derived jsonl and the 6-lines-per-example text in
//!   shared) give prompt `ctx`, candidates the endings.
//! - Cosmos QA (jiant `cosmosqa.py`): prompt `context + " " + question`,
//!   candidates `answer0..answer3`.
//! - CommonsenseQA (jiant `commonsenseqa.py`): prompt the question stem,
//!   candidates the 5 choice texts, label the index of `answerKey`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{json_text, kind, nonempty, read_csv, read_jsonl, Row};
use crate::example::Example;
use crate::io::{data_err, plain_name, Lines, ReadOptions, Sink, SkipReport};
use stilts_model::error::Result;

fn choice_label(v: Option<&Value>, n: usize) -> std::result::Result<Option<usize>, String> {
    let l = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(x)) => x.as_i64(),
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(other) => return Err(format!("`label` is {}, not a choice index", kind(other))),
    };
    match l {
        Some(l) if l >= 0 && (l as usize) < n => Ok(Some(l as usize)),
        _ => Err(format!(
            "label {} is not a choice index 0..{}",
            v.map(|v| v.to_string()).unwrap_or_default(),
            n - 1
        )),
    }
}

fn strings(v: Option<&Value>, field: &str) -> std::result::Result<Vec<String>, String> {
    let arr = v
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no `{field}` array"))?;
    arr.iter()
        .enumerate()
        .map(|(i, e)| match e.as_str() {
            Some(s) if !s.trim().is_empty() => Ok(s.to_string()),
            _ => Err(format!("`{field}[{i}]` is empty or not a string")),
        })
        .collect()
}

/// HellaSwag JSON lines: the official layout (`ctx_a`, `ctx_b`, `endings`,
/// `label`; test files have no label) or one with a joined `ctx`.
pub fn read_hellaswag_jsonl(
    path: &Path,
    opts: &ReadOptions,
    report: &mut SkipReport,
) -> Result<Vec<Example>> {
    read_jsonl(path, opts, report, |v, line| {
        let id = v
            .get("ind")
            .map(|i| i.to_string())
            .unwrap_or_else(|| format!("hellaswag:{line}"));
        let endings = strings(v.get("endings"), "endings")?;
        if endings.len() < 2 {
            return Err(format!(
                "{} endings; a multiple-choice example needs at least 2",
                endings.len()
            ));
        }
        let (prompt, choices) = if v.get("ctx_a").is_some() {
            let ctx_b = v.get("ctx_b").and_then(Value::as_str).unwrap_or("");
            (
                json_text(v, "ctx_a")?,
                endings
                    .iter()
                    .map(|e| format!("{ctx_b} {e}").trim().to_string())
                    .collect(),
            )
        } else {
            (json_text(v, "ctx")?, endings)
        };
        let label = choice_label(v.get("label"), choices.len())?;
        Ok(Row::Keep(Example::Choice {
            id,
            line,
            prompt,
            choices,
            label,
        }))
    })
}

/// HellaSwag as 6 lines per example (the text in shared,
/// `hellaswag_val_full.txt.bz2`): the context, the gold label (0-3), then the
/// four endings. An example's line is its context line.
pub fn read_hellaswag_txt(
    path: &Path,
    opts: &ReadOptions,
    report: &mut SkipReport,
) -> Result<Vec<Example>> {
    let mut sink = Sink::new(path, opts, report);
    let mut out = Vec::new();
    let mut group: Vec<(usize, String)> = Vec::with_capacity(6);
    let mut lines = Lines::open(path)?;
    loop {
        let next = lines.next().transpose()?;
        if let Some(l) = next.clone() {
            group.push(l);
            if group.len() < 6 {
                continue;
            }
        } else if group.is_empty() {
            break;
        }
        if sink.full(out.len()) {
            break;
        }
        let first = group[0].0;
        let r = (|| -> std::result::Result<Example, String> {
            if group.len() < 6 {
                return Err(format!(
                    "the file ends inside an example: {} of its 6 lines",
                    group.len()
                ));
            }
            let prompt = nonempty(&group[0].1, "context")?;
            let label = match group[1].1.trim().parse::<usize>() {
                Ok(l) if l < 4 => l,
                _ => {
                    return Err(format!(
                        "line {} should be the gold label 0-3, found `{}`",
                        group[1].0, group[1].1
                    ))
                }
            };
            let choices = group[2..]
                .iter()
                .map(|(n, s)| nonempty(s, &format!("ending on line {n}")))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(Example::Choice {
                id: format!("hellaswag:{}", out.len()),
                line: first,
                prompt,
                choices,
                label: Some(label),
            })
        })();
        if let Some(ex) = sink.check(first, r)? {
            out.push(ex);
        }
        group.clear();
        if next.is_none() {
            break;
        }
    }
    Ok(out)
}

/// `{stem}-labels.lst` beside a Cosmos QA file (`valid.jsonl` ->
/// `valid-labels.lst`), one label per line, if it exists.
pub fn cosmos_labels_file(path: &Path) -> Option<PathBuf> {
    let name = plain_name(path);
    let stem = name.split('.').next().unwrap_or(&name).to_string();
    let p = path.with_file_name(format!("{stem}-labels.lst"));
    p.exists().then_some(p)
}

fn read_label_list(path: &Path) -> Result<Vec<(usize, usize)>> {
    let mut out = Vec::new();
    for item in Lines::open(path)? {
        let (no, l) = item?;
        if l.trim().is_empty() {
            continue;
        }
        let v = l
            .trim()
            .parse::<usize>()
            .map_err(|_| data_err(path, no, format!("`{l}` is not a choice index")))?;
        out.push((no, v));
    }
    Ok(out)
}

fn cosmos_example(
    id: String,
    line: usize,
    get: &dyn Fn(&str) -> Option<String>,
    label: Option<&Value>,
) -> std::result::Result<Example, String> {
    let field = |k: &str| -> std::result::Result<String, String> {
        nonempty(
            &get(k).ok_or_else(|| format!("no `{k}` field"))?,
            &format!("`{k}`"),
        )
    };
    let context = field("context")?;
    let question = field("question")?;
    let mut choices = Vec::new();
    for k in 0..4 {
        choices.push(field(&format!("answer{k}"))?);
    }
    let label = choice_label(label, 4)?;
    Ok(Example::Choice {
        id,
        line,
        prompt: format!("{context} {question}"),
        choices,
        label,
    })
}

/// Cosmos QA: JSON lines or CSV (header `id,context,question,answer0..answer3,label`,
/// quoted as the official csv files are). If `{stem}-labels.lst` sits
/// beside the file, its labels fill in missing ones and must agree with
/// those present.
pub fn read_cosmosqa(
    path: &Path,
    opts: &ReadOptions,
    report: &mut SkipReport,
) -> Result<Vec<Example>> {
    let mut examples = if crate::io::data_ext(path) == "csv" {
        read_cosmos_csv(path, opts, report)?
    } else {
        read_jsonl(path, opts, report, |v, line| {
            let id = v
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("cosmosqa:{line}"));
            let get = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
            Ok(Row::Keep(cosmos_example(id, line, &get, v.get("label"))?))
        })?
    };
    if let Some(lst) = cosmos_labels_file(path) {
        let labels = read_label_list(&lst)?;
        if report.bad_lines == 0 && opts.first.is_none() && labels.len() != examples.len() {
            return Err(data_err(
                &lst,
                labels.len(),
                format!(
                    "{} labels for {} examples in {}",
                    labels.len(),
                    examples.len(),
                    path.display()
                ),
            ));
        }
        let mut sink = Sink::new(path, opts, report);
        let mut keep = Vec::with_capacity(examples.len());
        for (i, mut ex) in examples.into_iter().enumerate() {
            let Some(&(lno, l)) = labels.get(i) else {
                keep.push(ex);
                continue;
            };
            if let Example::Choice { label, line, .. } = &mut ex {
                match label {
                    Some(have) if *have != l => {
                        sink.bad(
                            *line,
                            format!(
                                "label {have} disagrees with {}:{lno}, which says {l}",
                                lst.display()
                            ),
                        )?;
                        continue;
                    }
                    _ if l >= 4 => {
                        sink.bad(
                            *line,
                            format!(
                                "{}:{lno}: label {l} is not a choice index 0..3",
                                lst.display()
                            ),
                        )?;
                        continue;
                    }
                    _ => *label = Some(l),
                }
            }
            keep.push(ex);
        }
        examples = keep;
    }
    Ok(examples)
}

fn read_cosmos_csv(
    path: &Path,
    opts: &ReadOptions,
    report: &mut SkipReport,
) -> Result<Vec<Example>> {
    read_csv(
        path,
        opts,
        report,
        |header| Ok(header.to_vec()),
        |header, rec, line| {
            let get = |k: &str| {
                header
                    .iter()
                    .position(|h| h == k)
                    .map(|i| rec[i].to_string())
            };
            let id = get("id").unwrap_or_else(|| format!("cosmosqa:{line}"));
            let label = get("label").map(Value::String);
            cosmos_example(id, line, &get, label.as_ref()).map(Row::Keep)
        },
    )
}

/// CommonsenseQA JSON lines: the original layout
/// `{"answerKey", "id", "question": {"stem", "choices": [{"label", "text"}]}}`
/// or the Hugging Face one (`question` a string, `choices: {label: [..], text: [..]}`).
/// Test files have no `answerKey` (labels `None`).
pub fn read_commonsenseqa(
    path: &Path,
    opts: &ReadOptions,
    report: &mut SkipReport,
) -> Result<Vec<Example>> {
    read_jsonl(path, opts, report, |v, line| {
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("commonsenseqa:{line}"));
        let (stem, keys, texts): (String, Vec<String>, Vec<String>) = match v.get("question") {
            Some(q @ Value::Object(_)) => {
                let stem = json_text(q, "stem")?;
                let arr = q
                    .get("choices")
                    .and_then(Value::as_array)
                    .ok_or("no `question.choices` array")?;
                let mut keys = Vec::new();
                let mut texts = Vec::new();
                for (i, c) in arr.iter().enumerate() {
                    keys.push(
                        c.get("label")
                            .and_then(Value::as_str)
                            .ok_or(format!("choice {i} has no `label`"))?
                            .to_string(),
                    );
                    texts.push(json_text(c, "text").map_err(|m| format!("choice {i}: {m}"))?);
                }
                (stem, keys, texts)
            }
            Some(Value::String(_)) => {
                let stem = json_text(v, "question")?;
                let c = v.get("choices").ok_or("no `choices`")?;
                (
                    stem,
                    strings(c.get("label"), "choices.label")?,
                    strings(c.get("text"), "choices.text")?,
                )
            }
            _ => {
                return Err(
                    "no `question` (an object with `stem` and `choices`, or a string)".into(),
                )
            }
        };
        if texts.len() < 2 || keys.len() != texts.len() {
            return Err(format!(
                "{} choices with {} keys; need at least 2, one key each",
                texts.len(),
                keys.len()
            ));
        }
        let label = match v.get("answerKey").and_then(Value::as_str) {
            None | Some("") => None,
            Some(k) => Some(keys.iter().position(|x| x == k).ok_or_else(|| {
                format!("answerKey `{k}` is not one of the choice labels {keys:?}")
            })?),
        };
        Ok(Row::Keep(Example::Choice {
            id,
            line,
            prompt: stem,
            choices: texts,
            label,
        }))
    })
}
