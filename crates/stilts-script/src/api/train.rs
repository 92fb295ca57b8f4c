//! Training (presets, train, the STILTs step, multi-task) and evaluation.

use super::doc::{entry, ApiDoc};
use std::rc::Rc;
use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, Map};

use super::{protocol_err, rerr, RResult};
use crate::context::{Ctx, CANCEL};
use crate::options::{from_map, overlay, preset_map, EvalArgs};
use crate::protocol_bridge;
use crate::values::{LangScore, ModelValue, Scores, TaskValue};
use stilts_protocol::multitask::Sampling;
use stilts_protocol::presets::QA_MAX_LENGTH;
use stilts_protocol::presets::{Resolved, RunOptions, SELECTION_KEYS};
use stilts_protocol::run::{HeadChoice, MultitaskJob, TrainJob};

/// A training call's map: the protocol's options (resolved over the preset
/// they name by `RunOptions::resolve`, which validates them) and the values
/// only a script holds (the dev set, `new_head`).
pub struct Call {
    /// The options resolved over the map's preset, with `max_length` (and the
    /// span QA window) cut to what the model's positions allow.
    pub options: Resolved,
    /// The map's `dev` task; `None`: no model selection.
    pub dev: Option<TaskValue>,
    /// The map's `new_head`: true, a fresh head even when the model's fits
    /// the task; false, the model's own head, an error where it does not
    /// fit; left out (`None`), the model's head where it fits, else a fresh one.
    pub new_head: Option<bool>,
}

fn take_task(what: &str, map: &mut Map, key: &str) -> RResult<Option<TaskValue>> {
    match map.remove(key) {
        None => Ok(None),
        Some(v) if v.is_unit() => Ok(None),
        Some(v) => v.clone().try_cast::<TaskValue>().map(Some).ok_or_else(|| {
            rerr(format!(
                "{what}: `{key}` takes a task (e.g. task(\"mnli\", #{{data: .., split: \"dev\"}})), not {}",
                crate::values::type_name(&v)
            ))
        }),
    }
}

/// Converts a training map for a model of config `cfg` (the preset is
/// size-aware, inputs no longer than its positions allow); a key the call
/// cannot honour is an error.
pub fn call_options(what: &str, cfg: &stilts_model::XlmrConfig, map: &Map) -> RResult<Call> {
    let mut rest = map.clone();
    let dev = take_task(what, &mut rest, "dev")?;
    let dev_pool = match rest.remove("dev_pool") {
        None => false,
        Some(v) => v
            .as_bool()
            .map_err(|t| rerr(format!("{what}: `dev_pool` takes true or false, not {t}")))?,
    };
    if dev_pool && dev.is_none() {
        return Err(rerr(format!(
            "{what}: `dev_pool` pools the parts of a dev set, but there is no `dev`; give one or leave `dev_pool` out"
        )));
    }
    // The protocol's one dev-set rule: one part, or several pooled on
    // purpose. What follows sees a task of one part.
    let dev = dev
        .map(|d| {
            stilts_protocol::run::dev_set(&d.name, &d.parts, dev_pool)
                .map(|one| TaskValue::new(d.name.clone(), d.split.clone(), vec![one]))
                .map_err(|e| rerr(format!("{what}: {e}")))
        })
        .transpose()?;
    let new_head = match rest.remove("new_head") {
        None => None,
        Some(v) => Some(
            v.as_bool()
                .map_err(|t| rerr(format!("{what}: `new_head` takes true or false, not {t}")))?,
        ),
    };
    for (k, v) in &rest {
        if let Ok(x) = v.as_float() {
            if !x.is_finite() {
                return Err(rerr(format!(
                    "{what}: `{k}` is {x}, out of the range of numbers (give a finite value)"
                )));
            }
        }
    }
    let json =
        serde_json::to_value(Dynamic::from_map(rest)).map_err(|e| rerr(format!("{what}: {e}")))?;
    let mut options = RunOptions::resolve(&json, Some(cfg.hidden_size))
        .map_err(|e| rerr(format!("{what}: {e}")))?;
    options.require_dev(dev.is_some(), what).map_err(rerr)?;
    let most = cfg.max_sequence_length();
    options.options.max_length = options.options.max_length.min(most);
    // Span QA windows: run_qa.py's 384 unless max_length was set, and
    // never longer than the model's positions.
    let (qa, _) = options.options.qa_window();
    if qa > most {
        options.options.qa_max_length = Some(most);
        if !options.is_explicit("doc_stride") {
            // run_qa.py's share: a third of the window.
            options.options.doc_stride = options.options.doc_stride.min((most / 3).max(1));
        }
    }
    Ok(Call {
        options,
        dev,
        new_head,
    })
}

/// The dev set of a call as one dataset: [`call_options`] has applied the
/// protocol's rule (`stilts_protocol::run::dev_set`), so it has one part.
fn dev_dataset(what: &str, dev: &Option<TaskValue>) -> RResult<Option<stilts_tasks::Dataset>> {
    let Some(d) = dev else { return Ok(None) };
    stilts_protocol::run::dev_set(&d.name, &d.parts, false)
        .map(Some)
        .map_err(|e| rerr(format!("{what}: {e}")))
}

