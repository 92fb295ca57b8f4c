//! Opening data files (plain, `.gz`, `.bz2`), reading them line by line with
//! line numbers, and the bad-line policy shared by every reader.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use stilts_model::error::{Error, Result, WithPath};

/// What a reader does with a malformed line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BadLines {
    /// Stop at the first malformed line with `Error::Data{path, line, msg}`.
    #[default]
    Fail,
    /// Leave malformed lines out, counting them in the dataset's [`SkipReport`].
    Skip,
}

/// Options every reader takes.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReadOptions {
    /// What to do with a malformed line (default: fail).
    pub on_error: BadLines,
    /// Read at most this many examples (a prefix of the file, for quick
    /// runs): a script's `first`. (Kept as `limit` in serialized options,
    /// which feature-cache keys hold.)
    #[serde(rename = "limit")]
    pub first: Option<usize>,
}

impl ReadOptions {
    /// The defaults, with malformed lines skipped and counted.
    pub fn skip_bad_lines() -> Self {
        ReadOptions {
            on_error: BadLines::Skip,
            ..Default::default()
        }
    }

    /// These options, reading at most the first `n` examples.
    pub fn with_first(mut self, n: usize) -> Self {
        self.first = Some(n);
        self
    }
}

/// One place where a line was left out.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BadLine {
    /// The file the line is in.
    pub path: PathBuf,
    /// The line number, counted from 1.
    pub line: usize,
    /// What is wrong with the line.
    pub msg: String,
}

impl std::fmt::Display for BadLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.path.display(), self.line, self.msg)
    }
}

/// What reading left out: malformed lines (under [`BadLines::Skip`]) and
/// rows the official loaders leave out on purpose (MNLI/SNLI pairs whose
/// `gold_label` is `-`: no annotator majority). Nothing is dropped silently.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SkipReport {
    /// Malformed lines left out.
    pub bad_lines: usize,
    /// The first [`SkipReport::KEEP`] of them.
    pub first: Vec<BadLine>,
    /// Rows without a gold label (`-`), left out as the official loaders do.
    pub no_gold_label: usize,
}

impl SkipReport {
    /// How many bad-line locations are kept.
    pub const KEEP: usize = 10;

    /// Whether nothing was left out.
    pub fn is_empty(&self) -> bool {
        self.bad_lines == 0 && self.no_gold_label == 0
    }

    /// Adds `other`'s counts to this report and keeps its bad lines while
    /// fewer than `KEEP` are kept.
    pub fn merge(&mut self, other: SkipReport) {
        self.bad_lines += other.bad_lines;
        self.no_gold_label += other.no_gold_label;
        for b in other.first {
            if self.first.len() < Self::KEEP {
                self.first.push(b);
            }
        }
    }
}

impl std::fmt::Display for SkipReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return write!(f, "nothing left out");
        }
        let mut parts = Vec::new();
        if self.bad_lines > 0 {
            parts.push(format!("{} malformed line(s) skipped", self.bad_lines));
        }
        if self.no_gold_label > 0 {
            parts.push(format!(
                "{} row(s) without a gold label (`-`) left out, as the official loaders do",
                self.no_gold_label
            ));
        }
        write!(f, "{}", parts.join("; "))?;
        for b in &self.first {
            write!(f, "\n  {b}")?;
        }
        if self.bad_lines > self.first.len() {
            write!(f, "\n  ... and {} more", self.bad_lines - self.first.len())?;
        }
        Ok(())
    }
}

/// Applies the bad-line policy for one file.
pub struct Sink<'a> {
    /// The file being read.
    pub path: &'a Path,
    /// The bad-line policy and example limit.
    pub opts: &'a ReadOptions,
    /// Where skipped lines and rows are counted.
    pub report: &'a mut SkipReport,
}

impl<'a> Sink<'a> {
    /// A sink for reading `path` under `opts`, counting into `report`.
    pub fn new(path: &'a Path, opts: &'a ReadOptions, report: &'a mut SkipReport) -> Self {
        Sink { path, opts, report }
    }

    /// A malformed line: an error under [`BadLines::Fail`], counted under `Skip`.
    pub fn bad(&mut self, line: usize, msg: impl Into<String>) -> Result<()> {
        let msg = msg.into();
        match self.opts.on_error {
            BadLines::Fail => Err(data_err(self.path, line, msg)),
            BadLines::Skip => {
                self.report.bad_lines += 1;
                if self.report.first.len() < SkipReport::KEEP {
                    self.report.first.push(BadLine {
                        path: self.path.to_path_buf(),
                        line,
                        msg,
                    });
                }
                Ok(())
            }
        }
    }

