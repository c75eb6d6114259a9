//! The group-commit journal: the only writer of a [`SledStore`](crate::SledStore)'s log.
//!
//! Appends from every conversation meet in one bounded queue. Two threads drain it:
//! - the **writer** (`writer.rs`) takes everything pending, checks each append's expected
//!   version, encodes its records, and applies the whole group as one sled batch;
//! - the **syncer** (`syncer.rs`) takes every group the writer has applied since its last sync,
//!   makes them durable with one sync, and only then acknowledges each append in the groups.
//!
//! While the syncer waits for the disk, the writer applies the next group, so under load a
//! group grows to whatever arrived during one sync, and one conversation alone still gets its
//! reply after about one sync. A failed sync fails every append it covered: their outcome is
//! unknown, and the callers must rebuild from the log.

mod disk_sync;
mod group;
mod poison;
mod space;
mod stats;
mod syncer;
#[cfg(test)]
mod tests;
mod watchdog;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use handover_store::{Durability, RecordedAt, RecordedEvent, StoreError};
use tokio::sync::{broadcast, mpsc};
use tracing::warn;

pub(crate) use disk_sync::{DiskSync, SyncStep};
use group::{Acks, Publisher};
pub(crate) use group::{AppendRequest, AppendResult};
pub(crate) use poison::Poison;
pub(crate) use space::FreeSpace;
pub(crate) use stats::Counters;
use syncer::Syncer;
pub(crate) use watchdog::TimedSync;
use watchdog::{sync_timed_out, SyncWatch};
use writer::Writer;

use crate::anchor::{Anchor, AnchorPoint};
use crate::engine::{lock, spawn};
use crate::tip::{Checkpoint, Marks};

/// Most applied groups waiting for the syncer before the writer waits for it in turn.
pub(crate) const SYNC_BACKLOG_GROUPS: usize = 64;

/// How long closing waits for the journal's threads.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The sending side of the journal, held by the store.
pub(crate) struct Journal {
    queue: Option<mpsc::Sender<AppendRequest>>,
    /// Dropped to stop the sync watchdog.
    watch_stop: Option<std_mpsc::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    pub(crate) head: Arc<AtomicU64>,
    /// The last record of the last group applied: what `Buffered` anchors after a flush.
    applied_tip: Arc<Mutex<Option<AnchorPoint>>>,
    /// Set by the first storage failure; the store refuses everything after it.
    pub(crate) poison: Arc<Poison>,
    /// The last position whose group the writer has handed on (to the syncer, or acknowledged
    /// in `Buffered`), so tests can hold a sync while groups pile up behind it.
    #[cfg(test)]
    handed_over: Arc<AtomicU64>,
    pub(crate) counters: Arc<Counters>,
}

/// How the journal makes groups durable: the sync step, the bound on one sync, the anchor the
/// syncer moves behind them, and the free space the writer keeps.
pub(crate) struct Syncing {
    pub(crate) step: Box<dyn SyncStep>,
    pub(crate) timeout: Duration,
    pub(crate) anchor: Option<Arc<Mutex<Anchor>>>,
    pub(crate) space: Option<FreeSpace>,
}

/// Where the log stands when the journal starts.
pub(crate) struct Start {
    pub(crate) head: u64,
    pub(crate) last_recorded_at: RecordedAt,
    /// The time to record every event at, instead of the wall clock's.
    pub(crate) time_source: Option<handover_store::TimeSource>,
    /// The last checkpoint of the marks.
    pub(crate) checkpoint: Checkpoint,
}

