//! AdamW, the schedule and clipping against PyTorch/transformers
//! (`tests/fixtures/make_adamw_fixture.py`).

use crate::common;

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use common::{fixtures, max_abs_diff};
use stilts_model::{LoadOptions, Model};
use stilts_protocol::optim::{
    clip_grad_norm, decays, grad_norm, AdamW, AdamWConfig, LinearSchedule, Warmup,
};

#[test]
fn adamw_steps_and_schedule_match_torch() {
    let dir = fixtures().join("parity").join("xlmr_seqcls");
    let model = Model::from_dir(&dir, &LoadOptions::default()).unwrap();
    let io = candle_core::safetensors::load(dir.join("io.safetensors"), &Device::Cpu).unwrap();
    let want =
        candle_core::safetensors::load(fixtures().join("adamw_steps.safetensors"), &Device::Cpu)
            .unwrap();
    let params = model.params();
    let mut grads = GradStore::default();
    for (name, var) in params.iter() {
        grads.insert(var.as_tensor(), io[&format!("grad.{name}")].clone());
    }
    let sched = LinearSchedule::new(1e-3, Warmup::Steps(2), 10);
    let mut opt = AdamW::new(
        params.clone(),
        AdamWConfig {
            lr: 1e-3,
            weight_decay: 0.01,
            ..Default::default()
        },
    )
    .unwrap();
    for k in 0..4u64 {
        let lr_torch = want[&format!("lr.{k}")].to_vec1::<f64>().unwrap()[0];
        assert!(
            (sched.lr(k) - lr_torch).abs() < 1e-12,
            "lr at step {k}: {} vs {lr_torch}",
            sched.lr(k)
        );
        if k < 3 {
            opt.step(&grads, sched.lr(k)).unwrap();
        }
    }
    let mut worst: f64 = 0.0;
    for (name, var) in params.iter() {
        let d = max_abs_diff(var.as_tensor(), &want[&format!("after.{name}")]);
        worst = worst.max(d);
        assert!(
            d < 1e-6,
            "{name} after 3 AdamW steps differs from torch by {d:e}"
        );
    }
    assert!(worst > 0.0 || params.len() == 0);
    assert!(
        decays("classifier.dense.weight")
            && !decays("classifier.dense.bias")
            && !decays("roberta.embeddings.LayerNorm.weight")
    );
}

#[test]
fn clipping_scales_to_the_max_norm() {
    let a =
        candle_core::Var::from_tensor(&Tensor::new(&[3f32, 4.0], &Device::Cpu).unwrap()).unwrap();
    let mut ps = stilts_model::ParamStore::new();
    ps.insert("a.weight", a.clone());
    let mut grads = GradStore::default();
    grads.insert(
        a.as_tensor(),
        Tensor::new(&[3f32, 4.0], &Device::Cpu).unwrap(),
    );
    let before = clip_grad_norm(&ps, &mut grads, 1.0).unwrap();
    assert!((before - 5.0).abs() < 1e-6);
    let after = grad_norm(&ps, &grads).unwrap();
    assert!((after - 1.0).abs() < 1e-5, "norm after clipping {after}");
    // Below the limit nothing changes.
    let n = clip_grad_norm(&ps, &mut grads, 10.0).unwrap();
    assert!((grad_norm(&ps, &grads).unwrap() - n).abs() < 1e-9);
}

#[test]
fn warmup_fraction_and_decay_to_zero() {
    let s = LinearSchedule::new(2e-5, Warmup::Fraction(0.1), 100);
    assert_eq!(s.warmup, 10);
    assert_eq!(s.lr(0), 0.0);
    assert!((s.lr(5) - 1e-5).abs() < 1e-15);
    assert!((s.lr(10) - 2e-5).abs() < 1e-15);
    assert!((s.lr(55) - 1e-5).abs() < 1e-15);
    assert_eq!(s.lr(100), 0.0);
    assert_eq!(s.lr(150), 0.0);
}

/// STILTs without resetting the optimizer: the encoder's moments carry into
/// the next phase, a new head's start at zero.
#[test]
fn optimizer_state_carries_over_for_shared_parameters() {
    let dir = fixtures().join("parity").join("xlmr_seqcls");
    let model = Model::from_dir(&dir, &LoadOptions::default()).unwrap();
    let io = candle_core::safetensors::load(dir.join("io.safetensors"), &Device::Cpu).unwrap();
    let params = model.params();
    let mut grads = GradStore::default();
    for (name, var) in params.iter() {
        grads.insert(var.as_tensor(), io[&format!("grad.{name}")].clone());
    }
    let mut first = AdamW::new(params.clone(), AdamWConfig::default()).unwrap();
    first.step(&grads, 1e-3).unwrap();
    let state = first.state().unwrap();
    let next = Model::with_head(
        model.encoder.clone(),
        stilts_model::HeadKind::MultipleChoice,
        1,
    )
    .unwrap();
    let mut second = AdamW::new(next.params(), AdamWConfig::default()).unwrap();
    let carried = second.continue_from(&state).unwrap();
    assert_eq!(
        carried,
        model.encoder.params().len(),
        "every encoder parameter carries over, no head parameter"
    );
    assert_eq!(second.step, 1);
    let enc = "roberta.encoder.layer.0.attention.self.query.weight";
    assert_eq!(
        max_abs_diff(&second.moments[enc].m, &state.moments[enc].m),
        0.0
    );
    assert!(
        max_abs_diff(
            &second.moments[enc].m,
            &second.moments[enc].m.zeros_like().unwrap()
        ) > 0.0
    );
    let head = "roberta.pooler.dense.weight";
    assert_eq!(
        max_abs_diff(
            &second.moments[head].v,
            &second.moments[head].v.zeros_like().unwrap()
        ),
        0.0
    );
}

