//! The training loop learns, is deterministic per seed, and stops on request.

use crate::common;

use std::sync::atomic::AtomicBool;

use candle_core::{DType, Device, Tensor};
use stilts_model::{HeadKind, Inputs, Model, Target, Variant, XlmrConfig};
use stilts_protocol::optim::AdamWConfig;
use stilts_protocol::predict::predict_classes;
use stilts_protocol::train::{fine_tune, Silent, TrainOptions};

/// A separable toy task: does the sequence contain token 7?
fn data() -> (Vec<Vec<u32>>, Vec<i64>) {
    let mut rows = vec![];
    let mut labels = vec![];
    for i in 0..64u32 {
        let has = i % 2 == 0;
        let mut r = vec![0u32];
        for k in 0..(3 + i % 5) {
            r.push(8 + (i * 7 + k * 3) % 20);
        }
        if has {
            r.insert(1 + (i as usize % 3), 7);
        }
        r.push(2);
        rows.push(r);
        labels.push(has as i64);
    }
    (rows, labels)
}

fn batches(rows: &[Vec<u32>], labels: &[i64]) -> Vec<(Inputs, Target)> {
    common::class_batches(rows, labels)
}

fn model(seed: u64) -> Model {
    let cfg = XlmrConfig::new(Variant::PostLayerNorm, 30, 32, 2, 4, 64, 20).unwrap();
    Model::random(
        &cfg,
        HeadKind::Classification {
            labels: vec!["no".into(), "yes".into()],
        },
        seed,
        &Device::Cpu,
        DType::F32,
    )
    .unwrap()
}

/// Trains `m` on the toy task with `o` (no progress, never cancelled).
fn train_toy(m: &Model, o: &TrainOptions) -> stilts_protocol::train::TrainReport {
    let (rows, labels) = data();
    fine_tune(
        m,
        &mut |_| {
            Ok(batches(&rows, &labels)
                .into_iter()
                .map(Into::into)
                .collect())
        },
        o,
        &mut Silent,
        &AtomicBool::new(false),
    )
    .unwrap()
}

fn opts(epochs: usize) -> TrainOptions {
    TrainOptions {
        adamw: AdamWConfig {
            lr: 2e-3,
            ..Default::default()
        },
        epochs,
        seed: 5,
        ..Default::default()
    }
}

#[test]
fn a_tiny_model_learns_a_separable_task() {
    let (rows, labels) = data();
    let m = model(3);
    let report = train_toy(&m, &opts(15));
    assert_eq!(report.steps, 8 * 15);
    let first: f64 = report.losses[..8].iter().sum::<f64>() / 8.0;
    let last: f64 = report.losses[report.losses.len() - 8..].iter().sum::<f64>() / 8.0;
    assert!(last < first * 0.5, "loss did not fall: {first} -> {last}");
    let inputs: Vec<Inputs> = batches(&rows, &labels)
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    let pred = predict_classes(&m, &inputs).unwrap();
    let acc = pred
        .iter()
        .zip(&labels)
        .filter(|(p, l)| **p as i64 == **l)
        .count() as f64
        / labels.len() as f64;
    assert!(acc >= 0.95, "training accuracy {acc}");
}

#[test]
fn same_seed_same_weights_and_bf16_mixed_precision_trains() {
    let run = |bf16: bool| {
        let m = model(3);
        train_toy(&m, &TrainOptions { bf16, ..opts(2) });
        m.params().tensors()
    };
    let (a, b) = (run(false), run(false));
    for (name, t) in &a {
        assert_eq!(
            common::max_abs_diff(t, &b[name]),
            0.0,
            "{name} differs between identical runs"
        );
    }
    let c = run(true);
    let moved = c.iter().any(|(n, t)| common::max_abs_diff(t, &a[n]) > 0.0);
    assert!(
        moved,
        "bf16 compute gave bit-identical weights to f32: is it used?"
    );
    assert!(
        c.values().all(|t| t.dtype() == DType::F32),
        "master weights must stay f32"
    );
}

