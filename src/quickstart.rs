//! The quick start: the STILTs protocol end to end on an embedded default
//! (a tiny random XLM-R and small data written for stilts, in
//! `data/quickstart/`), with and without an intermediate task, evaluated
//! zero-shot in six languages. Deterministic on the CPU.
//!
//! This is the placeholder main job until the rhai runtime carries the
//! recipe (`scripts/quickstart.rhai`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use candle_core::{DType, Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::error::{Error, Result};
use crate::model::{Encoder, HeadKind, Inputs, Model, Target, Tokenizer, Variant, XlmrConfig};
use crate::protocol::train::{fine_tune, predict_classes, Progress, TrainBatch, TrainOptions};

const NLI_TRAIN: &str = include_str!("../data/quickstart/nli_train_en.tsv");
const SENTIMENT: &str = include_str!("../data/quickstart/sentiment_en.tsv");
const NLI_EVAL: &str = include_str!("../data/quickstart/nli_eval.tsv");
const MAX_LEN: usize = 64;

struct Labelled {
    first: String,
    second: Option<String>,
    label: usize,
}

fn parse(
    name: &str,
    text: &str,
    lang_column: bool,
    labels: &[&str],
) -> Result<Vec<(String, Labelled)>> {
    let mut out = vec![];
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.is_empty()) {
        let mut f: Vec<&str> = line.split('\t').collect();
        let lang = if lang_column {
            f.remove(0).to_string()
        } else {
            "en".into()
        };
        let bad = |m: String| Error::Data {
            path: name.into(),
            line: i + 1,
            msg: m,
        };
        let label = f.pop().ok_or_else(|| bad("empty line".into()))?;
        let label = labels
            .iter()
            .position(|l| *l == label)
            .ok_or_else(|| bad(format!("label `{label}` not in {labels:?}")))?;
        let ex = match f.as_slice() {
            [a] => Labelled {
                first: a.to_string(),
                second: None,
                label,
            },
            [a, b] => Labelled {
                first: a.to_string(),
                second: Some(b.to_string()),
                label,
            },
            _ => return Err(bad("wrong number of columns".into())),
        };
        out.push((lang, ex));
    }
    Ok(out)
}

fn encode(tok: &Tokenizer, data: &[&Labelled]) -> Result<Vec<Vec<u32>>> {
    let items: Vec<(String, Option<String>)> = data
        .iter()
        .map(|e| (e.first.clone(), e.second.clone()))
        .collect();
    tok.encode_batch(&items, MAX_LEN)
}

fn batches(
    tok: &Tokenizer,
    ids: &[Vec<u32>],
    labels: &[usize],
    order: &[usize],
    size: usize,
) -> Result<Vec<TrainBatch>> {
    order
        .chunks(size)
        .map(|c| {
            let rows: Vec<Vec<u32>> = c.iter().map(|&i| ids[i].clone()).collect();
            let y: Vec<i64> = c.iter().map(|&i| labels[i] as i64).collect();
            Ok((
                Inputs::pad(&rows, tok.pad_id(), &Device::Cpu)?,
                Target::Class(Tensor::new(y, &Device::Cpu)?),
            )
                .into())
        })
        .collect()
}

/// Fine-tunes `model` on `data` with shuffled batches from `seed`.
fn train_on(
    model: &Model,
    tok: &Tokenizer,
    data: &[&Labelled],
    opts: &TrainOptions,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<()> {
    let ids = encode(tok, data)?;
    let labels: Vec<usize> = data.iter().map(|e| e.label).collect();
    let seed = opts.seed;
    let mut next = |epoch: usize| {
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
            seed * 1000 + epoch as u64,
        ));
        batches(tok, &ids, &labels, &order, 16)
    };
    let report = fine_tune(model, &mut next, opts, progress, cancel)?;
    if report.cancelled {
        return Err(Error::msg("interrupted"));
    }
    Ok(())
}

fn accuracy_by_language(
    model: &Model,
    tok: &Tokenizer,
    eval: &[(String, Labelled)],
) -> Result<BTreeMap<String, f64>> {
    let data: Vec<&Labelled> = eval.iter().map(|(_, e)| e).collect();
    let ids = encode(tok, &data)?;
    let order: Vec<usize> = (0..ids.len()).collect();
    let inputs: Vec<Inputs> = batches(tok, &ids, &vec![0; ids.len()], &order, 64)?
        .into_iter()
        .map(|b| b.inputs)
        .collect();
    let pred = predict_classes(model, &inputs)?;
    let mut hits: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for ((lang, ex), p) in eval.iter().zip(pred) {
        let e = hits.entry(lang.clone()).or_default();
        e.0 += (p == ex.label) as usize;
        e.1 += 1;
    }
    Ok(hits
        .into_iter()
        .map(|(l, (h, n))| (l, 100.0 * h as f64 / n as f64))
        .collect())
}

/// Per-language accuracy of the two conditions.
pub struct QuickstartResult {
    pub baseline: BTreeMap<String, f64>,
    pub stilts: BTreeMap<String, f64>,
}

