//! Differentiable building blocks that candle lacks.
//!
//! candle-nn's fused `softmax_last_dim` and `layer_norm` are applied with
//! `apply_op*_no_bwd`: gradients stop at them without an error. Ours keep a
//! fused single-pass CPU forward and add the analytic backward, expressed in
//! ordinary tensor ops so it runs on any device. On other devices the forward
//! falls back to candle's composed (differentiable) ops.

use candle_core::{
    backend::BackendStorage, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Shape,
    Tensor, D,
};
use half::{bf16, f16};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::cpu_kernels;

type CResult<T> = candle_core::Result<T>;

/// The elements a contiguous layout addresses, or an error naming `what`.
pub(crate) fn contiguous<'a, T>(data: &'a [T], layout: &Layout, what: &str) -> CResult<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("{what}: input must be contiguous"),
    }
}

/// `f(src chunk, dst chunk)` over chunks of `chunk` elements, in parallel,
/// into a new vector of `src`'s length.
fn map_chunks<T, F>(src: &[T], chunk: usize, f: F) -> Vec<T>
where
    T: Copy + Default + Send + Sync,
    F: Fn(&[T], &mut [T]) + Sync,
{
    let mut dst = vec![T::default(); src.len()];
    dst.par_chunks_mut(chunk)
        .zip(src.par_chunks(chunk))
        .for_each(|(o, x)| f(x, o));
    dst
}

/// Applies `f` to every row of `dim` elements, converting through f32 so that
/// bf16/f16 inputs are reduced in f32 like PyTorch does.
fn map_rows<T, F>(src: &[T], dim: usize, f: F) -> Vec<T>
where
    T: Copy + Send + Sync + Into<f64> + FromF32,
    F: Fn(&[f32], &mut [f32]) + Sync,
{
    let mut dst: Vec<T> = vec![T::from_f32(0.0); src.len()];
    dst.par_chunks_mut(dim)
        .zip(src.par_chunks(dim))
        .for_each_init(
            || (vec![0f32; dim], vec![0f32; dim]),
            |(inb, outb), (out, row)| {
                for (i, v) in row.iter().enumerate() {
                    inb[i] = (*v).into() as f32;
                }
                f(inb, outb);
                for (o, v) in out.iter_mut().zip(outb.iter()) {
                    *o = T::from_f32(*v);
                }
            },
        );
    dst
}

trait FromF32 {
    fn from_f32(v: f32) -> Self;
}
impl FromF32 for f32 {
    fn from_f32(v: f32) -> Self {
        v
    }
}
impl FromF32 for f64 {
    fn from_f32(v: f32) -> Self {
        v as f64
    }
}
impl FromF32 for bf16 {
    fn from_f32(v: f32) -> Self {
        bf16::from_f32(v)
    }
}
impl FromF32 for f16 {
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
}

// ---------------------------------------------------------------- softmax

struct SoftmaxLastDim;

fn softmax_row(x: &[f32], y: &mut [f32]) {
    y.copy_from_slice(x);
    cpu_kernels::softmax_in_place(y);
}

fn softmax_row_f64(x: &[f64], y: &mut [f64]) {
    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0f64;
    for (o, v) in y.iter_mut().zip(x) {
        *o = (*v - max).exp();
        sum += *o;
    }
    y.iter_mut().for_each(|o| *o /= sum);
}

impl CustomOp1 for SoftmaxLastDim {
    fn name(&self) -> &'static str {
        "stilts-softmax"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> CResult<(CpuStorage, Shape)> {
        let dim = layout.dims()[layout.dims().len() - 1];
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(map_chunks(
                contiguous(v, layout, "softmax")?,
                dim,
                softmax_row,
            )),
            CpuStorage::BF16(v) => CpuStorage::BF16(map_rows(
                contiguous(v, layout, "softmax")?,
                dim,
                softmax_row,
            )),
            CpuStorage::F16(v) => CpuStorage::F16(map_rows(
                contiguous(v, layout, "softmax")?,
                dim,
                softmax_row,
            )),
            CpuStorage::F64(v) => {
                // f64 stays f64 end to end: gradient checks rely on it.
                let src = contiguous(v, layout, "softmax")?;
                CpuStorage::F64(map_chunks(src, dim, softmax_row_f64))
            }
            other => candle_core::bail!("softmax: unsupported dtype {:?}", other.dtype()),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        // dx = y * (g - sum(g * y)). Detached: backward records no graph.
        softmax_backward(&res.detach(), &grad.detach(), 1.0).map(Some)
    }
}

