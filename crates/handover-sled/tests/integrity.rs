//! The integrity layer on a real directory: the per-stream hash chain, the high-water marks,
//! the anchor outside sled, and appends recorded once per command id.

use std::path::Path;
use std::time::Duration;

use handover_core::{
    Author, Channel, CommandId, ConversationEvent, ConversationId, CustomerId, Event, MessageText,
    StreamId,
};
use handover_sled::{SledOptions, SledStore};
use handover_store::{
    decode_record, encode_record, record_previous_hash, Damage, EventStore, ExpectedVersion,
    RecordHash, SeqRange, StoreError,
};

fn conversation(n: u128) -> StreamId {
    let base = 0x0190_f1f0_0000_7000_8000_0000_0000_0000_u128;
    StreamId::Conversation(ConversationId::from_uuid(uuid::Uuid::from_u128(base + n)))
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

fn open_store(dir: &Path) -> SledStore {
    SledStore::open(dir, SledOptions::default()).expect("the store opens")
}

/// Opens without checking the log against its anchor, as an audit does.
fn open_for_inspection(dir: &Path) -> SledStore {
    SledStore::open(
        dir,
        SledOptions {
            check_acknowledged_on_open: false,
            ..SledOptions::default()
        },
    )
    .unwrap()
}

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
    let db = SledStore::open_raw(dir, Duration::from_secs(5)).expect("sled opens the directory");
    let log = db.open_tree("log").expect("the log tree");
    change(&log);
    db.flush().expect("flushed");
}

/// Replaces a record with a different one that passes every check of its own: a valid
/// checksum, the right place, and the hash of its predecessor. Only the chain can tell.
fn forge(log: &sled::Tree, stream: &StreamId, seq: u64, text: &str) {
    let key = record_key(stream, seq);
    let stored = log.get(&key).unwrap().expect("the record exists");
    let mut record = decode_record(&stored).unwrap();
    record.event = message(text);
    let previous = record_previous_hash(&stored).expect("format 2");
    log.insert(key, encode_record(&record, &previous).unwrap())
        .unwrap();
}

#[track_caller]
fn assert_damage<T: std::fmt::Debug>(
    result: Result<T, StoreError>,
    damage: Damage,
    stream: &StreamId,
    seq: u64,
) {
    match result {
        Err(StoreError::Corrupted { at, damage: d, .. }) => {
            assert_eq!(d, damage, "at {at}");
            assert_eq!(at.stream.as_ref(), Some(stream));
            assert_eq!(at.seq, Some(seq));
        }
        other => panic!("expected {damage:?} at {stream} seq {seq}, got {other:?}"),
    }
}

async fn conversation_of_four(dir: &Path, stream: &StreamId) {
    let store = open_store(dir);
    let events = vec![opened(), message("one"), message("two"), message("three")];
    store
        .append(stream, ExpectedVersion::NoStream, events)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_forged_record_with_a_valid_checksum_breaks_the_chain_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let a = conversation(1);
    conversation_of_four(dir.path(), &a).await;
    damage(dir.path(), |log| forge(log, &a, 2, "a refund was promised"));

    let store = open_store(dir.path());
    assert_damage(
        store.read_stream(&a, SeqRange::ALL).await,
        Damage::Chain,
        &a,
        3,
    );
    assert_damage(store.read_all(1, usize::MAX).await, Damage::Chain, &a, 3);
    assert_damage(
        store.scan_streams().collect::<Result<Vec<_>, _>>(),
        Damage::Chain,
        &a,
        3,
    );
    // What came before the forgery reads as it was.
    let before = store
        .read_stream(
            &a,
            SeqRange {
                from: 1,
                to: 2,
                max: usize::MAX,
            },
        )
        .await
        .unwrap();
    assert_eq!(before.len(), 2);
}

