//! The driver: plays each scenario through the real [`Handover`] facade, as a contact center's
//! backend would, and writes the acknowledgement file.
//!
//! Each conversation is driven step by step, waiting on its watch for the AI agent to settle
//! before the next step, so no count depends on timing. Once a conversation is closed its
//! history is read back through the facade and counted, and the driver's own bookkeeping must
//! agree with it.

use std::collections::HashSet;
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use handover::StreamExt as _;
use handover::{
    AgentName, AiAgentId, AiAgentProfile, Author, Channel, Config, ConversationEvent,
    ConversationId, CustomerId, Durability, EscalationCause, Event, Handover, HumanId, MessageText,
    Reason, Receipt, Rejection, Specialty, Watch,
};
use tokio::task::JoinSet;

use crate::faq::FaqAgent;
use crate::report::Summary;
use crate::scenario::{draw_scenarios, lines, Ending, Scenario, Script, SPECIALTIES};
use crate::{SimError, AI_AGENTS_MAX, CONCURRENT_CONVERSATIONS_MAX, CONVERSATIONS_MAX, HUMANS_MAX};

/// How long one step may wait for an AI agent before the simulation gives up, in seconds. Only
/// a runtime fault can take this long; it never decides a count.
const AI_TURN_WAIT_SECONDS_MAX: u64 = 120;

/// What to simulate. Build it with `..Options::default()` so that options added later keep
/// their defaults.
#[derive(Clone, Debug)]
pub struct Options {
    /// How many conversations to run, at most [`CONVERSATIONS_MAX`].
    pub conversations: usize,
    /// How many FAQ agents to register, activate and attach (specialties pricing, faq and
    /// shipping in turn), at most [`AI_AGENTS_MAX`].
    pub ai_agents: usize,
    /// How many human agents handle the conversations, at most [`HUMANS_MAX`].
    pub humans: usize,
    /// The seed of every random choice.
    pub seed: u64,
    /// How many conversations run at the same time, at most [`CONCURRENT_CONVERSATIONS_MAX`].
    pub concurrency: usize,
    /// What an acknowledged command survives.
    pub durability: Durability,
    /// Where to write each acknowledged event of the simulation's own commands, one
    /// `<conversation-id> <seq>` a line (appended to; created if missing).
    pub acks: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            conversations: 100,
            ai_agents: 3,
            humans: 5,
            seed: 1,
            concurrency: 64,
            durability: Durability::Durable,
            acks: None,
        }
    }
}

impl Options {
    /// Checks every count against its bound: each is at least 1 and at most its maximum.
    pub fn check(&self) -> Result<(), SimError> {
        for (what, value, max) in [
            ("conversations", self.conversations, CONVERSATIONS_MAX),
            ("AI agents", self.ai_agents, AI_AGENTS_MAX),
            ("humans", self.humans, HUMANS_MAX),
            (
                "concurrency",
                self.concurrency,
                CONCURRENT_CONVERSATIONS_MAX,
            ),
        ] {
            if value == 0 || value > max {
                return Err(SimError::Options(format!(
                    "{what} must be from 1 to {max}, not {value}"
                )));
            }
        }
        Ok(())
    }
}

/// How far a simulation has come, reported after each conversation it finishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Conversations finished.
    pub done: u64,
    /// Conversations to run.
    pub total: u64,
    /// Events recorded so far by the finished conversations.
    pub events: u64,
}

