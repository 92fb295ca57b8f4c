//! `stilts gc STORE`: the checkpoints and intermediate-phase models a store
//! holds that no unfinished condition needs, listed with their sizes and
//! removed (or only listed, `--dry-run`).
//!
//! What it may remove, under the store's folder:
//! - `intermediate/KEY/` (an intermediate-phase model kept for reuse: a
//!   later condition that needs it trains it again) and `intermediate/KEY.run/`
//!   (the checkpoints of an intermediate phase);
//! - `conditions/KEY/` (the target phase's checkpoints of a condition);
//! - leftovers of a killed save (`*.tmp`, `*.old` beside them).
//!
//! What it keeps: what an unfinished condition (a cell marked running,
//! failed or interrupted in `cells/`, without a record) needs to resume:
//! its `conditions/KEY/` folder and the intermediate phase it names there
//! (`conditions/KEY/intermediate`, written when it starts); the records,
//! the cell marks and claims; the final models kept on purpose
//! (`models/`, `keep: "final"`); and `checkpoints/`, which is how a
//! script's `train()` calls find their finished training again.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::cells::MarkState;
use super::Store;
use stilts_model::error::{Result, WithPath};

/// One folder `gc` would remove, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Garbage {
    /// The folder.
    pub path: PathBuf,
    /// Bytes of the files under it.
    pub bytes: u64,
    /// What it is (`intermediate-phase model`, `target checkpoints of a
    /// finished condition`, ...).
    pub what: String,
}

/// Bytes of the files under `p` (links not followed).
pub fn size_of(p: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    std::fs::read_dir(p)
        .map(|rd| rd.flatten().map(|e| size_of(&e.path())).sum())
        .unwrap_or(0)
}

/// The name a condition's folders go by: the first 16 characters of its key.
fn short(key: &str) -> &str {
    &key[..16.min(key.len())]
}

/// What `gc` would remove from `store`, and what it keeps because an
/// unfinished condition needs it (its folders, for the listing).
pub fn plan(store: &Store) -> Result<(Vec<Garbage>, Vec<PathBuf>)> {
    let root = store.root();
    let finished: BTreeSet<String> = store
        .records()?
        .iter()
        .map(|r| short(&r.key).to_string())
        .collect();
    // Unfinished conditions: marked, and not in the records.
    let unfinished: BTreeSet<String> = store
        .marks()
        .iter()
        .filter(|m| {
            matches!(
                m.state,
                MarkState::Running | MarkState::Failed | MarkState::Interrupted
            )
        })
        .map(|m| short(&m.key).to_string())
        .filter(|k| !finished.contains(k))
        .collect();
    let mut needed_intermediate = BTreeSet::new();
    let mut keep = vec![];
    let mut out = vec![];
    let conditions = root.join("conditions");
    for e in list(&conditions)? {
        let name = file_name(&e);
        if unfinished.contains(&name) {
            if let Ok(k) = std::fs::read_to_string(e.join("intermediate")) {
                needed_intermediate.insert(k.trim().to_string());
            }
            keep.push(e);
            continue;
        }
        out.push(Garbage {
            bytes: size_of(&e),
            what: if finished.contains(&name) {
                "target-phase checkpoints of a finished condition".into()
            } else {
                "target-phase checkpoints of a condition no cell marks as unfinished".into()
            },
            path: e,
        });
    }
    let inter = root.join("intermediate");
    for e in list(&inter)? {
        let name = file_name(&e);
        let stem = name.split('.').next().unwrap_or_default().to_string();
        if needed_intermediate.contains(&stem) {
            keep.push(e);
            continue;
        }
        let what = if name.ends_with(".run") {
            "intermediate-phase checkpoints"
        } else if name.ends_with(".tmp") || name.ends_with(".old") {
            "leftover of a killed save"
        } else {
            "intermediate-phase model; a condition that needs it trains it again"
        };
        out.push(Garbage {
            bytes: size_of(&e),
            what: what.into(),
            path: e,
        });
    }
    Ok((out, keep))
}

/// The entries of a folder, sorted; none when it does not exist.
fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(rd) => {
            let mut v: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            v.sort();
            Ok(v)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(stilts_model::Error::io(dir, e)),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// Removes what [`plan`] lists.
pub fn remove(garbage: &[Garbage]) -> Result<()> {
    for g in garbage {
        if g.path.is_dir() {
            std::fs::remove_dir_all(&g.path).with_path(&g.path)?;
        } else if g.path.exists() {
            std::fs::remove_file(&g.path).with_path(&g.path)?;
        }
    }
    Ok(())
}

/// `1.5 GB`, `470 MB`, `12 kB`, `800 B`.
pub fn human_bytes(b: u64) -> String {
    let units = [(1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")];
    for (scale, name) in units {
        if b as f64 >= scale {
            return format!("{:.1} {name}", b as f64 / scale);
        }
    }
    format!("{b} B")
}
