//! The results store: one JSON record per finished run, appended to a
//! JSON-lines file under an exclusive file lock.
//!
//! Why JSON lines and not SQLite: records are written once and read whole;
//! a text file is greppable, diffable and readable without tools; appends
//! under `flock` are safe across processes; and there is no C library to
//! build. A crash mid-append leaves at most an unterminated last line, which
//! readers leave out with a warning and the next append moves to
//! `STORE.damaged` before writing (so no record is ever glued onto it).
//! Memoisation looks runs up by the hash of their exact
//! configuration.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Everything needed to recognise, trust and reuse one run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunRecord {
    /// SHA-256 of `config` (canonical JSON): the memoisation key.
    pub key: String,
    /// The full configuration: model id and hash, task files and hashes,
    /// hyperparameters, seed, phases.
    pub config: serde_json::Value,
    /// stilts version (and git commit when known).
    pub code_version: String,
    /// Metric per evaluation set or language (e.g. `xnli.sw` -> 71.3).
    pub metrics: BTreeMap<String, f64>,
    /// Per-example correctness per evaluation set, as hex bit strings (for
    /// bootstrap CIs and paired comparisons across runs).
    #[serde(default)]
    pub correct: BTreeMap<String, String>,
    /// Training curves: (update, loss) per phase.
    #[serde(default)]
    pub curves: BTreeMap<String, Vec<(u64, f64)>>,
    pub seconds: f64,
    pub device: String,
    /// Unix time the run finished.
    pub finished_at: u64,
    /// A script-level result kept under its key (rhai's `memo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

/// The memoisation key of a configuration.
pub fn config_key(config: &serde_json::Value) -> String {
    // serde_json's Map is a BTreeMap here, so serialisation is canonical.
    crate::util::sha256_hex(config.to_string().as_bytes())
}

/// Packs booleans into a hex string (4 per digit, first bit most significant).
pub fn pack_bits(bits: &[bool]) -> String {
    let mut s = format!("{}:", bits.len());
    for chunk in bits.chunks(4) {
        let mut v = 0u8;
        for (i, b) in chunk.iter().enumerate() {
            v |= (*b as u8) << (3 - i);
        }
        s.push(char::from_digit(v as u32, 16).unwrap_or('0'));
    }
    s
}

/// The inverse of [`pack_bits`].
pub fn unpack_bits(s: &str) -> Option<Vec<bool>> {
    let (n, hex) = s.split_once(':')?;
    let n: usize = n.parse().ok()?;
    let mut out = Vec::with_capacity(n);
    for c in hex.chars() {
        let v = c.to_digit(16)?;
        for i in 0..4 {
            if out.len() < n {
                out.push(v & (1 << (3 - i)) != 0);
            }
        }
    }
    (out.len() == n).then_some(out)
}

/// Prints `msg` on stderr the first time it is given in this process.
fn warn_once(msg: &str) {
    static SEEN: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    if let Ok(mut seen) = SEEN.lock() {
        if !seen.iter().any(|m| m == msg) {
            eprintln!("{msg}");
            seen.push(msg.to_string());
        }
    }
}

/// A held claim on a key (see [`Store::claim`]); released when dropped.
pub struct Claim {
    _file: File,
}

