//! Several processes on one database: shards of tenants leased to one node each, judged by the
//! database's clock, and the fence every append checks in its own transaction. A node paused
//! (SIGSTOP) past its lease cannot write one event after another node took its shard over.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use handover_core::placement::shard_of;
use handover_core::{AgentName, AiAgentEvent, AiAgentId, Event, StreamId, TenantId};
use handover_postgres::{NodeOptions, PostgresOptions, PostgresStore};
use handover_store::{EventStore, ExpectedVersion, StoreError};
use handover_testkit::{run, PgCluster};

const LEASE: Duration = Duration::from_secs(1);
const CHILD_ENV: &str = "HANDOVER_NODE_CHILD_DATABASE";

async fn node(url: &str) -> PostgresStore {
    let mut node = NodeOptions::default();
    node.lease = LEASE;
    let mut options = PostgresOptions::default();
    options.poll_interval = Duration::from_millis(50);
    options.node = Some(node);
    PostgresStore::connect(url, options)
        .await
        .expect("a node connects")
}

fn agent(tenant: &TenantId) -> (StreamId, AiAgentId) {
    let id = AiAgentId::new(format!("bot-of-{tenant}")).unwrap();
    (StreamId::AiAgent(id.clone()), id)
}

fn registered(id: &AiAgentId, tenant: &TenantId) -> Event {
    Event::AiAgent(AiAgentEvent::RegisteredIn {
        agent_id: id.clone(),
        tenant: tenant.clone(),
        name: AgentName::new("Bot").unwrap(),
        specialties: Vec::new(),
    })
}

fn activated(id: &AiAgentId) -> Event {
    Event::AiAgent(AiAgentEvent::Activated {
        agent_id: id.clone(),
    })
}

/// Waits until `done` holds, polling; a guard against a hang, not a measure of speed.
async fn until(mut done: impl FnMut() -> bool) {
    let guard = Instant::now();
    while !done() {
        assert!(guard.elapsed() < Duration::from_secs(120), "never happened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A tenant whose shard `store` holds, and one it does not.
fn tenants(store: &PostgresStore) -> (TenantId, TenantId) {
    let shards = store.shards();
    let mut owned = None;
    let mut other = None;
    for i in 0.. {
        let tenant = TenantId::new(format!("tenant-{i}")).unwrap();
        match shards.contains_key(&shard_of(&tenant)) {
            true if owned.is_none() => owned = Some(tenant),
            false if other.is_none() => other = Some(tenant),
            _ => {}
        }
        if let (Some(owned), Some(other)) = (&owned, &other) {
            return (owned.clone(), other.clone());
        }
    }
    unreachable!()
}

#[test]
fn shards_are_shared_and_only_their_owner_writes_them() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("shared");
    run(async move {
        let a = node(&url).await;
        let b = node(&url).await;
        until(|| {
            let (sa, sb) = (a.shards(), b.shards());
            sa.len() + sb.len() == 256 && sa.len() == 128 && sb.keys().all(|k| !sa.contains_key(k))
        })
        .await;
        let (mine, theirs) = tenants(&a);
        assert!(a.owns(&mine) && !a.owns(&theirs) && b.owns(&theirs));

        // A stream of a tenant A does not own: refused, nothing recorded; its owner writes it.
        let (stream, id) = agent(&theirs);
        let refused = a
            .append(
                &stream,
                ExpectedVersion::NoStream,
                vec![registered(&id, &theirs)],
            )
            .await;
        assert!(
            matches!(refused, Err(StoreError::NotOwner { shard }) if shard == shard_of(&theirs))
        );
        assert_eq!(a.stream_version(&stream).await.unwrap(), 0);
        b.append(
            &stream,
            ExpectedVersion::NoStream,
            vec![registered(&id, &theirs)],
        )
        .await
        .unwrap()
        .unwrap();
        // Placed now: a later event that names no tenant is fenced by the stream's shard.
        let refused = a
            .append(&stream, ExpectedVersion::Exact(1), vec![activated(&id)])
            .await;
        assert!(matches!(refused, Err(StoreError::NotOwner { .. })));
        b.append(&stream, ExpectedVersion::Exact(1), vec![activated(&id)])
            .await
            .unwrap()
            .unwrap();

        let (stream, id) = agent(&mine);
        a.append(
            &stream,
            ExpectedVersion::NoStream,
            vec![registered(&id, &mine)],
        )
        .await
        .unwrap()
        .unwrap();
        // Everyone reads everything.
        until(|| b.head() == 3).await;
        assert_eq!(
            b.read_stream(&stream, handover_store::SeqRange::ALL)
                .await
                .unwrap()
                .len(),
            1
        );
    });
}

/// Two nodes that split the shards, and an AI agent's stream the first one wrote in a
/// tenant of its own.
struct Split {
    a: PostgresStore,
    b: PostgresStore,
    mine: TenantId,
    stream: StreamId,
    id: AiAgentId,
    /// The epoch under which `a` holds the tenant's shard.
    epoch_before: i64,
}

async fn split(url: &str) -> Split {
    let a = node(url).await;
    let b = node(url).await;
    until(|| a.shards().len() == 128 && b.shards().len() == 128).await;
    let (mine, _) = tenants(&a);
    let (stream, id) = agent(&mine);
    a.append(
        &stream,
        ExpectedVersion::NoStream,
        vec![registered(&id, &mine)],
    )
    .await
    .unwrap()
    .unwrap();
    let epoch_before = a.shards()[&shard_of(&mine)];
    Split {
        a,
        b,
        mine,
        stream,
        id,
        epoch_before,
    }
}

#[test]
fn a_dead_nodes_shards_are_taken_over_and_written_by_the_others() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("takeover");
    run(async move {
        let Split {
            a,
            b,
            mine,
            stream,
            id,
            epoch_before,
        } = split(&url).await;
        drop(a);
        let died = Instant::now();
        until(|| b.shards().len() == 256).await;
        let taken_after = died.elapsed();
        assert!(
            b.shards()[&shard_of(&mine)] > epoch_before,
            "a takeover raises the epoch"
        );
        b.append(&stream, ExpectedVersion::Exact(1), vec![activated(&id)])
            .await
            .unwrap()
            .unwrap();
        println!("a stopped node's 128 shards were held by the other {taken_after:?} later (lease {LEASE:?})");
    });
}

#[test]
fn a_node_that_leaves_gives_its_shards_back_and_writes_no_more() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("leave");
    run(async move {
        let Split {
            a,
            b,
            mine,
            stream,
            id,
            epoch_before,
        } = split(&url).await;
        a.leave().await.unwrap();
        // Its appends are fenced at once, before anyone took the shard.
        let refused = a
            .append(&stream, ExpectedVersion::Exact(1), vec![activated(&id)])
            .await;
        assert!(
            matches!(refused, Err(StoreError::NotOwner { shard }) if shard == shard_of(&mine)),
            "{refused:?}"
        );
        let left = Instant::now();
        until(|| b.shards().len() == 256).await;
        let taken_after = left.elapsed();
        assert!(b.shards()[&shard_of(&mine)] > epoch_before);
        b.append(&stream, ExpectedVersion::Exact(1), vec![activated(&id)])
            .await
            .unwrap()
            .unwrap();
        println!("a node that left had its 128 shards held by the other {taken_after:?} later (lease {LEASE:?})");
    });
}

