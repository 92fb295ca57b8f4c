//! The model's tokenizer: Hugging Face `tokenizer.json` through the
//! `tokenizers` crate, encoding pairs exactly like transformers'
//! `XLMRobertaTokenizerFast` (`<s> A </s></s> B </s>`, longest-first
//! truncation including the special tokens).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokenizers::models::unigram::{Unigram, UnigramTrainer};
use tokenizers::models::TrainerWrapper;
use tokenizers::normalizers::unicode::NFKC;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, EncodeInput, PostProcessor, TruncationDirection, TruncationParams,
    TruncationStrategy,
};

use crate::error::{Error, Result};

/// A tokenizer and the file it came from.
#[derive(Clone)]
pub struct Tokenizer {
    /// Shared: cloning a model must not copy a 250k-entry vocabulary.
    inner: Arc<tokenizers::Tokenizer>,
    path: PathBuf,
    /// Copies of `inner` with truncation set, by max length: truncation is
    /// tokenizer state in the `tokenizers` crate, and cloning a 250k-entry
    /// vocabulary per call would dominate encoding time.
    truncating: Arc<Mutex<HashMap<usize, Arc<tokenizers::Tokenizer>>>>,
}

/// `<pad>` or `[PAD]` in a tokenizer's vocabulary (added tokens included).
pub fn pad_token_id(tok: &tokenizers::Tokenizer) -> Option<u32> {
    tok.token_to_id("<pad>")
        .or_else(|| tok.token_to_id("[PAD]"))
}

fn tok_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Tokenizer {
        path: path.to_path_buf(),
        msg: e.to_string(),
    }
}

