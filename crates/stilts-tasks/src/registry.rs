//! The task registry: for each task its name, file layout, reader, input
//! format, head, label set and metric; finding a split's files under a
//! task folder, and loading them into a [`Dataset`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::example::{Dataset, Example};
use super::io::{plain_name, ReadOptions, SkipReport};
use super::readers::generic::GenericSpec;
use super::readers::{ccg, choice, glue, nli, nli_labels, squad};
use stilts_model::error::{Error, Result};
use stilts_model::HeadKind;

use super::example::Metric;

/// Which reader a task uses.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Format {
    /// MultiNLI / SNLI / compact NLI JSON lines, or GLUE's NLI TSV (by extension).
    Nli,
    /// ANLI JSON lines (`context`, `hypothesis`, `label` e/n/c).
    Anli,
    Qqp,
    Sst2,
    /// XTREME per-language TSV, or the original `xnli.{dev,test}.tsv`.
    Xnli,
    AmericasNli,
    Squad,
    HellaSwag,
    CosmosQa,
    CommonsenseQa,
    /// jiant's CCG files plus `tags_to_id.json`.
    Ccg,
    Generic(GenericSpec),
}

/// One split: the files it is made of. Each part is a list of candidate
/// paths under the task folder, tried in order (the first that exists is
/// read); every part must be found. In a candidate, `{sub}` is the
/// language or round (`{SUB}` upper case), `*` matches any run of characters
/// in the file name, and a `.gz` or `.bz2` suffix is always accepted.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitLayout {
    pub name: String,
    pub parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Part {
    pub candidates: Vec<String>,
    /// Which reader reads this part (ANLI+ mixes three).
    pub format: Format,
}

/// A task: everything needed to read it, build its head and score it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TaskSpec {
    pub name: String,
    pub description: String,
    /// The head; for `ccg` the labels come from `tags_to_id.json` at load time.
    pub head: HeadKind,
    pub metric: Metric,
    /// What one example is, in words (for the README and messages).
    pub input: String,
    pub splits: Vec<SplitLayout>,
    /// Languages (XNLI, AmericasNLI) or rounds (ANLI); empty if none.
    pub subsets: Vec<String>,
    /// "language" or "round".
    pub subset_kind: Option<String>,
    /// The subset taken when none is named (`all` for ANLI).
    pub default_subset: Option<String>,
    /// Extra lines for the layout description.
    pub notes: Vec<String>,
}

/// The 15 XNLI languages.
pub const XNLI_LANGUAGES: [&str; 15] = [
    "ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh",
];
/// The 10 AmericasNLI languages.
pub const AMERICASNLI_LANGUAGES: [&str; 10] = [
    "aym", "bzd", "cni", "gn", "hch", "nah", "oto", "quy", "shp", "tar",
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
pub const TASK_NAMES: [&str; 15] = [
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
            head: classification(glue::binary_labels()),
            metric: Metric::Accuracy,
            input: "one sentence; labels 0/1",
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
    }
}

/// Other names for splits.
fn canonical_split(s: &str) -> &str {
    match s {
        "val" | "valid" | "validation" => "dev",
        "validation_matched" => "dev_matched",
        "validation_mismatched" => "dev_mismatched",
        other => other,
    }
}

/// Does `name` match `pattern` (`*` = any run)?
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first)
        || !name[first.len()..].ends_with(last)
        || name.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The file under `root` that `pattern` names, if any. Several matches of a
/// wildcard are an error (name one of them exactly).
fn find(root: &Path, pattern: &str) -> Result<Option<PathBuf>> {
    let rel = Path::new(pattern);
    let dir = root.join(rel.parent().unwrap_or(Path::new("")));
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(None);
    };
    let matching: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| glob(&name, &plain_name(p)))
        .collect();
    let mut hits: Vec<PathBuf> = matching.iter().filter(|p| p.is_file()).cloned().collect();
    if hits.is_empty() {
        if let Some(d) = matching.iter().find(|p| p.is_dir()) {
            return Err(Error::config(d, format!("is a folder, but the task reads a file of that name here (`{pattern}`); put the file itself there")));
        }
    }
    hits.sort();
    // `dev.jsonl` and `dev.jsonl.gz` side by side: the plain one wins.
    let mut names: Vec<String> = hits.iter().map(|p| plain_name(p)).collect();
    names.dedup();
    if names.len() > 1 {
        return Err(Error::config(
            dir,
            format!(
                "`{pattern}` matches several files ({}); keep one, or give it the exact name",
                names.join(", ")
            ),
        ));
    }
    Ok(hits.into_iter().next())
}

