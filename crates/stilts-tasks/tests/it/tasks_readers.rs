//! The readers and the catalog: every format on the real files in
//! `../shared/data` where they exist, on small files written here in the
//! documented format where they don't (QQP, GLUE MNLI, original XNLI,
//! SNLI, CCG, Cosmos QA csv, generic), plus compressed input, malformed
//! lines (errors carry file:line) and the skip policy.

use std::io::Write;
use std::path::{Path, PathBuf};

use stilts_model::Error;
use stilts_model::HeadKind;
use stilts_tasks::{self as tasks, BadLines, Example, GenericSpec, ReadOptions};

fn shared() -> PathBuf {
    PathBuf::from(crate::common::REPO)
        .join("..")
        .join("shared")
        .join("data")
}

fn inter(t: &str) -> PathBuf {
    shared().join("intermediate").join(t)
}

fn fail() -> ReadOptions {
    ReadOptions::default()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

fn gz(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    let mut e = flate2::write::GzEncoder::new(
        std::fs::File::create(&p).unwrap(),
        flate2::Compression::default(),
    );
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap();
    p
}

fn bz2(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    let mut e = bzip2::write::BzEncoder::new(
        std::fs::File::create(&p).unwrap(),
        bzip2::Compression::default(),
    );
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap();
    p
}

/// The `(path, line)` of a data error, or a panic naming what came instead.
fn data_err(r: stilts_model::Result<tasks::Dataset>) -> (PathBuf, usize, String) {
    match r {
        Err(Error::Data { path, line, msg }) => (path, line, msg),
        Err(e) => panic!("expected a data error, got: {e}"),
        Ok(d) => panic!("expected a data error, read {} examples", d.len()),
    }
}

fn text_pair(e: &Example) -> (&str, &str, Option<usize>) {
    match e {
        Example::Text { a, b, label, .. } => (a, b.as_deref().unwrap_or(""), *label),
        other => panic!("not a text example: {other:?}"),
    }
}

#[test]
fn xnli_all_languages_test_and_dev() {
    let root = shared().join("xnli");
    let langs = tasks::catalog::XNLI_LANGUAGES;
    let mut first_labels: Option<Vec<Option<usize>>> = None;
    for lang in langs {
        let test = tasks::load("xnli", &root, "test", Some(lang), &fail()).unwrap();
        assert_eq!(test.len(), 5010, "{lang} test");
        assert_eq!(
            test.label_counts(),
            vec![1670, 1670, 1670],
            "{lang} test labels"
        );
        assert!(test.skipped.is_empty());
        let dev = tasks::load("xnli", &root, "dev", Some(lang), &fail()).unwrap();
        assert_eq!(dev.len(), 2490, "{lang} dev");
        assert_eq!(dev.label_counts(), vec![830, 830, 830]);
        // The rows are parallel across languages: same labels in the same order.
        let labels: Vec<Option<usize>> = test.examples.iter().map(Example::label).collect();
        match &first_labels {
            None => first_labels = Some(labels),
            Some(l) => assert_eq!(l, &labels, "{lang} labels not parallel"),
        }
    }
    let all = tasks::load("xnli", &root, "dev", Some("all"), &fail()).unwrap();
    assert_eq!(all.len(), 15 * 2490);
    assert_eq!(
        all.head,
        HeadKind::Classification {
            labels: vec![
                "entailment".into(),
                "neutral".into(),
                "contradiction".into()
            ]
        }
    );
    let en = tasks::load("xnli", &root, "dev", Some("en"), &fail()).unwrap();
    let (a, b, l) = text_pair(&en.examples[0]);
    assert_eq!(
        (a, b, l),
        (
            "And he said, Mama, I'm home.",
            "He called his mom as soon as the school bus dropped him off.",
            Some(1)
        )
    );
    assert_eq!(en.examples[0].line(), 1);
}

#[test]
fn xnli_missing_language_or_split_says_what_exists() {
    let root = shared().join("xnli");
    let e = tasks::load("xnli", &root, "test", Some("xx"), &fail())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no language `xx`") && e.contains("ar, bg, de"),
        "{e}"
    );
    let e = tasks::load("xnli", &root, "train", Some("en"), &fail())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("train-en.tsv") && e.contains("What exists there: dev (languages: ar bg"),
        "{e}"
    );
    assert!(e.contains("test (languages: ar"), "{e}");
    let e = tasks::load("xnli", &root, "dev", None, &fail())
        .unwrap_err()
        .to_string();
    assert!(e.contains("name a language"), "{e}");
    let e = tasks::load("xnli", &root, "validation_x", Some("en"), &fail())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no split `validation_x`") && e.contains("train, dev, test"),
        "{e}"
    );
    let e = tasks::task("xnlii").unwrap_err().to_string();
    assert!(
        e.contains("unknown task") && e.contains("americasnli"),
        "{e}"
    );
    // A folder with some languages only lists those.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root.join("dev-de.tsv"), dir.path().join("dev-de.tsv")).unwrap();
    let e = tasks::load("xnli", dir.path(), "dev", Some("fr"), &fail())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("dev (languages: de)") && !e.contains("test ("),
        "{e}"
    );
}

