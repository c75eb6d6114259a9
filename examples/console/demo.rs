//! A simulated contact center in the console's process, so that `--demo` shows live work at
//! once: customers open conversations and write, humans answer and hand off to the sample AI
//! agents, customers ask for a person (the policy escalates), conversations wait in their
//! teams' queues and are closed.

use std::time::Duration;

use handover::{
    AgentName, AiAgentId, AiAgentProfile, Channel, ConversationCommand, CustomerId, Handover,
    HumanId, LiveQuery, LiveStatus, MessageText, NewConversation, NewHuman, Participant, Presence,
    Reason, Specialty, TeamId, TenantId,
};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::sync::watch;

/// Who the demo registered: the supervisors to sign in as, and the agents.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct DemoCast {
    /// The default tenant's supervisors.
    pub supervisors: Vec<HumanId>,
    /// The human agents, each with their team.
    pub agents: Vec<(HumanId, TeamId)>,
    /// The active AI agents.
    pub ai_agents: Vec<AiAgentId>,
}

/// The teams of the demo's tenant.
const TEAMS: [&str; 3] = ["billing", "support", "sales"];

/// What customers say first, and which agent a human hands it to.
const QUESTIONS: [(&str, &str); 6] = [
    ("How much is the Pro plan?", "pricing-bot"),
    (
        "What does the Enterprise plan cost per month?",
        "pricing-bot",
    ),
    ("How long does shipping take?", "faq-bot"),
    ("Do you ship to Portugal?", "faq-bot"),
    ("What are your opening hours?", "faq-bot"),
    ("Can I get a refund for my last invoice?", "faq-bot"),
];

/// What customers say while an AI agent answers them.
const FOLLOW_UPS: [&str; 6] = [
    "And the Basic plan?",
    "Is there a discount for a yearly plan?",
    "I want to talk to a person, please.",
    "This is ridiculous, nothing works!",
    "How much is the Pro plan?",
    "Thanks!",
];

/// Registers the demo's people and agents (unless a previous run on the same data did) and
/// signs the humans in.
pub async fn set_up_demo(handover: &Handover) -> anyhow::Result<DemoCast> {
    let tenant = TenantId::default_tenant();
    let mut cast = DemoCast {
        supervisors: Vec::new(),
        agents: Vec::new(),
        ai_agents: Vec::new(),
    };
    for (id, name) in [("sam", "Sam Rivera"), ("lee", "Lee Okafor")] {
        let id = HumanId::new(id)?;
        if handover.human(&id).is_none() {
            let new =
                NewHuman::supervisor(id.clone(), AgentName::new(name)?).tenant(tenant.clone());
            handover.register_human(new).await?;
        }
        cast.supervisors.push(id);
    }
    // Capacity 3 each: at busy moments the queues fill up, so the console has waits to show.
    for (id, name, team) in [
        ("ana", "Ana Souza", "billing"),
        ("bruno", "Bruno Lima", "support"),
        ("carla", "Carla Mendes", "sales"),
        ("dev", "Dev Patel", "support"),
    ] {
        let id = HumanId::new(id)?;
        let team = TeamId::new(team)?;
        if handover.human(&id).is_none() {
            let new = NewHuman::agent(id.clone(), AgentName::new(name)?)
                .tenant(tenant.clone())
                .teams(vec![team.clone()])
                .capacity(3);
            handover.register_human(new).await?;
        }
        if handover.human(&id).map(|h| h.presence) != Some(Presence::Available) {
            handover
                .set_presence(id.clone(), Presence::Available)
                .await?;
        }
        cast.agents.push((id, team));
    }
    crate::start_sample_agents(handover).await?;
    cast.ai_agents = vec![AiAgentId::new("pricing-bot")?, AiAgentId::new("faq-bot")?];
    // Registered but never activated: the "Transfer to AI" list leaves it out.
    let dormant = AiAgentId::new("returns-bot")?;
    if !handover.ai_agents().iter().any(|a| a.profile.id == dormant) {
        handover
            .register_ai_agent(AiAgentProfile {
                id: dormant,
                name: AgentName::new("Returns assistant")?,
                specialties: vec![Specialty::new("returns")?],
            })
            .await?;
    }
    Ok(cast)
}