fn training_summary(report: &stilts_protocol::train::TrainReport, task: &str) -> serde_json::Value {
    serde_json::json!({
        "task": task,
        "updates": report.steps,
        "losses": report.losses,
        "dev": report.scores,
        "best_dev": report.best_score,
        "best_step": report.best_step,
        "early_stopped": report.early_stopped,
        "resumed_from": report.resumed_from,
    })
}

fn derived_fingerprint(parts: serde_json::Value) -> String {
    stilts_protocol::fingerprint::of_json(&parts)
}

/// The options as a fingerprint sees them (for the data of `parts`).
fn options_key(o: &RunOptions, parts: &[&stilts_tasks::Dataset]) -> serde_json::Value {
    o.fingerprint_json(
        parts
            .iter()
            .any(|d| matches!(d.head, stilts_model::HeadKind::SpanQa)),
    )
}

/// Where a training call of a script checkpoints: under the store, by the
/// fingerprint of what it trains (the model, data and options), so the
/// next run of the same script finds and resumes it.
fn checkpoint_dir(ctx: &Ctx, fingerprint: &str) -> std::path::PathBuf {
    ctx.store_dir
        .borrow()
        .join("checkpoints")
        .join(&fingerprint[..16.min(fingerprint.len())])
}

/// One process trains a job (and writes its checkpoints) at a time: a
/// second one running the same script waits, then resumes from the first
/// one's final checkpoint instead of training again.
fn claim(ctx: &Ctx, what: &str, fingerprint: &str) -> RResult<stilts_protocol::store::Claim> {
    super::runs::results_store(ctx)
        .claim(fingerprint, &mut |pid| {
            ctx.note(&format!(
                "{what}: process {pid} is training this; waiting for it"
            ))
        })
        .map_err(rerr)
}

/// Outside a plain `stilts run` (planning, one cell, collecting) a
/// training call outside `condition()` may only reuse a finished run:
/// training there would run in every job.
fn only_finished(ctx: &Ctx, what: &str, dir: &std::path::Path) -> RResult<()> {
    let mode = &ctx.settings.cell_mode;
    if mode.trains() || stilts_protocol::checkpoint::finished(dir) {
        return Ok(());
    }
    Err(rerr(format!(
        "{what}: `{}` trains only the grid's cells (condition() calls), and this training call outside them has not run yet: make it part of a condition(), or run the script once with `stilts run` so that it is finished in {}",
        mode.words(),
        dir.display()
    )))
}

/// What a training call returns under `stilts check`: the model as it
/// was (nothing trains), named and fingerprinted as the trained one would
/// be, with an empty training summary.
fn stand_in(m: &ModelValue, name: String, fingerprint: String, task: &str) -> ModelValue {
    let summary = training_summary(&stilts_protocol::train::TrainReport::default(), task);
    ModelValue {
        model: m.model.clone(),
        name,
        pretrained: false,
        optimizer: None,
        fingerprint,
        training: Some(Arc::new(summary)),
    }
}

/// Says how a training call began: fresh, resumed, or already finished.
fn resumed_note(
    ctx: &Ctx,
    what: &str,
    report: &stilts_protocol::train::TrainReport,
    dir: &std::path::Path,
) {
    if let Some(step) = report.resumed_from {
        if step >= report.steps {
            ctx.record(&format!(
                "{what}: finished before; its final checkpoint in {} reused",
                dir.display()
            ));
        } else {
            ctx.record(&format!(
                "{what}: resumed from the checkpoint at update {step} in {}",
                dir.display()
            ));
        }
    }
}

/// The split the task's parts were read from (the catalog's name for
/// it), for messages.
fn loaded_split(t: &TaskValue) -> String {
    let mut splits: Vec<&str> = t.parts.iter().map(|d| d.split.as_str()).collect();
    splits.dedup();
    match splits.as_slice() {
        [one] => one.to_string(),
        _ => t.split.clone(),
    }
}

/// A training call on a split named dev or test (`train(m, xnli_dev)`):
/// numbers measured on it afterwards are no longer held-out.
pub fn evaluation_split_warning(what: &str, t: &TaskValue) -> Option<String> {
    let split = loaded_split(t);
    let lower = split.to_lowercase();
    ["dev", "test", "valid"]
        .iter()
        .any(|w| lower.starts_with(w))
        .then(|| {
            format!(
                "{what}: training on `{split}`, an evaluation split: scores measured on it afterwards are not held-out; train on the task's train split (split: \"train\") unless this is what you mean"
            )
        })
}

