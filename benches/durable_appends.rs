//! Durable appends, every path side by side in one group and on the same payload (the record
//! of one customer message, [`handover_benches::customer_message`]):
//!
//! - `fdatasync`: the record appended to a plain file and `sync_data`, the unit of a durable
//!   write on this disk;
//! - `sled_insert` (no flush: the ceiling) and `sled_insert_flush` (a flush per event: the naive
//!   design), raw sled writing the same bytes;
//! - `sqlite_tx_1` and `sqlite_tx_100`: SQLite (bundled, WAL, `synchronous=FULL`) with one
//!   transaction per event, and with transactions of 100 rows;
//! - `index_entry_per_event` and `index_chunk_per_group`: raw sled batches of 100 events from 100
//!   conversations with the global index as one entry per event (the first layout) or as one
//!   chunk per group (the current one), without flushes: what the index costs;
//! - `store_durable`, `store_process_crash`, `store_buffered`: `SledStore::append`, one append
//!   at a time;
//! - `facade_durable/N`: customer messages through `Handover` with `Durability::Durable` on N
//!   conversations at once (1, 100, 1,000), each with one command in flight and posting its
//!   next message as soon as the previous one is acknowledged (a closed loop, no barrier
//!   between conversations); one iteration is one event.
//!
//! Every figure is events per second (`Throughput::Elements`). For each store and facade case
//! the bench also prints (stderr) syncs, groups and appends per acknowledged event from the
//! store's counters, over every iteration criterion ran (warm-up included), and for the facade
//! the events per second of those same iterations.

// `criterion_group!` defines an undocumented `pub fn`; a bench binary has no public API.
#![allow(missing_docs)]

use std::path::Path;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use handover::{ConversationId, Durability};
use handover_benches::{measure_closed_loop, report_stats};
use handover_core::StreamId;
use handover_store::{EventStore, ExpectedVersion};
use tokio::runtime::Runtime;

/// Concurrent conversations posting at once in the facade benchmarks.
const CONCURRENT_CONVERSATIONS: [usize; 3] = [1, 100, 1_000];

/// Rows per transaction in the batched SQLite case.
const SQLITE_BATCH_ROWS: usize = 100;

fn durable_appends(c: &mut Criterion) {
    let runtime = handover_benches::runtime();
    let payload = handover_benches::encoded_payload();
    let mut group = c.benchmark_group("durable_appends");
    // Flat sampling: the slow cases (a sync per event) would otherwise need thousands of
    // iterations in the last sample of a linear series.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));

    fdatasync(&mut group, &payload);
    raw_sled(&mut group, &payload);
    sqlite(&mut group, &payload);
    index_layout(&mut group, &payload);
    store(&mut group, &runtime);
    facade(&mut group, &runtime);
    group.finish();
}

fn fdatasync(group: &mut BenchmarkGroup<'_, WallTime>, payload: &[u8]) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut file = handover_benches::SyncedFile::create(dir.path()).expect("the file opens");
    group.throughput(Throughput::Elements(1));
    group.bench_function("fdatasync", |b| {
        b.iter(|| file.append(payload).expect("the append syncs"))
    });
}

/// sled alone, writing the same record bytes the store writes, without its index entry, its
/// expected-version check or its ordering.
fn raw_sled(group: &mut BenchmarkGroup<'_, WallTime>, payload: &[u8]) {
    group.throughput(Throughput::Elements(1));
    for (name, flush) in [("sled_insert", false), ("sled_insert_flush", true)] {
        let dir = tempfile::tempdir().expect("a temp dir");
        let db = sled::open(dir.path()).expect("sled opens");
        let mut key = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                key += 1;
                db.insert(key.to_be_bytes(), payload)
                    .expect("the insert succeeds");
                if flush {
                    db.flush().expect("the flush succeeds");
                }
            })
        });
    }
}

/// An SQLite database in `dir` in WAL mode with `synchronous=FULL` (every commit syncs the
/// WAL), holding one table of events.
fn open_sqlite(dir: &Path) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open(dir.join("events.sqlite")).expect("SQLite opens");
    let mode: String = connection
        .query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0))
        .expect("WAL mode is set");
    assert_eq!(mode, "wal");
    connection
        .pragma_update(None, "synchronous", "FULL")
        .expect("synchronous is set");
    connection
        .execute_batch(
            "CREATE TABLE events (
                id INTEGER PRIMARY KEY,
                stream BLOB NOT NULL,
                seq INTEGER NOT NULL,
                body BLOB NOT NULL
            )",
        )
        .expect("the table is created");
    connection
}

