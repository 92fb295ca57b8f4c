//! Option maps of the rhai API as typed Rust structs. Each rhai function
//! turns its `#{...}` argument into one of these with serde
//! (`rhai::serde::from_dynamic`); `deny_unknown_fields` makes a misspelt key
//! an error that lists the valid ones.

use rhai::{Dynamic, EvalAltResult, Map};
use serde::Deserialize;

use crate::protocol::presets::RunOptions;

/// Converts a rhai map to `T`, naming `what` (e.g. "train options") in errors.
pub fn from_map<T: serde::de::DeserializeOwned>(
    what: &str,
    map: &Map,
) -> Result<T, Box<EvalAltResult>> {
    let d = Dynamic::from_map(map.clone());
    rhai::serde::from_dynamic::<T>(&d).map_err(|e| format!("{what}: {}", serde_message(&e)).into())
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

/// Keys a training call takes besides the engine's [`RunOptions`]:
/// `preset`, `limit` (train on the first N examples) and `new_head` (a
/// fresh head even when the model's fits the task).
pub const EXTRA_TRAIN_KEYS: [&str; 3] = ["preset", "limit", "new_head"];

/// A training call's options: the engine's run options (a preset with keys
/// laid over it) and what the binding handles itself.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainRequest {
    pub run: RunOptions,
    pub preset: String,
    pub limit: Option<usize>,
    pub new_head: bool,
}

/// Every key a training map may have.
pub fn train_keys() -> Vec<String> {
    let mut k: Vec<String> = EXTRA_TRAIN_KEYS.iter().map(|s| s.to_string()).collect();
    k.extend(RunOptions::keys());
    k
}

/// `over`'s keys laid over `base`.
pub fn overlay(base: &Map, over: &Map) -> Map {
    let mut m = base.clone();
    for (k, v) in over {
        m.insert(k.clone(), v.clone());
    }
    m
}

/// A training map to a [`TrainRequest`], through the engine's
/// `RunOptions::from_overrides` (the preset, then each key).
pub fn train_request(what: &str, map: &Map) -> Result<TrainRequest, Box<EvalAltResult>> {
    let keys = train_keys();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    check_keys(what, map, &refs)?;
    let mut rest = map.clone();
    let preset = match rest.remove("preset") {
        None => "jiant".to_string(),
        Some(v) => v
            .into_string()
            .map_err(|t| format!("{what}: `preset` takes a string, not {t}"))?,
    };
    let limit = match rest.remove("limit") {
        None => None,
        Some(v) => Some(
            v.as_int()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{what}: `limit` takes a positive integer"))?
                as usize,
        ),
    };
    let new_head = match rest.remove("new_head") {
        None => false,
        Some(v) => v
            .as_bool()
            .map_err(|t| format!("{what}: `new_head` takes true or false, not {t}"))?,
    };
    let json = serde_json::to_value(Dynamic::from_map(rest)).map_err(|e| format!("{what}: {e}"))?;
    let run =
        RunOptions::from_overrides(Some(&preset), &json).map_err(|e| format!("{what}: {e}"))?;
    if !(run.lr > 0.0 && run.lr.is_finite()) {
        return Err(format!("{what}: lr must be a positive number, not {}", run.lr).into());
    }
    if run.batch_size == 0 {
        return Err(format!("{what}: batch_size must be at least 1").into());
    }
    Ok(TrainRequest {
        run,
        preset,
        limit,
        new_head,
    })
}

/// A preset as a rhai map.
pub fn preset_map(name: &str) -> Result<Map, Box<EvalAltResult>> {
    let p = crate::protocol::presets::preset(name).map_err(|e| e.to_string())?;
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

/// The closest of `names` to `word` (edit distance at most 2, or a prefix).
pub fn closest<'a>(word: &str, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .map(|n| (edit_distance(word, n), *n))
        .filter(|(d, n)| {
            *d <= 1.max(word.chars().count() / 3) || (word.len() >= 3 && n.starts_with(word))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut prev2: Vec<usize> = prev.clone();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

/// `evaluate(m, t, #{...})`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalArgs {
    pub batch_size: Option<usize>,
    pub max_length: Option<usize>,
    /// Evaluate on the first N examples of each language only.
    pub limit: Option<usize>,
}

/// `model(spec, #{...})`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelArgs {
    /// classification, multiple_choice, span_qa, tagging.
    pub head: Option<String>,
    pub labels: Option<Vec<String>>,
    pub seed: Option<u64>,
    /// f32 (default) or bf16.
    pub dtype: Option<String>,
}

/// `tiny_model(#{...})`. `text` is read separately (strings, files or tasks).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TinyArgs {
    #[serde(default = "d_arch")]
    pub arch: String,
    #[serde(default = "d_hidden")]
    pub hidden: usize,
    #[serde(default = "d_layers")]
    pub layers: usize,
    #[serde(default = "d_heads")]
    pub heads: usize,
    #[serde(default = "d_ffn")]
    pub ffn: usize,
    #[serde(default = "d_vocab")]
    pub vocab: usize,
    /// Longest input in tokens (position embeddings are this + 2).
    #[serde(default = "d_maxlen")]
    pub max_length: usize,
    #[serde(default)]
    pub seed: u64,
    #[serde(default = "d_labels")]
    pub labels: Vec<String>,
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
    crate::tasks::readers::nli_labels()
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
    /// Read the first N examples of each file only.
    pub limit: Option<usize>,
    /// Leave malformed lines out (counted) instead of failing.
    pub skip_bad_lines: Option<bool>,
    /// `task("tsv", ...)`: a headerless TSV file.
    pub file: Option<String>,
    /// `task("tsv", ...)`: its columns, among `language`, `id`, `label` and one or two text columns.
    pub columns: Option<Vec<String>>,
    /// `task("tsv", ...)` and `task("generic", ...)`: the label set.
    pub labels: Option<Vec<String>>,
    /// `task("tsv", ...)`: the task's name in results (default: the file's stem).
    pub name: Option<String>,
    /// `task("generic", ...)`: text columns and the label column of a TSV/CSV/JSONL with a header.
    pub text_columns: Option<Vec<String>>,
    pub label_column: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_lists_valid_ones() {
        let mut m = Map::new();
        m.insert("lrr".into(), Dynamic::from(1e-5));
        let e = train_request("train options", &m).unwrap_err().to_string();
        assert!(
            e.contains("unknown key `lrr`")
                && e.contains("did you mean `lr`")
                && e.contains("batch_size"),
            "{e}"
        );
    }

    #[test]
    fn integers_are_numbers_and_presets_overlay() {
        let mut m = Map::new();
        m.insert("lr".into(), Dynamic::from(1_i64));
        m.insert("preset".into(), Dynamic::from("xtreme"));
        m.insert("limit".into(), Dynamic::from(10_i64));
        let r = train_request("t", &m).unwrap();
        assert_eq!(r.run.lr, 1.0);
        assert_eq!(r.run.epochs, 5);
        assert_eq!(r.limit, Some(10));
        let mut bad = Map::new();
        bad.insert("preset".into(), Dynamic::from("nope"));
        assert!(train_request("t", &bad)
            .unwrap_err()
            .to_string()
            .contains("jiant"));
    }
}
