//! Task-level training and evaluation: what a recipe calls. Datasets come
//! from `tasks`, features from the feature cache, batches are length
//! bucketed; training runs the fine-tuning loop, with model selection on a
//! dev set and checkpoints when asked; evaluation reports the task's metric
//! and a score per example (for bootstrap statistics).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, D};

use super::multitask::{interleave, MultiTaskModel, Sampling, TaskSampler};
use super::optim::OptimizerState;
use super::presets::RunOptions;
use super::train::{fine_tune_with_eval, Epoch, Progress, Silent, TrainBatch, TrainReport};
use stilts_model::error::{Error, Result};
use stilts_model::{HeadKind, Model, Output, Tokenizer};
use stilts_tasks::{
    self as tasks, BatchSize, Dataset, EvalPlan, Example, Feature, FeatureCache, FeatureOptions,
    Label, Metric, ReadOptions, TextEncoder,
};

/// The tokenizer of a model for feature building (in memory; a tokenizer
/// trained for a tiny model needs no file).
pub fn text_encoder(tok: &Tokenizer) -> Result<TextEncoder> {
    TextEncoder::from_tokenizer(tok)
}

fn encoder_of(model: &Model) -> Result<TextEncoder> {
    text_encoder(tokenizer_of(model)?)
}

/// The training examples of one part: a seeded subset of `limit`
/// examples, stratified by label for classification
/// ([`Dataset::limit_sample`], drawn with the run's seed), or all of them.
pub fn training_part(ds: &Dataset, opts: &RunOptions) -> Dataset {
    match opts.limit {
        Some(n) if n < ds.len() => ds.limit_sample(n, opts.seed),
        _ => ds.clone(),
    }
}

/// The training examples a phase uses: each part's after `limit` (see
/// [`training_part`]), summed. Multi-task training caps each task at
/// `train_examples_cap` first (its parts pooled), when that is set.
pub fn training_examples(parts: &[Dataset], opts: &RunOptions, multitask: bool) -> usize {
    let limited = |n: usize| opts.limit.map_or(n, |l| l.min(n));
    match opts.train_examples_cap {
        Some(cap) if multitask => limited(cap.min(parts.iter().map(Dataset::len).sum())),
        _ => parts.iter().map(|d| limited(d.len())).sum(),
    }
}

/// What a training set is worth warning about before training on it: a
/// classification set that holds one label only.
pub fn training_warnings(parts: &[Dataset], opts: &RunOptions) -> Vec<String> {
    let mut out = vec![];
    for ds in parts {
        let ds = training_part(ds, opts);
        if let Some(l) = ds.single_label() {
            out.push(format!(
                "{}: all {} training examples have the label `{l}`; the classifier cannot learn the others (is the file sorted by label? `limit` draws a stratified sample, `sample` a label-balanced one)",
                ds.name(),
                ds.len()
            ));
        }
    }
    out
}

