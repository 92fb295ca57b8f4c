//! Plots (plotters): score per language, score and gain vs model size,
//! training curves. PNG, SVG or PDF (the SVG through svg2pdf) by the
//! file's extension. Text needs a TrueType font: `$STILTS_FONT`, or
//! one of the usual system fonts; without one the plot is drawn without
//! text and a note says so.

use super::doc::{entry, ApiDoc};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::ErrorBar;
use plotters::prelude::*;
use rhai::{Dynamic, Engine, Map};

use super::{rerr, RResult};
use crate::context::{Ctx, Item};
use crate::values::{Comparison, Scores};
use stilts_protocol::stats;

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/Library/Fonts/Arial.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// The font registered for plots' text (once), or `None` when none was
/// found; its bytes also go into a PDF.
fn font() -> Option<&'static [u8]> {
    static FONT: std::sync::OnceLock<Option<&'static [u8]>> = std::sync::OnceLock::new();
    *FONT.get_or_init(|| {
        let mut cands: Vec<PathBuf> = std::env::var("STILTS_FONT")
            .ok()
            .map(PathBuf::from)
            .into_iter()
            .collect();
        cands.extend(FONT_PATHS.iter().map(PathBuf::from));
        for p in cands {
            if let Ok(bytes) = std::fs::read(&p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Some(bytes);
                }
            }
        }
        None
    })
}

/// Registers a font once; false when none was found.
fn font_ready() -> bool {
    font().is_some()
}

/// A figure drawn as SVG turned into a one-page PDF (svg2pdf), its text
/// set in the plots' font (embedded, subset).
fn pdf_of_svg(svg: &str) -> Result<Vec<u8>, String> {
    use svg2pdf::usvg;
    let mut options = usvg::Options::default();
    if let Some(bytes) = font() {
        let db = options.fontdb_mut();
        db.load_font_data(bytes.to_vec());
        // plotters names the generic family; point it at the font loaded.
        let family = db
            .faces()
            .next()
            .and_then(|f| f.families.first())
            .map(|f| f.0.clone());
        if let Some(family) = family {
            db.set_sans_serif_family(family);
        }
    }
    let tree = usvg::Tree::from_str(svg, &options).map_err(|x| format!("reading the SVG: {x}"))?;
    svg2pdf::to_pdf(
        &tree,
        svg2pdf::ConversionOptions::default(),
        svg2pdf::PageOptions::default(),
    )
    .map_err(|x| format!("writing the PDF: {x:?}"))
}

type DrawResult = Result<(), String>;

fn e<E: std::fmt::Debug>(x: E) -> String {
    format!("{x:?}")
}

/// Okabe & Ito's colour-blind-safe palette (yellow last: it is faint on
/// white).
const PALETTE: &[RGBColor] = &[
    RGBColor(0, 114, 178),   // blue
    RGBColor(230, 159, 0),   // orange
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
    RGBColor(240, 228, 66),  // yellow
];

fn colour(j: usize) -> RGBColor {
    PALETTE[j % PALETTE.len()]
}

/// One entry of a legend drawn beside a chart (never over it).
enum Key {
    Bar(RGBColor),
    Line(RGBColor),
    Dashed,
}

/// A legend in its own area: a swatch and a name a line.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    entries: &[(String, Key)],
) -> Result<i32, String> {
    let style = ("sans-serif", 15).into_font();
    let mut y = 40;
    if !title.is_empty() {
        area.draw(&Text::new(title.to_string(), (5, y), style.clone()))
            .map_err(e)?;
        y += 24;
    }
    for (name, key) in entries {
        match key {
            Key::Bar(c) => area
                .draw(&Rectangle::new([(5, y + 2), (19, y + 14)], c.filled()))
                .map_err(e)?,
            Key::Line(c) => area
                .draw(&PathElement::new(
                    vec![(3, y + 8), (21, y + 8)],
                    c.stroke_width(3),
                ))
                .map_err(e)?,
            Key::Dashed => {
                for x in [3, 11] {
                    area.draw(&PathElement::new(
                        vec![(x, y + 8), (x + 6, y + 8)],
                        BLACK.stroke_width(2),
                    ))
                    .map_err(e)?;
                }
            }
        }
        area.draw(&Text::new(name.clone(), (27, y), style.clone()))
            .map_err(e)?;
        y += 22;
    }
    Ok(y)
}

/// A note wrapped to `width` characters under a legend that ends at `y`.
fn draw_note<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    y: i32,
    note: &str,
    width: usize,
) -> DrawResult {
    let note = stilts_model::util::wrap(note, width, "");
    for (i, l) in note.lines().enumerate() {
        area.draw(&Text::new(
            l.to_string(),
            (5, y + 14 + 18 * i as i32),
            ("sans-serif", 13).into_font(),
        ))
        .map_err(e)?;
    }
    Ok(())
}

/// A dashed horizontal line at `y` from `x0` to `x1`.
fn dashed(x0: f64, x1: f64, y: f64) -> impl Iterator<Item = PathElement<(f64, f64)>> {
    let n = 60;
    let step = (x1 - x0) / n as f64;
    (0..n).step_by(2).map(move |i| {
        let a = x0 + i as f64 * step;
        PathElement::new(vec![(a, y), (a + step, y)], BLACK.mix(0.7).stroke_width(2))
    })
}

/// The interval method of the results' rows, for a caption.
fn interval_note(series: &[(String, Scores)]) -> String {
    let methods = series.iter().flat_map(|(_, s)| {
        s.by_lang
            .keys()
            .map(String::as_str)
            .chain(["avg"])
            .filter_map(|l| s.estimate(l).and_then(|e| e.ci.and(e.method)))
            .collect::<Vec<_>>()
    });
    methods_note(methods, "bar")
}

/// "error bars: METHOD" for the interval methods a figure draws, or that
/// they differ by `what` (bar, point).
fn methods_note(methods: impl Iterator<Item = stats::IntervalMethod>, what: &str) -> String {
    let mut ms: Vec<&'static str> = vec![];
    for m in methods {
        let d = m.describe();
        if !ms.contains(&d) {
            ms.push(d);
        }
    }
    match ms.as_slice() {
        [] => "no intervals (no per-example scores)".into(),
        [m] => format!("error bars: {m}"),
        _ => format!("error bars: 95% CI (methods differ by {what})"),
    }
}

/// The option keys of each plot (what `stilts check` checks too).
pub(crate) const LANGUAGES_KEYS: &[&str] = &["interval"];
pub(crate) const GAIN_KEYS: &[&str] = &["params", "interval"];
pub(crate) const SCALING_KEYS: &[&str] = &["params", "interval"];

/// What a figure's marks of uncertainty show: the plots' `interval`
/// option.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Shown {
    /// The 95% interval with seed variance in it (over examples alone for a
    /// cell of one seed: the only one there is).
    Seeds,
    /// The 95% interval over test examples alone, seeds fixed.
    Examples,
    /// Each seed's value as a dot over the mean (a cell of one seed: its
    /// interval over examples).
    Points,
}

/// The `interval` option of a plot, and whether it was the default. The
/// default is `Points` where a cell of the figure has exactly two seeds (a
/// 95% interval from two seeds uses t = 12.7 and spans most of the axis,
/// hiding every effect), else `Seeds`.
fn shown(who: &str, opts: &Map, seeds: impl Iterator<Item = usize>) -> RResult<(Shown, bool)> {
    let Some(v) = opts.get("interval") else {
        let two = seeds.into_iter().any(|k| k == 2);
        return Ok((if two { Shown::Points } else { Shown::Seeds }, true));
    };
    let got = v.clone().into_string().ok();
    let s = match got.as_deref() {
        Some("seeds") => Shown::Seeds,
        Some("examples") => Shown::Examples,
        Some("points") => Shown::Points,
        _ => {
            return Err(rerr(format!(
                "{who}: `interval` takes \"seeds\" (the 95% CI with seed variance), \"examples\" (the 95% CI over examples alone) or \"points\" (each seed's value over the mean); got {}",
                got.map_or_else(|| crate::values::type_name(v).to_string(), |g| format!("\"{g}\""))
            )))
        }
    };
    Ok((s, false))
}

