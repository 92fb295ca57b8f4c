//! One condition of the research question, end to end and memoised: a
//! pretrained model, an intermediate phase (none, one task, or a multi-task
//! mix), target training with a fresh head, zero-shot evaluation per
//! language; and the statistics that compare conditions across seeds.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use super::multitask::Sampling;
use super::presets::RunOptions;
use super::run::{evaluate, multitask, train, transfer};
use super::stats::{bootstrap_accuracy, mean_std, paired_delta, Estimate};
use super::train::Progress;
use crate::error::{Error, Result};
use crate::model::{load, LoadOptions, Model};
use crate::store::{config_key, pack_bits, unpack_bits, RunRecord, Store};
use crate::tasks::{self, Dataset, ReadOptions};

/// A task split on disk: `task` read from `root`, `split`, and the subsets
/// (languages, rounds) to take; empty means the task's default (all).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskRef {
    pub task: String,
    pub root: PathBuf,
    pub split: String,
    #[serde(default)]
    pub subsets: Vec<String>,
}

impl TaskRef {
    /// The datasets of this reference, one per subset.
    pub fn load(&self) -> Result<Vec<Dataset>> {
        let read = ReadOptions::default();
        if self.subsets.is_empty() {
            return Ok(vec![tasks::load(
                &self.task,
                &self.root,
                &self.split,
                None,
                &read,
            )?]);
        }
        self.subsets
            .iter()
            .map(|s| tasks::load(&self.task, &self.root, &self.split, Some(s), &read))
            .collect()
    }
}

/// One cell of the grid: model × intermediate task(s) × seed.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Condition {
    /// A size name, hub id in the HF cache, or directory.
    pub model: String,
    /// No task: the baseline; one: STILTs; several: a multi-task mix.
    pub intermediate: Vec<TaskRef>,
    pub sampling: Sampling,
    pub intermediate_options: RunOptions,
    pub target: TaskRef,
    /// Model selection for the target phase (e.g. MNLI dev matched).
    pub target_dev: Option<TaskRef>,
    pub target_options: RunOptions,
    /// Zero-shot evaluation, one subset per language (e.g. XNLI test).
    pub evaluation: TaskRef,
    pub seed: u64,
}

/// A SHA-256 that identifies a file cheaply: its size and its first and
/// last MiB (weights are gigabytes; this changes when any of them changes
/// in practice, and reading it costs nothing).
pub fn file_fingerprint(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = meta.len();
    let mut buf = Vec::new();
    buf.extend_from_slice(&len.to_le_bytes());
    let mut head = vec![0u8; (1 << 20).min(len as usize)];
    f.read_exact(&mut head).map_err(|e| Error::io(path, e))?;
    buf.extend_from_slice(&head);
    if len > 2 << 20 {
        use std::io::Seek;
        f.seek(std::io::SeekFrom::End(-(1 << 20)))
            .map_err(|e| Error::io(path, e))?;
        let mut tail = vec![0u8; 1 << 20];
        f.read_exact(&mut tail).map_err(|e| Error::io(path, e))?;
        buf.extend_from_slice(&tail);
    }
    Ok(crate::util::sha256_hex(&buf))
}

fn files_fingerprint(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for name in [
        "config.json",
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "tokenizer.json",
    ] {
        let p = dir.join(name);
        if p.exists() {
            out.insert(name.to_string(), file_fingerprint(&p)?);
        }
    }
    Ok(out)
}

/// The full configuration of a condition, with the fingerprints of its
/// model and data files: what the memoisation key is computed from.
pub fn configuration(c: &Condition) -> Result<serde_json::Value> {
    let model_dir = load::resolve(&c.model)?;
    let mut data = BTreeMap::new();
    let mut refs: Vec<&TaskRef> = c.intermediate.iter().collect();
    refs.push(&c.target);
    refs.extend(c.target_dev.iter());
    refs.push(&c.evaluation);
    for r in refs {
        for ds in r.load()? {
            for f in &ds.files {
                data.insert(f.display().to_string(), file_fingerprint(f)?);
            }
        }
    }
    Ok(serde_json::json!({
        "condition": c,
        "model_files": files_fingerprint(&model_dir)?,
        "data_files": data,
    }))
}

