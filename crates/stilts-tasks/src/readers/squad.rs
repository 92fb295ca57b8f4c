//! SQuAD JSON, v1.1 and v2.0:
//! `{"version", "data": [{"title", "paragraphs": [{"context", "qas": [{"id",
//! "question", "answers": [{"text", "answer_start"}], "is_impossible"?,
//! "plausible_answers"?}]}]}]}`. `answer_start` counts characters.
//!
//! The file is one JSON document, so an example's "line" is the line where
//! its id first appears (1 for the official one-line files); a message names
//! the question id as well.

use std::path::Path;

use serde_json::Value;

use super::kind;
use crate::example::{Answer, Example};
use crate::io::{data_err, read_text, ReadOptions, Sink, SkipReport};
use stilts_model::error::Result;

/// Finds each id's line by searching forward from the previous one (ids
/// come in document order), so the whole pass stays linear.
struct LineFinder<'t> {
    text: &'t str,
    pos: usize,
    line: usize,
}

impl LineFinder<'_> {
    fn line_of(&mut self, id: &str) -> usize {
        let needle = format!("\"{id}\"");
        if let Some(off) = self.text[self.pos..].find(&needle) {
            self.line += self.text[self.pos..self.pos + off]
                .bytes()
                .filter(|&b| b == b'\n')
                .count();
            self.pos += off;
        }
        self.line
    }
}

fn answers(
    v: Option<&Value>,
    context: &str,
    n_chars: usize,
) -> std::result::Result<Vec<Answer>, String> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let arr = v
        .as_array()
        .ok_or_else(|| format!("`answers` is {}, not an array", kind(v)))?;
    let mut out = Vec::with_capacity(arr.len());
    for (k, a) in arr.iter().enumerate() {
        let text = a
            .get("text")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("answer {k} has no `text` string"))?;
        let start = a
            .get("answer_start")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("answer {k} has no non-negative integer `answer_start`"))?
            as usize;
        if text.trim().is_empty() {
            return Err(format!("answer {k} has an empty text"));
        }
        let len = text.chars().count();
        if start + len > n_chars {
            return Err(format!("answer {k} `{text}` at char {start}..{} lies outside its context ({n_chars} chars)", start + len));
        }
        let found: String = context.chars().skip(start).take(len).collect();
        if found != text {
            return Err(format!("answer {k} `{text}` does not match the context at char {start} (it says `{found}`)"));
        }
        out.push(Answer {
            text: text.to_string(),
            start,
        });
    }
    Ok(out)
}

/// Reads SQuAD v1.1 or v2.0 JSON. Checks: non-empty question and context,
/// each answer inside its context and equal to the context text at
/// `answer_start`; an answerable question (v1.1, or v2.0 with
/// `is_impossible: false`) must have an answer, an impossible one none.
pub fn read_squad(
    path: &Path,
    opts: &ReadOptions,
    report: &mut SkipReport,
) -> Result<Vec<Example>> {
    let text = read_text(path)?;
    let doc: Value = serde_json::from_str(&text)
        .map_err(|e| data_err(path, e.line(), format!("bad JSON: {e}")))?;
    let data = doc
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| data_err(path, 1, "not a SQuAD file: no top-level `data` array"))?;
    let mut finder = LineFinder {
        text: &text,
        pos: 0,
        line: 1,
    };
    let mut sink = Sink::new(path, opts, report);
    let mut out = Vec::new();
    for (ai, article) in data.iter().enumerate() {
        let Some(paragraphs) = article.get("paragraphs").and_then(Value::as_array) else {
            sink.bad(
                finder.line,
                format!("article {ai} has no `paragraphs` array"),
            )?;
            continue;
        };
        for (pi, p) in paragraphs.iter().enumerate() {
            let context = p.get("context").and_then(Value::as_str).unwrap_or("");
            let qas = p.get("qas").and_then(Value::as_array);
            if context.trim().is_empty() || qas.is_none() {
                sink.bad(
                    finder.line,
                    format!("article {ai} paragraph {pi}: empty context or no `qas` array"),
                )?;
                continue;
            }
            let n_chars = context.chars().count();
            for q in qas.into_iter().flatten() {
                if sink.full(out.len()) {
                    return Ok(out);
                }
                let id = match q.get("id") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => String::new(),
                };
                let line = if id.is_empty() {
                    finder.line
                } else {
                    finder.line_of(&id)
                };
                let r = (|| -> std::result::Result<Example, String> {
                    if id.is_empty() {
                        return Err(format!(
                            "article {ai} paragraph {pi}: a question has no `id`"
                        ));
                    }
                    let question = q.get("question").and_then(Value::as_str).unwrap_or("");
                    if question.trim().is_empty() {
                        return Err(format!("question {id}: empty question"));
                    }
                    let is_impossible = q
                        .get("is_impossible")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let ans = answers(q.get("answers"), context, n_chars)
                        .map_err(|m| format!("question {id}: {m}"))?;
                    if is_impossible && !ans.is_empty() {
                        return Err(format!(
                            "question {id}: `is_impossible` is true but it has answers"
                        ));
                    }
                    if !is_impossible && ans.is_empty() {
                        return Err(format!(
                            "question {id}: no answers (and not marked `is_impossible`)"
                        ));
                    }
                    Ok(Example::Span {
                        id: id.clone(),
                        line,
                        question: question.to_string(),
                        context: context.to_string(),
                        answers: ans,
                        is_impossible,
                    })
                })();
                if let Some(ex) = sink.check(line, r)? {
                    out.push(ex);
                }
            }
        }
    }
    Ok(out)
}
