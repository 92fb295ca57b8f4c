//! Small helpers shared across layers.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result, WithPath};

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder,
/// then a rename, so a crash never leaves a half-written file under `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_path(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    remove_stale_temps(dir, &format!(".{name}.tmp"));
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_path(&tmp)?;
    std::fs::rename(&tmp, path).with_path(path)
}

/// Removes `PREFIX<pid>` files in `dir` left by writers that are gone (a
/// kill between write and rename leaves one).
fn remove_stale_temps(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if let Some(pid) = name
            .strip_prefix(prefix)
            .and_then(|p| p.parse::<u32>().ok())
        {
            let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
            if !alive {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Replaces the folder `dst` by one that `fill` writes, so that a kill at
/// any moment leaves either the old folder or the new one, never a mix:
/// `fill` writes into a sibling `.NAME.tmp`, the old folder is moved to
/// `.NAME.old`, the new one renamed into place, the old removed. Leftovers
/// of an earlier killed replace are removed first. (A kill between the
/// two renames leaves `dst` absent and the previous folder in `.NAME.old`.)
/// `keep`: the only file names `dst` may hold, so that a folder with other
/// files in it is never replaced (an error naming them).
pub fn replace_dir(
    dst: &Path,
    keep: &[&str],
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let parent = dst
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .filter(|n| n != "." && n != "..")
        .ok_or_else(|| Error::config(dst, "give a folder of its own to save into"))?;
    if dst.exists() {
        if !dst.is_dir() {
            return Err(Error::config(dst, "exists and is not a folder"));
        }
        let others: Vec<String> = std::fs::read_dir(dst)
            .with_path(dst)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| !keep.contains(&n.as_str()))
            .collect();
        if !others.is_empty() {
            return Err(Error::config(dst, format!("holds other files ({}); it is replaced whole when saving, so give a folder of its own", others.join(", ")
            )));
        }
    }
    std::fs::create_dir_all(parent).with_path(parent)?;
    let tmp = parent.join(format!(".{name}.tmp"));
    let old = parent.join(format!(".{name}.old"));
    for leftover in [&tmp, &old] {
        if leftover.exists() {
            std::fs::remove_dir_all(leftover).with_path(leftover)?;
        }
    }
    std::fs::create_dir_all(&tmp).with_path(&tmp)?;
    fill(&tmp)?;
    install_dir(&tmp, dst)
}

/// `PARENT/.NAME.WHAT.PID` for the file `PARENT/NAME`: a hidden scratch
/// file beside it, private to this process.
pub fn sibling_file(path: &Path, what: &str) -> PathBuf {
    let s = sibling(path, what);
    let mut name = s.into_os_string();
    name.push(format!(".{}", std::process::id()));
    PathBuf::from(name)
}

/// `PARENT/.NAME.WHAT` for `PARENT/NAME`: a hidden sibling of a folder.
pub fn sibling(dir: &Path, what: &str) -> PathBuf {
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "dir".into());
    parent.join(format!(".{name}.{what}"))
}

/// Moves the complete folder `src` to `dst`, replacing what is there: the
/// old folder is moved aside (`.NAME.old`), `src` renamed into place, the
/// old removed. A kill at any moment leaves `dst` old, new or absent (the
/// old one then in `.NAME.old`), never a mix.
pub fn install_dir(src: &Path, dst: &Path) -> Result<()> {
    let old = sibling(dst, "old");
    if old.exists() {
        std::fs::remove_dir_all(&old).with_path(&old)?;
    }
    if let Some(p) = dst.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(p).with_path(p)?;
    }
    if dst.exists() {
        std::fs::rename(dst, &old).with_path(dst)?;
    }
    std::fs::rename(src, dst).with_path(dst)?;
    if old.exists() {
        std::fs::remove_dir_all(&old).with_path(&old)?;
    }
    Ok(())
}

/// The closest of `names` to `word` (edit distance at most 2, or a prefix).
pub fn closest<'a>(word: &str, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .map(|n| (edit_distance(word, n), *n))
        .filter(|(d, n)| {
            *d <= 1.max(word.chars().count() / 3) || (word.len() >= 3 && n.starts_with(word))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

/// What a value of the type a conversion error expects is, in a script's
/// words, with an example value: `u64` -> ("a whole number", "3"),
/// `alloc::vec::Vec<alloc::string::String>` -> ("an array of strings",
/// `["a", "b"]`). The type is read from serde's and rhai's messages
/// (`expected u64`, `expecting alloc::vec::Vec<...>`); `None` where it
/// names none of these.
pub fn expected_in_words(message: &str) -> Option<(&'static str, &'static str)> {
    let m = message;
    let tail = m
        .rsplit_once("expected ")
        .or_else(|| m.rsplit_once("expecting "))
        .map(|(_, t)| t.trim_end_matches([')', '.']).trim())?;
    let t = tail.rsplit("::").next().unwrap_or(tail);
    Some(match t {
        _ if tail.contains("Vec<") && tail.contains("String") => {
            ("an array of strings", "[\"a\", \"b\"]")
        }
        _ if tail.contains("Vec<") || tail == "a sequence" => ("an array", "[1, 2]"),
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" | "isize" => {
            ("a whole number", "3")
        }
        "f32" | "f64" => ("a number", "0.1"),
        "bool" | "a boolean" => ("true or false", "true"),
        "String" | "a string" | "str" => ("a string", "\"name\""),
        "a map" => ("a map", "#{}"),
        _ => return None,
    })
}

/// Edit distance in chars between `a` and `b`: insertions, deletions,
/// substitutions and swaps of two adjacent chars, each costing 1.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut prev2: Vec<usize> = prev.clone();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

/// This machine's host name (from the kernel), or `localhost`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether process `pid` is alive on this machine.
pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// `1 layer`, `2 layers`.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// A count as people write it: `950`, `120k`, `1.5M`, `3.5B` (three
/// significant digits at most).
pub fn count(n: usize) -> String {
    let x = n as f64;
    let (v, unit) = if n < 1_000 {
        return n.to_string();
    } else if n < 1_000_000 {
        (x / 1e3, "k")
    } else if n < 1_000_000_000 {
        (x / 1e6, "M")
    } else {
        (x / 1e9, "B")
    };
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let mut s = format!("{v:.digits$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    s + unit
}

#[cfg(test)]
mod count_tests {
    #[test]
    fn counts_read_as_people_write_them() {
        assert_eq!(super::count(950), "950");
        assert_eq!(super::count(120_384), "120k");
        assert_eq!(super::count(100_000), "100k");
        assert_eq!(super::count(52_000), "52k");
        assert_eq!(super::count(117_653_000), "118M");
        assert_eq!(super::count(1_500_000), "1.5M");
        assert_eq!(super::count(3_500_000_000), "3.5B");
        assert_eq!(super::plural(1, "layer"), "1 layer");
        assert_eq!(super::plural(2, "layer"), "2 layers");
    }
}

/// `text` in lines of at most `width` columns (a word longer than a line
/// stands alone), each starting with `indent`; breaks only between words.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let len = indent.chars().count() + line.chars().count();
        if !line.is_empty() && len + 1 + word.chars().count() > width {
            out.push_str(indent);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(indent);
        out.push_str(&line);
        out.push('\n');
    }
    out
}