/// `per_epoch`: updates in one pass over the data, where known.
fn lr_summary(run: &RunOptions, per_epoch: Option<u64>) -> String {
    let accum = if run.grad_accum > 1 {
        format!(" x {}", run.grad_accum)
    } else {
        String::new()
    };
    // `max_steps` overrides `epochs` (as in transformers): say so, and how
    // many passes over the data it made.
    let length = match (run.max_steps, per_epoch) {
        (Some(m), Some(p)) if p > 0 => format!(
            "max_steps {m} (overrides epochs; {:.1} passes over the data, cycled)",
            m as f64 / p as f64
        ),
        (Some(m), _) => format!("max_steps {m} (overrides epochs)"),
        (None, _) => format!(
            "{} epoch{}",
            run.epochs,
            if run.epochs == 1 { "" } else { "s" }
        ),
    };
    format!("batch {}{accum}, lr {:e}, {length}", run.batch_size, run.lr)
}

/// `train(model, task, opts)`.
pub fn train(ctx: &Ctx, m: &ModelValue, t: &TaskValue, opts: &Map) -> RResult<ModelValue> {
    let what = format!("train on {} {}", t.name, loaded_split(t));
    let call = call_options(&format!("{what}: options"), m.model.config(), opts)?;
    let dev = dev_dataset(&what, &call.dev)?;
    let run = &call.options.options;
    for w in stilts_protocol::run::training_warnings(&t.parts, run) {
        ctx.warn(&w);
    }
    if let Some(w) = evaluation_split_warning(&what, t) {
        ctx.warn(&w);
    }
    let started = std::time::Instant::now();
    let mut bar = ctx.progress(&what);
    // `reset_optimizer: false`: continue from the AdamW state of the phase
    // that produced this model (STILTs without resetting the optimizer).
    let carry = if run.reset_optimizer {
        None
    } else {
        m.optimizer.clone()
    };
    let head = match (call.new_head, m.pretrained) {
        (Some(false), true) => {
            return Err(rerr(format!(
                "{what}: `new_head: false` keeps the model's head, but `{}` was loaded as a pretrained checkpoint without one (its config.json names no task head): leave `new_head` out for a fresh head, or load a checkpoint that holds its head (a *ForSequenceClassification saved by transformers, or model(dir, #{{head: \"classification\"}}) where the weights are in the file)",
                m.name
            )))
        }
        (Some(false), false) => HeadChoice::Kept,
        (Some(true), _) | (None, true) => HeadChoice::Fresh,
        (None, false) => HeadChoice::Fitting,
    };
    let fresh = head == HeadChoice::Fresh;
    let fingerprint = derived_fingerprint(serde_json::json!({
        "parent": m.fingerprint,
        "task": t.fingerprint().map_err(rerr)?,
        "dev": call.dev.as_ref().map(|d| d.fingerprint()).transpose().map_err(rerr)?,
        "options": options_key(run, &t.parts.iter().collect::<Vec<_>>()),
        "fresh": fresh,
        "optimizer_from": if run.reset_optimizer { None } else { Some(&m.fingerprint) },
    }));
    if ctx.settings.cell_mode == crate::context::CellMode::Check {
        return Ok(stand_in(
            m,
            format!("{}+{}", m.name, t.name),
            fingerprint,
            &t.name,
        ));
    }
    let dir = checkpoint_dir(ctx, &fingerprint);
    only_finished(ctx, &what, &dir)?;
    let _claim = claim(ctx, &what, &fingerprint)?;
    let job = TrainJob {
        dev: dev.as_ref(),
        head,
        optimizer: carry,
        checkpoint_dir: Some(dir.clone()),
        ..TrainJob::new(&m.model, &t.parts, run)
    };
    let (model, report) =
        protocol_bridge::train(&job, &mut *bar, &CANCEL).map_err(|e| protocol_err(&what, e))?;
    resumed_note(ctx, &what, &report, &dir);
    let selection = match (report.best_step, report.best_score) {
        (Some(s), Some(b)) => format!(
            "; best dev {b:.2} at update {s} of {} evaluations, those weights kept{}",
            report.scores.len(),
            if report.early_stopped {
                " (stopped early)"
            } else {
                ""
            }
        ),
        _ => String::new(),
    };
    ctx.record(&format!(
        "{what} ({}{}): {} updates of {} ({}), {}{selection}; {:.1} s; checkpoints and curve.jsonl in {}",
        stilts_model::util::plural(
            stilts_protocol::run::training_examples(&t.parts, run, false),
            "example"
        ),
        match report.questions_cut {
            0 => String::new(),
            n => format!(
                "; {} cut to {} tokens (max_query_length)",
                stilts_model::util::plural(n as usize, "question"),
                run.max_query_length
            ),
        },
        report.steps,
        m.name,
        lr_summary(run, Some(report.updates_per_epoch)),
        stilts_protocol::summary::loss_summary(&report.losses),
        started.elapsed().as_secs_f64(),
        dir.display()
    ));
    let mut summary = training_summary(&report, &t.name);
    summary["curve"] = serde_json::json!(dir.join("curve.jsonl").display().to_string());
    Ok(ModelValue {
        model: Arc::new(model),
        name: format!("{}+{}", m.name, t.name),
        pretrained: false,
        optimizer: report.optimizer.clone(),
        fingerprint,
        training: Some(Arc::new(summary)),
    })
}

