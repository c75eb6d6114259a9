//! Damage to a closed store is reported, never read back as a shorter or different log:
//!
//! - the file-level sweep damages one file of a copy of a closed store per case (bits flipped,
//!   a truncation, a zeroed page), then a child process opens the copy and reads everything:
//!   every stream, the AI-agent streams, the global order, and `verify_dir`. Each case is a
//!   typed error or the complete log; a log read back shorter or different without an error,
//!   a panic and a hang each fail the sweep;
//! - record-level damage under valid keys (a flipped bit, a record from another conversation,
//!   two records reordered, a stream's last record deleted, a forged record, a record moved to
//!   another stream) is a `Corrupted` error naming the stream and seq from the stream read,
//!   from the global order, and from `verify_dir`.
//!
//! The sweep runs `HANDOVER_SWEEP_CASES` cases (1,000 by default) from `HANDOVER_SWEEP_SEED`,
//! two children at a time, each killed after `HANDOVER_SWEEP_TIMEOUT_SECS` (60 by default).
//! The store it damages is the same, byte for byte, on every run: a checked-in fixture,
//! `tests/fixtures/sweep` (its digest is pinned in [`FIXTURE_DIGEST`] and printed), so a seed
//! names the same cases on the same bytes everywhere. Its logical content is reproducible
//! (appends one at a time, recorded at a fixed time, see [`reproducible`]), but sled's file
//! layout is not: when sled reuses a segment of its log and where it puts a page depend on
//! when its background writes finish, so two builds of the same appends differ in `db`, in the
//! snapshot and in the blob files' names. `HANDOVER_SWEEP_BUILD=1` sweeps a freshly built
//! store instead (a layout of its own on every run); with `HANDOVER_SWEEP_KEEP=1` the sweep
//! keeps that store and the directories of the cases that were not contained, and
//! `HANDOVER_SWEEP_BASE=<that directory>` runs the same seed on it again (or, copied to
//! `tests/fixtures/sweep` with the new digest pinned, makes it the fixture).
//!
//! ```sh
//! cargo test -p handover-audit --test corruption_sweep -- --nocapture
//! HANDOVER_SWEEP_CASES=10000 HANDOVER_SWEEP_SEED=7 cargo test --release -p handover-audit --test corruption_sweep -- --nocapture file_level
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use handover_audit::{verify_dir, AuditError, VerifyReport};
use handover_core::*;
use handover_sled::{SledOptions, SledStore};
use handover_store::{
    decode_record, encode_record, record_previous_hash, Damage, Durability, EventStore,
    ExpectedVersion, RecordHash, RecordedAt, RecordedEvent, SeqRange, StoreError,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What the child does: `build` or `read`.
const MODE_ENV: &str = "HANDOVER_SWEEP_CHILD";
/// The data directory the child works on.
const DIR_ENV: &str = "HANDOVER_SWEEP_DIR";
/// The acknowledged events, one `Debug` line per record in position order.
const EXPECTED_ENV: &str = "HANDOVER_SWEEP_EXPECTED";
const CASES_ENV: &str = "HANDOVER_SWEEP_CASES";
const SEED_ENV: &str = "HANDOVER_SWEEP_SEED";
const TIMEOUT_ENV: &str = "HANDOVER_SWEEP_TIMEOUT_SECS";
const KEEP_ENV: &str = "HANDOVER_SWEEP_KEEP";
/// A directory kept by an earlier run, whose `base` store and `expected` events to reuse.
const BASE_ENV: &str = "HANDOVER_SWEEP_BASE";
/// `1`: sweep a freshly built store instead of the fixture.
const BUILD_ENV: &str = "HANDOVER_SWEEP_BUILD";
/// The digest (see [`digest`]) of the fixture's `base` store.
const FIXTURE_DIGEST: &str = "9a5b360a36baaf54823cee309df86631861cc604449e70be19031a5c93bb8e82";

const DEFAULT_CASES: usize = 1000;
const DEFAULT_SEED: u64 = 20_260_401;
const DEFAULT_TIMEOUT_SECS: u64 = 60;
/// Children running at once.
const WORKERS: usize = 2;
/// Conversations in the sweep's store.
const SWEEP_CONVERSATIONS: u128 = 300;
/// Conversations in each record-level store.
const RECORD_CONVERSATIONS: u128 = 12;
const AGENTS: [&str; 3] = ["faq-bot", "billing-bot", "returns-bot"];
/// Every this many conversations, one whose AI messages are near the 64 KiB limit: sled may
/// write such pages as blob files of their own.
const BIG_EVERY: u128 = 100;
/// Cases of each class printed in full.
const SHOWN_PER_CLASS: usize = 4;

// ---------------------------------------------------------------------------------------------
// The history: domain-valid, so that an undamaged store verifies as sound.
// ---------------------------------------------------------------------------------------------

fn conversation_id(n: u128) -> ConversationId {
    ConversationId::from_uuid(uuid::Uuid::from_u128(
        0x0190_f1f0_0000_7000_8000_0000_0000_0000 + n,
    ))
}

fn agent_id(name: &str) -> AiAgentId {
    AiAgentId::new(name).unwrap()
}

fn human(name: &str) -> HumanId {
    HumanId::new(name).unwrap()
}

/// Every stream of a store of `conversations` conversations: the AI agents, then the
/// conversations.
fn streams(conversations: u128) -> Vec<StreamId> {
    AGENTS
        .iter()
        .map(|a| StreamId::AiAgent(agent_id(a)))
        .chain((1..=conversations).map(|n| StreamId::Conversation(conversation_id(n))))
        .chain([
            StreamId::Human(human("alice")),
            StreamId::Human(human("bob")),
        ])
        .collect()
}

/// One stream's appends, in order, each a list of events written atomically.
type Script = (StreamId, Vec<Vec<Event>>);

/// The scripts of the humans (each registered and made available in one append): alice, an
/// agent who opens and hands off, and bob, a supervisor who reclaims and answers; and the
/// directory they fold to.
fn human_scripts() -> (Vec<Script>, Directory) {
    let mut directory = Directory::new();
    let mut scripts = Vec::new();
    for (name, role) in [("alice", Role::Agent), ("bob", Role::Supervisor)] {
        let id = human(name);
        let mut events = Vec::new();
        for command in [
            HumanCommand::Register {
                tenant: TenantId::default_tenant(),
                name: AgentName::new(name).unwrap(),
                role,
                teams: vec![],
                capacity: 1_000,
            },
            HumanCommand::SetPresence {
                presence: Presence::Available,
            },
        ] {
            for event in handover_core::human::decide(&id, directory.get(&id), &command).unwrap() {
                directory.evolve(&event).unwrap();
                events.push(Event::Human(event));
            }
        }
        scripts.push((StreamId::Human(id), vec![events]));
    }
    (scripts, directory)
}

/// The AI agents' scripts (registered and activated in one append each) and the roster they
/// fold to.
fn agent_scripts() -> (Vec<Script>, Roster) {
    let mut roster = Roster::default();
    let mut scripts = Vec::new();
    for name in AGENTS {
        let id = agent_id(name);
        let mut appends = Vec::new();
        for command in [
            AiAgentCommand::Register {
                name: AgentName::new(format!("{name} bot")).unwrap(),
                specialties: vec![Specialty::new("faq").unwrap()],
            },
            AiAgentCommand::Activate,
        ] {
            let events = agent::decide(&id, roster.get(&id), &command).unwrap();
            for event in &events {
                roster.evolve(event).unwrap();
            }
            appends.push(events.into_iter().map(Event::AiAgent).collect());
        }
        scripts.push((StreamId::AiAgent(id), appends));
    }
    (scripts, roster)
}

/// A conversation's script, decided command by command as the runtime would, with some
/// consecutive commands' events joined into one append. Every `big_every`th conversation
/// carries messages near the 64 KiB limit, which sled may store as blob files.
fn conversation_script(
    n: u128,
    roster: &Roster,
    directory: &Directory,
    rng: &mut ChaCha8Rng,
    big_every: u128,
) -> Script {
    let id = conversation_id(n);
    let policy = DefaultPolicy::default();
    let ctx = Ctx::new(roster, &policy).with_directory(directory);
    let customer = CustomerId::new(format!("cust-{n}")).unwrap();
    let alice = human("alice");
    let agent = agent_id(AGENTS[rng.gen_range(0..AGENTS.len())]);
    let text = |words: String| MessageText::new(words).unwrap();
    let mut commands = vec![
        ConversationCommand::Open {
            customer: customer.clone(),
            channel: Channel::new("web-chat").unwrap(),
            human: Some(alice.clone()),
        },
        ConversationCommand::PostMessage {
            by: Participant::Customer(customer.clone()),
            text: text(format!("How do I reset my password? ({n})")),
        },
        ConversationCommand::HandOffToAi {
            by: alice.clone(),
            agent_id: agent.clone(),
            reason: Some(Reason::new("routine question").unwrap()),
        },
    ];
    // Commands that need the assignment are built once the state is known (below).
    let ending = rng.gen_range(0..4u8);
    let big = n % big_every == 0;
    let ai_turns = if big { 3 } else { rng.gen_range(1..4usize) };

    let mut state = Conversation::NotOpened;
    let mut appends: Vec<Vec<Event>> = Vec::new();
    let mut pending: Vec<Event> = Vec::new();
    let mut run = |state: &mut Conversation, command: ConversationCommand, rng: &mut ChaCha8Rng| {
        let events = conversation::decide(state, &command, &ctx)
            .unwrap_or_else(|r| panic!("conversation {n}: {command:?} was rejected: {r}"));
        for event in &events {
            *state = conversation::evolve(state.clone(), event).unwrap();
        }
        pending.extend(events.into_iter().map(Event::Conversation));
        // About a third of the appends carry the next command's events too.
        if rng.gen_range(0..3) != 0 {
            appends.push(std::mem::take(&mut pending));
        }
    };
    for command in commands.drain(..) {
        run(&mut state, command, rng);
    }
    for turn in 0..ai_turns {
        let assignment = state.assignment().expect("AI-active");
        let words = if big {
            format!("{turn} ").repeat(30 * 1024)
        } else {
            format!("Here is how, step {turn}.")
        };
        run(
            &mut state,
            ConversationCommand::PostMessage {
                by: Participant::Ai(assignment.clone()),
                text: text(words),
            },
            rng,
        );
        run(
            &mut state,
            ConversationCommand::RecordAiAction {
                by: assignment,
                skill: Skill {
                    name: SkillName::new("lookup_account").unwrap(),
                    input: SkillData::new(format!("{{\"conversation\":{n}}}")).unwrap(),
                    outcome: if turn % 2 == 0 {
                        SkillOutcome::Succeeded(SkillData::new("found").unwrap())
                    } else {
                        SkillOutcome::Failed(SkillData::new("timeout").unwrap())
                    },
                },
            },
            rng,
        );
    }
    match ending {
        // The customer asks for a human: the message and the escalation in one append.
        0 => run(
            &mut state,
            ConversationCommand::PostMessage {
                by: Participant::Customer(customer.clone()),
                text: text("I want to talk to a human".to_owned()),
            },
            rng,
        ),
        1 => run(
            &mut state,
            ConversationCommand::Reclaim {
                by: human("bob"),
                reason: Some(Reason::new("VIP customer").unwrap()),
            },
            rng,
        ),
        2 => {
            let assignment = state.assignment().expect("AI-active");
            run(
                &mut state,
                ConversationCommand::Close {
                    by: Participant::Ai(assignment),
                    reason: None,
                },
                rng,
            );
        }
        _ => {}
    }
    if ending < 2 {
        run(
            &mut state,
            ConversationCommand::PostMessage {
                by: Participant::Human(human("bob")),
                text: text("Bob here, I can help.".to_owned()),
            },
            rng,
        );
        run(
            &mut state,
            ConversationCommand::Close {
                by: Participant::Human(human("bob")),
                reason: Some(Reason::new("resolved").unwrap()),
            },
            rng,
        );
    }
    if !pending.is_empty() {
        appends.push(pending);
    }
    (StreamId::Conversation(id), appends)
}

/// When every event of the sweep's stores is recorded: 2026-04-01T00:00:00Z, in microseconds.
const RECORDED_AT: RecordedAt = RecordedAt(1_775_001_600_000_000);

/// How the sweep's stores are written: so that the same appends give the same bytes. Appends
/// are acknowledged once applied (`Buffered`), sled never flushes on its own (it writes its
/// buffers when they fill, and everything when the store closes), and every event is recorded
/// at [`RECORDED_AT`].
fn reproducible() -> SledOptions {
    SledOptions {
        durability: Durability::Buffered,
        flush_every_ms: 0,
        fixed_time: Some(RECORDED_AT),
        ..SledOptions::default()
    }
}

/// Writes a store of `conversations` conversations into `dir` in two sessions: the AI agents
/// and the first half of every conversation's appends, then the rest. sled writes a snapshot
/// when it opens a log that grew, so the directory holds what a reopened store holds: a
/// snapshot covering the first session, and a log that goes on past it. The same
/// `conversations` give the same bytes (see [`reproducible`]). Returns every acknowledged
/// record in position order.
fn build_store(dir: &Path, conversations: u128) -> Vec<RecordedEvent> {
    let mut rng = ChaCha8Rng::seed_from_u64(0x0b5e_55ed);
    let (mut agents, roster) = agent_scripts();
    let (humans, directory) = human_scripts();
    agents.extend(humans);
    let mut scripts: Vec<Script> = (1..=conversations)
        .map(|n| conversation_script(n, &roster, &directory, &mut rng, BIG_EVERY))
        .collect();
    let last: Vec<Script> = scripts
        .iter_mut()
        .map(|(stream, appends)| (stream.clone(), appends.split_off(appends.len().div_ceil(2))))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut acknowledged = Vec::new();
    for (agents, scripts) in [(agents, scripts), (Vec::new(), last)] {
        let store = SledStore::open(dir, reproducible()).expect("the store opens");
        // The agents first: a handoff names an agent registered and active before it.
        acknowledged.extend(append_in_turn(&runtime, &store, agents));
        acknowledged.extend(append_in_turn(&runtime, &store, scripts));
        drop(store);
    }
    acknowledged.sort_by_key(|r| r.position);
    acknowledged
}

/// Appends every script's appends in turns (the first append of every script, then the second
/// of every script that has one, and so on), one at a time, so the streams interleave in the
/// log and every append is a group of its own: the same scripts give the same log.
fn append_in_turn(
    runtime: &tokio::runtime::Runtime,
    store: &SledStore,
    scripts: Vec<Script>,
) -> Vec<RecordedEvent> {
    runtime.block_on(async {
        let mut recorded = Vec::new();
        let mut versions: Vec<u64> = scripts
            .iter()
            .map(|(stream, _)| store.version(stream).expect("the version"))
            .collect();
        let turns = scripts
            .iter()
            .map(|(_, appends)| appends.len())
            .max()
            .unwrap_or(0);
        for turn in 0..turns {
            for ((stream, appends), version) in scripts.iter().zip(&mut versions) {
                let Some(events) = appends.get(turn) else {
                    continue;
                };
                let appended = store
                    .append(stream, ExpectedVersion::Exact(*version), events.clone())
                    .await
                    .expect("no store error")
                    .expect("no conflict");
                *version += appended.len() as u64;
                recorded.extend(appended.iter().map(|r| RecordedEvent::clone(r)));
            }
        }
        recorded
    })
}

/// A digest of every file under `dir` (its path, length and bytes, in name order): the same
/// store built twice has the same digest.
fn digest(dir: &Path) -> String {
    let mut all = Vec::new();
    for (path, len) in files(dir) {
        all.extend_from_slice(path.to_string_lossy().as_bytes());
        all.push(0);
        all.extend_from_slice(&len.to_be_bytes());
        all.extend_from_slice(&fs::read(dir.join(&path)).unwrap());
    }
    RecordHash::of(&all).to_string()
}

// ---------------------------------------------------------------------------------------------
// The child.
// ---------------------------------------------------------------------------------------------

/// The entry point of the child processes the sweep starts. Without `HANDOVER_SWEEP_CHILD` (a
/// plain `cargo test`) it does nothing.
#[test]
fn child_process() {
    let Ok(mode) = std::env::var(MODE_ENV) else {
        return;
    };
    report_panics();
    let dir = PathBuf::from(std::env::var(DIR_ENV).expect("the child's directory"));
    let expected = PathBuf::from(std::env::var(EXPECTED_ENV).expect("the expected events"));
    match mode.as_str() {
        "build" => {
            let records = build_store(&dir, SWEEP_CONVERSATIONS);
            let lines: Vec<String> = records.iter().map(|r| format!("{r:?}\n")).collect();
            fs::write(&expected, lines.concat()).expect("the expected events are written");
        }
        "read" => {
            let expected = fs::read_to_string(&expected).expect("the expected events");
            let lines: Vec<String> = expected.lines().map(str::to_owned).collect();
            // On a line of its own: the harness printed the test's name without a newline.
            println!("\nOUTCOME {}", read_everything(&dir, &lines));
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// Prints every panic, on any thread, on a line of its own, before the default report: the
/// parent counts the panics a child survived (caught by the store, or on a background thread)
/// as well as those that ended it.
fn report_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        eprintln!(
            "PANIC-SEEN thread={} {}",
            thread.name().unwrap_or("unnamed"),
            info.to_string().replace('\n', " ")
        );
        default(info);
    }));
}

