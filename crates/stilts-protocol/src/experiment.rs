//! One condition of the research question, end to end and memoised: a
//! pretrained model, an intermediate phase (none, one task, or a multi-task
//! mix, MLM included), target training under a fresh head with model
//! selection on a dev set, zero-shot evaluation per language on one or
//! more evaluation sets (e.g. XNLI dev and test).
//!
//! This is the one experiment engine: recipes reach it through rhai's
//! `condition(#{...})`. A condition's fingerprint hashes everything its
//! numbers depend on (model files or weights, every data file and the
//! examples read, options, seed, the evaluation sets); a finished condition
//! with the same fingerprint is reused from the store, and the
//! intermediate-phase model of (model, intermediate task(s), options, seed)
//! is trained once, saved in Hugging Face layout under the store, and
//! reused by every condition that needs it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use super::fingerprint;
use super::multitask::Sampling;
use super::presets::RunOptions;
use super::run::{evaluate, multitask, train, transfer, HeadChoice, MultitaskJob, TrainJob};
use super::train::{Progress, TrainReport};
use crate::store::cells::{CellMark, MarkState};
use crate::store::{pack_bits, RunRecord, Store};
use stilts_model::error::{Error, Result, WithPath};
use stilts_model::{LoadOptions, Model};
use stilts_tasks::Dataset;

/// A task as a condition uses it: its name and parts (languages, rounds),
/// and their fingerprint.
#[derive(Clone, Debug)]
pub struct TaskData {
    /// The task's name: labels its curves and progress bars and enters the
    /// condition's configuration.
    pub name: String,
    /// Its datasets, one per language or round: training pools them, an
    /// evaluation scores each apart; a dev set has one (the script applies
    /// [`crate::run::dev_set`], the one rule for dev sets, before it gets here).
    pub parts: Arc<Vec<Dataset>>,
    /// Hash of the parts' data (`fingerprint::datasets`), computed by `new`.
    pub fingerprint: String,
}

impl TaskData {
    /// Fingerprints the parts (hashing their files once per process).
    pub fn new(name: &str, parts: Arc<Vec<Dataset>>) -> Result<Self> {
        let fingerprint = fingerprint::datasets(&parts)?;
        Ok(TaskData {
            name: name.to_string(),
            parts,
            fingerprint,
        })
    }
}

/// The one dataset of a dev set: a task of several parts is refused here
/// too, by the protocol's one rule ([`crate::run::dev_set`]).
fn dev_part(t: &Option<TaskData>) -> Result<Option<&Dataset>> {
    match t {
        None => Ok(None),
        Some(t) => {
            if t.parts.len() != 1 {
                crate::run::dev_set(&t.name, &t.parts, false)?;
            }
            Ok(t.parts.first())
        }
    }
}

/// Where a condition's model comes from.
#[derive(Clone)]
pub enum ModelSource {
    /// A directory, hub id in the HF cache or size name: loaded (with the
    /// target's head) when the condition runs, fingerprinted from its files.
    Spec(String),
    /// A model in memory (e.g. a tiny random model), with its fingerprint.
    Loaded {
        /// The model; each phase trains a copy of its encoder under a fresh head.
        model: Arc<Model>,
        /// Stands for its weights in the condition's fingerprint (given by the caller).
        fingerprint: String,
    },
}

impl ModelSource {
    fn fingerprint(&self) -> Result<String> {
        match self {
            ModelSource::Spec(s) => fingerprint::model_spec(s),
            ModelSource::Loaded { fingerprint, .. } => Ok(fingerprint.clone()),
        }
    }

    fn describe(&self) -> String {
        match self {
            ModelSource::Spec(s) => s.clone(),
            ModelSource::Loaded { model, .. } => format!("{model}"),
        }
    }
}

/// Which of a condition's models are kept under the store (`keep:` in
/// `condition(#{...})`). Kept models are not part of the fingerprint: they
/// change no number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Keep {
    /// None: the intermediate phase's checkpoints go once the condition is
    /// recorded; a condition sharing the phase trains it again.
    None,
    /// The intermediate-phase model, under `STORE/intermediate/`, reused by
    /// every condition that shares the phase (the default).
    #[default]
    Intermediate,
    /// The final model (after the target phase) in Hugging Face layout under
    /// `STORE/models/KEY/`, for `stilts predict` and `model(dir)`; the
    /// intermediate phase as with `None`.
    Final,
    /// Both.
    Both,
}

