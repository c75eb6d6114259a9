//! Random command sequences against one conversation and a changing roster: every accepted
//! command's events fold, every rejected command records nothing, and the accepted history
//! keeps the conversation's invariants.

use handover_core::{
    agent, conversation, AgentName, AiAgentCommand, AiAgentId, Assignment, Author, Channel,
    Concern, Conversation, ConversationCommand, ConversationEvent, Ctx, CustomerId, DefaultPolicy,
    Epoch, EscalationCause, HumanId, MessageText, Participant, Reason, Roster, Skill, SkillData,
    SkillName, SkillOutcome, Specialty,
};
use proptest::prelude::*;

/// `faq` and `sales` start active, `idle` starts registered but inactive, `ghost` starts
/// unregistered (a `Register` step may register it).
const AGENTS: [&str; 4] = ["faq", "sales", "idle", "ghost"];
const HUMANS: [&str; 2] = ["ana", "bob"];
const CUSTOMER: &str = "cust-1";
const OTHER_CUSTOMER: &str = "cust-2";

/// Customer messages, mostly ordinary so that handoffs stay possible for a while.
const TEXTS: [&str; 6] = [
    "What are your business hours?",
    "How much is the pro plan?",
    "Thanks!",
    "This is unacceptable",
    "Can we negotiate a discount?",
    "Can I talk to a human?",
];

/// Which AI agent acts: one by name, or whichever holds the conversation now.
#[derive(Clone, Debug)]
enum Who {
    Named(usize),
    Current,
}

/// Which epoch an AI agent's command carries, relative to the conversation's current one.
#[derive(Clone, Debug)]
enum EpochPick {
    Current,
    Previous,
    Next,
    Fixed(u64),
}

#[derive(Clone, Debug)]
enum Closer {
    Customer { right: bool },
    Human(usize),
    Ai(Who, EpochPick),
}

#[derive(Clone, Debug)]
enum Step {
    Open {
        assigned: bool,
    },
    PostCustomer {
        right: bool,
        text: usize,
    },
    PostHuman(usize),
    PostAi(Who, EpochPick),
    HandOff {
        human: usize,
        to: Who,
        with_reason: bool,
    },
    RecordSkill(Who, EpochPick),
    Reclaim(usize),
    Escalate(Who, EpochPick, EscalationCause),
    Close(Closer),
    Register(usize),
    Activate(usize),
    Deactivate(usize),
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        3 => Just(Who::Current),
        2 => (0..AGENTS.len()).prop_map(Who::Named),
    ]
}

/// Mostly the agents that start active, so that conversations spend time AI-active.
fn handoff_target() -> impl Strategy<Value = Who> {
    prop_oneof![
        4 => (0..2usize).prop_map(Who::Named),
        1 => (2..AGENTS.len()).prop_map(Who::Named),
    ]
}

fn epoch_pick() -> impl Strategy<Value = EpochPick> {
    prop_oneof![
        6 => Just(EpochPick::Current),
        2 => Just(EpochPick::Previous),
        1 => Just(EpochPick::Next),
        1 => (0u64..4).prop_map(EpochPick::Fixed),
    ]
}

fn cause() -> impl Strategy<Value = EscalationCause> {
    prop_oneof![
        Just(EscalationCause::AgentRequested),
        Just(EscalationCause::CustomerAskedForHuman),
        Just(EscalationCause::AgentDeactivated),
    ]
}

fn text_index() -> impl Strategy<Value = usize> {
    prop_oneof![
        30 => 0..3usize,
        1 => Just(3usize),
        1 => Just(4usize),
        2 => Just(5usize),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => any::<bool>().prop_map(|assigned| Step::Open { assigned }),
        12 => (prop::bool::weighted(0.85), text_index())
            .prop_map(|(right, text)| Step::PostCustomer { right, text }),
        8 => (0..HUMANS.len()).prop_map(Step::PostHuman),
        12 => (who(), epoch_pick()).prop_map(|(w, e)| Step::PostAi(w, e)),
        10 => (0..HUMANS.len(), handoff_target(), any::<bool>())
            .prop_map(|(human, to, with_reason)| Step::HandOff { human, to, with_reason }),
        6 => (who(), epoch_pick()).prop_map(|(w, e)| Step::RecordSkill(w, e)),
        6 => (0..HUMANS.len()).prop_map(Step::Reclaim),
        4 => (who(), epoch_pick(), cause()).prop_map(|(w, e, c)| Step::Escalate(w, e, c)),
        1 => prop_oneof![
            prop::bool::weighted(0.8).prop_map(|right| Closer::Customer { right }),
            (0..HUMANS.len()).prop_map(Closer::Human),
            (who(), epoch_pick()).prop_map(|(w, e)| Closer::Ai(w, e)),
        ]
        .prop_map(Step::Close),
        2 => (0..AGENTS.len()).prop_map(Step::Register),
        4 => (0..AGENTS.len()).prop_map(Step::Activate),
        4 => (0..AGENTS.len()).prop_map(Step::Deactivate),
    ]
}

