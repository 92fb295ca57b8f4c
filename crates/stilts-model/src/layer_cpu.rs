//! One encoder layer's training forward and backward written by hand, on
//! the CPU in f32.
//!
//! Why not candle's autograd here: its backward gives every node's
//! gradient a zero tensor and then adds each contribution onto it (a
//! memset and a full read-read-write pass per gradient), keeps every
//! element-wise step as a graph node of its own, and cannot pack q, k and
//! v into one product. At the shape of multilingual-e5-small (12 x 384,
//! batch 32 x 64) that was a third of the backward beyond its matmuls.
//! Here the forward keeps what the backward needs (a [`Tape`]) and the
//! backward is the chain rule written out: each gradient made once, in
//! place where it can be, with the matmuls through `gemm` (q, k and v as
//! one `[3H, H]` product, the attention one single-threaded product per
//! (batch, head) in parallel, as [`super::cpu_matmul`] does).
//!
//! It computes what the autograd path computes (same ops, same dropout
//! masks from the same stream, in the same order); the sums run in another
//! order, so the two agree to f32 rounding, which
//! `crates/stilts-model/tests/it/handwritten.rs` checks for every variant,
//! with dropout and padding. Where it does not apply (another device or
//! dtype, mixed precision, an activation other than exact GELU) the
//! encoder uses the autograd path ([`super::encoder::Encoder::handwritten_applies`]).

use candle_core::{CpuStorage, Storage, Tensor};
use rayon::prelude::*;

use super::cpu_kernels as kernels;
use super::cpu_matmul::linear_f32;
use super::ops::{contiguous, dropout_mask, layer_norm_backward_f32, DropoutRng};

type CResult<T> = candle_core::Result<T>;

/// The sizes of one layer's batch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dims {
    /// Batch rows.
    pub b: usize,
    /// Tokens per row.
    pub t: usize,
    /// Hidden size.
    pub h: usize,
    /// Attention heads.
    pub heads: usize,
    /// FFN size.
    pub f: usize,
    /// Query rows per batch row: `t`, or 1 when only the first token's
    /// output is read (the last layer under a sequence head: the other
    /// rows' outputs have no gradient, so they are not computed).
    pub tq: usize,
}

impl Dims {
    fn n(&self) -> usize {
        self.b * self.t
    }
    /// Rows after the attention: `b * tq`.
    fn m(&self) -> usize {
        self.b * self.tq
    }
    fn hd(&self) -> usize {
        self.h / self.heads
    }
}

/// A layer's parameters as slices, in [`PARAM_ORDER`].
pub(crate) struct Params<'a> {
    pub wq: &'a [f32],
    pub bq: &'a [f32],
    pub wk: &'a [f32],
    pub bk: &'a [f32],
    pub wv: &'a [f32],
    pub bv: &'a [f32],
    pub wo: &'a [f32],
    pub bo: &'a [f32],
    pub ln1w: &'a [f32],
    pub ln1b: &'a [f32],
    pub wi: &'a [f32],
    pub bi: &'a [f32],
    pub wf: &'a [f32],
    pub bf: &'a [f32],
    pub ln2w: &'a [f32],
    pub ln2b: &'a [f32],
}

/// The order of a layer's 16 parameters in [`Params`] and in the gradients
/// [`backward`] returns: q, k, v, attention output (weight, bias each), the
/// attention-side LayerNorm, intermediate, output, the FFN-side LayerNorm.
pub(crate) const PARAM_ORDER: usize = 16;

impl<'a> Params<'a> {
    fn from_slices(s: &[&'a [f32]]) -> Self {
        Params {
            wq: s[0],
            bq: s[1],
            wk: s[2],
            bk: s[3],
            wv: s[4],
            bv: s[5],
            wo: s[6],
            bo: s[7],
            ln1w: s[8],
            ln1b: s[9],
            wi: s[10],
            bi: s[11],
            wf: s[12],
            bf: s[13],
            ln2w: s[14],
            ln2b: s[15],
        }
    }
}

/// The layer's settings beside its parameters.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    /// Pre-LayerNorm (XL, XXL) rather than post-LayerNorm (base, large, BERT).
    pub pre_ln: bool,
    /// LayerNorm epsilon.
    pub eps: f32,
    /// Dropout on the attention probabilities.
    pub p_attn: f64,
    /// Dropout on the attention and FFN outputs.
    pub p_hidden: f64,
}

