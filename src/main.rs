//! The `countersign` binary: everything lives in the library; see `countersign --help`.

fn main() -> std::process::ExitCode {
    countersign::cli::main()
}