/// The maps of the two phases of `stilts(...)` (and of a condition): the
/// shared training keys, laid under each phase's own map. `dev` and the
/// model-selection keys (and `dev_pool`) at the top level belong to the target phase (the
/// one model selection is usually run on); the intermediate phase takes
/// its own inside `intermediate: #{...}`.
pub fn phase_maps(what: &str, opts: &Map) -> RResult<(Map, Map)> {
    let mut common = opts.clone();
    let take = |common: &mut Map, k: &str| -> RResult<Map> {
        match common.remove(k) {
            None => Ok(Map::new()),
            Some(v) => v.clone().try_cast::<Map>().ok_or_else(|| {
                rerr(format!(
                    "{what}: `{k}` takes a map of training options, not {}",
                    crate::values::type_name(&v)
                ))
            }),
        }
    };
    let i_opts = take(&mut common, "intermediate")?;
    let t_opts = take(&mut common, "target")?;
    let mut i_common = common.clone();
    i_common.remove("dev");
    i_common.remove("dev_pool");
    for k in SELECTION_KEYS {
        i_common.remove(*k);
    }
    Ok((overlay(&i_common, &i_opts), overlay(&common, &t_opts)))
}

/// `stilts(model, intermediate, target, opts)`.
fn stilts(
    ctx: &Ctx,
    m: &ModelValue,
    inter: &TaskValue,
    target: &TaskValue,
    opts: &Map,
) -> RResult<ModelValue> {
    let (i_map, mut t_map) = phase_maps("stilts options", opts)?;
    // Checked up front, so a typo fails before hours of intermediate training.
    call_options("stilts options `intermediate`", m.model.config(), &i_map)?;
    let t_call = call_options("stilts options `target`", m.model.config(), &t_map)?;
    if t_call.new_head == Some(false) {
        return Err(rerr(
            "stilts options: `new_head: false` would keep a head on the target phase, but the STILTs step puts a fresh head on the encoder for the target task: give `new_head` for the intermediate phase inside `intermediate: #{...}`, or leave it out",
        ));
    }
    let mid = train(ctx, m, inter, &i_map)?;
    t_map.insert("new_head".into(), Dynamic::from(true));
    let mut out = train(ctx, &mid, target, &t_map)?;
    out.name = format!("{}+{}+{}", m.name, inter.name, target.name);
    Ok(out)
}

/// `sampling`: "uniform", "proportional", or #{cap: N} / #{temperature: T, cap: N}.
pub fn sampling(v: Option<Dynamic>) -> RResult<Sampling> {
    let Some(v) = v else {
        return Ok(Sampling::Proportional);
    };
    if let Some(s) = v.clone().try_cast::<String>() {
        return match s.as_str() {
            "uniform" => Ok(Sampling::Uniform),
            "proportional" => Ok(Sampling::Proportional),
            other => Err(rerr(format!("multitask: sampling `{other}`: use \"uniform\", \"proportional\", #{{cap: N}}, #{{temperature: T, cap: N}} or #{{probs: #{{task: p, ...}}}}"))),
        };
    }
    let m = v
        .clone()
        .try_cast::<Map>()
        .ok_or_else(|| rerr("multitask: `sampling` takes a string or a map"))?;
    crate::options::check_keys("multitask sampling", &m, &["cap", "temperature", "probs"])?;
    if let Some(p) = m.get("probs") {
        if m.len() > 1 {
            return Err(rerr(
                "sampling: `probs` fixes the probabilities; it takes no `cap` or `temperature`",
            ));
        }
        let pm = p
            .clone()
            .try_cast::<Map>()
            .ok_or_else(|| rerr("sampling: `probs` takes a map of task name -> probability"))?;
        let mut probs = std::collections::BTreeMap::new();
        for (k, v) in pm {
            let x = v
                .as_float()
                .or_else(|_| v.as_int().map(|i| i as f64))
                .map_err(|_| rerr(format!("sampling probs: `{k}` takes a number")))?;
            probs.insert(k.to_string(), x);
        }
        return Ok(Sampling::Specified { probs });
    }
    let cap = m
        .get("cap")
        .map(|c| {
            c.as_int()
                .map(|n| n.max(1) as usize)
                .map_err(|_| rerr("sampling: `cap` takes an integer"))
        })
        .transpose()?;
    match (m.get("temperature"), cap) {
        (Some(t), cap) => {
            let t = t
                .as_float()
                .or_else(|_| t.as_int().map(|i| i as f64))
                .map_err(|_| rerr("sampling: `temperature` takes a number"))?;
            Ok(Sampling::Temperature {
                temperature: t,
                cap,
            })
        }
        (None, Some(cap)) => Ok(Sampling::ProportionalCapped { cap }),
        (None, None) => Ok(Sampling::Proportional),
    }
}

