//! Script errors as a researcher reads them: `FILE:LINE:COL: message`, the
//! source line with a caret under the column, what to do, and for an error
//! inside a function or module the calls that led there.

use crate::sources::Sources;
use rhai::{EvalAltResult, ParseError, ParseErrorType, Position};

/// One located message.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// The script or module the message is about, as the runtime named it.
    pub file: String,
    /// 1-based; 0 when unknown.
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub col: usize,
    /// What went wrong and what to do; its first line goes beside the location,
    /// the others below the source line.
    pub message: String,
    /// The source line, when known.
    pub source_line: Option<String>,
    /// Where the failing code was called from, innermost first.
    pub trace: Vec<String>,
    /// More errors found at the same time (static checks before a run).
    pub also: Vec<Diagnostic>,
}

impl Diagnostic {
    /// A diagnostic at `pos` in `file`, with that line's text from `sources`.
    pub fn new(file: &str, pos: Position, message: impl Into<String>, sources: &Sources) -> Self {
        let (line, col) = (pos.line().unwrap_or(0), pos.position().unwrap_or(0));
        let source_line = sources.line(file, line);
        Diagnostic {
            file: file.to_string(),
            line,
            col,
            message: message.into(),
            source_line,
            trace: vec![],
            also: vec![],
        }
    }

    /// A message without a position.
    pub fn plain(file: &str, message: impl Into<String>) -> Self {
        Diagnostic {
            file: file.to_string(),
            line: 0,
            col: 0,
            message: message.into(),
            source_line: None,
            trace: vec![],
            also: vec![],
        }
    }

    /// Folds a list into one diagnostic (the first, the others in `also`).
    pub fn combine(mut list: Vec<Diagnostic>) -> Option<Diagnostic> {
        if list.is_empty() {
            return None;
        }
        let mut first = list.remove(0);
        first.also = list;
        Some(first)
    }

