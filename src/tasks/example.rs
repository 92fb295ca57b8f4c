//! Examples as read from a task's files, before tokenization, and the
//! dataset that holds them.

use std::path::PathBuf;

use super::io::SkipReport;
use super::registry::Metric;
use crate::model::HeadKind;

/// One gold answer of an extractive QA example (`answer_start` in chars).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Answer {
    pub text: String,
    /// Offset of the answer in the context, in characters (Unicode scalar
    /// values, as Python indexes strings).
    pub start: usize,
}

/// One example of any task. `line` is the 1-based line of its file (for a
/// whole-file JSON document such as SQuAD: the line where its id appears).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Example {
    /// One text or a pair, with a class index into the task's labels.
    Text {
        id: String,
        line: usize,
        a: String,
        b: Option<String>,
        label: Option<usize>,
    },
    /// A prompt and candidates; each row is the pair (prompt, choice).
    Choice {
        id: String,
        line: usize,
        prompt: String,
        choices: Vec<String>,
        label: Option<usize>,
    },
    /// Extractive QA. `answers` is empty for unanswerable (SQuAD 2.0) questions.
    Span {
        id: String,
        line: usize,
        question: String,
        context: String,
        answers: Vec<Answer>,
        is_impossible: bool,
    },
    /// A tokenized sentence with one tag index per word.
    Words {
        id: String,
        line: usize,
        words: Vec<String>,
        tags: Option<Vec<usize>>,
    },
}

impl Example {
    pub fn id(&self) -> &str {
        match self {
            Example::Text { id, .. }
            | Example::Choice { id, .. }
            | Example::Span { id, .. }
            | Example::Words { id, .. } => id,
        }
    }

    pub fn line(&self) -> usize {
        match self {
            Example::Text { line, .. }
            | Example::Choice { line, .. }
            | Example::Span { line, .. }
            | Example::Words { line, .. } => *line,
        }
    }

    /// The class (or choice) index of a classification or multiple-choice example.
    pub fn label(&self) -> Option<usize> {
        match self {
            Example::Text { label, .. } | Example::Choice { label, .. } => *label,
            _ => None,
        }
    }
}

/// The examples of one split of one task (one language or round, or all).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Dataset {
    pub task: String,
    pub split: String,
    /// Language (XNLI, AmericasNLI) or round (ANLI); `None` for tasks without.
    pub subset: Option<String>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// Class or tag names (empty for multiple choice and QA).
    pub labels: Vec<String>,
    /// The head this data trains (with the labels, for `ccg` read from `tags_to_id.json`).
    pub head: HeadKind,
    pub metric: Metric,
    pub examples: Vec<Example>,
    /// What was left out, and where.
    pub skipped: SkipReport,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// How many examples carry each label (classification), in label order.
    pub fn label_counts(&self) -> Vec<usize> {
        let mut c = vec![0; self.labels.len().max(1)];
        for e in &self.examples {
            if let Some(l) = e.label() {
                if l >= c.len() {
                    c.resize(l + 1, 0);
                }
                c[l] += 1;
            }
        }
        c
    }

    /// `task/split[/subset]`, for messages.
    pub fn name(&self) -> String {
        match &self.subset {
            Some(s) => format!("{}/{}/{}", self.task, self.split, s),
            None => format!("{}/{}", self.task, self.split),
        }
    }
}
