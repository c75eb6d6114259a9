//! `handover bench`: what durability costs on this disk, in the spirit of `pgbench` and
//! `etcdctl check perf`.
//!
//! A closed loop: N conversations each post a customer message, wait for its durable
//! acknowledgement, and post the next, for S seconds, through the facade. It reports events per
//! second, syncs per event, the acknowledgement latency, and, measured in the same run, how long
//! this disk takes to `fdatasync` a small write: the floor under a durable acknowledgement. On a
//! PostgreSQL database (`--database-url`) the log is the server's, so there is no disk of ours
//! to measure: the fdatasync figure is not applicable.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use handover::{Channel, Config, CustomerId, Handover, MessageText, RuntimeSettings};
use handover_postgres::PostgresOptions;
use serde::Serialize;

use crate::simulate::{count_up_to, DurabilityArg, INTERRUPTED};
use crate::{database, terminal};

/// Most conversations one bench may keep busy.
const BENCH_CONVERSATIONS_MAX: usize = 100_000;
/// Longest bench run, in seconds.
const BENCH_SECONDS_MAX: usize = 3_600;
/// How many write-and-fdatasync rounds measure the disk's sync time.
const FSYNC_SAMPLES: usize = 200;
/// The size of each of those writes, in bytes: about one small group of events.
const FSYNC_WRITE_BYTES: usize = 4096;
/// How often the progress bar is redrawn.
const PROGRESS_TICK: Duration = Duration::from_millis(200);
/// How long a conversation waits before it retries a command the runtime refused as
/// overloaded.
const OVERLOADED_BACKOFF: Duration = Duration::from_millis(1);

/// Where `handover bench` writes its log: a data directory or a database, exactly one.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub(crate) struct BenchLogArgs {
    /// Data directory for the bench's log (created if missing; it must be empty).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// PostgreSQL database for the bench's log, e.g. `postgres://user:password@host/db` (its
    /// log must be empty). The disk's fdatasync is then not measured.
    #[arg(long, value_name = "URL", env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// Options of `handover bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    log: BenchLogArgs,
    /// How many conversations post at the same time, each one message at a time
    /// (1 to 100,000).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = count_up_to::<BENCH_CONVERSATIONS_MAX>)]
    conversations: usize,
    /// How long to post, in seconds (1 to 3600).
    #[arg(long, value_name = "S", default_value_t = 10, value_parser = count_up_to::<BENCH_SECONDS_MAX>)]
    seconds: usize,
    /// What an acknowledged message survives. Not with `--database-url`: there an
    /// acknowledged message is a committed transaction.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Durable, conflicts_with = "database_url")]
    durability: DurabilityArg,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Print no progress bar (there is none anyway when stderr is not a terminal).
    #[arg(long, short)]
    quiet: bool,
}

/// What the bench measured. Serialises to the JSON `handover bench --json` prints.
#[derive(Debug, Serialize)]
struct BenchReport {
    /// Conversations posting at the same time.
    conversations: u64,
    /// What an acknowledged message survived: `durable`, `process-crash` or `buffered`, or
    /// `database` (a committed transaction).
    durability: &'static str,
    /// How long the messages were posted, in milliseconds.
    elapsed_ms: u64,
    /// Customer messages acknowledged during that time (one event each).
    events: u64,
    /// Those events per second.
    events_per_s: u64,
    /// Sync calls the store made during the run, the opens included.
    syncs: u64,
    /// Syncs per event the store wrote (0 with `buffered`).
    syncs_per_event: f64,
    /// Command-to-acknowledgement latency, in microseconds: median, 99th percentile, slowest.
    ack_p50_us: u64,
    ack_p99_us: u64,
    ack_max_us: u64,
    /// The median time to write 4 KiB to a file in the data directory and `fdatasync` it;
    /// `None` (null) on a database, whose disk is the server's.
    fsync_us: Option<u64>,
    /// Commands refused as overloaded and retried.
    overloaded_retries: u64,
    /// Ctrl-C stopped the run early.
    interrupted: bool,
}