fn multitask(ctx: &Ctx, m: &ModelValue, tasks: &Array, opts: &Map) -> RResult<ModelValue> {
    let ts: Vec<TaskValue> = tasks
        .iter()
        .map(|v| {
            v.clone().try_cast::<TaskValue>().ok_or_else(|| {
                rerr(format!(
                    "multitask: `tasks` must hold tasks, not {}",
                    crate::values::type_name(v)
                ))
            })
        })
        .collect::<RResult<_>>()?;
    if ts.is_empty() {
        return Err(rerr("multitask: no tasks"));
    }
    let mut opts = opts.clone();
    let sampling = sampling(opts.remove("sampling"))?;
    let call = call_options(
        "multitask options (training keys and `sampling`)",
        m.model.config(),
        &opts,
    )?;
    if call.new_head.is_some() {
        return Err(rerr(
            "multitask: `new_head`: every task of a mix trains a fresh head of its own; leave it out",
        ));
    }
    let dev = dev_dataset("multitask", &call.dev)?;
    let names: Vec<String> = ts.iter().map(|t| t.name.clone()).collect();
    for t in &ts {
        for w in stilts_protocol::run::training_warnings(&t.parts, &call.options.options) {
            ctx.warn(&w);
        }
    }
    let started = std::time::Instant::now();
    let mut bar = ctx.progress(&format!("multitask {}", names.join("+")));
    let data: Vec<(String, Vec<stilts_tasks::Dataset>)> = ts
        .iter()
        .map(|t| (t.name.clone(), t.parts.as_ref().clone()))
        .collect();
    let fps: Vec<String> = ts
        .iter()
        .map(|t| t.fingerprint())
        .collect::<stilts_model::Result<_>>()
        .map_err(rerr)?;
    let fingerprint = derived_fingerprint(serde_json::json!({
        "parent": m.fingerprint,
        "mix": fps,
        "sampling": sampling,
        "dev": call.dev.as_ref().map(|d| d.fingerprint()).transpose().map_err(rerr)?,
        "options": options_key(&call.options.options, &data.iter().flat_map(|(_, p)| p.iter()).collect::<Vec<_>>()),
    }));
    if ctx.settings.cell_mode == crate::context::CellMode::Check {
        let name = format!("{}+mix({})", m.name, names.join(","));
        return Ok(stand_in(m, name, fingerprint, "multitask"));
    }
    let dir = checkpoint_dir(ctx, &fingerprint);
    only_finished(ctx, "multitask", &dir)?;
    let _claim = claim(ctx, "multitask", &fingerprint)?;
    let job = MultitaskJob {
        model: &m.model,
        tasks: &data,
        sampling: &sampling,
        dev: dev.as_ref(),
        options: &call.options.options,
        checkpoint_dir: Some(dir.clone()),
    };
    let (model, report) = protocol_bridge::multitask(&job, &mut *bar, &CANCEL)
        .map_err(|e| protocol_err("multitask", e))?;
    resumed_note(ctx, "multitask", &report, &dir);
    let mut per_task = vec![];
    for (i, n) in names.iter().enumerate() {
        let k = report.task_losses.iter().filter(|(t, _)| *t == i).count();
        per_task.push(format!("{n} {k}"));
    }
    ctx.record(&format!(
        "multitask {} of {}: {} updates (batches per task: {}; {}), {}; {:.1} s; checkpoints and curve.jsonl in {}",
        names.join("+"),
        m.name,
        report.steps,
        per_task.join(", "),
        lr_summary(&call.options.options, Some(report.updates_per_epoch)),
        stilts_protocol::summary::loss_summary(&report.losses),
        started.elapsed().as_secs_f64(),
        dir.display()
    ));
    Ok(ModelValue {
        model: Arc::new(model),
        name: format!("{}+mix({})", m.name, names.join(",")),
        pretrained: false,
        optimizer: report.optimizer.clone(),
        fingerprint,
        training: Some(Arc::new({
            let mut s = training_summary(&report, "multitask");
            s["curve"] = serde_json::json!(dir.join("curve.jsonl").display().to_string());
            s
        })),
    })
}

/// The keys of `evaluate`'s map that only retrieval reads.
pub const RETRIEVAL_KEYS: &[&str] = &["layer", "pooling", "direction", "scoring"];

