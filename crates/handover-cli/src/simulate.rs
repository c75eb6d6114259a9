//! `handover simulate`: the command line of [`handover_sim`]'s contact-center simulation.
//!
//! This layer parses the options, refuses a data directory or a database that already holds a
//! log unless `--append` says to add to it, shows progress on a terminal, stops cleanly on
//! Ctrl-C, and prints the summary; the scripts, the driver and the report are `handover-sim`'s.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use handover::{Durability, EventStore, Rules};
use handover_postgres::PostgresOptions;
use handover_sim::{
    LogPlace, NodeRole, NodesOptions, Options, AI_AGENTS_MAX, CONCURRENT_CONVERSATIONS_MAX,
    CONVERSATIONS_MAX, HUMANS_MAX, NODES_MAX, SHIFT_MINUTES_MAX,
};
use handover_webhooks::{WebhookBuilder, WebhookSink, WebhookStats};

use crate::{database, terminal};

/// Exit code after Ctrl-C, as shells report a process ended by SIGINT (128 + 2).
pub(crate) const INTERRUPTED: u8 = 130;

/// A count in `1..=MAX`, for clap.
pub(crate) fn count_up_to<const MAX: usize>(text: &str) -> Result<usize, String> {
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
pub(crate) enum DurabilityArg {
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

/// Where `handover simulate` writes its log: a data directory or a database, exactly one.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub(crate) struct SimulateLogArgs {
    /// Data directory of the event log (created if missing). It must be empty unless
    /// `--append` is given; a fresh one gives reproducible counts.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// PostgreSQL database of the event log, e.g. `postgres://user:password@host/db`. Its log
    /// must be empty unless `--append` is given; a fresh one gives reproducible counts.
    #[arg(long, value_name = "URL", env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// Options of `handover simulate`.
#[derive(Debug, clap::Args)]
pub(crate) struct SimulateArgs {
    #[command(flatten)]
    log: SimulateLogArgs,
    /// Add to the log a data directory or database already holds instead of refusing it (the
    /// counts are then this run's; the same seed no longer promises the same counts).
    #[arg(long)]
    append: bool,
    /// Print no progress bar (there is none anyway when stderr is not a terminal).
    #[arg(long, short)]
    quiet: bool,
    /// How many conversations to run (1 to 1,000,000).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = count_up_to::<CONVERSATIONS_MAX>)]
    conversations: usize,
    /// How many FAQ agents to register, activate and attach (specialties pricing, faq and
    /// shipping in turn, spread over the tenants; 1 to 64). Each tenant also gets a slow agent
    /// that sometimes misses its reply deadline.
    #[arg(long, value_name = "A", default_value_t = 3, value_parser = count_up_to::<AI_AGENTS_MAX>)]
    ai_agents: usize,
    /// How many human agents handle the conversations, spread over two tenants (acme, globex)
    /// and their teams (billing, support), each with a capacity of 2 to 5 (1 to 10,000). Each
    /// tenant also has a supervisor.
    #[arg(long, value_name = "H", default_value_t = 5, value_parser = count_up_to::<HUMANS_MAX>)]
    humans: usize,
    /// Seed of every random choice: the same seed gives the same counts.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// How many conversations run at the same time (1 to 4096): a customer arriving while that
    /// many are under way starts once one ends.
    #[arg(long, value_name = "C", default_value_t = 64, value_parser = count_up_to::<CONCURRENT_CONVERSATIONS_MAX>)]
    concurrency: usize,
    /// Length of the simulated shift in minutes (1 to 10,080): customers arrive during it, and
    /// the humans' breaks and sign-outs fall in it. It runs on simulated time, in seconds.
    #[arg(long, value_name = "MIN", default_value_t = 480, value_parser = count_up_to::<SHIFT_MINUTES_MAX>)]
    shift_minutes: usize,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
    /// The escalation policy file (TOML, as `handover policy check` reads it) the run applies;
    /// the default policy without it. A file with a mistake is refused, with its line and
    /// column, before anything runs. With `--nodes`, every node reads the same file.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// What an acknowledged command survives. Not with `--database-url`: there an acknowledged
    /// command is a committed transaction.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Durable, conflicts_with = "database_url")]
    durability: DurabilityArg,
    /// Write every acknowledged event of the simulation's commands to FILE, one
    /// `<conversation-id> <seq>` a line.
    ///
    /// FILE is appended to (created if missing), so several runs on one data directory can
    /// share it. It lists each event of each command the simulation itself sends (opens,
    /// customer and human messages, handoffs, reclaims, transfers, notes, flags, closes; a
    /// customer's request for a human and its escalation are several lines), not what the AI
    /// agents, the router or the clock record on their own.
    /// A command's lines are written with one `write` after the runtime acknowledged the
    /// command and before the simulation sends the next command of that conversation: once a
    /// line is in the file, its event was acknowledged, and a crash of the process (even
    /// `kill -9`) keeps every line written. There is no fsync, so a power loss may lose lines.
    /// With `--durability durable` or `process-crash`, every event listed survives a crash of
    /// the process; with `buffered`, the last ones may not. Every line ends with a newline;
    /// lines of different conversations interleave.
    ///
    /// With `--nodes`, every node appends its own lines to FILE, each command's lines in one
    /// `write` to the file opened for appending, so lines of different nodes never mix.
    #[arg(long, value_name = "FILE")]
    acks: Option<PathBuf>,
    /// Spread the contact center over N node processes on the database (1 to 8), started and
    /// stopped by this command and stepped together through simulated time; node 0 staffs the
    /// floor, each node drives every Nth conversation (`--concurrency` is shared among them),
    /// and every node attaches the AI agents. With one node the counts are those of a run on
    /// `--data` with the same seed.
    #[arg(long, value_name = "N", value_parser = count_up_to::<NODES_MAX>)]
    nodes: Option<usize>,
    /// With `--nodes` 2 or more: kill a node (`kill -9`) in the middle of a seeded step now and
    /// then, and start a new one in its place once its shards are taken over; the summary says
    /// how many takeovers happened and how long they took. Conversations a killed node had under
    /// way are closed and counted as interrupted.
    #[arg(long, requires = "nodes")]
    chaos: bool,
    /// After the run, deliver each of its events to URL (an `http://` or `https://` URL; over
    /// HTTPS the receiver's certificate must chain to one of Mozilla's roots) as one signed
    /// CloudEvent per request (docs/webhooks.md), retrying until the receiver acknowledges
    /// every one, then say how many were delivered. Ctrl-C stops the delivery (exit 130).
    #[arg(long, value_name = "URL", requires = "webhook_secret")]
    webhook: Option<String>,
    /// The webhook's signing secret, `whsec_` and base64 (Standard Webhooks).
    #[arg(
        long,
        value_name = "SECRET",
        env = "HANDOVER_WEBHOOK_SECRET",
        hide_env_values = true,
        requires = "webhook"
    )]
    webhook_secret: Option<String>,
    /// Run as node I of `--nodes` (started by the coordinator, which talks to it over stdin and
    /// stdout).
    #[arg(long, value_name = "I", hide = true, requires_all = ["nodes", "node_start_ms", "node_lease_ms"])]
    node_index: Option<usize>,
    /// The node's simulated clock at the start of the shift, in milliseconds since the epoch.
    #[arg(long, value_name = "MS", hide = true, allow_negative_numbers = true)]
    node_start_ms: Option<i64>,
    /// The lease of the node's shards, in milliseconds.
    #[arg(long, value_name = "MS", hide = true)]
    node_lease_ms: Option<u64>,
    /// Where the node's simulated clock starts, in milliseconds after the shift's start.
    #[arg(long, value_name = "MS", hide = true, default_value_t = 0)]
    node_at_ms: u64,
}

