//! The fine-tuning loop: dropout on, AdamW with a linear schedule, global
//! gradient clipping, gradient accumulation, mixed precision, guard rails.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Tensor};

use super::checkpoint::{self, LoopState};
use super::optim::{clip_grad_norm, AdamW, AdamWConfig, LinearSchedule, OptimizerState, Warmup};
use stilts_model::error::{Error, Result, WithPath};
use stilts_model::{DropoutRng, Encoder, Inputs, Loss, Model, ParamStore, Target};

/// Settings of one fine-tuning run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TrainOptions {
    /// Optimizer settings; `adamw.lr` is the schedule's peak learning rate.
    pub adamw: AdamWConfig,
    /// Warm-up of the linear schedule (default: 10% of all updates).
    pub warmup: Warmup,
    /// Passes over the training data (default 2; 0 runs as 1).
    pub epochs: usize,
    /// Exactly this many updates, the data cycled as often as that takes
    /// (overrides `epochs`, as `max_steps` does in transformers' Trainer).
    pub max_steps: Option<u64>,
    /// Batches whose gradients are summed before one update.
    pub grad_accum: usize,
    /// Clip the global L2 norm of the gradients to this (default 1.0).
    pub max_grad_norm: f64,
    /// Fixes dropout masks (data order is fixed by the caller's batches).
    pub seed: u64,
    /// `bf16` for mixed precision (f32 master weights, bf16 matmuls).
    pub bf16: bool,
    /// Recompute each layer's activations in backward instead of keeping
    /// them (same gradients, much less memory, about 1.3x the step time).
    pub gradient_checkpointing: bool,
    /// Evaluate with the caller's evaluator every N updates (and at the end);
    /// the best weights are kept and restored at the end.
    pub eval_every: Option<u64>,
    /// Stop after this many evaluations without improvement.
    pub patience: Option<usize>,
    /// Write a checkpoint every N updates (and at the end) under
    /// `checkpoint_dir`; a run started again with the same settings resumes.
    pub checkpoint_every: Option<u64>,
    /// Folder of the checkpoints and `curve.jsonl`; with it a checkpoint is
    /// also written at the end and when cancelled. `None` writes neither.
    pub checkpoint_dir: Option<std::path::PathBuf>,
    /// Start AdamW from this state (the previous phase's) instead of zero:
    /// STILTs without resetting the optimizer. `None` resets (the default).
    #[serde(skip)]
    pub initial_optimizer: Option<std::sync::Arc<OptimizerState>>,
    /// Parameters held fixed: prefixes of their names (see
    /// [`super::freeze::frozen_parameters`]). They get no gradient (the
    /// forward runs through them as plain tensors), no optimizer state and
    /// no update.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freeze: Vec<String>,
    /// Update each parameter inside backward, as soon as its gradient
    /// exists, and free the gradient (needs `gradient_checkpointing`, one
    /// batch per update; clipping uses the previous step's norm): see
    /// [`super::optim::lowmem`].
    #[serde(default, skip_serializing_if = "is_false")]
    pub fused_update: bool,
    /// Every dropout probability of the model for this run (hidden,
    /// attention, the head's) in place of its config's; `None`: the
    /// config's. Only the training view changes: the model keeps its config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropout: Option<f64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            adamw: AdamWConfig::default(),
            warmup: Warmup::Fraction(0.1),
            epochs: 2,
            max_steps: None,
            grad_accum: 1,
            max_grad_norm: 1.0,
            seed: 0,
            bf16: false,
            gradient_checkpointing: false,
            eval_every: None,
            patience: None,
            checkpoint_every: None,
            checkpoint_dir: None,
            initial_optimizer: None,
            freeze: vec![],
            fused_update: false,
            dropout: None,
        }
    }
}

impl TrainOptions {
    /// A stable id of the settings that change the numbers (not where
    /// checkpoints go): a checkpoint is only resumed by the same settings.
    pub fn fingerprint(&self) -> String {
        let mut o = self.clone();
        o.checkpoint_dir = None;
        o.checkpoint_every = None;
        // Same gradients either way: a run may resume with it toggled.
        o.gradient_checkpointing = false;
        stilts_model::util::sha256_hex(serde_json::to_string(&o).unwrap_or_default().as_bytes())
    }
}

