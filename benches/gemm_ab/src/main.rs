//! f32 matmul rate (GFLOP/s) of `gemm` at the products of one encoder layer
//! in evaluation, `x[M, K] @ w[N, K]^T` with M = batch × tokens, and the
//! per-(batch, head) attention products; median of `REPS` after a warm-up.
//! Built with `--features avx512` it has gemm's AVX-512 kernels, chosen at
//! run time where the processor reports avx512f; without, gemm's AVX2/FMA
//! kernels. It prints which the processor offers and a checksum of each
//! product (the two builds must agree to rounding).

use std::time::Instant;

const REPS: usize = 15;


fn fill(n: usize, seed: u64) -> Vec<f32> {
    // xorshift: the same inputs in both builds.
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

/// dst[m, n] = a[m, k] @ b[n, k]^T, row-major, `threads` rayon threads.
fn matmul_nt(dst: &mut [f32], a: &[f32], b: &[f32], m: usize, n: usize, k: usize, par: gemm::Parallelism) {
    unsafe {
        gemm::gemm(
            m, n, k,
            dst.as_mut_ptr(), 1, n as isize,
            false,
            a.as_ptr(), 1, k as isize,
            b.as_ptr(), k as isize, 1,
            0.0, 1.0, false, false, false, par,
        );
    }
}

fn time(label: &str, m: usize, n: usize, k: usize, batch: usize, threads: usize) {
    let a = fill(batch * m * k, 1);
    let b = fill(batch * n * k, 2);
    let mut c = vec![0f32; batch * m * n];
    let run = |c: &mut [f32]| {
        if batch == 1 {
            matmul_nt(c, &a, &b, m, n, k, gemm::Parallelism::Rayon(threads));
        } else {
            use rayon::prelude::*;
            c.par_chunks_mut(m * n).enumerate().for_each(|(i, dst)| {
                matmul_nt(dst, &a[i * m * k..][..m * k], &b[i * n * k..][..n * k], m, n, k, gemm::Parallelism::None);
            });
        }
    };
    run(&mut c);
    let mut v = Vec::with_capacity(REPS);
    for _ in 0..REPS {
        let s = Instant::now();
        run(&mut c);
        v.push(s.elapsed().as_secs_f64());
    }
    v.sort_by(|x, y| x.total_cmp(y));
    let t = v[REPS / 2];
    let flops = 2.0 * (batch * m * n * k) as f64;
    let sum: f64 = c.iter().map(|&x| x as f64).sum();
    println!("{label:44} {:8.2} ms {:7.1} GFLOP/s  checksum {sum:+.6e}", t * 1e3, flops / t / 1e9);
}

fn main() {
    let threads = rayon::current_num_threads();
    println!(
        "gemm x86-v4 compiled in: {}; processor: avx512f {}, avx2 {}, fma {}; {threads} threads",
        cfg!(feature = "avx512"),
        std::arch::is_x86_feature_detected!("avx512f"),
        std::arch::is_x86_feature_detected!("avx2"),
        std::arch::is_x86_feature_detected!("fma"),
    );
    if std::env::args().nth(1).as_deref() == Some("check") {
        // Small products with edge sizes (not multiples of any kernel's
        // width), for an emulated processor (qemu-x86_64 -cpu max has no
        // AVX-512): their checksums must equal the native run's to rounding.
        for (m, n, k) in [(67, 45, 33), (130, 129, 96), (257, 31, 200)] {
            time(&format!("check [{m}x{k}]x[{k}x{n}]"), m, n, k, 1, threads);
        }
        return;
    }
    // e5-small (hidden 384, FFN 1536, 12 heads of 32) at batch 32 × 64 tokens.
    let m = 32 * 64;
    time("e5-small q,k,v  [2048x384]x[384x1152]", m, 1152, 384, 1, threads);
    time("e5-small out    [2048x384]x[384x384]", m, 384, 384, 1, threads);
    time("e5-small ffn up [2048x384]x[384x1536]", m, 1536, 384, 1, threads);
    time("e5-small ffn dn [2048x1536]x[1536x384]", m, 384, 1536, 1, threads);
    time("e5-small q@k^T  384 x [64x32]x[32x64]", 64, 64, 32, 32 * 12, threads);
    // xlmr-base (hidden 768, FFN 3072, 12 heads of 64) at batch 16 × 128.
    let m = 16 * 128;
    time("xlmr-base q,k,v [2048x768]x[768x2304]", m, 2304, 768, 1, threads);
    time("xlmr-base ffn up [2048x768]x[768x3072]", m, 3072, 768, 1, threads);
    time("xlmr-base ffn dn [2048x3072]x[3072x768]", m, 768, 3072, 1, threads);
    time("xlmr-base q@k^T 192 x [128x64]x[64x128]", 128, 128, 64, 16 * 12, threads);
}
