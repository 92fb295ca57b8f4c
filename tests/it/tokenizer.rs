//! The tokenizer: parity with transformers' `XLMRobertaTokenizerFast` on XNLI
//! pairs in all 15 languages (fixture written by
//! `tests/fixtures/make_tokenizer_fixture.py`), and the tiny Unigram
//! tokenizers trained for tests.

use crate::common;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use common::{fixtures, sample_texts, shared_data};
use stilts::model::Tokenizer;

const LANGS: &[&str] = &[
    "ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh",
];

#[derive(serde::Deserialize)]
struct Record {
    lang: String,
    line: usize,
    max_length: usize,
    ids: Vec<u32>,
}

#[derive(serde::Deserialize)]
struct Fixture {
    tokenizer_sha256: String,
    records: Vec<Record>,
}

fn load_fixture() -> Fixture {
    let path = fixtures().join("tokenizer_xnli.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn xlmr_tokenizer_path() -> PathBuf {
    shared_data().join("xlmr").join("tokenizer.json")
}

/// `(premise, hypothesis)` of every line of `test-{lang}.tsv`, read the way
/// the fixture script reads it (split on `\n` only, exactly 3 fields).
fn xnli_rows(lang: &str) -> Vec<(String, String)> {
    let path = shared_data().join("xnli").join(format!("test-{lang}.tsv"));
    let data = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines: Vec<&str> = data.split('\n').collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(
                f.len(),
                3,
                "{}:{}: expected 3 fields",
                path.display(),
                i + 1
            );
            (f[0].to_string(), f[1].to_string())
        })
        .collect()
}

/// The records with their texts re-read from ../shared.
fn records_with_text() -> Vec<(Record, String, String)> {
    let fixture = load_fixture();
    let mut rows: HashMap<String, Vec<(String, String)>> = HashMap::new();
    fixture
        .records
        .into_iter()
        .map(|r| {
            let rows = rows
                .entry(r.lang.clone())
                .or_insert_with(|| xnli_rows(&r.lang));
            let (a, b) = rows
                .get(r.line - 1)
                .unwrap_or_else(|| panic!("{}: no line {}", r.lang, r.line))
                .clone();
            (r, a, b)
        })
        .collect()
}

#[test]
fn fixture_is_for_this_tokenizer_and_covers_all_languages() {
    let fixture = load_fixture();
    let bytes = std::fs::read(xlmr_tokenizer_path()).unwrap();
    assert_eq!(
        stilts::util::sha256_hex(&bytes),
        fixture.tokenizer_sha256,
        "tokenizer.json changed since the fixture was written"
    );
    assert_eq!(fixture.records.len(), 270);
    let langs: BTreeSet<&str> = fixture.records.iter().map(|r| r.lang.as_str()).collect();
    assert_eq!(langs, LANGS.iter().copied().collect::<BTreeSet<_>>());
    for lang in LANGS {
        let n = fixture.records.iter().filter(|r| r.lang == *lang).count();
        assert_eq!(n, 18, "{lang}: expected 9 rows x 2 lengths");
    }
    // The short length really truncates somewhere (longest-first is exercised).
    assert!(fixture
        .records
        .iter()
        .any(|r| r.max_length == 24 && r.ids.len() == 24));
}

#[test]
fn xlmr_tokenizer_matches_transformers_one_by_one() {
    let tok = Tokenizer::from_file(&xlmr_tokenizer_path()).unwrap();
    assert_eq!(tok.vocab_size(), 250002);
    assert_eq!(tok.pad_id(), 1);
    let records = records_with_text();
    assert_eq!(records.len(), 270);
    let mut langs = BTreeSet::new();
    for (r, premise, hypothesis) in &records {
        let ids = tok.encode(premise, Some(hypothesis), r.max_length).unwrap();
        assert_eq!(
            ids, r.ids,
            "{} line {} max_length {}",
            r.lang, r.line, r.max_length
        );
        assert!(ids.len() <= r.max_length);
        langs.insert(r.lang.clone());
    }
    assert_eq!(langs.len(), 15);
}

