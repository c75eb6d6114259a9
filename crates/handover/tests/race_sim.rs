//! A seeded race simulation through the real runtime, checked afterwards on the log.
//!
//! Over a sled directory (`Durable`), customers post, humans hand conversations to two AI
//! agents, reclaim them at random moments, post and now and then close, and conversation
//! actors are passivated after a few idle milliseconds and rebuilt by the next command. The
//! attached agents delay their replies by seeded amounts, record skills, send their replies
//! through `Handover::execute_once` and some of them twice with the same command id, and keep
//! some replies and sessions so that the humans' tasks send them later, after the conversation
//! may have moved on: a new reply through the old session, or the old reply again with its
//! command id. Every AI reply and skill carries the epoch it was computed under. The second test adds an operator who deactivates and reactivates one agent
//! while handoffs to it are decided.
//!
//! After the run the log is read back and checked:
//! - P1: every acknowledged command's events are in the log, at the seq and position the
//!   acknowledgement gave, unchanged.
//! - P2: every stream is contiguous from seq 1, the global order has no gap,
//!   `handover_audit::verify_dir` finds the log sound, and every escalation that a customer's
//!   request for a human set off sits right after that message (one atomic append).
//! - P4: no two acknowledgements claim the same stream and seq, and every stream folds by the
//!   rules, each event following from the state before it. A conflict between two writers
//!   (`Error::Concurrency`) or any other system error fails the run.
//! - Retries: a reply sent again with the command id of a recorded first attempt is answered
//!   with that attempt's events (same seqs and positions) and records nothing, also once the
//!   conversation has been reclaimed.
//! - P5: between a reclaim, escalation or close and the next handoff, no AI message or skill
//!   is recorded; every AI event comes from the agent holding the conversation, under the
//!   epoch of the current handoff (which covers a reply from an earlier assignment of the same
//!   agent). Every `AssignmentEnded` rejection is justified by the log: that assignment ended.
//!
//! A seed fixes every choice of the tasks and every delay of the agents; the interleaving is
//! left to the threads, so a seed replays the same workload, not the same schedule.
//! `SEED=S` runs one seed, `RACE_SEEDS=N` runs N seeds (default 3), `RACE_STEPS=N` sets the
//! commands per task (default 120). Each seed prints its counts.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use handover::*;
use handover_core::{conversation, Conversation};
use handover_sled::{SledOptions, SledStore};
use handover_store::{EventStore, SeqRange};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Conversations per seed.
const CONVERSATIONS: usize = 16;
/// Customer tasks (each posts on every conversation) and human agents.
const CUSTOMER_TASKS: usize = 2;
const HUMANS: [&str; 2] = ["ana", "bruno"];
const AGENTS: [&str; 2] = ["bot-a", "bot-b"];
/// Sessions the agents keep for late replies; older ones are dropped.
const STALE_SESSIONS_MAX: usize = 64;
const SEEDS_DEFAULT: u64 = 3;
const STEPS_DEFAULT: usize = 120;

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