/// Where a long call reports: a progress bar per phase.
pub type ProgressFactory<'a> = dyn FnMut(&str) -> Box<dyn Progress> + 'a;

fn phase_curve(report: &super::train::TrainReport) -> Vec<(u64, f64)> {
    report
        .losses
        .iter()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, *l))
        .collect()
}

/// Runs one condition, or returns its record from `store` when the exact
/// configuration already finished (unless `force`). The record is appended
/// to the store only when the whole condition finished.
pub fn run_condition(
    c: &Condition,
    store: Option<&Store>,
    force: bool,
    progress: &mut ProgressFactory<'_>,
    cancel: &AtomicBool,
) -> Result<RunRecord> {
    let config = configuration(c)?;
    let key = config_key(&config);
    if let (Some(s), false) = (store, force) {
        if let Some(r) = s.find(&key)? {
            return Ok(r);
        }
    }
    let started = Instant::now();
    let target_data = c.target.load()?;
    let target_head = target_data
        .first()
        .ok_or_else(|| Error::msg("the target task has no data"))?
        .head
        .clone();
    let base = Model::load(
        &c.model,
        &LoadOptions {
            head: Some(target_head.clone()),
            seed: c.seed,
            ..Default::default()
        },
    )?;
    let mut curves = BTreeMap::new();
    // Phase 2: intermediate training (or none).
    let mut optimizer = None;
    let encoder_source = match c.intermediate.len() {
        0 => base,
        1 => {
            let r = &c.intermediate[0];
            let parts = r.load()?;
            let (m, rep) = train(
                &base,
                &parts,
                None,
                &c.intermediate_options,
                true,
                None,
                None,
                &mut *progress(&format!("{} (intermediate)", r.task)),
                cancel,
            )?;
            optimizer = rep.optimizer.clone();
            curves.insert(format!("intermediate.{}", r.task), phase_curve(&rep));
            if rep.cancelled {
                return Err(Error::msg(
                    "interrupted during intermediate training; nothing was recorded",
                ));
            }
            m
        }
        _ => {
            let mix: Vec<(String, Vec<Dataset>)> = c
                .intermediate
                .iter()
                .map(|r| Ok((r.task.clone(), r.load()?)))
                .collect::<Result<_>>()?;
            let (models, rep) = multitask(
                &base,
                &mix,
                &c.sampling,
                &c.intermediate_options,
                None,
                &mut *progress("multi-task (intermediate)"),
                cancel,
            )?;
            optimizer = rep.optimizer.clone();
            curves.insert("intermediate.multitask".to_string(), phase_curve(&rep));
            // One curve per task of the mix: (batch number, loss).
            for (t, (name, _)) in mix.iter().enumerate() {
                let curve = rep
                    .task_losses
                    .iter()
                    .enumerate()
                    .filter(|(_, (k, _))| *k == t)
                    .map(|(i, (_, l))| (i as u64 + 1, *l))
                    .collect();
                curves.insert(format!("intermediate.multitask.{name}"), curve);
            }
            if rep.cancelled {
                return Err(Error::msg(
                    "interrupted during multi-task training; nothing was recorded",
                ));
            }
            models
                .into_iter()
                .next()
                .ok_or_else(|| Error::msg("multi-task training returned no model"))?
        }
    };
    // Phase 3: the target task under a fresh head.
    let fresh = transfer(&encoder_source, &target_head, c.seed, true)?;
    let dev = match &c.target_dev {
        Some(r) => r.load()?.into_iter().next(),
        None => None,
    };
    // STILTs keeps the encoder; its AdamW moments only when asked.
    let carry = if c.target_options.reset_optimizer {
        None
    } else {
        optimizer
    };
    let (target, rep) = train(
        &fresh,
        &target_data,
        dev.as_ref(),
        &c.target_options,
        false,
        None,
        carry,
        &mut *progress(&format!("{} (target)", c.target.task)),
        cancel,
    )?;
    curves.insert(format!("target.{}", c.target.task), phase_curve(&rep));
    if rep.cancelled {
        return Err(Error::msg(
            "interrupted during target training; nothing was recorded",
        ));
    }
    // Phase 4: zero-shot evaluation per language.
    let mut metrics = BTreeMap::new();
    let mut correct = BTreeMap::new();
    let evals = c.evaluation.load()?;
    for ds in &evals {
        let e = evaluate(
            &target,
            ds,
            &c.target_options,
            &mut *progress(&format!("eval {}", ds.name())),
            cancel,
        )?;
        let lang = ds.subset.clone().unwrap_or_else(|| ds.task.clone());
        metrics.insert(lang.clone(), e.score);
        correct.insert(lang, pack_bits(&e.correct()));
    }
    if !metrics.is_empty() {
        metrics.insert(
            "avg".into(),
            metrics.values().sum::<f64>() / metrics.len() as f64,
        );
    }
    let record = RunRecord {
        key,
        config,
        code_version: format!("stilts {}", env!("CARGO_PKG_VERSION")),
        metrics,
        correct,
        curves,
        seconds: started.elapsed().as_secs_f64(),
        device: format!("{:?}", target.encoder.device().location()),
        finished_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        value: None,
    };
    if let Some(s) = store {
        s.append(&record)?;
    }
    Ok(record)
}

