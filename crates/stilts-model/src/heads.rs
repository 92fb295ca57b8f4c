//! Task heads on top of the encoder, with transformers' names, so HF
//! fine-tuned checkpoints load and ours load in HF.

use candle_core::{DType, Tensor, D};

use super::config::{Variant, XlmrConfig};
use super::encoder::{Encoder, Inputs, LayerNorm, Linear, TokensRead};
use super::loss::cross_entropy;
use super::ops::{dropout, DropoutRng};
use super::params::{ParamBuilder, ParamStore};
use crate::error::{Error, Result};

/// What a head predicts. Labels are kept by name (`id2label`). The names
/// are transformers' for each variant (XLM-R / BERT):
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum HeadKind {
    /// One label per sequence or pair. XLM-R: `classifier.dense` -> tanh ->
    /// `classifier.out_proj`; BERT: `bert.pooler.dense` -> tanh -> `classifier`.
    Classification {
        /// Label names in id order (`id2label`); building the head needs at
        /// least one.
        labels: Vec<String>,
    },
    /// One score per candidate: `roberta.pooler.dense` / `bert.pooler.dense`
    /// -> tanh -> `classifier` (1 logit).
    MultipleChoice,
    /// Start and end logits per token: `qa_outputs` (2 logits).
    SpanQa,
    /// One label per token: `classifier`.
    Tagging {
        /// Tag names in id order (`id2label`); building the head needs at
        /// least one.
        labels: Vec<String>,
    },
    /// Masked language modelling: `lm_head.dense` -> GELU ->
    /// `lm_head.layer_norm` -> the word embeddings (tied) + `lm_head.bias`
    /// (BERT: `cls.predictions.transform.{dense,LayerNorm}`, `cls.predictions.bias`).
    MaskedLm,
}

impl HeadKind {
    /// Short name used in messages and scripts.
    pub fn name(&self) -> &'static str {
        match self {
            HeadKind::Classification { .. } => "classification",
            HeadKind::MultipleChoice => "multiple_choice",
            HeadKind::SpanQa => "span_qa",
            HeadKind::Tagging { .. } => "tagging",
            HeadKind::MaskedLm => "masked_lm",
        }
    }

    /// transformers' class for this head on `variant`.
    pub fn architecture(&self, variant: Variant) -> String {
        let suffix = match self {
            HeadKind::Classification { .. } => "ForSequenceClassification",
            HeadKind::MultipleChoice => "ForMultipleChoice",
            HeadKind::SpanQa => "ForQuestionAnswering",
            HeadKind::Tagging { .. } => "ForTokenClassification",
            HeadKind::MaskedLm => "ForMaskedLM",
        };
        format!("{}{suffix}", variant.class_prefix())
    }

    /// The task head a transformers class name stands for (labels from
    /// id2label). `...ForMaskedLM` is a pretrained checkpoint, not a task
    /// model: it gives `None`, and the caller chooses a head.
    pub fn from_architecture(arch: &str, labels: &[String]) -> Option<Self> {
        let labels = labels.to_vec();
        if arch.ends_with("ForSequenceClassification") {
            Some(HeadKind::Classification { labels })
        } else if arch.ends_with("ForMultipleChoice") {
            Some(HeadKind::MultipleChoice)
        } else if arch.ends_with("ForQuestionAnswering") {
            Some(HeadKind::SpanQa)
        } else if arch.ends_with("ForTokenClassification") {
            Some(HeadKind::Tagging { labels })
        } else {
            None
        }
    }

    /// The label names of a classification or tagging head; empty for the
    /// other heads.
    pub fn labels(&self) -> &[String] {
        match self {
            HeadKind::Classification { labels } | HeadKind::Tagging { labels } => labels,
            _ => &[],
        }
    }
}

enum Layers {
    Classification {
        dense: Linear,
        out_proj: Linear,
    },
    /// The pooler (first token -> dense -> tanh), dropout, a linear
    /// classifier: XLM-R's multiple choice, BERT's classification and
    /// multiple choice. `choices`: the rows are candidates, one logit each.
    Pooled {
        pooler: Linear,
        classifier: Linear,
        choices: bool,
    },
    SpanQa {
        qa_outputs: Linear,
    },
    Tagging {
        classifier: Linear,
    },
    MaskedLm {
        dense: Linear,
        layer_norm: LayerNorm,
        decoder: Tensor,
        bias: Tensor,
        act: super::ops::Activation,
    },
}

