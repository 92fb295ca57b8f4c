//! ADAPTER between the rhai bindings and the experiment engine.
//!
//! Every binding that trains, evaluates or reads data calls a function of
//! this module, and nothing else in `src/script` computes. Each function is
//! a thin call into `stilts-protocol` (or `stilts-tasks`); what the protocol does
//! not offer yet is marked WANTED with the signature the binding needs.
//! Nothing here knows about rhai.

use std::sync::atomic::AtomicBool;

use stilts_model::error::{Error, Result};
use stilts_model::Model;
use stilts_protocol::experiment::{self, Condition, ConditionResult, ProgressFactory};
use stilts_protocol::presets::RunOptions;
use stilts_protocol::run::{self, MultitaskJob, TrainJob};
use stilts_protocol::store::Store;
use stilts_protocol::train::{Progress, TrainReport};
use stilts_tasks::Dataset;

pub use stilts_protocol::run::Evaluation;

/// Fine-tunes a copy of the job's model (with model selection when the job
/// has a dev set).
pub fn train(
    job: &TrainJob<'_>,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<(Model, TrainReport)> {
    run::train(job, progress, cancel)
}

/// Scores `model` on one dataset (dropout off).
pub fn evaluate(
    model: &Model,
    ds: &Dataset,
    opts: &RunOptions,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<Evaluation> {
    run::evaluate(model, ds, opts, progress, cancel)
}

/// Sentence retrieval with `model`'s encoder on one language of a
/// retrieval task (Tatoeba).
pub fn evaluate_retrieval(
    model: &Model,
    ds: &Dataset,
    opts: &stilts_protocol::retrieval::RetrievalOptions,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<Evaluation> {
    stilts_protocol::retrieval::evaluate_retrieval(model, ds, opts, progress, cancel)
}

/// Multi-task training of one encoder on several tasks; the encoder under
/// the last task's head.
pub fn multitask(
    job: &MultitaskJob<'_>,
    progress: &mut dyn Progress,
    cancel: &AtomicBool,
) -> Result<(Model, TrainReport)> {
    let (mut models, report) = run::multitask(job, progress, cancel)?;
    let last = models
        .pop()
        .ok_or_else(|| Error::msg("multitask: no tasks"))?;
    Ok((last, report))
}

/// Runs one condition of the grid, or finds it finished in the store.
pub fn condition(
    c: &Condition,
    store: &Store,
    progress: &mut ProgressFactory<'_>,
    cancel: &AtomicBool,
) -> Result<ConditionResult> {
    experiment::run_condition(c, Some(store), false, progress, cancel)
}
