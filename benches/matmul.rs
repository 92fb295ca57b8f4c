//! The matmuls of one encoder layer at the CPU shape (batch 16 x 128
//! tokens, hidden 256, FFN 1024, 4 heads): candle's `matmul` (+ bias) against
//! ours (`stilts::model::cpu_matmul`), median of 20 after a warm-up.
//! `benches/matmul.py` times the same products in PyTorch.
//! Run: `cargo bench --bench matmul`.

use std::time::Instant;

use candle_core::{Device, Tensor};
use stilts::model::cpu_matmul::{batched_matmul, linear};

fn time(label: &str, f: &dyn Fn() -> candle_core::Result<Tensor>) -> candle_core::Result<()> {
    f()?;
    let mut v = Vec::with_capacity(20);
    for _ in 0..20 {
        let s = Instant::now();
        f()?;
        v.push(s.elapsed().as_secs_f64() * 1e3);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    println!("{label:40} {:7.2} ms", v[v.len() / 2]);
    Ok(())
}

fn main() -> candle_core::Result<()> {
    let d = Device::Cpu;
    let x = Tensor::randn(0f32, 1., (2048, 256), &d)?;
    let w = Tensor::randn(0f32, 1., (1024, 256), &d)?;
    let w2 = Tensor::randn(0f32, 1., (256, 256), &d)?;
    let q = Tensor::randn(0f32, 1., (16, 4, 128, 64), &d)?;
    let k = Tensor::randn(0f32, 1., (16, 4, 128, 64), &d)?;
    let b = Tensor::randn(0f32, 1., 1024, &d)?;
    let b2 = Tensor::randn(0f32, 1., 256, &d)?;
    time("candle x @ w^T    [2048x256]x[256x1024]", &|| {
        x.matmul(&w.t()?)
    })?;
    time("candle x @ w^T + b", &|| {
        x.matmul(&w.t()?)?.broadcast_add(&b)
    })?;
    time("stilts linear(x, w, b)", &|| linear(&x, &w, &b))?;
    time("candle x @ w2^T   [2048x256]x[256x256]", &|| {
        x.matmul(&w2.t()?)
    })?;
    time("candle x @ w2^T + b", &|| {
        x.matmul(&w2.t()?)?.broadcast_add(&b2)
    })?;
    time("stilts linear(x, w2, b)", &|| linear(&x, &w2, &b2))?;
    let w3 = Tensor::randn(0f32, 1., (768, 256), &d)?;
    let b3 = Tensor::randn(0f32, 1., 768, &d)?;
    time(
        "stilts linear(x, w3, b) [..]x[256x768] (q, k, v in one)",
        &|| linear(&x, &w3, &b3),
    )?;
    let h = Tensor::randn(0f32, 1., (2048, 1024), &d)?;
    let w4 = Tensor::randn(0f32, 1., (256, 1024), &d)?;
    time("stilts linear(h, w4, b) [2048x1024]x[1024x256]", &|| {
        linear(&h, &w4, &b2)
    })?;
    time("candle q @ k^T    64 x [128x64]x[64x128]", &|| {
        q.matmul(&k.t()?)
    })?;
    time("stilts batched_matmul(q, k^T)", &|| {
        batched_matmul(&q, &k.t()?)
    })?;
    Ok(())
}
