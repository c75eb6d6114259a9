//! The conversation command matrix: every conversation command, in every state, from every
//! caller, with the outcome each cell must have, written out by hand.
//!
//! Shared by `crates/handover-core/tests/matrix.rs` (the pure `decide`) and
//! `crates/handover/tests/bad_input.rs` (the real runtime over a sled directory), so both check
//! the same table.
//!
//! The world of every cell:
//!
//! - AI agents: `faq` ("FAQ Bot") and `sales` ("Sales Bot") registered and active, `idle`
//!   ("Idle Bot") registered and inactive, `ghost` never registered;
//! - the conversation's customer is `cust-1`, on `web-chat`; the human agent is `ana`.
//!
//! The callers (the columns):
//!
//! - **customer**: `cust-1`, the conversation's customer;
//! - **assigned AI**: `faq` under epoch 1, the assignment the AI-active conversation holds
//!   (before the handoff it names an assignment that never existed, after the reclaim or the
//!   close one that has ended);
//! - **other AI**: `sales` under epoch 1, an active agent that never held the conversation;
//! - **human**: `ana`, the human agent;
//! - **other customer**: `cust-2`, someone who is not the conversation's customer.
//!
//! Some commands name their caller by type (a reclaim names a human, a skill names an AI
//! assignment): their cells for other callers cannot be written at all, and the table says so
//! ([`Expect::Unrepresentable`]).

// Each including test uses its own part of this table.
#![allow(dead_code)]

use handover_core::{
    AgentName, AiAgentCommand, AiAgentEvent, AiAgentId, Assignment, Author, Channel, Concern,
    ConversationCommand, ConversationEvent, CustomerId, Epoch, EscalationCause, HumanId,
    MessageText, Participant, Reason, Rejection, Skill, SkillData, SkillName, SkillOutcome,
    Specialty, Status, SPECIALTIES_COUNT_MAX,
};

pub(crate) const CUSTOMER: &str = "cust-1";
pub(crate) const OTHER_CUSTOMER: &str = "cust-2";
pub(crate) const HUMAN: &str = "ana";
pub(crate) const CHANNEL: &str = "web-chat";
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
/// The reason the rules give the escalation a customer's request for a human causes.
pub(crate) const CUSTOMER_ASKED_REASON: &str = "the customer asked for a human";

// ---------------------------------------------------------------------------------------------
// The axes.
// ---------------------------------------------------------------------------------------------

/// The state a conversation is in before the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum State {
    /// Never opened.
    Unknown,
    /// Opened by `cust-1` on web chat, assigned to `ana`.
    HumanHandled,
    /// Then handed off by `ana` to `faq` (epoch 1).
    AiActive,
    /// Then reclaimed by `ana`.
    Reclaimed,
    /// Opened, handed off to `faq`, then closed by the customer.
    Closed,
}

pub(crate) const STATES: [State; 5] = [
    State::Unknown,
    State::HumanHandled,
    State::AiActive,
    State::Reclaimed,
    State::Closed,
];

impl State {
    pub(crate) fn label(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::HumanHandled => "human-handled",
            State::AiActive => "ai-active",
            State::Reclaimed => "reclaimed",
            State::Closed => "closed",
        }
    }

    /// The commands that bring a new conversation to this state, in order.
    pub(crate) fn setup(self) -> Vec<ConversationCommand> {
        let open = ConversationCommand::Open {
            customer: customer(CUSTOMER),
            channel: channel(),
            human: Some(human()),
        };
        let hand_off = ConversationCommand::HandOffToAi {
            by: human(),
            agent_id: ai(ASSIGNED_AI),
            reason: None,
        };
        match self {
            State::Unknown => vec![],
            State::HumanHandled => vec![open],
            State::AiActive => vec![open, hand_off],
            State::Reclaimed => vec![
                open,
                hand_off,
                ConversationCommand::Reclaim {
                    by: human(),
                    reason: None,
                },
            ],
            State::Closed => vec![
                open,
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
        match self {
            State::Unknown => Status::NotOpened,
            State::HumanHandled => Status::HumanHandled,
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
            State::HumanHandled | State::AiActive | State::Reclaimed => {
                Some(ConversationCommand::PostMessage {
                    by: Participant::Customer(customer(CUSTOMER)),
                    text: text("Thanks!"),
                })
            }
            State::Closed => None,
        }
    }
}

/// Who sends the command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Caller {
    Customer,
    AssignedAi,
    OtherAi,
    Human,
    OtherCustomer,
}

