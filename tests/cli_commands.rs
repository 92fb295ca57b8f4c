//! The command line around scripts: `api`, global flags, old subcommands.

use std::process::Command;

#[test]
fn api_reference_lists_every_function() {
    let out = Command::new(env!("CARGO_BIN_EXE_stilts"))
        .arg("api")
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8_lossy(&out.stdout);
    for f in [
        "model(spec: string) -> Model",
        "tiny_model",
        "stilts(model",
        "compare(base",
        "plot_gain",
        "memo(key",
    ] {
        assert!(s.contains(f), "{f} missing");
    }
}

#[test]
fn bad_device_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_stilts"))
        .args(["--device", "tpu", "check", "x.rhai"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("use cpu, cuda or cuda:N"));
}

#[test]
fn help_lists_subcommands() {
    let out = Command::new(env!("CARGO_BIN_EXE_stilts"))
        .arg("--help")
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    for c in ["run", "check", "repl", "bench", "predict", "tiny"] {
        assert!(s.contains(c), "{c}");
    }
}
