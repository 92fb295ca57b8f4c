//! Plots (plotters): score per language, and gain vs model size. SVG or PNG
//! by the file's extension. Text needs a TrueType font: `$STILTS_FONT`, or
//! one of the usual system fonts; without one the plot is drawn without
//! text and a note says so.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use plotters::coord::Shift;
use plotters::element::ErrorBar;
use plotters::prelude::*;
use rhai::{Dynamic, Engine, Map};

use super::{rerr, RResult};
use crate::script::context::{Ctx, Item};
use crate::script::values::{Comparison, Scores};

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

/// Registers a font once; false when none was found.
fn font_ready() -> bool {
    static READY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *READY.get_or_init(|| {
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
                    return true;
                }
            }
        }
        false
    })
}

type DrawResult = Result<(), String>;

fn e<E: std::fmt::Debug>(x: E) -> String {
    format!("{x:?}")
}

/// Bars: one group per language, one bar per labelled result.
fn draw_languages<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    series: &[(String, Scores)],
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
    let top = series
        .iter()
        .flat_map(|(_, s)| s.by_lang.values().map(|v| v.value))
        .fold(0.0f64, f64::max)
        .max(1.0)
        * 1.1;
    let metric = series
        .first()
        .map(|(_, s)| s.metric.clone())
        .unwrap_or_default();
    let mut b = ChartBuilder::on(&root);
    b.margin(15);
    if text {
        b.caption(format!("{metric} per language"), ("sans-serif", 22))
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
            .y_desc(metric.clone())
            .draw()
            .map_err(e)?;
    }
    let k = series.len().max(1) as f64;
    let w = 0.8 / k;
    for (j, (label, s)) in series.iter().enumerate() {
        let color = Palette99::pick(j).to_rgba();
        let bars: Vec<Rectangle<(f64, f64)>> = langs
            .iter()
            .enumerate()
            .filter_map(|(i, l)| s.by_lang.get(l).map(|v| (i, v.value)))
            .map(|(i, v)| {
                let x0 = i as f64 + 0.1 + j as f64 * w;
                Rectangle::new([(x0, 0.0), (x0 + w * 0.95, v)], color.filled())
            })
            .collect();
        let anno = chart.draw_series(bars).map_err(e)?;
        if text {
            anno.label(label.clone()).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
            });
        }
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(e)?;
    }
    root.present().map_err(e)
}

/// Lines: gain (Δ) vs model size, one line per series, CIs as error bars.
fn draw_gain<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    sizes: &[String],
    lines: &[(String, Vec<Option<(f64, Option<(f64, f64)>)>>)],
    text: bool,
) -> DrawResult {
    root.fill(&WHITE).map_err(e)?;
    let vals = lines.iter().flat_map(|(_, p)| {
        p.iter()
            .flatten()
            .flat_map(|(d, ci)| [Some(*d), ci.map(|c| c.0), ci.map(|c| c.1)])
            .flatten()
    });
    let (lo, hi) = vals.fold((0.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.1).max(0.5);
    let mut b = ChartBuilder::on(&root);
    b.margin(15);
    if text {
        b.caption(
            "gain from intermediate training vs model size",
            ("sans-serif", 22),
        )
        .x_label_area_size(35)
        .y_label_area_size(50);
    }
    let n = sizes.len().max(1);
    let mut chart = b
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), (lo - pad)..(hi + pad))
        .map_err(e)?;
    if text {
        let s2 = sizes.to_vec();
        chart
            .configure_mesh()
            .x_labels(n)
            .x_label_formatter(&move |x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    s2.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("Δ (points)")
            .draw()
            .map_err(e)?;
    }
    chart
        .draw_series(LineSeries::new(
            [(-0.5, 0.0), (n as f64 - 0.5, 0.0)],
            BLACK.mix(0.4),
        ))
        .map_err(e)?;
    for (j, (label, pts)) in lines.iter().enumerate() {
        let color = Palette99::pick(j).to_rgba();
        let width = if label == "avg" { 3 } else { 1 };
        let xy: Vec<(f64, f64)> = pts
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.map(|(d, _)| (i as f64, d)))
            .collect();
        let anno = chart
            .draw_series(LineSeries::new(xy.clone(), color.stroke_width(width)))
            .map_err(e)?;
        if text {
            anno.label(label.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 15, y)], color.stroke_width(2))
            });
        }
        chart
            .draw_series(xy.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(e)?;
        let bars: Vec<_> = pts
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                p.and_then(|(d, ci)| {
                    ci.map(|(l, h)| {
                        ErrorBar::new_vertical(i as f64, l, d, h, color.stroke_width(1), 6)
                    })
                })
            })
            .collect();
        chart.draw_series(bars).map_err(e)?;
    }
    if text {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(e)?;
    }
    root.present().map_err(e)
}

