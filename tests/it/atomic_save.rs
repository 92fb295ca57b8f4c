//! `Model.save` under a kill loop: a script saving two different models in
//! turn into one folder is killed (SIGKILL) at 30 moments; each time the
//! folder is absent or exactly one of the two models, never a mix, and a
//! later save cleans up what a kill left beside it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FILES: [&str; 4] = [
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
];

fn folder(dir: &Path) -> Option<Vec<Vec<u8>>> {
    if !dir.exists() {
        return None;
    }
    Some(
        FILES
            .iter()
            .map(|f| std::fs::read(dir.join(f)).unwrap_or_default())
            .collect(),
    )
}

#[test]
fn a_saved_model_folder_is_old_or_new_never_a_mix() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("s.rhai"),
        r#"
let a = tiny_model(#{text: ["one two three", "four five six"], vocab: 40, hidden: 16, layers: 1, heads: 2, ffn: 32, seed: 1, labels: ["a", "b"]});
let b = tiny_model(#{text: ["seven eight nine", "ten eleven"], vocab: 40, hidden: 16, layers: 1, heads: 2, ffn: 32, seed: 2, labels: ["c", "d"]});
a.save("A");
b.save("B");
print("ready");
let i = 0;
loop { if i % 2 == 0 { a.save("out"); } else { b.save("out"); } i += 1; }
"#,
    )
    .unwrap();
    let mut seen = (0, 0, 0);
    for round in 0..30u64 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stilts"))
            .current_dir(dir.path())
            .args(["run", "s.rhai", "--no-report", "--max-operations", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while !dir.path().join("B/config.json").exists() {
            assert!(start.elapsed() < Duration::from_secs(60));
            std::thread::sleep(Duration::from_millis(2));
        }
        // Kill at a moment that varies from round to round.
        std::thread::sleep(Duration::from_millis(5 + (round * 37) % 200));
        child.kill().unwrap();
        let _ = child.wait();
        let a = folder(&dir.path().join("A")).unwrap();
        let b = folder(&dir.path().join("B")).unwrap();
        match folder(&dir.path().join("out")) {
            None => seen.0 += 1,
            Some(f) if f == a => seen.1 += 1,
            Some(f) if f == b => seen.2 += 1,
            Some(_) => panic!("round {round}: out/ mixes the two models' files"),
        }
        if let Ok(entries) = std::fs::read_dir(dir.path().join("out")) {
            let names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect();
            assert!(
                names.iter().all(|n| FILES.contains(&n.as_str())),
                "round {round}: {names:?}"
            );
        }
    }
    assert!(seen.1 + seen.2 > 0, "{seen:?}");
    // A clean save afterwards leaves nothing beside the folder.
    std::fs::write(
        dir.path().join("t.rhai"),
        "let a = tiny_model(#{text: [\"one two\"], vocab: 30, hidden: 16, layers: 1, heads: 2, ffn: 32}); a.save(\"out\");",
    )
    .unwrap();
    let st = Command::new(env!("CARGO_BIN_EXE_stilts"))
        .current_dir(dir.path())
        .args(["--quiet", "run", "t.rhai", "--no-report"])
        .status()
        .unwrap();
    assert!(st.success());
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "left over: {names:?}");
}

#[test]
fn saving_over_a_folder_with_other_files_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("mine")).unwrap();
    std::fs::write(dir.path().join("mine/notes.txt"), "keep me").unwrap();
    std::fs::write(
        dir.path().join("s.rhai"),
        "let a = tiny_model(#{text: [\"one two\"], vocab: 30, hidden: 16, layers: 1, heads: 2, ffn: 32}); a.save(\"mine\");",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stilts"))
        .current_dir(dir.path())
        .args(["--quiet", "run", "s.rhai", "--no-report"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("notes.txt") && err.contains("folder of its own"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("mine/notes.txt")).unwrap(),
        "keep me"
    );
}
