//! The one door a task is opened through: a [`TaskSource`] (a task of the
//! catalog in its folder, any CSV/TSV/JSONL folder with named columns, one
//! headerless TSV file, or raw text for masked language modelling) and a
//! [`Selection`] (split, languages, how bad lines are handled) go into
//! [`open`], and an [`OpenedTask`] (its name, split and a [`Dataset`] per
//! language) comes out. Front ends build the source from their own syntax
//! (`task("xnli", #{data: ..})` in rhai) and never pick a reader themselves.

use std::path::{Path, PathBuf};

use stilts_model::error::{Error, Result};

use crate::catalog::{generic, task, TaskSpec, TASK_NAMES};
use crate::example::Dataset;
use crate::io::{BadLines, ReadOptions};
use crate::readers::generic::GenericSpec;
use crate::readers::{columns, text};

/// Where a task's examples come from.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskSource {
    /// A task of the catalog ([`TASK_NAMES`]) in its release's folder
    /// layout ([`TaskSpec::layout`]).
    Builtin {
        /// The catalog name (`xnli`, `mnli`, ...).
        name: String,
        /// The task's data folder.
        data: PathBuf,
    },
    /// A folder of CSV/TSV/JSONL files with named columns, a split per file.
    Generic {
        /// The task's name in results.
        name: String,
        /// The folder holding `{train,dev,test}.{tsv,csv,jsonl}`.
        data: PathBuf,
        /// The text columns, label column and label set.
        spec: GenericSpec,
    },
    /// One headerless TSV file (`.gz`/`.bz2` too) with the given columns
    /// (`label`, one or two text columns, optionally `language` and `id`);
    /// its name defaults to the file's stem.
    Tsv {
        /// The task's name in results; `None`: the file's stem.
        name: Option<String>,
        /// The TSV file.
        file: PathBuf,
        /// The name of each column, in order.
        columns: Vec<String>,
        /// The label set, in the classifier's order.
        labels: Vec<String>,
    },
    /// Raw text for masked language modelling.
    Mlm(MlmText),
}

/// The raw text of [`TaskSource::Mlm`].
#[derive(Clone, Debug, PartialEq)]
pub enum MlmText {
    /// Files of one sentence a line, a part per file (named by its stem).
    Files(Vec<PathBuf>),
    /// The distinct premises of an XNLI-layout folder, a part per language.
    Premises {
        /// The XNLI data folder.
        data: PathBuf,
    },
}

/// Which examples of a source to read.
#[derive(Clone, Debug, PartialEq)]
pub struct Selection {
    /// `train`, `dev` or `test` (a raw-text file list has only `train`).
    pub split: String,
    /// The languages (or rounds) to read; `None`: all the source has.
    pub languages: Option<Vec<String>>,
    /// Bad lines (fail or skip) and `first`: a prefix of each file (read
    /// no further).
    pub read: ReadOptions,
    /// A seeded subset of at most N examples of each part, stratified by
    /// label for classification, drawn from the whole file
    /// ([`Dataset::limit_sample`]).
    pub limit: Option<usize>,
    /// Then a seeded label-balanced sample of N examples of each part
    /// ([`Dataset::sample`]).
    pub sample: Option<usize>,
    /// The seed of `limit` and `sample`.
    pub seed: u64,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            split: "train".into(),
            languages: None,
            read: ReadOptions::default(),
            limit: None,
            sample: None,
            seed: 0,
        }
    }
}

/// An opened task: its name in results, its split and one [`Dataset`] per
/// language (or round, or file).
#[derive(Clone, Debug)]
pub struct OpenedTask {
    /// The task's name in results (`mlm` for raw text).
    pub name: String,
    /// The split as selected (`train` for raw-text files).
    pub split: String,
    /// One dataset per language, round or file.
    pub parts: Vec<Dataset>,
}

/// The names a source can be opened by besides the catalog's: `tsv` and
/// `mlm` (and `generic`, which needs its columns).
pub const SOURCE_NAMES: [&str; 2] = ["tsv", "mlm"];

/// Opens a task: reads the selected split and languages of `source`.
///
/// ```
/// use stilts_tasks::{open, Selection, TaskSource};
/// let dir = tempfile::tempdir()?;
/// let file = dir.path().join("mine.tsv");
/// std::fs::write(&file, "de\tein Satz\tja\nfr\tune phrase\tnon\n")?;
/// let source = TaskSource::Tsv {
///     name: None,
///     file,
///     columns: vec!["language".into(), "text".into(), "label".into()],
///     labels: vec!["ja".into(), "non".into()],
/// };
/// let t = open(&source, &Selection { languages: Some(vec!["fr".into()]), ..Selection::default() })?;
/// assert_eq!((t.name.as_str(), t.parts.len(), t.parts[0].examples.len()), ("mine", 1, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open(source: &TaskSource, sel: &Selection) -> Result<OpenedTask> {
    if sel.limit == Some(0) || sel.sample == Some(0) || sel.read.first == Some(0) {
        return Err(Error::msg(
            "a task's `limit`, `first` and `sample` must be at least 1 (leave them out for all examples)",
        ));
    }
    let mut t = read(source, sel)?;
    if let Some(n) = sel.limit {
        t.parts = t
            .parts
            .iter()
            .map(|p| p.limit_sample(n, sel.seed))
            .collect();
    }
    if let Some(n) = sel.sample {
        t.parts = t
            .parts
            .iter()
            .map(|p| p.sample(n, sel.seed))
            .collect::<Result<Vec<_>>>()?;
    }
    Ok(t)
}