/// Features of (the first `limit` examples of) a dataset, through the
/// cache: what evaluation scores (`dev_limit` and `evaluate`'s `limit` are
/// prefixes, the same examples in every language of a parallel set).
pub fn features(
    ds: &Dataset,
    enc: &TextEncoder,
    opts: &RunOptions,
    cache: &FeatureCache,
) -> Result<Vec<Feature>> {
    let mut fo = FeatureOptions::for_dataset(ds);
    if matches!(ds.head, HeadKind::SpanQa) {
        (fo.max_length, fo.doc_stride) = opts.qa_window();
        fo.max_query_length = Some(opts.max_query_length);
    } else {
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

/// The one rule for a dev set (the data model selection scores), for
/// `train`, `multitask`, `stilts` and `condition` alike: a task of one part
/// is used as it is; a task of several parts (languages, rounds) is an error
/// unless `pool` asks for them pooled into one set. Selecting a checkpoint
/// on several languages' data uses target-language data, which is not
/// zero-shot transfer, so it has to be asked for by name.
///
/// ```
/// use stilts_protocol::run::dev_set;
/// use stilts_tasks::{Dataset, Metric};
/// let part = |lang: &str| Dataset {
///     task: "xnli".into(),
///     split: "dev".into(),
///     subset: Some(lang.into()),
///     files: vec![],
///     labels: vec!["entailment".into()],
///     head: stilts_model::HeadKind::Classification { labels: vec!["entailment".into()] },
///     metric: Metric::Accuracy,
///     examples: vec![],
///     skipped: Default::default(),
/// };
/// assert!(dev_set("xnli", &[part("en")], false).is_ok());
/// let e = dev_set("xnli", &[part("ar"), part("en")], false).unwrap_err().to_string();
/// assert!(e.contains("dev_pool: true") && e.contains("language(\"en\")"));
/// assert!(dev_set("xnli", &[part("ar"), part("en")], true).is_ok());
/// ```
pub fn dev_set(name: &str, parts: &[Dataset], pool: bool) -> Result<Dataset> {
    let Some(first) = parts.first() else {
        return Err(Error::msg(format!("the dev set `{name}` is empty")));
    };
    if parts.len() == 1 {
        return Ok(first.clone());
    }
    if !pool {
        let names: Vec<String> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                p.subset
                    .clone()
                    .unwrap_or_else(|| format!("part {}", i + 1))
            })
            .collect();
        let shown = if names.len() > 6 {
            format!("{}, …", names[..6].join(", "))
        } else {
            names.join(", ")
        };
        let one = first.subset.as_deref().unwrap_or("en");
        return Err(Error::msg(format!(
            "the dev set `{name}` has {} parts ({shown}): model selection on them would use \
             data of every part (for a multilingual task, target-language data, which is not \
             zero-shot transfer); give one part, e.g. `dev: {name}_dev.language(\"{}\")`, or pool \
             them on purpose with `dev_pool: true`",
            parts.len(),
            if parts.iter().any(|p| p.subset.as_deref() == Some("en")) {
                "en"
            } else {
                one
            },
        )));
    }
    let mut pooled = first.clone();
    for p in &parts[1..] {
        if p.head != first.head {
            return Err(Error::msg(format!(
                "the dev set `{name}` mixes heads ({} and {}): it cannot be pooled",
                first.head.name(),
                p.head.name()
            )));
        }
        pooled.examples.extend(p.examples.iter().cloned());
        pooled.files.extend(p.files.iter().cloned());
    }
    pooled.subset = None;
    Ok(pooled)
}

/// At most `cap` examples of `ds`: a sample drawn with `seed`, kept in
/// file order (jiant's `train_examples_cap`).
pub fn capped(ds: &Dataset, cap: usize, seed: u64) -> Dataset {
    if ds.len() <= cap {
        return ds.clone();
    }
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut idx: Vec<usize> = (0..ds.len()).collect();
    idx.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
    idx.truncate(cap);
    idx.sort_unstable();
    let mut out = ds.clone();
    out.examples = idx.into_iter().map(|i| ds.examples[i].clone()).collect();
    out
}

/// The training data of one task, ready to batch: features for a
/// supervised head, token ids for masked language modelling (masked anew
/// each epoch).
enum PhaseData {
    Supervised(Vec<Feature>),
    Mlm(Vec<Vec<u32>>),
}

impl PhaseData {
    fn len(&self) -> usize {
        match self {
            PhaseData::Supervised(f) => f.len(),
            PhaseData::Mlm(t) => t.len(),
        }
    }
}

