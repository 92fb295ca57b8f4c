//! A condition end to end on real files (tiny model, few examples): SST-2
//! as the intermediate task, MNLI as the target, XNLI dev in two languages;
//! memoisation through the store; summaries and paired comparisons.

mod common;

use std::sync::atomic::AtomicBool;

use stilts::model::tiny::{write, TinySpec};
use stilts::model::HeadKind;
use stilts::protocol::experiment::{compare, run_condition, summarise, Condition, TaskRef};
use stilts::protocol::multitask::Sampling;
use stilts::protocol::presets::RunOptions;
use stilts::protocol::train::{Progress, Silent};
use stilts::store::Store;

fn task(task: &str, dir: &str, split: &str, subsets: &[&str]) -> TaskRef {
    TaskRef {
        task: task.into(),
        root: common::shared_data().join(dir),
        split: split.into(),
        subsets: subsets.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn conditions_run_memoise_and_compare() {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("tiny");
    let mut texts = common::sample_texts();
    texts.extend(
        [
            "the man is sleeping",
            "a woman plays the guitar",
            "der Mann schläft",
            "mtu analala",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let spec = TinySpec {
        vocab_size: 300,
        hidden_size: 32,
        num_layers: 1,
        num_heads: 2,
        intermediate_size: 64,
        max_position_embeddings: 50,
        ..Default::default()
    };
    write(&spec, &texts, HeadKind::SpanQa, &model_dir).unwrap();
    let opts = RunOptions::from_overrides(None, &serde_json::json!({"lr": 1e-3, "batch_size": 16, "max_length": 48, "epochs": 1, "limit": 48})).unwrap();
    let condition = |intermediate: Vec<TaskRef>, seed: u64| Condition {
        model: model_dir.display().to_string(),
        intermediate,
        sampling: Sampling::Proportional,
        intermediate_options: opts.clone(),
        target: task("mnli", "intermediate/mnli", "train", &[]),
        target_dev: None,
        target_options: opts.clone(),
        evaluation: task("xnli", "xnli", "dev", &["de", "sw"]),
        seed,
    };
    let store = Store::new(tmp.path().join("runs.jsonl"));
    let cancel = AtomicBool::new(false);
    let mut phases = 0;
    let mut bars = |_: &str| -> Box<dyn Progress> {
        phases += 1;
        Box::new(Silent)
    };
    let mut base = vec![];
    let mut stilts_runs = vec![];
    for seed in [0, 1] {
        base.push(
            run_condition(
                &condition(vec![], seed),
                Some(&store),
                false,
                &mut bars,
                &cancel,
            )
            .unwrap(),
        );
        stilts_runs.push(
            run_condition(
                &condition(vec![task("sst2", "intermediate/sst2", "train", &[])], seed),
                Some(&store),
                false,
                &mut bars,
                &cancel,
            )
            .unwrap(),
        );
    }
    assert_eq!(store.records().unwrap().len(), 4);
    let r = &stilts_runs[0];
    assert_eq!(
        r.metrics.keys().cloned().collect::<Vec<_>>(),
        vec!["avg", "de", "sw"]
    );
    assert!(r.curves.contains_key("intermediate.sst2") && r.curves.contains_key("target.mnli"));
    assert!(!r.config["data_files"].as_object().unwrap().is_empty());
    assert_ne!(
        base[0].key, base[1].key,
        "seeds are part of the configuration"
    );

    // Memoised: the same condition again trains nothing and returns the record.
    drop(bars);
    let before = phases;
    let mut count = 0;
    let again = run_condition(
        &condition(vec![task("sst2", "intermediate/sst2", "train", &[])], 0),
        Some(&store),
        false,
        &mut |_: &str| -> Box<dyn Progress> {
            count += 1;
            Box::new(Silent)
        },
        &cancel,
    )
    .unwrap();
    assert_eq!(count, 0, "a finished configuration was trained again");
    assert_eq!(&again, r);
    assert!(before >= 4 * 3);
    assert_eq!(store.records().unwrap().len(), 4);

    let s = summarise(&stilts_runs).unwrap();
    assert_eq!(s.seeds, 2);
    let avg = s.per_language["avg"];
    assert!(avg.low <= avg.value && avg.value <= avg.high);
    let mean_de = (stilts_runs[0].metrics["de"] + stilts_runs[1].metrics["de"]) / 2.0;
    assert!((s.per_language["de"].value - mean_de).abs() < 1e-9);
    let d = compare(&base, &stilts_runs).unwrap();
    let want = mean_de - (base[0].metrics["de"] + base[1].metrics["de"]) / 2.0;
    assert!(
        (d["de"].value - want).abs() < 1e-9,
        "{} vs {want}",
        d["de"].value
    );
    assert!(d["sw"].low <= d["sw"].value && d["sw"].value <= d["sw"].high);
}
