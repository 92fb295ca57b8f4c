//! Masked language modelling as a task: transformers'
//! `DataCollatorForLanguageModeling` on raw text (15% of the non-special
//! tokens are predicted; of those 80% become `<mask>`, 10% a random token,
//! 10% stay), usable alone or as one task of a multi-task mix.

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::train::{Epoch, TrainBatch};
use stilts_model::error::{Error, Result};
use stilts_model::loss::IGNORE_INDEX;
use stilts_model::{Inputs, Target, Tokenizer};

/// Masking settings.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct MlmOptions {
    /// Chance that a non-special token is chosen for prediction (default 0.15).
    pub probability: f64,
    /// Rows per batch (default 32; 0 counts as 1).
    pub batch_size: usize,
    /// Rows in random order (default true); false: in the order given
    /// (`shuffle: false`; the masks are still drawn from the seed).
    #[serde(default = "shuffled")]
    pub shuffle: bool,
}

fn shuffled() -> bool {
    true
}

impl Default for MlmOptions {
    fn default() -> Self {
        MlmOptions {
            probability: 0.15,
            batch_size: 32,
            shuffle: true,
        }
    }
}

/// Masks one row: returns the model input and the labels (the original id
/// where a token is to be predicted, -100 elsewhere). Special tokens
/// (`<s>`, `</s>`, `<pad>`) are never chosen.
pub fn mask_row(
    ids: &[u32],
    special: &[u32],
    mask_id: u32,
    vocab: usize,
    p: f64,
    rng: &mut ChaCha8Rng,
) -> (Vec<u32>, Vec<i64>) {
    let mut input = ids.to_vec();
    let mut labels = vec![IGNORE_INDEX; ids.len()];
    for (i, &id) in ids.iter().enumerate() {
        if special.contains(&id) || rng.random::<f64>() >= p {
            continue;
        }
        labels[i] = id as i64;
        let r: f64 = rng.random();
        if r < 0.8 {
            input[i] = mask_id;
        } else if r < 0.9 {
            input[i] = rng.random_range(0..vocab as u32);
        }
    }
    (input, labels)
}

/// The MLM batches of one epoch over `lines`: shuffled and masked afresh
/// from `(seed, epoch)`, so an epoch can be rebuilt exactly (resume). The
/// masks are drawn now, in order (token ids only); each batch's tensors
/// are made when the training loop reaches it.
pub fn epoch_batches(
    tok: &Tokenizer,
    encoded: &[Vec<u32>],
    opts: &MlmOptions,
    seed: u64,
    epoch: usize,
    device: &Device,
) -> Result<Epoch<'static>> {
    let mask_id = tok.token_id("<mask>").ok_or_else(|| {
        Error::config(
            tok.path(),
            "the tokenizer has no <mask> token, needed for MLM",
        )
    })?;
    let special: Vec<u32> = ["<s>", "</s>", "<pad>"]
        .iter()
        .filter_map(|t| tok.token_id(t))
        .collect();
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = (0..encoded.len()).collect();
    use rand::seq::SliceRandom;
    if opts.shuffle {
        order.shuffle(&mut rng);
    }
    // (masked rows, their labels) of each batch.
    let masked: Vec<(Vec<Vec<u32>>, Vec<Vec<i64>>)> = order
        .chunks(opts.batch_size.max(1))
        .map(|chunk| {
            chunk
                .iter()
                .map(|&i| {
                    mask_row(
                        &encoded[i],
                        &special,
                        mask_id,
                        tok.vocab_size(),
                        opts.probability,
                        &mut rng,
                    )
                })
                .unzip()
        })
        .collect();
    let shapes = masked
        .iter()
        .map(|(rows, _)| (rows.len(), rows.iter().map(Vec::len).max().unwrap_or(0)))
        .collect();
    let (pad, device) = (tok.pad_id(), device.clone());
    Ok(Epoch::planned(shapes, move |i| {
        let (rows, labels) = &masked[i];
        let inputs = Inputs::pad(rows, pad, &device)?;
        let (_, t) = inputs.dims()?;
        let flat: Vec<i64> = labels
            .iter()
            .flat_map(|l| {
                l.iter()
                    .copied()
                    .chain(std::iter::repeat_n(IGNORE_INDEX, t - l.len()))
            })
            .collect();
        let target = Target::Tags(Tensor::from_vec(flat, (rows.len(), t), &device)?);
        Ok(TrainBatch {
            task: 0,
            inputs,
            target,
        })
    }))
}

/// Reads a raw text file (one sentence or paragraph a line; blank lines
/// skipped) and encodes it, truncated to `max_length`.
pub fn read_text(
    path: &std::path::Path,
    tok: &Tokenizer,
    max_length: usize,
) -> Result<Vec<Vec<u32>>> {
    let text = stilts_model::error::read_to_string(path)?;
    let lines: Vec<(String, Option<String>)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| (l.to_string(), None))
        .collect();
    if lines.is_empty() {
        return Err(Error::config(path, "no text to train the MLM task on"));
    }
    tok.encode_batch(&lines, max_length)
}
