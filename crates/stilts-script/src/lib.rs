#![warn(missing_docs)]
//! The rhai surface: engine set-up (limits, the stdlib module
//! resolver, print capture, Ctrl-C), the registered API ([`api`]), error
//! positions ([`errors`]), `check` ([`check`]), notebook cells ([`cells`])
//! and run reports ([`report`]). No training logic lives here: the
//! bindings convert rhai values to typed options and call the engine
//! through [`protocol_bridge`].

pub mod api;
pub mod cells;
pub mod check;
pub mod context;
pub mod docs;
pub mod errors;
pub mod options;
pub mod protocol_bridge;
pub mod report;
pub mod resolver;
pub mod sources;
pub mod values;

use std::path::{Path, PathBuf};
use std::rc::Rc;

use rhai::{Dynamic, Engine, Scope, AST};

pub use context::{Ctx, Settings};
pub use errors::Diagnostic;

/// Function-name hints for messages, from the API table.
pub struct Hints;

impl errors::FnHints for Hints {
    fn signatures(&self, name: &str) -> Vec<String> {
        docs::lookup(name)
            .iter()
            .map(|d| d.signature.to_string())
            .collect()
    }
    fn similar(&self, name: &str) -> Option<String> {
        stilts_model::util::closest(name, &docs::names()).map(str::to_string)
    }
    fn properties(&self, ty: &str) -> Vec<String> {
        let prefix = format!("{ty}.");
        let mut out: Vec<String> = vec![];
        for d in docs::api() {
            if let Some(p) = d.signature.strip_prefix(&prefix) {
                let p: String = p
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                // A property: `Type.name` with no argument list.
                if !d.signature.contains('(') && !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        out
    }
}

/// The rhai engine with the stilts API and limits.
pub fn build_engine(ctx: &Rc<Ctx>) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_call_levels(64)
        .set_max_operations(ctx.settings.max_operations)
        .set_max_string_size(16 << 20)
        .set_max_array_size(10_000_000)
        .set_max_map_size(1_000_000)
        .set_max_modules(100)
        .set_max_expr_depths(64, 64)
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(true);
    let c = ctx.clone();
    engine.on_print(move |s| c.say(s));
    engine.on_debug(|s, src, pos| {
        eprintln!(
            "{}{}: {s}",
            src.unwrap_or(""),
            if pos.is_none() {
                String::new()
            } else {
                format!(":{}", pos.line().unwrap_or(0))
            }
        )
    });
    let budget = ctx.settings.max_memory;
    // An address-space limit (`ulimit -v`) counts virtual memory: a script
    // nearing it stops with a message instead of an allocation abort.
    let address_space = context::address_space_limit().map(|l| l / 5 * 4);
    engine.on_progress(move |ops| {
        if context::cancelled() {
            return Some(Dynamic::from(format!("interrupted ({})", context::signal_name())));
        }
        // The memory budget, checked every 4096 operations: a script that
        // builds ever larger values stops with an error, not an abort.
        // Every 256 operations (only under a limit): a value that doubles
        // can cross it in a few hundred.
        if let (Some(limit), 0) = (address_space, ops % 256) {
            if let Some(used) = context::virtual_bytes() {
                if used > limit {
                    return Some(Dynamic::from(format!(
                        "the run's address space is {:.1} GiB, near its limit of {:.1} GiB (ulimit -v); free large values (strings, arrays, maps) or raise the limit",
                        used as f64 / (1u64 << 30) as f64,
                        limit as f64 / 0.8 / (1u64 << 30) as f64
                    )));
                }
            }
        }
        if budget > 0 && ops % 4096 == 0 {
            if let Some(used) = context::resident_bytes() {
                if used > budget {
                    return Some(Dynamic::from(format!(
                        "the run uses {:.1} GiB of memory, over its budget of {:.1} GiB; free large values (strings, arrays, maps) or raise --max-memory",
                        used as f64 / (1u64 << 30) as f64,
                        budget as f64 / (1u64 << 30) as f64
                    )));
                }
            }
        }
        None
    });
    engine.set_module_resolver(resolver::Resolver::new(
        ctx.script_dir.clone(),
        ctx.sources.clone(),
    ));
    api::register(&mut engine, ctx);
    engine
}

/// Parses `--set name=value`: the value as a rhai literal (number, bool,
/// string, array, map), else as a plain string.
pub fn parse_param(s: &str) -> Result<(String, Dynamic), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("--set `{s}`: use NAME=VALUE"))?;
    let name = name.trim();
    if name.is_empty()
        || !name.chars().all(|c| c.is_alphanumeric() || c == '_')
        || name.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(format!(
            "--set `{s}`: `{name}` is not a valid name (letters, digits, _)"
        ));
    }
    let mut plain = Engine::new_raw();
    plain.set_max_operations(10_000);
    let v = plain
        .eval_expression::<Dynamic>(value)
        .unwrap_or_else(|_| Dynamic::from(value.to_string()));
    Ok((name.to_string(), v))
}

/// A rhai engine with the stilts API, a scope that lives across inputs (the
/// REPL, cells) and the functions defined so far.
pub struct Runtime {
    /// The engine `build_engine` made: the stilts API, the limits, the module
    /// resolver.
    pub engine: Engine,
    /// The variables, kept across inputs; it starts with the `--set`
    /// parameters as constants.
    pub scope: Scope<'static>,
    /// What the bindings share (settings, store folder, recorder); the
    /// engine's closures hold the same `Rc`.
    pub ctx: Rc<Ctx>,
    /// Script functions defined so far.
    pub lib: AST,
}

