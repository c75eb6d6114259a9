//! `handover simulate`: a contact center at work, through the real runtime.
//!
//! Customers follow scripts (FAQ and pricing questions, complaints, negotiations, "I want a
//! human", questions nobody can answer) in English, Portuguese or Spanish; humans hand the
//! simple ones to FAQ agents and keep the rest; the agents answer and record skills; some
//! conversations are reclaimed, some escalated, and every one is closed.
//!
//! The same seed gives the same counts: every random choice is drawn from the seed up front,
//! one scenario per conversation, and each conversation is driven step by step, waiting on
//! its watch for the AI agent to settle before the next step, so no count depends on timing.
//! The counts are read back from the log after the runtime has shut down.
//!
//! With `--acks FILE`, every command goes through [`Driver`], which writes the events of each
//! acknowledged command to FILE before the conversation's next command is sent, so a run
//! killed at any moment can be checked against the log it leaves.

use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use handover::faq::FaqAgent;
use handover::StreamExt as _;
use handover::{
    AgentName, AiAgentId, AiAgentProfile, Author, Channel, Config, ConversationCommand,
    ConversationEvent, ConversationId, CustomerId, Durability, EscalationCause, Event, Handover,
    HumanId, MessageText, Participant, Reason, Receipt, Rejection, SkillOutcome, Specialty,
    StreamId, Watch,
};
use handover_sled::{SledOptions, SledStore};
use handover_store::EventStore;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::task::JoinSet;

/// Most conversations one simulation may run.
const CONVERSATIONS_MAX: usize = 1_000_000;
/// Most AI agents one simulation may register.
const AI_AGENTS_MAX: usize = 64;
/// Most human agents one simulation may staff.
const HUMANS_MAX: usize = 10_000;
/// Most conversations one simulation may drive at the same time.
const CONCURRENT_CONVERSATIONS_MAX: usize = 4096;
/// How long one step may wait for an AI agent before the simulation gives up, in seconds. Only
/// a runtime fault can take this long; it never decides a count.
const AI_TURN_WAIT_SECONDS_MAX: u64 = 120;

/// The specialties the AI agents take in turn, with the display name of each.
const SPECIALTIES: [(&str, &str); 3] = [
    ("pricing", "Pricing assistant"),
    ("faq", "FAQ assistant"),
    ("shipping", "Shipping assistant"),
];

const CHANNELS: [&str; 3] = ["web-chat", "whatsapp", "email"];

/// A count in `1..=MAX`, for clap.
fn count_up_to<const MAX: usize>(text: &str) -> Result<usize, String> {
    let n: usize = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number"))?;
    match n {
        0 => Err("must be at least 1".to_owned()),
        n if n > MAX => Err(format!("must be at most {MAX}")),
        n => Ok(n),
    }
}

/// What an acknowledged event survives, as the command line names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum DurabilityArg {
    /// Acknowledge after the log is flushed and synced to the device (survives power loss).
    Durable,
    /// Acknowledge after the log is flushed to the operating system (survives a crash of the
    /// process, not a power loss).
    ProcessCrash,
    /// Acknowledge once written to the store's buffers (fastest; a crash can lose the last
    /// moments).
    Buffered,
}

impl From<DurabilityArg> for Durability {
    fn from(value: DurabilityArg) -> Durability {
        match value {
            DurabilityArg::Durable => Durability::Durable,
            DurabilityArg::ProcessCrash => Durability::ProcessCrash,
            DurabilityArg::Buffered => Durability::Buffered,
        }
    }
}

/// Options of `handover simulate`.
#[derive(Debug, clap::Args)]
pub(crate) struct SimulateArgs {
    /// Data directory of the event log (created if missing; a fresh one gives reproducible
    /// counts).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    /// How many conversations to run.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = count_up_to::<CONVERSATIONS_MAX>)]
    conversations: usize,
    /// How many FAQ agents to register, activate and attach (specialties pricing, faq and
    /// shipping in turn).
    #[arg(long, value_name = "A", default_value_t = 3, value_parser = count_up_to::<AI_AGENTS_MAX>)]
    ai_agents: usize,
    /// How many human agents handle the conversations.
    #[arg(long, value_name = "H", default_value_t = 5, value_parser = count_up_to::<HUMANS_MAX>)]
    humans: usize,
    /// Seed of every random choice: the same seed gives the same counts.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// How many conversations run at the same time.
    #[arg(long, value_name = "C", default_value_t = 64, value_parser = count_up_to::<CONCURRENT_CONVERSATIONS_MAX>)]
    concurrency: usize,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
    /// What an acknowledged command survives.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Durable)]
    durability: DurabilityArg,
    /// Write every acknowledged event of the simulation's commands to FILE, one
    /// `<conversation-id> <seq>` a line.
    ///
    /// FILE is appended to (created if missing), so several runs on one data directory can
    /// share it. It lists each event of each command the simulation itself sends (opens,
    /// customer and human messages, handoffs, reclaims, closes; a customer's request for a
    /// human and its escalation are two lines), not what the AI agents record on their own.
    /// A command's lines are written with one `write` after the runtime acknowledged the
    /// command and before the simulation sends the next command of that conversation: once a
    /// line is in the file, its event was acknowledged, and a crash of the process (even
    /// `kill -9`) keeps every line written. There is no fsync, so a power loss may lose lines.
    /// With `--durability durable` or `process-crash`, every event listed survives a crash of
    /// the process; with `buffered`, the last ones may not. Every line ends with a newline;
    /// lines of different conversations interleave.
    #[arg(long, value_name = "FILE")]
    acks: Option<PathBuf>,
}

