//! Gradient checkpointing (activation recomputation). candle has none built
//! in, and its autograd graph keeps every intermediate tensor alive until
//! backward, so a 36-layer XL run holds all layers' activations at once. With
//! checkpointing the training forward keeps only each layer's input
//! (`[B, T, H]`, detached); backward walks the layers top-down, recomputes
//! one layer's forward with its graph from the saved input and the dropout
//! stream it saw, and backpropagates through it alone:
//!
//! ```text
//! forward:  x0 = embed(ids)   x1 = L0(x0)  ...  h = final_norm(xN)   (graphs dropped)
//! backward: g = dLoss/dh  →  [final_norm]  →  LN-1 (recomputed) → ... → L0 → embed
//!           each step: y = segment(x_in as a leaf); grads of (y · g).sum(); g = grad of x_in
//! ```
//!
//! The gradients equal those of the plain backward (same ops, same dropout
//! masks; `crates/stilts-protocol/tests/it/checkpointing.rs`), for about one extra forward pass.

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use super::encoder::{Encoder, Inputs, TokensRead};
use super::ops::{attention_bias, DropoutRng};
use crate::error::{Error, Result};

/// The training forward lives beside its backward (here), so the encoder
/// knows nothing of recomputation.
impl Encoder {
    /// Training forward: as [`Encoder::forward`], or, with
    /// `gradient_checkpointing` on, keeping only each layer's input and
    /// recomputing the layer in backward (see this module). `reads` says
    /// which rows the head reads: with the first token only and the layers
    /// by hand, the hidden states are `[B, 1, H]`.
    pub fn forward_train(
        &self,
        inputs: &Inputs,
        rng: Option<&mut DropoutRng>,
        reads: TokensRead,
    ) -> Result<(Tensor, Option<Recompute>)> {
        if self.gradient_checkpointing {
            let (hidden, r) = Recompute::forward(self, inputs, rng, reads)?;
            Ok((hidden, Some(r)))
        } else if self.handwritten_applies() {
            let (hidden, r) = Recompute::forward_kept(self, inputs, rng, reads)?;
            Ok((hidden, Some(r)))
        } else {
            Ok((self.forward(inputs, rng)?, None))
        }
    }
}

/// What the encoder's training forward saved for its backward: under
/// gradient checkpointing each layer's input (the layer is recomputed in
/// backward); without it, where the layers run by hand
/// ([`Encoder::handwritten_applies`]), their tapes (nothing recomputed).
pub struct Recompute {
    encoder: Encoder,
    inputs: Inputs,
    /// Gradient checkpointing (layers recomputed) rather than kept tapes.
    checkpointed: bool,
    /// The rows the head reads (the last layer computes only those).
    reads: TokensRead,
    /// The dropout stream at the start of the embeddings (`None`: no dropout).
    embed_rng: Option<DropoutRng>,
    /// Checkpointed, per layer: its input (detached) and the dropout
    /// stream at its start.
    layers: Vec<(Tensor, Option<DropoutRng>)>,
    /// Not checkpointed: each hand-written layer's tape, bottom first.
    tapes: Vec<super::layer_cpu::Tape>,
    /// Not checkpointed, embeddings' backward not by hand: their output
    /// with its autograd graph.
    embedded: Option<Tensor>,
    /// The input of the final LayerNorm (pre-LN encoders).
    last: Tensor,
    /// The encoder output handed to the head: a leaf whose gradient starts
    /// the recomputation.
    output: Var,
}

impl Recompute {
    /// The checkpointed training forward: hidden states `[B, T, H]` (a leaf
    /// variable; `[B, 1, H]` when the head reads the first token only and
    /// the layers run by hand) and what backward needs.
    pub fn forward(
        encoder: &Encoder,
        inputs: &Inputs,
        mut rng: Option<&mut DropoutRng>,
        reads: TokensRead,
    ) -> Result<(Tensor, Self)> {
        let embed_rng = rng.as_deref().cloned();
        let mut x = encoder.embed(inputs, rng.as_deref_mut())?.detach();
        let bias = attention_bias(&inputs.attention_mask, x.dtype())?;
        let mut layers = Vec::with_capacity(encoder.num_layers());
        let by_hand = encoder.handwritten_applies();
        let top = encoder.num_layers().saturating_sub(1);
        for i in 0..encoder.num_layers() {
            layers.push((x.clone(), rng.as_deref().cloned()));
            let r = if i == top { reads } else { TokensRead::All };
            x = if by_hand {
                encoder
                    .layer_handwritten(i, &x, &bias, rng.as_deref_mut(), false, r)?
                    .0
            } else {
                encoder.layer(i, &x, &bias, rng.as_deref_mut())?.detach()
            };
        }
        Self::ending(encoder, inputs, reads, embed_rng, Saved::Inputs(layers), x)
    }

