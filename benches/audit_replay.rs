//! Replaying a log of 1,000,000 events for an audit, beside reading the same records with less
//! and less work, all on one log built once per run. Each figure is per event of the log
//! (criterion throughput in elements):
//!
//! - `raw_sled_log_tree`: sled alone iterating the whole `log` tree (the stream records and the
//!   global index chunks), touching each value's length, decoding nothing: the floor for a
//!   reader that checks the index as well as the records;
//! - `raw_sled_records`: the same over the stream records only (`s` keys);
//! - `store_decode_only`: `handover_store::decode_record` (checksum, decoding, validation) over
//!   the records' bytes already in memory, without sled;
//! - `store_scan_streams`: `SledStore::scan_streams`, the checked records stream by stream;
//! - `store_scan_stream_records`: `SledStore::scan_stream_records`, the records in the same
//!   order with their keys parsed but not decoded (what the replay's reading thread does before
//!   any decoding);
//! - `store_scan_index`: `SledStore::scan_index`, the global index alone;
//! - `store_iter_all`: `SledStore::iter_all`, the checked global order (the index chunks, then
//!   a point lookup of each event's record and its decoding);
//! - `replay_fold_only`: `Replay::apply` over the records already decoded in memory;
//! - `audit_replay_position_order`: `Replay::apply` over `iter_all`, the replay in position
//!   order that `Replay::from_store` falls back to when it finds a fault;
//! - `audit_replay`: `handover_audit::Replay::from_store`, the replay `stats` and `verify` run
//!   (the stream records read in one pass on one thread and folded on another, with the
//!   decoding shared between the two, and the index);
//! - `audit_replay_store_default_cache`: the same on a store opened with the store's default
//!   cache of 64 MiB instead of the audit's 1 GiB.
//!
//! The store is opened with `handover_audit::open_data_dir`, as `handover audit` opens it.
//! A replay's figure includes dropping it, as every caller does.
//!
//! The log is written straight to a `SledStore` with `Durability::Buffered`, every command
//! decided by `handover_core::conversation::decide` exactly as the runtime would: 256
//! conversations in flight at a time, interleaved in the global order, each opened, asked
//! about, handed off to one of three AI agents which reply and run skills, and then closed by
//! the AI or the customer, reclaimed, escalated at the customer's request or the agent's, or
//! left open; some stay with humans after a complaint. Forty human agents are registered and
//! signed in first; a conversation opened without a human, or escalated, waits in the queue
//! until its human accepts it. Halfway through one agent is deactivated (its conversations are
//! escalated) and later activated again.
//!
//! Set `AUDIT_REPLAY_LOG_DIR` to keep the log in that directory and reuse it on the next run;
//! otherwise it goes to a temporary directory removed at the end.

// `criterion_group!` defines an undocumented `pub fn`; a bench binary has no public API.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use handover_audit::Replay;
use handover_core::conversation::decide_with_state;
use handover_core::{
    agent, human, AgentName, AiAgentCommand, AiAgentId, Assignment, Channel, Conversation,
    ConversationCommand, ConversationId, Ctx, CustomerId, DefaultPolicy, Directory,
    EscalationCause, Event, HumanCommand, HumanId, MessageText, Participant, Presence, Reason,
    Role, Roster, Skill, SkillData, SkillName, SkillOutcome, Specialty, Status, StreamId, TenantId,
    Timestamp, HUMAN_CAPACITY_MAX,
};
use handover_sled::{SledOptions, SledStore};
use handover_store::{decode_record, Durability, EventStore, ExpectedVersion, RecordedEvent};

/// Events in the log.
const LOG_EVENTS: u64 = 1_000_000;

/// Conversations open at the same time while the log is written: their events interleave in
/// the global order, as a contact center's do.
const IN_FLIGHT: usize = 256;

/// Most appends in flight at once while the log is written.
const ROUND_APPENDS: usize = 64;

/// Written in the log directory once the log is complete, so a reused directory is known to
/// hold the whole log.
const COMPLETE_MARKER: &str = "audit-replay-log-complete";

/// How long sled may wait for the directory's lock between benchmarks.
const IN_USE_WAIT: Duration = Duration::from_secs(5);

/// A small deterministic generator (xorshift64*), so every run writes the same mix.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

