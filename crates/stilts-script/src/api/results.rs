//! Results: indexing, means over seeds, comparisons with intervals, tables,
//! `show`, and saving/loading as JSON.

use super::doc::{entry, ApiDoc};
use std::rc::Rc;

use rhai::{Array, CustomType, Dynamic, Engine, Map, TypeBuilder};

use super::{rerr, RResult};
use crate::context::{Ctx, Item};
use crate::values::{Comparison, ModelValue, Scores, TableValue, TaskValue};

impl CustomType for Scores {
    fn build(mut b: TypeBuilder<Self>) {
        b.with_name("Result")
            .with_get("avg", |r: &mut Self| r.avg())
            .with_get("languages", |r: &mut Self| {
                r.by_lang
                    .keys()
                    .cloned()
                    .map(Dynamic::from)
                    .collect::<Array>()
            })
            .with_get("label", |r: &mut Self| r.label.clone())
            .with_get("metric", |r: &mut Self| r.metric.clone())
            .with_get("params", |r: &mut Self| match r.params {
                Some(p) => Dynamic::from(p as i64),
                None => Dynamic::UNIT,
            })
            .with_get("model_dir", |r: &mut Self| -> RResult<Dynamic> {
                match r.model_dirs.as_slice() {
                    [] => Ok(Dynamic::UNIT),
                    [one] => Ok(Dynamic::from(one.clone())),
                    many => Err(rerr(format!(
                        "`{}` is the mean of {} conditions, each with its model; take model_dir of one seed's Result",
                        r.label,
                        many.len()
                    ))),
                }
            })
            .with_get("cells", |r: &mut Self| {
                r.cells
                    .iter()
                    .cloned()
                    .map(Dynamic::from)
                    .collect::<Array>()
            })
            .with_indexer_get(|r: &mut Self, lang: &str| -> RResult<f64> {
                if lang == "avg" {
                    return Ok(r.avg());
                }
                r.by_lang.get(lang).map(|s| s.value).ok_or_else(|| {
                    rerr(format!(
                        "no score for `{lang}`; this result has: {}",
                        r.by_lang.keys().cloned().collect::<Vec<_>>().join(", ")
                    ))
                })
            });
    }
}

impl CustomType for Comparison {
    fn build(mut b: TypeBuilder<Self>) {
        b.with_name("Comparison")
            .with_get("avg", |c: &mut Self| c.avg.delta)
            .with_get("languages", |c: &mut Self| {
                c.by_lang
                    .keys()
                    .cloned()
                    .map(Dynamic::from)
                    .collect::<Array>()
            })
            .with_indexer_get(|c: &mut Self, lang: &str| -> RResult<f64> {
                if lang == "avg" {
                    return Ok(c.avg.delta);
                }
                c.by_lang.get(lang).map(|d| d.delta).ok_or_else(|| {
                    rerr(format!(
                        "no delta for `{lang}`; this comparison has: {}",
                        c.by_lang.keys().cloned().collect::<Vec<_>>().join(", ")
                    ))
                })
            });
    }
}

impl CustomType for TableValue {
    fn build(mut b: TypeBuilder<Self>) {
        b.with_name("Table");
    }
}

/// A table from a Result, Comparison, Table, map of label → Result, or
/// array of maps; a map's keys in sorted order (see [`to_table_with`]).
pub fn to_table(v: &Dynamic) -> RResult<TableValue> {
    to_table_with(v, &|m: &Map| m.keys().map(|k| k.to_string()).collect())
}

/// The column order of a table made in a script: `columns` when given
/// (each must be a key), else the order the script's map literal wrote.
fn script_order(ctx: &Ctx, columns: Option<Vec<String>>) -> impl Fn(&Map) -> Vec<String> + '_ {
    move |m: &Map| match &columns {
        Some(c) => c.clone(),
        None => ctx.key_order(m),
    }
}