fn phase_data(
    parts: &[Dataset],
    tok: &Tokenizer,
    enc: &TextEncoder,
    opts: &RunOptions,
    cache: &FeatureCache,
) -> Result<PhaseData> {
    let first = parts
        .first()
        .ok_or_else(|| Error::msg("the task has no data"))?;
    if matches!(first.head, HeadKind::MaskedLm) {
        let mut ids = vec![];
        for ds in parts {
            let ds = training_part(ds, opts);
            let lines: Vec<(String, Option<String>)> = ds
                .examples
                .iter()
                .filter_map(|e| match e {
                    Example::Text { a, .. } => Some((a.clone(), None)),
                    _ => None,
                })
                .collect();
            ids.extend(tok.encode_batch(&lines, opts.max_length)?);
        }
        return Ok(PhaseData::Mlm(ids));
    }
    let mut feats = vec![];
    for ds in parts {
        let ds = training_part(ds, opts);
        let all = RunOptions {
            limit: None,
            ..opts.clone()
        };
        feats.extend(features(&ds, enc, &all, cache)?);
    }
    Ok(PhaseData::Supervised(feats))
}

/// The tokenizer a model trains with.
fn tokenizer_of(model: &Model) -> Result<&Tokenizer> {
    model.tokenizer.as_ref().ok_or_else(|| Error::msg("the model has no tokenizer (no tokenizer.json in its directory): copy its base model's tokenizer files next to it"))
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

/// Training data as per-epoch batch plans, reproducible per (seed, epoch):
/// the batches' example indices now, their tensors when the loop reaches
/// them.
#[allow(clippy::too_many_arguments)]
fn epoch_batches<'a>(
    data: &'a PhaseData,
    head: &'a HeadKind,
    tok: &Tokenizer,
    pad: u32,
    device: &Device,
    opts: &RunOptions,
    seed: u64,
    epoch: usize,
    task: usize,
) -> Result<Epoch<'a>> {
    let feats = match data {
        PhaseData::Mlm(ids) => {
            // (The rows were truncated to `max_length` when encoded.)
            let mo = super::mlm::MlmOptions {
                batch_size: opts.batch_size.max(1),
                shuffle: opts.shuffle,
                ..Default::default()
            };
            let mut planned = super::mlm::epoch_batches(tok, ids, &mo, seed, epoch, device)?;
            let shapes = (0..planned.len()).map(|i| planned.shape(i)).collect();
            return Ok(Epoch::planned(shapes, move |i| {
                Ok(TrainBatch {
                    task,
                    ..planned.batch(i)?
                })
            }));
        }
        PhaseData::Supervised(f) => f,
    };
    let lens = tasks::batch::lengths(feats);
    let plan = if opts.shuffle {
        tasks::train_batches(
            &lens,
            batch_size(opts),
            seed.wrapping_mul(1000).wrapping_add(epoch as u64),
        )
    } else {
        tasks::batch::in_order(&lens, batch_size(opts))
    };
    let shapes = plan
        .iter()
        .map(|b| (b.len(), b.iter().map(|&i| lens[i]).max().unwrap_or(0)))
        .collect();
    let device = device.clone();
    Ok(Epoch::planned(shapes, move |i| {
        let batch: Vec<&Feature> = plan[i].iter().map(|&k| &feats[k]).collect();
        let (inputs, target) = tasks::collate(&batch, head, pad, &device)?;
        Ok(TrainBatch {
            task,
            inputs,
            target,
        })
    }))
}

/// Which head a training call trains on the model's encoder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HeadChoice {
    /// The model's own head where it fits the task (same kind and labels),
    /// else a fresh one from the run's seed (the default).
    #[default]
    Fitting,
    /// A fresh head even when the model's fits (`new_head: true`).
    Fresh,
    /// The model's own head, as its checkpoint holds it (e.g. the one a
    /// reference framework initialised), never replaced: an error when it
    /// does not fit the task (`new_head: false`).
    Kept,
}

