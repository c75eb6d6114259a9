//! Events: what happened, in the past tense. They are the only thing stored; every state is
//! their fold. Stored types stay plain (externally tagged enums, no flattening) so bincode can
//! decode them, and new variants are only ever added at the end of an enum.

use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::human::{Presence, Role};
use crate::ids::{
    AgentName, AiAgentId, Channel, CustomerId, HumanId, InvalidInput, Language, SkillName,
    Specialty, TeamId, TenantId,
};
use crate::policy::Concern;
use crate::rules::{PolicyVersion, RuleName};
use crate::text::{MessageText, Reason, SkillData};
use crate::time::Timestamp;

/// Any event of the log: it belongs either to an AI agent's stream or to a conversation's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Event {
    /// An event of an AI agent's registration stream.
    AiAgent(AiAgentEvent),
    /// An event of a conversation's stream.
    Conversation(ConversationEvent),
    /// An event of a human's registration stream.
    Human(HumanEvent),
}

impl Event {
    /// The snake_case name the audit export gives this event (`handed_off_to_ai`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::AiAgent(e) => e.type_name(),
            Event::Conversation(e) => e.type_name(),
            Event::Human(e) => e.type_name(),
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
    /// The agent was registered in a tenant (inactive until activated). [`Registered`]
    /// (written before tenants) reads as a registration in [`TenantId::default_tenant`].
    ///
    /// [`Registered`]: AiAgentEvent::Registered
    RegisteredIn {
        /// Its id.
        agent_id: AiAgentId,
        /// The tenant whose conversations it may take.
        tenant: TenantId,
        /// Its display name.
        name: AgentName,
        /// What it specialises in.
        specialties: Vec<Specialty>,
    },
}

impl AiAgentEvent {
    /// The snake_case name the audit export gives this event.
    pub fn type_name(&self) -> &'static str {
        match self {
            AiAgentEvent::Registered { .. } => "ai_agent_registered",
            AiAgentEvent::Activated { .. } => "ai_agent_activated",
            AiAgentEvent::Deactivated { .. } => "ai_agent_deactivated",
            AiAgentEvent::RegisteredIn { .. } => "ai_agent_registered",
        }
    }

    /// The agent the event is about.
    pub fn agent_id(&self) -> &AiAgentId {
        match self {
            AiAgentEvent::Registered { agent_id, .. }
            | AiAgentEvent::RegisteredIn { agent_id, .. }
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
    /// The runtime itself: the router, a timer, or the backend opening a conversation.
    System(SystemActor),
}

/// The parts of the runtime that act on their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SystemActor {
    /// The router, assigning a waiting conversation to a human.
    Router,
    /// The clock: SLA thresholds, the AI reply deadline, idle closing.
    Clock,
    /// The backend, naming a human when it opens a conversation, or requeueing the
    /// conversations of a human who went offline or was removed.
    Backend,
}

impl SystemActor {
    /// `router`, `clock` or `backend`: the id the audit export gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            SystemActor::Router => "router",
            SystemActor::Clock => "clock",
            SystemActor::Backend => "backend",
        }
    }
}

