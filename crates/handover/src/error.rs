//! The facade's one error type.

use handover_core::{AiAgentId, ConversationId, InvalidInput, Reason, Rejection, SkillName};
use handover_store::StoreError;

/// Why a call on [`crate::Handover`] failed.
///
/// The caller's fault (reject the request, show the message): [`Error::Rejected`],
/// [`Error::InvalidInput`], [`Error::UnknownConversation`], [`Error::AiAgentNotRunning`].
/// The system's (retry, or alert an operator): [`Error::Store`], [`Error::Concurrency`],
/// [`Error::Overloaded`], [`Error::Stopped`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The rules refused the command; nothing was recorded.
    #[error("{0}")]
    Rejected(#[from] Rejection),
    /// A value given was malformed (empty, too long, control characters); nothing was recorded.
    #[error("invalid input: {0}")]
    InvalidInput(#[from] InvalidInput),
    /// No conversation with this id was ever opened.
    #[error("conversation {0} does not exist")]
    UnknownConversation(ConversationId),
    /// The AI agent is registered and active, but no implementation of it runs in this
    /// process ([`crate::Handover::attach_ai_agent`]), so nobody would answer the customer.
    #[error("AI agent {0} is not running in this process; attach its implementation before handing conversations to it")]
    AiAgentNotRunning(AiAgentId),
    /// The event store failed. For a write, the outcome is unknown: the conversation is rebuilt
    /// from the log before its next command.
    #[error("event store: {0}")]
    Store(StoreError),
    /// Another writer appended to the same stream (another process on a copy of the log, or a
    /// bug); the state was reloaded and the command can be retried.
    #[error("conversation changed underneath this command; retry it")]
    Concurrency,
    /// More work is waiting than the runtime queues (commands in flight, the journal's queue,
    /// or the AI agent's backlog); nothing was recorded. Retry after a short pause.
    #[error("overloaded: too much work is waiting; nothing was recorded, retry shortly")]
    Overloaded,
    /// The runtime has shut down.
    #[error("the Handover runtime has stopped")]
    Stopped,
    /// A skill that waited for a person's approval under the escalation policy was denied (by
    /// a person, or by the clock when nobody decided in time); it did not run.
    #[error("skill {skill} was not approved: denied by {by}: {reason}")]
    SkillDenied {
        /// The skill.
        skill: SkillName,
        /// Who denied it (`human <id>` or `the clock`).
        by: String,
        /// Why.
        reason: Reason,
    },
}

impl Error {
    /// Whether the caller's input is at fault (as opposed to the system).
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            Error::Rejected(_)
                | Error::InvalidInput(_)
                | Error::UnknownConversation(_)
                | Error::AiAgentNotRunning(_)
        )
    }

    /// Whether the same call may succeed if retried later, unchanged: nothing was recorded.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Overloaded | Error::Concurrency)
    }

    /// The rules' rejection, if that is what this is.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Error::Rejected(rejection) => Some(rejection),
            _ => None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        match error {
            // Refused before anything was queued: a known outcome, not a store failure.
            StoreError::Overloaded => Error::Overloaded,
            error => Error::Store(error),
        }
    }
}
