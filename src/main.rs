//! The `sanmover` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(sanmover::cli::main())
}
