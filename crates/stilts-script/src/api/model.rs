//! Models: load, tiny, save, predict, properties.

use super::doc::{entry, ApiDoc};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use candle_core::{DType, Device};
use rhai::{Array, CustomType, Dynamic, Engine, Map, TypeBuilder};

use super::{rerr, RResult};
use crate::context::{device_name, Ctx};
use crate::options::{from_map, ModelArgs, TinyArgs};
use crate::values::{ModelValue, TaskValue};
use stilts_model::{tiny, HeadKind, LoadOptions, Model, Variant, XlmrConfig};
use stilts_tasks::Example;

impl CustomType for ModelValue {
    fn build(mut b: TypeBuilder<Self>) {
        b.with_name("Model")
            .with_get("name", |m: &mut Self| m.name.clone())
            .with_get("arch", |m: &mut Self| m.model.architecture())
            .with_get("head", |m: &mut Self| {
                if m.pretrained {
                    "none".to_string()
                } else {
                    m.model.head.kind.name().to_string()
                }
            })
            .with_get("labels", |m: &mut Self| {
                m.model
                    .head
                    .kind
                    .labels()
                    .iter()
                    .map(|l| Dynamic::from(l.clone()))
                    .collect::<Array>()
            })
            .with_get("params", |m: &mut Self| m.model.num_parameters() as i64)
            .with_get("layers", |m: &mut Self| {
                m.model.config().num_hidden_layers as i64
            })
            .with_get("hidden", |m: &mut Self| m.model.config().hidden_size as i64)
            .with_get("device", |m: &mut Self| {
                device_name(m.model.encoder.device())
            })
            .with_get("fingerprint", |m: &mut Self| m.fingerprint.clone())
            .with_get("training", |m: &mut Self| -> RResult<Dynamic> {
                match &m.training {
                    None => Ok(Dynamic::UNIT),
                    Some(t) => rhai::serde::to_dynamic(t.as_ref()),
                }
            });
    }
}

/// The head a script names (`classification`, `multiple_choice`, `span_qa`,
/// `tagging`); `labels` (default: the NLI labels) for the two that take them.
pub fn head_kind(name: &str, labels: Option<Vec<String>>) -> RResult<HeadKind> {
    let labels = labels.unwrap_or_else(stilts_tasks::readers::nli_labels);
    Ok(match name {
        "classification" => HeadKind::Classification { labels },
        "multiple_choice" => HeadKind::MultipleChoice,
        "span_qa" => HeadKind::SpanQa,
        "tagging" => HeadKind::Tagging { labels },
        other => {
            return Err(rerr(format!(
                "unknown head `{other}`; heads: classification, multiple_choice, span_qa, tagging"
            )))
        }
    })
}

fn dtype(s: Option<&str>) -> RResult<DType> {
    stilts_model::dtype::storage_dtype(s.unwrap_or("f32")).map_err(rerr)
}

