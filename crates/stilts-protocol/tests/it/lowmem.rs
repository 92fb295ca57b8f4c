//! The memory-saving training options of issue 16 against plain AdamW on a
//! tiny model: bf16 weights with a Kahan-compensated or stochastically
//! rounded update, the factored second moment, and the update inside
//! backward. Each option's 200-update loss curve must stay within a stated
//! tolerance of the reference curve, and a broken variant (bf16 weights
//! rounded to nearest) must fall outside it, so the tolerance can fail.

use crate::common;

use std::sync::atomic::AtomicBool;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use stilts_model::{HeadKind, Inputs, Model, ParamStore, Target, Variant, XlmrConfig};
use stilts_protocol::optim::lowmem::Bf16Update;
use stilts_protocol::optim::{AdamW, AdamWConfig};
use stilts_protocol::presets::RunOptions;
use stilts_protocol::train::{fine_tune, Silent, TrainOptions, TrainReport};

/// A separable toy task: does the sequence contain token 7?
fn batches() -> Vec<(Inputs, Target)> {
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
    common::class_batches(&rows, &labels)
}

fn model(dtype: DType) -> Model {
    let cfg = XlmrConfig::new(Variant::PostLayerNorm, 30, 64, 2, 4, 128, 20).unwrap();
    Model::random(
        &cfg,
        HeadKind::Classification {
            labels: vec!["no".into(), "yes".into()],
        },
        3,
        &Device::Cpu,
        dtype,
    )
    .unwrap()
}

const STEPS: u64 = 200;

fn opts() -> TrainOptions {
    TrainOptions {
        adamw: AdamWConfig {
            lr: 3e-4,
            ..Default::default()
        },
        epochs: 100,
        max_steps: Some(STEPS),
        seed: 5,
        gradient_checkpointing: true,
        ..Default::default()
    }
}

fn train(m: &Model, o: &TrainOptions) -> TrainReport {
    let b = batches();
    fine_tune(
        m,
        &mut |_| Ok(b.iter().cloned().map(Into::into).collect()),
        o,
        &mut Silent,
        &AtomicBool::new(false),
    )
    .unwrap()
}

/// Mean absolute difference of two loss curves, and of their last 20
/// updates' means.
fn curve_gap(a: &[f64], b: &[f64]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let mean = a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len() as f64;
    let tail = |c: &[f64]| c[c.len() - 20..].iter().sum::<f64>() / 20.0;
    (mean, (tail(a) - tail(b)).abs())
}

/// The tolerances a curve must meet against its reference, as mean
/// |difference| per update and difference of the final 20-update means,
/// in nats (the losses start near ln 2 = 0.69 and end near 0.04).
/// Options that change only how the same update is rounded or stored
/// (bf16 weights with `kahan` or `stochastic`, the update in backward
/// without clipping) must be within `ROUNDING`; options that change the
/// algorithm (the factored second moment, clipping with the previous
/// step's norm) within `ALGORITHM`.
const ROUNDING: f64 = 0.003;
const ALGORITHM: f64 = 0.03;

fn within(what: &str, got: &[f64], want: &[f64], tol: f64) {
    let (mean, tail) = curve_gap(got, want);
    eprintln!("{what}: mean gap {mean:.5}, final gap {tail:.5} (tolerance {tol})");
    assert!(
        mean <= tol && tail <= tol,
        "{what}: loss curve off plain AdamW by {mean:.5} per update, {tail:.5} at the end (tolerance {tol})"
    );
}

