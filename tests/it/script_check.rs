//! `stilts check`: every error of a broken script, at its exact position.

use std::process::Command;

fn check(src: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("s.rhai");
    std::fs::write(&f, src).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stilts"))
        .current_dir(dir.path())
        .args(["check", "s.rhai"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string()
            + String::from_utf8_lossy(&out.stderr).as_ref(),
    )
}

#[test]
fn syntax_errors_all_reported_with_line_column_and_caret() {
    let (code, out) = check("let x = 1\nlet y = ;\nprint(x);\nlet z = (1 + ;\n");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("s.rhai:1:10: expected `;`"), "{out}");
    assert!(out.contains(" 1 | let x = 1\n   |          ^"), "{out}");
    assert!(out.contains("s.rhai:2:9: unexpected ';'"), "{out}");
    assert!(out.contains("s.rhai:4:14:"), "{out}");
    assert!(out.contains("3 errors in s.rhai"), "{out}");
}

#[test]
fn unknown_functions_methods_and_option_keys() {
    let src = "let m = 1;\nlet t = 2;\ntrian(m, t);\nm.sav(\"x\");\nlet r = train(m, t, #{lr: 1e-5, epoch: 2});\n";
    let (code, out) = check(src);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("s.rhai:3:1: unknown function `trian`; did you mean `train`?"),
        "{out}"
    );
    assert!(
        out.contains("s.rhai:4:3: unknown method `sav`; did you mean `save`?"),
        "{out}"
    );
    assert!(
        out.contains("s.rhai:5:") && out.contains("unknown key `epoch` (did you mean `epochs`?)"),
        "{out}"
    );
    assert!(
        out.contains("valid keys:") && out.contains("batch_size"),
        "{out}"
    );
}

#[test]
fn unknown_variable_and_unterminated_string() {
    let (code, out) = check("let a = 1;\nprint(b);\n");
    assert_eq!(code, 1);
    assert!(out.contains("s.rhai:2:7: unknown variable `b`"), "{out}");
    let (code, out) = check("let a = \"abc;\n");
    assert_eq!(code, 1);
    assert!(
        out.contains("s.rhai:1:9:") && out.contains("unterminated string"),
        "{out}"
    );
}

#[test]
fn good_script_and_recipes_pass() {
    let (code, out) = check("fn f(x) { x * 2 }\nlet a = f(2);\nprint(a);\n");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("s.rhai: ok"));
    // `check` runs the recipes as `plan` does: the quick start on its
    // bundled data (found from the recipe's folder, from anywhere), the
    // real ones in their dry mode on stand-in folders.
    let dir = tempfile::tempdir().unwrap();
    for t in [
        "xnli",
        "mnli",
        "squad_v1",
        "hellaswag",
        "qqp",
        "sst2",
        "cosmosqa",
        "commonsenseqa",
        "ccg",
    ] {
        std::fs::create_dir_all(dir.path().join("data").join(t)).unwrap();
    }
    for (s, set) in [
        ("quickstart", vec![]),
        (
            "xstilts_xnli",
            vec!["--set", "data=data", "--set", "dry=true"],
        ),
        (
            "size_sweep",
            vec!["--set", "data=data", "--set", "dry=true"],
        ),
    ] {
        let p = format!("{}/scripts/{s}.rhai", crate::common::REPO);
        let out = Command::new(env!("CARGO_BIN_EXE_stilts"))
            .current_dir(dir.path())
            .args(["check", &p])
            .args(&set)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{s}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Checking wrote nothing: no store, no report, no checkpoint.
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    left.sort();
    assert_eq!(left, ["data"], "check wrote into its folder");
}

/// A script in a folder with a copy of the bundled sentiment data.
fn check_in(src: &str, args: &[&str]) -> (i32, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{}/data/quickstart/sentiment_en.tsv", crate::common::REPO),
        dir.path().join("tr.tsv"),
    )
    .unwrap();
    std::fs::write(dir.path().join("s.rhai"), src).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stilts"))
        .current_dir(dir.path())
        .arg("check")
        .arg("s.rhai")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string()
            + String::from_utf8_lossy(&out.stderr).as_ref(),
        dir,
    )
}

