//! `import "stilts/protocol" as p;`: the stdlib modules, embedded in the
//! binary and overridable by a local `stdlib/` folder (or `$STILTS_STDLIB`);
//! any other path is a `.rhai` file relative to the importing script.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

use crate::sources::Sources;

/// The stdlib: import path and embedded text.
pub const STDLIB: &[(&str, &str)] = &[
    ("stilts/protocol", include_str!("../stdlib/protocol.rhai")),
    ("stilts/grid", include_str!("../stdlib/grid.rhai")),
    ("stilts/report", include_str!("../stdlib/report.rhai")),
];

/// Resolves stdlib names and script-relative files, caching each module.
pub struct Resolver {
    /// Folder that relative module paths are read from: the running script's
    /// folder, shared with `Ctx::script_dir`.
    pub base: Rc<RefCell<PathBuf>>,
    /// Where each loaded module's text is added (under its import path and its
    /// file name), for error excerpts.
    pub sources: Rc<RefCell<Sources>>,
    cache: RefCell<HashMap<String, Shared<Module>>>,
    /// The modules being loaded, outermost first: an import of one of them
    /// is a cycle.
    loading: RefCell<Vec<String>>,
}

impl Resolver {
    /// A resolver with an empty module cache.
    pub fn new(base: Rc<RefCell<PathBuf>>, sources: Rc<RefCell<Sources>>) -> Self {
        Resolver {
            base,
            sources,
            cache: Default::default(),
            loading: Default::default(),
        }
    }

    /// The text of a stdlib module: `$STILTS_STDLIB/NAME.rhai`, then
    /// `./stdlib/NAME.rhai`, then the embedded copy.
    pub fn stdlib_text(path: &str) -> Option<(String, String)> {
        let rest = path.strip_prefix("stilts/")?;
        let embedded = STDLIB.iter().find(|(n, _)| *n == path)?.1;
        let mut dirs: Vec<PathBuf> = vec![];
        if let Ok(d) = std::env::var("STILTS_STDLIB") {
            dirs.push(PathBuf::from(d));
        }
        dirs.push(PathBuf::from("stdlib"));
        for d in dirs {
            let f = d.join(format!("{rest}.rhai"));
            if let Ok(t) = std::fs::read_to_string(&f) {
                return Some((f.display().to_string(), t));
            }
        }
        Some((path.to_string(), embedded.to_string()))
    }

    fn load(
        &self,
        engine: &Engine,
        path: &str,
        pos: Position,
    ) -> Result<(String, String), Box<EvalAltResult>> {
        if path.starts_with("stilts/") {
            return Self::stdlib_text(path)
                .ok_or_else(|| EvalAltResult::ErrorModuleNotFound(path.to_string(), pos).into());
        }
        let _ = engine;
        let mut p = PathBuf::from(path);
        if p.extension().is_none() {
            p.set_extension("rhai");
        }
        let full = if p.is_absolute() {
            p
        } else {
            self.base.borrow().join(p)
        };
        match std::fs::read_to_string(&full) {
            Ok(t) => Ok((full.display().to_string(), t)),
            Err(_) => Err(EvalAltResult::ErrorModuleNotFound(path.to_string(), pos).into()),
        }
    }
}

impl ModuleResolver for Resolver {
    fn resolve(
        &self,
        engine: &Engine,
        _source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        if let Some(m) = self.cache.borrow().get(path) {
            return Ok(m.clone());
        }
        let (file, text) = self.load(engine, path, pos)?;
        let id = std::fs::canonicalize(&file)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| file.clone());
        if let Some(i) = self.loading.borrow().iter().position(|f| f == &id) {
            let chain: Vec<String> = self.loading.borrow()[i..].to_vec();
            return Err(format!(
                "import cycle: {} -> {file}; a module cannot import itself, directly or through others",
                chain.join(" -> ")
            )
            .into());
        }
        self.loading.borrow_mut().push(id);
        let out = self.compile_and_eval(engine, path, &file, &text, pos);
        self.loading.borrow_mut().pop();
        out
    }
}

impl Resolver {
    fn compile_and_eval(
        &self,
        engine: &Engine,
        path: &str,
        file: &str,
        text: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        // Errors inside the module point into it by its import path.
        self.sources.borrow_mut().add(path, text);
        self.sources.borrow_mut().add(file, text);
        let mut ast = engine.compile(text).map_err(|e| {
            Box::new(EvalAltResult::ErrorInModule(
                path.to_string(),
                Box::new(EvalAltResult::ErrorParsing(*e.0, e.1)),
                pos,
            ))
        })?;
        ast.set_source(path);
        let m = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(|e| Box::new(EvalAltResult::ErrorInModule(path.to_string(), e, pos)))?;
        let m: Shared<Module> = m.into();
        self.cache.borrow_mut().insert(path.to_string(), m.clone());
        Ok(m)
    }
}

/// Top-level `import "PATH" as NAME;` statements of a script (for keeping
/// imports alive between REPL inputs and cells).
pub fn imports(text: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    for line in text.lines() {
        let l = line.trim();
        let Some(rest) = l.strip_prefix("import") else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(rest) = rest.strip_prefix('"') else {
            continue;
        };
        let Some(end) = rest.find('"') else { continue };
        let path = &rest[..end];
        let after = rest[end + 1..].trim_start();
        let Some(alias) = after.strip_prefix("as") else {
            continue;
        };
        let alias: String = alias
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !alias.is_empty() {
            out.push((path.to_string(), alias));
        }
    }
    out
}

/// Whether `p` is an existing file.
pub fn is_file(p: &Path) -> bool {
    p.is_file()
}
