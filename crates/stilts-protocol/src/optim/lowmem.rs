//! Training in less memory (issue 16): AdamW updates for bf16 weights
//! without an f32 master copy, and the update applied inside backward.
//!
//! - **bf16 weights** (a model loaded with `dtype: "bf16"`) normally take
//!   their AdamW update rounded to the nearest bf16: an update smaller than
//!   half a bf16 step (2^-9 of the weight, i.e. most fine-tuning updates at
//!   lr 1e-5) is lost. Option `bf16_update` fixes that without an f32 copy:
//!   - `kahan`: a bf16 compensation buffer per weight keeps what rounding
//!     dropped and adds it to the next update (Kahan summation; Zamirai et
//!     al. 2021, optimi's `kahan_sum`): 2 bytes per parameter.
//!   - `stochastic`: the f32 result is rounded up or down at random with
//!     the probabilities that make the rounding unbiased (no extra state;
//!     the random bits are a hash of the step, the parameter's name and the
//!     element index, so the same run gives the same bytes). CPU only.
//! - **update in backward** (option `fused_update`, with gradient
//!   checkpointing): each segment's parameter gradients are applied as soon
//!   as that segment's backward has made them and then freed, so the full
//!   set of gradients never exists ([`backward_and_update`]). Global-norm
//!   clipping needs the norm of all gradients before the first update; under
//!   this option the clip factor is the one the *previous* step's norm gives
//!   (`max_norm / (previous_norm + 1e-6)`, at most 1), and the first update
//!   of a run (or of a resumed run) is not clipped.
//!
//! The Kahan compensation is saved in checkpoints (a resumed run ends on
//! the same bytes, `crates/stilts-protocol/tests/it/lowmem.rs`) but not carried into the next phase
//! of STILTs with `reset_optimizer: false` (it starts from zero there).
//!
//! - **8-bit second moment** (option `eight_bit_second_moment`): `v` is
//!   stored block-wise quantised ([`q8`]): blocks of 2048 values, each
//!   with its f32 maximum as scale and the values as u8 codes on a quartic
//!   map (`v = max * (code / 255)^4`: fine steps for small values, the way
//!   8-bit Adam's dynamic map is, Dettmers et al. 2021). The kernel decodes
//!   a block, updates it in f32 and uses the f32 value for this update's
//!   denominator (so `v` is never below `(1 - beta2) g^2`), then encodes it
//!   with the block's new maximum: 1 byte per value + 4 per block instead of
//!   4. Only the second moment (the first stays f32); CPU only (on another
//!   device an error), and not with `factored_optimizer`.
//!
//! The moments stay f32 unless 8-bit (full, or factored with `factored_optimizer`);
//! the clip factor is folded into the update (the gradient is scaled as it
//! is read, no scaled copy). On the CPU one fused pass per parameter does
//! the moments and the update; on other devices the same arithmetic runs
//! as tensor ops (`stochastic` is then an error).

use std::cell::RefCell;
use std::collections::HashSet;

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp1, Layout, Tensor, Var};
use half::bf16;
use rayon::prelude::*;

use super::{decays, AdamW};
use stilts_model::error::{Error, Result};
use stilts_model::{Loss, ParamStore};

/// How bf16 weights take an AdamW update (option `bf16_update`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bf16Update {
    /// A bf16 compensation buffer keeps what rounding dropped.
    Kahan,
    /// Unbiased random rounding (CPU only).
    Stochastic,
}

/// The step-wide coefficients of one AdamW update.
#[derive(Clone, Copy, Debug)]
pub struct StepCoefs {
    /// Learning rate of this update (the schedule's value).
    pub lr: f64,
    /// Number of this update, from 1 (`opt.step` after `begin`); part of
    /// the stochastic-rounding hash.
    pub step: u64,
    step_size: f64,
    bc2_sqrt: f64,
}

/// Starts update number `opt.step + 1` at learning rate `lr`.
pub fn begin(opt: &mut AdamW, lr: f64) -> StepCoefs {
    opt.step += 1;
    let c = &opt.config;
    let t = opt.step as i32;
    StepCoefs {
        lr,
        step: opt.step,
        step_size: lr / (1.0 - c.beta1.powi(t)),
        bc2_sqrt: (1.0 - c.beta2.powi(t)).sqrt(),
    }
}

