//! The store across a crash of the database server: appends in flight when the server dies
//! fail with a `StoreError` (no hang, no panic), the same store, never reconnected by hand,
//! appends again once the server is back, and commands sent again under their command ids are
//! recorded exactly once, whether the crashed server had committed them or not.
//!
//! `cargo test -p handover-postgres --test outage -- --nocapture` prints the figures.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use handover_core::{AiAgentEvent, AiAgentId, CommandId, Event, StreamId};
use handover_postgres::{PostgresOptions, PostgresStore};
use handover_store::{EventStore, ExpectedVersion, StoreError};
use handover_testkit::{run, PgCluster};

/// Tasks appending at once, each to a stream of its own.
const TASKS: usize = 6;
/// Acknowledgements before the crash, and again after the restart.
const ACKS_EACH_SIDE: u64 = 300;
/// Longest one append may take before the test calls it hung: a guard, not a speed check.
const HANG_GUARD: Duration = Duration::from_secs(120);
/// How long a task waits before it sends a failed command again.
const RETRY_AFTER: Duration = Duration::from_millis(20);

fn stream(task: usize) -> StreamId {
    StreamId::AiAgent(AiAgentId::new(format!("outage-{task}")).unwrap())
}

/// A command of 1 to 3 events, so that a half-written command would show.
fn events(task: usize, n: u64) -> Vec<Event> {
    let agent_id = AiAgentId::new(format!("outage-{task}")).unwrap();
    (0..=n % 3)
        .map(|_| {
            Event::AiAgent(AiAgentEvent::Activated {
                agent_id: agent_id.clone(),
            })
        })
        .collect()
}

/// What the tasks tell the test.
#[derive(Default)]
struct Shared {
    acks: AtomicU64,
    /// Set while the test holds the tasks back; `parked` counts those that stopped for it.
    paused: AtomicBool,
    parked: AtomicU64,
    stop: AtomicBool,
    /// Tasks that have seen an append fail.
    failed_tasks: Mutex<HashSet<usize>>,
    errors: Mutex<Vec<String>>,
}

/// One command as acknowledged: stream, events, and the (position, seq) of each.
struct Acked {
    task: usize,
    count: usize,
    places: Vec<(u64, u64)>,
}

/// Appends commands to its stream, one at a time; a command that fails is sent again, under
/// the same command id, until it is acknowledged. Returns every command acknowledged, and
/// the ids of those that failed at least once.
async fn task(
    store: PostgresStore,
    task: usize,
    shared: Arc<Shared>,
) -> (Vec<(CommandId, Acked)>, HashSet<CommandId>) {
    let stream = stream(task);
    let mut acked = Vec::new();
    let mut in_doubt = HashSet::new();
    let mut pending: Option<(CommandId, Vec<Event>)> = None;
    let mut n = 0u64;
    loop {
        if shared.paused.load(Ordering::Acquire) {
            shared.parked.fetch_add(1, Ordering::AcqRel);
            while shared.paused.load(Ordering::Acquire) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            shared.parked.fetch_sub(1, Ordering::AcqRel);
        }
        if pending.is_none() && shared.stop.load(Ordering::Acquire) {
            return (acked, in_doubt);
        }
        let (command, batch) = pending.take().unwrap_or_else(|| {
            n += 1;
            (CommandId::new(), events(task, n))
        });
        let count = batch.len();
        let answer = tokio::time::timeout(
            HANG_GUARD,
            store.append_once(&stream, ExpectedVersion::Any, command, batch.clone()),
        )
        .await
        .unwrap_or_else(|_| panic!("an append hung for {HANG_GUARD:?}"));
        match answer {
            Ok(Ok(records)) => {
                let places = records.iter().map(|r| (r.position, r.seq)).collect();
                acked.push((
                    command,
                    Acked {
                        task,
                        count,
                        places,
                    },
                ));
                shared.acks.fetch_add(1, Ordering::AcqRel);
            }
            Ok(Err(conflict)) => panic!("ExpectedVersion::Any conflicted: {conflict}"),
            Err(error) => {
                shared.failed_tasks.lock().unwrap().insert(task);
                {
                    let mut errors = shared.errors.lock().unwrap();
                    if errors.len() < 3 {
                        errors.push(error.to_string());
                    }
                }
                // A database that is gone is an engine failure, which the caller may retry;
                // not damage, not a closed store.
                assert!(
                    matches!(error, StoreError::Engine(_)),
                    "an append during the outage fails with {error:?}"
                );
                in_doubt.insert(command);
                pending = Some((command, batch));
                tokio::time::sleep(RETRY_AFTER).await;
            }
        }
    }
}

