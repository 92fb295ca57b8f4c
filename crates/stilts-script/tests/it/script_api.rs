//! The API table and the registered functions agree; option maps convert
//! with errors that name the valid keys.

use stilts_script::{docs, Runtime, Settings};

#[test]
fn every_registered_function_is_documented_and_every_entry_registered() {
    let rt = Runtime::new(Settings::default());
    let sigs = rt.engine.gen_fn_signatures(false);
    let registered: Vec<String> = sigs
        .iter()
        .filter_map(|s| {
            s.split('(')
                .next()
                .map(|n| n.trim_start_matches("fn ").trim().to_string())
        })
        .filter(|n| {
            !n.starts_with("get$")
                && !n.starts_with("set$")
                && !n.starts_with("index$")
                && !["to_string", "to_debug", "stilts_cell"].contains(&n.as_str())
        })
        .collect();
    for n in &registered {
        assert!(
            !docs::lookup(n).is_empty(),
            "`{n}` is registered but has no entry in any `api/` file's DOCS"
        );
    }
    for d in docs::api() {
        let prop = d.signature.contains('.') && !d.signature.contains('(');
        if prop {
            assert!(
                sigs.iter().any(|s| s.contains(&format!("get${}", d.name))),
                "property `{}` is documented but not registered",
                d.name
            );
        } else {
            assert!(
                registered.iter().any(|n| n == d.name),
                "`{}` is documented but not registered",
                d.name
            );
        }
    }
}

#[test]
fn help_and_markdown_come_from_the_table() {
    let h = docs::help("stilts").unwrap();
    assert!(
        h.contains("stilts(model: Model, intermediate: Task, target: Task) -> Model")
            && h.contains("e.g. ")
    );
    assert!(docs::markdown().contains("| `compare(base: Result, new: Result) -> Comparison` |"));
    // The API reference (docs/api.md) is the table (`stilts api`), not a
    // copy edited by hand.
    let api =
        std::fs::read_to_string(std::path::Path::new(crate::common::REPO).join("docs/api.md"))
            .unwrap();
    assert!(
        api.contains(docs::markdown().trim()),
        "docs/api.md differs from docs::api(): regenerate it with `stilts api`"
    );
    // `:help` breaks lines between words, never inside one.
    let h = docs::help("train").unwrap();
    for l in h.lines().skip(1) {
        assert!(
            l.chars().count() <= docs::HELP_WIDTH || !l.trim().contains(' '),
            "{l}"
        );
    }
    let words = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let d = docs::lookup("train")[1];
    assert!(words(&h)
        .windows(words(d.doc).len())
        .any(|w| w == words(d.doc).as_slice()));
}

