//! Events: what happened, in the past tense. They are the only thing stored; every state is
//! their fold. Stored types stay plain (externally tagged enums, no flattening) so bincode can
//! decode them, and new variants are only ever added at the end of an enum.

use serde::{Deserialize, Serialize};

use crate::ids::{
    AgentName, AiAgentId, Channel, CustomerId, HumanId, InvalidInput, SkillName, Specialty,
};
use crate::policy::Concern;
use crate::text::{MessageText, Reason, SkillData};

/// Any event of the log: it belongs either to an AI agent's stream or to a conversation's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Event {
    /// An event of an AI agent's registration stream.
    AiAgent(AiAgentEvent),
    /// An event of a conversation's stream.
    Conversation(ConversationEvent),
}

impl Event {
    /// The snake_case name the audit export gives this event (`handed_off_to_ai`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::AiAgent(e) => e.type_name(),
            Event::Conversation(e) => e.type_name(),
        }
    }
}

/// What happened to an AI agent's registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AiAgentEvent {
    /// The agent was registered (inactive until activated).
    Registered {
        /// Its id.
        agent_id: AiAgentId,
        /// Its display name.
        name: AgentName,
        /// What it specialises in.
        specialties: Vec<Specialty>,
    },
    /// The agent became selectable for handoffs.
    Activated {
        /// Its id.
        agent_id: AiAgentId,
    },
    /// The agent stopped being selectable; conversations it held are escalated to humans.
    Deactivated {
        /// Its id.
        agent_id: AiAgentId,
    },
}

impl AiAgentEvent {
    /// The snake_case name the audit export gives this event.
    pub fn type_name(&self) -> &'static str {
        match self {
            AiAgentEvent::Registered { .. } => "ai_agent_registered",
            AiAgentEvent::Activated { .. } => "ai_agent_activated",
            AiAgentEvent::Deactivated { .. } => "ai_agent_deactivated",
        }
    }

    /// The agent the event is about.
    pub fn agent_id(&self) -> &AiAgentId {
        match self {
            AiAgentEvent::Registered { agent_id, .. }
            | AiAgentEvent::Activated { agent_id }
            | AiAgentEvent::Deactivated { agent_id } => agent_id,
        }
    }
}

/// Who wrote a message.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Author {
    /// The conversation's customer.
    Customer(CustomerId),
    /// A human agent.
    Human(HumanId),
    /// The AI agent handling the conversation.
    Ai(AiAgentId),
}

impl Author {
    /// `customer`, `human` or `ai`: the kind the audit export names.
    pub fn kind(&self) -> &'static str {
        match self {
            Author::Customer(_) => "customer",
            Author::Human(_) => "human",
            Author::Ai(_) => "ai",
        }
    }

    /// The customer's, human's or AI agent's id.
    pub fn id(&self) -> &str {
        match self {
            Author::Customer(id) => id.as_str(),
            Author::Human(id) => id.as_str(),
            Author::Ai(id) => id.as_str(),
        }
    }
}

/// How a skill run ended: closed by nature, a skill run either succeeded or failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SkillOutcome {
    /// The skill succeeded with this result.
    Succeeded(SkillData),
    /// The skill failed with this error.
    Failed(SkillData),
}

/// A skill an AI agent executed: its name, its input and its outcome.
///
/// ```
/// use handover_core::{Skill, SkillOutcome};
///
/// let skill = Skill::new("lookup_price", r#"{"plan":"pro"}"#, Ok("49 USD/month".into())).unwrap();
/// assert!(matches!(skill.outcome, SkillOutcome::Succeeded(_)));
/// assert!(Skill::new("", "", Ok(String::new())).is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skill {
    /// The skill's name, e.g. `lookup_price`.
    pub name: SkillName,
    /// What it was given, e.g. `{"plan":"pro"}`.
    pub input: SkillData,
    /// What came of it.
    pub outcome: SkillOutcome,
}

impl Skill {
    /// Validates and builds a skill run: `outcome` is `Ok` with the result or `Err` with the
    /// error.
    pub fn new(
        name: impl Into<String>,
        input: impl Into<String>,
        outcome: Result<String, String>,
    ) -> Result<Skill, InvalidInput> {
        Ok(Skill {
            name: SkillName::new(name)?,
            input: SkillData::new(input)?,
            outcome: match outcome {
                Ok(result) => SkillOutcome::Succeeded(SkillData::new(result)?),
                Err(error) => SkillOutcome::Failed(SkillData::new(error)?),
            },
        })
    }
}

/// Why a conversation went back from an AI agent to humans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EscalationCause {
    /// The AI agent itself asked for a human (it could not help, the customer was upset, ...).
    AgentRequested,
    /// The customer asked for a human and the policy recognised it.
    CustomerAskedForHuman,
    /// The AI agent was deactivated while it held the conversation.
    AgentDeactivated,
}

impl EscalationCause {
    /// The snake_case name used in exports.
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationCause::AgentRequested => "agent_requested",
            EscalationCause::CustomerAskedForHuman => "customer_asked_for_human",
            EscalationCause::AgentDeactivated => "agent_deactivated",
        }
    }
}

/// What happened in a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ConversationEvent {
    /// The conversation was opened for a customer on a channel: state human-handled.
    Opened {
        /// The customer.
        customer: CustomerId,
        /// The channel.
        channel: Channel,
        /// The human agent it was assigned to, if any.
        human: Option<HumanId>,
    },
    /// Someone wrote a message.
    MessagePosted {
        /// Who wrote it.
        author: Author,
        /// What they wrote.
        text: MessageText,
        /// What the handoff policy recognised in a customer's message (empty otherwise).
        concerns: Vec<Concern>,
    },
    /// A human handed the conversation to an AI agent: state AI-active.
    HandedOffToAi {
        /// The AI agent now handling it.
        agent_id: AiAgentId,
        /// Its display name at the time of the handoff.
        agent_name: AgentName,
        /// The human who handed it off.
        by_human: HumanId,
        /// Why, if they said.
        reason: Option<Reason>,
    },
    /// The AI agent executed a skill.
    AiActionRecorded {
        /// The AI agent.
        agent_id: AiAgentId,
        /// The skill, its input and its outcome.
        skill: Skill,
    },
    /// A human took the conversation back from the AI agent ("assume conversation").
    Reclaimed {
        /// The AI agent it was taken from.
        agent_id: AiAgentId,
        /// The human who took it.
        by_human: HumanId,
        /// Why, if they said.
        reason: Option<Reason>,
    },
    /// The conversation went back from the AI agent to humans: state human-handled.
    EscalatedToHuman {
        /// The AI agent that held it.
        agent_id: AiAgentId,
        /// Why.
        reason: Reason,
        /// What set it off.
        cause: EscalationCause,
    },
    /// The conversation was closed; no further command is accepted.
    Closed {
        /// Who closed it.
        by: Author,
        /// Why, if they said.
        reason: Option<Reason>,
    },
}

impl ConversationEvent {
    /// The snake_case name the audit export gives this event.
    pub fn type_name(&self) -> &'static str {
        match self {
            ConversationEvent::Opened { .. } => "conversation_opened",
            ConversationEvent::MessagePosted { .. } => "message_posted",
            ConversationEvent::HandedOffToAi { .. } => "handed_off_to_ai",
            ConversationEvent::AiActionRecorded { .. } => "ai_action_recorded",
            ConversationEvent::Reclaimed { .. } => "reclaimed",
            ConversationEvent::EscalatedToHuman { .. } => "escalated_to_human",
            ConversationEvent::Closed { .. } => "conversation_closed",
        }
    }
}
