//! The driver: plays each scenario through the real [`Handover`] facade, as a contact center's
//! backend would, on simulated time, and writes the acknowledgement file.
//!
//! The runtime runs on a [`ManualClock`]. The driver moves it in steps of [`STEP_MS`] and, at
//! each step: lets every deadline the clock passed be recorded (SLA thresholds, AI reply
//! deadlines), applies the presence changes the shift schedules for that moment, starts the
//! customers who arrive, runs every conversation's action due at that moment concurrently
//! (each on its own conversation, waiting on its watch for the AI agent to settle), and only
//! then lets the router give waiting conversations to humans: the router is closed while the
//! conversations act, so no assignment depends on how their actions interleaved. Conversation
//! ids are drawn from the seed, so the router's ties (oldest first, then by id) break the same
//! way on every run: the same seed on a fresh data directory gives the same log, whatever the
//! machine.
//!
//! Once a conversation is closed its history is read back through the facade and counted, and
//! the driver's own bookkeeping must agree with it.

use std::collections::HashSet;
use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use handover::StreamExt as _;
use handover::{
    AgentName, AiAgentId, AiAgentProfile, Author, Channel, ConversationCommand, ConversationEvent,
    ConversationId, CustomerId, Durability, Event, EventStore, Handover, HumanId, HumanQuery,
    Language, ManualClock, MessageText, NewHuman, NoteAudience, Participant, Presence, Reason,
    Receipt, RecordedAt, Rejection, Role, Rules, RuntimeSettings, SkillName, SledOptions,
    SledStore, Specialty, Status, TeamId, TenantId, TimeSource, Timestamp, TransferTarget, Watch,
};
use handover_postgres::{PostgresOptions, PostgresStore};
use uuid::Builder;

use crate::faq::{FaqAgent, REFUND_SKILL};
use crate::place::LogPlace;
use crate::report::{percentile, Summary};
use crate::scenario::{
    draw_scenarios, lines, Ending, Lang, Scenario, Script, Trial, SPECIALTIES, TEAMS,
};
use crate::staff::{self, Approval, GatedRouter, SlowAgent, Staff};
use crate::{
    SimError, AI_AGENTS_MAX, CONCURRENT_CONVERSATIONS_MAX, CONVERSATIONS_MAX, HUMANS_MAX,
    SHIFT_MINUTES_MAX,
};

/// How long one step may wait for an AI agent before the simulation gives up, in seconds. Only
/// a runtime fault can take this long; it never decides a count.
const AI_TURN_WAIT_SECONDS_MAX: u64 = 120;

/// One step of simulated time, in milliseconds.
pub const STEP_MS: u64 = 10_000;

/// Where the simulated clock starts on a fresh data directory: Monday 5 January 2026, 08:00
/// UTC. On a directory that holds a log, it starts a minute after the log's last record.
const SHIFT_START: Timestamp = Timestamp::from_millis(1_767_600_000_000);

/// Most steps a conversation may wait for an AI agent that should have let go of it (its reply
/// deadline passed) before the simulation calls it a fault: an hour of simulated time.
const AI_HOLD_STEPS_MAX: u32 = 360;

/// What to simulate. Build it with `..Options::default()` so that options added later keep
/// their defaults.
#[derive(Clone, Debug)]
pub struct Options {
    /// How many conversations to run, at most [`CONVERSATIONS_MAX`].
    pub conversations: usize,
    /// How many FAQ agents to register, activate and attach (specialties pricing, faq and
    /// shipping in turn, spread over the tenants), at most [`AI_AGENTS_MAX`]. Each tenant also
    /// gets one slow agent besides these.
    pub ai_agents: usize,
    /// How many human agents handle the conversations, spread over the tenants and their
    /// teams, at most [`HUMANS_MAX`]. Each tenant also has one supervisor besides these.
    pub humans: usize,
    /// The seed of every random choice.
    pub seed: u64,
    /// How many conversations run at the same time, at most [`CONCURRENT_CONVERSATIONS_MAX`]:
    /// a customer who arrives while that many are under way starts once one ends.
    pub concurrency: usize,
    /// What an acknowledged command survives.
    pub durability: Durability,
    /// Where to write each acknowledged event of the simulation's own commands, one
    /// `<conversation-id> <seq>` a line (appended to; created if missing).
    pub acks: Option<PathBuf>,
    /// The simulated shift, in minutes, at most [`SHIFT_MINUTES_MAX`]: customers arrive
    /// during it, and the humans' breaks and sign-outs fall in it.
    pub shift_minutes: u64,
    /// The escalation policy the runtime applies: the default policy
    /// ([`Rules::default_rules`]) unless one is given (`handover simulate --policy FILE`).
    pub policy: Option<Rules>,
}

impl Options {
    /// The policy of the run: [`Options::policy`], or the default policy.
    pub fn rules(&self) -> Rules {
        self.policy
            .clone()
            .unwrap_or_else(|| Rules::default_rules().clone())
    }
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
            shift_minutes: 480,
            policy: None,
        }
    }
}

