//! What a training run needs in memory: parameters, gradients, AdamW state
//! and activations, estimated from the shape before the run starts (so a
//! researcher learns that XL needs gradient checkpointing before a GPU runs
//! out of memory an hour in).
//!
//! Activations are counted the way candle keeps them: its autograd graph
//! holds every intermediate tensor of the forward until backward (PyTorch
//! keeps only what each backward needs), so the count is per op of
//! `model/encoder.rs`. `stilts bench` prints this estimate beside the
//! measured peak resident memory (CPU) so the two can be compared.
//!
//! ## The backward workspace
//!
//! Before issue 16 the estimate counted a "backward workspace" of one
//! layer's activations plus the parameter bytes again (43.5 GiB for XLM-R
//! XXL in mixed precision), fitted to the peak measured on the benchmark
//! shape. That shape's parameters are 95% word embeddings (250,002 x 256),
//! so the fit could not tell a copy of every gradient from a copy of the
//! largest one. Measured per phase (`stilts bench --live-memory`, which
//! records the peak after forward, backward and update of each step) at a
//! shape of ~1 GiB of parameters in 18 layers with a 32k vocabulary, a
//! checkpointed step holds, beyond parameters, gradients, AdamW state and
//! the saved activations, only:
//!
//! - one layer's activation gradients (the recomputed segment's graph);
//! - one layer's parameter gradients twice more: candle's backward sums
//!   each gradient into a fresh zero tensor, so the zeros, the op's
//!   gradient and the sum exist together for the segment being done;
//! - one more word-embedding table: the gather's backward builds a zero
//!   table and scatter-adds into a new one;
//! - before this issue, clipping's scaled copy of each gradient: one at a
//!   time, but the word-embedding gradient's copy was the step's largest
//!   transient. Clipping now scales in place (`optim::clip_grad_norm`), and
//!   the memory-saving options fold the clip factor into the update.
//!
//! Where the layers and embeddings train by hand (the CPU in f32,
//! `stilts_model::layer_cpu`), each gradient is made once and the
//! embeddings' gradient is one scatter into one new table: none of these
//! transients exist (`RunShape::by_hand`).
//!
//! So the workspace is per layer plus one embedding table, not per model:
//! 3.9 GiB for XXL with bf16 weights, 8.9 in mixed precision, instead of
//! 43.5. Without checkpointing
//! the old fit is kept (not re-measured).
//!
//! The bf16-weight runs peaked 8% above this estimate until the
//! measurement changed allocator: mimalloc, even told to purge freed memory
//! at once, kept 0.33 GiB resident beyond the live allocations (counted by
//! a wrapper allocator: equal to the tensors' bytes within 2 MB). Nothing
//! in the bf16 update copies a tensor. `stilts bench --live-memory` now
//! allocates with the system allocator, each block of 1 MiB or more its
//! own mapping (`src/alloc.rs`), and those rows peak 0.99 of the estimate.
//!
//! ## What the options change
//!
//! - `Precision::Bf16` (weights stored in bf16): parameters, gradients
//!   and activations at 2 bytes; the AdamW moments stay f32.
//! - `kahan` (`bf16_update: kahan`): a bf16 compensation per weight, 2
//!   bytes per parameter (`stochastic` rounding needs none).
//! - `factored_optimizer`: the second moment is a row and a column per
//!   matrix (counted as nothing next to `m`).
//! - `eight_bit_second_moment`: `v` in 1 byte per value plus an f32 scale
//!   per block of 2048 (`optim::lowmem::q8`) instead of 4 bytes.
//! - `fused_update`: the update runs inside the checkpointed backward, so
//!   only the largest segment's gradients (the embeddings) exist at once.
//!
//! ```
//! use stilts_model::{sizes, XlmrConfig};
//! use stilts_protocol::memory::{estimate, Precision, RunShape};
//! let s = sizes::size("xlmr-xl").unwrap();
//! let cfg = XlmrConfig::new(s.variant, s.vocab, s.hidden, s.layers, s.heads, s.ffn, 514).unwrap();
//! let shape = RunShape {
//!     batch: 32,
//!     seq: 128,
//!     precision: Precision::MixedBf16,
//!     checkpointing: true,
//!     factored_optimizer: false,
//!     kahan: false,
//!     fused_update: false,
//!     eight_bit_second_moment: false,
//!     by_hand: false,
//! };
//! let m = estimate(&cfg, 3_500_000_000, &shape);
//! assert!(m.total_gib() < 80.0);
//! ```