/// Runs the simulated contact center until `stop` turns true: one step every `pace`, keeping
/// about `open_target` conversations open. Steps that the rules refuse (a conversation that
/// changed meanwhile) are part of the demo and are skipped.
pub async fn run_demo(
    handover: Handover,
    pace: Duration,
    open_target: usize,
    mut stop: watch::Receiver<bool>,
) {
    let tenant = TenantId::default_tenant();
    let mut rng = StdRng::seed_from_u64(7);
    let mut customers = 0u32;
    loop {
        tokio::select! {
            () = tokio::time::sleep(pace) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        if let Err(error) = step(&handover, &tenant, &mut rng, &mut customers, open_target).await {
            tracing::debug!(%error, "a demo step was refused");
        }
    }
}

async fn step(
    handover: &Handover,
    tenant: &TenantId,
    rng: &mut StdRng,
    customers: &mut u32,
    open_target: usize,
) -> anyhow::Result<()> {
    let list = handover.list_conversations(tenant, &LiveQuery::new());
    let open: Vec<_> = list
        .iter()
        .filter(|c| c.status != LiveStatus::ClosedRecently)
        .collect();
    if open.len() < open_target && rng.gen_bool(0.5) {
        *customers += 1;
        let customer = CustomerId::new(format!("cust-{:03}", *customers))?;
        let channel = ["web-chat", "whatsapp", "email"][rng.gen_range(0..3)];
        let team = TeamId::new(TEAMS[rng.gen_range(0..TEAMS.len())])?;
        let receipt = handover
            .start_conversation(
                NewConversation::new(tenant.clone(), customer.clone(), Channel::new(channel)?)
                    .team(team),
            )
            .await?;
        let (question, _) = QUESTIONS[rng.gen_range(0..QUESTIONS.len())];
        handover
            .post_customer_message(
                receipt.conversation_id,
                customer,
                MessageText::new(question)?,
            )
            .await?;
        return Ok(());
    }
    if open.is_empty() {
        return Ok(());
    }
    let chosen = open[rng.gen_range(0..open.len())];
    let id = chosen.id;
    let view = handover.conversation(id).await?;
    match chosen.status {
        LiveStatus::HumanHandled => {
            let Some(human) = view.assigned_human.clone() else {
                return Ok(());
            };
            let roll = rng.gen_range(0..10);
            if roll < 4 {
                // The human sees a routine question and hands it to the matching agent.
                let agent = QUESTIONS
                    .iter()
                    .find(|(q, _)| {
                        chosen
                            .last_message
                            .as_ref()
                            .is_some_and(|m| m.text.as_str() == *q)
                    })
                    .map_or("faq-bot", |(_, agent)| agent);
                handover
                    .post_human_message(
                        id,
                        human.clone(),
                        MessageText::new("Let me get our assistant for that.")?,
                    )
                    .await?;
                handover
                    .hand_off_to_ai(
                        id,
                        human,
                        AiAgentId::new(agent)?,
                        Some(Reason::new("routine question the assistant answers")?),
                    )
                    .await?;
            } else if roll < 6 {
                handover
                    .close(id, human, Some(Reason::new("resolved")?))
                    .await?;
            } else if roll < 7 {
                handover.raise_flag(id, human).await?;
            } else {
                handover
                    .post_human_message(
                        id,
                        human,
                        MessageText::new("Thanks for waiting, I'm checking that now.")?,
                    )
                    .await?;
            }
        }
        LiveStatus::AiActive => {
            if rng.gen_bool(0.15) {
                let close = ConversationCommand::Close {
                    by: Participant::Customer(view.customer.clone()),
                    reason: Some(Reason::new("got the answer")?),
                };
                handover.execute(id, close).await?;
            } else {
                let text = FOLLOW_UPS[rng.gen_range(0..FOLLOW_UPS.len())];
                handover
                    .post_customer_message(id, view.customer.clone(), MessageText::new(text)?)
                    .await?;
            }
        }
        LiveStatus::AwaitingHuman if rng.gen_bool(0.3) => {
            handover
                .post_customer_message(
                    id,
                    view.customer.clone(),
                    MessageText::new("Hello? Is anyone there?")?,
                )
                .await?;
        }
        _ => {}
    }
    Ok(())
}