/// Runs `handover simulate`: 0 when every conversation ran, 130 when Ctrl-C stopped it (the
/// summary then covers the conversations that finished).
pub(crate) fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    terminal::init_logging()?;
    let policy = args.policy.as_deref().map(read_policy).transpose()?;
    let options = Options {
        conversations: args.conversations,
        ai_agents: args.ai_agents,
        humans: args.humans,
        seed: args.seed,
        concurrency: args.concurrency,
        durability: args.durability.into(),
        acks: args.acks.clone(),
        shift_minutes: u64::try_from(args.shift_minutes).unwrap_or(u64::MAX),
        policy,
    };
    let runtime = terminal::async_runtime()?;
    if let (Some(index), Some(nodes), Some(url)) =
        (args.node_index, args.nodes, &args.log.database_url)
    {
        let role = NodeRole::new(
            index,
            nodes,
            args.node_start_ms.unwrap_or_default(),
            args.node_lease_ms.unwrap_or_default(),
        )
        .chaos(args.chaos)
        .at(args.node_at_ms);
        runtime
            .block_on(handover_sim::run_node(url, &options, &role))
            .with_context(|| format!("node {index} failed"))?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(nodes) = args.nodes {
        if args.log.database_url.is_none() {
            anyhow::bail!("--nodes runs the nodes on a database: give --database-url URL");
        }
        NodesOptions::new(nodes).chaos(args.chaos).check()?;
    }
    let webhook = match (&args.webhook, &args.webhook_secret) {
        (Some(url), Some(secret)) => {
            let builder = WebhookSink::builder(url.clone(), secret.clone());
            builder.check()?;
            Some(builder)
        }
        _ => None,
    };
    // The webhook delivers this run's events: those after the log's last position before it.
    let (place, appended, before) = match (&args.log.data, &args.log.database_url) {
        (Some(dir), _) => {
            let existing = terminal::Existing::AppendIf(args.append);
            let appended = terminal::check_data_dir(dir, existing)?;
            let before = if appended && webhook.is_some() {
                handover_audit::open_data_dir(dir)?.head()
            } else {
                0
            };
            (LogPlace::Dir(dir.clone()), appended, before)
        }
        (None, Some(url)) => {
            let (appended, before) = runtime.block_on(check_database(url, args.append))?;
            (LogPlace::Database(url.clone()), appended, before)
        }
        // clap requires one of the two.
        (None, None) => anyhow::bail!("give --data DIR or --database-url URL"),
    };
    let mut summary = runtime.block_on(async {
        let stop = terminal::interrupt()?;
        let bar = terminal::progress_bar(args.quiet, options.conversations, "conversations");
        let progress = |progress: handover_sim::Progress| {
            bar.set_position(progress.done);
            bar.set_message(format!("{} events", progress.events));
        };
        let summary = match (&place, args.nodes) {
            (LogPlace::Database(url), Some(nodes)) => {
                let cluster = NodesOptions::new(nodes).chaos(args.chaos);
                let spawn = |role: &NodeRole| node_command(&args, url, role);
                handover_sim::simulate_nodes(url, &options, &cluster, spawn, progress, stop).await
            }
            _ => handover_sim::simulate_at(&place, &options, progress, stop).await,
        };
        bar.finish_and_clear();
        summary.context("the simulation failed")
    })?;
    summary.appended = appended;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        print!("{summary}");
    }
    if let (Some(webhook), false) = (webhook, summary.interrupted) {
        let url = args.webhook.as_deref().unwrap_or_default();
        let delivered = runtime.block_on(deliver(webhook, &place, before, args.quiet))?;
        // On stderr with --json, so that stdout stays one JSON object.
        let line = match delivered {
            Delivered::All(stats) => {
                format!("webhook: {} events delivered to {url}", stats.acknowledged)
            }
            Delivered::Interrupted(stats) => format!(
                "webhook: interrupted after {} events delivered to {url}",
                stats.acknowledged
            ),
        };
        if args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
        if let Delivered::Interrupted(_) = delivered {
            return Ok(ExitCode::from(INTERRUPTED));
        }
    }
    if summary.interrupted {
        Ok(ExitCode::from(INTERRUPTED))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// The command that runs node `role` of a run on several nodes: this program, with the run's
/// options. The database's URL goes in the environment, out of the process list.
fn node_command(args: &SimulateArgs, url: &str, role: &NodeRole) -> tokio::process::Command {
    let program = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("handover"));
    let mut command = tokio::process::Command::new(program);
    command
        .arg("simulate")
        .arg("--quiet")
        .args(["--conversations", &args.conversations.to_string()])
        .args(["--ai-agents", &args.ai_agents.to_string()])
        .args(["--humans", &args.humans.to_string()])
        .args(["--seed", &args.seed.to_string()])
        .args(["--concurrency", &args.concurrency.to_string()])
        .args(["--shift-minutes", &args.shift_minutes.to_string()])
        .args(["--nodes", &role.nodes.to_string()])
        .args(["--node-index", &role.index.to_string()])
        .arg(format!("--node-start-ms={}", role.start_ms))
        .args(["--node-lease-ms", &role.lease_ms.to_string()])
        .args(["--node-at-ms", &role.at_ms.to_string()])
        .env("DATABASE_URL", url);
    if let Some(acks) = &args.acks {
        command.arg("--acks").arg(acks);
    }
    if let Some(policy) = &args.policy {
        // The coordinator checked it; the node reads the same file (an absolute path, as the
        // node may not share the coordinator's working directory).
        let policy = std::path::absolute(policy).unwrap_or_else(|_| policy.clone());
        command.arg("--policy").arg(policy);
    }
    if role.chaos {
        command.arg("--chaos");
    }
    command
}

