//! The replay contract: what reads return, in which order, and that a restart changes none of
//! it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use handover_core::{Event, StreamId};
use handover_store::{Conflict, EventStore, ExpectedVersion, RecordedEvent, SeqRange};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::values::{
    activated, agent_stream, append, close, conversation, events, human_available,
    human_registered, human_stream, message, messages, owned, positions, read, read_all,
    read_range, registered, rng, seqs, version,
};
use crate::StoreFactory;

/// What a sequence of acknowledged appends must have left in the log: each event with its
/// stream and seq, in the order the appends were acknowledged.
#[derive(Default)]
struct Model {
    log: Vec<(StreamId, u64, Event)>,
    versions: BTreeMap<StreamId, u64>,
}

impl Model {
    fn version(&self, stream: &StreamId) -> u64 {
        self.versions.get(stream).copied().unwrap_or(0)
    }

    /// Appends `count` events to `stream` through `store` and records them here, checking
    /// that the store numbered them as the model expects.
    async fn append(&mut self, store: &dyn EventStore, stream: &StreamId, count: usize) {
        let version = self.version(stream);
        let expected = if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        };
        let batch = messages(&format!("{stream} after {version}"), count);
        let recorded = append(store, stream, expected, batch.clone()).await;
        let head = self.log.len() as u64;
        assert_eq!(
            seqs(&owned(&recorded)),
            (version + 1..=version + count as u64).collect::<Vec<_>>(),
            "an append to {stream} at version {version} got these seqs"
        );
        assert_eq!(
            positions(&owned(&recorded)),
            (head + 1..=head + count as u64).collect::<Vec<_>>(),
            "an append after position {head} got these positions"
        );
        assert_eq!(events(&owned(&recorded)), batch);
        for (i, event) in batch.into_iter().enumerate() {
            self.log
                .push((stream.clone(), version + 1 + i as u64, event));
        }
        self.versions.insert(stream.clone(), version + count as u64);
    }

    /// `appends` appends of 1 to 4 events to streams chosen at random among `streams`.
    async fn random_appends(
        &mut self,
        store: &dyn EventStore,
        rng: &mut ChaCha8Rng,
        streams: &[StreamId],
        appends: usize,
    ) {
        for _ in 0..appends {
            let stream = &streams[rng.gen_range(0..streams.len())];
            let count = rng.gen_range(1..=4);
            self.append(store, stream, count).await;
        }
    }

    /// The stream's events as the model has them.
    fn stream(&self, stream: &StreamId) -> Vec<(u64, Event)> {
        self.log
            .iter()
            .filter(|(s, _, _)| s == stream)
            .map(|(_, seq, event)| (*seq, event.clone()))
            .collect()
    }

    /// Checks that the store holds exactly the model: the whole log in order from position 1
    /// without gaps, every stream, every version, and the head. Returns the log as read.
    async fn check(&self, store: &dyn EventStore, context: &str) -> Vec<RecordedEvent> {
        let all = read_all(store).await;
        assert_eq!(
            positions(&all),
            (1..=self.log.len() as u64).collect::<Vec<_>>(),
            "{context}: the log's positions"
        );
        for (record, (stream, seq, event)) in all.iter().zip(&self.log) {
            assert_eq!(
                (&record.stream, record.seq, &record.event),
                (stream, *seq, event),
                "{context}: the record at position {}",
                record.position
            );
        }
        for pair in all.windows(2) {
            assert!(
                pair[0].recorded_at <= pair[1].recorded_at,
                "{context}: recorded_at decreases from position {} to {}",
                pair[0].position,
                pair[1].position
            );
        }
        for (stream, v) in &self.versions {
            let records = read(store, stream).await;
            let from_log: Vec<RecordedEvent> = all
                .iter()
                .filter(|r| r.stream == *stream)
                .cloned()
                .collect();
            assert_eq!(records, from_log, "{context}: {stream} read on its own");
            assert_eq!(
                version(store, stream).await,
                *v,
                "{context}: version of {stream}"
            );
        }
        assert_eq!(store.head(), self.log.len() as u64, "{context}: the head");
        all
    }
}

