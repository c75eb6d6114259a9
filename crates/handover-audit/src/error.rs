//! The audit's errors: what kept it from reading or writing, as opposed to what it found wrong
//! in a log (a [`Fault`]).

use std::path::PathBuf;

use handover_core::ConversationId;
use handover_store::StoreError;

use crate::fault::Fault;

/// Why an audit operation could not complete.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The data directory does not exist (the audit never creates one).
    #[error("data directory {} does not exist", .path.display())]
    DataDirMissing {
        /// The path given.
        path: PathBuf,
    },
    /// The path names a file (or anything else that is not a directory).
    #[error("{} is a file, not a directory: --data names a Handover data directory", .path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The directory exists but holds no event log.
    #[error("{} is not a Handover data directory: it holds no sled database (no `db` file)", .path.display())]
    NotADataDir {
        /// The path given.
        path: PathBuf,
    },
    /// The store failed: the directory is in use, I/O failed, or a record is damaged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The log does not fold: an event breaks the order or the rules. Replays stop there;
    /// `verify` reports the same fault.
    #[error("the log cannot be replayed: {0}; run `handover audit verify` for details")]
    Unsound(Fault),
    /// No conversation with this id is in the log.
    #[error("conversation {0} is not in the log")]
    UnknownConversation(ConversationId),
    /// Writing the output failed (a closed pipe shows up here as `BrokenPipe`).
    #[error("cannot write the output: {0}")]
    Write(#[from] std::io::Error),
    /// An export line could not be serialised.
    #[error("cannot serialise an export line: {0}")]
    Json(#[from] serde_json::Error),
}

impl From<Fault> for AuditError {
    fn from(fault: Fault) -> Self {
        AuditError::Unsound(fault)
    }
}