/// Most sequences open the conversation first; some leave it to chance.
fn steps() -> impl Strategy<Value = Vec<Step>> {
    (
        prop::bool::weighted(0.9),
        prop::collection::vec(step(), 0..60),
    )
        .prop_map(|(open_first, mut steps)| {
            if open_first {
                steps.insert(0, Step::Open { assigned: true });
            }
            steps
        })
}

fn ai(id: &str) -> AiAgentId {
    AiAgentId::new(id).unwrap()
}

fn human(index: usize) -> HumanId {
    HumanId::new(HUMANS[index]).unwrap()
}

fn customer(right: bool) -> CustomerId {
    CustomerId::new(if right { CUSTOMER } else { OTHER_CUSTOMER }).unwrap()
}

fn reason(text: &str) -> Reason {
    Reason::new(text).unwrap()
}

fn register_command(id: &str) -> AiAgentCommand {
    AiAgentCommand::Register {
        name: AgentName::new(format!("{id} bot")).unwrap(),
        specialties: vec![Specialty::new("faq").unwrap()],
    }
}

fn initial_roster() -> Roster {
    let mut roster = Roster::default();
    for (id, active) in [("faq", true), ("sales", true), ("idle", false)] {
        let mut commands = vec![register_command(id)];
        if active {
            commands.push(AiAgentCommand::Activate);
        }
        for command in commands {
            for event in agent::decide(&ai(id), roster.get(&ai(id)), &command).unwrap() {
                roster.evolve(&event).unwrap();
            }
        }
    }
    roster
}

fn epoch_of(state: &Conversation) -> Epoch {
    match state {
        Conversation::NotOpened => Epoch(0),
        Conversation::Open(open) | Conversation::Closed(open) => open.epoch,
    }
}

/// Resolves a step's choices against the current state.
fn assignment(state: &Conversation, who: &Who, pick: &EpochPick) -> Assignment {
    let agent_id = match (who, state.assignment()) {
        (Who::Named(i), _) => ai(AGENTS[*i]),
        (Who::Current, Some(current)) => current.agent_id,
        // Nobody holds the conversation: the agent that held it last is unknown here, so any
        // agent will do; `faq` is the one most often handed the conversation.
        (Who::Current, None) => ai("faq"),
    };
    let current = epoch_of(state).0;
    let epoch = match pick {
        EpochPick::Current => current,
        EpochPick::Previous => current.saturating_sub(1),
        EpochPick::Next => current + 1,
        EpochPick::Fixed(n) => *n,
    };
    Assignment {
        agent_id,
        epoch: Epoch(epoch),
    }
}

