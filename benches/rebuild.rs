//! Rebuilding a conversation of 1,000 events (an open, then customer messages): the store's
//! read, the fold, and both through the runtime, with the read split once more.
//!
//! - `store_read`: `SledStore::read_stream_sync` of a whole stream on a warm, open store (the
//!   pool's conversations in turn);
//! - `record_decode`: the checksum check and bincode decode of the same 1,000 records from
//!   bytes in memory, the part of `store_read` that is not sled's range scan;
//! - `fold`: `evolve_stored` over the 1,000 records, as the conversation actor folds them;
//! - `passivated_first_view`: `Handover::conversation(id)` on a runtime started once, for a
//!   conversation whose actor is not running, so the view starts the actor, which reads and
//!   folds the stream before it answers. The runtime passivates idle actors after
//!   [`PASSIVATE_AFTER`]; the bench walks a pool of prepared conversations, one per iteration,
//!   and before it walks the pool again it waits (untimed) until no conversation actor runs.
//!
//! Throughput is counted in events, so criterion prints events per second.

// `criterion_group!` defines an undocumented `pub fn`; a bench binary has no public API.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use handover::{Config, Durability, Handover, StreamId};
use handover_core::conversation::evolve_stored;
use handover_core::Conversation;
use handover_store::{decode_record, encode_record, RecordHash, SeqRange};

/// Events in each rebuilt conversation.
const CONVERSATION_EVENTS: usize = 1_000;

/// Prepared conversations the runtime bench cycles through: enough that a pass takes several
/// times [`PASSIVATE_AFTER`], so waiting for passivation is a small part of the run.
const POOL_CONVERSATIONS: usize = 64;

/// How long a conversation actor stays idle before it stops.
const PASSIVATE_AFTER: Duration = Duration::from_millis(20);

/// Longest wait for every conversation actor to passivate.
const PASSIVATION_WAIT_MAX: Duration = Duration::from_secs(30);

fn group_settings(
    c: &mut Criterion,
) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group("rebuild_1000_events");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(CONVERSATION_EVENTS as u64));
    group
}

/// Waits until the runtime runs no conversation actor.
async fn wait_until_passivated(handover: &Handover) {
    let deadline = Instant::now() + PASSIVATION_WAIT_MAX;
    while handover.live_conversations() > 0 {
        assert!(
            Instant::now() < deadline,
            "{} conversation actors still run after {PASSIVATION_WAIT_MAX:?}",
            handover.live_conversations()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn rebuild(c: &mut Criterion) {
    let runtime = handover_benches::runtime();
    let dir = tempfile::tempdir().expect("a temp dir");

    // (a) and (b) on the raw store; it is closed before the runtime opens the directory.
    let ids = {
        let store = handover_benches::open_store(dir.path(), Durability::Buffered)
            .expect("the store opens");
        let ids = runtime
            .block_on(handover_benches::append_conversations(
                &store,
                1,
                POOL_CONVERSATIONS,
                CONVERSATION_EVENTS,
            ))
            .expect("the conversations are written");
        let stream = StreamId::Conversation(ids[0]);
        let records = store
            .read_stream_sync(&stream, SeqRange::ALL)
            .expect("the stream reads");
        assert_eq!(records.len(), CONVERSATION_EVENTS);

        let mut group = group_settings(c);
        // Each iteration reads the next conversation of the pool, as the runtime bench does,
        // so neither finds the previous read's pages in the CPU caches.
        let streams: Vec<StreamId> = ids.iter().map(|&id| StreamId::Conversation(id)).collect();
        group.bench_function("store_read", |b| {
            let mut next = streams.iter().cycle();
            b.iter(|| {
                let stream = next.next().expect("a cycle never ends");
                store
                    .read_stream_sync(stream, SeqRange::ALL)
                    .expect("the stream reads")
            })
        });
        // Chained as the store writes them.
        let mut previous = RecordHash::ZERO;
        let encoded = records
            .iter()
            .map(|record| {
                let bytes = encode_record(record, &previous)?;
                previous = RecordHash::of(&bytes);
                Ok(bytes)
            })
            .collect::<Result<Vec<_>, handover_store::StoreError>>()
            .expect("the records encode");
        group.bench_function("record_decode", |b| {
            b.iter(|| {
                encoded
                    .iter()
                    .map(|bytes| decode_record(bytes))
                    .collect::<Result<Vec<_>, _>>()
                    .expect("the records decode")
            })
        });
        group.bench_function("fold", |b| {
            b.iter(|| {
                records
                    .iter()
                    .try_fold(Conversation::NotOpened, |state, record| {
                        evolve_stored(state, &record.event)
                    })
                    .expect("the stream folds")
            })
        });
        group.finish();
        ids
    };

    // (c) through the runtime, started once, outside the measurement.
    let handover = runtime
        .block_on(Handover::start(
            Config::new(dir.path())
                .durability(Durability::Buffered)
                .passivate_after(Some(PASSIVATE_AFTER)),
        ))
        .expect("the runtime starts");
    let mut group = group_settings(c);
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("passivated_first_view", |b| {
        let (handover, ids) = (&handover, &ids);
        let mut next = 0usize;
        b.to_async(&runtime).iter_custom(|iterations| {
            let start = next;
            next += iterations as usize;
            async move {
                let mut total = Duration::ZERO;
                for i in start..start + iterations as usize {
                    if i % ids.len() == 0 {
                        wait_until_passivated(handover).await;
                    }
                    let id = ids[i % ids.len()];
                    let started = Instant::now();
                    let view = handover
                        .conversation(id)
                        .await
                        .expect("the conversation exists");
                    total += started.elapsed();
                    assert_eq!(view.events, CONVERSATION_EVENTS as u64);
                }
                total
            }
        })
    });
    group.finish();
    runtime.block_on(handover.shutdown());
}

criterion_group!(benches, rebuild);
criterion_main!(benches);
