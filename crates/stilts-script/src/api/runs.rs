//! Running experiments: `--set` parameters, early checks, grids, the
//! memo store that lets a grid reuse finished runs, the report.

use super::doc::{entry, ApiDoc};
use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, FnPtr, Map, NativeCallContext};

use super::results::{from_json, to_json};
use super::{rerr, RResult};
use crate::context::{Ctx, Item};
use crate::values::{ModelValue, TaskValue};

/// All combinations of the axes (a map of name → array), as maps; the
/// first axis varies slowest.
pub fn grid(axes: &Map) -> RResult<Array> {
    let mut out: Vec<Map> = vec![Map::new()];
    for (k, v) in axes {
        let vals = match v.clone().try_cast::<Array>() {
            Some(a) => a,
            None => vec![v.clone()],
        };
        let mut next = vec![];
        for m in &out {
            for x in &vals {
                let mut m = m.clone();
                m.insert(k.clone(), x.clone());
                next.push(m);
            }
        }
        out = next;
    }
    Ok(out.into_iter().map(Dynamic::from).collect())
}

/// The store file of a memo key.
/// The results store of this script: `STORE/runs.jsonl` (`store(dir)`
/// sets STORE, default `runs/`).
pub fn results_store(ctx: &Ctx) -> stilts_protocol::store::Store {
    stilts_protocol::store::Store::new(ctx.store_dir.borrow().join("runs.jsonl"))
}

/// A memo key as JSON: models and tasks in it stand for their
/// fingerprints (what their numbers depend on), so a changed data file or
/// model changes the key; everything else as `to_json` writes it.
pub fn key_json(v: &Dynamic) -> RResult<serde_json::Value> {
    if let Some(m) = v.clone().try_cast::<ModelValue>() {
        return Ok(serde_json::json!({"$model": m.fingerprint}));
    }
    if let Some(t) = v.clone().try_cast::<TaskValue>() {
        return Ok(
            serde_json::json!({"$task": t.name, "split": t.split, "fingerprint": t.fingerprint().map_err(rerr)?}),
        );
    }
    if let Some(a) = v.clone().try_cast::<Array>() {
        return Ok(serde_json::Value::Array(
            a.iter().map(key_json).collect::<RResult<_>>()?,
        ));
    }
    if let Some(m) = v.clone().try_cast::<Map>() {
        let mut o = serde_json::Map::new();
        for (k, x) in &m {
            o.insert(k.to_string(), key_json(x)?);
        }
        return Ok(serde_json::Value::Object(o));
    }
    to_json(v)
}

fn memo(ctx: &Ctx, nctx: &NativeCallContext, key: Dynamic, f: FnPtr) -> RResult<Dynamic> {
    let k = serde_json::json!({ "memo": key_json(&key)? });
    let store = results_store(ctx);
    if let Some(v) = store.get_value(&k).map_err(rerr)? {
        ctx.note(&format!(
            "memo: reusing {} from {}",
            serde_json::to_string(&k["memo"]).unwrap_or_default(),
            store.path().display()
        ));
        return from_json(&v);
    }
    if !ctx.writes() {
        // Planning, checking or one cell's job: its values are stand-ins,
        // never kept.
        return f.call_within_context(nctx, ());
    }
    // One process computes a key at a time: a second waits, then reuses.
    let key = stilts_protocol::store::config_key(&k);
    let _claim = store
        .claim(&key, &mut |pid| {
            ctx.note(&format!(
                "memo: process {pid} is computing this key; waiting for it"
            ))
        })
        .map_err(rerr)?;
    if let Some(v) = store.get_value(&k).map_err(rerr)? {
        ctx.note("memo: reusing what the other process computed");
        return from_json(&v);
    }
    let v: Dynamic = f.call_within_context(nctx, ())?;
    store.put_value(&k, &to_json(&v)?).map_err(rerr)?;
    Ok(v)
}

