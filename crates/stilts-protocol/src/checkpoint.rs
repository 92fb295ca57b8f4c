//! Checkpoints of a training run: weights, optimizer moments, schedule
//! position, dropout RNG, data position and best-so-far, written so that a
//! crash at any moment leaves either the previous or the new checkpoint.
//!
//! Layout of `DIR/checkpoint/`: `model.safetensors`, `optimizer.safetensors`
//! (`m.NAME`, `v.NAME`), `best.safetensors` (when model selection is on) and
//! `state.json`. A new one is written to `checkpoint.tmp/`, the old one is
//! moved to `checkpoint.old/`, the new one renamed into place, the old removed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::optim::{AdamW, Moments};
use stilts_model::error::{read_json, Error, Result, WithPath};
use stilts_model::{DropoutRng, ParamStore};

/// Where the loop stands: everything but tensors.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LoopState {
    /// Updates done.
    pub step: u64,
    /// Epoch (from 0) of the next batch group to train.
    pub epoch: usize,
    /// Index of that group within the epoch (a group is `grad_accum` batches,
    /// one update).
    pub group: usize,
    /// The dropout RNG as it stands after the last update (seeded from
    /// `TrainOptions::seed`), so a resumed run draws the same masks.
    pub rng: DropoutRng,
    /// Mean loss of each update so far, in order.
    pub losses: Vec<f64>,
    /// (task, loss) of every batch: per-task curves of a multi-task run.
    #[serde(default)]
    pub task_losses: Vec<(usize, f64)>,
    /// Best dev score so far; `None` before the first evaluation (and always
    /// without `eval_every`).
    pub best_score: Option<f64>,
    /// Update at which `best_score` was reached; `None` with it.
    pub best_step: Option<u64>,
    /// Evaluations since the best score last improved (stops the run when it
    /// reaches `patience`).
    pub evals_since_best: usize,
    /// (update, dev score) of every evaluation so far.
    pub scores: Vec<(u64, f64)>,
    /// Set once the run is over (all updates done, or stopped early): resuming
    /// a finished checkpoint trains no further.
    pub finished: bool,
    /// Identifies the run's settings; a checkpoint of other settings is refused.
    pub fingerprint: String,
}

/// A checkpoint as `load` reads it back: the loop state and the tensors, on
/// the CPU.
pub struct Checkpoint {
    /// The loop state (`state.json`).
    pub state: LoopState,
    /// Model weights by parameter name (`model.safetensors`).
    pub params: HashMap<String, Tensor>,
    /// Optimizer tensors (`optimizer.safetensors`): `m.NAME` and `v.NAME` (the
    /// AdamW moments), and `c.NAME` (Kahan compensation, under `bf16_update: kahan`).
    pub moments: HashMap<String, Tensor>,
    /// Best-so-far weights (`best.safetensors`); `None` when the run kept none
    /// (no evaluation yet, or no model selection).
    pub best: Option<HashMap<String, Tensor>>,
}

fn dir_of(root: &Path) -> PathBuf {
    root.join("checkpoint")
}

fn save_tensors(map: &BTreeMap<String, Tensor>, path: &Path) -> Result<()> {
    let cpu: HashMap<String, Tensor> = map
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<candle_core::Result<_>>()?;
    stilts_model::save_safetensors(&cpu, path)
}

fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| Error::Weights {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })
}

/// Writes a checkpoint of `params`, `opt` and `state` under `root`.
pub fn save(
    root: &Path,
    params: &ParamStore,
    opt: &AdamW,
    best: Option<&BTreeMap<String, Tensor>>,
    state: &LoopState,
) -> Result<()> {
    let tmp = root.join("checkpoint.tmp");
    let old = root.join("checkpoint.old");
    let dst = dir_of(root);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_path(&tmp)?;
    }
    std::fs::create_dir_all(&tmp).with_path(&tmp)?;
    save_tensors(&params.tensors(), &tmp.join("model.safetensors"))?;
    let mut moments = BTreeMap::new();
    for (name, m) in &opt.moments {
        moments.insert(format!("m.{name}"), m.m.clone());
        moments.insert(format!("v.{name}"), m.v.clone());
    }
    for (name, c) in &opt.compensation {
        moments.insert(format!("c.{name}"), c.clone());
    }
    save_tensors(&moments, &tmp.join("optimizer.safetensors"))?;
    if let Some(b) = best {
        save_tensors(b, &tmp.join("best.safetensors"))?;
    }
    let json = serde_json::to_string(state).map_err(|e| Error::msg(e.to_string()))?;
    std::fs::write(tmp.join("state.json"), json).with_path(tmp.join("state.json"))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).with_path(&old)?;
    }
    if dst.exists() {
        std::fs::rename(&dst, &old).with_path(&dst)?;
    }
    std::fs::rename(&tmp, &dst).with_path(&dst)?;
    if old.exists() {
        std::fs::remove_dir_all(&old).with_path(&old)?;
    }
    Ok(())
}

/// Whether the run checkpointed under `root` finished (its last complete
/// checkpoint says so), without loading its tensors.
pub fn finished(root: &Path) -> bool {
    for dir in [dir_of(root), root.join("checkpoint.old")] {
        if let Ok(state) = read_json::<LoopState>(&dir.join("state.json")) {
            return state.finished;
        }
    }
    false
}

/// The last complete checkpoint under `root`, if any.
pub fn load(root: &Path) -> Result<Option<Checkpoint>> {
    let mut dir = dir_of(root);
    if !dir.join("state.json").exists() {
        // A crash between the two renames leaves only the old one.
        dir = root.join("checkpoint.old");
        if !dir.join("state.json").exists() {
            return Ok(None);
        }
    }
    let state: LoopState = read_json(&dir.join("state.json"))?;
    let params = load_tensors(&dir.join("model.safetensors"))?;
    let moments = load_tensors(&dir.join("optimizer.safetensors"))?;
    let best_path = dir.join("best.safetensors");
    let best = if best_path.exists() {
        Some(load_tensors(&best_path)?)
    } else {
        None
    };
    Ok(Some(Checkpoint {
        state,
        params,
        moments,
        best,
    }))
}

/// Puts a checkpoint's weights and moments back into a live model/optimizer.
pub fn restore(ck: &Checkpoint, params: &ParamStore, opt: &mut AdamW) -> Result<()> {
    for (name, var) in params.iter() {
        let t = ck.params.get(name).ok_or_else(|| {
            Error::msg(format!(
                "checkpoint has no weights for {name}: it belongs to another model"
            ))
        })?;
        var.set(&t.to_device(var.device())?.to_dtype(var.dtype())?)?;
        if opt.compensation.contains_key(name) {
            let c = ck.moments.get(&format!("c.{name}")).ok_or_else(|| {
                Error::msg(format!(
                    "checkpoint has no Kahan compensation for {name} (written without bf16_update: kahan)"
                ))
            })?;
            opt.compensation
                .insert(name.clone(), c.to_device(var.device())?.copy()?);
        }
        let m = ck.moments.get(&format!("m.{name}"));
        let v = ck.moments.get(&format!("v.{name}"));
        match (m, v) {
            (Some(m), Some(v)) => {
                let dev = var.device();
                opt.moments.insert(
                    name.clone(),
                    Moments {
                        m: m.to_device(dev)?,
                        v: v.to_device(dev)?,
                    },
                );
            }
            _ => {
                return Err(Error::msg(format!(
                    "checkpoint has no optimizer state for {name}"
                )))
            }
        }
    }
    opt.step = ck.state.step;
    Ok(())
}
