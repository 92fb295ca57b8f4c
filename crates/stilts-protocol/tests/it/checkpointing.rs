//! Gradient checkpointing gives the gradients of the plain backward: same
//! loss, same dropout masks, same parameter gradients, for both encoder
//! variants and for a head tied to the embeddings (MLM); and the training
//! loop gives the same run with it on.

use crate::common;

use std::sync::atomic::AtomicBool;

use candle_core::{DType, Device};
use stilts_model::{HeadKind, Model, Variant, XlmrConfig};
use stilts_protocol::optim::AdamWConfig;
use stilts_protocol::train::{fine_tune, Silent, TrainBatch, TrainOptions};

fn model(variant: Variant, head: HeadKind, device: &Device) -> Model {
    // Dropout stays at XLM-R's 0.1: the recomputed layers must replay it.
    let cfg = XlmrConfig::new(variant, 40, 16, 3, 4, 24, 20).unwrap();
    Model::random(&cfg, head, 7, device, DType::F32).unwrap()
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
                let (inputs, target) = common::tiny_batch(&head, &device);
                let (l1, g1) = common::loss_and_grads(&plain, &inputs, &target, 11);
                let (l2, g2) = common::loss_and_grads(&checkpointed, &inputs, &target, 11);
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
                        let (i, t) = common::tiny_batch(&head, &device);
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
