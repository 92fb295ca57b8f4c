//! What the bindings share: the device, `--set` parameters, the results
//! store, the Ctrl-C flag, progress bars and the recorder that collects a
//! run's output for its report.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::Device;
use rhai::Dynamic;

use super::values::TableValue;
use crate::sources::Sources;
use stilts_protocol::train::{Progress, Silent};

/// Set by Ctrl-C; long calls stop at their next step, the interpreter at its
/// next operation.
pub static CANCEL: AtomicBool = AtomicBool::new(false);

/// Set by the REPL: messages then say "run the call again" where a batch
/// run would say "run the script again".
pub static INTERACTIVE: AtomicBool = AtomicBool::new(false);

/// What to run again after an interruption: the call (REPL) or the script.
pub fn again() -> &'static str {
    again_words(INTERACTIVE.load(Ordering::Relaxed))
}

/// [`again`]'s words in the REPL (`interactive`) and in a batch run.
pub fn again_words(interactive: bool) -> &'static str {
    if interactive {
        "run the call again"
    } else {
        "run the script again"
    }
}

/// Whether Ctrl-C or a signal has asked the run to stop (`CANCEL` is set).
pub fn cancelled() -> bool {
    CANCEL.load(Ordering::Relaxed)
}

/// The signal that stopped the run, when one did (0: none): SIGINT
/// (Ctrl-C), SIGTERM and SIGUSR1 (what Slurm sends before a time limit or
/// preemption, with `--signal`).
pub static SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Installs the handlers once (later calls are no-ops): Ctrl-C, SIGTERM and
/// SIGUSR1 all set [`CANCEL`]; training then writes a checkpoint at its
/// next step and the run exits non-zero, to resume on the next run.
pub fn install_ctrlc() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ctrlc::set_handler(|| {
            SIGNAL.store(signal_hook::consts::SIGINT, Ordering::Relaxed);
            CANCEL.store(true, Ordering::Relaxed)
        });
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGUSR1] {
            // SAFETY: the handler only stores to two atomics, which is
            // async-signal-safe.
            let _ = unsafe {
                signal_hook::low_level::register(sig, move || {
                    SIGNAL.store(sig, Ordering::Relaxed);
                    CANCEL.store(true, Ordering::Relaxed);
                })
            };
        }
    });
}

/// The name of the signal that stopped the run (`Ctrl-C`, `SIGTERM`,
/// `SIGUSR1`), or `Ctrl-C` when none is recorded.
pub fn signal_name() -> &'static str {
    match SIGNAL.load(Ordering::Relaxed) {
        signal_hook::consts::SIGTERM => "SIGTERM",
        signal_hook::consts::SIGUSR1 => "SIGUSR1",
        _ => "Ctrl-C",
    }
}

/// 90% of the memory this process may use: the smallest of the machine's
/// memory (/proc/meminfo), its cgroup's `memory.max` (what Slurm's `--mem`
/// and containers set; cgroup v1's `memory.limit_in_bytes`) and its
/// address-space limit (`ulimit -v`, RLIMIT_AS); 0 (no limit) where none
/// can be read.
pub fn default_memory_budget() -> u64 {
    [
        machine_memory(),
        cgroup_memory_limit(),
        address_space_limit(),
    ]
    .into_iter()
    .flatten()
    .min()
    .map(|b| b / 10 * 9)
    .unwrap_or(0)
}

/// The machine's memory in bytes (MemTotal).
fn machine_memory() -> Option<u64> {
    let t = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = t
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The smallest memory limit of this process's cgroup and its ancestors
/// (`memory.max` in cgroup v2, `memory.limit_in_bytes` in v1), if any.
pub fn cgroup_memory_limit() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    cgroup_memory_limit_in(&own, Path::new("/sys/fs/cgroup"))
}