impl Options {
    /// Checks every count against its bound: each is at least 1 and at most its maximum.
    pub fn check(&self) -> Result<(), SimError> {
        let shift = usize::try_from(self.shift_minutes).unwrap_or(usize::MAX);
        for (what, value, max) in [
            ("conversations", self.conversations, CONVERSATIONS_MAX),
            ("AI agents", self.ai_agents, AI_AGENTS_MAX),
            ("humans", self.humans, HUMANS_MAX),
            (
                "concurrency",
                self.concurrency,
                CONCURRENT_CONVERSATIONS_MAX,
            ),
            ("shift minutes", shift, SHIFT_MINUTES_MAX),
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

/// Runs a simulation on the data directory `data` (created if missing): starts the runtime on
/// simulated time, staffs the tenants, attaches the AI agents, drives every conversation, shuts
/// the runtime down and returns what it did.
///
/// `progress` is called after each finished conversation. When `stop` completes (Ctrl-C, for
/// instance), no new conversation starts; those under way are finished, the runtime is shut
/// down, and the summary says it was interrupted.
pub async fn simulate(
    data: &Path,
    options: &Options,
    progress: impl FnMut(Progress),
    stop: impl Future<Output = ()>,
) -> Result<Summary, SimError> {
    simulate_at(&LogPlace::Dir(data.to_owned()), options, progress, stop).await
}

/// [`simulate`] with the log wherever `place` says: a data directory, or a PostgreSQL
/// database (several runs, or other nodes, may share it; a run continues after the last
/// record there).
///
/// The store is opened here, after the simulation's clock exists, so that it stamps records
/// with simulated time. On a database, [`Options::durability`] does not apply: an
/// acknowledged command is a committed transaction, as durable as the server makes commits,
/// and the summary's `durability` says `database`. A database that cannot be reached is
/// [`SimError::Database`].
pub async fn simulate_at(
    place: &LogPlace,
    options: &Options,
    mut progress: impl FnMut(Progress),
    stop: impl Future<Output = ()>,
) -> Result<Summary, SimError> {
    options.check()?;
    let shift_ms = options.shift_minutes.saturating_mul(60_000);
    let staff = staff::plan(options.seed, options.humans, shift_ms, STEP_MS);
    let scenarios = draw_scenarios(
        options.seed,
        options.conversations,
        staff.tenants.len(),
        shift_ms,
        STEP_MS,
    );
    let started = Instant::now();
    let acks = options
        .acks
        .as_deref()
        .map(AckLog::open)
        .transpose()?
        .map(Arc::new);

    // The store stamps records with the simulated clock, like the times the rules record.
    let clock = ManualClock::new(SHIFT_START);
    let source = clock.clone();
    let time_source = TimeSource::new(move || RecordedAt(handover::Clock::now(&source).0));
    let (store, durability): (Arc<dyn EventStore>, &'static str) = match place {
        LogPlace::Dir(data) => {
            let store_options = SledOptions {
                durability: options.durability,
                time_source: Some(time_source),
                ..SledOptions::default()
            };
            let store = SledStore::open(data, store_options).map_err(handover::Error::from)?;
            (Arc::new(store), options.durability.name())
        }
        LogPlace::Database(url) => {
            let mut store_options = PostgresOptions::default();
            store_options.time_source = Some(time_source);
            let store = PostgresStore::connect(url, store_options)
                .await
                .map_err(|source| SimError::Database {
                    place: place.to_string(),
                    source,
                })?;
            (Arc::new(store), "database")
        }
    };
    clock.advance_to(start_time(&*store).await?);
    let router = Arc::new(GatedRouter::default());
    let rules = options.rules();
    let settings = RuntimeSettings::default()
        .policy(Arc::new(rules.clone()))
        .clock(Arc::new(clock.clone()))
        .router(Arc::clone(&router) as Arc<dyn handover::Router>);
    let handover = Handover::start_with_store(store, settings).await?;
    let mut summary = Summary {
        durability,
        seed: options.seed,
        ai_agents: count(options.ai_agents),
        humans: count(options.humans),
        concurrency: count(options.concurrency),
        tenants: count(staff.tenants.len()),
        teams: count(staff.tenants.len() * TEAMS.len()),
        supervisors: count(staff.tenants.len()),
        shift_minutes: options.shift_minutes,
        nodes: 1,
        policy: rules.name().to_owned(),
        policy_version: rules.version().to_string(),
        ..Summary::default()
    };
    let mut floor = Floor {
        handover: handover.clone(),
        driver: Driver {
            handover: handover.clone(),
            acks,
        },
        clock: clock.clone(),
        shift_start: clock_now(&clock),
        router,
        staff,
        chaos: false,
    };
    let driven = floor
        .drive(scenarios, options, &mut summary, &mut progress, stop)
        .await;
    let ack_latency = handover.ack_latency();
    let store_stats = handover.store_stats();
    handover.shutdown().await;
    let (tally, waits) = driven?;
    let ran = started.elapsed();

    tally.conclude(&mut summary, waits)?;
    summary.syncs = store_stats.syncs;
    summary.ack_p50_us = micros(ack_latency.p50);
    summary.ack_p99_us = micros(ack_latency.p99);
    summary.elapsed_ms = u64::try_from(ran.as_millis()).unwrap_or(u64::MAX);
    // Counts are whole numbers far below 2^52: the float keeps them exactly.
    summary.events_per_s = (summary.events as f64 / ran.as_secs_f64().max(1e-9)) as u64;
    Ok(summary)
}

impl Tally {
    /// Puts the driver's own counts and the waits' percentiles into the summary, and checks
    /// that the driver's bookkeeping and the log tell the same story.
    pub(crate) fn conclude(
        &self,
        summary: &mut Summary,
        mut waits: Vec<u64>,
    ) -> Result<(), SimError> {
        waits.sort_unstable();
        summary.wait_p50_ms = percentile(&waits, 50);
        summary.wait_p90_ms = percentile(&waits, 90);
        summary.refused_handoffs = self.refused_handoffs;
        summary.presence_changes = self.presence_changes;
        let expected = [
            ("conversations", self.conversations, summary.conversations),
            ("handoffs", self.handoffs, summary.handoffs),
            ("reclaims", self.reclaims, summary.reclaims),
            ("escalations", self.escalations, summary.escalations),
            ("AI reply timeouts", self.ai_timeouts, summary.ai_timeouts),
            ("transfers", self.transfers, summary.transfers),
            ("whispers", self.whispers, summary.whispers),
            ("flags raised", self.flags, summary.flags),
            ("closed", self.closed, summary.closed),
        ];
        for (what, driven, logged) in expected {
            if driven != logged {
                return Err(SimError::Unexpected(format!(
                    "the log holds {logged} {what}, but the simulation made {driven}"
                )));
            }
        }
        Ok(())
    }
}

/// Where the simulated clock starts: [`SHIFT_START`] on an empty log; after a log already
/// there, a minute after its last record, so time never goes back.
pub(crate) async fn start_time(store: &dyn EventStore) -> Result<Timestamp, SimError> {
    let head = store.head();
    if head > 0 {
        let last = store
            .read_all(head, 1)
            .await
            .map_err(handover::Error::from)?;
        if let Some(last) = last.first() {
            return Ok(SHIFT_START.max(Timestamp(last.recorded_at.0).plus_millis(60_000)));
        }
    }
    Ok(SHIFT_START)
}

fn clock_now(clock: &ManualClock) -> Timestamp {
    handover::Clock::now(clock)
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// What the driver itself did, to check against the log.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Tally {
    conversations: u64,
    handoffs: u64,
    refused_handoffs: u64,
    reclaims: u64,
    escalations: u64,
    ai_timeouts: u64,
    transfers: u64,
    whispers: u64,
    flags: u64,
    closed: u64,
    pub(crate) presence_changes: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, other: Tally) {
        self.conversations += other.conversations;
        self.handoffs += other.handoffs;
        self.refused_handoffs += other.refused_handoffs;
        self.reclaims += other.reclaims;
        self.escalations += other.escalations;
        self.ai_timeouts += other.ai_timeouts;
        self.transfers += other.transfers;
        self.whispers += other.whispers;
        self.flags += other.flags;
        self.closed += other.closed;
        self.presence_changes += other.presence_changes;
    }
}

/// The contact center the simulation runs: the runtime, its clock and router, and the staff.
pub(crate) struct Floor {
    pub(crate) handover: Handover,
    pub(crate) driver: Driver,
    pub(crate) clock: ManualClock,
    pub(crate) shift_start: Timestamp,
    pub(crate) router: Arc<GatedRouter>,
    pub(crate) staff: Staff,
    /// Nodes are killed during the run. Then a conversation whose AI agent does not do what the
    /// script expects is counted instead of failing the run (see [`Env::await_ai`]).
    pub(crate) chaos: bool,
}

/// The tenants, humans and AI agents of a run, as the conversations' actions need them.
pub(crate) struct Env {
    driver: Driver,
    tenants: Vec<TenantId>,
    supervisors: Vec<HumanId>,
    agents: Agents,
    chaos: bool,
}

/// The conversations one process drives and where they stand: those still to arrive, those
/// under way, and the presence changes still to come (none on a node that does not staff).
pub(crate) struct Slice {
    arrivals: std::iter::Peekable<std::vec::IntoIter<Scenario>>,
    schedule: std::iter::Peekable<std::vec::IntoIter<staff::Shift>>,
    under_way: Vec<Conv>,
    concurrency: usize,
}

impl Slice {
    /// Arrivals in order of time, then of drawing.
    pub(crate) fn new(
        mut scenarios: Vec<Scenario>,
        schedule: Vec<staff::Shift>,
        concurrency: usize,
    ) -> Slice {
        scenarios.sort_by_key(|s| (s.arrival_ms, s.index));
        Slice {
            arrivals: scenarios.into_iter().peekable(),
            schedule: schedule.into_iter().peekable(),
            under_way: Vec::new(),
            concurrency,
        }
    }

    /// The conversations under way.
    pub(crate) fn ours(&self) -> HashSet<ConversationId> {
        self.under_way.iter().map(|c| c.id).collect()
    }

    /// Whether any conversation is under way.
    pub(crate) fn busy(&self) -> bool {
        !self.under_way.is_empty()
    }

    /// Whether customers are still to arrive.
    pub(crate) fn arrivals_left(&mut self) -> bool {
        self.arrivals.peek().is_some()
    }

    /// Whether this slice is through: nothing under way, and no one else to start.
    pub(crate) fn finished(&mut self, stopping: bool) -> bool {
        !self.busy() && (stopping || !self.arrivals_left())
    }

    /// When the next step is due, after the one at `now_ms`: a step later while a
    /// conversation is under way; with none, nothing happens until the next arrival or
    /// presence change, so the clock goes straight there. `None` when nothing is left.
    pub(crate) fn next_ms(&mut self, now_ms: u64) -> Option<u64> {
        let step = now_ms + STEP_MS;
        if self.busy() {
            return Some(step);
        }
        let next = [
            self.arrivals.peek().map(|s| s.arrival_ms),
            self.schedule.peek().map(|s| s.at_ms),
        ];
        next.into_iter().flatten().min().map(|at| at.max(step))
    }
}

/// What one step's actions did: the conversations that ended (id and what the driver did in
/// them).
#[derive(Default)]
pub(crate) struct Acted {
    pub(crate) finished: Vec<(ConversationId, Tally)>,
    /// Conversations chaos disturbed, closed by their customers (see [`Env::await_ai`]).
    pub(crate) disturbed: Vec<ConversationId>,
}

impl Floor {
    fn now_ms(&self) -> u64 {
        clock_now(&self.clock).millis_since(self.shift_start)
    }

    /// Moves the clock to `at_ms` after the start of the shift (never back).
    pub(crate) fn advance_to(&self, at_ms: u64) {
        self.clock.advance_to(self.shift_start.plus_millis(at_ms));
    }

    /// Staffs the floor, attaches the agents, then steps through the shift until every
    /// conversation has run (or, after `stop`, every conversation under way has ended).
    async fn drive(
        &mut self,
        scenarios: Vec<Scenario>,
        options: &Options,
        summary: &mut Summary,
        progress: &mut impl FnMut(Progress),
        stop: impl Future<Output = ()>,
    ) -> Result<(Tally, Vec<u64>), SimError> {
        let mut tally = Tally::default();
        let env = Arc::new(self.open_floor(options, true, summary, &mut tally).await?);
        let total = count(scenarios.len());
        let mut done = 0;
        let mut waits = Vec::new();
        let mut slice = Slice::new(scenarios, self.staff.schedule.clone(), options.concurrency);
        let mut stopping = false;
        tokio::pin!(stop);
        loop {
            let now_ms = self.now_ms();
            if !stopping && (&mut stop).now_or_never().is_some() {
                stopping = true;
                summary.interrupted = true;
            }
            self.begin_step(&mut slice, now_ms, summary, &mut tally)
                .await?;
            let acted = self.act_step(&env, &mut slice, now_ms, stopping).await?;
            for (id, conv_tally) in acted.finished {
                tally += conv_tally;
                let history = self.handover.history(id).await?;
                summary.count_conversation(history.iter().map(|r| &r.event), &mut waits);
                done += 1;
                progress(Progress {
                    done,
                    total,
                    events: summary.events,
                });
            }
            // Then, and only then, the router.
            self.route(&env, Some(&slice.ours()), summary).await?;
            if slice.finished(stopping) {
                break;
            }
            let next_ms = slice.next_ms(now_ms).unwrap_or(now_ms + STEP_MS);
            self.clock.advance_millis(next_ms - now_ms);
        }
        summary.simulated_ms = self.now_ms();
        Ok((tally, waits))
    }

    /// The first part of a step: whatever deadline the clock passed is recorded before anyone
    /// acts, then the presence changes of this moment apply, one after another.
    pub(crate) async fn begin_step(
        &self,
        slice: &mut Slice,
        now_ms: u64,
        summary: &mut Summary,
        tally: &mut Tally,
    ) -> Result<(), SimError> {
        self.handover.settle_timers().await;
        while let Some(shift) = slice.schedule.next_if(|s| s.at_ms <= now_ms) {
            let human = HumanId::new(self.staff.agents[shift.agent].id.clone())?;
            match change_presence(&self.handover, human, shift.presence).await {
                Ok(true) => {
                    tally.presence_changes += 1;
                    summary.events += 1;
                }
                Ok(false) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// The second part: the customers who arrive now start (while there is room, and unless
    /// stopping), and every conversation's action due now runs, all at the same time. Returns
    /// the conversations that ended.
    pub(crate) async fn act_step(
        &self,
        env: &Env,
        slice: &mut Slice,
        now_ms: u64,
        stopping: bool,
    ) -> Result<Acted, SimError> {
        let mut acted = Acted::default();
        while !stopping && slice.under_way.len() < slice.concurrency {
            let Some(scenario) = slice.arrivals.next_if(|s| s.arrival_ms <= now_ms) else {
                break;
            };
            slice.under_way.push(Conv::new(scenario, now_ms));
        }
        let now = clock_now(&self.clock);
        let stepped = futures::future::join_all(
            slice
                .under_way
                .iter_mut()
                .filter(|conv| conv.due_ms <= now_ms)
                .map(|conv| conv.step(env, now, now_ms)),
        )
        .await;
        for result in stepped {
            result?;
        }
        slice.under_way.retain_mut(|conv| {
            if conv.disturbed {
                acted.disturbed.push(conv.id);
                false
            } else if conv.finished() {
                acted.finished.push((conv.id, conv.tally));
                false
            } else {
                true
            }
        });
        Ok(acted)
    }

    /// Lets every timer catch up, then lets the router give each tenant's waiting
    /// conversations to humans, oldest first. Conversations waiting that are none of `ours`
    /// (left open by an earlier run on the same directory that was stopped half-way) are
    /// closed by the tenant's supervisor first, so they hold no human. On a node of several,
    /// `ours` is `None`: the other nodes' conversations wait in the same queues.
    pub(crate) async fn route(
        &self,
        env: &Env,
        ours: Option<&HashSet<ConversationId>>,
        summary: &mut Summary,
    ) -> Result<(), SimError> {
        self.handover.settle_timers().await;
        for (tenant, supervisor) in env.tenants.iter().zip(&env.supervisors) {
            for waiting in self.handover.waiting(tenant) {
                if ours.is_some_and(|ours| !ours.contains(&waiting.conversation_id)) {
                    let closed = env
                        .driver
                        .close_as_human(
                            waiting.conversation_id,
                            supervisor.clone(),
                            reason("left open by an earlier run")?,
                        )
                        .await;
                    match closed {
                        Ok(receipt) => summary.events += count(receipt.events.len()),
                        Err(SimError::Handover(handover::Error::Rejected(_))) => {}
                        Err(error) => return Err(error),
                    }
                }
            }
            // With the router closed: a pass requested while the conversations acted ends
            // before the router opens.
            if self.handover.owns_tenant(tenant) {
                self.handover.route_now(tenant).await;
            }
        }
        // Each tenant's owner routes it (every tenant, on a single process): another node's
        // pass would be forwarded to the owner, whose router may be closed.
        self.router.set_open(true);
        for tenant in &env.tenants {
            if self.handover.owns_tenant(tenant) {
                self.handover.route_now(tenant).await;
            }
        }
        self.router.set_open(false);
        Ok(())
    }

    /// Registers the humans (agents start offline; supervisors sign in) and the AI agents,
    /// attaches the agents, and signs out whoever an earlier run on the same directory left
    /// signed in, which puts their conversations back in the queues.
    ///
    /// Only the `staffing` process registers and signs in the humans; every process registers
    /// (or finds registered) and attaches the AI agents.
    pub(crate) async fn open_floor(
        &self,
        options: &Options,
        staffing: bool,
        summary: &mut Summary,
        tally: &mut Tally,
    ) -> Result<Env, SimError> {
        let handover = &self.handover;
        let tenants = self
            .staff
            .tenants
            .iter()
            .map(|t| TenantId::new(*t))
            .collect::<Result<Vec<_>, _>>()?;
        let teams = TEAMS
            .iter()
            .map(|t| TeamId::new(*t))
            .collect::<Result<Vec<_>, _>>()?;
        let mut supervisors = Vec::new();
        for (t, tenant) in tenants.iter().enumerate() {
            let (id, name) = self.staff.supervisor(t);
            let id = HumanId::new(id)?;
            if staffing {
                let new =
                    NewHuman::supervisor(id.clone(), AgentName::new(name)?).tenant(tenant.clone());
                register(handover, new, summary).await?;
            }
            supervisors.push(id);
        }
        if !staffing {
            let agents = start_agents(handover, &tenants, options.ai_agents, summary).await?;
            handover.settle_timers().await;
            return Ok(Env {
                driver: self.driver.clone(),
                tenants,
                supervisors,
                agents,
                chaos: self.chaos,
            });
        }
        for member in &self.staff.agents {
            let new = NewHuman::agent(
                HumanId::new(member.id.clone())?,
                AgentName::new(member.name.clone())?,
            )
            .tenant(tenants[member.tenant].clone())
            .teams(member.teams.iter().map(|&t| teams[t].clone()).collect())
            .capacity(member.capacity);
            register(handover, new, summary).await?;
        }
        let agents = start_agents(handover, &tenants, options.ai_agents, summary).await?;
        // Deadlines an earlier run left pending are recorded before the shift starts.
        handover.settle_timers().await;
        for tenant in &tenants {
            let signed_in: Vec<HumanId> = handover
                .humans(tenant, &HumanQuery::default())
                .into_iter()
                .filter(|h| h.role == Role::Agent && h.presence != Presence::Offline)
                .map(|h| h.id)
                .collect();
            for human in signed_in {
                handover.set_presence(human, Presence::Offline).await?;
                tally.presence_changes += 1;
                summary.events += 1;
            }
        }
        for supervisor in &supervisors {
            if change_presence(handover, supervisor.clone(), Presence::Available).await? {
                tally.presence_changes += 1;
                summary.events += 1;
            }
        }
        Ok(Env {
            driver: self.driver.clone(),
            tenants,
            supervisors,
            agents,
            chaos: self.chaos,
        })
    }
}

/// Sets a human's presence unless it is that already; says whether it changed.
async fn change_presence(
    handover: &Handover,
    human: HumanId,
    presence: Presence,
) -> Result<bool, SimError> {
    if handover
        .human(&human)
        .is_some_and(|h| h.presence == presence)
    {
        return Ok(false);
    }
    handover.set_presence(human, presence).await?;
    Ok(true)
}

/// Registers a human, or finds them registered by an earlier run on the same directory.
async fn register(
    handover: &Handover,
    new: NewHuman,
    summary: &mut Summary,
) -> Result<(), SimError> {
    match handover.register_human(new).await {
        Ok(()) => summary.events += 1,
        Err(handover::Error::Rejected(Rejection::HumanAlreadyRegistered { .. })) => {}
        Err(error) => return Err(error.into()),
    }
    Ok(())
}

/// What the driver waits for the AI agent to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AiTurn {
    Reply,
    /// Record the outcome of a skill.
    Skill,
    Close,
    Escalate,
    /// Reply, or let a rule escalate (whichever the policy decides).
    ReplyOrEscalate,
    /// Ask for a skill that waits for approval (or, under a policy that does not gate it, run
    /// it at once).
    AskApproval,
}

/// What the AI agent's turn came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Settled {
    /// It did what was asked (replied, ran or asked for the skill, closed).
    Done,
    /// The conversation went back to humans.
    Escalated,
    /// It ran the skill at once: no approval waits.
    Ran,
}

impl std::fmt::Display for AiTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AiTurn::Reply => "reply",
            AiTurn::Skill => "record a skill",
            AiTurn::Close => "close the conversation",
            AiTurn::Escalate => "escalate to a human",
            AiTurn::ReplyOrEscalate => "reply or escalate",
            AiTurn::AskApproval => "ask for approval",
        })
    }
}

