//! Crash harness: the real runtime killed with SIGKILL at seeded moments, then its log checked
//! against what the killed process was told; on PostgreSQL, also the database server crashed
//! under it.
//!
//! One harness, two backends ([`Backend`]): a sled data directory, or a PostgreSQL database
//! (a throwaway server per test, `handover_testkit::PgCluster`). Three tests:
//!
//! - [`sigkill_loses_no_acknowledged_event`]: the node (the child) killed, on sled;
//! - [`sigkill_of_a_node_loses_no_acknowledged_event_on_postgres`]: the same on PostgreSQL;
//! - [`database_crash_mid_append_loses_no_acknowledged_event`]: the database server crashed
//!   (`pg_ctl stop -m immediate`) while the child appends, see below.
//!
//! Each test runs this test executable again as a child (`--exact crash_child`); the
//! environment variable `HANDOVER_CRASH_CHILD` (a data directory) or
//! `HANDOVER_CRASH_CHILD_DATABASE` (a database URL) puts the child in writer mode. The child
//! starts `Handover` on the data directory (`Handover::start`), or connects a
//! `PostgresStore` to the database and starts `Handover::start_with_store` on it, registers
//! and activates two AI agents (which answer every customer message with a reply, and some
//! with a skill), and drives conversations from several tokio tasks: open, customer and human
//! messages, handoffs, reclaims, closes, and customers asking for a human while an AI agent is
//! active, which the policy escalates in the same append (two events, one command). Every
//! command carries a unique token (in the message text, the reason, the channel or the skill
//! input), so every stored event maps back to the attempt that wrote it. The child prints, one
//! flushed line each:
//!
//! - `ATTEMPT <token> <conversation> <events> <command id> <kind>` before it sends a command
//!   (`events`: how many events the command records if accepted; the writers send every
//!   command with `Handover::execute_once` under a new `CommandId`; an AI agent's attempt has
//!   `-` and `ai` for the last two);
//! - `RETRY <token> <conversation> <events> <command id> <kind>` before it sends again a
//!   command an earlier child sent but was killed before its acknowledgement;
//! - `ACK <conversation> <seq> <token>` for each event of the receipt, after the command is
//!   acknowledged;
//! - `AGENT <agent> registered|activated` once an AI agent's registration or activation is
//!   acknowledged (or found already done);
//! - `STORE_ERROR <token>` when a writer's command first fails with a store error while the
//!   parent has crashed the database (only then is a store error no fault: the writer sends
//!   the command again under the same command id until it is acknowledged);
//!
//! The parent kills the child after a seeded number of `ACK` lines plus a seeded short sleep
//! (or, in some rounds, a seeded moment during start-up: while sled recovers, or while the
//! child connects to PostgreSQL, migrates the schema or reads its projections), then reads the
//! log: on sled by opening the directory with `SledStore`; on PostgreSQL through
//! `PostgresStore::snapshot`, one consistent snapshot that verifies every record's checksum
//! and place, dense positions, each stream's seqs from 1 and its hash chain (damage fails the
//! round), cross-checked against `read_all`. Over every round on that log it computes:
//!
//! - `lost`: acknowledged events absent (or another attempt's event at their place): must be 0;
//! - `vanished`: events read after an earlier crash and gone after a later one: must be 0;
//! - `unexpected`: events present that no attempt made, or that an earlier check found absent
//!   after its own crash (resurrected): must be 0;
//! - `partial`: attempts present with fewer or more events than the command records, or
//!   recorded twice: must be 0;
//! - `recovered`: attempted, not acknowledged, present (reported).
//!
//! Each round first sends again, with the same command id, every writer command a crash left
//! unacknowledged, before any other command of its conversation: whether the first attempt
//! was recorded (the retry is answered from the log) or not (the retry records it), the
//! command must end up in the log exactly once, at the seqs its acknowledgement names.
//!
//! It also checks that every stream runs from seq 1 without a gap (read in global order and
//! stream by stream) and, on sled, that `handover_audit::verify_dir` finds the directory sound
//! with the same number of events. Rounds reuse the log (crash, reopen, retry, continue the
//! open conversations, crash again), ten rounds per directory or database; each round of the
//! node-kill tests runs `Durable` or `ProcessCrash`, both of which survive a crash of the
//! process (on PostgreSQL, `ProcessCrash` commits without waiting for the server's WAL flush).
//!
//! The database-crash test crashes the server in every round, after a seeded number of `ACK`
//! lines, with `Durable` (the only durability that survives a crash of the server). In half
//! the rounds the child is killed a seeded moment later, its appends failing meanwhile, and the
//! server is started again before the check. In the other half the child lives through it: the
//! server stays down a seeded while, starts again, and the child, whose store reconnects by
//! itself, must acknowledge a seeded number of further events (a stall fails the round) before
//! it is killed as usual. The next round, on the same database, sends again what was left
//! unacknowledged.
//!
//! Default: 30 rounds on sled and 10 per PostgreSQL test (CI-sized). The long runs:
//! `HANDOVER_CRASH_ROUNDS=500 cargo test -p handover --test crash sigkill_loses -- --nocapture`
//! and `HANDOVER_CRASH_PG_ROUNDS=60 cargo test -p handover --test crash -- postgres database
//! --nocapture`; `HANDOVER_CRASH_SEED=<seed>` replays a seed's kill schedule (the child's
//! interleaving depends on timing, so a replay is the same schedule, not the same log).

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use handover::*;
use handover_postgres::{PostgresOptions, PostgresStore};
use handover_sled::{SledOptions, SledStore};
use handover_store::{EventStore, SeqRange};
use handover_testkit::PgCluster;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Set in the child's environment: the data directory of a child on sled (the other settings
/// have their own variables).
const CHILD_ENV: &str = "HANDOVER_CRASH_CHILD";
/// Set instead of [`CHILD_ENV`] for a child on PostgreSQL: the database URL.
const CHILD_DATABASE_ENV: &str = "HANDOVER_CRASH_CHILD_DATABASE";
/// Set (to anything) when the parent crashes the database under the child: a store error is
/// then expected, and the child sends the failed command again under the same command id.
const CHILD_OUTAGES_ENV: &str = "HANDOVER_CRASH_CHILD_OUTAGES";
const CHILD_SEED_ENV: &str = "HANDOVER_CRASH_CHILD_SEED";
const CHILD_ROUND_ENV: &str = "HANDOVER_CRASH_CHILD_ROUND";
const CHILD_DURABILITY_ENV: &str = "HANDOVER_CRASH_CHILD_DURABILITY";
/// A file listing the conversations the child continues, one id a line.
const CHILD_CONTINUE_ENV: &str = "HANDOVER_CRASH_CHILD_CONTINUE";
/// A file listing the commands the child sends again before anything else, one a line:
/// `<conversation> <token> <events> <command id> <kind>`.
const CHILD_RETRY_ENV: &str = "HANDOVER_CRASH_CHILD_RETRY";

