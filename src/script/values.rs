//! The values a script holds: models, tasks, results, comparisons and
//! tables. Each is cheap to clone (rhai copies values freely): the heavy
//! part sits behind an `Arc`.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::model::Model;
use crate::tasks::Dataset;

/// A model in a script: the model and where it came from.
#[derive(Clone)]
pub struct ModelValue {
    pub model: Arc<Model>,
    /// What loaded or made it (`xlmr-large`, `tiny`, a directory, ...).
    pub name: String,
    /// True for a pretrained checkpoint whose head is a placeholder: training
    /// puts the task's head on it.
    pub pretrained: bool,
    /// The AdamW state its training ended with (for `reset_optimizer: false`
    /// in the next phase); `None` for loaded or new models.
    pub optimizer: Option<Arc<crate::protocol::optim::OptimizerState>>,
}

impl std::fmt::Display for ModelValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "model `{}`: {}", self.name, self.model)?;
        if self.pretrained {
            write!(f, " (pretrained; training puts the task's head on)")?;
        }
        Ok(())
    }
}

/// A task split, one dataset per language (or one without a language).
#[derive(Clone)]
pub struct TaskValue {
    pub name: String,
    pub split: String,
    pub parts: Arc<Vec<Dataset>>,
}

impl TaskValue {
    /// The key of a part in results: its language or round, else the task name.
    pub fn key(&self, ds: &Dataset) -> String {
        ds.subset.clone().unwrap_or_else(|| self.name.clone())
    }

    pub fn languages(&self) -> Vec<String> {
        self.parts.iter().map(|d| self.key(d)).collect()
    }

    pub fn len(&self) -> usize {
        self.parts.iter().map(Dataset::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for TaskValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some(first) = self.parts.first() else {
            return write!(f, "task `{}` ({}): empty", self.name, self.split);
        };
        write!(
            f,
            "task `{}` ({}): {} examples, head {}",
            self.name,
            self.split,
            self.len(),
            first.head.name()
        )?;
        if !first.labels.is_empty() {
            write!(f, " [{}]", first.labels.join(", "))?;
        }
        write!(f, ", metric {}", first.metric.name())?;
        if self.parts.len() > 1 || first.subset.is_some() {
            let per: Vec<String> = self
                .parts
                .iter()
                .map(|d| format!("{} {}", self.key(d), d.len()))
                .collect();
            write!(f, "; {}", per.join(", "))?;
        }
        let skipped: usize = self.parts.iter().map(|d| d.skipped.bad_lines).sum();
        if skipped > 0 {
            write!(f, "; {skipped} malformed lines left out")?;
        }
        Ok(())
    }
}

/// The score of one language.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LangScore {
    /// The metric (percent), the mean over runs when there are several.
    pub value: f64,
    /// Examples scored.
    pub n: usize,
    /// One value per run (seed) when this score is a mean; empty for one run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<f64>,
    /// Right/wrong per example, one list per run (accuracy metrics), for
    /// bootstrap intervals; stored packed.
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "bits")]
    pub correct: Vec<Vec<bool>>,
}

/// Scores of one model on one task, per language.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scores {
    /// What was evaluated (the model's name, or a label the script gives).
    pub label: String,
    pub task: String,
    pub split: String,
    pub metric: String,
    pub by_lang: BTreeMap<String, LangScore>,
}

impl Scores {
    /// The unweighted mean over languages.
    pub fn avg(&self) -> f64 {
        mean(&self.by_lang.values().map(|s| s.value).collect::<Vec<_>>())
    }

    /// Per-run averages (one per seed) when the languages carry runs.
    pub fn avg_runs(&self) -> Vec<f64> {
        let k = self
            .by_lang
            .values()
            .map(|s| s.runs.len())
            .min()
            .unwrap_or(0);
        (0..k)
            .map(|i| mean(&self.by_lang.values().map(|s| s.runs[i]).collect::<Vec<_>>()))
            .collect()
    }

    pub fn table(&self) -> TableValue {
        let multi = self.by_lang.values().any(|s| s.runs.len() > 1);
        let mut header = vec!["language".to_string(), self.metric.clone()];
        if multi {
            header.push("± 95% CI".into());
        }
        header.push("n".into());
        let mut rows = vec![];
        for (lang, s) in &self.by_lang {
            let mut r = vec![lang.clone(), format!("{:.1}", s.value)];
            if multi {
                r.push(
                    mean_ci(&s.runs)
                        .map(|(_, h)| format!("{h:.1}"))
                        .unwrap_or_default(),
                );
            }
            r.push(s.n.to_string());
            rows.push(r);
        }
        let mut avg = vec!["avg".to_string(), format!("{:.1}", self.avg())];
        if multi {
            avg.push(
                mean_ci(&self.avg_runs())
                    .map(|(_, h)| format!("{h:.1}"))
                    .unwrap_or_default(),
            );
        }
        avg.push(
            self.by_lang
                .values()
                .map(|s| s.n)
                .sum::<usize>()
                .to_string(),
        );
        rows.push(avg);
        TableValue {
            title: format!("{} on {} ({})", self.label, self.task, self.split),
            header,
            rows,
        }
    }