pub(crate) const CALLERS: [Caller; 5] = [
    Caller::Customer,
    Caller::AssignedAi,
    Caller::OtherAi,
    Caller::Human,
    Caller::OtherCustomer,
];

impl Caller {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Caller::Customer => "customer",
            Caller::AssignedAi => "assigned AI",
            Caller::OtherAi => "other AI",
            Caller::Human => "human",
            Caller::OtherCustomer => "other customer",
        }
    }

    fn participant(self) -> Participant {
        match self {
            Caller::Customer => Participant::Customer(customer(CUSTOMER)),
            Caller::OtherCustomer => Participant::Customer(customer(OTHER_CUSTOMER)),
            Caller::AssignedAi => Participant::Ai(assignment(ASSIGNED_AI)),
            Caller::OtherAi => Participant::Ai(assignment(OTHER_AI)),
            Caller::Human => Participant::Human(human()),
        }
    }

    fn ai_assignment(self) -> Option<Assignment> {
        match self {
            Caller::AssignedAi => Some(assignment(ASSIGNED_AI)),
            Caller::OtherAi => Some(assignment(OTHER_AI)),
            _ => None,
        }
    }
}

/// The commands (the rows): every `ConversationCommand` variant with valid arguments, some in
/// more than one form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Row {
    /// `Open` for the caller (customers open for themselves, the human opens assigned to
    /// themselves).
    Open,
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
}

pub(crate) const ROWS: [Row; 13] = [
    Row::Open,
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
];

