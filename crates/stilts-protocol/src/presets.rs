//! The one training configuration: every key a training call can be told
//! ([`RunOptions`]), the named presets as its constants, and the validation
//! of a researcher's overrides. The rhai layer hands the map it was given
//! to [`RunOptions::resolve`]; nothing else checks or fills options.
//!
//! - `jiant`: the X-STILTs recipe of Phang et al. 2020 as run in jiant
//!   (lr 1e-5, effective batch 32, 2 epochs, max length 256, 10% warm-up;
//!   with a dev set: evaluate every 1000 updates on its first 500 examples,
//!   keep the best, stop after 30 evaluations without gain).
//! - `xtreme`: XTREME's XNLI fine-tuning (effective batch 32, 5 epochs,
//!   length 128, no warm-up; lr 2e-5 for base-sized encoders and 3e-5 for
//!   large and up: the preset is size-aware; with a dev set, English XNLI
//!   dev in XTREME: evaluate every 100 updates and keep the best).

use serde::{Deserialize, Serialize};

use super::optim::{AdamWConfig, Warmup};
use super::train::TrainOptions;
use stilts_model::error::{Error, Result};

/// Everything a training call can be told, flat. Unknown keys are errors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunOptions {
    /// The preset these options were laid over (jiant, xtreme).
    pub preset: String,
    /// Peak learning rate.
    pub lr: f64,
    /// AdamW's decoupled weight decay, not applied to biases and LayerNorm
    /// weights (jiant 0.01, xtreme 0).
    pub weight_decay: f64,
    /// Passes over the training data (jiant 2, xtreme 5); not used with
    /// `max_steps`.
    pub epochs: usize,
    /// Train for exactly this many updates, cycling the data (a new shuffle
    /// each pass) as often as that takes: it overrides `epochs`, as
    /// `max_steps` does in transformers' Trainer. `None`: `epochs` passes.
    pub max_steps: Option<u64>,
    /// Examples per forward pass.
    pub batch_size: usize,
    /// Forward passes per update (effective batch = batch_size * grad_accum).
    pub grad_accum: usize,
    /// Padded batches of at most this many tokens instead of a fixed size.
    pub max_tokens: Option<usize>,
    /// Tokens per input, special tokens included. Span QA (SQuAD) takes
    /// its windows of this length when the caller sets it, else
    /// [`QA_MAX_LENGTH`] (run_qa.py's 384).
    pub max_length: usize,
    /// Span QA: tokens of overlap between a long context's windows
    /// (run_qa.py's `doc_stride`, 128).
    #[serde(
        default = "default_doc_stride",
        skip_serializing_if = "is_default_doc_stride"
    )]
    pub doc_stride: usize,
    /// Span QA: the window length when `max_length` was set by the caller
    /// (resolved, not a key of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qa_max_length: Option<usize>,
    /// Span QA: a question longer than this many tokens is cut to it
    /// before windowing (XTREME's and jiant's `max_query_length`, 64); how
    /// many were cut is said in the training line.
    #[serde(
        default = "default_max_query_length",
        skip_serializing_if = "is_default_max_query_length"
    )]
    pub max_query_length: usize,
    /// Warm-up as a fraction of all updates...
    pub warmup: f64,
    /// ...or as a number of updates (wins when set).
    pub warmup_steps: Option<u64>,
    /// Clip the global L2 norm of the gradients to this (1.0 in both presets).
    pub max_grad_norm: f64,
    /// Seeds the data order, dropout, new heads and `limit`'s sample (a
    /// condition replaces it with its own seed).
    pub seed: u64,
    /// Mixed precision: bf16 matmuls, f32 weights.
    pub bf16: bool,
    /// Recompute activations in backward (large models on one GPU).
    pub gradient_checkpointing: bool,
    /// AdamW with a factored second moment (about half the optimizer memory).
    pub factored_optimizer: bool,
    /// How a model with bf16 weights (`dtype: "bf16"`) takes its update:
    /// `kahan` (a bf16 compensation buffer, 2 bytes a parameter) or
    /// `stochastic` (unbiased random rounding, CPU only); left out: rounded
    /// to the nearest bf16, which loses updates below half a bf16 step
    /// (see `optim::lowmem`). An error on f32 weights.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bf16_update: Option<super::optim::lowmem::Bf16Update>,
    /// Apply each parameter's update inside backward as soon as its
    /// gradient exists and free it (the full gradients never exist at once).
    /// Needs `gradient_checkpointing` and `grad_accum: 1`; clips with the
    /// previous update's gradient norm (the first update is not clipped).
    #[serde(skip_serializing_if = "is_false")]
    pub fused_update: bool,
    /// AdamW's second moment stored in 8 bits (block-wise quantised, 1
    /// byte a parameter instead of 4; see `optim::lowmem::q8`). CPU only;
    /// not with `factored_optimizer`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub eight_bit_second_moment: bool,
    /// Evaluate on the dev set every N updates and keep the best weights.
    /// Unset: once per epoch when a dev set is given. The presets set it
    /// (`jiant`: 1000, `xtreme`: 100).
    pub eval_every: Option<u64>,
    /// Early stopping after this many evaluations without improvement.
    pub patience: Option<usize>,
    /// Score the dev set on its first N examples only (jiant: 500).
    pub dev_limit: Option<usize>,
    /// Checkpoint every N updates (resume after a crash); training in a
    /// script also checkpoints at the end of each phase and when stopped by
    /// Ctrl-C, SIGTERM or SIGUSR1. Not part of any fingerprint.
    pub checkpoint_every: Option<u64>,
    /// Use only the first N examples of each dataset (quick runs).
    pub limit: Option<usize>,
    /// Multi-task: at most N training examples of each task (a seeded
    /// sample), which also shortens training (jiant's `train_examples_cap`).
    pub train_examples_cap: Option<usize>,
    /// STILTs: start the target phase with fresh AdamW moments (true, the
    /// default) or carry the intermediate phase's over (false).
    pub reset_optimizer: bool,
    /// Parameters held fixed (no gradient, no optimizer state, no update):
    /// prefixes of parameter names, see [`crate::freeze::frozen_parameters`]
    /// (`["embeddings"]`, `["embeddings", "layers:0-3"]`).
    pub freeze: Vec<String>,
    /// Every dropout probability of the model for this run (the encoder's
    /// hidden and attention dropout and the head's), in place of its
    /// config.json's; `0.0` turns dropout off. `None`: the model's own.
    /// The model keeps its config (a saved model says what it was built
    /// with); evaluation has dropout off either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f64>,
    /// Batches in random order (true, the default: shuffled, length-bucketed
    /// per seed and epoch); false: the examples in their file order, cut
    /// into consecutive batches, the same every epoch (a controlled
    /// comparison with another implementation that reads the same file).
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub shuffle: bool,
}

