//! stilts: intermediate-task training (STILTs) for zero-shot cross-lingual
//! transfer with the XLM-R family, on candle.
//!
//! The workspace's layers, each a crate that depends only on those below:
//! - [`model`] (`stilts-model`): the encoder family, heads, gradients,
//!   checkpoints, the tokenizer, and the one error type ([`Error`]);
//! - [`tasks`] (`stilts-tasks`): readers, features, metrics, batches;
//! - [`protocol`] (`stilts-protocol`): the STILTs protocol (training, evaluation, conditions), [`store`];
//! - [`script`] (`stilts-script`): the rhai surface and reports;
//! - this crate: the front ends ([`cli`], [`repl`]), the cluster runner
//!   ([`cluster`]) and the training-step benchmark ([`bench`]).
//!
//! The layers are re-exported here under their old module names, so
//! `stilts::model::Model` and `stilts_model::Model` are one type.

pub mod alloc;
pub mod bench;
pub mod cli;
pub mod cluster;
pub mod repl;

pub use stilts_model as model;
pub use stilts_model::{error, threads, util, Error, Result};
pub use stilts_protocol as protocol;
pub use stilts_protocol::{predict, progress, store};
pub use stilts_script as script;
pub use stilts_tasks as tasks;
