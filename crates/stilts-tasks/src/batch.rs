//! Batches without waste: dynamic padding, length-bucketed training batches
//! (deterministic per seed), length-sorted evaluation batches whose results
//! go back to the original order, a fixed batch size or a token budget, and
//! the collate step to `(Inputs, Target)`.
//!
//! Training batches: shuffle all indices with the seed, cut them into
//! buckets of about [`BUCKET_BATCHES`] batches, sort each bucket by length,
//! cut it into batches, then shuffle the order of all batches. Batches hold
//! examples of similar length (little padding) and still come in random order.

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::features::{Feature, Label};
use stilts_model::error::{Error, Result};
use stilts_model::loss::IGNORE_INDEX;
use stilts_model::{HeadKind, Inputs, Target};

/// Batches per bucket of the length-bucketed sampler.
pub const BUCKET_BATCHES: usize = 50;

/// How big a batch is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BatchSize {
    /// A fixed number of features (the last batch may be smaller).
    Examples(usize),
    /// At most this many tokens once padded (`features × rows × longest`);
    /// a feature longer than the budget goes alone in its batch.
    Tokens(usize),
}

/// The padded cost of each feature (`rows × length`), what batching sorts by.
pub fn lengths(features: &[Feature]) -> Vec<usize> {
    features.iter().map(Feature::cost).collect()
}

/// Cuts `order` (indices into `lens`) into consecutive batches.
fn cut(order: &[usize], lens: &[usize], size: BatchSize) -> Vec<Vec<usize>> {
    match size {
        BatchSize::Examples(n) => order.chunks(n.max(1)).map(<[usize]>::to_vec).collect(),
        BatchSize::Tokens(budget) => {
            let mut out = Vec::new();
            let mut cur: Vec<usize> = Vec::new();
            let mut longest = 0usize;
            for &i in order {
                let l = lens[i].max(1);
                let m = longest.max(l);
                if !cur.is_empty() && (cur.len() + 1) * m > budget {
                    out.push(std::mem::take(&mut cur));
                    longest = 0;
                }
                longest = longest.max(l);
                cur.push(i);
            }
            if !cur.is_empty() {
                out.push(cur);
            }
            out
        }
    }
}

/// Length-bucketed training batches over `lens.len()` features, the same
/// for the same seed; every index appears exactly once. Use a new seed per
/// epoch (e.g. `seed + epoch`).
pub fn train_batches(lens: &[usize], size: BatchSize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut idx: Vec<usize> = (0..lens.len()).collect();
    idx.shuffle(&mut rng);
    let mut buckets: Vec<Vec<usize>> = Vec::new();
    match size {
        BatchSize::Examples(n) => buckets.extend(
            idx.chunks((n.max(1)) * BUCKET_BATCHES)
                .map(<[usize]>::to_vec),
        ),
        BatchSize::Tokens(budget) => {
            let cap = budget.saturating_mul(BUCKET_BATCHES);
            let mut cur = Vec::new();
            let mut tokens = 0usize;
            for i in idx {
                tokens += lens[i];
                cur.push(i);
                if tokens >= cap {
                    buckets.push(std::mem::take(&mut cur));
                    tokens = 0;
                }
            }
            if !cur.is_empty() {
                buckets.push(cur);
            }
        }
    }
    let mut batches = Vec::new();
    for mut b in buckets {
        b.sort_by_key(|&i| lens[i]);
        batches.extend(cut(&b, lens, size));
    }
    batches.shuffle(&mut rng);
    batches
}

/// Training batches in the features' own order (`shuffle: false`): the
/// indices `0..lens.len()` cut into consecutive batches, with no shuffle and
/// no sorting by length, the same in every epoch: a file's order, as a
/// reference implementation that iterates its dataset unshuffled sees it.
pub fn in_order(lens: &[usize], size: BatchSize) -> Vec<Vec<usize>> {
    let order: Vec<usize> = (0..lens.len()).collect();
    cut(&order, lens, size)
}

/// Evaluation batches: features sorted by length, longest first (a batch
/// too big for memory shows up at once); put results back in order with
/// [`EvalPlan::restore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvalPlan {
    /// Feature indices of each batch, longest features first.
    pub batches: Vec<Vec<usize>>,
    /// Number of features planned for (every index below it is in one batch).
    pub n: usize,
}

impl EvalPlan {
    /// The plan for features of padded costs `lens` (see `lengths`), cut by `size`.
    pub fn new(lens: &[usize], size: BatchSize) -> Self {
        let mut idx: Vec<usize> = (0..lens.len()).collect();
        idx.sort_by_key(|&i| std::cmp::Reverse(lens[i]));
        EvalPlan {
            batches: cut(&idx, lens, size),
            n: lens.len(),
        }
    }

