//! `handover simulate`: a contact center at work, through the real runtime.

use std::process::ExitCode;

/// Options of `handover simulate`.
#[derive(Debug, clap::Args)]
pub(crate) struct SimulateArgs {}

pub(crate) fn run(_args: SimulateArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("not built yet")
}
