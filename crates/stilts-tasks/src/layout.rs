//! Finding a split's files under a task folder: split names and their
//! aliases, file-name patterns, the languages a folder holds, and the
//! layout text `layout(NAME)` and the README show.

use std::path::{Path, PathBuf};

use stilts_model::error::{Error, Result};

use crate::catalog::{tasks, Format, Part, SplitLayout, TaskSpec};
use crate::io::plain_name;

/// Other names for splits.
fn canonical_split(s: &str) -> &str {
    match s {
        "val" | "valid" | "validation" => "dev",
        "validation_matched" => "dev_matched",
        "validation_mismatched" => "dev_mismatched",
        other => other,
    }
}

/// Does `name` match `pattern` (`*` = any run)?
fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first)
        || !name[first.len()..].ends_with(last)
        || name.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// The file under `root` that `pattern` names, if any. Several matches of a
/// wildcard are an error (name one of them exactly).
fn find(root: &Path, pattern: &str) -> Result<Option<PathBuf>> {
    let rel = Path::new(pattern);
    let dir = root.join(rel.parent().unwrap_or(Path::new("")));
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(None);
    };
    let matching: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| glob(&name, &plain_name(p)))
        .collect();
    let mut hits: Vec<PathBuf> = matching.iter().filter(|p| p.is_file()).cloned().collect();
    if hits.is_empty() {
        if let Some(d) = matching.iter().find(|p| p.is_dir()) {
            return Err(Error::config(d, format!("is a folder, but the task reads a file of that name here (`{pattern}`); put the file itself there")));
        }
    }
    hits.sort();
    // `dev.jsonl` and `dev.jsonl.gz` side by side: the plain one wins.
    let mut names: Vec<String> = hits.iter().map(|p| plain_name(p)).collect();
    names.dedup();
    if names.len() > 1 {
        return Err(Error::config(
            dir,
            format!(
                "`{pattern}` matches several files ({}); keep one, or give it the exact name",
                names.join(", ")
            ),
        ));
    }
    Ok(hits.into_iter().next())
}

/// One file to read: where, how, and which language to keep from a
/// one-file multilingual layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// The file found under the task folder.
    pub path: PathBuf,
    /// The reader for it (its part's format).
    pub format: Format,
    /// The language (or round) to keep from a file that holds several (its
    /// name has no `{sub}`); `None`: keep every row.
    pub filter: Option<String>,
    /// The language or round this file was found for; `None` when none was
    /// (a task without subsets, or one file read once for all of them).
    pub subset: Option<String>,
}

impl TaskSpec {
    /// The names of the task's splits, in catalog order.
    pub fn split_names(&self) -> Vec<&str> {
        self.splits.iter().map(|s| s.name.as_str()).collect()
    }

    pub(crate) fn split(&self, name: &str) -> Result<&SplitLayout> {
        let c = canonical_split(name);
        let c = if self.name == "mnli" && c == "dev" {
            "dev_matched"
        } else {
            c
        };
        self.splits.iter().find(|s| s.name == c).ok_or_else(|| {
            Error::msg(format!(
                "task `{}` has no split `{name}`; its splits: {}",
                self.name,
                self.split_names().join(", ")
            ))
        })
    }

    /// The subsets a request means (`None` -> default; `all` -> every one).
    pub(crate) fn subsets_for(&self, subset: Option<&str>) -> Result<Vec<Option<String>>> {
        if self.subsets.is_empty() {
            return match subset {
                None | Some("all") => Ok(vec![None]),
                Some(s) => Err(Error::msg(format!(
                    "task `{}` has no languages or rounds (asked for `{s}`)",
                    self.name
                ))),
            };
        }
        let kind = self.subset_kind.as_deref().unwrap_or("subset");
        let s = subset
            .map(str::to_string)
            .or_else(|| self.default_subset.clone())
            .ok_or_else(|| {
                Error::msg(format!(
                    "task `{}`: name a {kind}: {} (or `all`)",
                    self.name,
                    self.subsets.join(", ")
                ))
            })?;
        let s = s.to_ascii_lowercase();
        if s == "all" {
            return Ok(self.subsets.iter().cloned().map(Some).collect());
        }
        if self.subsets.contains(&s) {
            Ok(vec![Some(s)])
        } else {
            let code = self
                .file_codes
                .iter()
                .find(|(_, c)| c == &s)
                .map(|(sub, _)| format!(" (`{s}` is the files' code of `{sub}`: name it `{sub}`)"))
                .unwrap_or_default();
            Err(Error::msg(format!(
                "task `{}` has no {kind} `{s}`{code}; its {kind}s: {} (or `all`)",
                self.name,
                self.subsets.join(", ")
            )))
        }
    }

