//! CPU matmuls through the `gemm` crate (what candle's CPU backend uses
//! underneath), where candle's own call pattern is slow for us:
//!
//! - [`linear`]: `x W^T + b` with the bias written into the output before
//!   the product accumulates onto it: no separate bias pass (at batch 16 x
//!   128, FFN 1024: 9.7 ms against candle's matmul + `broadcast_add` 23.7 ms).
//! - [`batched_matmul`]: the attention products `[B, H, M, K] x [B, H, K, N]`
//!   with any strides (transposed and head-split views need no copy), one
//!   single-threaded gemm per (batch, head), run in parallel: candle splits
//!   each small product across threads instead (64 x [128x64x128]: 1.8 ms
//!   against 3.3 ms; PyTorch 1.5 ms). `cargo bench --bench matmul`.
//!
//! Both have backward passes (tested against finite differences in
//! `crates/stilts-model/tests/it/gradients.rs`); other dtypes and devices use candle's matmul.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use super::cpu_kernels;
use super::ops::{contiguous, cpu_f32_without_graph};

type CResult<T> = candle_core::Result<T>;

fn threads() -> gemm::Parallelism {
    gemm::Parallelism::Rayon(rayon::current_num_threads().max(1))
}

/// `y = x W^T + b` for `x: [M, K]`, `W: [N, K]`, `b: [N]`; with `gelu`,
/// `GELU(y)` applied to the fresh output before it leaves the op (evaluation
/// only: that variant has no backward).
struct Linear {
    gelu: bool,
}

impl Linear {
    fn run<T: Copy + Default + Send + Sync + 'static + num_traits::One>(
        x: &[T],
        w: &[T],
        b: &[T],
        m: usize,
        k: usize,
        n: usize,
    ) -> Vec<T> {
        // Every row starts as the bias (written once, no zero fill first);
        // the product then accumulates onto it.
        let mut y: Vec<T> = Vec::with_capacity(m * n);
        y.spare_capacity_mut()[..m * n]
            .par_chunks_mut(n)
            .for_each(|row| {
                for (o, v) in row.iter_mut().zip(b) {
                    o.write(*v);
                }
            });
        // SAFETY: all m*n elements were just written.
        unsafe { y.set_len(m * n) };
        // SAFETY: the slices hold m*k, n*k and m*n elements laid out with the
        // strides given (row-major x and y; W read as W^T).
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                y.as_mut_ptr(),
                1,
                n as isize,
                true,
                x.as_ptr(),
                1,
                k as isize,
                w.as_ptr(),
                k as isize,
                1,
                T::one(),
                T::one(),
                false,
                false,
                false,
                threads(),
            );
        }
        y
    }
}

/// `x W^T + b` on row-major slices (`x: [m, k]`, `W: [n, k]`, `b: [n]`):
/// the product of [`linear`], for the hand-written layer (`layer_cpu`).
pub(crate) fn linear_f32(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
) -> Vec<f32> {
    Linear::run(x, w, b, m, k, n)
}

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "stilts-linear"
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
        let (m, k) = l1.shape().dims2()?;
        let (n, _) = l2.shape().dims2()?;
        if self.gelu && !matches!(s1, CpuStorage::F32(_)) {
            candle_core::bail!("linear with GELU: f32 only");
        }
        let out = match (s1, s2, s3) {
            (CpuStorage::F32(x), CpuStorage::F32(w), CpuStorage::F32(b)) => {
                let mut y = Self::run(
                    contiguous(x, l1, "linear")?,
                    contiguous(w, l2, "linear")?,
                    contiguous(b, l3, "linear")?,
                    m,
                    k,
                    n,
                );
                if self.gelu {
                    y.par_chunks_mut(4096).for_each(cpu_kernels::gelu_in_place);
                }
                CpuStorage::F32(y)
            }
            (CpuStorage::F64(x), CpuStorage::F64(w), CpuStorage::F64(b)) => {
                CpuStorage::F64(Self::run(
                    contiguous(x, l1, "linear")?,
                    contiguous(w, l2, "linear")?,
                    contiguous(b, l3, "linear")?,
                    m,
                    k,
                    n,
                ))
            }
            _ => candle_core::bail!("linear: f32 or f64 input, weight and bias"),
        };
        Ok((out, Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        if self.gelu {
            candle_core::bail!("linear with GELU is evaluation-only: it has no backward");
        }
        let (x, w, g) = (x.detach(), w.detach(), g.detach());
        let dx = g.matmul(&w)?;
        let dw = g.t()?.matmul(&x)?;
        let db = column_sums(&g)?;
        Ok((Some(dx), Some(dw), Some(db)))
    }
}

/// The sum over rows of `[M, N]` (a bias gradient): candle's `sum(0)` is a
/// strided single-threaded reduction; on the CPU in f32 this is
/// [`cpu_kernels::column_sums`] (parallel, the same bytes on any number of
/// threads).
fn column_sums(g: &Tensor) -> CResult<Tensor> {
    if !(g.device().is_cpu() && g.dtype() == DType::F32 && g.rank() == 2) {
        return g.sum(0);
    }
    g.contiguous()?.apply_op1_no_bwd(&ColumnSums)
}

