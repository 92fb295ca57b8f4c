//! Examples as read from a task's files, before tokenization, and the
//! dataset that holds them.

use std::path::PathBuf;

/// How a task is scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Metric {
    /// Share of correct classes (or choices), in percent.
    Accuracy,
    /// The official SQuAD v1.1 exact match and F1.
    SquadV1,
    /// The official SQuAD v2.0 script (no-answer questions count).
    SquadV2,
    /// Share of correctly tagged words (first sub-tokens), in percent.
    TaggingAccuracy,
    /// Share of sentences whose translation is their nearest neighbour
    /// among the other side's sentences (Tatoeba), in percent.
    Retrieval,
}

impl Metric {
    /// The metric's name as shown in reports (`accuracy`, `squad (EM/F1)`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::SquadV1 => "squad (EM/F1)",
            Metric::SquadV2 => "squad_v2 (EM/F1, no-answer)",
            Metric::TaggingAccuracy => "tagging accuracy",
            Metric::Retrieval => "retrieval accuracy",
        }
    }

    /// The metric `name()` calls `name`, if any (records and results keep
    /// the name).
    ///
    /// ```
    /// use stilts_tasks::Metric;
    /// assert_eq!(Metric::from_name("tagging accuracy"), Some(Metric::TaggingAccuracy));
    /// assert_eq!(Metric::from_name("f1"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Metric> {
        [
            Metric::Accuracy,
            Metric::SquadV1,
            Metric::SquadV2,
            Metric::TaggingAccuracy,
            Metric::Retrieval,
        ]
        .into_iter()
        .find(|m| m.name() == name)
    }

    /// Whether every example (or word) is right or wrong and the score is
    /// the share right: what per-example right/wrong bits, their bootstrap
    /// and a chance level are for. Not the F1 of span QA.
    pub fn is_accuracy(&self) -> bool {
        matches!(
            self,
            Metric::Accuracy | Metric::TaggingAccuracy | Metric::Retrieval
        )
    }

    /// [`Metric::is_accuracy`] of the metric named `name`; false for a name
    /// that is no metric's.
    ///
    /// ```
    /// use stilts_tasks::Metric;
    /// assert!(Metric::names_accuracy("accuracy"));
    /// assert!(!Metric::names_accuracy("squad (EM/F1)"));
    /// ```
    pub fn names_accuracy(name: &str) -> bool {
        Metric::from_name(name).is_some_and(|m| m.is_accuracy())
    }
}

use super::io::SkipReport;
use stilts_model::HeadKind;

/// One gold answer of an extractive QA example (`answer_start` in chars).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Answer {
    /// The answer's text, as it appears in the context.
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
        /// The file's own id (an id column, SQuAD's `id`), else one the
        /// reader makes, such as `ccg:12`; prefixed `{sub}/` when several
        /// languages or rounds are read together.
        id: String,
        /// The 1-based line of the example in its file.
        line: usize,
        /// The text, or the first of a pair (an NLI premise).
        a: String,
        /// The second text of a pair (an NLI hypothesis); `None` for a
        /// single text.
        b: Option<String>,
        /// Index into the dataset's `labels`; `None` when the example has no
        /// gold label (unlabelled files, MLM text).
        label: Option<usize>,
    },
    /// A prompt and candidates; each row is the pair (prompt, choice).
    Choice {
        /// The file's own id (an id column, SQuAD's `id`), else one the
        /// reader makes, such as `ccg:12`; prefixed `{sub}/` when several
        /// languages or rounds are read together.
        id: String,
        /// The 1-based line of the example in its file.
        line: usize,
        /// The context shared by every candidate.
        prompt: String,
        /// The candidate continuations or answers, in the file's order.
        choices: Vec<String>,
        /// Index of the correct candidate in `choices`; `None` without a
        /// gold answer.
        label: Option<usize>,
    },
    /// Extractive QA. `answers` is empty for unanswerable (SQuAD 2.0) questions.
    Span {
        /// The file's own id (an id column, SQuAD's `id`), else one the
        /// reader makes, such as `ccg:12`; prefixed `{sub}/` when several
        /// languages or rounds are read together.
        id: String,
        /// The 1-based line of the example in its file.
        line: usize,
        /// The question.
        question: String,
        /// The passage the answer is a span of.
        context: String,
        /// The gold answers (several in SQuAD's dev set).
        answers: Vec<Answer>,
        /// True for a SQuAD 2.0 question without an answer in the context.
        is_impossible: bool,
    },
    /// A tokenized sentence with one tag index per word.
    Words {
        /// The file's own id (an id column, SQuAD's `id`), else one the
        /// reader makes, such as `ccg:12`; prefixed `{sub}/` when several
        /// languages or rounds are read together.
        id: String,
        /// The 1-based line of the example in its file.
        line: usize,
        /// The sentence's words (pre-tokenized, as in the file).
        words: Vec<String>,
        /// One index into the dataset's `labels` per word; `None` without
        /// gold tags.
        tags: Option<Vec<usize>>,
    },
}

