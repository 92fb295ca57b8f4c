//! `task("tsv", #{file, columns, labels})`: a headerless TSV whose columns
//! the script names, for data that has no reader of its own (one language
//! per line, or a file per language).

use std::path::Path;

use crate::{Dataset, Example, Metric};
use stilts_model::error::{Error, Result};
use stilts_model::HeadKind;

/// Reads a headerless TSV (plain, `.gz` or `.bz2`): `columns` names each
/// column (`language`, `id`, `label`, and one or two text columns in
/// order). With a `language` column the file gives one dataset per
/// language, in first-seen order; `first` keeps the first N examples of
/// each; `skip_bad_lines` leaves malformed lines out, counted.
pub fn read(
    path: &Path,
    name: &str,
    columns: &[String],
    labels: &[String],
    first: Option<usize>,
    skip_bad_lines: bool,
) -> Result<Vec<Dataset>> {
    let mut skipped: std::collections::HashMap<String, crate::SkipReport> = Default::default();
    let text = crate::io::read_text(path)?;
    let col = |n: &str| columns.iter().position(|c| c == n);
    let (lang_c, id_c) = (col("language"), col("id"));
    let label_c = col("label").ok_or_else(|| {
        Error::config(
            path,
            format!("`columns` must name a `label` column, got {columns:?}"),
        )
    })?;
    let text_cs: Vec<usize> = (0..columns.len())
        .filter(|&i| Some(i) != lang_c && Some(i) != id_c && i != label_c)
        .collect();
    if text_cs.is_empty() || text_cs.len() > 2 {
        return Err(Error::config(path, format!("`columns` must have one or two text columns besides language/id/label, got {columns:?}")));
    }
    let mut order: Vec<String> = vec![];
    let mut by: std::collections::HashMap<String, Vec<Example>> = Default::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let lang = lang_c
            .and_then(|c| f.get(c))
            .map(|s| s.to_string())
            .unwrap_or_default();
        let problem = if f.len() != columns.len() {
            Some(format!(
                "{} fields, but `columns` names {} ({})",
                f.len(),
                columns.len(),
                columns.join(", ")
            ))
        } else if !labels.iter().any(|l| l == f[label_c]) {
            Some(format!("label `{}` is not one of {labels:?}", f[label_c]))
        } else {
            None
        };
        if let Some(msg) = problem {
            if !skip_bad_lines {
                return Err(Error::Data {
                    path: path.to_path_buf(),
                    line: i + 1,
                    msg: format!(
                        "{msg}; fix the line, or leave such lines out with skip_bad_lines: true"
                    ),
                });
            }
            let r = skipped.entry(lang).or_default();
            r.bad_lines += 1;
            if r.first.len() < crate::SkipReport::KEEP {
                r.first.push(crate::BadLine {
                    path: path.to_path_buf(),
                    line: i + 1,
                    msg,
                });
            }
            continue;
        }
        let label = labels.iter().position(|l| l == f[label_c]).unwrap_or(0);
        let id = id_c
            .map(|c| f[c].to_string())
            .unwrap_or_else(|| format!("{}:{}", name, i + 1));
        let ex = Example::Text {
            id,
            line: i + 1,
            a: f[text_cs[0]].to_string(),
            b: text_cs.get(1).map(|&c| f[c].to_string()),
            label: Some(label),
        };
        if !by.contains_key(&lang) {
            order.push(lang.clone());
        }
        let v = by.entry(lang).or_default();
        if first.is_none_or(|l| v.len() < l) {
            v.push(ex);
        }
    }
    if order.is_empty() {
        return Err(Error::config(
            path,
            format!(
                "no examples{}",
                if skipped.is_empty() {
                    " (the file is empty)".to_string()
                } else {
                    format!(
                        "; every line was malformed and left out, e.g. {}",
                        skipped
                            .values()
                            .flat_map(|r| r.first.first())
                            .next()
                            .map(|b| b.to_string())
                            .unwrap_or_default()
                    )
                }
            ),
        ));
    }
    Ok(order
        .into_iter()
        .map(|lang| Dataset {
            task: name.to_string(),
            split: "train".into(),
            subset: if lang_c.is_some() {
                Some(lang.clone())
            } else {
                None
            },
            files: vec![path.to_path_buf()],
            labels: labels.to_vec(),
            head: HeadKind::Classification {
                labels: labels.to_vec(),
            },
            metric: Metric::Accuracy,
            examples: by.remove(&lang).unwrap_or_default(),
            skipped: skipped.remove(&lang).unwrap_or_default(),
        })
        .collect())
}