/// Softmax over the last dimension, with a backward pass.
pub fn softmax_last_dim(x: &Tensor) -> CResult<Tensor> {
    if x.device().is_cpu() {
        return x.contiguous()?.apply_op1(SoftmaxLastDim);
    }
    #[cfg(feature = "cuda")]
    if x.device().is_cuda() {
        let x = x.contiguous()?;
        let value = candle_nn::ops::softmax_last_dim(&x.detach())?;
        return x.apply_op1(on_device::Fused1 {
            value,
            backward: SoftmaxLastDim,
        });
    }
    candle_nn::ops::softmax(x, D::Minus1)
}

// ------------------------------------------------- attention softmax

/// `softmax(scores * scale + bias)` over the last dimension in one pass:
/// the attention probabilities, with the `[B, 1, 1, T]` mask bias of
/// [`attention_bias`] broadcast over heads and query positions. Fused on the
/// CPU (three full passes over `[B, heads, T, T]` become one).
struct MaskedSoftmax {
    scale: f64,
}

impl MaskedSoftmax {
    /// [`Self::run`] through the vectorised row kernel.
    fn run_f32(&self, scores: &[f32], bias: &[f32], t: usize) -> Vec<f32> {
        let rows_per_bias = scores.len() / bias.len();
        let mut out = scores.to_vec();
        out.par_chunks_mut(t).enumerate().for_each(|(r, y)| {
            let b = &bias[(r / rows_per_bias) * t..][..t];
            cpu_kernels::masked_softmax_in_place(y, b, self.scale as f32);
        });
        out
    }

    /// Rows of `[B, heads, Tq, T]` that share one bias row.
    fn run<T: Copy + Send + Sync + num_traits::Float>(
        &self,
        scores: &[T],
        bias: &[T],
        t: usize,
    ) -> Vec<T> {
        let rows_per_bias = scores.len() / bias.len();
        let scale = T::from(self.scale).unwrap_or_else(T::one);
        let mut out = vec![T::zero(); scores.len()];
        out.par_chunks_mut(t)
            .zip(scores.par_chunks(t))
            .enumerate()
            .for_each(|(r, (y, x))| {
                let b = &bias[(r / rows_per_bias) * t..][..t];
                let mut max = T::neg_infinity();
                for i in 0..t {
                    y[i] = x[i] * scale + b[i];
                    max = max.max(y[i]);
                }
                let mut sum = T::zero();
                for v in y.iter_mut() {
                    *v = (*v - max).exp();
                    sum = sum + *v;
                }
                let inv = T::one() / sum;
                y.iter_mut().for_each(|v| *v = *v * inv);
            });
        out
    }
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "stilts-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let t = l1.dims()[l1.dims().len() - 1];
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(b)) => CpuStorage::F32(self.run_f32(
                contiguous(x, l1, "attention softmax")?,
                contiguous(b, l2, "attention softmax")?,
                t,
            )),
            (CpuStorage::F64(x), CpuStorage::F64(b)) => CpuStorage::F64(self.run(
                contiguous(x, l1, "attention softmax")?,
                contiguous(b, l2, "attention softmax")?,
                t,
            )),
            _ => candle_core::bail!(
                "attention softmax: f32 or f64 scores and bias, got {:?}/{:?}",
                s1.dtype(),
                s2.dtype()
            ),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        _scores: &Tensor,
        _bias: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        // d scores = scale * y * (g - sum(g * y)); the mask gets none.
        let ds = softmax_backward(&res.detach(), &grad.detach(), self.scale)?;
        Ok((Some(ds), None))
    }
}