    /// The mean of several runs (seeds) of the same evaluation.
    pub fn mean_of(all: &[Scores]) -> Result<Scores, String> {
        let first = all.first().ok_or("mean of no results")?;
        let mut out = Scores {
            label: first.label.clone(),
            task: first.task.clone(),
            split: first.split.clone(),
            metric: first.metric.clone(),
            by_lang: BTreeMap::new(),
        };
        for lang in first.by_lang.keys() {
            let mut runs = vec![];
            for s in all {
                let v = s.by_lang.get(lang).ok_or_else(|| format!("mean: `{}` has no score for `{lang}`; all results must cover the same languages", s.label))?;
                if v.runs.is_empty() {
                    runs.push(v.value);
                } else {
                    runs.extend(&v.runs);
                }
            }
            let mut correct = vec![];
            for s in all {
                correct.extend(s.by_lang[lang].correct.iter().cloned());
            }
            let n = first.by_lang[lang].n;
            if correct.len() != runs.len() || correct.iter().any(|c| c.len() != correct[0].len()) {
                correct.clear();
            }
            out.by_lang.insert(
                lang.clone(),
                LangScore {
                    value: mean(&runs),
                    n,
                    runs,
                    correct,
                },
            );
        }
        Ok(out)
    }
}

/// One language of a comparison.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Delta {
    pub base: f64,
    pub new: f64,
    pub delta: f64,
    /// 95% interval of the delta, when it can be estimated.
    pub ci: Option<(f64, f64)>,
}

/// `compare(base, new)`: the gain of `new` over `base` per language.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Comparison {
    pub base: String,
    pub new: String,
    pub metric: String,
    /// How intervals were estimated.
    pub method: String,
    pub by_lang: BTreeMap<String, Delta>,
    pub avg: Delta,
}

impl Comparison {
    pub fn new(a: &Scores, b: &Scores) -> Result<Comparison, String> {
        let mut by_lang = BTreeMap::new();
        let mut method = String::new();
        for (lang, sa) in &a.by_lang {
            let Some(sb) = b.by_lang.get(lang) else {
                continue;
            };
            let (ci, m) = delta_ci(sa, sb, lang);
            if !m.is_empty() {
                method = m;
            }
            by_lang.insert(
                lang.clone(),
                Delta {
                    base: sa.value,
                    new: sb.value,
                    delta: sb.value - sa.value,
                    ci,
                },
            );
        }
        if by_lang.is_empty() {
            return Err(format!(
                "compare: `{}` and `{}` share no language",
                a.label, b.label
            ));
        }
        let base = mean(&by_lang.values().map(|d| d.base).collect::<Vec<_>>());
        let new = mean(&by_lang.values().map(|d| d.new).collect::<Vec<_>>());
        let (ra, rb) = (a.avg_runs(), b.avg_runs());
        let avg_ci = if ra.len() > 1 && rb.len() > 1 {
            diff_ci(&ra, &rb)
        } else {
            None
        };
        let avg = Delta {
            base,
            new,
            delta: new - base,
            ci: avg_ci,
        };
        if method.is_empty() {
            method = "none (one run each, no per-example scores)".into();
        }
        Ok(Comparison {
            base: a.label.clone(),
            new: b.label.clone(),
            metric: a.metric.clone(),
            method,
            by_lang,
            avg,
        })
    }

    pub fn table(&self) -> TableValue {
        let header = vec![
            "language".to_string(),
            self.base.clone(),
            self.new.clone(),
            "Δ".into(),
            "95% CI".into(),
        ];
        let fmt_ci = |c: &Option<(f64, f64)>| {
            c.map(|(l, h)| format!("[{l:+.1}, {h:+.1}]"))
                .unwrap_or_else(|| "—".into())
        };
        let mut rows: Vec<Vec<String>> = self
            .by_lang
            .iter()
            .map(|(l, d)| {
                vec![
                    l.clone(),
                    format!("{:.1}", d.base),
                    format!("{:.1}", d.new),
                    format!("{:+.1}", d.delta),
                    fmt_ci(&d.ci),
                ]
            })
            .collect();
        let a = &self.avg;
        rows.push(vec![
            "avg".into(),
            format!("{:.1}", a.base),
            format!("{:.1}", a.new),
            format!("{:+.1}", a.delta),
            fmt_ci(&a.ci),
        ]);
        TableValue {
            title: format!(
                "{} vs {} ({}; CI: {})",
                self.new, self.base, self.metric, self.method
            ),
            header,
            rows,
        }
    }
}

