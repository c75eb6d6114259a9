//! Opening a damaged or unusable data directory is contained: `SledStore::open` and the reads
//! after it end in a typed `StoreError` or in the complete log, never in a panic, a hang, or a
//! log shorter than what was acknowledged.
//!
//! sled 0.34.7 can panic on a damaged directory, and a panic on one of its background threads
//! takes the process down with it, so every case opens its directory in a child process: this
//! test executable, started again with `HANDOVER_CONTAINED_OPEN_CHILD` set, runs the single test
//! [`child_process`]. The child opens the directory with `SledStore::open`, reads every stream,
//! the AI-agent streams and the global order, compares them with the acknowledged events, and
//! prints one `OUTCOME` line. The parent fails a case that exits with a panic (exit code 101)
//! or a signal, that runs past `HANDOVER_OPEN_TIMEOUT_SECS` (60 by default; it is then
//! killed), or that reads fewer or other events than were acknowledged without an error.
//!
//! ```sh
//! cargo test -p handover-store --test contained_open -- --nocapture
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read as _, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use handover_core::{
    AgentName, AiAgentEvent, AiAgentId, Author, Channel, ConversationEvent, ConversationId,
    CustomerId, Event, MessageText, StreamId,
};
use handover_sled::{SledOptions, SledStore};
use handover_store::{EventStore, ExpectedVersion, RecordedEvent, SeqRange, StoreError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What the child does: `build`, `read` or `hold`.
const MODE_ENV: &str = "HANDOVER_CONTAINED_OPEN_CHILD";
/// The data directory the child works on.
const DIR_ENV: &str = "HANDOVER_CONTAINED_OPEN_DIR";
/// The file of acknowledged events (one `Debug` line per record, in position order).
const EXPECTED_ENV: &str = "HANDOVER_CONTAINED_OPEN_EXPECTED";
/// How long a child may run before it counts as hung.
const TIMEOUT_ENV: &str = "HANDOVER_OPEN_TIMEOUT_SECS";
/// The seed of the garbage written into damaged files.
const SEED_ENV: &str = "HANDOVER_OPEN_SEED";

const DEFAULT_TIMEOUT_SECS: u64 = 60;
const DEFAULT_SEED: u64 = 0x5eed_0001;
/// The user a child runs as when the test runs as root, so that file permissions bind it.
const NOBODY: u32 = 65534;

// ---------------------------------------------------------------------------------------------
// The child.
// ---------------------------------------------------------------------------------------------

/// The entry point of the child processes the other tests start. Without `HANDOVER_CONTAINED_OPEN_CHILD`
/// (a plain `cargo test`) it does nothing.
#[test]
fn child_process() {
    let Ok(mode) = std::env::var(MODE_ENV) else {
        return;
    };
    report_panics();
    let dir = PathBuf::from(std::env::var(DIR_ENV).expect("the child's directory"));
    let expected = std::env::var(EXPECTED_ENV).map(PathBuf::from);
    match mode.as_str() {
        "build" => build(
            &dir,
            &expected.expect("where to write the acknowledged events"),
        ),
        "read" => {
            let expected = read_expected(&expected.expect("the acknowledged events"));
            // On a line of its own: the harness printed the test's name without a newline.
            println!("\nOUTCOME {}", read_everything(&dir, &expected));
        }
        "hold" => hold(&dir),
        other => panic!("unknown child mode {other}"),
    }
}

/// Prints every panic, on any thread, on a line of its own, before the default report: the
/// parent counts panics that the process survived (caught by the store, or on a background
/// thread) as well as those that ended it.
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

fn conversation(n: u128) -> StreamId {
    let base = 0x0190_f1f0_0000_7000_8000_0000_0000_0000_u128;
    StreamId::Conversation(ConversationId::from_uuid(uuid::Uuid::from_u128(base + n)))
}

fn message(text: &str) -> Event {
    Event::Conversation(ConversationEvent::MessagePosted {
        author: Author::Customer(CustomerId::new("cust-1").unwrap()),
        text: MessageText::new(text).unwrap(),
        concerns: vec![],
    })
}

/// The acknowledged history: three AI agents and forty conversations, in single- and
/// multi-event appends, a few of them with messages near the 64 KiB limit.
fn history() -> Vec<(StreamId, Vec<Vec<Event>>)> {
    let mut streams = Vec::new();
    for name in ["faq", "billing", "returns"] {
        let agent_id = AiAgentId::new(name).unwrap();
        streams.push((
            StreamId::AiAgent(agent_id.clone()),
            vec![
                vec![Event::AiAgent(AiAgentEvent::Registered {
                    agent_id: agent_id.clone(),
                    name: AgentName::new(format!("{name} bot")).unwrap(),
                    specialties: vec![],
                })],
                vec![Event::AiAgent(AiAgentEvent::Activated { agent_id })],
            ],
        ));
    }
    for n in 1..=40u128 {
        let opened = Event::Conversation(ConversationEvent::Opened {
            customer: CustomerId::new(format!("cust-{n}")).unwrap(),
            channel: Channel::new("web-chat").unwrap(),
            human: None,
        });
        let mut appends = vec![vec![opened, message(&format!("hello from {n}"))]];
        for round in 0..(n % 5) {
            appends.push(vec![message(&format!("conversation {n}, round {round}"))]);
        }
        if n % 13 == 0 {
            let big = "x".repeat(60 * 1024);
            appends.push((0..4).map(|_| message(&big)).collect());
        }
        appends.push(vec![
            message(&format!("conversation {n}, last but one")),
            message(&format!("conversation {n}, last")),
        ]);
        streams.push((conversation(n), appends));
    }
    streams
}

/// Builds the store in two sessions, every stream's appends but its last, then the last ones.
/// sled writes a snapshot when it opens a log that grew, so the directory holds what a
/// reopened store holds: a snapshot covering the first session, and a log that goes on past
/// it. In each session every stream's appends run concurrently with the others' (so the
/// journal groups them), each awaited before the next of its stream. Writes every
/// acknowledged record to `expected`.
fn build(dir: &Path, expected: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut scripts = history();
    let last: Vec<(StreamId, Vec<Vec<Event>>)> = scripts
        .iter_mut()
        .map(|(stream, appends)| (stream.clone(), vec![appends.pop().unwrap()]))
        .collect();
    let mut versions: BTreeMap<String, u64> = BTreeMap::new();
    let mut acknowledged = Vec::new();
    for session in [scripts, last] {
        let store = SledStore::open(dir, SledOptions::default()).expect("the store opens");
        acknowledged.extend(runtime.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for (stream, appends) in session {
                let store = store.clone();
                let mut version = versions.get(&stream.to_string()).copied().unwrap_or(0);
                tasks.spawn(async move {
                    let mut recorded = Vec::new();
                    for events in appends {
                        let appended = store
                            .append(&stream, ExpectedVersion::Exact(version), events)
                            .await
                            .expect("no store error")
                            .expect("no conflict");
                        version += appended.len() as u64;
                        recorded.extend(appended.iter().map(|r| RecordedEvent::clone(r)));
                    }
                    (stream, version, recorded)
                });
            }
            let mut all = Vec::new();
            while let Some(done) = tasks.join_next().await {
                let (stream, version, recorded) = done.expect("the appender finished");
                versions.insert(stream.to_string(), version);
                all.extend(recorded);
            }
            all
        }));
        drop(store);
    }
    acknowledged.sort_by_key(|r| r.position);
    write_expected(expected, &acknowledged);
}

