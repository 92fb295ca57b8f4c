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

    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl Error {
    pub fn msg(m: impl Into<String>) -> Self {
        Error::Msg(m.into())
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

/// Reads a whole file, naming it in the error: a folder, or text that is
/// not UTF-8 (with the line of the first bad byte).
pub fn read_to_string(path: &std::path::Path) -> Result<String> {
    if path.is_dir() {
        return Err(Error::msg(format!(
            "{}: is a folder; a file is needed here",
            path.display()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
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