impl Keep {
    /// The names a script gives.
    pub const NAMES: &'static [&'static str] = &["none", "intermediate", "final", "both"];

    /// The value of a name in [`Keep::NAMES`].
    pub fn parse(s: &str) -> Option<Keep> {
        Some(match s {
            "none" => Keep::None,
            "intermediate" => Keep::Intermediate,
            "final" => Keep::Final,
            "both" => Keep::Both,
            _ => return None,
        })
    }

    /// Whether the intermediate-phase model is saved for reuse.
    pub fn intermediate(self) -> bool {
        matches!(self, Keep::Intermediate | Keep::Both)
    }

    /// Whether the final model is saved.
    pub fn final_model(self) -> bool {
        matches!(self, Keep::Final | Keep::Both)
    }
}

/// The folder of a condition's final model under the store (`keep: "final"`).
pub fn final_model_dir(store_root: &Path, key: &str) -> PathBuf {
    store_root.join("models").join(&key[..16.min(key.len())])
}

/// One cell of the grid.
#[derive(Clone)]
pub struct Condition {
    /// The label of its results (e.g. `squad`, `none`).
    pub name: String,
    /// The pretrained model the condition starts from.
    pub model: ModelSource,
    /// How the model is named in `stilts plan` and `stilts status` (the
    /// script's name for it); not part of the fingerprint.
    pub model_label: String,
    /// No task: the baseline; one: STILTs; several: a multi-task mix.
    pub intermediate: Vec<TaskData>,
    /// How a multi-task mix draws the task of each update (unused with fewer
    /// than two intermediate tasks).
    pub sampling: Sampling,
    /// Model selection in the intermediate phase (a split of one of its tasks).
    pub intermediate_dev: Option<TaskData>,
    /// Training options of the intermediate phase (their `seed` is replaced by
    /// the condition's).
    pub intermediate_options: RunOptions,
    /// The task trained in the target phase, under a fresh head; `None`:
    /// no target phase, the evaluations (retrieval only: no head to score
    /// with) read the encoder right after the intermediate phase (or the
    /// pretrained one).
    pub target: Option<TaskData>,
    /// Model selection in the target phase (e.g. MNLI dev, English XNLI dev).
    pub target_dev: Option<TaskData>,
    /// Training options of the target phase (`seed` replaced by the condition's);
    /// its `reset_optimizer: false` carries the intermediate phase's AdamW state over.
    pub target_options: RunOptions,
    /// Zero-shot evaluations by name (e.g. `dev`, `test`), one subset per language.
    pub evaluations: Vec<(String, TaskData)>,
    /// Evaluation batch size.
    pub eval_batch_size: usize,
    /// Seed of every phase (data order, dropout, new heads); part of the fingerprint.
    pub seed: u64,
    /// Which models are kept under the store; not part of the fingerprint.
    pub keep: Keep,
}

/// What a finished condition gives: per evaluation and language, the
/// metric and each example's right/wrong.
#[derive(Clone, Debug)]
pub struct ConditionResult {
    /// The stored record: configuration, metrics by `EVALUATION/LANGUAGE`,
    /// right/wrong bits and loss curves.
    pub record: RunRecord,
    /// True when it came from the store.
    pub reused: bool,
    /// True when its intermediate phase came from the store.
    pub intermediate_reused: bool,
    /// The final model's folder under the store, when it is there (kept
    /// by `keep: "final"` or `"both"`, now or by an earlier run).
    pub model_dir: Option<PathBuf>,
    /// True when the condition was in the store without the final model
    /// `keep` asks for, and was trained again to keep it.
    pub trained_again_to_keep: bool,
}

fn dev_fp(d: &Option<TaskData>) -> Option<&str> {
    d.as_ref().map(|t| t.fingerprint.as_str())
}

fn options_json(o: &RunOptions, seed: u64, tasks: &[&TaskData]) -> serde_json::Value {
    let mut o = o.clone();
    o.seed = seed;
    let span = tasks
        .iter()
        .flat_map(|t| t.parts.iter())
        .any(|d| matches!(d.head, stilts_model::HeadKind::SpanQa));
    o.fingerprint_json(span)
}