impl Runtime {
    /// A runtime for `settings`: a fresh context and engine, the `--set`
    /// parameters in scope, no functions defined yet.
    pub fn new(settings: Settings) -> Self {
        let ctx = Ctx::new(settings);
        let engine = build_engine(&ctx);
        let mut scope = Scope::new();
        for (k, v) in &ctx.settings.params {
            scope.push_constant_dynamic(k.clone(), v.clone());
        }
        Runtime {
            engine,
            scope,
            ctx,
            lib: AST::empty(),
        }
    }

    /// A run-time error of `file` as a diagnostic: at its innermost position,
    /// the outer calls as its trace; a call that matches no function gets
    /// the API's signatures of that name, or the closest name.
    pub fn diagnostic(&self, file: &str, e: &rhai::EvalAltResult) -> Diagnostic {
        errors::eval_diagnostic(file, e, &self.ctx.sources.borrow(), &Hints)
    }

    /// Compiles `text` (named `file` in errors) against the current scope.
    pub fn compile(&self, file: &str, text: &str) -> Result<AST, Diagnostic> {
        self.ctx.sources.borrow_mut().add(file, text);
        let mut ast = self
            .engine
            .compile_with_scope(&self.scope, text)
            .map_err(|e| errors::parse_diagnostic(file, &e, &self.ctx.sources.borrow()))?;
        ast.set_source(file);
        self.ctx
            .map_orders
            .borrow_mut()
            .extend(check::map_orders(text));
        if let Some(d) = Diagnostic::combine(check::static_checks(
            self,
            file,
            &ast,
            &self.ctx.sources.borrow(),
        )) {
            return Err(d);
        }
        Ok(ast)
    }

    /// Runs `text` in the current scope and returns its value; functions
    /// it defines and modules it imports stay for later inputs.
    pub fn eval(&mut self, file: &str, text: &str) -> Result<Dynamic, Diagnostic> {
        let ast = self.compile(file, text)?;
        let full = self.lib.merge(&ast);
        let r = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut self.scope, &full);
        self.lib = full.clone_functions_only();
        self.keep_imports(text);
        r.map_err(|e| self.diagnostic(file, &e))
    }

    /// Top-level imports stay visible to later inputs.
    fn keep_imports(&mut self, text: &str) {
        use rhai::ModuleResolver;
        for (path, alias) in resolver::imports(text) {
            let r = resolver::Resolver::new(self.ctx.script_dir.clone(), self.ctx.sources.clone());
            if let Ok(m) = r.resolve(&self.engine, None, &path, rhai::Position::NONE) {
                self.engine.register_static_module(alias, m);
            }
        }
    }

    /// Runs a script file (up to the cell `upto`), recording its output by
    /// cell. The script's folder becomes the base of relative imports.
    pub fn run_file(&mut self, path: &Path, upto: Option<&str>) -> Result<Dynamic, Diagnostic> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Diagnostic::plain(&name, format!("cannot read the script: {e}")))?;
        *self.ctx.script_dir.borrow_mut() = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        let cells = cells::cells(&text);
        let cut = match upto {
            Some(n) => Some(
                cells::find(&cells, n)
                    .map_err(|m| Diagnostic::plain(&name, m))?
                    .clone(),
            ),
            None => None,
        };
        let code = cells::instrument(&text, cut.as_ref());
        self.ctx.sources.borrow_mut().add(&name, &text);
        let mut ast = self
            .engine
            .compile_with_scope(&self.scope, &code)
            .map_err(|e| errors::parse_diagnostic(&name, &e, &self.ctx.sources.borrow()))?;
        ast.set_source(name.as_str());
        self.ctx
            .map_orders
            .borrow_mut()
            .extend(check::map_orders(&code));
        // Unknown functions and option keys fail now, not hours into a run.
        if let Some(d) = Diagnostic::combine(check::static_checks(
            self,
            &name,
            &ast,
            &self.ctx.sources.borrow(),
        )) {
            return Err(d);
        }
        let given: Vec<String> = self.ctx.settings.params.keys().cloned().collect();
        for w in check::unread_params(&code, &given) {
            self.ctx.warn(&w);
        }
        let full = self.lib.merge(&ast);
        let r = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut self.scope, &full);
        self.lib = full.clone_functions_only();
        self.keep_imports(&text);
        r.map_err(|e| {
            let mut d = self.diagnostic(&name, &e);
            if let Some(h) = self.ctx.default_hint(&d.message) {
                d.message.push('\n');
                d.message.push_str(&h);
            }
            d
        })
    }

    /// Every error `check` finds in a script, without running it.
    pub fn check(&self, file: &str, text: &str) -> Vec<Diagnostic> {
        self.ctx.sources.borrow_mut().add(file, text);
        check::check(self, file, &cells::instrument(text, None))
    }

    /// Writes the report of what ran so far into `dir`; `banner` (a failed
    /// or interrupted run) goes at its top.
    pub fn write_report(
        &self,
        dir: &Path,
        title: &str,
        banner: Option<&str>,
    ) -> stilts_model::Result<PathBuf> {
        report::write(
            dir,
            title,
            &self.ctx.recorder.borrow().cells,
            &self.ctx.conditions.borrow(),
            banner,
        )
    }

    /// The title of the cell that ran last (where a failed run stopped).
    pub fn last_cell(&self) -> Option<String> {
        self.ctx
            .recorder
            .borrow()
            .cells
            .iter()
            .rev()
            .find(|c| !c.title.is_empty())
            .map(|c| c.title.clone())
    }

    /// Names of the variables in scope.
    pub fn variables(&self) -> Vec<String> {
        self.scope.iter_raw().map(|(n, ..)| n.to_string()).collect()
    }
}
