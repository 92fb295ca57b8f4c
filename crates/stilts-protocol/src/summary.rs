//! What a finished condition's record says about its training, in words
//! and tables: what each phase trained (updates, examples, the loss first
//! → last with its sparkline, the dev curve and best update, time), whether
//! the model learned anything (a [`Collapse`]), how its predictions spread
//! over the classes, and its configuration. The console line of a
//! condition, the `--jobs` and Slurm logs and the report all read it from
//! here, whether the condition ran now or came from the store.

use std::collections::BTreeMap;

use crate::store::RunRecord;

/// More than this share of a classification model's predictions on one
/// class marks it collapsed (it predicts one class, whatever the input).
pub const ONE_CLASS_SHARE: f64 = 0.9;

/// A target phase whose final loss (the mean of its last 10% of updates)
/// lies within this fraction of ln K of ln K (K classes) is marked: its
/// loss is at chance. 2%: 0.022 nats for three classes, 0.014 for two. A
/// classifier that gives every example the same distribution over K
/// balanced classes scores ln K at best, and the runs stuck there end
/// within a few thousandths of it (a tiny model on 96 MNLI pairs: 1.099 to
/// 1.101 against ln 3 = 1.0986; on the bundled sentiment data after 2 and
/// 3 epochs: 0.685 and 0.695 against ln 2 = 0.693, predicting one class).
/// The window is small on purpose: the same sentiment run after 4 epochs
/// ends at 0.649, 6% below ln 2, with 93% dev accuracy, and is not marked;
/// a model that learned a little is not marked either.
pub const CHANCE_LOSS_MARGIN: f64 = 0.02;

/// Why a model is marked as having learned nothing.
#[derive(Clone, Debug, PartialEq)]
pub enum Collapse {
    /// One class takes more than [`ONE_CLASS_SHARE`] of the predictions.
    OneClass {
        /// The class predicted.
        label: String,
        /// Its share of the predictions (0 to 1).
        share: f64,
    },
    /// The training loss ended within [`CHANCE_LOSS_MARGIN`] of ln K.
    ChanceLoss {
        /// The final loss (mean of the last 10% of updates).
        loss: f64,
        /// K, the number of classes.
        classes: usize,
    },
}

impl std::fmt::Display for Collapse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Collapse::OneClass { label, share } => {
                write!(f, "collapsed: predicts `{label}` for {:.0}%", share * 100.0)
            }
            Collapse::ChanceLoss { loss, classes } => write!(
                f,
                "loss at chance: ended at {loss:.3}, ln {classes} = {:.3}",
                (*classes as f64).ln()
            ),
        }
    }
}

/// The class that takes more than [`ONE_CLASS_SHARE`] of `counts`
/// (predictions per class), if one does.
pub fn one_class(counts: &BTreeMap<String, u64>) -> Option<Collapse> {
    let total: u64 = counts.values().sum();
    let (label, &top) = counts.iter().max_by_key(|(_, &c)| c)?;
    let share = top as f64 / total.max(1) as f64;
    (total > 0 && share > ONE_CLASS_SHARE).then(|| Collapse::OneClass {
        label: label.clone(),
        share,
    })
}

/// The final loss of a curve: the mean of its last 10% of updates (at
/// least one), with how many that is; `None` for no updates.
pub fn final_loss(losses: &[f64]) -> Option<(usize, f64)> {
    if losses.is_empty() {
        return None;
    }
    let tail = (losses.len() / 10).max(1);
    Some((
        tail,
        losses[losses.len() - tail..].iter().sum::<f64>() / tail as f64,
    ))
}

/// [`Collapse::ChanceLoss`] when the loss of a `classes`-way classifier
/// ended within [`CHANCE_LOSS_MARGIN`] of ln K.
pub fn chance_loss(losses: &[f64], classes: usize) -> Option<Collapse> {
    if classes < 2 {
        return None;
    }
    let (_, loss) = final_loss(losses)?;
    let chance = (classes as f64).ln();
    ((loss - chance).abs() <= CHANCE_LOSS_MARGIN * chance)
        .then_some(Collapse::ChanceLoss { loss, classes })
}

