//! Plots a paper would print (issue 14, item 9), read back from their SVG:
//! plot_languages draws bars in the script's order in a colour-blind-safe
//! palette, an error bar on every bar, a dashed chance line, the legend
//! beside the chart; plot_gain puts parameters on a log x axis, one line
//! per intermediate task with 95% intervals, a heatmap of the gain per
//! language, and refuses the other nesting.

use std::collections::BTreeMap;

use stilts_script::values::{Comparison, LangScore, Scores};
use stilts_script::{Runtime, Settings};

const LANGS: [&str; 15] = [
    "ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh",
];

/// A mean of two seeds over 60 examples per language, `shift` in how many
/// more examples are right.
fn result(label: &str, shift: usize) -> Scores {
    let mut by_lang = BTreeMap::new();
    for (k, l) in LANGS.iter().enumerate() {
        let runs: Vec<Vec<bool>> = (0..2)
            .map(|s| {
                (0..60)
                    .map(|i| (i * 7 + k + s * 3) % 10 < 4 + shift || (s == 1 && i % (9 + k) == 0))
                    .collect()
            })
            .collect();
        let vals: Vec<f64> = runs
            .iter()
            .map(|r| 100.0 * r.iter().filter(|&&b| b).count() as f64 / 60.0)
            .collect();
        by_lang.insert(
            l.to_string(),
            LangScore {
                value: (vals[0] + vals[1]) / 2.0,
                n: 60,
                runs: vals,
                correct: runs,
                collapse: vec![],
            },
        );
    }
    Scores {
        label: label.into(),
        task: "xnli".into(),
        split: "test".into(),
        metric: "accuracy".into(),
        by_lang,
        chance: Some(100.0 / 3.0),
        params: None,
        cells: vec![],
        model_dirs: vec![],
    }
}

fn font() -> bool {
    [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).exists())
        || std::env::var("STILTS_FONT").is_ok()
}

fn runtime(dir: &std::path::Path) -> Runtime {
    let rt = Runtime::new(Settings {
        quiet: true,
        ..Default::default()
    });
    *rt.ctx.report_dir.borrow_mut() = Some(dir.to_path_buf());
    rt
}

/// The numbers of an attribute in every element of a kind (`<rect`).
fn attrs(svg: &str, element: &str, attr: &str) -> Vec<String> {
    svg.split(element)
        .skip(1)
        .filter_map(|e| {
            let e = e.split('>').next()?;
            let at = e.find(&format!(" {attr}=\""))? + attr.len() + 3;
            Some(e[at..].split('"').next()?.to_string())
        })
        .collect()
}

