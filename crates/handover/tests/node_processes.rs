//! Real node processes on one PostgreSQL database: a node killed with SIGKILL, a node paused
//! with SIGSTOP past its lease, and a node joining a running cluster, each checked against
//! the log and against the database's own record of who wrote what.
//!
//! # The harness
//!
//! Each test starts a throwaway PostgreSQL server (`handover_testkit::PgCluster`) and runs
//! this test executable again, once per node, as a child (`--exact node_process`); the
//! environment variable `HANDOVER_NODE_PROCESS_DATABASE` (the database URL, naming the node in
//! its `application_name`) puts the child in node mode. A node runs
//! `Handover::start_node` with a lease of [`LEASE`] and takes orders on stdin, one line each,
//! answering on stdout:
//!
//! - `setup <req> <tenant>`: registers the tenant's human (`ana-<tenant>`, available) and AI
//!   agent (`bot-<tenant>`, active), each step awaited in this node's own read models;
//! - `attach <req> <tenant>`: runs the tenant's AI agent in this node ([`Echo`]: it answers
//!   the customer's `ping <token>` with `echo: <token>`, on a handoff or a takeover every
//!   message of the history not answered yet, and prints `REPLY <conversation> <seq>
//!   <position> <token>` for each reply its own node acknowledged, or `REFUSED
//!   <conversation> <token> <error>` for each refusal);
//! - `open <req> <tenant> <customer>`: opens a conversation given to the human and hands it to
//!   the AI agent (`OPENED <req> <conversation>`);
//! - `post <req> <conversation> <customer> <token>`: the customer's `ping <token>`, sent with
//!   `Handover::execute_once` under one `CommandId` (sent again under the same id after a
//!   store error, until acknowledged), printing `ATTEMPT <token> <conversation>` first and
//!   `ACK <token> <conversation> <seq> <position>` once acknowledged;
//! - `drive <req> <conversation> <customer> <prefix>`: posts as `post` does, one message after
//!   another, until `halt <req>` (the drive's `DONE` then says how many it sent);
//! - `stop <req>`: stops the runtime and prints `STATS <appends> <events>`, what its own store
//!   committed.
//!
//! Every order ends with `DONE <req>` or `FAIL <req> <error>`.
//!
//! # What the database says
//!
//! Before any node starts, the test adds triggers to the database (test scaffolding: the
//! library's tables are unchanged): one on `handover_head`, which every append's transaction
//! updates, records each commit's positions with the `application_name` of the session that
//! committed them (the node); one on `handover_leases` records each change of a shard's owner
//! or epoch, in order, with the head position it saw; one on `handover_nodes` records when
//! each node's lease round ran (shown when a test fails). A lease change waits for the appends
//! holding that lease (the fence locks it `FOR SHARE`), so an event at a position above the
//! head a change saw was committed after the change. From these, [`check_log`] judges every
//! event: its writer must be the lease holder of its stream's shard when it committed. That is
//! the fence, seen from outside the process, for every event of the test.
//!
//! [`check_log`] also reads the whole log in one snapshot (`PostgresStore::snapshot`: every
//! record's checksum, dense positions, each stream's seqs from 1 and its hash chain), verifies
//! it with `handover_audit::verify_of` (every event against the rules), and checks it against
//! what the nodes printed: every acknowledged message in the log exactly once, at the seq and
//! position of its acknowledgement; no message recorded twice, none that nobody sent; every
//! opened conversation started and handed to its AI agent once; every customer message in the
//! log answered by the AI agent exactly once (the test waits until all are answered before it
//! stops the nodes); every acknowledged AI reply where it was acknowledged; and a node stopped
//! in good order has committed (its store's own count) exactly what the database attributes
//! to it.
//!
//! Every wait is "until it happens, or fail after [`BOUND`]"; times are printed, never
//! asserted.
//!
//! # The tests
//!
//! - [`a_killed_nodes_tenants_are_taken_over_and_answered_once_by_the_new_owner`] — three
//!   nodes; the owner of two tenants is killed with SIGKILL while every node drives
//!   conversations; a survivor holds each of its shards, and a message posted at once
//!   through another node is answered once, by the new owner's AI agent, written by it;
//!   prints the takeover time (the kill to the new owner's answer).
//! - [`a_node_paused_past_its_lease_writes_nothing_after_the_takeover`] — a node paused
//!   (SIGSTOP) with its own commands and forwarded ones in flight; the other takes its
//!   shards over and answers; after SIGCONT its commands go on through the new owner, and no
//!   event of its lost tenants after the takeover's head is its own (nor any reply it
//!   acknowledged).
//! - [`a_joining_node_takes_its_share_with_every_command_recorded_once`] — one node holding
//!   every shard, a second joining under load; the shards split, every command once.
//! - Two ignored tests show faults of the runtime, each described where it is:
//!   [`the_fence_admits_a_node_whose_own_lease_round_is_under_way`] and
//!   [`a_node_paused_inside_its_lease_round_does_not_keep_its_shards`]. Run them with
//!   `cargo test -p handover --features postgres --test node_processes -- --ignored`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use handover::*;
use handover_audit::{AuditLog, RecordLog, VerifyReport};
use handover_core::placement::{shard_of, SHARDS};
use handover_testkit::PgCluster;

/// Puts the test executable in node mode: the database URL.
const CHILD_ENV: &str = "HANDOVER_NODE_PROCESS_DATABASE";
/// The nodes' lease: short, so that takeovers happen within the tests.
const LEASE: Duration = Duration::from_secs(2);
/// The longest any wait of these tests lasts before it fails.
const BOUND: Duration = Duration::from_secs(60);
/// The pause between two messages of a driver.
const PACE: Duration = Duration::from_millis(30);

// ---------------------------------------------------------------------------------------------
// The node (child)

/// One line to the real stdout, flushed; a parent that is gone ends the node.
fn out(line: &str) {
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .is_err()
    {
        std::process::exit(0);
    }
}

fn one_line(text: impl std::fmt::Display) -> String {
    text.to_string().replace(['\n', '\r'], " ")
}

fn human_of(tenant: &TenantId) -> HumanId {
    HumanId::new(format!("ana-{tenant}")).unwrap()
}

fn bot_of(tenant: &TenantId) -> AiAgentId {
    AiAgentId::new(format!("bot-{tenant}")).unwrap()
}

/// Answers `ping <token>` with `echo: <token>`, reporting what its node acknowledged.
struct Echo;

#[async_trait::async_trait]
impl AiAgentBehavior for Echo {
    async fn on_customer_message(
        &self,
        session: &AiSession,
        text: &MessageText,
    ) -> Result<(), AgentError> {
        let id = session.conversation_id();
        let token = text
            .as_str()
            .strip_prefix("ping ")
            .unwrap_or("-")
            .to_owned();
        let reply = MessageText::new(format!("echo: {token}"))?;
        match session.reply(reply).await {
            Ok(receipt) => {
                for record in &receipt.events {
                    out(&format!(
                        "REPLY {id} {} {} {token}",
                        record.seq, record.position
                    ));
                }
            }
            // Refused: the assignment ended, or this node no longer decides for the tenant
            // (the fence says so). Nothing recorded; the node that took the tenant up answers
            // what is left unanswered (`on_handoff`).
            Err(error) => out(&format!("REFUSED {id} {token} {}", one_line(&error))),
        }
        Ok(())
    }

    /// Answers every customer message of the history no AI reply answers yet: on a handoff,
    /// none; when a node takes the assignment up (another node died, was paused or gave the
    /// tenant up), those the former owner left unanswered.
    async fn on_handoff(
        &self,
        session: &AiSession,
        history: &[Arc<RecordedEvent>],
    ) -> Result<(), AgentError> {
        let answered: HashSet<&str> = history
            .iter()
            .filter_map(|r| asked(r))
            .filter_map(|(customer, token)| (!customer).then_some(token))
            .collect();
        for record in history {
            if let Some((true, token)) = asked(record) {
                if !answered.contains(token) {
                    self.on_customer_message(
                        session,
                        &MessageText::new(format!("ping {token}")).unwrap(),
                    )
                    .await?;
                }
            }
        }
        Ok(())
    }
}