const QUESTIONS: &[&str] = &[
    "How much is the Pro plan?",
    "What are your opening hours on Saturday?",
    "Can I change the delivery address of my order 48213?",
    "Do you ship to Portugal, and how long does it take?",
    "Quanto custa o plano anual para duas pessoas?",
    "¿Cuál es el horario de atención los domingos?",
    "Is there a student price for the Basic plan?",
    "Where can I download my last invoice?",
];

const FOLLOW_UPS: &[&str] = &[
    "Thanks! And what about teams of ten?",
    "Ok, and can I pay by bank transfer?",
    "Obrigado, e o frete é grátis?",
    "Perfect, one more thing: does it include support by phone?",
    "Got it.",
];

const AI_REPLIES: &[&str] = &[
    "The Pro plan is 49 USD a month, billed monthly, or 490 USD a year.",
    "We are open from 9:00 to 17:00, Monday to Saturday.",
    "I have updated the delivery address; you will receive a confirmation e-mail shortly.",
    "Yes, we ship to Portugal. Delivery takes three to five working days after dispatch.",
    "O plano anual para duas pessoas custa 890 BRL, com suporte incluído.",
    "Your last invoice is under Account > Billing > Invoices, as a PDF you can download.",
];

const HUMAN_LINES: &[&str] = &[
    "Hi, this is your agent; let me check that for you.",
    "I can help with that. One moment, please.",
    "Done. Is there anything else I can do for you?",
    "Olá! Vou verificar isso para você.",
];

const COMPLAINTS: &[&str] = &[
    "This is unacceptable, my order is two weeks late.",
    "I want to file a complaint about the last invoice.",
    "Quero um desconto, o preço subiu sem aviso.",
];

const ASKS_FOR_HUMAN: &[&str] = &[
    "I want to talk to a human",
    "Quero falar com um atendente, por favor",
    "Quiero hablar con una persona",
];

const CHANNELS: &[&str] = &["web-chat", "whatsapp", "email", "instagram"];

const SKILLS: &[(&str, &str, bool, &str)] = &[
    (
        "lookup_price",
        r#"{"plan":"pro","period":"month"}"#,
        true,
        "49 USD/month",
    ),
    (
        "lookup_hours",
        r#"{"store":"main"}"#,
        true,
        "Mon-Sat 9:00-17:00",
    ),
    (
        "track_order",
        r#"{"order":"48213"}"#,
        false,
        "carrier timeout after 3000 ms",
    ),
    (
        "update_address",
        r#"{"order":"48213","zip":"1100-148"}"#,
        true,
        "address updated",
    ),
    (
        "find_invoice",
        r#"{"customer":"last"}"#,
        true,
        "invoice 2026-0117, 49.00 USD",
    ),
];

/// How a conversation is meant to end.
#[derive(Clone, Copy)]
enum Ending {
    /// The AI agent closes it: contained.
    AiCloses,
    /// The customer closes it while the AI is active.
    CustomerCloses,
    /// A human reclaims it, talks, and closes it.
    Reclaimed,
    /// The customer asks for a human; the policy escalates it at once.
    AsksForHuman,
    /// The AI agent escalates it to humans.
    AiEscalates,
    /// It stays open, AI-active, at the end of the log.
    LeftOpen,
    /// The customer complains first, so it is never handed off.
    Complaint,
}

impl Ending {
    fn pick(rng: &mut Rng) -> Ending {
        match rng.below(100) {
            0..=34 => Ending::AiCloses,
            35..=49 => Ending::CustomerCloses,
            50..=64 => Ending::Reclaimed,
            65..=76 => Ending::AsksForHuman,
            77..=86 => Ending::AiEscalates,
            87..=91 => Ending::LeftOpen,
            _ => Ending::Complaint,
        }
    }
}

/// Where a conversation's script is.
#[derive(Clone, Copy)]
enum Stage {
    Question,
    HumanGreets,
    HandOff,
    /// AI-active: `rounds` more question, skill, reply rounds; `step` within the round.
    Ai {
        rounds: u32,
        step: u32,
    },
    /// Human-handled again: `lines` more messages before a human closes it.
    Human {
        lines: u32,
    },
    Done,
}

