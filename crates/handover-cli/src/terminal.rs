//! What the long-running commands (`simulate`, `bench`, the audit's passes over a whole log)
//! share: the data directory they may write to, logging, the async runtime, the progress bar
//! and Ctrl-C.

use std::future::Future;
use std::io::IsTerminal as _;
use std::path::Path;

use anyhow::{bail, Context as _};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether a command may add to a log a data directory already holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Existing {
    /// The command always wants a fresh directory (`bench`).
    Refuse,
    /// The command appends only when asked (`simulate --append`).
    AppendIf(bool),
}

/// Checks that `dir` may hold a new log: it is missing (it will be created) or an empty
/// directory; with `Existing::AppendIf(true)`, a directory that holds a log is accepted too.
/// Returns whether the directory already held something, that is whether the run appends.
pub(crate) fn check_data_dir(dir: &Path, existing: Existing) -> anyhow::Result<bool> {
    let metadata = match std::fs::metadata(dir) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(error) => return Err(error).with_context(|| format!("cannot read {}", dir.display())),
    };
    if !metadata.is_dir() {
        bail!("{} is a file, not a directory", dir.display());
    }
    let mut entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list the data directory {}", dir.display()))?;
    let empty = entries.next().is_none();
    match existing {
        _ if empty => {}
        Existing::AppendIf(true) => {}
        Existing::AppendIf(false) => bail!(
            "data directory {} is not empty; pass --append to add to the log it holds, or give \
             an empty or new directory",
            dir.display()
        ),
        Existing::Refuse => bail!(
            "data directory {} is not empty; give an empty or new directory",
            dir.display()
        ),
    }
    Ok(!empty)
}

/// Sends logs to stderr, so that `--json` output stays one object on stdout. A RUST_LOG that is
/// not UTF-8 or does not parse is an error, not a silently different log level.
pub(crate) fn init_logging() -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Err(std::env::VarError::NotPresent) => tracing_subscriber::EnvFilter::new("warn"),
        Err(std::env::VarError::NotUnicode(value)) => {
            bail!("RUST_LOG is not valid UTF-8: {value:?}")
        }
        Ok(directives) => tracing_subscriber::EnvFilter::try_new(&directives)
            .with_context(|| format!("RUST_LOG {directives:?} is not a valid log filter"))?,
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .try_init();
    Ok(())
}

/// The async runtime the command's own code runs on (the Handover runtime has threads of its
/// own).
pub(crate) fn async_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A future that completes on the first SIGINT (Ctrl-C). The handler is installed here, before
/// any work starts, so an early Ctrl-C is not lost and never kills the process halfway through
/// a write; must be called inside the runtime.
pub(crate) fn interrupt() -> anyhow::Result<impl Future<Output = ()>> {
    let mut signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot listen for Ctrl-C")?;
    Ok(async move {
        // `None` means the signal driver is gone, which only happens as the runtime shuts
        // down: there is nothing to stop any more.
        if signal.recv().await.is_none() {
            std::future::pending::<()>().await;
        }
    })
}

/// A progress bar of `total` `unit` on stderr, hidden with `quiet` or when stderr is not a
/// terminal (a pipe or a file gets no control characters).
pub(crate) fn progress_bar(quiet: bool, total: usize, unit: &str) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(
        Some(u64::try_from(total).unwrap_or(u64::MAX)),
        ProgressDrawTarget::stderr(),
    );
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit}, {{msg}} ({{elapsed}}, eta {{eta}})");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// A progress bar of the log's positions for the audit's passes over a whole log: hidden as
/// [`progress_bar`]'s is, its total set when the pass starts.
pub(crate) struct LogProgress(ProgressBar);

/// The progress bar of a pass over the log (see [`LogProgress`]); `doing` says what the pass
/// does with the events, e.g. `checked`.
pub(crate) fn log_progress(quiet: bool, doing: &'static str) -> LogProgress {
    let bar = progress_bar(quiet, 0, "events");
    bar.set_message(doing);
    LogProgress(bar)
}

impl LogProgress {
    /// Takes the bar off the terminal, so that what the command prints next starts on a clean
    /// line.
    pub(crate) fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl handover_audit::Progress for LogProgress {
    fn start(&self, total: u64) {
        self.0.set_length(total);
        self.0.set_position(0);
    }

    fn advance(&self, positions: u64) {
        self.0.inc(positions);
    }
}
