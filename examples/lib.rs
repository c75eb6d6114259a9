//! Small helpers the runnable examples share: a data directory that defaults to a temporary
//! one, starting a FAQ agent in one call, signing a human in, and one-line descriptions of
//! events for printing.
//!
//! Run the examples with:
//!
//! ```sh
//! cargo run -p handover-examples --example simulation [DATA_DIR]
//! cargo run -p handover-examples --example faq_agent [DATA_DIR]
//! cargo run -p handover-examples --example web_backend -- [--port 3000] [--data DIR] [--self-test]
//! cargo run -p handover-examples --example console -- --listen 127.0.0.1:8080 --demo
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use futures::FutureExt as _;

use handover::{
    AgentName, AiAgentBehavior, AiAgentId, AiAgentProfile, Author, ConversationEvent, Event,
    Handover, HumanId, NewHuman, Presence, RecordedEvent, Role, SkillOutcome, Specialty,
    StreamExt as _, TransferTarget, Watch,
};

/// A data directory: the one given, or a fresh temporary one that is deleted when the returned
/// guard drops.
///
/// ```
/// let (dir, _guard) = handover_examples::data_dir(None).unwrap();
/// assert!(dir.exists());
/// ```
pub fn data_dir(given: Option<PathBuf>) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    match given {
        Some(dir) => Ok((dir, None)),
        None => {
            let temp = tempfile::tempdir()?;
            Ok((temp.path().to_path_buf(), Some(temp)))
        }
    }
}

/// Registers an AI agent (unless a previous run on the same directory did), activates it and
/// attaches `behavior` as its implementation. Returns its id.
///
/// ```no_run
/// # async fn example(handover: &handover::Handover) -> anyhow::Result<()> {
/// use std::sync::Arc;
/// use handover_sim::faq::FaqAgent;
///
/// let bot = handover_examples::start_ai_agent(
///     handover, "faq-bot", "FAQ assistant", &["faq"], Arc::new(FaqAgent::sample()),
/// ).await?;
/// assert_eq!(bot.as_str(), "faq-bot");
/// # Ok(())
/// # }
/// ```
pub async fn start_ai_agent(
    handover: &Handover,
    id: &str,
    name: &str,
    specialties: &[&str],
    behavior: Arc<dyn AiAgentBehavior>,
) -> anyhow::Result<AiAgentId> {
    let agent_id = AiAgentId::new(id)?;
    let known = handover
        .ai_agents()
        .into_iter()
        .find(|agent| agent.profile.id == agent_id);
    if known.is_none() {
        handover
            .register_ai_agent(AiAgentProfile {
                id: agent_id.clone(),
                name: AgentName::new(name)?,
                specialties: specialties
                    .iter()
                    .map(|s| Specialty::new(*s))
                    .collect::<Result<_, _>>()?,
            })
            .await?;
    }
    if !known.is_some_and(|agent| agent.active) {
        handover.activate_ai_agent(agent_id.clone()).await?;
    }
    handover.attach_ai_agent(agent_id.clone(), behavior)?;
    Ok(agent_id)
}

/// Registers a human of the default tenant (unless a previous run on the same directory did)
/// and signs them in. Returns their id.
///
/// ```no_run
/// # async fn example(handover: &handover::Handover) -> anyhow::Result<()> {
/// use handover::Role;
///
/// let ana = handover_examples::sign_in(handover, "ana", "Ana", Role::Agent).await?;
/// assert_eq!(handover.human(&ana).unwrap().presence, handover::Presence::Available);
/// # Ok(())
/// # }
/// ```
pub async fn sign_in(
    handover: &Handover,
    id: &str,
    name: &str,
    role: Role,
) -> anyhow::Result<HumanId> {
    let human_id = HumanId::new(id)?;
    if handover.human(&human_id).is_none() {
        let name = AgentName::new(name)?;
        let new = match role {
            Role::Supervisor => NewHuman::supervisor(human_id.clone(), name),
            _ => NewHuman::agent(human_id.clone(), name),
        };
        handover.register_human(new).await?;
    }
    if handover.human(&human_id).map(|h| h.presence) != Some(Presence::Available) {
        handover
            .set_presence(human_id.clone(), Presence::Available)
            .await?;
    }
    Ok(human_id)
}

