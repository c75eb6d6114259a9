//! A conversation's state and its two rule functions.
//!
//! [`evolve`] holds the state machine: which event may follow which state. It is total over
//! the events [`decide`] produces and rejects every other one, so replaying a damaged or forged
//! log reports the first impossible event instead of folding it.
//! [`decide`] holds what depends on the command: who is asking, under which assignment, the
//! AI-agent roster and the handoff policy. It builds the events and runs them through
//! [`evolve`], so each state rule is written once.

use crate::command::{Assignment, ConversationCommand, Participant};
use crate::context::Context;
use crate::event::{
    Author, ConversationEvent, EscalationCause, NoteAudience, NoticeKind, SystemActor,
    TransferTarget, WaitCause,
};
use crate::human::{Human, Presence};
use crate::ids::{
    AgentName, AiAgentId, Channel, CustomerId, Epoch, HumanId, Language, SkillName, TeamId,
    TenantId,
};
use crate::policy::Concern;
use crate::rejection::Rejection;
use crate::rules::{PolicyVersion, RuleEscalation, RuleName};
use crate::settings::Settings;
use crate::signals::{Fingerprint, Reading};
use crate::text::{MessageText, Reason};
use crate::time::Timestamp;
use crate::{Ctx, Event};

/// A conversation, as the fold of its events.
///
/// Closed by nature: a conversation is not opened yet, open, or closed (who handles an open
/// one is its [`Handler`], which grows).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Conversation {
    /// No event yet: only `Open` and `Start` are accepted.
    #[default]
    NotOpened,
    /// Open: it has a controller, its [`Handler`].
    Open(OpenConversation),
    /// Closed: terminal, every command is rejected. Keeps who handled it at the close.
    Closed(OpenConversation),
}

/// Who controls an open conversation: an AI agent, a named human, or a queue it waits in.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Handler {
    /// Human-handled with no human named: only logs written before human assignment hold it
    /// (and, for the length of one append, a conversation between an escalation and the wait
    /// or assignment it leads to).
    Human,
    /// AI-active: an AI agent answers on its own; humans cannot post.
    Ai {
        /// The AI agent.
        agent_id: AiAgentId,
        /// Its display name, as recorded by the handoff.
        agent_name: AgentName,
    },
    /// Reclaimed: a human took it back from an AI agent and handles it.
    Reclaimed {
        /// The human who reclaimed it.
        by: HumanId,
    },
    /// Awaiting a human in a team's queue.
    AwaitingHuman {
        /// The queue (`None`: the tenant's general queue).
        team: Option<TeamId>,
        /// Since when.
        since: Timestamp,
        /// Why.
        cause: WaitCause,
    },
    /// A named human handles it (given at open, by the router or a supervisor, accepted from a
    /// queue, or transferred).
    Assigned {
        /// The human.
        human: HumanId,
        /// Their display name, as recorded by the assignment.
        name: AgentName,
    },
}

/// The state of an open conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenConversation {
    /// The customer.
    pub customer: CustomerId,
    /// The channel.
    pub channel: Channel,
    /// The human most recently in charge: assigned, or who reclaimed it.
    pub human: Option<HumanId>,
    /// Who handles it now.
    pub handler: Handler,
    /// How many handoffs so far; the current AI assignment, if any, has this epoch.
    pub epoch: Epoch,
    /// The AI agent of each handoff so far: epoch `n` was `ai_agents[n - 1]`'s. It tells an
    /// agent whose assignment ended from one that never had it.
    pub ai_agents: Vec<AiAgentId>,
    /// Every concern the customer has raised, without duplicates.
    pub concerns: Vec<Concern>,
    /// The tenant it belongs to.
    pub tenant: TenantId,
    /// The team whose queue it waits in when it needs a human (`None`: the general queue).
    pub team: Option<TeamId>,
    /// The customer's language, if known.
    pub language: Option<Language>,
    /// The human who made the latest handoff to an AI agent: while the AI holds it, they are
    /// the human responsible for it (they may reclaim it), and the router's first choice
    /// when it comes back.
    pub handed_off_by: Option<HumanId>,
    /// Whether "needs help" is raised.
    pub flagged: bool,
    /// Whether the current wait has passed its warning threshold (recorded).
    pub sla_warned: bool,
    /// Whether the current wait has passed its breach threshold (recorded).
    pub sla_breached: bool,
    /// When it was opened, when known.
    pub opened_at: Option<Timestamp>,
    /// When the customer last wrote, when known.
    pub last_customer_at: Option<Timestamp>,
    /// Since when a customer's message to the AI agent waits for its reply, when known.
    pub reply_pending_since: Option<Timestamp>,
    /// Skills an AI agent started and has not reported the outcome of: the epoch it started
    /// them under, the agent, the skill.
    pub skills_started: Vec<(Epoch, AiAgentId, SkillName)>,
    /// What the escalation rules read: recent customer messages, concerns with when they
    /// were raised, the last escalation, the AI's misses in a row.
    pub signals: Signals,
    /// Skills that wait for a person's approval, oldest first (the current assignment's: an
    /// assignment's end ends its waits).
    pub approvals: Vec<PendingApproval>,
}

/// How many recent customer messages a conversation keeps for the message rules.
pub const RECENT_MESSAGES_MAX: usize = 8;

/// What the escalation rules read, folded from the log like the rest of the state, so a rule's
/// verdict is a function of the state, the command and the time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Signals {
    /// Customer messages so far.
    pub customer_messages: u32,
    /// Each concern the customer raised, at its latest raising.
    pub concerns: Vec<ConcernMark>,
    /// When an AI agent last let go of it (escalated, by itself, the clock or a rule).
    pub last_escalation_at: Option<Timestamp>,
    /// The AI's "could not answer" reports since its last real answer under this assignment.
    pub ai_misses_in_a_row: u32,
    /// Whether the AI's next message answers a question it reported it could not answer (so
    /// it does not end the run of misses).
    pub miss_pending: bool,
    /// The last [`RECENT_MESSAGES_MAX`] customer messages, oldest first.
    pub recent: std::collections::VecDeque<RecentMessage>,
    /// The conversation's topic, as the latest context gave it.
    pub topic: Option<crate::ids::Specialty>,
}

/// A concern at its latest raising.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConcernMark {
    /// The concern.
    pub concern: Concern,
    /// When, if the log says.
    pub at: Option<Timestamp>,
    /// The customer message that raised it, counted from 1.
    pub message: u32,
}

/// A recent customer message, with what the rules compare.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecentMessage {
    /// Its text.
    pub text: MessageText,
    /// Its content words.
    pub words: Fingerprint,
    /// The handoff count when it was written (messages to one AI assignment share it).
    pub epoch: Epoch,
    /// Its score on the built-in frustration lexicon ([`crate::signals::frustration`]), as the
    /// bits of the `f64`, scored once when the message is folded in.
    lexicon_frustration: u64,
}

impl RecentMessage {
    /// Its score on the built-in frustration lexicon ([`crate::signals::frustration`]),
    /// computed once, when the message was folded in: the built-in policies read it instead of
    /// scoring the message again on every later message.
    pub fn lexicon_frustration(&self) -> f64 {
        f64::from_bits(self.lexicon_frustration)
    }
}

/// A skill waiting for a person's approval.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PendingApproval {
    /// The assignment it was asked under.
    pub epoch: Epoch,
    /// The AI agent.
    pub agent_id: AiAgentId,
    /// The skill.
    pub name: SkillName,
    /// Since when.
    pub since: Timestamp,
    /// How long it may wait.
    pub deadline_ms: u64,
    /// The rule that asked for it.
    pub rule: RuleName,
    /// The policy's version.
    pub policy_version: PolicyVersion,
}

impl OpenConversation {
    /// The human who handles it now (assigned, or who reclaimed it); `None` while an AI agent
    /// holds it or it waits.
    pub fn assigned_human(&self) -> Option<&HumanId> {
        match &self.handler {
            Handler::Assigned { human, .. } => Some(human),
            Handler::Reclaimed { by } => Some(by),
            Handler::Human => self.human.as_ref(),
            _ => None,
        }
    }

