//! Conditions end to end on real files (tiny model, few examples): SST-2 as
//! the intermediate task, MNLI as the target, XNLI dev in two languages;
//! reuse through the store by fingerprint; one intermediate phase shared by
//! two targets; a changed data file re-runs exactly the conditions that
//! read it.

use crate::common;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use stilts_model::tiny::{write, TinySpec};
use stilts_model::HeadKind;
use stilts_protocol::experiment::{
    evaluations, run_condition, Condition, ConditionResult, ModelSource, TaskData,
};
use stilts_protocol::multitask::Sampling;
use stilts_protocol::presets::RunOptions;
use stilts_protocol::store::Store;
use stilts_protocol::train::{Progress, Silent};
use stilts_tasks::{self as tasks, ReadOptions};

fn load(task: &str, root: &Path, split: &str, subsets: &[&str], limit: usize) -> TaskData {
    let read = ReadOptions::default().with_first(limit);
    let parts = if subsets.is_empty() {
        vec![tasks::load(task, root, split, None, &read).unwrap()]
    } else {
        subsets
            .iter()
            .map(|s| tasks::load(task, root, split, Some(s), &read).unwrap())
            .collect()
    };
    TaskData::new(task, Arc::new(parts)).unwrap()
}

fn tiny_dir(dir: &Path) {
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
    write(&spec, &texts, HeadKind::SpanQa, dir).unwrap();
}

struct Setup {
    model: String,
    opts: RunOptions,
    mnli: TaskData,
    sst2: TaskData,
}

impl Setup {
    /// The tiny model in `model_dir`, MNLI and SST-2 (`n` examples each).
    fn new(model_dir: &Path, n: usize) -> Self {
        let data = common::shared_data();
        Setup {
            model: model_dir.display().to_string(),
            opts: RunOptions::from_overrides(
                None,
                &serde_json::json!({"lr": 1e-3, "batch_size": 16, "max_length": 48, "epochs": 1}),
            )
            .unwrap(),
            mnli: load("mnli", &data.join("intermediate/mnli"), "train", &[], n),
            sst2: load("sst2", &data.join("intermediate/sst2"), "train", &[], n),
        }
    }

    fn condition(
        &self,
        intermediate: Vec<TaskData>,
        evals: Vec<(String, TaskData)>,
        seed: u64,
    ) -> Condition {
        Condition {
            name: if intermediate.is_empty() {
                "none".into()
            } else {
                "sst2".into()
            },
            model: ModelSource::Spec(self.model.clone()),
            model_label: "tiny".into(),
            intermediate,
            sampling: Sampling::Proportional,
            intermediate_dev: None,
            intermediate_options: self.opts.clone(),
            target: Some(self.mnli.clone()),
            target_dev: None,
            target_options: self.opts.clone(),
            evaluations: evals,
            eval_batch_size: 32,
            seed,
            keep: Default::default(),
        }
    }
}

fn run(c: &Condition, store: &Store, phases: &mut usize) -> ConditionResult {
    let mut bars = |_: &str| -> Box<dyn Progress> {
        *phases += 1;
        Box::new(Silent)
    };
    run_condition(c, Some(store), false, &mut bars, &AtomicBool::new(false)).unwrap()
}

