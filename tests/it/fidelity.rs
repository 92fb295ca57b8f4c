//! Trains like transformers: the small, fast version of the trajectory
//! comparison in `benches/fidelity/` (issue 27). A tiny XLM-R whose
//! classification head transformers initialised and saved
//! (`reference.py init --reinit-classifier`) is trained by stilts
//! (`benches/fidelity/trajectory.rhai`: `shuffle: false`, `dropout: 0.0`,
//! `new_head: false`) and by transformers + torch (`reference.py train`) on
//! the same pairs in the same order with the same recipe (AdamW with weight
//! decay and its exemptions, linear warm-up and decay, clipping); the loss
//! of every update must agree, and so must the two final models' logits.
//! Two controls show the comparison can fail: stilts with its default
//! shuffled batches, and with dropout back on, no longer agree.
//! Needs the pinned Python reference (`STILTS_PYTHON`, see docs/tests.md);
//! skipped without one, a failure under `STILTS_REQUIRE_PYTHON=1`.

use crate::common;

use std::path::Path;

fn python_json(python: &Path, dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(python)
        .current_dir(dir)
        .arg(Path::new(common::REPO).join("benches/fidelity/reference.py"))
        .args(["--threads", "1"])
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_OFFLINE", "1")
        .output()
        .expect("running python");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "reference.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn stilts_ok(dir: &Path, args: &[&str]) -> String {
    let (code, out, err) = common::stilts_in(dir, args);
    assert_eq!(code, 0, "stilts {args:?}:\n{out}\n{err}");
    out
}

/// The stilts side: `trajectory.rhai` on the tiny recipe, with `extra`
/// `--set`s, into `out`.
fn stilts_side(dir: &Path, out: &str, extra: &[&str]) {
    let script = Path::new(common::REPO).join("benches/fidelity/trajectory.rhai");
    let script = script.to_str().unwrap();
    let mut args = vec![
        "run",
        script,
        "--no-report",
        "--set",
        "init=init",
        "--set",
        "train=tr.tsv",
        "--set",
        "xnli=()",
        "--set",
        "lr=3e-3",
        "--set",
        "batch_size=8",
        "--set",
        "max_length=64",
        "--set",
        "epochs=2",
    ];
    let o = format!("out={out}");
    args.extend(["--set", o.as_str()]);
    args.extend_from_slice(extra);
    stilts_ok(dir, &args);
}

fn max_loss_diff(python: &Path, dir: &Path, stilts: &str) -> f64 {
    python_json(
        python,
        dir,
        &["compare", "--stilts", stilts, "--torch", "torch"],
    )["max_loss_diff"]
        .as_f64()
        .unwrap()
}

#[test]
fn trains_like_transformers_on_a_tiny_model() {
    let Some(python) = common::python_or_skip("trains_like_transformers_on_a_tiny_model") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // English NLI pairs bundled with the repo: 96 to train on (12 batches of
    // 8, two epochs: 24 updates at lr 3e-3), 48 to compare the final models on.
    let text =
        std::fs::read_to_string(Path::new(common::REPO).join("data/quickstart/nli_train_en.tsv"))
            .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(dir.join("tr.tsv"), lines[..96].join("\n") + "\n").unwrap();
    std::fs::write(dir.join("ev.tsv"), lines[96..144].join("\n") + "\n").unwrap();
    std::fs::write(
        dir.join("base.rhai"),
        r#"
let tr = task("tsv", #{file: "tr.tsv", name: "mnli", columns: ["premise", "hypothesis", "label"], labels: ["entailment", "neutral", "contradiction"]});
tiny_model(#{text: [tr], vocab: 300, hidden: 32, layers: 2, heads: 2, ffn: 64, max_length: 64, seed: 3}).save("base");
"#,
    )
    .unwrap();
    stilts_ok(dir, &["run", "base.rhai", "--no-report"]);
    // transformers draws the head, and saves it with the encoder.
    python_json(
        &python,
        dir,
        &[
            "init",
            "--model",
            "base",
            "--out",
            "init",
            "--seed",
            "0",
            "--reinit-classifier",
        ],
    );
    stilts_side(dir, "stilts", &[]);
    let torch = python_json(
        &python,
        dir,
        &[
            "train",
            "--model",
            "init",
            "--train",
            "tr.tsv",
            "--out",
            "torch",
            "--lr",
            "3e-3",
            "--batch",
            "8",
            "--max-length",
            "64",
            "--epochs",
            "2",
        ],
    );
    assert_eq!(torch["updates"], 24, "{torch}");
    python_json(
        &python,
        dir,
        &[
            "predict",
            "--model",
            "stilts/model",
            "--model",
            "torch/model",
            "--pairs",
            "ev.tsv",
            "--max-length",
            "64",
            "--out",
            "pred.json",
        ],
    );
    let c = python_json(
        &python,
        dir,
        &[
            "compare",
            "--stilts",
            "stilts",
            "--torch",
            "torch",
            "--predictions",
            "pred.json",
        ],
    );
    assert_eq!(c["updates"], 24, "{c}");
    // The weights move: the second epoch sees the same 12 batches as the
    // first, and their losses differ by far more than the tolerance.
    let losses: Vec<f64> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("torch/losses.json")).unwrap())
            .unwrap();
    let moved = (0..12)
        .map(|i| (losses[i] - losses[i + 12]).abs())
        .fold(0.0, f64::max);
    assert!(moved > 1e-3, "training moved the loss: {losses:?}");
    let agree = c["max_loss_diff"].as_f64().unwrap();
    assert!(agree < 1e-4, "loss at every update: {c}");
    assert!(
        c["max_logit_diff"].as_f64().unwrap() < 1e-3,
        "final models' logits: {c}"
    );
    assert_eq!(c["agree"], c["pairs"], "final models' predictions: {c}");
    // Controls: the comparison sees a different data order, and dropout.
    stilts_side(dir, "shuffled", &["--set", "shuffle=true"]);
    let shuffled = max_loss_diff(&python, dir, "shuffled");
    assert!(
        shuffled > 100.0 * agree.max(1e-6),
        "shuffled batches should not match: {shuffled} vs {agree}"
    );
    stilts_side(dir, "dropout", &["--set", "dropout=0.1"]);
    let dropout = max_loss_diff(&python, dir, "dropout");
    assert!(
        dropout > 100.0 * agree.max(1e-6),
        "dropout on should not match: {dropout} vs {agree}"
    );
    eprintln!("fidelity: {c}; controls: shuffled {shuffled:.3e}, dropout 0.1 {dropout:.3e}");
}