impl Condition {
    /// The configuration of the intermediate phase: what its saved model
    /// depends on.
    pub fn intermediate_config(&self) -> Result<serde_json::Value> {
        Ok(serde_json::json!({
            "model": self.model.fingerprint()?,
            "intermediate": self.intermediate.iter().map(|t| (&t.name, &t.fingerprint)).collect::<Vec<_>>(),
            "sampling": self.sampling,
            "dev": dev_fp(&self.intermediate_dev),
            "options": options_json(&self.intermediate_options, self.seed, &self.intermediate.iter().chain(self.intermediate_dev.iter()).collect::<Vec<_>>()),
            "keep_optimizer": !self.target_options.reset_optimizer,
        }))
    }

    /// The full configuration (what the fingerprint hashes).
    pub fn configuration(&self) -> Result<serde_json::Value> {
        let mut all: Vec<&Dataset> = vec![];
        for t in self
            .intermediate
            .iter()
            .chain(self.intermediate_dev.iter())
            .chain(self.target.iter())
            .chain(self.target_dev.iter())
            .chain(self.evaluations.iter().map(|(_, t)| t))
        {
            all.extend(t.parts.iter());
        }
        Ok(serde_json::json!({
            "intermediate_phase": if self.intermediate.is_empty() { serde_json::Value::Null } else { self.intermediate_config()? },
            "model": self.model.fingerprint()?,
            "target": self.target.as_ref().map(|t| (&t.name, &t.fingerprint)),
            "target_dev": dev_fp(&self.target_dev),
            "target_options": self.target.as_ref().map(|t| options_json(&self.target_options, self.seed, &[t])),
            "evaluations": self.evaluations.iter().map(|(n, t)| (n, &t.name, &t.fingerprint)).collect::<Vec<_>>(),
            "eval_batch_size": self.eval_batch_size,
            "seed": self.seed,
            "data_files": fingerprint::data_files(&all)?,
        }))
    }

    /// The condition's fingerprint: the SHA-256 of its configuration.
    pub fn fingerprint(&self) -> Result<String> {
        Ok(fingerprint::of_json(&self.configuration()?))
    }
}

/// Where a long call reports: a progress bar per phase.
pub type ProgressFactory<'a> = dyn FnMut(&str) -> Box<dyn Progress> + 'a;

fn phase_curve(report: &TrainReport) -> Vec<(u64, f64)> {
    report
        .losses
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, *l))
        .collect()
}

/// The code that made a record: version and, when built from a git
/// checkout, its commit.
pub fn code_version() -> String {
    match option_env!("STILTS_GIT_COMMIT") {
        Some(c) if !c.is_empty() => format!("stilts {} ({c})", env!("CARGO_PKG_VERSION")),
        _ => format!("stilts {}", env!("CARGO_PKG_VERSION")),
    }
}

/// What a phase did, as kept in a record and beside a saved model (read
/// back by [`crate::summary::phases`]): its task (`multitask` for a mix),
/// the training examples it used, the classes of its head, its time.
fn phase_summary(
    rep: &TrainReport,
    task: &str,
    examples: usize,
    classes: Option<usize>,
    seconds: f64,
) -> serde_json::Value {
    serde_json::json!({
        "task": task,
        "examples": examples,
        "classes": classes,
        "seconds": seconds,
        "updates": rep.steps,
        "dev": rep.scores,
        "best_dev": rep.best_score,
        "best_step": rep.best_step,
        "early_stopped": rep.early_stopped,
        "resumed_from": rep.resumed_from,
    })
}

/// The classes of a classification task's head; `None` for other heads.
fn classes_of(parts: &[Dataset]) -> Option<usize> {
    match &parts.first()?.head {
        stilts_model::HeadKind::Classification { labels } => Some(labels.len()),
        _ => None,
    }
}

/// The folder of an intermediate-phase model under the store.
pub fn intermediate_dir(store_root: &Path, key: &str) -> PathBuf {
    store_root
        .join("intermediate")
        .join(&key[..16.min(key.len())])
}

