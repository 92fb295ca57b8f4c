//! Tiny random XLM-R models in Hugging Face layout: the fuel of the tests and
//! of the embedded quick start. A Unigram tokenizer is trained on the given
//! text, then a model of the requested shape is initialised the way
//! transformers initialises one, and both are written to a directory that
//! `Model::from_dir` (and transformers) can load.

use std::path::Path;

use candle_core::{DType, Device};

use super::{HeadKind, Model, Tokenizer, Variant, XlmrConfig};
use crate::error::Result;

/// The shape of a tiny model.
#[derive(Clone, Debug)]
pub struct TinySpec {
    /// The family member (default XLM-R base/large's post-LayerNorm).
    pub variant: Variant,
    /// Target vocabulary size of the trained tokenizer (it may come out
    /// smaller on little text; the model takes the real size).
    pub vocab_size: usize,
    /// Hidden size (default 32).
    pub hidden_size: usize,
    /// Number of transformer layers (default 2).
    pub num_layers: usize,
    /// Attention heads per layer; must divide `hidden_size` (default 4).
    pub num_heads: usize,
    /// Feed-forward inner width (default 64).
    pub intermediate_size: usize,
    /// Rows of the position table (default 130: inputs of up to 128 tokens,
    /// as XLM-R's positions start at 2).
    pub max_position_embeddings: usize,
    /// Seed of the weight initialisation (default 0).
    pub seed: u64,
}

impl Default for TinySpec {
    fn default() -> Self {
        TinySpec {
            variant: Variant::PostLayerNorm,
            vocab_size: 500,
            hidden_size: 32,
            num_layers: 2,
            num_heads: 4,
            intermediate_size: 64,
            max_position_embeddings: 130,
            seed: 0,
        }
    }
}

/// Builds a tiny model with a tokenizer trained on `texts` and the given
/// head (the saved config names it; `None` saves a pretrained-style
/// `...ForMaskedLM` config without head weights).
pub fn build(spec: &TinySpec, texts: &[String], head: HeadKind) -> Result<Model> {
    let tokenizer = Tokenizer::train_unigram(texts, spec.vocab_size)?;
    let config = XlmrConfig::new(
        spec.variant,
        tokenizer.vocab_size(),
        spec.hidden_size,
        spec.num_layers,
        spec.num_heads,
        spec.intermediate_size,
        spec.max_position_embeddings,
    )?
    .with_pad_token_id(tokenizer.pad_id());
    let mut model = Model::random(&config, head, spec.seed, &Device::Cpu, DType::F32)?;
    model.tokenizer = Some(tokenizer);
    Ok(model)
}

/// [`build`], then [`Model::save`] into `dir`.
pub fn write(spec: &TinySpec, texts: &[String], head: HeadKind, dir: &Path) -> Result<Model> {
    let model = build(spec, texts, head)?;
    model.save(dir)?;
    Ok(model)
}

/// A randomly initialised model of any shape (a named size included) that
/// uses an existing tokenizer, e.g. the real XLM-R `tokenizer.json`: the
/// vocabulary size comes from the tokenizer. For benchmarks at real sizes
/// with real text lengths (`stilts init`).
pub fn random_with_tokenizer(
    mut config: XlmrConfig,
    tokenizer: Tokenizer,
    head: HeadKind,
    seed: u64,
) -> Result<Model> {
    config.vocab_size = tokenizer.vocab_size();
    let config = config.with_pad_token_id(tokenizer.pad_id());
    let mut model = Model::random(&config, head, seed, &Device::Cpu, DType::F32)?;
    model.tokenizer = Some(tokenizer);
    Ok(model)
}
