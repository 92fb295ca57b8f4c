//! The results store: one JSON record per finished run, appended to a
//! JSON-lines file under an exclusive file lock.
//!
//! Why JSON lines and not SQLite: records are written once and read whole;
//! a text file is greppable, diffable and readable without tools; appends
//! under `flock` are safe across processes; and there is no C library to
//! build. A crash mid-append leaves at most an unterminated last line, which
//! readers skip. Memoisation looks runs up by the hash of their exact
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

    /// Appends one record atomically with respect to other writers.
    pub fn append(&self, record: &RunRecord) -> Result<()> {
        if let Some(dir) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut line = serde_json::to_string(record).map_err(|e| Error::msg(e.to_string()))?;
        line.push('\n');
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        f.lock().map_err(|e| Error::io(&self.path, e))?;
        let res = f.write_all(line.as_bytes()).and_then(|_| f.sync_data());
        let _ = f.unlock();
        res.map_err(|e| Error::io(&self.path, e))
    }

    /// Every complete record, in append order. A malformed line is an error
    /// naming it; an unterminated last line (a crash mid-append) is skipped.
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
                break; // torn final append
            }
            if buf.trim().is_empty() {
                continue;
            }
            let rec: RunRecord = serde_json::from_str(&buf).map_err(|e| Error::Data {
                path: self.path.clone(),
                line: line_no,
                msg: format!("not a run record ({e}); fix or remove the line"),
            })?;
            out.push(rec);
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
