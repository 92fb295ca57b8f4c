//! The rhai API's documentation. Each `api/` file keeps a `DOCS` table
//! beside the functions it registers; [`api`] collects them for `:help`,
//! tab completion, `check`'s "did you mean" and the README's API reference.
//! A test checks that every registered function has an entry and every
//! entry is registered, and another runs every entry's example.

pub use crate::api::doc::{entry, ApiDoc};
use stilts_model::util::wrap;

/// The sections of the reference, in order.
pub const GROUPS: [&str; 6] = [
    "models",
    "tasks",
    "training",
    "results",
    "tables and plots",
    "runs",
];

/// The whole API: each `api/` file's `DOCS` (kept beside the functions it
/// registers), by section, in the files' order within a section. Methods
/// are written `Type.name`; properties `Type.name` without parentheses.
pub fn api() -> Vec<&'static ApiDoc> {
    use crate::api::{condition, model, modulation, plot, results, runs, task, train};
    let all = [
        model::DOCS,
        task::DOCS,
        train::DOCS,
        condition::DOCS,
        results::DOCS,
        modulation::DOCS,
        plot::DOCS,
        runs::DOCS,
    ];
    let mut out: Vec<&'static ApiDoc> = all.iter().flat_map(|d| d.iter()).collect();
    out.sort_by_key(|d| {
        GROUPS
            .iter()
            .position(|g| *g == d.group)
            .unwrap_or(GROUPS.len())
    });
    out
}

/// Entries called `name`.
pub fn lookup(name: &str) -> Vec<&'static ApiDoc> {
    let name = name.trim().trim_end_matches("()");
    let name = name.rsplit('.').next().unwrap_or(name);
    api().into_iter().filter(|d| d.name == name).collect()
}

/// Distinct names, in table order.
pub fn names() -> Vec<&'static str> {
    let mut out: Vec<&str> = vec![];
    for d in api() {
        if !out.contains(&d.name) {
            out.push(d.name);
        }
    }
    out
}

/// Free functions (not methods or properties).
pub fn function_names() -> Vec<&'static str> {
    let mut out: Vec<&str> = vec![];
    for d in api().into_iter().filter(|d| !d.signature.contains('.')) {
        if !out.contains(&d.name) {
            out.push(d.name);
        }
    }
    out
}

/// Methods and properties (`Type.name`).
pub fn member_names() -> Vec<&'static str> {
    let mut out: Vec<&str> = vec![];
    for d in api().into_iter().filter(|d| d.signature.contains('.')) {
        if !out.contains(&d.name) {
            out.push(d.name);
        }
    }
    out
}

/// `:help NAME`.
pub fn help(name: &str) -> Option<String> {
    let hits = lookup(name);
    if hits.is_empty() {
        return None;
    }
    let mut s = String::new();
    for d in hits {
        s.push_str(&format!(
            "{}\n{}{}\n",
            d.signature,
            wrap(d.doc, HELP_WIDTH, "    "),
            wrap(&format!("e.g. {}", d.example), HELP_WIDTH, "    ")
        ));
    }
    Some(s)
}

/// Columns `:help` fills.
pub const HELP_WIDTH: usize = 80;

/// `:help` without a name: every signature, by group.
pub fn overview() -> String {
    let mut s = String::new();
    let mut group = "";
    for d in api() {
        if d.group != group {
            group = d.group;
            s.push_str(&format!("{group}:\n"));
        }
        s.push_str(&format!("  {}\n", d.signature));
    }
    s
}

/// The README's API reference (Markdown).
pub fn markdown() -> String {
    let mut s = String::new();
    let mut group = "";
    for d in api() {
        if d.group != group {
            group = d.group;
            s.push_str(&format!(
                "\n#### {group}\n\n| signature | what it does | example |\n|---|---|---|\n"
            ));
        }
        s.push_str(&format!(
            "| `{}` | {} | `{}` |\n",
            d.signature.replace('|', "\\|"),
            d.doc.replace('|', "\\|"),
            d.example.replace('|', "\\|")
        ));
    }
    s
}
