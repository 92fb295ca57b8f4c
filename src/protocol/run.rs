//! Task-level training and evaluation: what a recipe calls. Datasets come
//! from `tasks`, features from the feature cache, batches are length
//! bucketed; training runs the fine-tuning loop, with model selection on a
//! dev set and checkpoints when asked; evaluation reports the task's metric
//! and a score per example (for bootstrap statistics).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, D};

use super::multitask::{interleave, MultiTaskModel, Sampling, TaskSampler};
use super::optim::OptimizerState;
use super::presets::RunOptions;
use super::train::{fine_tune_with_eval, Progress, Silent, TrainBatch, TrainReport};
use crate::error::{Error, Result};
use crate::model::{HeadKind, Model, Output, Tokenizer};
use crate::tasks::{
    self, BatchSize, Dataset, EvalPlan, Example, Feature, FeatureCache, FeatureOptions, Label,
    Metric, ReadOptions, TextEncoder,
};

/// The tokenizer of a model for feature building (in memory; a tokenizer
/// trained for a tiny model needs no file).
pub fn text_encoder(tok: &Tokenizer) -> Result<TextEncoder> {
    TextEncoder::from_tokenizer(tok)
}

fn encoder_of(model: &Model) -> Result<TextEncoder> {
    let tok = model.tokenizer.as_ref().ok_or_else(|| Error::msg("the model has no tokenizer (no tokenizer.json in its directory): copy its base model's tokenizer files next to it"))?;
    text_encoder(tok)
}

/// Features of (the first `limit` examples of) a dataset, through the cache.
pub fn features(
    ds: &Dataset,
    enc: &TextEncoder,
    opts: &RunOptions,
    cache: &FeatureCache,
) -> Result<Vec<Feature>> {
    let mut fo = FeatureOptions::for_dataset(ds);
    if !matches!(ds.head, HeadKind::SpanQa) {
        fo.max_length = opts.max_length;
    }
    let limited;
    let ds = match opts.limit {
        Some(n) if n < ds.len() => {
            let mut small = ds.clone();
            small.examples.truncate(n);
            limited = small;
            &limited
        }
        _ => ds,
    };
    Ok(cache.features(ds, enc, &fo, &ReadOptions::default())?.0)
}

fn batch_size(opts: &RunOptions) -> BatchSize {
    match opts.max_tokens {
        Some(t) => BatchSize::Tokens(t),
        None => BatchSize::Examples(opts.batch_size.max(1)),
    }
}

/// The STILTs move, as a copy: `model`'s encoder (deep-copied, so the
/// source stays as it is) under a head for `head`: the model's own head if
/// it already fits and `fresh` is false, else a new one from `seed`.
pub fn transfer(model: &Model, head: &HeadKind, seed: u64, fresh: bool) -> Result<Model> {
    let (device, dtype) = (model.encoder.device().clone(), model.encoder.dtype());
    let mut m = if fresh || &model.head.kind != head {
        Model::with_head(model.encoder.to(&device, dtype)?, head.clone(), seed)?
    } else {
        model.to(&device, dtype)?
    };
    m.tokenizer = model.tokenizer.clone();
    m.encoder.compute_dtype = model.encoder.compute_dtype;
    m.head.compute_dtype = model.encoder.compute_dtype;
    Ok(m)
}

/// Training data as per-epoch batch lists, reproducible per (seed, epoch).
fn epoch_batches(
    feats: &[Feature],
    head: &HeadKind,
    pad: u32,
    device: &Device,
    size: BatchSize,
    seed: u64,
    epoch: usize,
    task: usize,
) -> Result<Vec<TrainBatch>> {
    let lens = tasks::batch::lengths(feats);
    tasks::train_batches(
        &lens,
        size,
        seed.wrapping_mul(1000).wrapping_add(epoch as u64),
    )
    .iter()
    .map(|b| {
        let batch: Vec<&Feature> = b.iter().map(|&i| &feats[i]).collect();
        let (inputs, target) = tasks::collate(&batch, head, pad, device)?;
        Ok(TrainBatch {
            task,
            inputs,
            target,
        })
    })
    .collect()
}

