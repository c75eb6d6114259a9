//! A conversation's state and its two rule functions.
//!
//! [`evolve`] holds the state machine: which event may follow which state. It is total over
//! the events [`decide`] produces and rejects every other one, so replaying a damaged or forged
//! log reports the first impossible event instead of folding it.
//! [`decide`] holds what depends on the command: who is asking, under which assignment, the
//! AI-agent roster and the handoff policy. It builds the events and runs them through
//! [`evolve`], so each state rule is written once.

use crate::command::{Assignment, ConversationCommand, Participant};
use crate::event::{Author, ConversationEvent, EscalationCause};
use crate::ids::{AgentName, AiAgentId, Channel, CustomerId, Epoch, HumanId};
use crate::policy::Concern;
use crate::rejection::Rejection;
use crate::text::Reason;
use crate::{Ctx, Event};

/// A conversation, as the fold of its events.
///
/// Closed by nature: a conversation is not opened yet, open, or closed (who handles an open
/// one is its [`Handler`], which grows).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Conversation {
    /// No event yet: only `Open` is accepted.
    #[default]
    NotOpened,
    /// Open: human-handled, AI-active or reclaimed.
    Open(OpenConversation),
    /// Closed: terminal, every command is rejected. Keeps who handled it at the close.
    Closed(OpenConversation),
}

/// Who is handling an open conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Handler {
    /// Human-handled: just opened, or escalated back by an AI agent.
    Human,
    /// AI-active: an AI agent answers on its own; humans cannot post.
    Ai {
        /// The AI agent.
        agent_id: AiAgentId,
        /// Its display name, as recorded by the handoff.
        agent_name: AgentName,
    },
    /// Reclaimed: a human took it back from an AI agent.
    Reclaimed {
        /// The human who reclaimed it.
        by: HumanId,
    },
}

/// The state of an open conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenConversation {
    /// The customer.
    pub customer: CustomerId,
    /// The channel.
    pub channel: Channel,
    /// The human agent most recently in charge: assigned at open, or who reclaimed it.
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
}

/// The three states the manual names, plus the terminal one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Status {
    /// Not opened yet.
    NotOpened,
    /// A human handles it.
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
    /// A human reclaimed it from an AI agent.
    Reclaimed {
        /// The human who reclaimed it.
        by: HumanId,
    },
    /// Closed.
    Closed,
}

impl Status {
    /// `human-handled`, `ai-active`, `reclaimed`, `closed` or `not-opened`.
    pub fn label(&self) -> &'static str {
        match self {
            Status::NotOpened => "not-opened",
            Status::HumanHandled => "human-handled",
            Status::AiActive { .. } => "ai-active",
            Status::Reclaimed { .. } => "reclaimed",
            Status::Closed => "closed",
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
    }
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
    let events = match command {
        ConversationCommand::Open {
            customer,
            channel,
            human,
        } => vec![ConversationEvent::Opened {
            customer: customer.clone(),
            channel: channel.clone(),
            human: human.clone(),
        }],
        ConversationCommand::PostMessage { by, text } => {
            let open = state.open()?;
            if let Participant::Ai(assignment) = by {
                check_assignment(open, assignment)?;
            }
            let concerns = match by {
                Participant::Customer(_) => ctx.policy.assess(text.as_str()),
                _ => Vec::new(),
            };
            let asks_for_human = concerns.contains(&Concern::HumanRequested);
            let mut events = vec![ConversationEvent::MessagePosted {
                author: author(by),
                text: text.clone(),
                concerns,
            }];
            // The customer's wish wins over the AI: the message and the escalation are one
            // atomic append, so no AI reply can slip in between them.
            if let (true, Handler::Ai { agent_id, .. }) = (asks_for_human, &open.handler) {
                events.push(ConversationEvent::EscalatedToHuman {
                    agent_id: agent_id.clone(),
                    reason: Reason::new("the customer asked for a human")
                        .expect("a constant reason is valid"),
                    cause: EscalationCause::CustomerAskedForHuman,
                });
            }
            events
        }
        ConversationCommand::HandOffToAi {
            by,
            agent_id,
            reason,
        } => {
            state.open()?;
            let agent = ctx
                .roster
                .get(agent_id)
                .ok_or_else(|| Rejection::UnknownAiAgent {
                    agent_id: agent_id.clone(),
                })?;
            if !agent.active {
                return Err(Rejection::AiAgentInactive {
                    agent_id: agent_id.clone(),
                });
            }
            vec![ConversationEvent::HandedOffToAi {
                agent_id: agent_id.clone(),
                agent_name: agent.profile.name.clone(),
                by_human: by.clone(),
                reason: reason.clone(),
            }]
        }
        ConversationCommand::RecordAiAction { by, skill } => {
            check_assignment(state.open()?, by)?;
            vec![ConversationEvent::AiActionRecorded {
                agent_id: by.agent_id.clone(),
                skill: skill.clone(),
            }]
        }
        ConversationCommand::Reclaim { by, reason } => {
            let open = state.open()?;
            let Handler::Ai { agent_id, .. } = &open.handler else {
                return Err(Rejection::NotAiActive);
            };
            vec![ConversationEvent::Reclaimed {
                agent_id: agent_id.clone(),
                by_human: by.clone(),
                reason: reason.clone(),
            }]
        }
        ConversationCommand::Escalate { by, reason, cause } => {
            let open = state.open()?;
            if *cause == EscalationCause::CustomerAskedForHuman {
                // Only the policy, on a customer's message, may claim this cause.
                return Err(Rejection::EscalationCauseNotAllowed { cause: *cause });
            }
            check_assignment(open, by)?;
            vec![ConversationEvent::EscalatedToHuman {
                agent_id: by.agent_id.clone(),
                reason: reason.clone(),
                cause: *cause,
            }]
        }
        ConversationCommand::Close { by, reason } => {
            let open = state.open()?;
            if let Participant::Ai(assignment) = by {
                check_assignment(open, assignment)?;
            }
            vec![ConversationEvent::Closed {
                by: author(by),
                reason: reason.clone(),
            }]
        }
    };
    let next = events.iter().try_fold(state.clone(), evolve)?;
    Ok((events, next))
}