/// Attention probabilities `softmax(scores * scale + bias)` for scores
/// `[B, heads, Tq, T]` and a mask bias `[B, 1, 1, T]`, with a backward pass
/// (to the scores; the mask is constant).
pub fn masked_softmax(scores: &Tensor, bias: &Tensor, scale: f64) -> CResult<Tensor> {
    let fused = scores.device().is_cpu()
        && matches!(scores.dtype(), DType::F32 | DType::F64)
        && bias.dtype() == scores.dtype()
        && match (scores.dims(), bias.dims()) {
            ([b, _, _, t], [bb, 1, 1, bt]) => b == bb && t == bt,
            _ => false,
        };
    if fused {
        scores
            .contiguous()?
            .apply_op2(&bias.contiguous()?, MaskedSoftmax { scale })
    } else {
        softmax_last_dim(&(scores * scale)?.broadcast_add(bias)?)
    }
}

// ---------------------------------------------------------------- GELU

const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Exact GELU `0.5 x (1 + erf(x / sqrt 2))` (what XLM-R uses), one pass on
/// the CPU; the backward is one fused pass too.
struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "stilts-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> CResult<(CpuStorage, Shape)> {
        let out = match storage {
            CpuStorage::F32(v) => {
                let x = contiguous(v, layout, "gelu")?;
                CpuStorage::F32(map_chunks(x, 4096, cpu_kernels::gelu))
            }
            CpuStorage::F64(v) => CpuStorage::F64(
                contiguous(v, layout, "gelu")?
                    .iter()
                    .map(|&v| 0.5 * v * (1.0 + libm::erf(v * std::f64::consts::FRAC_1_SQRT_2)))
                    .collect(),
            ),
            other => candle_core::bail!("gelu: f32 or f64, got {:?}", other.dtype()),
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
        Ok(Some(arg.detach().contiguous()?.apply_op2_no_bwd(
            &grad.detach().contiguous()?,
            &GeluErfGrad,
        )?))
    }
}

/// `g * (Phi(x) + x phi(x))`, the GELU backward, in one pass.
struct GeluErfGrad;

impl CustomOp2 for GeluErfGrad {
    fn name(&self) -> &'static str {
        "stilts-gelu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let out = match (s1, s2) {
            (CpuStorage::F32(x), CpuStorage::F32(g)) => {
                let x = contiguous(x, l1, "gelu backward")?;
                let g = contiguous(g, l2, "gelu backward")?;
                let mut d = vec![0f32; x.len()];
                d.par_chunks_mut(4096)
                    .zip(x.par_chunks(4096).zip(g.par_chunks(4096)))
                    .for_each(|(d, (x, g))| cpu_kernels::gelu_backward(x, g, d));
                CpuStorage::F32(d)
            }
            (CpuStorage::F64(x), CpuStorage::F64(g)) => {
                let x = contiguous(x, l1, "gelu backward")?;
                let g = contiguous(g, l2, "gelu backward")?;
                CpuStorage::F64(
                    x.iter()
                        .zip(g)
                        .map(|(&v, &g)| {
                            let cdf = 0.5 * (1.0 + libm::erf(v * std::f64::consts::FRAC_1_SQRT_2));
                            g * (cdf + v * FRAC_1_SQRT_2PI * (-0.5 * v * v).exp())
                        })
                        .collect(),
                )
            }
            _ => candle_core::bail!("gelu backward: f32 or f64"),
        };
        Ok((out, l1.shape().clone()))
    }
}

/// Exact (erf) GELU with a backward pass: fused on the CPU in f32/f64,
/// candle's `gelu_erf` elsewhere.
pub fn gelu_erf(x: &Tensor) -> CResult<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64) {
        x.contiguous()?.apply_op1(GeluErf)
    } else {
        x.gelu_erf()
    }
}

// ---------------------------------------------------------------- layer norm

struct LayerNormOp {
    eps: f32,
}