/// One file to read: where, how, and which language to keep from a
/// one-file multilingual layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    pub path: PathBuf,
    pub format: Format,
    pub filter: Option<String>,
    pub subset: Option<String>,
}

impl TaskSpec {
    pub fn split_names(&self) -> Vec<&str> {
        self.splits.iter().map(|s| s.name.as_str()).collect()
    }

    fn split(&self, name: &str) -> Result<&SplitLayout> {
        let c = canonical_split(name);
        let c = if self.name == "mnli" && c == "dev" {
            "dev_matched"
        } else {
            c
        };
        self.splits.iter().find(|s| s.name == c).ok_or_else(|| {
            Error::msg(format!(
                "task `{}` has no split `{name}`; its splits: {}",
                self.name,
                self.split_names().join(", ")
            ))
        })
    }

    /// The subsets a request means (`None` -> default; `all` -> every one).
    fn subsets_for(&self, subset: Option<&str>) -> Result<Vec<Option<String>>> {
        if self.subsets.is_empty() {
            return match subset {
                None | Some("all") => Ok(vec![None]),
                Some(s) => Err(Error::msg(format!(
                    "task `{}` has no languages or rounds (asked for `{s}`)",
                    self.name
                ))),
            };
        }
        let kind = self.subset_kind.as_deref().unwrap_or("subset");
        let s = subset
            .map(str::to_string)
            .or_else(|| self.default_subset.clone())
            .ok_or_else(|| {
                Error::msg(format!(
                    "task `{}`: name a {kind}: {} (or `all`)",
                    self.name,
                    self.subsets.join(", ")
                ))
            })?;
        let s = s.to_ascii_lowercase();
        if s == "all" {
            return Ok(self.subsets.iter().cloned().map(Some).collect());
        }
        if self.subsets.contains(&s) {
            Ok(vec![Some(s)])
        } else {
            Err(Error::msg(format!(
                "task `{}` has no {kind} `{s}`; its {kind}s: {} (or `all`)",
                self.name,
                self.subsets.join(", ")
            )))
        }
    }

    fn resolve_part(
        &self,
        root: &Path,
        part: &Part,
        sub: Option<&str>,
    ) -> Result<Option<SourceFile>> {
        for c in &part.candidates {
            let has_sub = c.contains("{sub}") || c.contains("{SUB}");
            let pat = match sub {
                Some(s) => c
                    .replace("{sub}", s)
                    .replace("{SUB}", &s.to_ascii_uppercase()),
                None if has_sub => continue,
                None => c.clone(),
            };
            if let Some(path) = find(root, &pat)? {
                let filter = if has_sub {
                    None
                } else {
                    sub.map(str::to_string)
                };
                return Ok(Some(SourceFile {
                    path,
                    format: part.format.clone(),
                    filter,
                    subset: sub.map(str::to_string),
                }));
            }
        }
        Ok(None)
    }

