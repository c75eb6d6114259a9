//! `command_sequence`: bytes read as a sequence of commands on two conversations, on the
//! AI-agent roster and on the directory of humans, from customers, humans (agents, a
//! supervisor, one of another tenant, one never registered), AI agents (right and wrong ones,
//! current and stale epochs), the router and the clock, run through the pure `decide` and
//! `evolve` of `handover_core`, with every accepted event also replayed by the audit
//! (`handover_audit::Replay`).
//!
//! The input format, one step after another until the input ends (an exhausted input reads as
//! zeros):
//!
//! | op (byte % 33) | step | then |
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
//! | 13 | start in a tenant | tenant, customer, channel, team, language, human (0: none) |
//! | 14 | assign | by (even: a human, then the human; odd: the router), to |
//! | 15 | accept from a queue | human |
//! | 16 | transfer | human, target (even: a human, odd: a team), reason |
//! | 17 | requeue | human |
//! | 18 | internal note | human, audience, text |
//! | 19 | raise the flag | by (even: a human, odd: an AI agent) |
//! | 20 | lower the flag | human |
//! | 21 | the clock ticks | how far it moves (index in `ADVANCES_MS`) |
//! | 22 | AI agent starts a skill | who, epoch, skill name, input |
//! | 23, 24, 25 | register a human, change their presence, remove them | human (register: tenant, role, teams, capacity; presence: which) |
//! | 26 | hand off with a context | human, agent, reason (0: none), context (0: none), override, embedder's refusal (odd: one, then the verdict) |
//! | 27 | AI agent reports it could not answer | who, epoch, reason (0: none) |
//! | 28 | approve a skill that waits | human, skill |
//! | 29 | deny a skill that waits | human, skill, reason |
//! | 30 | AI agent escalates with a context | who, epoch, reason, context |
//! | 31 | customer posts, judged by the embedder's rule | customer, text, cause, verdict |
//! | 32 | AI agent starts a skill the default policy gates (`refund`) | who, epoch, input |
//!
//! An identity or text byte below 0xF0 picks from the tables in `values.rs`; from 0xF0 up, a
//! length byte and raw bytes follow. `who` below 0x80 is the agent holding the conversation
//! (`faq` if none), else agent `(who - 0x80) % 4`; `epoch % 8` is 0-4 current, 5 previous,
//! 6 next, 7 the next eight bytes.
//!
//! The rules are given the sequence's directory, the loads its conversations make, settings
//! with a `billing` queue of its own and idle closing, and the time of its clock, which only
//! ticks move.

use std::collections::BTreeMap;

use handover_audit::Replay;
use handover_core::{
    agent, conversation, human, AgentName, AiAgentCommand, AiAgentId, Assignment, Author, Channel,
    Concern, Conversation, ConversationCommand, ConversationEvent, Ctx, DefaultPolicy, Directory,
    Epoch, EscalationCause, Event, HumanCommand, HumanId, Loads, Participant, Policy, Presence,
    Rejection, Role, Roster, Settings, Skill, SkillData, SkillName, SkillOutcome, Sla, Specialty,
    StreamId, SystemActor, TeamId, TenantId, Timestamp,
};
use handover_store::{RecordedAt, RecordedEvent};

use crate::input::Input;
use crate::values::{self, AGENTS, CHANNELS, NAMES, REASONS, SKILLS, SKILL_DATA, SPECIALTIES};

/// Steps an input can hold, so that a long input stays fast.
const STEPS_MAX: usize = 2_000;
/// How far a tick moves the clock: nothing, past the `billing` queue's thresholds, the AI
/// reply deadline, the general queue's, and idle closing.
const ADVANCES_MS: [u64; 8] = [
    0, 1_000, 10_000, 30_000, 60_000, 300_000, 3_600_000, 7_200_000,
];
/// When the sequence's clock starts.
const START_MS: i64 = 1_720_000_000_000;

/// One conversation: its state as folded step by step, and its accepted history with the time
/// of each event.
#[derive(Default)]
struct Tracked {
    state: Conversation,
    history: Vec<ConversationEvent>,
    times: Vec<Timestamp>,
}

/// Everything the sequence has built, and the audit replaying it alongside.
struct World {
    roster: Roster,
    policy: DefaultPolicy,
    directory: Directory,
    settings: Settings,
    now: Timestamp,
    conversations: [Tracked; 2],
    current: usize,
    replay: Replay,
    position: u64,
    agent_versions: BTreeMap<AiAgentId, u64>,
    human_versions: BTreeMap<HumanId, u64>,
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
    /// Events recorded (conversation, AI-agent and human ones), each also replayed by the audit.
    pub events: u64,
}

fn ai(id: &str) -> AiAgentId {
    AiAgentId::new(id).expect("a valid table id")
}

fn person(id: &str) -> HumanId {
    HumanId::new(id).expect("a valid table id")
}

fn team(id: &str) -> TeamId {
    TeamId::new(id).expect("a valid table id")
}

/// The settings the sequence's rules apply: the defaults, a faster `billing` queue, and idle
/// closing after two hours.
fn settings() -> Settings {
    let mut settings = Settings::default();
    settings.team_sla.insert(
        team("billing"),
        Sla {
            warning_ms: 10_000,
            breach_ms: 30_000,
        },
    );
    settings.idle_close_ms = Some(7_200_000);
    settings
}

