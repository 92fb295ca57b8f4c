//! Features: pairs and multiple-choice rows exactly as the model tokenizer
//! encodes them, tagging labels on first sub-tokens, and the checks on the
//! tokenizer fingerprint.

use std::path::PathBuf;
use std::sync::OnceLock;

use stilts_model::loss::IGNORE_INDEX;
use stilts_model::Tokenizer;
use stilts_tasks::features::first_subtoken_tags;
use stilts_tasks::{
    self as tasks, featurize, Example, FeatureOptions, Label, ReadOptions, TextEncoder,
};

fn shared() -> PathBuf {
    PathBuf::from(crate::common::REPO)
        .join("..")
        .join("shared")
        .join("data")
}

fn tok_path() -> PathBuf {
    shared().join("xlmr").join("tokenizer.json")
}

/// Loading the 250k-entry tokenizer takes a few seconds: once per binary.
fn model_tok() -> &'static Tokenizer {
    static T: OnceLock<Tokenizer> = OnceLock::new();
    T.get_or_init(|| Tokenizer::from_file(&tok_path()).unwrap())
}

fn enc() -> &'static TextEncoder {
    static E: OnceLock<TextEncoder> = OnceLock::new();
    E.get_or_init(|| TextEncoder::from_file(&tok_path()).unwrap())
}

#[test]
fn pair_features_match_the_model_tokenizer() {
    let (tok, enc) = (model_tok(), enc());
    assert_eq!(enc.fingerprint(), tok.fingerprint().unwrap());
    assert_eq!((enc.pad_id(), enc.cls_id()), (1, 0));
    let ds = tasks::load(
        "xnli",
        &shared().join("xnli"),
        "dev",
        Some("th"),
        &ReadOptions::default(),
    )
    .unwrap();
    // Short max length so truncation is exercised too.
    let opts = FeatureOptions {
        max_length: 48,
        chunk: 700,
        ..Default::default()
    };
    let feats = featurize(&ds, enc, &opts).unwrap();
    assert_eq!(feats.len(), 2490);
    let items: Vec<(String, Option<String>)> = ds
        .examples
        .iter()
        .map(|e| match e {
            Example::Text { a, b, .. } => (a.clone(), b.clone()),
            _ => panic!(),
        })
        .collect();
    let want = tok.encode_batch(&items, 48).unwrap();
    let mut truncated = 0;
    for (i, (f, w)) in feats.iter().zip(&want).enumerate() {
        assert_eq!(f.example, i);
        assert_eq!(&f.rows[0], w, "example {i}");
        assert_eq!(f.label, Label::Class(ds.examples[i].label().unwrap()));
        truncated += usize::from(w.len() == 48);
    }
    assert!(truncated > 100, "{truncated} truncated");
}