    /// The files a split (and language or round) reads, in order; a missing
    /// one is an error that says what was looked for and what exists.
    pub fn resolve(
        &self,
        root: &Path,
        split: &str,
        subset: Option<&str>,
    ) -> Result<Vec<SourceFile>> {
        let layout = self.split(split)?;
        let subs = self.subsets_for(subset)?;
        let mut out: Vec<SourceFile> = Vec::new();
        for sub in &subs {
            for part in &layout.parts {
                match self.resolve_part(root, part, sub.as_deref())? {
                    Some(f) => out.push(f),
                    None => {
                        let looked: Vec<String> = part
                            .candidates
                            .iter()
                            .map(|c| match sub {
                                Some(s) => c
                                    .replace("{sub}", s)
                                    .replace("{SUB}", &s.to_ascii_uppercase()),
                                None => c.clone(),
                            })
                            .collect();
                        let what = match sub {
                            Some(s) => format!(
                                "split `{}` for {} `{s}`",
                                layout.name,
                                self.subset_kind.as_deref().unwrap_or("subset")
                            ),
                            None => format!("split `{}`", layout.name),
                        };
                        return Err(Error::msg(format!(
                            "task `{}`: no file for {what} under {}; looked for {} (optionally .gz/.bz2).\n{}",
                            self.name,
                            root.display(),
                            looked.join(", "),
                            self.available_text(root)
                        )));
                    }
                }
            }
        }
        // A one-file multilingual layout read for every language: read it once.
        if subs.len() > 1
            && out.iter().all(|f| f.filter.is_some())
            && out.windows(2).all(|w| w[0].path == w[1].path)
        {
            out.truncate(1);
            out[0].filter = None;
            out[0].subset = None;
        }
        Ok(out)
    }

    /// For each split, the subsets whose files exist under `root`
    /// (`[None]` for a task without subsets); splits with none are left out.
    pub fn available(&self, root: &Path) -> Vec<(String, Vec<Option<String>>)> {
        let mut out = Vec::new();
        for s in &self.splits {
            let subs: Vec<Option<String>> = if self.subsets.is_empty() {
                vec![None]
            } else {
                self.subsets.iter().cloned().map(Some).collect()
            };
            let found: Vec<Option<String>> = subs
                .into_iter()
                .filter(|sub| {
                    s.parts
                        .iter()
                        .all(|p| matches!(self.resolve_part(root, p, sub.as_deref()), Ok(Some(_))))
                })
                .collect();
            if !found.is_empty() {
                out.push((s.name.clone(), found));
            }
        }
        out
    }

    fn available_text(&self, root: &Path) -> String {
        let av = self.available(root);
        if av.is_empty() {
            return format!(
                "Nothing of `{}` is there. Expected layout:\n{}",
                self.name,
                self.layout()
            );
        }
        let kind = self.subset_kind.as_deref().unwrap_or("subset");
        let items: Vec<String> = av
            .iter()
            .map(|(s, subs)| {
                let subs: Vec<&str> = subs.iter().flatten().map(String::as_str).collect();
                if subs.is_empty() {
                    s.clone()
                } else {
                    format!("{s} ({kind}s: {})", subs.join(" "))
                }
            })
            .collect();
        format!("What exists there: {}", items.join("; "))
    }

    /// The file layout the task expects, as indented text (used in error
    /// messages and the README).
    pub fn layout(&self) -> String {
        let mut s = format!(
            "{} — {}\n  input: {}\n  head: {}",
            self.name,
            self.description,
            self.input,
            self.head.name()
        );
        let labels = self.head.labels();
        if !labels.is_empty() {
            s.push_str(&format!(" [{}]", labels.join(", ")));
        }
        s.push_str(&format!("; metric: {}\n", self.metric.name()));
        for sp in &self.splits {
            let parts: Vec<String> = sp.parts.iter().map(|p| p.candidates.join(" | ")).collect();
            s.push_str(&format!("  {}: {}\n", sp.name, parts.join("  +  ")));
        }
        if !self.subsets.is_empty() {
            let upper = self
                .splits
                .iter()
                .flat_map(|s| &s.parts)
                .flat_map(|p| &p.candidates)
                .any(|c| c.contains("{SUB}"));
            s.push_str(&format!(
                "  {{sub}} = {}: {}{}{}\n",
                self.subset_kind.as_deref().unwrap_or("subset"),
                self.subsets.join(" "),
                if self.default_subset.is_some() {
                    " (default: all)"
                } else {
                    ""
                },
                if upper {
                    "; {SUB} = the same in upper case"
                } else {
                    ""
                }
            ));
        }
        for n in &self.notes {
            s.push_str(&format!("  {n}\n"));
        }
        s.push_str("  any file may be gzip (.gz) or bzip2 (.bz2) compressed\n");
        s
    }