#[test]
fn bf16_weight_updates_track_f32_master_weights_over_200_steps() {
    // Reference: f32 master weights, bf16 matmuls (mixed precision).
    let reference = train(
        &model(DType::F32),
        &TrainOptions {
            bf16: true,
            ..opts()
        },
    );
    let r = &reference.losses;
    assert_eq!(r.len(), STEPS as usize);
    let learned = r[..20].iter().sum::<f64>() / 20.0 - r[r.len() - 20..].iter().sum::<f64>() / 20.0;
    assert!(learned > 0.2, "the reference did not learn: {learned}");
    let mut o = opts();
    o.adamw.bf16_update = Some(Bf16Update::Kahan);
    let kahan = train(&model(DType::BF16), &o);
    within("bf16 weights, kahan", &kahan.losses, r, ROUNDING);
    o.adamw.bf16_update = Some(Bf16Update::Stochastic);
    let stochastic = train(&model(DType::BF16), &o);
    within(
        "bf16 weights, stochastic rounding",
        &stochastic.losses,
        r,
        ROUNDING,
    );
    // The broken variant: bf16 weights rounded to nearest lose the small
    // updates, and the same tolerance catches it.
    o.adamw.bf16_update = None;
    let nearest = train(&model(DType::BF16), &o);
    let (mean, tail) = curve_gap(&nearest.losses, r);
    eprintln!("bf16 weights, rounded to nearest: mean gap {mean:.4}, final gap {tail:.4}");
    assert!(
        mean > ROUNDING || tail > ROUNDING,
        "round-to-nearest bf16 updates should fall outside the tolerance ({mean:.4}, {tail:.4}): the tolerance would not catch a broken update"
    );
    // Same seed, same bytes (the stochastic rounding's bits included).
    let again = train(&model(DType::BF16), &{
        let mut o = opts();
        o.adamw.bf16_update = Some(Bf16Update::Stochastic);
        o
    });
    assert_eq!(again.losses, stochastic.losses);
}

#[test]
fn factored_second_moment_with_bf16_kahan_and_fused_update_tracks_adamw() {
    let reference = train(
        &model(DType::F32),
        &TrainOptions {
            bf16: true,
            ..opts()
        },
    );
    let mut o = opts();
    o.adamw.factored = true;
    let factored = train(&model(DType::F32), &o);
    within(
        "factored second moment",
        &factored.losses,
        &reference.losses,
        ALGORITHM,
    );
    // Mixed precision (f32 master weights), factored, update in backward:
    // the set that fits XXL in 139 GiB with f32 weights.
    let mixed = train(
        &model(DType::F32),
        &TrainOptions {
            bf16: true,
            fused_update: true,
            ..o.clone()
        },
    );
    within(
        "mixed precision, factored, fused_update",
        &mixed.losses,
        &reference.losses,
        ALGORITHM,
    );
    o.adamw.bf16_update = Some(Bf16Update::Kahan);
    o.fused_update = true;
    let all = train(&model(DType::BF16), &o);
    within(
        "bf16 weights, kahan, factored, fused_update",
        &all.losses,
        &reference.losses,
        ALGORITHM,
    );
}

/// Weights of a model by name.
fn weights(m: &Model) -> Vec<(String, Vec<f32>)> {
    m.params()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_tensor()
                    .to_dtype(DType::F32)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap(),
            )
        })
        .collect()
}

/// A clipping threshold the toy model's gradient norms exceed.
const MAX_NORM: f64 = 0.1;

/// The update in backward applies exactly the update that backward then
/// a separate step applies (same kernel, same gradients).
#[test]
fn fused_update_applies_the_same_update_as_backward_then_step() {
    use stilts_protocol::optim::lowmem;
    let (a, b) = (model(DType::F32), model(DType::F32));
    let (a, b) = (
        a.with_gradient_checkpointing(true),
        b.with_gradient_checkpointing(true),
    );
    let cfg = AdamWConfig {
        lr: 1e-3,
        ..Default::default()
    };
    let mut oa = AdamW::new(a.params(), cfg.clone()).unwrap();
    let mut ob = AdamW::new(b.params(), cfg).unwrap();
    let data = batches();
    let mut previous = None;
    for (step, (inputs, target)) in data.iter().cycle().take(12).enumerate() {
        let mut ra = stilts_model::DropoutRng::new(step as u64);
        let mut rb = ra.clone();
        let la = a.train_loss(inputs, target, Some(&mut ra)).unwrap();
        let lb = b.train_loss(inputs, target, Some(&mut rb)).unwrap();
        let grads = la.backward().unwrap();
        let norm = lowmem::grad_norm(&a.params(), &grads).unwrap();
        let scale = previous.map_or(1.0, |n| lowmem::clip_factor(n, MAX_NORM));
        lowmem::step(&mut oa, &grads, 1e-3, scale).unwrap();
        let fused = lowmem::backward_and_update(lb, &b.params(), &mut ob, 1e-3, MAX_NORM, previous)
            .unwrap();
        assert!(
            (fused - norm).abs() <= 1e-9 * norm,
            "norm {fused} vs {norm}"
        );
        previous = Some(norm);
        assert_eq!(
            weights(&a),
            weights(&b),
            "weights differ after update {}",
            step + 1
        );
    }
    assert!(previous.unwrap() > MAX_NORM, "clipping was exercised");
}