/// Reads the watch until the AI agent has done `turn`; any other end of its assignment first
/// is a fault of the runtime or the agent.
async fn await_ai(
    watch: &mut Watch,
    id: ConversationId,
    turn: AiTurn,
    wait: Duration,
) -> Result<Settled, SimError> {
    loop {
        let record = tokio::time::timeout(wait, watch.next())
            .await
            .map_err(|_| ai_too_slow(id, turn, wait))?
            .ok_or_else(|| {
                SimError::Unexpected(format!("conversation {id}: the runtime stopped"))
            })??;
        if let Some(outcome) = ai_turn(id, &record, turn) {
            return outcome;
        }
    }
}

/// How long an AI turn may take under chaos before the conversation counts as disturbed: a
/// takeover takes a lease (seconds) and the new owner resumes the agent at once.
const CHAOS_AI_WAIT: Duration = Duration::from_secs(30);

/// How often an agent not yet in this node's roster is looked for again.
const ROSTER_POLL: Duration = Duration::from_millis(10);

fn ai_too_slow(id: ConversationId, turn: AiTurn, wait: Duration) -> SimError {
    SimError::Unexpected(format!(
        "conversation {id}: the AI agent did not {turn} within {wait:?}"
    ))
}

/// Whether `record` is the AI agent's `turn` (`Ok`), another end of its assignment (an
/// error: a fault of the runtime or the agent), or neither (`None`: read on).
fn ai_turn(
    id: ConversationId,
    record: &handover::RecordedEvent,
    turn: AiTurn,
) -> Option<Result<Settled, SimError>> {
    let Event::Conversation(event) = &record.event else {
        return None;
    };
    let escalation = matches!(
        event,
        ConversationEvent::EscalatedToHuman { .. } | ConversationEvent::EscalatedByRule { .. }
    );
    match (event, turn) {
        (
            ConversationEvent::MessagePosted {
                author: Author::Ai(_),
                ..
            },
            AiTurn::Reply | AiTurn::ReplyOrEscalate,
        )
        | (ConversationEvent::AiActionRecorded { .. }, AiTurn::Skill)
        | (ConversationEvent::SkillApprovalRequested { .. }, AiTurn::AskApproval)
        | (
            ConversationEvent::Closed {
                by: Author::Ai(_), ..
            },
            AiTurn::Close,
        ) => Some(Ok(Settled::Done)),
        (ConversationEvent::AiActionRecorded { .. }, AiTurn::AskApproval) => Some(Ok(Settled::Ran)),
        (_, AiTurn::Escalate | AiTurn::ReplyOrEscalate) if escalation => {
            Some(Ok(Settled::Escalated))
        }
        (
            ConversationEvent::Closed { .. }
            | ConversationEvent::EscalatedToHuman { .. }
            | ConversationEvent::EscalatedByRule { .. }
            | ConversationEvent::Reclaimed { .. },
            _,
        ) => {
            let cause = match event {
                ConversationEvent::EscalatedToHuman { cause, .. }
                | ConversationEvent::EscalatedByRule { cause, .. } => format!(" ({cause:?})"),
                _ => String::new(),
            };
            Some(Err(SimError::Unexpected(format!(
                "conversation {id}: expected the AI agent to {turn}, but the log shows {}{cause} at seq {}",
                event.type_name(),
                record.seq
            ))))
        }
        _ => None,
    }
}

