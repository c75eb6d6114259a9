//! Bad input, completely, through the real runtime: a `Handover` over a sled directory.
//!
//! The conversation matrix of `crates/handover-core/tests/support/matrix_table.rs` (every
//! conversation command, in every state, from every caller, each cell's outcome written out by
//! hand), sent through `Handover::execute` and again through `Handover::execute_once`, and the
//! AI-agent matrix of the same file, cell by cell:
//!
//! - a rejected cell returns a typed error (`Error::Rejected` with the table's `Rejection`, or
//!   `Error::UnknownConversation` where the rules say `NotOpened`), asks the store for no append
//!   of events, and leaves the stream's version and the store's head unchanged; under a command
//!   id, the store does not remember the command afterwards;
//! - the conversation's actor keeps running after a rejection: the next valid command is
//!   accepted and reaches the watcher registered before the rejection (a rebuilt actor would
//!   have no watchers), and the stream is never read whole again (a rebuild reads it whole);
//! - an accepted cell records exactly the table's events, at the next seqs and positions; under
//!   a command id, a retry gets the same events and records nothing.
//!
//! Also: values at their byte limits go through the runtime and the store unchanged, an AI
//! agent's over-limit reply is a typed `Error::InvalidInput` that records nothing, and a handoff
//! to an active agent not running here is `Error::AiAgentNotRunning`.
//!
//! `cargo test -p handover --test bad_input -- --nocapture` prints the counts.

#[path = "../../handover-core/tests/support/matrix_table.rs"]
mod matrix_table;

use futures::FutureExt as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use handover::StreamExt as _;
use handover::{
    AgentError, AgentName, AiAgentBehavior, AiAgentId, AiAgentProfile, AiSession, CommandId,
    Config, ConversationCommand, ConversationEvent, ConversationId, Error, Event, Handover,
    MessageText, Rejection, Skill, Specialty, StreamId, MESSAGE_BYTES_MAX,
};
use handover::{ManualClock, NewHuman, NoRouter, Presence, Role, TeamId, TenantId, Timestamp};
use handover_core::{AiAgentCommand, InvalidInput, IDENTIFIER_BYTES_MAX, SKILL_DATA_BYTES_MAX};
use handover_sled::{SledOptions, SledStore};
use handover_store::{Appended, EventStore, ExpectedVersion, RecordedEvent, SeqRange, StoreError};
use handover_testkit::{AppendOutcome, ForwardingStore, StoreHooks};
use matrix_table::{Expect, State, AGENT_ROWS, AGENT_STATES, CALLERS};
use tokio::sync::mpsc;

// ---------------------------------------------------------------------------------------------
// A store that counts what the runtime asks of it.
// ---------------------------------------------------------------------------------------------

/// The sled store, behind hooks counting per stream the appends asked for (with events), the lookups of a
/// command's outcome, and the whole-stream reads (a conversation actor reads its stream whole
/// exactly when it is built or rebuilt).
/// The sled store behind [`Counting`] hooks.
type CountingStore = ForwardingStore<Counting>;

#[derive(Default)]
struct Counting {
    appends: Mutex<HashMap<StreamId, usize>>,
    lookups: Mutex<HashMap<StreamId, usize>>,
    whole_reads: Mutex<HashMap<StreamId, usize>>,
}

impl Counting {
    fn appends(&self, stream: &StreamId) -> usize {
        self.appends
            .lock()
            .unwrap()
            .get(stream)
            .copied()
            .unwrap_or(0)
    }

    fn lookups(&self, stream: &StreamId) -> usize {
        self.lookups
            .lock()
            .unwrap()
            .get(stream)
            .copied()
            .unwrap_or(0)
    }

    fn whole_reads(&self, stream: &StreamId) -> usize {
        self.whole_reads
            .lock()
            .unwrap()
            .get(stream)
            .copied()
            .unwrap_or(0)
    }

    fn count(map: &Mutex<HashMap<StreamId, usize>>, stream: &StreamId) {
        *map.lock().unwrap().entry(stream.clone()).or_default() += 1;
    }
}