pub(crate) fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    // Logs go to stderr so that `--json` output stays one object on stdout. A RUST_LOG that is
    // not UTF-8 or does not parse is an error, not a silently different log level.
    let filter = match std::env::var("RUST_LOG") {
        Err(std::env::VarError::NotPresent) => tracing_subscriber::EnvFilter::new("warn"),
        Err(std::env::VarError::NotUnicode(value)) => {
            anyhow::bail!("RUST_LOG is not valid UTF-8: {value:?}")
        }
        Ok(directives) => tracing_subscriber::EnvFilter::try_new(&directives)
            .with_context(|| format!("RUST_LOG {directives:?} is not a valid log filter"))?,
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let summary = runtime.block_on(simulate(&args))?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{}", summary.human_readable());
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lang {
    En,
    Pt,
    Es,
}

/// What a simple question is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Topic {
    Hours,
    Shipping,
    Returns,
    Password,
    Payment,
    /// The price of one of the sample plans (0 Basic, 1 Pro, 2 Enterprise).
    Price(usize),
}

const FAQ_TOPICS: [Topic; 5] = [
    Topic::Hours,
    Topic::Shipping,
    Topic::Returns,
    Topic::Password,
    Topic::Payment,
];

impl Topic {
    /// The specialty a human looks for when handing this off.
    fn specialty(self) -> &'static str {
        match self {
            Topic::Price(_) => "pricing",
            Topic::Shipping | Topic::Returns => "shipping",
            Topic::Hours | Topic::Password | Topic::Payment => "faq",
        }
    }

    fn question(self, lang: Lang) -> String {
        let plan = |names: [&str; 3], i: usize| names[i % 3].to_owned();
        match (self, lang) {
            (Topic::Hours, Lang::En) => "What are your business hours?".into(),
            (Topic::Hours, Lang::Pt) => "Qual é o horário de atendimento de vocês?".into(),
            (Topic::Hours, Lang::Es) => "¿Cuál es su horario de atención?".into(),
            (Topic::Shipping, Lang::En) => "How long does delivery take?".into(),
            (Topic::Shipping, Lang::Pt) => "Quanto tempo demora a entrega?".into(),
            (Topic::Shipping, Lang::Es) => "¿Cuánto tarda el envío?".into(),
            (Topic::Returns, Lang::En) => "How do I return an item and get a refund?".into(),
            (Topic::Returns, Lang::Pt) => "Como faço para devolver um produto?".into(),
            (Topic::Returns, Lang::Es) => "¿Cómo hago una devolución?".into(),
            (Topic::Password, Lang::En) => "I forgot my password. How do I reset it?".into(),
            (Topic::Password, Lang::Pt) => "Esqueci minha senha, o que eu faço?".into(),
            (Topic::Password, Lang::Es) => "Olvidé mi contraseña, ¿qué hago?".into(),
            (Topic::Payment, Lang::En) => "Which payment methods do you accept?".into(),
            (Topic::Payment, Lang::Pt) => "Quais formas de pagamento vocês aceitam?".into(),
            (Topic::Payment, Lang::Es) => "¿Qué métodos de pago aceptan?".into(),
            (Topic::Price(i), Lang::En) => {
                format!(
                    "How much is the {} plan?",
                    plan(["Basic", "Pro", "Enterprise"], i)
                )
            }
            (Topic::Price(i), Lang::Pt) => {
                format!(
                    "Quanto custa o plano {}?",
                    plan(["Básico", "Pro", "Empresarial"], i)
                )
            }
            (Topic::Price(i), Lang::Es) => format!(
                "¿Cuánto cuesta el plan {}?",
                plan(["Básico", "Profesional", "Empresarial"], i)
            ),
        }
    }

    fn handoff_reason(self) -> &'static str {
        match self {
            Topic::Price(_) => "Customer wants information about pricing and plans",
            _ => "Frequently asked question the AI agent answers reliably",
        }
    }
}

