//! From start/end logits of SQuAD windows to answer texts, as transformers'
//! `examples/pytorch/question-answering/utils_qa.py`
//! (`postprocess_qa_predictions`): for each example, over all its windows,
//! the `n_best` highest start and end logits, pairs inside the context with
//! `start <= end` and at most `max_answer_length` tokens, scored by
//! `start + end`; for SQuAD 2.0 the null answer (`<s>`, the lowest such score
//! over the windows) wins when `null - best_non_null > threshold`.

use std::collections::HashMap;

use super::example::Example;
use super::features::Feature;
use stilts_model::error::{Error, Result};

/// Post-processing settings (HF's defaults).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PostprocessOptions {
    /// How many of the highest start and of the highest end logits per window
    /// are paired into candidates (default 20).
    pub n_best: usize,
    /// Longest answer considered, in tokens (default 30).
    pub max_answer_length: usize,
    /// SQuAD 2.0: questions may have no answer.
    pub with_negative: bool,
    /// Predict no answer when `null_score - best_score > threshold`.
    pub null_threshold: f32,
}

impl Default for PostprocessOptions {
    fn default() -> Self {
        PostprocessOptions {
            n_best: 20,
            max_answer_length: 30,
            with_negative: false,
            null_threshold: 0.0,
        }
    }
}

impl PostprocessOptions {
    /// The defaults for SQuAD 2.0: no-answer predictions allowed, threshold 0.
    pub fn v2() -> Self {
        PostprocessOptions {
            with_negative: true,
            ..Default::default()
        }
    }
}

/// The answer chosen for one question.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QaPrediction {
    /// The question's id (the example's `id`).
    pub id: String,
    /// Empty for "no answer".
    pub text: String,
    /// `null_score - best_non_null_score` (SQuAD 2.0; 0 otherwise).
    pub null_score_diff: f32,
}

struct Candidate {
    start: usize,
    end: usize,
    score: f32,
    start_logit: f32,
    end_logit: f32,
    null: bool,
}

fn top(logits: &[f32], n: usize) -> Vec<usize> {
    // numpy argsort is ascending and HF reads it backwards: ties go to the later index.
    let cmp = |a: &usize, b: &usize| {
        logits[*b]
            .partial_cmp(&logits[*a])
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(b.cmp(a))
    };
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    if n < idx.len() {
        idx.select_nth_unstable_by(n, cmp);
        idx.truncate(n);
    }
    idx.sort_unstable_by(cmp);
    idx
}

/// Byte offset of every char boundary of `s` (and of its end).
fn char_bounds(s: &str) -> Vec<usize> {
    s.char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(s.len()))
        .collect()
}

fn char_slice<'s>(s: &'s str, bounds: &[usize], start: usize, end: usize) -> &'s str {
    let b = |i: usize| bounds[i.min(bounds.len() - 1)];
    &s[b(start)..b(end.max(start))]
}

/// Answers for `examples` (those of the features, by their `example`
/// index) from per-feature `(start_logits, end_logits)`, in example order.
/// Examples with no features get an empty answer.
pub fn postprocess(
    examples: &[Example],
    features: &[Feature],
    logits: &[(Vec<f32>, Vec<f32>)],
    opts: &PostprocessOptions,
) -> Result<Vec<QaPrediction>> {
    if features.len() != logits.len() {
        return Err(Error::msg(format!(
            "{} features but {} logit pairs",
            features.len(),
            logits.len()
        )));
    }
    let mut by_example: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, f) in features.iter().enumerate() {
        by_example.entry(f.example).or_default().push(i);
    }
    let mut out = Vec::with_capacity(examples.len());
    for (ei, ex) in examples.iter().enumerate() {
        let Example::Span { id, context, .. } = ex else {
            return Err(Error::msg(format!(
                "example {} is not an extractive-QA example",
                ex.id()
            )));
        };
        let mut cands: Vec<Candidate> = Vec::new();
        let mut min_null: Option<Candidate> = None;
        for &fi in by_example.get(&ei).map(Vec::as_slice).unwrap_or(&[]) {
            let (sl, el) = &logits[fi];
            let offsets = &features[fi].offsets;
            if sl.len() < offsets.len() || el.len() < offsets.len() {
                return Err(Error::msg(format!(
                    "feature {fi}: {} tokens but {}/{} logits",
                    offsets.len(),
                    sl.len(),
                    el.len()
                )));
            }
            let null = sl[0] + el[0];
            if min_null.as_ref().is_none_or(|m| m.score > null) {
                min_null = Some(Candidate {
                    start: 0,
                    end: 0,
                    score: null,
                    start_logit: sl[0],
                    end_logit: el[0],
                    null: true,
                });
            }
            // Logits past the window (padding) are never candidates.
            let sl = &sl[..offsets.len()];
            let el = &el[..offsets.len()];
            let ends = top(el, opts.n_best);
            for &s in &top(sl, opts.n_best) {
                for &e in &ends {
                    let (Some(so), Some(eo)) = (offsets[s], offsets[e]) else {
                        continue;
                    };
                    if e < s || e - s + 1 > opts.max_answer_length {
                        continue;
                    }
                    cands.push(Candidate {
                        start: so.0,
                        end: eo.1,
                        score: sl[s] + el[e],
                        start_logit: sl[s],
                        end_logit: el[e],
                        null: false,
                    });
                }
            }
        }
        if opts.with_negative {
            if let Some(m) = min_null.take() {
                cands.push(m);
            }
        }
        cands.sort_by(|a, b| {
            b.score
                .partial_cmp(&a.score)
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        // HF keeps the null answer even when it falls outside the n best.
        let null_pos = cands.iter().position(|c| c.null);
        let null_cand = null_pos
            .filter(|&p| p >= opts.n_best)
            .map(|p| cands.remove(p));
        cands.truncate(opts.n_best);
        if let Some(n) = null_cand {
            cands.push(n);
        }
        let bounds = char_bounds(context);
        let texts: Vec<String> = cands
            .iter()
            .map(|c| {
                if c.null {
                    String::new()
                } else {
                    char_slice(context, &bounds, c.start, c.end).to_string()
                }
            })
            .collect();
        let (text, diff) = if !opts.with_negative {
            (texts.first().cloned().unwrap_or_default(), 0.0)
        } else {
            let null = cands
                .iter()
                .find(|c| c.null)
                .map(|c| c.score)
                .unwrap_or(0.0);
            match cands.iter().zip(&texts).find(|(_, t)| !t.is_empty()) {
                Some((best, t)) => {
                    let diff = null - best.start_logit - best.end_logit;
                    if diff > opts.null_threshold {
                        (String::new(), diff)
                    } else {
                        (t.clone(), diff)
                    }
                }
                None => (String::new(), null),
            }
        };
        out.push(QaPrediction {
            id: id.clone(),
            text,
            null_score_diff: diff,
        });
    }
    Ok(out)
}
