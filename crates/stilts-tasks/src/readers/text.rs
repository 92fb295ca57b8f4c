//! Raw text for masked language modelling: one sentence or paragraph a
//! line (blank lines skipped), one dataset per file, and the premises of an
//! NLI task's examples as a ready multilingual corpus.

use std::path::Path;

use crate::example::Metric;
use crate::example::{Dataset, Example};
use stilts_model::error::{Error, Result};
use stilts_model::HeadKind;

/// A raw-text file as an MLM dataset (`language`: its subset name, e.g. the
/// language of the text); at most `limit` lines when given.
pub fn raw_text(path: &Path, language: Option<&str>, limit: Option<usize>) -> Result<Dataset> {
    let text = stilts_model::error::read_to_string(path)?;
    let examples: Vec<Example> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .take(limit.unwrap_or(usize::MAX))
        .map(|(i, l)| Example::Text {
            id: format!("{}:{}", path.display(), i + 1),
            line: i + 1,
            a: l.trim_end_matches('\r').to_string(),
            b: None,
            label: None,
        })
        .collect();
    if examples.is_empty() {
        return Err(Error::config(
            path,
            "no text to train masked language modelling on (one sentence a line)",
        ));
    }
    Ok(mlm_dataset(examples, language, vec![path.to_path_buf()]))
}

/// The distinct premises (first texts) of `ds`, in order, as an MLM
/// dataset of the same subset (language).
pub fn first_texts(ds: &Dataset) -> Dataset {
    let mut seen = std::collections::HashSet::new();
    let examples = ds
        .examples
        .iter()
        .filter_map(|e| match e {
            Example::Text { id, line, a, .. } if seen.insert(a.clone()) => Some(Example::Text {
                id: id.clone(),
                line: *line,
                a: a.clone(),
                b: None,
                label: None,
            }),
            _ => None,
        })
        .collect();
    mlm_dataset(examples, ds.subset.as_deref(), ds.files.clone())
}

fn mlm_dataset(
    examples: Vec<Example>,
    language: Option<&str>,
    files: Vec<std::path::PathBuf>,
) -> Dataset {
    Dataset {
        task: "mlm".into(),
        split: "train".into(),
        subset: language.map(str::to_string),
        files,
        labels: vec![],
        head: HeadKind::MaskedLm,
        metric: Metric::Accuracy,
        examples,
        skipped: Default::default(),
    }
}
