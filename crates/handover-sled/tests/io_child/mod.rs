//! What the I/O failure tests (`disk_full.rs`, `fault_injection.rs`) share: a workload that a
//! child process runs against a `SledStore` while its disk fails, the lines it reports, the
//! restarts after a failure, and the parent's check of the log each reopen finds.
//!
//! The store's contract after an I/O failure: the append that met it gets the I/O error, and
//! the store stops: every later append, read, `version` and `flush` gets
//! `StoreError::Failed(cause)` at once, and only a reopen in a new process (a restart) reads
//! what is on disk. So a child stops appending after its first failure (trying a few more
//! appends and reads to see them refused), closes its store and exits; the parent starts a
//! new child on the same directory, which continues with the next attempt numbers. Each
//! reopen must find every event acknowledged before it, as a clean prefix of what was tried.
//!
//! The store runs in child processes because a storage engine that the operating system fails
//! can hang or panic on its own threads, which no test harness can catch; the parent
//! classifies what happened instead (finished, exited with an error, killed by a signal, or
//! hung) and kills a child that passes [`CHILD_DEADLINE`].
//!
//! The child reports one line per fact: every record a reopen reads, every acknowledged event,
//! every failed append, every panic on any of its threads. On standard output by default;
//! through a Unix datagram socket when `HANDOVER_IO_REPORT` names one, because `sendto` is
//! outside the injected faults while every `write` to a pipe is not.

// Each test crate that includes this module uses a different part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixDatagram;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use handover_core::StreamId;
use handover_core::{Author, ConversationEvent, ConversationId, CustomerId, Event, MessageText};
use handover_sled::{SledOptions, SledStore};
use handover_store::{
    Durability, EventStore, ExpectedVersion, RecordedEvent, SeqRange, StoreError,
};

/// Set in a child process: what it runs (`append` or `verify`).
pub(crate) const MODE_ENV: &str = "HANDOVER_IO_CHILD";
const DIR_ENV: &str = "HANDOVER_IO_DIR";
const FIRST_ENV: &str = "HANDOVER_IO_FIRST_ATTEMPT";
const ATTEMPTS_ENV: &str = "HANDOVER_IO_ATTEMPTS";
const AFTER_FAILURE_ENV: &str = "HANDOVER_IO_AFTER_FAILURE";
const SIZES_ENV: &str = "HANDOVER_IO_SIZES";
const WAIT_ENV: &str = "HANDOVER_IO_WAIT_FOR_GO";
const REPORT_ENV: &str = "HANDOVER_IO_REPORT";

/// Conversations the workload spreads its appends over.
pub(crate) const STREAMS: u64 = 4;

/// Most the parent waits for one child before it kills it and reports a hang. A child's
/// longest legitimate path: a sync that times out ([`SYNC_TIMEOUT`]), then closing a store
/// whose engine is stuck (the store waits about 10 s for its journal and 10 s for sled).
pub(crate) const CHILD_DEADLINE: Duration = Duration::from_secs(60);

/// The free space the children's stores keep (`SledOptions::min_free_bytes`), small enough for
/// the full-disk test's 8 MiB tmpfs.
pub(crate) const MIN_FREE_BYTES: u64 = 2 * 1024 * 1024;

/// The children's bound on one sync (`SledOptions::sync_timeout`): a sync that sled never
/// finishes fails its appends and stops the store well within [`CHILD_DEADLINE`].
pub(crate) const SYNC_TIMEOUT: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------------
// The workload: what attempt `a` appends, so that every reader can recompute it.
// ---------------------------------------------------------------------------------------------

/// How large the workload's messages are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sizes {
    /// From 300 bytes to 60 KiB: a few hundred appends fill megabytes, and consolidated sled
    /// leaves grow past its blob threshold, so blob files are written too.
    Large,
    /// From 60 to 2,000 bytes: many appends, many syncs.
    Small,
}

impl Sizes {
    fn name(self) -> &'static str {
        match self {
            Sizes::Large => "large",
            Sizes::Small => "small",
        }
    }

    fn parse(name: &str) -> Sizes {
        match name {
            "small" => Sizes::Small,
            _ => Sizes::Large,
        }
    }

    fn text_len(self, attempt: u64, event: u64) -> usize {
        let slot = (attempt * 3 + event) % 8;
        match self {
            Sizes::Large => [300, 300, 300, 300, 6_000, 6_000, 30_000, 60_000][slot as usize],
            Sizes::Small => [60, 60, 200, 200, 200, 600, 600, 2_000][slot as usize],
        }
    }
}

/// The stream attempt `attempt` appends to.
pub(crate) fn stream_of(attempt: u64) -> u64 {
    attempt % STREAMS
}

/// How many events attempt `attempt` appends at once (1 to 3).
pub(crate) fn events_of(attempt: u64) -> u64 {
    1 + attempt % 3
}

/// Conversation stream number `n`.
pub(crate) fn conversation(n: u64) -> StreamId {
    let base = 0x0190_f1f0_0000_7000_8000_0000_0000_0000_u128;
    StreamId::Conversation(ConversationId::from_uuid(uuid::Uuid::from_u128(
        base + u128::from(n),
    )))
}

fn stream_number(stream: &StreamId) -> Option<u64> {
    let base = 0x0190_f1f0_0000_7000_8000_0000_0000_0000_u128;
    let id = stream.conversation_id()?;
    u64::try_from(id.as_uuid().as_u128().checked_sub(base)?).ok()
}