/// [`cgroup_memory_limit`] for the `/proc/self/cgroup` text `own`, with the
/// cgroup filesystem at `sys` (`/sys/fs/cgroup`).
pub fn cgroup_memory_limit_in(own: &str, sys: &Path) -> Option<u64> {
    let mut best: Option<u64> = None;
    for line in own.lines() {
        // v2: `0::/path`; v1: `N:memory:/path` (or `N:...,memory,...:/path`).
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        let (root, file) = if controllers.is_empty() {
            (sys.to_path_buf(), "memory.max")
        } else if controllers.split(',').any(|c| c == "memory") {
            (sys.join("memory"), "memory.limit_in_bytes")
        } else {
            continue;
        };
        let root_len = root.as_os_str().len();
        let mut dir = root.join(path.trim_start_matches('/'));
        loop {
            if let Ok(v) = std::fs::read_to_string(dir.join(file)) {
                // `max`, or v1's "no limit" (a page-rounded i64::MAX).
                if let Ok(b) = v.trim().parse::<u64>() {
                    if b < (1u64 << 60) {
                        best = Some(best.map_or(b, |x| x.min(b)));
                    }
                }
            }
            if dir.as_os_str().len() <= root_len || !dir.pop() {
                break;
            }
        }
    }
    best
}

/// The soft address-space limit (`ulimit -v`, RLIMIT_AS) in bytes, if any,
/// from /proc/self/limits.
pub fn address_space_limit() -> Option<u64> {
    let t = std::fs::read_to_string("/proc/self/limits").ok()?;
    let l = t.lines().find(|l| l.starts_with("Max address space"))?;
    l["Max address space".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The process's virtual size in bytes (from /proc/self/statm), if known:
/// what an address-space limit counts.
pub fn virtual_bytes() -> Option<u64> {
    let t = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = t.split_whitespace().next()?.parse().ok()?;
    Some(pages * 4096)
}

/// The process's resident memory in bytes (from /proc/self/statm), if known.
pub fn resident_bytes() -> Option<u64> {
    let t = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = t.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// The nearest existing ancestor of `p`, canonicalized, with the rest
/// appended (`..` in the rest is refused by returning `None`).
fn resolved(p: &Path) -> Option<PathBuf> {
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(p)
    };
    let mut rest = vec![];
    let mut cur = abs.as_path();
    loop {
        if let Ok(c) = std::fs::canonicalize(cur) {
            let mut out = c;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return Some(out);
        }
        let name = cur.file_name()?;
        if name == ".." {
            return None;
        }
        rest.push(name.to_os_string());
        cur = cur.parent()?;
    }
}

/// What a run does with the grid's cells (the `condition()` calls): the
/// unit of work that `stilts plan` lists, `stilts run --only` runs one of,
/// and `stilts submit` / `stilts run --jobs` spread over jobs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CellMode {
    /// Run every cell the store lacks (a plain `stilts run`).
    #[default]
    Run,
    /// `stilts plan`: list the cells; train, evaluate and write nothing.
    Plan,
    /// `stilts run --only KEY`: run the one cell whose key starts with KEY,
    /// then stop; nothing else trains or evaluates.
    Only(String),
    /// `stilts run --collect` (a cluster's collect job): every cell comes
    /// from the store; a cell not there is an error, never trained here.
    Collect,
    /// `stilts check`: the script runs as `stilts plan` runs it (options,
    /// keys, types, files and folders are all checked), but every training
    /// call and cell returns a stand-in at once, and nothing is written.
    Check,
}

impl CellMode {
    /// Whether training outside cells (and cells the store lacks) may run.
    pub fn trains(&self) -> bool {
        *self == CellMode::Run
    }

    /// Whether evaluations outside cells run (not while planning or running one cell).
    pub fn evaluates(&self) -> bool {
        matches!(self, CellMode::Run | CellMode::Collect)
    }

    /// The command-line words of the mode, for messages.
    pub fn words(&self) -> &'static str {
        match self {
            CellMode::Run => "stilts run",
            CellMode::Plan => "stilts plan",
            CellMode::Only(_) => "stilts run --only",
            CellMode::Collect => "stilts run --collect",
            CellMode::Check => "stilts check",
        }
    }

    /// Whether the run only lists or checks (no progress bars, no notes).
    pub fn silent(&self) -> bool {
        matches!(self, CellMode::Plan | CellMode::Check)
    }
}

