//! The shared test helpers ([`stilts_testing`]) and those that run the
//! `stilts` binary, whose path only this crate's tests know.
#![allow(dead_code)]

pub use stilts_testing::*;

/// Runs `stilts ARGS` in `dir`: (exit code, stdout, stderr).
pub fn stilts_in(dir: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stilts"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// A fresh folder holding a copy of the cluster tests' grid
/// (`tests/fixtures/tiny_grid.rhai`), and its `--set data=...`.
pub fn tiny_grid() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("tiny_grid.rhai"),
        dir.path().join("tiny_grid.rhai"),
    )
    .unwrap();
    (dir, format!("data={}", shared_data().display()))
}
