//! Multi-task sampling follows its definitions; a shared encoder trains
//! with one head per task.

use std::sync::atomic::AtomicBool;

use candle_core::{DType, Device, Tensor};
use stilts_model::{HeadKind, Inputs, Model, Target, Variant, XlmrConfig};
use stilts_protocol::multitask::{interleave, MultiTaskModel, Sampling, TaskSampler};
use stilts_protocol::optim::AdamWConfig;
use stilts_protocol::train::{fine_tune, Silent, TrainBatch, TrainOptions, Trainable};

fn frequencies(p: &[f64], draws: usize) -> Vec<f64> {
    let mut s = TaskSampler::new(p, 1);
    let mut counts = vec![0usize; p.len()];
    for _ in 0..draws {
        counts[s.sample()] += 1;
    }
    counts
        .into_iter()
        .map(|c| c as f64 / draws as f64)
        .collect()
}

#[test]
fn sampler_proportions_match_their_definitions() {
    let sizes = [393_000usize, 88_000, 10_000, 1_000];
    let names: Vec<String> = ["mnli", "squad", "sst2", "ccg"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let cases: Vec<(Sampling, Vec<f64>)> = vec![
        (Sampling::Uniform, vec![0.25; 4]),
        (
            Sampling::Proportional,
            sizes.iter().map(|&n| n as f64 / 492_000.0).collect(),
        ),
        (Sampling::ProportionalCapped { cap: 20_000 }, {
            let w = [20_000.0, 20_000.0, 10_000.0, 1_000.0];
            w.iter().map(|x| x / 51_000.0).collect()
        }),
        (
            Sampling::Temperature {
                temperature: 2.0,
                cap: None,
            },
            {
                let w: Vec<f64> = sizes.iter().map(|&n| (n as f64).sqrt()).collect();
                let t: f64 = w.iter().sum();
                w.iter().map(|x| x / t).collect()
            },
        ),
    ];
    for (sampling, want) in cases {
        let p = sampling.probabilities(&names, &sizes).unwrap();
        for (a, b) in p.iter().zip(&want) {
            assert!((a - b).abs() < 1e-12, "{sampling:?}: {p:?} vs {want:?}");
        }
        let f = frequencies(&p, 200_000);
        for (a, b) in f.iter().zip(&want) {
            assert!(
                (a - b).abs() < 0.005,
                "{sampling:?}: drawn {f:?}, defined {want:?}"
            );
        }
    }
    assert!(Sampling::Temperature {
        temperature: 0.0,
        cap: None
    }
    .probabilities(&names, &sizes)
    .is_err());
}

fn task_batches(task: usize, epoch: usize) -> Vec<TrainBatch> {
    (0..4u32)
        .map(|b| {
            let rows: Vec<Vec<u32>> = (0..8u32)
                .map(|i| vec![0, 5 + (b * 8 + i + epoch as u32) % 20, 6 + task as u32, 2])
                .collect();
            let target = if task == 0 {
                Target::Class(
                    Tensor::new(
                        (0..8i64).map(|i| (i + b as i64) % 2).collect::<Vec<_>>(),
                        &Device::Cpu,
                    )
                    .unwrap(),
                )
            } else {
                Target::Class(
                    Tensor::new((0..8i64).map(|i| i % 3).collect::<Vec<_>>(), &Device::Cpu)
                        .unwrap(),
                )
            };
            TrainBatch {
                task,
                inputs: Inputs::pad(&rows, 1, &Device::Cpu).unwrap(),
                target,
            }
        })
        .collect()
}

#[test]
fn shared_encoder_trains_with_a_head_per_task() {
    let cfg = XlmrConfig::new(Variant::PostLayerNorm, 30, 16, 1, 2, 32, 10).unwrap();
    let enc = Model::random(&cfg, HeadKind::SpanQa, 0, &Device::Cpu, DType::F32)
        .unwrap()
        .encoder;
    let tasks = vec![
        (
            "binary".to_string(),
            HeadKind::Classification {
                labels: vec!["x".into(), "y".into()],
            },
        ),
        ("three".to_string(), HeadKind::MultipleChoice),
    ];
    let mt = MultiTaskModel::new(enc, &tasks, 3).unwrap();
    let names: Vec<String> = mt.params().names().cloned().collect();
    assert!(names
        .iter()
        .any(|n| n.starts_with("binary/classifier.out_proj")));
    assert!(names.iter().any(|n| n.starts_with("three/roberta.pooler")));
    let before: std::collections::BTreeMap<_, _> = mt
        .encoder
        .params()
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, v.copy().unwrap()))
        .collect();
    let head1_before: std::collections::BTreeMap<_, _> = mt.heads[1]
        .1
        .params()
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, v.copy().unwrap()))
        .collect();

    // The multiple-choice task reads [8] rows as 8 examples of 1 choice: fine for a smoke test.
    let mut next = |epoch: usize| {
        let mut sampler = TaskSampler::new(
            &Sampling::Uniform
                .probabilities(&["a".into(), "b".into()], &[4, 4])
                .unwrap(),
            epoch as u64,
        );
        interleave(
            8,
            1,
            &mut sampler,
            &mut |t, e| {
                Ok(task_batches(t, e)
                    .into_iter()
                    .map(|mut b| {
                        if t == 1 {
                            b.target =
                                Target::Class(Tensor::zeros(8, DType::I64, &Device::Cpu).unwrap());
                        }
                        b
                    })
                    .collect())
            },
            2,
        )
    };
    let order = next(0).unwrap().collate_all().unwrap();
    assert!(order.iter().any(|b| b.task == 0) && order.iter().any(|b| b.task == 1));
    let opts = TrainOptions {
        adamw: AdamWConfig {
            lr: 1e-3,
            ..Default::default()
        },
        epochs: 3,
        ..Default::default()
    };
    let report = fine_tune(&mt, &mut next, &opts, &mut Silent, &AtomicBool::new(false)).unwrap();
    assert_eq!(report.steps, 24);
    // Per-task losses are logged, each batch under its own task.
    assert_eq!(report.task_losses.len(), 24);
    for t in 0..2 {
        assert!(
            report
                .task_losses
                .iter()
                .any(|(k, l)| *k == t && l.is_finite()),
            "no loss logged for task {t}"
        );
    }
    let after = mt.encoder.params().tensors();
    assert!(
        before.iter().any(|(n, t)| stilts_diff(t, &after[n]) > 0.0),
        "the shared encoder did not move"
    );
    let head1_after = mt.heads[1].1.params().tensors();
    assert!(
        head1_before
            .iter()
            .any(|(n, t)| stilts_diff(t, &head1_after[n]) > 0.0),
        "head of task 2 did not move"
    );
    // Each head goes back out as an ordinary model on the shared encoder.
    assert_eq!(mt.model(0).head.kind, tasks[0].1);
}