/// The curve of `v` in at most `width` block characters (each the mean of
/// its stretch of values), lowest `▁` to highest `█`.
pub fn sparkline(v: &[f64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if finite.is_empty() {
        return String::new();
    }
    let k = width.min(finite.len()).max(1);
    let means: Vec<f64> = (0..k)
        .map(|i| {
            let (a, b) = (
                i * finite.len() / k,
                ((i + 1) * finite.len() / k).max(i * finite.len() / k + 1),
            );
            finite[a..b].iter().sum::<f64>() / (b - a) as f64
        })
        .collect();
    let lo = means.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = means.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    means
        .iter()
        .map(|m| {
            let t = if hi > lo { (m - lo) / (hi - lo) } else { 0.5 };
            BARS[((t * 7.0).round() as usize).min(7)]
        })
        .collect()
}

/// `loss 1.100 -> 0.520 (mean of the last 10: 0.550; curve ▇▆▄▃▂▁)`.
pub fn loss_summary(losses: &[f64]) -> String {
    let (Some(first), Some(last), Some((tail, m))) =
        (losses.first(), losses.last(), final_loss(losses))
    else {
        return "no updates".into();
    };
    format!(
        "loss {first:.3} -> {last:.3} (mean of the last {tail}: {m:.3}; curve {})",
        sparkline(losses, 16)
    )
}

/// One training phase of a condition, as its record keeps it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Phase {
    /// `intermediate` or `target`.
    pub phase: String,
    /// The task (`multitask` for a mix); empty in a record that names none.
    pub task: String,
    /// Updates done.
    pub updates: u64,
    /// Training examples used (after `limit` and caps); `None` in a record
    /// written before stilts kept it.
    pub examples: Option<u64>,
    /// The loss of each update.
    pub losses: Vec<f64>,
    /// (update, dev score) of each evaluation.
    pub dev: Vec<(u64, f64)>,
    /// (update, score) of the best evaluation: the weights kept.
    pub best: Option<(u64, f64)>,
    /// Seconds the phase took; `None` in older records.
    pub seconds: Option<f64>,
    /// Classes of its head (classification); `None` for other heads.
    pub classes: Option<usize>,
    /// The update it resumed from, after a kill.
    pub resumed_from: Option<u64>,
    /// Whether `patience` stopped it early.
    pub early_stopped: bool,
    /// Whether it came from the store (an intermediate phase shared with
    /// another condition).
    pub reused: bool,
}

impl Phase {
    /// [`Collapse::ChanceLoss`] of a classification phase whose loss
    /// ended at chance.
    pub fn chance_loss(&self) -> Option<Collapse> {
        chance_loss(&self.losses, self.classes?)
    }

    /// `target mnli: 15 updates of 480 examples, loss 1.10 -> 1.09 (...),
    /// dev ▃▅▄ (3 evaluations, best 35.00 at update 10: those weights kept); 12.1 s`.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {}: {} updates", self.phase, self.task, self.updates);
        if let Some(n) = self.examples {
            s.push_str(&format!(" of {n} examples"));
        }
        if let Some(r) = self.resumed_from {
            s.push_str(&format!(" (resumed from the checkpoint at update {r})"));
        }
        s.push_str(&format!(", {}", loss_summary(&self.losses)));
        if let Some(c) = self.chance_loss() {
            s.push_str(&format!(" [{c}]"));
        }
        if !self.dev.is_empty() {
            let scores: Vec<f64> = self.dev.iter().map(|d| d.1).collect();
            s.push_str(&format!(
                ", dev {} ({} evaluation{}",
                sparkline(&scores, 16),
                self.dev.len(),
                if self.dev.len() == 1 { "" } else { "s" }
            ));
            if let Some((u, b)) = self.best {
                s.push_str(&format!(", best {b:.2} at update {u}: those weights kept"));
            }
            if self.early_stopped {
                s.push_str(", stopped early");
            }
            s.push(')');
        }
        if let Some(t) = self.seconds {
            s.push_str(&format!("; {t:.1} s"));
        }
        if self.reused {
            s.push_str(" (reused from the store)");
        }
        s
    }
}