#[async_trait]
impl StoreHooks for Counting {
    async fn append(
        &self,
        inner: &dyn EventStore,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<Event>,
    ) -> AppendOutcome {
        Self::count(&self.appends, stream);
        inner.append(stream, expected, events).await
    }

    async fn append_once(
        &self,
        inner: &dyn EventStore,
        stream: &StreamId,
        expected: ExpectedVersion,
        command: CommandId,
        events: Vec<Event>,
    ) -> AppendOutcome {
        // An append with no events only asks what `command` recorded: not counted.
        if !events.is_empty() {
            Self::count(&self.appends, stream);
        }
        inner.append_once(stream, expected, command, events).await
    }

    async fn command_outcome(
        &self,
        inner: &dyn EventStore,
        stream: &StreamId,
        command: CommandId,
    ) -> Result<Option<Appended>, StoreError> {
        Self::count(&self.lookups, stream);
        inner.command_outcome(stream, command).await
    }

    async fn read_stream(
        &self,
        inner: &dyn EventStore,
        stream: &StreamId,
        range: SeqRange,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // A conversation actor rebuilding reads its whole stream; so does an AI agent taking a
        // conversation up, on the runtime's "handover-ai" threads, which is no rebuild.
        let by_ai_agent = std::thread::current()
            .name()
            .is_some_and(|name| name.starts_with("handover-ai"));
        if range == SeqRange::ALL && !by_ai_agent {
            Self::count(&self.whole_reads, stream);
        }
        inner.read_stream(stream, range).await
    }
}

// ---------------------------------------------------------------------------------------------
// AI agents.
// ---------------------------------------------------------------------------------------------

/// An AI agent that never says anything, so the matrix's streams hold only what the test sends.
struct Silent;

#[async_trait]
impl AiAgentBehavior for Silent {
    async fn on_customer_message(&self, _: &AiSession, _: &MessageText) -> Result<(), AgentError> {
        Ok(())
    }
}

/// An AI agent that answers each customer message with text one byte over the limit, then with
/// a skill whose name is one byte over, and reports what each call returned.
struct OverLimit {
    results: mpsc::UnboundedSender<Result<(), Error>>,
}