impl Env {
    /// Waits until the AI agent has done `turn` after the event `after_seq`; `true` if it
    /// did.
    ///
    /// Under chaos, an agent that ends its assignment otherwise, or does not do its turn
    /// within [`CHAOS_AI_WAIT`], is no failure (`false`): an agent's memory of a conversation
    /// (the FAQ agent's count of questions it could not answer) stays on the node where it ran,
    /// and a takeover may move the conversation to a node where the agent starts afresh.
    async fn await_ai(
        &self,
        id: ConversationId,
        after_seq: u64,
        turn: AiTurn,
    ) -> Result<bool, SimError> {
        Ok(self.settle(id, after_seq, turn).await?.is_some())
    }

    /// [`Env::await_ai`], saying what the turn came to (`None`: chaos disturbed it).
    async fn settle(
        &self,
        id: ConversationId,
        after_seq: u64,
        turn: AiTurn,
    ) -> Result<Option<Settled>, SimError> {
        let handover = &self.driver.handover;
        let wait = if self.chaos {
            CHAOS_AI_WAIT
        } else {
            Duration::from_secs(AI_TURN_WAIT_SECONDS_MAX)
        };
        let outcome = match handover.watch_from(id, after_seq).await {
            Ok(mut watch) => await_ai(&mut watch, id, turn, wait).await,
            Err(error) => Err(error.into()),
        };
        match outcome {
            Ok(settled) => Ok(Some(settled)),
            Err(SimError::Unexpected(_)) if self.chaos => Ok(None),
            Err(error) => Err(error),
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
    /// The slow agent of each tenant.
    slow: Vec<AiAgentId>,
}

impl Agents {
    /// The agent a human of `tenant` picks for `specialty`: one of the tenant's active agents
    /// of this run with that specialty (any of them if none has it; the slow one if the tenant
    /// has no other), chosen by the scenario. The roster does not change during the run and
    /// lists agents by id, so the pick is the same on every run.
    fn pick(
        &self,
        handover: &Handover,
        tenant: &TenantId,
        slow: &AiAgentId,
        specialty: &str,
        pick: usize,
    ) -> Result<AiAgentId, SimError> {
        let specialty = Specialty::new(specialty)?;
        let candidates = |filter: Option<&Specialty>| -> Vec<AiAgentId> {
            handover
                .tenant(tenant.clone())
                .active_ai_agents(filter.cloned())
                .into_iter()
                .map(|agent| agent.profile.id)
                .filter(|id| self.ours.contains(id) && id != slow)
                .collect()
        };
        let mut list = candidates(Some(&specialty));
        if list.is_empty() {
            list = candidates(None);
        }
        Ok(list
            .get(pick % list.len().max(1))
            .cloned()
            .unwrap_or_else(|| slow.clone()))
    }
}

/// Registers, activates and attaches `count` FAQ agents spread over the tenants, and one slow
/// agent per tenant, reusing those a previous run on the same directory registered, and counts
/// the events that recorded.
async fn start_agents(
    handover: &Handover,
    tenants: &[TenantId],
    count: usize,
    summary: &mut Summary,
) -> Result<Agents, SimError> {
    let mut ours = HashSet::new();
    let mut slow = Vec::new();
    let mut wanted: Vec<(TenantId, String, String, &str, bool)> = Vec::new();
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
        wanted.push((
            tenants[i % tenants.len()].clone(),
            id,
            name,
            specialty,
            false,
        ));
    }
    for tenant in tenants {
        let id = format!("slow-bot-{tenant}");
        wanted.push((
            tenant.clone(),
            id,
            "Order assistant".to_owned(),
            "faq",
            true,
        ));
    }
    for (tenant, id, name, specialty, is_slow) in wanted {
        let id = AiAgentId::new(id)?;
        let profile = AiAgentProfile {
            id: id.clone(),
            name: AgentName::new(name)?,
            specialties: vec![Specialty::new(specialty)?],
        };
        // Each registration and activation records one event in the agent's stream.
        match handover.register_ai_agent_in(tenant, profile).await {
            Ok(()) => summary.events += 1,
            Err(handover::Error::Rejected(Rejection::AiAgentAlreadyRegistered { .. })) => {}
            Err(error) => return Err(error.into()),
        }
        match handover.activate_ai_agent(id.clone()).await {
            Ok(()) => summary.events += 1,
            Err(handover::Error::Rejected(Rejection::AiAgentAlreadyActive { .. })) => {}
            Err(error) => return Err(error.into()),
        }
        let behavior: Arc<dyn handover::AiAgentBehavior> = if is_slow {
            slow.push(id.clone());
            Arc::new(SlowAgent::sample())
        } else {
            Arc::new(FaqAgent::sample())
        };
        attach(handover, &id, behavior).await?;
        ours.insert(id);
    }
    Ok(Agents { ours, slow })
}

/// Attaches an agent. On a node that does not own the agent's tenant, its registration
/// reaches the roster here a moment after the owner recorded it: until then, try again.
async fn attach(
    handover: &Handover,
    id: &AiAgentId,
    behavior: Arc<dyn handover::AiAgentBehavior>,
) -> Result<(), SimError> {
    let started = Instant::now();
    loop {
        match handover.attach_ai_agent(id.clone(), Arc::clone(&behavior)) {
            Err(handover::Error::Rejected(Rejection::AiAgentNotRegistered { .. }))
                if started.elapsed() < Duration::from_secs(AI_TURN_WAIT_SECONDS_MAX) =>
            {
                tokio::time::sleep(ROSTER_POLL).await;
            }
            other => return Ok(other?),
        }
    }
}

/// One action of a conversation's script.
#[derive(Clone, Debug)]
enum Action {
    /// Open it in its tenant, waiting in its team's queue.
    Start,
    /// The customer writes (nothing is expected of an AI agent).
    Customer(String),
    /// The customer writes to the AI agent, which then does `AiTurn`.
    CustomerToAi(String, AiTurn),
    /// The customer asks for a human: the policy escalates in the same step.
    WantsHuman,
    /// The customer asks the slow agent the question it never answers.
    SlowQuestion,
    /// The assigned human greets the customer.
    Greet,
    /// The assigned human writes.
    Human(String),
    /// The assigned human hands it off (to the tenant's slow agent, or one for `specialty`),
    /// and the agent answers.
    HandOff {
        specialty: &'static str,
        slow: bool,
        reason: &'static str,
    },
    /// The assigned human tries a handoff the policy refuses.
    TryHandOff(&'static str),
    /// The assigned human leaves a note for staff.
    WhisperStaff,
    /// The human who handed it off leaves guidance for the AI agent.
    WhisperAi,
    /// The assigned human raises "needs help".
    RaiseFlag,
    /// The supervisor lowers it.
    LowerFlag,
    /// Taken back from the AI agent: by the supervisor, or by the human who handed it off.
    Reclaim { supervisor: bool },
    /// The assigned human passes it on.
    Transfer { to_team: bool },
    /// The assigned human closes it.
    CloseAsHuman(&'static str),
    /// The customer closes it.
    CloseAsCustomer,
    /// The customer writes to the AI agent; the policy may escalate on the message, or on what
    /// the agent reports, or the agent replies. Skipped once the conversation went back to
    /// humans.
    Probe(String),
    /// The customer asks the AI agent for a refund, which it runs as a skill that waits for a
    /// person's approval.
    AskRefund(String),
    /// The staff decides on the waiting approval, if one waits.
    Decide(Approval),
    /// Taken back from the AI agent by the human who handed it off, if it still holds it.
    ReclaimIfAi,
}

/// How long the driver waits at most for the AI agent's answer after a person (or the clock)
/// decided on its skill: `AiSession::run_skill` waits for the decision, then the agent runs
/// the skill or not and replies. A guard against a hang, like every wait for the AI.
const AFTER_DECISION_WAIT: Duration = Duration::from_secs(AI_TURN_WAIT_SECONDS_MAX);

/// The actions of a scenario, in order.
fn script(s: &Scenario) -> Vec<Action> {
    let lang = s.lang;
    let mut actions = vec![Action::Start, Action::Greet];
    let staff_note = |actions: &mut Vec<Action>| {
        if s.whisper_staff {
            actions.push(Action::WhisperStaff);
        }
    };
    let flag = |actions: &mut Vec<Action>| {
        if s.flag {
            actions.push(Action::RaiseFlag);
            actions.push(Action::LowerFlag);
        }
    };
    let human_closes = |actions: &mut Vec<Action>, line: &str, why: &'static str| {
        actions.push(Action::Human(line.to_owned()));
        flag(actions);
        actions.push(Action::CloseAsHuman(why));
    };
    match s.script {
        Script::Difficult {
            difficulty,
            tries_handoff,
        } => {
            actions.push(Action::Customer(difficulty.message(lang).to_owned()));
            staff_note(&mut actions);
            if tries_handoff {
                actions.push(Action::TryHandOff(difficulty.specialty()));
            }
            human_closes(
                &mut actions,
                lines::human_empathy(lang),
                "resolved by the human agent",
            );
        }
        Script::Transferred { topic, to_team } => {
            actions.push(Action::Customer(topic.question(lang)));
            staff_note(&mut actions);
            actions.push(Action::Transfer { to_team });
            human_closes(
                &mut actions,
                lines::transferred_answer(lang),
                "answered after a transfer",
            );
        }
        Script::Policy { topic, trial } => {
            actions.push(Action::Customer(topic.question(lang)));
            staff_note(&mut actions);
            actions.push(Action::HandOff {
                specialty: topic.specialty(),
                slow: false,
                reason: topic.handoff_reason(),
            });
            match trial {
                Trial::Frustrated => {
                    for line in lines::frustrated(lang) {
                        actions.push(Action::Probe(line.to_owned()));
                    }
                }
                Trial::Circles => {
                    for line in lines::circling(&topic.question(lang)) {
                        actions.push(Action::Probe(line));
                    }
                }
                Trial::Unanswerable => {
                    for line in lines::unanswerable(lang) {
                        actions.push(Action::Probe(line.to_owned()));
                    }
                }
                Trial::Refund(approval) => {
                    actions.push(Action::AskRefund(lines::refund_request(lang).to_owned()));
                    actions.push(Action::Decide(approval));
                }
            }
            actions.push(Action::ReclaimIfAi);
            human_closes(
                &mut actions,
                lines::human_takes_over(lang),
                "resolved by the human agent",
            );
        }
        Script::Simple {
            topic,
            handoff: false,
            ..
        } => {
            actions.push(Action::Customer(topic.question(lang)));
            staff_note(&mut actions);
            human_closes(
                &mut actions,
                lines::human_answer(lang),
                "answered by the human agent",
            );
        }
        Script::Simple {
            topic,
            handoff: true,
            ending,
        } => {
            actions.push(Action::Customer(topic.question(lang)));
            staff_note(&mut actions);
            actions.push(Action::HandOff {
                specialty: topic.specialty(),
                slow: ending == Ending::SlowAi,
                reason: topic.handoff_reason(),
            });
            if s.whisper_ai {
                actions.push(Action::WhisperAi);
            }
            let takes_over = lines::human_takes_over(lang);
            let resolved = "resolved by the human agent";
            match ending {
                Ending::AiCloses => actions.push(Action::CustomerToAi(
                    lines::thanks(lang).to_owned(),
                    AiTurn::Close,
                )),
                Ending::FollowUp(next) => {
                    actions.push(Action::CustomerToAi(next.question(lang), AiTurn::Reply));
                    actions.push(Action::CloseAsCustomer);
                }
                Ending::CustomerCloses => actions.push(Action::CloseAsCustomer),
                Ending::Reclaimed | Ending::Assumed => {
                    actions.push(Action::Reclaim {
                        supervisor: ending == Ending::Assumed,
                    });
                    human_closes(&mut actions, takes_over, resolved);
                }
                Ending::AsksForHuman => {
                    actions.push(Action::WantsHuman);
                    actions.push(Action::ReclaimIfAi);
                    human_closes(&mut actions, takes_over, resolved);
                }
                Ending::AiGivesUp => {
                    let [first, second] = lines::unanswerable(lang);
                    actions.push(Action::CustomerToAi(first.to_owned(), AiTurn::Reply));
                    actions.push(Action::CustomerToAi(second.to_owned(), AiTurn::Escalate));
                    human_closes(&mut actions, takes_over, resolved);
                }
                Ending::SlowAi => {
                    actions.push(Action::SlowQuestion);
                    human_closes(&mut actions, takes_over, resolved);
                }
            }
        }
    }
    actions
}

/// One conversation under way: its scenario, its script and how far it has come.
struct Conv {
    scenario: Scenario,
    id: ConversationId,
    actions: Vec<Action>,
    next: usize,
    /// When its next action is due, in simulated milliseconds from the start of the shift.
    due_ms: u64,
    /// The human who handed it to an AI agent, once one did.
    handed_off_by: Option<HumanId>,
    /// Steps it has waited on an AI agent that should have let go of it.
    ai_held: u32,
    /// Chaos disturbed it (see [`Env::await_ai`]): its customer closed it, and it is counted
    /// apart.
    disturbed: bool,
    /// The AI agent let go of it (a rule or the agent escalated), so the rest of its trial is
    /// skipped.
    escalated: bool,
    /// A skill of its AI agent waits for approval.
    approval_pending: bool,
    tally: Tally,
}

impl Conv {
    fn new(scenario: Scenario, now_ms: u64) -> Conv {
        let actions = script(&scenario);
        Conv {
            id: ConversationId::from_uuid(uuid::Uuid::nil()),
            actions,
            next: 0,
            due_ms: now_ms,
            handed_off_by: None,
            ai_held: 0,
            disturbed: false,
            escalated: false,
            approval_pending: false,
            tally: Tally::default(),
            scenario,
        }
    }