/// How one reader fared.
enum Read {
    Intact,
    Error(String),
    Shorter(String),
    Different(String),
}

fn compare(actual: &[RecordedEvent], expected: &[String]) -> Read {
    let actual: Vec<String> = actual.iter().map(|r| format!("{r:?}")).collect();
    if actual == expected {
        Read::Intact
    } else if actual.len() < expected.len() && expected.starts_with(&actual) {
        Read::Shorter(format!("{} of {} events", actual.len(), expected.len()))
    } else {
        let first = actual
            .iter()
            .zip(expected)
            .position(|(a, e)| a != e)
            .unwrap_or(actual.len().min(expected.len()));
        Read::Different(format!(
            "{} events where {} were acknowledged, the first difference at index {first}",
            actual.len(),
            expected.len()
        ))
    }
}

fn store_error(error: &StoreError) -> String {
    let kind = match error {
        StoreError::Corrupted { damage, .. } => format!("Corrupted{{{damage:?}}}"),
        StoreError::InUse { .. } => "InUse".to_owned(),
        StoreError::Io(_) => "Io".to_owned(),
        StoreError::Engine(_) => "Engine".to_owned(),
        other => format!("{other:?}"),
    };
    format!("{kind}: {error}")
}

fn audit_error(error: &AuditError) -> String {
    match error {
        AuditError::Store(error) => store_error(error),
        AuditError::NotADataDir { .. } => format!("NotADataDir: {error}"),
        AuditError::DataDirMissing { .. } => format!("DataDirMissing: {error}"),
        other => format!("{other:?}"),
    }
}