#[async_trait]
impl AiAgentBehavior for OverLimit {
    async fn on_customer_message(
        &self,
        session: &AiSession,
        _: &MessageText,
    ) -> Result<(), AgentError> {
        // The session takes validated values: an over-limit one is refused before it is sent.
        let reply = match MessageText::new("é".repeat(MESSAGE_BYTES_MAX / 2) + "a") {
            Ok(text) => session.reply(text).await.map(drop),
            Err(invalid) => Err(Error::InvalidInput(invalid)),
        };
        let _ = self.results.send(reply);
        let skill = match Skill::new(
            "€".repeat(IDENTIFIER_BYTES_MAX / 3 + 1),
            "",
            Ok(String::new()),
        ) {
            Ok(skill) => session.record_skill(skill).await.map(drop),
            Err(invalid) => Err(Error::InvalidInput(invalid)),
        };
        let _ = self.results.send(skill);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The fixture.
// ---------------------------------------------------------------------------------------------

struct Fixture {
    handover: Handover,
    store: Arc<CountingStore>,
    _dir: tempfile::TempDir,
}

/// A Handover over a fresh sled directory (default durability: synced), with no passivation,
/// the matrix's AI agents registered, and `faq` and `sales` running silently.
async fn start() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let inner = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    let store = Arc::new(ForwardingStore::new(Arc::new(inner), Counting::default()));
    // The table's events carry time zero, and nothing is routed behind its back.
    let config = Config::new(dir.path())
        .passivate_after(None)
        .workers(2)
        .clock(Arc::new(ManualClock::new(Timestamp(0))))
        .router(Arc::new(NoRouter));
    let handover =
        Handover::start_with_store(Arc::clone(&store) as Arc<dyn EventStore>, config.runtime)
            .await
            .unwrap();
    for human in matrix_table::directory_humans() {
        let new = NewHuman::agent(
            matrix_table::human_id(human.id),
            matrix_table::human_name(human.id),
        );
        let new = match human.role {
            Role::Supervisor => NewHuman::supervisor(new.id, new.name),
            _ => new,
        }
        .tenant(TenantId::new(human.tenant).unwrap())
        .teams(
            human
                .teams
                .iter()
                .map(|t| TeamId::new(*t).unwrap())
                .collect(),
        )
        // Every cell's conversation stays open on one runtime; the table's cells each start
        // from no load, which the largest capacity keeps true here.
        .capacity(handover_core::HUMAN_CAPACITY_MAX.max(human.capacity));
        let id = new.id.clone();
        handover.register_human(new).await.unwrap();
        if human.presence != Presence::Offline {
            handover.set_presence(id, human.presence).await.unwrap();
        }
    }
    for (id, agent_name, specialty, active) in matrix_table::roster_agents() {
        let id = matrix_table::ai(id);
        handover
            .register_ai_agent(AiAgentProfile {
                id: id.clone(),
                name: matrix_table::name(agent_name),
                specialties: vec![matrix_table::specialty(specialty)],
            })
            .await
            .unwrap();
        if active {
            handover.activate_ai_agent(id.clone()).await.unwrap();
            handover
                .attach_ai_agent(id.clone(), Arc::new(Silent))
                .unwrap();
        }
    }
    Fixture {
        handover,
        store,
        _dir: dir,
    }
}

fn new_conversation_id() -> ConversationId {
    ConversationId::from_uuid(uuid::Uuid::now_v7())
}

fn conversation_events(records: &[Arc<RecordedEvent>]) -> Vec<ConversationEvent> {
    records
        .iter()
        .map(|r| match &r.event {
            Event::Conversation(event) => event.clone(),
            other => panic!("a conversation stream holds {other:?}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The conversation matrix.
// ---------------------------------------------------------------------------------------------

/// How the matrix's commands are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Through {
    /// `Handover::execute`.
    Execute,
    /// `Handover::execute_once`, each cell under a new command id.
    ExecuteOnce,
}

async fn send(
    handover: &Handover,
    through: Through,
    id: ConversationId,
    command_id: CommandId,
    command: ConversationCommand,
) -> Result<handover::Receipt, Error> {
    match through {
        Through::Execute => handover.execute(id, command).await,
        Through::ExecuteOnce => handover.execute_once(id, command_id, command).await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conversation_matrix_through_execute() {
    conversation_matrix(Through::Execute).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conversation_matrix_through_execute_once() {
    conversation_matrix(Through::ExecuteOnce).await;
}

async fn conversation_matrix(through: Through) {
    let Fixture {
        handover,
        store,
        _dir,
    } = start().await;
    // Every event the test expects the log to hold, counted as it goes: the total must be the
    // store's head at the end (nothing lost, nothing extra).
    let mut expected_head = store.head();
    let (mut accepted, mut rejected, mut unrepresentable, mut follow_ups) = (0, 0, 0, 0);
    let (mut retries, mut lookups) = (0, 0);

    for line in matrix_table::table() {
        for (caller, expect) in CALLERS.iter().zip(&line.cells) {
            let cell = format!(
                "{} in {} by {}",
                line.row.label(),
                line.state.label(),
                caller.label()
            );
            let Some(command) = line.row.command(*caller) else {
                assert_eq!(expect, &Expect::Unrepresentable, "{cell}");
                unrepresentable += 1;
                continue;
            };

            // A new conversation, brought to the line's state through the runtime.
            let id = new_conversation_id();
            let stream = StreamId::Conversation(id);
            let mut setup_events = 0;
            for setup in line.state.setup() {
                let receipt = handover.execute(id, setup).await.unwrap();
                expected_head += receipt.events.len() as u64;
                setup_events += receipt.events.len();
            }
            let mut watch = match line.state {
                State::Unknown => None,
                _ => {
                    let view = handover.conversation(id).await.unwrap();
                    assert_eq!(view.status, line.state.status(), "{cell}: setup");
                    let mut watch = handover.watch(id).await.unwrap();
                    // Its history; nothing live yet.
                    for _ in 0..setup_events {
                        assert!(watch
                            .next()
                            .now_or_never()
                            .flatten()
                            .transpose()
                            .unwrap()
                            .is_some());
                    }
                    assert!(watch
                        .next()
                        .now_or_never()
                        .flatten()
                        .transpose()
                        .unwrap()
                        .is_none());
                    Some(watch)
                }
            };
            let version = store.stream_version(&stream).await.unwrap();
            let head = store.head();
            assert_eq!(head, expected_head, "{cell}: the log holds other events");
            let appends = store.hooks().appends(&stream);
            let whole_reads = store.hooks().whole_reads(&stream);
            if line.state != State::Unknown {
                // The actor was built once, reading its stream whole; the counter sees builds.
                assert_eq!(whole_reads, 1, "{cell}: setup");
            }

            let lookups_before = store.hooks().lookups(&stream);
            let command_id = CommandId::new();
            let result = send(&handover, through, id, command_id, command.clone()).await;
            lookups += store.hooks().lookups(&stream) - lookups_before;

            match expect {
                Expect::Rejected(rejection) => {
                    match (&result, rejection) {
                        (Err(Error::UnknownConversation(unknown)), Rejection::NotOpened) => {
                            assert_eq!(*unknown, id, "{cell}")
                        }
                        (Err(Error::Rejected(got)), _) => {
                            assert_eq!(got, rejection, "{cell}: rejected for another reason")
                        }
                        _ => panic!("{cell}: expected {rejection:?}, got {result:?}"),
                    }
                    let error = result.unwrap_err();
                    assert!(error.is_caller_error() && !error.is_retryable(), "{cell}");
                    // Nothing recorded, nothing even asked of the store.
                    assert_eq!(
                        store.hooks().appends(&stream),
                        appends,
                        "{cell}: an append was asked"
                    );
                    assert_eq!(
                        store.stream_version(&stream).await.unwrap(),
                        version,
                        "{cell}"
                    );
                    assert_eq!(store.head(), head, "{cell}: the head moved");
                    if through == Through::ExecuteOnce {
                        // A rejection does not make the store remember the command.
                        let outcome = store.command_outcome(&stream, command_id).await.unwrap();
                        assert!(outcome.is_none(), "{cell}: {outcome:?}");
                    }
                    rejected += 1;
                }
                Expect::Accepted(events) => {
                    let receipt = result.unwrap_or_else(|e| panic!("{cell}: rejected: {e:?}"));
                    assert_eq!(&conversation_events(&receipt.events), events, "{cell}");
                    for (i, record) in receipt.events.iter().enumerate() {
                        assert_eq!(record.stream, stream, "{cell}");
                        assert_eq!(record.seq, version + 1 + i as u64, "{cell}");
                        assert_eq!(record.position, head + 1 + i as u64, "{cell}");
                    }
                    let n = events.len() as u64;
                    // A command accepted with nothing to record (a tick with nothing due) asks
                    // nothing of the store.
                    let asked = usize::from(n > 0);
                    assert_eq!(store.hooks().appends(&stream), appends + asked, "{cell}");
                    assert_eq!(store.stream_version(&stream).await.unwrap(), version + n);
                    assert_eq!(store.head(), head + n, "{cell}");
                    // What the log holds is what the receipt says.
                    let stored = store
                        .read_stream(&stream, SeqRange::from(version + 1))
                        .await
                        .unwrap();
                    let receipt_records: Vec<RecordedEvent> =
                        receipt.events.iter().map(|r| (**r).clone()).collect();
                    assert_eq!(stored, receipt_records, "{cell}");
                    let view = handover.conversation(id).await.unwrap();
                    assert_eq!(view.status, receipt.status, "{cell}");
                    assert_eq!(view.events, version + n, "{cell}");
                    if let Some(watch) = &mut watch {
                        for record in &receipt.events {
                            let live = watch.next().now_or_never().flatten().transpose().unwrap();
                            assert_eq!(live.as_deref(), Some(&**record), "{cell}: watcher");
                        }
                    }
                    expected_head += n;
                    accepted += 1;
                    if through == Through::ExecuteOnce && n > 0 {
                        // The store remembers the command with its events, and a retry gets
                        // them again and records nothing.
                        let outcome = store.command_outcome(&stream, command_id).await.unwrap();
                        assert_eq!(outcome.as_deref(), Some(&receipt.events[..]), "{cell}");
                        let retry = handover
                            .execute_once(id, command_id, command)
                            .await
                            .unwrap_or_else(|e| panic!("{cell}: the retry failed: {e:?}"));
                        assert_eq!(retry.events, receipt.events, "{cell}: retry");
                        assert_eq!(retry.status, receipt.status, "{cell}: retry");
                        assert_eq!(store.head(), head + n, "{cell}: the retry recorded");
                        assert_eq!(
                            store.stream_version(&stream).await.unwrap(),
                            version + n,
                            "{cell}: the retry recorded"
                        );
                        if let Some(watch) = &mut watch {
                            assert!(
                                watch
                                    .next()
                                    .now_or_never()
                                    .flatten()
                                    .transpose()
                                    .unwrap()
                                    .is_none(),
                                "{cell}: retry published"
                            );
                        }
                        retries += 1;
                    }
                }
                Expect::Unrepresentable => unreachable!("{cell}: a command exists"),
            }

            // The conversation still works, on the same actor.
            if matches!(expect, Expect::Rejected(_)) {
                match (line.state, line.state.next_valid()) {
                    (State::Unknown, Some(open)) => {
                        // There was nothing to keep running; the conversation can be opened.
                        let receipt = send(&handover, through, id, CommandId::new(), open)
                            .await
                            .unwrap();
                        assert_eq!(receipt.status.label(), "awaiting-human", "{cell}");
                        expected_head += receipt.events.len() as u64;
                    }
                    (_, Some(next)) => {
                        let live = handover.live_conversations();
                        let next = send(&handover, through, id, CommandId::new(), next).await;
                        let receipt = next.unwrap_or_else(|e| {
                            panic!("{cell}: the next valid command was refused: {e:?}")
                        });
                        assert_eq!(receipt.events[0].seq, version + 1, "{cell}");
                        // The watcher registered before the rejection gets it: same actor.
                        let watch = watch.as_mut().unwrap();
                        let delivered = watch.next().now_or_never().flatten().transpose().unwrap();
                        assert_eq!(
                            delivered.as_deref(),
                            Some(&*receipt.events[0]),
                            "{cell}: the watcher was lost, so the actor was replaced"
                        );
                        assert_eq!(handover.live_conversations(), live, "{cell}");
                        expected_head += 1;
                    }
                    (_, None) => {
                        // Closed: nothing is valid, but the actor still answers, unchanged.
                        let view = handover.conversation(id).await.unwrap();
                        assert_eq!(view.status, line.state.status(), "{cell}");
                        assert_eq!(view.events, version, "{cell}");
                    }
                }
                follow_ups += 1;
            }
            if line.state != State::Unknown {
                assert_eq!(
                    store.hooks().whole_reads(&stream),
                    whole_reads,
                    "{cell}: the conversation was rebuilt from its stream"
                );
            }
        }
    }

    assert_eq!(store.head(), expected_head, "the log holds other events");
    println!(
        "conversation matrix through {through:?}: {accepted} accepted cells, {rejected} rejected \
         cells ({follow_ups} followed by a check that the conversation still works), \
         {unrepresentable} unrepresentable; {retries} accepted commands retried, recording \
         nothing; {lookups} lookups of a command's outcome; {} events in the log, as expected; \
         {} conversation actors live",
        store.head(),
        handover.live_conversations()
    );
    assert_eq!((accepted, rejected, unrepresentable), (142, 1244, 1309));
    handover.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The AI-agent matrix.
// ---------------------------------------------------------------------------------------------

async fn agent_command(
    handover: &Handover,
    id: &AiAgentId,
    command: AiAgentCommand,
) -> Result<(), Error> {
    match command {
        AiAgentCommand::Register { name, specialties } => {
            handover
                .register_ai_agent(AiAgentProfile {
                    id: id.clone(),
                    name,
                    specialties,
                })
                .await
        }
        AiAgentCommand::Activate => handover.activate_ai_agent(id.clone()).await,
        AiAgentCommand::Deactivate => handover.deactivate_ai_agent(id.clone()).await,
        other => panic!("the matrix does not drive {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ai_agent_matrix_through_the_runtime() {
    let Fixture {
        handover,
        store,
        _dir,
    } = start().await;
    let (mut accepted, mut rejected) = (0, 0);
    let mut cell_number = 0;
    for row in AGENT_ROWS {
        for state in AGENT_STATES {
            cell_number += 1;
            let id = AiAgentId::new(format!("agent-{cell_number}")).unwrap();
            let table = matrix_table::agent_table(&id);
            let (_, _, expected) = table
                .iter()
                .find(|(r, s, _)| *r == row && *s == state)
                .unwrap();
            let cell = format!("{row:?} in {state:?}");
            let stream = StreamId::AiAgent(id.clone());
            for setup in state.setup() {
                agent_command(&handover, &id, setup).await.unwrap();
            }
            let version = store.stream_version(&stream).await.unwrap();
            let head = store.head();
            let appends = store.hooks().appends(&stream);
            let roster = handover.ai_agents();

            let result = agent_command(&handover, &id, row.command()).await;

            match (expected, result) {
                (Ok(events), Ok(())) => {
                    let stored = store
                        .read_stream(&stream, SeqRange::from(version + 1))
                        .await
                        .unwrap();
                    let stored: Vec<Event> = stored.into_iter().map(|r| r.event).collect();
                    let expected: Vec<Event> = events.iter().cloned().map(Event::AiAgent).collect();
                    assert_eq!(stored, expected, "{cell}");
                    assert_eq!(store.head(), head + expected.len() as u64, "{cell}");
                    accepted += 1;
                }
                (Err(rejection), Err(Error::Rejected(got))) => {
                    assert_eq!(&got, rejection, "{cell}");
                    assert_eq!(
                        store.hooks().appends(&stream),
                        appends,
                        "{cell}: an append was asked"
                    );
                    assert_eq!(store.stream_version(&stream).await.unwrap(), version);
                    assert_eq!(store.head(), head, "{cell}: the head moved");
                    assert_eq!(handover.ai_agents(), roster, "{cell}: the roster changed");
                    rejected += 1;
                }
                (expected, got) => panic!("{cell}: expected {expected:?}, got {got:?}"),
            }
            // The roster actor still works: the next command on a new agent is accepted.
            let next = AiAgentId::new(format!("agent-{cell_number}-next")).unwrap();
            agent_command(&handover, &next, matrix_table::AgentRow::Register.command())
                .await
                .unwrap_or_else(|e| panic!("{cell}: the roster stopped working: {e:?}"));
        }
    }
    println!(
        "AI-agent matrix through the runtime: {accepted} accepted cells, {rejected} rejected \
         cells, each followed by an accepted registration"
    );
    assert_eq!((accepted, rejected), (5, 15));
    handover.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Limits and runtime-only refusals.
// ---------------------------------------------------------------------------------------------

/// Exactly `bytes` bytes of 4-byte characters (`bytes` is a multiple of 4).
fn four_byte(bytes: usize) -> String {
    assert_eq!(bytes % 4, 0);
    "😀".repeat(bytes / 4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_at_their_byte_limits_are_recorded_and_read_back_unchanged() {
    let Fixture {
        handover,
        store,
        _dir,
    } = start().await;
    let customer = handover::CustomerId::new(four_byte(IDENTIFIER_BYTES_MAX)).unwrap();
    let human = handover::HumanId::new("é".repeat(IDENTIFIER_BYTES_MAX / 2)).unwrap();
    handover_testkit::register(
        &handover,
        handover::NewHuman::supervisor(
            human.clone(),
            AgentName::new(four_byte(handover_core::AGENT_NAME_BYTES_MAX)).unwrap(),
        ),
    )
    .await;
    let agent_id = AiAgentId::new(four_byte(IDENTIFIER_BYTES_MAX)).unwrap();
    let specialties: Vec<Specialty> = (0..handover_core::SPECIALTIES_COUNT_MAX)
        .map(|i| Specialty::new(format!("{i:04}{}", four_byte(IDENTIFIER_BYTES_MAX - 4))).unwrap())
        .collect();
    handover
        .register_ai_agent(AiAgentProfile {
            id: agent_id.clone(),
            name: AgentName::new(four_byte(handover_core::AGENT_NAME_BYTES_MAX)).unwrap(),
            specialties: specialties.clone(),
        })
        .await
        .unwrap();
    handover.activate_ai_agent(agent_id.clone()).await.unwrap();
    handover
        .attach_ai_agent(agent_id.clone(), Arc::new(Silent))
        .unwrap();
    assert_eq!(
        handover
            .ai_agents()
            .iter()
            .find(|a| a.profile.id == agent_id)
            .unwrap()
            .profile
            .specialties,
        specialties
    );

    let message = MessageText::new(four_byte(MESSAGE_BYTES_MAX)).unwrap();
    let reason = handover::Reason::new(four_byte(handover::REASON_BYTES_MAX)).unwrap();
    let skill = handover::Skill {
        name: handover::SkillName::new(four_byte(IDENTIFIER_BYTES_MAX)).unwrap(),
        input: handover::SkillData::new(four_byte(SKILL_DATA_BYTES_MAX)).unwrap(),
        outcome: handover::SkillOutcome::Failed(
            handover::SkillData::new(four_byte(SKILL_DATA_BYTES_MAX)).unwrap(),
        ),
    };
    let id = handover
        .open_conversation(
            customer.clone(),
            handover::Channel::new(four_byte(IDENTIFIER_BYTES_MAX)).unwrap(),
            Some(human.clone()),
        )
        .await
        .unwrap()
        .conversation_id;
    let mut sent = Vec::new();
    for command in [
        ConversationCommand::PostMessage {
            by: handover::Participant::Customer(customer.clone()),
            text: message.clone(),
        },
        ConversationCommand::HandOffToAi {
            by: human.clone(),
            agent_id: agent_id.clone(),
            reason: Some(reason.clone()),
        },
        ConversationCommand::RecordAiAction {
            by: handover::Assignment {
                agent_id: agent_id.clone(),
                epoch: handover::Epoch(1),
            },
            skill,
        },
        ConversationCommand::Reclaim {
            by: human.clone(),
            reason: Some(reason),
        },
        ConversationCommand::PostMessage {
            by: handover::Participant::Human(human.clone()),
            text: message,
        },
    ] {
        let receipt = handover.execute(id, command).await.unwrap();
        sent.extend(conversation_events(&receipt.events));
    }
    // Read back from the store, after the start and the assignment: the records decode to
    // exactly what was sent.
    let stored = store
        .read_stream(&StreamId::Conversation(id), SeqRange::from(3))
        .await
        .unwrap();
    let stored: Vec<ConversationEvent> = stored
        .into_iter()
        .map(|r| match r.event {
            Event::Conversation(event) => event,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(stored, sent);
    println!(
        "byte limits through the runtime: {} events with values at their limits recorded and \
         read back unchanged (largest record: a 64 KiB input and a 64 KiB outcome)",
        stored.len() + 2
    );
    handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ai_agents_over_limit_reply_is_typed_and_records_nothing() {
    let Fixture {
        handover,
        store,
        _dir,
    } = start().await;
    let (results, mut reported) = mpsc::unbounded_channel();
    let probe = AiAgentId::new("probe").unwrap();
    handover
        .register_ai_agent(AiAgentProfile {
            id: probe.clone(),
            name: AgentName::new("Probe").unwrap(),
            specialties: vec![],
        })
        .await
        .unwrap();
    handover.activate_ai_agent(probe.clone()).await.unwrap();
    handover
        .attach_ai_agent(probe.clone(), Arc::new(OverLimit { results }))
        .unwrap();
    let customer = matrix_table::customer(matrix_table::CUSTOMER);
    let id = handover
        .open_conversation(
            customer.clone(),
            matrix_table::channel(),
            Some(matrix_table::human()),
        )
        .await
        .unwrap()
        .conversation_id;
    handover
        .hand_off_to_ai(id, matrix_table::human(), probe, None)
        .await
        .unwrap();
    let head = store.head();
    let receipt = handover
        .post_customer_message(id, customer.clone(), MessageText::new("hello").unwrap())
        .await
        .unwrap();
    // A bound on waiting, so that an agent that never runs fails the test instead of hanging
    // it; no outcome depends on it.
    let hang_guard = std::time::Duration::from_secs(120);
    let reply = tokio::time::timeout(hang_guard, reported.recv())
        .await
        .expect("the agent ran")
        .unwrap();
    let skill = tokio::time::timeout(hang_guard, reported.recv())
        .await
        .expect("the agent ran")
        .unwrap();
    assert!(
        matches!(
            &reply,
            Err(Error::InvalidInput(InvalidInput::TooLong { what: "message", len, max }))
                if *len == MESSAGE_BYTES_MAX + 1 && *max == MESSAGE_BYTES_MAX
        ),
        "{reply:?}"
    );
    assert!(
        matches!(
            &skill,
            Err(Error::InvalidInput(InvalidInput::TooLong {
                what: "skill name",
                len: 129,
                max: 128
            }))
        ),
        "{skill:?}"
    );
    assert!(reply.as_ref().unwrap_err().is_caller_error());
    // Only the customer's message was recorded, and the conversation goes on.
    assert_eq!(store.head(), head + receipt.events.len() as u64);
    let view = handover.conversation(id).await.unwrap();
    assert_eq!(view.status.label(), "ai-active");
    handover
        .reclaim(id, matrix_table::human(), None)
        .await
        .unwrap();
    println!(
        "AI session over the limits: 2 calls refused as InvalidInput ({} / {}), nothing recorded",
        reply.unwrap_err(),
        skill.unwrap_err()
    );
    handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_to_an_active_agent_not_running_here_is_typed_and_records_nothing() {
    let Fixture {
        handover,
        store,
        _dir,
    } = start().await;
    let absent = AiAgentId::new("absent").unwrap();
    handover
        .register_ai_agent(AiAgentProfile {
            id: absent.clone(),
            name: AgentName::new("Absent").unwrap(),
            specialties: vec![],
        })
        .await
        .unwrap();
    handover.activate_ai_agent(absent.clone()).await.unwrap();
    let id = handover
        .open_conversation(
            matrix_table::customer(matrix_table::CUSTOMER),
            matrix_table::channel(),
            Some(matrix_table::human()),
        )
        .await
        .unwrap()
        .conversation_id;
    let stream = StreamId::Conversation(id);
    let (head, appends) = (store.head(), store.hooks().appends(&stream));
    let refused = handover
        .hand_off_to_ai(id, matrix_table::human(), absent.clone(), None)
        .await;
    assert!(
        matches!(&refused, Err(Error::AiAgentNotRunning(agent)) if *agent == absent),
        "{refused:?}"
    );
    assert!(refused.unwrap_err().is_caller_error());
    assert_eq!(
        (store.head(), store.hooks().appends(&stream)),
        (head, appends)
    );
    // Once it runs here, the same handoff is accepted.
    handover
        .attach_ai_agent(absent.clone(), Arc::new(Silent))
        .unwrap();
    let receipt = handover
        .hand_off_to_ai(id, matrix_table::human(), absent, None)
        .await
        .unwrap();
    assert_eq!(receipt.status.label(), "ai-active");
    println!(
        "handoff to an agent not running here: refused as AiAgentNotRunning, nothing recorded"
    );
    handover.shutdown().await;
}
