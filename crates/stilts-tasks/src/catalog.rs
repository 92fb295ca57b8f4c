//! The catalog of tasks, data only: for each task its name, file layout,
//! reader, input format, head, label set and metric. Finding a split's files
//! is [`crate::layout`]; reading them is [`crate::dispatch`].

use stilts_model::error::{Error, Result};
use stilts_model::HeadKind;

use crate::example::Metric;
use crate::readers::generic::GenericSpec;
use crate::readers::{glue, nli_labels};

/// Which reader a task uses.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Format {
    /// MultiNLI / SNLI / compact NLI JSON lines, or GLUE's NLI TSV (by extension).
    Nli,
    /// ANLI JSON lines (`context`, `hypothesis`, `label` e/n/c).
    Anli,
    /// GLUE's QQP TSV (`question1`, `question2`, `is_duplicate`).
    Qqp,
    /// GLUE's SST-2 TSV (`sentence` or `text`, `label`).
    Sst2,
    /// XTREME per-language TSV, or the original `xnli.{dev,test}.tsv`.
    Xnli,
    /// AmericasNLI TSV (`id language premise hypothesis label`), per
    /// language or combined and filtered by `language`.
    AmericasNli,
    /// SQuAD v1.1 or v2.0 JSON (one document).
    Squad,
    /// HellaSwag JSON lines, or its 6-lines-per-example text.
    HellaSwag,
    /// Cosmos QA JSON lines or CSV, with an optional `{split}-labels.lst`.
    CosmosQa,
    /// CommonsenseQA JSON lines (the original or the Hugging Face layout).
    CommonsenseQa,
    /// jiant's CCG files plus `tags_to_id.json`.
    Ccg,
    /// A user's TSV, CSV or JSON lines with the columns the spec names.
    Generic(GenericSpec),
    /// LASER's Tatoeba release: two line-aligned text files per language,
    /// `tatoeba.{code}-eng.{code}` and `tatoeba.{code}-eng.eng` (a split's
    /// two parts, read together as sentence pairs).
    Tatoeba,
}

/// One split: the files it is made of. Each part is a list of candidate
/// paths under the task folder, tried in order (the first that exists is
/// read); every part must be found. In a candidate, `{sub}` is the
/// language or round (`{SUB}` upper case), `*` matches any run of characters
/// in the file name, and a `.gz` or `.bz2` suffix is always accepted.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitLayout {
    /// The split's name (`train`, `dev`, `dev_matched`, ...).
    pub name: String,
    /// The files the split is made of, read in order and concatenated.
    pub parts: Vec<Part>,
}

/// One file of a split: where it may be, and how to read it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Part {
    /// Paths relative to the task folder, tried in order (see `SplitLayout`).
    pub candidates: Vec<String>,
    /// Which reader reads this part (ANLI+ mixes three).
    pub format: Format,
}

/// A task: everything needed to read it, build its head and score it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskSpec {
    /// The task's name in the catalog (`mnli`, `xnli`, ...).
    pub name: String,
    /// One line saying what the task is, for listings.
    pub description: String,
    /// The head; for `ccg` the labels come from `tags_to_id.json` at load time.
    pub head: HeadKind,
    /// How the task is scored.
    pub metric: Metric,
    /// What one example is, in words (for the README and messages).
    pub input: String,
    /// The splits the task has and the files of each.
    pub splits: Vec<SplitLayout>,
    /// Languages (XNLI, AmericasNLI) or rounds (ANLI); empty if none.
    pub subsets: Vec<String>,
    /// "language" or "round".
    pub subset_kind: Option<String>,
    /// The subset taken when none is named (`all` for ANLI).
    pub default_subset: Option<String>,
    /// Extra lines for the layout description.
    pub notes: Vec<String>,
    /// Where a subset's files spell it otherwise (Tatoeba's ISO 639-3
    /// `deu` for XTREME's `de`): (subset, code); a candidate's `{code}` is
    /// replaced by it (by the subset itself when it is not listed).
    #[serde(default)]
    pub file_codes: Vec<(String, String)>,
}