/// `model(spec, opts)`.
pub fn load(ctx: &Ctx, spec: &str, args: ModelArgs) -> RResult<ModelValue> {
    let local = ctx.path(spec);
    let spec_s = if local.is_dir() {
        local.display().to_string()
    } else {
        spec.to_string()
    };
    let dir = stilts_model::load::resolve(&spec_s).map_err(rerr)?;
    let cfg = XlmrConfig::from_file(&dir.join("config.json")).map_err(rerr)?;
    let fine_tuned = cfg
        .architectures
        .iter()
        .any(|a| HeadKind::from_architecture(a, &cfg.labels).is_some());
    if let (None, true, Some(l)) = (&args.head, fine_tuned, &args.labels) {
        if l != &cfg.labels {
            return Err(rerr(format!(
                "model(\"{spec}\"): `labels` {l:?} differ from its head's {:?} ({}); give head: \"classification\" too to put a fresh head with these labels on it",
                cfg.labels,
                dir.join("config.json").display()
            )));
        }
    }
    let (head, pretrained) = match &args.head {
        Some(h) => (Some(head_kind(h, args.labels.clone())?), false),
        None if fine_tuned => (None, false),
        None => (
            Some(HeadKind::Classification {
                labels: stilts_tasks::readers::nli_labels(),
            }),
            true,
        ),
    };
    let opts = LoadOptions {
        head,
        seed: args.seed.unwrap_or(0),
        device: ctx.settings.device.clone(),
        dtype: dtype(args.dtype.as_deref())?,
        layers: args.layers,
    };
    let m = Model::from_dir(&dir, &opts).map_err(|e| rerr(format!("model(\"{spec}\"): {e}")))?;
    for line in m.report.summary() {
        if !pretrained {
            ctx.note(&format!("note: {line}"));
        }
    }
    let files = stilts_protocol::fingerprint::model_files(&dir).map_err(rerr)?;
    let fingerprint = stilts_protocol::fingerprint::of_json(&serde_json::json!({
        "model_files": files,
        "head": args.head, "labels": args.labels, "seed": args.seed, "dtype": args.dtype,
        "layers": args.layers,
    }));
    Ok(ModelValue {
        model: Arc::new(m),
        name: match args.layers {
            Some(n) => format!("{spec} (first {n} layers)"),
            None => spec.to_string(),
        },
        pretrained,
        optimizer: None,
        fingerprint,
        training: None,
    })
}

/// Texts to train a tiny tokenizer on: strings, file paths, tasks, arrays of those.
fn collect_text(ctx: &Ctx, v: &Dynamic, out: &mut Vec<String>) -> RResult<()> {
    if let Some(t) = v.clone().try_cast::<TaskValue>() {
        for ds in t.parts.iter() {
            for e in &ds.examples {
                match e {
                    Example::Text { a, b, .. } => {
                        out.extend(std::iter::once(a.clone()).chain(b.clone()))
                    }
                    Example::Choice {
                        prompt, choices, ..
                    } => out.extend(std::iter::once(prompt.clone()).chain(choices.iter().cloned())),
                    Example::Span {
                        question, context, ..
                    } => out.extend([question.clone(), context.clone()]),
                    Example::Words { words, .. } => out.push(words.join(" ")),
                }
            }
        }
    } else if let Some(a) = v.clone().try_cast::<Array>() {
        for x in &a {
            collect_text(ctx, x, out)?;
        }
    } else if let Some(s) = v.clone().try_cast::<String>() {
        let p = ctx.path(&s);
        if p.is_file() {
            let text = stilts_tasks::io::read_text(&p).map_err(rerr)?;
            out.extend(
                text.lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| l.replace('\t', " ")),
            );
        } else {
            out.push(s);
        }
    } else {
        return Err(rerr(format!(
            "tiny_model: `text` takes strings, file paths or tasks, not {}",
            crate::values::type_name(v)
        )));
    }
    Ok(())
}

/// The key of `tiny_model`'s map that is not in [`TinyArgs`]: the text its
/// tokenizer is trained on (strings, paths or tasks: rhai values, taken
/// out before the rest is converted).
pub(crate) const TINY_TEXT_KEY: &str = "text";

