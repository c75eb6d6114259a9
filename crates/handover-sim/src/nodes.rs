//! The simulation on several nodes: a coordinator ([`simulate_nodes`]) runs N node processes
//! ([`run_node`]) on one PostgreSQL database and steps them together through simulated time.
//!
//! Each node is a real [`Handover::start_node`] with its own [`ManualClock`], the same AI
//! agents attached, and drives the scenarios whose index modulo N is its own; node 0 also
//! staffs the floor (registers the humans, applies the presence schedule). The coordinator
//! talks to each node over its stdin and stdout, one JSON object a line, and every step has
//! three phases, each finished on every node before the next starts: *begin* (the clock moves
//! to the step's time, deadlines passed are recorded, presence changes apply), *act* (the
//! customers who arrive start, every conversation's action due runs) and *route* (the router
//! opens). So every node shares simulated time, a deadline fires on its owner at the same
//! simulated moment as on one process, and with one node the steps are exactly those of
//! [`crate::simulate_at`]: the same seed gives the same counts as on sled.
//!
//! With chaos, the coordinator kills a node (`SIGKILL`) in the middle of a seeded step, waits
//! until every shard is leased again to a live node (the takeover, timed), and starts a new
//! node with the same index: the conversations its predecessor had started and not finished
//! are closed by their customers and counted as interrupted, the rest of its slice runs. A
//! conversation whose AI agent loses track of it in a takeover is closed and counted as
//! disturbed. Which steps see a kill is seeded; what the killed node was doing at that moment
//! is not, so a run with chaos does not promise its counts.

use std::collections::{BTreeMap, HashSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use handover::{
    ConversationCommand, ConversationEvent, ConversationId, Event, EventStore, Handover,
    ManualClock, NodeOptions, Participant, PostgresOptions, PostgresStore, Reason, RecordedAt,
    RuntimeSettings, SeqRange, StreamId, TimeSource, Timestamp,
};
use rand::{Rng as _, SeedableRng as _};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use uuid::Uuid;

use crate::driver::{
    customer_of, scenario_of, start_time, AckLog, Driver, Floor, Options, Progress, Slice, Tally,
    STEP_MS,
};
use crate::report::{percentile, Summary};
use crate::scenario::draw_scenarios;
use crate::staff::{self, GatedRouter};
use crate::SimError;

/// Most nodes one simulation may run.
pub const NODES_MAX: usize = 8;

/// How long a node may take to answer one phase of a step before the run fails. Only a fault
/// takes this long: an AI turn is given two minutes, a forwarded command thirty seconds.
const PHASE_WAIT: Duration = Duration::from_secs(300);

/// How long the shards may take to be leased again after a kill, or split among the nodes
/// at the start, before the run fails.
const LEASES_WAIT: Duration = Duration::from_secs(120);

/// The lease of a node under chaos: short, so that a killed node's shards are taken over
/// within seconds.
const CHAOS_LEASE: Duration = Duration::from_secs(3);

/// Steps between two kills, at least: the cluster settles before the next one.
const CHAOS_GAP_STEPS: u32 = 40;

/// Shards in the placement, all leased when the cluster is whole.
const SHARDS: i64 = handover_core::placement::SHARDS as i64;

/// How the conversations spread over nodes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NodesOptions {
    /// How many node processes run, 1 to [`NODES_MAX`].
    pub nodes: usize,
    /// Kill a node (`SIGKILL`) and start a new one in its place at seeded steps.
    pub chaos: bool,
}

impl NodesOptions {
    /// `nodes` nodes, without chaos.
    pub fn new(nodes: usize) -> NodesOptions {
        NodesOptions {
            nodes,
            chaos: false,
        }
    }

    /// With chaos or not.
    pub fn chaos(mut self, chaos: bool) -> NodesOptions {
        self.chaos = chaos;
        self
    }

