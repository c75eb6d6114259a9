//! Commands: what someone asks for, in the imperative. `decide` turns each into events or a
//! rejection.

use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::event::{EscalationCause, NoteAudience, Skill, SystemActor, TransferTarget};
use crate::human::{Presence, Role};
use crate::ids::SkillName;
use crate::ids::{
    AgentName, AiAgentId, Channel, CustomerId, Epoch, HumanId, Language, Specialty, TeamId,
    TenantId,
};
use crate::rules::RuleVerdict;
use crate::text::{MessageText, Reason, SkillData};

/// An AI agent's credentials for one conversation: which agent, and which handoff (epoch) it
/// is acting under. Commands from an ended assignment are rejected, never recorded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Assignment {
    /// The AI agent.
    pub agent_id: AiAgentId,
    /// The epoch of the handoff that assigned it.
    pub epoch: Epoch,
}

/// Who is acting on a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Participant {
    /// The conversation's customer.
    Customer(CustomerId),
    /// A human agent (or supervisor).
    Human(HumanId),
    /// An AI agent, under one assignment.
    Ai(Assignment),
    /// The runtime itself (the router, a timer, the backend).
    System(SystemActor),
}

/// What can be asked of a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Open the conversation in a tenant: given to `human` if named (registered in the tenant,
    /// not offline), otherwise waiting in `team`'s queue.
    Start {
        /// The tenant.
        tenant: TenantId,
        /// The customer.
        customer: CustomerId,
        /// The channel.
        channel: Channel,
        /// The team whose queue it waits in (`None`: the tenant's general queue).
        team: Option<TeamId>,
        /// The customer's language, if known.
        language: Option<Language>,
        /// The human to give it to, if any.
        human: Option<HumanId>,
    },
    /// Give the conversation to a named human: a supervisor's decision, or the router's
    /// (which may only pick someone available and below capacity).
    Assign {
        /// A supervisor (`Participant::Human`) or the router (`Participant::System`).
        by: Participant,
        /// The human to give it to.
        to: HumanId,
    },
    /// A human takes a conversation waiting in one of their teams' queues.
    Accept {
        /// The human.
        by: HumanId,
    },
    /// The assigned human or a supervisor passes the conversation to another human or to a
    /// team's queue.
    Transfer {
        /// Who transfers it.
        by: HumanId,
        /// Where to.
        to: TransferTarget,
        /// Why.
        reason: Reason,
    },
    /// Put the conversation back in its queue because `human`, who handles it, went offline or
    /// was removed. Refused while `human` is still signed in.
    Requeue {
        /// The human who handled it.
        human: HumanId,
    },
    /// Write an internal note for staff, or guidance for the AI agent handling it.
    Whisper {
        /// The assigned human or a supervisor.
        by: HumanId,
        /// Staff, or the AI agent.
        to: NoteAudience,
        /// The note.
        text: MessageText,
    },
    /// Raise "needs help": the assigned human, a supervisor or the AI agent.
    RaiseFlag {
        /// Who raises it.
        by: Participant,
    },
    /// Lower the flag: a supervisor.
    LowerFlag {
        /// The supervisor.
        by: HumanId,
    },
    /// The clock's command: record every deadline that has passed by the context's `now`
    /// (SLA warning and breach, AI reply deadline, idle closing) and not been recorded yet.
    /// Accepted with no events when nothing is due, so ticking twice records once.
    Tick,
    /// Record that the assigned AI agent is about to run a skill (fenced like a reply). Its
    /// outcome, sent afterwards with [`RecordAiAction`](ConversationCommand::RecordAiAction)
    /// under the same assignment, is recorded even if a human took over meanwhile.
    StartSkill {
        /// The AI agent and its assignment.
        by: Assignment,
        /// The skill.
        name: SkillName,
        /// What it is given.
        input: SkillData,
    },
    /// A human hands the conversation to an AI agent with a context, and a supervisor may
    /// override a rule's refusal (recorded as `policy_overridden`). `refused_by` carries a
    /// refusal of the embedder's own rules, which the runtime evaluated before.
    HandOffToAiWith {
        /// The human handing it off.
        by: HumanId,
        /// The AI agent.
        agent_id: AiAgentId,
        /// Why, if they say.
        reason: Option<Reason>,
        /// What the AI agent should know: a summary, the topic, variables.
        context: Option<Context>,
        /// Hand it off even if a rule refuses (supervisors only).
        override_policy: bool,
        /// A refusal by one of the embedder's rules.
        refused_by: Option<RuleVerdict>,
    },
    /// The AI agent reports that it could not answer the customer's question; the policy's
    /// `ai_could_not_answer` rule escalates after enough of them in a row.
    ReportCouldNotAnswer {
        /// The AI agent's assignment.
        by: Assignment,
        /// What it could not answer, or why.
        reason: Option<Reason>,
    },
    /// A human approves a skill that waits for approval (the oldest waiting one of that name).
    ApproveSkill {
        /// The human (the one answerable for the conversation, or a supervisor).
        by: HumanId,
        /// The skill.
        skill: SkillName,
    },
    /// A human denies a skill that waits for approval (the oldest waiting one of that name).
    DenySkill {
        /// The human (the one answerable for the conversation, or a supervisor).
        by: HumanId,
        /// The skill.
        skill: SkillName,
        /// Why.
        reason: Reason,
    },
    /// The AI agent hands the conversation back to humans with its context: what it tried,
    /// what it found (the summary and variables) and why it let go (the reason).
    EscalateWith {
        /// The AI agent's assignment.
        by: Assignment,
        /// Why it lets go.
        reason: Reason,
        /// What it tried and found.
        context: Context,
    },
    /// A customer's message that one of the embedder's rules, evaluated by the runtime, wants
    /// escalated: if the AI is active and no built-in rule escalates first, the verdict is
    /// recorded like a built-in rule's.
    PostMessageJudged {
        /// The customer.
        by: Participant,
        /// The message.
        text: MessageText,
        /// The cause to record.
        cause: EscalationCause,
        /// The embedder's rule and its reason.
        verdict: RuleVerdict,
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
            ConversationCommand::Start { .. } => "start",
            ConversationCommand::Assign { .. } => "assign",
            ConversationCommand::Accept { .. } => "accept",
            ConversationCommand::Transfer { .. } => "transfer",
            ConversationCommand::Requeue { .. } => "requeue",
            ConversationCommand::Whisper { .. } => "whisper",
            ConversationCommand::RaiseFlag { .. } => "raise_flag",
            ConversationCommand::LowerFlag { .. } => "lower_flag",
            ConversationCommand::Tick => "tick",
            ConversationCommand::StartSkill { .. } => "start_skill",
            ConversationCommand::HandOffToAiWith { .. } => "hand_off_to_ai_with",
            ConversationCommand::ReportCouldNotAnswer { .. } => "report_could_not_answer",
            ConversationCommand::ApproveSkill { .. } => "approve_skill",
            ConversationCommand::DenySkill { .. } => "deny_skill",
            ConversationCommand::EscalateWith { .. } => "escalate_with",
            ConversationCommand::PostMessageJudged { .. } => "post_message_judged",
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
    /// Register a new AI agent in a tenant; it starts inactive. [`Register`] registers it in
    /// [`TenantId::default_tenant`].
    ///
    /// [`Register`]: AiAgentCommand::Register
    RegisterIn {
        /// The tenant whose conversations it may take.
        tenant: TenantId,
        /// Its display name.
        name: AgentName,
        /// What it specialises in.
        specialties: Vec<Specialty>,
    },
}

/// What can be asked of a human's registration.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HumanCommand {
    /// Register a new human under the id of the stream it is sent to; they start offline.
    Register {
        /// Their tenant.
        tenant: TenantId,
        /// Their display name.
        name: AgentName,
        /// Agent or supervisor.
        role: Role,
        /// The teams whose queues they take from.
        teams: Vec<TeamId>,
        /// The most conversations they handle at once (1 to [`crate::HUMAN_CAPACITY_MAX`]).
        capacity: u32,
    },
    /// Change their presence.
    SetPresence {
        /// Available, away or offline.
        presence: Presence,
    },
    /// Remove them: they may no longer act; their conversations are requeued.
    Remove,
}