fn text(s: impl Into<String>) -> MessageText {
    MessageText::new(s).unwrap()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What sent a command, for the counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Sender {
    Customer,
    Human,
    Operator,
    /// An agent's reply, after its seeded delay.
    AiReply,
    /// The same reply sent again at once, with the same command id.
    AiDuplicate,
    /// A reply sent later through a session kept from an earlier call.
    AiLate,
    /// A reply sent again later, with its first attempt's command id.
    AiLateRetry,
    AiSkill,
}

/// One acknowledged command: the events its receipt reported.
struct Ack {
    sender: Sender,
    events: Vec<Arc<RecordedEvent>>,
}

/// Everything the run learned from the runtime's answers.
#[derive(Default)]
struct Ledger {
    acks: Mutex<Vec<Ack>>,
    /// (sender, outcome) -> count; outcomes are `ack`, a rejection's name, or an error's.
    counts: Mutex<BTreeMap<(Sender, String), u64>>,
    /// Assignments a rejection said had ended, to be justified by the log.
    ended: Mutex<Vec<(ConversationId, Epoch)>>,
    /// Answers no run may produce.
    failures: Mutex<Vec<String>>,
    /// Set once the runtime shuts down: calls still in flight may then fail as stopped.
    stopping: AtomicBool,
    commands: AtomicU64,
    /// The (seq, position) of what each AI reply's first attempt recorded, by command id.
    firsts: Mutex<HashMap<CommandId, Vec<(u64, u64)>>>,
}

/// The (seq, position) of each event of a receipt.
fn places(receipt: &Receipt) -> Vec<(u64, u64)> {
    receipt.events.iter().map(|r| (r.seq, r.position)).collect()
}

impl Ledger {
    /// Records the runtime's answer to one command; returns whether it was acknowledged.
    fn outcome(
        &self,
        sender: Sender,
        conversation_id: ConversationId,
        result: Result<impl Into<Recorded>, Error>,
    ) -> bool {
        self.commands.fetch_add(1, Ordering::Relaxed);
        let label = match result.map(Into::into) {
            Ok(Recorded(events)) => {
                lock(&self.acks).push(Ack { sender, events });
                "ack".to_owned()
            }
            Err(Error::Rejected(rejection)) => {
                if let Rejection::AssignmentEnded { epoch, .. } = rejection {
                    lock(&self.ended).push((conversation_id, epoch));
                }
                format!("{rejection:?}")
                    .split([' ', '{', '('])
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            }
            Err(Error::Overloaded) => "Overloaded".to_owned(),
            Err(Error::Stopped) if self.stopping.load(Ordering::SeqCst) => "Stopped".to_owned(),
            Err(error) => {
                lock(&self.failures).push(format!(
                    "{sender:?} on {conversation_id}: unexpected error {error}"
                ));
                "failure".to_owned()
            }
        };
        let acked = label == "ack";
        *lock(&self.counts).entry((sender, label)).or_default() += 1;
        acked
    }

    /// Records the first attempt of a command sent with an id.
    fn first(
        &self,
        sender: Sender,
        conversation_id: ConversationId,
        command_id: CommandId,
        result: Result<Receipt, Error>,
    ) {
        if let Ok(receipt) = &result {
            lock(&self.firsts).insert(command_id, places(receipt));
        }
        self.outcome(sender, conversation_id, result);
    }

    /// Records a retry with the same command id. If the first attempt was recorded, the retry
    /// must be answered with the same events and record nothing (`suppressed`); otherwise it
    /// was decided afresh.
    fn retry(
        &self,
        sender: Sender,
        conversation_id: ConversationId,
        command_id: CommandId,
        result: Result<Receipt, Error>,
    ) {
        let first = lock(&self.firsts).get(&command_id).cloned();
        let Some(first) = first else {
            return self.first(sender, conversation_id, command_id, result);
        };
        self.commands.fetch_add(1, Ordering::Relaxed);
        let label = match result {
            Ok(receipt) if places(&receipt) == first => {
                if !matches!(receipt.status, Status::AiActive { .. }) {
                    // Answered from the log although the rules would now refuse it.
                    *lock(&self.counts)
                        .entry((sender, "suppressed while not AI-active".to_owned()))
                        .or_default() += 1;
                }
                "suppressed".to_owned()
            }
            Ok(receipt) => {
                lock(&self.failures).push(format!(
                    "{sender:?} on {conversation_id}: {command_id:?} recorded again at {:?}, \
                     first at {first:?}",
                    places(&receipt)
                ));
                "failure".to_owned()
            }
            Err(Error::Overloaded) => "Overloaded".to_owned(),
            Err(Error::Stopped) if self.stopping.load(Ordering::SeqCst) => "Stopped".to_owned(),
            Err(error) => {
                lock(&self.failures).push(format!(
                    "{sender:?} on {conversation_id}: {command_id:?} was recorded at {first:?}, \
                     its retry was answered {error}"
                ));
                "failure".to_owned()
            }
        };
        *lock(&self.counts).entry((sender, label)).or_default() += 1;
    }

    fn count(&self, sender: Sender, label: &str) -> u64 {
        lock(&self.counts)
            .get(&(sender, label.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Answers from `sender` other than an acknowledgement.
    fn refused(&self, sender: Sender) -> u64 {
        lock(&self.counts)
            .iter()
            .filter(|((s, label), _)| *s == sender && label != "ack")
            .map(|(_, n)| n)
            .sum()
    }
}

/// A 64-bit mix (splitmix64's finaliser), to derive per-call seeds from the run's seed.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A reply an agent kept after its call ended: the session, and the reply's command.
struct Kept {
    session: AiSession,
    command_id: CommandId,
    command: ConversationCommand,
}

/// An AI agent that is slow, repeats itself, and keeps sessions it should have let go. It
/// sends its replies through `Handover::execute_once`, as a client that retries would, and
/// sends some of them twice with the same command id.
struct Flaky {
    seed: u64,
    ledger: Arc<Ledger>,
    stale: Arc<Mutex<Vec<Kept>>>,
    /// The runtime, set once it runs and taken away when it shuts down (so that this
    /// behaviour does not keep it, and its directory, open).
    handover: Arc<Mutex<Option<Handover>>>,
}

#[async_trait]
impl AiAgentBehavior for Flaky {
    async fn on_customer_message(
        &self,
        session: &AiSession,
        message: &MessageText,
    ) -> Result<(), AgentError> {
        let assignment = session.assignment().clone();
        let epoch = assignment.epoch.0;
        let conversation_id = session.conversation_id();
        // The same message under the same assignment gets the same delays on every run.
        let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed
            ^ hash(message.as_str())
            ^ mix(epoch)
            ^ hash(assignment.agent_id.as_str())));
        let token = message.as_str().rsplit(' ').next().unwrap_or_default();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..20))).await;
        if rng.gen_bool(0.3) {
            let recorded = session
                .record_skill(Skill::new(
                    "lookup",
                    format!("{token} epoch {epoch}"),
                    Ok("found".to_owned()),
                )?)
                .await;
            self.ledger
                .outcome(Sender::AiSkill, conversation_id, recorded);
        }
        let Some(handover) = lock(&self.handover).clone() else {
            return Ok(());
        };
        let command_id = CommandId::new();
        let command = ConversationCommand::PostMessage {
            by: Participant::Ai(assignment),
            text: text(format!("re {token} epoch {epoch}")),
        };
        let sent = handover
            .execute_once(conversation_id, command_id, command.clone())
            .await;
        self.ledger
            .first(Sender::AiReply, conversation_id, command_id, sent);
        if rng.gen_bool(0.3) {
            tokio::time::sleep(Duration::from_millis(rng.gen_range(0..10))).await;
            let again = handover
                .execute_once(conversation_id, command_id, command.clone())
                .await;
            self.ledger
                .retry(Sender::AiDuplicate, conversation_id, command_id, again);
        }
        if rng.gen_bool(0.3) {
            let mut stale = lock(&self.stale);
            if stale.len() == STALE_SESSIONS_MAX {
                stale.remove(0);
            }
            stale.push(Kept {
                session: session.clone(),
                command_id,
                command,
            });
        }
        Ok(())
    }
}

