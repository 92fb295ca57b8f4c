//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use candle_core::{Device, Tensor};

/// `../shared/data` beside the repository (never copied into it).
pub fn shared_data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("shared").join("data")
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

/// The devices a numeric test runs on: the CPU, and CUDA when built with
/// the `cuda` feature (candle's `test_device!` idea).
pub fn devices() -> Vec<Device> {
    let mut d = vec![Device::Cpu];
    if cfg!(feature = "cuda") {
        if let Ok(c) = Device::new_cuda(0) {
            d.push(c);
        }
    }
    d
}

/// Tolerance scale for a device: CUDA's reductions reorder sums.
pub fn device_tol(device: &Device) -> f64 {
    if device.is_cpu() { 1.0 } else { 10.0 }
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_dtype(candle_core::DType::F64).unwrap().to_device(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let b = b.to_dtype(candle_core::DType::F64).unwrap().to_device(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    assert_eq!(a.len(), b.len(), "element counts differ");
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// `||a - b|| / ||b||` (with `||b||` floored at `floor`).
pub fn rel_diff(a: &Tensor, b: &Tensor, floor: f64) -> f64 {
    let a = a.to_dtype(candle_core::DType::F64).unwrap().to_device(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let b = b.to_dtype(candle_core::DType::F64).unwrap().to_device(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap();
    let num: f64 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>().sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    num / den.max(floor)
}

/// A few hundred words of text to train tiny tokenizers on.
pub fn sample_texts() -> Vec<String> {
    let base = [
        "the cat sat on the mat", "a dog runs in the park", "people walk to the market every morning",
        "she reads a book about the history of science", "they play football after school",
        "the weather is cold and rainy today", "he does not like green tea", "we will travel to the mountains",
        "el gato duerme en la casa", "le chien mange une pomme", "die katze schläft auf dem sofa",
        "the children are singing a song", "no one came to the meeting", "the river flows into the sea",
    ];
    (0..6).flat_map(|k| base.iter().map(move |s| format!("{s} {k}"))).collect()
}
