//! The encoder family: post-LayerNorm XLM-R (base, large), pre-LayerNorm
//! XLM-R (XL, XXL) and BERT, with transformers' parameter names under
//! `roberta.` / `bert.`. One network; the variant decides the LayerNorm
//! placement, the names, and the position-id rule ([`PositionRule`]).

use std::collections::BTreeSet;

use candle_core::{DType, Device, Tensor};

use super::config::{PositionRule, Variant, XlmrConfig};
use super::cpu_matmul::{attention_inference, batched_matmul, linear_gelu_inference};
use super::layer_cpu;
use super::ops::{
    add_layer_norm, attention_bias, begin_dropout_block, cpu_f32_without_graph, dropout,
    layer_norm, masked_softmax, Activation, DropoutRng,
};
use super::params::{Init, ParamBuilder, ParamStore};
use crate::error::Result;

type CResult<T> = candle_core::Result<T>;

/// A dense layer `y = x W^T + b` (PyTorch's weight layout).
#[derive(Clone)]
pub struct Linear {
    /// `W`, `[out, in]`.
    pub weight: Tensor,
    /// `b`, `[out]`.
    pub bias: Tensor,
}

impl Linear {
    /// Takes `{name}.weight` `[out, in]` and `{name}.bias` `[out]`.
    pub fn build(
        pb: &mut ParamBuilder,
        store: &mut ParamStore,
        name: &str,
        inp: usize,
        out: usize,
    ) -> Result<Self> {
        Ok(Linear {
            weight: pb.take(store, &format!("{name}.weight"), &[out, inp], Init::Normal)?,
            bias: pb.take(store, &format!("{name}.bias"), &[out], Init::Zeros)?,
        })
    }

    /// `compute` is the dtype of the matmul (bf16 under mixed precision);
    /// the result comes back in `x`'s dtype.
    pub fn forward(&self, x: &Tensor, compute: DType) -> CResult<Tensor> {
        if compute == x.dtype() && self.weight.dtype() == compute {
            // One op: the bias goes in with the product (fused on the CPU).
            return match x.dims() {
                [b, t, k] => {
                    super::cpu_matmul::linear(&x.reshape((b * t, *k))?, &self.weight, &self.bias)?
                        .reshape((*b, *t, ()))
                }
                _ => super::cpu_matmul::linear(x, &self.weight, &self.bias),
            };
        }
        let w = self.weight.to_dtype(compute)?.t()?;
        let xc = x.to_dtype(compute)?;
        let y = match xc.dims() {
            [b, t, k] => xc.reshape((b * t, *k))?.matmul(&w)?.reshape((*b, *t, ()))?,
            _ => xc.matmul(&w)?,
        };
        y.to_dtype(x.dtype())?.broadcast_add(&self.bias)
    }

    /// `act(x W^T + b)`; in evaluation on the CPU the GELU runs inside the
    /// product's op (no second pass over a new tensor).
    pub fn forward_activated(
        &self,
        x: &Tensor,
        compute: DType,
        act: Activation,
    ) -> CResult<Tensor> {
        if act == Activation::Gelu && compute == x.dtype() && self.weight.dtype() == compute {
            if let [b, t, k] = x.dims() {
                let flat = x.reshape((b * t, *k))?;
                if let Some(y) = linear_gelu_inference(&flat, &self.weight, &self.bias)? {
                    return y.reshape((*b, *t, ()));
                }
            }
        }
        act.apply(&self.forward(x, compute)?)
    }
}

/// LayerNorm over the last dimension with a learned scale and shift
/// (PyTorch's `nn.LayerNorm`).
#[derive(Clone)]
pub struct LayerNorm {
    /// The scale, `[dim]` (initialised to ones).
    pub weight: Tensor,
    /// The shift, `[dim]` (initialised to zeros).
    pub bias: Tensor,
    /// Added to the variance before the square root (config's `layer_norm_eps`).
    pub eps: f64,
}

impl LayerNorm {
    /// Takes `{name}.weight` and `{name}.bias`, `[dim]` each.
    pub fn build(
        pb: &mut ParamBuilder,
        store: &mut ParamStore,
        name: &str,
        dim: usize,
        eps: f64,
    ) -> Result<Self> {
        Ok(LayerNorm {
            weight: pb.take(store, &format!("{name}.weight"), &[dim], Init::Ones)?,
            bias: pb.take(store, &format!("{name}.bias"), &[dim], Init::Zeros)?,
            eps,
        })
    }

    /// `(x - mean) / sqrt(var + eps) * weight + bias` over `x`'s last dimension.
    pub fn forward(&self, x: &Tensor) -> CResult<Tensor> {
        layer_norm(x, &self.weight, &self.bias, self.eps)
    }

    /// `LayerNorm(x + residual)`, one pass in evaluation on the CPU.
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor) -> CResult<Tensor> {
        add_layer_norm(x, residual, &self.weight, &self.bias, self.eps)
    }
}