/// Opens the directory and holds it until its standard input closes.
fn hold(dir: &Path) {
    let store = SledStore::open(dir, SledOptions::default()).expect("the holder opens");
    println!("HOLDING");
    std::io::stdout().flush().unwrap();
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    drop(store);
}

fn write_expected(path: &Path, records: &[RecordedEvent]) {
    let lines: Vec<String> = records.iter().map(|r| format!("{r:?}\n")).collect();
    fs::write(path, lines.concat()).expect("the expected events are written");
}

/// The acknowledged records as `Debug` lines, by stream (each in seq order) and in position
/// order.
struct Expected {
    global: Vec<String>,
    streams: BTreeMap<String, (StreamId, Vec<String>)>,
}

fn read_expected(path: &Path) -> Expected {
    // The records are rebuilt from the stream names and lines only for comparison: equal
    // `Debug` text is equal records.
    let text = fs::read_to_string(path).expect("the expected events are readable");
    let global: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut streams: BTreeMap<String, (StreamId, Vec<String>)> = BTreeMap::new();
    for (stream, _) in history() {
        streams.insert(stream.to_string(), (stream, Vec::new()));
    }
    for line in &global {
        let name = streams
            .keys()
            .find(|name| line.contains(&stream_debug_marker(&streams[*name].0)))
            .cloned()
            .expect("every acknowledged record belongs to a known stream");
        streams.get_mut(&name).unwrap().1.push(line.clone());
    }
    Expected { global, streams }
}

