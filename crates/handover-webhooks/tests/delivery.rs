//! The sink against a real HTTP receiver on 127.0.0.1 and a real sled log written through the
//! runtime: a receiver that is down, fails, hangs and recovers still gets every event, each
//! conversation in order, signed as Standard Webhooks says; a sink stopped half-way and started
//! again on the same checkpoint file misses nothing.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::{export_lines, verify_signed, wait_for_stats, PATIENCE, SECRET};
use handover::{
    AgentName, AiAgentId, AiAgentProfile, EventStore, Handover, MessageText, RuntimeSettings,
    SledOptions, SledStore,
};
use handover_webhooks::{Checkpoint, EventFilter, FileCheckpoint, WebhookSink};

/// What the receiver answers to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    Ok,
    Fail,
    /// Answers only long after the sink's timeout.
    Hang,
}

/// One request as the receiver got it.
#[derive(Clone, Debug)]
struct Arrival {
    id: String,
    timestamp: String,
    signature: String,
    content_type: String,
    body: Bytes,
    answer: Answer,
}

impl Arrival {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }

    fn stream_and_seq(&self) -> (String, u64) {
        let json = self.json();
        let stream = json["stream"].as_str().unwrap().to_owned();
        let seq = json["seq"].as_str().unwrap().parse().unwrap();
        (stream, seq)
    }
}

/// A receiver that answers request `n` (from 0) as its script says.
struct Receiver {
    script: Box<dyn Fn(usize) -> Answer + Send + Sync>,
    requests: AtomicUsize,
    arrivals: Mutex<Vec<Arrival>>,
}

impl Receiver {
    fn new(script: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Arc<Receiver> {
        Arc::new(Receiver {
            script: Box::new(script),
            requests: AtomicUsize::new(0),
            arrivals: Mutex::new(Vec::new()),
        })
    }

    fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().unwrap().clone()
    }

    /// Serves on `listener` until the test ends.
    fn serve(self: &Arc<Self>, listener: tokio::net::TcpListener) {
        let app = axum::Router::new()
            .route("/events", axum::routing::post(receive))
            .with_state(Arc::clone(self));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    }
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let n = receiver.requests.fetch_add(1, Ordering::SeqCst);
    let answer = (receiver.script)(n);
    let header = |name: &str| {
        headers
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    receiver.arrivals.lock().unwrap().push(Arrival {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        content_type: header("content-type"),
        body,
        answer,
    });
    match answer {
        Answer::Ok => StatusCode::NO_CONTENT,
        Answer::Fail => StatusCode::INTERNAL_SERVER_ERROR,
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::NO_CONTENT
        }
    }
}

/// The Standard Webhooks check of one arrival (see `common::verify_signed`).
fn verify(arrival: &Arrival) {
    verify_signed(
        &arrival.id,
        &arrival.timestamp,
        &arrival.signature,
        &arrival.content_type,
        &arrival.body,
    );
    let json = arrival.json();
    assert_eq!(json["specversion"], "1.0");
    assert_eq!(json["id"].as_str(), Some(arrival.id.as_str()));
}

/// A sled log in a temporary directory with the runtime on it.
struct Log {
    _dir: tempfile::TempDir,
    store: Arc<SledStore>,
    handover: Handover,
}

impl Log {
    async fn start() -> Log {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SledStore::open(dir.path(), SledOptions::default()).unwrap());
        let handover = Handover::start_with_store(
            store.clone() as Arc<dyn EventStore>,
            RuntimeSettings::default(),
        )
        .await
        .unwrap();
        handover
            .register_ai_agent(AiAgentProfile {
                id: "faq-bot".parse::<AiAgentId>().unwrap(),
                name: AgentName::new("FAQ bot").unwrap(),
                specialties: vec![],
            })
            .await
            .unwrap();
        Log {
            _dir: dir,
            store,
            handover,
        }
    }

    /// Opens `conversations` conversations and posts `messages` customer messages in each,
    /// the conversations interleaved.
    async fn converse(&self, conversations: usize, messages: usize) {
        let mut ids = Vec::new();
        for i in 0..conversations {
            let receipt = self
                .handover
                .open_conversation(
                    format!("customer-{i}").parse().unwrap(),
                    "web-chat".parse().unwrap(),
                    None,
                )
                .await
                .unwrap();
            ids.push((receipt.conversation_id, i));
        }
        for m in 0..messages {
            for (id, i) in &ids {
                self.handover
                    .post_customer_message(
                        *id,
                        format!("customer-{i}").parse().unwrap(),
                        MessageText::new(format!("question {m}")).unwrap(),
                    )
                    .await
                    .unwrap();
            }
        }
    }

    fn store(&self) -> Arc<dyn EventStore> {
        self.store.clone()
    }

    /// Every event's CloudEvents line, as `handover audit export --format cloudevents`
    /// writes it, by webhook id, in position order.
    async fn export_lines(&self) -> Vec<(String, Vec<u8>)> {
        export_lines(&*self.store).await
    }
}

