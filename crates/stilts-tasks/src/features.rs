//! Examples to features (token ids and labels), as the reference code
//! builds them:
//! - text and pairs: `<s> A </s></s> B </s>`, longest-first truncation;
//! - multiple choice: one (prompt, choice) pair per choice, example-major;
//! - extractive QA: HF `run_qa.py`'s windows (question first, context
//!   truncated "only_second", `max_length` 384, `doc_stride` 128); the
//!   answer (the first one, as HF trains) mapped to token positions through
//!   the offsets, and `<s>` (index 0) where a window doesn't hold it or the
//!   question has none;
//! - tagging: the tag on the first sub-token of each word, -100 elsewhere
//!   (HF `run_ner.py` with `label_all_tokens=False`).
//!
//! Examples are encoded in chunks ([`FeatureOptions::chunk`]), each on all
//! cores.

use super::encode::TextEncoder;
use super::example::{Dataset, Example};
use stilts_model::error::{Error, Result};
use stilts_model::loss::IGNORE_INDEX;

/// The training signal of one feature.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Label {
    /// No gold label (test data).
    None,
    /// Class, or index of the right choice.
    Class(usize),
    /// Start and end token (inclusive); both 0 (`<s>`) when the window has no answer.
    Span {
        /// Index of the answer's first token in the window.
        start: usize,
        /// Index of the answer's last token in the window.
        end: usize,
    },
    /// One value per token: a tag index, or -100.
    Tags(Vec<i64>),
}

/// One model input: 1 row, or one row per choice.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Feature {
    /// Index of its example in the dataset.
    pub example: usize,
    /// Token ids, specials included: the one row of a text, pair, QA window
    /// or sentence, or one `(prompt, choice)` row per choice, in order.
    pub rows: Vec<Vec<u32>>,
    /// What the model should predict for this feature.
    pub label: Label,
    /// QA windows only: each token's character span in the context (`None`
    /// outside the context); empty for other tasks.
    pub offsets: Vec<Option<(usize, usize)>>,
}

impl Feature {
    /// Longest row.
    pub fn len(&self) -> usize {
        self.rows.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// Whether every row is empty (or there is none).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Padded tokens this feature costs in a batch of length `len()`: rows × length.
    pub fn cost(&self) -> usize {
        self.rows.len().max(1) * self.len()
    }
}

/// The longest question of span QA in tokens: longer ones are cut to it
/// before windowing (the rule of XTREME's and jiant's SQuAD preprocessing).
pub const MAX_QUERY_LENGTH: usize = 64;

/// Questions of span QA examples longer than `max_query` tokens (what
/// windowing cuts to that length).
pub fn long_questions(ds: &Dataset, enc: &TextEncoder, max_query: usize) -> Result<usize> {
    let questions: Vec<&str> = ds
        .examples
        .iter()
        .filter_map(|e| match e {
            Example::Span { question, .. } => Some(question.trim_start()),
            _ => None,
        })
        .collect();
    if questions.is_empty() {
        return Ok(0);
    }
    Ok(enc
        .question_lengths(&questions)?
        .into_iter()
        .filter(|&n| n > max_query)
        .count())
}

/// Tokenization settings (part of the feature cache key).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeatureOptions {
    /// Longest sequence in tokens, special tokens included.
    pub max_length: usize,
    /// QA: tokens of overlap between windows (HF's `doc_stride`).
    pub doc_stride: usize,
    /// Examples per tokenizer call (memory bound; not in the cache key).
    #[serde(skip, default = "default_chunk")]
    pub chunk: usize,
    /// QA: questions are cut to this many tokens before windowing
    /// (XTREME's and jiant's `max_query_length`, [`MAX_QUERY_LENGTH`]);
    /// `None`: not cut.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_query_length: Option<usize>,
}

fn default_chunk() -> usize {
    4096
}

impl Default for FeatureOptions {
    fn default() -> Self {
        FeatureOptions {
            max_length: 128,
            doc_stride: 128,
            chunk: default_chunk(),
            max_query_length: None,
        }
    }
}

