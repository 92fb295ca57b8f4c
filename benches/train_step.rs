//! `cargo bench --bench train_step -- [--size xlmr-base | --vocab V --hidden H --layers L --heads A --ffn F] --batch B --seq T --steps N [--bf16]`
//! prints one JSON object (see `stilts::bench::BenchResult`).

// Same allocator as the `stilts` binary (see src/main.rs).
#[global_allocator]
static GLOBAL: stilts::alloc::Allocator = stilts::alloc::Allocator;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    stilts::alloc::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let num = |n: &str, d: usize| {
        arg(&args, n)
            .map(|v| v.parse().expect("a number"))
            .unwrap_or(d)
    };
    let (batch, seq) = (num("--batch", 16), num("--seq", 128));
    let mut spec = match arg(&args, "--size") {
        Some(s) => stilts::bench::BenchSpec::from_size(&s, batch, seq).expect("size"),
        None => {
            let config = stilts::model::XlmrConfig::new(
                stilts::model::Variant::PostLayerNorm,
                num("--vocab", 250002),
                num("--hidden", 256),
                num("--layers", 4),
                num("--heads", 4),
                num("--ffn", 1024),
                514,
            )
            .expect("a valid shape");
            stilts::bench::BenchSpec::new(&config, batch, seq)
        }
    };
    spec.steps = num("--steps", spec.steps);
    spec.bf16 = args.iter().any(|a| a == "--bf16");
    let r = stilts::bench::run(&spec, &candle_core::Device::Cpu).expect("bench");
    println!("{}", serde_json::to_string(&r).unwrap());
}
