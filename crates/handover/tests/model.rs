//! Model-based test of the runtime over a real sled directory.
//!
//! The reference model is the pure domain (`handover_core`'s `decide` and `evolve`, the
//! `Roster`, the `Directory` of humans and the loads the runtime's board counts) plus the list
//! of events each stream must hold. proptest generates sequences of steps: commands from every
//! identity (the customer, another customer, human agents, the assigned AI agent, other AI
//! agents, stale and future epochs) on several conversations and on one that was never opened
//! (opening with or without a human, in a team's queue, posting, handing off, reclaiming,
//! escalating, closing, assigning, accepting, transferring, notes, flags, the clock's tick),
//! AI-agent registrations, `Reopen` (shut down, open the directory
//! again) and `CrashReopen` (copy the data directory while the store is open and idle, which is
//! what a killed process leaves behind, then continue on the copy). Some commands go through
//! `Handover::execute_once` with a new command id, and `Retry` sends one of them again later,
//! possibly after reopens and crash copies: a recorded command is answered with its first
//! receipt's events (same seqs and positions) and records nothing; one that was not recorded
//! is decided afresh.
//!
//! The system under test is `Handover` over a `SledStore` the test also holds. The runtime,
//! not the bare store, because the properties at stake are the runtime's: its actors decide on
//! state rebuilt from the log (after a restart, a crash, or passivation), a rejected command
//! records nothing, and a deactivation escalates what the agent held. Holding the store too
//! lets every step compare the log itself with the model: after each step every stream holds
//! exactly the model's events with seqs from 1, versions agree, the global order has no gap and
//! holds each step's events after the previous step's, and the actor's state equals the
//! model's.
//!
//! AI agents are attached with a behaviour that does nothing, so the only AI commands are the
//! ones the steps send (through `Handover::execute` or `execute_once`) and the run is
//! deterministic. The humans are `ana`, a signed-in agent (who may act only on the
//! conversations she answers for), `bruno`, a signed-in supervisor (who may act on any), and
//! `carla`, never registered; the model holds the same directory as the runtime. Routing is
//! off, and the runtime and the model read the same `ManualClock`, which moves 100 ms between
//! steps: the events' times agree, and no deadline passes during a case, so the runtime
//! records nothing on its own.
//!
//! `PROPTEST_CASES=N` sets the number of cases (default 160); `HANDOVER_MODEL_SEED=S`
//! replays a run (the seed is printed at the start and on failure).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use handover::*;
use handover_core::{
    agent, conversation, human, AiAgentCommand, Conversation, Ctx, HumanCommand, Roster,
};
use handover_sled::{SledOptions, SledStore};
use handover_store::{EventStore, SeqRange};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{
    Config as RunnerConfig, RngAlgorithm, TestCaseError, TestRng, TestRunner,
};

/// Cases when `PROPTEST_CASES` is not set: enough to reach every rejection and about eighty
/// crash copies, in about 15 seconds.
const CASES_DEFAULT: u32 = 160;
/// Most steps in one case.
const STEPS_MAX: usize = 40;

const CUSTOMERS: [&str; 2] = ["cust-1", "cust-2"];
/// `ana` is registered as an agent of the `billing` team, `bruno` as a supervisor, both signed
/// in; `carla` never registers.
const HUMANS: [&str; 3] = ["ana", "bruno", "carla"];
/// The team whose queue `ana` takes conversations from.
const BILLING: &str = "billing";
/// How far the clock moves between two steps: far below every deadline over a whole case.
const STEP_MILLIS: u64 = 100;
/// `bot-a` and `bot-b` are attached once registered; `bot-c` never is, so handing off to it
/// while it is active is `Error::AiAgentNotRunning`.
const AGENTS: [&str; 3] = ["bot-a", "bot-b", "bot-c"];
const ATTACHED_AGENTS: usize = 2;
/// Plain questions, and phrases the default policy hears as a request for a human, a
/// complaint and a negotiation.
const TEXTS: [&str; 5] = [
    "Is shipping free?",
    "When do you open?",
    "I want to talk to a human",
    "This is unacceptable",
    "Can I get a discount?",
];
/// A conversation id no step ever opens.
const GHOST: &str = "0190f1f0-0000-7000-8000-00000000dead";

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

/// Which conversation a step addresses: one opened so far (chosen by index), or one that
/// was never opened.
#[derive(Clone, Debug)]
enum Target {
    Known(Index),
    Ghost,
}

/// Which epoch an AI command claims, relative to the conversation's current one.
#[derive(Clone, Copy, Debug)]
enum EpochPick {
    Current,
    Previous,
    Next,
}

#[derive(Clone, Copy, Debug)]
struct AiPick {
    agent: usize,
    epoch: EpochPick,
}

#[derive(Clone, Copy, Debug)]
enum Who {
    Customer,
    OtherCustomer,
    Human(usize),
    Ai(AiPick),
}

#[derive(Clone, Debug)]
enum Step {
    Open {
        customer: usize,
        human: Option<usize>,
    },
    OpenAgain {
        conversation: Index,
    },
    Post {
        target: Target,
        by: Who,
        text: usize,
    },
    HandOff {
        target: Target,
        human: usize,
        agent: usize,
        reason: bool,
    },
    RecordSkill {
        target: Target,
        by: AiPick,
        succeeded: bool,
    },
    Reclaim {
        target: Target,
        human: usize,
        reason: bool,
    },
    Escalate {
        target: Target,
        by: AiPick,
        cause: usize,
    },
    Close {
        target: Target,
        by: Who,
        reason: bool,
    },
    /// Opens a conversation in the default tenant, in the `billing` queue or the general one.
    Start {
        customer: usize,
        billing: bool,
        human: Option<usize>,
    },
    /// A human (a supervisor, if the rules agree) gives the conversation to a human.
    Assign {
        target: Target,
        by: usize,
        to: usize,
    },
    Accept {
        target: Target,
        human: usize,
    },
    /// To a human, or (`None`) to the `billing` queue.
    Transfer {
        target: Target,
        by: usize,
        to: Option<usize>,
    },
    Whisper {
        target: Target,
        human: usize,
        to_ai: bool,
    },
    RaiseFlag {
        target: Target,
        by: Who,
    },
    LowerFlag {
        target: Target,
        human: usize,
    },
    /// The clock's command, sent by hand: no deadline passes during a case, so it is accepted
    /// with no event.
    Tick {
        target: Target,
    },
    Register {
        agent: usize,
    },
    Activate {
        agent: usize,
    },
    Deactivate {
        agent: usize,
    },
    /// Sends again, with the same command id, a command sent earlier with `execute_once`.
    Retry {
        sent: Index,
    },
    Reopen,
    CrashReopen,
}

