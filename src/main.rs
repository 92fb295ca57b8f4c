//! The `stilts` command: see `stilts::cli`.

fn main() -> std::process::ExitCode {
    stilts::cli::main()
}
