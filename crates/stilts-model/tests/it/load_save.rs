//! Checkpoints in Hugging Face layout: our save/load round trip, transformers
//! loading what we save, the STILTs head swap, the checkpoint forms found in
//! the wild (pretrained with a new head, bare `XLMRobertaModel` / `BertModel`
//! names, BERT's `position_ids` buffer, sharded safetensors,
//! pytorch_model.bin, the HF cache), the padding id of config.json against
//! the tokenizer's, and the messages for broken input.

use crate::common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use candle_core::{DType, Device, Tensor};
use common::{max_abs_diff, nli_labels, python_or_skip, sample_texts, write_tiny};
use stilts_model::load::cached_snapshot;
use stilts_model::Error;
use stilts_model::{HeadKind, Inputs, LoadOptions, Model, Output, Tokenizer, Variant, XlmrConfig};

const PAIRS: &[(&str, &str)] = &[
    ("the cat sat on the mat", "a cat is sitting"),
    ("people walk to the market every morning", "nobody walks"),
    ("le chien mange une pomme", "the dog eats"),
    (
        "the river flows into the sea",
        "the weather is cold and rainy today and the children are singing",
    ),
];

fn encode_pairs(tok: &Tokenizer) -> Vec<Vec<u32>> {
    PAIRS
        .iter()
        .map(|(a, b)| tok.encode(a, Some(b), 64).unwrap())
        .collect()
}

fn logits(model: &Model, rows: &[Vec<u32>]) -> Tensor {
    let inputs = Inputs::pad(rows, 1, &Device::Cpu).unwrap();
    match model.forward(&inputs, None).unwrap() {
        Output::Logits(l) => l,
        Output::Span { .. } => panic!("expected logits"),
    }
}

fn load(dir: &Path, opts: &LoadOptions) -> Model {
    Model::from_dir(dir, opts).unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()))
}