/// Token ids of one batch on the device, padded, with their attention mask
/// and RoBERTa position ids (a BERT encoder numbers positions from 0 itself
/// and ignores `position_ids`).
#[derive(Clone, Debug)]
pub struct Inputs {
    /// `[B, T]` u32.
    pub input_ids: Tensor,
    /// `[B, T]` u32, 1 for real tokens and 0 for padding.
    pub attention_mask: Tensor,
    /// `[B, T]` u32: `pad + cumulative count of real tokens` (pad where padded).
    pub position_ids: Tensor,
    /// `[B, T]` u32, all zero for XLM-R (one segment type).
    pub token_type_ids: Tensor,
    /// Rows per example: 1, or the number of choices of a multiple-choice
    /// batch (its rows are example-major: all choices of example 0 first).
    pub choices: usize,
    /// The largest position id, known on the host (checking it against the
    /// position table must not read back from the device: no sync).
    max_position: u32,
    /// The padding id the rows were padded with (and `position_ids` counted
    /// from); an encoder whose config.json says otherwise refuses the batch.
    pad_id: u32,
    /// The longest row's length (`T`), for BERT's positions `0..T`.
    seq_len: usize,
}

impl Inputs {
    /// Pads `rows` to the longest one with `pad_id` (dynamic padding).
    pub fn pad(rows: &[Vec<u32>], pad_id: u32, device: &Device) -> Result<Self> {
        let t = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(rows.len() * t);
        let mut mask = Vec::with_capacity(rows.len() * t);
        for r in rows {
            ids.extend_from_slice(r);
            ids.extend(std::iter::repeat_n(pad_id, t - r.len()));
            mask.extend(std::iter::repeat_n(1u32, r.len()));
            mask.extend(std::iter::repeat_n(0u32, t - r.len()));
        }
        Self::from_flat(ids, mask, rows.len(), t, pad_id, device)
    }

    /// From given ids and mask (`[B, T]` each, row-major); positions follow
    /// transformers' `create_position_ids_from_input_ids`, which looks at the
    /// ids (not the mask): every non-pad id counts.
    pub fn from_flat(
        ids: Vec<u32>,
        mask: Vec<u32>,
        b: usize,
        t: usize,
        pad_id: u32,
        device: &Device,
    ) -> Result<Self> {
        let mut pos = Vec::with_capacity(ids.len());
        for row in ids.chunks(t) {
            let mut count = 0u32;
            for &id in row {
                if id != pad_id {
                    count += 1;
                    pos.push(pad_id + count);
                } else {
                    pos.push(pad_id);
                }
            }
        }
        let max_position = pos.iter().copied().max().unwrap_or(pad_id);
        Ok(Inputs {
            max_position,
            pad_id,
            seq_len: t,
            input_ids: Tensor::from_vec(ids, (b, t), device)?,
            attention_mask: Tensor::from_vec(mask, (b, t), device)?,
            position_ids: Tensor::from_vec(pos, (b, t), device)?,
            token_type_ids: Tensor::zeros((b, t), DType::U32, device)?,
            choices: 1,
        })
    }

    /// Marks the rows as `choices` candidates per example (multiple choice).
    pub fn with_choices(mut self, choices: usize) -> Self {
        self.choices = choices.max(1);
        self
    }

    /// `(B, T)`: the number of rows and their padded length in tokens.
    pub fn dims(&self) -> CResult<(usize, usize)> {
        self.input_ids.dims2()
    }

    /// The padding id these rows were built with.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Largest position id `rule` gives these rows, for checking against
    /// the position table.
    fn max_position(&self, rule: PositionRule) -> usize {
        match rule {
            PositionRule::AfterPad => self.max_position as usize,
            PositionRule::FromZero => self.seq_len.saturating_sub(1),
        }
    }
}

struct Embeddings {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    layer_norm: Option<LayerNorm>,
}

struct SelfAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    output: Linear,
    heads: usize,
}

impl SelfAttention {
    fn forward(
        &self,
        x: &Tensor,
        bias: &Tensor,
        p_attn: f64,
        cdt: DType,
        rng: &mut Option<&mut DropoutRng>,
    ) -> CResult<Tensor> {
        let (b, t, h) = x.dims3()?;
        let hd = h / self.heads;
        // [B, T, H] -> [B, heads, T, hd] as a view: `batched_matmul` reads
        // any strides (candle's matmul needs a contiguous copy).
        let split = |y: Tensor| -> CResult<Tensor> {
            y.to_dtype(cdt)?
                .reshape((b, t, self.heads, hd))?
                .transpose(1, 2)
        };
        let scale = 1.0 / (hd as f64).sqrt();
        let packed = match rng {
            None => self.packed_qkv(x, cdt)?,
            Some(_) => None,
        };
        let (q, k, v) = match packed {
            Some(qkv) => qkv,
            None => (
                split(self.query.forward(x, cdt)?)?,
                split(self.key.forward(x, cdt)?)?,
                split(self.value.forward(x, cdt)?)?,
            ),
        };
        if rng.is_none() {
            // Evaluation: one fused pass per (batch, head) where it applies.
            if let Some(ctx) = attention_inference(&q, &k, &v, bias, scale)? {
                return self.output.forward(&ctx, cdt);
            }
        }
        let scores = batched_matmul(&q, &k.transpose(2, 3)?)?.to_dtype(x.dtype())?;
        let probs = masked_softmax(&scores, bias, scale)?;
        let probs = dropout(&probs, p_attn, rng.as_deref_mut())?;
        let ctx = batched_matmul(&probs.to_dtype(cdt)?, &v)?
            .to_dtype(x.dtype())?
            .transpose(1, 2)?
            .reshape((b, t, h))?;
        self.output.forward(&ctx, cdt)
    }