impl Example {
    /// The example's id.
    pub fn id(&self) -> &str {
        match self {
            Example::Text { id, .. }
            | Example::Choice { id, .. }
            | Example::Span { id, .. }
            | Example::Words { id, .. } => id,
        }
    }

    /// The 1-based line of the example in its file.
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
    /// The task's name (`xnli`, `squad_v1`, `mlm` for raw text, ...).
    pub task: String,
    /// The split read (`train`, `dev`, `dev_matched`, ...).
    pub split: String,
    /// Language (XNLI, AmericasNLI) or round (ANLI); `None` for tasks without.
    pub subset: Option<String>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
    /// Class or tag names (empty for multiple choice and QA).
    pub labels: Vec<String>,
    /// The head this data trains (with the labels, for `ccg` read from `tags_to_id.json`).
    pub head: HeadKind,
    /// How predictions on this data are scored.
    pub metric: Metric,
    /// The examples, in file order.
    pub examples: Vec<Example>,
    /// What was left out, and where.
    pub skipped: SkipReport,
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether the dataset holds no example.
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

    /// A seeded sample of `n` examples, kept in file order. A classification
    /// task (a label set, labelled examples) gets the same number of each
    /// label (`n / labels`, the first `n % labels` labels one more): a
    /// label-balanced sample even from a file sorted by label, where the
    /// first `n` lines would be one label. Other tasks get a uniform sample.
    /// The same `(n, seed)` always picks the same examples.
    pub fn sample(&self, n: usize, seed: u64) -> stilts_model::error::Result<Dataset> {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        let where_ = || {
            self.files
                .first()
                .map(|f| f.display().to_string())
                .unwrap_or_else(|| self.name())
        };
        if n == 0 {
            return Err(stilts_model::error::Error::msg(format!(
                "{}: `sample` must be at least 1",
                where_()
            )));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let keep: Vec<usize> = if let Some(by_label) = self.by_label() {
            let k = self.labels.len();
            let mut keep = vec![];
            for (l, mut idx) in by_label.into_iter().enumerate() {
                let want = n / k + usize::from(l < n % k);
                if idx.len() < want {
                    return Err(stilts_model::error::Error::msg(format!(
                        "{}: `sample: {n}` takes {want} examples of label `{}`, but the {} read have only {} (read more lines: raise or drop `limit`, or sample fewer)",
                        where_(),
                        self.labels[l],
                        self.examples.len(),
                        idx.len()
                    )));
                }
                idx.shuffle(&mut rng);
                keep.extend_from_slice(&idx[..want]);
            }
            keep
        } else {
            if self.examples.len() < n {
                return Err(stilts_model::error::Error::msg(format!(
                    "{}: `sample: {n}` is more than the {} examples read",
                    where_(),
                    self.examples.len()
                )));
            }
            let mut idx: Vec<usize> = (0..self.examples.len()).collect();
            idx.shuffle(&mut rng);
            idx.truncate(n);
            idx
        };
        Ok(self.keeping(keep))
    }

    /// A seeded random subset of at most `n` examples, kept in file order:
    /// for a classification task (a label set, every example labelled)
    /// stratified by label, each label keeping its share of the file
    /// (largest remainder, ties to the earlier label, every label present
    /// in the file kept when `n` allows); a uniform sample otherwise. All
    /// examples when the dataset has no more than `n`. The same
    /// `(n, seed)` always picks the same examples, and files with the same
    /// label sequence (XNLI's parallel languages) the same lines.
    pub fn limit_sample(&self, n: usize, seed: u64) -> Dataset {
        use rand::seq::SliceRandom;
        use rand::SeedableRng;
        if self.examples.len() <= n {
            return self.clone();
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let keep: Vec<usize> = if let Some(by_label) = self.by_label() {
            let k = self.labels.len();
            let total: usize = by_label.iter().map(Vec::len).sum();
            // Each label's exact share, its floor, then the remainder to
            // the largest fractional parts.
            let exact: Vec<f64> = by_label
                .iter()
                .map(|v| v.len() as f64 * n as f64 / total.max(1) as f64)
                .collect();
            let mut want: Vec<usize> = exact.iter().map(|x| x.floor() as usize).collect();
            let mut order: Vec<usize> = (0..k).filter(|&l| !by_label[l].is_empty()).collect();
            order.sort_by(|&a, &b| {
                let fa = exact[a] - exact[a].floor();
                let fb = exact[b] - exact[b].floor();
                fb.partial_cmp(&fa).unwrap_or(std::cmp::Ordering::Equal)
            });
            let mut left = n.min(total) - want.iter().sum::<usize>();
            for &l in order.iter().cycle() {
                if left == 0 {
                    break;
                }
                if want[l] < by_label[l].len() {
                    want[l] += 1;
                    left -= 1;
                }
            }
            let mut keep = vec![];
            for (l, mut idx) in by_label.into_iter().enumerate() {
                idx.shuffle(&mut rng);
                keep.extend_from_slice(&idx[..want[l].min(idx.len())]);
            }
            keep
        } else {
            let mut idx: Vec<usize> = (0..self.examples.len()).collect();
            idx.shuffle(&mut rng);
            idx.truncate(n);
            idx
        };
        self.keeping(keep)
    }

    /// Example indices by label, for a classification task whose examples
    /// are all labelled (what sampling stratifies by); `None` otherwise.
    fn by_label(&self) -> Option<Vec<Vec<usize>>> {
        let labelled = !self.labels.is_empty()
            && matches!(self.head, HeadKind::Classification { .. })
            && self.examples.iter().all(|e| e.label().is_some());
        if !labelled {
            return None;
        }
        let mut by_label: Vec<Vec<usize>> = vec![vec![]; self.labels.len()];
        for (i, e) in self.examples.iter().enumerate() {
            if let Some(l) = e.label().filter(|&l| l < by_label.len()) {
                by_label[l].push(i);
            }
        }
        Some(by_label)
    }

    /// A copy holding the examples at `keep`, in file order.
    fn keeping(&self, mut keep: Vec<usize>) -> Dataset {
        keep.sort_unstable();
        let mut out = self.clone();
        out.examples = keep.into_iter().map(|i| self.examples[i].clone()).collect();
        out
    }

    /// The labels a classification training set holds, when it holds only
    /// one (a warning: the classifier learns nothing about the others);
    /// `None` otherwise.
    pub fn single_label(&self) -> Option<String> {
        if !matches!(self.head, HeadKind::Classification { .. }) || self.labels.len() < 2 {
            return None;
        }
        let c = self.label_counts();
        let present: Vec<usize> = (0..c.len()).filter(|&i| c[i] > 0).collect();
        match present.as_slice() {
            [one] => self.labels.get(*one).cloned(),
            _ => None,
        }
    }

    /// The accuracy (percent) of guessing uniformly: 100 / labels for
    /// classification, 100 / candidates for multiple choice; `None` for
    /// other heads.
    pub fn chance_accuracy(&self) -> Option<f64> {
        match &self.head {
            HeadKind::Classification { labels } if labels.len() > 1 => {
                Some(100.0 / labels.len() as f64)
            }
            HeadKind::MultipleChoice => self.examples.iter().find_map(|e| match e {
                Example::Choice { choices, .. } if !choices.is_empty() => {
                    Some(100.0 / choices.len() as f64)
                }
                _ => None,
            }),
            _ => None,
        }
    }

    /// `task/split[/subset]`, for messages.
    pub fn name(&self) -> String {
        match &self.subset {
            Some(s) => format!("{}/{}/{}", self.task, self.split, s),
            None => format!("{}/{}", self.task, self.split),
        }
    }
}
