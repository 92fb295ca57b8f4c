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

use super::errors::Sources;
use super::values::TableValue;
use crate::protocol::train::{Progress, Silent};

/// Set by Ctrl-C; long calls stop at their next step, the interpreter at its
/// next operation.
pub static CANCEL: AtomicBool = AtomicBool::new(false);

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

/// Settings of a runtime, from the command line.
#[derive(Clone, Debug)]
pub struct Settings {
    pub device: Device,
    pub quiet: bool,
    /// Interpreter operations before a script is stopped (0: no limit).
    pub max_operations: u64,
    /// `--set name=value`.
    pub params: BTreeMap<String, Dynamic>,
    /// Where `memo` keeps finished runs.
    pub store_dir: PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            device: Device::Cpu,
            quiet: false,
            max_operations: 2_000_000_000,
            params: BTreeMap::new(),
            store_dir: PathBuf::from("runs"),
        }
    }
}

/// One thing a script showed.
#[derive(Clone, Debug)]
pub enum Item {
    Text(String),
    Table(TableValue),
    /// A plot written to this file.
    Image(PathBuf),
    /// Raw results (JSON) under a name.
    Data(String, serde_json::Value),
}

/// The output of one cell.
#[derive(Clone, Debug, Default)]
pub struct CellOutput {
    pub title: String,
    pub items: Vec<Item>,
}

/// Collects what a run prints and shows, cell by cell.
#[derive(Debug, Default)]
pub struct Recorder {
    pub cells: Vec<CellOutput>,
    /// Also echo to stdout (off in tests of the recorder).
    pub silent: bool,
}

impl Recorder {
    fn current(&mut self) -> &mut CellOutput {
        if self.cells.is_empty() {
            self.cells.push(CellOutput::default());
        }
        self.cells.last_mut().expect("a cell")
    }

    pub fn start_cell(&mut self, title: &str) {
        self.cells.push(CellOutput {
            title: title.to_string(),
            items: vec![],
        });
    }

    pub fn text(&mut self, s: &str) {
        let cur = self.current();
        if let Some(Item::Text(t)) = cur.items.last_mut() {
            t.push_str(s);
            t.push('\n');
        } else {
            cur.items.push(Item::Text(format!("{s}\n")));
        }
    }

    pub fn push(&mut self, item: Item) {
        self.current().items.push(item);
    }
}

/// Shared by every binding of one runtime.
pub struct Ctx {
    pub settings: Settings,
    /// The folder of the script being run (relative paths fall back to it).
    pub script_dir: Rc<RefCell<PathBuf>>,
    pub sources: Rc<RefCell<Sources>>,
    pub recorder: RefCell<Recorder>,
    /// The report folder of this run, when it writes one.
    pub report_dir: RefCell<Option<PathBuf>>,
    pub store_dir: RefCell<PathBuf>,
}

impl Ctx {
    pub fn new(settings: Settings) -> Rc<Self> {
        let store = settings.store_dir.clone();
        Rc::new(Ctx {
            settings,
            script_dir: Rc::new(RefCell::new(PathBuf::from("."))),
            sources: Default::default(),
            recorder: Default::default(),
            report_dir: RefCell::new(None),
            store_dir: RefCell::new(store),
        })
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

    /// A progress bar for a long call (nothing with `--quiet`).
    pub fn progress(&self, label: &str) -> Box<dyn Progress> {
        if self.settings.quiet {
            Box::new(Silent)
        } else {
            Box::new(crate::progress::Bar::new(label))
        }
    }

    /// Prints a line and records it for the report.
    pub fn say(&self, s: &str) {
        println!("{s}");
        self.recorder.borrow_mut().text(s);
    }

    /// A note on stderr (not in the report) unless `--quiet`.
    pub fn note(&self, s: &str) {
        if !self.settings.quiet {
            eprintln!("{s}");
        }
    }

    pub fn device_name(&self) -> String {
        device_name(&self.settings.device)
    }
}

pub fn device_name(d: &Device) -> String {
    match d.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

/// `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(s: &str) -> crate::Result<Device> {
    let s = s.trim();
    if s == "cpu" {
        return Ok(Device::Cpu);
    }
    let ord = match s.strip_prefix("cuda") {
        Some("") => 0,
        Some(rest) => rest
            .strip_prefix(':')
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| crate::Error::msg(format!("--device `{s}`: use cpu, cuda or cuda:N")))?,
        None => {
            return Err(crate::Error::msg(format!(
                "--device `{s}`: use cpu, cuda or cuda:N"
            )))
        }
    };
    Device::new_cuda(ord).map_err(|e| {
        if cfg!(feature = "cuda") {
            crate::Error::msg(format!("--device {s}: {e}"))
        } else {
            crate::Error::msg(format!("--device {s}: this stilts was built without CUDA; rebuild with `cargo build --release --features cuda`"))
        }
    })
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