struct ColumnSums;

impl candle_core::CustomOp1 for ColumnSums {
    fn name(&self) -> &'static str {
        "stilts-column-sums"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> CResult<(CpuStorage, Shape)> {
        let n = l.dims()[1];
        match (s, l.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) => Ok((
                CpuStorage::F32(super::cpu_kernels::column_sums(&v[a..b], n)),
                Shape::from(n),
            )),
            _ => candle_core::bail!("column sums: contiguous f32 only"),
        }
    }
}

/// `x W^T + b` for `x: [M, K]` (PyTorch's weight layout `W: [N, K]`), with
/// a backward pass; fused on the CPU in f32/f64.
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> CResult<Tensor> {
    if x.device().is_cpu()
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && w.dtype() == x.dtype()
        && b.dtype() == x.dtype()
    {
        x.contiguous()?
            .apply_op3(&w.contiguous()?, &b.contiguous()?, Linear { gelu: false })
    } else {
        x.matmul(&w.t()?)?.broadcast_add(b)
    }
}

/// `GELU(x W^T + b)` in one op on the CPU in evaluation (f32, no input
/// records a graph): the activation runs over the product's fresh output
/// instead of a second tensor. `None` where it does not apply.
pub fn linear_gelu_inference(x: &Tensor, w: &Tensor, b: &Tensor) -> CResult<Option<Tensor>> {
    if !cpu_f32_without_graph(&[x, w, b]) {
        return Ok(None);
    }
    Ok(Some(x.contiguous()?.apply_op3_no_bwd(
        &w.contiguous()?,
        &b.contiguous()?,
        &Linear { gelu: true },
    )?))
}

/// `[B, H, M, K] x [B, H, K, N] -> [B, H, M, N]`, inputs with any strides.
struct BatchedMatmul;

/// Element strides of a 4-D layout and its start offset.
fn strides4(l: &Layout) -> CResult<([usize; 4], [usize; 4], usize)> {
    match (l.dims(), l.stride()) {
        ([a, b, c, d], [s0, s1, s2, s3]) => {
            Ok(([*a, *b, *c, *d], [*s0, *s1, *s2, *s3], l.start_offset()))
        }
        _ => candle_core::bail!("batched matmul: 4-D inputs, got {:?}", l.dims()),
    }
}

impl BatchedMatmul {
    fn run<T: Copy + Default + Send + Sync + 'static + num_traits::Zero + num_traits::One>(
        a: &[T],
        la: &Layout,
        b: &[T],
        lb: &Layout,
    ) -> CResult<(Vec<T>, Shape)> {
        let (da, sa, oa) = strides4(la)?;
        let (db, sb, ob) = strides4(lb)?;
        if da[0] != db[0] || da[1] != db[1] || da[3] != db[2] {
            candle_core::bail!("batched matmul: shapes {da:?} and {db:?} do not fit");
        }
        let (heads, m, k, n) = (da[1], da[2], da[3], db[3]);
        let mut out = vec![T::default(); da[0] * heads * m * n];
        // Raw pointers cross threads as addresses; each task reads its own
        // (batch, head) block and writes its own output block.
        let (pa, pb) = (a.as_ptr() as usize, b.as_ptr() as usize);
        out.par_chunks_mut(m * n).enumerate().for_each(|(i, dst)| {
            let (bi, hi) = (i / heads, i % heads);
            let a = (pa as *const T).wrapping_add(oa + bi * sa[0] + hi * sa[1]);
            let b = (pb as *const T).wrapping_add(ob + bi * sb[0] + hi * sb[1]);
            // SAFETY: offsets and strides come from the layouts of `a` and
            // `b`, whose storages hold every element those layouts address.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    dst.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a,
                    sa[3] as isize,
                    sa[2] as isize,
                    b,
                    sb[3] as isize,
                    sb[2] as isize,
                    T::zero(),
                    T::one(),
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        });
        Ok((out, Shape::from((da[0], heads, m, n))))
    }
}

impl CustomOp2 for BatchedMatmul {
    fn name(&self) -> &'static str {
        "stilts-batched-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> CResult<(CpuStorage, Shape)> {
        match (s1, s2) {
            (CpuStorage::F32(a), CpuStorage::F32(b)) => {
                let (v, s) = Self::run(a, l1, b, l2)?;
                Ok((CpuStorage::F32(v), s))
            }
            (CpuStorage::F64(a), CpuStorage::F64(b)) => {
                let (v, s) = Self::run(a, l1, b, l2)?;
                Ok((CpuStorage::F64(v), s))
            }
            _ => candle_core::bail!("batched matmul: f32 or f64 inputs"),
        }
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        g: &Tensor,
    ) -> CResult<(Option<Tensor>, Option<Tensor>)> {
        // Transposes are views: the op reads them through their strides.
        let (a, b, g) = (a.detach(), b.detach(), g.detach());
        let da = g.apply_op2_no_bwd(&b.transpose(D::Minus2, D::Minus1)?, &BatchedMatmul)?;
        let db = a
            .transpose(D::Minus2, D::Minus1)?
            .apply_op2_no_bwd(&g, &BatchedMatmul)?;
        Ok((Some(da), Some(db)))
    }
}

