//! Multi-task intermediate training: one shared encoder, one head per task,
//! and a sampler that picks which task each update trains on (jiant's
//! `task_sampler.py` strategies).

use std::collections::BTreeSet;

use candle_core::DType;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::train::{Epoch, TrainBatch, Trainable};
use stilts_model::error::{Error, Result};
use stilts_model::{DropoutRng, Encoder, Head, HeadKind, Loss, Model, ParamStore};

/// How often each task is trained on.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Sampling {
    /// Every task equally often.
    Uniform,
    /// In proportion to the task's number of examples.
    Proportional,
    /// In proportion to `min(size, cap)`: large tasks do not drown small ones.
    ProportionalCapped {
        /// Most examples counted for one task.
        cap: usize,
    },
    /// In proportion to `min(size, cap)^(1/T)`; T = 1 is proportional,
    /// large T tends to uniform.
    Temperature {
        /// T: must be above 0.
        temperature: f64,
        /// Most examples counted for one task; `None`: no cap.
        cap: Option<usize>,
    },
    /// Fixed probabilities by task name (jiant's `SpecifiedProbMultiTaskSampler`);
    /// normalised, every task of the mix must be named.
    Specified {
        /// Weight of each task by name (numbers >= 0, not all 0), divided by their sum.
        probs: std::collections::BTreeMap<String, f64>,
    },
}

impl Sampling {
    /// The probability of each task (`names`, in mix order), from the
    /// tasks' sizes.
    pub fn probabilities(&self, names: &[String], sizes: &[usize]) -> Result<Vec<f64>> {
        if sizes.is_empty() {
            return Err(Error::msg("multi-task training needs at least one task"));
        }
        let w: Vec<f64> = match self {
            Sampling::Uniform => vec![1.0; sizes.len()],
            Sampling::Proportional => sizes.iter().map(|&n| n as f64).collect(),
            Sampling::ProportionalCapped { cap } => {
                sizes.iter().map(|&n| n.min(*cap) as f64).collect()
            }
            Sampling::Temperature { temperature, cap } => {
                if *temperature <= 0.0 {
                    return Err(Error::msg(format!(
                        "sampling temperature must be > 0, got {temperature}"
                    )));
                }
                sizes
                    .iter()
                    .map(|&n| (n.min(cap.unwrap_or(usize::MAX)) as f64).powf(1.0 / temperature))
                    .collect()
            }
            Sampling::Specified { probs } => {
                if let Some(k) = probs.keys().find(|k| !names.contains(k)) {
                    return Err(Error::msg(format!(
                        "sampling probs name `{k}`, which is not a task of the mix ({})",
                        names.join(", ")
                    )));
                }
                let mut w = vec![];
                for n in names {
                    let p = *probs.get(n).ok_or_else(|| {
                        Error::msg(format!(
                            "sampling probs: no probability for task `{n}`; name every task of the mix ({})",
                            names.join(", ")
                        ))
                    })?;
                    if !(p >= 0.0 && p.is_finite()) {
                        return Err(Error::msg(format!(
                            "sampling probs: `{n}` has {p}; probabilities are numbers >= 0"
                        )));
                    }
                    w.push(p);
                }
                w
            }
        };
        let total: f64 = w.iter().sum();
        if total <= 0.0 {
            return Err(Error::msg("every task is empty"));
        }
        Ok(w.into_iter().map(|x| x / total).collect())
    }
}

/// Draws a task per update from fixed probabilities, reproducibly.
pub struct TaskSampler {
    cumulative: Vec<f64>,
    rng: ChaCha8Rng,
}