    /// Handles the result of parsing one line: `Ok(Some)` keeps it,
    /// `Err(msg)` goes through [`Sink::bad`].
    pub fn check<T>(
        &mut self,
        line: usize,
        r: std::result::Result<T, String>,
    ) -> Result<Option<T>> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(msg) => self.bad(line, msg).map(|_| None),
        }
    }

    /// Counts a row left out for having no gold label (`-`).
    pub fn no_gold(&mut self) {
        self.report.no_gold_label += 1;
    }

    /// Whether `n` examples read reach the `first` limit (never without one).
    pub fn full(&self, n: usize) -> bool {
        self.opts.first.is_some_and(|l| n >= l)
    }
}

/// An `Error::Data`: `msg` about line `line` (from 1) of `path`.
pub fn data_err(path: &Path, line: usize, msg: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        line,
        msg: msg.into(),
    }
}

/// The compression a file name says it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Plain bytes (any other extension).
    None,
    /// gzip (`.gz`).
    Gzip,
    /// bzip2 (`.bz2`).
    Bzip2,
}

impl Compression {
    /// The compression `path`'s extension names.
    pub fn of(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("gz") => Compression::Gzip,
            Some("bz2") => Compression::Bzip2,
            _ => Compression::None,
        }
    }
}

/// The file name without a `.gz`/`.bz2` suffix (`dev.jsonl.gz` -> `dev.jsonl`).
pub fn plain_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    for suf in [".gz", ".bz2"] {
        if let Some(s) = name.strip_suffix(suf) {
            return s.to_string();
        }
    }
    name
}

/// The extension of the data inside (`dev.jsonl.gz` -> `jsonl`), lower case.
pub fn data_ext(path: &Path) -> String {
    let name = plain_name(path);
    name.rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default()
}

/// Opens a file for reading, decompressing `.gz` (gzip, multi-member) and
/// `.bz2` (bzip2, multi-stream) transparently.
pub fn open(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    let f = File::open(path).with_path(path)?;
    let r: Box<dyn Read + Send> =
        match Compression::of(path) {
            Compression::None => Box::new(f),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
                BufReader::with_capacity(1 << 16, f),
            )),
            Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(
                BufReader::with_capacity(1 << 16, f),
            )),
        };
    Ok(Box::new(BufReader::with_capacity(1 << 16, r)))
}

/// The whole (decompressed) file as text.
pub fn read_text(path: &Path) -> Result<String> {
    let mut bytes = Vec::new();
    open(path)?.read_to_end(&mut bytes).with_path(path)?;
    let mut text = String::from_utf8(bytes).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        data_err(path, line, "not valid UTF-8")
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..3);
    }
    Ok(text)
}

/// Lines of a (possibly compressed) text file, numbered from 1, without
/// their `\n` / `\r\n` ending and without a leading byte-order mark.
pub struct Lines {
    reader: Box<dyn BufRead + Send>,
    path: PathBuf,
    line: usize,
    buf: Vec<u8>,
}

impl Lines {
    /// Opens `path` (decompressing as `open` does) at its first line.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Lines {
            reader: open(path)?,
            path: path.to_path_buf(),
            line: 0,
            buf: Vec::new(),
        })
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Iterator for Lines {
    type Item = Result<(usize, String)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.buf.clear();
        match self.reader.read_until(b'\n', &mut self.buf) {
            Err(e) => Some(Err(Error::io(&self.path, e))),
            Ok(0) => None,
            Ok(_) => {
                self.line += 1;
                if self.buf.last() == Some(&b'\n') {
                    self.buf.pop();
                    if self.buf.last() == Some(&b'\r') {
                        self.buf.pop();
                    }
                }
                let mut start = 0;
                if self.line == 1 && self.buf.starts_with(&[0xef, 0xbb, 0xbf]) {
                    start = 3;
                }
                match std::str::from_utf8(&self.buf[start..]) {
                    Ok(s) => Some(Ok((self.line, s.to_string()))),
                    Err(_) => Some(Err(data_err(&self.path, self.line, "not valid UTF-8"))),
                }
            }
        }
    }
}

/// SHA-256 of a file's bytes as stored (compressed files hash compressed),
/// read in blocks so big files don't sit in memory.
pub fn file_sha256(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = File::open(path).with_path(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).with_path(path)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}
