//! Acknowledgement latency of durable commands at 1,000 concurrent conversations, beside the
//! latency of one `fdatasync` on the same disk.
//!
//! Cases, all with `Durability::Durable`:
//! - closed loop, customer messages: each of the 1,000 conversations posts its next message as
//!   soon as the previous one is acknowledged;
//! - open loop, customer messages: the same 1,000 conversations together offer a fixed rate,
//!   spread evenly over time and over conversations, each still with at most one command in
//!   flight. The rates are fixed ones and half the closed loop's measured message rate;
//! - closed loop, handoffs: each of 1,000 other conversations hands off to an AI agent, then
//!   reclaims, again and again; both commands are timed, each on its own row.
//!
//! A saturating closed loop keeps every conversation waiting in the queue, so its mean latency
//! is concurrency / throughput (Little's law) whatever the write path costs; the open loop shows
//! the latency a user sees below saturation. Each latency is also printed as a multiple of the
//! `fdatasync` median, measured before and after the cases. Run with
//! `cargo bench -p handover-benches --bench ack_latency`.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use handover::{
    AgentError, AgentName, AiAgentBehavior, AiAgentId, AiAgentProfile, AiSession, ConversationId,
    Durability, Error, Handover, HumanId, MessageText, Specialty,
};
use handover_store::StoreStats;
use tokio::task::JoinSet;

/// Concurrent conversations in every case.
const CONVERSATIONS: usize = 1_000;

/// How long each case runs before its samples count.
const WARM_UP: Duration = Duration::from_secs(2);

/// How long each case is measured.
const MEASURE: Duration = Duration::from_secs(8);

/// `fdatasync` samples on a plain file, taken before the cases and again after them.
const FDATASYNC_SAMPLES: usize = 300;

/// Fixed total offered rates of the open-loop cases, in commands per second.
const OPEN_LOOP_RATES: [f64; 2] = [1_000.0, 5_000.0];

/// The further open-loop case offers this fraction of the closed loop's message rate.
const OPEN_LOOP_SHARE_OF_CAPACITY: f64 = 0.5;

/// The AI agent of the handoff case.
const AGENT: &str = "bench-bot";

/// The human who hands off and reclaims.
const HUMAN: &str = "bench-human";

/// An AI agent that never answers, so the handoff case times the handoff alone. The handoff
/// conversations hold no customer message, so the default `on_handoff` answers nothing either.
///
/// Written out as `async_trait` expands it, which keeps the bench free of that macro.
struct Silent;

impl AiAgentBehavior for Silent {
    fn on_customer_message<'life0, 'life1, 'life2, 'async_trait>(
        &'life0 self,
        _: &'life1 AiSession,
        _: &'life2 MessageText,
    ) -> Pin<Box<dyn Future<Output = Result<(), AgentError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        'life2: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async { Ok(()) })
    }
}

/// What one conversation's task measured: latencies in microseconds, one list per kind of
/// command in its cycle.
#[derive(Default)]
struct Samples {
    micros: Vec<Vec<u64>>,
    overloaded: u64,
    /// Open loop: commands that fell due while the previous one was still in flight.
    late: u64,
    /// Conversations that had no command acknowledged in the measured window (0 or 1 per task).
    stalled: u64,
    /// The longest command of the case, warm-up and the end of the run included: a command
    /// that stalls through the whole window leaves no sample in it.
    worst_micros: u64,
}

impl Samples {
    fn new(kinds: usize) -> Samples {
        Samples {
            micros: vec![Vec::new(); kinds],
            ..Samples::default()
        }
    }

    fn merge(&mut self, other: Samples) {
        for (all, more) in self.micros.iter_mut().zip(other.micros) {
            all.extend(more);
        }
        self.overloaded += other.overloaded;
        self.late += other.late;
        self.stalled += other.stalled;
        self.worst_micros = self.worst_micros.max(other.worst_micros);
    }
}

/// The percentiles of one set of samples, in microseconds.
struct Summary {
    count: usize,
    mean: f64,
    p50: u64,
    p99: u64,
    max: u64,
}

impl Summary {
    fn of(mut micros: Vec<u64>) -> Summary {
        micros.sort_unstable();
        let at = |q: f64| {
            if micros.is_empty() {
                return 0;
            }
            let rank = ((micros.len() as f64 * q).ceil() as usize).clamp(1, micros.len());
            micros[rank - 1]
        };
        Summary {
            count: micros.len(),
            mean: micros.iter().sum::<u64>() as f64 / micros.len().max(1) as f64,
            p50: at(0.50),
            p99: at(0.99),
            max: micros.last().copied().unwrap_or(0),
        }
    }
}

