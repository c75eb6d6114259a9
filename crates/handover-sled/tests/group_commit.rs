//! Group commit on a real sled directory: many appenders in flight at once all complete, every
//! acknowledged append is in the log in order, and syncs are shared.
//!
//! Before the journal, sled 0.34.7's `flush_async` deadlocked its own thread pool from about 8
//! concurrent flushes (sled issue 1308); the watchdog below still guards against any hang.

use std::sync::Arc;
use std::time::Duration;

use handover_core::{Channel, ConversationEvent, ConversationId, CustomerId, Event, StreamId};
use handover_sled::{SledOptions, SledStore};
use handover_store::{Durability, EventStore, ExpectedVersion, SeqRange, StoreStats};

const APPENDERS: u64 = 64;
const APPENDS_EACH: u64 = 10;

fn stream(i: u64) -> StreamId {
    StreamId::Conversation(ConversationId::from_uuid(uuid::Uuid::from_u128(
        u128::from(i) + 1,
    )))
}

/// Runs the appenders on a runtime of their own: a deadlock blocks its threads, so only a
/// watchdog outside it can notice (a guard against a hang, not a speed assertion).
fn run_guarded(durability: Durability) -> StoreStats {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let _ = done_tx.send(runtime.block_on(append_concurrently(durability)));
    });
    done_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("concurrent appends hung")
}

async fn append_concurrently(durability: Durability) -> StoreStats {
    let dir = tempfile::tempdir().unwrap();
    let options = SledOptions {
        durability,
        ..SledOptions::default()
    };
    let store = Arc::new(SledStore::open(dir.path(), options.clone()).unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..APPENDERS {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let event = Event::Conversation(ConversationEvent::Opened {
                customer: CustomerId::new("c").unwrap(),
                channel: Channel::new("web").unwrap(),
                human: None,
            });
            for n in 0..APPENDS_EACH {
                let records = store
                    .append(&stream(i), ExpectedVersion::Exact(n), vec![event.clone()])
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(records[0].seq, n + 1);
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(store.head(), APPENDERS * APPENDS_EACH);
    let stats = store.stats();
    drop(store);

    // Everything acknowledged is there after a reopen, every stream contiguous.
    let store = SledStore::open(dir.path(), options).unwrap();
    for i in 0..APPENDERS {
        let records = store.read_stream(&stream(i), SeqRange::ALL).await.unwrap();
        let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, (1..=APPENDS_EACH).collect::<Vec<_>>());
    }
    let positions: Vec<u64> = store.iter_all(1).map(|r| r.unwrap().position).collect();
    assert_eq!(
        positions,
        (1..=APPENDERS * APPENDS_EACH).collect::<Vec<_>>()
    );
    stats
}

#[test]
fn sixty_four_concurrent_durable_appenders_all_finish_and_share_syncs() {
    let stats = run_guarded(Durability::Durable);
    assert_eq!(stats.appends, APPENDERS * APPENDS_EACH);
    assert_eq!(stats.events, APPENDERS * APPENDS_EACH);
    // One sync per group at most, and never more syncs than appends.
    assert!(stats.syncs >= 1 && stats.syncs <= stats.groups, "{stats:?}");
    assert!(stats.groups <= stats.appends, "{stats:?}");
}

#[test]
fn process_crash_durability_also_syncs_once_per_group() {
    let stats = run_guarded(Durability::ProcessCrash);
    assert_eq!(stats.appends, APPENDERS * APPENDS_EACH);
    assert!(stats.syncs >= 1 && stats.syncs <= stats.groups, "{stats:?}");
}

#[test]
fn buffered_durability_never_syncs() {
    let stats = run_guarded(Durability::Buffered);
    assert_eq!(stats.appends, APPENDERS * APPENDS_EACH);
    assert_eq!(stats.syncs, 0);
}