fn to_f32_vec<T: Copy + Into<f64>>(v: &[T]) -> Vec<f32> {
    v.iter().map(|x| (*x).into() as f32).collect()
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "stilts-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let dim = l1.dims()[l1.dims().len() - 1];
        let eps = self.eps;
        macro_rules! run {
            ($x:expr, $w:expr, $b:expr, $variant:ident) => {{
                let w = to_f32_vec(contiguous($w, l2, "layer_norm")?);
                let b = to_f32_vec(contiguous($b, l3, "layer_norm")?);
                CpuStorage::$variant(map_rows(contiguous($x, l1, "layer_norm")?, dim, |x, y| {
                    cpu_kernels::layer_norm_row(x, None, &w, &b, eps, y)
                }))
            }};
        }
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => {
                let (w, b) = (
                    contiguous(w, l2, "layer_norm")?,
                    contiguous(b, l3, "layer_norm")?,
                );
                let x = contiguous(x, l1, "layer_norm")?;
                CpuStorage::F32(map_chunks(x, dim, |x, y| {
                    cpu_kernels::layer_norm_row(x, None, w, b, eps, y)
                }))
            }
            (CpuStorage::BF16(x), CpuStorage::BF16(w), CpuStorage::BF16(b)) => {
                run!(x, w, b, BF16)
            }
            (CpuStorage::F16(x), CpuStorage::F16(w), CpuStorage::F16(b)) => run!(x, w, b, F16),
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => {
                let x = contiguous(x, l1, "layer_norm")?;
                let w = contiguous(w, l2, "layer_norm")?;
                let b = contiguous(b, l3, "layer_norm")?;
                let eps = eps as f64;
                CpuStorage::F64(map_chunks(x, dim, |x, y| {
                    let n = x.len() as f64;
                    let mean = x.iter().sum::<f64>() / n;
                    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
                    let rstd = 1.0 / (var + eps).sqrt();
                    for i in 0..x.len() {
                        y[i] = (x[i] - mean) * rstd * w[i] + b[i];
                    }
                }))
            }
            _ => candle_core::bail!(
                "layer_norm: input, weight and bias must share one float dtype, got {:?}/{:?}/{:?}",
                s1.dtype(),
                s2.dtype(),
                s3.dtype()
            ),
        };
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // Detached: the backward computation records no graph of its own
        // (gradient checkpointing backpropagates through segments again).
        let (x, w, g) = (&x.detach(), &w.detach(), &g.detach());
        let hidden = x.dim(D::Minus1)?;
        if cpu_f32(&[x, w, g]) {
            // One pass over the rows (the same formula, row by row) instead
            // of fifteen tensor ops, each a full pass and an allocation.
            let x = x.contiguous()?;
            let rows = x.elem_count() / hidden;
            let packed = g.contiguous()?.apply_op3_no_bwd(
                &x,
                &w.contiguous()?,
                &LayerNormBackward { eps: self.eps },
            )?;
            let dx = packed.narrow(0, 0, rows * hidden)?.reshape(x.shape())?;
            let dw = packed.narrow(0, rows * hidden, hidden)?;
            let db = packed.narrow(0, rows * hidden + hidden, hidden)?;
            return Ok((Some(dx), Some(dw), Some(db)));
        }
        let mean = x.mean_keepdim(D::Minus1)?;
        let xc = x.broadcast_sub(&mean)?;
        let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
        let rstd = (var + self.eps as f64)?.sqrt()?.recip()?;
        let xhat = xc.broadcast_mul(&rstd)?;
        let rows = g.elem_count() / hidden;
        let dw = (g * &xhat)?.reshape((rows, hidden))?.sum(0)?;
        let db = g.reshape((rows, hidden))?.sum(0)?;
        let gw = g.broadcast_mul(w)?;
        let m1 = gw.mean_keepdim(D::Minus1)?;
        let m2 = (&gw * &xhat)?.mean_keepdim(D::Minus1)?;
        let dx = gw
            .broadcast_sub(&m1)?
            .sub(&xhat.broadcast_mul(&m2)?)?
            .broadcast_mul(&rstd)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// Whether every tensor is an f32 tensor on the CPU (where the fused
