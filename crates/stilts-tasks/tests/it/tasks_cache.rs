//! The feature cache: a rerun hits, a changed data file, tokenizer or
//! setting misses, a damaged entry is rebuilt, and the binary format keeps
//! every kind of feature.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use stilts_model::Tokenizer;
use stilts_tasks::cache::{decode, encode};
use stilts_tasks::{
    self as tasks, CacheStatus, Feature, FeatureCache, FeatureOptions, Label, ReadOptions,
    TextEncoder,
};

fn shared() -> PathBuf {
    PathBuf::from(crate::common::REPO)
        .join("..")
        .join("shared")
        .join("data")
}

fn enc() -> &'static TextEncoder {
    static E: OnceLock<TextEncoder> = OnceLock::new();
    E.get_or_init(|| TextEncoder::from_file(&shared().join("xlmr").join("tokenizer.json")).unwrap())
}

/// 300 XNLI dev pairs in a folder of their own.
fn small_xnli(dir: &Path) {
    let text = std::fs::read_to_string(shared().join("xnli").join("dev-fr.tsv")).unwrap();
    let head: String = text.lines().take(300).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join("dev-fr.tsv"), head).unwrap();
}

#[test]
fn cache_hits_on_rerun_and_misses_after_changes() {
    let data = tempfile::tempdir().unwrap();
    let cache_dir = tempfile::tempdir().unwrap();
    small_xnli(data.path());
    let cache = FeatureCache::new(cache_dir.path());
    let read = ReadOptions::default();
    let opts = FeatureOptions::new(64);
    let ds = tasks::load("xnli", data.path(), "dev", Some("fr"), &read).unwrap();

    let (f1, s1) = cache.features(&ds, enc(), &opts, &read).unwrap();
    assert_eq!(s1, CacheStatus::Miss);
    assert_eq!(f1.len(), 300);
    let files: Vec<_> = std::fs::read_dir(cache_dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert!(files[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("xnli-dev-"));

    // Rerun: a hit, the same features.
    let ds2 = tasks::load("xnli", data.path(), "dev", Some("fr"), &read).unwrap();
    let (f2, s2) = cache.features(&ds2, enc(), &opts, &read).unwrap();
    assert_eq!(s2, CacheStatus::Hit);
    assert_eq!(f1, f2);

    // Other settings: a miss (and its own entry).
    let (f3, s3) = cache
        .features(&ds2, enc(), &FeatureOptions::new(32), &read)
        .unwrap();
    assert_eq!(s3, CacheStatus::Miss);
    assert!(f3.iter().all(|f| f.len() <= 32));
    let limited = ReadOptions::default().with_first(100);
    let ds_lim = tasks::load("xnli", data.path(), "dev", Some("fr"), &limited).unwrap();
    assert_eq!(
        cache.features(&ds_lim, enc(), &opts, &limited).unwrap().1,
        CacheStatus::Miss
    );

    // The data file changes (one word): a miss, and the new text is in the features.
    let p = data.path().join("dev-fr.tsv");
    let text = std::fs::read_to_string(&p).unwrap();
    let first = text.lines().next().unwrap().to_string();
    let changed = text.replacen(&first, &first.replacen('\t', " Zanzibar\t", 1), 1);
    std::fs::write(&p, changed).unwrap();
    let ds3 = tasks::load("xnli", data.path(), "dev", Some("fr"), &read).unwrap();
    let (f4, s4) = cache.features(&ds3, enc(), &opts, &read).unwrap();
    assert_eq!(s4, CacheStatus::Miss);
    assert_ne!(f4[0], f1[0]);
    assert_eq!(&f4[1..], &f1[1..]);
    assert_eq!(
        cache.features(&ds3, enc(), &opts, &read).unwrap().1,
        CacheStatus::Hit
    );

    // Another tokenizer: a miss.
    let texts: Vec<String> = (0..60)
        .map(|i| format!("le chat {} mange une pomme {}", i % 9, i))
        .collect();
    let tiny = Tokenizer::train_unigram(&texts, 80).unwrap();
    let tok_path = cache_dir.path().join("tiny-tokenizer.json");
    tiny.save(&tok_path).unwrap();
    let other = TextEncoder::from_file(&tok_path).unwrap();
    assert_ne!(other.fingerprint(), enc().fingerprint());
    assert_eq!(
        cache.features(&ds3, &other, &opts, &read).unwrap().1,
        CacheStatus::Miss
    );
    assert_eq!(
        cache.features(&ds3, &other, &opts, &read).unwrap().1,
        CacheStatus::Hit
    );

    // A damaged entry is rebuilt, not an error.
    for e in std::fs::read_dir(cache_dir.path()).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "feat") {
            let bytes = std::fs::read(&path).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        }
    }
    let (f5, s5) = cache.features(&ds3, enc(), &opts, &read).unwrap();
    assert_eq!((s5, f5), (CacheStatus::Miss, f4));

    // Caching off.
    assert_eq!(
        FeatureCache::disabled()
            .features(&ds3, enc(), &opts, &read)
            .unwrap()
            .1,
        CacheStatus::Off
    );
}

#[test]
fn binary_format_round_trips_every_label_kind() {
    let feats = vec![
        Feature {
            example: 0,
            rows: vec![vec![0, 5, 2]],
            label: Label::Class(2),
            offsets: vec![],
        },
        Feature {
            example: 1,
            rows: vec![vec![0, 5, 2], vec![0, 250001, 7, 2]],
            label: Label::None,
            offsets: vec![],
        },
        Feature {
            example: 2,
            rows: vec![vec![0, 9, 2, 2, 11, 2]],
            label: Label::Span { start: 4, end: 4 },
            offsets: vec![None, None, None, None, Some((3, 1_000_000)), None],
        },
        Feature {
            example: 3,
            rows: vec![vec![0, 1, 2]],
            label: Label::Tags(vec![-100, 1362, -100]),
            offsets: vec![],
        },
        Feature {
            example: 4,
            rows: vec![],
            label: Label::Class(0),
            offsets: vec![],
        },
    ];
    let key = "ab".repeat(32);
    let bytes = encode(&feats, &key);
    assert_eq!(decode(&bytes, &key).unwrap(), feats);
    // Another key, a truncated or padded file: no features.
    assert!(decode(&bytes, &"cd".repeat(32)).is_none());
    assert!(decode(&bytes[..bytes.len() - 1], &key).is_none());
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(decode(&longer, &key).is_none());
    assert!(decode(b"garbage", &key).is_none());
}

#[test]
fn default_dir_follows_stilts_cache() {
    // The only test here that reads the variable.
    std::env::set_var("STILTS_CACHE", "/tmp/some-stilts-cache");
    assert_eq!(
        FeatureCache::default_dir(),
        PathBuf::from("/tmp/some-stilts-cache/features")
    );
    std::env::remove_var("STILTS_CACHE");
    assert!(FeatureCache::default_dir().ends_with(".cache/stilts/features"));
}