/// The acknowledged records' `Debug` lines by the `Debug` text of their stream, each stream's
/// in seq order.
fn by_stream(expected: &[String]) -> BTreeMap<String, Vec<String>> {
    let mut streams: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in expected {
        let stream = line
            .split_once(", stream: ")
            .and_then(|(_, rest)| rest.split_once(", seq: "))
            .map(|(stream, _)| stream.to_owned())
            .expect("a record's Debug text names its stream");
        streams.entry(stream).or_default().push(line.clone());
    }
    streams
}

/// Opens `dir`, reads everything, verifies it, and says how it went, as `<class> | <detail>`:
/// `typed`, `intact`, `shorter` or `different`.
fn read_everything(dir: &Path, expected: &[String]) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut reads: Vec<(String, Read)> = Vec::new();
    match SledStore::open(dir, SledOptions::default()) {
        Err(error) => reads.push(("open".to_owned(), Read::Error(store_error(&error)))),
        Ok(store) => {
            let global = runtime.block_on(store.read_all(1, usize::MAX));
            reads.push((
                "read_all".to_owned(),
                match global {
                    Ok(records) => compare(&records, expected),
                    Err(error) => Read::Error(store_error(&error)),
                },
            ));
            let known = streams(SWEEP_CONVERSATIONS);
            // `read_ai_agents` reads stream by stream, in the order of the agents' ids.
            let mut agent_streams: Vec<StreamId> = known
                .iter()
                .filter(|s| matches!(s, StreamId::AiAgent(_)))
                .cloned()
                .collect();
            agent_streams.sort_by_key(|s| s.to_string());
            let by_stream = by_stream(expected);
            let lines_of = |stream: &StreamId| {
                by_stream
                    .get(&format!("{stream:?}"))
                    .cloned()
                    .unwrap_or_default()
            };
            let agents: Vec<String> = agent_streams.iter().flat_map(lines_of).collect();
            reads.push((
                "read_ai_agents".to_owned(),
                match runtime.block_on(store.read_ai_agents()) {
                    Ok(records) => compare(&records, &agents),
                    Err(error) => Read::Error(store_error(&error)),
                },
            ));
            // Streams found in the stream key space that were never written.
            let names: BTreeSet<String> = known.iter().map(|s| s.to_string()).collect();
            let mut strangers = BTreeSet::new();
            for record in store.scan_streams() {
                match record {
                    Ok(record) if !names.contains(&record.stream.to_string()) => {
                        strangers.insert(record.stream.to_string());
                    }
                    Ok(_) => {}
                    Err(error) => {
                        reads.push(("scan_streams".to_owned(), Read::Error(store_error(&error))));
                        break;
                    }
                }
            }
            for stranger in strangers {
                reads.push((
                    stranger,
                    Read::Different("a stream that was never written".to_owned()),
                ));
            }
            for stream in &known {
                let read = match runtime.block_on(store.read_stream(stream, SeqRange::ALL)) {
                    Ok(records) => compare(&records, &lines_of(stream)),
                    Err(error) => Read::Error(store_error(&error)),
                };
                reads.push((format!("read_stream {stream}"), read));
            }
            drop(store);
            reads.push((
                "verify_dir".to_owned(),
                match verify_dir(dir) {
                    Ok(VerifyReport::Sound { events, streams }) => {
                        let expected_streams = by_stream.len();
                        if events == expected.len() as u64 && streams == expected_streams as u64 {
                            Read::Intact
                        } else if events < expected.len() as u64 {
                            Read::Shorter(format!(
                                "sound with {events} events in {streams} streams, {} acknowledged",
                                expected.len()
                            ))
                        } else {
                            Read::Different(format!(
                                "sound with {events} events in {streams} streams, {} in {expected_streams} acknowledged",
                                expected.len()
                            ))
                        }
                    }
                    Ok(VerifyReport::Faulty(fault)) => Read::Error(format!("Fault{{{:?}}}: {fault}", fault.kind)),
                    Err(error) => Read::Error(audit_error(&error)),
                },
            ));
        }
    }
    let worst = |pick: fn(&Read) -> Option<&String>| {
        reads
            .iter()
            .find_map(|(name, read)| pick(read).map(|detail| format!("{name}: {detail}")))
    };
    let detail = |line: String| line.replace('\n', " ");
    if let Some(line) = worst(|r| match r {
        Read::Shorter(d) => Some(d),
        _ => None,
    }) {
        return format!("shorter | {}", detail(line));
    }
    if let Some(line) = worst(|r| match r {
        Read::Different(d) => Some(d),
        _ => None,
    }) {
        return format!("different | {}", detail(line));
    }
    if let Some(line) = worst(|r| match r {
        Read::Error(d) => Some(d),
        _ => None,
    }) {
        return format!("typed | {}", detail(line));
    }
    format!("intact | {} events", expected.len())
}

