//! SQuAD: reading v1.1 and v2.0, the official EM/F1 (100 for the gold
//! answers), sliding windows whose labels decode back to the answers,
//! post-processing from logits to answer text, and malformed files.

use std::collections::HashMap;
use std::path::PathBuf;

use stilts_model::Error;
use stilts_tasks::features::span_label;
use stilts_tasks::metrics::{exact_match, f1, normalize_answer, squad_v1, squad_v2};
use stilts_tasks::{
    self as tasks, featurize, Example, FeatureOptions, Label, PostprocessOptions, ReadOptions,
    TextEncoder,
};

fn shared() -> PathBuf {
    PathBuf::from(crate::common::REPO)
        .join("..")
        .join("shared")
        .join("data")
}

fn v1_root() -> PathBuf {
    shared().join("intermediate").join("squad_v1.1")
}

fn v2_root() -> PathBuf {
    shared()
        .join("intermediate")
        .join("squad_v2.0_cs224n_subset")
}

/// Loading the 250k-entry tokenizer takes a few seconds: once per binary.
fn encoder() -> &'static TextEncoder {
    static E: std::sync::OnceLock<TextEncoder> = std::sync::OnceLock::new();
    E.get_or_init(|| TextEncoder::from_file(&shared().join("xlmr").join("tokenizer.json")).unwrap())
}

fn gold_predictions(examples: &[Example]) -> HashMap<String, String> {
    examples
        .iter()
        .map(|e| match e {
            Example::Span { id, answers, .. } => (
                id.clone(),
                answers.first().map(|a| a.text.clone()).unwrap_or_default(),
            ),
            _ => panic!("not a span example"),
        })
        .collect()
}

#[test]
fn normalize_and_token_f1_follow_the_official_script() {
    assert_eq!(
        normalize_answer("The  Quick, brown fox!"),
        "quick brown fox"
    );
    assert_eq!(normalize_answer("an apple a day, the end"), "apple day end");
    assert_eq!(normalize_answer("Theory of a-n-the"), "theory of anthe");
    assert_eq!(normalize_answer("«the» Fox"), "« » fox");
    assert_eq!(exact_match("the Denver Broncos", "Denver Broncos!"), 1.0);
    assert_eq!(exact_match("Denver", "Denver Broncos"), 0.0);
    assert!((f1("Denver", "Denver Broncos") - 2.0 / 3.0).abs() < 1e-12);
    assert!((f1("x b b", "b b c") - 2.0 / 3.0).abs() < 1e-12);
    // Articles are dropped before counting: "a b b" vs "b b c" is P=1, R=2/3.
    assert!((f1("a b b", "b b c") - 0.8).abs() < 1e-12);
    assert_eq!(f1("", ""), 1.0);
    assert_eq!(f1("x", ""), 0.0);
}

#[test]
fn squad_v1_dev_reads_and_gold_scores_100() {
    let ds = tasks::load("squad_v1", &v1_root(), "dev", None, &ReadOptions::default()).unwrap();
    assert_eq!(ds.len(), 10570);
    assert_eq!(ds.metric, tasks::Metric::SquadV1);
    match &ds.examples[0] {
        Example::Span {
            id,
            question,
            answers,
            context,
            line,
            is_impossible,
        } => {
            assert_eq!(id, "56be4db0acb8001400a502ec");
            assert_eq!(
                question,
                "Which NFL team represented the AFC at Super Bowl 50?"
            );
            assert_eq!(answers.len(), 3);
            assert_eq!(answers[0].text, "Denver Broncos");
            assert_eq!(
                &context
                    .chars()
                    .skip(answers[0].start)
                    .take(14)
                    .collect::<String>(),
                "Denver Broncos"
            );
            assert_eq!((*line, *is_impossible), (1, false));
        }
        _ => panic!(),
    }
    let s = squad_v1(&ds.examples, &gold_predictions(&ds.examples)).unwrap();
    assert_eq!((s.exact, s.f1, s.total), (100.0, 100.0, 10570));
    // A wrong answer for every question scores 0; dropping predictions scores them 0.
    let wrong: HashMap<String, String> = ds
        .examples
        .iter()
        .map(|e| (e.id().to_string(), "zzzz".into()))
        .collect();
    assert_eq!(squad_v1(&ds.examples, &wrong).unwrap().exact, 0.0);
    let half: HashMap<String, String> = gold_predictions(&ds.examples)
        .into_iter()
        .filter(|(k, _)| k.ends_with(['0', '2', '4', '6', '8', 'a', 'c', 'e']))
        .collect();
    let sh = squad_v1(&ds.examples, &half).unwrap();
    assert!((sh.exact - 100.0 * half.len() as f64 / 10570.0).abs() < 1e-9);
}