/// The token of a customer's message, and of the message an AI reply answers.
fn asked(record: &RecordedEvent) -> Option<(bool, &str)> {
    match &record.event {
        Event::Conversation(ConversationEvent::MessagePosted { author, text, .. }) => {
            match author {
                Author::Customer(_) => Some((true, text.as_str().strip_prefix("ping ")?)),
                Author::Ai(_) => Some((false, text.as_str().strip_prefix("echo: ")?)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Waits in the node until `done` holds.
async fn settle(what: &str, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > BOUND {
            return Err(format!("{what}: not within {BOUND:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn setup(handover: &Handover, tenant: TenantId) -> Result<String, String> {
    let human = human_of(&tenant);
    let bot = bot_of(&tenant);
    handover
        .register_human(
            NewHuman::agent(human.clone(), AgentName::new("Ana").unwrap())
                .tenant(tenant.clone())
                .capacity(100),
        )
        .await
        .map_err(|e| format!("register_human: {e}"))?;
    settle("the human known here", || handover.human(&human).is_some()).await?;
    handover
        .set_presence(human.clone(), Presence::Available)
        .await
        .map_err(|e| format!("set_presence: {e}"))?;
    settle("the human available here", || {
        handover
            .human(&human)
            .is_some_and(|h| h.presence == Presence::Available)
    })
    .await?;
    handover
        .register_ai_agent_in(
            tenant.clone(),
            AiAgentProfile {
                id: bot.clone(),
                name: AgentName::new("Bot").unwrap(),
                specialties: Vec::new(),
            },
        )
        .await
        .map_err(|e| format!("register_ai_agent_in: {e}"))?;
    settle("the AI agent known here", || {
        handover.ai_agents().iter().any(|a| a.profile.id == bot)
    })
    .await?;
    handover
        .activate_ai_agent(bot.clone())
        .await
        .map_err(|e| format!("activate_ai_agent: {e}"))?;
    settle("the AI agent active here", || {
        handover
            .ai_agents()
            .iter()
            .any(|a| a.profile.id == bot && a.active)
    })
    .await?;
    Ok(String::new())
}

async fn attach(handover: &Handover, tenant: TenantId) -> Result<String, String> {
    let bot = bot_of(&tenant);
    settle("the AI agent active here", || {
        handover
            .ai_agents()
            .iter()
            .any(|a| a.profile.id == bot && a.active)
    })
    .await?;
    handover
        .attach_ai_agent(bot, Arc::new(Echo))
        .map_err(|e| format!("attach_ai_agent: {e}"))?;
    Ok(String::new())
}

async fn open(
    handover: &Handover,
    req: &str,
    tenant: TenantId,
    customer: CustomerId,
) -> Result<String, String> {
    let human = human_of(&tenant);
    let id = handover
        .start_conversation(
            NewConversation::new(tenant.clone(), customer, Channel::new("chat").unwrap())
                .human(human.clone()),
        )
        .await
        .map_err(|e| format!("start_conversation: {e}"))?
        .conversation_id;
    out(&format!("OPENED {req} {id}"));
    handover
        .hand_off_to_ai(id, human, bot_of(&tenant), None)
        .await
        .map_err(|e| format!("hand_off_to_ai: {e}"))?;
    Ok(id.to_string())
}

/// The customer's `ping <token>`, recorded once: sent again under the same command id while
/// the outcome is unknown (a store error, e.g. a session the server ended while the node was
/// paused, or a forwarded call that timed out).
async fn post(
    handover: &Handover,
    conversation: ConversationId,
    customer: &CustomerId,
    token: &str,
) -> Result<(), String> {
    let command_id = CommandId::new();
    let command = ConversationCommand::PostMessage {
        by: Participant::Customer(customer.clone()),
        text: MessageText::new(format!("ping {token}")).unwrap(),
    };
    out(&format!("ATTEMPT {token} {conversation}"));
    let started = Instant::now();
    loop {
        match handover
            .execute_once(conversation, command_id, command.clone())
            .await
        {
            Ok(receipt) => {
                for record in &receipt.events {
                    out(&format!(
                        "ACK {token} {conversation} {} {}",
                        record.seq, record.position
                    ));
                }
                return Ok(());
            }
            Err(error @ (Error::Store(_) | Error::Overloaded | Error::Concurrency))
                if started.elapsed() < BOUND =>
            {
                out(&format!("RETRY {token} {}", one_line(error)));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => return Err(format!("post {token}: {error}")),
        }
    }
}

fn answer(req: &str, result: Result<String, String>) {
    match result {
        Ok(rest) => out(&format!("DONE {req} {rest}")),
        Err(error) => out(&format!("FAIL {req} {}", one_line(error))),
    }
}

async fn node_main(url: String) {
    // The runtime's warnings, on stderr (the test shows them, named by node).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            std::env::var("HANDOVER_NODE_LOG").unwrap_or_else(|_| "warn".to_owned()),
        ))
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let mut node = NodeOptions::default();
    node.lease = LEASE;
    let mut options = PostgresOptions::default();
    options.poll_interval = Duration::from_millis(50);
    options.node = Some(node);
    let handover = match Handover::start_node(
        &url,
        options,
        RuntimeSettings::default().router(Arc::new(NoRouter)),
    )
    .await
    {
        Ok(handover) => handover,
        Err(error) => {
            eprintln!("node: cannot start: {error}");
            std::process::exit(3);
        }
    };
    // The test harness prints "test node_process ... " with no line end: end it first.
    out("");
    out("READY");
    let (orders_tx, mut orders) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if orders_tx.send(line).is_err() {
                return;
            }
        }
    });
    let halt = Arc::new(AtomicBool::new(false));
    // The parent gone (stdin closed): the node ends.
    while let Some(line) = orders.recv().await {
        let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
        let [order, req, args @ ..] = words.as_slice() else {
            continue;
        };
        let (handover, req, args, halt) = (
            handover.clone(),
            req.clone(),
            args.to_vec(),
            Arc::clone(&halt),
        );
        let tenant = |i: usize| TenantId::new(args[i].as_str()).unwrap();
        let customer = |i: usize| CustomerId::new(args[i].as_str()).unwrap();
        let conversation = |i: usize| args[i].parse::<ConversationId>().unwrap();
        match order.as_str() {
            "setup" => {
                let tenant = tenant(0);
                tokio::spawn(async move { answer(&req, setup(&handover, tenant).await) });
            }
            "attach" => {
                let tenant = tenant(0);
                tokio::spawn(async move { answer(&req, attach(&handover, tenant).await) });
            }
            "open" => {
                let (tenant, customer) = (tenant(0), customer(1));
                tokio::spawn(
                    async move { answer(&req, open(&handover, &req, tenant, customer).await) },
                );
            }
            "post" => {
                let (id, customer, token) = (conversation(0), customer(1), args[2].clone());
                tokio::spawn(async move {
                    answer(
                        &req,
                        post(&handover, id, &customer, &token)
                            .await
                            .map(|()| String::new()),
                    )
                });
            }
            "drive" => {
                let (id, customer, prefix) = (conversation(0), customer(1), args[2].clone());
                tokio::spawn(async move {
                    let mut sent = 0u64;
                    let mut result = Ok(());
                    while !halt.load(Ordering::SeqCst) {
                        if let Err(error) =
                            post(&handover, id, &customer, &format!("{prefix}n{sent}")).await
                        {
                            result = Err(error);
                            break;
                        }
                        sent += 1;
                        tokio::time::sleep(PACE).await;
                    }
                    answer(&req, result.map(|()| sent.to_string()));
                });
            }
            "halt" => {
                halt.store(true, Ordering::SeqCst);
                answer(&req, Ok(String::new()));
            }
            "stop" => {
                let stats = handover.clone();
                handover.shutdown().await;
                // A group the journal was committing as the runtime stopped is answered
                // within this.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let stats = stats.store_stats();
                out(&format!("STATS {} {}", stats.appends, stats.events));
                answer(&req, Ok(String::new()));
                std::process::exit(0);
            }
            other => answer(&req, Err(format!("unknown order {other}"))),
        }
    }
    std::process::exit(0);
}

/// The node's entry point: a no-op unless a test runs this executable as a node.
#[test]
fn node_process() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(node_main(url));
}

// ---------------------------------------------------------------------------------------------
// The database, as the test sees it

/// The triggers that record who committed each position and each change of a lease.
const RECORDERS: &str = r#"
CREATE TABLE test_commits (
    first_position bigint NOT NULL,
    last_position  bigint NOT NULL,
    app            text   NOT NULL
);
CREATE FUNCTION test_record_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.position > OLD.position THEN
        INSERT INTO test_commits VALUES
            (OLD.position + 1, NEW.position, current_setting('application_name'));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER test_record_commit AFTER UPDATE ON handover_head
    FOR EACH ROW EXECUTE FUNCTION test_record_commit();

CREATE TABLE test_rounds (app text NOT NULL, at timestamptz NOT NULL);
CREATE FUNCTION test_record_round() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_rounds VALUES (current_setting('application_name'), clock_timestamp());
    RETURN NULL;
END $$;
CREATE TRIGGER test_record_round AFTER INSERT OR UPDATE ON handover_nodes
    FOR EACH ROW EXECUTE FUNCTION test_record_round();

CREATE TABLE test_lease_changes (
    id    bigserial   PRIMARY KEY,
    shard integer     NOT NULL,
    owner uuid,
    epoch bigint      NOT NULL,
    app   text        NOT NULL,
    head  bigint      NOT NULL,
    at    timestamptz NOT NULL
);
-- Runs after the update took the lease row's lock, so after every append that held the
-- lease committed; the head read here (a statement of its own, a snapshot of its own) holds
-- them all.
CREATE FUNCTION test_record_lease() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_lease_changes (shard, owner, epoch, app, head, at)
    VALUES (NEW.shard, NEW.owner, NEW.epoch, current_setting('application_name'),
            (SELECT position FROM handover_head), clock_timestamp());
    RETURN NULL;
END $$;
CREATE TRIGGER test_record_lease AFTER UPDATE ON handover_leases
    FOR EACH ROW WHEN (OLD.owner IS DISTINCT FROM NEW.owner OR OLD.epoch IS DISTINCT FROM NEW.epoch)
    EXECUTE FUNCTION test_record_lease();
"#;

struct Db {
    store: PostgresStore,
    runtime: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Db {
    /// Creates Handover's tables (a store connecting migrates them) and the recorders.
    fn prepare(url: &str) -> Db {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (store, client) = runtime.block_on(async {
            let store = PostgresStore::connect(url, PostgresOptions::default())
                .await
                .expect("the schema is created");
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client.batch_execute(RECORDERS).await.unwrap();
            (store, client)
        });
        Db {
            store,
            runtime,
            client,
        }
    }

    /// The live owner of every shard held now, by node name.
    fn owners(&self) -> BTreeMap<u16, String> {
        self.runtime.block_on(async {
            self.client
                .query(
                    "SELECT l.shard, (SELECT c.app FROM test_lease_changes c
                                      WHERE c.owner = l.owner LIMIT 1)
                     FROM handover_leases l
                     WHERE l.owner IS NOT NULL AND l.expires_at > now()",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .filter_map(|row| {
                    let app: Option<String> = row.get(1);
                    Some((row.get::<_, i32>(0) as u16, app?))
                })
                .collect()
        })
    }

    /// The head position the last change of `shard`'s lease saw, if `app` claimed it then.
    fn claimed_at(&self, shard: u16, app: &str) -> Option<u64> {
        self.runtime.block_on(async {
            let row = self
                .client
                .query_opt(
                    "SELECT app, head FROM test_lease_changes WHERE shard = $1
                     ORDER BY id DESC LIMIT 1",
                    &[&i32::from(shard)],
                )
                .await
                .unwrap()?;
            (row.get::<_, String>(0) == app).then(|| row.get::<_, i64>(1) as u64)
        })
    }

    /// Whether a session of `app` is inside a transaction of its lease task (a lease round
    /// holds its leases' rows locked until it commits).
    fn in_lease_round(&self, app: &str) -> bool {
        self.runtime.block_on(async {
            let sessions: i64 = self
                .client
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE application_name = $1 AND xact_start IS NOT NULL
                       AND (query LIKE '%handover_nodes%'
                            OR query LIKE 'UPDATE handover_leases%'
                            OR query = 'BEGIN')",
                    &[&app],
                )
                .await
                .unwrap()
                .get(0);
            sessions > 0
        })
    }

    /// The tokens of the customers' messages in the log no AI reply answers.
    fn unanswered(&self) -> Vec<String> {
        let records = self.runtime.block_on(async {
            let mut records: Vec<RecordedEvent> = Vec::new();
            loop {
                let from = records.last().map_or(1, |r| r.position + 1);
                let page = self.store.read_all(from, 10_000).await.unwrap();
                if page.is_empty() {
                    return records;
                }
                records.extend(page);
            }
        });
        let answered: HashSet<&str> = records
            .iter()
            .filter_map(asked)
            .filter_map(|(customer, token)| (!customer).then_some(token))
            .collect();
        records
            .iter()
            .filter_map(asked)
            .filter(|(customer, token)| *customer && !answered.contains(token))
            .map(|(_, token)| token.to_owned())
            .collect()
    }

    /// Each node's lease rounds that began more than `gap` after its previous one: (node,
    /// when, gap), the time of day in seconds.
    fn late_rounds(&self, gap: Duration) -> Vec<(String, f64, f64)> {
        self.runtime.block_on(async {
            self.client
                .query(
                    "SELECT app, extract(epoch FROM at)::float8, extract(epoch FROM gap)::float8
                     FROM (SELECT app, at, at - lag(at) OVER (PARTITION BY app ORDER BY at) AS gap
                           FROM test_rounds) g
                     WHERE gap > $1::float8 * interval '1 second' ORDER BY at",
                    &[&gap.as_secs_f64()],
                )
                .await
                .unwrap()
                .iter()
                .map(|row| (row.get(0), row.get(1), row.get(2)))
                .collect()
        })
    }

    /// What the database recorded within a second of `at` (seconds of the epoch): lease rounds
    /// and lease changes.
    fn around(&self, at: f64) -> Vec<String> {
        self.runtime.block_on(async {
            let mut lines: Vec<(f64, String)> = Vec::new();
            for row in self
                .client
                .query(
                    "SELECT app, extract(epoch FROM at)::float8 FROM test_rounds
                     WHERE abs(extract(epoch FROM at)::float8 - $1) < 1",
                    &[&at],
                )
                .await
                .unwrap()
            {
                lines.push((row.get(1), format!("round of {}", row.get::<_, String>(0))));
            }
            for row in self
                .client
                .query(
                    "SELECT app, extract(epoch FROM at)::float8, shard, owner::text, epoch, head
                     FROM test_lease_changes WHERE abs(extract(epoch FROM at)::float8 - $1) < 1",
                    &[&at],
                )
                .await
                .unwrap()
            {
                lines.push((
                    row.get(1),
                    format!(
                        "{} set shard {} to owner {:?} epoch {} (head {})",
                        row.get::<_, String>(0),
                        row.get::<_, i32>(2),
                        row.get::<_, Option<String>>(3),
                        row.get::<_, i64>(4),
                        row.get::<_, i64>(5)
                    ),
                ));
            }
            lines.sort_by(|a, b| a.0.total_cmp(&b.0));
            lines
                .into_iter()
                .map(|(t, line)| format!("{:+.3} {line}", t - at))
                .collect()
        })
    }

    /// A conversation's events, one line each: position, seq, writer, event.
    fn conversation(&self, id: &str) -> Vec<String> {
        let records = self.runtime.block_on(async {
            self.store
                .read_stream(&StreamId::Conversation(id.parse().unwrap()), SeqRange::ALL)
                .await
                .unwrap()
        });
        let (events, _) = self.attribution();
        records
            .iter()
            .map(|r| {
                let writer = events
                    .iter()
                    .find(|e| e.0 == r.position)
                    .and_then(|e| e.2.clone());
                format!("{} {} {writer:?} {:?}", r.position, r.seq, r.event)
            })
            .collect()
    }

    /// Every event's position, its stream's shard and the node that committed it; every
    /// lease change of every shard in order, as (head it saw, owner's node).
    #[allow(clippy::type_complexity)]
    fn attribution(
        &self,
    ) -> (
        Vec<(u64, Option<u16>, Option<String>)>,
        HashMap<u16, Vec<(u64, Option<String>)>>,
    ) {
        self.runtime.block_on(async {
            let events = self
                .client
                .query(
                    "SELECT e.position, p.shard, c.app FROM handover_events e
                     LEFT JOIN handover_streams p
                       ON p.stream_kind = e.stream_kind AND p.stream_id = e.stream_id
                     LEFT JOIN test_commits c
                       ON e.position BETWEEN c.first_position AND c.last_position
                     ORDER BY e.position",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|row| {
                    (
                        row.get::<_, i64>(0) as u64,
                        row.get::<_, Option<i32>>(1).map(|s| s as u16),
                        row.get::<_, Option<String>>(2),
                    )
                })
                .collect();
            let rows = self
                .client
                .query(
                    "SELECT shard, owner, app, head FROM test_lease_changes ORDER BY id",
                    &[],
                )
                .await
                .unwrap();
            // A lease's owner is named only by the owner's own claim.
            let mut names: HashMap<uuid::Uuid, String> = HashMap::new();
            for row in &rows {
                if let Some(owner) = row.get::<_, Option<uuid::Uuid>>(1) {
                    let app: String = row.get(2);
                    let known = names.entry(owner).or_insert_with(|| app.clone());
                    assert_eq!(*known, app, "a lease of {owner} claimed by another node");
                }
            }
            let mut changes: HashMap<u16, Vec<(u64, Option<String>)>> = HashMap::new();
            for row in &rows {
                let owner: Option<uuid::Uuid> = row.get(1);
                changes
                    .entry(row.get::<_, i32>(0) as u16)
                    .or_default()
                    .push((
                        row.get::<_, i64>(3) as u64,
                        owner.map(|owner| names[&owner].clone()),
                    ));
            }
            (events, changes)
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The nodes, as the test sees them

/// What the nodes printed.
#[derive(Default)]
struct Transcript {
    /// Tokens sent, by node, with their conversation and when the test read the attempt.
    attempts: HashMap<String, (usize, String, Instant)>,
    /// Acknowledged messages: token → (node, conversation, seq, position, when).
    acks: HashMap<String, (usize, String, u64, u64, Instant)>,
    /// AI replies a node acknowledged: (node, conversation, seq, position, token, when).
    replies: Vec<(usize, String, u64, u64, String, Instant)>,
    /// AI replies a node's store refused: (node, token, error, time of day in seconds).
    refused: Vec<(usize, String, String, f64)>,
    /// Answers to orders: req → Ok(rest) or Err(error).
    answers: HashMap<u64, Result<String, String>>,
    /// What each node's store committed, once stopped: (appends, events).
    stats: HashMap<usize, (u64, u64)>,
    retries: usize,
}

struct NodeProc {
    child: Child,
    stdin: ChildStdin,
}

struct Harness {
    url: String,
    db: Db,
    names: Vec<String>,
    nodes: Vec<Option<NodeProc>>,
    lines_tx: mpsc::Sender<(usize, String)>,
    lines: mpsc::Receiver<(usize, String)>,
    log: Transcript,
    next_req: u64,
    /// Conversations opened: (tenant, conversation, customer).
    opened: Vec<(TenantId, String, String)>,
}

impl Harness {
    fn new(cluster: &PgCluster, database: &str) -> Harness {
        let url = cluster.create_database(database);
        let db = Db::prepare(&url);
        let (lines_tx, lines) = mpsc::channel();
        Harness {
            url,
            db,
            names: Vec::new(),
            nodes: Vec::new(),
            lines_tx,
            lines,
            log: Transcript::default(),
            next_req: 1,
            opened: Vec::new(),
        }
    }

    /// Starts a node process named `name` and waits until its runtime runs.
    fn start_node(&mut self, name: &str) -> usize {
        let index = self.nodes.len();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "node_process", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, format!("{}?application_name={name}", self.url))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("a node process starts");
        let stderr = child.stderr.take().unwrap();
        let prefix = name.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{prefix}] {line}");
            }
        });
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (ready_tx, ready) = mpsc::channel();
        let lines_tx = self.lines_tx.clone();
        std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "READY" {
                    if let Some(ready) = ready_tx.take() {
                        let _ = ready.send(());
                    }
                    continue;
                }
                if lines_tx.send((index, line)).is_err() {
                    return;
                }
            }
        });
        ready
            .recv_timeout(BOUND)
            .unwrap_or_else(|_| panic!("node {name} did not start within {BOUND:?}"));
        self.names.push(name.to_owned());
        self.nodes.push(Some(NodeProc { child, stdin }));
        index
    }

    fn send(&mut self, node: usize, order: &str, args: &[&str]) -> u64 {
        let req = self.next_req;
        self.next_req += 1;
        let proc = self.nodes[node]
            .as_mut()
            .unwrap_or_else(|| panic!("node {} is gone", self.names[node]));
        writeln!(proc.stdin, "{order} {req} {}", args.join(" "))
            .and_then(|()| proc.stdin.flush())
            .unwrap_or_else(|e| panic!("node {} does not listen: {e}", self.names[node]));
        req
    }

    /// Reads what the nodes print for up to `wait`.
    fn pump(&mut self, wait: Duration) {
        let until = Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let Ok((node, line)) = self.lines.recv_timeout(left) else {
                return;
            };
            self.read(node, &line);
            if Instant::now() >= until {
                return;
            }
        }
    }

    fn read(&mut self, node: usize, line: &str) {
        let now = Instant::now();
        let words: Vec<&str> = line.split_whitespace().collect();
        let number = |i: usize| words[i].parse::<u64>().unwrap();
        let log = &mut self.log;
        match words.first().copied() {
            Some("ATTEMPT") => {
                log.attempts
                    .insert(words[1].to_owned(), (node, words[2].to_owned(), now));
            }
            Some("ACK") => {
                log.acks.insert(
                    words[1].to_owned(),
                    (node, words[2].to_owned(), number(3), number(4), now),
                );
            }
            Some("RETRY") => log.retries += 1,
            Some("REPLY") => log.replies.push((
                node,
                words[1].to_owned(),
                number(2),
                number(3),
                words[4].to_owned(),
                now,
            )),
            Some("REFUSED") => log.refused.push((
                node,
                words[2].to_owned(),
                words[3..].join(" "),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs_f64(),
            )),
            Some("OPENED") => {}
            Some("DONE") => {
                log.answers.insert(number(1), Ok(words[2..].join(" ")));
            }
            Some("FAIL") => {
                log.answers.insert(number(1), Err(words[2..].join(" ")));
            }
            Some("STATS") => {
                log.stats.insert(node, (number(1), number(2)));
            }
            _ => {}
        }
    }

    /// Pumps until `done` holds, or fails after [`BOUND`] saying `what`.
    fn until(&mut self, what: &str, mut done: impl FnMut(&Harness) -> bool) {
        let started = Instant::now();
        while !done(self) {
            assert!(started.elapsed() < BOUND, "{what}: not within {BOUND:?}");
            self.pump(Duration::from_millis(50));
        }
    }

    /// Waits for the answer to `req`; a failure fails the test.
    fn wait(&mut self, req: u64) -> String {
        self.until(&format!("answer to order {req}"), |h| {
            h.log.answers.contains_key(&req)
        });
        match &self.log.answers[&req] {
            Ok(rest) => rest.clone(),
            Err(error) => panic!("order {req} failed: {error}"),
        }
    }

    fn order(&mut self, node: usize, order: &str, args: &[&str]) -> String {
        let req = self.send(node, order, args);
        self.wait(req)
    }

    /// Waits until every shard is held by a live node, by `nodes` nodes, none above its fair
    /// share; returns the owners.
    fn until_settled(&mut self, nodes: usize) -> BTreeMap<u16, String> {
        let share = usize::from(SHARDS).div_ceil(nodes);
        self.until(&format!("the leases settled on {nodes} nodes"), |h| {
            let owners = h.db.owners();
            let mut counts: HashMap<&String, usize> = HashMap::new();
            for owner in owners.values() {
                *counts.entry(owner).or_default() += 1;
            }
            owners.len() == usize::from(SHARDS)
                && counts.len() == nodes
                && counts.values().all(|&c| c <= share)
        });
        self.db.owners()
    }

    fn signal(&self, node: usize, signal: &str) {
        let proc = self.nodes[node].as_ref().unwrap();
        let status = Command::new("kill")
            .args(["-s", signal, &proc.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -s {signal} failed");
    }

    fn kill(&mut self, node: usize) {
        let mut proc = self.nodes[node].take().unwrap();
        proc.child.kill().unwrap();
        proc.child.wait().unwrap();
    }

    /// Stops a node through its stdin and waits until it exits, its `STATS` read.
    fn stop(&mut self, node: usize) {
        let req = self.send(node, "stop", &[]);
        self.wait(req);
        let mut proc = self.nodes[node].take().unwrap();
        let status = proc.child.wait().unwrap();
        assert!(
            status.success(),
            "node {} ended with {status}",
            self.names[node]
        );
    }

    /// Sets a tenant up on `owner` (its human and AI agent) and runs its AI agent on every
    /// node.
    fn setup(&mut self, owner: usize, tenant: &TenantId) {
        self.order(owner, "setup", &[tenant.as_str()]);
        for node in 0..self.nodes.len() {
            if self.nodes[node].is_some() {
                self.order(node, "attach", &[tenant.as_str()]);
            }
        }
    }

    /// Opens `count` conversations of `tenant` through `via`, each handed to the tenant's AI
    /// agent; returns their indexes in `opened`.
    fn open(&mut self, via: usize, tenant: &TenantId, count: usize) -> Vec<usize> {
        (0..count)
            .map(|_| {
                let customer = format!("c{}", self.opened.len());
                let id = self.order(via, "open", &[tenant.as_str(), &customer]);
                self.opened.push((tenant.clone(), id, customer));
                self.opened.len() - 1
            })
            .collect()
    }

    /// Starts a driver on `node` for the opened conversation `index`.
    fn drive(&mut self, node: usize, index: usize) -> u64 {
        let (_, id, customer) = self.opened[index].clone();
        let prefix = format!("{}d{}", self.names[node], self.next_req);
        self.send(node, "drive", &[&id, &customer, &prefix])
    }

    /// Posts one message to the opened conversation `index` through `node`; returns its token
    /// and the order's req.
    fn probe(&mut self, node: usize, index: usize, name: &str) -> (String, u64) {
        let (_, id, customer) = self.opened[index].clone();
        let token = format!("{name}{}", self.next_req);
        let req = self.send(node, "post", &[&id, &customer, &token]);
        (token, req)
    }

    /// Halts every driver of the live nodes and waits until each has finished.
    fn halt(&mut self, drivers: &[(usize, u64)]) {
        for node in 0..self.nodes.len() {
            if self.nodes[node].is_some() {
                self.order(node, "halt", &[]);
            }
        }
        for &(node, req) in drivers {
            if self.nodes[node].is_some() {
                self.wait(req);
            }
        }
    }

    /// Waits until the AI agents answered every customer message in the log.
    fn until_all_answered(&mut self) {
        let started = Instant::now();
        loop {
            let waiting = self.db.unanswered();
            if waiting.is_empty() {
                return;
            }
            assert!(
                started.elapsed() < BOUND,
                "customer messages never answered by an AI agent:{}",
                self.report(&waiting)
            );
            self.pump(Duration::from_millis(300));
        }
    }

    /// Acknowledged messages of `node`'s drivers so far.
    fn acks_of(&self, node: usize) -> usize {
        self.log.acks.values().filter(|a| a.0 == node).count()
    }

    /// What the log holds around each of `tokens`, and what the nodes said of them.
    fn report(&self, tokens: &[String]) -> String {
        let mut report = String::new();
        for token in tokens {
            let Some((node, conversation, _)) = self.log.attempts.get(token) else {
                continue;
            };
            let tenant = self
                .opened
                .iter()
                .find(|o| &o.1 == conversation)
                .map(|o| o.0.clone());
            report.push_str(&format!(
                "\n{token}, sent by {} in {conversation} ({tenant:?}, shard {:?}):",
                self.names[*node],
                tenant.as_ref().map(shard_of)
            ));
            let lines = self.db.conversation(conversation);
            let at = lines
                .iter()
                .position(|l| l.contains(&format!("\"ping {token}\"")))
                .unwrap_or(lines.len());
            for line in &lines[at.saturating_sub(4)..(at + 8).min(lines.len())] {
                report.push_str(&format!("\n  {line}"));
            }
            if let Some(shard) = tenant.as_ref().map(shard_of) {
                let (_, changes) = self.db.attribution();
                report.push_str(&format!(
                    "\n  lease changes of shard {shard} (head seen, owner): {:?}",
                    changes.get(&shard)
                ));
            }
            for refused in self.log.refused.iter().filter(|r| &r.1 == token) {
                report.push_str(&format!(
                    "\n  refused on {} at {:.3}: {}",
                    self.names[refused.0], refused.3, refused.2
                ));
                for line in self.db.around(refused.3) {
                    report.push_str(&format!("\n    {line}"));
                }
            }
        }
        report.push_str(&format!(
            "\nlease rounds late by more than half the lease (node, at, gap): {:?}",
            self.db.late_rounds(LEASE / 2)
        ));
        report
    }

    /// Waits until the AI agent answered every one of `tokens`; if it does not, fails with
    /// what the log holds of their conversations.
    fn until_answered(&mut self, tokens: &[String]) {
        let started = Instant::now();
        while !tokens.iter().all(|t| self.reply_to(t).is_some()) {
            if started.elapsed() > BOUND {
                let waiting: Vec<String> = tokens
                    .iter()
                    .filter(|t| self.reply_to(t).is_none())
                    .cloned()
                    .collect();
                panic!(
                    "the AI agent did not answer within {BOUND:?}:{}",
                    self.report(&waiting)
                );
            }
            self.pump(Duration::from_millis(50));
        }
    }

    fn reply_to(&self, token: &str) -> Option<&(usize, String, u64, u64, String, Instant)> {
        self.log.replies.iter().find(|r| r.4 == token)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        for proc in self.nodes.iter_mut().flatten() {
            let _ = proc.child.kill();
            let _ = proc.child.wait();
        }
    }
}

/// Tenants `t-<i>` whose shards `owner` holds, each in a shard of its own.
fn tenants_of(owners: &BTreeMap<u16, String>, owner: &str, count: usize) -> Vec<TenantId> {
    let mut shards = HashSet::new();
    (0..)
        .map(|i| TenantId::new(format!("t-{i}")).unwrap())
        .filter(|tenant| {
            let shard = shard_of(tenant);
            owners.get(&shard).map(String::as_str) == Some(owner) && shards.insert(shard)
        })
        .take(count)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The check

/// What [`check_log`] found.
#[derive(Debug, Default)]
struct Checked {
    events: usize,
    acked: usize,
    /// Events each node committed, by node name.
    written_by: BTreeMap<String, usize>,
}

fn token_of<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.strip_prefix(prefix)
}

/// Checks the whole log against what the nodes printed and what the database recorded (see
/// the module's documentation).
fn check_log(h: &Harness) -> Checked {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let records = runtime.block_on(async {
        let store = PostgresStore::connect(&h.url, PostgresOptions::default())
            .await
            .unwrap();
        store
            .snapshot()
            .await
            .unwrap_or_else(|e| panic!("the log does not verify: {e}"))
    });
    let log = RecordLog::new(records.clone());
    match handover_audit::verify_of(AuditLog::Records(&log)).unwrap() {
        VerifyReport::Sound { .. } => {}
        VerifyReport::Faulty(fault) => panic!("the audit finds the log faulty: {fault:?}"),
    }

    // Every stream from seq 1 without a gap or a repeat, in the global order.
    let mut seqs: HashMap<StreamId, u64> = HashMap::new();
    for (i, record) in records.iter().enumerate() {
        assert_eq!(record.position, i as u64 + 1, "positions are dense");
        let last = seqs.entry(record.stream.clone()).or_default();
        assert_eq!(
            record.seq,
            *last + 1,
            "{:?} runs without gap",
            record.stream
        );
        *last = record.seq;
    }

    // Every conversation opened (acknowledged) is in the log: started, then handed to its
    // tenant's AI agent, once.
    for (tenant, id, _) in &h.opened {
        let stream = StreamId::Conversation(id.parse().unwrap());
        let events: Vec<&Event> = records
            .iter()
            .filter(|r| r.stream == stream)
            .map(|r| &r.event)
            .collect();
        assert!(
            matches!(
                events.first(),
                Some(Event::Conversation(ConversationEvent::Started { .. }))
            ),
            "conversation {id} starts with its opening"
        );
        let handoffs = events
            .iter()
            .filter(|e| {
                matches!(e, Event::Conversation(ConversationEvent::HandedOffToAi { agent_id, .. })
                    if *agent_id == bot_of(tenant))
            })
            .count();
        assert_eq!(handoffs, 1, "conversation {id} handed to its AI agent once");
    }

    // The messages, by token.
    let mut asked: HashMap<&str, Vec<&RecordedEvent>> = HashMap::new();
    let mut answered: HashMap<&str, Vec<&RecordedEvent>> = HashMap::new();
    for record in &records {
        if let Event::Conversation(ConversationEvent::MessagePosted { author, text, .. }) =
            &record.event
        {
            match author {
                Author::Customer(_) => {
                    let token = token_of(text.as_str(), "ping ").expect("a token");
                    asked.entry(token).or_default().push(record);
                }
                Author::Ai(_) => {
                    let token = token_of(text.as_str(), "echo: ").expect("a token");
                    answered.entry(token).or_default().push(record);
                }
                _ => {}
            }
        }
    }
    for (token, found) in &asked {
        assert!(
            h.log.attempts.contains_key(*token),
            "message {token} is in the log, but nobody sent it"
        );
        assert_eq!(
            found.len(),
            1,
            "message {token} is in the log {} times",
            found.len()
        );
    }
    for (token, (node, conversation, seq, position, _)) in &h.log.acks {
        let found = asked.get(token.as_str()).unwrap_or_else(|| {
            panic!(
                "message {token}, acknowledged to node {} at position {position}, is not in the log",
                h.names[*node]
            )
        });
        let record = found[0];
        assert_eq!(
            (record.stream.clone(), record.seq, record.position),
            (
                StreamId::Conversation(conversation.parse().unwrap()),
                *seq,
                *position
            ),
            "message {token} is where its acknowledgement says"
        );
    }
    for token in asked.keys() {
        assert!(
            answered.contains_key(token),
            "message {token} was never answered by the AI agent"
        );
    }
    for (token, found) in &answered {
        assert_eq!(
            found.len(),
            1,
            "message {token} was answered {} times by the AI agent",
            found.len()
        );
    }
    for (node, conversation, seq, position, token, _) in &h.log.replies {
        let found = answered.get(token.as_str()).unwrap_or_else(|| {
            panic!(
                "the reply to {token}, acknowledged on {}, is not in the log",
                h.names[*node]
            )
        });
        assert_eq!(
            (found[0].stream.clone(), found[0].seq, found[0].position),
            (
                StreamId::Conversation(conversation.parse().unwrap()),
                *seq,
                *position
            ),
            "the reply to {token} is where its acknowledgement says"
        );
    }

    // The fence, per event: its writer held its shard's lease when it committed.
    let (events, changes) = h.db.attribution();
    assert_eq!(events.len(), records.len(), "every event is attributed");
    let mut written_by: BTreeMap<String, usize> = BTreeMap::new();
    for (position, shard, writer) in &events {
        let shard = shard.unwrap_or_else(|| panic!("position {position}: its stream is unplaced"));
        let writer = writer
            .as_ref()
            .unwrap_or_else(|| panic!("position {position}: no commit recorded it"));
        let holder = changes
            .get(&shard)
            .and_then(|changes| {
                changes
                    .iter()
                    .take_while(|(head, _)| head < position)
                    .last()
            })
            .and_then(|(_, owner)| owner.as_ref());
        assert_eq!(
            holder,
            Some(writer),
            "position {position} (shard {shard}) was written by {writer} while the lease was \
             {holder:?}'s"
        );
        *written_by.entry(writer.clone()).or_default() += 1;
    }

    // What each node stopped in good order says it committed is what the database says.
    for (node, (_, events)) in &h.log.stats {
        let name = &h.names[*node];
        assert_eq!(
            written_by.get(name).copied().unwrap_or(0) as u64,
            *events,
            "events committed by {name}: the database's record and the node's own count"
        );
    }
    Checked {
        events: records.len(),
        acked: h.log.acks.len(),
        written_by,
    }
}

fn writer_of(h: &Harness, position: u64) -> String {
    let (events, _) = h.db.attribution();
    events
        .into_iter()
        .find(|(p, _, _)| *p == position)
        .and_then(|(_, _, writer)| writer)
        .unwrap_or_else(|| panic!("no writer recorded for position {position}"))
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn a_killed_nodes_tenants_are_taken_over_and_answered_once_by_the_new_owner() {
    let cluster = PgCluster::start();
    let mut h = Harness::new(&cluster, "killed");
    let a = h.start_node("node_a");
    h.until_settled(1);
    let b = h.start_node("node_b");
    h.until_settled(2);
    let c = h.start_node("node_c");
    let owners = h.until_settled(3);
    let nodes = [a, b, c];

    // Two tenants of the node to be killed, one of each other node.
    let victims = tenants_of(&owners, "node_a", 2);
    let mut tenants: Vec<(usize, TenantId)> = victims.iter().map(|t| (a, t.clone())).collect();
    tenants.push((b, tenants_of(&owners, "node_b", 1).remove(0)));
    tenants.push((c, tenants_of(&owners, "node_c", 1).remove(0)));
    let mut conversations = Vec::new();
    for (owner, tenant) in &tenants {
        h.setup(*owner, tenant);
    }
    for (owner, tenant) in &tenants {
        // Opened and handed off through another node: forwarded to the owner.
        let via = nodes[(owner + 1) % 3];
        conversations.extend(h.open(via, tenant, 2));
    }
    let mut drivers = Vec::new();
    for (k, &index) in conversations.iter().enumerate() {
        let node = nodes[k % 3];
        drivers.push((node, h.drive(node, index)));
    }
    h.until("messages acknowledged on every node", |h| {
        nodes.iter().all(|&n| h.acks_of(n) >= 10)
    });

    h.kill(a);
    let killed = Instant::now();
    // A message to each of the dead node's conversations, sent through a survivor at once:
    // they wait for the new owner.
    let victim_conversations: Vec<usize> = conversations
        .iter()
        .copied()
        .filter(|&i| victims.contains(&h.opened[i].0))
        .collect();
    let probes: Vec<(usize, String, u64)> = victim_conversations
        .iter()
        .map(|&i| {
            let (token, req) = h.probe(b, i, "probe");
            (i, token, req)
        })
        .collect();
    let mut taken = Vec::new();
    for tenant in &victims {
        let shard = shard_of(tenant);
        h.until(&format!("{tenant}'s shard {shard} taken over"), |h| {
            h.db.owners()
                .get(&shard)
                .is_some_and(|owner| owner != "node_a")
        });
        taken.push((
            tenant.clone(),
            h.db.owners()[&shard].clone(),
            killed.elapsed(),
        ));
    }
    for (_, _, req) in &probes {
        h.wait(*req);
    }
    let tokens: Vec<String> = probes.iter().map(|p| p.1.clone()).collect();
    h.until_answered(&tokens);
    let answered_after: Vec<Duration> = probes
        .iter()
        .map(|(_, token, _)| h.reply_to(token).unwrap().5 - killed)
        .collect();
    // Let the survivors' drivers go on a little after the takeover, then stop.
    let after = h.acks_of(b) + h.acks_of(c);
    h.until("drivers going on after the takeover", |h| {
        h.acks_of(b) + h.acks_of(c) >= after + 20
    });
    h.halt(&drivers);
    h.until_all_answered();
    // Each probe was answered by the tenant's new owner, which wrote the answer itself.
    for (i, token, _) in &probes {
        let tenant = &h.opened[*i].0;
        let owner = h.db.owners()[&shard_of(tenant)].clone();
        let (node, _, _, position, _, _) = h.reply_to(token).unwrap().clone();
        assert_eq!(
            h.names[node], owner,
            "{token} answered by the new owner of {tenant}"
        );
        assert_eq!(
            writer_of(&h, position),
            owner,
            "the answer to {token} written by its owner"
        );
    }
    h.stop(b);
    h.stop(c);
    let checked = check_log(&h);
    for (_, token, _) in &probes {
        assert!(h.log.acks.contains_key(token), "probe {token} acknowledged");
    }
    for (tenant, owner, after) in &taken {
        eprintln!("kill -9: {tenant} (shard {}) held by {owner} {after:?} after the kill (lease {LEASE:?})", shard_of(tenant));
    }
    eprintln!(
        "kill -9: takeover time (kill to the new owner's AI agent answering): first {:?}, last {:?}; \
         {} events in the log, {} messages acknowledged, written by {:?}; {} retries, {} refused AI replies",
        answered_after.iter().min().unwrap(),
        answered_after.iter().max().unwrap(),
        checked.events,
        checked.acked,
        checked.written_by,
        h.log.retries,
        h.log.refused.len(),
    );
}

#[test]
fn a_node_paused_past_its_lease_writes_nothing_after_the_takeover() {
    let cluster = PgCluster::start();
    let mut h = Harness::new(&cluster, "paused");
    let a = h.start_node("node_a");
    h.until_settled(1);
    let b = h.start_node("node_b");
    let owners = h.until_settled(2);

    let paused_tenants = tenants_of(&owners, "node_a", 2);
    let other = tenants_of(&owners, "node_b", 1).remove(0);
    for tenant in &paused_tenants {
        h.setup(a, tenant);
    }
    h.setup(b, &other);
    let mut paused_conversations = Vec::new();
    for tenant in &paused_tenants {
        paused_conversations.extend(h.open(b, tenant, 2));
    }
    let others = h.open(a, &other, 2);
    // The paused node's own commands on its tenants, and the other node's, forwarded to it.
    let mut drivers = Vec::new();
    for &i in &paused_conversations {
        drivers.push((a, h.drive(a, i)));
        drivers.push((b, h.drive(b, i)));
    }
    for &i in &others {
        drivers.push((b, h.drive(b, i)));
    }
    h.until("messages acknowledged on both nodes", |h| {
        h.acks_of(a) >= 20 && h.acks_of(b) >= 20
    });

    // Paused with commands in flight: its own drivers', and the other node's, forwarded to
    // it. A pause inside a lease round would keep the node's lease rows locked until it wakes,
    // and no node could take them over (see
    // `a_node_paused_inside_its_lease_round_does_not_keep_its_shards`): pause again at another
    // moment then.
    let mut pauses = 0;
    let paused = loop {
        pauses += 1;
        h.signal(a, "STOP");
        let paused = Instant::now();
        std::thread::sleep(Duration::from_millis(50));
        if !h.db.in_lease_round("node_a") {
            break paused;
        }
        assert!(pauses < 20, "node_a always paused inside a lease round");
        h.signal(a, "CONT");
        h.pump(Duration::from_millis(137));
    };
    let acks_at_pause = h.acks_of(a);
    let mut takeovers = Vec::new();
    for tenant in &paused_tenants {
        let shard = shard_of(tenant);
        h.until(&format!("{tenant}'s shard {shard} taken over"), |h| {
            h.db.owners().get(&shard).map(String::as_str) == Some("node_b")
        });
        let head =
            h.db.claimed_at(shard, "node_b")
                .expect("node_b's claim recorded");
        takeovers.push((tenant.clone(), shard, head, paused.elapsed()));
    }
    let taken = Instant::now();
    // The new owner answers while the old one sleeps.
    let (probe, probe_req) = h.probe(b, paused_conversations[0], "probe");
    h.wait(probe_req);
    h.until_answered(std::slice::from_ref(&probe));
    let answered_after = h.reply_to(&probe).unwrap().5 - paused;
    assert_eq!(h.names[h.reply_to(&probe).unwrap().0], "node_b");
    let going = h.acks_of(b);
    h.until("the other node's drivers going on", |h| {
        h.acks_of(b) >= going + 20
    });

    h.signal(a, "CONT");
    let woke = Instant::now();
    // The woken node's commands go on: each of its drivers has more acknowledged.
    h.until("the woken node's drivers going on", |h| {
        h.acks_of(a) >= acks_at_pause + 2 * paused_conversations.len()
    });
    h.halt(&drivers);
    h.until_all_answered();
    h.stop(a);
    h.stop(b);
    let checked = check_log(&h);

    // check_log proved the fence for every event. In particular, and from the paused node's
    // own word:
    let (events, _) = h.db.attribution();
    let shard_at: HashMap<u64, Option<u16>> = events.iter().map(|(p, s, _)| (*p, *s)).collect();
    let writer_at: HashMap<u64, Option<String>> =
        events.into_iter().map(|(p, _, w)| (p, w)).collect();
    let taken_at: HashMap<u16, u64> = takeovers
        .iter()
        .map(|(_, s, head, _)| (*s, *head))
        .collect();
    let mut after_takeover = 0;
    for (node, _, _, position, token, _) in &h.log.replies {
        if let Some(&head) = shard_at[position].as_ref().and_then(|s| taken_at.get(s)) {
            if *node == a {
                assert!(
                    *position <= head,
                    "node_a acknowledged its AI reply to {token} at position {position}, after \
                     the takeover at {head}"
                );
            }
        }
    }
    // Every event of the paused node's tenants after the takeover was written by the new
    // owner; before it, the paused node wrote them.
    let (mut before, mut after_events) = (0, 0);
    for (position, shard, writer) in &h.db.attribution().0 {
        let Some(&head) = shard.as_ref().and_then(|s| taken_at.get(s)) else {
            continue;
        };
        if *position > head {
            after_events += 1;
            assert_eq!(
                writer.as_deref(),
                Some("node_b"),
                "position {position}, after the takeover at {head}, written by node_b"
            );
        } else if writer.as_deref() == Some("node_a") {
            before += 1;
        }
    }
    assert!(
        before > 0 && after_events > 0,
        "node_a wrote its tenants before the takeover ({before} events), node_b after \
         ({after_events})"
    );
    // Commands sent to the paused node before the takeover, acknowledged after it: written
    // by the new owner.
    let in_flight = h
        .log
        .acks
        .iter()
        .filter(|(token, (_, _, _, position, _))| {
            let sent = h.log.attempts[*token].2;
            sent < taken
                && shard_at[position]
                    .as_ref()
                    .and_then(|s| taken_at.get(s))
                    .is_some_and(|head| position > head)
        })
        .count();
    assert!(
        in_flight > 0,
        "commands in flight to the paused node were acknowledged after the takeover"
    );
    let mut woken_redirected = 0;
    for (token, (node, _, _, position, when)) in &h.log.acks {
        let Some(&head) = shard_at[position].as_ref().and_then(|s| taken_at.get(s)) else {
            continue;
        };
        if *position > head {
            after_takeover += 1;
            assert_eq!(
                writer_at[position].as_deref(),
                Some("node_b"),
                "{token} at {position}, after the takeover, by node_b"
            );
            if *node == a && *when > woke {
                woken_redirected += 1;
            }
        }
    }
    assert!(
        woken_redirected > 0,
        "the woken node's commands on its lost tenants were acknowledged, written by the new owner"
    );
    for (tenant, shard, head, after) in &takeovers {
        eprintln!(
            "SIGSTOP: {tenant} (shard {shard}) taken over by node_b {after:?} after the pause, \
             at head {head} (lease {LEASE:?})"
        );
    }
    eprintln!(
        "SIGSTOP: {pauses} pause(s) to miss a lease round; the new owner answered {answered_after:?} \
         after the pause; {after_takeover} acknowledged messages of the paused tenants after the \
         takeover, all written by node_b, {in_flight} of them sent before the takeover, \
         {woken_redirected} acknowledged to node_a after it woke; {after_events} events of its tenants \
         after the takeover, all node_b's; node_a's AI replies refused after waking: {}; {} \
         events, written by {:?}; {} retries",
        h.log.refused.iter().filter(|r| r.0 == a).count(),
        checked.events,
        checked.written_by,
        h.log.retries,
    );
}

#[test]
fn a_joining_node_takes_its_share_with_every_command_recorded_once() {
    let cluster = PgCluster::start();
    let mut h = Harness::new(&cluster, "joining");
    let a = h.start_node("node_a");
    let owners = h.until_settled(1);
    // Tenants in both halves of the shards: the join moves some of them.
    let mut tenants: Vec<TenantId> = Vec::new();
    for i in 0.. {
        let tenant = TenantId::new(format!("t-{i}")).unwrap();
        let low = shard_of(&tenant) < SHARDS / 2;
        if tenants
            .iter()
            .filter(|t| (shard_of(t) < SHARDS / 2) == low)
            .count()
            < 2
        {
            tenants.push(tenant);
        }
        if tenants.len() == 4 {
            break;
        }
    }
    assert!(tenants.iter().all(|t| owners[&shard_of(t)] == "node_a"));
    for tenant in &tenants {
        h.setup(a, tenant);
    }
    let mut conversations = Vec::new();
    for tenant in &tenants {
        conversations.extend(h.open(a, tenant, 2));
    }
    let mut drivers = Vec::new();
    for &i in &conversations {
        drivers.push((a, h.drive(a, i)));
    }
    h.until("messages acknowledged", |h| h.acks_of(a) >= 20);

    let b = h.start_node("node_b");
    let joined = Instant::now();
    for tenant in &tenants {
        h.order(b, "attach", &[tenant.as_str()]);
    }
    for &i in &conversations {
        drivers.push((b, h.drive(b, i)));
    }
    let owners = h.until_settled(2);
    let split_after = joined.elapsed();
    let moved: Vec<&TenantId> = tenants
        .iter()
        .filter(|t| owners[&shard_of(t)] == "node_b")
        .collect();
    assert!(!moved.is_empty(), "the join moved a driven tenant");
    let (going_a, going_b) = (h.acks_of(a), h.acks_of(b));
    h.until("both nodes' drivers going on after the split", |h| {
        h.acks_of(a) >= going_a + 20 && h.acks_of(b) >= going_b + 20
    });
    // A moved tenant's AI agent answers on its new owner.
    let moved_conversation = conversations
        .iter()
        .copied()
        .find(|&i| moved.contains(&&h.opened[i].0))
        .unwrap();
    let (probe, probe_req) = h.probe(a, moved_conversation, "probe");
    h.wait(probe_req);
    h.until_answered(std::slice::from_ref(&probe));
    assert_eq!(h.names[h.reply_to(&probe).unwrap().0], "node_b");
    h.halt(&drivers);
    h.until_all_answered();
    let end = h.db.owners();
    let holders: HashSet<&String> = end.values().collect();
    assert_eq!(holders.len(), 2, "both nodes hold shards at the end");
    h.stop(a);
    h.stop(b);
    let checked = check_log(&h);
    eprintln!(
        "join: shards split {split_after:?} after node_b started ({} on node_a, {} on node_b); \
         tenants moved: {moved:?}; {} events, {} messages acknowledged, written by {:?}; \
         {} retries, {} refused AI replies",
        end.values().filter(|o| *o == "node_a").count(),
        end.values().filter(|o| *o == "node_b").count(),
        checked.events,
        checked.acked,
        checked.written_by,
        h.log.retries,
        h.log.refused.len(),
    );
}

/// The fence must admit a node that holds the lease while another transaction holds the
/// lease's row, as the node's own lease round does for a few milliseconds every third of the
/// lease (its renewal updates every lease row the node holds).
///
/// The case that matters is a stream whose shard the node's journal session has not cached
/// yet (the first append of a stream another node created, as after every takeover): the
/// journal looks the shard up first and then locks the leases by a plain list of shards, so
/// PostgreSQL's recheck of a row updated meanwhile (EvalPlanQual) keeps the row the node
/// holds. (Through a join in the locking query, the recheck could drop it, and the append was
/// refused with `NotOwner` although the database named this node the lease holder.)
#[test]
fn the_fence_admits_a_node_whose_own_lease_round_is_under_way() {
    const ATTEMPTS: usize = 20;
    let cluster = PgCluster::start();
    let url = cluster.create_database("fence_wait");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = || async {
            let mut node = NodeOptions::default();
            node.lease = LEASE;
            let mut options = PostgresOptions::default();
            options.poll_interval = Duration::from_millis(50);
            options.node = Some(node);
            PostgresStore::connect(&url, options).await.unwrap()
        };
        let registered = |agent: &AiAgentId, tenant: &TenantId| {
            vec![Event::AiAgent(AiAgentEvent::RegisteredIn {
                agent_id: agent.clone(),
                tenant: tenant.clone(),
                name: AgentName::new("Bot").unwrap(),
                specialties: Vec::new(),
            })]
        };
        let activated = |agent: &AiAgentId| {
            vec![Event::AiAgent(AiAgentEvent::Activated {
                agent_id: agent.clone(),
            })]
        };
        let tenant = TenantId::new("t-0").unwrap();
        let shard = shard_of(&tenant);
        let others: Vec<TenantId> = (1..)
            .map(|i| TenantId::new(format!("t-{i}")).unwrap())
            .filter(|t| shard_of(t) != shard)
            .take(ATTEMPTS)
            .collect();
        let bot = |i: usize| AiAgentId::new(format!("bot-{i}-of-t-0")).unwrap();
        // Streams of the tenant, written by a first node, which then goes away.
        let first = store().await;
        settle("the first node holds the shards", || {
            first.shards().len() == 256
        })
        .await
        .unwrap();
        for i in 0..ATTEMPTS {
            first
                .append(
                    &StreamId::AiAgent(bot(i)),
                    ExpectedVersion::NoStream,
                    registered(&bot(i), &tenant),
                )
                .await
                .unwrap()
                .unwrap();
        }
        drop(first);
        // A second node takes every shard over. It has never written those streams; it
        // writes one of its own in each of other tenants.
        let second = store().await;
        settle("the second node holds the shards", || {
            second.shards().len() == 256
        })
        .await
        .unwrap();
        let other_bot = |t: &TenantId| AiAgentId::new(format!("bot-of-{t}")).unwrap();
        for other in &others {
            second
                .append(
                    &StreamId::AiAgent(other_bot(other)),
                    ExpectedVersion::NoStream,
                    registered(&other_bot(other), other),
                )
                .await
                .unwrap()
                .unwrap();
        }

        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let (watcher, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        let mut refused = Vec::new();
        for (i, other) in others.iter().enumerate() {
            // Another transaction updates the tenant's lease row, as a renewal does, while
            // the second node appends to one of the tenant's streams and, in the same
            // group, to a stream of another tenant.
            client.batch_execute("BEGIN").await.unwrap();
            client
                .execute(
                    "UPDATE handover_leases SET expires_at = expires_at WHERE shard = $1",
                    &[&i32::from(shard)],
                )
                .await
                .unwrap();
            let (unknown, known) = (
                StreamId::AiAgent(bot(i)),
                StreamId::AiAgent(other_bot(other)),
            );
            let appends = futures::future::join(
                second.append(&unknown, ExpectedVersion::Exact(1), activated(&bot(i))),
                second.append(
                    &known,
                    ExpectedVersion::Exact(1),
                    activated(&other_bot(other)),
                ),
            );
            let release = async {
                let started = Instant::now();
                loop {
                    let waiting: i64 = watcher
                        .query_one(
                            "SELECT count(*) FROM pg_stat_activity
                             WHERE wait_event_type = 'Lock'
                               AND query LIKE '%FROM handover_leases%FOR SHARE%'",
                            &[],
                        )
                        .await
                        .unwrap()
                        .get(0);
                    if waiting > 0 {
                        break;
                    }
                    assert!(
                        started.elapsed() < BOUND,
                        "the append never waited for the lease"
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                client.batch_execute("COMMIT").await.unwrap();
            };
            let ((appended, _), ()) = futures::future::join(appends, release).await;
            let row = watcher
                .query_one(
                    "SELECT owner, epoch FROM handover_leases WHERE shard = $1",
                    &[&i32::from(shard)],
                )
                .await
                .unwrap();
            let held: (Option<uuid::Uuid>, i64) = (row.get(0), row.get(1));
            assert_eq!(
                held,
                (second.node_id(), second.shards()[&shard]),
                "the second node holds the lease, under the epoch it believes"
            );
            if !matches!(appended, Ok(Ok(_))) {
                refused.push((i, appended));
            }
        }
        assert!(
            refused.is_empty(),
            "appends of the lease holder refused, in {} of {ATTEMPTS} attempts: {refused:?}",
            refused.len()
        );
    });
}

/// A node paused in the middle of its lease round (between two statements of the round's
/// transaction) does not keep the others from taking its shards over.
///
/// The round's transaction holds the row of every lease the node renews, and its heartbeat
/// row, until it commits; the others' claims pass over locked rows (`SKIP LOCKED`). The lease
/// task's session ends an idle transaction after a lease (`idle_in_transaction_session_timeout`),
/// so the server releases them, and the others' rounds never wait long on them (`lock_timeout`,
/// stale heartbeats deleted `SKIP LOCKED`). A SIGSTOP cannot be aimed inside a round (a few
/// milliseconds every third of the lease), so the test makes the round wait: it locks one of
/// the node's lease rows, waits until the node's renewal is blocked on it, pauses the node
/// there, and lets the renewal through: the node's session is then idle inside its round,
/// holding its locks, its process stopped.
#[test]
fn a_node_paused_inside_its_lease_round_does_not_keep_its_shards() {
    let cluster = PgCluster::start();
    let mut h = Harness::new(&cluster, "paused_round");
    let a = h.start_node("node_a");
    h.until_settled(1);
    let _b = h.start_node("node_b");
    let owners = h.until_settled(2);
    let shard = *owners
        .iter()
        .find(|(_, owner)| *owner == "node_a")
        .unwrap()
        .0;
    let node_a: uuid::Uuid = h.db.runtime.block_on(async {
        h.db.client
            .query_one(
                "SELECT owner FROM handover_leases WHERE shard = $1",
                &[&i32::from(shard)],
            )
            .await
            .unwrap()
            .get(0)
    });
    // Hold one of node_a's lease rows until its renewal waits for it, then pause node_a.
    let paused = loop {
        let caught = h.db.runtime.block_on(async {
            h.db.client.batch_execute("BEGIN").await.unwrap();
            h.db.client
                .execute(
                    "SELECT 1 FROM handover_leases WHERE shard = $1 FOR UPDATE",
                    &[&i32::from(shard)],
                )
                .await
                .unwrap();
            let started = Instant::now();
            while started.elapsed() < 2 * LEASE {
                // Inside a transaction, the activity view is read once unless told otherwise.
                h.db.client
                    .batch_execute("SELECT pg_stat_clear_snapshot()")
                    .await
                    .unwrap();
                let waiting: i64 =
                    h.db.client
                        .query_one(
                            "SELECT count(*) FROM pg_stat_activity
                         WHERE wait_event_type = 'Lock'
                           AND query LIKE 'UPDATE handover_leases SET expires_at%'",
                            &[],
                        )
                        .await
                        .unwrap()
                        .get(0);
                if waiting > 0 {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            false
        });
        if caught {
            h.signal(a, "STOP");
            h.db.runtime
                .block_on(h.db.client.batch_execute("ROLLBACK"))
                .unwrap();
            break Instant::now();
        }
        h.db.runtime
            .block_on(h.db.client.batch_execute("ROLLBACK"))
            .unwrap();
    };
    // The lease runs out; node_b should hold the shard within a few rounds.
    let (mut taken, mut held_by_b) = (false, 0);
    while paused.elapsed() < 5 * LEASE {
        std::thread::sleep(Duration::from_millis(200));
        let (owner, b_live): (Option<uuid::Uuid>, i64) = h.db.runtime.block_on(async {
            let owner =
                h.db.client
                    .query_one(
                        "SELECT owner FROM handover_leases WHERE shard = $1",
                        &[&i32::from(shard)],
                    )
                    .await
                    .unwrap()
                    .get(0);
            let b_live =
                h.db.client
                    .query_one(
                        "SELECT count(*) FROM handover_leases
                     WHERE owner IS NOT NULL AND owner <> $1 AND expires_at > clock_timestamp()",
                        &[&node_a],
                    )
                    .await
                    .unwrap()
                    .get(0);
            (owner, b_live)
        });
        held_by_b = b_live;
        if owner.is_some_and(|o| o != node_a) {
            taken = true;
            break;
        }
    }
    let took = paused.elapsed();
    h.signal(a, "CONT");
    assert!(
        taken,
        "node_a's shard {shard} was not taken over {took:?} after node_a was paused inside its \
         lease round (lease {LEASE:?}); node_b then held {held_by_b} live leases",
    );
    eprintln!("a node paused inside its lease round: its shard {shard} taken over {took:?} later");
}