    /// Evaluation on the CPU (f32, nothing records a graph): q, k and v
    /// from one product with the three weights stacked (`[3H, H]`, stacked
    /// per call so the view keeps sharing the model's weights), returned
    /// as `[B, heads, T, hd]` views into it. One pass over `x` instead of
    /// three: 9.0 ms against 3 x 3.5 ms at the shape (`cargo bench
    /// --bench matmul`). `None` where it does not apply.
    fn packed_qkv(&self, x: &Tensor, cdt: DType) -> CResult<Option<(Tensor, Tensor, Tensor)>> {
        let parts = [&self.query, &self.key, &self.value];
        let mut tensors = vec![x];
        tensors.extend(parts.iter().flat_map(|l| [&l.weight, &l.bias]));
        if cdt != DType::F32 || !cpu_f32_without_graph(&tensors) {
            return Ok(None);
        }
        let (b, t, h) = x.dims3()?;
        let w = Tensor::cat(&parts.map(|l| &l.weight), 0)?;
        let bias = Tensor::cat(&parts.map(|l| &l.bias), 0)?;
        let y = super::cpu_matmul::linear(&x.reshape((b * t, h))?, &w, &bias)?.reshape((
            b,
            t,
            3,
            self.heads,
            h / self.heads,
        ))?;
        let part = |i: usize| y.narrow(2, i, 1)?.squeeze(2)?.transpose(1, 2);
        Ok(Some((part(0)?, part(1)?, part(2)?)))
    }
}

struct Layer {
    attention: SelfAttention,
    /// Post-LN: after attention + residual. Pre-LN: before attention.
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    /// Post-LN: after FFN + residual. Pre-LN: before the FFN.
    ffn_norm: LayerNorm,
}

impl Layer {
    /// The layer's parameters in [`layer_cpu::PARAM_ORDER`].
    fn tensors(&self) -> [&Tensor; layer_cpu::PARAM_ORDER] {
        let a = &self.attention;
        [
            &a.query.weight,
            &a.query.bias,
            &a.key.weight,
            &a.key.bias,
            &a.value.weight,
            &a.value.bias,
            &a.output.weight,
            &a.output.bias,
            &self.attention_norm.weight,
            &self.attention_norm.bias,
            &self.intermediate.weight,
            &self.intermediate.bias,
            &self.output.weight,
            &self.output.bias,
            &self.ffn_norm.weight,
            &self.ffn_norm.bias,
        ]
    }
}

/// How [`Encoder::sentence_embeddings`] makes one vector of a sentence's
/// hidden states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Pooling {
    /// The mean over the real (non-pad) tokens, `<s>` and `</s>` included.
    Mean,
    /// The first token's (`<s>` / `[CLS]`).
    Cls,
}

impl Pooling {
    /// `"mean"` or `"cls"`; anything else is an error listing them.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "mean" => Ok(Pooling::Mean),
            "cls" => Ok(Pooling::Cls),
            other => Err(crate::error::Error::msg(format!(
                "pooling `{other}`: use \"mean\" (the mean over the tokens) or \"cls\" (the first token)"
            ))),
        }
    }

    /// The name [`Pooling::parse`] reads.
    pub fn name(&self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
        }
    }
}

/// Which of the encoder's output rows the head above reads: a sequence
/// head (classification, multiple choice) reads only the first token's, so
/// the last layer's other rows, which get no gradient, need not be
/// computed in training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokensRead {
    /// Every token (tagging, spans, MLM).
    All,
    /// The first token only (`<s>` / `[CLS]`).
    First,
}

/// The shared body of every model: what STILTs carries from one task to the
/// next. Its parameters are named `roberta.*` (XLM-R) or `bert.*` (BERT) as
/// in transformers.
#[derive(Clone)]
pub struct Encoder {
    /// The configuration the encoder was built from.
    pub config: XlmrConfig,
    /// dtype of the matmuls: the parameters' dtype, or bf16 for mixed
    /// precision (f32 weights, LayerNorm, softmax and residuals; bf16 matmuls).
    pub compute_dtype: DType,
    /// Training keeps only each layer's input and recomputes the layer's
    /// activations in backward: activation memory of one layer instead of
    /// all, for about one extra forward pass (transformers'
    /// `gradient_checkpointing_enable`).
    pub gradient_checkpointing: bool,
    /// Training runs each layer through its hand-written CPU forward and
    /// backward ([`super::layer_cpu`]) where that applies (on by default;
    /// see [`Encoder::handwritten_applies`]); off, through candle's
    /// autograd, the reference the tests compare it with.
    pub handwritten_layers: bool,
    params: ParamStore,
    inner: std::sync::Arc<EncoderInner>,
}