    /// Reads a split (of one language or round, or `all`) from the task
    /// folder `root`.
    pub fn load(
        &self,
        root: &Path,
        split: &str,
        subset: Option<&str>,
        opts: &ReadOptions,
    ) -> Result<Dataset> {
        let files = self.resolve(root, split, subset)?;
        let mut head = self.head.clone();
        let mut labels = head.labels().to_vec();
        if let HeadKind::Tagging { .. } = head {
            let tags = root.join("tags_to_id.json");
            if !tags.exists() {
                return Err(Error::msg(format!(
                    "task `{}`: {} is missing; it maps each supertag to its id (jiant's format)",
                    self.name,
                    tags.display()
                )));
            }
            labels = ccg::read_tags_to_id(&tags)?;
            head = HeadKind::Tagging {
                labels: labels.clone(),
            };
        }
        let mut examples: Vec<Example> = Vec::new();
        let mut skipped = SkipReport::default();
        for f in &files {
            let mut report = SkipReport::default();
            let mut part = read_file(f, &labels, opts, &mut report)?;
            part =
                check_examples(&f.path, part, opts, &mut report).map_err(|e| match &f.filter {
                    Some(lang) if part_was_empty(&e) => Error::config(
                        &f.path,
                        format!("no examples of `{lang}` in this file; pick a language it holds"),
                    ),
                    _ => e,
                })?;
            if subset.is_some_and(|s| s.eq_ignore_ascii_case("all")) || files.len() > 1 {
                if let Some(sub) = &f.subset {
                    prefix_ids(&mut part, sub);
                }
            }
            examples.extend(part);
            skipped.merge(report);
        }
        if let Some(l) = opts.limit {
            examples.truncate(l);
        }
        let subset = match subset {
            Some(s) => Some(s.to_ascii_lowercase()),
            None => self.default_subset.clone(),
        };
        Ok(Dataset {
            task: self.name.clone(),
            split: self.split(split)?.name.clone(),
            subset,
            files: files.into_iter().map(|f| f.path).collect(),
            labels,
            head,
            metric: self.metric,
            examples,
            skipped,
        })
    }
}

fn prefix_ids(examples: &mut [Example], sub: &str) {
    for e in examples {
        let id = match e {
            Example::Text { id, .. }
            | Example::Choice { id, .. }
            | Example::Span { id, .. }
            | Example::Words { id, .. } => id,
        };
        if !id.starts_with(sub) {
            *id = format!("{sub}/{id}");
        }
    }
}

fn part_was_empty(e: &Error) -> bool {
    e.to_string().contains(": no examples (")
}

/// The line of an example in its file.
fn line_of(e: &Example) -> usize {
    match e {
        Example::Text { line, .. }
        | Example::Choice { line, .. }
        | Example::Span { line, .. }
        | Example::Words { line, .. } => *line,
    }
}

/// Checks what one file gave, the same for every reader: a file with no
/// examples is an error naming it; in a file whose rows have labels, a row
/// without one is a bad line (not an unlabelled example to train on); in
/// multiple choice, a row with another number of candidates than the
/// file's other rows is a bad line. Bad lines follow the bad-line policy
/// (an error naming file and line, or left out and counted).
pub fn check_examples(
    path: &Path,
    examples: Vec<Example>,
    opts: &ReadOptions,
    report: &mut SkipReport,
) -> Result<Vec<Example>> {
    if examples.is_empty() {
        if report.is_empty() {
            return Err(Error::config(path, "no examples (the file is empty or holds only a header); check the file or the split"));
        }
        return Ok(examples);
    }
    let labelled = |e: &Example| match e {
        Example::Text { label, .. } | Example::Choice { label, .. } => Some(label.is_some()),
        Example::Words { tags, .. } => Some(tags.is_some()),
        Example::Span { .. } => None,
    };
    let with = examples
        .iter()
        .filter(|e| labelled(e) == Some(true))
        .count();
    let choices = |e: &Example| match e {
        Example::Choice { choices, .. } => Some(choices.len()),
        _ => None,
    };
    // The number of candidates most rows have.
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for n in examples.iter().filter_map(choices) {
        *counts.entry(n).or_default() += 1;
    }
    let usual = counts.iter().max_by_key(|(_, c)| **c).map(|(n, _)| *n);
    let mut out = Vec::with_capacity(examples.len());
    for e in examples {
        let problem = if with > 0 && labelled(&e) == Some(false) {
            Some("no label, though the file's other rows have one".to_string())
        } else {
            match (choices(&e), usual) {
                (Some(n), Some(u)) if n != u => Some(format!(
                    "{n} candidates, but the file's other rows have {u}"
                )),
                _ => None,
            }
        };
        match problem {
            None => out.push(e),
            Some(msg) => match opts.on_error {
                super::io::BadLines::Fail => {
                    return Err(Error::Data {
                        path: path.to_path_buf(),
                        line: line_of(&e),
                        msg: format!(
                            "{msg}; fix the line, or leave such lines out with skip_bad_lines"
                        ),
                    })
                }
                super::io::BadLines::Skip => {
                    report.bad_lines += 1;
                    if report.first.len() < SkipReport::KEEP {
                        report.first.push(super::io::BadLine {
                            path: path.to_path_buf(),
                            line: line_of(&e),
                            msg,
                        });
                    }
                }
            },
        }
    }
    Ok(out)
}