/// One training call: what to train, on what, how, and where it starts.
/// Built by the caller (a recipe's `train`, a condition's phase) and passed
/// down whole.
#[derive(Clone)]
pub struct TrainJob<'a> {
    /// The model to start from; `train` fine-tunes a copy (see `transfer`) and
    /// leaves this one as it is.
    pub model: &'a Model,
    /// The parts of one task, pooled (e.g. ANLI's rounds).
    pub data: &'a [Dataset],
    /// Model selection: evaluated every `eval_every` updates (default: each
    /// epoch), the best weights kept; `None` trains to the end.
    pub dev: Option<&'a Dataset>,
    /// The resolved options: batching, loop settings, `limit`, seed.
    pub options: &'a RunOptions,
    /// The model's head, a fresh one, or the model's where it fits.
    pub head: HeadChoice,
    /// Folder of the loop's checkpoints (every `options.checkpoint_every`
    /// updates, at the end and when cancelled) and `curve.jsonl`; a job
    /// started again with the same settings resumes there. `None`: none.
    pub checkpoint_dir: Option<PathBuf>,
    /// AdamW state to start from (a previous phase's), or fresh.
    pub optimizer: Option<Arc<OptimizerState>>,
}

impl<'a> TrainJob<'a> {
    /// A job with no dev set, no checkpoints and a fresh optimizer.
    pub fn new(model: &'a Model, data: &'a [Dataset], options: &'a RunOptions) -> Self {
        TrainJob {
            model,
            data,
            dev: None,
            options,
            head: HeadChoice::Fitting,
            checkpoint_dir: None,
            optimizer: None,
        }
    }
}

/// The loop's settings for a job: model selection only with a dev set
/// (evaluated every `eval_every` updates, default once per epoch of
/// `updates_per_epoch`), checkpoints in `checkpoint_dir`.
fn loop_options(
    opts: &RunOptions,
    has_dev: bool,
    updates_per_epoch: u64,
    checkpoint_dir: &Option<PathBuf>,
) -> super::train::TrainOptions {
    let mut t = opts.train_options(has_dev.then_some(updates_per_epoch));
    t.checkpoint_dir = checkpoint_dir.clone();
    if !has_dev {
        t.eval_every = None;
        t.patience = None;
    }
    t
}

/// The dev set's options: scored on its first `dev_limit` examples.
fn dev_options(opts: &RunOptions) -> RunOptions {
    RunOptions {
        limit: opts.dev_limit,
        ..opts.clone()
    }
}