#[test]
fn gradient_accumulation_counts_updates_and_cancel_stops() {
    let (rows, labels) = data();
    let m = model(4);
    let o = TrainOptions {
        grad_accum: 4,
        ..opts(2)
    };
    let r = train_toy(&m, &o);
    assert_eq!(r.steps, 4, "8 batches / accumulation 4 x 2 epochs");
    let o = TrainOptions {
        max_steps: Some(3),
        ..opts(5)
    };
    let r = train_toy(&m, &o);
    assert_eq!(r.steps, 3);
    let r = fine_tune(
        &m,
        &mut |_| {
            Ok(batches(&rows, &labels)
                .into_iter()
                .map(Into::into)
                .collect())
        },
        &opts(1),
        &mut Silent,
        &AtomicBool::new(true),
    )
    .unwrap_err();
    // An error that says what stopped and where, not a report with a flag.
    assert!(
        matches!(
            r,
            stilts_model::Error::Cancelled {
                step: Some(0),
                checkpoint: None,
                ..
            }
        ),
        "{r:?}"
    );
    assert_eq!(r.to_string(), "interrupted during training at update 0");
}

#[test]
fn an_input_longer_than_the_position_table_is_a_clear_error() {
    // max_position_embeddings 20 with pad id 1: at most 18 tokens.
    let m = model(0);
    let ok = Inputs::pad(&[vec![5u32; 18]], 1, &Device::Cpu).unwrap();
    assert!(m.forward(&ok, None).is_ok());
    let long = Inputs::pad(&[vec![5u32; 19]], 1, &Device::Cpu).unwrap();
    let err = m
        .forward(&long, None)
        .err()
        .expect("19 tokens must not fit")
        .to_string();
    assert!(
        err.contains("longer than this model allows") && err.contains("max_length <= 18"),
        "{err}"
    );
}

#[test]
fn a_tiny_model_learns_with_the_factored_optimizer() {
    let m = model(3);
    let mut o = opts(15);
    o.adamw.factored = true;
    let report = train_toy(&m, &o);
    let first: f64 = report.losses[..8].iter().sum::<f64>() / 8.0;
    let last: f64 = report.losses[report.losses.len() - 8..].iter().sum::<f64>() / 8.0;
    assert!(last < first * 0.5, "loss did not fall: {first} -> {last}");
}

/// Copies of every parameter's values, by name.
fn values(m: &Model) -> std::collections::BTreeMap<String, Tensor> {
    m.params()
        .tensors()
        .into_iter()
        .map(|(k, v)| (k, v.copy().unwrap()))
        .collect()
}

#[test]
fn frozen_parameters_stay_bit_identical_and_hold_no_optimizer_state() {
    let m = model(3);
    let before = values(&m);
    let o = TrainOptions {
        freeze: vec!["embeddings".into(), "layers:0".into()],
        ..opts(2)
    };
    let report = train_toy(&m, &o);
    let after = values(&m);
    let is_frozen =
        |n: &str| n.starts_with("roberta.embeddings.") || n.starts_with("roberta.encoder.layer.0.");
    let moments = &report.optimizer.as_ref().expect("optimizer state").moments;
    let (mut frozen, mut trained) = (0, 0);
    for (name, t) in &before {
        let d = common::max_abs_diff(t, &after[name]);
        if is_frozen(name) {
            frozen += 1;
            assert_eq!(d, 0.0, "frozen {name} moved by {d}");
            assert!(
                !moments.contains_key(name),
                "AdamW keeps state for frozen {name}"
            );
        } else {
            trained += 1;
            assert!(d > 0.0, "trainable {name} did not move");
            assert!(moments.contains_key(name), "no AdamW state for {name}");
        }
    }
    assert!(
        frozen >= 4 + 16 && trained >= 16,
        "{frozen} frozen, {trained} trained"
    );
    assert_eq!(moments.len(), trained);

    // Without `freeze` the same run moves the embeddings: the check above can fail.
    let m = model(3);
    train_toy(&m, &opts(2));
    let moved = values(&m);
    assert!(
        common::max_abs_diff(
            &before["roberta.embeddings.word_embeddings.weight"],
            &moved["roberta.embeddings.word_embeddings.weight"]
        ) > 0.0
    );
}

