//! [`PgCluster`] against a real PostgreSQL server: what a committed transaction holds survives
//! an immediate stop and a killed postmaster, clusters run side by side, databases are created
//! from inside a tokio runtime, and a dropped cluster's server is gone.

use handover_testkit::PgCluster;
use rustix::process::{kill_process, Pid, Signal};
use tokio_postgres::{Client, NoTls};

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    // Ends with an error when a test stops the server under it, as it should.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Whether process `pid` has exited (a zombie has: only its parent has yet to reap it). Its
/// number could in principle be reused, but not so soon: the kernel hands out pids in turn.
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat[stat.rfind(')').expect("a command name") + 1..]
            .trim_start()
            .starts_with('Z'),
    }
}

async fn notes(client: &Client) -> Vec<String> {
    client
        .query("SELECT body FROM notes ORDER BY id", &[])
        .await
        .expect("reading the notes")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// A table `notes` with one committed row, and one more row inserted in a transaction left
/// open; returns the connection holding that transaction.
async fn committed_and_open(url: &str) -> Client {
    let client = connect(url).await;
    client
        .batch_execute(
            "CREATE TABLE notes (id serial PRIMARY KEY, body text NOT NULL);
             INSERT INTO notes (body) VALUES ('committed');",
        )
        .await
        .expect("writing the committed note");
    // A separate query: in one multi-statement query, BEGIN would take the statements before
    // it into its transaction.
    client
        .batch_execute("BEGIN; INSERT INTO notes (body) VALUES ('never committed');")
        .await
        .expect("writing the uncommitted note");
    client
}

#[tokio::test]
async fn a_committed_row_survives_an_immediate_stop() {
    let cluster = PgCluster::start();
    let url = cluster.url();
    let open = committed_and_open(&url).await;

    cluster.stop_immediate();
    assert_eq!(cluster.pid(), None, "the server is gone");
    assert!(
        open.batch_execute("COMMIT").await.is_err(),
        "the open transaction's connection died with the server"
    );
    assert!(
        tokio_postgres::connect(&url, NoTls).await.is_err(),
        "nothing listens while the server is stopped"
    );

    cluster.start_again();
    assert_eq!(cluster.url(), url, "the same port after a restart");
    let client = connect(&url).await;
    assert_eq!(notes(&client).await, ["committed"]);

    // It still takes writes, and a clean stop keeps them too.
    client
        .batch_execute("INSERT INTO notes (body) VALUES ('after recovery')")
        .await
        .expect("writing after recovery");
    cluster.stop();
    cluster.start_again();
    let client = connect(&url).await;
    assert_eq!(notes(&client).await, ["committed", "after recovery"]);
}

#[tokio::test]
async fn a_committed_row_survives_a_killed_postmaster() {
    let cluster = PgCluster::start();
    let url = cluster.url();
    let _open = committed_and_open(&url).await;

    let pid = cluster.pid().expect("a running server has a pid");
    let raw = i32::try_from(pid).expect("a pid fits an i32");
    kill_process(Pid::from_raw(raw).expect("a positive pid"), Signal::KILL)
        .expect("SIGKILL to the postmaster");

    // The pid file is stale and the backend serving `_open` may still be exiting: the restart
    // copes with both.
    cluster.start_again();
    assert_ne!(cluster.pid(), Some(pid), "a new postmaster");
    let client = connect(&url).await;
    assert_eq!(notes(&client).await, ["committed"]);
}

#[test]
fn two_clusters_run_side_by_side() {
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(PgCluster::start);
        let b = scope.spawn(PgCluster::start);
        (
            a.join().expect("cluster a starts"),
            b.join().expect("cluster b starts"),
        )
    });
    assert_ne!(a.port(), b.port());
    assert_ne!(a.pid(), b.pid());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let client_a = connect(&a.url()).await;
        let client_b = connect(&b.url()).await;
        client_a
            .batch_execute("CREATE TABLE only_in_a (x int); INSERT INTO only_in_a VALUES (1)")
            .await
            .expect("writing to a");
        let exists = "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'";
        let in_a: i64 = client_a.query_one(exists, &[]).await.expect("a").get(0);
        let in_b: i64 = client_b.query_one(exists, &[]).await.expect("b").get(0);
        assert_eq!((in_a, in_b), (1, 0), "each cluster has its own data");
    });

    // Stopping one leaves the other serving.
    a.stop_immediate();
    runtime.block_on(async {
        let client_b = connect(&b.url()).await;
        let one: i32 = client_b.query_one("SELECT 1", &[]).await.expect("b").get(0);
        assert_eq!(one, 1);
    });
}

#[tokio::test]
async fn create_database_works_from_inside_a_runtime() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("journal_1");
    assert_eq!(
        url,
        format!("postgres://postgres@127.0.0.1:{}/journal_1", cluster.port())
    );
    let client = connect(&url).await;
    let name: String = client
        .query_one("SELECT current_database()", &[])
        .await
        .expect("asking which database")
        .get(0);
    assert_eq!(name, "journal_1");

    // Databases are apart: a table in one is not in the other.
    client
        .batch_execute("CREATE TABLE here (x int)")
        .await
        .expect("a table in journal_1");
    let other = connect(&cluster.create_database("journal_2")).await;
    let count: i64 = other
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'here'",
            &[],
        )
        .await
        .expect("looking for the table")
        .get(0);
    assert_eq!(count, 0);
}

#[test]
fn create_database_works_outside_a_runtime() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("plain");
    assert!(url.ends_with("/plain"), "{url}");
}

#[test]
#[should_panic(expected = "CREATE DATABASE \"twice\"")]
fn creating_a_database_twice_panics_saying_so() {
    let cluster = PgCluster::start();
    cluster.create_database("twice");
    cluster.create_database("twice");
}

#[test]
#[should_panic(expected = "is not a plain database name")]
fn a_database_name_needing_quotes_is_refused() {
    let cluster = PgCluster::start();
    cluster.create_database("two words");
}

#[tokio::test]
async fn dropping_the_cluster_stops_its_server() {
    let cluster = PgCluster::start();
    let url = cluster.url();
    let pid = cluster.pid().expect("a running server has a pid");
    let client = connect(&url).await;
    drop(cluster);
    assert!(
        client.batch_execute("SELECT 1").await.is_err(),
        "the connection died with the server"
    );
    assert!(gone(pid), "postmaster {pid} still runs");
}

#[test]
fn a_frozen_server_is_still_cleaned_up_on_drop() {
    let cluster = PgCluster::start();
    let pid = cluster.pid().expect("a running server has a pid");
    let raw = Pid::from_raw(i32::try_from(pid).expect("a pid fits an i32")).expect("positive");
    kill_process(raw, Signal::STOP).expect("SIGSTOP to the postmaster");
    drop(cluster);
    assert!(gone(pid), "postmaster {pid} still runs");
}
