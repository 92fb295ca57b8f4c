//! Records the git commit stilts was built from (kept in every results
//! record beside the version), when built from a git checkout.
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_default();
    println!("cargo:rustc-env=STILTS_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves (only paths that exist: a missing one would
    // rerun this script on every build).
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) {
        let head = std::path::Path::new(&dir).join("HEAD");
        if head.exists() {
            println!("cargo:rerun-if-changed={}", head.display());
        }
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            let p = std::path::Path::new(&dir).join(r);
            if p.exists() {
                println!("cargo:rerun-if-changed={}", p.display());
            }
        }
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }
}