    /// The human answerable for it: the assigned one, or while an AI agent holds it, the
    /// human who handed it off.
    pub fn responsible_human(&self) -> Option<&HumanId> {
        match &self.handler {
            Handler::Ai { .. } => self.handed_off_by.as_ref().or(self.human.as_ref()),
            _ => self.assigned_human(),
        }
    }
}

/// The states a caller sees, plus the terminal one.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Status {
    /// Not opened yet.
    NotOpened,
    /// A human handles it, none named (logs written before human assignment).
    HumanHandled,
    /// An AI agent handles it; the header shows the robot icon and this agent.
    AiActive {
        /// The AI agent.
        agent_id: AiAgentId,
        /// Its display name.
        agent_name: AgentName,
        /// The assignment's epoch.
        epoch: Epoch,
    },
    /// A human reclaimed it from an AI agent and handles it.
    Reclaimed {
        /// The human who reclaimed it.
        by: HumanId,
    },
    /// Closed.
    Closed,
    /// It waits for a human in a queue.
    AwaitingHuman {
        /// The queue (`None`: the tenant's general queue).
        team: Option<TeamId>,
        /// Since when.
        since: Timestamp,
        /// Why.
        cause: WaitCause,
    },
    /// A named human handles it.
    Assigned {
        /// The human.
        human: HumanId,
        /// Their display name.
        name: AgentName,
    },
}

impl Status {
    /// `human-handled`, `ai-active`, `reclaimed`, `awaiting-human`, `closed` or `not-opened`.
    /// A human assigned reads `human-handled`; one who reclaimed it `reclaimed`.
    pub fn label(&self) -> &'static str {
        match self {
            Status::NotOpened => "not-opened",
            Status::HumanHandled | Status::Assigned { .. } => "human-handled",
            Status::AiActive { .. } => "ai-active",
            Status::Reclaimed { .. } => "reclaimed",
            Status::Closed => "closed",
            Status::AwaitingHuman { .. } => "awaiting-human",
        }
    }
}

impl Conversation {
    /// What the conversation header shows.
    pub fn status(&self) -> Status {
        match self {
            Conversation::NotOpened => Status::NotOpened,
            Conversation::Closed(_) => Status::Closed,
            Conversation::Open(open) => match &open.handler {
                Handler::Human => Status::HumanHandled,
                Handler::Reclaimed { by } => Status::Reclaimed { by: by.clone() },
                Handler::Ai {
                    agent_id,
                    agent_name,
                } => Status::AiActive {
                    agent_id: agent_id.clone(),
                    agent_name: agent_name.clone(),
                    epoch: open.epoch,
                },
                Handler::AwaitingHuman { team, since, cause } => Status::AwaitingHuman {
                    team: team.clone(),
                    since: *since,
                    cause: *cause,
                },
                Handler::Assigned { human, name } => Status::Assigned {
                    human: human.clone(),
                    name: name.clone(),
                },
            },
        }
    }

    /// The current AI assignment, when AI-active.
    pub fn assignment(&self) -> Option<Assignment> {
        match self {
            Conversation::Open(OpenConversation {
                handler: Handler::Ai { agent_id, .. },
                epoch,
                ..
            }) => Some(Assignment {
                agent_id: agent_id.clone(),
                epoch: *epoch,
            }),
            _ => None,
        }
    }

    /// The open or closed conversation's state; `None` before it is opened.
    pub fn state(&self) -> Option<&OpenConversation> {
        match self {
            Conversation::NotOpened => None,
            Conversation::Open(open) | Conversation::Closed(open) => Some(open),
        }
    }

    /// The tenant it belongs to, once opened.
    pub fn tenant(&self) -> Option<&TenantId> {
        self.state().map(|open| &open.tenant)
    }

    fn open(&self) -> Result<&OpenConversation, Rejection> {
        match self {
            Conversation::NotOpened => Err(Rejection::NotOpened),
            Conversation::Open(open) => Ok(open),
            Conversation::Closed(_) => Err(Rejection::Closed),
        }
    }
}

/// Checks that `assignment` is the conversation's current one.
fn check_assignment(open: &OpenConversation, assignment: &Assignment) -> Result<(), Rejection> {
    if let Handler::Ai { agent_id, .. } = &open.handler {
        if *agent_id == assignment.agent_id && open.epoch == assignment.epoch {
            return Ok(());
        }
    }
    // An assignment this agent really held, since ended by a reclaim, an escalation, a close or
    // a new handoff: e.g. a reply computed before a reclaim and sent after it.
    let held = assignment
        .epoch
        .0
        .checked_sub(1)
        .and_then(|i| usize::try_from(i).ok())
        .and_then(|i| open.ai_agents.get(i))
        .is_some_and(|agent| *agent == assignment.agent_id);
    if held {
        Err(Rejection::AssignmentEnded {
            agent_id: assignment.agent_id.clone(),
            epoch: assignment.epoch,
        })
    } else {
        Err(Rejection::NotAssigned {
            agent_id: assignment.agent_id.clone(),
        })
    }
}

fn author(by: &Participant) -> Author {
    match by {
        Participant::Customer(id) => Author::Customer(id.clone()),
        Participant::Human(id) => Author::Human(id.clone()),
        Participant::Ai(assignment) => Author::Ai(assignment.agent_id.clone()),
        Participant::System(actor) => Author::System(*actor),
    }
}

fn participant_kind(by: &Participant) -> &'static str {
    match by {
        Participant::Customer(_) => "customer",
        Participant::Human(_) => "human",
        Participant::Ai(_) => "AI agent",
        Participant::System(_) => "system",
    }
}

fn not_allowed(by: &Participant, command: &ConversationCommand) -> Rejection {
    Rejection::ParticipantNotAllowed {
        participant: participant_kind(by),
        action: command.name(),
    }
}

/// The human `by`, checked against the conversation: registered and not removed, of the
/// conversation's tenant (otherwise the conversation "does not exist" for them, open or closed),
/// not offline, and the conversation open. Identity is checked before existence, so the answer
/// to a stranger never depends on what the log holds.
fn human_on<'s, 'c>(
    state: &'s Conversation,
    by: &HumanId,
    ctx: &Ctx<'c>,
) -> Result<(&'s OpenConversation, &'c Human), Rejection> {
    let human = ctx
        .directory
        .get(by)
        .ok_or_else(|| Rejection::UnknownHuman {
            human_id: by.clone(),
        })?;
    if human.removed {
        return Err(Rejection::HumanRemoved {
            human_id: by.clone(),
        });
    }
    let conversation = state.state().ok_or(Rejection::NotOpened)?;
    if conversation.tenant != human.profile.tenant {
        return Err(Rejection::NotOpened);
    }
    if human.presence == Presence::Offline {
        return Err(Rejection::HumanOffline {
            human_id: by.clone(),
        });
    }
    Ok((state.open()?, human))
}

/// An agent may act only on a conversation they answer for; a supervisor on any of their tenant.
fn may_handle(open: &OpenConversation, human: &Human) -> Result<(), Rejection> {
    let id = &human.profile.id;
    let legacy_unassigned = matches!(open.handler, Handler::Human) && open.human.is_none();
    if human.is_supervisor() || legacy_unassigned || open.responsible_human() == Some(id) {
        Ok(())
    } else {
        Err(Rejection::NotAssignedToYou {
            human_id: id.clone(),
        })
    }
}

fn require_supervisor(human: &Human) -> Result<(), Rejection> {
    if human.is_supervisor() {
        Ok(())
    } else {
        Err(Rejection::NotASupervisor {
            human_id: human.profile.id.clone(),
        })
    }
}

/// The human named to take a conversation of `tenant`: registered there, not removed, not
/// offline. A human of another tenant is as unknown as one never registered.
fn target<'c>(to: &HumanId, tenant: &TenantId, ctx: &Ctx<'c>) -> Result<&'c Human, Rejection> {
    let human = ctx
        .directory
        .get(to)
        .filter(|h| h.profile.tenant == *tenant)
        .ok_or_else(|| Rejection::UnknownHuman {
            human_id: to.clone(),
        })?;
    if human.removed {
        return Err(Rejection::HumanRemoved {
            human_id: to.clone(),
        });
    }
    if human.presence == Presence::Offline {
        return Err(Rejection::HumanOffline {
            human_id: to.clone(),
        });
    }
    Ok(human)
}