    fn finished(&self) -> bool {
        self.next >= self.actions.len()
    }

    fn customer(&self) -> Result<CustomerId, SimError> {
        customer_of(self.scenario.index)
    }

    /// Runs the action due: on to the next one, `pace` steps later, or the same again at the
    /// next step if it has to wait (for a human to be assigned).
    async fn step(&mut self, env: &Env, now: Timestamp, now_ms: u64) -> Result<(), SimError> {
        let action = self.actions[self.next].clone();
        let done = self.act(env, &action, now).await?;
        if self.disturbed {
            let command = ConversationCommand::Close {
                by: Participant::Customer(self.customer()?),
                reason: reason("disturbed: the AI agent lost track in a takeover")?,
            };
            match env.driver.execute(self.id, command).await {
                Ok(_) | Err(SimError::Handover(handover::Error::Rejected(_))) => {}
                Err(error) => return Err(error),
            }
            return Ok(());
        }
        if done {
            self.next += 1;
            if self.finished() {
                self.tally.closed += 1;
            }
            self.due_ms = now_ms + self.scenario.pace * STEP_MS;
        } else {
            self.due_ms = now_ms + STEP_MS;
        }
        Ok(())
    }

    /// The human handling it now; `None` while it waits for one (or an AI agent still holds
    /// it, which only a passing reply deadline ends).
    async fn assignee(&mut self, env: &Env) -> Result<Option<HumanId>, SimError> {
        match env.driver.handover.conversation(self.id).await?.status {
            Status::Assigned { human, .. } => Ok(Some(human)),
            Status::Reclaimed { by } => Ok(Some(by)),
            Status::AwaitingHuman { .. } => Ok(None),
            Status::AiActive { .. } => {
                self.ai_held += 1;
                if self.ai_held > AI_HOLD_STEPS_MAX {
                    return Err(SimError::Unexpected(format!(
                        "conversation {}: the AI agent still holds it after {} simulated minutes",
                        self.id,
                        u64::from(AI_HOLD_STEPS_MAX) * STEP_MS / 60_000
                    )));
                }
                Ok(None)
            }
            other => Err(SimError::Unexpected(format!(
                "conversation {}: expected a human to handle it, but it is {}",
                self.id,
                other.label()
            ))),
        }
    }