/// The `stream: …` part of a record's `Debug` text, which names its stream.
fn stream_debug_marker(stream: &StreamId) -> String {
    format!("stream: {stream:?},")
}

/// How one reader fared.
enum Reading {
    Intact,
    Error(StoreError),
    Shorter(String),
    Different(String),
}

fn compare(what: &str, actual: &[RecordedEvent], expected: &[String]) -> Reading {
    let actual: Vec<String> = actual.iter().map(|r| format!("{r:?}")).collect();
    if actual == expected {
        Reading::Intact
    } else if actual.len() < expected.len() && expected.starts_with(&actual) {
        Reading::Shorter(format!(
            "{what} read {} of {} events",
            actual.len(),
            expected.len()
        ))
    } else {
        let first = actual
            .iter()
            .zip(expected)
            .position(|(a, e)| a != e)
            .unwrap_or(actual.len().min(expected.len()));
        Reading::Different(format!(
            "{what} read {} events, {} expected, first difference at index {first}",
            actual.len(),
            expected.len()
        ))
    }
}

fn error_name(error: &StoreError) -> String {
    match error {
        StoreError::Corrupted { damage, .. } => format!("Corrupted{{{damage:?}}}"),
        StoreError::InUse { .. } => "InUse".to_owned(),
        StoreError::Io(_) => "Io".to_owned(),
        StoreError::Engine(_) => "Engine".to_owned(),
        other => format!("{other:?}"),
    }
}

/// Opens `dir`, reads everything, and says how it went: `typed <error> …`, `intact …`,
/// `shorter …` or `different …`.
fn read_everything(dir: &Path, expected: &Expected) -> String {
    let store = match SledStore::open(dir, SledOptions::default()) {
        Ok(store) => store,
        Err(error) => return format!("typed {} at open: {error}", error_name(&error)),
    };
    let mut reads: Vec<(String, Reading)> = Vec::new();
    let global: Result<Vec<RecordedEvent>, StoreError> = store.iter_all(1).collect();
    reads.push((
        "global order".to_owned(),
        match global {
            Ok(records) => compare("the global order", &records, &expected.global),
            Err(error) => Reading::Error(error),
        },
    ));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let agents = runtime.block_on(store.read_ai_agents());
    let expected_agents: Vec<String> = expected
        .streams
        .values()
        .filter(|(stream, _)| matches!(stream, StreamId::AiAgent(_)))
        .flat_map(|(_, lines)| lines.clone())
        .collect();
    reads.push((
        "AI agents".to_owned(),
        match agents {
            Ok(records) => compare("the AI-agent streams", &records, &expected_agents),
            Err(error) => Reading::Error(error),
        },
    ));
    // Every stream the log holds, whether acknowledged or found in the stream key space.
    let mut names: BTreeSet<String> = expected.streams.keys().cloned().collect();
    let mut extra = Vec::new();
    for record in store.scan_streams() {
        match record {
            Ok(record) if !names.contains(&record.stream.to_string()) => {
                names.insert(record.stream.to_string());
                extra.push(record.stream);
            }
            Ok(_) => {}
            Err(error) => {
                reads.push(("stream scan".to_owned(), Reading::Error(error)));
                break;
            }
        }
    }
    for (name, (stream, lines)) in &expected.streams {
        let read = match store.read_stream_sync(stream, SeqRange::ALL) {
            Ok(records) => compare(&format!("stream {name}"), &records, lines),
            Err(error) => Reading::Error(error),
        };
        reads.push((name.clone(), read));
    }
    for stream in extra {
        reads.push((
            stream.to_string(),
            Reading::Different(format!("stream {stream} was never written")),
        ));
    }
    // The first few readers that did not read the log back complete.
    let summary = reads
        .iter()
        .filter_map(|(name, read)| match read {
            Reading::Shorter(detail) | Reading::Different(detail) => {
                Some(format!("{name}: {detail}"))
            }
            Reading::Error(error) => Some(format!("{name}: {} {error}", error_name(error))),
            Reading::Intact => None,
        })
        .take(3)
        .collect::<Vec<_>>()
        .join("; ")
        .replace('\n', " ");
    if reads.iter().any(|(_, r)| matches!(r, Reading::Shorter(_))) {
        return format!("shorter {summary}");
    }
    if reads
        .iter()
        .any(|(_, r)| matches!(r, Reading::Different(_)))
    {
        return format!("different {summary}");
    }
    if let Some((_, Reading::Error(error))) =
        reads.iter().find(|(_, r)| matches!(r, Reading::Error(_)))
    {
        return format!("typed {} while reading: {summary}", error_name(error));
    }
    format!("intact {} events", expected.global.len())
}