struct EncoderInner {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    final_norm: Option<LayerNorm>,
}

impl Encoder {
    /// Builds the encoder from `pb` (checkpoint tensors or fresh init).
    pub fn build(config: &XlmrConfig, pb: &mut ParamBuilder) -> Result<Self> {
        let c = config;
        let (h, eps) = (c.hidden_size, c.layer_norm_eps);
        let mut st = ParamStore::new();
        let s = &mut st;
        let pre = c.variant.pre_layer_norm();
        let prefix = c.variant.prefix();
        let e = format!("{prefix}.embeddings");
        // RoBERTa's position table has a padding row; BERT's has none.
        let position_init = match c.position_rule() {
            PositionRule::AfterPad => Init::NormalPaddingRow(c.pad_token_id as usize),
            PositionRule::FromZero => Init::Normal,
        };
        let embeddings = Embeddings {
            word: pb.take(
                s,
                &format!("{e}.word_embeddings.weight"),
                &[c.vocab_size, h],
                Init::NormalPaddingRow(c.pad_token_id as usize),
            )?,
            position: pb.take(
                s,
                &format!("{e}.position_embeddings.weight"),
                &[c.max_position_embeddings, h],
                position_init,
            )?,
            token_type: pb.take(
                s,
                &format!("{e}.token_type_embeddings.weight"),
                &[c.type_vocab_size, h],
                Init::Normal,
            )?,
            layer_norm: if pre {
                None
            } else {
                Some(LayerNorm::build(pb, s, &format!("{e}.LayerNorm"), h, eps)?)
            },
        };
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for i in 0..c.num_hidden_layers {
            let l = format!("{prefix}.encoder.layer.{i}");
            let attention = SelfAttention {
                query: Linear::build(pb, s, &format!("{l}.attention.self.query"), h, h)?,
                key: Linear::build(pb, s, &format!("{l}.attention.self.key"), h, h)?,
                value: Linear::build(pb, s, &format!("{l}.attention.self.value"), h, h)?,
                output: Linear::build(pb, s, &format!("{l}.attention.output.dense"), h, h)?,
                heads: c.num_attention_heads,
            };
            let (attn_norm, ffn_norm) = if pre {
                (
                    format!("{l}.attention.self_attn_layer_norm"),
                    format!("{l}.LayerNorm"),
                )
            } else {
                (
                    format!("{l}.attention.output.LayerNorm"),
                    format!("{l}.output.LayerNorm"),
                )
            };
            layers.push(Layer {
                attention,
                attention_norm: LayerNorm::build(pb, s, &attn_norm, h, eps)?,
                intermediate: Linear::build(
                    pb,
                    s,
                    &format!("{l}.intermediate.dense"),
                    h,
                    c.intermediate_size,
                )?,
                output: Linear::build(pb, s, &format!("{l}.output.dense"), c.intermediate_size, h)?,
                ffn_norm: LayerNorm::build(pb, s, &ffn_norm, h, eps)?,
            });
        }
        let final_norm = if pre {
            Some(LayerNorm::build(
                pb,
                s,
                &format!("{prefix}.encoder.LayerNorm"),
                h,
                eps,
            )?)
        } else {
            None
        };
        let compute_dtype = embeddings.word.dtype();
        Ok(Encoder {
            config: config.clone(),
            compute_dtype,
            gradient_checkpointing: false,
            handwritten_layers: true,
            params: st,
            inner: std::sync::Arc::new(EncoderInner {
                embeddings,
                layers,
                final_norm,
            }),
        })
    }

    /// The word embedding matrix `[vocab, hidden]` (tied to the MLM decoder).
    pub fn word_embeddings(&self) -> &Tensor {
        &self.inner.embeddings.word
    }

    /// The encoder's parameters (`roberta.*` / `bert.*`).
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The device the weights are on.
    pub fn device(&self) -> &Device {
        self.inner.embeddings.word.device()
    }

    /// The dtype the weights are stored in (see `compute_dtype` for the matmuls').
    pub fn dtype(&self) -> DType {
        self.inner.embeddings.word.dtype()
    }

    /// Hidden states `[B, T, H]` of the last layer. `rng` is `Some` in
    /// training (dropout on) and `None` in evaluation.
    pub fn forward(&self, inputs: &Inputs, rng: Option<&mut DropoutRng>) -> Result<Tensor> {
        self.forward_reading(inputs, rng, TokensRead::All)
    }