/// The 15 XNLI languages.
pub const XNLI_LANGUAGES: [&str; 15] = [
    "ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh",
];
/// The 10 AmericasNLI languages.
pub const AMERICASNLI_LANGUAGES: [&str; 10] = [
    "aym", "bzd", "cni", "gn", "hch", "nah", "oto", "quy", "shp", "tar",
];
/// The 36 languages of XTREME's Tatoeba task, in XTREME's two-letter
/// codes.
pub const TATOEBA_LANGUAGES: [&str; 36] = [
    "af", "ar", "bg", "bn", "de", "el", "es", "et", "eu", "fa", "fi", "fr", "he", "hi", "hu", "id",
    "it", "ja", "jv", "ka", "kk", "ko", "ml", "mr", "nl", "pt", "ru", "sw", "ta", "te", "th", "tl",
    "tr", "ur", "vi", "zh",
];
/// The ISO 639-3 code of LASER's files for each of [`TATOEBA_LANGUAGES`]
/// (XTREME's own table: `cmn` Mandarin, `pes` Persian, `swh` Swahili).
pub const TATOEBA_FILE_CODES: [&str; 36] = [
    "afr", "ara", "bul", "ben", "deu", "ell", "spa", "est", "eus", "pes", "fin", "fra", "heb",
    "hin", "hun", "ind", "ita", "jpn", "jav", "kat", "kaz", "kor", "mal", "mar", "nld", "por",
    "rus", "swh", "tam", "tel", "tha", "tgl", "tur", "urd", "vie", "cmn",
];
/// ANLI rounds.
pub const ANLI_ROUNDS: [&str; 3] = ["r1", "r2", "r3"];

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A split of the catalog: its name, reader and candidate file names.
fn layout(name: &str, format: Format, candidates: &[&str]) -> SplitLayout {
    SplitLayout {
        name: name.into(),
        parts: vec![Part {
            candidates: strs(candidates),
            format,
        }],
    }
}

fn classification(labels: Vec<String>) -> HeadKind {
    HeadKind::Classification { labels }
}

struct Base {
    name: &'static str,
    description: &'static str,
    head: HeadKind,
    metric: Metric,
    input: &'static str,
    splits: Vec<SplitLayout>,
}

fn spec(b: Base) -> TaskSpec {
    TaskSpec {
        name: b.name.into(),
        description: b.description.into(),
        head: b.head,
        metric: b.metric,
        input: b.input.into(),
        splits: b.splits,
        subsets: Vec::new(),
        subset_kind: None,
        default_subset: None,
        notes: Vec::new(),
        file_codes: Vec::new(),
    }
}

const MNLI_TRAIN: &[&str] = &[
    "train.jsonl",
    "multinli_1.0_train.jsonl",
    "train.tsv",
    "train*.jsonl",
];
const SNLI_TRAIN: &[&str] = &["snli_1.0_train.jsonl", "train.jsonl", "train.tsv"];

/// The names of the built-in tasks.
pub const TASK_NAMES: [&str; 16] = [
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
    "tatoeba",
    "generic",
];

/// All built-in tasks (the generic one with placeholder columns).
pub fn tasks() -> Vec<TaskSpec> {
    TASK_NAMES
        .iter()
        .map(|n| task(n).expect("built-in task"))
        .collect()
}

