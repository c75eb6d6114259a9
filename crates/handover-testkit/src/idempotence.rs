//! Idempotent retries: [`EventStore::append_once`] records a command once, however often,
//! however concurrently, and whenever it is retried, and [`EventStore::command_outcome`]
//! reports what it recorded.

use std::borrow::Borrow;
use std::sync::Arc;

use handover_core::{CommandId, Event, StreamId};
use handover_store::{Conflict, EventStore, ExpectedVersion, RecordedEvent};
use tokio::sync::Barrier;

use crate::values::{
    append, close, conversation, env_count, messages, owned, positions, read, read_all, seqs,
    version,
};
use crate::StoreFactory;

/// Owned copies of records, whether a store hands them out shared or not.
fn records<T: Borrow<RecordedEvent>>(records: Vec<T>) -> Vec<RecordedEvent> {
    records.into_iter().map(|r| r.borrow().clone()).collect()
}

/// `append_once` that must be admitted: the records it returned.
async fn once(
    store: &dyn EventStore,
    stream: &StreamId,
    expected: ExpectedVersion,
    command: CommandId,
    events: Vec<Event>,
) -> Vec<RecordedEvent> {
    store
        .append_once(stream, expected, command, events)
        .await
        .unwrap_or_else(|e| panic!("append_once {command} to {stream} failed: {e}"))
        .map(|r| owned(&r))
        .unwrap_or_else(|c| panic!("append_once {command} to {stream} conflicted: {c}"))
}

/// What the store remembers of `command` on `stream`.
async fn outcome(
    store: &dyn EventStore,
    stream: &StreamId,
    command: CommandId,
) -> Option<Vec<RecordedEvent>> {
    store
        .command_outcome(stream, command)
        .await
        .unwrap_or_else(|e| panic!("command_outcome {command} on {stream} failed: {e}"))
        .map(records)
}

/// Retries `command` with `expected` and `events` and checks that the store answers with
/// `first` (what the command recorded) and writes nothing.
async fn retry_is_a_replay(
    store: &dyn EventStore,
    stream: &StreamId,
    expected: ExpectedVersion,
    command: CommandId,
    events: Vec<Event>,
    first: &[RecordedEvent],
) {
    let (head, v) = (store.head(), version(store, stream).await);
    let log = read_all(store).await;
    let again = once(store, stream, expected, command, events).await;
    assert_eq!(again, first, "a retry of {command} with {expected:?}");
    assert_eq!(store.head(), head, "a retry of {command} moved the head");
    assert_eq!(version(store, stream).await, v, "a retry moved {stream}");
    assert_eq!(
        read_all(store).await,
        log,
        "a retry of {command} wrote something"
    );
}

/// A command appended once and retried five times in a row (the same request, then with other
/// events) is recorded once: every retry returns the records of the first append, positions
/// included, and writes nothing; `command_outcome` reports the same records.
pub async fn append_once_records_a_sequential_retry_once<F: StoreFactory>(factory: &F) {
    const RETRIES: usize = 5;
    let place = factory.fresh().await;
    let store = factory.open(&place).await;
    let stream = conversation(1);
    append(
        &*store,
        &stream,
        ExpectedVersion::NoStream,
        messages("before", 1),
    )
    .await;
    let command = CommandId::new();
    assert_eq!(outcome(&*store, &stream, command).await, None);
    let batch = messages("once", 3);
    let first = once(
        &*store,
        &stream,
        ExpectedVersion::Exact(1),
        command,
        batch.clone(),
    )
    .await;
    assert_eq!(seqs(&first), vec![2, 3, 4]);
    assert_eq!(positions(&first), vec![2, 3, 4]);
    for _ in 1..RETRIES {
        retry_is_a_replay(
            &*store,
            &stream,
            ExpectedVersion::Exact(1),
            command,
            batch.clone(),
            &first,
        )
        .await;
    }
    // A retry carrying other events still answers with what the command recorded.
    retry_is_a_replay(
        &*store,
        &stream,
        ExpectedVersion::Exact(1),
        command,
        messages("different", 2),
        &first,
    )
    .await;
    assert_eq!(
        outcome(&*store, &stream, command).await,
        Some(first.clone())
    );
    assert_eq!(read(&*store, &stream).await.len(), 4);
    println!(
        "append_once_records_a_sequential_retry_once [{}]: 1 append and {RETRIES} retries recorded 3 events once, at positions {:?}",
        factory.describe(),
        positions(&first)
    );
}

