//! The `stilts` command: see `stilts::cli`.

// mimalloc, and keep freed memory: see `stilts::alloc`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    stilts::alloc::keep_freed_memory();
    stilts::cli::main()
}