/// How a conversation handed to an AI agent ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// The customer says thanks; the AI agent closes it as resolved.
    AiCloses,
    /// The customer asks another question, then closes it.
    FollowUp(Topic),
    /// After the AI answered, the human reclaims it, writes, and closes it.
    Reclaimed,
    /// The customer closes it after the AI's answer.
    CustomerCloses,
    /// The customer asks for a human: the policy escalates it in the same step.
    AsksForHuman,
    /// Two questions the AI agent cannot answer: the agent escalates it.
    AiGivesUp,
}

/// Something the handoff guidance keeps with humans.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Difficulty {
    Complaint,
    Negotiation,
}

impl Difficulty {
    fn message(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Difficulty::Complaint, Lang::En) => {
                "This is unacceptable, I want to file a complaint about my order."
            }
            (Difficulty::Complaint, Lang::Pt) => "Péssimo serviço, quero fazer uma reclamação.",
            (Difficulty::Complaint, Lang::Es) => "Quiero poner una queja, el servicio es horrible.",
            (Difficulty::Negotiation, Lang::En) => "Can we negotiate a discount for 50 seats?",
            (Difficulty::Negotiation, Lang::Pt) => "Podemos negociar um desconto no contrato?",
            (Difficulty::Negotiation, Lang::Es) => "¿Podemos negociar un descuento por volumen?",
        }
    }

    fn specialty(self) -> &'static str {
        match self {
            Difficulty::Complaint => "faq",
            Difficulty::Negotiation => "pricing",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Script {
    /// A simple question: handed to an AI agent (or, now and then, answered by the human).
    Simple {
        topic: Topic,
        handoff: bool,
        ending: Ending,
    },
    /// A complaint or negotiation: the human keeps it, though some try a handoff anyway and
    /// the policy refuses it.
    Difficult {
        difficulty: Difficulty,
        tries_handoff: bool,
    },
}

/// Every random choice of one conversation, drawn up front.
#[derive(Clone, Debug)]
struct Scenario {
    index: usize,
    lang: Lang,
    channel: &'static str,
    human: usize,
    /// Picks among the agents with the wanted specialty (modulo their number).
    agent_pick: usize,
    script: Script,
}

fn draw_scenarios(seed: u64, conversations: usize, humans: usize) -> Vec<Scenario> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..conversations)
        .map(|index| {
            let lang = [Lang::En, Lang::Pt, Lang::Es][rng.gen_range(0..3)];
            let channel = CHANNELS[rng.gen_range(0..CHANNELS.len())];
            let human = rng.gen_range(0..humans);
            let agent_pick = rng.gen_range(0..1024);
            let faq_topic = FAQ_TOPICS[rng.gen_range(0..FAQ_TOPICS.len())];
            let price_topic = Topic::Price(rng.gen_range(0..3));
            let roll = rng.gen_range(0..100);
            let script = match roll {
                0..=54 => {
                    let topic = if roll < 30 { faq_topic } else { price_topic };
                    let ending = match rng.gen_range(0..100) {
                        0..=29 => Ending::AiCloses,
                        30..=59 => Ending::Reclaimed,
                        60..=79 => {
                            let other = FAQ_TOPICS[rng.gen_range(0..FAQ_TOPICS.len())];
                            Ending::FollowUp(if other == topic { price_topic } else { other })
                        }
                        _ => Ending::CustomerCloses,
                    };
                    Script::Simple {
                        topic,
                        handoff: rng.gen_range(0..100) < 90,
                        ending,
                    }
                }
                55..=74 => Script::Difficult {
                    difficulty: if roll < 65 {
                        Difficulty::Complaint
                    } else {
                        Difficulty::Negotiation
                    },
                    tries_handoff: rng.gen_range(0..100) < 35,
                },
                75..=89 => Script::Simple {
                    topic: if rng.gen_bool(0.5) {
                        faq_topic
                    } else {
                        price_topic
                    },
                    handoff: true,
                    ending: Ending::AsksForHuman,
                },
                _ => Script::Simple {
                    topic: faq_topic,
                    handoff: true,
                    ending: Ending::AiGivesUp,
                },
            };
            Scenario {
                index,
                lang,
                channel,
                human,
                agent_pick,
                script,
            }
        })
        .collect()
}