#[test]
fn conditions_run_are_reused_by_fingerprint_and_share_intermediate_phases() {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("tiny");
    tiny_dir(&model_dir);
    let data = common::shared_data();
    let s = Setup::new(&model_dir, 48);
    let xnli = load("xnli", &data.join("xnli"), "dev", &["de", "sw"], 30);
    let store = Store::new(tmp.path().join("store/runs.jsonl"));
    let mut phases = 0;
    let evals = vec![("dev".to_string(), xnli.clone())];
    let base = run(&s.condition(vec![], evals.clone(), 0), &store, &mut phases);
    let first = run(
        &s.condition(vec![s.sst2.clone()], evals.clone(), 0),
        &store,
        &mut phases,
    );
    assert!(!base.reused && !first.reused && !first.intermediate_reused);
    let ev = evaluations(&first.record);
    let langs: Vec<&str> = ev["dev"].languages.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(langs, vec!["de", "sw"]);
    assert!(ev["dev"]
        .languages
        .iter()
        .all(|l| l.2 == 30 && l.3.as_ref().unwrap().len() == 30));
    assert_eq!(ev["dev"].metric, "accuracy");
    assert!(first.record.curves.contains_key("intermediate.sst2"));
    assert!(first.record.code_version.starts_with("stilts "));
    assert_eq!(store.records().unwrap().len(), 2);

    // The same condition again: found by fingerprint, nothing trained.
    let before = phases;
    let again = run(
        &s.condition(vec![s.sst2.clone()], evals.clone(), 0),
        &store,
        &mut phases,
    );
    assert!(again.reused);
    assert_eq!(phases, before, "a finished condition was trained again");
    assert_eq!(again.record, first.record);
    // Another seed is another condition.
    let seed1 = run(
        &s.condition(vec![s.sst2.clone()], evals.clone(), 1),
        &store,
        &mut phases,
    );
    assert!(!seed1.reused && seed1.record.key != first.record.key);

    // A second target evaluation (another eval set) of the same intermediate
    // phase: a new condition, but the intermediate model comes from the store.
    let test_like = load("xnli", &data.join("xnli"), "test", &["de"], 20);
    let two = run(
        &s.condition(
            vec![s.sst2.clone()],
            vec![("dev".into(), xnli.clone()), ("test".into(), test_like)],
            0,
        ),
        &store,
        &mut phases,
    );
    assert!(
        !two.reused && two.intermediate_reused,
        "the intermediate phase was trained twice"
    );
    // Trained once or loaded: the same encoder, so the same numbers on dev.
    assert_eq!(
        evaluations(&two.record)["dev"].languages,
        evaluations(&first.record)["dev"].languages
    );
    assert_eq!(
        std::fs::read_dir(tmp.path().join("store/intermediate"))
            .unwrap()
            .count(),
        2,
        "seeds 0 and 1"
    );
}

#[test]
fn a_changed_data_file_re_runs_exactly_the_conditions_that_read_it() {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("tiny");
    tiny_dir(&model_dir);
    let data = common::shared_data();
    // A private copy of two XNLI dev files, so one can be changed.
    let xdir = tmp.path().join("xnli");
    std::fs::create_dir_all(&xdir).unwrap();
    for l in ["de", "sw"] {
        let text = std::fs::read_to_string(data.join(format!("xnli/dev-{l}.tsv"))).unwrap();
        let head: Vec<&str> = text.lines().take(40).collect();
        std::fs::write(xdir.join(format!("dev-{l}.tsv")), head.join("\n") + "\n").unwrap();
    }
    let s = Setup::new(&model_dir, 32);
    let store = Store::new(tmp.path().join("store/runs.jsonl"));
    let mut phases = 0;
    let conds = |s: &Setup| {
        let de = load("xnli", &xdir, "dev", &["de"], 30);
        let sw = load("xnli", &xdir, "dev", &["sw"], 30);
        vec![
            s.condition(vec![], vec![("dev".into(), de.clone())], 0),
            s.condition(vec![s.sst2.clone()], vec![("dev".into(), de)], 0),
            s.condition(vec![], vec![("dev".into(), sw.clone())], 0),
            s.condition(vec![s.sst2.clone()], vec![("dev".into(), sw)], 0),
        ]
    };
    for c in conds(&s) {
        assert!(!run(&c, &store, &mut phases).reused);
    }
    // Change one line of the German file (the text of pair 3).
    let p = xdir.join("dev-de.tsv");
    let text = std::fs::read_to_string(&p).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[2] = lines[2].replacen('\t', " (geändert)\t", 1);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    let reused: Vec<bool> = conds(&s)
        .iter()
        .map(|c| run(c, &store, &mut phases).reused)
        .collect();
    assert_eq!(
        reused,
        vec![false, false, true, true],
        "only the conditions reading dev-de re-ran"
    );
    // A file that changes beyond what is read (past the 30 examples taken)
    // still changes the fingerprint: the record names the file's hash.
    let mut lines: Vec<String> = std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines[35] = lines[35].replacen('\t', " !\t", 1);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    let c = &conds(&s)[0];
    assert!(!run(c, &store, &mut phases).reused);
    assert_eq!(store.records().unwrap().len(), 7);
}
