//! The `stilts` command: see `stilts::cli`.

// mimalloc, and keep freed memory (or the system allocator under
// `--live-memory`): see `stilts::alloc`.
#[global_allocator]
static GLOBAL: stilts::alloc::Allocator = stilts::alloc::Allocator;

fn main() -> std::process::ExitCode {
    stilts::alloc::keep_freed_memory();
    stilts::cli::main()
}
