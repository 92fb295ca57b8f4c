//! Backward flows through every operation, and is right: finite differences
//! in f64 against our analytic gradients (candle's fused softmax and
//! LayerNorm have none, so ours must be proven).

use crate::common;

use candle_core::{DType, Device, Tensor, Var, D};
use stilts_model::ops::{
    attention_bias, dropout, gelu_erf, layer_norm, masked_softmax, softmax_last_dim, DropoutRng,
};
use stilts_model::{HeadKind, Inputs, Model, PositionRule, Target, Variant, XlmrConfig};

fn randn(shape: &[usize], seed: u64) -> Tensor {
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|_| Normal::new(0.0, 1.0).unwrap().sample(&mut rng))
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Central finite difference of `f` along a random direction, against the
/// gradient's projection on that direction.
/// `frozen_rows(i)` names a row of variable `i` that is not trained (the
/// embedding padding row): the direction leaves it alone.
fn check_direction(vars: &[&Var], f: &dyn Fn() -> Tensor, seed: u64) -> (f64, f64) {
    check_direction_frozen(vars, f, seed, &|_| None)
}

fn check_direction_frozen(
    vars: &[&Var],
    f: &dyn Fn() -> Tensor,
    seed: u64,
    frozen_row: &dyn Fn(usize) -> Option<usize>,
) -> (f64, f64) {
    let loss = f();
    let grads = loss.backward().unwrap();
    let eps = 1e-5;
    let dirs: Vec<Tensor> = vars
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let d = randn(v.dims(), seed + i as u64);
            match frozen_row(i) {
                Some(r) => {
                    let rows = v.dims()[0];
                    let keep: Vec<f64> =
                        (0..rows).map(|k| if k == r { 0.0 } else { 1.0 }).collect();
                    d.broadcast_mul(&Tensor::from_vec(keep, (rows, 1), &Device::Cpu).unwrap())
                        .unwrap()
                }
                None => d,
            }
        })
        .collect();
    let analytic: f64 = vars
        .iter()
        .zip(&dirs)
        .map(|(v, d)| {
            let g = grads
                .get(v.as_tensor())
                .expect("a parameter got no gradient");
            (g * d)
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        })
        .sum();
    let orig: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().copy().unwrap()).collect();
    let shift = |s: f64| {
        for ((v, o), d) in vars.iter().zip(&orig).zip(&dirs) {
            v.set(&(o + (d * s).unwrap()).unwrap()).unwrap();
        }
        f().to_scalar::<f64>().unwrap()
    };
    let numeric = (shift(eps) - shift(-eps)) / (2.0 * eps);
    for (v, o) in vars.iter().zip(&orig) {
        v.set(o).unwrap();
    }
    (analytic, numeric)
}

fn assert_close(name: &str, (a, n): (f64, f64), tol: f64) {
    let err = (a - n).abs() / n.abs().max(1e-3);
    assert!(
        err < tol,
        "{name}: analytic {a} vs numeric {n} (relative {err:e})"
    );
}

