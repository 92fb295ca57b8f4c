//! The values a script holds: models, tasks, results, comparisons and
//! tables. Each is cheap to clone (rhai copies values freely): the heavy
//! part sits behind an `Arc`.

use std::collections::BTreeMap;
use std::sync::Arc;

use stilts_model::Model;
use stilts_protocol::stats::{self, SeedEstimate};
use stilts_tasks::Dataset;

/// A model in a script: the model and where it came from.
#[derive(Clone)]
pub struct ModelValue {
    /// The model itself, behind an `Arc`: clones of the value share its weights.
    pub model: Arc<Model>,
    /// What loaded or made it (`xlmr-large`, `tiny`, a directory, ...).
    pub name: String,
    /// True for a pretrained checkpoint whose head is a placeholder: training
    /// puts the task's head on it.
    pub pretrained: bool,
    /// The AdamW state its training ended with (for `reset_optimizer: false`
    /// in the next phase); `None` for loaded or new models.
    pub optimizer: Option<Arc<stilts_protocol::optim::OptimizerState>>,
    /// What its numbers depend on (its files, its weights, or the model,
    /// data and options it was trained from): memo keys and conditions use it.
    pub fingerprint: String,
    /// What its last training did (updates, losses, dev scores, best
    /// update); `None` for loaded or new models.
    pub training: Option<Arc<serde_json::Value>>,
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
    /// The task's name (e.g. `xnli`, or a TSV file's stem), as results and
    /// conditions name it.
    pub name: String,
    /// The split it was loaded from (`train`, `dev`, `test`).
    pub split: String,
    /// One dataset per language or round (a single one for a task without
    /// languages).
    pub parts: Arc<Vec<Dataset>>,
    /// Computed on first use (hashing the files and examples).
    fingerprint: Arc<std::sync::OnceLock<String>>,
}

impl TaskValue {
    /// A task of `parts`; its fingerprint is computed on first use.
    pub fn new(name: impl Into<String>, split: impl Into<String>, parts: Vec<Dataset>) -> Self {
        TaskValue {
            name: name.into(),
            split: split.into(),
            parts: Arc::new(parts),
            fingerprint: Default::default(),
        }
    }

    /// The fingerprint of the data (files and examples), computed once.
    pub fn fingerprint(&self) -> stilts_model::Result<String> {
        if let Some(f) = self.fingerprint.get() {
            return Ok(f.clone());
        }
        let f = stilts_protocol::fingerprint::datasets(&self.parts)?;
        let _ = self.fingerprint.set(f.clone());
        Ok(f)
    }

    /// The task as the protocol takes it.
    pub fn task_data(&self) -> stilts_model::Result<stilts_protocol::experiment::TaskData> {
        Ok(stilts_protocol::experiment::TaskData {
            name: self.name.clone(),
            parts: self.parts.clone(),
            fingerprint: self.fingerprint()?,
        })
    }

    /// Whether the task is scored by sentence retrieval (Tatoeba): no head,
    /// no training data.
    pub fn is_retrieval(&self) -> bool {
        self.parts
            .iter()
            .any(|d| d.metric == stilts_tasks::Metric::Retrieval)
    }

    /// The key of a part in results: its language or round, else the task name.
    pub fn key(&self, ds: &Dataset) -> String {
        ds.subset.clone().unwrap_or_else(|| self.name.clone())
    }

    /// The key of each part (see `key`), in part order.
    pub fn languages(&self) -> Vec<String> {
        self.parts.iter().map(|d| self.key(d)).collect()
    }

    /// Examples in all parts together.
    pub fn len(&self) -> usize {
        self.parts.iter().map(Dataset::len).sum()
    }

    /// True when no part has an example.
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
            "task `{}` ({}): {}, head {}",
            self.name,
            self.split,
            stilts_model::util::plural(self.len(), "example"),
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
    /// The runs whose model learned nothing here (collapsed to one class,
    /// or its loss ended at chance), one line each naming the run and why
    /// (`stilts_protocol::summary::collapses`); tables mark such cells.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collapse: Vec<String>,
}

impl LangScore {
    /// The runs (seeds) behind this score: one, or as many as `runs`.
    pub fn run_count(&self) -> usize {
        self.runs.len().max(1)
    }