    /// The human who answers for it while an AI agent holds it: who handed it off, or the
    /// supervisor when they are signed out.
    fn responsible(&self, env: &Env) -> HumanId {
        let supervisor = &env.supervisors[self.scenario.tenant];
        match &self.handed_off_by {
            Some(human)
                if env
                    .driver
                    .handover
                    .human(human)
                    .is_some_and(|h| h.presence != Presence::Offline) =>
            {
                human.clone()
            }
            _ => supervisor.clone(),
        }
    }

    /// Runs `action`; `false` when it has to wait for a human.
    async fn act(&mut self, env: &Env, action: &Action, now: Timestamp) -> Result<bool, SimError> {
        let driver = &env.driver;
        let handover = &driver.handover;
        let s = self.scenario.clone();
        let lang = s.lang;
        let tenant = &env.tenants[s.tenant];
        let supervisor = env.supervisors[s.tenant].clone();
        let slow = &env.agents.slow[s.tenant];
        let id = self.id;
        match action {
            Action::Start => {
                let millis = u64::try_from(now.as_micros() / 1000).unwrap_or(0);
                let uuid = Builder::from_unix_timestamp_millis(millis, &s.id_bytes).into_uuid();
                self.id = ConversationId::from_uuid(uuid);
                let customer = self.customer()?;
                let command = ConversationCommand::Start {
                    tenant: tenant.clone(),
                    customer: customer.clone(),
                    channel: Channel::new(s.channel)?,
                    team: Some(TeamId::new(TEAMS[s.team])?),
                    language: Some(Language::new(lang.code())?),
                    human: None,
                };
                driver.execute(self.id, command).await?;
                self.tally.conversations += 1;
            }
            Action::Customer(words) => {
                driver
                    .say(id, self.customer()?, text(words.clone())?)
                    .await?;
            }
            Action::CustomerToAi(words, turn) => {
                let receipt = driver
                    .say(id, self.customer()?, text(words.clone())?)
                    .await?;
                if !env.await_ai(id, last_seq(&receipt), *turn).await? {
                    self.disturbed = true;
                    return Ok(true);
                }
                if *turn == AiTurn::Escalate {
                    self.tally.escalations += 1;
                }
            }
            Action::WantsHuman => {
                // The default policy escalates at once; under one without the rule, the agent
                // answers and the human takes it back (`ReclaimIfAi`).
                let words = lines::wants_human(lang).to_owned();
                return self.probe(env, words).await;
            }
            Action::Probe(words) => {
                if self.escalated {
                    return Ok(true);
                }
                return self.probe(env, words.clone()).await;
            }
            Action::AskRefund(words) => {
                if self.escalated {
                    return Ok(true);
                }
                let receipt = driver
                    .say(id, self.customer()?, text(words.clone())?)
                    .await?;
                if escalates(&receipt) {
                    self.escalated = true;
                    self.tally.escalations += 1;
                    return Ok(true);
                }
                match env
                    .settle(id, last_seq(&receipt), AiTurn::AskApproval)
                    .await?
                {
                    None => self.disturbed = true,
                    Some(Settled::Done) => self.approval_pending = true,
                    Some(Settled::Ran) => {}
                    Some(Settled::Escalated) => {
                        self.escalated = true;
                        self.tally.escalations += 1;
                    }
                }
            }
            Action::Decide(approval) => {
                if !self.approval_pending {
                    return Ok(true);
                }
                let skill = SkillName::new(REFUND_SKILL)?;
                let by = self.responsible(env);
                let command = match approval {
                    Approval::Approve => ConversationCommand::ApproveSkill { by, skill },
                    Approval::Deny => ConversationCommand::DenySkill {
                        by,
                        skill,
                        reason: Reason::new(staff::REFUND_DENIED)?,
                    },
                    Approval::Lapse => {
                        // Nobody decides: the clock denies it at the deadline. Until the
                        // simulated time reaches it, come back next step; from then on the
                        // denial is due at this step (its timer fires as the clock moves), so
                        // wait for it rather than look once, which would race the timer.
                        let history = handover.history(id).await?;
                        let requested =
                            history.iter().rev().find_map(|record| match &record.event {
                                Event::Conversation(
                                    ConversationEvent::SkillApprovalRequested {
                                        at,
                                        deadline_ms,
                                        ..
                                    },
                                ) => Some((record.seq, at.plus_millis(*deadline_ms))),
                                _ => None,
                            });
                        let Some((requested_at, due)) = requested else {
                            self.approval_pending = false;
                            return Ok(true);
                        };
                        if now < due {
                            return Ok(false);
                        }
                        let Some(seq) = await_denial(handover, id, requested_at).await? else {
                            self.disturbed = true;
                            return Ok(true);
                        };
                        self.approval_pending = false;
                        after_decision(handover, id, seq).await;
                        return Ok(true);
                    }
                };
                let receipt = driver.execute(id, command).await?;
                self.approval_pending = false;
                after_decision(handover, id, last_seq(&receipt)).await;
            }

            Action::ReclaimIfAi => {
                if self.escalated {
                    return Ok(true);
                }
                if !matches!(
                    handover.conversation(id).await?.status,
                    Status::AiActive { .. }
                ) {
                    return Ok(true);
                }
                let command = ConversationCommand::Reclaim {
                    by: self.responsible(env),
                    reason: reason("personal follow-up")?,
                };
                driver.execute(id, command).await?;
                self.tally.reclaims += 1;
            }
            Action::SlowQuestion => {
                let words = lines::slow_question(lang).to_owned();
                let receipt = driver.say(id, self.customer()?, text(words)?).await?;
                // The agent runs its lookup, then never answers: the reply deadline escalates
                // it.
                if !env.await_ai(id, last_seq(&receipt), AiTurn::Skill).await? {
                    self.disturbed = true;
                    return Ok(true);
                }
                self.tally.escalations += 1;
                self.tally.ai_timeouts += 1;
            }
            Action::Greet | Action::Human(_) => {
                let Some(human) = self.assignee(env).await? else {
                    return Ok(false);
                };
                let words = match action {
                    Action::Human(words) => words.clone(),
                    _ => lines::greeting(lang, human.as_str()),
                };
                driver
                    .execute(
                        id,
                        ConversationCommand::PostMessage {
                            by: Participant::Human(human),
                            text: text(words)?,
                        },
                    )
                    .await?;
            }
            Action::HandOff {
                specialty,
                slow: to_slow,
                reason: why,
            } => {
                let Some(human) = self.assignee(env).await? else {
                    return Ok(false);
                };
                let agent = if *to_slow {
                    slow.clone()
                } else {
                    env.agents
                        .pick(handover, tenant, slow, specialty, s.agent_pick)?
                };
                let command = ConversationCommand::HandOffToAi {
                    by: human.clone(),
                    agent_id: agent,
                    reason: reason(why)?,
                };
                let receipt = driver.execute(id, command).await?;
                self.handed_off_by = Some(human);
                self.tally.handoffs += 1;
                if !env.await_ai(id, last_seq(&receipt), AiTurn::Reply).await? {
                    self.disturbed = true;
                    return Ok(true);
                }
            }
            Action::TryHandOff(specialty) => {
                let Some(human) = self.assignee(env).await? else {
                    return Ok(false);
                };
                let agent = env
                    .agents
                    .pick(handover, tenant, slow, specialty, s.agent_pick)?;
                let command = ConversationCommand::HandOffToAi {
                    by: human.clone(),
                    agent_id: agent,
                    reason: None,
                };
                match driver.execute(id, command).await {
                    Err(SimError::Handover(handover::Error::Rejected(
                        Rejection::HandoffAgainstPolicy { .. }
                        | Rejection::RefusedByRule { .. }
                        | Rejection::HandoffLoop { .. },
                    ))) => self.tally.refused_handoffs += 1,
                    Err(error) => return Err(error),
                    Ok(receipt) => {
                        // A policy without the rule lets it through: the agent answers, and
                        // the human takes it straight back.
                        self.tally.handoffs += 1;
                        self.handed_off_by = Some(human.clone());
                        if !env.await_ai(id, last_seq(&receipt), AiTurn::Reply).await? {
                            self.disturbed = true;
                            return Ok(true);
                        }
                        let command = ConversationCommand::Reclaim {
                            by: human,
                            reason: reason("personal follow-up")?,
                        };
                        driver.execute(id, command).await?;
                        self.tally.reclaims += 1;
                    }
                }
            }
            Action::WhisperStaff => {
                let Some(human) = self.assignee(env).await? else {
                    return Ok(false);
                };
                let command = ConversationCommand::Whisper {
                    by: human,
                    to: NoteAudience::Staff,
                    text: text(lines::staff_note(lang))?,
                };
                driver.execute(id, command).await?;
                self.tally.whispers += 1;
            }
            Action::WhisperAi => {
                let command = ConversationCommand::Whisper {
                    by: self.responsible(env),
                    to: NoteAudience::Ai,
                    text: text(lines::AI_GUIDANCE)?,
                };
                driver.execute(id, command).await?;
                self.tally.whispers += 1;
            }
            Action::RaiseFlag => {
                let Some(human) = self.assignee(env).await? else {
                    return Ok(false);
                };
                let command = ConversationCommand::RaiseFlag {
                    by: Participant::Human(human),
                };
                driver.execute(id, command).await?;
                self.tally.flags += 1;
            }
            Action::LowerFlag => {
                driver
                    .execute(id, ConversationCommand::LowerFlag { by: supervisor })
                    .await?;
            }
            Action::Reclaim {
                supervisor: by_supervisor,
            } => {
                let by = if *by_supervisor {
                    supervisor
                } else {
                    self.responsible(env)
                };
                let command = ConversationCommand::Reclaim {
                    by,
                    reason: reason("personal follow-up")?,
                };
                driver.execute(id, command).await?;
                self.tally.reclaims += 1;
            }
            Action::Transfer { to_team } => {
                let Some(human) = self.assignee(env).await? else {
                    return Ok(false);
                };
                let colleagues: Vec<HumanId> = handover
                    .humans(tenant, &HumanQuery::default().presence(Presence::Available))
                    .into_iter()
                    .filter(|h| h.role == Role::Agent && h.id != human)
                    .map(|h| h.id)
                    .collect();
                let other_team = TeamId::new(TEAMS[(s.team + 1) % TEAMS.len()])?;
                let (to, why) = match colleagues.get(s.other_pick % colleagues.len().max(1)) {
                    Some(colleague) if !to_team => (
                        TransferTarget::Human(colleague.clone()),
                        lines::TRANSFER_TO_HUMAN,
                    ),
                    _ => (TransferTarget::Team(other_team), lines::TRANSFER_TO_TEAM),
                };
                let command = ConversationCommand::Transfer {
                    by: human,
                    to,
                    reason: Reason::new(why)?,
                };
                driver.execute(id, command).await?;
                self.tally.transfers += 1;
            }
            Action::CloseAsHuman(why) => {
                let Some(human) = self.assignee(env).await? else {
                    return Ok(false);
                };
                driver.close_as_human(id, human, reason(why)?).await?;
            }
            Action::CloseAsCustomer => {
                let command = ConversationCommand::Close {
                    by: Participant::Customer(self.customer()?),
                    reason: None,
                };
                driver.execute(id, command).await?;
            }
        }
        Ok(true)
    }
}

impl Conv {
    /// The customer writes `words` to the AI agent: the policy escalates on the message, or
    /// the agent's turn ends in a reply or an escalation.
    async fn probe(&mut self, env: &Env, words: String) -> Result<bool, SimError> {
        let id = self.id;
        let receipt = env.driver.say(id, self.customer()?, text(words)?).await?;
        if escalates(&receipt) {
            self.escalated = true;
            self.tally.escalations += 1;
            return Ok(true);
        }
        match env
            .settle(id, last_seq(&receipt), AiTurn::ReplyOrEscalate)
            .await?
        {
            None => self.disturbed = true,
            Some(Settled::Escalated) => {
                self.escalated = true;
                self.tally.escalations += 1;
            }
            Some(_) => {}
        }
        Ok(true)
    }
}

/// The seq of the clock's denial of the skill requested at `after_seq`, once recorded (at most
/// [`AFTER_DECISION_WAIT`]; `None` if it does not come, e.g. chaos took the node).
async fn await_denial(
    handover: &Handover,
    id: ConversationId,
    after_seq: u64,
) -> Result<Option<u64>, SimError> {
    let mut watch = handover.watch_from(id, after_seq).await?;
    let denied = async {
        while let Some(record) = watch.next().await {
            let record = record?;
            if let Event::Conversation(ConversationEvent::SkillDenied { .. }) = &record.event {
                return Ok::<_, SimError>(Some(record.seq));
            }
        }
        Ok(None)
    };
    match tokio::time::timeout(AFTER_DECISION_WAIT, denied).await {
        Ok(result) => result,
        Err(_) => Ok(None),
    }
}

/// Waits (at most [`AFTER_DECISION_WAIT`]) for the AI agent to answer after the decision on
/// its skill at `seq`.
async fn after_decision(handover: &Handover, id: ConversationId, seq: u64) {
    if let Ok(mut watch) = handover.watch_from(id, seq).await {
        let _ = tokio::time::timeout(
            AFTER_DECISION_WAIT,
            await_ai(&mut watch, id, AiTurn::Reply, AFTER_DECISION_WAIT),
        )
        .await;
    }
}

/// Whether a command's events hand the conversation back to humans.
fn escalates(receipt: &Receipt) -> bool {
    receipt.events.iter().any(|record| {
        matches!(
            record.event,
            Event::Conversation(
                ConversationEvent::EscalatedToHuman { .. }
                    | ConversationEvent::EscalatedByRule { .. }
            )
        )
    })
}

/// The customer of scenario `index`, `customer-<index>`: [`scenario_of`] reads it back.
pub(crate) fn customer_of(index: usize) -> Result<CustomerId, SimError> {
    Ok(CustomerId::new(format!("customer-{index:06}"))?)
}

/// The scenario whose customer `customer` is, if it is one of [`customer_of`]'s.
pub(crate) fn scenario_of(customer: &CustomerId) -> Option<usize> {
    customer.as_str().strip_prefix("customer-")?.parse().ok()
}

/// The seq of a receipt's last event (0 for none).
fn last_seq(receipt: &Receipt) -> u64 {
    receipt.events.last().map_or(0, |record| record.seq)
}

impl Lang {
    /// The language tag the conversation is opened with.
    fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Pt => "pt-BR",
            Lang::Es => "es",
            Lang::Fr => "fr",
            Lang::De => "de",
            Lang::It => "it",
        }
    }
}