/// One cell a run met, in the order the script reached it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct PlannedCell {
    /// The condition's fingerprint (its key in the store).
    pub key: String,
    /// The condition's `name` (default: its intermediate tasks joined by `+`,
    /// or `none`).
    pub name: String,
    /// The model, as the condition describes it.
    pub model: String,
    /// The condition's `seed` (default 0).
    pub seed: u64,
    /// In the store already.
    pub done: bool,
}

/// Settings of a runtime, from the command line.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where models are loaded and trained (`--device`; default the CPU).
    pub device: Device,
    /// `--quiet`: no progress bars and no notes on stderr (warnings still show).
    pub quiet: bool,
    /// Interpreter operations before a script is stopped (0: no limit).
    pub max_operations: u64,
    /// `--set name=value`.
    pub params: BTreeMap<String, Dynamic>,
    /// Where `memo` keeps finished runs.
    pub store_dir: PathBuf,
    /// Bytes of memory (resident) the process may use before a script is
    /// stopped with an error (0: no limit).
    pub max_memory: u64,
    /// Folders scripts may write to besides the working directory, the
    /// report folder and the store (`--allow-write`).
    pub allow_write: Vec<PathBuf>,
    /// What the run does with the grid's cells.
    pub cell_mode: CellMode,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            device: Device::Cpu,
            quiet: false,
            max_operations: 2_000_000_000,
            params: BTreeMap::new(),
            store_dir: PathBuf::from("runs"),
            max_memory: default_memory_budget(),
            allow_write: vec![],
            cell_mode: CellMode::Run,
        }
    }
}

/// One thing a script showed.
#[derive(Clone, Debug)]
pub enum Item {
    /// Printed lines, each ending in a newline (consecutive prints share one item).
    Text(String),
    /// A table: Markdown in the report, plus a CSV file beside it.
    Table(TableValue),
    /// A plot written to this file.
    Image(PathBuf),
    /// Raw results (JSON) under a name.
    Data(String, serde_json::Value),
    /// A paragraph of Markdown (a sentence that reads a result).
    Markdown(String),
}

/// The output of one cell.
#[derive(Clone, Debug, Default)]
pub struct CellOutput {
    /// The cell's title (`// %% title`); empty for output before the first marker.
    pub title: String,
    /// What the cell printed and showed, in order.
    pub items: Vec<Item>,
}

/// Collects what a run prints and shows, cell by cell.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Each cell's output in run order; output before any marker goes into an
    /// untitled first cell.
    pub cells: Vec<CellOutput>,
}

impl Recorder {
    fn current(&mut self) -> &mut CellOutput {
        if self.cells.is_empty() {
            self.cells.push(CellOutput::default());
        }
        self.cells.last_mut().expect("a cell")
    }

    /// Opens a new cell titled `title`: later output goes there (each
    /// `// %% title` marker calls this when the script reaches it).
    pub fn start_cell(&mut self, title: &str) {
        self.cells.push(CellOutput {
            title: title.to_string(),
            items: vec![],
        });
    }

    /// Records a printed line: appended, with a newline, to the current cell's
    /// last text item, or as a new text item.
    pub fn text(&mut self, s: &str) {
        let cur = self.current();
        if let Some(Item::Text(t)) = cur.items.last_mut() {
            t.push_str(s);
            t.push('\n');
        } else {
            cur.items.push(Item::Text(format!("{s}\n")));
        }
    }

    /// Adds `item` to the current cell.
    pub fn push(&mut self, item: Item) {
        self.current().items.push(item);
    }
}