/// One line of the table.
struct Row {
    case: String,
    /// Acknowledged commands per second in the window, every kind of the case counted.
    commands_per_second: f64,
    latency: Summary,
    /// Closed loop: `CONVERSATIONS / commands_per_second`, the mean latency Little's law forces.
    little_micros: Option<f64>,
    /// Open loop: commands sent late because the previous one was still in flight.
    late: Option<u64>,
    stats: StoreStats,
    overloaded: u64,
    /// Conversations with no command acknowledged in the window.
    stalled: u64,
    /// The longest command of the case, whenever it ran.
    worst_micros: u64,
}

fn main() -> anyhow::Result<()> {
    let load_before = load_average();
    let dir = tempfile::tempdir()?;
    let fdatasync_before = fdatasync_latencies(dir.path())?;
    let runtime = handover_benches::runtime();
    let rows = runtime.block_on(run(&dir.path().join("handover")))?;
    let fdatasync_after = fdatasync_latencies(dir.path())?;
    print_table(&[fdatasync_before, fdatasync_after], &rows);
    println!(
        "load average (1, 5, 15 min): before {load_before}, after {}",
        load_average()
    );
    Ok(())
}

/// Appends the payload's record to a plain file and syncs it, [`FDATASYNC_SAMPLES`] times.
fn fdatasync_latencies(dir: &Path) -> anyhow::Result<Vec<u64>> {
    let payload = handover_benches::encoded_payload();
    let mut file = handover_benches::SyncedFile::create(dir)?;
    let mut micros = Vec::with_capacity(FDATASYNC_SAMPLES);
    for _ in 0..FDATASYNC_SAMPLES {
        let started = Instant::now();
        file.append(&payload)?;
        micros.push(started.elapsed().as_micros() as u64);
    }
    Ok(micros)
}

/// The machine's load average, which tells whether other work shared the disk and the cores.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|line| {
            line.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".to_owned())
}

async fn run(dir: &Path) -> anyhow::Result<Vec<Row>> {
    let handover = handover_benches::start(dir, Durability::Durable).await?;
    let agent = AiAgentId::new(AGENT)?;
    handover
        .register_ai_agent(AiAgentProfile {
            id: agent.clone(),
            name: AgentName::new("Bench bot")?,
            specialties: vec![Specialty::new("faq")?],
        })
        .await?;
    handover.activate_ai_agent(agent.clone()).await?;
    handover.attach_ai_agent(agent.clone(), Arc::new(Silent))?;
    let posting = handover_benches::open_conversations_at_once(&handover, CONVERSATIONS).await?;
    let handing_off =
        handover_benches::open_conversations_at_once(&handover, CONVERSATIONS).await?;

    let mut rows = closed_loop(
        &handover,
        &posting,
        &["closed loop: customer message"],
        |handover, id| async move {
            let started = Instant::now();
            handover_benches::post(&handover, id).await?;
            Ok(vec![started.elapsed()])
        },
    )
    .await?;
    let capacity = rows[0].commands_per_second;
    let mut rates = OPEN_LOOP_RATES.to_vec();
    rates.push(
        (capacity * OPEN_LOOP_SHARE_OF_CAPACITY / 1_000.0)
            .floor()
            .max(1.0)
            * 1_000.0,
    );
    for rate in rates {
        rows.push(open_loop(&handover, &posting, rate).await?);
    }
    // The handoff loop runs last: it leaves the AI agent a backlog to work off.
    rows.extend(
        closed_loop(
            &handover,
            &handing_off,
            &["closed loop: handoff", "closed loop: reclaim (same loop)"],
            |handover, id| async move {
                let human = HumanId::new(HUMAN)?;
                let started = Instant::now();
                handover
                    .hand_off_to_ai(id, human.clone(), AiAgentId::new(AGENT)?, None)
                    .await?;
                let handed_off = started.elapsed();
                let started = Instant::now();
                // An overloaded reclaim is retried: the next handoff needs a human-handled
                // conversation.
                loop {
                    match handover.reclaim(id, human.clone(), None).await {
                        Err(Error::Overloaded) => tokio::task::yield_now().await,
                        reclaimed => break reclaimed.map(drop)?,
                    }
                }
                Ok(vec![handed_off, started.elapsed()])
            },
        )
        .await?,
    );
    handover.shutdown().await;
    Ok(rows)
}

