//! `tasks::open`, the one door: each kind of [`TaskSource`] on the real
//! XNLI files (or a small file written here), with the selection applied
//! (languages, a prefix, a stratified limit, a balanced sample), and the
//! errors that name what is missing.

use std::path::PathBuf;

use stilts_tasks::{self as tasks, GenericSpec, MlmText, Selection, TaskSource};

fn xnli() -> PathBuf {
    crate::common::shared_data().join("xnli")
}

fn sel(split: &str, langs: &[&str]) -> Selection {
    Selection {
        split: split.into(),
        languages: Some(langs.iter().map(|s| s.to_string()).collect()),
        ..Selection::default()
    }
}

#[test]
fn a_builtin_task_opens_a_part_per_selected_language_and_samples_each() {
    let source = TaskSource::Builtin {
        name: "xnli".into(),
        data: xnli(),
    };
    let all = tasks::open(&source, &sel("dev", &["de", "sw"])).unwrap();
    assert_eq!((all.name.as_str(), all.split.as_str()), ("xnli", "dev"));
    let langs: Vec<_> = all
        .parts
        .iter()
        .map(|p| p.subset.clone().unwrap())
        .collect();
    assert_eq!(langs, ["de", "sw"]);
    assert_eq!(all.parts[0].examples.len(), 2490);

    // `limit` keeps each label's share; the same seed, the same lines.
    let limited = Selection {
        limit: Some(30),
        seed: 3,
        ..sel("dev", &["de", "sw"])
    };
    let a = tasks::open(&source, &limited).unwrap();
    let b = tasks::open(&source, &limited).unwrap();
    for (p, q) in a.parts.iter().zip(&b.parts) {
        assert_eq!(p.examples.len(), 30);
        let ids = |d: &tasks::Dataset| {
            d.examples
                .iter()
                .map(|e| e.id().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(p), ids(q));
    }
    // A prefix reads no further than N lines.
    let mut first = sel("dev", &["de"]);
    first.read.first = Some(5);
    assert_eq!(
        tasks::open(&source, &first).unwrap().parts[0]
            .examples
            .len(),
        5
    );
    // A balanced sample: ten of each label.
    let sampled = Selection {
        sample: Some(30),
        ..sel("dev", &["de"])
    };
    let t = tasks::open(&source, &sampled).unwrap();
    let mut counts = std::collections::BTreeMap::new();
    for e in &t.parts[0].examples {
        if let tasks::Example::Text { label: Some(l), .. } = e {
            *counts.entry(*l).or_insert(0) += 1;
        }
    }
    assert_eq!(counts.values().copied().collect::<Vec<_>>(), [10, 10, 10]);
}

#[test]
fn mlm_reads_the_distinct_premises_of_an_xnli_folder_or_raw_text_files() {
    let t = tasks::open(
        &TaskSource::Mlm(MlmText::Premises { data: xnli() }),
        &sel("dev", &["fr"]),
    )
    .unwrap();
    assert_eq!(t.name, "mlm");
    let n = t.parts[0].examples.len();
    // XNLI's dev set has three hypotheses per premise.
    assert!((800..=830).contains(&n), "{n} distinct premises");

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("sw.txt");
    std::fs::write(&f, "sentensi moja\n\nsentensi mbili\n").unwrap();
    let t = tasks::open(
        &TaskSource::Mlm(MlmText::Files(vec![f])),
        &Selection::default(),
    )
    .unwrap();
    assert_eq!((t.parts.len(), t.parts[0].examples.len()), (1, 2));
    let e = tasks::open(
        &TaskSource::Mlm(MlmText::Files(vec![])),
        &Selection::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no files given"), "{e}");
}

#[test]
fn a_generic_folder_and_a_missing_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.csv"), "text,label\ngood,1\nbad,0\n").unwrap();
    let t = tasks::open(
        &TaskSource::Generic {
            name: "mine".into(),
            data: dir.path().into(),
            spec: GenericSpec::new(&["text"], "label", &["0", "1"]),
        },
        &Selection::default(),
    )
    .unwrap();
    assert_eq!((t.name.as_str(), t.parts[0].examples.len()), ("mine", 2));

    let e = tasks::open(
        &TaskSource::Builtin {
            name: "xnli".into(),
            data: dir.path().join("nowhere"),
        },
        &Selection::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("task `xnli`: data folder") && e.contains("does not exist"),
        "{e}"
    );
    let e = tasks::open(
        &TaskSource::Builtin {
            name: "xnil".into(),
            data: xnli(),
        },
        &Selection::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("xnli"), "an unknown task names the closest: {e}");
}