/// One conversation being written.
struct Live {
    id: ConversationId,
    customer: CustomerId,
    human: HumanId,
    state: Conversation,
    version: u64,
    ending: Ending,
    stage: Stage,
}

fn text(value: &str) -> MessageText {
    MessageText::new(value).expect("a valid message")
}

fn reason(value: &str) -> Reason {
    Reason::new(value).expect("a valid reason")
}

/// Writes the log: three AI agents registered and activated, forty human agents registered
/// and signed in, then conversations until the
/// log holds exactly [`LOG_EVENTS`] events.
struct Writer {
    store: SledStore,
    rng: Rng,
    roster: Roster,
    policy: DefaultPolicy,
    /// The human agents `agent-0` to `agent-39`, registered and signed in.
    directory: Directory,
    agents: Vec<AiAgentId>,
    agent_versions: Vec<u64>,
    written: u64,
    next_conversation: u64,
}

impl Writer {
    async fn agent_command(&mut self, index: usize, command: AiAgentCommand) {
        let id = self.agents[index].clone();
        let events = agent::decide(&id, self.roster.get(&id), &command).expect("decided");
        for event in &events {
            self.roster.evolve(event).expect("folds");
        }
        let events: Vec<Event> = events.into_iter().map(Event::AiAgent).collect();
        let count = events.len() as u64;
        self.store
            .append(
                &StreamId::AiAgent(id),
                ExpectedVersion::Exact(self.agent_versions[index]),
                events,
            )
            .await
            .expect("the append is stored")
            .expect("no conflict");
        self.agent_versions[index] += count;
        self.written += count;
    }

    /// Registers the human agent `agent-<n>` with room for every conversation, and signs them
    /// in.
    async fn sign_in(&mut self, n: u64) {
        let id = HumanId::new(format!("agent-{n}")).expect("a valid id");
        let mut events = Vec::new();
        for command in [
            HumanCommand::Register {
                tenant: TenantId::default_tenant(),
                name: AgentName::new(format!("Agent {n}")).expect("a valid name"),
                role: Role::Agent,
                teams: vec![],
                capacity: HUMAN_CAPACITY_MAX,
            },
            HumanCommand::SetPresence {
                presence: Presence::Available,
            },
        ] {
            for event in human::decide(&id, self.directory.get(&id), &command).expect("decided") {
                self.directory.evolve(&event).expect("folds");
                events.push(Event::Human(event));
            }
        }
        let count = events.len() as u64;
        self.store
            .append(&StreamId::Human(id), ExpectedVersion::NoStream, events)
            .await
            .expect("the append is stored")
            .expect("no conflict");
        self.written += count;
    }

    fn new_conversation(&mut self) -> Live {
        self.next_conversation += 1;
        let n = self.next_conversation;
        // UUID v7-like ids, increasing, as the runtime mints them.
        let id: ConversationId = format!("0190f1f0-0000-7000-8000-{n:012x}")
            .parse()
            .expect("a valid id");
        Live {
            id,
            customer: CustomerId::new(format!("cust-{}", self.rng.below(50_000)))
                .expect("a valid id"),
            human: HumanId::new(format!("agent-{}", self.rng.below(40))).expect("a valid id"),
            state: Conversation::NotOpened,
            version: 0,
            ending: Ending::pick(&mut self.rng),
            stage: Stage::Question,
        }
    }

