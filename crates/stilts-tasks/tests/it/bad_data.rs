//! Bad data never gets through quietly: each case is an error naming the
//! file and line (or a counted skip under `skip_bad_lines` that the run's
//! output and report show).

use std::path::Path;

use stilts_tasks::{self as tasks, ReadOptions};

fn err_of(task: &str, root: &Path, split: &str) -> String {
    tasks::load(task, root, split, None, &ReadOptions::default())
        .map(|d| panic!("{task}: loaded {} examples", d.len()))
        .unwrap_err()
        .to_string()
}

#[test]
fn empty_files_and_rows_without_labels_are_errors_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.tsv"), "text\tlabel\n").unwrap();
    let e = err_of("sst2", dir.path(), "train");
    assert!(e.contains("train.tsv") && e.contains("no examples"), "{e}");
    std::fs::write(
        dir.path().join("train.tsv"),
        "text\tlabel\ngood film\t1\nbad film\nok film\t0\n",
    )
    .unwrap();
    let e = err_of("sst2", dir.path(), "train");
    assert!(e.contains("train.tsv:3"), "{e}");
    // A JSON-lines file whose rows have labels, but one row lacks it.
    std::fs::remove_file(dir.path().join("train.tsv")).unwrap();
    std::fs::write(
        dir.path().join("train.jsonl"),
        "{\"text\": \"good\", \"label\": \"1\"}\n{\"text\": \"bad\"}\n{\"text\": \"ok\", \"label\": \"0\"}\n",
    )
    .unwrap();
    let spec = || stilts_tasks::GenericSpec::new(&["text"], "label", &["0", "1"]);
    let e = stilts_tasks::generic("mine", spec())
        .load(dir.path(), "train", None, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("train.jsonl:2") && e.contains("no label"), "{e}");
    // Under skip_bad_lines the row is left out and counted.
    let d = stilts_tasks::generic("mine", spec())
        .load(dir.path(), "train", None, &ReadOptions::skip_bad_lines())
        .unwrap();
    assert_eq!((d.len(), d.skipped.bad_lines), (2, 1));
    assert!(d.skipped.first[0].to_string().contains("train.jsonl:2"));
}

#[test]
fn a_choice_row_with_another_number_of_endings_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let row = |n: usize| {
        let endings: Vec<String> = (0..n).map(|i| format!("\"ending {i}\"")).collect();
        format!(
            "{{\"ind\": 0, \"ctx\": \"A man\", \"label\": 0, \"endings\": [{}]}}\n",
            endings.join(", ")
        )
    };
    std::fs::write(
        dir.path().join("val.jsonl"),
        format!("{}{}{}", row(4), row(3), row(4)),
    )
    .unwrap();
    let e = err_of("hellaswag", dir.path(), "dev");
    assert!(
        e.contains("val.jsonl:2") && e.contains("3 candidates") && e.contains("have 4"),
        "{e}"
    );
}

#[test]
fn a_folder_where_a_file_belongs_and_bad_utf8_are_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("dev.tsv")).unwrap();
    let e = err_of("sst2", dir.path(), "dev");
    assert!(e.contains("dev.tsv") && e.contains("is a folder"), "{e}");
    let f = dir.path().join("t.tsv");
    std::fs::write(&f, b"one\ta\ntwo \xff\xfe\tb\n").unwrap();
    let e = stilts_model::error::read_to_string(&f)
        .unwrap_err()
        .to_string();
    assert!(e.contains("t.tsv:2") && e.contains("UTF-8"), "{e}");
}

#[test]
fn a_generic_file_without_its_label_column_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("train.csv"), "text,other\nnice,1\n").unwrap();
    let spec = stilts_tasks::GenericSpec::new(&["text"], "label", &["0", "1"]);
    let e = stilts_tasks::generic("mine", spec)
        .load(dir.path(), "train", None, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train.csv") && e.contains("no label column `label`"),
        "{e}"
    );
}