    /// A candidate file name for subset `s`: `{sub}` (`{SUB}` upper case)
    /// and `{code}` (the subset's code in the files, see `file_codes`)
    /// filled in.
    fn fill(&self, candidate: &str, s: &str) -> String {
        let code = self
            .file_codes
            .iter()
            .find(|(sub, _)| sub == s)
            .map_or(s, |(_, c)| c.as_str());
        candidate
            .replace("{sub}", s)
            .replace("{SUB}", &s.to_ascii_uppercase())
            .replace("{code}", code)
    }

    pub(crate) fn resolve_part(
        &self,
        root: &Path,
        part: &Part,
        sub: Option<&str>,
    ) -> Result<Option<SourceFile>> {
        for c in &part.candidates {
            let has_sub = c.contains("{sub}") || c.contains("{SUB}") || c.contains("{code}");
            let pat = match sub {
                Some(s) => self.fill(c, s),
                None if has_sub => continue,
                None => c.clone(),
            };
            if let Some(path) = find(root, &pat)? {
                let filter = if has_sub {
                    None
                } else {
                    sub.map(str::to_string)
                };
                return Ok(Some(SourceFile {
                    path,
                    format: part.format.clone(),
                    filter,
                    subset: sub.map(str::to_string),
                }));
            }
        }
        Ok(None)
    }

    /// The files a split (and language or round) reads, in order; a missing
    /// one is an error that says what was looked for and what exists.
    pub fn resolve(
        &self,
        root: &Path,
        split: &str,
        subset: Option<&str>,
    ) -> Result<Vec<SourceFile>> {
        let layout = self.split(split)?;
        let subs = self.subsets_for(subset)?;
        let mut out: Vec<SourceFile> = Vec::new();
        for sub in &subs {
            for part in &layout.parts {
                match self.resolve_part(root, part, sub.as_deref())? {
                    Some(f) => out.push(f),
                    None => {
                        let looked: Vec<String> = part
                            .candidates
                            .iter()
                            .map(|c| match sub {
                                Some(s) => self.fill(c, s),
                                None => c.clone(),
                            })
                            .collect();
                        let what = match sub {
                            Some(s) => format!(
                                "split `{}` for {} `{s}`",
                                layout.name,
                                self.subset_kind.as_deref().unwrap_or("subset")
                            ),
                            None => format!("split `{}`", layout.name),
                        };
                        return Err(Error::msg(format!(
                            "task `{}`: no file for {what} under {}; looked for {} (optionally .gz/.bz2).\n{}",
                            self.name,
                            root.display(),
                            looked.join(", "),
                            self.available_text(root)
                        )));
                    }
                }
            }
        }
        // A one-file multilingual layout read for every language: read it once.
        if subs.len() > 1
            && out.iter().all(|f| f.filter.is_some())
            && out.windows(2).all(|w| w[0].path == w[1].path)
        {
            out.truncate(1);
            out[0].filter = None;
            out[0].subset = None;
        }
        Ok(out)
    }

