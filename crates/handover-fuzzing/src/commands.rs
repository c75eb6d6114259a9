//! `command_sequence`: bytes read as a sequence of commands on two conversations and on the
//! AI-agent roster, from customers, humans and AI agents (right and wrong ones, current and
//! stale epochs), run through the pure `decide` and `evolve` of `handover_core`, with every
//! accepted event also replayed by the audit (`handover_audit::Replay`).
//!
//! The input format, one step after another until the input ends (an exhausted input reads as
//! zeros):
//!
//! | op (byte % 13) | step | then |
//! | --- | --- | --- |
//! | 0 | switch to the other conversation | |
//! | 1 | open | customer, channel, human (0: none) |
//! | 2 | customer posts | customer, text |
//! | 3 | human posts | human, text |
//! | 4 | AI agent posts | who, epoch, text |
//! | 5 | hand off to an AI agent | human, agent, reason (0: none) |
//! | 6 | AI agent records a skill | who, epoch, skill |
//! | 7 | reclaim | human, reason (0: none) |
//! | 8 | AI agent escalates | who, epoch, cause, reason |
//! | 9 | close | closer, reason (0: none) |
//! | 10, 11, 12 | register, activate, deactivate an AI agent | agent (register: name, count) |
//!
//! An identity or text byte below 0xF0 picks from the tables in `values.rs`; from 0xF0 up, a
//! length byte and raw bytes follow. `who` below 0x80 is the agent holding the conversation
//! (`faq` if none), else agent `(who - 0x80) % 4`; `epoch % 8` is 0-4 current, 5 previous,
//! 6 next, 7 the next eight bytes.

use handover_audit::Replay;
use handover_core::{
    agent, conversation, AgentName, AiAgentCommand, AiAgentId, Assignment, Author, Channel,
    Concern, Conversation, ConversationCommand, ConversationEvent, Ctx, DefaultPolicy, Epoch,
    EscalationCause, Event, Participant, Policy, Rejection, Roster, Skill, SkillData, SkillName,
    SkillOutcome, Specialty, StreamId,
};
use handover_store::{RecordedAt, RecordedEvent};

use crate::input::Input;
use crate::values::{self, AGENTS, CHANNELS, NAMES, REASONS, SKILLS, SKILL_DATA, SPECIALTIES};

/// Steps an input can hold, so that a long input stays fast.
const STEPS_MAX: usize = 2_000;

/// One conversation: its state as folded step by step, and its accepted history.
#[derive(Default)]
struct Tracked {
    state: Conversation,
    history: Vec<ConversationEvent>,
}

/// Everything the sequence has built, and the audit replaying it alongside.
struct World {
    roster: Roster,
    policy: DefaultPolicy,
    conversations: [Tracked; 2],
    current: usize,
    replay: Replay,
    position: u64,
    agent_versions: std::collections::BTreeMap<AiAgentId, u64>,
    /// Every accepted command's events, with their stream, in order.
    batches: Vec<(StreamId, Vec<Event>)>,
}

/// What a run did, for the replay test's figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SequenceFigures {
    /// Conversation commands decided.
    pub decided: u64,
    /// Of those, accepted.
    pub accepted: u64,
    /// Events recorded (conversation and AI-agent ones), each also replayed by the audit.
    pub events: u64,
}

fn ai(id: &str) -> AiAgentId {
    AiAgentId::new(id).expect("a valid table id")
}

impl World {
    fn new() -> World {
        let mut world = World {
            roster: Roster::default(),
            policy: DefaultPolicy::default(),
            conversations: Default::default(),
            current: 0,
            replay: Replay::new(),
            position: 0,
            agent_versions: Default::default(),
            batches: Vec::new(),
        };
        for (id, active) in [("faq", true), ("sales", true), ("idle", false)] {
            let register = AiAgentCommand::Register {
                name: AgentName::new(format!("{id} bot")).expect("a valid name"),
                specialties: vec![Specialty::new("faq").expect("a valid specialty")],
            };
            assert!(world.agent_command(&ai(id), &register), "initial roster");
            if active {
                assert!(world.agent_command(&ai(id), &AiAgentCommand::Activate));
            }
        }
        world
    }

    /// Appends one event to the audit's replay, which must accept it: whatever `decide`
    /// accepts, the audit must find sound.
    fn record(&mut self, stream: StreamId, seq: u64, event: Event) {
        self.position += 1;
        let record = RecordedEvent {
            position: self.position,
            stream,
            seq,
            recorded_at: RecordedAt(1_720_000_000_000_000 + self.position as i64),
            event,
        };
        if let Err(fault) = self.replay.apply(&record) {
            panic!("the audit refuses an event decide accepted: {fault}\nrecord: {record:?}");
        }
    }

