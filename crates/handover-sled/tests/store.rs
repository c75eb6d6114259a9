//! The sled event store on a real directory: appends and reads, version conflicts, reopening,
//! the global order, live subscriptions, the directory lock, damaged records, and racing
//! appenders.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use handover_core::{
    AgentName, AiAgentEvent, AiAgentId, Author, Channel, ConversationEvent, ConversationId,
    CustomerId, Event, MessageText, StreamId,
};
use handover_sled::{SledOptions, SledStore};
use handover_store::{Conflict, EventStore, ExpectedVersion, RecordedEvent, SeqRange, StoreError};
use tokio::sync::broadcast::error::TryRecvError;

// ---------------------------------------------------------------------------------------------
// Values.
// ---------------------------------------------------------------------------------------------

fn conversation(n: u128) -> StreamId {
    let base = 0x0190_f1f0_0000_7000_8000_0000_0000_0000_u128;
    StreamId::Conversation(ConversationId::from_uuid(uuid::Uuid::from_u128(base + n)))
}

fn agent_stream(id: &str) -> StreamId {
    StreamId::AiAgent(AiAgentId::new(id).unwrap())
}

fn opened() -> Event {
    Event::Conversation(ConversationEvent::Opened {
        customer: CustomerId::new("cust-1").unwrap(),
        channel: Channel::new("web-chat").unwrap(),
        human: None,
    })
}

fn message(text: &str) -> Event {
    Event::Conversation(ConversationEvent::MessagePosted {
        author: Author::Customer(CustomerId::new("cust-1").unwrap()),
        text: MessageText::new(text).unwrap(),
        concerns: vec![],
    })
}

fn messages(prefix: &str, count: usize) -> Vec<Event> {
    (1..=count)
        .map(|i| message(&format!("{prefix} {i}")))
        .collect()
}

fn registered(id: &str) -> Event {
    Event::AiAgent(AiAgentEvent::Registered {
        agent_id: AiAgentId::new(id).unwrap(),
        name: AgentName::new(format!("{id} bot")).unwrap(),
        specialties: vec![],
    })
}

fn activated(id: &str) -> Event {
    Event::AiAgent(AiAgentEvent::Activated {
        agent_id: AiAgentId::new(id).unwrap(),
    })
}

fn open_store(dir: &Path) -> SledStore {
    SledStore::open(dir, SledOptions::default()).expect("the store opens")
}

fn open_raw(dir: &Path) -> sled::Db {
    // A store dropped a moment ago may still hold the lock; wait as `SledStore::open` does.
    SledStore::open_raw(dir, Duration::from_secs(5)).expect("sled opens the directory")
}

/// Appends and expects success: the caller knows the version.
async fn append(
    store: &SledStore,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: &[Event],
) -> Vec<RecordedEvent> {
    store
        .append(stream, expected, events.to_vec())
        .await
        .expect("no store error")
        .expect("no conflict")
        .iter()
        .map(|record| RecordedEvent::clone(record))
        .collect()
}

async fn read(store: &SledStore, stream: &StreamId, range: SeqRange) -> Vec<RecordedEvent> {
    store.read_stream(stream, range).await.expect("readable")
}