/// The original XNLI 1.0 one-file layout, written from the shared
/// per-language files with the documented header.
#[test]
fn xnli_original_one_file_layout() {
    let root = shared().join("xnli");
    let dir = tempfile::tempdir().unwrap();
    let header = "language\tgold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tpromptID\tpairID\tgenre\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tsentence1_tokenized\tsentence2_tokenized\tmatch";
    let mut text = format!("{header}\n");
    let langs = ["de", "en", "sw"];
    for lang in langs {
        let ds = tasks::load("xnli", &root, "dev", Some(lang), &fail()).unwrap();
        for (i, e) in ds.examples.iter().enumerate() {
            let (a, b, l) = text_pair(e);
            let gold = ["entailment", "neutral", "contradiction"][l.unwrap()];
            text.push_str(&format!("{lang}\t{gold}\t( x )\t( y )\t(ROOT x)\t(ROOT y)\t{a}\t{b}\t{}\t{i}\tfiction\t{gold}\t{gold}\t{gold}\t{gold}\t{gold}\tx\ty\tTrue\n", i / 3));
        }
    }
    write(dir.path(), "xnli.dev.tsv", &text);
    for lang in langs {
        let one = tasks::load("xnli", dir.path(), "dev", Some(lang), &fail()).unwrap();
        let per = tasks::load("xnli", &root, "dev", Some(lang), &fail()).unwrap();
        assert_eq!(one.len(), 2490);
        for (x, y) in one.examples.iter().zip(&per.examples) {
            assert_eq!(text_pair(x), text_pair(y));
        }
        assert_eq!(one.examples[5].id(), format!("{lang}-5"));
    }
    // `all` reads the one file once, every language.
    let all = tasks::load("xnli", dir.path(), "dev", Some("all"), &fail()).unwrap();
    assert_eq!(all.len(), 3 * 2490);
    assert_eq!(all.files.len(), 1);
    // A language the file lacks is an error naming it (not 0 examples).
    let e = tasks::load("xnli", dir.path(), "dev", Some("fr"), &fail())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("xnli.dev.tsv") && e.contains("no examples of `fr`"),
        "{e}"
    );
    // Wrong column count in the one-file layout: file:line.
    let bad = text.replacen("en\tneutral\t", "en\tneutral\tEXTRA\t", 1);
    write(dir.path(), "xnli.dev.tsv", &bad);
    let line = bad.lines().position(|l| l.contains("EXTRA")).unwrap() + 1;
    let (p, l, msg) = data_err(tasks::load("xnli", dir.path(), "dev", Some("en"), &fail()));
    assert_eq!(
        (p.file_name().unwrap().to_str().unwrap(), l),
        ("xnli.dev.tsv", line)
    );
    assert!(msg.contains("expected 19 tab-separated columns"), "{msg}");
}

#[test]
fn mnli_compact_jsonl_from_shared() {
    let root = inter("mnli");
    let dev = tasks::load("mnli", &root, "dev_matched", None, &fail()).unwrap();
    assert_eq!(dev.len(), 9815);
    assert_eq!(dev.label_counts(), vec![3479, 3123, 3213]);
    let (a, b, l) = text_pair(&dev.examples[0]);
    assert_eq!(
        (a, b, l),
        (
            "The new rights are nice enough",
            "Everyone really likes the newest benefits ",
            Some(1)
        )
    );
    // `dev` is MNLI's dev_matched.
    assert_eq!(
        tasks::load("mnli", &root, "dev", None, &fail())
            .unwrap()
            .len(),
        9815
    );
    let train = tasks::load("mnli", &root, "train", None, &fail()).unwrap();
    assert_eq!(train.len(), 9000);
    assert_eq!(train.label_counts(), vec![3000, 3000, 3000]);
    assert_eq!(train.examples[3000].label(), Some(1));
    let e = tasks::load("mnli", &root, "dev_mismatched", None, &fail())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("dev_mismatched.jsonl") && e.contains("What exists there: train; dev_matched"),
        "{e}"
    );
}

/// MultiNLI's own jsonl and GLUE's MNLI TSV: `-` gold labels are left out
/// and counted.
#[test]
fn mnli_official_jsonl_and_glue_tsv_count_no_gold() {
    let dir = tempfile::tempdir().unwrap();
    let rec = |g: &str, s1: &str, s2: &str, id: &str| {
        format!(
            r#"{{"annotator_labels": ["{g}"], "genre": "fiction", "gold_label": "{g}", "pairID": "{id}", "promptID": "1", "sentence1": "{s1}", "sentence1_binary_parse": "( x )", "sentence1_parse": "(ROOT x)", "sentence2": "{s2}", "sentence2_binary_parse": "( y )", "sentence2_parse": "(ROOT y)"}}"#
        )
    };
    let text = [
        rec("neutral", "A man.", "A tall man.", "1n"),
        rec("-", "Odd.", "Even.", "2x"),
        rec("contradiction", "Sun.", "Moon.", "3c"),
        rec("entailment", "Two dogs.", "Dogs.", "4e"),
    ]
    .join("\n")
        + "\n";
    write(dir.path(), "multinli_1.0_dev_matched.jsonl", &text);
    let ds = tasks::load("mnli", dir.path(), "dev_matched", None, &fail()).unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.skipped.no_gold_label, 1);
    assert_eq!(ds.skipped.bad_lines, 0);
    assert_eq!(
        ds.examples
            .iter()
            .map(|e| e.label().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2, 0]
    );
    assert_eq!(ds.examples[1].id(), "3c");
    assert_eq!(ds.examples[1].line(), 3);
    assert!(ds
        .skipped
        .to_string()
        .contains("1 row(s) without a gold label"));

    // GLUE dev_matched.tsv: 16 columns, gold_label last.
    let header = "index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\tsentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label";
    let row = |i: usize, s1: &str, s2: &str, g: &str| {
        format!("{i}\t1\t{i}n\tfiction\t( x )\t( y )\t(ROOT x)\t(ROOT y)\t{s1}\t{s2}\t{g}\t{g}\t{g}\t{g}\t{g}\t{g}")
    };
    let tsv = [
        header.to_string(),
        row(0, "He said \"hi\".", "He spoke.", "entailment"),
        row(1, "x", "y", "-"),
        row(2, "It's 'quoted", "No.", "contradiction"),
    ]
    .join("\n")
        + "\n";
    let dir2 = tempfile::tempdir().unwrap();
    write(dir2.path(), "dev_matched.tsv", &tsv);
    let ds = tasks::load("mnli", dir2.path(), "dev_matched", None, &fail()).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.skipped.no_gold_label, 1);
    // No quoting: quote characters are text.
    assert_eq!(
        text_pair(&ds.examples[0]),
        ("He said \"hi\".", "He spoke.", Some(0))
    );
    assert_eq!(text_pair(&ds.examples[1]), ("It's 'quoted", "No.", Some(2)));
    // A label outside the set.
    write(
        dir2.path(),
        "dev_matched.tsv",
        &tsv.replace("\tcontradiction\n", "\tcontradicts\n"),
    );
    let (_, line, msg) = data_err(tasks::load(
        "mnli",
        dir2.path(),
        "dev_matched",
        None,
        &fail(),
    ));
    assert_eq!(line, 4);
    assert!(msg.contains("label `contradicts`"), "{msg}");
}