/// A parameter store with one `[rows, cols]` matrix and one bias.
/// AdamW at lr 1e-2, plain or with a factored second moment.
fn adamw_at_1e2(params: &stilts_model::ParamStore, factored: bool) -> AdamW {
    AdamW::new(
        params.clone(),
        AdamWConfig {
            lr: 1e-2,
            factored,
            ..Default::default()
        },
    )
    .unwrap()
}

fn matrix_and_bias(rows: usize, cols: usize) -> stilts_model::ParamStore {
    let mut ps = stilts_model::ParamStore::new();
    let w: Vec<f32> = (0..rows * cols)
        .map(|i| ((i * 7) % 13) as f32 / 13.0 - 0.5)
        .collect();
    let w = Tensor::from_vec(w, (rows, cols), &Device::Cpu).unwrap();
    ps.insert("dense.weight", candle_core::Var::from_tensor(&w).unwrap());
    let b = Tensor::new(&[0.1f32, -0.2, 0.3], &Device::Cpu).unwrap();
    ps.insert("dense.bias", candle_core::Var::from_tensor(&b).unwrap());
    ps
}

#[test]
fn factored_adamw_equals_adamw_on_rank_one_squared_gradients_and_keeps_less_state() {
    let (rows, cols) = (6, 3);
    // g = u v^T, so g^2 = (u^2)(v^2)^T is rank one: the factored second
    // moment is then exact.
    let u = Tensor::new(&[0.5f32, -1.0, 2.0, 0.1, -0.3, 1.5], &Device::Cpu).unwrap();
    let v = Tensor::new(&[1.0f32, -0.2, 0.7], &Device::Cpu).unwrap();
    let g = u
        .unsqueeze(1)
        .unwrap()
        .matmul(&v.unsqueeze(0).unwrap())
        .unwrap();
    let gb = Tensor::new(&[0.3f32, 0.01, -0.5], &Device::Cpu).unwrap();
    let run = |factored: bool| {
        let params = matrix_and_bias(rows, cols);
        let mut opt = adamw_at_1e2(&params, factored);
        for step in 0..5 {
            let mut grads = GradStore::default();
            // A different scale each step: still rank one.
            grads.insert(
                params.get("dense.weight").unwrap().as_tensor(),
                (&g * (1.0 + step as f64)).unwrap(),
            );
            grads.insert(params.get("dense.bias").unwrap().as_tensor(), gb.clone());
            opt.step(&grads, 1e-2).unwrap();
        }
        let state: usize = opt.moments.values().map(|m| m.v.elem_count()).sum();
        (params, state)
    };
    let (full, full_state) = run(false);
    let (fact, fact_state) = run(true);
    for name in ["dense.weight", "dense.bias"] {
        let d = max_abs_diff(
            full.get(name).unwrap().as_tensor(),
            fact.get(name).unwrap().as_tensor(),
        );
        assert!(d < 1e-6, "{name}: factored differs from AdamW by {d:e}");
    }
    // v: 6x3 + 3 full, 6 + 3 (factored matrix) + 3 (bias stays full).
    assert_eq!(full_state, rows * cols + 3);
    assert_eq!(fact_state, rows + cols + 3);
}

#[test]
fn factored_adamw_differs_from_adamw_when_squared_gradients_are_not_rank_one() {
    // The test above could pass if the option did nothing; here it must not.
    let g = Tensor::new(
        &[
            [1.0f32, 0.0, 0.5],
            [0.0, 2.0, 0.1],
            [0.3, 0.0, 1.0],
            [1.0, 1.0, 0.0],
            [0.2, 0.0, 0.0],
            [0.0, 0.4, 3.0],
        ],
        &Device::Cpu,
    )
    .unwrap();
    let run = |factored: bool| {
        let params = matrix_and_bias(6, 3);
        let mut opt = adamw_at_1e2(&params, factored);
        let mut grads = GradStore::default();
        grads.insert(params.get("dense.weight").unwrap().as_tensor(), g.clone());
        opt.step(&grads, 1e-2).unwrap();
        params.get("dense.weight").unwrap().as_tensor().clone()
    };
    let d = max_abs_diff(&run(false), &run(true));
    assert!(
        d > 1e-4,
        "factored and full AdamW agree ({d:e}) on a full-rank g^2"
    );
}
