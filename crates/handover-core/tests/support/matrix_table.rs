//! The conversation command matrix: every conversation command, in every state, from every
//! caller, with the outcome each cell must have, written out by hand.
//!
//! Shared by `crates/handover-core/tests/matrix.rs` (the pure `decide`) and
//! `crates/handover/tests/bad_input.rs` (the real runtime over a sled directory), so both check
//! the same table.
//!
//! The world of every cell (all in tenant `default` unless said otherwise, all at time zero):
//!
//! - AI agents: `faq` ("FAQ Bot") and `sales` ("Sales Bot") registered and active, `idle`
//!   ("Idle Bot") registered and inactive, `ghost` never registered;
//! - humans ([`directory_humans`]): `ana` ("Ana", an agent of team billing), `carl` ("Carl",
//!   an agent of team billing), `bob` ("Bob", a supervisor), all available; `zoe` ("Zoe", an
//!   agent of tenant `acme`), available; `olga` ("Olga", an agent of team billing), offline;
//!   `nobody` never registered;
//! - the conversation's customer is `cust-1`, on `web-chat`;
//! - the escalation policy is the default one (`Rules::default_rules`): its rules' decisions
//!   (an escalation, an approval asked for, a refusal, an override) record its version. No
//!   state of the table has a skill waiting for approval, a concern, or an escalation within
//!   the loop guard's cooldown: `tests/escalation_rules.rs` drives those.
//!
//! The callers (the columns):
//!
//! - **customer**: `cust-1`, the conversation's customer;
//! - **assigned AI**: `faq` under epoch 1, the assignment the AI-active conversation holds
//!   (before the handoff it names an assignment that never existed, after the reclaim or the
//!   close one that has ended);
//! - **other AI**: `sales` under epoch 1, an active agent that never held the conversation;
//! - **agent (assigned)**: `ana`, the agent the conversation is opened for and who hands it off;
//! - **agent (not assigned)**: `carl`, an agent of the same tenant and team who never had it;
//! - **supervisor**: `bob`;
//! - **other tenant**: `zoe`, a human of tenant `acme`;
//! - **offline human**: `olga`;
//! - **unregistered**: `nobody`, a human id the directory does not hold;
//! - **other customer**: `cust-2`, someone who is not the conversation's customer;
//! - **system**: the runtime (the router for `Assign`, the backend for `Requeue`, the clock for
//!   `Tick`).
//!
//! Some commands name their caller by type (a reclaim names a human, a skill names an AI
//! assignment, a tick names nobody): their cells for other callers cannot be written at all,
//! and the table says so ([`Expect::Unrepresentable`]).

// Each including test uses its own part of this table.
#![allow(dead_code)]

use handover_core::context::Context;
use handover_core::rules::{PolicyVersion, RuleName, RuleVerdict, Rules};
use handover_core::{
    AgentName, AiAgentCommand, AiAgentEvent, AiAgentId, Assignment, Author, Channel, Concern,
    ConversationCommand, ConversationEvent, CustomerId, Epoch, EscalationCause, HumanId, Language,
    MessageText, NoteAudience, NoticeKind, Participant, Presence, Reason, Rejection, Role, Skill,
    SkillData, SkillName, SkillOutcome, Specialty, Status, SystemActor, TeamId, TenantId,
    Timestamp, TransferTarget, WaitCause, SPECIALTIES_COUNT_MAX,
};

pub(crate) const CUSTOMER: &str = "cust-1";
pub(crate) const OTHER_CUSTOMER: &str = "cust-2";
pub(crate) const HUMAN: &str = "ana";
pub(crate) const OTHER_AGENT: &str = "carl";
pub(crate) const SUPERVISOR: &str = "bob";
pub(crate) const STRANGER: &str = "zoe";
pub(crate) const OFFLINE: &str = "olga";
pub(crate) const UNREGISTERED: &str = "nobody";
pub(crate) const OTHER_TENANT: &str = "acme";
pub(crate) const TEAM: &str = "billing";
pub(crate) const CHANNEL: &str = "web-chat";
/// The customer's language in `Start`: notices are written in Portuguese.
pub(crate) const LANGUAGE: &str = "pt-BR";
pub(crate) const ASSIGNED_AI: &str = "faq";
pub(crate) const ASSIGNED_AI_NAME: &str = "FAQ Bot";
pub(crate) const OTHER_AI: &str = "sales";
pub(crate) const OTHER_AI_NAME: &str = "Sales Bot";
pub(crate) const INACTIVE_AI: &str = "idle";
pub(crate) const INACTIVE_AI_NAME: &str = "Idle Bot";
pub(crate) const UNKNOWN_AI: &str = "ghost";

/// A question the default policy raises no concern about.
pub(crate) const QUESTION: &str = "What are your business hours?";
/// A request for a human the default policy recognises (and nothing else).
pub(crate) const ASKS_FOR_HUMAN: &str = "Can I talk to a human?";
pub(crate) const HANDOFF_REASON: &str = "a simple question";
pub(crate) const RECLAIM_REASON: &str = "the customer is a VIP";
pub(crate) const ESCALATE_REASON: &str = "cannot answer this";
pub(crate) const CLOSE_REASON: &str = "resolved";
pub(crate) const TRANSFER_REASON: &str = "a billing question";
pub(crate) const NOTE: &str = "the customer is a VIP";
/// The reason the rules give the escalation a customer's request for a human causes.
pub(crate) const CUSTOMER_ASKED_REASON: &str = "the customer asked for a human";
/// The default policy's rule that escalates a request for a person.
pub(crate) const ASKED_FOR_A_PERSON_RULE: &str = "asked-for-a-person";
/// An embedder's rule (a refusal of a handoff, a verdict on a message) and its reason.
pub(crate) const EMBEDDER_RULE: &str = "business-hours";
pub(crate) const EMBEDDER_REASON: &str = "AI agents are off at night";
pub(crate) const MISS_REASON: &str = "no article about it";
/// A skill the default policy gates (`refunds-need-approval`).
pub(crate) const GATED_SKILL: &str = "refund";
pub(crate) const DENY_REASON: &str = "refunds over the counter only";
pub(crate) const CONTEXT_SUMMARY: &str = "asked about the pro plan";
pub(crate) const CONTEXT_TOPIC: &str = "pricing";

// ---------------------------------------------------------------------------------------------
// The axes.
// ---------------------------------------------------------------------------------------------

/// The state a conversation is in before the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum State {
    /// Never opened.
    Unknown,
    /// Opened by `cust-1` on web chat without a human: waiting in the general queue.
    Awaiting,
    /// Opened by `cust-1` on web chat, assigned to `ana`.
    Assigned,
    /// Then handed off by `ana` to `faq` (epoch 1).
    AiActive,
    /// Then reclaimed by `ana`.
    Reclaimed,
    /// Opened assigned to `ana`, who raised "needs help".
    Flagged,
    /// Opened, handed off to `faq`, then closed by the customer.
    Closed,
}

pub(crate) const STATES: [State; 7] = [
    State::Unknown,
    State::Awaiting,
    State::Assigned,
    State::AiActive,
    State::Reclaimed,
    State::Flagged,
    State::Closed,
];

