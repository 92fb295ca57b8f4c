//! Prediction, in one place: a fine-tuned classifier applied to new text
//! ([`predict`]: `stilts predict` and the script's `m.predict(..)`), and the
//! classes of token batches ([`predict_classes`]).

use std::io::Write;
use std::path::Path;

use candle_core::D;

use stilts_model::error::{Error, Result, WithPath};
use stilts_model::{Inputs, Model, Output};

/// One input line: a text, or a premise and hypothesis.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// Its line number in the input, from 1 (blank lines counted).
    pub line: usize,
    /// The text, or the premise.
    pub first: String,
    /// The hypothesis; `None` for a single text.
    pub second: Option<String>,
}

/// Reads `text` or `premise<TAB>hypothesis` lines; blank lines are skipped,
/// anything else malformed is an error naming the line.
pub fn read_examples(path: &Path) -> Result<Vec<Example>> {
    let text = stilts_model::error::read_to_string(path)?;
    Ok(parse_examples(path, &text, false)?.0)
}

/// Reads examples from `source`: a file, or `-` for standard input. With
/// `skip_bad_lines` a malformed line is left out and returned (file and
/// line, what is wrong) instead of failing.
pub fn read_source(source: &Path, skip_bad_lines: bool) -> Result<(Vec<Example>, Vec<BadLine>)> {
    let text = if source == Path::new("-") {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut t).with_path("<stdin>")?;
        t
    } else {
        stilts_model::error::read_to_string(source)?
    };
    let name = if source == Path::new("-") {
        Path::new("<stdin>")
    } else {
        source
    };
    parse_examples(name, &text, skip_bad_lines)
}

/// A line left out under `--skip-bad-lines`.
pub type BadLine = stilts_tasks::BadLine;

fn parse_examples(path: &Path, text: &str, skip: bool) -> Result<(Vec<Example>, Vec<BadLine>)> {
    let mut out = vec![];
    let mut bad_lines = vec![];
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let problem = match fields.as_slice() {
            [a] => {
                out.push(Example {
                    line: line_no,
                    first: a.to_string(),
                    second: None,
                });
                None
            }
            [a, b] if a.trim().is_empty() || b.trim().is_empty() => {
                Some("empty premise or hypothesis".to_string())
            }
            [a, b] => {
                out.push(Example {
                    line: line_no,
                    first: a.to_string(),
                    second: Some(b.to_string()),
                });
                None
            }
            _ => Some(format!(
                "expected `text` or `premise<TAB>hypothesis`, found {} tab-separated fields",
                fields.len()
            )),
        };
        if let Some(msg) = problem {
            if !skip {
                return Err(Error::Data {
                    path: path.to_path_buf(),
                    line: line_no,
                    msg: format!(
                        "{msg}; fix the line, or leave such lines out with --skip-bad-lines"
                    ),
                });
            }
            bad_lines.push(BadLine {
                path: path.to_path_buf(),
                line: line_no,
                msg,
            });
        }
    }
    Ok((out, bad_lines))
}

/// Label names of sentence-pair tasks (NLI, paraphrase).
const PAIR_LABELS: &[&str] = &[
    "entailment",
    "contradiction",
    "not_entailment",
    "paraphrase",
    "duplicate",
    "not_duplicate",
];

/// A warning when a model whose labels are those of a sentence-pair task
/// (NLI: entailment, neutral, contradiction) is given single texts.
pub fn pair_warning(model: &Model, examples: &[Example]) -> Option<String> {
    let labels = model.head.kind.labels();
    if !labels
        .iter()
        .any(|l| PAIR_LABELS.contains(&l.to_ascii_lowercase().as_str()))
    {
        return None;
    }
    let single: Vec<usize> = examples
        .iter()
        .filter(|e| e.second.is_none())
        .map(|e| e.line)
        .collect();
    let first = single.first()?;
    Some(format!(
        "the model's labels ({}) are those of a sentence-pair task, but {} line{} hold{} one text (the first: line {first}); give `premise<TAB>hypothesis` for a meaningful label",
        labels.join(", "),
        single.len(),
        if single.len() == 1 { "" } else { "s" },
        if single.len() == 1 { "s" } else { "" },
    ))
}

/// The prediction for one example.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Prediction {
    /// The example's line number in the input.
    pub line: usize,
    /// The head's scores, one per label (f32, before softmax).
    pub logits: Vec<f32>,
    /// Softmax of `logits`.
    pub probs: Vec<f32>,
    /// Name of the most probable label.
    pub label: String,
}

/// Predicts every example with dynamic padding over length-sorted batches;
/// results come back in input order.
pub fn predict(
    model: &Model,
    examples: &[Example],
    batch_size: usize,
    max_length: usize,
) -> Result<Vec<Prediction>> {
    let tok = model.tokenizer.as_ref().ok_or_else(|| {
        Error::msg("this model has no tokenizer.json; save it with its tokenizer")
    })?;
    let labels = model.head.kind.labels().to_vec();
    if labels.is_empty() {
        return Err(Error::msg(format!(
            "predict needs a classification model; this one has a {} head",
            model.head.kind.name()
        )));
    }
    let max_length = max_length.min(model.config().max_sequence_length());
    let items: Vec<(String, Option<String>)> = examples
        .iter()
        .map(|e| (e.first.clone(), e.second.clone()))
        .collect();
    let ids = tok.encode_batch(&items, max_length)?;
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
    let mut results: Vec<Option<Prediction>> = vec![None; ids.len()];
    let device = model.encoder.device().clone();
    let model = &model.for_inference()?;
    for chunk in order.chunks(batch_size.max(1)) {
        let rows: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
        let inputs = Inputs::pad(&rows, tok.pad_id(), &device)?;
        let logits = match model.forward(&inputs, None)? {
            Output::Logits(l) => l,
            Output::Span { .. } => return Err(Error::msg("predict supports classification heads")),
        };
        let logits = logits.to_dtype(candle_core::DType::F32)?;
        let probs = candle_nn::ops::softmax(&logits, D::Minus1)?;
        let (logits, probs) = (logits.to_vec2::<f32>()?, probs.to_vec2::<f32>()?);
        for (k, &i) in chunk.iter().enumerate() {
            let best = probs[k]
                .iter()
                .enumerate()
                .fold(0, |b, (j, p)| if *p > probs[k][b] { j } else { b });
            results[i] = Some(Prediction {
                line: examples[i].line,
                logits: logits[k].clone(),
                probs: probs[k].clone(),
                label: labels[best].clone(),
            });
        }
    }
    Ok(results.into_iter().flatten().collect())
}

/// Predicted class (argmax) of each row, in batch order, with dropout off
/// and no graph kept.
pub fn predict_classes(model: &Model, batches: &[Inputs]) -> Result<Vec<usize>> {
    let model = &model.for_inference()?;
    let mut out = vec![];
    for inputs in batches {
        let logits: candle_core::Tensor = model.forward(inputs, None)?.logits()?.detach();
        let best = logits
            .argmax(candle_core::D::Minus1)?
            .to_dtype(candle_core::DType::U32)?
            .to_vec1::<u32>()?;
        out.extend(best.into_iter().map(|b| b as usize));
    }
    Ok(out)
}

/// Writes predictions as JSON lines.
pub fn write_jsonl(preds: &[Prediction], out: &mut impl Write) -> Result<()> {
    for p in preds {
        let line = serde_json::to_string(p).map_err(|e| Error::msg(e.to_string()))?;
        writeln!(out, "{line}").with_path("<stdout>")?;
    }
    Ok(())
}
