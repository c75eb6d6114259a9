//! Replay, projections, verification and export of a Handover event log, without starting
//! actors.
//!
//! Everything here reads the log through [`handover_sled::SledStore`] (or from memory, see
//! below) and folds it with the same rules the runtime uses
//! ([`handover_core::conversation::evolve`] and [`handover_core::Roster::evolve`]), so what the
//! audit reports is what the runtime would rebuild:
//!
//! - [`Replay`] folds the whole log, in global order, into one [`ConversationHistory`] per
//!   conversation plus the AI-agent [`Roster`](handover_core::Roster), the
//!   [`Directory`](handover_core::Directory) of humans and their loads; the other parts read it;
//! - [`export`] writes the log as JSON Lines or CloudEvents (the contract is
//!   `docs/audit-format.md`);
//! - [`timeline`] tells one conversation's story for a person;
//! - [`verify_dir`] checks checksums, order, the global index and every rule, and names the
//!   first fault;
//! - [`stats`] sums the log up: handoffs, reclaims, escalations, AI containment (overall and
//!   per agent), time per state, time from escalation to a human, SLA events, AI reply
//!   timeouts, load per human;
//! - [`conversations`] lists every conversation with its status, events and last activity;
//! - [`what_if_of`] replays the log under another escalation policy and reports what its
//!   rules would have decided differently;
//! - [`report_of`] builds a [`Report`] for people: the figures of [`stats`] plus their
//!   breakdown by AI agent, by team and over time, and [`Report::to_html`] renders it as one
//!   self-contained HTML page with SVG charts.
//!
//! The passes over the whole log have a variant named `…_with_progress` that tells a
//! [`Progress`] how far they have got.
//!
//! Each of them also reads a log held in memory: a [`RecordLog`] of every record in position
//! order (a PostgreSQL store's snapshot, or any store's `read_all`), through an [`AuditLog`]
//! and the functions named `…_of` ([`export_of`], [`timeline_of`], [`verify_of`],
//! [`stats_of`], [`conversations_of`], [`Replay::from_log`]). The same log gives the same
//! output from either place.
//!
//! ```no_run
//! # fn main() -> Result<(), handover_audit::AuditError> {
//! let dir = std::path::Path::new("./data");
//! match handover_audit::verify_dir(dir)? {
//!     handover_audit::VerifyReport::Sound { events, streams } => {
//!         println!("{events} events in {streams} streams");
//!     }
//!     handover_audit::VerifyReport::Faulty(fault) => println!("{fault}"),
//! }
//! let store = handover_audit::open_data_dir(dir)?;
//! println!("{}", handover_audit::stats(&store)?);
//! # Ok(())
//! # }
//! ```

mod error;
mod export;
mod fault;
mod listing;
mod log;
mod progress;
mod replay;
mod report;
mod stats;
mod timefmt;
mod timeline;
mod verify;
mod whatif;

use std::path::Path;

use handover_sled::{SledOptions, SledStore};

pub use error::AuditError;
pub use export::{
    event_json, event_json_in, export, export_of, export_of_with_progress, ExportFormat,
    ExportLines, ExportOptions, CLOUDEVENTS_TYPE_PREFIX,
};
pub use fault::{Fault, FaultKind, Location};
pub use listing::{conversations, conversations_of, ConversationListing, ConversationTable};
pub use log::{AuditLog, RecordLog};
pub use progress::{NoProgress, Progress};
pub use replay::{
    AiOutcome, ApprovalCounts, ConversationHistory, Holder, HumanSpan, MessageCounts, Period,
    Replay,
};
pub use report::{
    report, report_of, report_of_with_progress, AgentReport, Containment, Histogram, Report,
    TeamReport, TimeBucket, Timeline as ReportTimeline,
};
pub use stats::{
    stats, stats_of, AgentContainment, EscalationCounts, HumanLoad, Percentiles, SkillCounts,
    StateTimes, Stats,
};
pub use timefmt::{format_duration, format_duration_hms, format_recorded_at};
pub use timeline::{timeline, timeline_of, Timeline, TimelineEntry};
pub use verify::{
    verify_dir, verify_dir_with_progress, verify_of, verify_of_with_progress, VerifyReport,
};
pub use whatif::{
    moment, what_if_of, what_if_of_with_progress, what_if_records, WhatIf, WhatIfFinding,
    WhatIfMoments, WhatIfReport, WHAT_IF_EXAMPLES_MAX,
};

/// Checks that `dir` is an existing data directory: it exists and holds a sled database.
/// Never creates anything.
pub fn check_data_dir(dir: &Path) -> Result<(), AuditError> {
    if dir.exists() && !dir.is_dir() {
        return Err(AuditError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    if !dir.is_dir() {
        return Err(AuditError::DataDirMissing {
            path: dir.to_path_buf(),
        });
    }
    // sled keeps its log in a file named `db`; a directory without one holds no event log,
    // and opening it would create an empty database in, say, a mistyped path.
    if !dir.join("db").is_file() {
        return Err(AuditError::NotADataDir {
            path: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// Opens the event log in an existing data directory for reading.
///
/// Fails with [`AuditError::DataDirMissing`] or [`AuditError::NotADataDir`] rather than
/// creating one, with [`handover_store::StoreError::InUse`] (inside [`AuditError::Store`]) when
/// another holder keeps the directory (see [`SledOptions::in_use_wait`]), and with
/// [`handover_store::StoreError::Corrupted`] when the log is shorter than what the store
/// acknowledged, so that no report is ever made from a silently shorter log.
pub fn open_data_dir(dir: &Path) -> Result<SledStore, AuditError> {
    let store = open_unchecked(dir)?;
    store.check_acknowledged()?;
    Ok(store)
}

/// Opens the log without checking it against its anchor: verification does that last, so
/// that the earliest fault is the one it reports.
pub(crate) fn open_unchecked(dir: &Path) -> Result<SledStore, AuditError> {
    check_data_dir(dir)?;
    Ok(SledStore::open(
        dir,
        SledOptions {
            cache_bytes: AUDIT_CACHE_BYTES,
            check_acknowledged_on_open: false,
            ..SledOptions::default()
        },
    )?)
}

/// sled's page cache for an audit: 1 GiB, sled's own default, where the store's default is
/// 64 MiB.
///
/// An audit is a batch job that reads the whole log, the stream records and the global index
/// side by side. With 64 MiB, a log larger than the cache (a million events hold about
/// 115 MiB of records) keeps evicting pages it is about to need, and sled reads and parses
/// them again from its file: the replay of a million events measured 2.4 times slower than
/// with 1 GiB (`benches/audit_replay.rs`). The figure is a cap, not an allocation: sled holds
/// only the pages it has read, so a small log costs no more than before, and a large one at
/// most this much, for as long as the audit runs.
const AUDIT_CACHE_BYTES: u64 = 1024 * 1024 * 1024;