/// Span QA windows when `max_length` is not set: run_qa.py's 384.
pub const QA_MAX_LENGTH: usize = 384;

fn default_doc_stride() -> usize {
    128
}

fn is_default_doc_stride(n: &usize) -> bool {
    *n == default_doc_stride()
}

fn default_max_query_length() -> usize {
    stilts_tasks::MAX_QUERY_LENGTH
}

fn is_default_max_query_length(n: &usize) -> bool {
    *n == default_max_query_length()
}

impl Default for RunOptions {
    fn default() -> Self {
        preset("jiant").expect("built-in preset")
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

fn default_true() -> bool {
    true
}

/// Options left out of the serialised form at their default (so adding
/// them changed no existing fingerprint).
const OMITTED_AT_DEFAULT: &[&str] = &[
    "bf16_update",
    "doc_stride",
    "dropout",
    "eight_bit_second_moment",
    "fused_update",
    "max_query_length",
    "shuffle",
];

/// Names of the built-in presets.
pub const PRESETS: &[&str] = &["jiant", "xtreme"];

/// A built-in preset by name.
pub fn preset(name: &str) -> Result<RunOptions> {
    let base = RunOptions {
        preset: "jiant".into(),
        lr: 1e-5,
        weight_decay: 0.01,
        epochs: 2,
        max_steps: None,
        batch_size: 32,
        grad_accum: 1,
        max_tokens: None,
        max_length: 256,
        doc_stride: default_doc_stride(),
        qa_max_length: None,
        max_query_length: default_max_query_length(),
        warmup: 0.1,
        warmup_steps: None,
        max_grad_norm: 1.0,
        seed: 0,
        bf16: false,
        gradient_checkpointing: false,
        factored_optimizer: false,
        bf16_update: None,
        fused_update: false,
        eight_bit_second_moment: false,
        eval_every: Some(1000),
        patience: Some(30),
        dev_limit: Some(500),
        checkpoint_every: Some(1000),
        limit: None,
        train_examples_cap: None,
        reset_optimizer: true,
        freeze: vec![],
        dropout: None,
        shuffle: true,
    };
    match name {
        "jiant" => Ok(base),
        "xtreme" => Ok(RunOptions {
            preset: "xtreme".into(),
            lr: 3e-5,
            epochs: 5,
            max_length: 128,
            warmup: 0.0,
            weight_decay: 0.0,
            eval_every: Some(100),
            patience: None,
            dev_limit: None,
            ..base
        }),
        other => Err(Error::msg(format!(
            "unknown preset `{other}`; presets: {}",
            PRESETS.join(", ")
        ))),
    }
}

/// The keys that only mean something with a dev set: set by hand on a
/// call without one, they are an error (a preset's values are used only
/// when a dev set is given).
pub const SELECTION_KEYS: &[&str] = &["eval_every", "patience", "dev_limit"];

/// Options resolved for one call: the values, and the keys the caller set
/// by hand (over the preset).
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The preset with the caller's keys laid over it, validated.
    pub options: RunOptions,
    /// The keys the caller set: every key of the map but `preset`.
    pub explicit: Vec<String>,
}

impl Resolved {
    /// Was `key` set by the caller (not only by the preset)?
    pub fn is_explicit(&self, key: &str) -> bool {
        self.explicit.iter().any(|k| k == key)
    }

