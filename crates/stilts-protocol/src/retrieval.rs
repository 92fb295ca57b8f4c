//! Sentence retrieval as an evaluation (Tatoeba): no training data, no
//! head; the encoder as it is (pretrained, after an intermediate phase, or
//! fine-tuned: its head is ignored) embeds every sentence alone, and each
//! sentence's nearest neighbour on the other side must be its translation.
//!
//! The computation is XTREME's `third_party/evaluate_retrieval.py`: each
//! sentence encoded alone as `<s> … </s>` (at most 512 tokens), the mean
//! of one hidden state over the real tokens (special tokens included),
//! cosine similarity. Sentences are sorted by length and batched (little
//! padding), their vectors put back in file order; only the layers up to
//! the requested hidden state run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use super::evaluation::Evaluation;
use super::train::Progress;
use stilts_model::error::{Error, Result};
use stilts_model::{Inputs, Model, Pooling};
use stilts_tasks::retrieval::{self, Direction, Scoring};
use stilts_tasks::{BatchSize, Dataset, EvalPlan, Example, Metric};

/// How a retrieval evaluation runs (`evaluate(model, tatoeba, #{...})`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RetrievalOptions {
    /// The hidden state pooled: 0 the embeddings, k the output of layer k;
    /// `None`: [`default_layer`] of the model's depth.
    pub layer: Option<usize>,
    /// Mean over the tokens (XTREME's) or the first token.
    pub pooling: Pooling,
    /// xx→en (XTREME's score), en→xx, or both (LASER's mean).
    pub direction: Direction,
    /// Cosine (XTREME) or the ratio margin (LASER, k = 4).
    pub scoring: Scoring,
    /// Sentences per batch (XTREME's 100).
    pub batch_size: usize,
    /// Tokens per sentence, `<s>` and `</s>` included (XTREME's 512; at
    /// most what the model's positions allow).
    pub max_length: usize,
    /// Only the first N pairs of each language (a smaller candidate pool
    /// too: scores are not comparable with the full set's).
    pub limit: Option<usize>,
}

impl Default for RetrievalOptions {
    fn default() -> Self {
        RetrievalOptions {
            layer: None,
            pooling: Pooling::Mean,
            direction: Direction::XxEn,
            scoring: Scoring::Cosine,
            batch_size: 100,
            max_length: 512,
            limit: None,
        }
    }
}

/// The hidden state XTREME pools for an encoder of `layers` layers, and the
/// same relative depth for other depths. XTREME's `run_tatoeba.sh` passes
/// `--specific_layer 7` (12 layers) and `13` (24 layers) to
/// `evaluate_retrieval.py`, which indexes `hidden_states[-num_layers:]`,
/// the hidden states without the embeddings: index 7 is `hidden_states[8]`,
/// the output of layer 8 of 12, and 13 the output of layer 14 of 24. Other
/// depths: 2/3 of the depth up to 12 layers (8 of 12), 7/12 from 24 up (14
/// of 24), the line through (12, 8) and (24, 14) between (`L/2 + 2`),
/// rounded; at least 1.
///
/// ```
/// use stilts_protocol::retrieval::default_layer;
/// assert_eq!((default_layer(12), default_layer(24)), (8, 14));
/// assert_eq!((default_layer(2), default_layer(6), default_layer(18), default_layer(36)), (1, 4, 11, 21));
/// ```
pub fn default_layer(layers: usize) -> usize {
    let l = layers as f64;
    let k = if layers <= 12 {
        l * 2.0 / 3.0
    } else if layers >= 24 {
        l * 7.0 / 12.0
    } else {
        l / 2.0 + 2.0
    };
    (k.round() as usize).clamp(1.min(layers), layers)
}

/// The sentences of a retrieval dataset: (xx, en) per pair, the first
/// `limit` pairs.
fn pairs(ds: &Dataset, limit: Option<usize>) -> Result<(Vec<String>, Vec<String>)> {
    let n = limit.map_or(ds.len(), |l| l.min(ds.len()));
    let mut xx = Vec::with_capacity(n);
    let mut en = Vec::with_capacity(n);
    for e in &ds.examples[..n] {
        match e {
            Example::Text { a, b: Some(b), .. } => {
                xx.push(a.clone());
                en.push(b.clone());
            }
            other => {
                return Err(Error::msg(format!(
                    "{}: example `{}` is not a sentence pair",
                    ds.name(),
                    other.id()
                )))
            }
        }
    }
    Ok((xx, en))
}

