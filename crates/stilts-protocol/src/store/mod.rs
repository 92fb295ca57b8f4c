//! The results store: one file per finished run, written by atomic
//! rename, so that processes on different nodes of a cluster can finish
//! runs at the same moment without locks.
//!
//! Layout, for a store `DIR/runs.jsonl`:
//! - `DIR/runs.records/KEY-TIME-HASH.json`: one finished run each. A writer
//!   writes a hidden temporary file and renames it into place; `rename` is
//!   atomic on a local filesystem and on NFS and Lustre alike, so a reader
//!   sees a record whole or not at all, and two writers never touch the
//!   same file (the name carries the configuration key, the finishing time
//!   and a hash of the content). A writer killed mid-write leaves only a
//!   hidden temporary file, which readers skip.
//! - `DIR/runs.jsonl`: a JSON-lines view of every record (greppable,
//!   diffable), regenerated after each append and replaced by rename. It is
//!   derived: readers never trust it, and an edit to it is overwritten. Two
//!   writers finishing at once may leave a view without the other's record
//!   until the next append or `stilts status`; the record itself is safe.
//! - `DIR/claims/KEY.lock`: advisory `flock`s that keep two processes on
//!   one machine from training the same key at once. They are an economy,
//!   not what the store's correctness rests on: where `flock` fails (NFS
//!   without a lock manager, Lustre mounted without `flock`) or is turned
//!   off (`STILTS_LOCKS=off`, for filesystems where it hangs), a claim is
//!   granted with a warning and the worst case is the same key trained twice,
//!   both results kept, the later one used.
//! - `DIR/cells/KEY.json`: what a cell is doing (running, failed,
//!   interrupted; see [`cells`]) for `stilts plan` and `stilts status`.
//!
//! Why files and not SQLite: SQLite's locking is unsafe on network
//! filesystems, records are written once and read whole, and text files
//! need no tool to read. A store written by an older stilts (only
//! `runs.jsonl`, appended under `flock`) is read as it is and moved into
//! `runs.records/` by the first append; a torn last line in it (a writer
//! killed mid-append) goes to `runs.jsonl.damaged` with a warning.

pub mod cells;
pub mod gc;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use stilts_model::error::{Error, Result, WithPath};

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
    /// How many times the model predicted each class, per classification
    /// evaluation set (`EVALUATION/LANGUAGE`): what marks a model that
    /// collapsed to one class (`summary::collapses`). Empty in records
    /// written before stilts kept it, and for other metrics.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub predictions: BTreeMap<String, BTreeMap<String, u64>>,
    /// Wall-clock time the condition took, in seconds (0 for a `memo` value).
    pub seconds: f64,
    /// The device it ran on, as candle names its location (e.g. `Cpu`); empty
    /// for a `memo` value.
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
    stilts_model::util::sha256_hex(config.to_string().as_bytes())
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

/// How claims use `flock` (`STILTS_LOCKS`): `on` (the default), `off` (no
/// lock calls at all, for filesystems where `flock` hangs), or `fail`
/// (every lock call fails, as on NFS without a lock manager: for tests).
fn lock_mode() -> &'static str {
    match std::env::var("STILTS_LOCKS").as_deref() {
        Ok("off") => "off",
        Ok("fail") => "fail",
        _ => "on",
    }
}

/// A held claim on a key (see [`Store::claim`]); released when dropped.
pub struct Claim {
    _file: Option<File>,
}

/// A results store (see the module documentation for its layout).
#[derive(Clone, Debug)]
pub struct Store {
    path: PathBuf,
}

/// A unique hidden temporary name beside `path`: host, process and time,
/// so writers on different nodes (where process ids repeat) never share one.
fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    dir.join(format!(
        ".{name}.tmp.{}.{}.{nanos}",
        stilts_model::util::hostname(),
        std::process::id()
    ))
}