/// A head with its parameters.
#[derive(Clone)]
pub struct Head {
    /// What the head predicts (and its label names).
    pub kind: HeadKind,
    params: ParamStore,
    layers: std::sync::Arc<Layers>,
    dropout: f64,
    /// dtype of the matmuls (see `Encoder::compute_dtype`).
    pub compute_dtype: DType,
}

/// What a head produced for a batch.
#[derive(Clone, Debug)]
pub enum Output {
    /// `[B, labels]` for classification, `[B, choices]` for multiple choice,
    /// `[B, T, labels]` for tagging.
    Logits(Tensor),
    /// Span QA scores per token, `[B, T]` each.
    Span {
        /// Logit that the answer starts at each token, `[B, T]`.
        start: Tensor,
        /// Logit that the answer ends at each token, `[B, T]`.
        end: Tensor,
    },
}

impl Output {
    /// The logits of a `Logits` output.
    pub fn logits(&self) -> Result<&Tensor> {
        match self {
            Output::Logits(t) => Ok(t),
            Output::Span { .. } => Err(Error::msg(
                "this head predicts spans (start/end), not logits",
            )),
        }
    }
}

/// Gold answers for a batch, matching the head.
#[derive(Clone, Debug)]
pub enum Target {
    /// `[B]` class or choice index (i64, -100 skips).
    Class(Tensor),
    /// `[B]` start and end token positions (i64).
    Span {
        /// `[B]` index of the answer's first token; the loss skips a
        /// position at or past `T` (and clamps a negative one to 0).
        start: Tensor,
        /// `[B]` index of the answer's last token; the loss treats it like
        /// `start`.
        end: Tensor,
    },
    /// `[B, T]` label per token (i64, -100 skips).
    Tags(Tensor),
}

impl Head {
    /// Builds a head for `kind` on `encoder` from `pb` (checkpoint or fresh
    /// init). The MLM decoder is the encoder's word embedding matrix (tied,
    /// as in transformers), so it is not a parameter of its own.
    pub fn build(
        config: &XlmrConfig,
        kind: HeadKind,
        pb: &mut ParamBuilder,
        encoder: &Encoder,
    ) -> Result<Self> {
        let h = config.hidden_size;
        let bert = config.variant == Variant::Bert;
        let pooler = format!("{}.pooler.dense", config.variant.prefix());
        let mut st = ParamStore::new();
        let s = &mut st;
        let need_labels = |labels: &Vec<String>| {
            if labels.is_empty() {
                Err(Error::msg(format!(
                    "a {} head needs at least one label name",
                    kind.name()
                )))
            } else {
                Ok(labels.len())
            }
        };
        let (layers, p) = match &kind {
            HeadKind::Classification { labels } if bert => {
                let n = need_labels(labels)?;
                (
                    Layers::Pooled {
                        pooler: Linear::build(pb, s, &pooler, h, h)?,
                        classifier: Linear::build(pb, s, "classifier", h, n)?,
                        choices: false,
                    },
                    config.classifier_dropout(),
                )
            }
            HeadKind::Classification { labels } => {
                let n = need_labels(labels)?;
                (
                    Layers::Classification {
                        dense: Linear::build(pb, s, "classifier.dense", h, h)?,
                        out_proj: Linear::build(pb, s, "classifier.out_proj", h, n)?,
                    },
                    config.classifier_dropout(),
                )
            }
            HeadKind::MultipleChoice => (
                Layers::Pooled {
                    pooler: Linear::build(pb, s, &pooler, h, h)?,
                    classifier: Linear::build(pb, s, "classifier", h, 1)?,
                    choices: true,
                },
                // BertForMultipleChoice honours classifier_dropout; XLM-R's does not.
                if bert {
                    config.classifier_dropout()
                } else {
                    config.hidden_dropout_prob
                },
            ),
            HeadKind::SpanQa => (
                Layers::SpanQa {
                    qa_outputs: Linear::build(pb, s, "qa_outputs", h, 2)?,
                },
                0.0,
            ),
            HeadKind::Tagging { labels } => {
                let n = need_labels(labels)?;
                (
                    Layers::Tagging {
                        classifier: Linear::build(pb, s, "classifier", h, n)?,
                    },
                    config.classifier_dropout(),
                )
            }
            HeadKind::MaskedLm => {
                let (dense, norm, bias, decoder) = if bert {
                    (
                        "cls.predictions.transform.dense",
                        "cls.predictions.transform.LayerNorm",
                        "cls.predictions.bias",
                        "cls.predictions.decoder",
                    )
                } else {
                    (
                        "lm_head.dense",
                        "lm_head.layer_norm",
                        "lm_head.bias",
                        "lm_head.decoder",
                    )
                };
                // Tied copies in some checkpoints: the same values as the embeddings / bias.
                pb.mark_tied(&format!("{decoder}.weight"));
                pb.mark_tied(&format!("{decoder}.bias"));
                (
                    Layers::MaskedLm {
                        dense: Linear::build(pb, s, dense, h, h)?,
                        layer_norm: LayerNorm::build(pb, s, norm, h, config.layer_norm_eps)?,
                        decoder: encoder.word_embeddings().clone(),
                        bias: pb.take(s, bias, &[config.vocab_size], super::params::Init::Zeros)?,
                        act: config.hidden_act,
                    },
                    0.0,
                )
            }
        };
        let compute_dtype = match &layers {
            Layers::Classification { dense: l, .. }
            | Layers::Pooled { pooler: l, .. }
            | Layers::SpanQa { qa_outputs: l }
            | Layers::Tagging { classifier: l }
            | Layers::MaskedLm { dense: l, .. } => l.weight.dtype(),
        };
        Ok(Head {
            kind,
            params: st,
            layers: std::sync::Arc::new(layers),
            dropout: p,
            compute_dtype,
        })
    }