impl Tokenizer {
    /// Loads a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(Error::Tokenizer {
                path: path.to_path_buf(),
                msg: "file not found".into(),
            });
        }
        let mut inner = tokenizers::Tokenizer::from_file(path).map_err(|e| tok_err(path, e))?;
        // We pad per batch ourselves; a saved padding setting must not interfere.
        inner.with_padding(None);
        Ok(Tokenizer {
            inner: Arc::new(inner),
            path: path.to_path_buf(),
            truncating: Default::default(),
        })
    }

    /// The file it was loaded from (`<trained tokenizer>` for one made by
    /// `train_unigram`); named in errors.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `tokenizers` tokenizer itself (no padding or truncation set),
    /// for what needs offsets or word ids (the task layer's features).
    pub fn inner(&self) -> &Arc<tokenizers::Tokenizer> {
        &self.inner
    }

    /// Vocabulary size including added tokens (`<mask>`).
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of the token spelled `token` (added tokens included), if the
    /// vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The id of `<pad>` (1 for XLM-R) or `[PAD]` (0 for BERT); 1 when
    /// the vocabulary has neither.
    pub fn pad_id(&self) -> u32 {
        self.find_pad_id().unwrap_or(1)
    }

    /// The padding token's id, if the vocabulary has `<pad>` or `[PAD]`.
    pub fn find_pad_id(&self) -> Option<u32> {
        pad_token_id(&self.inner)
    }

    /// BERT's segment separator: when this tokenizer gives the second text
    /// of a pair token type 1 (`[CLS] A [SEP] B [SEP]`), the id that ends
    /// the first segment; `None` when every token has type 0 (XLM-R's).
    pub fn segment_separator(&self) -> Option<u32> {
        let enc = self.inner.encode(("a", "b"), true).ok()?;
        let types = enc.get_type_ids();
        let first_b = types.iter().position(|&t| t == 1)?;
        first_b.checked_sub(1).map(|i| enc.get_ids()[i])
    }

    fn truncating(&self, max_length: usize) -> Result<Arc<tokenizers::Tokenizer>> {
        // tokenizers panics (subtract with overflow) when the special
        // tokens alone exceed the limit.
        let specials = self
            .inner
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(true));
        if max_length <= specials {
            return Err(Error::msg(format!("max_length {max_length} leaves no room for text: a pair already takes {specials} special tokens")));
        }
        let mut cache = self.truncating.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = cache.get(&max_length) {
            return Ok(t.clone());
        }
        let mut t = (*self.inner).clone();
        t.with_truncation(Some(TruncationParams {
            direction: TruncationDirection::Right,
            max_length,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        }))
        .map_err(|e| tok_err(&self.path, e))?;
        let t = Arc::new(t);
        cache.insert(max_length, t.clone());
        Ok(t)
    }

    /// Ids of one text or pair, with special tokens, at most `max_length`.
    pub fn encode(&self, first: &str, second: Option<&str>, max_length: usize) -> Result<Vec<u32>> {
        let t = self.truncating(max_length)?;
        let input: EncodeInput = match second {
            Some(b) => (first, b).into(),
            None => first.into(),
        };
        let enc = t.encode(input, true).map_err(|e| tok_err(&self.path, e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Encodes many texts or pairs on all cores.
    pub fn encode_batch(
        &self,
        items: &[(String, Option<String>)],
        max_length: usize,
    ) -> Result<Vec<Vec<u32>>> {
        let t = self.truncating(max_length)?;
        let inputs: Vec<EncodeInput> = items
            .iter()
            .map(|(a, b)| match b {
                Some(b) => (a.as_str(), b.as_str()).into(),
                None => a.as_str().into(),
            })
            .collect();
        let encs = t
            .encode_batch(inputs, true)
            .map_err(|e| tok_err(&self.path, e))?;
        Ok(encs.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// Writes `tokenizer.json`.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.inner.save(path, false).map_err(|e| tok_err(path, e))
    }

    /// A SHA-256 of the tokenizer's JSON (identifies it in caches and run records).
    pub fn fingerprint(&self) -> Result<String> {
        let json = self
            .inner
            .to_string(false)
            .map_err(|e| tok_err(&self.path, e))?;
        Ok(crate::util::sha256_hex(json.as_bytes()))
    }

    /// Trains a small SentencePiece-style Unigram tokenizer laid out like
    /// XLM-R's: `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, `<mask>` last,
    /// Metaspace pre-tokenization and XLM-R's pair template.
    pub fn train_unigram(texts: &[String], vocab_size: usize) -> Result<Self> {
        let path = PathBuf::from("<trained tokenizer>");
        let specials = ["<s>", "<pad>", "</s>", "<unk>"];
        let trainer = UnigramTrainer::builder()
            .vocab_size(vocab_size.saturating_sub(1) as u32)
            .special_tokens(
                specials
                    .iter()
                    .map(|s| AddedToken::from(*s, true))
                    .collect(),
            )
            .unk_token(Some("<unk>".into()))
            .show_progress(false)
            .build()
            .map_err(|e| tok_err(&path, e))?;
        let mut trainer = TrainerWrapper::UnigramTrainer(trainer);
        let template = TemplateProcessing::builder()
            .try_single("<s> $A </s>")
            .and_then(|b| b.try_pair("<s> $A </s> </s> $B </s>"))
            .map_err(|e| tok_err(&path, e))?
            .special_tokens(vec![("<s>", 0), ("</s>", 2)])
            .build()
            .map_err(|e| tok_err(&path, e))?;
        let mut inner = tokenizers::Tokenizer::new(Unigram::default());
        inner
            .with_normalizer(Some(NFKC))
            .map_err(|e| tok_err(&path, e))?;
        inner.with_pre_tokenizer(Some(Metaspace::new('▁', PrependScheme::Always, true)));
        inner.with_decoder(Some(Metaspace::new('▁', PrependScheme::Always, true)));
        inner.with_post_processor(Some(template));
        inner.train(&mut trainer, texts.iter()).map_err(|e| {
            let m = e.to_string();
            if m.contains("not large enough") {
                let need = min_unigram_vocab(texts);
                Error::msg(format!(
                    "cannot train a tokenizer with a vocabulary of {vocab_size} on this text: it holds {} distinct characters, and every one needs a piece of its own besides the 5 special tokens; give a vocabulary of at least {need} (vocab: {need} or more)",
                    need - 5
                ))
            } else {
                Error::msg(format!("training the tokenizer failed: {m}"))
            }
        })?;
        let canonical =
            canonical_vocab(inner.get_model(), &specials).map_err(|e| tok_err(&path, e))?;
        inner.with_model(canonical);
        inner
            .add_special_tokens(vec![AddedToken::from("<mask>", true)])
            .map_err(|e| tok_err(&path, e))?;
        let tok = Tokenizer {
            inner: Arc::new(inner),
            path,
            truncating: Default::default(),
        };
        for (i, s) in specials.iter().enumerate() {
            if tok.token_id(s) != Some(i as u32) {
                return Err(Error::msg(format!(
                    "trained tokenizer put {s} at {:?}, not {i}",
                    tok.token_id(s)
                )));
            }
        }
        Ok(tok)
    }
}

/// The smallest vocabulary the Unigram trainer accepts for `texts`: a piece
/// for every distinct character after NFKC (spaces become `▁`), plus the
/// four special tokens and `<mask>`.
pub fn min_unigram_vocab(texts: &[String]) -> usize {
    use tokenizers::{NormalizedString, Normalizer};
    let mut chars = std::collections::BTreeSet::new();
    for t in texts {
        let mut n = NormalizedString::from(t.as_str());
        let _ = NFKC.normalize(&mut n);
        for c in n.get().chars() {
            chars.insert(if c.is_whitespace() { '▁' } else { c });
        }
    }
    chars.insert('▁');
    chars.len() + 5
}

/// The trainer's `finalize` gives every required character the model lacks
/// the score `min_score + k·1e-4`, k counting up in the iteration order of a
/// randomly seeded hash set: the same characters get those scores in
/// another order on every run (seen on multilingual text: `Ε` in one run,
/// `后` in the next). The band is found from the lowest score up (single
/// characters at `min + k·1e-4` for k = 0, 1, 2, ... without a gap) and its
/// scores are handed out again in the characters' order, keeping the
/// multiset of scores: the same text then gives the same vocabulary.
fn canonical_required_chars(pieces: &mut [(String, f64)]) {
    const DELTA: f64 = 1e-4;
    let Some(min) = pieces.iter().map(|p| p.1).min_by(|a, b| a.total_cmp(b)) else {
        return;
    };
    let level = |score: f64| -> Option<usize> {
        let k = (score - min) / DELTA;
        (k >= -1e-6 && (k - k.round()).abs() < 1e-3).then(|| k.round() as usize)
    };
    let single = |p: &str| p.chars().count() == 1;
    let mut present = std::collections::BTreeSet::new();
    for (p, s) in pieces.iter() {
        if single(p) {
            if let Some(k) = level(*s) {
                present.insert(k);
            }
        }
    }
    // The band is k = 0..=top with no gap.
    let mut top = 0;
    while present.contains(&(top + 1)) {
        top += 1;
    }
    let mut idx: Vec<usize> = (0..pieces.len())
        .filter(|&i| single(&pieces[i].0) && level(pieces[i].1).is_some_and(|k| k <= top))
        .collect();
    let mut scores: Vec<f64> = idx
        .iter()
        .map(|&i| min + level(pieces[i].1).unwrap_or(0) as f64 * DELTA)
        .collect();
    scores.sort_by(|a, b| a.total_cmp(b));
    idx.sort_by(|&a, &b| pieces[a].0.cmp(&pieces[b].0));
    for (i, s) in idx.into_iter().zip(scores) {
        pieces[i].1 = s;
    }
}

/// The trained vocabulary in a canonical order: the specials first, then by
/// score (rounded: the trainer's last digits vary between runs) and piece.
/// The `tokenizers` Unigram trainer iterates hash maps, so the same text can
/// give pieces in another order, hence other ids; this makes `stilts tiny`
/// and the quick start reproducible.
fn canonical_vocab(
    model: &tokenizers::models::ModelWrapper,
    specials: &[&str],
) -> std::result::Result<Unigram, String> {
    let tokenizers::models::ModelWrapper::Unigram(u) = model else {
        return Err("the trainer did not produce a Unigram model".into());
    };
    let mut head: Vec<(String, f64)> = vec![];
    let mut rest: Vec<(String, f64)> = vec![];
    for (piece, score) in u.iter() {
        if specials.contains(&piece.as_str()) {
            head.push((piece.clone(), 0.0));
        } else {
            rest.push((piece.clone(), *score));
        }
    }
    canonical_required_chars(&mut rest);
    for p in &mut rest {
        p.1 = (p.1 * 1e6).round() / 1e6;
    }
    head.sort_by_key(|(p, _)| specials.iter().position(|s| s == p));
    rest.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let unk = specials.iter().position(|s| *s == "<unk>");
    head.extend(rest);
    Unigram::from(head, unk, false).map_err(|e| e.to_string())
}
