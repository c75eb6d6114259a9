//! Optimistic concurrency: expected versions, racing appenders, and idempotent retries.

use std::sync::Arc;

use handover_core::StreamId;
use handover_store::{Conflict, EventStore, ExpectedVersion};
use tokio::sync::Barrier;

use crate::values::{
    append, conversation, env_count, message, messages, owned, read, read_all, seqs, version,
};
use crate::StoreFactory;

/// Tries an append that must be refused with `conflict`, and checks it wrote nothing.
async fn refused(
    store: &dyn EventStore,
    stream: &StreamId,
    expected: ExpectedVersion,
    conflict: Conflict,
) {
    let before = read_all(store).await;
    let head = store.head();
    let v = version(store, stream).await;
    let outcome = store
        .append(stream, expected, messages("refused", 2))
        .await
        .unwrap_or_else(|e| panic!("append {expected:?} to {stream} failed: {e}"));
    assert_eq!(
        outcome.map(|r| owned(&r)),
        Err(conflict),
        "append {expected:?} to {stream} at version {v}"
    );
    assert_eq!(store.head(), head, "a refused append moved the head");
    assert_eq!(
        version(store, stream).await,
        v,
        "a refused append moved the version"
    );
    assert_eq!(
        read_all(store).await,
        before,
        "a refused append wrote something"
    );
}

/// `NoStream` admits only a stream without events, `Exact(v)` only a stream at `v` (stale
/// and ahead are both refused), `Any` every stream; a refusal is a [`Conflict`] naming the
/// expected and the actual version, and writes nothing, not even an empty stream.
pub async fn expected_versions_are_checked<F: StoreFactory>(factory: &F) {
    let place = factory.fresh().await;
    let store = factory.open(&place).await;
    let store = &*store;
    let (a, b, c, d) = (
        conversation(1),
        conversation(2),
        conversation(3),
        conversation(4),
    );
    let first = append(store, &a, ExpectedVersion::NoStream, vec![message("a 1")]).await;
    assert_eq!(seqs(&owned(&first)), vec![1]);
    let mut refusals = 0;
    refused(
        store,
        &a,
        ExpectedVersion::NoStream,
        Conflict {
            expected: 0,
            actual: 1,
        },
    )
    .await;
    refusals += 1;
    append(store, &a, ExpectedVersion::Exact(1), messages("a", 2)).await;
    for (expected, label) in [
        (0, "stale"),
        (1, "stale"),
        (2, "stale"),
        (4, "ahead"),
        (100, "ahead"),
    ] {
        refused(
            store,
            &a,
            ExpectedVersion::Exact(expected),
            Conflict {
                expected,
                actual: 3,
            },
        )
        .await;
        refusals += 1;
        println!(
            "expected_versions_are_checked: Exact({expected}) on a stream at 3 ({label}) refused"
        );
    }
    // Any admits whatever the version, on an existing stream and on a new one.
    let any = append(store, &a, ExpectedVersion::Any, vec![message("a any")]).await;
    assert_eq!(seqs(&owned(&any)), vec![4]);
    let any_new = append(store, &b, ExpectedVersion::Any, vec![message("b any")]).await;
    assert_eq!(seqs(&owned(&any_new)), vec![1]);
    refused(
        store,
        &b,
        ExpectedVersion::NoStream,
        Conflict {
            expected: 0,
            actual: 1,
        },
    )
    .await;
    refusals += 1;
    // Exact(0) is the version of a stream without events.
    let zero = append(store, &c, ExpectedVersion::Exact(0), vec![message("c 1")]).await;
    assert_eq!(seqs(&owned(&zero)), vec![1]);
    // A refusal on an unknown stream creates nothing.
    refused(
        store,
        &d,
        ExpectedVersion::Exact(3),
        Conflict {
            expected: 3,
            actual: 0,
        },
    )
    .await;
    refusals += 1;
    assert!(read(store, &d).await.is_empty());
    assert_eq!(version(store, &d).await, 0);
    assert_eq!(store.head(), 6);
    println!(
        "expected_versions_are_checked [{}]: {refusals} refusals wrote nothing; Any, NoStream and Exact(0) admitted as specified",
        factory.describe()
    );
}

/// Eight tasks race on one stream, round after round: each reads the version, then (once all
/// have read it) appends with `Exact(version)`. Every round has exactly one winner and seven
/// conflicts naming the winner's version, and the stream ends with exactly one event per
/// round, each the winner's. `HANDOVER_KIT_RACE_ROUNDS` sets the rounds (1,000 by default).
pub async fn racing_appenders_have_one_winner_per_round<F: StoreFactory>(factory: &F) {
    const TASKS: usize = 8;
    let rounds = env_count("HANDOVER_KIT_RACE_ROUNDS", 1_000);
    let place = factory.fresh().await;
    let store = factory.open(&place).await;
    let stream = conversation(1);
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        let stream = stream.clone();
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            let mut conflicts = 0u64;
            for round in 0..rounds {
                // Everyone finished the previous round: the stream is at `round`.
                barrier.wait().await;
                let v = version(&*store, &stream).await;
                assert_eq!(v, round, "task {task} read the version at round {round}");
                // Everyone has read it before anyone appends.
                barrier.wait().await;
                let outcome = store
                    .append(
                        &stream,
                        ExpectedVersion::Exact(v),
                        vec![message(&format!("round {round} task {task}"))],
                    )
                    .await
                    .unwrap_or_else(|e| panic!("task {task} round {round}: store error {e}"));
                match outcome {
                    Ok(records) => {
                        assert_eq!(seqs(&owned(&records)), vec![v + 1]);
                        won.push(round);
                    }
                    Err(conflict) => {
                        assert_eq!(
                            conflict,
                            Conflict {
                                expected: v,
                                actual: v + 1
                            },
                            "task {task} round {round}"
                        );
                        conflicts += 1;
                    }
                }
            }
            (task, won, conflicts)
        }));
    }
    let mut winners: Vec<Vec<usize>> =
        vec![Vec::new(); usize::try_from(rounds).expect("a round count that fits")];
    let mut conflicts = 0;
    let mut wins_per_task = vec![0; TASKS];
    for task in tasks {
        let (task, won, lost) = task.await.expect("a racing task panicked");
        wins_per_task[task] = won.len();
        conflicts += lost;
        for round in won {
            winners[usize::try_from(round).expect("a round that fits")].push(task);
        }
    }
    for (round, who) in winners.iter().enumerate() {
        assert_eq!(who.len(), 1, "round {round} had winners {who:?}");
    }
    assert_eq!(conflicts, rounds * (TASKS as u64 - 1));
    let records = read(&*store, &stream).await;
    assert_eq!(seqs(&records), (1..=rounds).collect::<Vec<_>>());
    for (round, record) in records.iter().enumerate() {
        let winner = winners[round][0];
        assert_eq!(
            record.event,
            message(&format!("round {round} task {winner}")),
            "the event of round {round}"
        );
    }
    assert_eq!(store.head(), rounds);
    println!(
        "racing_appenders_have_one_winner_per_round [{}]: {rounds} rounds of {TASKS} tasks, {} winners, {conflicts} conflicts, wins per task {wins_per_task:?}, stream at {}",
        factory.describe(),
        winners.len(),
        records.len()
    );
}