    /// Fails when a model-selection key was set by hand but the call has no
    /// dev set to honour it; `what` names the call or phase.
    pub fn require_dev(&self, has_dev: bool, what: &str) -> Result<()> {
        if has_dev {
            return Ok(());
        }
        match SELECTION_KEYS.iter().find(|k| self.is_explicit(k)) {
            Some(k) => Err(Error::msg(format!(
                "{what}: `{k}` needs a dev set to evaluate on; give one with `dev: task(...)`{}",
                if what.contains("stilts") || what.contains("intermediate") {
                    " (for the intermediate phase inside `intermediate: #{...}`)"
                } else {
                    ""
                }
            ))),
            None => Ok(()),
        }
    }
}

fn obj_insert(value: &mut serde_json::Value, k: &str, v: serde_json::Value) {
    if let Some(o) = value.as_object_mut() {
        o.insert(k.to_string(), v);
    }
}

impl RunOptions {
    /// `preset` (default `jiant`) with the keys of `overrides` (a JSON
    /// object) replaced. An unknown key is an error that lists the valid ones.
    pub fn from_overrides(
        preset_name: Option<&str>,
        overrides: &serde_json::Value,
    ) -> Result<Self> {
        let mut o = overrides.clone();
        if let (Some(p), serde_json::Value::Object(m)) = (preset_name, &mut o) {
            m.entry("preset").or_insert_with(|| p.into());
        }
        Ok(Self::resolve(&o, None)?.options)
    }