fn seqs(records: &[RecordedEvent]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

fn positions(records: &[RecordedEvent]) -> Vec<u64> {
    records.iter().map(|r| r.position).collect()
}

fn events(records: &[RecordedEvent]) -> Vec<Event> {
    records.iter().map(|r| r.event.clone()).collect()
}

/// The key of a stream record, as `docs/storage-format.md` describes it: `s`, the stream key
/// (`c` + 16 UUID bytes for a conversation), the seq as u64 big-endian.
fn record_key(stream: &StreamId, seq: u64) -> Vec<u8> {
    let StreamId::Conversation(id) = stream else {
        panic!("only conversation keys are damaged here");
    };
    let mut key = vec![b's', b'c'];
    key.extend_from_slice(id.as_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Opens the closed directory with sled itself and changes the `log` tree.
fn damage(dir: &Path, change: impl FnOnce(&sled::Tree)) {
    let db = open_raw(dir);
    let log = db.open_tree("log").expect("the log tree");
    change(&log);
    db.flush().expect("flushed");
}

fn raw_value(log: &sled::Tree, key: &[u8]) -> Vec<u8> {
    log.get(key)
        .expect("readable")
        .expect("the record exists")
        .to_vec()
}

/// Expects a `Corrupted` error located at `stream` and `seq`.
#[track_caller]
fn assert_corrupted_at<T: std::fmt::Debug>(
    result: Result<T, StoreError>,
    stream: &StreamId,
    seq: u64,
) {
    match result {
        Err(StoreError::Corrupted { at, .. }) => {
            assert_eq!(at.stream.as_ref(), Some(stream));
            assert_eq!(at.seq, Some(seq));
        }
        other => panic!("expected Corrupted at {stream} seq {seq}, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Append and read.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn appended_events_read_back_with_their_seq_and_position() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let a = conversation(1);
    let b = conversation(2);

    let first = append(
        &store,
        &a,
        ExpectedVersion::NoStream,
        &[opened(), message("a 1"), message("a 2")],
    )
    .await;
    let second = append(
        &store,
        &b,
        ExpectedVersion::Exact(0),
        &[opened(), message("b 1")],
    )
    .await;
    let third = append(&store, &a, ExpectedVersion::Exact(3), &[message("a 3")]).await;

    assert_eq!(seqs(&first), vec![1, 2, 3]);
    assert_eq!(positions(&first), vec![1, 2, 3]);
    assert_eq!(seqs(&second), vec![1, 2]);
    assert_eq!(positions(&second), vec![4, 5]);
    assert_eq!(seqs(&third), vec![4]);
    assert_eq!(positions(&third), vec![6]);

    let stream_a = read(&store, &a, SeqRange::ALL).await;
    assert_eq!(
        events(&stream_a),
        vec![opened(), message("a 1"), message("a 2"), message("a 3")]
    );
    assert_eq!(seqs(&stream_a), vec![1, 2, 3, 4]);
    assert_eq!(positions(&stream_a), vec![1, 2, 3, 6]);
    assert!(stream_a.iter().all(|r| r.stream == a));
    // What append returned is what the log holds.
    let mut returned = first.clone();
    returned.extend(third.clone());
    assert_eq!(stream_a, returned);

    assert_eq!(store.stream_version(&a).await.unwrap(), 4);
    assert_eq!(store.stream_version(&b).await.unwrap(), 2);
    assert_eq!(store.head(), 6);
}

#[tokio::test]
async fn ranges_select_from_to_and_at_most_max() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let a = conversation(1);
    append(&store, &a, ExpectedVersion::NoStream, &messages("m", 10)).await;

    let range = |from, to, max| SeqRange { from, to, max };
    assert_eq!(
        seqs(&read(&store, &a, range(3, 7, usize::MAX)).await),
        vec![3, 4, 5, 6, 7]
    );
    assert_eq!(
        seqs(&read(&store, &a, SeqRange::from(8)).await),
        vec![8, 9, 10]
    );
    assert_eq!(
        seqs(&read(&store, &a, range(2, 10, 3)).await),
        vec![2, 3, 4]
    );
    assert_eq!(
        seqs(&read(&store, &a, range(0, 2, usize::MAX)).await),
        vec![1, 2]
    );
    assert_eq!(
        seqs(&read(&store, &a, range(9, 100, usize::MAX)).await),
        vec![9, 10]
    );
    assert_eq!(
        seqs(&read(&store, &a, range(5, 5, usize::MAX)).await),
        vec![5]
    );
    assert_eq!(
        seqs(&read(&store, &a, range(7, 3, usize::MAX)).await),
        Vec::<u64>::new()
    );
    assert_eq!(
        seqs(&read(&store, &a, range(1, 10, 0)).await),
        Vec::<u64>::new()
    );
    assert_eq!(
        seqs(&read(&store, &a, SeqRange::from(11)).await),
        Vec::<u64>::new()
    );
    assert_eq!(
        events(&read(&store, &a, range(4, 4, 1)).await),
        vec![message("m 4")]
    );
}

#[tokio::test]
async fn an_unknown_stream_reads_empty_at_version_zero() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    append(
        &store,
        &conversation(1),
        ExpectedVersion::NoStream,
        &[opened()],
    )
    .await;

    assert_eq!(read(&store, &conversation(2), SeqRange::ALL).await, vec![]);
    assert_eq!(
        read(&store, &agent_stream("faq"), SeqRange::ALL).await,
        vec![]
    );
    assert_eq!(store.stream_version(&conversation(2)).await.unwrap(), 0);
    assert_eq!(store.stream_version(&agent_stream("faq")).await.unwrap(), 0);
}

#[tokio::test]
async fn an_empty_log_has_head_zero_and_reads_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    assert_eq!(store.head(), 0);
    assert_eq!(store.read_all(1, usize::MAX).await.unwrap(), vec![]);
    assert_eq!(store.read_ai_agents().await.unwrap(), vec![]);
}

#[tokio::test]
async fn ai_agent_streams_read_stream_by_stream() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    // "faq" is a prefix of "faq2": the terminator keeps their keys apart.
    append(
        &store,
        &agent_stream("faq2"),
        ExpectedVersion::NoStream,
        &[registered("faq2")],
    )
    .await;
    append(
        &store,
        &conversation(1),
        ExpectedVersion::NoStream,
        &[opened()],
    )
    .await;
    append(
        &store,
        &agent_stream("faq"),
        ExpectedVersion::NoStream,
        &[registered("faq")],
    )
    .await;
    append(
        &store,
        &agent_stream("faq2"),
        ExpectedVersion::Exact(1),
        &[activated("faq2")],
    )
    .await;
    append(
        &store,
        &agent_stream("faq"),
        ExpectedVersion::Exact(1),
        &[activated("faq")],
    )
    .await;

    let agents = store.read_ai_agents().await.unwrap();
    let read: Vec<(StreamId, u64, Event)> = agents
        .into_iter()
        .map(|r| (r.stream, r.seq, r.event))
        .collect();
    assert_eq!(
        read,
        vec![
            (agent_stream("faq"), 1, registered("faq")),
            (agent_stream("faq"), 2, activated("faq")),
            (agent_stream("faq2"), 1, registered("faq2")),
            (agent_stream("faq2"), 2, activated("faq2")),
        ]
    );
    assert_eq!(seqs(&read_agent(&store, "faq2").await), vec![1, 2]);
}

async fn read_agent(store: &SledStore, id: &str) -> Vec<RecordedEvent> {
    read(store, &agent_stream(id), SeqRange::ALL).await
}

// ---------------------------------------------------------------------------------------------
// Expected versions.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn expected_version_conflicts_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let a = conversation(1);
    append(
        &store,
        &a,
        ExpectedVersion::NoStream,
        &[opened(), message("one")],
    )
    .await;
    let before = store.read_all(1, usize::MAX).await.unwrap();

    let attempts = [
        (
            ExpectedVersion::NoStream,
            Conflict {
                expected: 0,
                actual: 2,
            },
        ),
        (
            ExpectedVersion::Exact(0),
            Conflict {
                expected: 0,
                actual: 2,
            },
        ),
        (
            ExpectedVersion::Exact(1),
            Conflict {
                expected: 1,
                actual: 2,
            },
        ),
        (
            ExpectedVersion::Exact(5),
            Conflict {
                expected: 5,
                actual: 2,
            },
        ),
    ];
    for (expected, conflict) in attempts {
        let outcome = store
            .append(&a, expected, vec![message("late"), message("later")])
            .await
            .expect("a conflict is not a store error");
        assert_eq!(outcome.map(|_| ()), Err(conflict), "{expected:?}");
    }

    assert_eq!(store.stream_version(&a).await.unwrap(), 2);
    assert_eq!(store.head(), 2);
    assert_eq!(store.read_all(1, usize::MAX).await.unwrap(), before);
    // The positions the conflicts did not use are still free.
    let next = append(&store, &a, ExpectedVersion::Exact(2), &[message("two")]).await;
    assert_eq!(positions(&next), vec![3]);
    assert_eq!(seqs(&next), vec![3]);
}

