//! The rhai API's documentation: one table that `:help`, tab completion,
//! `check`'s "did you mean" and the README's API reference all read. A
//! test checks that every registered function has an entry and every entry
//! is registered.

/// One function, method or property of the API.
#[derive(Clone, Copy, Debug)]
pub struct ApiDoc {
    /// The name a script calls (`train`; `save` for `Model.save`): one name may
    /// have several entries, one per signature.
    pub name: &'static str,
    /// The section it is listed under (`models`, `tasks`, `training`, ...).
    pub group: &'static str,
    /// Its rhai signature, e.g. `model(spec: string) -> Model`; methods and
    /// properties as `Type.name`.
    pub signature: &'static str,
    /// What it does, in a sentence or a few (what `:help` prints).
    pub doc: &'static str,
    /// One line of rhai that uses it (`:help` prints it after `e.g.`).
    pub example: &'static str,
}

macro_rules! api {
    ($( $group:literal $name:literal $sig:literal $doc:literal $ex:literal ;)*) => {
        &[ $( ApiDoc { name: $name, group: $group, signature: $sig, doc: $doc, example: $ex } ),* ]
    };
}

/// The API, grouped. Methods are written `Type.name`; properties `Type.name` without parentheses.
pub const API: &[ApiDoc] = api! {
    "models" "model" "model(spec: string) -> Model" "Loads a model: a directory in Hugging Face layout, a hub id from the local HF cache, or a size name (mminilm, me5-small, mbert, xlmr-base, xlmr-large, xlmr-xl, xlmr-xxl). A pretrained checkpoint gets the task's head when trained." "let m = model(\"xlmr-large\");";
    "models" "model" "model(spec: string, opts: map) -> Model" "Loads a model with a head: opts `head` (classification, multiple_choice, span_qa, tagging), `labels`, `seed` (head init), `dtype` (f32, bf16)." "let m = model(\"runs/mnli\", #{dtype: \"bf16\"});";
    "models" "tiny_model" "tiny_model(opts: map) -> Model" "A tiny random XLM-R (or BERT) built on the spot, its tokenizer trained on `text` (strings, file paths or tasks). Keys: text, arch (xlmr, xlmr-xl, bert), hidden, layers, heads, ffn, vocab (the most pieces: the trainer keeps fewer when the text supports fewer, and says so), max_length, labels, seed." "let m = tiny_model(#{text: [mnli], hidden: 64, layers: 2});";
    "models" "sizes" "sizes() -> array" "The size names, smallest first: the BERT-family encoders (mminilm, me5-small, mbert), then XLM-R (xlmr-base, xlmr-large, xlmr-xl, xlmr-xxl)." "for s in sizes() { print(s); }";
    "models" "save" "Model.save(dir: string)" "Writes the model (config.json, model.safetensors, tokenizer) in Hugging Face layout." "m.save(\"runs/xnli-large\");";
    "models" "predict" "Model.predict(text: string) -> map" "Classifies one text: #{label, probs}." "m.predict(\"a fine film\")";
    "models" "predict" "Model.predict(premise: string, hypothesis: string) -> map" "Classifies one pair: #{label, probs}." "m.predict(\"It rains.\", \"It is wet.\")";
    "models" "name" "Model.name" "What the model was loaded or trained from." "m.name";
    "models" "arch" "Model.arch" "transformers' class name, e.g. XLMRobertaForSequenceClassification." "m.arch";
    "models" "head" "Model.head" "The head: classification, multiple_choice, span_qa or tagging." "m.head";
    "models" "labels" "Model.labels" "The head's label names." "m.labels";
    "models" "params" "Model.params" "Number of parameters." "m.params";
    "models" "layers" "Model.layers" "Number of encoder layers." "m.layers";
    "models" "hidden" "Model.hidden" "Hidden size." "m.hidden";
    "models" "device" "Model.device" "Where the weights are (cpu, cuda:N)." "m.device";
    "models" "fingerprint" "Model.fingerprint" "What the model's numbers depend on, as a hash: its files (loaded), its weights (made on the spot), or the model, data and options it was trained from. memo keys use it." "m.fingerprint";
    "models" "training" "Model.training" "What the model's last training did: #{task, updates, losses, dev: [[update, score], ...], best_dev, best_step, early_stopped, resumed_from (the update its checkpoint resumed it from, or ()), curve (the JSON-lines file of loss, lr, dev and throughput per update, beside its checkpoints)}; () for a loaded model." "ft.training.best_dev";

    "tasks" "task" "task(name: string, opts: map) -> Task" "Loads a split of a task. Built-in tasks (see tasks()): opts `data` (the task folder), `split` (train, dev, test), `languages`, `limit` (a seeded random sample of at most N examples of each part, i.e. of each language or round, not in total: stratified by label for classification, each label keeping its share of the file, so even a file sorted by label gives every label; uniform otherwise; the whole file is read), `first` (the first N examples of each part: quick, but a file sorted by label gives one label), `sample` (a seeded sample of N examples of each part, after `first`/`limit`: the same number of each label for classification; uniform otherwise), `sample_seed` (the seed of `limit` and `sample`, default 0), `skip_bad_lines`. `task(\"tsv\", #{file, columns, labels})` reads a headerless TSV (columns: language, id, label and one or two texts); `task(\"generic\", #{data, text_columns, label_column, labels, split})` your own TSV/CSV/JSONL with a header; `task(\"mlm\", #{files: [...]})` raw text for masked language modelling (one sentence a line, a part per file), or `task(\"mlm\", #{data: XNLI_DIR, split, languages})` the distinct premises of an XNLI folder, a part per language." "let x = task(\"xnli\", #{data: \"data/xnli\", split: \"test\", languages: [\"de\", \"sw\"]});";
    "tasks" "tasks" "tasks() -> array" "The names of the built-in tasks." "tasks()";
    "tasks" "layout" "layout(name: string) -> string" "The files a task expects: a built-in task's folder, or what `tsv`, `generic` and `mlm` read." "print(layout(\"hellaswag\"));";
    "tasks" "language" "Task.language(lang: string) -> Task" "One language (or round) of a task." "x.language(\"sw\")";
    "tasks" "peek" "Task.peek(n: int) -> array" "The first n examples, as maps." "x.peek(3)";
    "tasks" "name" "Task.name" "The task's name." "x.name";
    "tasks" "split" "Task.split" "The split loaded." "x.split";
    "tasks" "len" "Task.len" "Number of examples (all languages)." "x.len";
    "tasks" "languages" "Task.languages" "The languages (or rounds) loaded." "x.languages";
    "tasks" "labels" "Task.labels" "The label set (classification, tagging)." "x.labels";
    "tasks" "metric" "Task.metric" "How the task is scored." "x.metric";

    "training" "train" "train(model: Model, task: Task) -> Model" "Fine-tunes a copy of the model on the task with the `jiant` preset; a model whose head does not fit the task gets a fresh one." "let ft = train(m, mnli);";
    "training" "train" "train(model: Model, task: Task, opts: map) -> Model" "Fine-tunes with options over a preset: preset (jiant, xtreme; xtreme's lr is size-aware: 2e-5 below hidden 1024, 3e-5 from large up), lr, weight_decay, epochs, max_steps, batch_size, grad_accum, max_tokens, max_length (span QA: the window length; without it run_qa.py's 384), doc_stride (span QA: tokens of overlap between a long context's windows; run_qa.py's 128, a third of max_length when that is shorter), warmup, warmup_steps, max_grad_norm, seed, bf16, gradient_checkpointing (recompute activations in backward: same gradients, less memory), factored_optimizer (AdamW with a factored second moment: about half the optimizer memory), bf16_update (a model with bf16 weights, `dtype: \"bf16\"`: \"kahan\" keeps a bf16 compensation per weight, \"stochastic\" rounds at random, CPU only; left out, updates below half a bf16 step are lost; an error on f32 weights), fused_update (update each parameter inside the checkpointed backward and free its gradient: needs gradient_checkpointing and grad_accum 1; clips with the previous update's norm), limit (a seeded sample of at most N examples of each part, stratified by label for classification, drawn with the run's seed), reset_optimizer (false: continue from the AdamW state of the model's last training), freeze (parameters held fixed, no gradient, no optimizer state: prefixes of their names without `roberta.`/`bert.`, on whole dotted parts, e.g. [\"embeddings\"], [\"embeddings\", \"layers:0-3\"] for encoder layers 0 to 3, \"encoder.layer.5\", \"classifier\"; an entry matching no parameter is an error listing the prefixes), new_head. Model selection: `dev` (a task split; its parts pooled) with eval_every (updates; jiant 1000, xtreme 100, else once per epoch), patience (evaluations without gain before stopping; jiant 30) and dev_limit (score the first N dev examples; jiant 500): the model ends on the best dev weights. eval_every, patience or dev_limit set without a dev set, checkpoint_every (not honoured in scripts yet) and unknown keys are errors. A classification training set whose examples all have one label gets a warning; the report records each training's updates, loss, time and checkpoint folder." "train(m, mnli, #{preset: \"xtreme\", dev: xnli_dev.language(\"en\"), seed: 2})";
    "training" "stilts" "stilts(model: Model, intermediate: Task, target: Task) -> Model" "The STILTs step: train on the intermediate task, put a fresh head on the encoder, train on the target task." "let s = stilts(m, hellaswag, mnli);";
    "training" "stilts" "stilts(model: Model, intermediate: Task, target: Task, opts: map) -> Model" "STILTs with options: training keys for both phases, and `intermediate: #{...}` / `target: #{...}` for one phase. `dev` and the model-selection keys (eval_every, patience, dev_limit) at the top level belong to the target phase; the intermediate phase takes its own inside `intermediate: #{dev: ...}`." "stilts(m, squad, mnli, #{seed: 1, dev: mnli_dev, intermediate: #{epochs: 2}})";
    "training" "multitask" "multitask(model: Model, tasks: array, opts: map) -> Model" "Multi-task training of one encoder on several tasks (a head each; task(\"mlm\", ...) adds masked language modelling), the task drawn per optimizer update (gradient accumulation stays within it). Training keys plus `sampling`: \"proportional\" (default), \"uniform\", #{cap: N}, #{temperature: T, cap: N} or #{probs: #{task: p, ...}} (jiant's samplers); train_examples_cap (at most N examples of each task, a seeded sample: shortens training too); `dev` (a split of one task of the mix, scored with its head). Returns the encoder under the last task's head." "multitask(m, [squad, hellaswag, mlm], #{seed: 1, sampling: #{probs: #{squad_v1: 0.4, hellaswag: 0.4, mlm: 0.2}}})";
    "training" "condition" "condition(spec: map) -> Result | map" "One cell of the grid, run by the protocol and kept in the store under its fingerprint (model files or weights, every data file and example read, options, seed, evaluation sets): a finished one is reused, the intermediate-phase model of (model, intermediate task(s), options, seed) is trained once and shared. Keys: model (size name, directory or Model), intermediate (a task, an array of tasks for a mix, or () for the baseline), sampling, target, dev (target-phase model selection), evaluate (a task, or a map of name → task: returns a map of Results), options (training keys as in stilts()), seed, name (the results' label; default the intermediate task's name or `none`), eval_batch_size." "let r = condition(#{model: \"xlmr-base\", intermediate: squad, target: mnli, dev: mnli_dev, evaluate: #{dev: xnli_dev, test: xnli_test}, seed: 1});";
    "training" "preset" "preset(name: string) -> map" "The settings of a training preset (jiant, xtreme)." "preset(\"xtreme\")";

    "results" "evaluate" "evaluate(model: Model, task: Task) -> Result" "Scores the model on each language of the task (dropout off)." "let r = evaluate(ft, xnli);";
    "results" "evaluate" "evaluate(model: Model, task: Task, opts: map) -> Result" "Evaluation with options: batch_size, max_length (span QA: the window, default 384), doc_stride (span QA, default 128), limit (the first N examples of each language: the same pairs in every language of a parallel set)." "evaluate(ft, xnli, #{batch_size: 128})";
    "results" "mean" "mean(results: array) -> Result" "The mean of several runs (seeds) per language; all must cover the same languages. Its table shows the mean, the standard deviation over seeds, a 95% interval that includes seed variance (t over seeds with the test set's bootstrap variance added) and, beside it, the interval over examples alone. Intervals are cut to [0, 100] (with 2 seeds, t has 1 degree of freedom and the interval is very wide: use 3 or more)." "let r = mean([r1, r2, r3]);";
    "results" "compare" "compare(base: Result, new: Result) -> Comparison" "The gain of `new` over `base` per language and on average, paired by seed and by example, with a 95% interval that includes seed variance (t over the per-seed gains with the paired example-bootstrap variance added; with one seed each: the paired bootstrap over examples, and the table says seed variance is not in it). Both must cover the same languages." "let c = compare(base, stilts); c[\"sw\"]";
    "results" "named" "Result.named(label: string) -> Result" "A copy with another label (the column name in tables)." "r.named(\"MNLI only\")";
    "results" "avg" "Result.avg" "The mean over languages." "r.avg";
    "results" "languages" "Result.languages" "The languages scored." "r.languages";
    "results" "label" "Result.label" "What was evaluated." "r.label";
    "results" "metric" "Result.metric" "The metric's name." "r.metric";
    "results" "to_map" "Result.to_map() -> map" "Language → score." "r.to_map()";
    "results" "ci" "Comparison.ci(lang: string) -> array" "The 95% interval of the delta [lo, hi], to six decimals (empty when it cannot be estimated); `avg` for the average." "c.ci(\"sw\")";
    "results" "save_results" "save_results(value, path: string)" "Writes a Result, Comparison, Table or any map/array as JSON (or a table as .csv/.md)." "save_results(r, \"runs/xnli.json\");";
    "results" "load_results" "load_results(path: string) -> Result | Comparison | Table | any" "Reads what save_results wrote, as it was: a Result, a Comparison or a Table; other values as maps, arrays and numbers." "let r = load_results(\"runs/xnli.json\");";

    "tables and plots" "table" "table(value) -> Table" "A table of a Result, a Comparison, a map of label → Result (a column each, in the order the map literal wrote them, with an `n` column of examples per cell), or an array of maps (a row each, columns in the order written). Each table says which interval it shows." "table(#{base: r0, stilts: r1})";
    "tables and plots" "table" "table(value, opts: map) -> Table" "A table with options: `columns` (the keys of a map of Results, or of the row maps, in the order wanted; only those)." "table(#{base: r0, stilts: r1}, #{columns: [\"stilts\", \"base\"]})";
    "tables and plots" "show" "show(value)" "Prints a readable summary (tables for results) and adds it to the run's report." "show(compare(base, s));";
    "tables and plots" "markdown" "Table.markdown() -> string" "The table in Markdown." "t.markdown()";
    "tables and plots" "csv" "Table.csv() -> string" "The table as CSV, in numbers: a value per cell (no rounding to the display's one decimal, no `+`), an interval as two columns (`ci_lo`, `ci_hi`), an empty cell where there is none." "t.csv()";
    "tables and plots" "save" "Table.save(path: string)" "Writes the table as .csv, .md or .json (by extension)." "t.save(\"table.csv\");";
    "tables and plots" "plot_languages" "plot_languages(results: map, path: string) -> string" "Bars of the score per language and the average, one per labelled Result in the order the map literal wrote them, each with its 95% interval (over seeds and examples for a mean, the bootstrap over examples for one run; the legend says which), a dashed chance line (100 / labels) and the legend beside the chart; colour-blind-safe colours. Writes SVG or PNG (by extension), adds it to the report, returns the path." "plot_languages(#{base: r0, stilts: r1}, \"acc.svg\")";
    "tables and plots" "plot_training" "plot_training(model: Model, path: string) -> string" "The training curve of a model trained in this script: the loss of every update with its running mean, and the dev score of every evaluation with the best one circled; SVG or PNG, added to the report. The same numbers, with the learning rate and throughput of each update, are in the file `Model.training.curve` names (JSON lines, written as the run goes)." "plot_training(ft, \"curve.png\")";
    "tables and plots" "plot_gain" "plot_gain(gains: map, path: string) -> string" "Gain vs model size: `gains` maps a size name to a Comparison (one intermediate task), or an intermediate task's name to such a map (task → size → Comparison; the other nesting is an error). Left: the average gain against parameters on a log scale, one line per intermediate task with its 95% interval; right: a heatmap of the gain per language and (task, size). SVG or PNG, added to the report." "plot_gain(#{\"xlmr-base\": c0, \"xlmr-large\": c1}, \"gain.png\")";
    "tables and plots" "plot_gain" "plot_gain(gains: map, path: string, opts: map) -> string" "plot_gain with `params`: the parameter count of each size that is not a size name (a directory, say), for the x axis." "plot_gain(#{sst2: #{\"xlmr-base\": c0, \"runs/me5-small\": c1}}, \"gain.png\", #{params: #{\"runs/me5-small\": 118e6}})";

    "runs" "param" "param(name: string, default) -> any" "The value given with `--set name=value`, else `default`. A `--set` name the script never reads is warned about (with the closest name it does read)." "let seeds = param(\"seeds\", [1, 2, 3]);";
    "runs" "params" "params() -> map" "All `--set` values." "params()";
    "runs" "exists" "exists(path: string) -> bool" "Does the file or folder exist?" "exists(\"data/xnli\")";
    "runs" "require" "require(paths: map)" "Fails early, listing every entry of name → path that does not exist." "require(#{xnli: xnli_dir, mnli: mnli_dir});";
    "runs" "model_available" "model_available(spec: string) -> bool" "Can model(spec) find the model (a directory, or the HF cache), without loading it?" "model_available(\"xlmr-xl\")";
    "runs" "grid" "grid(axes: map) -> array" "All combinations of the axes' values, as maps (sizes × tasks × seeds)." "for g in grid(#{size: [\"xlmr-base\"], seed: [1, 2]}) { print(g.size); }";
    "runs" "memo" "memo(key, f: Fn) -> any" "Runs f() once per key and keeps its result (a Result, Comparison, number, map...) in the store; later runs reuse it. Models and tasks in the key stand for their fingerprints, so a changed data file or model changes the key: put what f() reads in the key (condition() does this for you)." "let r = memo(#{size: \"xlmr-base\", seed: 1}, || evaluate(train(m, mnli), xnli));";
    "runs" "store" "store(dir: string)" "Where memo keeps finished runs (default: runs/)." "store(\"runs/size_sweep\");";
    "runs" "report_dir" "report_dir() -> string" "The report folder of this run (empty when none is written)." "report_dir()";
    "runs" "note" "note(markdown: string)" "Adds Markdown text to the report (printed too)." "note(\"Three seeds per cell.\");";
    "runs" "device" "device() -> string" "The device models go to (--device)." "device()";
};

