//! Option maps of the rhai API as typed Rust structs. Each rhai function
//! turns its `#{...}` argument into one of these with serde
//! (`rhai::serde::from_dynamic`); `deny_unknown_fields` makes a misspelt key
//! an error that lists the valid ones.

use rhai::{Dynamic, EvalAltResult, Map};
use serde::Deserialize;
use stilts_model::util::closest;

use stilts_protocol::presets::RunOptions;

/// Keys whose value is a list where one item has one obvious reading:
/// `languages: "en"` is `languages: ["en"]`.
const ONE_OR_MORE: [&str; 2] = ["languages", "files"];

/// Converts a rhai map to `T`, naming `what` (e.g. "train options") in errors.
/// Where one reading is obvious it is taken: a single string for a list of
/// [`ONE_OR_MORE`], a whole float (`5.0`) for a count. A value of the wrong
/// type is an error naming its key, what the key takes (with an example)
/// and what it was given, in the script's words.
pub fn from_map<T: serde::de::DeserializeOwned>(
    what: &str,
    map: &Map,
) -> Result<T, Box<EvalAltResult>> {
    let convert = |m: &Map| rhai::serde::from_dynamic::<T>(&Dynamic::from_map(m.clone()));
    let first = match convert(map) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let mut fixed = map.clone();
    let mut changed = false;
    for (k, v) in map {
        let one = |v: &Dynamic| {
            let mut m = Map::new();
            m.insert(k.clone(), v.clone());
            convert(&m)
        };
        let Err(e) = one(v) else { continue };
        let m = serde_message(&e);
        if let Some(u) = unknown_field(&m) {
            return Err(format!("{what}: {u}").into());
        }
        let mut readings = vec![];
        if let Ok(x) = v.as_float() {
            if x.fract() == 0.0 && x.abs() < 9e15 {
                readings.push(Dynamic::from_int(x as rhai::INT));
            }
        }
        if v.is_string() && ONE_OR_MORE.contains(&k.as_str()) {
            readings.push(Dynamic::from_array(vec![v.clone()]));
        }
        match readings.into_iter().find(|r| one(r).is_ok()) {
            Some(r) => {
                fixed.insert(k.clone(), r);
                changed = true;
            }
            None => return Err(format!("{what}: {}", wrong_type(k, v, &m)).into()),
        }
    }
    convert(&fixed).map_err(|e| {
        let m = serde_message(if changed { &e } else { &first });
        format!("{what}: {}", unknown_field(&m).unwrap_or(m)).into()
    })
}

/// `` `key` takes WHAT (e.g. `key: EXAMPLE`), not VALUE (TYPE) `` from a
/// conversion error's message `m` about the value `v` of `key`.
pub fn wrong_type(key: &str, v: &Dynamic, m: &str) -> String {
    let got = crate::values::type_name(v);
    let mut shown = if v.is_string() {
        format!("{:?}", v.clone().into_string().unwrap_or_default())
    } else {
        v.to_string()
    };
    if shown.chars().count() > 60 {
        shown = shown.chars().take(57).collect::<String>() + "...";
    }
    match stilts_model::util::expected_in_words(m) {
        Some((words, example)) => {
            let example = match key {
                "languages" => "[\"en\", \"de\"]",
                "files" => "[\"corpus.txt\"]",
                "labels" => "[\"negative\", \"positive\"]",
                "columns" => "[\"text\", \"label\"]",
                "text_columns" => "[\"premise\", \"hypothesis\"]",
                _ => example,
            };
            format!("`{key}` takes {words} (e.g. `{key}: {example}`), not {shown} ({got})")
        }
        None => format!("`{key}`: {m}"),
    }
}

/// serde's "unknown field `x`, expected one of `a`, `b`" as the message
/// every other option map gives: the closest key and the valid ones, once.
fn unknown_field(m: &str) -> Option<String> {
    let rest = m.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let valid: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    if valid.is_empty() {
        return None;
    }
    let hint = closest(key, &valid)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default();
    Some(format!(
        "unknown key `{key}`{hint}; valid keys: {}",
        valid.join(", ")
    ))
}