const PRELUDE: &str = r#"let lab = ["negative", "positive"];
let tr = task("tsv", #{file: "tr.tsv", name: "sent", columns: ["text", "label"], labels: lab});
let m = tiny_model(#{text: [tr], vocab: 200, hidden: 32, layers: 1, heads: 2, ffn: 64, max_length: 32, seed: 3, labels: lab});
"#;

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

/// Issue 32, item 2: `check` runs the script the way `plan` does, so an
/// option key in a map the parser cannot see, a missing file and a bad
/// type surface with their position; a good script trains nothing and
/// writes nothing.
#[test]
fn check_runs_the_script_as_plan_does_and_writes_nothing() {
    // A good script: ok, no training, no store, no saved model, no plot.
    let src = format!(
        "{PRELUDE}let o = #{{lr: 1e-3, epochs: 50, batch_size: 8, max_length: 32}};
let ft = train(m, tr, o);
ft.save(\"out\");
plot_training(ft, \"curve.png\");
let c = condition(#{{model: m, target: tr, evaluate: tr, options: o, seed: 1}});
print(`updates ${{ft.training.updates}}`);
"
    );
    let start = std::time::Instant::now();
    let (code, out, dir) = check_in(&src, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("s.rhai: ok") && !out.contains("updates"),
        "{out}"
    );
    assert_eq!(
        entries(dir.path()),
        ["s.rhai", "tr.tsv"],
        "check wrote files"
    );
    // (50 epochs would take far longer than this if anything trained.)
    eprintln!(
        "check of a training script: {:.1} s",
        start.elapsed().as_secs_f64()
    );

    // An unknown key in a condition's options (a variable: no literal
    // at the call) is found, at the condition's line.
    let bad = format!(
        "{PRELUDE}let o = #{{lrr: 1e-3, epochs: 1}};
let c = condition(#{{model: m, target: tr, evaluate: tr, options: o, seed: 1}});
"
    );
    let (code, out, dir) = check_in(&bad, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("s.rhai:5:")
            && out
                .contains("condition options: unknown training option `lrr` (did you mean `lr`?)"),
        "{out}"
    );
    assert_eq!(entries(dir.path()), ["s.rhai", "tr.tsv"]);

    // A missing data file, at the task's line.
    let (code, out, _) = check_in(
        "let t = task(\"tsv\", #{file: \"nothere.tsv\", columns: [\"text\", \"label\"], labels: [\"a\", \"b\"]});\n",
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("s.rhai:1:") && out.contains("nothere.tsv"),
        "{out}"
    );

    // A wrong type in a training map built at run time, at the train call.
    let (code, out, _) = check_in(
        &format!("{PRELUDE}let o = #{{lr: 1e-3}};\no.batch_size = \"eight\";\ntrain(m, tr, o);\n"),
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("s.rhai:6:")
            && out.contains("`batch_size` takes a whole number (e.g. `batch_size: "),
        "{out}"
    );
}

/// Issue 32, item 1: type errors in the script's terms (the key, what it
/// takes with an example, what it got), and the obvious readings taken: a
/// single language string, a whole float for a count, one value for a
/// list parameter; unknown properties get a did-you-mean.
#[test]
fn type_errors_speak_the_scripts_language() {
    let run = |src: &str, args: &[&str]| -> (i32, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            format!("{}/data/quickstart/sentiment_en.tsv", crate::common::REPO),
            dir.path().join("tr.tsv"),
        )
        .unwrap();
        std::fs::write(dir.path().join("s.rhai"), src).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_stilts"))
            .current_dir(dir.path())
            .args(["--quiet", "run", "s.rhai", "--no-report"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string()
                + String::from_utf8_lossy(&out.stderr).as_ref(),
        )
    };
    let xnli = format!("{}/xnli", crate::common::shared_data().display());
    // `languages: "de"` is `languages: ["de"]`.
    let (code, out) = run(
        &format!("let t = task(\"xnli\", #{{data: \"{xnli}\", split: \"dev\", languages: \"de\", limit: 5}});\nprint(t.languages);\n"),
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("[\"de\"]"), "{out}");
    // A number where a list of strings goes: the key, an example, the value.
    let (code, out) = run(
        &format!("let t = task(\"xnli\", #{{data: \"{xnli}\", split: \"dev\", languages: 3}});\n"),
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("`languages` takes an array of strings (e.g. `languages: [\"en\", \"de\"]`), not 3 (i64)")
            && !out.contains("alloc::"),
        "{out}"
    );
    // `max_steps: 2.0` is 2 updates; 2.5 is an error in words.
    let (code, out) = run(
        &format!("{PRELUDE}let ft = train(m, tr, #{{max_steps: 2.0, batch_size: 8, max_length: 32, lr: 1e-3}});\nprint(`updates ${{ft.training.updates}}`);\n"),
        &[],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("updates 2"), "{out}");
    let (code, out) = run(
        &format!("{PRELUDE}train(m, tr, #{{max_steps: 2.5}});\n"),
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("`max_steps` takes a whole number (e.g. `max_steps: 3`), not 2.5")
            && !out.contains("u64"),
        "{out}"
    );
    // `tiny_model`'s counts take whole floats too.
    let (code, out) = run(
        "let m = tiny_model(#{text: [\"a b c\", \"d e\"], vocab: 40.0, hidden: 8, heads: 2, ffn: 16, layers: 1});\nprint(m.layers);\n",
        &[],
    );
    assert_eq!(code, 0, "{out}");
    // `--set seeds=1` for `param("seeds", [1, 2])`: the list [1].
    let (code, out) = run(
        "for s in param(\"seeds\", [1, 2]) { print(`seed ${s}`); }\n",
        &["--set", "seeds=1"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("seed 1") && !out.contains("seed 2"), "{out}");
    // A loop over a number says what a loop takes.
    let (code, out) = run("let n = 3;\nfor s in n { print(s); }\n", &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("s.rhai:2:")
            && out.contains("loops over an array, a range")
            && !out.contains("iterable type"),
        "{out}"
    );
    // An unknown property: the closest one and the list.
    let (code, out) = run(
        "let m = tiny_model(#{text: [\"a b c\", \"d e\"], vocab: 40, hidden: 8, heads: 2, ffn: 16, layers: 1});\nprint(m.trainig);\n",
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("`Model` has no property `trainig`; did you mean `training`?")
            && out.contains("Model's properties:")
            && !out.contains("getter is not registered"),
        "{out}"
    );
}

#[test]
fn missing_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_stilts"))
        .args(["check", "/nonexistent/x.rhai"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.rhai"));
}

/// Issue 32, item 4: a recipe's default data path that is not there (run
/// from another folder) names the `--set` that gives it.
#[test]
fn a_default_path_that_is_not_there_names_its_set() {
    let (code, out, _) = check_in(
        "let d = param(\"data\", \"data/quickstart\");\nlet t = task(\"tsv\", #{file: `${d}/nli_train_en.tsv`, columns: [\"premise\", \"hypothesis\", \"label\"], labels: [\"a\", \"b\"]});\n",
        &[],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("s.rhai:2:")
            && out.contains("data/quickstart/nli_train_en.tsv")
            && out.contains("--set data=PATH"),
        "{out}"
    );
}

/// Issue 32, item 10: SST-2's labels print with GLUE's names, not `[0, 1]`;
/// a task of one example says `1 example`.
#[test]
fn sst2_labels_have_their_names() {
    let sst = format!(
        "{}/intermediate/sst2",
        crate::common::shared_data().display()
    );
    let (code, out, _) = check_in("", &[]);
    assert_eq!(code, 0, "{out}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.rhai"),
        format!(
            "let t = task(\"sst2\", #{{data: \"{sst}\", split: \"dev\", first: 1}});\nprint(t);\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stilts"))
        .current_dir(dir.path())
        .args(["--quiet", "run", "s.rhai", "--no-report"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string()
        + String::from_utf8_lossy(&out.stderr).as_ref();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("1 example, head classification [negative, positive]"),
        "{text}"
    );
}
