#![warn(missing_docs)]
//! The protocol: optimisation, training and evaluation loops, the
//! STILTs transfer. It knows nothing about rhai or the terminal: progress
//! and cancellation come in through [`train::Progress`] and a flag, and a
//! run the flag stopped comes back as `Error::Cancelled` (what it was
//! doing, the update, the checkpoint), never as a message or a report flag.

pub mod checkpoint;
pub mod evaluation;
pub mod experiment;
pub mod fingerprint;
pub mod freeze;
pub mod memory;
pub mod mlm;
pub mod multitask;
pub mod optim;
pub mod predict;
pub mod presets;
pub mod progress;
pub mod retrieval;
pub mod run;
pub mod stats;
pub mod store;
pub mod summary;
pub mod train;