/// Draws on an SVG or PNG file chosen by extension.
fn render(path: &Path, draw: &dyn Fn(bool, bool) -> DrawResult) -> RResult<bool> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|x| rerr(format!("{}: {x}", dir.display())))?;
    }
    let ext = path
        .extension()
        .and_then(|x| x.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let text = font_ready();
    let svg = match ext.as_str() {
        "svg" => true,
        "png" => false,
        other => {
            return Err(rerr(format!(
                "{}: unknown plot format `{other}`; use .svg or .png",
                path.display()
            )))
        }
    };
    draw(svg, text).map_err(|x| rerr(format!("plot {}: {x}", path.display())))?;
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

fn plot_languages(ctx: &Ctx, results: &Map, path: &str) -> RResult<String> {
    let series: Vec<(String, Scores)> = results
        .iter()
        .map(|(k, v)| {
            v.clone()
                .try_cast::<Scores>()
                .map(|s| (k.to_string(), s))
                .ok_or_else(|| {
                    rerr(format!(
                        "plot_languages: `{k}` is {}, not a Result",
                        v.type_name()
                    ))
                })
        })
        .collect::<RResult<_>>()?;
    let p = PathBuf::from(path);
    let p2 = p.clone();
    let text = render(&p, &move |svg, text| {
        if svg {
            draw_languages(
                SVGBackend::new(&p2, (900, 500)).into_drawing_area(),
                &series,
                text,
            )
        } else {
            draw_languages(
                BitMapBackend::new(&p2, (900, 500)).into_drawing_area(),
                &series,
                text,
            )
        }
    })?;
    record(ctx, &p, text);
    Ok(path.to_string())
}

/// Known sizes in order, then the others by name.
fn order_sizes(names: Vec<String>) -> Vec<String> {
    let known = crate::model::registry::size_names();
    let mut v = names;
    v.sort_by_key(|n| {
        (
            known.iter().position(|k| k == n).unwrap_or(usize::MAX),
            n.clone(),
        )
    });
    v.dedup();
    v
}

fn plot_gain(ctx: &Ctx, gains: &Map, path: &str) -> RResult<String> {
    // size → Comparison: one line per language plus avg.
    // name → (size → Comparison): one line (avg) per name.
    let mut lines: Vec<(String, Vec<Option<(f64, Option<(f64, f64)>)>>)> = vec![];
    let sizes;
    if gains.values().all(|v| v.is::<Comparison>()) {
        let comps: Vec<(String, Comparison)> = gains
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone().cast::<Comparison>()))
            .collect();
        sizes = order_sizes(comps.iter().map(|(k, _)| k.clone()).collect());
        let mut langs: Vec<String> = comps
            .iter()
            .flat_map(|(_, c)| c.by_lang.keys().cloned())
            .collect();
        langs.sort();
        langs.dedup();
        let get = |s: &str| comps.iter().find(|(k, _)| k == s).map(|(_, c)| c);
        for l in &langs {
            lines.push((
                l.clone(),
                sizes
                    .iter()
                    .map(|s| {
                        get(s)
                            .and_then(|c| c.by_lang.get(l))
                            .map(|d| (d.delta, d.ci))
                    })
                    .collect(),
            ));
        }
        lines.push((
            "avg".into(),
            sizes
                .iter()
                .map(|s| get(s).map(|c| (c.avg.delta, c.avg.ci)))
                .collect(),
        ));
    } else {
        let mut all = vec![];
        for (name, v) in gains {
            let m = v.clone().try_cast::<Map>().ok_or_else(|| rerr(format!("plot_gain: `{name}` is {}; give size → Comparison, or name → (size → Comparison)", v.type_name())))?;
            let mut per = vec![];
            for (s, c) in &m {
                let c = c.clone().try_cast::<Comparison>().ok_or_else(|| {
                    rerr(format!("plot_gain: `{name}`.`{s}` is not a Comparison"))
                })?;
                per.push((s.to_string(), c));
            }
            all.push((name.to_string(), per));
        }
        sizes = order_sizes(
            all.iter()
                .flat_map(|(_, p)| p.iter().map(|(s, _)| s.clone()))
                .collect(),
        );
        for (name, per) in &all {
            lines.push((
                name.clone(),
                sizes
                    .iter()
                    .map(|s| {
                        per.iter()
                            .find(|(k, _)| k == s)
                            .map(|(_, c)| (c.avg.delta, c.avg.ci))
                    })
                    .collect(),
            ));
        }
    }
    let p = PathBuf::from(path);
    let p2 = p.clone();
    let text = render(&p, &move |svg, text| {
        if svg {
            draw_gain(
                SVGBackend::new(&p2, (900, 500)).into_drawing_area(),
                &sizes,
                &lines,
                text,
            )
        } else {
            draw_gain(
                BitMapBackend::new(&p2, (900, 500)).into_drawing_area(),
                &sizes,
                &lines,
                text,
            )
        }
    })?;
    record(ctx, &p, text);
    Ok(path.to_string())
}