/// backward kernels apply).
fn cpu_f32(ts: &[&Tensor]) -> bool {
    ts.iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// The LayerNorm backward on the CPU in f32, as one op over `g` (and `x`,
/// `w`): its output packs `dx` (the rows), then `dw`, then `db`. The weight
/// and bias gradients are summed in blocks of
/// [`cpu_kernels::SUM_BLOCK_ROWS`] rows added in order, so the bytes do not
/// depend on the number of threads.
struct LayerNormBackward {
    eps: f32,
}

impl CustomOp3 for LayerNormBackward {
    fn name(&self) -> &'static str {
        "stilts-layer-norm-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let (g, x, w) = match (s1, s2, s3) {
            (CpuStorage::F32(g), CpuStorage::F32(x), CpuStorage::F32(w)) => (
                contiguous(g, l1, "layer_norm backward")?,
                contiguous(x, l2, "layer_norm backward")?,
                contiguous(w, l3, "layer_norm backward")?,
            ),
            _ => candle_core::bail!("layer_norm backward: f32 only"),
        };
        let h = w.len();
        if h == 0 || x.len() != g.len() || x.len() % h != 0 {
            candle_core::bail!("layer_norm backward: shapes differ");
        }
        let rows = x.len() / h;
        let mut out = vec![0f32; rows * h + 2 * h];
        let (dx, sums) = out.split_at_mut(rows * h);
        let (dw, db) = sums.split_at_mut(h);
        layer_norm_backward_f32(g, x, w, self.eps, dx, dw, db);
        Ok((CpuStorage::F32(out), Shape::from(rows * h + 2 * h)))
    }
}

/// The LayerNorm backward over row-major rows of `w.len()` elements, on the
/// CPU in f32: from the input `x` and the output gradient `g`, the input
/// gradient into `dx` and the weight and bias gradients added to `dw` and
/// `db`, summed in blocks of [`cpu_kernels::SUM_BLOCK_ROWS`] rows added in
/// order (the same bytes on any number of threads).
pub(crate) fn layer_norm_backward_f32(
    g: &[f32],
    x: &[f32],
    w: &[f32],
    eps: f32,
    dx: &mut [f32],
    dw: &mut [f32],
    db: &mut [f32],
) {
    let h = w.len();
    let block = cpu_kernels::SUM_BLOCK_ROWS * h;
    let partial: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(block)
        .zip(x.par_chunks(block).zip(g.par_chunks(block)))
        .map(|(dx, (x, g))| {
            let (mut dw, mut db) = (vec![0f32; h], vec![0f32; h]);
            for ((dx, x), g) in dx.chunks_mut(h).zip(x.chunks(h)).zip(g.chunks(h)) {
                cpu_kernels::layer_norm_backward_row(x, w, g, eps, dx, &mut dw, &mut db);
            }
            (dw, db)
        })
        .collect();
    for (pw, pb) in &partial {
        for i in 0..h {
            dw[i] += pw[i];
            db[i] += pb[i];
        }
    }
}

/// `scale * y * (g - sum(g * y))` over the last dimension (the softmax
/// backward, from its output `y`): one pass per row on the CPU in f32,
/// tensor ops elsewhere.
fn softmax_backward(y: &Tensor, g: &Tensor, scale: f64) -> CResult<Tensor> {
    if cpu_f32(&[y, g]) {
        return y.contiguous()?.apply_op2_no_bwd(
            &g.contiguous()?,
            &SoftmaxBackward {
                scale: scale as f32,
            },
        );
    }
    let dot = (g * y)?.sum_keepdim(D::Minus1)?;
    let d = (y * g.broadcast_sub(&dot)?)?;
    if scale == 1.0 {
        Ok(d)
    } else {
        d * scale
    }
}

struct SoftmaxBackward {
    scale: f32,
}

