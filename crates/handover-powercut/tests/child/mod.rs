//! The child processes of the power-cut test, and the only place that touches the store.
//!
//! Two children re-run the test executable (`--exact powercut_child`):
//!
//! - the **writer** opens a store in the directory it is given, registers an AI agent and a
//!   human agent and signs the human in, and appends domain-valid events to several conversations at once from concurrent tasks, so
//!   the store's journal commits them in groups. Before each append it prints one
//!   `TRY <stream> <seq> <hash>` line per event, and after the append returned `Ok` one
//!   `ACK <stream> <seq> <hash> <position>` line per event. It never closes the store (a
//!   clean close syncs everything): after its budget it prints `DONE` and waits to be killed.
//!   In the planted mode it prints `ACK ... -` as soon as the append is queued, before the
//!   store's sync acknowledged it: the deliberate bug the test must catch.
//! - the **verifier** opens the store, prints every event of the log in global order
//!   (`HAVE <stream> <seq> <hash> <position>`), closes it and runs the audit's `verify_dir`
//!   (`VERIFY sound <events>` or `VERIFY faulty <what>`). A failed open is `OPEN-ERROR`; a
//!   panic anywhere is `PANIC`, from a hook, so that the parent sees it even when it happens
//!   on one of sled's threads.
//!
//! The store is named once, in the `use ... as Store` below: moving the test to another
//! crate's `SledStore` is a change of that line.

use std::future::Future;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::Poll;

use anyhow::{anyhow, Context as _};
use handover_audit::{verify_dir, VerifyReport};
use handover_core::{
    agent, conversation, human, AgentName, AiAgentCommand, AiAgentId, Assignment, Channel,
    Conversation, ConversationCommand, ConversationId, Ctx, CustomerId, DefaultPolicy, Directory,
    Event, HumanCommand, HumanId, MessageText, Participant, Presence, Role, Roster, Skill,
    SkillData, SkillName, SkillOutcome, Specialty, StreamId, TenantId, Timestamp,
};
use handover_sled::SledOptions as StoreOptions;
use handover_store::{Durability, EventStore, ExpectedVersion, RecordedEvent};
// The store under test, named once.
use handover_sled::SledStore as Store;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Set in a child: `writer` or `verify`.
pub(crate) const MODE_ENV: &str = "HANDOVER_POWERCUT_CHILD";
const DIR_ENV: &str = "HANDOVER_POWERCUT_DIR";
const SEED_ENV: &str = "HANDOVER_POWERCUT_CHILD_SEED";
const GENERATION_ENV: &str = "HANDOVER_POWERCUT_GENERATION";
const DURABILITY_ENV: &str = "HANDOVER_POWERCUT_DURABILITY";
const PLANTED_ENV: &str = "HANDOVER_POWERCUT_PLANTED";
const BIG_ENV: &str = "HANDOVER_POWERCUT_BIG";

/// Conversations a writer appends to at once.
const CONVERSATIONS: u64 = 4;
/// Appends per conversation before the writer says `DONE` and waits.
const APPENDS_PER_CONVERSATION: u64 = 60;
/// The skill input and outcome of a big event: each at its 64 KiB limit, so the record is
/// larger than sled's blob threshold (131,052 bytes with 512 KiB segments).
const BIG_SKILL_BYTES: usize = handover_core::SKILL_DATA_BYTES_MAX;

/// What the parent asks a writer to do.
#[derive(Clone, Debug)]
pub(crate) struct WriterPlan {
    pub(crate) seed: u64,
    /// Distinguishes the writers of one directory: each uses conversations and an agent of
    /// its own, so it needs no state from the log it reopens.
    pub(crate) generation: u64,
    pub(crate) durability: Durability,
    pub(crate) planted: bool,
    pub(crate) big: bool,
}

impl WriterPlan {
    /// Puts the plan into a child's environment.
    pub(crate) fn apply(&self, command: &mut std::process::Command, dir: &Path) {
        command
            .env(MODE_ENV, "writer")
            .env(DIR_ENV, dir)
            .env(SEED_ENV, self.seed.to_string())
            .env(GENERATION_ENV, self.generation.to_string())
            .env(DURABILITY_ENV, self.durability.name())
            .env(PLANTED_ENV, if self.planted { "1" } else { "0" })
            .env(BIG_ENV, if self.big { "1" } else { "0" });
    }
}

