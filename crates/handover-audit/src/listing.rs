//! The list of conversations in a log: for each, who and where, its status now, how many
//! events it has, when it opened and when it was last active. `handover audit conversations`
//! prints it.

use std::fmt;

use handover_core::{Conversation, ConversationId, Status};
use handover_sled::SledStore;
use handover_store::RecordedAt;
use serde::Serialize;

use crate::error::AuditError;
use crate::log::AuditLog;
use crate::replay::{ConversationHistory, Replay};
use crate::timefmt::format_recorded_at;

/// One conversation as the list shows it. Serialises to one line of
/// `handover audit conversations --json` (the contract is `docs/audit-format.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ConversationListing {
    /// The conversation's id.
    pub id: ConversationId,
    /// The customer.
    pub customer_id: String,
    /// The channel.
    pub channel: String,
    /// `human-handled`, `ai-active`, `reclaimed`, `awaiting-human` or `closed`.
    pub status: &'static str,
    /// The AI agent handling it, when AI-active.
    pub ai_agent_id: Option<String>,
    /// The human most recently in charge (assigned, or who reclaimed it).
    pub human_id: Option<String>,
    /// Events in its stream.
    pub events: u64,
    /// When it was opened (RFC 3339, UTC, microseconds).
    pub opened_at: String,
    /// When its last event was recorded (RFC 3339, UTC, microseconds).
    pub last_activity_at: String,
    /// The tenant it belongs to (`default` for a conversation opened before tenants).
    pub tenant: String,
}

impl ConversationListing {
    /// The listing of one replayed conversation; `None` for a history without an open (which
    /// a replay that completed never holds).
    pub fn from_history(history: &ConversationHistory) -> Option<ConversationListing> {
        let (Conversation::Open(open) | Conversation::Closed(open)) = history.state() else {
            return None;
        };
        let status = history.status();
        let ai_agent_id = match &status {
            Status::AiActive { agent_id, .. } => Some(agent_id.as_str().to_owned()),
            _ => None,
        };
        Some(ConversationListing {
            id: history.id(),
            customer_id: open.customer.as_str().to_owned(),
            channel: open.channel.as_str().to_owned(),
            status: status.label(),
            ai_agent_id,
            human_id: open.human.as_ref().map(|human| human.as_str().to_owned()),
            events: history.version(),
            opened_at: timestamp(history.opened_at()),
            last_activity_at: timestamp(history.last_event_at()),
            tenant: open.tenant.as_str().to_owned(),
        })
    }
}

/// A replay only accepts times RFC 3339 can write, so the fallback never shows in a sound log.
fn timestamp(at: Option<RecordedAt>) -> String {
    at.and_then(format_recorded_at).unwrap_or_default()
}

/// Every conversation of the log, in the order they were opened (by id: UUID v7). Replays the
/// whole log with the same checks as verify's first pass, and refuses a log that does not
/// replay.
pub fn conversations(store: &SledStore) -> Result<Vec<ConversationListing>, AuditError> {
    conversations_of(AuditLog::Sled(store))
}

/// [`conversations`] over any [`AuditLog`]: the same list for the same log, whether it is read
/// from a sled store or held in memory.
pub fn conversations_of(log: AuditLog<'_>) -> Result<Vec<ConversationListing>, AuditError> {
    let replay = Replay::from_log(log)?;
    Ok(replay
        .conversations()
        .filter_map(ConversationListing::from_history)
        .collect())
}

/// The listing as a table for a person: a header, then one aligned line per conversation.
pub struct ConversationTable<'a>(pub &'a [ConversationListing]);

impl fmt::Display for ConversationTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEADER: [&str; 7] = [
            "ID",
            "CUSTOMER",
            "CHANNEL",
            "STATUS",
            "EVENTS",
            "OPENED",
            "LAST ACTIVITY",
        ];
        let rows: Vec<[String; 7]> = self
            .0
            .iter()
            .map(|c| {
                [
                    c.id.to_string(),
                    c.customer_id.clone(),
                    c.channel.clone(),
                    match &c.ai_agent_id {
                        Some(agent) => format!("{} ({agent})", c.status),
                        None => c.status.to_owned(),
                    },
                    c.events.to_string(),
                    c.opened_at.clone(),
                    c.last_activity_at.clone(),
                ]
            })
            .collect();
        let mut widths = HEADER.map(str::len);
        for row in &rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let header = HEADER.map(str::to_owned);
        for row in std::iter::once(&header).chain(&rows) {
            let last = row.len() - 1;
            for (i, cell) in row.iter().enumerate() {
                if i == last {
                    writeln!(f, "{cell}")?;
                } else if i == 4 {
                    // Counts read best aligned to the right.
                    write!(f, "{cell:>width$}  ", width = widths[i])?;
                } else {
                    write!(f, "{cell:<width$}  ", width = widths[i])?;
                }
            }
        }
        Ok(())
    }
}