fn check_capacity(human: &Human, ctx: &Ctx<'_>) -> Result<(), Rejection> {
    let load = ctx.loads.of(&human.profile.id);
    if load >= human.profile.capacity {
        return Err(Rejection::HumanAtCapacity {
            human_id: human.profile.id.clone(),
            load,
            capacity: human.profile.capacity,
        });
    }
    Ok(())
}

/// The notice of `kind`, in the customer's language; none when the settings have no text.
fn notice(
    open_language: Option<&Language>,
    settings: &Settings,
    kind: NoticeKind,
    agent: Option<&str>,
    human: Option<&str>,
) -> Option<ConversationEvent> {
    let (text, language) = settings.notices.render(kind, open_language, agent, human)?;
    Some(ConversationEvent::CustomerNotice {
        kind,
        text,
        language,
    })
}

/// The events that give a conversation to `human`.
fn assigned(
    human: &Human,
    team: Option<TeamId>,
    by: Author,
    language: Option<&Language>,
    ctx: &Ctx<'_>,
) -> Vec<ConversationEvent> {
    let name = &human.profile.name;
    let mut events = vec![ConversationEvent::HumanAssigned {
        human_id: human.profile.id.clone(),
        name: name.clone(),
        team,
        by,
        at: ctx.now,
    }];
    events.extend(notice(
        language,
        ctx.settings,
        NoticeKind::PersonJoined,
        None,
        Some(name.as_str()),
    ));
    events
}

/// The events that put a conversation in `team`'s queue.
fn awaiting(
    team: Option<TeamId>,
    cause: WaitCause,
    language: Option<&Language>,
    ctx: &Ctx<'_>,
) -> Vec<ConversationEvent> {
    let mut events = vec![ConversationEvent::AwaitingHuman {
        team,
        cause,
        since: ctx.now,
    }];
    events.extend(notice(
        language,
        ctx.settings,
        NoticeKind::WaitingForPerson,
        None,
        None,
    ));
    events
}

/// The events of an AI agent letting go: the escalation, the notice that it left, and the
/// wait it leads to.
fn escalation(
    open: &OpenConversation,
    agent_id: &AiAgentId,
    agent_name: &AgentName,
    reason: Reason,
    cause: EscalationCause,
    ctx: &Ctx<'_>,
) -> Vec<ConversationEvent> {
    let first = ConversationEvent::EscalatedToHuman {
        agent_id: agent_id.clone(),
        reason,
        cause,
    };
    letting_go(open, first, agent_name, cause, ctx)
}

/// The events of a rule giving the conversation back to humans.
fn rule_escalation(
    open: &OpenConversation,
    agent_id: &AiAgentId,
    agent_name: &AgentName,
    fired: RuleEscalation,
    ctx: &Ctx<'_>,
) -> Vec<ConversationEvent> {
    let cause = fired.cause;
    let first = ConversationEvent::EscalatedByRule {
        agent_id: agent_id.clone(),
        reason: fired.reason,
        cause,
        rule: fired.rule,
        policy_version: ctx.policy.rules().version().clone(),
        at: ctx.now,
    };
    letting_go(open, first, agent_name, cause, ctx)
}

fn letting_go(
    open: &OpenConversation,
    first: ConversationEvent,
    agent_name: &AgentName,
    cause: EscalationCause,
    ctx: &Ctx<'_>,
) -> Vec<ConversationEvent> {
    let language = open.language.as_ref();
    let mut events = vec![first];
    events.extend(notice(
        language,
        ctx.settings,
        NoticeKind::AiLeft,
        Some(agent_name.as_str()),
        None,
    ));
    events.extend(awaiting(
        open.team.clone(),
        WaitCause::Escalated(cause),
        language,
        ctx,
    ));
    events
}

/// The active AI agent's display name, or `agent_id` as one (an assignment that ended keeps no
/// name in the state).
fn ai_name_or_id(open: &OpenConversation, agent_id: &AiAgentId) -> AgentName {
    ai_name(open)
        .cloned()
        .unwrap_or_else(|| AgentName::new(agent_id.as_str()).expect("an id is a valid name"))
}

fn ai_name(open: &OpenConversation) -> Option<&AgentName> {
    match &open.handler {
        Handler::Ai { agent_name, .. } => Some(agent_name),
        _ => None,
    }
}

fn constant_reason(text: String) -> Reason {
    crate::text::reason_cut(text, "deadline")
}

/// Turns a command into the events it causes, or the reason it is refused.
///
/// Pure: it reads only its arguments. The events are run through [`evolve`] before they are
/// returned, so an accepted command always folds.
pub fn decide(
    state: &Conversation,
    command: &ConversationCommand,
    ctx: &Ctx<'_>,
) -> Result<Vec<ConversationEvent>, Rejection> {
    decide_with_state(state, command, ctx).map(|(events, _)| events)
}