/// What one seed's run produced, for the report.
struct RunReport {
    commands: u64,
    acks: usize,
    events: u64,
    conversations: usize,
    ai_events_checked: u64,
    /// Handoffs recorded after their agent's deactivation (in log order), and the events
    /// recorded in those conversations before the assignment ended.
    raced: u64,
    intervening: u64,
    ended_justified: usize,
    live_min: usize,
    live_max: usize,
    /// Per kind of AI command: answered with the first attempt's events (`suppressed`),
    /// recorded, refused.
    replies: Answers,
    duplicates: Answers,
    late: Answers,
    late_retries: Answers,
    /// Every (sender, outcome) count.
    counts: BTreeMap<(Sender, String), u64>,
}

/// How the runtime answered one kind of command.
#[derive(Default)]
struct Answers {
    suppressed: u64,
    /// Of `suppressed`, those answered when the conversation was no longer AI-active.
    after_end: u64,
    recorded: u64,
    refused: u64,
}

impl Answers {
    fn of(ledger: &Ledger, sender: Sender) -> Answers {
        let suppressed = ledger.count(sender, "suppressed");
        let after_end = ledger.count(sender, "suppressed while not AI-active");
        Answers {
            suppressed,
            after_end,
            recorded: ledger.count(sender, "ack"),
            refused: ledger.refused(sender) - suppressed - after_end,
        }
    }
}

impl std::fmt::Display for Answers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} sent: {} answered with the first attempt's events and recorded nothing ({} of \
             them once the conversation was no longer AI-active), {} recorded, {} refused",
            self.suppressed + self.recorded + self.refused,
            self.suppressed,
            self.after_end,
            self.recorded,
            self.refused
        )
    }
}

async fn customer_task(
    handover: Handover,
    ledger: Arc<Ledger>,
    conversations: Arc<Vec<(ConversationId, CustomerId)>>,
    seed: u64,
    task: usize,
    steps: usize,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ 0xc0 ^ task as u64));
    for n in 0..steps {
        let (conversation_id, customer) = &conversations[rng.gen_range(0..conversations.len())];
        let token = format!("m{task}.{n}");
        let body = match rng.gen_range(0..100) {
            0..=3 => format!("I want to talk to a human {token}"),
            4 => format!("This is unacceptable {token}"),
            _ => format!("Is shipping free {token}"),
        };
        let result = handover
            .post_customer_message(*conversation_id, customer.clone(), text(body))
            .await;
        ledger.outcome(Sender::Customer, *conversation_id, result);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..8))).await;
    }
}