/// The training curve of a run, written as it goes: one JSON line per
/// update (`{"update", "loss", "lr", "examples_per_s", "seconds"}`) and per
/// dev evaluation (`{"update", "dev"}`) in `DIR/curve.jsonl`, beside the
/// run's checkpoints. A resumed run keeps the lines up to its checkpoint
/// and goes on from there, so the file always matches the weights.
pub struct CurveLog {
    path: std::path::PathBuf,
    file: std::fs::File,
}

impl CurveLog {
    /// Opens `dir/curve.jsonl`: emptied for a fresh run, cut back to update
    /// `resumed_from` for a resumed one.
    pub fn open(dir: &std::path::Path, resumed_from: Option<u64>) -> Result<Self> {
        std::fs::create_dir_all(dir).with_path(dir)?;
        let path = dir.join("curve.jsonl");
        let kept: String = match resumed_from {
            None => String::new(),
            Some(step) => std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v["update"].as_u64())
                        .is_some_and(|u| u <= step)
                })
                .map(|l| format!("{l}\n"))
                .collect(),
        };
        stilts_model::util::write_atomic(&path, kept.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .with_path(&path)?;
        Ok(CurveLog { path, file })
    }

    fn line(&mut self, v: serde_json::Value) -> Result<()> {
        use std::io::Write;
        let mut s = v.to_string();
        s.push('\n');
        self.file.write_all(s.as_bytes()).with_path(&self.path)
    }
}

/// Where a long call reports progress; the protocol knows no terminal.
pub trait Progress {
    /// A phase begins: `what` names it (`train`, `eval NAME`), `total` is its
    /// length in updates (training) or batches (evaluation). Does nothing by default.
    fn start(&mut self, _what: &str, _total: u64) {}
    /// `done` of `total` are done: `loss` is the last update's mean loss and
    /// `lr` its learning rate (NaN and 0 during evaluation). Does nothing by default.
    fn step(&mut self, _done: u64, _loss: f64, _lr: f64) {}
    /// A line of news (memory estimate, resume, dev scores). Dropped by default.
    fn message(&mut self, _text: &str) {}
    /// The phase ended, finished or cancelled. Does nothing by default.
    fn finish(&mut self) {}
}

/// Progress that goes nowhere.
pub struct Silent;
impl Progress for Silent {}

/// What a run did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TrainReport {
    /// Updates done in all (those before a resume included).
    pub steps: u64,
    /// Mean loss of each update.
    pub losses: Vec<f64>,
    /// Loss of each batch by task index (multi-task runs: per-task curves).
    pub task_losses: Vec<(usize, f64)>,
    /// (update, dev score) of each evaluation.
    pub scores: Vec<(u64, f64)>,
    /// Best dev score (higher is better); `None` when the run had no evaluation.
    pub best_score: Option<f64>,
    /// Update of `best_score`: the model ends on the weights it had then.
    pub best_step: Option<u64>,
    /// True when `patience` evaluations without improvement ended the run.
    pub early_stopped: bool,
    /// The update the run resumed from when it continued from a
    /// checkpoint; `None` for a fresh start.
    pub resumed_from: Option<u64>,
    /// Updates in one pass over the training data (`max_steps` cycles it).
    pub updates_per_epoch: u64,
    /// Span QA: training questions cut to `max_query_length` tokens.
    pub questions_cut: u64,
    /// The optimizer state at the end (to carry into a next phase).
    #[serde(skip)]
    pub optimizer: Option<std::sync::Arc<OptimizerState>>,
}

/// One training batch; `task` picks the head of a multi-task model (0 for
/// a single-task model).
#[derive(Clone, Debug)]
pub struct TrainBatch {
    /// Index of the task (and head) the batch trains.
    pub task: usize,
    /// The collated token ids, masks and positions.
    pub inputs: Inputs,
    /// The gold answers the loss is taken against, matching the head.
    pub target: Target,
}

impl From<(Inputs, Target)> for TrainBatch {
    fn from((inputs, target): (Inputs, Target)) -> Self {
        TrainBatch {
            task: 0,
            inputs,
            target,
        }
    }
}

/// One epoch's batches as a plan: how many there are, each one's (rows,
/// padded length), and how to collate batch `i` when the loop reaches it.
/// The loop holds one accumulation group of tensors at a time, never a
/// whole epoch, and counts batches from the plan without collating any.
pub struct Epoch<'a> {
    shapes: Vec<(usize, usize)>,
    collate: Box<dyn FnMut(usize) -> Result<TrainBatch> + 'a>,
}

