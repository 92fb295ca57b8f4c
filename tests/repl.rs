//! The REPL driven through a pipe: multi-line input, values printed,
//! errors that do not end the session, `:help`, `:vars`, `:load`, `:reset`.

use std::io::Write;
use std::process::{Command, Stdio};

fn session(input: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("lib.rhai"),
        "fn double(x) { x * 2 }\nlet loaded = 7;\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stilts"))
        .current_dir(dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn multiline_error_and_recovery() {
    let (out, err) = session("fn add(a, b) {\n    a + b\n}\nlet x = [1,\n  2];\nadd(x[0], x[1])\nundefined_thing(1)\nadd(40, 2)\nlet s = `multi\nline`;\ns.len()\n");
    assert_eq!(out, "3\n42\n10\n", "stderr: {err}");
    assert!(
        err.contains("<input 4>:1:1: unknown function `undefined_thing`"),
        "{err}"
    );
}

#[test]
fn help_vars_load_time_reset() {
    let (out, err) = session(":help\n:help train\n:help nothing\nlet a = 5;\n:vars\n:load lib.rhai\ndouble(loaded)\n:reset\n:vars\n:bogus\n");
    assert!(
        out.contains(":load FILE")
            && out.contains("models:")
            && out.contains("train(model: Model, task: Task, opts: map) -> Model"),
        "{out}"
    );
    assert!(out.contains("Fine-tunes a copy of the model"), "{out}");
    assert!(out.contains("no help for `nothing`"), "{out}");
    assert!(out.contains("a: i64 = 5"), "{out}");
    assert!(out.contains("14\n"), "{out}");
    assert!(out.contains("(no variables)"), "{out}");
    assert!(err.contains("unknown command `:bogus`"), "{err}");
}

#[test]
fn values_print_readable_summaries() {
    let (out, err) = session("let m = tiny_model(#{text: [\"a small text\", \"another one\"], vocab: 40, hidden: 8, heads: 2, ffn: 16, layers: 1});\nm\nm.layers\npreset(\"xtreme\").lr\n:quit\n1 + 1\n");
    assert!(
        out.contains("model `tiny-1x8`: XLMRobertaForSequenceClassification (1 layers, hidden 8"),
        "{out}\n{err}"
    );
    assert!(
        out.contains("\n1\n3e-5\n") || out.contains("\n1\n0.00003\n"),
        "{out}"
    );
    assert!(!out.contains("\n2\n"), "{out}");
}