/// Writes `bytes` to `path` through a unique temporary file and a rename
/// (synced first): a reader sees the old file or the new, never a mix.
pub(crate) fn write_renamed(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_beside(path);
    let res = (|| -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.with_path(path)
}

impl Store {
    /// Opens (or will create) the store at `path` (a `.jsonl` file; its
    /// records live in the folder beside it, see the module documentation).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Store { path: path.into() }
    }

    /// The default location: `$STILTS_RESULTS`, else `results/runs.jsonl`.
    pub fn default_path() -> PathBuf {
        std::env::var_os("STILTS_RESULTS")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("results").join("runs.jsonl"))
    }

    /// The JSON-lines view.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder the store lives in (claims, cell states and checkpoints
    /// go under it).
    pub fn root(&self) -> PathBuf {
        self.path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// The folder of record files: `runs.jsonl` -> `runs.records/`.
    pub fn records_dir(&self) -> PathBuf {
        let stem = self
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "runs".into());
        self.root().join(format!("{stem}.records"))
    }

    /// The file name of a record: its key, finishing time and a hash of its
    /// content (so the same record written twice is one file).
    fn record_name(record: &RunRecord, line: &str) -> String {
        let h = stilts_model::util::sha256_hex(line.as_bytes());
        format!(
            "{}-{:010}-{}.json",
            record.key,
            record.finished_at,
            &h[..12]
        )
    }

    /// Keeps one finished run. Safe against other writers on this or any
    /// other machine sharing the folder, with or without working locks; a
    /// kill at any moment leaves the record written or not, never half.
    pub fn append(&self, record: &RunRecord) -> Result<()> {
        let line = serde_json::to_string(record).map_err(|e| Error::msg(e.to_string()))?;
        let dir = self.records_dir();
        if !dir.is_dir() {
            self.migrate_legacy()?;
        }
        write_renamed(&dir.join(Self::record_name(record, &line)), line.as_bytes())?;
        self.write_view()
    }

    /// Regenerates the JSON-lines view from the record files (what
    /// `append` does after each record; `stilts status` does it too).
    pub fn write_view(&self) -> Result<()> {
        let mut text = String::new();
        for r in self.records()? {
            text.push_str(&serde_json::to_string(&r).map_err(|e| Error::msg(e.to_string()))?);
            text.push('\n');
        }
        write_renamed(&self.path, text.as_bytes())
    }

    /// Creates the records folder, moving the records of a store written by
    /// an older stilts (only `runs.jsonl`) into it first. Built in a
    /// private folder and renamed into place, so a second process doing the
    /// same at the same moment loses the race harmlessly.
    fn migrate_legacy(&self) -> Result<()> {
        let dir = self.records_dir();
        let root = self.root();
        std::fs::create_dir_all(&root).with_path(&root)?;
        let legacy = if self.path.is_file() {
            self.set_aside_torn_tail()?;
            self.legacy_records()?
        } else {
            vec![]
        };
        let tmp = temp_beside(&dir);
        std::fs::create_dir_all(&tmp).with_path(&tmp)?;
        for r in &legacy {
            let line = serde_json::to_string(r).map_err(|e| Error::msg(e.to_string()))?;
            std::fs::write(tmp.join(Self::record_name(r, &line)), line).with_path(&tmp)?;
        }
        match std::fs::rename(&tmp, &dir) {
            Ok(()) => Ok(()),
            Err(_) if dir.is_dir() => {
                // Another process created it first (with the same records).
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Err(Error::io(&dir, e))
            }
        }
    }

    /// Claims `key` for this process: an exclusive `flock` on
    /// `STORE_DIR/claims/KEY.lock` (holding this pid), kept until the guard
    /// is dropped. A second process that claims the same key waits for the
    /// first (`on_wait` is called once with the holder's pid, so it can say
    /// so) and should then look the key up again: it is usually done. Where
    /// the lock call fails (or `STILTS_LOCKS=off`), the claim is granted
    /// with a warning: the store stays correct, at worst a key is trained
    /// twice.
    pub fn claim(&self, key: &str, on_wait: &mut dyn FnMut(&str)) -> Result<Claim> {
        let mode = lock_mode();
        if mode == "off" {
            return Ok(Claim { _file: None });
        }
        let dir = self.root().join("claims");
        std::fs::create_dir_all(&dir).with_path(&dir)?;
        let path = dir.join(format!("{}.lock", &key[..key.len().min(32)]));
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_path(&path)?;
        let unlocked = |e: std::io::Error| {
            warn_once(&format!(
                "warning: {}: cannot lock ({e}); going on without claims: two processes may train the same condition, the store stays correct (STILTS_LOCKS=off silences this)",
                path.display()
            ));
            Ok(Claim { _file: None })
        };
        if mode == "fail" {
            return unlocked(std::io::Error::from_raw_os_error(37)); // ENOLCK
        }
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                on_wait(holder.trim());
                if let Err(e) = f.lock() {
                    return unlocked(e);
                }
            }
            Err(std::fs::TryLockError::Error(e)) => return unlocked(e),
        }
        let _ = f.set_len(0);
        let _ = write!(f, "{}", std::process::id());
        Ok(Claim { _file: Some(f) })
    }

    /// The damaged lines' file beside the store.
    pub fn damaged_path(&self) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(".damaged");
        PathBuf::from(p)
    }

    /// In a store written by an older stilts: when `runs.jsonl` does not end
    /// with a newline, moves its last partial line to the `.damaged` file.
    fn set_aside_torn_tail(&self) -> Result<()> {
        let bytes = std::fs::read(&self.path).with_path(&self.path)?;
        if bytes.is_empty() || bytes.ends_with(b"\n") {
            return Ok(());
        }
        let start = bytes
            .iter()
            .rposition(|&b| b == b'\n')
            .map(|i| i + 1)
            .unwrap_or(0);
        let line_no = bytes[..start].iter().filter(|&&b| b == b'\n').count() + 1;
        let damaged = self.damaged_path();
        let mut d = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&damaged)
            .with_path(&damaged)?;
        let mut tail = bytes[start..].to_vec();
        tail.push(b'\n');
        d.write_all(&tail).with_path(&damaged)?;
        write_renamed(&self.path, &bytes[..start])?;
        eprintln!(
            "warning: {}:{line_no}: a torn record (a writer killed mid-append, {} bytes) was moved to {}",
            self.path.display(),
            tail.len() - 1,
            damaged.display()
        );
        Ok(())
    }

    /// The records of a store written by an older stilts (`runs.jsonl`
    /// only). A torn last line or a malformed line is left out with a
    /// warning (once per process) naming the store and line.
    fn legacy_records(&self) -> Result<Vec<RunRecord>> {
        let f = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(Error::io(&self.path, e)),
        };
        let mut out = vec![];
        let mut reader = BufReader::new(&f);
        let mut buf = String::new();
        let mut line_no = 0;
        loop {
            buf.clear();
            let n = reader.read_line(&mut buf).with_path(&self.path)?;
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
        Ok(out)
    }

    /// The record files whose name starts with `prefix`, oldest first
    /// (by finishing time, then name).
    fn record_files(&self, prefix: &str) -> Result<Vec<PathBuf>> {
        let dir = self.records_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(Error::io(&dir, e)),
        };
        let mut names: Vec<(String, String)> = vec![];
        for e in entries {
            let e = e.with_path(&dir)?;
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || !name.ends_with(".json") || !name.starts_with(prefix) {
                continue;
            }
            // KEY-TIME-HASH.json: sort by TIME, then the whole name.
            let time = name.split('-').nth(1).unwrap_or("").to_string();
            names.push((time, name));
        }
        names.sort();
        Ok(names.into_iter().map(|(_, n)| dir.join(n)).collect())
    }

    fn read_record(path: &Path) -> Option<RunRecord> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            // Removed between the listing and the read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                warn_once(&format!(
                    "warning: {}: cannot read ({e}); left out",
                    path.display()
                ));
                return None;
            }
        };
        match serde_json::from_str::<RunRecord>(&text) {
            Ok(r) => Some(r),
            Err(e) => {
                warn_once(&format!(
                    "warning: {}: not a run record ({e}); it is left out: remove it",
                    path.display()
                ));
                None
            }
        }
    }

    /// Every finished run, oldest first. A store of an older stilts (no
    /// records folder yet) is read from its `runs.jsonl`.
    pub fn records(&self) -> Result<Vec<RunRecord>> {
        if !self.records_dir().is_dir() {
            return self.legacy_records();
        }
        Ok(self
            .record_files("")?
            .iter()
            .filter_map(|p| Self::read_record(p))
            .collect())
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
            predictions: BTreeMap::new(),
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

    /// The latest finished run whose key starts with `prefix` (a cell's
    /// short key, as `stilts plan` and `--only` show it). A prefix two
    /// different keys start with is an error naming both.
    pub fn find_prefix(&self, prefix: &str) -> Result<Option<RunRecord>> {
        let all: Vec<RunRecord> = if self.records_dir().is_dir() {
            self.record_files(prefix)?
                .iter()
                .filter_map(|p| Self::read_record(p))
                .collect()
        } else {
            self.legacy_records()?
        };
        let hits: Vec<RunRecord> = all
            .into_iter()
            .filter(|r| r.key.starts_with(prefix))
            .collect();
        if let Some(other) = hits.iter().find(|r| r.key != hits[0].key) {
            return Err(Error::msg(format!(
                "{}: the cell key `{prefix}` is ambiguous: it starts {} and {}; give more of it",
                self.path.display(),
                &hits[0].key[..16.min(hits[0].key.len())],
                &other.key[..16.min(other.key.len())]
            )));
        }
        Ok(hits.into_iter().next_back())
    }

    /// The latest finished run with exactly this configuration.
    pub fn find(&self, key: &str) -> Result<Option<RunRecord>> {
        if !self.records_dir().is_dir() {
            return Ok(self
                .legacy_records()?
                .into_iter()
                .rev()
                .find(|r| r.key == key));
        }
        Ok(self
            .record_files(&format!("{key}-"))?
            .iter()
            .rev()
            .filter_map(|p| Self::read_record(p))
            .find(|r| r.key == key))
    }
}
