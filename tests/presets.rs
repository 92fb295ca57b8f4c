//! Presets are what the papers used; overrides are key by key; unknown keys are named.

use stilts::protocol::presets::{preset, RunOptions};

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