/// What [`backward`] needs from [`forward`]: the activations, as row-major
/// f32 vectors (`N = B * T` rows).
pub(crate) struct Tape {
    dims: Dims,
    /// The input of the q/k/v product `[N, H]` (post-LN: the layer input;
    /// pre-LN: its LayerNorm).
    attn_in: Vec<f32>,
    /// q | k | v per token, `[N, 3H]`.
    qkv: Vec<f32>,
    /// Softmax probabilities `[B, heads, T, T]` (before dropout).
    probs: Vec<f32>,
    /// Their dropout factors (`None`: no dropout).
    attn_mask: Option<Vec<f32>>,
    /// The attention context `[N, H]`.
    ctx: Vec<f32>,
    /// Dropout factors of the attention output.
    mask1: Option<Vec<f32>>,
    /// The input of the attention-side LayerNorm (post-LN: attention +
    /// residual; pre-LN: the layer input).
    ln1_in: Vec<f32>,
    /// The input of the intermediate product (post-LN: the first
    /// LayerNorm's output; pre-LN: the second LayerNorm's output).
    ffn_in: Vec<f32>,
    /// The intermediate product before GELU `[N, F]`.
    u: Vec<f32>,
    /// GELU of it.
    act: Vec<f32>,
    /// Dropout factors of the FFN output.
    mask2: Option<Vec<f32>>,
    /// The input of the FFN-side LayerNorm (post-LN: FFN + residual; pre-LN:
    /// the residual stream after attention).
    ln2_in: Vec<f32>,
}

/// The f32 data of CPU tensors (contiguous ones, or an error), for `f`.
pub(crate) fn with_f32<R>(ts: &[&Tensor], f: impl FnOnce(&[&[f32]]) -> CResult<R>) -> CResult<R> {
    let guards: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(ts.len());
    for (s, l) in &guards {
        match &**s {
            Storage::Cpu(CpuStorage::F32(v)) => slices.push(contiguous(v, l, "encoder layer")?),
            _ => candle_core::bail!("hand-written encoder layer: f32 CPU tensors expected"),
        }
    }
    f(&slices)
}

/// A raw pointer shared by tasks that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: only used where each task writes its own elements.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// The pointer (a method, so closures capture the `Send` wrapper, not
    /// its field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// `C = A B` (`acc`: `C += A B`) for `C: [m, n]` with row stride `c_rs`,
/// `A: [m, k]` and `B: [k, n]` given by (row stride, column stride).
///
/// # Safety
/// The pointers must address every element the sizes and strides name.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    (m, n, k): (usize, usize, usize),
    c: *mut f32,
    c_rs: usize,
    acc: bool,
    a: *const f32,
    (a_rs, a_cs): (usize, usize),
    b: *const f32,
    (b_rs, b_cs): (usize, usize),
    parallel: bool,
) {
    let par = if parallel {
        gemm::Parallelism::Rayon(rayon::current_num_threads().max(1))
    } else {
        gemm::Parallelism::None
    };
    gemm::gemm(
        m,
        n,
        k,
        c,
        1,
        c_rs as isize,
        acc,
        a,
        a_cs as isize,
        a_rs as isize,
        b,
        b_cs as isize,
        b_rs as isize,
        if acc { 1.0 } else { 0.0 },
        1.0,
        false,
        false,
        false,
        par,
    );
}

/// A new `[m, n]` matrix written in full by `fill` (no zero fill first).
fn uninit(len: usize, fill: impl FnOnce(*mut f32)) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(len);
    fill(v.as_mut_ptr());
    // SAFETY: `fill` (a gemm without `acc`) wrote all `len` elements.
    unsafe { v.set_len(len) };
    v
}

/// `g^T x`: `[rows, a]^T [rows, b] -> [a, b]` (a weight gradient).
fn mm_tn(g: &[f32], x: &[f32], rows: usize, a: usize, b: usize) -> Vec<f32> {
    debug_assert!(g.len() == rows * a && x.len() == rows * b);
    // SAFETY: sizes checked above; the output has a * b elements.
    uninit(a * b, |c| unsafe {
        gemm_raw(
            (a, b, rows),
            c,
            b,
            false,
            g.as_ptr(),
            (1, a),
            x.as_ptr(),
            (b, 1),
            true,
        )
    })
}