/// The intermediate phase: trained, or loaded from the store when the same
/// phase (model, task(s), options, seed) finished before. Returns the
/// encoder's model, the optimizer state when the target phase keeps it,
/// the phase's summary and whether it was reused.
#[allow(clippy::type_complexity)]
fn intermediate_phase(
    c: &Condition,
    base: &Model,
    store_root: Option<&Path>,
    curves: &mut BTreeMap<String, Vec<(u64, f64)>>,
    progress: &mut ProgressFactory<'_>,
    cancel: &AtomicBool,
) -> Result<(
    Model,
    Option<Arc<super::optim::OptimizerState>>,
    serde_json::Value,
    bool,
)> {
    let key = fingerprint::of_json(&c.intermediate_config()?);
    let dir = store_root.map(|r| intermediate_dir(r, &key));
    let keep_optimizer = !c.target_options.reset_optimizer;
    if let Some(d) = &dir {
        if d.join("phase.json").is_file() && !keep_optimizer {
            let m = Model::load(
                &d.display().to_string(),
                &LoadOptions {
                    device: base.encoder.device().clone(),
                    dtype: base.encoder.dtype(),
                    ..Default::default()
                },
            )?;
            let summary: serde_json::Value = stilts_model::error::read_json(&d.join("phase.json"))?;
            if let Some(cv) = summary.get("curves") {
                if let Ok(saved) =
                    serde_json::from_value::<BTreeMap<String, Vec<(u64, f64)>>>(cv.clone())
                {
                    curves.extend(saved);
                }
            }
            let mut m = m;
            m.encoder.compute_dtype = base.encoder.compute_dtype;
            let mut phase = summary["phase"].clone();
            if phase.is_object() {
                phase["reused"] = true.into();
            }
            return Ok((m, None, phase, true));
        }
    }
    let mut opts = c.intermediate_options.clone();
    opts.seed = c.seed;
    let dev = dev_part(&c.intermediate_dev)?;
    // Checkpoints beside the saved model, so a killed phase resumes.
    let ckpt = dir.as_ref().map(|d| d.with_extension("run"));
    let mut my_curves = BTreeMap::new();
    let started = Instant::now();
    let (model, rep) = if c.intermediate.len() == 1 {
        let t = &c.intermediate[0];
        let job = TrainJob {
            dev,
            head: HeadChoice::Fresh,
            checkpoint_dir: ckpt.clone(),
            ..TrainJob::new(base, &t.parts, &opts)
        };
        let (m, rep) = train(
            &job,
            &mut *progress(&format!("{} (intermediate)", t.name)),
            cancel,
        )
        .map_err(|e| e.during(format!("intermediate training on {}", t.name)))?;
        my_curves.insert(format!("intermediate.{}", t.name), phase_curve(&rep));
        (m, rep)
    } else {
        let mix: Vec<(String, Vec<Dataset>)> = c
            .intermediate
            .iter()
            .map(|t| (t.name.clone(), t.parts.as_ref().clone()))
            .collect();
        let job = MultitaskJob {
            model: base,
            tasks: &mix,
            sampling: &c.sampling,
            dev,
            options: &opts,
            checkpoint_dir: ckpt.clone(),
        };
        let (models, rep) = multitask(&job, &mut *progress("multi-task (intermediate)"), cancel)
            .map_err(|e| e.during("multi-task intermediate training"))?;
        my_curves.insert("intermediate.multitask".to_string(), phase_curve(&rep));
        for (t, (name, _)) in mix.iter().enumerate() {
            let curve = rep
                .task_losses
                .iter()
                .enumerate()
                .filter(|(_, (k, _))| *k == t)
                .map(|(i, (_, l))| (i as u64 + 1, *l))
                .collect();
            my_curves.insert(format!("intermediate.multitask.{name}"), curve);
        }
        let m = models
            .into_iter()
            .next()
            .ok_or_else(|| Error::msg("multi-task training returned no model"))?;
        (m, rep)
    };
    let summary = if c.intermediate.len() == 1 {
        let t = &c.intermediate[0];
        phase_summary(
            &rep,
            &t.name,
            crate::run::training_examples(&t.parts, &opts, false),
            classes_of(&t.parts),
            started.elapsed().as_secs_f64(),
        )
    } else {
        let examples = c
            .intermediate
            .iter()
            .map(|t| crate::run::training_examples(&t.parts, &opts, true))
            .sum();
        phase_summary(
            &rep,
            "multitask",
            examples,
            None,
            started.elapsed().as_secs_f64(),
        )
    };
    if let (Some(d), false, true) = (&dir, keep_optimizer, c.keep.intermediate()) {
        // Written to a temporary folder and renamed: a kill leaves either
        // no saved phase or a whole one (phase.json is written last).
        let tmp = d.with_extension("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).with_path(&tmp)?;
        }
        model.save(&tmp)?;
        stilts_model::util::write_atomic(
            &tmp.join("phase.json"),
            serde_json::to_string_pretty(&serde_json::json!({
                "phase": summary,
                "curves": my_curves,
                "configuration": c.intermediate_config()?,
                "code_version": code_version(),
            }))
            .unwrap_or_default()
            .as_bytes(),
        )?;
        if d.exists() {
            std::fs::remove_dir_all(d).with_path(d)?;
        }
        if let Some(p) = d.parent() {
            std::fs::create_dir_all(p).with_path(p)?;
        }
        std::fs::rename(&tmp, d).with_path(d)?;
        // The saved model is what later conditions load: its checkpoints
        // (weights, optimizer, best) are not needed any more.
        if let Some(c) = &ckpt {
            let _ = std::fs::remove_dir_all(c);
        }
    }
    curves.extend(my_curves);
    Ok((model, rep.optimizer.clone(), summary, false))
}

