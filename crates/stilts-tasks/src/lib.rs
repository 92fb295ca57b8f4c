#![warn(missing_docs)]
//! Tasks and data: the task catalog, readers for each task's native
//! format, tokenization into features as the reference code does, metrics,
//! batches (dynamic padding, length buckets, token budgets) and a feature
//! cache on disk.
//!
//! ```no_run
//! use std::path::Path;
//! use stilts_tasks::{self as tasks, BatchSize, FeatureCache, FeatureOptions, ReadOptions, TextEncoder};
//! let root = Path::new("../shared/data/xnli");
//! let ds = tasks::load("xnli", root, "test", Some("de"), &ReadOptions::default())?;
//! let enc = TextEncoder::from_file(Path::new("../shared/data/xlmr/tokenizer.json"))?;
//! let (features, _hit) = FeatureCache::default().features(&ds, &enc, &FeatureOptions::new(128), &ReadOptions::default())?;
//! let plan = tasks::EvalPlan::new(&tasks::batch::lengths(&features), BatchSize::Tokens(8192));
//! for b in &plan.batches {
//!     let batch: Vec<_> = b.iter().map(|&i| &features[i]).collect();
//!     let (inputs, target) = tasks::collate(&batch, &ds.head, enc.pad_id(), &candle_core::Device::Cpu)?;
//!     # let _ = (inputs, target);
//! }
//! # Ok::<(), stilts_model::Error>(())
//! ```

pub mod batch;
pub mod cache;
pub mod catalog;
pub mod dispatch;
pub mod encode;
pub mod example;
pub mod features;
pub mod io;
pub mod layout;
pub mod metrics;
pub mod qa;
pub mod readers;
pub mod retrieval;
pub mod source;

pub use batch::{collate, train_batches, BatchSize, EvalPlan};
pub use cache::{CacheStatus, FeatureCache};
pub use catalog::{generic, task, tasks, TaskSpec, TASK_NAMES};
pub use dispatch::load;
pub use encode::TextEncoder;
pub use example::{Answer, Dataset, Example, Metric};
pub use features::{featurize, long_questions, Feature, FeatureOptions, Label, MAX_QUERY_LENGTH};
pub use io::{BadLine, BadLines, ReadOptions, SkipReport};
pub use layout::layouts_markdown;
pub use qa::{postprocess, PostprocessOptions, QaPrediction};
pub use readers::generic::GenericSpec;
pub use source::{layout, open, source_names, MlmText, OpenedTask, Selection, TaskSource};
