//! `handover audit`: export, timeline, verify and stats over a data directory or a database.
//!
//! Every subcommand reads an existing data directory and never creates one, or reads a
//! PostgreSQL database's log in one consistent snapshot (other nodes may go on writing) and
//! audits it in memory with the same code. Exit codes: 0 on success; 1 when the command could
//! not do its work (missing directory, directory in use by another process, database out of
//! reach, damaged record, unknown conversation); for `verify`, 1 means the log has a fault and
//! 2 that it could not be verified; clap's usage errors exit with 2.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use handover::{ConversationId, RecordedEvent, SledStore, StoreError};
use handover_audit::{AuditError, AuditLog, ExportFormat, ExportOptions, RecordLog, VerifyReport};
use handover_postgres::PostgresOptions;

use crate::{database, terminal};

/// The audit subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum AuditCommand {
    /// Print every event as one JSON object per line, in global order.
    Export(ExportArgs),
    /// Tell one conversation's story: who handled it, when, and why.
    Timeline(TimelineArgs),
    /// Check checksums, order, the global index and every rule; name the first fault.
    ///
    /// Exits 0 when the log is sound, 1 when it has a fault, 2 when it could not be checked.
    Verify(DataArgs),
    /// Sum the log up: handoffs, reclaims, escalations, AI containment, time per state.
    Stats(StatsArgs),
    /// List the conversations: id, customer, channel, status, events, opened, last activity.
    Conversations(ConversationsArgs),
}

/// The log to read: a data directory or a database, exactly one.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub(crate) struct DataArgs {
    /// The data directory of a Handover (it must exist, and no process may hold it).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// The PostgreSQL database of a Handover, e.g. `postgres://user:password@host/db`: its log
    /// is read in one consistent snapshot while other nodes go on writing.
    #[arg(long, value_name = "URL", env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

/// An opened log: a sled store read in place, or a database's records read into memory.
enum Opened {
    Sled(SledStore),
    Records(RecordLog),
}

impl Opened {
    fn log(&self) -> AuditLog<'_> {
        match self {
            Opened::Sled(store) => AuditLog::Sled(store),
            Opened::Records(records) => AuditLog::Records(records),
        }
    }
}

/// The shape of each exported line.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Format {
    /// JSON Lines: position, stream, conversation_id, seq, recorded_at, type, data.
    Jsonl,
    /// CloudEvents 1.0, structured mode.
    Cloudevents,
}

/// Options of `handover audit export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The shape of each line.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,
    /// Only this conversation's events (its UUID).
    #[arg(long, value_name = "ID", value_parser = parse_conversation_id)]
    conversation: Option<ConversationId>,
}

/// Options of `handover audit timeline`.
#[derive(Debug, clap::Args)]
pub(crate) struct TimelineArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The conversation (its UUID).
    #[arg(long, value_name = "ID", value_parser = parse_conversation_id)]
    conversation: ConversationId,
}

/// Options of `handover audit stats`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatsArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// A conversation status to list, as `--status` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum StatusArg {
    /// A human handles it (just opened, or escalated back by an AI agent).
    HumanHandled,
    /// An AI agent handles it.
    AiActive,
    /// A human took it back from an AI agent.
    Reclaimed,
    /// Closed.
    Closed,
    /// Any status but closed.
    Open,
    /// It waits for a human in a queue.
    AwaitingHuman,
}

impl StatusArg {
    fn matches(self, label: &str) -> bool {
        match self {
            StatusArg::HumanHandled => label == "human-handled",
            StatusArg::AiActive => label == "ai-active",
            StatusArg::Reclaimed => label == "reclaimed",
            StatusArg::Closed => label == "closed",
            StatusArg::Open => label != "closed",
            StatusArg::AwaitingHuman => label == "awaiting-human",
        }
    }
}

/// Options of `handover audit conversations`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConversationsArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Only the conversations with this status.
    #[arg(long, value_enum, value_name = "S")]
    status: Option<StatusArg>,
    /// Print one JSON object per conversation and line (JSON Lines) instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_conversation_id(value: &str) -> Result<ConversationId, String> {
    value.parse().map_err(|error| format!("{error}"))
}