/// `a @ b` for 4-D `[B, H, M, K]` and `[B, H, K, N]` (attention scores and
/// context), with a backward pass; on the CPU in f32/f64 any strides are
/// read in place.
pub fn batched_matmul(a: &Tensor, b: &Tensor) -> CResult<Tensor> {
    if a.device().is_cpu()
        && matches!(a.dtype(), DType::F32 | DType::F64)
        && b.dtype() == a.dtype()
        && a.rank() == 4
        && b.rank() == 4
    {
        a.apply_op2(b, BatchedMatmul)
    } else {
        a.contiguous()?.matmul(&b.contiguous()?)
    }
}

/// Evaluation-only attention on the CPU (f32, no autograd graph): for each
/// (batch, head), in parallel, `softmax(q k^T * scale + mask) v` through a
/// block-local score buffer, written straight into the `[B, T, H]` layout.
/// The `[B, heads, T, T]` scores and probabilities and the context transpose
/// copy of the general path never exist. `None` when it does not apply
/// (another dtype or device, or inputs that record a graph: training).
pub fn attention_inference(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: &Tensor,
    scale: f64,
) -> CResult<Option<Tensor>> {
    if !(cpu_f32_without_graph(&[q, k, v, bias]) && q.rank() == 4) {
        return Ok(None);
    }
    let (b, heads, t, hd) = q.dims4()?;
    if k.dims() != q.dims() || v.dims() != q.dims() || bias.dims() != [b, 1, 1, t] {
        return Ok(None);
    }
    let bias = bias.contiguous()?;
    let (sq, lq) = q.storage_and_layout();
    let (sk, lk) = k.storage_and_layout();
    let (sv, lv) = v.storage_and_layout();
    let (sb, lb) = bias.storage_and_layout();
    let f32s = |s: &candle_core::Storage| -> CResult<*const f32> {
        match s {
            candle_core::Storage::Cpu(CpuStorage::F32(v)) => Ok(v.as_ptr()),
            _ => candle_core::bail!("attention: f32 CPU tensors expected"),
        }
    };
    let (pq, pk, pv) = (
        f32s(&sq)? as usize,
        f32s(&sk)? as usize,
        f32s(&sv)? as usize,
    );
    let mask = match &*sb {
        candle_core::Storage::Cpu(CpuStorage::F32(v)) => contiguous(v, lb, "attention mask")?,
        _ => candle_core::bail!("attention: f32 CPU mask expected"),
    };
    let (_, sq4, oq) = strides4(lq)?;
    let (_, sk4, ok) = strides4(lk)?;
    let (_, sv4, ov) = strides4(lv)?;
    let h = heads * hd;
    // Written in full by the context products below (gemm with alpha 0
    // does not read its destination), so it starts uninitialised.
    let mut out: Vec<f32> = Vec::with_capacity(b * t * h);
    let po = out.as_mut_ptr() as usize;
    let scale = scale as f32;
    (0..b * heads).into_par_iter().for_each_init(
        || vec![0f32; t * t],
        |scores, i| {
            let (bi, hi) = (i / heads, i % heads);
            let at = |p: usize, o: usize, s: &[usize; 4]| {
                (p as *const f32).wrapping_add(o + bi * s[0] + hi * s[1])
            };
            // SAFETY: pointers and strides come from the layouts of q, k, v
            // (whose storages are held by the read guards above); each task
            // writes only the columns [hi*hd, (hi+1)*hd) of its batch rows.
            unsafe {
                gemm::gemm(
                    t,
                    t,
                    hd,
                    scores.as_mut_ptr(),
                    1,
                    t as isize,
                    false,
                    at(pq, oq, &sq4),
                    sq4[3] as isize,
                    sq4[2] as isize,
                    at(pk, ok, &sk4),
                    sk4[2] as isize,
                    sk4[3] as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            let m = &mask[bi * t..(bi + 1) * t];
            for row in scores.chunks_mut(t) {
                cpu_kernels::masked_softmax_in_place(row, m, scale);
            }
            unsafe {
                let dst = (po as *mut f32).wrapping_add(bi * t * h + hi * hd);
                gemm::gemm(
                    t,
                    hd,
                    t,
                    dst,
                    1,
                    h as isize,
                    false,
                    scores.as_ptr(),
                    1,
                    t as isize,
                    at(pv, ov, &sv4),
                    sv4[3] as isize,
                    sv4[2] as isize,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        },
    );
    drop((sq, sk, sv, sb));
    // SAFETY: the (batch, head) tasks together wrote every element.
    unsafe { out.set_len(b * t * h) };
    Ok(Some(Tensor::from_vec(out, (b, t, h), q.device())?))
}