/// The message of a serde conversion error, without rhai's wrapping.
pub fn serde_message(e: &EvalAltResult) -> String {
    match e {
        EvalAltResult::ErrorParsing(
            rhai::ParseErrorType::BadInput(rhai::LexError::ImproperSymbol(_, m)),
            _,
        ) => m.clone(),
        EvalAltResult::ErrorMismatchDataType(expected, got, _) => {
            let got = if got.is_empty() {
                String::new()
            } else {
                format!("got {got}, ")
            };
            format!("wrong type: {got}expected {expected}")
        }
        other => {
            let s = other.to_string();
            match s.rfind(" (line ") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}

/// Keys a training map takes besides the protocol's [`RunOptions`] (whose
/// `RunOptions::resolve` checks the rest): the dev set (a Task value),
/// `dev_pool` (pool a dev set's parts on purpose) and `new_head` (a fresh
/// head even when the model's fits the task).
pub const SCRIPT_TRAIN_KEYS: [&str; 3] = ["dev", "dev_pool", "new_head"];

/// Every key a training map may have.
pub fn train_keys() -> Vec<String> {
    let mut k: Vec<String> = SCRIPT_TRAIN_KEYS.iter().map(|s| s.to_string()).collect();
    k.extend(RunOptions::keys());
    k
}

/// The keys an option struct takes, read from its derived `Deserialize`
/// (the field names serde hands to `deserialize_struct`), so that what
/// `stilts check` checks and what the call accepts have one home: the
/// struct. serde has no introspection of its own; this asks the derive.
///
/// ```
/// use stilts_script::options::{struct_keys, EvalArgs};
/// assert!(struct_keys::<EvalArgs>().contains(&"batch_size"));
/// ```
pub fn struct_keys<T: serde::de::DeserializeOwned>() -> Vec<&'static str> {
    use serde::de::{Error, Visitor};
    /// Stops the derive as soon as it has named its fields.
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names read")
        }
    }
    impl std::error::Error for Stop {}
    impl Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            *self.0 = fields;
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields.to_vec()
}

/// `over`'s keys laid over `base`.
pub fn overlay(base: &Map, over: &Map) -> Map {
    let mut m = base.clone();
    for (k, v) in over {
        m.insert(k.clone(), v.clone());
    }
    m
}

/// A preset as a rhai map.
pub fn preset_map(name: &str) -> Result<Map, Box<EvalAltResult>> {
    let p = stilts_protocol::presets::preset(name).map_err(|e| e.to_string())?;
    let d = rhai::serde::to_dynamic(&p)?;
    Ok(d.try_cast::<Map>().unwrap_or_default())
}

/// Fails on a key of `map` not in `valid`, listing the valid ones.
pub fn check_keys(what: &str, map: &Map, valid: &[&str]) -> Result<(), Box<EvalAltResult>> {
    for k in map.keys() {
        if !valid.contains(&k.as_str()) {
            let hint = closest(k, valid)
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            return Err(format!(
                "{what}: unknown key `{k}`{hint}; valid keys: {}",
                valid.join(", ")
            )
            .into());
        }
    }
    Ok(())
}

/// `evaluate(m, t, #{...})`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalArgs {
    /// Examples per batch (default 64).
    pub batch_size: Option<usize>,
    /// Tokens per input (span QA: the window, default 384).
    pub max_length: Option<usize>,
    /// Span QA: tokens of overlap between windows (default 128).
    pub doc_stride: Option<usize>,
    /// Evaluate on the first N examples of each language only.
    pub limit: Option<usize>,
    /// Retrieval: the hidden state pooled (0 = the embeddings).
    pub layer: Option<usize>,
    /// Retrieval: "mean" or "cls".
    pub pooling: Option<String>,
    /// Retrieval: "xx-en", "en-xx" or "both".
    pub direction: Option<String>,
    /// Retrieval: "cosine" or "margin".
    pub scoring: Option<String>,
}

/// `model(spec, #{...})`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelArgs {
    /// classification, multiple_choice, span_qa, tagging.
    pub head: Option<String>,
    /// Label names of a new classification or tagging head (default: the NLI
    /// labels); without `head`, a fine-tuned model's own labels must equal them.
    pub labels: Option<Vec<String>>,
    /// Seed of a new head's weights (default 0).
    pub seed: Option<u64>,
    /// f32 (default) or bf16.
    pub dtype: Option<String>,
    /// Keep only the first N encoder layers (a depth ablation).
    pub layers: Option<usize>,
}

/// `tiny_model(#{...})`. `text` is read separately (strings, files or tasks).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TinyArgs {
    /// The architecture: `xlmr` (default), `xlmr-xl` or `bert`.
    #[serde(default = "d_arch")]
    pub arch: String,
    /// Hidden size (default 32; a multiple of `heads`).
    #[serde(default = "d_hidden")]
    pub hidden: usize,
    /// Encoder layers (default 2).
    #[serde(default = "d_layers")]
    pub layers: usize,
    /// Attention heads (default 4).
    #[serde(default = "d_heads")]
    pub heads: usize,
    /// Feed-forward size (default 64).
    #[serde(default = "d_ffn")]
    pub ffn: usize,
    /// Vocabulary size asked of the tokenizer trainer (default 500); it may
    /// keep fewer pieces or need more, and says so.
    #[serde(default = "d_vocab")]
    pub vocab: usize,
    /// Longest input in tokens (position embeddings are this + 2).
    #[serde(default = "d_maxlen")]
    pub max_length: usize,
    /// Seed of the random weights, head included (default 0).
    #[serde(default)]
    pub seed: u64,
    /// Labels of its classification head (default: the NLI labels).
    #[serde(default = "d_labels")]
    pub labels: Vec<String>,
    /// Never filled: `tiny_model` takes the `text` key out of the map before
    /// the conversion (its value is strings, file paths or tasks).
    #[serde(default, skip_deserializing)]
    pub text: (),
}

