//! `azbatch-emulator --port 0 ...`: the emulator on its own, printing its address.

use azbatch_emulator::cli::{config, Args};
use azbatch_emulator::Emulator;
use clap::Parser;

fn main() {
    let args = Args::parse();
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("azbatch-emulator: {e}");
            std::process::exit(2);
        }
    };
    let emulator = match Emulator::start(config) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("azbatch-emulator: cannot listen: {e}");
            std::process::exit(1);
        }
    };
    println!("{}", emulator.url());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // Serve until killed.
    loop {
        std::thread::park();
    }
}