#[tokio::test]
async fn a_conflict_on_an_unknown_stream_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let a = conversation(1);
    let outcome = store
        .append(&a, ExpectedVersion::Exact(3), vec![opened()])
        .await
        .unwrap();
    assert_eq!(
        outcome.map(|_| ()),
        Err(Conflict {
            expected: 3,
            actual: 0
        })
    );
    assert_eq!(store.stream_version(&a).await.unwrap(), 0);
    assert_eq!(store.head(), 0);
}

#[tokio::test]
async fn any_appends_whatever_the_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let a = conversation(1);
    append(&store, &a, ExpectedVersion::Any, &[opened()]).await;
    let later = append(&store, &a, ExpectedVersion::Any, &[message("x")]).await;
    assert_eq!(seqs(&later), vec![2]);
}

#[tokio::test]
async fn multi_event_appends_are_contiguous_in_their_stream_and_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let a = conversation(1);
    let b = conversation(2);
    let mut version_a = 0;
    let mut version_b = 0;
    for round in 0..5u64 {
        let batch_a = append(
            &store,
            &a,
            ExpectedVersion::Exact(version_a),
            &messages(&format!("a{round}"), 3),
        )
        .await;
        let batch_b = append(
            &store,
            &b,
            ExpectedVersion::Exact(version_b),
            &messages(&format!("b{round}"), 2),
        )
        .await;
        assert_eq!(
            seqs(&batch_a),
            vec![version_a + 1, version_a + 2, version_a + 3]
        );
        assert_eq!(seqs(&batch_b), vec![version_b + 1, version_b + 2]);
        let start = round * 5 + 1;
        assert_eq!(positions(&batch_a), vec![start, start + 1, start + 2]);
        assert_eq!(positions(&batch_b), vec![start + 3, start + 4]);
        // One append, one instant.
        assert!(batch_a
            .iter()
            .all(|r| r.recorded_at == batch_a[0].recorded_at));
        version_a += 3;
        version_b += 2;
    }
    assert_eq!(
        seqs(&read(&store, &a, SeqRange::ALL).await),
        (1..=15).collect::<Vec<_>>()
    );
    assert_eq!(
        seqs(&read(&store, &b, SeqRange::ALL).await),
        (1..=10).collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------------
// Reopening, and the global order.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn reopening_preserves_everything_and_positions_continue() {
    let dir = tempfile::tempdir().unwrap();
    let a = conversation(1);
    let b = conversation(2);
    let before = {
        let store = open_store(dir.path());
        append(
            &store,
            &a,
            ExpectedVersion::NoStream,
            &[opened(), message("a 1")],
        )
        .await;
        append(
            &store,
            &agent_stream("faq"),
            ExpectedVersion::NoStream,
            &[registered("faq")],
        )
        .await;
        append(&store, &b, ExpectedVersion::NoStream, &[opened()]).await;
        store.read_all(1, usize::MAX).await.unwrap()
    };
    assert_eq!(before.len(), 4);

    let store = open_store(dir.path());
    assert_eq!(store.read_all(1, usize::MAX).await.unwrap(), before);
    assert_eq!(store.head(), 4);
    assert_eq!(store.stream_version(&a).await.unwrap(), 2);
    assert_eq!(
        events(&store.read_ai_agents().await.unwrap()),
        vec![registered("faq")]
    );

    let next = append(&store, &a, ExpectedVersion::Exact(2), &[message("a 2")]).await;
    assert_eq!(positions(&next), vec![5]);
    assert_eq!(seqs(&next), vec![3]);
    drop(store);

    let store = open_store(dir.path());
    let all = store.read_all(1, usize::MAX).await.unwrap();
    assert_eq!(positions(&all), vec![1, 2, 3, 4, 5]);
    assert!(
        all.windows(2).all(|w| w[0].recorded_at <= w[1].recorded_at),
        "recorded_at went back: {:?}",
        all.iter().map(|r| r.recorded_at).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn read_all_follows_positions_from_and_at_most_max() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let streams = [conversation(1), conversation(2), conversation(3)];
    let mut expected: Vec<(StreamId, u64)> = Vec::new();
    for round in 1..=4u64 {
        for stream in &streams {
            let version = round - 1;
            append(
                &store,
                stream,
                ExpectedVersion::Exact(version),
                &[message(&format!("{stream} {round}"))],
            )
            .await;
            expected.push((stream.clone(), round));
        }
    }

    let all = store.read_all(1, usize::MAX).await.unwrap();
    assert_eq!(positions(&all), (1..=12).collect::<Vec<_>>());
    let places: Vec<(StreamId, u64)> = all.iter().map(|r| (r.stream.clone(), r.seq)).collect();
    assert_eq!(places, expected);

    assert_eq!(
        positions(&store.read_all(4, 3).await.unwrap()),
        vec![4, 5, 6]
    );
    assert_eq!(positions(&store.read_all(0, 2).await.unwrap()), vec![1, 2]);
    assert_eq!(
        positions(&store.read_all(11, 100).await.unwrap()),
        vec![11, 12]
    );
    assert_eq!(store.read_all(13, 100).await.unwrap(), vec![]);
    assert_eq!(store.read_all(1, 0).await.unwrap(), vec![]);
}

// ---------------------------------------------------------------------------------------------
// Subscriptions.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_gets_each_later_event_once_in_position_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    append(
        &store,
        &conversation(99),
        ExpectedVersion::NoStream,
        &[opened()],
    )
    .await;
    let mut live = store.subscribe();

    // Four writers on four streams at once, each appending batches of two.
    let mut writers = Vec::new();
    for w in 0..4u128 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let stream = conversation(w);
            for round in 0..10u64 {
                append(
                    &store,
                    &stream,
                    ExpectedVersion::Exact(round * 2),
                    &messages(&format!("w{w} r{round}"), 2),
                )
                .await;
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }

    let mut delivered = Vec::new();
    loop {
        match live.try_recv() {
            Ok(record) => delivered.push(Arc::unwrap_or_clone(record)),
            Err(TryRecvError::Empty) => break,
            Err(other) => panic!("the subscriber lost events: {other:?}"),
        }
    }
    // Everything after the subscription, nothing before, once each, in order.
    assert_eq!(positions(&delivered), (2..=81).collect::<Vec<_>>());
    assert_eq!(delivered, store.read_all(2, usize::MAX).await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// The directory lock.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_second_open_of_a_directory_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    append(
        &store,
        &conversation(1),
        ExpectedVersion::NoStream,
        &[opened()],
    )
    .await;

    match SledStore::open(dir.path(), SledOptions::default()) {
        Err(StoreError::InUse { path }) => assert_eq!(path, dir.path()),
        other => panic!("expected InUse, got {other:?}"),
    }
    // The first store is unharmed, and once it is closed the directory opens again.
    assert_eq!(store.stream_version(&conversation(1)).await.unwrap(), 1);
    drop(store);
    let again = open_store(dir.path());
    assert_eq!(again.head(), 1);
}

