//! Durable appends on PostgreSQL, in one group and on one throwaway cluster started for the
//! whole run (the server binaries of Debian's `postgresql` package, `fsync` on):
//!
//! - `facade/N`: customer messages through `Handover` on a `PostgresStore` with
//!   `Durability::Durable` (`synchronous_commit = on`) on N conversations at once (1, 100,
//!   1,000), the same closed loop as `facade_durable/N` on sled
//!   ([`handover_benches::post_closed_loop`]); one iteration is one event;
//! - `baseline_multirow_100`: what PostgreSQL does without the store, measured on the same
//!   server in the same run: one connection, `synchronous_commit = on`, transactions of one
//!   multi-row `INSERT` of 100 rows (100 streams, the primary key shape of `handover_events`,
//!   the record bytes the store writes); one iteration is one transaction, 100 rows;
//! - `feed_lag`: two stores on one database; one event appended on the first, then awaited on
//!   the second's `subscribe()`. Criterion measures the round trip; the lag, from the first's
//!   acknowledgement to the arrival on the second, is printed as p50/p99/max (0 when it arrived
//!   first).
//!
//! Throughput is in events (rows for the baseline). The bench prints (stderr) the store's
//! syncs, groups and appends per event and, for the facade and the baseline, the rate over
//! every iteration criterion ran (warm-up included); then (stdout) the feed's lag and a
//! summary with the ratio of `facade/1000` to the baseline, the figures the goals are set in.
//!
//! Group settings would override the command line, so the defaults (flat sampling of 10
//! samples) are set on `Criterion` before `configure_from_args`: `--measurement-time` and
//! `--warm-up-time` apply.

// A bench binary has no public API.
#![allow(missing_docs)]

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use handover::{Durability, Handover, RuntimeSettings, TenantId};
use handover_benches::measure_closed_loop;
use handover_core::StreamId;
use handover_postgres::{NodeOptions, PostgresOptions, PostgresStore};
use handover_store::{EventStore, ExpectedVersion};
use handover_testkit::PgCluster;
use tokio::runtime::Runtime;
use tokio::sync::broadcast::error::RecvError;
use tokio_postgres::types::ToSql;

/// Concurrent conversations posting at once in the facade benchmarks.
const CONCURRENT_CONVERSATIONS: [usize; 3] = [1, 100, 1_000];

/// Rows per transaction of the baseline, one per stream.
const BASELINE_ROWS: usize = 100;

/// The goals, on a 2-core machine that also runs the database: `facade/1000` at least this
/// share of the baseline's rows per second...
const GOAL_SHARE_OF_BASELINE: f64 = 0.5;

/// ... and above this many events per second, the best published figure for Akka persistence
/// on one PostgreSQL.
const GOAL_EVENTS_PER_SECOND: f64 = 27_000.0;

/// What the run measured, for the summary.
#[derive(Default)]
struct Figures {
    /// Events per second of each facade case that ran, by conversations.
    facade: Vec<(usize, f64)>,
    /// Rows per second of the baseline, when it ran.
    baseline: Option<f64>,
    /// Commands per second of one conversation on two nodes: sent to the tenant's owner, and
    /// sent to the other node (forwarded), when they ran.
    forwarding: (Option<f64>, Option<f64>),
}

fn main() {
    // Dropped last, after criterion is done: dropping it stops the server.
    let cluster = PgCluster::start();
    let mut criterion = Criterion::default().sample_size(10).configure_from_args();
    let figures = postgres_appends(&mut criterion, &cluster);
    criterion.final_summary();
    summarize(&figures);
    drop(cluster);
}

fn postgres_appends(c: &mut Criterion, cluster: &PgCluster) -> Figures {
    let runtime = handover_benches::runtime();
    let mut figures = Figures::default();
    let mut group = c.benchmark_group("postgres_appends");
    // Flat sampling: one iteration is a durable commit, or part of one, so a linear series
    // would need thousands of iterations in its last sample.
    group.sampling_mode(SamplingMode::Flat);

    facade(&mut group, &runtime, cluster, &mut figures);
    baseline(&mut group, &runtime, cluster, &mut figures);
    feed_lag(&mut group, &runtime, cluster);
    forwarding(&mut group, &runtime, cluster, &mut figures);
    group.finish();
    figures
}

/// A store on `url` that acknowledges only what is flushed to the database's disk.
async fn connect(url: &str) -> PostgresStore {
    let mut options = PostgresOptions::default();
    options.durability = Durability::Durable;
    PostgresStore::connect(url, options)
        .await
        .expect("the store connects")
}

