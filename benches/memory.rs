//! Resident memory per conversation, with 100,000 conversations opened through the facade.
//!
//! Durability is `Buffered`: this bench measures memory, not what an acknowledgement
//! survives, and the durability mode changes nothing the runtime keeps per conversation.
//!
//! Phases, each in a process of its own (so memory freed by one does not flatter the next's
//! resident set) on a fresh data directory, each against a baseline taken after start-up and
//! before the first conversation:
//!
//! 1. live idle: passivation off; every conversation is opened and its actor keeps running;
//! 2. the same with a passivation timer armed in every actor (`passivate_after` longer than the
//!    opening takes), then passivated: the timers fire, the bench waits until
//!    `live_conversations()` is 0 and measures again;
//! 3. the store alone: the same 100,000 openings (a start and an assignment) appended straight
//!    to a `SledStore`, no runtime: what the log's cache and indexes hold, which phases 1 and 2
//!    include.
//!
//! Two measures: heap bytes still allocated, from `stats_alloc`'s instrumented global
//! allocator, and the resident set from `/proc/self/statm`. glibc keeps freed memory for
//! reuse, so the resident set after passivation overstates what passivated conversations hold.
//!
//! Run with `cargo bench -p handover-benches --bench memory`; `HANDOVER_MEMORY_CONVERSATIONS`
//! overrides the count.

use std::alloc::System;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use handover::{Channel, Config, CustomerId, Durability, Error, Handover, HumanId, StreamId};
use handover_sled::SledStore;
use handover_store::{EventStore, ExpectedVersion};
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Conversations per phase, unless `HANDOVER_MEMORY_CONVERSATIONS` says otherwise.
const CONVERSATIONS: usize = 100_000;

/// Tasks opening conversations at once.
const OPENERS: usize = 64;

/// Time given to background work (sled's flusher, actors stopping) before a measurement.
const SETTLE: Duration = Duration::from_millis(1_500);

/// Longest wait for every conversation actor to passivate.
const PASSIVATION_WAIT_MAX: Duration = Duration::from_secs(300);

/// The environment of a phase's child process: which phase, how many conversations, and
/// (phase 2) the passivation timeout in milliseconds.
const PHASE_VAR: &str = "HANDOVER_MEMORY_PHASE";
const COUNT_VAR: &str = "HANDOVER_MEMORY_CONVERSATIONS";
const PASSIVATE_VAR: &str = "HANDOVER_MEMORY_PASSIVATE_AFTER_MS";

/// Phases, and the labels of what they report on stdout, each line starting with
/// [`REPORT_PREFIX`]: heap bytes, heap blocks, resident bytes (growth over the baseline).
const LIVE: &str = "live";
const ARMED: &str = "armed";
const PASSIVATED: &str = "passivated";
const STORE: &str = "store";
const OPENING: &str = "opening_ms";
const REPORT_PREFIX: &str = "memory-report";

/// Targets, in bytes per conversation.
const LIVE_TARGET: i64 = 2 * 1024;
const PASSIVATED_TARGET: i64 = 200;

/// Memory in use at one moment.
#[derive(Clone, Copy, Debug)]
struct Usage {
    /// Heap bytes allocated and not yet freed.
    heap: i64,
    /// Heap blocks allocated and not yet freed.
    blocks: i64,
    /// Resident set, in bytes.
    rss: i64,
}

impl Usage {
    fn now() -> Usage {
        let stats = GLOBAL.stats();
        Usage {
            heap: stats.bytes_allocated as i64 - stats.bytes_deallocated as i64,
            blocks: stats.allocations as i64 - stats.deallocations as i64,
            rss: rss_bytes(),
        }
    }

    /// Measures after background work has settled.
    async fn settled() -> Usage {
        tokio::time::sleep(SETTLE).await;
        Usage::now()
    }
}

/// One row of the table: growth over a baseline, per conversation.
struct Row {
    label: &'static str,
    heap: f64,
    blocks: f64,
    rss: f64,
    target: Option<i64>,
}

impl Row {
    /// This row minus `other`: the share of one component.
    fn minus(&self, label: &'static str, other: &Row, target: Option<i64>) -> Row {
        Row {
            label,
            heap: self.heap - other.heap,
            blocks: self.blocks - other.blocks,
            rss: self.rss - other.rss,
            target,
        }
    }
}

fn page_bytes() -> i64 {
    std::process::Command::new("getconf")
        .arg("PAGESIZE")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(4096)
}

/// The resident set from `/proc/self/statm` (its second field, in pages).
fn rss_bytes() -> i64 {
    static PAGE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let page = *PAGE.get_or_init(page_bytes);
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<i64>().ok())
        .map_or(0, |pages| pages * page)
}

