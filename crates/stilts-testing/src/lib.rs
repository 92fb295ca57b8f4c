//! Helpers shared by the integration tests of every crate of the
//! workspace (a dev-dependency only, never published): where the
//! repository's fixtures and `../shared/data` are, the devices a numeric
//! test runs on, tensor comparisons, tiny models, the Python reference.
//! The helpers that run the `stilts` binary live in the root crate's
//! `tests/it/common.rs`, the only place its path is known.

use std::path::PathBuf;

use candle_core::{Device, Tensor};

/// The repository's root, whichever crate's test asks (cargo runs each
/// crate's tests in that crate's folder).
pub const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// `../shared/data` beside the repository (never copied into it).
pub fn shared_data() -> PathBuf {
    PathBuf::from(REPO).join("..").join("shared").join("data")
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(REPO).join("tests").join("fixtures")
}

/// The devices a numeric test runs on: the CPU, and the first CUDA device
/// when there is one and stilts was built with the `cuda` feature (a build
/// without it gets an error from candle here, and runs on the CPU only;
/// candle's `test_device!` idea).
pub fn devices() -> Vec<Device> {
    let mut d = vec![Device::Cpu];
    if let Ok(c) = Device::new_cuda(0) {
        d.push(c);
    }
    d
}

/// Tolerance scale for a device: CUDA's reductions reorder sums.
pub fn device_tol(device: &Device) -> f64 {
    if device.is_cpu() {
        1.0
    } else {
        10.0
    }
}

/// All elements as f64 on the host, flattened.
pub fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(candle_core::DType::F64)
        .unwrap()
        .to_device(&Device::Cpu)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    let a = values(a);
    let b = values(b);
    assert_eq!(a.len(), b.len(), "element counts differ");
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

/// `||a - b|| / ||b||` (with `||b||` floored at `floor`).
pub fn rel_diff(a: &Tensor, b: &Tensor, floor: f64) -> f64 {
    let a = values(a);
    let b = values(b);
    let num: f64 = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt();
    let den: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    num / den.max(floor)
}

/// A few hundred words of text to train tiny tokenizers on.
pub fn sample_texts() -> Vec<String> {
    let base = [
        "the cat sat on the mat",
        "a dog runs in the park",
        "people walk to the market every morning",
        "she reads a book about the history of science",
        "they play football after school",
        "the weather is cold and rainy today",
        "he does not like green tea",
        "we will travel to the mountains",
        "el gato duerme en la casa",
        "le chien mange une pomme",
        "die katze schläft auf dem sofa",
        "the children are singing a song",
        "no one came to the meeting",
        "the river flows into the sea",
    ];
    (0..6)
        .flat_map(|k| base.iter().map(move |s| format!("{s} {k}")))
        .collect()
}

