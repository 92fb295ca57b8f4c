//! Row kernels of the CPU forward and backward (exp, softmax, erf GELU,
//! LayerNorm), written as plain loops that LLVM vectorises, and compiled
//! twice: once for the build's baseline (x86-64: SSE2 only, so `exp` is a
//! libm call per element) and once with AVX2+FMA, chosen at run time. We do
//! not build with `-C target-cpu=native` because a binary must run on any
//! x86-64 machine; `gemm` dispatches the same way.
//!
//! `exp` here is Cephes' `expf` polynomial (relative error < 2e-7 on the
//! range softmax and GELU use) with the exponent built from bits, so that a
//! row of them is eight lanes at a time instead of eight libm calls.
//!
//! ```
//! use stilts_model::cpu_kernels::{exp, softmax_in_place};
//! assert!((exp(1.0) - std::f32::consts::E).abs() < 1e-6);
//! let mut row = [1.0f32, 2.0, 3.0];
//! softmax_in_place(&mut row);
//! assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
//! ```

/// Declares `pub fn $name` that runs `$body` compiled with AVX2+FMA where
/// the CPU has them, and as baseline code elsewhere.
macro_rules! dispatched {
    ($(#[$doc:meta])* pub fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn imp($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    imp($($arg),*)
                }
                if has_avx2() {
                    // SAFETY: the CPU supports AVX2 and FMA (checked above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}

#[cfg(target_arch = "x86_64")]
fn has_avx2() -> bool {
    // `is_x86_feature_detected!` caches its answer; this is two loads.
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Below this, `e^x` is under the smallest normal f32 and comes out 0.
const EXP_LO: f32 = -87.33;
/// Above this the bit-built power of two would overflow; the result is +inf
/// (`e^88` is 1.65e38, so this only loses the last 0.7 of the f32 range).
const EXP_HI: f32 = 88.0;

/// `e^x` in f32, branch-free so that loops over it vectorise: 0 below
/// -87.33, +inf above 88, NaN for NaN.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two (Cody-Waite) so that x - n ln 2 stays exact.
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    // Adding and removing 1.5 * 2^23 rounds to the nearest integer
    // without a call (`round` is a libm call on the baseline target).
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(EXP_LO, EXP_HI);
    let shifted = xc * LOG2E + ROUND;
    let n = shifted - ROUND;
    // The integer n sits in the low mantissa bits of `shifted`: read it
    // there (an `as i32` cast is saturating, i.e. scalar code per lane).
    let n_int = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let r = xc - n * C1 - n * C2;
    let r2 = r * r;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 5.000_000_1e-1;
    let y = p * r2 + r + 1.0;
    let pow2 = f32::from_bits((n_int.wrapping_add(127) << 23) as u32);
    let v = y * pow2;
    // Selects, not branches: they vectorise.
    if x < EXP_LO {
        0.0
    } else if x > EXP_HI {
        f32::INFINITY
    } else if x.is_nan() {
        x
    } else {
        v
    }
}

/// erf in f32 (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7): one [`exp`]
/// and a polynomial.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

/// Sum of a row with eight partial sums (vectorises; a single running sum
/// is a serial chain of adds).
#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for j in 0..8 {
            acc[j] += c[j];
        }
    }
    acc.iter().sum::<f32>() + tail.iter().sum::<f32>()
}

#[inline(always)]
fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for j in 0..8 {
            acc[j] = acc[j].max(c[j]);
        }
    }
    acc.iter()
        .chain(tail)
        .copied()
        .fold(f32::NEG_INFINITY, f32::max)
}

dispatched! {
    /// `e^x` of every element, in place.
    ///
    /// ```
    /// let mut v = [0.0f32, -1.0];
    /// stilts_model::cpu_kernels::exp_in_place(&mut v);
    /// assert_eq!(v[0], 1.0);
    /// ```
    pub fn exp_in_place(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = exp(*v);
        }
    }
}

dispatched! {
    /// Softmax of one row, in place.
    ///
    /// ```
    /// let mut v = [0.0f32, 0.0];
    /// stilts_model::cpu_kernels::softmax_in_place(&mut v);
    /// assert_eq!(v, [0.5, 0.5]);
    /// ```
    pub fn softmax_in_place(x: &mut [f32]) {
        let m = max(x);
        for v in x.iter_mut() {
            *v = exp(*v - m);
        }
        let inv = 1.0 / sum(x);
        for v in x.iter_mut() {
            *v *= inv;
        }
    }
}

dispatched! {
    /// The attention row `softmax(x * scale + bias)`, in place.
    ///
    /// ```
    /// let mut v = [1.0f32, 1.0, 5.0];
    /// stilts_model::cpu_kernels::masked_softmax_in_place(&mut v, &[0.0, 0.0, f32::MIN], 0.5);
    /// assert_eq!(v, [0.5, 0.5, 0.0]);
    /// ```
    pub fn masked_softmax_in_place(x: &mut [f32], bias: &[f32], scale: f32) {
        for (v, b) in x.iter_mut().zip(bias) {
            *v = *v * scale + b;
        }
        let m = max(x);
        for v in x.iter_mut() {
            *v = exp(*v - m);
        }
        let inv = 1.0 / sum(x);
        for v in x.iter_mut() {
            *v *= inv;
        }
    }
}

