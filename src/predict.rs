//! `stilts predict`: apply a fine-tuned classifier to new text, one JSON line
//! per input line, in input order.

use std::io::Write;
use std::path::Path;

use candle_core::D;

use crate::error::{Error, Result};
use crate::model::{Inputs, Model, Output};

/// One input line: a text, or a premise and hypothesis.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    pub line: usize,
    pub first: String,
    pub second: Option<String>,
}

/// Reads `text` or `premise<TAB>hypothesis` lines; blank lines are skipped,
/// anything else malformed is an error naming the line.
pub fn read_examples(path: &Path) -> Result<Vec<Example>> {
    let text = crate::error::read_to_string(path)?;
    let mut out = vec![];
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        let bad = |msg: &str| Error::Data {
            path: path.to_path_buf(),
            line: line_no,
            msg: msg.to_string(),
        };
        let ex = match fields.as_slice() {
            [a] => Example {
                line: line_no,
                first: a.to_string(),
                second: None,
            },
            [a, b] => {
                if a.trim().is_empty() || b.trim().is_empty() {
                    return Err(bad("empty premise or hypothesis"));
                }
                Example {
                    line: line_no,
                    first: a.to_string(),
                    second: Some(b.to_string()),
                }
            }
            _ => {
                return Err(bad(&format!(
                    "expected `text` or `premise<TAB>hypothesis`, found {} tab-separated fields",
                    fields.len()
                )))
            }
        };
        out.push(ex);
    }
    Ok(out)
}

/// The prediction for one example.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Prediction {
    pub line: usize,
    pub logits: Vec<f32>,
    pub probs: Vec<f32>,
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

/// Writes predictions as JSON lines.
pub fn write_jsonl(preds: &[Prediction], out: &mut impl Write) -> Result<()> {
    for p in preds {
        let line = serde_json::to_string(p).map_err(|e| Error::msg(e.to_string()))?;
        writeln!(out, "{line}").map_err(|e| Error::io("<stdout>", e))?;
    }
    Ok(())
}