    /// `FILE:LINE:COL`, `FILE:LINE` without a column, `FILE` without a line.
    pub fn location(&self) -> String {
        match (self.line, self.col) {
            (0, _) => self.file.clone(),
            (l, 0) => format!("{}:{l}", self.file),
            (l, c) => format!("{}:{l}:{c}", self.file),
        }
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut lines = self.message.lines();
        writeln!(f, "{}: {}", self.location(), lines.next().unwrap_or(""))?;
        if let Some(src) = &self.source_line {
            let num = self.line.to_string();
            let pad = " ".repeat(num.len());
            writeln!(f, " {num} | {src}")?;
            if self.col > 0 {
                // Tabs keep their width so the caret lines up.
                let lead: String = src
                    .chars()
                    .take(self.col - 1)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                writeln!(f, " {pad} | {lead}^")?;
            }
        }
        for l in lines {
            writeln!(f, "  {l}")?;
        }
        for t in &self.trace {
            writeln!(f, "  {t}")?;
        }
        for d in &self.also {
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// A parse error, located in `file`.
pub fn parse_diagnostic(file: &str, e: &ParseError, sources: &Sources) -> Diagnostic {
    let msg = parse_message(&e.0);
    let mut d = Diagnostic::new(file, e.1, msg, sources);
    // A missing `;` is found at the next token: point at the end of the
    // statement it should close instead.
    if let ParseErrorType::MissingToken(t, _) = &*e.0 {
        let first_col = d
            .source_line
            .as_deref()
            .map(|l| l.len() - l.trim_start().len() + 1);
        if t == ";" && d.line > 1 && first_col == Some(d.col) {
            let mut l = d.line - 1;
            while l > 1 && sources.line(file, l).is_some_and(|s| s.trim().is_empty()) {
                l -= 1;
            }
            if let Some(src) = sources.line(file, l) {
                d.line = l;
                d.col = src.trim_end().chars().count() + 1;
                d.source_line = Some(src);
            }
        }
    }
    d
}

fn parse_message(t: &ParseErrorType) -> String {
    match t {
        ParseErrorType::MissingToken(tok, what) => format!("expected `{tok}` {what}"),
        ParseErrorType::UnexpectedEOF => {
            "unexpected end of script: a `}`, `)` or `]` is missing".into()
        }
        ParseErrorType::VariableUndefined(v) => {
            format!("unknown variable `{v}`: define it with `let {v} = ...;` first")
        }
        ParseErrorType::BadInput(rhai::LexError::UnterminatedString) => {
            "unterminated string: a closing `\"` is missing".into()
        }
        other => {
            let s = other.to_string();
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
                None => s,
            }
        }
    }
}

/// What a function-not-found message should suggest.
pub trait FnHints {
    /// The documented signatures of `name` (empty if none).
    fn signatures(&self, name: &str) -> Vec<String>;
    /// A known name close to `name`.
    fn similar(&self, name: &str) -> Option<String>;
    /// The documented properties of the type `ty` (`Model`: name, arch, ...).
    fn properties(&self, _ty: &str) -> Vec<String> {
        vec![]
    }
}

/// `` `TYPE` has no property `PROP` ``, with the closest property the type
/// has and the list of them.
fn no_property(ty: &str, prop: &str, hints: &dyn FnHints) -> String {
    let props = hints.properties(ty);
    let refs: Vec<&str> = props.iter().map(String::as_str).collect();
    let hint = stilts_model::util::closest(prop, &refs)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default();
    let list = if props.is_empty() {
        String::new()
    } else {
        format!("\n{ty}'s properties: {}", props.join(", "))
    };
    format!("`{ty}` has no property `{prop}`{hint}{list}")
}

/// A run-time error, located at its innermost position; the outer calls
/// become the trace. `file` is the script the error surfaced in.
pub fn eval_diagnostic(
    file: &str,
    e: &EvalAltResult,
    sources: &Sources,
    hints: &dyn FnHints,
) -> Diagnostic {
    let mut trace = vec![];
    let mut cur = e;
    let mut cur_file = file.to_string();
    loop {
        match cur {
            EvalAltResult::ErrorInFunctionCall(name, src, inner, pos) => {
                let loc = Diagnostic::new(&cur_file, *pos, "", sources).location();
                trace.push(format!("in `{name}`, called at {loc}"));
                if !src.is_empty() {
                    cur_file = src.clone();
                }
                cur = inner;
            }
            EvalAltResult::ErrorInModule(name, inner, pos) => {
                let loc = Diagnostic::new(&cur_file, *pos, "", sources).location();
                trace.push(format!("in module `{name}`, imported at {loc}"));
                cur_file = name.clone();
                cur = inner;
            }
            _ => break,
        }
    }
    trace.reverse();
    let mut d = Diagnostic::new(&cur_file, cur.position(), eval_message(cur, hints), sources);
    d.trace = trace;
    d
}

/// The message of one (innermost) error, with what to do.
pub fn eval_message(e: &EvalAltResult, hints: &dyn FnHints) -> String {
    use EvalAltResult::*;
    match e {
        ErrorFunctionNotFound(sig, _) => {
            let name = sig.split(|c: char| c == ' ' || c == '(').next().unwrap_or(sig).trim();
            let name = name.rsplit("::").next().unwrap_or(name);
            let args = sig.find('(').map(|i| sig[i..].to_string()).unwrap_or_default();
            let call = format!("{name}{args}");
            let known = hints.signatures(name);
            if !known.is_empty() {
                format!("no `{name}` takes these arguments: `{call}`\nit takes: {}\nsee `:help {name}`", known.join("  |  "))
            } else if name.starts_with("get$") || name.starts_with("set$") {
                let prop = &name[4..];
                let ty = args.trim_start_matches('(').split([',', ')']).next().unwrap_or("").trim();
                no_property(ty, prop, hints)
            } else {
                let hint = hints.similar(name).map(|s| format!("; did you mean `{s}`?")).unwrap_or_default();
                format!("unknown function `{call}`{hint}\n`:help` lists the API")
            }
        }
        ErrorVariableNotFound(v, _) => format!("unknown variable `{v}`: define it with `let {v} = ...;` first"),
        ErrorModuleNotFound(m, _) => format!("module `{m}` not found: stdlib modules are {}; other paths are files relative to the script", crate::resolver::STDLIB.iter().map(|(n, _)| format!("\"{n}\"")).collect::<Vec<_>>().join(", ")),
        ErrorMismatchDataType(expected, got, _) => format!("wrong type: expected {expected}, got {got}"),
        ErrorPropertyNotFound(p, _) => format!("no property `{p}`"),
        ErrorDotExpr(m, _) if m.starts_with("Unknown property '") => {
            // rhai: "Unknown property 'P' - a getter is not registered for type 'T'".
            let mut q = m.split('\'');
            let prop = q.nth(1).unwrap_or("");
            let ty = q.nth(1).unwrap_or("");
            no_property(ty, prop, hints)
        }
        ErrorFor(_) => "`for x in VALUE` loops over an array, a range (`0..n`) or a string, and VALUE is none of these; for one value write it as an array (`[1]`, or `--set seeds=[1]` on the command line)".into(),
        ErrorIndexNotFound(i, _) => format!("no entry {i}"),
        ErrorTooManyOperations(_) => "the script ran past its operation limit (a runaway loop?); stopped. Raise it with --max-operations N (0: no limit)".into(),
        ErrorStackOverflow(_) => "too many nested calls (runaway recursion?); stopped".into(),
        ErrorDataTooLarge(what, _) => format!("{what} grew past its size limit; stopped"),
        ErrorTooManyModules(_) => "too many modules imported".into(),
        ErrorTerminated(v, _) => {
            let s = v.to_string();
            if s.is_empty() {
                "interrupted".into()
            } else {
                s
            }
        }
        ErrorRuntime(v, _) => {
            let s = if v.is_string() { v.clone().into_string().unwrap_or_default() } else { v.to_string() };
            if s.is_empty() {
                "error thrown by the script".into()
            } else {
                s
            }
        }
        ErrorParsing(t, _) => parse_message(t),
        other => {
            let s = other.to_string();
            match s.rfind(" (line ") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}