impl State {
    pub(crate) fn label(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Awaiting => "awaiting-human",
            State::Assigned => "assigned",
            State::AiActive => "ai-active",
            State::Reclaimed => "reclaimed",
            State::Flagged => "flagged",
            State::Closed => "closed",
        }
    }

    /// The commands that bring a new conversation to this state, in order.
    pub(crate) fn setup(self) -> Vec<ConversationCommand> {
        let open = |human: Option<HumanId>| ConversationCommand::Open {
            customer: customer(CUSTOMER),
            channel: channel(),
            human,
        };
        let hand_off = ConversationCommand::HandOffToAi {
            by: human(),
            agent_id: ai(ASSIGNED_AI),
            reason: None,
        };
        match self {
            State::Unknown => vec![],
            State::Awaiting => vec![open(None)],
            State::Assigned => vec![open(Some(human()))],
            State::AiActive => vec![open(Some(human())), hand_off],
            State::Reclaimed => vec![
                open(Some(human())),
                hand_off,
                ConversationCommand::Reclaim {
                    by: human(),
                    reason: None,
                },
            ],
            State::Flagged => vec![
                open(Some(human())),
                ConversationCommand::RaiseFlag {
                    by: Participant::Human(human()),
                },
            ],
            State::Closed => vec![
                open(Some(human())),
                hand_off,
                ConversationCommand::Close {
                    by: Participant::Customer(customer(CUSTOMER)),
                    reason: None,
                },
            ],
        }
    }

    /// The status the setup must lead to.
    pub(crate) fn status(self) -> Status {
        let assigned = Status::Assigned {
            human: human(),
            name: human_name(HUMAN),
        };
        match self {
            State::Unknown => Status::NotOpened,
            State::Awaiting => Status::AwaitingHuman {
                team: None,
                since: Timestamp::default(),
                cause: WaitCause::Opened,
            },
            State::Assigned | State::Flagged => assigned,
            State::AiActive => Status::AiActive {
                agent_id: ai(ASSIGNED_AI),
                agent_name: name(ASSIGNED_AI_NAME),
                epoch: Epoch(1),
            },
            State::Reclaimed => Status::Reclaimed { by: human() },
            State::Closed => Status::Closed,
        }
    }

    /// A command that must be accepted in this state, if any: after a rejection it shows the
    /// conversation still works.
    pub(crate) fn next_valid(self) -> Option<ConversationCommand> {
        match self {
            State::Unknown => Some(ConversationCommand::Open {
                customer: customer(CUSTOMER),
                channel: channel(),
                human: None,
            }),
            State::Closed => None,
            _ => Some(ConversationCommand::PostMessage {
                by: Participant::Customer(customer(CUSTOMER)),
                text: text("Thanks!"),
            }),
        }
    }
}

/// Who sends the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Caller {
    Customer,
    AssignedAi,
    OtherAi,
    /// `ana`, the assigned agent.
    Human,
    /// `carl`, an agent who never had the conversation.
    OtherAgent,
    /// `bob`.
    Supervisor,
    /// `zoe`, of another tenant.
    Stranger,
    /// `olga`, offline.
    OfflineHuman,
    /// `nobody`, not registered.
    Unregistered,
    OtherCustomer,
    /// The runtime: router, backend, clock.
    System,
}

pub(crate) const CALLERS: [Caller; 11] = [
    Caller::Customer,
    Caller::AssignedAi,
    Caller::OtherAi,
    Caller::Human,
    Caller::OtherAgent,
    Caller::Supervisor,
    Caller::Stranger,
    Caller::OfflineHuman,
    Caller::Unregistered,
    Caller::OtherCustomer,
    Caller::System,
];

impl Caller {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Caller::Customer => "customer",
            Caller::AssignedAi => "assigned AI",
            Caller::OtherAi => "other AI",
            Caller::Human => "agent (assigned)",
            Caller::OtherAgent => "agent (not assigned)",
            Caller::Supervisor => "supervisor",
            Caller::Stranger => "other tenant",
            Caller::OfflineHuman => "offline human",
            Caller::Unregistered => "unregistered",
            Caller::OtherCustomer => "other customer",
            Caller::System => "system",
        }
    }

    /// The caller's human id, for the human callers.
    pub(crate) fn human_id(self) -> Option<HumanId> {
        let id = match self {
            Caller::Human => HUMAN,
            Caller::OtherAgent => OTHER_AGENT,
            Caller::Supervisor => SUPERVISOR,
            Caller::Stranger => STRANGER,
            Caller::OfflineHuman => OFFLINE,
            Caller::Unregistered => UNREGISTERED,
            _ => return None,
        };
        Some(human_id(id))
    }

    fn participant(self) -> Participant {
        match self {
            Caller::Customer => Participant::Customer(customer(CUSTOMER)),
            Caller::OtherCustomer => Participant::Customer(customer(OTHER_CUSTOMER)),
            Caller::AssignedAi => Participant::Ai(assignment(ASSIGNED_AI)),
            Caller::OtherAi => Participant::Ai(assignment(OTHER_AI)),
            Caller::System => Participant::System(SystemActor::Router),
            human => Participant::Human(human.human_id().expect("a human caller")),
        }
    }

    fn ai_assignment(self) -> Option<Assignment> {
        match self {
            Caller::AssignedAi => Some(assignment(ASSIGNED_AI)),
            Caller::OtherAi => Some(assignment(OTHER_AI)),
            _ => None,
        }
    }

    fn customer_id(self) -> Option<CustomerId> {
        match self {
            Caller::Customer => Some(customer(CUSTOMER)),
            Caller::OtherCustomer => Some(customer(OTHER_CUSTOMER)),
            _ => None,
        }
    }
}

/// The commands (the rows): every `ConversationCommand` variant with valid arguments, some in
/// more than one form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Row {
    /// `Open` for the caller (customers open for themselves without a human, a human opens
    /// assigned to themselves).
    Open,
    /// `Start` in tenant `default`, team billing, language pt-BR, like `Open`.
    Start,
    /// `PostMessage` with an ordinary question.
    Post,
    /// `PostMessage` asking for a human.
    PostAsksForHuman,
    /// `HandOffToAi` to `faq`, with a reason.
    HandOff,
    /// `HandOffToAi` to `sales`.
    HandOffToOther,
    /// `HandOffToAi` to the inactive `idle`.
    HandOffToInactive,
    /// `HandOffToAi` to the unregistered `ghost`.
    HandOffToUnknown,
    /// `RecordAiAction` of a price lookup.
    RecordAiAction,
    /// `Reclaim`, with a reason.
    Reclaim,
    /// `Escalate` because the agent asks for it.
    Escalate,
    /// `Escalate` claiming the agent's deactivation.
    EscalateDeactivated,
    /// `Escalate` claiming the customer asked for a human (only the policy may).
    EscalateCustomerCause,
    /// `Close`, with a reason.
    Close,
    /// `Assign` to `carl`.
    Assign,
    /// `Accept`.
    Accept,
    /// `Transfer` to `carl`.
    TransferToHuman,
    /// `Transfer` to team billing's queue.
    TransferToTeam,
    /// `Requeue` the conversation of `ana` (who is still signed in).
    Requeue,
    /// `Whisper` a note for staff.
    WhisperStaff,
    /// `Whisper` guidance for the AI agent.
    WhisperAi,
    /// `RaiseFlag`.
    RaiseFlag,
    /// `LowerFlag`.
    LowerFlag,
    /// `Tick` at time zero: nothing is due.
    Tick,
    /// `HandOffToAiWith` to `sales`, with a context (summary, topic pricing, a variable).
    HandOffWithContext,
    /// `HandOffToAiWith` to `sales`, refused by the embedder's rule, without override.
    HandOffRefusedByEmbedder,
    /// `HandOffToAiWith` to `sales`, refused by the embedder's rule, with override (only a
    /// supervisor may).
    HandOffOverride,
    /// `ReportCouldNotAnswer`, with a reason.
    ReportCouldNotAnswer,
    /// `ApproveSkill` of the gated `refund` (no request waits in any state of the table).
    ApproveSkill,
    /// `DenySkill` of the gated `refund`.
    DenySkill,
    /// `EscalateWith` a context.
    EscalateWith,
    /// `PostMessageJudged`: an ordinary question the embedder's rule wants escalated as a
    /// complaint.
    PostJudged,
    /// `StartSkill` of `lookup_price`, which no rule gates.
    StartSkill,
    /// `StartSkill` of the gated `refund`: it waits for approval.
    StartGatedSkill,
    /// `RecordAiAction` of the gated `refund`, never approved.
    RecordGatedSkill,
}

pub(crate) const ROWS: [Row; 35] = [
    Row::Open,
    Row::Start,
    Row::Post,
    Row::PostAsksForHuman,
    Row::HandOff,
    Row::HandOffToOther,
    Row::HandOffToInactive,
    Row::HandOffToUnknown,
    Row::RecordAiAction,
    Row::Reclaim,
    Row::Escalate,
    Row::EscalateDeactivated,
    Row::EscalateCustomerCause,
    Row::Close,
    Row::Assign,
    Row::Accept,
    Row::TransferToHuman,
    Row::TransferToTeam,
    Row::Requeue,
    Row::WhisperStaff,
    Row::WhisperAi,
    Row::RaiseFlag,
    Row::LowerFlag,
    Row::Tick,
    Row::HandOffWithContext,
    Row::HandOffRefusedByEmbedder,
    Row::HandOffOverride,
    Row::ReportCouldNotAnswer,
    Row::ApproveSkill,
    Row::DenySkill,
    Row::EscalateWith,
    Row::PostJudged,
    Row::StartSkill,
    Row::StartGatedSkill,
    Row::RecordGatedSkill,
];