fn skill() -> Skill {
    Skill {
        name: SkillName::new("lookup_price").unwrap(),
        input: SkillData::new(r#"{"plan":"pro"}"#).unwrap(),
        outcome: SkillOutcome::Succeeded(SkillData::new(r#"{"usd":49}"#).unwrap()),
    }
}

fn conversation_command(state: &Conversation, step: &Step) -> Option<ConversationCommand> {
    Some(match step {
        Step::Open { assigned } => ConversationCommand::Open {
            customer: customer(true),
            channel: Channel::new("web-chat").unwrap(),
            human: assigned.then(|| human(0)),
        },
        Step::PostCustomer { right, text } => ConversationCommand::PostMessage {
            by: Participant::Customer(customer(*right)),
            text: MessageText::new(TEXTS[*text]).unwrap(),
        },
        Step::PostHuman(h) => ConversationCommand::PostMessage {
            by: Participant::Human(human(*h)),
            text: MessageText::new("Hello from a human").unwrap(),
        },
        Step::PostAi(who, pick) => ConversationCommand::PostMessage {
            by: Participant::Ai(assignment(state, who, pick)),
            text: MessageText::new("Hello from an AI agent").unwrap(),
        },
        Step::HandOff {
            human: h,
            to,
            with_reason,
        } => ConversationCommand::HandOffToAi {
            by: human(*h),
            agent_id: assignment(state, to, &EpochPick::Current).agent_id,
            reason: with_reason.then(|| reason("routine question")),
        },
        Step::RecordSkill(who, pick) => ConversationCommand::RecordAiAction {
            by: assignment(state, who, pick),
            skill: skill(),
        },
        Step::Reclaim(h) => ConversationCommand::Reclaim {
            by: human(*h),
            reason: None,
        },
        Step::Escalate(who, pick, cause) => ConversationCommand::Escalate {
            by: assignment(state, who, pick),
            reason: reason("needs a human"),
            cause: *cause,
        },
        Step::Close(closer) => ConversationCommand::Close {
            by: match closer {
                Closer::Customer { right } => Participant::Customer(customer(*right)),
                Closer::Human(h) => Participant::Human(human(*h)),
                Closer::Ai(who, pick) => Participant::Ai(assignment(state, who, pick)),
            },
            reason: Some(reason("done")),
        },
        Step::Register(_) | Step::Activate(_) | Step::Deactivate(_) => return None,
    })
}

fn agent_command(step: &Step) -> Option<(AiAgentId, AiAgentCommand)> {
    match step {
        Step::Register(i) => Some((ai(AGENTS[*i]), register_command(AGENTS[*i]))),
        Step::Activate(i) => Some((ai(AGENTS[*i]), AiAgentCommand::Activate)),
        Step::Deactivate(i) => Some((ai(AGENTS[*i]), AiAgentCommand::Deactivate)),
        _ => None,
    }
}

/// The acting AI assignment of a command, if an AI agent issues it.
fn ai_actor(command: &ConversationCommand) -> Option<&Assignment> {
    match command {
        ConversationCommand::PostMessage {
            by: Participant::Ai(a),
            ..
        }
        | ConversationCommand::Close {
            by: Participant::Ai(a),
            ..
        } => Some(a),
        ConversationCommand::RecordAiAction { by, .. }
        | ConversationCommand::Escalate { by, .. } => Some(by),
        _ => None,
    }
}

/// Checks what an accepted command may do, given the state before it and the roster.
fn check_accepted(
    before: &Conversation,
    after: &Conversation,
    command: &ConversationCommand,
    events: &[ConversationEvent],
    roster: &Roster,
) -> Result<(), TestCaseError> {
    prop_assert!(!events.is_empty(), "an accepted command produced no event");
    prop_assert!(
        !matches!(before, Conversation::Closed(_)),
        "a command was accepted after close: {command:?}"
    );
    if !matches!(command, ConversationCommand::Open { .. }) {
        prop_assert!(
            matches!(before, Conversation::Open(_)),
            "{command:?} was accepted before open"
        );
    }
    if let Some(acting) = ai_actor(command) {
        prop_assert_eq!(
            Some(acting.clone()),
            before.assignment(),
            "an AI command was accepted from an agent or epoch that does not hold the conversation"
        );
    }
    match command {
        ConversationCommand::PostMessage {
            by: Participant::Human(_),
            ..
        } => prop_assert!(
            before.assignment().is_none(),
            "a human posted while AI-active"
        ),
        ConversationCommand::PostMessage {
            by: Participant::Customer(who),
            ..
        } => {
            prop_assert_eq!(who, &customer(true), "someone else posted as the customer");
            let asked = matches!(
                &events[0],
                ConversationEvent::MessagePosted { concerns, .. }
                    if concerns.contains(&Concern::HumanRequested)
            );
            if asked && before.assignment().is_some() {
                prop_assert_eq!(events.len(), 2, "the request for a human was not escalated");
                prop_assert!(
                    matches!(
                        &events[1],
                        ConversationEvent::EscalatedToHuman {
                            cause: EscalationCause::CustomerAskedForHuman,
                            ..
                        }
                    ),
                    "the request for a human was not escalated: {events:?}"
                );
                prop_assert!(after.assignment().is_none());
            } else {
                prop_assert_eq!(events.len(), 1);
            }
        }
        ConversationCommand::HandOffToAi { agent_id, .. } => {
            let agent = roster.get(agent_id);
            prop_assert!(
                agent.is_some_and(|a| a.active),
                "handed off to an agent that is not active"
            );
            let Conversation::Open(open) = before else {
                unreachable!("checked above")
            };
            prop_assert!(
                open.concerns.is_empty(),
                "handed off against the policy: {:?}",
                open.concerns
            );
            prop_assert_eq!(epoch_of(after).0, epoch_of(before).0 + 1);
        }
        ConversationCommand::Escalate { cause, .. } => prop_assert_ne!(
            *cause,
            EscalationCause::CustomerAskedForHuman,
            "an AI agent claimed the customer asked for a human"
        ),
        _ => {}
    }
    if !matches!(command, ConversationCommand::HandOffToAi { .. }) {
        prop_assert_eq!(
            epoch_of(after),
            epoch_of(before),
            "only a handoff moves the epoch"
        );
    }
    Ok(())
}

/// An independent reading of the accepted history: which agent holds the conversation and under
/// which epoch, checked event by event.
fn audit(history: &[ConversationEvent]) -> Result<(), TestCaseError> {
    enum Holder {
        NotOpened,
        Human,
        Ai(AiAgentId),
        Closed,
    }
    let mut holder = Holder::NotOpened;
    let mut customer_id: Option<CustomerId> = None;
    let mut epoch = 0u64;
    for (i, event) in history.iter().enumerate() {
        prop_assert!(
            !matches!(holder, Holder::Closed),
            "event {i} follows the close: {event:?}"
        );
        if !matches!(event, ConversationEvent::Opened { .. }) {
            prop_assert!(
                !matches!(holder, Holder::NotOpened),
                "event {i} precedes the open"
            );
        }
        match event {
            ConversationEvent::Opened { customer, .. } => {
                prop_assert!(matches!(holder, Holder::NotOpened), "opened twice at {i}");
                customer_id = Some(customer.clone());
                holder = Holder::Human;
            }
            ConversationEvent::MessagePosted { author, .. } => match author {
                Author::Customer(c) => prop_assert_eq!(Some(c), customer_id.as_ref()),
                Author::Human(_) => prop_assert!(
                    !matches!(holder, Holder::Ai(_)),
                    "human message {i} while AI-active"
                ),
                Author::Ai(a) => prop_assert!(
                    matches!(&holder, Holder::Ai(current) if current == a),
                    "AI message {i} from {a}, which does not hold the conversation"
                ),
                other => prop_assert!(false, "message {i} by an unknown author {other:?}"),
            },
            ConversationEvent::HandedOffToAi { agent_id, .. } => {
                prop_assert!(
                    !matches!(&holder, Holder::Ai(current) if current == agent_id),
                    "handed to the agent that holds it at {i}"
                );
                epoch += 1;
                holder = Holder::Ai(agent_id.clone());
            }
            ConversationEvent::AiActionRecorded { agent_id, .. } => prop_assert!(
                matches!(&holder, Holder::Ai(current) if current == agent_id),
                "skill {i} from {agent_id}, which does not hold the conversation"
            ),
            ConversationEvent::Reclaimed { agent_id, .. }
            | ConversationEvent::EscalatedToHuman { agent_id, .. } => {
                prop_assert!(
                    matches!(&holder, Holder::Ai(current) if current == agent_id),
                    "event {i} ends an assignment {agent_id} does not hold"
                );
                holder = Holder::Human;
            }
            ConversationEvent::Closed { by, .. } => {
                if let Author::Ai(a) = by {
                    prop_assert!(matches!(&holder, Holder::Ai(current) if current == a));
                }
                holder = Holder::Closed;
            }
            other => prop_assert!(false, "event {i} is unknown to this model: {other:?}"),
        }
    }
    let folded = conversation::fold(history)
        .map_err(|r| TestCaseError::fail(format!("the accepted history does not fold: {r}")))?;
    prop_assert_eq!(
        epoch_of(&folded).0,
        epoch,
        "the epoch is not the number of handoffs"
    );
    Ok(())
}

/// Runs `steps`, checking every step, and returns the final state and the accepted history.
fn run(steps: &[Step]) -> Result<(Conversation, Vec<ConversationEvent>), TestCaseError> {
    let policy = DefaultPolicy::default();
    let mut roster = initial_roster();
    let mut state = Conversation::default();
    let mut history: Vec<ConversationEvent> = Vec::new();
    let mut epochs_seen = vec![0u64];
    for step in steps {
        if let Some((agent_id, command)) = agent_command(step) {
            if let Ok(events) = agent::decide(&agent_id, roster.get(&agent_id), &command) {
                for event in &events {
                    roster
                        .evolve(event)
                        .map_err(|r| TestCaseError::fail(format!("roster does not fold: {r}")))?;
                }
            }
            continue;
        }
        let Some(command) = conversation_command(&state, step) else {
            continue;
        };
        let ctx = Ctx {
            roster: &roster,
            policy: &policy,
        };
        match conversation::decide(&state, &command, &ctx) {
            Ok(events) => {
                let mut after = state.clone();
                for event in &events {
                    after = conversation::evolve(after, event).map_err(|r| {
                        TestCaseError::fail(format!(
                            "accepted {command:?} gave {event:?}, which does not fold: {r}"
                        ))
                    })?;
                }
                check_accepted(&state, &after, &command, &events, &roster)?;
                if matches!(command, ConversationCommand::HandOffToAi { .. }) {
                    let epoch = epoch_of(&after).0;
                    prop_assert!(
                        epochs_seen.iter().all(|&seen| seen < epoch),
                        "handoff epoch {epoch} is not above every earlier one {epochs_seen:?}"
                    );
                    epochs_seen.push(epoch);
                }
                history.extend(events);
                state = after;
            }
            Err(_) => {
                // A rejected command records nothing: the state and history are untouched by
                // construction, and the state must still be their fold.
            }
        }
        let folded = conversation::fold(&history)
            .map_err(|r| TestCaseError::fail(format!("the history does not fold: {r}")))?;
        prop_assert_eq!(
            &state,
            &folded,
            "the state is not the fold of the accepted events"
        );
        audit(&history)?;
    }
    Ok((state, history))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_sequences_keep_every_invariant(steps in steps()) {
        run(&steps)?;
    }
}

#[test]
fn the_generator_reaches_the_interesting_states() {
    // A fixed sequence through every kind of step, so the property's machinery is exercised
    // even where random sequences rarely go (ABA, a deactivation while AI-active, close by AI).
    let steps = vec![
        Step::Open { assigned: true },
        Step::PostCustomer {
            right: true,
            text: 0,
        },
        Step::HandOff {
            human: 0,
            to: Who::Named(0),
            with_reason: true,
        },
        Step::PostHuman(1),
        Step::PostAi(Who::Current, EpochPick::Current),
        Step::RecordSkill(Who::Named(1), EpochPick::Current),
        Step::Reclaim(1),
        Step::PostAi(Who::Named(0), EpochPick::Current),
        Step::HandOff {
            human: 1,
            to: Who::Named(0),
            with_reason: false,
        },
        Step::PostAi(Who::Current, EpochPick::Previous),
        Step::Deactivate(0),
        Step::Escalate(
            Who::Current,
            EpochPick::Current,
            EscalationCause::AgentDeactivated,
        ),
        Step::Register(3),
        Step::Activate(3),
        Step::HandOff {
            human: 0,
            to: Who::Named(3),
            with_reason: false,
        },
        Step::PostCustomer {
            right: false,
            text: 5,
        },
        Step::Close(Closer::Ai(Who::Current, EpochPick::Current)),
        Step::PostCustomer {
            right: true,
            text: 1,
        },
    ];
    let (state, history) = run(&steps).unwrap();
    let kinds: Vec<&str> = history.iter().map(ConversationEvent::type_name).collect();
    assert_eq!(
        kinds,
        vec![
            "conversation_opened",
            "message_posted",
            "handed_off_to_ai",
            "message_posted",
            "reclaimed",
            "handed_off_to_ai",
            "escalated_to_human",
            "handed_off_to_ai",
            "conversation_closed",
        ]
    );
    assert_eq!(state.status(), handover_core::Status::Closed);
    assert_eq!(epoch_of(&state), Epoch(3));
}
