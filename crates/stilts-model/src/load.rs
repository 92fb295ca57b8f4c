//! Finding and reading checkpoints: a local directory in Hugging Face layout,
//! a hub id in the Hugging Face cache (offline), or a size name.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::sizes;
use crate::error::{read_json, Error, Result};

/// The Hugging Face hub cache folder: `$HF_HUB_CACHE`, else `$HF_HOME/hub`,
/// else `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
pub fn hf_hub_cache() -> PathBuf {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(p) = env("HF_HUB_CACHE").or_else(|| env("HUGGINGFACE_HUB_CACHE")) {
        return p;
    }
    if let Some(home) = env("HF_HOME") {
        return home.join("hub");
    }
    let cache = env("XDG_CACHE_HOME")
        .unwrap_or_else(|| dirs::home_dir().unwrap_or_default().join(".cache"));
    cache.join("huggingface").join("hub")
}

/// The snapshot folder of `repo_id` in `cache`, if downloaded: the commit
/// named by `refs/main`, else the most recently written snapshot.
pub fn cached_snapshot(cache: &Path, repo_id: &str) -> Option<PathBuf> {
    let repo = cache.join(format!("models--{}", repo_id.replace('/', "--")));
    let snapshots = repo.join("snapshots");
    if let Ok(commit) = std::fs::read_to_string(repo.join("refs").join("main")) {
        let dir = snapshots.join(commit.trim());
        if dir.join("config.json").exists() {
            return Some(dir);
        }
    }
    let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&snapshots)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("config.json").exists())
        .map(|e| {
            (
                e.metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH),
                e.path(),
            )
        })
        .collect();
    dirs.sort();
    dirs.pop().map(|(_, p)| p)
}

/// Turns what a user typed (directory, hub id, size name) into a local
/// directory holding config.json, or says everywhere it looked.
pub fn resolve(spec: &str) -> Result<PathBuf> {
    let as_path = Path::new(spec);
    if as_path.is_dir() {
        if as_path.join("config.json").exists() {
            return Ok(as_path.to_path_buf());
        }
        return Err(Error::config(as_path.join("config.json"), "not found: a model directory needs config.json and its weights (model.safetensors or pytorch_model.bin)"));
    }
    let looks_like_path = spec.starts_with('/')
        || spec.starts_with('.')
        || spec.starts_with('~')
        || spec.matches('/').count() > 1;
    if looks_like_path {
        return Err(Error::ModelNotFound {
            spec: spec.to_string(),
            tried: vec![format!("{} (as a directory)", as_path.display())],
            hint: "The directory does not exist: check the path.".into(),
        });
    }
    let cache = hf_hub_cache();
    let mut ids: Vec<String> = vec![];
    if let Some(size) = sizes::size(spec) {
        ids.push(size.hub_id.to_string());
        ids.extend(size.aliases.iter().map(|s| s.to_string()));
    }
    if !ids.iter().any(|i| i == spec) {
        ids.push(spec.to_string());
    }
    // The hub redirects `xlm-roberta-large` to `FacebookAI/xlm-roberta-large`;
    // the cache may hold either folder.
    if !spec.contains('/') {
        ids.push(format!("FacebookAI/{spec}"));
    }
    let mut tried = vec![format!("{} (as a directory)", as_path.display())];
    for id in &ids {
        if let Some(dir) = cached_snapshot(&cache, id) {
            return Ok(dir);
        }
        tried.push(
            cache
                .join(format!("models--{}", id.replace('/', "--")))
                .display()
                .to_string(),
        );
    }
    Err(Error::ModelNotFound {
        spec: spec.to_string(),
        tried,
        hint: format!(
            "Give a directory with config.json, a hub id already in the Hugging Face cache (set HF_HOME or HF_HUB_CACHE to where it is), or a size name ({}).\nstilts never downloads: fetch the model once with `huggingface-cli download <id>` on a machine that can.",
            sizes::size_names().join(", ")
        ),
    })
}

/// Reads every tensor of the checkpoint in `dir` onto the CPU, with names
/// normalised to transformers' current form; a bare encoder checkpoint
/// (`XLMRobertaModel` / `BertModel` saved without its prefix) gets
/// `prefix.` (`roberta` / `bert`, from config.json). BERT's
/// `embeddings.position_ids` buffer is dropped (positions are 0..T).
/// Returns the tensors and the file(s) they came from (for messages).
pub fn read_weights(dir: &Path, prefix: &str) -> Result<(HashMap<String, Tensor>, PathBuf)> {
    let single = dir.join("model.safetensors");
    let index = dir.join("model.safetensors.index.json");
    let bin = dir.join("pytorch_model.bin");
    let bin_index = dir.join("pytorch_model.bin.index.json");
    let (tensors, source) = if single.exists() {
        (read_safetensors(&single)?, single)
    } else if index.exists() {
        (read_sharded(&index, read_safetensors)?, index)
    } else if bin.exists() {
        (read_pickle(&bin)?, bin)
    } else if bin_index.exists() {
        (read_sharded(&bin_index, read_pickle)?, bin_index)
    } else {
        return Err(Error::config(
            dir,
            "no weights: expected model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json",
        ));
    };
    Ok((normalise_names(tensors, prefix), source))
}

fn read_safetensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| Error::Weights {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

fn read_pickle(path: &Path) -> Result<HashMap<String, Tensor>> {
    let list = candle_core::pickle::read_all(path).map_err(|e| Error::Weights {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    Ok(list.into_iter().collect())
}

fn read_sharded(
    index: &Path,
    read: fn(&Path) -> Result<HashMap<String, Tensor>>,
) -> Result<HashMap<String, Tensor>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: HashMap<String, String>,
    }
    let idx: Index = read_json(index)?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let files: BTreeSet<&String> = idx.weight_map.values().collect();
    let mut all = HashMap::new();
    for f in files {
        let path = dir.join(f);
        if !path.exists() {
            return Err(Error::config(
                &path,
                format!(
                    "shard listed in {} is missing; download it again",
                    index.display()
                ),
            ));
        }
        all.extend(read(&path)?);
    }
    for name in idx.weight_map.keys() {
        if !all.contains_key(name) {
            return Err(Error::Weights {
                path: dir.join(&idx.weight_map[name]),
                msg: format!("tensor `{name}` listed in the index is not in its shard"),
            });
        }
    }
    Ok(all)
}

/// transformers' key fixes: `gamma`/`beta` of old LayerNorms, the bare
/// `XLMRobertaModel` / `BertModel` layout (no `roberta.` / `bert.` prefix),
/// and the `position_ids` buffer older BERT checkpoints carry.
fn normalise_names(tensors: HashMap<String, Tensor>, prefix: &str) -> HashMap<String, Tensor> {
    let bare = !tensors
        .keys()
        .any(|k| k.starts_with("roberta.") || k.starts_with("bert."))
        && tensors
            .keys()
            .any(|k| k.starts_with("embeddings.") || k.starts_with("encoder."));
    tensors
        .into_iter()
        .filter(|(k, _)| !k.ends_with("embeddings.position_ids"))
        .map(|(k, v)| {
            let mut k = k;
            if let Some(p) = k.strip_suffix(".gamma") {
                k = format!("{p}.weight");
            } else if let Some(p) = k.strip_suffix(".beta") {
                k = format!("{p}.bias");
            }
            if bare
                && (k.starts_with("embeddings.")
                    || k.starts_with("encoder.")
                    || k.starts_with("pooler."))
            {
                k = format!("{prefix}.{k}");
            }
            (k, v)
        })
        .collect()
}
