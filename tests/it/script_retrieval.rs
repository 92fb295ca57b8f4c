//! Sentence retrieval from scripts (tiny model, CPU, the real Tatoeba files
//! in ../shared/data): `evaluate(model, tatoeba, opts)` gives a Result that
//! `mean`, `compare` and `table` take; every option does something and a
//! wrong one is an error at the script's line; a condition with
//! `target: ()` scores the encoder right after its intermediate phase, and
//! a condition's `evaluate` map takes Tatoeba beside XNLI.

use crate::common;

use std::path::Path;

fn stilts(dir: &Path, src: &str) -> (i32, String, String) {
    std::fs::write(dir.join("s.rhai"), src).unwrap();
    let data = format!("data={}", common::shared_data().display());
    common::stilts_in(dir, &["run", "s.rhai", "--no-report", "--set", &data])
}

const PRELUDE: &str = r#"
let d = param("data", "");
let sst = task("sst2", #{data: `${d}/intermediate/sst2`, split: "train", limit: 48});
let mnli = task("mnli", #{data: `${d}/intermediate/mnli`, split: "train", limit: 32});
let tat = task("tatoeba", #{data: `${d}/tatoeba`, languages: ["de", "sw"], first: 40});
let m = tiny_model(#{text: [sst, mnli, tat], vocab: 400, hidden: 32, layers: 2, heads: 2, ffn: 64, max_length: 64, seed: 3});
"#;

fn values(out: &str, prefix: &str) -> Vec<f64> {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{out}"))
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect()
}

#[test]
fn evaluate_gives_a_result_that_mean_compare_and_table_take() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!(
        "{PRELUDE}{}",
        r#"
print(`split ${tat.split} ${tat.languages} ${tat.len} ${tat.metric}`);
let a = evaluate(m, tat);
let b = evaluate(m, tat, #{layer: 2, pooling: "cls"});
let c = evaluate(m, tat, #{layer: 1, pooling: "cls", batch_size: 7});
let e = evaluate(m, tat, #{direction: "both", scoring: "margin"});
let f = evaluate(m, tat, #{direction: "en-xx"});
let g = evaluate(m, tat, #{limit: 10});
let h = evaluate(m, tat, #{max_length: 5});
for r in [["a", a], ["b", b], ["c", c], ["e", e], ["f", f], ["g", g], ["h", h]] {
    let x = r[1].to_map();
    print(`${r[0]} ${x.de} ${x.sw} ${r[1].avg}`);
}
print(`metric ${a.metric}`);
let k = compare(a, b);
print(`delta ${k.avg}`);
show(table(#{mean1: a, cls2: b}));
print(`mean ${mean([a, a]).avg}`);
"#
    );
    let (code, out, err) = stilts(dir.path(), &src);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("split test [\"de\", \"sw\"] 80 retrieval accuracy"),
        "{out}"
    );
    assert!(out.contains("metric retrieval accuracy"), "{out}");
    // (de, sw, average) of each evaluation.
    let v: Vec<Vec<f64>> = ["a ", "b ", "c ", "e ", "f ", "g ", "h "]
        .iter()
        .map(|p| values(&out, p))
        .collect();
    let differ = |x: &[f64], y: &[f64]| x.iter().zip(y).any(|(p, q)| (p - q).abs() > 1e-9);
    // Each option changes what is computed: the layer (b against c), the
    // pooling (c against a), direction and scoring, candidate pool, length.
    assert!(
        differ(&v[1], &v[2]),
        "`layer` changed nothing: {v:?}\n{out}"
    );
    for (i, x) in v.iter().enumerate().skip(2) {
        assert!(differ(x, &v[0]), "option {i} changed nothing: {v:?}\n{out}");
    }
    assert!(
        v.iter().flatten().all(|x| (0.0..=100.0).contains(x)),
        "{v:?}"
    );
    assert!(
        (values(&out, "delta ")[0] - (v[1][2] - v[0][2])).abs() < 1e-6,
        "{out}"
    );
    assert!((values(&out, "mean ")[0] - v[0][2]).abs() < 1e-9, "{out}");
    assert!(out.contains("mean1") && out.contains("cls2"), "{out}");
}

#[test]
fn wrong_retrieval_options_are_errors_at_the_script_line() {
    let cases = [
        ("evaluate(m, tat, #{layer: 3})", "`layer: 3`"),
        ("evaluate(m, tat, #{pooling: \"max\"})", "pooling `max`"),
        ("evaluate(m, tat, #{direction: \"en\"})", "direction `en`"),
        ("evaluate(m, tat, #{scoring: \"l2\"})", "scoring `l2`"),
        ("evaluate(m, tat, #{doc_stride: 3})", "`doc_stride` is for span QA"),
        ("evaluate(m, tat, #{layers: 1})", "unknown"),
        ("evaluate(train(m, mnli, #{max_steps: 1}), task(\"xnli\", #{data: `${d}/xnli`, split: \"dev\", languages: [\"de\"], limit: 4}), #{layer: 1})", "`layer` is an option of retrieval tasks"),
        ("train(m, tat)", "no training data"),
        ("condition(#{model: m, target: (), evaluate: task(\"xnli\", #{data: `${d}/xnli`, split: \"dev\", languages: [\"de\"], limit: 4})})", "needs a head trained on a target task"),
        ("condition(#{model: m, target: (), dev: mnli, evaluate: tat})", "`dev` belongs to the target phase"),
    ];
    for (call, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        let src = format!("{PRELUDE}\n{call};\n");
        let (code, _, err) = stilts(dir.path(), &src);
        assert_ne!(code, 0, "{call} ran");
        assert!(
            err.contains(want) && err.contains("s.rhai:"),
            "{call}: {err}"
        );
    }
}

#[test]
fn conditions_without_a_target_score_the_encoder_after_the_intermediate_phase() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!(
        "{PRELUDE}{}",
        r#"
store("runs");
let o = #{lr: 3e-3, epochs: 1, batch_size: 16, max_length: 48};
let none = condition(#{model: m, target: (), evaluate: #{tatoeba: tat}, options: o, seed: 1});
let s = condition(#{model: m, intermediate: sst, target: (), evaluate: #{tatoeba: tat}, options: o, seed: 1});
let direct = evaluate(m, tat);
print(`none ${none.tatoeba.avg} ${direct.avg}`);
print(`sst ${s.tatoeba.avg}`);
print(`gain ${compare(none.tatoeba, s.tatoeba).avg}`);
let x = task("xnli", #{data: `${d}/xnli`, split: "dev", languages: ["de"], limit: 8});
let t = condition(#{model: m, intermediate: sst, target: mnli, evaluate: #{xnli: x, tatoeba: tat}, options: o, seed: 1});
print(`target ${t.xnli.avg} ${t.tatoeba.avg}`);
"#
    );
    let (code, out, err) = stilts(dir.path(), &src);
    assert_eq!(code, 0, "{err}");
    let none = values(&out, "none ");
    // The baseline is the pretrained encoder, as evaluate() scores it.
    assert!((none[0] - none[1]).abs() < 1e-9, "{out}");
    // The intermediate phase changed the encoder, so its retrieval.
    let sst = values(&out, "sst ")[0];
    assert!((sst - none[0]).abs() > 1e-9, "{out}");
    assert!(
        (values(&out, "gain ")[0] - (sst - none[0])).abs() < 1e-6,
        "{out}"
    );
    // After the target phase too: another encoder again.
    let t = values(&out, "target ");
    assert!((t[1] - sst).abs() > 1e-9, "{out}");
    // Run again: every condition comes from the store.
    let (code, out2, err) = stilts(dir.path(), &src);
    assert_eq!(code, 0, "{err}");
    assert_eq!(values(&out2, "sst ")[0], sst);
    assert!(
        err.matches("reused").count() >= 3 || out2.matches("reused").count() >= 3,
        "{out2}\n{err}"
    );
}
