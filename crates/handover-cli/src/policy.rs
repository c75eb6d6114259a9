//! `handover policy`: the escalation policy as an operator reads and checks it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use handover_core::rules::{PolicySpec, DEFAULT_POLICY_TOML};

/// What `handover policy` does.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum PolicyCommand {
    /// Print the default policy file, a starting point for your own.
    Default,
    /// Check a policy file: its syntax, each rule's kind and parameters, unique names. Prints
    /// the policy's name, version and rules, or the line and column of the first mistake.
    Check {
        /// The policy file (TOML).
        file: PathBuf,
    },
}

/// Runs `handover policy`: 0 when done (a sound file), 1 for a file with a mistake.
pub(crate) fn run(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Default => {
            print!("{DEFAULT_POLICY_TOML}");
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Check { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            match PolicySpec::parse(&text) {
                Ok(policy) => {
                    println!(
                        "sound: policy {:?}, version {}, {} rules",
                        policy.name,
                        policy.version(),
                        policy.rules.len()
                    );
                    for rule in &policy.rules {
                        println!("  {}", rule.name);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    eprintln!("error: {}: {error}", file.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