/// Waits, polling, until `done` holds.
async fn until(done: impl Fn() -> bool) {
    while !done() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_database_crash_fails_appends_and_the_same_store_recovers_with_each_command_once() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("outage");
    run(async move {
        let mut options = PostgresOptions::default();
        options.poll_interval = Duration::from_millis(50);
        let store = PostgresStore::connect(&url, options)
            .await
            .expect("the store connects");
        let shared = Arc::new(Shared::default());
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| tokio::spawn(task(store.clone(), t, Arc::clone(&shared))))
            .collect();

        until(|| shared.acks.load(Ordering::Acquire) >= ACKS_EACH_SIDE).await;
        // The server dies with appends in flight: some were committed and not answered,
        // some not committed.
        tokio::task::block_in_place(|| cluster.stop_immediate());
        let acked_before = shared.acks.load(Ordering::Acquire);
        until(|| shared.failed_tasks.lock().unwrap().len() == TASKS).await;
        // Held back while the server recovers, so that what it recovered can be read before
        // any retry.
        shared.paused.store(true, Ordering::Release);
        until(|| shared.parked.load(Ordering::Acquire) == TASKS as u64).await;
        tokio::task::block_in_place(|| cluster.start_again());
        let recovered = store
            .snapshot()
            .await
            .expect("the recovered log verifies, read by the same store");
        let recovered_head = recovered.len() as u64;
        shared.paused.store(false, Ordering::Release);

        until(|| shared.acks.load(Ordering::Acquire) >= acked_before + ACKS_EACH_SIDE).await;
        shared.stop.store(true, Ordering::Release);
        let mut acked: HashMap<CommandId, Acked> = HashMap::new();
        let mut in_doubt = HashSet::new();
        for task in tasks {
            let (commands, doubted) = task.await.expect("a task does not panic");
            for (command, ack) in commands {
                assert!(
                    acked.insert(command, ack).is_none(),
                    "{command} acknowledged twice by its task"
                );
            }
            in_doubt.extend(doubted);
        }

        // Every command was acknowledged in the end (the tasks retried until it was), each
        // at places of its own, contiguous in its stream, all of them in the log and nothing
        // else there: no command recorded twice, none half.
        let log = store.snapshot().await.expect("the log verifies");
        let mut places: BTreeMap<u64, (StreamId, u64)> = BTreeMap::new();
        for (command, ack) in &acked {
            assert_eq!(ack.places.len(), ack.count, "{command}: a partial receipt");
            assert!(
                ack.places.windows(2).all(|w| w[1].1 == w[0].1 + 1),
                "{command}: not contiguous: {:?}",
                ack.places
            );
            for &(position, seq) in &ack.places {
                let earlier = places.insert(position, (stream(ack.task), seq));
                assert!(earlier.is_none(), "position {position} acknowledged twice");
            }
        }
        let in_log: BTreeMap<u64, (StreamId, u64)> = log
            .iter()
            .map(|r| (r.position, (r.stream.clone(), r.seq)))
            .collect();
        assert_eq!(
            in_log, places,
            "the log holds exactly the acknowledged commands' events"
        );

        // Sent once more, a command is answered from the log with the same records.
        let mut committed_by_crashed_server = 0;
        for command in &in_doubt {
            let ack = &acked[command];
            let again = store
                .command_outcome(&stream(ack.task), *command)
                .await
                .expect("the store answers")
                .expect("the command is recorded");
            let again: Vec<(u64, u64)> = again.iter().map(|r| (r.position, r.seq)).collect();
            assert_eq!(again, ack.places, "{command} answered with other records");
            committed_by_crashed_server +=
                usize::from(ack.places.iter().all(|&(p, _)| p <= recovered_head));
        }
        let errors = shared.errors.lock().unwrap().clone();
        println!(
            "database crash under {TASKS} appending tasks: {} commands acknowledged ({} events), \
             {acked_before} before the crash; {} failed with a store error and were sent again \
             under their command ids ({committed_by_crashed_server} of them had been committed \
             by the crashed server, the others were recorded by the retry); first errors: {errors:?}",
            acked.len(),
            log.len(),
            in_doubt.len(),
        );
        assert!(
            !in_doubt.is_empty(),
            "appends in flight fail while the server is down"
        );
    });
}
