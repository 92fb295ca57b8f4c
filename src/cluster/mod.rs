//! Running a recipe's grid as separate jobs: the cells (its `condition()`
//! calls) listed without running them (`stilts plan`), one cell per
//! process (`stilts run --only`), spread over local worker processes
//! (`stilts run --jobs`) or a Slurm job array with a collect job
//! (`stilts submit`), and followed from the store (`stilts status`).
//!
//! A front end, beside the CLI: it runs scripts through the rhai surface
//! in a [`CellMode`] and starts processes; the store (records written by
//! rename, cell marks) is what the jobs share, so nothing here schedules
//! work itself: Slurm does, or the local worker pool.

pub mod local;
pub mod slurm;
pub mod status;

use std::path::{Path, PathBuf};

use stilts_model::error::{Error, Result};
use stilts_protocol::store::cells::{log_tail, CellMark, MarkState};
use stilts_protocol::store::Store;
use stilts_script::context::{CellMode, PlannedCell};
use stilts_script::{Runtime, Settings};

/// Where a cell stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CellState {
    /// Its record is in the store.
    Done,
    /// A process (or Slurm job) is running it.
    Running,
    /// Waiting in Slurm's queue.
    Queued,
    /// Its last run failed (the message and log say why).
    Failed,
    /// Stopped by a signal with its checkpoint kept; the next run resumes it.
    Interrupted,
    /// Its process or job is gone without a result (killed, node lost).
    Stopped,
    /// Never run.
    ToRun,
}

impl CellState {
    pub fn words(self) -> &'static str {
        match self {
            CellState::Done => "done",
            CellState::Running => "running",
            CellState::Queued => "queued",
            CellState::Failed => "failed",
            CellState::Interrupted => "interrupted",
            CellState::Stopped => "stopped",
            CellState::ToRun => "to run",
        }
    }

    /// Whether `stilts submit` / `run --jobs` should (re)run the cell.
    pub fn unfinished(self) -> bool {
        !matches!(
            self,
            CellState::Done | CellState::Running | CellState::Queued
        )
    }
}

/// One cell with its state.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CellRow {
    pub key: String,
    pub name: String,
    pub model: String,
    pub seed: u64,
    pub state: CellState,
    /// The Slurm job (`ARRAY_INDEX`) that ran or runs it, when known.
    pub job: Option<String>,
    pub log: Option<String>,
    /// Why it failed or stopped.
    pub message: Option<String>,
}

impl CellRow {
    /// The short form of the key that `--only` takes.
    pub fn id(&self) -> &str {
        &self.key[..16.min(self.key.len())]
    }
}

/// The jobs Slurm knows now (`squeue`), by id: `ARRAY_INDEX` or `ID` ->
/// state (`PENDING`, `RUNNING`, ...). `None` where there is no `squeue`.
pub type Queue = Option<std::collections::BTreeMap<String, String>>;

/// A cell's state from the store (its record and mark), the queue, and
/// the job of its latest submission (`job_hint`).
pub fn state_of(
    store: &Store,
    key: &str,
    queue: &Queue,
    job_hint: Option<&str>,
) -> (CellState, Option<CellMark>) {
    if store.find(key).ok().flatten().is_some() {
        return (CellState::Done, None);
    }
    let mark = store.mark_of(key);
    let queued = |job: &str| queue.as_ref().and_then(|q| q.get(job).cloned());
    // The latest submission's job is alive: that is what happens next.
    if let Some(s) = job_hint.and_then(queued) {
        let st = if s == "RUNNING" || s == "COMPLETING" {
            CellState::Running
        } else {
            CellState::Queued
        };
        return (st, mark);
    }
    let state = match &mark {
        Some(m) if m.state == MarkState::Running => {
            match (m.job.as_deref(), queue, m.process_gone()) {
                (Some(j), Some(_), _) if queued(j).is_some() => CellState::Running,
                (Some(_), Some(_), _) => CellState::Stopped,
                (_, _, Some(true)) => CellState::Stopped,
                _ => CellState::Running,
            }
        }
        Some(m) if m.state == MarkState::Failed => CellState::Failed,
        Some(_) => CellState::Interrupted,
        // Submitted, gone from the queue, and never reached the cell.
        None if job_hint.is_some() && queue.is_some() => CellState::Stopped,
        None => CellState::ToRun,
    };
    (state, mark)
}

/// The cells of a script, in the order it reaches them, with their states.
pub struct Plan {
    pub script: PathBuf,
    pub store: Store,
    pub cells: Vec<CellRow>,
}

/// Runs `script` without training or evaluating anything (`stilts plan`):
/// every `condition()` it reaches is a cell; a cell in the store is used
/// as it is (so a script that branches on results plans as it would run).
pub fn plan(settings: &Settings, script: &Path, queue: &Queue) -> Result<Plan> {
    let mut s = settings.clone();
    s.cell_mode = CellMode::Plan;
    let mut rt = Runtime::new(s);
    let _ = rt.run_file(script, None).map_err(|d| {
        Error::msg(format!(
            "planning {}: the script stopped:\n{d}",
            script.display()
        ))
    })?;
    let store = stilts_script::api::runs::results_store(&rt.ctx);
    let planned: Vec<PlannedCell> = rt.ctx.cells.borrow().clone();
    let hints = slurm::latest_jobs(&store);
    let mut seen = std::collections::BTreeSet::new();
    let mut cells = vec![];
    for c in planned {
        if !seen.insert(c.key.clone()) {
            continue;
        }
        cells.push(row(
            &store, &c.key, &c.name, &c.model, c.seed, queue, &hints,
        ));
    }
    Ok(Plan {
        script: script.to_path_buf(),
        store,
        cells,
    })
}

