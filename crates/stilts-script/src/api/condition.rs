//! `condition(#{...})`: one cell of the grid, run by the protocol
//! (`protocol::experiment::run_condition`) and kept in the store under its
//! fingerprint. This file only converts the map and the results.

use super::doc::{entry, ApiDoc};
use std::collections::BTreeMap;
use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, Map};

use super::train::{call_options, phase_maps, sampling};
use super::{rerr, RResult};
use crate::context::{CellMode, Ctx, PlannedCell, CANCEL};
use crate::options::check_keys;
use crate::protocol_bridge;
use crate::values::{LangScore, ModelValue, Scores, TaskValue};
use stilts_protocol::experiment::{self, Condition, ModelSource, TaskData};

/// The keys of a condition's map.
pub const CONDITION_KEYS: &[&str] = &[
    "name",
    "model",
    "intermediate",
    "sampling",
    "target",
    "dev",
    "dev_pool",
    "evaluate",
    "options",
    "seed",
    "eval_batch_size",
    "keep",
];

fn task_of(what: &str, v: &Dynamic) -> RResult<TaskValue> {
    v.clone().try_cast::<TaskValue>().ok_or_else(|| {
        rerr(format!(
            "condition: `{what}` takes a task, not {}",
            crate::values::type_name(v)
        ))
    })
}

fn data(t: &TaskValue) -> RResult<TaskData> {
    t.task_data().map_err(rerr)
}