/// Fine-tunes a copy of `model` on `data` (the parts of one task pooled,
/// e.g. ANLI's rounds), with a fresh head when `fresh` or when the head
/// does not fit. With `dev`, the model is evaluated every `eval_every`
/// updates (default: each epoch) and the best weights are kept.
/// Checkpoints go to `checkpoint_dir` when `opts.checkpoint_every` is set.
/// `optimizer`: AdamW state to start from (a previous phase's), or fresh.
#[allow(clippy::too_many_arguments)]
pub fn train(
    model: &Model,
    data: &[Dataset],
    dev: Option<&Dataset>,
    opts: &RunOptions,
    fresh: bool,
    checkpoint_dir: Option<&Path>,
    optimizer: Option<Arc<OptimizerState>>,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<(Model, TrainReport)> {
    let first = data
        .first()
        .ok_or_else(|| Error::msg("train: the task has no data"))?;
    if let Some(d) = data.iter().find(|d| d.head != first.head) {
        return Err(Error::msg(format!(
            "train: {} and {} need different heads; train them as a multi-task mix",
            first.name(),
            d.name()
        )));
    }
    let m = transfer(model, &first.head, opts.seed, fresh)?;
    let enc = encoder_of(&m)?;
    let cache = FeatureCache::default();
    let mut feats = vec![];
    for ds in data {
        feats.extend(features(ds, &enc, opts, &cache)?);
    }
    if feats.is_empty() {
        return Err(Error::msg(format!(
            "train: no training examples in {}",
            first.name()
        )));
    }
    let device = m.encoder.device().clone();
    let head = first.head.clone();
    let pad = enc.pad_id();
    let size = batch_size(opts);
    let per_epoch = epoch_batches(&feats, &head, pad, &device, size, opts.seed, 0, 0)?.len() as u64;
    let mut next =
        |epoch: usize| epoch_batches(&feats, &head, pad, &device, size, opts.seed, epoch, 0);
    let dev_eval = match dev {
        Some(d) => Some((d, features(d, &enc, opts, &cache)?)),
        None => None,
    };
    let evaluator = |mm: &Model| -> Result<f64> {
        let (d, f) = dev_eval
            .as_ref()
            .expect("evaluator only used with a dev set");
        Ok(evaluate_features(mm, d, f, &enc, opts, &mut Silent, cancel)?.score)
    };
    let m_ref = &m;
    let mut eval_closure = || evaluator(m_ref);
    let mut train_opts =
        opts.train_options(dev.map(|_| per_epoch.div_ceil(opts.grad_accum.max(1) as u64)));
    train_opts.checkpoint_dir = checkpoint_dir.map(Path::to_path_buf);
    train_opts.initial_optimizer = optimizer;
    if dev.is_none() {
        train_opts.eval_every = None;
    }
    let ev: Option<&mut super::train::Evaluator<'_>> = if dev.is_some() {
        Some(&mut eval_closure)
    } else {
        None
    };
    let report = fine_tune_with_eval(&m, &mut next, ev, &train_opts, progress, cancel)?;
    Ok((m, report))
}

