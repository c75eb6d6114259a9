//! Bounds on a sync that never returns: [`SyncWatch`], which the watchdog thread reads, and
//! [`TimedSync`], a sync step run on a thread of its own and given up after a timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use handover_store::StoreError;

use super::disk_sync::SyncStep;
use crate::engine::spawn;

/// When the syncer's current sync began, for the watchdog: sled 0.34.7's flush can block
/// forever after an I/O error (a full disk, a failed `sync_file_range`), and the appends it
/// covers would wait with it. The sync runs on the syncer's own thread (a hand-off to another
/// thread for every sync cost a quarter of one conversation's throughput); a watchdog thread
/// stops the store when a sync runs past the timeout, which wakes every waiting appender with
/// the failure.
#[derive(Default)]
pub(crate) struct SyncWatch {
    /// Microseconds after `base` at which the running sync began; 0 when none runs.
    pub(crate) started: AtomicU64,
    pub(crate) base: std::sync::OnceLock<Instant>,
}

impl SyncWatch {
    pub(crate) fn now(&self) -> u64 {
        let base = self.base.get_or_init(Instant::now);
        // +1 so that a sync started at `base` is not read as "none runs".
        u64::try_from(base.elapsed().as_micros()).unwrap_or(u64::MAX - 1) + 1
    }

    pub(crate) fn begin(&self) {
        self.started.store(self.now(), Ordering::Release);
    }

    pub(crate) fn end(&self) {
        self.started.store(0, Ordering::Release);
    }

    /// How long the running sync has been running, if one is.
    pub(crate) fn running_for(&self) -> Option<Duration> {
        match self.started.load(Ordering::Acquire) {
            0 => None,
            started => Some(Duration::from_micros(self.now().saturating_sub(started))),
        }
    }
}

/// Runs another sync step on a thread of its own and gives up on it after `timeout`.
///
/// sled 0.34.7's flush can block forever after an I/O error (a full disk, a failed
/// `sync_file_range`): it waits for a log buffer that the failed write never releases. Without
/// a bound, every append behind it would wait forever too. After a timeout the step reports an
/// error, and every later sync reports it at once: the thread stays blocked inside sled, and
/// the store is stopped (see [`Poison`]).
pub(crate) struct TimedSync {
    pub(crate) requests: std_mpsc::SyncSender<()>,
    pub(crate) results: std_mpsc::Receiver<Result<(), StoreError>>,
    pub(crate) timeout: Duration,
    pub(crate) stuck: Option<StoreError>,
}

impl TimedSync {
    pub(crate) fn new(
        mut inner: Box<dyn SyncStep>,
        timeout: Duration,
    ) -> Result<TimedSync, StoreError> {
        let (requests, asked) = std_mpsc::sync_channel::<()>(1);
        let (answers, results) = std_mpsc::sync_channel(1);
        // Not joined: if sled never returns, this thread is abandoned with it.
        spawn("handover-journal-flush", move || {
            while asked.recv().is_ok() {
                if answers.send(inner.sync()).is_err() {
                    break;
                }
            }
        })?;
        Ok(TimedSync {
            requests,
            results,
            timeout,
            stuck: None,
        })
    }
}

impl SyncStep for TimedSync {
    fn sync(&mut self) -> Result<(), StoreError> {
        if let Some(stuck) = &self.stuck {
            return Err(stuck.clone());
        }
        if self.requests.send(()).is_err() {
            return Err(StoreError::Closed);
        }
        match self.results.recv_timeout(self.timeout) {
            Ok(result) => result,
            Err(_) => {
                let stuck = sync_timed_out(self.timeout);
                self.stuck = Some(stuck.clone());
                Err(stuck)
            }
        }
    }
}

pub(crate) fn sync_timed_out(timeout: Duration) -> StoreError {
    StoreError::Io(Arc::new(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "the storage engine did not finish a sync within {timeout:?}; the outcome of the \
             appends it covered is unknown"
        ),
    )))
}