/// [`decide`], also returning the state the events fold to, which `decide` computes anyway:
/// a caller that applies the events once they are stored need not fold them again.
pub fn decide_with_state(
    state: &Conversation,
    command: &ConversationCommand,
    ctx: &Ctx<'_>,
) -> Result<(Vec<ConversationEvent>, Conversation), Rejection> {
    // The reading of a customer's message, made once for the policy and the fold.
    let mut reading = None;
    let events = match command {
        ConversationCommand::Open {
            customer,
            channel,
            human,
        } => start(
            state,
            ctx,
            TenantId::default_tenant(),
            customer,
            channel,
            None,
            None,
            human.as_ref(),
        )?,
        ConversationCommand::Start {
            tenant,
            customer,
            channel,
            team,
            language,
            human,
        } => start(
            state,
            ctx,
            tenant.clone(),
            customer,
            channel,
            team.clone(),
            language.clone(),
            human.as_ref(),
        )?,
        ConversationCommand::PostMessage { by, text } => {
            let (events, read) = post(state, by, text, command, ctx)?;
            reading = read;
            events
        }
        ConversationCommand::PostMessageJudged {
            by, text, cause, ..
        } => {
            if !matches!(by, Participant::Customer(_)) {
                return Err(not_allowed(by, command));
            }
            // A conversation not opened or closed refuses as such, whatever the verdict's
            // cause (as `Escalate` does): closed is terminal.
            state.open()?;
            // The clock's and the runtime's causes, and the lexicon's request for a person
            // (which the audit pairs with the concern on the message), are not a verdict's.
            if matches!(
                cause,
                EscalationCause::AiTimeout
                    | EscalationCause::AgentDeactivated
                    | EscalationCause::CustomerAskedForHuman
            ) {
                return Err(Rejection::EscalationCauseNotAllowed { cause: *cause });
            }
            let (events, read) = post(state, by, text, command, ctx)?;
            reading = read;
            events
        }
        ConversationCommand::HandOffToAi {
            by,
            agent_id,
            reason,
        } => hand_off(state, by, agent_id, reason, None, false, None, ctx)?,
        ConversationCommand::HandOffToAiWith {
            by,
            agent_id,
            reason,
            context,
            override_policy,
            refused_by,
        } => hand_off(
            state,
            by,
            agent_id,
            reason,
            context.as_ref(),
            *override_policy,
            refused_by.as_ref(),
            ctx,
        )?,
        ConversationCommand::RecordAiAction { by, skill } => {
            let open = state.open()?;
            // The outcome of a skill started under this assignment is recorded even after
            // the assignment ended: the action ran, and the log must say how it went.
            let started = open.skills_started.iter().any(|(epoch, agent, name)| {
                *epoch == by.epoch && *agent == by.agent_id && *name == skill.name
            });
            if !started {
                check_assignment(open, by)?;
                // A gated skill runs only once approved: recording it directly would bypass
                // the person the policy asks.
                if ctx
                    .policy
                    .rules()
                    .before_skill(&skill.name, &skill.input)
                    .is_some()
                {
                    return Err(Rejection::SkillNeedsApproval {
                        skill: skill.name.clone(),
                    });
                }
            }
            vec![ConversationEvent::AiActionRecorded {
                agent_id: by.agent_id.clone(),
                skill: skill.clone(),
            }]
        }
        ConversationCommand::StartSkill { by, name, input } => {
            let open = state.open()?;
            check_assignment(open, by)?;
            if open.skills_started.len() + open.approvals.len() >= crate::limits::SKILLS_STARTED_MAX
            {
                return Err(Rejection::TooManySkillsStarted {
                    max: crate::limits::SKILLS_STARTED_MAX,
                });
            }
            let rules = ctx.policy.rules();
            match rules.before_skill(name, input) {
                Some(gate) => vec![ConversationEvent::SkillApprovalRequested {
                    agent_id: by.agent_id.clone(),
                    name: name.clone(),
                    input: input.clone(),
                    rule: gate.rule,
                    policy_version: rules.version().clone(),
                    deadline_ms: gate.deadline_ms,
                    at: ctx.now,
                }],
                None => vec![ConversationEvent::AiSkillStarted {
                    agent_id: by.agent_id.clone(),
                    name: name.clone(),
                    input: input.clone(),
                }],
            }
        }
        ConversationCommand::ApproveSkill { by, skill } => {
            let (open, human) = human_on(state, by, ctx)?;
            may_handle(open, human)?;
            let pending = waiting_approval(open, skill)?;
            vec![ConversationEvent::SkillApproved {
                agent_id: pending.agent_id.clone(),
                name: skill.clone(),
                by: Author::Human(by.clone()),
                rule: pending.rule.clone(),
                policy_version: pending.policy_version.clone(),
                at: ctx.now,
            }]
        }
        ConversationCommand::DenySkill { by, skill, reason } => {
            let (open, human) = human_on(state, by, ctx)?;
            may_handle(open, human)?;
            let pending = waiting_approval(open, skill)?;
            vec![ConversationEvent::SkillDenied {
                agent_id: pending.agent_id.clone(),
                name: skill.clone(),
                by: Author::Human(by.clone()),
                reason: reason.clone(),
                rule: pending.rule.clone(),
                policy_version: pending.policy_version.clone(),
                at: ctx.now,
            }]
        }
        ConversationCommand::ReportCouldNotAnswer { by, reason } => {
            check_assignment(state.open()?, by)?;
            vec![ConversationEvent::AiCouldNotAnswer {
                agent_id: by.agent_id.clone(),
                reason: reason.clone(),
                at: ctx.now,
            }]
        }
        ConversationCommand::EscalateWith {
            by,
            reason,
            context,
        } => {
            let open = state.open()?;
            check_assignment(open, by)?;
            let name = ai_name_or_id(open, &by.agent_id);
            let mut events = vec![ConversationEvent::ContextShared {
                by: Author::Ai(by.agent_id.clone()),
                context: context.clone(),
                at: ctx.now,
            }];
            events.extend(escalation(
                open,
                &by.agent_id,
                &name,
                reason.clone(),
                EscalationCause::AgentRequested,
                ctx,
            ));
            events
        }
        ConversationCommand::Reclaim { by, reason } => {
            let (open, human) = human_on(state, by, ctx)?;
            let Handler::Ai {
                agent_id,
                agent_name,
            } = &open.handler
            else {
                return Err(Rejection::NotAiActive);
            };
            may_handle(open, human)?;
            let mut events = vec![ConversationEvent::Reclaimed {
                agent_id: agent_id.clone(),
                by_human: by.clone(),
                reason: reason.clone(),
            }];
            let language = open.language.as_ref();
            events.extend(notice(
                language,
                ctx.settings,
                NoticeKind::AiLeft,
                Some(agent_name.as_str()),
                None,
            ));
            events.extend(notice(
                language,
                ctx.settings,
                NoticeKind::PersonJoined,
                None,
                Some(human.profile.name.as_str()),
            ));
            events
        }
        ConversationCommand::Escalate { by, reason, cause } => {
            let open = state.open()?;
            if matches!(
                cause,
                EscalationCause::CustomerAskedForHuman
                    | EscalationCause::AiTimeout
                    | EscalationCause::Frustration
                    | EscalationCause::GoingInCircles
                    | EscalationCause::AiCouldNotAnswer
                    | EscalationCause::Complaint
            ) {
                // Only the policy's rules and the clock may claim these.
                return Err(Rejection::EscalationCauseNotAllowed { cause: *cause });
            }
            check_assignment(open, by)?;
            let name = ai_name_or_id(open, &by.agent_id);
            escalation(open, &by.agent_id, &name, reason.clone(), *cause, ctx)
        }
        ConversationCommand::Close { by, reason } => {
            may_act(state, by, command, ctx)?;
            vec![ConversationEvent::Closed {
                by: author(by),
                reason: reason.clone(),
            }]
        }
        ConversationCommand::Assign { by, to } => {
            let (open, by_router) = match by {
                Participant::Human(id) => {
                    let (open, human) = human_on(state, id, ctx)?;
                    require_supervisor(human)?;
                    (open, false)
                }
                Participant::System(SystemActor::Router) => (state.open()?, true),
                _ => return Err(not_allowed(by, command)),
            };
            let queue = match &open.handler {
                Handler::Ai {
                    agent_id,
                    agent_name,
                } => {
                    return Err(Rejection::AiActive {
                        agent_id: agent_id.clone(),
                        agent_name: agent_name.clone(),
                    })
                }
                Handler::AwaitingHuman { team, .. } => team.clone(),
                _ if by_router => return Err(Rejection::NotAwaitingHuman),
                _ => open.team.clone(),
            };
            let human = target(to, &open.tenant, ctx)?;
            if open.assigned_human() == Some(to) {
                return Err(Rejection::AlreadyAssignedTo {
                    human_id: to.clone(),
                });
            }
            if by_router {
                // The router never gives a conversation to someone away or at capacity.
                if human.presence != Presence::Available {
                    return Err(Rejection::HumanUnavailable {
                        human_id: to.clone(),
                    });
                }
                check_capacity(human, ctx)?;
            }
            assigned(human, queue, author(by), open.language.as_ref(), ctx)
        }
        ConversationCommand::Accept { by } => {
            let (open, human) = human_on(state, by, ctx)?;
            let Handler::AwaitingHuman { team, .. } = &open.handler else {
                return Err(Rejection::NotAwaitingHuman);
            };
            if let (Some(team), false) = (team, human.is_supervisor()) {
                if !human.in_team(team) {
                    return Err(Rejection::NotInTeam {
                        human_id: by.clone(),
                        team: team.clone(),
                    });
                }
            }
            check_capacity(human, ctx)?;
            assigned(
                human,
                team.clone(),
                Author::Human(by.clone()),
                open.language.as_ref(),
                ctx,
            )
        }
        ConversationCommand::Transfer { by, to, reason } => {
            let (open, human) = human_on(state, by, ctx)?;
            if let Handler::Ai {
                agent_id,
                agent_name,
            } = &open.handler
            {
                return Err(Rejection::AiActive {
                    agent_id: agent_id.clone(),
                    agent_name: agent_name.clone(),
                });
            }
            may_handle(open, human)?;
            let by_author = Author::Human(by.clone());
            let mut events = vec![ConversationEvent::Transferred {
                to: to.clone(),
                reason: reason.clone(),
                by: by_author.clone(),
                at: ctx.now,
            }];
            let language = open.language.as_ref();
            match to {
                TransferTarget::Human(to) => {
                    let target = target(to, &open.tenant, ctx)?;
                    if open.assigned_human() == Some(to) {
                        return Err(Rejection::AlreadyAssignedTo {
                            human_id: to.clone(),
                        });
                    }
                    events.extend(assigned(
                        target,
                        open.team.clone(),
                        by_author,
                        language,
                        ctx,
                    ));
                }
                TransferTarget::Team(team) => {
                    events.extend(awaiting(
                        Some(team.clone()),
                        WaitCause::Transferred,
                        language,
                        ctx,
                    ));
                }
            }
            events
        }
        ConversationCommand::Requeue { human } => {
            let open = state.open()?;
            if open.assigned_human() != Some(human) || matches!(open.handler, Handler::Human) {
                return Err(Rejection::NotHandledBy {
                    human_id: human.clone(),
                });
            }
            let cause = match ctx.directory.get(human) {
                None => WaitCause::HumanRemoved,
                Some(h) if h.removed => WaitCause::HumanRemoved,
                Some(h) if h.presence == Presence::Offline => WaitCause::HumanOffline,
                Some(_) => {
                    return Err(Rejection::HumanStillSignedIn {
                        human_id: human.clone(),
                    })
                }
            };
            awaiting(open.team.clone(), cause, open.language.as_ref(), ctx)
        }
        ConversationCommand::Whisper { by, to, text } => {
            let (open, human) = human_on(state, by, ctx)?;
            may_handle(open, human)?;
            if *to == NoteAudience::Ai && !matches!(open.handler, Handler::Ai { .. }) {
                return Err(Rejection::NotAiActive);
            }
            vec![ConversationEvent::InternalNote {
                to: *to,
                text: text.clone(),
                by: Author::Human(by.clone()),
                at: ctx.now,
            }]
        }
        ConversationCommand::RaiseFlag { by } => {
            match by {
                Participant::Human(id) => {
                    let (open, human) = human_on(state, id, ctx)?;
                    may_handle(open, human)?;
                }
                Participant::Ai(assignment) => check_assignment(state.open()?, assignment)?,
                _ => return Err(not_allowed(by, command)),
            }
            vec![ConversationEvent::FlagRaised {
                by: author(by),
                at: ctx.now,
            }]
        }
        ConversationCommand::LowerFlag { by } => {
            let (_, human) = human_on(state, by, ctx)?;
            require_supervisor(human)?;
            vec![ConversationEvent::FlagLowered {
                by: Author::Human(by.clone()),
                at: ctx.now,
            }]
        }
        ConversationCommand::Tick => due(state.open()?, ctx),
    };
    let now = Some(ctx.now);
    let mut events = events;
    // The message is the first event: it folds with its reading, as the same text would
    // fold without it.
    let mut next = events.iter().try_fold(state.clone(), |state, event| {
        evolve_read(state, event, now, reading.take())
    })?;
    // The rules that read the state the command leads to (the message counted in the
    // signals, the miss in the run of misses): their escalation joins the same append, so no
    // AI reply can slip in between.
    if let Some(more) = after_rules(state, command, &next, &events, ctx) {
        next = more
            .iter()
            .try_fold(next, |state, event| evolve_at(state, event, now))?;
        events.extend(more);
    }
    Ok((events, next))
}

