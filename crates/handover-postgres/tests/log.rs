//! The PostgreSQL log beyond the journal kit: what only a shared database asks. Several stores
//! (nodes) on one database; a writer that stalls mid-transaction; migrations racing; damage in
//! the tables. Each test starts a throwaway cluster of its own.

use std::collections::BTreeSet;
use std::time::Duration;

use handover_core::{AiAgentEvent, AiAgentId, CommandId, Event, StreamId};
use handover_postgres::{PostgresOptions, PostgresStore};
use handover_store::{
    encode_record, Damage, EventStore, ExpectedVersion, RecordHash, RecordedAt, RecordedEvent,
    SeqRange, StoreError,
};
use handover_testkit::{run, PgCluster};

fn agent_stream(i: usize) -> StreamId {
    StreamId::AiAgent(AiAgentId::new(format!("agent-{i}")).unwrap())
}

fn activated(stream: &StreamId) -> Event {
    let StreamId::AiAgent(agent_id) = stream else {
        unreachable!("the tests write AI-agent streams")
    };
    Event::AiAgent(AiAgentEvent::Activated {
        agent_id: agent_id.clone(),
    })
}

async fn node(url: &str) -> PostgresStore {
    let mut options = PostgresOptions::default();
    options.poll_interval = Duration::from_millis(50);
    PostgresStore::connect(url, options)
        .await
        .expect("a node connects")
}

async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("a raw connection");
    tokio::spawn(connection);
    client
}

/// Waits until `store` has seen up to `position`.
async fn until_head(store: &PostgresStore, position: u64) {
    while store.head() < position {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads the whole log through `read_all` in small pages.
async fn read_everything(store: &PostgresStore) -> Vec<RecordedEvent> {
    let mut out = Vec::new();
    loop {
        let page = store.read_all(out.len() as u64 + 1, 7).await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

async fn append_next(store: &PostgresStore, stream: &StreamId) -> RecordedEvent {
    let version = store.stream_version(stream).await.unwrap();
    let appended = store
        .append(
            stream,
            ExpectedVersion::Exact(version),
            vec![activated(stream)],
        )
        .await
        .unwrap()
        .unwrap();
    (*appended[0]).clone()
}

#[test]
fn a_writer_held_open_mid_transaction_never_makes_a_reader_skip() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("held_open");
    run(async move {
        let a = node(&url).await;
        let b = node(&url).await;
        append_next(&a, &agent_stream(0)).await;
        until_head(&b, 1).await;
        // A follower on node B: everything it is sent, from position 2 on.
        let mut live = b.subscribe();
        // A poller on node B too, remembering the last position it saw: the reader that
        // skips a late commit on stores whose positions become visible out of order.
        let poller = {
            let b = b.clone();
            tokio::spawn(async move {
                let mut seen = vec![1u64];
                while seen.len() < 42 {
                    let last = *seen.last().unwrap();
                    for record in b.read_all(last + 1, 1000).await.unwrap() {
                        seen.push(record.position);
                    }
                    tokio::task::yield_now().await;
                }
                seen
            })
        };

        // A writer that takes position 2 and stalls before its commit, as a node paused by
        // the scheduler or behind a slow network would, doing what the journal does.
        let stalled = raw(&url).await;
        stalled.batch_execute("BEGIN").await.unwrap();
        let head: i64 = stalled
            .query_one(
                "SELECT position FROM handover_head WHERE one FOR UPDATE",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(head, 1);
        let held_stream = agent_stream(99);
        let record = RecordedEvent {
            position: 2,
            stream: held_stream.clone(),
            seq: 1,
            recorded_at: RecordedAt::now(),
            event: activated(&held_stream),
        };
        let bytes = encode_record(&record, &RecordHash::ZERO).unwrap();
        stalled
            .execute(
                "INSERT INTO handover_events VALUES (2, 2, 'agent-99', 1, $1, $2)",
                &[&record.recorded_at.as_micros(), &bytes],
            )
            .await
            .unwrap();
        stalled
            .execute("UPDATE handover_head SET position = 2 WHERE one", &[])
            .await
            .unwrap();

        // Meanwhile both nodes write 40 events.
        let writers: Vec<_> = (1..=40)
            .map(|i| {
                let store = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { append_next(&store, &agent_stream(i)).await.position })
            })
            .collect();
        // Give the writers every chance to commit past the stalled transaction. They cannot;
        // the pause only makes that observable, nothing is asserted about time.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            writers.iter().all(|w| !w.is_finished()),
            "no append commits while a writer before it is open"
        );
        assert_eq!(a.read_all(2, 10).await.unwrap(), Vec::new());
        stalled.batch_execute("COMMIT").await.unwrap();

        let mut positions = BTreeSet::new();
        for writer in writers {
            positions.insert(writer.await.unwrap());
        }
        assert_eq!(
            positions,
            (3..=42).collect(),
            "written after the stalled writer"
        );

        let seen = poller.await.unwrap();
        assert_eq!(
            seen,
            (1..=42).collect::<Vec<_>>(),
            "the poller saw every position once, in order"
        );
        let mut delivered = Vec::new();
        while delivered.len() < 41 {
            delivered.push(live.recv().await.unwrap().position);
        }
        assert_eq!(
            delivered,
            (2..=42).collect::<Vec<_>>(),
            "the follower got every event once, in order"
        );
        println!(
            "a writer held open 2 s: 40 appends of 2 nodes waited; readers saw 1..=42 once each"
        );
    });
}

#[test]
fn a_long_unrelated_transaction_does_not_hold_the_feed_back() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("unrelated");
    run(async move {
        let a = node(&url).await;
        let b = node(&url).await;
        // A report's transaction, open throughout: it holds a snapshot and a transaction id.
        let report = raw(&url).await;
        report
            .batch_execute(
                "BEGIN ISOLATION LEVEL REPEATABLE READ; \
                 SELECT count(*) FROM handover_events; SELECT txid_current()",
            )
            .await
            .unwrap();
        let mut live = b.subscribe();
        for i in 0..20 {
            append_next(&a, &agent_stream(i)).await;
        }
        for expected in 1..=20 {
            assert_eq!(live.recv().await.unwrap().position, expected);
        }
        report.batch_execute("COMMIT").await.unwrap();
    });
}

#[test]
fn nodes_follow_each_other_live_from_any_position() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("follow");
    run(async move {
        let a = node(&url).await;
        let b = node(&url).await;
        let c = node(&url).await;
        let mut on_c = c.subscribe();
        let writers: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .enumerate()
            .map(|(n, store)| {
                tokio::spawn(async move {
                    for i in 0..150 {
                        append_next(&store, &agent_stream(n * 1000 + i % 10)).await;
                    }
                })
            })
            .collect();
        // A late follower on node C: catches up from position 1, then goes live.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut late = c.subscribe();
        let history = read_everything(&c).await;
        for writer in writers {
            writer.await.unwrap();
        }
        let mut followed: Vec<u64> = history.iter().map(|r| r.position).collect();
        while followed.len() < 300 {
            let record = late.recv().await.unwrap();
            if record.position > followed.last().copied().unwrap_or(0) {
                followed.push(record.position);
            }
        }
        assert_eq!(followed, (1..=300).collect::<Vec<_>>());
        let mut live = Vec::new();
        while live.len() < 300 {
            live.push(on_c.recv().await.unwrap().position);
        }
        assert_eq!(live, (1..=300).collect::<Vec<_>>());
        until_head(&a, 300).await;
        until_head(&b, 300).await;
    });
}