/// Kill rounds of the default run on sled.
const DEFAULT_ROUNDS: u64 = 30;
/// Kill rounds of the default run of each PostgreSQL test, which also runs a server of its own
/// (and, crashing it, waits for its recovery every round): CI-sized on two cores.
const DEFAULT_PG_ROUNDS: u64 = 10;
/// Rounds that share one data directory (one database on PostgreSQL).
const ROUNDS_PER_DIR: u64 = 10;
/// Conversations a child continues from earlier rounds, at most.
const CONTINUED_MAX: usize = 24;
/// Tasks writing in the child, each over conversations of its own.
const WRITERS: u64 = 4;
/// A day in milliseconds: the deadlines of the child's rules, never reached during a run.
const DAY_MS: u64 = 24 * 60 * 60 * 1_000;
/// Conversations each writer keeps open at once.
const LIVE_PER_WRITER: usize = 5;
/// The AI agents of the child.
const AGENTS: [&str; 2] = ["crash-bot-1", "crash-bot-2"];
/// Longest the parent waits for the child's next acknowledgement before it calls it stalled.
const STALL: Duration = Duration::from_secs(60);
/// Longest a child runs if nobody kills it (the parent always does, long before).
const CHILD_LIFETIME_MAX: Duration = Duration::from_secs(300);
/// How long a child waits before it sends again a command that met a store error while the
/// parent crashed the database.
const OUTAGE_RETRY: Duration = Duration::from_millis(20);
/// The `application_name` of a child's PostgreSQL sessions, by which the parent finds them.
const CHILD_APPLICATION: &str = "handover_crash_child";
/// Longest the parent waits for a killed child's PostgreSQL sessions to end.
const SESSIONS_END_MAX: Duration = Duration::from_secs(60);

/// Where the log lives: the child starts the runtime on it, the parent checks it.
#[derive(Clone, Debug)]
enum Backend {
    /// A sled data directory.
    Sled(PathBuf),
    /// A PostgreSQL database, by URL.
    Postgres(String),
}

// ---------------------------------------------------------------------------------------------
// Tokens

/// The token of the message an AI reply answers: `... (re r3t1n17). [#r3a5]`.
fn answered_in(text: &str) -> Option<&str> {
    let start = text.find("(re ")? + 4;
    let len = text[start..].find(')')?;
    Some(&text[start..start + len])
}

/// The token inside a text: `... [#r3t1n17]`.
fn token_in(text: &str) -> Option<&str> {
    let start = text.find("[#")? + 2;
    let len = text[start..].find(']')?;
    Some(&text[start..start + len])
}

fn tagged(text: &str, token: &str) -> String {
    format!("{text} [#{token}]")
}

// ---------------------------------------------------------------------------------------------
// The child