    /// [`Encoder::forward`] for a head that reads `reads`: in evaluation
    /// (no `rng`) of an inference view on the CPU in f32, with the first
    /// token only, the last layer computes that row alone and the hidden
    /// states are `[B, 1, H]`.
    pub fn forward_reading(
        &self,
        inputs: &Inputs,
        mut rng: Option<&mut DropoutRng>,
        reads: TokensRead,
    ) -> Result<Tensor> {
        let mut x = self.embed(inputs, rng.as_deref_mut())?;
        let bias = attention_bias(&inputs.attention_mask, x.dtype())?;
        let last = self.num_layers().saturating_sub(1);
        let first_only = reads == TokensRead::First
            && rng.is_none()
            && self.handwritten_applies()
            && self
                .inner
                .layers
                .last()
                .is_some_and(|l| cpu_f32_without_graph(&l.tensors()));
        for i in 0..self.num_layers() {
            x = if first_only && i == last {
                self.layer_handwritten(i, &x, &bias, None, false, reads)?.0
            } else {
                self.layer(i, &x, &bias, rng.as_deref_mut())?
            };
        }
        Ok(self.final_norm(&x)?)
    }

    pub(crate) fn num_layers(&self) -> usize {
        self.inner.layers.len()
    }

    /// Hidden state `layer` of transformers' `output_hidden_states`
    /// (`[B, T, H]`): 0 the embeddings, k the output of layer k (counted
    /// from 1), the last one the encoder's output (pre-LN encoders: after
    /// their final LayerNorm, as transformers' last hidden state). Only the
    /// layers up to `layer` run; dropout off.
    pub fn hidden_state(&self, inputs: &Inputs, layer: usize) -> Result<Tensor> {
        let n = self.num_layers();
        if layer > n {
            return Err(crate::error::Error::msg(format!(
                "layer {layer}: this encoder has {n} layers (hidden states 0 = the embeddings to {n})"
            )));
        }
        let mut x = self.embed(inputs, None)?;
        let bias = attention_bias(&inputs.attention_mask, x.dtype())?;
        for i in 0..layer {
            x = self.layer(i, &x, &bias, None)?;
        }
        if layer == n {
            x = self.final_norm(&x)?;
        }
        Ok(x)
    }

    /// One f32 vector per row (`[B, H]`) from [`Encoder::hidden_state`]
    /// `layer`: the mean over the row's real tokens (its attention mask,
    /// special tokens included, as XTREME's `evaluate_retrieval.py`), or
    /// the first token's (`<s>` / `[CLS]`).
    pub fn sentence_embeddings(
        &self,
        inputs: &Inputs,
        layer: usize,
        pooling: Pooling,
    ) -> Result<Tensor> {
        let x = self.hidden_state(inputs, layer)?.to_dtype(DType::F32)?;
        Ok(match pooling {
            Pooling::Cls => Self::first_token(&x)?,
            Pooling::Mean => {
                let mask = inputs.attention_mask.to_dtype(DType::F32)?;
                let sum = x.broadcast_mul(&mask.unsqueeze(2)?)?.sum(1)?;
                sum.broadcast_div(&mask.sum_keepdim(1)?)?
            }
        })
    }

    /// Embeddings (word + token type + position), their LayerNorm (post-LN)
    /// and dropout: the input of layer 0.
    pub(crate) fn embed(&self, inputs: &Inputs, rng: Option<&mut DropoutRng>) -> Result<Tensor> {
        let c = &self.config;
        let rule = c.position_rule();
        if rule == PositionRule::AfterPad && inputs.pad_id != c.pad_token_id {
            return Err(crate::error::Error::msg(format!(
                "the batch was padded with id {} but this model's config.json has pad_token_id {}: positions would be off; pad with the model's pad id",
                inputs.pad_id, c.pad_token_id
            )));
        }
        let max_pos = inputs.max_position(rule);
        if max_pos >= c.max_position_embeddings {
            return Err(crate::error::Error::msg(format!(
                "input of {} tokens is longer than this model allows ({} with max_position_embeddings {}); truncate to max_length <= {}",
                max_pos + 1 - c.position_base(),
                c.max_sequence_length(),
                c.max_position_embeddings,
                c.max_sequence_length()
            )));
        }
        let mut rng = rng;
        begin_dropout_block(rng.as_deref_mut(), self.device())?;
        let e = &self.inner.embeddings;
        let (b, t) = inputs.dims()?;
        let gather = |table: &Tensor, ids: &Tensor| -> CResult<Tensor> {
            table.embedding(&ids.flatten_all()?)?.reshape((b, t, ()))
        };
        // `nn.Embedding(padding_idx=pad)`: the pad row is looked up but never
        // trained. Pad positions take a detached copy of the row, so no
        // gradient reaches it through the lookup (it still may through the
        // tied MLM decoder, as in PyTorch). Values are unchanged.
        let pad = c.pad_token_id;
        let gather_padded = |table: &Tensor, ids: &Tensor| -> CResult<Tensor> {
            let x = gather(table, ids)?;
            if !table.track_op() {
                return Ok(x); // no gradient to keep away (evaluation)
            }
            let is_pad = ids.eq(pad)?.to_dtype(x.dtype())?.unsqueeze(2)?;
            let row = table.narrow(0, pad as usize, 1)?.detach().unsqueeze(0)?;
            x.broadcast_mul(&(1.0 - &is_pad)?)?
                .add(&row.broadcast_mul(&is_pad)?)
        };
        let mut x = gather_padded(&e.word, &inputs.input_ids)?;
        let types = match c.segment_separator {
            Some(sep) if c.type_vocab_size > 1 => segment_types(inputs, sep)?,
            _ => inputs.token_type_ids.clone(),
        };
        x = (x + gather(&e.token_type, &types)?)?;
        x = match rule {
            PositionRule::AfterPad => (x + gather_padded(&e.position, &inputs.position_ids)?)?,
            // BERT's `position_ids` buffer: 0..T on every row, a broadcast
            // slice of the table (no padding row, so no detaching).
            PositionRule::FromZero => {
                x.broadcast_add(&e.position.narrow(0, 0, t)?.unsqueeze(0)?)?
            }
        };
        if let Some(ln) = &e.layer_norm {
            x = ln.forward(&x)?;
        }
        Ok(dropout(&x, c.hidden_dropout_prob, rng)?)
    }