/// The text of event `event` of attempt `attempt`: its identity, then filler up to its size.
pub(crate) fn text_of(sizes: Sizes, attempt: u64, event: u64) -> String {
    let mut text = format!("attempt {attempt} event {event} ");
    let len = sizes.text_len(attempt, event);
    let fill = b'a' + ((attempt + event) % 26) as u8;
    while text.len() < len {
        text.push(char::from(fill));
    }
    text
}

fn event_of(sizes: Sizes, attempt: u64, event: u64) -> Event {
    Event::Conversation(ConversationEvent::MessagePosted {
        author: Author::Customer(CustomerId::new("cust-io").expect("a valid id")),
        text: MessageText::new(text_of(sizes, attempt, event)).expect("within the limit"),
        concerns: vec![],
    })
}

/// One event as a child saw it: its place in the log and the workload event it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Seen {
    /// Global position.
    pub(crate) position: u64,
    /// Workload stream number.
    pub(crate) stream: u64,
    /// Seq in its stream.
    pub(crate) seq: u64,
    /// The attempt that appended it.
    pub(crate) attempt: u64,
    /// Its index within that attempt.
    pub(crate) event: u64,
}

impl Seen {
    fn line(&self, tag: &str) -> String {
        format!(
            "{tag} {} {} {} {} {}",
            self.position, self.stream, self.seq, self.attempt, self.event
        )
    }

    fn parse(fields: &[&str]) -> Option<Seen> {
        let n = |i: usize| fields.get(i)?.parse::<u64>().ok();
        Some(Seen {
            position: n(0)?,
            stream: n(1)?,
            seq: n(2)?,
            attempt: n(3)?,
            event: n(4)?,
        })
    }
}

/// Identifies a record as a workload event, checking every byte of its text against what the
/// workload appends; `Err` says what does not match.
fn identify(sizes: Sizes, record: &RecordedEvent) -> Result<Seen, String> {
    let stream = stream_number(&record.stream)
        .filter(|n| *n < STREAMS)
        .ok_or_else(|| format!("unknown stream {}", record.stream))?;
    let Event::Conversation(ConversationEvent::MessagePosted { text, .. }) = &record.event else {
        return Err(format!("unexpected event {:?}", record.event));
    };
    let mut words = text.as_str().split(' ');
    let (attempt, event) = match (words.next(), words.next(), words.next(), words.next()) {
        (Some("attempt"), Some(a), Some("event"), Some(e)) => (
            a.parse::<u64>().map_err(|_| "bad attempt".to_owned())?,
            e.parse::<u64>().map_err(|_| "bad event".to_owned())?,
        ),
        _ => return Err("text is not a workload text".to_owned()),
    };
    if text.as_str() != text_of(sizes, attempt, event) {
        return Err(format!("text of attempt {attempt} event {event} differs"));
    }
    if stream_of(attempt) != stream || event >= events_of(attempt) {
        return Err(format!(
            "attempt {attempt} event {event} in the wrong stream"
        ));
    }
    Ok(Seen {
        position: record.position,
        stream,
        seq: record.seq,
        attempt,
        event,
    })
}

// ---------------------------------------------------------------------------------------------
// The child.
// ---------------------------------------------------------------------------------------------

/// What a child runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Dump the log, then append until the attempts are used up or an append fails.
    Append,
    /// Dump the log, then append expecting every append to succeed (a clean reopen).
    Verify,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Append => "append",
            Mode::Verify => "verify",
        }
    }
}

/// How the parent runs one child.
#[derive(Clone, Debug)]
pub(crate) struct ChildPlan {
    /// The data directory.
    pub(crate) dir: PathBuf,
    /// What the child runs.
    pub(crate) mode: Mode,
    /// The first attempt number (attempts continue across children).
    pub(crate) first_attempt: u64,
    /// Most appends to try.
    pub(crate) attempts: u64,
    /// Appends to try after the first failure, on the stopped store: each must be refused
    /// with `Failed` and write nothing. Then the child closes its store and exits.
    pub(crate) after_failure: u64,
    /// Message sizes.
    pub(crate) sizes: Sizes,
    /// Wait for a line on standard input after the store is open (time to inject faults).
    pub(crate) wait_for_go: bool,
    /// Report through this datagram socket instead of standard output.
    pub(crate) report_socket: Option<PathBuf>,
}

impl ChildPlan {
    /// The environment a child reads its plan from.
    pub(crate) fn apply(&self, command: &mut Command) {
        command
            .env(MODE_ENV, self.mode.name())
            .env(DIR_ENV, &self.dir)
            .env(FIRST_ENV, self.first_attempt.to_string())
            .env(ATTEMPTS_ENV, self.attempts.to_string())
            .env(AFTER_FAILURE_ENV, self.after_failure.to_string())
            .env(SIZES_ENV, self.sizes.name())
            .env(WAIT_ENV, if self.wait_for_go { "1" } else { "0" });
        if let Some(socket) = &self.report_socket {
            command.env(REPORT_ENV, socket);
        }
    }

    fn from_env() -> ChildPlan {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        let number = |name: &str| var(name).parse::<u64>().unwrap_or(0);
        ChildPlan {
            dir: PathBuf::from(var(DIR_ENV)),
            mode: if var(MODE_ENV) == "verify" {
                Mode::Verify
            } else {
                Mode::Append
            },
            first_attempt: number(FIRST_ENV),
            attempts: number(ATTEMPTS_ENV),
            after_failure: number(AFTER_FAILURE_ENV),
            sizes: Sizes::parse(&var(SIZES_ENV)),
            wait_for_go: var(WAIT_ENV) == "1",
            report_socket: std::env::var_os(REPORT_ENV).map(PathBuf::from),
        }
    }
}