/// Runs a simulation on the data directory `data` (created if missing): starts the runtime,
/// attaches the FAQ agents, drives every conversation, shuts the runtime down and returns what
/// it did.
///
/// `progress` is called after each finished conversation. When `stop` completes (Ctrl-C, for
/// instance), no new conversation starts; those under way are finished, the runtime is shut
/// down, and the summary says it was interrupted.
pub async fn simulate(
    data: &Path,
    options: &Options,
    mut progress: impl FnMut(Progress),
    stop: impl Future<Output = ()>,
) -> Result<Summary, SimError> {
    options.check()?;
    let scenarios = draw_scenarios(options.seed, options.conversations, options.humans);
    let started = Instant::now();
    let acks = options
        .acks
        .as_deref()
        .map(AckLog::open)
        .transpose()?
        .map(Arc::new);
    let config = Config::new(data).durability(options.durability);
    let handover = Handover::start(config).await?;
    let mut summary = Summary {
        durability: options.durability.name(),
        seed: options.seed,
        ai_agents: count(options.ai_agents),
        humans: count(options.humans),
        concurrency: count(options.concurrency),
        ..Summary::default()
    };
    let driven = drive(
        &handover,
        scenarios,
        options,
        acks,
        &mut summary,
        &mut progress,
        stop,
    )
    .await;
    let ack_latency = handover.ack_latency();
    let store_stats = handover.store_stats();
    handover.shutdown().await;
    let tally = driven?;
    let ran = started.elapsed();

    summary.syncs = store_stats.syncs;
    summary.ack_p50_us = micros(ack_latency.p50);
    summary.ack_p99_us = micros(ack_latency.p99);
    summary.refused_handoffs = tally.refused_handoffs;
    summary.elapsed_ms = u64::try_from(ran.as_millis()).unwrap_or(u64::MAX);
    // Counts are whole numbers far below 2^52: the float keeps them exactly.
    summary.events_per_s = (summary.events as f64 / ran.as_secs_f64().max(1e-9)) as u64;

    // The driver's own bookkeeping and the log must tell the same story.
    let expected = [
        ("conversations", tally.conversations, summary.conversations),
        ("handoffs", tally.handoffs, summary.handoffs),
        ("reclaims", tally.reclaims, summary.reclaims),
        ("escalations", tally.escalations, summary.escalations),
        ("closed", tally.closed, summary.closed),
    ];
    for (what, driven, logged) in expected {
        if driven != logged {
            return Err(SimError::Unexpected(format!(
                "the log holds {logged} {what}, but the simulation made {driven}"
            )));
        }
    }
    Ok(summary)
}

/// Attaches the agents and drives the scenarios, `concurrency` at a time, counting each
/// finished conversation's history into `summary`.
async fn drive(
    handover: &Handover,
    scenarios: Vec<Scenario>,
    options: &Options,
    acks: Option<Arc<AckLog>>,
    summary: &mut Summary,
    progress: &mut impl FnMut(Progress),
    stop: impl Future<Output = ()>,
) -> Result<Tally, SimError> {
    let agents = Arc::new(start_agents(handover, options.ai_agents, summary).await?);
    let total = count(scenarios.len());
    let mut tally = Tally::default();
    let mut running = JoinSet::new();
    let mut pending = scenarios.into_iter();
    let mut stopping = false;
    tokio::pin!(stop);
    loop {
        while !stopping && running.len() < options.concurrency {
            let Some(scenario) = pending.next() else {
                break;
            };
            let driver = Driver {
                handover: handover.clone(),
                acks: acks.clone(),
            };
            running.spawn(converse(driver, Arc::clone(&agents), scenario));
        }
        let done = tokio::select! {
            // A stop finishes the conversations under way: none is left half-driven.
            () = &mut stop, if !stopping => {
                stopping = true;
                summary.interrupted = true;
                continue;
            }
            done = running.join_next() => done,
        };
        let Some(done) = done else {
            break;
        };
        let (id, done) = done.map_err(|error| {
            SimError::Unexpected(format!("a conversation task failed: {error}"))
        })??;
        tally += done;
        for record in handover.history(id).await?.iter() {
            summary.count(&record.event);
        }
        progress(Progress {
            done: tally.conversations,
            total,
            events: summary.events,
        });
    }
    Ok(tally)
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// What the driver itself did to one conversation, to check against the log.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    conversations: u64,
    handoffs: u64,
    refused_handoffs: u64,
    reclaims: u64,
    escalations: u64,
    closed: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.conversations += other.conversations;
        self.handoffs += other.handoffs;
        self.refused_handoffs += other.refused_handoffs;
        self.reclaims += other.reclaims;
        self.escalations += other.escalations;
        self.closed += other.closed;
    }
}

/// What the driver waits for the AI agent to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AiTurn {
    Reply,
    Close,
    Escalate,
}

impl std::fmt::Display for AiTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AiTurn::Reply => "reply",
            AiTurn::Close => "close the conversation",
            AiTurn::Escalate => "escalate to a human",
        })
    }
}

