//! Tasks: loading splits (built-in tasks, headerless TSVs, generic files).

use std::rc::Rc;

use rhai::{Array, CustomType, Dynamic, Engine, Map, TypeBuilder};

use super::{rerr, RResult};
use crate::context::Ctx;
use crate::options::{from_map, TaskArgs};
use crate::values::TaskValue;
use stilts_tasks::{self as tasks, BadLines, Example, GenericSpec, ReadOptions};

impl CustomType for TaskValue {
    fn build(mut b: TypeBuilder<Self>) {
        b.with_name("Task")
            .with_get("name", |t: &mut Self| t.name.clone())
            .with_get("split", |t: &mut Self| t.split.clone())
            .with_get("len", |t: &mut Self| t.len() as i64)
            .with_get("languages", |t: &mut Self| {
                t.languages()
                    .into_iter()
                    .map(Dynamic::from)
                    .collect::<Array>()
            })
            .with_get("labels", |t: &mut Self| {
                t.parts
                    .first()
                    .map(|d| {
                        d.labels
                            .iter()
                            .cloned()
                            .map(Dynamic::from)
                            .collect::<Array>()
                    })
                    .unwrap_or_default()
            })
            .with_get("metric", |t: &mut Self| {
                t.parts
                    .first()
                    .map(|d| d.metric.name().to_string())
                    .unwrap_or_default()
            });
    }
}

fn example_map(e: &Example, labels: &[String]) -> Map {
    let mut m = Map::new();
    let mut put = |k: &str, v: Dynamic| {
        m.insert(k.into(), v);
    };
    put("id", e.id().to_string().into());
    match e {
        Example::Text { a, b, label, .. } => {
            put("a", a.clone().into());
            if let Some(b) = b {
                put("b", b.clone().into());
            }
            if let Some(l) = label {
                put(
                    "label",
                    labels
                        .get(*l)
                        .cloned()
                        .unwrap_or_else(|| l.to_string())
                        .into(),
                );
            }
        }
        Example::Choice {
            prompt,
            choices,
            label,
            ..
        } => {
            put("prompt", prompt.clone().into());
            put(
                "choices",
                choices
                    .iter()
                    .cloned()
                    .map(Dynamic::from)
                    .collect::<Array>()
                    .into(),
            );
            if let Some(l) = label {
                put("label", (*l as i64).into());
            }
        }
        Example::Span {
            question,
            context,
            answers,
            ..
        } => {
            put("question", question.clone().into());
            put("context", context.clone().into());
            put(
                "answers",
                answers
                    .iter()
                    .map(|a| Dynamic::from(a.text.clone()))
                    .collect::<Array>()
                    .into(),
            );
        }
        Example::Words { words, tags, .. } => {
            put(
                "words",
                words
                    .iter()
                    .cloned()
                    .map(Dynamic::from)
                    .collect::<Array>()
                    .into(),
            );
            if let Some(t) = tags {
                put(
                    "tags",
                    t.iter()
                        .map(|&i| Dynamic::from(labels.get(i).cloned().unwrap_or_default()))
                        .collect::<Array>()
                        .into(),
                );
            }
        }
    }
    m
}

/// `task(name, opts)`: the split (its first `first` examples of each
/// part), then (with `limit`) a seeded stratified subset of each part, then
/// (with `sample`) a seeded label-balanced sample of each part.
pub fn load(ctx: &Ctx, name: &str, a: TaskArgs) -> RResult<TaskValue> {
    if a.sample_seed.is_some() && a.sample.is_none() && a.limit.is_none() {
        return Err(rerr(format!(
            "task(\"{name}\"): `sample_seed` without `limit` or `sample`: give `limit: N` (a stratified subset) or `sample: N` (a label-balanced sample) too"
        )));
    }
    if a.limit == Some(0) || a.first == Some(0) {
        return Err(rerr(format!(
            "task(\"{name}\"): `limit` and `first` must be at least 1 (leave them out for all examples)"
        )));
    }
    let (limit, sample, seed) = (a.limit, a.sample, a.sample_seed.unwrap_or(0));
    let t = load_split(ctx, name, a)?;
    let t = match limit {
        Some(n) => TaskValue::new(
            t.name.clone(),
            t.split.clone(),
            t.parts.iter().map(|p| p.limit_sample(n, seed)).collect(),
        ),
        None => t,
    };
    let Some(n) = sample else { return Ok(t) };
    let parts = t
        .parts
        .iter()
        .map(|p| p.sample(n, seed))
        .collect::<stilts_model::Result<Vec<_>>>()
        .map_err(rerr)?;
    Ok(TaskValue::new(t.name, t.split, parts))
}