/// The escalation a rule makes after the command's own events, if any: on a customer's
/// message while an AI agent is active (the built-in rules in the policy's order, then the
/// embedder's verdict the command carries), and on an AI's "could not answer".
fn after_rules(
    before: &Conversation,
    command: &ConversationCommand,
    next: &Conversation,
    events: &[ConversationEvent],
    ctx: &Ctx<'_>,
) -> Option<Vec<ConversationEvent>> {
    let Conversation::Open(open) = next else {
        return None;
    };
    let Handler::Ai {
        agent_id,
        agent_name,
    } = &open.handler
    else {
        return None;
    };
    let rules = ctx.policy.rules();
    let fired = match command {
        ConversationCommand::PostMessage {
            by: Participant::Customer(_),
            ..
        }
        | ConversationCommand::PostMessageJudged {
            by: Participant::Customer(_),
            ..
        } => {
            // Only a message written while the AI held the conversation.
            before.assignment()?;
            let concerns = match events.first() {
                Some(ConversationEvent::MessagePosted { concerns, .. }) => concerns.as_slice(),
                _ => &[],
            };
            rules
                .on_customer_message(open, concerns, ctx.policy)
                .or_else(|| match command {
                    ConversationCommand::PostMessageJudged { cause, verdict, .. } => {
                        Some(RuleEscalation {
                            rule: verdict.rule.clone(),
                            cause: *cause,
                            reason: verdict.reason.clone(),
                        })
                    }
                    _ => None,
                })
        }
        ConversationCommand::ReportCouldNotAnswer { .. } => rules.on_ai_miss(open),
        _ => None,
    }?;
    Some(rule_escalation(open, agent_id, agent_name, fired, ctx))
}

/// Whether `by` may post to or close the conversation: a human answering for it, the AI agent
/// under the current assignment, or its customer while it is open.
fn may_act(
    state: &Conversation,
    by: &Participant,
    command: &ConversationCommand,
    ctx: &Ctx<'_>,
) -> Result<(), Rejection> {
    match by {
        Participant::Human(id) => {
            let (open, human) = human_on(state, id, ctx)?;
            may_handle(open, human)
        }
        Participant::Ai(assignment) => check_assignment(state.open()?, assignment),
        Participant::Customer(_) => state.open().map(|_| ()),
        _ => Err(not_allowed(by, command)),
    }
}

/// A message, with the concerns the policy hears in a customer's, and the reading of a
/// customer's message for the fold.
fn post(
    state: &Conversation,
    by: &Participant,
    text: &MessageText,
    command: &ConversationCommand,
    ctx: &Ctx<'_>,
) -> Result<(Vec<ConversationEvent>, Option<Reading>), Rejection> {
    may_act(state, by, command, ctx)?;
    // A customer's message is read once: for the policy's concerns, and for the signals the
    // fold keeps (the reading goes with the event to the fold).
    let (concerns, reading) = match by {
        Participant::Customer(_) => {
            let reading = Reading::of(text.as_str());
            (
                ctx.policy.assess_read(text.as_str(), &reading),
                Some(reading),
            )
        }
        _ => (Vec::new(), None),
    };
    Ok((
        vec![ConversationEvent::MessagePosted {
            author: author(by),
            text: text.clone(),
            concerns,
        }],
        reading,
    ))
}

/// A handoff to AI: the agent must be of the tenant and active, and the policy's handoff
/// rules (then the embedder's refusal) must not refuse it, unless a supervisor overrides them,
/// which is recorded.
#[allow(clippy::too_many_arguments)]
fn hand_off(
    state: &Conversation,
    by: &HumanId,
    agent_id: &AiAgentId,
    reason: &Option<Reason>,
    context: Option<&Context>,
    override_policy: bool,
    refused_by: Option<&crate::rules::RuleVerdict>,
    ctx: &Ctx<'_>,
) -> Result<Vec<ConversationEvent>, Rejection> {
    let (open, human) = human_on(state, by, ctx)?;
    may_handle(open, human)?;
    let agent = ctx
        .roster
        .get(agent_id)
        .filter(|agent| agent.tenant == open.tenant)
        .ok_or_else(|| Rejection::UnknownAiAgent {
            agent_id: agent_id.clone(),
        })?;
    if !agent.active {
        return Err(Rejection::AiAgentInactive {
            agent_id: agent_id.clone(),
        });
    }
    if let Handler::Ai {
        agent_id: active, ..
    } = &open.handler
    {
        if active == agent_id {
            return Err(Rejection::AlreadyHandledBy {
                agent_id: agent_id.clone(),
            });
        }
    }
    let rules = ctx.policy.rules();
    let topic = context.and_then(Context::topic);
    let refusal = rules
        .before_handoff(open, agent, topic, ctx.now)
        .map(|refusal| {
            let rejection = if refusal.is_loop_guard() {
                Rejection::HandoffLoop {
                    rule: refusal.rule.clone(),
                    policy_version: rules.version().clone(),
                    reason: refusal.reason.clone(),
                }
            } else {
                Rejection::RefusedByRule {
                    rule: refusal.rule.clone(),
                    policy_version: rules.version().clone(),
                    reason: refusal.reason.clone(),
                }
            };
            (refusal.rule, refusal.reason, rejection)
        })
        .or_else(|| {
            refused_by.map(|verdict| {
                (
                    verdict.rule.clone(),
                    verdict.reason.as_str().to_owned(),
                    Rejection::RefusedByRule {
                        rule: verdict.rule.clone(),
                        policy_version: rules.version().clone(),
                        reason: verdict.reason.as_str().to_owned(),
                    },
                )
            })
        });
    let mut events = Vec::new();
    if let Some((rule, refusal, rejection)) = refusal {
        if !override_policy {
            return Err(rejection);
        }
        require_supervisor(human)?;
        events.push(ConversationEvent::PolicyOverridden {
            by: by.clone(),
            rule,
            policy_version: rules.version().clone(),
            refusal: constant_reason(refusal),
            at: ctx.now,
        });
    }
    if let Some(context) = context.filter(|c| !c.is_empty()) {
        events.push(ConversationEvent::ContextShared {
            by: Author::Human(by.clone()),
            context: context.clone(),
            at: ctx.now,
        });
    }
    events.push(ConversationEvent::HandedOffToAi {
        agent_id: agent_id.clone(),
        agent_name: agent.profile.name.clone(),
        by_human: by.clone(),
        reason: reason.clone(),
    });
    events.extend(notice(
        open.language.as_ref(),
        ctx.settings,
        NoticeKind::AiJoined,
        Some(agent.profile.name.as_str()),
        None,
    ));
    Ok(events)
}

