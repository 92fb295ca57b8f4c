//! The `stilts` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use stilts::model::{LoadOptions, Model};

#[derive(Parser)]
#[command(name = "stilts", version, about = "STILTs for zero-shot cross-lingual transfer with XLM-R")]
struct Cli {
    /// Number of CPU threads (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The STILTs protocol on an embedded default (tiny model, bundled
    /// data): with and without an intermediate task, zero-shot in six
    /// languages. Writes a report under OUT.
    Quickstart {
        #[arg(long, default_value = "target/quickstart")]
        out: PathBuf,
    },
    /// Classify every line of FILE (`text` or `premise<TAB>hypothesis`) with a
    /// fine-tuned model; prints one JSON line per example.
    Predict {
        /// A model directory, a hub id in the Hugging Face cache, or a size name.
        model: String,
        file: PathBuf,
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        #[arg(long, default_value_t = 128)]
        max_length: usize,
    },
    /// Writes a tiny random XLM-R with a tokenizer trained on TEXT (one
    /// sentence a line) into DIR, in Hugging Face layout.
    Tiny {
        dir: PathBuf,
        /// Text to train the tokenizer on.
        #[arg(long)]
        text: PathBuf,
        /// `xlmr` (post-LayerNorm) or `xlmr-xl` (pre-LayerNorm).
        #[arg(long, default_value = "xlmr")]
        arch: String,
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
}

fn run(cli: Cli) -> stilts::Result<()> {
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global().ok();
    }
    match cli.command {
        Command::Quickstart { out } => {
            let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = cancel.clone();
            // Ctrl-C: finish the current step, then stop (finished files stay).
            ctrlc::set_handler(move || flag.store(true, std::sync::atomic::Ordering::Relaxed)).ok();
            let mut bars = |what: &str| -> Box<dyn stilts::protocol::train::Progress> { Box::new(stilts::progress::Bar::new(what)) };
            let result = stilts::quickstart::run(&out, &mut bars, &cancel)?;
            println!("{}", result.table());
            println!("report: {}", out.join("report.md").display());
            Ok(())
        }
        Command::Predict { model, file, batch_size, max_length } => {
            let model = Model::load(&model, &LoadOptions::default())?;
            for line in model.report.summary() {
                eprintln!("note: {line}");
            }
            let examples = stilts::predict::read_examples(&file)?;
            let preds = stilts::predict::predict(&model, &examples, batch_size, max_length)?;
            stilts::predict::write_jsonl(&preds, &mut std::io::stdout().lock())
        }
        Command::Tiny { dir, text, arch, vocab, hidden, layers, heads, ffn, labels, seed } => {
            let variant = match arch.as_str() {
                "xlmr" => stilts::model::Variant::PostLayerNorm,
                "xlmr-xl" => stilts::model::Variant::PreLayerNorm,
                other => return Err(stilts::Error::msg(format!("--arch `{other}`: use xlmr or xlmr-xl"))),
            };
            let texts: Vec<String> = stilts::error::read_to_string(&text)?.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect();
            let spec = stilts::model::tiny::TinySpec { variant, vocab_size: vocab, hidden_size: hidden, num_layers: layers, num_heads: heads, intermediate_size: ffn, seed, ..Default::default() };
            let labels = labels.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            let model = stilts::model::tiny::write(&spec, &texts, stilts::model::HeadKind::Classification { labels }, &dir)?;
            eprintln!("wrote {model}\n  to {}", dir.display());
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