    /// Checks the count of nodes, and that chaos has a node to kill and one to take over.
    pub fn check(&self) -> Result<(), SimError> {
        if self.nodes == 0 || self.nodes > NODES_MAX {
            return Err(SimError::Options(format!(
                "nodes must be from 1 to {NODES_MAX}, not {}",
                self.nodes
            )));
        }
        if self.chaos && self.nodes < 2 {
            return Err(SimError::Options(
                "chaos needs at least 2 nodes: one to kill, one to take over".to_owned(),
            ));
        }
        Ok(())
    }

    /// The lease each node takes its shards for.
    fn lease(&self) -> Duration {
        if self.chaos {
            CHAOS_LEASE
        } else {
            NodeOptions::default().lease
        }
    }
}

/// Which node a process is, as the coordinator starts it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeRole {
    /// Its index, from 0; it drives the scenarios whose index modulo `nodes` is this.
    pub index: usize,
    /// How many nodes the run has.
    pub nodes: usize,
    /// The simulated shift's start, in milliseconds since the Unix epoch.
    pub start_ms: i64,
    /// Where the simulated clock stands when the node starts, in milliseconds after the
    /// shift's start: 0, or the step at which it takes a killed node's place (so that what it
    /// records as it takes its shards up is stamped with the cluster's time).
    pub at_ms: u64,
    /// The lease of its shards, in milliseconds.
    pub lease_ms: u64,
    /// The run kills nodes: a conversation whose AI agent loses track in a takeover is counted,
    /// not fatal (see [`Summary::disturbed_by_chaos`]).
    pub chaos: bool,
}

impl NodeRole {
    /// Node `index` of `nodes`, its clock starting at `start_ms`, leasing for `lease_ms`.
    pub fn new(index: usize, nodes: usize, start_ms: i64, lease_ms: u64) -> NodeRole {
        NodeRole {
            index,
            nodes,
            start_ms,
            lease_ms,
            at_ms: 0,
            chaos: false,
        }
    }

    /// Its clock starting at `at_ms` after the shift's start.
    pub fn at(mut self, at_ms: u64) -> NodeRole {
        self.at_ms = at_ms;
        self
    }

    /// In a run with chaos or not.
    pub fn chaos(mut self, chaos: bool) -> NodeRole {
        self.chaos = chaos;
        self
    }
}

/// A message from the coordinator to a node.
#[derive(Debug, Serialize, Deserialize)]
enum ToNode {
    /// Open the floor at `at_ms` (simulated milliseconds from the start of the shift). A
    /// `staffing` node registers and signs in the humans, unless it `rejoins` in place of a
    /// killed one. Its predecessors started the scenarios `skip` lists; of those, it closes
    /// `interrupt`, which none of them finished.
    Setup {
        at_ms: u64,
        staffing: bool,
        rejoins: bool,
        skip: Vec<usize>,
        interrupt: Vec<(usize, ConversationId)>,
    },
    Begin {
        at_ms: u64,
    },
    Act {
        at_ms: u64,
        stopping: bool,
    },
    Route {
        at_ms: u64,
        stopping: bool,
    },
    Finish,
}

/// A node's answer to a phase.
#[derive(Debug, Default, Serialize, Deserialize)]
struct FromNode {
    /// Events recorded outside the conversations counted at the end (registrations, presence
    /// changes).
    events: u64,
    presence_changes: u64,
    /// Conversations its predecessor started and it closed as interrupted.
    interrupted: u64,
    finished: Vec<(ConversationId, Tally)>,
    /// Events the finished conversations recorded, for the progress.
    finished_events: u64,
    disturbed: Vec<ConversationId>,
    busy: bool,
    arrivals_left: bool,
    next_ms: Option<u64>,
    ack_p50_us: u64,
    ack_p99_us: u64,
    syncs: u64,
    /// Set once the node has started, on its first line.
    ready: bool,
}