#[test]
fn results_index_compare_and_table() {
    let dir = tempfile::tempdir().unwrap();
    let mk = |label: &str, de: f64, sw: f64| {
        serde_json::json!({"$type": "Result", "value": {"label": label, "task": "xnli", "split": "test", "metric": "accuracy",
            "by_lang": {"de": {"value": de, "n": 4}, "sw": {"value": sw, "n": 4}}}})
    };
    std::fs::write(
        dir.path().join("a.json"),
        mk("base", 70.0, 60.0).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.json"),
        mk("stilts", 75.0, 61.0).to_string(),
    )
    .unwrap();
    let mut rt = Runtime::new(Settings {
        quiet: true,
        ..Default::default()
    });
    let d = dir.path().display();
    let v = rt
        .eval("t", &format!("let a = load_results(\"{d}/a.json\"); let b = load_results(\"{d}/b.json\"); let c = compare(a, b); [a[\"sw\"], a.avg, c[\"de\"], c.avg, table(#{{y: b, x: a}}).csv(), table(#{{y: b, x: a}}, #{{columns: [\"x\", \"y\"]}}).csv(), table([#{{z: 1, size: \"base\", gain: 1.25}}]).csv(), c.ci(\"de\")]"))
        .unwrap();
    let arr = v.into_array().unwrap();
    assert_eq!(arr[0].as_float().unwrap(), 60.0);
    assert_eq!(arr[1].as_float().unwrap(), 65.0);
    assert_eq!(arr[2].as_float().unwrap(), 5.0);
    assert_eq!(arr[3].as_float().unwrap(), 3.0);
    // Issue 14, item 8: columns in the order the script wrote them (or
    // `columns:`), and a CSV of numbers: an interval as two columns, an
    // empty cell where there is none.
    assert_eq!(
        arr[4].clone().into_string().unwrap(),
        "language,y,y_ci_lo,y_ci_hi,y_n,x,x_ci_lo,x_ci_hi,x_n\nde,75,,,4,70,,,4\nsw,61,,,4,60,,,4\navg,68,,,8,65,,,8\n"
    );
    assert!(arr[5]
        .clone()
        .into_string()
        .unwrap()
        .starts_with("language,x,x_ci_lo,x_ci_hi,x_n,y,"));
    assert_eq!(
        arr[6].clone().into_string().unwrap(),
        "z,size,gain\n1,base,1.25\n",
        "row maps keep the script's key order"
    );
    assert!(
        arr[7].clone().into_array().unwrap().is_empty(),
        "no per-example scores: no interval"
    );
    let e = rt.eval("t2", "a[\"fr\"]").unwrap_err();
    assert!(
        e.message
            .contains("no score for `fr`; this result has: de, sw"),
        "{e}"
    );
    // The session keeps its state after an error.
    assert_eq!(
        rt.eval("t3", "b[\"de\"]").unwrap().as_float().unwrap(),
        75.0
    );
}