impl TaskSampler {
    /// A sampler over tasks `0..probabilities.len()` (probabilities summing to 1,
    /// as `Sampling::probabilities` gives), its draws fixed by `seed`.
    pub fn new(probabilities: &[f64], seed: u64) -> Self {
        let mut acc = 0.0;
        let cumulative = probabilities
            .iter()
            .map(|p| {
                acc += p;
                acc
            })
            .collect();
        TaskSampler {
            cumulative,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The index of the next task drawn.
    pub fn sample(&mut self) -> usize {
        let u: f64 = self.rng.random();
        self.cumulative
            .iter()
            .position(|&c| u < c)
            .unwrap_or(self.cumulative.len() - 1)
    }
}

/// Interleaves per-task epochs into one training order: `updates` groups
/// of `accum` batches, the task drawn once per group (per optimizer
/// update, as jiant does: gradient accumulation stays within one task); a
/// task that runs out starts its next epoch (`task_batches(task, epoch)`).
/// The order is planned now from the tasks' plans; each batch is collated
/// when the training loop reaches it.
pub fn interleave<'a>(
    updates: usize,
    accum: usize,
    sampler: &mut TaskSampler,
    task_batches: &mut dyn FnMut(usize, usize) -> Result<Epoch<'a>>,
    tasks: usize,
) -> Result<Epoch<'a>> {
    let accum = accum.max(1);
    let steps = updates * accum;
    let mut plans: std::collections::HashMap<(usize, usize), Epoch<'a>> = Default::default();
    // Each task's current epoch and its next batch.
    let mut at = vec![(0usize, 0usize); tasks];
    for t in 0..tasks {
        plans.insert((t, 0), task_batches(t, 0)?);
    }
    let mut order: Vec<(usize, usize, usize)> = Vec::with_capacity(steps);
    let mut shapes = Vec::with_capacity(steps);
    let mut t = 0;
    while order.len() < steps {
        if order.len() % accum == 0 {
            t = sampler.sample();
        }
        let (mut e, mut k) = at[t];
        if k >= plans[&(t, e)].len() {
            e += 1;
            k = 0;
            let next = task_batches(t, e)?;
            if next.is_empty() {
                return Err(Error::msg(format!("task {t} has no batches")));
            }
            plans.insert((t, e), next);
        }
        shapes.push(plans[&(t, e)].shape(k));
        order.push((t, e, k));
        at[t] = (e, k + 1);
    }
    Ok(Epoch::planned(shapes, move |i| {
        let (t, e, k) = order[i];
        let plan = plans
            .get_mut(&(t, e))
            .ok_or_else(|| Error::msg("internal: a planned epoch is missing"))?;
        Ok(TrainBatch {
            task: t,
            ..plan.batch(k)?
        })
    }))
}

/// A shared encoder with one head per task.
#[derive(Clone)]
pub struct MultiTaskModel {
    /// The encoder all heads share.
    pub encoder: Encoder,
    /// (task name, head), in task-index order.
    pub heads: Vec<(String, Head)>,
}

impl MultiTaskModel {
    /// Fresh heads (seeded) for `tasks` on `encoder`. Head parameters are
    /// named `TASK.classifier...` so several heads can live side by side.
    pub fn new(encoder: Encoder, tasks: &[(String, HeadKind)], seed: u64) -> Result<Self> {
        let mut heads = vec![];
        for (i, (name, kind)) in tasks.iter().enumerate() {
            let m = Model::with_head(encoder.clone(), kind.clone(), seed.wrapping_add(i as u64))?;
            heads.push((name.clone(), m.head));
        }
        Ok(MultiTaskModel { encoder, heads })
    }

    /// The single-task model of task `i` (shares the encoder).
    pub fn model(&self, i: usize) -> Model {
        Model {
            encoder: self.encoder.clone(),
            head: self.heads[i].1.clone(),
            tokenizer: None,
            report: Default::default(),
        }
    }
}

impl Trainable for MultiTaskModel {
    fn params(&self) -> ParamStore {
        let mut all = self.encoder.params().clone();
        for (name, head) in &self.heads {
            for (p, v) in head.params().iter() {
                all.insert(format!("{name}/{p}"), v.clone());
            }
        }
        all
    }

    fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    fn batch_loss(&self, batch: &TrainBatch, mut rng: Option<&mut DropoutRng>) -> Result<Loss> {
        let (_, head) = self.heads.get(batch.task).ok_or_else(|| {
            Error::msg(format!(
                "batch of task {} but only {} heads",
                batch.task,
                self.heads.len()
            ))
        })?;
        let (hidden, recompute) =
            self.encoder
                .forward_train(&batch.inputs, rng.as_deref_mut(), head.tokens_read())?;
        let out = head.forward(&hidden, &batch.inputs, rng)?;
        Ok(Loss::new(head.loss(&out, &batch.target)?, recompute))
    }

    fn for_training(
        &self,
        dtype: DType,
        checkpointing: bool,
        frozen: &BTreeSet<String>,
        dropout: Option<f64>,
    ) -> Result<Box<dyn Trainable>> {
        let mut m = self.clone();
        m.encoder.compute_dtype = dtype;
        m.encoder.gradient_checkpointing = checkpointing;
        if let Some(p) = dropout {
            m.encoder.config.set_dropout(p);
        }
        for (_, h) in &mut m.heads {
            h.compute_dtype = dtype;
            if let Some(p) = dropout {
                *h = h.clone().with_dropout(p);
            }
        }
        if !frozen.is_empty() {
            // Heads' parameters are `TASK/name` here, plain `name` in the head.
            m.encoder = m.encoder.with_frozen(frozen)?;
            for (task, h) in &mut m.heads {
                let mine: BTreeSet<String> = frozen
                    .iter()
                    .filter_map(|k| k.strip_prefix(&format!("{task}/")).map(str::to_string))
                    .collect();
                *h = h.with_frozen(&m.encoder.config, &m.encoder, &mine)?;
            }
        }
        Ok(Box::new(m))
    }
}