impl CustomOp2 for SoftmaxBackward {
    fn name(&self) -> &'static str {
        "stilts-softmax-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        let t = l1.dims()[l1.dims().len() - 1];
        let (y, g) = match (s1, s2) {
            (CpuStorage::F32(y), CpuStorage::F32(g)) => (
                contiguous(y, l1, "softmax backward")?,
                contiguous(g, l2, "softmax backward")?,
            ),
            _ => candle_core::bail!("softmax backward: f32 only"),
        };
        if y.len() != g.len() {
            candle_core::bail!("softmax backward: shapes differ");
        }
        let scale = self.scale;
        let mut d = vec![0f32; y.len()];
        // Rows in chunks of about 16k elements: enough work per task.
        let rows_per = (16_384 / t.max(1)).max(1) * t;
        d.par_chunks_mut(rows_per)
            .zip(y.par_chunks(rows_per).zip(g.par_chunks(rows_per)))
            .for_each(|(d, (y, g))| {
                for ((d, y), g) in d.chunks_mut(t).zip(y.chunks(t)).zip(g.chunks(t)) {
                    cpu_kernels::softmax_backward_row(y, g, scale, d);
                }
            });
        Ok((CpuStorage::F32(d), l1.shape().clone()))
    }
}

/// LayerNorm over the last dimension (`(x - mean) / sqrt(var + eps) * w + b`,
/// biased variance as in PyTorch), with a backward pass.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> CResult<Tensor> {
    let op = LayerNormOp { eps: eps as f32 };
    if x.device().is_cpu() {
        return x.contiguous()?.apply_op3(w, b, op);
    }
    #[cfg(feature = "cuda")]
    if x.device().is_cuda() {
        let x = x.contiguous()?;
        let value = candle_nn::ops::layer_norm(&x.detach(), &w.detach(), &b.detach(), op.eps)?;
        return x.apply_op3(
            w,
            b,
            on_device::Fused3 {
                value,
                backward: op,
            },
        );
    }
    candle_nn::ops::layer_norm_slow(x, w, b, eps as f32)
}

/// Whether the fused evaluation paths apply: every tensor f32 on the CPU and
/// none recording an autograd graph (an inference view; never training).
pub(crate) fn cpu_f32_without_graph(tensors: &[&Tensor]) -> bool {
    tensors
        .iter()
        .all(|t| t.device().is_cpu() && t.dtype() == DType::F32 && !t.track_op())
}

/// `layer_norm(x + residual)`, the post-LN residual step. In evaluation on
/// the CPU (f32, nothing records a graph) the add and the norm are one pass
/// over the rows; otherwise the two ops, with their backward.
pub fn add_layer_norm(
    x: &Tensor,
    residual: &Tensor,
    w: &Tensor,
    b: &Tensor,
    eps: f64,
) -> CResult<Tensor> {
    let fused = x.dims() == residual.dims() && cpu_f32_without_graph(&[x, residual, w, b]);
    if !fused {
        return layer_norm(&(x + residual)?, w, b, eps);
    }
    let (x, residual) = (x.contiguous()?, residual.contiguous()?);
    let (w, b) = (w.contiguous()?, b.contiguous()?);
    let dim = x.dim(D::Minus1)?;
    let mut y = vec![0f32; x.elem_count()];
    {
        let (sx, lx) = x.storage_and_layout();
        let (sr, lr) = residual.storage_and_layout();
        let (sw, lw) = w.storage_and_layout();
        let (sb, lb) = b.storage_and_layout();
        fn slice(s: &candle_core::Storage) -> Option<&[f32]> {
            match s {
                candle_core::Storage::Cpu(CpuStorage::F32(v)) => Some(v.as_slice()),
                _ => None,
            }
        }
        let (Some(xs), Some(rs), Some(ws), Some(bs)) =
            (slice(&sx), slice(&sr), slice(&sw), slice(&sb))
        else {
            candle_core::bail!("add_layer_norm: f32 CPU tensors expected");
        };
        let xs = contiguous(xs, lx, "layer_norm")?;
        let rs = contiguous(rs, lr, "layer_norm")?;
        let (ws, bs) = (
            contiguous(ws, lw, "layer_norm")?,
            contiguous(bs, lb, "layer_norm")?,
        );
        let eps = eps as f32;
        y.par_chunks_mut(dim)
            .zip(xs.par_chunks(dim).zip(rs.par_chunks(dim)))
            .for_each(|(y, (x, r))| cpu_kernels::layer_norm_row(x, Some(r), ws, bs, eps, y));
    }
    Tensor::from_vec(y, x.shape(), x.device())
}

