//! A run killed with SIGKILL and started again resumes from its last
//! checkpoint and ends with weights bit-identical to an uninterrupted run.
//! The test re-executes its own binary as the child that trains.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};
use stilts_model::{HeadKind, Inputs, Model, Target, Variant, XlmrConfig};
use stilts_protocol::optim::AdamWConfig;
use stilts_protocol::train::{fine_tune_with_eval, Silent, TrainOptions};

const CHILD_ENV: &str = "STILTS_RESUME_CHILD_DIR";

fn batches(epoch: usize) -> Vec<(Inputs, Target)> {
    // A fixed, epoch-dependent order (what a seeded shuffle gives).
    let mut out = vec![];
    for b in 0..12u32 {
        let rows: Vec<Vec<u32>> = (0..8u32)
            .map(|i| {
                let k = (b * 8 + i + epoch as u32 * 5) % 97;
                vec![0, 4 + k % 20, 5 + k % 17, 6 + k % 13, 2]
            })
            .collect();
        let labels: Vec<i64> = (0..8u32)
            .map(|i| ((b * 8 + i + epoch as u32 * 5) % 97 % 2) as i64)
            .collect();
        out.push((
            Inputs::pad(&rows, 1, &Device::Cpu).unwrap(),
            Target::Class(Tensor::new(labels, &Device::Cpu).unwrap()),
        ));
    }
    out
}

/// The child: train with a checkpoint after every update, then write the
/// final weights.
fn child(dir: &Path) {
    let cfg = XlmrConfig::new(Variant::PostLayerNorm, 30, 32, 2, 4, 64, 12).unwrap();
    let model = Model::random(
        &cfg,
        HeadKind::Classification {
            labels: vec!["a".into(), "b".into()],
        },
        9,
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    let opts = TrainOptions {
        adamw: AdamWConfig {
            lr: 1e-3,
            ..Default::default()
        },
        epochs: 6,
        seed: 4,
        eval_every: Some(10),
        checkpoint_every: Some(1),
        checkpoint_dir: Some(dir.to_path_buf()),
        ..Default::default()
    };
    // Dev score: a deterministic function of the weights, so model
    // selection state is exercised across the restart too.
    let mut eval = || -> stilts_model::Result<f64> {
        let w = model.params().tensors()["classifier.out_proj.bias"].to_vec1::<f32>()?;
        Ok((w[0] - w[1]) as f64)
    };
    let report = fine_tune_with_eval(
        &model,
        &mut |e| Ok(batches(e).into_iter().map(Into::into).collect()),
        Some(&mut eval),
        &opts,
        &mut Silent,
        &AtomicBool::new(false),
    )
    .unwrap();
    println!(
        "resumed_from={:?} steps={}",
        report.resumed_from, report.steps
    );
    candle_core::safetensors::save(
        &model.params().tensors().into_iter().collect(),
        dir.join("final.safetensors"),
    )
    .unwrap();
}

fn spawn(dir: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            &common::test_name(module_path!(), "killed_run_resumes_bit_identically"),
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn state_step(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("checkpoint").join("state.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["step"].as_u64()
}

#[test]
fn killed_run_resumes_bit_identically() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        return child(Path::new(&dir));
    }
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));

    let out = spawn(&a).wait_with_output().unwrap();
    assert!(out.status.success(), "uninterrupted child failed");

    // Start, wait for a checkpoint some way in, then SIGKILL.
    let mut c = spawn(&b);
    let start = Instant::now();
    loop {
        if state_step(&b).is_some_and(|s| s >= 15) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "child never wrote a checkpoint"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    c.kill().unwrap();
    c.wait().unwrap();
    assert!(
        !b.join("final.safetensors").exists(),
        "the child finished before it was killed"
    );
    let killed_at = state_step(&b).unwrap();
    assert!(killed_at < 72, "killed too late ({killed_at})");

    let out = spawn(&b).wait_with_output().unwrap();
    assert!(out.status.success(), "resumed child failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("resumed_from=Some({killed_at})")),
        "did not resume from {killed_at}: {stdout}"
    );

    let wa = candle_core::safetensors::load(a.join("final.safetensors"), &Device::Cpu).unwrap();
    let wb = candle_core::safetensors::load(b.join("final.safetensors"), &Device::Cpu).unwrap();
    assert_eq!(wa.len(), wb.len());
    for (name, t) in &wa {
        assert_eq!(
            common::max_abs_diff(t, &wb[name]),
            0.0,
            "{name} differs after resume"
        );
    }
}