/// Entries called `name`.
pub fn lookup(name: &str) -> Vec<&'static ApiDoc> {
    let name = name.trim().trim_end_matches("()");
    let name = name.rsplit('.').next().unwrap_or(name);
    API.iter().filter(|d| d.name == name).collect()
}

/// Distinct names, in table order.
pub fn names() -> Vec<&'static str> {
    let mut out: Vec<&str> = vec![];
    for d in API {
        if !out.contains(&d.name) {
            out.push(d.name);
        }
    }
    out
}

/// Free functions (not methods or properties).
pub fn function_names() -> Vec<&'static str> {
    let mut out: Vec<&str> = vec![];
    for d in API.iter().filter(|d| !d.signature.contains('.')) {
        if !out.contains(&d.name) {
            out.push(d.name);
        }
    }
    out
}

/// Methods and properties (`Type.name`).
pub fn member_names() -> Vec<&'static str> {
    let mut out: Vec<&str> = vec![];
    for d in API.iter().filter(|d| d.signature.contains('.')) {
        if !out.contains(&d.name) {
            out.push(d.name);
        }
    }
    out
}

/// `:help NAME`.
pub fn help(name: &str) -> Option<String> {
    let hits = lookup(name);
    if hits.is_empty() {
        return None;
    }
    let mut s = String::new();
    for d in hits {
        s.push_str(&format!(
            "{}\n{}{}\n",
            d.signature,
            wrap(d.doc, HELP_WIDTH, "    "),
            wrap(&format!("e.g. {}", d.example), HELP_WIDTH, "    ")
        ));
    }
    Some(s)
}

/// Columns `:help` fills.
pub const HELP_WIDTH: usize = 80;

/// `text` in lines of at most `width` columns (a word longer than a line
/// stands alone), each starting with `indent`; breaks only between words.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let len = indent.chars().count() + line.chars().count();
        if !line.is_empty() && len + 1 + word.chars().count() > width {
            out.push_str(indent);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(indent);
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `:help` without a name: every signature, by group.
pub fn overview() -> String {
    let mut s = String::new();
    let mut group = "";
    for d in API {
        if d.group != group {
            group = d.group;
            s.push_str(&format!("{group}:\n"));
        }
        s.push_str(&format!("  {}\n", d.signature));
    }
    s
}

/// The README's API reference (Markdown).
pub fn markdown() -> String {
    let mut s = String::new();
    let mut group = "";
    for d in API {
        if d.group != group {
            group = d.group;
            s.push_str(&format!(
                "\n#### {group}\n\n| signature | what it does | example |\n|---|---|---|\n"
            ));
        }
        s.push_str(&format!(
            "| `{}` | {} | `{}` |\n",
            d.signature.replace('|', "\\|"),
            d.doc.replace('|', "\\|"),
            d.example.replace('|', "\\|")
        ));
    }
    s
}