/// Starts the two sample agents the examples share: a pricing assistant and an FAQ assistant
/// (shipping included), both running the sample [`handover_sim::faq::FaqAgent`].
///
/// ```no_run
/// # async fn example(handover: &handover::Handover) -> anyhow::Result<()> {
/// handover_examples::start_sample_agents(handover).await?;
/// assert_eq!(handover.active_ai_agents(None).len(), 2);
/// # Ok(())
/// # }
/// ```
pub async fn start_sample_agents(handover: &Handover) -> anyhow::Result<()> {
    let sample = || Arc::new(handover_sim::faq::FaqAgent::sample());
    start_ai_agent(
        handover,
        "pricing-bot",
        "Pricing assistant",
        &["pricing"],
        sample(),
    )
    .await?;
    start_ai_agent(
        handover,
        "faq-bot",
        "FAQ assistant",
        &["faq", "shipping"],
        sample(),
    )
    .await?;
    Ok(())
}

/// One line saying what an event records, e.g. `ai pricing-bot: "The Pro plan costs ..."`.
///
/// ```
/// use handover::{AiAgentId, ConversationEvent, Event, Reason};
///
/// let event = Event::Conversation(ConversationEvent::Reclaimed {
///     agent_id: AiAgentId::new("faq-bot").unwrap(),
///     by_human: handover::HumanId::new("ana").unwrap(),
///     reason: Some(Reason::new("personal follow-up").unwrap()),
/// });
/// assert_eq!(
///     handover_examples::describe_event(&event),
///     "ana reclaimed it from faq-bot (personal follow-up)"
/// );
/// ```
pub fn describe_event(event: &Event) -> String {
    let because = |reason: &Option<handover::Reason>| match reason {
        Some(reason) => format!(" ({reason})"),
        None => String::new(),
    };
    let Event::Conversation(event) = event else {
        return event.type_name().replace('_', " ");
    };
    let who = |author: &Author| match author {
        Author::Customer(id) => format!("customer {id}"),
        Author::Human(id) => format!("human {id}"),
        other => format!("{} {}", other.kind(), other.id()),
    };
    let queue = |team: &Option<handover::TeamId>| match team {
        Some(team) => format!("{team}'s queue"),
        None => "the general queue".to_owned(),
    };
    match event {
        ConversationEvent::Started {
            customer, channel, ..
        } => format!("opened for {customer} on {channel}"),
        ConversationEvent::HumanAssigned { human_id, by, .. } => {
            format!("assigned to {human_id} by {}", who(by))
        }
        ConversationEvent::AwaitingHuman { team, cause, .. } => {
            format!("waits in {} [{}]", queue(team), cause.as_str())
        }
        ConversationEvent::CustomerNotice { text, .. } => {
            format!("notice to the customer: {text:?}")
        }
        ConversationEvent::Transferred { to, reason, by, .. } => {
            let to = match to {
                TransferTarget::Human(human) => human.to_string(),
                TransferTarget::Team(team) => format!("{team}'s queue"),
                _ => "elsewhere".to_owned(),
            };
            format!("transferred to {to} by {} ({reason})", who(by))
        }
        ConversationEvent::InternalNote { to, text, by, .. } => {
            format!("note for {} by {}: {text:?}", to.as_str(), who(by))
        }
        ConversationEvent::FlagRaised { by, .. } => format!("needs help, says {}", who(by)),
        ConversationEvent::FlagLowered { by, .. } => format!("help flag lowered by {}", who(by)),
        ConversationEvent::AiReplyOverdue {
            agent_id,
            waited_ms,
            ..
        } => format!("{agent_id} did not answer within {waited_ms} ms"),
        ConversationEvent::AiSkillStarted { agent_id, name, .. } => {
            format!("{agent_id} starts skill {name}")
        }
        ConversationEvent::Opened {
            customer,
            channel,
            human,
        } => match human {
            Some(human) => format!("opened for {customer} on {channel}, assigned to {human}"),
            None => format!("opened for {customer} on {channel}"),
        },
        ConversationEvent::MessagePosted {
            author,
            text,
            concerns,
        } => {
            let who = match author {
                Author::Customer(id) => format!("customer {id}"),
                Author::Human(id) => format!("human {id}"),
                other => format!("{} {}", other.kind(), other.id()),
            };
            let concerns: Vec<&str> = concerns.iter().map(|c| c.as_str()).collect();
            if concerns.is_empty() {
                format!("{who}: {text:?}")
            } else {
                format!("{who}: {text:?} [policy: {}]", concerns.join(", "))
            }
        }
        ConversationEvent::HandedOffToAi {
            agent_id,
            agent_name,
            by_human,
            reason,
        } => format!(
            "{by_human} handed it off to {agent_name} ({agent_id}){}",
            because(reason)
        ),
        ConversationEvent::AiActionRecorded { agent_id, skill } => {
            let outcome = match &skill.outcome {
                SkillOutcome::Succeeded(result) => format!("-> {result}"),
                SkillOutcome::Failed(error) => format!("failed: {error}"),
            };
            format!(
                "{agent_id} ran skill {}({:?}) {outcome}",
                skill.name,
                skill.input.as_str()
            )
        }
        ConversationEvent::Reclaimed {
            agent_id,
            by_human,
            reason,
        } => format!("{by_human} reclaimed it from {agent_id}{}", because(reason)),
        ConversationEvent::EscalatedToHuman {
            agent_id,
            reason,
            cause,
        } => format!(
            "escalated from {agent_id} to humans: {reason} [{}]",
            cause.as_str()
        ),
        ConversationEvent::EscalatedByRule {
            agent_id,
            reason,
            cause,
            rule,
            ..
        } => format!(
            "escalated from {agent_id} to humans by rule {rule}: {reason} [{}]",
            cause.as_str()
        ),
        ConversationEvent::AiCouldNotAnswer { agent_id, .. } => {
            format!("{agent_id} reported it could not answer")
        }
        ConversationEvent::Closed { by, reason } => {
            let who = match by {
                Author::Customer(id) => format!("customer {id}"),
                Author::Human(id) => format!("human {id}"),
                other => format!("{} {}", other.kind(), other.id()),
            };
            format!("closed by {who}{}", because(reason))
        }
        other => other.type_name().replace('_', " "),
    }
}