/// One plotted value and its marks: the interval drawn as an error bar
/// (none in `Points` mode where there are seeds to draw) and the seeds'
/// own values (in `Points` mode only).
struct Mark {
    value: f64,
    ci: Option<(f64, f64)>,
    points: Vec<f64>,
}

impl Mark {
    /// A value with its seed-aware interval, examples-only interval and
    /// per-seed values, as `shown` draws it.
    fn new(
        shown: Shown,
        value: f64,
        ci: Option<(f64, f64)>,
        example_ci: Option<(f64, f64)>,
        seeds: Vec<f64>,
    ) -> Mark {
        match shown {
            Shown::Seeds => Mark {
                value,
                ci,
                points: vec![],
            },
            Shown::Examples => Mark {
                value,
                ci: example_ci.or(if seeds.len() <= 1 { ci } else { None }),
                points: vec![],
            },
            Shown::Points if seeds.len() >= 2 => Mark {
                value,
                ci: None,
                points: seeds,
            },
            Shown::Points => Mark {
                value,
                ci,
                points: vec![],
            },
        }
    }

    /// A Result's score for `lang` (`"avg"` for the mean over languages).
    fn of_scores(shown: Shown, s: &Scores, lang: &str) -> Option<Mark> {
        let value = if lang == "avg" {
            if s.by_lang.is_empty() {
                return None;
            }
            s.avg()
        } else {
            s.by_lang.get(lang)?.value
        };
        let e = s.estimate(lang);
        let seeds = s.seed_data(lang).map(|d| d.0).unwrap_or_default();
        Some(Mark::new(
            shown,
            value,
            e.as_ref().and_then(|e| e.ci),
            e.as_ref().and_then(|e| e.example_ci),
            seeds,
        ))
    }

    /// A Comparison's gain for `lang` (`"avg"` for the average); the
    /// points are the per-seed gains (seeds paired by number).
    fn of_gain(shown: Shown, c: &Comparison, lang: &str) -> Option<Mark> {
        let d = if lang == "avg" {
            &c.avg
        } else {
            c.by_lang.get(lang)?
        };
        Some(Mark::new(
            shown,
            d.delta,
            d.ci,
            d.example_ci,
            c.seed_gains(lang),
        ))
    }

    /// The lowest and highest thing drawn.
    fn extent(&self) -> impl Iterator<Item = f64> + '_ {
        [Some(self.value), self.ci.map(|c| c.0), self.ci.map(|c| c.1)]
            .into_iter()
            .flatten()
            .chain(self.points.iter().copied())
            .filter(|v| v.is_finite())
    }
}

/// Every value a figure's marks draw (for its axis).
fn extents(marks: &[Vec<Option<Mark>>]) -> Vec<f64> {
    marks
        .iter()
        .flatten()
        .flatten()
        .flat_map(|m| m.extent().collect::<Vec<_>>())
        .collect()
}

/// What the marks are, for a figure's note: `methods` describes the
/// seed-aware intervals (the kinds the figure's cells have).
fn shown_note(shown: Shown, defaulted: bool, methods: String) -> String {
    match shown {
        Shown::Seeds => methods,
        Shown::Examples => {
            "error bars: 95% CI over test examples alone (seeds fixed: seed variance not in it)"
                .into()
        }
        Shown::Points => format!(
            "dots: each seed's value; the mark: their mean; a cell of one seed: its 95% CI over examples{}",
            if defaulted {
                " (shown as points: an interval from 2 seeds uses t = 12.7; interval: \"seeds\" draws it)"
            } else {
                ""
            }
        ),
    }
}

/// A number for an axis: no decimals for a whole number (`80`, not
/// `80.0`), else up to two without trailing zeros.
fn tick(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{:.0}", v.round())
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The ticks of a log10 axis from `xlo` to `xhi`: 1, 2 and 5 of each
/// decade; where fewer than two of those fall in range (sizes within a
/// factor of a few), the sizes themselves (`at`, log10).
fn log_ticks(xlo: f64, xhi: f64, at: &[f64]) -> Vec<f64> {
    let grid: Vec<f64> = (xlo.floor() as i32..=xhi.ceil() as i32)
        .flat_map(|d| [1.0, 2.0, 5.0].map(|m| (m * 10f64.powi(d)).log10()))
        .filter(|t| (xlo..=xhi).contains(t))
        .collect();
    if grid.len() >= 2 {
        return grid;
    }
    let mut t: Vec<f64> = at.to_vec();
    t.sort_by(|a, b| a.total_cmp(b));
    t.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    t
}

/// The ticks of a log10(parameters) axis drawn by hand (plotters has no
/// log axis over a transformed coordinate): a faint line and a label each.
fn log_axis<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    area: &DrawingArea<DB, Shift>,
    ticks: &[f64],
    (ylo, yhi): (f64, f64),
    text: bool,
) -> DrawResult {
    for &t in ticks {
        chart
            .draw_series(LineSeries::new([(t, ylo), (t, yhi)], BLACK.mix(0.12)))
            .map_err(e)?;
        if text {
            // Backend pixels, made relative to the area drawn on.
            let (at, base) = (chart.backend_coord(&(t, ylo)), area.get_base_pixel());
            let at = (at.0 - base.0, at.1 - base.1);
            let style = ("sans-serif", 13).into_font().into_text_style(area).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Top,
                ),
            );
            area.draw(&Text::new(
                params_label(10f64.powf(t)),
                (at.0, at.1 + 6),
                style,
            ))
            .map_err(e)?;
        }
    }
    Ok(())
}

/// A parameter count as a tick label: `118M`, `1.2B`, `560k`.
fn params_label(p: f64) -> String {
    let (v, unit) = if p >= 1e9 {
        (p / 1e9, "B")
    } else if p >= 1e6 {
        (p / 1e6, "M")
    } else if p >= 1e3 {
        (p / 1e3, "k")
    } else {
        (p, "")
    };
    let s = if v >= 100.0 {
        format!("{v:.0}")
    } else {
        tick(&((v * 10.0).round() / 10.0))
    };
    format!("{s}{unit}")
}

/// Dots for the seeds of one mark at `x` (hollow, so a dot on the mean
/// still shows).
fn seed_dots<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    x: f64,
    m: &Mark,
    c: RGBColor,
) -> DrawResult {
    chart
        .draw_series(
            m.points
                .iter()
                .map(|&v| Circle::new((x, v), 4, c.mix(0.9).stroke_width(2))),
        )
        .map_err(e)?;
    Ok(())
}

/// Bars: one group per language and the average, one bar per labelled
/// result in the script's order, each with its 95% interval; a dashed
/// chance line; the legend beside the chart.
/// `plot_languages`: a figure of label → Result.
struct Languages {
    series: Vec<(String, Scores)>,
    shown: (Shown, bool),
}

impl Figure for Languages {
    const SIZE: (u32, u32) = (1000, 500);
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>, text: bool) -> DrawResult {
        draw_languages(root, &self.series, self.shown, text)
    }
}