#[test]
fn racing_nodes_have_one_winner_per_round_and_a_command_is_recorded_once() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("racing");
    run(async move {
        let nodes = [node(&url).await, node(&url).await, node(&url).await];
        let stream = agent_stream(1);
        for round in 0..100u64 {
            let attempts: Vec<_> = nodes
                .iter()
                .map(|n| {
                    let (n, stream) = (n.clone(), stream.clone());
                    let expected = if round == 0 {
                        ExpectedVersion::NoStream
                    } else {
                        ExpectedVersion::Exact(round)
                    };
                    tokio::spawn(async move {
                        n.append(&stream, expected, vec![activated(&stream)])
                            .await
                            .unwrap()
                    })
                })
                .collect();
            let mut winners = 0;
            for attempt in attempts {
                match attempt.await.unwrap() {
                    Ok(_) => winners += 1,
                    Err(conflict) => assert_eq!(conflict.actual, round + 1),
                }
            }
            assert_eq!(winners, 1, "round {round}");
        }
        // One command sent to every node at once: recorded once, every node answers the same.
        let command = CommandId::new();
        let answers: Vec<_> = nodes
            .iter()
            .map(|n| {
                let (n, stream) = (n.clone(), stream.clone());
                tokio::spawn(async move {
                    n.append_once(
                        &stream,
                        ExpectedVersion::Exact(100),
                        command,
                        vec![activated(&stream)],
                    )
                    .await
                    .unwrap()
                    .unwrap()
                })
            })
            .collect();
        let mut recorded = Vec::new();
        for answer in answers {
            recorded.push(answer.await.unwrap());
        }
        assert!(recorded.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(recorded[0][0].seq, 101);
        assert_eq!(nodes[0].stream_version(&stream).await.unwrap(), 101);
    });
}

