//! `stilts run`: `--set`, run-time errors at their position, limits,
//! cells and the report directory, the stdlib, memo.

use crate::common;

use std::path::Path;
use std::process::Command;

fn run_in(dir: &Path, src: &str, args: &[&str]) -> (i32, String, String) {
    std::fs::write(dir.join("s.rhai"), src).unwrap();
    let mut a = vec!["--quiet", "run", "s.rhai"];
    a.extend_from_slice(args);
    common::stilts_in(dir, &a)
}

fn run(src: &str, args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut a = args.to_vec();
    a.push("--no-report");
    run_in(dir.path(), src, &a)
}

#[test]
fn set_values_are_literals_params_and_constants() {
    let src = "print(param(\"n\", 1) + 1);\nprint(seeds.len());\nprint(param(\"name\", \"x\"));\nprint(param(\"absent\", 42));\nprint(type_of(lr));\n";
    let (code, out, err) = run(
        src,
        &[
            "--set",
            "n=41",
            "--set",
            "seeds=[1, 2, 3]",
            "--set",
            "name=../data/dir",
            "--set",
            "lr=2e-5",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "42\n3\n../data/dir\n42\nf64\n");
    let (code, _, err) = run("print(1);", &["--set", "9x=1"]);
    assert_ne!(code, 0);
    assert!(err.contains("not a valid name"), "{err}");
}

#[test]
fn runtime_error_in_a_function_points_inside_and_traces_the_call() {
    let src = "fn f(a) {\n    a + throw_it(a)\n}\nfn throw_it(x) { throw `bad value ${x}`; }\nlet y = 1;\nf(y);\n";
    let (code, _, err) = run(src, &[]);
    assert_eq!(code, 1);
    assert!(err.starts_with("s.rhai:4:18: bad value 1\n"), "{err}");
    assert!(
        err.contains(" 4 | fn throw_it(x) { throw `bad value ${x}`; }\n   |                  ^"),
        "{err}"
    );
    assert!(err.contains("in `f`, called at s.rhai:6:1"), "{err}");
}

#[test]
fn wrong_argument_types_and_unknown_option_keys() {
    let (code, _, err) = run("let t = tiny_model(42);\n", &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("s.rhai:1:9: no `tiny_model` takes these arguments: `tiny_model(i64)`")
            && err.contains("tiny_model(opts: map) -> Model"),
        "{err}"
    );
    let (code, _, err) = run(
        "let o = #{hiden: 8};\nlet t = tiny_model(o + #{text: [\"a b\"]});\n",
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("s.rhai:2:9: tiny_model options")
            && err.contains("unknown key `hiden` (did you mean `hidden`?)"),
        "{err}"
    );
    let (code, _, err) = run(
        "let p = preset(\"jiant\");\nprint(p.lr);\nlet x = preset(\"fast\");\n",
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("s.rhai:3:9: unknown preset `fast`; presets: jiant, xtreme"),
        "{err}"
    );
}

#[test]
fn runaway_scripts_are_stopped() {
    let (code, _, err) = run(
        "let i = 0;\nloop { i += 1; }\n",
        &["--max-operations", "100000"],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("s.rhai:2:") && err.contains("operation limit"),
        "{err}"
    );
    let (code, _, err) = run("fn r(n) { r(n + 1) }\nr(0);\n", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("too many nested calls"), "{err}");
    let (code, _, err) = run("let s = \"x\";\nloop { s += s; }\n", &[]);
    assert_eq!(code, 1);
    assert!(err.contains("size limit"), "{err}");
}

#[test]
fn no_shell_commands() {
    for f in [
        "system(\"ls\");",
        "exec(\"ls\");",
        "shell(\"ls\");",
        "run_command(\"ls\");",
    ] {
        let (code, _, err) = run(f, &[]);
        assert_eq!(code, 1, "{f}");
        assert!(err.contains("s.rhai:1:1: unknown function"), "{err}");
    }
}

#[test]
fn missing_script_and_missing_data() {
    let out = Command::new(env!("CARGO_BIN_EXE_stilts"))
        .args(["run", "/nonexistent/x.rhai", "--no-report"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the script"));
    let (code, _, err) = run(
        "let x = task(\"xnli\", #{data: \"nowhere/xnli\", split: \"test\"});\n",
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("s.rhai:1:9: task `xnli`: data folder nowhere/xnli does not exist"),
        "{err}"
    );
    let (code, _, err) = run("require(#{xnli: \"a/xnli\", mnli: \".\"});\n", &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("missing inputs (1 of 2)")
            && err.contains("xnli: a/xnli")
            && err.contains("--set"),
        "{err}"
    );
}

#[test]
fn cells_report_and_cell_selection() {
    let dir = tempfile::tempdir().unwrap();
    let src = "let a = 1;\n// %% First\nprint(\"in first\");\nlet r = #{x: 1.5, y: 2};\nshow(table([r]));\n// %% Second\nprint(\"in second\");\n";
    let (code, out, err) = run_in(dir.path(), src, &["--out", "rep"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("in first") && out.contains("in second"));
    let md = std::fs::read_to_string(dir.path().join("rep/report.md")).unwrap();
    assert!(
        md.contains("## First") && md.contains("in first") && md.contains("## Second"),
        "{md}"
    );
    assert!(
        md.contains("| x | y |") && md.contains("| 1.50 | 2 |"),
        "{md}"
    );
    assert!(dir.path().join("rep/table1.csv").exists());
    let (code, out, err) = run_in(dir.path(), src, &["--out", "rep2", "--cell", "first"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("in first") && !out.contains("in second"),
        "{out}"
    );
    let (code, _, err) = run_in(dir.path(), src, &["--cell", "third", "--no-report"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no such cell; cells: \"First\", \"Second\""),
        "{err}"
    );
}

#[test]
fn stdlib_imports_and_memo_reuses_results() {
    let dir = tempfile::tempdir().unwrap();
    let src = "import \"stilts/grid\" as g;\nlet rows = g::plan(#{sizes: [\"a\", \"b\"], intermediates: #{none: (), x: 1}, seeds: [1, 2]});\nprint(rows.len());\nstore(\"st\");\nlet n = 0;\nlet v = memo(#{k: 1}, || 40 + 2);\nprint(v);\nprint(memo(#{k: 1}, || 0));\n";
    let (code, out, err) = run_in(dir.path(), src, &["--no-report"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "8\n42\n42\n");
    // memo keeps its value as a record of the results store.
    let store = stilts::store::Store::new(dir.path().join("st").join("runs.jsonl"));
    let records = store.records().unwrap();
    assert_eq!(
        records.len(),
        1,
        "the second memo call must reuse, not append"
    );
    assert_eq!(
        store
            .get_value(&serde_json::json!({"memo": {"k": 1}}))
            .unwrap(),
        Some(serde_json::json!(42))
    );
    let (code, _, err) = run("import \"stilts/nothing\" as n;\n", &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("module `stilts/nothing` not found") && err.contains("\"stilts/protocol\""),
        "{err}"
    );
}

#[test]
fn a_local_stdlib_folder_overrides_the_embedded_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("stdlib")).unwrap();
    std::fs::write(
        dir.path().join("stdlib/report.rhai"),
        "fn hello() { \"local\" }\n",
    )
    .unwrap();
    let (code, out, err) = run_in(
        dir.path(),
        "import \"stilts/report\" as r;\nprint(r::hello());\n",
        &["--no-report"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "local\n");
}

/// A run that fails or is interrupted never overwrites the last complete
/// report: its partial report goes beside it, with a banner saying what
/// happened; a script that does not exist writes nothing at all.
#[test]
fn failed_runs_write_a_marked_report_beside_the_last_complete_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stilts"))
        .current_dir(dir.path())
        .args(["run", "nosuch.rhai"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !dir.path().join("reports").exists(),
        "a missing script wrote a report folder"
    );
    let good = "// %% One\nshow(\"first cell\");\n// %% Two\nshow(`value ${param(\"v\", 1)}`);\n";
    let (code, _, err) = run_in(dir.path(), good, &[]);
    assert_eq!(code, 0, "{err}");
    let report = dir.path().join("reports/s/report.md");
    let complete = std::fs::read_to_string(&report).unwrap();
    assert!(complete.contains("value 1") && !complete.contains("did not finish"));
    let bad = "// %% One\nshow(\"first cell\");\n// %% Two\nthrow \"broken input\";\n";
    let (code, _, err) = run_in(dir.path(), bad, &[]);
    assert!(err.contains("broken input"), "{err}");
    assert_eq!(code, 1);
    assert_eq!(
        std::fs::read_to_string(&report).unwrap(),
        complete,
        "the complete report was overwritten"
    );
    let partial = std::fs::read_to_string(dir.path().join("reports/.s.failed/report.md")).unwrap();
    assert!(
        partial.contains("**This run did not finish**: failed in cell `Two`")
            && partial.contains("broken input")
            && partial.contains("first cell")
            && partial.contains("The last complete report is in `reports/s`"),
        "{partial}"
    );
    assert!(!dir.path().join("reports/.s.running").exists());
    // Issue 31, item 7: a later run that finishes supersedes the partial
    // report of the failed one.
    let (code, _, err) = run_in(dir.path(), good, &["--set", "v=2"]);
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read_to_string(&report)
        .unwrap()
        .contains("value 2"));
    assert!(
        !dir.path().join("reports/.s.failed").exists(),
        "the failed run's partial report outlived a complete run"
    );
}

/// Issue 14, item 12: a `--set` name the script never reads is warned
/// about, with the closest name it does read; names read through
/// `param`, as variables or through `params()` are not.
#[test]
fn set_names_the_script_never_reads_are_warned_about() {
    let src = "let seeds = param(\"seeds\", [1, 2]);\nprint(seeds.len());\n";
    let (code, out, err) = run(src, &["--set", "seed=3"]);
    assert_eq!((code, out.as_str()), (0, "2\n"), "{err}");
    assert!(
        err.contains("warning: --set seed=...: the script never reads `seed`")
            && err.contains("did you mean `seeds`?"),
        "{err}"
    );
    let (code, _, err) = run(src, &["--set", "seeds=[4]"]);
    assert_eq!(code, 0);
    assert!(!err.contains("never reads"), "{err}");
    let (_, _, err) = run("print(lr);\n", &["--set", "lr=0.1"]);
    assert!(!err.contains("never reads"), "read as a variable: {err}");
    let (_, _, err) = run("print(params());\n", &["--set", "anything=1"]);
    assert!(
        !err.contains("never reads"),
        "params() reads them all: {err}"
    );
}