/// Reads and checks the policy file of `--policy`; a mistake names the file, its line and
/// column.
fn read_policy(file: &std::path::Path) -> anyhow::Result<Rules> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the policy file {}", file.display()))?;
    Rules::parse(&text)
        .map_err(|error| anyhow::anyhow!("the policy file {} is refused: {error}", file.display()))
}

/// How far `--webhook` got.
enum Delivered {
    /// Every event of the run was acknowledged.
    All(WebhookStats),
    /// Ctrl-C stopped the delivery first.
    Interrupted(WebhookStats),
}

/// Delivers every event of the run's log after position `before` through `webhook`, and
/// waits until the receiver acknowledged them all or Ctrl-C. The run is over, so the log is
/// read again from where the run wrote it.
async fn deliver(
    webhook: WebhookBuilder,
    place: &LogPlace,
    before: u64,
    quiet: bool,
) -> anyhow::Result<Delivered> {
    let store: Arc<dyn EventStore> = match place {
        LogPlace::Dir(dir) => Arc::new(handover_audit::open_data_dir(dir)?),
        LogPlace::Database(url) => {
            Arc::new(database::connect(url, PostgresOptions::default()).await?)
        }
        _ => anyhow::bail!("--webhook delivers from a data directory or a database only"),
    };
    let last = store.last_position().await?;
    let sink = webhook.start_after(before).spawn(Arc::clone(&store))?;
    let total = usize::try_from(last.saturating_sub(before)).unwrap_or(usize::MAX);
    let bar = terminal::progress_bar(quiet, total, "events delivered");
    let stop = terminal::interrupt()?;
    tokio::pin!(stop);
    let all = loop {
        bar.set_position(sink.delivered().saturating_sub(before));
        tokio::select! {
            delivered = sink.wait_until_delivered(last) => {
                delivered?;
                break true;
            }
            () = &mut stop => break false,
            () = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
        }
    };
    bar.finish_and_clear();
    let stats = sink.shutdown().await?;
    Ok(if all {
        Delivered::All(stats)
    } else {
        Delivered::Interrupted(stats)
    })
}

/// Checks that the database may take the run's log, as [`terminal::check_data_dir`] checks a
/// directory: its log is empty, or `append` says to add to it. Returns whether it appends, and
/// the log's last position.
async fn check_database(url: &str, append: bool) -> anyhow::Result<(bool, u64)> {
    // The run opens its own connection: its store needs the simulation's clock from the start.
    let store = database::connect(url, PostgresOptions::default()).await?;
    let holds_a_log = database::holds_a_log(&store, url).await?;
    if holds_a_log && !append {
        anyhow::bail!(
            "the {} already holds a log; pass --append to add to it, or give an empty database",
            database::name(url)
        );
    }
    let last = store.last_position().await?;
    Ok((holds_a_log, last))
}

#[cfg(test)]
mod tests {
    use super::*;

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
