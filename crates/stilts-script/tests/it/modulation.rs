//! Issue 25: `modulation`, `seeds_needed`, `plot_scaling`, the parameter
//! count a Result carries (issue 32, item 8) and `model(..., #{layers: N})`.

use std::collections::BTreeMap;

use stilts_protocol::stats::{self, SizeGain};
use stilts_script::context::Item;
use stilts_script::values::{Comparison, LangScore, Scores};
use stilts_script::{docs, Runtime, Settings};

const LANGS: [&str; 2] = ["de", "sw"];
const N: usize = 120;

/// Three seeds on 120 examples per language: seed `s` gets example `i`
/// right when `(7i + 3s + lang) mod 20 < 9 + extra`, and `wobble` more for
/// seed 1 (seed noise).
fn result(label: &str, extra: usize, wobble: usize, params: Option<u64>) -> Scores {
    let mut by_lang = BTreeMap::new();
    for (k, l) in LANGS.iter().enumerate() {
        let runs: Vec<Vec<bool>> = (0..3)
            .map(|s| {
                (0..N)
                    .map(|i| {
                        let w = if s == 1 { wobble } else { 0 };
                        (i * 7 + s * 3 + k) % 20 < 9 + extra + w
                    })
                    .collect()
            })
            .collect();
        let vals: Vec<f64> = runs
            .iter()
            .map(|r| 100.0 * r.iter().filter(|&&b| b).count() as f64 / N as f64)
            .collect();
        by_lang.insert(
            l.to_string(),
            LangScore {
                value: vals.iter().sum::<f64>() / 3.0,
                n: N,
                runs: vals,
                correct: runs,
                collapse: vec![],
            },
        );
    }
    Scores {
        label: label.into(),
        task: "xnli".into(),
        split: "test".into(),
        metric: "accuracy".into(),
        by_lang,
        chance: Some(100.0 / 3.0),
        params,
        cells: vec![],
        model_dirs: vec![],
    }
}

const PARAMS: [u64; 3] = [100_000_000, 1_000_000_000, 10_000_000_000];

/// `task` at the three sizes: the gain shrinks with size by `step`
/// examples in 20 (5 points a step), seed noise `wobble`.
fn sweep(step: usize, wobble: usize) -> Vec<Comparison> {
    (0..3)
        .map(|s| {
            let base = result("none", 0, 0, Some(PARAMS[s]));
            let new = result("x", step * (3 - s), wobble * (s + 1), Some(PARAMS[s]));
            Comparison::new(&base, &new).unwrap()
        })
        .collect()
}

fn runtime() -> Runtime {
    Runtime::new(Settings {
        quiet: true,
        ..Default::default()
    })
}