    /// What a table adds to a cell whose runs learned nothing: ` (collapsed)`
    /// when every run predicts one class, ` (collapsed 1/3)` when some do;
    /// ` (loss at chance)` (or `1/3`) when their loss ended at ln K but
    /// their predictions are spread; empty otherwise.
    pub fn collapse_mark(&self) -> String {
        let (k, n) = (self.collapse.len(), self.run_count());
        let what = if self.collapse.iter().any(|c| c.contains("collapsed:")) {
            "collapsed"
        } else {
            "loss at chance"
        };
        match k {
            0 => String::new(),
            _ if k >= n => format!(" ({what})"),
            _ => format!(" ({what} {k}/{n})"),
        }
    }
}

/// Scores of one model on one task, per language.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scores {
    /// What was evaluated (the model's name, or a label the script gives).
    pub label: String,
    /// Name of the task evaluated.
    pub task: String,
    /// The split evaluated.
    pub split: String,
    /// The metric's name (`accuracy`, `tagging accuracy` or `f1`); every score
    /// is in percent.
    pub metric: String,
    /// The score of each part, by its key (language or round, else the task
    /// name), sorted.
    pub by_lang: BTreeMap<String, LangScore>,
    /// What guessing scores (100 / labels for accuracy over k classes or
    /// k candidates), for chance lines; `None` when it has no meaning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chance: Option<f64>,
    /// Parameters of the model that made it (encoder and head), where
    /// stilts knows them: what `plot_gain` and `modulation` put on the size
    /// axis without a `params` map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<u64>,
    /// The store keys of the conditions behind it (one per seed; empty for
    /// a Result not made by `condition`): what `plot_training` reads their
    /// curves from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cells: Vec<String>,
    /// The folders of the final models of those conditions that kept one
    /// (`keep: "final"`): what `Result.model_dir` gives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_dirs: Vec<String>,
}

impl Scores {
    /// What `evaluate` and `condition` give while planning (`stilts plan`)
    /// or running one cell (`--only`): the task's languages and sizes, every
    /// example wrong. Never shown: those modes print and write nothing.
    pub fn placeholder(label: &str, t: &TaskValue) -> Scores {
        Scores {
            label: label.to_string(),
            task: t.name.clone(),
            split: t.split.clone(),
            metric: "accuracy".into(),
            chance: None,
            params: None,
            cells: vec![],
            model_dirs: vec![],
            by_lang: t
                .parts
                .iter()
                .map(|ds| {
                    (
                        t.key(ds),
                        LangScore {
                            value: 0.0,
                            n: ds.len(),
                            runs: vec![],
                            correct: vec![vec![false; ds.len()]],
                            collapse: vec![],
                        },
                    )
                })
                .collect(),
        }
    }

    /// The unweighted mean over languages.
    pub fn avg(&self) -> f64 {
        mean(&self.by_lang.values().map(|s| s.value).collect::<Vec<_>>())
    }