fn load_split(ctx: &Ctx, name: &str, a: TaskArgs) -> RResult<TaskValue> {
    let read = ReadOptions {
        on_error: if a.skip_bad_lines.unwrap_or(false) {
            BadLines::Skip
        } else {
            BadLines::Fail
        },
        // `first` is a prefix of each file (read no further); `limit` is
        // drawn from the whole file afterwards.
        limit: a.first,
    };
    let split = a.split.clone().unwrap_or_else(|| "train".into());
    if name == "mlm" {
        return load_mlm(ctx, &a);
    }
    if a.files.is_some() {
        return Err(rerr(format!(
            "task(\"{name}\"): `files` is for task(\"mlm\") only; give the task's folder as `data`"
        )));
    }
    if name == "tsv" {
        let file = a
            .file
            .as_deref()
            .ok_or_else(|| rerr("task(\"tsv\", ...): `file` is missing (a headerless TSV file)"))?;
        let columns = a.columns.clone().ok_or_else(|| rerr("task(\"tsv\", ...): `columns` is missing, e.g. [\"language\", \"premise\", \"hypothesis\", \"label\"]"))?;
        let labels = a.labels.clone().ok_or_else(|| rerr("task(\"tsv\", ...): `labels` is missing (the label set, in the classifier's order)"))?;
        let path = ctx.path(file);
        let tname = a.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| "tsv".into())
        });
        let mut parts = stilts_tasks::readers::columns::read(
            &path,
            &tname,
            &columns,
            &labels,
            a.first,
            a.skip_bad_lines.unwrap_or(false),
        )
        .map_err(rerr)?;
        for p in &mut parts {
            p.split = split.clone();
        }
        if let Some(langs) = &a.languages {
            parts.retain(|p| p.subset.as_ref().is_some_and(|s| langs.contains(s)));
            if parts.is_empty() {
                return Err(rerr(format!(
                    "{}: none of the languages {langs:?} is in the file",
                    path.display()
                )));
            }
        }
        return Ok(TaskValue::new(tname, split, parts));
    }
    let data = a.data.as_deref().ok_or_else(|| {
        let layout = tasks::task(name).map(|t| t.layout()).unwrap_or_default();
        rerr(format!("task(\"{name}\", ...): `data` is missing: give the task's folder, e.g. task(\"{name}\", #{{data: \"path/to/{name}\"}})\n{layout}"))
    })?;
    let root = ctx.path(data);
    if !root.is_dir() {
        return Err(rerr(format!(
            "task(\"{name}\"): data folder {} does not exist",
            root.display()
        )));
    }
    let spec = if name == "generic" {
        let text_columns = a.text_columns.clone().ok_or_else(|| {
            rerr("task(\"generic\", ...): `text_columns` is missing (one or two column names)")
        })?;
        let label_column = a.label_column.clone().unwrap_or_else(|| "label".into());
        let labels = a
            .labels
            .clone()
            .ok_or_else(|| rerr("task(\"generic\", ...): `labels` is missing (the label set)"))?;
        let tc: Vec<&str> = text_columns.iter().map(String::as_str).collect();
        let lb: Vec<&str> = labels.iter().map(String::as_str).collect();
        let g = GenericSpec::new(&tc, &label_column, &lb);
        g.check().map_err(rerr)?;
        tasks::generic(a.name.as_deref().unwrap_or("generic"), g)
    } else {
        tasks::task(name).map_err(rerr)?
    };
    let subsets: Vec<Option<String>> = match &a.languages {
        Some(l) => l.iter().map(|s| Some(s.clone())).collect(),
        None if !spec.subsets.is_empty() && spec.default_subset.is_none() => {
            spec.subsets.iter().map(|s| Some(s.clone())).collect()
        }
        None => vec![None],
    };
    let mut parts = vec![];
    for s in &subsets {
        parts.push(
            spec.load(&root, &split, s.as_deref(), &read)
                .map_err(rerr)?,
        );
    }
    Ok(TaskValue::new(spec.name.clone(), split, parts))
}

/// `task("mlm", #{files: [...]} | #{data: XNLI_DIR, split, languages})`:
/// raw text for masked language modelling, a part per file (named by its
/// stem), or the distinct premises of an XNLI-layout folder, a part per
/// language.
fn load_mlm(ctx: &Ctx, a: &TaskArgs) -> RResult<TaskValue> {
    if let Some(files) = &a.files {
        if files.is_empty() {
            return Err(rerr(
                "task(\"mlm\"): `files` is empty; give raw-text files, one sentence a line",
            ));
        }
        let parts = files
            .iter()
            .map(|f| {
                let p = ctx.path(f);
                let stem = p.file_stem().map(|s| s.to_string_lossy().to_string());
                tasks::readers::text::raw_text(&p, stem.as_deref(), a.first).map_err(rerr)
            })
            .collect::<RResult<Vec<_>>>()?;
        return Ok(TaskValue::new("mlm", "train", parts));
    }
    let Some(data) = &a.data else {
        return Err(rerr("task(\"mlm\", ...): give `files` (raw text, one sentence a line) or `data` (an XNLI folder: its premises, per language)"));
    };
    let nli = load(
        ctx,
        "xnli",
        TaskArgs {
            data: Some(data.clone()),
            split: a.split.clone(),
            languages: a.languages.clone(),
            first: a.first,
            skip_bad_lines: a.skip_bad_lines,
            ..Default::default()
        },
    )?;
    let parts = nli
        .parts
        .iter()
        .map(tasks::readers::text::first_texts)
        .collect();
    Ok(TaskValue::new("mlm", nli.split.clone(), parts))
}

