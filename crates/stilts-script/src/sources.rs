//! The texts an error may point into (the script and the modules it
//! imports), filled as they load (the module resolver, the runtime) and read
//! by the error positions of [`crate::errors`].

use std::collections::HashMap;

/// The texts errors may point into: the script and the modules it imports.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// Full text by file name (or import path).
    pub texts: HashMap<String, String>,
}

impl Sources {
    /// Keeps `text` under `name`, replacing an earlier text of that name.
    pub fn add(&mut self, name: &str, text: &str) {
        self.texts.insert(name.to_string(), text.to_string());
    }

    /// Line `line` (1-based) of `file`, trailing whitespace trimmed; `None` for
    /// line 0, an unknown file or a line past the end.
    pub fn line(&self, file: &str, line: usize) -> Option<String> {
        if line == 0 {
            return None;
        }
        self.texts
            .get(file)?
            .lines()
            .nth(line - 1)
            .map(|s| s.trim_end().to_string())
    }
}
