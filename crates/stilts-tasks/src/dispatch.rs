//! Reading a split: each part of its layout through the reader its
//! [`Format`] names, the examples checked (labels in the set, no empty
//! text), ids made unique across languages, into one [`Dataset`].

use std::collections::BTreeMap;
use std::path::Path;

use stilts_model::error::{Error, Result};
use stilts_model::HeadKind;

use crate::catalog::{task, Format, TaskSpec};
use crate::example::{Dataset, Example};
use crate::io::{plain_name, ReadOptions, SkipReport};
use crate::layout::SourceFile;
use crate::readers::{ccg, choice, glue, nli, squad, tatoeba};

impl TaskSpec {
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
        let paired = matches!(files.as_slice(), [xx, _] if xx.format == Format::Tatoeba);
        if let ([xx, en], true) = (files.as_slice(), paired) {
            // Two files read together: sentence pairs.
            let sub = xx.subset.as_deref().unwrap_or("xx");
            examples = tatoeba::read_pairs(&xx.path, &en.path, sub, opts, &mut skipped)?;
            examples = check_examples(&xx.path, examples, opts, &mut skipped)?;
        }
        for f in files.iter().filter(|_| !paired) {
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
        if let Some(l) = opts.first {
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
        Format::Tatoeba => Err(Error::config(
            p,
            "a Tatoeba file is read with its counterpart (the pair of `tatoeba.{code}-eng.*` files): open the task `tatoeba`",
        )),
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