/// `evaluate(model, task, opts)`.
pub fn evaluate(ctx: &Ctx, m: &ModelValue, t: &TaskValue, a: &EvalArgs) -> RResult<Scores> {
    if t.is_retrieval() {
        return evaluate_retrieval(ctx, m, t, a);
    }
    let given = [
        a.layer.is_some(),
        a.pooling.is_some(),
        a.direction.is_some(),
        a.scoring.is_some(),
    ];
    if let Some((k, _)) = RETRIEVAL_KEYS.iter().zip(given).find(|(_, g)| *g) {
        return Err(rerr(format!(
            "evaluate: `{k}` is an option of retrieval tasks (tatoeba); `{}` is scored through the model's head: leave `{k}` out",
            t.name
        )));
    }
    if m.pretrained {
        return Err(rerr(format!(
            "evaluate: `{}` is a pretrained checkpoint without a trained head; train it first",
            m.name
        )));
    }
    if !ctx.settings.cell_mode.evaluates() {
        // Planning or running one cell: the value is never shown.
        return Ok(Scores::placeholder(&m.name, t));
    }
    let mut run = RunOptions::default();
    run.max_length = a
        .max_length
        .unwrap_or(stilts_protocol::evaluation::EVAL_MAX_LENGTH)
        .min(m.model.config().max_sequence_length());
    let most = m.model.config().max_sequence_length();
    run.qa_max_length = Some(a.max_length.unwrap_or(QA_MAX_LENGTH).min(most));
    if let Some(s) = a.doc_stride {
        run.doc_stride = s.max(1);
    }
    run.batch_size = a
        .batch_size
        .unwrap_or(stilts_protocol::evaluation::EVAL_BATCH_SIZE)
        .max(1);
    run.limit = a.limit;
    let mut by_lang = std::collections::BTreeMap::new();
    let mut metric = String::new();
    for ds in t.parts.iter() {
        let mut bar = ctx.progress(&format!("eval {}", t.key(ds)));
        let e = protocol_bridge::evaluate(&m.model, ds, &run, &mut *bar, &CANCEL)
            .map_err(|e| protocol_err(&format!("evaluate on {}", ds.name()), e))?;
        metric = e.metric.clone();
        by_lang.insert(
            t.key(ds),
            LangScore {
                value: e.score,
                n: e.n,
                runs: vec![],
                correct: if stilts_tasks::Metric::names_accuracy(&e.metric) {
                    vec![e.correct()]
                } else {
                    vec![]
                },
                collapse: stilts_protocol::summary::one_class(&e.predicted)
                    .map(|c| vec![format!("{}: {c}", m.name)])
                    .unwrap_or_default(),
            },
        );
    }
    Ok(Scores {
        label: m.name.clone(),
        task: t.name.clone(),
        split: t.split.clone(),
        chance: if stilts_tasks::Metric::names_accuracy(&metric) {
            t.parts.first().and_then(|d| d.chance_accuracy())
        } else {
            None
        },
        metric,
        by_lang,
        params: Some(m.model.num_parameters() as u64),
        cells: vec![],
        model_dirs: vec![],
    })
}

/// `evaluate(model, tatoeba, opts)`: sentence retrieval with the model's
/// encoder as it is (a pretrained checkpoint too; its head is ignored).
fn evaluate_retrieval(ctx: &Ctx, m: &ModelValue, t: &TaskValue, a: &EvalArgs) -> RResult<Scores> {
    use stilts_protocol::retrieval::RetrievalOptions;
    use stilts_tasks::retrieval::{Direction, Scoring};
    if a.doc_stride.is_some() {
        return Err(rerr(format!(
            "evaluate: `doc_stride` is for span QA windows; `{}` encodes each sentence whole: leave it out",
            t.name
        )));
    }
    let mut r = RetrievalOptions::default();
    let layers = m.model.config().num_hidden_layers;
    if let Some(l) = a.layer {
        if l > layers {
            return Err(rerr(format!(
                "evaluate: `layer: {l}`, but `{}` has {layers} layers: give 0 (the embeddings) to {layers} (its output)",
                m.name
            )));
        }
        r.layer = Some(l);
    }
    let opt = |what: &str, e: stilts_model::Error| rerr(format!("evaluate: {what}: {e}"));
    if let Some(p) = &a.pooling {
        r.pooling = stilts_model::Pooling::parse(p).map_err(|e| opt("`pooling`", e))?;
    }
    if let Some(d) = &a.direction {
        r.direction = Direction::parse(d).map_err(|e| opt("`direction`", e))?;
    }
    if let Some(s) = &a.scoring {
        r.scoring = Scoring::parse(s).map_err(|e| opt("`scoring`", e))?;
    }
    if let Some(b) = a.batch_size {
        r.batch_size = b.max(1);
    }
    if let Some(l) = a.max_length {
        if l < 3 {
            return Err(rerr("evaluate: `max_length` must leave room for a token besides <s> and </s> (at least 3)"));
        }
        r.max_length = l;
    }
    r.limit = a.limit;
    if !ctx.settings.cell_mode.evaluates() {
        return Ok(Scores::placeholder(&m.name, t));
    }
    let mut by_lang = std::collections::BTreeMap::new();
    let mut metric = String::new();
    for ds in t.parts.iter() {
        let mut bar = ctx.progress(&format!("retrieval {}", t.key(ds)));
        let e = protocol_bridge::evaluate_retrieval(&m.model, ds, &r, &mut *bar, &CANCEL)
            .map_err(|e| protocol_err(&format!("evaluate on {}", ds.name()), e))?;
        metric = e.metric.clone();
        by_lang.insert(
            t.key(ds),
            LangScore {
                value: e.score,
                n: e.n,
                runs: vec![],
                correct: vec![e.correct()],
                collapse: vec![],
            },
        );
    }
    Ok(Scores {
        label: m.name.clone(),
        task: t.name.clone(),
        split: t.split.clone(),
        chance: None,
        metric,
        by_lang,
        // Retrieval reads the encoder alone (the head is ignored).
        params: Some(m.model.encoder.params().num_parameters() as u64),
        cells: vec![],
        model_dirs: vec![],
    })
}

