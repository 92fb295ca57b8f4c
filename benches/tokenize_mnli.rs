//! Tokenization throughput on MNLI pairs: the 9,000-pair MNLI train sample
//! in `../shared/data/intermediate/mnli/`, cycled to 100,000 pairs, through
//! `stilts::tasks::featurize` (XLM-R `tokenizer.json`, max length 128,
//! chunks of 4,096 on all cores). `benches/tokenize_mnli.py` does the same
//! with Python `tokenizers`. Run: `cargo bench --bench tokenize_mnli`.

use std::path::PathBuf;
use std::time::Instant;

use stilts::tasks::features::featurize_examples;
use stilts::tasks::{self, FeatureOptions, ReadOptions, TextEncoder};

const PAIRS: usize = 100_000;
const REPEATS: usize = 3;

fn main() -> stilts::Result<()> {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("shared")
        .join("data");
    let t = Instant::now();
    let ds = tasks::load(
        "mnli",
        &data.join("intermediate").join("mnli"),
        "train",
        None,
        &ReadOptions::default(),
    )?;
    let read_s = t.elapsed().as_secs_f64();
    let examples: Vec<_> = ds.examples.iter().cycle().take(PAIRS).cloned().collect();
    let t = Instant::now();
    let enc = TextEncoder::from_file(&data.join("xlmr").join("tokenizer.json"))?;
    let load_s = t.elapsed().as_secs_f64();
    println!("threads: {} (rayon)", rayon::current_num_threads());
    println!(
        "read {} pairs: {:.3} s ({:.0} pairs/s); tokenizer load {:.2} s",
        ds.len(),
        read_s,
        ds.len() as f64 / read_s,
        load_s
    );
    let opts = FeatureOptions {
        max_length: 128,
        ..Default::default()
    };
    // Warm-up (and a check that every pair became a feature).
    let warm = featurize_examples(&examples[..4096], &enc, &opts)?;
    assert_eq!(warm.len(), 4096);
    let mut best = f64::INFINITY;
    let mut tokens = 0usize;
    for r in 0..REPEATS {
        let t = Instant::now();
        let feats = featurize_examples(&examples, &enc, &opts)?;
        let s = t.elapsed().as_secs_f64();
        tokens = feats.iter().map(|f| f.len()).sum();
        println!(
            "run {r}: {} pairs in {:.3} s = {:.0} examples/s",
            feats.len(),
            s,
            feats.len() as f64 / s
        );
        best = best.min(s);
    }
    println!("stilts featurize (max_length 128): best {:.0} examples/s, {:.0} tokens/s, {:.1} tokens/pair", PAIRS as f64 / best, tokens as f64 / best, tokens as f64 / PAIRS as f64);
    Ok(())
}