/// The training phases of a condition's record, intermediate first.
pub fn phases(record: &RunRecord) -> Vec<Phase> {
    let mut out = vec![];
    let Some(ps) = record.config.get("phases") else {
        return out;
    };
    for name in ["intermediate", "target"] {
        let Some(p) = ps.get(name).filter(|p| p.is_object()) else {
            continue;
        };
        let task = p["task"].as_str().map(str::to_string).unwrap_or_else(|| {
            // Older records: the phase's one curve names its task.
            record
                .curves
                .keys()
                .filter_map(|k| k.strip_prefix(&format!("{name}.")))
                .find(|t| !t.contains('.'))
                .unwrap_or_default()
                .to_string()
        });
        let losses = record
            .curves
            .get(&format!("{name}.{task}"))
            .map(|c| c.iter().map(|(_, l)| *l).collect())
            .unwrap_or_default();
        let dev: Vec<(u64, f64)> = serde_json::from_value(p["dev"].clone()).unwrap_or_default();
        out.push(Phase {
            phase: name.to_string(),
            task,
            updates: p["updates"].as_u64().unwrap_or(0),
            examples: p["examples"].as_u64(),
            losses,
            dev,
            best: p["best_step"].as_u64().zip(p["best_dev"].as_f64()),
            seconds: p["seconds"].as_f64(),
            classes: p["classes"].as_u64().map(|k| k as usize),
            resumed_from: p["resumed_from"].as_u64(),
            early_stopped: p["early_stopped"].as_bool().unwrap_or(false),
            reused: p["reused"].as_bool().unwrap_or(false),
        });
    }
    out
}

/// The training of a condition as one curve: the loss of every update of
/// its phases in order (the target phase's updates counted on from the
/// intermediate phase's), the dev evaluations at those updates, and what
/// each stretch is (`intermediate sst2: updates 1-30; target mnli: 31-90`).
#[allow(clippy::type_complexity)]
pub fn training_curve(record: &RunRecord) -> (Vec<f64>, Vec<(f64, f64)>, String) {
    let (mut losses, mut dev, mut parts) = (vec![], vec![], vec![]);
    for p in phases(record) {
        let start = losses.len() as u64;
        dev.extend(p.dev.iter().map(|(u, s)| ((start + u) as f64, *s)));
        losses.extend(&p.losses);
        parts.push(format!(
            "{} {}: updates {}-{}",
            p.phase,
            p.task,
            start + 1,
            losses.len()
        ));
    }
    (losses, dev, parts.join("; "))
}

/// Each evaluation set (`EVALUATION/LANGUAGE`) of a record whose model
/// learned nothing, and why: one class over [`ONE_CLASS_SHARE`] of its
/// predictions there, or the target phase's loss at chance (marked on
/// every classification set the record scored). A record written before
/// stilts kept predictions has none.
pub fn collapses(record: &RunRecord) -> BTreeMap<String, Vec<Collapse>> {
    let chance = phases(record)
        .iter()
        .find(|p| p.phase == "target")
        .and_then(Phase::chance_loss);
    let mut out = BTreeMap::new();
    for (key, counts) in &record.predictions {
        let mut v = vec![];
        v.extend(one_class(counts));
        v.extend(chance.clone());
        if !v.is_empty() {
            out.insert(key.clone(), v);
        }
    }
    out
}

/// One line for the console and the report: which evaluation sets of a
/// record its model collapsed on, e.g. `collapsed: predicts `neutral` for
/// 98% on dev (de 97%, sw 100%); target phase loss at chance: ended at
/// 1.098, ln 3 = 1.099`; `None` when it did not.
pub fn collapse_line(record: &RunRecord) -> Option<String> {
    let all = collapses(record);
    if all.is_empty() {
        return None;
    }
    let mut parts = vec![];
    // One-class collapses, by evaluation and class.
    let mut by: BTreeMap<(String, String), Vec<(String, f64)>> = BTreeMap::new();
    let mut chance = None;
    for (key, cs) in &all {
        let (eval, lang) = key.split_once('/').unwrap_or((key.as_str(), ""));
        for c in cs {
            match c {
                Collapse::OneClass { label, share } => by
                    .entry((eval.to_string(), label.clone()))
                    .or_default()
                    .push((lang.to_string(), *share)),
                Collapse::ChanceLoss { .. } => chance = Some(c.clone()),
            }
        }
    }
    for ((eval, label), langs) in &by {
        let of = record
            .predictions
            .keys()
            .filter(|k| k.split_once('/').map(|x| x.0) == Some(eval.as_str()))
            .count();
        let lo = langs.iter().map(|l| l.1).fold(1.0, f64::min) * 100.0;
        let hi = langs.iter().map(|l| l.1).fold(0.0, f64::max) * 100.0;
        let share = if (hi - lo).abs() < 0.5 {
            format!("{hi:.0}%")
        } else {
            format!("{lo:.0}-{hi:.0}%")
        };
        let which = if langs.len() <= 4 {
            langs
                .iter()
                .map(|(l, s)| format!("{l} {:.0}%", s * 100.0))
                .collect::<Vec<_>>()
                .join(", ")
        } else {
            format!("{} of {of} sets", langs.len())
        };
        parts.push(format!(
            "collapsed: predicts `{label}` for {share} of its predictions on {eval} ({which})"
        ));
    }
    if let Some(c) = chance {
        parts.push(format!("target phase {c}"));
    }
    Some(parts.join("; "))
}