fn facade(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &Runtime,
    cluster: &PgCluster,
    figures: &mut Figures,
) {
    for concurrent in CONCURRENT_CONVERSATIONS {
        let url = cluster.create_database(&format!("facade_{concurrent}"));
        let (handover, ids) = runtime.block_on(async {
            let store = connect(&url).await;
            let handover = Handover::start_with_store(Arc::new(store), RuntimeSettings::default())
                .await
                .expect("the runtime starts");
            handover_benches::sign_in(&handover)
                .await
                .expect("the human signs in");
            let ids = handover_benches::open_conversations_at_once(&handover, concurrent)
                .await
                .expect("the conversations open");
            (handover, ids)
        });
        if let Some(rate) = measure_closed_loop(group, "facade", runtime, &handover, &ids) {
            figures.facade.push((concurrent, rate));
        }
        runtime.block_on(handover.shutdown());
    }
}

/// Two nodes of one cluster on one database; one conversation of a tenant the first owns,
/// posted to one command at a time on the owner (`owner_post/1`), then on the other node
/// (`forwarded_post/1`), which forwards each command to the owner through the database. The
/// ratio is what forwarding costs a command.
fn forwarding(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &Runtime,
    cluster: &PgCluster,
    figures: &mut Figures,
) {
    let url = cluster.create_database("forwarding");
    let (owner, other, ids) = runtime.block_on(async {
        let node = || async {
            let mut options = PostgresOptions::default();
            options.durability = Durability::Durable;
            options.node = Some(NodeOptions::default());
            Handover::start_node(&url, options, RuntimeSettings::default())
                .await
                .expect("a node starts")
        };
        let (a, b) = (node().await, node().await);
        let tenant = TenantId::default_tenant();
        // Until the leases are split: one of the two owns the default tenant, the other not.
        let named = |i: usize| TenantId::new(format!("t-{i}")).expect("a valid tenant");
        let guard = Instant::now();
        let (owner, other) = loop {
            let split = (0..64).any(|i| a.owns_tenant(&named(i)))
                && (0..64).any(|i| b.owns_tenant(&named(i)));
            match (split, a.owns_tenant(&tenant), b.owns_tenant(&tenant)) {
                (true, true, false) => break (a, b),
                (true, false, true) => break (b, a),
                _ => {}
            }
            assert!(
                guard.elapsed() < Duration::from_secs(120),
                "the leases never split"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        handover_benches::sign_in(&owner)
            .await
            .expect("the human signs in");
        let ids = handover_benches::open_conversations_at_once(&owner, 1)
            .await
            .expect("the conversation opens");
        (owner, other, ids)
    });
    figures.forwarding.0 = measure_closed_loop(group, "owner_post", runtime, &owner, &ids);
    figures.forwarding.1 = measure_closed_loop(group, "forwarded_post", runtime, &other, &ids);
    runtime.block_on(async {
        other.shutdown().await;
        owner.shutdown().await;
    });
}

/// `INSERT` of `rows` rows of four parameters each into `baseline_events`.
fn multirow_insert(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let p = row * 4;
            format!("(${}, ${}, ${}, ${})", p + 1, p + 2, p + 3, p + 4)
        })
        .collect();
    format!(
        "INSERT INTO baseline_events (stream_kind, stream_id, seq, payload) VALUES {}",
        values.join(", ")
    )
}

fn baseline(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &Runtime,
    cluster: &PgCluster,
    figures: &mut Figures,
) {
    let url = cluster.create_database("baseline");
    let (client, insert) = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("the baseline connects");
        tokio::spawn(connection);
        client
            .batch_execute(
                "SET synchronous_commit = on;
                 CREATE TABLE baseline_events (
                     stream_kind smallint NOT NULL,
                     stream_id   text     NOT NULL,
                     seq         bigint   NOT NULL,
                     payload     bytea    NOT NULL,
                     PRIMARY KEY (stream_kind, stream_id, seq)
                 )",
            )
            .await
            .expect("the baseline table is created");
        let insert = client
            .prepare(&multirow_insert(BASELINE_ROWS))
            .await
            .expect("the insert prepares");
        (client, insert)
    });
    // A conversation's stream as the store names it: its UUID as text.
    let streams: Vec<String> = (1..=BASELINE_ROWS as u64)
        .map(|n| handover_benches::numbered_conversation_id(n).to_string())
        .collect();
    let payload = handover_benches::encoded_payload();
    let kind: i16 = 1;
    let (seq, transactions, timed) = (Cell::new(0i64), Cell::new(0u64), Cell::new(Duration::ZERO));
    group.throughput(Throughput::Elements(BASELINE_ROWS as u64));
    group.bench_function("baseline_multirow_100", |b| {
        b.to_async(runtime).iter_custom(|iters| {
            let (client, insert, streams, payload) = (&client, &insert, &streams, &payload[..]);
            let (seq, transactions, timed) = (&seq, &transactions, &timed);
            async move {
                let started = Instant::now();
                for _ in 0..iters {
                    let next = seq.get() + 1;
                    seq.set(next);
                    let mut params: Vec<&(dyn ToSql + Sync)> =
                        Vec::with_capacity(4 * streams.len());
                    for stream in streams {
                        let row: [&(dyn ToSql + Sync); 4] = [&kind, stream, &next, &payload];
                        params.extend(row);
                    }
                    client.batch_execute("BEGIN").await.expect("BEGIN");
                    client
                        .execute(insert, &params)
                        .await
                        .expect("the rows are inserted");
                    client.batch_execute("COMMIT").await.expect("COMMIT");
                }
                let elapsed = started.elapsed();
                transactions.set(transactions.get() + iters);
                timed.set(timed.get() + elapsed);
                elapsed
            }
        })
    });
    if transactions.get() > 0 {
        let rows = transactions.get() * BASELINE_ROWS as u64;
        let rate = rows as f64 / timed.get().as_secs_f64();
        eprintln!(
            "baseline_multirow_100: {rows} rows in {:.2} s, {rate:.0} rows/s",
            timed.get().as_secs_f64()
        );
        figures.baseline = Some(rate);
    }
}

