//! The hand-written CPU layers (`layer_cpu`) against candle's autograd:
//! the same loss and parameter gradients to f32 rounding, for every
//! encoder variant, with dropout on and padded rows, under a
//! classification head and an MLM head tied to the embeddings, with and
//! without gradient checkpointing.

use candle_core::{DType, Device};
use stilts_model::{DropoutRng, HeadKind, Model, TokensRead, Variant, XlmrConfig};

use crate::common;

#[test]
fn handwritten_layers_give_the_autograd_gradients() {
    let device = Device::Cpu;
    for variant in [Variant::PostLayerNorm, Variant::PreLayerNorm, Variant::Bert] {
        for head in [
            HeadKind::Classification {
                labels: common::nli_labels(),
            },
            HeadKind::MaskedLm,
        ] {
            // Dropout at XLM-R's 0.1 on both sides: the masks must agree.
            let cfg = XlmrConfig::new(variant, 40, 16, 2, 4, 24, 20).unwrap();
            let by_hand = Model::random(&cfg, head.clone(), 3, &device, DType::F32).unwrap();
            assert!(by_hand.encoder.handwritten_applies());
            let mut autograd = by_hand.clone();
            autograd.encoder.handwritten_layers = false;
            assert!(!autograd.encoder.handwritten_applies());
            let (inputs, target) = common::tiny_batch(&head, &device);
            // A sequence head reads the first token only: the last layer
            // computes that row alone (the test then checks its gradients).
            let reads = by_hand.head.tokens_read();
            let (hidden, _) = by_hand.encoder.forward_train(&inputs, None, reads).unwrap();
            let rows = if reads == TokensRead::First { 1 } else { 7 };
            assert_eq!(hidden.dims(), [3, rows, 16], "{variant:?} {}", head.name());
            let (l0, g0) = common::loss_and_grads(&autograd, &inputs, &target, 5);
            for checkpointing in [false, true] {
                let m = by_hand.clone().with_gradient_checkpointing(checkpointing);
                let (l1, g1) = common::loss_and_grads(&m, &inputs, &target, 5);
                let what = format!("{variant:?} {} checkpointing {checkpointing}", head.name());
                assert!(
                    (l1 - l0).abs() <= 1e-6 * l0.abs(),
                    "{what}: loss {l1} against {l0}"
                );
                assert_eq!(g0.len(), g1.len());
                for ((name, a), (_, b)) in g0.iter().zip(&g1) {
                    let d = common::rel_diff(b, a, 1e-6);
                    assert!(d <= 1e-4, "{what} {name}: relative difference {d:e}");
                }
            }
        }
    }
}

#[test]
fn handwritten_layers_leave_frozen_parameters_without_gradients() {
    let device = Device::Cpu;
    let cfg = XlmrConfig::new(Variant::PostLayerNorm, 40, 16, 2, 4, 24, 20).unwrap();
    let head = HeadKind::Classification {
        labels: common::nli_labels(),
    };
    let mut m = Model::random(&cfg, head.clone(), 3, &device, DType::F32).unwrap();
    let frozen: std::collections::BTreeSet<String> = m
        .encoder
        .params()
        .iter()
        .map(|(n, _)| n.clone())
        .filter(|n| n.contains("layer.0.attention"))
        .collect();
    assert!(!frozen.is_empty());
    m.encoder = m.encoder.with_frozen(&frozen).unwrap();
    assert!(m.encoder.handwritten_applies());
    let (inputs, target) = common::tiny_batch(&head, &device);
    let mut rng = DropoutRng::new(5);
    let grads = m
        .train_loss(&inputs, &target, Some(&mut rng))
        .unwrap()
        .backward()
        .unwrap();
    for (name, var) in m.params().iter() {
        assert!(
            !frozen.contains(name),
            "{name} is frozen but still a parameter"
        );
        assert!(
            grads.get(var.as_tensor()).is_some(),
            "no gradient for {name}"
        );
    }
}

#[test]
fn dropout_mask_matches_the_f32_draws() {
    use rand::Rng;
    for (seed, n, p) in [
        (1u64, 1usize, 0.1f64),
        (2, 1000, 0.1),
        (3, 70_001, 0.5),
        (4, 33, 0.9),
        (5, 5000, 0.001),
    ] {
        let mut bulk = DropoutRng::new(seed);
        let mut one_by_one = bulk.clone();
        let got = stilts_model::ops::dropout_mask(&mut bulk, n, p);
        let scale = (1.0 / (1.0 - p)) as f32;
        let want: Vec<f32> = (0..n)
            .map(|_| {
                if one_by_one.0.random::<f32>() < p as f32 {
                    0.0
                } else {
                    scale
                }
            })
            .collect();
        assert_eq!(got, want, "seed {seed}, n {n}, p {p}");
        // The stream is left where the element-wise draws leave it.
        assert_eq!(bulk.0.random::<u64>(), one_by_one.0.random::<u64>());
    }
}