/// Where a child's lines go.
#[derive(Clone)]
enum Reporter {
    Stdout,
    Socket(Arc<UnixDatagram>, PathBuf),
}

impl Reporter {
    fn line(&self, line: &str) {
        let line = line.replace('\n', " | ");
        match self {
            Reporter::Stdout => println!("{line}"),
            Reporter::Socket(socket, path) => {
                // `sendto` is not among the injected faults; a lost report would show as a
                // missing line, and the parent then fails the run.
                if let Err(error) = socket.send_to(line.as_bytes(), path) {
                    eprintln!("report lost: {error}: {line}");
                }
            }
        }
    }
}

/// The class of a store error, as the report names it: `io:<errno>` (or `io:<kind>` without
/// one), `engine`, `corrupted`, `in-use`, `closed`, `overloaded`, `too-large`, `other`, and for
/// a stopped store `failed:<class of the failure that stopped it>`.
pub(crate) fn error_class(error: &StoreError) -> String {
    match error {
        StoreError::Io(io) => format!("io:{}", io_class(io)),
        StoreError::Failed(cause) => format!("failed:{}", error_class(cause)),
        StoreError::Engine(_) => "engine".to_owned(),
        StoreError::Corrupted { .. } => "corrupted".to_owned(),
        StoreError::InUse { .. } => "in-use".to_owned(),
        StoreError::Closed => "closed".to_owned(),
        StoreError::Overloaded => "overloaded".to_owned(),
        StoreError::RecordTooLarge { .. } => "too-large".to_owned(),
        _ => "other".to_owned(),
    }
}

/// The errno of an I/O error, or its kind when it has none.
fn io_class(io: &std::io::Error) -> String {
    if let Some(errno) = io.raw_os_error() {
        return errno.to_string();
    }
    // A cloned sled error keeps the operating system's error only in its text.
    let text = io.to_string();
    let errno = text
        .split("Os { code: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse::<i32>().ok());
    match errno {
        Some(errno) => errno.to_string(),
        None => format!("{:?}", io.kind()),
    }
}

/// The failure under a class: `io:28` for both `io:28` and `failed:io:28`.
pub(crate) fn root_class(class: &str) -> &str {
    class.strip_prefix("failed:").unwrap_or(class)
}

/// Whether a class names a failure of the storage itself (the operating system or the
/// engine), directly or as the cause that stopped the store: what a failing disk may give.
pub(crate) fn is_storage_failure(class: &str) -> bool {
    let root = root_class(class);
    root.starts_with("io:") || root == "engine"
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Opens the store, reporting a failure with its class. `open` never panics by contract; a
/// panic is caught here only to report it (it is a failure of the test).
fn open(plan: &ChildPlan, report: &Reporter) -> Option<SledStore> {
    let options = SledOptions {
        durability: Durability::Durable,
        // A new process: no handle of the directory is left in it.
        in_use_wait: Duration::from_secs(5),
        sync_timeout: SYNC_TIMEOUT,
        // The full-disk test's tmpfs is 8 MiB: keep 2 MiB free instead of the default 64.
        min_free_bytes: MIN_FREE_BYTES,
        ..SledOptions::default()
    };
    let opened = std::panic::catch_unwind(AssertUnwindSafe(|| {
        SledStore::open(&plan.dir, options.clone())
    }));
    match opened {
        Ok(Ok(store)) => Some(store),
        Ok(Err(error)) => {
            report.line(&format!("open-error {} {error}", error_class(&error)));
            None
        }
        Err(panic) => {
            report.line(&format!("open-panic {}", panic_text(&*panic)));
            None
        }
    }
}

/// Reports every record of the log in global order, then checks the stream key space holds
/// the same number. Returns the versions of the workload's streams.
fn dump(store: &SledStore, sizes: Sizes, report: &Reporter) -> BTreeMap<u64, u64> {
    let mut versions = BTreeMap::new();
    let mut count = 0u64;
    for record in store.iter_all(1) {
        match record {
            Ok(record) => {
                count += 1;
                match identify(sizes, &record) {
                    Ok(seen) => report.line(&seen.line("record")),
                    Err(detail) => report.line(&format!("bad-record {} {detail}", record.position)),
                }
            }
            Err(error) => report.line(&format!("read-error {} {error}", error_class(&error))),
        }
    }
    let mut streamed = 0u64;
    for record in store.scan_streams() {
        match record {
            Ok(_) => streamed += 1,
            Err(error) => report.line(&format!("read-error {} {error}", error_class(&error))),
        }
    }
    if streamed != count {
        report.line(&format!(
            "read-error mismatch the streams hold {streamed} records, the global index {count}"
        ));
    }
    for n in 0..STREAMS {
        match store.version(&conversation(n)) {
            Ok(version) => {
                versions.insert(n, version);
            }
            Err(error) => report.line(&format!("read-error {} {error}", error_class(&error))),
        }
    }
    report.line(&format!("ready head={}", store.head()));
    versions
}

/// The child process: runs the plan its environment holds, reports, and exits without
/// returning to the test harness (whose own output could meet an injected fault, and which
/// would wait for threads a failed store left blocked in sled).
pub(crate) fn run_child() -> ! {
    let plan = ChildPlan::from_env();
    let report = match &plan.report_socket {
        Some(path) => Reporter::Socket(
            Arc::new(UnixDatagram::unbound().expect("a datagram socket")),
            path.clone(),
        ),
        None => Reporter::Stdout,
    };
    // Every panic on any thread is reported, also where standard error meets a fault; the
    // parent tells a panic the store contains (sled's, on the thread that closes it) from one
    // that reaches the caller.
    let hook_report = report.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        hook_report.line(&format!(
            "panic thread={thread} at={at} {}",
            panic_text(info.payload())
        ));
        previous(info);
    }));
    // Timers only, no I/O driver: with one, waking this thread from the journal's threads
    // writes to an eventfd, and libfiu's injected `write` failures would hit that wake-up (tokio
    // panics on it) instead of the storage they are meant for.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    runtime.block_on(child_appends(&plan, &report));
    std::process::exit(0)
}