// ---------------------------------------------------------------------------------------------
// Damaged records under valid keys.
// ---------------------------------------------------------------------------------------------

/// Writes conversation 1 (seq 1..=4, positions 1..=4) and conversation 2 (seq 1..=3, positions
/// 5..=7), then closes the store.
async fn two_conversations(dir: &Path) {
    let store = open_store(dir);
    append(
        &store,
        &conversation(1),
        ExpectedVersion::NoStream,
        &[opened(), message("a 1"), message("a 2"), message("a 3")],
    )
    .await;
    append(
        &store,
        &conversation(2),
        ExpectedVersion::NoStream,
        &[opened(), message("b 1"), message("b 2")],
    )
    .await;
}

#[tokio::test]
async fn a_flipped_bit_is_reported_at_its_stream_and_seq() {
    let dir = tempfile::tempdir().unwrap();
    two_conversations(dir.path()).await;
    let a = conversation(1);
    damage(dir.path(), |log| {
        let key = record_key(&a, 2);
        let mut value = raw_value(log, &key);
        let last = value.len() - 1;
        value[last] ^= 0x04;
        log.insert(key, value).unwrap();
    });

    let store = open_store(dir.path());
    assert_corrupted_at(store.read_stream(&a, SeqRange::ALL).await, &a, 2);
    assert_corrupted_at(store.read_all(1, usize::MAX).await, &a, 2);
    // The records around it are intact, and so is the other conversation.
    assert_eq!(seqs(&read(&store, &a, SeqRange::from(3)).await), vec![3, 4]);
    assert_eq!(
        seqs(&read(&store, &conversation(2), SeqRange::ALL).await),
        vec![1, 2, 3]
    );
}

