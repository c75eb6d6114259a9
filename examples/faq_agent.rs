//! The FAQ agent with a knowledge table of its own (a gym's), attached to a runtime, answering
//! a few scripted customer questions; then the skills it recorded, read back from the log.
//!
//! `cargo run -p handover-examples --example faq_agent [DATA_DIR]` (default: a temp dir).

use std::sync::Arc;

use handover::{
    Channel, Config, ConversationEvent, CustomerId, Event, Handover, MessageText, Role,
    SkillOutcome,
};
use handover_examples::{
    data_dir, ends_ai_turn, is_ai_reply, sign_in, start_ai_agent, EventPrinter,
};
use handover_sim::faq::{FaqAgent, FaqEntry, KnowledgeTable, PricePlan};

/// The gym's knowledge: a few entries, a farewell, and three priced memberships.
fn gym_table() -> anyhow::Result<KnowledgeTable> {
    Ok(KnowledgeTable::new()
        .with_entry(FaqEntry::new(
            "hours",
            &["hours", "open", "opening", "horario", "aberto", "abierto"],
            "We are open every day from 6:00 to 23:00, and from 8:00 to 20:00 on holidays.",
        )?)
        .with_entry(FaqEntry::new(
            "classes",
            &[
                "class", "classes", "yoga", "spinning", "pilates", "aula", "aulas", "clases",
            ],
            "Classes are included in every membership: yoga at 7:00 and 19:00, spinning at \
             12:00, pilates on weekends. Book them in the app.",
        )?)
        .with_entry(FaqEntry::new(
            "trial",
            &["trial", "free day", "try", "teste", "prueba"],
            "Your first visit is free: show an ID at the front desk.",
        )?)
        .with_entry(
            FaqEntry::new(
                "goodbye",
                &["thanks", "thank you", "bye", "obrigado", "gracias"],
                "Have a great workout! Closing this chat now.",
            )?
            .closing(),
        )
        .with_plan(PricePlan::new(
            "Day pass",
            &["day pass", "single visit", "diaria"],
            "USD 12",
        )?)
        .with_plan(PricePlan::new(
            "Monthly",
            &["monthly", "month", "mensal", "mensual"],
            "USD 45 per month",
        )?)
        .with_plan(PricePlan::new(
            "Annual",
            &["annual", "yearly", "year", "anual"],
            "USD 420 per year",
        )?))
}

/// Opens a conversation, hands it to the agent after the first question, asks the rest one
/// at a time, and waits for each answer (and, after the last, for the close or escalation).
async fn converse(
    handover: &Handover,
    agent: &handover::AiAgentId,
    customer: &str,
    questions: &[&str],
) -> anyhow::Result<handover::ConversationId> {
    let customer = CustomerId::new(customer)?;
    let human = sign_in(handover, "front-desk", "Front desk", Role::Agent).await?;
    let id = handover
        .open_conversation(
            customer.clone(),
            Channel::new("whatsapp")?,
            Some(human.clone()),
        )
        .await?
        .conversation_id;
    let mut printer = EventPrinter::new(handover.watch(id).await?);
    for (i, question) in questions.iter().enumerate() {
        handover
            .post_customer_message(id, customer.clone(), MessageText::new(*question)?)
            .await?;
        if i == 0 {
            handover
                .hand_off_to_ai(id, human.clone(), agent.clone(), None)
                .await?;
        }
        printer.print_ready()?;
        // The agent answers, or the policy gives the conversation back to humans (a second
        // "could not answer" in a row, by the default policy's ai-keeps-missing rule).
        let ended = printer.print_until(ends_ai_turn).await?;
        if !is_ai_reply(&ended.event) {
            return Ok(id);
        }
    }
    // The last answer ends the conversation: a farewell closes it.
    printer
        .print_until(|event| {
            matches!(
                event,
                Event::Conversation(
                    ConversationEvent::Closed { .. }
                        | ConversationEvent::EscalatedToHuman { .. }
                        | ConversationEvent::EscalatedByRule { .. }
                )
            )
        })
        .await?;
    Ok(id)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (dir, _temp) = data_dir(std::env::args_os().nth(1).map(Into::into))?;
    let handover = Handover::start(Config::new(&dir)).await?;
    let agent = start_ai_agent(
        &handover,
        "gym-bot",
        "Gym assistant",
        &["faq", "pricing"],
        Arc::new(FaqAgent::new(gym_table()?)),
    )
    .await?;

    println!("== A member with questions, then thanks");
    let first = converse(
        &handover,
        &agent,
        "carla",
        &[
            "Do you have yoga classes?",
            "How much is the monthly membership?",
            "Can I bring my dog?",
            "Ok, thanks, bye!",
        ],
    )
    .await?;

    println!("\n== A member the agent cannot help twice in a row");
    let second = converse(
        &handover,
        &agent,
        "diego",
        &["Is the sauna mixed?", "Do you sell protein shakes?"],
    )
    .await?;

    println!("\n== Skills recorded");
    for id in [first, second] {
        for record in handover.history(id).await? {
            if let Event::Conversation(ConversationEvent::AiActionRecorded { skill, .. }) =
                &record.event
            {
                let outcome = match &skill.outcome {
                    SkillOutcome::Succeeded(result) => format!("ok: {result}"),
                    SkillOutcome::Failed(error) => format!("failed: {error}"),
                };
                println!(
                    "  {:<12} {:<40} {outcome}",
                    skill.name.as_str(),
                    format!("{:?}", skill.input.as_str())
                );
            }
        }
    }
    handover.shutdown().await;
    Ok(())
}