    /// The options a call's map means: its `preset` key (default `jiant`),
    /// made size-aware by `hidden` (the encoder's hidden size; xtreme's lr
    /// is 2e-5 below 1024, 3e-5 from large up), then every other key laid
    /// over it and the whole validated. An unknown key is an error that
    /// names the closest valid key and lists them all.
    ///
    /// ```
    /// use stilts_protocol::presets::RunOptions;
    /// let r = RunOptions::resolve(&serde_json::json!({"preset": "xtreme", "seed": 2}), Some(768)).unwrap();
    /// assert_eq!((r.options.lr, r.options.seed, r.options.eval_every), (2e-5, 2, Some(100)));
    /// assert_eq!(r.explicit, vec!["seed".to_string()]);
    /// assert!(RunOptions::resolve(&serde_json::json!({"lrr": 1.0}), None).is_err());
    /// ```
    pub fn resolve(overrides: &serde_json::Value, hidden: Option<usize>) -> Result<Resolved> {
        let empty = serde_json::Map::new();
        let map = match overrides {
            serde_json::Value::Object(m) => m,
            serde_json::Value::Null => &empty,
            other => {
                return Err(Error::msg(format!(
                    "training options must be a map, got {other}"
                )))
            }
        };
        let name = match map.get("preset") {
            None => "jiant",
            Some(serde_json::Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(Error::msg(format!(
                    "`preset` takes a name ({}), not {other}",
                    PRESETS.join(", ")
                )))
            }
        };
        let mut base = preset(name)?;
        if name == "xtreme" && hidden.is_some_and(|h| h < 1024) {
            base.lr = 2e-5;
        }
        let mut value = serde_json::to_value(&base).map_err(|e| Error::msg(e.to_string()))?;
        let obj = value
            .as_object_mut()
            .expect("options serialise to an object");
        let keys = Self::keys();
        let mut explicit = vec![];
        for (k, v) in map {
            if !keys.iter().any(|x| x == k) {
                let names: Vec<&str> = keys.iter().map(String::as_str).collect();
                let hint = stilts_model::util::closest(k, &names)
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                return Err(Error::msg(format!(
                    "unknown training option `{k}`{hint}; valid options: {}",
                    keys.join(", ")
                )));
            }
            if k != "preset" {
                explicit.push(k.clone());
            }
            obj.insert(k.clone(), v.clone());
        }
        // A whole number written as a float (`max_steps: 5.0`, what `--set
        // n=5.0` or arithmetic gives) where a count is expected: the count.
        let base_json = serde_json::to_value(&base).unwrap_or_default();
        let fits = |k: &str, v: &serde_json::Value| {
            let mut one = base_json.clone();
            one[k] = v.clone();
            serde_json::from_value::<RunOptions>(one).is_ok()
        };
        for k in &explicit {
            let v = &map[k.as_str()];
            if let Some(x) = v
                .as_f64()
                .filter(|x| v.is_f64() && x.fract() == 0.0 && *x >= 0.0)
            {
                let whole = serde_json::json!(x as u64);
                if !fits(k.as_str(), v) && fits(k.as_str(), &whole) {
                    obj_insert(&mut value, k, whole);
                }
            }
        }
        let mut options: RunOptions = serde_json::from_value(value).map_err(|e| {
            // Name the key whose value does not fit (`freeze: "embeddings"`),
            // what it takes, with an example, and what it was given.
            let culprit = explicit
                .iter()
                .find(|k| !fits(k.as_str(), &map[k.as_str()]));
            match culprit {
                Some(k) => {
                    let e = e.to_string();
                    let got = &map[k.as_str()];
                    match stilts_model::util::expected_in_words(&e) {
                        Some((words, example)) => {
                            let example = match (&base_json[k.as_str()], words) {
                                (d, "a whole number" | "a number") if d.is_number() => d.to_string(),
                                (_, "an array") if k == "freeze" => "[\"embeddings\"]".to_string(),
                                _ => example.to_string(),
                            };
                            Error::msg(format!(
                                "training options: `{k}` takes {words} (e.g. `{k}: {example}`), not {got}"
                            ))
                        }
                        None => Error::msg(format!("training options: `{k}`: {e}")),
                    }
                }
                None => Error::msg(format!("training options: {e}")),
            }
        })?;
        if explicit.iter().any(|k| k == "max_length") {
            options.qa_max_length = Some(options.max_length);
            // run_qa.py's overlap is a third of its window (128 of 384):
            // a shorter window keeps that share unless doc_stride is set.
            if !explicit.iter().any(|k| k == "doc_stride") {
                options.doc_stride = options.doc_stride.min((options.max_length / 3).max(1));
            }
        }
        options.validate()?;
        Ok(Resolved { options, explicit })
    }

