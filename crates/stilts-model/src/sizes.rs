//! Named sizes of the encoder family: what `xlmr-large` or `me5-small` means.

use super::config::Variant;

/// A published checkpoint: its hub id and shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SizeSpec {
    /// The short name a user types (`xlmr-large`, `me5-small`, ...).
    pub name: &'static str,
    /// The Hugging Face hub repository (`FacebookAI/xlm-roberta-large`).
    pub hub_id: &'static str,
    /// Older hub ids that name the same repository (and its cache folder).
    pub aliases: &'static [&'static str],
    /// The family member (LayerNorm placement and parameter names).
    pub variant: Variant,
    /// Number of transformer layers.
    pub layers: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Attention heads per layer.
    pub heads: usize,
    /// Feed-forward inner width.
    pub ffn: usize,
    /// Vocabulary size of the published checkpoint.
    pub vocab: usize,
    /// `max_position_embeddings` (514 for XLM-R: 512 tokens after the pad
    /// offset; 512 for BERT).
    pub positions: usize,
    /// Parameters as published (millions), encoder plus LM head.
    pub published_params_m: usize,
}

/// The sizes of the research question, smallest first: three BERT-family
/// multilingual encoders below the four XLM-R sizes.
pub const SIZES: &[SizeSpec] = &[
    SizeSpec {
        name: "mminilm",
        hub_id: "microsoft/Multilingual-MiniLM-L12-H384",
        aliases: &[],
        variant: Variant::Bert,
        layers: 12,
        hidden: 384,
        heads: 12,
        ffn: 1536,
        vocab: 250037,
        positions: 512,
        published_params_m: 117,
    },
    SizeSpec {
        name: "me5-small",
        hub_id: "intfloat/multilingual-e5-small",
        aliases: &[],
        variant: Variant::Bert,
        layers: 12,
        hidden: 384,
        heads: 12,
        ffn: 1536,
        vocab: 250037,
        positions: 512,
        published_params_m: 118,
    },
    SizeSpec {
        name: "mbert",
        hub_id: "google-bert/bert-base-multilingual-cased",
        aliases: &["bert-base-multilingual-cased"],
        variant: Variant::Bert,
        layers: 12,
        hidden: 768,
        heads: 12,
        ffn: 3072,
        vocab: 119547,
        positions: 512,
        published_params_m: 178,
    },
    SizeSpec {
        name: "xlmr-base",
        hub_id: "FacebookAI/xlm-roberta-base",
        aliases: &["xlm-roberta-base"],
        variant: Variant::PostLayerNorm,
        layers: 12,
        hidden: 768,
        heads: 12,
        ffn: 3072,
        vocab: 250002,
        positions: 514,
        published_params_m: 270,
    },
    SizeSpec {
        name: "xlmr-large",
        hub_id: "FacebookAI/xlm-roberta-large",
        aliases: &["xlm-roberta-large"],
        variant: Variant::PostLayerNorm,
        layers: 24,
        hidden: 1024,
        heads: 16,
        ffn: 4096,
        vocab: 250002,
        positions: 514,
        published_params_m: 550,
    },
    SizeSpec {
        name: "xlmr-xl",
        hub_id: "facebook/xlm-roberta-xl",
        aliases: &[],
        variant: Variant::PreLayerNorm,
        layers: 36,
        hidden: 2560,
        heads: 32,
        ffn: 10240,
        vocab: 250880,
        positions: 514,
        published_params_m: 3500,
    },
    SizeSpec {
        name: "xlmr-xxl",
        hub_id: "facebook/xlm-roberta-xxl",
        aliases: &[],
        variant: Variant::PreLayerNorm,
        layers: 48,
        hidden: 4096,
        heads: 32,
        ffn: 16384,
        vocab: 250880,
        positions: 514,
        published_params_m: 10700,
    },
];

/// The size called `name` (`xlmr-base`, ...), or whose hub id or alias is `name`.
pub fn size(name: &str) -> Option<&'static SizeSpec> {
    SIZES
        .iter()
        .find(|s| s.name == name || s.hub_id == name || s.aliases.contains(&name))
}

impl SizeSpec {
    /// The architecture of this size (its own vocabulary and position table).
    pub fn config(&self) -> crate::error::Result<super::XlmrConfig> {
        self.config_with_vocab(self.vocab)
    }

    /// The architecture with another vocabulary (a given tokenizer's).
    pub fn config_with_vocab(&self, vocab: usize) -> crate::error::Result<super::XlmrConfig> {
        super::XlmrConfig::new(
            self.variant,
            vocab,
            self.hidden,
            self.layers,
            self.heads,
            self.ffn,
            self.positions,
        )
    }
}

/// [`size`], or an error that lists the known sizes.
pub fn size_or_error(name: &str) -> crate::error::Result<&'static SizeSpec> {
    size(name).ok_or_else(|| {
        crate::error::Error::msg(format!(
            "unknown size `{name}`; sizes: {}",
            size_names().join(", ")
        ))
    })
}

/// Names accepted by [`size`], for messages.
pub fn size_names() -> Vec<&'static str> {
    SIZES.iter().map(|s| s.name).collect()
}
