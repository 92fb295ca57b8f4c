//! Tokenization for features: the same `tokenizer.json` as
//! [`stilts_model::Tokenizer`], loaded again here because features need
//! more than ids: character offsets and sequence ids (SQuAD windows), word
//! ids (tagging). Pairs are encoded exactly as the model tokenizer does
//! (`<s> A </s></s> B </s>`, longest-first truncation).
//!
//! Each call encodes its whole batch with `tokenizers`' parallel
//! `encode_batch*` (rayon, all cores); callers pass chunks of a few thousand
//! examples so memory stays bounded.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokenizers::{EncodeInput, TruncationDirection, TruncationParams, TruncationStrategy};

use stilts_model::error::{Error, Result};
use stilts_model::Tokenizer;

/// One window of a (question, context) pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Token ids: `<s> question </s></s> context slice </s>`.
    pub ids: Vec<u32>,
    /// For each token: its character span in the context, or `None` for
    /// question and special tokens (HF `run_qa.py` sets those to None).
    pub offsets: Vec<Option<(usize, usize)>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Mode {
    None,
    LongestFirst,
}

/// Ids of a pre-tokenized sentence and each token's word index.
pub type WordEncoding = (Vec<u32>, Vec<Option<u32>>);

/// The tokenizer of the features.
pub struct TextEncoder {
    /// Shared with the model's tokenizer (cloned only to set truncation).
    inner: Arc<tokenizers::Tokenizer>,
    path: PathBuf,
    fingerprint: std::sync::OnceLock<String>,
    configured: Mutex<HashMap<(Mode, usize, usize), Arc<tokenizers::Tokenizer>>>,
}