/// Runs `cycle` on every conversation in a closed loop: warm up, then measure. `cycle` returns
/// the latency of each of its commands, in the order of `kinds`; a cycle counts when it
/// started in the measured window.
async fn closed_loop<F, Fut>(
    handover: &Handover,
    ids: &[ConversationId],
    kinds: &[&str],
    cycle: F,
) -> anyhow::Result<Vec<Row>>
where
    F: Fn(Handover, ConversationId) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<Vec<Duration>>> + Send,
{
    let start = Instant::now();
    let (measure_from, measure_to) = (start + WARM_UP, start + WARM_UP + MEASURE);
    let mut tasks = JoinSet::new();
    for &id in ids {
        let (handover, cycle) = (handover.clone(), cycle.clone());
        let kinds = kinds.len();
        tasks.spawn(async move {
            let mut samples = Samples::new(kinds);
            let mut progressed = false;
            loop {
                let sent = Instant::now();
                if sent >= measure_to {
                    samples.stalled = u64::from(!progressed);
                    return samples;
                }
                let outcome = cycle(handover.clone(), id).await;
                let done = Instant::now();
                progressed |= (measure_from..measure_to).contains(&done);
                if let Ok(latencies) = &outcome {
                    let longest = latencies.iter().max().copied().unwrap_or_default();
                    samples.worst_micros = samples.worst_micros.max(longest.as_micros() as u64);
                }
                match outcome {
                    Ok(latencies) if sent >= measure_from => {
                        for (kind, latency) in latencies.into_iter().enumerate() {
                            samples.micros[kind].push(latency.as_micros() as u64);
                        }
                    }
                    Ok(_) => {}
                    Err(error) if is_overloaded(&error) => samples.overloaded += 1,
                    Err(error) => panic!("closed loop: {error}"),
                }
            }
        });
    }
    let stats = window_stats(handover, measure_from, measure_to).await;
    let samples = join(tasks, kinds.len()).await?;
    let commands = samples.micros.iter().map(Vec::len).sum::<usize>();
    let commands_per_second = commands as f64 / MEASURE.as_secs_f64();
    Ok(kinds
        .iter()
        .zip(samples.micros)
        .map(|(kind, micros)| Row {
            case: (*kind).to_owned(),
            commands_per_second,
            latency: Summary::of(micros),
            little_micros: Some(CONVERSATIONS as f64 / commands_per_second.max(1e-9) * 1e6),
            late: None,
            stats,
            overloaded: samples.overloaded,
            stalled: samples.stalled,
            worst_micros: samples.worst_micros,
        })
        .collect())
}

/// The conversations together offer `rate` customer messages per second: conversation `i`
/// posts at `i / rate`, then every `CONVERSATIONS / rate` seconds; a post that falls due while
/// its conversation still waits is sent as soon as the previous one is acknowledged (and
/// counted as late). Latency runs from the send.
async fn open_loop(handover: &Handover, ids: &[ConversationId], rate: f64) -> anyhow::Result<Row> {
    let start = Instant::now() + Duration::from_millis(50);
    let (measure_from, measure_to) = (start + WARM_UP, start + WARM_UP + MEASURE);
    let period = Duration::from_secs_f64(ids.len() as f64 / rate);
    let mut tasks = JoinSet::new();
    for (index, &id) in ids.iter().enumerate() {
        let handover = handover.clone();
        let mut due = start + Duration::from_secs_f64(index as f64 / rate);
        tasks.spawn(async move {
            let mut samples = Samples::new(1);
            let mut progressed = false;
            while due < measure_to {
                let late = Instant::now() > due;
                tokio::time::sleep_until(due.into()).await;
                let sent = Instant::now();
                let outcome = handover_benches::post(&handover, id).await;
                let elapsed = sent.elapsed();
                progressed |= (measure_from..measure_to).contains(&Instant::now());
                samples.worst_micros = samples.worst_micros.max(elapsed.as_micros() as u64);
                match outcome {
                    Ok(()) if due >= measure_from => {
                        samples.micros[0].push(elapsed.as_micros() as u64);
                        samples.late += u64::from(late);
                    }
                    Ok(()) => {}
                    Err(error) if is_overloaded(&error) => samples.overloaded += 1,
                    Err(error) => panic!("open loop: {error}"),
                }
                due += period;
            }
            samples.stalled = u64::from(!progressed);
            samples
        });
    }
    let stats = window_stats(handover, measure_from, measure_to).await;
    let mut samples = join(tasks, 1).await?;
    let micros = samples.micros.pop().unwrap_or_default();
    Ok(Row {
        case: format!("open loop {rate:.0}/s: customer message"),
        commands_per_second: micros.len() as f64 / MEASURE.as_secs_f64(),
        latency: Summary::of(micros),
        little_micros: None,
        late: Some(samples.late),
        stats,
        overloaded: samples.overloaded,
        stalled: samples.stalled,
        worst_micros: samples.worst_micros,
    })
}