#[test]
fn language_bars_have_intervals_chance_and_a_legend_beside() {
    let dir = tempfile::tempdir().unwrap();
    let mut rt = runtime(dir.path());
    rt.scope.push("b", result("b", 0));
    rt.scope.push("s", result("s", 2));
    let path = dir.path().join("acc.svg");
    let _ = rt
        .eval(
            "p",
            &format!(
                r#"plot_languages(#{{"MNLI only": b, "SST-2 → MNLI": s}}, "{}", #{{interval: "seeds"}})"#,
                path.display()
            ),
        )
        .unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    if let Ok(keep) = std::env::var("STILTS_KEEP_PLOTS") {
        let png = dir.path().join("acc.png");
        let _ = rt.eval(
            "k",
            &format!(
                r#"plot_languages(#{{"MNLI only": b, "SST-2 → MNLI": s}}, "{}")"#,
                png.display()
            ),
        );
        let _ = std::fs::copy(&png, std::path::Path::new(&keep).join("acc.png"));
    }
    let fills = attrs(&svg, "<rect", "fill");
    let blue = fills
        .iter()
        .filter(|f| f.eq_ignore_ascii_case("#0072B2"))
        .count();
    let orange = fills
        .iter()
        .filter(|f| f.eq_ignore_ascii_case("#E69F00"))
        .count();
    // 15 languages and the average per series (+ a legend swatch).
    let legend = usize::from(font());
    assert_eq!(
        (blue, orange),
        (16 + legend, 16 + legend),
        "Okabe-Ito blue, orange: {fills:?}"
    );
    // Script order: the first series (MNLI only, blue) left of the second in each group.
    let xs = attrs(&svg, "<rect", "x");
    let first = |c: &str| {
        fills
            .iter()
            .zip(&xs)
            .find(|(f, _)| f.eq_ignore_ascii_case(c))
            .map(|(_, x)| x.parse::<f64>().unwrap())
            .unwrap()
    };
    assert!(first("#0072B2") < first("#E69F00"));
    // An error bar (a stem and two caps) on each of the 32 bars, and the
    // dashed chance line: black strokes.
    let black = attrs(&svg, "<polyline", "stroke")
        .iter()
        .filter(|s| s.as_str() == "#000000")
        .count();
    assert!(
        black >= 32 * 3 + 10,
        "error bars and chance dashes: {black}"
    );
    if font() {
        assert!(
            svg.contains("chance (33.3)"),
            "the chance line is in the legend"
        );
        // The legend is beside the chart: its swatches right of every bar.
        let bar_right = fills
            .iter()
            .zip(&xs)
            .zip(attrs(&svg, "<rect", "width"))
            .filter(|((f, _), _)| f.eq_ignore_ascii_case("#0072B2"))
            .map(|((_, x), w)| x.parse::<f64>().unwrap() + w.parse::<f64>().unwrap())
            .collect::<Vec<_>>();
        let legend_x = bar_right.iter().copied().fold(0.0, f64::max);
        let bars_end = bar_right[..bar_right.len() - 1]
            .iter()
            .copied()
            .fold(0.0, f64::max);
        assert!(
            legend_x > bars_end + 20.0,
            "legend at {legend_x}, bars end at {bars_end}"
        );
        assert!(svg.contains("error bars: 95% CI"), "what the bars are");
    }
}

