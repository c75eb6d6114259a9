//! The `handover` command: audit a Handover event log, and run contact-center simulations
//! through the real runtime.

mod audit;
mod bench;
mod simulate;
mod terminal;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Audit Handover event logs and run contact-center simulations.
#[derive(Debug, Parser)]
#[command(name = "handover", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read a data directory's event log: export, timeline, verify, stats.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Run a simulated contact center through the real runtime.
    Simulate(simulate::SimulateArgs),
    /// Measure what durability costs on this disk: a closed loop of conversations posting
    /// messages, then events/s, syncs per event, acknowledgement latency and fdatasync time.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Audit(command) => audit::run(command),
        Command::Simulate(args) => simulate::run(args),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