/// The delta's 95% interval: the engine's paired bootstrap over examples
/// (all seeds pooled) when both sides carry right/wrong per example of the
/// same examples, else Welch's t over seeds when both have several.
fn delta_ci(a: &LangScore, b: &LangScore, lang: &str) -> (Option<(f64, f64)>, String) {
    let same =
        !a.correct.is_empty() && !b.correct.is_empty() && a.correct[0].len() == b.correct[0].len();
    if same {
        let seed = lang
            .bytes()
            .fold(17u64, |h, c| h.wrapping_mul(31).wrapping_add(c as u64));
        let e = crate::protocol::stats::paired_delta(&a.correct, &b.correct, 1000, seed);
        return (
            Some((e.low, e.high)),
            "paired bootstrap over examples".into(),
        );
    }
    if a.runs.len() > 1 && b.runs.len() > 1 {
        return (diff_ci(&a.runs, &b.runs), "Welch t over seeds".into());
    }
    (None, String::new())
}

/// `Vec<Vec<bool>>` as packed strings (the store's encoding).
mod bits {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[Vec<bool>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|b| crate::store::pack_bits(b)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<bool>>, D::Error> {
        let v: Vec<String> = Vec::deserialize(d)?;
        v.iter()
            .map(|s| {
                crate::store::unpack_bits(s)
                    .ok_or_else(|| serde::de::Error::custom("bad packed bits"))
            })
            .collect()
    }
}

pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn var(v: &[f64]) -> f64 {
    let m = mean(v);
    v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() as f64 - 1.0)
}

/// Two-sided 97.5% quantile of Student's t.
pub fn t975(df: f64) -> f64 {
    const T: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    let d = df.floor().max(1.0) as usize;
    if d <= 30 {
        T[d - 1]
    } else {
        1.96
    }
}

/// Mean and half-width of its 95% interval (t), for two or more values.
pub fn mean_ci(v: &[f64]) -> Option<(f64, f64)> {
    if v.len() < 2 {
        return None;
    }
    let n = v.len() as f64;
    Some((mean(v), t975(n - 1.0) * (var(v) / n).sqrt()))
}

/// Welch interval of mean(b) - mean(a).
fn diff_ci(a: &[f64], b: &[f64]) -> Option<(f64, f64)> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (va, vb) = (var(a) / na, var(b) / nb);
    let se = (va + vb).sqrt();
    let df = if se == 0.0 {
        na + nb - 2.0
    } else {
        (va + vb).powi(2) / (va * va / (na - 1.0) + vb * vb / (nb - 1.0))
    };
    let d = mean(b) - mean(a);
    let h = t975(df) * se;
    Some((d - h, d + h))
}

/// A table a script can print, save or put in a report.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TableValue {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl TableValue {
    pub fn render(&self) -> comfy_table::Table {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        t.set_header(self.header.clone());
        for r in &self.rows {
            t.add_row(r.clone());
        }
        for (i, c) in t.column_iter_mut().enumerate() {
            if i > 0 {
                c.set_cell_alignment(comfy_table::CellAlignment::Right);
            }
        }
        t
    }

    pub fn markdown(&self) -> String {
        let esc = |s: &str| s.replace('|', "\\|");
        let mut s = String::new();
        if !self.title.is_empty() {
            s.push_str(&format!("**{}**\n\n", esc(&self.title)));
        }
        s.push_str(&format!(
            "| {} |\n",
            self.header
                .iter()
                .map(|h| esc(h))
                .collect::<Vec<_>>()
                .join(" | ")
        ));
        s.push_str(&format!(
            "|{}\n",
            self.header
                .iter()
                .enumerate()
                .map(|(i, _)| if i == 0 { "---|" } else { "---:|" })
                .collect::<String>()
        ));
        for r in &self.rows {
            s.push_str(&format!(
                "| {} |\n",
                r.iter().map(|c| esc(c)).collect::<Vec<_>>().join(" | ")
            ));
        }
        s
    }

    pub fn csv(&self) -> String {
        let mut w = csv::Writer::from_writer(vec![]);
        let _ = w.write_record(&self.header);
        for r in &self.rows {
            let _ = w.write_record(r);
        }
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }
}

impl std::fmt::Display for TableValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.title.is_empty() {
            writeln!(f, "{}", self.title)?;
        }
        write!(f, "{}", self.render())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(label: &str, vals: &[(&str, f64)]) -> Scores {
        Scores {
            label: label.into(),
            task: "xnli".into(),
            split: "test".into(),
            metric: "accuracy".into(),
            by_lang: vals
                .iter()
                .map(|(l, v)| {
                    (
                        l.to_string(),
                        LangScore {
                            value: *v,
                            n: 10,
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn means_and_deltas() {
        let a = Scores::mean_of(&[
            scores("a", &[("de", 70.0), ("sw", 60.0)]),
            scores("a", &[("de", 72.0), ("sw", 62.0)]),
        ])
        .unwrap();
        let b = Scores::mean_of(&[
            scores("b", &[("de", 75.0), ("sw", 61.0)]),
            scores("b", &[("de", 77.0), ("sw", 63.0)]),
        ])
        .unwrap();
        assert_eq!(a.by_lang["de"].value, 71.0);
        let c = Comparison::new(&a, &b).unwrap();
        assert_eq!(c.by_lang["de"].delta, 5.0);
        assert!(c.by_lang["de"].ci.is_some());
        assert_eq!(c.avg.delta, 3.0);
        assert!(c.table().to_string().contains("+5.0"));
    }
}