/// Runs one condition, or returns its record from `store` when the same
/// fingerprint finished before (unless `force`). The record is appended to
/// the store only when the whole condition finished; intermediate-phase
/// models are kept under the store's folder.
pub fn run_condition(
    c: &Condition,
    store: Option<&Store>,
    force: bool,
    progress: &mut ProgressFactory<'_>,
    cancel: &AtomicBool,
) -> Result<ConditionResult> {
    let config = c.configuration()?;
    let key = fingerprint::of_json(&config);
    // A finished condition is reused, unless `keep` asks for a final model
    // its earlier run did not keep: then it is trained again (the same
    // numbers) to keep it.
    let reuse = |r: RunRecord| {
        let has_model = store
            .map(|s| {
                final_model_dir(&s.root(), &key)
                    .join("config.json")
                    .is_file()
            })
            .unwrap_or(false);
        (!c.keep.final_model() || has_model).then(|| ConditionResult {
            record: r,
            reused: true,
            intermediate_reused: true,
            model_dir: store
                .map(|s| final_model_dir(&s.root(), &key))
                .filter(|_| has_model),
            trained_again_to_keep: false,
        })
    };
    let mut missing_model = false;
    if let (Some(s), false) = (store, force) {
        if let Some(r) = s.find(&key)? {
            match reuse(r) {
                Some(done) => return Ok(done),
                None => missing_model = true,
            }
        }
    }

    // One process runs a condition at a time: a second one waits for it,
    // then finds it done.
    let _claim = match store {
        Some(s) => {
            let mut waiting = |pid: &str| {
                progress("waiting").message(&format!(
                    "condition {} is being run by process {pid}; waiting for it",
                    &key[..12]
                ))
            };
            let claim = s.claim(&key, &mut waiting)?;
            if !force {
                if let Some(r) = s.find(&key)? {
                    if let Some(done) = reuse(r) {
                        return Ok(done);
                    }
                }
            }
            Some(claim)
        }
        None => None,
    };
    if let Some(s) = store {
        s.mark(
            &CellMark::here(&key, &c.name, MarkState::Running, None).of(&c.model_label, c.seed),
        )?;
    }
    let out = run_claimed(c, store, &config, &key, progress, cancel).map(|mut r| {
        r.trained_again_to_keep = missing_model;
        r
    });
    if let Some(s) = store {
        match &out {
            Ok(_) => s.unmark(&key),
            Err(e) => {
                let state = if e.is_cancelled() {
                    MarkState::Interrupted
                } else {
                    MarkState::Failed
                };
                let _ = s.mark(
                    &CellMark::here(&key, &c.name, state, Some(e.to_string()))
                        .of(&c.model_label, c.seed),
                );
            }
        }
    }
    out
}

