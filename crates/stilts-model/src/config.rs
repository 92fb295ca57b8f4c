//! `config.json` of the XLM-R and BERT families, read the way transformers
//! reads it.
//!
//! Fields are read one by one (not through a derived struct) so a wrong type
//! names the field; everything we do not model is kept in `raw` and written
//! back unchanged when a model is saved.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::ops::Activation;
use crate::error::{Error, Result};

/// The members of the encoder family: where the LayerNorms sit, what the
/// parameters are called, and how position ids are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum Variant {
    /// XLM-R base/large (`XLMRobertaModel`): LayerNorm after each residual,
    /// and on the embeddings. Named `xlmr`.
    #[cfg_attr(feature = "clap", value(name = "xlmr"))]
    PostLayerNorm,
    /// XLM-R XL/XXL (`XLMRobertaXLModel`): LayerNorm before attention and
    /// before the FFN, none on the embeddings, one after the last layer.
    /// Named `xlmr-xl`.
    #[cfg_attr(feature = "clap", value(name = "xlmr-xl"))]
    PreLayerNorm,
    /// BERT (`BertModel`: mBERT, multilingual-e5, multilingual MiniLM): the
    /// post-LayerNorm network of XLM-R base under `bert.*` names, with
    /// absolute positions from 0 and BERT's pooler in the pooled heads.
    /// Named `bert`.
    #[cfg_attr(feature = "clap", value(name = "bert"))]
    Bert,
}

impl std::str::FromStr for Variant {
    type Err = Error;

    /// A variant by its short name: `xlmr`, `xlmr-xl` or `bert`.
    ///
    /// ```
    /// use stilts_model::Variant;
    /// assert_eq!("xlmr-xl".parse::<Variant>().unwrap(), Variant::PreLayerNorm);
    /// assert!("gpt".parse::<Variant>().unwrap_err().to_string().contains("xlmr, xlmr-xl or bert"));
    /// ```
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "xlmr" => Ok(Variant::PostLayerNorm),
            "xlmr-xl" => Ok(Variant::PreLayerNorm),
            "bert" => Ok(Variant::Bert),
            other => Err(Error::msg(format!(
                "architecture `{other}`: use xlmr, xlmr-xl or bert"
            ))),
        }
    }
}

/// How an encoder numbers the positions of a padded row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PositionRule {
    /// RoBERTa's `create_position_ids_from_input_ids`: `pad + 1 + ` the
    /// count of non-pad ids so far, `pad` at padded slots.
    AfterPad,
    /// BERT's `position_ids` buffer: `0, 1, ..., T-1` on every row.
    FromZero,
}

