//! The `handover` command: audit a Handover event log, and run contact-center simulations
//! through the real runtime.

mod audit;
mod bench;
mod database;
mod policy;
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
    /// Read an event log, in a data directory or a database: export, timeline, verify, stats.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Run a simulated contact center through the real runtime.
    Simulate(simulate::SimulateArgs),
    /// Read and check escalation policies: print the default, check a file, test a message.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Measure what durability costs on this disk: a closed loop of conversations posting
    /// messages, then events/s, syncs per event, acknowledgement latency and fdatasync time.
    Bench(bench::BenchArgs),
}

/// Keeps sled's own panics off the terminal. The store contains them (sled 0.34 panics on some
/// damaged files instead of returning an error) and turns each into a typed error that the
/// command reports with a message and its exit code; the default hook would first print a
/// panic message and, with RUST_BACKTRACE set, a backtrace, as if the command itself had
/// crashed. Any other panic is a bug and is reported as usual.
fn quiet_storage_engine_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_sled = info
            .location()
            .is_some_and(|location| location.file().contains("/sled-0."));
        if !in_sled {
            default(info);
        }
    }));
}

/// Parses the command line. A `DATABASE_URL` in the environment counts as `--database-url`, so
/// with `--data` it is refused as both; the error then says where the URL came from.
fn parse() -> Result<Cli, ExitCode> {
    Cli::try_parse().map_err(|error| {
        let _ = error.print();
        let from_env = std::env::var_os("DATABASE_URL").is_some_and(|url| !url.is_empty());
        if error.kind() == clap::error::ErrorKind::ArgumentConflict && from_env {
            eprintln!(
                "note: DATABASE_URL is set in the environment and counts as --database-url; \
                 unset it to read or write a data directory with --data"
            );
        }
        ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(2))
    })
}

fn main() -> ExitCode {
    quiet_storage_engine_panics();
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let result = match cli.command {
        Command::Audit(command) => audit::run(command),
        Command::Simulate(args) => simulate::run(args),
        Command::Policy(command) => policy::run(command),
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
