//! `stilts run FILE --jobs N [--devices cuda:0,cuda:1]`: the unfinished
//! cells in N worker processes of `stilts run FILE --only CELL` on this
//! machine (one device each), the same mechanism as a Slurm array without
//! Slurm; the caller then runs the script with `--collect` for the report.
//! Each worker logs to `STORE_DIR/logs/CELL.log`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{passthrough, this_binary, CellRow, CellState, Plan};
use stilts_model::error::{Error, Result, WithPath};
use stilts_script::context::cancelled;
use stilts_script::Settings;

/// How a worker pool ended.
pub struct PoolReport {
    pub ran: usize,
    pub failed: Vec<(CellRow, PathBuf)>,
}

struct Worker {
    child: Child,
    cell: CellRow,
    log: PathBuf,
    started: Instant,
    slot: usize,
}

/// Runs `plan`'s unfinished cells, `jobs` at a time; `devices` are handed
/// out one per worker slot (`cpu` when none are given). With several CPU
/// workers each gets an equal share of the cores (`--threads`), unless
/// `threads` fixes it.
pub fn run_pool(
    settings: &Settings,
    plan: &Plan,
    script: &Path,
    set: &[String],
    jobs: usize,
    devices: &[String],
    threads: Option<usize>,
) -> Result<PoolReport> {
    let todo: Vec<CellRow> = plan
        .cells
        .iter()
        .filter(|c| c.state.unfinished())
        .cloned()
        .collect();
    let jobs = jobs.max(1).min(todo.len().max(1));
    let busy = plan
        .cells
        .iter()
        .filter(|c| c.state == CellState::Running)
        .count();
    eprintln!(
        "{}: {} cells, {} done, {} to run in {jobs} worker{}{}",
        script.display(),
        plan.cells.len(),
        plan.cells
            .iter()
            .filter(|c| c.state == CellState::Done)
            .count(),
        todo.len(),
        if jobs == 1 { "" } else { "s" },
        if busy > 0 {
            format!(" ({busy} running elsewhere: waited for by their workers)")
        } else {
            String::new()
        }
    );
    let logs = plan.store.root().join("logs");
    std::fs::create_dir_all(&logs).with_path(&logs)?;
    let exe = this_binary()?;
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let threads = threads.unwrap_or((cores / jobs).max(1));
    let mut queue: std::collections::VecDeque<CellRow> = todo.into();
    let mut running: Vec<Worker> = vec![];
    let mut free: Vec<usize> = (0..jobs).rev().collect();
    let total = queue.len();
    let mut report = PoolReport {
        ran: 0,
        failed: vec![],
    };
    let mut stopping = false;
    loop {
        if cancelled() && !stopping {
            // Ctrl-C / SIGTERM: the workers got it too (one process group);
            // wait for them to write their checkpoints, start no more.
            stopping = true;
            queue.clear();
            eprintln!("stopping: waiting for the workers to write their checkpoints");
        }
        while let (Some(slot), false) = (free.last().copied(), queue.is_empty()) {
            free.pop();
            let cell = queue.pop_front().expect("a cell");
            let device = devices
                .get(slot % devices.len().max(1))
                .cloned()
                .unwrap_or_else(|| "cpu".into());
            let log = logs.join(format!("{}.log", cell.id()));
            let out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .with_path(&log)?;
            let err = out.try_clone().with_path(&log)?;
            let mut cmd = Command::new(&exe);
            cmd.arg("run")
                .arg(script)
                .args(passthrough(set, settings))
                .args(["--only", cell.id(), "--device", &device])
                .args(["--threads", &threads.to_string()])
                .env("STILTS_CELL_LOG", &log)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err);
            let child = cmd
                .spawn()
                .map_err(|e| Error::msg(format!("cannot start {}: {e}", exe.display())))?;
            eprintln!(
                "[{}/{total}] start {} {} (seed {}) on {device}: log {}",
                report.ran + report.failed.len() + running.len() + 1,
                cell.id(),
                cell.name,
                cell.seed,
                log.display()
            );
            running.push(Worker {
                child,
                cell,
                log,
                started: Instant::now(),
                slot,
            });
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        let mut i = 0;
        while i < running.len() {
            match running[i].child.try_wait() {
                Ok(Some(status)) => {
                    let w = running.swap_remove(i);
                    free.push(w.slot);
                    let secs = w.started.elapsed().as_secs_f64();
                    if status.success() {
                        report.ran += 1;
                        eprintln!(
                            "[{}/{total}] done {} {} (seed {}) in {secs:.1} s",
                            report.ran + report.failed.len(),
                            w.cell.id(),
                            w.cell.name,
                            w.cell.seed
                        );
                        // What it trained is in its log; a model that
                        // learned nothing is said here too.
                        if let Ok(Some(r)) = plan.store.find(&w.cell.key) {
                            if let Some(c) = stilts_protocol::summary::collapse_line(&r) {
                                eprintln!("  warning: {c}");
                            }
                        }
                    } else {
                        eprintln!(
                            "[{}/{total}] failed {} {} (seed {}) after {secs:.1} s ({status}): see {}",
                            report.ran + report.failed.len() + 1,
                            w.cell.id(),
                            w.cell.name,
                            w.cell.seed,
                            w.log.display()
                        );
                        for l in stilts_protocol::store::cells::log_tail(&w.log, 5) {
                            eprintln!("  | {l}");
                        }
                        report.failed.push((w.cell, w.log));
                    }
                }
                Ok(None) => i += 1,
                Err(e) => return Err(Error::msg(format!("waiting for a worker: {e}"))),
            }
        }
    }
    Ok(report)
}