/// Lines left out under `skip_bad_lines` are said in the run's output and
/// its report, not only when the script prints the task.
fn report_skips(ctx: &Ctx, t: &TaskValue) {
    let n: usize = t.parts.iter().map(|d| d.skipped.bad_lines).sum();
    if n == 0 {
        return;
    }
    let first = t
        .parts
        .iter()
        .flat_map(|d| d.skipped.first.first())
        .next()
        .map(|b| format!("; the first: {b}"))
        .unwrap_or_default();
    let msg = format!(
        "task `{}` ({}): {n} malformed line{} left out (skip_bad_lines){first}",
        t.name,
        t.split,
        if n == 1 { "" } else { "s" }
    );
    eprintln!("warning: {msg}");
    ctx.recorder.borrow_mut().text(&format!("warning: {msg}"));
}

/// `layout("tsv")`: the script-level tasks have no folder layout; these
/// say what they read.
const TSV_LAYOUT: &str =
    "task `tsv`: one headerless TSV file, task(\"tsv\", #{file, columns, labels, name, split})
  file     the TSV file (any name; .gz or .bz2 may be compressed)
  columns  the name of each column, in order: `label`, one or two text columns
           (e.g. premise, hypothesis), optionally `language` (a part per language) and `id`
  labels   the label set, in the classifier's order
";

const MLM_LAYOUT: &str = "task `mlm`: raw text for masked language modelling
  task(\"mlm\", #{files: [...]})   one sentence a line, a part per file (named by its stem)
  task(\"mlm\", #{data: XNLI_DIR, split, languages})   the distinct premises of an XNLI folder, a part per language
";

pub fn register(engine: &mut Engine, ctx: &Rc<Ctx>) {
    engine.build_type::<TaskValue>();
    let c = ctx.clone();
    engine.register_fn("task", move |name: &str, opts: Map| {
        let args: TaskArgs = from_map(&format!("task(\"{name}\") options"), &opts)?;
        let t = load(&c, name, args)?;
        report_skips(&c, &t);
        Ok::<_, Box<rhai::EvalAltResult>>(t)
    });
    let c = ctx.clone();
    engine.register_fn("task", move |name: &str| {
        load(&c, name, TaskArgs::default())
    });
    engine.register_fn("tasks", || {
        tasks::TASK_NAMES
            .iter()
            .map(|s| Dynamic::from(s.to_string()))
            .chain([
                Dynamic::from("tsv".to_string()),
                Dynamic::from("mlm".to_string()),
            ])
            .collect::<Array>()
    });
    engine.register_fn("layout", |name: &str| -> RResult<String> {
        match name {
            "tsv" => Ok(TSV_LAYOUT.to_string()),
            "mlm" => Ok(MLM_LAYOUT.to_string()),
            _ => Ok(tasks::task(name)
                .map_err(|e| {
                    rerr(format!(
                        "layout(\"{name}\"): {}",
                        e.to_string().replace("unknown task", "no built-in task")
                    ))
                })?
                .layout()),
        }
    });
    engine.register_fn(
        "language",
        |t: &mut TaskValue, lang: &str| -> RResult<TaskValue> {
            let parts: Vec<_> = t
                .parts
                .iter()
                .filter(|d| t.key(d) == lang)
                .cloned()
                .collect();
            if parts.is_empty() {
                return Err(rerr(format!(
                    "task `{}` has no language `{lang}`; it has: {}",
                    t.name,
                    t.languages().join(", ")
                )));
            }
            Ok(TaskValue::new(t.name.clone(), t.split.clone(), parts))
        },
    );
    engine.register_fn("peek", |t: &mut TaskValue, n: i64| -> Array {
        let mut out = Array::new();
        for d in t.parts.iter() {
            for e in d
                .examples
                .iter()
                .take((n.max(0) as usize).saturating_sub(out.len()))
            {
                out.push(Dynamic::from(example_map(e, &d.labels)));
            }
        }
        out
    });
    engine.register_fn("to_string", |t: &mut TaskValue| t.to_string());
    engine.register_fn("to_debug", |t: &mut TaskValue| t.to_string());
}