impl<'a> Epoch<'a> {
    /// A plan of `shapes.len()` batches; `collate(i)` builds batch `i`
    /// (called in increasing `i`, from the first unfinished group on).
    pub fn planned(
        shapes: Vec<(usize, usize)>,
        collate: impl FnMut(usize) -> Result<TrainBatch> + 'a,
    ) -> Self {
        Epoch {
            shapes,
            collate: Box::new(collate),
        }
    }

    /// Number of batches in the epoch.
    pub fn len(&self) -> usize {
        self.shapes.len()
    }

    /// True when the epoch has no batches.
    pub fn is_empty(&self) -> bool {
        self.shapes.is_empty()
    }

    /// The (rows, padded length) of batch `i`.
    pub fn shape(&self, i: usize) -> (usize, usize) {
        self.shapes[i]
    }

    /// The (rows, padded length) of the batch with the most tokens.
    pub fn largest(&self) -> (usize, usize) {
        self.shapes
            .iter()
            .copied()
            .max_by_key(|(b, t)| b * t)
            .unwrap_or((1, 1))
    }

    /// Collates every batch, in order (for inspection and tests: training
    /// collates one group at a time).
    pub fn collate_all(&mut self) -> Result<Vec<TrainBatch>> {
        (0..self.len()).map(|i| self.batch(i)).collect()
    }

    /// Collates batch `i`.
    pub fn batch(&mut self, i: usize) -> Result<TrainBatch> {
        if i >= self.shapes.len() {
            return Err(Error::msg(format!(
                "internal: batch {i} of an epoch of {}",
                self.shapes.len()
            )));
        }
        (self.collate)(i)
    }
}

/// Batches already collated (tests, small runs).
impl FromIterator<TrainBatch> for Epoch<'static> {
    fn from_iter<I: IntoIterator<Item = TrainBatch>>(iter: I) -> Self {
        iter.into_iter().collect::<Vec<_>>().into()
    }
}

/// Batches already collated (tests, small runs).
impl From<Vec<TrainBatch>> for Epoch<'static> {
    fn from(batches: Vec<TrainBatch>) -> Self {
        let shapes = batches
            .iter()
            .map(|b| b.inputs.dims().unwrap_or((0, 0)))
            .collect();
        Epoch::planned(shapes, move |i| Ok(batches[i].clone()))
    }
}

/// What the loop trains: a model with one head, or a shared encoder with a
/// head per task.
pub trait Trainable {
    /// Every trainable parameter, by name.
    fn params(&self) -> ParamStore;
    /// The shared encoder (its padding rows are never trained).
    fn encoder(&self) -> &Encoder;
    /// The loss of one batch (`rng`: dropout on).
    fn batch_loss(&self, batch: &TrainBatch, rng: Option<&mut DropoutRng>) -> Result<Loss>;
    /// The same model (weights shared) computing its matmuls in `dtype`
    /// (mixed precision), with gradient checkpointing on or off, the
    /// parameters named in `frozen` as plain tensors (no gradient; not in
    /// the view's `params()`), and every dropout probability set to
    /// `dropout` where it is `Some`.
    fn for_training(
        &self,
        dtype: DType,
        checkpointing: bool,
        frozen: &BTreeSet<String>,
        dropout: Option<f64>,
    ) -> Result<Box<dyn Trainable>>;
}

impl Trainable for Model {
    fn params(&self) -> ParamStore {
        Model::params(self)
    }
    fn encoder(&self) -> &Encoder {
        &self.encoder
    }
    fn batch_loss(&self, batch: &TrainBatch, rng: Option<&mut DropoutRng>) -> Result<Loss> {
        self.train_loss(&batch.inputs, &batch.target, rng)
    }
    fn for_training(
        &self,
        dtype: DType,
        checkpointing: bool,
        frozen: &BTreeSet<String>,
        dropout: Option<f64>,
    ) -> Result<Box<dyn Trainable>> {
        let mut m = self
            .clone()
            .with_compute_dtype(dtype)
            .with_gradient_checkpointing(checkpointing);
        if let Some(p) = dropout {
            m = m.with_dropout(p);
        }
        Ok(Box::new(if frozen.is_empty() {
            m
        } else {
            m.with_frozen(frozen)?
        }))
    }
}

/// Scores a model on a dev set (higher is better).
pub type Evaluator<'a> = dyn FnMut() -> Result<f64> + 'a;

