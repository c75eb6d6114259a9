//! Calls forwarded through the database to the process that holds a shard's lease: answered by
//! the owner, each once; taken over when the owner dies while running one; withdrawn when
//! nobody answers in time.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use handover_postgres::{IncomingCall, NodeOptions, PostgresOptions, PostgresStore};
use handover_store::StoreError;
use handover_testkit::{run, PgCluster};
use tokio::sync::mpsc;
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(1);
/// A guard against a hang, not a measure of speed.
const HANG: Duration = Duration::from_secs(120);

fn options(node: bool) -> PostgresOptions {
    let mut options = PostgresOptions::default();
    options.poll_interval = Duration::from_millis(50);
    if node {
        let mut node = NodeOptions::default();
        node.lease = LEASE;
        options.node = Some(node);
    }
    options
}

async fn node(url: &str) -> PostgresStore {
    PostgresStore::connect(url, options(true))
        .await
        .expect("a node connects")
}

/// Waits until `done` holds, polling.
async fn until(mut done: impl FnMut() -> bool) {
    let guard = Instant::now();
    while !done() {
        assert!(guard.elapsed() < HANG, "never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn within<T>(what: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG, what)
        .await
        .expect("done before the hang guard")
}

/// Two nodes, once they share the shards half and half.
async fn two_nodes(url: &str) -> (PostgresStore, PostgresStore) {
    let a = node(url).await;
    let b = node(url).await;
    until(|| {
        let (sa, sb) = (a.shards(), b.shards());
        sa.len() == 128 && sb.len() == 128 && sb.keys().all(|k| !sa.contains_key(k))
    })
    .await;
    (a, b)
}

fn first_shard(store: &PostgresStore) -> u16 {
    *store.shards().keys().next().expect("a shard held")
}

async fn calls_left(url: &str) -> i64 {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .query_one("SELECT count(*) FROM handover_calls", &[])
        .await
        .unwrap()
        .get(0)
}

/// One call a node received: its id, its shard, what it said, and whether the node held the
/// shard when it received it.
#[derive(Clone, Debug)]
struct Served {
    id: Uuid,
    shard: u16,
    call: Vec<u8>,
    owned: bool,
}

/// Answers every call `store` receives with `<name>:<call>`, recording each.
fn echo(store: &PostgresStore, name: &'static str) -> Arc<Mutex<Vec<Served>>> {
    let mut incoming = store.serve_calls().expect("served once");
    let served = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&served);
    let store = store.clone();
    tokio::spawn(async move {
        while let Some(call) = incoming.recv().await {
            log.lock().unwrap().push(Served {
                id: call.id,
                shard: call.shard,
                call: call.call.clone(),
                owned: store.shards().contains_key(&call.shard),
            });
            let answer = [format!("{name}:").as_bytes(), &call.call].concat();
            call.answer(answer);
        }
    });
    served
}

async fn received(incoming: &mut mpsc::Receiver<IncomingCall>) -> IncomingCall {
    within(incoming.recv()).await.expect("a call")
}

#[test]
fn a_call_is_answered_by_the_shards_owner() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("forward");
    run(async move {
        let (a, b) = two_nodes(&url).await;
        let mut incoming = b.serve_calls().expect("a node serves");
        assert!(b.serve_calls().is_none(), "one receiver per store");
        let shard = first_shard(&b);

        let forwarded = {
            let a = a.clone();
            tokio::spawn(async move { a.forward(shard, b"hello".to_vec(), HANG).await })
        };
        let call = received(&mut incoming).await;
        assert_eq!(
            (call.shard, call.call.as_slice()),
            (shard, b"hello".as_slice())
        );
        call.answer(b"B:hello".to_vec());
        assert_eq!(within(forwarded).await.unwrap().unwrap(), b"B:hello");
        assert_eq!(calls_left(&url).await, 0, "the caller deleted it");
    });
}

#[test]
fn a_call_dropped_unanswered_is_handed_out_again() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("dropped");
    run(async move {
        let (a, b) = two_nodes(&url).await;
        let mut incoming = b.serve_calls().unwrap();
        let shard = first_shard(&b);
        let forwarded = {
            let a = a.clone();
            tokio::spawn(async move { a.forward(shard, b"again".to_vec(), HANG).await })
        };
        let first = received(&mut incoming).await;
        let id = first.id;
        drop(first);
        let second = received(&mut incoming).await;
        assert_eq!(
            (second.id, second.call.as_slice()),
            (id, b"again".as_slice())
        );
        second.answer(b"B:again".to_vec());
        assert_eq!(within(forwarded).await.unwrap().unwrap(), b"B:again");
    });
}