    /// The next command of `live`'s script, or `None` when it is done.
    fn next_command(&mut self, live: &mut Live) -> Option<ConversationCommand> {
        let rng = &mut self.rng;
        let customer = Participant::Customer(live.customer.clone());
        let human = Participant::Human(live.human.clone());
        let say = |by: Participant, words: &str| ConversationCommand::PostMessage {
            by,
            text: text(words),
        };
        match live.state.status() {
            Status::NotOpened => Some(ConversationCommand::Open {
                customer: live.customer.clone(),
                channel: Channel::new(rng.pick(CHANNELS)).expect("a valid channel"),
                human: (rng.below(10) != 0).then(|| live.human.clone()),
            }),
            Status::Closed => None,
            Status::AiActive {
                agent_id, epoch, ..
            } => {
                let assignment = Assignment { agent_id, epoch };
                let ai = Participant::Ai(assignment.clone());
                match live.stage {
                    Stage::Ai { rounds, step } if rounds > 0 => {
                        let command = match step {
                            0 => say(customer, rng.pick(FOLLOW_UPS)),
                            1 => {
                                let (name, input, succeeded, detail) = rng.pick(SKILLS);
                                let detail = SkillData::new(detail).expect("valid skill data");
                                ConversationCommand::RecordAiAction {
                                    by: assignment,
                                    skill: Skill {
                                        name: SkillName::new(name).expect("a valid name"),
                                        input: SkillData::new(input).expect("valid skill data"),
                                        outcome: if succeeded {
                                            SkillOutcome::Succeeded(detail)
                                        } else {
                                            SkillOutcome::Failed(detail)
                                        },
                                    },
                                }
                            }
                            _ => say(ai, rng.pick(AI_REPLIES)),
                        };
                        live.stage = match step {
                            2 => Stage::Ai {
                                rounds: rounds - 1,
                                step: 0,
                            },
                            _ => Stage::Ai {
                                rounds,
                                step: step + 1,
                            },
                        };
                        Some(command)
                    }
                    _ => {
                        let lines = 1 + rng.below(3) as u32;
                        live.stage = Stage::Human { lines };
                        match live.ending {
                            Ending::AiCloses => Some(ConversationCommand::Close {
                                by: ai,
                                reason: Some(reason("answered")),
                            }),
                            Ending::CustomerCloses => Some(ConversationCommand::Close {
                                by: customer,
                                reason: None,
                            }),
                            Ending::Reclaimed => Some(ConversationCommand::Reclaim {
                                by: live.human.clone(),
                                reason: Some(reason("enterprise lead, sales should answer")),
                            }),
                            Ending::AsksForHuman => Some(say(customer, rng.pick(ASKS_FOR_HUMAN))),
                            Ending::AiEscalates | Ending::Complaint => {
                                Some(ConversationCommand::Escalate {
                                    by: assignment,
                                    reason: reason("needs a refund decision"),
                                    cause: EscalationCause::AgentRequested,
                                })
                            }
                            Ending::LeftOpen => {
                                live.stage = Stage::Done;
                                None
                            }
                        }
                    }
                }
            }
            // Waiting (opened without a human, or escalated): its human takes it from the
            // queue, and the script goes on where it was.
            Status::AwaitingHuman { .. } => Some(ConversationCommand::Accept {
                by: live.human.clone(),
            }),
            Status::HumanHandled | Status::Reclaimed { .. } | Status::Assigned { .. } => {
                match live.stage {
                    Stage::Question => {
                        live.stage = Stage::HumanGreets;
                        Some(match live.ending {
                            Ending::Complaint => say(customer, rng.pick(COMPLAINTS)),
                            _ => say(customer, rng.pick(QUESTIONS)),
                        })
                    }
                    Stage::HumanGreets => {
                        live.stage = match live.ending {
                            Ending::Complaint => Stage::Human { lines: 3 },
                            _ => Stage::HandOff,
                        };
                        Some(say(human, rng.pick(HUMAN_LINES)))
                    }
                    Stage::HandOff => {
                        let active: Vec<AiAgentId> = self
                            .roster
                            .active(None)
                            .map(|agent| agent.profile.id.clone())
                            .collect();
                        live.stage = Stage::Ai {
                            rounds: 1 + rng.below(4) as u32,
                            step: 0,
                        };
                        Some(ConversationCommand::HandOffToAi {
                            by: live.human.clone(),
                            agent_id: active[rng.below(active.len() as u64) as usize].clone(),
                            reason: (rng.below(3) != 0).then(|| reason("routine question")),
                        })
                    }
                    Stage::Human { lines } if lines > 0 => {
                        live.stage = Stage::Human { lines: lines - 1 };
                        Some(match lines % 2 {
                            0 => say(customer, rng.pick(FOLLOW_UPS)),
                            _ => say(human, rng.pick(HUMAN_LINES)),
                        })
                    }
                    // Escalated by a deactivation in the middle of its AI rounds: humans finish.
                    Stage::Ai { .. } => {
                        live.stage = Stage::Human { lines: 2 };
                        Some(say(human, rng.pick(HUMAN_LINES)))
                    }
                    Stage::Human { .. } | Stage::Done => Some(ConversationCommand::Close {
                        by: human,
                        reason: Some(reason("resolved")),
                    }),
                }
            }
            // A state this generator does not know: leave the conversation alone.
            _ => None,
        }
    }