#[tokio::test]
async fn a_forged_last_record_differs_from_its_high_water_mark() {
    let dir = tempfile::tempdir().unwrap();
    let a = conversation(1);
    conversation_of_four(dir.path(), &a).await;
    damage(dir.path(), |log| forge(log, &a, 4, "the customer agreed"));

    let store = open_for_inspection(dir.path());
    assert_damage(
        store.read_stream(&a, SeqRange::ALL).await,
        Damage::Chain,
        &a,
        4,
    );
    assert_damage(
        store.scan_streams().collect::<Result<Vec<_>, _>>(),
        Damage::Chain,
        &a,
        4,
    );
    assert_damage(store.read_all(1, usize::MAX).await, Damage::Chain, &a, 4);
    // It is also the record the anchor names: opening with the check on refuses the log.
    drop(store);
    assert_damage(
        SledStore::open(dir.path(), SledOptions::default()),
        Damage::Chain,
        &a,
        4,
    );
}

#[tokio::test]
async fn a_stream_that_lost_its_last_record_is_truncated_not_shorter() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (conversation(1), conversation(2));
    conversation_of_four(dir.path(), &a).await;
    conversation_of_four(dir.path(), &b).await;
    damage(dir.path(), |log| {
        log.remove(record_key(&a, 4)).unwrap().unwrap();
    });

    let store = open_store(dir.path());
    assert_damage(
        store.read_stream(&a, SeqRange::ALL).await,
        Damage::Truncated,
        &a,
        4,
    );
    assert_damage(
        store.scan_streams().collect::<Result<Vec<_>, _>>(),
        Damage::Truncated,
        &a,
        4,
    );
    // A read that stops before the missing record is sound.
    let head = store
        .read_stream(
            &a,
            SeqRange {
                from: 1,
                to: 3,
                max: usize::MAX,
            },
        )
        .await
        .unwrap();
    assert_eq!(head.len(), 3);
}

fn mark_key(stream: &StreamId) -> Vec<u8> {
    let mut key = record_key(stream, 0);
    key[0] = b'M';
    key.truncate(key.len() - 8);
    key
}

/// Appends `appends` single events to a new conversation `stream`, each its own group.
async fn many_groups(dir: &Path, stream: &StreamId, appends: u64) {
    append_groups(&open_store(dir), stream, appends).await;
}

async fn append_groups(store: &SledStore, stream: &StreamId, appends: u64) {
    let mut version = 0;
    for n in 0..appends {
        let events = vec![if n == 0 { opened() } else { message("more") }];
        let expected = match version {
            0 => ExpectedVersion::NoStream,
            v => ExpectedVersion::Exact(v),
        };
        version += store
            .append(stream, expected, events)
            .await
            .unwrap()
            .unwrap()
            .len() as u64;
    }
}

/// A stream of format 2 records always has a high-water mark; one without (its mark lost with
/// a damaged page) is truncated as far as anyone can tell, not a stream that ends where its
/// records do: every read says so.
#[tokio::test]
async fn a_stream_whose_mark_is_missing_is_truncated_not_shorter() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (conversation(1), conversation(2));
    conversation_of_four(dir.path(), &a).await;
    // Enough groups after it that its mark is no longer only in the latest index chunks.
    many_groups(dir.path(), &b, 70).await;
    // The open re-derives a lost mark from the index chunk that carries the stream's tail: to
    // leave the stream without one, that chunk goes too, which a normal open finds.
    damage(dir.path(), |log| {
        log.remove(mark_key(&a)).unwrap().expect("a has a mark");
        let mut chunk = vec![b'G'];
        chunk.extend_from_slice(&1u64.to_be_bytes());
        log.remove(chunk).unwrap().expect("a's index chunk");
    });
    match SledStore::open(dir.path(), SledOptions::default()) {
        Err(StoreError::Corrupted { at, damage, .. }) => {
            assert_eq!((damage, at.position), (Damage::Gap, Some(1)));
        }
        other => panic!("expected the gap to be found at open, got {other:?}"),
    }

    // Opened for inspection, every read of the stream says it is truncated.
    let store = open_for_inspection(dir.path());
    assert_damage(
        store.read_stream(&a, SeqRange::ALL).await,
        Damage::Truncated,
        &a,
        4,
    );
    assert_damage(store.stream_version(&a).await, Damage::Truncated, &a, 4);
    assert_damage(
        store.scan_streams().collect::<Result<Vec<_>, _>>(),
        Damage::Truncated,
        &a,
        4,
    );
    // An append cannot build on a stream whose end is unknown.
    assert_damage(
        store
            .append(&a, ExpectedVersion::Exact(4), vec![message("five")])
            .await,
        Damage::Truncated,
        &a,
        4,
    );
    assert_eq!(
        store.read_stream(&b, SeqRange::ALL).await.unwrap().len(),
        70
    );
}