#[test]
fn multiple_choice_rows_are_prompt_choice_pairs() {
    let (tok, enc) = (model_tok(), enc());
    let ds = tasks::load(
        "commonsenseqa",
        &shared().join("intermediate").join("commonsenseqa"),
        "dev",
        None,
        &ReadOptions::default().with_first(150),
    )
    .unwrap();
    let feats = featurize(
        &ds,
        enc,
        &FeatureOptions {
            max_length: 64,
            chunk: 64,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(feats.len(), 150);
    for (f, e) in feats.iter().zip(&ds.examples) {
        let Example::Choice {
            prompt,
            choices,
            label,
            ..
        } = e
        else {
            panic!()
        };
        assert_eq!(f.rows.len(), 5);
        for (row, c) in f.rows.iter().zip(choices) {
            assert_eq!(row, &tok.encode(prompt, Some(c), 64).unwrap());
        }
        assert_eq!(f.label, Label::Class(label.unwrap()));
        assert_eq!(f.cost(), 5 * f.len());
    }
}

#[test]
fn tagging_labels_sit_on_first_subtokens() {
    assert_eq!(
        first_subtoken_tags(
            &[None, Some(0), Some(0), Some(1), Some(2), Some(2), None],
            &[7, 8, 9]
        ),
        vec![
            IGNORE_INDEX,
            7,
            IGNORE_INDEX,
            8,
            9,
            IGNORE_INDEX,
            IGNORE_INDEX
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tags_to_id.json"),
        r#"{"N": 0, "NP[nb]/N": 1, "(S[dcl]\\NP)/NP": 2, ".": 3, "N/N": 4}"#,
    )
    .unwrap();
    let mut lines = String::new();
    // Words that split into several pieces, numbers, punctuation.
    lines.push_str("The unbelievably antidisestablishmentarian cats chase 1,234,567 mice .\tNP[nb]/N N/N N/N N (S[dcl]\\NP)/NP N/N N .\n");
    lines.push_str("Zürich's Straßenbahnen run .\tN/N N (S[dcl]\\NP)/NP .\n");
    std::fs::write(dir.path().join("ccg.train.tsv"), &lines).unwrap();
    let ds = tasks::load("ccg", dir.path(), "train", None, &ReadOptions::default()).unwrap();
    let enc = enc();
    let feats = featurize(&ds, enc, &FeatureOptions::default()).unwrap();
    for (f, e) in feats.iter().zip(&ds.examples) {
        let Example::Words { words, tags, .. } = e else {
            panic!()
        };
        let Label::Tags(t) = &f.label else { panic!() };
        assert_eq!(t.len(), f.rows[0].len());
        let labelled: Vec<(usize, i64)> = t
            .iter()
            .enumerate()
            .filter(|(_, &v)| v != IGNORE_INDEX)
            .map(|(i, &v)| (i, v))
            .collect();
        assert_eq!(labelled.len(), words.len());
        assert_eq!(
            labelled.iter().map(|x| x.1 as usize).collect::<Vec<_>>(),
            tags.clone().unwrap()
        );
        // Each word's tokens run from its labelled token to the next one; they decode to the word.
        for (k, w) in words.iter().enumerate() {
            let from = labelled[k].0;
            let to = labelled
                .get(k + 1)
                .map(|x| x.0)
                .unwrap_or(f.rows[0].len() - 1);
            assert_eq!(enc.decode(&f.rows[0][from..to]).unwrap().trim(), w.as_str());
        }
        assert!(
            f.rows[0].len() > words.len() + 2,
            "some words are several sub-tokens"
        );
    }
    // Truncation keeps the first sub-token labels that fit.
    let short = featurize(&ds, enc, &FeatureOptions::new(6)).unwrap();
    let Label::Tags(t) = &short[0].label else {
        panic!()
    };
    assert_eq!(t.len(), 6);
    assert_eq!(t[0], IGNORE_INDEX);
    assert_eq!(t[1], 1);
}

#[test]
fn encoder_errors_name_the_file() {
    let e = TextEncoder::from_file(&shared().join("no-such-tokenizer.json"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("no-such-tokenizer.json") && e.contains("not found"),
        "{e}"
    );
    // A tokenizer that only lives in memory (trained for a tiny model)
    // encodes without a file, with the same fingerprint.
    let texts: Vec<String> = (0..40)
        .map(|i| format!("word{} other text {}", i % 7, i))
        .collect();
    let trained = Tokenizer::train_unigram(&texts, 60).unwrap();
    let in_memory = TextEncoder::from_tokenizer(&trained).unwrap();
    assert_eq!(in_memory.fingerprint(), trained.fingerprint().unwrap());
    // Saved, it works and fingerprints agree.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tokenizer.json");
    trained.save(&p).unwrap();
    let reloaded = Tokenizer::from_file(&p).unwrap();
    let e = TextEncoder::from_tokenizer(&reloaded).unwrap();
    assert_eq!(e.fingerprint(), reloaded.fingerprint().unwrap());
    assert_ne!(e.fingerprint(), enc().fingerprint());
}

/// Real data end to end: XNLI test features in token-budget batches, padded
/// by collate, results back in order; HellaSwag rows grouped by choices.
#[test]
fn xnli_and_hellaswag_batches_end_to_end() {
    use candle_core::Device;
    use stilts_model::Target;
    use stilts_tasks::batch::lengths;
    use stilts_tasks::{collate, BatchSize, EvalPlan};
    let enc = enc();
    let ds = tasks::load(
        "xnli",
        &shared().join("xnli"),
        "test",
        Some("de"),
        &ReadOptions::default().with_first(1000),
    )
    .unwrap();
    let feats = featurize(&ds, enc, &FeatureOptions::new(128)).unwrap();
    let lens = lengths(&feats);
    let plan = EvalPlan::new(&lens, BatchSize::Tokens(4096));
    let mut per_batch = Vec::new();
    let mut padded = 0;
    for b in &plan.batches {
        let fs: Vec<&stilts_tasks::Feature> = b.iter().map(|&i| &feats[i]).collect();
        let (inputs, target) = collate(&fs, &ds.head, enc.pad_id(), &Device::Cpu).unwrap();
        let (n, t) = inputs.dims().unwrap();
        assert!(n * t <= 4096 && n == b.len());
        padded += n * t;
        let mask = inputs.attention_mask.to_vec2::<u32>().unwrap();
        let Target::Class(y) = target else { panic!() };
        let y = y.to_vec1::<i64>().unwrap();
        // "Predictions": the row's real length and its label, in batch order.
        per_batch.push(
            mask.iter()
                .zip(y)
                .map(|(m, l)| (m.iter().sum::<u32>() as usize, l))
                .collect::<Vec<_>>(),
        );
    }
    let real: usize = lens.iter().sum();
    assert!(
        (padded as f64) < 1.1 * real as f64,
        "{padded} padded for {real} real tokens"
    );
    let restored = plan.restore(per_batch).unwrap();
    for (i, (len, label)) in restored.into_iter().enumerate() {
        assert_eq!(len, feats[i].len());
        assert_eq!(label, ds.examples[i].label().unwrap() as i64);
    }

    let hs = tasks::load(
        "hellaswag",
        &shared().join("intermediate").join("hellaswag"),
        "dev",
        None,
        &ReadOptions::default().with_first(64),
    )
    .unwrap();
    let hf = featurize(&hs, enc, &FeatureOptions::new(128)).unwrap();
    let refs: Vec<&stilts_tasks::Feature> = hf.iter().take(8).collect();
    let (inputs, target) = collate(&refs, &hs.head, enc.pad_id(), &Device::Cpu).unwrap();
    assert_eq!((inputs.dims().unwrap().0, inputs.choices), (32, 4));
    // Row 4k+j is choice j of example k.
    let ids = inputs.input_ids.to_vec2::<u32>().unwrap();
    assert_eq!(&ids[4 * 2 + 3][..hf[2].rows[3].len()], &hf[2].rows[3][..]);
    let Target::Class(y) = target else { panic!() };
    assert_eq!(y.to_vec1::<i64>().unwrap()[0], 3);
}