#[test]
fn a_frozen_view_computes_no_gradient_for_frozen_parameters() {
    use stilts_protocol::train::Trainable;
    let m = model(1);
    let frozen: std::collections::BTreeSet<String> = m
        .params()
        .names()
        .filter(|n| n.starts_with("roberta.embeddings."))
        .cloned()
        .collect();
    assert_eq!(
        frozen.len(),
        5,
        "word, position, token type, LayerNorm weight and bias"
    );
    let view = m.for_training(DType::F32, false, &frozen, None).unwrap();
    let (rows, labels) = data();
    let (inputs, target) = batches(&rows, &labels).remove(0);
    let grads = view
        .batch_loss(&(inputs, target).into(), None)
        .unwrap()
        .backward()
        .unwrap();
    for (name, var) in m.params().iter() {
        let g = grads.get(var.as_tensor());
        if frozen.contains(name) {
            assert!(g.is_none(), "frozen {name} got a gradient");
            assert!(
                view.params().get(name).is_none(),
                "{name} listed as trainable"
            );
        } else {
            assert!(g.is_some(), "{name} got no gradient");
            // The view trains the model's own parameters, not copies.
            assert_eq!(
                view.params().get(name).unwrap().as_tensor().id(),
                var.as_tensor().id()
            );
        }
    }
}

#[test]
fn a_freeze_entry_that_matches_nothing_is_an_error_naming_the_prefixes() {
    let m = model(0);
    let (rows, labels) = data();
    let run = |freeze: &[&str]| {
        let o = TrainOptions {
            freeze: freeze.iter().map(|s| s.to_string()).collect(),
            ..opts(1)
        };
        fine_tune(
            &m,
            &mut |_| {
                Ok(batches(&rows, &labels)
                    .into_iter()
                    .map(Into::into)
                    .collect())
            },
            &o,
            &mut Silent,
            &AtomicBool::new(false),
        )
        .err()
        .map(|e| e.to_string())
    };
    let err = run(&["embedding"]).expect("a typo must not train");
    assert!(
        err.contains("`embedding`")
            && err.contains("embeddings, encoder.layer.0-1 (`layers:0-1`), classifier"),
        "{err}"
    );
    let err = run(&["layers:1-2"]).expect("layer 2 does not exist");
    assert!(err.contains("encoder.layer.2"), "{err}");
    // Whole components: `encoder.layer.1` is layer 1, and a full name works too.
    assert!(run(&["roberta.encoder.layer.1", "classifier.dense.weight"]).is_none());
    let err = run(&["embeddings", "encoder", "classifier"]).expect("nothing to train");
    assert!(err.contains("nothing is left to train"), "{err}");
}

/// Issue 15, item 5: an epoch is a plan; the loop collates one
/// accumulation group when it reaches it, never the whole epoch up front
/// (nor epoch 0 twice to count it).
#[test]
fn the_loop_collates_one_group_at_a_time() {
    use std::cell::RefCell;
    use stilts_protocol::train::{Epoch, Progress};
    let (rows, labels) = data();
    let ready: Vec<_> = batches(&rows, &labels);
    let collated = RefCell::new(Vec::<(usize, usize)>::new());
    // (update, batches collated when it was reported)
    struct Watch<'a>(&'a RefCell<Vec<(usize, usize)>>, Vec<(u64, usize)>);
    impl Progress for Watch<'_> {
        fn step(&mut self, done: u64, _: f64, _: f64) {
            self.1.push((done, self.0.borrow().len()));
        }
    }
    let mut watch = Watch(&collated, vec![]);
    let o = TrainOptions {
        grad_accum: 2,
        ..opts(2)
    };
    let report = fine_tune(
        &model(1),
        &mut |epoch| {
            let shapes = ready.iter().map(|(i, _)| i.dims().unwrap()).collect();
            let ready = &ready;
            let collated = &collated;
            Ok(Epoch::planned(shapes, move |k| {
                collated.borrow_mut().push((epoch, k));
                Ok(ready[k].clone().into())
            }))
        },
        &o,
        &mut watch,
        &AtomicBool::new(false),
    )
    .unwrap();
    // 8 batches an epoch, 2 per update: 4 updates an epoch, 8 in all.
    assert_eq!(report.steps, 8);
    let seen: Vec<(u64, usize)> = watch.1.iter().copied().filter(|(d, _)| *d > 0).collect();
    assert_eq!(
        seen,
        (1..=8).map(|u| (u, 2 * u as usize)).collect::<Vec<_>>(),
        "after update u, exactly its 2u batches are collated"
    );
    let order = collated.borrow().clone();
    let want: Vec<(usize, usize)> = (0..2).flat_map(|e| (0..8).map(move |k| (e, k))).collect();
    assert_eq!(order, want, "each batch collated once, in order");
}
