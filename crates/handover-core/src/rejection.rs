//! Why a command was refused. Every variant says, in words a person understands, what was
//! wrong and, where there is one, what to do instead. A rejected command records nothing.

use crate::event::EscalationCause;
use crate::ids::{AgentName, AiAgentId, CustomerId, Epoch};
use crate::policy::Concern;

/// A command refused by the rules. Nothing was recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The conversation does not exist yet.
    #[error("conversation has not been opened")]
    NotOpened,
    /// `Open` on a conversation that already exists.
    #[error("conversation is already open")]
    AlreadyOpened,
    /// Any command on a closed conversation.
    #[error("conversation is closed; no further changes are accepted")]
    Closed,
    /// A customer message from someone other than the conversation's customer.
    #[error("only the conversation's customer ({customer}) can post as the customer")]
    NotTheCustomer {
        /// The conversation's customer.
        customer: CustomerId,
    },
    /// A human tried to post (or hand off to the same agent) while an AI agent is active.
    #[error(
        "conversation is AI-active (agent {agent_name}, id {agent_id}); reclaim it before posting"
    )]
    AiActive {
        /// The active AI agent.
        agent_id: AiAgentId,
        /// Its display name.
        agent_name: AgentName,
    },
    /// A reclaim (or AI command) on a conversation no AI agent is handling.
    #[error("conversation is not AI-active; there is nothing to reclaim")]
    NotAiActive,
    /// Handoff to an AI agent that was never registered.
    #[error("AI agent {agent_id} is not registered")]
    UnknownAiAgent {
        /// The id given.
        agent_id: AiAgentId,
    },
    /// Handoff to an AI agent that is registered but not active.
    #[error("AI agent {agent_id} is not active; only active AI agents can take a conversation")]
    AiAgentInactive {
        /// The id given.
        agent_id: AiAgentId,
    },
    /// Handoff to the AI agent that already handles the conversation.
    #[error("conversation is already handled by AI agent {agent_id}")]
    AlreadyHandledBy {
        /// The active AI agent.
        agent_id: AiAgentId,
    },
    /// An AI agent acting on a conversation it was never assigned (or one handed to another).
    #[error("AI agent {agent_id} is not assigned to this conversation")]
    NotAssigned {
        /// The AI agent that tried.
        agent_id: AiAgentId,
    },
    /// An AI agent acting under an assignment that has ended: the conversation was reclaimed,
    /// escalated, closed, or handed to it again since. Its reply is not recorded.
    #[error("AI agent {agent_id}'s assignment ({epoch:?}) has ended; the conversation is no longer its to answer")]
    AssignmentEnded {
        /// The AI agent that tried.
        agent_id: AiAgentId,
        /// The epoch it acted under.
        epoch: Epoch,
    },
    /// The handoff guidance says to keep this conversation with a human.
    #[error("not handed off: {}; keep this conversation with a human", .concern.describe())]
    HandoffAgainstPolicy {
        /// The concern the customer raised.
        concern: Concern,
    },
    /// A human's or an AI agent's message recorded with policy concerns (only a damaged or
    /// forged log holds one: the policy assesses customers' messages only).
    #[error("message carries concerns, but only customers' messages are assessed by the policy")]
    ConcernsNotFromCustomer,
    /// Escalation with a cause the caller may not claim (only the runtime deactivates agents).
    #[error("escalation cause {} cannot be requested by an AI agent", .cause.as_str())]
    EscalationCauseNotAllowed {
        /// The cause given.
        cause: EscalationCause,
    },
    /// Registering an AI agent id that is already registered.
    #[error("AI agent {agent_id} is already registered")]
    AiAgentAlreadyRegistered {
        /// The id given.
        agent_id: AiAgentId,
    },
    /// Activating or deactivating an AI agent that was never registered.
    #[error("AI agent {agent_id} is not registered")]
    AiAgentNotRegistered {
        /// The id given.
        agent_id: AiAgentId,
    },
    /// Activating an AI agent that is active.
    #[error("AI agent {agent_id} is already active")]
    AiAgentAlreadyActive {
        /// The id given.
        agent_id: AiAgentId,
    },
    /// Deactivating an AI agent that is inactive.
    #[error("AI agent {agent_id} is already inactive")]
    AiAgentAlreadyInactive {
        /// The id given.
        agent_id: AiAgentId,
    },
    /// Registering an AI agent with too many specialties.
    #[error("an AI agent may declare at most {max} specialties; {len} were given")]
    TooManySpecialties {
        /// How many were given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An event of one kind of stream applied to the other (only a damaged log can do this).
    #[error("event {event_type} does not belong in this stream")]
    ForeignEvent {
        /// The event's type name.
        event_type: &'static str,
    },
}