#[allow(clippy::too_many_arguments)]
async fn human_task(
    handover: Handover,
    ledger: Arc<Ledger>,
    conversations: Arc<Vec<(ConversationId, CustomerId)>>,
    stale: Arc<Mutex<Vec<Kept>>>,
    seed: u64,
    human: usize,
    steps: usize,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ 0x4a ^ human as u64));
    let me: HumanId = id(HUMANS[human]);
    for n in 0..steps {
        let (conversation_id, _) = &conversations[rng.gen_range(0..conversations.len())];
        let conversation_id = *conversation_id;
        match rng.gen_range(0..100) {
            0..=34 => {
                let agent: AiAgentId = id(AGENTS[rng.gen_range(0..AGENTS.len())]);
                let result = handover
                    .hand_off_to_ai(conversation_id, me.clone(), agent, None)
                    .await;
                ledger.outcome(Sender::Human, conversation_id, result);
            }
            35..=64 => {
                let result = handover.reclaim(conversation_id, me.clone(), None).await;
                ledger.outcome(Sender::Human, conversation_id, result);
            }
            65..=79 => {
                let result = handover
                    .post_human_message(conversation_id, me.clone(), text(format!("h{human}.{n}")))
                    .await;
                ledger.outcome(Sender::Human, conversation_id, result);
            }
            80 => {
                let result = handover.close(conversation_id, me.clone(), None).await;
                ledger.outcome(Sender::Human, conversation_id, result);
            }
            _ => {
                // A reply the agent computed earlier arrives now: a new one through the
                // session it had, or the old one again with its command id.
                let kept = {
                    let mut stale = lock(&stale);
                    (!stale.is_empty()).then(|| {
                        let i = rng.gen_range(0..stale.len());
                        stale.swap_remove(i)
                    })
                };
                if let Some(kept) = kept {
                    let conversation_id = kept.session.conversation_id();
                    if rng.gen_bool(0.5) {
                        let epoch = kept.session.assignment().epoch.0;
                        let result = kept
                            .session
                            .reply(
                                MessageText::new(format!("late {human}.{n} epoch {epoch}"))
                                    .unwrap(),
                            )
                            .await;
                        ledger.outcome(Sender::AiLate, conversation_id, result);
                    } else {
                        let result = handover
                            .execute_once(conversation_id, kept.command_id, kept.command)
                            .await;
                        ledger.retry(
                            Sender::AiLateRetry,
                            conversation_id,
                            kept.command_id,
                            result,
                        );
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..8))).await;
    }
}

/// What an acknowledged command recorded: a receipt's events, or none for a registration
/// change.
struct Recorded(Vec<Arc<RecordedEvent>>);

impl From<Receipt> for Recorded {
    fn from(receipt: Receipt) -> Recorded {
        Recorded(receipt.events)
    }
}

impl From<()> for Recorded {
    fn from((): ()) -> Recorded {
        Recorded(Vec::new())
    }
}

/// Deactivates and reactivates `bot-b` at seeded moments while the others run.
async fn operator_task(handover: Handover, ledger: Arc<Ledger>, seed: u64, rounds: usize) {
    let mut rng = ChaCha8Rng::seed_from_u64(mix(seed ^ 0x0e));
    let agent: AiAgentId = id(AGENTS[1]);
    for _ in 0..rounds {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(10..40))).await;
        let deactivated = handover.deactivate_ai_agent(agent.clone()).await;
        ledger.outcome(Sender::Operator, ghost(), deactivated);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(5..30))).await;
        let activated = handover.activate_ai_agent(agent.clone()).await;
        ledger.outcome(Sender::Operator, ghost(), activated);
    }
}

fn ghost() -> ConversationId {
    id("0190f1f0-0000-7000-8000-00000000dead")
}

/// The epoch an AI text claims (`... epoch N`).
fn claimed_epoch(text: &str) -> Option<u64> {
    text.rsplit(' ').next()?.parse().ok()
}

