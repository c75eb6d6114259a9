//! `handover simulate --webhook`, run as the real binary against a real receiver on
//! 127.0.0.1 that fails now and then: every event of the run arrives, signed, before the
//! command exits, from a data directory or from a database (a throwaway PostgreSQL server).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the receiver acknowledged: each event's `webhook-id` and position.
#[derive(Default)]
struct Received {
    requests: AtomicUsize,
    acknowledged: Mutex<Vec<(String, u64)>>,
}

/// Fails every fourth request; acknowledges the others once their signature checks out.
async fn receive(
    State(received): State<Arc<Received>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if received.requests.fetch_add(1, Ordering::SeqCst) % 4 == 3 {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let header = |name: &str| headers[name].to_str().unwrap().to_owned();
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let key = STANDARD
        .decode(SECRET.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&body);
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    if header("webhook-signature") != expected {
        return StatusCode::UNAUTHORIZED;
    }
    let event: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["id"].as_str(), Some(id.as_str()));
    let position = event["position"].as_str().unwrap().parse().unwrap();
    received.acknowledged.lock().unwrap().push((id, position));
    StatusCode::NO_CONTENT
}

/// A receiver served on its own runtime for as long as the test runs; its URL.
fn start_receiver(received: &Arc<Received>) -> (tokio::runtime::Runtime, String) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}/hooks", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/hooks", axum::routing::post(receive))
        .with_state(Arc::clone(received));
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (runtime, url)
}

fn handover(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_handover"))
        .env_remove("DATABASE_URL")
        .env_remove("HANDOVER_WEBHOOK_SECRET")
        .args(args)
        .output()
        .expect("the handover binary runs")
}

#[track_caller]
fn succeeded(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "handover failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The CloudEvents ids and positions of the log in `dir`, as the audit exports them.
fn exported(dir: &Path) -> Vec<(String, u64)> {
    let output = handover(&[
        "audit",
        "export",
        "--data",
        dir.to_str().unwrap(),
        "--format",
        "cloudevents",
    ]);
    succeeded(&output)
        .lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            let position = event["position"].as_str().unwrap().parse().unwrap();
            (event["id"].as_str().unwrap().to_owned(), position)
        })
        .collect()
}

fn simulate(dir: &Path, url: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "simulate",
        "--data",
        dir.to_str().unwrap(),
        "--quiet",
        "--conversations",
        "12",
    ];
    args.extend_from_slice(extra);
    if !url.is_empty() {
        args.extend_from_slice(&["--webhook", url, "--webhook-secret", SECRET]);
    }
    handover(&args)
}

#[test]
fn every_event_of_the_run_is_delivered_before_simulate_exits() {
    let received = Arc::new(Received::default());
    let (_runtime, url) = start_receiver(&received);
    let dir = tempfile::tempdir().unwrap();

    let output = simulate(dir.path(), &url, &["--json", "--seed", "3"]);
    let stdout = succeeded(&output);
    // stdout stays one JSON object; the delivery is reported on stderr.
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);

    let log = exported(dir.path());
    assert!(!log.is_empty());
    assert_eq!(
        summary["events"].as_u64(),
        Some(log.len() as u64),
        "{summary}"
    );
    assert!(
        stderr.contains(&format!("webhook: {} events delivered to {url}", log.len())),
        "{stderr}"
    );
    let acknowledged = received.acknowledged.lock().unwrap().clone();
    let ids: BTreeSet<&str> = acknowledged.iter().map(|(id, _)| id.as_str()).collect();
    let expected: BTreeSet<&str> = log.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, expected);
    // Delivered one at a time, in the log's order, through the receiver's failures.
    let positions: Vec<u64> = acknowledged.iter().map(|(_, position)| *position).collect();
    assert!(positions.windows(2).all(|pair| pair[0] < pair[1]));
    assert!(received.requests.load(Ordering::SeqCst) > log.len());
}

#[test]
fn an_appended_run_delivers_its_own_events_only() {
    let received = Arc::new(Received::default());
    let (_runtime, url) = start_receiver(&received);
    let dir = tempfile::tempdir().unwrap();
    succeeded(&simulate(dir.path(), "", &[]));
    let before = exported(dir.path()).len() as u64;

    let stdout = succeeded(&simulate(dir.path(), &url, &["--append", "--seed", "4"]));
    let log = exported(dir.path());
    let run = log.len() as u64 - before;
    assert!(run > 0);
    assert!(
        stdout.contains(&format!("webhook: {run} events delivered to {url}")),
        "{stdout}"
    );
    let acknowledged = received.acknowledged.lock().unwrap().clone();
    let positions: BTreeSet<u64> = acknowledged.iter().map(|(_, position)| *position).collect();
    assert_eq!(positions, (before + 1..=log.len() as u64).collect());
}

#[test]
fn a_bad_webhook_is_refused_before_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = handover(&[
        "simulate",
        "--data",
        data.to_str().unwrap(),
        "--webhook",
        "http://127.0.0.1:9/hooks",
        "--webhook-secret",
        "not-a-secret",
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("whsec_"));
    assert!(!data.exists(), "the run started anyway");
    let output = handover(&[
        "simulate",
        "--data",
        data.to_str().unwrap(),
        "--webhook",
        "http://127.0.0.1:9/",
    ]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "--webhook without its secret is a usage error"
    );
}

#[test]
fn a_run_on_postgres_delivers_every_event_of_the_database() {
    let received = Arc::new(Received::default());
    let (_runtime, url) = start_receiver(&received);
    let cluster = handover_testkit::PgCluster::start();
    let database = cluster.create_database("webhooks");
    let stdout = succeeded(&handover(&[
        "simulate",
        "--database-url",
        &database,
        "--quiet",
        "--conversations",
        "12",
        "--webhook",
        &url,
        "--webhook-secret",
        SECRET,
    ]));
    let export = succeeded(&handover(&[
        "audit",
        "export",
        "--database-url",
        &database,
        "--format",
        "cloudevents",
    ]));
    let expected: BTreeSet<String> = export
        .lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            event["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(!expected.is_empty());
    assert!(
        stdout.contains(&format!(
            "webhook: {} events delivered to {url}",
            expected.len()
        )),
        "{stdout}"
    );
    let acknowledged = received.acknowledged.lock().unwrap().clone();
    let ids: BTreeSet<String> = acknowledged.into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, expected);
}