dispatched! {
    /// Exact GELU `0.5 x (1 + erf(x / sqrt 2))` of `x` into `y`.
    ///
    /// ```
    /// let mut y = [0.0f32; 2];
    /// stilts_model::cpu_kernels::gelu(&[0.0, 10.0], &mut y);
    /// assert_eq!(y, [0.0, 10.0]);
    /// ```
    pub fn gelu(x: &[f32], y: &mut [f32]) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = 0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

dispatched! {
    /// Exact GELU of every element, in place.
    ///
    /// ```
    /// let mut v = [0.0f32, 10.0];
    /// stilts_model::cpu_kernels::gelu_in_place(&mut v);
    /// assert_eq!(v, [0.0, 10.0]);
    /// ```
    pub fn gelu_in_place(x: &mut [f32]) {
        for v in x.iter_mut() {
            *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

dispatched! {
    /// The GELU backward `g * (Phi(x) + x phi(x))` of `x` and `g` into `d`.
    ///
    /// ```
    /// let mut d = [0.0f32];
    /// stilts_model::cpu_kernels::gelu_backward(&[0.0], &[2.0], &mut d);
    /// assert_eq!(d, [1.0]);
    /// ```
    pub fn gelu_backward(x: &[f32], g: &[f32], d: &mut [f32]) {
        const FRAC_1_SQRT_2PI: f32 = 0.398_942_3;
        for ((o, &v), &g) in d.iter_mut().zip(x).zip(g) {
            let cdf = 0.5 * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2));
            *o = g * (cdf + v * FRAC_1_SQRT_2PI * exp(-0.5 * v * v));
        }
    }
}

dispatched! {
    /// LayerNorm of one row `x (+ residual)` into `y`:
    /// `(z - mean) / sqrt(var + eps) * w + b` with `z = x + residual`
    /// (biased variance, as PyTorch). The residual add of a post-LN layer
    /// goes in the same pass.
    ///
    /// ```
    /// let mut y = [0.0f32; 2];
    /// stilts_model::cpu_kernels::layer_norm_row(&[1.0, 2.0], Some(&[1.0, 2.0]), &[1.0, 1.0], &[0.0, 0.0], 0.0, &mut y);
    /// assert_eq!(y, [-1.0, 1.0]);
    /// ```
    pub fn layer_norm_row(x: &[f32], residual: Option<&[f32]>, w: &[f32], b: &[f32], eps: f32, y: &mut [f32]) {
        match residual {
            Some(r) => {
                for ((o, a), c) in y.iter_mut().zip(x).zip(r) {
                    *o = a + c;
                }
            }
            None => y.copy_from_slice(x),
        }
        let n = y.len() as f32;
        let mean = sum(y) / n;
        let mut acc = [0f32; 8];
        let chunks = y.chunks_exact(8);
        let mut tail = 0f32;
        for v in chunks.remainder() {
            tail += (v - mean) * (v - mean);
        }
        for c in chunks {
            for j in 0..8 {
                acc[j] += (c[j] - mean) * (c[j] - mean);
            }
        }
        let var = (acc.iter().sum::<f32>() + tail) / n;
        let rstd = 1.0 / (var + eps).sqrt();
        for ((o, w), b) in y.iter_mut().zip(w).zip(b) {
            *o = (*o - mean) * rstd * w + b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_across_the_range() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1e30), 0.0);
        assert_eq!(exp(f32::MIN), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn vector_paths_match_scalar_ones() {
        // Rows of odd length exercise the 8-lane bodies and their tails.
        let x: Vec<f32> = (0..203)
            .map(|i| ((i * 37) % 101) as f32 / 10.0 - 5.0)
            .collect();
        let mut e = x.clone();
        exp_in_place(&mut e);
        for (a, b) in e.iter().zip(&x) {
            assert!((a - b.exp()).abs() <= 3e-7 * b.exp(), "{a} vs {}", b.exp());
        }
        let mut s = x.clone();
        softmax_in_place(&mut s);
        let m = x.iter().copied().fold(f32::MIN, f32::max);
        let z: f64 = x.iter().map(|v| ((v - m) as f64).exp()).sum();
        for (p, v) in s.iter().zip(&x) {
            let want = ((v - m) as f64).exp() / z;
            assert!((*p as f64 - want).abs() < 1e-7, "{p} vs {want}");
        }
        let mut g = vec![0f32; x.len()];
        gelu(&x, &mut g);
        for (y, &v) in g.iter().zip(&x) {
            let want = 0.5 * v as f64 * (1.0 + libm::erf(v as f64 / std::f64::consts::SQRT_2));
            assert!(
                (*y as f64 - want).abs() < 1e-6,
                "gelu({v}) = {y}, want {want}"
            );
        }
        let w: Vec<f32> = (0..203).map(|i| 1.0 + i as f32 / 100.0).collect();
        let b: Vec<f32> = (0..203).map(|i| i as f32 / 50.0).collect();
        let mut y = vec![0f32; x.len()];
        layer_norm_row(&x, Some(&w), &w, &b, 1e-5, &mut y);
        let zsum: Vec<f64> = x.iter().zip(&w).map(|(a, c)| (*a + *c) as f64).collect();
        let mean = zsum.iter().sum::<f64>() / 203.0;
        let var = zsum.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 203.0;
        for i in 0..203 {
            let want = (zsum[i] - mean) / (var + 1e-5).sqrt() * w[i] as f64 + b[i] as f64;
            assert!((y[i] as f64 - want).abs() < 1e-5, "{} vs {want}", y[i]);
        }
    }
}

dispatched! {
    /// The LayerNorm backward of one row: from the input `x`, the weight `w`
    /// and the output gradient `g`, the input gradient into `dx`, and the
    /// row's share of the weight and bias gradients added to `dw` (`g * xhat`)
    /// and `db` (`g`). `dx = (g w - mean(g w) - xhat mean(g w xhat)) rstd`.
    ///
    /// ```
    /// let (mut dx, mut dw, mut db) = ([0.0f32; 2], [0.0f32; 2], [0.0f32; 2]);
    /// stilts_model::cpu_kernels::layer_norm_backward_row(&[1.0, 3.0], &[1.0, 1.0], &[1.0, 1.0], 0.0, &mut dx, &mut dw, &mut db);
    /// assert_eq!((dx, dw, db), ([0.0, 0.0], [-1.0, 1.0], [1.0, 1.0]));
    /// ```
    pub fn layer_norm_backward_row(x: &[f32], w: &[f32], g: &[f32], eps: f32, dx: &mut [f32], dw: &mut [f32], db: &mut [f32]) {
        let n = x.len() as f32;
        let mean = sum(x) / n;
        let mut var = 0.0f32;
        for &v in x {
            var += (v - mean) * (v - mean);
        }
        let rstd = 1.0 / (var / n + eps).sqrt();
        let (mut m1, mut m2) = (0.0f32, 0.0f32);
        for i in 0..x.len() {
            let xhat = (x[i] - mean) * rstd;
            let gw = g[i] * w[i];
            m1 += gw;
            m2 += gw * xhat;
            dw[i] += g[i] * xhat;
            db[i] += g[i];
        }
        let (m1, m2) = (m1 / n, m2 / n);
        for i in 0..x.len() {
            let xhat = (x[i] - mean) * rstd;
            dx[i] = (g[i] * w[i] - m1 - xhat * m2) * rstd;
        }
    }
}

dispatched! {
    /// The softmax backward of one row: `d = scale * y * (g - sum(g y))`
    /// from the output `y` and its gradient `g`.
    ///
    /// ```
    /// let mut d = [0.0f32; 2];
    /// stilts_model::cpu_kernels::softmax_backward_row(&[0.5, 0.5], &[1.0, 1.0], 1.0, &mut d);
    /// assert_eq!(d, [0.0, 0.0]);
    /// ```
    pub fn softmax_backward_row(y: &[f32], g: &[f32], scale: f32, d: &mut [f32]) {
        let mut dot = 0.0f32;
        for (a, b) in y.iter().zip(g) {
            dot += a * b;
        }
        for ((o, &a), &b) in d.iter_mut().zip(y).zip(g) {
            *o = scale * a * (b - dot);
        }
    }
}

dispatched! {
    /// Adds each row of `block` (rows of `acc.len()` elements) into `acc`.
    ///
    /// ```
    /// let mut acc = [1.0f32, 1.0];
    /// stilts_model::cpu_kernels::add_rows(&[1.0, 2.0, 3.0, 4.0], &mut acc);
    /// assert_eq!(acc, [5.0, 7.0]);
    /// ```
    pub fn add_rows(block: &[f32], acc: &mut [f32]) {
        for row in block.chunks_exact(acc.len()) {
            for (a, v) in acc.iter_mut().zip(row) {
                *a += v;
            }
        }
    }
}

/// Rows per block of the column sums and LayerNorm backward: fixed, so that
/// the blocks' partial sums (added in block order) make the same bytes on
/// any number of threads.
pub const SUM_BLOCK_ROWS: usize = 64;

/// The sum over rows of a row-major `[rows, cols]` matrix (a bias gradient):
/// partial sums of [`SUM_BLOCK_ROWS`] rows in parallel, added in order.
///
/// ```
/// assert_eq!(stilts_model::cpu_kernels::column_sums(&[1.0, 2.0, 3.0, 4.0], 2), vec![4.0, 6.0]);
/// ```
pub fn column_sums(x: &[f32], cols: usize) -> Vec<f32> {
    use rayon::prelude::*;
    if cols == 0 {
        return vec![];
    }
    let partial: Vec<Vec<f32>> = x
        .par_chunks(SUM_BLOCK_ROWS * cols)
        .map(|block| {
            let mut acc = vec![0f32; cols];
            add_rows(block, &mut acc);
            acc
        })
        .collect();
    let mut out = vec![0f32; cols];
    for p in &partial {
        for (o, v) in out.iter_mut().zip(p) {
            *o += v;
        }
    }
    out
}