fn agent_index() -> impl Strategy<Value = usize> {
    prop_oneof![4 => Just(0usize), 2 => Just(1usize), 1 => Just(2usize)]
}

/// Mostly the two signed-in humans; now and then `carla`, whom the directory does not know.
fn human_index() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(0usize), 3 => Just(1usize), 1 => Just(2usize)]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![12 => any::<Index>().prop_map(Target::Known), 1 => Just(Target::Ghost)]
}

fn ai_pick() -> impl Strategy<Value = AiPick> {
    let epoch = prop_oneof![
        6 => Just(EpochPick::Current),
        2 => Just(EpochPick::Previous),
        1 => Just(EpochPick::Next),
    ];
    (agent_index(), epoch).prop_map(|(agent, epoch)| AiPick { agent, epoch })
}

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        4 => Just(Who::Customer),
        1 => Just(Who::OtherCustomer),
        3 => human_index().prop_map(Who::Human),
        4 => ai_pick().prop_map(Who::Ai),
    ]
}

fn text_index() -> impl Strategy<Value = usize> {
    prop_oneof![10 => 0..2usize, 1 => Just(2usize), 1 => Just(3usize), 1 => Just(4usize)]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..CUSTOMERS.len(), proptest::option::of(human_index()))
            .prop_map(|(customer, human)| Step::Open { customer, human }),
        1 => any::<Index>().prop_map(|conversation| Step::OpenAgain { conversation }),
        10 => (target(), who(), text_index())
            .prop_map(|(target, by, text)| Step::Post { target, by, text }),
        6 => (target(), human_index(), agent_index(), any::<bool>())
            .prop_map(|(target, human, agent, reason)| Step::HandOff { target, human, agent, reason }),
        3 => (target(), ai_pick(), any::<bool>())
            .prop_map(|(target, by, succeeded)| Step::RecordSkill { target, by, succeeded }),
        4 => (target(), human_index(), any::<bool>())
            .prop_map(|(target, human, reason)| Step::Reclaim { target, human, reason }),
        2 => (target(), ai_pick(), 0..3usize)
            .prop_map(|(target, by, cause)| Step::Escalate { target, by, cause }),
        1 => (target(), who(), any::<bool>())
            .prop_map(|(target, by, reason)| Step::Close { target, by, reason }),
        1 => (0..CUSTOMERS.len(), any::<bool>(), proptest::option::of(human_index()))
            .prop_map(|(customer, billing, human)| Step::Start { customer, billing, human }),
        2 => (target(), human_index(), human_index())
            .prop_map(|(target, by, to)| Step::Assign { target, by, to }),
        2 => (target(), human_index()).prop_map(|(target, human)| Step::Accept { target, human }),
        2 => (target(), human_index(), proptest::option::of(human_index()))
            .prop_map(|(target, by, to)| Step::Transfer { target, by, to }),
        1 => (target(), human_index(), any::<bool>())
            .prop_map(|(target, human, to_ai)| Step::Whisper { target, human, to_ai }),
        1 => (target(), who()).prop_map(|(target, by)| Step::RaiseFlag { target, by }),
        1 => (target(), human_index()).prop_map(|(target, human)| Step::LowerFlag { target, human }),
        1 => target().prop_map(|target| Step::Tick { target }),
        1 => (0..AGENTS.len()).prop_map(|agent| Step::Register { agent }),
        2 => (0..AGENTS.len()).prop_map(|agent| Step::Activate { agent }),
        2 => (0..AGENTS.len()).prop_map(|agent| Step::Deactivate { agent }),
        3 => any::<Index>().prop_map(|sent| Step::Retry { sent }),
        1 => Just(Step::Reopen),
        1 => Just(Step::CrashReopen),
    ]
}

/// A step, and whether a conversation command in it goes through `execute_once` with a new
/// command id (which a later `Retry` may send again).
fn planned() -> impl Strategy<Value = (Step, bool)> {
    (step(), proptest::bool::weighted(0.4))
}

/// How a case runs the runtime: the store's durability (both survive a process crash) and
/// whether idle conversation actors are passivated almost at once.
#[derive(Clone, Copy, Debug)]
struct Setup {
    durability: Durability,
    passivate: bool,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        prop_oneof![Just(Durability::Durable), Just(Durability::ProcessCrash)],
        any::<bool>(),
    )
        .prop_map(|(durability, passivate)| Setup {
            durability,
            passivate,
        })
}

/// One conversation as the model knows it.
struct ModelConversation {
    id: ConversationId,
    state: Conversation,
    events: Vec<ConversationEvent>,
}

/// The reference: the pure domain, and every stream's events.
#[derive(Default)]
struct Model {
    roster: Roster,
    directory: Directory,
    /// Every human's stream.
    humans: BTreeMap<HumanId, Vec<HumanEvent>>,
    /// The runtime's clock, which the model reads too.
    clock: Option<ManualClock>,
    attached: BTreeSet<AiAgentId>,
    conversations: Vec<ModelConversation>,
    agents: BTreeMap<AiAgentId, Vec<AiAgentEvent>>,
    /// The (stream, seq) each accepted step recorded, step by step: the global order must
    /// hold each group after the one before (within a group the order is free, since a
    /// deactivation escalates its conversations concurrently).
    groups: Vec<Vec<(StreamId, u64)>>,
    /// Every command sent with `execute_once`, and what it recorded, if it did.
    sent: Vec<Sent>,
    /// How many `Reopen` and `CrashReopen` steps ran so far.
    reopens: u64,
    crashes: u64,
}

/// A command sent with a command id.
struct Sent {
    slot: Option<usize>,
    command_id: CommandId,
    command: ConversationCommand,
    /// The (seq, position, event) of each event it recorded.
    recorded: Option<Vec<(u64, u64, Event)>>,
    /// `Model::reopens` and `Model::crashes` when it was recorded.
    recorded_after: (u64, u64),
}