/// A results file.
#[derive(Clone, Debug)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// Opens (or will create) the store at `path` (a `.jsonl` file).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Store { path: path.into() }
    }

    /// The default location: `$STILTS_RESULTS`, else `results/runs.jsonl`.
    pub fn default_path() -> PathBuf {
        std::env::var_os("STILTS_RESULTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("results").join("runs.jsonl"))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record atomically with respect to other writers. A torn
    /// last line (a writer killed mid-append) is first moved to
    /// `STORE.damaged` with a warning naming the store, so the new record
    /// starts on a line of its own.
    pub fn append(&self, record: &RunRecord) -> Result<()> {
        if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut line = serde_json::to_string(record).map_err(|e| Error::msg(e.to_string()))?;
        line.push('\n');
        let mut f = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        f.lock().map_err(|e| Error::io(&self.path, e))?;
        let res = self.set_aside_torn_tail(&mut f).and_then(|_| {
            f.write_all(line.as_bytes())
                .and_then(|_| f.sync_data())
                .map_err(|e| Error::io(&self.path, e))
        });
        let _ = f.unlock();
        res
    }

    /// Claims `key` for this process: an exclusive lock on
    /// `STORE_DIR/claims/KEY.lock` (holding this pid), kept until the guard
    /// is dropped. A second process that claims the same key waits for the
    /// first (`on_wait` is called once with the holder's pid, so it can say
    /// so) and should then look the key up again: it is usually done.
    pub fn claim(&self, key: &str, on_wait: &mut dyn FnMut(&str)) -> Result<Claim> {
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join("claims");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let path = dir.join(format!("{}.lock", &key[..key.len().min(32)]));
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                on_wait(holder.trim());
                f.lock().map_err(|e| Error::io(&path, e))?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        let _ = f.set_len(0);
        let _ = write!(f, "{}", std::process::id());
        Ok(Claim { _file: f })
    }

    /// The damaged lines' file beside the store.
    pub fn damaged_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".damaged");
        PathBuf::from(p)
    }

    /// Under the writer's lock: when the file does not end with a newline,
    /// moves its last partial line to the `.damaged` file and cuts it off.
    fn set_aside_torn_tail(&self, f: &mut File) -> Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        let io = |e| Error::io(&self.path, e);
        let len = f.metadata().map_err(io)?.len();
        if len == 0 {
            return Ok(());
        }
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1)).map_err(io)?;
        f.read_exact(&mut last).map_err(io)?;
        if last[0] == b'\n' {
            return Ok(());
        }
        // Find the start of the torn line.
        let mut start = len;
        let mut chunk = vec![0u8; 64 * 1024];
        while start > 0 {
            let from = start.saturating_sub(chunk.len() as u64);
            let n = (start - from) as usize;
            f.seek(SeekFrom::Start(from)).map_err(io)?;
            f.read_exact(&mut chunk[..n]).map_err(io)?;
            if let Some(i) = chunk[..n].iter().rposition(|&b| b == b'\n') {
                start = from + i as u64 + 1;
                break;
            }
            start = from;
        }
        let mut tail = vec![0u8; (len - start) as usize];
        f.seek(SeekFrom::Start(start)).map_err(io)?;
        f.read_exact(&mut tail).map_err(io)?;
        let line_no = {
            let mut head = vec![0u8; start as usize];
            f.seek(SeekFrom::Start(0)).map_err(io)?;
            f.read_exact(&mut head).map_err(io)?;
            head.iter().filter(|&&b| b == b'\n').count() + 1
        };
        let damaged = self.damaged_path();
        let mut d = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&damaged)
            .map_err(|e| Error::io(&damaged, e))?;
        tail.push(b'\n');
        d.write_all(&tail).map_err(|e| Error::io(&damaged, e))?;
        f.set_len(start).map_err(io)?;
        eprintln!(
            "warning: {}:{line_no}: a torn record (a writer killed mid-append, {} bytes) was moved to {}",
            self.path.display(),
            tail.len() - 1,
            damaged.display()
        );
        Ok(())
    }

    /// Every complete record, in append order. A torn last line (a crash
    /// mid-append) or a malformed line is left out with a warning (once per
    /// process) naming the store and line.
    pub fn records(&self) -> Result<Vec<RunRecord>> {
        let f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(Error::io(&self.path, e)),
        };
        f.lock_shared().map_err(|e| Error::io(&self.path, e))?;
        let mut out = vec![];
        let mut reader = BufReader::new(&f);
        let mut buf = String::new();
        let mut line_no = 0;
        loop {
            buf.clear();
            let n = reader
                .read_line(&mut buf)
                .map_err(|e| Error::io(&self.path, e))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if !buf.ends_with('\n') {
                warn_once(&format!(
                    "warning: {}:{line_no}: the last line is torn (a writer killed mid-append); it is left out, and moved to {} by the next append",
                    self.path.display(),
                    self.damaged_path().display()
                ));
                break;
            }
            if buf.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<RunRecord>(&buf) {
                Ok(rec) => out.push(rec),
                Err(e) => warn_once(&format!(
                    "warning: {}:{line_no}: not a run record ({e}); it is left out: move it to {} or remove it",
                    self.path.display(),
                    self.damaged_path().display()
                )),
            }
        }
        let _ = f.unlock();
        Ok(out)
    }

    /// Keeps `value` under the configuration `config` (rhai's `memo`): a
    /// record with that key, no metrics, and the value.
    pub fn put_value(&self, config: &serde_json::Value, value: &serde_json::Value) -> Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.append(&RunRecord {
            key: config_key(config),
            config: config.clone(),
            code_version: format!("stilts {}", env!("CARGO_PKG_VERSION")),
            metrics: BTreeMap::new(),
            correct: BTreeMap::new(),
            curves: BTreeMap::new(),
            seconds: 0.0,
            device: String::new(),
            finished_at: now,
            value: Some(value.clone()),
        })
    }

    /// The value last kept under `config`, if any.
    pub fn get_value(&self, config: &serde_json::Value) -> Result<Option<serde_json::Value>> {
        Ok(self.find(&config_key(config))?.and_then(|r| r.value))
    }

    /// The latest finished run with exactly this configuration.
    pub fn find(&self, key: &str) -> Result<Option<RunRecord>> {
        Ok(self.records()?.into_iter().rev().find(|r| r.key == key))
    }
}