impl Author {
    /// `customer`, `human` or `ai`: the kind the audit export names.
    pub fn kind(&self) -> &'static str {
        match self {
            Author::Customer(_) => "customer",
            Author::Human(_) => "human",
            Author::Ai(_) => "ai",
            Author::System(_) => "system",
        }
    }

    /// The customer's, human's or AI agent's id.
    pub fn id(&self) -> &str {
        match self {
            Author::Customer(id) => id.as_str(),
            Author::Human(id) => id.as_str(),
            Author::Ai(id) => id.as_str(),
            Author::System(actor) => actor.as_str(),
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
    /// The AI agent did not answer a customer's message within its reply deadline.
    AiTimeout,
    /// A rule heard frustration in the customer's last messages.
    Frustration,
    /// A rule saw the customer ask the same question again and again.
    GoingInCircles,
    /// A rule counted the AI's "could not answer" reports in a row.
    AiCouldNotAnswer,
    /// A rule heard a complaint while the AI was active.
    Complaint,
}

impl EscalationCause {
    /// The snake_case name used in exports.
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationCause::AgentRequested => "agent_requested",
            EscalationCause::CustomerAskedForHuman => "customer_asked_for_human",
            EscalationCause::AgentDeactivated => "agent_deactivated",
            EscalationCause::AiTimeout => "ai_timeout",
            EscalationCause::Frustration => "frustration",
            EscalationCause::GoingInCircles => "going_in_circles",
            EscalationCause::AiCouldNotAnswer => "ai_could_not_answer",
            EscalationCause::Complaint => "complaint",
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
    /// The conversation was opened in a tenant. Always followed, in the same append, by who
    /// controls it: [`HumanAssigned`](ConversationEvent::HumanAssigned) or
    /// [`AwaitingHuman`](ConversationEvent::AwaitingHuman). [`Opened`](ConversationEvent::Opened)
    /// (written before tenants) reads as one in [`TenantId::default_tenant`].
    Started {
        /// The tenant.
        tenant: TenantId,
        /// The customer.
        customer: CustomerId,
        /// The channel.
        channel: Channel,
        /// The team whose queue it waits in when it needs a human (`None`: the tenant's
        /// general queue, which every agent of the tenant may accept from).
        team: Option<TeamId>,
        /// The customer's language, if known: notices are written in it.
        language: Option<Language>,
        /// When, by the runtime's clock.
        at: Timestamp,
    },
    /// The conversation needs a human and waits in its team's queue.
    AwaitingHuman {
        /// The queue: the team (`None`: the tenant's general queue).
        team: Option<TeamId>,
        /// Why it needs a human.
        cause: WaitCause,
        /// Since when, by the runtime's clock.
        since: Timestamp,
    },
    /// A human now handles the conversation.
    HumanAssigned {
        /// The human.
        human_id: HumanId,
        /// Their display name at the time.
        name: AgentName,
        /// The queue it was taken from, if it waited.
        team: Option<TeamId>,
        /// Who gave it: the router, a supervisor, the human accepting it, the backend at open.
        by: Author,
        /// When, by the runtime's clock.
        at: Timestamp,
    },
    /// A human passed the conversation to another human or to a team's queue. Followed, in the
    /// same append, by the [`HumanAssigned`](ConversationEvent::HumanAssigned) or the
    /// [`AwaitingHuman`](ConversationEvent::AwaitingHuman) it leads to.
    Transferred {
        /// Where to.
        to: TransferTarget,
        /// Why.
        reason: Reason,
        /// Who transferred it.
        by: Author,
        /// When, by the runtime's clock.
        at: Timestamp,
    },
    /// The conversation has waited past its queue's warning threshold.
    SlaWarning {
        /// The queue.
        team: Option<TeamId>,
        /// How long it had waited.
        waited_ms: u64,
        /// The threshold passed.
        threshold_ms: u64,
        /// When, by the runtime's clock.
        at: Timestamp,
    },
    /// The conversation has waited past its queue's breach threshold.
    SlaBreached {
        /// The queue.
        team: Option<TeamId>,
        /// How long it had waited.
        waited_ms: u64,
        /// The threshold passed.
        threshold_ms: u64,
        /// When, by the runtime's clock.
        at: Timestamp,
    },
    /// The AI agent did not answer the customer within its deadline. Followed, in the same
    /// append, by the escalation with cause `ai_timeout`.
    AiReplyOverdue {
        /// The AI agent.
        agent_id: AiAgentId,
        /// How long the customer had waited.
        waited_ms: u64,
        /// The deadline passed.
        deadline_ms: u64,
        /// When, by the runtime's clock.
        at: Timestamp,
    },
    /// A notice shown to the customer (an AI agent joined or left, they wait for a person, a
    /// person joined). A backend delivers it like a message.
    CustomerNotice {
        /// What it announces.
        kind: NoticeKind,
        /// Its text.
        text: MessageText,
        /// The language of the text.
        language: Language,
    },
    /// A note for staff or guidance for the AI agent. Never shown to the customer.
    InternalNote {
        /// Who may read it.
        to: NoteAudience,
        /// Its text.
        text: MessageText,
        /// Who wrote it.
        by: Author,
        /// When, by the runtime's clock.
        at: Timestamp,
    },
    /// Someone raised "needs help" on the conversation.
    FlagRaised {
        /// Who raised it: the assigned human, a supervisor or the AI agent.
        by: Author,
        /// When, by the runtime's clock.
        at: Timestamp,
    },
    /// A supervisor lowered the flag.
    FlagLowered {
        /// The supervisor.
        by: Author,
        /// When, by the runtime's clock.
        at: Timestamp,
    },
    /// The AI agent is about to run a skill with side effects: recorded, under the fence,
    /// before it runs, so the log shows every action that ran. Its outcome follows as an
    /// [`AiActionRecorded`](ConversationEvent::AiActionRecorded), accepted even if the
    /// assignment ended meanwhile.
    AiSkillStarted {
        /// The AI agent.
        agent_id: AiAgentId,
        /// The skill.
        name: SkillName,
        /// What it is given.
        input: SkillData,
    },
    /// A rule of the policy gave the conversation back to humans (exported as
    /// `escalated_to_human`, with `data.rule` and `data.policy_version`).
    EscalatedByRule {
        /// The AI agent that held it.
        agent_id: AiAgentId,
        /// In words.
        reason: Reason,
        /// Why, by kind.
        cause: EscalationCause,
        /// The rule that decided.
        rule: RuleName,
        /// The version of the policy the rule belongs to.
        policy_version: PolicyVersion,
        /// When.
        at: Timestamp,
    },
    /// The AI agent reported that it could not answer the customer's question.
    AiCouldNotAnswer {
        /// The AI agent.
        agent_id: AiAgentId,
        /// What it could not answer, or why, when it says.
        reason: Option<Reason>,
        /// When.
        at: Timestamp,
    },
    /// A supervisor handed the conversation to AI although a rule refused it.
    PolicyOverridden {
        /// The supervisor.
        by: HumanId,
        /// The rule that refused.
        rule: RuleName,
        /// The version of the policy the rule belongs to.
        policy_version: PolicyVersion,
        /// The refusal, in words.
        refusal: Reason,
        /// When.
        at: Timestamp,
    },
    /// A skill the AI agent asked to run waits for a person's approval.
    SkillApprovalRequested {
        /// The AI agent.
        agent_id: AiAgentId,
        /// The skill.
        name: SkillName,
        /// Its input.
        input: SkillData,
        /// The rule that asks for approval.
        rule: RuleName,
        /// The version of the policy the rule belongs to.
        policy_version: PolicyVersion,
        /// How long the AI waits for a decision; then the clock denies the request.
        deadline_ms: u64,
        /// When.
        at: Timestamp,
    },
    /// A person approved a skill that waited: the AI agent may run it.
    SkillApproved {
        /// The AI agent.
        agent_id: AiAgentId,
        /// The skill.
        name: SkillName,
        /// Who approved it.
        by: Author,
        /// The rule that asked for approval.
        rule: RuleName,
        /// The version of the policy the rule belongs to.
        policy_version: PolicyVersion,
        /// When.
        at: Timestamp,
    },
    /// A person (or the clock, when nobody decided in time) denied a skill that waited.
    SkillDenied {
        /// The AI agent.
        agent_id: AiAgentId,
        /// The skill.
        name: SkillName,
        /// Who denied it.
        by: Author,
        /// Why.
        reason: Reason,
        /// The rule that asked for approval.
        rule: RuleName,
        /// The version of the policy the rule belongs to.
        policy_version: PolicyVersion,
        /// When.
        at: Timestamp,
    },
    /// Context given with a handoff (by the human) or an escalation (by the AI agent).
    ContextShared {
        /// Who gave it.
        by: Author,
        /// The context.
        context: Context,
        /// When.
        at: Timestamp,
    },
}

/// Why a conversation waits for a human.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum WaitCause {
    /// It was opened without a human.
    Opened,
    /// The AI agent gave it back, for this cause.
    Escalated(EscalationCause),
    /// The human who handled it went offline.
    HumanOffline,
    /// The human who handled it was removed from the directory.
    HumanRemoved,
    /// A human transferred it to this queue.
    Transferred,
}

