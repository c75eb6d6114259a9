//! Why a command was refused. Every variant says, in words a person understands, what was
//! wrong and, where there is one, what to do instead. A rejected command records nothing.

use serde::{Deserialize, Serialize};

use crate::event::EscalationCause;
use crate::human::Presence;
use crate::ids::SkillName;
use crate::ids::{AgentName, AiAgentId, CustomerId, Epoch, HumanId, TeamId};
use crate::policy::Concern;
use crate::rules::{PolicyVersion, RuleName};

/// A command refused by the rules. Nothing was recorded.
///
/// Serializable, so that a command run by another process can answer with its rejection; a
/// name it carries (a participant, a command, an event type) that this version does not know
/// reads back as `"unknown"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
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
        #[serde(deserialize_with = "crate::names::deserialize")]
        event_type: crate::names::Name,
    },
    /// A human who is not registered (in any tenant) sent a command.
    #[error("human {human_id} is not registered; register them before they act")]
    UnknownHuman {
        /// The id given.
        human_id: HumanId,
    },
    /// Registering a human id that is already registered.
    #[error("human {human_id} is already registered")]
    HumanAlreadyRegistered {
        /// The id given.
        human_id: HumanId,
    },
    /// A removed human sent a command, or a command on a removed human's registration.
    #[error("human {human_id} was removed from the directory and may not act")]
    HumanRemoved {
        /// The id given.
        human_id: HumanId,
    },
    /// Registering a human in too many teams.
    #[error("a human may belong to at most {max} teams; {len} were given")]
    TooManyTeams {
        /// How many were given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Registering a human with a capacity of zero or above the limit.
    #[error("a human's capacity must be between 1 and {max} conversations; {capacity} was given")]
    CapacityOutOfRange {
        /// The capacity given.
        capacity: u32,
        /// The limit.
        max: u32,
    },
    /// Setting a human's presence to the one they have.
    #[error("human {human_id} is already {}", .presence.as_str())]
    PresenceUnchanged {
        /// The human.
        human_id: HumanId,
        /// Their presence.
        presence: Presence,
    },
    /// An offline human sent a command, or was named to take a conversation.
    #[error(
        "human {human_id} is offline; they must be available or away to act or take conversations"
    )]
    HumanOffline {
        /// The human.
        human_id: HumanId,
    },
    /// The router picked a human who is not available.
    #[error("human {human_id} is not available; the router assigns only available humans")]
    HumanUnavailable {
        /// The human.
        human_id: HumanId,
    },
    /// The router (or a human accepting) would exceed the human's capacity.
    #[error("human {human_id} already handles {load} of at most {capacity} conversations")]
    HumanAtCapacity {
        /// The human.
        human_id: HumanId,
        /// The conversations they handle.
        load: u32,
        /// Their capacity.
        capacity: u32,
    },
    /// A human agent acting on a conversation that is not assigned to them.
    #[error("conversation is not assigned to {human_id}; only its assigned human or a supervisor may do that")]
    NotAssignedToYou {
        /// The human who tried.
        human_id: HumanId,
    },
    /// A human agent doing what only a supervisor may do.
    #[error("only a supervisor may do that; {human_id} is an agent")]
    NotASupervisor {
        /// The human who tried.
        human_id: HumanId,
    },
    /// Accept or a router assignment on a conversation that is not waiting for a human.
    #[error("conversation is not waiting for a human")]
    NotAwaitingHuman,
    /// A human accepting from a queue of a team they do not belong to.
    #[error("{human_id} is not in team {team}, whose queue the conversation waits in")]
    NotInTeam {
        /// The human who tried.
        human_id: HumanId,
        /// The queue's team.
        team: TeamId,
    },
    /// Assigning or transferring a conversation to the human who already handles it.
    #[error("conversation is already handled by {human_id}")]
    AlreadyAssignedTo {
        /// The human.
        human_id: HumanId,
    },
    /// Raising a flag that is raised.
    #[error("the conversation is already flagged as needing help")]
    FlagAlreadyRaised,
    /// Lowering a flag that is not raised.
    #[error("the conversation is not flagged")]
    FlagNotRaised,
    /// Requeueing the conversation of a human who is still signed in.
    #[error("human {human_id} is still signed in; their conversations stay with them")]
    HumanStillSignedIn {
        /// The human.
        human_id: HumanId,
    },
    /// Requeueing a conversation that `human_id` does not handle.
    #[error("conversation is not handled by {human_id}")]
    NotHandledBy {
        /// The human named.
        human_id: HumanId,
    },
    /// A kind of participant that may not send this command (a customer assigning, ...).
    #[error("a {participant} may not {action} a conversation")]
    ParticipantNotAllowed {
        /// `customer`, `human`, `AI agent` or `system`.
        #[serde(deserialize_with = "crate::names::deserialize")]
        participant: crate::names::Name,
        /// The command's name.
        #[serde(deserialize_with = "crate::names::deserialize")]
        action: crate::names::Name,
    },
    /// An AI agent starting a skill while too many it started have no outcome yet.
    #[error("{max} skills started in this conversation have no outcome yet; record their outcomes first")]
    TooManySkillsStarted {
        /// The limit.
        max: usize,
    },
    /// A rule of the escalation policy refuses the handoff to AI (a concern within its
    /// window, a topic the agent does not cover, or one of the embedder's rules).
    #[error(
        "not handed off: rule {rule} of policy {policy_version} refuses it: {reason}; keep this \
         conversation with a human, or a supervisor may override the rule"
    )]
    RefusedByRule {
        /// The rule.
        rule: RuleName,
        /// The policy's version.
        policy_version: PolicyVersion,
        /// Why, in words.
        reason: String,
    },
    /// The policy's loop guard refuses the handoff to AI (too many handoffs, or too soon after
    /// the AI let go).
    #[error(
        "not handed off: the loop guard, rule {rule} of policy {policy_version}, refuses it: \
         {reason}; a supervisor may override the rule"
    )]
    HandoffLoop {
        /// The rule.
        rule: RuleName,
        /// The policy's version.
        policy_version: PolicyVersion,
        /// Why, in words.
        reason: String,
    },
    /// A skill the policy gates was recorded without approval.
    #[error(
        "skill {skill} waits for a person's approval under the policy; run it with run_skill, \
         which asks for the approval first"
    )]
    SkillNeedsApproval {
        /// The skill.
        skill: SkillName,
    },
    /// Approve or deny, with no request of that skill waiting.
    #[error("no request to run skill {skill} waits for approval")]
    NoApprovalPending {
        /// The skill.
        skill: SkillName,
    },
}