/// Round after round, eight tasks send the same command at once (the same id, expected
/// version and events): every task gets the same records, and the stream grows by one append
/// per round. `HANDOVER_KIT_ONCE_ROUNDS` sets the rounds (100 by default).
pub async fn append_once_records_concurrent_retries_once<F: StoreFactory>(factory: &F) {
    const TASKS: usize = 8;
    const BATCH: u64 = 2;
    let rounds = env_count("HANDOVER_KIT_ONCE_ROUNDS", 100);
    let place = factory.fresh().await;
    let store = factory.open(&place).await;
    let stream = conversation(1);
    let commands: Arc<Vec<CommandId>> = Arc::new((0..rounds).map(|_| CommandId::new()).collect());
    let barrier = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        let stream = stream.clone();
        let commands = Arc::clone(&commands);
        let barrier = Arc::clone(&barrier);
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for (round, command) in (0..rounds).zip(commands.iter()) {
                barrier.wait().await;
                let recorded = once(
                    &*store,
                    &stream,
                    ExpectedVersion::Exact(round * BATCH),
                    *command,
                    messages(&format!("round {round}"), BATCH as usize),
                )
                .await;
                assert_eq!(
                    seqs(&recorded),
                    (round * BATCH + 1..=round * BATCH + BATCH).collect::<Vec<_>>(),
                    "task {task} round {round}"
                );
                answers.push(recorded);
            }
            answers
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("a retrying task panicked"));
    }
    let log = read(&*store, &stream).await;
    assert_eq!(log.len() as u64, rounds * BATCH, "one append per round");
    for (round, command) in commands.iter().enumerate() {
        let recorded = &log[round * BATCH as usize..(round + 1) * BATCH as usize];
        for (task, task_answers) in answers.iter().enumerate() {
            assert_eq!(
                task_answers[round], recorded,
                "task {task}'s answer in round {round}"
            );
        }
        assert_eq!(
            outcome(&*store, &stream, *command).await.as_deref(),
            Some(recorded)
        );
    }
    assert_eq!(store.head(), rounds * BATCH);
    println!(
        "append_once_records_concurrent_retries_once [{}]: {rounds} rounds of {TASKS} concurrent sends of one command, {} appends recorded, {} identical answers",
        factory.describe(),
        log.len() as u64 / BATCH,
        rounds * TASKS as u64
    );
}

/// Commands recorded before a restart are remembered after it, twice over: a retry returns
/// the records of the first append (positions and recording times included) and writes
/// nothing, and appends continue after the log.
pub async fn append_once_remembers_across_a_restart<F: StoreFactory>(factory: &F) {
    const STREAMS: u128 = 4;
    const COMMANDS: usize = 20;
    const RESTARTS: usize = 2;
    let place = factory.fresh().await;
    let mut store = factory.open(&place).await;
    let mut sent: Vec<(StreamId, ExpectedVersion, CommandId, Vec<RecordedEvent>)> = Vec::new();
    for i in 0..COMMANDS {
        let stream = conversation(i as u128 % STREAMS);
        let v = version(&*store, &stream).await;
        let expected = ExpectedVersion::Exact(v);
        let command = CommandId::new();
        let recorded = once(
            &*store,
            &stream,
            expected,
            command,
            messages("c", 1 + i % 3),
        )
        .await;
        sent.push((stream, expected, command, recorded));
    }
    for restart in 1..=RESTARTS {
        let log = read_all(&*store).await;
        close(store);
        store = factory.open(&place).await;
        assert_eq!(
            read_all(&*store).await,
            log,
            "restart {restart} changed the log"
        );
        for (stream, expected, command, recorded) in &sent {
            assert_eq!(
                outcome(&*store, stream, *command).await.as_ref(),
                Some(recorded),
                "{command} after restart {restart}"
            );
            retry_is_a_replay(
                &*store,
                stream,
                *expected,
                *command,
                messages("c", recorded.len()),
                recorded,
            )
            .await;
        }
        // The log continues after the restart, with a command of its own.
        let stream = conversation(0);
        let v = version(&*store, &stream).await;
        let command = CommandId::new();
        let recorded = once(
            &*store,
            &stream,
            ExpectedVersion::Exact(v),
            command,
            messages("n", 1),
        )
        .await;
        assert_eq!(recorded[0].position, log.len() as u64 + 1);
        assert_eq!(recorded[0].seq, v + 1);
        sent.push((stream, ExpectedVersion::Exact(v), command, recorded));
    }
    println!(
        "append_once_remembers_across_a_restart [{}]: {} commands on {STREAMS} streams, each retried after each of {RESTARTS} restarts, recorded once",
        factory.describe(),
        sent.len()
    );
}