fn feed_lag(group: &mut BenchmarkGroup<'_, WallTime>, runtime: &Runtime, cluster: &PgCluster) {
    let url = cluster.create_database("feed_lag");
    let (writer, reader) = runtime.block_on(async { (connect(&url).await, connect(&url).await) });
    // Held across awaits, hence tokio's lock; only one iteration runs at a time.
    let feed = tokio::sync::Mutex::new(reader.subscribe());
    let stream = StreamId::Conversation(handover_benches::numbered_conversation_id(1));
    let event = handover_benches::customer_message();
    let lags = RefCell::new(Vec::new());
    group.throughput(Throughput::Elements(1));
    group.bench_function("feed_lag", |b| {
        b.to_async(runtime).iter(|| {
            let (writer, feed, stream, event, lags) = (&writer, &feed, &stream, &event, &lags);
            async move {
                let appended = writer
                    .append(stream, ExpectedVersion::Any, vec![event.clone()])
                    .await
                    .expect("the append succeeds")
                    .expect("no conflict with Any");
                let acknowledged = Instant::now();
                let position = appended[0].position;
                let mut feed = feed.lock().await;
                loop {
                    match feed.recv().await {
                        Ok(record) if record.position == position => break,
                        Ok(_) => {}
                        Err(RecvError::Lagged(_)) => panic!("the reader fell behind its feed"),
                        Err(RecvError::Closed) => panic!("the reader's feed closed"),
                    }
                }
                let lag = acknowledged.elapsed();
                lags.borrow_mut().push(lag);
            }
        })
    });
    let mut lags = lags.into_inner();
    if lags.is_empty() {
        return;
    }
    lags.sort_unstable();
    let at = |quantile: f64| {
        let rank = ((lags.len() as f64 * quantile).ceil() as usize).clamp(1, lags.len());
        lags[rank - 1].as_micros()
    };
    println!(
        "feed_lag: {} events, lag from the writer's acknowledgement to the reader's feed: \
         p50 {} µs, p99 {} µs, max {} µs",
        lags.len(),
        at(0.50),
        at(0.99),
        at(1.0),
    );
}

/// One line with each facade rate, the baseline's, and the goals.
fn summarize(figures: &Figures) {
    let mut parts: Vec<String> = figures
        .facade
        .iter()
        .map(|(n, rate)| format!("facade/{n} {rate:.0} events/s"))
        .collect();
    if let Some(baseline) = figures.baseline {
        parts.push(format!("baseline_multirow_100 {baseline:.0} rows/s"));
    }
    let thousand = figures
        .facade
        .iter()
        .find(|(n, _)| *n == 1_000)
        .map(|&(_, rate)| rate);
    if let (Some(facade), Some(baseline)) = (thousand, figures.baseline) {
        let ratio = facade / baseline;
        let verdict = |met: bool| if met { "met" } else { "missed" };
        parts.push(format!(
            "facade/1000 ÷ baseline = {ratio:.2} (goal >= {GOAL_SHARE_OF_BASELINE}: {}), \
             facade/1000 vs {GOAL_EVENTS_PER_SECOND:.0} events/s: {}",
            verdict(ratio >= GOAL_SHARE_OF_BASELINE),
            verdict(facade > GOAL_EVENTS_PER_SECOND),
        ));
    }
    if let (Some(owner), Some(forwarded)) = figures.forwarding {
        parts.push(format!(
            "one conversation on two nodes: {owner:.0} commands/s on its owner, {forwarded:.0} \
             forwarded from the other node ({:.2} ms vs {:.2} ms a command)",
            1_000.0 / owner,
            1_000.0 / forwarded,
        ));
    }
    if !parts.is_empty() {
        println!("postgres_appends summary: {}", parts.join("; "));
    }
}