fn csv_rows(csv: &str) -> Vec<BTreeMap<String, String>> {
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn markdown_items(rt: &Runtime) -> Vec<String> {
    rt.ctx
        .recorder
        .borrow()
        .cells
        .iter()
        .flat_map(|c| c.items.iter())
        .filter_map(|i| match i {
            Item::Markdown(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn modulation_says_how_the_gain_changes_with_size() {
    let mut rt = runtime();
    let (a, b) = (sweep(1, 1), sweep(0, 2));
    for (i, c) in a.iter().enumerate() {
        rt.scope.push(format!("a{i}"), c.clone());
    }
    for (i, c) in b.iter().enumerate() {
        rt.scope.push(format!("b{i}"), c.clone());
    }
    // Sizes that are not size names: their Results carry the parameters.
    let v = rt
        .eval(
            "m",
            r#"let t = modulation(#{sst2: #{small: a0, mid: a1, big: a2}, hella: #{small: b0, mid: b1, big: b2}}); [t.csv(), t.markdown()]"#,
        )
        .unwrap()
        .into_array()
        .unwrap();
    let csv = v[0].clone().into_string().unwrap();
    let md = v[1].clone().into_string().unwrap();
    for h in [
        "gain @small",
        "Δ mid−small",
        "Δ big−small",
        "Δ big−mid",
        "slope per 10×",
        "Holm p",
        "seeds for ±1: gain",
    ] {
        assert!(md.contains(h), "column `{h}`: {md}");
    }
    assert!(md.contains("Holm p: over the 2 tasks"), "{md}");
    assert!(md.contains("small 100.0M, mid 1.00B, big 10.00B"), "{md}");
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 2 * 3, "two tasks x (2 languages + avg)");
    // The numbers are the protocol's on the same runs.
    let gains: Vec<SizeGain> = a.iter().map(|c| c.size_gain("avg").unwrap()).collect();
    let pts: Vec<(f64, &SizeGain)> = PARAMS.iter().map(|&p| p as f64).zip(gains.iter()).collect();
    let want = stats::modulation(&pts);
    let row = rows
        .iter()
        .find(|r| r["task"] == "sst2" && r["language"] == "avg")
        .unwrap();
    let num = |k: &str| row[k].parse::<f64>().unwrap_or(f64::NAN);
    let slope = want.slope.clone().unwrap();
    assert!((num("slope") - slope.estimate).abs() < 1e-5, "{row:?}");
    assert!(slope.estimate < 0.0, "the gain shrinks with size");
    assert!((num("slope_ci_lo") - slope.ci.0).abs() < 1e-5);
    let d = want.vs_smallest[1].1.clone().unwrap();
    assert!((num("diff_big_small") - d.estimate).abs() < 1e-5);
    assert!((num("p") - slope.p).abs() < 1e-5);
    // Holm over two tasks: at least the raw p, at most twice it.
    assert!(num("holm_p") >= num("p") && num("holm_p") <= (2.0 * num("p")).min(1.0) + 1e-9);
    // The gain at each size is compare's.
    assert!((num("gain_small") - a[0].avg.delta).abs() < 1e-5);
    // One sentence a task in the report.
    let said = markdown_items(&rt);
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(
        said[0].starts_with("sst2 (xnli test): +") && said[0].contains(" at small, "),
        "{}",
        said[0]
    );
    assert!(
        said[0].contains("points per 10× parameters (p = ")
            && said[0].contains("Holm over 2 tasks: "),
        "{}",
        said[0]
    );
    // Options: the average rows only, another half-width.
    let v = rt
        .eval(
            "o",
            r#"modulation(#{sst2: #{small: a0, mid: a1, big: a2}}, #{languages: false, half_width: 0.5}).csv()"#,
        )
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(csv_rows(&v).len(), 1);
    let e = rt
        .eval("k", r#"modulation(#{sst2: #{small: a0}}, #{halfwidth: 1})"#)
        .unwrap_err();
    assert!(e.message.contains("half_width"), "{e}");
}

#[test]
fn two_sizes_test_the_difference_and_few_seeds_say_how_many_they_need() {
    let mut rt = runtime();
    // Two seeds a cell: mean of the first two runs of each.
    let two = |s: &Scores| {
        let mut s = s.clone();
        for v in s.by_lang.values_mut() {
            v.runs.truncate(2);
            v.correct.truncate(2);
            v.value = v.runs.iter().sum::<f64>() / 2.0;
        }
        s
    };
    let c: Vec<Comparison> = (0..2)
        .map(|s| {
            let base = two(&result("none", 0, 0, Some(PARAMS[s])));
            let new = two(&result("x", 2 - s, 2, Some(PARAMS[s])));
            Comparison::new(&base, &new).unwrap()
        })
        .collect();
    rt.scope.push("c0", c[0].clone());
    rt.scope.push("c1", c[1].clone());
    let md = rt
        .eval(
            "m",
            r#"modulation(#{"xlmr-base": c0, "xlmr-large": c1}).markdown()"#,
        )
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        md.contains("p: the difference is 0") && !md.contains("slope per"),
        "{md}"
    );
    let said = markdown_items(&rt);
    assert!(
        said[0].contains("points from xlmr-base to xlmr-large"),
        "{}",
        said[0]
    );
    assert!(
        said[0].contains("with 2 seeds a cell, its seed spread asks for "),
        "{}",
        said[0]
    );
    // seeds_needed: the protocol's number, per gain and per difference.
    let csv = rt
        .eval(
            "s",
            r#"seeds_needed(#{"xlmr-base": c0, "xlmr-large": c1}, #{half_width: 2.0}).csv()"#,
        )
        .unwrap()
        .into_string()
        .unwrap();
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 3, "{csv}");
    let g: Vec<SizeGain> = c.iter().map(|c| c.size_gain("avg").unwrap()).collect();
    let want = stats::seeds_needed(&[&g[0], &g[1]], &[-1.0, 1.0], 2.0);
    assert_eq!(rows[2]["interval_of"], "Δ xlmr-large−xlmr-base");
    assert_eq!(
        rows[2]["seeds_needed"],
        want.map(|k| k.to_string()).unwrap_or_default()
    );
    assert!(want.is_some_and(|k| k >= 2));
}

/// Issue 32, item 8: a Result knows the parameters of the model that made
/// it, so plot_gain needs no `params` map for sizes that are not size names.
#[test]
fn plot_gain_takes_the_parameter_count_from_the_results() {
    let dir = tempfile::tempdir().unwrap();
    let mut rt = runtime();
    *rt.ctx.report_dir.borrow_mut() = Some(dir.path().to_path_buf());
    for (i, c) in sweep(1, 1).into_iter().enumerate() {
        rt.scope.push(format!("c{i}"), c);
    }
    let path = dir.path().join("g.svg");
    let _ = rt
        .eval(
            "p",
            &format!(
                r#"plot_gain(#{{sst2: #{{small: c0, mid: c1, big: c2}}}}, "{}")"#,
                path.display()
            ),
        )
        .unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    // The fitted line's band: a filled polygon in the task's colour.
    assert!(svg.contains("<polygon"), "a band");
    // A Result without a count still needs one.
    let mut bare = sweep(1, 1);
    for c in &mut bare {
        let (a, b) = c.sides.as_deref_mut().unwrap();
        a.params = None;
        b.params = None;
    }
    rt.scope.push("u", bare[0].clone());
    let e = rt
        .eval("u", r#"plot_gain(#{sst2: #{small: u}}, "u.svg")"#)
        .unwrap_err();
    assert!(e.message.contains("params"), "{e}");
}

/// `model(dir, #{layers: N})` keeps the first N layers: the config, the
/// parameter count and the fingerprint follow; a Result of it carries
/// the count; N outside 1..=layers is an error that says the range.
#[test]
fn model_layers_cuts_the_encoder() {
    let dir = tempfile::tempdir().unwrap();
    let mnli = std::path::Path::new(stilts_testing::REPO).join("../shared/data/intermediate/mnli");
    let mnli = if mnli.exists() {
        mnli
    } else {
        std::path::PathBuf::from("../shared/data/intermediate/mnli")
    };
    let mut rt = Runtime::new(Settings {
        quiet: true,
        store_dir: dir.path().join("runs"),
        ..Default::default()
    });
    *rt.ctx.report_dir.borrow_mut() = Some(dir.path().to_path_buf());
    let d = dir.path().join("tiny");
    let v = rt
        .eval(
            "l",
            &format!(
                r#"let one = task("mnli", #{{data: "{m}", first: 12}});
let m = tiny_model(#{{text: [one], hidden: 16, layers: 3, heads: 2, ffn: 32, vocab: 300, max_length: 32}});
m.save("{d}");
let full = model("{d}");
let cut = model("{d}", #{{layers: 2}});
let r = evaluate(cut, one);
[full.layers, cut.layers, full.params, cut.params, full.fingerprint == cut.fingerprint, r.params, m.params]"#,
                m = mnli.display(),
                d = d.display()
            ),
        )
        .unwrap()
        .into_array()
        .unwrap();
    let int = |i: usize| v[i].as_int().unwrap();
    assert_eq!((int(0), int(1)), (3, 2));
    // One layer of hidden 16, ffn 32: 4·(16·16+16) + (16·32+32) + (32·16+16) + 2·2·16.
    assert_eq!(
        int(2) - int(3),
        4 * (16 * 16 + 16) + (16 * 32 + 32) + (32 * 16 + 16) + 4 * 16
    );
    assert!(!v[4].as_bool().unwrap(), "the fingerprint follows the cut");
    assert_eq!(int(5), int(3), "a Result carries its model's count");
    for bad in [0, 4] {
        let e = rt
            .eval(
                "b",
                &format!(r#"model("{}", #{{layers: {bad}}})"#, d.display()),
            )
            .unwrap_err();
        assert!(e.message.contains("keep 1 to 3"), "{e}");
    }
}

/// The API reference (docs/api.md) documents every function this issue adds,
/// and each entry's example runs.
#[test]
fn new_functions_are_documented_and_their_examples_run() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(stilts_testing::REPO).join("docs/api.md"))
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut rt = runtime();
    *rt.ctx.report_dir.borrow_mut() = Some(dir.path().to_path_buf());
    let c = sweep(1, 1);
    rt.scope.push("c0", c[0].clone());
    rt.scope.push("c1", c[2].clone());
    let gains = rt
        .eval("g", "#{sst2: #{\"xlmr-base\": c0, \"xlmr-large\": c1}}")
        .unwrap();
    rt.scope.push("gains", gains);
    for (i, s) in [0usize, 2, 0, 1].iter().enumerate() {
        let r = result("r", *s, 0, Some(PARAMS[i % 2 * 2]));
        rt.scope.push(format!("r{i}"), r);
    }
    rt.scope.push("r", result("r", 0, 0, Some(PARAMS[0])));
    let new = [
        "modulation(",
        "seeds_needed(",
        "plot_scaling(",
        "Result.params",
    ];
    let entries: Vec<_> = docs::api()
        .into_iter()
        .filter(|d| new.iter().any(|n| d.signature.starts_with(n)))
        .collect();
    assert_eq!(
        entries.len(),
        6,
        "two of modulation, one of seeds_needed, two of plot_scaling, Result.params"
    );
    let md = docs::markdown();
    for d in entries {
        let row = md
            .lines()
            .find(|l| l.contains(&format!("`{}`", d.signature)))
            .unwrap_or_else(|| panic!("{} not in docs::markdown()", d.signature));
        assert!(
            readme.contains(row),
            "docs/api.md lacks `{}`: regenerate it with `stilts api`",
            d.signature
        );
        let example = d.example.replace(
            "\"gain.png\"",
            &format!("\"{}/gain.png\"", dir.path().display()),
        );
        let example = example
            .replace(
                "\"scaling.svg\"",
                &format!("\"{}/s.svg\"", dir.path().display()),
            )
            .replace(
                "\"scaling.png\"",
                &format!("\"{}/s.png\"", dir.path().display()),
            );
        if let Err(e) = rt.eval("example", &example) {
            panic!("{}: `{}` fails: {e}", d.signature, d.example);
        }
    }
}

/// The sweep's report module: `by_task` turns the grid's size → task
/// nesting around, `paper_figures` writes the three figures as PNG and
/// SVG, and the modulation table takes the turned map.
#[test]
fn the_sweep_report_module_makes_the_figures_and_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut rt = runtime();
    *rt.ctx.report_dir.borrow_mut() = Some(dir.path().to_path_buf());
    for s in 0..3 {
        let base = result("none", 0, 0, Some(PARAMS[s]));
        let new = result("sst2", 3 - s, 1, Some(PARAMS[s]));
        rt.scope.push(format!("b{s}"), base.clone());
        rt.scope.push(format!("n{s}"), new.clone());
        rt.scope
            .push(format!("g{s}"), Comparison::new(&base, &new).unwrap());
    }
    let v = rt
        .eval(
            "r",
            &format!(
                r#"import "stilts/report" as rep;
let results = #{{small: #{{none: b0, sst2: n0}}, mid: #{{none: b1, sst2: n1}}, big: #{{none: b2, sst2: n2}}}};
let gains = #{{small: #{{sst2: g0}}, mid: #{{sst2: g1}}, big: #{{sst2: g2}}}};
let files = rep::paper_figures(results, gains, "{}");
[files.len(), rep::by_task(gains).keys(), modulation(rep::by_task(gains)).csv()]"#,
                dir.path().display()
            ),
        )
        .unwrap()
        .into_array()
        .unwrap();
    assert_eq!(v[0].as_int().unwrap(), 4, "two figures, PNG and SVG");
    for f in ["accuracy_vs_parameters.svg", "gain_vs_parameters.png"] {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
    assert_eq!(v[1].to_string(), r#"["sst2"]"#);
    let csv = v[2].clone().into_string().unwrap();
    assert!(csv.contains("sst2,avg,"), "{csv}");
}