/// Puts the verifier's job into a child's environment.
pub(crate) fn apply_verify(command: &mut std::process::Command, dir: &Path) {
    command.env(MODE_ENV, "verify").env(DIR_ENV, dir);
}

/// The hash the lines carry: of the event's JSON form, which round-trips exactly.
pub(crate) fn event_hash(event: &Event) -> String {
    let bytes = serde_json::to_vec(event).unwrap_or_default();
    blake3::hash(&bytes).to_hex()[..16].to_owned()
}

fn out(line: &str) {
    let mut stdout = std::io::stdout().lock();
    // The parent reads lines; a line it misses is a line the check treats as never printed.
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

fn options(durability: Durability) -> StoreOptions {
    StoreOptions {
        durability,
        ..StoreOptions::default()
    }
}

/// Runs the child named by [`MODE_ENV`]; returns only when it is not set.
pub(crate) fn run_if_child() {
    let mode = var(MODE_ENV);
    if mode.is_empty() {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed").to_owned();
        out(&format!(
            "PANIC thread {name}: {}",
            info.to_string().replace('\n', " ")
        ));
    }));
    let dir = PathBuf::from(var(DIR_ENV));
    let result = match mode.as_str() {
        "writer" => writer(&dir),
        "verify" => verifier(&dir),
        other => Err(anyhow!("unknown child mode {other}")),
    };
    match result {
        Ok(()) => std::process::exit(0),
        Err(error) => {
            out(&format!("CHILD-ERROR {error:#}"));
            std::process::exit(3);
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // One thread: the conversations' tasks still wait on the journal together, so their
    // appends share groups, and the child stays light beside the daemon and the store.
    tokio::runtime::Builder::new_current_thread()
        .build()
        .context("building the child's runtime")
}

fn writer(dir: &Path) -> anyhow::Result<()> {
    let plan = WriterPlan {
        seed: var(SEED_ENV).parse().context("the seed")?,
        generation: var(GENERATION_ENV).parse().context("the generation")?,
        durability: match var(DURABILITY_ENV).as_str() {
            "process-crash" => Durability::ProcessCrash,
            _ => Durability::Durable,
        },
        planted: var(PLANTED_ENV) == "1",
        big: var(BIG_ENV) == "1",
    };
    out("OPENING");
    let store = match Store::open(dir, options(plan.durability)) {
        Ok(store) => store,
        Err(error) => {
            // A frozen disk fails the open; the parent decides whether that was expected.
            out(&format!("OPEN-ERROR {error}"));
            return wait_for_kill();
        }
    };
    out("OPENED");
    runtime()?.block_on(async {
        let agent = AiAgentId::new(format!("pc-bot-{}", plan.generation))?;
        let mut roster = Roster::default();
        let mut events = Vec::new();
        for command in [
            AiAgentCommand::Register {
                name: AgentName::new("power-cut bot")?,
                specialties: vec![Specialty::new("faq")?],
            },
            AiAgentCommand::Activate,
        ] {
            for event in agent::decide(&agent, roster.get(&agent), &command)? {
                roster.evolve(&event)?;
                events.push(Event::AiAgent(event));
            }
        }
        let stream = StreamId::AiAgent(agent.clone());
        if !append(&store, &plan, &stream, 0, events).await {
            return wait_for_kill();
        }
        // The human the conversations are given to, registered and signed in.
        let alice = HumanId::new(format!("alice-{}", plan.generation))?;
        let mut directory = Directory::new();
        let mut events = Vec::new();
        for command in [
            HumanCommand::Register {
                tenant: TenantId::default_tenant(),
                name: AgentName::new("Alice")?,
                role: Role::Agent,
                teams: vec![],
                capacity: 5,
            },
            HumanCommand::SetPresence {
                presence: Presence::Available,
            },
        ] {
            for event in human::decide(&alice, directory.get(&alice), &command)? {
                directory.evolve(&event)?;
                events.push(Event::Human(event));
            }
        }
        let stream = StreamId::Human(alice.clone());
        if !append(&store, &plan, &stream, 0, events).await {
            return wait_for_kill();
        }
        let mut tasks = Vec::new();
        let store = std::sync::Arc::new(store);
        for n in 0..CONVERSATIONS {
            let store = std::sync::Arc::clone(&store);
            let plan = plan.clone();
            let roster = roster.clone();
            let directory = directory.clone();
            let agent = agent.clone();
            let alice = alice.clone();
            tasks.push(tokio::spawn(async move {
                let people = People {
                    roster: &roster,
                    directory: &directory,
                    agent: &agent,
                    human: &alice,
                };
                conversation_task(&store, &plan, &people, n).await
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
        out("DONE");
        wait_for_kill()
    })
}

/// Blocks until the parent kills this process: a writer never closes its store, because a
/// clean close syncs what a power cut should find unsynced.
fn wait_for_kill() -> anyhow::Result<()> {
    let mut byte = [0u8; 1];
    // The parent never writes to this pipe.
    let _ = std::io::stdin().read(&mut byte);
    Err(anyhow!("the parent closed the writer's standard input"))
}

fn conversation_id(seed: u64, generation: u64, n: u64) -> ConversationId {
    let base = 0x0190_f1f0_0000_7000_8000_0000_0000_0000_u128;
    let low = (u128::from(generation) << 32) | u128::from(n) | (u128::from(seed & 0xffff) << 48);
    ConversationId::from_uuid(uuid::Uuid::from_u128(base + low))
}

/// Who a writer's conversations meet: its AI agent and human, and the roster and directory
/// they are registered in.
struct People<'a> {
    roster: &'a Roster,
    directory: &'a Directory,
    agent: &'a AiAgentId,
    human: &'a HumanId,
}

/// Now, by the system clock, as the store stamps its records.
fn now() -> Timestamp {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    Timestamp(micros)
}

async fn conversation_task(
    store: &Store,
    plan: &WriterPlan,
    people: &People<'_>,
    n: u64,
) -> anyhow::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(plan.seed ^ (n + 1).wrapping_mul(0x9e37_79b9));
    let id = conversation_id(plan.seed, plan.generation, n);
    let stream = StreamId::Conversation(id);
    let policy = DefaultPolicy::default();
    let (agent, alice) = (people.agent, people.human);
    let customer = CustomerId::new(format!("cust-{n}"))?;
    let mut state = Conversation::NotOpened;
    let mut version = 0;
    for attempt in 0..APPENDS_PER_CONVERSATION {
        let mut commands = Vec::new();
        if attempt == 0 {
            commands.push(Some(ConversationCommand::Open {
                customer: customer.clone(),
                channel: Channel::new("web-chat")?,
                human: Some(alice.clone()),
            }));
            if plan.big {
                commands.push(Some(ConversationCommand::HandOffToAi {
                    by: alice.clone(),
                    agent_id: agent.clone(),
                    reason: None,
                }));
            }
        } else {
            // One to three commands in one append: a multi-event append is all or nothing.
            for _ in 0..rng.gen_range(1..=3) {
                commands.push(None);
            }
        }
        let mut events = Vec::new();
        let mut next = state.clone();
        for command in commands {
            // Later commands of an append are built for the state the earlier ones leave.
            let command = command
                .unwrap_or_else(|| next_command(&mut rng, next.assignment(), &customer, attempt));
            let command = &command;
            let ctx = Ctx::new(people.roster, &policy)
                .with_directory(people.directory)
                .at(now());
            // Commands are built for the state they meet; a refusal is a workload bug.
            let decided = conversation::decide(&next, command, &ctx)
                .map_err(|r| anyhow!("{command:?} was refused: {r}"))?;
            for event in decided {
                next = conversation::evolve(next, &event)
                    .map_err(|r| anyhow!("evolve refused {event:?}: {r}"))?;
                events.push(Event::Conversation(event));
            }
        }
        let count = events.len() as u64;
        if !append(store, plan, &stream, version, events).await {
            return Ok(());
        }
        state = next;
        version += count;
    }
    Ok(())
}

/// The next command: a customer message, and in an AI-active conversation (big mode) mostly
/// an AI action of two 64 KiB halves.
fn next_command(
    rng: &mut ChaCha8Rng,
    assignment: Option<Assignment>,
    customer: &CustomerId,
    attempt: u64,
) -> ConversationCommand {
    if let Some(assignment) = assignment.filter(|_| rng.gen_bool(0.7)) {
        return ConversationCommand::RecordAiAction {
            by: assignment,
            skill: Skill {
                name: SkillName::new("lookup_account").expect("a valid name"),
                input: SkillData::new(filler(rng, BIG_SKILL_BYTES)).expect("within the limit"),
                outcome: SkillOutcome::Succeeded(
                    SkillData::new(filler(rng, BIG_SKILL_BYTES)).expect("within the limit"),
                ),
            },
        };
    }
    // Mostly short messages (many groups, many syncs), now and then one near the limit, so
    // consolidated sled leaves pass the blob threshold too.
    let len = if rng.gen_bool(0.05) {
        rng.gen_range(30_000..=60_000)
    } else {
        rng.gen_range(20..=2_000)
    };
    let text = format!("message {attempt} {}", filler(rng, len));
    ConversationCommand::PostMessage {
        by: Participant::Customer(customer.clone()),
        text: MessageText::new(text).expect("within the limit"),
    }
}

/// `len` bytes of lowercase letters: no word the policy reacts to.
fn filler(rng: &mut ChaCha8Rng, len: usize) -> String {
    let letter = b'a' + rng.gen_range(0..26u8);
    String::from_utf8(vec![letter; len]).expect("ASCII")
}

/// Appends `events` at `version`, printing `TRY` before and `ACK` after; false once the
/// store has failed (the disk froze), after which the writer appends no more.
async fn append(
    store: &Store,
    plan: &WriterPlan,
    stream: &StreamId,
    version: u64,
    events: Vec<Event>,
) -> bool {
    let hashes: Vec<String> = events.iter().map(event_hash).collect();
    for (i, hash) in hashes.iter().enumerate() {
        out(&format!("TRY {stream} {} {hash}", version + 1 + i as u64));
    }
    let mut future: Pin<Box<dyn Future<Output = _> + Send + '_>> =
        store.append(stream, ExpectedVersion::Exact(version), events);
    if plan.planted {
        // The planted bug: poll the append once, so that it is queued in the journal, and
        // acknowledge it then, before the store's sync has.
        let first = std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
            Poll::Ready(result) => Poll::Ready(Some(result)),
            Poll::Pending => Poll::Ready(None),
        })
        .await;
        for (i, hash) in hashes.iter().enumerate() {
            out(&format!("ACK {stream} {} {hash} -", version + 1 + i as u64));
        }
        let result = match first {
            Some(result) => result,
            None => future.await,
        };
        return matches!(result, Ok(Ok(_)));
    }
    match future.await {
        Ok(Ok(appended)) => {
            for (record, hash) in appended.iter().zip(&hashes) {
                out(&format!(
                    "ACK {stream} {} {hash} {}",
                    record.seq, record.position
                ));
            }
            true
        }
        Ok(Err(conflict)) => {
            out(&format!("FAIL {stream} conflict {conflict:?}"));
            false
        }
        Err(error) => {
            out(&format!(
                "FAIL {stream} {}",
                error.to_string().replace('\n', " ")
            ));
            false
        }
    }
}

fn verifier(dir: &Path) -> anyhow::Result<()> {
    let store = match Store::open(dir, options(Durability::Durable)) {
        Ok(store) => store,
        Err(error) => {
            out(&format!(
                "OPEN-ERROR {}",
                error.to_string().replace('\n', " ")
            ));
            return Ok(());
        }
    };
    out("OPENED");
    let records = runtime()?.block_on(async {
        let mut records: Vec<RecordedEvent> = Vec::new();
        loop {
            let from = records.last().map_or(1, |r| r.position + 1);
            let batch = store.read_all(from, 512).await?;
            if batch.is_empty() {
                break;
            }
            records.extend(batch);
        }
        anyhow::Ok(records)
    });
    let records = match records {
        Ok(records) => records,
        Err(error) => {
            out(&format!("READ-ERROR {error:#}"));
            return Ok(());
        }
    };
    for record in &records {
        out(&format!(
            "HAVE {} {} {} {}",
            record.stream,
            record.seq,
            event_hash(&record.event),
            record.position
        ));
    }
    drop(store);
    match verify_dir(dir) {
        Ok(VerifyReport::Sound { events, .. }) => out(&format!("VERIFY sound {events}")),
        Ok(VerifyReport::Faulty(fault)) => out(&format!(
            "VERIFY faulty {}",
            format!("{fault:?}").replace('\n', " ")
        )),
        Err(error) => out(&format!(
            "VERIFY error {}",
            error.to_string().replace('\n', " ")
        )),
    }
    Ok(())
}
