//! The `strata-bench` binary: parses flags and runs the subcommand on a tokio runtime.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = strata_bench::Cli::parse();
    match strata_bench::dispatch(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
