//! `stilts check`: every error a script has before it runs. rhai's parser
//! stops at the first syntax error, so after one the offending line is
//! blanked and the script parsed again; a script that parses is then walked
//! for calls of unknown functions and unknown keys in option maps.

use rhai::{ASTNode, Expr, Position, AST};

use super::errors::{parse_diagnostic, Diagnostic};
use super::options::{check_keys, train_keys};
use super::Runtime;
use stilts_model::util::closest;

/// Option keys of the map argument of each API function (what `check`
/// and the REPL's completion of map keys know).
pub fn option_keys(f: &str) -> Option<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    Some(match f {
        "train" => train_keys(),
        "multitask" => {
            let mut k = train_keys();
            k.push("sampling".to_string());
            k
        }
        "condition" => s(crate::api::condition::CONDITION_KEYS),
        "stilts" => {
            let mut k = train_keys();
            k.extend(["intermediate".to_string(), "target".to_string()]);
            k
        }
        "evaluate" => s(&crate::options::struct_keys::<crate::options::EvalArgs>()),
        "model" => s(&crate::options::struct_keys::<crate::options::ModelArgs>()),
        // (modulation's one-argument form takes the gains map itself.)
        "seeds_needed" => s(crate::api::modulation::OPTION_KEYS),
        "plot_scaling" => s(crate::api::plot::SCALING_KEYS),
        "plot_gain" => s(crate::api::plot::GAIN_KEYS),
        "plot_languages" => s(crate::api::plot::LANGUAGES_KEYS),
        "tiny_model" => {
            let mut k = s(&crate::options::struct_keys::<crate::options::TinyArgs>());
            k.push(crate::api::model::TINY_TEXT_KEY.to_string());
            k
        }
        "task" => s(&crate::options::struct_keys::<crate::options::TaskArgs>()),
        _ => return None,
    })
}

/// Built into rhai's evaluator (not in the function registry).
const KEYWORD_FNS: &[&str] = &[
    "print",
    "debug",
    "type_of",
    "Fn",
    "call",
    "curry",
    "is_def_var",
    "is_def_fn",
    "is_shared",
    "eval",
    "throw",
    "this",
    "!",
    "-",
    "+",
];

/// Every error of `text` (named `file`) without running it: syntax errors
/// (at most 50, each offending line blanked and the text parsed again),
/// then, once it parses, the `static_checks`; sorted by line and column.
pub fn check(rt: &Runtime, file: &str, text: &str) -> Vec<Diagnostic> {
    let sources = rt.ctx.sources.borrow().clone();
    let mut diags: Vec<Diagnostic> = vec![];
    let mut work = text.to_string();
    let mut last_line = 0usize;
    // Names declared on lines blanked out: "unknown variable" errors about
    // them are consequences, not errors of the script.
    let mut lost: Vec<String> = vec![];
    let mut rounds = 0;
    let ast = loop {
        rounds += 1;
        if rounds > 200 {
            break None;
        }
        match rt.engine.compile_with_scope(&rt.scope, &work) {
            Ok(ast) => break Some(ast),
            Err(e) => {
                let follow_up = match &*e.0 {
                    rhai::ParseErrorType::UnexpectedEOF => true,
                    rhai::ParseErrorType::MissingToken(t, _) => t != ";",
                    _ => false,
                };
                let mut tmp = sources.clone();
                tmp.add(file, &work);
                let d = parse_diagnostic(file, &e, &tmp);
                let line = d.line;
                if line == 0
                    || line < last_line
                    || (!diags.is_empty() && follow_up)
                    || diags.len() >= 50
                {
                    break None;
                }
                let consequence =
                    matches!(&*e.0, rhai::ParseErrorType::VariableUndefined(v) if lost.contains(v));
                let mut lines: Vec<String> = work.split('\n').map(str::to_string).collect();
                match &*e.0 {
                    rhai::ParseErrorType::MissingToken(t, _) if t == ";" && line >= 1 => {
                        // Put the `;` where it belongs and go on.
                        let l = &mut lines[line - 1];
                        let at = l
                            .char_indices()
                            .nth(d.col.saturating_sub(1))
                            .map(|(i, _)| i)
                            .unwrap_or(l.len());
                        l.insert(at, ';');
                    }
                    _ => {
                        let l = &mut lines[line - 1];
                        let t = l.trim_start();
                        for kw in ["let ", "const "] {
                            if let Some(rest) = t.strip_prefix(kw) {
                                lost.push(
                                    rest.chars()
                                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                                        .collect(),
                                );
                            }
                        }
                        *l = " ".repeat(l.len());
                    }
                }
                work = lines.join("\n");
                if !consequence {
                    let mut d = d;
                    d.source_line = sources.line(file, d.line);
                    diags.push(d);
                }
                last_line = line;
            }
        }
    };
    if let Some(ast) = ast {
        diags.extend(static_checks(rt, file, &ast, &sources));
    }
    diags.sort_by_key(|d| (d.line, d.col));
    diags
}