#[test]
fn gain_against_parameters_one_line_per_task_and_a_heatmap() {
    let dir = tempfile::tempdir().unwrap();
    let mut rt = runtime(dir.path());
    let base = result("base", 0);
    for (name, shift) in [
        ("c0", 1),
        ("c1", 2),
        ("c2", 3),
        ("d0", 1),
        ("d1", 1),
        ("d2", 0),
    ] {
        rt.scope
            .push(name, Comparison::new(&base, &result("x", shift)).unwrap());
    }
    let path = dir.path().join("gain.svg");
    let _ = rt.eval(
        "g",
        &format!(
            r#"plot_gain(#{{sst2: #{{"xlmr-base": c0, "xlmr-large": c1, "mine": c2}}, squad: #{{"xlmr-base": d0, "xlmr-large": d1, "mine": d2}}}}, "{}", #{{params: #{{mine: 3.5e9}}}})"#,
            path.display()
        ),
    )
    .unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    let strokes = attrs(&svg, "<polyline", "stroke");
    for c in ["#0072B2", "#E69F00"] {
        assert!(
            strokes.iter().any(|s| s.eq_ignore_ascii_case(c)),
            "a line per task in {c}: {strokes:?}"
        );
    }
    // Heatmap: 16 rows (15 languages and avg) x 6 columns (task, size),
    // cells of one size.
    let ws = attrs(&svg, "<rect", "width");
    let hs = attrs(&svg, "<rect", "height");
    let cells = ws
        .iter()
        .zip(&hs)
        .filter(|(w, h)| {
            let (w, h) = (w.parse::<f64>().unwrap(), h.parse::<f64>().unwrap());
            (30.0..300.0).contains(&w) && (10.0..100.0).contains(&h)
        })
        .count();
    assert_eq!(cells, 96, "16 x 6 heatmap cells");
    if std::env::var("STILTS_KEEP_PLOTS").is_ok() {
        let keep = std::path::PathBuf::from(std::env::var("STILTS_KEEP_PLOTS").unwrap());
        let png = dir.path().join("gain.png");
        let _ = rt.eval(
            "k",
            &format!(
                r#"plot_gain(#{{sst2: #{{"xlmr-base": c0, "xlmr-large": c1, "mine": c2}}, squad: #{{"xlmr-base": d0, "xlmr-large": d1, "mine": d2}}}}, "{}", #{{params: #{{mine: 3.5e9}}}})"#,
                png.display()
            ),
        );
        let _ = std::fs::copy(&png, keep.join("gain.png"));
        let _ = std::fs::copy(&path, keep.join("gain.svg"));
    }
    if font() {
        // A log axis of parameters: labels in 100M and 1B, and the sizes named.
        assert!(svg.contains("parameters (log scale)"), "x label");
        assert!(
            svg.contains("xlmr-large") && svg.contains("mine"),
            "sizes named"
        );
        assert!(
            svg.contains("200M") && svg.contains("1B"),
            "parameters as ticks"
        );
    }
    // The sweep's report module: a row per (size, task), the key columns
    // first; its plots turn the sweep's size → task nesting around.
    let v = rt
        .eval(
            "rep",
            &format!(
                r#"import "stilts/report" as rep;
let gains = #{{"xlmr-base": #{{sst2: c0, squad: d0}}, "xlmr-large": #{{sst2: c1, squad: d1}}}};
[rep::gain_table(gains).csv(), rep::gain_plots(gains, "{}").len()]"#,
                dir.path().display()
            ),
        )
        .unwrap()
        .into_array()
        .unwrap();
    let csv = v[0].clone().into_string().unwrap();
    assert!(
        csv.starts_with("size,intermediate,gain,ci_lo,ci_hi\nxlmr-base,"),
        "{csv}"
    );
    assert_eq!(
        v[1].as_int().unwrap(),
        4,
        "two figures of the sweep, one per task"
    );
    // The other nesting, size → task → Comparison, is refused, and so is
    // a size stilts cannot count.
    let e = rt
        .eval(
            "n",
            r#"plot_gain(#{"xlmr-base": #{sst2: c0, squad: d0}}, "n.svg")"#,
        )
        .unwrap_err();
    assert!(e.message.contains("swap the two levels"), "{e}");
    let e = rt
        .eval("u", r#"plot_gain(#{"mine": c0, "xlmr-base": c1}, "u.svg")"#)
        .unwrap_err();
    assert!(e.message.contains("params"), "{e}");
}

/// Two seeds a cell: the default draws each seed as a dot over the mean
/// and says why (an interval from two seeds uses t = 12.7); `interval`
/// picks the seed-aware or the examples-only interval instead; anything
/// else is an error that lists the choices.
#[test]
fn with_two_seeds_the_seeds_are_drawn_as_points_and_the_figure_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut rt = runtime(dir.path());
    rt.scope.push("b", result("b", 0));
    rt.scope.push("s", result("s", 2));
    rt.scope.push(
        "c0",
        Comparison::new(&result("b", 0), &result("s", 2)).unwrap(),
    );
    rt.scope.push(
        "c1",
        Comparison::new(&result("b", 0), &result("s", 1)).unwrap(),
    );
    let draw = |rt: &mut Runtime, call: &str, file: &str| -> String {
        let path = dir.path().join(file);
        rt.eval("p", &call.replace("PATH", &path.display().to_string()))
            .unwrap();
        std::fs::read_to_string(&path).unwrap()
    };
    let circles = |svg: &str| svg.matches("<circle").count();
    let bars = |svg: &str| {
        attrs(svg, "<polyline", "stroke")
            .iter()
            .filter(|s| s.as_str() == "#000000")
            .count()
    };
    let points = draw(
        &mut rt,
        r#"plot_languages(#{base: b, stilts: s}, "PATH")"#,
        "p.svg",
    );
    let seeds = draw(
        &mut rt,
        r#"plot_languages(#{base: b, stilts: s}, "PATH", #{interval: "seeds"})"#,
        "s.svg",
    );
    let examples = draw(
        &mut rt,
        r#"plot_languages(#{base: b, stilts: s}, "PATH", #{interval: "examples"})"#,
        "e.svg",
    );
    // 16 bars a series, two seeds each: 64 dots, and no error bars.
    assert_eq!(circles(&points), 64, "a dot per seed per bar");
    assert_eq!(circles(&seeds), 0);
    assert!(
        bars(&seeds) >= bars(&points) + 32 * 3,
        "a stem and two caps a bar: {} against {}",
        bars(&seeds),
        bars(&points)
    );
    assert!(bars(&examples) >= bars(&points) + 32 * 3);
    // The examples-only interval is the narrower one (t = 12.7 with two seeds).
    assert_ne!(seeds, examples);
    if font() {
        assert!(
            points.contains("each seed"),
            "the figure says what the dots are"
        );
        assert!(points.contains("12.7"), "and why");
        assert!(examples.contains("examples alone"));
    }
    // The gain figure and the scaling figure take it too.
    let gain = draw(
        &mut rt,
        r#"plot_gain(#{"xlmr-base": c0, "xlmr-large": c1}, "PATH")"#,
        "g.svg",
    );
    assert!(circles(&gain) >= 2 * 3, "two means and four seeds");
    let gain_seeds = draw(
        &mut rt,
        r#"plot_gain(#{"xlmr-base": c0, "xlmr-large": c1}, "PATH", #{interval: "seeds"})"#,
        "gs.svg",
    );
    // Seeds mode: the two means and the two error bars (plotters marks an
    // error bar's centre with a circle too); points mode: the four seeds
    // in their place.
    let hollow = |svg: &str| {
        attrs(svg, "<circle", "fill")
            .iter()
            .filter(|f| f.as_str() == "none")
            .count()
    };
    assert_eq!(circles(&gain) - circles(&gain_seeds), 2, "{gain}");
    assert_eq!(
        (hollow(&gain), hollow(&gain_seeds)),
        (4, 2),
        "four hollow seed dots; two error bar centres"
    );
    let scaling = draw(
        &mut rt,
        r#"plot_scaling(#{none: #{"xlmr-base": b, "xlmr-large": s}}, "PATH")"#,
        "sc.svg",
    );
    let scaling_seeds = draw(
        &mut rt,
        r#"plot_scaling(#{none: #{"xlmr-base": b, "xlmr-large": s}}, "PATH", #{interval: "seeds"})"#,
        "scs.svg",
    );
    assert_eq!(
        circles(&scaling) - circles(&scaling_seeds),
        2,
        "four seeds for two bars"
    );
    for call in [
        r#"plot_languages(#{base: b}, "x.svg", #{interval: "sd"})"#,
        r#"plot_gain(#{"xlmr-base": c0}, "x.svg", #{interval: 1})"#,
        r#"plot_scaling(#{none: #{"xlmr-base": b}}, "x.svg", #{interval: "bootstrap"})"#,
    ] {
        let e = rt.eval("bad", call).unwrap_err();
        assert!(
            e.message.contains("`interval` takes \"seeds\"") && e.message.contains("\"points\""),
            "{call}: {e}"
        );
    }
}