    /// Decides `command` on `live`: its events and the state they fold to, or `None` when
    /// they would pass [`LOG_EVENTS`] (a message and its escalation at the very end).
    fn decide(
        &self,
        live: &Live,
        command: &ConversationCommand,
        planned: u64,
    ) -> Option<(Vec<Event>, Conversation)> {
        // Time moves 50 ms per event written. No human nears their capacity (every agent may
        // hold every conversation in flight), so the loads are left out.
        let now = Timestamp::from_millis(1_720_000_000_000 + self.written as i64 * 50);
        let ctx = Ctx::new(&self.roster, &self.policy)
            .with_directory(&self.directory)
            .at(now);
        let (events, next) = decide_with_state(&live.state, command, &ctx)
            .unwrap_or_else(|rejection| panic!("{command:?} was rejected: {rejection}"));
        (self.written + planned + events.len() as u64 <= LOG_EVENTS)
            .then(|| (events.into_iter().map(Event::Conversation).collect(), next))
    }

    /// Decides `command` on `live` and appends its events alone.
    async fn run(&mut self, live: &mut Live, command: &ConversationCommand) {
        let Some((events, next)) = self.decide(live, command, 0) else {
            return;
        };
        let count = events.len() as u64;
        self.store
            .append(
                &StreamId::Conversation(live.id),
                ExpectedVersion::Exact(live.version),
                events,
            )
            .await
            .expect("the append is stored")
            .expect("no conflict");
        live.state = next;
        live.version += count;
        self.written += count;
    }

    /// One round: the next command of up to [`ROUND_APPENDS`] different conversations, decided
    /// one after the other and appended concurrently, as the runtime's conversation actors
    /// do, so the journal groups them and their positions interleave.
    async fn round(&mut self, live: &mut [Live]) {
        let mut chosen = vec![false; live.len()];
        let mut planned = Vec::new();
        let mut planned_events = 0;
        for _ in 0..ROUND_APPENDS {
            let slot = self.rng.below(live.len() as u64) as usize;
            if std::mem::replace(&mut chosen[slot], true) {
                continue;
            }
            let command = match self.next_command(&mut live[slot]) {
                Some(command) => command,
                None => {
                    live[slot] = self.new_conversation();
                    self.next_command(&mut live[slot])
                        .expect("a new conversation opens")
                }
            };
            if let Some((events, next)) = self.decide(&live[slot], &command, planned_events) {
                let count = events.len() as u64;
                planned_events += count;
                planned.push((slot, events, next, count));
            }
        }
        let mut appends = tokio::task::JoinSet::new();
        for (slot, events, _, _) in &mut planned {
            let store = self.store.clone();
            let stream = StreamId::Conversation(live[*slot].id);
            let expected = ExpectedVersion::Exact(live[*slot].version);
            let events = std::mem::take(events);
            appends.spawn(async move { store.append(&stream, expected, events).await });
        }
        while let Some(appended) = appends.join_next().await {
            appended
                .expect("the append task ends")
                .expect("the append is stored")
                .expect("no conflict");
        }
        for (slot, _, next, count) in planned {
            live[slot].state = next;
            live[slot].version += count;
        }
        self.written += planned_events;
    }

    /// Deactivates agent `index` and escalates every conversation it holds, as the runtime's
    /// roster actor does.
    async fn deactivate(&mut self, index: usize, live: &mut [Live]) {
        self.agent_command(index, AiAgentCommand::Deactivate).await;
        let agent_id = self.agents[index].clone();
        for conversation in live.iter_mut() {
            let Some(assignment) = conversation.state.assignment() else {
                continue;
            };
            if assignment.agent_id != agent_id {
                continue;
            }
            let command = ConversationCommand::Escalate {
                by: assignment,
                reason: reason("the AI agent was deactivated"),
                cause: EscalationCause::AgentDeactivated,
            };
            self.run(conversation, &command).await;
        }
    }

