//! Cells as the unit of work without Slurm: `stilts plan` lists a grid's
//! cells and writes nothing, `run --only` runs exactly one, `run --jobs`
//! spreads them over worker processes and reports what one process
//! reports, and a failed cell is shown as failed with its log.

use crate::common;

use std::path::{Path, PathBuf};

use common::stilts_in;

fn plan_json(dir: &Path, data: &str) -> serde_json::Value {
    let (code, out, err) = stilts_in(dir, &["plan", "tiny_grid.rhai", "--set", data, "--json"]);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn states(plan: &serde_json::Value) -> Vec<String> {
    plan["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["state"].as_str().unwrap().to_string())
        .collect()
}

fn record_files(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir.join("runs/runs.records")) {
        Ok(e) => e
            .flatten()
            .map(|e| e.path())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect(),
        Err(_) => vec![],
    }
}

#[test]
fn plan_lists_the_cells_and_only_runs_exactly_one() {
    let (dir, data) = common::tiny_grid();
    let d = dir.path();
    let plan = plan_json(d, &data);
    let cells = plan["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 8, "{plan}");
    let mut keys: Vec<&str> = cells.iter().map(|c| c["key"].as_str().unwrap()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 8, "cells share a key: {plan}");
    assert!(states(&plan).iter().all(|s| s == "to_run"), "{plan}");
    let names: Vec<(&str, u64)> = cells
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["seed"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        &names[..4],
        &[("none", 1), ("none", 2), ("sst2", 1), ("sst2", 2)]
    );
    // Planning trained, evaluated and wrote nothing.
    assert!(record_files(d).is_empty());
    assert!(!d.join("reports").exists(), "plan wrote a report");
    assert!(!d.join("runs/checkpoints").exists());

    // The table names each cell's key and state.
    let (code, out, err) = stilts_in(d, &["plan", "tiny_grid.rhai", "--set", &data]);
    assert_eq!(code, 0, "{err}");
    let third = &cells[2]["key"].as_str().unwrap()[..16];
    assert!(
        out.contains(third) && out.contains("8 cells: 8 to run"),
        "{out}"
    );

    // --only runs that cell and nothing else: one record, no report.
    let (code, _, err) = stilts_in(
        d,
        &["run", "tiny_grid.rhai", "--set", &data, "--only", third],
    );
    assert_eq!(code, 0, "{err}");
    let files = record_files(d);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(third),
        "{files:?}"
    );
    assert!(!d.join("reports").exists(), "--only wrote a report");
    let plan = plan_json(d, &data);
    let st = states(&plan);
    assert_eq!(st[2], "done", "{plan}");
    assert_eq!(st.iter().filter(|s| *s == "to_run").count(), 7, "{plan}");
    // Again: found done, nothing trained.
    let (code, _, err) = stilts_in(
        d,
        &["run", "tiny_grid.rhai", "--set", &data, "--only", third],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(record_files(d).len(), 1);

    // A key the script does not have, and one that is not a key.
    let (code, _, err) = stilts_in(
        d,
        &[
            "run",
            "tiny_grid.rhai",
            "--set",
            &data,
            "--only",
            "0123456789abcdef",
        ],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("no such cell") && err.contains("stilts plan"),
        "{err}"
    );
    let (code, _, err) = stilts_in(d, &["run", "tiny_grid.rhai", "--only", "sst2"]);
    assert_ne!(code, 0);
    assert!(err.contains("at least 8 hex digits"), "{err}");
}

#[test]
fn workers_report_what_one_process_reports() {
    let (a, data) = common::tiny_grid();
    let (b, _) = common::tiny_grid();
    let (code, _, err) = stilts_in(a.path(), &["run", "tiny_grid.rhai", "--set", &data, "-q"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = stilts_in(
        b.path(),
        &["run", "tiny_grid.rhai", "--set", &data, "--jobs", "2"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("8 to run in 2 workers") && err.contains("[8/8] done"),
        "{err}"
    );
    let read = |d: &Path| std::fs::read(d.join("reports/tiny_grid/results.json")).unwrap();
    assert!(read(a.path()) == read(b.path()), "results.json differs");
    // One log per cell, and every cell done.
    let logs = std::fs::read_dir(b.path().join("runs/logs"))
        .unwrap()
        .count();
    assert_eq!(logs, 8);
    assert!(states(&plan_json(b.path(), &data))
        .iter()
        .all(|s| s == "done"));
    // `stilts status` after a `--jobs` run lists its cells, done, with
    // their models and seeds (issue 32, item 3), not "no cells".
    let (code, out, err) = stilts_in(b.path(), &["status", "runs"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("8 cells: 8 done") && !out.contains("no cells"),
        "{out}"
    );
    let rows: Vec<Vec<String>> = out
        .lines()
        .filter(|l| l.contains("┆ done"))
        .map(|l| l.split('┆').map(|c| c.trim().to_string()).collect())
        .collect();
    assert_eq!(rows.len(), 8, "{out}");
    assert_eq!(rows.iter().filter(|r| r[4] == "2").count(), 4, "{out}");
    assert!(rows.iter().all(|r| r[3].starts_with("tiny-")), "{out}");
    // Nothing left to run: the workers are not started again.
    let (code, _, err) = stilts_in(
        b.path(),
        &["run", "tiny_grid.rhai", "--set", &data, "--jobs", "2"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("8 done, 0 to run"), "{err}");
}

#[test]
fn a_failed_cell_is_shown_failed_with_the_end_of_its_log() {
    let (dir, data) = common::tiny_grid();
    let d = dir.path();
    // A learning rate that makes the loss overflow: every cell fails in training.
    let (code, _, err) = stilts_in(
        d,
        &[
            "run",
            "tiny_grid.rhai",
            "--set",
            &data,
            "--set",
            "lr=1e30",
            "--jobs",
            "2",
        ],
    );
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("failed") && err.contains("loss is"), "{err}");
    // The report of the collect pass says it did not finish, and why.
    let failed = std::fs::read_to_string(d.join("reports/.tiny_grid.failed/report.md")).unwrap();
    assert!(
        failed.contains("did not finish") && failed.contains("is not in the store"),
        "{failed}"
    );
    assert!(!d.join("reports/tiny_grid").exists());
    // `stilts status` shows each cell failed, with its log's end.
    let (code, out, err) = stilts_in(d, &["status", "runs"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("8 failed"), "{out}");
    assert!(out.contains("| ") && out.contains("loss is"), "{out}");
    // Each with its own seed and model, not `seed 0` and an empty column.
    assert!(
        out.contains("(seed 1) failed") && out.contains("(seed 2) failed"),
        "{out}"
    );
    assert!(!out.contains("(seed 0)"), "{out}");
    let plan = plan_json(d, &data);
    // The plan without the bad rate is another grid: all to run.
    assert!(states(&plan).iter().all(|s| s == "to_run"), "{plan}");
}

#[test]
fn submit_dry_run_writes_the_batch_scripts_and_submits_nothing() {
    let (dir, data) = common::tiny_grid();
    let d = dir.path();
    let (code, out, err) = stilts_in(
        d,
        &[
            "submit",
            "tiny_grid.rhai",
            "--set",
            &data,
            "--slurm",
            "--partition=gpu --gres=gpu:1 --time=2:00:00",
            "--max-parallel",
            "3",
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("#SBATCH --array=0-7%3"), "{out}");
    assert!(
        out.contains("--signal=B:USR1@300") && out.contains("scontrol requeue"),
        "{out}"
    );
    // The cells' device follows the build (issue 32, item 6).
    let device = if cfg!(feature = "cuda") {
        "cuda"
    } else {
        "cpu"
    };
    assert!(
        out.contains("--only \"$cell\"") && out.contains(&format!("--device {device}")),
        "{out}"
    );
    assert!(out.contains("--collect"), "{out}");
    assert!(
        out.contains("would run: sbatch --parsable --partition=gpu --gres=gpu:1 --time=2:00:00"),
        "{out}"
    );
    // The collect job asks for no GPU.
    assert!(
        out.contains("would run: sbatch --parsable --dependency=afterany:ARRAY --partition=gpu --time=2:00:00"),
        "{out}"
    );
    assert!(out.contains("nothing was submitted"), "{out}");
    let subs: Vec<PathBuf> = std::fs::read_dir(d.join("runs/slurm"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(subs.len(), 1);
    assert!(subs[0].join("array.sbatch").is_file() && subs[0].join("collect.sbatch").is_file());
    assert!(
        !subs[0].join("submission.json").exists(),
        "a dry run recorded a submission"
    );
    let cells = std::fs::read_to_string(subs[0].join("cells.txt")).unwrap();
    assert_eq!(cells.lines().count(), 8);
    // The batch script is valid bash.
    let ok = std::process::Command::new("bash")
        .arg("-n")
        .arg(subs[0].join("array.sbatch"))
        .status()
        .unwrap();
    assert!(ok.success());
    // Bad sbatch options are an error before anything is written.
    let (code, _, err) = stilts_in(
        d,
        &[
            "submit",
            "tiny_grid.rhai",
            "--set",
            &data,
            "--slurm",
            "--comment='x",
            "--dry-run",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("unbalanced quotes"), "{err}");
    assert_eq!(std::fs::read_dir(d.join("runs/slurm")).unwrap().count(), 1);
}

/// Issue 32, item 6: a build without CUDA does not send its cells off with
/// `--device cuda` (each would fail at its start): the default follows the
/// build, and `--cell-device cuda` is refused before anything is written.
#[test]
fn submit_from_a_build_without_cuda_does_not_send_cuda_cells() {
    if cfg!(feature = "cuda") {
        return;
    }
    let (dir, data) = common::tiny_grid();
    let d = dir.path();
    let (code, _, err) = stilts_in(
        d,
        &[
            "submit",
            "tiny_grid.rhai",
            "--set",
            &data,
            "--slurm",
            "--gres=gpu:1",
            "--cell-device",
            "cuda",
            "--dry-run",
        ],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("--cell-device cuda")
            && err.contains("built without CUDA")
            && err.contains("--cell-device cpu"),
        "{err}"
    );
    assert!(
        !d.join("runs/slurm").exists(),
        "a refused submit wrote its files"
    );
    // Without the flag: cpu, and a word about the GPUs asked for.
    let (code, out, err) = stilts_in(
        d,
        &[
            "submit",
            "tiny_grid.rhai",
            "--set",
            &data,
            "--slurm",
            "--gres=gpu:1",
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("--device cpu") && !out.contains("--device cuda"),
        "{out}"
    );
    assert!(err.contains("built without CUDA"), "{err}");
}

/// Issue 32, item 3: where Slurm's commands are installed but no cluster
/// is configured, `plan` and `status` say nothing about squeue; where
/// squeue fails on a configured cluster, they say so once.
#[test]
fn squeue_failures_are_reported_only_where_there_is_a_cluster() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, data) = common::tiny_grid();
    let d = dir.path();
    let bin = d.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = |message: &str| {
        let p = bin.join("squeue");
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'slurm 22.05.8'; exit 0; fi\necho '{message}' >&2\nexit 1\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |args: &[&str]| -> (i32, String, String) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_stilts"))
            .current_dir(d)
            .env("PATH", &path)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    std::fs::create_dir_all(d.join("runs")).unwrap();
    fake("squeue: fatal: Could not establish a configuration source");
    for args in [
        &["plan", "tiny_grid.rhai", "--set", &data][..],
        &["status", "runs"][..],
    ] {
        let (code, out, err) = run(args);
        assert_eq!(code, 0, "{err}");
        assert!(
            !err.contains("squeue") && !out.contains("squeue"),
            "{args:?}: {out}{err}"
        );
    }
    fake("squeue: error: Unable to contact slurm controller (connect failure)");
    let (code, _, err) = run(&["plan", "tiny_grid.rhai", "--set", &data]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err.matches("squeue failed").count(),
        1,
        "once, plainly: {err}"
    );
    assert!(err.contains("Unable to contact slurm controller"), "{err}");
}