/// Shared by every binding of one runtime.
pub struct Ctx {
    /// The command-line settings the runtime was made with.
    pub settings: Settings,
    /// The folder of the script being run (relative paths fall back to it).
    pub script_dir: Rc<RefCell<PathBuf>>,
    /// Texts of the scripts and modules compiled so far (for error excerpts).
    pub sources: Rc<RefCell<Sources>>,
    /// The run's output so far, cell by cell, for the report.
    pub recorder: RefCell<Recorder>,
    /// The report folder of this run, when it writes one.
    pub report_dir: RefCell<Option<PathBuf>>,
    /// The store's folder (`runs.jsonl` lives there): `Settings::store_dir`
    /// until the script calls `store(dir)`.
    pub store_dir: RefCell<PathBuf>,
    /// The cells met so far under `stilts plan`, `--only` and `--collect`
    /// (a plain run lists none).
    pub cells: RefCell<Vec<PlannedCell>>,
    /// The records of the conditions this run ran or reused, in order: the
    /// report's closing section (configuration, what each phase trained,
    /// prediction distributions) is made from them.
    pub conditions: RefCell<Vec<stilts_protocol::store::RunRecord>>,
    /// Set when `--only`'s cell has run (or was found done): the script
    /// then stops, successfully.
    pub only_done: std::cell::Cell<bool>,
    /// The keys of every map literal compiled so far, in the order the
    /// script wrote them (rhai maps iterate sorted): tables and plots keep
    /// the script's order of columns and bars.
    pub map_orders: RefCell<Vec<Vec<String>>>,
    /// The string defaults `param(name, default)` returned (no `--set
    /// name=...` given): an error about a path built from one names the
    /// `--set` that gives it.
    pub defaults_used: RefCell<Vec<(String, String)>>,
}

impl Ctx {
    /// A context for `settings`: script folder `.`, no report folder, no cells
    /// and nothing recorded yet.
    pub fn new(settings: Settings) -> Rc<Self> {
        let store = settings.store_dir.clone();
        Rc::new(Ctx {
            settings,
            script_dir: Rc::new(RefCell::new(PathBuf::from("."))),
            sources: Default::default(),
            recorder: Default::default(),
            report_dir: RefCell::new(None),
            store_dir: RefCell::new(store),
            cells: RefCell::new(vec![]),
            conditions: RefCell::new(vec![]),
            only_done: std::cell::Cell::new(false),
            map_orders: Default::default(),
            defaults_used: Default::default(),
        })
    }

    /// What to add to an error `message` that names a path built from a
    /// `param` default: which `--set` gives that path instead.
    pub fn default_hint(&self, message: &str) -> Option<String> {
        let lower = message.to_lowercase();
        let missing = [
            "no such file",
            "not found",
            "does not exist",
            "missing",
            "cannot read",
            "no model in",
        ]
        .iter()
        .any(|w| lower.contains(w));
        if !missing {
            return None;
        }
        self.defaults_used
            .borrow()
            .iter()
            .filter(|(_, v)| v.len() >= 3 && message.contains(v.as_str()))
            .max_by_key(|(_, v)| v.len())
            .map(|(k, v)| {
                format!(
                    "`{v}` is the default of param(\"{k}\", ...) (relative to the working directory, else to the script's folder): give the right one with --set {k}=PATH"
                )
            })
    }

    /// The keys of `m` in the order a map literal of the script wrote them
    /// (the last literal with the same keys), else sorted.
    pub fn key_order(&self, m: &rhai::Map) -> Vec<String> {
        let keys: Vec<String> = m.keys().map(|k| k.to_string()).collect();
        let orders = self.map_orders.borrow();
        for o in orders.iter().rev() {
            if o.len() == keys.len() && o.iter().all(|k| m.contains_key(k.as_str())) {
                return o.clone();
            }
        }
        keys
    }

    /// A path from a script: as given when it exists (relative to the
    /// working directory), else relative to the script's folder when it
    /// exists there, else as given.
    pub fn path(&self, p: &str) -> PathBuf {
        let given = PathBuf::from(p);
        if given.is_absolute() || given.exists() {
            return given;
        }
        let alt = self.script_dir.borrow().join(&given);
        if alt.exists() {
            alt
        } else {
            given
        }
    }