#[test]
fn snli_jsonl_generated() {
    let dir = tempfile::tempdir().unwrap();
    let rec = |g: &str, id: &str| {
        format!(
            r#"{{"annotator_labels": ["{g}"], "captionID": "c", "gold_label": "{g}", "pairID": "{id}", "sentence1": "A person on a horse.", "sentence1_binary_parse": "", "sentence1_parse": "", "sentence2": "A person is outdoors.", "sentence2_binary_parse": "", "sentence2_parse": ""}}"#
        )
    };
    write(
        dir.path(),
        "snli_1.0_dev.jsonl",
        &[
            rec("entailment", "a"),
            rec("-", "b"),
            rec("-", "c"),
            rec("neutral", "d"),
        ]
        .join("\n"),
    );
    let ds = tasks::load("snli", dir.path(), "dev", None, &fail()).unwrap();
    assert_eq!((ds.len(), ds.skipped.no_gold_label), (2, 2));
    // Bad JSON on line 2.
    write(
        dir.path(),
        "snli_1.0_dev.jsonl",
        &format!(
            "{}\n{{\"gold_label\": \"neutral\", \n",
            rec("entailment", "a")
        ),
    );
    let (p, line, msg) = data_err(tasks::load("snli", dir.path(), "dev", None, &fail()));
    assert!(p.ends_with("snli_1.0_dev.jsonl"));
    assert_eq!(line, 2);
    assert!(msg.contains("bad JSON"), "{msg}");
}

#[test]
fn anli_rounds_and_all() {
    let root = inter("anli");
    let mut total = 0;
    for (r, n) in [("r1", 1000), ("r2", 1000), ("r3", 1200)] {
        let ds = tasks::load("anli", &root, "dev", Some(r), &fail()).unwrap();
        assert_eq!(ds.len(), n, "{r}");
        total += n;
    }
    let r1 = tasks::load("anli", &root, "dev", Some("r1"), &fail()).unwrap();
    assert_eq!(r1.label_counts(), vec![334, 333, 333]);
    assert_eq!(r1.examples[0].id(), "bf628cf5-6948-4595-a6d0-daf99beb47b9");
    assert_eq!(r1.examples[0].label(), Some(2));
    let all = tasks::load("anli", &root, "test", None, &fail()).unwrap();
    assert_eq!(all.len(), 3200);
    assert_eq!(all.subset.as_deref(), Some("all"));
    assert_eq!(
        tasks::load("anli", &root, "dev", Some("all"), &fail())
            .unwrap()
            .len(),
        total
    );
    let e = tasks::load("anli", &root, "train", Some("r2"), &fail())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("R2/train.jsonl") && e.contains("dev (rounds: r1 r2 r3)"),
        "{e}"
    );
}

/// ANLI+ = ANLI R1-R3 + MNLI + SNLI train (Phang et al. 2020), from a
/// folder laid out with `anli/`, `mnli/`, `snli/`.
#[test]
fn anli_plus_mixes_three_sources() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for r in ["R1", "R2", "R3"] {
        let text: String = (0..3).map(|i| format!("{{\"uid\": \"{r}-{i}\", \"context\": \"ctx {i}\", \"hypothesis\": \"hyp\", \"label\": \"{}\"}}\n", ["e", "n", "c"][i])).collect();
        write(d, &format!("anli/{r}/train.jsonl"), &text);
        write(d, &format!("anli/{r}/dev.jsonl"), &text);
    }
    std::fs::create_dir_all(d.join("mnli")).unwrap();
    std::fs::copy(
        inter("mnli").join("train.xnli_mt_en.first3000_per_label.jsonl"),
        d.join("mnli/train.xnli_mt_en.first3000_per_label.jsonl"),
    )
    .unwrap();
    write(d, "snli/snli_1.0_train.jsonl", "{\"gold_label\": \"-\", \"sentence1\": \"a\", \"sentence2\": \"b\"}\n{\"gold_label\": \"neutral\", \"sentence1\": \"a\", \"sentence2\": \"b\"}\n");
    let ds = tasks::load("anli_plus", d, "train", None, &fail()).unwrap();
    assert_eq!(ds.len(), 9 + 9000 + 1);
    assert_eq!(ds.files.len(), 5);
    assert_eq!(ds.skipped.no_gold_label, 1);
    assert_eq!(
        tasks::load("anli_plus", d, "dev", None, &fail())
            .unwrap()
            .len(),
        9
    );
    std::fs::remove_file(d.join("snli/snli_1.0_train.jsonl")).unwrap();
    let e = tasks::load("anli_plus", d, "train", None, &fail())
        .unwrap_err()
        .to_string();
    assert!(e.contains("snli/snli_1.0_train.jsonl"), "{e}");
}

