//! What the audit finds wrong in a log: a [`Fault`], at a [`Location`] (stream, seq, position),
//! with a description a person can act on.

use handover_store::{Damage, LogLocation, StoreError};

/// Where in the log a fault is: the store's [`LogLocation`]. Each part is known or not
/// depending on the fault: a damaged record is named by its stream and seq, a gap in the
/// global order by its position.
pub type Location = LogLocation;

/// Which kind of check a fault failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// A record is damaged: checksum, format version, body, or a record in the wrong place.
    Damaged,
    /// The order is broken: a gap in positions or in a stream's seqs, or time going back.
    Order,
    /// The stream records and the global index disagree.
    Index,
    /// An event breaks a rule of the domain (it could not have been decided).
    Rule,
    /// Acknowledged events are missing: a stream ends before its high-water mark, or the log
    /// before the last position the store acknowledged.
    Truncated,
    /// A human acted on a conversation they did not answer for: not its assigned human (nor,
    /// while an AI agent held it, the human who handed it off), not a supervisor, not
    /// registered, removed or offline.
    Authority,
    /// The router gave a conversation to a human who was not available or was at capacity.
    Capacity,
    /// An SLA event's figures are wrong: the wait is below the threshold, or disagrees with
    /// the time from the start of the wait to the event.
    Sla,
    /// An event crosses tenants: a human or an AI agent of one tenant on a conversation of
    /// another.
    Tenant,
}

impl FaultKind {
    /// `damaged`, `order`, `index`, `rule`, `truncated`, `authority`, `capacity`, `sla` or
    /// `tenant`.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Damaged => "damaged",
            FaultKind::Order => "order",
            FaultKind::Index => "index",
            FaultKind::Rule => "rule",
            FaultKind::Truncated => "truncated",
            FaultKind::Authority => "authority",
            FaultKind::Capacity => "capacity",
            FaultKind::Sla => "sla",
            FaultKind::Tenant => "tenant",
        }
    }
}

/// Something wrong in the log, where it is and what it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} fault at {location}: {description}", .kind.as_str())]
pub struct Fault {
    /// Which check failed.
    pub kind: FaultKind,
    /// Where.
    pub location: Location,
    /// What is wrong, in words.
    pub description: String,
}

impl Fault {
    /// A fault of `kind` at `location`.
    pub fn new(kind: FaultKind, location: Location, description: impl Into<String>) -> Fault {
        Fault {
            kind,
            location,
            description: description.into(),
        }
    }

    /// Turns a store error met while reading into a fault, if it is damage the log holds;
    /// other store errors (I/O, in use) are not facts about the log and are returned as they
    /// are. `position` is where the read was, when known.
    pub(crate) fn from_store(
        error: StoreError,
        position: Option<u64>,
    ) -> Result<Fault, StoreError> {
        match error {
            StoreError::Corrupted {
                mut at,
                damage,
                detail,
            } => {
                let kind = match damage {
                    Damage::Gap => FaultKind::Order,
                    Damage::Index => FaultKind::Index,
                    Damage::Rule => FaultKind::Rule,
                    Damage::Truncated => FaultKind::Truncated,
                    _ => FaultKind::Damaged,
                };
                at.position = at.position.or(position);
                Ok(Fault::new(kind, at, detail))
            }
            other => Err(other),
        }
    }
}