    /// For each split, the subsets whose files exist under `root`
    /// (`[None]` for a task without subsets); splits with none are left out.
    pub fn available(&self, root: &Path) -> Vec<(String, Vec<Option<String>>)> {
        let mut out = Vec::new();
        for s in &self.splits {
            let subs: Vec<Option<String>> = if self.subsets.is_empty() {
                vec![None]
            } else {
                self.subsets.iter().cloned().map(Some).collect()
            };
            let found: Vec<Option<String>> = subs
                .into_iter()
                .filter(|sub| {
                    s.parts
                        .iter()
                        .all(|p| matches!(self.resolve_part(root, p, sub.as_deref()), Ok(Some(_))))
                })
                .collect();
            if !found.is_empty() {
                out.push((s.name.clone(), found));
            }
        }
        out
    }

    pub(crate) fn available_text(&self, root: &Path) -> String {
        let av = self.available(root);
        if av.is_empty() {
            return format!(
                "Nothing of `{}` is there. Expected layout:\n{}",
                self.name,
                self.layout()
            );
        }
        let kind = self.subset_kind.as_deref().unwrap_or("subset");
        let items: Vec<String> = av
            .iter()
            .map(|(s, subs)| {
                let subs: Vec<&str> = subs.iter().flatten().map(String::as_str).collect();
                if subs.is_empty() {
                    s.clone()
                } else {
                    format!("{s} ({kind}s: {})", subs.join(" "))
                }
            })
            .collect();
        format!("What exists there: {}", items.join("; "))
    }

    /// The file layout the task expects, as indented text (used in error
    /// messages and the README).
    pub fn layout(&self) -> String {
        let head = if self.metric == crate::example::Metric::Retrieval {
            "none (the encoder's sentence embeddings)"
        } else {
            self.head.name()
        };
        let mut s = format!(
            "{} — {}\n  input: {}\n  head: {}",
            self.name, self.description, self.input, head
        );
        let labels = self.head.labels();
        if !labels.is_empty() {
            s.push_str(&format!(" [{}]", labels.join(", ")));
        }
        s.push_str(&format!("; metric: {}\n", self.metric.name()));
        for sp in &self.splits {
            let parts: Vec<String> = sp.parts.iter().map(|p| p.candidates.join(" | ")).collect();
            s.push_str(&format!("  {}: {}\n", sp.name, parts.join("  +  ")));
        }
        if !self.subsets.is_empty() {
            let upper = self
                .splits
                .iter()
                .flat_map(|s| &s.parts)
                .flat_map(|p| &p.candidates)
                .any(|c| c.contains("{SUB}"));
            s.push_str(&format!(
                "  {{sub}} = {}: {}{}{}\n",
                self.subset_kind.as_deref().unwrap_or("subset"),
                self.subsets.join(" "),
                if self.default_subset.is_some() {
                    " (default: all)"
                } else {
                    ""
                },
                if upper {
                    "; {SUB} = the same in upper case"
                } else {
                    ""
                }
            ));
        }
        for n in &self.notes {
            s.push_str(&format!("  {n}\n"));
        }
        s.push_str("  any file may be gzip (.gz) or bzip2 (.bz2) compressed\n");
        s
    }
}

/// The layout of every built-in task, as Markdown (for the README).
pub fn layouts_markdown() -> String {
    let mut s = String::new();
    for t in tasks() {
        s.push_str(&format!(
            "### `{}`\n\n```text\n{}```\n\n",
            t.name,
            t.layout()
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn glob_matches_runs() {
        assert!(glob("train.jsonl", "train.jsonl"));
        assert!(!glob("train.jsonl", "train.jsonl.gz"));
        assert!(glob(
            "train*.jsonl",
            "train.xnli_mt_en.first3000_per_label.jsonl"
        ));
        assert!(glob("train*.jsonl", "train.jsonl"));
        assert!(glob("hellaswag_val*.txt", "hellaswag_val_full.txt"));
        assert!(!glob("hellaswag_val*.txt", "hellaswag_val.from_txt.jsonl"));
        assert!(glob("a*b*c", "a-b-c") && !glob("a*b*c", "a-c-b"));
        assert!(!glob("ab*ba", "aba"));
    }
}
