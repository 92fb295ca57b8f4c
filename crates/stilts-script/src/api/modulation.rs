//! `modulation` and `seeds_needed`: how the gain from intermediate training
//! changes with model size, and how many seeds a cell needs. This file
//! converts the `gains` map (task → size → Comparison, as `plot_gain` takes
//! it) into the protocol's [`stats::SizeGain`]s, calls
//! [`stats::modulation`], [`stats::holm`] and [`stats::seeds_needed`], and
//! lays the answers out as a Table and as one sentence a task for the
//! report.

use super::doc::{entry, ApiDoc};
use std::rc::Rc;

use rhai::{Engine, Map};

use super::plot::{gain_lines, GainLine};
use super::{rerr, RResult};
use crate::context::{Ctx, Item};
use crate::values::{csv_num, Comparison, TableValue};
use stilts_protocol::stats::{self, Contrast, Modulation, SizeGain};

/// The option keys of `modulation` and `seeds_needed` (what `stilts check`
/// checks too).
pub(crate) const OPTION_KEYS: &[&str] = &["params", "half_width", "languages"];

/// The options of `modulation` and `seeds_needed`.
struct Opts {
    params: Map,
    half_width: f64,
    languages: bool,
}

fn opts(who: &str, m: &Map, languages_default: bool) -> RResult<Opts> {
    crate::options::check_keys(&format!("{who} options"), m, OPTION_KEYS)?;
    let params = match m.get("params") {
        None => Map::new(),
        Some(v) => v.clone().try_cast::<Map>().ok_or_else(|| {
            rerr(format!(
                "{who}: `params` takes a map of size name → parameters"
            ))
        })?,
    };
    let half_width = match m.get("half_width") {
        None => 1.0,
        Some(v) => v
            .as_float()
            .or_else(|_| v.as_int().map(|i| i as f64))
            .ok()
            .filter(|x| *x > 0.0 && x.is_finite())
            .ok_or_else(|| {
                rerr(format!(
                    "{who}: `half_width` takes a positive number of points, e.g. 1.0"
                ))
            })?,
    };
    let languages = match m.get("languages") {
        None => languages_default,
        Some(v) => v.as_bool().map_err(|_| {
            rerr(format!(
                "{who}: `languages` takes true (a row per language too) or false (the average only)"
            ))
        })?,
    };
    Ok(Opts {
        params,
        half_width,
        languages,
    })
}

/// One language (or `avg`) of one task: the gain at each size (sizes in
/// the task's order, by parameters) and what the protocol says of them.
struct Row {
    lang: String,
    gains: Vec<SizeGain>,
    m: Modulation,
}

/// One intermediate task across sizes.
struct TaskRows {
    task: String,
    sizes: Vec<(String, f64, Comparison)>,
    rows: Vec<Row>,
}

/// The gains as the protocol takes them, per task and language (`avg`
/// last).
fn analyse(who: &str, lines: &[GainLine]) -> RResult<Vec<TaskRows>> {
    let mut out = vec![];
    for (task, sizes) in lines {
        let first = &sizes[0].2;
        let mut langs: Vec<String> = first.by_lang.keys().cloned().collect();
        for (s, _, c) in sizes {
            let l: Vec<String> = c.by_lang.keys().cloned().collect();
            if l != langs {
                return Err(rerr(format!(
                    "{who}: `{task}` covers [{}] at `{}` but [{}] at `{s}`; every size must be scored on the same languages",
                    langs.join(", "),
                    sizes[0].0,
                    l.join(", ")
                )));
            }
        }
        langs.push("avg".into());
        for (s, _, c) in sizes {
            if c.sides.is_none() {
                return Err(rerr(format!(
                    "{who}: `{task}`.`{s}` is a Comparison without its runs (saved by an older stilts); make it again with compare(base, new)"
                )));
            }
        }
        let mut rows = vec![];
        for lang in langs {
            // Each size's gain with the variance its `compare` reports.
            let gains: Vec<SizeGain> = sizes
                .iter()
                .map(|(_, _, c)| {
                    c.size_gain(&lang)
                        .unwrap_or_else(|| SizeGain::new(&[], &[], &[], &[]))
                })
                .collect();
            let pts: Vec<(f64, &SizeGain)> = sizes.iter().map(|x| x.1).zip(gains.iter()).collect();
            let m = stats::modulation(&pts);
            rows.push(Row { lang, gains, m });
        }
        out.push(TaskRows {
            task: task.clone(),
            sizes: sizes.clone(),
            rows,
        });
    }
    // One layout for the table: every task over the same sizes.
    let names = |t: &TaskRows| t.sizes.iter().map(|s| s.0.clone()).collect::<Vec<_>>();
    if let Some(t0) = out.first() {
        for t in &out[1..] {
            if names(t) != names(t0) {
                return Err(rerr(format!(
                    "{who}: `{}` has sizes [{}] but `{}` has [{}]; give every task the same sizes (one call per set of sizes)",
                    t0.task,
                    names(t0).join(", "),
                    t.task,
                    names(t).join(", ")
                )));
            }
        }
    }
    Ok(out)
}

