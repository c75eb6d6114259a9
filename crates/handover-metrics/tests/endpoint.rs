//! The metrics endpoint against a real runtime on a real sled directory: handoffs, reclaims,
//! escalations, an AI timeout and an SLA breach driven through the facade, then `/metrics`
//! served over HTTP, parsed as Prometheus exposition, and every figure compared with what
//! happened; the counters rebuilt from the log after a restart; the example dashboard queries
//! only metrics the endpoint serves.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use handover::*;
use handover_metrics::HandoverMetrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

fn text(s: &str) -> MessageText {
    MessageText::new(s).unwrap()
}

/// Answers every customer message.
struct Echo;

#[async_trait]
impl AiAgentBehavior for Echo {
    async fn on_customer_message(
        &self,
        session: &AiSession,
        text: &MessageText,
    ) -> Result<(), AgentError> {
        session
            .reply(MessageText::new(format!("echo: {text}"))?)
            .await?;
        Ok(())
    }
}

/// Never answers.
struct Silent;

#[async_trait]
impl AiAgentBehavior for Silent {
    async fn on_customer_message(&self, _: &AiSession, _: &MessageText) -> Result<(), AgentError> {
        std::future::pending::<()>().await;
        Ok(())
    }
}

async fn start(dir: &std::path::Path, clock: &ManualClock) -> Handover {
    let mut rules = Settings::default();
    rules.default_sla = Sla {
        warning_ms: 10_000,
        breach_ms: 20_000,
    };
    rules.ai_reply_deadline_ms = 30_000;
    Handover::start(
        Config::new(dir)
            .workers(2)
            .clock(Arc::new(clock.clone()))
            .router(Arc::new(NoRouter))
            .rules(rules),
    )
    .await
    .unwrap()
}

async fn ai(handover: &Handover, name: &str, behavior: Arc<dyn AiAgentBehavior>) -> AiAgentId {
    let agent_id: AiAgentId = id(name);
    handover
        .register_ai_agent(AiAgentProfile {
            id: agent_id.clone(),
            name: AgentName::new(format!("{name} bot")).unwrap(),
            specialties: vec![id("billing")],
        })
        .await
        .unwrap();
    handover.activate_ai_agent(agent_id.clone()).await.unwrap();
    handover
        .attach_ai_agent(agent_id.clone(), behavior)
        .unwrap();
    agent_id
}

/// Waits until the conversation records an event `matches` accepts. The bound is a liveness
/// guard, not a measure of speed.
async fn until(
    handover: &Handover,
    id: ConversationId,
    matches: impl Fn(&ConversationEvent) -> bool,
) {
    let mut watch = handover.watch(id).await.unwrap();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(record) = watch.next().await {
            if let Event::Conversation(event) = &record.unwrap().event {
                if matches(event) {
                    return;
                }
            }
        }
    })
    .await;
    assert!(found.is_ok(), "the expected event never came");
}

/// The metrics' router served on a free port, as a backend would.
struct Server {
    address: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    async fn start(metrics: &HandoverMetrics) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app: axum::Router = axum::Router::new().merge(metrics.router());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap()
        });
        Server {
            address,
            stop,
            task,
        }
    }

    /// Stops serving and drops the router, and with it its handle on the runtime.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

/// `GET /metrics` over a plain TCP stream: the content type and the body.
async fn scrape(address: std::net::SocketAddr) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .expect("a content type");
    (content_type, body.to_owned())
}

/// One sample line: its name, its labels and its value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_metric_name(name: &str) -> bool {
    name.strip_prefix("handover_").is_some_and(|rest| {
        !rest.is_empty() && rest.chars().all(|c| c.is_ascii_lowercase() || c == '_')
    })
}