/// Multi-task intermediate training: one shared encoder (a copy of
/// `model`'s), a fresh head per task, tasks drawn per update by `sampling`.
/// `opts.epochs` counts passes over the combined data. Returns the model of
/// each task (all sharing the trained encoder).
pub fn multitask(
    model: &Model,
    tasks_data: &[(String, Vec<Dataset>)],
    sampling: &Sampling,
    opts: &RunOptions,
    checkpoint_dir: Option<&Path>,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<(Vec<Model>, TrainReport)> {
    if tasks_data.is_empty() {
        return Err(Error::msg("multitask: no tasks given"));
    }
    let enc = encoder_of(model)?;
    let cache = FeatureCache::default();
    let device = model.encoder.device().clone();
    let mut heads = vec![];
    let mut feats: Vec<Vec<Feature>> = vec![];
    for (name, parts) in tasks_data {
        let first = parts
            .first()
            .ok_or_else(|| Error::msg(format!("multitask: task {name} has no data")))?;
        heads.push((name.clone(), first.head.clone()));
        let mut f = vec![];
        for ds in parts {
            f.extend(features(ds, &enc, opts, &cache)?);
        }
        if f.is_empty() {
            return Err(Error::msg(format!(
                "multitask: task {name} has no examples"
            )));
        }
        feats.push(f);
    }
    let encoder = model.encoder.to(&device, model.encoder.dtype())?;
    let mt = MultiTaskModel::new(encoder, &heads, opts.seed)?;
    let sizes: Vec<usize> = feats.iter().map(Vec::len).collect();
    let probs = sampling.probabilities(&sizes)?;
    let size = batch_size(opts);
    let pad = enc.pad_id();
    let batches_per_epoch: usize = feats
        .iter()
        .zip(&heads)
        .map(|(f, (_, h))| {
            epoch_batches(f, h, pad, &device, size, opts.seed, 0, 0).map(|b| b.len())
        })
        .sum::<Result<usize>>()?;
    let mut next = |epoch: usize| {
        let mut sampler = TaskSampler::new(
            &probs,
            opts.seed.wrapping_mul(7919).wrapping_add(epoch as u64),
        );
        interleave(
            batches_per_epoch,
            &mut sampler,
            &mut |t, e| {
                epoch_batches(
                    &feats[t],
                    &heads[t].1,
                    pad,
                    &device,
                    size,
                    opts.seed.wrapping_add(t as u64),
                    epoch * 1000 + e,
                    t,
                )
            },
            heads.len(),
        )
    };
    let mut train_opts = opts.train_options(None);
    train_opts.checkpoint_dir = checkpoint_dir.map(Path::to_path_buf);
    let report = fine_tune_with_eval(&mt, &mut next, None, &train_opts, progress, cancel)?;
    let models = (0..heads.len())
        .map(|i| {
            let mut m = mt.model(i);
            m.tokenizer = model.tokenizer.clone();
            m
        })
        .collect();
    Ok((models, report))
}

/// One evaluation: the task's metric in percent and each example's score.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// `accuracy`, `tagging accuracy` or `f1`.
    pub metric: String,
    pub score: f64,
    /// Examples scored.
    pub n: usize,
    /// 1/0 per example (accuracy; per word for tagging), or its F1 (QA).
    pub per_example: Vec<f32>,
    /// Other figures of the metric (`exact` for SQuAD).
    pub extra: BTreeMap<String, f64>,
}

impl Evaluation {
    /// Per-example correctness (score > 0.5), for bootstrap statistics.
    pub fn correct(&self) -> Vec<bool> {
        self.per_example.iter().map(|&x| x > 0.5).collect()
    }
}

/// Evaluates `model` on a dataset (dropout off, length-sorted batches).
pub fn evaluate(
    model: &Model,
    ds: &Dataset,
    opts: &RunOptions,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<Evaluation> {
    let enc = encoder_of(model)?;
    let feats = features(ds, &enc, opts, &FeatureCache::default())?;
    evaluate_features(model, ds, &feats, &enc, opts, progress, cancel)
}

enum Out {
    Class(usize),
    Tags(Vec<u32>),
    Span(Vec<f32>, Vec<f32>),
}

fn argmax(t: &Tensor) -> Result<Tensor> {
    Ok(t.detach().argmax(D::Minus1)?.to_dtype(DType::U32)?)
}

fn evaluate_features(
    model: &Model,
    ds: &Dataset,
    feats: &[Feature],
    enc: &TextEncoder,
    opts: &RunOptions,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<Evaluation> {
    if model.head.kind != ds.head {
        return Err(Error::msg(format!(
            "evaluate: the model's head is {} {:?} but {} needs {} {:?}; train it on this task first",
            model.head.kind.name(),
            model.head.kind.labels(),
            ds.name(),
            ds.head.name(),
            ds.head.labels()
        )));
    }
    let n_examples = opts.limit.map_or(ds.len(), |l| l.min(ds.len()));
    let examples = &ds.examples[..n_examples];
    // No autograd graph during evaluation.
    let model = &model.for_inference()?;
    let plan = EvalPlan::new(&tasks::batch::lengths(feats), batch_size(opts));
    let device = model.encoder.device().clone();
    progress.start(&format!("eval {}", ds.name()), plan.batches.len() as u64);
    let mut per_batch: Vec<Vec<Out>> = vec![];
    for (k, b) in plan.batches.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            progress.finish();
            return Err(Error::msg("interrupted"));
        }
        let batch: Vec<&Feature> = b.iter().map(|&i| &feats[i]).collect();
        let (inputs, _) = tasks::collate(&batch, &ds.head, enc.pad_id(), &device)?;
        let out = model.forward(&inputs, None)?;
        per_batch.push(match (&ds.head, out) {
            (HeadKind::SpanQa, Output::Span { start, end }) => {
                let s: Vec<Vec<f32>> = start.detach().to_dtype(DType::F32)?.to_vec2()?;
                let e: Vec<Vec<f32>> = end.detach().to_dtype(DType::F32)?.to_vec2()?;
                s.into_iter().zip(e).map(|(s, e)| Out::Span(s, e)).collect()
            }
            (HeadKind::Tagging { .. }, o) => argmax(o.logits()?)?
                .to_vec2::<u32>()?
                .into_iter()
                .map(Out::Tags)
                .collect(),
            (_, o) => argmax(o.logits()?)?
                .to_vec1::<u32>()?
                .into_iter()
                .map(|c| Out::Class(c as usize))
                .collect(),
        });
        progress.step(k as u64 + 1, f64::NAN, 0.0);
    }
    progress.finish();
    let outs = plan.restore(per_batch)?;
    score(ds, examples, feats, outs)
}