/// `.pdf` writes a one-page PDF of the same drawing (svg2pdf), the text in
/// the plots' font, embedded; an unknown extension is an error naming the
/// three that work.
#[test]
fn a_figure_saved_as_pdf_is_a_pdf_with_its_font() {
    let dir = tempfile::tempdir().unwrap();
    let mut rt = runtime(dir.path());
    rt.scope.push("b", result("b", 0));
    rt.scope.push("s", result("s", 2));
    let path = dir.path().join("acc.pdf");
    rt.eval(
        "p",
        &format!(
            r#"plot_languages(#{{base: b, stilts: s}}, "{}")"#,
            path.display()
        ),
    )
    .unwrap();
    let pdf = std::fs::read(&path).unwrap();
    assert!(pdf.starts_with(b"%PDF-"), "a PDF");
    assert_eq!(
        pdf.windows(b"/Type /Page\n".len())
            .filter(|w| w.starts_with(b"/Type /Page") && !w.starts_with(b"/Type /Pages"))
            .count()
            .min(1),
        1,
        "a page"
    );
    if font() {
        let has = |needle: &[u8]| pdf.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"/FontFile"), "the font embedded");
    }
    let e = rt
        .eval("x", r#"plot_languages(#{base: b}, "acc.jpg")"#)
        .unwrap_err();
    assert!(e.message.contains(".png, .svg or .pdf"), "{e}");
}