    /// Whether [`Encoder::embed_backward_by_hand`] applies: the layers run
    /// by hand and the tables are f32 on the CPU.
    pub(crate) fn embed_by_hand_applies(&self) -> bool {
        let e = &self.inner.embeddings;
        let mut tables = vec![&e.word, &e.position, &e.token_type];
        if let Some(ln) = &e.layer_norm {
            tables.extend([&ln.weight, &ln.bias]);
        }
        self.handwritten_applies()
            && tables
                .iter()
                .all(|t| t.dtype() == DType::F32 && t.device().is_cpu())
    }

    /// The embeddings' backward by hand (where the layers run by hand, see
    /// [`Encoder::handwritten_applies`]), from `g`, the gradient of
    /// [`Encoder::embed`]'s output, and `rng`, the dropout stream as it was
    /// when `embed` began: the tables' gradients as
    /// candle's autograd makes them (pad ids and pad positions get none),
    /// without its zero-then-add per gradient and the copy of its
    /// `index_add` (each a pass over the whole `[vocab, H]` table).
    /// `None` where it does not apply.
    pub(crate) fn embed_backward_by_hand(
        &self,
        inputs: &Inputs,
        rng: Option<DropoutRng>,
        g: &Tensor,
    ) -> Result<Option<candle_core::backprop::GradStore>> {
        if !self.embed_by_hand_applies() {
            return Ok(None);
        }
        let c = &self.config;
        let e = &self.inner.embeddings;
        let (b, t) = inputs.dims()?;
        let h = c.hidden_size;
        let n = b * t;
        let ids: Vec<u32> = inputs.input_ids.flatten_all()?.to_vec1()?;
        let types = match c.segment_separator {
            Some(sep) if c.type_vocab_size > 1 => segment_types(inputs, sep)?,
            _ => inputs.token_type_ids.clone(),
        };
        let types: Vec<u32> = types.flatten_all()?.to_vec1()?;
        let rule = c.position_rule();
        // The row of the position table each token reads (`None`: none
        // trained, a pad position).
        let pos_rows: Vec<usize> = match rule {
            PositionRule::AfterPad => {
                let p: Vec<u32> = inputs.position_ids.flatten_all()?.to_vec1()?;
                p.into_iter().map(|p| p as usize).collect()
            }
            PositionRule::FromZero => (0..n).map(|r| r % t).collect(),
        };
        let positions: Vec<Option<usize>> = match rule {
            PositionRule::AfterPad => pos_rows
                .iter()
                .map(|&p| (p != c.pad_token_id as usize).then_some(p))
                .collect(),
            PositionRule::FromZero => pos_rows.iter().map(|&p| Some(p)).collect(),
        };
        let pad = c.pad_token_id;
        let g = g.contiguous()?;
        let mut grads = candle_core::backprop::GradStore::default();
        layer_cpu::with_f32(&[&g, &e.word, &e.position, &e.token_type], |s| {
            let (g, word, pos, typ) = (s[0], s[1], s[2], s[3]);
            // Dropout replayed from the stream `embed` drew from.
            let mut ds = g.to_vec();
            if let Some(mut r) = rng {
                let p = c.hidden_dropout_prob;
                if p > 0.0 {
                    let mask = super::ops::dropout_mask(&mut r, n * h, p);
                    ds.iter_mut().zip(&mask).for_each(|(d, m)| *d *= m);
                }
            }
            if let Some(ln) = &e.layer_norm {
                // The LayerNorm's input, the sum of the three lookups, again.
                let mut sum = vec![0f32; n * h];
                for (r, row) in sum.chunks_mut(h).enumerate() {
                    let w = &word[ids[r] as usize * h..][..h];
                    let ty = &typ[types[r] as usize * h..][..h];
                    let po = &pos[pos_rows[r] * h..][..h];
                    for j in 0..h {
                        row[j] = w[j] + ty[j] + po[j];
                    }
                }
                layer_cpu::with_f32(&[&ln.weight], |lw| {
                    let mut dx = vec![0f32; n * h];
                    let (mut dw, mut db) = (vec![0f32; h], vec![0f32; h]);
                    super::ops::layer_norm_backward_f32(
                        &ds,
                        &sum,
                        lw[0],
                        ln.eps as f32,
                        &mut dx,
                        &mut dw,
                        &mut db,
                    );
                    ds = dx;
                    for (t, v) in [(&ln.weight, dw), (&ln.bias, db)] {
                        if t.is_variable() {
                            grads.insert(t, Tensor::from_vec(v, h, t.device())?);
                        }
                    }
                    Ok(())
                })?;
            }
            // Rows added in token order (the same bytes on any machine).
            let scatter = |table: &Tensor,
                           rows: &dyn Fn(usize) -> Option<usize>|
             -> CResult<Option<Tensor>> {
                if !table.is_variable() {
                    return Ok(None);
                }
                let mut out = vec![0f32; table.elem_count()];
                for (r, d) in ds.chunks(h).enumerate() {
                    if let Some(row) = rows(r) {
                        out[row * h..(row + 1) * h]
                            .iter_mut()
                            .zip(d)
                            .for_each(|(o, v)| *o += v);
                    }
                }
                Ok(Some(Tensor::from_vec(out, table.shape(), table.device())?))
            };
            let word_rows = |r: usize| (ids[r] != pad).then_some(ids[r] as usize);
            let type_rows = |r: usize| Some(types[r] as usize);
            let pos_rows = |r: usize| positions[r];
            for (table, rows) in [
                (&e.word, &word_rows as &dyn Fn(usize) -> Option<usize>),
                (&e.token_type, &type_rows),
                (&e.position, &pos_rows),
            ] {
                if let Some(gt) = scatter(table, rows)? {
                    grads.insert(table, gt);
                }
            }
            Ok(())
        })?;
        Ok(Some(grads))
    }