async fn child_appends(plan: &ChildPlan, report: &Reporter) {
    let Some(store) = open(plan, report) else {
        report.line("done open-failed");
        return;
    };
    let mut versions = dump(&store, plan.sizes, report);
    if plan.wait_for_go {
        let mut go = String::new();
        let _ = BufReader::new(std::io::stdin()).read_line(&mut go);
    }
    let mut live = store.subscribe();
    let (mut acked, mut failed) = (0u64, 0u64);
    // Set by the first failure: the store has stopped.
    let mut stopped = false;
    let mut tried_after_failure = 0u64;
    let end = plan.first_attempt + plan.attempts;
    let mut next = plan.first_attempt;
    let mut verify_failed = false;
    while next < end {
        if stopped {
            if tried_after_failure == plan.after_failure {
                break;
            }
            tried_after_failure += 1;
        }
        let attempt = next;
        next += 1;
        let n = stream_of(attempt);
        let stream = conversation(n);
        let before = versions.get(&n).copied().unwrap_or(0);
        let events = (0..events_of(attempt))
            .map(|event| event_of(plan.sizes, attempt, event))
            .collect();
        let outcome = store
            .append(&stream, ExpectedVersion::Exact(before), events)
            .await;
        drain_published(&mut live, plan.sizes, report);
        let succeeded = match outcome {
            Ok(Ok(records)) => {
                acked += 1;
                for record in &records {
                    match identify(plan.sizes, record) {
                        Ok(seen) => report.line(&seen.line("ack")),
                        Err(detail) => report.line(&format!("bad-ack {detail}")),
                    }
                }
                versions.insert(n, before + records.len() as u64);
                true
            }
            Ok(Err(conflict)) => {
                failed += 1;
                report.line(&format!("conflict {attempt} {conflict}"));
                false
            }
            Err(error) => {
                failed += 1;
                // The outcome is unknown (for the append that met the failure) or nothing
                // (for one the stopped store refused); the parent tells them apart.
                report.line(&format!("fail {attempt} {} {error}", error_class(&error)));
                if !stopped {
                    stopped = true;
                    probe_stopped(&store, &stream, report).await;
                }
                false
            }
        };
        if plan.mode == Mode::Verify && !succeeded {
            // A verifying child expects every append to succeed.
            verify_failed = true;
            break;
        }
    }
    drain_published(&mut live, plan.sizes, report);
    let flushed = match store.flush() {
        Ok(()) => "ok".to_owned(),
        Err(error) => error_class(&error),
    };
    let stats = store.stats();
    report.line(&format!(
        "done attempts={} acked={acked} failed={failed} next={next} flush={flushed} \
         store_appends={} syncs={}{}",
        next - plan.first_attempt,
        stats.appends,
        stats.syncs,
        if verify_failed {
            " verify-append-failed"
        } else {
            ""
        }
    ));
    drop(live);
    // Closing is bounded by the store even when its engine is stuck; the parent's deadline
    // catches it if not.
    let closing = Instant::now();
    drop(store);
    report.line(&format!("closed ms={}", closing.elapsed().as_millis()));
}

/// After the first failure: every read and the flush of the stopped store must be refused
/// with the failure at once.
async fn probe_stopped(store: &SledStore, stream: &StreamId, report: &Reporter) {
    let class = |outcome: Result<(), StoreError>| match outcome {
        Ok(()) => "ok".to_owned(),
        Err(error) => error_class(&error),
    };
    let version = class(store.version(stream).map(drop));
    let read = class(store.read_stream(stream, SeqRange::ALL).await.map(drop));
    let read_all = class(store.iter_all(1).next().transpose().map(drop));
    let flush = class(store.flush());
    report.line(&format!(
        "stopped version={version} read={read} read-all={read_all} flush={flush}"
    ));
}

