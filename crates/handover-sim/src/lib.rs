//! Samples built on the Handover facade, kept apart from the library: the FAQ/pricing AI agent
//! ([`faq`]) and a simulated contact center ([`simulate`]) that drives it through the real
//! runtime.
//!
//! A simulation staffs two tenants (teams, human agents with capacities, breaks and sign-outs,
//! a supervisor each), draws one scenario per conversation from its seed (FAQ and pricing
//! questions, complaints, negotiations, "I want a human", questions nobody can answer,
//! transfers, questions a slow AI agent never answers; in English, Portuguese or Spanish; and
//! the escalation policy's trials: frustrated customers, customers going in circles, questions
//! the FAQ agent cannot answer, refunds that wait for a person's approval, in those languages
//! and French, German and Italian), under the default escalation policy or
//! [`Options::policy`],
//! plays them through [`handover::Handover`] on simulated time with FAQ agents attached, and
//! sums up what the log recorded. The same seed on a fresh data directory gives the same
//! counts. The log lives in a data directory ([`simulate`]) or wherever a [`LogPlace`] says, a
//! PostgreSQL database included ([`simulate_at`]). On a database, [`simulate_nodes`] spreads
//! the same simulation over several node processes ([`run_node`]) stepped together, and may
//! kill some of them on the way.
//!
//! ```no_run
//! # async fn demo() -> Result<(), handover_sim::SimError> {
//! use handover_sim::{simulate, Options};
//!
//! let options = Options { conversations: 50, seed: 7, ..Options::default() };
//! let summary = simulate("/tmp/handover-sim".as_ref(), &options, |_| {}, std::future::pending()).await?;
//! println!("{summary}");
//! # Ok(()) }
//! ```

mod driver;
pub mod faq;
mod nodes;
mod place;
mod report;
mod scenario;
mod staff;

use std::path::PathBuf;

pub use driver::{simulate, simulate_at, Options, Progress, STEP_MS};
pub use nodes::{run_node, simulate_nodes, NodeRole, NodesOptions, NODES_MAX};
pub use place::LogPlace;
pub use report::Summary;

/// Most conversations one simulation may run.
pub const CONVERSATIONS_MAX: usize = 1_000_000;
/// Most AI agents one simulation may register.
pub const AI_AGENTS_MAX: usize = 64;
/// Most human agents one simulation may staff.
pub const HUMANS_MAX: usize = 10_000;
/// Most conversations one simulation may drive at the same time.
pub const CONCURRENT_CONVERSATIONS_MAX: usize = 4096;
/// Longest simulated shift, in minutes (a week).
pub const SHIFT_MINUTES_MAX: usize = 10_080;

/// Why a simulation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// An option is out of its bounds (the caller's fault).
    #[error("{0}")]
    Options(String),
    /// The runtime failed or refused a command the script expected it to accept.
    #[error(transparent)]
    Handover(#[from] handover::Error),
    /// A scripted value did not pass validation (a bug in the scripts).
    #[error(transparent)]
    Invalid(#[from] handover::InvalidInput),
    /// The acknowledgement file could not be opened or written.
    #[error("cannot write the acknowledgement file {}: {source}", path.display())]
    Acks {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The runtime or an AI agent did something the script rules out, or the log disagrees
    /// with what the driver did.
    #[error("{0}")]
    Unexpected(String),
    /// The database that holds the log could not be opened (unreachable, refused the
    /// credentials, or its log is damaged).
    #[error("cannot open the event log in the {place}: {source}")]
    Database {
        /// The database, as [`LogPlace`]'s `Display` names it: without its password.
        place: String,
        /// What the store said.
        source: handover::StoreError,
    },
}