/// The row of one cell.
pub fn row(
    store: &Store,
    key: &str,
    name: &str,
    model: &str,
    seed: u64,
    queue: &Queue,
    hints: &std::collections::BTreeMap<String, (String, String)>,
) -> CellRow {
    let hint = hints.get(&key[..16.min(key.len())]);
    let (state, mark) = state_of(store, key, queue, hint.map(|h| h.0.as_str()));
    let job = match (state, hint) {
        (CellState::Queued | CellState::Running, Some(h)) => Some(h.0.clone()),
        _ => mark
            .as_ref()
            .and_then(|m| m.job.clone())
            .or_else(|| hint.map(|h| h.0.clone())),
    };
    CellRow {
        key: key.to_string(),
        name: name.to_string(),
        model: model.to_string(),
        seed,
        state,
        job,
        log: mark
            .as_ref()
            .and_then(|m| m.log.clone())
            .or_else(|| hint.map(|h| h.1.clone())),
        message: mark.and_then(|m| m.message),
    }
}

/// The table `stilts plan` and `stilts status` print, with the end of the
/// log of every cell that failed or stopped below it.
pub fn render(rows: &[CellRow]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "#",
        "cell",
        "condition",
        "model",
        "seed",
        "state",
        "job",
        "log",
    ]);
    for (i, r) in rows.iter().enumerate() {
        t.add_row(vec![
            (i + 1).to_string(),
            r.id().to_string(),
            r.name.clone(),
            r.model.clone(),
            r.seed.to_string(),
            r.state.words().to_string(),
            r.job.clone().unwrap_or_default(),
            r.log.as_deref().map(short_path).unwrap_or_default(),
        ]);
    }
    let mut out = format!("{t}\n{}\n", summary(rows));
    for r in rows {
        if matches!(
            r.state,
            CellState::Failed | CellState::Interrupted | CellState::Stopped
        ) {
            out.push_str(&format!(
                "\n{} {} (seed {}) {}{}\n",
                r.id(),
                r.name,
                r.seed,
                r.state.words(),
                r.message
                    .as_deref()
                    .map(|m| format!(": {}", m.lines().next().unwrap_or("")))
                    .unwrap_or_default()
            ));
            if let Some(log) = &r.log {
                let tail = log_tail(Path::new(log), 8);
                if tail.is_empty() {
                    out.push_str(&format!("  (no log in {log})\n"));
                } else {
                    out.push_str(&format!("  the end of {log}:\n"));
                    for l in tail {
                        out.push_str(&format!("  | {l}\n"));
                    }
                }
            }
        }
    }
    out
}

/// A path relative to the working directory when it is under it.
fn short_path(p: &str) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|d| {
            Path::new(p)
                .strip_prefix(&d)
                .ok()
                .map(|r| r.display().to_string())
        })
        .unwrap_or_else(|| p.to_string())
}

/// `8 cells: 5 done, 1 running, 2 to run`.
pub fn summary(rows: &[CellRow]) -> String {
    let mut counts: Vec<(CellState, usize)> = vec![];
    for r in rows {
        match counts.iter_mut().find(|(s, _)| *s == r.state) {
            Some((_, n)) => *n += 1,
            None => counts.push((r.state, 1)),
        }
    }
    counts.sort_by_key(|(s, _)| *s as u8);
    format!(
        "{} cell{}{}{}",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" },
        if counts.is_empty() { "" } else { ": " },
        counts
            .iter()
            .map(|(s, n)| format!("{n} {}", s.words()))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Quotes a word for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The arguments that give a worker the same script values and limits as
/// this process: `--set` pairs and the global flags that change a run.
pub fn passthrough(set: &[String], settings: &Settings) -> Vec<String> {
    let mut out = vec![];
    for kv in set {
        out.push("--set".to_string());
        out.push(kv.clone());
    }
    for d in &settings.allow_write {
        out.push("--allow-write".into());
        out.push(absolute(d).display().to_string());
    }
    out.push("--max-operations".into());
    out.push(settings.max_operations.to_string());
    out
}

/// `p` made absolute against the working directory.
pub fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// The stilts binary that is running (what jobs and workers run).
pub fn this_binary() -> Result<PathBuf> {
    std::env::current_exe()
        .map_err(|e| Error::msg(format!("cannot tell where this stilts binary is: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_a_shell() {
        assert_eq!(shell_quote("seeds=[1,2]"), "'seeds=[1,2]'");
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
        assert_eq!(shell_quote("runs/x.rhai"), "runs/x.rhai");
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", shell_quote("it's \"x\" $HOME")))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's \"x\" $HOME");
    }
}