/// `g W`: `[rows, k] [k, n] -> [rows, n]` (an input gradient through a
/// weight `W: [k, n]` in PyTorch's `[out, in]` layout).
fn mm_nn(g: &[f32], w: &[f32], rows: usize, k: usize, n: usize) -> Vec<f32> {
    debug_assert!(g.len() == rows * k && w.len() == k * n);
    // SAFETY: sizes checked above.
    uninit(rows * n, |c| unsafe {
        gemm_raw(
            (rows, n, k),
            c,
            n,
            false,
            g.as_ptr(),
            (k, 1),
            w.as_ptr(),
            (n, 1),
            true,
        )
    })
}

/// Row-wise LayerNorm of `x` (`w.len()` columns).
fn layer_norm(x: &[f32], w: &[f32], b: &[f32], eps: f32) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    y.par_chunks_mut(w.len())
        .zip(x.par_chunks(w.len()))
        .for_each(|(y, x)| kernels::layer_norm_row(x, None, w, b, eps, y));
    y
}

/// The LayerNorm backward: `(dx, dw, db)`.
fn layer_norm_backward(
    g: &[f32],
    x: &[f32],
    w: &[f32],
    eps: f32,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dx = vec![0f32; x.len()];
    let (mut dw, mut db) = (vec![0f32; w.len()], vec![0f32; w.len()]);
    layer_norm_backward_f32(g, x, w, eps, &mut dx, &mut dw, &mut db);
    (dx, dw, db)
}

const CHUNK: usize = 16_384;

/// `a *= mask`, element-wise.
fn scale_by(a: &mut [f32], mask: &[f32]) {
    a.par_chunks_mut(CHUNK)
        .zip(mask.par_chunks(CHUNK))
        .for_each(|(a, m)| a.iter_mut().zip(m).for_each(|(a, m)| *a *= m));
}

/// `a + b`, element-wise, into a new vector.
fn sum(a: &[f32], b: &[f32]) -> Vec<f32> {
    let mut y = a.to_vec();
    add_into(&mut y, b);
    y
}

/// `a += b`, element-wise.
fn add_into(a: &mut [f32], b: &[f32]) {
    a.par_chunks_mut(CHUNK)
        .zip(b.par_chunks(CHUNK))
        .for_each(|(a, b)| a.iter_mut().zip(b).for_each(|(a, b)| *a += b));
}

/// `x * mask` (a copy) where there is a mask.
fn masked(x: &[f32], mask: Option<&Vec<f32>>) -> Vec<f32> {
    let mut y = x.to_vec();
    if let Some(m) = mask {
        scale_by(&mut y, m);
    }
    y
}

/// The first `tq` rows of each batch row's `t` (`[B*T, w]` -> `[B*tq, w]`);
/// borrowed when that is every row.
fn first_rows<'a>(x: &'a [f32], d: &Dims, w: usize) -> std::borrow::Cow<'a, [f32]> {
    if d.tq == d.t {
        return std::borrow::Cow::Borrowed(x);
    }
    let mut y = Vec::with_capacity(d.m() * w);
    for bi in 0..d.b {
        y.extend_from_slice(&x[bi * d.t * w..(bi * d.t + d.tq) * w]);
    }
    std::borrow::Cow::Owned(y)
}

/// Adds `src` (`[B*tq, w]`) into the first `tq` rows of each batch row of
/// `dst` (`[B*T, w]`).
fn add_first_rows(dst: &mut [f32], src: &[f32], d: &Dims, w: usize) {
    if d.tq == d.t {
        return add_into(dst, src);
    }
    let rows = d.tq * w;
    for bi in 0..d.b {
        add_into(
            &mut dst[bi * d.t * w..bi * d.t * w + rows],
            &src[bi * rows..(bi + 1) * rows],
        );
    }
}

/// Dropout factors for `n` elements, drawn as [`super::ops::dropout`]
/// draws them (none without a stream or with `p` = 0).
fn draw(rng: &mut Option<&mut DropoutRng>, n: usize, p: f64) -> Option<Vec<f32>> {
    match rng {
        Some(r) if p > 0.0 => Some(dropout_mask(r, n, p)),
        _ => None,
    }
}

