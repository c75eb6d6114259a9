//! `handover audit`: export, timeline, verify, stats, what-if and report over a data directory
//! or a database.
//!
//! Every subcommand reads an existing data directory and never creates one, or reads a
//! PostgreSQL database's log in one consistent snapshot (other nodes may go on writing) and
//! audits it in memory with the same code. `export --follow` goes on after the log's end and
//! prints each event as it commits, which only a database allows. Exit codes: 0 on success
//! (for a follower, also when a signal stopped it or its reader went away); 1 when the command
//! could not do its work (missing directory, directory in use by another process, database out
//! of reach, damaged record, unknown conversation); for `verify`, 1 means the log has a fault
//! and 2 that it could not be verified; usage errors exit with 2.
//!
//! The passes over the whole log (`verify`, `export --out`, `what-if`, `report`) draw a progress
//! bar on stderr when it is a terminal, unless `--quiet`.

use std::collections::HashMap;
use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use handover::{ConversationId, EventStore as _, RecordedEvent, SledStore, StoreError, StreamId};
use handover_audit::{
    AuditError, AuditLog, ExportFormat, ExportLines, ExportOptions, Progress, RecordLog,
    VerifyReport,
};
use handover_postgres::{PostgresOptions, PostgresStore};
use tokio::sync::broadcast::error::RecvError;

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
    Verify(VerifyArgs),
    /// Sum the log up: handoffs, reclaims, escalations, AI containment, time per state.
    Stats(StatsArgs),
    /// List the conversations: id, customer, channel, status, events, opened, last activity.
    Conversations(ConversationsArgs),
    /// Replay the log under another escalation policy: where its rules would have escalated,
    /// refused a handoff or gated a skill differently, by rule, with example conversations.
    WhatIf(WhatIfArgs),
    /// Write a self-contained HTML report with charts: handoffs, escalations by cause and by
    /// rule, AI containment, waits for a human, SLA warnings and breaches, AI reply times, per
    /// AI agent and per team, over time.
    Report(ReportArgs),
}

/// `--quiet`, for the subcommands that draw a progress bar.
#[derive(Debug, clap::Args)]
pub(crate) struct QuietArg {
    /// Draw no progress bar (there is none anyway when stderr is not a terminal).
    #[arg(long)]
    quiet: bool,
}

/// Options of `handover audit verify`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    quiet: QuietArg,
}

/// Options of `handover audit report`.
#[derive(Debug, clap::Args)]
pub(crate) struct ReportArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The HTML file to write (replaced if it exists).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    quiet: QuietArg,
}