    /// Decides and applies a roster command; whether it was accepted.
    fn agent_command(&mut self, id: &AiAgentId, command: &AiAgentCommand) -> bool {
        let decided = agent::decide(id, self.roster.get(id), command);
        assert_eq!(
            decided,
            agent::decide(id, self.roster.get(id), command),
            "agent::decide is not deterministic"
        );
        let Ok(events) = decided else {
            return false;
        };
        assert!(
            !events.is_empty(),
            "an accepted agent command made no event"
        );
        let stream = StreamId::AiAgent(id.clone());
        self.batches
            .push((stream, events.iter().cloned().map(Event::AiAgent).collect()));
        for event in events {
            if let Err(rejection) = self.roster.evolve(&event) {
                panic!("an accepted agent event does not fold: {rejection}: {event:?}");
            }
            let version = self.agent_versions.entry(id.clone()).or_insert(0);
            *version += 1;
            let seq = *version;
            self.record(StreamId::AiAgent(id.clone()), seq, Event::AiAgent(event));
        }
        true
    }

    fn conversation_command(
        &mut self,
        command: &ConversationCommand,
        figures: &mut SequenceFigures,
    ) {
        let index = self.current;
        let ctx = Ctx {
            roster: &self.roster,
            policy: &self.policy,
        };
        let before = &self.conversations[index].state;
        let decided = conversation::decide_with_state(before, command, &ctx);
        assert_eq!(
            decided,
            conversation::decide_with_state(before, command, &ctx),
            "decide is not deterministic"
        );
        figures.decided += 1;
        let (events, after) = match decided {
            Ok(accepted) => accepted,
            Err(rejection) => {
                check_rejected(before, command, &rejection);
                return;
            }
        };
        figures.accepted += 1;
        check_accepted(before, &after, command, &events, &self.roster, &self.policy);
        // Every event folds with `evolve`, one by one, to the state `decide` announced.
        let mut folded = before.clone();
        for event in &events {
            folded = match conversation::evolve(folded, event) {
                Ok(next) => next,
                Err(rejection) => {
                    panic!("accepted {command:?} made {event:?}, which does not fold: {rejection}")
                }
            };
        }
        assert_eq!(
            folded, after,
            "decide's state is not the fold of its events"
        );
        let tracked = &mut self.conversations[index];
        tracked.history.extend(events.iter().cloned());
        tracked.state = after;
        // Folding the whole history from scratch gives the same state.
        match conversation::fold(&tracked.history) {
            Ok(state) => assert_eq!(state, tracked.state, "the history folds to another state"),
            Err(rejection) => panic!("the accepted history does not fold: {rejection}"),
        }
        audit_history(&tracked.history);
        let stream = StreamId::Conversation(values::conversation_id(index as u128 + 1));
        let first_seq = tracked.history.len() - events.len() + 1;
        self.batches.push((
            stream.clone(),
            events.iter().cloned().map(Event::Conversation).collect(),
        ));
        for (seq, event) in (first_seq as u64..).zip(events) {
            self.record(stream.clone(), seq, Event::Conversation(event));
        }
        // The audit's view of the conversation is the runtime's.
        let id = values::conversation_id(index as u128 + 1);
        let replayed = self.replay.conversation(&id).map(|history| history.state());
        assert_eq!(
            replayed,
            Some(&self.conversations[index].state),
            "the audit replays conversation {index} to another state"
        );
    }
}