/// The prediction distribution of a record: the classes (columns) and, per
/// evaluation set, each class's share of the predictions in percent, the
/// number of predictions and what it collapsed to, if anything.
#[allow(clippy::type_complexity)]
pub fn prediction_shares(
    record: &RunRecord,
) -> (Vec<String>, Vec<(String, Vec<f64>, u64, Option<Collapse>)>) {
    let mut labels: Vec<String> = vec![];
    for counts in record.predictions.values() {
        for l in counts.keys() {
            if !labels.contains(l) {
                labels.push(l.clone());
            }
        }
    }
    let rows = record
        .predictions
        .iter()
        .map(|(key, counts)| {
            let n: u64 = counts.values().sum();
            let shares = labels
                .iter()
                .map(|l| 100.0 * counts.get(l).copied().unwrap_or(0) as f64 / n.max(1) as f64)
                .collect();
            (key.clone(), shares, n, one_class(counts))
        })
        .collect();
    (labels, rows)
}

/// The condition's configuration, a (column, value) pair each: model,
/// tasks, the training examples each phase used, updates, learning rate,
/// batch, max length, selection rule, seed, and the stilts version that
/// made it. What the report's configuration table shows, one row per
/// condition and seed.
pub fn configuration(record: &RunRecord) -> Vec<(String, String)> {
    let c = &record.config;
    let conf = &c["configuration"];
    let phases = phases(record);
    let phase = |n: &str| phases.iter().find(|p| p.phase == n);
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "—".into(),
        v => v.to_string(),
    };
    let options = |o: &serde_json::Value, p: Option<&Phase>| -> [String; 5] {
        if o.is_null() {
            return std::array::from_fn(|_| "—".to_string());
        }
        let accum = o["grad_accum"].as_u64().filter(|&a| a > 1);
        [
            p.and_then(|p| p.examples)
                .map(|n| n.to_string())
                .unwrap_or_else(|| "—".into()),
            p.map(|p| p.updates.to_string())
                .unwrap_or_else(|| "—".into()),
            o["lr"]
                .as_f64()
                .map(|x| format!("{x:e}"))
                .unwrap_or_default(),
            match accum {
                Some(a) => format!("{} x {a}", text(&o["batch_size"])),
                None => text(&o["batch_size"]),
            },
            text(&o["max_length"]),
        ]
    };
    let inter_opts = &conf["intermediate_phase"]["options"];
    let target_opts = &conf["target_options"];
    let [ie, iu, ilr, ib, il] = options(inter_opts, phase("intermediate"));
    let [te, tu, tlr, tb, tl] = options(target_opts, phase("target"));
    let selection = |p: Option<&Phase>, dev: &serde_json::Value, o: &serde_json::Value| {
        if p.is_none() {
            return "—".to_string();
        }
        if dev.is_null() {
            return "last update (no dev set)".to_string();
        }
        let every = o["eval_every"]
            .as_u64()
            .map(|e| format!("every {e} updates"))
            .unwrap_or_else(|| "every epoch".into());
        let patience = o["patience"]
            .as_u64()
            .map(|p| format!(", patience {p}"))
            .unwrap_or_default();
        format!("best dev score, {every}{patience}")
    };
    let target = conf["target"]
        .as_array()
        .and_then(|a| a.first())
        .map(text)
        .unwrap_or_else(|| "—".into());
    let intermediate = conf["intermediate_phase"]["intermediate"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_array().and_then(|t| t.first()).map(text))
                .collect::<Vec<_>>()
                .join(" + ")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "—".into());
    let evaluations = conf["evaluations"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_array())
                .map(|e| format!("{} ({})", text(&e[1]), text(&e[0])))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let label = c["model_label"].as_str().unwrap_or_default();
    let model = if label.is_empty() {
        text(&c["model"])
    } else {
        label.to_string()
    };
    vec![
        ("condition".into(), text(&c["name"])),
        ("model".into(), model),
        ("intermediate".into(), intermediate),
        ("intermediate examples".into(), ie),
        ("intermediate updates".into(), iu),
        ("intermediate lr".into(), ilr),
        ("intermediate batch".into(), ib),
        ("intermediate max length".into(), il),
        (
            "intermediate selection".into(),
            selection(
                phase("intermediate"),
                &conf["intermediate_phase"]["dev"],
                inter_opts,
            ),
        ),
        ("target".into(), target),
        ("target examples".into(), te),
        ("target updates".into(), tu),
        ("target lr".into(), tlr),
        ("target batch".into(), tb),
        ("target max length".into(), tl),
        (
            "target selection".into(),
            selection(phase("target"), &conf["target_dev"], target_opts),
        ),
        ("evaluations".into(), evaluations),
        ("seed".into(), text(&conf["seed"])),
        ("code".into(), record.code_version.clone()),
    ]
}

