//! The `stilts` binary: `stilts tiny` writes a model, `stilts predict`
//! classifies a file with it, one JSON line per input line, in input order,
//! agreeing with `stilts::predict::predict` in-process.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::{nli_labels, sample_texts};
use stilts::model::{LoadOptions, Model};

fn stilts(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stilts"))
        .args(args)
        .output()
        .expect("running the stilts binary")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `stilts tiny DIR --text FILE` in a fresh tempdir.
fn tiny(root: &Path) -> std::path::PathBuf {
    let corpus = root.join("corpus.txt");
    std::fs::write(&corpus, sample_texts().join("\n")).unwrap();
    let dir = root.join("model");
    let out = stilts(&[
        "tiny".as_ref(),
        dir.as_os_str(),
        "--text".as_ref(),
        corpus.as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "stilts tiny failed:\n{}",
        text(&out.stderr)
    );
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(dir.join(f).is_file(), "stilts tiny wrote no {f}");
    }
    dir
}

const INPUT: &str = "the cat sat on the mat\ta cat is sitting\n\
le chien mange une pomme\n\
\n\
people walk to the market every morning\tnobody walks to the market\n\
the weather is cold and rainy today\n\
die katze schläft auf dem sofa\tdie katze schläft\r\n\
no one came to the meeting\tthe meeting was full of people and everyone came early to sing a song about the river\n";

#[test]
fn predict_prints_one_json_line_per_example_in_order() {
    let root = tempfile::tempdir().unwrap();
    let dir = tiny(root.path());
    let input = root.path().join("input.tsv");
    std::fs::write(&input, INPUT).unwrap();

    // batch size 2 so that length-sorted batching has to restore the order.
    let out = stilts(&[
        "predict".as_ref(),
        dir.as_os_str(),
        input.as_os_str(),
        "--batch-size".as_ref(),
        "2".as_ref(),
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "stilts predict failed:\n{stderr}");
    let stdout = text(&out.stdout);
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();

    let want_lines: Vec<u64> = INPUT
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, _)| i as u64 + 1)
        .collect();
    assert_eq!(want_lines, vec![1, 2, 4, 5, 6, 7]);
    assert_eq!(lines.len(), want_lines.len(), "stdout:\n{stdout}");
    let labels = nli_labels();
    for (v, want) in lines.iter().zip(&want_lines) {
        assert_eq!(v["line"].as_u64(), Some(*want), "{v}");
        let logits: Vec<f64> = v["logits"]
            .as_array()
            .expect("logits")
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let probs: Vec<f64> = v["probs"]
            .as_array()
            .expect("probs")
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(logits.len(), 3, "{v}");
        assert_eq!(probs.len(), 3, "{v}");
        let sum: f64 = probs.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "probs sum to {sum}: {v}");
        assert!(probs.iter().all(|p| (0.0..=1.0).contains(p)), "{v}");
        // probs are the softmax of logits, and label the arg max.
        let m = logits.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = logits.iter().map(|l| (l - m).exp()).sum();
        for (l, p) in logits.iter().zip(&probs) {
            assert!(((l - m).exp() / z - p).abs() < 1e-5, "{v}");
        }
        let label = v["label"].as_str().expect("label");
        assert!(
            labels.iter().any(|l| l == label),
            "label {label} not in {labels:?}"
        );
        let best = probs
            .iter()
            .enumerate()
            .fold(0, |b, (j, p)| if *p > probs[b] { j } else { b });
        assert_eq!(label, labels[best], "{v}");
    }

    // The same as the library computes in-process on the same directory.
    let model = Model::from_dir(&dir, &LoadOptions::default()).unwrap();
    let examples = stilts::predict::read_examples(&input).unwrap();
    assert_eq!(examples.len(), 6);
    assert_eq!(examples[1].second, None);
    assert_eq!(
        examples[4].second.as_deref(),
        Some("die katze schläft"),
        "the \\r of a CRLF line must not reach the text"
    );
    let preds = stilts::predict::predict(&model, &examples, 32, 128).unwrap();
    assert_eq!(preds.len(), lines.len());
    for (p, v) in preds.iter().zip(&lines) {
        assert_eq!(v["line"].as_u64(), Some(p.line as u64));
        assert_eq!(
            v["label"].as_str(),
            Some(p.label.as_str()),
            "line {}",
            p.line
        );
        for (key, ours) in [("probs", &p.probs), ("logits", &p.logits)] {
            let cli: Vec<f64> = v[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            for (a, b) in cli.iter().zip(ours.iter()) {
                assert!(
                    (a - *b as f64).abs() < 1e-6,
                    "line {}: {key} {cli:?} vs {ours:?}",
                    p.line
                );
            }
        }
    }
    // Different inputs get different logits (the model is not constant).
    assert!(preds.windows(2).any(|w| w[0].logits != w[1].logits));
}

#[test]
fn predict_rejects_a_line_with_three_fields() {
    let root = tempfile::tempdir().unwrap();
    let dir = tiny(root.path());
    let input = root.path().join("bad.tsv");
    std::fs::write(
        &input,
        "the cat sat\ta cat\n\nthe dog\truns\tentailment\nfine line\n",
    )
    .unwrap();
    let out = stilts(&["predict".as_ref(), dir.as_os_str(), input.as_os_str()]);
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "accepted a 3-field line; stdout:\n{}",
        text(&out.stdout)
    );
    let want = format!("{}:3:", input.display());
    assert!(
        stderr.contains(&want),
        "stderr does not contain {want:?}:\n{stderr}"
    );
    assert!(stderr.contains("3 tab-separated fields"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn predict_with_a_missing_model_dir_names_it() {
    let root = tempfile::tempdir().unwrap();
    let input = root.path().join("input.tsv");
    std::fs::write(&input, "the cat sat\ta cat\n").unwrap();
    let missing = root.path().join("no-model-here");
    let out = stilts(&["predict".as_ref(), missing.as_os_str(), input.as_os_str()]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    assert!(
        stderr.contains(&missing.display().to_string()),
        "stderr does not name {}:\n{stderr}",
        missing.display()
    );
    assert!(stderr.contains("not found"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Issue 14, item 14: `-` reads standard input; `--skip-bad-lines` reports
/// a malformed line and classifies the rest; one text given to a model
/// with NLI labels is warned about.
#[test]
fn predict_reads_stdin_skips_bad_lines_and_warns_about_single_texts() {
    use std::io::Write;
    let root = tempfile::tempdir().unwrap();
    let dir = tiny(root.path());
    let input =
        "the cat sat\ta cat\nthe dog\truns\tentailment\njust one text\nfine line\tanother\n";
    let mut child = Command::new(env!("CARGO_BIN_EXE_stilts"))
        .args([
            "predict".as_ref(),
            dir.as_os_str(),
            "-".as_ref(),
            "--skip-bad-lines".as_ref(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<u64> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["line"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        lines,
        vec![1, 3, 4],
        "the bad line 2 left out, the rest classified"
    );
    assert!(
        stderr.contains("<stdin>:2: expected `text` or `premise<TAB>hypothesis`, found 3 tab-separated fields; line left out"),
        "{stderr}"
    );
    assert!(
        stderr.contains("sentence-pair task, but 1 line holds one text (the first: line 3)"),
        "{stderr}"
    );
    // Without the flag the same input is an error naming the line.
    let mut child = Command::new(env!("CARGO_BIN_EXE_stilts"))
        .args(["predict".as_ref(), dir.as_os_str(), "-".as_ref()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--skip-bad-lines"),
        "{}",
        text(&out.stderr)
    );
}