/// Writes one line to the real stdout (not the test harness's capture) and flushes it, so the
/// line is in the pipe before the child goes on. A parent that is gone ends the child.
fn out(line: &str) {
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

/// Ends the child with a message on stderr, which the parent shows.
fn die(message: &str) -> ! {
    eprintln!("crash child: {message}");
    std::process::exit(3)
}

fn ack(conversation: ConversationId, receipt: &Receipt, token: &str) {
    for record in &receipt.events {
        out(&format!("ACK {conversation} {} {token}", record.seq));
    }
}

/// An AI agent whose every recorded action carries a token: it records a skill for every
/// other customer message and always replies. A rejected call (the assignment ended) records
/// nothing and is no failure, so the agent never asks the runtime to escalate.
struct TokenBot {
    round: u64,
    next: AtomicU64,
}

impl TokenBot {
    fn token(&self) -> String {
        format!(
            "r{}a{}",
            self.round,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

#[async_trait::async_trait]
impl AiAgentBehavior for TokenBot {
    async fn on_customer_message(
        &self,
        session: &AiSession,
        question: &MessageText,
    ) -> Result<(), AgentError> {
        let id = session.conversation_id();
        // The reply names the message it answers, so the parent can count repeated answers.
        let answers = token_in(question.as_str()).unwrap_or("-").to_owned();
        let token = self.token();
        if token.ends_with(['0', '2', '4', '6', '8']) {
            out(&format!("ATTEMPT {token} {id} 1 - ai"));
            if let Ok(receipt) = session
                .record_skill(Skill::new(
                    "lookup_hours",
                    tagged("store=main", &token),
                    Ok("9-17".into()),
                )?)
                .await
            {
                ack(id, &receipt, &token);
            }
        }
        let token = self.token();
        out(&format!("ATTEMPT {token} {id} 1 - ai"));
        if let Ok(receipt) = session
            .reply(MessageText::new(tagged(
                &format!("We are open from 9:00 to 17:00 (re {answers})."),
                &token,
            ))?)
            .await
        {
            ack(id, &receipt, &token);
        }
        Ok(())
    }
}

/// What a writer knows of one of its conversations.
struct Tracked {
    id: ConversationId,
    customer: CustomerId,
    /// Open and not closed yet; `None` before it is opened.
    status: Option<Status>,
    /// The customer raised a concern: the policy refuses handoffs.
    concerned: bool,
}

/// One command a writer may send.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// Open, for this customer.
    Open(CustomerId),
    /// The customer asks one of [`QUESTIONS`].
    Customer(usize),
    AskForHuman,
    Human,
    /// Hand off to one of [`AGENTS`].
    HandOff(usize),
    Reclaim,
    /// Close, by the customer (`true`) or the human.
    Close(bool),
}

impl Step {
    /// The step as one word, for `ATTEMPT` lines and retries.
    fn kind(&self) -> String {
        match self {
            Step::Open(customer) => format!("open:{customer}"),
            Step::Customer(question) => format!("customer:{question}"),
            Step::AskForHuman => "ask".to_owned(),
            Step::Human => "human".to_owned(),
            Step::HandOff(agent) => format!("handoff:{agent}"),
            Step::Reclaim => "reclaim".to_owned(),
            Step::Close(true) => "close:customer".to_owned(),
            Step::Close(false) => "close:human".to_owned(),
        }
    }

    fn parse(kind: &str) -> Option<Step> {
        let (name, arg) = kind.split_once(':').unwrap_or((kind, ""));
        Some(match (name, arg) {
            ("open", customer) => Step::Open(CustomerId::new(customer).ok()?),
            ("customer", question) => Step::Customer(question.parse().ok()?),
            ("ask", "") => Step::AskForHuman,
            ("human", "") => Step::Human,
            ("handoff", agent) => Step::HandOff(agent.parse().ok()?),
            ("reclaim", "") => Step::Reclaim,
            ("close", "customer") => Step::Close(true),
            ("close", "human") => Step::Close(false),
            _ => return None,
        })
    }
}

const QUESTIONS: [&str; 3] = [
    "What are your business hours?",
    "How long does delivery take?",
    "Which payment methods do you accept?",
];

fn choose(rng: &mut ChaCha8Rng, conversation: &Tracked) -> Step {
    let roll = rng.gen_range(0..100);
    match &conversation.status {
        None => Step::Open(conversation.customer.clone()),
        Some(Status::AiActive { .. }) => match roll {
            0..=44 => Step::Customer(rng.gen_range(0..QUESTIONS.len())),
            45..=64 => Step::AskForHuman,
            65..=94 => Step::Reclaim,
            _ => Step::Close(true),
        },
        Some(_) => match roll {
            0..=34 => Step::Customer(rng.gen_range(0..QUESTIONS.len())),
            35..=59 => Step::Human,
            60..=91 if !conversation.concerned => Step::HandOff(rng.gen_range(0..AGENTS.len())),
            60..=91 => Step::Human,
            _ => Step::Close(false),
        },
    }
}

/// A command sent again after a crash killed the process that first sent it.
struct Retry {
    command_id: CommandId,
    /// How many events the first attempt expected.
    events: usize,
}

/// Sends one command to a conversation with `execute_once`, printing its attempt (or retry)
/// and its acknowledgement; sends it again with the same command id while the runtime is
/// overloaded (nothing was recorded). Any other failure ends the child: the writer's model of
/// its conversations is exact, so a rejection is a fault.
async fn step(
    handover: &Handover,
    conversation: &mut Tracked,
    step: Step,
    token: &str,
    retry: Option<Retry>,
) -> Result<(), String> {
    let human = HumanId::new("ana").map_err(|e| e.to_string())?;
    let customer = Participant::Customer(conversation.customer.clone());
    let reason = |what: &str| Some(Reason::new(tagged(what, token)).expect("a valid reason"));
    let text = |what: &str| MessageText::new(tagged(what, token)).expect("a valid text");
    let asks_for_human = matches!(step, Step::AskForHuman);
    let kind = step.kind();
    let (command, events) = match step {
        Step::Open(customer) => (
            ConversationCommand::Open {
                customer,
                channel: Channel::new(tagged("chat", token)).expect("a valid channel"),
                human: Some(human),
            },
            // Started, and assigned to the human.
            2,
        ),
        Step::Customer(question) => (
            ConversationCommand::PostMessage {
                by: customer,
                text: text(QUESTIONS[question]),
            },
            1,
        ),
        Step::AskForHuman => (
            ConversationCommand::PostMessage {
                by: customer,
                text: text("I want to talk to a human please."),
            },
            // The policy escalates in the same append while an AI agent is active: the
            // escalation, the notice that the AI left, the wait and the notice to wait.
            if matches!(conversation.status, Some(Status::AiActive { .. })) {
                5
            } else {
                1
            },
        ),
        Step::Human => (
            ConversationCommand::PostMessage {
                by: Participant::Human(human),
                text: text("Let me check that for you."),
            },
            1,
        ),
        Step::HandOff(agent) => (
            ConversationCommand::HandOffToAi {
                by: human,
                agent_id: AiAgentId::new(AGENTS[agent]).expect("a valid agent id"),
                reason: reason("simple question"),
            },
            // The handoff and the notice that the AI joined.
            2,
        ),
        Step::Reclaim => (
            ConversationCommand::Reclaim {
                by: human,
                reason: reason("personal follow-up"),
            },
            // The reclaim, the notices that the AI left and that a person joined.
            3,
        ),
        Step::Close(by_customer) => (
            ConversationCommand::Close {
                by: if by_customer {
                    customer
                } else {
                    Participant::Human(human)
                },
                reason: reason("resolved"),
            },
            1,
        ),
    };
    let id = conversation.id;
    let (command_id, events) = match retry {
        // The first attempt's count: if it was recorded, the state has moved on since.
        Some(retry) => {
            let events = retry.events;
            out(&format!(
                "RETRY {token} {id} {events} {} {kind}",
                retry.command_id
            ));
            (retry.command_id, events)
        }
        None => {
            let command_id = CommandId::new();
            out(&format!(
                "ATTEMPT {token} {id} {events} {command_id} {kind}"
            ));
            (command_id, events)
        }
    };
    let mut failed = false;
    let receipt = loop {
        match handover.execute_once(id, command_id, command.clone()).await {
            Ok(receipt) => break receipt,
            Err(Error::Overloaded) => tokio::time::sleep(Duration::from_millis(5)).await,
            // The database crashed under the command: its outcome is unknown, and the same
            // command id tells once the database is back (answered from the log if recorded).
            Err(Error::Store(_)) if outages_expected() => {
                if !failed {
                    out(&format!("STORE_ERROR {token}"));
                    failed = true;
                }
                tokio::time::sleep(OUTAGE_RETRY).await;
            }
            Err(error) => return Err(format!("{token} on {id}: {error}")),
        }
    };
    if receipt.events.len() != events {
        return Err(format!(
            "{token} on {id}: expected {events} events, the receipt holds {}",
            receipt.events.len()
        ));
    }
    ack(id, &receipt, token);
    conversation.status = Some(receipt.status.clone());
    conversation.concerned |= asks_for_human;
    Ok(())
}

/// One writer: keeps a few conversations going, replacing each closed one by a new one.
async fn writer(
    handover: Handover,
    round: u64,
    task: u64,
    seed: u64,
    mut conversations: Vec<Tracked>,
) -> Result<(), String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (task + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut next = 0u64;
    loop {
        conversations.retain(|c| !matches!(c.status, Some(Status::Closed)));
        while conversations.len() < LIVE_PER_WRITER {
            let id = ConversationId::from_uuid(uuid::Uuid::now_v7());
            conversations.push(Tracked {
                id,
                customer: CustomerId::new(format!("customer-r{round}t{task}n{next}"))
                    .expect("a valid customer id"),
                status: None,
                concerned: false,
            });
        }
        let index = rng.gen_range(0..conversations.len());
        let conversation = &mut conversations[index];
        let chosen = choose(&mut rng, conversation);
        let token = format!("r{round}t{task}n{next}");
        next += 1;
        step(&handover, conversation, chosen, &token, None).await?;
    }
}

/// Sends a command of the retry file again; returns its conversation, as tracked after it.
async fn retry(handover: &Handover, line: &str) -> Result<Tracked, String> {
    let bad = || format!("bad retry line {line:?}");
    let [id, token, events, command_id, kind] = line.split(' ').collect::<Vec<_>>()[..] else {
        return Err(bad());
    };
    let id: ConversationId = id.parse().map_err(|_| bad())?;
    let step_again = Step::parse(kind).ok_or_else(bad)?;
    let mut conversation = match &step_again {
        Step::Open(customer) => Tracked {
            id,
            customer: customer.clone(),
            status: None,
            concerned: false,
        },
        _ => {
            let view = view(handover, id)
                .await
                .map_err(|e| format!("retry on {id}: {e}"))?;
            Tracked {
                id,
                customer: view.customer.clone(),
                status: Some(view.status.clone()),
                concerned: !view.concerns.is_empty(),
            }
        }
    };
    let again = Retry {
        command_id: command_id.parse().map_err(|_| bad())?,
        events: events.parse().map_err(|_| bad())?,
    };
    step(handover, &mut conversation, step_again, token, Some(again)).await?;
    Ok(conversation)
}

/// Whether the parent crashes the database under this child ([`CHILD_OUTAGES_ENV`]).
fn outages_expected() -> bool {
    std::env::var_os(CHILD_OUTAGES_ENV).is_some()
}

/// A conversation's view; while the database is down (when the parent crashes it), asks
/// again until it is back.
async fn view(handover: &Handover, id: ConversationId) -> Result<ConversationView, Error> {
    loop {
        match handover.conversation(id).await {
            Err(Error::Store(_)) if outages_expected() => {
                tokio::time::sleep(OUTAGE_RETRY).await;
            }
            other => return other,
        }
    }
}

/// The human every writer acts as: a supervisor, registered and signed in by the first child
/// (or found already so).
async fn start_human(handover: &Handover) -> Result<(), String> {
    let id = HumanId::new("ana").map_err(|e| e.to_string())?;
    let name = AgentName::new("Ana").map_err(|e| e.to_string())?;
    match handover
        .register_human(NewHuman::supervisor(id.clone(), name))
        .await
    {
        Ok(()) | Err(Error::Rejected(Rejection::HumanAlreadyRegistered { .. })) => {}
        Err(error) => return Err(format!("register ana: {error}")),
    }
    match handover.set_presence(id, Presence::Available).await {
        Ok(()) | Err(Error::Rejected(Rejection::PresenceUnchanged { .. })) => {}
        Err(error) => return Err(format!("sign ana in: {error}")),
    }
    Ok(())
}

async fn start_agents(handover: &Handover, round: u64) -> Result<(), String> {
    let bot = Arc::new(TokenBot {
        round,
        next: AtomicU64::new(0),
    });
    for name in AGENTS {
        let id = AiAgentId::new(name).map_err(|e| e.to_string())?;
        let profile = AiAgentProfile {
            id: id.clone(),
            name: AgentName::new(format!("Crash bot {name}")).map_err(|e| e.to_string())?,
            specialties: vec![Specialty::new("faq").map_err(|e| e.to_string())?],
        };
        match handover.register_ai_agent(profile).await {
            Ok(()) | Err(Error::Rejected(Rejection::AiAgentAlreadyRegistered { .. })) => {}
            Err(error) => return Err(format!("register {name}: {error}")),
        }
        out(&format!("AGENT {name} registered"));
        match handover.activate_ai_agent(id.clone()).await {
            Ok(()) | Err(Error::Rejected(Rejection::AiAgentAlreadyActive { .. })) => {}
            Err(error) => return Err(format!("activate {name}: {error}")),
        }
        out(&format!("AGENT {name} activated"));
        handover
            .attach_ai_agent(id.clone(), Arc::clone(&bot) as Arc<dyn AiAgentBehavior>)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| die(&format!("{name} is not set")))
}

async fn child_main(backend: Backend) -> Result<(), String> {
    let seed: u64 = env(CHILD_SEED_ENV).parse().map_err(|_| "bad seed")?;
    let round: u64 = env(CHILD_ROUND_ENV).parse().map_err(|_| "bad round")?;
    let durability = match env(CHILD_DURABILITY_ENV).as_str() {
        "durable" => Durability::Durable,
        "process-crash" => Durability::ProcessCrash,
        other => return Err(format!("unknown durability {other}")),
    };
    let continued = std::fs::read_to_string(env(CHILD_CONTINUE_ENV)).map_err(|e| e.to_string())?;
    let retries = std::fs::read_to_string(env(CHILD_RETRY_ENV)).map_err(|e| e.to_string())?;
    // No deadline passes during a run (a directory lives through many rounds): every event in
    // the log then comes from a writer's command or an AI agent's reply.
    let mut rules = Settings::default();
    rules.default_sla = Sla {
        warning_ms: DAY_MS,
        breach_ms: 2 * DAY_MS,
    };
    rules.ai_reply_deadline_ms = DAY_MS;
    let settings = RuntimeSettings::default()
        // Routing off: a conversation escalated to humans waits, and only writers assign.
        .router(Arc::new(NoRouter))
        .rules(rules)
        // The writers hand a conversation off and take it back many times: the default
        // policy's loop guard would refuse them, and this test is about durability.
        .escalation_policy(
            handover::Rules::parse(
                r#"
                name = "crash-writers"
                [[rule]]
                name = "guidance-concerns"
                kind = "concerns_block_handoff"
                concerns = ["human_requested", "complaint", "negotiation", "sensitive"]
                for_customer_messages = 5
                for_minutes = 30
                [[rule]]
                name = "asked-for-a-person"
                kind = "ask_for_person"
                "#,
            )
            .map_err(|e| format!("policy: {e}"))?,
        )
        // Short, so that conversations are also rebuilt after passivation, not only at start.
        .passivate_after(Some(Duration::from_millis(300)));
    let handover = match backend {
        Backend::Sled(dir) => {
            let mut config = Config::new(dir).durability(durability);
            config.runtime = settings;
            Handover::start(config).await
        }
        // A kill during start-up lands in the connection, the migration (the first child of a
        // database creates the tables) or the projection's reads.
        Backend::Postgres(url) => {
            let mut options = PostgresOptions::default();
            options.durability = durability;
            let store = PostgresStore::connect(&url, options)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            Handover::start_with_store(Arc::new(store), settings).await
        }
    }
    .map_err(|e| format!("start: {e}"))?;
    out("READY");
    start_human(&handover).await?;
    start_agents(&handover, round).await?;

    let mut owned: Vec<Vec<Tracked>> = (0..WRITERS).map(|_| Vec::new()).collect();
    // The commands a crash left unacknowledged, sent again with their command ids before any
    // other command of their conversations: each is recorded once, whether the first attempt
    // was or not.
    for (i, line) in retries.lines().enumerate() {
        let conversation = retry(&handover, line).await?;
        if !matches!(conversation.status, Some(Status::Closed)) {
            owned[i % WRITERS as usize].push(conversation);
        }
    }
    for (i, line) in continued.lines().enumerate() {
        let id: ConversationId = line.parse().map_err(|_| format!("bad id {line}"))?;
        let view = view(&handover, id)
            .await
            .map_err(|e| format!("continue {id}: {e}"))?;
        if view.closed {
            return Err(format!(
                "continue {id}: not open but {}",
                view.status.label()
            ));
        }
        owned[i % WRITERS as usize].push(Tracked {
            id,
            customer: view.customer.clone(),
            status: Some(view.status.clone()),
            concerned: !view.concerns.is_empty(),
        });
    }
    let mut writers = tokio::task::JoinSet::new();
    for (task, conversations) in (0..WRITERS).zip(owned) {
        writers.spawn(writer(handover.clone(), round, task, seed, conversations));
    }
    tokio::select! {
        done = writers.join_next() => match done {
            Some(Ok(Err(error))) => Err(error),
            other => Err(format!("a writer ended: {other:?}")),
        },
        () = tokio::time::sleep(CHILD_LIFETIME_MAX) => {
            out("DONE");
            Ok(())
        }
    }
}

/// The child's entry point: a no-op unless the parent test runs this executable as its child.
#[test]
fn crash_child() {
    let backend = match (std::env::var(CHILD_ENV), std::env::var(CHILD_DATABASE_ENV)) {
        (Ok(dir), _) => Backend::Sled(PathBuf::from(dir)),
        (_, Ok(url)) => Backend::Postgres(url),
        _ => return,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(&e.to_string()));
    if let Err(error) = runtime.block_on(child_main(backend)) {
        die(&error);
    }
    std::process::exit(0);
}

// ---------------------------------------------------------------------------------------------
// The parent

/// An `ATTEMPT` or `RETRY` line.
struct AttemptLine {
    token: String,
    conversation: ConversationId,
    events: usize,
    /// `<command id> <kind>` of a writer's command; `None` for an AI agent's.
    command: Option<String>,
    retry: bool,
}

/// What the child said in one round.
#[derive(Default)]
struct Transcript {
    attempts: Vec<AttemptLine>,
    /// `ACK` lines: conversation, seq, token.
    acks: Vec<(ConversationId, u64, String)>,
    /// `AGENT` lines: agent, what.
    agents: Vec<(String, String)>,
    /// `STORE_ERROR` lines: commands that met a store error while the database was down.
    store_errors: u64,
    /// `ACK` lines after the database came back from a crash the child lived through.
    acks_after_restart: u64,
}

impl Transcript {
    fn read(&mut self, line: &str) -> Result<(), String> {
        let words: Vec<&str> = line.split(' ').collect();
        let bad = || format!("unreadable line from the child: {line:?}");
        match words.as_slice() {
            [what @ ("ATTEMPT" | "RETRY"), token, id, events, command_id, kind] => {
                self.attempts.push(AttemptLine {
                    token: (*token).to_owned(),
                    conversation: id.parse().map_err(|_| bad())?,
                    events: events.parse().map_err(|_| bad())?,
                    command: (*command_id != "-").then(|| format!("{command_id} {kind}")),
                    retry: *what == "RETRY",
                })
            }
            ["ACK", id, seq, token] => self.acks.push((
                id.parse().map_err(|_| bad())?,
                seq.parse().map_err(|_| bad())?,
                (*token).to_owned(),
            )),
            ["AGENT", agent, what] => self.agents.push(((*agent).to_owned(), (*what).to_owned())),
            ["STORE_ERROR", _] => self.store_errors += 1,
            // READY, and the test harness's own lines.
            _ => {}
        }
        Ok(())
    }
}

/// When the parent kills the child.
#[derive(Clone, Copy, Debug)]
struct KillPlan {
    /// After this many `ACK` lines (0: during start-up).
    after_acks: usize,
    /// Then after this long.
    sleep: Duration,
    /// What happens to the database at `after_acks` (PostgreSQL only), before the kill.
    outage: Option<Outage>,
}

/// A crash of the database server under the child (`pg_ctl stop -m immediate`).
#[derive(Clone, Copy, Debug)]
enum Outage {
    /// The database crashes, the child is killed `sleep` later (its appends failing
    /// meanwhile), then the database starts again.
    Crash,
    /// The database crashes and stays down for `down_for`, then starts again; the child lives
    /// on, and is killed `sleep` after it acknowledged `more_acks` more events.
    Survive {
        down_for: Duration,
        more_acks: usize,
    },
}

/// Reads the child's lines into `transcript` until `count` more `ACK` lines; `Err` says why it
/// stopped short (the child died or stalled).
fn wait_for_acks(
    count: usize,
    lines: &mpsc::Receiver<String>,
    child: &mut std::process::Child,
    transcript: &mut Transcript,
) -> Result<Result<(), String>, String> {
    let mut acks_seen = 0;
    let mut last_ack = Instant::now();
    while acks_seen < count {
        match lines.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                if line.starts_with("ACK ") {
                    last_ack = Instant::now();
                    acks_seen += 1;
                }
                transcript.read(&line)?;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = child.try_wait() {
                    return Ok(Err(format!("the child exited by itself ({status})")));
                }
                if last_ack.elapsed() > STALL {
                    return Ok(Err(format!(
                        "no acknowledgement for {STALL:?} ({acks_seen} of {count} so far): stalled"
                    )));
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Ok(Err("the child closed its stdout".to_owned()));
            }
        }
    }
    Ok(Ok(()))
}

/// Runs one child until the kill; returns its transcript. `cluster` serves the database of
/// `backend` when the plan crashes it.
fn run_child(
    work: &Path,
    backend: &Backend,
    cluster: Option<&PgCluster>,
    round: u64,
    seed: u64,
    durability: Durability,
    plan: KillPlan,
) -> Result<Transcript, String> {
    let stderr_path = work.join(format!("child-{round}.stderr"));
    let stderr = std::fs::File::create(&stderr_path).map_err(|e| e.to_string())?;
    let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
    command.args(["--exact", "crash_child", "--nocapture", "--test-threads=1"]);
    match backend {
        Backend::Sled(data) => command.env(CHILD_ENV, data),
        Backend::Postgres(url) => command.env(
            CHILD_DATABASE_ENV,
            format!("{url}?application_name={CHILD_APPLICATION}"),
        ),
    };
    if plan.outage.is_some() {
        command.env(CHILD_OUTAGES_ENV, "1");
    }
    let mut child = command
        .env(CHILD_SEED_ENV, seed.to_string())
        .env(CHILD_ROUND_ENV, round.to_string())
        .env(CHILD_DURABILITY_ENV, durability.name())
        .env(CHILD_CONTINUE_ENV, work.join("continue.txt"))
        .env(CHILD_RETRY_ENV, work.join("retry.txt"))
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start the child: {e}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (lines_tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut transcript = Transcript::default();
    let started = Instant::now();
    let mut failure = None;
    if plan.after_acks == 0 {
        std::thread::sleep(plan.sleep);
    } else {
        if let Err(why) = wait_for_acks(plan.after_acks, &lines, &mut child, &mut transcript)? {
            failure = Some(why);
        }
        let cluster = || cluster.expect("a database outage needs the cluster");
        match plan.outage {
            _ if failure.is_some() => {}
            None => std::thread::sleep(plan.sleep),
            // The server dies with appends in flight; the child's retries fail until it is
            // killed, and the next round finds out what was committed.
            Some(Outage::Crash) => {
                cluster().stop_immediate();
                std::thread::sleep(plan.sleep);
                let _ = child.kill();
                cluster().start_again();
            }
            Some(Outage::Survive {
                down_for,
                more_acks,
            }) => {
                cluster().stop_immediate();
                std::thread::sleep(down_for);
                cluster().start_again();
                let before = transcript.acks.len();
                match wait_for_acks(more_acks, &lines, &mut child, &mut transcript)? {
                    Ok(()) => std::thread::sleep(plan.sleep),
                    Err(why) => {
                        failure = Some(format!("after the database came back: {why}"));
                    }
                }
                transcript.acks_after_restart = (transcript.acks.len() - before) as u64;
            }
        }
    }
    // SIGKILL: no destructor, no flush, no clean close of the store.
    let _ = child.kill();
    let status = child.wait().map_err(|e| e.to_string())?;
    // Everything the child wrote before it died is still in the pipe.
    for line in lines.iter() {
        transcript.read(&line)?;
    }
    let _ = reader.join();
    if failure.is_none() && status.code().is_some() {
        failure = Some(format!("the child exited by itself ({status})"));
    }
    if let Some(failure) = failure {
        let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        return Err(format!(
            "{failure} after {:?}; its stderr:\n{stderr}",
            started.elapsed()
        ));
    }
    Ok(transcript)
}

/// One attempt, as the child announced it.
struct Attempt {
    conversation: ConversationId,
    events: usize,
    /// The round of its last attempt or retry.
    round: u64,
    /// `<command id> <kind>` of a writer's command, which a later round can send again.
    command: Option<String>,
}

/// Everything the children said on one data directory, and what earlier checks saw.
#[derive(Default)]
struct History {
    attempts: HashMap<String, Attempt>,
    /// Acknowledged events: (conversation, seq) -> token.
    acked: HashMap<(ConversationId, u64), String>,
    /// Attempts that got at least one `ACK` line.
    acked_tokens: HashSet<String>,
    /// AI-agent commands acknowledged: (agent, "registered" | "activated").
    agents: HashSet<(String, String)>,
    /// What the previous check read: (conversation, seq) -> token.
    seen: HashMap<(ConversationId, u64), String>,
    /// Attempts found absent after the crash of their round (and not sent again since).
    dead: HashSet<String>,
    /// Attempts found present without an acknowledgement.
    recovered: HashSet<String>,
    /// Retries sent, and how many of them the previous check had found recorded already.
    retries: u64,
    retries_of_recorded: u64,
}

impl History {
    fn absorb(&mut self, round: u64, transcript: Transcript) -> Result<(), String> {
        let seen: HashSet<&String> = self.seen.values().collect();
        for line in transcript.attempts {
            let token = line.token;
            if line.retry {
                let Some(attempt) = self.attempts.get_mut(&token) else {
                    return Err(format!("{token} retried but never attempted"));
                };
                if attempt.command != line.command || attempt.conversation != line.conversation {
                    return Err(format!("{token} retried as another command"));
                }
                attempt.round = round;
                self.dead.remove(&token);
                self.retries += 1;
                self.retries_of_recorded += u64::from(seen.contains(&token));
                continue;
            }
            let attempt = Attempt {
                conversation: line.conversation,
                events: line.events,
                round,
                command: line.command,
            };
            if self.attempts.insert(token.clone(), attempt).is_some() {
                return Err(format!("token {token} attempted twice"));
            }
        }
        for (conversation, seq, token) in transcript.acks {
            self.acked_tokens.insert(token.clone());
            if let Some(other) = self.acked.insert((conversation, seq), token.clone()) {
                // A retry is answered with the seqs its first attempt got.
                if other != token {
                    return Err(format!(
                        "{conversation} seq {seq} acknowledged twice: to {other} and to {token}"
                    ));
                }
            }
        }
        self.agents.extend(transcript.agents);
        Ok(())
    }

    /// The writers' commands not acknowledged yet, as lines of the retry file.
    fn pending(&self) -> Vec<(ConversationId, String)> {
        self.attempts
            .iter()
            .filter(|(token, _)| !self.acked_tokens.contains(*token))
            .filter_map(|(token, attempt)| {
                let command = attempt.command.as_ref()?;
                let id = attempt.conversation;
                Some((id, format!("{id} {token} {} {command}", attempt.events)))
            })
            .collect()
    }
}

/// What one check found.
#[derive(Debug, Default)]
struct Check {
    events: u64,
    lost: Vec<String>,
    vanished: Vec<String>,
    unexpected: Vec<String>,
    partial: Vec<String>,
    /// Attempts present without an acknowledgement.
    recovered: Vec<String>,
    /// AI replies to a customer message an AI reply of the same conversation had answered
    /// already (a behaviour of the runtime, reported, not a fault of the log).
    answered_again: Vec<String>,
    /// Conversations open (not closed) in the log.
    open: Vec<ConversationId>,
    /// Sessions of the killed child were still open on the database when the check began.
    sessions_outlived_child: bool,
    /// Every conversation event read: (conversation, seq) -> token.
    present: HashMap<(ConversationId, u64), String>,
}

impl Check {
    fn faults(&self) -> usize {
        self.lost.len() + self.vanished.len() + self.unexpected.len() + self.partial.len()
    }
}

/// The token an event carries; an escalation by the policy carries its message's, which the
/// caller resolves.
fn event_token(event: &ConversationEvent) -> Option<&str> {
    match event {
        ConversationEvent::Opened { channel, .. } | ConversationEvent::Started { channel, .. } => {
            token_in(channel.as_str())
        }
        ConversationEvent::MessagePosted { text, .. } => token_in(text.as_str()),
        ConversationEvent::AiActionRecorded { skill, .. } => token_in(skill.input.as_str()),
        ConversationEvent::HandedOffToAi { reason, .. }
        | ConversationEvent::Reclaimed { reason, .. }
        | ConversationEvent::Closed { reason, .. } => {
            reason.as_ref().and_then(|r| token_in(r.as_str()))
        }
        _ => None,
    }
}

/// Waits until the killed child's sessions are gone from the database. The server outlives
/// its client: a group commit the child sent before its SIGKILL still runs to its end, and may
/// commit after the child died. Until then a check could miss events that appear later (and
/// take them for resurrected). Returns whether any was still open.
fn wait_for_child_sessions_to_end(url: &str) -> Result<bool, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|e| format!("connecting to look for the child's sessions: {e}"))?;
        let connection = tokio::spawn(connection);
        let started = Instant::now();
        let mut outlived = false;
        loop {
            let sessions: i64 = client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                    &[&CHILD_APPLICATION],
                )
                .await
                .map_err(|e| format!("looking for the child's sessions: {e}"))?
                .get(0);
            if sessions == 0 {
                break;
            }
            outlived = true;
            if started.elapsed() > SESSIONS_END_MAX {
                return Err(format!(
                    "{sessions} sessions of the killed child still open after {SESSIONS_END_MAX:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(client);
        let _ = connection.await;
        Ok(outlived)
    })
}

/// Reads the whole log, in position order: on sled through `read_all`; on PostgreSQL from one
/// snapshot that verifies every record's checksum and place, the density of positions, each
/// stream's seqs from 1 and its hash chain (damage fails the read), cross-checked against
/// `read_all`.
fn read_log(
    runtime: &tokio::runtime::Runtime,
    backend: &Backend,
) -> Result<(Box<dyn EventStore>, Vec<RecordedEvent>), String> {
    let read_all = |store: &dyn EventStore| -> Result<Vec<RecordedEvent>, String> {
        let mut records = Vec::new();
        let mut from = 1;
        loop {
            let batch = runtime
                .block_on(store.read_all(from, 10_000))
                .map_err(|e| format!("read_all from {from}: {e}"))?;
            let Some(last) = batch.last() else {
                return Ok(records);
            };
            from = last.position + 1;
            records.extend(batch);
        }
    };
    match backend {
        Backend::Sled(data) => {
            let store = SledStore::open(data, SledOptions::default())
                .map_err(|e| format!("the store does not open after the crash: {e}"))?;
            let records = read_all(&store)?;
            Ok((Box::new(store), records))
        }
        Backend::Postgres(url) => {
            let store = runtime
                .block_on(PostgresStore::connect(url, PostgresOptions::default()))
                .map_err(|e| format!("the store does not connect after the crash: {e}"))?;
            let records = runtime
                .block_on(store.snapshot())
                .map_err(|e| format!("the log does not verify: {e}"))?;
            let paged = read_all(&store)?;
            let places = |records: &[RecordedEvent]| -> Vec<(u64, StreamId, u64)> {
                records
                    .iter()
                    .map(|r| (r.position, r.stream.clone(), r.seq))
                    .collect()
            };
            if places(&paged) != places(&records) {
                return Err(format!(
                    "read_all reads {} records, the snapshot {}, or not the same",
                    paged.len(),
                    records.len()
                ));
            }
            Ok((Box::new(store), records))
        }
    }
}

/// Reads the whole log of `backend` and checks it against `history`.
fn check_log(backend: &Backend, history: &History) -> Result<Check, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut check = Check::default();
    if let Backend::Postgres(url) = backend {
        check.sessions_outlived_child = wait_for_child_sessions_to_end(url)?;
    }
    let (store, records) = read_log(&runtime, backend)?;
    let mut streams: HashMap<StreamId, Vec<RecordedEvent>> = HashMap::new();
    let mut order = Vec::new();
    for record in records {
        check.events += 1;
        let stream = streams.entry(record.stream.clone()).or_default();
        let expected = stream.len() as u64 + 1;
        if record.seq != expected {
            return Err(format!(
                "{} continues with seq {} after seq {} in the global order",
                record.stream.key_label(),
                record.seq,
                expected - 1
            ));
        }
        if stream.is_empty() {
            order.push(record.stream.clone());
        }
        stream.push(record);
    }
    for stream in &order {
        let read = runtime
            .block_on(store.read_stream(stream, SeqRange::ALL))
            .map_err(|e| format!("read_stream {}: {e}", stream.key_label()))?;
        let seqs: Vec<u64> = read.iter().map(|r| r.seq).collect();
        let expected: Vec<u64> = (1..=streams[stream].len() as u64).collect();
        if seqs != expected {
            return Err(format!(
                "{} reads seqs {seqs:?} but the global order holds {}",
                stream.key_label(),
                expected.len()
            ));
        }
    }
    drop(store);

    let mut by_token: HashMap<String, Vec<u64>> = HashMap::new();
    let mut agents_present = HashSet::new();
    for stream in &order {
        let records = &streams[stream];
        match stream {
            StreamId::AiAgent(agent) => {
                for record in records {
                    let what = match (&record.event, record.seq) {
                        (Event::AiAgent(AiAgentEvent::Registered { .. }), 1) => "registered",
                        (Event::AiAgent(AiAgentEvent::Activated { .. }), 2) => "activated",
                        _ => {
                            check.unexpected.push(format!(
                                "{agent} seq {}: {}",
                                record.seq,
                                record.event.type_name()
                            ));
                            continue;
                        }
                    };
                    if !AGENTS.contains(&agent.as_str()) {
                        check.unexpected.push(format!("agent {agent}"));
                    }
                    agents_present.insert((agent.to_string(), what.to_owned()));
                }
            }
            StreamId::Human(human) => {
                // Only `ana`'s registration and sign-in, each once.
                for record in records {
                    let expected = matches!(
                        (&record.event, record.seq),
                        (Event::Human(HumanEvent::Registered { .. }), 1)
                            | (
                                Event::Human(HumanEvent::PresenceChanged {
                                    presence: Presence::Available,
                                    ..
                                }),
                                2,
                            )
                    );
                    if !expected || human.as_str() != "ana" {
                        check.unexpected.push(format!(
                            "human {human} seq {}: {}",
                            record.seq,
                            record.event.type_name()
                        ));
                    }
                }
            }
            StreamId::Conversation(id) => {
                let mut token: Option<String> = None;
                let mut previous_asked = false;
                let mut previous_customer = false;
                // Question token -> the token of the reply that first answered it.
                let mut answered: HashMap<&str, &str> = HashMap::new();
                for record in records {
                    if let Event::Conversation(ConversationEvent::MessagePosted {
                        author: Author::Ai(_),
                        text,
                        ..
                    }) = &record.event
                    {
                        let question = answered_in(text.as_str()).unwrap_or("-");
                        let reply = token_in(text.as_str()).unwrap_or("-");
                        if let Some(first) = answered.insert(question, reply) {
                            check.answered_again.push(format!(
                                "{id} seq {}: {reply} answers {question}, which {first} answered",
                                record.seq
                            ));
                            answered.insert(question, first);
                        }
                    }
                    let Event::Conversation(event) = &record.event else {
                        check
                            .unexpected
                            .push(format!("{id} seq {}: not a conversation event", record.seq));
                        continue;
                    };
                    token = match event {
                        ConversationEvent::EscalatedToHuman {
                            cause: EscalationCause::CustomerAskedForHuman,
                            ..
                        } if previous_asked => token.take(),
                        // A rule's escalation is recorded with the customer's message that
                        // fired it, by the same command.
                        ConversationEvent::EscalatedByRule { .. } if previous_customer => {
                            token.take()
                        }
                        // Recorded in the same append as the event before them, by the same
                        // command: the assignment after the start, the notices of a handoff, a
                        // reclaim or an escalation, the wait after an escalation.
                        ConversationEvent::HumanAssigned { .. }
                        | ConversationEvent::CustomerNotice { .. }
                        | ConversationEvent::AwaitingHuman { .. } => token.take(),
                        other => event_token(other).map(str::to_owned),
                    };
                    previous_asked = matches!(
                        event,
                        ConversationEvent::MessagePosted { author: Author::Customer(_), concerns, .. }
                            if concerns.contains(&Concern::HumanRequested)
                    );
                    previous_customer = matches!(
                        event,
                        ConversationEvent::MessagePosted {
                            author: Author::Customer(_),
                            ..
                        }
                    );
                    let Some(token) = &token else {
                        check.unexpected.push(format!(
                            "{id} seq {}: {} without a token",
                            record.seq,
                            event.type_name()
                        ));
                        continue;
                    };
                    match history.attempts.get(token) {
                        None => check.unexpected.push(format!(
                            "{id} seq {}: {token} was never attempted",
                            record.seq
                        )),
                        Some(attempt) if attempt.conversation != *id => {
                            check.unexpected.push(format!(
                                "{id} seq {}: {token} was attempted on {}",
                                record.seq, attempt.conversation
                            ))
                        }
                        Some(_) if history.dead.contains(token) => check.unexpected.push(format!(
                            "{id} seq {}: {token} was absent after its round's crash (resurrected)",
                            record.seq
                        )),
                        Some(_) => {}
                    }
                    check.present.insert((*id, record.seq), token.clone());
                    by_token.entry(token.clone()).or_default().push(record.seq);
                }
                if !matches!(
                    records.last().map(|r| &r.event),
                    Some(Event::Conversation(ConversationEvent::Closed { .. }))
                ) {
                    check.open.push(*id);
                }
            }
        }
    }

    let present = &check.present;
    for ((id, seq), token) in &history.acked {
        if present.get(&(*id, *seq)) != Some(token) {
            let found = present.get(&(*id, *seq)).map_or("nothing", String::as_str);
            check.lost.push(format!(
                "{id} seq {seq}: acknowledged {token}, found {found}"
            ));
        }
    }
    for ((id, seq), token) in &history.seen {
        if present.get(&(*id, *seq)) != Some(token) {
            check.vanished.push(format!("{id} seq {seq}: {token}"));
        }
    }
    for (agent, what) in &history.agents {
        if !agents_present.contains(&(agent.clone(), what.clone())) {
            check.lost.push(format!("agent {agent} {what}"));
        }
    }
    for (token, seqs) in &by_token {
        let Some(attempt) = history.attempts.get(token) else {
            continue;
        };
        let contiguous = seqs.windows(2).all(|w| w[1] == w[0] + 1);
        if seqs.len() != attempt.events || !contiguous {
            check.partial.push(format!(
                "{token} on {}: {} of {} events, at seqs {seqs:?}",
                attempt.conversation,
                seqs.len(),
                attempt.events
            ));
        }
        if !history.acked_tokens.contains(token) {
            check.recovered.push(token.clone());
        }
    }

    // On PostgreSQL the snapshot verified the log as it read it.
    if let Backend::Sled(data) = backend {
        match handover_audit::verify_dir(data) {
            Ok(handover_audit::VerifyReport::Sound { events, .. }) if events == check.events => {}
            Ok(handover_audit::VerifyReport::Sound { events, .. }) => {
                return Err(format!(
                    "the audit counts {events} events, the store read {}",
                    check.events
                ))
            }
            Ok(handover_audit::VerifyReport::Faulty(fault)) => {
                return Err(format!("the audit finds the log faulty: {fault}"))
            }
            Err(error) => return Err(format!("the audit cannot verify: {error}")),
        }
    }
    Ok(check)
}

trait KeyLabel {
    fn key_label(&self) -> String;
}

impl KeyLabel for StreamId {
    fn key_label(&self) -> String {
        match self {
            StreamId::AiAgent(agent) => format!("agent {agent}"),
            StreamId::Conversation(id) => format!("conversation {id}"),
            StreamId::Human(human) => format!("human {human}"),
        }
    }
}

/// Per-run totals, printed at the end.
#[derive(Debug, Default)]
struct Totals {
    rounds: u64,
    startup_kills: u64,
    durable_rounds: u64,
    process_crash_rounds: u64,
    attempts: u64,
    acknowledged: u64,
    lost: u64,
    vanished: u64,
    unexpected: u64,
    partial: u64,
    recovered: u64,
    retries: u64,
    retries_of_recorded: u64,
    answered_again: u64,
    events: u64,
    /// Database crashes after which the child was killed with the database still down.
    database_crashes: u64,
    /// Database crashes the child lived through, and what it acknowledged after them.
    outages_survived: u64,
    acks_after_restart: u64,
    /// Writer commands that met a store error (sent again under the same command id).
    store_errors: u64,
    /// Rounds whose killed child still had sessions open on the database, awaited.
    sessions_outlived_child: u64,
}

/// `seed`, from `HANDOVER_CRASH_SEED` or the clock.
fn run_seed() -> u64 {
    std::env::var("HANDOVER_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        })
}

/// What a test crashes, and where the log lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Run {
    /// The node (the child), on sled.
    Sled,
    /// The node, on PostgreSQL.
    PostgresNode,
    /// The database server under the node, then the node.
    PostgresDatabase,
}

impl Run {
    fn label(self) -> &'static str {
        match self {
            Run::Sled => "crash harness",
            Run::PostgresNode => "crash harness (PostgreSQL, node killed)",
            Run::PostgresDatabase => "crash harness (PostgreSQL, database crashed)",
        }
    }

    fn rounds(self) -> u64 {
        let (variable, default) = match self {
            Run::Sled => ("HANDOVER_CRASH_ROUNDS", DEFAULT_ROUNDS),
            _ => ("HANDOVER_CRASH_PG_ROUNDS", DEFAULT_PG_ROUNDS),
        };
        std::env::var(variable)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    }
}