/// `read_stream` returns the events of the stream whose seq is in `from..=to`, at most `max`,
/// in seq order: checked on hand-picked ranges (empty, inverted, past the end, single events)
/// and on random ones against a model of the stream.
pub async fn read_stream_ranges<F: StoreFactory>(factory: &F) {
    let (seed, mut rng) = rng("read_stream_ranges");
    let place = factory.fresh().await;
    let store = factory.open(&place).await;
    let mut model = Model::default();
    let (a, b) = (conversation(1), conversation(2));
    // Ten events in a, in batches of 3, 2 and 5, with b's events between them, so that seqs
    // and positions differ.
    model.append(&*store, &a, 3).await;
    model.append(&*store, &b, 2).await;
    model.append(&*store, &a, 2).await;
    model.append(&*store, &b, 1).await;
    model.append(&*store, &a, 5).await;
    let whole = read(&*store, &a).await;
    assert_eq!(seqs(&whole), (1..=10).collect::<Vec<_>>());
    let range = |from, to, max| SeqRange { from, to, max };
    let cases: Vec<(SeqRange, Vec<u64>)> = vec![
        (SeqRange::ALL, (1..=10).collect()),
        (SeqRange::from(4), (4..=10).collect()),
        (range(3, 7, usize::MAX), (3..=7).collect()),
        (range(3, 7, 2), vec![3, 4]),
        (range(5, 5, usize::MAX), vec![5]),
        (range(10, 10, 1), vec![10]),
        (range(8, 1_000, usize::MAX), vec![8, 9, 10]),
        (range(1, u64::MAX, 1), vec![1]),
        (range(1, u64::MAX, 0), vec![]),
        (range(7, 3, usize::MAX), vec![]),
        (range(11, u64::MAX, usize::MAX), vec![]),
        (range(1_000, 2_000, usize::MAX), vec![]),
    ];
    for (range, expected) in &cases {
        let records = read_range(&*store, &a, *range).await;
        assert_eq!(&seqs(&records), expected, "read_stream({a}, {range:?})");
        let from_whole: Vec<RecordedEvent> = whole
            .iter()
            .filter(|r| expected.contains(&r.seq))
            .cloned()
            .collect();
        assert_eq!(records, from_whole, "read_stream({a}, {range:?})");
    }
    // Random ranges around the stream's ten events, against the model.
    let model_a = model.stream(&a);
    let random = 500;
    for _ in 0..random {
        let from = rng.gen_range(1..=13u64);
        let to = rng.gen_range(0..=13u64);
        let max = rng.gen_range(0..=12usize);
        let records = read_range(&*store, &a, range(from, to, max)).await;
        let expected: Vec<(u64, Event)> = model_a
            .iter()
            .filter(|(seq, _)| (from..=to).contains(seq))
            .take(max)
            .cloned()
            .collect();
        let got: Vec<(u64, Event)> = records.iter().map(|r| (r.seq, r.event.clone())).collect();
        assert_eq!(
            got, expected,
            "read_stream({a}, from {from} to {to} max {max}), seed {seed}"
        );
    }
    println!(
        "read_stream_ranges [{}]: {} chosen ranges and {random} random ranges over a stream of 10 events",
        factory.describe(),
        cases.len()
    );
}

/// Reads that start at the very end of the number space (seq and position `u64::MAX`, where
/// nothing can be) return nothing, on an unknown stream and on one with events, rather than
/// failing or panicking.
pub async fn reads_at_the_end_of_the_number_space_are_empty<F: StoreFactory>(factory: &F) {
    let place = factory.fresh().await;
    let store = factory.open(&place).await;
    let (known, unknown) = (conversation(1), conversation(2));
    append(
        &*store,
        &known,
        ExpectedVersion::NoStream,
        messages("known", 3),
    )
    .await;
    let last = SeqRange {
        from: u64::MAX,
        to: u64::MAX,
        max: usize::MAX,
    };
    for stream in [&known, &unknown] {
        assert!(
            read_range(&*store, stream, last).await.is_empty(),
            "{stream} {last:?}"
        );
        assert!(read_range(&*store, stream, SeqRange::from(u64::MAX))
            .await
            .is_empty());
    }
    let all = store
        .read_all(u64::MAX, usize::MAX)
        .await
        .unwrap_or_else(|e| panic!("read_all(u64::MAX) failed: {e}"));
    assert!(all.is_empty());
    println!(
        "reads_at_the_end_of_the_number_space_are_empty [{}]: 4 stream reads and 1 log read from u64::MAX returned nothing",
        factory.describe()
    );
}

