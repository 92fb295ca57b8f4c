//! Recipes are shared, so what they may do is confined: writes only under
//! the working directory, the report folder, the store and `--allow-write`
//! folders; import cycles and runaway memory are clear errors, not crashes;
//! numbers out of range are named.

use crate::common;

use std::path::Path;

fn run_in(dir: &Path, src: &str, args: &[&str]) -> (i32, String, String) {
    std::fs::write(dir.join("s.rhai"), src).unwrap();
    let mut a = vec!["--quiet", "run", "s.rhai", "--no-report"];
    a.extend_from_slice(args);
    common::stilts_in(dir, &a)
}

#[test]
fn scripts_write_only_where_they_are_allowed_to() {
    let base = tempfile::tempdir().unwrap();
    let work = base.path().join("work");
    let outside = base.path().join("outside");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let o = outside.display().to_string();
    let model = "let m = tiny_model(#{text: [\"one two three\"], vocab: 30, hidden: 16, layers: 1, heads: 2, ffn: 32});";
    for (call, path) in [
        (
            format!("save_results(#{{a: 1}}, \"{o}/x.json\");"),
            format!("{o}/x.json"),
        ),
        (
            "save_results(#{a: 1}, \"../outside/y.json\");".to_string(),
            "../outside/y.json".to_string(),
        ),
        (
            format!("table([#{{a: 1}}]).save(\"{o}/t.csv\");"),
            format!("{o}/t.csv"),
        ),
        (format!("store(\"{o}/store\");"), format!("{o}/store")),
        (
            format!("{model} m.save(\"{o}/model\");"),
            format!("{o}/model"),
        ),
    ] {
        let (code, _, err) = run_in(&work, &call, &[]);
        assert_ne!(code, 0, "{call} was allowed");
        assert!(
            err.contains(&path) && err.contains("--allow-write"),
            "{call}: {err}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "something was written outside"
    );
    // A symbolic link out of the working directory does not get around it.
    std::os::unix::fs::symlink(&outside, work.join("link")).unwrap();
    let (code, _, err) = run_in(&work, "save_results(#{a: 1}, \"link/z.json\");", &[]);
    assert_ne!(code, 0);
    assert!(err.contains("--allow-write"), "{err}");
    // Inside the working directory, and where --allow-write says, it works.
    let (code, _, err) = run_in(
        &work,
        &format!(
            "save_results(#{{a: 1}}, \"sub/ok.json\"); save_results(#{{a: 2}}, \"{o}/x.json\");"
        ),
        &["--allow-write", &o],
    );
    assert_eq!(code, 0, "{err}");
    assert!(work.join("sub/ok.json").exists() && outside.join("x.json").exists());
}

#[test]
fn import_cycles_are_named_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.rhai"),
        "import \"b\" as b;\nfn fa() { 1 }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.rhai"),
        "import \"a\" as a;\nfn fb() { 2 }\n",
    )
    .unwrap();
    let (code, _, err) = run_in(dir.path(), "import \"s\" as me;\nprint(1);\n", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("import cycle") && err.contains("s.rhai"),
        "{err}"
    );
    let (code, _, err) = run_in(dir.path(), "import \"a\" as a;\nprint(a::fa());\n", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("import cycle") && err.contains("a.rhai") && err.contains("b.rhai"),
        "{err}"
    );
}

#[test]
fn runaway_memory_stops_the_script_with_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let src = "let s = \"x\";\nfor i in 0..23 { s += s; }\nlet m = #{};\nfor i in 0..400 { m[`k${i}`] = s + `${i}`; }\nprint(m.len());\n";
    let (code, out, err) = run_in(dir.path(), src, &["--max-memory", "0.5"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("over its budget of 0.5 GiB") && err.contains("--max-memory"),
        "{err}"
    );
}

/// Issue 32, item 9: under an address-space limit (`ulimit -v`, what
/// some clusters set) a growing script stops with its message, not an
/// allocation abort (exit 134), without `--max-memory`.
#[test]
fn an_address_space_limit_stops_the_script_with_its_message() {
    let dir = tempfile::tempdir().unwrap();
    let src = "let s = \"x\";\nfor i in 0..23 { s += s; }\nlet m = #{};\nfor i in 0..4000 { m[`k${i}`] = s + `${i}`; }\nprint(m.len());\n";
    std::fs::write(dir.path().join("s.rhai"), src).unwrap();
    let out = std::process::Command::new("sh")
        .current_dir(dir.path())
        .arg("-c")
        .arg(format!(
            "ulimit -v 4000000 && exec {} run s.rhai --no-report",
            env!("CARGO_BIN_EXE_stilts")
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("s.rhai:4:")
            && err.contains("ulimit -v")
            && !err.contains("memory allocation"),
        "{err}"
    );
}

#[test]
fn numbers_out_of_range_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.tsv"), "one two\ta\nthree\tb\n").unwrap();
    let (code, _, err) = run_in(
        dir.path(),
        "let m = tiny_model(#{text: [\"one two three\"], vocab: 30, hidden: 16, layers: 1, heads: 2, ffn: 32, labels: [\"a\", \"b\"]});\nlet t = task(\"tsv\", #{file: \"t.tsv\", columns: [\"text\", \"label\"], labels: [\"a\", \"b\"]});\ntrain(m, t, #{lr: 1e400});\n",
        &[],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("`lr` is inf, out of the range") && err.contains("s.rhai:3"),
        "{err}"
    );
}
