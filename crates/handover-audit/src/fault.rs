//! What the audit finds wrong in a log: a [`Fault`], at a [`Location`] (stream, seq, position),
//! with a description a person can act on.

use std::fmt;

use handover_core::{AiAgentId, ConversationId, StreamId};
use handover_store::StoreError;

/// Where in the log a fault is. Each part is known or not depending on the fault: a damaged
/// record is named by its stream and seq, a gap in the global order by its position.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// The stream.
    pub stream: Option<StreamId>,
    /// The event's number in its stream.
    pub seq: Option<u64>,
    /// The global position.
    pub position: Option<u64>,
}

impl Location {
    /// A record's full location.
    pub fn record(stream: &StreamId, seq: u64, position: u64) -> Location {
        Location {
            stream: Some(stream.clone()),
            seq: Some(seq),
            position: Some(position),
        }
    }

    /// Reads the location text of a [`StoreError::Corrupted`] (`stream <name> seq <n>` or
    /// `position <n>`), adding `position` when the store's text does not carry one.
    pub(crate) fn from_store_text(text: &str, position: Option<u64>) -> Location {
        let mut location = Location {
            position,
            ..Location::default()
        };
        if let Some(rest) = text.strip_prefix("stream ") {
            if let Some((stream, seq)) = rest.rsplit_once(" seq ") {
                location.stream = parse_stream(stream);
                location.seq = seq.parse().ok();
            }
        } else if let Some(at) = text.strip_prefix("position ") {
            location.position = at.parse().ok().or(position);
        }
        location
    }
}

/// Parses a stream name as [`StreamId`]'s `Display` writes it.
fn parse_stream(name: &str) -> Option<StreamId> {
    if let Some(id) = name.strip_prefix("conversation-") {
        return id
            .parse::<ConversationId>()
            .ok()
            .map(StreamId::Conversation);
    }
    let id = name.strip_prefix("ai-agent-")?;
    AiAgentId::new(id).ok().map(StreamId::AiAgent)
}

impl fmt::Display for Location {
    /// `stream conversation-… seq 3 (position 12)`, leaving out what is unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(stream) = &self.stream {
            parts.push(format!("stream {stream}"));
        }
        if let Some(seq) = self.seq {
            parts.push(format!("seq {seq}"));
        }
        match (parts.is_empty(), self.position) {
            (true, Some(position)) => write!(f, "position {position}"),
            (true, None) => f.write_str("an unknown place"),
            (false, Some(position)) => write!(f, "{} (position {position})", parts.join(" ")),
            (false, None) => f.write_str(&parts.join(" ")),
        }
    }
}

/// Which kind of check a fault failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// A record is damaged: checksum, format version, body, or a record in the wrong place.
    Damaged,
    /// The order is broken: a gap in positions or in a stream's seqs, or time going back.
    Order,
    /// The stream records and the global index disagree.
    Index,
    /// An event breaks a rule of the domain (it could not have been decided).
    Rule,
}

impl FaultKind {
    /// `damaged`, `order`, `index` or `rule`.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Damaged => "damaged",
            FaultKind::Order => "order",
            FaultKind::Index => "index",
            FaultKind::Rule => "rule",
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
            StoreError::Corrupted { location, detail } => {
                // The store says what is wrong only in words; its wording for gaps and for the
                // index is stable enough to sort the fault, and the words are kept as the
                // description either way.
                let kind = if detail.contains("skips") {
                    FaultKind::Order
                } else if detail.contains("index") {
                    FaultKind::Index
                } else {
                    FaultKind::Damaged
                };
                Ok(Fault::new(
                    kind,
                    Location::from_store_text(&location, position),
                    detail,
                ))
            }
            other => Err(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_locations_are_read_back() {
        let text = "stream conversation-0190f1f0-0000-7000-8000-000000000001 seq 7";
        let location = Location::from_store_text(text, Some(12));
        assert_eq!(
            location.to_string(),
            "stream conversation-0190f1f0-0000-7000-8000-000000000001 seq 7 (position 12)"
        );
        let agent = Location::from_store_text("stream ai-agent-faq seq 2", None);
        assert_eq!(
            agent.stream,
            Some(StreamId::AiAgent(AiAgentId::new("faq").unwrap()))
        );
        assert_eq!(agent.seq, Some(2));
        let gap = Location::from_store_text("position 5", Some(5));
        assert_eq!(gap.to_string(), "position 5");
    }
}
