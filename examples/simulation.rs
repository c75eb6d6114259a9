//! A short, readable simulation through the facade: four conversations of a small contact
//! center, each event printed as the supervisor's watch sees it.
//!
//! 1. A pricing question: the human hands it off, the AI answers and runs `lookup_price`, and
//!    closes it when the customer says thanks.
//! 2. A shipping question: the AI answers, then a human reclaims it ("assume conversation").
//! 3. A customer who asks for a human while the AI is active: the policy escalates at once,
//!    and the router gives the conversation back to the human who handed it off.
//! 4. A complaint: the policy refuses the handoff, and the human keeps it.
//!
//! `cargo run -p handover-examples --example simulation [DATA_DIR]` (default: a temp dir).

use handover::{
    Channel, Config, ConversationEvent, ConversationId, CustomerId, Event, Handover, HumanId,
    MessageText, Reason, Role,
};
use handover_examples::{data_dir, ends_ai_turn, sign_in, start_sample_agents, EventPrinter};

/// One conversation of the simulation, with the watch that prints it.
struct Scene {
    handover: Handover,
    id: ConversationId,
    customer: CustomerId,
    human: HumanId,
    printer: EventPrinter,
}

impl Scene {
    async fn open(
        handover: &Handover,
        title: &str,
        customer: &str,
        human: &str,
    ) -> anyhow::Result<Scene> {
        println!("\n== {title}");
        let customer = CustomerId::new(customer)?;
        let human = HumanId::new(human)?;
        let id = handover
            .open_conversation(
                customer.clone(),
                Channel::new("web-chat")?,
                Some(human.clone()),
            )
            .await?
            .conversation_id;
        let mut printer = EventPrinter::new(handover.watch(id).await?);
        printer.print_ready()?;
        Ok(Scene {
            handover: handover.clone(),
            id,
            customer,
            human,
            printer,
        })
    }

    async fn customer_says(&mut self, text: &str) -> anyhow::Result<()> {
        self.handover
            .post_customer_message(self.id, self.customer.clone(), MessageText::new(text)?)
            .await?;
        self.printer.print_ready()
    }

    async fn human_says(&mut self, text: &str) -> anyhow::Result<()> {
        self.handover
            .post_human_message(self.id, self.human.clone(), MessageText::new(text)?)
            .await?;
        self.printer.print_ready()
    }

    /// Hands off to the first active agent with `specialty`, as the handoff dialog would; the
    /// outer error is the example's, the inner one the runtime's answer.
    async fn hand_off(
        &mut self,
        specialty: &str,
        reason: &str,
    ) -> anyhow::Result<Result<(), handover::Error>> {
        let specialty = handover::Specialty::new(specialty)?;
        let agent = self
            .handover
            .active_ai_agents(Some(specialty.clone()))
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("no active agent for {specialty}"))?;
        let result = self
            .handover
            .hand_off_to_ai(
                self.id,
                self.human.clone(),
                agent.profile.id,
                Some(Reason::new(reason)?),
            )
            .await;
        self.printer.print_ready()?;
        Ok(result.map(drop))
    }

    async fn await_ai_reply(&mut self) -> anyhow::Result<()> {
        self.printer.print_until(ends_ai_turn).await?;
        Ok(())
    }

    async fn human_closes(&mut self) -> anyhow::Result<()> {
        self.handover
            .close(self.id, self.human.clone(), Some(Reason::new("resolved")?))
            .await?;
        self.printer.print_ready()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (dir, _temp) = data_dir(std::env::args_os().nth(1).map(Into::into))?;
    println!("data directory: {}", dir.display());
    let handover = Handover::start(Config::new(&dir)).await?;
    start_sample_agents(&handover).await?;
    sign_in(&handover, "ana", "Ana", Role::Agent).await?;
    sign_in(&handover, "bruno", "Bruno", Role::Agent).await?;

    let mut scene =
        Scene::open(&handover, "A pricing question, handed off", "maria", "ana").await?;
    scene.customer_says("Hi! How much is the Pro plan?").await?;
    scene
        .hand_off(
            "pricing",
            "Customer wants information about pricing and plans",
        )
        .await??;
    scene.await_ai_reply().await?;
    scene.customer_says("Thanks, that's all!").await?;
    scene
        .printer
        .print_until(|event| matches!(event, Event::Conversation(ConversationEvent::Closed { .. })))
        .await?;

    let mut scene =
        Scene::open(&handover, "A shipping question, reclaimed", "joao", "bruno").await?;
    scene.customer_says("How long does delivery take?").await?;
    scene.hand_off("shipping", "Shipping question").await??;
    scene.await_ai_reply().await?;
    handover
        .reclaim(
            scene.id,
            scene.human.clone(),
            Some(Reason::new("VIP customer, I'll follow up personally")?),
        )
        .await?;
    scene.printer.print_ready()?;
    scene
        .human_says("Hi João, I'm taking over: your order ships today.")
        .await?;
    scene.human_closes().await?;

    let mut scene = Scene::open(&handover, "A customer asks for a human", "lucia", "ana").await?;
    scene.customer_says("¿Cuál es su horario?").await?;
    scene.hand_off("faq", "Business hours question").await??;
    scene.await_ai_reply().await?;
    scene
        .customer_says("Prefiero hablar con una persona, por favor")
        .await?;
    // It waits for a person; Ana handed it off and is available, so the router gives it back
    // to her.
    scene
        .printer
        .print_until(|event| {
            matches!(
                event,
                Event::Conversation(ConversationEvent::HumanAssigned { .. })
            )
        })
        .await?;
    println!(
        "  status: {}",
        handover.conversation(scene.id).await?.status.label()
    );
    scene
        .human_says("Hola Lucía, soy Ana. ¿En qué puedo ayudarte?")
        .await?;
    scene.human_closes().await?;

    let mut scene = Scene::open(
        &handover,
        "A complaint stays with the human",
        "tom",
        "bruno",
    )
    .await?;
    scene
        .customer_says("This is unacceptable, my order arrived broken.")
        .await?;
    match scene.hand_off("faq", "trying anyway").await? {
        Err(error) if error.is_caller_error() => println!("  handoff refused: {error}"),
        Err(error) => return Err(error.into()),
        Ok(()) => anyhow::bail!("the policy should have refused this handoff"),
    }
    scene
        .human_says("I'm so sorry, Tom. I'm sending a replacement today.")
        .await?;
    scene.human_closes().await?;

    handover.shutdown().await;
    Ok(())
}