/// The oldest request of `skill` waiting for approval.
fn waiting_approval<'a>(
    open: &'a OpenConversation,
    skill: &SkillName,
) -> Result<&'a PendingApproval, Rejection> {
    open.approvals
        .iter()
        .find(|pending| pending.name == *skill)
        .ok_or_else(|| Rejection::NoApprovalPending {
            skill: skill.clone(),
        })
}

#[allow(clippy::too_many_arguments)]
fn start(
    state: &Conversation,
    ctx: &Ctx<'_>,
    tenant: TenantId,
    customer: &CustomerId,
    channel: &Channel,
    team: Option<TeamId>,
    language: Option<Language>,
    human: Option<&HumanId>,
) -> Result<Vec<ConversationEvent>, Rejection> {
    match state {
        Conversation::NotOpened => {}
        Conversation::Open(_) => return Err(Rejection::AlreadyOpened),
        // Like every command on a closed conversation.
        Conversation::Closed(_) => return Err(Rejection::Closed),
    }
    let human = human.map(|h| target(h, &tenant, ctx)).transpose()?;
    let mut events = vec![ConversationEvent::Started {
        tenant,
        customer: customer.clone(),
        channel: channel.clone(),
        team: team.clone(),
        language: language.clone(),
        at: ctx.now,
    }];
    match human {
        Some(human) => events.push(ConversationEvent::HumanAssigned {
            human_id: human.profile.id.clone(),
            name: human.profile.name.clone(),
            team: None,
            by: Author::System(SystemActor::Backend),
            at: ctx.now,
        }),
        None => events.extend(awaiting(team, WaitCause::Opened, language.as_ref(), ctx)),
    }
    Ok(events)
}

/// A deadline a conversation has pending: what it is, and when it falls.
enum Deadline<'a> {
    SlaWarning {
        team: &'a Option<TeamId>,
        since: Timestamp,
        threshold_ms: u64,
    },
    SlaBreach {
        team: &'a Option<TeamId>,
        since: Timestamp,
        threshold_ms: u64,
    },
    AiReply {
        agent_id: &'a AiAgentId,
        agent_name: &'a AgentName,
        since: Timestamp,
        deadline_ms: u64,
    },
    Idle {
        since: Timestamp,
        idle_ms: u64,
    },
    Approval {
        pending: &'a PendingApproval,
    },
}

impl Deadline<'_> {
    /// When it falls.
    fn at(&self) -> Timestamp {
        match self {
            Deadline::SlaWarning {
                since,
                threshold_ms,
                ..
            }
            | Deadline::SlaBreach {
                since,
                threshold_ms,
                ..
            } => since.plus_millis(*threshold_ms),
            Deadline::AiReply {
                since, deadline_ms, ..
            } => since.plus_millis(*deadline_ms),
            Deadline::Idle { since, idle_ms } => since.plus_millis(*idle_ms),
            Deadline::Approval { pending } => pending.since.plus_millis(pending.deadline_ms),
        }
    }
}

/// Every deadline of `open` not recorded yet, in the order their events are recorded when
/// several pass together: the one place the time rules are written, for [`next_deadline`] and
/// for the `Tick` command alike.
fn deadlines<'a>(open: &'a OpenConversation, settings: &Settings) -> Vec<Deadline<'a>> {
    // Skills waiting for approval come first: the AI reply deadline's escalation (and the idle
    // close) ends their wait, so a denial recorded after it in the same tick would not fold,
    // and the tick would be refused every time.
    let mut pending: Vec<Deadline<'a>> = open
        .approvals
        .iter()
        .map(|approval| Deadline::Approval { pending: approval })
        .collect();
    match &open.handler {
        Handler::AwaitingHuman { team, since, .. } => {
            let sla = settings.sla(team.as_ref());
            if !open.sla_warned {
                pending.push(Deadline::SlaWarning {
                    team,
                    since: *since,
                    threshold_ms: sla.warning_ms,
                });
            }
            if !open.sla_breached {
                pending.push(Deadline::SlaBreach {
                    team,
                    since: *since,
                    threshold_ms: sla.breach_ms,
                });
            }
        }
        Handler::Ai {
            agent_id,
            agent_name,
        } => {
            if let Some(since) = open.reply_pending_since {
                pending.push(Deadline::AiReply {
                    agent_id,
                    agent_name,
                    since,
                    deadline_ms: settings.reply_deadline_ms(agent_id),
                });
            }
        }
        _ => {}
    }
    if let (Some(idle_ms), Some(since)) = (
        settings.idle_close_ms,
        open.last_customer_at.or(open.opened_at),
    ) {
        pending.push(Deadline::Idle { since, idle_ms });
    }
    pending
}

/// The events of every deadline of `open` that has passed by `ctx.now`.
fn due(open: &OpenConversation, ctx: &Ctx<'_>) -> Vec<ConversationEvent> {
    let now = ctx.now;
    let mut events = Vec::new();
    for deadline in deadlines(open, ctx.settings) {
        if deadline.at() > now {
            continue;
        }
        match deadline {
            Deadline::SlaWarning {
                team,
                since,
                threshold_ms,
            } => {
                events.push(ConversationEvent::SlaWarning {
                    team: team.clone(),
                    waited_ms: now.millis_since(since),
                    threshold_ms,
                    at: now,
                });
            }
            Deadline::SlaBreach {
                team,
                since,
                threshold_ms,
            } => {
                events.push(ConversationEvent::SlaBreached {
                    team: team.clone(),
                    waited_ms: now.millis_since(since),
                    threshold_ms,
                    at: now,
                });
            }
            Deadline::AiReply {
                agent_id,
                agent_name,
                since,
                deadline_ms,
            } => {
                events.push(ConversationEvent::AiReplyOverdue {
                    agent_id: agent_id.clone(),
                    waited_ms: now.millis_since(since),
                    deadline_ms,
                    at: now,
                });
                events.extend(escalation(
                    open,
                    agent_id,
                    agent_name,
                    constant_reason(format!(
                        "the AI agent did not reply within {deadline_ms} ms"
                    )),
                    EscalationCause::AiTimeout,
                    ctx,
                ));
            }
            Deadline::Approval { pending } => events.push(ConversationEvent::SkillDenied {
                agent_id: pending.agent_id.clone(),
                name: pending.name.clone(),
                by: Author::System(SystemActor::Clock),
                reason: constant_reason(format!(
                    "nobody approved or denied it within {} ms",
                    pending.deadline_ms
                )),
                rule: pending.rule.clone(),
                policy_version: pending.policy_version.clone(),
                at: now,
            }),
            Deadline::Idle { idle_ms, .. } => events.push(ConversationEvent::Closed {
                by: Author::System(SystemActor::Clock),
                reason: Some(constant_reason(format!(
                    "the customer wrote nothing for {idle_ms} ms"
                ))),
            }),
        }
    }
    events
}

