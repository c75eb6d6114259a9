//! Unit tests of the journal: group commit, failed and stuck syncs, conflicts, a full queue.

use std::sync::atomic::Ordering;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use handover_core::{AgentName, AiAgentEvent, AiAgentId, Event, StreamId};
use handover_store::{encode_event, Durability, ExpectedVersion, RecordedAt, StoreError};
use tokio::sync::{broadcast, oneshot};

use super::{AppendRequest, AppendResult, Journal, Start, SyncStep, Syncing, TimedSync};
use crate::checked::stream_version;
use crate::tip::{Checkpoint, Marks};

/// A sync step the test drives: it reports each sync as it starts and waits for the test
/// to say how it ends.
struct ScriptedSync {
    started: std_mpsc::Sender<()>,
    outcomes: std_mpsc::Receiver<Result<(), StoreError>>,
}

impl SyncStep for ScriptedSync {
    fn sync(&mut self) -> Result<(), StoreError> {
        let _ = self.started.send(());
        self.outcomes.recv().unwrap_or(Err(StoreError::Closed))
    }
}

struct Harness {
    journal: Journal,
    log: sled::Tree,
    marks: Arc<Marks>,
    started: std_mpsc::Receiver<()>,
    outcomes: std_mpsc::Sender<Result<(), StoreError>>,
    _db: sled::Db,
}

fn harness() -> Harness {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let log = db.open_tree("log").unwrap();
    let (started_tx, started) = std_mpsc::channel();
    let (outcomes, outcomes_rx) = std_mpsc::channel();
    let marks = Arc::new(Marks::default());
    let journal = Journal::start(
        log.clone(),
        Start {
            head: 0,
            last_recorded_at: RecordedAt(i64::MIN),
            time_source: None,
            checkpoint: Checkpoint::default(),
        },
        Durability::Durable,
        1024,
        Syncing {
            step: Box::new(ScriptedSync {
                started: started_tx,
                outcomes: outcomes_rx,
            }),
            timeout: Duration::from_secs(3600),
            anchor: None,
            space: None,
        },
        broadcast::channel(16).0,
        Arc::clone(&marks),
    )
    .unwrap();
    Harness {
        journal,
        log,
        marks,
        started,
        outcomes,
        _db: db,
    }
}

fn stream(n: usize) -> StreamId {
    StreamId::AiAgent(AiAgentId::new(format!("agent-{n}")).unwrap())
}

fn registered(stream: &StreamId) -> Event {
    let StreamId::AiAgent(agent_id) = stream else {
        unreachable!("the tests write AI-agent streams")
    };
    Event::AiAgent(AiAgentEvent::Registered {
        agent_id: agent_id.clone(),
        name: AgentName::new("bot").unwrap(),
        specialties: vec![],
    })
}

fn submit(
    journal: &Journal,
    stream: &StreamId,
    expected: ExpectedVersion,
) -> oneshot::Receiver<AppendResult> {
    let (reply, answer) = oneshot::channel();
    journal
        .submit(AppendRequest {
            stream: stream.clone(),
            expected,
            command: None,
            events: vec![encode_event(registered(stream)).unwrap()],
            reply,
        })
        .unwrap();
    answer
}

/// Waits (without a time-based assertion) until the writer has handed `head` events to the
/// syncer; the deadline only turns a hang into a failure.
fn wait_for_head(journal: &Journal, head: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while journal.handed_over.load(Ordering::Acquire) < head {
        assert!(Instant::now() < deadline, "the writer never reached {head}");
        std::thread::yield_now();
    }
}

#[test]
fn appends_waiting_during_a_sync_share_the_next_one() {
    let h = harness();
    let first = submit(&h.journal, &stream(0), ExpectedVersion::NoStream);
    h.started.recv().unwrap();
    // The first sync is under way: everything submitted now is applied and waits.
    let waiting: Vec<_> = (1..=10)
        .map(|n| submit(&h.journal, &stream(n), ExpectedVersion::NoStream))
        .collect();
    wait_for_head(&h.journal, 11);
    h.outcomes.send(Ok(())).unwrap();
    assert!(first.blocking_recv().unwrap().unwrap().is_ok());
    h.started.recv().unwrap();
    h.outcomes.send(Ok(())).unwrap();
    for answer in waiting {
        let records = answer.blocking_recv().unwrap().unwrap().unwrap();
        assert_eq!(records[0].seq, 1);
    }
    let stats = h.journal.counters.snapshot();
    assert_eq!((stats.appends, stats.events, stats.syncs), (11, 11, 2));
}

#[test]
fn a_failed_sync_fails_every_append_it_covers_and_stops_the_store() {
    let h = harness();
    let first = submit(&h.journal, &stream(0), ExpectedVersion::NoStream);
    h.started.recv().unwrap();
    let covered: Vec<_> = (1..=5)
        .map(|n| submit(&h.journal, &stream(n), ExpectedVersion::NoStream))
        .collect();
    wait_for_head(&h.journal, 6);
    h.outcomes.send(Ok(())).unwrap();
    assert!(first.blocking_recv().unwrap().unwrap().is_ok());
    h.started.recv().unwrap();
    let failure = StoreError::Io(Arc::new(std::io::Error::other("disk gone")));
    h.outcomes.send(Err(failure)).unwrap();
    for answer in covered {
        let error = answer.blocking_recv().unwrap().unwrap_err();
        assert!(matches!(error, StoreError::Io(_)), "{error}");
    }
    // After a failed sync the engine's state is unknown: every later append is refused
    // with the failure that stopped the store, and nothing more is written.
    let (reply, _answer) = oneshot::channel();
    let refused = h.journal.submit(AppendRequest {
        stream: stream(1),
        expected: ExpectedVersion::Exact(1),
        command: None,
        events: vec![encode_event(registered(&stream(1))).unwrap()],
        reply,
    });
    match refused {
        Err(StoreError::Failed(cause)) => assert!(matches!(*cause, StoreError::Io(_))),
        other => panic!("expected the store to have stopped, got {other:?}"),
    }
    assert_eq!(stream_version(&h.log, &h.marks, &stream(1)).unwrap(), 1);
    let stats = h.journal.counters.snapshot();
    assert_eq!((stats.appends, stats.syncs), (1, 2));
}

