//! CCG supertagging in jiant's format (`jiant/tasks/lib/ccg.py`, the CCG
//! task of the X-STILTs paper, Phang et al. 2020): one sentence per line,
//! `tokens \t supertags`, both space-separated and of equal count
//! ("CCG data is space-tokenized"), plus `tags_to_id.json`, an object
//! `{supertag: id}` that fixes the label set (1,363 tags for CCGbank in jiant).
//! CCGbank itself is LDC-licensed; users bring their own files.

use std::collections::HashMap;
use std::path::Path;

use super::{read_tsv, Row};
use crate::example::Example;
use crate::io::{data_err, read_text, ReadOptions, SkipReport};
use stilts_model::error::Result;

/// Reads `tags_to_id.json` into the tag names ordered by id (ids must be
/// 0..n-1, each used once).
pub fn read_tags_to_id(path: &Path) -> Result<Vec<String>> {
    let text = read_text(path)?;
    let map: HashMap<String, serde_json::Value> = serde_json::from_str(&text).map_err(|e| {
        data_err(
            path,
            e.line(),
            format!("bad JSON: {e}; expected an object {{tag: id}}"),
        )
    })?;
    let mut labels = vec![None; map.len()];
    for (tag, v) in map {
        let id = v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            .ok_or_else(|| {
                data_err(
                    path,
                    1,
                    format!("tag `{tag}` has id {v}, not a non-negative integer"),
                )
            })? as usize;
        match labels.get_mut(id) {
            Some(slot @ None) => *slot = Some(tag),
            Some(Some(other)) => {
                return Err(data_err(
                    path,
                    1,
                    format!("tags `{other}` and `{tag}` share id {id}"),
                ))
            }
            None => {
                return Err(data_err(
                    path,
                    1,
                    format!("tag `{tag}` has id {id}; ids must run 0..{}", labels.len()),
                ))
            }
        }
    }
    Ok(labels.into_iter().map(|l| l.unwrap_or_default()).collect())
}

/// Reads a jiant CCG file against the tag set `labels`.
pub fn read_ccg(
    path: &Path,
    labels: &[String],
    opts: &ReadOptions,
    report: &mut SkipReport,
) -> Result<Vec<Example>> {
    let index: HashMap<&str, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.as_str(), i))
        .collect();
    read_tsv(
        path,
        opts,
        report,
        false,
        Some(&[2]),
        |_| Ok(()),
        |_, f, line| {
            let words: Vec<String> = f[0]
                .split(' ')
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect();
            let tags: Vec<&str> = f[1].split(' ').filter(|w| !w.is_empty()).collect();
            if words.is_empty() {
                return Err("empty sentence".into());
            }
            if words.len() != tags.len() {
                return Err(format!(
                    "{} tokens but {} supertags",
                    words.len(),
                    tags.len()
                ));
            }
            let tags = tags
                .iter()
                .map(|t| {
                    index
                        .get(t)
                        .copied()
                        .ok_or_else(|| format!("supertag `{t}` is not in tags_to_id.json"))
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            Ok(Row::Keep(Example::Words {
                id: format!("ccg:{line}"),
                line,
                words,
                tags: Some(tags),
            }))
        },
    )
}