/// One AdamW update of every parameter with a gradient in `grads`, each
/// gradient multiplied by `scale` as it is read (the clip factor).
pub fn step(opt: &mut AdamW, grads: &GradStore, lr: f64, scale: f64) -> Result<()> {
    let k = begin(opt, lr);
    let params = opt.params().clone();
    for (name, var) in params.iter() {
        if let Some(g) = grads.get(var.as_tensor()) {
            update(opt, &k, name, var, g, scale)?;
        }
    }
    Ok(())
}

fn factored_dims(opt: &AdamW, dims: &[usize]) -> Option<(usize, usize)> {
    match dims {
        [r, c] if opt.config.factored && *r > 1 && *c > 1 => Some((*r, *c)),
        _ => None,
    }
}

/// Kahan compensation buffers (zeros, bf16) for the bf16 parameters of
/// `params`, when `opt` updates them with `bf16_update: kahan`.
pub fn compensation_buffers(
    params: &ParamStore,
    mode: Option<Bf16Update>,
) -> Result<std::collections::BTreeMap<String, Tensor>> {
    let mut out = std::collections::BTreeMap::new();
    if mode == Some(Bf16Update::Kahan) {
        for (name, var) in params.iter() {
            if var.dtype() == DType::BF16 {
                out.insert(name.clone(), var.as_tensor().zeros_like()?);
            }
        }
    }
    Ok(out)
}