    /// The training forward with hand-written layers and no
    /// checkpointing: each layer's tape is kept for the backward.
    pub fn forward_kept(
        encoder: &Encoder,
        inputs: &Inputs,
        mut rng: Option<&mut DropoutRng>,
        reads: TokensRead,
    ) -> Result<(Tensor, Self)> {
        let embed_rng = rng.as_deref().cloned();
        let embedded = encoder.embed(inputs, rng.as_deref_mut())?;
        let mut x = embedded.detach();
        let bias = attention_bias(&inputs.attention_mask, x.dtype())?;
        let mut tapes = Vec::with_capacity(encoder.num_layers());
        let top = encoder.num_layers().saturating_sub(1);
        for i in 0..encoder.num_layers() {
            let r = if i == top { reads } else { TokensRead::All };
            let (y, tape) = encoder.layer_handwritten(i, &x, &bias, rng.as_deref_mut(), true, r)?;
            tapes.extend(tape);
            x = y;
        }
        // The embeddings' graph is kept only where their backward is not by hand.
        let embedded = (!encoder.embed_by_hand_applies()).then_some(embedded);
        Self::ending(
            encoder,
            inputs,
            reads,
            embed_rng,
            Saved::Tapes(tapes, embedded),
            x,
        )
    }

    /// What both forwards end with: the final LayerNorm of the last layer's
    /// output `x`, its value as the leaf the head reads, and what was saved.
    fn ending(
        encoder: &Encoder,
        inputs: &Inputs,
        reads: TokensRead,
        embed_rng: Option<DropoutRng>,
        saved: Saved,
        x: Tensor,
    ) -> Result<(Tensor, Self)> {
        let output = Var::from_tensor(&encoder.final_norm(&x)?.detach())?;
        let hidden = output.as_tensor().clone();
        let (checkpointed, layers, tapes, embedded) = match saved {
            Saved::Inputs(layers) => (true, layers, Vec::new(), None),
            Saved::Tapes(tapes, embedded) => (false, Vec::new(), tapes, embedded),
        };
        Ok((
            hidden,
            Recompute {
                encoder: encoder.clone(),
                inputs: inputs.clone(),
                checkpointed,
                reads,
                embed_rng,
                layers,
                tapes,
                embedded,
                last: x,
                output,
            },
        ))
    }

    /// Adds the encoder's parameter gradients to `grads`, which holds the
    /// gradients of the part above the encoder (the head's backward), the
    /// gradient of the encoder output included.
    pub fn backward(self, grads: &mut GradStore) -> Result<()> {
        let Some(g) = grads.remove(self.output.as_tensor()) else {
            // The loss does not depend on the encoder output.
            return Ok(());
        };
        let params = self.encoder.params().clone();
        self.backward_from(g, &mut |local: GradStore| {
            for (_, var) in params.iter() {
                if let Some(new) = local.get(var.as_tensor()) {
                    let sum = match grads.get(var.as_tensor()) {
                        Some(old) => (old + new)?,
                        None => new.clone(),
                    };
                    grads.insert(var.as_tensor(), sum);
                }
            }
            Ok(())
        })
    }

    /// Backward from `g`, the gradient of the encoder output: hands each
    /// segment's parameter gradients (detached, nothing else) to `each` as
    /// soon as that segment's backward is done, top segment first.
    pub fn backward_from(
        mut self,
        mut g: Tensor,
        each: &mut dyn FnMut(GradStore) -> Result<()>,
    ) -> Result<()> {
        let enc = self.encoder.clone();
        let bias = attention_bias(&self.inputs.attention_mask, self.last.dtype())?;
        let x = Var::from_tensor(&self.last)?;
        let y = enc.final_norm(x.as_tensor())?;
        g = self.segment_backward(y, &g, Some(&x), each)?;
        if !self.checkpointed {
            let tapes = std::mem::take(&mut self.tapes);
            for (i, tape) in tapes.into_iter().enumerate().rev() {
                let (dx, grads) = enc.layer_handwritten_backward(i, tape, &g)?;
                each(grads)?;
                g = dx;
            }
            if let Some(grads) =
                enc.embed_backward_by_hand(&self.inputs, self.embed_rng.clone(), &g)?
            {
                return each(grads);
            }
            let y = self.embedded.take().ok_or_else(|| {
                Error::msg("the encoder's backward ran twice (its embeddings' graph is gone)")
            })?;
            self.segment_backward(y, &g, None, each)?;
            return Ok(());
        }
        let by_hand = enc.handwritten_applies();
        let top = self.layers.len().saturating_sub(1);
        for (i, (input, rng)) in self.layers.iter().enumerate().rev() {
            let mut rng = rng.clone();
            if by_hand {
                let r = if i == top {
                    self.reads
                } else {
                    TokensRead::All
                };
                let (_, tape) = enc.layer_handwritten(i, input, &bias, rng.as_mut(), true, r)?;
                let tape = tape.ok_or_else(|| Error::msg("a recomputed layer kept no tape"))?;
                let (dx, grads) = enc.layer_handwritten_backward(i, tape, &g)?;
                each(grads)?;
                g = dx;
                continue;
            }
            let x = Var::from_tensor(input)?;
            let y = enc.layer(i, x.as_tensor(), &bias, rng.as_mut())?;
            g = self.segment_backward(y, &g, Some(&x), each)?;
        }
        if let Some(grads) = enc.embed_backward_by_hand(&self.inputs, self.embed_rng.clone(), &g)? {
            return each(grads);
        }
        let mut rng = self.embed_rng.clone();
        let y = enc.embed(&self.inputs, rng.as_mut())?;
        self.segment_backward(y, &g, None, each)?;
        Ok(())
    }

