//! The report directory of a run: `report.md` with each cell's printed
//! output, tables and plots, and the raw results as `results.json` plus
//! one CSV per table.

use std::path::{Path, PathBuf};

use super::context::{CellOutput, Item};
use stilts_model::error::{Result, WithPath};
use stilts_model::util::write_atomic;

/// Writes the report of `cells` into `dir`; returns the Markdown file.
pub fn write(
    dir: &Path,
    script: &str,
    cells: &[CellOutput],
    banner: Option<&str>,
) -> Result<PathBuf> {
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
