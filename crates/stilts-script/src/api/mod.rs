//! The registered rhai API, one concern a file. Each function converts its
//! rhai arguments to typed options and calls one function of the engine
//! (through [`super::protocol_bridge`]) or the model and task layers.

pub mod condition;
pub mod doc;
pub mod model;
pub mod modulation;
pub mod plot;
pub mod results;
pub mod runs;
pub mod task;
pub mod train;

use std::rc::Rc;

use rhai::{Engine, EvalAltResult};

use super::context::Ctx;

/// What a binding returns: the value, or a rhai error (a message rhai
/// locates at the call).
pub type RResult<T> = Result<T, Box<EvalAltResult>>;

/// A stilts error (or any message) as a rhai error; rhai puts the call's
/// position on it.
pub fn rerr(e: impl std::fmt::Display) -> Box<EvalAltResult> {
    e.to_string().into()
}

/// A protocol error as the script sees it: an interruption
/// ([`stilts_model::Error::Cancelled`]) names the signal, what it stopped
/// and where its checkpoint is, and how to go on; anything else is
/// `WHAT: error`.
pub fn protocol_err(what: &str, e: stilts_model::Error) -> Box<EvalAltResult> {
    protocol_err_in(what, e, crate::context::again())
}

/// [`protocol_err`] with the words that say what to run again (`again`).
fn protocol_err_in(what: &str, e: stilts_model::Error, again: &str) -> Box<EvalAltResult> {
    match e {
        stilts_model::Error::Cancelled {
            step, checkpoint, ..
        } => rerr(format!(
            "interrupted ({}) during {what}{}; {}",
            crate::context::signal_name(),
            step.map(|s| format!(" at update {s}")).unwrap_or_default(),
            match checkpoint {
                Some(d) => format!(
                    "its checkpoint is in {}: {again} to resume from it",
                    d.display()
                ),
                // (Only evaluation runs without a checkpoint in a script:
                // every training call checkpoints.)
                None => format!("{again} (finished training is kept in its checkpoints)"),
            }
        )),
        e => rerr(format!("{what}: {e}")),
    }
}

/// Registers every type and function of the API.
pub fn register(engine: &mut Engine, ctx: &Rc<Ctx>) {
    model::register(engine, ctx);
    task::register(engine, ctx);
    train::register(engine, ctx);
    condition::register(engine, ctx);
    results::register(engine, ctx);
    modulation::register(engine, ctx);
    plot::register(engine, ctx);
    runs::register(engine, ctx);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 32, item 10: Ctrl-C in the REPL says to run the call again,
    /// not the script.
    #[test]
    fn an_interruption_says_what_to_run_again() {
        let cancelled = || stilts_model::Error::Cancelled {
            during: "evaluation".into(),
            step: None,
            checkpoint: None,
        };
        let repl = protocol_err_in("evaluate", cancelled(), crate::context::again_words(true));
        assert!(repl.to_string().contains("run the call again"), "{repl}");
        assert!(!repl.to_string().contains("script"), "{repl}");
        let batch = protocol_err_in("evaluate", cancelled(), crate::context::again_words(false));
        assert!(
            batch.to_string().contains("run the script again"),
            "{batch}"
        );
    }
}