/// The documentation of what this file registers: what `:help`, tab
/// completion, `check` and the README's API reference read (collected by
/// `docs::api`). Every entry's example runs in a test (`api_examples.rs`).
pub const DOCS: &[ApiDoc] = &[
    entry("training", "train", "train(model: Model, task: Task) -> Model", "Fine-tunes a copy of the model on the task with the `jiant` preset; a model whose head does not fit the task gets a fresh one.", "let ft = train(m, mnli);"),
    entry("training", "train", "train(model: Model, task: Task, opts: map) -> Model", "Fine-tunes with options over a preset: preset (jiant, xtreme; xtreme's lr is size-aware: 2e-5 below hidden 1024, 3e-5 from large up), lr, weight_decay, epochs, max_steps (exactly this many updates, the data cycled: it overrides epochs, as in transformers' Trainer), batch_size, grad_accum, max_tokens, max_length (span QA: the window length; without it run_qa.py's 384), doc_stride (span QA: tokens of overlap between a long context's windows; run_qa.py's 128, a third of max_length when that is shorter, half the room a long question leaves when that is less), max_query_length (span QA: questions are cut to this many tokens before windowing, as XTREME and jiant do; default 64; the training line says how many were cut), warmup, warmup_steps, max_grad_norm, seed, bf16, gradient_checkpointing (recompute activations in backward: same gradients, less memory), factored_optimizer (AdamW with a factored second moment: about half the optimizer memory), bf16_update (a model with bf16 weights, `dtype: \"bf16\"`: \"kahan\" keeps a bf16 compensation per weight, \"stochastic\" rounds at random, CPU only; left out, updates below half a bf16 step are lost; an error on f32 weights), fused_update (update each parameter inside the checkpointed backward and free its gradient: needs gradient_checkpointing and grad_accum 1; clips with the previous update's norm), eight_bit_second_moment (AdamW's second moment stored block-wise in 8 bits: 1 byte a parameter instead of 4; CPU only; not with factored_optimizer), limit (a seeded sample of at most N examples of each part, stratified by label for classification, drawn with the run's seed), reset_optimizer (false: continue from the AdamW state of the model's last training), freeze (parameters held fixed, no gradient, no optimizer state: prefixes of their names without `roberta.`/`bert.`, on whole dotted parts, e.g. [\"embeddings\"], [\"embeddings\", \"layers:0-3\"] for encoder layers 0 to 3, \"encoder.layer.5\", \"classifier\"; an entry matching no parameter is an error listing the prefixes), dropout (every dropout probability of the model for this run, in place of its config.json's: hidden, attention and the head's; 0 turns dropout off; a probability in [0, 1); the trained model keeps its config), shuffle (false: the examples in their file order cut into consecutive batches, the same every epoch, for a controlled comparison with another implementation reading the same file; default true: shuffled and length-bucketed per seed and epoch), new_head (true: a fresh head even when the model's fits the task; false: the model's own head as its checkpoint holds it, e.g. one a reference framework initialised and saved, an error where it does not fit the task (kind and labels) or the model was loaded without one; left out: the model's head where it fits, else a fresh one; `multitask` and `condition` always train fresh heads and take no new_head). Model selection: `dev` (a task split of one part, e.g. `xnli_dev.language(\"en\")`; a dev set of several parts is an error unless `dev_pool: true` pools them: selecting on target-language data is not zero-shot) with eval_every (updates; jiant 1000, xtreme 100, else once per epoch), patience (evaluations without gain before stopping; jiant 30) and dev_limit (score the first N dev examples; jiant 500): the model ends on the best dev weights. eval_every, patience or dev_limit set without a dev set, checkpoint_every (updates between checkpoints: a script checkpoints every checkpoint_every updates, at the end and when stopped by a signal, and resumes from them when run again) and unknown keys are errors. A classification training set whose examples all have one label gets a warning; the report records each training's updates, loss, time and checkpoint folder.", "train(m, mnli, #{preset: \"xtreme\", dev: xnli_dev.language(\"en\"), seed: 2})"),
    entry("training", "stilts", "stilts(model: Model, intermediate: Task, target: Task) -> Model", "The STILTs step: train on the intermediate task, put a fresh head on the encoder, train on the target task.", "let s = stilts(m, hellaswag, mnli);"),
    entry("training", "stilts", "stilts(model: Model, intermediate: Task, target: Task, opts: map) -> Model", "STILTs with options: training keys for both phases, and `intermediate: #{...}` / `target: #{...}` for one phase. `dev` and the model-selection keys (eval_every, patience, dev_limit) at the top level belong to the target phase; the intermediate phase takes its own inside `intermediate: #{dev: ...}`.", "stilts(m, squad, mnli, #{seed: 1, dev: mnli_dev, intermediate: #{epochs: 2}})"),
    entry("training", "multitask", "multitask(model: Model, tasks: array, opts: map) -> Model", "Multi-task training of one encoder on several tasks (a head each; task(\"mlm\", ...) adds masked language modelling), the task drawn per optimizer update (gradient accumulation stays within it). Training keys plus `sampling`: \"proportional\" (default), \"uniform\", #{cap: N}, #{temperature: T, cap: N} or #{probs: #{task: p, ...}} (jiant's samplers); train_examples_cap (at most N examples of each task, a seeded sample: shortens training too); `dev` (a split of one task of the mix, scored with its head). Returns the encoder under the last task's head.", "multitask(m, [squad, hellaswag, mlm], #{seed: 1, sampling: #{probs: #{squad_v1: 0.4, hellaswag: 0.4, mlm: 0.2}}})"),
    entry("training", "preset", "preset(name: string) -> map", "The settings of a training preset (jiant, xtreme).", "preset(\"xtreme\")"),
    entry("results", "evaluate", "evaluate(model: Model, task: Task) -> Result", "Scores the model on each language of the task (dropout off).", "let r = evaluate(ft, xnli);"),
    entry("results", "evaluate", "evaluate(model: Model, task: Task, opts: map) -> Result", "Evaluation with options: batch_size, max_length (span QA: the window, default 384), doc_stride (span QA, default 128), limit (the first N examples of each language: the same pairs in every language of a parallel set). A retrieval task (task(\"tatoeba\", ...)) takes the options below.", "evaluate(ft, xnli, #{batch_size: 128})"),
    entry("results", "evaluate", "evaluate(model: Model, tatoeba: Task, opts: map) -> Result", "Sentence retrieval (Tatoeba), zero-shot from the encoder as it is: any model (pretrained, after an intermediate task, fine-tuned: its head is ignored). Each sentence is encoded alone (`<s> … </s>`, max_length 512 tokens or what the model's positions allow), pooled from one hidden state, and its nearest neighbour on the other side must be its translation; per language the accuracy in percent and each query's right/wrong (mean, compare, table work as for XNLI). Options: layer (the hidden state: 0 the embeddings, k the output of layer k; default as XTREME: 8 of 12 layers, 14 of 24, the same relative depth elsewhere: 2/3 of the depth up to 12, 7/12 from 24, L/2 + 2 between, rounded; only those layers run), pooling (\"mean\" over the tokens, <s> and </s> included, XTREME's; or \"cls\", the first token), direction (\"xx-en\", each sentence retrieves its English translation, XTREME's score; \"en-xx\"; \"both\": the queries of both, so the score is the mean of the two, as LASER reports), scoring (\"cosine\"; \"margin\": the ratio margin of Artetxe & Schwenk 2019 over k = 4 neighbours, as LASER), batch_size (sentences, default 100, sorted by length), max_length, limit (the first N pairs of each language: a smaller candidate pool).", "evaluate(m, tatoeba, #{layer: 1, pooling: \"cls\", direction: \"both\", scoring: \"margin\"})"),
];

