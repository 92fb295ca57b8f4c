//! Parity with Hugging Face transformers (PyTorch) on the fixtures written by
//! `tests/fixtures/make_fixtures.py`: XLM-R, XLM-R XL and BERT, all heads,
//! padded inputs (BERT's: `[PAD]` = 0, positions from 0, pairs typed 0/1
//! by its tokenizer's template, layer_norm_eps 1e-3 from config.json). f32, dropout off: logits within 1e-5, loss within 1e-6,
//! every parameter's gradient within 1e-4 relative.

use crate::common;

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use common::{device_tol, devices, fixtures, max_abs_diff, rel_diff};
use stilts_model::{Inputs, LoadOptions, Model, Output, Target};

const CASES: &[&str] = &[
    "xlmr_seqcls",
    "xlmr_mc",
    "xlmr_qa",
    "xlmr_tokcls",
    "xlmr_mlm",
    "xlmr_xl_seqcls",
    "xlmr_xl_mc",
    "xlmr_xl_qa",
    "xlmr_xl_tokcls",
    "xlmr_xl_mlm",
    "bert_seqcls",
    "bert_mc",
    "bert_qa",
    "bert_tokcls",
    "bert_mlm",
];

struct Case {
    model: Model,
    io: HashMap<String, Tensor>,
    inputs: Inputs,
    target: Target,
}

fn load_case(name: &str, device: &Device, dtype: DType) -> Case {
    let dir = fixtures().join("parity").join(name);
    // A `...ForMaskedLM` checkpoint is a pretrained model: ask for its head.
    let head = name
        .ends_with("_mlm")
        .then_some(stilts_model::HeadKind::MaskedLm);
    let opts = LoadOptions {
        device: device.clone(),
        dtype,
        head,
        ..Default::default()
    };
    let model = Model::from_dir(&dir, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        model.report.initialized.is_empty(),
        "{name}: missing weights {:?}",
        model.report.initialized
    );
    assert!(
        model.report.unexpected.is_empty(),
        "{name}: unexpected weights {:?}",
        model.report.unexpected
    );
    let io = candle_core::safetensors::load(dir.join("io.safetensors"), &Device::Cpu).unwrap();
    let ids = &io["input_ids"];
    let mask = &io["attention_mask"];
    let (rows, choices, t) = match ids.dims() {
        [b, c, t] => (b * c, *c, *t),
        [b, t] => (*b, 1, *t),
        d => panic!("unexpected input shape {d:?}"),
    };
    let flat = |x: &Tensor| {
        x.flatten_all()
            .unwrap()
            .to_dtype(DType::U32)
            .unwrap()
            .to_vec1::<u32>()
            .unwrap()
    };
    // The padding id is config.json's (`[PAD]` = 0 for BERT, `<pad>` = 1 for XLM-R).
    let pad = model.config().pad_token_id;
    if name.starts_with("bert_") {
        assert_eq!(pad, 0, "{name}: pad_token_id");
        assert_eq!(
            model.config().segment_separator,
            Some(3),
            "{name}: the tokenizer's pair template types the second segment after [SEP] = 3"
        );
        assert!(io.contains_key("token_type_ids"));
    }
    let inputs = Inputs::from_flat(flat(ids), flat(mask), rows, t, pad, device)
        .unwrap()
        .with_choices(choices);
    let dev = |k: &str| io[k].to_device(device).unwrap();
    let target = if io.contains_key("start_positions") {
        Target::Span {
            start: dev("start_positions"),
            end: dev("end_positions"),
        }
    } else if io["labels"].rank() == 2 {
        Target::Tags(dev("labels"))
    } else {
        Target::Class(dev("labels"))
    };
    Case {
        model,
        io,
        inputs,
        target,
    }
}

fn outputs(out: &Output) -> Vec<(&'static str, Tensor)> {
    match out {
        Output::Logits(l) => vec![("logits", l.clone())],
        Output::Span { start, end } => {
            vec![("start_logits", start.clone()), ("end_logits", end.clone())]
        }
    }
}