/// Opens `count` conversations through the facade from [`OPENERS`] tasks, keeping no ids.
async fn open_all(handover: &Handover, count: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut openers = tokio::task::JoinSet::new();
    for opener in 0..OPENERS {
        let share = count / OPENERS + usize::from(opener < count % OPENERS);
        let handover = handover.clone();
        openers.spawn(async move {
            let customer = CustomerId::new(handover_benches::CUSTOMER)?;
            let channel = Channel::new("bench")?;
            let human = HumanId::new(handover_benches::HUMAN)?;
            for _ in 0..share {
                loop {
                    match handover
                        .open_conversation(customer.clone(), channel.clone(), Some(human.clone()))
                        .await
                    {
                        Ok(_) => break,
                        // A full queue is back-pressure, not a failure: try again shortly.
                        Err(Error::Overloaded) => {
                            tokio::time::sleep(Duration::from_millis(1)).await
                        }
                        Err(error) => return Err(anyhow::Error::from(error)),
                    }
                }
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = openers.join_next().await {
        done??;
    }
    Ok(started.elapsed())
}

/// Appends `count` openings ([`handover_benches::opened`]), each to a stream of its own,
/// straight to `store`.
async fn append_opened(store: &SledStore, count: usize) -> anyhow::Result<()> {
    let mut appenders = tokio::task::JoinSet::new();
    for appender in 0..OPENERS {
        let store = store.clone();
        let numbers = (appender..count).step_by(OPENERS);
        appenders.spawn(async move {
            for n in numbers {
                let id = handover_benches::numbered_conversation_id(n as u64 + 1);
                let stream = StreamId::Conversation(id);
                store
                    .append(
                        &stream,
                        ExpectedVersion::NoStream,
                        handover_benches::opened(),
                    )
                    .await??;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(done) = appenders.join_next().await {
        done??;
    }
    Ok(())
}

async fn wait_until_passivated(handover: &Handover) -> anyhow::Result<Duration> {
    let started = Instant::now();
    while handover.live_conversations() > 0 {
        if started.elapsed() > PASSIVATION_WAIT_MAX {
            anyhow::bail!(
                "{} conversation actors still run after {PASSIVATION_WAIT_MAX:?}",
                handover.live_conversations()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(started.elapsed())
}

/// A measurement a phase reports to the parent process.
fn report(label: &str, base: Usage, now: Usage) {
    println!(
        "{REPORT_PREFIX}\t{label}\t{}\t{}\t{}",
        now.heap - base.heap,
        now.blocks - base.blocks,
        now.rss - base.rss
    );
}

fn start_config(dir: &std::path::Path, passivate_after: Option<Duration>) -> Config {
    Config::new(dir)
        .durability(Durability::Buffered)
        .passivate_after(passivate_after)
}

/// Live idle, passivation off.
async fn phase_live(count: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let handover = Handover::start(start_config(dir.path(), None)).await?;
    handover_benches::sign_in(&handover).await?;
    let base = Usage::settled().await;
    let opening = open_all(&handover, count).await?;
    anyhow::ensure!(
        handover.live_conversations() == count,
        "{} of {count} conversation actors run with passivation off",
        handover.live_conversations()
    );
    report(LIVE, base, Usage::settled().await);
    println!("{REPORT_PREFIX}\t{OPENING}\t{}", opening.as_millis());
    eprintln!(
        "live idle: {count} conversations opened in {opening:.1?} ({:.0}/s)",
        count as f64 / opening.as_secs_f64()
    );
    handover.shutdown().await;
    Ok(())
}

/// Live with a passivation timer armed in every actor, then passivated.
async fn phase_passivated(count: usize, passivate_after: Duration) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let handover = Handover::start(start_config(dir.path(), Some(passivate_after))).await?;
    handover_benches::sign_in(&handover).await?;
    let base = Usage::settled().await;
    let started = Instant::now();
    open_all(&handover, count).await?;
    let armed = Usage::settled().await;
    let still_live = handover.live_conversations();
    if still_live == count {
        report(ARMED, base, armed);
    } else {
        eprintln!(
            "passivation began before the measurement ({still_live} of {count} live after \
             {:.1?}); no armed-timer figure",
            started.elapsed()
        );
    }
    let waited = wait_until_passivated(&handover).await?;
    eprintln!(
        "passivated: the last actor stopped {waited:.1?} after the live measurement \
         (passivate_after {passivate_after:.1?})"
    );
    report(PASSIVATED, base, Usage::settled().await);
    handover.shutdown().await;
    Ok(())
}

/// The store alone: the records phases 1 and 2 write, without a runtime.
async fn phase_store(count: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let store = handover_benches::open_store(dir.path(), Durability::Buffered)?;
    let base = Usage::settled().await;
    append_opened(&store, count).await?;
    report(STORE, base, Usage::settled().await);
    Ok(())
}

/// Runs one phase in a child process (a fresh heap and resident set) and returns what it
/// reported, by label.
fn run_phase(
    phase: &str,
    count: usize,
    passivate_after: Option<Duration>,
) -> anyhow::Result<HashMap<String, Vec<i64>>> {
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command
        .env(PHASE_VAR, phase)
        .env(COUNT_VAR, count.to_string())
        .stderr(std::process::Stdio::inherit());
    if let Some(idle) = passivate_after {
        command.env(PASSIVATE_VAR, idle.as_millis().to_string());
    }
    let output = command.output()?;
    anyhow::ensure!(
        output.status.success(),
        "phase {phase} failed: {}",
        output.status
    );
    let mut reports = HashMap::new();
    for line in String::from_utf8(output.stdout)?.lines() {
        let mut fields = line.split('\t');
        if fields.next() != Some(REPORT_PREFIX) {
            continue;
        }
        let label = fields.next().unwrap_or_default().to_owned();
        let values = fields.map(str::parse).collect::<Result<Vec<i64>, _>>()?;
        reports.insert(label, values);
    }
    Ok(reports)
}

fn row(
    reports: &HashMap<String, Vec<i64>>,
    key: &str,
    label: &'static str,
    count: usize,
    target: Option<i64>,
) -> Option<Row> {
    let values = reports.get(key)?;
    let n = count as f64;
    Some(Row {
        label,
        heap: values[0] as f64 / n,
        blocks: values[1] as f64 / n,
        rss: values[2] as f64 / n,
        target,
    })
}

fn measure(count: usize) -> anyhow::Result<Vec<Row>> {
    let live = run_phase(LIVE, count, None)?;
    let opening = Duration::from_millis(
        live.get(OPENING)
            .and_then(|v| v.first())
            .map_or(10_000, |&ms| ms as u64),
    );
    // Room for the opening (as long as phase 1's, or longer) and the measurement.
    let passivate_after = opening * 2 + Duration::from_secs(5);
    let passivated = run_phase(PASSIVATED, count, Some(passivate_after))?;
    let store = run_phase(STORE, count, None)?;

    let missing = || anyhow::anyhow!("a phase did not report");
    let live_row = row(
        &live,
        LIVE,
        "live idle (passivation off)",
        count,
        Some(LIVE_TARGET),
    )
    .ok_or_else(missing)?;
    let armed_row = row(
        &passivated,
        ARMED,
        "live idle, passivation timer armed",
        count,
        Some(LIVE_TARGET),
    );
    let passivated_row = row(
        &passivated,
        PASSIVATED,
        "passivated",
        count,
        Some(PASSIVATED_TARGET),
    )
    .ok_or_else(missing)?;
    let store_row = row(
        &store,
        STORE,
        "store alone (sled: records, index, cache)",
        count,
        None,
    )
    .ok_or_else(missing)?;

    let mut rows = vec![
        live_row.minus(
            "runtime share of live idle (live - store)",
            &store_row,
            Some(LIVE_TARGET),
        ),
        passivated_row.minus(
            "runtime share of passivated (passivated - store)",
            &store_row,
            Some(PASSIVATED_TARGET),
        ),
    ];
    if let Some(armed) = &armed_row {
        rows.insert(
            1,
            armed.minus(
                "runtime share, timer armed (armed - store)",
                &store_row,
                Some(LIVE_TARGET),
            ),
        );
    }
    let mut all = vec![live_row];
    all.extend(armed_row);
    all.push(passivated_row);
    all.push(store_row);
    all.append(&mut rows);
    Ok(all)
}

fn print(rows: &[Row], count: usize) {
    println!();
    println!(
        "memory per conversation, {count} conversations, durability Buffered \
         (memory only), growth over a baseline taken after start-up, each phase in a \
         process of its own"
    );
    println!(
        "{:<52} {:>12} {:>12} {:>12} {:>8} {:>6}",
        "", "heap B/conv", "blocks/conv", "RSS B/conv", "target", "heap"
    );
    for row in rows {
        let (target, verdict) = match row.target {
            Some(target) if row.heap <= target as f64 => (target.to_string(), "ok"),
            Some(target) => (target.to_string(), "OVER"),
            None => ("-".to_owned(), ""),
        };
        println!(
            "{:<52} {:>12.0} {:>12.2} {:>12.0} {:>8} {:>6}",
            row.label, row.heap, row.blocks, row.rss, target, verdict
        );
    }
    println!();
    println!(
        "heap: bytes requested from stats_alloc's instrumented System allocator and not yet \
         freed (malloc adds about 8-16 B per block on top); blocks: allocations not yet freed."
    );
    println!(
        "RSS: /proc/self/statm; glibc keeps freed memory, so RSS after passivation \
         overstates what passivated conversations hold."
    );
    println!(
        "sizes: Conversation {} B, ConversationId {} B, StreamId {} B, Option<StoreError> {} B",
        std::mem::size_of::<handover_core::Conversation>(),
        std::mem::size_of::<handover::ConversationId>(),
        std::mem::size_of::<StreamId>(),
        std::mem::size_of::<Option<handover::StoreError>>(),
    );
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; this bench takes no arguments of its own.
    let count = std::env::var(COUNT_VAR)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CONVERSATIONS)
        .max(1);
    let Ok(phase) = std::env::var(PHASE_VAR) else {
        let rows = measure(count)?;
        print(&rows, count);
        return Ok(());
    };
    let runtime = handover_benches::runtime();
    match phase.as_str() {
        LIVE => runtime.block_on(phase_live(count)),
        PASSIVATED => {
            let idle = std::env::var(PASSIVATE_VAR)?.parse()?;
            runtime.block_on(phase_passivated(count, Duration::from_millis(idle)))
        }
        STORE => runtime.block_on(phase_store(count)),
        other => anyhow::bail!("unknown phase {other}"),
    }
}