fn draw_languages<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    series: &[(String, Scores)],
    (shown, defaulted): (Shown, bool),
    text: bool,
) -> DrawResult {
    root.fill(&WHITE).map_err(e)?;
    let mut langs: Vec<String> = vec![];
    for (_, s) in series {
        for l in s.by_lang.keys() {
            if !langs.contains(l) {
                langs.push(l.clone());
            }
        }
    }
    langs.sort();
    langs.push("avg".into());
    let marks: Vec<Vec<Option<Mark>>> = series
        .iter()
        .map(|(_, s)| langs.iter().map(|l| Mark::of_scores(shown, s, l)).collect())
        .collect();
    let chance = series.iter().find_map(|(_, s)| s.chance);
    let top = extents(&marks)
        .into_iter()
        .chain(chance)
        .fold(0.0f64, f64::max)
        .max(1.0);
    let top = (top * 1.08).min(100.0).max(top);
    let metric = series
        .first()
        .map(|(_, s)| s.metric.clone())
        .unwrap_or_default();
    let (chart_area, legend_area) = root.split_horizontally(root.dim_in_pixel().0 as i32 - 210);
    let mut b = ChartBuilder::on(&chart_area);
    b.margin(15);
    if text {
        let ns: Vec<usize> = series
            .iter()
            .flat_map(|(_, s)| s.by_lang.values().map(|v| v.n))
            .collect();
        let n = match (ns.iter().min(), ns.iter().max()) {
            (Some(a), Some(b)) if a == b => format!(" (n = {a} examples each)"),
            (Some(a), Some(b)) => format!(" (n = {a} to {b} examples each)"),
            _ => String::new(),
        };
        b.caption(format!("{metric} per language{n}"), ("sans-serif", 18))
            .x_label_area_size(35)
            .y_label_area_size(50);
    }
    let n = langs.len().max(1);
    let mut chart = b.build_cartesian_2d(0f64..n as f64, 0f64..top).map_err(e)?;
    if text {
        let l2 = langs.clone();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n * 2 + 1)
            .x_label_formatter(&move |x| {
                let i = (*x - 0.5).round();
                if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                    l2.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&tick)
            .y_desc(format!("{metric} (%)"))
            .draw()
            .map_err(e)?;
    }
    let k = series.len().max(1) as f64;
    let w = 0.8 / k;
    for (j, _) in series.iter().enumerate() {
        let c = colour(j);
        let mut bars = vec![];
        let mut errs = vec![];
        for (i, l) in langs.iter().enumerate() {
            let Some(m) = &marks[j][i] else { continue };
            let v = m.value;
            let x0 = i as f64 + 0.1 + j as f64 * w;
            let fill = if l == "avg" {
                c.filled()
            } else {
                c.mix(0.85).filled()
            };
            bars.push(Rectangle::new([(x0, 0.0), (x0 + w * 0.92, v)], fill));
            if let Some((lo, hi)) = m.ci {
                let (xm, cap) = (x0 + w * 0.46, w * 0.18);
                for seg in [
                    vec![(xm, lo), (xm, hi)],
                    vec![(xm - cap, lo), (xm + cap, lo)],
                    vec![(xm - cap, hi), (xm + cap, hi)],
                ] {
                    errs.push(PathElement::new(seg, BLACK.stroke_width(1)));
                }
            }
        }
        chart.draw_series(bars).map_err(e)?;
        chart.draw_series(errs).map_err(e)?;
        for (i, m) in marks[j].iter().enumerate() {
            if let Some(m) = m {
                seed_dots(&mut chart, i as f64 + 0.1 + (j as f64 + 0.46) * w, m, BLACK)?;
            }
        }
    }
    if let Some(c) = chance {
        chart.draw_series(dashed(0.0, n as f64, c)).map_err(e)?;
    }
    if text {
        let mut entries: Vec<(String, Key)> = series
            .iter()
            .enumerate()
            .map(|(j, (l, _))| (l.clone(), Key::Bar(colour(j))))
            .collect();
        if let Some(c) = chance {
            entries.push((format!("chance ({c:.1})"), Key::Dashed));
        }
        let y = draw_legend(&legend_area, "", &entries)?;
        // What the error bars are, wrapped under the legend.
        draw_note(
            &legend_area,
            y,
            &shown_note(shown, defaulted, interval_note(series)),
            28,
        )?;
    }
    root.present().map_err(e)
}

/// One intermediate task's gains: (size name, parameters, Comparison), by
/// parameters.
pub(crate) type GainLine = (String, Vec<(String, f64, Comparison)>);

/// A colour for a gain in points on a diverging scale, orange (a loss)
/// through white to purple (a gain): PuOr, colour-blind safe.
fn diverging(d: f64, range: f64) -> RGBColor {
    let t = (d / range.max(1e-9)).clamp(-1.0, 1.0);
    let (end, w) = if t >= 0.0 {
        ((94.0, 60.0, 153.0), t)
    } else {
        ((230.0, 97.0, 1.0), -t)
    };
    let mix = |a: f64, b: f64| (a + (b - a) * w).round() as u8;
    RGBColor(mix(255.0, end.0), mix(255.0, end.1), mix(255.0, end.2))
}

/// The weighted fit of a task's average gain on log10(parameters) and its
/// 95% band, at 40 points across its sizes: (x, fit, low, high); empty
/// with fewer than two sizes or without the runs (a loaded Comparison).
fn fitted_band(pts: &[(String, f64, Comparison)]) -> Vec<(f64, f64, f64, f64)> {
    let mut gains = vec![];
    for (_, p, c) in pts {
        let Some(g) = c.size_gain("avg") else {
            return vec![];
        };
        gains.push((*p, g));
    }
    let xs: Vec<f64> = gains.iter().map(|g| g.0.log10()).collect();
    let (x0, x1) = (
        xs.iter().copied().fold(f64::INFINITY, f64::min),
        xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    );
    if gains.len() < 2 || x1 <= x0 {
        return vec![];
    }
    let sizes: Vec<(f64, &stats::SizeGain)> = gains.iter().map(|g| (g.0, &g.1)).collect();
    (0..40)
        .filter_map(|i| {
            let x = x0 + (x1 - x0) * i as f64 / 39.0;
            stats::fitted_gain(&sizes, x).map(|c| (x, c.estimate, c.ci.0, c.ci.1))
        })
        .collect()
}

/// The metric the gains are in (the baselines'), for the axis.
fn gain_metric(lines: &[GainLine]) -> String {
    lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, _, c)| c.metric.clone()))
        .next()
        .unwrap_or_else(|| "score".into())
}

/// What the gains' seed-aware intervals are, for the note.
fn gain_interval_note(lines: &[GainLine]) -> String {
    let methods = lines
        .iter()
        .flat_map(|(_, p)| p.iter().filter_map(|(_, _, c)| c.avg.ci.and(c.avg.method)));
    methods_note(methods, "point")
}

/// Gain vs model size as a paper prints it: left, the average gain
/// (points) against parameters on a log scale, one line per intermediate
/// task with 95% intervals, points of different tasks set slightly apart;
/// right, a heatmap of the gain per language (rows) and task × size
/// (columns).
/// `plot_gain`: the gain lines over model size.
struct Gain {
    lines: Vec<GainLine>,
    shown: (Shown, bool),
}

impl Figure for Gain {
    const SIZE: (u32, u32) = (1400, 560);
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>, text: bool) -> DrawResult {
        draw_gain(root, &self.lines, self.shown, text)
    }
}

