//! stilts: intermediate-task training (STILTs) for zero-shot cross-lingual
//! transfer with the XLM-R family, on candle.
//!
//! Layers, top to bottom: front ends (`cli`), the model layer ([`model`]),
//! shared helpers ([`util`]) and the one error type ([`Error`]).

pub mod alloc;
pub mod bench;
pub mod cli;
pub mod cluster;
pub mod error;
pub mod model;
pub mod predict;
pub mod progress;
pub mod protocol;
pub mod repl;
pub mod script;
pub mod store;
pub mod tasks;
pub mod threads;
pub mod util;

pub use error::{Error, Result};