impl Journal {
    /// Starts the writer (and, unless `Buffered`, the syncer) over `log`. The syncer moves
    /// `anchor`, when given, behind what it has made durable.
    pub(crate) fn start(
        log: sled::Tree,
        start: Start,
        durability: Durability,
        queue_capacity: usize,
        syncing: Syncing,
        live: broadcast::Sender<Arc<RecordedEvent>>,
        marks: Arc<Marks>,
    ) -> Result<Journal, StoreError> {
        let Syncing {
            step: sync,
            timeout: sync_timeout,
            anchor,
            space,
        } = syncing;
        let (queue, requests) = mpsc::channel(queue_capacity.max(1));
        let head = Arc::new(AtomicU64::new(start.head));
        #[cfg(test)]
        let handed_over = Arc::new(AtomicU64::new(start.head));
        let counters = Arc::new(Counters::default());
        let applied_tip = Arc::new(Mutex::new(None));
        let poison = Arc::new(Poison::default());
        let mut threads = Vec::with_capacity(3);
        let mut watch_stop = None;
        let acks = match durability {
            Durability::Buffered => Acks::Now(Publisher {
                live,
                counters: Arc::clone(&counters),
            }),
            // A mode this backend does not know yet waits for a sync, the stronger choice.
            _ => {
                let (groups, applied) = std_mpsc::sync_channel(SYNC_BACKLOG_GROUPS);
                let watch = Arc::new(SyncWatch::default());
                let (stop, stopped) = std_mpsc::channel::<()>();
                watch_stop = Some(stop);
                let watched = Arc::clone(&watch);
                let watch_poison = Arc::clone(&poison);
                threads.push(spawn("handover-journal-watch", move || {
                    let every =
                        (sync_timeout / 4).clamp(Duration::from_millis(1), Duration::from_secs(1));
                    while let Err(std_mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every)
                    {
                        if watched
                            .running_for()
                            .is_some_and(|running| running > sync_timeout)
                        {
                            warn!(
                                ?sync_timeout,
                                "a sync did not finish in time; the store stops"
                            );
                            watch_poison.set(&sync_timed_out(sync_timeout));
                            break;
                        }
                    }
                })?);
                let syncer = Syncer {
                    applied,
                    sync,
                    watch,
                    anchor,
                    poison: Arc::clone(&poison),
                    publisher: Publisher {
                        live,
                        counters: Arc::clone(&counters),
                    },
                };
                threads.push(spawn("handover-journal-sync", move || syncer.run())?);
                Acks::AfterSync(groups)
            }
        };
        let writer = Writer {
            log,
            requests,
            acks,
            next_position: start.head + 1,
            last_recorded_at: start.last_recorded_at,
            time_source: start.time_source,
            tips: HashMap::new(),
            head: Arc::clone(&head),
            applied_tip: Arc::clone(&applied_tip),
            space,
            poison: Arc::clone(&poison),
            #[cfg(test)]
            handed_over: Arc::clone(&handed_over),
            counters: Arc::clone(&counters),
            marks,
            groups_since_checkpoint: 0,
            checkpoint: start.checkpoint,
        };
        threads.push(spawn("handover-journal-write", move || writer.run())?);
        Ok(Journal {
            queue: Some(queue),
            watch_stop,
            threads,
            head,
            applied_tip,
            poison,
            #[cfg(test)]
            handed_over,
            counters,
        })
    }

    /// Queues an append; fails at once with [`StoreError::Overloaded`] when the queue is full.
    pub(crate) fn submit(&self, request: AppendRequest) -> Result<(), StoreError> {
        self.poison.check()?;
        let queue = self.queue.as_ref().ok_or(StoreError::Closed)?;
        queue.try_send(request).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
        })
    }

    /// The last record of the last group applied.
    pub(crate) fn applied_tip(&self) -> Option<AnchorPoint> {
        lock(&self.applied_tip).clone()
    }

    /// Stops taking appends, lets the threads answer everything they hold, and waits for them.
    pub(crate) fn close(&mut self) {
        // Closing the queue lets the writer finish what it holds and stop, which stops the
        // syncer after its last sync: nothing queued is dropped unanswered.
        self.queue = None;
        self.watch_stop = None;
        let threads: Vec<_> = self.threads.drain(..).collect();
        if threads.is_empty() {
            return;
        }
        // A thread blocked inside a failed engine never ends; closing must still return.
        let (joined, wait) = std_mpsc::channel();
        let joiner = std::thread::Builder::new()
            .name("handover-journal-close".to_owned())
            .spawn(move || {
                for thread in threads {
                    if thread.join().is_err() {
                        warn!("a journal thread panicked");
                    }
                }
                let _ = joined.send(());
            });
        // A failed store's threads may be blocked in the engine for good: nobody waits then.
        let wait_at_most = if self.poison.is_set() {
            Duration::ZERO
        } else {
            CLOSE_WAIT
        };
        if joiner.is_ok() && wait.recv_timeout(wait_at_most).is_err() && !wait_at_most.is_zero() {
            warn!(
                "the journal's threads did not stop; they are left blocked in the storage engine"
            );
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.close();
    }
}