fn d_arch() -> String {
    "xlmr".into()
}
fn d_hidden() -> usize {
    32
}
fn d_layers() -> usize {
    2
}
fn d_heads() -> usize {
    4
}
fn d_ffn() -> usize {
    64
}
fn d_vocab() -> usize {
    500
}
fn d_maxlen() -> usize {
    128
}
fn d_labels() -> Vec<String> {
    stilts_tasks::readers::nli_labels()
}

/// `task(name, #{...})`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskArgs {
    /// The task folder (built-in tasks).
    pub data: Option<String>,
    /// train, dev, test (default: train).
    pub split: Option<String>,
    /// Languages (or rounds) to load; default: all the task has.
    pub languages: Option<Vec<String>>,
    /// A seeded random subset of at most N examples of each part
    /// (language), stratified by label for classification
    /// ([`stilts_tasks::Dataset::limit_sample`]).
    pub limit: Option<usize>,
    /// The first N examples of each part (a prefix: quick, but a file
    /// sorted by label gives one label).
    pub first: Option<usize>,
    /// A seeded sample of N examples of each part (language), label-balanced
    /// for classification ([`stilts_tasks::Dataset::sample`]), after `limit`.
    pub sample: Option<usize>,
    /// The seed of `limit` and `sample` (default 0).
    pub sample_seed: Option<u64>,
    /// Leave malformed lines out (counted) instead of failing.
    pub skip_bad_lines: Option<bool>,
    /// `task("tsv", ...)`: a headerless TSV file.
    pub file: Option<String>,
    /// `task("mlm", ...)`: raw-text files, one sentence a line.
    pub files: Option<Vec<String>>,
    /// `task("tsv", ...)`: its columns, among `language`, `id`, `label` and one or two text columns.
    pub columns: Option<Vec<String>>,
    /// `task("tsv", ...)` and `task("generic", ...)`: the label set.
    pub labels: Option<Vec<String>>,
    /// `task("tsv", ...)`: the task's name in results (default: the file's stem).
    pub name: Option<String>,
    /// `task("generic", ...)`: the one or two text columns of a TSV/CSV/JSONL with a header.
    pub text_columns: Option<Vec<String>>,
    /// `task("generic", ...)`: the label column (default `label`).
    pub label_column: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys read from a struct are the ones its conversion accepts:
    /// each alone passes the unknown-key check, and a key not among them
    /// fails it (so `stilts check` and the call agree).
    #[test]
    fn struct_keys_are_what_the_conversion_accepts() {
        fn agrees<T: serde::de::DeserializeOwned>(what: &str, expect: &[&str]) {
            let keys = struct_keys::<T>();
            for k in expect {
                assert!(keys.contains(k), "{what}: `{k}` in {keys:?}");
            }
            for k in &keys {
                let mut m = Map::new();
                m.insert((*k).into(), Dynamic::UNIT);
                if let Err(e) = from_map::<T>(what, &m) {
                    assert!(!e.to_string().contains("unknown key"), "{what}: {k}: {e}");
                }
            }
            let mut m = Map::new();
            m.insert("no_such_key".into(), Dynamic::UNIT);
            let e = from_map::<T>(what, &m).err().expect("an unknown key fails");
            assert!(e.to_string().contains("unknown key `no_such_key`"), "{e}");
        }
        agrees::<EvalArgs>(
            "evaluate",
            &[
                "batch_size",
                "max_length",
                "doc_stride",
                "limit",
                "layer",
                "pooling",
                "direction",
                "scoring",
            ],
        );
        agrees::<ModelArgs>("model", &["head", "labels", "seed", "dtype", "layers"]);
        agrees::<TinyArgs>(
            "tiny_model",
            &[
                "arch",
                "hidden",
                "layers",
                "heads",
                "ffn",
                "vocab",
                "max_length",
                "seed",
                "labels",
            ],
        );
        agrees::<TaskArgs>(
            "task",
            &[
                "data",
                "split",
                "languages",
                "limit",
                "first",
                "sample",
                "sample_seed",
                "skip_bad_lines",
                "file",
                "files",
                "columns",
                "labels",
                "name",
                "text_columns",
                "label_column",
            ],
        );
    }

    #[test]
    fn unknown_keys_name_the_closest_and_list_the_valid_ones() {
        let mut m = Map::new();
        m.insert("lrr".into(), Dynamic::from(1e-5));
        let e = check_keys("train options", &m, &["lr", "batch_size"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown key `lrr`")
                && e.contains("did you mean `lr`")
                && e.contains("batch_size"),
            "{e}"
        );
        assert!(
            train_keys().iter().any(|k| k == "dev")
                && train_keys().iter().any(|k| k == "eval_every")
        );
    }
}