/// Loss per update (thin) with its running mean over 20 updates (thick),
/// and the dev score of each evaluation on a second axis.
fn draw_training<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    losses: &[f64],
    dev: &[(f64, f64)],
    text: bool,
) -> DrawResult {
    root.fill(&WHITE).map_err(e)?;
    let n = losses.len().max(1) as f64;
    let finite: Vec<f64> = losses.iter().copied().filter(|x| x.is_finite()).collect();
    let hi = finite.iter().copied().fold(0.0_f64, f64::max).max(1e-6) * 1.05;
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
            .y_desc("training loss")
            .draw()
            .map_err(e)?;
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
                .y_desc("dev score")
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
fn plot_training(ctx: &Ctx, m: &crate::script::values::ModelValue, path: &str) -> RResult<String> {
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
    let p = PathBuf::from(path);
    let p2 = p.clone();
    let text = render(&p, &move |svg, text| {
        if svg {
            draw_training(
                SVGBackend::new(&p2, (900, 500)).into_drawing_area(),
                &title,
                &losses,
                &dev,
                text,
            )
        } else {
            draw_training(
                BitMapBackend::new(&p2, (900, 500)).into_drawing_area(),
                &title,
                &losses,
                &dev,
                text,
            )
        }
    })?;
    record(ctx, &p, text);
    Ok(path.to_string())
}

pub fn register(engine: &mut Engine, ctx: &Rc<Ctx>) {
    let c = ctx.clone();
    engine.register_fn(
        "plot_training",
        move |m: crate::script::values::ModelValue, path: &str| {
            c.writable(path).map_err(rerr)?;
            if !c.writes() {
                return Ok(path.to_string());
            }
            plot_training(&c, &m, path)
        },
    );
    let c = ctx.clone();
    engine.register_fn("plot_languages", move |results: Map, path: &str| {
        c.writable(path).map_err(rerr)?;
        if !c.writes() {
            return Ok(path.to_string());
        }
        plot_languages(&c, &results, path)
    });
    let c = ctx.clone();
    engine.register_fn("plot_gain", move |gains: Map, path: &str| {
        c.writable(path).map_err(rerr)?;
        if !c.writes() {
            return Ok(path.to_string());
        }
        plot_gain(&c, &gains, path)
    });
    let _ = Dynamic::UNIT;
}