fn score(
    ds: &Dataset,
    examples: &[Example],
    feats: &[Feature],
    outs: Vec<Out>,
) -> Result<Evaluation> {
    let mut per_example = vec![];
    match ds.metric {
        Metric::Accuracy => {
            for (f, o) in feats.iter().zip(&outs) {
                let gold = examples[f.example].label().ok_or_else(|| {
                    Error::msg(format!(
                        "{}: example {} has no gold label; evaluate on a split with labels",
                        ds.name(),
                        examples[f.example].id()
                    ))
                })?;
                let Out::Class(p) = o else {
                    return Err(Error::msg("internal: class output expected"));
                };
                per_example.push(f32::from(*p == gold));
            }
        }
        Metric::TaggingAccuracy => {
            for (f, o) in feats.iter().zip(&outs) {
                let (Label::Tags(gold), Out::Tags(pred)) = (&f.label, o) else {
                    return Err(Error::msg(format!("{}: no gold tags", ds.name())));
                };
                for (g, p) in gold.iter().zip(pred) {
                    if *g >= 0 {
                        per_example.push(f32::from(*g as u32 == *p));
                    }
                }
            }
        }
        Metric::SquadV1 | Metric::SquadV2 => {
            let logits: Vec<(Vec<f32>, Vec<f32>)> = outs
                .into_iter()
                .map(|o| {
                    if let Out::Span(s, e) = o {
                        (s, e)
                    } else {
                        (vec![], vec![])
                    }
                })
                .collect();
            let v2 = ds.metric == Metric::SquadV2;
            let popts = if v2 {
                tasks::PostprocessOptions::v2()
            } else {
                Default::default()
            };
            let preds = tasks::postprocess(examples, feats, &logits, &popts)?;
            let map: std::collections::HashMap<String, String> = preds
                .iter()
                .map(|p| (p.id.clone(), p.text.clone()))
                .collect();
            for (ex, p) in examples.iter().zip(&preds) {
                if let Example::Span { answers, .. } = ex {
                    let f1 = if answers.is_empty() {
                        f64::from(u8::from(p.text.is_empty()))
                    } else {
                        answers
                            .iter()
                            .map(|a| tasks::metrics::f1(&p.text, &a.text))
                            .fold(0.0, f64::max)
                    };
                    per_example.push(f1 as f32);
                }
            }
            let s = if v2 {
                tasks::metrics::squad_v2(examples, &map)?
            } else {
                tasks::metrics::squad_v1(examples, &map)?
            };
            return Ok(Evaluation {
                metric: "f1".into(),
                score: s.f1,
                n: examples.len(),
                per_example,
                extra: BTreeMap::from([("exact".to_string(), s.exact)]),
            });
        }
    }
    let n = per_example.len();
    let score = if n == 0 {
        f64::NAN
    } else {
        100.0 * per_example.iter().map(|&x| x as f64).sum::<f64>() / n as f64
    };
    Ok(Evaluation {
        metric: ds.metric.name().to_string(),
        score,
        n: examples.len(),
        per_example,
        extra: BTreeMap::new(),
    })
}
