//! The integration tests of `stilts`, one test binary: each module was
//! a test file of its own before the workspace split (one link, not one per file).

mod common;

mod atomic_save;
mod bad_data;
mod cli_commands;
mod cluster;
mod fidelity;
mod house;
mod predict_cli;
mod repl;
mod script_check;
mod script_limits;
mod script_protocol;
mod script_recipes;
mod script_resume;
mod script_retrieval;
mod script_run;
mod slurm;
mod tokenizer;
