//! Every example of the API reference (`docs::api()`, what `stilts api`
//! prints into the README and `:help` shows) runs as written, against a
//! small world set up first: a tiny model under the hub names the examples
//! load (in a Hugging Face cache made for the test), small splits of the
//! real tasks in `../shared/data` under the names the examples use, and
//! results to compare, table and plot. Each example runs in a copy of that
//! world, so one example's `let` does not change the next one's.
//!
//! One test in this binary: it sets the working directory and
//! `HF_HUB_CACHE` for the process.

use std::path::{Path, PathBuf};

use stilts_script::{docs, Runtime, Settings};

fn shared() -> PathBuf {
    stilts_testing::shared_data()
}

/// A Hugging Face cache holding `model` under `org/name`.
fn put_in_cache(hub: &Path, id: &str, model: &Path) {
    let repo = hub.join(format!("models--{}", id.replace('/', "--")));
    let snap = repo.join("snapshots").join("0000");
    std::fs::create_dir_all(&snap).unwrap();
    for f in std::fs::read_dir(model).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), snap.join(f.file_name())).unwrap();
    }
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), "0000").unwrap();
}

const WORLD: &str = r#"
let d = "data";
let mnli = task("mnli", #{data: `${d}/mnli`, limit: 24});
let mnli_dev = task("mnli", #{data: `${d}/mnli`, split: "dev", limit: 12});
let hellaswag = task("hellaswag", #{data: `${d}/hellaswag`, split: "dev", first: 8});
let squad = task("squad_v1", #{data: `${d}/squad`, split: "dev", first: 8});
let mlm = task("mlm", #{files: ["text/mlm.txt"]});
let xnli = task("xnli", #{data: `${d}/xnli`, split: "dev", languages: ["de", "en", "sw"], limit: 12});
let xnli_dev = xnli;
let xnli_test = task("xnli", #{data: `${d}/xnli`, split: "test", languages: ["de", "en", "sw"], limit: 12});
let x = xnli_test;
let tatoeba = task("tatoeba", #{data: `${d}/tatoeba`, languages: ["de", "sw"], first: 20});
let xnli_dir = `${d}/xnli`;
let mnli_dir = `${d}/mnli`;
let m = tiny_model(#{text: [mnli, xnli, squad, hellaswag], hidden: 32, layers: 1, heads: 2, ffn: 64, vocab: 800, max_length: 160});
let quick = #{max_steps: 2, batch_size: 4, max_length: 96, lr: 1e-3};
let ft = train(m, mnli, quick + #{dev: mnli_dev, eval_every: 1});
ft.save("runs/mnli");
let r1 = evaluate(ft, xnli);
let r2 = evaluate(train(m, mnli, quick + #{seed: 2}), xnli);
let r3 = evaluate(train(m, mnli, quick + #{seed: 3}), xnli);
let r = mean([r1, r2, r3]);
let base = mean([r1, r2]).named("base");
let stilts = mean([r2, r3]).named("stilts");
let s = stilts;
let r0 = r1.named("MNLI only");
let c = compare(base, stilts);
let c0 = compare(r1, r2);
let c1 = compare(r1, r3);
let t = table(#{base: r0, stilts: r1});
save_results(r, "runs/xnli.json");
"#;

#[test]
fn every_api_reference_example_runs() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // The data under the names the examples use (links, never copies).
    std::fs::create_dir_all(w.join("data")).unwrap();
    let link = |from: PathBuf, to: &str| std::os::unix::fs::symlink(from, w.join(to)).unwrap();
    link(shared().join("xnli"), "data/xnli");
    link(shared().join("intermediate/mnli"), "data/mnli");
    link(shared().join("intermediate/hellaswag"), "data/hellaswag");
    link(shared().join("intermediate/squad_v1.1"), "data/squad");
    link(shared().join("tatoeba"), "data/tatoeba");
    std::fs::create_dir_all(w.join("text")).unwrap();
    std::fs::write(
        w.join("text/mlm.txt"),
        "The cat sat on the mat.\nDer Hund schläft.\nMvua inanyesha leo.\nIt is wet outside.\n",
    )
    .unwrap();
    // The hub names the examples load: a tiny model in a cache of our own.
    let made = w.join("made");
    {
        let text: Vec<String> = std::fs::read_to_string(w.join("text/mlm.txt"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        let spec = stilts_model::tiny::TinySpec {
            vocab_size: 120,
            hidden_size: 32,
            num_layers: 1,
            num_heads: 2,
            intermediate_size: 64,
            max_position_embeddings: 130,
            ..Default::default()
        };
        stilts_model::tiny::write(
            &spec,
            &text,
            stilts_model::HeadKind::Classification {
                labels: vec![
                    "entailment".into(),
                    "neutral".into(),
                    "contradiction".into(),
                ],
            },
            &made,
        )
        .unwrap();
    }
    let hub = w.join("hub");
    for id in [
        "FacebookAI/xlm-roberta-large",
        "FacebookAI/xlm-roberta-base",
    ] {
        put_in_cache(&hub, id, &made);
    }
    std::env::set_var("HF_HUB_CACHE", &hub);
    std::env::set_current_dir(w).unwrap();

    let mut rt = Runtime::new(Settings {
        quiet: true,
        store_dir: w.join("runs"),
        ..Default::default()
    });
    *rt.ctx.report_dir.borrow_mut() = Some(w.join("report"));
    if let Err(e) = rt.eval("world", WORLD) {
        panic!("the examples' world did not build: {e}");
    }
    let world = rt.scope.clone();
    let mut failed = vec![];
    for (i, d) in docs::api().into_iter().enumerate() {
        rt.scope = world.clone();
        if let Err(e) = rt.eval(&format!("example {i}"), d.example) {
            failed.push(format!("{}\n    {}\n    {e}", d.signature, d.example));
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} API reference examples fail:\n{}",
        failed.len(),
        docs::api().len(),
        failed.join("\n")
    );
}
