//! NLI formats: MultiNLI / SNLI JSON lines, the compact `premise/hypothesis/label`
//! JSON lines (Hugging Face layout, and `intermediate/mnli/` in shared),
//! ANLI JSON lines, GLUE's MNLI TSV, XNLI (XTREME per-language TSV and the
//! original one-file `xnli.{dev,test}.tsv`) and AmericasNLI TSV.

use std::path::Path;

use serde_json::Value;

use super::{
    json_text, nli_gold, nli_gold_json, nonempty, read_jsonl, read_tsv, row_id, Gold, Row,
};
use crate::example::Example;
use crate::io::{plain_name, ReadOptions, SkipReport};
use stilts_model::error::Result;

fn stem(path: &Path) -> String {
    let n = plain_name(path);
    n.rsplit_once('.').map(|(a, _)| a.to_string()).unwrap_or(n)
}

fn id_of(v: &Value, keys: &[&str], fallback: impl FnOnce() -> String) -> String {
    for k in keys {
        match v.get(*k) {
            Some(Value::String(s)) if !s.is_empty() => return s.clone(),
            Some(Value::Number(n)) => return n.to_string(),
            _ => {}
        }
    }
    fallback()
}

fn row(id: String, line: usize, a: String, b: String, gold: Gold) -> Row {
    match gold {
        Gold::Label(l) => Row::Keep(Example::Text {
            id,
            line,
            a,
            b: Some(b),
            label: Some(l),
        }),
        Gold::None => Row::NoGold,
    }
}

/// NLI JSON lines in any of three layouts, recognised per line by its fields:
/// - MultiNLI / SNLI (`multinli_1.0_*.jsonl`, `snli_1.0_*.jsonl`):
///   `sentence1`, `sentence2`, `gold_label` (`-` = no majority: left out and
///   counted, as the official loaders and GLUE do), id `pairID`;
/// - compact / Hugging Face: `premise`, `hypothesis`, `label` (name or 0/1/2,
///   -1 = no gold label);
/// - ANLI: `context`, `hypothesis`, `label` (`e`/`n`/`c`), id `uid`.
pub fn read_nli_jsonl(
    path: &Path,
    opts: &ReadOptions,
    report: &mut SkipReport,
) -> Result<Vec<Example>> {
    let st = stem(path);
    read_jsonl(path, opts, report, |v, line| {
        let id = id_of(v, &["pairID", "uid", "id", "idx"], || {
            format!("{st}:{line}")
        });
        // (field that identifies the layout, premise, hypothesis, label)
        const LAYOUTS: [(&str, &str, &str, &str); 3] = [
            ("sentence1", "sentence1", "sentence2", "gold_label"),
            ("context", "context", "hypothesis", "label"),
            ("premise", "premise", "hypothesis", "label"),
        ];
        let layout = LAYOUTS.iter().find(|(key, .., label)| {
            v.get(*key).is_some() || (*label == "gold_label" && v.get(*label).is_some())
        });
        if let Some((_, a, b, label)) = layout {
            let gold = nli_gold_json(v.get(*label), label)?;
            if gold == Gold::None {
                return Ok(Row::NoGold);
            }
            Ok(row(id, line, json_text(v, a)?, json_text(v, b)?, gold))
        } else {
            let keys: Vec<&str> = v
                .as_object()
                .map(|o| o.keys().map(|k| k.as_str()).collect())
                .unwrap_or_default();
            Err(format!(
                "not an NLI record: expected `sentence1/sentence2/gold_label`, `premise/hypothesis/label` or `context/hypothesis/label`, found fields {keys:?}"
            ))
        }
    })
}

/// GLUE's MNLI (and SNLI) TSV: a header naming `sentence1`, `sentence2` and
/// `gold_label` (test files have no label column: labels are `None`).
/// Tab-split, no quoting, as GLUE writes it.
pub fn read_glue_nli_tsv(
    path: &Path,
    opts: &ReadOptions,
    report: &mut SkipReport,
) -> Result<Vec<Example>> {
    let st = stem(path);
    read_tsv(
        path,
        opts,
        report,
        true,
        None,
        |t| {
            let a = t.need(path, &["sentence1"])?;
            let b = t.need(path, &["sentence2"])?;
            let l = t.col(&["gold_label"]);
            let id = t.col(&["pairID", "index"]);
            Ok((a, b, l, id))
        },
        |&(a, b, l, idc), f, line| {
            let id = row_id(f, idc, &st, line);
            let pa = nonempty(f[a], "sentence1")?;
            let pb = nonempty(f[b], "sentence2")?;
            match l {
                Some(l) => Ok(row(id, line, pa, pb, nli_gold(f[l])?)),
                None => Ok(Row::Keep(Example::Text {
                    id,
                    line,
                    a: pa,
                    b: Some(pb),
                    label: None,
                })),
            }
        },
    )
}