#[test]
fn task_sample_is_a_seeded_label_balanced_sample() {
    let mnli = std::path::Path::new(crate::common::REPO).join("../shared/data/intermediate/mnli");
    let mnli = if mnli.is_dir() {
        mnli
    } else {
        std::path::PathBuf::from("../shared/data/intermediate/mnli")
    };
    let mut rt = Runtime::new(Settings {
        quiet: true,
        ..Default::default()
    });
    let d = mnli.display();
    let v = rt
        .eval("s", &format!(r#"
let ids = |t| t.peek(t.len).map(|e| e.id);
let labels = |t| {{ let c = #{{}}; for e in t.peek(t.len) {{ if c.contains(e.label) {{ c[e.label] += 1; }} else {{ c[e.label] = 1; }} }} c }};
let a = task("mnli", #{{data: "{d}", sample: 30, sample_seed: 2}});
let b = task("mnli", #{{data: "{d}", sample: 30, sample_seed: 2}});
let c = task("mnli", #{{data: "{d}", sample: 30}});
let first = task("mnli", #{{data: "{d}", first: 30}});
[a.len, labels.call(a), ids.call(a) == ids.call(b), ids.call(a) == ids.call(c), labels.call(first).len()]
"#))
        .unwrap();
    let arr = v.into_array().unwrap();
    assert_eq!(arr[0].as_int().unwrap(), 30);
    let counts = arr[1].clone().cast::<rhai::Map>();
    assert_eq!(counts.len(), 3, "{counts:?}");
    assert!(
        counts.values().all(|c| c.as_int().unwrap() == 10),
        "{counts:?}"
    );
    assert!(arr[2].as_bool().unwrap(), "same seed, same sample");
    assert!(!arr[3].as_bool().unwrap(), "seed 0 differs from seed 2");
    assert_eq!(
        arr[4].as_int().unwrap(),
        1,
        "the first 30 lines are one label"
    );
    let e = rt
        .eval(
            "e",
            &format!(r#"task("mnli", #{{data: "{d}", sample_seed: 2}})"#),
        )
        .unwrap_err();
    assert!(
        e.message
            .contains("`sample_seed` without `limit` or `sample`"),
        "{e}"
    );
}

fn shared(rel: &str) -> std::path::PathBuf {
    let p = std::path::Path::new(crate::common::REPO)
        .join("../shared/data")
        .join(rel);
    if p.exists() {
        p
    } else {
        std::path::PathBuf::from("../shared/data").join(rel)
    }
}

/// Issue 14, item 2: `limit` is a seeded sample stratified by label, of
/// each part (language), not the first N lines of a file sorted by label;
/// `first` is the prefix, and training on one label is warned about.
#[test]
fn task_limit_is_a_seeded_stratified_sample_of_each_language() {
    let mnli = shared("intermediate/mnli");
    let xnli = shared("xnli");
    // The one training here stores its run in a folder of its own, never in
    // the working directory.
    let store = tempfile::tempdir().unwrap();
    let mut rt = Runtime::new(Settings {
        quiet: true,
        store_dir: store.path().join("runs"),
        ..Default::default()
    });
    let (d, x) = (mnli.display(), xnli.display());
    let v = rt
        .eval("l", &format!(r#"
let ids = |t| t.peek(t.len).map(|e| e.id);
let labels = |t| {{ let c = #{{}}; for e in t.peek(t.len) {{ if c.contains(e.label) {{ c[e.label] += 1; }} else {{ c[e.label] = 1; }} }} c }};
let a = task("mnli", #{{data: "{d}", limit: 300}});
let b = task("mnli", #{{data: "{d}", limit: 300}});
let c = task("mnli", #{{data: "{d}", limit: 300, sample_seed: 5}});
let p = task("mnli", #{{data: "{d}", first: 300}});
let xa = task("xnli", #{{data: "{x}", split: "dev", languages: ["de", "sw"], limit: 31}});
[a.len, labels.call(a), ids.call(a) == ids.call(b), ids.call(a) == ids.call(c), labels.call(p).len(),
 xa.len, xa.language("de").len, labels.call(xa.language("sw")),
 xa.language("de").peek(31).map(|e| e.label) == xa.language("sw").peek(31).map(|e| e.label)]
"#))
        .unwrap();
    let arr = v.into_array().unwrap();
    assert_eq!(arr[0].as_int().unwrap(), 300);
    let counts = arr[1].clone().cast::<rhai::Map>();
    assert_eq!(counts.len(), 3, "all three labels: {counts:?}");
    assert!(
        counts.values().all(|c| c.as_int().unwrap() == 100),
        "the file's shares (a third each): {counts:?}"
    );
    assert!(arr[2].as_bool().unwrap(), "same seed, same sample");
    assert!(
        !arr[3].as_bool().unwrap(),
        "another sample_seed, another sample"
    );
    assert_eq!(
        arr[4].as_int().unwrap(),
        1,
        "`first` is the prefix: one label"
    );
    assert_eq!(arr[5].as_int().unwrap(), 62, "31 of each language");
    assert_eq!(arr[6].as_int().unwrap(), 31);
    let sw = arr[7].clone().cast::<rhai::Map>();
    let mut n: Vec<i64> = sw.values().map(|c| c.as_int().unwrap()).collect();
    n.sort();
    assert_eq!(
        n,
        vec![10, 10, 11],
        "stratified, the remainder to one label: {sw:?}"
    );
    assert!(
        arr[8].as_bool().unwrap(),
        "parallel languages: the same lines"
    );

    // Training on a set of one label is warned about, in the report too.
    let _ = rt.eval("w", &format!(r#"
let one = task("mnli", #{{data: "{d}", first: 24}});
let m = tiny_model(#{{text: [one], hidden: 16, layers: 1, heads: 2, ffn: 32, vocab: 300, max_length: 32}});
train(m, one, #{{max_steps: 1, batch_size: 8, max_length: 32, lr: 1e-3}});
"#)).unwrap();
    let rec = rt.ctx.recorder.borrow();
    let text: String = rec
        .cells
        .iter()
        .flat_map(|c| c.items.iter())
        .filter_map(|i| match i {
            stilts_script::context::Item::Text(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert!(
        text.contains("warning: mnli/train: all 24 training examples have the label `entailment`"),
        "{text}"
    );
}

fn recorded(rt: &Runtime) -> String {
    rt.ctx
        .recorder
        .borrow()
        .cells
        .iter()
        .flat_map(|c| c.items.iter())
        .filter_map(|i| match i {
            stilts_script::context::Item::Text(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

/// Issue 14, item 13: a tiny model that gets another vocabulary than it
/// asked for says so (in the run and its report).
#[test]
fn tiny_model_says_when_its_vocabulary_is_smaller_than_asked() {
    let mut rt = Runtime::new(Settings {
        quiet: true,
        ..Default::default()
    });
    let _ = rt.eval(
        "v",
        r#"let m = tiny_model(#{text: ["a small text to train on", "and another one"], vocab: 600, hidden: 8, heads: 2, ffn: 16, layers: 1}); m.params"#,
    )
    .unwrap();
    let text = recorded(&rt);
    assert!(
        text.contains("tiny_model: asked for a vocabulary of 600, got "),
        "{text}"
    );
    let e = rt
        .eval(
            "w",
            r#"tiny_model(#{text: ["Ένα μικρό κείμενο, 一个小小的中文句子, Маленькое предложение"], vocab: 12, hidden: 8, heads: 2, ffn: 16, layers: 1})"#,
        )
        .unwrap_err();
    assert!(
        e.message.contains("give a vocabulary of at least") && !e.message.contains("Hugging Face"),
        "{e}"
    );
}

/// Issue 14, item 16: `c.ci(lang)` gives the interval to six decimals,
/// without the bootstrap's float noise (15.062499999999943).
#[test]
fn comparison_intervals_come_without_float_noise() {
    use stilts_script::values::{Comparison, LangScore, Scores};
    let side = |label: &str, right: usize| {
        let mut by_lang = std::collections::BTreeMap::new();
        let correct: Vec<bool> = (0..48)
            .map(|i| (i * 7 + right) % 5 < 2 + right % 2)
            .collect();
        let v = 100.0 * correct.iter().filter(|&&b| b).count() as f64 / 48.0;
        by_lang.insert(
            "sw".to_string(),
            LangScore {
                value: v,
                n: 48,
                runs: vec![],
                correct: vec![correct],
                collapse: vec![],
            },
        );
        Scores {
            label: label.into(),
            task: "xnli".into(),
            split: "test".into(),
            metric: "accuracy".into(),
            by_lang,
            chance: Some(100.0 / 3.0),
            params: None,
            cells: vec![],
            model_dirs: vec![],
        }
    };
    let c = Comparison::new(&side("a", 0), &side("b", 3)).unwrap();
    let raw = c.by_lang["sw"].ci.unwrap();
    let mut rt = Runtime::new(Settings {
        quiet: true,
        ..Default::default()
    });
    rt.scope.push("c", c);
    let v = rt
        .eval("ci", r#"c.ci("sw")"#)
        .unwrap()
        .into_array()
        .unwrap();
    let (lo, hi) = (v[0].as_float().unwrap(), v[1].as_float().unwrap());
    for (x, r) in [(lo, raw.0), (hi, raw.1)] {
        assert!((x - r).abs() < 1e-6, "{x} vs {r}");
        assert_eq!(x, (x * 1e6).round() / 1e6, "six decimals at most: {x}");
    }
}

/// Issue 14, item 17: an unknown key in a map built at run time is named
/// with the closest valid key, and the valid keys are listed once.
#[test]
fn unknown_keys_list_the_valid_keys_once() {
    let mut rt = Runtime::new(Settings {
        quiet: true,
        ..Default::default()
    });
    for src in [
        r#"let o = #{hiden: 8, text: ["a b"]}; tiny_model(o)"#,
        r#"let o = #{dta: "x"}; task("mnli", o)"#,
    ] {
        let e = rt.eval("k", src).unwrap_err().message;
        assert_eq!(e.matches("valid keys: ").count(), 1, "{e}");
        assert!(e.contains("(did you mean `"), "{e}");
        let keys: Vec<&str> = e
            .split("valid keys: ")
            .nth(1)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .split(", ")
            .collect();
        let mut uniq = keys.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), keys.len(), "{e}");
        assert!(!e.contains("expected one of"), "{e}");
    }
}