#[test]
fn americasnli_per_language() {
    let root = inter("americasnli");
    let want = [
        ("aym", 743, 750),
        ("bzd", 743, 750),
        ("cni", 658, 750),
        ("gn", 743, 750),
        ("hch", 743, 750),
        ("nah", 585, 738),
        ("oto", 222, 748),
        ("quy", 743, 750),
        ("shp", 743, 750),
        ("tar", 743, 750),
    ];
    for (lang, dev, test) in want {
        assert_eq!(
            tasks::load("americasnli", &root, "dev", Some(lang), &fail())
                .unwrap()
                .len(),
            dev,
            "{lang}"
        );
        assert_eq!(
            tasks::load("americasnli", &root, "test", Some(lang), &fail())
                .unwrap()
                .len(),
            test,
            "{lang}"
        );
    }
    let all = tasks::load("americasnli", &root, "dev", Some("all"), &fail()).unwrap();
    assert_eq!(all.len(), 6666);
    // The 3 nah test rows with an empty premise are kept, as the official evaluation does.
    let nah = tasks::load("americasnli", &root, "test", Some("nah"), &fail()).unwrap();
    let empty: Vec<&str> = nah
        .examples
        .iter()
        .filter(|e| text_pair(e).0.is_empty())
        .map(|e| e.id())
        .collect();
    assert_eq!(empty, vec!["25576", "25577", "25578"]);
    let aym = tasks::load("americasnli", &root, "dev", Some("aym"), &fail()).unwrap();
    assert_eq!(aym.examples[0].id(), "12451");
    assert_eq!(text_pair(&aym.examples[0]).2, Some(1));
}

#[test]
fn sst2_from_shared_and_glue_header() {
    let root = inter("sst2");
    let dev = tasks::load("sst2", &root, "dev", None, &fail()).unwrap();
    assert_eq!(dev.len(), 872);
    assert_eq!(dev.label_counts(), vec![428, 444]);
    assert_eq!(
        text_pair(&dev.examples[0]),
        (
            "it 's a charming and often affecting journey . ",
            "",
            Some(1)
        )
    );
    let train = tasks::load("sst2", &root, "train", None, &fail()).unwrap();
    assert_eq!(train.len(), 5000);
    // GLUE's own header and the unlabelled test file.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "dev.tsv",
        "sentence\tlabel\ngood \" film\t1\nbad\t0\n",
    );
    write(
        dir.path(),
        "test.tsv",
        "index\tsentence\n0\tfine\n1\tawful\n",
    );
    let d = tasks::load("sst2", dir.path(), "dev", None, &fail()).unwrap();
    assert_eq!(text_pair(&d.examples[0]), ("good \" film", "", Some(1)));
    let t = tasks::load("sst2", dir.path(), "test", None, &fail()).unwrap();
    assert_eq!(
        (t.len(), t.examples[1].id(), t.examples[1].label()),
        (2, "1", None)
    );
    write(dir.path(), "dev.tsv", "sentence\tlabel\ngood\t1\nbad\t2\n");
    let (_, line, msg) = data_err(tasks::load("sst2", dir.path(), "dev", None, &fail()));
    assert_eq!(line, 3);
    assert!(
        msg.contains("label `2` is not in the label set [0, 1]"),
        "{msg}"
    );
}

#[test]
fn qqp_glue_tsv_generated() {
    let dir = tempfile::tempdir().unwrap();
    let text = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n\
                201359\t303345\t303346\tWhy are African-Americans so beautiful?\tWhy are hispanics so beautiful?\t0\n\
                263843\t69383\t380476\tI want to pursue PhD in Computer Science about social network,what is the open problem in social networks?\tI handle social media for a non-profit. Should I start going to social media networking events? Are there any good ones in the bay area?\t0\n\
                172974\t266948\t175089\tIs there a reason why we should travel alone?\tWhat are some reasons to travel alone?\t1\n";
    write(dir.path(), "dev.tsv", text);
    let ds = tasks::load("qqp", dir.path(), "dev", None, &fail()).unwrap();
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.label_counts(), vec![2, 1]);
    assert_eq!(ds.examples[2].id(), "172974");
    assert_eq!(
        text_pair(&ds.examples[2]),
        (
            "Is there a reason why we should travel alone?",
            "What are some reasons to travel alone?",
            Some(1)
        )
    );
    // Test split: no label column.
    write(
        dir.path(),
        "test.tsv",
        "id\tquestion1\tquestion2\n0\tA?\tB?\n",
    );
    assert_eq!(
        tasks::load("qqp", dir.path(), "test", None, &fail())
            .unwrap()
            .examples[0]
            .label(),
        None
    );
    // A row missing its last column (a known GLUE QQP problem): error at
    // line 3, or skipped and counted.
    let bad = text.replacen(
        "\tWhy are hispanics so beautiful?\t0",
        "\tWhy are hispanics so beautiful?",
        1,
    );
    write(dir.path(), "dev.tsv", &bad);
    let (p, line, msg) = data_err(tasks::load("qqp", dir.path(), "dev", None, &fail()));
    assert_eq!((p, line), (dir.path().join("dev.tsv"), 2));
    assert!(
        msg.contains("expected 6 tab-separated columns") && msg.contains("found 5"),
        "{msg}"
    );
    let ds = tasks::load(
        "qqp",
        dir.path(),
        "dev",
        None,
        &ReadOptions::skip_bad_lines(),
    )
    .unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.skipped.bad_lines, 1);
    assert_eq!(
        (ds.skipped.first[0].line, ds.skipped.first[0].path.clone()),
        (2, dir.path().join("dev.tsv"))
    );
    // An empty question.
    write(
        dir.path(),
        "dev.tsv",
        &text.replace("What are some reasons to travel alone?", " "),
    );
    let (_, line, msg) = data_err(tasks::load("qqp", dir.path(), "dev", None, &fail()));
    assert_eq!(line, 4);
    assert!(msg.contains("question2 is empty"), "{msg}");
}

