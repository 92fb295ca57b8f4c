//! Scores: accuracy, tagging accuracy and the official SQuAD v1.1 and v2.0
//! evaluation scripts (`evaluate-v1.1.py`, `evaluate-v2.0.py`), all in percent.

use std::collections::HashMap;

use super::example::Example;
use stilts_model::error::{Error, Result};

/// Whether each prediction is right, one entry per example (what the
/// seed-aware bootstrap resamples); an example without a gold label is an
/// error naming it (`ids[i]`): evaluate on a split with labels.
///
/// ```
/// use stilts_tasks::metrics::{class_hits, percent};
/// let hits = class_hits(&[0, 2, 1], &[Some(0), Some(1), Some(1)], &["a", "b", "c"]).unwrap();
/// assert_eq!(hits, [true, false, true]);
/// assert!((percent(&hits) - 66.666).abs() < 1e-2);
/// assert!(class_hits(&[0], &[None], &["a"]).unwrap_err().to_string().contains("`a` has no gold label"));
/// ```
pub fn class_hits(pred: &[usize], gold: &[Option<usize>], ids: &[&str]) -> Result<Vec<bool>> {
    if pred.len() != gold.len() {
        return Err(Error::msg(format!(
            "{} predictions for {} examples",
            pred.len(),
            gold.len()
        )));
    }
    pred.iter()
        .zip(gold)
        .enumerate()
        .map(|(i, (p, g))| match g {
            Some(g) => Ok(p == g),
            None => Err(Error::msg(format!(
                "example `{}` has no gold label; evaluate on a split with labels",
                ids.get(i).copied().unwrap_or("?")
            ))),
        })
        .collect()
}

/// Whether each tagged token is right, one entry per gold tag that is not
/// -100 (words, when the tags sit on first sub-tokens); a predicted
/// sequence shorter than its gold one gets the missing tokens wrong.
///
/// ```
/// let hits = stilts_tasks::metrics::tagging_hits(&[vec![3, 1, 7]], &[vec![3, -100, 2]]).unwrap();
/// assert_eq!(hits, [true, false]);
/// ```
pub fn tagging_hits(pred: &[Vec<u32>], gold: &[Vec<i64>]) -> Result<Vec<bool>> {
    if pred.len() != gold.len() {
        return Err(Error::msg(format!(
            "{} predicted sequences for {} gold ones",
            pred.len(),
            gold.len()
        )));
    }
    Ok(pred
        .iter()
        .zip(gold)
        .flat_map(|(p, g)| {
            g.iter()
                .enumerate()
                .filter(|(_, &t)| t >= 0)
                .map(move |(i, &t)| p.get(i).is_some_and(|&x| x as i64 == t))
        })
        .collect())
}

/// The share of hits in percent; NaN for none (no score, not a zero).
pub fn percent(hits: &[bool]) -> f64 {
    if hits.is_empty() {
        f64::NAN
    } else {
        100.0 * hits.iter().filter(|&&h| h).count() as f64 / hits.len() as f64
    }
}