fn draw_gain<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    lines: &[GainLine],
    (shown, defaulted): (Shown, bool),
    text: bool,
) -> DrawResult {
    root.fill(&WHITE).map_err(e)?;
    let (left, right) = root.split_horizontally(root.dim_in_pixel().0 as i32 * 11 / 20);
    let (chart_area, legend_area) = left.split_horizontally(left.dim_in_pixel().0 as i32 - 170);
    let bands: Vec<Vec<(f64, f64, f64, f64)>> = lines.iter().map(|(_, p)| fitted_band(p)).collect();
    let marks: Vec<Vec<Option<Mark>>> = lines
        .iter()
        .map(|(_, p)| {
            p.iter()
                .map(|(_, _, c)| Mark::of_gain(shown, c, "avg"))
                .collect()
        })
        .collect();
    let vals = extents(&marks);
    // The axis follows the marks (and 0); a band wider than them runs off
    // the chart rather than squeezing the points into a line (with few
    // seeds its interval is wide).
    let (lo, hi) = vals
        .into_iter()
        .fold((0.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.1).max(0.5);
    let params: Vec<f64> = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .collect();
    let pmin = params.iter().copied().fold(f64::INFINITY, f64::min);
    let pmax = params.iter().copied().fold(0.0f64, f64::max);
    // x is log10(parameters): ticks at 1, 2 and 5 of each decade in range.
    let (xlo, xhi) = ((pmin / 1.6).log10(), (pmax * 1.6).log10());
    let at: Vec<f64> = params.iter().map(|p| p.log10()).collect();
    let ticks = log_ticks(xlo, xhi, &at);
    let mut b = ChartBuilder::on(&chart_area);
    b.margin(15);
    if text {
        b.caption(
            "average gain; line: weighted fit, band: its 95% CI",
            ("sans-serif", 16),
        )
        .x_label_area_size(40)
        .y_label_area_size(50);
    }
    let (ylo, yhi) = (lo - pad, hi + pad);
    let mut chart = b.build_cartesian_2d(xlo..xhi, ylo..yhi).map_err(e)?;
    if text {
        chart
            .configure_mesh()
            .x_labels(0)
            .x_desc("parameters (log scale)")
            .y_label_formatter(&tick)
            .y_desc(format!("gain in {} (points)", gain_metric(lines)))
            .draw()
            .map_err(e)?;
    }
    log_axis(&mut chart, &chart_area, &ticks, (ylo, yhi), text)?;
    chart
        .draw_series(LineSeries::new(
            [(xlo, 0.0), (xhi, 0.0)],
            BLACK.mix(0.5).stroke_width(1),
        ))
        .map_err(e)?;
    let k = lines.len();
    // Each task's fitted line on log10(parameters) and its 95% band.
    for (j, band) in bands.iter().enumerate() {
        if band.is_empty() {
            continue;
        }
        let c = colour(j);
        // Cut to the axis: the band may be wider than the marks.
        let cut = |v: f64| v.clamp(ylo, yhi);
        let mut poly: Vec<(f64, f64)> = band.iter().map(|b| (b.0, cut(b.3))).collect();
        poly.extend(band.iter().rev().map(|b| (b.0, cut(b.2))));
        chart
            .draw_series(std::iter::once(Polygon::new(poly, c.mix(0.15).filled())))
            .map_err(e)?;
        chart
            .draw_series(LineSeries::new(
                band.iter().map(|b| (b.0, cut(b.1))),
                c.mix(0.8).stroke_width(1),
            ))
            .map_err(e)?;
    }
    for (j, (_, pts)) in lines.iter().enumerate() {
        let c = colour(j);
        // Dodge: tasks with equal values at one size stay visible.
        let shift = 1.0 + 0.06 * (j as f64 - (k as f64 - 1.0) / 2.0);
        let xy: Vec<(f64, f64)> = pts
            .iter()
            .map(|(_, p, cmp)| ((p * shift).log10(), cmp.avg.delta))
            .collect();
        for ((_, p, _), m) in pts.iter().zip(&marks[j]) {
            if let Some(m) = m {
                seed_dots(&mut chart, (p * shift).log10(), m, c)?;
            }
        }
        // Joined point to point only where there is no fitted line.
        if bands[j].is_empty() {
            chart
                .draw_series(LineSeries::new(xy.clone(), c.stroke_width(2)))
                .map_err(e)?;
        }
        chart
            .draw_series(xy.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .map_err(e)?;
        let bars: Vec<_> = pts
            .iter()
            .zip(&marks[j])
            .filter_map(|((_, p, _), m)| {
                let m = m.as_ref()?;
                m.ci.map(|(l, h)| {
                    ErrorBar::new_vertical((p * shift).log10(), l, m.value, h, c.stroke_width(2), 8)
                })
            })
            .collect();
        chart.draw_series(bars).map_err(e)?;
    }
    if text {
        // Size names under their points.
        let mut named: Vec<(String, f64)> = vec![];
        for (_, pts) in lines {
            for (n, p, _) in pts {
                if !named.iter().any(|(m, _)| m == n) {
                    named.push((n.clone(), *p));
                }
            }
        }
        // Centred over their sizes, inside the chart (the last one used to
        // run into the legend).
        let centred = ("sans-serif", 13)
            .into_font()
            .into_text_style(&chart_area)
            .pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Center,
            ));
        chart
            .draw_series(
                named.iter().map(|(n, p)| {
                    Text::new(n.clone(), (p.log10(), hi + pad * 0.6), centred.clone())
                }),
            )
            .map_err(e)?;
        let entries: Vec<(String, Key)> = lines
            .iter()
            .enumerate()
            .map(|(j, (n, _))| (n.clone(), Key::Line(colour(j))))
            .collect();
        let y = draw_legend(&legend_area, "intermediate task", &entries)?;
        let methods = gain_interval_note(lines);
        draw_note(&legend_area, y, &shown_note(shown, defaulted, methods), 22)?;
    }
    // The heatmap: languages (and avg) × (task, size).
    let mut langs: Vec<String> = lines
        .iter()
        .flat_map(|(_, p)| p.iter().flat_map(|(_, _, c)| c.by_lang.keys().cloned()))
        .collect();
    langs.sort();
    langs.dedup();
    // Languages by the baseline's accuracy (averaged over the columns),
    // highest at the top: a reader sees the resource level down the rows.
    let base_acc = |l: &str| -> f64 {
        let v: Vec<f64> = lines
            .iter()
            .flat_map(|(_, p)| {
                p.iter()
                    .filter_map(|(_, _, c)| c.by_lang.get(l).map(|d| d.base))
            })
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    langs.sort_by(|a, b| base_acc(b).total_cmp(&base_acc(a)));
    langs.push("avg".into());
    let cols: Vec<(String, &Comparison)> = lines
        .iter()
        .flat_map(|(t, p)| {
            p.iter().map(move |(s, _, c)| {
                (
                    if lines.len() > 1 {
                        format!("{t} {s}")
                    } else {
                        s.clone()
                    },
                    c,
                )
            })
        })
        .collect();
    let range = cols
        .iter()
        .flat_map(|(_, c)| {
            c.by_lang
                .values()
                .map(|d| d.delta.abs())
                .chain([c.avg.delta.abs()])
        })
        .fold(0.0f64, f64::max);
    let (nx, ny) = (cols.len().max(1), langs.len());
    let (heat_area, bar_area) = right.split_horizontally(right.dim_in_pixel().0 as i32 - 110);
    colour_bar(&bar_area, range, text)?;
    let mut hb = ChartBuilder::on(&heat_area);
    hb.margin(15);
    if text {
        hb.caption(
            format!("gain per language (points; colour ±{range:.1}); rows by baseline accuracy"),
            ("sans-serif", 16),
        )
        .x_label_area_size(70)
        .y_label_area_size(45);
    }
    let mut heat = hb
        .build_cartesian_2d(0f64..nx as f64, 0f64..ny as f64)
        .map_err(e)?;
    if text {
        let c2: Vec<String> = cols.iter().map(|(n, _)| n.clone()).collect();
        let l2 = langs.clone();
        heat.configure_mesh()
            .disable_mesh()
            .x_labels(nx * 2 + 1)
            .y_labels(ny * 2 + 1)
            .x_label_formatter(&move |x| {
                let i = (*x - 0.5).round();
                if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                    c2.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&move |y| {
                let i = (*y - 0.5).round();
                if (y - 0.5 - i).abs() < 1e-6 && i >= 0.0 {
                    // Top row first.
                    l2.get(l2.len().wrapping_sub(1 + i as usize))
                        .cloned()
                        .unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .draw()
            .map_err(e)?;
    }
    for (xi, (_, c)) in cols.iter().enumerate() {
        for (yi, l) in langs.iter().enumerate() {
            let d = if l == "avg" {
                Some(c.avg.delta)
            } else {
                c.by_lang.get(l).map(|d| d.delta)
            };
            let y = (ny - 1 - yi) as f64;
            let x = xi as f64;
            let fill = d
                .map(|d| diverging(d, range))
                .unwrap_or(RGBColor(200, 200, 200));
            heat.draw_series(std::iter::once(Rectangle::new(
                [(x, y), (x + 1.0, y + 1.0)],
                fill.filled(),
            )))
            .map_err(e)?;
            if l == "avg" {
                heat.draw_series(std::iter::once(PathElement::new(
                    vec![(x, y + 1.0), (x + 1.0, y + 1.0)],
                    BLACK.stroke_width(2),
                )))
                .map_err(e)?;
            }
            if let (Some(d), true) = (d, text && nx <= 12) {
                heat.draw_series(std::iter::once(Text::new(
                    format!("{d:+.1}"),
                    (x + 0.3, y + 0.7),
                    ("sans-serif", 12).into_font(),
                )))
                .map_err(e)?;
            }
        }
    }
    root.present().map_err(e)
}

/// The heatmap's key: the diverging scale from −`range` (a loss, orange)
/// through 0 (white) to +`range` (a gain, purple), labelled in points.
fn colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    range: f64,
    text: bool,
) -> DrawResult {
    let range = if range > 0.0 { range } else { 1.0 };
    let mut b = ChartBuilder::on(area);
    b.margin_top(45)
        .margin_bottom(85)
        .margin_left(5)
        .margin_right(65);
    let chart = b.build_cartesian_2d(0f64..1.0, -range..range).map_err(e)?;
    let mut chart = chart;
    if text {
        // Labels by hand, right of the bar: −range, −range/2, 0, +range/2, +range.
        for f in [-1.0, -0.5, 0.0, 0.5, 1.0] {
            let v = f * range;
            let (at, base) = (chart.backend_coord(&(1.0, v)), area.get_base_pixel());
            let at = (at.0 - base.0, at.1 - base.1);
            let label = if f == 0.0 {
                "0".to_string()
            } else {
                format!("{}{:.1}", if v > 0.0 { "+" } else { "−" }, v.abs())
            };
            area.draw(&Text::new(
                label,
                (at.0 + 6, at.1 - 7),
                ("sans-serif", 13).into_font(),
            ))
            .map_err(e)?;
        }
    }
    let steps = 60;
    chart
        .draw_series((0..steps).map(|i| {
            let a = -range + 2.0 * range * i as f64 / steps as f64;
            let b = a + 2.0 * range / steps as f64;
            Rectangle::new(
                [(0.0, a), (1.0, b)],
                diverging(0.5 * (a + b), range).filled(),
            )
        }))
        .map_err(e)?;
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(0.0, -range), (1.0, range)],
            BLACK.mix(0.5).stroke_width(1),
        )))
        .map_err(e)?;
    if text {
        area.draw(&Text::new(
            "gain (pts)",
            (5, 22),
            ("sans-serif", 13).into_font(),
        ))
        .map_err(e)?;
    }
    Ok(())
}

