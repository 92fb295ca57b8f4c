//! Task-level training and evaluation on real files from ../shared/data:
//! a tiny model fine-tuned on SST-2 with model selection on its dev set,
//! evaluated; a multi-task mix of SST-2 and HellaSwag; XNLI per language.

use crate::common;

use std::sync::atomic::AtomicBool;

use stilts_model::tiny::{build, TinySpec};
use stilts_model::HeadKind;
use stilts_protocol::multitask::Sampling;
use stilts_protocol::presets::RunOptions;
use stilts_protocol::run::{
    evaluate, multitask, train, transfer, HeadChoice, MultitaskJob, TrainJob,
};
use stilts_protocol::train::Silent;
use stilts_tasks::{self as tasks, ReadOptions};

fn data(task: &str, split: &str, sub: Option<&str>, n: usize) -> stilts_tasks::Dataset {
    let root = common::shared_data().join(match task {
        "xnli" => "xnli".to_string(),
        t => format!("intermediate/{t}"),
    });
    tasks::load(
        task,
        &root,
        split,
        sub,
        &ReadOptions::default().with_first(n),
    )
    .unwrap()
}

fn opts(extra: serde_json::Value) -> RunOptions {
    let mut o = serde_json::json!({"lr": 2e-3, "batch_size": 16, "max_length": 48, "epochs": 2, "warmup": 0.0});
    o.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    RunOptions::from_overrides(None, &o).unwrap()
}

fn tiny(texts: Vec<String>) -> stilts_model::Model {
    let spec = TinySpec {
        vocab_size: 400,
        hidden_size: 32,
        num_layers: 1,
        num_heads: 2,
        intermediate_size: 64,
        max_position_embeddings: 50,
        ..Default::default()
    };
    build(&spec, &texts, HeadKind::SpanQa).unwrap()
}

fn texts_of(ds: &stilts_tasks::Dataset) -> Vec<String> {
    ds.examples
        .iter()
        .flat_map(|e| match e {
            stilts_tasks::Example::Text { a, b, .. } => vec![a.clone()]
                .into_iter()
                .chain(b.clone())
                .collect::<Vec<_>>(),
            stilts_tasks::Example::Choice {
                prompt, choices, ..
            } => std::iter::once(prompt.clone())
                .chain(choices.clone())
                .collect(),
            _ => vec![],
        })
        .collect()
}

#[test]
fn train_with_dev_selection_then_evaluate_and_transfer() {
    let train_ds = data("sst2", "train", None, 256);
    let dev = data("sst2", "dev", None, 64);
    let base = tiny(texts_of(&train_ds));
    let before: Vec<f32> = base.encoder.params().tensors()
        ["roberta.embeddings.word_embeddings.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let cancel = AtomicBool::new(false);
    let train_data = [train_ds];
    let o = opts(serde_json::json!({"eval_every": 8}));
    let job = TrainJob {
        dev: Some(&dev),
        head: HeadChoice::Fresh,
        ..TrainJob::new(&base, &train_data, &o)
    };
    let (model, report) = train(&job, &mut Silent, &cancel).unwrap();
    assert_eq!(report.steps, 32);
    assert_eq!(report.scores.len(), 4, "dev evaluated every 8 updates");
    let best = report.best_score.unwrap();
    assert_eq!(
        best,
        report.scores.iter().map(|s| s.1).fold(f64::MIN, f64::max)
    );
    // The returned model carries the best weights: evaluating it gives the best score.
    let e = evaluate(
        &model,
        &dev,
        &opts(serde_json::json!({})),
        &mut Silent,
        &cancel,
    )
    .unwrap();
    assert_eq!(e.n, 64);
    assert_eq!(e.per_example.len(), 64);
    assert!((e.score - best).abs() < 1e-9, "{} vs best {best}", e.score);
    // Training worked on a copy: the base model is untouched.
    let after: Vec<f32> = base.encoder.params().tensors()
        ["roberta.embeddings.word_embeddings.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(before, after);
    // The wrong head is a clear error, and a transfer fixes it.
    let xnli = data("xnli", "dev", Some("de"), 20);
    let err = evaluate(
        &model,
        &xnli,
        &opts(serde_json::json!({})),
        &mut Silent,
        &cancel,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("train it on this task first"), "{err}");
    let nli = transfer(&model, &xnli.head, 1, true).unwrap();
    let e = evaluate(
        &nli,
        &xnli,
        &opts(serde_json::json!({})),
        &mut Silent,
        &cancel,
    )
    .unwrap();
    assert_eq!(e.n, 20);
}

#[test]
fn multitask_mix_of_classification_and_multiple_choice() {
    let sst = data("sst2", "train", None, 96);
    let hs = data("hellaswag", "dev", None, 24);
    let mut texts = texts_of(&sst);
    texts.extend(texts_of(&hs));
    let base = tiny(texts);
    let o = opts(serde_json::json!({"batch_size": 8, "epochs": 1}));
    let mix = [
        ("sst2".to_string(), vec![sst.clone()]),
        ("hellaswag".to_string(), vec![hs.clone()]),
    ];
    let (models, report) = run_mix(&base, &mix, &o);
    assert_eq!(models.len(), 2);
    assert_eq!(report.steps, 12 + 3);
    assert_eq!(models[1].head.kind, HeadKind::MultipleChoice);
    let e = evaluate(&models[1], &hs, &o, &mut Silent, &AtomicBool::new(false)).unwrap();
    assert_eq!(e.n, 24);
    assert!((0.0..=100.0).contains(&e.score));
}

/// `train_examples_cap` trains each task of a mix on at most N examples (a
/// seeded sample): the sampling proportions and the length of training
/// both shrink, as in jiant.
#[test]
fn train_examples_cap_shortens_a_mix() {
    let sst = data("sst2", "train", None, 96);
    let hs = data("hellaswag", "dev", None, 24);
    let mut texts = texts_of(&sst);
    texts.extend(texts_of(&hs));
    let base = tiny(texts);
    let mix = [
        ("sst2".to_string(), vec![sst.clone()]),
        ("hellaswag".to_string(), vec![hs.clone()]),
    ];
    let steps = |extra: serde_json::Value| {
        let mut o = serde_json::json!({"batch_size": 8, "epochs": 1});
        o.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        run_mix(&base, &mix, &opts(o)).1
    };
    let full = steps(serde_json::json!({}));
    let capped = steps(serde_json::json!({"train_examples_cap": 16}));
    assert_eq!(full.steps, 12 + 3);
    assert_eq!(
        capped.steps,
        2 + 2,
        "16 of 96 and 16 of 24 examples, batches of 8"
    );
    let per_task = |r: &stilts_protocol::train::TrainReport, t: usize| {
        r.task_losses.iter().filter(|(k, _)| *k == t).count()
    };
    assert!(per_task(&capped, 1) >= 1 && per_task(&capped, 0) >= 1);
}

/// A proportional mix trained without a dev set.
fn run_mix(
    base: &stilts_model::Model,
    mix: &[(String, Vec<stilts_tasks::Dataset>)],
    o: &stilts_protocol::presets::RunOptions,
) -> (
    Vec<stilts_model::Model>,
    stilts_protocol::train::TrainReport,
) {
    let job = MultitaskJob {
        model: base,
        tasks: mix,
        sampling: &Sampling::Proportional,
        dev: None,
        options: o,
        checkpoint_dir: None,
    };
    multitask(&job, &mut Silent, &AtomicBool::new(false)).unwrap()
}