/// What the model says a conversation command must come to.
#[derive(Debug)]
enum Expected {
    Recorded(Vec<ConversationEvent>, Box<Conversation>),
    Rejected(Rejection),
    Unknown,
    NotRunning(AiAgentId),
}

/// Counts over the whole run (shrinking included), printed at the end.
#[derive(Default, Debug)]
struct Tally {
    cases: u64,
    steps: u64,
    accepted: u64,
    rejected: u64,
    unknown: u64,
    not_running: u64,
    events: u64,
    reopens: u64,
    crash_reopens: u64,
    once: u64,
    retries: u64,
    retries_answered_from_log: u64,
    retries_across_reopen: u64,
    retries_across_crash: u64,
    rejections: BTreeMap<String, u64>,
}

/// Does nothing: every AI command comes from the steps.
struct Silent;

#[async_trait::async_trait]
impl AiAgentBehavior for Silent {
    async fn on_customer_message(&self, _: &AiSession, _: &MessageText) -> Result<(), AgentError> {
        Ok(())
    }
}

/// The runtime under test, and the directories it has used.
struct Live {
    handover: Handover,
    store: Arc<SledStore>,
    dir: PathBuf,
    setup: Setup,
    /// Every directory of the case, the current one last; removed when the case ends.
    dirs: Vec<tempfile::TempDir>,
}

fn store_options(setup: Setup, clock: &ManualClock) -> SledOptions {
    let clock = clock.clone();
    SledOptions {
        durability: setup.durability,
        // A directory just closed in this process can read as in use for a moment.
        in_use_wait: Duration::from_secs(10),
        // Records are stamped by the runtime's clock, as `Handover::start` does.
        time_source: Some(TimeSource::new(move || RecordedAt(clock.now().0))),
        ..SledOptions::default()
    }
}

async fn start(
    dir: &Path,
    setup: Setup,
    model: &Model,
) -> Result<(Handover, Arc<SledStore>), String> {
    let clock = model.clock.clone().ok_or("the model has no clock")?;
    let store = Arc::new(
        SledStore::open(dir, store_options(setup, &clock))
            .map_err(|e| format!("open {}: {e}", dir.display()))?,
    );
    let passivate_after = setup.passivate.then(|| Duration::from_millis(2));
    let config = Config::new(dir)
        .workers(2)
        .passivate_after(passivate_after)
        .router(Arc::new(NoRouter))
        .clock(Arc::new(clock));
    let handover =
        Handover::start_with_store(Arc::clone(&store) as Arc<dyn EventStore>, config.runtime)
            .await
            .map_err(|e| format!("start: {e}"))?;
    for agent_id in &model.attached {
        handover
            .attach_ai_agent(agent_id.clone(), Arc::new(Silent))
            .map_err(|e| format!("attach {agent_id}: {e}"))?;
    }
    Ok((handover, store))
}

/// Copies a directory tree file by file, as the page cache holds it now.
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

impl Live {
    async fn new(setup: Setup, model: &Model) -> Result<Live, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().to_path_buf();
        let (handover, store) = start(&path, setup, model).await?;
        Ok(Live {
            handover,
            store,
            dir: path,
            setup,
            dirs: vec![dir],
        })
    }

    /// Shuts the runtime down and releases the store.
    async fn stop(self) -> (PathBuf, Setup, Vec<tempfile::TempDir>) {
        self.handover.shutdown().await;
        drop(self.store);
        (self.dir, self.setup, self.dirs)
    }

    async fn reopen(self, model: &Model) -> Result<Live, String> {
        let (dir, setup, dirs) = self.stop().await;
        let (handover, store) = start(&dir, setup, model).await?;
        Ok(Live {
            handover,
            store,
            dir,
            setup,
            dirs,
        })
    }

    /// Copies the directory while the store is open and no write is in progress (every
    /// command of the step before was acknowledged), abandons the original, and continues on
    /// the copy.
    async fn crash_reopen(self, model: &Model) -> Result<Live, String> {
        let copy = tempfile::tempdir().map_err(|e| e.to_string())?;
        copy_dir(&self.dir, copy.path()).map_err(|e| format!("copy: {e}"))?;
        let (_, setup, mut dirs) = self.stop().await;
        let dir = copy.path().to_path_buf();
        dirs.push(copy);
        let (handover, store) = start(&dir, setup, model).await?;
        Ok(Live {
            handover,
            store,
            dir,
            setup,
            dirs,
        })
    }
}

fn ghost() -> ConversationId {
    id(GHOST)
}

fn reason(given: bool) -> Option<Reason> {
    given.then(|| Reason::new("the customer prefers it").unwrap())
}

impl Model {
    fn index_of(&self, target: &Target) -> Option<usize> {
        match target {
            Target::Known(index) if !self.conversations.is_empty() => {
                Some(index.index(self.conversations.len()))
            }
            _ => None,
        }
    }

    fn conversation_id(&self, slot: Option<usize>) -> ConversationId {
        slot.map_or_else(ghost, |i| self.conversations[i].id)
    }

    fn state(&self, slot: Option<usize>) -> Conversation {
        slot.map_or(Conversation::NotOpened, |i| {
            self.conversations[i].state.clone()
        })
    }

    fn assignment(&self, slot: Option<usize>, pick: AiPick) -> Assignment {
        let current = match self.state(slot) {
            Conversation::Open(open) | Conversation::Closed(open) => open.epoch.0,
            Conversation::NotOpened => 0,
        };
        let epoch = match pick.epoch {
            EpochPick::Current => current,
            EpochPick::Previous => current.saturating_sub(1),
            EpochPick::Next => current + 1,
        };
        Assignment {
            agent_id: id(AGENTS[pick.agent]),
            epoch: Epoch(epoch),
        }
    }

    fn participant(&self, slot: Option<usize>, who: Who) -> Participant {
        let customer = match self.state(slot) {
            Conversation::Open(open) | Conversation::Closed(open) => open.customer,
            Conversation::NotOpened => id(CUSTOMERS[0]),
        };
        match who {
            Who::Customer => Participant::Customer(customer),
            Who::OtherCustomer => Participant::Customer(
                CUSTOMERS
                    .iter()
                    .map(|c| id::<CustomerId>(c))
                    .find(|c| *c != customer)
                    .unwrap(),
            ),
            Who::Human(h) => Participant::Human(id(HUMANS[h])),
            Who::Ai(pick) => Participant::Ai(self.assignment(slot, pick)),
        }
    }