    async fn write_log(mut self) {
        for (index, (name, specialties)) in [
            ("FAQ bot", &["faq", "pricing"][..]),
            ("Orders bot", &["orders"][..]),
            ("Billing bot", &["billing", "invoices"][..]),
        ]
        .into_iter()
        .enumerate()
        {
            self.agent_command(
                index,
                AiAgentCommand::Register {
                    name: AgentName::new(name).expect("a valid name"),
                    specialties: specialties
                        .iter()
                        .map(|s| Specialty::new(*s).expect("a valid specialty"))
                        .collect(),
                },
            )
            .await;
            self.agent_command(index, AiAgentCommand::Activate).await;
        }
        for n in 0..40 {
            self.sign_in(n).await;
        }
        let mut live: Vec<Live> = (0..IN_FLIGHT).map(|_| self.new_conversation()).collect();
        let (mut deactivated, mut reactivated) = (false, false);
        while self.written < LOG_EVENTS {
            if !deactivated && self.written >= LOG_EVENTS / 2 {
                deactivated = true;
                self.deactivate(2, &mut live).await;
                continue;
            }
            if !reactivated && self.written >= LOG_EVENTS * 6 / 10 {
                reactivated = true;
                self.agent_command(2, AiAgentCommand::Activate).await;
                continue;
            }
            self.round(&mut live).await;
        }
        self.store.flush().expect("the log is flushed");
    }
}

