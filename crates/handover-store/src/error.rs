//! Store errors, where in the log damage was found, and the one expected outcome that is not
//! an error: a version conflict.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use handover_core::StreamId;

/// Another writer appended first: the stream is not at the expected version. Nothing was
/// written; the caller reloads and decides again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stream is at version {actual}, not the expected {expected}")]
pub struct Conflict {
    /// The version the appender expected (0 for "no stream yet").
    pub expected: u64,
    /// The stream's version.
    pub actual: u64,
}

/// Where in the log something was found: a record's stream and seq, its global position, or
/// all three. Each part is known or not depending on how the log was being read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogLocation {
    /// The stream.
    pub stream: Option<StreamId>,
    /// The event's number in its stream.
    pub seq: Option<u64>,
    /// The global position.
    pub position: Option<u64>,
}

impl LogLocation {
    /// A record's full location.
    pub fn record(stream: &StreamId, seq: u64, position: u64) -> LogLocation {
        LogLocation {
            stream: Some(stream.clone()),
            seq: Some(seq),
            position: Some(position),
        }
    }

    /// A place in a stream, its global position unknown.
    pub fn in_stream(stream: &StreamId, seq: u64) -> LogLocation {
        LogLocation {
            stream: Some(stream.clone()),
            seq: Some(seq),
            position: None,
        }
    }

    /// A global position, its stream unknown.
    pub fn at_position(position: u64) -> LogLocation {
        LogLocation {
            position: Some(position),
            ..LogLocation::default()
        }
    }
}

impl fmt::Display for LogLocation {
    /// `stream conversation-… seq 3 (position 12)`, leaving out what is unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.stream, self.seq, self.position) {
            (Some(stream), Some(seq), Some(position)) => {
                write!(f, "stream {stream} seq {seq} (position {position})")
            }
            (Some(stream), Some(seq), None) => write!(f, "stream {stream} seq {seq}"),
            (Some(stream), None, _) => write!(f, "stream {stream}"),
            (None, _, Some(position)) => write!(f, "position {position}"),
            (None, _, None) => f.write_str("an unknown place"),
        }
    }
}

/// What kind of damage a read found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Damage {
    /// The record's bytes: checksum, format version, length, or body.
    Record,
    /// A sound record in the wrong place: moved, swapped, or copied from another key.
    Misplaced,
    /// A stream skips a seq, or the global order skips a position.
    Gap,
    /// A sound record that does not carry the hash of the record before it in its stream, or a
    /// stream's last record that is not the one its high-water mark names: a record was
    /// replaced, removed, reordered or spliced in.
    Chain,
    /// The global index disagrees with the records: missing, malformed, or pointing elsewhere.
    Index,
    /// A sound record whose event breaks the domain's rules on replay.
    Rule,
    /// Acknowledged events are missing: a stream ends before its high-water mark, or the log
    /// ends before the last position the store acknowledged (its anchor). Storage that loses
    /// a suffix without reporting it (sled's recovery stops at the first unreadable message of
    /// its own log) is caught here.
    Truncated,
    /// The storage engine's own pages are damaged.
    Engine,
}

/// A failure of the store itself: the caller's input was fine.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process (a running Handover, or an audit) holds the data directory.
    #[error("data directory {path} is in use by another process (a running Handover or an audit holds its lock); stop it or use a copy of the directory")]
    InUse {
        /// The data directory.
        path: PathBuf,
    },
    /// The operating system failed; the outcome of a write in progress is unknown.
    #[error("storage I/O failed: {0}")]
    Io(Arc<std::io::Error>),
    /// The storage engine reported an error of its own.
    #[error("storage engine failed: {0}")]
    Engine(String),
    /// The log holds damage: a record that fails its checks, or is out of its place.
    #[error("corrupted log at {at}: {detail}")]
    Corrupted {
        /// Where.
        at: LogLocation,
        /// What kind of damage.
        damage: Damage,
        /// What is wrong, in words.
        detail: String,
    },
    /// An event too large to store (the domain's limits keep this from happening).
    #[error("record of {len} bytes exceeds the limit of {max} bytes")]
    RecordTooLarge {
        /// Its encoded size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// An earlier storage failure (the cause) stopped the store: after an I/O error the
    /// engine's state is unknown, so it refuses every append and read until it is reopened,
    /// which reads what is on disk.
    #[error("the store stopped after a storage failure and must be reopened: {0}")]
    Failed(Arc<StoreError>),
    /// More appends are waiting than the store queues; nothing was written. Retry later.
    #[error(
        "the store is overloaded: too many appends are waiting; nothing was recorded, retry later"
    )]
    Overloaded,
    /// This process does not hold the lease of the shard the stream belongs to (another
    /// process took it over, or this one lost it while paused): nothing was recorded. Only a
    /// store shared by several processes answers this; the stream's owner must take the
    /// command.
    #[error("this process does not own shard {shard} (its lease was taken over or lost); nothing was recorded: the shard's owner takes the command")]
    NotOwner {
        /// The shard.
        shard: u16,
    },
}

impl StoreError {
    /// Damage of `damage` kind at `at`.
    pub fn corrupted(at: LogLocation, damage: Damage, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupted {
            at,
            damage,
            detail: detail.into(),
        }
    }

    /// A sound record whose event the domain's rules refuse on replay.
    pub fn breaks_rules(record: &crate::RecordedEvent, rejection: impl fmt::Display) -> StoreError {
        StoreError::corrupted(
            LogLocation::record(&record.stream, record.seq, record.position),
            Damage::Rule,
            format!("the event breaks the rules on replay: {rejection}"),
        )
    }
}

impl From<std::io::Error> for StoreError {
    fn from(error: std::io::Error) -> Self {
        StoreError::Io(Arc::new(error))
    }
}
