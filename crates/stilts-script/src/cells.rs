//! Notebook-style scripts: `// %% title` starts a cell. A run records each
//! cell's output under its title; `--cell NAME` runs up to that cell.

/// One cell: its title and its 1-based first and last line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The text after `// %%` (`cell N` when that is empty); empty for the
    /// untitled text before the first marker.
    pub title: String,
    /// Line of the cell's marker (1 for the untitled leading cell).
    pub first: usize,
    /// Line before the next marker, or the script's last line.
    pub last: usize,
}

fn marker(line: &str) -> Option<String> {
    let t = line.trim_start();
    let rest = t.strip_prefix("//")?.trim_start().strip_prefix("%%")?;
    Some(rest.trim().to_string())
}

/// The cells of a script; text before the first marker is an untitled cell.
pub fn cells(text: &str) -> Vec<Cell> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<Cell> = vec![];
    for (i, l) in lines.iter().enumerate() {
        if let Some(title) = marker(l) {
            if let Some(c) = out.last_mut() {
                c.last = i;
            } else if i > 0 {
                out.push(Cell {
                    title: String::new(),
                    first: 1,
                    last: i,
                });
            }
            let title = if title.is_empty() {
                format!("cell {}", out.len() + 1)
            } else {
                title
            };
            out.push(Cell {
                title,
                first: i + 1,
                last: lines.len(),
            });
        }
    }
    if out.is_empty() {
        out.push(Cell {
            title: String::new(),
            first: 1,
            last: lines.len(),
        });
    }
    out
}

/// The cell `name` names: its title (case-insensitive, or a unique prefix)
/// or its 1-based number.
pub fn find<'a>(cells: &'a [Cell], name: &str) -> Result<&'a Cell, String> {
    let titled: Vec<&Cell> = cells.iter().filter(|c| !c.title.is_empty()).collect();
    if let Ok(n) = name.parse::<usize>() {
        return titled
            .get(n.wrapping_sub(1))
            .copied()
            .ok_or_else(|| format!("--cell {n}: the script has {} cells", titled.len()));
    }
    let lower = name.to_lowercase();
    if let Some(c) = titled.iter().find(|c| c.title.to_lowercase() == lower) {
        return Ok(c);
    }
    let pre: Vec<&&Cell> = titled
        .iter()
        .filter(|c| c.title.to_lowercase().starts_with(&lower))
        .collect();
    match pre.as_slice() {
        [one] => Ok(one),
        _ => Err(format!(
            "--cell `{name}`: no such cell; cells: {}",
            titled
                .iter()
                .map(|c| format!("\"{}\"", c.title))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// The script with each marker turned into a `stilts_cell("title");` call
/// on the same line (positions are unchanged), cut after the cell `upto`.
pub fn instrument(text: &str, upto: Option<&Cell>) -> String {
    let mut out = vec![];
    for (i, l) in text.lines().enumerate() {
        if upto.is_some_and(|c| i + 1 > c.last) {
            break;
        }
        match marker(l) {
            Some(title) if !title.is_empty() => out.push(format!("stilts_cell({:?});", title)),
            Some(_) => out.push(format!("stilts_cell(\"cell {}\");", i + 1)),
            None => out.push(l.to_string()),
        }
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_finds() {
        let t = "let a = 1;\n// %% Data\nlet b = 2;\n// %% Train\nlet c = 3;\n";
        let c = cells(t);
        assert_eq!(c.len(), 3);
        assert_eq!(
            c[1],
            Cell {
                title: "Data".into(),
                first: 2,
                last: 3
            }
        );
        assert_eq!(find(&c, "train").unwrap().first, 4);
        assert_eq!(find(&c, "1").unwrap().title, "Data");
        assert!(find(&c, "x").unwrap_err().contains("\"Data\""));
        let i = instrument(t, Some(&c[1]));
        assert_eq!(i, "let a = 1;\nstilts_cell(\"Data\");\nlet b = 2;");
    }
}