/// The layer's training forward from `x` (`[N, H]`) and the attention
/// bias (`[B, T]`: 0 or the most negative f32): its output, and with
/// `keep` the tape for [`backward`].
pub(crate) fn forward(
    p: &Params,
    s: Settings,
    d: Dims,
    x: &[f32],
    bias: &[f32],
    mut rng: Option<&mut DropoutRng>,
    keep: bool,
) -> (Vec<f32>, Option<Tape>) {
    let (n, m, h, t, tq, heads, hd) = (d.n(), d.m(), d.h, d.t, d.tq, d.heads, d.hd());
    let attn_in = if s.pre_ln {
        layer_norm(x, p.ln1w, p.ln1b, s.eps)
    } else {
        x.to_vec()
    };
    let wqkv = [p.wq, p.wk, p.wv].concat();
    let bqkv = [p.bq, p.bk, p.bv].concat();
    let qkv = linear_f32(&attn_in, &wqkv, &bqkv, n, h, 3 * h);
    // The attention mask is drawn before the probabilities exist (the
    // draws do not depend on values), so one pass per (batch, head) does
    // scores, softmax, dropout and context.
    // Masks are drawn for every row (the stream moves as in the full
    // layer); only the query rows' are kept.
    let attn_mask = draw(&mut rng, d.b * heads * t * t, s.p_attn).map(|full| {
        if tq == t {
            return full;
        }
        full.chunks(t * t)
            .flat_map(|c| &c[..tq * t])
            .copied()
            .collect()
    });
    let mut probs = vec![0f32; d.b * heads * tq * t];
    let mut ctx = vec![0f32; m * h];
    let scale = 1.0 / (hd as f32).sqrt();
    {
        let pc = Shared(ctx.as_mut_ptr());
        let qkv = &qkv;
        let mask = attn_mask.as_deref();
        probs.par_chunks_mut(tq * t).enumerate().for_each_init(
            || vec![0f32; tq * t],
            |dropped, (i, pr)| {
                let (bi, hi) = (i / heads, i % heads);
                let base = bi * t * 3 * h + hi * hd;
                // SAFETY: q, k and v of (bi, hi) lie in `qkv` at these
                // strides; this task writes its own probabilities and
                // the columns [hi*hd, (hi+1)*hd) of its rows of `ctx`.
                unsafe {
                    gemm_raw(
                        (tq, t, hd),
                        pr.as_mut_ptr(),
                        t,
                        false,
                        qkv.as_ptr().add(base),
                        (3 * h, 1),
                        qkv.as_ptr().add(base + h),
                        (1, 3 * h),
                        false,
                    );
                }
                let brow = &bias[bi * t..(bi + 1) * t];
                for row in pr.chunks_mut(t) {
                    kernels::masked_softmax_in_place(row, brow, scale);
                }
                let used: &[f32] = match mask {
                    Some(m) => {
                        let m = &m[i * tq * t..(i + 1) * tq * t];
                        for ((o, p), m) in dropped.iter_mut().zip(pr.iter()).zip(m) {
                            *o = p * m;
                        }
                        dropped
                    }
                    None => pr,
                };
                let c = pc.get();
                unsafe {
                    gemm_raw(
                        (tq, hd, t),
                        c.add(bi * tq * h + hi * hd),
                        h,
                        false,
                        used.as_ptr(),
                        (t, 1),
                        qkv.as_ptr().add(base + 2 * h),
                        (3 * h, 1),
                        false,
                    );
                }
            },
        );
    }
    let mut a = linear_f32(&ctx, p.wo, p.bo, m, h, h);
    let mask1 = draw(&mut rng, n * h, s.p_hidden).map(|f| first_rows(&f, &d, h).into_owned());
    if let Some(m) = &mask1 {
        scale_by(&mut a, m);
    }
    // Post-LN: x1 = LN1(a + x); pre-LN: x1 = x + a, the FFN reads LN2(x1).
    let xq = first_rows(x, &d, h);
    let (ln1_in, x1) = if s.pre_ln {
        (x.to_vec(), sum(&a, &xq))
    } else {
        let s1 = sum(&a, &xq);
        let x1 = layer_norm(&s1, p.ln1w, p.ln1b, s.eps);
        (s1, x1)
    };
    drop(a);
    let ffn_in = if s.pre_ln {
        layer_norm(&x1, p.ln2w, p.ln2b, s.eps)
    } else {
        x1.clone()
    };
    let u = linear_f32(&ffn_in, p.wi, p.bi, m, h, d.f);
    let mut act = vec![0f32; u.len()];
    act.par_chunks_mut(CHUNK)
        .zip(u.par_chunks(CHUNK))
        .for_each(|(y, x)| kernels::gelu(x, y));
    let mut o = linear_f32(&act, p.wf, p.bf, m, d.f, h);
    let mask2 = draw(&mut rng, n * h, s.p_hidden).map(|f| first_rows(&f, &d, h).into_owned());
    if let Some(m) = &mask2 {
        scale_by(&mut o, m);
    }
    let (y, ln2_in) = if s.pre_ln {
        add_into(&mut o, &x1);
        (o, x1)
    } else {
        let s2 = sum(&o, &x1);
        (layer_norm(&s2, p.ln2w, p.ln2b, s.eps), s2)
    };
    let tape = keep.then(|| Tape {
        dims: d,
        attn_in,
        qkv,
        probs,
        attn_mask,
        ctx,
        mask1,
        ln1_in,
        ffn_in,
        u,
        act,
        mask2,
        ln2_in,
    });
    (y, tape)
}

