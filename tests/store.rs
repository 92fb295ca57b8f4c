//! The results store: parallel writers (separate processes) lose nothing,
//! memoisation finds a run by its exact configuration, torn lines are skipped.

use std::collections::BTreeMap;
use std::process::Command;

use stilts::store::{config_key, pack_bits, unpack_bits, RunRecord, Store};

const CHILD_ENV: &str = "STILTS_STORE_CHILD";

fn record(writer: usize, i: usize) -> RunRecord {
    let config = serde_json::json!({ "writer": writer, "i": i, "lr": 1e-5 });
    RunRecord {
        key: config_key(&config),
        config,
        code_version: "test".into(),
        metrics: BTreeMap::from([("xnli.sw".to_string(), i as f64)]),
        correct: BTreeMap::from([("xnli.sw".to_string(), pack_bits(&[true, false, true]))]),
        curves: BTreeMap::new(),
        seconds: 0.5,
        device: "cpu".into(),
        finished_at: 0,
        value: None,
    }
}

#[test]
fn parallel_writers_lose_no_record() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (path, writer) = spec.split_once('|').unwrap();
        let store = Store::new(path);
        for i in 0..100 {
            store.append(&record(writer.parse().unwrap(), i)).unwrap();
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.jsonl");
    let children: Vec<_> = (0..4)
        .map(|w| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "parallel_writers_lose_no_record",
                    "--test-threads",
                    "1",
                ])
                .env(CHILD_ENV, format!("{}|{w}", path.display()))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let records = Store::new(&path).records().unwrap();
    assert_eq!(records.len(), 400);
    let mut seen: Vec<(u64, u64)> = records
        .iter()
        .map(|r| {
            (
                r.config["writer"].as_u64().unwrap(),
                r.config["i"].as_u64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 400, "some records were lost or duplicated");
}

#[test]
fn memoisation_finds_the_exact_configuration_and_torn_lines_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("r.jsonl"));
    assert!(store.records().unwrap().is_empty());
    let a = record(0, 1);
    store.append(&a).unwrap();
    store.append(&record(0, 2)).unwrap();
    assert_eq!(store.find(&a.key).unwrap(), Some(a.clone()));
    assert!(store
        .find(&config_key(
            &serde_json::json!({"writer": 0, "i": 1, "lr": 2e-5})
        ))
        .unwrap()
        .is_none());
    // A crash mid-append leaves an unterminated line: ignored.
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(store.path())
        .unwrap()
        .write_all(b"{\"key\": \"tor")
        .unwrap();
    assert_eq!(store.records().unwrap().len(), 2);
    // A complete but malformed line is an error naming the line.
    std::fs::OpenOptions::new()
        .append(true)
        .open(store.path())
        .unwrap()
        .write_all(b"n\nnot json\n")
        .unwrap();
    let err = store.records().unwrap_err().to_string();
    assert!(
        err.contains("r.jsonl:3") || err.contains("r.jsonl:4"),
        "{err}"
    );
}

#[test]
fn bits_round_trip() {
    let bits: Vec<bool> = (0..1253).map(|i| i % 3 == 0 || i % 7 == 0).collect();
    assert_eq!(unpack_bits(&pack_bits(&bits)).unwrap(), bits);
    assert_eq!(unpack_bits(&pack_bits(&[])).unwrap(), Vec::<bool>::new());
    assert!(unpack_bits("5:f").is_none());
}