/// `read_all(from, max)` returns the log from position `from`, at most `max` events, in
/// position order without gaps, agreeing with every stream read on its own; `recorded_at`
/// never decreases along it.
pub async fn read_all_follows_positions_without_gaps<F: StoreFactory>(factory: &F) {
    let (seed, mut rng) = rng("read_all_follows_positions_without_gaps");
    let place = factory.fresh().await;
    let store = factory.open(&place).await;
    let streams: Vec<StreamId> = (1..=5).map(conversation).collect();
    let mut model = Model::default();
    model.random_appends(&*store, &mut rng, &streams, 100).await;
    let all = model.check(&*store, "after 100 appends").await;
    let head = all.len() as u64;
    let windows = 300;
    for _ in 0..windows {
        let from = rng.gen_range(1..=head + 3);
        let max = rng.gen_range(0..=40usize);
        let window = store
            .read_all(from, max)
            .await
            .unwrap_or_else(|e| panic!("read_all({from}, {max}) failed: {e}"));
        let expected: Vec<RecordedEvent> = all
            .iter()
            .skip(usize::try_from(from - 1).expect("a small position"))
            .take(max)
            .cloned()
            .collect();
        assert_eq!(window, expected, "read_all({from}, {max}), seed {seed}");
    }
    assert!(store
        .read_all(head + 1, usize::MAX)
        .await
        .unwrap()
        .is_empty());
    assert!(store.read_all(1, 0).await.unwrap().is_empty());
    println!(
        "read_all_follows_positions_without_gaps [{}]: {head} events from 100 appends on 5 streams, {windows} windows checked",
        factory.describe()
    );
}

/// An unknown stream reads as empty with version 0, in an empty log and in one that holds
/// other streams; an empty log has head 0 and reads nothing.
pub async fn unknown_streams_are_empty<F: StoreFactory>(factory: &F) {
    let place = factory.fresh().await;
    let store = factory.open(&place).await;
    let unknown = [
        conversation(404),
        agent_stream("kit-nobody"),
        human_stream("kit-nobody"),
    ];
    assert_eq!(store.head(), 0, "an empty log's head");
    assert!(read_all(&*store).await.is_empty());
    assert!(store.read_ai_agents().await.unwrap().is_empty());
    assert!(store.read_humans().await.unwrap().is_empty());
    for stream in &unknown {
        assert!(read(&*store, stream).await.is_empty());
        assert_eq!(version(&*store, stream).await, 0);
    }
    append(
        &*store,
        &conversation(1),
        ExpectedVersion::NoStream,
        messages("known", 3),
    )
    .await;
    append(
        &*store,
        &agent_stream("kit-known"),
        ExpectedVersion::NoStream,
        vec![registered("kit-known")],
    )
    .await;
    append(
        &*store,
        &human_stream("kit-known"),
        ExpectedVersion::NoStream,
        vec![human_registered("kit-known")],
    )
    .await;
    for stream in &unknown {
        assert!(
            read(&*store, stream).await.is_empty(),
            "{stream} is unknown"
        );
        assert!(read_range(&*store, stream, SeqRange::from(2))
            .await
            .is_empty());
        assert_eq!(version(&*store, stream).await, 0, "{stream} is unknown");
    }
    println!(
        "unknown_streams_are_empty [{}]: {} unknown streams read empty at version 0, before and after 5 events elsewhere",
        factory.describe(),
        unknown.len()
    );
}