/// The node the pause test stops: holds every shard, then appends to one AI agent's stream as
/// fast as it can, printing `ACK <position>` for each acknowledged append, until an append is
/// refused because another node owns the shard (`FENCED`).
#[test]
fn node_child() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return;
    };
    run(async move {
        let store = node(&url).await;
        until(|| store.shards().len() == 256).await;
        let tenant = TenantId::new("paused").unwrap();
        let (stream, id) = agent(&tenant);
        store
            .append(
                &stream,
                ExpectedVersion::NoStream,
                vec![registered(&id, &tenant)],
            )
            .await
            .unwrap()
            .unwrap();
        println!("READY");
        loop {
            match store
                .append(&stream, ExpectedVersion::Any, vec![activated(&id)])
                .await
            {
                Ok(Ok(appended)) => println!("ACK {}", appended[0].position),
                Ok(Err(conflict)) => panic!("{conflict:?}"),
                Err(StoreError::NotOwner { shard }) => {
                    println!("FENCED {shard}");
                    return;
                }
                // The server ended a session paused in the middle of a group.
                Err(error) => println!("ERROR {error}"),
            }
        }
    });
}

#[test]
fn a_node_paused_past_its_lease_cannot_write_after_the_takeover() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("paused");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "node_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, &url)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the node process starts");
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = || {
        lines
            .recv_timeout(Duration::from_secs(120))
            .expect("the node speaks")
    };
    // The test harness prints its own "test node_child ... " before the first line.
    while !next().ends_with("READY") {}
    let mut acked = Vec::new();
    while acked.len() < 50 {
        if let Some(position) = next().strip_prefix("ACK ") {
            acked.push(position.parse::<u64>().unwrap());
        }
    }
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    let paused = Instant::now();
    // What it printed before the signal landed.
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
        if let Some(position) = line.strip_prefix("ACK ") {
            acked.push(position.parse().unwrap());
        }
    }

    let tenant = TenantId::new("paused").unwrap();
    let (stream, id) = agent(&tenant);
    let (taken_after, version, first_of_b) = run(async {
        let b = node(&url).await;
        until(|| b.owns(&tenant)).await;
        let taken_after = paused.elapsed();
        // The paused node's last group may have committed before the takeover: B writes
        // after whatever is there, and from now on nobody else may.
        let mut version = b.stream_version(&stream).await.unwrap();
        let first = b
            .append(
                &stream,
                ExpectedVersion::Exact(version),
                vec![activated(&id)],
            )
            .await
            .unwrap()
            .unwrap();
        version += 1;
        (taken_after, version, first[0].position)
    });
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
    let mut fenced = false;
    let mut errors = 0;
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(120)) {
        if let Some(position) = line.strip_prefix("ACK ") {
            acked.push(position.parse().unwrap());
        } else if line.starts_with("FENCED") {
            fenced = true;
            break;
        } else if line.starts_with("ERROR") {
            errors += 1;
        }
    }
    let status = child.wait().unwrap();
    assert!(fenced, "the woken node was refused by the fence");
    assert!(status.success());
    let max_acked = *acked.iter().max().unwrap();
    assert!(
        max_acked < first_of_b,
        "every acknowledgement of the paused node came before the takeover \
         (its last at {max_acked}, the new owner's first at {first_of_b})"
    );
    run(async {
        let b = PostgresStore::connect(&url, PostgresOptions::default())
            .await
            .unwrap();
        // Nothing of the old owner landed after the new owner's first event.
        let stream_records = b
            .read_stream(&stream, handover_store::SeqRange::ALL)
            .await
            .unwrap();
        assert_eq!(stream_records.last().unwrap().position, first_of_b);
        assert_eq!(stream_records.len() as u64, version);
        let snapshot = b.snapshot().await.unwrap();
        assert_eq!(snapshot.last().unwrap().position, first_of_b);
    });
    println!(
        "paused node: {} appends acknowledged before SIGSTOP; shard taken over {taken_after:?} \
         after the pause (lease {LEASE:?}); after SIGCONT, {errors} appends failed on its ended \
         session and the next was fenced; nothing of it after position {first_of_b}",
        acked.len()
    );
}