#[test]
fn squad_v2_subset_gold_scores_100_with_no_answer_counts() {
    let ds = tasks::load("squad_v2", &v2_root(), "dev", None, &ReadOptions::default()).unwrap();
    assert_eq!(ds.len(), 6078);
    let impossible = ds.examples.iter().filter(|e| matches!(e, Example::Span { is_impossible: true, answers, .. } if answers.is_empty())).count();
    assert_eq!(impossible, 3168);
    let s = squad_v2(&ds.examples, &gold_predictions(&ds.examples)).unwrap();
    assert_eq!((s.exact, s.f1, s.total), (100.0, 100.0, 6078));
    assert_eq!((s.has_ans_total, s.no_ans_total), (2910, 3168));
    // Always answering "" gets exactly the no-answer share.
    let empty: HashMap<String, String> = ds
        .examples
        .iter()
        .map(|e| (e.id().to_string(), String::new()))
        .collect();
    let s = squad_v2(&ds.examples, &empty).unwrap();
    assert!((s.exact - 100.0 * 3168.0 / 6078.0).abs() < 1e-9);
    assert_eq!((s.has_ans_exact, s.no_ans_exact), (Some(0.0), Some(100.0)));
}

/// Windows of 384 tokens with stride 128 (HF run_qa.py): the labelled span
/// of every window that holds the answer decodes back to it.
#[test]
fn squad_windows_map_answers_back() {
    let ds = tasks::load("squad_v1", &v1_root(), "dev", None, &ReadOptions::default()).unwrap();
    let enc = encoder();
    let feats = featurize(&ds, enc, &FeatureOptions::squad()).unwrap();
    assert!(feats.len() > ds.len(), "long contexts make several windows");
    let mut windows_of = vec![0usize; ds.len()];
    let (mut labelled, mut decoded_ok, mut offsets_ok) = (0usize, 0usize, 0usize);
    let mut examples_with_answer = std::collections::HashSet::new();
    for f in &feats {
        windows_of[f.example] += 1;
        assert!(f.rows[0].len() <= 384);
        assert_eq!(f.rows[0][0], enc.cls_id());
        assert_eq!(f.offsets.len(), f.rows[0].len());
        let Label::Span { start, end } = f.label else {
            panic!("not a span label")
        };
        if start == 0 && end == 0 {
            continue;
        }
        assert!(start <= end && f.offsets[start].is_some() && f.offsets[end].is_some());
        labelled += 1;
        examples_with_answer.insert(f.example);
        let Example::Span {
            context, answers, ..
        } = &ds.examples[f.example]
        else {
            panic!()
        };
        let gold = normalize_answer(&answers[0].text);
        let text = enc.decode(&f.rows[0][start..=end]).unwrap();
        decoded_ok += usize::from(normalize_answer(&text) == gold);
        let (a, b) = (f.offsets[start].unwrap().0, f.offsets[end].unwrap().1);
        let by_offsets: String = context.chars().skip(a).take(b - a).collect();
        offsets_ok += usize::from(normalize_answer(&by_offsets) == gold);
    }
    // Every question has its answer in some window (answers are short).
    assert_eq!(examples_with_answer.len(), ds.len());
    assert!(windows_of.iter().all(|&w| w >= 1));
    assert!(windows_of.iter().any(|&w| w >= 3));
    // Decoding sub-words can differ in spacing (e.g. "1,000" vs "1, 000"); offsets are exact up to token edges.
    assert!(
        decoded_ok as f64 >= 0.97 * labelled as f64,
        "{decoded_ok} of {labelled} decode to the answer"
    );
    assert!(
        offsets_ok as f64 >= 0.99 * labelled as f64,
        "{offsets_ok} of {labelled} map back through offsets"
    );

    // Oracle logits (high at the labelled start/end) give the gold answers back.
    let logits: Vec<(Vec<f32>, Vec<f32>)> = feats
        .iter()
        .map(|f| {
            let n = f.rows[0].len();
            let (mut s, mut e) = (vec![0f32; n], vec![0f32; n]);
            if let Label::Span { start, end } = f.label {
                s[start] = 10.0;
                e[end] = 10.0;
            }
            (s, e)
        })
        .collect();
    let preds = tasks::postprocess(
        &ds.examples,
        &feats,
        &logits,
        &PostprocessOptions::default(),
    )
    .unwrap();
    assert_eq!(preds.len(), ds.len());
    let map: HashMap<String, String> = preds.into_iter().map(|p| (p.id, p.text)).collect();
    let s = squad_v1(&ds.examples, &map).unwrap();
    assert!(s.exact > 98.0 && s.f1 > 99.0, "{s:?}");
}