impl FeatureOptions {
    /// The defaults (stride 128, chunks of 4096 examples) with sequences of
    /// at most `max_length` tokens.
    pub fn new(max_length: usize) -> Self {
        FeatureOptions {
            max_length,
            ..Default::default()
        }
    }

    /// HF `run_qa.py`'s defaults: 384 tokens, stride 128; questions cut
    /// to [`MAX_QUERY_LENGTH`] tokens.
    pub fn squad() -> Self {
        FeatureOptions {
            max_length: 384,
            doc_stride: 128,
            chunk: 1024,
            max_query_length: Some(MAX_QUERY_LENGTH),
        }
    }

    /// The defaults for a dataset's head: [`FeatureOptions::squad`] for QA, 128 tokens otherwise.
    pub fn for_dataset(ds: &Dataset) -> Self {
        match ds.head {
            stilts_model::HeadKind::SpanQa => Self::squad(),
            _ => Self::default(),
        }
    }
}

/// The features of a dataset, in example order (a QA example may give
/// several windows, in order).
pub fn featurize(ds: &Dataset, enc: &TextEncoder, opts: &FeatureOptions) -> Result<Vec<Feature>> {
    featurize_examples(&ds.examples, enc, opts).map_err(|e| match e {
        Error::Msg(m) => Error::msg(format!("{}: {m}", ds.name())),
        other => other,
    })
}

/// [`featurize`] for a slice of examples (indices in the features are into it).
pub fn featurize_examples(
    examples: &[Example],
    enc: &TextEncoder,
    opts: &FeatureOptions,
) -> Result<Vec<Feature>> {
    let chunk = opts.chunk.max(1);
    let mut out = Vec::with_capacity(examples.len());
    for (c, part) in examples.chunks(chunk).enumerate() {
        featurize_chunk(part, c * chunk, enc, opts, &mut out)?;
    }
    Ok(out)
}