#[test]
fn fused_update_tracks_plain_adamw_with_and_without_clipping() {
    let mut o = opts();
    o.max_grad_norm = 1e9;
    let plain = train(&model(DType::F32), &o);
    o.fused_update = true;
    let fused = train(&model(DType::F32), &o);
    within(
        "fused_update, no clipping",
        &fused.losses,
        &plain.losses,
        ROUNDING,
    );
    // Clipped: the fused update clips with the previous step's norm,
    // plain AdamW with this step's.
    let clipped = TrainOptions {
        max_grad_norm: MAX_NORM,
        ..opts()
    };
    let plain = train(&model(DType::F32), &clipped);
    let fused = train(
        &model(DType::F32),
        &TrainOptions {
            fused_update: true,
            ..clipped
        },
    );
    assert_ne!(plain.losses, fused.losses, "the clipping rules differ");
    within(
        "fused_update, clipped with the previous norm",
        &fused.losses,
        &plain.losses,
        ALGORITHM,
    );
}

#[test]
fn eight_bit_second_moment_tracks_adamw_over_200_steps() {
    // f32 weights: against plain f32 AdamW (the same update, `v` stored
    // in 8 bits).
    let plain = train(&model(DType::F32), &opts());
    let mut o = opts();
    o.adamw.eight_bit_second_moment = true;
    let q = train(&model(DType::F32), &o);
    assert_ne!(
        q.losses, plain.losses,
        "the 8-bit state changes the numbers"
    );
    within(
        "8-bit second moment, f32 weights",
        &q.losses,
        &plain.losses,
        ROUNDING,
    );
    // bf16 weights with kahan, with and without the update in backward:
    // against f32 master weights (mixed precision) as the other bf16 rows.
    let reference = train(
        &model(DType::F32),
        &TrainOptions {
            bf16: true,
            ..opts()
        },
    );
    o.adamw.bf16_update = Some(Bf16Update::Kahan);
    let kahan = train(&model(DType::BF16), &o);
    within(
        "8-bit second moment, bf16 weights, kahan",
        &kahan.losses,
        &reference.losses,
        ROUNDING,
    );
    o.fused_update = true;
    let m1 = model(DType::BF16);
    let fused = train(&m1, &o);
    within(
        "8-bit second moment, bf16 weights, kahan, fused_update",
        &fused.losses,
        &reference.losses,
        ROUNDING,
    );
    // Same seed, same bytes.
    let m2 = model(DType::BF16);
    let again = train(&m2, &o);
    assert_eq!(again.losses, fused.losses);
    assert_eq!(weights(&m1), weights(&m2));
}