/// Runs one node of a simulation on several: starts the node, then follows the
/// coordinator's phases on stdin and answers each on stdout, until told to finish.
pub async fn run_node(url: &str, options: &Options, role: &NodeRole) -> Result<(), SimError> {
    options.check()?;
    let shift_ms = options.shift_minutes.saturating_mul(60_000);
    let staff = staff::plan(options.seed, options.humans, shift_ms, STEP_MS);
    let scenarios: Vec<_> = draw_scenarios(
        options.seed,
        options.conversations,
        staff.tenants.len(),
        shift_ms,
        STEP_MS,
    )
    .into_iter()
    .filter(|s| s.index % role.nodes == role.index)
    .collect();
    let acks = options
        .acks
        .as_deref()
        .map(AckLog::open)
        .transpose()?
        .map(Arc::new);
    let start = Timestamp::from_millis(role.start_ms);
    let clock = ManualClock::new(start.plus_millis(role.at_ms));
    let source = clock.clone();
    let mut store_options = PostgresOptions::default();
    store_options.time_source = Some(TimeSource::new(move || {
        RecordedAt(handover::Clock::now(&source).0)
    }));
    // Other nodes' commits reach this node's read models soon after they happen.
    store_options.poll_interval = Duration::from_millis(50);
    let mut node = NodeOptions::default();
    node.lease = Duration::from_millis(role.lease_ms);
    store_options.node = Some(node);
    let router = Arc::new(GatedRouter::default());
    let settings = RuntimeSettings::default()
        .policy(Arc::new(options.rules()))
        .clock(Arc::new(clock.clone()))
        .router(Arc::clone(&router) as Arc<dyn handover::Router>);
    let handover = Handover::start_node(url, store_options, settings).await?;
    let mut floor = Floor {
        handover: handover.clone(),
        driver: Driver {
            handover: handover.clone(),
            acks,
        },
        clock: clock.clone(),
        shift_start: start,
        router,
        staff,
        chaos: role.chaos,
    };
    let concurrency = options.concurrency.div_ceil(role.nodes).max(1);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut out = tokio::io::stdout();
    let result = serve(
        &mut floor,
        options,
        scenarios,
        concurrency,
        &mut lines,
        &mut out,
    )
    .await;
    handover.shutdown().await;
    result
}

