//! Rebuilding a conversation of 1,000 events: a fresh `Handover` on the directory answering
//! its first `conversation(id)` (open the log, scan it for AI assignments, start the actor,
//! read and fold the stream), beside folding the same 1,000 records with
//! `handover_core::conversation::evolve_stored` alone.

// `criterion_group!` defines an undocumented `pub fn`; a bench binary has no public API.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use handover::{Config, Conversation, Durability, Handover};
use handover_core::conversation::evolve_stored;

/// Events in the rebuilt conversation.
const CONVERSATION_EVENTS: usize = 1_000;

fn rebuild(c: &mut Criterion) {
    let runtime = handover_benches::runtime();
    let dir = tempfile::tempdir().expect("a temp dir");
    let id = runtime
        .block_on(handover_benches::write_conversation(
            dir.path(),
            CONVERSATION_EVENTS,
        ))
        .expect("the conversation is written");
    let records = {
        let store = handover_benches::open_store(dir.path(), Durability::Buffered)
            .expect("the store opens");
        handover_benches::read_conversation(&store, id).expect("the stream reads")
    };
    assert_eq!(records.len(), CONVERSATION_EVENTS);

    let mut group = c.benchmark_group("rebuild");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(CONVERSATION_EVENTS as u64));

    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("fresh_handover_first_view", |b| {
        // Only the start and the first view are timed; each runtime is shut down (releasing
        // the directory for the next) outside the measurement.
        let dir = dir.path();
        b.to_async(&runtime).iter_custom(|iterations| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let started = Instant::now();
                let handover = Handover::start(Config::new(dir))
                    .await
                    .expect("the runtime starts");
                let view = handover
                    .conversation(id)
                    .await
                    .expect("the conversation exists");
                total += started.elapsed();
                assert_eq!(view.version, CONVERSATION_EVENTS as u64);
                handover.shutdown().await;
            }
            total
        })
    });

    group.sampling_mode(SamplingMode::Auto);
    group.bench_function("evolve_stored_fold", |b| {
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
}

criterion_group!(benches, rebuild);
criterion_main!(benches);
