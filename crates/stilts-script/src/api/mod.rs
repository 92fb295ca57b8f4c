//! The registered rhai API, one concern a file. Each function converts its
//! rhai arguments to typed options and calls one function of the engine
//! (through [`super::engine_bridge`]) or the model and task layers.

pub mod condition;
pub mod model;
pub mod plot;
pub mod results;
pub mod runs;
pub mod task;
pub mod train;

use std::rc::Rc;

use rhai::{Engine, EvalAltResult};

use super::context::Ctx;

pub type RResult<T> = Result<T, Box<EvalAltResult>>;

/// A stilts error (or any message) as a rhai error; rhai puts the call's
/// position on it.
pub fn rerr(e: impl std::fmt::Display) -> Box<EvalAltResult> {
    e.to_string().into()
}

/// Registers every type and function of the API.
pub fn register(engine: &mut Engine, ctx: &Rc<Ctx>) {
    model::register(engine, ctx);
    task::register(engine, ctx);
    train::register(engine, ctx);
    condition::register(engine, ctx);
    results::register(engine, ctx);
    plot::register(engine, ctx);
    runs::register(engine, ctx);
}