/// GPU forwards: candle-nn's fused CUDA kernels compute the value but have
/// no backward (gradients would stop silently), so these ops hand that value
/// back as their forward (one device copy) and carry our backward.
#[cfg(feature = "cuda")]
mod on_device {
    use candle_core::backend::BackendStorage;
    use candle_core::{CpuStorage, CudaStorage, CustomOp1, CustomOp3, Layout, Shape, Tensor};

    type CResult<T> = candle_core::Result<T>;

    fn copy_of(value: &Tensor) -> CResult<(CudaStorage, Shape)> {
        let (storage, layout) = value.storage_and_layout();
        match &*storage {
            candle_core::Storage::Cuda(s) => Ok((s.try_clone(layout)?, layout.shape().clone())),
            _ => candle_core::bail!("fused GPU op: the value is not on the GPU"),
        }
    }

    pub(super) struct Fused1<B> {
        pub value: Tensor,
        pub backward: B,
    }

    impl<B: CustomOp1> CustomOp1 for Fused1<B> {
        fn name(&self) -> &'static str {
            self.backward.name()
        }
        fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> CResult<(CpuStorage, Shape)> {
            candle_core::bail!("{}: GPU op called on the CPU", self.name())
        }
        fn cuda_fwd(&self, _: &CudaStorage, _: &Layout) -> CResult<(CudaStorage, Shape)> {
            copy_of(&self.value)
        }
        fn bwd(&self, arg: &Tensor, res: &Tensor, grad: &Tensor) -> CResult<Option<Tensor>> {
            self.backward.bwd(arg, res, grad)
        }
    }

    pub(super) struct Fused3<B> {
        pub value: Tensor,
        pub backward: B,
    }

    impl<B: CustomOp3> CustomOp3 for Fused3<B> {
        fn name(&self) -> &'static str {
            self.backward.name()
        }
        fn cpu_fwd(
            &self,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
            _: &CpuStorage,
            _: &Layout,
        ) -> CResult<(CpuStorage, Shape)> {
            candle_core::bail!("{}: GPU op called on the CPU", self.name())
        }
        fn cuda_fwd(
            &self,
            _: &CudaStorage,
            _: &Layout,
            _: &CudaStorage,
            _: &Layout,
            _: &CudaStorage,
            _: &Layout,
        ) -> CResult<(CudaStorage, Shape)> {
            copy_of(&self.value)
        }
        fn bwd(
            &self,
            a: &Tensor,
            b: &Tensor,
            c: &Tensor,
            res: &Tensor,
            grad: &Tensor,
        ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
            self.backward.bwd(a, b, c, res, grad)
        }
    }
}

// ---------------------------------------------------------------- dropout

/// The random source of dropout. Masks are drawn on the host from a seeded
/// ChaCha stream, not from candle's device RNG (unseedable on CPU), so a run
/// is reproducible and its position can be saved in a checkpoint.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DropoutRng(pub ChaCha8Rng);

impl DropoutRng {
    /// A stream seeded with `seed` (the same seed, the same masks).
    pub fn new(seed: u64) -> Self {
        use rand::SeedableRng;
        DropoutRng(ChaCha8Rng::seed_from_u64(seed))
    }
}

/// Starts a block of dropout calls (an encoder layer, the embeddings, a
/// head). On the CPU masks come from the ChaCha stream itself. On a GPU,
/// drawing and uploading masks from the host would cost more than the step,
/// so masks come from the device's generator, reseeded here from the ChaCha
/// stream: the run stays reproducible per seed, and a layer recomputed under
/// gradient checkpointing (which replays the stream) sees the same masks.
pub fn begin_dropout_block(
    rng: Option<&mut DropoutRng>,
    device: &candle_core::Device,
) -> CResult<()> {
    if let Some(r) = rng {
        if !device.is_cpu() {
            device.set_seed(r.0.random::<u64>())?;
        }
    }
    Ok(())
}