use stilts_model::XlmrConfig;

pub use stilts_model::dtype::Precision;

/// The shape of one training step.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct RunShape {
    /// Rows per forward pass (the largest batch's).
    pub batch: usize,
    /// Padded tokens per row.
    pub seq: usize,
    /// Weight and compute dtypes: f32, mixed bf16, or bf16 weights.
    pub precision: Precision,
    /// Gradient checkpointing: only the layer inputs are kept, one layer is
    /// recomputed at a time.
    pub checkpointing: bool,
    /// AdamW with a factored second moment (`factored_optimizer`).
    pub factored_optimizer: bool,
    /// bf16 weights with a Kahan compensation buffer (`bf16_update:
    /// kahan`): 2 more bytes per parameter (only with [`Precision::Bf16`]).
    pub kahan: bool,
    /// The update applied inside backward (`fused_update`): one segment's
    /// gradients at a time instead of all.
    pub fused_update: bool,
    /// The second moment in 8 bits (`eight_bit_second_moment`): 1 byte
    /// per parameter and 4 per block of 2048 instead of 4 bytes.
    pub eight_bit_second_moment: bool,
    /// The encoder's layers and embeddings train by hand (on the CPU in
    /// f32, `Encoder::handwritten_applies`): every gradient is made once,
    /// so the backward has none of autograd's transients (see "The
    /// backward workspace").
    pub by_hand: bool,
}

/// Bytes, by what holds them.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct MemoryEstimate {
    /// The weights: 4 bytes per parameter (2 with bf16 weights).
    pub parameters: u64,
    /// Gradients in the weights' dtype: all of them, or only the largest
    /// segment's under `fused_update`.
    pub gradients: u64,
    /// AdamW's two moments (f32); factored: the first moment and the
    /// row/column accumulators (counted as the first moment alone).
    pub optimizer: u64,
    /// Kept by the forward for backward (with checkpointing: the layer
    /// inputs plus one layer recomputed at a time).
    pub activations: u64,
    /// Transient during backward: with checkpointing, one layer's activation
    /// gradients (sized as its activations), two more copies of one layer's
    /// parameter gradients and one more word-embedding table (see "The
    /// backward workspace"); without, the old fit: one layer's activations
    /// plus the parameter bytes again.
    pub workspace: u64,
    /// The sum of the five parts above.
    pub total: u64,
}

const GIB: f64 = (1u64 << 30) as f64;

impl MemoryEstimate {
    /// `total` in GiB (2^30 bytes).
    pub fn total_gib(&self) -> f64 {
        self.total as f64 / GIB
    }

    /// One line for logs: `params 1.0 GiB, grads ..., total ...`.
    pub fn summary(&self) -> String {
        let g = |b: u64| format!("{:.2} GiB", b as f64 / GIB);
        format!(
            "parameters {}, gradients {}, optimizer {}, activations {}, workspace {}: total {}",
            g(self.parameters),
            g(self.gradients),
            g(self.optimizer),
            g(self.activations),
            g(self.workspace),
            g(self.total)
        )
    }
}

/// Elements the autograd graph keeps per token for one encoder layer, and
/// per layer for weight copies, following the ops of `Encoder::layer`:
/// `e` bytes per activation element (the residual stream's dtype), `c` per
/// compute element (the matmuls'), `mixed` when the two differ (casts are
/// then extra tensors).
fn layer_bytes_per_token(cfg: &XlmrConfig, seq: usize, e: u64, c: u64, mixed: bool) -> u64 {
    let h = cfg.hidden_size as u64;
    let f = cfg.intermediate_size as u64;
    let at = (cfg.num_attention_heads * seq) as u64;
    // Linear: [cast of the input], matmul output, [cast back], + bias.
    let linear = |inp: u64, out: u64| {
        if mixed {
            inp * c + out * c + 2 * out * e
        } else {
            2 * out * e
        }
    };
    let split = if mixed { 2 * h * c } else { h * e };
    let attention = 3 * linear(h, h)
        + 3 * split
        // scores (+ cast back), scaled, masked, softmax, dropout mask, dropped
        + at * c + if mixed { at * e } else { 0 } + 5 * at * e
        + if mixed { at * c } else { 0 }
        // context (+ cast back) and its [B, T, H] copy
        + h * c + if mixed { h * e } else { 0 } + h * e
        + linear(h, h);
    // dropout (mask + output), residual add, LayerNorm; twice.
    let residuals = 2 * (4 * h * e);
    let ffn = linear(h, f) + f * e + linear(f, h);
    // (Pre-LN moves the two LayerNorms before their blocks: same count.)
    attention + residuals + ffn
}

