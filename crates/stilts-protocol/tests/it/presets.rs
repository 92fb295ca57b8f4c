//! Presets are what the papers used; overrides are key by key; unknown keys are named.

use stilts_protocol::presets::{preset, RunOptions};

#[test]
fn presets_hold_the_published_recipes() {
    let j = preset("jiant").unwrap();
    assert_eq!(
        (
            j.lr,
            j.batch_size * j.grad_accum,
            j.epochs,
            j.max_length,
            j.warmup
        ),
        (1e-5, 32, 2, 256, 0.1)
    );
    let x = preset("xtreme").unwrap();
    assert_eq!(
        (x.lr, x.batch_size * x.grad_accum, x.epochs, x.max_length),
        (3e-5, 32, 5, 128)
    );
    assert!(preset("nope")
        .unwrap_err()
        .to_string()
        .contains("jiant, xtreme"));
}

#[test]
fn overrides_replace_single_keys_and_unknown_keys_are_errors() {
    let o = RunOptions::from_overrides(Some("xtreme"), &serde_json::json!({"lr": 1e-5, "seed": 3}))
        .unwrap();
    assert_eq!((o.lr, o.seed, o.epochs), (1e-5, 3, 5));
    let err = RunOptions::from_overrides(None, &serde_json::json!({"lrr": 1e-5}))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("`lrr`") && err.contains("lr") && err.contains("max_length"),
        "{err}"
    );
    let err = RunOptions::from_overrides(None, &serde_json::json!({"epochs": "two"}))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("epochs") || err.contains("invalid type"),
        "{err}"
    );
    let t = o.train_options(Some(100));
    assert_eq!(t.eval_every, Some(100));
    assert_eq!(t.adamw.lr, 1e-5);
}

#[test]
fn presets_carry_the_references_model_selection_rules() {
    let j = preset("jiant").unwrap();
    assert_eq!(
        (j.eval_every, j.patience, j.dev_limit),
        (Some(1000), Some(30), Some(500))
    );
    let x = preset("xtreme").unwrap();
    assert_eq!(
        (x.eval_every, x.patience, x.dev_limit),
        (Some(100), None, None)
    );
    // xtreme is size-aware: base-sized encoders get 2e-5, large and up 3e-5.
    let at = |h| {
        RunOptions::resolve(&serde_json::json!({"preset": "xtreme"}), Some(h))
            .unwrap()
            .options
            .lr
    };
    assert_eq!(
        (at(384), at(768), at(1024), at(2560)),
        (2e-5, 2e-5, 3e-5, 3e-5)
    );
    // A hand-set lr wins over the size rule.
    let r = RunOptions::resolve(
        &serde_json::json!({"preset": "xtreme", "lr": 7e-6}),
        Some(768),
    )
    .unwrap();
    assert_eq!(r.options.lr, 7e-6);
}

#[test]
fn selection_keys_without_a_dev_set_and_bad_values_are_errors() {
    let r = RunOptions::resolve(&serde_json::json!({"eval_every": 50}), None).unwrap();
    assert!(r.require_dev(true, "train").is_ok());
    let e = r
        .require_dev(false, "train on mnli")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`eval_every` needs a dev set") && e.contains("dev:"),
        "{e}"
    );
    // The preset's own values are only used when a dev set is given.
    assert!(RunOptions::resolve(&serde_json::json!({}), None)
        .unwrap()
        .require_dev(false, "t")
        .is_ok());
    for (bad, word) in [
        (serde_json::json!({"lr": 0.0}), "lr"),
        (serde_json::json!({"batch_size": 0}), "batch_size"),
        (serde_json::json!({"eval_every": 0}), "eval_every"),
        (serde_json::json!({"warmup": 1.5}), "warmup"),
        (serde_json::json!({"preset": 3}), "preset"),
        (serde_json::json!({"preset": "quick"}), "jiant, xtreme"),
    ] {
        let e = RunOptions::resolve(&bad, None).unwrap_err().to_string();
        assert!(e.contains(word), "{bad}: {e}");
    }
    let e = RunOptions::resolve(&serde_json::json!({"eval_evry": 5}), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("did you mean `eval_every`"), "{e}");
}

#[test]
fn freeze_reaches_the_loop_and_malformed_entries_are_errors() {
    let r = RunOptions::resolve(
        &serde_json::json!({"freeze": ["embeddings", "layers:0-3"]}),
        None,
    )
    .unwrap();
    assert_eq!(r.options.freeze, vec!["embeddings", "layers:0-3"]);
    assert_eq!(r.options.train_options(None).freeze, r.options.freeze);
    assert!(
        preset("jiant").unwrap().freeze.is_empty(),
        "nothing is frozen by default"
    );
    for (bad, says) in [
        (serde_json::json!({"freeze": ["layers:3-1"]}), "counts down"),
        (serde_json::json!({"freeze": ["layers:x"]}), "whole numbers"),
        (serde_json::json!({"freeze": [""]}), "is empty"),
        (
            serde_json::json!({"freeze": "embeddings"}),
            // In the script's words (issue 32, item 1).
            "`freeze` takes an array (e.g. `freeze: [\"embeddings\"]`), not \"embeddings\"",
        ),
    ] {
        let err = RunOptions::resolve(&bad, None).unwrap_err().to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
}

#[test]
fn dropout_and_shuffle_are_checked_and_change_no_default_fingerprint() {
    // At their defaults the new keys are left out of the serialised options,
    // so every fingerprint made before them still names the same run.
    let plain = serde_json::to_value(RunOptions::default()).unwrap();
    assert!(plain.get("dropout").is_none() && plain.get("shuffle").is_none());
    let keys = RunOptions::keys();
    assert!(keys.contains(&"dropout".to_string()) && keys.contains(&"shuffle".to_string()));
    let r =
        RunOptions::resolve(&serde_json::json!({"dropout": 0.0, "shuffle": false}), None).unwrap();
    assert_eq!((r.options.dropout, r.options.shuffle), (Some(0.0), false));
    assert_eq!(r.options.train_options(None).dropout, Some(0.0));
    let fp = |v| {
        serde_json::to_string(
            &RunOptions::resolve(&v, None)
                .unwrap()
                .options
                .fingerprint_json(false),
        )
        .unwrap()
    };
    assert_ne!(
        fp(serde_json::json!({})),
        fp(serde_json::json!({"shuffle": false}))
    );
    assert_ne!(
        fp(serde_json::json!({})),
        fp(serde_json::json!({"dropout": 0.1}))
    );
    for bad in [1.0, -0.1, 1.5] {
        let e = RunOptions::resolve(&serde_json::json!({ "dropout": bad }), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("dropout is a probability in [0, 1)"), "{e}");
    }
}