/// Prints a recorded event as `  #seq description`.
///
/// ```no_run
/// # fn example(record: &handover::RecordedEvent) {
/// handover_examples::print_event(record);
/// # }
/// ```
pub fn print_event(record: &RecordedEvent) {
    println!("  #{:<2} {}", record.seq, describe_event(&record.event));
}

/// Prints a conversation's events as its watch delivers them, and waits for the ones that
/// matter (the AI agent's reply, the close), without ever missing one: an event already
/// printed by [`print_ready`](EventPrinter::print_ready) still counts for a later
/// [`print_until`](EventPrinter::print_until).
///
/// ```no_run
/// # async fn example(handover: &handover::Handover, id: handover::ConversationId) -> anyhow::Result<()> {
/// use handover_examples::{is_ai_reply, EventPrinter};
///
/// let mut printer = EventPrinter::new(handover.watch(id).await?);
/// printer.print_ready()?; // what is recorded so far
/// printer.print_until(is_ai_reply).await?; // and on, until the AI agent answers
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct EventPrinter {
    watch: Watch,
    /// Printed, and not yet passed by a `print_until`.
    unclaimed: std::collections::VecDeque<Arc<RecordedEvent>>,
}

impl EventPrinter {
    /// Prints the events of `watch`.
    ///
    /// ```no_run
    /// # async fn example(watch: handover::Watch) {
    /// let printer = handover_examples::EventPrinter::new(watch);
    /// # }
    /// ```
    pub fn new(watch: Watch) -> EventPrinter {
        EventPrinter {
            watch,
            unclaimed: std::collections::VecDeque::new(),
        }
    }