/// Sentence vectors (`[n, H]` row-major, file order) of `texts`, encoded
/// alone, sorted by length into batches; `model` is an inference view.
pub fn sentence_vectors(
    model: &Model,
    texts: &[String],
    layer: usize,
    opts: &RetrievalOptions,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<(Vec<f32>, usize)> {
    let tok = model.tokenizer.as_ref().ok_or_else(|| {
        Error::msg("the model has no tokenizer (no tokenizer.json in its directory): copy its base model's tokenizer files next to it")
    })?;
    let max_length = opts.max_length.min(model.config().max_sequence_length());
    let items: Vec<(String, Option<String>)> = texts.iter().map(|t| (t.clone(), None)).collect();
    let ids = tok.encode_batch(&items, max_length)?;
    let lens: Vec<usize> = ids.iter().map(Vec::len).collect();
    let plan = EvalPlan::new(&lens, BatchSize::Examples(opts.batch_size.max(1)));
    let device = model.encoder.device().clone();
    let hidden = model.config().hidden_size;
    let mut per_batch: Vec<Vec<Vec<f32>>> = Vec::with_capacity(plan.batches.len());
    for (k, b) in plan.batches.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            progress.finish();
            return Err(Error::cancelled("retrieval evaluation"));
        }
        let rows: Vec<Vec<u32>> = b.iter().map(|&i| ids[i].clone()).collect();
        let inputs = Inputs::pad(&rows, tok.pad_id(), &device)?;
        let v = model
            .encoder
            .sentence_embeddings(&inputs, layer, opts.pooling)?;
        per_batch.push(v.to_vec2::<f32>()?);
        progress.step(k as u64 + 1, f64::NAN, 0.0);
    }
    let rows = plan.restore(per_batch)?;
    Ok((rows.concat(), hidden))
}

/// What one language's retrieval found.
#[derive(Clone, Debug, PartialEq)]
pub struct Retrieved {
    /// The hidden state pooled.
    pub layer: usize,
    /// Sentence pairs searched.
    pub pairs: usize,
    /// Per query, whether it retrieved its translation: the xx sentences in
    /// file order (xx→en), the English ones (en→xx), or both lists.
    pub hits: Vec<bool>,
    /// Per query, the line (from 0) of the sentence it retrieved.
    pub found: Vec<usize>,
}

/// Searches one language of a retrieval task with `model`'s encoder.
pub fn retrieve(
    model: &Model,
    ds: &Dataset,
    opts: &RetrievalOptions,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<Retrieved> {
    if ds.metric != Metric::Retrieval {
        return Err(Error::msg(format!(
            "{} is scored through a trained head, not by retrieval",
            ds.name()
        )));
    }
    let layers = model.config().num_hidden_layers;
    let layer = opts.layer.unwrap_or_else(|| default_layer(layers));
    if layer > layers {
        return Err(Error::msg(format!(
            "`layer: {layer}`: the model has {layers} layers; give 0 (the embeddings) to {layers} (its output)"
        )));
    }
    let (xx, en) = pairs(ds, opts.limit)?;
    if xx.is_empty() {
        return Err(Error::msg(format!("{}: no sentence pairs", ds.name())));
    }
    let model = &model.for_inference()?;
    let total = (2 * xx.len()).div_ceil(opts.batch_size.max(1)) as u64;
    progress.start(&format!("retrieval {}", ds.name()), total);
    let mut all = xx.clone();
    all.extend(en.iter().cloned());
    // Both sides in one plan: batches of similar lengths across them.
    let (v, dim) = sentence_vectors(model, &all, layer, opts, progress, cancel)?;
    progress.finish();
    let (vx, ve) = v.split_at(xx.len() * dim);
    let sim = retrieval::cosine_matrix(vx, ve, dim)?;
    let (hits, found) = retrieval::hits(&sim, opts.direction, opts.scoring);
    Ok(Retrieved {
        layer,
        pairs: xx.len(),
        hits,
        found,
    })
}

/// Retrieval accuracy of `model`'s encoder on one language of a retrieval
/// task: per query right/wrong (`per_example`: the xx sentences in file
/// order for xx→en, the English ones for en→xx, both lists for `both`), the
/// accuracy in percent, and in `extra` the hidden state used (`layer`) and,
/// for `both`, each direction's accuracy.
pub fn evaluate_retrieval(
    model: &Model,
    ds: &Dataset,
    opts: &RetrievalOptions,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<Evaluation> {
    let Retrieved {
        layer, pairs, hits, ..
    } = retrieve(model, ds, opts, progress, cancel)?;
    let mut extra = BTreeMap::from([("layer".to_string(), layer as f64)]);
    if opts.direction == Direction::Both {
        let n = pairs;
        extra.insert("xx-en".into(), stilts_tasks::metrics::percent(&hits[..n]));
        extra.insert("en-xx".into(), stilts_tasks::metrics::percent(&hits[n..]));
    }
    Ok(Evaluation {
        metric: ds.metric.name().to_string(),
        score: stilts_tasks::metrics::percent(&hits),
        n: hits.len(),
        per_example: hits.iter().map(|&h| f32::from(u8::from(h))).collect(),
        extra,
        predicted: BTreeMap::new(),
    })
}