impl WaitCause {
    /// The snake_case name used in exports: `opened`, the escalation's cause
    /// (`customer_asked_for_human`, `ai_timeout`, ...), `human_offline`, `human_removed` or
    /// `transferred`.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitCause::Opened => "opened",
            WaitCause::Escalated(cause) => cause.as_str(),
            WaitCause::HumanOffline => "human_offline",
            WaitCause::HumanRemoved => "human_removed",
            WaitCause::Transferred => "transferred",
        }
    }
}

/// Where a transfer sends a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TransferTarget {
    /// To this human.
    Human(HumanId),
    /// To this team's queue.
    Team(TeamId),
}

/// What a customer notice announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum NoticeKind {
    /// An AI agent took the conversation.
    AiJoined,
    /// The AI agent let go of it.
    AiLeft,
    /// The customer waits for a person.
    WaitingForPerson,
    /// A person took the conversation.
    PersonJoined,
}

impl NoticeKind {
    /// `ai_joined`, `ai_left`, `waiting_for_person` or `person_joined`, as exported.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::AiJoined => "ai_joined",
            NoticeKind::AiLeft => "ai_left",
            NoticeKind::WaitingForPerson => "waiting_for_person",
            NoticeKind::PersonJoined => "person_joined",
        }
    }
}