async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("gave up waiting: {what}"))
}

/// Each stream's seqs in arrival order never go back (a repeat of the same event is allowed).
fn assert_in_order_per_stream(arrivals: &[Arrival]) {
    let mut last: HashMap<String, u64> = HashMap::new();
    for arrival in arrivals {
        let (stream, seq) = arrival.stream_and_seq();
        let previous = last.insert(stream.clone(), seq).unwrap_or(0);
        assert!(
            seq >= previous,
            "{stream}: seq {seq} arrived after seq {previous}"
        );
    }
}

/// Every event of the log was acknowledged at least once, with the export's line as its body.
fn assert_every_event_acknowledged(expected: &[(String, Vec<u8>)], arrivals: &[Arrival]) {
    let acknowledged: HashMap<&str, &Bytes> = arrivals
        .iter()
        .filter(|arrival| arrival.answer == Answer::Ok)
        .map(|arrival| (arrival.id.as_str(), &arrival.body))
        .collect();
    for (id, line) in expected {
        let body = acknowledged
            .get(id.as_str())
            .unwrap_or_else(|| panic!("event {id} was never acknowledged"));
        assert_eq!(
            body.as_ref(),
            line.as_slice(),
            "{id}: the body is not the export's line"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_fails_and_hangs_still_gets_every_event_in_order() {
    let log = Log::start().await;
    log.converse(6, 3).await;

    // The receiver's port, closed at first: the receiver is down.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    drop(listener);

    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::builder(format!("http://{address}/events"), SECRET)
        .checkpoint(FileCheckpoint::new(dir.path().join("webhook.checkpoint")))
        .timeout(Duration::from_millis(300))
        .initial_backoff(Duration::from_millis(5))
        .max_backoff(Duration::from_millis(100))
        .batch(8)
        .spawn(log.store())
        .unwrap();
    wait_for_stats(&sink, "attempts on a closed port", |stats| {
        stats.failed_attempts >= 3
    })
    .await;
    assert_eq!(sink.stats().acknowledged, 0);

    // Back up, failing its first requests, then hanging, then now and then either.
    let receiver = Receiver::new(|n| match n {
        0..=4 => Answer::Fail,
        5..=6 => Answer::Hang,
        n if n % 7 == 3 => Answer::Fail,
        n if n % 13 == 5 => Answer::Hang,
        _ => Answer::Ok,
    });
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    receiver.serve(listener);

    // More events while the sink works through the backlog: it follows the log live.
    log.converse(4, 4).await;
    let head = log.store.head();
    within("every event delivered", sink.wait_until_delivered(head))
        .await
        .unwrap();
    let stats = sink.shutdown().await.unwrap();

    let expected = log.export_lines().await;
    let arrivals = receiver.arrivals();
    assert!(arrivals
        .iter()
        .any(|arrival| arrival.answer == Answer::Fail));
    assert!(arrivals
        .iter()
        .any(|arrival| arrival.answer == Answer::Hang));
    arrivals.iter().for_each(verify);
    assert_in_order_per_stream(&arrivals);
    assert_every_event_acknowledged(&expected, &arrivals);
    assert_eq!(stats.position, head);
    assert_eq!(stats.acknowledged, expected.len() as u64);
    let saved = FileCheckpoint::new(dir.path().join("webhook.checkpoint"))
        .load()
        .unwrap();
    assert_eq!(saved, Some(head));
    println!(
        "{} events, {} requests, {} failed attempts",
        expected.len(),
        arrivals.len(),
        stats.failed_attempts
    );
    log.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_started_again_on_its_checkpoint_resumes_and_misses_nothing() {
    let log = Log::start().await;
    log.converse(10, 8).await;
    let head = log.store.head();
    // From its 40th request on, the receiver fails until it is let through: the first sink
    // cannot reach the end of the log, whatever the pace.
    let through = Arc::new(AtomicBool::new(false));
    let receiver = Receiver::new({
        let through = Arc::clone(&through);
        move |n| {
            if (n >= 40 && !through.load(Ordering::SeqCst)) || n % 5 == 4 {
                Answer::Fail
            } else {
                Answer::Ok
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    receiver.serve(listener);
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("webhook.checkpoint");
    let sink = |checkpoint: &std::path::Path| {
        WebhookSink::builder(&url, SECRET)
            .checkpoint(FileCheckpoint::new(checkpoint))
            .initial_backoff(Duration::from_millis(5))
            .max_backoff(Duration::from_millis(50))
            .batch(16)
            .spawn(log.store())
            .unwrap()
    };

    // Stopped part-way, while it retries.
    let first = sink(&checkpoint);
    wait_for_stats(&first, "the receiver failing past its 40th request", |_| {
        receiver.requests.load(Ordering::SeqCst) >= 45
    })
    .await;
    let stopped = first.shutdown().await.unwrap();
    assert!(
        stopped.position < head,
        "stopped at {} of {head}",
        stopped.position
    );
    let saved = FileCheckpoint::new(&checkpoint).load().unwrap().unwrap();
    assert_eq!(saved, stopped.position);
    assert!(stopped.position > 0);
    let before_restart = receiver.arrivals().len();
    through.store(true, Ordering::SeqCst);

    // More events while no sink runs, then a new sink on the same file.
    log.converse(3, 2).await;
    let head = log.store.head();
    let second = sink(&checkpoint);
    within("the rest delivered", second.wait_until_delivered(head))
        .await
        .unwrap();
    let resumed = second.shutdown().await.unwrap();

    let expected = log.export_lines().await;
    let arrivals = receiver.arrivals();
    arrivals.iter().for_each(verify);
    assert_in_order_per_stream(&arrivals);
    assert_every_event_acknowledged(&expected, &arrivals);
    // The second sink started after the checkpoint, not from the start of the log.
    let positions: Vec<u64> = arrivals[before_restart..]
        .iter()
        .map(|arrival| {
            arrival.json()["position"]
                .as_str()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(positions.iter().min(), Some(&(saved + 1)));
    assert_eq!(resumed.acknowledged, head - saved);
    assert_eq!(FileCheckpoint::new(&checkpoint).load().unwrap(), Some(head));
    log.handover.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_delivers_only_the_events_it_names() {
    let log = Log::start().await;
    log.converse(3, 2).await;
    let receiver = Receiver::new(|_| Answer::Ok);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    receiver.serve(listener);
    let head = log.store.head();

    let messages = WebhookSink::builder(&url, SECRET)
        .filter(
            EventFilter::all()
                .event_types(["message_posted"])
                .tenants(["default"]),
        )
        .spawn(log.store())
        .unwrap();
    within(
        "the messages delivered",
        messages.wait_until_delivered(head),
    )
    .await
    .unwrap();
    let stats = messages.shutdown().await.unwrap();
    // Another tenant's filter passes nothing of this log, and still goes through all of it.
    let elsewhere = WebhookSink::builder(&url, SECRET)
        .filter(EventFilter::all().tenants(["globex"]))
        .spawn(log.store())
        .unwrap();
    within("the log passed over", elsewhere.wait_until_delivered(head))
        .await
        .unwrap();
    assert_eq!(elsewhere.shutdown().await.unwrap().acknowledged, 0);

    let records = log.store.read_all(1, usize::MAX).await.unwrap();
    let mut posted: BTreeMap<String, ()> = BTreeMap::new();
    for record in &records {
        if record.event.type_name() == "message_posted" {
            posted.insert(handover_webhooks::webhook_id(record), ());
        }
    }
    let arrivals = receiver.arrivals();
    assert_eq!(arrivals.len(), posted.len());
    assert_eq!(stats.acknowledged, posted.len() as u64);
    for arrival in &arrivals {
        verify(arrival);
        assert_eq!(arrival.json()["type"], "dev.handover.message_posted");
        assert_eq!(arrival.json()["tenant"], "default");
        assert!(posted.contains_key(&arrival.id));
    }
    log.handover.shutdown().await;
}

#[tokio::test]
async fn a_bad_url_or_secret_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> =
        Arc::new(SledStore::open(dir.path(), SledOptions::default()).unwrap());
    for url in [
        "https:///events",
        "ftp://example.com",
        "not a url",
        "/events",
    ] {
        let error = WebhookSink::builder(url, SECRET)
            .spawn(store.clone())
            .unwrap_err();
        assert!(
            error.to_string().contains("invalid webhook URL"),
            "{url}: {error}"
        );
    }
    let error = WebhookSink::builder("http://127.0.0.1:9/events", "secret")
        .spawn(store.clone())
        .unwrap_err();
    assert!(error.to_string().contains("whsec_"), "{error}");
}