/// Writes the log in `dir` unless a complete one is there already.
fn ensure_log(dir: &Path) {
    if dir.join(COMPLETE_MARKER).is_file() {
        eprintln!("audit_replay: reusing the log in {}", dir.display());
        return;
    }
    let started = Instant::now();
    let store = SledStore::open(
        dir,
        SledOptions {
            durability: Durability::Buffered,
            ..SledOptions::default()
        },
    )
    .expect("the store opens");
    let writer = Writer {
        store: store.clone(),
        rng: Rng(0x9e37_79b9_7f4a_7c15),
        roster: Roster::default(),
        policy: DefaultPolicy::default(),
        directory: Directory::new(),
        agents: ["faq-bot", "orders-bot", "billing-bot"]
            .into_iter()
            .map(|id| AiAgentId::new(id).expect("a valid id"))
            .collect(),
        agent_versions: vec![0; 3],
        written: 0,
        next_conversation: 0,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime starts");
    runtime.block_on(writer.write_log());
    assert_eq!(store.head(), LOG_EVENTS);
    let stats = store.stats();
    drop(store);
    std::fs::write(dir.join(COMPLETE_MARKER), b"").expect("the marker is written");
    eprintln!(
        "audit_replay: wrote {LOG_EVENTS} events in {:.1?} to {} ({} appends in {} groups)",
        started.elapsed(),
        dir.display(),
        stats.appends,
        stats.groups
    );
}

/// Iterates `tree` (all of it, or the keys starting with `prefix`) and sums the values'
/// lengths, decoding nothing.
fn raw_scan(tree: &sled::Tree, prefix: &[u8]) -> (u64, u64) {
    let (mut entries, mut bytes) = (0u64, 0u64);
    for entry in tree.scan_prefix(prefix) {
        let (_, value) = entry.expect("sled reads");
        entries += 1;
        bytes += value.len() as u64;
    }
    (entries, bytes)
}

/// Opens the store as `handover audit` does, waiting for sled to release the directory after
/// the raw reads before it.
fn open_audited(dir: &Path) -> SledStore {
    let deadline = Instant::now() + IN_USE_WAIT;
    loop {
        match handover_audit::open_data_dir(dir) {
            Ok(store) => return store,
            Err(error) if Instant::now() < deadline => {
                eprintln!("audit_replay: retrying the open: {error}");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(error) => panic!("the store opens: {error}"),
        }
    }
}

fn audit_replay(c: &mut Criterion) {
    // The temporary directory, if any, lives until the end of the benchmark.
    let (dir, _temporary): (PathBuf, Option<tempfile::TempDir>) =
        match std::env::var_os("AUDIT_REPLAY_LOG_DIR") {
            Some(dir) => {
                let dir = PathBuf::from(dir);
                std::fs::create_dir_all(&dir).expect("the log directory is created");
                (dir, None)
            }
            None => {
                let temporary = tempfile::tempdir().expect("a temp dir");
                (temporary.path().to_path_buf(), Some(temporary))
            }
        };
    ensure_log(&dir);

    let mut group = c.benchmark_group("audit_replay");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(LOG_EVENTS));

    {
        let db = SledStore::open_raw(&dir, IN_USE_WAIT).expect("sled opens the directory");
        let log = db.open_tree("log").expect("the log tree opens");
        let (entries, bytes) = raw_scan(&log, &[]);
        eprintln!(
            "audit_replay: the log tree holds {entries} entries, {:.1} MiB of values",
            bytes as f64 / (1024.0 * 1024.0)
        );
        group.bench_function("raw_sled_log_tree", |b| {
            b.iter(|| {
                let (entries, _) = black_box(raw_scan(&log, &[]));
                assert!(entries > LOG_EVENTS);
            })
        });
        group.bench_function("raw_sled_records", |b| {
            b.iter(|| {
                let (records, _) = black_box(raw_scan(&log, b"s"));
                assert_eq!(records, LOG_EVENTS);
            })
        });
        let values: Vec<sled::IVec> = log
            .scan_prefix(b"s")
            .map(|entry| entry.expect("sled reads").1)
            .collect();
        group.bench_function("store_decode_only", |b| {
            b.iter(|| {
                for value in &values {
                    black_box(decode_record(value).expect("the record is sound"));
                }
            })
        });
    }

    // As the audit opens it: with sled's default cache of 1 GiB, the one
    // `SledStore::open_raw` gets too, so every reader here works from the same cache.
    let store = open_audited(&dir);
    group.bench_function("store_scan_streams", |b| {
        b.iter(|| {
            let mut events = 0u64;
            for record in store.scan_streams() {
                black_box(record.expect("the record is sound"));
                events += 1;
            }
            assert_eq!(events, LOG_EVENTS);
        })
    });
    group.bench_function("store_scan_stream_records", |b| {
        b.iter(|| {
            let mut events = 0u64;
            for record in store.scan_stream_records() {
                black_box(record.expect("the record is read"));
                events += 1;
            }
            assert_eq!(events, LOG_EVENTS);
        })
    });
    group.bench_function("store_scan_index", |b| {
        b.iter(|| {
            let mut events = 0u64;
            for pointer in store.scan_index(1) {
                black_box(pointer.expect("the index is sound"));
                events += 1;
            }
            assert_eq!(events, LOG_EVENTS);
        })
    });
    group.bench_function("store_iter_all", |b| {
        b.iter(|| {
            let mut events = 0u64;
            for record in store.iter_all(1) {
                black_box(record.expect("the record is sound"));
                events += 1;
            }
            assert_eq!(events, LOG_EVENTS);
        })
    });
    {
        let records: Vec<RecordedEvent> = store
            .iter_all(1)
            .map(|record| record.expect("the record is sound"))
            .collect();
        group.bench_function("replay_fold_only", |b| {
            b.iter(|| {
                let mut replay = Replay::new();
                for record in &records {
                    replay.apply(record).expect("the record folds");
                }
                black_box(replay)
            })
        });
    }
    group.bench_function("audit_replay_position_order", |b| {
        b.iter(|| {
            let mut replay = Replay::new();
            for record in store.iter_all(1) {
                replay
                    .apply(&record.expect("the record is sound"))
                    .expect("the record folds");
            }
            assert_eq!(replay.events(), LOG_EVENTS);
            black_box(replay)
        })
    });
    group.bench_function("audit_replay", |b| {
        b.iter(|| {
            let replay = Replay::from_store(&store).expect("the log replays");
            assert_eq!(replay.events(), LOG_EVENTS);
            black_box(replay)
        })
    });
    drop(store);
    {
        // The store's own default cache, which the audit does not use: the records no
        // longer fit, and every pass reads pages back from the file.
        let store = SledStore::open(
            &dir,
            SledOptions {
                in_use_wait: IN_USE_WAIT,
                ..SledOptions::default()
            },
        )
        .expect("the store opens");
        group.bench_function("audit_replay_store_default_cache", |b| {
            b.iter(|| {
                let replay = Replay::from_store(&store).expect("the log replays");
                assert_eq!(replay.events(), LOG_EVENTS);
                black_box(replay)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, audit_replay);
criterion_main!(benches);