#[test]
fn hellaswag_jsonl_gz_and_txt_bz2_agree() {
    let root = inter("hellaswag");
    // The catalog prefers the jsonl; read the txt.bz2 through its reader directly.
    let ds = tasks::load("hellaswag", &root, "dev", None, &fail()).unwrap();
    assert!(ds.files[0]
        .to_string_lossy()
        .ends_with("hellaswag_val.from_txt.jsonl.gz"));
    assert_eq!(ds.len(), 10042);
    assert_eq!(ds.head, HeadKind::MultipleChoice);
    let mut rep = Default::default();
    let txt = tasks::readers::choice::read_hellaswag_txt(
        &root.join("hellaswag_val_full.txt.bz2"),
        &fail(),
        &mut rep,
    )
    .unwrap();
    assert_eq!(txt.len(), 10042);
    for (a, b) in ds.examples.iter().zip(&txt) {
        match (a, b) {
            (
                Example::Choice {
                    prompt: p1,
                    choices: c1,
                    label: l1,
                    ..
                },
                Example::Choice {
                    prompt: p2,
                    choices: c2,
                    label: l2,
                    ..
                },
            ) => {
                assert_eq!((p1, c1, l1), (p2, c2, l2));
            }
            _ => panic!("not choice examples"),
        }
    }
    match &txt[0] {
        Example::Choice {
            prompt,
            choices,
            label,
            line,
            ..
        } => {
            assert_eq!(
                prompt,
                "Roof shingle removal: A man is sitting on a roof. he"
            );
            assert_eq!(choices[3], "starts pulling up roofing on a roof.");
            assert_eq!((*label, *line), (Some(3), 1));
        }
        _ => unreachable!(),
    }
    assert_eq!(txt[1].line(), 7);
    // The official layout: ctx_a + (ctx_b + " " + ending), as jiant.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "hellaswag_val.jsonl",
        r#"{"ind": 24, "activity_label": "Roof shingle removal", "ctx_a": "A man is sitting on a roof.", "ctx_b": "he", "ctx": "A man is sitting on a roof. he", "split": "val", "split_type": "indomain", "label": 3, "endings": ["is using wrap to wrap a pair of skis.", "is ripping level tiles off.", "is holding a rubik's cube.", "starts pulling up roofing on a roof."], "source_id": "activitynet~v_-JhWjGDPHMY"}"#,
    );
    let d = tasks::load("hellaswag", dir.path(), "val", None, &fail()).unwrap();
    match &d.examples[0] {
        Example::Choice {
            id,
            prompt,
            choices,
            label,
            ..
        } => {
            assert_eq!(
                (id.as_str(), prompt.as_str(), *label),
                ("24", "A man is sitting on a roof.", Some(3))
            );
            assert_eq!(choices[0], "he is using wrap to wrap a pair of skis.");
        }
        _ => unreachable!(),
    }
    // A truncated txt: the last example is incomplete.
    let dir2 = tempfile::tempdir().unwrap();
    bz2(
        dir2.path(),
        "hellaswag_val_full.txt.bz2",
        "ctx one\n1\na\nb\nc\nd\nctx two\n7\na\nb\nc\nd\nctx three\n0\na\n",
    );
    let mut rep = Default::default();
    let e = tasks::readers::choice::read_hellaswag_txt(
        &dir2.path().join("hellaswag_val_full.txt.bz2"),
        &fail(),
        &mut rep,
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::Data { line: 7, msg, .. } if msg.contains("gold label 0-3")),
        "{e}"
    );
    let mut rep = Default::default();
    let ok = tasks::readers::choice::read_hellaswag_txt(
        &dir2.path().join("hellaswag_val_full.txt.bz2"),
        &ReadOptions::skip_bad_lines(),
        &mut rep,
    )
    .unwrap();
    assert_eq!((ok.len(), rep.bad_lines), (1, 2));
    assert_eq!(
        rep.first.iter().map(|b| b.line).collect::<Vec<_>>(),
        vec![7, 13]
    );
}