/// A built-in task by name; an unknown name lists the known ones.
pub fn task(name: &str) -> Result<TaskSpec> {
    use Format::*;
    let nli = || classification(nli_labels());
    let t = match name {
        "mnli" => {
            let mut t = spec(Base {
                name: "mnli",
                description: "MultiNLI (intermediate task)",
                head: nli(),
                metric: Metric::Accuracy,
                input: "pair (premise, hypothesis)",
                splits: vec![
                    layout("train", Nli, MNLI_TRAIN),
                    layout("dev_matched", Nli, &["dev_matched.jsonl", "multinli_1.0_dev_matched.jsonl", "dev_matched.tsv", "validation_matched.jsonl"]),
                    layout("dev_mismatched", Nli, &["dev_mismatched.jsonl", "multinli_1.0_dev_mismatched.jsonl", "dev_mismatched.tsv", "validation_mismatched.jsonl"]),
                ],
            });
            t.notes = strs(&[
                "jsonl: MultiNLI's own (`sentence1`, `sentence2`, `gold_label`; `-` rows are left out and counted) or compact `premise`/`hypothesis`/`label` (name or 0/1/2)",
                "tsv: GLUE's MNLI files (header with `sentence1`, `sentence2`, `gold_label`)",
            ]);
            t
        }
        "snli" => {
            let mut t = spec(Base {
                name: "snli",
                description: "SNLI",
                head: nli(),
                metric: Metric::Accuracy,
                input: "pair (premise, hypothesis)",
                splits: vec![
                    layout("train", Nli, SNLI_TRAIN),
                    layout("dev", Nli, &["snli_1.0_dev.jsonl", "dev.jsonl", "dev.tsv"]),
                    layout("test", Nli, &["snli_1.0_test.jsonl", "test.jsonl", "test.tsv"]),
                ],
            });
            t.notes = strs(&["jsonl as MNLI (`gold_label` `-` rows left out and counted)"]);
            t
        }
        "anli" => {
            let mut t = spec(Base {
                name: "anli",
                description: "Adversarial NLI (rounds r1, r2, r3, or all)",
                head: nli(),
                metric: Metric::Accuracy,
                input: "pair (context, hypothesis)",
                splits: ["train", "dev", "test"].iter().map(|s| layout(s, Anli, &[&format!("{{SUB}}/{s}.jsonl")])).collect(),
            });
            t.subsets = strs(&ANLI_ROUNDS);
            t.subset_kind = Some("round".into());
            t.default_subset = Some("all".into());
            t.notes = strs(&["labels `e`/`n`/`c` map to entailment/neutral/contradiction"]);
            t
        }
        "anli_plus" => {
            let anli_part = |s: &str, r: &str| Part { candidates: vec![format!("anli/{r}/{s}.jsonl")], format: Anli };
            let train = SplitLayout {
                name: "train".into(),
                parts: vec![
                    anli_part("train", "R1"),
                    anli_part("train", "R2"),
                    anli_part("train", "R3"),
                    Part { candidates: MNLI_TRAIN.iter().map(|c| format!("mnli/{c}")).collect(), format: Nli },
                    Part { candidates: SNLI_TRAIN.iter().map(|c| format!("snli/{c}")).collect(), format: Nli },
                ],
            };
            let eval = |s: &str| SplitLayout { name: s.into(), parts: ["R1", "R2", "R3"].iter().map(|r| anli_part(s, r)).collect() };
            let mut t = spec(Base {
                name: "anli_plus",
                description: "ANLI+ (Phang et al. 2020): ANLI R1-R3 + MNLI + SNLI train; ANLI dev/test",
                head: nli(),
                metric: Metric::Accuracy,
                input: "pair (premise, hypothesis)",
                splits: vec![train, eval("dev"), eval("test")],
            });
            t.notes = strs(&["the folder holds `anli/`, `mnli/` and `snli/` laid out as those tasks expect"]);
            t
        }
        "qqp" => spec(Base {
            name: "qqp",
            description: "Quora Question Pairs (GLUE)",
            head: classification(glue::binary_labels()),
            metric: Metric::Accuracy,
            input: "pair (question1, question2); labels 0/1 (is_duplicate)",
            splits: ["train", "dev", "test"].iter().map(|s| layout(s, Qqp, &[&format!("{s}.tsv")])).collect(),
        }),
        "sst2" => spec(Base {
            name: "sst2",
            description: "SST-2 (GLUE)",
            head: classification(glue::sst2_labels()),
            metric: Metric::Accuracy,
            input: "one sentence; labels 0/1 in the file, named negative/positive (GLUE's names)",
            splits: vec![layout("train", Sst2, &["train.tsv", "train*.tsv"]), layout("dev", Sst2, &["dev.tsv"]), layout("test", Sst2, &["test.tsv"])],
        }),
        "hellaswag" => {
            let mut t = spec(Base {
                name: "hellaswag",
                description: "HellaSwag",
                head: HeadKind::MultipleChoice,
                metric: Metric::Accuracy,
                input: "4 pairs (ctx_a, ctx_b + \" \" + ending), as jiant",
                splits: vec![
                    layout("train", HellaSwag, &["hellaswag_train.jsonl", "train.jsonl"]),
                    layout("dev", HellaSwag, &["hellaswag_val.jsonl", "hellaswag_val*.jsonl", "val.jsonl", "dev.jsonl", "hellaswag_val*.txt"]),
                    layout("test", HellaSwag, &["hellaswag_test.jsonl", "test.jsonl"]),
                ],
            });
            t.notes = strs(&[
                "jsonl: the official layout (`ctx_a`, `ctx_b`, `endings`, `label`) or one with a joined `ctx`",
                "txt: 6 lines per example (context, label 0-3, 4 endings)",
            ]);
            t
        }
        "cosmosqa" => {
            let mut t = spec(Base {
                name: "cosmosqa",
                description: "Cosmos QA",
                head: HeadKind::MultipleChoice,
                metric: Metric::Accuracy,
                input: "4 pairs (context + \" \" + question, answerK), as jiant",
                splits: vec![
                    layout("train", CosmosQa, &["train.jsonl", "train.csv"]),
                    layout("dev", CosmosQa, &["valid.jsonl", "valid.csv", "dev.jsonl", "dev.csv"]),
                    layout("test", CosmosQa, &["test.jsonl", "test.csv"]),
                ],
            });
            t.notes = strs(&["`{split}-labels.lst` (one label per line) beside a file fills in or checks its labels"]);
            t
        }
        "commonsenseqa" => spec(Base {
            name: "commonsenseqa",
            description: "CommonsenseQA (v1.11, random split)",
            head: HeadKind::MultipleChoice,
            metric: Metric::Accuracy,
            input: "5 pairs (question stem, choice text)",
            splits: vec![
                layout("train", CommonsenseQa, &["train_rand_split.jsonl", "train_rand_split*.jsonl", "train.jsonl"]),
                layout("dev", CommonsenseQa, &["dev_rand_split.jsonl", "dev.jsonl", "validation.jsonl"]),
                layout("test", CommonsenseQa, &["test_rand_split_no_answers.jsonl", "test.jsonl"]),
            ],
        }),
        "squad_v1" => spec(Base {
            name: "squad_v1",
            description: "SQuAD v1.1",
            head: HeadKind::SpanQa,
            metric: Metric::SquadV1,
            input: "(question, context) in windows of 384 tokens, stride 128",
            splits: vec![layout("train", Squad, &["train-v1.1.json"]), layout("dev", Squad, &["dev-v1.1.json"])],
        }),
        "squad_v2" => spec(Base {
            name: "squad_v2",
            description: "SQuAD v2.0",
            head: HeadKind::SpanQa,
            metric: Metric::SquadV2,
            input: "(question, context) in windows of 384 tokens, stride 128; unanswerable -> <s>",
            splits: vec![layout("train", Squad, &["train-v2.0.json"]), layout("dev", Squad, &["dev-v2.0.json", "dev-v2.0*.json"])],
        }),
        "ccg" => {
            let mut t = spec(Base {
                name: "ccg",
                description: "CCG supertagging (CCGbank, jiant's format)",
                head: HeadKind::Tagging { labels: Vec::new() },
                metric: Metric::TaggingAccuracy,
                input: "space-tokenized sentence; a supertag per word, on its first sub-token",
                splits: ["train", "dev", "test"].iter().map(|s| layout(s, Ccg, &[&format!("ccg.{s}.tsv"), &format!("{s}.tsv")])).collect(),
            });
            t.notes = strs(&[
                "each line: `tokens \\t supertags` (both space-separated, same count)",
                "`tags_to_id.json` ({supertag: id}) in the same folder fixes the label set",
            ]);
            t
        }
        "xnli" => {
            let mut t = spec(Base {
                name: "xnli",
                description: "XNLI 1.0 (target task, 15 languages)",
                head: nli(),
                metric: Metric::Accuracy,
                input: "pair (premise, hypothesis)",
                splits: vec![
                    layout("train", Xnli, &["train-{sub}.tsv", "multinli.train.{sub}.tsv"]),
                    layout("dev", Xnli, &["dev-{sub}.tsv", "xnli.dev.tsv"]),
                    layout("test", Xnli, &["test-{sub}.tsv", "xnli.test.tsv"]),
                ],
            });
            t.subsets = strs(&XNLI_LANGUAGES);
            t.subset_kind = Some("language".into());
            t.notes = strs(&[
                "`{split}-{lang}.tsv`: XTREME's layout, no header, `premise \\t hypothesis \\t label`",
                "`xnli.{dev,test}.tsv`: the original XNLI 1.0 files (header `language gold_label ... sentence1 sentence2 ...`), all languages in one file",
                "`train-{lang}.tsv`: XTREME's train (MNLI, or XNLI-MT translate-train), same columns; XNLI-MT's `multinli.train.{lang}.tsv` (header `premise hypo label`) too",
            ]);
            t
        }
        "americasnli" => {
            let mut t = spec(Base {
                name: "americasnli",
                description: "AmericasNLI (extension target, 10 languages)",
                head: nli(),
                metric: Metric::Accuracy,
                input: "pair (premise, hypothesis)",
                splits: vec![layout("dev", AmericasNli, &["dev/{sub}.tsv", "anli.dev.tsv"]), layout("test", AmericasNli, &["test/{sub}.tsv", "anli.test.tsv"])],
            });
            t.subsets = strs(&AMERICASNLI_LANGUAGES);
            t.subset_kind = Some("language".into());
            t.notes = strs(&["TSV with header `id language premise hypothesis label`; the combined `anli.{dev,test}.tsv` is filtered by `language`"]);
            t
        }
        "tatoeba" => {
            let mut t = spec(Base {
                name: "tatoeba",
                description: "Tatoeba sentence retrieval (XTREME's 36 languages, LASER's release; no training data)",
                // No head reads it: retrieval scores the encoder's sentence
                // embeddings (`evaluate`); the empty label set stands for none.
                head: classification(Vec::new()),
                metric: Metric::Retrieval,
                input: "sentence pairs (xx, en): line i of both files, each sentence encoded alone",
                splits: vec![SplitLayout {
                    name: "test".into(),
                    parts: vec![
                        Part { candidates: strs(&["tatoeba.{code}-eng.{code}"]), format: Tatoeba },
                        Part { candidates: strs(&["tatoeba.{code}-eng.eng"]), format: Tatoeba },
                    ],
                }],
            });
            t.subsets = strs(&TATOEBA_LANGUAGES);
            t.subset_kind = Some("language".into());
            t.file_codes = TATOEBA_LANGUAGES
                .iter()
                .zip(TATOEBA_FILE_CODES)
                .map(|(l, c)| (l.to_string(), c.to_string()))
                .collect();
            t.notes = strs(&[
                "{code} = LASER's ISO 639-3 code of the language: af afr, ar ara, bg bul, bn ben, de deu, el ell, es spa, et est, eu eus, fa pes, fi fin, fr fra, he heb, hi hin, hu hun, id ind, it ita, ja jpn, jv jav, ka kat, kk kaz, ko kor, ml mal, mr mar, nl nld, pt por, ru rus, sw swh, ta tam, te tel, th tha, tl tgl, tr tur, ur urd, vi vie, zh cmn",
                "line i of `tatoeba.{code}-eng.{code}` translates line i of `tatoeba.{code}-eng.eng`: both files must have the same number of lines",
                "the only split is `test` (the default of task(\"tatoeba\")); no languages named: all 36",
                "scored by evaluate(model, task): nearest-neighbour retrieval of each sentence's translation (see `evaluate`)",
            ]);
            t
        }
        "generic" => generic("generic", GenericSpec::new(&["text"], "label", &["0", "1"])),
        other => {
            return Err(Error::msg(format!(
                "unknown task `{other}`; known tasks: {} (your own TSV/CSV/JSONL with a header: the task `generic`, with text columns, label column and labels)",
                TASK_NAMES.join(", ")
            )))
        }
    };
    Ok(t)
}