impl Tape {
    /// The sizes the forward ran at.
    pub(crate) fn dims(&self) -> Dims {
        self.dims
    }
}

/// The gradients of a layer's 16 parameters, in [`PARAM_ORDER`].
pub(crate) type Grads = Vec<Vec<f32>>;

/// The layer's backward from `dy` (the gradient of its output): the
/// gradient of its input and of its parameters.
pub(crate) fn backward(p: &Params, s: Settings, tape: Tape, dy: &[f32]) -> (Vec<f32>, Grads) {
    let d = tape.dims;
    let (n, m, h, f) = (d.n(), d.m(), d.h, d.f);
    let mut grads: Grads = vec![Vec::new(); PARAM_ORDER];
    // The FFN block's output gradient, and the residual stream's so far.
    let (d_out, mut dx1) = if s.pre_ln {
        (masked(dy, tape.mask2.as_ref()), dy.to_vec())
    } else {
        let (ds2, dw, db) = layer_norm_backward(dy, &tape.ln2_in, p.ln2w, s.eps);
        grads[14] = dw;
        grads[15] = db;
        (masked(&ds2, tape.mask2.as_ref()), ds2)
    };
    // FFN: o = act Wf^T + bf, act = GELU(u), u = ffn_in Wi^T + bi.
    grads[12] = mm_tn(&d_out, &tape.act, m, h, f);
    grads[13] = kernels::column_sums(&d_out, h);
    let d_act = mm_nn(&d_out, p.wf, m, h, f);
    drop(d_out);
    let mut du = vec![0f32; m * f];
    du.par_chunks_mut(CHUNK)
        .zip(tape.u.par_chunks(CHUNK).zip(d_act.par_chunks(CHUNK)))
        .for_each(|(d, (u, g))| kernels::gelu_backward(u, g, d));
    drop(d_act);
    grads[10] = mm_tn(&du, &tape.ffn_in, m, f, h);
    grads[11] = kernels::column_sums(&du, f);
    let d_ffn_in = mm_nn(&du, p.wi, m, f, h);
    drop(du);
    if s.pre_ln {
        let (dt, dw, db) = layer_norm_backward(&d_ffn_in, &tape.ln2_in, p.ln2w, s.eps);
        grads[14] = dw;
        grads[15] = db;
        add_into(&mut dx1, &dt);
    } else {
        add_into(&mut dx1, &d_ffn_in);
    }
    drop(d_ffn_in);
    // The attention block's output gradient, and the residual's share of
    // the layer input's gradient (its query rows).
    let (da, dx_q) = if s.pre_ln {
        (masked(&dx1, tape.mask1.as_ref()), dx1)
    } else {
        let (ds1, dw, db) = layer_norm_backward(&dx1, &tape.ln1_in, p.ln1w, s.eps);
        grads[8] = dw;
        grads[9] = db;
        drop(dx1);
        (masked(&ds1, tape.mask1.as_ref()), ds1)
    };
    grads[6] = mm_tn(&da, &tape.ctx, m, h, h);
    grads[7] = kernels::column_sums(&da, h);
    let dctx = mm_nn(&da, p.wo, m, h, h);
    drop(da);
    let dqkv = attention_backward(&tape, &dctx);
    drop(dctx);
    let dw = mm_tn(&dqkv, &tape.attn_in, n, 3 * h, h);
    let db = kernels::column_sums(&dqkv, 3 * h);
    for (j, part) in dw.chunks(h * h).enumerate() {
        grads[2 * j] = part.to_vec();
        grads[2 * j + 1] = db[j * h..(j + 1) * h].to_vec();
    }
    drop(dw);
    let wqkv = [p.wq, p.wk, p.wv].concat();
    let d_attn_in = mm_nn(&dqkv, &wqkv, n, 3 * h, h);
    drop(dqkv);
    let mut dx = if s.pre_ln {
        let (dt, dw, db) = layer_norm_backward(&d_attn_in, &tape.ln1_in, p.ln1w, s.eps);
        grads[8] = dw;
        grads[9] = db;
        dt
    } else {
        d_attn_in
    };
    add_first_rows(&mut dx, &dx_q, &d, h);
    (dx, grads)
}