    /// The mark of the `avg` row: where every language is marked, the
    /// worst language's mark (` (collapsed)`, ` (collapsed 1/3)`); where
    /// only some are, how many (` (collapsed in 2/6 languages)`): an average
    /// over languages a model handled is not itself collapsed.
    pub fn avg_collapse_mark(&self) -> String {
        let marked: Vec<&LangScore> = self
            .by_lang
            .values()
            .filter(|s| !s.collapse.is_empty())
            .collect();
        let Some(worst) = marked.iter().max_by_key(|s| s.collapse.len()) else {
            return String::new();
        };
        if marked.len() == self.by_lang.len() {
            return worst.collapse_mark();
        }
        let what = if marked
            .iter()
            .any(|s| s.collapse.iter().any(|c| c.contains("collapsed:")))
        {
            "collapsed"
        } else {
            "loss at chance"
        };
        format!(
            " ({what} in {}/{} languages)",
            marked.len(),
            self.by_lang.len()
        )
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

    /// One language's (`avg`: the mean over languages) score per seed and,
    /// where kept, per-example scores per seed (`[seed][language][example]`),
    /// as the protocol's statistics take them; `None` for a language it
    /// does not have.
    pub fn seed_data(&self, lang: &str) -> Option<(Vec<f64>, Vec<stats::Strata>)> {
        if lang == "avg" {
            return Some((self.avg_runs_or_value(), self.avg_strata()));
        }
        let s = self.by_lang.get(lang)?;
        let values = if s.runs.is_empty() {
            vec![s.value]
        } else {
            s.runs.clone()
        };
        Some((values, strata_of(&[&s.correct])))
    }

    /// The seed-aware estimate of one language (`avg`: the mean over
    /// languages), from the protocol's statistics.
    pub fn estimate(&self, lang: &str) -> Option<SeedEstimate> {
        let (values, runs) = self.seed_data(lang)?;
        let mut e = stats::seed_estimate(&values, &runs, RESAMPLES, stat_seed(lang));
        // A score is a percentage: an interval past 0 or 100 (t with few
        // seeds) is cut to what the metric can take.
        e.ci = e.ci.map(|(lo, hi)| (lo.max(0.0), hi.min(100.0)));
        Some(e)
    }

    /// Per-seed averages over languages, or the single value.
    fn avg_runs_or_value(&self) -> Vec<f64> {
        let r = self.avg_runs();
        if r.is_empty() {
            vec![self.avg()]
        } else {
            r
        }
    }

    /// Per seed, every language's per-example scores (a stratum each).
    fn avg_strata(&self) -> Vec<stats::Strata> {
        let parts: Vec<&Vec<Vec<bool>>> = self.by_lang.values().map(|s| &s.correct).collect();
        strata_of(&parts)
    }

    /// The scores as a table, a row per language and one for `avg`: the
    /// value, the spread over seeds (with several), the 95% CI, the
    /// examples-only CI (with several seeds) and n; with a CSV form of plain numbers.
    pub fn table(&self) -> TableValue {
        let langs: Vec<String> = self
            .by_lang
            .keys()
            .cloned()
            .chain(std::iter::once("avg".to_string()))
            .collect();
        let est: Vec<Option<SeedEstimate>> = langs.iter().map(|l| self.estimate(l)).collect();
        let seeds = est.iter().flatten().map(|e| e.seeds).max().unwrap_or(1);
        let method = common_method(est.iter().flatten().map(|e| e.method));
        let mut header = vec!["language".to_string(), self.metric.clone()];
        if seeds > 1 {
            header.push("sd over seeds".into());
        }
        header.push("95% CI".into());
        if seeds > 1 {
            header.push("CI, examples only".into());
        }
        header.push("n".into());
        let mut csv_header = vec!["language".to_string(), self.metric.clone()];
        if seeds > 1 {
            csv_header.push("sd_over_seeds".into());
        }
        csv_header.extend(["ci_lo".to_string(), "ci_hi".to_string()]);
        if seeds > 1 {
            csv_header.extend(["examples_ci_lo".to_string(), "examples_ci_hi".to_string()]);
        }
        csv_header.push("n".into());
        let mut csv_rows = vec![];
        let mut rows = vec![];
        for (lang, e) in langs.iter().zip(&est) {
            let n = if lang == "avg" {
                self.by_lang.values().map(|s| s.n).sum::<usize>()
            } else {
                self.by_lang[lang].n
            };
            let value = if lang == "avg" {
                self.avg()
            } else {
                self.by_lang[lang].value
            };
            let mark = if lang == "avg" {
                self.avg_collapse_mark()
            } else {
                self.by_lang[lang].collapse_mark()
            };
            let mut r = vec![lang.clone(), format!("{value:.1}{mark}")];
            if seeds > 1 {
                r.push(
                    e.as_ref()
                        .map(|e| format!("{:.1}", e.seed_std))
                        .unwrap_or_default(),
                );
            }
            r.push(fmt_ci(e.as_ref().and_then(|e| e.ci)));
            if seeds > 1 {
                r.push(fmt_ci(e.as_ref().and_then(|e| e.example_ci)));
            }
            r.push(n.to_string());
            rows.push(r);
            let mut c = vec![lang.clone(), csv_num(Some(value))];
            if seeds > 1 {
                c.push(csv_num(e.as_ref().map(|e| e.seed_std)));
            }
            c.extend(csv_ci(e.as_ref().and_then(|e| e.ci)));
            if seeds > 1 {
                c.extend(csv_ci(e.as_ref().and_then(|e| e.example_ci)));
            }
            c.push(n.to_string());
            csv_rows.push(c);
        }
        TableValue {
            title: format!(
                "{} on {} ({}; {} seed{}; {})",
                self.label,
                self.task,
                self.split,
                seeds,
                if seeds == 1 { "" } else { "s" },
                method
            ),
            header,
            rows,
            csv_header,
            csv_rows,
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
            chance: first.chance,
            params: first
                .params
                .filter(|p| all.iter().all(|s| s.params == Some(*p))),
            cells: all.iter().flat_map(|s| s.cells.iter().cloned()).collect(),
            model_dirs: all
                .iter()
                .flat_map(|s| s.model_dirs.iter().cloned())
                .collect(),
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
            let mut collapse = vec![];
            for s in all {
                correct.extend(s.by_lang[lang].correct.iter().cloned());
                collapse.extend(s.by_lang[lang].collapse.iter().cloned());
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
                    collapse,
                },
            );
        }
        Ok(out)
    }
}

