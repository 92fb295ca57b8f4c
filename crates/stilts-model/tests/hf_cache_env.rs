//! Finding models in the Hugging Face cache through HF_HUB_CACHE / HF_HOME.
//! Environment variables are process-global, so this binary holds exactly
//! one test, which sets them one after the other.

use stilts_testing as common;

use std::path::{Path, PathBuf};

use candle_core::Device;
use common::{max_abs_diff, write_tiny};
use stilts_model::load::{hf_hub_cache, resolve};
use stilts_model::Error;
use stilts_model::{HeadKind, Inputs, LoadOptions, Model, Variant};

const COMMIT: &str = "e73636d4f797dec63c3081bb6ed5c7b0bb3f2089";

/// A fake cache entry `models--{folder}` holding a tiny classifier.
fn fake_repo(cache: &Path, folder: &str, variant: Variant) -> (PathBuf, Model) {
    let repo = cache.join(format!("models--{folder}"));
    let snapshot = repo.join("snapshots").join(COMMIT);
    let model = write_tiny(variant, &snapshot);
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), COMMIT).unwrap();
    (snapshot, model)
}

fn logits(model: &Model, reference: &Model) -> candle_core::Tensor {
    let tok = reference.tokenizer.as_ref().unwrap();
    let rows: Vec<Vec<u32>> = [
        ("the cat sat on the mat", "a dog runs"),
        ("le chien mange une pomme", "no one came"),
    ]
    .iter()
    .map(|(a, b)| tok.encode(a, Some(b), 64).unwrap())
    .collect();
    let inputs = Inputs::pad(&rows, 1, &Device::Cpu).unwrap();
    model
        .forward(&inputs, None)
        .unwrap()
        .logits()
        .unwrap()
        .clone()
}

fn load(spec: &str) -> Model {
    Model::load(spec, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("Model::load({spec:?}): {e}"))
}

