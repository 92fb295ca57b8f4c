//! AdamW as transformers/PyTorch use it for fine-tuning, with what candle-nn's
//! `AdamW` lacks: no weight decay on biases and LayerNorm weights, global
//! gradient-norm clipping, a learning-rate schedule, and a state that can be
//! saved and restored (for resume). The updates that need less memory
//! (bf16 weights with Kahan or stochastic rounding, the update inside
//! backward) are [`lowmem`], a part of the optimizer.

pub mod lowmem;

use std::collections::BTreeMap;

use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};

use stilts_model::error::Result;
use stilts_model::ParamStore;

/// AdamW settings (PyTorch's names and defaults, HF's eps).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    /// Peak learning rate of the linear schedule (default 1e-5).
    pub lr: f64,
    /// Decay rate of the first moment (default 0.9).
    pub beta1: f64,
    /// Decay rate of the second moment (default 0.999).
    pub beta2: f64,
    /// Added to the root of the second moment in the denominator (default 1e-8).
    pub eps: f64,
    /// Decoupled weight decay: each update first multiplies a decayed weight
    /// by `1 - lr * weight_decay` (default 0.01; see `decays`).
    pub weight_decay: f64,
    /// Factored second moment for matrices (Adafactor's, with Adam's first
    /// moment and bias correction): a row and a column accumulator instead
    /// of a full `v`, so the state of a `[rows, cols]` weight is
    /// `rows * cols + rows + cols` floats instead of `2 * rows * cols`. Cuts
    /// the optimizer memory almost in half (XL: 26 to 13 GiB); the update
    /// equals AdamW's when the squared gradients are rank one, and
    /// approximates it otherwise.
    #[serde(default)]
    pub factored: bool,
    /// How bf16 weights take their update (`None`: rounded to the nearest
    /// bf16). See [`lowmem`]: `kahan` or `stochastic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bf16_update: Option<lowmem::Bf16Update>,
    /// The second moment stored in 8 bits (option
    /// `eight_bit_second_moment`): block-wise quantised as in 8-bit Adam
    /// (Dettmers et al. 2021), 1 byte per value plus an f32 scale per block
    /// of [`lowmem::q8::BLOCK`] values, instead of 4 bytes (see
    /// [`lowmem::q8`]). CPU only; not with `factored`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub eight_bit_second_moment: bool,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 1e-5,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            factored: false,
            bf16_update: None,
            eight_bit_second_moment: false,
        }
    }
}

/// transformers' rule: biases and LayerNorm weights are not decayed.
pub fn decays(name: &str) -> bool {
    !(name.ends_with(".bias") || name.contains("LayerNorm.") || name.contains("layer_norm."))
}

/// First and second moments of one parameter. With a factored second
/// moment, `v` holds the row accumulator then the column accumulator
/// (`rows + cols` values); with an 8-bit second moment, `v` is u8: the
/// codes, then each block's f32 scale as 4 little-endian bytes
/// ([`lowmem::q8`]).
#[derive(Clone, Debug)]
pub struct Moments {
    /// First moment (f32, the parameter's shape).
    pub m: Tensor,
    /// Second moment: f32 of the parameter's shape, or `rows + cols` f32
    /// values when factored, or u8 codes and block scales when 8-bit.
    pub v: Tensor,
}

/// `(rows, cols)` of a parameter whose second moment is factored.
fn factored_shape(config: &AdamWConfig, dims: &[usize]) -> Option<(usize, usize)> {
    match dims {
        [r, c] if config.factored && *r > 1 && *c > 1 => Some((*r, *c)),
        _ => None,
    }
}

/// The optimizer state a run ends with, to carry into the next phase
/// (STILTs without resetting the optimizer).
#[derive(Clone, Debug)]
pub struct OptimizerState {
    /// Moments by parameter name.
    pub moments: BTreeMap<String, Moments>,
    /// Updates done when the state was taken (bias correction goes on from it).
    pub step: u64,
}

/// AdamW over a model's named parameters.
pub struct AdamW {
    /// The settings it was built with.
    pub config: AdamWConfig,
    params: ParamStore,
    /// Moments by parameter name, one entry per parameter it updates: zeros
    /// at first, unless `continue_from` or `checkpoint::restore` replaced them.
    pub moments: BTreeMap<String, Moments>,
    /// Number of updates done so far.
    pub step: u64,
    /// Kahan compensation (bf16) of bf16 weights under
    /// `bf16_update: kahan` (see [`lowmem`]); empty otherwise.
    pub compensation: BTreeMap<String, Tensor>,
}

impl AdamW {
    /// An optimizer over `params` with zero moments (f32; the second moment
    /// factored where `config.factored` allows, or 8-bit under
    /// `eight_bit_second_moment`), step 0, and zero Kahan
    /// compensation buffers for bf16 weights under `bf16_update: kahan`.
    pub fn new(params: ParamStore, config: AdamWConfig) -> Result<Self> {
        if config.eight_bit_second_moment && config.factored {
            return Err(stilts_model::error::Error::msg(
                "eight_bit_second_moment and factored_optimizer both replace the second moment: choose one",
            ));
        }
        let mut moments = BTreeMap::new();
        for (name, var) in params.iter() {
            // Two separate buffers: the fused update writes them in place.
            // (f32 zeros made directly: converting bf16 zeros of a bf16
            // weight left a bf16 copy of the model in the allocator.)
            let zeros = || Tensor::zeros(var.dims(), DType::F32, var.device());
            let v = match factored_shape(&config, var.dims()) {
                Some((r, c)) => Tensor::zeros(r + c, DType::F32, var.device())?,
                None if config.eight_bit_second_moment => Tensor::zeros(
                    lowmem::q8::state_len(var.elem_count()),
                    DType::U8,
                    var.device(),
                )?,
                None => zeros()?,
            };
            moments.insert(name.clone(), Moments { m: zeros()?, v });
        }
        let compensation = lowmem::compensation_buffers(&params, config.bf16_update)?;
        Ok(AdamW {
            config,
            params,
            moments,
            step: 0,
            compensation,
        })
    }

