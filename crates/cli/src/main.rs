//! `azbatch`: AzBatch from the shell. `azbatch demo` is the README's main job.

mod bench;
mod demo;
mod dry_run;
mod input;
mod output;
mod run;

use clap::{CommandFactory, Parser, Subcommand};

/// Exit codes, the same in every `--help` and in the README.
macro_rules! exit_codes {
    () => {
        "Exit codes: 0 every request succeeded, 1 some requests failed (or were cancelled), \
         2 bad usage or input (a bad file sends nothing), 3 authentication failed, \
         141 the reader of the results went away (0 on Windows)."
    };
}
const EXIT_CODES: &str = exit_codes!();

/// Fan out Azure Resource Manager and Microsoft Graph calls through their batch endpoints.
#[derive(Parser)]
#[command(name = "azbatch", version, about, after_help = EXIT_CODES, disable_version_flag = true)]
struct Cli {
    /// Print the version of the command and the library, and the commit, then exit.
    #[arg(short = 'V', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Send requests (a JSON array or one JSON request per line, from a file or
    /// standard input); print one JSON result per line as each finishes.
    #[command(after_help = concat!("Examples:
  # Patch users on Graph with a service principal, results in input order:
  azbatch run --api graph --auth clientSecret --ordered updates.jsonl > results.jsonl
  # A long run that survives a crash: run the same command again to resume it.
  azbatch run --journal run.journal requests.jsonl > results.jsonl
  # Requests from a pipe (a JSON array works too):
  jq -c '.[]' requests.json | azbatch run --api arm --follow-next-link

", exit_codes!()))]
    Run(run::RunArgs),
    /// Send the same request to every subscription the token can see.
    #[command(after_help = concat!("Examples:
  # PIM eligibility in every subscription:
  azbatch subscriptions --url '/subscriptions/{subscriptionId}/providers/Microsoft.Authorization/roleEligibilityScheduleInstances?api-version=2020-10-01'
  # Resource groups of every subscription, every page, with a journal:
  azbatch subscriptions --follow-next-link --journal rgs.journal --url '/subscriptions/{subscriptionId}/resourcegroups?api-version=2021-04-01'

", exit_codes!()))]
    Subscriptions(run::SubscriptionsArgs),
    /// Start the emulator in-process and race one-at-a-time calls, classic
    /// sequential batches and AzBatch over the same PIM query, then Graph jobs.
    #[command(
        after_help = "Examples:\n  azbatch demo\n  azbatch demo --subscriptions 50 --latency-ms 50"
    )]
    Demo(demo::Args),
    /// Run the benchmark workloads side by side (one request at a time,
    /// sequential batches, AzBatch) against the emulator and print the table.
    ///
    /// With `AZBATCH_LOG` set, AzBatch's rows log to standard error.
    #[command(
        after_help = "Examples:\n  azbatch bench\n  azbatch bench --only a,e --scale 0.1 --json > bench.json\n  AZBATCH_LOG=azbatch=info azbatch bench --only p --azbatch-only 2> p.log"
    )]
    Bench(bench::Args),
    /// The benchmark's child that runs the library alone.
    #[command(hide = true)]
    BenchLibrary(bench::library::Args),
    /// Run the local emulator until interrupted, printing its address.
    #[command(
        after_help = "Example:\n  azbatch emulator --subscriptions 200 --latency-ms 150 --faults item429=0.05 --seed 7"
    )]
    Emulator(azbatch_emulator::cli::Args),
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell.
    #[command(
        after_help = "Examples:\n  azbatch completions bash > ~/.local/share/bash-completion/completions/azbatch\n  azbatch completions zsh > \"${fpath[1]}/_azbatch\"\n  azbatch completions powershell >> $PROFILE"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) of azbatch and its subcommands.
    #[command(after_help = "Example:\n  azbatch man > azbatch.1 && man ./azbatch.1")]
    Man,
}

fn main() {
    let cli = Cli::parse();
    if cli.version {
        println!(
            "azbatch {} (library {}, commit {})",
            env!("CARGO_PKG_VERSION"),
            azbatch::VERSION,
            env!("AZBATCH_COMMIT")
        );
        std::process::exit(run::exit::OK);
    }
    let Some(command) = cli.command else {
        let _ = Cli::command().print_help();
        std::process::exit(run::exit::USAGE);
    };
    let code = match command {
        Command::Completions { shell } => {
            let mut script = vec![];
            clap_complete::generate(shell, &mut Cli::command(), "azbatch", &mut script);
            // A reader that stops early (a closed pipe) is no failure.
            let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
            run::exit::OK
        }
        Command::Man => match man() {
            Ok(()) => run::exit::OK,
            // A reader that stops early (`azbatch man | head`) is no failure.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => run::exit::OK,
            Err(e) => {
                eprintln!("azbatch: cannot write the man page: {e}");
                run::exit::FAILED
            }
        },
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
        Command::BenchLibrary(args) => match bench::library::run(args) {
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

/// The man page of `azbatch`, its subcommands' sections after it.
fn man() -> std::io::Result<()> {
    let cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    for sub in cmd.get_subcommands() {
        let name: &'static str = Box::leak(format!("azbatch-{}", sub.get_name()).into_boxed_str());
        clap_mangen::Man::new(sub.clone().name(name)).render(&mut out)?;
    }
    Ok(())
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