/// A plot that draws on any plotters backend (the same drawing goes to
/// an SVG or a PNG).
trait Figure {
    /// The size in pixels.
    const SIZE: (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>, text: bool) -> DrawResult;
}

/// Draws `figure` on a PNG, SVG or PDF file chosen by extension; whether the
/// plot has text (a font was found) comes back.
fn render<F: Figure>(path: &Path, figure: &F) -> RResult<bool> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|x| rerr(format!("{}: {x}", dir.display())))?;
    }
    let ext = path
        .extension()
        .and_then(|x| x.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let text = font_ready();
    let drawn = match ext.as_str() {
        "svg" => figure.draw(SVGBackend::new(path, F::SIZE).into_drawing_area(), text),
        "png" => figure.draw(BitMapBackend::new(path, F::SIZE).into_drawing_area(), text),
        "pdf" => {
            let mut svg = String::new();
            figure
                .draw(
                    SVGBackend::with_string(&mut svg, F::SIZE).into_drawing_area(),
                    text,
                )
                .and_then(|()| pdf_of_svg(&svg))
                .and_then(|pdf| {
                    stilts_model::util::write_atomic(path, &pdf).map_err(|x| x.to_string())
                })
        }
        other => {
            return Err(rerr(format!(
                "{}: unknown plot format `{other}`; use .png, .svg or .pdf",
                path.display()
            )))
        }
    };
    drawn.map_err(|x| rerr(format!("plot {}: {x}", path.display())))?;
    Ok(text)
}

fn record(ctx: &Ctx, path: &Path, text: bool) {
    if !text {
        ctx.note("note: no TrueType font found (set STILTS_FONT=/path/to/font.ttf): the plot has no labels");
    }
    ctx.recorder
        .borrow_mut()
        .push(Item::Image(path.to_path_buf()));
}

/// The seeds a Result is the mean of (1 for one run).
fn seed_count(s: &Scores) -> usize {
    s.seed_data("avg").map_or(1, |d| d.0.len())
}

fn plot_languages(ctx: &Ctx, results: &Map, path: &str, opts: &Map) -> RResult<String> {
    crate::options::check_keys("plot_languages options", opts, LANGUAGES_KEYS)?;
    let series: Vec<(String, Scores)> = ctx
        .key_order(results)
        .into_iter()
        .map(|k| {
            let v = &results[k.as_str()];
            v.clone()
                .try_cast::<Scores>()
                .map(|s| (k.clone(), s))
                .ok_or_else(|| {
                    rerr(format!(
                        "plot_languages: `{k}` is {}, not a Result",
                        crate::values::type_name(v)
                    ))
                })
        })
        .collect::<RResult<_>>()?;
    if series.is_empty() {
        return Err(rerr(
            "plot_languages: the map is empty; give label → Result",
        ));
    }
    let p = PathBuf::from(path);
    let seeds = series.iter().map(|(_, s)| seed_count(s));
    let shown = shown("plot_languages", opts, seeds)?;
    let text = render(&p, &Languages { series, shown })?;
    record(ctx, &p, text);
    Ok(path.to_string())
}

/// The parameters of a size: `params` (from the call) first, then the
/// count the compared Results carry (a model stilts loaded, made or cut
/// knows its own), then the published count of a known size name.
fn size_params(who: &str, name: &str, c: &Comparison, params: &Map) -> RResult<f64> {
    if let Some(v) = params.get(name) {
        return v
            .as_float()
            .or_else(|_| v.as_int().map(|i| i as f64))
            .ok()
            .filter(|x| *x > 0.0)
            .ok_or_else(|| {
                rerr(format!(
                    "{who}: params `{name}` takes a positive number of parameters"
                ))
            });
    }
    if let Some(p) = c.params() {
        return Ok(p as f64);
    }
    stilts_model::sizes::size(name)
        .map(|s| s.published_params_m as f64 * 1e6)
        .ok_or_else(|| {
            rerr(format!(
                "{who}: `{name}` is not a size name ({}) and its Results do not say how many parameters their model has; the x axis is parameters, so give its count: {who}(gains, ..., #{{params: #{{\"{name}\": 118e6}}}})",
                stilts_model::sizes::size_names().join(", ")
            ))
        })
}

/// `gains`: size → Comparison (one intermediate task), or intermediate
/// task → (size → Comparison). The other nesting (size → task →
/// Comparison) is an error that says so. `who` names the function in
/// errors.
pub(crate) fn gain_lines(
    who: &str,
    ctx: &Ctx,
    gains: &Map,
    params: &Map,
) -> RResult<Vec<GainLine>> {
    let is_size = |k: &str| params.contains_key(k) || stilts_model::sizes::size(k).is_some();
    let by_params = |mut v: Vec<(String, f64, Comparison)>| {
        v.sort_by(|a, b| a.1.total_cmp(&b.1));
        v
    };
    if gains.is_empty() {
        return Err(rerr(format!(
            "{who}: the map is empty; give size → Comparison or task → (size → Comparison)"
        )));
    }
    if gains.values().all(|v| v.is::<Comparison>()) {
        let mut pts = vec![];
        let mut name = String::new();
        for k in ctx.key_order(gains) {
            let c = gains[k.as_str()].clone().cast::<Comparison>();
            name = c.new.clone();
            pts.push((k.to_string(), size_params(who, &k, &c, params)?, c));
        }
        return Ok(vec![(name, by_params(pts))]);
    }
    let mut out = vec![];
    for name in ctx.key_order(gains) {
        let v = &gains[name.as_str()];
        let m = v.clone().try_cast::<Map>().ok_or_else(|| {
            rerr(format!(
                "{who}: `{name}` is {}; give size → Comparison, or task → (size → Comparison)",
                crate::values::type_name(v)
            ))
        })?;
        if is_size(&name) && !m.keys().all(|k| is_size(k)) {
            return Err(rerr(format!(
                "{who}: `{name}` is a size holding a map of task → Comparison; the nesting is task → (size → Comparison): swap the two levels"
            )));
        }
        let mut pts = vec![];
        for s in ctx.key_order(&m) {
            let c = &m[s.as_str()];
            let c = c.clone().try_cast::<Comparison>().ok_or_else(|| {
                rerr(format!(
                    "{who}: `{name}`.`{s}` is {}, not a Comparison",
                    crate::values::type_name(c)
                ))
            })?;
            pts.push((s.to_string(), size_params(who, &s, &c, params)?, c));
        }
        out.push((name, by_params(pts)));
    }
    Ok(out)
}