impl QuickstartResult {
    pub fn table(&self) -> comfy_table::Table {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        t.set_header(vec![
            "language",
            "NLI only",
            "sentiment → NLI (STILTs)",
            "Δ",
        ]);
        let avg = |m: &BTreeMap<String, f64>| m.values().sum::<f64>() / m.len().max(1) as f64;
        for (lang, b) in &self.baseline {
            let s = self.stilts[lang];
            t.add_row(vec![
                lang.clone(),
                format!("{b:.1}"),
                format!("{s:.1}"),
                format!("{:+.1}", s - b),
            ]);
        }
        let (b, s) = (avg(&self.baseline), avg(&self.stilts));
        t.add_row(vec![
            "avg".into(),
            format!("{b:.1}"),
            format!("{s:.1}"),
            format!("{:+.1}", s - b),
        ]);
        t
    }
}

/// Runs the quick start and writes `report.md`, `results.json` and the
/// model directories under `out`.
pub fn run(
    out: &Path,
    progress: &mut dyn FnMut(&str) -> Box<dyn Progress>,
    cancel: &AtomicBool,
) -> Result<QuickstartResult> {
    let nli = ["entailment", "neutral", "contradiction"];
    let train = parse("data/quickstart/nli_train_en.tsv", NLI_TRAIN, false, &nli)?;
    let sentiment = parse(
        "data/quickstart/sentiment_en.tsv",
        SENTIMENT,
        false,
        &["negative", "positive"],
    )?;
    let eval = parse("data/quickstart/nli_eval.tsv", NLI_EVAL, true, &nli)?;

    // Phase 1 stand-in: a tokenizer trained on all the text and a random encoder.
    let texts: Vec<String> = train
        .iter()
        .chain(&sentiment)
        .chain(&eval)
        .flat_map(|(_, e)| std::iter::once(e.first.clone()).chain(e.second.clone()))
        .collect();
    let tok = Tokenizer::train_unigram(&texts, 600)?;
    let config = XlmrConfig::new(
        Variant::PostLayerNorm,
        tok.vocab_size(),
        64,
        2,
        4,
        128,
        MAX_LEN + 2,
    )?;
    let nli_head = HeadKind::Classification {
        labels: nli.iter().map(|s| s.to_string()).collect(),
    };
    let pretrained: Encoder =
        Model::random(&config, nli_head.clone(), 0, &Device::Cpu, DType::F32)?.encoder;
    let opts = TrainOptions {
        adamw: crate::protocol::optim::AdamWConfig {
            lr: 1e-3,
            ..Default::default()
        },
        epochs: 4,
        seed: 1,
        ..Default::default()
    };
    let train_ref: Vec<&Labelled> = train.iter().map(|(_, e)| e).collect();
    let sent_ref: Vec<&Labelled> = sentiment.iter().map(|(_, e)| e).collect();

    // Baseline: pretrained → NLI.
    let baseline = Model::with_head(
        pretrained.to(&Device::Cpu, DType::F32)?,
        nli_head.clone(),
        1,
    )?;
    train_on(
        &baseline,
        &tok,
        &train_ref,
        &opts,
        &mut *progress("baseline: NLI"),
        cancel,
    )?;

    // STILTs: pretrained → sentiment → (fresh head) NLI.
    let sent_head = HeadKind::Classification {
        labels: vec!["negative".into(), "positive".into()],
    };
    let intermediate = Model::with_head(pretrained.to(&Device::Cpu, DType::F32)?, sent_head, 2)?;
    train_on(
        &intermediate,
        &tok,
        &sent_ref,
        &opts,
        &mut *progress("STILTs: sentiment"),
        cancel,
    )?;
    let target = Model::with_head(intermediate.encoder.clone(), nli_head, 1)?;
    train_on(
        &target,
        &tok,
        &train_ref,
        &opts,
        &mut *progress("STILTs: NLI"),
        cancel,
    )?;

    let result = QuickstartResult {
        baseline: accuracy_by_language(&baseline, &tok, &eval)?,
        stilts: accuracy_by_language(&target, &tok, &eval)?,
    };
    let mut saved = target.clone();
    saved.tokenizer = Some(tok);
    saved.save(&out.join("model"))?;
    let md = format!(
        "# stilts quick start\n\nTiny random XLM-R ({} layers, hidden {}), tokenizer trained on the bundled text; \
         English-only training, zero-shot evaluation (accuracy, %).\n\n```\n{}\n```\n\nThe STILTs model is saved in `model/` (Hugging Face layout).\n",
        config.num_hidden_layers, config.hidden_size, result.table()
    );
    crate::util::write_atomic(&out.join("report.md"), md.as_bytes())?;
    let json = serde_json::json!({ "baseline": result.baseline, "stilts": result.stilts });
    crate::util::write_atomic(
        &out.join("results.json"),
        serde_json::to_string_pretty(&json)
            .unwrap_or_default()
            .as_bytes(),
    )?;
    Ok(result)
}