    /// Prints every event the watch already holds, without waiting: after a facade call
    /// returns, the events it recorded are already there.
    ///
    /// ```no_run
    /// # fn example(printer: &mut handover_examples::EventPrinter) -> anyhow::Result<()> {
    /// printer.print_ready()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn print_ready(&mut self) -> anyhow::Result<()> {
        // Only what is ready now: a watch's next event is ready at once if it is there.
        while let Some(Some(record)) = self.watch.next().now_or_never() {
            let record = record?;
            print_event(&record);
            self.unclaimed.push_back(record);
        }
        Ok(())
    }

    /// Returns the first event satisfying `done`, among those already printed since the last
    /// call and then those still to come (printing them); fails if the runtime stops first.
    ///
    /// ```no_run
    /// # async fn example(printer: &mut handover_examples::EventPrinter) -> anyhow::Result<()> {
    /// use handover::{ConversationEvent, Event};
    ///
    /// printer
    ///     .print_until(|event| matches!(event, Event::Conversation(ConversationEvent::Closed { .. })))
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn print_until(
        &mut self,
        done: impl Fn(&Event) -> bool,
    ) -> anyhow::Result<Arc<RecordedEvent>> {
        while let Some(record) = self.unclaimed.pop_front() {
            if done(&record.event) {
                return Ok(record);
            }
        }
        loop {
            let record = self
                .watch
                .next()
                .await
                .ok_or_else(|| anyhow::anyhow!("the runtime stopped"))??;
            print_event(&record);
            if done(&record.event) {
                return Ok(record);
            }
        }
    }
}

/// Whether the event is a message from an AI agent.
///
/// ```
/// use handover::{AiAgentId, Author, ConversationEvent, Event, MessageText};
///
/// let reply = Event::Conversation(ConversationEvent::MessagePosted {
///     author: Author::Ai(AiAgentId::new("faq-bot").unwrap()),
///     text: MessageText::new("Hi!").unwrap(),
///     concerns: vec![],
/// });
/// assert!(handover_examples::is_ai_reply(&reply));
/// ```
pub fn is_ai_reply(event: &Event) -> bool {
    matches!(
        event,
        Event::Conversation(ConversationEvent::MessagePosted {
            author: Author::Ai(_),
            ..
        })
    )
}

/// Whether `event` ends the AI agent's turn: its reply, or the conversation going back to
/// humans (the agent escalating, or a rule of the escalation policy on the customer's message
/// or on the agent's "could not answer").
///
/// ```
/// # use handover::{AiAgentId, ConversationEvent, EscalationCause, Event, Reason};
/// let escalated = Event::Conversation(ConversationEvent::EscalatedToHuman {
///     agent_id: AiAgentId::new("faq-bot").unwrap(),
///     reason: Reason::new("needs a person").unwrap(),
///     cause: EscalationCause::AgentRequested,
/// });
/// assert!(handover_examples::ends_ai_turn(&escalated));
/// ```
pub fn ends_ai_turn(event: &Event) -> bool {
    is_ai_reply(event)
        || matches!(
            event,
            Event::Conversation(
                ConversationEvent::EscalatedToHuman { .. }
                    | ConversationEvent::EscalatedByRule { .. }
            )
        )
}

/// The supervisor console (`--example console`): see the module's documentation.
#[path = "console/mod.rs"]
pub mod console;

/// Exit code for a bad command line, as argument parsers use.
const USAGE_ERROR: u8 = 2;

/// The `main` of a server example: parses the command line with `options` (a mistake is one
/// line on stderr and exit code 2, never a backtrace), then runs `serve` on a new async runtime
/// and turns its outcome into the exit code.
pub fn serve_main<O, F>(
    options: impl FnOnce() -> anyhow::Result<O>,
    serve: impl FnOnce(O) -> F,
) -> std::process::ExitCode
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    use std::process::ExitCode;
    let options = match options() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(USAGE_ERROR);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM, the signals a terminal and a service manager send.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            // Without a SIGTERM handler, Ctrl-C still stops the server gracefully.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