/// Writes conversation `a` as two appends (seqs 1-4 at positions 1-4, then 5-6 at positions
/// 5-6), then `later` single appends to conversation `b`, and takes out what a damaged page of
/// the engine's log can take out alone: one batch in the middle, `a`'s second append (its
/// records and its index chunk), while every batch after it survives.
async fn lose_a_middle_batch(dir: &Path, a: &StreamId, b: &StreamId, later: u64) {
    {
        // One session: the checkpoints are the writer's, none from a reopen in between.
        let store = open_store(dir);
        let first = vec![opened(), message("one"), message("two"), message("three")];
        store
            .append(a, ExpectedVersion::NoStream, first)
            .await
            .unwrap()
            .unwrap();
        let second = vec![message("four"), message("five")];
        store
            .append(a, ExpectedVersion::Exact(4), second)
            .await
            .unwrap()
            .unwrap();
        append_groups(&store, b, later).await;
    }
    damage(dir, |log| {
        let mut chunk = vec![b'G'];
        chunk.extend_from_slice(&5u64.to_be_bytes());
        for key in [record_key(a, 5), record_key(a, 6), chunk] {
            log.remove(key).unwrap().expect("the key was written");
        }
    });
}

/// A batch lost in the middle of the log, before two checkpoints of the high-water marks: the
/// checkpoints, written later, hold the stream's end, so the stream reads as truncated, not as
/// a shorter stream (once, a zeroed page of sled's log took a stream's last records and the
/// mark written in the same batch, and the stream read back shorter without an error).
#[tokio::test]
async fn a_batch_lost_before_a_checkpoint_leaves_its_stream_truncated_not_shorter() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (conversation(1), conversation(2));
    // Two checkpoints after it.
    lose_a_middle_batch(dir.path(), &a, &b, 140).await;

    // The open replays the whole index and finds the gap.
    match SledStore::open(dir.path(), SledOptions::default()) {
        Err(StoreError::Corrupted { at, damage, .. }) => {
            assert_eq!((damage, at.position), (Damage::Gap, Some(5)));
        }
        other => panic!("expected the gap to be found at open, got {other:?}"),
    }
    // Opened for inspection, the stream reads as truncated.
    let store = open_for_inspection(dir.path());
    assert_damage(
        store.read_stream(&a, SeqRange::ALL).await,
        Damage::Truncated,
        &a,
        5,
    );
    assert_damage(
        store.scan_streams().collect::<Result<Vec<_>, _>>(),
        Damage::Truncated,
        &a,
        5,
    );
    match store.read_all(1, usize::MAX).await {
        Err(StoreError::Corrupted { at, damage, .. }) => {
            assert_eq!((damage, at.position), (Damage::Gap, Some(5)));
        }
        other => panic!("expected a gap at position 5, got {other:?}"),
    }
}

/// A batch lost in the middle of the log after the checkpoint before the last: the open that
/// replays the chunks since then finds the gap (its index chunk held the only record of its
/// streams' ends, or the last checkpoint's batch may have lost their marks).
#[tokio::test]
async fn a_batch_lost_after_the_last_checkpoint_is_found_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (conversation(1), conversation(2));
    lose_a_middle_batch(dir.path(), &a, &b, 3).await;

    match SledStore::open(dir.path(), SledOptions::default()) {
        Err(StoreError::Corrupted { at, damage, .. }) => {
            assert_eq!((damage, at.position), (Damage::Gap, Some(5)));
        }
        other => panic!("expected the gap to be found at open, got {other:?}"),
    }
}