/// Who may read an internal note. Neither is the customer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum NoteAudience {
    /// Humans of the tenant.
    Staff,
    /// The AI agent handling the conversation (and staff).
    Ai,
}

impl NoteAudience {
    /// `staff` or `ai`, as exported.
    pub fn as_str(self) -> &'static str {
        match self {
            NoteAudience::Staff => "staff",
            NoteAudience::Ai => "ai",
        }
    }
}

/// What happened to a human's registration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum HumanEvent {
    /// The human was registered (offline until their presence changes).
    Registered {
        /// Their id.
        human_id: HumanId,
        /// Their tenant.
        tenant: TenantId,
        /// Their display name.
        name: AgentName,
        /// Agent or supervisor.
        role: Role,
        /// Their teams, sorted, without duplicates.
        teams: Vec<TeamId>,
        /// The most conversations they handle at once.
        capacity: u32,
    },
    /// Their presence changed.
    PresenceChanged {
        /// Their id.
        human_id: HumanId,
        /// The new presence.
        presence: Presence,
    },
    /// They were removed from the directory; the conversations they handled are requeued.
    Removed {
        /// Their id.
        human_id: HumanId,
    },
}

impl HumanEvent {
    /// The snake_case name the audit export gives this event.
    pub fn type_name(&self) -> &'static str {
        match self {
            HumanEvent::Registered { .. } => "human_registered",
            HumanEvent::PresenceChanged { .. } => "human_presence_changed",
            HumanEvent::Removed { .. } => "human_removed",
        }
    }

    /// The human the event is about.
    pub fn human_id(&self) -> &HumanId {
        match self {
            HumanEvent::Registered { human_id, .. }
            | HumanEvent::PresenceChanged { human_id, .. }
            | HumanEvent::Removed { human_id } => human_id,
        }
    }
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
            ConversationEvent::Started { .. } => "conversation_opened",
            ConversationEvent::AwaitingHuman { .. } => "awaiting_human",
            ConversationEvent::HumanAssigned { .. } => "human_assigned",
            ConversationEvent::Transferred { .. } => "transferred",
            ConversationEvent::SlaWarning { .. } => "sla_warning",
            ConversationEvent::SlaBreached { .. } => "sla_breached",
            ConversationEvent::AiReplyOverdue { .. } => "ai_reply_overdue",
            ConversationEvent::CustomerNotice { .. } => "customer_notice",
            ConversationEvent::EscalatedByRule { .. } => "escalated_to_human",
            ConversationEvent::AiCouldNotAnswer { .. } => "ai_could_not_answer",
            ConversationEvent::PolicyOverridden { .. } => "policy_overridden",
            ConversationEvent::SkillApprovalRequested { .. } => "skill_approval_requested",
            ConversationEvent::SkillApproved { .. } => "skill_approved",
            ConversationEvent::SkillDenied { .. } => "skill_denied",
            ConversationEvent::ContextShared { .. } => "context_shared",
            ConversationEvent::InternalNote { .. } => "internal_note",
            ConversationEvent::FlagRaised { .. } => "flag_raised",
            ConversationEvent::FlagLowered { .. } => "flag_lowered",
            ConversationEvent::AiSkillStarted { .. } => "ai_skill_started",
        }
    }
}