fn signed(x: f64) -> String {
    format!("{x:+.1}")
}

fn with_ci(value: f64, ci: Option<(f64, f64)>) -> String {
    match ci {
        Some((l, h)) => format!("{value:+.1} [{l:.1}, {h:.1}]"),
        None => signed(value),
    }
}

fn contrast_cell(c: &Option<Contrast>) -> String {
    c.as_ref()
        .map(|c| with_ci(c.estimate, Some(c.ci)))
        .unwrap_or_else(|| "—".into())
}

/// A p-value as a table prints it: two significant digits, `<0.001` below.
fn fmt_p(p: f64) -> String {
    if p.is_nan() {
        "—".into()
    } else if p < 0.001 {
        "<0.001".into()
    } else if p < 0.01 {
        format!("{p:.3}")
    } else {
        format!("{p:.2}")
    }
}

/// The parameter count as a person reads it (`117.7M`).
fn fmt_params(p: f64) -> String {
    if p >= 1e9 {
        format!("{:.2}B", p / 1e9)
    } else if p >= 1e6 {
        format!("{:.1}M", p / 1e6)
    } else {
        format!("{:.0}k", p / 1e3)
    }
}

/// Seeds per cell for ±h: on the gain at every size (the most any size
/// asks), and on the difference between the largest and the smallest size.
fn needed(r: &Row, h: f64) -> (Option<usize>, Option<usize>) {
    let per: Vec<Option<usize>> = r
        .gains
        .iter()
        .map(|g| stats::seeds_needed(&[g], &[1.0], h))
        .collect();
    let gain = if per.iter().all(Option::is_some) {
        per.into_iter().flatten().max()
    } else {
        None
    };
    let n = r.gains.len();
    let diff = if n >= 2 {
        stats::seeds_needed(&[&r.gains[0], &r.gains[n - 1]], &[-1.0, 1.0], h)
    } else {
        None
    };
    (gain, diff)
}

fn fmt_needed(k: Option<usize>) -> String {
    k.map(|k| k.to_string()).unwrap_or_else(|| "—".into())
}

/// What the report says of one task, from its `avg` row: the gain at
/// each size, how it changes, the test and its Holm adjustment.
fn sentence(t: &TaskRows, r: &Row, holm_p: f64, tests: usize, h: f64) -> String {
    let what = t
        .sizes
        .first()
        .and_then(|s| s.2.sides.as_deref())
        .map(|(a, _)| format!(" ({} {})", a.task, a.split))
        .unwrap_or_default();
    let at: Vec<String> = t
        .sizes
        .iter()
        .map(|(s, _, c)| format!("{} at {s}", with_ci(c.avg.delta, c.avg.ci)))
        .collect();
    let mut s = format!("{}{what}: {}", t.task, at.join(", "));
    let n = t.sizes.len();
    let change = if n >= 3 {
        r.m.slope.as_ref().map(|c| {
            format!(
                "the gain changes by {} [{:.1}, {:.1}] points per 10× parameters",
                signed(c.estimate),
                c.ci.0,
                c.ci.1
            )
        })
    } else if n == 2 {
        r.m.vs_smallest[0].1.as_ref().map(|c| {
            format!(
                "the gain changes by {} [{:.1}, {:.1}] points from {} to {}",
                signed(c.estimate),
                c.ci.0,
                c.ci.1,
                t.sizes[0].0,
                t.sizes[1].0
            )
        })
    } else {
        None
    };
    match (change, &r.m.test) {
        (Some(c), Some(test)) => {
            s.push_str(&format!("; {c} (p = {}", fmt_p(test.p)));
            if tests > 1 {
                s.push_str(&format!(", Holm over {tests} tasks: {}", fmt_p(holm_p)));
            }
            s.push(')');
        }
        _ if n < 2 => s.push_str("; one size: nothing to say about size"),
        _ => s.push_str("; no interval for the change (one seed and no per-example scores)"),
    }
    let seeds = t.sizes.iter().map(|x| x.2.avg.seeds).min().unwrap_or(0);
    if seeds < 3 {
        let (_, d) = needed(r, h);
        match d {
            Some(k) if n >= 2 => s.push_str(&format!(
                "; with {seeds} seed{} a cell, its seed spread asks for {k} seeds a cell for ±{h} points on the change from {} to {}",
                if seeds == 1 { "" } else { "s" },
                t.sizes[0].0,
                t.sizes[n - 1].0
            )),
            _ if seeds <= 1 => s.push_str("; one seed a cell: seed variance is not in these intervals"),
            _ => {}
        }
    }
    s.push('.');
    s
}

