//! What the metrics cost: the time to render `/metrics` over 10,000 conversations, the time a
//! new instance takes to count the whole log, and the acknowledgement latency of commands with
//! and without the metrics following the log (rounds alternate so that drift in the disk's
//! speed falls on both).
//!
//! ```sh
//! cargo run --release -p handover-metrics --example metrics_cost
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use handover::*;
use handover_metrics::HandoverMetrics;

const CONVERSATIONS: usize = 10_000;
const TEAMS: usize = 20;
/// Conversations in the closed loop of a latency round, one command in flight each.
const LOOP_CONVERSATIONS: usize = 100;
/// Commands per conversation in a latency round.
const COMMANDS_EACH: usize = 200;
const ROUNDS: usize = 5;

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

/// An AI agent that is handed conversations and never asked anything here.
struct Idle;

#[async_trait]
impl AiAgentBehavior for Idle {
    async fn on_customer_message(&self, _: &AiSession, _: &MessageText) -> Result<(), AgentError> {
        Ok(())
    }
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// One closed-loop round: every conversation posts `COMMANDS_EACH` customer messages, one at
/// a time; returns each command's latency, sorted.
async fn round(handover: &Handover, loop_ids: &[(ConversationId, CustomerId)]) -> Vec<Duration> {
    let mut tasks = Vec::new();
    for (conversation, customer) in loop_ids.iter().cloned() {
        let handover = handover.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(COMMANDS_EACH);
            for i in 0..COMMANDS_EACH {
                let text = MessageText::new(format!("message {i}")).unwrap();
                let called = Instant::now();
                handover
                    .post_customer_message(conversation, customer.clone(), text)
                    .await
                    .unwrap();
                latencies.push(called.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    all
}

async fn caught_up(handover: &Handover, metrics: &HandoverMetrics) -> Duration {
    let started = Instant::now();
    while metrics.position() < handover.log_head() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    started.elapsed()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let handover = Handover::start(Config::new(dir.path()).router(Arc::new(NoRouter))).await?;
    let tenant = TenantId::default_tenant();
    let bot: AiAgentId = id("bot");
    handover
        .register_ai_agent(AiAgentProfile {
            id: bot.clone(),
            name: AgentName::new("Bot")?,
            specialties: vec![id("billing")],
        })
        .await?;
    handover.activate_ai_agent(bot.clone()).await?;
    handover.attach_ai_agent(bot.clone(), Arc::new(Idle))?;
    for h in 0..TEAMS {
        let human: HumanId = id(&format!("agent-{h}"));
        handover
            .register_human(
                NewHuman::agent(human.clone(), AgentName::new(format!("Agent {h}"))?)
                    .teams(vec![id(&format!("team-{h}"))])
                    .capacity(1_000),
            )
            .await?;
        handover.set_presence(human, Presence::Available).await?;
    }

    // 10,000 conversations: a third waiting in 20 teams' queues, a third with a human, a
    // third handed to the AI agent; opened 100 at a time.
    let opened = Instant::now();
    let mut loop_ids = Vec::new();
    for chunk in (0..CONVERSATIONS).collect::<Vec<_>>().chunks(100) {
        let mut tasks = Vec::new();
        for &i in chunk {
            let handover = handover.clone();
            let tenant = tenant.clone();
            let bot = bot.clone();
            tasks.push(tokio::spawn(async move {
                let team = i % TEAMS;
                let customer: CustomerId = id(&format!("cust-{i}"));
                let mut new = NewConversation::new(tenant, customer.clone(), id("chat"))
                    .team(id(&format!("team-{team}")));
                let human: HumanId = id(&format!("agent-{team}"));
                if i % 3 != 0 {
                    new = new.human(human.clone());
                }
                let receipt = handover.start_conversation(new).await.unwrap();
                if i % 3 == 2 {
                    handover
                        .hand_off_to_ai(receipt.conversation_id, human, bot, None)
                        .await
                        .unwrap();
                }
                (i, receipt.conversation_id, customer)
            }));
        }
        for task in tasks {
            let (i, conversation, customer) = task.await?;
            if i % 3 == 1 && loop_ids.len() < LOOP_CONVERSATIONS {
                loop_ids.push((conversation, customer));
            }
        }
    }
    println!(
        "{CONVERSATIONS} conversations opened in {:.1?}; log head {}",
        opened.elapsed(),
        handover.log_head()
    );

    // Counting the whole log from its start.
    let metrics = HandoverMetrics::new(&handover)?;
    let catch_up = caught_up(&handover, &metrics).await;
    println!(
        "a new instance counted {} events in {catch_up:.1?}",
        handover.log_head()
    );

    // Rendering, 100 times.
    let mut renders = Vec::new();
    let mut bytes = 0;
    for _ in 0..100 {
        let started = Instant::now();
        bytes = metrics.render().len();
        renders.push(started.elapsed());
    }
    renders.sort();
    println!(
        "render over {CONVERSATIONS} conversations ({bytes} bytes): p50 {:.2?}, p99 {:.2?}, max {:.2?}",
        percentile(&renders, 0.5),
        percentile(&renders, 0.99),
        renders.last().unwrap()
    );
    drop(metrics);

    // Acknowledgement latency, without and with the metrics following the log (and scraped
    // once a second), alternating.
    round(&handover, &loop_ids).await; // warm-up
    for r in 1..=ROUNDS {
        for with in [false, true] {
            let metrics = if with {
                let metrics = HandoverMetrics::new(&handover)?;
                caught_up(&handover, &metrics).await;
                let scraper = metrics.clone();
                let scrapes = tokio::spawn(async move {
                    let mut every = tokio::time::interval(Duration::from_secs(1));
                    loop {
                        every.tick().await;
                        std::hint::black_box(scraper.render());
                    }
                });
                Some((metrics, scrapes))
            } else {
                None
            };
            let started = Instant::now();
            let latencies = round(&handover, &loop_ids).await;
            let elapsed = started.elapsed();
            let lag = metrics
                .as_ref()
                .map(|(m, _)| handover.log_head().saturating_sub(m.position()));
            println!(
                "round {r} {:<16} {} commands in {elapsed:.2?} ({:.0}/s): p50 {:.2?}, p99 {:.2?}{}",
                if with {
                    "with metrics"
                } else {
                    "without metrics"
                },
                latencies.len(),
                latencies.len() as f64 / elapsed.as_secs_f64(),
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99),
                lag.map(|lag| format!(", feed lag at the end {lag} events"))
                    .unwrap_or_default()
            );
            if let Some((_, scrapes)) = metrics {
                scrapes.abort();
            }
        }
    }
    handover.shutdown().await;
    Ok(())
}