#[test]
fn cosmosqa_jsonl_with_labels_file_and_csv() {
    let root = inter("cosmosqa");
    let ds = tasks::load("cosmosqa", &root, "dev", None, &fail()).unwrap();
    assert_eq!(ds.len(), 2985);
    match &ds.examples[0] {
        Example::Choice {
            prompt,
            choices,
            label,
            ..
        } => {
            assert!(
                prompt.starts_with("Do i need to go for a legal divorce ?")
                    && prompt.ends_with(" Why is this person asking about divorce ?")
            );
            assert_eq!(choices.len(), 4);
            assert_eq!(*label, Some(1));
        }
        _ => panic!(),
    }
    // Labels file disagreeing with the `label` field: caught at that example.
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = stilts_tasks::io::read_text(&root.join("valid.jsonl.gz"))
        .unwrap()
        .lines()
        .take(3)
        .map(str::to_string)
        .collect();
    gz(dir.path(), "valid.jsonl.gz", &(lines.join("\n") + "\n"));
    write(dir.path(), "valid-labels.lst", "1\n0\n3\n");
    let (p, line, msg) = data_err(tasks::load("cosmosqa", dir.path(), "dev", None, &fail()));
    assert_eq!(
        (p.file_name().unwrap().to_str().unwrap(), line),
        ("valid.jsonl.gz", 3)
    );
    assert!(
        msg.contains("disagrees with") && msg.contains("valid-labels.lst:3"),
        "{msg}"
    );
    // The official csv layout, quoted, labels only in the .lst file.
    let csv = "id,context,question,answer0,answer1,answer2,answer3\n\
               a1,\"He said, \"\"no\"\".\",Why?,One,Two,\"Three, four\",None of the above choices .\n\
               a2,\"Multi\nline\",What?,x,y,z,w\n";
    let dir2 = tempfile::tempdir().unwrap();
    write(dir2.path(), "valid.csv", csv);
    write(dir2.path(), "valid-labels.lst", "2\n0\n");
    let ds = tasks::load("cosmosqa", dir2.path(), "dev", None, &fail()).unwrap();
    match &ds.examples[0] {
        Example::Choice {
            prompt,
            choices,
            label,
            ..
        } => {
            assert_eq!(prompt, "He said, \"no\". Why?");
            assert_eq!(choices[2], "Three, four");
            assert_eq!(*label, Some(2));
        }
        _ => panic!(),
    }
    assert_eq!(
        (ds.examples[1].label(), ds.examples[1].line()),
        (Some(0), 3)
    );
}

#[test]
fn commonsenseqa_dev_and_gz_train_prefix() {
    let root = inter("commonsenseqa");
    let dev = tasks::load("commonsenseqa", &root, "dev", None, &fail()).unwrap();
    assert_eq!(dev.len(), 1221);
    match &dev.examples[0] {
        Example::Choice {
            prompt,
            choices,
            label,
            id,
            ..
        } => {
            assert_eq!(id, "1afa02df02c908a558b4036e80242fac");
            assert!(prompt.starts_with("A revolving door is convenient"));
            assert_eq!(
                choices,
                &vec!["bank", "library", "department store", "mall", "new york"]
            );
            assert_eq!(*label, Some(0));
        }
        _ => panic!(),
    }
    let train = tasks::load("commonsenseqa", &root, "train", None, &fail()).unwrap();
    assert_eq!(train.len(), 5000);
    assert!(train.files[0].to_string_lossy().ends_with(".jsonl.gz"));
    let lim = tasks::load(
        "commonsenseqa",
        &root,
        "train",
        None,
        &ReadOptions::default().with_first(10),
    )
    .unwrap();
    assert_eq!(lim.len(), 10);
    // answerKey that names no choice.
    let dir = tempfile::tempdir().unwrap();
    let first = std::fs::read_to_string(root.join("dev_rand_split.jsonl"))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .replace("\"answerKey\": \"A\"", "\"answerKey\": \"F\"");
    write(dir.path(), "dev_rand_split.jsonl", &format!("\n{first}\n"));
    let (_, line, msg) = data_err(tasks::load(
        "commonsenseqa",
        dir.path(),
        "dev",
        None,
        &fail(),
    ));
    assert_eq!(line, 2);
    assert!(msg.contains("answerKey `F`"), "{msg}");
}

/// jiant's CCG format: `tokens \t supertags` + tags_to_id.json.
#[test]
fn ccg_jiant_format_generated() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "tags_to_id.json",
        r#"{"N": 0, "NP[nb]/N": 1, "(S[dcl]\\NP)/NP": 2, ".": 3, "S[dcl]\\NP": 4}"#,
    );
    write(
        dir.path(),
        "ccg.dev.tsv",
        "The cat sees mice .\tNP[nb]/N N (S[dcl]\\NP)/NP N .\nDogs bark .\tN S[dcl]\\NP .\n",
    );
    let ds = tasks::load("ccg", dir.path(), "dev", None, &fail()).unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(
        ds.labels,
        vec!["N", "NP[nb]/N", "(S[dcl]\\NP)/NP", ".", "S[dcl]\\NP"]
    );
    assert_eq!(
        ds.head,
        HeadKind::Tagging {
            labels: ds.labels.clone()
        }
    );
    match &ds.examples[0] {
        Example::Words { words, tags, .. } => {
            assert_eq!(words, &vec!["The", "cat", "sees", "mice", "."]);
            assert_eq!(tags.as_deref(), Some(&[1, 0, 2, 0, 3][..]));
        }
        _ => panic!(),
    }
    write(
        dir.path(),
        "ccg.dev.tsv",
        "The cat sees mice .\tNP[nb]/N N (S[dcl]\\NP)/NP N .\nDogs bark .\tN S[dcl]\\NP\n",
    );
    let (_, line, msg) = data_err(tasks::load("ccg", dir.path(), "dev", None, &fail()));
    assert_eq!(line, 2);
    assert!(msg.contains("3 tokens but 2 supertags"), "{msg}");
    write(dir.path(), "ccg.dev.tsv", "Dogs bark .\tN S[dcl]\\NP X\n");
    let (_, _, msg) = data_err(tasks::load("ccg", dir.path(), "dev", None, &fail()));
    assert!(msg.contains("supertag `X`"), "{msg}");
    std::fs::remove_file(dir.path().join("tags_to_id.json")).unwrap();
    assert!(tasks::load("ccg", dir.path(), "dev", None, &fail())
        .unwrap_err()
        .to_string()
        .contains("tags_to_id.json is missing"));
}