/// What sled's flush does after some I/O errors: block for good.
struct Stuck;

impl SyncStep for Stuck {
    fn sync(&mut self) -> Result<(), StoreError> {
        loop {
            std::thread::park();
        }
    }
}

#[test]
fn a_sync_that_never_returns_stops_the_store() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let log = db.open_tree("log").unwrap();
    let journal = Journal::start(
        log,
        Start {
            head: 0,
            last_recorded_at: RecordedAt(i64::MIN),
            time_source: None,
            checkpoint: Checkpoint::default(),
        },
        Durability::Durable,
        16,
        Syncing {
            step: Box::new(Stuck),
            timeout: Duration::from_millis(50),
            anchor: None,
            space: None,
        },
        broadcast::channel(16).0,
        Arc::new(Marks::default()),
    )
    .unwrap();
    let _answer = submit(&journal, &stream(0), ExpectedVersion::NoStream);
    let failure = loop {
        if let Err(failure) = journal.poison.check() {
            break failure;
        }
        std::thread::yield_now();
    };
    match failure {
        StoreError::Failed(cause) => {
            assert!(
                matches!(&*cause, StoreError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut)
            )
        }
        other => panic!("expected the store to have stopped, got {other:?}"),
    }
    let (reply, _) = oneshot::channel();
    let refused = journal.submit(AppendRequest {
        stream: stream(1),
        expected: ExpectedVersion::NoStream,
        command: None,
        events: vec![encode_event(registered(&stream(1))).unwrap()],
        reply,
    });
    assert!(matches!(refused, Err(StoreError::Failed(_))));
    // Closing returns although the syncer never will.
    drop(journal);
}

#[test]
fn a_bounded_flush_that_never_returns_times_out() {
    let mut timed = TimedSync::new(Box::new(Stuck), Duration::from_millis(50)).unwrap();
    for _ in 0..2 {
        match timed.sync() {
            Err(StoreError::Io(error)) => {
                assert_eq!(error.kind(), std::io::ErrorKind::TimedOut)
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
    }
}

#[test]
fn a_conflict_is_answered_without_a_sync_and_records_nothing() {
    let h = harness();
    let first = submit(&h.journal, &stream(0), ExpectedVersion::NoStream);
    h.started.recv().unwrap();
    h.outcomes.send(Ok(())).unwrap();
    first.blocking_recv().unwrap().unwrap().unwrap();
    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
        ExpectedVersion::Exact(2),
    ] {
        let conflict = submit(&h.journal, &stream(0), expected)
            .blocking_recv()
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert_eq!(conflict.actual, 1);
    }
    assert_eq!(stream_version(&h.log, &h.marks, &stream(0)).unwrap(), 1);
    assert_eq!(h.journal.counters.snapshot().syncs, 1);
}

#[test]
fn a_full_queue_is_overloaded_and_a_closed_journal_answers_every_request() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let log = db.open_tree("log").unwrap();
    let (started_tx, started) = std_mpsc::channel();
    let (outcomes, outcomes_rx) = std_mpsc::channel();
    let journal = Journal::start(
        log,
        Start {
            head: 0,
            last_recorded_at: RecordedAt(i64::MIN),
            time_source: None,
            checkpoint: Checkpoint::default(),
        },
        Durability::Durable,
        1,
        Syncing {
            step: Box::new(ScriptedSync {
                started: started_tx,
                outcomes: outcomes_rx,
            }),
            timeout: Duration::from_secs(3600),
            anchor: None,
            space: None,
        },
        broadcast::channel(16).0,
        Arc::new(Marks::default()),
    )
    .unwrap();
    let first = submit(&journal, &stream(0), ExpectedVersion::NoStream);
    started.recv().unwrap();
    // The writer is free again; fill its queue while it waits for the syncer.
    let mut answers = vec![first];
    let mut overloaded = None;
    for n in 1..100_000 {
        let (reply, answer) = oneshot::channel();
        let request = AppendRequest {
            stream: stream(n),
            expected: ExpectedVersion::NoStream,
            command: None,
            events: vec![encode_event(registered(&stream(n))).unwrap()],
            reply,
        };
        match journal.submit(request) {
            Ok(()) => answers.push(answer),
            Err(error) => {
                overloaded = Some(error);
                break;
            }
        }
    }
    assert!(matches!(overloaded, Some(StoreError::Overloaded)));
    // Let every sync succeed, then close: each request taken gets an answer.
    outcomes.send(Ok(())).unwrap();
    std::thread::spawn(move || {
        while started.recv().is_ok() {
            if outcomes.send(Ok(())).is_err() {
                break;
            }
        }
    });
    drop(journal);
    for answer in answers {
        assert!(answer.blocking_recv().unwrap().unwrap().is_ok());
    }
}