#[tokio::test]
async fn every_flipped_bit_of_a_record_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    two_conversations(dir.path()).await;
    let a = conversation(1);
    let key = record_key(&a, 3);
    let original = {
        let db = open_raw(dir.path());
        let log = db.open_tree("log").unwrap();
        raw_value(&log, &key)
    };
    // Every bit of the header and a spread of bits in the body.
    let bits: Vec<usize> = (0..40).chain((40..original.len() * 8).step_by(7)).collect();
    for bit in bits {
        damage(dir.path(), |log| {
            let mut value = original.clone();
            value[bit / 8] ^= 1 << (bit % 8);
            log.insert(key.clone(), value).unwrap();
        });
        let store = open_store(dir.path());
        assert_corrupted_at(store.read_stream(&a, SeqRange::ALL).await, &a, 3);
    }
}

#[tokio::test]
async fn a_record_copied_from_another_conversation_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    two_conversations(dir.path()).await;
    let a = conversation(1);
    let b = conversation(2);
    damage(dir.path(), |log| {
        let theirs = raw_value(log, &record_key(&b, 1));
        log.insert(record_key(&a, 1), theirs).unwrap();
    });

    let store = open_store(dir.path());
    assert_corrupted_at(store.read_stream(&a, SeqRange::ALL).await, &a, 1);
    assert_corrupted_at(store.read_all(1, usize::MAX).await, &a, 1);
    // The original is still where it belongs.
    assert_eq!(seqs(&read(&store, &b, SeqRange::ALL).await), vec![1, 2, 3]);
}

