//! MLM masking follows the 15% / 80-10-10 recipe, and MLM trains.

use crate::common;

use std::sync::atomic::AtomicBool;

use candle_core::{DType, Device};
use rand::SeedableRng;
use stilts_model::{HeadKind, Model, Tokenizer, Variant, XlmrConfig};
use stilts_protocol::mlm::{epoch_batches, mask_row, MlmOptions};
use stilts_protocol::optim::AdamWConfig;
use stilts_protocol::train::{fine_tune, Silent, TrainOptions};

#[test]
fn masking_rates_follow_the_recipe() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let ids: Vec<u32> = std::iter::once(0)
        .chain((0..20_000).map(|i| 10 + i % 50))
        .chain(std::iter::once(2))
        .collect();
    let (input, labels) = mask_row(&ids, &[0, 1, 2], 99, 100, 0.15, &mut rng);
    assert_eq!(labels[0], -100);
    assert_eq!(*labels.last().unwrap(), -100);
    let chosen: Vec<usize> = (0..ids.len()).filter(|&i| labels[i] != -100).collect();
    let rate = chosen.len() as f64 / 20_000.0;
    assert!((rate - 0.15).abs() < 0.01, "masked {rate}");
    let masked = chosen.iter().filter(|&&i| input[i] == 99).count() as f64 / chosen.len() as f64;
    let kept = chosen.iter().filter(|&&i| input[i] == ids[i]).count() as f64 / chosen.len() as f64;
    assert!((masked - 0.8).abs() < 0.03, "<mask> share {masked}");
    // "kept" includes random draws that hit the same id (1 in 100).
    assert!((kept - 0.1).abs() < 0.03, "kept share {kept}");
    for (i, l) in labels.iter().enumerate() {
        if *l != -100 {
            assert_eq!(*l, ids[i] as i64);
        } else {
            assert_eq!(input[i], ids[i]);
        }
    }
}

#[test]
fn mlm_loss_falls_on_repetitive_text() {
    let texts = common::sample_texts();
    let tok = Tokenizer::train_unigram(&texts, 200).unwrap();
    let cfg = XlmrConfig::new(Variant::PreLayerNorm, tok.vocab_size(), 32, 2, 4, 64, 40).unwrap();
    let model = Model::random(&cfg, HeadKind::MaskedLm, 1, &Device::Cpu, DType::F32).unwrap();
    let items: Vec<(String, Option<String>)> = texts.iter().map(|t| (t.clone(), None)).collect();
    let encoded = tok.encode_batch(&items, 38).unwrap();
    let opts = MlmOptions {
        probability: 0.3,
        batch_size: 16,
        ..Default::default()
    };
    let a = epoch_batches(&tok, &encoded, &opts, 5, 0, &Device::Cpu)
        .unwrap()
        .collate_all()
        .unwrap();
    let b = epoch_batches(&tok, &encoded, &opts, 5, 0, &Device::Cpu)
        .unwrap()
        .collate_all()
        .unwrap();
    let ids = |x: &stilts_protocol::train::TrainBatch| {
        x.inputs
            .input_ids
            .flatten_all()
            .unwrap()
            .to_vec1::<u32>()
            .unwrap()
    };
    assert_eq!(
        ids(&a[0]),
        ids(&b[0]),
        "an epoch must be rebuilt identically"
    );
    let train = TrainOptions {
        adamw: AdamWConfig {
            lr: 2e-3,
            ..Default::default()
        },
        epochs: 12,
        ..Default::default()
    };
    let report = fine_tune(
        &model,
        &mut |e| epoch_batches(&tok, &encoded, &opts, 5, e, &Device::Cpu),
        &train,
        &mut Silent,
        &AtomicBool::new(false),
    )
    .unwrap();
    let n = a.len();
    let first: f64 = report.losses[..n].iter().sum::<f64>() / n as f64;
    let last: f64 = report.losses[report.losses.len() - n..].iter().sum::<f64>() / n as f64;
    assert!(last < first * 0.9, "MLM loss {first} -> {last}");
}