    /// The head's own trainable parameters by Hugging Face name (not the
    /// tied MLM decoder, which is the encoder's word embedding).
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// Which rows of the encoder's output the head reads: the first
    /// token's for sequence classification and multiple choice, every
    /// token's for the others.
    pub fn tokens_read(&self) -> TokensRead {
        match &*self.layers {
            Layers::Classification { .. } | Layers::Pooled { .. } => TokensRead::First,
            _ => TokensRead::All,
        }
    }

    /// Applies the head to the encoder's hidden states `[B*choices, T, H]`.
    pub fn forward(
        &self,
        hidden: &Tensor,
        inputs: &Inputs,
        mut rng: Option<&mut DropoutRng>,
    ) -> Result<Output> {
        let p = self.dropout;
        let cdt = self.compute_dtype;
        super::ops::begin_dropout_block(rng.as_deref_mut(), hidden.device())?;
        Ok(match &*self.layers {
            Layers::Classification { dense, out_proj } => {
                let x = dropout(&Encoder::first_token(hidden)?, p, rng.as_deref_mut())?;
                let x = dense.forward(&x, cdt)?.tanh()?;
                let x = dropout(&x, p, rng.as_deref_mut())?;
                Output::Logits(out_proj.forward(&x, cdt)?)
            }
            Layers::Pooled {
                pooler,
                classifier,
                choices,
            } => {
                let pooled = pooler
                    .forward(&Encoder::first_token(hidden)?, cdt)?
                    .tanh()?;
                let pooled = dropout(&pooled, p, rng.as_deref_mut())?;
                let scores = classifier.forward(&pooled, cdt)?;
                if !choices {
                    return Ok(Output::Logits(scores));
                }
                let rows = scores.dim(0)?;
                if rows % inputs.choices != 0 {
                    return Err(Error::msg(format!(
                        "{rows} rows do not split into groups of {} choices",
                        inputs.choices
                    )));
                }
                Output::Logits(scores.reshape((rows / inputs.choices, inputs.choices))?)
            }
            Layers::SpanQa { qa_outputs } => {
                let logits = qa_outputs.forward(hidden, cdt)?;
                Output::Span {
                    start: logits
                        .narrow(D::Minus1, 0, 1)?
                        .squeeze(D::Minus1)?
                        .contiguous()?,
                    end: logits
                        .narrow(D::Minus1, 1, 1)?
                        .squeeze(D::Minus1)?
                        .contiguous()?,
                }
            }
            Layers::Tagging { classifier } => {
                Output::Logits(classifier.forward(&dropout(hidden, p, rng.as_deref_mut())?, cdt)?)
            }
            Layers::MaskedLm {
                dense,
                layer_norm,
                decoder,
                bias,
                act,
            } => {
                let x = layer_norm.forward(&act.apply(&dense.forward(hidden, cdt)?)?)?;
                let (b, t, hd) = x.dims3()?;
                let logits = x
                    .to_dtype(cdt)?
                    .reshape((b * t, hd))?
                    .matmul(&decoder.to_dtype(cdt)?.t()?)?
                    .to_dtype(x.dtype())?;
                Output::Logits(logits.broadcast_add(bias)?.reshape((b, t, ()))?)
            }
        })
    }