/// bf16 copies of one layer's weights that the graph keeps under mixed
/// precision (each matmul casts its f32 weight).
fn layer_weight_copies(cfg: &XlmrConfig, c: u64, mixed: bool) -> u64 {
    if !mixed {
        return 0;
    }
    let h = cfg.hidden_size as u64;
    let f = cfg.intermediate_size as u64;
    (4 * h * h + 2 * h * f) * c
}

/// Parameters of `cfg` with a `labels`-way classification head, counted
/// from the shape (what [`stilts_model::Model::num_parameters`] reports,
/// without building the model).
pub fn count_parameters(cfg: &XlmrConfig, labels: usize) -> u64 {
    let h = cfg.hidden_size as u64;
    let f = cfg.intermediate_size as u64;
    let tables = (cfg.vocab_size + cfg.max_position_embeddings + cfg.type_vocab_size) as u64 * h;
    let norm = 2 * h;
    let layer = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 2 * norm;
    // Post-LN normalises the embeddings, pre-LN the last layer's output.
    let head = (h * h + h) + (h * labels as u64 + labels as u64);
    tables + norm + cfg.num_hidden_layers as u64 * layer + head
}

/// The estimate for training `cfg` (with `parameters` in all, head
/// included) at `shape`.
pub fn estimate(cfg: &XlmrConfig, parameters: u64, shape: &RunShape) -> MemoryEstimate {
    let (e, c, mixed) = match shape.precision {
        Precision::F32 => (4u64, 4u64, false),
        Precision::MixedBf16 => (4, 2, true),
        Precision::Bf16 => (2, 2, false),
    };
    let tokens = (shape.batch * shape.seq) as u64;
    let h = cfg.hidden_size as u64;
    let layers = cfg.num_hidden_layers as u64;
    let per_layer = tokens * layer_bytes_per_token(cfg, shape.seq, e, c, mixed)
        + layer_weight_copies(cfg, c, mixed);
    // Three gathers with their padding masks, two sums, LayerNorm, dropout.
    let embeddings = tokens * 14 * h * e;
    let activations = if shape.checkpointing {
        // Saved layer inputs and output, then one segment at a time.
        (layers + 1) * tokens * h * e + per_layer.max(embeddings)
    } else {
        embeddings + layers * per_layer
    };
    let param_bytes = parameters * e;
    // Gradients come in the weights' dtype; with the update inside
    // backward only one segment's exist at a time (the largest: the
    // embeddings, or a layer, or the head).
    let gradients = if shape.fused_update {
        largest_segment_parameters(cfg, parameters) * e
    } else {
        param_bytes
    };
    // f32 moments: m, and v (or Adafactor's row and column accumulators,
    // which are tiny next to m); Kahan: a bf16 compensation per weight.
    let mut optimizer = if shape.factored_optimizer {
        parameters * 4
    } else if shape.eight_bit_second_moment {
        // m (f32), then v's codes and one f32 scale per block (the blocks
        // are per parameter tensor: at most one more per tensor, a few KB).
        parameters * 5 + 4 * parameters.div_ceil(crate::optim::lowmem::q8::BLOCK as u64)
    } else {
        parameters * 8
    };
    if shape.kahan && shape.precision == Precision::Bf16 {
        optimizer += parameters * 2;
    }
    let workspace = if shape.checkpointing {
        per_layer
            + if shape.by_hand {
                0
            } else {
                transient_bytes(cfg, e)
            }
    } else {
        // Without checkpointing: the fit to the measured peak made before
        // issue 16 (one layer's activations and the parameter bytes), not
        // re-measured since.
        per_layer + param_bytes
    };
    MemoryEstimate {
        parameters: param_bytes,
        gradients,
        optimizer,
        activations,
        workspace,
        total: param_bytes + gradients + optimizer + activations + workspace,
    }
}

