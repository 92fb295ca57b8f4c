//! Training (presets, train, the STILTs step, multi-task) and evaluation.

use std::rc::Rc;
use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, Map};

use super::{rerr, RResult};
use crate::protocol::multitask::Sampling;
use crate::protocol::presets::RunOptions;
use crate::script::context::{Ctx, CANCEL};
use crate::script::engine_bridge;
use crate::script::options::{
    from_map, overlay, preset_map, train_request, EvalArgs, TrainRequest,
};
use crate::script::values::{LangScore, ModelValue, Scores, TaskValue};

/// Options of a call, over the preset they name; inputs no longer than
/// the model's position embeddings allow.
fn settings(what: &str, m: &ModelValue, opts: &Map) -> RResult<TrainRequest> {
    let mut r = train_request(what, opts)?;
    r.run.max_length = r.run.max_length.min(m.model.config().max_sequence_length());
    Ok(r)
}

fn interrupted(what: &str) -> Box<rhai::EvalAltResult> {
    rerr(format!("interrupted (Ctrl-C) during {what}; finished runs are kept (memo), this one is not: run again to go on"))
}

/// `train(model, task, opts)`.
pub fn train(ctx: &Ctx, m: &ModelValue, t: &TaskValue, opts: &Map) -> RResult<ModelValue> {
    let what = format!("train on {}", t.name);
    let r = settings(&format!("{what}: options"), m, opts)?;
    let mut bar = ctx.progress(&what);
    // `reset_optimizer: false`: continue from the AdamW state of the phase
    // that produced this model (STILTs without resetting the optimizer).
    let carry = if r.run.reset_optimizer {
        None
    } else {
        m.optimizer.clone()
    };
    let (model, report) = engine_bridge::train(
        &m.model,
        &t.parts,
        &r.run,
        r.limit,
        r.new_head || m.pretrained,
        carry,
        &mut *bar,
        &CANCEL,
    )
    .map_err(|e| rerr(format!("{what}: {e}")))?;
    if report.cancelled {
        return Err(interrupted(&what));
    }
    let last = report.losses.last().copied().unwrap_or(f64::NAN);
    ctx.note(&format!(
        "{what}: {} updates, last loss {last:.4}",
        report.steps
    ));
    Ok(ModelValue {
        model: Arc::new(model),
        name: format!("{}+{}", m.name, t.name),
        pretrained: false,
        optimizer: report.optimizer.clone(),
    })
}

/// `stilts(model, intermediate, target, opts)`.
fn stilts(
    ctx: &Ctx,
    m: &ModelValue,
    inter: &TaskValue,
    target: &TaskValue,
    opts: &Map,
) -> RResult<ModelValue> {
    let mut common = opts.clone();
    let take = |common: &mut Map, k: &str| -> RResult<Map> {
        match common.remove(k) {
            None => Ok(Map::new()),
            Some(v) => v.clone().try_cast::<Map>().ok_or_else(|| {
                rerr(format!(
                    "stilts options: `{k}` takes a map of training options, not {}",
                    v.type_name()
                ))
            }),
        }
    };
    let i_opts = take(&mut common, "intermediate")?;
    let t_opts = take(&mut common, "target")?;
    // Checked up front, so a typo fails before hours of intermediate training.
    settings(
        "stilts options (training keys, plus `intermediate` and `target` maps)",
        m,
        &common,
    )?;
    settings(
        "stilts options `intermediate`",
        m,
        &overlay(&common, &i_opts),
    )?;
    settings("stilts options `target`", m, &overlay(&common, &t_opts))?;
    let mid = train(ctx, m, inter, &overlay(&common, &i_opts))?;
    let mut ta = overlay(&common, &t_opts);
    ta.insert("new_head".into(), Dynamic::from(true));
    let mut out = train(ctx, &mid, target, &ta)?;
    out.name = format!("{}+{}+{}", m.name, inter.name, target.name);
    Ok(out)
}

/// `sampling`: "uniform", "proportional", or #{cap: N} / #{temperature: T, cap: N}.
fn sampling(v: Option<Dynamic>) -> RResult<Sampling> {
    let Some(v) = v else {
        return Ok(Sampling::Proportional);
    };
    if let Some(s) = v.clone().try_cast::<String>() {
        return match s.as_str() {
            "uniform" => Ok(Sampling::Uniform),
            "proportional" => Ok(Sampling::Proportional),
            other => Err(rerr(format!("multitask: sampling `{other}`: use \"uniform\", \"proportional\", #{{cap: N}} or #{{temperature: T, cap: N}}"))),
        };
    }
    let m = v
        .clone()
        .try_cast::<Map>()
        .ok_or_else(|| rerr("multitask: `sampling` takes a string or a map"))?;
    crate::script::options::check_keys("multitask sampling", &m, &["cap", "temperature"])?;
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
                    v.type_name()
                ))
            })
        })
        .collect::<RResult<_>>()?;
    if ts.is_empty() {
        return Err(rerr("multitask: no tasks"));
    }
    let mut opts = opts.clone();
    let sampling = sampling(opts.remove("sampling"))?;
    let r = settings("multitask options (training keys and `sampling`)", m, &opts)?;
    let mut bar = ctx.progress("multitask");
    let data: Vec<(String, Vec<crate::tasks::Dataset>)> = ts
        .iter()
        .map(|t| (t.name.clone(), t.parts.as_ref().clone()))
        .collect();
    let (model, report) = engine_bridge::multitask(
        &m.model, &data, &sampling, &r.run, r.limit, &mut *bar, &CANCEL,
    )
    .map_err(|e| rerr(format!("multitask: {e}")))?;
    if report.cancelled {
        return Err(interrupted("multitask"));
    }
    let names: Vec<String> = ts.iter().map(|t| t.name.clone()).collect();
    Ok(ModelValue {
        model: Arc::new(model),
        name: format!("{}+mix({})", m.name, names.join(",")),
        pretrained: false,
        optimizer: report.optimizer.clone(),
    })
}

/// `evaluate(model, task, opts)`.
pub fn evaluate(ctx: &Ctx, m: &ModelValue, t: &TaskValue, a: &EvalArgs) -> RResult<Scores> {
    if m.pretrained {
        return Err(rerr(format!(
            "evaluate: `{}` is a pretrained checkpoint without a trained head; train it first",
            m.name
        )));
    }
    let mut run = RunOptions::default();
    run.max_length = a
        .max_length
        .unwrap_or(256)
        .min(m.model.config().max_sequence_length());
    run.batch_size = a.batch_size.unwrap_or(64).max(1);
    let mut by_lang = std::collections::BTreeMap::new();
    let mut metric = String::new();
    for ds in t.parts.iter() {
        let mut bar = ctx.progress(&format!("eval {}", t.key(ds)));
        let e = engine_bridge::evaluate(&m.model, ds, &run, a.limit, &mut *bar, &CANCEL).map_err(
            |e| {
                if crate::script::context::cancelled() {
                    interrupted("evaluate")
                } else {
                    rerr(format!("evaluate on {}: {e}", ds.name()))
                }
            },
        )?;
        metric = e.metric.clone();
        by_lang.insert(
            t.key(ds),
            LangScore {
                value: e.score,
                n: e.n,
                runs: vec![],
                correct: if e.metric.contains("accuracy") {
                    vec![e.correct()]
                } else {
                    vec![]
                },
            },
        );
    }
    Ok(Scores {
        label: m.name.clone(),
        task: t.name.clone(),
        split: t.split.clone(),
        metric,
        by_lang,
    })
}

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
