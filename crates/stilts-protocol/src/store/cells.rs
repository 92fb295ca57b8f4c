//! What each cell (a grid condition kept under its key) is doing, as one
//! small file per cell under `STORE_DIR/cells/`: written when a cell
//! starts (running), replaced when it fails or is interrupted, removed
//! when its record is kept. `stilts plan` and `stilts status` read them
//! beside the records; like the records they are written by rename, so
//! they need no lock.

use std::path::{Path, PathBuf};

use super::Store;
use stilts_model::error::{Error, Result, WithPath};

/// A cell's state as its last process left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarkState {
    /// A process is running the cell (or died without a word: see
    /// `CellMark::process_gone`).
    Running,
    /// Its last run stopped with an error (the mark's `message`).
    Failed,
    /// Stopped by a signal (Ctrl-C, SIGTERM, Slurm's time-limit SIGUSR1)
    /// with its checkpoint kept: the next run resumes it.
    Interrupted,
}

/// The file of one cell.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CellMark {
    /// The cell's key (its condition's fingerprint); the file is named after
    /// its first 32 characters.
    pub key: String,
    /// The condition's name (e.g. `squad`, `none`).
    pub name: String,
    /// What the cell is doing, or how it last stopped.
    pub state: MarkState,
    /// Host name of the machine whose process wrote the mark.
    pub host: String,
    /// Process id of that process, on that host.
    pub pid: u32,
    /// The Slurm job (`ARRAYJOB_INDEX`, or the job id), when under Slurm.
    #[serde(default)]
    pub job: Option<String>,
    /// The cell's log file (`STILTS_CELL_LOG`, set by `stilts submit` and
    /// `stilts run --jobs`).
    #[serde(default)]
    pub log: Option<String>,
    /// Unix time of the last change.
    pub since: u64,
    /// Why it failed or stopped.
    #[serde(default)]
    pub message: Option<String>,
    /// The condition's model, as the script names it.
    #[serde(default)]
    pub model: String,
    /// The condition's seed.
    #[serde(default)]
    pub seed: u64,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The Slurm job this process runs in, from its environment.
pub fn slurm_job() -> Option<String> {
    let v = |k: &str| std::env::var(k).ok().filter(|s| !s.is_empty());
    match (v("SLURM_ARRAY_JOB_ID"), v("SLURM_ARRAY_TASK_ID")) {
        (Some(a), Some(t)) => Some(format!("{a}_{t}")),
        _ => v("SLURM_JOB_ID"),
    }
}

impl CellMark {
    /// A mark for this process (host, pid, Slurm job and log from the
    /// environment).
    pub fn here(key: &str, name: &str, state: MarkState, message: Option<String>) -> Self {
        CellMark {
            key: key.to_string(),
            name: name.to_string(),
            state,
            host: stilts_model::util::hostname(),
            pid: std::process::id(),
            job: slurm_job(),
            log: std::env::var("STILTS_CELL_LOG")
                .ok()
                .filter(|s| !s.is_empty()),
            since: now(),
            message,
            model: String::new(),
            seed: 0,
        }
    }

    /// The mark with the condition's model and seed (what `stilts status`
    /// shows for a cell no submission lists).
    pub fn of(mut self, model: &str, seed: u64) -> Self {
        self.model = model.to_string();
        self.seed = seed;
        self
    }

    /// Whether the process of a `running` mark is gone (known only on the
    /// machine it ran on: elsewhere `None`).
    pub fn process_gone(&self) -> Option<bool> {
        (self.host == stilts_model::util::hostname())
            .then(|| !stilts_model::util::pid_alive(self.pid))
    }
}

/// The last `n` lines of a log file (empty when it cannot be read).
pub fn log_tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return vec![];
    };
    // Progress bars redraw with carriage returns: keep each line's last state.
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<String> = text
        .lines()
        .map(|l| l.rsplit('\r').next().unwrap_or(l).trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

impl Store {
    fn marks_dir(&self) -> PathBuf {
        self.root().join("cells")
    }

    fn mark_path(&self, key: &str) -> PathBuf {
        self.marks_dir()
            .join(format!("{}.json", &key[..key.len().min(32)]))
    }

    /// Writes (replaces) a cell's mark.
    pub fn mark(&self, m: &CellMark) -> Result<()> {
        let dir = self.marks_dir();
        std::fs::create_dir_all(&dir).with_path(&dir)?;
        let json = serde_json::to_string_pretty(m).map_err(|e| Error::msg(e.to_string()))?;
        super::write_renamed(&self.mark_path(&m.key), json.as_bytes())
    }

    /// Removes a cell's mark (its record is kept).
    pub fn unmark(&self, key: &str) {
        let _ = std::fs::remove_file(self.mark_path(key));
    }

    /// The mark of a cell, if any.
    pub fn mark_of(&self, key: &str) -> Option<CellMark> {
        let text = std::fs::read_to_string(self.mark_path(key)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Every mark, by key.
    pub fn marks(&self) -> Vec<CellMark> {
        let Ok(entries) = std::fs::read_dir(self.marks_dir()) else {
            return vec![];
        };
        let mut out: Vec<CellMark> = entries
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().to_string();
                !n.starts_with('.') && n.ends_with(".json")
            })
            .filter_map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok())
            .collect();
        out.sort_by(|a: &CellMark, b| a.key.cmp(&b.key));
        out
    }
}