/// `modulation(gains, opts)`: the table, and the sentences into the report.
fn modulation(ctx: &Ctx, gains: &Map, o: &Opts) -> RResult<TableValue> {
    let lines = gain_lines("modulation", ctx, gains, &o.params)?;
    let tasks = analyse("modulation", &lines)?;
    let h = o.half_width;
    let sizes: Vec<(String, f64)> = tasks[0]
        .sizes
        .iter()
        .map(|(s, p, _)| (s.clone(), *p))
        .collect();
    let n = sizes.len();
    // Holm over the tasks' tests on the average.
    let avg_p: Vec<f64> = tasks
        .iter()
        .map(|t| {
            t.rows
                .last()
                .and_then(|r| r.m.test.as_ref())
                .map_or(f64::NAN, |c| c.p)
        })
        .collect();
    let holm = stats::holm(&avg_p);
    let tests = avg_p.iter().filter(|p| !p.is_nan()).count();
    let mut header = vec!["task".to_string(), "language".to_string()];
    let mut csv_header = header.clone();
    for (s, _) in &sizes {
        header.push(format!("gain @{s}"));
        csv_header.extend([
            format!("gain_{s}"),
            format!("gain_{s}_ci_lo"),
            format!("gain_{s}_ci_hi"),
        ]);
    }
    let mut pairs: Vec<(usize, usize)> = (1..n).map(|s| (0, s)).collect();
    pairs.extend((2..n).map(|s| (s - 1, s)));
    for &(a, b) in &pairs {
        header.push(format!("Δ {}−{}", sizes[b].0, sizes[a].0));
        let k = format!("diff_{}_{}", sizes[b].0, sizes[a].0);
        csv_header.extend([
            k.clone(),
            format!("{k}_ci_lo"),
            format!("{k}_ci_hi"),
            format!("{k}_df"),
        ]);
    }
    if n >= 3 {
        header.push("slope per 10×".into());
        csv_header.extend(["slope", "slope_ci_lo", "slope_ci_hi", "slope_df"].map(String::from));
    }
    header.extend(["p".to_string(), "Holm p".to_string(), "seeds".to_string()]);
    header.push(format!("seeds for ±{h}: gain"));
    if n >= 2 {
        header.push(format!("seeds for ±{h}: Δ"));
    }
    csv_header.extend(["p", "holm_p", "seeds", "seeds_for_gain"].map(String::from));
    if n >= 2 {
        csv_header.push("seeds_for_diff".into());
    }
    let mut rows = vec![];
    let mut csv_rows = vec![];
    let mut methods: Vec<&'static str> = vec![];
    let mut sentences = vec![];
    for (ti, t) in tasks.iter().enumerate() {
        for r in &t.rows {
            let is_avg = r.lang == "avg";
            if !is_avg && !o.languages {
                continue;
            }
            let mut row = vec![t.task.clone(), r.lang.clone()];
            let mut csv = row.clone();
            for (_, _, c) in &t.sizes {
                let d = if is_avg { &c.avg } else { &c.by_lang[&r.lang] };
                row.push(with_ci(d.delta, d.ci));
                csv.push(csv_num(Some(d.delta)));
                csv.extend(crate::values::csv_ci(d.ci));
                if let Some(m) = d.method {
                    if !methods.contains(&m.describe()) {
                        methods.push(m.describe());
                    }
                }
            }
            let pair_contrast = |a: usize, b: usize| -> Option<Contrast> {
                if a == 0 {
                    r.m.vs_smallest
                        .iter()
                        .find(|x| x.0 == b)
                        .and_then(|x| x.1.clone())
                } else {
                    r.m.adjacent
                        .iter()
                        .find(|x| x.0 == b)
                        .and_then(|x| x.1.clone())
                }
            };
            for &(a, b) in &pairs {
                let c = pair_contrast(a, b);
                row.push(contrast_cell(&c));
                csv.push(csv_num(c.as_ref().map(|c| c.estimate)));
                csv.extend(crate::values::csv_ci(c.as_ref().map(|c| c.ci)));
                csv.push(csv_num(c.as_ref().map(|c| c.df)));
            }
            if n >= 3 {
                row.push(contrast_cell(&r.m.slope));
                let s = r.m.slope.as_ref();
                csv.push(csv_num(s.map(|c| c.estimate)));
                csv.extend(crate::values::csv_ci(s.map(|c| c.ci)));
                csv.push(csv_num(s.map(|c| c.df)));
            }
            let p = r.m.test.as_ref().map_or(f64::NAN, |c| c.p);
            let hp = if is_avg { holm[ti] } else { f64::NAN };
            row.push(fmt_p(p));
            row.push(if is_avg { fmt_p(hp) } else { String::new() });
            csv.push(csv_num(Some(p)));
            csv.push(csv_num(Some(hp)));
            let seeds = t
                .sizes
                .iter()
                .map(|(_, _, c)| {
                    if is_avg {
                        c.avg.seeds
                    } else {
                        c.by_lang[&r.lang].seeds
                    }
                })
                .min()
                .unwrap_or(0);
            row.push(seeds.to_string());
            csv.push(seeds.to_string());
            let (ng, nd) = needed(r, h);
            row.push(fmt_needed(ng));
            csv.push(ng.map(|k| k.to_string()).unwrap_or_default());
            if n >= 2 {
                row.push(fmt_needed(nd));
                csv.push(nd.map(|k| k.to_string()).unwrap_or_default());
            }
            rows.push(row);
            csv_rows.push(csv);
            if is_avg {
                sentences.push(sentence(t, r, hp, tests, h));
            }
        }
    }
    let metric = tasks[0].sizes[0].2.metric.clone();
    let sizes_note = sizes
        .iter()
        .map(|(s, p)| format!("{s} {}", fmt_params(*p)))
        .collect::<Vec<_>>()
        .join(", ");
    let test = match n {
        0 | 1 => "no test (one size)".to_string(),
        2 => "p: the difference is 0".to_string(),
        _ => "p: the slope is 0".to_string(),
    };
    let title = format!(
        "How the gain changes with model size ({metric}, points; parameters: {sizes_note}). Gains: {}. Differences and slope: each size's seed variance (independent across sizes) with the test set's variance paired by example, Welch–Satterthwaite df, each size's gain held to its interval above (never narrower than a gain they contain); slope: weighted least squares on log10(parameters), points per 10× parameters; {test}; Holm p: over the {tests} task{} of the sweep (average rows); seeds for ±{h}: seeds a cell for a 95% interval of ±{h} points (— : one seed, or the test set alone is wider).",
        if methods.is_empty() { "no interval".to_string() } else { methods.join("; ") },
        if tests == 1 { "" } else { "s" },
    );
    if ctx.writes() {
        let mut rec = ctx.recorder.borrow_mut();
        for s in &sentences {
            println!("{s}");
            rec.push(Item::Markdown(s.clone()));
        }
    }
    Ok(TableValue {
        title,
        header,
        rows,
        csv_header,
        csv_rows,
    })
}

