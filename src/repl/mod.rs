//! The REPL: rustyline with history under the user's data directory,
//! completion and multi-line input ([`helper`]), and `:commands`
//! ([`commands`]). A value typed alone prints a readable summary; an error
//! prints with its position and the session goes on with its state.
//! Without a terminal (a pipe), lines are read plainly with the same
//! multi-line rule, so sessions can be scripted.

pub mod commands;
pub mod helper;

use std::cell::RefCell;
use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use rhai::Dynamic;
use rustyline::error::ReadlineError;

use commands::Flow;
use helper::StiltsHelper;
use stilts_script::{context, Diagnostic, Runtime, Settings};

pub struct Repl {
    pub rt: Runtime,
    pub timing: bool,
    settings: Settings,
    n: usize,
    vars: Rc<RefCell<Vec<String>>>,
}

impl Repl {
    pub fn new(settings: Settings) -> Self {
        let rt = Runtime::new(settings.clone());
        Repl {
            rt,
            timing: false,
            settings,
            n: 0,
            vars: Default::default(),
        }
    }

    /// Forgets everything.
    pub fn reset(&mut self) {
        self.rt = Runtime::new(self.settings.clone());
        self.refresh_vars();
    }

    fn refresh_vars(&self) {
        *self.vars.borrow_mut() = self.rt.variables();
    }

    /// Runs `f`, prints its value or error, and the time when timing is on.
    pub fn timed(&mut self, f: impl FnOnce(&mut Runtime) -> Result<Dynamic, Diagnostic>) {
        context::CANCEL.store(false, Ordering::Relaxed);
        let t = Instant::now();
        match f(&mut self.rt) {
            Ok(v) if v.is_unit() => {}
            Ok(v) => println!("{}", stilts_script::api::results::summary(&v)),
            Err(d) => {
                let _ = std::io::stdout().flush();
                eprint!("{d}");
            }
        }
        if self.timing {
            println!("({:.3} s)", t.elapsed().as_secs_f64());
        }
        context::CANCEL.store(false, Ordering::Relaxed);
        self.refresh_vars();
    }

    /// One complete input: a `:command` or rhai code.
    pub fn handle(&mut self, input: &str) -> Flow {
        let line = input.trim();
        if line.is_empty() {
            return Flow::Continue;
        }
        if let Some(rest) = line.strip_prefix(':') {
            let (word, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            return match commands::find(word) {
                Some(c) => (c.run)(self, arg),
                None => {
                    eprintln!("unknown command `:{word}`; `:help` lists the commands");
                    Flow::Continue
                }
            };
        }
        self.n += 1;
        let name = format!("<input {}>", self.n);
        let text = input.to_string();
        self.timed(|rt| rt.eval(&name, &text));
        Flow::Continue
    }
}

/// The prompt of a new input.
pub const PROMPT: &str = "stilts> ";
/// The prompt of a line that continues an open input (same width).
pub const CONTINUE: &str = "   ...> ";

/// Lines typed so far of one input: complete once no bracket or string is
/// left open.
#[derive(Default)]
pub struct Lines {
    buf: String,
}

impl Lines {
    /// Adds a line; the whole input when it is complete.
    pub fn push(&mut self, line: &str) -> Option<String> {
        if !self.buf.is_empty() {
            self.buf.push('\n');
        }
        self.buf.push_str(line);
        if helper::incomplete(&self.buf) {
            None
        } else {
            Some(std::mem::take(&mut self.buf))
        }
    }

    /// The prompt for the next line.
    pub fn prompt(&self) -> &'static str {
        if self.buf.is_empty() {
            PROMPT
        } else {
            CONTINUE
        }
    }

    /// Drops an unfinished input (Ctrl-C); true when there was one.
    pub fn clear(&mut self) -> bool {
        let had = !self.buf.is_empty();
        self.buf.clear();
        had
    }

    /// What is left at the end of input.
    pub fn rest(self) -> String {
        self.buf
    }
}

fn history_path() -> Option<std::path::PathBuf> {
    let dir = dirs::data_dir()?.join("stilts");
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir.join("history"))
}

/// Reads inputs from a pipe: lines accumulate while the input is incomplete.
fn run_plain(repl: &mut Repl) {
    let stdin = std::io::stdin();
    let mut lines = Lines::default();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let Some(input) = lines.push(&line) else {
            continue;
        };
        if repl.handle(&input) == Flow::Quit {
            return;
        }
        let _ = std::io::stdout().flush();
    }
    let rest = lines.rest();
    if !rest.trim().is_empty() {
        repl.handle(&rest);
    }
}

/// The REPL until `:quit` or end of input.
pub fn run(settings: Settings) -> crate::Result<ExitCode> {
    context::install_ctrlc();
    context::INTERACTIVE.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut repl = Repl::new(settings);
    if !std::io::stdin().is_terminal() {
        run_plain(&mut repl);
        return Ok(ExitCode::SUCCESS);
    }
    let config = rustyline::Config::builder()
        .auto_add_history(false)
        .completion_type(rustyline::CompletionType::List)
        .build();
    let mut ed: rustyline::Editor<StiltsHelper, rustyline::history::FileHistory> =
        rustyline::Editor::with_config(config)
            .map_err(|e| crate::Error::msg(format!("cannot start the line editor: {e}")))?;
    ed.set_helper(Some(StiltsHelper {
        vars: repl.vars.clone(),
    }));
    let hist = history_path();
    if let Some(h) = &hist {
        let _ = ed.load_history(h);
    }
    println!(
        "stilts {} — rhai REPL. `:help` for commands and the API, Tab completes, Ctrl-D leaves.",
        env!("CARGO_PKG_VERSION")
    );
    let mut lines = Lines::default();
    loop {
        match ed.readline(lines.prompt()) {
            Ok(line) => {
                let Some(input) = lines.push(&line) else {
                    continue;
                };
                if !input.trim().is_empty() {
                    let _ = ed.add_history_entry(input.as_str());
                    if let Some(h) = &hist {
                        let _ = ed.append_history(h);
                    }
                }
                if repl.handle(&input) == Flow::Quit {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => {
                if lines.clear() {
                    println!("(input dropped)");
                }
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(crate::Error::msg(format!("line editor: {e}"))),
        }
    }
    Ok(ExitCode::SUCCESS)
}