#[test]
fn generic_tsv_csv_jsonl() {
    let spec = GenericSpec::new(&["premise", "hypothesis"], "gold", &["yes", "no"]);
    let t = tasks::generic("my_nli", spec.clone());
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "train.tsv",
        "premise\thypothesis\tgold\nA\tB\tyes\nC\tD\tno\n",
    );
    gz(
        dir.path(),
        "dev.csv.gz",
        "gold,premise,hypothesis\nno,\"x, y\",z\nyes,a,b\n",
    );
    bz2(dir.path(), "test.jsonl.bz2", "{\"premise\": \"p\", \"hypothesis\": \"h\", \"gold\": 1}\n{\"premise\": \"p\", \"hypothesis\": \"h\", \"gold\": \"yes\"}\n");
    let tr = t.load(dir.path(), "train", None, &fail()).unwrap();
    assert_eq!(
        tr.examples
            .iter()
            .map(|e| e.label().unwrap())
            .collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(
        tr.head,
        HeadKind::Classification {
            labels: vec!["yes".into(), "no".into()]
        }
    );
    let dev = t.load(dir.path(), "dev", None, &fail()).unwrap();
    assert_eq!(text_pair(&dev.examples[0]), ("x, y", "z", Some(1)));
    let te = t.load(dir.path(), "test", None, &fail()).unwrap();
    assert_eq!(
        te.examples
            .iter()
            .map(|e| e.label().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 0]
    );
    // Missing column, label outside the set.
    write(dir.path(), "train.tsv", "premise\thyp\tgold\nA\tB\tyes\n");
    assert!(t
        .load(dir.path(), "train", None, &fail())
        .unwrap_err()
        .to_string()
        .contains("no column `hypothesis`"));
    write(
        dir.path(),
        "train.tsv",
        "premise\thypothesis\tgold\nA\tB\tyes\nC\tD\tmaybe\n",
    );
    let (_, line, msg) = data_err(t.load(dir.path(), "train", None, &fail()));
    assert_eq!(line, 3);
    assert!(msg.contains("label `maybe`"), "{msg}");
    let single = tasks::generic(
        "sent",
        GenericSpec::new(&["text"], "label", &["neg", "pos"]),
    );
    write(
        dir.path(),
        "train.jsonl",
        "{\"text\": \"fine\", \"label\": \"pos\"}\n",
    );
    std::fs::remove_file(dir.path().join("train.tsv")).unwrap();
    assert_eq!(
        text_pair(
            &single
                .load(dir.path(), "train", None, &fail())
                .unwrap()
                .examples[0]
        ),
        ("fine", "", Some(1))
    );
}

/// The skip policy counts every bad line and keeps the first few places.
#[test]
fn skip_policy_counts_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..30 {
        if i % 2 == 1 {
            text.push_str("only one column\n");
        } else {
            text.push_str(&format!("p{i}\th{i}\tneutral\n"));
        }
    }
    write(dir.path(), "dev-en.tsv", &text);
    let (_, line, _) = data_err(tasks::load("xnli", dir.path(), "dev", Some("en"), &fail()));
    assert_eq!(line, 2);
    let opts = ReadOptions {
        on_error: BadLines::Skip,
        first: None,
    };
    let ds = tasks::load("xnli", dir.path(), "dev", Some("en"), &opts).unwrap();
    assert_eq!(ds.len(), 15);
    assert_eq!(ds.skipped.bad_lines, 15);
    assert_eq!(ds.skipped.first.len(), tasks::SkipReport::KEEP);
    assert_eq!(
        ds.skipped.first.iter().map(|b| b.line).collect::<Vec<_>>(),
        vec![2, 4, 6, 8, 10, 12, 14, 16, 18, 20]
    );
    let s = ds.skipped.to_string();
    assert!(
        s.contains("15 malformed line(s) skipped")
            && s.contains("dev-en.tsv:2: expected 2 or 3")
            && s.contains("and 5 more"),
        "{s}"
    );
}

