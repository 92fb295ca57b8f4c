//! The integration tests of `stilts-tasks`, one test binary: each module was
//! a test file of its own before the workspace split (one link, not one per file).

use stilts_testing as common;

mod bad_data;
mod source;
mod tasks_batch;
mod tasks_cache;
mod tasks_features;
mod tasks_readers;
mod tatoeba;
