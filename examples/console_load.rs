//! How long the console takes to render its live list (the fragment the list page shows and
//! its live stream sends on every change and every second) with many conversations.
//!
//! ```text
//! cargo run --release -p handover-examples --example console_load -- [1000 10000 ...]
//! ```
//!
//! For each count it opens that many conversations (a third waiting in one of three queues, a
//! third with a human, a third with an AI agent that never answers), then renders the list 30
//! times with the console's row limit (200) and with every row, and prints the median and the
//! slowest render and the fragment's size.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use handover::{
    async_trait, AgentError, AgentName, AiAgentBehavior, AiAgentId, AiAgentProfile, AiSession,
    Channel, Config, CustomerId, Durability, Handover, HumanId, MessageText, NewConversation,
    NewHuman, NoRouter, Presence, Specialty, TeamId, TenantId,
};
use handover_examples::console::{render_list, ListFilter};

/// Renders per measurement.
const RENDERS: usize = 30;

/// Conversations opened at once while filling the log.
const BATCH: usize = 64;

/// The console's default row limit.
const LIMIT: usize = 200;

/// An agent that stays silent, so its conversations stay AI-active.
struct Silent;

#[async_trait]
impl AiAgentBehavior for Silent {
    async fn on_handoff(
        &self,
        _session: &AiSession,
        _history: &[Arc<handover::RecordedEvent>],
    ) -> Result<(), AgentError> {
        Ok(())
    }

    async fn on_customer_message(
        &self,
        _session: &AiSession,
        _text: &MessageText,
    ) -> Result<(), AgentError> {
        Ok(())
    }
}

fn timings(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

async fn measure(count: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let handover = Handover::start(
        Config::new(dir.path())
            .durability(Durability::Buffered)
            .router(Arc::new(NoRouter)),
    )
    .await?;
    let tenant = TenantId::default_tenant();
    let humans: Vec<HumanId> = (0..20)
        .map(|i| HumanId::new(format!("agent-{i}")))
        .collect::<Result<_, _>>()?;
    for human in &humans {
        let name = AgentName::new(format!("Agent {human}"))?;
        handover
            .register_human(NewHuman::agent(human.clone(), name).capacity(1000))
            .await?;
        handover
            .set_presence(human.clone(), Presence::Available)
            .await?;
    }
    let bot = AiAgentId::new("bot")?;
    handover
        .register_ai_agent(AiAgentProfile {
            id: bot.clone(),
            name: AgentName::new("Bot")?,
            specialties: vec![Specialty::new("faq")?],
        })
        .await?;
    handover.activate_ai_agent(bot.clone()).await?;
    handover.attach_ai_agent(bot.clone(), Arc::new(Silent))?;

    let started = Instant::now();
    for batch in (0..count).collect::<Vec<_>>().chunks(BATCH) {
        join_all(batch.iter().map(|&i| {
            let handover = handover.clone();
            let tenant = tenant.clone();
            let human = humans[i % humans.len()].clone();
            let bot = bot.clone();
            async move {
                let customer = CustomerId::new(format!("cust-{i}"))?;
                let mut new =
                    NewConversation::new(tenant, customer.clone(), Channel::new("web-chat")?)
                        .team(TeamId::new(["billing", "support", "sales"][i % 3])?);
                if i % 3 != 0 {
                    new = new.human(human.clone());
                }
                let id = handover.start_conversation(new).await?.conversation_id;
                let text = MessageText::new(format!("Question number {i} about my order"))?;
                handover.post_customer_message(id, customer, text).await?;
                if i % 3 == 2 {
                    handover.hand_off_to_ai(id, human, bot, None).await?;
                }
                anyhow::Ok(())
            }
        }))
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    }
    let filled = started.elapsed();

    let filter = ListFilter::default();
    let mut limited = Vec::new();
    let mut everything = Vec::new();
    let mut sizes = (0, 0);
    for _ in 0..RENDERS {
        let at = Instant::now();
        sizes.0 = render_list(&handover, &tenant, &filter, LIMIT)
            .into_string()
            .len();
        limited.push(at.elapsed());
        let at = Instant::now();
        sizes.1 = render_list(&handover, &tenant, &filter, usize::MAX)
            .into_string()
            .len();
        everything.push(at.elapsed());
    }
    // The facade's part: the listing (every conversation of the tenant, sorted) and the counts.
    let mut listing = Vec::new();
    let mut counting = Vec::new();
    for _ in 0..RENDERS {
        let at = Instant::now();
        let list = handover.list_conversations(&tenant, &handover::LiveQuery::new());
        listing.push(at.elapsed());
        drop(list);
        let at = Instant::now();
        let counts = handover.conversation_counts(&tenant);
        counting.push(at.elapsed());
        drop(counts);
    }
    let (list_median, _) = timings(listing);
    let (count_median, _) = timings(counting);
    let (median, slowest) = timings(limited);
    let (all_median, all_slowest) = timings(everything);
    println!(
        "{count:>6} conversations (opened in {:.1} s): first {LIMIT} rows {:>7.2} ms median, \
         {:>7.2} ms slowest, {:>4} KiB; all rows {:>8.2} ms median, {:>8.2} ms slowest, {:>6} KiB; \
         of which list_conversations {:.2} ms, conversation_counts {:.2} ms (medians)",
        filled.as_secs_f64(),
        median.as_secs_f64() * 1e3,
        slowest.as_secs_f64() * 1e3,
        sizes.0 / 1024,
        all_median.as_secs_f64() * 1e3,
        all_slowest.as_secs_f64() * 1e3,
        sizes.1 / 1024,
        list_median.as_secs_f64() * 1e3,
        count_median.as_secs_f64() * 1e3,
    );
    handover.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .map(|arg| arg.parse())
        .collect::<Result<_, _>>()?;
    let counts = if counts.is_empty() {
        vec![1_000, 10_000]
    } else {
        counts
    };
    for count in counts {
        measure(count).await?;
    }
    Ok(())
}
