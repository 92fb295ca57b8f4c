//! What one evaluation returns, whatever scored it (a head's metric in
//! `run`, nearest-neighbour retrieval in `retrieval`): its own room, so
//! that neither of those imports the other.

use std::collections::BTreeMap;

/// Examples per evaluation batch unless a call says otherwise (`evaluate`'s
/// `batch_size`, a condition's `eval_batch_size`).
pub const EVAL_BATCH_SIZE: usize = 64;

/// Tokens per evaluated input unless `evaluate`'s `max_length` says
/// otherwise (cut to what the model's positions allow).
pub const EVAL_MAX_LENGTH: usize = 256;

/// One evaluation: the task's metric in percent and each example's score.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// `accuracy`, `tagging accuracy` or `f1`.
    pub metric: String,
    /// The metric over the `n` examples, in percent.
    pub score: f64,
    /// Examples scored.
    pub n: usize,
    /// 1/0 per example (accuracy; per word for tagging), or its F1 (QA).
    pub per_example: Vec<f32>,
    /// Other figures of the metric (`exact` for SQuAD).
    pub extra: BTreeMap<String, f64>,
    /// Classification: how many times each class was predicted (by label);
    /// empty for other heads.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub predicted: BTreeMap<String, u64>,
}

impl Evaluation {
    /// Per-example correctness (score > 0.5), for bootstrap statistics.
    pub fn correct(&self) -> Vec<bool> {
        self.per_example.iter().map(|&x| x > 0.5).collect()
    }
}