/// Fine-tunes `model` in place. `epoch_batches(e)` returns the batches of
/// epoch `e` in training order (the caller shuffles, from its seed, so the
/// same epoch always gives the same order: resume depends on it).
pub fn fine_tune<'a>(
    model: &dyn Trainable,
    epoch_batches: &mut dyn FnMut(usize) -> Result<Epoch<'a>>,
    opts: &TrainOptions,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<TrainReport> {
    fine_tune_with_eval(model, epoch_batches, None, opts, progress, cancel)
}

fn snapshot(
    params: &stilts_model::ParamStore,
) -> Result<std::collections::BTreeMap<String, Tensor>> {
    params
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.as_tensor().copy()?)))
        .collect()
}

/// What training `model` on batches like `batches` should need in memory.
fn memory_estimate(
    model: &dyn Trainable,
    params: &ParamStore,
    epoch: &Epoch<'_>,
    opts: &TrainOptions,
) -> super::memory::MemoryEstimate {
    use super::memory::{estimate, Precision, RunShape};
    let (batch, seq) = epoch.largest();
    let precision = match (model.encoder().dtype(), opts.bf16) {
        (DType::BF16, _) => Precision::Bf16,
        (_, true) => Precision::MixedBf16,
        _ => Precision::F32,
    };
    let shape = RunShape {
        batch,
        seq,
        precision,
        checkpointing: opts.gradient_checkpointing,
        factored_optimizer: opts.adamw.factored,
        kahan: opts.adamw.bf16_update == Some(super::optim::lowmem::Bf16Update::Kahan),
        fused_update: opts.fused_update,
        eight_bit_second_moment: opts.adamw.eight_bit_second_moment,
        by_hand: model.encoder().handwritten_applies(),
    };
    estimate(
        &model.encoder().config,
        params.num_parameters() as u64,
        &shape,
    )
}

