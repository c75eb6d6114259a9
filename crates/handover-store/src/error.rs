//! Store errors, and the one expected outcome that is not an error: a version conflict.

use std::path::PathBuf;

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

/// A failure of the store itself: the caller's input was fine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another process (a running Handover, or an audit) holds the data directory.
    #[error("data directory {path} is in use by another process (a running Handover or an audit holds its lock); stop it or use a copy of the directory")]
    InUse {
        /// The data directory.
        path: PathBuf,
    },
    /// The operating system or sled failed; the outcome of a write in progress is unknown.
    #[error("storage I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// sled reported an error of its own.
    #[error("storage engine failed: {0}")]
    Engine(String),
    /// A record failed its checks: checksum, format version, decoding, or its place in the log.
    #[error("corrupted record at {location}: {detail}")]
    Corrupted {
        /// Where: `stream <name> seq <n>` or `position <n>`.
        location: String,
        /// What is wrong.
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
}

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        match error {
            sled::Error::Io(io) => StoreError::Io(io),
            sled::Error::Corruption { at, .. } => StoreError::Corrupted {
                location: format!("sled log offset {at:?}"),
                detail: "sled found a damaged page".to_owned(),
            },
            other => StoreError::Engine(other.to_string()),
        }
    }
}