// ---------------------------------------------------------------------------------------------
// The parent.
// ---------------------------------------------------------------------------------------------

/// How a child ended, as the parent saw it.
#[derive(Debug)]
enum Ending {
    /// It exited normally and printed this outcome line (without `OUTCOME `).
    Outcome(String),
    /// It exited normally without an outcome (a harness failure).
    Silent(String),
    /// It exited with this code (101 is a panic on the test's thread).
    Failed(i32, String),
    /// A signal ended it.
    Signal(i32, String),
    /// It ran past the timeout and was killed.
    Hung,
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::Outcome(outcome) => f.write_str(outcome),
            Ending::Silent(stdout) => write!(f, "exited without an outcome; stdout: {stdout}"),
            Ending::Failed(code, stderr) => write!(f, "exit code {code}; stderr: {stderr}"),
            Ending::Signal(signal, stderr) => write!(f, "signal {signal}; stderr: {stderr}"),
            Ending::Hung => f.write_str("killed after the timeout"),
        }
    }
}

fn timeout() -> Duration {
    Duration::from_secs(
        std::env::var(TIMEOUT_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_TIMEOUT_SECS),
    )
}

/// The child command for `mode` on `dir`, its output going to files in `out`.
fn child_command(mode: &str, dir: &Path, expected: &Path, out: &Path) -> Command {
    let executable = std::env::current_exe().expect("the test executable");
    child_command_of(&executable, mode, dir, expected, out)
}

/// [`child_command`] running `executable`, a copy of the test executable.
fn child_command_of(
    executable: &Path,
    mode: &str,
    dir: &Path,
    expected: &Path,
    out: &Path,
) -> Command {
    let mut command = Command::new(executable);
    command
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
        .stderr(fs::File::create(out.join("stderr")).unwrap());
    command
}

