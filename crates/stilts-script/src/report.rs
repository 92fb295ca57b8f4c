//! The report directory of a run: `report.md` with each cell's printed
//! output, tables and plots, and the raw results as `results.json` plus
//! one CSV per table.

use std::path::{Path, PathBuf};

use super::context::{CellOutput, Item};
use crate::values::TableValue;
use stilts_model::error::{Result, WithPath};
use stilts_model::util::write_atomic;
use stilts_protocol::store::RunRecord;
use stilts_protocol::summary;

/// Writes the report of `cells` into `dir`, closed by a section on the
/// `conditions` the run ran or reused (see [`conditions_cell`]); returns
/// the Markdown file.
pub fn write(
    dir: &Path,
    script: &str,
    cells: &[CellOutput],
    conditions: &[RunRecord],
    banner: Option<&str>,
) -> Result<PathBuf> {
    let closing = conditions_cell(conditions);
    let cells: Vec<&CellOutput> = cells.iter().chain(closing.iter()).collect();
    std::fs::create_dir_all(dir).with_path(dir)?;
    let mut md = format!("# {script}\n\n");
    if let Some(b) = banner {
        for line in b.lines() {
            md.push_str(&format!("> {line}\n"));
        }
        md.push('\n');
    }
    let mut data = vec![];
    let mut n_table = 0;
    for c in cells {
        if c.items.is_empty() && c.title.is_empty() {
            continue;
        }
        if !c.title.is_empty() {
            md.push_str(&format!("## {}\n\n", c.title));
        }
        for it in &c.items {
            match it {
                Item::Text(t) => md.push_str(&format!(
                    "```text\n{}```\n\n",
                    if t.ends_with('\n') {
                        t.clone()
                    } else {
                        format!("{t}\n")
                    }
                )),
                Item::Table(t) => {
                    n_table += 1;
                    md.push_str(&t.markdown());
                    let name = format!("table{n_table}.csv");
                    write_atomic(&dir.join(&name), t.csv().as_bytes())?;
                    md.push_str(&format!("\n([csv]({name}))\n\n"));
                }
                Item::Image(p) => {
                    // Plots written elsewhere are copied in next to the report.
                    let name = p
                        .file_name()
                        .map(|n| n.to_string_lossy().to_string())
                        .unwrap_or_default();
                    let target = dir.join(&name);
                    if p.exists()
                        && std::fs::canonicalize(p).ok() != std::fs::canonicalize(&target).ok()
                    {
                        std::fs::copy(p, &target).with_path(&target)?;
                    }
                    md.push_str(&format!("![{name}]({name})\n\n"));
                }
                Item::Markdown(t) => md.push_str(&format!("{}\n\n", t.trim_end())),
                Item::Data(_, j) => data.push(serde_json::json!({"cell": c.title, "value": j})),
            }
        }
    }
    let out = dir.join("report.md");
    write_atomic(&out, md.as_bytes())?;
    write_atomic(
        &dir.join("results.json"),
        serde_json::to_string_pretty(&data)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    Ok(out)
}

/// The closing section of a report on the conditions a run ran or reused
/// (each once, in the order met): their configuration (a row per
/// condition, its seeds listed), what each phase of each trained (updates,
/// examples, loss first → last and its curve, dev selection, time), and
/// per condition the share of each class in its predictions, with the sets
/// where it learned nothing marked. `None` for a run with no conditions.
pub fn conditions_cell(records: &[RunRecord]) -> Option<CellOutput> {
    let mut seen = std::collections::BTreeSet::new();
    let records: Vec<&RunRecord> = records
        .iter()
        .filter(|r| seen.insert(r.key.clone()))
        .collect();
    if records.is_empty() {
        return None;
    }
    let mut items = vec![];
    let (header, rows) = summary::configuration_table(&records);
    items.push(Item::Table(TableValue {
        title: "configuration of each condition (seeds on one row when nothing else differs)"
            .into(),
        header,
        rows,
        ..Default::default()
    }));
    let name_seed = |r: &RunRecord| {
        (
            r.config["name"].as_str().unwrap_or_default().to_string(),
            r.config["configuration"]["seed"].to_string(),
        )
    };
    let mut rows = vec![];
    for r in &records {
        let (name, seed) = name_seed(r);
        for p in summary::phases(r) {
            let (first, last) = (p.losses.first(), summary::final_loss(&p.losses));
            rows.push(vec![
                name.clone(),
                seed.clone(),
                format!("{} {}", p.phase, p.task),
                p.updates.to_string(),
                p.examples
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "—".into()),
                match (first, last) {
                    (Some(f), Some((k, l))) => format!("{f:.3} → {l:.3} (last {k})"),
                    _ => "—".into(),
                },
                summary::sparkline(&p.losses, 16),
                match p.best {
                    Some((u, b)) => format!("{b:.2} at {u} of {}", p.updates),
                    None if p.dev.is_empty() => "no dev set".into(),
                    None => "—".into(),
                },
                p.seconds
                    .map(|t| format!("{t:.1}"))
                    .unwrap_or_else(|| "—".into()),
                [
                    p.chance_loss().map(|c| c.to_string()),
                    p.reused.then(|| "reused from the store".to_string()),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; "),
            ]);
        }
    }
    items.push(Item::Table(TableValue {
        title: "what each phase trained (loss: first update → mean of the last 10% of updates)"
            .into(),
        header: [
            "condition",
            "seed",
            "phase",
            "updates",
            "examples",
            "loss",
            "curve",
            "best dev",
            "s",
            "note",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        ..Default::default()
    }));
    for r in &records {
        let (labels, shares) = summary::prediction_shares(r);
        if shares.is_empty() {
            continue;
        }
        let (name, seed) = name_seed(r);
        let mut header = vec!["set".to_string()];
        header.extend(labels.iter().map(|l| format!("{l} %")));
        header.extend(["n".to_string(), "learned nothing".to_string()]);
        let chance = summary::phases(r)
            .iter()
            .find(|p| p.phase == "target")
            .and_then(summary::Phase::chance_loss);
        let rows = shares
            .iter()
            .map(|(set, s, n, one)| {
                let mut row = vec![set.clone()];
                row.extend(s.iter().map(|x| format!("{x:.1}")));
                row.push(n.to_string());
                row.push(
                    one.iter()
                        .chain(chance.iter())
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                );
                row
            })
            .collect();
        items.push(Item::Table(TableValue {
            title: format!(
                "predictions of {name} (seed {seed}): the share of each class (collapsed: one class over {:.0}%)",
                summary::ONE_CLASS_SHARE * 100.0
            ),
            header,
            rows,
            ..Default::default()
        }));
    }
    Some(CellOutput {
        title: "Conditions".into(),
        items,
    })
}
