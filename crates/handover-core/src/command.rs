//! Commands: what someone asks for, in the imperative. `decide` turns each into events or a
//! rejection.

use crate::event::{EscalationCause, Skill};
use crate::ids::{AgentName, AiAgentId, Channel, CustomerId, Epoch, HumanId, Specialty};
use crate::text::{MessageText, Reason};

/// An AI agent's credentials for one conversation: which agent, and which handoff (epoch) it
/// is acting under. Commands from an ended assignment are rejected, never recorded.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Assignment {
    /// The AI agent.
    pub agent_id: AiAgentId,
    /// The epoch of the handoff that assigned it.
    pub epoch: Epoch,
}

/// Who is acting on a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Participant {
    /// The conversation's customer.
    Customer(CustomerId),
    /// A human agent (or supervisor).
    Human(HumanId),
    /// An AI agent, under one assignment.
    Ai(Assignment),
}

/// What can be asked of a conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConversationCommand {
    /// Open the conversation for a customer on a channel, optionally assigned to a human.
    Open {
        /// The customer.
        customer: CustomerId,
        /// The channel.
        channel: Channel,
        /// The human agent assigned, if any.
        human: Option<HumanId>,
    },
    /// Post a message as the customer, a human, or the assigned AI agent.
    PostMessage {
        /// Who posts.
        by: Participant,
        /// The text.
        text: MessageText,
    },
    /// Hand the conversation to an active AI agent.
    HandOffToAi {
        /// The human handing off.
        by: HumanId,
        /// The AI agent to take over.
        agent_id: AiAgentId,
        /// Why, optionally.
        reason: Option<Reason>,
    },
    /// Record a skill the assigned AI agent executed.
    RecordAiAction {
        /// The AI agent and its assignment.
        by: Assignment,
        /// The skill.
        skill: Skill,
    },
    /// Take the conversation back from its AI agent ("assume conversation").
    Reclaim {
        /// The human taking over.
        by: HumanId,
        /// Why, optionally.
        reason: Option<Reason>,
    },
    /// Hand the conversation from its AI agent back to humans.
    Escalate {
        /// The assignment being ended.
        by: Assignment,
        /// Why.
        reason: Reason,
        /// What set it off (the agent itself, or its deactivation).
        cause: EscalationCause,
    },
    /// Close the conversation. Every later command is rejected.
    Close {
        /// Who closes it.
        by: Participant,
        /// Why, optionally.
        reason: Option<Reason>,
    },
}

impl ConversationCommand {
    /// A short name for logs and traces.
    pub fn name(&self) -> &'static str {
        match self {
            ConversationCommand::Open { .. } => "open",
            ConversationCommand::PostMessage { .. } => "post_message",
            ConversationCommand::HandOffToAi { .. } => "hand_off_to_ai",
            ConversationCommand::RecordAiAction { .. } => "record_ai_action",
            ConversationCommand::Reclaim { .. } => "reclaim",
            ConversationCommand::Escalate { .. } => "escalate",
            ConversationCommand::Close { .. } => "close",
        }
    }
}

/// What can be asked of an AI agent's registration.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AiAgentCommand {
    /// Register a new AI agent under the id of the stream it is sent to; it starts inactive.
    Register {
        /// Its display name.
        name: AgentName,
        /// What it specialises in.
        specialties: Vec<Specialty>,
    },
    /// Make it selectable for handoffs.
    Activate,
    /// Make it unselectable; the runtime escalates the conversations it holds.
    Deactivate,
}