/// Parameters of the largest part whose gradients exist together under
/// the update in backward: the embeddings (tables and their LayerNorm),
/// one layer, or the rest (head and final LayerNorm: what `parameters`
/// leaves over).
pub fn largest_segment_parameters(cfg: &XlmrConfig, parameters: u64) -> u64 {
    let h = cfg.hidden_size as u64;
    let f = cfg.intermediate_size as u64;
    let tables = (cfg.vocab_size + cfg.max_position_embeddings + cfg.type_vocab_size) as u64 * h;
    let embeddings = tables + 2 * h;
    let layer = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 4 * h;
    let rest = parameters.saturating_sub(embeddings + cfg.num_hidden_layers as u64 * layer);
    embeddings.max(layer).max(rest)
}

/// Transient memory of a checkpointed backward beyond one layer's
/// activation gradients (see the module documentation, "the backward
/// workspace"): one layer's parameter gradients twice more (candle sums
/// every gradient into a fresh zero tensor: zeros, the op's gradient and
/// the sum exist together), and one more word-embedding table (the
/// gather's backward: a zero table, then the scatter-add into a new one).
fn transient_bytes(cfg: &XlmrConfig, e: u64) -> u64 {
    let h = cfg.hidden_size as u64;
    let f = cfg.intermediate_size as u64;
    let layer = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 4 * h;
    let word = cfg.vocab_size as u64 * h;
    (2 * layer + word) * e
}

/// The option combinations (precision, Kahan, factored, update in
/// backward, 8-bit second moment, layers by hand; all with gradient
/// checkpointing) whose estimate a measured CPU peak confirmed within 5% at
/// the scaled shape of `benches/README.md` ("Memory at a scaled shape").
/// Only these say "fits" in `stilts memory`; the others "may fit".
pub const MEASURED: &[(Precision, bool, bool, bool, bool, bool)] = &[
    // f32, layers by hand (the CPU): 0.984 of the estimate; with the update
    // in backward: 0.972. Mixed precision: 0.963. All with the system
    // allocator (`stilts bench --live-memory`). Mixed precision with
    // factored and the update in backward, 0.989 with mimalloc, now peaks
    // at 0.899: no longer listed (the estimate is high there, not known
    // why). f32 through autograd (a GPU) is not measured.
    (Precision::F32, false, false, false, false, true),
    (Precision::MixedBf16, false, false, false, false, false),
    (Precision::F32, false, false, true, false, true),
    // bf16 weights, kahan: 0.996; kahan, update in backward: 0.993; kahan,
    // 8-bit second moment: 0.993, and with the update in backward: 0.992;
    // kahan, factored: 0.995, and with the update in backward: 0.993
    // (measured with the system allocator, `stilts bench --live-memory`:
    // mimalloc kept 0.33 GiB resident beyond the live allocations, the 8%
    // these rows used to peak above).
    (Precision::Bf16, true, false, false, false, false),
    (Precision::Bf16, true, false, true, false, false),
    (Precision::Bf16, true, false, false, true, false),
    (Precision::Bf16, true, false, true, true, false),
    (Precision::Bf16, true, true, false, false, false),
    (Precision::Bf16, true, true, true, false, false),
];

/// Whether a measurement backs the estimate for `shape` (see [`MEASURED`]).
pub fn confirmed_by_measurement(shape: &RunShape) -> bool {
    let kahan = shape.kahan && shape.precision == Precision::Bf16;
    shape.checkpointing
        && MEASURED.contains(&(
            shape.precision,
            kahan,
            shape.factored_optimizer,
            shape.fused_update,
            shape.eight_bit_second_moment,
            shape.by_hand,
        ))
}

fn proc_status_bytes(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Peak resident memory of this process so far (Linux `VmHWM`), if known.
pub fn peak_resident_bytes() -> Option<u64> {
    proc_status_bytes("VmHWM:")
}

/// Resident memory of this process now (Linux `VmRSS`), if known.
pub fn resident_bytes() -> Option<u64> {
    proc_status_bytes("VmRSS:")
}