/// The customer's and humans' lines, by language.
mod lines {
    use super::Lang;

    pub(super) fn greeting(lang: Lang, human: &str) -> String {
        match lang {
            Lang::En => format!("Hi, this is {human}. How can I help you today?"),
            Lang::Pt => format!("Olá, aqui é {human}. Como posso ajudar?"),
            Lang::Es => format!("Hola, soy {human}. ¿En qué puedo ayudarte?"),
        }
    }

    pub(super) fn thanks(lang: Lang) -> &'static str {
        match lang {
            Lang::En => "Thanks, that's all!",
            Lang::Pt => "Obrigado, era só isso!",
            Lang::Es => "¡Gracias, eso es todo!",
        }
    }

    pub(super) fn wants_human(lang: Lang) -> &'static str {
        match lang {
            Lang::En => "I want a human, please.",
            Lang::Pt => "Quero falar com um atendente.",
            Lang::Es => "Quiero hablar con un agente, por favor.",
        }
    }

    /// Two questions the FAQ agent's sample table cannot answer.
    pub(super) fn unanswerable(lang: Lang) -> [&'static str; 2] {
        match lang {
            Lang::En => ["Can you paint my fence?", "Do you tune pianos?"],
            Lang::Pt => ["Vocês consertam bicicletas?", "Vocês afinam pianos?"],
            Lang::Es => ["¿Reparan bicicletas?", "¿Afinan pianos?"],
        }
    }

    pub(super) fn human_answer(lang: Lang) -> &'static str {
        match lang {
            Lang::En => "Let me answer that myself: I have sent the details to your email.",
            Lang::Pt => "Eu mesmo respondo: enviei os detalhes para o seu email.",
            Lang::Es => "Te respondo yo: te envié los detalles por correo.",
        }
    }

    pub(super) fn human_takes_over(lang: Lang) -> &'static str {
        match lang {
            Lang::En => "Hi, I am taking over from our assistant. Is there anything else?",
            Lang::Pt => "Olá, eu assumo a partir daqui. Posso ajudar em algo mais?",
            Lang::Es => "Hola, sigo yo desde aquí. ¿Algo más en lo que pueda ayudar?",
        }
    }

    pub(super) fn human_empathy(lang: Lang) -> &'static str {
        match lang {
            Lang::En => "I am sorry about this. I will sort it out for you personally.",
            Lang::Pt => "Sinto muito por isso. Vou resolver pessoalmente.",
            Lang::Es => "Lo siento mucho. Lo resolveré personalmente.",
        }
    }
}

/// What the driver itself did to one conversation, to check against the log.
#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    handoffs: u64,
    refused_handoffs: u64,
    reclaims: u64,
    escalations: u64,
    closed: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
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
async fn await_ai(watch: &mut Watch, turn: AiTurn) -> anyhow::Result<()> {
    let id = watch.conversation_id();
    loop {
        let wait = Duration::from_secs(AI_TURN_WAIT_SECONDS_MAX);
        let record = tokio::time::timeout(wait, watch.next())
            .await
            .map_err(|_| anyhow!("conversation {id}: the AI agent did not {turn} within {wait:?}"))?
            .ok_or_else(|| anyhow!("conversation {id}: the runtime stopped"))??;
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
            ) => bail!(
                "conversation {id}: expected the AI agent to {turn}, but the log shows {} at seq {}",
                event.type_name(),
                record.seq
            ),
            _ => {}
        }
    }
}

fn text(value: impl Into<String>) -> anyhow::Result<MessageText> {
    Ok(MessageText::new(value)?)
}

fn reason(value: &str) -> anyhow::Result<Option<Reason>> {
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
    fn pick(&self, handover: &Handover, specialty: &str, pick: usize) -> anyhow::Result<AiAgentId> {
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
            .ok_or_else(|| anyhow!("no active AI agent to hand off to"))
    }
}

/// The acknowledgement file of `--acks`: one line `<conversation-id> <seq>` per event of every
/// command the simulation sends, written once the command is acknowledged.
struct AckLog {
    file: std::sync::Mutex<std::fs::File>,
}