    /// One update with learning rate `lr` (the schedule's value for this step).
    /// Parameters without a gradient (not used by the loss) are left alone.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        // One implementation of the update for every weight dtype: on the
        // CPU one pass over each parameter, its gradient and both moments
        // (`lowmem::update`; three streaming passes before, 382 ms of the
        // e5-small step), tensor ops elsewhere.
        lowmem::step(self, grads, lr, 1.0)
    }

    /// The parameters it updates.
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// A copy of the moments and step count.
    pub fn state(&self) -> Result<OptimizerState> {
        let moments = self
            .moments
            .iter()
            .map(|(k, m)| {
                Ok((
                    k.clone(),
                    Moments {
                        m: m.m.copy()?,
                        v: m.v.copy()?,
                    },
                ))
            })
            .collect::<Result<_>>()?;
        Ok(OptimizerState {
            moments,
            step: self.step,
        })
    }

    /// Starts from `state` for every parameter it has with the same name and
    /// shape (the shared encoder); the others (a new head) start at zero.
    /// Returns how many parameters were carried over.
    pub fn continue_from(&mut self, state: &OptimizerState) -> Result<usize> {
        let mut carried = 0;
        for (name, mine) in self.moments.iter_mut() {
            if let Some(theirs) = state.moments.get(name) {
                // (A factored, an 8-bit and a full second moment do not mix.)
                if theirs.m.dims() == mine.m.dims()
                    && theirs.v.dims() == mine.v.dims()
                    && theirs.v.dtype() == mine.v.dtype()
                {
                    *mine = Moments {
                        m: theirs.m.to_device(mine.m.device())?.copy()?,
                        v: theirs.v.to_device(mine.v.device())?.copy()?,
                    };
                    carried += 1;
                }
            }
        }
        self.step = state.step;
        Ok(carried)
    }
}

/// The global L2 norm of all gradients, summed in name order (deterministic).
/// The per-parameter sums stay on the device and are read back once (one
/// host-device sync per step, not one per parameter).
pub fn grad_norm(params: &ParamStore, grads: &GradStore) -> Result<f64> {
    let mut total: Option<Tensor> = None;
    for (_, var) in params.iter() {
        if let Some(g) = grads.get(var.as_tensor()) {
            let sq = g
                .to_dtype(DType::F32)?
                .sqr()?
                .sum_all()?
                .to_dtype(DType::F64)?;
            total = Some(match total {
                Some(t) => (t + sq)?,
                None => sq,
            });
        }
    }
    Ok(match total {
        Some(t) => t.to_scalar::<f64>()?.sqrt(),
        None => 0.0,
    })
}

/// Scales all gradients so their global norm is at most `max_norm`
/// (`torch.nn.utils.clip_grad_norm_`: factor `max_norm / (norm + 1e-6)`).
/// Returns the norm before clipping.
pub fn clip_grad_norm(params: &ParamStore, grads: &mut GradStore, max_norm: f64) -> Result<f64> {
    let norm = grad_norm(params, grads)?;
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for (_, var) in params.iter() {
            if let Some(g) = grads.get(var.as_tensor()) {
                // In place where it can be (CPU): a scaled copy of the
                // largest gradient (the word embeddings') was the step's
                // largest transient (`memory.rs`, "workspace").
                if !lowmem::scale_in_place(g, coef)? {
                    let scaled = (g * coef)?;
                    grads.insert(var.as_tensor(), scaled);
                }
            }
        }
    }
    Ok(norm)
}

/// Warm-up length: a number of steps or a fraction of all steps.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Warmup {
    /// Warm up over this many updates.
    Steps(u64),
    /// Warm up over this fraction of all updates (rounded up).
    Fraction(f64),
}

/// Linear warm-up from 0 to `peak`, then linear decay to 0 at `total`
/// (transformers' `get_linear_schedule_with_warmup`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearSchedule {
    /// Learning rate at the end of the warm-up.
    pub peak: f64,
    /// Warm-up length in updates.
    pub warmup: u64,
    /// Updates in the whole run; the rate reaches 0 there.
    pub total: u64,
}

impl LinearSchedule {
    /// The schedule of a run of `total` updates peaking at `peak`, with the
    /// warm-up converted to updates.
    pub fn new(peak: f64, warmup: Warmup, total: u64) -> Self {
        let warmup = match warmup {
            Warmup::Steps(n) => n,
            Warmup::Fraction(f) => (f * total as f64).ceil() as u64,
        };
        LinearSchedule {
            peak,
            warmup,
            total,
        }
    }

    /// Learning rate for update number `step` (0-based, as the LambdaLR sees it).
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup {
            return self.peak * step as f64 / self.warmup.max(1) as f64;
        }
        let left = self.total.saturating_sub(step) as f64;
        let span = self.total.saturating_sub(self.warmup).max(1) as f64;
        self.peak * (left / span).max(0.0)
    }
}