/// While four writers append, an observer samples `head()` and every stream's version: no
/// sample is lower than the one before it. Each writer, once its append is acknowledged, sees
/// the head and its stream's version at least as far as that append.
pub async fn head_and_versions_never_decrease<F: StoreFactory>(factory: &F) {
    const WRITERS: u128 = 4;
    const APPENDS: u64 = 50;
    let place = factory.fresh().await;
    let store = factory.open(&place).await;
    let done = Arc::new(AtomicBool::new(false));
    let streams: Vec<StreamId> = (1..=WRITERS).map(conversation).collect();

    let observer = {
        let store = Arc::clone(&store);
        let done = Arc::clone(&done);
        let streams = streams.clone();
        tokio::spawn(async move {
            let mut head = 0;
            let mut versions = vec![0; streams.len()];
            let mut samples = 0u64;
            loop {
                // Read `done` first: a sample taken after it saw every write.
                let last = done.load(Ordering::Acquire);
                let now = store.head();
                assert!(now >= head, "head went from {head} to {now}");
                head = now;
                for (stream, seen) in streams.iter().zip(versions.iter_mut()) {
                    let now = version(&*store, stream).await;
                    assert!(now >= *seen, "{stream} went from version {seen} to {now}");
                    *seen = now;
                }
                samples += 1;
                if last {
                    return (samples, head, versions);
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let mut writers = Vec::new();
    for (w, stream) in streams.iter().enumerate() {
        let store = Arc::clone(&store);
        let stream = stream.clone();
        writers.push(tokio::spawn(async move {
            let mut v = 0;
            for round in 0..APPENDS {
                let count = 1 + (round as usize + w) % 3;
                let recorded = append(
                    &*store,
                    &stream,
                    ExpectedVersion::Exact(v),
                    messages(&format!("w{w} r{round}"), count),
                )
                .await;
                let last = recorded.last().expect("a non-empty append");
                v = last.seq;
                assert!(
                    store.head() >= last.position,
                    "head {} behind an acknowledged position {}",
                    store.head(),
                    last.position
                );
                assert!(version(&*store, &stream).await >= v);
            }
            v
        }));
    }
    let mut total = 0;
    let mut finals = Vec::new();
    for writer in writers {
        let v = writer.await.expect("a writer panicked");
        total += v;
        finals.push(v);
    }
    done.store(true, Ordering::Release);
    let (samples, head, versions) = observer.await.expect("the observer panicked");
    assert_eq!(head, total, "the head after every append");
    assert_eq!(versions, finals, "the versions after every append");

    // A refused append moves neither.
    let conflict = store
        .append(
            &streams[0],
            ExpectedVersion::Exact(1),
            vec![message("late")],
        )
        .await
        .expect("no store error");
    assert_eq!(
        conflict.map(|_| ()),
        Err(Conflict {
            expected: 1,
            actual: finals[0]
        })
    );
    assert_eq!(store.head(), total);
    assert_eq!(version(&*store, &streams[0]).await, finals[0]);
    println!(
        "head_and_versions_never_decrease [{}]: {samples} samples of head and {WRITERS} versions while {WRITERS} writers made {} appends ({total} events)",
        factory.describe(),
        WRITERS as u64 * APPENDS
    );
}

/// A multi-event append takes consecutive seqs in its stream and consecutive positions in the
/// log; a refused one writes none of its events; and readers racing appenders of four-event
/// batches only ever see whole batches, in streams and in the global order.
pub async fn multi_event_appends_are_atomic_and_contiguous<F: StoreFactory>(factory: &F) {
    const BATCH: usize = 4;
    const WRITERS: u128 = 4;
    const ROUNDS: u64 = 25;
    let place = factory.fresh().await;
    let store = factory.open(&place).await;
    let a = conversation(1);
    append(&*store, &a, ExpectedVersion::NoStream, messages("a", 2)).await;
    append(
        &*store,
        &conversation(2),
        ExpectedVersion::NoStream,
        messages("b", 1),
    )
    .await;
    let batch = messages("five", 5);
    let recorded = owned(&append(&*store, &a, ExpectedVersion::Exact(2), batch.clone()).await);
    assert_eq!(seqs(&recorded), vec![3, 4, 5, 6, 7]);
    assert_eq!(positions(&recorded), vec![4, 5, 6, 7, 8]);
    assert_eq!(events(&recorded), batch);
    assert_eq!(read_range(&*store, &a, SeqRange::from(3)).await, recorded);
    assert_eq!(store.read_all(4, usize::MAX).await.unwrap(), recorded);

    // Refused as a whole: nothing of it is written.
    let before = read_all(&*store).await;
    let refused = store
        .append(&a, ExpectedVersion::Exact(2), messages("refused", 5))
        .await
        .expect("no store error");
    assert!(refused.is_err(), "a stale five-event append was accepted");
    assert_eq!(read_all(&*store).await, before);
    assert_eq!(store.head(), 8);
    assert_eq!(version(&*store, &a).await, 7);

    // Readers racing writers of four-event batches see whole batches only.
    let place = factory.fresh().await;
    close(store);
    let store = factory.open(&place).await;
    let done = Arc::new(AtomicBool::new(false));
    let streams: Vec<StreamId> = (1..=WRITERS).map(conversation).collect();
    let reader = {
        let store = Arc::clone(&store);
        let done = Arc::clone(&done);
        let streams = streams.clone();
        tokio::spawn(async move {
            let mut reads = 0u64;
            loop {
                let last = done.load(Ordering::Acquire);
                for stream in &streams {
                    let records = read(&*store, stream).await;
                    assert_eq!(
                        records.len() % BATCH,
                        0,
                        "{stream} read with part of a batch: seqs {:?}",
                        seqs(&records)
                    );
                    assert_eq!(
                        seqs(&records),
                        (1..=records.len() as u64).collect::<Vec<_>>()
                    );
                }
                let all = read_all(&*store).await;
                check_whole_batches(&all, BATCH);
                reads += 1;
                if last {
                    return (reads, all.len());
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let mut writers = Vec::new();
    for (w, stream) in streams.iter().enumerate() {
        let store = Arc::clone(&store);
        let stream = stream.clone();
        writers.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                append(
                    &*store,
                    &stream,
                    ExpectedVersion::Exact(round * BATCH as u64),
                    messages(&format!("w{w} r{round}"), BATCH),
                )
                .await;
            }
        }));
    }
    for writer in writers {
        writer.await.expect("a writer panicked");
    }
    done.store(true, Ordering::Release);
    let (reads, events) = reader.await.expect("the reader panicked");
    assert_eq!(events as u64, WRITERS as u64 * ROUNDS * BATCH as u64);
    println!(
        "multi_event_appends_are_atomic_and_contiguous [{}]: {reads} reads of {WRITERS} streams and the log, racing {} appends of {BATCH} events, saw whole batches only",
        factory.describe(),
        WRITERS as u64 * ROUNDS
    );
}

/// Checks that `all` (the log from position 1) is made of whole batches of `batch` events, each
/// one stream's consecutive seqs at consecutive positions.
fn check_whole_batches(all: &[RecordedEvent], batch: usize) {
    assert_eq!(
        positions(all),
        (1..=all.len() as u64).collect::<Vec<_>>(),
        "the log has a gap"
    );
    assert_eq!(all.len() % batch, 0, "the log ends inside a batch");
    for chunk in all.chunks(batch) {
        let first = &chunk[0];
        assert_eq!(
            first.seq % batch as u64,
            1,
            "a batch starts at {}",
            first.position
        );
        for (i, record) in chunk.iter().enumerate() {
            assert_eq!(
                (&record.stream, record.seq),
                (&first.stream, first.seq + i as u64),
                "position {} breaks the batch starting at {}",
                record.position,
                first.position
            );
        }
    }
}

/// `read_ai_agents` returns every event of every AI-agent stream and nothing else, stream by
/// stream, each stream in seq order.
pub async fn ai_agent_streams_read_apart<F: StoreFactory>(factory: &F) {
    let place = factory.fresh().await;
    let store = factory.open(&place).await;
    let agents = ["kit-b", "kit-a", "kit-c"];
    for (i, agent) in agents.iter().enumerate() {
        let stream = agent_stream(agent);
        append(
            &*store,
            &stream,
            ExpectedVersion::NoStream,
            vec![registered(agent)],
        )
        .await;
        append(
            &*store,
            &conversation(i as u128),
            ExpectedVersion::NoStream,
            messages("between", 2),
        )
        .await;
    }
    for agent in agents {
        append(
            &*store,
            &agent_stream(agent),
            ExpectedVersion::Exact(1),
            vec![activated(agent)],
        )
        .await;
    }
    let read_back = store.read_ai_agents().await.expect("read_ai_agents");
    assert_eq!(read_back.len(), 2 * agents.len());
    // Stream by stream: each agent's events are next to each other, in seq order.
    let mut seen: Vec<StreamId> = Vec::new();
    for pair in read_back.chunks(2) {
        let stream = &pair[0].stream;
        assert!(
            matches!(stream, StreamId::AiAgent(_)),
            "{stream} is not an AI-agent stream"
        );
        assert!(!seen.contains(stream), "{stream} is read in two places");
        seen.push(stream.clone());
        assert_eq!(pair.to_vec(), read(&*store, stream).await);
    }
    println!(
        "ai_agent_streams_read_apart [{}]: {} events of {} AI-agent streams, none of 3 conversations",
        factory.describe(),
        read_back.len(),
        agents.len()
    );
}

/// `read_humans` returns every event of every human stream and nothing else (no AI-agent
/// event, no conversation event), stream by stream, each stream in seq order; `read_ai_agents`
/// returns none of the humans' events.
pub async fn human_streams_read_apart<F: StoreFactory>(factory: &F) {
    let place = factory.fresh().await;
    let store = factory.open(&place).await;
    let humans = ["kit-bruno", "kit-ana", "kit-carla"];
    for (i, human) in humans.iter().enumerate() {
        append(
            &*store,
            &human_stream(human),
            ExpectedVersion::NoStream,
            vec![human_registered(human)],
        )
        .await;
        // An AI agent and a conversation between the humans' registrations, under the same
        // names, so that only the kind of stream tells them apart.
        append(
            &*store,
            &agent_stream(human),
            ExpectedVersion::NoStream,
            vec![registered(human)],
        )
        .await;
        append(
            &*store,
            &conversation(i as u128),
            ExpectedVersion::NoStream,
            messages("between", 2),
        )
        .await;
    }
    for human in humans {
        append(
            &*store,
            &human_stream(human),
            ExpectedVersion::Exact(1),
            vec![human_available(human)],
        )
        .await;
    }
    let read_back = store.read_humans().await.expect("read_humans");
    assert_eq!(read_back.len(), 2 * humans.len());
    // Stream by stream: each human's events are next to each other, in seq order.
    let mut seen: Vec<StreamId> = Vec::new();
    for pair in read_back.chunks(2) {
        let stream = &pair[0].stream;
        assert!(
            matches!(stream, StreamId::Human(_)),
            "{stream} is not a human stream"
        );
        assert!(!seen.contains(stream), "{stream} is read in two places");
        seen.push(stream.clone());
        assert_eq!(pair.to_vec(), read(&*store, stream).await);
    }
    let agents = store.read_ai_agents().await.expect("read_ai_agents");
    assert_eq!(agents.len(), humans.len());
    assert!(
        agents
            .iter()
            .all(|r| matches!(r.stream, StreamId::AiAgent(_))),
        "read_ai_agents returned another kind of stream"
    );
    // The same after a restart.
    close(store);
    let store = factory.open(&place).await;
    assert_eq!(store.read_humans().await.unwrap(), read_back);
    println!(
        "human_streams_read_apart [{}]: {} events of {} human streams, none of 3 AI agents or 3 conversations, also after a restart",
        factory.describe(),
        read_back.len(),
        humans.len()
    );
}

/// After a restart the log is the same (events, positions, seqs, recording times, versions,
/// head), and appends continue after it: the next position is the old head plus one, the next
/// seq the old version plus one, and an expected version is checked against the old log.
/// Three restarts, with random appends before each.
pub async fn everything_survives_a_restart<F: StoreFactory>(factory: &F) {
    const RESTARTS: usize = 3;
    let (seed, mut rng) = rng("everything_survives_a_restart");
    let place = factory.fresh().await;
    let mut store = factory.open(&place).await;
    let mut streams: Vec<StreamId> = (1..=4).map(conversation).collect();
    streams.push(agent_stream("kit-restart"));
    streams.push(human_stream("kit-restart"));
    let mut model = Model::default();
    for restart in 1..=RESTARTS {
        model.random_appends(&*store, &mut rng, &streams, 40).await;
        let before = model
            .check(&*store, &format!("before restart {restart}, seed {seed}"))
            .await;
        let agents_before = store.read_ai_agents().await.unwrap();
        let humans_before = store.read_humans().await.unwrap();
        close(store);
        store = factory.open(&place).await;
        let after = model
            .check(&*store, &format!("after restart {restart}, seed {seed}"))
            .await;
        assert_eq!(
            after, before,
            "restart {restart} changed the log, seed {seed}"
        );
        assert_eq!(store.read_ai_agents().await.unwrap(), agents_before);
        assert_eq!(store.read_humans().await.unwrap(), humans_before);
        // Expected versions are checked against what was there before the restart.
        let stream = &streams[0];
        let v = model.version(stream);
        let stale = store
            .append(stream, ExpectedVersion::NoStream, vec![message("stale")])
            .await
            .expect("no store error");
        if v > 0 {
            assert_eq!(
                stale.map(|_| ()),
                Err(Conflict {
                    expected: 0,
                    actual: v
                })
            );
        } else {
            // The stream was empty: the append was admitted; keep the model in step.
            let recorded = stale.expect("NoStream on an empty stream");
            model.log.push((stream.clone(), 1, message("stale")));
            model.versions.insert(stream.clone(), 1);
            assert_eq!(recorded[0].position, model.log.len() as u64);
        }
        // The next append continues the stream and the log.
        model.append(&*store, &streams[1], 2).await;
    }
    let all = model
        .check(&*store, &format!("at the end, seed {seed}"))
        .await;
    println!(
        "everything_survives_a_restart [{}]: {RESTARTS} restarts, {} events in {} streams read back identical each time",
        factory.describe(),
        all.len(),
        model.versions.len()
    );
}