fn plot_gain(ctx: &Ctx, gains: &Map, path: &str, opts: &Map) -> RResult<String> {
    crate::options::check_keys("plot_gain options", opts, GAIN_KEYS)?;
    let params = match opts.get("params") {
        None => Map::new(),
        Some(v) => v
            .clone()
            .try_cast::<Map>()
            .ok_or_else(|| rerr("plot_gain: `params` takes a map of size name → parameters"))?,
    };
    let lines = gain_lines("plot_gain", ctx, gains, &params)?;
    let seeds: Vec<usize> = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, _, c)| c.avg.seeds))
        .collect();
    let shown = shown("plot_gain", opts, seeds.into_iter())?;
    let p = PathBuf::from(path);
    let text = render(&p, &Gain { lines, shown })?;
    record(ctx, &p, text);
    Ok(path.to_string())
}

/// One condition's results by size: (condition, [(size, parameters, Result)]
/// by parameters).
type ScoreLine = (String, Vec<(String, f64, Scores)>);

/// `plot_scaling`: the average score against parameters, a line per
/// condition.
struct Scaling {
    lines: Vec<ScoreLine>,
    shown: (Shown, bool),
}

impl Figure for Scaling {
    const SIZE: (u32, u32) = (900, 520);
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>, text: bool) -> DrawResult {
        draw_scaling(root, &self.lines, self.shown, text)
    }
}

/// The average score (over languages) of each condition against the
/// model's parameters on a log axis, with each point's 95% interval;
/// conditions set slightly apart; the legend beside.
fn draw_scaling<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    lines: &[ScoreLine],
    (shown, defaulted): (Shown, bool),
    text: bool,
) -> DrawResult {
    root.fill(&WHITE).map_err(e)?;
    let (chart_area, legend_area) = root.split_horizontally(root.dim_in_pixel().0 as i32 - 190);
    let marks: Vec<Vec<Option<Mark>>> = lines
        .iter()
        .map(|(_, p)| {
            p.iter()
                .map(|(_, _, s)| Mark::of_scores(shown, s, "avg"))
                .collect()
        })
        .collect();
    let vals = extents(&marks);
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.1).max(0.5);
    let (ylo, yhi) = ((lo - pad).max(0.0), (hi + pad).min(100.0));
    let params: Vec<f64> = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .collect();
    let pmin = params.iter().copied().fold(f64::INFINITY, f64::min);
    let pmax = params.iter().copied().fold(0.0f64, f64::max);
    let (xlo, xhi) = ((pmin / 1.6).log10(), (pmax * 1.6).log10());
    let metric = lines
        .first()
        .and_then(|(_, p)| p.first())
        .map(|(_, _, s)| s.metric.clone())
        .unwrap_or_default();
    let mut b = ChartBuilder::on(&chart_area);
    b.margin(15);
    if text {
        let what = lines
            .first()
            .and_then(|(_, p)| p.first())
            .map(|(_, _, s)| format!("{} {}", s.task, s.split))
            .unwrap_or_default();
        b.caption(
            format!("{what}: average {metric} vs parameters"),
            ("sans-serif", 16),
        )
        .x_label_area_size(40)
        .y_label_area_size(50);
    }
    let mut chart = b.build_cartesian_2d(xlo..xhi, ylo..yhi).map_err(e)?;
    if text {
        chart
            .configure_mesh()
            .x_labels(0)
            .x_desc("parameters (log scale)")
            .y_label_formatter(&tick)
            .y_desc(format!("{metric} (%)"))
            .draw()
            .map_err(e)?;
    }
    let at: Vec<f64> = params.iter().map(|p| p.log10()).collect();
    log_axis(
        &mut chart,
        &chart_area,
        &log_ticks(xlo, xhi, &at),
        (ylo, yhi),
        text,
    )?;
    let k = lines.len();
    for (j, (_, pts)) in lines.iter().enumerate() {
        let c = colour(j);
        let shift = 1.0 + 0.05 * (j as f64 - (k as f64 - 1.0) / 2.0);
        let xy: Vec<(f64, f64, Option<(f64, f64)>)> = pts
            .iter()
            .zip(&marks[j])
            .filter_map(|((_, p, _), m)| m.as_ref().map(|m| ((p * shift).log10(), m.value, m.ci)))
            .collect();
        for ((_, p, _), m) in pts.iter().zip(&marks[j]) {
            if let Some(m) = m {
                seed_dots(&mut chart, (p * shift).log10(), m, c)?;
            }
        }
        chart
            .draw_series(LineSeries::new(
                xy.iter().map(|p| (p.0, p.1)),
                c.stroke_width(2),
            ))
            .map_err(e)?;
        chart
            .draw_series(xy.iter().map(|p| Circle::new((p.0, p.1), 4, c.filled())))
            .map_err(e)?;
        chart
            .draw_series(xy.iter().filter_map(|p| {
                p.2.map(|(l, h)| ErrorBar::new_vertical(p.0, l, p.1, h, c.stroke_width(2), 8))
            }))
            .map_err(e)?;
    }
    if text {
        let entries: Vec<(String, Key)> = lines
            .iter()
            .enumerate()
            .map(|(j, (n, _))| (n.clone(), Key::Line(colour(j))))
            .collect();
        let y = draw_legend(&legend_area, "condition", &entries)?;
        let all: Vec<(String, Scores)> = lines
            .iter()
            .flat_map(|(n, p)| p.iter().map(move |(_, _, s)| (n.clone(), s.clone())))
            .collect();
        draw_note(
            &legend_area,
            y,
            &shown_note(shown, defaulted, interval_note(&all)),
            24,
        )?;
    }
    root.present().map_err(e)
}

/// The parameters of a size for `plot_scaling`: `params`, else the
/// Result's own count, else a size name's published count.
fn result_params(name: &str, s: &Scores, params: &Map) -> RResult<f64> {
    if let Some(v) = params.get(name) {
        return v
            .as_float()
            .or_else(|_| v.as_int().map(|i| i as f64))
            .ok()
            .filter(|x| *x > 0.0)
            .ok_or_else(|| {
                rerr(format!(
                    "plot_scaling: params `{name}` takes a positive number of parameters"
                ))
            });
    }
    if let Some(p) = s.params {
        return Ok(p as f64);
    }
    stilts_model::sizes::size(name)
        .map(|s| s.published_params_m as f64 * 1e6)
        .ok_or_else(|| {
            rerr(format!(
                "plot_scaling: `{name}` is not a size name and its Result does not say how many parameters its model has; give them: plot_scaling(results, path, #{{params: #{{\"{name}\": 118e6}}}})"
            ))
        })
}

fn plot_scaling(ctx: &Ctx, results: &Map, path: &str, opts: &Map) -> RResult<String> {
    crate::options::check_keys("plot_scaling options", opts, SCALING_KEYS)?;
    let params = match opts.get("params") {
        None => Map::new(),
        Some(v) => v
            .clone()
            .try_cast::<Map>()
            .ok_or_else(|| rerr("plot_scaling: `params` takes a map of size name → parameters"))?,
    };
    if results.is_empty() {
        return Err(rerr(
            "plot_scaling: the map is empty; give condition → (size → Result)",
        ));
    }
    let mut lines = vec![];
    for name in ctx.key_order(results) {
        let v = &results[name.as_str()];
        let m = v.clone().try_cast::<Map>().ok_or_else(|| {
            rerr(format!(
                "plot_scaling: `{name}` is {}; give condition → (size → Result)",
                crate::values::type_name(v)
            ))
        })?;
        let mut pts = vec![];
        for s in ctx.key_order(&m) {
            let r = m[s.as_str()].clone().try_cast::<Scores>().ok_or_else(|| {
                rerr(format!(
                    "plot_scaling: `{name}`.`{s}` is {}, not a Result (the nesting is condition → size → Result)",
                    crate::values::type_name(&m[s.as_str()])
                ))
            })?;
            pts.push((s.clone(), result_params(&s, &r, &params)?, r));
        }
        pts.sort_by(|a, b| a.1.total_cmp(&b.1));
        lines.push((name, pts));
    }
    let seeds = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, _, s)| seed_count(s)))
        .collect::<Vec<_>>();
    let shown = shown("plot_scaling", opts, seeds.into_iter())?;
    let p = PathBuf::from(path);
    let text = render(&p, &Scaling { lines, shown })?;
    record(ctx, &p, text);
    Ok(path.to_string())
}