/// XNLI in XTREME's per-language layout (`dev-{lang}.tsv`, `test-{lang}.tsv`):
/// no header, `premise \t hypothesis \t label`; XTREME's own test files have
/// only two columns (no labels: `None`). XNLI-MT's `multinli.train.{lang}.tsv`
/// has the same columns under a header `premise \t hypo \t label`, which is
/// passed over (its label `contradictory` is read as contradiction).
pub fn read_xnli_xtreme(
    path: &Path,
    opts: &ReadOptions,
    report: &mut SkipReport,
) -> Result<Vec<Example>> {
    let st = stem(path);
    read_tsv(
        path,
        opts,
        report,
        false,
        Some(&[2, 3]),
        |_| Ok(()),
        |_, f, line| {
            if line == 1 && f[0] == "premise" && f.get(2).is_some_and(|l| l.trim() == "label") {
                return Ok(Row::Other);
            }
            let id = format!("{st}:{line}");
            let a = nonempty(f[0], "premise")?;
            let b = nonempty(f[1], "hypothesis")?;
            if f.len() == 3 {
                Ok(row(id, line, a, b, nli_gold(f[2])?))
            } else {
                Ok(Row::Keep(Example::Text {
                    id,
                    line,
                    a,
                    b: Some(b),
                    label: None,
                }))
            }
        },
    )
}

/// The original XNLI 1.0 one-file layout (`xnli.dev.tsv`, `xnli.test.tsv`):
/// a header with `language`, `gold_label`, `sentence1`, `sentence2` (and the
/// parses, `promptID`, `pairID`, `genre`, ...). Rows of languages other
/// than `lang` are passed over (`lang` = `None` keeps all).
pub fn read_xnli_original(
    path: &Path,
    lang: Option<&str>,
    opts: &ReadOptions,
    report: &mut SkipReport,
) -> Result<Vec<Example>> {
    read_tsv(
        path,
        opts,
        report,
        true,
        None,
        |t| {
            Ok((
                t.need(path, &["language"])?,
                t.need(path, &["gold_label"])?,
                t.need(path, &["sentence1"])?,
                t.need(path, &["sentence2"])?,
                t.col(&["pairID"]),
            ))
        },
        |&(lc, gc, ac, bc, idc), f, line| {
            let l = f[lc].trim();
            if lang.is_some_and(|want| want != l) {
                return Ok(Row::Other);
            }
            let id = match idc {
                Some(i) => format!("{l}-{}", f[i]),
                None => format!("{l}:{line}"),
            };
            Ok(row(
                id,
                line,
                nonempty(f[ac], "sentence1")?,
                nonempty(f[bc], "sentence2")?,
                nli_gold(f[gc])?,
            ))
        },
    )
}

/// AmericasNLI TSV: header `id \t language \t premise \t hypothesis \t label`
/// (per-language files `{dev,test}/{lang}.tsv`, or the combined
/// `anli.{dev,test}.tsv`, filtered to `lang`).
///
/// One exception to "an empty text is malformed": the official nah test
/// set has 3 rows with an empty premise (ids 25576-25578); they are kept,
/// as the official evaluation keeps them (738 nah test rows). An empty
/// hypothesis is still an error.
pub fn read_americasnli(
    path: &Path,
    lang: Option<&str>,
    opts: &ReadOptions,
    report: &mut SkipReport,
) -> Result<Vec<Example>> {
    let st = stem(path);
    read_tsv(
        path,
        opts,
        report,
        true,
        None,
        |t| {
            Ok((
                t.col(&["id"]),
                t.col(&["language"]),
                t.need(path, &["premise"])?,
                t.need(path, &["hypothesis"])?,
                t.col(&["label"]),
            ))
        },
        |&(idc, lc, ac, bc, gc), f, line| {
            if let (Some(want), Some(lc)) = (lang, lc) {
                if f[lc].trim() != want {
                    return Ok(Row::Other);
                }
            }
            let id = row_id(f, idc, &st, line);
            let a = f[ac].trim().to_string();
            let b = nonempty(f[bc], "hypothesis")?;
            match gc {
                Some(g) => Ok(row(id, line, a, b, nli_gold(f[g])?)),
                None => Ok(Row::Keep(Example::Text {
                    id,
                    line,
                    a,
                    b: Some(b),
                    label: None,
                })),
            }
        },
    )
}