/// [`to_table`] with the keys of maps in `order` (columns of a map of
/// Results, columns of an array of row maps).
pub fn to_table_with(v: &Dynamic, order: &dyn Fn(&Map) -> Vec<String>) -> RResult<TableValue> {
    if let Some(r) = v.clone().try_cast::<Scores>() {
        return Ok(r.table());
    }
    if let Some(c) = v.clone().try_cast::<Comparison>() {
        return Ok(c.table());
    }
    if let Some(t) = v.clone().try_cast::<TableValue>() {
        return Ok(t);
    }
    if let Some(m) = v.clone().try_cast::<Map>() {
        let mut cols: Vec<(String, Scores)> = vec![];
        for k in order(&m) {
            let x = m.get(k.as_str()).ok_or_else(|| {
                rerr(format!(
                    "table: column `{k}` is not a key of the map; its keys: {}",
                    m.keys()
                        .map(|k| k.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            match x.clone().try_cast::<Scores>() {
                Some(s) => cols.push((k.to_string(), s)),
                None => return Err(rerr(format!("table(map): `{k}` is {}, not a Result; a map makes a table of Results, one column each", crate::values::type_name(x)))),
            }
        }
        let mut langs: Vec<String> = vec![];
        for (_, s) in &cols {
            for l in s.by_lang.keys() {
                if !langs.contains(l) {
                    langs.push(l.clone());
                }
            }
        }
        langs.sort();
        let mut header = vec!["language".to_string()];
        header.extend(cols.iter().map(|(k, _)| k.clone()));
        // Examples per cell: one `n` column when every column scored the
        // same number per language, else `n` in each cell.
        let n_of = |s: &Scores, l: &str| -> Option<usize> {
            if l == "avg" {
                (!s.by_lang.is_empty()).then(|| s.by_lang.values().map(|x| x.n).sum())
            } else {
                s.by_lang.get(l).map(|x| x.n)
            }
        };
        let same_n = langs.iter().map(String::as_str).chain(["avg"]).all(|l| {
            let ns: Vec<Option<usize>> = cols.iter().map(|(_, s)| n_of(s, l)).collect();
            ns.windows(2).all(|w| w[0] == w[1])
        });
        if same_n {
            header.push("n".into());
        }
        // Each cell: the mean over seeds and its 95% interval (the protocol's
        // seed-aware estimate), when the Result has one.
        let cell = |s: &Scores, lang: &str| -> (String, Option<&'static str>, usize) {
            let value = if lang == "avg" {
                Some(s.avg())
            } else {
                s.by_lang.get(lang).map(|x| x.value)
            };
            let Some(value) = value else {
                return ("—".into(), None, 0);
            };
            // A cell whose model learned nothing says so.
            let mark = if lang == "avg" {
                s.avg_collapse_mark()
            } else {
                s.by_lang
                    .get(lang)
                    .map(|x| x.collapse_mark())
                    .unwrap_or_default()
            };
            match s.estimate(lang) {
                Some(e) => match e.ci {
                    Some((lo, hi)) => (
                        format!("{value:.1} [{lo:.1}, {hi:.1}]{mark}"),
                        e.method.map(|m| m.describe()),
                        e.seeds,
                    ),
                    None => (format!("{value:.1}{mark}"), None, e.seeds),
                },
                None => (format!("{value:.1}{mark}"), None, 1),
            }
        };
        let mut methods = vec![];
        let mut seeds = vec![];
        let mut rows: Vec<Vec<String>> = vec![];
        let mut csv_header = vec!["language".to_string()];
        for (k, _) in &cols {
            csv_header.extend([
                k.clone(),
                format!("{k}_ci_lo"),
                format!("{k}_ci_hi"),
                format!("{k}_n"),
            ]);
        }
        let mut csv_rows: Vec<Vec<String>> = vec![];
        for l in langs.iter().map(String::as_str).chain(["avg"]) {
            let mut c = vec![l.to_string()];
            for (_, s) in &cols {
                let value = if l == "avg" {
                    (!s.by_lang.is_empty()).then(|| s.avg())
                } else {
                    s.by_lang.get(l).map(|x| x.value)
                };
                let ci = value.and_then(|_| s.estimate(l)).and_then(|e| e.ci);
                let n = if l == "avg" {
                    Some(s.by_lang.values().map(|x| x.n).sum::<usize>())
                } else {
                    s.by_lang.get(l).map(|x| x.n)
                };
                c.push(crate::values::csv_num(value));
                c.extend(crate::values::csv_ci(ci));
                c.push(n.map(|n| n.to_string()).unwrap_or_default());
            }
            csv_rows.push(c);
            let mut row = vec![l.to_string()];
            for (_, s) in &cols {
                let (text, m, k) = cell(s, l);
                if let Some(m) = m {
                    if !methods.contains(&m) {
                        methods.push(m);
                    }
                }
                if !seeds.contains(&k) {
                    seeds.push(k);
                }
                row.push(if same_n {
                    text
                } else {
                    match n_of(s, l) {
                        Some(n) => format!("{text} (n {n})"),
                        None => text,
                    }
                });
            }
            if same_n {
                row.push(
                    cols.first()
                        .and_then(|(_, s)| n_of(s, l))
                        .map(|n| n.to_string())
                        .unwrap_or_default(),
                );
            }
            rows.push(row);
        }
        let metric = cols
            .first()
            .map(|(_, s)| s.metric.clone())
            .unwrap_or_default();
        seeds.sort_unstable();
        let seeds = seeds
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(" or ");
        let what = if seeds == "1" {
            format!("{metric}, one seed")
        } else {
            format!("{metric}, mean of {seeds} seeds")
        };
        let title = match methods.as_slice() {
            [] => format!("{what}; no interval"),
            [m] => format!("{what}; {m}"),
            many => format!("{what}; intervals differ by column: {}", many.join("; ")),
        };
        return Ok(TableValue {
            title,
            header,
            rows,
            csv_header,
            csv_rows,
        });
    }
    if let Some(a) = v.clone().try_cast::<Array>() {
        let mut header: Vec<String> = vec![];
        let mut maps = vec![];
        for x in &a {
            let m = x.clone().try_cast::<Map>().ok_or_else(|| {
                rerr(format!(
                    "table(array): rows must be maps, not {}",
                    crate::values::type_name(x)
                ))
            })?;
            for k in order(&m) {
                if !header.contains(&k) {
                    header.push(k);
                }
            }
            maps.push(m);
        }
        let cell = |d: Option<&Dynamic>| match d {
            None => String::new(),
            Some(d) if d.is_float() => format!("{:.2}", d.as_float().unwrap_or(f64::NAN)),
            Some(d) => d.to_string(),
        };
        let raw = |d: Option<&Dynamic>| match d {
            None => String::new(),
            Some(d) if d.is_float() => crate::values::csv_num(d.as_float().ok()),
            Some(d) => d.to_string(),
        };
        let rows = maps
            .iter()
            .map(|m| header.iter().map(|h| cell(m.get(h.as_str()))).collect())
            .collect();
        let csv_rows = maps
            .iter()
            .map(|m| header.iter().map(|h| raw(m.get(h.as_str()))).collect())
            .collect();
        return Ok(TableValue {
            title: String::new(),
            csv_header: header.clone(),
            header,
            rows,
            csv_rows,
        });
    }
    Err(rerr(format!("table: cannot make a table of {}; give a Result, Comparison, map of Results or array of maps", crate::values::type_name(v))))
}

/// A readable summary of any value (what the REPL prints and `show` shows).
pub fn summary(v: &Dynamic) -> String {
    if let Ok(t) = to_table(v) {
        if !v.is::<Map>() && !v.is::<Array>() {
            return t.to_string();
        }
    }
    if let Some(m) = v.clone().try_cast::<ModelValue>() {
        return m.to_string();
    }
    if let Some(t) = v.clone().try_cast::<TaskValue>() {
        return t.to_string();
    }
    if v.is_string() {
        return v.clone().into_string().unwrap_or_default();
    }
    v.to_string()
}

/// Values as JSON (results, comparisons, tables, plain data), tagged so
/// [`from_json`] restores the type.
pub fn to_json(v: &Dynamic) -> RResult<serde_json::Value> {
    use serde_json::json;
    if let Some(r) = v.clone().try_cast::<Scores>() {
        return Ok(json!({"$type": "Result", "value": r}));
    }
    if let Some(c) = v.clone().try_cast::<Comparison>() {
        return Ok(json!({"$type": "Comparison", "value": c}));
    }
    if let Some(t) = v.clone().try_cast::<TableValue>() {
        return Ok(json!({"$type": "Table", "value": t}));
    }
    if v.is::<ModelValue>() {
        return Err(rerr("a model cannot be stored as JSON: save it with m.save(dir) and load it with model(dir)"));
    }
    if v.is::<TaskValue>() {
        return Err(rerr(
            "a task cannot be stored as JSON: load it again with task(...)",
        ));
    }
    if let Some(a) = v.clone().try_cast::<Array>() {
        return Ok(serde_json::Value::Array(
            a.iter().map(to_json).collect::<RResult<_>>()?,
        ));
    }
    if let Some(m) = v.clone().try_cast::<Map>() {
        let mut o = serde_json::Map::new();
        for (k, x) in &m {
            o.insert(k.to_string(), to_json(x)?);
        }
        return Ok(serde_json::Value::Object(o));
    }
    serde_json::to_value(v).map_err(rerr)
}

/// The value `to_json` wrote: a `$type`-tagged object back as a Result,
/// Comparison or Table, other JSON as rhai maps, arrays, numbers, strings,
/// bools and `()` for null.
pub fn from_json(j: &serde_json::Value) -> RResult<Dynamic> {
    use serde_json::Value;
    match j {
        Value::Object(o) if o.get("$type").is_some() => {
            let ty = o["$type"].as_str().unwrap_or("");
            let val = o.get("value").cloned().unwrap_or(Value::Null);
            match ty {
                "Result" => Ok(Dynamic::from(
                    serde_json::from_value::<Scores>(val).map_err(rerr)?,
                )),
                "Comparison" => Ok(Dynamic::from(
                    serde_json::from_value::<Comparison>(val).map_err(rerr)?,
                )),
                "Table" => Ok(Dynamic::from(
                    serde_json::from_value::<TableValue>(val).map_err(rerr)?,
                )),
                other => Err(rerr(format!("unknown stored type `{other}`"))),
            }
        }
        Value::Object(o) => {
            let mut m = Map::new();
            for (k, v) in o {
                m.insert(k.into(), from_json(v)?);
            }
            Ok(Dynamic::from(m))
        }
        Value::Array(a) => Ok(Dynamic::from(
            a.iter().map(from_json).collect::<RResult<Array>>()?,
        )),
        Value::Number(n) if n.is_i64() => Ok(Dynamic::from(n.as_i64().unwrap_or(0))),
        Value::Number(n) => Ok(Dynamic::from(n.as_f64().unwrap_or(f64::NAN))),
        Value::String(s) => Ok(Dynamic::from(s.clone())),
        Value::Bool(b) => Ok(Dynamic::from(*b)),
        Value::Null => Ok(Dynamic::UNIT),
    }
}

/// `show(value)`: print and record.
pub fn show(ctx: &Ctx, v: &Dynamic) -> RResult<()> {
    if !ctx.writes() {
        return Ok(());
    }
    let text = summary(v);
    println!("{text}");
    let mut rec = ctx.recorder.borrow_mut();
    match to_table(v) {
        Ok(t) if !v.is::<Map>() && !v.is::<Array>() || v.is::<TableValue>() => {
            rec.push(Item::Table(t));
            if let Ok(j) = to_json(v) {
                if v.is::<Scores>() || v.is::<Comparison>() {
                    rec.push(Item::Data(String::new(), j));
                }
            }
        }
        _ => rec.text(&text),
    }
    Ok(())
}

fn write_value(ctx: &Ctx, v: &Dynamic, path: &str) -> RResult<()> {
    let p = std::path::Path::new(path);
    if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| rerr(format!("{}: {e}", dir.display())))?;
    }
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    let text = match ext {
        "csv" => to_table_with(v, &script_order(ctx, None))?.csv(),
        "md" => to_table_with(v, &script_order(ctx, None))?.markdown(),
        "tex" => to_table_with(v, &script_order(ctx, None))?.latex(),
        "json" => serde_json::to_string_pretty(&to_json(v)?).map_err(rerr)?,
        other => {
            return Err(rerr(format!(
                "{path}: unknown extension `{other}`; use .json, .csv, .md or .tex"
            )))
        }
    };
    stilts_model::util::write_atomic(p, text.as_bytes()).map_err(rerr)
}

/// The documentation of what this file registers: what `:help`, tab
/// completion, `check` and the README's API reference read (collected by
/// `docs::api`). Every entry's example runs in a test (`api_examples.rs`).
pub const DOCS: &[ApiDoc] = &[
    entry("results", "mean", "mean(results: array) -> Result", "The mean of several runs (seeds) per language; all must cover the same languages. Its table shows the mean, the standard deviation over seeds, a 95% interval that includes seed variance (t over seeds with the test set's bootstrap variance added) and, beside it, the interval over examples alone. Intervals are cut to [0, 100] (with 2 seeds, t has 1 degree of freedom and the interval is very wide: use 3 or more).", "let r = mean([r1, r2, r3]);"),
    entry("results", "compare", "compare(base: Result, new: Result) -> Comparison", "The gain of `new` over `base` per language and on average, paired by seed and by example, with a 95% interval that includes seed variance (t over the per-seed gains with the paired example-bootstrap variance added; with one seed each: the paired bootstrap over examples, and the table says seed variance is not in it). Both must cover the same languages.", "let c = compare(base, stilts); c[\"sw\"]"),
    entry("results", "named", "Result.named(label: string) -> Result", "A copy with another label (the column name in tables).", "r.named(\"MNLI only\")"),
    entry("results", "avg", "Result.avg", "The mean over languages.", "r.avg"),
    entry("results", "languages", "Result.languages", "The languages scored.", "r.languages"),
    entry("results", "label", "Result.label", "What was evaluated.", "r.label"),
    entry("results", "metric", "Result.metric", "The metric's name.", "r.metric"),
    entry("results", "params", "Result.params", "The parameters of the model that made it (encoder and head), where stilts knows them (a model it loaded, made or cut; a condition's model); () otherwise. plot_gain, plot_scaling and modulation put it on the size axis.", "r.params"),
    entry("results", "cells", "Result.cells", "The store keys of the conditions behind a Result made by condition() (one per seed; a mean has each of its seeds'), as `stilts plan` and `run --only` take them: plot_training draws one; empty for other Results.", "r.cells"),
    entry("results", "model_dir", "Result.model_dir", "The folder of the final model of a condition that keeps it (`keep: \"final\"` or `\"both\"`), in Hugging Face layout: `model(dir)` loads it, `stilts predict` reads it; () when none was kept; an error for a mean of several.", "r.model_dir"),
    entry("results", "to_map", "Result.to_map() -> map", "Language → score.", "r.to_map()"),
    entry("results", "ci", "Comparison.ci(lang: string) -> array", "The 95% interval of the delta [lo, hi], to six decimals (empty when it cannot be estimated); `avg` for the average.", "c.ci(\"sw\")"),
    entry("results", "save_results", "save_results(value, path: string)", "Writes a Result, Comparison, Table or any map/array as JSON (or a table as .csv/.md/.tex).", "save_results(r, \"runs/xnli.json\");"),
    entry("results", "load_results", "load_results(path: string) -> Result | Comparison | Table | any", "Reads what save_results wrote, as it was: a Result, a Comparison or a Table; other values as maps, arrays and numbers.", "let r = load_results(\"runs/xnli.json\");"),
    entry("tables and plots", "table", "table(value) -> Table", "A table of a Result, a Comparison, a map of label → Result (a column each, in the order the map literal wrote them, with an `n` column of examples per cell), or an array of maps (a row each, columns in the order written). Each table says which interval it shows.", "table(#{base: r0, stilts: r1})"),
    entry("tables and plots", "table", "table(value, opts: map) -> Table", "A table with options: `columns` (the keys of a map of Results, or of the row maps, in the order wanted; only those).", "table(#{base: r0, stilts: r1}, #{columns: [\"stilts\", \"base\"]})"),
    entry("tables and plots", "show", "show(value)", "Prints a readable summary (tables for results) and adds it to the run's report.", "show(compare(base, s));"),
    entry("tables and plots", "markdown", "Table.markdown() -> string", "The table in Markdown.", "t.markdown()"),
    entry("tables and plots", "latex", "Table.latex() -> string", "The table in LaTeX for a paper: a `table` float with the title as caption and a booktabs `tabular` (`\\usepackage{booktabs}`), the first column left-aligned, the rest right-aligned; special characters escaped and the symbols the tables print (Δ, −, ±, →, ×) as math commands, so it compiles as it is.", "t.latex()"),
    entry("tables and plots", "csv", "Table.csv() -> string", "The table as CSV, in numbers: a value per cell (no rounding to the display's one decimal, no `+`), an interval as two columns (`ci_lo`, `ci_hi`), an empty cell where there is none.", "t.csv()"),
    entry("tables and plots", "save", "Table.save(path: string)", "Writes the table as .csv, .md, .tex (LaTeX, booktabs) or .json (by extension).", "t.save(\"table.csv\");"),
];

/// Registers the `Result`, `Comparison` and `Table` types and the functions
/// on them: `mean`, `compare`, `named`, `to_map`, `ci`, `table`, `markdown`,
/// `csv`, `save`, `show`, `save_results` and `load_results`.
pub fn register(engine: &mut Engine, ctx: &Rc<Ctx>) {
    engine
        .build_type::<Scores>()
        .build_type::<Comparison>()
        .build_type::<TableValue>();
    engine.register_fn("mean", |a: Array| -> RResult<Scores> {
        let rs: Vec<Scores> = a
            .iter()
            .map(|v| {
                v.clone().try_cast::<Scores>().ok_or_else(|| {
                    rerr(format!(
                        "mean: expected Results, got {}",
                        crate::values::type_name(v)
                    ))
                })
            })
            .collect::<RResult<_>>()?;
        Scores::mean_of(&rs).map_err(rerr)
    });
    engine.register_fn("compare", |a: Scores, b: Scores| {
        Comparison::new(&a, &b).map_err(rerr)
    });
    engine.register_fn("named", |r: &mut Scores, label: &str| {
        let mut r = r.clone();
        r.label = label.to_string();
        r
    });
    engine.register_fn("to_map", |r: &mut Scores| -> Map {
        r.by_lang
            .iter()
            .map(|(k, v)| (k.into(), Dynamic::from(v.value)))
            .collect()
    });
    engine.register_fn("ci", |c: &mut Comparison, lang: &str| -> RResult<Array> {
        let d = if lang == "avg" {
            Some(&c.avg)
        } else {
            c.by_lang.get(lang)
        };
        let d = d.ok_or_else(|| {
            rerr(format!(
                "no delta for `{lang}`; this comparison has: {}, avg",
                c.by_lang.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
        // Six decimals: the bootstrap's float noise (15.062499999999943) is
        // not part of the interval.
        let r = |x: f64| (x * 1e6).round() / 1e6;
        Ok(d.ci
            .map(|(l, h)| vec![Dynamic::from(r(l)), Dynamic::from(r(h))])
            .unwrap_or_default())
    });
    let c = ctx.clone();
    engine.register_fn("table", move |v: Dynamic| {
        to_table_with(&v, &script_order(&c, None))
    });
    let c = ctx.clone();
    engine.register_fn("table", move |v: Dynamic, opts: Map| -> RResult<TableValue> {
        crate::options::check_keys("table options", &opts, &["columns"])?;
        let columns = match opts.get("columns") {
            None => None,
            Some(a) => Some(
                a.clone()
                    .try_cast::<Array>()
                    .ok_or_else(|| rerr("table: `columns` takes an array of key names"))?
                    .into_iter()
                    .map(|x| x.into_string().map_err(|t| rerr(format!("table: `columns` holds names (strings), not {t}"))))
                    .collect::<RResult<Vec<String>>>()?,
            ),
        };
        if !(v.is::<Map>() || v.is::<Array>()) && columns.is_some() {
            return Err(rerr("table: `columns` orders a map of Results or an array of row maps; a Result or Comparison has fixed columns"));
        }
        to_table_with(&v, &script_order(&c, columns))
    });
    engine.register_fn("markdown", |t: &mut TableValue| t.markdown());
    engine.register_fn("csv", |t: &mut TableValue| t.csv());
    engine.register_fn("latex", |t: &mut TableValue| t.latex());
    let c = ctx.clone();
    engine.register_fn("save", move |t: &mut TableValue, path: &str| {
        c.writable(path).map_err(rerr)?;
        if !c.writes() {
            return Ok(());
        }
        write_value(&c, &Dynamic::from(t.clone()), path)
    });
    let c = ctx.clone();
    engine.register_fn("show", move |v: Dynamic| show(&c, &v));
    let c = ctx.clone();
    engine.register_fn("save_results", move |v: Dynamic, path: &str| {
        c.writable(path).map_err(rerr)?;
        if !c.writes() {
            return Ok(());
        }
        write_value(&c, &v, path)
    });
    engine.register_fn("load_results", |path: &str| -> RResult<Dynamic> {
        let text = std::fs::read_to_string(path).map_err(|e| rerr(format!("{path}: {e}")))?;
        let j: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| rerr(format!("{path}: not JSON ({e})")))?;
        from_json(&j)
    });
    for ty in ["Result", "Comparison", "Table"] {
        let _ = ty;
    }
    engine.register_fn("to_string", |r: &mut Scores| r.table().to_string());
    engine.register_fn("to_debug", |r: &mut Scores| r.table().to_string());
    engine.register_fn("to_string", |r: &mut Comparison| r.table().to_string());
    engine.register_fn("to_debug", |r: &mut Comparison| r.table().to_string());
    engine.register_fn("to_string", |r: &mut TableValue| r.to_string());
    engine.register_fn("to_debug", |r: &mut TableValue| r.to_string());
}