/// Reads the watch until the AI agent has done `turn`; any other end of its assignment first
/// is a fault of the runtime or the agent.
async fn await_ai(watch: &mut Watch, id: ConversationId, turn: AiTurn) -> Result<(), SimError> {
    let wait = Duration::from_secs(AI_TURN_WAIT_SECONDS_MAX);
    loop {
        let record = tokio::time::timeout(wait, watch.next())
            .await
            .map_err(|_| {
                SimError::Unexpected(format!(
                    "conversation {id}: the AI agent did not {turn} within {wait:?}"
                ))
            })?
            .ok_or_else(|| {
                SimError::Unexpected(format!("conversation {id}: the runtime stopped"))
            })??;
        let Event::Conversation(event) = &record.event else {
            continue;
        };
        match (event, turn) {
            (ConversationEvent::MessagePosted { author: Author::Ai(_), .. }, AiTurn::Reply)
            | (ConversationEvent::Closed { by: Author::Ai(_), .. }, AiTurn::Close)
            | (ConversationEvent::EscalatedToHuman { .. }, AiTurn::Escalate) => return Ok(()),
            (
                ConversationEvent::Closed { .. }
                | ConversationEvent::EscalatedToHuman { .. }
                | ConversationEvent::Reclaimed { .. },
                _,
            ) => {
                return Err(SimError::Unexpected(format!(
                    "conversation {id}: expected the AI agent to {turn}, but the log shows {} at seq {}",
                    event.type_name(),
                    record.seq
                )))
            }
            _ => {}
        }
    }
}

fn text(value: impl Into<String>) -> Result<MessageText, SimError> {
    Ok(MessageText::new(value)?)
}

fn reason(value: &str) -> Result<Option<Reason>, SimError> {
    Ok(Some(Reason::new(value)?))
}

/// The AI agents this run attached, for the humans' "select the AI agent" list.
struct Agents {
    ours: HashSet<AiAgentId>,
}

impl Agents {
    /// The agent a human picks for `specialty`: one of the active agents of this run with
    /// that specialty (any of them if none has it), chosen by the scenario. The roster does not
    /// change during the run and lists agents by id, so the pick is the same on every run.
    fn pick(
        &self,
        handover: &Handover,
        specialty: &str,
        pick: usize,
    ) -> Result<AiAgentId, SimError> {
        let specialty = Specialty::new(specialty)?;
        let candidates = |filter: Option<&Specialty>| -> Vec<AiAgentId> {
            handover
                .active_ai_agents(filter.cloned())
                .into_iter()
                .map(|agent| agent.profile.id)
                .filter(|id| self.ours.contains(id))
                .collect()
        };
        let mut list = candidates(Some(&specialty));
        if list.is_empty() {
            list = candidates(None);
        }
        list.get(pick % list.len().max(1))
            .cloned()
            .ok_or_else(|| SimError::Unexpected("no active AI agent to hand off to".to_owned()))
    }
}

/// Registers, activates and attaches `count` FAQ agents, reusing those a previous run on the
/// same directory registered, and counts the events that recorded.
async fn start_agents(
    handover: &Handover,
    count: usize,
    summary: &mut Summary,
) -> Result<Agents, SimError> {
    let mut ours = HashSet::new();
    for i in 0..count {
        let (specialty, name) = SPECIALTIES[i % SPECIALTIES.len()];
        let round = i / SPECIALTIES.len();
        let (id, name) = match round {
            0 => (format!("{specialty}-bot"), name.to_owned()),
            n => (
                format!("{specialty}-bot-{}", n + 1),
                format!("{name} {}", n + 1),
            ),
        };
        let id = AiAgentId::new(id)?;
        let profile = AiAgentProfile {
            id: id.clone(),
            name: AgentName::new(name)?,
            specialties: vec![Specialty::new(specialty)?],
        };
        // Each registration and activation records one event in the agent's stream.
        match handover.register_ai_agent(profile).await {
            Ok(()) => summary.events += 1,
            Err(handover::Error::Rejected(Rejection::AiAgentAlreadyRegistered { .. })) => {}
            Err(error) => return Err(error.into()),
        }
        match handover.activate_ai_agent(id.clone()).await {
            Ok(()) => summary.events += 1,
            Err(handover::Error::Rejected(Rejection::AiAgentAlreadyActive { .. })) => {}
            Err(error) => return Err(error.into()),
        }
        handover.attach_ai_agent(id.clone(), Arc::new(FaqAgent::sample()))?;
        ours.insert(id);
    }
    Ok(Agents { ours })
}