#[test]
fn compressed_files_read_transparently_and_plain_wins() {
    let root = shared().join("xnli");
    let text = std::fs::read_to_string(root.join("dev-sw.tsv")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    gz(dir.path(), "dev-sw.tsv.gz", &text);
    bz2(dir.path(), "test-sw.tsv.bz2", &text);
    let a = tasks::load("xnli", dir.path(), "dev", Some("sw"), &fail()).unwrap();
    let b = tasks::load("xnli", dir.path(), "test", Some("sw"), &fail()).unwrap();
    let c = tasks::load("xnli", &root, "dev", Some("sw"), &fail()).unwrap();
    assert_eq!(a.examples, c.examples);
    assert_eq!(b.examples.len(), 2490);
    // Invalid UTF-8 is a data error at its line.
    let mut bytes = b"p\th\tneutral\np\th\tneutral\n".to_vec();
    bytes.extend_from_slice(b"\xff\xfe\th\tneutral\n");
    std::fs::write(dir.path().join("dev-de.tsv"), bytes).unwrap();
    let (_, line, msg) = data_err(tasks::load("xnli", dir.path(), "dev", Some("de"), &fail()));
    assert_eq!((line, msg.as_str()), (3, "not valid UTF-8"));
}

#[test]
fn the_catalog_lists_tasks_and_layouts() {
    let all = tasks::tasks();
    let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
    for n in [
        "mnli",
        "anli",
        "anli_plus",
        "qqp",
        "sst2",
        "snli",
        "hellaswag",
        "cosmosqa",
        "commonsenseqa",
        "squad_v1",
        "squad_v2",
        "ccg",
        "xnli",
        "americasnli",
        "generic",
    ] {
        assert!(names.contains(&n), "{n}");
    }
    let mnli = tasks::task("mnli").unwrap();
    assert_eq!(
        mnli.split_names(),
        vec!["train", "dev_matched", "dev_mismatched"]
    );
    assert_eq!(
        tasks::task("squad_v2").unwrap().metric,
        tasks::Metric::SquadV2
    );
    assert_eq!(
        tasks::task("ccg").unwrap().metric,
        tasks::Metric::TaggingAccuracy
    );
    assert_eq!(
        tasks::task("hellaswag").unwrap().head,
        HeadKind::MultipleChoice
    );
    let x = tasks::task("xnli").unwrap().layout();
    assert!(
        x.contains("dev-{sub}.tsv | xnli.dev.tsv")
            && x.contains("ar bg de el en es fr hi ru sw th tr ur vi zh"),
        "{x}"
    );
    let md = tasks::layouts_markdown();
    assert!(md.contains("### `anli_plus`") && md.contains("snli/snli_1.0_train.jsonl"));
    // A folder with nothing of the task lists the expected layout.
    let dir = tempfile::tempdir().unwrap();
    let e = tasks::load("cosmosqa", dir.path(), "dev", None, &fail())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Nothing of `cosmosqa` is there") && e.contains("valid.jsonl | valid.csv"),
        "{e}"
    );
    // Two files matching one wildcard are ambiguous.
    write(dir.path(), "train.a.tsv", "sentence\tlabel\nx\t1\n");
    write(dir.path(), "train.b.tsv", "sentence\tlabel\nx\t1\n");
    let e = tasks::load("sst2", dir.path(), "train", None, &fail())
        .unwrap_err()
        .to_string();
    assert!(e.contains("matches several files"), "{e}");
}

/// XNLI-MT translate-train files: header `premise hypo label`, label `contradictory`.
#[test]
fn xnli_mt_train_with_header() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "multinli.train.de.tsv", "premise\thypo\tlabel\nEin Mann .\tEine Person .\tentailment\nEs regnet .\tDie Sonne scheint .\tcontradictory\n");
    let ds = tasks::load("xnli", dir.path(), "train", Some("de"), &fail()).unwrap();
    assert_eq!(
        ds.examples
            .iter()
            .map(|e| e.label().unwrap())
            .collect::<Vec<_>>(),
        vec![0, 2]
    );
    assert_eq!(ds.examples[0].line(), 2);
    assert!(ds.skipped.is_empty());
}

#[test]
fn a_seeded_sample_of_the_label_sorted_mnli_file_is_label_balanced() {
    let ds = tasks::load("mnli", &inter("mnli"), "train", None, &fail()).unwrap();
    // The file is sorted by label: its first lines are all one label.
    let first = tasks::load(
        "mnli",
        &inter("mnli"),
        "train",
        None,
        &fail().with_first(960),
    )
    .unwrap();
    assert_eq!(first.label_counts().iter().filter(|&&c| c > 0).count(), 1);
    let a = ds.sample(961, 7).unwrap();
    assert_eq!(a.label_counts(), vec![321, 320, 320]);
    let ids = |d: &stilts_tasks::Dataset| {
        d.examples
            .iter()
            .map(|e| e.id().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids(&a),
        ids(&ds.sample(961, 7).unwrap()),
        "same seed, same sample"
    );
    assert_ne!(
        ids(&a),
        ids(&ds.sample(961, 8).unwrap()),
        "another seed, another sample"
    );
    // Kept in file order, each example once.
    let lines: Vec<usize> = a.examples.iter().map(|e| e.line()).collect();
    assert!(lines.windows(2).all(|w| w[0] < w[1]));
    // More of a label than was read is a clear error naming the file.
    let err = first.sample(30, 1).unwrap_err().to_string();
    assert!(
        err.contains("train.xnli_mt_en") && err.contains("`sample: 30` takes 10 examples of label"),
        "{err}"
    );
    // Tasks without a label set get a uniform sample.
    let sq = tasks::load(
        "hellaswag",
        &inter("hellaswag"),
        "dev",
        None,
        &fail().with_first(50),
    )
    .unwrap();
    assert_eq!(sq.sample(20, 1).unwrap().len(), 20);
    assert!(sq.sample(51, 1).is_err());
}

/// `task("tsv", ...)`'s reader takes compressed files like the others, and
/// names the file and line of a malformed row.
#[test]
fn headerless_tsv_reads_gzip_and_names_bad_lines() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pairs.tsv.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::default(),
    );
    gz.write_all(
        "de\tein Hund\tein Tier\tentailment\nsw\tmbwa\tmnyama\tneutral\nde\tkaputt\n".as_bytes(),
    )
    .unwrap();
    gz.finish().unwrap();
    let columns: Vec<String> = ["language", "premise", "hypothesis", "label"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let labels: Vec<String> = ["entailment", "neutral", "contradiction"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let err = stilts_tasks::readers::columns::read(&path, "pairs", &columns, &labels, None, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("pairs.tsv.gz") && err.contains('3'), "{err}");
    let parts = stilts_tasks::readers::columns::read(&path, "pairs", &columns, &labels, None, true)
        .unwrap();
    let langs: Vec<(String, usize, usize)> = parts
        .iter()
        .map(|p| (p.subset.clone().unwrap(), p.len(), p.skipped.bad_lines))
        .collect();
    assert_eq!(langs, vec![("de".into(), 1, 1), ("sw".into(), 1, 0)]);
}
