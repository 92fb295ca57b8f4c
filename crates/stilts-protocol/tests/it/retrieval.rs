//! Tatoeba retrieval against the reference computation: a tiny XLM-R and
//! what transformers + numpy compute with it
//! (`tests/fixtures/make_retrieval_fixture.py`, XTREME's
//! `evaluate_retrieval.py` written out, LASER's margin), on the first 100
//! pairs of three languages of `../shared/data/tatoeba`: every query
//! retrieves the same sentence, at three hidden states (the embeddings,
//! layer 1, the last layer), both poolings, both directions and both
//! scorings. Batches are small here (sorted by length, then put back), the
//! reference's are 100 sentences in file order.

use std::sync::atomic::AtomicBool;

use crate::common;
use stilts_model::{HeadKind, LoadOptions, Model, Pooling};
use stilts_protocol::retrieval::{evaluate_retrieval, retrieve, RetrievalOptions};
use stilts_protocol::run;
use stilts_protocol::train::Silent;
use stilts_tasks::retrieval::{Direction, Scoring};
use stilts_tasks::{open, ReadOptions, Selection, TaskSource};

fn tatoeba(languages: &[String], first: usize) -> stilts_tasks::OpenedTask {
    let source = TaskSource::Builtin {
        name: "tatoeba".into(),
        data: common::shared_data().join("tatoeba"),
    };
    let sel = Selection {
        split: "test".into(),
        languages: Some(languages.to_vec()),
        read: ReadOptions::default().with_first(first),
        ..Selection::default()
    };
    open(&source, &sel).unwrap()
}

fn fixture_model() -> Model {
    let dir = common::fixtures().join("retrieval");
    // A base model (no head in its config): any head stands in, unread.
    let head = HeadKind::Classification {
        labels: vec!["a".into(), "b".into()],
    };
    Model::from_dir(&dir, &LoadOptions::with_head(head)).unwrap()
}

#[test]
fn tatoeba_matches_the_transformers_reference_sentence_for_sentence() {
    let dir = common::fixtures().join("retrieval");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let languages: Vec<String> = serde_json::from_value(expected["languages"].clone()).unwrap();
    let first = expected["first"].as_u64().unwrap() as usize;
    let model = fixture_model();
    let t = tatoeba(&languages, first);
    let cancel = AtomicBool::new(false);
    let (mut checked, mut ties, mut cells) = (0, 0, 0);
    let mut wrong = vec![];
    for ds in &t.parts {
        let lang = ds.subset.clone().unwrap();
        assert_eq!(ds.len(), first, "{lang}");
        let by_layer = expected["results"][&lang].as_object().unwrap();
        for (layer, by_pooling) in by_layer {
            for (pooling, by_direction) in by_pooling.as_object().unwrap() {
                for (direction, by_scoring) in by_direction.as_object().unwrap() {
                    for (scoring, want) in by_scoring.as_object().unwrap() {
                        let opts = RetrievalOptions {
                            layer: Some(layer.parse().unwrap()),
                            pooling: Pooling::parse(pooling).unwrap(),
                            direction: Direction::parse(direction).unwrap(),
                            scoring: Scoring::parse(scoring).unwrap(),
                            batch_size: 16,
                            ..RetrievalOptions::default()
                        };
                        let got = retrieve(&model, ds, &opts, &mut Silent, &cancel).unwrap();
                        let found: Vec<usize> =
                            serde_json::from_value(want["found"].clone()).unwrap();
                        let near: Vec<usize> =
                            serde_json::from_value(want["ties"].clone()).unwrap();
                        assert_eq!(got.found.len(), found.len());
                        for (q, (g, w)) in got.found.iter().zip(&found).enumerate() {
                            assert_eq!(got.hits[q], g == &q);
                            if near.contains(&q) {
                                ties += 1;
                            } else {
                                checked += 1;
                                if g != w {
                                    wrong.push(format!(
                                        "{lang} hidden {layer} {pooling} {direction} {scoring}: query {q} retrieved {g}, the reference {w}"
                                    ));
                                }
                            }
                        }
                        if near.is_empty() {
                            let e = evaluate_retrieval(&model, ds, &opts, &mut Silent, &cancel)
                                .unwrap();
                            let acc = want["accuracy"].as_f64().unwrap();
                            assert!(
                                (e.score - acc).abs() < 1e-9,
                                "{lang} {layer} {pooling} {direction} {scoring}: {} against {acc}",
                                e.score
                            );
                            assert_eq!(e.n, first);
                            cells += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} queries differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // 3 languages x 5 (hidden state, pooling) x 2 directions x 2 scorings x 100.
    assert_eq!(checked + ties, 6000);
    assert!(ties < 60, "{ties} near ties");
    assert!(cells > 40, "only {cells} cells without a near tie");
}

#[test]
fn the_default_layer_and_run_evaluate_follow_xtreme() {
    let model = fixture_model();
    let t = tatoeba(&["de".to_string()], 30);
    let cancel = AtomicBool::new(false);
    let ds = &t.parts[0];
    // `run::evaluate` (what a condition calls) takes retrieval's defaults:
    // the hidden state of default_layer(3) = 2, mean pooling, xx-en, cosine.
    let opts = stilts_protocol::presets::RunOptions {
        batch_size: 8,
        ..Default::default()
    };
    let e = run::evaluate(&model, ds, &opts, &mut Silent, &cancel).unwrap();
    assert_eq!(e.metric, "retrieval accuracy");
    assert_eq!(e.extra["layer"], 2.0);
    let explicit = RetrievalOptions {
        layer: Some(2),
        ..RetrievalOptions::default()
    };
    let e2 = evaluate_retrieval(&model, ds, &explicit, &mut Silent, &cancel).unwrap();
    assert_eq!(e.per_example, e2.per_example);
    // `both`: the queries of both directions, the score their mean.
    let both = RetrievalOptions {
        direction: Direction::Both,
        ..explicit.clone()
    };
    let b = evaluate_retrieval(&model, ds, &both, &mut Silent, &cancel).unwrap();
    assert_eq!(b.n, 60);
    assert!((b.score - (b.extra["xx-en"] + b.extra["en-xx"]) / 2.0).abs() < 1e-9);
    assert_eq!(b.extra["xx-en"], e2.score);
    // A hidden state the model does not have.
    let deep = RetrievalOptions {
        layer: Some(4),
        ..RetrievalOptions::default()
    };
    let err = evaluate_retrieval(&model, ds, &deep, &mut Silent, &cancel)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`layer: 4`") && err.contains("3 layers"),
        "{err}"
    );
    // Training on it is refused.
    let ropts = stilts_protocol::presets::RunOptions::default();
    let job = run::TrainJob::new(&model, &t.parts, &ropts);
    let err = run::train(&job, &mut Silent, &cancel)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no training data"), "{err}");
}