/// A state without what only the records' times give it (when the customer last wrote, since
/// when a reply is pending, when each concern was last raised, when an AI last let go): what
/// a fold without times, such as the audit's, holds. (A rule's escalation records its own
/// time, which a fold without times keeps while an agent's escalation gives none: the last
/// escalation's time is left out of both.)
fn without_times(state: &Conversation) -> Conversation {
    let mut state = state.clone();
    if let Conversation::Open(open) | Conversation::Closed(open) = &mut state {
        open.last_customer_at = None;
        open.reply_pending_since = None;
        for mark in &mut open.signals.concerns {
            mark.at = None;
        }
        open.signals.last_escalation_at = None;
    }
    state
}

impl World {
    fn new() -> World {
        let mut world = World {
            roster: Roster::default(),
            policy: DefaultPolicy::default(),
            directory: Directory::new(),
            settings: settings(),
            now: Timestamp::from_millis(START_MS),
            conversations: Default::default(),
            current: 0,
            replay: Replay::new(),
            position: 0,
            agent_versions: Default::default(),
            human_versions: Default::default(),
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
        // Everyone signed in but `erin`, who is never registered.
        for (id, tenant, role, teams, capacity) in [
            ("ana", "default", Role::Agent, vec![team("billing")], 2),
            ("bob", "default", Role::Supervisor, vec![], 5),
            ("carol", "default", Role::Agent, vec![], 1),
            ("dave", "acme", Role::Agent, vec![], 5),
        ] {
            let register = HumanCommand::Register {
                tenant: TenantId::new(tenant).expect("a valid table id"),
                name: AgentName::new(id).expect("a valid name"),
                role,
                teams,
                capacity,
            };
            assert!(world.human_command(&person(id), &register), "initial staff");
            let available = HumanCommand::SetPresence {
                presence: Presence::Available,
            };
            assert!(world.human_command(&person(id), &available));
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
            recorded_at: RecordedAt(self.now.as_micros() + self.position as i64),
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

    /// Decides and applies a command on a human's registration; whether it was accepted.
    fn human_command(&mut self, id: &HumanId, command: &HumanCommand) -> bool {
        let before = self.directory.get(id).cloned();
        let decided = human::decide(id, before.as_ref(), command);
        assert_eq!(
            decided,
            human::decide(id, before.as_ref(), command),
            "human::decide is not deterministic"
        );
        let events = match decided {
            Ok(events) => events,
            Err(rejection) => {
                match (&before, command) {
                    (None, HumanCommand::Register { .. }) => assert!(
                        matches!(
                            rejection,
                            Rejection::TooManyTeams { .. } | Rejection::CapacityOutOfRange { .. }
                        ),
                        "a valid registration was refused: {rejection}"
                    ),
                    (None, _) => assert!(
                        matches!(rejection, Rejection::UnknownHuman { .. }),
                        "{command:?} for an unregistered human refused as {rejection}"
                    ),
                    (Some(_), _) => {}
                }
                return false;
            }
        };
        assert_eq!(events.len(), 1, "a human command made {events:?}");
        let stream = StreamId::Human(id.clone());
        self.batches.push((
            stream.clone(),
            events.iter().cloned().map(Event::Human).collect(),
        ));
        for event in events {
            assert_eq!(event.human_id(), id, "an event of another human's stream");
            if let Err(rejection) = self.directory.evolve(&event) {
                panic!("an accepted human event does not fold: {rejection}: {event:?}");
            }
            let version = self.human_versions.entry(id.clone()).or_insert(0);
            *version += 1;
            let seq = *version;
            self.record(stream.clone(), seq, Event::Human(event));
        }
        let after = self.directory.get(id).expect("registered");
        match command {
            HumanCommand::Register { .. } => {
                assert!(before.is_none() && after.presence == Presence::Offline)
            }
            HumanCommand::SetPresence { presence } => assert_eq!(after.presence, *presence),
            HumanCommand::Remove => {
                assert!(after.removed && after.presence == Presence::Offline)
            }
            other => panic!("a human command the fuzzer does not send: {other:?}"),
        }
        true
    }

    /// How many open conversations each human handles, as the runtime's board counts them.
    fn loads(&self) -> Loads {
        let mut loads = Loads::new();
        for tracked in &self.conversations {
            if let Conversation::Open(open) = &tracked.state {
                if let Some(human) = open.assigned_human() {
                    loads.add(human);
                }
            }
        }
        loads
    }

    fn conversation_command(
        &mut self,
        command: &ConversationCommand,
        figures: &mut SequenceFigures,
    ) {
        let index = self.current;
        let loads = self.loads();
        let ctx = Ctx::new(&self.roster, &self.policy)
            .with_directory(&self.directory)
            .with_loads(&loads)
            .with_settings(&self.settings)
            .at(self.now);
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
                check_rejected(before, command, &rejection, &self.directory);
                return;
            }
        };
        figures.accepted += 1;
        let facts = Facts {
            roster: &self.roster,
            policy: &self.policy,
            directory: &self.directory,
            loads: &loads,
            now: self.now,
        };
        check_accepted(before, &after, command, &events, &facts);
        if let ConversationCommand::Tick = command {
            // Every deadline passed by now is recorded: the next one is later.
            if let Some(next) = conversation::next_deadline(&after, &self.settings) {
                assert!(
                    next > self.now,
                    "a tick left a deadline at {next:?} passed at {:?}: {after:?}",
                    self.now
                );
            }
            if events.is_empty() {
                assert_eq!(&after, before, "a tick with nothing due changed the state");
                return;
            }
        }
        // Every event folds with `evolve`, one by one, at the time of the command, to the
        // state `decide` announced.
        let mut folded = before.clone();
        for event in &events {
            folded = match conversation::evolve_at(folded, event, Some(self.now)) {
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
        let now = self.now;
        let tracked = &mut self.conversations[index];
        tracked.history.extend(events.iter().cloned());
        tracked.times.extend(events.iter().map(|_| now));
        tracked.state = after;
        // Folding the whole history from scratch, with its times, gives the same state.
        let refolded = tracked
            .history
            .iter()
            .zip(&tracked.times)
            .try_fold(Conversation::NotOpened, |state, (event, at)| {
                conversation::evolve_at(state, event, Some(*at))
            });
        match refolded {
            Ok(state) => assert_eq!(state, tracked.state, "the history folds to another state"),
            Err(rejection) => panic!("the accepted history does not fold: {rejection}"),
        }
        // Without times it folds too, to the same state but for what the times give.
        let untimed = match conversation::fold(&tracked.history) {
            Ok(state) => state,
            Err(rejection) => panic!("the history does not fold without times: {rejection}"),
        };
        assert_eq!(
            without_times(&untimed),
            without_times(&tracked.state),
            "the history folds without times to another state"
        );
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
        // The audit's view of the conversation is the runtime's (the audit folds without
        // the records' times).
        let id = values::conversation_id(index as u128 + 1);
        let replayed = self.replay.conversation(&id).map(|history| history.state());
        assert_eq!(
            replayed,
            Some(&untimed),
            "the audit replays conversation {index} to another state"
        );
    }
}

/// The human a command acts as, if a human issues it.
fn acting_human(command: &ConversationCommand) -> Option<&HumanId> {
    match command {
        ConversationCommand::PostMessage {
            by: Participant::Human(h),
            ..
        }
        | ConversationCommand::Close {
            by: Participant::Human(h),
            ..
        }
        | ConversationCommand::Assign {
            by: Participant::Human(h),
            ..
        }
        | ConversationCommand::RaiseFlag {
            by: Participant::Human(h),
        }
        | ConversationCommand::HandOffToAi { by: h, .. }
        | ConversationCommand::HandOffToAiWith { by: h, .. }
        | ConversationCommand::ApproveSkill { by: h, .. }
        | ConversationCommand::DenySkill { by: h, .. }
        | ConversationCommand::Reclaim { by: h, .. }
        | ConversationCommand::Accept { by: h }
        | ConversationCommand::Transfer { by: h, .. }
        | ConversationCommand::Whisper { by: h, .. }
        | ConversationCommand::LowerFlag { by: h } => Some(h),
        _ => None,
    }
}

/// The human a command names to take the conversation, if any.
fn named_human(command: &ConversationCommand) -> Option<&HumanId> {
    match command {
        ConversationCommand::Open { human, .. } | ConversationCommand::Start { human, .. } => {
            human.as_ref()
        }
        ConversationCommand::Assign { to, .. } => Some(to),
        ConversationCommand::Transfer {
            to: handover_core::TransferTarget::Human(to),
            ..
        } => Some(to),
        _ => None,
    }
}

/// Whether `rejection` refuses who `human` is (unknown, removed, signed out, of another
/// tenant than the conversation's), which the rules check before anything else.
fn refuses_identity(
    rejection: &Rejection,
    human: Option<&HumanId>,
    state: &Conversation,
    directory: &Directory,
) -> bool {
    let Some(human) = human else {
        return false;
    };
    match rejection {
        Rejection::UnknownHuman { human_id }
        | Rejection::HumanRemoved { human_id }
        | Rejection::HumanOffline { human_id } => human_id == human,
        Rejection::NotOpened => directory
            .get(human)
            .is_some_and(|h| state.tenant() != Some(&h.profile.tenant)),
        _ => false,
    }
}

/// What a rejected command must have been refused for, where the state alone decides it.
fn check_rejected(
    before: &Conversation,
    command: &ConversationCommand,
    rejection: &Rejection,
    directory: &Directory,
) {
    let identity = refuses_identity(rejection, acting_human(command), before, directory);
    match before {
        // Closed is terminal: every command is refused, as closed, unless the human sending it
        // is refused first for who they are.
        Conversation::Closed(_) => {
            assert!(
                rejection == &Rejection::Closed || identity,
                "{command:?} on a closed conversation refused as {rejection}"
            )
        }
        Conversation::NotOpened => {
            if matches!(
                command,
                ConversationCommand::Open { .. } | ConversationCommand::Start { .. }
            ) {
                // Only the human named to take it can stand in the way.
                assert!(
                    named_human(command).is_some()
                        && matches!(
                            rejection,
                            Rejection::UnknownHuman { .. }
                                | Rejection::HumanRemoved { .. }
                                | Rejection::HumanOffline { .. }
                        ),
                    "opening a new conversation was refused: {rejection}"
                );
            }
        }
        Conversation::Open(_) => assert!(
            rejection != &Rejection::NotOpened || identity,
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
        }
        | ConversationCommand::RaiseFlag {
            by: Participant::Ai(a),
        } => Some(a),
        ConversationCommand::RecordAiAction { by, .. }
        | ConversationCommand::Escalate { by, .. }
        | ConversationCommand::StartSkill { by, .. }
        | ConversationCommand::ReportCouldNotAnswer { by, .. }
        | ConversationCommand::EscalateWith { by, .. } => Some(by),
        _ => None,
    }
}

fn epoch_of(state: &Conversation) -> Epoch {
    match state {
        Conversation::NotOpened => Epoch(0),
        Conversation::Open(open) | Conversation::Closed(open) => open.epoch,
    }
}

/// What `decide` consulted besides the state, for the checks of an accepted command.
struct Facts<'a> {
    roster: &'a Roster,
    policy: &'a DefaultPolicy,
    directory: &'a Directory,
    loads: &'a Loads,
    /// The time of the command.
    now: Timestamp,
}

/// What an accepted command may do, given the state before it.
fn check_accepted(
    before: &Conversation,
    after: &Conversation,
    command: &ConversationCommand,
    events: &[ConversationEvent],
    facts: &Facts<'_>,
) {
    let opening = matches!(
        command,
        ConversationCommand::Open { .. } | ConversationCommand::Start { .. }
    );
    assert!(
        !events.is_empty() || matches!(command, ConversationCommand::Tick),
        "accepted {command:?} made no event"
    );
    assert!(
        !matches!(before, Conversation::Closed(_)),
        "{command:?} was accepted after the close"
    );
    if opening {
        assert!(matches!(before, Conversation::NotOpened), "opened twice");
        // The start, then who controls it: the human named, or the queue.
        assert!(matches!(events[0], ConversationEvent::Started { .. }));
        match named_human(command) {
            Some(human) => assert!(
                matches!(&events[1..], [ConversationEvent::HumanAssigned { human_id, .. }] if human_id == human),
                "opened for {human} as {events:?}"
            ),
            None => assert!(
                matches!(events.get(1), Some(ConversationEvent::AwaitingHuman { .. })),
                "opened without a human as {events:?}"
            ),
        }
    } else {
        assert!(
            matches!(before, Conversation::Open(_)),
            "{command:?} was accepted before the open"
        );
    }
    // A human acts only registered, not removed, signed in, in the conversation's tenant.
    if let Some(human) = acting_human(command) {
        let found = facts
            .directory
            .get(human)
            .unwrap_or_else(|| panic!("{command:?} accepted from {human}, who is not registered"));
        assert!(
            !found.removed && found.presence != Presence::Offline,
            "{command:?} accepted from {human}, who may not act: {found:?}"
        );
        assert_eq!(
            after.tenant(),
            Some(&found.profile.tenant),
            "{command:?} accepted from {human} of another tenant"
        );
    }
    // Whoever is given the conversation is registered in its tenant and not signed out.
    if let Some(human) = named_human(command) {
        let found = facts.directory.get(human).unwrap_or_else(|| {
            panic!("{command:?} gave the conversation to {human}, who is not registered")
        });
        assert!(
            !found.removed && found.presence != Presence::Offline,
            "{command:?} gave the conversation to {human}, who may not take it"
        );
        assert_eq!(after.tenant(), Some(&found.profile.tenant));
    }
    // AI replies, skills, escalations, flags and closes only while AI-active, from the agent
    // that holds the conversation, under the current epoch; but the outcome of a skill started
    // under an assignment is recorded even once it ended.
    if let Some(acting) = ai_actor(command) {
        let started = match (command, before) {
            (ConversationCommand::RecordAiAction { skill, .. }, Conversation::Open(open)) => {
                open.skills_started.iter().any(|(epoch, agent, name)| {
                    *epoch == acting.epoch && *agent == acting.agent_id && *name == skill.name
                })
            }
            _ => false,
        };
        assert!(
            started || Some(acting) == before.assignment().as_ref(),
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
        }
        | ConversationCommand::PostMessageJudged {
            by: Participant::Customer(who),
            text,
            ..
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
                &facts.policy.assess(text.as_str()),
                "the policy is not pure"
            );
            let asked = concerns.contains(&Concern::HumanRequested);
            let judged = matches!(command, ConversationCommand::PostMessageJudged { .. });
            if before.assignment().is_none() {
                // No rule acts on a message nobody's AI holds.
                assert_eq!(events.len(), 1, "{events:?}");
            } else if asked || judged || events.len() > 1 {
                // A request for a person always escalates (the default policy's first message
                // rule), and so does an embedder's verdict when no built-in rule does; other
                // rules may: by a rule, in the same append.
                let Some(ConversationEvent::EscalatedByRule {
                    cause,
                    rule,
                    policy_version,
                    ..
                }) = events.get(1)
                else {
                    panic!("a message while AI-active escalated otherwise: {events:?}")
                };
                assert_eq!(policy_version, facts.policy.rules().version());
                if asked {
                    assert_eq!(*cause, EscalationCause::CustomerAskedForHuman);
                    assert_eq!(rule.as_str(), "asked-for-a-person");
                }
                assert!(after.assignment().is_none());
                assert!(
                    matches!(after.status(), handover_core::Status::AwaitingHuman { .. }),
                    "an escalation leaves the conversation {:?}",
                    after.status()
                );
            }
        }
        ConversationCommand::HandOffToAi { agent_id, by, .. }
        | ConversationCommand::HandOffToAiWith { agent_id, by, .. } => {
            assert!(
                facts.roster.get(agent_id).is_some_and(|a| a.active),
                "handed off to an agent that is not active"
            );
            let Conversation::Open(open) = before else {
                unreachable!("checked above")
            };
            // The default policy, read independently: a concern within 5 customer messages
            // and 30 minutes of its latest raising, 3 handoffs already, an escalation within
            // 10 minutes, or the embedder's refusal refuses it (the default policy has no topic
            // rule); only a supervisor overrides, and the override is recorded.
            let signals = &open.signals;
            let concern_blocks = signals.concerns.iter().any(|mark| {
                signals.customer_messages - mark.message < 5
                    && mark
                        .at
                        .is_none_or(|at| facts.now.millis_since(at) < 30 * 60_000)
            });
            let loop_blocks = open.epoch.0 >= 3
                || signals
                    .last_escalation_at
                    .is_some_and(|at| facts.now.millis_since(at) < 10 * 60_000);
            let embedder_refuses = matches!(
                command,
                ConversationCommand::HandOffToAiWith {
                    refused_by: Some(_),
                    ..
                }
            );
            let overridden = matches!(events[0], ConversationEvent::PolicyOverridden { .. });
            assert_eq!(
                overridden,
                concern_blocks || loop_blocks || embedder_refuses,
                "a handoff against the policy, or an override of nothing: {events:?}"
            );
            if overridden {
                assert!(
                    facts.directory.get(by).is_some_and(|h| h.is_supervisor()),
                    "{by}, not a supervisor, overrode the policy"
                );
            }
            assert_eq!(epoch_of(after).0, epoch_of(before).0 + 1);
        }
        ConversationCommand::Escalate { cause, .. } => assert!(
            !matches!(
                cause,
                EscalationCause::CustomerAskedForHuman
                    | EscalationCause::AiTimeout
                    | EscalationCause::Frustration
                    | EscalationCause::GoingInCircles
                    | EscalationCause::AiCouldNotAnswer
                    | EscalationCause::Complaint
            ),
            "an AI agent claimed the escalation cause {cause:?}"
        ),
        ConversationCommand::StartSkill { name, input, .. } => {
            let gated = facts.policy.rules().before_skill(name, input).is_some();
            assert_eq!(
                events[0].type_name(),
                if gated {
                    "skill_approval_requested"
                } else {
                    "ai_skill_started"
                },
                "{name} started as {events:?}"
            );
        }
        ConversationCommand::RecordAiAction { skill, .. }
            if facts
                .policy
                .rules()
                .before_skill(&skill.name, &skill.input)
                .is_some() =>
        {
            let Conversation::Open(open) = before else {
                unreachable!("checked above")
            };
            assert!(
                open.skills_started
                    .iter()
                    .any(|(_, _, name)| *name == skill.name),
                "{} was recorded without approval",
                skill.name
            );
        }
        ConversationCommand::ApproveSkill { skill, .. }
        | ConversationCommand::DenySkill { skill, .. } => {
            let Conversation::Open(open) = before else {
                unreachable!("checked above")
            };
            assert!(
                open.approvals.iter().any(|pending| pending.name == *skill),
                "{skill} was decided with nothing waiting"
            );
        }
        ConversationCommand::Close { .. } => {
            assert!(
                matches!(after, Conversation::Closed(_)),
                "close did not close"
            )
        }
        ConversationCommand::Assign {
            by: Participant::Human(by),
            ..
        }
        | ConversationCommand::LowerFlag { by } => assert!(
            facts.directory.get(by).is_some_and(|h| h.is_supervisor()),
            "{command:?} accepted from {by}, who is not a supervisor"
        ),
        ConversationCommand::Assign {
            by: Participant::System(actor),
            to,
        } => {
            assert_eq!(*actor, SystemActor::Router, "assigned by {actor:?}");
            let found = facts.directory.get(to).expect("checked above");
            assert!(
                found.presence == Presence::Available
                    && facts.loads.of(to) < found.profile.capacity,
                "the router gave the conversation to {to}, who is not free: {found:?}, load {}",
                facts.loads.of(to)
            );
        }
        ConversationCommand::Tick => {
            for event in events {
                assert!(
                    matches!(
                        event,
                        ConversationEvent::SlaWarning { .. }
                            | ConversationEvent::SlaBreached { .. }
                            | ConversationEvent::AiReplyOverdue { .. }
                            | ConversationEvent::EscalatedToHuman {
                                cause: EscalationCause::AiTimeout,
                                ..
                            }
                            | ConversationEvent::CustomerNotice { .. }
                            | ConversationEvent::AwaitingHuman { .. }
                            | ConversationEvent::Closed {
                                by: Author::System(SystemActor::Clock),
                                ..
                            }
                            | ConversationEvent::SkillDenied {
                                by: Author::System(SystemActor::Clock),
                                ..
                            }
                    ),
                    "a tick recorded {event:?}"
                );
            }
        }
        _ => {}
    }
    if !matches!(
        command,
        ConversationCommand::HandOffToAi { .. } | ConversationCommand::HandOffToAiWith { .. }
    ) {
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
        Waiting,
        Ai(AiAgentId),
        Closed,
    }
    let mut holder = Holder::NotOpened;
    let mut epoch = 0u64;
    // Skills started and not reported yet: (agent, skill).
    let mut started: Vec<(AiAgentId, SkillName)> = Vec::new();
    // Skills waiting for a person's approval: (agent, skill). A wait ends with the assignment.
    let mut waiting: Vec<(AiAgentId, SkillName)> = Vec::new();
    for (i, event) in history.iter().enumerate() {
        assert!(
            holder != Holder::Closed,
            "event {i} follows the close: {event:?}"
        );
        let holds = |holder: &Holder, agent: &AiAgentId| *holder == Holder::Ai(agent.clone());
        match event {
            ConversationEvent::Opened { .. } | ConversationEvent::Started { .. } => {
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
                    holds(&holder, a),
                    "AI message {i} from {a}, which does not hold the conversation"
                ),
                other => panic!("message {i} by an author the model does not know: {other:?}"),
            },
            ConversationEvent::HandedOffToAi { agent_id, .. } => {
                assert!(!holds(&holder, agent_id), "handed to its holder at {i}");
                epoch += 1;
                holder = Holder::Ai(agent_id.clone());
                waiting.clear();
            }
            ConversationEvent::SkillApprovalRequested { agent_id, name, .. } => {
                assert!(
                    holds(&holder, agent_id),
                    "approval {i} asked by {agent_id}, which does not hold the conversation"
                );
                waiting.push((agent_id.clone(), name.clone()));
            }
            ConversationEvent::SkillApproved { agent_id, name, .. }
            | ConversationEvent::SkillDenied { agent_id, name, .. } => {
                let Some(at) = waiting
                    .iter()
                    .position(|(agent, skill)| agent == agent_id && skill == name)
                else {
                    panic!("event {i} decides {name}, which does not wait")
                };
                waiting.remove(at);
                // An approved skill runs: its outcome is recorded like a started one's.
                if matches!(event, ConversationEvent::SkillApproved { .. }) {
                    started.push((agent_id.clone(), name.clone()));
                }
            }
            ConversationEvent::AiCouldNotAnswer { agent_id, .. } => assert!(
                holds(&holder, agent_id),
                "miss {i} reported by {agent_id}, which does not hold the conversation"
            ),
            ConversationEvent::PolicyOverridden { .. } => assert!(
                matches!(
                    history.get(i + 1),
                    Some(
                        ConversationEvent::HandedOffToAi { .. }
                            | ConversationEvent::ContextShared { .. }
                    )
                ),
                "override {i} is not followed by its handoff"
            ),
            ConversationEvent::ContextShared { by, .. } => match by {
                Author::Human(_) => {}
                Author::Ai(a) => assert!(holds(&holder, a), "context {i} shared by {a}"),
                other => panic!("context {i} shared by {other:?}"),
            },
            ConversationEvent::AiSkillStarted { agent_id, name, .. } => {
                assert!(
                    holds(&holder, agent_id),
                    "skill {i} started by {agent_id}, which does not hold the conversation"
                );
                started.push((agent_id.clone(), name.clone()));
            }
            ConversationEvent::AiActionRecorded { agent_id, skill } => {
                match started
                    .iter()
                    .position(|(agent, name)| agent == agent_id && *name == skill.name)
                {
                    Some(at) => {
                        started.remove(at);
                    }
                    None => assert!(
                        holds(&holder, agent_id),
                        "skill {i} from {agent_id}, which does not hold the conversation"
                    ),
                }
            }
            ConversationEvent::Reclaimed { agent_id, .. }
            | ConversationEvent::EscalatedToHuman { agent_id, .. }
            | ConversationEvent::EscalatedByRule { agent_id, .. } => {
                assert!(
                    holds(&holder, agent_id),
                    "event {i} ends an assignment {agent_id} does not hold"
                );
                holder = Holder::Human;
                waiting.clear();
            }
            ConversationEvent::AiReplyOverdue { agent_id, .. } => assert!(
                holds(&holder, agent_id),
                "reply overdue {i} for {agent_id}, which does not hold the conversation"
            ),
            ConversationEvent::AwaitingHuman { .. } => {
                assert!(
                    !matches!(holder, Holder::Ai(_)),
                    "queued {i} while AI-active"
                );
                holder = Holder::Waiting;
            }
            ConversationEvent::HumanAssigned { .. } | ConversationEvent::Transferred { .. } => {
                assert!(
                    !matches!(holder, Holder::Ai(_)),
                    "given to a human {i} while AI-active"
                );
                if matches!(event, ConversationEvent::HumanAssigned { .. }) {
                    holder = Holder::Human;
                }
            }
            ConversationEvent::SlaWarning { .. } | ConversationEvent::SlaBreached { .. } => {
                assert!(holder == Holder::Waiting, "SLA event {i} while not waiting")
            }
            ConversationEvent::InternalNote { to, by, .. } => {
                assert!(
                    !matches!(by, Author::Customer(_)),
                    "note {i} by the customer"
                );
                if *to == handover_core::NoteAudience::Ai {
                    assert!(matches!(holder, Holder::Ai(_)), "note {i} to no AI agent");
                }
            }
            ConversationEvent::FlagRaised { by, .. } => {
                if let Author::Ai(a) = by {
                    assert!(holds(&holder, a), "flag {i} raised by {a}");
                }
            }
            ConversationEvent::CustomerNotice { .. } | ConversationEvent::FlagLowered { .. } => {}
            ConversationEvent::Closed { by, .. } => {
                if let Author::Ai(a) = by {
                    assert!(holds(&holder, a), "closed by {a} at {i}");
                }
                holder = Holder::Closed;
                waiting.clear();
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
                EscalationCause::AiTimeout,
            ][input.below(4)],
            reason: values::reason(input),
        },
        13 => ConversationCommand::Start {
            tenant: values::tenant_id(input),
            customer: values::customer_id(input),
            channel: values::pick(input, &CHANNELS, Channel::new),
            team: values::team(input),
            language: values::language(input),
            human: match input.byte() {
                0 => None,
                n => Some(values::human_id(&mut Input::new(&[n - 1]))),
            },
        },
        14 => ConversationCommand::Assign {
            by: match input.bool() {
                false => Participant::Human(values::human_id(input)),
                true => Participant::System(SystemActor::Router),
            },
            to: values::human_id(input),
        },
        15 => ConversationCommand::Accept {
            by: values::human_id(input),
        },
        16 => ConversationCommand::Transfer {
            by: values::human_id(input),
            to: values::transfer_target(input),
            reason: values::reason(input),
        },
        17 => ConversationCommand::Requeue {
            human: values::human_id(input),
        },
        18 => ConversationCommand::Whisper {
            by: values::human_id(input),
            to: values::audience(input),
            text: values::message(input),
        },
        19 => ConversationCommand::RaiseFlag {
            by: match input.bool() {
                false => Participant::Human(values::human_id(input)),
                true => Participant::Ai(assignment(input, state)),
            },
        },
        20 => ConversationCommand::LowerFlag {
            by: values::human_id(input),
        },
        21 => ConversationCommand::Tick,
        22 => ConversationCommand::StartSkill {
            by: assignment(input, state),
            name: values::pick(input, &SKILLS, SkillName::new),
            input: values::pick(input, &SKILL_DATA, SkillData::new),
        },
        26 => ConversationCommand::HandOffToAiWith {
            by: values::human_id(input),
            agent_id: values::agent_id(input),
            reason: optional_reason(input),
            context: match input.byte() {
                0 => None,
                _ => Some(values::context(input)),
            },
            override_policy: input.bool(),
            refused_by: input.bool().then(|| values::verdict(input)),
        },
        27 => ConversationCommand::ReportCouldNotAnswer {
            by: assignment(input, state),
            reason: optional_reason(input),
        },
        28 => ConversationCommand::ApproveSkill {
            by: values::human_id(input),
            skill: values::pick(input, &SKILLS, SkillName::new),
        },
        29 => ConversationCommand::DenySkill {
            by: values::human_id(input),
            skill: values::pick(input, &SKILLS, SkillName::new),
            reason: values::reason(input),
        },
        30 => ConversationCommand::EscalateWith {
            by: assignment(input, state),
            reason: values::reason(input),
            context: values::context(input),
        },
        31 => ConversationCommand::PostMessageJudged {
            by: Participant::Customer(values::customer_id(input)),
            text: values::message(input),
            cause: values::cause(input),
            verdict: values::verdict(input),
        },
        32 => ConversationCommand::StartSkill {
            by: assignment(input, state),
            name: SkillName::new("refund").expect("a valid skill name"),
            input: values::pick(input, &SKILL_DATA, SkillData::new),
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
        match input.below(33) {
            0 => world.current ^= 1,
            op @ 23..=25 => {
                let id = values::human_id(&mut input);
                let command = match op {
                    23 => HumanCommand::Register {
                        tenant: values::tenant_id(&mut input),
                        name: values::pick(&mut input, &NAMES, AgentName::new),
                        role: values::role(&mut input),
                        teams: (0..input.below(3))
                            .map(|_| values::pick(&mut input, &values::TEAMS, TeamId::new))
                            .collect(),
                        capacity: u32::from(input.byte() % 8),
                    },
                    24 => HumanCommand::SetPresence {
                        presence: values::presence(&mut input),
                    },
                    _ => HumanCommand::Remove,
                };
                world.human_command(&id, &command);
            }
            21 => {
                // The clock moves, then ticks the current conversation.
                let advance = ADVANCES_MS[input.below(ADVANCES_MS.len())];
                world.now = world.now.plus_millis(advance);
                world.conversation_command(&ConversationCommand::Tick, &mut figures);
            }
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
    /// Tenant 0 default, 1 `acme`; team and language 0 for none, else the table's entry
    /// `n - 1` (teams: `billing`, `vip`; languages: `en`, `pt-BR`, `es`, `fr`).
    pub(crate) fn start(
        self,
        tenant: u8,
        customer: u8,
        team: u8,
        language: u8,
        human: Option<u8>,
    ) -> Script {
        let optional = |n: u8| match n {
            0 => vec![0],
            n => vec![1, n - 1],
        };
        let mut params = vec![tenant, customer, 0];
        params.extend(optional(team));
        params.extend(optional(language));
        params.push(human.map_or(0, |h| h + 1));
        self.op(13, &params)
    }
    /// `by`: `None` for the router.
    pub(crate) fn assign(self, by: Option<u8>, to: u8) -> Script {
        match by {
            Some(human) => self.op(14, &[0, human, to]),
            None => self.op(14, &[1, to]),
        }
    }
    pub(crate) fn accept(self, human: u8) -> Script {
        self.op(15, &[human])
    }
    pub(crate) fn transfer_to_human(self, by: u8, to: u8) -> Script {
        self.op(16, &[by, 0, to, 0])
    }
    pub(crate) fn transfer_to_team(self, by: u8, team: u8) -> Script {
        self.op(16, &[by, 1, team, 0])
    }
    pub(crate) fn requeue(self, human: u8) -> Script {
        self.op(17, &[human])
    }
    /// `to_ai`: guidance for the AI agent rather than a note for staff.
    pub(crate) fn whisper(self, human: u8, to_ai: bool) -> Script {
        self.op(18, &[human, u8::from(to_ai), 1])
    }
    /// `by`: `Some(human)`, or `None` for the AI agent holding the conversation.
    pub(crate) fn raise_flag(self, by: Option<u8>) -> Script {
        match by {
            Some(human) => self.op(19, &[0, human]),
            None => self.op(19, &[1, 0, 0]),
        }
    }
    pub(crate) fn lower_flag(self, human: u8) -> Script {
        self.op(20, &[human])
    }
    /// `advance`: an index in `ADVANCES_MS`.
    pub(crate) fn tick(self, advance: u8) -> Script {
        self.op(21, &[advance])
    }
    pub(crate) fn start_skill(self) -> Script {
        self.op(22, &[0, 0, 0, 0])
    }
    /// `role`: 0 agent, 1 supervisor; `team`: 0 none, else the table's entry `n - 1`.
    pub(crate) fn register_human(
        self,
        human: u8,
        tenant: u8,
        role: u8,
        team: u8,
        capacity: u8,
    ) -> Script {
        let mut params = vec![human, tenant, 0, role];
        match team {
            0 => params.push(0),
            n => params.extend([1, n - 1]),
        }
        params.push(capacity);
        self.op(23, &params)
    }
    /// `presence`: 0 available, 1 away, 2 offline.
    pub(crate) fn set_presence(self, human: u8, presence: u8) -> Script {
        self.op(24, &[human, presence])
    }
    pub(crate) fn remove_human(self, human: u8) -> Script {
        self.op(25, &[human])
    }
    /// A handoff with a context (a summary and the topic `pricing`) if `context`, overriding
    /// the policy if `override_policy`, with the embedder's refusal if `refused`.
    pub(crate) fn hand_off_with(
        self,
        human: u8,
        agent: u8,
        context: bool,
        override_policy: bool,
        refused: bool,
    ) -> Script {
        let mut params = vec![human, agent, 0];
        if context {
            params.extend_from_slice(&[1, 1, 0, 1, 1, 1]);
        } else {
            params.push(0);
        }
        params.push(u8::from(override_policy));
        if refused {
            params.extend_from_slice(&[1, 3, 0]);
        } else {
            params.push(0);
        }
        self.op(26, &params)
    }
    /// The agent holding the conversation (if `who` is `None`) reports a miss.
    pub(crate) fn report_miss(self, who: Option<u8>) -> Script {
        self.op(27, &[who.map_or(0, |a| 0x80 + a), 0, 1])
    }
    /// `skill`: 0 lookup_price, 1 lookup_hours, 2 refund.
    pub(crate) fn approve(self, human: u8, skill: u8) -> Script {
        self.op(28, &[human, skill])
    }
    pub(crate) fn deny(self, human: u8, skill: u8) -> Script {
        self.op(29, &[human, skill, 0])
    }
    /// The agent holding the conversation escalates with a context.
    pub(crate) fn escalate_with(self) -> Script {
        self.op(30, &[0, 0, 0, 1, 0, 1, 2, 2])
    }
    /// The customer posts a phrase the embedder's rule judges, with `cause` (index in
    /// `values::cause`'s table).
    pub(crate) fn judged(self, customer: u8, phrase: u8, cause: u8) -> Script {
        self.op(31, &[customer, phrase, cause, 3, 1])
    }
    /// The agent holding the conversation starts a refund of 120 (which waits for approval).
    pub(crate) fn start_refund(self) -> Script {
        self.op(32, &[0, 0, 3])
    }
}
