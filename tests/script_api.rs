//! The API table and the registered functions agree; option maps convert
//! with errors that name the valid keys.

use stilts::script::{docs, Runtime, Settings};

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
            "`{n}` is registered but has no entry in docs::API"
        );
    }
    for d in docs::API {
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
        .eval("t", &format!("let a = load_results(\"{d}/a.json\"); let b = load_results(\"{d}/b.json\"); let c = compare(a, b); [a[\"sw\"], a.avg, c[\"de\"], c.avg, table(#{{x: a, y: b}}).csv()]"))
        .unwrap();
    let arr = v.into_array().unwrap();
    assert_eq!(arr[0].as_float().unwrap(), 60.0);
    assert_eq!(arr[1].as_float().unwrap(), 65.0);
    assert_eq!(arr[2].as_float().unwrap(), 5.0);
    assert_eq!(arr[3].as_float().unwrap(), 3.0);
    assert_eq!(
        arr[4].clone().into_string().unwrap(),
        "language,x,y\nde,70.0,75.0\nsw,60.0,61.0\navg,65.0,68.0\n"
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
    let mnli =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/intermediate/mnli");
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
let first = task("mnli", #{{data: "{d}", limit: 30}});
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
    assert!(e.message.contains("`sample_seed` without `sample`"), "{e}");
}
