//! The performance harness behind `stilts bench`: times a training step
//! (forward, backward, clipping, AdamW) and an evaluation forward for an
//! XLM-R shape, median of several after warm-up. `benches/torch_reference.py`
//! does the same in PyTorch + transformers.

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use stilts_model::error::{Error, Result};
use stilts_model::{sizes, DropoutRng, HeadKind, Inputs, Model, Target, Variant, XlmrConfig};
use stilts_protocol::memory::{self, MemoryEstimate, Precision, RunShape};
use stilts_protocol::optim::lowmem::{self, Bf16Update};
use stilts_protocol::optim::{clip_grad_norm, AdamW, AdamWConfig};

/// What to time.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct BenchSpec {
    pub vocab: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub ffn: usize,
    pub variant: Variant,
    pub batch: usize,
    pub seq: usize,
    /// Timed repetitions (after `warmup` untimed ones).
    pub steps: usize,
    pub warmup: usize,
    /// `bf16`: mixed precision (bf16 matmuls, f32 weights).
    pub bf16: bool,
    /// Gradient checkpointing in the training step.
    #[serde(default)]
    pub checkpointing: bool,
    /// Time only the evaluation forward (no gradients, no optimizer state).
    #[serde(default)]
    pub eval_only: bool,
    /// AdamW with a factored second moment (`factored_optimizer`).
    #[serde(default)]
    pub factored_optimizer: bool,
    /// Real batches instead of `batch` x `seq`: the token length of each row
    /// of each step's batch (warm-up first), from [`real_lengths`]; rows are
    /// padded to their batch's longest, as training pads them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_lengths: Option<Vec<Vec<usize>>>,
    /// Weights stored in bf16 (no f32 master copy; bf16 compute).
    #[serde(default)]
    pub bf16_weights: bool,
    /// How bf16 weights take the update (`bf16_update`).
    #[serde(default)]
    pub bf16_update: Option<Bf16Update>,
    /// Update inside backward (`fused_update`; needs checkpointing).
    #[serde(default)]
    pub fused_update: bool,
    /// Freed memory goes back to the OS at once, so the peak resident set
    /// follows the live tensors (what the estimate counts) instead of the
    /// allocator's cache (slower; see `alloc::return_freed_memory`).
    #[serde(default)]
    pub live_memory: bool,
    /// The encoder layers through candle's autograd instead of their
    /// hand-written CPU forward and backward (the path before them, to
    /// compare with; `Encoder::handwritten_layers`).
    #[serde(default)]
    pub autograd_layers: bool,
    /// AdamW's second moment in 8 bits (`eight_bit_second_moment`).
    #[serde(default)]
    pub eight_bit_second_moment: bool,
}

impl BenchSpec {
    /// The precision the two flags `bf16` and `bf16_weights` (kept as they
    /// are in the results' JSON) stand for.
    pub fn precision(&self) -> Precision {
        if self.bf16_weights {
            Precision::Bf16
        } else if self.bf16 {
            Precision::MixedBf16
        } else {
            Precision::F32
        }
    }

    /// Sets both flags from a precision.
    pub fn set_precision(&mut self, p: Precision) {
        self.bf16 = p == Precision::MixedBf16;
        self.bf16_weights = p == Precision::Bf16;
    }

    /// The shape of `config` at `batch` x `seq`: 5 timed steps after one
    /// warm-up, f32, no checkpointing.
    pub fn new(config: &XlmrConfig, batch: usize, seq: usize) -> Self {
        BenchSpec {
            vocab: config.vocab_size,
            hidden: config.hidden_size,
            layers: config.num_hidden_layers,
            heads: config.num_attention_heads,
            ffn: config.intermediate_size,
            variant: config.variant,
            batch,
            seq,
            steps: 5,
            warmup: 1,
            bf16: false,
            checkpointing: false,
            eval_only: false,
            factored_optimizer: false,
            row_lengths: None,
            bf16_weights: false,
            bf16_update: None,
            fused_update: false,
            live_memory: false,
            autograd_layers: false,
            eight_bit_second_moment: false,
        }
    }

    /// The shape of a named size (`xlmr-base`, ...).
    pub fn from_size(name: &str, batch: usize, seq: usize) -> Result<Self> {
        Ok(Self::new(
            &sizes::size_or_error(name)?.config()?,
            batch,
            seq,
        ))
    }
}