/// A damaged page can take out part of a checkpoint's own batch: a stream's last records and
/// the `M` key the checkpoint wrote for them (its older value comes back), while the
/// checkpoint key, elsewhere, survives. The open replays the chunks since the checkpoint
/// before the last, which still name the stream's end.
#[tokio::test]
async fn a_checkpoint_that_lost_a_stream_s_records_and_mark_leaves_it_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (conversation(1), conversation(2));
    {
        let store = open_store(dir.path());
        let first = vec![opened(), message("one"), message("two"), message("three")];
        store
            .append(&a, ExpectedVersion::NoStream, first)
            .await
            .unwrap()
            .unwrap();
        // Groups 2 to 127: the checkpoint at group 64 writes a's mark (seq 4).
        append_groups(&store, &b, 126).await;
        // Group 128, a checkpoint: a's last records and its new mark (seq 6) in one batch.
        let second = vec![message("four"), message("five")];
        store
            .append(&a, ExpectedVersion::Exact(4), second)
            .await
            .unwrap()
            .unwrap();
        let more = vec![message("more")];
        store
            .append(&b, ExpectedVersion::Exact(126), more)
            .await
            .unwrap()
            .unwrap();
    }
    damage(dir.path(), |log| {
        let fourth = log
            .get(record_key(&a, 4))
            .unwrap()
            .expect("a's fourth record");
        let mut mark = vec![1, 0, 0, 0, 0];
        mark.extend_from_slice(&4u64.to_be_bytes());
        mark.extend_from_slice(RecordHash::of(&fourth).as_bytes());
        let crc = crc32fast::hash(&mark[5..]);
        mark[1..5].copy_from_slice(&crc.to_be_bytes());
        let older = log.insert(mark_key(&a), mark).unwrap().expect("a's mark");
        assert_eq!(
            &older[5..13],
            &6u64.to_be_bytes(),
            "the checkpoint wrote a's mark"
        );
        for seq in [5, 6] {
            log.remove(record_key(&a, seq))
                .unwrap()
                .expect("the record");
        }
    });

    let store = open_store(dir.path());
    assert_damage(
        store.read_stream(&a, SeqRange::ALL).await,
        Damage::Truncated,
        &a,
        5,
    );
}

/// What sled's recovery does after damage in the middle of its own log: everything written
/// from there on is gone (records, marks and index alike), and sled opens without an error.
#[tokio::test]
async fn a_log_the_engine_cut_short_is_refused_at_open_with_the_last_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (conversation(1), conversation(2));
    conversation_of_four(dir.path(), &a).await;
    conversation_of_four(dir.path(), &b).await;
    damage(dir.path(), |log| {
        let mut mark = vec![b'M'];
        mark.extend_from_slice(&record_key(&b, 1)[1..18]);
        let mut chunk = vec![b'G'];
        chunk.extend_from_slice(&5u64.to_be_bytes());
        for key in (1..=4).map(|seq| record_key(&b, seq)).chain([chunk]) {
            log.remove(key).unwrap().expect("the key was written");
        }
        // b's tail is in its chunk; its mark, if a checkpoint wrote one since, goes too.
        log.remove(mark).unwrap();
    });

    match SledStore::open(dir.path(), SledOptions::default()) {
        Err(StoreError::Corrupted { at, damage, detail }) => {
            assert_eq!(damage, Damage::Truncated);
            assert_eq!(
                (at.stream.as_ref(), at.seq, at.position),
                (Some(&b), Some(4), Some(8))
            );
            assert!(detail.contains("up to position 8"), "{detail}");
        }
        other => panic!("expected the log to be refused, got {other:?}"),
    }
    // Opened for inspection, the shorter log is readable, and the check says what is missing.
    let store = open_for_inspection(dir.path());
    assert_eq!(store.read_all(1, usize::MAX).await.unwrap().len(), 4);
    assert_damage(store.check_acknowledged(), Damage::Truncated, &b, 4);
}