fn tok_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Tokenizer {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

impl TextEncoder {
    /// Loads a `tokenizer.json` (through [`Tokenizer::from_file`], which
    /// names the file in its errors); its fingerprint is the one
    /// [`Tokenizer::fingerprint`] gives for the same file.
    pub fn from_file(path: &Path) -> Result<Self> {
        Self::from_tokenizer(&Tokenizer::from_file(path)?)
    }

    /// The encoder for a model's tokenizer, in memory (no second load of
    /// the file, which takes seconds for XLM-R's 250k pieces).
    pub fn from_tokenizer(tok: &Tokenizer) -> Result<Self> {
        Ok(TextEncoder {
            inner: tok.inner().clone(),
            path: tok.path().to_path_buf(),
            fingerprint: Default::default(),
            configured: Mutex::new(HashMap::new()),
        })
    }

    /// The tokenizer file (as the model's tokenizer names it); named in errors.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// SHA-256 of the tokenizer's JSON, as [`Tokenizer::fingerprint`]
    /// (computed on first use: serialising the vocabulary takes a moment).
    pub fn fingerprint(&self) -> &str {
        self.fingerprint.get_or_init(|| {
            match self.inner.to_string(false) {
                Ok(json) => stilts_model::util::sha256_hex(json.as_bytes()),
                // Not expected; the file's own bytes still identify it.
                Err(_) => {
                    stilts_model::util::sha256_hex(&std::fs::read(&self.path).unwrap_or_default())
                }
            }
        })
    }

    /// The id of the token spelled `t` (added tokens included), if the
    /// vocabulary has it.
    pub fn token_id(&self, t: &str) -> Option<u32> {
        self.inner.token_to_id(t)
    }

    /// `<pad>` (1 for XLM-R) or `[PAD]` (0 for BERT), as [`Tokenizer::pad_id`].
    pub fn pad_id(&self) -> u32 {
        stilts_model::tokenizer::pad_token_id(&self.inner).unwrap_or(1)
    }

    /// `<s>` (0 for XLM-R), where unanswerable spans point.
    pub fn cls_id(&self) -> u32 {
        self.token_id("<s>").unwrap_or(0)
    }

    fn configured(
        &self,
        mode: Mode,
        max_length: usize,
        stride: usize,
    ) -> Result<Arc<tokenizers::Tokenizer>> {
        let mut map = self.configured.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = map.get(&(mode, max_length, stride)) {
            return Ok(t.clone());
        }
        let mut t = (*self.inner).clone();
        let strategy = match mode {
            Mode::None => None,
            Mode::LongestFirst => Some(TruncationStrategy::LongestFirst),
        };
        t.with_truncation(strategy.map(|strategy| TruncationParams {
            direction: TruncationDirection::Right,
            max_length,
            strategy,
            stride,
        }))
        .map_err(|e| tok_err(&self.path, e))?;
        let t = Arc::new(t);
        map.insert((mode, max_length, stride), t.clone());
        Ok(t)
    }

    /// Ids of texts or pairs with special tokens, at most `max_length` each
    /// (longest-first truncation), on all cores.
    pub fn encode_texts(
        &self,
        items: &[(&str, Option<&str>)],
        max_length: usize,
    ) -> Result<Vec<Vec<u32>>> {
        let t = self.configured(Mode::LongestFirst, max_length, 0)?;
        let inputs: Vec<EncodeInput> = items
            .iter()
            .map(|&(a, b)| match b {
                Some(b) => (a, b).into(),
                None => a.into(),
            })
            .collect();
        let encs = t
            .encode_batch_fast(inputs, true)
            .map_err(|e| tok_err(&self.path, e))?;
        Ok(encs.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// Pre-tokenized sentences (one string per word): ids and, for each
    /// token, the index of its word (`None` for special tokens). Each word is
    /// encoded as a word of its own (XLM-R: with its own `▁`), as
    /// transformers' `is_split_into_words=True`.
    pub fn encode_words(
        &self,
        sentences: &[&[String]],
        max_length: usize,
    ) -> Result<Vec<WordEncoding>> {
        let t = self.configured(Mode::LongestFirst, max_length, 0)?;
        let inputs: Vec<EncodeInput> = sentences.iter().map(|w| EncodeInput::from(*w)).collect();
        let encs = t
            .encode_batch(inputs, true)
            .map_err(|e| tok_err(&self.path, e))?;
        Ok(encs
            .into_iter()
            .map(|e| (e.get_ids().to_vec(), e.get_word_ids().to_vec()))
            .collect())
    }

    /// (question, context) pairs in windows of at most `max_length` tokens,
    /// the context truncated "only_second" with `stride` tokens of overlap
    /// between windows (HF `run_qa.py`: `truncation="only_second"`,
    /// `return_overflowing_tokens=True`, `stride=doc_stride`), each window
    /// `<s> question </s></s> context-part </s>`. Offsets are in characters
    /// of the context. A pair that cannot be windowed (the question leaves
    /// no more room than the stride) gets its message instead.
    ///
    /// The texts are tokenized in full (each context once, however many
    /// questions share it) and cut into windows here, the way `tokenizers`'
    /// `Encoding::truncate` does (checked window for window against
    /// `tokenizers` 0.23.3 in Python on SQuAD v1.1 dev). Not through
    /// `tokenizers` itself: 0.23.2 stops tokenizing a sequence at
    /// `max_length` tokens when truncation is set, which silently drops every
    /// window past the first `max_length` context tokens.
    pub fn encode_windows(
        &self,
        pairs: &[(&str, &str)],
        max_length: usize,
        stride: usize,
        max_query: Option<usize>,
    ) -> Result<Vec<std::result::Result<Vec<Window>, String>>> {
        use rayon::prelude::*;
        let raw = self.configured(Mode::None, 0, 0)?;
        let (cls, sep) = (self.cls_id(), self.token_id("</s>").unwrap_or(2));
        let qs = raw
            .encode_batch_fast(pairs.iter().map(|p| p.0).collect::<Vec<_>>(), false)
            .map_err(|e| tok_err(&self.path, e))?;
        // Several questions share a context (about 5 in SQuAD): encode each once.
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut unique: Vec<&str> = Vec::new();
        let which: Vec<usize> = pairs
            .iter()
            .map(|p| {
                *index.entry(p.1).or_insert_with(|| {
                    unique.push(p.1);
                    unique.len() - 1
                })
            })
            .collect();
        let cs = raw
            .encode_batch_char_offsets(unique, false)
            .map_err(|e| tok_err(&self.path, e))?;
        Ok(qs
            .par_iter()
            .zip(which)
            .map(|(q, ci)| {
                let (q, c) = (q.get_ids(), &cs[ci]);
                // A long question is cut (XTREME's and jiant's max_query_length).
                let q = &q[..q.len().min(max_query.unwrap_or(usize::MAX))];
                let (cids, coff) = (c.get_ids(), c.get_offsets());
                let room = max_length.saturating_sub(q.len() + 4);
                if room == 0 && !cids.is_empty() {
                    return Err(format!(
                        "the question takes {} tokens, leaving no room for the context",
                        q.len()
                    ));
                }
                // Windows overlap by `stride` tokens where the room allows,
                // else by half the room (a long question in a short window).
                let stride = if room <= stride { room / 2 } else { stride };
                let mut parts = Vec::new();
                if cids.len() <= room {
                    parts.push((0, cids.len()));
                } else {
                    let mut start = 0;
                    loop {
                        let stop = (start + room).min(cids.len());
                        parts.push((start, stop));
                        if stop == cids.len() {
                            break;
                        }
                        start += room - stride;
                    }
                }
                Ok(parts
                    .into_iter()
                    .map(|(a, b)| {
                        let n = q.len() + 4 + b - a;
                        let mut ids = Vec::with_capacity(n);
                        ids.push(cls);
                        ids.extend_from_slice(q);
                        ids.extend_from_slice(&[sep, sep]);
                        ids.extend_from_slice(&cids[a..b]);
                        ids.push(sep);
                        let mut offsets = vec![None; q.len() + 3];
                        offsets.extend(coff[a..b].iter().map(|&o| Some(o)));
                        offsets.push(None);
                        Window { ids, offsets }
                    })
                    .collect())
            })
            .collect())
    }

    /// The length in tokens of each question (no special tokens).
    pub fn question_lengths(&self, questions: &[&str]) -> Result<Vec<usize>> {
        let raw = self.configured(Mode::None, 0, 0)?;
        Ok(raw
            .encode_batch_fast(questions.to_vec(), false)
            .map_err(|e| tok_err(&self.path, e))?
            .iter()
            .map(|q| q.get_ids().len())
            .collect())
    }

    /// Text of `ids` (special tokens left out).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| tok_err(&self.path, e))
    }
}
