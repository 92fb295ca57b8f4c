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
fn memoisation_finds_the_exact_configuration_and_torn_lines_are_set_aside() {
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
    // The next append sets the torn line aside, so the new record is whole
    // and every record stays readable.
    let c = record(0, 3);
    store.append(&c).unwrap();
    let all = store.records().unwrap();
    assert_eq!(all.len(), 3, "a record was glued onto the torn line");
    assert_eq!(all[2], c);
    let damaged = std::fs::read_to_string(store.damaged_path()).unwrap();
    assert_eq!(damaged, "{\"key\": \"tor\n");
    // A complete but malformed line (written by hand) is left out, not fatal.
    std::fs::OpenOptions::new()
        .append(true)
        .open(store.path())
        .unwrap()
        .write_all(b"not json\n")
        .unwrap();
    store.append(&record(0, 4)).unwrap();
    assert_eq!(store.records().unwrap().len(), 4);
}

/// A writer killed mid-append (the line cut anywhere) never costs a later
/// record: tear, append, read, at every cut of a record.
#[test]
fn a_torn_record_cut_anywhere_is_set_aside_by_the_next_append() {
    let one = serde_json::to_string(&record(1, 1)).unwrap();
    for cut in (1..one.len()).step_by(37) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("r.jsonl"));
        store.append(&record(0, 0)).unwrap();
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(store.path())
            .unwrap()
            .write_all(&one.as_bytes()[..cut])
            .unwrap();
        store.append(&record(2, 2)).unwrap();
        let keys: Vec<String> = store
            .records()
            .unwrap()
            .iter()
            .map(|r| r.key.clone())
            .collect();
        assert_eq!(
            keys,
            vec![record(0, 0).key, record(2, 2).key],
            "cut at {cut}"
        );
    }
}

#[test]
fn bits_round_trip() {
    let bits: Vec<bool> = (0..1253).map(|i| i % 3 == 0 || i % 7 == 0).collect();
    assert_eq!(unpack_bits(&pack_bits(&bits)).unwrap(), bits);
    assert_eq!(unpack_bits(&pack_bits(&[])).unwrap(), Vec::<bool>::new());
    assert!(unpack_bits("5:f").is_none());
}
