//! Many durable appends in flight at once all complete: sled 0.34.7's `flush_async` deadlocks
//! its own thread pool from about 8 concurrent flushes (sled issue 1308), which is why the store
//! flushes on tokio's blocking pool instead.

use std::sync::Arc;
use std::time::Duration;

use handover_core::{Channel, ConversationEvent, ConversationId, CustomerId, Event, StreamId};
use handover_store::{Durability, EventStore, ExpectedVersion, SledStore, StoreOptions};

const APPENDERS: u64 = 64;
const APPENDS_EACH: u64 = 10;

#[test]
fn sixty_four_concurrent_durable_appenders_all_finish() {
    // The appenders run on a runtime of their own: a deadlock in sled blocks its threads, so
    // only a watchdog outside it can notice (a guard against a hang, not a speed assertion: the
    // appends take well under a second).
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap();
        let _ = done_tx.send(runtime.block_on(append_concurrently()));
    });
    let head = done_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("durable appends deadlocked");
    assert_eq!(head, APPENDERS * APPENDS_EACH);
}

async fn append_concurrently() -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        durability: Durability::Flush,
        ..StoreOptions::default()
    };
    let store = Arc::new(SledStore::open(dir.path(), options).unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..APPENDERS {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let stream = StreamId::Conversation(ConversationId::from_uuid(uuid::Uuid::from_u128(
                u128::from(i) + 1,
            )));
            let event = Event::Conversation(ConversationEvent::Opened {
                customer: CustomerId::new("c").unwrap(),
                channel: Channel::new("web").unwrap(),
                human: None,
            });
            for n in 0..APPENDS_EACH {
                store
                    .append(&stream, ExpectedVersion::Exact(n), vec![event.clone()])
                    .await
                    .unwrap()
                    .unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    store.head()
}