#[test]
fn xlmr_tokenizer_matches_transformers_in_batches() {
    let tok = Tokenizer::from_file(&xlmr_tokenizer_path()).unwrap();
    let records = records_with_text();
    let mut checked = 0;
    for max_length in [128, 24] {
        let chosen: Vec<&(Record, String, String)> = records
            .iter()
            .filter(|(r, _, _)| r.max_length == max_length)
            .collect();
        assert_eq!(chosen.len(), 135);
        let items: Vec<(String, Option<String>)> = chosen
            .iter()
            .map(|(_, a, b)| (a.clone(), Some(b.clone())))
            .collect();
        let got = tok.encode_batch(&items, max_length).unwrap();
        assert_eq!(got.len(), chosen.len());
        for ((r, _, _), ids) in chosen.iter().zip(&got) {
            assert_eq!(
                ids, &r.ids,
                "batch: {} line {} max_length {}",
                r.lang, r.line, r.max_length
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 270);
}

#[test]
fn missing_tokenizer_file_is_an_error_naming_it() {
    let path = PathBuf::from("/nonexistent/dir/tokenizer.json");
    let Err(e) = Tokenizer::from_file(&path) else {
        panic!("loaded a missing file")
    };
    assert!(
        e.to_string().contains("/nonexistent/dir/tokenizer.json"),
        "{e}"
    );
}

fn trained() -> Tokenizer {
    Tokenizer::train_unigram(&sample_texts(), 300).unwrap()
}

#[test]
fn trained_unigram_has_xlmr_special_tokens() {
    let tok = trained();
    assert_eq!(tok.token_id("<s>"), Some(0));
    assert_eq!(tok.token_id("<pad>"), Some(1));
    assert_eq!(tok.token_id("</s>"), Some(2));
    assert_eq!(tok.token_id("<unk>"), Some(3));
    assert_eq!(tok.pad_id(), 1);
    let n = tok.vocab_size();
    assert!(n > 50 && n <= 300, "vocab size {n}");
    assert_eq!(
        tok.token_id("<mask>"),
        Some(n as u32 - 1),
        "<mask> must be the last id"
    );
}

#[test]
fn trained_unigram_single_and_pair_layout() {
    let tok = trained();
    let specials = [0u32, 1, 2, 3, tok.vocab_size() as u32 - 1];
    let a = "the cat sat on the mat";
    let b = "a dog runs in the park";
    let single_a = tok.encode(a, None, 128).unwrap();
    let single_b = tok.encode(b, None, 128).unwrap();
    assert_eq!(single_a[0], 0);
    assert_eq!(*single_a.last().unwrap(), 2);
    let body_a = &single_a[1..single_a.len() - 1];
    let body_b = &single_b[1..single_b.len() - 1];
    assert!(!body_a.is_empty() && !body_b.is_empty());
    assert!(
        body_a.iter().chain(body_b).all(|i| !specials.contains(i)),
        "special ids inside text: {body_a:?} {body_b:?}"
    );
    // Known words of the training text are not <unk>.
    assert!(!body_a.contains(&3));

    let pair = tok.encode(a, Some(b), 128).unwrap();
    let mut want = vec![0];
    want.extend_from_slice(body_a);
    want.extend([2, 2]);
    want.extend_from_slice(body_b);
    want.push(2);
    assert_eq!(pair, want, "pair must be <s> A </s></s> B </s>");

    // encode_batch agrees with encode, pairs and singles mixed.
    let items = vec![(a.to_string(), Some(b.to_string())), (b.to_string(), None)];
    assert_eq!(tok.encode_batch(&items, 128).unwrap(), vec![pair, single_b]);
}

#[test]
fn trained_unigram_truncates_pairs_longest_first() {
    let tok = trained();
    let texts = sample_texts();
    let a = texts[..6].join(" ");
    let b = texts[6..10].join(" ");
    let full = tok.encode(&a, Some(&b), 512).unwrap();
    let sep = full.windows(2).position(|w| w == [2, 2]).unwrap();
    let (fa, fb) = (&full[1..sep], &full[sep + 2..full.len() - 1]);
    let max_length = 24;
    assert!(
        fa.len() > max_length && fb.len() > max_length / 2,
        "test texts too short: {} {}",
        fa.len(),
        fb.len()
    );

    let cut = tok.encode(&a, Some(&b), max_length).unwrap();
    assert_eq!(cut.len(), max_length);
    assert_eq!(cut[0], 0);
    assert_eq!(*cut.last().unwrap(), 2);
    let sep = cut
        .windows(2)
        .position(|w| w == [2, 2])
        .expect("no </s></s> in truncated pair");
    let (ca, cb) = (&cut[1..sep], &cut[sep + 2..cut.len() - 1]);
    // Both sides shrink, each keeps its beginning, and longest-first leaves
    // them (nearly) equal when both were longer than half the budget.
    assert!(
        ca.len() < fa.len() && cb.len() < fb.len(),
        "{} {} from {} {}",
        ca.len(),
        cb.len(),
        fa.len(),
        fb.len()
    );
    assert_eq!(ca, &fa[..ca.len()]);
    assert_eq!(cb, &fb[..cb.len()]);
    assert_eq!(ca.len() + cb.len() + 4, max_length);
    assert!(
        ca.len().abs_diff(cb.len()) <= 1,
        "{} vs {}",
        ca.len(),
        cb.len()
    );

    // A single text truncates to max_length with its specials.
    let single = tok.encode(&a, None, max_length).unwrap();
    assert_eq!(single.len(), max_length);
    assert_eq!((single[0], single[max_length - 1]), (0, 2));
    assert_eq!(&single[1..max_length - 1], &fa[..max_length - 2]);

    // Only one long side: the short side is kept whole.
    let short = "the cat sat";
    let cut = tok.encode(&a, Some(short), max_length).unwrap();
    let short_ids = tok.encode(short, None, 64).unwrap();
    assert_eq!(cut.len(), max_length);
    assert!(
        cut.ends_with(&[&[2, 2][..], &short_ids[1..]].concat()),
        "{cut:?} should end with {short_ids:?}"
    );
}

#[test]
fn unigram_training_is_reproducible() {
    let texts = common::sample_texts();
    let first = stilts::model::Tokenizer::train_unigram(&texts, 300)
        .unwrap()
        .fingerprint()
        .unwrap();
    for _ in 0..3 {
        let again = stilts::model::Tokenizer::train_unigram(&texts, 300)
            .unwrap()
            .fingerprint()
            .unwrap();
        assert_eq!(first, again, "the same text gave another tokenizer");
    }
}

#[test]
fn max_length_below_the_special_tokens_is_an_error_not_a_panic() {
    let tok = stilts::model::Tokenizer::train_unigram(&common::sample_texts(), 300).unwrap();
    let err = tok
        .encode("a b c", Some("d e f"), 3)
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_length 3"), "{err}");
    assert!(tok.encode("a b c", Some("d e f"), 5).unwrap().len() <= 5);
}

/// The same multilingual text gives the same trained tokenizer, byte for
/// byte, in separate processes (the trainer's hash sets are seeded afresh
/// in each): the required characters' tied scores are put in a canonical
/// order.
#[test]
fn trained_tokenizers_are_byte_identical_across_processes_on_multilingual_text() {
    let tmp = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for l in ["ar", "de", "el", "hi", "ru", "sw", "th", "zh"] {
        let t = std::fs::read_to_string(common::shared_data().join(format!("xnli/dev-{l}.tsv")))
            .unwrap();
        for line in t.lines().take(40) {
            text.push_str(line.split('\t').next().unwrap());
            text.push('\n');
        }
    }
    std::fs::write(tmp.path().join("text.txt"), &text).unwrap();
    let bytes: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let dir = tmp.path().join(format!("m{i}"));
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_stilts"))
                .args(["tiny", dir.to_str().unwrap(), "--text"])
                .arg(tmp.path().join("text.txt"))
                .args([
                    "--hidden", "16", "--layers", "1", "--heads", "2", "--ffn", "32", "--vocab",
                    "1500",
                ])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::fs::read(dir.join("tokenizer.json")).unwrap()
        })
        .collect();
    assert!(bytes[0].len() > 10_000);
    assert!(
        bytes[0] == bytes[1] && bytes[1] == bytes[2],
        "tokenizer.json differs between processes"
    );
}

