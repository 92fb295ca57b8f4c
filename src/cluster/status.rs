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

/// The rows of every known cell: those of the submissions in submission
/// order, then those only a cell mark knows (started by `run --jobs`,
/// `--only` or a plain run), then the finished conditions of the store's
/// records that neither names.
pub fn rows(store: &Store, queue: &super::Queue) -> Vec<CellRow> {
    rows_with(store, queue, &store.records().unwrap_or_default())
}

fn rows_with(
    store: &Store,
    queue: &super::Queue,
    records: &[stilts_protocol::store::RunRecord],
) -> Vec<CellRow> {
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
            .or_insert((order, m.name.clone(), m.model.clone(), m.seed));
    }
    // Conditions kept in the store (a record with phases; memo values have none).
    for r in records {
        let c = &r.config;
        if c.get("phases").is_none() {
            continue;
        }
        order += 1;
        known.entry(r.key.clone()).or_insert((
            order,
            c["name"].as_str().unwrap_or("").to_string(),
            c["model_label"].as_str().unwrap_or("").to_string(),
            c["configuration"]["seed"].as_u64().unwrap_or(0),
        ));
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
    let records = store.records()?;
    let rows = rows_with(store, &queue, &records);
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
        "store {}: {}{}\n",
        store.root().display(),
        stilts_model::util::plural(records.len(), "record"),
        if queue.is_some() {
            ", Slurm queue read with squeue"
        } else {
            ""
        }
    ));
    if rows.is_empty() {
        out.push_str(if records.is_empty() {
            "no cells submitted or started from this store yet (`stilts plan FILE` lists a script's cells)\n"
        } else {
            "no grid cells (condition() calls) in it yet: its records are memo() values (`stilts plan FILE` lists a script's cells)\n"
        });
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
