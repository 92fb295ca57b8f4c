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
    for s in ["quickstart", "xstilts_xnli", "size_sweep"] {
        let p = format!("{}/scripts/{s}.rhai", crate::common::REPO);
        let out = Command::new(env!("CARGO_BIN_EXE_stilts"))
            .args(["check", &p])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{s}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
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