/// Medians in milliseconds, and what was measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchResult {
    pub spec: BenchSpec,
    pub device: String,
    pub parameters: usize,
    pub train_ms: f64,
    pub eval_ms: f64,
    /// Training step split: forward+loss, backward, optimizer (incl. clipping).
    pub forward_ms: f64,
    pub backward_ms: f64,
    pub optimizer_ms: f64,
    pub train_samples: Vec<f64>,
    pub eval_samples: Vec<f64>,
    /// What the training step should need ([`memory::estimate`]).
    pub memory_estimate: MemoryEstimate,
    /// Resident memory of the process before the model is built (the
    /// binary and its runtime: not part of the estimate).
    pub resident_at_start: Option<u64>,
    /// Resident memory once the model is built (before the optimizer).
    pub resident_after_model: Option<u64>,
    /// Resident memory before the first training step and its peak after
    /// the timed steps (CPU; on a GPU these are host memory only).
    pub resident_before_train: Option<u64>,
    pub peak_resident_train: Option<u64>,
    /// Threads of rayon's pool and of candle's element-wise pool
    /// (`CANDLE_NUM_THREADS`), as `stilts::threads::configure` set them.
    pub threads: usize,
    pub candle_threads: Option<usize>,
    /// Peak resident memory at the end of each phase of each training
    /// step (`forward 1`, `backward 1`, `update 1`, ...): where it grows.
    pub step_peaks: Vec<(String, u64)>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn sync(device: &Device) -> Result<()> {
    device.synchronize()?;
    Ok(())
}