/// `plot_training`: a training curve and its dev scores.
struct Training {
    title: String,
    losses: Vec<f64>,
    dev: Vec<(f64, f64)>,
    /// The loss of a model that has learned nothing (ln K for K classes).
    chance: Option<(f64, usize)>,
}

impl Figure for Training {
    const SIZE: (u32, u32) = (900, 500);
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>, text: bool) -> DrawResult {
        draw_training(root, self, text)
    }
}

/// Loss per update (thin) with its running mean over 20 updates (thick),
/// and the dev score of each evaluation on a second axis.
fn draw_training<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    t: &Training,
    text: bool,
) -> DrawResult {
    let (title, losses, dev) = (t.title.as_str(), &t.losses[..], &t.dev[..]);
    root.fill(&WHITE).map_err(e)?;
    let n = losses.len().max(1) as f64;
    let finite: Vec<f64> = losses.iter().copied().filter(|x| x.is_finite()).collect();
    let hi = finite
        .iter()
        .copied()
        .chain(t.chance.map(|c| c.0))
        .fold(0.0_f64, f64::max)
        .max(1e-6)
        * 1.05;
    let (top, bottom) = if dev.is_empty() {
        (root.clone(), None)
    } else {
        let (a, b) = root.split_vertically((root.dim_in_pixel().1 as f64 * 0.6) as u32);
        (a, Some(b))
    };
    let mut c = ChartBuilder::on(&top);
    c.margin(10);
    if text {
        c.caption(title, ("sans-serif", 18))
            .x_label_area_size(30)
            .y_label_area_size(50);
    }
    let mut chart = c.build_cartesian_2d(0.0..n + 1.0, 0.0..hi).map_err(e)?;
    if text {
        chart
            .configure_mesh()
            .x_desc("update")
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .y_desc("training loss (nats)")
            .draw()
            .map_err(e)?;
    }
    if let Some((c, k)) = t.chance {
        // A model that predicts every class alike scores ln K.
        chart.draw_series(dashed(0.0, n + 1.0, c)).map_err(e)?;
        if text {
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("chance: ln {k} = {c:.2}"),
                    (n * 0.72, c - hi * 0.03),
                    ("sans-serif", 13).into_font(),
                )))
                .map_err(e)?;
        }
    }
    let blue = RGBColor(0, 114, 178);
    chart
        .draw_series(LineSeries::new(
            losses.iter().enumerate().map(|(i, l)| (i as f64 + 1.0, *l)),
            blue.mix(0.35).stroke_width(1),
        ))
        .map_err(e)?;
    let window = 20usize;
    let smooth: Vec<(f64, f64)> = (0..losses.len())
        .map(|i| {
            let from = i.saturating_sub(window - 1);
            let w = &losses[from..=i];
            (i as f64 + 1.0, w.iter().sum::<f64>() / w.len() as f64)
        })
        .collect();
    chart
        .draw_series(LineSeries::new(smooth, blue.stroke_width(3)))
        .map_err(e)?;
    if let Some(b) = bottom {
        let lo = dev.iter().map(|d| d.1).fold(f64::INFINITY, f64::min);
        let hi = dev.iter().map(|d| d.1).fold(f64::NEG_INFINITY, f64::max);
        let pad = ((hi - lo) * 0.1).max(1.0);
        let mut c = ChartBuilder::on(&b);
        c.margin(10);
        if text {
            c.x_label_area_size(30).y_label_area_size(50);
        }
        let mut chart = c
            .build_cartesian_2d(0.0..n + 1.0, (lo - pad)..(hi + pad))
            .map_err(e)?;
        if text {
            chart
                .configure_mesh()
                .x_desc("update")
                .x_label_formatter(&tick)
                .y_label_formatter(&tick)
                .y_desc("dev score (%)")
                .draw()
                .map_err(e)?;
        }
        let orange = RGBColor(213, 94, 0);
        chart
            .draw_series(LineSeries::new(dev.iter().copied(), orange.stroke_width(2)))
            .map_err(e)?;
        chart
            .draw_series(dev.iter().map(|&p| Circle::new(p, 3, orange.filled())))
            .map_err(e)?;
        // The first of equal best scores: the one model selection keeps.
        let best = dev
            .iter()
            .copied()
            .fold(None, |acc: Option<(f64, f64)>, p| match acc {
                Some(a) if a.1 >= p.1 => Some(a),
                _ => Some(p),
            });
        if let Some(best) = best {
            chart
                .draw_series(std::iter::once(Circle::new(best, 7, BLACK.stroke_width(2))))
                .map_err(e)?;
        }
    }
    root.present().map_err(e)
}

/// `plot_training(model, path)`: the training curve of a trained model.
fn plot_training(ctx: &Ctx, m: &crate::values::ModelValue, path: &str) -> RResult<String> {
    let t = m.training.as_ref().ok_or_else(|| {
        rerr(format!(
            "plot_training: `{}` was not trained in this script (a loaded model has no curve)",
            m.name
        ))
    })?;
    let losses: Vec<f64> = t["losses"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
        .unwrap_or_default();
    let dev: Vec<(f64, f64)> = t["dev"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| Some((p.get(0)?.as_f64()?, p.get(1)?.as_f64()?)))
                .collect()
        })
        .unwrap_or_default();
    let title = format!(
        "{}: {} updates{}",
        m.name,
        losses.len(),
        t["best_step"]
            .as_u64()
            .map(|s| format!(", best dev at update {s} (circled)"))
            .unwrap_or_default()
    );
    let k = m.model.head.kind.labels().len();
    write_training(ctx, path, title, losses, dev, Some(k))
}

/// Draws a training figure into `path` (the ln K line for a head of
/// `classes` ≥ 2 classes) and adds it to the report.
fn write_training(
    ctx: &Ctx,
    path: &str,
    title: String,
    losses: Vec<f64>,
    dev: Vec<(f64, f64)>,
    classes: Option<usize>,
) -> RResult<String> {
    let chance = classes.filter(|&k| k >= 2).map(|k| ((k as f64).ln(), k));
    let p = PathBuf::from(path);
    let text = render(
        &p,
        &Training {
            title,
            losses,
            dev,
            chance,
        },
    )?;
    record(ctx, &p, text);
    Ok(path.to_string())
}

/// `plot_training(result or cell key, path)`: the training of one
/// condition (one seed), each phase from the curves its record keeps.
fn plot_condition_training(ctx: &Ctx, which: &Dynamic, path: &str) -> RResult<String> {
    let store = super::runs::results_store(ctx);
    let key = if let Some(r) = which.clone().try_cast::<crate::values::Scores>() {
        match r.cells.as_slice() {
            [one] => one.clone(),
            [] => return Err(rerr(format!("plot_training: the Result `{}` was not made by condition() (no training is kept with it); give a trained Model, a condition's Result or a cell key", r.label))),
            many => return Err(rerr(format!("plot_training: the Result `{}` is the mean of {} conditions (seeds); give one seed's Result, or a cell key", r.label, many.len()))),
        }
    } else {
        which.clone().into_string().map_err(|t| {
            rerr(format!(
                "plot_training takes a Model, a condition's Result or a cell key, not {t}"
            ))
        })?
    };
    let rec = store.find_prefix(&key).map_err(rerr)?.ok_or_else(|| {
        rerr(format!(
            "plot_training: no condition with the key `{key}` in {}",
            store.path().display()
        ))
    })?;
    let (losses, dev, phases) = stilts_protocol::summary::training_curve(&rec);
    if losses.is_empty() {
        return Err(rerr(format!(
            "plot_training: the condition {} trained nothing (no curve kept)",
            &rec.key[..12]
        )));
    }
    let title = format!(
        "{} (seed {}): {phases}",
        rec.config["name"].as_str().unwrap_or_default(),
        rec.config["configuration"]["seed"]
    );
    // The target phase's classes (the line a classification head's loss
    // sits on while it has learned nothing).
    let classes = stilts_protocol::summary::phases(&rec)
        .last()
        .and_then(|ph| ph.classes);
    write_training(ctx, path, title, losses, dev, classes)
}