/// Once a command is recorded and the stream has moved on, retrying it with the expected
/// version it was first sent with (now stale), or any other, returns what it recorded and
/// writes nothing: the retry is not a conflict.
pub async fn append_once_ignores_a_stale_expected_version_on_retry<F: StoreFactory>(factory: &F) {
    let place = factory.fresh().await;
    let store = factory.open(&place).await;
    let stream = conversation(1);
    let command = CommandId::new();
    let first = once(
        &*store,
        &stream,
        ExpectedVersion::NoStream,
        command,
        messages("first", 2),
    )
    .await;
    append(
        &*store,
        &stream,
        ExpectedVersion::Exact(2),
        messages("others", 3),
    )
    .await;
    let expectations = [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(2),
        ExpectedVersion::Exact(5),
        ExpectedVersion::Exact(99),
        ExpectedVersion::Any,
    ];
    for expected in expectations {
        retry_is_a_replay(
            &*store,
            &stream,
            expected,
            command,
            messages("first", 2),
            &first,
        )
        .await;
    }
    assert_eq!(version(&*store, &stream).await, 5);
    println!(
        "append_once_ignores_a_stale_expected_version_on_retry [{}]: {} retries with stale, ahead and any expected versions returned the first append",
        factory.describe(),
        expectations.len()
    );
}

/// A different command id is a new append, checked like any other: with the first command's
/// (now stale) expected version it conflicts; with the current one it records new events;
/// each command's retry then returns its own records.
pub async fn append_once_with_a_new_command_is_a_new_append<F: StoreFactory>(factory: &F) {
    let place = factory.fresh().await;
    let store = factory.open(&place).await;
    let stream = conversation(1);
    let (one, two) = (CommandId::new(), CommandId::new());
    let batch = messages("same events", 2);
    let first = once(
        &*store,
        &stream,
        ExpectedVersion::NoStream,
        one,
        batch.clone(),
    )
    .await;
    let stale = store
        .append_once(&stream, ExpectedVersion::NoStream, two, batch.clone())
        .await
        .expect("no store error");
    assert_eq!(
        stale.map(|r| owned(&r)),
        Err(Conflict {
            expected: 0,
            actual: 2
        })
    );
    let second = once(
        &*store,
        &stream,
        ExpectedVersion::Exact(2),
        two,
        batch.clone(),
    )
    .await;
    assert_eq!(seqs(&second), vec![3, 4]);
    assert_eq!(positions(&second), vec![3, 4]);
    retry_is_a_replay(
        &*store,
        &stream,
        ExpectedVersion::NoStream,
        one,
        batch.clone(),
        &first,
    )
    .await;
    retry_is_a_replay(
        &*store,
        &stream,
        ExpectedVersion::Exact(2),
        two,
        batch,
        &second,
    )
    .await;
    assert_eq!(outcome(&*store, &stream, one).await, Some(first));
    assert_eq!(outcome(&*store, &stream, two).await, Some(second));
    println!(
        "append_once_with_a_new_command_is_a_new_append [{}]: 2 commands with the same events recorded 2 appends; a stale new command conflicted",
        factory.describe()
    );
}

/// A command refused with a conflict is not remembered: `command_outcome` knows nothing of
/// it, and the same id sent again with the right version is recorded. Asking
/// `command_outcome` about a command never sent leaves nothing behind either.
pub async fn append_once_conflict_records_nothing<F: StoreFactory>(factory: &F) {
    let place = factory.fresh().await;
    let store = factory.open(&place).await;
    let stream = conversation(1);
    append(
        &*store,
        &stream,
        ExpectedVersion::NoStream,
        messages("before", 1),
    )
    .await;
    let command = CommandId::new();
    let log = read_all(&*store).await;
    let refused = store
        .append_once(
            &stream,
            ExpectedVersion::Exact(5),
            command,
            messages("refused", 2),
        )
        .await
        .expect("no store error");
    assert_eq!(
        refused.map(|r| owned(&r)),
        Err(Conflict {
            expected: 5,
            actual: 1
        })
    );
    assert_eq!(
        read_all(&*store).await,
        log,
        "a refused append_once wrote something"
    );
    assert_eq!(outcome(&*store, &stream, command).await, None);
    let recorded = once(
        &*store,
        &stream,
        ExpectedVersion::Exact(1),
        command,
        messages("now", 2),
    )
    .await;
    assert_eq!(seqs(&recorded), vec![2, 3]);

    // Asking about a command never sent, on a known and on an unknown stream, records nothing
    // and leaves the id free.
    let unsent = CommandId::new();
    let unknown = conversation(2);
    let log = read_all(&*store).await;
    assert_eq!(outcome(&*store, &stream, unsent).await, None);
    assert_eq!(outcome(&*store, &unknown, unsent).await, None);
    assert_eq!(
        read_all(&*store).await,
        log,
        "command_outcome wrote something"
    );
    assert_eq!(version(&*store, &unknown).await, 0);
    let later = once(
        &*store,
        &stream,
        ExpectedVersion::Exact(3),
        unsent,
        messages("later", 1),
    )
    .await;
    assert_eq!(seqs(&later), vec![4]);
    println!(
        "append_once_conflict_records_nothing [{}]: a conflicting command left no trace and was recorded when resent; 2 outcome queries for an unsent command wrote nothing",
        factory.describe()
    );
}
