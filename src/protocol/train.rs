//! The fine-tuning loop: dropout on, AdamW with a linear schedule, global
//! gradient clipping, gradient accumulation, mixed precision, guard rails.

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Tensor};

use super::optim::{clip_grad_norm, AdamW, AdamWConfig, LinearSchedule, Warmup};
use crate::error::{Error, Result};
use crate::model::{DropoutRng, Inputs, Model, Output, Target};

/// Settings of one fine-tuning run.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TrainOptions {
    pub adamw: AdamWConfig,
    pub warmup: Warmup,
    pub epochs: usize,
    /// Stop after this many updates (overrides `epochs` when smaller).
    pub max_steps: Option<u64>,
    /// Batches whose gradients are summed before one update.
    pub grad_accum: usize,
    pub max_grad_norm: f64,
    /// Fixes dropout masks (data order is fixed by the caller's batches).
    pub seed: u64,
    /// `bf16` for mixed precision (f32 master weights, bf16 matmuls).
    pub bf16: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { adamw: AdamWConfig::default(), warmup: Warmup::Fraction(0.1), epochs: 2, max_steps: None, grad_accum: 1, max_grad_norm: 1.0, seed: 0, bf16: false }
    }
}

/// Where a long call reports progress; the engine knows no terminal.
pub trait Progress {
    fn start(&mut self, _what: &str, _total: u64) {}
    fn step(&mut self, _done: u64, _loss: f64, _lr: f64) {}
    fn finish(&mut self) {}
}

/// Progress that goes nowhere.
pub struct Silent;
impl Progress for Silent {}

/// What a run did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TrainReport {
    pub steps: u64,
    /// Mean loss of each update.
    pub losses: Vec<f64>,
    /// True when stopped early by the cancel flag.
    pub cancelled: bool,
}

/// Fine-tunes `model` in place. `epoch_batches(e)` returns the batches of
/// epoch `e` in training order (the caller shuffles, from its seed).
pub fn fine_tune(
    model: &Model,
    epoch_batches: &mut dyn FnMut(usize) -> Result<Vec<(Inputs, Target)>>,
    opts: &TrainOptions,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<TrainReport> {
    let accum = opts.grad_accum.max(1);
    let first = epoch_batches(0)?;
    if first.is_empty() {
        return Err(Error::msg("no training batches: the training set is empty"));
    }
    let per_epoch = first.len().div_ceil(accum) as u64;
    let mut total = per_epoch * opts.epochs as u64;
    if let Some(m) = opts.max_steps {
        total = total.min(m);
    }
    let schedule = LinearSchedule::new(opts.adamw.lr, opts.warmup, total);
    let params = model.params();
    let mut opt = AdamW::new(params.clone(), opts.adamw.clone())?;
    let mut rng = DropoutRng::new(opts.seed);
    let runner = if opts.bf16 { model.clone().with_compute_dtype(DType::BF16) } else { model.clone() };
    let mut report = TrainReport::default();
    progress.start("train", total);
    let mut batches = Some(first);
    'epochs: for epoch in 0..opts.epochs.max(1) {
        let list = match batches.take() {
            Some(b) => b,
            None => epoch_batches(epoch)?,
        };
        for group in list.chunks(accum) {
            if report.steps >= total {
                break 'epochs;
            }
            if cancel.load(Ordering::Relaxed) {
                report.cancelled = true;
                break 'epochs;
            }
            let mut grads: Option<candle_core::backprop::GradStore> = None;
            let mut loss_sum = 0.0;
            for (inputs, target) in group {
                let out: Output = runner.forward(inputs, Some(&mut rng))?;
                let loss = (runner.loss(&out, target)? / group.len() as f64)?;
                let value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
                if !value.is_finite() {
                    return Err(Error::msg(format!("loss is {value} at update {}: stopping (lower the learning rate or use f32)", report.steps + 1)));
                }
                loss_sum += value;
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
            let mut grads = grads.ok_or_else(|| Error::msg("empty batch group"))?;
            model.encoder.mask_padding_grads(&mut grads)?;
            let norm = clip_grad_norm(&params, &mut grads, opts.max_grad_norm)?;
            if !norm.is_finite() {
                return Err(Error::msg(format!("gradient norm is {norm} at update {}: stopping", report.steps + 1)));
            }
            let lr = schedule.lr(report.steps);
            opt.step(&grads, lr)?;
            report.steps += 1;
            report.losses.push(loss_sum);
            progress.step(report.steps, loss_sum, lr);
        }
    }
    progress.finish();
    Ok(report)
}

/// Predicted class (argmax) of each row, in batch order, with dropout off
/// and no graph kept.
pub fn predict_classes(model: &Model, batches: &[Inputs]) -> Result<Vec<usize>> {
    let mut out = vec![];
    for inputs in batches {
        let logits: Tensor = model.forward(inputs, None)?.logits()?.detach();
        let best = logits.argmax(candle_core::D::Minus1)?.to_dtype(DType::U32)?.to_vec1::<u32>()?;
        out.extend(best.into_iter().map(|b| b as usize));
    }
    Ok(out)
}