#[tokio::test]
async fn two_swapped_records_of_one_stream_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    two_conversations(dir.path()).await;
    let a = conversation(1);
    damage(dir.path(), |log| {
        let second = raw_value(log, &record_key(&a, 2));
        let third = raw_value(log, &record_key(&a, 3));
        log.insert(record_key(&a, 2), third).unwrap();
        log.insert(record_key(&a, 3), second).unwrap();
    });

    let store = open_store(dir.path());
    assert_corrupted_at(store.read_stream(&a, SeqRange::ALL).await, &a, 2);
    assert_corrupted_at(store.read_stream(&a, SeqRange::from(3)).await, &a, 3);
    assert_corrupted_at(store.read_all(1, usize::MAX).await, &a, 2);
}

#[tokio::test]
async fn damage_to_the_last_record_is_reported_when_opening() {
    let dir = tempfile::tempdir().unwrap();
    two_conversations(dir.path()).await;
    let b = conversation(2);
    damage(dir.path(), |log| {
        let key = record_key(&b, 3);
        let mut value = raw_value(log, &key);
        value[10] ^= 0x80;
        log.insert(key, value).unwrap();
    });

    assert_corrupted_at(SledStore::open(dir.path(), SledOptions::default()), &b, 3);
}

// ---------------------------------------------------------------------------------------------
// Racing appenders.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn racing_appenders_have_exactly_one_winner_per_round() {
    const TASKS: usize = 8;
    const ROUNDS: u64 = 200;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path());
    let stream = conversation(1);
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        let stream = stream.clone();
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            for round in 0..ROUNDS {
                // Everyone finished the previous round, so the stream is at `round`.
                barrier.wait().await;
                let outcome = store
                    .append(
                        &stream,
                        ExpectedVersion::Exact(round),
                        vec![message(&format!("round {round} task {task}"))],
                    )
                    .await
                    .expect("no store error");
                match outcome {
                    Ok(records) => {
                        assert_eq!(records[0].seq, round + 1);
                        won.push(round);
                    }
                    Err(conflict) => assert_eq!(
                        conflict,
                        Conflict {
                            expected: round,
                            actual: round + 1
                        }
                    ),
                }
            }
            (task, won)
        }));
    }

    let mut winners: Vec<Vec<usize>> = vec![Vec::new(); usize::try_from(ROUNDS).unwrap()];
    for task in tasks {
        let (task, won) = task.await.unwrap();
        for round in won {
            winners[usize::try_from(round).unwrap()].push(task);
        }
    }
    for (round, who) in winners.iter().enumerate() {
        assert_eq!(who.len(), 1, "round {round} had winners {who:?}");
    }

    let records = read(&store, &stream, SeqRange::ALL).await;
    assert_eq!(seqs(&records), (1..=ROUNDS).collect::<Vec<_>>());
    for (round, record) in records.iter().enumerate() {
        let winner = winners[round][0];
        assert_eq!(
            record.event,
            message(&format!("round {round} task {winner}"))
        );
    }
    assert_eq!(store.head(), ROUNDS);
}