/// The selected split and languages of a source, every example.
fn read(source: &TaskSource, sel: &Selection) -> Result<OpenedTask> {
    match source {
        TaskSource::Builtin { name, data } => open_spec(task(name)?, data, sel),
        TaskSource::Generic { name, data, spec } => {
            spec.check()?;
            open_spec(generic(name, spec.clone()), data, sel)
        }
        TaskSource::Tsv {
            name,
            file,
            columns,
            labels,
        } => open_tsv(name.as_deref(), file, columns, labels, sel),
        TaskSource::Mlm(MlmText::Files(files)) => {
            if files.is_empty() {
                return Err(Error::msg(
                    "task `mlm`: no files given; give raw-text files, one sentence a line",
                ));
            }
            let parts = files
                .iter()
                .map(|p| {
                    let stem = p.file_stem().map(|s| s.to_string_lossy().to_string());
                    text::raw_text(p, stem.as_deref(), sel.read.first)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(OpenedTask {
                name: "mlm".into(),
                split: "train".into(),
                parts,
            })
        }
        TaskSource::Mlm(MlmText::Premises { data }) => {
            let nli = read(
                &TaskSource::Builtin {
                    name: "xnli".into(),
                    data: data.clone(),
                },
                sel,
            )?;
            Ok(OpenedTask {
                name: "mlm".into(),
                split: nli.split,
                parts: nli.parts.iter().map(text::first_texts).collect(),
            })
        }
    }
}

/// What a source name reads, for `layout(NAME)`: the folder layout of a
/// catalog task, or what `tsv` and `mlm` take.
///
/// ```
/// assert!(stilts_tasks::layout("tsv").unwrap().contains("headerless"));
/// assert!(stilts_tasks::layout("xnli").unwrap().contains("xnli"));
/// assert!(stilts_tasks::layout("nope").is_err());
/// ```
pub fn layout(name: &str) -> Result<String> {
    match name {
        "tsv" => Ok(TSV_LAYOUT.to_string()),
        "mlm" => Ok(MLM_LAYOUT.to_string()),
        _ => Ok(task(name)?.layout()),
    }
}

/// Every name [`open`] takes without columns: the catalog, then `tsv` and
/// `mlm`.
pub fn source_names() -> Vec<&'static str> {
    TASK_NAMES.iter().copied().chain(SOURCE_NAMES).collect()
}

const TSV_LAYOUT: &str =
    "task `tsv`: one headerless TSV file, task(\"tsv\", #{file, columns, labels, name, split})
  file     the TSV file (any name; .gz or .bz2 may be compressed)
  columns  the name of each column, in order: `label`, one or two text columns
           (e.g. premise, hypothesis), optionally `language` (a part per language) and `id`
  labels   the label set, in the classifier's order
";

const MLM_LAYOUT: &str = "task `mlm`: raw text for masked language modelling
  task(\"mlm\", #{files: [...]})   one sentence a line, a part per file (named by its stem)
  task(\"mlm\", #{data: XNLI_DIR, split, languages})   the distinct premises of an XNLI folder, a part per language
";

/// A catalog or generic task from its folder: a part per selected
/// language, or per language the task has when it has no default.
fn open_spec(spec: TaskSpec, root: &Path, sel: &Selection) -> Result<OpenedTask> {
    if !root.is_dir() {
        return Err(Error::msg(format!(
            "task `{}`: data folder {} does not exist\n{}",
            spec.name,
            root.display(),
            spec.layout()
        )));
    }
    let subsets: Vec<Option<String>> = match &sel.languages {
        Some(l) => l.iter().map(|s| Some(s.clone())).collect(),
        None if !spec.subsets.is_empty() && spec.default_subset.is_none() => {
            spec.subsets.iter().map(|s| Some(s.clone())).collect()
        }
        None => vec![None],
    };
    let parts = subsets
        .iter()
        .map(|s| spec.load(root, &sel.split, s.as_deref(), &sel.read))
        .collect::<Result<Vec<_>>>()?;
    Ok(OpenedTask {
        name: spec.name.clone(),
        split: sel.split.clone(),
        parts,
    })
}

fn open_tsv(
    name: Option<&str>,
    file: &Path,
    columns: &[String],
    labels: &[String],
    sel: &Selection,
) -> Result<OpenedTask> {
    let name = name.map(str::to_string).unwrap_or_else(|| {
        file.file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "tsv".into())
    });
    let mut parts = columns::read(
        file,
        &name,
        columns,
        labels,
        sel.read.first,
        sel.read.on_error == BadLines::Skip,
    )?;
    for p in &mut parts {
        p.split = sel.split.clone();
    }
    if let Some(langs) = &sel.languages {
        parts.retain(|p| p.subset.as_ref().is_some_and(|s| langs.contains(s)));
        if parts.is_empty() {
            return Err(Error::config(
                file,
                format!("none of the languages {langs:?} is in the file"),
            ));
        }
    }
    Ok(OpenedTask {
        name,
        split: sel.split.clone(),
        parts,
    })
}