pub(crate) fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Export(args) => export(&args),
        AuditCommand::Timeline(args) => {
            let opened = open(&args.data)?;
            let timeline = handover_audit::timeline_of(opened.log(), args.conversation)?;
            print_or_ignore_closed_pipe(&timeline.to_string())
        }
        AuditCommand::Verify(args) => Ok(verify(&args)),
        AuditCommand::Stats(args) => {
            let opened = open(&args.data)?;
            let stats = handover_audit::stats_of(opened.log())?;
            let text = if args.json {
                let mut json = serde_json::to_string_pretty(&stats)?;
                json.push('\n');
                json
            } else {
                stats.to_string()
            };
            print_or_ignore_closed_pipe(&text)
        }
        AuditCommand::Conversations(args) => {
            let opened = open(&args.data)?;
            let mut listing = handover_audit::conversations_of(opened.log())?;
            if let Some(status) = args.status {
                listing.retain(|conversation| status.matches(conversation.status));
            }
            let text = if args.json {
                let mut lines = String::new();
                for conversation in &listing {
                    lines.push_str(&serde_json::to_string(conversation)?);
                    lines.push('\n');
                }
                lines
            } else {
                handover_audit::ConversationTable(&listing).to_string()
            };
            print_or_ignore_closed_pipe(&text)
        }
    }
}

/// Opens the log the arguments name: a data directory in place, or a database's snapshot.
fn open(args: &DataArgs) -> anyhow::Result<Opened> {
    match (&args.data, &args.database_url) {
        (Some(dir), _) => open_dir(dir).map(Opened::Sled),
        (None, Some(url)) => {
            let records = read_database(url)?
                .with_context(|| format!("cannot read the log in the {}", database::name(url)))?;
            Ok(Opened::Records(RecordLog::new(records)))
        }
        // clap requires one of the two.
        (None, None) => anyhow::bail!("give --data DIR or --database-url URL"),
    }
}

/// The one place this command names the sled store: the audit reads through it.
fn open_dir(dir: &Path) -> anyhow::Result<SledStore> {
    // The audit's errors already name the directory and say what to do.
    Ok(handover_audit::open_data_dir(dir)?)
}

/// Every record of the database's log, read in one snapshot. The outer error is a failure to
/// reach the database; the inner one the snapshot's, damage included, which `verify` reports
/// as a fault.
fn read_database(url: &str) -> anyhow::Result<Result<Vec<RecordedEvent>, StoreError>> {
    let runtime = terminal::async_runtime()?;
    runtime.block_on(async {
        let store = database::connect(url, PostgresOptions::default()).await?;
        Ok(store.snapshot().await)
    })
}

fn export(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let opened = open(&args.data)?;
    let options = ExportOptions {
        format: match args.format {
            Format::Jsonl => ExportFormat::JsonLines,
            Format::Cloudevents => ExportFormat::CloudEvents,
        },
        conversation: args.conversation,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let written = handover_audit::export_of(opened.log(), &options, &mut out)
        .and_then(|_| out.flush().map_err(AuditError::Write));
    match written {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // The reader went away (`| head`): it has what it wanted.
        Err(AuditError::Write(error)) if error.kind() == io::ErrorKind::BrokenPipe => {
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => Err(error.into()),
    }
}

/// Writes `text` to stdout; a closed pipe is not an error.
fn print_or_ignore_closed_pipe(text: &str) -> anyhow::Result<ExitCode> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(error) => Err(error).context("cannot write to stdout"),
    }
}

/// Exit code of `verify` when the log has a fault.
const VERIFY_FAULT: u8 = 1;
/// Exit code of `verify` when the log could not be checked.
const VERIFY_ERROR: u8 = 2;

/// Verifies the log the arguments name. Damage a database's snapshot finds is a fault of the
/// log, as damage sled finds is.
fn verify_log(args: &DataArgs) -> anyhow::Result<VerifyReport> {
    match (&args.data, &args.database_url) {
        (Some(dir), _) => Ok(handover_audit::verify_dir(dir)?),
        (None, Some(url)) => match read_database(url)? {
            Ok(records) => Ok(handover_audit::verify_of(AuditLog::Records(
                &RecordLog::new(records),
            ))?),
            Err(error) => VerifyReport::from_read_error(error)
                .with_context(|| format!("cannot read the log in the {}", database::name(url))),
        },
        (None, None) => anyhow::bail!("give --data DIR or --database-url URL"),
    }
}

fn verify(args: &DataArgs) -> ExitCode {
    match verify_log(args) {
        // The exit code is the verdict; a reader that left before the line is not an error,
        // and a failed write leaves the code to tell.
        Ok(VerifyReport::Sound { events, streams }) => {
            // A database has no global index or anchor: its order is the table's positions.
            let checked = if args.data.is_some() {
                "checksums, order, index and rules"
            } else {
                "checksums, hash chains, order and rules"
            };
            let _ = print_or_ignore_closed_pipe(&format!(
                "sound: {events} events in {streams} streams; {checked} all check out\n"
            ));
            ExitCode::SUCCESS
        }
        Ok(VerifyReport::Faulty(fault)) => {
            let _ = print_or_ignore_closed_pipe(&format!("unsound: {fault}\n"));
            ExitCode::from(VERIFY_FAULT)
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(VERIFY_ERROR)
        }
    }
}