/// Accuracy per language across the seeds of one condition.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    /// Mean over seeds, with the 95% bootstrap CI over examples.
    pub per_language: BTreeMap<String, Estimate>,
    /// Standard deviation across seeds.
    pub seed_std: BTreeMap<String, f64>,
    pub seeds: usize,
}

/// Per-seed correctness for `lang`; `avg` concatenates every language (the
/// average over languages when they are the same size, as XNLI's are).
fn bits_of(records: &[RunRecord], lang: &str) -> Result<Vec<Vec<bool>>> {
    records
        .iter()
        .map(|r| {
            let missing = || {
                Error::msg(format!(
                    "run {} has no per-example results for {lang}",
                    &r.key[..12]
                ))
            };
            if lang == "avg" {
                let mut all = vec![];
                for s in r.correct.values() {
                    all.extend(unpack_bits(s).ok_or_else(missing)?);
                }
                Ok(all)
            } else {
                r.correct
                    .get(lang)
                    .and_then(|s| unpack_bits(s))
                    .ok_or_else(missing)
            }
        })
        .collect()
}

fn languages(r: &RunRecord) -> Vec<String> {
    r.correct
        .keys()
        .cloned()
        .chain(std::iter::once("avg".to_string()))
        .collect()
}

/// Summarises the seeds of one condition (their records).
pub fn summarise(records: &[RunRecord]) -> Result<Summary> {
    let first = records
        .first()
        .ok_or_else(|| Error::msg("no runs to summarise"))?;
    let mut per_language = BTreeMap::new();
    let mut seed_std = BTreeMap::new();
    for lang in languages(first) {
        per_language.insert(
            lang.clone(),
            bootstrap_accuracy(&bits_of(records, &lang)?, 1000, 0),
        );
        let scores: Vec<f64> = records
            .iter()
            .filter_map(|r| r.metrics.get(&lang).copied())
            .collect();
        seed_std.insert(lang.clone(), mean_std(&scores).1);
    }
    Ok(Summary {
        per_language,
        seed_std,
        seeds: records.len(),
    })
}

/// `treatment - baseline` per language, with the paired-bootstrap 95% CI
/// (the same examples, all seeds of each condition).
pub fn compare(
    baseline: &[RunRecord],
    treatment: &[RunRecord],
) -> Result<BTreeMap<String, Estimate>> {
    let first = baseline
        .first()
        .ok_or_else(|| Error::msg("no baseline runs"))?;
    let mut out = BTreeMap::new();
    for lang in languages(first) {
        let d = paired_delta(
            &bits_of(baseline, &lang)?,
            &bits_of(treatment, &lang)?,
            1000,
            0,
        );
        out.insert(lang, d);
    }
    Ok(out)
}