/// The documentation of what this file registers: what `:help`, tab
/// completion, `check` and the README's API reference read (collected by
/// `docs::api`). Every entry's example runs in a test (`api_examples.rs`).
pub const DOCS: &[ApiDoc] = &[
    entry("runs", "param", "param(name: string, default) -> any", "The value given with `--set name=value`, else `default`. A `--set` name the script never reads is warned about (with the closest name it does read).", "let seeds = param(\"seeds\", [1, 2, 3]);"),
    entry("runs", "params", "params() -> map", "All `--set` values.", "params()"),
    entry("runs", "exists", "exists(path: string) -> bool", "Does the file or folder exist?", "exists(\"data/xnli\")"),
    entry("runs", "require", "require(paths: map)", "Fails early, listing every entry of name → path that does not exist.", "require(#{xnli: xnli_dir, mnli: mnli_dir});"),
    entry("runs", "model_available", "model_available(spec: string) -> bool", "Can model(spec) find the model (a directory, or the HF cache), without loading it?", "model_available(\"xlmr-xl\")"),
    entry("runs", "grid", "grid(axes: map) -> array", "All combinations of the axes' values, as maps (sizes × tasks × seeds).", "for g in grid(#{size: [\"xlmr-base\"], seed: [1, 2]}) { print(g.size); }"),
    entry("runs", "memo", "memo(key, f: Fn) -> any", "Runs f() once per key and keeps its result (a Result, Comparison, number, map...) in the store; later runs reuse it. Models and tasks in the key stand for their fingerprints, so a changed data file or model changes the key: put what f() reads in the key (condition() does this for you).", "let r = memo(#{size: \"xlmr-base\", seed: 1}, || evaluate(train(m, mnli), xnli));"),
    entry("runs", "store", "store(dir: string)", "Where memo keeps finished runs (default: runs/).", "store(\"runs/size_sweep\");"),
    entry("runs", "report_dir", "report_dir() -> string", "The report folder of this run (empty when none is written).", "report_dir()"),
    entry("runs", "note", "note(markdown: string)", "Adds Markdown text to the report (printed too).", "note(\"Three seeds per cell.\");"),
    entry("runs", "device", "device() -> string", "The device models go to (--device).", "device()"),
];

/// Registers what a run asks of its surroundings: `param`, `params`,
/// `exists`, `require`, `grid`, `model_available`, `memo`, `store`,
/// `report_dir`, `note`, `device`, and the cell marker `stilts_cell`.
pub fn register(engine: &mut Engine, ctx: &Rc<Ctx>) {
    let c = ctx.clone();
    engine.register_fn("param", move |name: &str, default: Dynamic| {
        match c.settings.params.get(name) {
            // One value where the default is a list (`--set seeds=1` for
            // `param("seeds", [1, 2, 3])`): a list of that one value.
            Some(v) if default.is_array() && !v.is_array() && !v.is_unit() => {
                Dynamic::from_array(vec![v.clone()])
            }
            Some(v) => v.clone(),
            None => {
                if let Some(s) = default.clone().try_cast::<String>() {
                    c.defaults_used.borrow_mut().push((name.to_string(), s));
                }
                default
            }
        }
    });
    let c = ctx.clone();
    engine.register_fn("params", move || -> Map {
        c.settings
            .params
            .iter()
            .map(|(k, v)| (k.into(), v.clone()))
            .collect()
    });
    let c = ctx.clone();
    engine.register_fn("exists", move |p: &str| c.path(p).exists());
    let c = ctx.clone();
    engine.register_fn("require", move |paths: Map| -> RResult<()> {
        let missing: Vec<String> = paths
            .iter()
            .filter_map(|(k, v)| {
                let p = v.clone().into_string().unwrap_or_default();
                (!c.path(&p).exists()).then(|| format!("  {k}: {p}"))
            })
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(rerr(format!(
                "missing inputs ({} of {}):\n{}\ngive their locations with --set NAME=PATH",
                missing.len(),
                paths.len(),
                missing.join("\n")
            )))
        }
    });
    engine.register_fn("grid", |axes: Map| grid(&axes));
    let c = ctx.clone();
    engine.register_fn("model_available", move |spec: &str| {
        c.path(spec).join("config.json").is_file() || stilts_model::load::resolve(spec).is_ok()
    });
    let c = ctx.clone();
    engine.register_fn(
        "memo",
        move |nctx: NativeCallContext, key: Dynamic, f: FnPtr| memo(&c, &nctx, key, f),
    );
    let c = ctx.clone();
    engine.register_fn("store", move |dir: &str| -> RResult<()> {
        c.writable(dir).map_err(rerr)?;
        *c.store_dir.borrow_mut() = std::path::PathBuf::from(dir);
        Ok(())
    });
    let c = ctx.clone();
    engine.register_fn("report_dir", move || {
        c.report_dir
            .borrow()
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    });
    let c = ctx.clone();
    engine.register_fn("note", move |md: &str| {
        if !c.writes() {
            return;
        }
        println!("{md}");
        c.recorder.borrow_mut().push(Item::Text(format!("{md}\n")));
    });
    let c = ctx.clone();
    engine.register_fn("device", move || c.device_name());
    // Cell markers (`// %% title`) become calls of this; not part of the API.
    let c = ctx.clone();
    engine.register_fn("stilts_cell", move |title: &str| {
        c.recorder.borrow_mut().start_cell(title)
    });
}