/// `tiny_model(opts)`.
pub fn tiny_model(ctx: &Ctx, mut map: Map) -> RResult<ModelValue> {
    let text = map.remove(TINY_TEXT_KEY).ok_or_else(|| rerr("tiny_model: `text` is missing: give the text to train its tokenizer on (strings, file paths or tasks)"))?;
    let args: TinyArgs = from_map("tiny_model options", &map)?;
    let mut texts = vec![];
    collect_text(ctx, &text, &mut texts)?;
    if texts.is_empty() {
        return Err(rerr("tiny_model: `text` holds no text"));
    }
    let variant: Variant = args
        .arch
        .parse()
        .map_err(|e| rerr(format!("tiny_model: {e}")))?;
    if args.heads == 0 || args.hidden % args.heads != 0 {
        return Err(rerr(format!(
            "tiny_model: hidden ({}) must be a multiple of heads ({})",
            args.hidden, args.heads
        )));
    }
    let spec = tiny::TinySpec {
        variant,
        vocab_size: args.vocab,
        hidden_size: args.hidden,
        num_layers: args.layers,
        num_heads: args.heads,
        intermediate_size: args.ffn,
        max_position_embeddings: args.max_length + 2,
        seed: args.seed,
    };
    let mut m = tiny::build(
        &spec,
        &texts,
        HeadKind::Classification {
            labels: args.labels.clone(),
        },
    )
    .map_err(rerr)?;
    let got = m.config().vocab_size;
    if got < args.vocab {
        ctx.record(&format!(
            "tiny_model: asked for a vocabulary of {}, got {got}: the trainer keeps only the pieces this text supports (more or longer text gives more)",
            args.vocab
        ));
    } else if got > args.vocab {
        ctx.record(&format!(
            "tiny_model: asked for a vocabulary of {}, got {got}: every character of the text needs a piece of its own",
            args.vocab
        ));
    }
    if !matches!(ctx.settings.device, Device::Cpu) {
        let tok = m.tokenizer.take();
        m = m.to(&ctx.settings.device, DType::F32).map_err(rerr)?;
        m.tokenizer = tok;
    }
    let fingerprint = stilts_protocol::fingerprint::model_weights(&m).map_err(rerr)?;
    Ok(ModelValue {
        model: Arc::new(m),
        name: format!("tiny-{}x{}", args.layers, args.hidden),
        pretrained: false,
        optimizer: None,
        fingerprint,
        training: None,
    })
}

fn predict(m: &ModelValue, a: &str, b: Option<&str>) -> RResult<Map> {
    if !matches!(m.model.head.kind, HeadKind::Classification { .. }) || m.pretrained {
        return Err(rerr("predict: the model has no classification head; train it on a classification task first"));
    }
    let example = stilts_protocol::predict::Example {
        line: 1,
        first: a.to_string(),
        second: b.map(str::to_string),
    };
    let p = stilts_protocol::predict::predict(&m.model, &[example], 1, 512)
        .map_err(|e| rerr(format!("predict: {e}")))?
        .pop()
        .ok_or_else(|| rerr("predict: no prediction came back"))?;
    let mut out = Map::new();
    out.insert("label".into(), Dynamic::from(p.label));
    out.insert(
        "probs".into(),
        Dynamic::from(
            p.probs
                .iter()
                .map(|&p| Dynamic::from(p as f64))
                .collect::<Array>(),
        ),
    );
    Ok(out)
}

