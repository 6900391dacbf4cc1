//! `azbatch`: AzBatch from the shell. `azbatch demo` is the README's main job.

mod demo;

use clap::{Parser, Subcommand};

/// Fan out Azure Resource Manager calls through the batch endpoint.
#[derive(Parser)]
#[command(name = "azbatch", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the emulator in-process and race one-at-a-time calls, classic
    /// sequential batches and AzBatch over the same PIM query.
    Demo(demo::Args),
    /// Run the local emulator until interrupted, printing its address.
    Emulator {
        /// Port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Subscriptions in the tenant.
        #[arg(long, default_value_t = 10)]
        subscriptions: usize,
        /// Delay of each item in milliseconds.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        /// Bearer token every call must carry (default: any call is accepted).
        #[arg(long)]
        token: Option<String>,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Emulator {
            port,
            subscriptions,
            latency_ms,
            token,
        } => {
            let config = azbatch_emulator::Config {
                port,
                subscriptions,
                token,
                latency: azbatch_emulator::Latency::fixed(std::time::Duration::from_millis(
                    latency_ms,
                )),
                ..Default::default()
            };
            match azbatch_emulator::Emulator::start(config) {
                Ok(emu) => {
                    println!("{}", emu.url());
                    let _ = tokio::signal::ctrl_c().await;
                    Ok(())
                }
                Err(e) => Err(anyhow::anyhow!("cannot start the emulator: {e}")),
            }
        }
    };
    if let Err(e) = code {
        eprintln!("azbatch: {e:#}");
        std::process::exit(1);
    }
}