async fn serve(
    floor: &mut Floor,
    options: &Options,
    mut scenarios: Vec<crate::scenario::Scenario>,
    concurrency: usize,
    lines: &mut tokio::io::Lines<BufReader<tokio::io::Stdin>>,
    out: &mut tokio::io::Stdout,
) -> Result<(), SimError> {
    answer(
        out,
        &FromNode {
            ready: true,
            ..FromNode::default()
        },
    )
    .await?;
    let Some(ToNode::Setup {
        at_ms,
        staffing,
        rejoins,
        skip,
        interrupt,
    }) = receive(lines).await?
    else {
        return Err(protocol("the coordinator did not open the floor"));
    };
    floor.advance_to(at_ms);
    let mut summary = Summary::default();
    let mut tally = Tally::default();
    let env = floor
        .open_floor(options, staffing && !rejoins, &mut summary, &mut tally)
        .await?;
    // What the predecessor started and left is closed by its customer: it holds no human.
    let mut setup = FromNode::default();
    for (index, id) in &interrupt {
        let command = ConversationCommand::Close {
            by: Participant::Customer(customer_of(*index)?),
            reason: Some(Reason::new("interrupted: its node was killed")?),
        };
        match floor.driver.execute(*id, command).await {
            Ok(_) | Err(SimError::Handover(handover::Error::Rejected(_))) => {}
            Err(error) => return Err(error),
        }
        setup.interrupted += 1;
    }
    let skip: HashSet<usize> = skip.into_iter().collect();
    scenarios.retain(|s| !skip.contains(&s.index));
    let schedule = if staffing {
        let schedule = floor.staff.schedule.clone();
        // A node in place of a killed one takes the schedule up where its predecessor was.
        schedule
            .into_iter()
            .filter(|s| !rejoins || s.at_ms > at_ms)
            .collect()
    } else {
        Vec::new()
    };
    let mut slice = Slice::new(scenarios, schedule, concurrency);
    setup.events = summary.events;
    setup.presence_changes = tally.presence_changes;
    answer(out, &setup).await?;
    loop {
        let Some(message) = receive(lines).await? else {
            return Err(protocol("the coordinator went away"));
        };
        let mut reply = FromNode::default();
        match message {
            ToNode::Begin { at_ms } => {
                floor.advance_to(at_ms);
                let mut summary = Summary::default();
                let mut tally = Tally::default();
                floor
                    .begin_step(&mut slice, at_ms, &mut summary, &mut tally)
                    .await?;
                reply.events = summary.events;
                reply.presence_changes = tally.presence_changes;
            }
            ToNode::Act { at_ms, stopping } => {
                floor.advance_to(at_ms);
                let acted = floor.act_step(&env, &mut slice, at_ms, stopping).await?;
                for (id, _) in &acted.finished {
                    let history = floor.handover.history(*id).await?;
                    reply.finished_events += u64::try_from(history.len()).unwrap_or(u64::MAX);
                }
                reply.finished = acted.finished;
                reply.disturbed = acted.disturbed;
            }
            ToNode::Route { at_ms, stopping } => {
                floor.advance_to(at_ms);
                floor.route(&env, None, &mut Summary::default()).await?;
                reply.busy = slice.busy();
                reply.arrivals_left = !stopping && slice.arrivals_left();
                reply.next_ms = slice.next_ms(at_ms);
            }
            ToNode::Finish => {
                let latency = floor.handover.ack_latency();
                reply.ack_p50_us = u64::try_from(latency.p50.as_micros()).unwrap_or(u64::MAX);
                reply.ack_p99_us = u64::try_from(latency.p99.as_micros()).unwrap_or(u64::MAX);
                reply.syncs = floor.handover.store_stats().syncs;
                answer(out, &reply).await?;
                return Ok(());
            }
            ToNode::Setup { .. } => return Err(protocol("the floor is open already")),
        }
        answer(out, &reply).await?;
    }
}

fn protocol(what: &str) -> SimError {
    SimError::Unexpected(format!("node protocol: {what}"))
}

async fn receive(
    lines: &mut tokio::io::Lines<BufReader<tokio::io::Stdin>>,
) -> Result<Option<ToNode>, SimError> {
    let line = lines
        .next_line()
        .await
        .map_err(|e| protocol(&format!("cannot read stdin: {e}")))?;
    line.map(|line| serde_json::from_str(&line).map_err(|e| protocol(&format!("{e} in {line:?}"))))
        .transpose()
}

async fn answer(out: &mut tokio::io::Stdout, reply: &FromNode) -> Result<(), SimError> {
    let mut line = serde_json::to_string(reply).map_err(|e| protocol(&e.to_string()))?;
    line.push('\n');
    out.write_all(line.as_bytes())
        .await
        .map_err(|e| protocol(&format!("cannot write stdout: {e}")))?;
    out.flush()
        .await
        .map_err(|e| protocol(&format!("cannot write stdout: {e}")))
}

/// One node process, as the coordinator sees it.
struct NodeProcess {
    index: usize,
    child: Child,
    stdin: ChildStdin,
    stdout: tokio::io::Lines<BufReader<ChildStdout>>,
    /// The last of what it wrote to stderr, to show when it fails.
    stderr: Arc<Mutex<String>>,
    /// Its id in `handover_nodes` and `handover_leases`.
    id: Uuid,
}

/// The most of a node's stderr kept to show when it fails.
const STDERR_KEPT: usize = 16 * 1024;

impl NodeProcess {
    async fn send(&mut self, message: &ToNode) -> Result<(), SimError> {
        let mut line = serde_json::to_string(message).map_err(|e| protocol(&e.to_string()))?;
        line.push('\n');
        if self.stdin.write_all(line.as_bytes()).await.is_err() || self.stdin.flush().await.is_err()
        {
            return Err(self.failed("stopped taking messages").await);
        }
        Ok(())
    }