/// When the next deadline of this conversation falls (SLA warning or breach while it waits,
/// the AI reply deadline, idle closing), under `settings`; `None` when nothing is pending.
/// The runtime arms a timer for it and sends [`ConversationCommand::Tick`] when it passes.
pub fn next_deadline(state: &Conversation, settings: &Settings) -> Option<Timestamp> {
    let Conversation::Open(open) = state else {
        return None;
    };
    deadlines(open, settings).iter().map(Deadline::at).min()
}

/// Applies one event to the state. Rejects an event that cannot follow the state, which only a
/// damaged or forged log can contain, since [`decide`] checks every event it makes.
pub fn evolve(state: Conversation, event: &ConversationEvent) -> Result<Conversation, Rejection> {
    evolve_at(state, event, None)
}

/// [`evolve`], also noting when the event happened (`at`, the record's time, when known): the
/// time of customer messages starts the AI reply deadline and the idle clock. The rules never
/// reject an event for its time, so a log folds the same with or without times.
pub fn evolve_at(
    state: Conversation,
    event: &ConversationEvent,
    at: Option<Timestamp>,
) -> Result<Conversation, Rejection> {
    evolve_read(state, event, at, None)
}

/// [`evolve_at`], with the [`Reading`] of the event's text if it is a customer's message and
/// [`decide`] already read it (otherwise the fold reads the text itself: the same result).
fn evolve_read(
    state: Conversation,
    event: &ConversationEvent,
    at: Option<Timestamp>,
    reading: Option<Reading>,
) -> Result<Conversation, Rejection> {
    let opened = |tenant: TenantId,
                  customer: &CustomerId,
                  channel: &Channel,
                  human: Option<HumanId>,
                  team: Option<TeamId>,
                  language: Option<Language>,
                  opened_at: Option<Timestamp>| {
        Conversation::Open(OpenConversation {
            customer: customer.clone(),
            channel: channel.clone(),
            human,
            handler: Handler::Human,
            epoch: Epoch(0),
            ai_agents: Vec::new(),
            concerns: Vec::new(),
            tenant,
            team,
            language,
            handed_off_by: None,
            flagged: false,
            sla_warned: false,
            sla_breached: false,
            opened_at,
            last_customer_at: None,
            reply_pending_since: None,
            skills_started: Vec::new(),
            signals: Signals::default(),
            approvals: Vec::new(),
        })
    };
    let mut open = match (state, event) {
        (
            Conversation::NotOpened,
            ConversationEvent::Opened {
                customer,
                channel,
                human,
            },
        ) => {
            return Ok(opened(
                TenantId::default_tenant(),
                customer,
                channel,
                human.clone(),
                None,
                None,
                at,
            ))
        }
        (
            Conversation::NotOpened,
            ConversationEvent::Started {
                tenant,
                customer,
                channel,
                team,
                language,
                at,
            },
        ) => {
            return Ok(opened(
                tenant.clone(),
                customer,
                channel,
                None,
                team.clone(),
                language.clone(),
                Some(*at),
            ))
        }
        (Conversation::NotOpened, _) => return Err(Rejection::NotOpened),
        (Conversation::Closed(_), _) => return Err(Rejection::Closed),
        (Conversation::Open(open), _) => open,
    };
    match event {
        ConversationEvent::Opened { .. } | ConversationEvent::Started { .. } => {
            return Err(Rejection::AlreadyOpened)
        }
        ConversationEvent::MessagePosted {
            author,
            concerns,
            text,
        } => match author {
            // Only customers' messages are assessed by the policy.
            Author::Human(_) | Author::Ai(_) | Author::System(_) if !concerns.is_empty() => {
                return Err(Rejection::ConcernsNotFromCustomer)
            }
            Author::Customer(customer) => {
                if *customer != open.customer {
                    return Err(Rejection::NotTheCustomer {
                        customer: open.customer,
                    });
                }
                for concern in concerns {
                    if !open.concerns.contains(concern) {
                        open.concerns.push(*concern);
                    }
                }
                note_customer_message(&mut open, text, concerns, at, reading);
                if let Some(at) = at {
                    open.last_customer_at = Some(at);
                    if matches!(open.handler, Handler::Ai { .. }) {
                        open.reply_pending_since.get_or_insert(at);
                    }
                }
            }
            Author::Human(_) => {
                if let Handler::Ai {
                    agent_id,
                    agent_name,
                } = open.handler
                {
                    return Err(Rejection::AiActive {
                        agent_id,
                        agent_name,
                    });
                }
            }
            Author::Ai(agent) => {
                require_ai(&open, agent)?;
                open.reply_pending_since = None;
                // A reply after a reported miss is the apology for it; any other is an answer.
                if std::mem::take(&mut open.signals.miss_pending) {
                } else {
                    open.signals.ai_misses_in_a_row = 0;
                }
            }
            Author::System(_) => {
                return Err(Rejection::ForeignEvent {
                    event_type: "message_posted by the system",
                })
            }
        },
        ConversationEvent::HandedOffToAi {
            agent_id,
            agent_name,
            by_human,
            ..
        } => {
            if let Handler::Ai {
                agent_id: active, ..
            } = &open.handler
            {
                if active == agent_id {
                    return Err(Rejection::AlreadyHandledBy {
                        agent_id: agent_id.clone(),
                    });
                }
            }
            // Whether the policy allowed it is decide's question (the policy is configurable
            // and its verdict, or a supervisor's override, is in the log), not the fold's.
            open.epoch = Epoch(open.epoch.0 + 1);
            open.signals.ai_misses_in_a_row = 0;
            open.signals.miss_pending = false;
            open.approvals.clear();
            open.ai_agents.push(agent_id.clone());
            open.handed_off_by = Some(by_human.clone());
            open.reply_pending_since = None;
            open.handler = Handler::Ai {
                agent_id: agent_id.clone(),
                agent_name: agent_name.clone(),
            };
        }
        ConversationEvent::AiActionRecorded { agent_id, skill } => {
            let started = open
                .skills_started
                .iter()
                .position(|(_, agent, name)| agent == agent_id && *name == skill.name);
            match started {
                Some(i) => {
                    open.skills_started.remove(i);
                }
                None => require_ai(&open, agent_id)?,
            }
        }
        ConversationEvent::AiSkillStarted { agent_id, name, .. } => {
            require_ai(&open, agent_id)?;
            open.skills_started
                .push((open.epoch, agent_id.clone(), name.clone()));
        }
        ConversationEvent::Reclaimed {
            agent_id, by_human, ..
        } => {
            require_active_ai(&open, agent_id)?;
            open.human = Some(by_human.clone());
            open.reply_pending_since = None;
            open.approvals.clear();
            open.handler = Handler::Reclaimed {
                by: by_human.clone(),
            };
        }
        ConversationEvent::EscalatedToHuman { agent_id, .. } => {
            require_active_ai(&open, agent_id)?;
            let_go(&mut open, at);
        }
        ConversationEvent::EscalatedByRule {
            agent_id, at: when, ..
        } => {
            require_active_ai(&open, agent_id)?;
            let_go(&mut open, Some(*when));
        }
        ConversationEvent::AiCouldNotAnswer { agent_id, .. } => {
            require_ai(&open, agent_id)?;
            open.signals.ai_misses_in_a_row = open.signals.ai_misses_in_a_row.saturating_add(1);
            open.signals.miss_pending = true;
        }
        ConversationEvent::PolicyOverridden { .. } => {}
        ConversationEvent::SkillApprovalRequested {
            agent_id,
            name,
            rule,
            policy_version,
            deadline_ms,
            at: since,
            ..
        } => {
            require_ai(&open, agent_id)?;
            if open.skills_started.len() + open.approvals.len() >= crate::limits::SKILLS_STARTED_MAX
            {
                return Err(Rejection::TooManySkillsStarted {
                    max: crate::limits::SKILLS_STARTED_MAX,
                });
            }
            open.approvals.push(PendingApproval {
                epoch: open.epoch,
                agent_id: agent_id.clone(),
                name: name.clone(),
                since: *since,
                deadline_ms: *deadline_ms,
                rule: rule.clone(),
                policy_version: policy_version.clone(),
            });
        }
        ConversationEvent::SkillApproved {
            agent_id, name, by, ..
        } => {
            decides_approvals(by)?;
            let pending = take_approval(&mut open, agent_id, name)?;
            open.skills_started
                .push((pending.epoch, pending.agent_id, pending.name));
        }
        ConversationEvent::SkillDenied {
            agent_id, name, by, ..
        } => {
            decides_approvals(by)?;
            take_approval(&mut open, agent_id, name)?;
        }
        ConversationEvent::ContextShared { by, context, .. } => {
            if matches!(by, Author::Customer(_) | Author::System(_)) {
                return Err(Rejection::ForeignEvent {
                    event_type: "context_shared by the customer or the system",
                });
            }
            if let Some(topic) = context.topic() {
                open.signals.topic = Some(topic.clone());
            }
        }
        ConversationEvent::Closed { by, .. } => {
            match by {
                Author::Customer(customer) if *customer != open.customer => {
                    return Err(Rejection::NotTheCustomer {
                        customer: open.customer,
                    })
                }
                Author::Ai(agent) => require_ai(&open, agent)?,
                _ => {}
            }
            open.approvals.clear();
            return Ok(Conversation::Closed(open));
        }
        ConversationEvent::AwaitingHuman { team, cause, since } => {
            not_ai(&open)?;
            open.sla_warned = false;
            open.sla_breached = false;
            open.handler = Handler::AwaitingHuman {
                team: team.clone(),
                since: *since,
                cause: *cause,
            };
        }
        ConversationEvent::HumanAssigned { human_id, name, .. } => {
            not_ai(&open)?;
            open.human = Some(human_id.clone());
            open.handler = Handler::Assigned {
                human: human_id.clone(),
                name: name.clone(),
            };
        }
        ConversationEvent::Transferred { to, .. } => {
            not_ai(&open)?;
            if let TransferTarget::Team(team) = to {
                open.team = Some(team.clone());
            }
        }
        ConversationEvent::SlaWarning { .. } | ConversationEvent::SlaBreached { .. } => {
            if !matches!(open.handler, Handler::AwaitingHuman { .. }) {
                return Err(Rejection::NotAwaitingHuman);
            }
            let recorded = if matches!(event, ConversationEvent::SlaWarning { .. }) {
                &mut open.sla_warned
            } else {
                &mut open.sla_breached
            };
            if *recorded {
                return Err(Rejection::ForeignEvent {
                    event_type: "a second SLA event for the same wait",
                });
            }
            *recorded = true;
        }
        ConversationEvent::AiReplyOverdue { agent_id, .. } => {
            require_active_ai(&open, agent_id)?;
            open.reply_pending_since = None;
        }
        ConversationEvent::CustomerNotice { .. } => {}
        ConversationEvent::InternalNote { to, by, .. } => {
            if matches!(by, Author::Customer(_)) {
                return Err(Rejection::ForeignEvent {
                    event_type: "internal_note by the customer",
                });
            }
            if *to == NoteAudience::Ai && !matches!(open.handler, Handler::Ai { .. }) {
                return Err(Rejection::NotAiActive);
            }
        }
        ConversationEvent::FlagRaised { by, .. } => {
            if let Author::Ai(agent) = by {
                require_ai(&open, agent)?;
            }
            if open.flagged {
                return Err(Rejection::FlagAlreadyRaised);
            }
            open.flagged = true;
        }
        ConversationEvent::FlagLowered { .. } => {
            if !open.flagged {
                return Err(Rejection::FlagNotRaised);
            }
            open.flagged = false;
        }
    }
    Ok(Conversation::Open(open))
}