/// Where the bench's log lives.
enum Place<'a> {
    Dir(&'a Path),
    Database(&'a str),
}

pub(crate) fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let place = match (&args.log.data, &args.log.database_url) {
        (Some(dir), _) => Place::Dir(dir),
        (None, Some(url)) => Place::Database(url),
        // clap requires one of the two.
        (None, None) => bail!("give --data DIR or --database-url URL"),
    };
    let fsync = match place {
        Place::Dir(dir) => {
            terminal::check_data_dir(dir, terminal::Existing::Refuse)?;
            terminal::init_logging()?;
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
            Some(measure_fsync(dir)?)
        }
        Place::Database(_) => {
            terminal::init_logging()?;
            None
        }
    };
    let runtime = terminal::async_runtime()?;
    let report = runtime.block_on(async {
        let stop = terminal::interrupt()?;
        bench(&args, place, fsync, stop).await
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", human_readable(&report));
    }
    Ok(if report.interrupted {
        ExitCode::from(INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// The median time to write a small block and `fdatasync` it, in the directory the log lives
/// in, so the figure is this disk's and this file system's. The file is removed afterwards.
fn measure_fsync(dir: &Path) -> anyhow::Result<Duration> {
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let block = vec![0x5a_u8; FSYNC_WRITE_BYTES];
    let mut samples = Vec::with_capacity(FSYNC_SAMPLES);
    for _ in 0..FSYNC_SAMPLES {
        let started = Instant::now();
        file.write_all(&block)
            .and_then(|()| file.sync_data())
            .with_context(|| format!("cannot write and sync {}", path.display()))?;
        samples.push(started.elapsed());
    }
    drop(file);
    std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    samples.sort();
    Ok(samples[samples.len() / 2])
}

async fn bench(
    args: &BenchArgs,
    place: Place<'_>,
    fsync: Option<Duration>,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<BenchReport> {
    let (handover, durability) = match place {
        Place::Dir(dir) => {
            let durability = handover::Durability::from(args.durability);
            let handover = Handover::start(Config::new(dir).durability(durability)).await?;
            (handover, durability.name())
        }
        Place::Database(url) => {
            let store = database::connect(url, PostgresOptions::default()).await?;
            if database::holds_a_log(&store, url).await? {
                bail!(
                    "the {} already holds a log; give an empty database",
                    database::name(url)
                );
            }
            let handover =
                Handover::start_with_store(Arc::new(store), RuntimeSettings::default()).await?;
            (handover, "database")
        }
    };
    let result = drive(&handover, args, stop).await;
    let latency = handover.ack_latency();
    let store = handover.store_stats();
    handover.shutdown().await;
    let (events, elapsed, overloaded_retries, interrupted) = result?;
    Ok(BenchReport {
        conversations: u64::try_from(args.conversations)?,
        durability,
        elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        events,
        // Counts are far below 2^52: the float keeps them exactly.
        events_per_s: (events as f64 / elapsed.as_secs_f64().max(1e-9)) as u64,
        syncs: store.syncs,
        syncs_per_event: store.syncs_per_event(),
        ack_p50_us: micros(latency.p50),
        ack_p99_us: micros(latency.p99),
        ack_max_us: micros(latency.max),
        fsync_us: fsync.map(micros),
        overloaded_retries,
        interrupted,
    })
}

/// Opens the conversations, then lets each post in a closed loop until the time is up or
/// `stop` completes. Returns the messages acknowledged, the time they took, the overloaded
/// retries and whether the run was interrupted.
async fn drive(
    handover: &Handover,
    args: &BenchArgs,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<(u64, Duration, u64, bool)> {
    let channel = Channel::new("bench")?;
    let mut conversations = Vec::with_capacity(args.conversations);
    for i in 0..args.conversations {
        let customer = CustomerId::new(format!("bench-customer-{i}"))?;
        let id = handover
            .open_conversation(customer.clone(), channel.clone(), None)
            .await?
            .conversation_id;
        conversations.push((id, customer));
    }
    let done = Arc::new(AtomicBool::new(false));
    let events = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (id, customer) in conversations {
        let (handover, done, events, retries) = (
            handover.clone(),
            Arc::clone(&done),
            Arc::clone(&events),
            Arc::clone(&retries),
        );
        tasks.spawn(async move {
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                n += 1;
                let text = MessageText::new(format!("bench message {n}"))?;
                match handover
                    .post_customer_message(id, customer.clone(), text)
                    .await
                {
                    Ok(_) => {
                        events.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) if error.is_retryable() => {
                        retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(OVERLOADED_BACKOFF).await;
                    }
                    Err(error) => return Err(anyhow::Error::from(error)),
                }
            }
            Ok(())
        });
    }
    let seconds = u64::try_from(args.seconds)?;
    let bar = terminal::progress_bar(args.quiet, args.seconds, "s");
    let ticker = {
        let (bar, events) = (bar.clone(), Arc::clone(&events));
        async move {
            let mut tick = tokio::time::interval(PROGRESS_TICK);
            loop {
                tick.tick().await;
                bar.set_position(started.elapsed().as_secs());
                bar.set_message(format!("{} events", events.load(Ordering::Relaxed)));
            }
        }
    };
    let interrupted = tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(seconds)) => false,
        () = stop => true,
        () = ticker => false,
    };
    bar.finish_and_clear();
    done.store(true, Ordering::Relaxed);
    // Messages still in flight when the time is up finish; they count, and so does their time.
    while let Some(task) = tasks.join_next().await {
        task.context("a bench task panicked")??;
    }
    let elapsed = started.elapsed();
    let events = events.load(Ordering::Relaxed);
    if events == 0 && !interrupted {
        bail!("no message was acknowledged in {seconds} s");
    }
    Ok((
        events,
        elapsed,
        retries.load(Ordering::Relaxed),
        interrupted,
    ))
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn human_readable(report: &BenchReport) -> String {
    let mut text = format!(
        "{} conversations posting for {:.1} s, durability {}{}\n",
        report.conversations,
        report.elapsed_ms as f64 / 1000.0,
        report.durability,
        if report.interrupted {
            " (interrupted)"
        } else {
            ""
        },
    );
    text.push_str(&format!(
        "  events          {:>10}  ({} events/s)\n",
        report.events, report.events_per_s
    ));
    text.push_str(&format!(
        "  syncs           {:>10}  ({:.4} per event)\n",
        report.syncs, report.syncs_per_event
    ));
    text.push_str(&format!(
        "  acknowledged in {:>10} us p50, {} us p99, {} us max\n",
        report.ack_p50_us, report.ack_p99_us, report.ack_max_us
    ));
    match report.fsync_us {
        Some(fsync_us) => text.push_str(&format!(
            "  disk fdatasync  {fsync_us:>10} us  (median of {FSYNC_SAMPLES} writes of {FSYNC_WRITE_BYTES} bytes)\n"
        )),
        None => text.push_str(
            "  disk fdatasync  not applicable  (the log is in a database, on the server's disk)\n",
        ),
    }
    if report.overloaded_retries > 0 {
        text.push_str(&format!(
            "  overloaded      {:>10}  (commands refused and retried)\n",
            report.overloaded_retries
        ));
    }
    text
}