/// One language of a comparison.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Delta {
    /// The baseline's score (percent; the mean over seeds, or over languages
    /// for `avg`).
    pub base: f64,
    /// The new result's score, as `base`.
    pub new: f64,
    /// `new - base`, in points.
    pub delta: f64,
    /// 95% interval of the delta, when it can be estimated (see `method`).
    pub ci: Option<(f64, f64)>,
    /// How `ci` was estimated; `None` when there is no `ci`.
    #[serde(default)]
    pub method: Option<stats::IntervalMethod>,
    /// The example-level interval alone (seeds fixed), beside `ci`.
    #[serde(default)]
    pub example_ci: Option<(f64, f64)>,
    /// Seeds paired (or the fewer of the two sides).
    #[serde(default)]
    pub seeds: usize,
}

/// `compare(base, new)`: the gain of `new` over `base` per language.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Comparison {
    /// Label of the baseline result.
    pub base: String,
    /// Label of the result compared with it.
    pub new: String,
    /// The metric's name, taken from the baseline.
    pub metric: String,
    /// How intervals were estimated.
    pub method: String,
    /// The comparison of each language, by key.
    pub by_lang: BTreeMap<String, Delta>,
    /// The comparison of the unweighted means over languages.
    pub avg: Delta,
    /// The two Results compared (baseline, new), kept for what is computed
    /// from the runs themselves (`modulation`, `seeds_needed`); `None` in a
    /// comparison saved before they were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sides: Option<Box<(Scores, Scores)>>,
}