/// The gradient of q | k | v (`[N, 3H]`) from the context's (`[N, H]`):
/// one task per (batch, head).
fn attention_backward(tape: &Tape, dctx: &[f32]) -> Vec<f32> {
    let d = tape.dims;
    let (t, tq, h, heads, hd) = (d.t, d.tq, d.h, d.heads, d.hd());
    let scale = 1.0 / (hd as f32).sqrt();
    let mut dqkv = vec![0f32; d.n() * 3 * h];
    let out = Shared(dqkv.as_mut_ptr());
    let (qkv, probs, mask) = (&tape.qkv, &tape.probs, tape.attn_mask.as_deref());
    (0..d.b * heads).into_par_iter().for_each_init(
        || (vec![0f32; tq * t], vec![0f32; tq * t], vec![0f32; tq * t]),
        |(dropped, dp, ds), i| {
            let (bi, hi) = (i / heads, i % heads);
            let base = bi * t * 3 * h + hi * hd;
            let pr = &probs[i * tq * t..(i + 1) * tq * t];
            let m = mask.map(|m| &m[i * tq * t..(i + 1) * tq * t]);
            let used: &[f32] = match m {
                Some(m) => {
                    for ((o, p), m) in dropped.iter_mut().zip(pr).zip(m) {
                        *o = p * m;
                    }
                    dropped
                }
                None => pr,
            };
            let dc = dctx.as_ptr().wrapping_add(bi * tq * h + hi * hd);
            let q = qkv.as_ptr().wrapping_add(base);
            let (k, v) = (q.wrapping_add(h), q.wrapping_add(2 * h));
            let o = out.get();
            // SAFETY: reads lie in `dctx`, `qkv` (strides of their layouts);
            // each task writes only its (batch, head)'s columns of dq, dk, dv.
            unsafe {
                // d(dropped probs) = dctx v^T
                gemm_raw(
                    (tq, t, hd),
                    dp.as_mut_ptr(),
                    t,
                    false,
                    dc,
                    (h, 1),
                    v,
                    (1, 3 * h),
                    false,
                );
                // dv = dropped^T dctx
                gemm_raw(
                    (t, hd, tq),
                    o.add(base + 2 * h),
                    3 * h,
                    false,
                    used.as_ptr(),
                    (1, t),
                    dc,
                    (h, 1),
                    false,
                );
            }
            if let Some(m) = m {
                for (g, m) in dp.iter_mut().zip(m) {
                    *g *= m;
                }
            }
            for ((ds, y), g) in ds.chunks_mut(t).zip(pr.chunks(t)).zip(dp.chunks(t)) {
                kernels::softmax_backward_row(y, g, scale, ds);
            }
            unsafe {
                // dq = ds k, dk = ds^T q
                gemm_raw(
                    (tq, hd, t),
                    o.add(base),
                    3 * h,
                    false,
                    ds.as_ptr(),
                    (t, 1),
                    k,
                    (3 * h, 1),
                    false,
                );
                gemm_raw(
                    (t, hd, tq),
                    o.add(base + h),
                    3 * h,
                    false,
                    ds.as_ptr(),
                    (1, t),
                    q,
                    (3 * h, 1),
                    false,
                );
            }
        },
    );
    dqkv
}

/// The parameters of a layer as slices, for `f` (in [`PARAM_ORDER`]).
pub(crate) fn with_params<R>(
    tensors: &[&Tensor; PARAM_ORDER],
    f: impl FnOnce(&Params) -> CResult<R>,
) -> CResult<R> {
    with_f32(tensors, |s| f(&Params::from_slices(s)))
}