#[tokio::test]
async fn a_command_is_appended_once_however_often_it_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let a = conversation(1);
    let store = open_store(dir.path());
    let command = CommandId::new();
    let first = store
        .append_once(
            &a,
            ExpectedVersion::NoStream,
            command,
            vec![opened(), message("hi")],
        )
        .await
        .unwrap()
        .unwrap();
    // The retry's expected version is stale now; it is answered with the first outcome.
    let retry = store
        .append_once(
            &a,
            ExpectedVersion::NoStream,
            command,
            vec![opened(), message("hi")],
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, retry);
    assert_eq!(store.stream_version(&a).await.unwrap(), 2);
    assert_eq!(
        store.command_outcome(&a, command).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.command_outcome(&a, CommandId::new()).await.unwrap(),
        None
    );
    // Remembered across a restart.
    drop(store);
    let store = open_store(dir.path());
    let after_restart = store
        .append_once(&a, ExpectedVersion::Exact(2), command, vec![message("hi")])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after_restart, first);
    assert_eq!(store.stream_version(&a).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_of_one_command_record_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = conversation(1);
    let store = open_store(dir.path());
    store
        .append(&a, ExpectedVersion::NoStream, vec![opened()])
        .await
        .unwrap()
        .unwrap();
    let command = CommandId::new();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let a = a.clone();
            tokio::spawn(async move {
                store
                    .append_once(
                        &a,
                        ExpectedVersion::Exact(1),
                        command,
                        vec![message("once")],
                    )
                    .await
                    .unwrap()
                    .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert!(outcomes.windows(2).all(|pair| pair[0] == pair[1]));
    assert_eq!(outcomes[0][0].seq, 2);
    assert_eq!(store.stream_version(&a).await.unwrap(), 2);
    println!(
        "8 concurrent retries of one command: 1 append, seq {}",
        outcomes[0][0].seq
    );
}

#[tokio::test]
async fn reads_past_the_end_or_short_of_it_are_sound() {
    let dir = tempfile::tempdir().unwrap();
    let a = conversation(1);
    conversation_of_four(dir.path(), &a).await;
    let store = open_store(dir.path());
    for (from, to, max, want) in [
        (5, u64::MAX, usize::MAX, 0),
        (10, 20, usize::MAX, 0),
        (2, 3, usize::MAX, 2),
        (1, u64::MAX, 2, 2),
        (4, u64::MAX, usize::MAX, 1),
    ] {
        let read = store
            .read_stream(&a, SeqRange { from, to, max })
            .await
            .unwrap_or_else(|e| panic!("from {from} to {to} max {max}: {e}"));
        assert_eq!(read.len(), want, "from {from} to {to} max {max}");
    }
}

#[tokio::test]
async fn a_missing_or_unreadable_anchor_is_an_error_not_a_silently_unchecked_log() {
    let dir = tempfile::tempdir().unwrap();
    let a = conversation(1);
    conversation_of_four(dir.path(), &a).await;
    let anchor = dir.path().join("handover.anchor");
    for damage_anchor in [
        |path: &Path| std::fs::write(path, vec![0x5a; 8192]).unwrap(),
        |path: &Path| std::fs::remove_file(path).unwrap(),
    ] {
        let kept = std::fs::read(&anchor).unwrap();
        damage_anchor(&anchor);
        assert_damage(
            SledStore::open(dir.path(), SledOptions::default()),
            Damage::Truncated,
            &a,
            4,
        );
        let store = open_for_inspection(dir.path());
        assert_damage(store.check_acknowledged(), Damage::Truncated, &a, 4);
        drop(store);
        std::fs::write(&anchor, kept).unwrap();
        // Restored, the log opens again.
        drop(open_store(dir.path()));
    }
}
