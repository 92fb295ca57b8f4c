//! The integration tests of `stilts-script`, one test binary: each module was
//! a test file of its own before the workspace split (one link, not one per file).

use stilts_testing as common;

mod modulation;
mod plots;
mod script_api;
