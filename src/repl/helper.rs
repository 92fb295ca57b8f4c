//! The rustyline helper: completion of API functions, methods, variables
//! and `:commands`; multi-line input while braces or strings are open
//! (rhai's parser decides).

use std::cell::RefCell;
use std::rc::Rc;

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};

use super::commands::COMMANDS;
use stilts_script::docs;

const KEYWORDS: &[&str] = &[
    "let", "const", "fn", "if", "else", "for", "in", "while", "loop", "break", "continue",
    "return", "throw", "try", "catch", "import", "export", "as", "true", "false", "print", "debug",
    "type_of",
];
/// Common methods of rhai's own types.
const BUILTIN_METHODS: &[&str] = &[
    "len",
    "push",
    "pop",
    "keys",
    "values",
    "contains",
    "map",
    "filter",
    "reduce",
    "sort",
    "join",
    "split",
    "to_string",
    "round",
    "abs",
    "sum",
];

pub struct StiltsHelper {
    /// The variables in scope, refreshed after each input.
    pub vars: Rc<RefCell<Vec<String>>>,
}

/// Is `input` unfinished (an open brace, bracket, parenthesis or string)?
pub fn incomplete(input: &str) -> bool {
    if input.trim().is_empty() || input.trim_start().starts_with(':') {
        return false;
    }
    let engine = rhai::Engine::new_raw();
    match engine.compile(input) {
        Ok(_) => false,
        Err(e) => match &*e.0 {
            rhai::ParseErrorType::UnexpectedEOF => true,
            rhai::ParseErrorType::BadInput(rhai::LexError::UnterminatedString) => true,
            // While brackets are open the parser's complaint is about the
            // end of the text: wait for more.
            _ => open_count(input) > 0,
        },
    }
}

/// Open brackets minus closed ones, outside strings and comments.
fn open_count(s: &str) -> i64 {
    let mut n = 0i64;
    let mut chars = s.chars().peekable();
    let mut in_str: Option<char> = None;
    while let Some(c) = chars.next() {
        match in_str {
            Some(q) => {
                if c == '\\' {
                    chars.next();
                } else if c == q {
                    in_str = None;
                }
            }
            None => match c {
                '"' | '`' => in_str = Some(c),
                '/' if chars.peek() == Some(&'/') => {
                    for d in chars.by_ref() {
                        if d == '\n' {
                            break;
                        }
                    }
                }
                '{' | '(' | '[' => n += 1,
                '}' | ')' | ']' => n -= 1,
                _ => {}
            },
        }
    }
    n
}

/// Where a word at the end of `before` is a key of a map literal given to
/// an API call (`train(m, t, #{lr: 1e-5, ep`), that call's option keys.
fn map_keys_at(before: &str) -> Option<Vec<String>> {
    let last = before.trim_end().chars().last()?;
    if last != '{' && last != ',' {
        return None;
    }
    let b = before.as_bytes();
    let mut depth = 0i64;
    let mut i = b.len();
    // The innermost open `#{`, then the innermost open `(` before it.
    let mut map_at = None;
    while i > 0 {
        i -= 1;
        match b[i] {
            b'}' | b')' | b']' => depth += 1,
            b'{' | b'(' | b'[' if depth > 0 => depth -= 1,
            b'{' if i > 0 && b[i - 1] == b'#' => {
                map_at = Some(i - 1);
                break;
            }
            b'{' | b'(' | b'[' => return None,
            _ => {}
        }
    }
    let mut i = map_at?;
    let mut depth = 0i64;
    while i > 0 {
        i -= 1;
        match b[i] {
            b'}' | b')' | b']' => depth += 1,
            b'{' | b'(' | b'[' if depth > 0 => depth -= 1,
            b'(' => {
                let name: String = before[..i]
                    .chars()
                    .rev()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                return stilts_script::check::option_keys(&name);
            }
            b'{' | b'[' => return None,
            _ => {}
        }
    }
    None
}