    /// What the runtime must answer to `command` on the conversation in `slot`.
    fn expect(&self, slot: Option<usize>, command: &ConversationCommand) -> Expected {
        if let ConversationCommand::HandOffToAi { agent_id, .. } = command {
            let active = self.roster.get(agent_id).is_some_and(|a| a.active);
            if active && !self.attached.contains(agent_id) {
                return Expected::NotRunning(agent_id.clone());
            }
        }
        let policy = DefaultPolicy::default();
        let loads = self.loads();
        let ctx = self.ctx(&policy).with_loads(&loads);
        match conversation::decide_with_state(&self.state(slot), command, &ctx) {
            Ok((events, next)) => Expected::Recorded(events, Box::new(next)),
            Err(Rejection::NotOpened) => Expected::Unknown,
            Err(rejection) => Expected::Rejected(rejection),
        }
    }

    /// Records accepted events of the conversation in `slot`.
    fn record(&mut self, slot: usize, events: Vec<ConversationEvent>, next: Conversation) {
        let conversation = &mut self.conversations[slot];
        let stream = StreamId::Conversation(conversation.id);
        let first = conversation.events.len() as u64 + 1;
        let group = (first..first + events.len() as u64)
            .map(|seq| (stream.clone(), seq))
            .collect();
        conversation.events.extend(events);
        conversation.state = next;
        self.groups.push(group);
    }

    fn total_events(&self) -> usize {
        self.conversations
            .iter()
            .map(|c| c.events.len())
            .sum::<usize>()
            + self.agents.values().map(Vec::len).sum::<usize>()
            + self.humans.values().map(Vec::len).sum::<usize>()
    }

    /// How many open conversations each human handles, as the runtime's board counts them:
    /// those whose controller they are.
    fn loads(&self) -> Loads {
        let mut loads = Loads::new();
        for c in &self.conversations {
            if let Conversation::Open(open) = &c.state {
                if let Some(human) = open.assigned_human() {
                    loads.add(human);
                }
            }
        }
        loads
    }

    /// What the rules consult, as the runtime has it: the roster, the directory, the default
    /// settings, and now by the shared clock (the loads, for the commands that read them, are
    /// added by the caller).
    fn ctx<'a>(&'a self, policy: &'a DefaultPolicy) -> Ctx<'a> {
        let now = self.clock.as_ref().map(Clock::now).unwrap_or_default();
        Ctx::new(&self.roster, policy)
            .with_directory(&self.directory)
            .at(now)
    }
}