/// [`fine_tune`] with model selection on a dev set (`opts.eval_every`).
pub fn fine_tune_with_eval<'a>(
    model: &dyn Trainable,
    epoch_batches: &mut dyn FnMut(usize) -> Result<Epoch<'a>>,
    mut evaluator: Option<&mut Evaluator<'_>>,
    opts: &TrainOptions,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<TrainReport> {
    let accum = opts.grad_accum.max(1);
    if opts.fused_update && !opts.gradient_checkpointing {
        return Err(Error::msg(
            "fused_update needs gradient_checkpointing: true (the update runs segment by segment in the recomputed backward)",
        ));
    }
    if opts.fused_update && accum > 1 {
        return Err(Error::msg(format!(
            "fused_update applies each batch's gradients at once: it cannot accumulate {accum} batches (set grad_accum: 1 and a larger batch_size, or fused_update: false)"
        )));
    }
    if opts.adamw.bf16_update.is_some() && model.encoder().dtype() != DType::BF16 {
        return Err(Error::msg(format!(
            "bf16_update is for bf16 weights, but this model's weights are {:?}: load it with dtype: \"bf16\" (or leave bf16_update out)",
            model.encoder().dtype()
        )));
    }
    let first = epoch_batches(0)?;
    if first.is_empty() {
        return Err(Error::msg("no training batches: the training set is empty"));
    }
    // Counted from the plan: nothing is collated yet.
    let per_epoch = first.len().div_ceil(accum) as u64;
    // `max_steps`, as in transformers' Trainer, overrides `epochs`: the
    // data is cycled (a fresh shuffle each pass) until that many updates.
    let (total, epochs) = match opts.max_steps {
        Some(m) => (m, m.div_ceil(per_epoch.max(1)) as usize),
        None => (per_epoch * opts.epochs.max(1) as u64, opts.epochs.max(1)),
    };
    let schedule = LinearSchedule::new(opts.adamw.lr, opts.warmup, total);
    let all = model.params();
    let names: Vec<String> = all.names().cloned().collect();
    let frozen = super::freeze::frozen_parameters(&opts.freeze, &names)?;
    progress.message(&format!(
        "memory estimate (largest batch): {}",
        memory_estimate(model, &all, &first, opts).summary()
    ));
    let runner = model.for_training(
        if opts.bf16 {
            DType::BF16
        } else {
            model.encoder().dtype()
        },
        opts.gradient_checkpointing,
        &frozen,
        opts.dropout,
    )?;
    // What is trained: every parameter but the frozen ones (the runner's
    // own, the same `Var`s as the model's).
    let params = runner.params();
    if !frozen.is_empty() {
        let n: usize = frozen
            .iter()
            .filter_map(|k| all.get(k))
            .map(|v| v.elem_count())
            .sum();
        progress.message(&format!(
            "frozen: {} tensors, {n} of {} parameters ({})",
            frozen.len(),
            all.num_parameters(),
            opts.freeze.join(", ")
        ));
    }
    let mut opt = AdamW::new(params.clone(), opts.adamw.clone())?;
    if let Some(state) = &opts.initial_optimizer {
        let carried = opt.continue_from(state)?;
        progress.message(&format!(
            "optimizer state carried over for {carried} of {} parameters",
            params.len()
        ));
    }
    let fingerprint = opts.fingerprint();
    let mut st = LoopState {
        step: 0,
        epoch: 0,
        group: 0,
        rng: DropoutRng::new(opts.seed),
        losses: vec![],
        task_losses: vec![],
        best_score: None,
        best_step: None,
        evals_since_best: 0,
        scores: vec![],
        finished: false,
        fingerprint: fingerprint.clone(),
    };
    let mut best: Option<std::collections::BTreeMap<String, Tensor>> = None;
    let mut report = TrainReport {
        updates_per_epoch: per_epoch,
        ..TrainReport::default()
    };
    if let Some(dir) = &opts.checkpoint_dir {
        if let Some(ck) = checkpoint::load(dir)? {
            if ck.state.fingerprint != fingerprint {
                return Err(Error::msg(format!(
                    "{} holds a checkpoint of a run with other settings; use another output folder or delete it",
                    dir.display()
                )));
            }
            checkpoint::restore(&ck, &params, &mut opt)?;
            best = ck.best.map(|b| b.into_iter().collect());
            report.resumed_from = Some(ck.state.step);
            progress.message(&format!("resuming from update {}", ck.state.step));
            st = ck.state;
        }
    }
    let save = |st: &LoopState,
                opt: &AdamW,
                best: &Option<std::collections::BTreeMap<String, Tensor>>|
     -> Result<()> {
        match &opts.checkpoint_dir {
            Some(dir) => checkpoint::save(dir, &params, opt, best.as_ref(), st),
            None => Ok(()),
        }
    };
    let mut curve = match &opts.checkpoint_dir {
        Some(dir) => Some(CurveLog::open(dir, report.resumed_from)?),
        None => None,
    };
    let run_start = std::time::Instant::now();
    // fused_update clips with the previous step's gradient norm.
    let mut previous_norm: Option<f64> = None;
    progress.start("train", total);
    progress.step(
        st.step,
        st.losses.last().copied().unwrap_or(f64::NAN),
        schedule.lr(st.step),
    );
    let mut first = Some(first);
    'epochs: while !st.finished && st.epoch < epochs {
        let mut epoch = match first.take() {
            Some(e) if st.epoch == 0 => e,
            _ => epoch_batches(st.epoch)?,
        };
        let n_groups = epoch.len().div_ceil(accum);
        while st.group < n_groups {
            if st.step >= total {
                break 'epochs;
            }
            if cancel.load(Ordering::Relaxed) {
                save(&st, &opt, &best)?;
                progress.finish();
                return Err(Error::Cancelled {
                    during: "training".into(),
                    step: Some(st.step),
                    checkpoint: opts.checkpoint_dir.clone(),
                });
            }
            let step_start = std::time::Instant::now();
            // This group's batches, collated now (one group in memory).
            let group = (st.group * accum..((st.group + 1) * accum).min(epoch.len()))
                .map(|i| epoch.batch(i))
                .collect::<Result<Vec<_>>>()?;
            let rows: usize = group
                .iter()
                .map(|b| b.inputs.dims().map(|(r, _)| r).unwrap_or(0))
                .sum();
            let lr = schedule.lr(st.step);
            let mut grads: Option<candle_core::backprop::GradStore> = None;
            let mut fused_norm = None;
            let mut loss_sum = 0.0;
            for batch in &group {
                let loss = runner
                    .batch_loss(batch, Some(&mut st.rng))?
                    .scale(1.0 / group.len() as f64)?;
                let value = loss.to_f64()?;
                if !value.is_finite() {
                    return Err(Error::msg(format!(
                        "loss is {value} at update {}: stopping{} (lower the learning rate or train in f32)",
                        st.step + 1,
                        if opts.checkpoint_dir.is_some() { "; the last good checkpoint is kept" } else { "" }
                    )));
                }
                loss_sum += value;
                st.task_losses
                    .push((batch.task, value * group.len() as f64));
                if opts.fused_update {
                    // One batch per update (checked above): backward and
                    // update in one pass.
                    let n = super::optim::lowmem::backward_and_update(
                        loss,
                        &params,
                        &mut opt,
                        lr,
                        opts.max_grad_norm,
                        previous_norm,
                    )?;
                    fused_norm = Some(n);
                    continue;
                }
                let g = loss.backward()?;
                grads = Some(match grads {
                    None => g,
                    Some(mut acc) => {
                        for (_, var) in params.iter() {
                            if let Some(new) = g.get(var.as_tensor()) {
                                let sum = match acc.get(var.as_tensor()) {
                                    Some(old) => (old + new)?,
                                    None => new.clone(),
                                };
                                acc.insert(var.as_tensor(), sum);
                            }
                        }
                        acc
                    }
                });
            }
            let norm_error = |norm: f64| {
                Error::msg(format!(
                    "gradient norm is {norm} at update {}: stopping; the last good checkpoint is kept",
                    st.step + 1
                ))
            };
            if let Some(norm) = fused_norm {
                // (The update is done; a bad norm still stops the run.)
                if !norm.is_finite() {
                    return Err(norm_error(norm));
                }
                previous_norm = Some(norm);
            } else {
                let mut grads = grads.ok_or_else(|| Error::msg("empty batch group"))?;
                if opts.adamw.bf16_update.is_some() {
                    // The clip factor is folded into the update: no scaled
                    // copy of the gradients.
                    let norm = super::optim::lowmem::grad_norm(&params, &grads)?;
                    if !norm.is_finite() {
                        return Err(norm_error(norm));
                    }
                    let coef = super::optim::lowmem::clip_factor(norm, opts.max_grad_norm);
                    super::optim::lowmem::step(&mut opt, &grads, lr, coef)?;
                } else {
                    let norm = clip_grad_norm(&params, &mut grads, opts.max_grad_norm)?;
                    if !norm.is_finite() {
                        return Err(norm_error(norm));
                    }
                    opt.step(&grads, lr)?;
                }
            }
            st.step += 1;
            st.group += 1;
            st.losses.push(loss_sum);
            progress.step(st.step, loss_sum, lr);
            if let Some(c) = curve.as_mut() {
                let secs = step_start.elapsed().as_secs_f64();
                c.line(serde_json::json!({
                    "update": st.step,
                    "loss": loss_sum,
                    "lr": lr,
                    "examples_per_s": if secs > 0.0 { rows as f64 / secs } else { 0.0 },
                    "seconds": run_start.elapsed().as_secs_f64(),
                }))?;
            }
            let last = st.step >= total;
            if let (Some(every), Some(eval)) = (opts.eval_every, evaluator.as_deref_mut()) {
                if st.step % every.max(1) == 0 || last {
                    let score = eval()?;
                    st.scores.push((st.step, score));
                    if let Some(c) = curve.as_mut() {
                        c.line(serde_json::json!({"update": st.step, "dev": score}))?;
                    }
                    progress.message(&format!("update {}: dev {score:.2}", st.step));
                    if st.best_score.is_none_or(|b| score > b) {
                        st.best_score = Some(score);
                        st.best_step = Some(st.step);
                        st.evals_since_best = 0;
                        best = Some(snapshot(&params)?);
                    } else {
                        st.evals_since_best += 1;
                        if opts.patience.is_some_and(|p| st.evals_since_best >= p) {
                            report.early_stopped = true;
                            st.finished = true;
                        }
                    }
                }
            }
            if let Some(every) = opts.checkpoint_every {
                if st.step % every.max(1) == 0 && !last && !st.finished {
                    save(&st, &opt, &best)?;
                }
            }
            if st.finished {
                break 'epochs;
            }
        }
        if st.group >= n_groups {
            st.epoch += 1;
            st.group = 0;
        }
    }
    st.finished = true;
    // Model selection: end on the best weights seen.
    if let Some(b) = &best {
        for (name, var) in params.iter() {
            if let Some(t) = b.get(name) {
                var.set(t)?;
            }
        }
    }
    save(&st, &opt, &best)?;
    progress.finish();
    report.steps = st.step;
    report.losses = st.losses;
    report.task_losses = st.task_losses;
    report.optimizer = Some(std::sync::Arc::new(opt.state()?));
    report.scores = st.scores;
    report.best_score = st.best_score;
    report.best_step = st.best_step;
    Ok(report)
}