/// The split `task(NAME)` reads when none is named: `test` for a task
/// that has no other (`tatoeba`), else `train`.
///
/// ```
/// assert_eq!(stilts_tasks::catalog::default_split("tatoeba"), "test");
/// assert_eq!(stilts_tasks::catalog::default_split("xnli"), "train");
/// ```
pub fn default_split(name: &str) -> &'static str {
    match name {
        "tatoeba" => "test",
        _ => "train",
    }
}

/// A classification task over a user's own files: `{train,dev,test}.{tsv,csv,jsonl}`
/// (optionally `.gz`/`.bz2`) in one folder, with the columns `spec` names.
pub fn generic(name: &str, spec: GenericSpec) -> TaskSpec {
    let f = Format::Generic(spec.clone());
    let input = if spec.text_columns.len() == 2 {
        format!(
            "pair ({}, {}); label column `{}`",
            spec.text_columns[0], spec.text_columns[1], spec.label_column
        )
    } else {
        format!(
            "one text (`{}`); label column `{}`",
            spec.text_columns.join(""),
            spec.label_column
        )
    };
    TaskSpec {
        name: name.into(),
        description: "your own classification data".into(),
        head: HeadKind::Classification { labels: spec.labels.clone() },
        metric: Metric::Accuracy,
        input,
        splits: ["train", "dev", "test"]
            .iter()
            .map(|s| SplitLayout { name: s.to_string(), parts: vec![Part { candidates: vec![format!("{s}.tsv"), format!("{s}.csv"), format!("{s}.jsonl")], format: f.clone() }] })
            .collect(),
        subsets: Vec::new(),
        subset_kind: None,
        default_subset: None,
        notes: strs(&["tsv: header row, tab-split, no quoting; csv: header row, quoted fields; jsonl: one object per line"]),
        file_codes: Vec::new(),
    }
}