    /// Layer `i` on hidden states `x`; `bias` is [`attention_bias`] of the mask.
    pub(crate) fn layer(
        &self,
        i: usize,
        x: &Tensor,
        bias: &Tensor,
        mut rng: Option<&mut DropoutRng>,
    ) -> CResult<Tensor> {
        let c = &self.config;
        begin_dropout_block(rng.as_deref_mut(), self.device())?;
        let layer = &self.inner.layers[i];
        let p = c.hidden_dropout_prob;
        let pa = c.attention_probs_dropout_prob;
        let cdt = self.compute_dtype;
        match c.variant {
            Variant::PostLayerNorm | Variant::Bert => {
                let a = layer.attention.forward(x, bias, pa, cdt, &mut rng)?;
                let a = dropout(&a, p, rng.as_deref_mut())?;
                let x1 = layer.attention_norm.forward_residual(&a, x)?;
                let f = layer
                    .intermediate
                    .forward_activated(&x1, cdt, c.hidden_act)?;
                let f = dropout(&layer.output.forward(&f, cdt)?, p, rng.as_deref_mut())?;
                layer.ffn_norm.forward_residual(&f, &x1)
            }
            Variant::PreLayerNorm => {
                let a = layer.attention.forward(
                    &layer.attention_norm.forward(x)?,
                    bias,
                    pa,
                    cdt,
                    &mut rng,
                )?;
                let x1 = (dropout(&a, p, rng.as_deref_mut())? + x)?;
                let f = layer.intermediate.forward_activated(
                    &layer.ffn_norm.forward(&x1)?,
                    cdt,
                    c.hidden_act,
                )?;
                dropout(&layer.output.forward(&f, cdt)?, p, rng.as_deref_mut())? + x1
            }
        }
    }

    /// Whether training runs the layers by hand ([`super::layer_cpu`]):
    /// `handwritten_layers` on, the weights f32 on the CPU with f32
    /// matmuls, and exact GELU (`hidden_act: gelu`). Elsewhere candle's
    /// autograd does the layers.
    pub fn handwritten_applies(&self) -> bool {
        self.handwritten_layers
            && self.device().is_cpu()
            && self.compute_dtype == DType::F32
            && self.config.hidden_act == Activation::Gelu
            && self.inner.layers.iter().all(|l| {
                l.tensors()
                    .iter()
                    .all(|t| t.dtype() == DType::F32 && t.device().is_cpu())
            })
    }

    fn layer_settings(&self) -> layer_cpu::Settings {
        let c = &self.config;
        layer_cpu::Settings {
            pre_ln: c.variant == Variant::PreLayerNorm,
            eps: c.layer_norm_eps as f32,
            p_attn: c.attention_probs_dropout_prob,
            p_hidden: c.hidden_dropout_prob,
        }
    }

    fn layer_dims(&self, x: &Tensor, reads: TokensRead) -> CResult<layer_cpu::Dims> {
        let (b, t, h) = x.dims3()?;
        Ok(layer_cpu::Dims {
            b,
            t,
            h,
            heads: self.config.num_attention_heads,
            f: self.config.intermediate_size,
            tq: match reads {
                TokensRead::All => t,
                TokensRead::First => 1,
            },
        })
    }