/// `condition(#{model, intermediate, target, dev, eval, options, seed, name})`.
pub fn condition(ctx: &Ctx, spec: &Map) -> RResult<Dynamic> {
    check_keys("condition", spec, CONDITION_KEYS)?;
    let get = |k: &str| spec.get(k).cloned().filter(|v| !v.is_unit());
    let need = |k: &str, hint: &str| {
        get(k).ok_or_else(|| rerr(format!("condition: `{k}` is missing ({hint})")))
    };
    // The model: a spec string (loaded when it runs) or a Model value.
    let mv = need("model", "a size name, directory or hub id, or a Model")?;
    let model_label = match mv.clone().try_cast::<ModelValue>() {
        Some(m) => m.name.clone(),
        None => mv.to_string(),
    };
    let (model, hidden_of) = if let Some(s) = mv.clone().try_cast::<String>() {
        let dir = stilts_model::load::resolve(&ctx.path(&s).display().to_string())
            .or_else(|_| stilts_model::load::resolve(&s))
            .map_err(rerr)?;
        let cfg = stilts_model::XlmrConfig::from_file(&dir.join("config.json")).map_err(rerr)?;
        (ModelSource::Spec(dir.display().to_string()), cfg)
    } else if let Some(m) = mv.clone().try_cast::<ModelValue>() {
        let cfg = m.model.config().clone();
        (
            ModelSource::Loaded {
                model: m.model.clone(),
                fingerprint: m.fingerprint.clone(),
            },
            cfg,
        )
    } else {
        return Err(rerr(format!(
            "condition: `model` takes a size name, directory or Model, not {}",
            crate::values::type_name(&mv)
        )));
    };
    let intermediate: Vec<TaskValue> = match get("intermediate") {
        None => vec![],
        Some(v) if v.is::<Array>() => v
            .cast::<Array>()
            .iter()
            .map(|x| task_of("intermediate", x))
            .collect::<RResult<_>>()?,
        Some(v) => vec![task_of("intermediate", &v)?],
    };
    // `target: ()`: no target phase (retrieval evaluations only).
    let target = match spec.get("target") {
        Some(v) if v.is_unit() => None,
        Some(v) => Some(task_of("target", v)?),
        None => {
            return Err(rerr(
                "condition: `target` is missing (the target task, e.g. MNLI train; or () for none: the encoder right after the intermediate phase, for retrieval evaluations such as tatoeba)",
            ))
        }
    };
    let mut options = match get("options") {
        None => Map::new(),
        Some(v) => v.clone().try_cast::<Map>().ok_or_else(|| {
            rerr(format!(
                "condition: `options` takes a map of training options, not {}",
                crate::values::type_name(&v)
            ))
        })?,
    };
    for k in ["dev", "dev_pool"] {
        if let Some(d) = get(k) {
            options.insert(k.into(), d);
        }
    }
    let (i_map, t_map) = phase_maps("condition options", &options)?;
    // A baseline has one phase: its options are checked (and named) as
    // the condition's, not as those of an intermediate phase it lacks.
    let (i_call, t_call) = if intermediate.is_empty() {
        let t = call_options("condition options", &hidden_of, &t_map)?;
        (call_options("condition options", &hidden_of, &i_map)?, t)
    } else {
        (
            call_options("condition options `intermediate`", &hidden_of, &i_map)?,
            call_options("condition options `target`", &hidden_of, &t_map)?,
        )
    };
    if i_call.new_head.is_some() || t_call.new_head.is_some() {
        return Err(rerr(
            "condition: `new_head`: a condition trains each phase under a fresh head (the STILTs protocol); leave it out (train(m, task, #{new_head: false}) trains a model's own head)",
        ));
    }
    if i_call.options.is_explicit("seed") || t_call.options.is_explicit("seed") {
        return Err(rerr(
            "condition: give the seed as the condition's `seed`, not inside `options`",
        ));
    }
    let evaluations: Vec<(String, TaskValue)> = match need(
        "evaluate",
        "a task, or a map of name -> task, e.g. #{dev: xnli_dev, test: xnli_test}",
    )? {
        v if v.is::<Map>() => v
            .cast::<Map>()
            .iter()
            .map(|(k, x)| Ok((k.to_string(), task_of("evaluate", x)?)))
            .collect::<RResult<_>>()?,
        v => {
            let t = task_of("evaluate", &v)?;
            vec![(t.split.clone(), t)]
        }
    };
    let single_eval = !get("evaluate").is_some_and(|v| v.is::<Map>());
    if target.is_none() {
        if let Some((k, t)) = evaluations.iter().find(|(_, t)| !t.is_retrieval()) {
            return Err(rerr(format!(
                "condition: `target` is () (no target phase), but evaluation `{k}` ({}) needs a head trained on a target task; give a target task, or evaluate only retrieval tasks (tatoeba)",
                t.name
            )));
        }
        let target_keys = [
            ("dev", options.contains_key("dev")),
            ("dev_pool", options.contains_key("dev_pool")),
            ("options.target", options.contains_key("target")),
        ];
        if let Some((k, _)) = target_keys.iter().find(|(_, given)| *given) {
            return Err(rerr(format!(
                "condition: `{k}` belongs to the target phase, and `target` is () (none): leave it out"
            )));
        }
    }
    // The model the cell scores: its config with the target's head (the
    // encoder alone where there is no target phase).
    let params = match target.as_ref() {
        Some(t) => stilts_protocol::memory::count_parameters(
            &hidden_of,
            t.parts.first().map_or(3, |d| d.labels.len().max(1)),
        ),
        None => {
            let h = hidden_of.hidden_size as u64;
            stilts_protocol::memory::count_parameters(&hidden_of, 0) - (h * h + h)
        }
    };
    let seed = match get("seed") {
        None => 0,
        Some(v) => {
            v.as_int()
                .ok()
                .filter(|&s| s >= 0)
                .ok_or_else(|| rerr("condition: `seed` takes an integer >= 0"))? as u64
        }
    };
    let name = match get("name") {
        Some(v) => v
            .into_string()
            .map_err(|t| rerr(format!("condition: `name` takes a string, not {t}")))?,
        None if intermediate.is_empty() => "none".to_string(),
        None => intermediate
            .iter()
            .map(|t| t.name.clone())
            .collect::<Vec<_>>()
            .join("+"),
    };
    let eval_batch_size = get("eval_batch_size")
        .map(|v| {
            v.as_int()
                .map_err(|_| rerr("condition: `eval_batch_size` takes an integer"))
        })
        .transpose()?
        .map_or(stilts_protocol::evaluation::EVAL_BATCH_SIZE, |b| {
            b.max(1) as usize
        });
    let keep = match get("keep") {
        None => experiment::Keep::default(),
        Some(v) => {
            let s = v.clone().into_string().map_err(|t| {
                rerr(format!(
                    "condition: `keep` takes one of {} (e.g. `keep: \"final\"`), not {t}",
                    experiment::Keep::NAMES.join(", ")
                ))
            })?;
            experiment::Keep::parse(&s).ok_or_else(|| {
                rerr(format!(
                    "condition: `keep: \"{s}\"` is not a choice; give one of {}",
                    experiment::Keep::NAMES
                        .iter()
                        .map(|n| format!("\"{n}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?
        }
    };
    let c = Condition {
        keep,
        name: name.clone(),
        model,
        model_label: model_label.clone(),
        intermediate: intermediate.iter().map(data).collect::<RResult<_>>()?,
        sampling: sampling(get("sampling"))?,
        intermediate_dev: i_call.dev.as_ref().map(data).transpose()?,
        intermediate_options: i_call.options.options.clone(),
        target: target.as_ref().map(data).transpose()?,
        target_dev: t_call.dev.as_ref().map(data).transpose()?,
        target_options: t_call.options.options.clone(),
        evaluations: evaluations
            .iter()
            .map(|(n, t)| Ok((n.clone(), data(t)?)))
            .collect::<RResult<_>>()?,
        eval_batch_size,
        seed,
    };
    if intermediate.len() > 1 && i_call.dev.is_some() {
        // Checked by the protocol too; said here with the script's words.
        let dn = &i_call
            .dev
            .as_ref()
            .map(|d| d.name.clone())
            .unwrap_or_default();
        if !intermediate.iter().any(|t| &t.name == dn) {
            return Err(rerr(format!(
                "condition: the intermediate dev set is of `{dn}`, not a task of the mix"
            )));
        }
    }
    for (t, o) in intermediate
        .iter()
        .map(|t| (t, &i_call.options.options))
        .chain(target.iter().map(|t| (t, &t_call.options.options)))
    {
        for w in stilts_protocol::run::training_warnings(&t.parts, o) {
            ctx.warn(&w);
        }
        let what = format!("condition {name}: {} {}", t.name, t.split);
        if let Some(w) = super::train::evaluation_split_warning(&what, t) {
            ctx.warn(&w);
        }
    }
    let store = super::runs::results_store(ctx);
    let key = c.fingerprint().map_err(rerr)?;
    let mode = ctx.settings.cell_mode.clone();
    let hit = matches!(&mode, CellMode::Only(p) if key.starts_with(p.as_str()));
    if mode != CellMode::Run {
        let done = match mode {
            CellMode::Collect => collect_wait(&store, &key)?,
            // Checking: a stand-in whether or not the store has it.
            CellMode::Check => false,
            _ => store.find(&key).map_err(rerr)?.is_some(),
        };
        ctx.cells.borrow_mut().push(PlannedCell {
            key: key.clone(),
            name: name.clone(),
            model: model_label.clone(),
            seed,
            done,
        });
        if mode == CellMode::Collect && !done {
            return Err(rerr(missing_cell(&store, &key, &name, seed)));
        }
        if !done && !hit {
            // Planning, or another cell's job: a stand-in, never shown.
            if single_eval {
                return Ok(Dynamic::from(Scores::placeholder(&name, &evaluations[0].1)));
            }
            return Ok(Dynamic::from(
                evaluations
                    .iter()
                    .map(|(e, t)| {
                        (
                            e.as_str().into(),
                            Dynamic::from(Scores::placeholder(&name, t)),
                        )
                    })
                    .collect::<Map>(),
            ));
        }
    }
    let mut factory = |label: &str| ctx.progress(&format!("{name} seed {seed}: {label}"));
    let out = protocol_bridge::condition(&c, &store, &mut factory, &CANCEL).map_err(|e| {
        if e.is_cancelled() {
            rerr(format!("condition {name} (seed {seed}): interrupted ({}); finished conditions are kept in {}, this one's checkpoint too: run again to resume it", crate::context::signal_name(), store.path().display()))
        } else {
            rerr(format!("condition {name} (seed {seed}): {e}"))
        }
    })?;
    let short = &out.record.key[..12];
    // What each phase trained and whether the model learned anything, from
    // the record: the same lines for a condition run now and one reused.
    let mut lines = vec![if out.trained_again_to_keep {
        format!(
            "condition {name} (seed {seed}): trained again ({:.1} s) to keep its final model (keep: \"final\"), which its earlier run did not keep; stored as {short}",
            out.record.seconds
        )
    } else if out.reused {
        format!(
            "condition {name} (seed {seed}): reused {short} from {}",
            store.path().display()
        )
    } else {
        format!(
            "condition {name} (seed {seed}): {:.1} s{}; stored as {short}",
            out.record.seconds,
            if out.intermediate_reused {
                " (intermediate phase reused from the store)"
            } else {
                ""
            }
        )
    }];
    let phases = stilts_protocol::summary::phases(&out.record);
    if phases.is_empty() {
        lines.push("  no training (the pretrained encoder)".to_string());
    }
    for p in &phases {
        lines.push(format!("  {}", p.describe()));
    }
    if let Some(d) = &out.model_dir {
        lines.push(format!("  final model kept in {}", d.display()));
    }
    if let Some(c) = stilts_protocol::summary::collapse_line(&out.record) {
        lines.push(format!("  warning: {c}"));
    }
    ctx.record(&lines.join("\n"));
    ctx.conditions.borrow_mut().push(out.record.clone());
    if hit {
        // `--only`: its cell is kept; nothing else in the script runs.
        ctx.only_done.set(true);
        return Err(rerr(format!("--only {}: done", &key[..16])));
    }
    let evals = experiment::evaluations(&out.record);
    let collapsed = stilts_protocol::summary::collapses(&out.record);
    let mut results = Map::new();
    for (ename, t) in &evaluations {
        let e = evals.get(ename).cloned().unwrap_or_default();
        let mut by_lang = BTreeMap::new();
        for (lang, v, n, bits) in e.languages {
            let collapse = collapsed
                .get(&format!("{ename}/{lang}"))
                .map(|cs| {
                    let why: Vec<String> = cs.iter().map(|c| c.to_string()).collect();
                    vec![format!("{name} seed {seed}: {}", why.join("; "))]
                })
                .unwrap_or_default();
            by_lang.insert(
                lang,
                LangScore {
                    value: v,
                    n,
                    runs: vec![],
                    correct: bits.map(|b| vec![b]).unwrap_or_default(),
                    collapse,
                },
            );
        }
        let s = Scores {
            label: name.clone(),
            task: t.name.clone(),
            split: t.split.clone(),
            chance: if stilts_tasks::Metric::names_accuracy(&e.metric) {
                t.parts.first().and_then(|d| d.chance_accuracy())
            } else {
                None
            },
            metric: e.metric,
            by_lang,
            params: Some(params),
            cells: vec![out.record.key.clone()],
            model_dirs: out
                .model_dir
                .iter()
                .map(|d| d.display().to_string())
                .collect(),
        };
        if single_eval {
            return Ok(Dynamic::from(s));
        }
        results.insert(ename.as_str().into(), Dynamic::from(s));
    }
    Ok(Dynamic::from(results))
}

/// Whether `key` is in the store, for a collect job: a record that a job on
/// another node has just written may take a while to be listed on a
/// network filesystem (NFS caches directory listings for up to a minute),
/// so a missing one is looked for again every 5 s for up to
/// `STILTS_COLLECT_WAIT` seconds (default 60 inside a Slurm job, else 0).
fn collect_wait(store: &stilts_protocol::store::Store, key: &str) -> RResult<bool> {
    let wait: u64 = std::env::var("STILTS_COLLECT_WAIT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if std::env::var_os("SLURM_JOB_ID").is_some() {
            60
        } else {
            0
        });
    let start = std::time::Instant::now();
    loop {
        if store.find(key).map_err(rerr)?.is_some() {
            return Ok(true);
        }
        if start.elapsed().as_secs() >= wait || crate::context::cancelled() {
            return Ok(false);
        }
        std::thread::sleep(std::time::Duration::from_secs(5.min(wait.max(1))));
    }
}

/// Why a collect job cannot show a cell: what its last job left (state,
/// message, the tail of its log).
fn missing_cell(store: &stilts_protocol::store::Store, key: &str, name: &str, seed: u64) -> String {
    let mut s = format!(
        "condition {name} (seed {seed}, cell {}) is not in the store {}",
        &key[..16],
        store.path().display()
    );
    match store.mark_of(key) {
        Some(m) => {
            s.push_str(&format!(
                ": its job {} ({:?}{})",
                m.job.as_deref().unwrap_or("(not under Slurm)"),
                m.state,
                m.message
                    .as_deref()
                    .map(|x| format!(": {}", x.lines().next().unwrap_or("")))
                    .unwrap_or_default()
            ));
            if let Some(log) = &m.log {
                let tail = stilts_protocol::store::cells::log_tail(std::path::Path::new(log), 5);
                s.push_str(&format!(
                    "; the end of its log {log}:\n  {}",
                    tail.join("\n  ")
                ));
            }
        }
        None => s.push_str(": it has not run (or its job was killed before it started)"),
    }
    s.push_str("\nrun `stilts submit` again to run the cells that did not finish");
    s
}

/// The documentation of what this file registers: what `:help`, tab
/// completion, `check` and the README's API reference read (collected by
/// `docs::api`). Every entry's example runs in a test (`api_examples.rs`).
pub const DOCS: &[ApiDoc] = &[
    entry("training", "condition", "condition(spec: map) -> Result | map", "One cell of the grid, run by the protocol and kept in the store under its fingerprint (model files or weights, every data file and example read, options, seed, evaluation sets): a finished one is reused, the intermediate-phase model of (model, intermediate task(s), options, seed) is trained once and shared. Keys: model (size name, directory or Model), intermediate (a task, an array of tasks for a mix, or () for the baseline), sampling, target (the target task; () for none: the evaluations read the encoder right after the intermediate phase, or the pretrained one, and must all be retrieval tasks such as tatoeba, scored with evaluate's defaults), dev (target-phase model selection: a task of one part, e.g. xnli_dev.language(\"en\"); several parts only with dev_pool: true), dev_pool, evaluate (a task, or a map of name → task: returns a map of Results; a retrieval task beside XNLI is scored from the encoder after the target phase, with evaluate's retrieval defaults), options (training keys as in stilts()), seed, name (the results' label; default the intermediate task's name or `none`), eval_batch_size, keep (which models stay under the store: \"intermediate\", the default: the intermediate-phase model, shared by the conditions that need it; \"final\": the model after the target phase, in Hugging Face layout under STORE/models/, its folder in `Result.model_dir`, for `stilts predict` and model(dir); \"both\"; \"none\": neither, the intermediate phase's checkpoints removed once the condition is recorded; models are saved in the dtype they were trained in; a condition in the store without the final model `keep` asks for is trained again to keep it; `stilts gc STORE` removes what no unfinished condition needs).", "let r = condition(#{model: \"xlmr-base\", intermediate: squad, target: mnli, dev: mnli_dev, evaluate: #{dev: xnli_dev, test: xnli_test}, seed: 1});"),
];

/// Registers `condition(map)`.
pub fn register(engine: &mut Engine, ctx: &Rc<Ctx>) {
    let c = ctx.clone();
    engine.register_fn("condition", move |spec: Map| condition(&c, &spec));
}
