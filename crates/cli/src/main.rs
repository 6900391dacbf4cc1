//! `azbatch`: AzBatch from the shell. `azbatch demo` is the README's main job.

mod bench;
mod demo;
mod input;
mod run;

use clap::{Parser, Subcommand};

/// Fan out Azure Resource Manager and Microsoft Graph calls through their batch endpoints.
#[derive(Parser)]
#[command(name = "azbatch", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send requests (a JSON array or one JSON request per line, from a file or
    /// standard input); print one JSON result per line as each finishes.
    /// Exit code: 0 all succeeded, 1 some failed, 2 bad usage or input, 3 authentication failed.
    Run(run::RunArgs),
    /// Send the same request to every subscription the token can see.
    Subscriptions(run::SubscriptionsArgs),
    /// Start the emulator in-process and race one-at-a-time calls, classic
    /// sequential batches and AzBatch over the same PIM query, then Graph jobs.
    Demo(demo::Args),
    /// Run the benchmark workloads side by side (one request at a time,
    /// sequential batches, AzBatch) against the emulator and print the table.
    Bench(bench::Args),
    /// Run the local emulator until interrupted, printing its address.
    Emulator(azbatch_emulator::cli::Args),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Subscriptions(args) => run::subscriptions(args),
        Command::Demo(args) => match tokio_runtime().block_on(demo::run(args)) {
            Ok(()) => run::exit::OK,
            Err(e) => {
                eprintln!("azbatch: {e:#}");
                run::exit::FAILED
            }
        },
        Command::Bench(args) => match tokio_runtime().block_on(bench::run(args)) {
            Ok(()) => run::exit::OK,
            Err(e) => {
                eprintln!("azbatch: {e:#}");
                run::exit::FAILED
            }
        },
        Command::Emulator(args) => tokio_runtime().block_on(emulator(args)),
    };
    std::process::exit(code);
}

/// The demo's baselines and the emulator's wait are async; AzBatch's own runs
/// go through the blocking [`azbatch::Job`].
fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().expect("a tokio runtime starts")
}

async fn emulator(args: azbatch_emulator::cli::Args) -> i32 {
    let config = match azbatch_emulator::cli::config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("azbatch: {e}");
            return run::exit::USAGE;
        }
    };
    match azbatch_emulator::Emulator::start(config) {
        Ok(emu) => {
            println!("{}", emu.url());
            let _ = tokio::signal::ctrl_c().await;
            run::exit::OK
        }
        Err(e) => {
            eprintln!("azbatch: cannot start the emulator: {e}");
            run::exit::FAILED
        }
    }
}