fn stilts_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn specified_probabilities_name_every_task() {
    let names: Vec<String> = ["mnli", "squad"].iter().map(|s| s.to_string()).collect();
    let probs = |pairs: &[(&str, f64)]| Sampling::Specified {
        probs: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
    };
    let p = probs(&[("mnli", 3.0), ("squad", 1.0)])
        .probabilities(&names, &[10, 1000])
        .unwrap();
    assert_eq!(p, vec![0.75, 0.25], "normalised, sizes ignored");
    let e = probs(&[("mnli", 1.0)])
        .probabilities(&names, &[10, 10])
        .unwrap_err()
        .to_string();
    assert!(e.contains("`squad`"), "{e}");
    let e = probs(&[("mnli", 1.0), ("squad", 1.0), ("qqp", 1.0)])
        .probabilities(&names, &[10, 10])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`qqp`") && e.contains("not a task of the mix"),
        "{e}"
    );
}

#[test]
fn the_task_is_drawn_per_update_not_per_batch() {
    let p = Sampling::Uniform
        .probabilities(&["a".into(), "b".into(), "c".into()], &[1, 1, 1])
        .unwrap();
    let mut sampler = TaskSampler::new(&p, 3);
    let order = interleave(
        50,
        4,
        &mut sampler,
        &mut |t, e| Ok(task_batches(t, e).into()),
        3,
    )
    .unwrap()
    .collate_all()
    .unwrap();
    assert_eq!(order.len(), 200);
    let mut switches_inside = 0;
    let mut switches_between = 0;
    for (i, w) in order.windows(2).enumerate() {
        if w[0].task != w[1].task {
            if (i + 1) % 4 == 0 {
                switches_between += 1;
            } else {
                switches_inside += 1;
            }
        }
    }
    assert_eq!(
        switches_inside, 0,
        "an update's 4 batches come from one task"
    );
    assert!(switches_between > 10, "tasks do change between updates");
}

#[test]
fn freeze_holds_the_shared_embeddings_and_one_head_fixed_in_a_mix() {
    let cfg = XlmrConfig::new(Variant::PostLayerNorm, 30, 16, 1, 2, 32, 10).unwrap();
    let enc = Model::random(&cfg, HeadKind::SpanQa, 0, &Device::Cpu, DType::F32)
        .unwrap()
        .encoder;
    let tasks = vec![
        (
            "binary".to_string(),
            HeadKind::Classification {
                labels: vec!["x".into(), "y".into()],
            },
        ),
        (
            "ternary".to_string(),
            HeadKind::Classification {
                labels: vec!["a".into(), "b".into(), "c".into()],
            },
        ),
    ];
    let mt = MultiTaskModel::new(enc, &tasks, 3).unwrap();
    let before: std::collections::BTreeMap<String, Tensor> = mt
        .params()
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, v.copy().unwrap()))
        .collect();
    let mut next = |epoch: usize| {
        let probs = Sampling::Uniform
            .probabilities(&["a".into(), "b".into()], &[4, 4])
            .unwrap();
        interleave(
            8,
            1,
            &mut TaskSampler::new(&probs, epoch as u64),
            &mut |t, e| Ok(task_batches(t, e).into()),
            2,
        )
    };
    let opts = TrainOptions {
        adamw: AdamWConfig {
            lr: 1e-3,
            ..Default::default()
        },
        epochs: 2,
        freeze: vec!["embeddings".into(), "binary/classifier".into()],
        ..Default::default()
    };
    let report = fine_tune(&mt, &mut next, &opts, &mut Silent, &AtomicBool::new(false)).unwrap();
    let moments = &report.optimizer.unwrap().moments;
    let after = mt.params().tensors();
    for (name, t) in &before {
        let frozen =
            name.starts_with("roberta.embeddings.") || name.starts_with("binary/classifier.");
        let d = stilts_diff(t, &after[name]);
        assert_eq!(frozen, d == 0.0, "{name}: frozen {frozen}, moved by {d}");
        assert_eq!(
            frozen,
            !moments.contains_key(name),
            "{name}: optimizer state"
        );
    }
}