impl AckLog {
    /// Opens `path` for appending, creating it if missing: a later run on the same data
    /// directory adds its acknowledgements to the earlier ones, all of which the log keeps.
    fn open(path: &Path) -> anyhow::Result<AckLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the acknowledgement file {}", path.display()))?;
        Ok(AckLog {
            file: std::sync::Mutex::new(file),
        })
    }

    /// Writes the receipt's events, all lines in one `write` on the unbuffered file, and
    /// returns once the kernel has them: a crash of this process after that keeps them.
    fn write(&self, id: ConversationId, receipt: &Receipt) -> anyhow::Result<()> {
        let lines: String = receipt
            .events
            .iter()
            .map(|record| format!("{id} {}\n", record.seq))
            .collect();
        // A poisoned lock only means another writer panicked; the file itself is fine.
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(lines.as_bytes())
            .context("cannot write the acknowledgement file")
    }
}

/// The simulation's hands on the runtime: every command goes through here, so that with
/// `--acks` each acknowledged event is written down before the caller moves on.
#[derive(Clone)]
struct Driver {
    handover: Handover,
    acks: Option<Arc<AckLog>>,
}

impl Driver {
    async fn execute(
        &self,
        id: ConversationId,
        command: ConversationCommand,
    ) -> anyhow::Result<Receipt> {
        let receipt = self.handover.execute(id, command).await?;
        if let Some(acks) = &self.acks {
            acks.write(id, &receipt)?;
        }
        Ok(receipt)
    }

    /// Opens a conversation under a new id (a UUID v7, as `Handover::open_conversation`
    /// gives), through `execute` so that its receipt is written down like any other.
    async fn open_conversation(
        &self,
        customer: CustomerId,
        channel: Channel,
        human: Option<HumanId>,
    ) -> anyhow::Result<ConversationId> {
        let id = ConversationId::from_uuid(uuid::Uuid::now_v7());
        self.execute(
            id,
            ConversationCommand::Open {
                customer,
                channel,
                human,
            },
        )
        .await?;
        Ok(id)
    }

    async fn post_customer_message(
        &self,
        id: ConversationId,
        customer: CustomerId,
        text: MessageText,
    ) -> anyhow::Result<Receipt> {
        let by = Participant::Customer(customer);
        self.execute(id, ConversationCommand::PostMessage { by, text })
            .await
    }

    async fn post_human_message(
        &self,
        id: ConversationId,
        human: HumanId,
        text: MessageText,
    ) -> anyhow::Result<Receipt> {
        let by = Participant::Human(human);
        self.execute(id, ConversationCommand::PostMessage { by, text })
            .await
    }

    async fn hand_off_to_ai(
        &self,
        id: ConversationId,
        by: HumanId,
        agent_id: AiAgentId,
        reason: Option<Reason>,
    ) -> anyhow::Result<Receipt> {
        let command = ConversationCommand::HandOffToAi {
            by,
            agent_id,
            reason,
        };
        self.execute(id, command).await
    }

    async fn reclaim(
        &self,
        id: ConversationId,
        by: HumanId,
        reason: Option<Reason>,
    ) -> anyhow::Result<Receipt> {
        self.execute(id, ConversationCommand::Reclaim { by, reason })
            .await
    }

    async fn close(
        &self,
        id: ConversationId,
        by: Participant,
        reason: Option<Reason>,
    ) -> anyhow::Result<Receipt> {
        self.execute(id, ConversationCommand::Close { by, reason })
            .await
    }
}