/// Applies one event to the state. Rejects an event that cannot follow the state, which only a
/// damaged or forged log can contain, since [`decide`] checks every event it makes.
pub fn evolve(state: Conversation, event: &ConversationEvent) -> Result<Conversation, Rejection> {
    let mut open = match (state, event) {
        (
            Conversation::NotOpened,
            ConversationEvent::Opened {
                customer,
                channel,
                human,
            },
        ) => {
            return Ok(Conversation::Open(OpenConversation {
                customer: customer.clone(),
                channel: channel.clone(),
                human: human.clone(),
                handler: Handler::Human,
                epoch: Epoch(0),
                ai_agents: Vec::new(),
                concerns: Vec::new(),
            }))
        }
        (Conversation::NotOpened, _) => return Err(Rejection::NotOpened),
        (Conversation::Closed(_), _) => return Err(Rejection::Closed),
        (Conversation::Open(open), _) => open,
    };
    match event {
        ConversationEvent::Opened { .. } => return Err(Rejection::AlreadyOpened),
        ConversationEvent::MessagePosted {
            author, concerns, ..
        } => match author {
            // Only customers' messages are assessed by the policy.
            Author::Human(_) | Author::Ai(_) if !concerns.is_empty() => {
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
            Author::Ai(agent) => require_ai(&open, agent)?,
        },
        ConversationEvent::HandedOffToAi {
            agent_id,
            agent_name,
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
            // The handoff guidance: a customer who complained, negotiated, raised something
            // sensitive or asked for a human stays with humans.
            if let Some(&concern) = open.concerns.first() {
                return Err(Rejection::HandoffAgainstPolicy { concern });
            }
            open.epoch = Epoch(open.epoch.0 + 1);
            open.ai_agents.push(agent_id.clone());
            open.handler = Handler::Ai {
                agent_id: agent_id.clone(),
                agent_name: agent_name.clone(),
            };
        }
        ConversationEvent::AiActionRecorded { agent_id, .. } => require_ai(&open, agent_id)?,
        ConversationEvent::Reclaimed {
            agent_id, by_human, ..
        } => {
            require_active_ai(&open, agent_id)?;
            open.human = Some(by_human.clone());
            open.handler = Handler::Reclaimed {
                by: by_human.clone(),
            };
        }
        ConversationEvent::EscalatedToHuman { agent_id, .. } => {
            require_active_ai(&open, agent_id)?;
            open.handler = Handler::Human;
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
            return Ok(Conversation::Closed(open));
        }
    }
    Ok(Conversation::Open(open))
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
    match event {
        Event::Conversation(event) => evolve(state, event),
        other => Err(Rejection::ForeignEvent {
            event_type: other.type_name(),
        }),
    }
}