/// [`configuration`] of several records as one table: a row per
/// condition, the conditions that differ only in their seed on one row
/// with their seeds listed (`1, 2, 3`); the columns that are `—` in every
/// row are left out. Returns the header and the rows.
pub fn configuration_table(records: &[&RunRecord]) -> (Vec<String>, Vec<Vec<String>>) {
    let all: Vec<Vec<(String, String)>> = records.iter().map(|r| configuration(r)).collect();
    let Some(first) = all.first() else {
        return (vec![], vec![]);
    };
    let header: Vec<String> = first.iter().map(|(k, _)| k.clone()).collect();
    let seed_col = header.iter().position(|h| h == "seed");
    let mut rows: Vec<Vec<String>> = vec![];
    for r in &all {
        let cells: Vec<String> = r.iter().map(|(_, v)| v.clone()).collect();
        let same = |row: &Vec<String>| {
            row.len() == cells.len()
                && row
                    .iter()
                    .zip(&cells)
                    .enumerate()
                    .all(|(i, (a, b))| Some(i) == seed_col || a == b)
        };
        match (rows.iter_mut().find(|row| same(row)), seed_col) {
            (Some(row), Some(s)) => {
                let seed = &cells[s];
                if !row[s].split(", ").any(|x| x == seed) {
                    row[s] = format!("{}, {seed}", row[s]);
                }
            }
            _ => rows.push(cells),
        }
    }
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| rows.iter().any(|r| r[i] != "—"))
        .collect();
    (
        keep.iter().map(|&i| header[i].clone()).collect(),
        rows.iter()
            .map(|r| keep.iter().map(|&i| r[i].clone()).collect())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(v: &[(&str, u64)]) -> BTreeMap<String, u64> {
        v.iter().map(|(k, c)| (k.to_string(), *c)).collect()
    }

    #[test]
    fn one_class_over_ninety_percent_is_a_collapse() {
        let c = one_class(&counts(&[
            ("neutral", 98),
            ("entailment", 1),
            ("contradiction", 1),
        ]));
        assert_eq!(
            c.as_ref().map(|c| c.to_string()).as_deref(),
            Some("collapsed: predicts `neutral` for 98%")
        );
        assert_eq!(
            one_class(&counts(&[("neutral", 90), ("entailment", 10)])),
            None,
            "exactly 90% is not over it"
        );
        assert_eq!(one_class(&counts(&[("a", 40), ("b", 35), ("c", 25)])), None);
        assert_eq!(one_class(&BTreeMap::new()), None);
    }

    #[test]
    fn a_loss_that_ends_at_ln_k_learned_nothing() {
        let ln3 = 3f64.ln();
        let flat: Vec<f64> = (0..20)
            .map(|i| ln3 + 0.01 * ((i % 3) as f64 - 1.0))
            .collect();
        assert!(matches!(
            chance_loss(&flat, 3),
            Some(Collapse::ChanceLoss { classes: 3, .. })
        ));
        let learned: Vec<f64> = (0..20).map(|i| 1.1 - 0.03 * i as f64).collect();
        assert_eq!(chance_loss(&learned, 3), None);
        // The last 10% decide, not the start.
        let mut late = learned.clone();
        late.extend([ln3, ln3]);
        assert!(chance_loss(&late, 3).is_some());
        assert_eq!(chance_loss(&flat, 1), None);
        assert_eq!(chance_loss(&[], 3), None);
        // 2% of ln 3 is 0.022: 1.07 is outside.
        assert_eq!(chance_loss(&[1.07], 3), None);
        assert!(chance_loss(&[1.08], 3).is_some());
    }

    fn record() -> RunRecord {
        RunRecord {
            key: "k".into(),
            config: serde_json::json!({
                "name": "none",
                "model": "tiny",
                "model_label": "tiny",
                "configuration": {
                    "intermediate_phase": null,
                    "target": ["mnli", "abc"],
                    "target_dev": null,
                    "target_options": {"lr": 0.001, "batch_size": 16, "max_length": 48, "grad_accum": 1},
                    "evaluations": [["dev", "xnli", "def"]],
                    "seed": 1,
                },
                "phases": {"target": {"task": "mnli", "updates": 3, "examples": 48, "classes": 3, "seconds": 1.5, "dev": [], "best_dev": null, "best_step": null}},
            }),
            code_version: "stilts 0.1.0 (abc)".into(),
            metrics: BTreeMap::new(),
            correct: BTreeMap::new(),
            curves: BTreeMap::from([(
                "target.mnli".to_string(),
                vec![(1, 1.0986), (2, 1.0990), (3, 1.0980)],
            )]),
            predictions: BTreeMap::from([
                ("dev/de".to_string(), counts(&[("neutral", 30)])),
                (
                    "dev/sw".to_string(),
                    counts(&[("neutral", 10), ("entailment", 10), ("contradiction", 10)]),
                ),
            ]),
            seconds: 2.0,
            device: "Cpu".into(),
            finished_at: 0,
            value: None,
        }
    }

    #[test]
    fn a_record_says_what_it_trained_and_where_it_collapsed() {
        let r = record();
        let p = phases(&r);
        assert_eq!(p.len(), 1);
        let line = p[0].describe();
        assert!(
            line.starts_with("target mnli: 3 updates of 48 examples, loss 1.099 -> 1.098"),
            "{line}"
        );
        assert!(
            line.contains("[loss at chance: ended at 1.098, ln 3 = 1.099]")
                && line.ends_with("; 1.5 s"),
            "{line}"
        );
        let c = collapses(&r);
        assert_eq!(c["dev/de"].len(), 2, "one class and the loss");
        assert_eq!(c["dev/sw"].len(), 1, "the loss only");
        let l = collapse_line(&r).unwrap();
        assert!(
            l.contains("predicts `neutral` for 100% of its predictions on dev (de 100%)"),
            "{l}"
        );
        let (labels, rows) = prediction_shares(&r);
        assert_eq!(labels.len(), 3);
        assert_eq!(rows[0].2, 30);
        assert!(rows[0].3.is_some() && rows[1].3.is_none());
        let (h, rows) = configuration_table(&[&r, &{
            let mut r2 = r.clone();
            r2.config["configuration"]["seed"] = 2.into();
            r2
        }]);
        assert_eq!(rows.len(), 1, "two seeds of one condition are one row");
        let col = |name: &str| rows[0][h.iter().position(|x| x == name).unwrap()].clone();
        assert_eq!(col("seed"), "1, 2");
        assert_eq!(col("target examples"), "48");
        assert_eq!(col("target lr"), "1e-3");
        assert_eq!(col("target selection"), "last update (no dev set)");
        assert!(!h.contains(&"intermediate lr".to_string()), "{h:?}");
    }
}