/// A condition whose claim this process holds: trains, evaluates, keeps the record.
fn run_claimed(
    c: &Condition,
    store: Option<&Store>,
    config: &serde_json::Value,
    key: &str,
    progress: &mut ProgressFactory<'_>,
    cancel: &AtomicBool,
) -> Result<ConditionResult> {
    let key = key.to_string();
    let started = Instant::now();
    let target_head = match &c.target {
        Some(t) => t
            .parts
            .first()
            .ok_or_else(|| Error::msg(format!("the target task {} has no data", t.name)))?
            .head
            .clone(),
        None => {
            // Only retrieval reads an encoder without a trained head.
            if let Some((name, _)) = c.evaluations.iter().find(|(_, t)| {
                t.parts
                    .iter()
                    .any(|d| d.metric != stilts_tasks::Metric::Retrieval)
            }) {
                return Err(Error::msg(format!(
                    "evaluation `{name}` needs a head trained on a target task, and this condition has none (`target: ()`); give a target task, or evaluate only retrieval tasks (tatoeba) here"
                )));
            }
            // A stand-in head, never trained or read.
            stilts_model::HeadKind::Classification {
                labels: stilts_tasks::readers::nli_labels(),
            }
        }
    };
    let base = match &c.model {
        ModelSource::Spec(spec) => Model::load(
            spec,
            &LoadOptions {
                head: Some(target_head.clone()),
                seed: c.seed,
                ..Default::default()
            },
        )?,
        ModelSource::Loaded { model, .. } => model.as_ref().clone(),
    };
    let mut curves = BTreeMap::new();
    let mut phases = serde_json::Map::new();
    let store_root = store.and_then(|s| s.path().parent().map(Path::to_path_buf));
    let inter_key = (!c.intermediate.is_empty())
        .then(|| c.intermediate_config().map(|v| fingerprint::of_json(&v)))
        .transpose()?;
    if let (Some(r), Some(ik)) = (&store_root, &inter_key) {
        // What `stilts gc` keeps while this condition is unfinished: the
        // intermediate phase it needs.
        let d = r.join("conditions").join(&key[..16]);
        std::fs::create_dir_all(&d).with_path(&d)?;
        stilts_model::util::write_atomic(
            &d.join("intermediate"),
            ik[..16.min(ik.len())].as_bytes(),
        )?;
    }
    let (encoder_source, carried, inter_reused) = if c.intermediate.is_empty() {
        (base, None, false)
    } else {
        let (m, opt, summary, reused) = intermediate_phase(
            c,
            &base,
            store_root.as_deref(),
            &mut curves,
            progress,
            cancel,
        )?;
        phases.insert("intermediate".into(), summary);
        (m, opt, reused)
    };
    let mut topts = c.target_options.clone();
    topts.seed = c.seed;
    let target = match &c.target {
        // No target phase: the evaluations read this encoder as it is.
        None => encoder_source,
        Some(tt) => {
            // The target task under a fresh head; the encoder's AdamW moments
            // only when asked (`reset_optimizer: false`).
            let fresh = transfer(&encoder_source, &target_head, c.seed, true)?;
            let target_ckpt = store_root
                .as_ref()
                .map(|r| r.join("conditions").join(&key[..16]).join("target"));
            let job = TrainJob {
                dev: dev_part(&c.target_dev)?,
                head: HeadChoice::Fresh,
                optimizer: if topts.reset_optimizer { None } else { carried },
                checkpoint_dir: target_ckpt.clone(),
                ..TrainJob::new(&fresh, &tt.parts, &topts)
            };
            let phase_started = Instant::now();
            let (target, rep) = train(
                &job,
                &mut *progress(&format!("{} (target)", tt.name)),
                cancel,
            )
            .map_err(|e| e.during(format!("target training on {}", tt.name)))?;
            curves.insert(format!("target.{}", tt.name), phase_curve(&rep));
            phases.insert(
                "target".into(),
                phase_summary(
                    &rep,
                    &tt.name,
                    crate::run::training_examples(&tt.parts, &topts, false),
                    classes_of(&tt.parts),
                    phase_started.elapsed().as_secs_f64(),
                ),
            );
            target
        }
    };
    // Zero-shot evaluation per language, on every evaluation set.
    let mut metrics = BTreeMap::new();
    let mut correct = BTreeMap::new();
    let mut predictions = BTreeMap::new();
    let mut eval_opts = topts.clone();
    eval_opts.limit = None;
    eval_opts.max_tokens = None;
    eval_opts.batch_size = c.eval_batch_size.max(1);
    for (name, t) in &c.evaluations {
        for ds in t.parts.iter() {
            let e = evaluate(
                &target,
                ds,
                &eval_opts,
                &mut *progress(&format!("eval {name} {}", ds.name())),
                cancel,
            )?;
            let lang = ds.subset.clone().unwrap_or_else(|| ds.task.clone());
            metrics.insert(format!("{name}/{lang}"), e.score);
            metrics.insert(format!("{name}/{lang}#n"), e.n as f64);
            if stilts_tasks::Metric::names_accuracy(&e.metric) {
                correct.insert(format!("{name}/{lang}"), pack_bits(&e.correct()));
            }
            if !e.predicted.is_empty() {
                predictions.insert(format!("{name}/{lang}"), e.predicted.clone());
            }
            metrics.insert(format!("{name}#metric:{}", e.metric), 0.0);
        }
    }
    let record = RunRecord {
        key: key.clone(),
        config: serde_json::json!({
            "name": c.name,
            "model": c.model.describe(),
            "model_label": c.model_label,
            "configuration": config.clone(),
            "phases": phases,
        }),
        code_version: code_version(),
        metrics,
        correct,
        curves,
        predictions,
        seconds: started.elapsed().as_secs_f64(),
        device: format!("{:?}", target.encoder.device().location()),
        finished_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        value: None,
    };
    // The final model, before the record: a record of a condition that
    // keeps its model means the model is there.
    let model_dir = match (&store_root, c.keep.final_model()) {
        (Some(r), true) => {
            let d = final_model_dir(r, &key);
            target.save(&d)?;
            Some(d)
        }
        _ => None,
    };
    if let Some(s) = store {
        s.append(&record)?;
        // The record is the result: the target phase's checkpoints go, and
        // the intermediate phase's when its model is not kept.
        if let Some(r) = &store_root {
            let _ = std::fs::remove_dir_all(r.join("conditions").join(&key[..16]));
            if let (Some(ik), false) = (&inter_key, c.keep.intermediate()) {
                let _ = std::fs::remove_dir_all(intermediate_dir(r, ik).with_extension("run"));
            }
        }
    }
    Ok(ConditionResult {
        record,
        reused: false,
        intermediate_reused: inter_reused,
        model_dir,
        trained_again_to_keep: false,
    })
}