fn sqlite(group: &mut BenchmarkGroup<'_, WallTime>, payload: &[u8]) {
    let stream = bench_conversation().as_bytes().to_vec();
    for rows in [1, SQLITE_BATCH_ROWS] {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut connection = open_sqlite(dir.path());
        let mut seq = 0i64;
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_function(format!("sqlite_tx_{rows}"), |b| {
            b.iter(|| {
                let tx = connection.transaction().expect("a transaction starts");
                {
                    let mut insert = tx
                        .prepare_cached(
                            "INSERT INTO events (stream, seq, body) VALUES (?1, ?2, ?3)",
                        )
                        .expect("the insert prepares");
                    for _ in 0..rows {
                        seq += 1;
                        insert
                            .execute(rusqlite::params![stream, seq, payload])
                            .expect("the row is inserted");
                    }
                }
                tx.commit().expect("the transaction commits");
            })
        });
    }
}

/// What the global index costs per event: raw sled batches of one group of 100 events from
/// 100 conversations, with one index entry per event (the first layout) or one chunk for the
/// group (the current one), without flushes, so only the work of the inserts is measured.
fn index_layout(group: &mut BenchmarkGroup<'_, WallTime>, payload: &[u8]) {
    const GROUP_EVENTS: u64 = 100;
    group.throughput(Throughput::Elements(GROUP_EVENTS));
    for (name, per_event) in [
        ("index_entry_per_event", true),
        ("index_chunk_per_group", false),
    ] {
        let dir = tempfile::tempdir().expect("a temp dir");
        let db = sled::open(dir.path()).expect("sled opens");
        let mut position = 0u64;
        let mut seq = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                seq += 1;
                let first = position + 1;
                let mut batch = sled::Batch::default();
                let mut chunk = Vec::with_capacity(GROUP_EVENTS as usize * 25);
                for conversation in 0..GROUP_EVENTS {
                    position += 1;
                    // 's' | 'c' | 16-byte id | seq, as the store lays records out.
                    let mut key = Vec::with_capacity(26);
                    key.extend_from_slice(b"sc");
                    key.extend_from_slice(&u128::from(conversation).to_be_bytes());
                    key.extend_from_slice(&seq.to_be_bytes());
                    if per_event {
                        let mut index = vec![b'g'];
                        index.extend_from_slice(&position.to_be_bytes());
                        batch.insert(index, &key[1..]);
                    } else {
                        chunk.extend_from_slice(&key[1..]);
                    }
                    batch.insert(key, payload);
                }
                if !per_event {
                    let mut index = vec![b'G'];
                    index.extend_from_slice(&first.to_be_bytes());
                    batch.insert(index, chunk);
                }
                db.apply_batch(batch).expect("the batch applies");
            })
        });
    }
}

/// `SledStore::append` of the payload to one stream, one append at a time.
fn store(group: &mut BenchmarkGroup<'_, WallTime>, runtime: &Runtime) {
    let events = vec![handover_benches::customer_message()];
    let stream = StreamId::Conversation(bench_conversation());
    group.throughput(Throughput::Elements(1));
    for (name, durability) in [
        ("store_durable", Durability::Durable),
        ("store_process_crash", Durability::ProcessCrash),
        ("store_buffered", Durability::Buffered),
    ] {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = handover_benches::open_store(dir.path(), durability).expect("the store opens");
        let before = store.stats();
        group.bench_function(name, |b| {
            b.to_async(runtime).iter(|| async {
                store
                    .append(&stream, ExpectedVersion::Any, events.clone())
                    .await
                    .expect("the append succeeds")
                    .expect("no conflict with Any");
            })
        });
        report_stats(name, &before, &store.stats());
    }
}

fn facade(group: &mut BenchmarkGroup<'_, WallTime>, runtime: &Runtime) {
    for concurrent in CONCURRENT_CONVERSATIONS {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (handover, ids) = runtime.block_on(async {
            let handover = handover_benches::start(dir.path(), Durability::Durable)
                .await
                .expect("the runtime starts");
            let ids = handover_benches::open_conversations_at_once(&handover, concurrent)
                .await
                .expect("the conversations open");
            (handover, ids)
        });
        measure_closed_loop(group, "facade_durable", runtime, &handover, &ids);
        runtime.block_on(handover.shutdown());
    }
}

/// The conversation the raw appends write to.
fn bench_conversation() -> ConversationId {
    "0190f5a8-6c1e-7000-8000-000000000001"
        .parse()
        .expect("a valid id")
}

criterion_group!(benches, durable_appends);
criterion_main!(benches);