/// The padding id and BERT's segment rule as a tokenizer states them: a
/// WordPiece-style vocabulary with BERT's pair template (`[PAD]` = 0, the
/// second segment typed 1 after `[SEP]` = 3, the bert parity fixtures'
/// tokenizer) against XLM-R's (`<pad>` = 1, every token type 0).
#[test]
fn pad_id_and_segment_separator_come_from_the_tokenizer() {
    let bert = Tokenizer::from_file(&fixtures().join("parity/bert_seqcls/tokenizer.json")).unwrap();
    assert_eq!(bert.find_pad_id(), Some(0));
    assert_eq!(bert.pad_id(), 0);
    assert_eq!(bert.segment_separator(), Some(3));
    let xlmr = Tokenizer::from_file(&xlmr_tokenizer_path()).unwrap();
    assert_eq!(xlmr.find_pad_id(), Some(1));
    assert_eq!(xlmr.segment_separator(), None);
    let trained = Tokenizer::train_unigram(&sample_texts(), 200).unwrap();
    assert_eq!((trained.pad_id(), trained.segment_separator()), (1, None));
}

/// Issue 14, item 13: a vocabulary too small for the text's characters is
/// an error that says the vocabulary the text needs, and that one trains.
#[test]
fn too_small_a_vocabulary_names_the_one_needed() {
    use stilts::model::tokenizer::{min_unigram_vocab, Tokenizer};
    let texts: Vec<String> = [
        "Ένα μικρό κείμενο στα ελληνικά.",
        "一个小小的中文句子。",
        "Une petite phrase en français, avec des accents: é è ê à ç.",
        "Маленькое предложение по-русски.",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let need = min_unigram_vocab(&texts);
    let e = match Tokenizer::train_unigram(&texts, 30) {
        Ok(_) => panic!("vocab 30 is too small for this text"),
        Err(e) => e.to_string(),
    };
    assert!(
        e.contains(&format!("give a vocabulary of at least {need}"))
            && e.contains(&format!("{} distinct characters", need - 5))
            && !e.contains("it must be a Hugging Face tokenizer.json"),
        "{e}"
    );
    let t = Tokenizer::train_unigram(&texts, need).unwrap();
    assert!(t.vocab_size() >= need - 5, "{} vs {need}", t.vocab_size());
}