/// SIGKILL at seeded moments loses no acknowledged event, invents none, splits no command, and
/// leaves a log that reopens and verifies, round after round on the same directory.
#[test]
fn sigkill_loses_no_acknowledged_event() {
    run(Run::Sled);
}

/// The same on PostgreSQL: every acknowledged event is in the database after the node's
/// SIGKILL, and the log verifies (checksums, chains, dense positions), round after round on
/// the same database.
#[test]
fn sigkill_of_a_node_loses_no_acknowledged_event_on_postgres() {
    run(Run::PostgresNode);
}

/// The database server crashes (`pg_ctl stop -m immediate`) while the node appends; the node
/// is then killed, or lives through the restart and goes on acknowledging. Nothing the
/// database acknowledged is lost, nothing is half-written, and commands left unanswered are
/// recorded exactly once when sent again under their command ids.
#[test]
fn database_crash_mid_append_loses_no_acknowledged_event() {
    run(Run::PostgresDatabase);
}

fn run(run: Run) {
    let rounds = run.rounds();
    let label = run.label();
    let seed = run_seed();
    println!("{label}: seed {seed}, {rounds} rounds (replay: HANDOVER_CRASH_SEED={seed})");
    let cluster = (run != Run::Sled).then(PgCluster::start);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut totals = Totals::default();
    let mut answered_again_example = None;
    let mut round = 0;
    let mut logs = 0;
    while round < rounds {
        let mut work = tempfile::Builder::new()
            .prefix("handover-crash-")
            .tempdir()
            .expect("a temporary directory");
        let backend = match &cluster {
            None => Backend::Sled(work.path().join("data")),
            Some(cluster) => Backend::Postgres(cluster.create_database(&format!("crash_{logs}"))),
        };
        logs += 1;
        std::fs::write(work.path().join("continue.txt"), "").expect("writable");
        std::fs::write(work.path().join("retry.txt"), "").expect("writable");
        let mut history = History::default();
        let mut dir_events = 0;
        let mut answered_again = 0;
        for _ in 0..ROUNDS_PER_DIR.min(rounds - round) {
            let durability = if rng.gen_bool(0.5) {
                Durability::Durable
            } else {
                Durability::ProcessCrash
            };
            let plan = if run == Run::PostgresDatabase {
                KillPlan {
                    after_acks: rng.gen_range(1..=400),
                    sleep: Duration::from_millis(rng.gen_range(0..=20)),
                    outage: Some(if rng.gen_bool(0.5) {
                        Outage::Crash
                    } else {
                        Outage::Survive {
                            down_for: Duration::from_millis(rng.gen_range(0..=1_000)),
                            more_acks: rng.gen_range(1..=200),
                        }
                    }),
                }
            } else if rng.gen_range(0..10) == 0 {
                KillPlan {
                    after_acks: 0,
                    sleep: Duration::from_millis(rng.gen_range(0..400)),
                    outage: None,
                }
            } else {
                KillPlan {
                    after_acks: rng.gen_range(1..=400),
                    sleep: Duration::from_millis(rng.gen_range(0..=20)),
                    outage: None,
                }
            };
            // On PostgreSQL, `ProcessCrash` commits without waiting for the server's WAL flush,
            // which survives the node's crash but not the server's.
            let durability = match plan.outage {
                Some(_) => Durability::Durable,
                None => durability,
            };
            let child_seed = rng.gen();
            let outcome = run_child(
                work.path(),
                &backend,
                cluster.as_ref(),
                round,
                child_seed,
                durability,
                plan,
            )
            .and_then(|transcript| {
                totals.attempts += transcript.attempts.len() as u64;
                totals.acknowledged += transcript.acks.len() as u64;
                totals.store_errors += transcript.store_errors;
                totals.acks_after_restart += transcript.acks_after_restart;
                history.absorb(round, transcript)
            })
            .and_then(|()| check_log(&backend, &history))
            .and_then(|check| {
                totals.lost += check.lost.len() as u64;
                totals.vanished += check.vanished.len() as u64;
                totals.unexpected += check.unexpected.len() as u64;
                totals.partial += check.partial.len() as u64;
                match check.faults() {
                    0 => Ok(check),
                    _ => Err(format!(
                        "lost {:?}\nvanished {:?}\nunexpected {:?}\npartial {:?}",
                        check.lost, check.vanished, check.unexpected, check.partial
                    )),
                }
            });
            let check = outcome.unwrap_or_else(|error| {
                // Kept for a post-mortem (the child's stderr; a sled log).
                work.disable_cleanup(true);
                panic!(
                    "round {round} (seed {seed}, {}, {plan:?}), {backend:?}, files kept at {}: {error}",
                    durability.name(),
                    work.path().display()
                )
            });
            totals.rounds += 1;
            totals.sessions_outlived_child += u64::from(check.sessions_outlived_child);
            totals.startup_kills += u64::from(plan.after_acks == 0);
            match plan.outage {
                Some(Outage::Crash) => totals.database_crashes += 1,
                Some(Outage::Survive { .. }) => totals.outages_survived += 1,
                None => {}
            }
            match durability {
                Durability::Durable => totals.durable_rounds += 1,
                _ => totals.process_crash_rounds += 1,
            }
            history.recovered.extend(check.recovered.iter().cloned());
            dir_events = check.events;
            answered_again = check.answered_again.len() as u64;
            if let Some(example) = check.answered_again.first() {
                answered_again_example = Some(example.clone());
            }
            // The next round first sends again what the crash left unacknowledged, then
            // continues some of the other open conversations.
            let pending = history.pending();
            let retried: HashSet<ConversationId> = pending.iter().map(|(id, _)| *id).collect();
            let list: String = pending
                .iter()
                .map(|(_, line)| format!("{line}\n"))
                .collect();
            std::fs::write(work.path().join("retry.txt"), list).expect("writable");
            let mut open = check.open.clone();
            open.retain(|id| !retried.contains(id));
            open.sort_by_key(|_| rng.gen::<u32>());
            open.truncate(CONTINUED_MAX);
            let list: String = open.iter().map(|id| format!("{id}\n")).collect();
            std::fs::write(work.path().join("continue.txt"), list).expect("writable");
            // Attempts of this round that the crash left absent must stay absent, and what
            // was read now must still be there after the next crash.
            let present_tokens: HashSet<&String> = check.present.values().collect();
            for (token, attempt) in &history.attempts {
                if attempt.round == round && !present_tokens.contains(token) {
                    history.dead.insert(token.clone());
                }
            }
            history.seen = check.present;
            round += 1;
        }
        totals.events += dir_events;
        totals.answered_again += answered_again;
        totals.recovered += history.recovered.len() as u64;
        totals.retries += history.retries;
        totals.retries_of_recorded += history.retries_of_recorded;
    }
    println!(
        "{label}: seed {seed}: {} rounds ({} durable, {} process-crash, {} killed during start-up), \
         {} attempts (retries included), {} acknowledged events, lost {}, vanished {}, unexpected {}, partial {}, \
         recovered {} (attempted, not acknowledged, present), {} retried after a crash \
         ({} of them found recorded, answered from the log), {} events in the logs, \
         {} AI replies answering a customer message already answered",
        totals.rounds,
        totals.durable_rounds,
        totals.process_crash_rounds,
        totals.startup_kills,
        totals.attempts,
        totals.acknowledged,
        totals.lost,
        totals.vanished,
        totals.unexpected,
        totals.partial,
        totals.recovered,
        totals.retries,
        totals.retries_of_recorded,
        totals.events,
        totals.answered_again,
    );
    if run != Run::Sled {
        println!(
            "{label}: seed {seed}: in {} rounds the killed child's sessions were still open on \
             the database, and the check waited for them to end",
            totals.sessions_outlived_child
        );
    }
    if run == Run::PostgresDatabase {
        println!(
            "{label}: seed {seed}: {} database crashes with the node killed while it was down, \
             {} lived through by the node ({} events acknowledged after the restarts), \
             {} writer commands met a store error and were sent again under their command ids",
            totals.database_crashes,
            totals.outages_survived,
            totals.acks_after_restart,
            totals.store_errors,
        );
    }
    if let Some(example) = &answered_again_example {
        println!("{label}: a repeated AI answer: {example}");
    }
    // An agent taking its conversations up after a restart answers what waits, nothing twice.
    assert_eq!(
        totals.answered_again, 0,
        "seed {seed}: AI agents answered already answered messages after a restart: {answered_again_example:?}"
    );
}