/// Options of `handover audit what-if`.
#[derive(Debug, clap::Args)]
pub(crate) struct WhatIfArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The other policy (TOML, as `handover policy check` reads it).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    quiet: QuietArg,
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
    /// After the log's end, go on printing each event as it commits, like `tail -f`, until
    /// Ctrl-C, SIGTERM or a closed pipe; with --conversation, its events, also before it opens.
    /// Only with --database-url: a data directory cannot be opened while the process that
    /// writes it holds it.
    #[arg(long)]
    follow: bool,
    /// With --follow, start at this global position (1 is the log's first event), e.g. one past
    /// the last position a consumer already has.
    #[arg(long, value_name = "POSITION", requires = "follow",
          value_parser = clap::value_parser!(u64).range(1..))]
    from: Option<u64>,
    /// Write the lines to this file (replaced if it exists) instead of stdout, with a progress
    /// bar on a terminal.
    #[arg(long, value_name = "FILE", conflicts_with = "follow")]
    out: Option<PathBuf>,
    #[command(flatten)]
    quiet: QuietArg,
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
        AuditCommand::Report(args) => report(&args),
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
        AuditCommand::WhatIf(args) => {
            let rules = crate::policy::read_rules(&args.policy)?;
            let opened = open(&args.data)?;
            let bar = terminal::log_progress(args.quiet.quiet, "replayed");
            let report = handover_audit::what_if_of_with_progress(opened.log(), &rules, &bar);
            bar.finish();
            let report = report?;
            let text = if args.json {
                let mut json = serde_json::to_string_pretty(&report)?;
                json.push('\n');
                json
            } else {
                report.to_string()
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

impl Format {
    fn export_format(self) -> ExportFormat {
        match self {
            Format::Jsonl => ExportFormat::JsonLines,
            Format::Cloudevents => ExportFormat::CloudEvents,
        }
    }
}

fn export(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    if args.follow {
        return follow(args);
    }
    let opened = open(&args.data)?;
    let options = ExportOptions {
        format: args.format.export_format(),
        conversation: args.conversation,
    };
    if let Some(path) = &args.out {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let mut out = BufWriter::new(file);
        let bar = terminal::log_progress(args.quiet.quiet, "exported");
        let written =
            handover_audit::export_of_with_progress(opened.log(), &options, &mut out, &bar);
        bar.finish();
        written?;
        out.into_inner()
            .map_err(|error| error.into_error())
            .and_then(|file| file.sync_all())
            .with_context(|| format!("cannot write {}", path.display()))?;
        return Ok(ExitCode::SUCCESS);
    }
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

/// Exit code of a usage error, as clap's.
const USAGE: u8 = 2;

/// Most records one read of the log fetches while a follower catches up.
const FOLLOW_PAGE: usize = 1024;

/// `export --follow`: the log from `--from`, then each event as it commits, until a signal or
/// a closed pipe (found closed by the next write: an idle follower waits for an event first).
fn follow(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let Some(url) = &args.data.database_url else {
        eprintln!(
            "error: --follow reads a database (--database-url URL or DATABASE_URL): a data \
             directory cannot be opened while the process that writes it holds it, so there is \
             no log to follow; export it without --follow once no process holds it"
        );
        return Ok(ExitCode::from(USAGE));
    };
    let mut follower = Follower {
        lines: ExportLines::new(args.format.export_format()),
        seqs: HashMap::new(),
        next: 1,
        from: args.from.unwrap_or(1),
        only: args.conversation.map(StreamId::Conversation),
        out: BufWriter::new(io::stdout().lock()),
    };
    let runtime = terminal::async_runtime()?;
    let followed = runtime.block_on(async {
        // Installed before connecting, so that an early signal stops the command cleanly too.
        let stopped = stop_signal()?;
        tokio::select! {
            followed = async {
                let store = database::connect(url, PostgresOptions::default()).await?;
                follower.run(&store, url).await
            } => followed,
            () = stopped => Ok(()),
        }
    });
    // Every line written before the stop reaches the reader.
    let followed = followed.and_then(|()| {
        follower
            .out
            .flush()
            .map_err(|error| AuditError::Write(error).into())
    });
    match followed {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) if is_closed_pipe(&error) => Ok(ExitCode::SUCCESS),
        Err(error) => Err(error),
    }
}

/// Whether `error` is a write to a reader that went away (`| head`): it has what it wanted.
fn is_closed_pipe(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<AuditError>(),
        Some(AuditError::Write(error)) if error.kind() == io::ErrorKind::BrokenPipe
    )
}

/// A future that completes on the first SIGINT (Ctrl-C) or SIGTERM: a follower has no end of
/// its own, and either signal is how it is told to stop.
fn stop_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let interrupt = terminal::interrupt()?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            () = interrupt => {}
            // `None` only as the runtime shuts down; Ctrl-C still stops it meanwhile.
            Some(()) = terminate.recv() => {}
        }
    })
}

/// The state of `export --follow`: where it is in the log, and what later lines need from
/// the records before them.
struct Follower<W> {
    /// Each stream's tenant, learnt from every record read, printed or not.
    lines: ExportLines,
    /// Each stream's last seq: a stream's records must follow each other, as on any read.
    seqs: HashMap<StreamId, u64>,
    /// The position of the next record to take.
    next: u64,
    /// The first position to print.
    from: u64,
    /// Only this stream's records are printed (`--conversation`).
    only: Option<StreamId>,
    out: W,
}

