//! The REPL's `:commands`, declared once: this table runs them, completes
//! them and makes their `:help`.

use super::Repl;

/// What the loop does after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

pub struct Command {
    pub name: &'static str,
    pub args: &'static str,
    pub help: &'static str,
    pub run: fn(&mut Repl, &str) -> Flow,
}

pub const COMMANDS: &[Command] = &[
    Command {
        name: "help",
        args: "[name]",
        help: "the commands and the API; with a name, its signature, doc and example",
        run: help,
    },
    Command {
        name: "vars",
        args: "",
        help: "the variables in scope, with their types",
        run: vars,
    },
    Command {
        name: "load",
        args: "FILE",
        help: "run a script into the current scope (its variables and functions stay)",
        run: load,
    },
    Command {
        name: "time",
        args: "",
        help: "toggle timing of each input",
        run: time,
    },
    Command {
        name: "reset",
        args: "",
        help: "forget all variables, functions and imports",
        run: reset,
    },
    Command {
        name: "quit",
        args: "",
        help: "leave (also Ctrl-D)",
        run: quit,
    },
];

/// The command a `:word` names (a unique prefix will do).
pub fn find(word: &str) -> Option<&'static Command> {
    if let Some(c) = COMMANDS.iter().find(|c| c.name == word) {
        return Some(c);
    }
    let hits: Vec<&Command> = COMMANDS
        .iter()
        .filter(|c| c.name.starts_with(word))
        .collect();
    if hits.len() == 1 {
        Some(hits[0])
    } else {
        None
    }
}

/// The commands, for `:help`.
pub fn overview() -> String {
    let mut s = String::from("commands:\n");
    for c in COMMANDS {
        let head = if c.args.is_empty() {
            format!(":{}", c.name)
        } else {
            format!(":{} {}", c.name, c.args)
        };
        s.push_str(&format!("  {head:<14} {}\n", c.help));
    }
    s
}

fn help(_: &mut Repl, arg: &str) -> Flow {
    let arg = arg.trim();
    if arg.is_empty() {
        println!(
            "{}\n{}\ntype `:help NAME` for one function, e.g. `:help train`",
            overview(),
            stilts_script::docs::overview()
        );
    } else if let Some(text) = stilts_script::docs::help(arg) {
        print!("{text}");
    } else if let Some(c) = find(arg.trim_start_matches(':')) {
        println!(":{} {}\n    {}", c.name, c.args, c.help);
    } else {
        let hint = stilts_model::util::closest(arg, &stilts_script::docs::names())
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        println!("no help for `{arg}`{hint}");
    }
    Flow::Continue
}

fn vars(r: &mut Repl, _: &str) -> Flow {
    let mut any = false;
    // A name defined again (`let a = 1; ... let a = 2;`) shadows the older
    // one, which the scope keeps: only the newest (met first: the scope
    // is read newest first) is shown.
    let all: Vec<_> = r.rt.scope.iter_raw().collect();
    for (i, (name, constant, value)) in all.iter().enumerate() {
        let (name, constant, value) = (*name, *constant, *value);
        if all[..i].iter().any(|(n, ..)| *n == name) {
            continue;
        }
        any = true;
        let summary = stilts_script::api::results::summary(value);
        let first = summary.lines().next().unwrap_or("");
        let first: String = if first.chars().count() > 70 {
            first.chars().take(67).collect::<String>() + "..."
        } else {
            first.to_string()
        };
        println!(
            "{}{name}: {} = {first}",
            if constant { "const " } else { "" },
            stilts_script::values::type_name(value)
        );
    }
    if !any {
        println!("(no variables)");
    }
    Flow::Continue
}

fn load(r: &mut Repl, arg: &str) -> Flow {
    let path = arg.trim().trim_matches('"');
    if path.is_empty() {
        eprintln!(":load FILE: which file?");
        return Flow::Continue;
    }
    r.timed(|rt| {
        rt.run_file(std::path::Path::new(path), None)
            .map(|_| rhai::Dynamic::UNIT)
    });
    Flow::Continue
}

fn time(r: &mut Repl, _: &str) -> Flow {
    r.timing = !r.timing;
    println!("timing {}", if r.timing { "on" } else { "off" });
    Flow::Continue
}

fn reset(r: &mut Repl, _: &str) -> Flow {
    r.reset();
    println!("reset: no variables, functions or imports");
    Flow::Continue
}

fn quit(_: &mut Repl, _: &str) -> Flow {
    Flow::Quit
}