#[test]
fn softmax_forward_matches_candle_and_backward_matches_finite_differences() {
    let x = Var::from_tensor(&randn(&[3, 4, 7], 1)).unwrap();
    let ours = softmax_last_dim(x.as_tensor()).unwrap();
    let reference = candle_nn::ops::softmax(x.as_tensor(), D::Minus1).unwrap();
    assert!(common::max_abs_diff(&ours, &reference) < 1e-12);
    let w = randn(&[3, 4, 7], 2);
    let f = || {
        (softmax_last_dim(x.as_tensor()).unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    assert_close("softmax", check_direction(&[&x], &f, 10), 1e-6);
    // f32 path too (the one training uses).
    let x32 = x.as_tensor().to_dtype(DType::F32).unwrap();
    let ours32 = softmax_last_dim(&x32).unwrap();
    assert!(common::max_abs_diff(&ours32, &reference) < 1e-6);
}

#[test]
fn masked_softmax_matches_the_composed_ops_and_backward_matches_finite_differences() {
    // [B=2, heads=3, Tq=4, T=5]; the second example masks its last two keys.
    let x = Var::from_tensor(&randn(&[2, 3, 4, 5], 21)).unwrap();
    let mask = Tensor::new(&[[1u32, 1, 1, 1, 1], [1, 1, 1, 0, 0]], &Device::Cpu).unwrap();
    let bias = attention_bias(&mask, DType::F64).unwrap();
    let scale = 0.37;
    let ours = masked_softmax(x.as_tensor(), &bias, scale).unwrap();
    let composed = candle_nn::ops::softmax(
        &(x.as_tensor() * scale)
            .unwrap()
            .broadcast_add(&bias)
            .unwrap(),
        D::Minus1,
    )
    .unwrap();
    assert!(common::max_abs_diff(&ours, &composed) < 1e-12);
    // Masked keys get exactly zero.
    let masked = ours.narrow(0, 1, 1).unwrap().narrow(3, 3, 2).unwrap();
    assert_eq!(
        common::values(&masked)
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs())),
        0.0
    );
    let w = randn(&[2, 3, 4, 5], 22);
    let f = || {
        (masked_softmax(x.as_tensor(), &bias, scale).unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    assert_close("masked softmax", check_direction(&[&x], &f, 23), 1e-6);
    // The f32 path (what evaluation and training use) against f64.
    let x32 = x.as_tensor().to_dtype(DType::F32).unwrap();
    let b32 = attention_bias(&mask, DType::F32).unwrap();
    let ours32 = masked_softmax(&x32, &b32, scale).unwrap();
    assert!(common::max_abs_diff(&ours32, &composed) < 1e-6);
}

#[test]
fn gelu_matches_candle_and_backward_matches_finite_differences() {
    let x = Var::from_tensor(&(randn(&[4, 50], 31) * 3.0).unwrap()).unwrap();
    let reference = x.as_tensor().gelu_erf().unwrap();
    assert!(common::max_abs_diff(&gelu_erf(x.as_tensor()).unwrap(), &reference) < 1e-12);
    let x32 = x.as_tensor().to_dtype(DType::F32).unwrap();
    assert!(common::max_abs_diff(&gelu_erf(&x32).unwrap(), &reference) < 1e-6);
    let w = randn(&[4, 50], 32);
    let f = || {
        (gelu_erf(x.as_tensor()).unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    assert_close("gelu", check_direction(&[&x], &f, 33), 1e-6);
    // The f32 backward against candle's composed one.
    let v32 = Var::from_tensor(&x32).unwrap();
    let w32 = w.to_dtype(DType::F32).unwrap();
    let ours = (gelu_erf(v32.as_tensor()).unwrap() * &w32)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let theirs = (v32.as_tensor().gelu_erf().unwrap() * &w32)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let d = common::max_abs_diff(
        ours.get(v32.as_tensor()).unwrap(),
        theirs.get(v32.as_tensor()).unwrap(),
    );
    assert!(d < 1e-5, "f32 gelu backward differs by {d:e}");
}

#[test]
fn cpu_linear_and_batched_matmul_match_candle_and_backward_matches_finite_differences() {
    use stilts_model::cpu_matmul::{batched_matmul, linear};
    let x = Var::from_tensor(&randn(&[5, 4], 41)).unwrap();
    let w = Var::from_tensor(&randn(&[3, 4], 42)).unwrap();
    let b = Var::from_tensor(&randn(&[3], 43)).unwrap();
    let ours = linear(x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap();
    let reference = x
        .as_tensor()
        .matmul(&w.as_tensor().t().unwrap())
        .unwrap()
        .broadcast_add(b.as_tensor())
        .unwrap();
    assert!(common::max_abs_diff(&ours, &reference) < 1e-12);
    let proj = randn(&[5, 3], 44);
    let f = || {
        (linear(x.as_tensor(), w.as_tensor(), b.as_tensor()).unwrap() * &proj)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    assert_close("linear", check_direction(&[&x, &w, &b], &f, 45), 1e-6);

    // Strided views, as attention uses them: [B, T, heads, hd] -> [B, heads, T, hd].
    let qv = Var::from_tensor(&randn(&[2, 5, 3, 4], 46)).unwrap();
    let kv = Var::from_tensor(&randn(&[2, 6, 3, 4], 47)).unwrap();
    let q = || qv.as_tensor().transpose(1, 2).unwrap();
    let kt = || {
        kv.as_tensor()
            .transpose(1, 2)
            .unwrap()
            .transpose(2, 3)
            .unwrap()
    };
    let ours = batched_matmul(&q(), &kt()).unwrap();
    let reference = q()
        .contiguous()
        .unwrap()
        .matmul(&kt().contiguous().unwrap())
        .unwrap();
    assert_eq!(ours.dims(), &[2, 3, 5, 6]);
    assert!(common::max_abs_diff(&ours, &reference) < 1e-12);
    let proj = randn(&[2, 3, 5, 6], 48);
    let f = || {
        (batched_matmul(&q(), &kt()).unwrap() * &proj)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    assert_close("batched matmul", check_direction(&[&qv, &kv], &f, 49), 1e-6);
    // f32, the path training and evaluation take.
    let ours32 = batched_matmul(
        &q().to_dtype(DType::F32).unwrap(),
        &kt().to_dtype(DType::F32).unwrap(),
    )
    .unwrap();
    assert!(common::max_abs_diff(&ours32, &reference) < 1e-5);
}

#[test]
fn fused_evaluation_attention_matches_the_general_path_and_stays_out_of_training() {
    use stilts_model::cpu_matmul::attention_inference;
    // [B=2, T=5, heads=3, hd=4] projections viewed as [B, heads, T, hd].
    let view = |seed| {
        randn(&[2, 5, 3, 4], seed)
            .to_dtype(DType::F32)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
    };
    let (q, k, v) = (view(51), view(52), view(53));
    let mask = Tensor::new(&[[1u32, 1, 1, 1, 1], [1, 1, 1, 0, 0]], &Device::Cpu).unwrap();
    let bias = attention_bias(&mask, DType::F32).unwrap();
    let fused = attention_inference(&q, &k, &v, &bias, 0.5)
        .unwrap()
        .expect("f32 CPU tensors without a graph take the fused path");
    let probs = masked_softmax(
        &q.contiguous()
            .unwrap()
            .matmul(&k.t().unwrap().contiguous().unwrap())
            .unwrap(),
        &bias,
        0.5,
    )
    .unwrap();
    let general = probs
        .matmul(&v.contiguous().unwrap())
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .reshape((2, 5, 12))
        .unwrap();
    assert!(common::max_abs_diff(&fused, &general) < 1e-6);
    // A tensor that records a graph (training) must take the general path.
    let tracked = Var::from_tensor(&q).unwrap();
    assert!(attention_inference(tracked.as_tensor(), &k, &v, &bias, 0.5)
        .unwrap()
        .is_none());
}

#[test]
fn layer_norm_forward_matches_candle_and_backward_matches_finite_differences() {
    let x = Var::from_tensor(&randn(&[2, 5, 6], 3)).unwrap();
    let w = Var::from_tensor(&randn(&[6], 4)).unwrap();
    let b = Var::from_tensor(&randn(&[6], 5)).unwrap();
    let ours = layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5).unwrap();
    let reference =
        candle_nn::ops::layer_norm_slow(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5).unwrap();
    assert!(common::max_abs_diff(&ours, &reference) < 1e-10);
    let proj = randn(&[2, 5, 6], 6);
    let f = || {
        (layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5).unwrap() * &proj)
            .unwrap()
            .sum_all()
            .unwrap()
    };
    for (i, vars) in [vec![&x], vec![&w], vec![&b], vec![&x, &w, &b]]
        .iter()
        .enumerate()
    {
        assert_close(
            &format!("layer_norm #{i}"),
            check_direction(vars, &f, 20 + i as u64 * 7),
            1e-6,
        );
    }
}

/// The f32 CPU backward kernels (LayerNorm, softmax, masked softmax, the
/// bias sum of a linear layer) give the gradients of the f64 path (proven
/// by finite differences above) to f32 rounding, on shapes whose row count
/// is not a multiple of the kernels' block; and the same bytes with one
/// thread as with several.
#[test]
fn fused_f32_backward_kernels_match_the_f64_gradients_on_any_thread_count() {
    use stilts_model::cpu_matmul::linear;
    let grads = |dtype: DType| -> Vec<Vec<f32>> {
        let cast = |t: Tensor| Var::from_tensor(&t.to_dtype(dtype).unwrap()).unwrap();
        let x = cast(randn(&[3, 67, 24], 11));
        let w = cast(randn(&[24], 12));
        let b = cast(randn(&[24], 13));
        let lw = cast(randn(&[10, 24], 14));
        let lb = cast(randn(&[10], 15));
        let s = cast(randn(&[2, 3, 5, 7], 16));
        let mask = attention_bias(
            &Tensor::new(
                &[[1u32, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]],
                &Device::Cpu,
            )
            .unwrap(),
            dtype,
        )
        .unwrap();
        let p1 = randn(&[3, 67, 10], 17).to_dtype(dtype).unwrap();
        let p2 = randn(&[2, 3, 5, 7], 18).to_dtype(dtype).unwrap();
        let h = layer_norm(x.as_tensor(), w.as_tensor(), b.as_tensor(), 1e-5).unwrap();
        let y = linear(
            &h.reshape((201, 24)).unwrap(),
            lw.as_tensor(),
            lb.as_tensor(),
        )
        .unwrap()
        .reshape((3, 67, 10))
        .unwrap();
        let a = masked_softmax(s.as_tensor(), &mask, 0.3).unwrap();
        let c = softmax_last_dim(s.as_tensor()).unwrap();
        let loss = ((y * &p1).unwrap().sum_all().unwrap()
            + (a * &p2).unwrap().sum_all().unwrap()
            + (c * &p2).unwrap().sqr().unwrap().sum_all().unwrap())
        .unwrap();
        let g = loss.backward().unwrap();
        [&x, &w, &b, &lw, &lb, &s]
            .iter()
            .map(|v| {
                g.get(v.as_tensor())
                    .unwrap()
                    .to_dtype(DType::F32)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            })
            .collect()
    };
    let reference = grads(DType::F64);
    let ours = grads(DType::F32);
    for (i, (a, r)) in ours.iter().zip(&reference).enumerate() {
        let scale = r.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        let err = a
            .iter()
            .zip(r)
            .fold(0.0f32, |m, (a, r)| m.max((a - r).abs()));
        assert!(
            err / scale < 1e-5,
            "gradient {i}: max error {err} (scale {scale})"
        );
    }
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| grads(DType::F32));
    let three = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap()
        .install(|| grads(DType::F32));
    assert!(
        one_thread == ours && three == ours,
        "the bytes depend on the thread count"
    );
}

fn tiny_config(variant: Variant) -> XlmrConfig {
    XlmrConfig::new(variant, 40, 16, 2, 4, 24, 20).unwrap()
}

fn batch() -> Inputs {
    batch_for(&tiny_config(Variant::PostLayerNorm))
}

/// The test rows padded with `config`'s pad id; for BERT (`[PAD]` = 0) the
/// first token is 3 rather than 0, so no real token is the padding id.
fn batch_for(config: &XlmrConfig) -> Inputs {
    let first = if config.variant == Variant::Bert {
        3
    } else {
        0
    };
    let rows = vec![
        vec![first, 5, 9, 12, 2, 2, 7, 8, 2],
        vec![first, 11, 13, 2, 2, 6, 2],
        vec![first, 30, 2],
    ];
    Inputs::pad(&rows, config.pad_token_id, &Device::Cpu).unwrap()
}

/// Every parameter of every head on every variant (XLM-R, XLM-R XL, BERT
/// with two token types) receives a gradient, and the whole model's gradient
/// agrees with finite differences (f64).
#[test]
fn whole_model_gradients_match_finite_differences() {
    let heads = [
        (
            HeadKind::Classification {
                labels: vec!["a".into(), "b".into(), "c".into()],
            },
            1usize,
        ),
        (HeadKind::MultipleChoice, 3),
        (HeadKind::SpanQa, 1),
        (
            HeadKind::Tagging {
                labels: vec!["x".into(), "y".into()],
            },
            1,
        ),
        (HeadKind::MaskedLm, 1),
    ];
    for variant in [Variant::PostLayerNorm, Variant::PreLayerNorm, Variant::Bert] {
        let mut config = tiny_config(variant);
        if variant == Variant::Bert {
            // Token type 1 after the first id 2, as BERT's tokenizer types pairs.
            config.segment_separator = Some(2);
        }
        for (k, (head, choices)) in heads.iter().enumerate() {
            let model = Model::random(
                &config,
                head.clone(),
                11 + k as u64,
                &Device::Cpu,
                DType::F64,
            )
            .unwrap();
            let inputs = batch_for(&config).with_choices(*choices);
            let dev = Device::Cpu;
            let target = match head {
                HeadKind::Classification { .. } => {
                    Target::Class(Tensor::new(&[0i64, 2, 1], &dev).unwrap())
                }
                HeadKind::MultipleChoice => Target::Class(Tensor::new(&[1i64], &dev).unwrap()),
                HeadKind::SpanQa => Target::Span {
                    start: Tensor::new(&[1i64, 2, 1], &dev).unwrap(),
                    end: Tensor::new(&[3i64, 5, 1], &dev).unwrap(),
                },
                HeadKind::Tagging { .. } => Target::Tags(
                    Tensor::new(
                        &[
                            [-100i64, 0, 1, 1, -100, -100, 0, 1, -100],
                            [-100, 1, 0, -100, -100, 1, -100, -100, -100],
                            [-100, 0, -100, -100, -100, -100, -100, -100, -100],
                        ],
                        &dev,
                    )
                    .unwrap(),
                ),
                HeadKind::MaskedLm => Target::Tags(
                    Tensor::new(
                        &[
                            [-100i64, 5, -100, 12, -100, -100, 7, -100, -100],
                            [-100, -100, 13, -100, -100, 6, -100, -100, -100],
                            [-100, 30, -100, -100, -100, -100, -100, -100, -100],
                        ],
                        &dev,
                    )
                    .unwrap(),
                ),
            };
            let f = || {
                let out = model.forward(&inputs, None).unwrap();
                model.loss(&out, &target).unwrap()
            };
            let params = model.params();
            let grads = f().backward().unwrap();
            let sq_norm = |g: &Tensor| {
                g.sqr()
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap()
            };
            for (name, var) in params.iter() {
                let g = grads.get(var.as_tensor()).unwrap_or_else(|| {
                    panic!("{variant:?}/{}: no gradient reached {name}", head.name())
                });
                let norm = sq_norm(g);
                // The key bias is the one parameter whose gradient is zero in
                // exact arithmetic (softmax ignores a per-row shift).
                if !name.ends_with("key.bias")
                    && !(matches!(head, HeadKind::MultipleChoice) && name == "classifier.bias")
                {
                    assert!(
                        norm > 0.0,
                        "{variant:?}/{}: zero gradient for {name}",
                        head.name()
                    );
                }
            }
            if variant == Variant::Bert {
                // The second segment's type row is used, so it learns.
                let (_, tt) = params
                    .iter()
                    .find(|(n, _)| n.ends_with("token_type_embeddings.weight"))
                    .unwrap();
                let n1 = sq_norm(&grads.get(tt.as_tensor()).unwrap().get(1).unwrap());
                assert!(
                    n1 > 0.0,
                    "Bert/{}: token type 1 got no gradient",
                    head.name()
                );
            }
            let vars: Vec<&Var> = params.iter().map(|(_, v)| v).collect();
            let names: Vec<&String> = params.names().collect();
            // The padding rows of the word and (RoBERTa) position tables are
            // looked up but never trained (PyTorch's padding_idx).
            let pad = config.pad_token_id as usize;
            let roberta_positions = config.position_rule() == PositionRule::AfterPad;
            let frozen = |i: usize| {
                (names[i].ends_with("word_embeddings.weight")
                    || (roberta_positions && names[i].ends_with("position_embeddings.weight")))
                .then_some(pad)
            };
            // candle's f64 erf (exact GELU) is a polynomial fit: its finite
            // differences wobble around 1e-5, far below any missing term.
            assert_close(
                &format!("{variant:?}/{}", head.name()),
                check_direction_frozen(&vars, &f, 100 + k as u64, &frozen),
                1e-4,
            );
        }
    }
}

#[test]
fn dropout_is_on_in_training_off_in_evaluation_and_seeded() {
    let model = Model::random(
        &tiny_config(Variant::PostLayerNorm),
        HeadKind::SpanQa,
        1,
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    let inputs = batch();
    let eval = |m: &Model| match m.forward(&inputs, None).unwrap() {
        stilts_model::Output::Span { start, .. } => start,
        _ => unreachable!(),
    };
    let train = |seed: u64| {
        let mut rng = DropoutRng::new(seed);
        match model.forward(&inputs, Some(&mut rng)).unwrap() {
            stilts_model::Output::Span { start, .. } => start,
            _ => unreachable!(),
        }
    };
    assert_eq!(
        common::max_abs_diff(&eval(&model), &eval(&model)),
        0.0,
        "evaluation must be deterministic"
    );
    assert!(
        common::max_abs_diff(&train(1), &eval(&model)) > 1e-4,
        "dropout had no effect in training"
    );
    assert_eq!(
        common::max_abs_diff(&train(1), &train(1)),
        0.0,
        "same seed, different dropout"
    );
    assert!(
        common::max_abs_diff(&train(1), &train(2)) > 1e-4,
        "different seeds, same dropout"
    );

    // The mask keeps about 1-p of the elements and rescales them.
    let ones = Tensor::ones((200, 100), DType::F32, &Device::Cpu).unwrap();
    let mut rng = DropoutRng::new(3);
    let y = dropout(&ones, 0.1, Some(&mut rng))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let kept = y.iter().filter(|v| **v > 0.0).count() as f64 / y.len() as f64;
    assert!((kept - 0.9).abs() < 0.01, "kept fraction {kept}");
    assert!(y.iter().all(|v| *v == 0.0 || (*v - 1.0 / 0.9).abs() < 1e-6));
    assert_eq!(
        dropout(&ones, 0.1, None)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        20000.0
    );
}

/// The inference view shares the weights (no copy), gives the same logits,
/// and records no graph.
#[test]
fn inference_view_shares_weights_and_keeps_no_graph() {
    let model = Model::random(
        &tiny_config(Variant::PreLayerNorm),
        HeadKind::Classification {
            labels: vec!["a".into(), "b".into()],
        },
        2,
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    let view = model.for_inference().unwrap();
    assert!(
        view.params().is_empty(),
        "an inference view must have no trainable parameters"
    );
    let inputs = batch();
    let a = model
        .forward(&inputs, None)
        .unwrap()
        .logits()
        .unwrap()
        .clone();
    let b = view
        .forward(&inputs, None)
        .unwrap()
        .logits()
        .unwrap()
        .clone();
    // The view's last layer computes the first token's row alone (by hand,
    // `layer_cpu`), the model's every row through autograd ops: the same
    // values to f32 rounding.
    let d = common::max_abs_diff(&a, &b);
    assert!(
        d <= 1e-5,
        "the view's logits differ from the model's by {d:e}"
    );
    // Backward from the logits reaches nothing but the logits themselves.
    assert!(
        b.backward().is_ok_and(|g| g.get_ids().count() <= 1),
        "no graph should reach any weight"
    );
    // Shared storage: updating the model's weights shows in the view.
    let (_, bias) = model
        .params()
        .iter()
        .find(|(n, _)| n.as_str() == "classifier.out_proj.bias")
        .map(|(n, v)| (n.clone(), v.clone()))
        .unwrap();
    bias.set(&(bias.as_tensor() + 1.0).unwrap()).unwrap();
    let c = view
        .forward(&inputs, None)
        .unwrap()
        .logits()
        .unwrap()
        .clone();
    assert!((common::max_abs_diff(&c, &b) - 1.0).abs() < 1e-5);
}

/// A BERT classifier trains: a few AdamW steps on one batch (dropout on,
/// two token types) bring its loss well down, and the trained weights are
/// what it saves and loads back.
#[test]
fn bert_classifier_trains_on_a_batch() {
    use candle_nn::Optimizer;
    let mut config = tiny_config(Variant::Bert);
    config.segment_separator = Some(2);
    let labels = vec!["a".into(), "b".into(), "c".into()];
    let model = Model::random(
        &config,
        HeadKind::Classification { labels },
        7,
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    let inputs = batch_for(&config);
    let target = Target::Class(Tensor::new(&[0i64, 2, 1], &Device::Cpu).unwrap());
    let vars: Vec<Var> = model.params().iter().map(|(_, v)| v.clone()).collect();
    let mut opt = candle_nn::AdamW::new(
        vars,
        candle_nn::ParamsAdamW {
            lr: 1e-2,
            ..Default::default()
        },
    )
    .unwrap();
    let mut rng = stilts_model::DropoutRng::new(1);
    let eval_loss = |m: &Model| {
        let out = m.forward(&inputs, None).unwrap();
        m.loss(&out, &target).unwrap().to_scalar::<f32>().unwrap()
    };
    let before = eval_loss(&model);
    for _ in 0..40 {
        let loss = model.train_loss(&inputs, &target, Some(&mut rng)).unwrap();
        let grads = loss.backward().unwrap();
        opt.step(&grads).unwrap();
    }
    let after = eval_loss(&model);
    assert!(after < before * 0.5, "loss {before} -> {after}");
    let tmp = tempfile::tempdir().unwrap();
    model.save(tmp.path()).unwrap();
    let mut loaded = Model::from_dir(tmp.path(), &Default::default()).unwrap();
    // No tokenizer was saved, so nothing says where the second segment
    // starts: the segment rule comes from tokenizer.json, not config.json.
    assert_eq!(loaded.config().segment_separator, None);
    loaded.encoder.config.segment_separator = Some(2);
    assert!((eval_loss(&loaded) - after).abs() < 1e-6);
}