#[test]
fn hub_cache_is_found_through_the_environment() {
    let root = tempfile::tempdir().unwrap();
    for k in ["HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME"] {
        std::env::remove_var(k);
    }
    // Keep the real ~/.cache out of it.
    std::env::set_var("XDG_CACHE_HOME", root.path().join("xdg"));
    assert_eq!(
        hf_hub_cache(),
        root.path().join("xdg").join("huggingface").join("hub")
    );

    // 1. HF_HUB_CACHE, current folder name: the size name, the hub id and the
    //    old id all find it.
    let hub_cache = root.path().join("hub-cache");
    let (snapshot, model) = fake_repo(
        &hub_cache,
        "FacebookAI--xlm-roberta-base",
        Variant::PostLayerNorm,
    );
    std::env::set_var("HF_HUB_CACHE", &hub_cache);
    assert_eq!(hf_hub_cache(), hub_cache);
    let want = logits(&model, &model);
    for spec in [
        "xlmr-base",
        "FacebookAI/xlm-roberta-base",
        "xlm-roberta-base",
    ] {
        assert_eq!(
            resolve(spec).unwrap_or_else(|e| panic!("{spec}: {e}")),
            snapshot,
            "{spec}"
        );
        let loaded = load(spec);
        assert_eq!(
            loaded.head.kind,
            HeadKind::Classification {
                labels: common::nli_labels()
            },
            "{spec}"
        );
        assert_eq!(loaded.config().variant, Variant::PostLayerNorm, "{spec}");
        assert_eq!(
            max_abs_diff(&logits(&loaded, &model), &want),
            0.0,
            "{spec}: not the cached model"
        );
    }

    // 2. HF_HOME (and no HF_HUB_CACHE): `$HF_HOME/hub`, here with the legacy
    //    folder name of the old id.
    let home = root.path().join("hf-home");
    let (snapshot_xl, model_xl) =
        fake_repo(&home.join("hub"), "xlm-roberta-base", Variant::PreLayerNorm);
    // HF_HUB_CACHE wins while both are set.
    std::env::set_var("HF_HOME", &home);
    assert_eq!(hf_hub_cache(), hub_cache);
    assert_eq!(resolve("xlmr-base").unwrap(), snapshot);
    std::env::remove_var("HF_HUB_CACHE");
    assert_eq!(hf_hub_cache(), home.join("hub"));
    for spec in [
        "xlmr-base",
        "xlm-roberta-base",
        "FacebookAI/xlm-roberta-base",
    ] {
        assert_eq!(
            resolve(spec).unwrap_or_else(|e| panic!("{spec}: {e}")),
            snapshot_xl,
            "{spec}"
        );
    }
    let loaded = load("xlmr-base");
    assert_eq!(loaded.config().variant, Variant::PreLayerNorm);
    assert_eq!(
        max_abs_diff(&logits(&loaded, &model_xl), &logits(&model_xl, &model_xl)),
        0.0
    );

    // An empty HF_HUB_CACHE counts as unset.
    std::env::set_var("HF_HUB_CACHE", "");
    assert_eq!(hf_hub_cache(), home.join("hub"));
    std::env::remove_var("HF_HUB_CACHE");

    // 3. The BERT-family size names: their hub ids (mbert also its legacy id).
    for (size, folder) in [
        ("me5-small", "intfloat--multilingual-e5-small"),
        ("mminilm", "microsoft--Multilingual-MiniLM-L12-H384"),
        ("mbert", "bert-base-multilingual-cased"),
    ] {
        let (snapshot, model) = fake_repo(&home.join("hub"), folder, Variant::Bert);
        assert_eq!(
            resolve(size).unwrap_or_else(|e| panic!("{size}: {e}")),
            snapshot
        );
        let loaded = load(size);
        assert_eq!(loaded.config().variant, Variant::Bert, "{size}");
        assert_eq!(loaded.architecture(), "BertForSequenceClassification");
        assert_eq!(
            max_abs_diff(&logits(&loaded, &model), &logits(&model, &model)),
            0.0,
            "{size}: not the cached model"
        );
    }
    let (snapshot, _) = fake_repo(
        &home.join("hub"),
        "google-bert--bert-base-multilingual-cased",
        Variant::Bert,
    );
    assert_eq!(
        resolve("mbert").unwrap(),
        snapshot,
        "the current hub id comes first"
    );

    // 4. Not in the cache: ModelNotFound, listing every folder it tried.
    let hub = home.join("hub");
    let cases: [(&str, &[&str]); 3] = [
        (
            "xlmr-large",
            &[
                "models--FacebookAI--xlm-roberta-large",
                "models--xlm-roberta-large",
            ],
        ),
        (
            "facebook/xlm-roberta-xl",
            &["models--facebook--xlm-roberta-xl"],
        ),
        ("someone/not-a-model", &["models--someone--not-a-model"]),
    ];
    for (spec, folders) in cases {
        match Model::load(spec, &LoadOptions::default()) {
            Ok(_) => panic!("{spec}: loaded something"),
            Err(e @ Error::ModelNotFound { .. }) => {
                let msg = e.to_string();
                let Error::ModelNotFound {
                    spec: s,
                    tried,
                    hint,
                } = e
                else {
                    unreachable!()
                };
                assert_eq!(s, spec);
                for f in folders {
                    let path = hub.join(f).display().to_string();
                    assert!(tried.contains(&path), "{spec}: {path} not in {tried:?}");
                    assert!(
                        msg.contains(&path),
                        "{spec}: message does not list {path}:\n{msg}"
                    );
                }
                assert!(msg.contains(spec), "{msg}");
                assert!(
                    hint.contains("HF_HOME") && hint.contains("xlmr-large"),
                    "{hint}"
                );
            }
            Err(e) => panic!("{spec}: expected ModelNotFound, got: {e}"),
        }
    }
}