impl Variant {
    /// `model_type` transformers expects for this variant.
    pub fn model_type(&self) -> &'static str {
        match self {
            Variant::PostLayerNorm => "xlm-roberta",
            Variant::PreLayerNorm => "xlm-roberta-xl",
            Variant::Bert => "bert",
        }
    }

    /// Class-name prefix in transformers (`XLMRoberta` / `XLMRobertaXL` / `Bert`).
    pub fn class_prefix(&self) -> &'static str {
        match self {
            Variant::PostLayerNorm => "XLMRoberta",
            Variant::PreLayerNorm => "XLMRobertaXL",
            Variant::Bert => "Bert",
        }
    }

    /// The attribute transformers keeps the encoder under, and so the
    /// prefix of its parameter names (`roberta` / `bert`).
    pub fn prefix(&self) -> &'static str {
        match self {
            Variant::PostLayerNorm | Variant::PreLayerNorm => "roberta",
            Variant::Bert => "bert",
        }
    }

    /// How this variant numbers positions.
    pub fn position_rule(&self) -> PositionRule {
        match self {
            Variant::PostLayerNorm | Variant::PreLayerNorm => PositionRule::AfterPad,
            Variant::Bert => PositionRule::FromZero,
        }
    }

    /// LayerNorm before attention and FFN (XL/XXL), not after the residuals.
    pub fn pre_layer_norm(&self) -> bool {
        *self == Variant::PreLayerNorm
    }

    /// The variant a set of tensor names proves, if any (checkpoint names
    /// beat config fields: the XXL hub config says `xlm-roberta`). Bare
    /// names (`embeddings.*`, no `bert.`/`roberta.`) only prove where the
    /// LayerNorms sit: [`Variant::confirmed_by`] keeps the config's family.
    pub fn from_tensor_names<'a>(names: impl IntoIterator<Item = &'a String>) -> Option<Self> {
        let names: Vec<&String> = names.into_iter().collect();
        if names.iter().any(|n| n.starts_with("bert.")) {
            return Some(Variant::Bert);
        }
        for n in names {
            if n.ends_with("attention.self_attn_layer_norm.weight")
                || n.ends_with("encoder.LayerNorm.weight")
            {
                return Some(Variant::PreLayerNorm);
            }
            if n.ends_with("embeddings.LayerNorm.weight")
                || n.ends_with("attention.output.LayerNorm.weight")
            {
                return Some(Variant::PostLayerNorm);
            }
        }
        None
    }

    /// This variant (from config.json) corrected by what the tensor names
    /// prove: a post-LayerNorm proof does not turn a BERT config into
    /// XLM-R (a bare `BertModel` checkpoint has the same LayerNorm names).
    pub fn confirmed_by(self, from_names: Option<Variant>) -> Variant {
        match (self, from_names) {
            (Variant::Bert, Some(Variant::PostLayerNorm)) | (_, None) => self,
            (_, Some(v)) => v,
        }
    }
}

/// The settings of an encoder of the family (and its labels, when it has a
/// head). The name stays from the XLM-R days; BERT configs are read into it too.
#[derive(Clone, Debug)]
pub struct XlmrConfig {
    /// The family member, from `architectures` and `model_type` (default
    /// XLM-R base/large); loading corrects it by the checkpoint's tensor names.
    pub variant: Variant,
    /// Number of token ids (rows of the word embedding); required.
    pub vocab_size: usize,
    /// Width of the hidden states (`H`); required, a multiple of
    /// `num_attention_heads`.
    pub hidden_size: usize,
    /// Number of transformer layers; required.
    pub num_hidden_layers: usize,
    /// Attention heads per layer; required, at least 1.
    pub num_attention_heads: usize,
    /// Width of each layer's feed-forward inner layer; required.
    pub intermediate_size: usize,
    /// Activation of the feed-forward layers and the MLM head (`hidden_act`,
    /// default `gelu`).
    pub hidden_act: Activation,
    /// Dropout probability on the embeddings and on each attention and
    /// feed-forward output, in `[0, 1)` (default 0.1).
    pub hidden_dropout_prob: f64,
    /// Dropout probability on the attention probabilities, in `[0, 1)`
    /// (default 0.1).
    pub attention_probs_dropout_prob: f64,
    /// Dropout before the head's layers; `None` (absent or null in the file):
    /// `hidden_dropout_prob` (see `classifier_dropout()`).
    pub classifier_dropout: Option<f64>,
    /// Rows of the position table (default 514 for XLM-R, 512 for BERT); the
    /// longest input is this minus `position_base()`.
    pub max_position_embeddings: usize,
    /// Number of token types (segments): default 1 for XLM-R, 2 for BERT.
    pub type_vocab_size: usize,
    /// Epsilon of every LayerNorm (default 1e-5 for XLM-R, 1e-12 for BERT).
    pub layer_norm_eps: f64,
    /// The padding token's id (default 1, XLM-R's `<pad>`; 0, BERT's `[PAD]`);
    /// below `vocab_size`.
    pub pad_token_id: u32,
    /// Standard deviation of the normal initialisation of weights a checkpoint
    /// lacks (default 0.02).
    pub initializer_range: f64,
    /// Label names ordered by id (`id2label`); empty when the config has none.
    pub labels: Vec<String>,
    /// transformers class names from `architectures` (e.g.
    /// `XLMRobertaForSequenceClassification`); empty when absent. Loading takes
    /// the head from them when none is asked for.
    pub architectures: Vec<String>,
    /// BERT's second segment: the `[SEP]` id after which token type 1
    /// starts, when the tokenizer marks pairs with token types (set from
    /// tokenizer.json when a model is loaded; config.json has no such field).
    /// `None`: every token has type 0 (XLM-R, and BERT checkpoints that
    /// use XLM-R's tokenizer, such as multilingual-e5).
    pub segment_separator: Option<u32>,
    /// Every field of the file, for a faithful round trip.
    pub raw: Map<String, Value>,
}

struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: &'a Path,
}

impl Fields<'_> {
    fn err(&self, field: &str, want: &str, got: &Value) -> Error {
        Error::config(
            self.path,
            format!("field `{field}` must be {want}, found {got}; fix config.json"),
        )
    }

    fn usize(&self, field: &str, default: Option<usize>) -> Result<usize> {
        match self.map.get(field) {
            Some(v) => v
                .as_u64()
                .map(|x| x as usize)
                .ok_or_else(|| self.err(field, "a non-negative integer", v)),
            None => default.ok_or_else(|| {
                Error::config(
                    self.path,
                    format!("missing field `{field}`; add it to config.json"),
                )
            }),
        }
    }

    fn f64(&self, field: &str, default: f64) -> Result<f64> {
        match self.map.get(field) {
            Some(v) => v.as_f64().ok_or_else(|| self.err(field, "a number", v)),
            None => Ok(default),
        }
    }

    fn opt_f64(&self, field: &str) -> Result<Option<f64>> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.err(field, "a number or null", v)),
        }
    }

    fn str(&self, field: &str, default: &str) -> Result<String> {
        match self.map.get(field) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(self.err(field, "a string", v)),
            None => Ok(default.to_string()),
        }
    }
}

impl XlmrConfig {
    /// Reads `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let value: Value = crate::error::read_json(path)?;
        Self::from_value(value, path)
    }

    /// Parses a config already in memory; `path` is only used in errors.
    pub fn from_value(value: Value, path: &Path) -> Result<Self> {
        let map = match value {
            Value::Object(m) => m,
            other => {
                return Err(Error::config(
                    path,
                    format!("expected a JSON object, found {other}"),
                ))
            }
        };
        let f = Fields { map: &map, path };
        let architectures = match map.get("architectures") {
            None | Some(Value::Null) => vec![],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| f.err("architectures", "a list of strings", v))
                })
                .collect::<Result<_>>()?,
            Some(v) => return Err(f.err("architectures", "a list of strings", v)),
        };
        let model_type = f.str("model_type", "xlm-roberta")?;
        let variant = if architectures.iter().any(|a| a.starts_with("XLMRobertaXL"))
            || model_type == "xlm-roberta-xl"
        {
            Variant::PreLayerNorm
        } else if model_type == "bert" || architectures.iter().any(|a| a.starts_with("Bert")) {
            Variant::Bert
        } else {
            Variant::PostLayerNorm
        };
        // transformers' defaults differ between BertConfig and XLMRobertaConfig.
        let bert = variant == Variant::Bert;
        let (def_positions, def_types, def_eps, def_pad) = if bert {
            (512, 2, 1e-12, 0)
        } else {
            (514, 1, 1e-5, 1)
        };
        let act_name = f.str("hidden_act", "gelu")?;
        let hidden_act = Activation::parse(&act_name).ok_or_else(|| {
            Error::config(
                path,
                format!("hidden_act `{act_name}` is not supported; use gelu, gelu_new or relu"),
            )
        })?;
        let labels = Self::parse_labels(&f)?;
        let cfg = XlmrConfig {
            variant,
            vocab_size: f.usize("vocab_size", None)?,
            hidden_size: f.usize("hidden_size", None)?,
            num_hidden_layers: f.usize("num_hidden_layers", None)?,
            num_attention_heads: f.usize("num_attention_heads", None)?,
            intermediate_size: f.usize("intermediate_size", None)?,
            hidden_act,
            hidden_dropout_prob: f.f64("hidden_dropout_prob", 0.1)?,
            attention_probs_dropout_prob: f.f64("attention_probs_dropout_prob", 0.1)?,
            classifier_dropout: f.opt_f64("classifier_dropout")?,
            max_position_embeddings: f.usize("max_position_embeddings", Some(def_positions))?,
            type_vocab_size: f.usize("type_vocab_size", Some(def_types))?,
            layer_norm_eps: f.f64("layer_norm_eps", def_eps)?,
            pad_token_id: f.usize("pad_token_id", Some(def_pad))? as u32,
            initializer_range: f.f64("initializer_range", 0.02)?,
            labels,
            architectures,
            segment_separator: None,
            raw: map.clone(),
        };
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn parse_labels(f: &Fields) -> Result<Vec<String>> {
        let Some(v) = f.map.get("id2label") else {
            return Ok(vec![]);
        };
        let Value::Object(m) = v else {
            return Err(f.err("id2label", "an object {\"0\": \"name\", ...}", v));
        };
        let mut pairs = Vec::with_capacity(m.len());
        for (k, v) in m {
            let id: usize = k
                .parse()
                .map_err(|_| f.err("id2label", "keyed by integers", &Value::String(k.clone())))?;
            let name = v
                .as_str()
                .ok_or_else(|| f.err("id2label", "string-valued", v))?;
            pairs.push((id, name.to_string()));
        }
        pairs.sort();
        if pairs.iter().enumerate().any(|(i, (id, _))| *id != i) {
            return Err(Error::config(
                f.path,
                "id2label ids must be 0..n-1 without gaps",
            ));
        }
        Ok(pairs.into_iter().map(|(_, n)| n).collect())
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |m: String| Err(Error::config(path, m));
        if self.num_attention_heads == 0 || self.hidden_size % self.num_attention_heads != 0 {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if self.pad_token_id as usize >= self.vocab_size {
            return bad(format!(
                "pad_token_id {} is outside the vocabulary ({})",
                self.pad_token_id, self.vocab_size
            ));
        }
        if self.max_position_embeddings <= self.position_base() {
            return bad(format!(
                "max_position_embeddings {} leaves no room for positions",
                self.max_position_embeddings
            ));
        }
        for (name, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ] {
            if !(0.0..1.0).contains(&p) {
                return bad(format!("{name} must be in [0, 1), found {p}"));
            }
        }
        if self.type_vocab_size == 0 {
            return bad("type_vocab_size must be at least 1".into());
        }
        Ok(())
    }

    /// How positions are numbered (RoBERTa: after the pad id; BERT: from 0).
    pub fn position_rule(&self) -> PositionRule {
        self.variant.position_rule()
    }

    /// The position id of a sequence's first token: `pad_token_id + 1`
    /// (RoBERTa), 0 (BERT).
    pub fn position_base(&self) -> usize {
        match self.position_rule() {
            PositionRule::AfterPad => self.pad_token_id as usize + 1,
            PositionRule::FromZero => 0,
        }
    }

    /// The longest input (in tokens, specials included) the position table allows.
    pub fn max_sequence_length(&self) -> usize {
        self.max_position_embeddings - self.position_base()
    }

    /// Sets every dropout probability to `p`: hidden, attention and the
    /// classifier's (`classifier_dropout`).
    pub fn set_dropout(&mut self, p: f64) {
        self.hidden_dropout_prob = p;
        self.attention_probs_dropout_prob = p;
        self.classifier_dropout = Some(p);
    }

    /// Dropout before classification layers (transformers' rule).
    pub fn classifier_dropout(&self) -> f64 {
        self.classifier_dropout.unwrap_or(self.hidden_dropout_prob)
    }

    /// A minimal config for a new model of the given shape (transformers'
    /// defaults of the variant: BERT has two token types, `[PAD]` = 0 and
    /// LayerNorm eps 1e-12; XLM-R one token type, `<pad>` = 1, eps 1e-5).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        variant: Variant,
        vocab_size: usize,
        hidden_size: usize,
        num_hidden_layers: usize,
        num_attention_heads: usize,
        intermediate_size: usize,
        max_position_embeddings: usize,
    ) -> Result<Self> {
        let bert = variant == Variant::Bert;
        let value = serde_json::json!({
            "architectures": [format!("{}ForMaskedLM", variant.class_prefix())],
            "model_type": variant.model_type(),
            "vocab_size": vocab_size,
            "hidden_size": hidden_size,
            "num_hidden_layers": num_hidden_layers,
            "num_attention_heads": num_attention_heads,
            "intermediate_size": intermediate_size,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": max_position_embeddings,
            "type_vocab_size": if bert { 2 } else { 1 },
            "initializer_range": 0.02,
            "layer_norm_eps": if bert { 1e-12 } else { 1e-5 },
            "pad_token_id": if bert { 0 } else { 1 },
            "position_embedding_type": "absolute",
        });
        let mut value = value;
        if !bert {
            value["bos_token_id"] = 0.into();
            value["eos_token_id"] = 2.into();
        }
        Self::from_value(value, &PathBuf::from("<new config>"))
    }

    /// This config with another padding id (the tokenizer's), in
    /// `config.json` too.
    pub fn with_pad_token_id(mut self, id: u32) -> Self {
        self.pad_token_id = id;
        self.raw.insert("pad_token_id".into(), Value::from(id));
        self
    }

    /// The config of the first `n` encoder layers (a depth ablation): the
    /// layer count in both the field and the JSON a save writes; an error
    /// message for 0 or more layers than there are.
    ///
    /// ```
    /// use stilts_model::{Variant, XlmrConfig};
    /// let c = XlmrConfig::new(Variant::Bert, 100, 32, 6, 4, 64, 40).unwrap();
    /// assert_eq!(c.truncated(2).unwrap().num_hidden_layers, 2);
    /// assert!(c.truncated(7).unwrap_err().contains("1 to 6"));
    /// ```
    pub fn truncated(&self, n: usize) -> std::result::Result<Self, String> {
        if n < 1 || n > self.num_hidden_layers {
            return Err(format!(
                "layers: {n}: this model has {} encoder layers; keep 1 to {}",
                self.num_hidden_layers, self.num_hidden_layers
            ));
        }
        let mut c = self.clone();
        c.num_hidden_layers = n;
        c.raw.insert("num_hidden_layers".into(), Value::from(n));
        Ok(c)
    }

    /// The JSON transformers reads back, for a model whose head is the
    /// transformers class `architecture` with the given labels.
    pub fn to_json(&self, architecture: &str, labels: &[String]) -> Value {
        let mut m = self.raw.clone();
        m.insert("architectures".into(), serde_json::json!([architecture]));
        m.insert(
            "model_type".into(),
            Value::String(self.variant.model_type().into()),
        );
        for key in ["id2label", "label2id", "num_labels", "_name_or_path"] {
            m.remove(key);
        }
        if !labels.is_empty() {
            let id2label: Map<String, Value> = labels
                .iter()
                .enumerate()
                .map(|(i, l)| (i.to_string(), Value::String(l.clone())))
                .collect();
            let label2id: Map<String, Value> = labels
                .iter()
                .enumerate()
                .map(|(i, l)| (l.clone(), Value::from(i)))
                .collect();
            m.insert("id2label".into(), Value::Object(id2label));
            m.insert("label2id".into(), Value::Object(label2id));
        }
        m.insert(
            "stilts_version".into(),
            Value::String(env!("CARGO_PKG_VERSION").into()),
        );
        Value::Object(m)
    }

    /// Number of encoder parameters (embeddings and layers, no head).
    pub fn encoder_parameters(&self) -> usize {
        let h = self.hidden_size;
        let f = self.intermediate_size;
        let emb = (self.vocab_size + self.max_position_embeddings + self.type_vocab_size) * h;
        let layer = 4 * (h * h + h) + (h * f + f) + (f * h + h) + 2 * 2 * h;
        let extra = 2 * h; // embeddings LayerNorm (post-LN) or final LayerNorm (pre-LN)
        emb + self.num_hidden_layers * layer + extra
    }
}
