//! Durable appends: customer messages posted through the facade with `Durability::Flush` at 1,
//! 16 and 128 concurrent conversations, beside baselines on the same payload in the same run:
//! `SledStore` appends with `Flush` and `Buffered`, raw sled inserts without a flush (the
//! ceiling), and raw sled insert-and-flush per event (the naive design).
//!
//! Every figure is events per second (`Throughput::Elements`): one event per posted message.

// `criterion_group!` defines an undocumented `pub fn`; a bench binary has no public API.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use handover::{ConversationId, Durability, Handover};
use handover_core::StreamId;
use handover_store::{EventStore, ExpectedVersion};
use tokio::task::JoinSet;

/// Concurrent conversations posting at once in the facade benchmarks.
const CONCURRENT_CONVERSATIONS: [usize; 3] = [1, 16, 128];

/// Posts one message in each conversation, all at once, and waits for every acknowledgement.
async fn post_in_each(handover: &Handover, ids: &[ConversationId]) {
    let mut posts = JoinSet::new();
    for &id in ids {
        let handover = handover.clone();
        posts.spawn(async move { handover_benches::post(&handover, id).await });
    }
    while let Some(done) = posts.join_next().await {
        done.expect("the post task ran")
            .expect("the message was posted");
    }
}

fn facade(c: &mut Criterion) {
    let runtime = handover_benches::runtime();
    let mut group = c.benchmark_group("durable_appends/facade_flush");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for concurrent in CONCURRENT_CONVERSATIONS {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (handover, ids) = runtime.block_on(async {
            let handover = handover_benches::start(dir.path(), Durability::Flush)
                .await
                .expect("the runtime starts");
            let ids = handover_benches::open_conversations(&handover, concurrent)
                .await
                .expect("the conversations open");
            (handover, ids)
        });
        group.throughput(Throughput::Elements(concurrent as u64));
        group.bench_with_input(BenchmarkId::from_parameter(concurrent), &ids, |b, ids| {
            b.to_async(&runtime).iter(|| post_in_each(&handover, ids))
        });
        runtime.block_on(handover.shutdown());
    }
    group.finish();
}

/// Raw appends of the payload to one stream, one at a time, through `EventStore::append`.
fn raw_store(c: &mut Criterion) {
    let runtime = handover_benches::runtime();
    let event = [handover_benches::customer_message()];
    let mut group = c.benchmark_group("durable_appends/sled_store");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    for (name, durability) in [
        ("flush", Durability::Flush),
        ("buffered", Durability::Buffered),
    ] {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = handover_benches::open_store(dir.path(), durability).expect("the store opens");
        bench_appends(&mut group, &runtime, name, &store, &event);
    }
    group.finish();

    // sled alone, writing the same record bytes our store writes, without its index entry,
    // its expected-version check or its ordering.
    let value = handover_store::encode_record(&handover_store::RecordedEvent {
        position: 1,
        stream: StreamId::Conversation(bench_conversation()),
        seq: 1,
        recorded_at: handover_store::RecordedAt::now(),
        event: handover_benches::customer_message(),
    })
    .expect("the record encodes");
    let mut group = c.benchmark_group("durable_appends/raw_sled");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    for (name, flush) in [("insert", false), ("insert_flush", true)] {
        let dir = tempfile::tempdir().expect("a temp dir");
        let db = sled::open(dir.path()).expect("sled opens");
        let mut key = 0u64;
        group.bench_function(name, |b| {
            b.iter(|| {
                key += 1;
                db.insert(key.to_be_bytes(), value.as_slice())
                    .expect("the insert succeeds");
                if flush {
                    db.flush().expect("the flush succeeds");
                }
            })
        });
    }
    group.finish();
}

fn bench_appends(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    store: &dyn EventStore,
    event: &[handover::Event],
) {
    let stream = StreamId::Conversation(bench_conversation());
    group.bench_function(name, |b| {
        b.to_async(runtime).iter(|| async {
            store
                .append(&stream, ExpectedVersion::Any, event.to_vec())
                .await
                .expect("the append succeeds")
                .expect("no conflict with Any");
        })
    });
}

/// The conversation the raw appends write to.
fn bench_conversation() -> ConversationId {
    "0190f5a8-6c1e-7000-8000-000000000001"
        .parse()
        .expect("a valid id")
}

criterion_group!(benches, raw_store, facade);
criterion_main!(benches);