/// Drives one conversation through its script.
async fn converse(
    driver: Driver,
    agents: Arc<Agents>,
    scenario: Scenario,
) -> anyhow::Result<(ConversationId, Tally)> {
    let lang = scenario.lang;
    let customer = CustomerId::new(format!("customer-{:06}", scenario.index))?;
    let human = HumanId::new(format!("human-{}", scenario.human + 1))?;
    let as_customer = Participant::Customer(customer.clone());
    let as_human = Participant::Human(human.clone());
    let mut tally = Tally::default();
    let handover = &driver.handover;

    let id = driver
        .open_conversation(
            customer.clone(),
            Channel::new(scenario.channel)?,
            Some(human.clone()),
        )
        .await?;
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
                    Err(error)
                        if matches!(
                            error.downcast_ref(),
                            Some(handover::Error::Rejected(
                                Rejection::HandoffAgainstPolicy { .. }
                            ))
                        ) =>
                    {
                        tally.refused_handoffs += 1;
                    }
                    Err(error) => return Err(error),
                    Ok(_) => {
                        bail!("conversation {id}: the policy let a {difficulty:?} be handed off")
                    }
                }
            }
            driver
                .post_human_message(id, human.clone(), text(lines::human_empathy(lang))?)
                .await?;
            driver
                .close(id, as_human, reason("resolved by the human agent")?)
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
                .close(id, as_human, reason("answered by the human agent")?)
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
            await_ai(&mut watch, AiTurn::Reply).await?;
            match ending {
                Ending::AiCloses => {
                    say(lines::thanks(lang).to_owned()).await?;
                    await_ai(&mut watch, AiTurn::Close).await?;
                }
                Ending::FollowUp(next) => {
                    say(next.question(lang)).await?;
                    await_ai(&mut watch, AiTurn::Reply).await?;
                    driver.close(id, as_customer, None).await?;
                }
                Ending::CustomerCloses => {
                    driver.close(id, as_customer, None).await?;
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
                        .close(id, as_human, reason("resolved by the human agent")?)
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
                        bail!(
                            "conversation {id}: the policy did not escalate a request for a human"
                        );
                    }
                    tally.escalations += 1;
                    driver
                        .post_human_message(id, human.clone(), text(lines::human_takes_over(lang))?)
                        .await?;
                    driver
                        .close(id, as_human, reason("resolved by the human agent")?)
                        .await?;
                }
                Ending::AiGivesUp => {
                    let [first, second] = lines::unanswerable(lang);
                    say(first.to_owned()).await?;
                    await_ai(&mut watch, AiTurn::Reply).await?;
                    say(second.to_owned()).await?;
                    await_ai(&mut watch, AiTurn::Escalate).await?;
                    tally.escalations += 1;
                    driver
                        .post_human_message(id, human.clone(), text(lines::human_takes_over(lang))?)
                        .await?;
                    driver
                        .close(id, as_human, reason("resolved by the human agent")?)
                        .await?;
                }
            }
        }
    }
    tally.closed += 1;
    Ok((id, tally))
}

/// Registers, activates and attaches `count` FAQ agents, reusing those a previous run on the
/// same directory registered.
async fn start_agents(handover: &Handover, count: usize) -> anyhow::Result<Agents> {
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
        match handover.register_ai_agent(profile).await {
            Ok(()) | Err(handover::Error::Rejected(Rejection::AiAgentAlreadyRegistered { .. })) => {
            }
            Err(error) => return Err(error).context(format!("cannot register AI agent {id}")),
        }
        match handover.activate_ai_agent(id.clone()).await {
            Ok(()) | Err(handover::Error::Rejected(Rejection::AiAgentAlreadyActive { .. })) => {}
            Err(error) => return Err(error).context(format!("cannot activate AI agent {id}")),
        }
        handover.attach_ai_agent(id.clone(), Arc::new(FaqAgent::sample()))?;
        ours.insert(id);
    }
    Ok(Agents { ours })
}

/// What the simulation reports. Every field but `elapsed_ms` depends only on the arguments
/// (on a fresh data directory).
#[derive(Debug, Default, Serialize)]
struct Summary {
    conversations: u64,
    events: u64,
    handoffs: u64,
    refused_handoffs: u64,
    reclaims: u64,
    escalations: u64,
    escalations_customer_asked: u64,
    escalations_agent_requested: u64,
    ai_messages: u64,
    customer_messages: u64,
    human_messages: u64,
    skills: u64,
    skills_failed: u64,
    closed: u64,
    closed_by_ai: u64,
    closed_by_customer: u64,
    closed_by_human: u64,
    durability: &'static str,
    seed: u64,
    ai_agents: u64,
    humans: u64,
    concurrency: u64,
    elapsed_ms: u64,
    /// Events this run recorded per second of running (start-up to shutdown).
    events_per_s: u64,
    /// Sync calls the store made to make this run's events durable.
    syncs: u64,
    /// Command-to-acknowledgement latency of every command, AI agents' included.
    ack_p50_us: u64,
    ack_p99_us: u64,
}

impl Summary {
    /// Counts one event of this run.
    fn count(&mut self, event: &Event) {
        self.events += 1;
        let Event::Conversation(event) = event else {
            return;
        };
        match event {
            ConversationEvent::HandedOffToAi { .. } => self.handoffs += 1,
            ConversationEvent::Reclaimed { .. } => self.reclaims += 1,
            ConversationEvent::EscalatedToHuman { cause, .. } => {
                self.escalations += 1;
                match cause {
                    EscalationCause::CustomerAskedForHuman => self.escalations_customer_asked += 1,
                    EscalationCause::AgentRequested => self.escalations_agent_requested += 1,
                    _ => {}
                }
            }
            ConversationEvent::MessagePosted { author, .. } => match author {
                Author::Ai(_) => self.ai_messages += 1,
                Author::Customer(_) => self.customer_messages += 1,
                Author::Human(_) => self.human_messages += 1,
                _ => {}
            },
            ConversationEvent::AiActionRecorded { skill, .. } => {
                self.skills += 1;
                if matches!(skill.outcome, SkillOutcome::Failed(_)) {
                    self.skills_failed += 1;
                }
            }
            ConversationEvent::Closed { by, .. } => {
                self.closed += 1;
                match by {
                    Author::Ai(_) => self.closed_by_ai += 1,
                    Author::Customer(_) => self.closed_by_customer += 1,
                    Author::Human(_) => self.closed_by_human += 1,
                    _ => {}
                }
            }
            ConversationEvent::Opened { .. } => self.conversations += 1,
            _ => {}
        }
    }