fn load_err(dir: &Path, opts: &LoadOptions) -> Error {
    match Model::from_dir(dir, opts) {
        Ok(_) => panic!("{} loaded, but it should not", dir.display()),
        Err(e) => e,
    }
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

fn read_st(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn write_st(tensors: &HashMap<String, Tensor>, path: &Path) {
    candle_core::safetensors::save(tensors, path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let path = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f(v.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

/// A tiny classifier saved in a fresh tempdir, with the logits of [`PAIRS`].
fn saved(variant: Variant) -> (tempfile::TempDir, Model, Vec<Vec<u32>>, Tensor) {
    let tmp = tempfile::tempdir().unwrap();
    let model = write_tiny(variant, tmp.path());
    let rows = encode_pairs(model.tokenizer.as_ref().unwrap());
    let want = logits(&model, &rows);
    (tmp, model, rows, want)
}

// ---------------------------------------------------------------- round trip

#[test]
fn save_then_load_gives_identical_model() {
    for variant in [Variant::PostLayerNorm, Variant::PreLayerNorm, Variant::Bert] {
        let (tmp, model, rows, want) = saved(variant);
        for f in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
        ] {
            assert!(
                tmp.path().join(f).is_file(),
                "{variant:?}: save wrote no {f}"
            );
        }
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(tmp.path().join("config.json")).unwrap())
                .unwrap();
        let prefix = match variant {
            Variant::PostLayerNorm => "XLMRoberta",
            Variant::PreLayerNorm => "XLMRobertaXL",
            Variant::Bert => "Bert",
        };
        assert_eq!(
            config["architectures"],
            serde_json::json!([format!("{prefix}ForSequenceClassification")])
        );
        assert_eq!(
            config["id2label"],
            serde_json::json!({"0": "entailment", "1": "neutral", "2": "contradiction"})
        );

        let loaded = load(tmp.path(), &LoadOptions::default());
        assert!(
            loaded.report.initialized.is_empty(),
            "{variant:?}: initialised {:?}",
            loaded.report.initialized
        );
        assert!(
            loaded.report.unexpected.is_empty(),
            "{variant:?}: unexpected {:?}",
            loaded.report.unexpected
        );
        assert!(loaded.report.summary().is_empty());
        assert_eq!(loaded.config().variant, variant);
        assert_eq!(
            loaded.head.kind,
            HeadKind::Classification {
                labels: nli_labels()
            }
        );

        let (a, b) = (model.params().tensors(), loaded.params().tensors());
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "{variant:?}: parameter names differ"
        );
        for (name, t) in &a {
            assert_eq!(t.dims(), b[name].dims(), "{name}");
            assert!(
                bits(t) == bits(&b[name]),
                "{variant:?}: {name} changed in the round trip"
            );
        }

        let tok = loaded
            .tokenizer
            .as_ref()
            .expect("tokenizer.json not loaded");
        assert_eq!(
            encode_pairs(tok),
            rows,
            "{variant:?}: saved tokenizer encodes differently"
        );
        let got = logits(&loaded, &rows);
        assert_eq!(got.dims(), &[PAIRS.len(), 3]);
        assert_eq!(
            max_abs_diff(&got, &want),
            0.0,
            "{variant:?}: logits changed in the round trip"
        );
    }
}

// ------------------------------------------------- transformers loads our files

/// Runs hf_load_check.py on `dir` with `ids` ([B,T] or [B,C,T]), returns its JSON.
fn hf_check(
    python: &Path,
    dir: &Path,
    ids: serde_json::Value,
    mask: serde_json::Value,
) -> serde_json::Value {
    let inputs = dir.join("hf_inputs.json");
    std::fs::write(
        &inputs,
        serde_json::json!({"input_ids": ids, "attention_mask": mask}).to_string(),
    )
    .unwrap();
    let (stdout, stderr) = common::run_fixture_script(
        python,
        "hf_load_check.py",
        &[dir.as_os_str(), inputs.as_os_str()],
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "hf_load_check.py printed {stdout:?}\nstderr: {stderr}"
    );
    serde_json::from_str(lines[0]).unwrap()
}

fn flatten(v: &serde_json::Value, out: &mut Vec<f64>, dims: &mut Vec<usize>, depth: usize) {
    match v {
        serde_json::Value::Array(a) => {
            if dims.len() == depth {
                dims.push(a.len());
            }
            assert_eq!(dims[depth], a.len(), "ragged output");
            a.iter().for_each(|x| flatten(x, out, dims, depth + 1));
        }
        x => out.push(x.as_f64().expect("number")),
    }
}

fn assert_close(hf: &serde_json::Value, ours: &Tensor, what: &str) {
    let (mut vals, mut dims) = (vec![], vec![]);
    flatten(hf, &mut vals, &mut dims, 0);
    assert_eq!(dims, ours.dims(), "{what}: shapes differ");
    let theirs = Tensor::from_vec(vals, dims, &Device::Cpu).unwrap();
    let d = max_abs_diff(ours, &theirs);
    let scale = max_abs_diff(ours, &theirs.zeros_like().unwrap());
    eprintln!("{what}: max |stilts - transformers| = {d:.2e} (max |value| {scale:.2e})");
    assert!(
        scale > 1e-4,
        "{what}: outputs are all ~0, the comparison proves nothing"
    );
    assert!(
        d < 1e-3 * scale,
        "{what}: transformers and stilts differ by {d:e} on values of size {scale:e}"
    );
    assert!(d < 1e-5, "{what}: transformers and stilts differ by {d:e}");
}

fn padded(rows: &[Vec<u32>]) -> (Vec<Vec<u32>>, Vec<Vec<u32>>) {
    let t = rows.iter().map(Vec::len).max().unwrap();
    let ids = rows
        .iter()
        .map(|r| {
            r.iter()
                .copied()
                .chain(std::iter::repeat(1))
                .take(t)
                .collect()
        })
        .collect();
    let mask = rows
        .iter()
        .map(|r| (0..t).map(|i| (i < r.len()) as u32).collect())
        .collect();
    (ids, mask)
}

fn check_classifier_in_transformers(variant: Variant) {
    let Some(python) = python_or_skip(&format!("transformers_loads_saved_classifier({variant:?})"))
    else {
        return;
    };
    let (tmp, model, rows, want) = saved(variant);
    let (ids, mask) = padded(&rows);
    let out = hf_check(
        &python,
        tmp.path(),
        serde_json::json!(ids),
        serde_json::json!(mask),
    );
    assert_eq!(out["architecture"], serde_json::json!(model.architecture()));
    assert_eq!(out["num_labels"], serde_json::json!(3));
    assert_eq!(
        out["id2label"],
        serde_json::json!({"0": "entailment", "1": "neutral", "2": "contradiction"})
    );
    assert_close(
        &out["outputs"]["logits"],
        &want,
        &format!("{variant:?} classification logits"),
    );
}

#[test]
fn transformers_loads_saved_classifier_post_ln() {
    check_classifier_in_transformers(Variant::PostLayerNorm);
}

#[test]
fn transformers_loads_saved_classifier_pre_ln() {
    check_classifier_in_transformers(Variant::PreLayerNorm);
}

#[test]
fn transformers_loads_saved_classifier_bert() {
    check_classifier_in_transformers(Variant::Bert);
}

/// BERT's other heads in transformers' Bert* classes: multiple choice (the
/// pooler under `bert.pooler`), QA and token classification (no pooler).
#[test]
fn transformers_loads_saved_bert_heads() {
    let Some(python) = python_or_skip("transformers_loads_saved_bert_heads") else {
        return;
    };
    let tagging = HeadKind::Tagging {
        labels: vec!["O".into(), "B".into(), "I".into()],
    };
    for (k, head) in [HeadKind::MultipleChoice, HeadKind::SpanQa, tagging]
        .into_iter()
        .enumerate()
    {
        let (tmp, model) = random_saved(Variant::Bert, head.clone(), 20 + k as u64);
        let rows = encode_pairs(model.tokenizer.as_ref().unwrap());
        let choices = if head == HeadKind::MultipleChoice {
            2
        } else {
            1
        };
        let inputs = Inputs::pad(&rows, model.config().pad_token_id, &Device::Cpu)
            .unwrap()
            .with_choices(choices);
        let (ids, mask) = padded(&rows);
        let nest = |m: Vec<Vec<u32>>| {
            if choices == 1 {
                serde_json::json!(m)
            } else {
                serde_json::json!(m.chunks(choices).map(|c| c.to_vec()).collect::<Vec<_>>())
            }
        };
        let out = hf_check(&python, tmp.path(), nest(ids), nest(mask));
        assert_eq!(out["architecture"], serde_json::json!(model.architecture()));
        match model.forward(&inputs, None).unwrap() {
            Output::Logits(l) => assert_close(&out["outputs"]["logits"], &l, head.name()),
            Output::Span { start, end } => {
                assert_close(&out["outputs"]["start_logits"], &start, "bert start logits");
                assert_close(&out["outputs"]["end_logits"], &end, "bert end logits");
            }
        }
    }
}

/// A random model with `head` and a trained tokenizer, saved in a tempdir.
fn random_saved(variant: Variant, head: HeadKind, seed: u64) -> (tempfile::TempDir, Model) {
    let tok = Tokenizer::train_unigram(&sample_texts(), 300).unwrap();
    let config = XlmrConfig::new(variant, tok.vocab_size(), 32, 2, 4, 64, 130)
        .unwrap()
        .with_pad_token_id(tok.pad_id());
    let mut model = Model::random(&config, head, seed, &Device::Cpu, DType::F32).unwrap();
    model.tokenizer = Some(tok);
    let tmp = tempfile::tempdir().unwrap();
    model.save(tmp.path()).unwrap();
    (tmp, model)
}

#[test]
fn transformers_loads_saved_multiple_choice() {
    let Some(python) = python_or_skip("transformers_loads_saved_multiple_choice") else {
        return;
    };
    let (tmp, model) = random_saved(Variant::PostLayerNorm, HeadKind::MultipleChoice, 3);
    let tok = model.tokenizer.as_ref().unwrap();
    // 2 examples x 3 choices, example-major.
    let contexts = ["the cat sat on the mat", "they play football after school"];
    let choices = [
        "a dog runs",
        "the weather is cold",
        "no one came to the meeting",
    ];
    let rows: Vec<Vec<u32>> = contexts
        .iter()
        .flat_map(|c| choices.iter().map(move |x| (c, x)))
        .map(|(c, x)| tok.encode(c, Some(*x), 64).unwrap())
        .collect();
    let inputs = Inputs::pad(&rows, 1, &Device::Cpu).unwrap().with_choices(3);
    let ours = model
        .forward(&inputs, None)
        .unwrap()
        .logits()
        .unwrap()
        .clone();
    assert_eq!(ours.dims(), &[2, 3]);
    let (ids, mask) = padded(&rows);
    let nest =
        |m: Vec<Vec<u32>>| serde_json::json!(m.chunks(3).map(|c| c.to_vec()).collect::<Vec<_>>());
    let out = hf_check(&python, tmp.path(), nest(ids), nest(mask));
    assert_eq!(
        out["architecture"],
        serde_json::json!("XLMRobertaForMultipleChoice")
    );
    assert_close(&out["outputs"]["logits"], &ours, "multiple-choice logits");
}

#[test]
fn transformers_loads_saved_span_qa() {
    let Some(python) = python_or_skip("transformers_loads_saved_span_qa") else {
        return;
    };
    let (tmp, model) = random_saved(Variant::PreLayerNorm, HeadKind::SpanQa, 4);
    let rows = encode_pairs(model.tokenizer.as_ref().unwrap());
    let inputs = Inputs::pad(&rows, 1, &Device::Cpu).unwrap();
    let Output::Span { start, end } = model.forward(&inputs, None).unwrap() else {
        panic!("expected spans")
    };
    let (ids, mask) = padded(&rows);
    let out = hf_check(
        &python,
        tmp.path(),
        serde_json::json!(ids),
        serde_json::json!(mask),
    );
    assert_eq!(
        out["architecture"],
        serde_json::json!("XLMRobertaXLForQuestionAnswering")
    );
    assert_close(&out["outputs"]["start_logits"], &start, "start logits");
    assert_close(&out["outputs"]["end_logits"], &end, "end logits");
}

// ------------------------------------------------------------- STILTs transfer

#[test]
fn with_head_keeps_the_encoder_and_adds_a_fresh_head() {
    let (_tmp, model, rows, _) = saved(Variant::PostLayerNorm);
    let before: BTreeMap<String, Vec<u32>> = model
        .encoder
        .params()
        .tensors()
        .iter()
        .map(|(k, v)| (k.clone(), bits(v)))
        .collect();
    let target = Model::with_head(model.encoder.clone(), HeadKind::MultipleChoice, 7).unwrap();

    let after: BTreeMap<String, Vec<u32>> = target
        .encoder
        .params()
        .tensors()
        .iter()
        .map(|(k, v)| (k.clone(), bits(v)))
        .collect();
    assert!(before.len() > 10);
    assert!(before == after, "the encoder changed under the new head");
    // The source model is untouched too.
    let source_now: BTreeMap<String, Vec<u32>> = model
        .encoder
        .params()
        .tensors()
        .iter()
        .map(|(k, v)| (k.clone(), bits(v)))
        .collect();
    assert!(source_now == before);

    let head = target.head.params().tensors();
    let names: BTreeSet<&str> = head.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = [
        "classifier.bias",
        "classifier.weight",
        "roberta.pooler.dense.bias",
        "roberta.pooler.dense.weight",
    ]
    .into();
    assert_eq!(names, want);
    assert!(
        names.iter().all(|n| !before.contains_key(*n)),
        "head names clash with the encoder"
    );
    assert_eq!(
        target
            .report
            .initialized
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        want
    );
    assert_eq!(target.params().len(), before.len() + 4);

    let h = model.config().hidden_size;
    assert_eq!(head["roberta.pooler.dense.weight"].dims(), &[h, h]);
    assert_eq!(head["classifier.weight"].dims(), &[1, h]);
    for b in ["classifier.bias", "roberta.pooler.dense.bias"] {
        assert!(bits(&head[b]).iter().all(|&x| x == 0), "{b} is not zero");
    }
    let range = model.config().initializer_range;
    let stats = |t: &Tensor| {
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let std = (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
        (mean, std)
    };
    let (mean, std) = stats(&head["roberta.pooler.dense.weight"]);
    assert!(mean.abs() < 0.2 * range, "pooler mean {mean}");
    assert!(
        (std / range - 1.0).abs() < 0.1,
        "pooler std {std}, initializer_range {range}"
    );
    let (_, std) = stats(&head["classifier.weight"]);
    assert!(
        std > 0.5 * range && std < 1.5 * range,
        "classifier std {std}"
    );

    // Seeds: same seed, same head; another seed, another head.
    let same = Model::with_head(model.encoder.clone(), HeadKind::MultipleChoice, 7).unwrap();
    let other = Model::with_head(model.encoder.clone(), HeadKind::MultipleChoice, 8).unwrap();
    for name in ["roberta.pooler.dense.weight", "classifier.weight"] {
        assert!(
            bits(&head[name]) == bits(&same.head.params().tensors()[name]),
            "seed 7 twice gave different {name}"
        );
        assert!(
            bits(&head[name]) != bits(&other.head.params().tensors()[name]),
            "seeds 7 and 8 gave the same {name}"
        );
    }

    // The new model runs: 2 examples x 2 choices.
    let inputs = Inputs::pad(&rows, 1, &Device::Cpu).unwrap().with_choices(2);
    let scores = target
        .forward(&inputs, None)
        .unwrap()
        .logits()
        .unwrap()
        .clone();
    assert_eq!(scores.dims(), &[2, 2]);
}

// ------------------------------------------------ pretrained checkpoint, new head

#[test]
fn pretrained_checkpoint_takes_a_new_head() {
    let (tmp, model, rows, _) = saved(Variant::PostLayerNorm);
    let dir = tmp.path();
    edit_config(dir, |c| {
        c.insert(
            "architectures".into(),
            serde_json::json!(["XLMRobertaForMaskedLM"]),
        );
    });
    let st = dir.join("model.safetensors");
    let mut tensors = read_st(&st);
    let vocab = model.config().vocab_size;
    tensors.insert(
        "lm_head.bias".into(),
        Tensor::zeros(vocab, DType::F32, &Device::Cpu).unwrap(),
    );
    write_st(&tensors, &st);

    let labels: Vec<String> = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let tagger = load(
        dir,
        &LoadOptions::with_head(HeadKind::Tagging {
            labels: labels.clone(),
        }),
    );
    let init: BTreeSet<&str> = tagger
        .report
        .initialized
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(init, ["classifier.bias", "classifier.weight"].into());
    let unexpected: BTreeSet<&str> = tagger
        .report
        .unexpected
        .iter()
        .map(String::as_str)
        .collect();
    let want: BTreeSet<&str> = [
        "lm_head.bias",
        "classifier.dense.weight",
        "classifier.dense.bias",
        "classifier.out_proj.weight",
        "classifier.out_proj.bias",
    ]
    .into();
    assert_eq!(unexpected, want);
    let summary = tagger.report.summary().join("\n");
    assert!(
        summary.contains("classifier") && summary.contains("lm_head"),
        "{summary}"
    );
    // The encoder came from the checkpoint, unchanged.
    let enc = tagger.encoder.params().tensors();
    for (name, t) in model.encoder.params().tensors() {
        assert!(
            bits(&t) == bits(&enc[&name]),
            "{name} not taken from the checkpoint"
        );
    }
    let inputs = Inputs::pad(&rows, 1, &Device::Cpu).unwrap();
    let tags = tagger
        .forward(&inputs, None)
        .unwrap()
        .logits()
        .unwrap()
        .clone();
    let t = rows.iter().map(Vec::len).max().unwrap();
    assert_eq!(tags.dims(), &[PAIRS.len(), t, labels.len()]);

    // No head asked for, none in the config: say so.
    let e = load_err(dir, &LoadOptions::default());
    let msg = e.to_string();
    assert!(msg.contains("choose a head"), "{msg}");
    assert!(msg.contains("config.json"), "{msg}");
}

// ------------------------------------------------------------- checkpoint forms

#[test]
fn bare_xlmroberta_model_names_load() {
    let (tmp, _, rows, want) = saved(Variant::PostLayerNorm);
    let st = tmp.path().join("model.safetensors");
    let tensors: HashMap<String, Tensor> = read_st(&st)
        .into_iter()
        .map(|(k, v)| {
            (
                k.strip_prefix("roberta.").map(str::to_string).unwrap_or(k),
                v,
            )
        })
        .collect();
    assert!(tensors.keys().all(|k| !k.starts_with("roberta.")));
    assert!(tensors.contains_key("embeddings.word_embeddings.weight"));
    write_st(&tensors, &st);
    let loaded = load(tmp.path(), &LoadOptions::default());
    assert!(
        loaded.report.initialized.is_empty(),
        "{:?}",
        loaded.report.initialized
    );
    assert!(
        loaded.report.unexpected.is_empty(),
        "{:?}",
        loaded.report.unexpected
    );
    assert_eq!(max_abs_diff(&logits(&loaded, &rows), &want), 0.0);
}

/// A pretrained `BertModel` checkpoint as the hub has them: bare names, the
/// `embeddings.position_ids` buffer of older checkpoints, the pooler. It
/// loads under a classification head (the pooler is used, the classifier
/// is new) and the buffer is neither used nor reported.
#[test]
fn bare_bert_model_with_position_ids_loads_under_a_new_head() {
    let (tmp, model, rows, _) = saved(Variant::Bert);
    let st = tmp.path().join("model.safetensors");
    let mut tensors: HashMap<String, Tensor> = read_st(&st)
        .into_iter()
        .filter(|(k, _)| !k.starts_with("classifier."))
        .map(|(k, v)| (k.strip_prefix("bert.").map(str::to_string).unwrap_or(k), v))
        .collect();
    assert!(tensors.contains_key("pooler.dense.weight"));
    let positions = model.config().max_position_embeddings as u32;
    tensors.insert(
        "embeddings.position_ids".into(),
        Tensor::arange(0u32, positions, &Device::Cpu)
            .unwrap()
            .to_dtype(DType::I64)
            .unwrap()
            .unsqueeze(0)
            .unwrap(),
    );
    write_st(&tensors, &st);
    edit_config(tmp.path(), |c| {
        c.insert("architectures".into(), serde_json::json!(["BertModel"]));
        c.remove("id2label");
        c.remove("label2id");
    });
    let loaded = load(
        tmp.path(),
        &LoadOptions::with_head(HeadKind::Classification {
            labels: nli_labels(),
        }),
    );
    assert_eq!(loaded.config().variant, Variant::Bert);
    let mut initialized = loaded.report.initialized.clone();
    initialized.sort();
    assert_eq!(initialized, ["classifier.bias", "classifier.weight"]);
    assert!(
        loaded.report.unexpected.is_empty(),
        "{:?}",
        loaded.report.unexpected
    );
    let inputs = Inputs::pad(&rows, loaded.config().pad_token_id, &Device::Cpu).unwrap();
    let a = model.encoder.forward(&inputs, None).unwrap();
    let b = loaded.encoder.forward(&inputs, None).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
}

/// The padding id comes from config.json. Where positions count from it
/// (XLM-R) a tokenizer that pads with another id is an error naming both
/// files and both ids; for BERT (positions from 0) it is a load note.
#[test]
fn pad_token_id_is_checked_against_the_tokenizer() {
    let (tmp, _, _, _) = saved(Variant::PostLayerNorm);
    edit_config(tmp.path(), |c| {
        c.insert("pad_token_id".into(), serde_json::json!(0));
    });
    let msg = message(&load_err(tmp.path(), &LoadOptions::default()));
    for want in [
        "config.json",
        "pad_token_id 0",
        "tokenizer.json",
        "pads with id 1",
    ] {
        assert!(msg.contains(want), "message lacks {want:?}: {msg}");
    }

    let (tmp, model, rows, want) = saved(Variant::Bert);
    assert_eq!(
        model.config().pad_token_id,
        1,
        "tiny BERT pads like its tokenizer"
    );
    edit_config(tmp.path(), |c| {
        c.insert("pad_token_id".into(), serde_json::json!(0));
    });
    let loaded = load(tmp.path(), &LoadOptions::default());
    assert_eq!(loaded.config().pad_token_id, 0);
    let notes = loaded.report.summary().join("\n");
    assert!(
        notes.contains("pad_token_id 0") && notes.contains("pads with id 1"),
        "{notes}"
    );
    // Positions do not depend on it: the same logits.
    assert!(max_abs_diff(&logits(&loaded, &rows), &want) < 1e-6);
}

/// A batch padded with another id than the model's is refused where the
/// positions depend on it, not silently shifted.
#[test]
fn a_batch_padded_with_the_wrong_id_is_refused() {
    let (_tmp, model, rows, _) = saved(Variant::PostLayerNorm);
    let inputs = Inputs::pad(&rows, 0, &Device::Cpu).unwrap();
    let e = model.forward(&inputs, None).expect_err("should fail");
    assert!(e.to_string().contains("pad_token_id 1"), "{e}");
}

#[test]
fn sharded_safetensors_load_and_a_missing_shard_is_named() {
    for variant in [Variant::PostLayerNorm, Variant::PreLayerNorm] {
        let (tmp, _, rows, want) = saved(variant);
        let dir = tmp.path();
        let st = dir.join("model.safetensors");
        let tensors = read_st(&st);
        let mut names: Vec<&String> = tensors.keys().collect();
        names.sort();
        let half = names.len() / 2;
        let files = [
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ];
        let mut weight_map = serde_json::Map::new();
        for (i, chunk) in [&names[..half], &names[half..]].iter().enumerate() {
            let part: HashMap<String, Tensor> = chunk
                .iter()
                .map(|n| ((*n).clone(), tensors[*n].clone()))
                .collect();
            assert!(!part.is_empty());
            write_st(&part, &dir.join(files[i]));
            for n in chunk.iter() {
                weight_map.insert((*n).clone(), serde_json::json!(files[i]));
            }
        }
        let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
        std::fs::write(
            dir.join("model.safetensors.index.json"),
            serde_json::to_string_pretty(&index).unwrap(),
        )
        .unwrap();
        std::fs::remove_file(&st).unwrap();

        let loaded = load(dir, &LoadOptions::default());
        assert!(loaded.report.initialized.is_empty() && loaded.report.unexpected.is_empty());
        assert_eq!(
            max_abs_diff(&logits(&loaded, &rows), &want),
            0.0,
            "{variant:?}: sharded logits differ"
        );

        std::fs::remove_file(dir.join(files[1])).unwrap();
        let msg = load_err(dir, &LoadOptions::default()).to_string();
        assert!(msg.contains(files[1]), "{msg}");
        assert!(msg.contains("missing"), "{msg}");
    }
}

#[test]
fn pytorch_model_bin_loads() {
    let Some(python) = python_or_skip("pytorch_model_bin_loads") else {
        return;
    };
    let (tmp, _, rows, want) = saved(Variant::PostLayerNorm);
    let dir = tmp.path();
    let st = dir.join("model.safetensors");
    let bin = dir.join("pytorch_model.bin");
    let script = "import sys, torch\nfrom safetensors.torch import load_file\ntorch.save(load_file(sys.argv[1]), sys.argv[2])\n";
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(&st)
        .arg(&bin)
        .output()
        .expect("running python");
    assert!(
        out.status.success(),
        "converting to pytorch_model.bin failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&st).unwrap();
    let loaded = load(dir, &LoadOptions::default());
    assert!(
        loaded.report.initialized.is_empty(),
        "{:?}",
        loaded.report.initialized
    );
    assert!(
        loaded.report.unexpected.is_empty(),
        "{:?}",
        loaded.report.unexpected
    );
    assert!(
        loaded.report.source.ends_with("pytorch_model.bin"),
        "{}",
        loaded.report.source.display()
    );
    assert_eq!(max_abs_diff(&logits(&loaded, &rows), &want), 0.0);
}

#[test]
fn hf_cache_snapshots_are_found() {
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("models--FacebookAI--xlm-roberta-base");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let other = "fedcba9876543210fedcba9876543210fedcba98";
    // Two snapshots; refs/main names the first one written.
    let model = write_tiny(Variant::PostLayerNorm, &repo.join("snapshots").join(commit));
    write_tiny(Variant::PreLayerNorm, &repo.join("snapshots").join(other));
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), format!("{commit}\n")).unwrap();

    let found =
        cached_snapshot(cache.path(), "FacebookAI/xlm-roberta-base").expect("snapshot not found");
    assert_eq!(found, repo.join("snapshots").join(commit));
    let loaded = load(&found, &LoadOptions::default());
    let rows = encode_pairs(model.tokenizer.as_ref().unwrap());
    assert_eq!(
        max_abs_diff(&logits(&loaded, &rows), &logits(&model, &rows)),
        0.0
    );

    // Without refs/main: some snapshot holding a config.json.
    std::fs::remove_file(repo.join("refs").join("main")).unwrap();
    let found = cached_snapshot(cache.path(), "FacebookAI/xlm-roberta-base")
        .expect("snapshot not found without refs/main");
    assert!(
        found == repo.join("snapshots").join(commit) || found == repo.join("snapshots").join(other),
        "{}",
        found.display()
    );

    // The legacy folder of an id without an organisation.
    let legacy = cache
        .path()
        .join("models--xlm-roberta-large")
        .join("snapshots")
        .join(commit);
    write_tiny(Variant::PostLayerNorm, &legacy);
    std::fs::create_dir_all(cache.path().join("models--xlm-roberta-large").join("refs")).unwrap();
    std::fs::write(
        cache
            .path()
            .join("models--xlm-roberta-large")
            .join("refs")
            .join("main"),
        commit,
    )
    .unwrap();
    assert_eq!(
        cached_snapshot(cache.path(), "xlm-roberta-large"),
        Some(legacy)
    );

    // Not there: None, not a panic.
    assert_eq!(
        cached_snapshot(cache.path(), "facebook/xlm-roberta-xl"),
        None
    );
    assert_eq!(
        cached_snapshot(&cache.path().join("nope"), "FacebookAI/xlm-roberta-base"),
        None
    );
}

// ------------------------------------------------------------------- bad input

fn message(e: &Error) -> String {
    e.to_string()
}

#[test]
fn missing_directory_is_model_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let missing: PathBuf = tmp.path().join("no-such-model");
    let spec = missing.to_str().unwrap();
    match Model::load(spec, &LoadOptions::default()) {
        Ok(_) => panic!("loaded a missing directory"),
        Err(e @ Error::ModelNotFound { .. }) => {
            let msg = message(&e);
            assert!(msg.contains(spec), "{msg}");
        }
        Err(e) => panic!("expected ModelNotFound, got: {e}"),
    }
    // A directory without config.json names the missing file.
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let Err(e) = Model::load(empty.to_str().unwrap(), &LoadOptions::default()) else {
        panic!("loaded an empty directory")
    };
    assert!(
        message(&e).contains(&empty.join("config.json").display().to_string()),
        "{e}"
    );
    // from_dir on a missing directory names config.json there.
    let msg = message(&load_err(&missing, &LoadOptions::default()));
    assert!(
        msg.contains(&missing.join("config.json").display().to_string()),
        "{msg}"
    );
}

#[test]
fn config_with_a_wrongly_typed_field_names_it() {
    let (tmp, ..) = saved(Variant::PostLayerNorm);
    edit_config(tmp.path(), |c| {
        c.insert("hidden_size".into(), serde_json::json!("big"));
    });
    let msg = message(&load_err(tmp.path(), &LoadOptions::default()));
    assert!(msg.contains("hidden_size"), "{msg}");
    assert!(msg.contains("big"), "{msg}");
    assert!(
        msg.contains(&tmp.path().join("config.json").display().to_string()),
        "{msg}"
    );
}

#[test]
fn config_that_is_not_json_is_named() {
    let (tmp, ..) = saved(Variant::PostLayerNorm);
    std::fs::write(
        tmp.path().join("config.json"),
        "{\"hidden_size\": 32,, oops",
    )
    .unwrap();
    let e = load_err(tmp.path(), &LoadOptions::default());
    assert!(matches!(e, Error::Json { .. }), "{e}");
    let msg = message(&e);
    assert!(
        msg.contains(&tmp.path().join("config.json").display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("not valid JSON"), "{msg}");
}

#[test]
fn truncated_weights_are_named() {
    let (tmp, ..) = saved(Variant::PostLayerNorm);
    let st = tmp.path().join("model.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..bytes.len() / 2]).unwrap();
    let msg = message(&load_err(tmp.path(), &LoadOptions::default()));
    assert!(msg.contains(&st.display().to_string()), "{msg}");
    assert!(
        msg.contains("truncated") || msg.contains("corrupt"),
        "{msg}"
    );
}

#[test]
fn wrongly_shaped_tensor_is_named_with_both_shapes() {
    let (tmp, model, ..) = saved(Variant::PostLayerNorm);
    let h = model.config().hidden_size;
    let st = tmp.path().join("model.safetensors");
    let mut tensors = read_st(&st);
    tensors.insert(
        "classifier.out_proj.weight".into(),
        Tensor::zeros((4, h), DType::F32, &Device::Cpu).unwrap(),
    );
    write_st(&tensors, &st);
    let e = load_err(tmp.path(), &LoadOptions::default());
    assert!(matches!(e, Error::Shape { .. }), "{e}");
    let msg = message(&e);
    assert!(msg.contains("classifier.out_proj.weight"), "{msg}");
    assert!(msg.contains(&format!("[4, {h}]")), "{msg}");
    assert!(msg.contains(&format!("[3, {h}]")), "{msg}");
    assert!(msg.contains("model.safetensors"), "{msg}");
}

#[test]
fn broken_tokenizer_json_is_named() {
    let (tmp, ..) = saved(Variant::PostLayerNorm);
    let path = tmp.path().join("tokenizer.json");
    std::fs::write(&path, "{\"model\": 42}").unwrap();
    let e = load_err(tmp.path(), &LoadOptions::default());
    assert!(matches!(e, Error::Tokenizer { .. }), "{e}");
    assert!(message(&e).contains(&path.display().to_string()), "{e}");
}

/// Issue 31, item 7: a saved model's files get the permissions any new
/// file gets (the umask decides), not the 0600 of the safetensors writer's
/// private temporary file: a shared store's models stay readable by the group.
#[cfg(unix)]
#[test]
fn saved_weights_get_the_permissions_the_umask_gives() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, b"x").unwrap();
    let want = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
    write_tiny(Variant::PostLayerNorm, &dir.path().join("m"));
    for f in ["model.safetensors", "config.json", "tokenizer.json"] {
        let got = std::fs::metadata(dir.path().join("m").join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(got, want, "{f}: mode {got:o}, a new file gets {want:o}");
    }
    assert_eq!(
        std::fs::read_dir(dir.path().join("m")).unwrap().count(),
        4,
        "no scratch file is left beside the weights"
    );
}

/// Issue 31, item 6: a model is saved in the dtype its weights have (bf16
/// weights as bf16: half the disk), and loads back bit for bit.
#[test]
fn bf16_weights_are_saved_as_bf16() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny(Variant::PostLayerNorm, &dir.path().join("f32"));
    let opts = LoadOptions {
        dtype: DType::BF16,
        ..Default::default()
    };
    let m = load(&dir.path().join("f32"), &opts);
    m.save(&dir.path().join("bf16")).unwrap();
    let saved =
        candle_core::safetensors::load(dir.path().join("bf16/model.safetensors"), &Device::Cpu)
            .unwrap();
    assert!(saved.values().all(|t| t.dtype() == DType::BF16));
    let size = |d: &str| {
        std::fs::metadata(dir.path().join(d).join("model.safetensors"))
            .unwrap()
            .len()
    };
    assert!(
        size("bf16") * 3 < size("f32") * 2,
        "bf16 is about half the size"
    );
    let back = load(&dir.path().join("bf16"), &opts);
    for ((k, a), (_, b)) in m
        .params()
        .tensors()
        .iter()
        .zip(back.params().tensors().iter())
    {
        assert_eq!(bits(a), bits(b), "{k}");
    }
}