    async fn receive(&mut self, what: &str) -> Result<FromNode, SimError> {
        match tokio::time::timeout(PHASE_WAIT, self.stdout.next_line()).await {
            Err(_) => {
                let _ = self.child.start_kill();
                Err(self
                    .failed(&format!("did not {what} within {PHASE_WAIT:?}"))
                    .await)
            }
            Ok(Ok(Some(line))) => serde_json::from_str(&line)
                .map_err(|e| protocol(&format!("node {}: {e} in {line:?}", self.index))),
            Ok(_) => Err(self.failed(&format!("ended before it could {what}")).await),
        }
    }

    /// The error of a node that failed, with its exit status and the end of its stderr.
    async fn failed(&mut self, what: &str) -> SimError {
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
            .map_or_else(|| "still running".to_owned(), |status| status.to_string());
        // Let the stderr reader take in the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let stderr = self
            .stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        SimError::Unexpected(format!(
            "node {} {what} ({status}); its stderr:\n{}",
            self.index,
            stderr.trim_end()
        ))
    }
}

/// The coordinator's view of the cluster's leases, on its own connection.
struct Leases {
    client: tokio_postgres::Client,
}

impl Leases {
    async fn connect(url: &str) -> Result<Leases, SimError> {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|e| SimError::Unexpected(format!("cannot read the leases: {e}")))?;
        tokio::spawn(connection);
        Ok(Leases { client })
    }

    async fn nodes(&self) -> Result<HashSet<Uuid>, SimError> {
        let rows = self
            .client
            .query("SELECT node FROM handover_nodes", &[])
            .await
            .map_err(|e| SimError::Unexpected(format!("cannot read the nodes: {e}")))?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Live leases by owner.
    async fn held(&self) -> Result<BTreeMap<Uuid, i64>, SimError> {
        let rows = self
            .client
            .query(
                "SELECT owner, count(*) FROM handover_leases
                 WHERE owner IS NOT NULL AND expires_at > now() GROUP BY owner",
                &[],
            )
            .await
            .map_err(|e| SimError::Unexpected(format!("cannot read the leases: {e}")))?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// Waits until every shard is leased to one of `live`, and each of them holds some.
    async fn until_whole(&self, live: &[Uuid], what: &str) -> Result<(), SimError> {
        let started = Instant::now();
        loop {
            let held = self.held().await?;
            let by_live: i64 = live.iter().filter_map(|id| held.get(id)).sum();
            if by_live == SHARDS && live.iter().all(|id| held.contains_key(id)) {
                return Ok(());
            }
            if started.elapsed() > LEASES_WAIT {
                return Err(SimError::Unexpected(format!(
                    "{what}: the shards were not leased to the live nodes within {LEASES_WAIT:?} \
                     (live leases by owner: {held:?})"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every shard is leased to a live node other than `dead`.
    async fn until_taken_over(&self, dead: Uuid) -> Result<(), SimError> {
        let started = Instant::now();
        loop {
            let held = self.held().await?;
            let others: i64 = held
                .iter()
                .filter(|(id, _)| **id != dead)
                .map(|(_, n)| n)
                .sum();
            if others == SHARDS {
                return Ok(());
            }
            if started.elapsed() > LEASES_WAIT {
                return Err(SimError::Unexpected(format!(
                    "the shards of the killed node were not taken over within {LEASES_WAIT:?} \
                     (live leases by owner: {held:?})"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Runs a simulation over several node processes on the database at `url`, each started by
/// `spawn(role)` (the same program, told to run [`run_node`] with that role), and returns what
/// they did together.
///
/// `progress` and `stop` are as for [`crate::simulate_at`]. The summary's counts are those of
/// the conversations that finished, read back from the log; with chaos, the conversations a
/// killed node had under way are [`Summary::interrupted_by_chaos`], not failures.
pub async fn simulate_nodes(
    url: &str,
    options: &Options,
    cluster: &NodesOptions,
    spawn: impl Fn(&NodeRole) -> Command,
    mut progress: impl FnMut(Progress),
    stop: impl std::future::Future<Output = ()>,
) -> Result<Summary, SimError> {
    use futures::FutureExt as _;

    options.check()?;
    cluster.check()?;
    let started = Instant::now();
    let store = PostgresStore::connect(url, PostgresOptions::default())
        .await
        .map_err(|source| SimError::Database {
            place: crate::LogPlace::Database(url.to_owned()).to_string(),
            source,
        })?;
    let from = store.head() + 1;
    let start = start_time(&store).await?;
    let leases = Leases::connect(url).await?;
    let shift_ms = options.shift_minutes.saturating_mul(60_000);
    let staff = staff::plan(options.seed, options.humans, shift_ms, STEP_MS);
    let total = u64::try_from(options.conversations).unwrap_or(u64::MAX);
    let lease_ms = u64::try_from(cluster.lease().as_millis()).unwrap_or(u64::MAX);
    let role = |index| {
        NodeRole::new(index, cluster.nodes, start.as_micros() / 1000, lease_ms).chaos(cluster.chaos)
    };

    let mut summary = Summary {
        durability: "database",
        seed: options.seed,
        ai_agents: count(options.ai_agents),
        humans: count(options.humans),
        concurrency: count(options.concurrency),
        tenants: count(staff.tenants.len()),
        teams: count(staff.tenants.len() * crate::scenario::TEAMS.len()),
        supervisors: count(staff.tenants.len()),
        shift_minutes: options.shift_minutes,
        nodes: count(cluster.nodes),
        policy: options.rules().name().to_owned(),
        policy_version: options.rules().version().to_string(),
        ..Summary::default()
    };
    let mut tally = Tally::default();
    let mut known = leases.nodes().await?;
    let mut nodes = Vec::new();
    for index in 0..cluster.nodes {
        nodes.push(start_node(&spawn, &role(index), &leases, &mut known).await?);
    }
    let ids: Vec<Uuid> = nodes.iter().map(|n| n.id).collect();
    leases.until_whole(&ids, "at the start").await?;
    for node in &mut nodes {
        let setup = ToNode::Setup {
            at_ms: 0,
            staffing: node.index == 0,
            rejoins: false,
            skip: Vec::new(),
            interrupt: Vec::new(),
        };
        node.send(&setup).await?;
        let reply = node.receive("open the floor").await?;
        summary.events += reply.events;
        tally.presence_changes += reply.presence_changes;
    }

    let mut chaos = rand_chacha::ChaCha8Rng::seed_from_u64(options.seed ^ 0xC4A0_5EED);
    let mut since_kill = 0;
    let mut takeovers_ms = Vec::new();
    let mut finished: Vec<(ConversationId, Tally)> = Vec::new();
    let mut reported_finished: HashSet<ConversationId> = HashSet::new();
    let mut interrupted: HashSet<ConversationId> = HashSet::new();
    let mut done = 0;
    let mut finished_events = 0;
    let mut now_ms = 0;
    let mut stopping = false;
    tokio::pin!(stop);
    let result: Result<(), SimError> = async {
        loop {
            if !stopping && (&mut stop).now_or_never().is_some() {
                stopping = true;
                summary.interrupted = true;
            }
            for reply in phase(&mut nodes, &ToNode::Begin { at_ms: now_ms }, "begin a step").await?
            {
                summary.events += reply.events;
                tally.presence_changes += reply.presence_changes;
            }
            // Kill one node in the middle of acting, at seeded steps a while apart.
            since_kill += 1;
            let victim = (cluster.chaos && since_kill > CHAOS_GAP_STEPS && chaos.gen_ratio(1, 20))
                .then(|| chaos.gen_range(0..nodes.len()));
            let act = ToNode::Act {
                at_ms: now_ms,
                stopping,
            };
            for node in &mut nodes {
                node.send(&act).await?;
            }
            if let Some(victim) = victim {
                since_kill = 0;
                tokio::time::sleep(Duration::from_millis(chaos.gen_range(0..40))).await;
                let dead = &mut nodes[victim];
                dead.child
                    .start_kill()
                    .map_err(|e| SimError::Unexpected(format!("cannot kill node {victim}: {e}")))?;
                let killed = Instant::now();
                let _ = dead.child.wait().await;
                summary.kills += 1;
                leases.until_taken_over(dead.id).await?;
                takeovers_ms.push(u64::try_from(killed.elapsed().as_millis()).unwrap_or(u64::MAX));
                summary.takeovers += 1;
            }
            for (i, node) in nodes.iter_mut().enumerate() {
                if Some(i) == victim {
                    continue;
                }
                let reply = node.receive("act").await?;
                for id in reply.disturbed {
                    if interrupted.insert(id) {
                        summary.disturbed_by_chaos += 1;
                    }
                }
                finished_events += reply.finished_events;
                for (id, conv_tally) in reply.finished {
                    reported_finished.insert(id);
                    finished.push((id, conv_tally));
                    done += 1;
                    progress(Progress {
                        done,
                        total,
                        events: summary.events + finished_events,
                    });
                }
            }
            if let Some(victim) = victim {
                // What the killed node and its predecessors started, from the log: what none of
                // them finished (and no earlier successor closed) is interrupted.
                let started = started_in(&store, from, cluster.nodes, victim).await?;
                let skip = started.iter().map(|(index, _)| *index).collect();
                let interrupt: Vec<(usize, ConversationId)> = started
                    .into_iter()
                    .filter(|(_, id)| !reported_finished.contains(id))
                    .filter(|(_, id)| interrupted.insert(*id))
                    .collect();
                let role = role(victim).at(now_ms);
                let mut node = start_node(&spawn, &role, &leases, &mut known).await?;
                let setup = ToNode::Setup {
                    at_ms: now_ms,
                    staffing: victim == 0,
                    rejoins: true,
                    skip,
                    interrupt,
                };
                node.send(&setup).await?;
                let reply = node.receive("open the floor").await?;
                summary.interrupted_by_chaos += reply.interrupted;
                nodes[victim] = node;
            }
            let route = ToNode::Route {
                at_ms: now_ms,
                stopping,
            };
            let replies = phase(&mut nodes, &route, "route").await?;
            let through = replies.iter().all(|r| !r.busy && !r.arrivals_left);
            if through {
                break;
            }
            let next = replies.iter().filter_map(|r| r.next_ms).min();
            now_ms = next.unwrap_or(now_ms + STEP_MS).max(now_ms + STEP_MS);
        }
        for reply in phase(&mut nodes, &ToNode::Finish, "finish").await? {
            summary.syncs += reply.syncs;
            summary.ack_p50_us = summary.ack_p50_us.max(reply.ack_p50_us);
            summary.ack_p99_us = summary.ack_p99_us.max(reply.ack_p99_us);
        }
        Ok(())
    }
    .await;
    if let Err(error) = result {
        for node in &mut nodes {
            let _ = node.child.start_kill();
        }
        return Err(error);
    }
    for node in &mut nodes {
        let _ = node.child.wait().await;
    }

    let mut waits = Vec::new();
    for (id, conv_tally) in &finished {
        tally += *conv_tally;
        let history = store
            .read_stream(&StreamId::Conversation(*id), SeqRange::ALL)
            .await
            .map_err(handover::Error::from)?;
        summary.count_conversation(history.iter().map(|r| &r.event), &mut waits);
    }
    tally.conclude(&mut summary, waits)?;
    takeovers_ms.sort_unstable();
    summary.takeover_p50_ms = percentile(&takeovers_ms, 50);
    summary.takeover_max_ms = takeovers_ms.last().copied().unwrap_or(0);
    summary.simulated_ms = now_ms;
    let ran = started.elapsed();
    summary.elapsed_ms = u64::try_from(ran.as_millis()).unwrap_or(u64::MAX);
    // Counts are whole numbers far below 2^52: the float keeps them exactly.
    summary.events_per_s = (summary.events as f64 / ran.as_secs_f64().max(1e-9)) as u64;
    Ok(summary)
}

/// Sends `message` to every node, then reads every answer.
async fn phase(
    nodes: &mut [NodeProcess],
    message: &ToNode,
    what: &str,
) -> Result<Vec<FromNode>, SimError> {
    for node in nodes.iter_mut() {
        node.send(message).await?;
    }
    let mut replies = Vec::with_capacity(nodes.len());
    for node in nodes.iter_mut() {
        replies.push(node.receive(what).await?);
    }
    Ok(replies)
}

/// Starts a node process and waits until it runs, learning its id: the one node in
/// `handover_nodes` not `known` before.
async fn start_node(
    spawn: &impl Fn(&NodeRole) -> Command,
    role: &NodeRole,
    leases: &Leases,
    known: &mut HashSet<Uuid>,
) -> Result<NodeProcess, SimError> {
    let mut command = spawn(role);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: Ctrl-C reaches the coordinator, which stops the nodes.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| SimError::Unexpected(format!("cannot start node {}: {e}", role.index)))?;
    let (Some(stdin), Some(stdout), Some(mut stderr_pipe)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(protocol("a node's pipes were not set up"));
    };
    let stderr = Arc::new(Mutex::new(String::new()));
    let kept = Arc::clone(&stderr);
    tokio::spawn(async move {
        let mut buffer = [0; 4096];
        while let Ok(n) = stderr_pipe.read(&mut buffer).await {
            if n == 0 {
                break;
            }
            let mut text = kept.lock().unwrap_or_else(|e| e.into_inner());
            text.push_str(&String::from_utf8_lossy(&buffer[..n]));
            if text.len() > STDERR_KEPT {
                let cut = text.len() - STDERR_KEPT;
                let cut = (cut..text.len())
                    .find(|&i| text.is_char_boundary(i))
                    .unwrap_or(0);
                text.drain(..cut);
            }
        }
    });
    let mut node = NodeProcess {
        index: role.index,
        child,
        stdin,
        stdout: BufReader::new(stdout).lines(),
        stderr,
        id: Uuid::nil(),
    };
    let ready = node.receive("start").await?;
    if !ready.ready {
        return Err(protocol("a node answered before it started"));
    }
    let started = Instant::now();
    loop {
        let new: Vec<Uuid> = leases.nodes().await?.difference(known).copied().collect();
        if let [id] = new[..] {
            known.insert(id);
            node.id = id;
            return Ok(node);
        }
        if new.len() > 1 || started.elapsed() > LEASES_WAIT {
            return Err(SimError::Unexpected(format!(
                "node {} started, but {} new nodes are in handover_nodes (is another run \
                 using the database?)",
                role.index,
                new.len()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The conversations of node `index`'s slice that the log shows started since `from`, by
/// scenario index: their customers are `customer-<index>`.
async fn started_in(
    store: &PostgresStore,
    from: u64,
    nodes: usize,
    index: usize,
) -> Result<Vec<(usize, ConversationId)>, SimError> {
    const BATCH: usize = 4096;
    let mut found = Vec::new();
    let mut at = from;
    loop {
        let records = store
            .read_all(at, BATCH)
            .await
            .map_err(handover::Error::from)?;
        for record in &records {
            let (
                StreamId::Conversation(id),
                Event::Conversation(ConversationEvent::Started { customer, .. }),
            ) = (&record.stream, &record.event)
            else {
                continue;
            };
            if let Some(scenario) = scenario_of(customer).filter(|s| s % nodes == index) {
                found.push((scenario, id.to_owned()));
            }
        }
        match records.last() {
            Some(last) if records.len() == BATCH => at = last.position + 1,
            _ => return Ok(found),
        }
    }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