/// The acknowledgement file: one line `<conversation-id> <seq>` per event of every command the
/// simulation sends, written once the command is acknowledged.
pub(crate) struct AckLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl AckLog {
    /// Opens `path` for appending, creating it if missing: a later run on the same data
    /// directory adds its acknowledgements to the earlier ones, all of which the log keeps.
    pub(crate) fn open(path: &Path) -> Result<AckLog, SimError> {
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
pub(crate) struct Driver {
    pub(crate) handover: Handover,
    pub(crate) acks: Option<Arc<AckLog>>,
}

impl Driver {
    /// Runs a command and writes down its acknowledged receipt, if there is an
    /// acknowledgement file.
    pub(crate) async fn execute(
        &self,
        id: ConversationId,
        command: ConversationCommand,
    ) -> Result<Receipt, SimError> {
        let receipt = self.handover.execute(id, command).await?;
        if let Some(acks) = &self.acks {
            acks.write(id, &receipt)?;
        }
        Ok(receipt)
    }

    async fn say(
        &self,
        id: ConversationId,
        customer: CustomerId,
        text: MessageText,
    ) -> Result<Receipt, SimError> {
        let command = ConversationCommand::PostMessage {
            by: Participant::Customer(customer),
            text,
        };
        self.execute(id, command).await
    }

    async fn close_as_human(
        &self,
        id: ConversationId,
        by: HumanId,
        reason: Option<Reason>,
    ) -> Result<Receipt, SimError> {
        let command = ConversationCommand::Close {
            by: Participant::Human(by),
            reason,
        };
        self.execute(id, command).await
    }
}
