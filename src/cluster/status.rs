//! `stilts status STORE`: every cell the store knows of (from its
//! submissions and cell marks), done / running / queued / failed /
//! interrupted / stopped / to run, with job ids and log paths; Slurm's
//! queue (`squeue`) where there is one, the store everywhere.

use std::collections::BTreeMap;
use std::path::Path;

use super::{render, row, slurm, CellRow};
use stilts_model::error::{Error, Result};
use stilts_protocol::store::Store;

/// The store at `path`: a store folder (`runs/`) or its `runs.jsonl`.
pub fn open(path: &Path) -> Result<Store> {
    let store = if path.extension().is_some_and(|e| e == "jsonl") {
        Store::new(path)
    } else {
        Store::new(path.join("runs.jsonl"))
    };
    if !store.root().is_dir() {
        return Err(Error::config(
            path,
            "no such store folder; give the folder a script's store() names (default `runs`)",
        ));
    }
    Ok(store)
}

/// The rows of every known cell, in submission order.
pub fn rows(store: &Store, queue: &super::Queue) -> Vec<CellRow> {
    let hints = slurm::latest_jobs(store);
    let mut known: BTreeMap<String, (usize, String, String, u64)> = BTreeMap::new();
    let mut order = 0;
    for s in slurm::submissions(store) {
        for c in s.cells {
            order += 1;
            known
                .entry(c.key.clone())
                .or_insert((order, c.name, c.model, c.seed));
        }
    }
    for m in store.marks() {
        order += 1;
        known
            .entry(m.key.clone())
            .or_insert((order, m.name.clone(), String::new(), 0));
    }
    let mut list: Vec<(usize, String, String, String, u64)> = known
        .into_iter()
        .map(|(k, (o, n, m, s))| (o, k, n, m, s))
        .collect();
    list.sort();
    list.iter()
        .map(|(_, k, n, m, s)| row(store, k, n, m, *s, queue, &hints))
        .collect()
}

/// What `stilts status` prints.
pub fn report(store: &Store, json: bool) -> Result<String> {
    let queue = slurm::squeue();
    let rows = rows(store, &queue);
    let records = store.records()?;
    // The JSON-lines view is derived: bring it up to date.
    if store.records_dir().is_dir() {
        store.write_view()?;
    }
    if json {
        return serde_json::to_string_pretty(&serde_json::json!({
            "store": store.root().display().to_string(),
            "records": records.len(),
            "cells": rows,
            "submissions": slurm::submissions(store),
            "squeue": queue.is_some(),
        }))
        .map_err(|e| Error::msg(e.to_string()));
    }
    let mut out = String::new();
    out.push_str(&format!(
        "store {}: {} records{}\n",
        store.root().display(),
        records.len(),
        if queue.is_some() {
            ", Slurm queue read with squeue"
        } else {
            "; no squeue here: states come from the store alone"
        }
    ));
    if rows.is_empty() {
        out.push_str("no cells submitted or started from this store yet (`stilts plan FILE` lists a script's cells)\n");
        return Ok(out);
    }
    out.push_str(&render(&rows));
    for s in slurm::submissions(store) {
        let state = |j: &Option<String>| match (j, &queue) {
            (None, _) => "not submitted".to_string(),
            (Some(j), Some(q)) => {
                let live: Vec<&String> = q
                    .iter()
                    .filter(|(id, _)| *id == j || id.starts_with(&format!("{j}_")))
                    .map(|(_, st)| st)
                    .collect();
                if live.is_empty() {
                    format!("{j} (ended)")
                } else {
                    format!("{j} ({})", live[0].to_lowercase())
                }
            }
            (Some(j), None) => j.clone(),
        };
        out.push_str(&format!(
            "\nsubmission {}: {} cell(s), array {}, collect {}\n",
            s.dir,
            s.cells.len(),
            state(&s.array_job),
            state(&s.collect_job)
        ));
    }
    Ok(out)
}
