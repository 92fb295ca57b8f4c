//! Training in a script checkpoints into the store and resumes: a script
//! killed with SIGKILL mid-phase, or stopped by SIGTERM / SIGUSR1 (what
//! Slurm sends before a time limit or preemption), ends bit-identical to an
//! uninterrupted run when started again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPT: &str = r#"
let lab = ["negative", "positive"];
let tr = task("tsv", #{file: "tr.tsv", name: "sent", columns: ["text", "label"], labels: lab});
let m = tiny_model(#{text: [tr], vocab: 200, hidden: 32, layers: 1, heads: 2, ffn: 64, max_length: 32, seed: 3, labels: lab});
let ft = train(m, tr, #{lr: 1e-3, epochs: 12, batch_size: 8, max_length: 32, seed: 1, checkpoint_every: 5});
ft.save("out");
plot_training(ft, "curve.png");
print(`updates ${ft.training.updates}`);
print(`curve ${ft.training.curve}`);
"#;

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(crate::common::REPO).join("data/quickstart/sentiment_en.tsv"),
    )
    .unwrap();
    std::fs::write(dir.path().join("tr.tsv"), text).unwrap();
    std::fs::write(dir.path().join("s.rhai"), SCRIPT).unwrap();
    dir
}

fn spawn(dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_stilts"))
        .current_dir(dir)
        .args(["run", "s.rhai", "--no-report"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> (i32, String, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// The checkpoint's update count, once the script has written one.
fn checkpoint_step(dir: &Path) -> Option<(u64, PathBuf)> {
    let root = dir.join("runs/checkpoints");
    for e in std::fs::read_dir(&root).ok()? {
        let ck = e.ok()?.path();
        let state = ck.join("checkpoint/state.json");
        if let Ok(text) = std::fs::read_to_string(&state) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) {
                return Some((v["step"].as_u64()?, ck));
            }
        }
    }
    None
}

fn wait_for_step(dir: &Path, child: &mut Child, at_least: u64) -> u64 {
    let start = Instant::now();
    loop {
        if let Some((s, _)) = checkpoint_step(dir) {
            if s >= at_least {
                return s;
            }
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the script ended before update {at_least}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no checkpoint appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("out/model.safetensors")).unwrap()
}

#[test]
fn a_script_killed_mid_phase_resumes_to_the_same_bytes() {
    let clean = setup();
    let (code, out, err) = finish(spawn(clean.path()));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("updates 456"), "{out}");
    let want = weights(clean.path());

    let killed = setup();
    let mut child = spawn(killed.path());
    let step = wait_for_step(killed.path(), &mut child, 40);
    child.kill().unwrap();
    let _ = child.wait();
    assert!(step < 456, "killed after the end");
    assert!(!killed.path().join("out").exists());
    let (code, out, err) = finish(spawn(killed.path()));
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("resumed from the checkpoint at update"),
        "{err}"
    );
    assert!(out.contains("updates 456"), "{out}");
    assert_eq!(
        weights(killed.path()),
        want,
        "the resumed run differs from an uninterrupted one"
    );
    // The training curve, written as the run went, holds each update once
    // (the lines past the checkpoint that the kill cut short were dropped).
    let curve_path = out
        .lines()
        .find_map(|l| l.strip_prefix("curve "))
        .unwrap()
        .to_string();
    let curve = std::fs::read_to_string(killed.path().join(&curve_path)).unwrap();
    let updates: Vec<u64> = curve
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v.get("loss").is_some())
        .map(|v| v["update"].as_u64().unwrap())
        .collect();
    assert_eq!(updates, (1..=456).collect::<Vec<u64>>());
    let later: serde_json::Value = serde_json::from_str(curve.lines().nth(99).unwrap()).unwrap();
    assert_eq!(later["update"], 100);
    assert!(
        later["lr"].as_f64().unwrap() > 0.0 && later["examples_per_s"].as_f64().unwrap() > 0.0,
        "{later}"
    );
    assert!(
        std::fs::metadata(killed.path().join("curve.png"))
            .unwrap()
            .len()
            > 5_000
    );

    // A third run finds the phase finished and trains nothing.
    let (code, _, err) = finish(spawn(killed.path()));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("finished before"), "{err}");
    assert_eq!(weights(killed.path()), want);
}

#[test]
fn sigterm_and_sigusr1_write_a_checkpoint_and_exit_non_zero() {
    let clean = setup();
    assert_eq!(finish(spawn(clean.path())).0, 0);
    let want = weights(clean.path());
    for sig in ["TERM", "USR1"] {
        let dir = setup();
        let mut child = spawn(dir.path());
        wait_for_step(dir.path(), &mut child, 20);
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let (code, _, err) = finish(child);
        assert_ne!(code, 0, "SIG{sig}: {err}");
        assert!(
            err.contains(&format!("interrupted (SIG{sig})"))
                && err.contains("run the script again to resume"),
            "{err}"
        );
        // The checkpoint holds the update the signal stopped at.
        let (step, ck) = checkpoint_step(dir.path()).unwrap();
        assert!(
            err.contains(&format!("at update {step}")),
            "{err}: checkpoint at {step} in {}",
            ck.display()
        );
        let (code, _, err) = finish(spawn(dir.path()));
        assert_eq!(code, 0, "{err}");
        assert_eq!(weights(dir.path()), want, "SIG{sig}: resumed run differs");
    }
}