/// SQuAD 2.0: unanswerable questions are labelled at `<s>`, and the null
/// score wins for them in post-processing.
#[test]
fn squad_v2_windows_and_null_answers() {
    let opts = ReadOptions::default().with_first(600);
    let ds = tasks::load("squad_v2", &v2_root(), "dev", None, &opts).unwrap();
    assert_eq!(ds.len(), 600);
    let enc = encoder();
    let feats = featurize(&ds, enc, &FeatureOptions::squad()).unwrap();
    for f in &feats {
        if let Example::Span {
            is_impossible: true,
            ..
        } = ds.examples[f.example]
        {
            assert_eq!(f.label, Label::Span { start: 0, end: 0 });
        }
    }
    let logits: Vec<(Vec<f32>, Vec<f32>)> = feats
        .iter()
        .map(|f| {
            let n = f.rows[0].len();
            let (mut s, mut e) = (vec![-1f32; n], vec![-1f32; n]);
            if let Label::Span { start, end } = f.label {
                s[start] = 8.0;
                e[end] = 8.0;
            }
            (s, e)
        })
        .collect();
    let preds =
        tasks::postprocess(&ds.examples, &feats, &logits, &PostprocessOptions::v2()).unwrap();
    let map: HashMap<String, String> = preds
        .iter()
        .map(|p| (p.id.clone(), p.text.clone()))
        .collect();
    let s = squad_v2(&ds.examples, &map).unwrap();
    assert!(s.no_ans_exact == Some(100.0), "{s:?}");
    assert!(s.has_ans_exact.unwrap() > 97.0, "{s:?}");
    // Without negatives the best span is always some text.
    let preds1 = tasks::postprocess(
        &ds.examples,
        &feats,
        &logits,
        &PostprocessOptions::default(),
    )
    .unwrap();
    assert!(preds1.iter().all(|p| !p.text.is_empty()));
}

#[test]
fn span_label_follows_run_qa() {
    // <s> q q </s> </s> c0 c1 c2 </s>, context chars: c0 0..5, c1 5..9, c2 10..14
    let off = vec![
        None,
        None,
        None,
        None,
        None,
        Some((0, 5)),
        Some((5, 9)),
        Some((10, 14)),
        None,
    ];
    assert_eq!(span_label(&off, 5, 9), (6, 6));
    assert_eq!(span_label(&off, 0, 14), (5, 7));
    assert_eq!(span_label(&off, 6, 12), (6, 7));
    assert_eq!(span_label(&off, 10, 14), (7, 7));
    // Not (fully) in the window: <s>.
    assert_eq!(span_label(&off, 12, 20), (0, 0));
}