/// What a rejected command must have been refused for, where the state alone decides it.
fn check_rejected(before: &Conversation, command: &ConversationCommand, rejection: &Rejection) {
    match before {
        // Closed is terminal: every command is refused, as closed.
        Conversation::Closed(_) => assert_eq!(
            rejection,
            &Rejection::Closed,
            "{command:?} on a closed conversation"
        ),
        Conversation::NotOpened => assert!(
            !matches!(command, ConversationCommand::Open { .. }),
            "opening a new conversation was refused: {rejection}"
        ),
        Conversation::Open(_) => assert_ne!(
            rejection,
            &Rejection::NotOpened,
            "{command:?} on an open conversation refused as not opened"
        ),
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

fn epoch_of(state: &Conversation) -> Epoch {
    match state {
        Conversation::NotOpened => Epoch(0),
        Conversation::Open(open) | Conversation::Closed(open) => open.epoch,
    }
}

/// What an accepted command may do, given the state before it.
fn check_accepted(
    before: &Conversation,
    after: &Conversation,
    command: &ConversationCommand,
    events: &[ConversationEvent],
    roster: &Roster,
    policy: &DefaultPolicy,
) {
    assert!(!events.is_empty(), "accepted {command:?} made no event");
    assert!(
        !matches!(before, Conversation::Closed(_)),
        "{command:?} was accepted after the close"
    );
    if matches!(command, ConversationCommand::Open { .. }) {
        assert!(matches!(before, Conversation::NotOpened), "opened twice");
    } else {
        assert!(
            matches!(before, Conversation::Open(_)),
            "{command:?} was accepted before the open"
        );
    }
    // AI replies, skills, escalations and closes only while AI-active, from the agent that
    // holds the conversation, under the current epoch.
    if let Some(acting) = ai_actor(command) {
        assert_eq!(
            Some(acting),
            before.assignment().as_ref(),
            "an AI command was accepted from an agent or epoch that does not hold the conversation"
        );
    }
    match command {
        ConversationCommand::PostMessage {
            by: Participant::Human(_),
            ..
        } => assert!(
            before.assignment().is_none(),
            "a human posted while AI-active"
        ),
        ConversationCommand::PostMessage {
            by: Participant::Customer(who),
            text,
        } => {
            let Conversation::Open(open) = before else {
                unreachable!("checked above")
            };
            assert_eq!(who, &open.customer, "someone else posted as the customer");
            let ConversationEvent::MessagePosted { concerns, .. } = &events[0] else {
                panic!("a customer message made {:?}", events[0]);
            };
            let mut sorted = concerns.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(&sorted, concerns, "concerns are not sorted and unique");
            assert_eq!(
                concerns,
                &policy.assess(text.as_str()),
                "the policy is not pure"
            );
            let asked = concerns.contains(&Concern::HumanRequested);
            if asked && before.assignment().is_some() {
                assert!(
                    matches!(
                        events,
                        [
                            _,
                            ConversationEvent::EscalatedToHuman {
                                cause: EscalationCause::CustomerAskedForHuman,
                                ..
                            }
                        ]
                    ),
                    "a request for a human while AI-active was not escalated: {events:?}"
                );
                assert!(after.assignment().is_none());
            } else {
                assert_eq!(events.len(), 1, "{events:?}");
            }
        }
        ConversationCommand::HandOffToAi { agent_id, .. } => {
            assert!(
                roster.get(agent_id).is_some_and(|a| a.active),
                "handed off to an agent that is not active"
            );
            let Conversation::Open(open) = before else {
                unreachable!("checked above")
            };
            assert!(
                open.concerns.is_empty(),
                "handed off against the policy: {:?}",
                open.concerns
            );
            assert_eq!(epoch_of(after).0, epoch_of(before).0 + 1);
        }
        ConversationCommand::Escalate { cause, .. } => assert_ne!(
            *cause,
            EscalationCause::CustomerAskedForHuman,
            "an AI agent claimed the customer asked for a human"
        ),
        ConversationCommand::Close { .. } => {
            assert!(
                matches!(after, Conversation::Closed(_)),
                "close did not close"
            )
        }
        _ => {}
    }
    if !matches!(command, ConversationCommand::HandOffToAi { .. }) {
        assert_eq!(
            epoch_of(after),
            epoch_of(before),
            "only a handoff moves the epoch"
        );
    }
}

/// An independent reading of an accepted history: who holds the conversation, event by event.
fn audit_history(history: &[ConversationEvent]) {
    #[derive(PartialEq)]
    enum Holder {
        NotOpened,
        Human,
        Ai(AiAgentId),
        Closed,
    }
    let mut holder = Holder::NotOpened;
    let mut epoch = 0u64;
    for (i, event) in history.iter().enumerate() {
        assert!(
            holder != Holder::Closed,
            "event {i} follows the close: {event:?}"
        );
        match event {
            ConversationEvent::Opened { .. } => {
                assert!(holder == Holder::NotOpened, "opened twice at {i}");
                holder = Holder::Human;
            }
            _ if holder == Holder::NotOpened => panic!("event {i} precedes the open"),
            ConversationEvent::MessagePosted { author, .. } => match author {
                Author::Customer(_) => {}
                Author::Human(_) => assert!(
                    !matches!(holder, Holder::Ai(_)),
                    "human message {i} while AI-active"
                ),
                Author::Ai(a) => assert!(
                    holder == Holder::Ai(a.clone()),
                    "AI message {i} from {a}, which does not hold the conversation"
                ),
                other => panic!("message {i} by an author the model does not know: {other:?}"),
            },
            ConversationEvent::HandedOffToAi { agent_id, .. } => {
                assert!(
                    holder != Holder::Ai(agent_id.clone()),
                    "handed to its holder at {i}"
                );
                epoch += 1;
                holder = Holder::Ai(agent_id.clone());
            }
            ConversationEvent::AiActionRecorded { agent_id, .. } => assert!(
                holder == Holder::Ai(agent_id.clone()),
                "skill {i} from {agent_id}, which does not hold the conversation"
            ),
            ConversationEvent::Reclaimed { agent_id, .. }
            | ConversationEvent::EscalatedToHuman { agent_id, .. } => {
                assert!(
                    holder == Holder::Ai(agent_id.clone()),
                    "event {i} ends an assignment {agent_id} does not hold"
                );
                holder = Holder::Human;
            }
            ConversationEvent::Closed { by, .. } => {
                if let Author::Ai(a) = by {
                    assert!(holder == Holder::Ai(a.clone()), "closed by {a} at {i}");
                }
                holder = Holder::Closed;
            }
            other => panic!("event {i} is one the model does not know: {other:?}"),
        }
    }
    if let Ok(state) = conversation::fold(history) {
        assert_eq!(
            epoch_of(&state).0,
            epoch,
            "the epoch is not the number of handoffs"
        );
    }
}

/// Which AI agent a step names, resolved against the state.
fn assignment(input: &mut Input<'_>, state: &Conversation) -> Assignment {
    let who = input.byte();
    let agent_id = match (who, state.assignment()) {
        (0x80.., _) => ai(AGENTS[usize::from(who - 0x80) % AGENTS.len()]),
        (_, Some(current)) => current.agent_id,
        (_, None) => ai("faq"),
    };
    let current = epoch_of(state).0;
    let epoch = match input.byte() % 8 {
        0..=4 => current,
        5 => current.saturating_sub(1),
        6 => current + 1,
        _ => input.u64(),
    };
    Assignment {
        agent_id,
        epoch: Epoch(epoch),
    }
}

fn optional_reason(input: &mut Input<'_>) -> Option<handover_core::Reason> {
    match input.byte() {
        0 => None,
        n => Some(values::pick(
            &mut Input::new(&[n - 1]),
            &REASONS,
            handover_core::Reason::new,
        )),
    }
}

/// Reads one conversation command, resolved against the current state.
fn read_command(op: usize, input: &mut Input<'_>, state: &Conversation) -> ConversationCommand {
    match op {
        1 => ConversationCommand::Open {
            customer: values::customer_id(input),
            channel: values::pick(input, &CHANNELS, Channel::new),
            human: match input.byte() {
                0 => None,
                n => Some(values::human_id(&mut Input::new(&[n - 1]))),
            },
        },
        2 => ConversationCommand::PostMessage {
            by: Participant::Customer(values::customer_id(input)),
            text: values::message(input),
        },
        3 => ConversationCommand::PostMessage {
            by: Participant::Human(values::human_id(input)),
            text: values::message(input),
        },
        4 => {
            let by = Participant::Ai(assignment(input, state));
            ConversationCommand::PostMessage {
                by,
                text: values::message(input),
            }
        }
        5 => ConversationCommand::HandOffToAi {
            by: values::human_id(input),
            agent_id: values::agent_id(input),
            reason: optional_reason(input),
        },
        6 => ConversationCommand::RecordAiAction {
            by: assignment(input, state),
            skill: Skill {
                name: values::pick(input, &SKILLS, SkillName::new),
                input: values::pick(input, &SKILL_DATA, SkillData::new),
                outcome: match input.bool() {
                    false => {
                        SkillOutcome::Succeeded(values::pick(input, &SKILL_DATA, SkillData::new))
                    }
                    true => SkillOutcome::Failed(values::pick(input, &SKILL_DATA, SkillData::new)),
                },
            },
        },
        7 => ConversationCommand::Reclaim {
            by: values::human_id(input),
            reason: optional_reason(input),
        },
        8 => ConversationCommand::Escalate {
            by: assignment(input, state),
            cause: [
                EscalationCause::AgentRequested,
                EscalationCause::CustomerAskedForHuman,
                EscalationCause::AgentDeactivated,
            ][input.below(3)],
            reason: values::reason(input),
        },
        _ => ConversationCommand::Close {
            by: match input.below(3) {
                0 => Participant::Customer(values::customer_id(input)),
                1 => Participant::Human(values::human_id(input)),
                _ => Participant::Ai(assignment(input, state)),
            },
            reason: optional_reason(input),
        },
    }
}

/// Runs the sequence in `data`, checking every step; returns what it did.
pub fn run_sequence(data: &[u8]) -> SequenceFigures {
    run(data).0
}

/// The events of every command a sequence had accepted, with their streams, in order: what a
/// store would hold after the runtime ran the sequence.
pub(crate) fn recorded_history(data: &[u8]) -> Vec<(StreamId, Vec<Event>)> {
    run(data).1.batches
}

fn run(data: &[u8]) -> (SequenceFigures, World) {
    let mut world = World::new();
    let mut figures = SequenceFigures::default();
    let mut input = Input::new(data);
    let mut steps = 0;
    while !input.is_empty() && steps < STEPS_MAX {
        steps += 1;
        match input.below(13) {
            0 => world.current ^= 1,
            op @ 10..=12 => {
                let id = values::agent_id(&mut input);
                let command = match op {
                    10 => AiAgentCommand::Register {
                        name: values::pick(&mut input, &NAMES, AgentName::new),
                        specialties: (0..input.below(4))
                            .map(|_| values::pick(&mut input, &SPECIALTIES, Specialty::new))
                            .collect(),
                    },
                    11 => AiAgentCommand::Activate,
                    _ => AiAgentCommand::Deactivate,
                };
                world.agent_command(&id, &command);
            }
            op => {
                let state = &world.conversations[world.current].state;
                let command = read_command(op, &mut input, state);
                world.conversation_command(&command, &mut figures);
            }
        }
    }
    figures.events = world.position;
    (figures, world)
}

/// Builds `command_sequence` inputs step by step, in the format above: the corpus's seeds.
#[derive(Default)]
pub(crate) struct Script(pub(crate) Vec<u8>);

impl Script {
    fn op(mut self, op: u8, params: &[u8]) -> Script {
        self.0.push(op);
        self.0.extend_from_slice(params);
        self
    }

    pub(crate) fn switch(self) -> Script {
        self.op(0, &[])
    }
    pub(crate) fn open(self, customer: u8, human: Option<u8>) -> Script {
        self.op(1, &[customer, 0, human.map_or(0, |h| h + 1)])
    }
    pub(crate) fn customer_says(self, customer: u8, phrase: u8) -> Script {
        self.op(2, &[customer, phrase])
    }
    pub(crate) fn customer_writes(self, customer: u8, raw: &[u8]) -> Script {
        let mut params = vec![customer, 0xF0, raw.len().div_ceil(4) as u8];
        params.extend_from_slice(raw);
        params.resize(3 + raw.len().div_ceil(4) * 4, b' ');
        self.op(2, &params)
    }
    pub(crate) fn human_says(self, human: u8) -> Script {
        self.op(3, &[human, 0])
    }
    /// `who`: `None` for the agent holding the conversation; `epoch`: 0 current, 5 previous,
    /// 6 next.
    pub(crate) fn ai_says(self, who: Option<u8>, epoch: u8) -> Script {
        self.op(4, &[who.map_or(0, |a| 0x80 + a), epoch, 2])
    }
    pub(crate) fn hand_off(self, human: u8, agent: u8) -> Script {
        self.op(5, &[human, agent, 1])
    }
    pub(crate) fn skill(self, who: Option<u8>, failed: bool) -> Script {
        self.op(
            6,
            &[who.map_or(0, |a| 0x80 + a), 0, 0, 0, u8::from(failed), 1],
        )
    }
    pub(crate) fn reclaim(self, human: u8) -> Script {
        self.op(7, &[human, 2])
    }
    pub(crate) fn escalate(self, who: Option<u8>, cause: u8) -> Script {
        self.op(8, &[who.map_or(0, |a| 0x80 + a), 0, cause, 0])
    }
    /// `by`: 0 customer, 1 human, 2 the AI agent holding it.
    pub(crate) fn close(self, by: u8) -> Script {
        match by {
            0 => self.op(9, &[0, 0, 3]),
            1 => self.op(9, &[1, 0, 3]),
            _ => self.op(9, &[2, 0, 0, 3]),
        }
    }
    pub(crate) fn register(self, agent: u8) -> Script {
        self.op(10, &[agent, 0, 1, 1])
    }
    pub(crate) fn activate(self, agent: u8) -> Script {
        self.op(11, &[agent])
    }
    pub(crate) fn deactivate(self, agent: u8) -> Script {
        self.op(12, &[agent])
    }
}
