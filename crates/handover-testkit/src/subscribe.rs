//! Live subscriptions: every event appended after `subscribe`, once each, in position order.

use std::sync::Arc;
use std::time::Duration;

use handover_store::{ExpectedVersion, RecordedEvent};
use tokio::sync::broadcast::{self, error::RecvError};

use crate::values::{append, conversation, message, messages, positions, seqs};
use crate::StoreFactory;

/// How long a receiver may wait for an event already acknowledged before it is reported as a
/// hang (a guard, not a measure of speed).
const WAIT_GUARD: Duration = Duration::from_secs(60);

async fn next(live: &mut broadcast::Receiver<Arc<RecordedEvent>>, got: usize) -> RecordedEvent {
    match tokio::time::timeout(WAIT_GUARD, live.recv()).await {
        Ok(Ok(record)) => Arc::unwrap_or_clone(record),
        Ok(Err(RecvError::Lagged(missed))) => {
            panic!("the subscriber lagged and missed {missed} events after {got}")
        }
        Ok(Err(RecvError::Closed)) => panic!("the subscription closed after {got} events"),
        Err(_) => panic!("no event delivered within {WAIT_GUARD:?} after {got} events"),
    }
}

/// Two subscribers taken on a log that already holds an event receive every event appended
/// afterwards by four concurrent writers (two-event appends): each exactly once, in position
/// order from the head at the time of subscribing, equal to the log as `read_all` returns it,
/// each stream in seq order; the next event either receives is the one appended next.
pub async fn each_appended_event_once_in_position_order<F: StoreFactory>(factory: &F) {
    const WRITERS: u128 = 4;
    const ROUNDS: u64 = 25;
    const BATCH: usize = 2;
    let place = factory.fresh().await;
    let store = factory.open(&place).await;
    append(
        &*store,
        &conversation(99),
        ExpectedVersion::NoStream,
        vec![message("before subscribing")],
    )
    .await;
    let mut subscribers = [store.subscribe(), store.subscribe()];
    let from = store.head() + 1;

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = Arc::clone(&store);
        writers.push(tokio::spawn(async move {
            let stream = conversation(w);
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
    let total = usize::try_from(WRITERS as u64 * ROUNDS).expect("a small count") * BATCH;
    let log = store
        .read_all(from, usize::MAX)
        .await
        .unwrap_or_else(|e| panic!("reading the log failed: {e}"));
    assert_eq!(log.len(), total);
    let marker = append(
        &*store,
        &conversation(99),
        ExpectedVersion::Exact(1),
        vec![message("after the writers")],
    )
    .await;
    for (s, live) in subscribers.iter_mut().enumerate() {
        let mut delivered = Vec::with_capacity(total);
        while delivered.len() < total {
            delivered.push(next(live, delivered.len()).await);
        }
        assert_eq!(
            positions(&delivered),
            (from..from + total as u64).collect::<Vec<_>>(),
            "subscriber {s}: positions delivered"
        );
        assert_eq!(
            delivered, log,
            "subscriber {s}: what it received against the log"
        );
        for w in 0..WRITERS {
            let stream = conversation(w);
            let of_stream: Vec<RecordedEvent> = delivered
                .iter()
                .filter(|r| r.stream == stream)
                .cloned()
                .collect();
            assert_eq!(
                seqs(&of_stream),
                (1..=ROUNDS * BATCH as u64).collect::<Vec<_>>(),
                "subscriber {s}: {stream}"
            );
        }
        // Nothing repeated or left over: the next event is the one appended after them.
        let following = next(live, delivered.len()).await;
        assert_eq!(
            &following, &*marker[0],
            "subscriber {s}: the event after the writers'"
        );
    }
    println!(
        "each_appended_event_once_in_position_order [{}]: 2 subscribers each received {} events once in position order (from position {from}), then the next one",
        factory.describe(),
        total + 1
    );
}