fn rejection_name(rejection: &Rejection) -> String {
    format!("{rejection:?}")
        .split([' ', '{', '('])
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// Checks the runtime's answer against the model's and returns the recorded events.
fn compare(
    expected: &Expected,
    actual: &Result<Receipt, Error>,
    version: u64,
    tally: &mut Tally,
) -> Result<(), String> {
    match (expected, actual) {
        (Expected::Recorded(events, next), Ok(receipt)) => {
            let got: Vec<&Event> = receipt.events.iter().map(|r| &r.event).collect();
            let want: Vec<Event> = events.iter().cloned().map(Event::Conversation).collect();
            if got != want.iter().collect::<Vec<_>>() {
                return Err(format!("recorded {got:?}, the model says {want:?}"));
            }
            let seqs: Vec<u64> = receipt.events.iter().map(|r| r.seq).collect();
            let want_seqs: Vec<u64> = (version + 1..=version + events.len() as u64).collect();
            if seqs != want_seqs {
                return Err(format!("receipt seqs {seqs:?}, expected {want_seqs:?}"));
            }
            if receipt.status != next.status() {
                return Err(format!(
                    "receipt status {:?}, the model says {:?}",
                    receipt.status,
                    next.status()
                ));
            }
            tally.accepted += 1;
            tally.events += events.len() as u64;
            Ok(())
        }
        (Expected::Rejected(want), Err(Error::Rejected(got))) if want == got => {
            tally.rejected += 1;
            *tally.rejections.entry(rejection_name(got)).or_default() += 1;
            Ok(())
        }
        (Expected::Unknown, Err(Error::UnknownConversation(_))) => {
            tally.unknown += 1;
            Ok(())
        }
        (Expected::NotRunning(want), Err(Error::AiAgentNotRunning(got))) if want == got => {
            tally.not_running += 1;
            Ok(())
        }
        (expected, actual) => Err(format!(
            "the runtime answered {:?}, the model expects {expected:?}",
            actual.as_ref().map(|r| r.events.len())
        )),
    }
}

/// Runs one conversation command on the runtime and on the model and compares them.
///
/// With `once`, the command goes through `execute_once` with a new command id, remembered for
/// a later `Retry`.
async fn conversation_step(
    live: &Live,
    model: &mut Model,
    slot: Option<usize>,
    command: ConversationCommand,
    once: bool,
    tally: &mut Tally,
) -> Result<(), String> {
    let conversation_id = model.conversation_id(slot);
    let expected = model.expect(slot, &command);
    let command_id = once.then(CommandId::new);
    let actual = match command_id {
        Some(command_id) => {
            tally.once += 1;
            live.handover
                .execute_once(conversation_id, command_id, command.clone())
                .await
        }
        None => {
            live.handover
                .execute(conversation_id, command.clone())
                .await
        }
    };
    let version = slot.map_or(0, |i| model.conversations[i].events.len() as u64);
    compare(&expected, &actual, version, tally)?;
    if let Some(command_id) = command_id {
        model.sent.push(Sent {
            slot,
            command_id,
            command,
            recorded: recorded(&actual),
            recorded_after: (model.reopens, model.crashes),
        });
    }
    if let (Expected::Recorded(events, next), Some(slot)) = (expected, slot) {
        model.record(slot, events, *next);
    }
    Ok(())
}

/// The (seq, position, event) of each event a receipt reports; `None` for a command that
/// recorded nothing (rejected, or accepted with no event, as a tick with nothing due), which
/// the store cannot remember.
fn recorded(actual: &Result<Receipt, Error>) -> Option<Vec<(u64, u64, Event)>> {
    let receipt = actual.as_ref().ok().filter(|r| !r.events.is_empty());
    receipt.map(|receipt| {
        receipt
            .events
            .iter()
            .map(|r| (r.seq, r.position, r.event.clone()))
            .collect()
    })
}

/// Sends an earlier `execute_once` command again with its id. If it was recorded, the answer
/// is its first receipt's events (same seqs and positions) with the status now, and nothing is
/// recorded, whatever the rules say of the command today; otherwise it is decided afresh.
async fn retry_step(
    live: &Live,
    model: &mut Model,
    sent: usize,
    tally: &mut Tally,
) -> Result<(), String> {
    tally.retries += 1;
    let (slot, command_id, command) = {
        let sent = &model.sent[sent];
        (sent.slot, sent.command_id, sent.command.clone())
    };
    let conversation_id = model.conversation_id(slot);
    let actual = live
        .handover
        .execute_once(conversation_id, command_id, command.clone())
        .await;
    let not_running = match model.expect(slot, &command) {
        Expected::NotRunning(agent_id) => Some(agent_id),
        _ => None,
    };
    match (&model.sent[sent].recorded, not_running) {
        (Some(first), None) => {
            let receipt = actual.map_err(|error| {
                format!("a retry of a recorded command was answered {error:?}, not its receipt")
            })?;
            let got = recorded(&Ok(receipt.clone())).unwrap_or_default();
            if got != *first {
                return Err(format!(
                    "a retry was answered with {got:?}, the first attempt recorded {first:?}"
                ));
            }
            let status = model.state(slot).status();
            if receipt.status != status {
                return Err(format!(
                    "a retry's receipt says {:?}, the conversation is {status:?}",
                    receipt.status
                ));
            }
            tally.retries_answered_from_log += 1;
            let (reopens, crashes) = model.sent[sent].recorded_after;
            if reopens < model.reopens {
                tally.retries_across_reopen += 1;
            }
            if crashes < model.crashes {
                tally.retries_across_crash += 1;
            }
            Ok(())
        }
        _ => {
            // Never recorded: decided afresh, and remembered if it is recorded now.
            let expected = model.expect(slot, &command);
            let version = slot.map_or(0, |i| model.conversations[i].events.len() as u64);
            compare(&expected, &actual, version, tally)?;
            model.sent[sent].recorded = recorded(&actual);
            model.sent[sent].recorded_after = (model.reopens, model.crashes);
            if let (Expected::Recorded(events, next), Some(slot)) = (expected, slot) {
                model.record(slot, events, *next);
            }
            Ok(())
        }
    }
}

async fn agent_step(
    live: &Live,
    model: &mut Model,
    agent: usize,
    command: AiAgentCommand,
    tally: &mut Tally,
) -> Result<(), String> {
    let agent_id: AiAgentId = id(AGENTS[agent]);
    let expected = agent::decide(&agent_id, model.roster.get(&agent_id), &command);
    let actual = match &command {
        AiAgentCommand::Register { name, specialties } => {
            live.handover
                .register_ai_agent(AiAgentProfile {
                    id: agent_id.clone(),
                    name: name.clone(),
                    specialties: specialties.clone(),
                })
                .await
        }
        AiAgentCommand::Activate => live.handover.activate_ai_agent(agent_id.clone()).await,
        AiAgentCommand::Deactivate => live.handover.deactivate_ai_agent(agent_id.clone()).await,
        other => return Err(format!("the model does not drive {other:?}")),
    };
    match (expected, actual) {
        (Ok(events), Ok(())) => {
            tally.accepted += 1;
            tally.events += events.len() as u64;
            let stream = StreamId::AiAgent(agent_id.clone());
            let recorded = model.agents.entry(agent_id.clone()).or_default();
            let first = recorded.len() as u64 + 1;
            model.groups.push(
                (first..first + events.len() as u64)
                    .map(|seq| (stream.clone(), seq))
                    .collect(),
            );
            for event in &events {
                model.roster.evolve(event).map_err(|r| r.to_string())?;
            }
            recorded.extend(events.iter().cloned());
            if matches!(command, AiAgentCommand::Register { .. }) && agent < ATTACHED_AGENTS {
                live.handover
                    .attach_ai_agent(agent_id.clone(), Arc::new(Silent))
                    .map_err(|e| format!("attach: {e}"))?;
                model.attached.insert(agent_id.clone());
            }
            if matches!(command, AiAgentCommand::Deactivate) {
                // Every conversation the agent held was escalated before the call returned.
                let policy = DefaultPolicy::default();
                let mut escalated = Vec::new();
                for (slot, c) in model.conversations.iter().enumerate() {
                    let Some(assignment) = c.state.assignment() else {
                        continue;
                    };
                    if assignment.agent_id != agent_id {
                        continue;
                    }
                    let command = ConversationCommand::Escalate {
                        by: assignment,
                        reason: Reason::new("the AI agent was deactivated").unwrap(),
                        cause: EscalationCause::AgentDeactivated,
                    };
                    let ctx = model.ctx(&policy);
                    let (events, next) = conversation::decide_with_state(&c.state, &command, &ctx)
                        .map_err(|r| format!("the model cannot escalate: {r}"))?;
                    escalated.push((slot, events, next));
                }
                let mut group = Vec::new();
                for (slot, events, next) in escalated {
                    tally.events += events.len() as u64;
                    model.record(slot, events, next);
                    group.extend(model.groups.pop().unwrap());
                }
                if !group.is_empty() {
                    model.groups.push(group);
                }
            }
            Ok(())
        }
        (Err(want), Err(Error::Rejected(got))) if want == got => {
            tally.rejected += 1;
            *tally.rejections.entry(rejection_name(&got)).or_default() += 1;
            Ok(())
        }
        (expected, actual) => Err(format!(
            "agent command {command:?}: the runtime answered {actual:?}, the model expects {expected:?}"
        )),
    }
}

/// Registers `HUMANS[human]` with `role` and signs them in, on the runtime and on the model,
/// and checks that both recorded the same.
async fn sign_in(live: &Live, model: &mut Model, human: usize, role: Role) -> Result<(), String> {
    let human_id: HumanId = id(HUMANS[human]);
    let name = AgentName::new(HUMANS[human]).unwrap();
    let new = match role {
        Role::Agent => NewHuman::agent(human_id.clone(), name).teams(vec![id(BILLING)]),
        _ => NewHuman::supervisor(human_id.clone(), name),
    };
    let commands = [
        HumanCommand::Register {
            tenant: new.tenant.clone(),
            name: new.name.clone(),
            role: new.role,
            teams: new.teams.clone(),
            capacity: new.capacity,
        },
        HumanCommand::SetPresence {
            presence: Presence::Available,
        },
    ];
    live.handover
        .register_human(new)
        .await
        .map_err(|e| format!("register {human_id}: {e}"))?;
    live.handover
        .set_presence(human_id.clone(), Presence::Available)
        .await
        .map_err(|e| format!("sign {human_id} in: {e}"))?;
    for command in commands {
        let events = human::decide(&human_id, model.directory.get(&human_id), &command)
            .map_err(|r| format!("the model refuses {command:?}: {r}"))?;
        let stream = StreamId::Human(human_id.clone());
        let recorded = model.humans.entry(human_id.clone()).or_default();
        let first = recorded.len() as u64 + 1;
        model.groups.push(
            (first..first + events.len() as u64)
                .map(|seq| (stream.clone(), seq))
                .collect(),
        );
        for event in &events {
            model
                .directory
                .evolve(event)
                .map_err(|r| format!("the model cannot apply {event:?}: {r}"))?;
        }
        recorded.extend(events);
    }
    match live.handover.human(&human_id) {
        Some(view) if view.presence == Presence::Available && view.role == role => Ok(()),
        other => Err(format!("{human_id} reads {other:?} after signing in")),
    }
}

fn profile_name(agent: usize) -> AgentName {
    AgentName::new(format!("{} bot", AGENTS[agent])).unwrap()
}

async fn run_step(
    live: Live,
    model: &mut Model,
    step: &Step,
    once: bool,
    tally: &mut Tally,
) -> Result<Live, String> {
    tally.steps += 1;
    let conversation = |model: &Model, target: &Target| model.index_of(target);
    match step {
        Step::Open { customer, human } => {
            let conversation_id = ConversationId::from_uuid(uuid::Uuid::now_v7());
            model.conversations.push(ModelConversation {
                id: conversation_id,
                state: Conversation::NotOpened,
                events: Vec::new(),
            });
            let slot = model.conversations.len() - 1;
            let command = ConversationCommand::Open {
                customer: id(CUSTOMERS[*customer]),
                channel: id("web-chat"),
                human: human.map(|h| id(HUMANS[h])),
            };
            conversation_step(&live, model, Some(slot), command, once, tally).await?;
        }
        Step::OpenAgain { conversation } => {
            if !model.conversations.is_empty() {
                let slot = conversation.index(model.conversations.len());
                let command = ConversationCommand::Open {
                    customer: id(CUSTOMERS[0]),
                    channel: id("whatsapp"),
                    human: None,
                };
                conversation_step(&live, model, Some(slot), command, once, tally).await?;
            }
        }
        Step::Post { target, by, text } => {
            let slot = conversation(model, target);
            let command = ConversationCommand::PostMessage {
                by: model.participant(slot, *by),
                text: MessageText::new(TEXTS[*text]).unwrap(),
            };
            conversation_step(&live, model, slot, command, once, tally).await?;
        }
        Step::HandOff {
            target,
            human,
            agent,
            reason: with_reason,
        } => {
            let slot = conversation(model, target);
            let command = ConversationCommand::HandOffToAi {
                by: id(HUMANS[*human]),
                agent_id: id(AGENTS[*agent]),
                reason: reason(*with_reason),
            };
            conversation_step(&live, model, slot, command, once, tally).await?;
        }
        Step::RecordSkill {
            target,
            by,
            succeeded,
        } => {
            let slot = conversation(model, target);
            let data = SkillData::new("9:00-17:00").unwrap();
            let command = ConversationCommand::RecordAiAction {
                by: model.assignment(slot, *by),
                skill: Skill {
                    name: SkillName::new("lookup_hours").unwrap(),
                    input: SkillData::new("store=main").unwrap(),
                    outcome: if *succeeded {
                        SkillOutcome::Succeeded(data)
                    } else {
                        SkillOutcome::Failed(data)
                    },
                },
            };
            conversation_step(&live, model, slot, command, once, tally).await?;
        }
        Step::Reclaim {
            target,
            human,
            reason: with_reason,
        } => {
            let slot = conversation(model, target);
            let command = ConversationCommand::Reclaim {
                by: id(HUMANS[*human]),
                reason: reason(*with_reason),
            };
            conversation_step(&live, model, slot, command, once, tally).await?;
        }
        Step::Escalate { target, by, cause } => {
            let slot = conversation(model, target);
            let command = ConversationCommand::Escalate {
                by: model.assignment(slot, *by),
                reason: Reason::new("cannot help with this").unwrap(),
                cause: [
                    EscalationCause::AgentRequested,
                    EscalationCause::CustomerAskedForHuman,
                    EscalationCause::AgentDeactivated,
                ][*cause],
            };
            conversation_step(&live, model, slot, command, once, tally).await?;
        }
        Step::Close {
            target,
            by,
            reason: with_reason,
        } => {
            let slot = conversation(model, target);
            let command = ConversationCommand::Close {
                by: model.participant(slot, *by),
                reason: reason(*with_reason),
            };
            conversation_step(&live, model, slot, command, once, tally).await?;
        }
        Step::Start {
            customer,
            billing,
            human,
        } => {
            let conversation_id = ConversationId::from_uuid(uuid::Uuid::now_v7());
            model.conversations.push(ModelConversation {
                id: conversation_id,
                state: Conversation::NotOpened,
                events: Vec::new(),
            });
            let slot = model.conversations.len() - 1;
            let command = ConversationCommand::Start {
                tenant: TenantId::default_tenant(),
                customer: id(CUSTOMERS[*customer]),
                channel: id("whatsapp"),
                team: billing.then(|| id(BILLING)),
                language: billing.then(|| id("pt-BR")),
                human: human.map(|h| id(HUMANS[h])),
            };
            conversation_step(&live, model, Some(slot), command, once, tally).await?;
        }
        Step::Assign { target, by, to } => {
            let slot = conversation(model, target);
            let command = ConversationCommand::Assign {
                by: Participant::Human(id(HUMANS[*by])),
                to: id(HUMANS[*to]),
            };
            conversation_step(&live, model, slot, command, once, tally).await?;
        }
        Step::Accept { target, human } => {
            let slot = conversation(model, target);
            let command = ConversationCommand::Accept {
                by: id(HUMANS[*human]),
            };
            conversation_step(&live, model, slot, command, once, tally).await?;
        }
        Step::Transfer { target, by, to } => {
            let slot = conversation(model, target);
            let command = ConversationCommand::Transfer {
                by: id(HUMANS[*by]),
                to: match to {
                    Some(to) => TransferTarget::Human(id(HUMANS[*to])),
                    None => TransferTarget::Team(id(BILLING)),
                },
                reason: Reason::new("the right person for it").unwrap(),
            };
            conversation_step(&live, model, slot, command, once, tally).await?;
        }
        Step::Whisper {
            target,
            human,
            to_ai,
        } => {
            let slot = conversation(model, target);
            let command = ConversationCommand::Whisper {
                by: id(HUMANS[*human]),
                to: if *to_ai {
                    NoteAudience::Ai
                } else {
                    NoteAudience::Staff
                },
                text: MessageText::new("Offer the annual plan").unwrap(),
            };
            conversation_step(&live, model, slot, command, once, tally).await?;
        }
        Step::RaiseFlag { target, by } => {
            let slot = conversation(model, target);
            let command = ConversationCommand::RaiseFlag {
                by: model.participant(slot, *by),
            };
            conversation_step(&live, model, slot, command, once, tally).await?;
        }
        Step::LowerFlag { target, human } => {
            let slot = conversation(model, target);
            let command = ConversationCommand::LowerFlag {
                by: id(HUMANS[*human]),
            };
            conversation_step(&live, model, slot, command, once, tally).await?;
        }
        Step::Tick { target } => {
            let slot = conversation(model, target);
            conversation_step(&live, model, slot, ConversationCommand::Tick, once, tally).await?;
        }
        Step::Register { agent } => {
            let command = AiAgentCommand::Register {
                name: profile_name(*agent),
                specialties: vec![id("faq")],
            };
            agent_step(&live, model, *agent, command, tally).await?;
        }
        Step::Activate { agent } => {
            agent_step(&live, model, *agent, AiAgentCommand::Activate, tally).await?;
        }
        Step::Deactivate { agent } => {
            agent_step(&live, model, *agent, AiAgentCommand::Deactivate, tally).await?;
        }
        Step::Retry { sent } => {
            if !model.sent.is_empty() {
                let sent = sent.index(model.sent.len());
                retry_step(&live, model, sent, tally).await?;
            }
        }
        Step::Reopen => {
            tally.reopens += 1;
            model.reopens += 1;
            let live = live.reopen(model).await?;
            check_views(&live, model, None).await?;
            return Ok(live);
        }
        Step::CrashReopen => {
            tally.crash_reopens += 1;
            model.crashes += 1;
            let live = live.crash_reopen(model).await?;
            check_views(&live, model, None).await?;
            return Ok(live);
        }
    }
    Ok(live)
}

/// Whether the runtime's view shows what the model's state holds.
fn shows(view: &ConversationView, state: &Conversation) -> bool {
    let (open, closed) = match state {
        Conversation::Open(open) => (open, false),
        Conversation::Closed(open) => (open, true),
        Conversation::NotOpened => return false,
    };
    view.status == state.status()
        && view.closed == closed
        && view.customer == open.customer
        && view.channel == open.channel
        && view.human == open.human
        && view.concerns == open.concerns
        && view.handoffs == open.epoch.0
}

/// The actors' states (rebuilt from the log when they are not live) equal the model's: of
/// the conversation in `only`, or of all of them and the roster.
async fn check_views(live: &Live, model: &Model, only: Option<usize>) -> Result<(), String> {
    let slots: Vec<usize> = match only {
        Some(slot) => vec![slot],
        None => (0..model.conversations.len()).collect(),
    };
    for slot in slots {
        let c = &model.conversations[slot];
        let view = live.handover.conversation(c.id).await;
        match (&c.state, view) {
            (Conversation::NotOpened, Err(Error::UnknownConversation(_))) => {}
            (state, Ok(view)) if shows(&view, state) && view.events == c.events.len() as u64 => {}
            (state, view) => {
                return Err(format!(
                    "conversation {} reads {view:?}, the model holds {state:?} at version {}",
                    c.id,
                    c.events.len()
                ))
            }
        }
    }
    if only.is_none() {
        let roster: Vec<AiAgent> = model.roster.all().cloned().collect();
        if live.handover.ai_agents() != roster {
            return Err(format!(
                "the runtime's roster is {:?}, the model's {roster:?}",
                live.handover.ai_agents()
            ));
        }
    }
    Ok(())
}

/// The log equals the model: every stream, every version, the global order.
async fn check_store(store: &SledStore, model: &Model) -> Result<(), String> {
    let mut streams: Vec<(StreamId, Vec<Event>)> = model
        .conversations
        .iter()
        .map(|c| {
            (
                StreamId::Conversation(c.id),
                c.events.iter().cloned().map(Event::Conversation).collect(),
            )
        })
        .collect();
    streams.extend(model.agents.iter().map(|(agent_id, events)| {
        (
            StreamId::AiAgent(agent_id.clone()),
            events.iter().cloned().map(Event::AiAgent).collect(),
        )
    }));
    streams.extend(model.humans.iter().map(|(human_id, events)| {
        (
            StreamId::Human(human_id.clone()),
            events.iter().cloned().map(Event::Human).collect(),
        )
    }));
    streams.push((StreamId::Conversation(ghost()), Vec::new()));
    for (stream, want) in &streams {
        let records = store
            .read_stream(stream, SeqRange::ALL)
            .await
            .map_err(|e| format!("read {stream}: {e}"))?;
        let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
        if seqs != (1..=want.len() as u64).collect::<Vec<_>>() {
            return Err(format!(
                "{stream} holds seqs {seqs:?}, the model {} events",
                want.len()
            ));
        }
        let got: Vec<&Event> = records.iter().map(|r| &r.event).collect();
        if got != want.iter().collect::<Vec<_>>() {
            return Err(format!("{stream} holds {got:?}, the model {want:?}"));
        }
        let version = store
            .stream_version(stream)
            .await
            .map_err(|e| format!("version of {stream}: {e}"))?;
        if version != want.len() as u64 {
            return Err(format!(
                "{stream} is at version {version}, the model at {}",
                want.len()
            ));
        }
    }
    let all = store
        .read_all(1, usize::MAX)
        .await
        .map_err(|e| format!("read_all: {e}"))?;
    let total = model.total_events();
    let positions: Vec<u64> = all.iter().map(|r| r.position).collect();
    if positions != (1..=total as u64).collect::<Vec<_>>() || store.head() != total as u64 {
        return Err(format!(
            "the global order holds positions {positions:?} (head {}), the model {total} events",
            store.head()
        ));
    }
    let mut rest = all.iter();
    for group in &model.groups {
        let mut got: Vec<(StreamId, u64)> = rest
            .by_ref()
            .take(group.len())
            .map(|r| (r.stream.clone(), r.seq))
            .collect();
        let mut want = group.clone();
        got.sort();
        want.sort();
        if got != want {
            return Err(format!(
                "the global order holds {got:?} where the model has {want:?}"
            ));
        }
    }
    Ok(())
}

/// The store remembers every command sent with an id exactly as the model does: what it
/// recorded, or nothing.
async fn check_commands(store: &SledStore, model: &Model) -> Result<(), String> {
    for sent in &model.sent {
        let stream = StreamId::Conversation(model.conversation_id(sent.slot));
        let outcome = store
            .command_outcome(&stream, sent.command_id)
            .await
            .map_err(|e| format!("command_outcome: {e}"))?;
        let got = outcome.map(|records| {
            records
                .iter()
                .map(|r| (r.seq, r.position, r.event.clone()))
                .collect::<Vec<_>>()
        });
        if got != sent.recorded {
            return Err(format!(
                "the store says {:?} recorded {got:?}, the model {:?}",
                sent.command_id, sent.recorded
            ));
        }
    }
    Ok(())
}

async fn run_case(setup: Setup, steps: &[(Step, bool)], tally: &mut Tally) -> Result<(), String> {
    tally.cases += 1;
    let mut model = Model {
        clock: Some(ManualClock::new(Timestamp::from_millis(1_700_000_000_000))),
        ..Model::default()
    };
    let mut live = Live::new(setup, &model).await?;
    sign_in(&live, &mut model, 0, Role::Agent).await?;
    sign_in(&live, &mut model, 1, Role::Supervisor).await?;
    // All three agents are registered, one is active, and two conversations are open.
    let mut script = vec![
        (Step::Register { agent: 0 }, false),
        (Step::Register { agent: 1 }, false),
        (Step::Register { agent: 2 }, false),
        (Step::Activate { agent: 0 }, false),
        (
            Step::Open {
                customer: 0,
                human: Some(0),
            },
            false,
        ),
        (
            Step::Open {
                customer: 1,
                human: None,
            },
            false,
        ),
    ];
    script.extend(steps.iter().cloned());
    let mut outcome = Ok(());
    for (n, (step, once)) in script.iter().enumerate() {
        if let Some(clock) = &model.clock {
            clock.advance_millis(STEP_MILLIS);
        }
        live = run_step(live, &mut model, step, *once, tally)
            .await
            .map_err(|error| format!("step {n} {step:?}: {error}"))?;
        let touched = match step {
            Step::Post { target, .. }
            | Step::HandOff { target, .. }
            | Step::RecordSkill { target, .. }
            | Step::Reclaim { target, .. }
            | Step::Escalate { target, .. }
            | Step::Close { target, .. }
            | Step::Assign { target, .. }
            | Step::Accept { target, .. }
            | Step::Transfer { target, .. }
            | Step::Whisper { target, .. }
            | Step::RaiseFlag { target, .. }
            | Step::LowerFlag { target, .. }
            | Step::Tick { target } => model.index_of(target),
            Step::Open { .. } | Step::Start { .. } => Some(model.conversations.len() - 1),
            Step::Retry { sent } if !model.sent.is_empty() => {
                model.sent[sent.index(model.sent.len())].slot
            }
            _ => None,
        };
        if let Some(slot) = touched {
            if let Err(error) = check_views(&live, &model, Some(slot)).await {
                outcome = Err(format!("after step {n} {step:?}: {error}"));
                break;
            }
        }
        if let Err(error) = check_store(&live.store, &model).await {
            outcome = Err(format!("after step {n} {step:?}: {error}"));
            break;
        }
        let restarted = matches!(step, Step::Reopen | Step::CrashReopen);
        if restarted || n + 1 == script.len() {
            if let Err(error) = check_commands(&live.store, &model).await {
                outcome = Err(format!("after step {n} {step:?}: {error}"));
                break;
            }
        }
    }
    live.stop().await;
    outcome
}

fn seed() -> u64 {
    match std::env::var("HANDOVER_MODEL_SEED") {
        Ok(value) => value.parse().expect("HANDOVER_MODEL_SEED is a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    }
}

#[test]
fn the_log_and_the_actors_equal_the_pure_model_through_restarts_and_crashes() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES_DEFAULT);
    let seed = seed();
    println!("model: seed {seed} (HANDOVER_MODEL_SEED={seed} replays it), {cases} cases");
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = RunnerConfig {
        cases,
        max_shrink_iters: 400,
        failure_persistence: None,
        ..RunnerConfig::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tally = RefCell::new(Tally::default());
    let strategy = (setup(), proptest::collection::vec(planned(), 1..=STEPS_MAX));
    let result = runner.run(&strategy, |(setup, steps)| {
        let mut tally = tally.borrow_mut();
        runtime
            .block_on(run_case(setup, &steps, &mut tally))
            .map_err(TestCaseError::fail)
    });
    let tally = tally.into_inner();
    println!(
        "model: {} cases run (shrinking included), {} steps: {} accepted ({} events), {} rejected, \
         {} on unknown conversations, {} to agents not running; {} reopens, {} crash reopens; \
         {} commands sent with a command id, {} retried, {} retries answered from the log ({} of \
         them after a reopen, {} after a crash copy since the first attempt)",
        tally.cases,
        tally.steps,
        tally.accepted,
        tally.events,
        tally.rejected,
        tally.unknown,
        tally.not_running,
        tally.reopens,
        tally.crash_reopens,
        tally.once,
        tally.retries,
        tally.retries_answered_from_log,
        tally.retries_across_reopen,
        tally.retries_across_crash,
    );
    println!("model: rejections by kind {:?}", tally.rejections);
    if let Err(error) = result {
        panic!("model: seed {seed} (HANDOVER_MODEL_SEED={seed}): {error}");
    }
}