/// Parses the exposition strictly: every family has HELP then TYPE, every sample belongs to
/// the family declared last, names are `handover_[a-z_]+`, counters end in `_total`, and no
/// label names a conversation.
fn parse_strictly(body: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut family: Option<(String, String)> = None;
    let mut helped: Option<String> = None;
    let mut families = BTreeSet::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has a text");
            assert!(!help.is_empty(), "{line}");
            helped = Some(name.to_owned());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a type");
            assert_eq!(
                helped.as_deref(),
                Some(name),
                "TYPE without its HELP: {line}"
            );
            assert!(is_metric_name(name), "bad metric name {name}");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "unexpected type {kind}"
            );
            if kind == "counter" {
                assert!(name.ends_with("_total"), "counter {name} without _total");
            } else {
                assert!(!name.ends_with("_total"), "{kind} {name} ends in _total");
            }
            assert!(families.insert(name.to_owned()), "{name} declared twice");
            family = Some((name.to_owned(), kind.to_owned()));
            continue;
        }
        assert!(!line.starts_with('#'), "unexpected comment {line}");
        if line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').expect("labels closed");
                let labels = labels
                    .split("\",")
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (key, value) = pair.split_once("=\"").expect("label=\"value\"");
                        (key.to_owned(), value.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        let (declared, kind) = family.as_ref().expect("a sample before any TYPE");
        let belongs = match kind.as_str() {
            "histogram" => [
                format!("{declared}_bucket"),
                format!("{declared}_sum"),
                format!("{declared}_count"),
            ]
            .contains(&name),
            _ => name == *declared,
        };
        assert!(belongs, "{name} under the family {declared}");
        for (key, value) in &labels {
            assert!(
                !key.contains("conversation"),
                "a conversation label: {line}"
            );
            assert!(
                value.parse::<ConversationId>().is_err(),
                "a conversation's id as a label value: {line}"
            );
        }
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

/// The sum of the samples named `name` whose labels include `with`.
fn sum(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            with.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// Scrapes until the metrics have counted the whole log; the bound is a liveness guard.
async fn caught_up(
    handover: &Handover,
    metrics: &HandoverMetrics,
    address: std::net::SocketAddr,
) -> Vec<Sample> {
    let scraped = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if metrics.position() == handover.log_head() {
                let (content_type, body) = scrape(address).await;
                assert!(content_type.starts_with("text/plain"), "{content_type}");
                assert!(content_type.contains("version=0.0.4"), "{content_type}");
                let samples = parse_strictly(&body);
                let lag = sum(&samples, "handover_feed_lag_events", &[]);
                if lag == 0.0 {
                    // The parser crate reads it too.
                    let lines = body.lines().map(|l| Ok(l.to_owned()));
                    let parsed = prometheus_parse::Scrape::parse(lines).unwrap();
                    assert!(!parsed.samples.is_empty());
                    return samples;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    scraped.expect("the metrics never caught up with the log")
}

/// Waits until the endpoint shows `name` (summed over `with`) at `value`.
async fn until_counted(
    handover: &Handover,
    metrics: &HandoverMetrics,
    address: std::net::SocketAddr,
    name: &str,
    with: &[(&str, &str)],
    value: f64,
) {
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let samples = caught_up(handover, metrics, address).await;
            if sum(&samples, name, with) == value {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(found.is_ok(), "{name} never reached {value}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_counts_what_happened_and_counts_it_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let tenant = TenantId::default_tenant();
    let t = tenant.as_str().to_owned();
    let t = t.as_str();
    {
        let h = start(dir.path(), &clock).await;
        let metrics = HandoverMetrics::new(&h).unwrap();
        let server = Server::start(&metrics).await;
        let address = server.address;
        let ana: HumanId = id("ana");
        h.register_human(NewHuman::agent(ana.clone(), AgentName::new("Ana").unwrap()))
            .await
            .unwrap();
        h.set_presence(ana.clone(), Presence::Available)
            .await
            .unwrap();
        let echo = ai(&h, "echo", Arc::new(Echo)).await;
        let silent = ai(&h, "silent", Arc::new(Silent)).await;
        let open = |customer: &'static str| {
            let h = &h;
            let ana = ana.clone();
            async move {
                h.open_conversation(id(customer), id("chat"), Some(ana))
                    .await
                    .unwrap()
                    .conversation_id
            }
        };

        // Contained: the AI answers, and the conversation is closed while it holds it.
        let contained = open("cust-1").await;
        h.hand_off_to_ai(contained, ana.clone(), echo.clone(), None)
            .await
            .unwrap();
        h.post_customer_message(contained, id("cust-1"), text("How do I pay?"))
            .await
            .unwrap();
        until(&h, contained, |e| {
            matches!(
                e,
                ConversationEvent::MessagePosted {
                    author: Author::Ai(_),
                    ..
                }
            )
        })
        .await;
        h.close(contained, ana.clone(), None).await.unwrap();

        // Reclaimed, then closed by the human.
        let reclaimed = open("cust-2").await;
        h.hand_off_to_ai(reclaimed, ana.clone(), echo.clone(), None)
            .await
            .unwrap();
        h.reclaim(reclaimed, ana.clone(), None).await.unwrap();
        h.close(reclaimed, ana.clone(), None).await.unwrap();

        // Reclaimed, handed back, and closed while the AI holds it again.
        let back = open("cust-5").await;
        h.hand_off_to_ai(back, ana.clone(), echo.clone(), None)
            .await
            .unwrap();
        h.reclaim(back, ana.clone(), None).await.unwrap();
        h.hand_off_to_ai(back, ana.clone(), echo.clone(), None)
            .await
            .unwrap();
        h.close(back, ana.clone(), None).await.unwrap();

        // Never handed to an AI agent.
        let human_only = open("cust-6").await;
        h.close(human_only, ana.clone(), None).await.unwrap();

        // Escalated by the customer, waits past the SLA's warning and breach, then accepted.
        let escalated = open("cust-3").await;
        h.hand_off_to_ai(escalated, ana.clone(), echo.clone(), None)
            .await
            .unwrap();
        let receipt = h
            .post_customer_message(escalated, id("cust-3"), text("I want to talk to a human"))
            .await
            .unwrap();
        assert_eq!(receipt.status.label(), "awaiting-human");
        clock.advance_millis(10_000);
        until(&h, escalated, |e| {
            matches!(e, ConversationEvent::SlaWarning { .. })
        })
        .await;
        clock.advance_millis(10_000);
        until(&h, escalated, |e| {
            matches!(e, ConversationEvent::SlaBreached { .. })
        })
        .await;
        h.accept(escalated, ana.clone()).await.unwrap();

        // The silent agent misses its deadline: timed out, escalated, left waiting 5 s.
        let timed_out = open("cust-4").await;
        h.hand_off_to_ai(timed_out, ana.clone(), silent.clone(), None)
            .await
            .unwrap();
        h.post_customer_message(timed_out, id("cust-4"), text("what is my balance?"))
            .await
            .unwrap();
        clock.advance_millis(30_000);
        until(&h, timed_out, |e| {
            matches!(e, ConversationEvent::AwaitingHuman { .. })
        })
        .await;
        clock.advance_millis(5_000);
        h.settle_timers().await;

        let s = caught_up(&h, &metrics, address).await;
        let total = |name: &str, with: &[(&str, &str)]| sum(&s, name, with);
        assert_eq!(
            total("handover_conversations_opened_total", &[("tenant", t)]),
            6.0
        );
        assert_eq!(
            total("handover_handoffs_total", &[("ai_agent", "echo")]),
            5.0
        );
        assert_eq!(
            total("handover_handoffs_total", &[("ai_agent", "silent")]),
            1.0
        );
        assert_eq!(
            total(
                "handover_reclaims_total",
                &[("tenant", t), ("ai_agent", "echo")]
            ),
            2.0
        );
        assert_eq!(
            total(
                "handover_escalations_total",
                &[("cause", "customer_asked_for_human")]
            ),
            1.0
        );
        assert_eq!(
            total(
                "handover_escalations_total",
                &[("cause", "ai_timeout"), ("ai_agent", "silent")]
            ),
            1.0
        );
        assert_eq!(total("handover_escalations_total", &[]), 2.0);
        // The customer's request was a policy rule's decision; the timeout was no rule's.
        assert!(s.iter().any(|s| s.name == "handover_escalations_total"
            && s.labels["cause"] == "customer_asked_for_human"
            && !s.labels["rule"].is_empty()));
        assert_eq!(
            total(
                "handover_escalations_total",
                &[("cause", "ai_timeout"), ("rule", "")]
            ),
            1.0
        );
        assert_eq!(
            total("handover_ai_timeouts_total", &[("ai_agent", "silent")]),
            1.0
        );
        assert_eq!(total("handover_sla_warnings_total", &[("team", "")]), 1.0);
        assert_eq!(total("handover_sla_breaches_total", &[("team", "")]), 1.0);
        // Escalated at T0 + 0, accepted at T0 + 20 s.
        assert_eq!(
            total("handover_escalation_to_human_seconds_count", &[]),
            1.0
        );
        assert_eq!(total("handover_escalation_to_human_seconds_sum", &[]), 20.0);
        assert_eq!(
            total(
                "handover_escalation_to_human_seconds_bucket",
                &[("le", "15")]
            ),
            0.0
        );
        assert_eq!(
            total(
                "handover_escalation_to_human_seconds_bucket",
                &[("le", "30")]
            ),
            1.0
        );
        // One AI reply, at the same instant of the manual clock as the question.
        assert_eq!(
            total("handover_ai_reply_seconds_count", &[("ai_agent", "echo")]),
            1.0
        );
        assert_eq!(
            total("handover_ai_reply_seconds_sum", &[("ai_agent", "echo")]),
            0.0
        );
        assert_eq!(
            total(
                "handover_conversations_closed_total",
                &[("outcome", "contained")]
            ),
            1.0
        );
        assert_eq!(
            total(
                "handover_conversations_closed_total",
                &[("outcome", "returned")]
            ),
            1.0
        );
        for outcome in ["ai_after_return", "human_only"] {
            assert_eq!(
                total(
                    "handover_conversations_closed_total",
                    &[("outcome", outcome)]
                ),
                1.0,
                "{outcome}"
            );
        }
        assert_eq!(
            total("handover_ai_containment_ratio", &[("tenant", t)]),
            1.0 / 3.0
        );

        // Conversations by status and the queues are the live queries' figures.
        let counts = h.conversation_counts(&tenant);
        for (status, expected) in [
            ("ai_active", counts.ai_active),
            ("awaiting_human", counts.awaiting_human),
            ("human_handled", counts.human_handled),
            ("closed", counts.closed_recently),
        ] {
            assert_eq!(
                total(
                    "handover_conversations",
                    &[("tenant", t), ("status", status)]
                ),
                expected as f64,
                "{status}"
            );
        }
        assert_eq!(
            (
                counts.ai_active,
                counts.awaiting_human,
                counts.human_handled,
                counts.closed_recently
            ),
            (0, 1, 1, 4)
        );
        assert_eq!(counts.queues.len(), 1);
        let queue = &counts.queues[0];
        assert_eq!(
            total("handover_queue_depth", &[("tenant", t), ("team", "")]),
            queue.waiting as f64
        );
        assert_eq!(queue.waiting, 1);
        assert_eq!(
            total("handover_queue_longest_wait_seconds", &[("team", "")]),
            queue.longest_wait.as_secs_f64()
        );
        assert_eq!(queue.longest_wait, Duration::from_secs(5));

        // The runtime's own figures.
        let stats = h.store_stats();
        assert_eq!(
            total("handover_store_events_appended_total", &[]),
            stats.events as f64
        );
        assert_eq!(total("handover_store_syncs_total", &[]), stats.syncs as f64);
        assert_eq!(
            total("handover_store_appends_total", &[]),
            stats.appends as f64
        );
        let acknowledged = h.ack_latency().acknowledged as f64;
        assert!(acknowledged > 0.0);
        assert_eq!(
            total("handover_ack_latency_seconds_count", &[]),
            acknowledged
        );
        assert_eq!(
            total("handover_ack_latency_seconds_bucket", &[("le", "+Inf")]),
            acknowledged
        );
        assert_eq!(
            total("handover_feed_events_total", &[]),
            h.log_head() as f64
        );
        assert_eq!(total("handover_feed_position", &[]), h.log_head() as f64);

        // The example dashboard queries nothing the endpoint does not serve.
        let served: BTreeSet<&str> = s.iter().map(|s| s.name.as_str()).collect();
        for name in dashboard_metrics() {
            assert!(
                served.contains(name.as_str()),
                "the dashboard queries {name}, not served"
            );
        }

        server.stop().await;
        drop(metrics);
        h.shutdown().await;
    }

    // A new instance on the restarted runtime counts the whole log again.
    let h = start(dir.path(), &clock).await;
    let metrics = HandoverMetrics::new(&h).unwrap();
    let server = Server::start(&metrics).await;
    let address = server.address;
    until_counted(&h, &metrics, address, "handover_handoffs_total", &[], 6.0).await;
    let s = caught_up(&h, &metrics, address).await;
    assert_eq!(sum(&s, "handover_escalations_total", &[]), 2.0);
    assert_eq!(sum(&s, "handover_sla_breaches_total", &[]), 1.0);
    assert_eq!(
        sum(&s, "handover_escalation_to_human_seconds_sum", &[]),
        20.0
    );
    assert_eq!(
        sum(&s, "handover_ai_containment_ratio", &[("tenant", t)]),
        1.0 / 3.0
    );
    assert_eq!(sum(&s, "handover_queue_depth", &[("team", "")]), 1.0);
    server.stop().await;
    drop(metrics);
    h.shutdown().await;
}

/// Every sample name the example dashboard's queries use.
fn dashboard_metrics() -> BTreeSet<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/grafana/handover-dashboard.json"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("valid JSON");
    let mut exprs = Vec::new();
    collect_exprs(&json, &mut exprs);
    assert!(
        exprs.len() >= 10,
        "the dashboard has {} queries",
        exprs.len()
    );
    let mut names = BTreeSet::new();
    for expr in exprs {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("handover_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            names.insert(name);
        }
    }
    names
}

fn collect_exprs(value: &serde_json::Value, into: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", serde_json::Value::String(expr)) => into.push(expr.clone()),
                    _ => collect_exprs(value, into),
                }
            }
        }
        serde_json::Value::Array(values) => values.iter().for_each(|v| collect_exprs(v, into)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_a_tokio_runtime_and_start_empty_on_an_empty_log() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let h = start(dir.path(), &clock).await;
    let metrics = HandoverMetrics::new(&h).unwrap();
    let body = metrics.render();
    let samples = parse_strictly(&body);
    assert_eq!(sum(&samples, "handover_feed_lag_events", &[]), 0.0);
    assert_eq!(
        sum(&samples, "handover_ack_latency_seconds_count", &[]),
        0.0
    );
    // Outside a runtime, creating them is an error, not a panic.
    let h2 = h.clone();
    let outside = std::thread::spawn(move || HandoverMetrics::new(&h2).map(|_| ()))
        .join()
        .unwrap();
    assert!(matches!(
        outside,
        Err(handover_metrics::MetricsError::NoRuntime(_))
    ));
    drop(metrics);
    h.shutdown().await;
}
