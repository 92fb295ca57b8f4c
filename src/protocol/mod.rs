//! The experiment engine: optimisation, training and evaluation loops, the
//! STILTs transfer. It knows nothing about rhai or the terminal.

pub mod optim;