#[test]
fn many_concurrent_calls_are_each_answered_once_by_their_owner() {
    const CALLS: usize = 200;
    let cluster = PgCluster::start();
    let url = cluster.create_database("many");
    run(async move {
        let (a, b) = two_nodes(&url).await;
        let served_a = echo(&a, "A");
        let served_b = echo(&b, "B");
        let forwarded: Vec<_> = (0..CALLS)
            .map(|i| {
                let from = if i % 2 == 0 { a.clone() } else { b.clone() };
                // Spread over the shards of both nodes.
                let shard = (i * 37 % 256) as u16;
                tokio::spawn(async move {
                    let call = format!("call-{i}").into_bytes();
                    (shard, from.forward(shard, call, HANG).await)
                })
            })
            .collect();
        let (shards_a, shards_b) = (a.shards(), b.shards());
        for (i, forwarded) in forwarded.into_iter().enumerate() {
            let (shard, answer) = within(forwarded).await.unwrap();
            let owner = match (shards_a.contains_key(&shard), shards_b.contains_key(&shard)) {
                (true, false) => "A",
                (false, true) => "B",
                held => panic!("shard {shard} held by {held:?}"),
            };
            assert_eq!(
                String::from_utf8(answer.unwrap()).unwrap(),
                format!("{owner}:call-{i}")
            );
        }
        let served: Vec<Served> = served_a
            .lock()
            .unwrap()
            .iter()
            .chain(served_b.lock().unwrap().iter())
            .cloned()
            .collect();
        assert_eq!(served.len(), CALLS, "each call run once");
        assert!(served.iter().all(|s| s.owned), "run by the shard's owner");
        let ids: BTreeSet<Uuid> = served.iter().map(|s| s.id).collect();
        let calls: BTreeSet<Vec<u8>> = served.iter().map(|s| s.call.clone()).collect();
        assert_eq!((ids.len(), calls.len()), (CALLS, CALLS));
        assert!(served.iter().all(|s| usize::from(s.shard) == {
            let i: usize = std::str::from_utf8(&s.call[5..]).unwrap().parse().unwrap();
            i * 37 % 256
        }));
        assert_eq!(calls_left(&url).await, 0);
    });
}

#[test]
fn a_call_taken_by_a_node_that_dies_is_answered_by_the_next_owner() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("takeover");
    run(async move {
        let (a, b) = two_nodes(&url).await;
        // The caller is a store outside the cluster: any store on the database can forward.
        let c = PostgresStore::connect(&url, options(false)).await.unwrap();
        assert!(c.serve_calls().is_none(), "only a node serves");
        let served_a = echo(&a, "A");
        let mut incoming_b = b.serve_calls().unwrap();
        let shard = first_shard(&b);

        let forwarded = {
            let c = c.clone();
            tokio::spawn(async move { c.forward(shard, b"mid-call".to_vec(), HANG).await })
        };
        // B takes the call and dies before answering it.
        let held = received(&mut incoming_b).await;
        let held_id = held.id;
        drop(b);
        until(|| a.shards().len() == 256).await;

        assert_eq!(within(forwarded).await.unwrap().unwrap(), b"A:mid-call");
        // Too late, and from a store that is gone: written nowhere.
        held.answer(b"B:mid-call".to_vec());
        let served = served_a.lock().unwrap().clone();
        assert_eq!(served.len(), 1, "{served:?}");
        assert_eq!((served[0].id, served[0].shard), (held_id, shard));
        assert_eq!(calls_left(&url).await, 0);
    });
}

#[test]
fn a_call_nobody_serves_times_out_and_is_withdrawn() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("unserved");
    run(async move {
        let a = node(&url).await;
        until(|| a.shards().len() == 256).await;
        match a
            .forward(3, b"anyone?".to_vec(), Duration::from_millis(300))
            .await
        {
            Err(StoreError::Engine(message)) => {
                assert!(message.contains("no answer"), "{message}")
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(calls_left(&url).await, 0, "withdrawn: it never runs");
        assert!(matches!(
            a.forward(256, Vec::new(), HANG).await,
            Err(StoreError::Engine(_))
        ));
    });
}
