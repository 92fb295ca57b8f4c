//! The one error type of stilts. Every variant names the file (or tensor, or
//! setting) at fault and says what to do, so a researcher never has to read a
//! backtrace to fix their input.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: not valid JSON ({source}); fix the file or re-save it from transformers")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("{path}: {msg}")]
    Config { path: PathBuf, msg: String },

    #[error("{path}: tensor `{name}` has shape {got:?} but the config asks for {expected:?}; the checkpoint does not match its config.json")]
    Shape {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },

    #[error("{path}: cannot read weights ({msg}); the file is truncated or corrupt: download or save it again")]
    Weights { path: PathBuf, msg: String },

    #[error("{path}: cannot load tokenizer ({msg}); it must be a Hugging Face tokenizer.json")]
    Tokenizer { path: PathBuf, msg: String },

    #[error("model `{spec}` not found; looked in:\n  {}\n{hint}", tried.join("\n  "))]
    ModelNotFound {
        spec: String,
        tried: Vec<String>,
        hint: String,
    },

    #[error("{path}:{line}: {msg}")]
    Data {
        path: PathBuf,
        line: usize,
        msg: String,
    },

    #[error("{0}")]
    Msg(String),

    /// The run was stopped by its cancel flag (Ctrl-C, SIGTERM, a Slurm
    /// time-limit signal) at a safe point: what it was doing, the update it
    /// stopped at and where its checkpoint is, when it has one. Front ends
    /// tell it from a failure with [`Error::is_cancelled`], never by a
    /// message or a global flag.
    #[error("interrupted during {during}{}{}", step.map(|s| format!(" at update {s}")).unwrap_or_default(), checkpoint.as_ref().map(|d| format!("; its checkpoint is in {}: run again to resume from it", d.display())).unwrap_or_default())]
    Cancelled {
        during: String,
        step: Option<u64>,
        checkpoint: Option<PathBuf>,
    },

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl Error {
    pub fn msg(m: impl Into<String>) -> Self {
        Error::Msg(m.into())
    }

    /// Stopped by the cancel flag during `during`, with no checkpoint.
    ///
    /// ```
    /// let e = stilts_model::Error::cancelled("evaluation of xnli.test.de");
    /// assert!(e.is_cancelled());
    /// assert_eq!(e.to_string(), "interrupted during evaluation of xnli.test.de");
    /// ```
    pub fn cancelled(during: impl Into<String>) -> Self {
        Error::Cancelled {
            during: during.into(),
            step: None,
            checkpoint: None,
        }
    }

    /// True for [`Error::Cancelled`]: the run was interrupted, not failed.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled { .. })
    }

    /// Names what a cancelled run was doing in the caller's words (the
    /// protocol's "training" becomes "target training of mnli"); any other
    /// error is returned as it is.
    ///
    /// ```
    /// use stilts_model::Error;
    /// let e = Error::cancelled("training").during("intermediate training");
    /// assert_eq!(e.to_string(), "interrupted during intermediate training");
    /// assert!(!Error::msg("x").during("y").is_cancelled());
    /// ```
    pub fn during(self, what: impl Into<String>) -> Self {
        match self {
            Error::Cancelled {
                step, checkpoint, ..
            } => Error::Cancelled {
                during: what.into(),
                step,
                checkpoint,
            },
            other => other,
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn config(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Error::Config {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

/// Names the file an error is about: `with_path(path)` on any result whose
/// error knows no file (I/O, JSON, a message) turns it into the variant
/// that carries the path, so no call site spells `{path}: ` itself.
///
/// ```
/// use stilts_model::error::WithPath;
/// let p = std::path::Path::new("nowhere/config.json");
/// let e = std::fs::read(p).with_path(p).unwrap_err();
/// assert!(e.to_string().starts_with("nowhere/config.json: "));
/// ```
pub trait WithPath<T> {
    fn with_path(self, path: impl AsRef<std::path::Path>) -> Result<T>;
}

impl<T> WithPath<T> for std::result::Result<T, std::io::Error> {
    fn with_path(self, path: impl AsRef<std::path::Path>) -> Result<T> {
        self.map_err(|e| Error::io(path.as_ref(), e))
    }
}

impl<T> WithPath<T> for std::result::Result<T, serde_json::Error> {
    fn with_path(self, path: impl AsRef<std::path::Path>) -> Result<T> {
        self.map_err(|source| Error::Json {
            path: path.as_ref().to_path_buf(),
            source,
        })
    }
}

impl<T> WithPath<T> for Result<T> {
    /// A message gets the path in front (`Error::Config`); an error that
    /// already names a file is kept as it is.
    fn with_path(self, path: impl AsRef<std::path::Path>) -> Result<T> {
        self.map_err(|e| match e {
            Error::Msg(msg) => Error::Config {
                path: path.as_ref().to_path_buf(),
                msg,
            },
            Error::Candle(c) => Error::Config {
                path: path.as_ref().to_path_buf(),
                msg: c.to_string(),
            },
            other => other,
        })
    }
}

/// Reads a whole file, naming it in the error: a folder, or text that is
/// not UTF-8 (with the line of the first bad byte).
pub fn read_to_string(path: &std::path::Path) -> Result<String> {
    if path.is_dir() {
        return Err(Error::config(path, "is a folder; a file is needed here"));
    }
    let bytes = std::fs::read(path).with_path(path)?;
    String::from_utf8(bytes).map_err(|e| {
        let line = e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        Error::Data {
            path: path.to_path_buf(),
            line,
            msg: "not valid UTF-8; save the file as UTF-8".into(),
        }
    })
}

/// Parses a JSON file, naming it in the error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<T> {
    let text = read_to_string(path)?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}