    /// Results given batch by batch (in `batches` order, one per feature)
    /// back in the features' original order.
    pub fn restore<T>(&self, per_batch: Vec<Vec<T>>) -> Result<Vec<T>> {
        if per_batch.len() != self.batches.len() {
            return Err(Error::msg(format!(
                "{} batches of results for {} batches",
                per_batch.len(),
                self.batches.len()
            )));
        }
        let mut slots: Vec<Option<T>> = (0..self.n).map(|_| None).collect();
        for (k, (b, r)) in self.batches.iter().zip(per_batch).enumerate() {
            if b.len() != r.len() {
                return Err(Error::msg(format!(
                    "batch {k}: {} results for {} features",
                    r.len(),
                    b.len()
                )));
            }
            for (&i, v) in b.iter().zip(r) {
                slots[i] = Some(v);
            }
        }
        slots
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.ok_or_else(|| Error::msg(format!("no result for feature {i}"))))
            .collect()
    }
}

/// Pads a batch of features into model inputs and the target for `head`:
/// `Target::Class` `[B]` (classification, multiple choice; -100 where there
/// is no label), `Target::Span{start, end}` `[B]`, `Target::Tags` `[B, T]`
/// padded with -100. Multiple-choice rows are example-major
/// (`Inputs::with_choices(C)`); all features must have the same `C`.
pub fn collate(
    features: &[&Feature],
    head: &HeadKind,
    pad_id: u32,
    device: &Device,
) -> Result<(Inputs, Target)> {
    if features.is_empty() {
        return Err(Error::msg("an empty batch"));
    }
    let b = features.len();
    let class = |f: &Feature| -> Result<i64> {
        match &f.label {
            Label::Class(c) => Ok(*c as i64),
            Label::None => Ok(IGNORE_INDEX),
            other => Err(Error::msg(format!(
                "feature of example {} has label {other:?}, not a class",
                f.example
            ))),
        }
    };
    match head {
        HeadKind::Classification { .. } => {
            let rows: Vec<Vec<u32>> = features
                .iter()
                .map(|f| f.rows.first().cloned().unwrap_or_default())
                .collect();
            let inputs = Inputs::pad(&rows, pad_id, device)?;
            let y = features
                .iter()
                .map(|f| class(f))
                .collect::<Result<Vec<_>>>()?;
            Ok((inputs, Target::Class(Tensor::from_vec(y, b, device)?)))
        }
        HeadKind::MultipleChoice => {
            let c = features[0].rows.len();
            if let Some(f) = features.iter().find(|f| f.rows.len() != c) {
                return Err(Error::msg(format!(
                    "a multiple-choice batch mixes {c} and {} choices (example {})",
                    f.rows.len(),
                    f.example
                )));
            }
            let rows: Vec<Vec<u32>> = features
                .iter()
                .flat_map(|f| f.rows.iter().cloned())
                .collect();
            let inputs = Inputs::pad(&rows, pad_id, device)?.with_choices(c);
            let y = features
                .iter()
                .map(|f| class(f))
                .collect::<Result<Vec<_>>>()?;
            Ok((inputs, Target::Class(Tensor::from_vec(y, b, device)?)))
        }
        HeadKind::SpanQa => {
            let rows: Vec<Vec<u32>> = features
                .iter()
                .map(|f| f.rows.first().cloned().unwrap_or_default())
                .collect();
            let inputs = Inputs::pad(&rows, pad_id, device)?;
            let mut s = Vec::with_capacity(b);
            let mut e = Vec::with_capacity(b);
            for f in features {
                match &f.label {
                    Label::Span { start, end } => {
                        s.push(*start as i64);
                        e.push(*end as i64);
                    }
                    Label::None => {
                        s.push(0);
                        e.push(0);
                    }
                    other => {
                        return Err(Error::msg(format!(
                            "feature of example {} has label {other:?}, not a span",
                            f.example
                        )))
                    }
                }
            }
            Ok((
                inputs,
                Target::Span {
                    start: Tensor::from_vec(s, b, device)?,
                    end: Tensor::from_vec(e, b, device)?,
                },
            ))
        }
        HeadKind::Tagging { .. } | HeadKind::MaskedLm => {
            let rows: Vec<Vec<u32>> = features
                .iter()
                .map(|f| f.rows.first().cloned().unwrap_or_default())
                .collect();
            let inputs = Inputs::pad(&rows, pad_id, device)?;
            let (_, t) = inputs.dims()?;
            let mut y = Vec::with_capacity(b * t);
            for f in features {
                let tags: &[i64] = match &f.label {
                    Label::Tags(v) => v,
                    Label::None => &[],
                    other => {
                        return Err(Error::msg(format!(
                            "feature of example {} has label {other:?}, not tags",
                            f.example
                        )))
                    }
                };
                y.extend_from_slice(&tags[..tags.len().min(t)]);
                y.extend(std::iter::repeat_n(IGNORE_INDEX, t - tags.len().min(t)));
            }
            Ok((inputs, Target::Tags(Tensor::from_vec(y, (b, t), device)?)))
        }
    }
}