    fn human_readable(&self) -> String {
        format!(
            "simulated {} conversations with {} AI agents and {} humans (seed {}, durability {}, {} at a time)\n\
             \x20 events            {:>8}\n\
             \x20 handoffs          {:>8}  (refused by the policy: {})\n\
             \x20 reclaims          {:>8}\n\
             \x20 escalations       {:>8}  (customer asked for a human: {}, AI agent gave up: {})\n\
             \x20 messages          {:>8}  (customers: {}, humans: {}, AI agents: {})\n\
             \x20 skills            {:>8}  (failed: {})\n\
             \x20 closed            {:>8}  (by AI agents: {}, by customers: {}, by humans: {})\n\
             \x20 elapsed           {:>8} ms  ({} events/s, {} syncs, acknowledged in {} us p50, {} us p99)\n",
            self.conversations,
            self.ai_agents,
            self.humans,
            self.seed,
            self.durability,
            self.concurrency,
            self.events,
            self.handoffs,
            self.refused_handoffs,
            self.reclaims,
            self.escalations,
            self.escalations_customer_asked,
            self.escalations_agent_requested,
            self.customer_messages + self.human_messages + self.ai_messages,
            self.customer_messages,
            self.human_messages,
            self.ai_messages,
            self.skills,
            self.skills_failed,
            self.closed,
            self.closed_by_ai,
            self.closed_by_customer,
            self.closed_by_human,
            self.elapsed_ms,
            self.events_per_s,
            self.syncs,
            self.ack_p50_us,
            self.ack_p99_us,
        )
    }
}

/// Opens the log in `data` and starts the runtime on it, keeping a handle on the store to count
/// the run's events once the runtime has stopped.
async fn start_runtime(
    data: &Path,
    durability: DurabilityArg,
) -> anyhow::Result<(Arc<SledStore>, Handover)> {
    let options = SledOptions {
        durability: durability.into(),
        ..SledOptions::default()
    };
    let store = Arc::new(SledStore::open(data, options)?);
    let config = Config::new(data).durability(durability.into());
    let handover =
        Handover::start_with_store(Arc::clone(&store) as Arc<dyn EventStore>, config.runtime)
            .await?;
    Ok((store, handover))
}