    /// transformers' loss for this head: cross-entropy over labels, choices,
    /// tags (skipping -100), or the mean of start and end cross-entropies
    /// (positions outside the sequence are skipped).
    pub fn loss(&self, output: &Output, target: &Target) -> Result<Tensor> {
        Ok(match (output, target) {
            (Output::Logits(l), Target::Class(y)) if l.rank() == 2 => cross_entropy(l, y)?,
            (Output::Logits(l), Target::Tags(y)) if l.rank() == 3 => {
                let (b, t, c) = l.dims3()?;
                cross_entropy(&l.reshape((b * t, c))?, &y.reshape(b * t)?)?
            }
            (Output::Span { start, end }, Target::Span { start: ys, end: ye }) => {
                let t = start.dim(1)? as i64;
                // transformers clamps to [0, T] and ignores T.
                let fix = |y: &Tensor| -> candle_core::Result<Tensor> {
                    let y = y.to_dtype(DType::I64)?.clamp(0i64, t)?;
                    let outside = y.eq(t)?;
                    outside.where_cond(&Tensor::full(super::loss::IGNORE_INDEX, y.shape(), y.device())?, &y)
                };
                let ls = cross_entropy(start, &fix(ys)?)?;
                let le = cross_entropy(end, &fix(ye)?)?;
                ((ls + le)? / 2.0)?
            }
            _ => {
                return Err(Error::msg(format!(
                    "the targets do not fit a {} head (classification needs class ids, span_qa start/end positions, tagging one label per token)",
                    self.kind.name()
                )))
            }
        })
    }

    /// The same head on `encoder` (a [`Encoder::with_frozen`] view), its
    /// parameters shared, those named in `frozen` as plain tensors.
    pub fn with_frozen(
        &self,
        config: &XlmrConfig,
        encoder: &Encoder,
        frozen: &std::collections::BTreeSet<String>,
    ) -> Result<Self> {
        let mut pb = ParamBuilder::shared(&self.params, frozen, encoder.device(), encoder.dtype());
        let mut head = Head::build(config, self.kind.clone(), &mut pb, encoder)?;
        head.compute_dtype = self.compute_dtype;
        Ok(head)
    }

    /// The same head (weights shared) with its dropout probability set to
    /// `p`, where it has dropout (classification, multiple choice, tagging;
    /// span QA and MLM have none, as in transformers).
    pub fn with_dropout(mut self, p: f64) -> Self {
        if matches!(
            &*self.layers,
            Layers::Classification { .. } | Layers::Pooled { .. } | Layers::Tagging { .. }
        ) {
            self.dropout = p;
        }
        self
    }

    /// A copy of the head in another dtype or on another device.
    /// (`encoder` is the copy the head will sit on.)
    pub fn to(
        &self,
        config: &XlmrConfig,
        encoder: &Encoder,
        device: &candle_core::Device,
        dtype: DType,
    ) -> Result<Self> {
        let mut pb = ParamBuilder::detached(&self.params, config.initializer_range, device, dtype);
        Head::build(config, self.kind.clone(), &mut pb, encoder)
    }
}