/// Reads one file with its task's reader.
pub fn read_file(
    f: &SourceFile,
    labels: &[String],
    opts: &ReadOptions,
    report: &mut SkipReport,
) -> Result<Vec<Example>> {
    let p = &f.path;
    let ext = super::io::data_ext(p);
    match &f.format {
        Format::Nli if ext == "tsv" => nli::read_glue_nli_tsv(p, opts, report),
        Format::Nli | Format::Anli => nli::read_nli_jsonl(p, opts, report),
        Format::Qqp => glue::read_qqp(p, opts, report),
        Format::Sst2 => glue::read_sst2(p, opts, report),
        Format::Xnli if plain_name(p).starts_with("xnli.") => {
            nli::read_xnli_original(p, f.filter.as_deref(), opts, report)
        }
        Format::Xnli => nli::read_xnli_xtreme(p, opts, report),
        Format::AmericasNli => nli::read_americasnli(p, f.filter.as_deref(), opts, report),
        Format::Squad => squad::read_squad(p, opts, report),
        Format::HellaSwag if ext == "txt" => choice::read_hellaswag_txt(p, opts, report),
        Format::HellaSwag => choice::read_hellaswag_jsonl(p, opts, report),
        Format::CosmosQa => choice::read_cosmosqa(p, opts, report),
        Format::CommonsenseQa => choice::read_commonsenseqa(p, opts, report),
        Format::Ccg => ccg::read_ccg(p, labels, opts, report),
        Format::Generic(spec) => super::readers::generic::read_generic(p, spec, opts, report),
    }
}

/// Loads a built-in task's split: `load("xnli", &root, "test", Some("de"), &opts)`.
pub fn load(
    name: &str,
    root: &Path,
    split: &str,
    subset: Option<&str>,
    opts: &ReadOptions,
) -> Result<Dataset> {
    task(name)?.load(root, split, subset, opts)
}

/// The layout of every built-in task, as Markdown (for the README).
pub fn layouts_markdown() -> String {
    let mut s = String::new();
    for t in tasks() {
        s.push_str(&format!(
            "### `{}`\n\n```text\n{}```\n\n",
            t.name,
            t.layout()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn glob_matches_runs() {
        assert!(glob("train.jsonl", "train.jsonl"));
        assert!(!glob("train.jsonl", "train.jsonl.gz"));
        assert!(glob(
            "train*.jsonl",
            "train.xnli_mt_en.first3000_per_label.jsonl"
        ));
        assert!(glob("train*.jsonl", "train.jsonl"));
        assert!(glob("hellaswag_val*.txt", "hellaswag_val_full.txt"));
        assert!(!glob("hellaswag_val*.txt", "hellaswag_val.from_txt.jsonl"));
        assert!(glob("a*b*c", "a-b-c") && !glob("a*b*c", "a-c-b"));
        assert!(!glob("ab*ba", "aba"));
    }
}