    /// Checks values that parse but cannot be run.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::msg(format!("training options: {m}")));
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad(format!("lr must be a positive number, not {}", self.lr));
        }
        if self.batch_size == 0 {
            return bad("batch_size must be at least 1".into());
        }
        if self.grad_accum == 0 {
            return bad("grad_accum must be at least 1".into());
        }
        if self.max_length < 8 {
            return bad(format!(
                "max_length {} is too short (at least 8)",
                self.max_length
            ));
        }
        if let Some(p) = self.dropout {
            if !(0.0..1.0).contains(&p) {
                return bad(format!(
                    "dropout is a probability in [0, 1) (0 turns it off), not {p}"
                ));
            }
        }
        if self.doc_stride == 0 {
            return bad("doc_stride must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.warmup) {
            return bad(format!(
                "warmup is a fraction in [0, 1), not {}",
                self.warmup
            ));
        }
        for (k, v) in [
            ("eval_every", self.eval_every.map(|x| x as usize)),
            ("patience", self.patience),
            ("dev_limit", self.dev_limit),
            (
                "checkpoint_every",
                self.checkpoint_every.map(|x| x as usize),
            ),
            ("limit", self.limit),
            ("train_examples_cap", self.train_examples_cap),
            ("max_steps", self.max_steps.map(|x| x as usize)),
            ("max_query_length", Some(self.max_query_length)),
        ] {
            if v == Some(0) {
                return bad(format!("`{k}` must be at least 1 (leave it out for none)"));
            }
        }
        if self.epochs == 0 && self.max_steps.is_none() {
            return bad("epochs must be at least 1".into());
        }
        for p in &self.freeze {
            crate::freeze::freeze_prefixes(p)?;
        }
        if self.fused_update && !self.gradient_checkpointing {
            return bad("fused_update needs gradient_checkpointing: true (the update runs segment by segment in the recomputed backward)".into());
        }
        if self.eight_bit_second_moment && self.factored_optimizer {
            return bad("eight_bit_second_moment and factored_optimizer both replace the second moment: choose one".into());
        }
        if self.fused_update && self.grad_accum > 1 {
            return bad(format!(
                "fused_update applies each batch's gradients at once: it cannot accumulate grad_accum {} batches (use grad_accum: 1 with a larger batch_size, or fused_update: false)",
                self.grad_accum
            ));
        }
        Ok(())
    }

    /// The option names, for messages and documentation.
    pub fn keys() -> Vec<String> {
        let mut keys: Vec<String> = match serde_json::to_value(preset("jiant").expect("built-in")) {
            Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            _ => vec![],
        };
        keys.extend(OMITTED_AT_DEFAULT.iter().map(|k| k.to_string()));
        keys.sort();
        keys.dedup();
        keys
    }

    /// The options as a fingerprint sees them: how often checkpoints are
    /// written does not change the numbers, and the span QA window only
    /// matters when the data has span QA (`span_qa`); `limit`'s rule (a
    /// stratified sample since it stopped being a prefix) is named.
    pub fn fingerprint_json(&self, span_qa: bool) -> serde_json::Value {
        let mut o = self.clone();
        o.checkpoint_every = None;
        if !span_qa {
            o.qa_max_length = None;
            o.doc_stride = default_doc_stride();
        }
        let mut v = serde_json::to_value(&o).unwrap_or_default();
        if span_qa {
            // Questions are cut to it (always named: it changed the features).
            v["max_query_length"] = o.max_query_length.into();
        }
        if o.limit.is_some() {
            v["limit_rule"] = "stratified".into();
        }
        v
    }

    /// The window length and stride of span QA features.
    pub fn qa_window(&self) -> (usize, usize) {
        (self.qa_max_length.unwrap_or(QA_MAX_LENGTH), self.doc_stride)
    }

    /// The loop settings these options mean; `eval_every_default` is used
    /// when a dev set is given and `eval_every` is not set.
    pub fn train_options(&self, eval_every_default: Option<u64>) -> TrainOptions {
        TrainOptions {
            adamw: AdamWConfig {
                lr: self.lr,
                weight_decay: self.weight_decay,
                factored: self.factored_optimizer,
                bf16_update: self.bf16_update,
                eight_bit_second_moment: self.eight_bit_second_moment,
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
            freeze: self.freeze.clone(),
            fused_update: self.fused_update,
            dropout: self.dropout,
        }
    }
}
