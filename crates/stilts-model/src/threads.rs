//! The CPU threads of a process, sized once at start-up.
//!
//! Two pools run CPU work: rayon's global pool (gemm, and our kernels in
//! `model::cpu_kernels`, `model::cpu_matmul`, the fused AdamW) and candle
//! 0.11's own barrier pool (its element-wise ops: the gradient sums of its
//! backward pass, dropout products, casts), sized from `CANDLE_NUM_THREADS`
//! (else `RAYON_NUM_THREADS`, else the physical cores) the first time an op
//! uses it. Both spin for a while when idle, so a thread of one pool waiting
//! for a core held by the other's spinning thread shows up as time in
//! `BarrierGuard::drop` (a tenth of a training step on 2 cores, `perf`).
//! [`configure`] sizes rayon's pool to N threads and candle's to
//! [`candle_threads`]`(N)`, before either has started, so `--threads N`
//! (or a Slurm cell's `--cpus-per-task`) bounds both.

/// How many threads candle's barrier pool gets when the process has `n`
/// (the caller counts as one, so 1 runs its ops inline). On 2 cores, 1
/// made the training step of the multilingual-e5-small shape 30% faster
/// than 2 (backward 3.7 s against 6.0 s, three alternating pairs,
/// `benches/README.md`): its worker no longer waits for a core that
/// rayon's threads hold. Larger machines keep half their cores for it
/// (not measured here). A user's `CANDLE_NUM_THREADS` wins.
pub fn candle_threads(n: usize) -> usize {
    if n <= 2 {
        1
    } else {
        n / 2
    }
}

/// Sizes both pools for `threads` threads (default: `RAYON_NUM_THREADS`,
/// else every core). Call first thing in `main`, before any tensor op and
/// before other threads exist (it sets `CANDLE_NUM_THREADS` in the
/// environment, which candle reads once).
pub fn configure(threads: Option<usize>) -> usize {
    let n = threads
        .or_else(|| {
            std::env::var("RAYON_NUM_THREADS")
                .ok()
                .and_then(|s| s.parse().ok())
        })
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
    if threads.is_some() || std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Single-threaded here (start of main): setting the environment is sound.
        std::env::set_var("CANDLE_NUM_THREADS", candle_threads(n).to_string());
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .ok();
    n
}