fn featurize_chunk(
    part: &[Example],
    base: usize,
    enc: &TextEncoder,
    opts: &FeatureOptions,
    out: &mut Vec<Feature>,
) -> Result<()> {
    let kind = |e: &Example| std::mem::discriminant(e);
    if let Some(first) = part.first() {
        if part.iter().any(|e| kind(e) != kind(first)) {
            return Err(Error::msg(
                "a dataset mixes kinds of examples (text, choice, span, words)",
            ));
        }
    }
    match part.first() {
        None => {}
        Some(Example::Text { .. }) => {
            let items: Vec<(&str, Option<&str>)> = part
                .iter()
                .map(|e| match e {
                    Example::Text { a, b, .. } => (a.as_str(), b.as_deref()),
                    _ => unreachable!(),
                })
                .collect();
            let ids = enc.encode_texts(&items, opts.max_length)?;
            for (i, (e, row)) in part.iter().zip(ids).enumerate() {
                let label = e.label().map(Label::Class).unwrap_or(Label::None);
                out.push(Feature {
                    example: base + i,
                    rows: vec![row],
                    label,
                    offsets: Vec::new(),
                });
            }
        }
        Some(Example::Choice { .. }) => {
            let mut items: Vec<(&str, Option<&str>)> = Vec::new();
            for e in part {
                if let Example::Choice {
                    prompt, choices, ..
                } = e
                {
                    items.extend(choices.iter().map(|c| (prompt.as_str(), Some(c.as_str()))));
                }
            }
            let mut ids = enc.encode_texts(&items, opts.max_length)?.into_iter();
            for (i, e) in part.iter().enumerate() {
                if let Example::Choice { choices, label, .. } = e {
                    let rows: Vec<Vec<u32>> = ids.by_ref().take(choices.len()).collect();
                    out.push(Feature {
                        example: base + i,
                        rows,
                        label: label.map(Label::Class).unwrap_or(Label::None),
                        offsets: Vec::new(),
                    });
                }
            }
        }
        Some(Example::Span { .. }) => {
            let pairs: Vec<(&str, &str)> = part
                .iter()
                .map(|e| match e {
                    // HF run_qa.py strips the question's leading whitespace.
                    Example::Span {
                        question, context, ..
                    } => (question.trim_start(), context.as_str()),
                    _ => unreachable!(),
                })
                .collect();
            let wins = enc.encode_windows(
                &pairs,
                opts.max_length,
                opts.doc_stride,
                opts.max_query_length,
            )?;
            for (i, (e, w)) in part.iter().zip(wins).enumerate() {
                let Example::Span { answers, id, .. } = e else {
                    unreachable!()
                };
                let w = w.map_err(|m| {
                    Error::msg(format!("question {id} (line {}): cannot make windows of {} tokens: {m}; give a larger max_length{}", e.line(), opts.max_length, if opts.max_query_length.is_some() { " or a smaller max_query_length" } else { "" }))
                })?;
                let answer = answers
                    .first()
                    .map(|a| (a.start, a.start + a.text.chars().count()));
                for win in w {
                    let (start, end) = match answer {
                        Some((s, t)) => span_label(&win.offsets, s, t),
                        None => (0, 0),
                    };
                    out.push(Feature {
                        example: base + i,
                        rows: vec![win.ids],
                        label: Label::Span { start, end },
                        offsets: win.offsets,
                    });
                }
            }
        }
        Some(Example::Words { .. }) => {
            let sentences: Vec<&[String]> = part
                .iter()
                .map(|e| match e {
                    Example::Words { words, .. } => words.as_slice(),
                    _ => unreachable!(),
                })
                .collect();
            let encs = enc.encode_words(&sentences, opts.max_length)?;
            for (i, (e, (ids, word_ids))) in part.iter().zip(encs).enumerate() {
                let Example::Words { tags, .. } = e else {
                    unreachable!()
                };
                let label = match tags {
                    None => Label::None,
                    Some(tags) => Label::Tags(first_subtoken_tags(&word_ids, tags)),
                };
                out.push(Feature {
                    example: base + i,
                    rows: vec![ids],
                    label,
                    offsets: Vec::new(),
                });
            }
        }
    }
    Ok(())
}

/// HF `run_ner.py`: the word's tag on its first sub-token, -100 on the
/// others and on special tokens.
pub fn first_subtoken_tags(word_ids: &[Option<u32>], tags: &[usize]) -> Vec<i64> {
    let mut prev = None;
    word_ids
        .iter()
        .map(|w| {
            let v = match w {
                Some(w) if Some(*w) != prev => tags
                    .get(*w as usize)
                    .map(|&t| t as i64)
                    .unwrap_or(IGNORE_INDEX),
                _ => IGNORE_INDEX,
            };
            prev = *w;
            v
        })
        .collect()
}

/// HF `prepare_train_features`: the token span of the answer
/// `[start_char, end_char)` in a window, or `(0, 0)` (`<s>`) if the window
/// does not hold all of it.
pub fn span_label(
    offsets: &[Option<(usize, usize)>],
    start_char: usize,
    end_char: usize,
) -> (usize, usize) {
    let Some(first) = offsets.iter().position(Option::is_some) else {
        return (0, 0);
    };
    let Some(last) = offsets.iter().rposition(Option::is_some) else {
        return (0, 0);
    };
    let (Some((fs, _)), Some((_, le))) = (offsets[first], offsets[last]) else {
        return (0, 0);
    };
    if !(fs <= start_char && le >= end_char) {
        return (0, 0);
    }
    let mut s = first;
    while s <= last && offsets[s].is_some_and(|(a, _)| a <= start_char) {
        s += 1;
    }
    let mut e = last;
    while e >= first && offsets[e].is_some_and(|(_, b)| b >= end_char) {
        if e == 0 {
            break;
        }
        e -= 1;
    }
    (s - 1, e + 1)
}