/// SQuAD's `normalize_answer`: lower case, drop ASCII punctuation
/// (`string.punctuation`), drop the words a/an/the (`\b(a|an|the)\b`),
/// collapse whitespace.
pub fn normalize_answer(s: &str) -> String {
    let lower = s.to_lowercase();
    let no_punc: String = lower
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    // \b(a|an|the)\b: a whole run of word characters equal to an article.
    let mut no_art = String::with_capacity(no_punc.len());
    let chars: Vec<char> = no_punc.chars().collect();
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let mut i = 0;
    while i < chars.len() {
        if is_word(chars[i]) {
            let j = (i..chars.len())
                .find(|&j| !is_word(chars[j]))
                .unwrap_or(chars.len());
            let w: String = chars[i..j].iter().collect();
            if matches!(w.as_str(), "a" | "an" | "the") {
                no_art.push(' ');
            } else {
                no_art.push_str(&w);
            }
            i = j;
        } else {
            no_art.push(chars[i]);
            i += 1;
        }
    }
    no_art.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn tokens(s: &str) -> Vec<String> {
    normalize_answer(s)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Exact match after normalisation (0 or 1).
pub fn exact_match(pred: &str, gold: &str) -> f64 {
    f64::from(u8::from(normalize_answer(pred) == normalize_answer(gold)))
}

/// Token F1 after normalisation, as `evaluate-v2.0.py` (`compute_f1`): if
/// either side is empty, 1 when both are, else 0. (For non-empty answers
/// this is v1.1's `f1_score` too.)
pub fn f1(pred: &str, gold: &str) -> f64 {
    let p = tokens(pred);
    let g = tokens(gold);
    if p.is_empty() || g.is_empty() {
        return f64::from(u8::from(p == g));
    }
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for t in &g {
        *counts.entry(t.as_str()).or_default() += 1;
    }
    let mut same = 0i64;
    for t in &p {
        if let Some(c) = counts.get_mut(t.as_str()) {
            if *c > 0 {
                *c -= 1;
                same += 1;
            }
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / p.len() as f64;
    let recall = same as f64 / g.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

/// SQuAD scores in percent.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SquadScores {
    /// Exact match, percent of questions (best over each question's gold answers).
    pub exact: f64,
    /// Token-overlap F1, percent (best over each question's gold answers).
    pub f1: f64,
    /// Number of questions scored.
    pub total: usize,
    /// SQuAD 2.0 only: the answerable and the unanswerable questions apart.
    pub has_ans_exact: Option<f64>,
    /// F1 (percent) over the answerable questions; `None` under SQuAD v1.1 or
    /// when there are none.
    pub has_ans_f1: Option<f64>,
    /// Number of answerable questions (0 under SQuAD v1.1).
    pub has_ans_total: usize,
    /// Exact match (percent) over the unanswerable questions; `None` under
    /// SQuAD v1.1 or when there are none.
    pub no_ans_exact: Option<f64>,
    /// F1 (percent) over the unanswerable questions; `None` under SQuAD v1.1
    /// or when there are none.
    pub no_ans_f1: Option<f64>,
    /// Number of unanswerable questions (0 under SQuAD v1.1).
    pub no_ans_total: usize,
}

fn gold_texts(ex: &Example) -> Result<(&str, Vec<&str>, bool)> {
    match ex {
        Example::Span {
            id,
            answers,
            is_impossible,
            ..
        } => Ok((
            id.as_str(),
            answers.iter().map(|a| a.text.as_str()).collect(),
            *is_impossible,
        )),
        other => Err(Error::msg(format!(
            "example {} is not an extractive-QA example",
            other.id()
        ))),
    }
}

/// `evaluate-v1.1.py`: the best EM and F1 over the gold answers, averaged
/// over every question (a question without a prediction scores 0, as the
/// script does after its "Unanswered question" message).
pub fn squad_v1(
    examples: &[Example],
    predictions: &HashMap<String, String>,
) -> Result<SquadScores> {
    let (mut em, mut f, mut n) = (0.0, 0.0, 0usize);
    for ex in examples {
        let (id, golds, _) = gold_texts(ex)?;
        n += 1;
        let Some(p) = predictions.get(id) else {
            continue;
        };
        em += golds.iter().map(|g| exact_match(p, g)).fold(0.0, f64::max);
        f += golds.iter().map(|g| f1(p, g)).fold(0.0, f64::max);
    }
    let pct = |x: f64| if n == 0 { 0.0 } else { 100.0 * x / n as f64 };
    Ok(SquadScores {
        exact: pct(em),
        f1: pct(f),
        total: n,
        ..Default::default()
    })
}

/// `evaluate-v2.0.py` (no thresholding on no-answer probabilities): gold
/// answers that normalise to nothing are dropped, an unanswerable question's
/// gold is `""`, an empty prediction means "no answer". A missing
/// prediction is an error, as in the script.
pub fn squad_v2(
    examples: &[Example],
    predictions: &HashMap<String, String>,
) -> Result<SquadScores> {
    let mut rows: Vec<(bool, f64, f64)> = Vec::new();
    for ex in examples {
        let (id, golds, _) = gold_texts(ex)?;
        let mut golds: Vec<&str> = golds
            .into_iter()
            .filter(|g| !normalize_answer(g).is_empty())
            .collect();
        let has_ans = !golds.is_empty();
        if golds.is_empty() {
            golds.push("");
        }
        let p = predictions
            .get(id)
            .ok_or_else(|| Error::msg(format!("no prediction for question {id}")))?;
        let em = golds.iter().map(|g| exact_match(p, g)).fold(0.0, f64::max);
        let f = golds.iter().map(|g| f1(p, g)).fold(0.0, f64::max);
        rows.push((has_ans, em, f));
    }
    let avg = |sel: &dyn Fn(&(bool, f64, f64)) -> bool, k: usize| -> (Option<f64>, usize) {
        let v: Vec<f64> = rows
            .iter()
            .filter(|r| sel(r))
            .map(|r| if k == 0 { r.1 } else { r.2 })
            .collect();
        let n = v.len();
        ((n > 0).then(|| 100.0 * v.iter().sum::<f64>() / n as f64), n)
    };
    let (exact, total) = avg(&|_| true, 0);
    let (f, _) = avg(&|_| true, 1);
    let (he, hn) = avg(&|r| r.0, 0);
    let (hf, _) = avg(&|r| r.0, 1);
    let (ne, nn) = avg(&|r| !r.0, 0);
    let (nf, _) = avg(&|r| !r.0, 1);
    Ok(SquadScores {
        exact: exact.unwrap_or(0.0),
        f1: f.unwrap_or(0.0),
        total,
        has_ans_exact: he,
        has_ans_f1: hf,
        has_ans_total: hn,
        no_ans_exact: ne,
        no_ans_f1: nf,
        no_ans_total: nn,
    })
}
