//! Gradient checkpointing gives the gradients of the plain backward: same
//! loss, same dropout masks, same parameter gradients, for both encoder
//! variants and for a head tied to the embeddings (MLM); and the training
//! loop gives the same run with it on.

use crate::common;

use std::sync::atomic::AtomicBool;

use candle_core::{DType, Device, Tensor};
use stilts_model::{DropoutRng, HeadKind, Inputs, Model, Target, Variant, XlmrConfig};
use stilts_protocol::optim::AdamWConfig;
use stilts_protocol::train::{fine_tune, Silent, TrainBatch, TrainOptions};

fn model(variant: Variant, head: HeadKind, device: &Device) -> Model {
    // Dropout stays at XLM-R's 0.1: the recomputed layers must replay it.
    let cfg = XlmrConfig::new(variant, 40, 16, 3, 4, 24, 20).unwrap();
    Model::random(&cfg, head, 7, device, DType::F32).unwrap()
}

fn batch(head: &HeadKind, device: &Device) -> (Inputs, Target) {
    let rows = vec![
        vec![0, 5, 9, 11, 2],
        vec![0, 7, 2],
        vec![0, 30, 31, 4, 12, 2],
    ];
    let inputs = Inputs::pad(&rows, 1, device).unwrap();
    let target = match head {
        HeadKind::MaskedLm => {
            let t: Vec<i64> = (0..18).map(|i| if i % 4 == 1 { 9 } else { -100 }).collect();
            Target::Tags(Tensor::from_vec(t, (3, 6), device).unwrap())
        }
        _ => Target::Class(Tensor::new(&[2i64, 0, 1], device).unwrap()),
    };
    (inputs, target)
}

fn grads_of(m: &Model, inputs: &Inputs, target: &Target) -> (f64, Vec<(String, Tensor)>) {
    let mut rng = DropoutRng::new(11);
    let loss = m.train_loss(inputs, target, Some(&mut rng)).unwrap();
    let value = loss.to_f64().unwrap();
    let grads = loss.backward().unwrap();
    let per_param = m
        .params()
        .iter()
        .map(|(name, var)| {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"))
                .clone();
            (name.clone(), g)
        })
        .collect();
    (value, per_param)
}

#[test]
fn checkpointed_gradients_equal_the_plain_backward() {
    for device in common::devices() {
        for variant in [Variant::PostLayerNorm, Variant::PreLayerNorm, Variant::Bert] {
            for head in [
                HeadKind::Classification {
                    labels: common::nli_labels(),
                },
                HeadKind::MaskedLm,
            ] {
                let plain = model(variant, head.clone(), &device);
                let checkpointed = plain.clone().with_gradient_checkpointing(true);
                let (inputs, target) = batch(&head, &device);
                let (l1, g1) = grads_of(&plain, &inputs, &target);
                let (l2, g2) = grads_of(&checkpointed, &inputs, &target);
                assert_eq!(l1, l2, "{variant:?} {}: loss differs", head.name());
                assert_eq!(g1.len(), g2.len());
                for ((name, a), (_, b)) in g1.iter().zip(&g2) {
                    let d = common::rel_diff(b, a, 1e-12);
                    assert!(
                        d <= 1e-6 * common::device_tol(&device),
                        "{variant:?} {} {name}: relative difference {d:e}",
                        head.name()
                    );
                }
            }
        }
    }
}

#[test]
fn training_with_checkpointing_follows_the_same_path() {
    let device = Device::Cpu;
    let head = HeadKind::Classification {
        labels: common::nli_labels(),
    };
    let run = |checkpointing: bool| {
        let m = model(Variant::PostLayerNorm, head.clone(), &device);
        let opts = TrainOptions {
            adamw: AdamWConfig {
                lr: 1e-3,
                ..Default::default()
            },
            epochs: 3,
            seed: 4,
            grad_accum: 2,
            gradient_checkpointing: checkpointing,
            ..Default::default()
        };
        let report = fine_tune(
            &m,
            &mut |_| {
                Ok((0..4)
                    .map(|_| {
                        let (i, t) = batch(&head, &device);
                        TrainBatch::from((i, t))
                    })
                    .collect())
            },
            &opts,
            &mut Silent,
            &AtomicBool::new(false),
        )
        .unwrap();
        (report.losses, m.params().tensors())
    };
    let (losses_plain, w_plain) = run(false);
    let (losses_ck, w_ck) = run(true);
    assert_eq!(losses_plain.len(), 6);
    for (a, b) in losses_plain.iter().zip(&losses_ck) {
        assert!((a - b).abs() <= 1e-6 * a.abs(), "loss {a} vs {b}");
    }
    for (name, a) in &w_plain {
        let d = common::max_abs_diff(&w_ck[name], a);
        assert!(d <= 1e-6, "{name} differs by {d:e} after training");
    }
}