#[test]
fn nodes_starting_together_migrate_once_and_a_newer_schema_is_refused() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("migrations");
    run(async move {
        let starts: Vec<_> = (0..6)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { node(&url).await })
            })
            .collect();
        let mut nodes = Vec::new();
        for start in starts {
            nodes.push(start.await.unwrap());
        }
        let client = raw(&url).await;
        let versions: Vec<i32> = client
            .query("SELECT version FROM handover_schema ORDER BY version", &[])
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(
            versions,
            vec![1, 2, 3],
            "each version applied once, in order"
        );
        client
            .execute("INSERT INTO handover_schema (version) VALUES (999)", &[])
            .await
            .unwrap();
        match PostgresStore::connect(&url, PostgresOptions::default()).await {
            Err(StoreError::Engine(message)) => assert!(message.contains("999"), "{message}"),
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("a database of a newer schema was accepted"),
        }
    });
}

#[test]
fn a_snapshot_is_consistent_while_nodes_write() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("snapshot");
    run(async move {
        let a = node(&url).await;
        let b = node(&url).await;
        let writer = {
            let a = a.clone();
            tokio::spawn(async move {
                for i in 0..400 {
                    append_next(&a, &agent_stream(i % 13)).await;
                }
            })
        };
        let mut snapshots = 0;
        while !writer.is_finished() {
            let snapshot = b.snapshot().await.unwrap();
            let positions: Vec<u64> = snapshot.iter().map(|r| r.position).collect();
            assert_eq!(positions, (1..=snapshot.len() as u64).collect::<Vec<_>>());
            snapshots += 1;
        }
        writer.await.unwrap();
        assert_eq!(b.snapshot().await.unwrap().len(), 400);
        println!("{snapshots} snapshots taken while 400 events were written, each a dense prefix");
    });
}

#[test]
fn damage_in_the_tables_is_reported_where_it_is() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("damage");
    run(async move {
        let store = node(&url).await;
        let stream = agent_stream(1);
        for _ in 0..5 {
            append_next(&store, &stream).await;
        }
        let client = raw(&url).await;
        let damage_of = |result: Result<Vec<RecordedEvent>, StoreError>| match result {
            Err(StoreError::Corrupted { damage, .. }) => damage,
            other => panic!("expected damage, got {other:?}"),
        };
        let flip = "UPDATE handover_events SET record = set_byte(record, length(record) - 1, \
                    get_byte(record, length(record) - 1) # 1) WHERE seq = 3";

        // A flipped bit in seq 3's body.
        client.execute(flip, &[]).await.unwrap();
        assert_eq!(
            damage_of(store.read_stream(&stream, SeqRange::ALL).await),
            Damage::Record
        );
        assert_eq!(damage_of(store.snapshot().await), Damage::Record);
        client.execute(flip, &[]).await.unwrap();
        assert_eq!(
            store
                .read_stream(&stream, SeqRange::ALL)
                .await
                .unwrap()
                .len(),
            5
        );

        // Seq 2's record copied over seq 4's: sound bytes in the wrong place.
        client
            .execute(
                "UPDATE handover_events SET record = \
                 (SELECT record FROM handover_events WHERE seq = 2) WHERE seq = 4",
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            damage_of(store.read_stream(&stream, SeqRange::from(3)).await),
            Damage::Misplaced
        );

        // A record taken out of the middle.
        client
            .execute("DELETE FROM handover_events WHERE seq = 4", &[])
            .await
            .unwrap();
        assert_eq!(
            damage_of(store.read_stream(&stream, SeqRange::ALL).await),
            Damage::Gap
        );
        assert_eq!(
            damage_of(store.read_stream(&stream, SeqRange::from(5)).await),
            Damage::Gap
        );
        assert_eq!(damage_of(store.snapshot().await), Damage::Gap);
    });
}

#[test]
fn a_store_never_appends_behind_another_stores_write() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("interleaved");
    run(async move {
        let a = node(&url).await;
        let b = node(&url).await;
        let stream = agent_stream(7);
        // Each store remembers where the streams it wrote end; the other's writes must make
        // it look again, or it would append behind them (a conflict it should not see, or a
        // broken chain).
        for round in 0..50u64 {
            let (writer, other) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
            let expected = if round == 0 {
                ExpectedVersion::NoStream
            } else {
                ExpectedVersion::Exact(round)
            };
            writer
                .append(&stream, expected, vec![activated(&stream)])
                .await
                .unwrap()
                .unwrap_or_else(|c| panic!("round {round}: {c:?}"));
            // The other one, behind: a conflict naming the true version.
            let stale = other
                .append(&stream, expected, vec![activated(&stream)])
                .await
                .unwrap()
                .expect_err("a stale expected version");
            assert_eq!(stale.actual, round + 1);
        }
        let records = a.read_stream(&stream, SeqRange::ALL).await.unwrap();
        assert_eq!(records.len(), 50, "chained and contiguous");
        assert_eq!(b.snapshot().await.unwrap().len(), 50);
    });
}