/// The labels of the tiny NLI classifiers the tests build.
pub fn nli_labels() -> Vec<String> {
    ["entailment", "neutral", "contradiction"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Writes a tiny model of `variant` (tokenizer trained on [`sample_texts`],
/// 3-label classification head) into `dir` and returns it.
pub fn write_tiny(variant: stilts_model::Variant, dir: &std::path::Path) -> stilts_model::Model {
    let spec = stilts_model::tiny::TinySpec {
        variant,
        ..Default::default()
    };
    stilts_model::tiny::write(
        &spec,
        &sample_texts(),
        stilts_model::HeadKind::Classification {
            labels: nli_labels(),
        },
        dir,
    )
    .unwrap_or_else(|e| panic!("tiny::write into {}: {e}", dir.display()))
}

/// A python with torch and transformers for cross-checks: `$STILTS_PYTHON`,
/// else `<repo>/.venv/bin/python` if it exists, provided it imports them.
pub fn python() -> Option<PathBuf> {
    static PYTHON: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let candidate = std::env::var_os("STILTS_PYTHON")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| {
                    Some(PathBuf::from(REPO).join(".venv").join("bin").join("python"))
                        .filter(|p| p.exists())
                })?;
            let ok = std::process::Command::new(&candidate)
                .args(["-c", "import torch, transformers, safetensors"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                Some(candidate)
            } else {
                eprintln!(
                    "{} cannot import torch, transformers and safetensors",
                    candidate.display()
                );
                None
            }
        })
        .clone()
}

/// [`python`], or `None` after printing that `test` is skipped; panics
/// instead when `STILTS_REQUIRE_PYTHON=1` (CI).
pub fn python_or_skip(test: &str) -> Option<PathBuf> {
    let p = python();
    if p.is_none() {
        if std::env::var("STILTS_REQUIRE_PYTHON").as_deref() == Ok("1") {
            panic!(
                "{test}: STILTS_REQUIRE_PYTHON=1 but no python with torch + transformers was found (set STILTS_PYTHON, or create the venv: `python3 -m venv .venv && .venv/bin/pip install -r tests/fixtures/requirements.txt`)"
            );
        }
        eprintln!("{test}: skipped: no python with transformers (set STILTS_PYTHON or create .venv: python3 -m venv .venv && .venv/bin/pip install -r tests/fixtures/requirements.txt)");
    }
    p
}

/// Runs `tests/fixtures/SCRIPT` with `python` on `args`, offline (no hub);
/// panics with its stderr unless it succeeds. Returns stdout and stderr.
pub fn run_fixture_script(
    python: &std::path::Path,
    script: &str,
    args: &[&std::ffi::OsStr],
) -> (String, String) {
    let out = std::process::Command::new(python)
        .arg(fixtures().join(script))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_OFFLINE", "1")
        .output()
        .expect("running python");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{script} failed on {args:?}:\n{stderr}"
    );
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// Classification batches of 8 rows (padding id 1) from token rows and
/// their labels, on the CPU.
pub fn class_batches(
    rows: &[Vec<u32>],
    labels: &[i64],
) -> Vec<(stilts_model::Inputs, stilts_model::Target)> {
    rows.chunks(8)
        .zip(labels.chunks(8))
        .map(|(r, l)| {
            (
                stilts_model::Inputs::pad(r, 1, &Device::Cpu).unwrap(),
                stilts_model::Target::Class(Tensor::new(l, &Device::Cpu).unwrap()),
            )
        })
        .collect()
}

/// The name libtest knows a test by, for re-running the test binary on
/// exactly that test (`--exact NAME`) as a child process: the module path
/// below the test crate, then the function. Call it as
/// `test_name(module_path!(), "my_test")`.
pub fn test_name(module_path: &str, function: &str) -> String {
    match module_path.split_once("::") {
        Some((_, below)) => format!("{below}::{function}"),
        None => function.to_string(),
    }
}

/// Three padded rows (7, 3 and 6 tokens; pad id 1) of a tiny vocabulary
/// and their targets for `head`: a label each, or for an MLM head every
/// third token's (the others -100).
pub fn tiny_batch(
    head: &stilts_model::HeadKind,
    device: &Device,
) -> (stilts_model::Inputs, stilts_model::Target) {
    use stilts_model::{HeadKind, Inputs, Target};
    let rows = vec![
        vec![0, 5, 9, 11, 2, 17, 3],
        vec![0, 7, 2],
        vec![0, 30, 31, 4, 12, 2],
    ];
    let inputs = Inputs::pad(&rows, 1, device).unwrap();
    let target = match head {
        HeadKind::MaskedLm => {
            let t: Vec<i64> = (0..21).map(|i| if i % 3 == 1 { 9 } else { -100 }).collect();
            Target::Tags(Tensor::from_vec(t, (3, 7), device).unwrap())
        }
        _ => Target::Class(Tensor::new(&[2i64, 0, 1], device).unwrap()),
    };
    (inputs, target)
}

/// The training loss of `m` on one batch (dropout on, from `seed`) and
/// every parameter's gradient, by name; panics naming a parameter that got
/// none.
pub fn loss_and_grads(
    m: &stilts_model::Model,
    inputs: &stilts_model::Inputs,
    target: &stilts_model::Target,
    seed: u64,
) -> (f64, Vec<(String, Tensor)>) {
    let mut rng = stilts_model::DropoutRng::new(seed);
    let loss = m.train_loss(inputs, target, Some(&mut rng)).unwrap();
    let value = loss.to_f64().unwrap();
    let grads = loss.backward().unwrap();
    let per_param = m
        .params()
        .iter()
        .map(|(name, var)| {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient for {name}"))
                .clone();
            (name.clone(), g)
        })
        .collect();
    (value, per_param)
}