#[test]
fn forward_loss_and_gradients_match_transformers() {
    for device in devices() {
        let tol = device_tol(&device);
        for name in CASES {
            let case = load_case(name, &device, DType::F32);
            let hidden = case.model.encoder.forward(&case.inputs, None).unwrap();
            let d = max_abs_diff(&hidden, &case.io["last_hidden_state"]);
            assert!(d < 1e-5 * tol, "{name}: last_hidden_state differs by {d:e}");

            let out = case.model.forward(&case.inputs, None).unwrap();
            for (key, got) in outputs(&out) {
                let d = max_abs_diff(&got, &case.io[key]);
                assert!(d < 1e-5 * tol, "{name}: {key} differs by {d:e}");
            }
            // The evaluation view takes the fused no-graph kernels (one-pass
            // attention, residual + LayerNorm, linear + GELU): same numbers.
            let view = case.model.clone().for_inference().unwrap();
            let hidden = view.encoder.forward(&case.inputs, None).unwrap();
            let d = max_abs_diff(&hidden, &case.io["last_hidden_state"]);
            assert!(
                d < 1e-5 * tol,
                "{name}: inference view: last_hidden_state differs by {d:e}"
            );
            for (key, got) in outputs(&view.forward(&case.inputs, None).unwrap()) {
                let d = max_abs_diff(&got, &case.io[key]);
                assert!(
                    d < 1e-5 * tol,
                    "{name}: inference view: {key} differs by {d:e}"
                );
            }

            let loss = case.model.loss(&out, &case.target).unwrap();
            let d = max_abs_diff(&loss.reshape(1).unwrap(), &case.io["loss"]);
            assert!(d < 1e-6 * tol, "{name}: loss differs by {d:e}");

            let grads = loss.backward().unwrap();
            let params = case.model.params();
            let mut checked = 0;
            for (pname, var) in params.iter() {
                // transformers lists a tied parameter once, under the MLM
                // decoder's name.
                let want = case
                    .io
                    .get(&format!("grad.{pname}"))
                    .or_else(|| {
                        (pname == "roberta.embeddings.word_embeddings.weight")
                            .then(|| case.io.get("grad.lm_head.decoder.weight"))
                            .flatten()
                            .or_else(|| {
                                (pname == "bert.embeddings.word_embeddings.weight")
                                    .then(|| case.io.get("grad.cls.predictions.decoder.weight"))
                                    .flatten()
                            })
                    })
                    .unwrap_or_else(|| panic!("{name}: no reference gradient for {pname}"));
                let got = grads
                    .get(var.as_tensor())
                    .unwrap_or_else(|| panic!("{name}: no gradient reached {pname}"));
                // Gradients that are zero in exact arithmetic (key biases,
                // a bias before a shift-invariant softmax) are f32 noise in
                // both: compare those absolutely.
                let r = rel_diff(got, want, 1e-3);
                assert!(
                    r < 1e-4 * tol,
                    "{name}: gradient of {pname} differs (relative {r:e})"
                );
                checked += 1;
            }
            assert_eq!(
                checked,
                case.io.keys().filter(|k| k.starts_with("grad.")).count(),
                "{name}: parameter sets differ"
            );
        }
    }
}

/// Mixed precision (f32 weights, bf16 matmuls, as PyTorch autocast and our
/// training use) stays within 2e-2 of f32; so does a model stored in bf16,
/// within a looser bound (every op rounds to 8 mantissa bits).
#[test]
fn bf16_forward_is_close_to_f32() {
    for device in devices() {
        for name in CASES {
            let case = load_case(name, &device, DType::F32);
            let reference = outputs(&case.model.forward(&case.inputs, None).unwrap());
            let mixed = case.model.clone().with_compute_dtype(DType::BF16);
            let stored = load_case(name, &device, DType::BF16);
            let got_mixed = outputs(&mixed.forward(&case.inputs, None).unwrap());
            let got_stored = outputs(&stored.model.forward(&stored.inputs, None).unwrap());
            for (((key, x), (_, y)), (_, z)) in reference.iter().zip(&got_mixed).zip(&got_stored) {
                let r = rel_diff(y, x, 1e-6);
                eprintln!(
                    "{name} {key}: mixed {r:.2e}, bf16 {:.2e}",
                    rel_diff(z, x, 1e-6)
                );
                assert!(
                    r > 0.0,
                    "{name}: bf16 compute changed nothing: is it really used?"
                );
                assert!(
                    r < 2e-2,
                    "{name}: mixed-precision {key} is {r:e} away from f32 (relative)"
                );
                assert_eq!(z.dtype(), DType::BF16);
                let r = rel_diff(z, x, 1e-6);
                assert!(
                    r < 6e-2,
                    "{name}: bf16 {key} is {r:e} away from f32 (relative)"
                );
            }
        }
    }
}
