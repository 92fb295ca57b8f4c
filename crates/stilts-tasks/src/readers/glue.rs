//! GLUE TSVs other than MNLI: QQP and SST-2. GLUE's files have a header row
//! and no quoting: a row is split on tabs (pandas `quoting=QUOTE_NONE`),
//! and a row with another number of fields than the header is malformed.

use std::path::Path;

use super::{nonempty, optional_label, read_tsv, row_id, Row};
use crate::example::Example;
use crate::io::{ReadOptions, SkipReport};
use stilts_model::error::Result;

/// GLUE's label names for the binary tasks.
pub fn binary_labels() -> Vec<String> {
    vec!["0".into(), "1".into()]
}

/// SST-2's label names (GLUE's: 0 negative, 1 positive), for its head;
/// the files hold [`binary_labels`].
pub fn sst2_labels() -> Vec<String> {
    vec!["negative".into(), "positive".into()]
}

/// QQP: header `id qid1 qid2 question1 question2 is_duplicate` (train, dev)
/// or `id question1 question2` (test, no labels).
pub fn read_qqp(path: &Path, opts: &ReadOptions, report: &mut SkipReport) -> Result<Vec<Example>> {
    let labels = binary_labels();
    read_tsv(
        path,
        opts,
        report,
        true,
        None,
        |t| {
            Ok((
                t.col(&["id"]),
                t.need(path, &["question1"])?,
                t.need(path, &["question2"])?,
                t.col(&["is_duplicate"]),
            ))
        },
        |&(idc, a, b, l), f, line| {
            let id = row_id(f, idc, "qqp", line);
            let label = optional_label(&labels, f, l)?;
            Ok(Row::Keep(Example::Text {
                id,
                line,
                a: nonempty(f[a], "question1")?,
                b: Some(nonempty(f[b], "question2")?),
                label,
            }))
        },
    )
}

/// SST-2: header `sentence label` (some copies say `text label`, as the one in
/// shared does) or `index sentence` (test, no labels).
pub fn read_sst2(path: &Path, opts: &ReadOptions, report: &mut SkipReport) -> Result<Vec<Example>> {
    let labels = binary_labels();
    read_tsv(
        path,
        opts,
        report,
        true,
        None,
        |t| {
            Ok((
                t.col(&["index", "id"]),
                t.need(path, &["sentence", "text"])?,
                t.col(&["label"]),
            ))
        },
        |&(idc, a, l), f, line| {
            let id = row_id(f, idc, "sst2", line);
            let label = optional_label(&labels, f, l)?;
            Ok(Row::Keep(Example::Text {
                id,
                line,
                a: nonempty(f[a], "sentence")?,
                b: None,
                label,
            }))
        },
    )
}