// ---------------------------------------------------------------------------------------------
// The parent.
// ---------------------------------------------------------------------------------------------

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The class of a case, as the sweep's table counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Typed,
    Intact,
    Shorter,
    Different,
    Panic,
    Hang,
    /// Another exit code, a signal, or no outcome line: the child did not finish its work.
    Other,
}

impl Class {
    const ALL: [Class; 7] = [
        Class::Typed,
        Class::Intact,
        Class::Shorter,
        Class::Different,
        Class::Panic,
        Class::Hang,
        Class::Other,
    ];

    fn name(self) -> &'static str {
        match self {
            Class::Typed => "typed error",
            Class::Intact => "intact",
            Class::Shorter => "shorter, no error",
            Class::Different => "different, no error",
            Class::Panic => "panic",
            Class::Hang => "hang",
            Class::Other => "other ending",
        }
    }

    fn contained(self) -> bool {
        matches!(self, Class::Typed | Class::Intact)
    }
}

/// Runs a child for `mode` on `dir`, its output in files under `out`; kills it after the
/// timeout. Returns its class, what it said, and how many panics it reported surviving.
fn run_child(mode: &str, dir: &Path, expected: &Path, out: &Path) -> (Class, String, usize) {
    let child = Command::new(std::env::current_exe().expect("the test executable"))
        .args([
            "child_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MODE_ENV, mode)
        .env(DIR_ENV, dir)
        .env(EXPECTED_ENV, expected)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(fs::File::create(out.join("stdout")).unwrap())
        .stderr(fs::File::create(out.join("stderr")).unwrap())
        .spawn()
        .expect("the child starts");
    finish(child, out)
}

fn finish(mut child: Child, out: &Path) -> (Class, String, usize) {
    let deadline = Instant::now() + Duration::from_secs(env_or(TIMEOUT_ENV, DEFAULT_TIMEOUT_SECS));
    let status = loop {
        match child.try_wait().expect("the child can be waited for") {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let stdout = fs::read_to_string(out.join("stdout")).unwrap_or_default();
    let stderr = fs::read_to_string(out.join("stderr")).unwrap_or_default();
    let panics = stderr
        .lines()
        .filter(|l| l.starts_with("PANIC-SEEN"))
        .count();
    let first_panic = stderr
        .lines()
        .find(|l| l.starts_with("PANIC-SEEN"))
        .unwrap_or("")
        .to_owned();
    let outcome = stdout
        .lines()
        .find_map(|l| l.split_once("OUTCOME ").map(|(_, o)| o));
    match status {
        None => (
            Class::Hang,
            format!("killed after the timeout; {first_panic}"),
            panics,
        ),
        Some(status) => match (status.code(), outcome) {
            (Some(0), Some(outcome)) => {
                let (class, detail) = outcome.split_once(" | ").unwrap_or((outcome, ""));
                let class = match class {
                    "typed" => Class::Typed,
                    "intact" => Class::Intact,
                    "shorter" => Class::Shorter,
                    "different" => Class::Different,
                    _ => Class::Other,
                };
                let detail = if panics > 0 {
                    format!("{detail}; survived {first_panic}")
                } else {
                    detail.to_owned()
                };
                (class, detail, panics)
            }
            (Some(101), _) => (Class::Panic, first_panic, panics),
            (code, _) => (
                Class::Other,
                format!(
                    "exit code {code:?}, signal {:?}, no outcome; {first_panic}",
                    status.signal()
                ),
                panics,
            ),
        },
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Damage to the fixture that was once read back shorter without an error, each a typed error
/// now.
fn regressions() -> [(&'static str, &'static str, Mutation); 1] {
    [(
        // Seed 20260401, case 829: read_all returned 2,382 of 2,816 events. The zeroed page
        // held the newest version of a node of sled's tree, and sled's forward iteration over
        // the global index then ended early without an error; the index now has to reach the
        // head the store knows.
        "index_ends_early",
        "db",
        Mutation::ZeroPage(3_133_440),
    )]
}

/// Every regular file under `dir` with its size, relative to it, in name order.
fn files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in fs::read_dir(dir.join(&relative)).unwrap() {
            let entry = entry.unwrap();
            let path = relative.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
            } else {
                found.push((path, entry.metadata().unwrap().len()));
            }
        }
    }
    found.sort();
    found
}

/// The file a case damages: sled's log `db` in half of the cases (it holds every record), any
/// other file of the directory (`conf`, snapshots, blobs, and whatever else the store keeps
/// there) in the other half, each as likely as the next.
fn pick_file(targets: &[(PathBuf, u64)], rng: &mut ChaCha8Rng) -> (PathBuf, u64) {
    let (db, others): (Vec<_>, Vec<_>) = targets.iter().partition(|(p, _)| p == Path::new("db"));
    let pool = if others.is_empty() || (!db.is_empty() && rng.gen_bool(0.5)) {
        db
    } else {
        others
    };
    pool[rng.gen_range(0..pool.len())].clone()
}

/// One file-level damage.
#[derive(Clone, Debug)]
enum Mutation {
    /// Flip one bit at each (offset, bit).
    Flip(Vec<(u64, u8)>),
    /// Cut the file to this length.
    Truncate(u64),
    /// Zero the 4 KiB page at this offset (up to the end of the file).
    ZeroPage(u64),
}

impl Mutation {
    fn pick(len: u64, rng: &mut ChaCha8Rng) -> Mutation {
        match rng.gen_range(0..3) {
            0 => {
                let bits = rng.gen_range(1..=8);
                Mutation::Flip(
                    (0..bits)
                        .map(|_| (rng.gen_range(0..len), rng.gen_range(0..8u8)))
                        .collect(),
                )
            }
            1 => Mutation::Truncate(rng.gen_range(0..len)),
            _ => Mutation::ZeroPage(rng.gen_range(0..len.div_ceil(4096)) * 4096),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Mutation::Flip(_) => "flip",
            Mutation::Truncate(_) => "truncate",
            Mutation::ZeroPage(_) => "zero page",
        }
    }

    fn apply(&self, path: &Path) {
        let mut bytes = fs::read(path).unwrap();
        match self {
            Mutation::Flip(bits) => {
                for &(offset, bit) in bits {
                    bytes[offset as usize] ^= 1 << bit;
                }
            }
            Mutation::Truncate(len) => bytes.truncate(*len as usize),
            Mutation::ZeroPage(offset) => {
                let end = (*offset as usize + 4096).min(bytes.len());
                bytes[*offset as usize..end].fill(0);
            }
        }
        fs::write(path, bytes).unwrap();
    }
}

/// One case of the sweep and what came of it.
struct Case {
    index: usize,
    file: PathBuf,
    mutation: Mutation,
    class: Class,
    detail: String,
    panics_seen: usize,
}

impl Case {
    fn describe(&self) -> String {
        let what = match &self.mutation {
            Mutation::Flip(bits) => format!(
                "flip bits at {}",
                bits.iter()
                    .map(|(o, b)| format!("{o}.{b}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Mutation::Truncate(len) => format!("truncate to {len} bytes"),
            Mutation::ZeroPage(offset) => format!("zero the page at {offset}"),
        };
        format!(
            "case {} ({} {what}): {}{}",
            self.index,
            self.file.display(),
            self.detail,
            if self.panics_seen > 0 {
                format!(" [{} panic(s) seen]", self.panics_seen)
            } else {
                String::new()
            }
        )
    }
}

/// The typed error's kind, as the child printed it: the text before the first `:`.
fn error_kind(detail: &str) -> String {
    let after_reader = detail
        .split_once(": ")
        .map(|(_, rest)| rest)
        .unwrap_or(detail);
    after_reader
        .split_once(':')
        .map(|(kind, _)| kind)
        .unwrap_or(after_reader)
        .to_owned()
}

/// The file-level sweep: each case damages one file of a copy of a closed store, and a child
/// process opens and reads it. Every case is a typed error or the complete log.
#[test]
fn file_level_damage_is_a_typed_error_or_the_whole_log() {
    if std::env::var(MODE_ENV).is_ok() {
        return;
    }
    let cases = env_or(CASES_ENV, DEFAULT_CASES);
    let seed = env_or(SEED_ENV, DEFAULT_SEED);
    let keep = std::env::var(KEEP_ENV).is_ok_and(|v| v == "1");
    let started = Instant::now();
    let scratch = tempfile::tempdir().unwrap();
    // A store kept by an earlier run (`HANDOVER_SWEEP_KEEP=1`), a new one, or the fixture.
    let build = std::env::var(BUILD_ENV).is_ok_and(|v| v == "1");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sweep");
    let from = match std::env::var(BASE_ENV) {
        Ok(kept) => PathBuf::from(kept),
        Err(_) if build => scratch.path().to_path_buf(),
        Err(_) => fixture.clone(),
    };
    let base = from.join("base");
    let expected = from.join("expected");
    if from == fixture {
        assert_eq!(
            digest(&base),
            FIXTURE_DIGEST,
            "the fixture store changed; pin its new digest"
        );
    }
    if std::env::var(BASE_ENV).is_err() && build {
        // A child builds the store, so every sled thread that wrote it is gone before it is
        // copied.
        let (class, detail, _) = run_child("build", &base, &expected, scratch.path());
        assert_eq!(
            class,
            Class::Other,
            "the builder prints no outcome: {detail}"
        );
        assert!(
            detail.starts_with("exit code Some(0)"),
            "the build failed: {detail}"
        );
    }
    let acknowledged = fs::read_to_string(&expected).unwrap().lines().count();
    let targets = files(&base);
    println!(
        "sweep: seed {seed} ({SEED_ENV}), {cases} cases ({CASES_ENV}), {WORKERS} children at a time; store: {SWEEP_CONVERSATIONS} conversations, {acknowledged} acknowledged events, digest {}, files {:?}; built in {:.1} s",
        digest(&base),
        targets
            .iter()
            .map(|(p, len)| format!("{} {len} B", p.display()))
            .collect::<Vec<_>>(),
        started.elapsed().as_secs_f64()
    );

    // The undamaged copy reads back complete: the harness sees what was acknowledged.
    let control = scratch.path().join("control");
    copy_dir(&base, &control.join("data"));
    let (class, detail, _) = run_child("read", &control.join("data"), &expected, &control);
    assert_eq!(class, Class::Intact, "the undamaged copy: {detail}");

    // Named cases that once were not contained, on the store they were found on.
    if from == fixture {
        for (name, file, mutation) in regressions() {
            let case_dir = scratch.path().join(name);
            let data = case_dir.join("data");
            copy_dir(&base, &data);
            mutation.apply(&data.join(file));
            let (class, detail, _) = run_child("read", &data, &expected, &case_dir);
            println!(
                "  {name} ({file}, {mutation:?}): {} | {detail}",
                class.name()
            );
            assert_eq!(class, Class::Typed, "{name}: {detail}");
        }
    }

    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(cases));
    let kept = scratch.path().to_path_buf();
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= cases {
                    break;
                }
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(index as u64);
                let (file, len) = pick_file(&targets, &mut rng);
                let mutation = if len == 0 {
                    Mutation::Truncate(0)
                } else {
                    Mutation::pick(len, &mut rng)
                };
                let case_dir = kept.join(format!("case-{index}"));
                let data = case_dir.join("data");
                copy_dir(&base, &data);
                mutation.apply(&data.join(&file));
                let (class, detail, panics_seen) = run_child("read", &data, &expected, &case_dir);
                if !keep || class.contained() {
                    fs::remove_dir_all(&case_dir).unwrap();
                }
                results.lock().unwrap().push(Case {
                    index,
                    file,
                    mutation,
                    class,
                    detail,
                    panics_seen,
                });
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|c| c.index);

    let count = |class: Class| results.iter().filter(|c| c.class == class).count();
    println!(
        "sweep: {} cases in {:.1} s (seed {seed})",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    println!("  {:<22} {:>6}", "class", "cases");
    for class in Class::ALL {
        println!("  {:<22} {:>6}", class.name(), count(class));
    }
    // By file and damage.
    let mut by_target: BTreeMap<(String, &str), BTreeMap<Class, usize>> = BTreeMap::new();
    for case in &results {
        *by_target
            .entry((case.file.display().to_string(), case.mutation.kind()))
            .or_default()
            .entry(case.class)
            .or_default() += 1;
    }
    println!("  by file and damage:");
    for ((file, kind), classes) in &by_target {
        let counts: Vec<String> = classes
            .iter()
            .map(|(class, n)| format!("{} {n}", class.name()))
            .collect();
        println!("    {file:<14} {kind:<10} {}", counts.join(", "));
    }
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for case in results.iter().filter(|c| c.class == Class::Typed) {
        *kinds.entry(error_kind(&case.detail)).or_default() += 1;
    }
    println!("  typed errors by kind: {kinds:?}");
    // sled panics that the store caught (or that hit a thread the reads did not need).
    let survived: Vec<&Case> = results
        .iter()
        .filter(|c| c.class.contained() && c.panics_seen > 0)
        .collect();
    println!(
        "  contained cases whose child reported a panic it survived: {}",
        survived.len()
    );
    for case in survived.iter().take(SHOWN_PER_CLASS) {
        println!("    {}", case.describe());
    }
    for class in Class::ALL {
        let shown: Vec<&Case> = results
            .iter()
            .filter(|c| c.class == class)
            .take(SHOWN_PER_CLASS)
            .collect();
        if !shown.is_empty() {
            println!("  first cases, {}:", class.name());
            for case in shown {
                println!("    {}", case.describe());
            }
        }
    }
    if keep {
        println!(
            "  the directories of cases not contained are kept under {}; \
             {BASE_ENV}={} {SEED_ENV}={seed} runs the same cases on the same store",
            kept.display(),
            from.display()
        );
        std::mem::forget(scratch);
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|c| !c.class.contained())
        .map(|c| format!("{}: {}", c.class.name(), c.describe()))
        .collect();
    assert!(
        failed.is_empty(),
        "seed {seed}: {} of {} cases were not contained; the first: {:#?}",
        failed.len(),
        results.len(),
        &failed[..failed.len().min(10)]
    );
}

// ---------------------------------------------------------------------------------------------
// Record-level damage under valid keys.
// ---------------------------------------------------------------------------------------------

/// A closed store for record-level damage: its directory and what was acknowledged.
struct Closed {
    _dir: tempfile::TempDir,
    path: PathBuf,
    records: Vec<RecordedEvent>,
}

impl Closed {
    fn build() -> Closed {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let records = build_store(&path, RECORD_CONVERSATIONS);
        Closed {
            _dir: dir,
            path,
            records,
        }
    }

    fn stream(&self, stream: &StreamId) -> Vec<&RecordedEvent> {
        self.records
            .iter()
            .filter(|r| r.stream == *stream)
            .collect()
    }

    /// A conversation of at least `min` events none of whose records is the log's last (which
    /// opening the store reads), other than `not`.
    fn conversation(&self, min: usize, not: Option<&StreamId>) -> StreamId {
        let head = self.records.last().unwrap().position;
        streams(RECORD_CONVERSATIONS)
            .into_iter()
            .filter(|s| matches!(s, StreamId::Conversation(_)) && Some(s) != not)
            .find(|s| {
                let records = self.stream(s);
                records.len() >= min && records.iter().all(|r| r.position != head)
            })
            .expect("a long enough conversation")
    }

    /// Changes the closed store's `log` tree with sled itself.
    fn damage(&self, change: impl FnOnce(&sled::Tree)) {
        let db = SledStore::open_raw(&self.path, Duration::from_secs(5)).expect("sled opens");
        let log = db.open_tree("log").unwrap();
        change(&log);
        db.flush().unwrap();
    }
}

fn key(stream: &StreamId, seq: u64) -> Vec<u8> {
    let StreamId::Conversation(id) = stream else {
        panic!("only conversation records are damaged here");
    };
    let mut key = vec![b's', b'c'];
    key.extend_from_slice(id.as_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn value(log: &sled::Tree, stream: &StreamId, seq: u64) -> Vec<u8> {
    log.get(key(stream, seq))
        .unwrap()
        .expect("the record exists")
        .to_vec()
}

/// Where a reader must report the damage: the stream and one of these seqs.
struct Place {
    stream: StreamId,
    seqs: Vec<u64>,
}

impl Place {
    fn at(stream: &StreamId, seqs: &[u64]) -> Place {
        Place {
            stream: stream.clone(),
            seqs: seqs.to_vec(),
        }
    }

    fn matches(&self, stream: Option<&StreamId>, seq: Option<u64>) -> bool {
        stream == Some(&self.stream) && seq.is_some_and(|s| self.seqs.contains(&s))
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} seq {:?}", self.stream, self.seqs)
    }
}

/// Opens the damaged store and checks that the stream read, the global order and `verify_dir`
/// each report `Corrupted` (a fault, for verify) at the expected place. A store that refuses
/// to open with `Corrupted` at that place reports it for the two reads.
fn assert_reported(closed: &Closed, what: &str, stream_read: Place, global: Place, verify: Place) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut lines = Vec::new();
    let mut wrong = Vec::new();
    let mut check = |reader: &str, place: &Place, result: Result<usize, StoreError>| match &result {
        Err(StoreError::Corrupted { at, damage, .. })
            if place.matches(at.stream.as_ref(), at.seq) =>
        {
            lines.push(format!("{reader}: Corrupted{{{damage:?}}} at {at}"));
        }
        Err(error) => {
            lines.push(format!("{reader}: {error}"));
            wrong.push(format!(
                "{reader}: expected Corrupted at {place}, got {error:?}"
            ));
        }
        Ok(events) => {
            lines.push(format!("{reader}: {events} events, no error"));
            wrong.push(format!(
                "{reader}: expected Corrupted at {place}, read {events} events without an error"
            ));
        }
    };
    match SledStore::open(&closed.path, SledOptions::default()) {
        Err(error) => {
            check(
                "open (for the stream read)",
                &stream_read,
                Err(error.clone()),
            );
            check("open (for the global order)", &global, Err(error));
        }
        Ok(store) => {
            let read = runtime.block_on(store.read_stream(&stream_read.stream, SeqRange::ALL));
            check("read_stream", &stream_read, read.map(|r| r.len()));
            let all = runtime.block_on(store.read_all(1, usize::MAX));
            check("read_all", &global, all.map(|r| r.len()));
        }
    }
    match verify_dir(&closed.path) {
        Ok(VerifyReport::Faulty(fault))
            if verify.matches(fault.location.stream.as_ref(), fault.location.seq) =>
        {
            lines.push(format!("verify_dir: {fault}"));
        }
        other => {
            lines.push(format!("verify_dir: {other:?}"));
            wrong.push(format!(
                "verify_dir: expected a fault at {verify}, got {other:?}"
            ));
        }
    }
    println!("{what}:");
    for line in &lines {
        println!("  {line}");
    }
    assert!(wrong.is_empty(), "{what}: {wrong:#?}");
}

/// A flipped bit in a record's value: the record fails its checksum where it lies.
#[test]
fn a_flipped_bit_in_a_record_is_reported_at_its_place() {
    if std::env::var(MODE_ENV).is_ok() {
        return;
    }
    let closed = Closed::build();
    let s = closed.conversation(4, None);
    closed.damage(|log| {
        let mut bytes = value(log, &s, 2);
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x04;
        log.insert(key(&s, 2), bytes).unwrap();
    });
    let at = || Place::at(&s, &[2]);
    assert_reported(&closed, "a flipped bit in seq 2", at(), at(), at());
}

/// A record replaced by another conversation's: it names another place.
#[test]
fn a_record_from_another_conversation_is_reported_at_its_place() {
    if std::env::var(MODE_ENV).is_ok() {
        return;
    }
    let closed = Closed::build();
    let s = closed.conversation(4, None);
    let t = closed.conversation(4, Some(&s));
    closed.damage(|log| {
        let stranger = value(log, &t, 3);
        log.insert(key(&s, 3), stranger).unwrap();
    });
    let at = || Place::at(&s, &[3]);
    assert_reported(
        &closed,
        "seq 3 replaced by another conversation's seq 3",
        at(),
        at(),
        at(),
    );
}

/// Two records of one stream swapped: the first of them names the other's seq.
#[test]
fn two_reordered_records_are_reported_at_the_first() {
    if std::env::var(MODE_ENV).is_ok() {
        return;
    }
    let closed = Closed::build();
    let s = closed.conversation(4, None);
    closed.damage(|log| {
        let (second, third) = (value(log, &s, 2), value(log, &s, 3));
        log.insert(key(&s, 2), third).unwrap();
        log.insert(key(&s, 3), second).unwrap();
    });
    let at = || Place::at(&s, &[2]);
    assert_reported(&closed, "seqs 2 and 3 swapped", at(), at(), at());
}

/// A stream's last record deleted: the stream must not read back one event shorter.
#[test]
fn a_deleted_last_record_is_reported_at_its_place() {
    if std::env::var(MODE_ENV).is_ok() {
        return;
    }
    let closed = Closed::build();
    let s = closed.conversation(4, None);
    let last = closed.stream(&s).len() as u64;
    closed.damage(|log| {
        log.remove(key(&s, last)).unwrap().expect("the last record");
    });
    let at = || Place::at(&s, &[last]);
    assert_reported(
        &closed,
        &format!("the last record (seq {last}) deleted"),
        at(),
        at(),
        at(),
    );
}

/// Replaces `seq` of `stream` with a different record that the store could have written
/// there: same place and time, another text, checksum-valid, carrying the hash the original
/// carried (the one of the record before it). The forged event passes the rules where it
/// stands, so only the chain can tell.
fn forge(closed: &Closed, stream: &StreamId, seq: u64) {
    let original = closed.stream(stream)[seq as usize - 1].clone();
    let Event::Conversation(event) = &original.event else {
        panic!("only conversation records are forged here");
    };
    let forged_text = "A message nobody wrote";
    let event = match event.clone() {
        ConversationEvent::MessagePosted {
            author, concerns, ..
        } => ConversationEvent::MessagePosted {
            author,
            text: MessageText::new(forged_text).unwrap(),
            concerns,
        },
        ConversationEvent::AiActionRecorded { agent_id, skill } => {
            ConversationEvent::AiActionRecorded {
                agent_id,
                skill: Skill {
                    input: SkillData::new(forged_text).unwrap(),
                    ..skill
                },
            }
        }
        ConversationEvent::Closed { by, .. } => ConversationEvent::Closed {
            by,
            reason: Some(Reason::new(forged_text).unwrap()),
        },
        other => panic!("seq {seq} is not an event this test forges: {other:?}"),
    };
    let forged = RecordedEvent {
        event: Event::Conversation(event),
        ..original.clone()
    };
    assert_ne!(forged, original);
    closed.damage(|log| {
        let stored = value(log, stream, seq);
        let previous = record_previous_hash(&stored).expect("a record of format 2");
        let bytes = encode_record(&forged, &previous).unwrap();
        assert_eq!(decode_record(&bytes).unwrap(), forged);
        log.insert(key(stream, seq), bytes).unwrap();
    });
}

/// A record in the middle of a stream replaced by a forged, checksum-valid one.
#[test]
fn a_forged_checksum_valid_record_is_reported() {
    if std::env::var(MODE_ENV).is_ok() {
        return;
    }
    let closed = Closed::build();
    let s = closed.conversation(4, None);
    // Seq 3 is the customer's first message (after the opening and alice's assignment).
    forge(&closed, &s, 3);
    // The forged record itself, or the record after it, whose chain no longer leads to it.
    let at = || Place::at(&s, &[3, 4]);
    assert_reported(
        &closed,
        "seq 3 replaced by a forged, checksum-valid record",
        at(),
        at(),
        at(),
    );
}

/// A stream's last record replaced by a forged, checksum-valid one: no record after it
/// carries its hash, but the stream's high-water mark names it.
///
/// The stream read, the global order (`read_all`, `iter_all`, which check each stream's last
/// record against its mark once the index is read) and `verify_dir` all report it.
#[test]
fn a_forged_last_record_is_reported() {
    if std::env::var(MODE_ENV).is_ok() {
        return;
    }
    let closed = Closed::build();
    let s = closed.conversation(4, None);
    let last = closed.stream(&s).len() as u64;
    forge(&closed, &s, last);
    let at = || Place::at(&s, &[last]);
    assert_reported(
        &closed,
        &format!("the last record (seq {last}) replaced by a forged, checksum-valid record"),
        at(),
        at(),
        at(),
    );
}

/// A record moved from the middle of one conversation to the end of another: the stream it
/// left skips a seq, the global order finds the hole, and the stream it joined holds a record
/// that names another place.
#[test]
fn a_record_moved_to_the_end_of_another_stream_is_reported() {
    if std::env::var(MODE_ENV).is_ok() {
        return;
    }
    let closed = Closed::build();
    let s = closed.conversation(4, None);
    let t = closed.conversation(4, Some(&s));
    let t_next = closed.stream(&t).len() as u64 + 1;
    closed.damage(|log| {
        let moved = log.remove(key(&s, 2)).unwrap().expect("the record");
        log.insert(key(&t, t_next), moved).unwrap();
    });
    // The stream read names the missing seq or the record found in its place.
    assert_reported(
        &closed,
        &format!("seq 2 moved to the end of another conversation (its seq {t_next})"),
        Place::at(&s, &[2, 3]),
        Place::at(&s, &[2]),
        Place::at(&s, &[2]),
    );
    let store = SledStore::open(&closed.path, SledOptions::default());
    let read = store.and_then(|store| store.read_stream_sync(&t, SeqRange::ALL));
    println!(
        "  read_stream of the conversation it joined: {:?}",
        read.as_ref().map(Vec::len).map_err(ToString::to_string)
    );
    match read {
        Err(StoreError::Corrupted { at, .. }) => assert!(
            (at.stream.as_ref() == Some(&t) && at.seq == Some(t_next))
                || (at.stream.as_ref() == Some(&s) && at.seq == Some(2)),
            "{at}"
        ),
        other => panic!("expected Corrupted at {t} seq {t_next}, got {other:?}"),
    }
}

/// The regression case of the hole the sweep once found (`db zero the page at 2080768`: a
/// stream read back with 9 of its 13 events and no error). One page of sled's log held a
/// whole batch, the stream's last records and, in the same batch, its high-water mark; sled
/// lost that batch and kept the ones after it, so the stream ended where its (older) mark
/// said. Now a stream's end is written in the batch's index chunk, and the marks are
/// checkpointed from there by later batches or replayed at open: losing one batch in the
/// middle of the log, records and index chunk alike, is an error, never a shorter stream,
/// whether the batch came before the last checkpoint (the first session's) or after it (the
/// last).
#[test]
fn a_batch_lost_in_the_middle_of_the_log_is_an_error_not_a_shorter_stream() {
    if std::env::var(MODE_ENV).is_ok() {
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for which in ["a stream's middle append", "a stream's last append"] {
        let closed = Closed::build();
        // Every append of the build is a group, a batch and an index chunk of its own.
        let mut lost = None;
        closed.damage(|log| {
            let chunks: Vec<u64> = log
                .scan_prefix([b'G'])
                .keys()
                .map(|key| u64::from_be_bytes(key.unwrap()[1..9].try_into().unwrap()))
                .collect();
            let last_seq = |stream: &StreamId| closed.stream(stream).last().map(|r| r.seq);
            // The batch (never the log's last, which the anchor names) of a middle or a last
            // append of a conversation.
            let at = (chunks.len() / 4..chunks.len() - 1)
                .find(|&at| {
                    let record = closed.records.iter().find(|r| r.position == chunks[at]);
                    let end = closed
                        .records
                        .iter()
                        .find(|r| r.position == chunks[at + 1] - 1);
                    match (record, end) {
                        (Some(record), Some(end)) if record.stream == end.stream => {
                            let is_last = last_seq(&end.stream) == Some(end.seq);
                            matches!(record.stream, StreamId::Conversation(_))
                                && is_last == (which == "a stream's last append")
                        }
                        _ => false,
                    }
                })
                .expect("a batch of one conversation's append");
            let (first, end) = (chunks[at], chunks[at + 1]);
            let records: Vec<&RecordedEvent> = closed
                .records
                .iter()
                .filter(|r| (first..end).contains(&r.position))
                .collect();
            let mut chunk = vec![b'G'];
            chunk.extend_from_slice(&first.to_be_bytes());
            log.remove(chunk).unwrap().expect("the chunk");
            for record in &records {
                let mut key = vec![b's'];
                key.extend_from_slice(&record_stream_key(&record.stream));
                key.extend_from_slice(&record.seq.to_be_bytes());
                log.remove(key).unwrap().expect("the record");
            }
            let (stream, seq) = (records[0].stream.clone(), records[0].seq);
            let last = records
                .iter()
                .filter(|r| r.stream == stream)
                .map(|r| r.seq)
                .max();
            lost = Some((first, stream, seq, last.unwrap_or(seq)));
        });
        let (first, stream, seq, last) = lost.unwrap();
        let what = format!("the batch of {which} lost (position {first}, {stream} from seq {seq})");
        match SledStore::open(&closed.path, SledOptions::default()) {
            Err(StoreError::Corrupted { at, damage, .. }) => {
                assert_eq!((damage, at.position), (Damage::Gap, Some(first)), "{what}");
                println!("{what}: open: Corrupted{{{damage:?}}} at {at}");
            }
            Err(other) => panic!("{what}: open: {other}"),
            Ok(store) => {
                match runtime.block_on(store.read_stream(&stream, SeqRange::ALL)) {
                    Err(StoreError::Corrupted { at, damage, .. }) => {
                        // At the first lost seq, or at the record after the lost ones (a gap).
                        assert_eq!(at.stream.as_ref(), Some(&stream), "{what}");
                        assert!(
                            at.seq.is_some_and(|at| (seq..=last + 1).contains(&at)),
                            "{what}: at {at}"
                        );
                        println!("{what}: read_stream: Corrupted{{{damage:?}}} at {at}");
                    }
                    other => panic!("{what}: read_stream: expected Corrupted, got {other:?}"),
                }
                match runtime.block_on(store.read_all(1, usize::MAX)) {
                    Err(StoreError::Corrupted { at, damage, .. }) => {
                        assert_eq!((damage, at.position), (Damage::Gap, Some(first)), "{what}");
                    }
                    other => panic!("{what}: read_all: expected a gap, got {other:?}"),
                }
            }
        }
        assert!(
            matches!(
                verify_dir(&closed.path),
                Ok(VerifyReport::Faulty(_)) | Err(_)
            ),
            "{what}: verify_dir"
        );
    }
}

/// The stream key of a record's key: `c` + 16 UUID bytes, or `a` + the agent id + 0x00.
fn record_stream_key(stream: &StreamId) -> Vec<u8> {
    match stream {
        StreamId::Conversation(id) => [&[b'c'][..], id.as_bytes()].concat(),
        StreamId::AiAgent(id) => [&[b'a'][..], id.as_str().as_bytes(), &[0][..]].concat(),
        StreamId::Human(id) => [&[b'h'][..], id.as_str().as_bytes(), &[0][..]].concat(),
    }
}