/// An AI agent let go of the conversation (`at`: when, if known).
fn let_go(open: &mut OpenConversation, at: Option<Timestamp>) {
    open.reply_pending_since = None;
    open.handler = Handler::Human;
    open.approvals.clear();
    if at.is_some() {
        open.signals.last_escalation_at = at;
    }
}

/// Counts a customer's message in the signals the message rules read.
fn note_customer_message(
    open: &mut OpenConversation,
    text: &MessageText,
    concerns: &[Concern],
    at: Option<Timestamp>,
    reading: Option<Reading>,
) {
    let signals = &mut open.signals;
    signals.customer_messages = signals.customer_messages.saturating_add(1);
    let message = signals.customer_messages;
    for concern in concerns {
        match signals.concerns.iter_mut().find(|m| m.concern == *concern) {
            Some(mark) => {
                mark.at = at;
                mark.message = message;
            }
            None => signals.concerns.push(ConcernMark {
                concern: *concern,
                at,
                message,
            }),
        }
    }
    if signals.recent.len() == RECENT_MESSAGES_MAX {
        signals.recent.pop_front();
    }
    // One reading serves the fingerprint and the lexicon's score.
    let reading = reading.unwrap_or_else(|| Reading::of(text.as_str()));
    let lexicon_frustration = reading.frustration().to_bits();
    signals.recent.push_back(RecentMessage {
        text: text.clone(),
        words: reading.into_words(),
        epoch: open.epoch,
        lexicon_frustration,
    });
}

/// Removes the oldest request of `skill` by `agent` waiting for approval (a decision on
/// another agent's request, or on none, is forged).
fn take_approval(
    open: &mut OpenConversation,
    agent: &AiAgentId,
    skill: &SkillName,
) -> Result<PendingApproval, Rejection> {
    let index = open
        .approvals
        .iter()
        .position(|pending| pending.name == *skill && pending.agent_id == *agent)
        .ok_or_else(|| Rejection::NoApprovalPending {
            skill: skill.clone(),
        })?;
    Ok(open.approvals.remove(index))
}

/// Only a person (or the clock, when nobody decided in time) approves or denies a skill:
/// never the customer, nor the AI agent that asked.
fn decides_approvals(by: &Author) -> Result<(), Rejection> {
    match by {
        Author::Human(_) | Author::System(SystemActor::Clock) => Ok(()),
        _ => Err(Rejection::ForeignEvent {
            event_type: "a skill approved or denied by the customer, an AI agent or the system",
        }),
    }
}

/// The event gives the conversation to humans: no AI agent may hold it at that moment.
fn not_ai(open: &OpenConversation) -> Result<(), Rejection> {
    match &open.handler {
        Handler::Ai {
            agent_id,
            agent_name,
        } => Err(Rejection::AiActive {
            agent_id: agent_id.clone(),
            agent_name: agent_name.clone(),
        }),
        _ => Ok(()),
    }
}

/// The event claims an AI agent acted: it must be the active one.
fn require_ai(open: &OpenConversation, agent: &AiAgentId) -> Result<(), Rejection> {
    match &open.handler {
        Handler::Ai { agent_id, .. } if agent_id == agent => Ok(()),
        _ => Err(Rejection::NotAssigned {
            agent_id: agent.clone(),
        }),
    }
}

/// The event ends an AI assignment: the conversation must be AI-active with that agent.
fn require_active_ai(open: &OpenConversation, agent: &AiAgentId) -> Result<(), Rejection> {
    match &open.handler {
        Handler::Ai { agent_id, .. } if agent_id == agent => Ok(()),
        Handler::Ai { agent_id, .. } => Err(Rejection::NotAssigned {
            agent_id: agent_id.clone(),
        }),
        _ => Err(Rejection::NotAiActive),
    }
}

/// Folds a conversation's events from the start.
pub fn fold<'a>(
    events: impl IntoIterator<Item = &'a ConversationEvent>,
) -> Result<Conversation, Rejection> {
    events.into_iter().try_fold(Conversation::NotOpened, evolve)
}

/// Applies a stored [`Event`] to a conversation: conversation events fold, any other kind is a
/// [`Rejection::ForeignEvent`].
pub fn evolve_stored(state: Conversation, event: &Event) -> Result<Conversation, Rejection> {
    evolve_stored_at(state, event, None)
}

/// [`evolve_stored`] with the time the event was recorded at (see [`evolve_at`]).
pub fn evolve_stored_at(
    state: Conversation,
    event: &Event,
    at: Option<Timestamp>,
) -> Result<Conversation, Rejection> {
    match event {
        Event::Conversation(event) => evolve_at(state, event, at),
        other => Err(Rejection::ForeignEvent {
            event_type: other.type_name(),
        }),
    }
}