/// The documentation of what this file registers: what `:help`, tab
/// completion, `check` and the README's API reference read (collected by
/// `docs::api`). Every entry's example runs in a test (`api_examples.rs`).
pub const DOCS: &[ApiDoc] = &[
    entry("tables and plots", "plot_languages", "plot_languages(results: map, path: string) -> string", "Bars of the score per language and the average, one per labelled Result in the order the map literal wrote them, each with its 95% interval (over seeds and examples for a mean, the bootstrap over examples for one run; the legend says which), a dashed chance line (100 / labels) and the legend beside the chart; colour-blind-safe colours. Writes PNG, SVG or PDF (by extension), adds it to the report, returns the path. With two seeds a Result, the seeds are drawn as dots (see the form with options).", "plot_languages(#{base: r0, stilts: r1}, \"acc.svg\")"),
    entry("tables and plots", "plot_languages", "plot_languages(results: map, path: string, opts: map) -> string", "plot_languages with `interval`: what each bar's mark shows — \"seeds\" (the 95% interval with seed variance; over examples for one run), \"examples\" (the 95% interval over test examples alone, seeds fixed) or \"points\" (each seed's score as a dot over the bar). The default is \"points\" where a Result is the mean of exactly two seeds (an interval from two seeds uses t = 12.7 and hides every effect), else \"seeds\"; the figure says which it drew. The same key and default in plot_gain and plot_scaling.", "plot_languages(#{base: r0, stilts: r1}, \"acc.png\", #{interval: \"examples\"})"),
    entry("tables and plots", "plot_training", "plot_training(model: Model, path: string) -> string", "The training curve of a model trained in this script: the loss of every update with its running mean and, for a classification head of K labels, the dashed chance level ln K (a loss that stays there: the model learned nothing), and the dev score of every evaluation with the best one circled; PNG, SVG or PDF (by extension), added to the report. The same numbers, with the learning rate and throughput of each update, are in the file `Model.training.curve` names (JSON lines, written as the run goes).", "plot_training(ft, \"curve.png\")"),
    entry("tables and plots", "plot_training", "plot_training(condition: Result | string, path: string) -> string", "The training of one condition (one seed: its Result, or its cell key as `stilts plan` shows it), drawn from the curves its record keeps in the store: the loss of every update of each phase in order (the target phase's updates counted on from the intermediate phase's; the title says which updates are which phase) and the dev evaluations, the best circled. A mean over seeds is an error: give one seed's Result.", "let one = condition(#{model: m, target: mnli, evaluate: xnli, options: quick, seed: 1}); plot_training(one, \"training.png\")"),
    entry("tables and plots", "plot_gain", "plot_gain(gains: map, path: string) -> string", "Gain vs model size: `gains` maps a size to a Comparison (one intermediate task), or an intermediate task's name to such a map (task → size → Comparison; the other nesting is an error). A size's parameters come from its Results (a model stilts loaded, made or cut knows its count) or a size name. Left: the average gain against parameters on a log scale, per intermediate task its points with 95% intervals and, with two or more sizes, the weighted fit of the gain on log10(parameters) with its 95% band (modulation's slope); right: a heatmap of the gain per language (rows by the baseline's accuracy, highest first) and (task, size), with its colour bar in points. PNG, SVG or PDF (by extension), added to the report.", "plot_gain(#{\"xlmr-base\": c0, \"xlmr-large\": c1}, \"gain.png\")"),
    entry("tables and plots", "plot_gain", "plot_gain(gains: map, path: string, opts: map) -> string", "plot_gain with `params`: the parameter count of each size whose Results do not carry one and that is not a size name, for the x axis; `interval`: \"seeds\", \"examples\" or \"points\" (each seed's gain, seeds paired by number), as plot_languages takes it. The y axis follows the points and their marks; a fitted band wider than them is cut at the axis.", "plot_gain(#{sst2: #{\"xlmr-base\": c0, \"runs/me5-small\": c1}}, \"gain.png\", #{params: #{\"runs/me5-small\": 118e6}})"),
    entry("tables and plots", "plot_scaling", "plot_scaling(results: map, path: string) -> string", "The average score against model parameters (log scale): `results` maps a condition (baseline, each intermediate task) to size → Result; a line per condition with each point's 95% interval (the legend says which kind). Parameters as plot_gain finds them. PNG, SVG or PDF (by extension), added to the report.", "plot_scaling(#{none: #{\"xlmr-base\": r0, \"xlmr-large\": r1}, sst2: #{\"xlmr-base\": r2, \"xlmr-large\": r3}}, \"scaling.svg\")"),
    entry("tables and plots", "plot_scaling", "plot_scaling(results: map, path: string, opts: map) -> string", "plot_scaling with `params`: size → parameters for sizes whose Results do not carry a count; `interval`: \"seeds\", \"examples\" or \"points\", as plot_languages takes it.", "plot_scaling(#{none: #{small: r0, big: r1}}, \"scaling.png\", #{params: #{small: 4e7, big: 1.2e8}})"),
];

/// Registers `plot_training`, `plot_gain`, `plot_scaling` and `plot_languages`.
pub fn register(engine: &mut Engine, ctx: &Rc<Ctx>) {
    let c = ctx.clone();
    engine.register_fn(
        "plot_training",
        move |m: crate::values::ModelValue, path: &str| {
            c.writable(path).map_err(rerr)?;
            if !c.writes() {
                return Ok(path.to_string());
            }
            plot_training(&c, &m, path)
        },
    );
    for ty in ["Result", "string"] {
        let c = ctx.clone();
        let f = move |which: Dynamic, path: &str| -> RResult<String> {
            c.writable(path).map_err(rerr)?;
            if !c.writes() {
                return Ok(path.to_string());
            }
            plot_condition_training(&c, &which, path)
        };
        if ty == "Result" {
            engine.register_fn(
                "plot_training",
                move |r: crate::values::Scores, path: &str| f(Dynamic::from(r), path),
            );
        } else {
            engine.register_fn("plot_training", move |k: &str, path: &str| {
                f(Dynamic::from(k.to_string()), path)
            });
        }
    }
    let c = ctx.clone();
    engine.register_fn("plot_languages", move |results: Map, path: &str| {
        c.writable(path).map_err(rerr)?;
        if !c.writes() {
            return Ok(path.to_string());
        }
        plot_languages(&c, &results, path, &Map::new())
    });
    let c = ctx.clone();
    engine.register_fn(
        "plot_languages",
        move |results: Map, path: &str, opts: Map| {
            c.writable(path).map_err(rerr)?;
            if !c.writes() {
                return Ok(path.to_string());
            }
            plot_languages(&c, &results, path, &opts)
        },
    );
    let c = ctx.clone();
    engine.register_fn("plot_gain", move |gains: Map, path: &str| {
        c.writable(path).map_err(rerr)?;
        if !c.writes() {
            return Ok(path.to_string());
        }
        plot_gain(&c, &gains, path, &Map::new())
    });
    let c = ctx.clone();
    engine.register_fn("plot_gain", move |gains: Map, path: &str, opts: Map| {
        c.writable(path).map_err(rerr)?;
        if !c.writes() {
            return Ok(path.to_string());
        }
        plot_gain(&c, &gains, path, &opts)
    });
    let c = ctx.clone();
    engine.register_fn("plot_scaling", move |results: Map, path: &str| {
        c.writable(path).map_err(rerr)?;
        if !c.writes() {
            return Ok(path.to_string());
        }
        plot_scaling(&c, &results, path, &Map::new())
    });
    let c = ctx.clone();
    engine.register_fn(
        "plot_scaling",
        move |results: Map, path: &str, opts: Map| {
            c.writable(path).map_err(rerr)?;
            if !c.writes() {
                return Ok(path.to_string());
            }
            plot_scaling(&c, &results, path, &opts)
        },
    );
    let _ = Dynamic::UNIT;
}