/// Waits for `child` up to the timeout, killing it then, and reads what it printed.
fn finish(mut child: Child, out: &Path) -> (Ending, usize) {
    let deadline = Instant::now() + timeout();
    let status = loop {
        match child.try_wait().expect("the child can be waited for") {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let stdout = fs::read_to_string(out.join("stdout")).unwrap_or_default();
    let stderr = fs::read_to_string(out.join("stderr")).unwrap_or_default();
    let panics = stderr
        .lines()
        .filter(|l| l.starts_with("PANIC-SEEN"))
        .count();
    let tail = |text: &str| {
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(6)..].join(" | ")
    };
    let ending = match status {
        None => Ending::Hung,
        Some(status) => match (status.code(), status.signal()) {
            (Some(0), _) => match stdout
                .lines()
                .find_map(|l| l.split_once("OUTCOME ").map(|(_, o)| o))
            {
                Some(outcome) => Ending::Outcome(outcome.to_owned()),
                None => Ending::Silent(tail(&stdout)),
            },
            (Some(code), _) => Ending::Failed(code, tail(&stderr)),
            (None, Some(signal)) => Ending::Signal(signal, tail(&stderr)),
            (None, None) => Ending::Failed(-1, tail(&stderr)),
        },
    };
    (ending, panics)
}

fn run_child(mode: &str, dir: &Path, expected: &Path, out: &Path) -> (Ending, usize) {
    let child = child_command(mode, dir, expected, out)
        .spawn()
        .expect("the child starts");
    finish(child, out)
}

/// Whether this process runs as root, whom file permissions do not stop.
fn is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Copies a directory tree.
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

/// Every regular file under `dir`, relative to it, in name order.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in fs::read_dir(dir.join(&relative)).unwrap() {
            let entry = entry.unwrap();
            let path = relative.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// A closed store built by a child process (so that every sled thread that wrote it is gone),
/// and the file of its acknowledged events.
struct Base {
    _root: tempfile::TempDir,
    dir: PathBuf,
    expected: PathBuf,
    events: usize,
}

fn build_base() -> Base {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("base");
    let expected = root.path().join("expected");
    let (ending, _) = run_child("build", &dir, &expected, root.path());
    assert!(
        matches!(ending, Ending::Outcome(_) | Ending::Silent(_)),
        "building the store failed: {ending}"
    );
    let events = fs::read_to_string(&expected)
        .expect("the builder wrote the acknowledged events")
        .lines()
        .count();
    Base {
        _root: root,
        dir,
        expected,
        events,
    }
}

/// One way to damage a file.
#[derive(Clone, Copy, Debug)]
enum FileDamage {
    Empty,
    Half,
    Zeroed,
    Garbage,
    Missing,
}

impl FileDamage {
    const ALL: [FileDamage; 5] = [
        FileDamage::Empty,
        FileDamage::Half,
        FileDamage::Zeroed,
        FileDamage::Garbage,
        FileDamage::Missing,
    ];

    fn name(self) -> &'static str {
        match self {
            FileDamage::Empty => "truncated to 0 bytes",
            FileDamage::Half => "truncated to half",
            FileDamage::Zeroed => "zeroed",
            FileDamage::Garbage => "filled with garbage",
            FileDamage::Missing => "missing",
        }
    }

    fn apply(self, path: &Path, rng: &mut ChaCha8Rng) {
        let len = fs::metadata(path).unwrap().len();
        match self {
            FileDamage::Empty => fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_len(0)
                .unwrap(),
            FileDamage::Half => fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_len(len / 2)
                .unwrap(),
            FileDamage::Zeroed => fs::write(path, vec![0u8; len as usize]).unwrap(),
            FileDamage::Garbage => {
                let mut bytes = vec![0u8; len as usize];
                rng.fill(&mut bytes[..]);
                fs::write(path, bytes).unwrap();
            }
            FileDamage::Missing => fs::remove_file(path).unwrap(),
        }
    }
}

/// One case's verdict: what the child did, and whether that is contained.
struct Verdict {
    case: String,
    ending: Ending,
    panics_seen: usize,
}

impl Verdict {
    /// A typed error or the complete log; anything else fails the test.
    fn contained(&self) -> bool {
        matches!(&self.ending, Ending::Outcome(o) if o.starts_with("typed ") || o.starts_with("intact "))
    }

    fn class(&self) -> &'static str {
        match &self.ending {
            Ending::Outcome(o) if o.starts_with("typed ") => "typed error",
            Ending::Outcome(o) if o.starts_with("intact ") => "intact",
            Ending::Outcome(o) if o.starts_with("shorter ") => "shorter, no error",
            Ending::Outcome(_) => "different, no error",
            Ending::Silent(_) => "no outcome",
            Ending::Failed(101, _) => "panic",
            Ending::Failed(..) => "exit code",
            Ending::Signal(..) => "signal",
            Ending::Hung => "hang",
        }
    }
}

fn print_verdicts(verdicts: &[Verdict]) {
    for v in verdicts {
        let what = v.ending.to_string();
        println!(
            "  {:<44} {:<20} panics seen {}  {}",
            v.case,
            v.class(),
            v.panics_seen,
            what
        );
    }
}