async fn run_seed(seed: u64, steps: usize, deactivations: bool) -> Result<RunReport, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let config = Config::new(dir.path())
        .workers(2)
        .passivate_after(Some(Duration::from_millis(10)));
    let handover = Handover::start(config).await.map_err(|e| e.to_string())?;
    // Supervisors: each may act on every conversation, so the rules that decide between the
    // humans and the AI agents are the ones at stake, not who answers for which conversation.
    handover_testkit::staff(&handover, &HUMANS).await;
    let ledger = Arc::new(Ledger::default());
    let stale = Arc::new(Mutex::new(Vec::new()));
    let shared_handover = Arc::new(Mutex::new(Some(handover.clone())));
    for name in AGENTS {
        let agent_id: AiAgentId = id(name);
        handover
            .register_ai_agent(AiAgentProfile {
                id: agent_id.clone(),
                name: AgentName::new(format!("{name} bot")).unwrap(),
                specialties: vec![id("faq")],
            })
            .await
            .map_err(|e| e.to_string())?;
        handover
            .activate_ai_agent(agent_id.clone())
            .await
            .map_err(|e| e.to_string())?;
        handover
            .attach_ai_agent(
                agent_id.clone(),
                Arc::new(Flaky {
                    seed,
                    ledger: Arc::clone(&ledger),
                    stale: Arc::clone(&stale),
                    handover: Arc::clone(&shared_handover),
                }),
            )
            .map_err(|e| e.to_string())?;
    }
    let mut conversations = Vec::new();
    for i in 0..CONVERSATIONS {
        let customer: CustomerId = id(&format!("cust-{i}"));
        let result = handover
            .execute(
                ConversationId::from_uuid(uuid::Uuid::now_v7()),
                ConversationCommand::Open {
                    customer: customer.clone(),
                    channel: id("web-chat"),
                    human: Some(id(HUMANS[i % HUMANS.len()])),
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let conversation_id = result.events[0]
            .stream
            .conversation_id()
            .ok_or("an open recorded outside a conversation")?;
        ledger.outcome(Sender::Human, conversation_id, Ok(result));
        conversations.push((conversation_id, customer));
    }
    let conversations = Arc::new(conversations);

    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = tokio::spawn({
        let handover = handover.clone();
        let sampling = Arc::clone(&sampling);
        async move {
            let (mut min, mut max) = (usize::MAX, 0);
            while sampling.load(Ordering::SeqCst) {
                let live = handover.live_conversations();
                min = min.min(live);
                max = max.max(live);
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            (min, max)
        }
    });
    let mut tasks = Vec::new();
    for task in 0..CUSTOMER_TASKS {
        tasks.push(tokio::spawn(customer_task(
            handover.clone(),
            Arc::clone(&ledger),
            Arc::clone(&conversations),
            seed,
            task,
            steps,
        )));
    }
    for human in 0..HUMANS.len() {
        tasks.push(tokio::spawn(human_task(
            handover.clone(),
            Arc::clone(&ledger),
            Arc::clone(&conversations),
            Arc::clone(&stale),
            seed,
            human,
            steps,
        )));
    }
    if deactivations {
        tasks.push(tokio::spawn(operator_task(
            handover.clone(),
            Arc::clone(&ledger),
            seed,
            steps / 10 + 1,
        )));
    }
    for task in tasks {
        task.await.map_err(|e| format!("a task panicked: {e}"))?;
    }
    // Late replies still in the pool go out now, when most conversations have moved on.
    let leftover: Vec<Kept> = std::mem::take(&mut *lock(&stale));
    for kept in leftover {
        let conversation_id = kept.session.conversation_id();
        let epoch = kept.session.assignment().epoch.0;
        let result = kept
            .session
            .reply(MessageText::new(format!("late final epoch {epoch}")).unwrap())
            .await;
        ledger.outcome(Sender::AiLate, conversation_id, result);
        let result = handover
            .execute_once(conversation_id, kept.command_id, kept.command)
            .await;
        ledger.retry(
            Sender::AiLateRetry,
            conversation_id,
            kept.command_id,
            result,
        );
    }
    sampling.store(false, Ordering::SeqCst);
    let (live_min, live_max) = sampler.await.map_err(|e| e.to_string())?;
    ledger.stopping.store(true, Ordering::SeqCst);
    handover.shutdown().await;
    // Sessions kept by calls that were still running, and the agents' handle, hold the
    // runtime's store, and with it the directory's lock.
    lock(&stale).clear();
    lock(&shared_handover).take();

    let failures = lock(&ledger.failures).clone();
    if !failures.is_empty() {
        return Err(format!(
            "{} unexpected answers, first: {}",
            failures.len(),
            failures[0]
        ));
    }
    let report = check_log(dir.path(), &ledger).await?;
    let counts = lock(&ledger.counts).clone();
    Ok(RunReport {
        live_min,
        live_max,
        replies: Answers::of(&ledger, Sender::AiReply),
        duplicates: Answers::of(&ledger, Sender::AiDuplicate),
        late: Answers::of(&ledger, Sender::AiLate),
        late_retries: Answers::of(&ledger, Sender::AiLateRetry),
        counts,
        ..report
    })
}

/// One stream as `position:type` pairs, for a failure message.
async fn describe(store: &SledStore, stream: &StreamId) -> String {
    match store.read_stream(stream, SeqRange::ALL).await {
        Ok(records) => {
            let events: Vec<String> = records
                .iter()
                .map(|r| format!("{}:{}", r.position, r.event.type_name()))
                .collect();
            format!("{stream} (position:event): {}\n", events.join(" "))
        }
        Err(error) => format!("{stream}: {error}\n"),
    }
}

/// Handoffs the log records after their agent's deactivation: a handoff decided while the
/// agent was active can be appended just after the deactivation. The runtime's promise is that
/// no conversation stays with a deactivated agent: each such assignment must end. Returns how
/// many there were, how many events came in between, and how many of those were the
/// deactivated agent's messages and skills.
fn raced_handoffs(all: &[RecordedEvent]) -> Result<(u64, u64, u64), String> {
    let mut active: HashMap<AiAgentId, bool> = HashMap::new();
    let mut pending: HashMap<ConversationId, (AiAgentId, u64)> = HashMap::new();
    let (mut raced, mut intervening, mut ai_intervening) = (0, 0, 0);
    for record in all {
        match (&record.event, &record.stream) {
            (Event::AiAgent(event), _) => {
                let now = matches!(event, AiAgentEvent::Activated { .. });
                active.insert(event.agent_id().clone(), now);
            }
            (Event::Conversation(event), StreamId::Conversation(conversation_id)) => {
                if pending.contains_key(conversation_id) {
                    match event {
                        ConversationEvent::HandedOffToAi { .. }
                        | ConversationEvent::Reclaimed { .. }
                        | ConversationEvent::EscalatedToHuman { .. }
                        | ConversationEvent::Closed { .. } => {
                            pending.remove(conversation_id);
                        }
                        ConversationEvent::MessagePosted { author, .. } => {
                            intervening += 1;
                            if matches!(author, Author::Ai(_)) {
                                ai_intervening += 1;
                            }
                        }
                        ConversationEvent::AiActionRecorded { .. } => {
                            intervening += 1;
                            ai_intervening += 1;
                        }
                        _ => intervening += 1,
                    }
                }
                if let ConversationEvent::HandedOffToAi { agent_id, .. } = event {
                    if !active.get(agent_id).copied().unwrap_or(false) {
                        raced += 1;
                        pending.insert(*conversation_id, (agent_id.clone(), record.seq));
                    }
                }
            }
            (Event::Human(_), StreamId::Human(_)) => {}
            _ => return Err(format!("P4: {} holds a foreign event", record.stream)),
        }
    }
    if let Some((conversation_id, (agent_id, seq))) = pending.into_iter().next() {
        return Err(format!(
            "{conversation_id} stays with {agent_id}, handed to it at seq {seq} after its \
             deactivation"
        ));
    }
    Ok((raced, intervening, ai_intervening))
}

/// Reads the log back and checks P1, P2, P4 and P5.
async fn check_log(dir: &std::path::Path, ledger: &Ledger) -> Result<RunReport, String> {
    // P2: the audit's own verification, with every record's checksum and every rule.
    let verified = handover_audit::verify_dir(dir).map_err(|e| format!("verify: {e}"))?;
    let store = SledStore::open(
        dir,
        SledOptions {
            in_use_wait: Duration::from_secs(10),
            ..SledOptions::default()
        },
    )
    .map_err(|e| format!("reopen: {e}"))?;
    let all = store
        .read_all(1, usize::MAX)
        .await
        .map_err(|e| format!("read_all: {e}"))?;
    let positions: Vec<u64> = all.iter().map(|r| r.position).collect();
    if positions != (1..=all.len() as u64).collect::<Vec<_>>() || store.head() != all.len() as u64 {
        return Err(format!(
            "P2: the global order has a gap (head {})",
            store.head()
        ));
    }
    // P2: every stream contiguous from seq 1, and the same read by stream as in the global order.
    let mut streams: BTreeMap<StreamId, Vec<&RecordedEvent>> = BTreeMap::new();
    for record in &all {
        streams
            .entry(record.stream.clone())
            .or_default()
            .push(record);
    }
    for (stream, records) in &streams {
        let by_stream = store
            .read_stream(stream, SeqRange::ALL)
            .await
            .map_err(|e| format!("read {stream}: {e}"))?;
        let seqs: Vec<u64> = by_stream.iter().map(|r| r.seq).collect();
        if seqs != (1..=records.len() as u64).collect::<Vec<_>>() {
            return Err(format!("P2: {stream} holds seqs {seqs:?}"));
        }
        if by_stream.iter().ne(records.iter().copied()) {
            return Err(format!(
                "P2: {stream} reads differently by stream and in global order"
            ));
        }
    }
    // P1 and P4: every acknowledged event is where its receipt put it; no seq is claimed twice.
    let mut claimed: HashMap<(StreamId, u64), Sender> = HashMap::new();
    let acks = std::mem::take(&mut *lock(&ledger.acks));
    for ack in &acks {
        for (i, event) in ack.events.iter().enumerate() {
            let stored = streams
                .get(&event.stream)
                .and_then(|records| records.get(event.seq as usize - 1));
            match stored {
                Some(stored) if **stored == **event => {}
                other => {
                    return Err(format!(
                        "P1: {:?} acknowledged {} seq {} (position {}), the log holds {other:?}",
                        ack.sender, event.stream, event.seq, event.position
                    ))
                }
            }
            if let Some(first) = claimed.insert((event.stream.clone(), event.seq), ack.sender) {
                return Err(format!(
                    "P4: {} seq {} acknowledged to {first:?} and to {:?}",
                    event.stream, event.seq, ack.sender
                ));
            }
            if i > 0 {
                let before = &ack.events[i - 1];
                if event.seq != before.seq + 1 || event.position != before.position + 1 {
                    return Err(format!(
                        "P2: one command's events are not adjacent: {ack_events:?}",
                        ack_events = ack
                            .events
                            .iter()
                            .map(|e| (e.seq, e.position))
                            .collect::<Vec<_>>()
                    ));
                }
            }
        }
    }
    let acked = acks.len();
    // P4 and P5, stream by stream.
    let mut ai_events_checked = 0;
    let mut handoffs: HashMap<ConversationId, Vec<(u64, Option<u64>)>> = HashMap::new();
    for (stream, records) in &streams {
        let StreamId::Conversation(conversation_id) = stream else {
            continue;
        };
        let mut state = Conversation::NotOpened;
        let mut epoch = 0u64;
        let mut holder: Option<AiAgentId> = None;
        // (seq of each handoff, seq where that assignment ended)
        let spans = handoffs.entry(*conversation_id).or_default();
        for (i, record) in records.iter().enumerate() {
            state = conversation::evolve_stored(state, &record.event).map_err(|rejection| {
                format!(
                    "P4: {stream} seq {} breaks the rules: {rejection}",
                    record.seq
                )
            })?;
            let Event::Conversation(event) = &record.event else {
                return Err(format!("P4: {stream} holds a foreign event"));
            };
            let fenced = |agent: &AiAgentId, claimed: Option<u64>| {
                if holder.as_ref() != Some(agent) || claimed != Some(epoch) {
                    Err(format!(
                        "P5: {stream} seq {}: {agent} acted (epoch {claimed:?}) while held by \
                         {holder:?} at epoch {epoch}",
                        record.seq
                    ))
                } else {
                    Ok(())
                }
            };
            match event {
                ConversationEvent::HandedOffToAi { agent_id, .. } => {
                    if let Some(last) = spans.last_mut() {
                        last.1.get_or_insert(record.seq);
                    }
                    epoch += 1;
                    holder = Some(agent_id.clone());
                    spans.push((record.seq, None));
                }
                ConversationEvent::Reclaimed { .. } | ConversationEvent::Closed { .. } => {
                    if let Some(last) = spans.last_mut() {
                        last.1.get_or_insert(record.seq);
                    }
                    holder = None;
                }
                ConversationEvent::EscalatedToHuman { cause, .. }
                | ConversationEvent::EscalatedByRule { cause, .. } => {
                    if let Some(last) = spans.last_mut() {
                        last.1.get_or_insert(record.seq);
                    }
                    holder = None;
                    // P2: the customer's request and its escalation are one append.
                    if *cause == EscalationCause::CustomerAskedForHuman {
                        let asked = i.checked_sub(1).map(|j| records[j]).filter(|before| {
                            before.position + 1 == record.position
                                && matches!(
                                    &before.event,
                                    Event::Conversation(ConversationEvent::MessagePosted {
                                        author: Author::Customer(_),
                                        concerns,
                                        ..
                                    }) if concerns.contains(&Concern::HumanRequested)
                                )
                        });
                        if asked.is_none() {
                            return Err(format!(
                                "P2: {stream} seq {}: an escalation the customer asked for does \
                                 not follow the request in the same append",
                                record.seq
                            ));
                        }
                    }
                }
                ConversationEvent::MessagePosted {
                    author: Author::Ai(agent),
                    text,
                    ..
                } => {
                    fenced(agent, claimed_epoch(text.as_str()))?;
                    ai_events_checked += 1;
                }
                ConversationEvent::AiActionRecorded { agent_id, skill } => {
                    fenced(agent_id, claimed_epoch(skill.input.as_str()))?;
                    ai_events_checked += 1;
                }
                _ => {}
            }
        }
    }
    let (raced, intervening, ai_intervening) = raced_handoffs(&all)?;
    // P2, checked last so that the checks above speak first: the audit finds the log sound.
    if let handover_audit::VerifyReport::Faulty(fault) = &verified {
        let around = match &fault.location.stream {
            Some(stream) => describe(&store, stream).await,
            None => String::new(),
        };
        let mut agents = String::new();
        for name in AGENTS {
            agents += &describe(&store, &StreamId::AiAgent(id(name))).await;
        }
        return Err(format!(
            "audit verify: {fault:?}\n({raced} handoffs were recorded after their agent's \
             deactivation, each assignment then ended, with {intervening} events in between, \
             {ai_intervening} of them from the AI agent)\n\
             {around}{agents}"
        ));
    }
    // P5: a rejection that said an assignment had ended is borne out by the log.
    let ended = lock(&ledger.ended).clone();
    for (conversation_id, epoch) in &ended {
        let span = handoffs
            .get(conversation_id)
            .and_then(|spans| spans.get((epoch.0 as usize).wrapping_sub(1)));
        if !matches!(span, Some((_, Some(_)))) {
            return Err(format!(
                "P5: {conversation_id} rejected {epoch:?} as ended, the log shows {span:?}"
            ));
        }
    }
    Ok(RunReport {
        commands: ledger.commands.load(Ordering::Relaxed),
        acks: acked,
        events: all.len() as u64,
        conversations: handoffs.len(),
        ai_events_checked,
        ended_justified: ended.len(),
        raced,
        intervening,
        live_min: 0,
        live_max: 0,
        replies: Answers::default(),
        duplicates: Answers::default(),
        late: Answers::default(),
        late_retries: Answers::default(),
        counts: BTreeMap::new(),
    })
}

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("SEED") {
        return vec![seed.parse().expect("SEED is a u64")];
    }
    let count = std::env::var("RACE_SEEDS")
        .ok()
        .map(|v| v.parse().expect("RACE_SEEDS is a count"))
        .unwrap_or(SEEDS_DEFAULT);
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (0..count).map(|i| mix(base.wrapping_add(i))).collect()
}

/// Runs every seed, with or without the operator deactivating `bot-b`, and prints each one's
/// counts; panics with the seed at the first violation.
async fn run(deactivations: bool) {
    let steps = std::env::var("RACE_STEPS")
        .ok()
        .map(|v| v.parse().expect("RACE_STEPS is a count"))
        .unwrap_or(STEPS_DEFAULT);
    for seed in seeds() {
        println!(
            "race: seed {seed} (SEED={seed} replays its workload), {steps} commands per task, \
             deactivations {deactivations}"
        );
        match run_seed(seed, steps, deactivations).await {
            Ok(report) => {
                println!(
                    "race: seed {seed}: {} commands, {} acknowledged, {} events in {} \
                     conversations and the agents' streams",
                    report.commands, report.acks, report.events, report.conversations,
                );
                println!(
                    "race: seed {seed}: AI replies {} (refused: the assignment ended while the \
                     reply was computed)",
                    report.replies
                );
                println!(
                    "race: seed {seed}: duplicates (same command id, at once) {}",
                    report.duplicates
                );
                println!(
                    "race: seed {seed}: late replies through kept sessions {}",
                    report.late
                );
                println!(
                    "race: seed {seed}: late retries (same command id, later) {}",
                    report.late_retries
                );
                println!(
                    "race: seed {seed}: {} AI events fenced correctly; {} 'assignment ended' \
                     rejections borne out by the log; {} handoffs raced a deactivation ({} \
                     events before their assignment ended); live actors between {} and {}",
                    report.ai_events_checked,
                    report.ended_justified,
                    report.raced,
                    report.intervening,
                    report.live_min,
                    report.live_max,
                );
                println!("race: seed {seed}: answers by sender {:?}", report.counts);
            }
            Err(error) => panic!("race: seed {seed} (SEED={seed}): {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_humans_customers_and_flaky_agents_leave_a_sound_fenced_log() {
    run(false).await;
}

/// The same run while an operator deactivates and reactivates `bot-b` at seeded moments: a
/// handoff decided while the agent was active can race its deactivation, and the runtime
/// then escalates the conversation at once. The log must still be one the audit accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivations_racing_handoffs_leave_a_log_the_audit_accepts() {
    run(true).await;
}