/// `seeds_needed(gains, opts)`: a row per (task, language, quantity).
fn seeds_table(ctx: &Ctx, gains: &Map, o: &Opts) -> RResult<TableValue> {
    let lines = gain_lines("seeds_needed", ctx, gains, &o.params)?;
    let tasks = analyse("seeds_needed", &lines)?;
    let h = o.half_width;
    let header: Vec<String> = [
        "task",
        "language",
        "interval of",
        "seeds now",
        "95% CI now",
        &format!("seeds for ±{h}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let csv_header: Vec<String> = [
        "task",
        "language",
        "interval_of",
        "seeds",
        "half_width_now",
        "seeds_needed",
    ]
    .map(String::from)
    .to_vec();
    let mut rows = vec![];
    let mut csv_rows = vec![];
    for t in &tasks {
        for r in &t.rows {
            if r.lang != "avg" && !o.languages {
                continue;
            }
            let mut push =
                |what: String, seeds: usize, now: Option<Contrast>, need: Option<usize>| {
                    let half = now.as_ref().map(|c| (c.ci.1 - c.ci.0) / 2.0);
                    rows.push(vec![
                        t.task.clone(),
                        r.lang.clone(),
                        what.clone(),
                        seeds.to_string(),
                        half.map(|x| format!("±{x:.1}"))
                            .unwrap_or_else(|| "—".into()),
                        fmt_needed(need),
                    ]);
                    csv_rows.push(vec![
                        t.task.clone(),
                        r.lang.clone(),
                        what,
                        seeds.to_string(),
                        csv_num(half),
                        need.map(|k| k.to_string()).unwrap_or_default(),
                    ]);
                };
            for (i, (s, _, _)) in t.sizes.iter().enumerate() {
                let g = &r.gains[i];
                push(
                    format!("gain at {s}"),
                    g.seeds,
                    r.m.gains[i].clone(),
                    stats::seeds_needed(&[g], &[1.0], h),
                );
            }
            for (b, c) in &r.m.vs_smallest {
                let (g0, gb) = (&r.gains[0], &r.gains[*b]);
                push(
                    format!("Δ {}−{}", t.sizes[*b].0, t.sizes[0].0),
                    g0.seeds.min(gb.seeds),
                    c.clone(),
                    stats::seeds_needed(&[g0, gb], &[-1.0, 1.0], h),
                );
            }
        }
    }
    Ok(TableValue {
        title: format!(
            "Seeds a cell needs for a 95% interval of ±{h} points, from each cell's own seed spread and the test set's variance (— : one seed has no spread to go by, or the test set alone is wider than ±{h}: more examples, not seeds)"
        ),
        header,
        rows,
        csv_header,
        csv_rows,
    })
}

/// The documentation of what this file registers (see `docs::api`).
pub const DOCS: &[ApiDoc] = &[
    entry("results", "modulation", "modulation(gains: map) -> Table", "How the gain from intermediate training changes with model size. `gains` is what plot_gain takes (task → size → Comparison, or size → Comparison); a size's parameters come from `params`, else from the Results (a model stilts loaded, made or cut), else from a size name. Per task, a row per language and one for the average: the gain at each size with its 95% interval (as compare gives it); the difference in gain between each size and the smallest, and between adjacent sizes, with a 95% interval that adds both sizes' seed variance (their models are independent) to the test set's variance paired by example (Welch–Satterthwaite degrees of freedom); with 3+ sizes the slope of the gain against log10(parameters), points per 10× parameters (weighted least squares); a p-value for \"the gain does not depend on size\" (the slope, or the difference with 2 sizes) with Holm's adjustment over the tasks on the average rows; the seeds a cell has and the seeds its spread asks for an interval of ±1 point. Adds one sentence a task to the report.", "show(modulation(#{sst2: #{\"xlmr-base\": c0, \"xlmr-large\": c1}}))"),
    entry("results", "modulation", "modulation(gains: map, opts: map) -> Table", "modulation with options: `params` (size → parameters, for sizes whose count is not known), `half_width` (points: the interval the seeds-needed columns size for; default 1.0), `languages` (false: the average rows only; default true).", "modulation(#{sst2: #{\"xlmr-base\": c0, \"xlmr-large\": c1}}, #{half_width: 0.5, languages: false})"),
    entry("results", "seeds_needed", "seeds_needed(gains: map, opts: map) -> Table", "How many seeds a cell needs: for the gain at each size and for each size's difference from the smallest, the seeds now, the half-width of the 95% interval now, and the least seeds per cell whose interval would be ±`half_width` points (default 1.0), from the cell's own seed spread and the test set's variance (— where one seed gives no spread, or the test set alone is wider). `gains` as modulation takes it; options `half_width`, `params`, `languages` (true: a row per language too; default false).", "seeds_needed(#{sst2: #{\"xlmr-base\": c0, \"xlmr-large\": c1}}, #{half_width: 1.0})"),
];

/// Registers `modulation` and `seeds_needed`.
pub fn register(engine: &mut Engine, ctx: &Rc<Ctx>) {
    let c = ctx.clone();
    engine.register_fn("modulation", move |gains: Map| {
        modulation(&c, &gains, &opts("modulation", &Map::new(), true)?)
    });
    let c = ctx.clone();
    engine.register_fn("modulation", move |gains: Map, o: Map| {
        modulation(&c, &gains, &opts("modulation", &o, true)?)
    });
    let c = ctx.clone();
    engine.register_fn("seeds_needed", move |gains: Map, o: Map| {
        seeds_table(&c, &gains, &opts("seeds_needed", &o, false)?)
    });
}
