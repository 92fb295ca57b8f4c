//! Named recipes and the flat option map a researcher overrides key by key.
//!
//! - `jiant`: the X-STILTs recipe of Phang et al. 2020 as run in jiant
//!   (lr 1e-5, effective batch 32, 2 epochs, max length 256, 10% warm-up).
//! - `xtreme`: XTREME's XNLI fine-tuning for XLM-R large (lr 3e-5,
//!   effective batch 32, 5 epochs, max length 128, no warm-up, the
//!   checkpoint that is best on the English dev set).

use serde::{Deserialize, Serialize};

use super::optim::{AdamWConfig, Warmup};
use super::train::TrainOptions;
use crate::error::{Error, Result};

/// Everything a training call can be told, flat. Unknown keys are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunOptions {
    /// Peak learning rate.
    pub lr: f64,
    pub weight_decay: f64,
    pub epochs: usize,
    pub max_steps: Option<u64>,
    /// Examples per forward pass.
    pub batch_size: usize,
    /// Forward passes per update (effective batch = batch_size * grad_accum).
    pub grad_accum: usize,
    /// Padded batches of at most this many tokens instead of a fixed size.
    pub max_tokens: Option<usize>,
    /// Tokens per input, special tokens included.
    pub max_length: usize,
    /// Warm-up as a fraction of all updates...
    pub warmup: f64,
    /// ...or as a number of updates (wins when set).
    pub warmup_steps: Option<u64>,
    pub max_grad_norm: f64,
    pub seed: u64,
    /// Mixed precision: bf16 matmuls, f32 weights.
    pub bf16: bool,
    /// Recompute activations in backward (large models on one GPU).
    pub gradient_checkpointing: bool,
    /// AdamW with a factored second moment (about half the optimizer memory).
    pub factored_optimizer: bool,
    /// Evaluate on the dev set every N updates (default: once per epoch
    /// when a dev set is given) and keep the best weights.
    pub eval_every: Option<u64>,
    /// Early stopping after this many evaluations without improvement.
    pub patience: Option<usize>,
    /// Checkpoint every N updates (resume after a crash).
    pub checkpoint_every: Option<u64>,
    /// Use only the first N examples of each dataset (quick runs).
    pub limit: Option<usize>,
    /// STILTs: start the target phase with fresh AdamW moments (true, the
    /// default) or carry the intermediate phase's over (false).
    pub reset_optimizer: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        preset("jiant").expect("built-in preset")
    }
}

/// Names of the built-in presets.
pub const PRESETS: &[&str] = &["jiant", "xtreme"];

/// A built-in preset by name.
pub fn preset(name: &str) -> Result<RunOptions> {
    let base = RunOptions {
        lr: 1e-5,
        weight_decay: 0.01,
        epochs: 2,
        max_steps: None,
        batch_size: 32,
        grad_accum: 1,
        max_tokens: None,
        max_length: 256,
        warmup: 0.1,
        warmup_steps: None,
        max_grad_norm: 1.0,
        seed: 0,
        bf16: false,
        gradient_checkpointing: false,
        factored_optimizer: false,
        eval_every: None,
        patience: None,
        checkpoint_every: None,
        limit: None,
        reset_optimizer: true,
    };
    match name {
        "jiant" => Ok(base),
        "xtreme" => Ok(RunOptions {
            lr: 3e-5,
            epochs: 5,
            max_length: 128,
            warmup: 0.0,
            weight_decay: 0.0,
            ..base
        }),
        other => Err(Error::msg(format!(
            "unknown preset `{other}`; presets: {}",
            PRESETS.join(", ")
        ))),
    }
}

impl RunOptions {
    /// `preset` (default `jiant`) with the keys of `overrides` (a JSON
    /// object) replaced. An unknown key is an error that lists the valid ones.
    pub fn from_overrides(
        preset_name: Option<&str>,
        overrides: &serde_json::Value,
    ) -> Result<Self> {
        let base = preset(preset_name.unwrap_or("jiant"))?;
        let mut value = serde_json::to_value(&base).map_err(|e| Error::msg(e.to_string()))?;
        match overrides {
            serde_json::Value::Object(m) => {
                let obj = value
                    .as_object_mut()
                    .expect("options serialise to an object");
                for (k, v) in m {
                    if !obj.contains_key(k) {
                        return Err(Error::msg(format!(
                            "unknown training option `{k}`; valid options: {}",
                            Self::keys().join(", ")
                        )));
                    }
                    obj.insert(k.clone(), v.clone());
                }
            }
            serde_json::Value::Null => {}
            other => {
                return Err(Error::msg(format!(
                    "training options must be a map, got {other}"
                )))
            }
        }
        serde_json::from_value(value).map_err(|e| Error::msg(format!("training options: {e}")))
    }

    /// The option names, for messages and documentation.
    pub fn keys() -> Vec<String> {
        match serde_json::to_value(preset("jiant").expect("built-in")) {
            Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            _ => vec![],
        }
    }

    /// The loop settings these options mean; `eval_every_default` is used
    /// when a dev set is given and `eval_every` is not set.
    pub fn train_options(&self, eval_every_default: Option<u64>) -> TrainOptions {
        TrainOptions {
            adamw: AdamWConfig {
                lr: self.lr,
                weight_decay: self.weight_decay,
                factored: self.factored_optimizer,
                ..Default::default()
            },
            warmup: match self.warmup_steps {
                Some(n) => Warmup::Steps(n),
                None => Warmup::Fraction(self.warmup),
            },
            epochs: self.epochs,
            max_steps: self.max_steps,
            grad_accum: self.grad_accum.max(1),
            max_grad_norm: self.max_grad_norm,
            seed: self.seed,
            bf16: self.bf16,
            gradient_checkpointing: self.gradient_checkpointing,
            eval_every: self.eval_every.or(eval_every_default),
            patience: self.patience,
            checkpoint_every: self.checkpoint_every,
            checkpoint_dir: None,
            initial_optimizer: None,
        }
    }
}