    /// `p` as a path the script may write to: under the working
    /// directory, the report folder, the store, or an `--allow-write`
    /// folder (symbolic links and `..` resolved first). Anything else is an
    /// error naming the path and the flag.
    pub fn writable(&self, p: &str) -> Result<PathBuf, String> {
        let path = PathBuf::from(p);
        let full = resolved(&path).ok_or_else(|| {
            format!("{p}: cannot tell where this path leads; write under the working directory")
        })?;
        let mut roots: Vec<PathBuf> = vec![PathBuf::from(".")];
        roots.push(self.store_dir.borrow().clone());
        if let Some(r) = self.report_dir.borrow().as_ref() {
            roots.push(r.clone());
        }
        roots.extend(self.settings.allow_write.iter().cloned());
        for r in &roots {
            if let Some(root) = resolved(r) {
                if full.starts_with(&root) {
                    return Ok(path);
                }
            }
        }
        Err(format!(
            "{p}: a script may write only under its working directory, the report folder and the store; give --allow-write {} to let it write there",
            full.parent().unwrap_or(&full).display()
        ))
    }

    /// A progress bar for a long call (nothing with `--quiet`).
    pub fn progress(&self, label: &str) -> Box<dyn Progress> {
        if self.settings.quiet || self.settings.cell_mode.silent() {
            Box::new(Silent)
        } else {
            Box::new(stilts_protocol::progress::Bar::new(label))
        }
    }

    /// Whether the script's writes (plots, saved tables and models) and
    /// prints happen: not while planning or running one cell, where its
    /// values are placeholders.
    pub fn writes(&self) -> bool {
        self.settings.cell_mode.evaluates()
    }

    /// Prints a line and records it for the report.
    pub fn say(&self, s: &str) {
        if !self.writes() {
            return;
        }
        println!("{s}");
        self.recorder.borrow_mut().text(s);
    }

    /// A note on stderr (not in the report) unless `--quiet`.
    pub fn note(&self, s: &str) {
        if !self.settings.quiet && !self.settings.cell_mode.silent() {
            eprintln!("{s}");
        }
    }

    /// A note that also goes into the report (what was trained, where a
    /// model was saved).
    pub fn record(&self, s: &str) {
        self.note(s);
        self.recorder.borrow_mut().text(s);
    }

    /// `warning: ...` on stderr (even when quiet) and in the report.
    pub fn warn(&self, s: &str) {
        eprintln!("warning: {s}");
        self.recorder.borrow_mut().text(&format!("warning: {s}"));
    }

    /// The settings' device by name (what a script's `device()` returns).
    pub fn device_name(&self) -> String {
        device_name(&self.settings.device)
    }
}

pub use stilts_model::device::{device_name, parse_device};

/// Whether `p` exists (file or folder).
pub fn exists(p: &Path) -> bool {
    p.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 32, item 9: the memory budget reads the cgroup's limit (what
    /// Slurm's `--mem` sets), the smallest along the path, v2 and v1.
    #[test]
    fn cgroup_limits_are_read_along_the_path() {
        let sys = tempfile::tempdir().unwrap();
        let job = sys.path().join("slurm/job_7");
        std::fs::create_dir_all(job.join("step_0")).unwrap();
        std::fs::write(sys.path().join("slurm/memory.max"), "max\n").unwrap();
        std::fs::write(job.join("memory.max"), "4294967296\n").unwrap();
        std::fs::write(job.join("step_0/memory.max"), "max\n").unwrap();
        assert_eq!(
            cgroup_memory_limit_in("0::/slurm/job_7/step_0\n", sys.path()),
            Some(4 << 30)
        );
        assert_eq!(cgroup_memory_limit_in("0::/slurm\n", sys.path()), None);
        let v1 = sys.path().join("memory/user");
        std::fs::create_dir_all(&v1).unwrap();
        std::fs::write(v1.join("memory.limit_in_bytes"), "1073741824\n").unwrap();
        assert_eq!(
            cgroup_memory_limit_in("5:cpu:/x\n4:memory:/user\n", sys.path()),
            Some(1 << 30)
        );
    }
}