impl Row {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Row::Open => "open",
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
        }
    }

    /// The command `caller` sends, or `None` when its type cannot name that caller.
    pub(crate) fn command(self, caller: Caller) -> Option<ConversationCommand> {
        let hand_off = |agent: &str| match caller {
            Caller::Human => Some(ConversationCommand::HandOffToAi {
                by: human(),
                agent_id: ai(agent),
                reason: Some(reason(HANDOFF_REASON)),
            }),
            _ => None,
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
        match self {
            Row::Open => match caller {
                Caller::Customer => Some(ConversationCommand::Open {
                    customer: customer(CUSTOMER),
                    channel: channel(),
                    human: None,
                }),
                Caller::OtherCustomer => Some(ConversationCommand::Open {
                    customer: customer(OTHER_CUSTOMER),
                    channel: channel(),
                    human: None,
                }),
                Caller::Human => Some(ConversationCommand::Open {
                    customer: customer(CUSTOMER),
                    channel: channel(),
                    human: Some(human()),
                }),
                Caller::AssignedAi | Caller::OtherAi => None,
            },
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
            Row::Reclaim => match caller {
                Caller::Human => Some(ConversationCommand::Reclaim {
                    by: human(),
                    reason: Some(reason(RECLAIM_REASON)),
                }),
                _ => None,
            },
            Row::Escalate => escalate(EscalationCause::AgentRequested),
            Row::EscalateDeactivated => escalate(EscalationCause::AgentDeactivated),
            Row::EscalateCustomerCause => escalate(EscalationCause::CustomerAskedForHuman),
            Row::Close => Some(ConversationCommand::Close {
                by: caller.participant(),
                reason: Some(reason(CLOSE_REASON)),
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
/// [`CALLERS`]: customer, assigned AI, other AI, human, other customer.
pub(crate) struct Line {
    pub(crate) row: Row,
    pub(crate) state: State,
    pub(crate) cells: [Expect; 5],
}

/// The table. Every (row, state) pair appears exactly once (checked by the tests).
pub(crate) fn table() -> Vec<Line> {
    use Expect::Unrepresentable as NA;
    use Row::*;
    use State::*;
    let line = |row, state, cells| Line { row, state, cells };
    let all = |expect: Expect| -> [Expect; 5] { std::array::from_fn(|_| expect.clone()) };
    // For the commands only a human can send.
    let human_only = |expect: Expect| [NA, NA, NA, expect, NA];
    // For the commands only an AI assignment can send: assigned AI, other AI.
    let ai_only = |assigned: Expect, other: Expect| [NA, assigned, other, NA, NA];
    // Only a human or a customer can open: customer, human, other customer.
    let open_by = |customer: Expect, human: Expect, other: Expect| [customer, NA, NA, human, other];

    vec![
        // --- open -----------------------------------------------------------------------------
        line(
            Open,
            Unknown,
            open_by(
                ok([opened(CUSTOMER, None)]),
                ok([opened(CUSTOMER, Some(HUMAN))]),
                ok([opened(OTHER_CUSTOMER, None)]),
            ),
        ),
        line(
            Open,
            HumanHandled,
            open_by(
                no(Rejection::AlreadyOpened),
                no(Rejection::AlreadyOpened),
                no(Rejection::AlreadyOpened),
            ),
        ),
        line(
            Open,
            AiActive,
            open_by(
                no(Rejection::AlreadyOpened),
                no(Rejection::AlreadyOpened),
                no(Rejection::AlreadyOpened),
            ),
        ),
        line(
            Open,
            Reclaimed,
            open_by(
                no(Rejection::AlreadyOpened),
                no(Rejection::AlreadyOpened),
                no(Rejection::AlreadyOpened),
            ),
        ),
        // A closed conversation refuses everything as closed, even a second open.
        line(
            Open,
            Closed,
            open_by(
                no(Rejection::Closed),
                no(Rejection::Closed),
                no(Rejection::Closed),
            ),
        ),
        // --- post (a question) ------------------------------------------------------------------
        line(Post, Unknown, all(no(Rejection::NotOpened))),
        line(
            Post,
            HumanHandled,
            [
                ok([customer_posted(QUESTION, &[])]),
                no(not_assigned(ASSIGNED_AI)),
                no(not_assigned(OTHER_AI)),
                ok([human_posted(QUESTION)]),
                no(not_the_customer()),
            ],
        ),
        line(
            Post,
            AiActive,
            [
                ok([customer_posted(QUESTION, &[])]),
                ok([ai_posted(QUESTION)]),
                no(not_assigned(OTHER_AI)),
                no(ai_active()),
                no(not_the_customer()),
            ],
        ),
        line(
            Post,
            Reclaimed,
            [
                ok([customer_posted(QUESTION, &[])]),
                no(assignment_ended()),
                no(not_assigned(OTHER_AI)),
                ok([human_posted(QUESTION)]),
                no(not_the_customer()),
            ],
        ),
        line(Post, Closed, all(no(Rejection::Closed))),
        // --- post (asks for a human) ------------------------------------------------------------
        line(PostAsksForHuman, Unknown, all(no(Rejection::NotOpened))),
        line(
            PostAsksForHuman,
            HumanHandled,
            [
                // Recorded as a concern; nobody to escalate from.
                ok([customer_posted(ASKS_FOR_HUMAN, &[Concern::HumanRequested])]),
                no(not_assigned(ASSIGNED_AI)),
                no(not_assigned(OTHER_AI)),
                // Only customers' messages are assessed.
                ok([human_posted(ASKS_FOR_HUMAN)]),
                no(not_the_customer()),
            ],
        ),
        line(
            PostAsksForHuman,
            AiActive,
            [
                // The message and the escalation, in one step.
                ok([
                    customer_posted(ASKS_FOR_HUMAN, &[Concern::HumanRequested]),
                    escalated(
                        CUSTOMER_ASKED_REASON,
                        EscalationCause::CustomerAskedForHuman,
                    ),
                ]),
                ok([ai_posted(ASKS_FOR_HUMAN)]),
                no(not_assigned(OTHER_AI)),
                no(ai_active()),
                // Someone else's request escalates nothing.
                no(not_the_customer()),
            ],
        ),
        line(
            PostAsksForHuman,
            Reclaimed,
            [
                ok([customer_posted(ASKS_FOR_HUMAN, &[Concern::HumanRequested])]),
                no(assignment_ended()),
                no(not_assigned(OTHER_AI)),
                ok([human_posted(ASKS_FOR_HUMAN)]),
                no(not_the_customer()),
            ],
        ),
        line(PostAsksForHuman, Closed, all(no(Rejection::Closed))),
        // --- hand off to faq --------------------------------------------------------------------
        line(HandOff, Unknown, human_only(no(Rejection::NotOpened))),
        line(
            HandOff,
            HumanHandled,
            human_only(ok([handed_off(ASSIGNED_AI, ASSIGNED_AI_NAME)])),
        ),
        line(
            HandOff,
            AiActive,
            human_only(no(Rejection::AlreadyHandledBy {
                agent_id: ai(ASSIGNED_AI),
            })),
        ),
        // The same agent again: a new assignment (epoch 2).
        line(
            HandOff,
            Reclaimed,
            human_only(ok([handed_off(ASSIGNED_AI, ASSIGNED_AI_NAME)])),
        ),
        line(HandOff, Closed, human_only(no(Rejection::Closed))),
        // --- hand off to sales ------------------------------------------------------------------
        line(
            HandOffToOther,
            Unknown,
            human_only(no(Rejection::NotOpened)),
        ),
        line(
            HandOffToOther,
            HumanHandled,
            human_only(ok([handed_off(OTHER_AI, OTHER_AI_NAME)])),
        ),
        // From one AI agent to another, directly.
        line(
            HandOffToOther,
            AiActive,
            human_only(ok([handed_off(OTHER_AI, OTHER_AI_NAME)])),
        ),
        line(
            HandOffToOther,
            Reclaimed,
            human_only(ok([handed_off(OTHER_AI, OTHER_AI_NAME)])),
        ),
        line(HandOffToOther, Closed, human_only(no(Rejection::Closed))),
        // --- hand off to an inactive agent ------------------------------------------------------
        line(
            HandOffToInactive,
            Unknown,
            human_only(no(Rejection::NotOpened)),
        ),
        line(HandOffToInactive, HumanHandled, human_only(no(inactive()))),
        line(HandOffToInactive, AiActive, human_only(no(inactive()))),
        line(HandOffToInactive, Reclaimed, human_only(no(inactive()))),
        line(HandOffToInactive, Closed, human_only(no(Rejection::Closed))),
        // --- hand off to an unknown agent -------------------------------------------------------
        line(
            HandOffToUnknown,
            Unknown,
            human_only(no(Rejection::NotOpened)),
        ),
        line(
            HandOffToUnknown,
            HumanHandled,
            human_only(no(unknown_agent())),
        ),
        line(HandOffToUnknown, AiActive, human_only(no(unknown_agent()))),
        line(HandOffToUnknown, Reclaimed, human_only(no(unknown_agent()))),
        line(HandOffToUnknown, Closed, human_only(no(Rejection::Closed))),
        // --- record an AI action ----------------------------------------------------------------
        line(
            RecordAiAction,
            Unknown,
            ai_only(no(Rejection::NotOpened), no(Rejection::NotOpened)),
        ),
        line(
            RecordAiAction,
            HumanHandled,
            ai_only(no(not_assigned(ASSIGNED_AI)), no(not_assigned(OTHER_AI))),
        ),
        line(
            RecordAiAction,
            AiActive,
            ai_only(ok([skill_recorded()]), no(not_assigned(OTHER_AI))),
        ),
        line(
            RecordAiAction,
            Reclaimed,
            ai_only(no(assignment_ended()), no(not_assigned(OTHER_AI))),
        ),
        line(
            RecordAiAction,
            Closed,
            ai_only(no(Rejection::Closed), no(Rejection::Closed)),
        ),
        // --- reclaim ----------------------------------------------------------------------------
        line(Reclaim, Unknown, human_only(no(Rejection::NotOpened))),
        line(
            Reclaim,
            HumanHandled,
            human_only(no(Rejection::NotAiActive)),
        ),
        line(Reclaim, AiActive, human_only(ok([reclaimed()]))),
        line(Reclaim, Reclaimed, human_only(no(Rejection::NotAiActive))),
        line(Reclaim, Closed, human_only(no(Rejection::Closed))),
        // --- escalate (the agent asks) ----------------------------------------------------------
        line(
            Escalate,
            Unknown,
            ai_only(no(Rejection::NotOpened), no(Rejection::NotOpened)),
        ),
        line(
            Escalate,
            HumanHandled,
            ai_only(no(not_assigned(ASSIGNED_AI)), no(not_assigned(OTHER_AI))),
        ),
        line(
            Escalate,
            AiActive,
            ai_only(
                ok([escalated(ESCALATE_REASON, EscalationCause::AgentRequested)]),
                no(not_assigned(OTHER_AI)),
            ),
        ),
        line(
            Escalate,
            Reclaimed,
            ai_only(no(assignment_ended()), no(not_assigned(OTHER_AI))),
        ),
        line(
            Escalate,
            Closed,
            ai_only(no(Rejection::Closed), no(Rejection::Closed)),
        ),
        // --- escalate (claiming a deactivation) -------------------------------------------------
        line(
            EscalateDeactivated,
            Unknown,
            ai_only(no(Rejection::NotOpened), no(Rejection::NotOpened)),
        ),
        line(
            EscalateDeactivated,
            HumanHandled,
            ai_only(no(not_assigned(ASSIGNED_AI)), no(not_assigned(OTHER_AI))),
        ),
        // The runtime sends this command itself when it deactivates an agent; the rules cannot
        // tell it from the agent's own, so the assigned agent may claim this cause too.
        line(
            EscalateDeactivated,
            AiActive,
            ai_only(
                ok([escalated(
                    ESCALATE_REASON,
                    EscalationCause::AgentDeactivated,
                )]),
                no(not_assigned(OTHER_AI)),
            ),
        ),
        line(
            EscalateDeactivated,
            Reclaimed,
            ai_only(no(assignment_ended()), no(not_assigned(OTHER_AI))),
        ),
        line(
            EscalateDeactivated,
            Closed,
            ai_only(no(Rejection::Closed), no(Rejection::Closed)),
        ),
        // --- escalate (claiming the customer asked) ---------------------------------------------
        line(
            EscalateCustomerCause,
            Unknown,
            ai_only(no(Rejection::NotOpened), no(Rejection::NotOpened)),
        ),
        line(
            EscalateCustomerCause,
            HumanHandled,
            ai_only(no(cause_not_allowed()), no(cause_not_allowed())),
        ),
        line(
            EscalateCustomerCause,
            AiActive,
            ai_only(no(cause_not_allowed()), no(cause_not_allowed())),
        ),
        line(
            EscalateCustomerCause,
            Reclaimed,
            ai_only(no(cause_not_allowed()), no(cause_not_allowed())),
        ),
        line(
            EscalateCustomerCause,
            Closed,
            ai_only(no(Rejection::Closed), no(Rejection::Closed)),
        ),
        // --- close ------------------------------------------------------------------------------
        line(Close, Unknown, all(no(Rejection::NotOpened))),
        line(
            Close,
            HumanHandled,
            [
                ok([closed(Author::Customer(customer(CUSTOMER)))]),
                no(not_assigned(ASSIGNED_AI)),
                no(not_assigned(OTHER_AI)),
                ok([closed(Author::Human(human()))]),
                no(not_the_customer()),
            ],
        ),
        line(
            Close,
            AiActive,
            [
                ok([closed(Author::Customer(customer(CUSTOMER)))]),
                ok([closed(Author::Ai(ai(ASSIGNED_AI)))]),
                no(not_assigned(OTHER_AI)),
                // A human may close an AI-active conversation without reclaiming it.
                ok([closed(Author::Human(human()))]),
                no(not_the_customer()),
            ],
        ),
        line(
            Close,
            Reclaimed,
            [
                ok([closed(Author::Customer(customer(CUSTOMER)))]),
                no(assignment_ended()),
                no(not_assigned(OTHER_AI)),
                ok([closed(Author::Human(human()))]),
                no(not_the_customer()),
            ],
        ),
        line(Close, Closed, all(no(Rejection::Closed))),
    ]
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

pub(crate) fn human() -> HumanId {
    HumanId::new(HUMAN).unwrap()
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

/// `agent` under epoch 1.
pub(crate) fn assignment(agent: &str) -> Assignment {
    Assignment {
        agent_id: ai(agent),
        epoch: Epoch(1),
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

fn no(rejection: Rejection) -> Expect {
    Expect::Rejected(rejection)
}

fn opened(by: &str, assigned: Option<&str>) -> ConversationEvent {
    ConversationEvent::Opened {
        customer: customer(by),
        channel: channel(),
        human: assigned.map(|h| HumanId::new(h).unwrap()),
    }
}

fn customer_posted(message: &str, concerns: &[Concern]) -> ConversationEvent {
    ConversationEvent::MessagePosted {
        author: Author::Customer(customer(CUSTOMER)),
        text: text(message),
        concerns: concerns.to_vec(),
    }
}

fn human_posted(message: &str) -> ConversationEvent {
    ConversationEvent::MessagePosted {
        author: Author::Human(human()),
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

fn handed_off(agent: &str, agent_name: &str) -> ConversationEvent {
    ConversationEvent::HandedOffToAi {
        agent_id: ai(agent),
        agent_name: name(agent_name),
        by_human: human(),
        reason: Some(reason(HANDOFF_REASON)),
    }
}

fn skill_recorded() -> ConversationEvent {
    ConversationEvent::AiActionRecorded {
        agent_id: ai(ASSIGNED_AI),
        skill: price_lookup(),
    }
}

fn reclaimed() -> ConversationEvent {
    ConversationEvent::Reclaimed {
        agent_id: ai(ASSIGNED_AI),
        by_human: human(),
        reason: Some(reason(RECLAIM_REASON)),
    }
}

fn escalated(why: &str, cause: EscalationCause) -> ConversationEvent {
    ConversationEvent::EscalatedToHuman {
        agent_id: ai(ASSIGNED_AI),
        reason: reason(why),
        cause,
    }
}

fn closed(by: Author) -> ConversationEvent {
    ConversationEvent::Closed {
        by,
        reason: Some(reason(CLOSE_REASON)),
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