/// Inverted dropout: zeroes each element with probability `p` and scales the
/// rest by `1/(1-p)`. With no RNG (evaluation) it is the identity.
pub fn dropout(x: &Tensor, p: f64, rng: Option<&mut DropoutRng>) -> CResult<Tensor> {
    let rng = match rng {
        Some(r) if p > 0.0 => r,
        _ => return Ok(x.clone()),
    };
    if !(0.0..1.0).contains(&p) {
        candle_core::bail!("dropout probability must be in [0, 1), got {p}")
    }
    if !x.device().is_cpu() {
        // The device's generator, seeded by `begin_dropout_block`.
        let keep = Tensor::rand(0f32, 1f32, x.shape(), x.device())?.ge(p)?;
        return x * (keep.to_dtype(x.dtype())? * (1.0 / (1.0 - p)))?;
    }
    let mask = dropout_mask(rng, x.elem_count(), p);
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    x * mask
}

/// `n` dropout factors from the stream, in order: 0 with probability `p`,
/// else `1/(1-p)`. The CPU masks of [`dropout`] and of the hand-written
/// layer (`layer_cpu`), which must draw the same.
///
/// Each element takes one `u32` of the stream, as `rng.random::<f32>() <
/// p` would (rand makes that f32 from the word's top 24 bits, `(w >> 8) *
/// 2^-24`; scaling both sides by 2^24 is exact), but the words are drawn in
/// bulk and compared in parallel: the same masks and the same stream
/// position, at a fraction of the cost (`dropout_mask_matches_the_f32_draws`).
pub fn dropout_mask(rng: &mut DropoutRng, n: usize, p: f64) -> Vec<f32> {
    let scale = (1.0 / (1.0 - p)) as f32;
    let threshold = p as f32 * 16_777_216.0;
    let mut words = vec![0u32; n];
    // The stream in blocks drawn in parallel, each from its own position
    // (ChaCha seeks by word): the same words as one sequential fill.
    const BLOCK: usize = 1 << 16;
    let start = rng.0.get_word_pos();
    words.par_chunks_mut(BLOCK).enumerate().for_each(|(i, c)| {
        let mut r = rng.0.clone();
        r.set_word_pos(start + (i * BLOCK) as u128);
        r.fill(c);
    });
    rng.0.set_word_pos(start + n as u128);
    // Each word becomes its factor's bits in place; the last line reuses
    // the buffer (an in-place collect, same size and alignment).
    let (zero, keep) = (0f32.to_bits(), scale.to_bits());
    words.par_chunks_mut(16_384).for_each(|c| {
        for w in c {
            *w = if ((*w >> 8) as f32) < threshold {
                zero
            } else {
                keep
            };
        }
    });
    words.into_iter().map(f32::from_bits).collect()
}

/// The activation named by `hidden_act` in config.json.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU (erf), what XLM-R uses.
    Gelu,
    /// The tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    /// `max(0, x)` (`relu`).
    Relu,
}

impl Activation {
    /// The activation a `hidden_act` value names: `gelu`, `gelu_new`,
    /// `gelu_pytorch_tanh`, `gelu_fast` or `relu`; `None` for any other.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Activation::GeluTanh),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }

    /// The `hidden_act` name written for this activation (`gelu`, `gelu_new`,
    /// `relu`).
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_new",
            Activation::Relu => "relu",
        }
    }

    /// The activation applied element-wise to `x`.
    pub fn apply(&self, x: &Tensor) -> CResult<Tensor> {
        match self {
            Activation::Gelu => gelu_erf(x),
            Activation::GeluTanh => x.gelu(),
            Activation::Relu => x.relu(),
        }
    }
}

/// The additive attention bias for a `[B, T]` 0/1 mask: 0 where attended and
/// the dtype's most negative value where masked, shaped `[B, 1, 1, T]`
/// (what transformers' `get_extended_attention_mask` builds).
pub fn attention_bias(mask: &Tensor, dtype: DType) -> CResult<Tensor> {
    let min = match dtype {
        DType::F64 => f64::MIN,
        DType::BF16 => bf16::MIN.to_f64(),
        DType::F16 => f16::MIN.to_f64(),
        _ => f32::MIN as f64,
    };
    let (b, t) = mask.dims2()?;
    // (1 - m) * min, as m * (-min) + min in the target dtype (no overflow).
    mask.to_dtype(dtype)?
        .affine(-min, min)?
        .reshape((b, 1, 1, t))
}