#[test]
fn squad_malformed_answers_carry_line_and_id() {
    let dir = tempfile::tempdir().unwrap();
    let good = serde_json::json!({"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "Paris is in France.", "qas": [
        {"id": "q1", "question": "Where is Paris?", "answers": [{"text": "France", "answer_start": 12}]},
        {"id": "q2", "question": "What is in France?", "answers": [{"text": "Paris", "answer_start": 0}]}
    ]}]}]});
    let pretty = serde_json::to_string_pretty(&good).unwrap();
    std::fs::write(dir.path().join("dev-v1.1.json"), &pretty).unwrap();
    let ds = tasks::load("squad_v1", dir.path(), "dev", None, &ReadOptions::default()).unwrap();
    assert_eq!(ds.len(), 2);
    let q2_line = pretty.lines().position(|l| l.contains("\"q2\"")).unwrap() + 1;
    assert_eq!(ds.examples[1].line(), q2_line);
    // Answer span outside its context.
    let bad = pretty.replace("\"answer_start\": 12", "\"answer_start\": 15");
    std::fs::write(dir.path().join("dev-v1.1.json"), &bad).unwrap();
    let q1_line = bad.lines().position(|l| l.contains("\"q1\"")).unwrap() + 1;
    match tasks::load("squad_v1", dir.path(), "dev", None, &ReadOptions::default()) {
        Err(Error::Data { line, msg, path }) => {
            assert_eq!(line, q1_line);
            assert!(path.ends_with("dev-v1.1.json"));
            assert!(
                msg.contains("question q1") && msg.contains("lies outside its context"),
                "{msg}"
            );
        }
        other => panic!("{:?}", other.map(|d| d.len())),
    }
    let ds = tasks::load(
        "squad_v1",
        dir.path(),
        "dev",
        None,
        &ReadOptions::skip_bad_lines(),
    )
    .unwrap();
    assert_eq!((ds.len(), ds.skipped.bad_lines), (1, 1));
    // Text that doesn't match the context at answer_start.
    std::fs::write(
        dir.path().join("dev-v1.1.json"),
        pretty.replace("\"answer_start\": 12", "\"answer_start\": 11"),
    )
    .unwrap();
    let e = tasks::load("squad_v1", dir.path(), "dev", None, &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not match the context at char 11"), "{e}");
    // Truncated JSON.
    std::fs::write(
        dir.path().join("dev-v1.1.json"),
        &pretty[..pretty.len() / 2],
    )
    .unwrap();
    assert!(
        matches!(tasks::load("squad_v1", dir.path(), "dev", None, &ReadOptions::default()), Err(Error::Data { msg, .. }) if msg.contains("bad JSON"))
    );
}

/// Issue 14, item 3: a training call's `max_length` and `doc_stride` make
/// the span QA windows; without them the windows are run_qa.py's 384/128.
#[test]
fn squad_windows_follow_max_length_and_doc_stride() {
    use stilts_protocol::presets::RunOptions;
    use stilts_protocol::run;
    let ds = tasks::load(
        "squad_v1",
        &v1_root(),
        "dev",
        None,
        &ReadOptions::default().with_first(40),
    )
    .unwrap();
    let enc = encoder();
    let cache = tasks::FeatureCache::default();
    let windows = |opts: serde_json::Value| {
        let o = RunOptions::resolve(&opts, None).unwrap().options;
        let f = run::features(&ds, enc, &o, &cache).unwrap();
        let longest = f.iter().map(|x| x.rows[0].len()).max().unwrap();
        (f.len(), longest)
    };
    let (n384, l384) = windows(serde_json::json!({}));
    assert!(l384 <= 384 && l384 > 128, "run_qa.py's default: {l384}");
    let (n128, l128) = windows(serde_json::json!({"max_length": 128}));
    assert!(
        l128 <= 128,
        "max_length 128 makes windows of at most 128: {l128}"
    );
    assert!(
        n128 > n384,
        "shorter windows, more of them: {n128} vs {n384}"
    );
    let (n_s, l_s) = windows(serde_json::json!({"max_length": 128, "doc_stride": 80}));
    assert!(l_s <= 128);
    assert!(n_s > n128, "more overlap, more windows: {n_s} vs {n128}");
    // The preset's max_length (jiant 256) is not a window: SQuAD keeps 384.
    let jiant = RunOptions::resolve(&serde_json::json!({}), None)
        .unwrap()
        .options;
    assert_eq!((jiant.max_length, jiant.qa_window()), (256, (384, 128)));
    let e = RunOptions::resolve(&serde_json::json!({"doc_stride": 0}), None).unwrap_err();
    assert!(e.to_string().contains("doc_stride"), "{e}");
}