/// Runs the benchmark on `device`.
pub fn run(spec: &BenchSpec, device: &Device) -> Result<BenchResult> {
    if spec.live_memory {
        crate::alloc::return_freed_memory();
    }
    let resident_at_start = memory::resident_bytes();
    let max_pos = spec.seq + 2;
    let cfg = XlmrConfig::new(
        spec.variant,
        spec.vocab,
        spec.hidden,
        spec.layers,
        spec.heads,
        spec.ffn,
        max_pos.max(514),
    )?;
    let head = HeadKind::Classification {
        labels: vec![
            "entailment".into(),
            "neutral".into(),
            "contradiction".into(),
        ],
    };
    if spec.fused_update && !spec.checkpointing {
        return Err(Error::msg(
            "--fused-update needs --checkpointing (the update runs in the recomputed backward)",
        ));
    }
    if spec.bf16_update.is_some() && !spec.bf16_weights {
        return Err(Error::msg(
            "--bf16-update is for bf16 weights: add --dtype bf16-weights",
        ));
    }
    let dtype = if spec.bf16_weights {
        DType::BF16
    } else {
        DType::F32
    };
    let mut model = Model::random(&cfg, head, 0, device, dtype)?;
    if spec.bf16 {
        model = model.with_compute_dtype(DType::BF16);
    }
    model = model.with_gradient_checkpointing(spec.checkpointing);
    model.encoder.handwritten_layers = !spec.autograd_layers;
    // Counted before any inference view (which holds no trainable parameters).
    let parameters = model.num_parameters();
    let resident_after_model = memory::resident_bytes();
    let memory_estimate = memory::estimate(
        &cfg,
        parameters as u64,
        &RunShape {
            batch: spec.batch,
            seq: spec.seq,
            precision: spec.precision(),
            checkpointing: spec.checkpointing,
            factored_optimizer: spec.factored_optimizer,
            kahan: spec.bf16_update == Some(Bf16Update::Kahan),
            fused_update: spec.fused_update,
            eight_bit_second_moment: spec.eight_bit_second_moment,
            by_hand: device.is_cpu() && spec.precision() == Precision::F32 && !spec.autograd_layers,
        },
    );
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    // One batch per step: the fixed shape, or each step's real row lengths.
    let shapes: Vec<Vec<usize>> = match &spec.row_lengths {
        Some(r) if !r.is_empty() => r.clone(),
        _ => vec![vec![spec.seq; spec.batch]],
    };
    let mut batches = vec![];
    for lens in &shapes {
        let rows: Vec<Vec<u32>> = lens
            .iter()
            .map(|&len| {
                std::iter::once(0)
                    .chain((0..len.max(2) - 2).map(|_| rng.random_range(3..spec.vocab as u32)))
                    .chain(std::iter::once(2))
                    .collect()
            })
            .collect();
        let labels: Vec<i64> = (0..lens.len()).map(|i| (i % 3) as i64).collect();
        batches.push((
            Inputs::pad(&rows, 1, device)?,
            Target::Class(Tensor::new(labels, device)?),
        ));
    }
    let params = model.params();
    if spec.eval_only {
        model = model.for_inference()?;
    }
    // No optimizer state when only evaluating (big models).
    let mut opt = if spec.eval_only {
        None
    } else {
        Some(AdamW::new(
            params.clone(),
            AdamWConfig {
                lr: 1e-5,
                factored: spec.factored_optimizer,
                bf16_update: spec.bf16_update,
                eight_bit_second_moment: spec.eight_bit_second_moment,
                ..Default::default()
            },
        )?)
    };
    let mut dropout = DropoutRng::new(0);
    let resident_before_train = memory::resident_bytes();
    let (mut fw, mut bw, mut op, mut total) = (vec![], vec![], vec![], vec![]);
    let mut step_peaks = vec![];
    let peak = |what: &str, out: &mut Vec<(String, u64)>| {
        if let Some(b) = memory::peak_resident_bytes() {
            out.push((what.to_string(), b));
        }
    };
    let mut previous_norm = None;
    let train_steps = if spec.eval_only {
        0
    } else {
        spec.warmup + spec.steps
    };
    for i in 0..train_steps {
        let (inputs, target) = &batches[i % batches.len()];
        sync(device)?;
        let t0 = Instant::now();
        let loss = model.train_loss(inputs, target, Some(&mut dropout))?;
        let _ = loss.to_f64()?;
        let t1 = Instant::now();
        peak(&format!("forward {}", i + 1), &mut step_peaks);
        let t2;
        match opt.as_mut() {
            Some(opt) if spec.fused_update => {
                // Backward and update are one pass: counted as backward.
                previous_norm = Some(lowmem::backward_and_update(
                    loss,
                    &params,
                    opt,
                    1e-5,
                    1.0,
                    previous_norm,
                )?);
                sync(device)?;
                t2 = Instant::now();
                peak(&format!("backward {}", i + 1), &mut step_peaks);
            }
            opt => {
                let mut grads = loss.backward()?;
                sync(device)?;
                t2 = Instant::now();
                peak(&format!("backward {}", i + 1), &mut step_peaks);
                if spec.bf16_update.is_some() || spec.eight_bit_second_moment {
                    // The clip factor folded into the update.
                    let norm = lowmem::grad_norm(&params, &grads)?;
                    if let Some(opt) = opt {
                        lowmem::step(opt, &grads, 1e-5, lowmem::clip_factor(norm, 1.0))?;
                    }
                } else {
                    clip_grad_norm(&params, &mut grads, 1.0)?;
                    if let Some(opt) = opt {
                        opt.step(&grads, 1e-5)?;
                    }
                }
            }
        }
        sync(device)?;
        let t3 = Instant::now();
        peak(&format!("update {}", i + 1), &mut step_peaks);
        if i >= spec.warmup {
            fw.push((t1 - t0).as_secs_f64() * 1e3);
            bw.push((t2 - t1).as_secs_f64() * 1e3);
            op.push((t3 - t2).as_secs_f64() * 1e3);
            total.push((t3 - t0).as_secs_f64() * 1e3);
        }
    }
    let peak_resident_train = memory::peak_resident_bytes();
    let mut eval = vec![];
    let model = model.for_inference()?;
    for i in 0..spec.warmup + spec.steps {
        let (inputs, _) = &batches[i % batches.len()];
        sync(device)?;
        let t0 = Instant::now();
        let logits = model.forward(inputs, None)?.logits()?.detach();
        let _ = logits.to_dtype(DType::F32)?.to_vec2::<f32>()?;
        if i >= spec.warmup {
            eval.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(BenchResult {
        spec: spec.clone(),
        device: format!("{:?}", device.location()),
        parameters,
        train_ms: median(total.clone()),
        eval_ms: median(eval.clone()),
        forward_ms: median(fw),
        backward_ms: median(bw),
        optimizer_ms: median(op),
        train_samples: total,
        eval_samples: eval,
        memory_estimate,
        resident_at_start,
        resident_after_model,
        resident_before_train,
        peak_resident_train,
        threads: rayon::current_num_threads(),
        candle_threads: std::env::var("CANDLE_NUM_THREADS")
            .ok()
            .and_then(|s| s.parse().ok()),
        step_peaks,
    })
}

/// Row lengths of `count` real training batches of `batch` pairs: the
/// pairs of XNLI dev in its 15 languages (`which = "xnli"`, from
/// `DATA/xnli`) or of English MNLI train (`"mnli"`, from
/// `DATA/intermediate/mnli`), tokenized with XLM-R's tokenizer
/// (`DATA/xlmr/tokenizer.json`) and truncated to `max_length`, batched as
/// training batches them (length buckets of 50 batches, shuffled; seed 0),
/// the first `count` batches. What `stilts bench --lengths` times, and
/// what it prints (`spec.row_lengths`) for `benches/torch_reference.py
/// --rows-from` to time the same batches.
pub fn real_lengths(
    which: &str,
    data: &std::path::Path,
    batch: usize,
    max_length: usize,
    count: usize,
) -> Result<Vec<Vec<usize>>> {
    use stilts_protocol::presets::RunOptions;
    use stilts_protocol::run;
    use stilts_tasks::{batch::BatchSize, cache::FeatureCache, io::ReadOptions};
    let read = ReadOptions::default();
    let parts = match which {
        "xnli" => XNLI_LANGUAGES
            .iter()
            .map(|l| stilts_tasks::load("xnli", &data.join("xnli"), "dev", Some(l), &read))
            .collect::<Result<Vec<_>>>()?,
        "mnli" => vec![stilts_tasks::load(
            "mnli",
            &data.join("intermediate").join("mnli"),
            "train",
            None,
            &read,
        )?],
        other => {
            return Err(Error::msg(format!(
                "--lengths `{other}`: use xnli (XNLI dev, 15 languages) or mnli (MNLI train)"
            )))
        }
    };
    let tok = stilts_model::Tokenizer::from_file(&data.join("xlmr").join("tokenizer.json"))?;
    let enc = run::text_encoder(&tok)?;
    let opts = RunOptions {
        max_length,
        ..Default::default()
    };
    let mut lens = vec![];
    for ds in &parts {
        let f = run::features(ds, &enc, &opts, &FeatureCache::default())?;
        lens.extend(stilts_tasks::batch::lengths(&f));
    }
    let batches = stilts_tasks::batch::train_batches(&lens, BatchSize::Examples(batch.max(1)), 0);
    if batches.len() < count {
        return Err(Error::msg(format!(
            "--lengths {which}: {} pairs make only {} batches of {batch}; ask for fewer --steps",
            lens.len(),
            batches.len()
        )));
    }
    Ok(batches
        .iter()
        .take(count)
        .map(|b| b.iter().map(|&i| lens[i]).collect())
        .collect())
}

/// XNLI test evaluation throughput of one language.
#[derive(Clone, Debug, serde::Serialize)]
pub struct XnliLanguage {
    pub language: String,
    pub pairs: usize,
    pub accuracy: f64,
    /// Tokenization and features alone (the evaluation includes them too).
    pub tokenize_s: f64,
    /// Reading aside: features, batching, forward passes, scoring.
    pub evaluate_s: f64,
}

/// XNLI test evaluation throughput over the 15 languages.
#[derive(Clone, Debug, serde::Serialize)]
pub struct XnliThroughput {
    pub model: String,
    pub device: String,
    pub batch_size: usize,
    pub max_length: usize,
    pub pairs: usize,
    pub evaluate_s: f64,
    pub pairs_per_s: f64,
    pub languages: Vec<XnliLanguage>,
}

/// The 15 XNLI languages.
pub const XNLI_LANGUAGES: [&str; 15] = [
    "ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh",
];

/// Evaluates `model` on the XNLI test files under `data` (`test-{lang}.tsv`)
/// the way `evaluate()` in a recipe does (length-sorted batches of
/// `batch_size`, truncation to `max_length`), timing each language.
/// `limit`: the first N pairs of each language (quick runs on a CPU).
pub fn xnli_throughput(
    model: &Model,
    model_name: &str,
    data: &std::path::Path,
    batch_size: usize,
    max_length: usize,
    limit: Option<usize>,
) -> Result<XnliThroughput> {
    use stilts_protocol::presets::RunOptions;
    use stilts_protocol::run;
    use stilts_tasks::{cache::FeatureCache, io::ReadOptions};
    let opts = RunOptions {
        batch_size,
        max_length,
        limit,
        ..Default::default()
    };
    let read = ReadOptions {
        first: limit,
        ..Default::default()
    };
    let tokenizer = model.tokenizer.as_ref().ok_or_else(|| {
        Error::msg(format!(
            "{model_name} has no tokenizer.json: XNLI evaluation needs the model's tokenizer"
        ))
    })?;
    let encoder = run::text_encoder(tokenizer)?;
    let never = std::sync::atomic::AtomicBool::new(false);
    let mut languages = vec![];
    for lang in XNLI_LANGUAGES {
        let ds = stilts_tasks::load("xnli", data, "test", Some(lang), &read)?;
        let t0 = Instant::now();
        let _ = run::features(&ds, &encoder, &opts, &FeatureCache::default())?;
        let tokenize_s = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let e = run::evaluate(
            model,
            &ds,
            &opts,
            &mut stilts_protocol::train::Silent,
            &never,
        )?;
        languages.push(XnliLanguage {
            language: lang.to_string(),
            pairs: e.n,
            accuracy: e.score,
            tokenize_s,
            evaluate_s: t0.elapsed().as_secs_f64(),
        });
    }
    let pairs = languages.iter().map(|l| l.pairs).sum();
    let evaluate_s = languages.iter().map(|l| l.evaluate_s).sum();
    Ok(XnliThroughput {
        model: model_name.to_string(),
        device: format!("{:?}", model.encoder.device().location()),
        batch_size,
        max_length,
        pairs,
        evaluate_s,
        pairs_per_s: pairs as f64 / evaluate_s,
        languages,
    })
}