fn known_functions(rt: &Runtime, ast: &AST) -> Vec<String> {
    let mut names: Vec<String> = rt
        .engine
        .gen_fn_signatures(true)
        .into_iter()
        .filter_map(|s| {
            let s = s
                .trim_start_matches("pub ")
                .trim_start_matches("fn ")
                .to_string();
            let name = s.split('(').next()?.trim().to_string();
            Some(name.rsplit('.').next().unwrap_or(&name).to_string())
        })
        .collect();
    names.extend(ast.iter_functions().map(|f| f.name.to_string()));
    names.extend(rt.lib.iter_functions().map(|f| f.name.to_string()));
    names.extend(KEYWORD_FNS.iter().map(|s| s.to_string()));
    names.sort();
    names.dedup();
    names
}

/// The checks of a parsed script: calls of functions or methods the runtime
/// does not know (with the closest name), and unknown keys in the literal
/// option maps of API calls such as `train` and `condition`.
pub fn static_checks(
    rt: &Runtime,
    file: &str,
    ast: &AST,
    sources: &crate::sources::Sources,
) -> Vec<Diagnostic> {
    let known = known_functions(rt, ast);
    let known_refs: Vec<&str> = known.iter().map(String::as_str).collect();
    let mut out = vec![];
    let mut report =
        |pos: Position, msg: String| out.push(Diagnostic::new(file, pos, msg, sources));
    ast.walk(&mut |path: &[ASTNode]| {
        let (call, pos, method) = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(x, pos))) => (x, *pos, false),
            Some(ASTNode::Expr(Expr::MethodCall(x, pos))) => (x, *pos, true),
            Some(ASTNode::Stmt(rhai::Stmt::FnCall(x, pos))) => (x, *pos, false),
            _ => return true,
        };
        let name = call.name.as_str();
        let ident = name
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
            && !name.contains('$');
        if !ident || !call.namespace.is_empty() {
            return true;
        }
        if !known.iter().any(|k| k == name) {
            let hint = closest(name, &known_refs)
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            let what = if method { "method" } else { "function" };
            report(pos, format!("unknown {what} `{name}`{hint}"));
            return true;
        }
        if let Some(keys) = option_keys(name) {
            // A literal map, or one the optimiser folded into a constant.
            let found: Vec<(String, Position)> = match call.args.last() {
                Some(Expr::Map(m, _)) => {
                    m.0.iter()
                        .map(|(id, _)| (id.name.to_string(), id.pos))
                        .collect()
                }
                Some(Expr::DynamicConstant(d, p)) => d
                    .clone()
                    .try_cast::<rhai::Map>()
                    .map(|m| m.keys().map(|k| (k.to_string(), *p)).collect())
                    .unwrap_or_default(),
                _ => vec![],
            };
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            for (k, p) in found {
                let mut one = rhai::Map::new();
                one.insert(k.into(), rhai::Dynamic::UNIT);
                if let Err(e) = check_keys(&format!("{name} options"), &one, &refs) {
                    report(p, super::errors::eval_message(&e, &super::Hints));
                }
            }
        }
        true
    });
    out
}

/// `--set` names the script never reads (no `param("name", ...)` with that
/// name, no variable of that name, no `params()`): a warning each, with
/// the closest name the script does read.
pub fn unread_params(text: &str, given: &[String]) -> Vec<String> {
    if given.is_empty() {
        return vec![];
    }
    // Parsed without optimisation: constants (the `--set` values are
    // constants in the scope) would otherwise be folded into values.
    let mut e = rhai::Engine::new_raw();
    e.set_optimization_level(rhai::OptimizationLevel::None);
    e.set_max_expr_depths(0, 0);
    let Ok(ast) = e.compile(text) else {
        return vec![];
    };
    let mut read: Vec<String> = vec![];
    let mut all = false;
    ast.walk(&mut |path: &[ASTNode]| {
        let call = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(x, _))) => Some(x),
            Some(ASTNode::Stmt(rhai::Stmt::FnCall(x, _))) => Some(x),
            Some(ASTNode::Expr(Expr::Variable(x, ..))) => {
                read.push(x.1.to_string());
                None
            }
            _ => None,
        };
        if let Some(c) = call {
            match c.name.as_str() {
                "params" => all = true,
                "param" => match c.args.first() {
                    Some(Expr::StringConstant(s, _)) => read.push(s.to_string()),
                    // A name computed at run time: any name may be read.
                    Some(_) => all = true,
                    None => {}
                },
                _ => {}
            }
        }
        true
    });
    if all {
        return vec![];
    }
    let names: Vec<&str> = read.iter().map(String::as_str).collect();
    given
        .iter()
        .filter(|g| !read.contains(g))
        .map(|g| {
            let hint = closest(g, &names)
                .map(|c| format!("; did you mean `{c}`?"))
                .unwrap_or_default();
            format!("--set {g}=...: the script never reads `{g}` (no param(\"{g}\", ...)), so it has no effect{hint}")
        })
        .collect()
}

/// The keys of every map literal of `text`, in the order written (parsed
/// without optimisation, so literals of constants are not folded into
/// sorted maps).
pub fn map_orders(text: &str) -> Vec<Vec<String>> {
    let mut e = rhai::Engine::new_raw();
    e.set_optimization_level(rhai::OptimizationLevel::None);
    e.set_max_expr_depths(0, 0);
    let Ok(ast) = e.compile(text) else {
        return vec![];
    };
    let mut out = vec![];
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Expr(Expr::Map(m, _))) = path.last() {
            let keys: Vec<String> = m.0.iter().map(|(id, _)| id.name.to_string()).collect();
            if keys.len() > 1 {
                out.push(keys);
            }
        }
        true
    });
    out
}
