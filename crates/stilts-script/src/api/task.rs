//! Tasks: loading splits (built-in tasks, headerless TSVs, generic files).

use super::doc::{entry, ApiDoc};
use std::rc::Rc;

use rhai::{Array, CustomType, Dynamic, Engine, Map, TypeBuilder};

use super::{rerr, RResult};
use crate::context::Ctx;
use crate::options::{from_map, TaskArgs};
use crate::values::TaskValue;
use stilts_tasks::{
    self as tasks, BadLines, Example, GenericSpec, MlmText, ReadOptions, Selection, TaskSource,
};

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
    // (`limit`, `first` and `sample` of 0 are refused by `tasks::open`.)
    load_split(ctx, name, a)
}

/// Converts `task(NAME, #{..})`'s options into a [`TaskSource`] and a
/// [`Selection`], and opens it through [`tasks::open`]; what is missing for
/// the named source is said in the script's own syntax.
fn load_split(ctx: &Ctx, name: &str, a: TaskArgs) -> RResult<TaskValue> {
    let sel = Selection {
        split: a
            .split
            .clone()
            .unwrap_or_else(|| tasks::catalog::default_split(name).into()),
        languages: a.languages.clone(),
        limit: a.limit,
        sample: a.sample,
        seed: a.sample_seed.unwrap_or(0),
        read: ReadOptions {
            on_error: if a.skip_bad_lines.unwrap_or(false) {
                BadLines::Skip
            } else {
                BadLines::Fail
            },
            // `first` is a prefix of each file (read no further); `limit` is
            // drawn from the whole file afterwards.
            first: a.first,
        },
    };
    if name != "mlm" && a.files.is_some() {
        return Err(rerr(format!(
            "task(\"{name}\"): `files` is for task(\"mlm\") only; give the task's folder as `data`"
        )));
    }
    let source = match name {
        "mlm" => TaskSource::Mlm(match (&a.files, &a.data) {
            (Some(files), _) => MlmText::Files(files.iter().map(|f| ctx.path(f)).collect()),
            (None, Some(data)) => MlmText::Premises {
                data: ctx.path(data),
            },
            (None, None) => return Err(rerr("task(\"mlm\", ...): give `files` (raw text, one sentence a line) or `data` (an XNLI folder: its premises, per language)")),
        }),
        "tsv" => TaskSource::Tsv {
            name: a.name.clone(),
            file: ctx.path(a.file.as_deref().ok_or_else(|| {
                rerr("task(\"tsv\", ...): `file` is missing (a headerless TSV file)")
            })?),
            columns: a.columns.clone().ok_or_else(|| rerr("task(\"tsv\", ...): `columns` is missing, e.g. [\"language\", \"premise\", \"hypothesis\", \"label\"]"))?,
            labels: a.labels.clone().ok_or_else(|| rerr("task(\"tsv\", ...): `labels` is missing (the label set, in the classifier's order)"))?,
        },
        _ => {
            let data = ctx.path(a.data.as_deref().ok_or_else(|| {
                let layout = tasks::layout(name).unwrap_or_default();
                rerr(format!("task(\"{name}\", ...): `data` is missing: give the task's folder, e.g. task(\"{name}\", #{{data: \"path/to/{name}\"}})\n{layout}"))
            })?);
            if name == "generic" {
                let text_columns = a.text_columns.clone().ok_or_else(|| {
                    rerr("task(\"generic\", ...): `text_columns` is missing (one or two column names)")
                })?;
                let labels = a.labels.clone().ok_or_else(|| {
                    rerr("task(\"generic\", ...): `labels` is missing (the label set)")
                })?;
                let tc: Vec<&str> = text_columns.iter().map(String::as_str).collect();
                let lb: Vec<&str> = labels.iter().map(String::as_str).collect();
                let label_column = a.label_column.as_deref().unwrap_or("label");
                TaskSource::Generic {
                    name: a.name.clone().unwrap_or_else(|| "generic".into()),
                    data,
                    spec: GenericSpec::new(&tc, label_column, &lb),
                }
            } else {
                TaskSource::Builtin {
                    name: name.to_string(),
                    data,
                }
            }
        }
    };
    let t = tasks::open(&source, &sel).map_err(rerr)?;
    Ok(TaskValue::new(t.name, t.split, t.parts))
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

/// The documentation of what this file registers: what `:help`, tab
/// completion, `check` and the README's API reference read (collected by
/// `docs::api`). Every entry's example runs in a test (`api_examples.rs`).
pub const DOCS: &[ApiDoc] = &[
    entry("tasks", "task", "task(name: string, opts: map) -> Task", "Loads a split of a task. Built-in tasks (see tasks()): opts `data` (the task folder), `split` (train, dev, test), `languages`, `limit` (a seeded random sample of at most N examples of each part, i.e. of each language or round, not in total: stratified by label for classification, each label keeping its share of the file, so even a file sorted by label gives every label; uniform otherwise; the whole file is read), `first` (the first N examples of each part: quick, but a file sorted by label gives one label), `sample` (a seeded sample of N examples of each part, after `first`/`limit`: the same number of each label for classification; uniform otherwise), `sample_seed` (the seed of `limit` and `sample`, default 0), `skip_bad_lines`. `task(\"tsv\", #{file, columns, labels})` reads a headerless TSV (columns: language, id, label and one or two texts); `task(\"generic\", #{data, text_columns, label_column, labels, split})` your own TSV/CSV/JSONL with a header; `task(\"mlm\", #{files: [...]})` raw text for masked language modelling (one sentence a line, a part per file), or `task(\"mlm\", #{data: XNLI_DIR, split, languages})` the distinct premises of an XNLI folder, a part per language. `task(\"tatoeba\", #{data, languages})` the Tatoeba retrieval test set (LASER's files; XTREME's 36 languages in two-letter codes, all by default; split `test`), scored by evaluate(model, tatoeba, opts).", "let x = task(\"xnli\", #{data: \"data/xnli\", split: \"test\", languages: [\"de\", \"sw\"]});"),
    entry("tasks", "tasks", "tasks() -> array", "The names of the built-in tasks.", "tasks()"),
    entry("tasks", "layout", "layout(name: string) -> string", "The files a task expects: a built-in task's folder, or what `tsv`, `generic` and `mlm` read.", "print(layout(\"hellaswag\"));"),
    entry("tasks", "language", "Task.language(lang: string) -> Task", "One language (or round) of a task.", "x.language(\"sw\")"),
    entry("tasks", "peek", "Task.peek(n: int) -> array", "The first n examples, as maps.", "x.peek(3)"),
    entry("tasks", "name", "Task.name", "The task's name.", "x.name"),
    entry("tasks", "split", "Task.split", "The split loaded.", "x.split"),
    entry("tasks", "len", "Task.len", "Number of examples (all languages).", "x.len"),
    entry("tasks", "languages", "Task.languages", "The languages (or rounds) loaded.", "x.languages"),
    entry("tasks", "labels", "Task.labels", "The label set (classification, tagging).", "x.labels"),
    entry("tasks", "metric", "Task.metric", "How the task is scored.", "x.metric"),
];

/// Registers the `Task` type, `task`, `tasks`, `layout`, `Task.language`
/// and `Task.peek`.
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
        tasks::source_names()
            .into_iter()
            .map(|s| Dynamic::from(s.to_string()))
            .collect::<Array>()
    });
    engine.register_fn("layout", |name: &str| -> RResult<String> {
        tasks::layout(name).map_err(|e| {
            rerr(format!(
                "layout(\"{name}\"): {}",
                e.to_string().replace("unknown task", "no built-in task")
            ))
        })
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