/// Registers `train`, `stilts`, `multitask`, `preset` and `evaluate`.
pub fn register(engine: &mut Engine, ctx: &Rc<Ctx>) {
    let c = ctx.clone();
    engine.register_fn("train", move |m: ModelValue, t: TaskValue| {
        train(&c, &m, &t, &Map::new())
    });
    let c = ctx.clone();
    engine.register_fn("train", move |m: ModelValue, t: TaskValue, opts: Map| {
        train(&c, &m, &t, &opts)
    });
    let c = ctx.clone();
    engine.register_fn(
        "stilts",
        move |m: ModelValue, i: TaskValue, t: TaskValue| stilts(&c, &m, &i, &t, &Map::new()),
    );
    let c = ctx.clone();
    engine.register_fn(
        "stilts",
        move |m: ModelValue, i: TaskValue, t: TaskValue, opts: Map| stilts(&c, &m, &i, &t, &opts),
    );
    let c = ctx.clone();
    engine.register_fn("multitask", move |m: ModelValue, ts: Array, opts: Map| {
        multitask(&c, &m, &ts, &opts)
    });
    engine.register_fn("preset", |name: &str| preset_map(name));
    let c = ctx.clone();
    engine.register_fn("evaluate", move |m: ModelValue, t: TaskValue| {
        evaluate(&c, &m, &t, &EvalArgs::default())
    });
    let c = ctx.clone();
    engine.register_fn("evaluate", move |m: ModelValue, t: TaskValue, opts: Map| {
        let a: EvalArgs = from_map("evaluate options", &opts)?;
        evaluate(&c, &m, &t, &a)
    });
    let _ = Dynamic::UNIT;
}