fn assert_contained(verdicts: &[Verdict]) {
    let failed: Vec<&Verdict> = verdicts.iter().filter(|v| !v.contained()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} cases were not contained: {}",
        failed.len(),
        verdicts.len(),
        failed
            .iter()
            .map(|v| format!("[{}: {} {}]", v.case, v.class(), v.ending))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

fn seed() -> u64 {
    std::env::var(SEED_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

// ---------------------------------------------------------------------------------------------
// The cases.
// ---------------------------------------------------------------------------------------------

/// Every file of a closed store (sled's `conf`, `db` and snapshots, and whatever else the
/// directory holds), truncated, zeroed, filled with garbage or missing: each open ends in a
/// typed error or the complete log.
#[test]
fn damaged_files_open_to_a_typed_error_or_the_whole_log() {
    if std::env::var(MODE_ENV).is_ok() {
        return;
    }
    let seed = seed();
    let base = build_base();
    let names = files(&base.dir);
    println!(
        "store: {} acknowledged events; files: {names:?}; garbage seed {seed} ({SEED_ENV})",
        base.events
    );
    for sled_file in ["conf", "db", "snap."] {
        assert!(
            names
                .iter()
                .any(|n| n.to_string_lossy().starts_with(sled_file)),
            "the store has no {sled_file}* file to damage"
        );
    }
    let scratch = tempfile::tempdir().unwrap();

    // The undamaged copy reads back complete: the harness itself sees what was acknowledged.
    let control = scratch.path().join("control");
    copy_dir(&base.dir, &control);
    let (ending, _) = run_child("read", &control, &base.expected, scratch.path());
    assert!(
        matches!(&ending, Ending::Outcome(o) if o.starts_with("intact ")),
        "the undamaged store does not read back complete: {ending}"
    );

    let mut verdicts = Vec::new();
    for (f, name) in names.iter().enumerate() {
        for (d, damage) in FileDamage::ALL.into_iter().enumerate() {
            let case_dir = scratch.path().join(format!("case-{f}-{d}"));
            let data = case_dir.join("data");
            copy_dir(&base.dir, &data);
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((f as u64) << 8 | d as u64));
            damage.apply(&data.join(name), &mut rng);
            let (ending, panics_seen) = run_child("read", &data, &base.expected, &case_dir);
            verdicts.push(Verdict {
                case: format!("{} {}", name.display(), damage.name()),
                ending,
                panics_seen,
            });
            fs::remove_dir_all(&case_dir).unwrap();
        }
    }
    let count = |class: &str| verdicts.iter().filter(|v| v.class() == class).count();
    println!(
        "{} cases: {} typed error, {} intact, {} shorter with no error, {} different with no error, {} panic, {} hang; panics seen in contained children: {}",
        verdicts.len(),
        count("typed error"),
        count("intact"),
        count("shorter, no error"),
        count("different, no error"),
        count("panic"),
        count("hang"),
        verdicts
            .iter()
            .filter(|v| v.contained() && v.panics_seen > 0)
            .count(),
    );
    print_verdicts(&verdicts);
    assert_contained(&verdicts);
}

/// A second open of a directory another process holds is `InUse`; the holder is unharmed.
#[test]
fn a_directory_another_process_holds_is_in_use() {
    if std::env::var(MODE_ENV).is_ok() {
        return;
    }
    let base = build_base();
    let scratch = tempfile::tempdir().unwrap();
    let holder_out = scratch.path().join("holder");
    let reader_out = scratch.path().join("reader");
    fs::create_dir_all(&holder_out).unwrap();
    fs::create_dir_all(&reader_out).unwrap();
    let mut holder = child_command("hold", &base.dir, &base.expected, &holder_out)
        .stdin(Stdio::piped())
        .spawn()
        .expect("the holder starts");
    let deadline = Instant::now() + timeout();
    while !fs::read_to_string(holder_out.join("stdout"))
        .unwrap_or_default()
        .contains("HOLDING")
    {
        assert!(
            Instant::now() < deadline,
            "the holder never opened the store"
        );
        assert!(
            holder.try_wait().unwrap().is_none(),
            "the holder exited before opening the store"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (ending, panics_seen) = run_child("read", &base.dir, &base.expected, &reader_out);
    // Closing its standard input lets the holder close the store and exit.
    drop(holder.stdin.take());
    let (holder_ending, _) = finish(holder, &holder_out);
    println!("second open while another process holds the directory: {ending}; panics seen {panics_seen}; holder: {holder_ending}");
    assert!(
        matches!(&ending, Ending::Outcome(o) if o.starts_with("typed InUse ")),
        "expected InUse, got {ending}"
    );
    assert!(
        matches!(holder_ending, Ending::Outcome(_) | Ending::Silent(_)),
        "the holder did not exit normally: {holder_ending}"
    );
    // Once the holder is gone, the directory opens and reads back complete.
    let (after, _) = run_child("read", &base.dir, &base.expected, &reader_out);
    println!("after the holder exited: {after}");
    assert!(
        matches!(&after, Ending::Outcome(o) if o.starts_with("intact ")),
        "{after}"
    );
}

/// Fails, saying what to do, unless every directory from the root down to `dir` lets other
/// users through: the children that run as user 65534 need to reach `dir`.
fn reachable_by_others(dir: &Path) {
    for ancestor in dir.ancestors() {
        let mode = fs::metadata(ancestor).unwrap().permissions().mode();
        assert!(
            mode & 0o001 != 0,
            "{} (mode {:o}) does not let other users through, so a child running as user \
             {NOBODY} cannot reach the scratch directory {}: point TMPDIR at a directory every \
             user can reach (e.g. TMPDIR=/tmp)",
            ancestor.display(),
            mode & 0o7777,
            dir.display()
        );
    }
}

/// A path that is a file, a directory the process may not read or enter, a directory it may
/// not write, and a `db` it may not open: each is a typed error. As root, whom permissions do
/// not stop, the child runs as the unprivileged user 65534 instead.
#[test]
fn unusable_paths_are_typed_errors() {
    if std::env::var(MODE_ENV).is_ok() {
        return;
    }
    let base = build_base();
    let scratch = tempfile::tempdir().unwrap();
    // The child may run as another user: it must reach the scratch directory and the
    // expected events.
    fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let expected = scratch.path().join("expected");
    fs::copy(&base.expected, &expected).unwrap();
    fs::set_permissions(&expected, fs::Permissions::from_mode(0o644)).unwrap();
    let root = is_root();
    // The test executable sits in the checkout's target directory, which the other user may
    // not reach (a clone under root's home, or under any 0700 directory): the child runs from
    // a copy in the scratch directory, which must itself be reachable.
    let executable = scratch.path().join("child-executable");
    if root {
        reachable_by_others(scratch.path());
        fs::copy(
            std::env::current_exe().expect("the test executable"),
            &executable,
        )
        .unwrap();
        fs::set_permissions(&executable, fs::Permissions::from_mode(0o755)).unwrap();
    }

    let mut verdicts = Vec::new();
    let mut run = |case: &str, data: &Path, out: &Path, as_nobody: bool| {
        let mut command = if as_nobody && root {
            let mut command = child_command_of(&executable, "read", data, &expected, out);
            command.uid(NOBODY).gid(NOBODY);
            command
        } else {
            child_command("read", data, &expected, out)
        };
        let child = command.spawn().expect("the child starts");
        let (ending, panics_seen) = finish(child, out);
        verdicts.push(Verdict {
            case: case.to_owned(),
            ending,
            panics_seen,
        });
    };

    let out = scratch.path().join("file-out");
    fs::create_dir_all(&out).unwrap();
    let file = scratch.path().join("a-file");
    fs::write(&file, b"not a directory").unwrap();
    run("a path that is a file", &file, &out, false);

    for (case, mode_of_dir, mode_of_db) in [
        ("a directory that cannot be read", 0o000, 0o644),
        ("a directory that cannot be written", 0o555, 0o444),
        ("a db that cannot be opened", 0o755, 0o000),
    ] {
        let out = scratch
            .path()
            .join(format!("{mode_of_dir:o}-{mode_of_db:o}-out"));
        fs::create_dir_all(&out).unwrap();
        let data = scratch
            .path()
            .join(format!("{mode_of_dir:o}-{mode_of_db:o}"));
        copy_dir(&base.dir, &data);
        for name in files(&data) {
            fs::set_permissions(data.join(name), fs::Permissions::from_mode(mode_of_db)).unwrap();
        }
        fs::set_permissions(&data, fs::Permissions::from_mode(mode_of_dir)).unwrap();
        run(case, &data, &out, true);
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
    }
    println!(
        "unusable paths ({}):",
        if root {
            "as root, the children ran as uid 65534"
        } else {
            "the children ran as this user"
        }
    );
    print_verdicts(&verdicts);
    assert_contained(&verdicts);
    for v in &verdicts {
        assert_eq!(v.class(), "typed error", "{}: {}", v.case, v.ending);
    }
}
