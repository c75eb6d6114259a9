//! `handover audit`: export, timeline, verify and stats over a data directory.
//!
//! Every subcommand reads an existing data directory and never creates one. Exit codes: 0 on
//! success; 1 when the command could not do its work (missing directory, directory in use by
//! another process, damaged record, unknown conversation); for `verify`, 1 means the log has a
//! fault and 2 that it could not be verified; clap's usage errors exit with 2.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use handover::ConversationId;
use handover_audit::{AuditError, ExportFormat, ExportOptions, VerifyReport};

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

/// The data directory to read.
#[derive(Debug, clap::Args)]
pub(crate) struct DataArgs {
    /// The data directory of a Handover (it must exist, and no process may hold it).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
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
            let store = open(&args.data.data)?;
            let timeline = handover_audit::timeline(&store, args.conversation)?;
            print_or_ignore_closed_pipe(&timeline.to_string())
        }
        AuditCommand::Verify(args) => Ok(verify(&args)),
        AuditCommand::Stats(args) => {
            let store = open(&args.data.data)?;
            let stats = handover_audit::stats(&store)?;
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
            let store = open(&args.data.data)?;
            let mut listing = handover_audit::conversations(&store)?;
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

/// The one place this command names the sled store: the audit reads through it.
fn open(dir: &Path) -> anyhow::Result<handover::SledStore> {
    // The audit's errors already name the directory and say what to do.
    Ok(handover_audit::open_data_dir(dir)?)
}

fn export(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let store = open(&args.data.data)?;
    let options = ExportOptions {
        format: match args.format {
            Format::Jsonl => ExportFormat::JsonLines,
            Format::Cloudevents => ExportFormat::CloudEvents,
        },
        conversation: args.conversation,
    };
    let mut out = BufWriter::new(io::stdout().lock());
    let written = handover_audit::export(&store, &options, &mut out)
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

fn verify(args: &DataArgs) -> ExitCode {
    match handover_audit::verify_dir(&args.data) {
        // The exit code is the verdict; a reader that left before the line is not an error,
        // and a failed write leaves the code to tell.
        Ok(VerifyReport::Sound { events, streams }) => {
            let _ = print_or_ignore_closed_pipe(&format!(
                "sound: {events} events in {streams} streams; checksums, order, index and rules all check out\n"
            ));
            ExitCode::SUCCESS
        }
        Ok(VerifyReport::Faulty(fault)) => {
            let _ = print_or_ignore_closed_pipe(&format!("unsound: {fault}\n"));
            ExitCode::from(VERIFY_FAULT)
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(VERIFY_ERROR)
        }
    }
}