fn is_overloaded(error: &anyhow::Error) -> bool {
    matches!(error.downcast_ref::<Error>(), Some(Error::Overloaded))
}

/// The store's counters over `[from, to)`: what the case made the store do while measured.
async fn window_stats(handover: &Handover, from: Instant, to: Instant) -> StoreStats {
    tokio::time::sleep_until(from.into()).await;
    let before = handover.store_stats();
    tokio::time::sleep_until(to.into()).await;
    let after = handover.store_stats();
    StoreStats {
        appends: after.appends - before.appends,
        events: after.events - before.events,
        groups: after.groups - before.groups,
        syncs: after.syncs - before.syncs,
    }
}

async fn join(mut tasks: JoinSet<Samples>, kinds: usize) -> anyhow::Result<Samples> {
    let mut all = Samples::new(kinds);
    while let Some(samples) = tasks.join_next().await {
        all.merge(samples?);
    }
    Ok(all)
}

fn print_table(fdatasync: &[Vec<u64>; 2], rows: &[Row]) {
    let [before, after] = fdatasync;
    let unit = Summary::of(before.iter().chain(after).copied().collect());
    let [before, after] = [Summary::of(before.clone()), Summary::of(after.clone())];
    println!(
        "durability: Durable; {CONVERSATIONS} conversations; warm-up {} s, measured {} s per case",
        WARM_UP.as_secs(),
        MEASURE.as_secs()
    );
    println!(
        "fdatasync of a {}-byte append to a plain file, in us: p50 {}, p99 {}, max {} \
         ({} samples; before the cases p50 {} p99 {}, after them p50 {} p99 {})",
        handover_benches::encoded_payload().len(),
        unit.p50,
        unit.p99,
        unit.max,
        unit.count,
        before.p50,
        before.p99,
        after.p50,
        after.p99,
    );
    println!();
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>7} {:>8} {:>8} {:>8} {:>6} {:>9} {:>8} {:>5}",
        "case",
        "cmds/s",
        "mean us",
        "p50 us",
        "p99 us",
        "max us",
        "worst us",
        "stalled",
        "p50/fds",
        "p99/fds",
        "N/X us",
        "late",
        "syncs/ev",
        "ev/group",
        "over"
    );
    let unit = unit.p50.max(1) as f64;
    for row in rows {
        let stats = &row.stats;
        let ratio = |a: u64, b: u64| a as f64 / b.max(1) as f64;
        println!(
            "{:<34} {:>8.0} {:>8.0} {:>8} {:>8} {:>8} {:>9} {:>7} {:>8.2} {:>8.2} {:>8} {:>6} {:>9.4} {:>8.1} {:>5}",
            row.case,
            row.commands_per_second,
            row.latency.mean,
            row.latency.p50,
            row.latency.p99,
            row.latency.max,
            row.worst_micros,
            row.stalled,
            row.latency.p50 as f64 / unit,
            row.latency.p99 as f64 / unit,
            row.little_micros
                .map_or_else(|| "-".to_owned(), |micros| format!("{micros:.0}")),
            row.late.map_or_else(|| "-".to_owned(), |late| late.to_string()),
            ratio(stats.syncs, stats.events),
            ratio(stats.events, stats.groups),
            row.overloaded,
        );
    }
    println!();
    println!(
        "cmds/s: acknowledged commands per second of the case, every kind counted (the handoff \
         loop's rows share theirs). mean..max: commands sent in the measured window. worst us: \
         the longest command of the case, warm-up and the end of the run included. stalled: \
         conversations with no command acknowledged in the window (their commands leave no \
         sample, so the percentiles then describe the others only). p50/fds, p99/fds: the latency over the fdatasync p50. N/X: \
         {CONVERSATIONS} over cmds/s, the mean latency Little's law forces on a closed loop \
         (above the mean when conversations stall). \
         late: open-loop commands that fell due while the previous one was in flight. syncs/ev, \
         ev/group: store counters over the measured window. over: commands refused as \
         overloaded. Open-loop sends wait on tokio's timer (1 ms resolution); latency runs from \
         the actual send."
    );
}
