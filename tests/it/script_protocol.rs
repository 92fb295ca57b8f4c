//! The protocol from scripts (tiny model, CPU, the real files in
//! ../shared/data): model selection on a dev set restores the best weights;
//! `condition` reuses finished cells by fingerprint, re-runs exactly those
//! whose data changed, and trains a shared intermediate phase once; MLM in a
//! multi-task mix changes the encoder; keys a call cannot honour are errors.

use crate::common;

use std::path::Path;
use std::process::Command;

fn stilts(dir: &Path, src: &str, args: &[&str]) -> (i32, String, String) {
    std::fs::write(dir.join("s.rhai"), src).unwrap();
    let mut a = vec!["run", "s.rhai", "--no-report"];
    a.extend_from_slice(args);
    common::stilts_in(dir, &a)
}

fn data() -> String {
    common::shared_data().display().to_string()
}

/// A tiny model over the texts of the tasks a script loads first.
const PRELUDE: &str = r#"
let d = param("data", "");
let sst = task("sst2", #{data: `${d}/intermediate/sst2`, split: "train", limit: 64});
let sst_dev = task("sst2", #{data: `${d}/intermediate/sst2`, split: "dev", limit: 48});
let mnli = task("mnli", #{data: `${d}/intermediate/mnli`, split: "train", limit: 48});
let m = tiny_model(#{text: [sst, sst_dev, mnli], vocab: 300, hidden: 32, layers: 1, heads: 2, ffn: 64, max_length: 48, seed: 3});
"#;

fn lines_of(out: &str, prefix: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix(prefix).map(str::to_string))
        .collect()
}

#[test]
fn dev_selection_ends_on_the_best_weights_not_the_last() {
    // The bundled English sentiment data: 240 lines to train on, 60 as dev.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(
        Path::new(crate::common::REPO).join("data/quickstart/sentiment_en.tsv"),
    )
    .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(dir.path().join("tr.tsv"), lines[..240].join("\n") + "\n").unwrap();
    std::fs::write(dir.path().join("dv.tsv"), lines[240..].join("\n") + "\n").unwrap();
    let src = r#"
let lab = ["negative", "positive"];
let tr = task("tsv", #{file: "tr.tsv", name: "sent", columns: ["text", "label"], labels: lab});
let dv = task("tsv", #{file: "dv.tsv", name: "sent", split: "dev", columns: ["text", "label"], labels: lab});
let m = tiny_model(#{text: [tr, dv], vocab: 200, hidden: 32, layers: 1, heads: 2, ffn: 64, max_length: 32, seed: 3, labels: lab});
let o = #{lr: 3e-3, epochs: 4, batch_size: 8, max_length: 32, warmup: 0.0, seed: 1};
let ft = train(m, tr, o + #{dev: dv, eval_every: 3});
let t = ft.training;
print(`evals ${t.dev.len()}`);
print(`best ${t.best_dev}`);
print(`step ${t.best_step}`);
print(`last ${t.dev[t.dev.len() - 1][1]}`);
print(`final ${evaluate(ft, dv).avg}`);
let plain = train(m, tr, o);
print(`plain ${evaluate(plain, dv).avg}`);
"#;
    let (code, out, err) = stilts(dir.path(), src, &[]);
    assert_eq!(code, 0, "{err}");
    let num = |k: &str| -> f64 { lines_of(&out, &format!("{k} "))[0].parse().unwrap() };
    assert_eq!(num("evals"), 40.0, "every 3 of 120 updates: {out}");
    // The run's last evaluation is worse than its best: selection matters here.
    assert!(num("last") < num("best"), "{out}");
    assert!(num("step") < 120.0, "{out}");
    // The model returned is the best one: scored again, it gives the best score.
    assert!((num("final") - num("best")).abs() < 1e-9, "{out}");
    // Without a dev set it ends on the last weights (the last evaluation's).
    assert!((num("plain") - num("last")).abs() < 1e-9, "{out}");
    assert!(
        err.contains("best dev") && err.contains("those weights kept"),
        "{err}"
    );
}

#[test]
fn keys_a_call_cannot_honour_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (call, want) in [
        (
            "train(m, sst, #{eval_every: 5})",
            "`eval_every` needs a dev set",
        ),
        (
            "train(m, sst, #{patience: 2})",
            "`patience` needs a dev set",
        ),
        (
            "train(m, sst, #{dev_limit: 5})",
            "`dev_limit` needs a dev set",
        ),
        (
            "stilts(m, sst, mnli, #{intermediate: #{eval_every: 5}})",
            "`eval_every` needs a dev set",
        ),
        ("train(m, sst, #{dev: 3})", "`dev` takes a task"),
        (
            "multitask(m, [sst, mnli], #{dev: sst_dev, sampling: #{probs: #{sst2: 1.0}}})",
            "no probability for task `mnli`",
        ),
        (
            "train(m, mnli, #{dev: sst_dev})",
            "needs a classification head",
        ),
        (
            "train(m, sst, #{freeze: [\"embedings\"]})",
            "`freeze` entry `embedings` matches no parameter",
        ),
        (
            "stilts(m, sst, mnli, #{target: #{freeze: [\"layers:0-4\"]}})",
            "encoder.layer.1",
        ),
        // The tiny model's head is NLI's: it cannot be kept for SST-2.
        (
            "train(m, sst, #{new_head: false})",
            "`new_head: false` keeps the model's head, but it is a classification head",
        ),
        (
            "train(m, sst, #{dropout: 1.0})",
            "dropout is a probability in [0, 1)",
        ),
        (
            "train(m, sst, #{shuffle: 0})",
            "`shuffle` takes",
        ),
        (
            "multitask(m, [sst, mnli], #{new_head: true})",
            "every task of a mix trains a fresh head",
        ),
        (
            "stilts(m, sst, mnli, #{target: #{new_head: false}})",
            "puts a fresh head on the encoder for the target task",
        ),
        (
            "condition(#{model: m, intermediate: (), target: mnli, evaluate: sst_dev, options: #{new_head: false}})",
            "a condition trains each phase under a fresh head",
        ),
    ] {
        let src = format!("{PRELUDE}\n{call};\n");
        let (code, _, err) = stilts(dir.path(), &src, &["--set", &format!("data={}", data())]);
        assert_ne!(code, 0, "{call} ran");
        assert!(
            err.contains(want) && err.contains("s.rhai:"),
            "{call}: {err}"
        );
    }
}

#[test]
fn a_dev_set_of_several_parts_is_refused_unless_pooled_by_train_and_condition_alike() {
    // One rule for dev sets (the protocol's `run::dev_set`): selecting on
    // XNLI dev in several languages is not zero-shot, so it is an error in
    // every training call unless `dev_pool: true` asks for it.
    let dir = tempfile::tempdir().unwrap();
    let x2 = r#"let x2 = task("xnli", #{data: `${d}/xnli`, split: "dev", languages: ["ar", "en"], first: 30});"#;
    for call in [
        "train(m, mnli, #{dev: x2})",
        "stilts(m, sst, mnli, #{dev: x2})",
        "condition(#{model: m, target: mnli, dev: x2, evaluate: x2, seed: 1})",
        "condition(#{model: m, intermediate: sst, target: mnli, evaluate: x2, seed: 1, options: #{intermediate: #{dev: x2}}})",
    ] {
        let src = format!("{PRELUDE}\n{x2}\n{call};\n");
        let (code, _, err) = stilts(dir.path(), &src, &["--set", &format!("data={}", data())]);
        assert_ne!(code, 0, "{call} ran");
        assert!(
            err.contains("has 2 parts (ar, en)")
                && err.contains("dev_pool: true")
                && err.contains("language(\"en\")")
                && err.contains("s.rhai:"),
            "{call}: {err}"
        );
    }
    let src = format!("{PRELUDE}\n{x2}\ntrain(m, mnli, #{{dev_pool: true}});\n");
    let (code, _, err) = stilts(dir.path(), &src, &["--set", &format!("data={}", data())]);
    assert_ne!(code, 0);
    assert!(err.contains("there is no `dev`"), "{err}");
    // Pooled on purpose: the dev score is over every part's examples, not
    // over the first part alone. ANLI's rounds (the first 30 dev examples
    // of each have other label shares, so even a model that predicts one
    // class scores each round differently; XNLI's languages are parallel).
    // Equal parts: the pooled accuracy is the mean of the parts'.
    let src = format!(
        r#"{PRELUDE}
let a3 = task("anli", #{{data: `${{d}}/intermediate/anli`, split: "dev", languages: ["r1", "r2", "r3"], first: 30}});
let o = #{{lr: 3e-3, max_steps: 6, batch_size: 8, max_length: 48, warmup: 0.0, seed: 1, eval_every: 2}};
let ft = train(m, mnli, o + #{{dev: a3, dev_pool: true}});
let r = evaluate(ft, a3);
print(`parts ${{r.languages.len()}}`);
print(`best ${{ft.training.best_dev}}`);
print(`avg ${{r.avg}}`);
print(`first ${{r.to_map()[r.languages[0]]}}`);
print(`names ${{r.languages}}`);
let one = train(m, mnli, o + #{{dev: a3.language("r2")}});
print(`one ${{one.training.best_dev}}`);
print(`one_eval ${{evaluate(one, a3.language("r2")).avg}}`);
let c = condition(#{{model: m, target: mnli, dev: a3, dev_pool: true, evaluate: a3, seed: 1, options: #{{max_steps: 2, batch_size: 8, max_length: 48, eval_every: 1}}}});
print(`condition ${{c.avg}}`);
"#
    );
    let (code, out, err) = stilts(dir.path(), &src, &["--set", &format!("data={}", data())]);
    assert_eq!(code, 0, "{err}");
    let num = |k: &str| -> f64 { lines_of(&out, &format!("{k} "))[0].parse().unwrap() };
    assert_eq!(num("parts"), 3.0, "{out}");
    assert!((num("best") - num("avg")).abs() < 1e-9, "{out}");
    assert!((num("first") - num("avg")).abs() > 1.0, "{out}");
    assert!((num("one") - num("one_eval")).abs() < 1e-9, "{out}");
    assert!(num("condition").is_finite(), "{out}");
}

/// Two conditions (no intermediate task and SST-2 → MNLI) per evaluation
/// language, over a private copy of two XNLI dev files.
const GRID: &str = r#"
store(param("store", "runs"));
let x = param("xnli", "");
for lang in ["de", "sw"] {
    let ev = task("xnli", #{data: x, split: "dev", languages: [lang]});
    let o = #{lr: 1e-3, epochs: 1, batch_size: 16, max_length: 48};
    let b = condition(#{model: m, target: mnli, evaluate: ev, options: o, seed: 1});
    let s = condition(#{model: m, intermediate: sst, target: mnli, evaluate: ev, options: o, seed: 1});
    print(`${lang} ${b.avg} ${s.avg}`);
}
let other = task("mnli", #{data: `${d}/intermediate/mnli`, split: "train", limit: 32});
let ev = task("xnli", #{data: x, split: "dev", languages: ["sw"]});
let r = condition(#{model: m, intermediate: sst, target: other, evaluate: #{dev: ev}, seed: 1,
                    options: #{lr: 1e-3, epochs: 1, batch_size: 16, max_length: 48}});
print(`other ${r.dev.avg}`);
"#;

#[test]
fn conditions_reuse_by_fingerprint_and_rerun_exactly_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let xdir = dir.path().join("xnli");
    std::fs::create_dir_all(&xdir).unwrap();
    for l in ["de", "sw"] {
        let text = std::fs::read_to_string(common::shared_data().join(format!("xnli/dev-{l}.tsv")))
            .unwrap();
        let head: Vec<&str> = text.lines().take(30).collect();
        std::fs::write(xdir.join(format!("dev-{l}.tsv")), head.join("\n") + "\n").unwrap();
    }
    let src = format!("{PRELUDE}\n{GRID}");
    let args = [
        "--set".to_string(),
        format!("data={}", data()),
        "--set".to_string(),
        format!("xnli={}", xdir.display()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let records = || {
        std::fs::read_to_string(dir.path().join("runs/runs.jsonl"))
            .unwrap()
            .lines()
            .count()
    };
    let (code, out1, err) = stilts(dir.path(), &src, &args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(records(), 5);
    // The third SST-2 condition (another target) trained no intermediate phase.
    assert_eq!(
        err.matches("intermediate phase reused from the store")
            .count(),
        2,
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("runs/intermediate"))
            .unwrap()
            .count(),
        1
    );
    // Again: everything is reused, the same numbers come out.
    let (code, out2, err) = stilts(dir.path(), &src, &args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out1, out2);
    assert_eq!(err.matches(": reused ").count(), 5, "{err}");
    assert_eq!(records(), 5);
    // Change one line of the German file: exactly its two conditions re-run.
    let p = xdir.join("dev-de.tsv");
    let mut lines: Vec<String> = std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    lines[4] = lines[4].replacen('\t', " (geändert)\t", 1);
    std::fs::write(&p, lines.join("\n") + "\n").unwrap();
    let (code, _, err) = stilts(dir.path(), &src, &args);
    assert_eq!(code, 0, "{err}");
    assert_eq!(err.matches(": reused ").count(), 3, "{err}");
    assert_eq!(records(), 7);
}

#[test]
fn mlm_alone_and_in_a_mix_changes_the_encoder() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!(
        "{PRELUDE}
let text = task(\"mlm\", #{{data: `${{d}}/xnli`, split: \"dev\", languages: [\"de\", \"sw\"], first: 40}});
print(`mlm ${{text.len}} ${{text.languages}}`);
let o = #{{lr: 1e-3, epochs: 1, batch_size: 8, max_length: 48, seed: 2}};
let plain = multitask(m, [sst], o);
let mixed = multitask(m, [sst, text], o + #{{sampling: #{{probs: #{{sst2: 0.5, mlm: 0.5}}}}}});
let alone = train(m, text, o);
plain.save(\"plain\");
mixed.save(\"mixed\");
alone.save(\"alone\");
print(`alone ${{alone.training.updates}} ${{alone.head}}`);
"
    );
    let (code, out, err) = stilts(dir.path(), &src, &["--set", &format!("data={}", data())]);
    assert_eq!(code, 0, "{err}");
    // The distinct premises of the first 40 pairs of each language.
    let distinct: usize = ["de", "sw"]
        .iter()
        .map(|l| {
            let t =
                std::fs::read_to_string(common::shared_data().join(format!("xnli/dev-{l}.tsv")))
                    .unwrap();
            let p: std::collections::HashSet<&str> = t
                .lines()
                .take(40)
                .map(|x| x.split('\t').next().unwrap())
                .collect();
            p.len()
        })
        .sum();
    assert!(distinct > 4 && distinct < 80);
    assert!(
        out.contains(&format!("mlm {distinct} [\"de\", \"sw\"]")),
        "{out}"
    );
    assert!(
        out.contains(&format!("alone {} masked_lm", distinct.div_ceil(8))),
        "{out}"
    );
    let weights = |d: &str| {
        let t = candle_core::safetensors::load(
            dir.path().join(d).join("model.safetensors"),
            &candle_core::Device::Cpu,
        )
        .unwrap();
        t["roberta.encoder.layer.0.attention.self.query.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    assert_ne!(
        weights("plain"),
        weights("mixed"),
        "the MLM task did not reach the encoder"
    );
    assert!(
        err.contains("multitask sst2+mlm") && err.contains("mlm "),
        "{err}"
    );
}

/// Two processes running the same script at once compute each memo key and
/// each condition once: the second waits for the first and reuses.
#[test]
fn concurrent_runs_compute_each_key_once() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!(
        "{PRELUDE}
let o = #{{lr: 1e-3, epochs: 2, batch_size: 8, max_length: 48}};
let a = memo(#{{what: \"sst\", model: m, task: sst}}, || evaluate(train(m, sst, o), sst_dev).avg);
let ev = task(\"xnli\", #{{data: `${{d}}/xnli`, split: \"dev\", languages: [\"de\"], limit: 30}});
let c = condition(#{{model: m, intermediate: sst, target: mnli, evaluate: ev, options: o, seed: 4}});
print(`${{a}} ${{c.avg}}`);
"
    );
    std::fs::write(dir.path().join("s.rhai"), &src).unwrap();
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_stilts"))
            .current_dir(dir.path())
            .args([
                "run",
                "s.rhai",
                "--no-report",
                "--set",
                &format!("data={}", data()),
            ])
            .output()
    };
    let (x, y) = std::thread::scope(|s| {
        let a = s.spawn(spawn);
        let b = s.spawn(spawn);
        (a.join().unwrap().unwrap(), b.join().unwrap().unwrap())
    });
    assert!(
        x.status.success() && y.status.success(),
        "{}{}",
        String::from_utf8_lossy(&x.stderr),
        String::from_utf8_lossy(&y.stderr)
    );
    assert_eq!(x.stdout, y.stdout);
    let records = std::fs::read_to_string(dir.path().join("runs/runs.jsonl")).unwrap();
    assert_eq!(
        records.lines().count(),
        2,
        "a key was computed twice:\n{records}"
    );
}

/// Issue 14, item 7: the report says what was trained (updates, loss,
/// time, checkpoints) for `train` and `multitask`, and where a model was
/// saved; a training call names the split it trains on.
#[test]
fn the_report_records_training_and_saving() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!(
        "{PRELUDE}
let dev = task(\"mnli\", #{{data: `${{d}}/intermediate/mnli`, split: \"dev\", limit: 24}});
let o = #{{max_steps: 2, batch_size: 8, max_length: 48, lr: 1e-3}};
let ft = train(m, dev, o);
let mt = multitask(m, [sst, mnli], o);
ft.save(\"saved\");
"
    );
    std::fs::write(dir.path().join("s.rhai"), src).unwrap();
    let (code, _, err) = common::stilts_in(
        dir.path(),
        &[
            "--quiet",
            "run",
            "s.rhai",
            "--set",
            &format!("data={}", data()),
            "--out",
            "rep",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let md = std::fs::read_to_string(dir.path().join("rep/report.md")).unwrap();
    assert!(
        md.contains("train on mnli dev_matched (24 examples): 2 updates of tiny-1x32"),
        "the split loaded, not `train`: {md}"
    );
    assert!(
        md.contains("multitask sst2+mnli of tiny-1x32: 2 updates"),
        "multitask says what it trained: {md}"
    );
    assert_eq!(
        md.matches("; checkpoints and curve.jsonl in ").count(),
        2,
        "{md}"
    );
    assert!(md.contains("loss ") && md.contains(" s; "), "{md}");
    assert!(md.contains("saved tiny-1x32+mnli to saved"), "{md}");
    // Training on an evaluation split is said (issue 32, item 10).
    assert!(
        md.contains(
            "warning: train on mnli dev_matched: training on `dev_matched`, an evaluation split"
        ),
        "{md}"
    );
}

/// Issue 32, item 5: `max_steps` overrides `epochs`, as in transformers'
/// Trainer: the data is cycled until that many updates, and the training
/// line says so.
#[test]
fn max_steps_overrides_epochs_and_cycles_the_data() {
    let dir = tempfile::tempdir().unwrap();
    // sst: 64 examples in batches of 8 = 8 updates an epoch.
    let src = format!(
        "{PRELUDE}
let ft = train(m, sst, #{{max_steps: 20, epochs: 1, batch_size: 8, max_length: 48, lr: 1e-3}});
print(`updates ${{ft.training.updates}}`);
"
    );
    let (code, out, err) = stilts(dir.path(), &src, &["--set", &format!("data={}", data())]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("updates 20"), "{out}");
    assert!(
        err.contains("20 updates of tiny-1x32")
            && err.contains("max_steps 20 (overrides epochs; 2.5 passes over the data, cycled)"),
        "{err}"
    );
}

/// Issue 32, item 7: a SQuAD question longer than `max_query_length` (64
/// tokens) is cut before windowing and counted in the training line; a
/// long question in a short window gets a shorter overlap instead of
/// stopping the run.
#[test]
fn long_squad_questions_are_cut_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let words = |n: usize, w: &str| -> String {
        (0..n)
            .map(|i| format!("{w}{}", i % 7))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let context = format!(
        "{} paris is the answer here {}",
        words(80, "ctx"),
        words(70, "more")
    );
    let start = context.find("paris").unwrap();
    let long_q = format!("{} where", words(100, "q"));
    let short_q = format!("{} where", words(8, "w"));
    let squad = serde_json::json!({"version": "1.1", "data": [{"title": "t", "paragraphs": [{
    "context": context,
    "qas": [
        {"id": "long", "question": long_q, "answers": [{"text": "paris", "answer_start": start}]},
        {"id": "short", "question": short_q, "answers": [{"text": "paris", "answer_start": start}]},
    ]}]}]});
    std::fs::create_dir_all(dir.path().join("sq")).unwrap();
    std::fs::write(dir.path().join("sq/train-v1.1.json"), squad.to_string()).unwrap();
    let src = format!(
        "let sq = task(\"squad_v1\", #{{data: \"sq\", split: \"train\"}});
let m = tiny_model(#{{text: [{:?}, {:?}, {:?}], vocab: 200, hidden: 32, layers: 1, heads: 2, ffn: 64, max_length: 128, seed: 3}});
let ft = train(m, sq, #{{max_steps: 2, batch_size: 4, max_length: 96, lr: 1e-3}});
print(`updates ${{ft.training.updates}}`);
",
        context, long_q, short_q
    );
    let (code, out, err) = stilts(dir.path(), &src, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("updates 2"), "{out}");
    assert!(
        err.contains("(2 examples; 1 question cut to 64 tokens (max_query_length))"),
        "{err}"
    );
    // With a smaller max_query_length the cut is counted against it, and a
    // question that leaves no room for the context is an error naming it.
    let src2 = src.replace("max_length: 96,", "max_length: 96, max_query_length: 10,");
    let (code, _, err) = stilts(dir.path(), &src2, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2 questions cut to 10 tokens"), "{err}");
    let src3 = src.replace("max_length: 96,", "max_length: 64, max_query_length: 64,");
    let (code, _, err) = stilts(dir.path(), &src3, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("question long")
            && err.contains("leaving no room for the context")
            && err.contains("max_query_length"),
        "{err}"
    );
}

/// Issue 31, items 1, 2 and 5: a condition's console line says what each
/// phase trained (updates, examples, loss with its sparkline, dev curve,
/// time), run now or reused; a model that learned nothing (here: one
/// update at a learning rate too small to move it, so its loss ends at
/// ln 3) is marked on the console, in its tables and in the report, which
/// closes with each condition's configuration, phases and prediction
/// shares; `plot_training` draws a condition's phases from its record.
#[test]
fn conditions_say_what_they_trained_and_mark_a_model_that_learned_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!(
        "{PRELUDE}
store(\"runs\");
let ev = task(\"sst2\", #{{data: `${{d}}/intermediate/sst2`, split: \"dev\", limit: 24}});
let mnli_dev = task(\"mnli\", #{{data: `${{d}}/intermediate/mnli`, split: \"dev\", limit: 12}});
let o = #{{max_steps: 1, lr: 1e-9, batch_size: 8, max_length: 48, warmup: 0.0}};
let rs = [];
for seed in [1, 2] {{
    rs.push(condition(#{{model: m, intermediate: mnli, target: sst, evaluate: ev, seed: seed, name: \"flat\",
                        options: o + #{{intermediate: #{{dev: mnli_dev, eval_every: 1}}}}}}));
}}
show(table(#{{flat: mean(rs)}}));
show(compare(rs[0], rs[1]));
plot_training(rs[0], `${{report_dir()}}/training.png`);
let k = rs[1].cells;
plot_training(k[0].sub_string(0, 16), `${{report_dir()}}/training2.png`);
try {{ plot_training(mean(rs), `${{report_dir()}}/no.png`); }} catch (e) {{ print(`mean: ${{e}}`); }}
"
    );
    std::fs::write(dir.path().join("s.rhai"), &src).unwrap();
    let args = [
        "run",
        "s.rhai",
        "--set",
        &format!("data={}", data()),
        "--out",
        "rep",
    ];
    let (code, out, err) = common::stilts_in(dir.path(), &args);
    assert_eq!(code, 0, "{err}");
    // Each phase of each condition: task, updates, examples, loss, time.
    for phase in [
        "intermediate mnli: 1 updates of 48 examples, loss ",
        "target sst2: 1 updates of 64 examples, loss ",
    ] {
        assert_eq!(err.matches(phase).count(), 2, "{phase}: {err}");
    }
    assert!(err.contains("dev ") && err.contains("best "), "{err}");
    assert_eq!(
        err.matches("  warning: ").count(),
        2,
        "each seed's model is marked: {err}"
    );
    assert!(
        err.contains("target phase loss at chance: ended at 0.69") && err.contains("ln 2 = 0.693"),
        "{err}"
    );
    assert!(
        out.contains("(collapsed)"),
        "the table marks the cells: {out}"
    );
    assert!(
        out.lines().any(|l| l.matches("(collapsed)").count() == 2),
        "a comparison marks both sides: {out}"
    );
    assert!(
        out.contains("mean: ") && out.contains("is the mean of 2 conditions"),
        "{out}"
    );
    let md = std::fs::read_to_string(dir.path().join("rep/report.md")).unwrap();
    for want in [
        "## Conditions",
        "configuration of each condition",
        "| flat | tiny-1x32 | mnli | 48 | 1 | 1e-9 | 8 | 48 | best dev score, every 1 updates",
        "| 1, 2 | stilts ",
        "what each phase trained",
        "predictions of flat (seed 1)",
        "predictions of flat (seed 2)",
        "warning: collapsed",
    ] {
        assert!(md.contains(want), "{want}: {md}");
    }
    assert!(
        std::fs::metadata(dir.path().join("rep/training.png"))
            .unwrap()
            .len()
            > 0
    );
    assert!(
        std::fs::metadata(dir.path().join("rep/training2.png"))
            .unwrap()
            .len()
            > 0
    );
    // Reused from the store: the same account of what was trained.
    let (code, _, err2) = common::stilts_in(dir.path(), &args);
    assert_eq!(code, 0, "{err2}");
    assert_eq!(err2.matches(": reused ").count(), 2, "{err2}");
    let phases = |e: &str| -> Vec<String> {
        e.lines()
            .filter(|l| l.starts_with("  "))
            .map(|l| l.replace(" (reused from the store)", ""))
            .collect()
    };
    assert_eq!(phases(&err), phases(&err2));
}

/// Issue 31, item 6: `keep: "final"` keeps the model after the target
/// phase under the store, reachable from the Result (`model_dir`) and
/// loadable by `model(dir)` with the same scores; `keep` is checked; a
/// condition found in the store without the model `keep` asks for is
/// trained again to keep it; `stilts gc` lists (`--dry-run`) and removes
/// the intermediate models and checkpoints no unfinished condition needs,
/// keeping those one does and the final models.
#[test]
fn kept_models_are_reachable_and_gc_removes_what_nothing_needs() {
    let dir = tempfile::tempdir().unwrap();
    let src = format!(
        "{PRELUDE}
store(\"runs\");
let ev = task(\"sst2\", #{{data: `${{d}}/intermediate/sst2`, split: \"dev\", limit: 24}});
let o = #{{max_steps: 2, lr: 1e-3, batch_size: 8, max_length: 48}};
let r = condition(#{{model: m, intermediate: mnli, target: sst, evaluate: ev, seed: param(\"seed\", 1), options: o, keep: param(\"keep\", \"final\")}});
print(`dir ${{r.model_dir}}`);
if r.model_dir != () {{
    let back = model(r.model_dir);
    print(`same ${{evaluate(back, ev).avg == r.avg}}`);
}}
"
    );
    std::fs::write(dir.path().join("s.rhai"), &src).unwrap();
    let data = format!("data={}", data());
    let run = |extra: &[&str]| {
        let mut a = vec!["run", "s.rhai", "--no-report", "--set", &data];
        a.extend_from_slice(extra);
        common::stilts_in(dir.path(), &a)
    };
    let (code, out, err) = run(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("dir runs/models/") && out.contains("same true"),
        "{out}"
    );
    assert!(err.contains("final model kept in runs/models/"), "{err}");
    let models = dir.path().join("runs/models");
    let kept: Vec<_> = std::fs::read_dir(&models).unwrap().flatten().collect();
    assert_eq!(kept.len(), 1);
    assert!(kept[0].path().join("model.safetensors").is_file());
    // keep: "final" keeps no intermediate-phase model, nor its checkpoints.
    assert_eq!(
        std::fs::read_dir(dir.path().join("runs/intermediate"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
    // A value keep does not know is an error naming the choices.
    let (code, _, err) = run(&["--set", "keep=all"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("`keep: \"all\"` is not a choice; give one of \"none\", \"intermediate\", \"final\", \"both\"")
            && err.contains("s.rhai:"),
        "{err}"
    );
    // The model gone, the record still there: trained again to keep it.
    std::fs::remove_dir_all(&models).unwrap();
    let (code, out, err) = run(&[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("trained again"), "{err}");
    assert!(out.contains("same true"), "{out}");
    // Seeds 2 and 3 keep their intermediate-phase models; seed 3's cell is
    // then marked failed (unfinished) and names its intermediate phase.
    for seed in ["seed=2", "seed=3"] {
        let (code, _, err) = run(&["--set", "keep=intermediate", "--set", seed]);
        assert_eq!(code, 0, "{err}");
    }
    let inter = dir.path().join("runs/intermediate");
    let mut names: Vec<String> = std::fs::read_dir(&inter)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    let store = stilts_protocol::store::Store::new(dir.path().join("runs/runs.jsonl"));
    let fake_key = "f".repeat(64);
    store
        .mark(&stilts_protocol::store::cells::CellMark::here(
            &fake_key,
            "unfinished",
            stilts_protocol::store::cells::MarkState::Failed,
            Some("killed".into()),
        ))
        .unwrap();
    let cdir = dir.path().join("runs/conditions").join(&fake_key[..16]);
    std::fs::create_dir_all(&cdir).unwrap();
    std::fs::write(cdir.join("intermediate"), &names[1]).unwrap();
    let (code, out, err) = common::stilts_in(dir.path(), &["gc", "runs", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&names[0])
            && out.contains("would remove 1 folder (")
            && out.contains("kept 2"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_dir(&inter).unwrap().count(),
        2,
        "a dry run removes nothing"
    );
    let (code, out, err) = common::stilts_in(dir.path(), &["gc", "runs"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed 1 folder ("), "{out}");
    assert!(!inter.join(&names[0]).exists() && inter.join(&names[1]).exists());
    assert!(cdir.exists(), "the unfinished condition's checkpoints stay");
    assert_eq!(
        std::fs::read_dir(&models).unwrap().count(),
        1,
        "kept models stay"
    );
}