/// Fine-tunes a copy of the job's model on its data, with a fresh head when
/// asked or when the head does not fit. With a dev set the model is
/// evaluated every `eval_every` updates and ends on the best weights.
pub fn train(
    job: &TrainJob<'_>,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<(Model, TrainReport)> {
    let (data, opts) = (job.data, job.options);
    let first = data
        .first()
        .ok_or_else(|| Error::msg("train: the task has no data"))?;
    no_training_data(data)?;
    if let Some(d) = data.iter().find(|d| d.head != first.head) {
        return Err(Error::msg(format!(
            "train: {} and {} need different heads; train them as a multi-task mix",
            first.name(),
            d.name()
        )));
    }
    if let Some(d) = job.dev {
        if d.head != first.head {
            return Err(Error::msg(format!(
                "train: the dev set {} needs a {} head, but {} trains a {} head; give a dev split of the task being trained",
                d.name(), d.head.name(), first.name(), first.head.name()
            )));
        }
        if matches!(d.head, HeadKind::MaskedLm) {
            return Err(Error::msg(
                "train: masked language modelling has no dev metric; leave `dev` out for MLM",
            ));
        }
    }
    if matches!(
        first.head,
        HeadKind::Classification { .. } | HeadKind::MultipleChoice
    ) && data
        .iter()
        .all(|d| d.examples.iter().all(|e| e.label().is_none()))
    {
        return Err(Error::msg(format!(
            "train: no example of {} has a gold label ({}); train on a labelled split",
            first.name(),
            first
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if job.head == HeadChoice::Kept && job.model.head.kind != first.head {
        let labels = |h: &HeadKind| match h.labels() {
            [] => String::new(),
            l => format!(" {l:?}"),
        };
        return Err(Error::msg(format!(
            "train: `new_head: false` keeps the model's head, but it is a {} head{} and {} needs a {} head{}: load the model with `head` and `labels` set to the task's (model(dir, #{{head: \"classification\", labels: [...]}}) reads the checkpoint's head weights under those names), or leave `new_head` out for a fresh head",
            job.model.head.kind.name(),
            labels(&job.model.head.kind),
            first.name(),
            first.head.name(),
            labels(&first.head),
        )));
    }
    let m = transfer(
        job.model,
        &first.head,
        opts.seed,
        job.head == HeadChoice::Fresh,
    )?;
    let tok = tokenizer_of(&m)?;
    let enc = text_encoder(tok)?;
    let cache = FeatureCache::default();
    let pd = phase_data(data, tok, &enc, opts, &cache)?;
    if pd.len() == 0 {
        return Err(Error::msg(format!(
            "train: no training examples in {}",
            first.name()
        )));
    }
    let device = m.encoder.device().clone();
    let head = first.head.clone();
    let pad = enc.pad_id();
    // Counted from the plan (nothing collated).
    let per_epoch =
        epoch_batches(&pd, &head, tok, pad, &device, opts, opts.seed, 0, 0)?.len() as u64;
    let mut next =
        |epoch: usize| epoch_batches(&pd, &head, tok, pad, &device, opts, opts.seed, epoch, 0);
    let dev_opts = dev_options(opts);
    let dev_eval = match job.dev {
        Some(d) => Some((d, features(d, &enc, &dev_opts, &cache)?)),
        None => None,
    };
    let m_ref = &m;
    let mut eval_closure = || -> Result<f64> {
        let (d, f) = dev_eval
            .as_ref()
            .expect("evaluator only used with a dev set");
        Ok(evaluate_features(m_ref, d, f, &enc, &dev_opts, &mut Silent, cancel)?.score)
    };
    let mut train_opts = loop_options(
        opts,
        job.dev.is_some(),
        per_epoch.div_ceil(opts.grad_accum.max(1) as u64),
        &job.checkpoint_dir,
    );
    train_opts.initial_optimizer = job.optimizer.clone();
    let ev: Option<&mut super::train::Evaluator<'_>> = job.dev.map(|_| &mut eval_closure as _);
    let mut report = fine_tune_with_eval(&m, &mut next, ev, &train_opts, progress, cancel)?;
    if matches!(head, HeadKind::SpanQa) {
        for ds in data {
            let ds = training_part(ds, opts);
            report.questions_cut += tasks::long_questions(&ds, &enc, opts.max_query_length)? as u64;
        }
    }
    Ok((m, report))
}

/// A retrieval test set (Tatoeba) has nothing to train on.
fn no_training_data(parts: &[Dataset]) -> Result<()> {
    match parts.iter().find(|d| d.metric == Metric::Retrieval) {
        Some(d) => Err(Error::msg(format!(
            "{} is a retrieval test set: it has no training data; evaluate(model, task) scores the encoder as it is (in a condition: `target: ()` and the task under `evaluate`)",
            d.name()
        ))),
        None => Ok(()),
    }
}

/// A multi-task call: one shared encoder (a copy of `model`'s), a fresh
/// head per task, a task drawn per update by `sampling`.
#[derive(Clone)]
pub struct MultitaskJob<'a> {
    /// The model whose encoder is copied and shared by the tasks' fresh heads
    /// (its own head is not used).
    pub model: &'a Model,
    /// (name, parts) of each task of the mix.
    pub tasks: &'a [(String, Vec<Dataset>)],
    /// How the task of each update is drawn (from the tasks' sizes).
    pub sampling: &'a Sampling,
    /// Model selection on one task of the mix (its head scores it).
    pub dev: Option<&'a Dataset>,
    /// The resolved options, the same for every task of the mix.
    pub options: &'a RunOptions,
    /// Folder of the loop's checkpoints and `curve.jsonl`, as for `TrainJob`;
    /// `None`: none.
    pub checkpoint_dir: Option<PathBuf>,
}

/// Multi-task intermediate training. `options.epochs` counts passes over
/// the combined data (each task capped at `train_examples_cap` examples
/// when set); gradient accumulation stays within one task. Returns the
/// model of each task (all sharing the trained encoder).
pub fn multitask(
    job: &MultitaskJob<'_>,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<(Vec<Model>, TrainReport)> {
    let (model, tasks_data, opts) = (job.model, job.tasks, job.options);
    if tasks_data.is_empty() {
        return Err(Error::msg("multitask: no tasks given"));
    }
    for (_, parts) in tasks_data {
        no_training_data(parts)?;
    }
    let tok = tokenizer_of(model)?;
    let enc = text_encoder(tok)?;
    let cache = FeatureCache::default();
    let device = model.encoder.device().clone();
    let mut heads = vec![];
    let mut data: Vec<PhaseData> = vec![];
    for (t, (name, parts)) in tasks_data.iter().enumerate() {
        let first = parts
            .first()
            .ok_or_else(|| Error::msg(format!("multitask: task {name} has no data")))?;
        heads.push((name.clone(), first.head.clone()));
        let parts: Vec<Dataset> = match opts.train_examples_cap {
            // The cap applies to the task as a whole: its parts pooled.
            Some(cap) => {
                let mut pooled = first.clone();
                pooled.examples = parts.iter().flat_map(|p| p.examples.clone()).collect();
                vec![capped(&pooled, cap, opts.seed.wrapping_add(t as u64))]
            }
            None => parts.clone(),
        };
        let pd = phase_data(&parts, tok, &enc, opts, &cache)?;
        if pd.len() == 0 {
            return Err(Error::msg(format!(
                "multitask: task {name} has no examples"
            )));
        }
        data.push(pd);
    }
    let dev_task = match job.dev {
        None => None,
        Some(d) => {
            let i = tasks_data
                .iter()
                .position(|(n, p)| n == &d.task || p.first().is_some_and(|f| f.task == d.task))
                .ok_or_else(|| {
                    Error::msg(format!(
                        "multitask: the dev set is of task `{}`, which is not in the mix ({}); give a dev split of one of its tasks",
                        d.task,
                        tasks_data.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
                    ))
                })?;
            if heads[i].1 != d.head {
                return Err(Error::msg(format!(
                    "multitask: the dev set {} needs a {} head, but task {} trains a {} head",
                    d.name(),
                    d.head.name(),
                    heads[i].0,
                    heads[i].1.name()
                )));
            }
            Some(i)
        }
    };
    let encoder = model.encoder.to(&device, model.encoder.dtype())?;
    let mt = MultiTaskModel::new(encoder, &heads, opts.seed)?;
    let names: Vec<String> = heads.iter().map(|(n, _)| n.clone()).collect();
    let sizes: Vec<usize> = data.iter().map(PhaseData::len).collect();
    let probs = job.sampling.probabilities(&names, &sizes)?;
    let pad = enc.pad_id();
    let accum = opts.grad_accum.max(1);
    // Counted from each task's plan (nothing collated).
    let mut batches_per_epoch = 0usize;
    for (pd, (_, h)) in data.iter().zip(&heads) {
        batches_per_epoch += epoch_batches(pd, h, tok, pad, &device, opts, opts.seed, 0, 0)?.len();
    }
    let updates_per_epoch = batches_per_epoch.div_ceil(accum).max(1);
    let mut next = |epoch: usize| {
        let mut sampler = TaskSampler::new(
            &probs,
            opts.seed.wrapping_mul(7919).wrapping_add(epoch as u64),
        );
        interleave(
            updates_per_epoch,
            accum,
            &mut sampler,
            &mut |t, e| {
                epoch_batches(
                    &data[t],
                    &heads[t].1,
                    tok,
                    pad,
                    &device,
                    opts,
                    opts.seed.wrapping_add(t as u64),
                    epoch * 1000 + e,
                    t,
                )
            },
            heads.len(),
        )
    };
    let dev_opts = dev_options(opts);
    let dev_eval = match (job.dev, dev_task) {
        (Some(d), Some(i)) => Some((d, i, features(d, &enc, &dev_opts, &cache)?)),
        _ => None,
    };
    let mt_ref = &mt;
    let mut eval_closure = || -> Result<f64> {
        let (d, i, f) = dev_eval
            .as_ref()
            .expect("evaluator only used with a dev set");
        let m = mt_ref.model(*i);
        Ok(evaluate_features(&m, d, f, &enc, &dev_opts, &mut Silent, cancel)?.score)
    };
    let train_opts = loop_options(
        opts,
        job.dev.is_some(),
        updates_per_epoch as u64,
        &job.checkpoint_dir,
    );
    let ev: Option<&mut super::train::Evaluator<'_>> = job.dev.map(|_| &mut eval_closure as _);
    let report = fine_tune_with_eval(&mt, &mut next, ev, &train_opts, progress, cancel)?;
    let models = (0..heads.len())
        .map(|i| {
            let mut m = mt.model(i);
            m.tokenizer = model.tokenizer.clone();
            m
        })
        .collect();
    Ok((models, report))
}

pub use crate::evaluation::Evaluation;

/// Evaluates `model` on a dataset (dropout off, length-sorted batches).
pub fn evaluate(
    model: &Model,
    ds: &Dataset,
    opts: &RunOptions,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<Evaluation> {
    if ds.metric == Metric::Retrieval {
        // No head: the encoder's sentence embeddings, XTREME's defaults.
        let r = super::retrieval::RetrievalOptions {
            batch_size: opts.batch_size.max(1),
            limit: opts.limit,
            ..Default::default()
        };
        return super::retrieval::evaluate_retrieval(model, ds, &r, progress, cancel);
    }
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
    if matches!(ds.head, HeadKind::MaskedLm) {
        return Err(Error::msg(format!(
            "evaluate: {} is masked language modelling, which has no score here; evaluate on a labelled task",
            ds.name()
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
            return Err(Error::cancelled(format!("evaluation of {}", ds.name())));
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
    let mut predicted = BTreeMap::new();
    let hits = match ds.metric {
        Metric::Accuracy => {
            let mut pred = Vec::with_capacity(outs.len());
            let labels = ds.head.labels();
            // Every class, those never predicted too (at 0).
            predicted.extend(labels.iter().map(|l| (l.clone(), 0u64)));
            for o in &outs {
                let Out::Class(p) = o else {
                    return Err(Error::msg("internal: class output expected"));
                };
                pred.push(*p);
                let name = labels
                    .get(*p)
                    .cloned()
                    .unwrap_or_else(|| format!("class {p}"));
                *predicted.entry(name).or_insert(0u64) += 1;
            }
            let gold: Vec<Option<usize>> =
                feats.iter().map(|f| examples[f.example].label()).collect();
            let ids: Vec<&str> = feats.iter().map(|f| examples[f.example].id()).collect();
            tasks::metrics::class_hits(&pred, &gold, &ids)
                .map_err(|e| Error::msg(format!("{}: {e}", ds.name())))?
        }
        Metric::TaggingAccuracy => {
            let mut pred = Vec::with_capacity(outs.len());
            let mut gold = Vec::with_capacity(outs.len());
            for (f, o) in feats.iter().zip(outs) {
                let (Label::Tags(g), Out::Tags(p)) = (&f.label, o) else {
                    return Err(Error::msg(format!("{}: no gold tags", ds.name())));
                };
                gold.push(g.clone());
                pred.push(p);
            }
            tasks::metrics::tagging_hits(&pred, &gold)?
        }
        Metric::Retrieval => {
            return Err(Error::msg(format!(
                "{} is scored by retrieval, not through a head",
                ds.name()
            )))
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
            let mut per_example = vec![];
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
                predicted: BTreeMap::new(),
            });
        }
    };
    Ok(Evaluation {
        metric: ds.metric.name().to_string(),
        score: tasks::metrics::percent(&hits),
        n: examples.len(),
        per_example: hits.iter().map(|&h| f32::from(h)).collect(),
        extra: BTreeMap::new(),
        predicted,
    })
}
