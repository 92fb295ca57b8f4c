//! The integration tests of `stilts-protocol`, one test binary: each module was
//! a test file of its own before the workspace split (one link, not one per file).

use stilts_testing as common;

mod checkpointing;
mod experiment;
mod lowmem;
mod memory;
mod mlm;
mod multitask;
mod optim;
mod presets;
mod resume;
mod retrieval;
mod run;
mod stats;
mod store;
mod tasks_squad;
mod train;
