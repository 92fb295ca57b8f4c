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
    // rhai's names for types (what `type_of` says), not Rust paths
    // (issue 14, item 11).
    assert!(out.contains("a: i64 = 5"), "{out}");
    assert!(out.contains("14\n"), "{out}");
    assert!(out.contains("(no variables)"), "{out}");
    assert!(err.contains("unknown command `:bogus`"), "{err}");
    // A name defined twice is listed once, with its newest value (issue
    // 32, item 10).
    let (out, err) = session("let a = 1;\nlet a = \"two\";\n:vars\n");
    assert_eq!(out.matches("a: ").count(), 1, "{out}{err}");
    assert!(out.contains("a: string = "), "{out}");
}

#[test]
fn values_print_readable_summaries() {
    let (out, err) = session("let m = tiny_model(#{text: [\"a small text\", \"another one\"], vocab: 40, hidden: 8, heads: 2, ffn: 16, layers: 1});\nm\nm.layers\npreset(\"xtreme\").lr\n:vars\ntable(m)\n:quit\n1 + 1\n");
    // `1 layer`, and a tiny model's parameters in thousands, not `0.0M`
    // (issue 14, item 16).
    assert!(
        out.contains("model `tiny-1x8`: XLMRobertaForSequenceClassification (1 layer, hidden 8"),
        "{out}\n{err}"
    );
    let params = out
        .split("): ")
        .nth(1)
        .and_then(|x| x.split(" parameters").next())
        .unwrap_or("");
    assert!(
        params.ends_with('k')
            && params[..params.len() - 1]
                .parse::<f64>()
                .is_ok_and(|x| x > 0.0),
        "{params}: {out}"
    );
    // rhai's names for types in `:vars` and messages (item 11).
    assert!(out.contains("m: Model = model `tiny-1x8`"), "{out}");
    assert!(
        err.contains("cannot make a table of Model;") && !err.contains("stilts::"),
        "{err}"
    );
    assert!(
        out.contains("\n1\n3e-5\n") || out.contains("\n1\n0.00003\n"),
        "{out}"
    );
    assert!(!out.contains("\n2\n"), "{out}");
}

/// Issue 14, item 15: a line that continues an open input gets the
/// continuation prompt; the input is handed on whole once it is closed.
#[test]
fn continuation_lines_have_a_prompt() {
    use stilts::repl::{Lines, CONTINUE, PROMPT};
    let mut l = Lines::default();
    assert_eq!(l.prompt(), PROMPT);
    assert_eq!(l.push("let a = [1,"), None);
    assert_eq!(l.prompt(), CONTINUE);
    assert_eq!(CONTINUE.chars().count(), PROMPT.chars().count());
    assert_eq!(l.push("  2,"), None);
    assert_eq!(l.prompt(), CONTINUE);
    assert_eq!(l.push("];").as_deref(), Some("let a = [1,\n  2,\n];"));
    assert_eq!(l.prompt(), PROMPT);
    assert_eq!(l.push("1 + 1").as_deref(), Some("1 + 1"));
    assert_eq!(l.push("fn f() {"), None);
    assert!(l.clear());
    assert_eq!(l.prompt(), PROMPT);
}