#[test]
fn eight_bit_state_is_one_byte_a_value_and_round_trips_within_its_step() {
    use stilts_protocol::optim::lowmem::q8;
    // The state: codes, then one f32 scale per block.
    let m = model(DType::F32);
    let opt = AdamW::new(
        m.params(),
        AdamWConfig {
            eight_bit_second_moment: true,
            ..Default::default()
        },
    )
    .unwrap();
    for (name, var) in m.params().iter() {
        let v = &opt.moments[name].v;
        assert_eq!(v.dtype(), DType::U8, "{name}");
        assert_eq!(v.elem_count(), q8::state_len(var.elem_count()), "{name}");
    }
    assert_eq!(q8::state_len(2048), 2048 + 4);
    assert_eq!(q8::state_len(2049), 2049 + 8);
    // Round trip: the block maximum and zero exactly, every value in
    // between within half a code step of the quartic map, monotone.
    let max = 3.7e-5f32;
    assert_eq!(q8::decode(q8::encode(max, max), max), max);
    assert_eq!(q8::decode(q8::encode(0.0, max), max), 0.0);
    assert_eq!(q8::encode(1.0, 0.0), 0, "an all-zero block");
    let mut last = 0u8;
    for k in 0..400 {
        // From 1e-10 of the maximum up to the maximum.
        let v = max * 10f32.powf(-10.0 * (1.0 - k as f32 / 399.0));
        let c = q8::encode(v, max);
        assert!(c >= last, "monotone");
        last = c;
        let back = q8::decode(c, max);
        let r = (v / max).powf(0.25);
        let step = 0.5 / 255.0;
        let lo = max * (r - step).max(0.0).powi(4);
        let hi = max * (r + step).powi(4);
        assert!(
            back >= lo * 0.9999 && back <= hi * 1.0001,
            "{v:e} -> code {c} -> {back:e}, outside [{lo:e}, {hi:e}]"
        );
        if v >= max * 1e-2 {
            // Above 1% of the maximum: within 6% (4 / code at code >= 80).
            assert!((back - v).abs() <= 0.06 * v, "{v:e} -> {back:e}");
        }
    }
    // A linear map would have sent this to zero; the quartic keeps it.
    assert!(q8::decode(q8::encode(max * 1e-4, max), max) > 0.0);
}

#[test]
fn eight_bit_second_moment_and_the_factored_one_are_an_error_together() {
    let m = model(DType::F32);
    let e = AdamW::new(
        m.params(),
        AdamWConfig {
            eight_bit_second_moment: true,
            factored: true,
            ..Default::default()
        },
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("choose one"), "{e}");
    let e = RunOptions::resolve(
        &serde_json::json!({"eight_bit_second_moment": true, "factored_optimizer": true}),
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("choose one"), "{e}");
    let ok = RunOptions::resolve(&serde_json::json!({"eight_bit_second_moment": true}), None)
        .unwrap()
        .options;
    assert!(ok.train_options(None).adamw.eight_bit_second_moment);
    assert!(RunOptions::keys().contains(&"eight_bit_second_moment".to_string()));
    let plain = serde_json::to_value(RunOptions::default()).unwrap();
    assert!(plain.get("eight_bit_second_moment").is_none());
}

