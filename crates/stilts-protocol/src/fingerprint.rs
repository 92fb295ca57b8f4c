//! What a result depends on, as a hash: the files of a model, the data a
//! task was read from and the examples it holds, the weights of a model
//! made in memory. A condition's fingerprint combines these with its
//! options and seed, so a stored result is reused only when nothing it
//! depends on has changed.
//!
//! Files are hashed whole (SHA-256), once per process for each
//! (path, size, modification time): a change anywhere in a file changes
//! its fingerprint, and a 40 GB checkpoint is read once per run, not once
//! per condition.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use stilts_model::error::{Error, Result, WithPath};
use stilts_model::Model;
use stilts_tasks::Dataset;

type FileKey = (PathBuf, u64, Option<std::time::SystemTime>);

fn cache() -> &'static Mutex<HashMap<FileKey, String>> {
    static CACHE: std::sync::OnceLock<Mutex<HashMap<FileKey, String>>> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The SHA-256 of a whole file, in hex.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let p = dir.path().join("a.txt");
/// std::fs::write(&p, "abc").unwrap();
/// let h = stilts_protocol::fingerprint::file(&p).unwrap();
/// assert_eq!(&h[..8], "ba7816bf");
/// ```
pub fn file(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).with_path(path)?;
    let key = (
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
        meta.len(),
        meta.modified().ok(),
    );
    if let Some(h) = cache().lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok(h);
    }
    let mut f = std::fs::File::open(path).with_path(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).with_path(path)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let h = hex(&hasher.finalize());
    if let Ok(mut c) = cache().lock() {
        c.insert(key, h.clone());
    }
    Ok(h)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash of a JSON value (its canonical text: maps are sorted).
pub fn of_json(v: &serde_json::Value) -> String {
    stilts_model::util::sha256_hex(serde_json::to_string(v).unwrap_or_default().as_bytes())
}

/// The files of a model directory that decide its numbers, each hashed:
/// the config, every weight file (shards included) and the tokenizer.
pub fn model_files(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let entries = std::fs::read_dir(dir).with_path(dir)?;
    for e in entries {
        let e = e.map_err(|err| Error::io(dir, err))?;
        let name = e.file_name().to_string_lossy().to_string();
        let keep = name == "config.json"
            || name == "tokenizer.json"
            || name.ends_with(".safetensors")
            || name.ends_with(".bin")
            || name.ends_with(".index.json");
        if keep && e.path().is_file() {
            out.insert(name, file(&e.path())?);
        }
    }
    if !out.contains_key("config.json") {
        return Err(Error::config(
            dir,
            "no config.json; a model directory needs one (Hugging Face layout)",
        ));
    }
    Ok(out)
}

/// The fingerprint of a model given by spec (a directory, hub id or size
/// name), from its files, without loading it.
pub fn model_spec(spec: &str) -> Result<String> {
    let dir = stilts_model::load::resolve(spec)?;
    let files = model_files(&dir)?;
    Ok(of_json(&serde_json::json!({ "model_files": files })))
}

/// The fingerprint of a model held in memory (one made on the spot, e.g.
/// a tiny random model): its config, every weight's bytes, its head and
/// its tokenizer.
pub fn model_weights(model: &Model) -> Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(format!("{:?}", model.encoder.config).as_bytes());
    hasher.update(format!("{:?}", model.head.kind).as_bytes());
    let params = model.params();
    for (name, var) in params.iter() {
        hasher.update(name.as_bytes());
        let t = var
            .as_tensor()
            .to_device(&candle_core::Device::Cpu)?
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?;
        for x in t.to_vec1::<f32>()? {
            hasher.update(x.to_le_bytes());
        }
    }
    if let Some(tok) = &model.tokenizer {
        hasher.update(tok.fingerprint()?.as_bytes());
    }
    Ok(hex(&hasher.finalize()))
}

/// The fingerprint of a dataset: its task, split and subset, the hash of
/// every file it was read from, and the examples it holds (so `limit`,
/// skipped lines or a changed reader change it too).
pub fn dataset(ds: &Dataset) -> Result<String> {
    let mut files = BTreeMap::new();
    for f in &ds.files {
        files.insert(f.display().to_string(), file(f)?);
    }
    let examples = serde_json::to_string(&ds.examples).map_err(|e| Error::msg(e.to_string()))?;
    Ok(of_json(&serde_json::json!({
        "task": ds.task,
        "split": ds.split,
        "subset": ds.subset,
        "labels": ds.labels,
        "head": format!("{:?}", ds.head),
        "files": files,
        "examples": stilts_model::util::sha256_hex(examples.as_bytes()),
    })))
}

/// The fingerprint of the parts of one task (e.g. the languages of XNLI).
pub fn datasets(parts: &[Dataset]) -> Result<String> {
    let each: Vec<String> = parts.iter().map(dataset).collect::<Result<_>>()?;
    Ok(of_json(&serde_json::json!(each)))
}

/// Every data file the datasets were read from, with its hash (what a
/// record keeps, so a reader of the store can see what a result used).
pub fn data_files(parts: &[&Dataset]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for ds in parts {
        for f in &ds.files {
            out.insert(f.display().to_string(), file(f)?);
        }
    }
    Ok(out)
}