impl Comparison {
    /// The gain of `b` over `a` per language and on average, paired by seed
    /// and by example (the protocol's `paired_seed_delta`). Both must cover
    /// the same languages (the rule `mean` follows too).
    pub fn new(a: &Scores, b: &Scores) -> Result<Comparison, String> {
        let la: Vec<&String> = a.by_lang.keys().collect();
        let lb: Vec<&String> = b.by_lang.keys().collect();
        if la != lb {
            return Err(format!(
                "compare: `{}` covers [{}] but `{}` covers [{}]; compare results over the same languages (use task.language(...) to pick them)",
                a.label,
                la.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                b.label,
                lb.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
        let delta = |lang: &str| -> Delta {
            let side = |s: &Scores| s.seed_data(lang).unwrap_or_default();
            let (va, ra) = side(a);
            let (vb, rb) = side(b);
            let mut e = stats::paired_seed_delta(&va, &ra, &vb, &rb, RESAMPLES, stat_seed(lang));
            // A gain in points lies within [-100, 100].
            e.ci = e.ci.map(|(lo, hi)| (lo.max(-100.0), hi.min(100.0)));
            let (base, new) = if lang == "avg" {
                (a.avg(), b.avg())
            } else {
                (a.by_lang[lang].value, b.by_lang[lang].value)
            };
            Delta {
                base,
                new,
                delta: new - base,
                ci: e.ci,
                method: e.method,
                example_ci: e.example_ci,
                seeds: e.seeds,
            }
        };
        let by_lang: BTreeMap<String, Delta> =
            a.by_lang.keys().map(|l| (l.clone(), delta(l))).collect();
        if by_lang.is_empty() {
            return Err(format!("compare: `{}` has no languages", a.label));
        }
        let avg = delta("avg");
        let method = common_method(by_lang.values().chain([&avg]).map(|d| d.method)).to_string();
        Ok(Comparison {
            base: a.label.clone(),
            new: b.label.clone(),
            metric: a.metric.clone(),
            method,
            by_lang,
            avg,
            sides: Some(Box::new((a.clone(), b.clone()))),
        })
    }

    /// The gain at this comparison's size for `lang` (a language or
    /// `"avg"`) in the form contrasts across sizes take: held to the very
    /// interval this comparison reports (`SizeGain::paired` with the same
    /// resamples and seed). `None` without the runs (a comparison saved by
    /// an older stilts) or where the language is missing.
    pub fn size_gain(&self, lang: &str) -> Option<stats::SizeGain> {
        let (a, b) = self.sides.as_deref()?;
        let (av, ar) = a.seed_data(lang)?;
        let (bv, br) = b.seed_data(lang)?;
        Some(stats::SizeGain::paired(
            &av,
            &ar,
            &bv,
            &br,
            RESAMPLES,
            stat_seed(lang),
        ))
    }

    /// Each seed's gain for `lang` (`"avg"` for the average), seeds paired
    /// by number as `compare` pairs them; empty where the two sides have
    /// different seed counts or the runs are not kept.
    pub fn seed_gains(&self, lang: &str) -> Vec<f64> {
        let Some((a, b)) = self.sides.as_deref() else {
            return vec![];
        };
        match (a.seed_data(lang), b.seed_data(lang)) {
            (Some((va, _)), Some((vb, _))) if va.len() == vb.len() => {
                va.iter().zip(&vb).map(|(x, y)| y - x).collect()
            }
            _ => vec![],
        }
    }

    /// The parameters of the model compared, when both Results carry the
    /// same count (the baseline and the new condition at one size).
    pub fn params(&self) -> Option<u64> {
        let (a, b) = self.sides.as_deref()?;
        match (a.params, b.params) {
            (Some(x), Some(y)) if x == y => Some(x),
            (Some(x), None) | (None, Some(x)) => Some(x),
            _ => None,
        }
    }

    /// The comparison as a table: per language and `avg`, both scores, the
    /// gain, its 95% CI (and the examples-only one with several seeds); with a
    /// CSV form of plain numbers.
    pub fn table(&self) -> TableValue {
        let seeds = self
            .by_lang
            .values()
            .chain([&self.avg])
            .map(|d| d.seeds)
            .max()
            .unwrap_or(1);
        let mut header = vec![
            "language".to_string(),
            self.base.clone(),
            self.new.clone(),
            "Δ".into(),
            "95% CI".into(),
        ];
        if seeds > 1 {
            header.push("CI, examples only".into());
        }
        // A side whose model learned nothing in a language is marked there.
        let mark = |s: &Scores, l: &str| {
            if l == "avg" {
                s.avg_collapse_mark()
            } else {
                s.by_lang
                    .get(l)
                    .map(LangScore::collapse_mark)
                    .unwrap_or_default()
            }
        };
        let marks = |l: &str| match self.sides.as_deref() {
            Some((a, b)) => (mark(a, l), mark(b, l)),
            None => (String::new(), String::new()),
        };
        let row = |l: &str, d: &Delta| {
            let (mb, mn) = marks(l);
            let mut r = vec![
                l.to_string(),
                format!("{:.1}{mb}", d.base),
                format!("{:.1}{mn}", d.new),
                format!("{:+.1}", d.delta),
                fmt_ci(d.ci),
            ];
            if seeds > 1 {
                r.push(fmt_ci(d.example_ci));
            }
            r
        };
        let mut rows: Vec<Vec<String>> = self.by_lang.iter().map(|(l, d)| row(l, d)).collect();
        rows.push(row("avg", &self.avg));
        let mut csv_header = vec![
            "language".to_string(),
            self.base.clone(),
            self.new.clone(),
            "delta".into(),
            "ci_lo".into(),
            "ci_hi".into(),
        ];
        if seeds > 1 {
            csv_header.extend(["examples_ci_lo".to_string(), "examples_ci_hi".to_string()]);
        }
        let csv_row = |l: &str, d: &Delta| {
            let mut r = vec![
                l.to_string(),
                csv_num(Some(d.base)),
                csv_num(Some(d.new)),
                csv_num(Some(d.delta)),
            ];
            r.extend(csv_ci(d.ci));
            if seeds > 1 {
                r.extend(csv_ci(d.example_ci));
            }
            r
        };
        let mut csv_rows: Vec<Vec<String>> =
            self.by_lang.iter().map(|(l, d)| csv_row(l, d)).collect();
        csv_rows.push(csv_row("avg", &self.avg));
        TableValue {
            csv_header,
            csv_rows,
            title: format!(
                "{} vs {} ({}; {} seed{} each; {})",
                self.new,
                self.base,
                self.metric,
                seeds,
                if seeds == 1 { "" } else { "s" },
                self.method
            ),
            header,
            rows,
        }
    }
}

/// Bootstrap resamples of every interval a table shows.
const RESAMPLES: usize = 1000;

/// The bootstrap seed of every row: fixed, so a table is the same every
/// time it is made, and a row computed from the same numbers (the average
/// of a single language) gets the same interval.
fn stat_seed(_lang: &str) -> u64 {
    17
}

/// `[language][run][example]` right/wrong as the protocol's per-run strata
/// (`[run][language][example]` scores); empty unless every language has the
/// same number of runs.
fn strata_of(parts: &[&Vec<Vec<bool>>]) -> Vec<stats::Strata> {
    let k = parts.first().map(|p| p.len()).unwrap_or(0);
    if k == 0 || parts.iter().any(|p| p.len() != k) {
        return vec![];
    }
    (0..k)
        .map(|r| {
            parts
                .iter()
                .map(|p| p[r].iter().map(|&b| f64::from(u8::from(b))).collect())
                .collect()
        })
        .collect()
}

/// The one interval method of a set of rows, or a note that they differ.
fn common_method(ms: impl Iterator<Item = Option<stats::IntervalMethod>>) -> &'static str {
    let ms: Vec<Option<stats::IntervalMethod>> = ms.collect();
    match ms.first() {
        None | Some(None) if ms.iter().all(Option::is_none) => {
            "no interval (one run, no per-example scores)"
        }
        Some(first) if ms.iter().all(|m| m == first) => first.map(|m| m.describe()).unwrap_or(""),
        _ => "95% CI: methods differ by row (some rows lack per-example scores)",
    }
}

/// A number for a CSV cell: up to 6 decimals, no trailing zeros; empty
/// for none or NaN.
pub fn csv_num(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => {
            let s = format!("{v:.6}");
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s == "-0" {
                "0".into()
            } else {
                s.to_string()
            }
        }
        _ => String::new(),
    }
}

/// An interval's two ends as CSV cells.
pub fn csv_ci(c: Option<(f64, f64)>) -> [String; 2] {
    [csv_num(c.map(|c| c.0)), csv_num(c.map(|c| c.1))]
}

fn fmt_ci(c: Option<(f64, f64)>) -> String {
    c.map(|(l, h)| format!("[{l:.1}, {h:.1}]"))
        .unwrap_or_else(|| "—".into())
}

/// `Vec<Vec<bool>>` as packed strings (the store's encoding).
mod bits {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[Vec<bool>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|b| stilts_protocol::store::pack_bits(b)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<bool>>, D::Error> {
        let v: Vec<String> = Vec::deserialize(d)?;
        v.iter()
            .map(|s| {
                stilts_protocol::store::unpack_bits(s)
                    .ok_or_else(|| serde::de::Error::custom("bad packed bits"))
            })
            .collect()
    }
}

/// The mean of `v`; NaN when it is empty.
pub fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// The name a script knows a value's type by, as `type_of` says it
/// (`Model`, `Task`, `Result`, `i64`, `map`), never a Rust path.
pub fn type_name(v: &rhai::Dynamic) -> &'static str {
    if v.is::<ModelValue>() {
        "Model"
    } else if v.is::<TaskValue>() {
        "Task"
    } else if v.is::<Scores>() {
        "Result"
    } else if v.is::<Comparison>() {
        "Comparison"
    } else if v.is::<TableValue>() {
        "Table"
    } else if v.is_unit() {
        "()"
    } else if v.is_int() {
        "i64"
    } else if v.is_float() {
        "f64"
    } else if v.is_bool() {
        "bool"
    } else if v.is_string() {
        "string"
    } else if v.is_char() {
        "char"
    } else if v.is_array() {
        "array"
    } else if v.is_map() {
        "map"
    } else if v.is_fnptr() {
        "Fn"
    } else {
        "a value of another kind"
    }
}

/// A table a script can print, save or put in a report.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TableValue {
    /// A line shown above the table; empty for none.
    pub title: String,
    /// Column names of the displayed table.
    pub header: Vec<String>,
    /// The displayed cells (formatted text), row by row.
    pub rows: Vec<Vec<String>>,
    /// The CSV form when it differs from the display: numbers only, an
    /// interval as two columns (`..._lo`, `..._hi`), an empty cell where
    /// there is none. Empty: the CSV is the display table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub csv_header: Vec<String>,
    /// The CSV form's rows, under `csv_header`; empty when the CSV is the
    /// display table.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub csv_rows: Vec<Vec<String>>,
}