/// The acknowledgement file: one line `<conversation-id> <seq>` per event of every command the
/// simulation sends, written once the command is acknowledged.
struct AckLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl AckLog {
    /// Opens `path` for appending, creating it if missing: a later run on the same data
    /// directory adds its acknowledgements to the earlier ones, all of which the log keeps.
    fn open(path: &Path) -> Result<AckLog, SimError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| SimError::Acks {
                path: path.to_owned(),
                source,
            })?;
        Ok(AckLog {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    /// Writes the receipt's events, all lines in one `write` on the unbuffered file, and
    /// returns once the kernel has them: a crash of this process after that keeps them.
    fn write(&self, id: ConversationId, receipt: &Receipt) -> Result<(), SimError> {
        let lines: String = receipt
            .events
            .iter()
            .map(|record| format!("{id} {}\n", record.seq))
            .collect();
        // A poisoned lock only means another writer panicked; the file itself is fine.
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(lines.as_bytes())
            .map_err(|source| SimError::Acks {
                path: self.path.clone(),
                source,
            })
    }
}

/// The simulation's hands on the facade: each command is a facade call, and with an
/// acknowledgement file its receipt is written down before the caller moves on.
#[derive(Clone)]
struct Driver {
    handover: Handover,
    acks: Option<Arc<AckLog>>,
}

impl Driver {
    /// Writes down an acknowledged receipt, if there is an acknowledgement file.
    fn acknowledged(&self, id: ConversationId, receipt: Receipt) -> Result<Receipt, SimError> {
        if let Some(acks) = &self.acks {
            acks.write(id, &receipt)?;
        }
        Ok(receipt)
    }

    async fn open_conversation(
        &self,
        customer: CustomerId,
        channel: Channel,
        human: Option<HumanId>,
    ) -> Result<ConversationId, SimError> {
        let receipt = self
            .handover
            .open_conversation(customer, channel, human)
            .await?;
        let id = receipt.conversation_id;
        self.acknowledged(id, receipt)?;
        Ok(id)
    }

    async fn post_customer_message(
        &self,
        id: ConversationId,
        customer: CustomerId,
        text: MessageText,
    ) -> Result<Receipt, SimError> {
        let receipt = self
            .handover
            .post_customer_message(id, customer, text)
            .await?;
        self.acknowledged(id, receipt)
    }

    async fn post_human_message(
        &self,
        id: ConversationId,
        human: HumanId,
        text: MessageText,
    ) -> Result<Receipt, SimError> {
        let receipt = self.handover.post_human_message(id, human, text).await?;
        self.acknowledged(id, receipt)
    }

    async fn hand_off_to_ai(
        &self,
        id: ConversationId,
        by: HumanId,
        agent_id: AiAgentId,
        reason: Option<Reason>,
    ) -> Result<Receipt, SimError> {
        let receipt = self
            .handover
            .hand_off_to_ai(id, by, agent_id, reason)
            .await?;
        self.acknowledged(id, receipt)
    }

    async fn reclaim(
        &self,
        id: ConversationId,
        by: HumanId,
        reason: Option<Reason>,
    ) -> Result<Receipt, SimError> {
        let receipt = self.handover.reclaim(id, by, reason).await?;
        self.acknowledged(id, receipt)
    }

    async fn close_as_human(
        &self,
        id: ConversationId,
        by: HumanId,
        reason: Option<Reason>,
    ) -> Result<Receipt, SimError> {
        let receipt = self.handover.close(id, by, reason).await?;
        self.acknowledged(id, receipt)
    }

    async fn close_as_customer(
        &self,
        id: ConversationId,
        by: CustomerId,
    ) -> Result<Receipt, SimError> {
        let command = handover::ConversationCommand::Close {
            by: handover::Participant::Customer(by),
            reason: None,
        };
        let receipt = self.handover.execute(id, command).await?;
        self.acknowledged(id, receipt)
    }
}

/// Drives one conversation through its script.
async fn converse(
    driver: Driver,
    agents: Arc<Agents>,
    scenario: Scenario,
) -> Result<(ConversationId, Tally), SimError> {
    let lang = scenario.lang;
    let customer = CustomerId::new(format!("customer-{:06}", scenario.index))?;
    let human = HumanId::new(format!("human-{}", scenario.human + 1))?;
    let mut tally = Tally::default();
    let handover = &driver.handover;

    let id = driver
        .open_conversation(
            customer.clone(),
            Channel::new(scenario.channel)?,
            Some(human.clone()),
        )
        .await?;
    tally.conversations += 1;
    let mut watch = handover.watch(id).await?;
    let say = |words: String| {
        let driver = driver.clone();
        let customer = customer.clone();
        async move {
            driver
                .post_customer_message(id, customer, text(words)?)
                .await
        }
    };
    // A human greets first, so that the customer's question is the latest message when the
    // conversation is handed off and the agent answers it at once.
    driver
        .post_human_message(
            id,
            human.clone(),
            text(lines::greeting(lang, human.as_str()))?,
        )
        .await?;

    match scenario.script {
        Script::Difficult {
            difficulty,
            tries_handoff,
        } => {
            say(difficulty.message(lang).to_owned()).await?;
            if tries_handoff {
                let agent = agents.pick(handover, difficulty.specialty(), scenario.agent_pick)?;
                match driver.hand_off_to_ai(id, human.clone(), agent, None).await {
                    Err(SimError::Handover(handover::Error::Rejected(
                        Rejection::HandoffAgainstPolicy { .. },
                    ))) => {
                        tally.refused_handoffs += 1;
                    }
                    Err(error) => return Err(error),
                    Ok(_) => {
                        return Err(SimError::Unexpected(format!(
                            "conversation {id}: the policy let a {difficulty:?} be handed off"
                        )))
                    }
                }
            }
            driver
                .post_human_message(id, human.clone(), text(lines::human_empathy(lang))?)
                .await?;
            driver
                .close_as_human(id, human.clone(), reason("resolved by the human agent")?)
                .await?;
        }
        Script::Simple {
            topic,
            handoff: false,
            ..
        } => {
            say(topic.question(lang)).await?;
            driver
                .post_human_message(id, human.clone(), text(lines::human_answer(lang))?)
                .await?;
            driver
                .close_as_human(id, human.clone(), reason("answered by the human agent")?)
                .await?;
        }
        Script::Simple {
            topic,
            handoff: true,
            ending,
        } => {
            say(topic.question(lang)).await?;
            let agent = agents.pick(handover, topic.specialty(), scenario.agent_pick)?;
            driver
                .hand_off_to_ai(id, human.clone(), agent, reason(topic.handoff_reason())?)
                .await?;
            tally.handoffs += 1;
            await_ai(&mut watch, id, AiTurn::Reply).await?;
            match ending {
                Ending::AiCloses => {
                    say(lines::thanks(lang).to_owned()).await?;
                    await_ai(&mut watch, id, AiTurn::Close).await?;
                }
                Ending::FollowUp(next) => {
                    say(next.question(lang)).await?;
                    await_ai(&mut watch, id, AiTurn::Reply).await?;
                    driver.close_as_customer(id, customer.clone()).await?;
                }
                Ending::CustomerCloses => {
                    driver.close_as_customer(id, customer.clone()).await?;
                }
                Ending::Reclaimed => {
                    driver
                        .reclaim(id, human.clone(), reason("personal follow-up")?)
                        .await?;
                    tally.reclaims += 1;
                    driver
                        .post_human_message(id, human.clone(), text(lines::human_takes_over(lang))?)
                        .await?;
                    driver
                        .close_as_human(id, human.clone(), reason("resolved by the human agent")?)
                        .await?;
                }
                Ending::AsksForHuman => {
                    let receipt = say(lines::wants_human(lang).to_owned()).await?;
                    let escalated = receipt.events.iter().any(|record| {
                        matches!(
                            record.event,
                            Event::Conversation(ConversationEvent::EscalatedToHuman {
                                cause: EscalationCause::CustomerAskedForHuman,
                                ..
                            })
                        )
                    });
                    if !escalated {
                        return Err(SimError::Unexpected(format!(
                            "conversation {id}: the policy did not escalate a request for a human"
                        )));
                    }
                    tally.escalations += 1;
                    driver
                        .post_human_message(id, human.clone(), text(lines::human_takes_over(lang))?)
                        .await?;
                    driver
                        .close_as_human(id, human.clone(), reason("resolved by the human agent")?)
                        .await?;
                }
                Ending::AiGivesUp => {
                    let [first, second] = lines::unanswerable(lang);
                    say(first.to_owned()).await?;
                    await_ai(&mut watch, id, AiTurn::Reply).await?;
                    say(second.to_owned()).await?;
                    await_ai(&mut watch, id, AiTurn::Escalate).await?;
                    tally.escalations += 1;
                    driver
                        .post_human_message(id, human.clone(), text(lines::human_takes_over(lang))?)
                        .await?;
                    driver
                        .close_as_human(id, human.clone(), reason("resolved by the human agent")?)
                        .await?;
                }
            }
        }
    }
    tally.closed += 1;
    Ok((id, tally))
}
