//! The Tatoeba reader: XTREME's two-letter codes mapped to LASER's files,
//! sentence pairs by line, all 36 languages by default; ragged,
//! non-UTF-8 and blank lines are errors naming file and line (or skipped
//! pairs under `skip_bad_lines`).

use std::path::Path;

use stilts_tasks::{open, Example, ReadOptions, Selection, TaskSource};

fn source(data: &Path) -> TaskSource {
    TaskSource::Builtin {
        name: "tatoeba".into(),
        data: data.to_path_buf(),
    }
}

fn sel(langs: Option<&[&str]>, read: ReadOptions) -> Selection {
    Selection {
        split: "test".into(),
        languages: langs.map(|l| l.iter().map(|s| s.to_string()).collect()),
        read,
        ..Selection::default()
    }
}

#[test]
fn the_36_xtreme_languages_are_read_from_laser_files_as_pairs() {
    let data = crate::common::shared_data().join("tatoeba");
    let t = open(&source(&data), &sel(None, ReadOptions::default())).unwrap();
    assert_eq!(t.parts.len(), 36);
    let n: Vec<(String, usize)> = t
        .parts
        .iter()
        .map(|d| (d.subset.clone().unwrap(), d.len()))
        .collect();
    // The sizes SOURCES.md lists: 1,000 pairs but for eight languages.
    for (l, k) in &n {
        let want = match l.as_str() {
            "jv" => 205,
            "ka" => 746,
            "kk" => 575,
            "ml" => 687,
            "sw" => 390,
            "ta" => 307,
            "te" => 234,
            "th" => 548,
            _ => 1000,
        };
        assert_eq!(*k, want, "{l}");
    }
    let zh = t
        .parts
        .iter()
        .find(|d| d.subset.as_deref() == Some("zh"))
        .unwrap();
    assert!(
        zh.files[0].ends_with("tatoeba.cmn-eng.cmn")
            && zh.files[1].ends_with("tatoeba.cmn-eng.eng")
    );
    let de = std::fs::read_to_string(data.join("tatoeba.deu-eng.deu")).unwrap();
    let en = std::fs::read_to_string(data.join("tatoeba.deu-eng.eng")).unwrap();
    let t = open(
        &source(&data),
        &sel(Some(&["de"]), ReadOptions::default().with_first(5)),
    )
    .unwrap();
    let d = &t.parts[0];
    assert_eq!(d.len(), 5);
    match &d.examples[2] {
        Example::Text {
            id,
            line,
            a,
            b,
            label,
        } => {
            assert_eq!((id.as_str(), *line, label), ("de:3", 3, &None));
            assert_eq!(a, de.lines().nth(2).unwrap().trim());
            assert_eq!(b.as_deref(), Some(en.lines().nth(2).unwrap().trim()));
        }
        other => panic!("{other:?}"),
    }
    // A language XTREME's Tatoeba does not have.
    let e = open(&source(&data), &sel(Some(&["deu"]), ReadOptions::default()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no language `deu`") && e.contains("name it `de`") && e.contains("af, ar, bg"),
        "{e}"
    );
    assert!(stilts_tasks::layout("tatoeba").unwrap().contains("de deu"));
}

#[test]
fn ragged_blank_and_non_utf8_lines_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let put = |name: &str, bytes: &[u8]| std::fs::write(p.join(name), bytes).unwrap();
    put("tatoeba.deu-eng.deu", b"eins\nzwei\ndrei\n");
    put("tatoeba.deu-eng.eng", b"one\ntwo\n");
    let de = Some(&["de"][..]);
    let e = open(&source(p), &sel(de, ReadOptions::default()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tatoeba.deu-eng.deu:3") && e.contains("ends after 2 lines"),
        "{e}"
    );
    // Ragged is an error even when bad lines are skipped.
    assert!(open(&source(p), &sel(de, ReadOptions::skip_bad_lines())).is_err());
    put("tatoeba.deu-eng.eng", b"one\n \nthree\n");
    let e = open(&source(p), &sel(de, ReadOptions::default()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tatoeba.deu-eng.eng:2") && e.contains("blank"),
        "{e}"
    );
    put("tatoeba.deu-eng.eng", b"one\ntw\xffo\nthree\n");
    let e = open(&source(p), &sel(de, ReadOptions::default()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tatoeba.deu-eng.eng:2") && e.contains("UTF-8"),
        "{e}"
    );
    // Skipped: the pair goes, the others keep their lines.
    let t = open(&source(p), &sel(de, ReadOptions::skip_bad_lines())).unwrap();
    let d = &t.parts[0];
    assert_eq!(d.skipped.bad_lines, 1);
    let lines: Vec<usize> = d.examples.iter().map(Example::line).collect();
    assert_eq!(lines, [1, 3]);
    // Training data it has none.
    let e = open(
        &source(p),
        &Selection {
            split: "train".into(),
            ..sel(de, ReadOptions::default())
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no split `train`") && e.contains("test"), "{e}");
}