fn one_param(value: f32, dtype: DType) -> (ParamStore, Var) {
    let v = Var::from_tensor(
        &Tensor::full(value, 64, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap(),
    )
    .unwrap();
    let mut ps = ParamStore::new();
    ps.insert("w.weight", v.clone());
    (ps, v)
}

fn mean(v: &Var) -> f64 {
    v.as_tensor()
        .to_dtype(DType::F64)
        .unwrap()
        .mean_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// Updates far below half a bf16 step: nearest rounding never moves the
/// weight, Kahan and stochastic rounding follow the f32 weight.
#[test]
fn small_updates_accumulate_with_kahan_and_stochastic_rounding() {
    let run = |dtype: DType, mode: Option<Bf16Update>| {
        let (ps, v) = one_param(1.0, dtype);
        let mut opt = AdamW::new(
            ps,
            AdamWConfig {
                weight_decay: 0.0,
                bf16_update: mode,
                ..Default::default()
            },
        )
        .unwrap();
        let mut g = GradStore::default();
        g.insert(
            v.as_tensor(),
            Tensor::full(0.5f32, 64, &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap(),
        );
        for _ in 0..300 {
            // Adam's step is about lr: 1e-4 against a bf16 step of 2^-7 at 1.0.
            opt.step(&g, 1e-4).unwrap();
        }
        mean(&v)
    };
    let f32 = run(DType::F32, None);
    assert!((f32 - (1.0 - 0.03)).abs() < 1e-3, "f32 weight {f32}");
    let nearest = run(DType::BF16, None);
    assert_eq!(nearest, 1.0, "nearest rounding keeps the weight");
    let kahan = run(DType::BF16, Some(Bf16Update::Kahan));
    assert!((kahan - f32).abs() < 4e-3, "kahan {kahan} vs f32 {f32}");
    let sr = run(DType::BF16, Some(Bf16Update::Stochastic));
    assert!((sr - f32).abs() < 4e-3, "stochastic {sr} vs f32 {f32}");
}

#[test]
fn stochastic_rounding_is_unbiased_and_lands_on_a_neighbour() {
    use stilts_protocol::optim::lowmem::round_stochastic;
    let x = 1.0f32 + 0.3 * 2f32.powi(-7); // 30% of the way to the next bf16
    let n = 20_000u64;
    let mut sum = 0.0f64;
    for i in 0..n {
        let r = round_stochastic(x, i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20).to_f32();
        assert!(r == 1.0 || r == 1.0 + 2f32.powi(-7), "{r}");
        sum += r as f64;
    }
    let m = sum / n as f64;
    assert!((m - x as f64).abs() < 2e-4, "mean {m} vs {x}");
    assert_eq!(round_stochastic(-2.0, 12345).to_f32(), -2.0);
}

#[test]
fn options_that_cannot_work_together_are_errors_that_say_what_to_do() {
    let e = RunOptions::resolve(&serde_json::json!({"fused_update": true}), None).unwrap_err();
    assert!(e.to_string().contains("gradient_checkpointing"), "{e}");
    let e = RunOptions::resolve(
        &serde_json::json!({"fused_update": true, "gradient_checkpointing": true, "grad_accum": 2}),
        None,
    )
    .unwrap_err();
    assert!(e.to_string().contains("grad_accum: 1"), "{e}");
    let e = RunOptions::resolve(&serde_json::json!({"bf16_update": "round"}), None).unwrap_err();
    assert!(e.to_string().contains("bf16_update"), "{e}");
    let ok = RunOptions::resolve(
        &serde_json::json!({"fused_update": true, "gradient_checkpointing": true, "bf16_update": "kahan"}),
        None,
    )
    .unwrap()
    .options;
    let t = ok.train_options(None);
    assert!(t.fused_update && t.adamw.bf16_update == Some(Bf16Update::Kahan));
    assert!(RunOptions::keys().contains(&"fused_update".to_string()));
    // Left at their defaults, the new options leave the fingerprint alone.
    let plain = serde_json::to_value(RunOptions::default()).unwrap();
    assert!(plain.get("fused_update").is_none() && plain.get("bf16_update").is_none());
    // bf16_update on f32 weights: the loop says how to get bf16 weights.
    let b = batches();
    let mut o = opts();
    o.adamw.bf16_update = Some(Bf16Update::Kahan);
    let e = fine_tune(
        &model(DType::F32),
        &mut |_| Ok(b.iter().cloned().map(Into::into).collect()),
        &o,
        &mut Silent,
        &AtomicBool::new(false),
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("dtype: \"bf16\""), "{e}");
}

/// Cancels the run once `at` updates are done.
struct CancelAt<'a> {
    at: u64,
    flag: &'a AtomicBool,
}

impl stilts_protocol::train::Progress for CancelAt<'_> {
    fn step(&mut self, done: u64, _loss: f64, _lr: f64) {
        if done >= self.at {
            self.flag.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// A run stopped and resumed from its checkpoint ends on the same bytes as
/// one run straight through: the Kahan compensation is saved and restored.
#[test]
fn a_resumed_kahan_run_ends_on_the_same_bytes() {
    let b = batches();
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts();
    o.max_steps = Some(8);
    o.adamw.bf16_update = Some(Bf16Update::Kahan);
    let straight = model(DType::BF16);
    let whole = train(&straight, &o);
    o.checkpoint_dir = Some(dir.path().to_path_buf());
    let resumed = model(DType::BF16);
    let flag = AtomicBool::new(false);
    let first = fine_tune(
        &resumed,
        &mut |_| Ok(b.iter().cloned().map(Into::into).collect()),
        &o,
        &mut CancelAt { at: 3, flag: &flag },
        &flag,
    )
    .unwrap_err();
    let stopped_at = match first {
        stilts_model::Error::Cancelled {
            step: Some(s),
            checkpoint: Some(_),
            ..
        } if s < 8 => s,
        other => panic!("{other:?}"),
    };
    let second = fine_tune(
        &resumed,
        &mut |_| Ok(b.iter().cloned().map(Into::into).collect()),
        &o,
        &mut Silent,
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(second.resumed_from, Some(stopped_at));
    assert_eq!(second.losses, whole.losses);
    assert_eq!(weights(&resumed), weights(&straight));
}
