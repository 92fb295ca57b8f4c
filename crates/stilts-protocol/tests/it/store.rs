//! The results store: parallel writers (separate processes) lose nothing,
//! with or without working locks, memoisation finds a run by its exact
//! configuration, a killed writer leaves no half record, an older store is
//! moved into the records folder.

use crate::common;
use std::collections::BTreeMap;
use std::process::Command;

use stilts_protocol::store::{config_key, pack_bits, unpack_bits, RunRecord, Store};

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
        predictions: BTreeMap::new(),
        seconds: 0.5,
        device: "cpu".into(),
        finished_at: 0,
        value: None,
    }
}

/// Child mode: `PATH|WRITER` appends 100 records (claiming each key first).
fn child_writes() -> bool {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return false;
    };
    let (path, writer) = spec.split_once('|').unwrap();
    let store = Store::new(path);
    for i in 0..100 {
        let r = record(writer.parse().unwrap(), i);
        let _claim = store.claim(&r.key, &mut |_| {}).unwrap();
        store.append(&r).unwrap();
    }
    true
}

/// Four processes writing 100 records each at once, with `STILTS_LOCKS`
/// as given: every record is kept once, and the view parses.
fn four_writers(test: &str, locks: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs.jsonl");
    let children: Vec<_> = (0..4)
        .map(|w| {
            Command::new(std::env::current_exe().unwrap())
                .args(["--exact", &common::test_name(module_path!(), test)])
                .args(["--test-threads", "1", "--nocapture"])
                .env(CHILD_ENV, format!("{}|{w}", path.display()))
                .env("STILTS_LOCKS", locks)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut stderr = String::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        stderr.push_str(&String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{stderr}");
    }
    if locks == "fail" {
        assert!(
            stderr.contains("cannot lock") && stderr.contains("store stays correct"),
            "{stderr}"
        );
    }
    let store = Store::new(&path);
    let records = store.records().unwrap();
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
    // The view: whole lines only (it may lag a concurrent writer until the
    // next append; regenerated, it holds everything).
    let parse = |t: &str| -> usize {
        let mut n = 0;
        for l in t.lines() {
            serde_json::from_str::<RunRecord>(l).expect("a whole record");
            n += 1;
        }
        n
    };
    let lagging = parse(&std::fs::read_to_string(&path).unwrap());
    assert!(lagging > 300, "{lagging}");
    store.write_view().unwrap();
    assert_eq!(parse(&std::fs::read_to_string(&path).unwrap()), 400);
    // No temporary file is left behind.
    let temps = std::fs::read_dir(store.records_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(temps, 0);
}

#[test]
fn parallel_writers_lose_no_record() {
    if child_writes() {
        return;
    }
    four_writers("parallel_writers_lose_no_record", "on");
}

/// As on NFS without a lock manager: every lock call fails. Claims are
/// granted with a warning, and the store still loses and corrupts nothing.
#[test]
fn parallel_writers_lose_no_record_when_locks_fail() {
    if child_writes() {
        return;
    }
    four_writers("parallel_writers_lose_no_record_when_locks_fail", "fail");
}

#[test]
fn memoisation_finds_the_exact_configuration() {
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
    // The same key finished again: the later record is the one found.
    let mut again = a.clone();
    again.finished_at = 5;
    again.seconds = 9.0;
    store.append(&again).unwrap();
    assert_eq!(store.find(&a.key).unwrap().unwrap().seconds, 9.0);
    assert_eq!(store.records().unwrap().len(), 3);
}

/// What a writer killed at any moment leaves: a hidden temporary file
/// beside the records (skipped by readers), never half a record.
#[test]
fn a_writer_killed_mid_write_leaves_no_half_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("r.jsonl"));
    store.append(&record(0, 0)).unwrap();
    let one = serde_json::to_string(&record(1, 1)).unwrap();
    std::fs::write(
        store.records_dir().join(format!(
            ".{}-0000000000-x.json.tmp.host.1.2",
            record(1, 1).key
        )),
        &one.as_bytes()[..one.len() / 2],
    )
    .unwrap();
    assert_eq!(store.records().unwrap().len(), 1);
    assert!(store.find(&record(1, 1).key).unwrap().is_none());
    store.append(&record(2, 2)).unwrap();
    assert_eq!(store.records().unwrap().len(), 2);
    // A hand-damaged record file is left out with a warning, not fatal.
    std::fs::write(
        store
            .records_dir()
            .join(format!("{}-0000000001-y.json", "ab")),
        "not json",
    )
    .unwrap();
    assert_eq!(store.records().unwrap().len(), 2);
}

/// A store written by an older stilts (only `runs.jsonl`, appended under a
/// lock), torn by a writer killed mid-append at every cut of a record:
/// read as it is, and moved into the records folder by the next append,
/// the torn line set aside in `.damaged`.
#[test]
fn an_older_store_is_read_and_moved_into_records_at_any_tear() {
    let one = serde_json::to_string(&record(1, 1)).unwrap();
    for cut in (1..one.len()).step_by(37) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("r.jsonl"));
        let mut legacy = serde_json::to_string(&record(0, 0)).unwrap();
        legacy.push('\n');
        legacy.push_str("not json\n");
        legacy.push_str(&one[..cut]);
        std::fs::write(store.path(), &legacy).unwrap();
        assert_eq!(store.records().unwrap().len(), 1, "cut at {cut}");
        assert!(store.find(&record(0, 0).key).unwrap().is_some());
        store.append(&record(2, 2)).unwrap();
        assert!(store.records_dir().is_dir());
        let keys: Vec<String> = store
            .records()
            .unwrap()
            .iter()
            .map(|r| r.key.clone())
            .collect();
        assert_eq!(keys.len(), 2, "cut at {cut}: {keys:?}");
        assert!(keys.contains(&record(0, 0).key) && keys.contains(&record(2, 2).key));
        let damaged = std::fs::read_to_string(store.damaged_path()).unwrap();
        assert_eq!(damaged, format!("{}\n", &one[..cut]), "cut at {cut}");
    }
}

#[test]
fn bits_round_trip() {
    let bits: Vec<bool> = (0..1253).map(|i| i % 3 == 0 || i % 7 == 0).collect();
    assert_eq!(unpack_bits(&pack_bits(&bits)).unwrap(), bits);
    assert_eq!(unpack_bits(&pack_bits(&[])).unwrap(), Vec::<bool>::new());
    assert!(unpack_bits("5:f").is_none());
}