impl<W: Write> Follower<W> {
    /// Prints the log from `from` to its end, then every event as it commits, each once and in
    /// position order. The live feed is subscribed to before the log is read, so that an event
    /// that commits during the read is in one or the other; one in both is taken once, by its
    /// position, and a gap in the feed (a lag, or commits before the subscription) is read
    /// from the log.
    async fn run(&mut self, store: &PostgresStore, url: &str) -> anyhow::Result<()> {
        let mut live = store.subscribe();
        loop {
            self.catch_up(store, url).await?;
            loop {
                match live.recv().await {
                    Ok(record) if record.position < self.next => {}
                    Ok(record) if record.position == self.next => {
                        self.take(&record)?;
                        if live.is_empty() {
                            self.flush()?;
                        }
                    }
                    // Records before it are not in the feed: read them from the log.
                    Ok(_) | Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => {
                        anyhow::bail!("the live feed of the {} ended", database::name(url))
                    }
                }
            }
        }
    }

    /// Reads and takes every record from `next` to the log's end, flushing after each read.
    async fn catch_up(&mut self, store: &PostgresStore, url: &str) -> anyhow::Result<()> {
        let failed = || format!("cannot read the log in the {}", database::name(url));
        loop {
            let page = match store.read_all(self.next, FOLLOW_PAGE).await {
                Ok(page) => page,
                // A damaged record fails its whole page. As a plain export does, print every
                // line before it: read that page again one record at a time, and the damaged
                // record's read fails again and says where.
                Err(_) => {
                    for _ in 0..FOLLOW_PAGE {
                        let one = store.read_all(self.next, 1).await.with_context(failed)?;
                        let Some(record) = one.first() else {
                            return Ok(());
                        };
                        self.take(record)?;
                        self.flush()?;
                    }
                    continue;
                }
            };
            for record in &page {
                self.take(record)?;
            }
            self.flush()?;
            if page.len() < FOLLOW_PAGE {
                return Ok(());
            }
        }
    }

    /// Takes the record at `next`: checks it follows its stream's last one, then prints it, or
    /// only learns from it when it comes before `from` or belongs to another conversation.
    fn take(&mut self, record: &RecordedEvent) -> anyhow::Result<()> {
        if record.position != self.next {
            anyhow::bail!(
                "the log is damaged at position {}: the read skips to position {}",
                self.next,
                record.position
            );
        }
        match self.seqs.get_mut(&record.stream) {
            Some(last) if record.seq == *last + 1 => *last = record.seq,
            None if record.seq == 1 => {
                self.seqs.insert(record.stream.clone(), 1);
            }
            last => anyhow::bail!(
                "the log is damaged at position {}: stream {} jumps from seq {} to {}",
                record.position,
                record.stream,
                last.map_or(0, |last| *last),
                record.seq
            ),
        }
        self.next += 1;
        let printed = record.position >= self.from
            && self.only.as_ref().is_none_or(|only| *only == record.stream);
        if printed {
            self.lines.write(record, &mut self.out)?;
        } else {
            self.lines.skip(record);
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.out
            .flush()
            .map_err(|error| AuditError::Write(error).into())
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
fn verify_log(args: &DataArgs, progress: &dyn Progress) -> anyhow::Result<VerifyReport> {
    match (&args.data, &args.database_url) {
        (Some(dir), _) => Ok(handover_audit::verify_dir_with_progress(dir, progress)?),
        (None, Some(url)) => match read_database(url)? {
            Ok(records) => Ok(handover_audit::verify_of_with_progress(
                AuditLog::Records(&RecordLog::new(records)),
                progress,
            )?),
            Err(error) => VerifyReport::from_read_error(error)
                .with_context(|| format!("cannot read the log in the {}", database::name(url))),
        },
        (None, None) => anyhow::bail!("give --data DIR or --database-url URL"),
    }
}

fn verify(args: &VerifyArgs) -> ExitCode {
    let bar = terminal::log_progress(args.quiet.quiet, "checked");
    let verified = verify_log(&args.data, &bar);
    bar.finish();
    let args = &args.data;
    match verified {
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

/// `report`: the HTML report, written to a file beside its destination and renamed onto it,
/// so that a failed run leaves no half-written page where a reader expects a whole one.
fn report(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let opened = open(&args.data)?;
    let bar = terminal::log_progress(args.quiet.quiet, "replayed");
    let report = handover_audit::report_of_with_progress(opened.log(), &bar);
    bar.finish();
    let html = report?.to_html();
    let mut partial = args.out.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    std::fs::write(&partial, html.as_bytes())
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, &args.out)
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    Ok(ExitCode::SUCCESS)
}