impl StiltsHelper {
    /// Candidates for the word that ends at `pos`: (start of the word, candidates).
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<String>) {
        let before = &line[..pos];
        if let Some(rest) = before.strip_prefix(':') {
            if let Some((cmd, arg)) = rest.split_once(' ') {
                if cmd == "help" || cmd == "h" {
                    let start = pos - arg.len();
                    let mut c: Vec<String> = docs::names()
                        .into_iter()
                        .filter(|n| n.starts_with(arg))
                        .map(str::to_string)
                        .collect();
                    c.dedup();
                    return (start, c);
                }
                return (pos, vec![]);
            }
            return (
                1,
                COMMANDS
                    .iter()
                    .filter(|c| c.name.starts_with(rest))
                    .map(|c| c.name.to_string())
                    .collect(),
            );
        }
        let start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
            .last()
            .map(|(i, _)| i)
            .unwrap_or(pos);
        let word = &before[start..];
        if let Some(keys) = map_keys_at(&before[..start]) {
            let mut out: Vec<String> = keys.into_iter().filter(|k| k.starts_with(word)).collect();
            out.sort();
            out.dedup();
            return (start, out);
        }
        let method = before[..start].ends_with('.');
        let mut out: Vec<String> = if method {
            docs::member_names()
                .into_iter()
                .chain(BUILTIN_METHODS.iter().copied())
                .filter(|n| n.starts_with(word))
                .map(str::to_string)
                .collect()
        } else {
            let vars = self.vars.borrow();
            vars.iter()
                .map(String::as_str)
                .chain(docs::function_names())
                .chain(KEYWORDS.iter().copied())
                .filter(|n| n.starts_with(word))
                .map(str::to_string)
                .collect()
        };
        out.sort();
        out.dedup();
        (start, out)
    }
}

impl Completer for StiltsHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, c) = self.candidates(line, pos);
        Ok((
            start,
            c.into_iter()
                .map(|s| Pair {
                    display: s.clone(),
                    replacement: s,
                })
                .collect(),
        ))
    }
}

impl Hinter for StiltsHelper {
    type Hint = String;
}

impl Highlighter for StiltsHelper {}

/// Every line is taken as typed: an input left open (a bracket or a
/// string) continues on the next line under the continuation prompt
/// ([`super::Lines`]), where rustyline's own multi-line mode shows none.
impl Validator for StiltsHelper {
    fn validate(&self, _: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(ValidationResult::Valid(None))
    }
}

impl Helper for StiltsHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper(vars: &[&str]) -> StiltsHelper {
        StiltsHelper {
            vars: Rc::new(RefCell::new(vars.iter().map(|s| s.to_string()).collect())),
        }
    }

    #[test]
    fn completes_functions_methods_variables_and_commands() {
        let h = helper(&["xnli_test", "base"]);
        assert_eq!(
            h.candidates("let m = tiny", 12),
            (8, vec!["tiny_model".to_string()])
        );
        assert!(h
            .candidates("evaluate(m, xnli", 16)
            .1
            .contains(&"xnli_test".to_string()));
        assert_eq!(h.candidates("m.sa", 4), (2, vec!["save".to_string()]));
        assert_eq!(h.candidates(":he", 3), (1, vec!["help".to_string()]));
        assert_eq!(
            h.candidates(":help stil", 10),
            (6, vec!["stilts".to_string()])
        );
        assert_eq!(
            h.candidates(":help trai", 10),
            (6, vec!["training".to_string(), "train".to_string()])
        );
    }

    /// Issue 32, item 10: Tab completes the option keys of the call whose
    /// map literal the cursor is in, and only at a key's place.
    #[test]
    fn completes_option_keys_inside_a_map_literal() {
        let h = helper(&["epochs_var"]);
        let line = "let ft = train(m, t, #{lr: 1e-5, ep";
        assert_eq!(
            h.candidates(line, line.len()),
            (line.len() - 2, vec!["epochs".to_string()])
        );
        let line = "task(\"xnli\", #{lang";
        assert_eq!(
            h.candidates(line, line.len()),
            (line.len() - 4, vec!["languages".to_string()])
        );
        // A value's place: variables and functions, not keys.
        let line = "train(m, t, #{epochs: ep";
        assert!(h
            .candidates(line, line.len())
            .1
            .contains(&"epochs_var".to_string()));
        // A map given to no known call: no keys.
        let line = "let o = #{ep";
        assert!(!h
            .candidates(line, line.len())
            .1
            .contains(&"epochs".to_string()));
    }

    #[test]
    fn open_braces_and_strings_continue() {
        assert!(incomplete("fn f(x) {"));
        assert!(incomplete("let a = [1,\n2,"));
        assert!(incomplete("let s = \"abc"));
        assert!(!incomplete("let a = 1;"));
        assert!(!incomplete("let a = ;"));
        assert!(!incomplete(":help"));
    }
}