    /// Backpropagates `g` (the gradient of `y`) through the graph of `y`:
    /// parameter gradients go to `each`; returns the gradient of the
    /// segment's input.
    fn segment_backward(
        &self,
        y: Tensor,
        g: &Tensor,
        input: Option<&Var>,
        each: &mut dyn FnMut(GradStore) -> Result<()>,
    ) -> Result<Tensor> {
        // d/dy of sum(y * g) is exactly g. Gradients that custom backward
        // ops computed from variables carry a graph of their own: detach
        // them, or the next segment's backward would run through it.
        let local = (&y * g.detach())?.sum_all()?.backward()?;
        // The segment's graph and activation gradients go before the
        // parameter gradients are used.
        drop(y);
        let mut params = GradStore::default();
        for (_, var) in self.encoder.params().iter() {
            if let Some(new) = local.get(var.as_tensor()) {
                params.insert(var.as_tensor(), new.detach());
            }
        }
        let out = match input {
            Some(x) => local
                .get(x.as_tensor())
                .map(Tensor::detach)
                .ok_or_else(|| {
                    Error::msg(
                        "gradient checkpointing: a layer's output does not depend on its input",
                    )
                })?,
            None => g.clone(),
        };
        drop(local);
        each(params)?;
        Ok(out)
    }
}

/// What a training forward saved per layer.
enum Saved {
    /// Checkpointed: each layer's input and dropout stream.
    Inputs(Vec<(Tensor, Option<DropoutRng>)>),
    /// By hand: each layer's tape, and the embeddings' output with its
    /// graph where their backward is not by hand.
    Tapes(Vec<super::layer_cpu::Tape>, Option<Tensor>),
}

/// A training loss, with what its backward needs beyond candle's graph (the
/// encoder's recomputation under gradient checkpointing).
pub struct Loss {
    /// The loss itself, a scalar tensor with its autograd graph.
    pub value: Tensor,
    recompute: Option<Recompute>,
}

impl Loss {
    /// Wraps `value`; `recompute` is what `Encoder::forward_train` saved
    /// (`None` without gradient checkpointing).
    pub fn new(value: Tensor, recompute: Option<Recompute>) -> Self {
        Loss { value, recompute }
    }

    /// The loss times `factor` (gradient accumulation averages batches).
    pub fn scale(self, factor: f64) -> Result<Self> {
        Ok(Loss {
            value: (self.value * factor)?,
            recompute: self.recompute,
        })
    }

    /// The loss as a number.
    pub fn to_f64(&self) -> Result<f64> {
        Ok(self
            .value
            .to_dtype(candle_core::DType::F64)?
            .to_scalar::<f64>()?)
    }

    /// Whether the encoder recomputes its activations in backward
    /// (gradient checkpointing).
    pub fn is_checkpointed(&self) -> bool {
        self.recompute.as_ref().is_some_and(|r| r.checkpointed)
    }

    /// Backward that hands the parameter gradients to `each` part by part
    /// as they are made: the head's (and, without checkpointing, all
    /// others') first, then each recomputed encoder segment's, top down.
    /// A part's gradients are freed when `each` returns.
    pub fn backward_each(self, each: &mut dyn FnMut(GradStore) -> Result<()>) -> Result<()> {
        let mut grads = self.value.backward()?;
        drop(self.value);
        match self.recompute {
            None => each(grads),
            Some(r) => {
                let g = grads.remove(r.output.as_tensor());
                each(grads)?;
                match g {
                    Some(g) => r.backward_from(g, each),
                    None => Ok(()),
                }
            }
        }
    }

    /// Gradients of every parameter the loss depends on.
    pub fn backward(self) -> Result<GradStore> {
        let mut grads = self.value.backward()?;
        // The head's graph is no longer needed while the encoder recomputes.
        drop(self.value);
        if let Some(r) = self.recompute {
            r.backward(&mut grads)?;
        }
        Ok(grads)
    }
}
