//! The house's rules, checked on the sources: no two modules of a crate
//! import each other in a loop (`crate::a` in `b` and `crate::b` in `a`,
//! or a longer ring). A module may use its parent (`super::` from a child
//! file is part of one concept split over files); siblings and cousins may
//! only depend one way. Layers across crates are enforced by cargo itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under `src`: `a/b.rs` and `a/b/mod.rs` are
/// `["a", "b"]`; `lib.rs` and `main.rs` are the root, `[]`.
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("lib" | "main" | "mod")
    ) {
        parts.pop();
    }
    parts
}

/// Paths after `prefix` (`crate::` or `super::`) in code (comments
/// dropped); a group `a::{b, c::d}` gives `a::b` and `a::c::d` (one level of
/// braces, which is all `rustfmt` leaves in a `use` of this tree).
fn paths_after<'a>(code: &'a str, prefix: &str) -> Vec<Vec<&'a str>> {
    let is_path = |c: char| c.is_alphanumeric() || c == '_' || c == ':';
    let mut out = vec![];
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        let before = rest[..i].chars().last();
        let after = &rest[i + prefix.len()..];
        rest = after;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let end = after.find(|c: char| !is_path(c)).unwrap_or(after.len());
        let head: Vec<&str> = after[..end].split("::").filter(|s| !s.is_empty()).collect();
        match (after[end..].starts_with('{'), after[end..].find('}')) {
            (true, Some(close)) => {
                for item in after[end + 1..end + close].split(',') {
                    let item = item.trim().split(" as ").next().unwrap_or("");
                    let mut p = head.clone();
                    p.extend(item.split("::").filter(|s| !s.is_empty() && *s != "self"));
                    out.push(p);
                }
            }
            _ => out.push(head),
        }
    }
    out
}

fn loops_in(src: &Path) -> Vec<Vec<String>> {
    let mut files = vec![];
    rust_files(src, &mut files);
    let mods: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|f| (module_of(src, f), f.clone()))
        .collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (m, f) in &mods {
        let text = std::fs::read_to_string(f).unwrap();
        let code: String = text
            .lines()
            .map(|l| l.split("//").next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let is_dir_module = f.ends_with("mod.rs") || f.ends_with("lib.rs");
        let mut deps = BTreeSet::new();
        let mut add = |base: Vec<String>, path: &[&str]| {
            for k in (1..=path.len()).rev() {
                let mut cand = base.clone();
                cand.extend(path[..k].iter().map(|s| s.to_string()));
                if mods.contains_key(&cand) {
                    deps.insert(cand);
                    return;
                }
            }
        };
        for p in paths_after(&code, "crate::") {
            add(vec![], &p);
        }
        let parent: Vec<String> = if is_dir_module {
            m.clone()
        } else {
            m[..m.len().saturating_sub(1)].to_vec()
        };
        for p in paths_after(&code, "super::") {
            add(parent.clone(), &p);
        }
        // A module's use of its ancestors (the crate root, its parent) is
        // not an edge: the parent declares the child.
        deps.retain(|d| d != m && !m.starts_with(d));
        edges.insert(m.clone(), deps);
    }
    // Rings: strongly connected components of more than one module.
    let mut rings = vec![];
    let keys: Vec<Vec<String>> = edges.keys().cloned().collect();
    let reach = |from: &Vec<String>| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(v) = todo.pop() {
            for w in edges.get(&v).into_iter().flatten() {
                if seen.insert(w.clone()) {
                    todo.push(w.clone());
                }
            }
        }
        seen
    };
    let all: BTreeMap<_, _> = keys.iter().map(|k| (k.clone(), reach(k))).collect();
    let mut done = BTreeSet::new();
    for k in &keys {
        if done.contains(k) || !all[k].contains(k) {
            continue;
        }
        let ring: Vec<String> = keys
            .iter()
            .filter(|o| all[k].contains(*o) && all[*o].contains(k))
            .map(|o| {
                done.insert(o.clone());
                o.join("::")
            })
            .collect();
        rings.push(ring);
    }
    rings
}

#[test]
fn no_two_modules_import_each_other_in_a_loop() {
    let root = Path::new(crate::common::REPO);
    let mut found = vec![];
    for src in [
        "src",
        "crates/stilts-model/src",
        "crates/stilts-tasks/src",
        "crates/stilts-protocol/src",
        "crates/stilts-script/src",
        "crates/stilts-testing/src",
    ] {
        for ring in loops_in(&root.join(src)) {
            found.push(format!("{src}: {}", ring.join(" -> ")));
        }
    }
    assert!(found.is_empty(), "import loops:\n{}", found.join("\n"));
}

#[test]
fn the_loop_check_finds_a_loop() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\n").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::b::B;\npub struct A;\n").unwrap();
    std::fs::write(src.join("b.rs"), "use super::a::A; // c\npub struct B;\n").unwrap();
    assert_eq!(loops_in(src), vec![vec!["a".to_string(), "b".to_string()]]);
    std::fs::write(src.join("b.rs"), "pub struct B; // crate::a::A\n").unwrap();
    assert!(loops_in(src).is_empty());
    // A `use` group counts each of its members.
    std::fs::write(src.join("b.rs"), "use crate::{a::A, c};\npub struct B;\n").unwrap();
    assert_eq!(loops_in(src), vec![vec!["a".to_string(), "b".to_string()]]);
}

/// The relative links of `text` (Markdown `](target)`), without anchors;
/// web addresses left out.
fn relative_links(text: &str) -> Vec<String> {
    text.split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .map(|t| t.split('#').next().unwrap_or("").trim().to_string())
        .filter(|t| !t.is_empty() && !t.contains("://") && !t.starts_with("mailto:"))
        .collect()
}

/// Every relative link of the README and of `docs/` names a file or
/// folder that exists (the manual moved into `docs/`; a link left behind
/// would point nowhere).
#[test]
fn every_relative_link_of_the_docs_resolves() {
    let root = Path::new(crate::common::REPO);
    let mut pages = vec![root.join("README.md"), root.join("benches/README.md")];
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            pages.push(p);
        }
    }
    assert!(pages.len() > 5, "{pages:?}");
    let mut broken = vec![];
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for link in relative_links(&text) {
            let target = page.parent().unwrap().join(&link);
            if !target.exists() {
                broken.push(format!("{}: {link}", page.display()));
            }
        }
    }
    assert!(broken.is_empty(), "links to nothing: {broken:#?}");
    // The check can fail: a link to a missing page is found.
    assert_eq!(
        relative_links("see [x](docs/nope.md#a) and [y](https://e.org)"),
        ["docs/nope.md"]
    );
}
