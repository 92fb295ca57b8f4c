//! `condition(#{...})`: one cell of the grid, run by the experiment engine
//! (`protocol::experiment::run_condition`) and kept in the store under its
//! fingerprint. This file only converts the map and the results.

use std::collections::BTreeMap;
use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, Map};

use super::train::{call_options, phase_maps, sampling};
use super::{rerr, RResult};
use crate::protocol::experiment::{self, Condition, ModelSource, TaskData};
use crate::script::context::{Ctx, CANCEL};
use crate::script::engine_bridge;
use crate::script::options::check_keys;
use crate::script::values::{LangScore, ModelValue, Scores, TaskValue};

/// The keys of a condition's map.
pub const CONDITION_KEYS: &[&str] = &[
    "name",
    "model",
    "intermediate",
    "sampling",
    "target",
    "dev",
    "evaluate",
    "options",
    "seed",
    "eval_batch_size",
];

fn task_of(what: &str, v: &Dynamic) -> RResult<TaskValue> {
    v.clone().try_cast::<TaskValue>().ok_or_else(|| {
        rerr(format!(
            "condition: `{what}` takes a task, not {}",
            crate::script::values::type_name(v)
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
    let (model, hidden_of) = if let Some(s) = mv.clone().try_cast::<String>() {
        let dir = crate::model::load::resolve(&ctx.path(&s).display().to_string())
            .or_else(|_| crate::model::load::resolve(&s))
            .map_err(rerr)?;
        let cfg = crate::model::XlmrConfig::from_file(&dir.join("config.json")).map_err(rerr)?;
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
            crate::script::values::type_name(&mv)
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
    let target = task_of(
        "target",
        &need("target", "the target task, e.g. MNLI train")?,
    )?;
    let mut options = match get("options") {
        None => Map::new(),
        Some(v) => v.clone().try_cast::<Map>().ok_or_else(|| {
            rerr(format!(
                "condition: `options` takes a map of training options, not {}",
                crate::script::values::type_name(&v)
            ))
        })?,
    };
    if let Some(d) = get("dev") {
        options.insert("dev".into(), d);
    }
    let (i_map, t_map) = phase_maps("condition options", &options)?;
    let i_call = call_options("condition options `intermediate`", &hidden_of, &i_map)?;
    let t_call = call_options("condition options `target`", &hidden_of, &t_map)?;
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
        .unwrap_or(64)
        .max(1) as usize;
    let c = Condition {
        name: name.clone(),
        model,
        intermediate: intermediate.iter().map(data).collect::<RResult<_>>()?,
        sampling: sampling(get("sampling"))?,
        intermediate_dev: i_call.dev.as_ref().map(data).transpose()?,
        intermediate_options: i_call.options.options.clone(),
        target: data(&target)?,
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
        // Checked by the engine too; said here with the script's words.
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
        .chain([(&target, &t_call.options.options)])
    {
        for w in crate::protocol::run::training_warnings(&t.parts, o) {
            ctx.warn(&w);
        }
    }
    let store = super::runs::results_store(ctx);
    let mut factory = |label: &str| ctx.progress(&format!("{name} seed {seed}: {label}"));
    let out = engine_bridge::condition(&c, &store, &mut factory, &CANCEL).map_err(|e| {
        if crate::script::context::cancelled() {
            rerr(format!("condition {name} (seed {seed}): interrupted (Ctrl-C); finished conditions are kept in {}, this one is not: run again to go on", store.path().display()))
        } else {
            rerr(format!("condition {name} (seed {seed}): {e}"))
        }
    })?;
    let short = &out.record.key[..12];
    if out.reused {
        ctx.record(&format!(
            "condition {name} (seed {seed}): reused {short} from {}",
            store.path().display()
        ));
    } else {
        let phases = &out.record.config["phases"];
        let mut parts = vec![];
        for p in ["intermediate", "target"] {
            if let Some(ph) = phases.get(p) {
                let mut s = format!("{p} {} updates", ph["updates"]);
                if let Some(b) = ph["best_dev"].as_f64() {
                    s.push_str(&format!(", best dev {b:.2} at update {}", ph["best_step"]));
                }
                parts.push(s);
            }
        }
        ctx.record(&format!(
            "condition {name} (seed {seed}): {}{}; {:.1} s; stored as {short}",
            parts.join("; "),
            if out.intermediate_reused {
                " (intermediate phase reused from the store)"
            } else {
                ""
            },
            out.record.seconds
        ));
    }
    let evals = experiment::evaluations(&out.record);
    let mut results = Map::new();
    for (ename, t) in &evaluations {
        let e = evals.get(ename).cloned().unwrap_or_default();
        let mut by_lang = BTreeMap::new();
        for (lang, v, n, bits) in e.languages {
            by_lang.insert(
                lang,
                LangScore {
                    value: v,
                    n,
                    runs: vec![],
                    correct: bits.map(|b| vec![b]).unwrap_or_default(),
                },
            );
        }
        let s = Scores {
            label: name.clone(),
            task: t.name.clone(),
            split: t.split.clone(),
            chance: if e.metric.contains("accuracy") {
                t.parts.first().and_then(|d| d.chance_accuracy())
            } else {
                None
            },
            metric: e.metric,
            by_lang,
        };
        if single_eval {
            return Ok(Dynamic::from(s));
        }
        results.insert(ename.as_str().into(), Dynamic::from(s));
    }
    Ok(Dynamic::from(results))
}

pub fn register(engine: &mut Engine, ctx: &Rc<Ctx>) {
    let c = ctx.clone();
    engine.register_fn("condition", move |spec: Map| condition(&c, &spec));
}