/// The AdamW update of one parameter from its gradient `g` (times `scale`).
pub fn update(
    opt: &mut AdamW,
    k: &StepCoefs,
    name: &str,
    var: &Var,
    g: &Tensor,
    scale: f64,
) -> Result<()> {
    let wd = if decays(name) {
        opt.config.weight_decay
    } else {
        0.0
    };
    let mode = match var.dtype() {
        DType::BF16 => opt.config.bf16_update,
        _ => None,
    };
    let fact = factored_dims(opt, var.dims());
    let a = Arith {
        beta1: opt.config.beta1 as f32,
        beta2: opt.config.beta2 as f32,
        eps: opt.config.eps as f32,
        decay: (1.0 - k.lr * wd) as f32,
        step_size: k.step_size as f32,
        bc2_sqrt: k.bc2_sqrt as f32,
        scale: scale as f32,
    };
    let comp = opt.compensation.get(name).cloned();
    if mode == Some(Bf16Update::Kahan) && comp.is_none() {
        return Err(Error::msg(format!(
            "bf16_update kahan: no compensation buffer for {name}"
        )));
    }
    let mo = opt
        .moments
        .get_mut(name)
        .ok_or_else(|| Error::msg(format!("optimizer has no state for {name}")))?;
    let eight_bit = opt.config.eight_bit_second_moment;
    if var.device().is_cpu() && matches!(var.dtype(), DType::F32 | DType::BF16) {
        let g = g.contiguous()?;
        if let Some((r, c)) = fact {
            cpu::factored_accumulators(&mo.v, &g, r, c, a)?;
        }
        let seed = match mode {
            Some(Bf16Update::Stochastic) => {
                Some(name_hash(name) ^ k.step.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            }
            _ => None,
        };
        cpu::apply(
            var,
            &g,
            &mo.m,
            &mo.v,
            comp.as_ref(),
            fact,
            a,
            seed,
            eight_bit,
        )?;
        return Ok(());
    }
    if eight_bit {
        return Err(Error::msg(
            "eight_bit_second_moment runs on the CPU only (f32 or bf16 weights); leave it out on a GPU",
        ));
    }
    if mode == Some(Bf16Update::Stochastic) {
        return Err(Error::msg(
            "bf16_update `stochastic` runs on the CPU only; on a GPU use bf16_update: \"kahan\"",
        ));
    }
    // Any device: the same arithmetic as tensor ops.
    let g = (g.to_dtype(DType::F32)? * scale)?;
    mo.m = ((&mo.m * opt.config.beta1)? + (&g * (1.0 - opt.config.beta1))?)?;
    let v = match fact {
        Some((r, cols)) => {
            let g2 = (g.sqr()? + 1e-30)?;
            let fresh = Tensor::cat(&[g2.mean(1)?, g2.mean(0)?], 0)?;
            mo.v = ((&mo.v * opt.config.beta2)? + (fresh * (1.0 - opt.config.beta2))?)?;
            let row = mo.v.narrow(0, 0, r)?;
            let col = mo.v.narrow(0, r, cols)?;
            row.unsqueeze(1)?
                .matmul(&col.unsqueeze(0)?)?
                .broadcast_div(&row.mean_keepdim(0)?.unsqueeze(1)?)?
        }
        None => {
            mo.v = ((&mo.v * opt.config.beta2)? + (g.sqr()? * (1.0 - opt.config.beta2))?)?;
            mo.v.clone()
        }
    };
    let denom = ((v.sqrt()? / k.bc2_sqrt)? + opt.config.eps)?;
    let dir = ((&mo.m / denom)? * k.step_size)?;
    let p = var.as_tensor().to_dtype(DType::F32)?;
    match (var.dtype(), mode, comp) {
        (DType::BF16, Some(Bf16Update::Kahan), Some(c)) => {
            let delta = ((&p * (a.decay as f64 - 1.0))? - dir)?;
            let y = (delta + c.to_dtype(DType::F32)?)?;
            let new = (&p + &y)?.to_dtype(DType::BF16)?;
            let kept = (y - (new.to_dtype(DType::F32)? - &p)?)?;
            var.set(&new)?;
            opt.compensation
                .insert(name.to_string(), kept.to_dtype(DType::BF16)?);
        }
        _ => {
            let p = ((p * a.decay as f64)? - dir)?;
            var.set(&p.to_dtype(var.dtype())?)?;
        }
    }
    Ok(())
}

/// FNV-1a of a parameter name (the stochastic-rounding stream).
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// The element arithmetic's constants (f32, as the fused AdamW uses them).
#[derive(Clone, Copy, Debug)]
struct Arith {
    beta1: f32,
    beta2: f32,
    eps: f32,
    decay: f32,
    step_size: f32,
    bc2_sqrt: f32,
    scale: f32,
}

/// Sum of the squares of `g` (f64), without a copy on the CPU.
pub fn sum_squares(g: &Tensor) -> Result<f64> {
    if g.device().is_cpu() {
        let g = g.contiguous()?;
        let (s, l) = g.storage_and_layout();
        if let candle_core::Storage::Cpu(cs) = &*s {
            if let Some((a, b)) = l.contiguous_offsets() {
                let chunk = |f: &(dyn Fn(usize) -> f64 + Sync), n: usize| -> f64 {
                    (0..n.div_ceil(CHUNK))
                        .into_par_iter()
                        .map(|c| (c * CHUNK..((c + 1) * CHUNK).min(n)).map(f).sum::<f64>())
                        .collect::<Vec<_>>()
                        .into_iter()
                        .sum()
                };
                match cs {
                    CpuStorage::F32(v) => {
                        let v = &v[a..b];
                        return Ok(chunk(&|i| (v[i] as f64) * (v[i] as f64), v.len()));
                    }
                    CpuStorage::BF16(v) => {
                        let v = &v[a..b];
                        return Ok(chunk(
                            &|i| {
                                let x = v[i].to_f64();
                                x * x
                            },
                            v.len(),
                        ));
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(g.to_dtype(DType::F32)?
        .sqr()?
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?)
}

/// The global norm of `grads` over `params` (name order), computed
/// without scaled or converted copies on the CPU.
pub fn grad_norm(params: &ParamStore, grads: &GradStore) -> Result<f64> {
    let mut total = 0.0;
    for (_, var) in params.iter() {
        if let Some(g) = grads.get(var.as_tensor()) {
            total += sum_squares(g)?;
        }
    }
    Ok(total.sqrt())
}

/// Multiplies the gradient `g` by `coef` in place, as `g * coef` would
/// compute it (`x * coef + 0`), when it is a contiguous f32 or bf16 CPU
/// tensor; returns false (nothing done) otherwise. A backward's gradient
/// store owns its tensors (candle sums every gradient into a fresh one),
/// so nothing else sees the change.
pub fn scale_in_place(g: &Tensor, coef: f64) -> Result<bool> {
    if !g.device().is_cpu() || !g.is_contiguous() || !matches!(g.dtype(), DType::F32 | DType::BF16)
    {
        return Ok(false);
    }
    cpu::scale(g, coef)?;
    Ok(true)
}

/// The clip factor `torch.nn.utils.clip_grad_norm_` applies for `norm`.
pub fn clip_factor(norm: f64, max_norm: f64) -> f64 {
    (max_norm / (norm + 1e-6)).min(1.0)
}

/// Backward of `loss` with each parameter updated as soon as its gradient
/// exists (the head's first, then the encoder's segment by segment, top
/// down), each gradient freed after its update. Gradients are scaled by
/// the clip factor of `previous_norm` (none when `None`). Returns the norm
/// of this step's (unscaled) gradients, for the next step's clipping.
pub fn backward_and_update(
    loss: Loss,
    params: &ParamStore,
    opt: &mut AdamW,
    lr: f64,
    max_norm: f64,
    previous_norm: Option<f64>,
) -> Result<f64> {
    if !loss.is_checkpointed() {
        return Err(Error::msg(
            "fused_update needs gradient_checkpointing: true (the update runs segment by segment in the recomputed backward)",
        ));
    }
    let scale = previous_norm.map_or(1.0, |n| clip_factor(n, max_norm));
    let k = begin(opt, lr);
    let mut done: HashSet<String> = HashSet::new();
    let mut sq = 0.0f64;
    loss.backward_each(&mut |grads: GradStore| {
        for (name, var) in params.iter() {
            if let Some(g) = grads.get(var.as_tensor()) {
                if !done.insert(name.clone()) {
                    return Err(Error::msg(format!(
                        "fused_update: {name} gets gradients from two parts of the model (tied weights?); train it with fused_update: false"
                    )));
                }
                sq += sum_squares(g)?;
                update(opt, &k, name, var, g, scale)?;
            }
        }
        Ok(())
    })?;
    Ok(sq.sqrt())
}

const CHUNK: usize = 1 << 14;

const NOT_Q8: &str = "lowmem: an 8-bit second moment must be contiguous u8 (a checkpoint written without eight_bit_second_moment?)";

mod cpu {
    use super::*;

    type CResult<T> = candle_core::Result<T>;

    /// Mutable access to a CPU tensor's storage (candle exposes it only to
    /// in-place ops): runs `f` on it once.
    struct MutAccess<F>(RefCell<Option<F>>);

    impl<F> InplaceOp1 for MutAccess<F>
    where
        F: FnOnce(&mut CpuStorage, &Layout) -> CResult<()>,
    {
        fn name(&self) -> &'static str {
            "stilts-lowmem-access"
        }
        fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> CResult<()> {
            match self.0.borrow_mut().take() {
                Some(f) => f(s, l),
                None => candle_core::bail!("lowmem: storage accessed twice"),
            }
        }
    }

    fn with_mut<F>(t: &Tensor, f: F) -> CResult<()>
    where
        F: FnOnce(&mut CpuStorage, &Layout) -> CResult<()>,
    {
        t.inplace_op1(&MutAccess(RefCell::new(Some(f))))
    }

    fn f32s_mut<'a>(s: &'a mut CpuStorage, l: &Layout) -> CResult<&'a mut [f32]> {
        match (s, l.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) => Ok(&mut v[a..b]),
            _ => candle_core::bail!("lowmem: optimizer state must be contiguous f32"),
        }
    }

    /// `g = g * coef + 0` in place (candle's affine, elementwise).
    pub fn scale(g: &Tensor, coef: f64) -> Result<()> {
        with_mut(g, |s, l| {
            let (a, b) = l
                .contiguous_offsets()
                .ok_or_else(|| candle_core::Error::Msg("scale: not contiguous".into()))?;
            match s {
                CpuStorage::F32(v) => {
                    let c = coef as f32;
                    v[a..b]
                        .par_chunks_mut(CHUNK)
                        .for_each(|v| v.iter_mut().for_each(|x| *x = *x * c + 0.0));
                }
                CpuStorage::BF16(v) => {
                    let c = bf16::from_f64(coef);
                    let z = bf16::from_f64(0.0);
                    v[a..b]
                        .par_chunks_mut(CHUNK)
                        .for_each(|v| v.iter_mut().for_each(|x| *x = *x * c + z));
                }
                _ => candle_core::bail!("scale: needs f32 or bf16"),
            }
            Ok(())
        })?;
        Ok(())
    }

    /// A gradient's values, f32 or bf16.
    #[derive(Clone, Copy)]
    enum Grad<'a> {
        F32(&'a [f32]),
        Bf16(&'a [bf16]),
    }

    impl Grad<'_> {
        fn len(&self) -> usize {
            match self {
                Grad::F32(v) => v.len(),
                Grad::Bf16(v) => v.len(),
            }
        }
        #[inline(always)]
        fn at(&self, i: usize) -> f32 {
            match self {
                Grad::F32(v) => v[i],
                Grad::Bf16(v) => v[i].to_f32(),
            }
        }
    }

    fn with_grad<R>(g: &Tensor, f: impl FnOnce(Grad<'_>) -> CResult<R>) -> CResult<R> {
        let (s, l) = g.storage_and_layout();
        match (&*s, l.contiguous_offsets()) {
            (candle_core::Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) => f(Grad::F32(&v[a..b])),
            (candle_core::Storage::Cpu(CpuStorage::BF16(v)), Some((a, b))) => {
                f(Grad::Bf16(&v[a..b]))
            }
            _ => candle_core::bail!("lowmem: gradient must be a contiguous f32 or bf16 CPU tensor"),
        }
    }

    /// Adafactor's row and column accumulators (`v` holds rows then
    /// columns): `v = beta2 v + (1 - beta2) mean(g^2 + 1e-30)` along each.
    pub fn factored_accumulators(
        v: &Tensor,
        g: &Tensor,
        rows: usize,
        cols: usize,
        a: Arith,
    ) -> Result<()> {
        let (row, col) = with_grad(g, |g| {
            let row: Vec<f64> = (0..rows)
                .into_par_iter()
                .map(|r| {
                    (0..cols)
                        .map(|c| {
                            let x = (g.at(r * cols + c) * a.scale) as f64;
                            x * x + 1e-30
                        })
                        .sum::<f64>()
                        / cols as f64
                })
                .collect();
            let mut col = vec![0f64; cols];
            for r in 0..rows {
                for (c, acc) in col.iter_mut().enumerate() {
                    let x = (g.at(r * cols + c) * a.scale) as f64;
                    *acc += x * x + 1e-30;
                }
            }
            col.iter_mut().for_each(|x| *x /= rows as f64);
            Ok((row, col))
        })?;
        with_mut(v, |s, l| {
            let v = f32s_mut(s, l)?;
            if v.len() != rows + cols {
                candle_core::bail!("factored state has the wrong size");
            }
            let (b, w) = (a.beta2, 1.0 - a.beta2);
            for (v, f) in v.iter_mut().zip(row.iter().chain(col.iter())) {
                *v = b * *v + w * (*f as f32);
            }
            Ok(())
        })?;
        Ok(())
    }

    /// splitmix64.
    #[inline(always)]
    fn mix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `x` rounded to bf16 up or down at random, unbiased (the random low
    /// 16 bits are added to the magnitude, then cut off).
    #[inline(always)]
    pub fn round_stochastic(x: f32, random: u64) -> bf16 {
        if !x.is_finite() {
            return bf16::from_f32(x);
        }
        let bits = x.to_bits();
        let r = (random & 0xFFFF) as u32;
        match bits.checked_add(r) {
            // (Adding cannot carry into the sign: finite magnitudes stay
            // below the exponent's all-ones pattern plus one step.)
            Some(b) if (b ^ bits) & 0x8000_0000 == 0 => bf16::from_bits((b >> 16) as u16),
            _ => bf16::from_f32(x),
        }
    }

    /// The fused update: moments, then the parameter (f32 exactly as the
    /// fused AdamW computes it; bf16 rounded to nearest, Kahan-compensated
    /// or stochastically rounded).
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        var: &Var,
        g: &Tensor,
        m: &Tensor,
        v: &Tensor,
        comp: Option<&Tensor>,
        fact: Option<(usize, usize)>,
        a: Arith,
        seed: Option<u64>,
        eight_bit: bool,
    ) -> Result<()> {
        // The factored second moment's row, column and row mean.
        let factors: Option<(Vec<f32>, Vec<f32>, f32)> = match fact {
            Some((r, _)) => {
                let all = v.to_vec1::<f32>()?;
                let (row, col) = all.split_at(r);
                let mean = (row.iter().map(|x| *x as f64).sum::<f64>() / r as f64) as f32;
                Some((row.to_vec(), col.to_vec(), mean))
            }
            None => None,
        };
        with_grad(g, |g| {
            with_mut(var.as_tensor(), |ps, pl| {
                let (a0, b0) = pl
                    .contiguous_offsets()
                    .ok_or_else(|| candle_core::Error::Msg("parameter not contiguous".into()))?;
                with_mut(m, |ms, ml| {
                    let m = f32s_mut(ms, ml)?;
                    if m.len() != g.len() || b0 - a0 != g.len() {
                        candle_core::bail!("lowmem: parameter, gradient and moment sizes differ");
                    }
                    // The second moment: full f32, none here (factored),
                    // or 8-bit codes and scales.
                    let mut full = |vs: Option<&mut [f32]>,
                                    q: Option<&mut [u8]>,
                                    cs: Option<&mut [bf16]>|
                     -> CResult<()> {
                        match q {
                            Some(q) => kernel_q8(ps, a0, b0, g, m, q, cs, a, seed),
                            None => {
                                kernel(ps, a0, b0, g, m, vs, factors.as_ref(), fact, cs, a, seed)
                            }
                        }
                    };
                    let mut with_v = |cs: Option<&mut [bf16]>| -> CResult<()> {
                        let mut cs = cs;
                        if eight_bit {
                            with_mut(v, |vs, vl| match (vs, vl.contiguous_offsets()) {
                                (CpuStorage::U8(q), Some((x, y))) => {
                                    full(None, Some(&mut q[x..y]), cs.take())
                                }
                                _ => candle_core::bail!("{NOT_Q8}"),
                            })
                        } else if fact.is_some() {
                            full(None, None, cs)
                        } else {
                            with_mut(v, |vs, vl| full(Some(f32s_mut(vs, vl)?), None, cs.take()))
                        }
                    };
                    match comp {
                        Some(c) => with_mut(c, |cs, cl| match (cs, cl.contiguous_offsets()) {
                            (CpuStorage::BF16(c), Some((x, y))) => with_v(Some(&mut c[x..y])),
                            _ => candle_core::bail!("lowmem: compensation must be contiguous bf16"),
                        }),
                        None => with_v(None),
                    }
                })
            })
        })?;
        Ok(())
    }

    /// The update with an 8-bit second moment (`q` holds the codes, then
    /// the block scales): per block of [`q8::BLOCK`], decode `v`, update
    /// `m`, `v` (f32) and the parameter, then encode `v` with the block's
    /// new maximum.
    #[allow(clippy::too_many_arguments)]
    fn kernel_q8(
        ps: &mut CpuStorage,
        a0: usize,
        b0: usize,
        g: Grad<'_>,
        m: &mut [f32],
        q: &mut [u8],
        comp: Option<&mut [bf16]>,
        a: Arith,
        seed: Option<u64>,
    ) -> CResult<()> {
        let n = m.len();
        if q.len() != q8::state_len(n) {
            candle_core::bail!(
                "lowmem: 8-bit second moment of {} bytes for {n} values (want {})",
                q.len(),
                q8::state_len(n)
            );
        }
        let (codes, scales) = q.split_at_mut(n);
        // Chunks of CHUNK values are whole blocks (CHUNK is a multiple).
        const PER_CHUNK: usize = CHUNK / q8::BLOCK;
        let starts: Vec<usize> = (0..n.div_ceil(CHUNK)).map(|c| c * CHUNK).collect();
        let (b1, a1, b2, a2) = (a.beta1, 1.0 - a.beta1, a.beta2, 1.0 - a.beta2);
        // One chunk: `put(j, d)` applies direction `d` to the chunk's
        // element `j`.
        let chunk = |s: usize,
                     m: &mut [f32],
                     codes: &mut [u8],
                     scales: &mut [u8],
                     put: &mut dyn FnMut(usize, f32)| {
            let mut fresh = [0f32; q8::BLOCK];
            for (b, ((m, codes), scale)) in m
                .chunks_mut(q8::BLOCK)
                .zip(codes.chunks_mut(q8::BLOCK))
                .zip(scales.chunks_mut(4))
                .enumerate()
            {
                let old = f32::from_le_bytes([scale[0], scale[1], scale[2], scale[3]]);
                let mut max = 0f32;
                for j in 0..m.len() {
                    let i = b * q8::BLOCK + j;
                    let gi = g.at(s + i) * a.scale;
                    m[j] = b1 * m[j] + a1 * gi;
                    let v = b2 * q8::decode(codes[j], old) + a2 * (gi * gi);
                    fresh[j] = v;
                    max = max.max(v);
                    let denom = v.sqrt() / a.bc2_sqrt + a.eps;
                    put(i, a.step_size * (m[j] / denom));
                }
                scale.copy_from_slice(&max.to_le_bytes());
                for (c, v) in codes.iter_mut().zip(&fresh) {
                    *c = q8::encode(*v, max);
                }
            }
        };
        let chunks = m
            .par_chunks_mut(CHUNK)
            .zip(codes.par_chunks_mut(CHUNK))
            .zip(scales.par_chunks_mut(4 * PER_CHUNK))
            .zip(starts.par_iter());
        match ps {
            CpuStorage::F32(p) => {
                let p = &mut p[a0..b0];
                p.par_chunks_mut(CHUNK)
                    .zip(chunks)
                    .for_each(|(p, (((m, c), sc), &s))| {
                        chunk(s, m, c, sc, &mut |j, d| p[j] = p[j] * a.decay - d);
                    });
            }
            CpuStorage::BF16(p) => {
                let p = &mut p[a0..b0];
                let mut cchunks: Vec<Option<&mut [bf16]>> = match comp {
                    Some(c) => c.chunks_mut(CHUNK).map(Some).collect(),
                    None => (0..starts.len()).map(|_| None).collect(),
                };
                p.par_chunks_mut(CHUNK)
                    .zip(cchunks.par_iter_mut())
                    .zip(chunks)
                    .for_each(|((p, cc), (((m, c), sc), &s))| {
                        chunk(s, m, c, sc, &mut |j, d| {
                            bf16_put(
                                &mut p[j],
                                cc.as_deref_mut().map(|c| &mut c[j]),
                                d,
                                a,
                                seed,
                                s + j,
                            )
                        });
                    });
            }
            _ => candle_core::bail!("lowmem: parameters must be f32 or bf16"),
        }
        Ok(())
    }

    /// Applies direction `d` to the bf16 weight `p` (element `i`): Kahan
    /// with `c`, stochastic rounding with `seed`, else to nearest.
    #[inline(always)]
    fn bf16_put(p: &mut bf16, c: Option<&mut bf16>, d: f32, a: Arith, seed: Option<u64>, i: usize) {
        let old = p.to_f32();
        match (c, seed) {
            (Some(c), _) => {
                let y = old * (a.decay - 1.0) - d + c.to_f32();
                let new = bf16::from_f32(old + y);
                *c = bf16::from_f32(y - (new.to_f32() - old));
                *p = new;
            }
            (None, Some(seed)) => {
                *p = round_stochastic(old * a.decay - d, mix(seed ^ i as u64));
            }
            (None, None) => *p = bf16::from_f32(old * a.decay - d),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn kernel(
        ps: &mut CpuStorage,
        a0: usize,
        b0: usize,
        g: Grad<'_>,
        m: &mut [f32],
        v: Option<&mut [f32]>,
        factors: Option<&(Vec<f32>, Vec<f32>, f32)>,
        fact: Option<(usize, usize)>,
        comp: Option<&mut [bf16]>,
        a: Arith,
        seed: Option<u64>,
    ) -> CResult<()> {
        let (b1, a1, b2, a2) = (a.beta1, 1.0 - a.beta1, a.beta2, 1.0 - a.beta2);
        let cols = fact.map_or(1, |(_, c)| c);
        // Second moment of element i (after its update).
        let second = |i: usize, vfull: Option<&mut f32>, gi: f32| -> f32 {
            match (vfull, factors) {
                (Some(v), _) => {
                    *v = b2 * *v + a2 * (gi * gi);
                    *v
                }
                (None, Some((row, col, mean))) => row[i / cols] * col[i % cols] / mean,
                (None, None) => 0.0,
            }
        };
        let dir = |i: usize, mi: &mut f32, vi: Option<&mut f32>| -> f32 {
            let gi = if a.scale == 1.0 {
                g.at(i)
            } else {
                g.at(i) * a.scale
            };
            *mi = b1 * *mi + a1 * gi;
            let vv = second(i, vi, gi);
            let denom = vv.sqrt() / a.bc2_sqrt + a.eps;
            a.step_size * (*mi / denom)
        };
        // f32 weights, an f32 gradient and a full second moment (the
        // common case): one branch-free pass that the compiler vectorises,
        // with the operations of `dir` below in the same order (so the same
        // bits; `g * 1.0` is `g`). The general loop branches per element
        // and took twice as long as three streaming passes (e5-small shape:
        // 560 ms against 250 ms).
        let v = match (&mut *ps, g, v, factors) {
            (CpuStorage::F32(p), Grad::F32(gs), Some(v), None) => {
                let p = &mut p[a0..b0];
                p.par_chunks_mut(CHUNK)
                    .zip(m.par_chunks_mut(CHUNK))
                    .zip(v.par_chunks_mut(CHUNK))
                    .zip(gs.par_chunks(CHUNK))
                    .for_each(|(((p, m), v), g)| {
                        for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
                            let gi = g * a.scale;
                            *m = b1 * *m + a1 * gi;
                            *v = b2 * *v + a2 * (gi * gi);
                            let denom = v.sqrt() / a.bc2_sqrt + a.eps;
                            *p = *p * a.decay - a.step_size * (*m / denom);
                        }
                    });
                return Ok(());
            }
            (_, _, v, _) => v,
        };
        let n = m.len();
        let starts: Vec<usize> = (0..n.div_ceil(CHUNK)).map(|c| c * CHUNK).collect();
        match ps {
            CpuStorage::F32(p) => {
                let p = &mut p[a0..b0];
                let mut vchunks: Vec<Option<&mut [f32]>> = match v {
                    Some(v) => v.chunks_mut(CHUNK).map(Some).collect(),
                    None => (0..starts.len()).map(|_| None).collect(),
                };
                p.par_chunks_mut(CHUNK)
                    .zip(m.par_chunks_mut(CHUNK))
                    .zip(vchunks.par_iter_mut())
                    .zip(starts.par_iter())
                    .for_each(|(((p, m), v), &s)| {
                        for j in 0..p.len() {
                            let vi = v.as_deref_mut().map(|v| &mut v[j]);
                            let d = dir(s + j, &mut m[j], vi);
                            p[j] = p[j] * a.decay - d;
                        }
                    });
            }
            CpuStorage::BF16(p) => {
                let p = &mut p[a0..b0];
                let mut vchunks: Vec<Option<&mut [f32]>> = match v {
                    Some(v) => v.chunks_mut(CHUNK).map(Some).collect(),
                    None => (0..starts.len()).map(|_| None).collect(),
                };
                let mut cchunks: Vec<Option<&mut [bf16]>> = match comp {
                    Some(c) => c.chunks_mut(CHUNK).map(Some).collect(),
                    None => (0..starts.len()).map(|_| None).collect(),
                };
                p.par_chunks_mut(CHUNK)
                    .zip(m.par_chunks_mut(CHUNK))
                    .zip(vchunks.par_iter_mut().zip(cchunks.par_iter_mut()))
                    .zip(starts.par_iter())
                    .for_each(|(((p, m), (v, c)), &s)| {
                        for j in 0..p.len() {
                            let vi = v.as_deref_mut().map(|v| &mut v[j]);
                            let d = dir(s + j, &mut m[j], vi);
                            // Kahan: what the last roundings dropped rides
                            // along with this update.
                            bf16_put(
                                &mut p[j],
                                c.as_deref_mut().map(|c| &mut c[j]),
                                d,
                                a,
                                seed,
                                s + j,
                            );
                        }
                    });
            }
            _ => candle_core::bail!("lowmem: parameters must be f32 or bf16"),
        }
        Ok(())
    }
}

pub use cpu::round_stochastic;

/// The 8-bit block-wise quantisation of the second moment
/// (`eight_bit_second_moment`). A parameter of `n` values keeps
/// [`state_len`]`(n)` bytes: `n` codes, then one f32 scale (the block's
/// maximum, little-endian) per block of [`BLOCK`] values. The map is
/// quartic, `v = scale * (code / 255)^4`, i.e. the codes are linear in
/// `v^(1/4)`: values down to `(0.5 / 255)^4 = 1.5e-11` of the block's
/// maximum stay non-zero, and the relative step is about `4 / code` (a
/// linear map would send everything below 1/510 of the maximum to zero).
/// Non-negative values only (the second moment); the round trip is
/// deterministic.
pub mod q8 {
    /// Values per block (one scale each).
    pub const BLOCK: usize = 2048;

    /// Bytes of the state of `n` values: codes and block scales.
    pub fn state_len(n: usize) -> usize {
        n + 4 * n.div_ceil(BLOCK)
    }

    /// The code of `v` (>= 0) in a block whose maximum is `max`.
    #[inline(always)]
    pub fn encode(v: f32, max: f32) -> u8 {
        if !(max > 0.0) || !(v > 0.0) {
            return 0;
        }
        let r = (v / max).sqrt().sqrt() * 255.0;
        // (`as` saturates; NaN would give 0.)
        (r + 0.5).min(255.0) as u8
    }

    /// The value of `code` in a block whose maximum is `max`.
    #[inline(always)]
    pub fn decode(code: u8, max: f32) -> f32 {
        let r = code as f32 * (1.0 / 255.0);
        let r2 = r * r;
        max * (r2 * r2)
    }
}
