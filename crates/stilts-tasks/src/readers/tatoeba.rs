//! LASER's Tatoeba release (the test set of XTREME's sentence retrieval):
//! `tatoeba.{code}-eng.{code}` and `tatoeba.{code}-eng.eng`, one sentence a
//! line, line i of one the translation of line i of the other. Read
//! together into sentence pairs (`a` the non-English sentence, `b` the
//! English one), each trimmed as XTREME's `l.strip()` does.

use std::path::Path;

use crate::example::Example;
use crate::io::{data_err, Lines, ReadOptions, Sink, SkipReport};
use stilts_model::error::Result;

/// The aligned pairs of `xx` (the non-English file) and `en` (its English
/// side). Files of different lengths are an error at the first line one of
/// them lacks (whatever the bad-line policy: every later pair would be
/// misaligned); a line that is not UTF-8 or is blank on either side is a
/// bad line (an error naming file and line, or under `skip_bad_lines` the
/// pair is left out and counted, the others keep their lines).
pub fn read_pairs(
    xx: &Path,
    en: &Path,
    sub: &str,
    opts: &ReadOptions,
    report: &mut SkipReport,
) -> Result<Vec<Example>> {
    let mut a = Lines::open(xx)?;
    let mut b = Lines::open(en)?;
    let mut out = Vec::new();
    let mut k = 0usize; // lines read from each file
    loop {
        if Sink::new(xx, opts, report).full(out.len()) {
            break;
        }
        let (ra, rb) = match (a.next(), b.next()) {
            (None, None) => break,
            (Some(_), None) => return Err(ragged(xx, en, k)),
            (None, Some(_)) => return Err(ragged(en, xx, k)),
            (Some(x), Some(y)) => (x, y),
        };
        k += 1;
        // A line that is not UTF-8 (the reader's error names file and line).
        let (line, x) = match ra {
            Ok(v) => v,
            Err(e) => {
                bad(xx, opts, report, &e)?;
                continue;
            }
        };
        let y = match rb {
            Ok((_, y)) => y,
            Err(e) => {
                bad(en, opts, report, &e)?;
                continue;
            }
        };
        let (x, y) = (x.trim(), y.trim());
        if x.is_empty() || y.is_empty() {
            let path = if x.is_empty() { xx } else { en };
            Sink::new(path, opts, report).bad(
                line,
                "blank line: every line is a sentence (its translation is on the same line of the other file)",
            )?;
            continue;
        }
        out.push(Example::Text {
            id: format!("{sub}:{line}"),
            line,
            a: x.to_string(),
            b: Some(y.to_string()),
            label: None,
        });
    }
    Ok(out)
}

/// A line the reader refused (not UTF-8): the error itself under
/// `Fail`, counted under `Skip`.
fn bad(
    path: &Path,
    opts: &ReadOptions,
    report: &mut SkipReport,
    e: &stilts_model::error::Error,
) -> Result<()> {
    match e {
        stilts_model::error::Error::Data { line, msg, .. } => {
            Sink::new(path, opts, report).bad(*line, msg.clone())
        }
        other => Err(stilts_model::error::Error::msg(other.to_string())),
    }
}

/// `long` goes on where `short` ends after `n` lines.
fn ragged(long: &Path, short: &Path, n: usize) -> stilts_model::error::Error {
    data_err(
        long,
        n + 1,
        format!(
            "no counterpart: {} ends after {n} lines; line i of one file is the translation of line i of the other, so both must have the same number of lines",
            short.display()
        ),
    )
}