    /// Layer `i` by hand (see [`Encoder::handwritten_applies`]) on `x`
    /// (`[B, T, H]`, no graph): its output (`[B, 1, H]` when `reads` is
    /// the first token only), and with `keep` what its backward needs.
    /// Draws the dropout masks [`Encoder::layer`] draws.
    pub(crate) fn layer_handwritten(
        &self,
        i: usize,
        x: &Tensor,
        bias: &Tensor,
        mut rng: Option<&mut DropoutRng>,
        keep: bool,
        reads: TokensRead,
    ) -> CResult<(Tensor, Option<layer_cpu::Tape>)> {
        begin_dropout_block(rng.as_deref_mut(), self.device())?;
        let d = self.layer_dims(x, reads)?;
        let s = self.layer_settings();
        let x = x.contiguous()?;
        let bias = bias.contiguous()?;
        let (y, tape) = layer_cpu::with_params(&self.inner.layers[i].tensors(), |p| {
            layer_cpu::with_f32(&[&x, &bias], |xb| {
                Ok(layer_cpu::forward(p, s, d, xb[0], xb[1], rng, keep))
            })
        })?;
        Ok((Tensor::from_vec(y, (d.b, d.tq, d.h), x.device())?, tape))
    }

    /// The backward of [`Encoder::layer_handwritten`] from `dy`, the
    /// gradient of the layer's output: the gradient of its input, and its
    /// trained parameters' gradients (frozen ones are left out).
    pub(crate) fn layer_handwritten_backward(
        &self,
        i: usize,
        tape: layer_cpu::Tape,
        dy: &Tensor,
    ) -> CResult<(Tensor, candle_core::backprop::GradStore)> {
        let s = self.layer_settings();
        let tensors = self.inner.layers[i].tensors();
        let dy = dy.contiguous()?;
        let dims = tape.dims();
        let (dx, grads) = layer_cpu::with_params(&tensors, |p| {
            layer_cpu::with_f32(&[&dy], |g| Ok(layer_cpu::backward(p, s, tape, g[0])))
        })?;
        let mut store = candle_core::backprop::GradStore::default();
        for (t, g) in tensors.iter().zip(grads) {
            if t.is_variable() {
                store.insert(t, Tensor::from_vec(g, t.shape(), t.device())?);
            }
        }
        let shape = (dims.b, dims.t, dims.h);
        Ok((Tensor::from_vec(dx, shape, dy.device())?, store))
    }

    /// The final LayerNorm of pre-LN encoders (identity for post-LN).
    pub(crate) fn final_norm(&self, x: &Tensor) -> CResult<Tensor> {
        match &self.inner.final_norm {
            Some(ln) => ln.forward(x),
            None => Ok(x.clone()),
        }
    }

    /// The `[B, H]` hidden state of the first token (`<s>` / `[CLS]`).
    pub fn first_token(hidden: &Tensor) -> CResult<Tensor> {
        hidden.narrow(1, 0, 1)?.squeeze(1)
    }

    /// The same encoder, its parameters shared (not copied), with those
    /// named in `frozen` as plain tensors: they get no gradient and are not
    /// in the view's `params()` (training's `freeze`).
    pub fn with_frozen(&self, frozen: &BTreeSet<String>) -> Result<Self> {
        let mut pb = ParamBuilder::shared(&self.params, frozen, self.device(), self.dtype());
        let mut enc = Encoder::build(&self.config, &mut pb)?;
        enc.gradient_checkpointing = self.gradient_checkpointing;
        enc.handwritten_layers = self.handwritten_layers;
        enc.compute_dtype = self.compute_dtype;
        Ok(enc)
    }

    /// Rebuilds the encoder with its current weights in another dtype or on
    /// another device (a copy: training one does not move the other).
    pub fn to(&self, device: &Device, dtype: DType) -> Result<Self> {
        let mut pb =
            ParamBuilder::detached(&self.params, self.config.initializer_range, device, dtype);
        let mut enc = Encoder::build(&self.config, &mut pb)?;
        enc.gradient_checkpointing = self.gradient_checkpointing;
        enc.handwritten_layers = self.handwritten_layers;
        enc.compute_dtype = if self.compute_dtype == self.dtype() {
            dtype
        } else {
            self.compute_dtype
        };
        Ok(enc)
    }
}

/// BERT's token types derived from the ids, as its tokenizer assigns them to
/// `[CLS] A [SEP] B [SEP]`: 0 up to and including the first `sep`, 1 after
/// it, 0 on padding. Computed on the device (no read-back).
fn segment_types(inputs: &Inputs, sep: u32) -> CResult<Tensor> {
    let is_sep = inputs.input_ids.eq(sep)?.to_dtype(DType::F32)?;
    let before = (is_sep.cumsum(1)? - &is_sep)?; // seps strictly before each token
    let real = inputs.attention_mask.to_dtype(DType::F32)?;
    before.clamp(0f32, 1f32)?.mul(&real)?.to_dtype(DType::U32)
}