/// The documentation of what this file registers: what `:help`, tab
/// completion, `check` and the README's API reference read (collected by
/// `docs::api`). Every entry's example runs in a test (`api_examples.rs`).
pub const DOCS: &[ApiDoc] = &[
    entry("models", "model", "model(spec: string) -> Model", "Loads a model: a directory in Hugging Face layout, a hub id from the local HF cache, or a size name (mminilm, me5-small, mbert, xlmr-base, xlmr-large, xlmr-xl, xlmr-xxl). A pretrained checkpoint gets the task's head when trained; a checkpoint that holds a head (its config.json names a *For...Classification etc. class: a fine-tuned model, or a head a reference framework initialised and saved) loads it, and train keeps it where it fits the task (`new_head: false` makes that a requirement).", "let m = model(\"xlmr-large\");"),
    entry("models", "model", "model(spec: string, opts: map) -> Model", "Loads a model with a head: opts `head` (classification, multiple_choice, span_qa, tagging), `labels`, `seed` (head init, for head weights the checkpoint lacks; those it holds are read, under these labels), `dtype` (f32, bf16), `layers` (keep the first N encoder layers: a depth ablation; the config, the parameter count and the fingerprint follow; an error for 0 or more layers than the model has).", "let m = model(\"runs/mnli\", #{dtype: \"bf16\", layers: 1});"),
    entry("models", "tiny_model", "tiny_model(opts: map) -> Model", "A tiny random XLM-R (or BERT) built on the spot, its tokenizer trained on `text` (strings, file paths or tasks). Keys: text, arch (xlmr, xlmr-xl, bert), hidden, layers, heads, ffn, vocab (the most pieces: the trainer keeps fewer when the text supports fewer, and says so), max_length, labels, seed.", "let m = tiny_model(#{text: [mnli], hidden: 64, layers: 2});"),
    entry("models", "sizes", "sizes() -> array", "The size names, smallest first: the BERT-family encoders (mminilm, me5-small, mbert), then XLM-R (xlmr-base, xlmr-large, xlmr-xl, xlmr-xxl).", "for s in sizes() { print(s); }"),
    entry("models", "save", "Model.save(dir: string)", "Writes the model (config.json, model.safetensors, tokenizer) in Hugging Face layout.", "m.save(\"runs/xnli-large\");"),
    entry("models", "predict", "Model.predict(text: string) -> map", "Classifies one text: #{label, probs}.", "m.predict(\"a fine film\")"),
    entry("models", "predict", "Model.predict(premise: string, hypothesis: string) -> map", "Classifies one pair: #{label, probs}.", "m.predict(\"It rains.\", \"It is wet.\")"),
    entry("models", "name", "Model.name", "What the model was loaded or trained from.", "m.name"),
    entry("models", "arch", "Model.arch", "transformers' class name, e.g. XLMRobertaForSequenceClassification.", "m.arch"),
    entry("models", "head", "Model.head", "The head: classification, multiple_choice, span_qa or tagging.", "m.head"),
    entry("models", "labels", "Model.labels", "The head's label names.", "m.labels"),
    entry("models", "params", "Model.params", "Number of parameters.", "m.params"),
    entry("models", "layers", "Model.layers", "Number of encoder layers.", "m.layers"),
    entry("models", "hidden", "Model.hidden", "Hidden size.", "m.hidden"),
    entry("models", "device", "Model.device", "Where the weights are (cpu, cuda:N).", "m.device"),
    entry("models", "fingerprint", "Model.fingerprint", "What the model's numbers depend on, as a hash: its files (loaded), its weights (made on the spot), or the model, data and options it was trained from. memo keys use it.", "m.fingerprint"),
    entry("models", "training", "Model.training", "What the model's last training did: #{task, updates, losses, dev: [[update, score], ...], best_dev, best_step, early_stopped, resumed_from (the update its checkpoint resumed it from, or ()), curve (the JSON-lines file of loss, lr, dev and throughput per update, beside its checkpoints)}; () for a loaded model.", "ft.training.best_dev"),
];

/// Registers the `Model` type and its members, `model`, `tiny_model`,
/// `sizes`, `Model.save` and `Model.predict`.
pub fn register(engine: &mut Engine, ctx: &Rc<Ctx>) {
    engine.build_type::<ModelValue>();
    let c = ctx.clone();
    engine.register_fn("model", move |spec: &str| {
        load(&c, spec, ModelArgs::default())
    });
    let c = ctx.clone();
    engine.register_fn("model", move |spec: &str, opts: Map| {
        let args: ModelArgs = from_map("model options", &opts)?;
        load(&c, spec, args)
    });
    let c = ctx.clone();
    engine.register_fn("tiny_model", move |opts: Map| tiny_model(&c, opts));
    engine.register_fn("sizes", || {
        stilts_model::sizes::size_names()
            .into_iter()
            .map(|s| Dynamic::from(s.to_string()))
            .collect::<Array>()
    });
    let c = ctx.clone();
    engine.register_fn(
        "save",
        move |m: &mut ModelValue, dir: &str| -> RResult<()> {
            c.writable(dir).map_err(rerr)?;
            if !c.writes() {
                return Ok(());
            }
            let p = Path::new(dir);
            m.model.save(p).map_err(rerr)?;
            c.record(&format!("saved {} to {}", m.name, p.display()));
            Ok(())
        },
    );
    engine.register_fn("predict", |m: &mut ModelValue, a: &str| predict(m, a, None));
    engine.register_fn("predict", |m: &mut ModelValue, a: &str, b: &str| {
        predict(m, a, Some(b))
    });
    engine.register_fn("to_string", |m: &mut ModelValue| m.to_string());
    engine.register_fn("to_debug", |m: &mut ModelValue| m.to_string());
}