fn micros(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

async fn simulate(args: &SimulateArgs) -> anyhow::Result<Summary> {
    let scenarios = draw_scenarios(args.seed, args.conversations, args.humans);
    let started = Instant::now();
    let acks = args
        .acks
        .as_deref()
        .map(AckLog::open)
        .transpose()?
        .map(Arc::new);
    let (store, handover) = start_runtime(&args.data, args.durability).await?;
    // The log may hold earlier runs: only what this run appends is counted.
    let head_before = store.head();
    let agents = Arc::new(start_agents(&handover, args.ai_agents).await?);

    let mut tally = Tally::default();
    let mut conversations = HashSet::with_capacity(scenarios.len());
    let mut running = JoinSet::new();
    let mut pending = scenarios.into_iter();
    loop {
        while running.len() < args.concurrency {
            let Some(scenario) = pending.next() else {
                break;
            };
            let driver = Driver {
                handover: handover.clone(),
                acks: acks.clone(),
            };
            running.spawn(converse(driver, Arc::clone(&agents), scenario));
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let (id, done) = done.context("a conversation task panicked")??;
        conversations.insert(id);
        tally += done;
    }
    let ack_latency = handover.ack_latency();
    handover.shutdown().await;
    let ran = started.elapsed();
    let store_stats = store.stats();

    let mut summary = Summary {
        refused_handoffs: tally.refused_handoffs,
        durability: Durability::from(args.durability).name(),
        syncs: store_stats.syncs,
        ack_p50_us: micros(ack_latency.p50),
        ack_p99_us: micros(ack_latency.p99),
        seed: args.seed,
        ai_agents: u64::try_from(args.ai_agents)?,
        humans: u64::try_from(args.humans)?,
        concurrency: u64::try_from(args.concurrency)?,
        ..Summary::default()
    };
    for record in store.iter_all(head_before + 1) {
        let record = record?;
        let ours = match &record.stream {
            StreamId::Conversation(id) => conversations.contains(id),
            StreamId::AiAgent(id) => agents.ours.contains(id),
        };
        if ours {
            summary.count(&record.event);
        }
    }
    summary.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    summary.events_per_s = (summary.events as f64 / ran.as_secs_f64().max(1e-9)) as u64;

    // The driver's own bookkeeping and the log must tell the same story.
    let expected = [
        (
            "conversations",
            u64::try_from(conversations.len())?,
            summary.conversations,
        ),
        ("handoffs", tally.handoffs, summary.handoffs),
        ("reclaims", tally.reclaims, summary.reclaims),
        ("escalations", tally.escalations, summary.escalations),
        ("closed", tally.closed, summary.closed),
    ];
    for (what, driven, logged) in expected {
        if driven != logged {
            bail!("the log holds {logged} {what}, but the simulation made {driven}");
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use handover::faq::{KnowledgeTable, Lookup};
    use handover::{Concern, DefaultPolicy, Policy};

    use super::*;

    const LANGS: [Lang; 3] = [Lang::En, Lang::Pt, Lang::Es];

    #[test]
    fn every_simple_question_is_answered_and_raises_no_concern() {
        let table = KnowledgeTable::sample();
        let policy = DefaultPolicy::default();
        let topics = FAQ_TOPICS.into_iter().chain((0..3).map(Topic::Price));
        for topic in topics {
            for lang in LANGS {
                let question = topic.question(lang);
                assert_eq!(policy.assess(&question), vec![], "{question:?}");
                let found = table.lookup(&question);
                match (topic, &found) {
                    (Topic::Price(_), Lookup::Price { .. }) => {}
                    (Topic::Price(_), _) => panic!("{question:?} gave {found:?}"),
                    (
                        _,
                        Lookup::Entry {
                            id, closes: false, ..
                        },
                    ) => {
                        let expected = format!("{topic:?}").to_lowercase();
                        assert_eq!(id, &expected, "{question:?}");
                    }
                    _ => panic!("{question:?} gave {found:?}"),
                }
            }
        }
    }

    #[test]
    fn scripted_lines_mean_what_the_scripts_expect() {
        let table = KnowledgeTable::sample();
        let policy = DefaultPolicy::default();
        for lang in LANGS {
            assert!(matches!(
                table.lookup(lines::thanks(lang)),
                Lookup::Entry { closes: true, .. }
            ));
            assert_eq!(policy.assess(lines::thanks(lang)), vec![]);
            for question in lines::unanswerable(lang) {
                assert_eq!(table.lookup(question), Lookup::Miss, "{question:?}");
                assert_eq!(policy.assess(question), vec![], "{question:?}");
            }
            assert_eq!(
                policy.assess(lines::wants_human(lang)),
                vec![Concern::HumanRequested]
            );
            assert_eq!(
                policy.assess(Difficulty::Complaint.message(lang)),
                vec![Concern::Complaint]
            );
            assert_eq!(
                policy.assess(Difficulty::Negotiation.message(lang)),
                vec![Concern::Negotiation]
            );
        }
    }

    #[test]
    fn the_same_seed_draws_the_same_scenarios() {
        let a = draw_scenarios(7, 500, 5);
        let b = draw_scenarios(7, 500, 5);
        let c = draw_scenarios(8, 500, 5);
        let key = |s: &[Scenario]| format!("{s:?}");
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
        // Every script appears in a run of this size.
        let has = |f: &dyn Fn(&Script) -> bool| a.iter().any(|s| f(&s.script));
        assert!(has(&|s| matches!(
            s,
            Script::Difficult {
                tries_handoff: true,
                ..
            }
        )));
        assert!(has(&|s| matches!(s, Script::Simple { handoff: false, .. })));
        for ending in [
            Ending::AiCloses,
            Ending::Reclaimed,
            Ending::CustomerCloses,
            Ending::AsksForHuman,
            Ending::AiGivesUp,
        ] {
            assert!(has(
                &|s| matches!(s, Script::Simple { ending: e, .. } if *e == ending)
            ));
        }
    }

    #[test]
    fn counts_must_be_at_least_one_and_bounded() {
        assert_eq!(count_up_to::<10>("3"), Ok(3));
        assert_eq!(count_up_to::<10>("0"), Err("must be at least 1".to_owned()));
        assert_eq!(
            count_up_to::<10>("11"),
            Err("must be at most 10".to_owned())
        );
        assert!(count_up_to::<10>("-1").is_err());
    }
}
