//! Bad data in a recipe never gets through quietly: a malformed line of a
//! `task("tsv", ..)` file is an error naming the file and line, or under
//! `skip_bad_lines` a counted skip the run's output and report show. (The
//! readers' own cases are `stilts-tasks`' `bad_data` tests.)

use std::path::Path;

use crate::common;

fn run_in(dir: &Path, src: &str) -> (i32, String, String) {
    std::fs::write(dir.join("s.rhai"), src).unwrap();
    common::stilts_in(dir, &["--quiet", "run", "s.rhai", "--out", "rep"])
}

#[test]
fn skipped_lines_of_a_tsv_task_are_counted_and_shown_and_labels_are_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.tsv"),
        "one two\ta\nthree\tb\nfour\tc\nfive\tsix\tb\n",
    )
    .unwrap();
    let load =
        "task(\"tsv\", #{file: \"t.tsv\", columns: [\"text\", \"label\"], labels: [\"a\", \"b\"]";
    let (code, _, err) = run_in(dir.path(), &format!("let t = {load}}});\n"));
    assert_ne!(code, 0);
    assert!(
        err.contains("t.tsv:3") && err.contains("label `c`"),
        "{err}"
    );
    let (code, out, err) = run_in(
        dir.path(),
        &format!("let t = {load}, skip_bad_lines: true}});\nprint(t.len);\n"),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "2");
    assert!(
        err.contains("2 malformed lines left out") && err.contains("t.tsv:3"),
        "{err}"
    );
    let report = std::fs::read_to_string(dir.path().join("rep/report.md")).unwrap();
    assert!(report.contains("2 malformed lines left out"), "{report}");
    // `labels` on a model that already has a head with other labels.
    let (code, _, err) = run_in(
        dir.path(),
        "let m = tiny_model(#{text: [\"one two\"], vocab: 30, hidden: 16, layers: 1, heads: 2, ffn: 32, labels: [\"a\", \"b\"]});\nm.save(\"m\");\nlet again = model(\"m\", #{labels: [\"x\", \"y\"]});\n",
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("differ from its head's") && err.contains("head: \"classification\""),
        "{err}"
    );
}