impl TableValue {
    /// The table for a terminal (comfy-table; every column but the first
    /// right-aligned); the title is not in it.
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

    /// The table in Markdown as the report shows it: the title in bold above,
    /// `|` in cells escaped, every column but the first right-aligned.
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

    /// The table in LaTeX as a paper prints it: a `table` float with the
    /// title as its caption, a `tabular` with booktabs rules (`\toprule`,
    /// `\midrule`, `\bottomrule`; `\usepackage{booktabs}`), the first
    /// column left-aligned and the others right-aligned, as displayed.
    /// LaTeX's special characters are escaped and the symbols the tables
    /// use (Δ, −, ±, →, ×, ≥, ≤, …) become their math-mode commands, so it
    /// compiles with pdflatex as it is.
    pub fn latex(&self) -> String {
        let mut s = String::from("\\begin{table}[t]\n\\centering\n");
        if !self.title.is_empty() {
            s.push_str(&format!("\\caption{{{}}}\n", latex_escape(&self.title)));
        }
        let cols: String = (0..self.header.len())
            .map(|i| if i == 0 { 'l' } else { 'r' })
            .collect();
        s.push_str(&format!("\\begin{{tabular}}{{{cols}}}\n\\toprule\n"));
        let line = |cells: &[String]| {
            cells
                .iter()
                .map(|c| latex_escape(c))
                .collect::<Vec<_>>()
                .join(" & ")
                + " \\\\\n"
        };
        s.push_str(&line(&self.header));
        s.push_str("\\midrule\n");
        for r in &self.rows {
            s.push_str(&line(r));
        }
        s.push_str("\\bottomrule\n\\end{tabular}\n\\end{table}\n");
        s
    }