impl Row {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Row::Open => "open",
            Row::Start => "start (team, pt-BR)",
            Row::Post => "post",
            Row::PostAsksForHuman => "post (asks for a human)",
            Row::HandOff => "hand off to faq",
            Row::HandOffToOther => "hand off to sales",
            Row::HandOffToInactive => "hand off to idle (inactive)",
            Row::HandOffToUnknown => "hand off to ghost (unknown)",
            Row::RecordAiAction => "record AI action",
            Row::Reclaim => "reclaim",
            Row::Escalate => "escalate (agent)",
            Row::EscalateDeactivated => "escalate (deactivated)",
            Row::EscalateCustomerCause => "escalate (customer cause)",
            Row::Close => "close",
            Row::Assign => "assign to carl",
            Row::Accept => "accept",
            Row::TransferToHuman => "transfer to carl",
            Row::TransferToTeam => "transfer to team billing",
            Row::Requeue => "requeue ana's",
            Row::WhisperStaff => "whisper to staff",
            Row::WhisperAi => "whisper to the AI",
            Row::RaiseFlag => "raise flag",
            Row::LowerFlag => "lower flag",
            Row::Tick => "tick",
            Row::HandOffWithContext => "hand off to sales with context",
            Row::HandOffRefusedByEmbedder => "hand off (embedder refuses)",
            Row::HandOffOverride => "hand off (override)",
            Row::ReportCouldNotAnswer => "report could not answer",
            Row::ApproveSkill => "approve refund",
            Row::DenySkill => "deny refund",
            Row::EscalateWith => "escalate with context",
            Row::PostJudged => "post (judged by embedder)",
            Row::StartSkill => "start skill lookup_price",
            Row::StartGatedSkill => "start skill refund (gated)",
            Row::RecordGatedSkill => "record refund (not approved)",
        }
    }

    /// The command `caller` sends, or `None` when its type cannot name that caller.
    pub(crate) fn command(self, caller: Caller) -> Option<ConversationCommand> {
        let by_human = caller.human_id();
        let hand_off = |agent: &str| {
            by_human.clone().map(|by| ConversationCommand::HandOffToAi {
                by,
                agent_id: ai(agent),
                reason: Some(reason(HANDOFF_REASON)),
            })
        };
        let escalate = |cause| {
            caller
                .ai_assignment()
                .map(|by| ConversationCommand::Escalate {
                    by,
                    reason: reason(ESCALATE_REASON),
                    cause,
                })
        };
        let transfer = |to: TransferTarget| {
            by_human.clone().map(|by| ConversationCommand::Transfer {
                by,
                to,
                reason: reason(TRANSFER_REASON),
            })
        };
        let whisper = |to: NoteAudience| {
            by_human.clone().map(|by| ConversationCommand::Whisper {
                by,
                to,
                text: text(NOTE),
            })
        };
        let system = |command: ConversationCommand| (caller == Caller::System).then_some(command);
        match self {
            Row::Open => match (caller.customer_id(), &by_human) {
                (Some(customer), _) => Some(ConversationCommand::Open {
                    customer,
                    channel: channel(),
                    human: None,
                }),
                (None, Some(h)) => Some(ConversationCommand::Open {
                    customer: customer(CUSTOMER),
                    channel: channel(),
                    human: Some(h.clone()),
                }),
                (None, None) => None,
            },
            Row::Start => {
                let start = |customer, human| ConversationCommand::Start {
                    tenant: TenantId::default_tenant(),
                    customer,
                    channel: channel(),
                    team: Some(team()),
                    language: Some(language()),
                    human,
                };
                match (caller.customer_id(), &by_human) {
                    (Some(c), _) => Some(start(c, None)),
                    (None, Some(h)) => Some(start(customer(CUSTOMER), Some(h.clone()))),
                    (None, None) => None,
                }
            }
            Row::Post => Some(ConversationCommand::PostMessage {
                by: caller.participant(),
                text: text(QUESTION),
            }),
            Row::PostAsksForHuman => Some(ConversationCommand::PostMessage {
                by: caller.participant(),
                text: text(ASKS_FOR_HUMAN),
            }),
            Row::HandOff => hand_off(ASSIGNED_AI),
            Row::HandOffToOther => hand_off(OTHER_AI),
            Row::HandOffToInactive => hand_off(INACTIVE_AI),
            Row::HandOffToUnknown => hand_off(UNKNOWN_AI),
            Row::RecordAiAction => {
                caller
                    .ai_assignment()
                    .map(|by| ConversationCommand::RecordAiAction {
                        by,
                        skill: price_lookup(),
                    })
            }
            Row::Reclaim => by_human.map(|by| ConversationCommand::Reclaim {
                by,
                reason: Some(reason(RECLAIM_REASON)),
            }),
            Row::Escalate => escalate(EscalationCause::AgentRequested),
            Row::EscalateDeactivated => escalate(EscalationCause::AgentDeactivated),
            Row::EscalateCustomerCause => escalate(EscalationCause::CustomerAskedForHuman),
            Row::Close => Some(ConversationCommand::Close {
                by: caller.participant(),
                reason: Some(reason(CLOSE_REASON)),
            }),
            Row::Assign => Some(ConversationCommand::Assign {
                by: caller.participant(),
                to: human_id(OTHER_AGENT),
            }),
            Row::Accept => by_human.map(|by| ConversationCommand::Accept { by }),
            Row::TransferToHuman => transfer(TransferTarget::Human(human_id(OTHER_AGENT))),
            Row::TransferToTeam => transfer(TransferTarget::Team(team())),
            Row::Requeue => system(ConversationCommand::Requeue { human: human() }),
            Row::WhisperStaff => whisper(NoteAudience::Staff),
            Row::WhisperAi => whisper(NoteAudience::Ai),
            Row::RaiseFlag => Some(ConversationCommand::RaiseFlag {
                by: caller.participant(),
            }),
            Row::LowerFlag => by_human.map(|by| ConversationCommand::LowerFlag { by }),
            Row::Tick => system(ConversationCommand::Tick),
            Row::HandOffWithContext | Row::HandOffRefusedByEmbedder | Row::HandOffOverride => {
                by_human.map(|by| ConversationCommand::HandOffToAiWith {
                    by,
                    agent_id: ai(OTHER_AI),
                    reason: Some(reason(HANDOFF_REASON)),
                    context: (self == Row::HandOffWithContext).then(context),
                    override_policy: self == Row::HandOffOverride,
                    refused_by: (self != Row::HandOffWithContext).then(embedder_verdict),
                })
            }
            Row::ReportCouldNotAnswer => {
                caller
                    .ai_assignment()
                    .map(|by| ConversationCommand::ReportCouldNotAnswer {
                        by,
                        reason: Some(reason(MISS_REASON)),
                    })
            }
            Row::ApproveSkill => by_human.map(|by| ConversationCommand::ApproveSkill {
                by,
                skill: SkillName::new(GATED_SKILL).unwrap(),
            }),
            Row::DenySkill => by_human.map(|by| ConversationCommand::DenySkill {
                by,
                skill: SkillName::new(GATED_SKILL).unwrap(),
                reason: reason(DENY_REASON),
            }),
            Row::EscalateWith => {
                caller
                    .ai_assignment()
                    .map(|by| ConversationCommand::EscalateWith {
                        by,
                        reason: reason(ESCALATE_REASON),
                        context: context(),
                    })
            }
            Row::StartSkill | Row::StartGatedSkill => {
                let skill = if self == Row::StartSkill {
                    price_lookup()
                } else {
                    refund()
                };
                caller
                    .ai_assignment()
                    .map(|by| ConversationCommand::StartSkill {
                        by,
                        name: skill.name,
                        input: skill.input,
                    })
            }
            Row::RecordGatedSkill => {
                caller
                    .ai_assignment()
                    .map(|by| ConversationCommand::RecordAiAction {
                        by,
                        skill: refund(),
                    })
            }
            Row::PostJudged => Some(ConversationCommand::PostMessageJudged {
                by: caller.participant(),
                text: text(QUESTION),
                cause: EscalationCause::Complaint,
                verdict: embedder_verdict(),
            }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The expected outcomes.
// ---------------------------------------------------------------------------------------------

/// What one cell must produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Accepted with exactly these events.
    Accepted(Vec<ConversationEvent>),
    /// Rejected for exactly this reason; nothing recorded.
    Rejected(Rejection),
    /// The command's type cannot name this caller.
    Unrepresentable,
}

impl Expect {
    pub(crate) fn label(&self) -> String {
        match self {
            Expect::Accepted(events) if events.is_empty() => "ok:nothing".to_owned(),
            Expect::Accepted(events) => format!(
                "ok:{}",
                events
                    .iter()
                    .map(|e| e.type_name())
                    .collect::<Vec<_>>()
                    .join("+")
            ),
            Expect::Rejected(rejection) => format!("{rejection:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap_or_default()
                .to_owned(),
            Expect::Unrepresentable => "-".to_owned(),
        }
    }
}

/// One line of the table: a command in a state, and what each caller gets, in the order of
/// [`CALLERS`]: customer, assigned AI, other AI, agent (assigned), agent (not assigned),
/// supervisor, other tenant, offline human, unregistered, other customer, system.
pub(crate) struct Line {
    pub(crate) row: Row,
    pub(crate) state: State,
    pub(crate) cells: [Expect; 11],
}

/// The table: every (row, state) pair once, each cell written out below.
pub(crate) fn table() -> Vec<Line> {
    ROWS.iter()
        .flat_map(|&row| {
            STATES.iter().map(move |&state| Line {
                row,
                state,
                cells: cells(row, state),
            })
        })
        .collect()
}

use Expect::Unrepresentable as NA;

/// The cells of the other-tenant, offline and unregistered humans, the same for every command a
/// human sends about a conversation: identity first (`nobody` is unknown), then the tenant wall
/// (for `zoe` the conversation does not exist, open or closed), then presence (`olga` may not
/// act; before the open there is nothing to act on).
fn wall(state: State) -> [Expect; 3] {
    let offline = if state == State::Unknown {
        Rejection::NotOpened
    } else {
        Rejection::HumanOffline {
            human_id: human_id(OFFLINE),
        }
    };
    [
        no(Rejection::NotOpened),
        no(offline),
        no(unknown_human(UNREGISTERED)),
    ]
}

/// A command only humans send: `ana`, `carl`, `bob`, then the [`wall`].
fn humans(state: State, [ana, carl, bob]: [Expect; 3]) -> [Expect; 11] {
    let [zoe, olga, nobody] = wall(state);
    [NA, NA, NA, ana, carl, bob, zoe, olga, nobody, NA, NA]
}

/// A command only AI assignments send.
fn ais([assigned, other]: [Expect; 2]) -> [Expect; 11] {
    [NA, assigned, other, NA, NA, NA, NA, NA, NA, NA, NA]
}

/// A command only the system sends.
fn system(expect: Expect) -> [Expect; 11] {
    [NA, NA, NA, NA, NA, NA, NA, NA, NA, NA, expect]
}

/// A command anyone sends.
fn everyone(
    state: State,
    customer: Expect,
    [assigned, other]: [Expect; 2],
    [ana, carl, bob]: [Expect; 3],
    other_customer: Expect,
    system: Expect,
) -> [Expect; 11] {
    let [zoe, olga, nobody] = wall(state);
    [
        customer,
        assigned,
        other,
        ana,
        carl,
        bob,
        zoe,
        olga,
        nobody,
        other_customer,
        system,
    ]
}

/// The two AI callers of a command an AI assignment may send: the assigned one gets
/// `accepted` while it holds the conversation, the other one is never assigned.
fn ai_pair(state: State, accepted: Expect) -> [Expect; 2] {
    use State::*;
    match state {
        Unknown => [no(Rejection::NotOpened), no(Rejection::NotOpened)],
        Awaiting | Assigned | Flagged => {
            [no(not_assigned(ASSIGNED_AI)), no(not_assigned(OTHER_AI))]
        }
        AiActive => [accepted, no(not_assigned(OTHER_AI))],
        Reclaimed => [no(assignment_ended()), no(not_assigned(OTHER_AI))],
        Closed => [no(Rejection::Closed), no(Rejection::Closed)],
    }
}

fn three(expect: Expect) -> [Expect; 3] {
    [expect.clone(), expect.clone(), expect]
}

/// What each caller gets for `row` in `state`.
fn cells(row: Row, state: State) -> [Expect; 11] {
    use Row::*;
    use State::*;
    let not_opened = || no(Rejection::NotOpened);
    let closed_ = || no(Rejection::Closed);
    let nay = |h: &str| {
        no(Rejection::NotAssignedToYou {
            human_id: human_id(h),
        })
    };
    let nas = |h: &str| {
        no(Rejection::NotASupervisor {
            human_id: human_id(h),
        })
    };
    let not_allowed = |participant: &'static str, action: &'static str| {
        no(Rejection::ParticipantNotAllowed {
            participant,
            action,
        })
    };
    match row {
        // --- open and start: a customer opens for themselves, a human for themselves ----------
        Open | Start => {
            let start = row == Start;
            match state {
                Unknown => [
                    okv(open_waiting(CUSTOMER, start)),
                    NA,
                    NA,
                    okv(open_assigned(HUMAN, start)),
                    okv(open_assigned(OTHER_AGENT, start)),
                    okv(open_assigned(SUPERVISOR, start)),
                    // A human of another tenant is as unknown as one never registered.
                    no(unknown_human(STRANGER)),
                    no(Rejection::HumanOffline {
                        human_id: human_id(OFFLINE),
                    }),
                    no(unknown_human(UNREGISTERED)),
                    okv(open_waiting(OTHER_CUSTOMER, start)),
                    NA,
                ],
                // A closed conversation refuses everything as closed, even a second open.
                Closed => openers(no(Rejection::Closed)),
                _ => openers(no(Rejection::AlreadyOpened)),
            }
        }
        // --- post ------------------------------------------------------------------------------
        Post | PostAsksForHuman => {
            let (message, concerns): (&str, &[Concern]) = if row == Post {
                (QUESTION, &[])
            } else {
                (ASKS_FOR_HUMAN, &[Concern::HumanRequested])
            };
            let by_customer = match (state, row) {
                // The customer's wish wins over the AI in the same append.
                // The default policy's `asked-for-a-person` rule records its decision.
                (AiActive, PostAsksForHuman) => {
                    okv(std::iter::once(customer_posted(message, concerns))
                        .chain(rule_escalation(
                            CUSTOMER_ASKED_REASON,
                            EscalationCause::CustomerAskedForHuman,
                            ASKED_FOR_A_PERSON_RULE,
                        ))
                        .collect())
                }
                _ => ok([customer_posted(message, concerns)]),
            };
            let staff = |h: &str| ok([human_posted(h, message)]);
            let ais = ai_pair(state, ok([ai_posted(message)]));
            let system = not_allowed("system", "post_message");
            match state {
                Unknown => everyone(
                    state,
                    not_opened(),
                    ais,
                    three(not_opened()),
                    not_opened(),
                    system,
                ),
                Awaiting => everyone(
                    state,
                    by_customer,
                    ais,
                    [nay(HUMAN), nay(OTHER_AGENT), staff(SUPERVISOR)],
                    no(not_the_customer()),
                    system,
                ),
                Assigned | Flagged | Reclaimed => everyone(
                    state,
                    by_customer,
                    ais,
                    [staff(HUMAN), nay(OTHER_AGENT), staff(SUPERVISOR)],
                    no(not_the_customer()),
                    system,
                ),
                // Nobody posts while AI-active: the one who handed off and the supervisor may
                // act on it, but must reclaim it first.
                AiActive => everyone(
                    state,
                    by_customer,
                    ais,
                    [no(ai_active()), nay(OTHER_AGENT), no(ai_active())],
                    no(not_the_customer()),
                    system,
                ),
                Closed => everyone(state, closed_(), ais, three(closed_()), closed_(), system),
            }
        }
        // --- hand off --------------------------------------------------------------------------
        HandOff | HandOffToOther | HandOffToInactive | HandOffToUnknown => {
            let outcome = |by: &str| match row {
                HandOff if state == AiActive => no(Rejection::AlreadyHandledBy {
                    agent_id: ai(ASSIGNED_AI),
                }),
                HandOff => okv(handed_off(ASSIGNED_AI, ASSIGNED_AI_NAME, by)),
                HandOffToOther => okv(handed_off(OTHER_AI, OTHER_AI_NAME, by)),
                HandOffToInactive => no(inactive()),
                _ => no(unknown_agent()),
            };
            humans(
                state,
                match state {
                    Unknown => three(not_opened()),
                    Awaiting => [nay(HUMAN), nay(OTHER_AGENT), outcome(SUPERVISOR)],
                    Closed => three(closed_()),
                    _ => [outcome(HUMAN), nay(OTHER_AGENT), outcome(SUPERVISOR)],
                },
            )
        }
        // --- AI-only commands ------------------------------------------------------------------
        RecordAiAction => ais(ai_pair(state, ok([skill_recorded()]))),
        Escalate => ais(ai_pair(
            state,
            okv(escalation(ESCALATE_REASON, EscalationCause::AgentRequested)),
        )),
        // The runtime sends this command itself when it deactivates an agent; the rules cannot
        // tell it from the agent's own, so the assigned agent may claim this cause too.
        EscalateDeactivated => ais(ai_pair(
            state,
            okv(escalation(
                ESCALATE_REASON,
                EscalationCause::AgentDeactivated,
            )),
        )),
        EscalateCustomerCause => ais(match state {
            Unknown => [not_opened(), not_opened()],
            Closed => [closed_(), closed_()],
            _ => [no(cause_not_allowed()), no(cause_not_allowed())],
        }),
        // --- reclaim ---------------------------------------------------------------------------
        Reclaim => humans(
            state,
            match state {
                Unknown => three(not_opened()),
                // The one who handed off and a supervisor may assume it at any time.
                AiActive => [
                    okv(reclaimed(HUMAN)),
                    nay(OTHER_AGENT),
                    okv(reclaimed(SUPERVISOR)),
                ],
                Closed => three(closed_()),
                _ => three(no(Rejection::NotAiActive)),
            },
        ),
        // --- close -----------------------------------------------------------------------------
        Close => {
            let staff = |h: &str| ok([closed(Author::Human(human_id(h)))]);
            let ais = ai_pair(state, ok([closed(Author::Ai(ai(ASSIGNED_AI)))]));
            let system = not_allowed("system", "close");
            let by_customer = ok([closed(Author::Customer(customer(CUSTOMER)))]);
            match state {
                Unknown => everyone(
                    state,
                    not_opened(),
                    ais,
                    three(not_opened()),
                    not_opened(),
                    system,
                ),
                Awaiting => everyone(
                    state,
                    by_customer,
                    ais,
                    [nay(HUMAN), nay(OTHER_AGENT), staff(SUPERVISOR)],
                    no(not_the_customer()),
                    system,
                ),
                // A human may close an AI-active conversation without reclaiming it.
                Assigned | Flagged | Reclaimed | AiActive => everyone(
                    state,
                    by_customer,
                    ais,
                    [staff(HUMAN), nay(OTHER_AGENT), staff(SUPERVISOR)],
                    no(not_the_customer()),
                    system,
                ),
                Closed => everyone(state, closed_(), ais, three(closed_()), closed_(), system),
            }
        }
        // --- assign ----------------------------------------------------------------------------
        Assign => {
            let customer = not_allowed("customer", "assign");
            let ai_ = not_allowed("AI agent", "assign");
            let by_bob = okv(assigned_to_carl(Author::Human(human_id(SUPERVISOR))));
            let (staff, router) = match state {
                Unknown => (three(not_opened()), not_opened()),
                Awaiting => (
                    [nas(HUMAN), nas(OTHER_AGENT), by_bob],
                    okv(assigned_to_carl(Author::System(SystemActor::Router))),
                ),
                // The router assigns only what waits; a supervisor reassigns at will.
                Assigned | Flagged | Reclaimed => (
                    [nas(HUMAN), nas(OTHER_AGENT), by_bob],
                    no(Rejection::NotAwaitingHuman),
                ),
                AiActive => (
                    [nas(HUMAN), nas(OTHER_AGENT), no(ai_active())],
                    no(ai_active()),
                ),
                Closed => (three(closed_()), closed_()),
            };
            everyone(
                state,
                customer.clone(),
                [ai_.clone(), ai_],
                staff,
                customer,
                router,
            )
        }
        // --- accept ----------------------------------------------------------------------------
        Accept => humans(
            state,
            match state {
                Unknown => three(not_opened()),
                // The general queue: any agent of the tenant, and a supervisor.
                Awaiting => [
                    okv(accepted(HUMAN)),
                    okv(accepted(OTHER_AGENT)),
                    okv(accepted(SUPERVISOR)),
                ],
                Closed => three(closed_()),
                _ => three(no(Rejection::NotAwaitingHuman)),
            },
        ),
        // --- transfer --------------------------------------------------------------------------
        TransferToHuman | TransferToTeam => {
            let outcome = |by: &str| {
                let by = Author::Human(human_id(by));
                okv(if row == TransferToHuman {
                    transferred_to_carl(by)
                } else {
                    transferred_to_team(by)
                })
            };
            humans(
                state,
                match state {
                    Unknown => three(not_opened()),
                    Awaiting => [nay(HUMAN), nay(OTHER_AGENT), outcome(SUPERVISOR)],
                    Assigned | Flagged | Reclaimed => {
                        [outcome(HUMAN), nay(OTHER_AGENT), outcome(SUPERVISOR)]
                    }
                    AiActive => three(no(ai_active())),
                    Closed => three(closed_()),
                },
            )
        }
        // --- requeue ---------------------------------------------------------------------------
        Requeue => system(match state {
            Unknown => not_opened(),
            Awaiting | AiActive => no(Rejection::NotHandledBy { human_id: human() }),
            Assigned | Flagged | Reclaimed => {
                no(Rejection::HumanStillSignedIn { human_id: human() })
            }
            Closed => closed_(),
        }),
        // --- whisper ---------------------------------------------------------------------------
        WhisperStaff | WhisperAi => {
            let to = if row == WhisperStaff {
                NoteAudience::Staff
            } else {
                NoteAudience::Ai
            };
            let outcome = |by: &str| {
                if to == NoteAudience::Ai && state != AiActive {
                    no(Rejection::NotAiActive)
                } else {
                    ok([note(to, by)])
                }
            };
            humans(
                state,
                match state {
                    Unknown => three(not_opened()),
                    Awaiting => [nay(HUMAN), nay(OTHER_AGENT), outcome(SUPERVISOR)],
                    Closed => three(closed_()),
                    _ => [outcome(HUMAN), nay(OTHER_AGENT), outcome(SUPERVISOR)],
                },
            )
        }
        // --- flags -----------------------------------------------------------------------------
        RaiseFlag => {
            let customer = not_allowed("customer", "raise_flag");
            let system = not_allowed("system", "raise_flag");
            let raised = |h: &str| ok([flag_raised(Author::Human(human_id(h)))]);
            let ais = ai_pair(state, ok([flag_raised(Author::Ai(ai(ASSIGNED_AI)))]));
            let staff = match state {
                Unknown => three(not_opened()),
                Awaiting => [nay(HUMAN), nay(OTHER_AGENT), raised(SUPERVISOR)],
                Assigned | AiActive | Reclaimed => {
                    [raised(HUMAN), nay(OTHER_AGENT), raised(SUPERVISOR)]
                }
                Flagged => [
                    no(Rejection::FlagAlreadyRaised),
                    nay(OTHER_AGENT),
                    no(Rejection::FlagAlreadyRaised),
                ],
                Closed => three(closed_()),
            };
            everyone(state, customer.clone(), ais, staff, customer, system)
        }
        LowerFlag => humans(
            state,
            match state {
                Unknown => three(not_opened()),
                Flagged => [
                    nas(HUMAN),
                    nas(OTHER_AGENT),
                    ok([ConversationEvent::FlagLowered {
                        by: Author::Human(human_id(SUPERVISOR)),
                        at: Timestamp::default(),
                    }]),
                ],
                Closed => three(closed_()),
                _ => [nas(HUMAN), nas(OTHER_AGENT), no(Rejection::FlagNotRaised)],
            },
        ),
        // --- tick ------------------------------------------------------------------------------
        Tick => system(match state {
            Unknown => not_opened(),
            Closed => closed_(),
            // At time zero nothing is due: accepted, nothing recorded.
            _ => ok([]),
        }),
        // --- hand off with a context, a refusal, an override -----------------------------------
        HandOffWithContext | HandOffRefusedByEmbedder | HandOffOverride => {
            let outcome = |by: &str| match row {
                // The default policy has no topic rule: the context is shared, then the handoff.
                HandOffWithContext => {
                    okv(std::iter::once(context_shared(Author::Human(human_id(by))))
                        .chain(handed_off(OTHER_AI, OTHER_AI_NAME, by))
                        .collect())
                }
                // The embedder's refusal refuses like a rule, under the default policy's version.
                HandOffRefusedByEmbedder => no(embedder_refusal()),
                // Only a supervisor overrides, and the override is recorded.
                _ if by == SUPERVISOR => okv(std::iter::once(policy_overridden(by))
                    .chain(handed_off(OTHER_AI, OTHER_AI_NAME, by))
                    .collect()),
                _ => nas(by),
            };
            humans(
                state,
                match state {
                    Unknown => three(not_opened()),
                    Awaiting => [nay(HUMAN), nay(OTHER_AGENT), outcome(SUPERVISOR)],
                    Closed => three(closed_()),
                    _ => [outcome(HUMAN), nay(OTHER_AGENT), outcome(SUPERVISOR)],
                },
            )
        }
        // --- the AI's miss and its escalation with a context -----------------------------------
        ReportCouldNotAnswer => ais(ai_pair(
            state,
            ok([ConversationEvent::AiCouldNotAnswer {
                agent_id: ai(ASSIGNED_AI),
                reason: Some(reason(MISS_REASON)),
                at: Timestamp::default(),
            }]),
        )),
        EscalateWith => ais(ai_pair(
            state,
            okv(std::iter::once(context_shared(Author::Ai(ai(ASSIGNED_AI))))
                .chain(escalation(ESCALATE_REASON, EscalationCause::AgentRequested))
                .collect()),
        )),
        // --- approvals: no request waits in any state of the table ------------------------------
        ApproveSkill | DenySkill => {
            let nothing_waits = || {
                no(Rejection::NoApprovalPending {
                    skill: SkillName::new(GATED_SKILL).unwrap(),
                })
            };
            humans(
                state,
                match state {
                    Unknown => three(not_opened()),
                    Awaiting => [nay(HUMAN), nay(OTHER_AGENT), nothing_waits()],
                    Closed => three(closed_()),
                    _ => [nothing_waits(), nay(OTHER_AGENT), nothing_waits()],
                },
            )
        }
        // --- skills: one runs at once, a gated one waits for a person -------------------------
        StartSkill => ais(ai_pair(
            state,
            ok([ConversationEvent::AiSkillStarted {
                agent_id: ai(ASSIGNED_AI),
                name: price_lookup().name,
                input: price_lookup().input,
            }]),
        )),
        StartGatedSkill => ais(ai_pair(
            state,
            ok([ConversationEvent::SkillApprovalRequested {
                agent_id: ai(ASSIGNED_AI),
                name: refund().name,
                input: refund().input,
                rule: RuleName::new("refunds-need-approval").unwrap(),
                policy_version: default_version(),
                deadline_ms: 10 * 60_000,
                at: Timestamp::default(),
            }]),
        )),
        RecordGatedSkill => ais(ai_pair(
            state,
            no(Rejection::SkillNeedsApproval {
                skill: refund().name,
            }),
        )),
        // --- a customer's message judged by the embedder's rule --------------------------------
        PostJudged => {
            // Only a customer's message is judged: everyone else is refused before the state
            // is read.
            let not_judged = |participant| not_allowed(participant, "post_message_judged");
            let ais = [not_judged("AI agent"), not_judged("AI agent")];
            let staff = three(not_judged("human"));
            let system = not_judged("system");
            let by_customer = match state {
                Unknown => not_opened(),
                Closed => closed_(),
                // No built-in rule fires on an ordinary question: the verdict is recorded.
                AiActive => okv(std::iter::once(customer_posted(QUESTION, &[]))
                    .chain(rule_escalation(
                        EMBEDDER_REASON,
                        EscalationCause::Complaint,
                        EMBEDDER_RULE,
                    ))
                    .collect()),
                _ => ok([customer_posted(QUESTION, &[])]),
            };
            let other_customer = match state {
                Unknown => not_opened(),
                Closed => closed_(),
                _ => no(not_the_customer()),
            };
            let [zoe, olga, nobody] = three(not_judged("human"));
            [
                by_customer,
                ais[0].clone(),
                ais[1].clone(),
                staff[0].clone(),
                staff[1].clone(),
                staff[2].clone(),
                zoe,
                olga,
                nobody,
                other_customer,
                system,
            ]
        }
    }
}

/// The cells of `Open` and `Start` when every caller who can send it gets `expect`.
fn openers(expect: Expect) -> [Expect; 11] {
    let e = || expect.clone();
    [e(), NA, NA, e(), e(), e(), e(), e(), e(), e(), NA]
}

// ---------------------------------------------------------------------------------------------
// Values.
// ---------------------------------------------------------------------------------------------

pub(crate) fn ai(id: &str) -> AiAgentId {
    AiAgentId::new(id).unwrap()
}

pub(crate) fn name(value: &str) -> AgentName {
    AgentName::new(value).unwrap()
}

pub(crate) fn customer(id: &str) -> CustomerId {
    CustomerId::new(id).unwrap()
}

/// `ana`, the assigned agent.
pub(crate) fn human() -> HumanId {
    human_id(HUMAN)
}

pub(crate) fn human_id(id: &str) -> HumanId {
    HumanId::new(id).unwrap()
}

pub(crate) fn human_name(id: &str) -> AgentName {
    let mut chars = id.chars();
    let first = chars.next().expect("a non-empty id").to_ascii_uppercase();
    name(&format!("{first}{}", chars.as_str()))
}

pub(crate) fn team() -> TeamId {
    TeamId::new(TEAM).unwrap()
}

pub(crate) fn language() -> Language {
    Language::new(LANGUAGE).unwrap()
}

pub(crate) fn channel() -> Channel {
    Channel::new(CHANNEL).unwrap()
}

pub(crate) fn text(value: &str) -> MessageText {
    MessageText::new(value).unwrap()
}

pub(crate) fn reason(value: &str) -> Reason {
    Reason::new(value).unwrap()
}

pub(crate) fn specialty(value: &str) -> Specialty {
    Specialty::new(value).unwrap()
}

/// The AI agents of every cell's world: (id, name, specialty, active).
pub(crate) fn roster_agents() -> [(&'static str, &'static str, &'static str, bool); 3] {
    [
        (ASSIGNED_AI, ASSIGNED_AI_NAME, "faq", true),
        (OTHER_AI, OTHER_AI_NAME, "pricing", true),
        (INACTIVE_AI, INACTIVE_AI_NAME, "faq", false),
    ]
}

/// A human of every cell's world.
pub(crate) struct WorldHuman {
    pub(crate) id: &'static str,
    pub(crate) tenant: &'static str,
    pub(crate) role: Role,
    pub(crate) teams: &'static [&'static str],
    pub(crate) capacity: u32,
    pub(crate) presence: Presence,
}

/// The humans of every cell's world, registered (named by [`human_name`]) and then given their
/// presence (offline is where a registration starts). `nobody` is not among them.
pub(crate) fn directory_humans() -> [WorldHuman; 5] {
    let human = |id, tenant, role, teams, presence| WorldHuman {
        id,
        tenant,
        role,
        teams,
        capacity: 5,
        presence,
    };
    [
        human(HUMAN, "default", Role::Agent, &[TEAM], Presence::Available),
        human(
            OTHER_AGENT,
            "default",
            Role::Agent,
            &[TEAM],
            Presence::Available,
        ),
        human(
            SUPERVISOR,
            "default",
            Role::Supervisor,
            &[],
            Presence::Available,
        ),
        human(
            STRANGER,
            OTHER_TENANT,
            Role::Agent,
            &[TEAM],
            Presence::Available,
        ),
        human(OFFLINE, "default", Role::Agent, &[TEAM], Presence::Offline),
    ]
}

/// `agent` under epoch 1.
pub(crate) fn assignment(agent: &str) -> Assignment {
    Assignment {
        agent_id: ai(agent),
        epoch: Epoch(1),
    }
}

/// A refund, which the default policy's `refunds-need-approval` gates.
pub(crate) fn refund() -> Skill {
    Skill {
        name: SkillName::new(GATED_SKILL).unwrap(),
        input: SkillData::new(r#"{"order":"A-17","amount":120}"#).unwrap(),
        outcome: SkillOutcome::Succeeded(SkillData::new(r#"{"refunded":120}"#).unwrap()),
    }
}

pub(crate) fn price_lookup() -> Skill {
    Skill {
        name: SkillName::new("lookup_price").unwrap(),
        input: SkillData::new(r#"{"plan":"pro"}"#).unwrap(),
        outcome: SkillOutcome::Succeeded(SkillData::new(r#"{"usd":49}"#).unwrap()),
    }
}

// ---------------------------------------------------------------------------------------------
// Expected events and rejections.
// ---------------------------------------------------------------------------------------------

fn ok<const N: usize>(events: [ConversationEvent; N]) -> Expect {
    Expect::Accepted(events.into())
}

fn okv(events: Vec<ConversationEvent>) -> Expect {
    Expect::Accepted(events)
}

fn no(rejection: Rejection) -> Expect {
    Expect::Rejected(rejection)
}

/// A notice in English (the conversation opened by `Open` has no language).
fn notice_en(kind: NoticeKind, message: &str) -> ConversationEvent {
    ConversationEvent::CustomerNotice {
        kind,
        text: text(message),
        language: Language::english(),
    }
}

fn started(by: &str, start: bool) -> ConversationEvent {
    ConversationEvent::Started {
        tenant: TenantId::default_tenant(),
        customer: customer(by),
        channel: channel(),
        team: start.then(team),
        language: start.then(language),
        at: Timestamp::default(),
    }
}

/// `Open` (or `Start`, with its team and language) without a human.
fn open_waiting(by: &str, start: bool) -> Vec<ConversationEvent> {
    let notice = if start {
        ConversationEvent::CustomerNotice {
            kind: NoticeKind::WaitingForPerson,
            text: text("Aguarde: uma pessoa vai atendê-lo em breve."),
            language: language(),
        }
    } else {
        notice_en(
            NoticeKind::WaitingForPerson,
            "Please wait: a person will be with you shortly.",
        )
    };
    vec![
        started(by, start),
        ConversationEvent::AwaitingHuman {
            team: start.then(team),
            cause: WaitCause::Opened,
            since: Timestamp::default(),
        },
        notice,
    ]
}

/// `Open` (or `Start`) given to `human` by the backend.
fn open_assigned(human: &str, start: bool) -> Vec<ConversationEvent> {
    vec![
        started(CUSTOMER, start),
        ConversationEvent::HumanAssigned {
            human_id: human_id(human),
            name: human_name(human),
            team: None,
            by: Author::System(SystemActor::Backend),
            at: Timestamp::default(),
        },
    ]
}

fn customer_posted(message: &str, concerns: &[Concern]) -> ConversationEvent {
    ConversationEvent::MessagePosted {
        author: Author::Customer(customer(CUSTOMER)),
        text: text(message),
        concerns: concerns.to_vec(),
    }
}

fn human_posted(by: &str, message: &str) -> ConversationEvent {
    ConversationEvent::MessagePosted {
        author: Author::Human(human_id(by)),
        text: text(message),
        concerns: vec![],
    }
}

fn ai_posted(message: &str) -> ConversationEvent {
    ConversationEvent::MessagePosted {
        author: Author::Ai(ai(ASSIGNED_AI)),
        text: text(message),
        concerns: vec![],
    }
}

fn handed_off(agent: &str, agent_name: &str, by: &str) -> Vec<ConversationEvent> {
    vec![
        ConversationEvent::HandedOffToAi {
            agent_id: ai(agent),
            agent_name: name(agent_name),
            by_human: human_id(by),
            reason: Some(reason(HANDOFF_REASON)),
        },
        notice_en(
            NoticeKind::AiJoined,
            &format!("{agent_name}, an AI assistant, has joined the conversation."),
        ),
    ]
}

fn skill_recorded() -> ConversationEvent {
    ConversationEvent::AiActionRecorded {
        agent_id: ai(ASSIGNED_AI),
        skill: price_lookup(),
    }
}

fn ai_left() -> ConversationEvent {
    notice_en(
        NoticeKind::AiLeft,
        &format!("The AI assistant {ASSIGNED_AI_NAME} has left the conversation."),
    )
}

fn person_joined(who: &str) -> ConversationEvent {
    notice_en(
        NoticeKind::PersonJoined,
        &format!("{} has joined the conversation.", human_name(who)),
    )
}

fn waiting_en() -> ConversationEvent {
    notice_en(
        NoticeKind::WaitingForPerson,
        "Please wait: a person will be with you shortly.",
    )
}

fn reclaimed(by: &str) -> Vec<ConversationEvent> {
    vec![
        ConversationEvent::Reclaimed {
            agent_id: ai(ASSIGNED_AI),
            by_human: human_id(by),
            reason: Some(reason(RECLAIM_REASON)),
        },
        ai_left(),
        person_joined(by),
    ]
}

/// The escalation of `faq`'s conversation, the notice that it left, and the wait in the
/// general queue with its notice.
fn escalation(why: &str, cause: EscalationCause) -> Vec<ConversationEvent> {
    vec![
        ConversationEvent::EscalatedToHuman {
            agent_id: ai(ASSIGNED_AI),
            reason: reason(why),
            cause,
        },
        ai_left(),
        ConversationEvent::AwaitingHuman {
            team: None,
            cause: WaitCause::Escalated(cause),
            since: Timestamp::default(),
        },
        waiting_en(),
    ]
}

/// The version of the default policy, recorded with its rules' decisions.
pub(crate) fn default_version() -> PolicyVersion {
    Rules::default_rules().version().clone()
}

/// The embedder's refusal of a handoff / verdict on a message.
pub(crate) fn embedder_verdict() -> RuleVerdict {
    RuleVerdict {
        rule: RuleName::new(EMBEDDER_RULE).unwrap(),
        reason: reason(EMBEDDER_REASON),
    }
}

/// The context given with a handoff or an escalation.
pub(crate) fn context() -> Context {
    Context::new(
        Some(CONTEXT_SUMMARY.to_owned()),
        Some(CONTEXT_TOPIC.to_owned()),
        [("plan", "pro")],
    )
    .unwrap()
}

fn context_shared(by: Author) -> ConversationEvent {
    ConversationEvent::ContextShared {
        by,
        context: context(),
        at: Timestamp::default(),
    }
}

fn policy_overridden(by: &str) -> ConversationEvent {
    ConversationEvent::PolicyOverridden {
        by: human_id(by),
        rule: RuleName::new(EMBEDDER_RULE).unwrap(),
        policy_version: default_version(),
        refusal: reason(EMBEDDER_REASON),
        at: Timestamp::default(),
    }
}

fn embedder_refusal() -> Rejection {
    Rejection::RefusedByRule {
        rule: RuleName::new(EMBEDDER_RULE).unwrap(),
        policy_version: default_version(),
        reason: EMBEDDER_REASON.to_owned(),
    }
}

/// The escalation of `faq`'s conversation by `rule` (of the default policy's version, at time
/// zero), the notice that it left, and the wait in the general queue with its notice.
fn rule_escalation(why: &str, cause: EscalationCause, rule: &str) -> Vec<ConversationEvent> {
    vec![
        ConversationEvent::EscalatedByRule {
            agent_id: ai(ASSIGNED_AI),
            reason: reason(why),
            cause,
            rule: RuleName::new(rule).unwrap(),
            policy_version: default_version(),
            at: Timestamp::default(),
        },
        ai_left(),
        ConversationEvent::AwaitingHuman {
            team: None,
            cause: WaitCause::Escalated(cause),
            since: Timestamp::default(),
        },
        waiting_en(),
    ]
}

fn closed(by: Author) -> ConversationEvent {
    ConversationEvent::Closed {
        by,
        reason: Some(reason(CLOSE_REASON)),
    }
}

fn carl_assigned(by: Author) -> ConversationEvent {
    ConversationEvent::HumanAssigned {
        human_id: human_id(OTHER_AGENT),
        name: human_name(OTHER_AGENT),
        team: None,
        by,
        at: Timestamp::default(),
    }
}

fn assigned_to_carl(by: Author) -> Vec<ConversationEvent> {
    vec![carl_assigned(by), person_joined(OTHER_AGENT)]
}

fn accepted(by: &str) -> Vec<ConversationEvent> {
    vec![
        ConversationEvent::HumanAssigned {
            human_id: human_id(by),
            name: human_name(by),
            team: None,
            by: Author::Human(human_id(by)),
            at: Timestamp::default(),
        },
        person_joined(by),
    ]
}

fn transferred(to: TransferTarget, by: Author) -> ConversationEvent {
    ConversationEvent::Transferred {
        to,
        reason: reason(TRANSFER_REASON),
        by,
        at: Timestamp::default(),
    }
}

fn transferred_to_carl(by: Author) -> Vec<ConversationEvent> {
    vec![
        transferred(TransferTarget::Human(human_id(OTHER_AGENT)), by.clone()),
        carl_assigned(by),
        person_joined(OTHER_AGENT),
    ]
}

fn transferred_to_team(by: Author) -> Vec<ConversationEvent> {
    vec![
        transferred(TransferTarget::Team(team()), by),
        ConversationEvent::AwaitingHuman {
            team: Some(team()),
            cause: WaitCause::Transferred,
            since: Timestamp::default(),
        },
        waiting_en(),
    ]
}

fn note(to: NoteAudience, by: &str) -> ConversationEvent {
    ConversationEvent::InternalNote {
        to,
        text: text(NOTE),
        by: Author::Human(human_id(by)),
        at: Timestamp::default(),
    }
}

fn flag_raised(by: Author) -> ConversationEvent {
    ConversationEvent::FlagRaised {
        by,
        at: Timestamp::default(),
    }
}

fn unknown_human(id: &str) -> Rejection {
    Rejection::UnknownHuman {
        human_id: human_id(id),
    }
}

fn not_assigned(agent: &str) -> Rejection {
    Rejection::NotAssigned {
        agent_id: ai(agent),
    }
}

fn assignment_ended() -> Rejection {
    Rejection::AssignmentEnded {
        agent_id: ai(ASSIGNED_AI),
        epoch: Epoch(1),
    }
}

fn not_the_customer() -> Rejection {
    Rejection::NotTheCustomer {
        customer: customer(CUSTOMER),
    }
}

fn ai_active() -> Rejection {
    Rejection::AiActive {
        agent_id: ai(ASSIGNED_AI),
        agent_name: name(ASSIGNED_AI_NAME),
    }
}

fn inactive() -> Rejection {
    Rejection::AiAgentInactive {
        agent_id: ai(INACTIVE_AI),
    }
}

fn unknown_agent() -> Rejection {
    Rejection::UnknownAiAgent {
        agent_id: ai(UNKNOWN_AI),
    }
}

fn cause_not_allowed() -> Rejection {
    Rejection::EscalationCauseNotAllowed {
        cause: EscalationCause::CustomerAskedForHuman,
    }
}

/// Prints the table as a grid, one line per (row, state), and returns the counts
/// (cells, accepted, rejected, unrepresentable).
pub(crate) fn print_grid(table: &[Line]) -> (usize, usize, usize, usize) {
    let (mut accepted, mut rejected, mut unrepresentable) = (0, 0, 0);
    println!(
        "{:<30} {:<14} | {}",
        "command",
        "state",
        CALLERS.map(|c| format!("{:<28}", c.label())).join(" ")
    );
    for line in table {
        for cell in &line.cells {
            match cell {
                Expect::Accepted(_) => accepted += 1,
                Expect::Rejected(_) => rejected += 1,
                Expect::Unrepresentable => unrepresentable += 1,
            }
        }
        println!(
            "{:<30} {:<14} | {}",
            line.row.label(),
            line.state.label(),
            line.cells
                .iter()
                .map(|c| format!("{:<28}", c.label()))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    let cells = table.len() * CALLERS.len();
    (cells, accepted, rejected, unrepresentable)
}

// ---------------------------------------------------------------------------------------------
// The AI-agent matrix.
// ---------------------------------------------------------------------------------------------

/// An AI agent's registration state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum AgentState {
    Unregistered,
    Inactive,
    Active,
    /// Was active, then deactivated.
    Deactivated,
}

pub(crate) const AGENT_STATES: [AgentState; 4] = [
    AgentState::Unregistered,
    AgentState::Inactive,
    AgentState::Active,
    AgentState::Deactivated,
];

impl AgentState {
    /// The commands that lead a new agent id to this state.
    pub(crate) fn setup(self) -> Vec<AiAgentCommand> {
        let register = AgentRow::Register.command();
        match self {
            AgentState::Unregistered => vec![],
            AgentState::Inactive => vec![register],
            AgentState::Active => vec![register, AiAgentCommand::Activate],
            AgentState::Deactivated => vec![
                register,
                AiAgentCommand::Activate,
                AiAgentCommand::Deactivate,
            ],
        }
    }
}

/// The AI-agent commands (the rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum AgentRow {
    /// Register with one specialty.
    Register,
    /// Register with exactly the most specialties allowed.
    RegisterMostSpecialties,
    /// Register with one specialty too many.
    RegisterTooManySpecialties,
    Activate,
    Deactivate,
}

pub(crate) const AGENT_ROWS: [AgentRow; 5] = [
    AgentRow::Register,
    AgentRow::RegisterMostSpecialties,
    AgentRow::RegisterTooManySpecialties,
    AgentRow::Activate,
    AgentRow::Deactivate,
];

pub(crate) const AGENT_NAME: &str = "Pricing Bot";

/// `n` distinct specialties.
pub(crate) fn agent_specialties(n: usize) -> Vec<Specialty> {
    (0..n)
        .map(|i| Specialty::new(format!("topic-{i}")).unwrap())
        .collect()
}

impl AgentRow {
    pub(crate) fn command(self) -> AiAgentCommand {
        let register = |n| AiAgentCommand::Register {
            name: name(AGENT_NAME),
            specialties: agent_specialties(n),
        };
        match self {
            AgentRow::Register => register(1),
            AgentRow::RegisterMostSpecialties => register(SPECIALTIES_COUNT_MAX),
            AgentRow::RegisterTooManySpecialties => register(SPECIALTIES_COUNT_MAX + 1),
            AgentRow::Activate => AiAgentCommand::Activate,
            AgentRow::Deactivate => AiAgentCommand::Deactivate,
        }
    }
}

/// The expected outcome of each AI-agent command in each state, for the agent `id`: the events
/// it records, or why it is refused.
pub(crate) fn agent_table(
    id: &AiAgentId,
) -> Vec<(AgentRow, AgentState, Result<Vec<AiAgentEvent>, Rejection>)> {
    use AgentRow::*;
    use AgentState::*;
    let registered = |n| {
        Ok(vec![AiAgentEvent::Registered {
            agent_id: id.clone(),
            name: name(AGENT_NAME),
            specialties: agent_specialties(n),
        }])
    };
    let activated = || {
        Ok(vec![AiAgentEvent::Activated {
            agent_id: id.clone(),
        }])
    };
    let deactivated = || {
        Ok(vec![AiAgentEvent::Deactivated {
            agent_id: id.clone(),
        }])
    };
    let already_registered = || {
        Err(Rejection::AiAgentAlreadyRegistered {
            agent_id: id.clone(),
        })
    };
    let not_registered = || {
        Err(Rejection::AiAgentNotRegistered {
            agent_id: id.clone(),
        })
    };
    let already_active = || {
        Err(Rejection::AiAgentAlreadyActive {
            agent_id: id.clone(),
        })
    };
    let already_inactive = || {
        Err(Rejection::AiAgentAlreadyInactive {
            agent_id: id.clone(),
        })
    };
    let too_many = || {
        Err(Rejection::TooManySpecialties {
            len: SPECIALTIES_COUNT_MAX + 1,
            max: SPECIALTIES_COUNT_MAX,
        })
    };
    vec![
        (Register, Unregistered, registered(1)),
        (Register, Inactive, already_registered()),
        (Register, Active, already_registered()),
        (Register, Deactivated, already_registered()),
        (
            RegisterMostSpecialties,
            Unregistered,
            registered(SPECIALTIES_COUNT_MAX),
        ),
        (RegisterMostSpecialties, Inactive, already_registered()),
        (RegisterMostSpecialties, Active, already_registered()),
        (RegisterMostSpecialties, Deactivated, already_registered()),
        (RegisterTooManySpecialties, Unregistered, too_many()),
        // A registered id is refused before its specialties are counted.
        (RegisterTooManySpecialties, Inactive, already_registered()),
        (RegisterTooManySpecialties, Active, already_registered()),
        (
            RegisterTooManySpecialties,
            Deactivated,
            already_registered(),
        ),
        (Activate, Unregistered, not_registered()),
        (Activate, Inactive, activated()),
        (Activate, Active, already_active()),
        (Activate, Deactivated, activated()),
        (Deactivate, Unregistered, not_registered()),
        (Deactivate, Inactive, already_inactive()),
        (Deactivate, Active, deactivated()),
        (Deactivate, Deactivated, already_inactive()),
    ]
}