fn drain_published(
    live: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<RecordedEvent>>,
    sizes: Sizes,
    report: &Reporter,
) {
    use tokio::sync::broadcast::error::TryRecvError;
    loop {
        match live.try_recv() {
            Ok(record) => match identify(sizes, &record) {
                Ok(seen) => report.line(&seen.line("published")),
                Err(detail) => report.line(&format!("bad-published {detail}")),
            },
            Err(TryRecvError::Lagged(n)) => report.line(&format!("published-lagged {n}")),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parent.
// ---------------------------------------------------------------------------------------------

/// How a child ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// It exited with this status.
    Exited(ExitStatus),
    /// It ran past [`CHILD_DEADLINE`] and was killed.
    Hung,
}

/// One failed append as a child reported it.
#[derive(Clone, Debug)]
pub(crate) struct Failure {
    /// The attempt.
    pub(crate) attempt: u64,
    /// Its error's class ([`error_class`]).
    pub(crate) class: String,
    /// The error's message.
    pub(crate) message: String,
}

/// Everything one child reported.
#[derive(Debug, Default)]
pub(crate) struct Transcript {
    /// The log it read when it opened the store, in global order.
    pub(crate) records: Vec<Seen>,
    /// Events it had acknowledged.
    pub(crate) acks: Vec<Seen>,
    /// Events published to subscribers.
    pub(crate) published: Vec<Seen>,
    /// Failed appends, in order: the first met the failure, the later ones met the stopped
    /// store.
    pub(crate) failures: Vec<Failure>,
    /// What the stopped store answered to reads and a flush, after the first failure.
    pub(crate) stopped: Option<String>,
    /// Read errors, undecodable records, conflicts, lost reports: anything wrong.
    pub(crate) problems: Vec<String>,
    /// Why the store did not open, with the error's class.
    pub(crate) open_errors: Vec<String>,
    /// Every panic on any of its threads (`panic thread=... at=... message`).
    pub(crate) panics: Vec<String>,
    /// The `done` line, if the child got that far.
    pub(crate) done: Option<String>,
    /// The first attempt it did not try, from its `done` line.
    pub(crate) next: Option<u64>,
    /// How long dropping its store took, if it got that far.
    pub(crate) closed_ms: Option<u64>,
    /// Lines the protocol does not know (test harness output).
    pub(crate) other: Vec<String>,
}

impl Transcript {
    fn take(&mut self, line: &str) {
        let fields: Vec<&str> = line.split(' ').collect();
        let (tag, rest) = fields.split_first().map_or(("", &[][..]), |(t, r)| (*t, r));
        match tag {
            "record" | "ack" | "published" => match Seen::parse(rest) {
                Some(seen) if tag == "record" => self.records.push(seen),
                Some(seen) if tag == "ack" => self.acks.push(seen),
                Some(seen) => self.published.push(seen),
                None => self.problems.push(format!("malformed report: {line}")),
            },
            "fail" => match rest.first().and_then(|a| a.parse().ok()) {
                Some(attempt) => self.failures.push(Failure {
                    attempt,
                    class: rest.get(1).copied().unwrap_or("").to_owned(),
                    message: rest.get(2..).map(|m| m.join(" ")).unwrap_or_default(),
                }),
                None => self.problems.push(format!("malformed report: {line}")),
            },
            "stopped" => self.stopped = Some(rest.join(" ")),
            "open-error" => self.open_errors.push(line.to_owned()),
            "panic" => self.panics.push(line.to_owned()),
            "ready" => {}
            "done" => {
                self.next = rest
                    .iter()
                    .find_map(|f| f.strip_prefix("next=")?.parse().ok());
                self.done = Some(line.to_owned());
            }
            "closed" => {
                self.closed_ms = Some(
                    rest.iter()
                        .find_map(|f| f.strip_prefix("ms=")?.parse().ok())
                        .unwrap_or(0),
                );
            }
            "read-error" | "bad-record" | "bad-ack" | "bad-published" | "conflict"
            | "published-lagged" | "open-panic" => self.problems.push(line.to_owned()),
            _ => self.other.push(line.to_owned()),
        }
    }

    /// The attempt whose outcome nobody reported: the one in flight when a child that did
    /// not finish stopped reporting (none for a child that finished).
    pub(crate) fn in_flight(&self, first_attempt: u64) -> Option<u64> {
        if self.done.is_some() {
            return None;
        }
        let last = self
            .acks
            .iter()
            .map(|a| a.attempt)
            .chain(self.failures.iter().map(|f| f.attempt))
            .max();
        Some(last.map_or(first_attempt, |a| a + 1))
    }

    /// The first attempt a restart tries: after every attempt this child tried or may have.
    pub(crate) fn next_attempt(&self, first_attempt: u64) -> u64 {
        match (self.next, self.in_flight(first_attempt)) {
            (Some(next), _) => next,
            (None, Some(in_flight)) => in_flight + 1,
            (None, None) => first_attempt,
        }
    }

    /// How many failures had each error class.
    pub(crate) fn failure_classes(&self) -> BTreeMap<String, usize> {
        let mut classes = BTreeMap::new();
        for failure in &self.failures {
            *classes.entry(failure.class.clone()).or_insert(0) += 1;
        }
        classes
    }
}

/// Whether a reported panic is sled's own, in its log's `Drop` on the thread the store closes
/// sled on: the store contains it there (the store's owner never sees it), by design.
pub(crate) fn is_contained_panic(line: &str) -> bool {
    line.contains("thread=handover-close ") && line.contains("sled-0.34.7/src/pagecache/logger.rs")
}

/// A finished child: its ending, its report, and what it wrote to standard error.
#[derive(Debug)]
pub(crate) struct ChildRun {
    /// How it ended.
    pub(crate) ending: Ending,
    /// What it reported.
    pub(crate) transcript: Transcript,
    /// Its standard error (panic messages land here too).
    pub(crate) stderr: String,
}

impl ChildRun {
    /// One line for the test's output: how it ended and what it reported.
    pub(crate) fn summary(&self) -> String {
        let t = &self.transcript;
        let ending = match &self.ending {
            Ending::Exited(status) => match status.code() {
                Some(code) => format!("exit {code}"),
                None => format!("{status}"),
            },
            Ending::Hung => format!("hung (killed after {CHILD_DEADLINE:?})"),
        };
        let mut s = format!(
            "{ending}, read {} records, {} acked events, {} failed appends {:?}, closed in {}, \
             {}",
            t.records.len(),
            t.acks.len(),
            t.failures.len(),
            t.failure_classes(),
            t.closed_ms
                .map_or_else(|| "never".to_owned(), |ms| format!("{ms} ms")),
            t.done.as_deref().unwrap_or("not done")
        );
        if let Some(first) = t.failures.first() {
            let _ = write!(
                s,
                "; first failure: attempt {} {}: {}",
                first.attempt, first.class, first.message
            );
        }
        if let Some(stopped) = &t.stopped {
            let _ = write!(s, "; the stopped store answered {stopped}");
        }
        if !t.open_errors.is_empty() {
            let _ = write!(s, "; open failed: {:?}", t.open_errors);
        }
        let contained = t.panics.iter().filter(|p| is_contained_panic(p)).count();
        if contained > 0 {
            let _ = write!(
                s,
                "; {contained} panic(s) of sled contained on its close thread"
            );
        }
        s
    }

    /// Panics that reached something other than the store's close thread: every one is a
    /// failure. Includes panics seen only on standard error (their report was lost).
    pub(crate) fn uncontained_panics(&self) -> Vec<String> {
        let mut panics: Vec<String> = self
            .transcript
            .panics
            .iter()
            .filter(|p| !is_contained_panic(p))
            .cloned()
            .collect();
        let on_stderr = self.stderr.lines().filter(|l| l.contains("panicked at"));
        if self.transcript.panics.is_empty() {
            panics.extend(on_stderr.map(|l| format!("(from standard error) {l}")));
        }
        panics
    }

    /// The contained panics (see [`is_contained_panic`]).
    pub(crate) fn contained_panics(&self) -> usize {
        self.transcript
            .panics
            .iter()
            .filter(|p| is_contained_panic(p))
            .count()
    }
}

/// Everything a child did wrong by the store's contract: it did not end by itself with exit
/// status 0 (a hang, a crash), did not close its store, a panic reached the store's caller,
/// the store did not open, it reported damage or a lost report, a failure was not a storage
/// failure, a later failure was not the stopped store's `Failed`, an append succeeded after a
/// failure, or a read or flush of the stopped store was not refused. A verifying child must
/// not fail at all.
pub(crate) fn child_problems(label: &str, run: &ChildRun, mode: Mode) -> Vec<String> {
    let t = &run.transcript;
    let mut problems = Vec::new();
    let mut problem = |what: String| problems.push(format!("{label}: {what}"));
    match &run.ending {
        Ending::Hung => problem(format!(
            "hung: killed after {CHILD_DEADLINE:?} ({})",
            t.done
                .as_deref()
                .map_or("before it finished its appends", |_| {
                    "after it finished its appends, while closing its store"
                })
        )),
        Ending::Exited(status) if !status.success() => problem(format!("exited with {status}")),
        Ending::Exited(_) => {}
    }
    for panic in run.uncontained_panics() {
        problem(format!("a panic reached the caller: {panic}"));
    }
    if !t.open_errors.is_empty() {
        problem(format!("the store did not open: {:?}", t.open_errors));
    }
    if run.ending != Ending::Hung && t.open_errors.is_empty() {
        if t.done.is_none() {
            problem("ended without reporting `done`".to_owned());
        } else if t.closed_ms.is_none() {
            problem("ended without closing its store".to_owned());
        }
    }
    for line in &t.problems {
        problem(format!("reported {line}"));
    }
    if mode == Mode::Verify {
        if let Some(failure) = t.failures.first() {
            problem(format!(
                "an append failed on a clean reopen: attempt {} {}: {}",
                failure.attempt, failure.class, failure.message
            ));
        }
        return problems;
    }
    if let Some((first, later)) = t.failures.split_first() {
        if !is_storage_failure(&first.class) {
            problem(format!(
                "attempt {} failed with an error that is not a storage failure ({}): {}",
                first.attempt, first.class, first.message
            ));
        }
        for failure in later {
            if !(failure.class.starts_with("failed:") && is_storage_failure(&failure.class)) {
                problem(format!(
                    "attempt {} on the stopped store was not refused with the failure \
                     ({}): {}",
                    failure.attempt, failure.class, failure.message
                ));
            }
        }
        if let Some(ack) = t.acks.iter().find(|a| a.attempt > first.attempt) {
            problem(format!(
                "attempt {} was acknowledged after the store failed at attempt {}",
                ack.attempt, first.attempt
            ));
        }
        match &t.stopped {
            None => problem("did not report what the stopped store answers".to_owned()),
            Some(stopped) => {
                let refused = stopped.split(' ').all(|answer| {
                    answer
                        .split_once('=')
                        .is_some_and(|(_, class)| class.starts_with("failed:"))
                });
                if !refused {
                    problem(format!(
                        "the stopped store did not refuse a read or flush: {stopped}"
                    ));
                }
            }
        }
    }
    problems
}

/// What every child so far acknowledged, failed, had refused, and published.
#[derive(Debug, Default)]
pub(crate) struct History {
    /// Acknowledged events: each must be in every later log, where it was acknowledged.
    pub(crate) acks: Vec<Seen>,
    /// Attempts whose outcome is unknown (the append that met a failure, or one in flight
    /// when a child died): whole or absent.
    pub(crate) unknown: BTreeSet<u64>,
    /// Attempts a stopped store refused: never in the log.
    pub(crate) refused: BTreeSet<u64>,
    /// Events published to subscribers: durable, so in every later log.
    pub(crate) published: Vec<Seen>,
}

impl History {
    /// Adds what a child that started at `first_attempt` reported.
    pub(crate) fn merge(&mut self, t: &Transcript, first_attempt: u64) {
        self.acks.extend(&t.acks);
        self.published.extend(&t.published);
        if let Some((first, later)) = t.failures.split_first() {
            self.unknown.insert(first.attempt);
            self.refused.extend(later.iter().map(|f| f.attempt));
        }
        self.unknown.extend(t.in_flight(first_attempt));
    }
}

/// What a reopen found, against the history before it.
#[derive(Debug, Default)]
pub(crate) struct Verdict {
    /// Events in the log.
    pub(crate) records: usize,
    /// Acknowledged events, all present.
    pub(crate) acked: usize,
    /// Appends of unknown outcome whose events are in the log (all of them).
    pub(crate) unknown_present: usize,
    /// Appends of unknown outcome whose events are not.
    pub(crate) unknown_absent: usize,
    /// Appends a stopped store refused (none in the log).
    pub(crate) refused: usize,
    /// Events published to subscribers.
    pub(crate) published: usize,
    /// Of those, events the log does not hold.
    pub(crate) published_lost: usize,
}

/// Checks that `log` (a reopen's global order) is a clean prefix of what the children tried:
/// positions 1, 2, 3, ... with no damage; every acknowledged and every published event at the
/// position, stream and seq it was acknowledged or published with; every other event from an
/// append of unknown outcome, whole (all of its events or none); no refused append; each
/// stream contiguous from seq 1; no attempt twice. Returns the failures it found, and its
/// counts.
pub(crate) fn check_clean_prefix(log: &[Seen], history: &History) -> (Vec<String>, Verdict) {
    let mut problems = Vec::new();
    for (expected, seen) in (1u64..).zip(log) {
        if seen.position != expected {
            problems.push(format!(
                "position {expected} is missing; the log goes on at {seen:?}"
            ));
            break;
        }
    }
    let by_position: BTreeMap<u64, &Seen> = log.iter().map(|s| (s.position, s)).collect();
    let by_event: BTreeMap<(u64, u64), &Seen> =
        log.iter().map(|s| ((s.attempt, s.event), s)).collect();
    if by_event.len() != log.len() {
        problems.push("an event is in the log twice".to_owned());
    }
    let mut next_seq = BTreeMap::new();
    for seen in log {
        let expected = next_seq.entry(seen.stream).or_insert(1u64);
        if seen.seq != *expected {
            problems.push(format!(
                "stream {} skips from seq {} to {}",
                seen.stream,
                *expected - 1,
                seen.seq
            ));
        }
        *expected = seen.seq + 1;
    }
    let acked_attempts: BTreeSet<u64> = history.acks.iter().map(|a| a.attempt).collect();
    for ack in &history.acks {
        match by_position.get(&ack.position) {
            Some(found) if *found == ack => {}
            Some(found) => problems.push(format!(
                "acknowledged {ack:?}, but the log holds {found:?} at its position"
            )),
            None => problems.push(format!("acknowledged {ack:?} is not in the log")),
        }
    }
    let mut verdict = Verdict {
        records: log.len(),
        acked: history.acks.len(),
        refused: history.refused.len(),
        published: history.published.len(),
        ..Verdict::default()
    };
    let mut present_attempts: BTreeMap<u64, u64> = BTreeMap::new();
    for seen in log {
        *present_attempts.entry(seen.attempt).or_insert(0) += 1;
        if history.refused.contains(&seen.attempt) {
            problems.push(format!(
                "{seen:?} is in the log, but the stopped store refused its append"
            ));
        } else if !acked_attempts.contains(&seen.attempt)
            && !history.unknown.contains(&seen.attempt)
        {
            problems.push(format!(
                "{seen:?} is in the log, but its append was neither acknowledged nor failed"
            ));
        }
    }
    for (attempt, count) in &present_attempts {
        if *count != events_of(*attempt) {
            problems.push(format!(
                "attempt {attempt} appended {} events, the log holds {count}: not atomic",
                events_of(*attempt)
            ));
        }
    }
    for attempt in &history.unknown {
        if acked_attempts.contains(attempt) {
            problems.push(format!(
                "attempt {attempt} both failed and was acknowledged"
            ));
        }
        if present_attempts.contains_key(attempt) {
            verdict.unknown_present += 1;
        } else {
            verdict.unknown_absent += 1;
        }
    }
    for published in &history.published {
        if by_position.get(&published.position) != Some(&published) {
            verdict.published_lost += 1;
            problems.push(format!(
                "{published:?} was published to subscribers, but the log does not hold it"
            ));
        }
    }
    (problems, verdict)
}

/// What a run of children with restarts did.
#[derive(Debug, Default)]
pub(crate) struct Restarted {
    /// Everything the children acknowledged, failed, had refused and published.
    pub(crate) history: History,
    /// Each child's run, in order.
    pub(crate) runs: Vec<ChildRun>,
    /// Everything that broke the store's contract, with the child it happened in.
    pub(crate) problems: Vec<String>,
    /// The first attempt no child tried.
    pub(crate) next_attempt: u64,
}

impl Restarted {
    /// Failures of every child, by class.
    pub(crate) fn failure_classes(&self) -> BTreeMap<String, usize> {
        let mut classes = BTreeMap::new();
        for run in &self.runs {
            for (class, n) in run.transcript.failure_classes() {
                *classes.entry(class).or_insert(0) += n;
            }
        }
        classes
    }
}

/// Runs `plan` as a sequence of processes: each child appends until its store fails, closes
/// it and exits; the next one (a restart) reopens the directory, and must find every event
/// acknowledged or published before as a clean prefix, then continues with the next attempt
/// numbers. Stops when the attempts are used up, after `children_max` children, or at the
/// first child that broke the contract. `start(plan, n)` runs child `n`.
pub(crate) fn run_with_restarts(
    label: &str,
    plan: &ChildPlan,
    children_max: u64,
    mut start: impl FnMut(&ChildPlan, u64) -> ChildRun,
) -> Restarted {
    let end = plan.first_attempt + plan.attempts;
    let mut restarted = Restarted {
        next_attempt: plan.first_attempt,
        ..Restarted::default()
    };
    for n in 0..children_max {
        if restarted.next_attempt >= end {
            break;
        }
        let mut this = plan.clone();
        this.first_attempt = restarted.next_attempt;
        this.attempts = end - restarted.next_attempt;
        let run = start(&this, n);
        let name = format!("{label}, process {n}");
        println!("{name}: {}", run.summary());
        let mut found = child_problems(&name, &run, this.mode);
        if run.transcript.open_errors.is_empty() {
            let (prefix, verdict) = check_clean_prefix(&run.transcript.records, &restarted.history);
            println!("{name}: the log it reopened: {verdict:?}");
            found.extend(
                prefix
                    .into_iter()
                    .map(|p| format!("{name}, the log it reopened: {p}")),
            );
        }
        restarted.history.merge(&run.transcript, this.first_attempt);
        restarted.next_attempt = run.transcript.next_attempt(this.first_attempt);
        restarted.runs.push(run);
        if !found.is_empty() {
            restarted.problems.extend(found);
            break;
        }
    }
    restarted
}

/// Checks a verifying child (a clean reopen): it finished cleanly, appended all it tried, and
/// read a log that is a clean prefix of `history`.
pub(crate) fn check_verify(
    label: &str,
    run: &ChildRun,
    plan: &ChildPlan,
    history: &History,
) -> (Vec<String>, Verdict) {
    let mut problems = child_problems(label, run, Mode::Verify);
    let expected: u64 = (plan.first_attempt..plan.first_attempt + plan.attempts)
        .map(events_of)
        .sum();
    if problems.is_empty() && run.transcript.acks.len() as u64 != expected {
        problems.push(format!(
            "{label}: {} events acknowledged of the {expected} appended",
            run.transcript.acks.len()
        ));
    }
    let (found, verdict) = if run.transcript.open_errors.is_empty() {
        check_clean_prefix(&run.transcript.records, history)
    } else {
        (Vec::new(), Verdict::default())
    };
    problems.extend(found.into_iter().map(|p| format!("{label}: {p}")));
    (problems, verdict)
}

/// A `Command` that runs this test executable's `entry` test alone in a child, with the plan
/// in its environment; `program` (with its arguments) runs it, when given.
pub(crate) fn child_command(program: Option<&[&str]>, entry: &str, plan: &ChildPlan) -> Command {
    let exe = std::env::current_exe().expect("the test executable");
    let mut command = match program {
        Some([first, rest @ ..]) => {
            let mut c = Command::new(first);
            c.args(rest).arg(exe);
            c
        }
        _ => Command::new(exe),
    };
    command.args([entry, "--exact", "--nocapture", "--test-threads=1", "-q"]);
    plan.apply(&mut command);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs a child to its end (or kills it at the deadline), collecting its report from its
/// standard output or from `socket`. `on_ready` runs once the child reports its store open
/// (to inject faults), with its process id; the child goes on when it returns.
pub(crate) fn run(
    mut command: Command,
    socket: Option<UnixDatagram>,
    mut on_ready: impl FnMut(u32),
) -> ChildRun {
    let mut child: Child = command.spawn().expect("the child starts");
    let pid = child.id();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let readers = {
        let tx = lines_tx.clone();
        let out = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let err = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        (out, err)
    };
    let socket_reader = socket.map(|socket| {
        let tx = lines_tx.clone();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("a timeout");
        let (stop_tx, stop) = mpsc::channel::<()>();
        let handle = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match socket.recv(&mut buf) {
                    Ok(n) => {
                        let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
                    }
                    Err(_) => {
                        if stop.try_recv().is_ok() {
                            // Drain what is left, then stop.
                            while let Ok(n) = socket.recv(&mut buf) {
                                let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
                            }
                            return;
                        }
                    }
                }
            }
        });
        (stop_tx, handle)
    });
    drop(lines_tx);

    let mut transcript = Transcript::default();
    let mut stdin = child.stdin.take();
    let deadline = Instant::now() + CHILD_DEADLINE;
    let ending = loop {
        while let Ok(line) = lines.try_recv() {
            if line.starts_with("ready ") {
                if let Some(mut input) = stdin.take() {
                    on_ready(pid);
                    let _ = input.write_all(b"go\n");
                }
            }
            transcript.take(&line);
        }
        if let Some(status) = child.try_wait().expect("the child's status") {
            break Ending::Exited(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break Ending::Hung;
        }
        match lines.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                if line.starts_with("ready ") {
                    if let Some(mut input) = stdin.take() {
                        on_ready(pid);
                        let _ = input.write_all(b"go\n");
                    }
                }
                transcript.take(&line);
            }
            Err(_) => continue,
        }
    };
    drop(stdin);
    let _ = readers.0.join();
    if let Some((stop, handle)) = socket_reader {
        let _ = stop.send(());
        let _ = handle.join();
    }
    for line in lines.try_iter() {
        transcript.take(&line);
    }
    let stderr = readers.1.join().unwrap_or_default();
    ChildRun {
        ending,
        transcript,
        stderr,
    }
}

/// A fresh path for a report socket in `dir`, bound.
pub(crate) fn report_socket(dir: &Path) -> (UnixDatagram, PathBuf) {
    let path = dir.join("report.sock");
    let _ = std::fs::remove_file(&path);
    let socket = UnixDatagram::bind(&path).expect("a report socket");
    (socket, path)
}