    /// The CSV text: `csv_header` and `csv_rows` when set, else the displayed
    /// header and rows (the title is not in it).
    pub fn csv(&self) -> String {
        let mut w = csv::Writer::from_writer(vec![]);
        let (header, rows) = if self.csv_header.is_empty() {
            (&self.header, &self.rows)
        } else {
            (&self.csv_header, &self.csv_rows)
        };
        let _ = w.write_record(header);
        for r in rows {
            let _ = w.write_record(r);
        }
        String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
    }
}

/// Text for a LaTeX table cell: the ten special characters escaped, the
/// symbols stilts' tables print as math-mode commands (pdflatex's default
/// input encoding has none of them).
fn latex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '\\' => out.push_str("\\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(ch);
            }
            '~' => out.push_str("\\textasciitilde{}"),
            '^' => out.push_str("\\textasciicircum{}"),
            'Δ' => out.push_str("$\\Delta$"),
            '−' => out.push_str("$-$"),
            '±' => out.push_str("$\\pm$"),
            '→' => out.push_str("$\\rightarrow$"),
            '×' => out.push_str("$\\times$"),
            '≥' => out.push_str("$\\geq$"),
            '≤' => out.push_str("$\\leq$"),
            '…' => out.push_str("\\ldots{}"),
            '·' => out.push_str("$\\cdot$"),
            '²' => out.push_str("$^2$"),
            '—' => out.push_str("---"),
            '–' => out.push_str("--"),
            _ => out.push(ch),
        }
    }
    out
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
            chance: None,
            params: None,
            cells: vec![],
            model_dirs: vec![],
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
    fn intervals_stay_within_what_a_percentage_can_be() {
        let a =
            Scores::mean_of(&[scores("a", &[("de", 20.0)]), scores("a", &[("de", 80.0)])]).unwrap();
        let (lo, hi) = a.estimate("de").unwrap().ci.unwrap();
        assert_eq!(
            (lo, hi),
            (0.0, 100.0),
            "t with 1 degree of freedom spans past both ends"
        );
        let b =
            Scores::mean_of(&[scores("b", &[("de", 90.0)]), scores("b", &[("de", 10.0)])]).unwrap();
        let c = Comparison::new(&a, &b).unwrap();
        let (lo, hi) = c.by_lang["de"].ci.unwrap();
        assert!(lo >= -100.0 && hi <= 100.0);
    }

    /// Issue 31, item 2: a cell says how many of its runs learned
    /// nothing, and whether they collapsed or only their loss says so.
    #[test]
    fn cells_of_models_that_learned_nothing_are_marked() {
        let mut one = scores("a", &[("de", 30.0)]);
        let mut two = scores("a", &[("de", 40.0)]);
        one.by_lang.get_mut("de").unwrap().collapse =
            vec!["a seed 1: collapsed: predicts `neutral` for 98%".into()];
        assert_eq!(one.by_lang["de"].collapse_mark(), " (collapsed)");
        // An average over languages of which some collapsed says how many.
        let mut some = scores("a", &[("de", 33.3), ("en", 60.0)]);
        some.by_lang.get_mut("de").unwrap().collapse =
            vec!["a seed 1: collapsed: predicts `neutral` for 100%".into()];
        assert_eq!(some.avg_collapse_mark(), " (collapsed in 1/2 languages)");
        some.by_lang.get_mut("en").unwrap().collapse =
            vec!["a seed 1: collapsed: predicts `neutral` for 95%".into()];
        assert_eq!(some.avg_collapse_mark(), " (collapsed)");
        let m = Scores::mean_of(&[one.clone(), two.clone()]).unwrap();
        assert_eq!(m.by_lang["de"].collapse_mark(), " (collapsed 1/2)");
        assert!(m.table().to_string().contains("35.0 (collapsed 1/2)"));
        two.by_lang.get_mut("de").unwrap().collapse =
            vec!["a seed 2: loss at chance: ended at 1.098, ln 3 = 1.099".into()];
        assert_eq!(two.by_lang["de"].collapse_mark(), " (loss at chance)");
        let c = Comparison::new(&two, &one).unwrap();
        let t = c.table().to_string();
        assert!(
            t.contains("40.0 (loss at chance)") && t.contains("30.0 (collapsed)"),
            "{t}"
        );
        assert_eq!(
            scores("b", &[("de", 50.0)]).by_lang["de"].collapse_mark(),
            ""
        );
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

    #[test]
    fn a_table_in_latex_is_booktabs_with_its_symbols_escaped() {
        let t = TableValue {
            title: "gain (95% CI), 3 seeds: SST-2 → MNLI".into(),
            header: vec!["language".into(), "Δ".into(), "note_1".into()],
            rows: vec![
                vec![
                    "sw".into(),
                    "+2.1 [−0.5, 4.7]".into(),
                    "a & b #1 {x}".into(),
                ],
                vec!["avg".into(), "±3.0".into(), "50% of $".into()],
            ],
            csv_header: vec![],
            csv_rows: vec![],
        };
        let x = t.latex();
        let lines: Vec<&str> = x.lines().collect();
        assert_eq!(lines[0], r"\begin{table}[t]");
        assert_eq!(
            lines[2],
            r"\caption{gain (95\% CI), 3 seeds: SST-2 $\rightarrow$ MNLI}"
        );
        assert_eq!(lines[3], r"\begin{tabular}{lrr}");
        assert_eq!(lines[4], r"\toprule");
        assert_eq!(lines[5], r"language & $\Delta$ & note\_1 \\");
        assert_eq!(lines[6], r"\midrule");
        assert_eq!(lines[7], r"sw & +2.1 [$-$0.5, 4.7] & a \& b \#1 \{x\} \\");
        assert_eq!(lines[8], r"avg & $\pm$3.0 & 50\% of \$ \\");
        assert_eq!(
            &lines[9..],
            [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
        );
        // Nothing outside ASCII is left for pdflatex to choke on.
        assert!(x.is_ascii(), "{x}");
    }
}