/// One evaluation of a record: per language (in the order stored), the
/// metric, the number of examples and the right/wrong bits.
#[derive(Clone, Debug, Default)]
pub struct RecordEvaluation {
    /// The metric's name (`accuracy`, `tagging accuracy`, `f1`); empty when the
    /// record names none.
    pub metric: String,
    /// (language, score in percent, examples, right/wrong bits) per language;
    /// the bits are `None` for a metric other than accuracy.
    pub languages: Vec<(String, f64, usize, Option<Vec<bool>>)>,
}

/// The evaluations a condition's record holds, by name.
pub fn evaluations(record: &RunRecord) -> BTreeMap<String, RecordEvaluation> {
    let mut out: BTreeMap<String, RecordEvaluation> = BTreeMap::new();
    for (k, v) in &record.metrics {
        if let Some((name, metric)) = k.split_once("#metric:") {
            out.entry(name.to_string()).or_default().metric = metric.to_string();
            continue;
        }
        if k.contains('#') {
            continue;
        }
        let Some((name, lang)) = k.split_once('/') else {
            continue;
        };
        let n = record
            .metrics
            .get(&format!("{k}#n"))
            .copied()
            .unwrap_or(0.0) as usize;
        let bits = record
            .correct
            .get(k)
            .and_then(|s| crate::store::unpack_bits(s));
        out.entry(name.to_string())
            .or_default()
            .languages
            .push((lang.to_string(), *v, n, bits));
    }
    out
}
