//! `handover audit`: export, timeline, verify and stats over a data directory.

use std::process::ExitCode;

/// The audit subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum AuditCommand {}

pub(crate) fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {}
}
