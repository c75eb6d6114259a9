//! The group-commit journal: the only writer of a [`SledStore`](crate::SledStore)'s log.
//!
//! Appends from every conversation meet in one bounded queue. Two threads drain it:
//! - the **writer** takes everything pending, checks each append's expected version, encodes
//!   its records, and applies the whole group as one sled batch;
//! - the **syncer** takes every group the writer has applied since its last sync, makes them
//!   durable with one sync, and only then acknowledges each append in the groups.
//!
//! While the syncer waits for the disk, the writer applies the next group, so under load a
//! group grows to whatever arrived during one sync, and one conversation alone still gets its
//! reply after about one sync. A failed sync fails every append it covered: their outcome is
//! unknown, and the callers must rebuild from the log.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use handover_core::{CommandId, Event, StreamId};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{debug, warn};

use crate::anchor::{Anchor, AnchorPoint};
use crate::index::IndexChunks;
use crate::record::{encode, RecordHash, RecordedAt, RecordedEvent};
use crate::sled_store::{
    command_key, encode_command_entry, event_key, mark_key, read_command, stream_tip, Tip,
};
use crate::{Appended, Conflict, Durability, ExpectedVersion, StoreError};

/// The result an appender waits for.
pub(crate) type AppendResult = Result<Result<Appended, Conflict>, StoreError>;

/// Most appends the writer puts in one group. Bounds the memory of one sled batch; under any
/// realistic load the queue holds fewer.
const GROUP_APPENDS_MAX: usize = 4096;

/// Most applied groups waiting for the syncer before the writer waits for it in turn.
const SYNC_BACKLOG_GROUPS: usize = 64;

/// Most stream versions the writer remembers. Beyond this the cache is emptied and refilled
/// from the log, one lookup per stream, so its memory stays bounded whatever the number of
/// conversations.
const VERSION_CACHE_MAX: usize = 1 << 18;

/// A record's key and encoded value, ready for a sled batch.
type KeyValue = (Vec<u8>, Vec<u8>);

/// How long closing waits for the journal's threads.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The anchor follows acknowledged appends at most this long after them under load...
const ANCHOR_EVERY: Duration = Duration::from_millis(50);
/// ...and this long after the last sync when appends stop.
const ANCHOR_IDLE: Duration = Duration::from_millis(2);

/// One append on its way to the log.
pub(crate) struct AppendRequest {
    pub(crate) stream: StreamId,
    pub(crate) expected: ExpectedVersion,
    /// Set for an append that must happen once: a retry is answered with what the first
    /// attempt recorded. With no events, the request only asks what the command recorded.
    pub(crate) command: Option<CommandId>,
    pub(crate) events: Vec<Event>,
    pub(crate) reply: oneshot::Sender<AppendResult>,
}

/// What the journal has done since the store was opened.
///
/// ```
/// let stats = handover_store::StoreStats::default();
/// assert_eq!(stats.syncs_per_event(), 0.0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Appends acknowledged.
    pub appends: u64,
    /// Events in those appends.
    pub events: u64,
    /// Groups written, each one sled batch.
    pub groups: u64,
    /// Sync calls made to make groups durable (none in `Buffered`).
    pub syncs: u64,
}

impl StoreStats {
    /// Syncs per acknowledged event: the cost of durability, 0 when nothing was written.
    pub fn syncs_per_event(&self) -> f64 {
        if self.events == 0 {
            0.0
        } else {
            self.syncs as f64 / self.events as f64
        }
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    appends: AtomicU64,
    events: AtomicU64,
    groups: AtomicU64,
    syncs: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> StoreStats {
        StoreStats {
            appends: self.appends.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            groups: self.groups.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
        }
    }

    fn acknowledged(&self, events: usize) {
        self.appends.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events as u64, Ordering::Relaxed);
    }
}

/// Makes applied groups durable. The store's is [`DiskSync`]; tests substitute failures.
pub(crate) trait SyncStep: Send + 'static {
    /// Makes everything applied so far as durable as the store promises.
    fn sync(&mut self) -> Result<(), StoreError>;
}

impl<F: FnMut() -> Result<(), StoreError> + Send + 'static> SyncStep for F {
    fn sync(&mut self) -> Result<(), StoreError> {
        self()
    }
}

/// sled's flush, and in [`Durability::Durable`] an `fdatasync` of every file it wrote.
///
/// sled 0.34.7 writes its log with `sync_file_range`, which flushes neither the drive's write
/// cache nor the file's size, and writes values too large for its log (node pages over about
/// 128 KiB) to blob files it never syncs. After sled's flush, `Durable` therefore syncs the data
/// file, every blob file not synced before, and the blob directory.
pub(crate) struct DiskSync {
    db: sled::Db,
    durable: Option<DurableFiles>,
}

struct DurableFiles {
    data: File,
    blob_dir: PathBuf,
    /// Blob files synced, with the length they had then.
    synced_blobs: HashMap<OsString, u64>,
}

impl DiskSync {
    pub(crate) fn new(
        db: sled::Db,
        dir: &Path,
        durability: Durability,
    ) -> Result<DiskSync, StoreError> {
        let durable = match durability {
            Durability::Durable => {
                // sled writes `conf` at the first open without a sync. Where a power cut can
                // keep a file's new size without its data (XFS, ext4 with data=writeback),
                // sled would read zeros there and refuse every later open.
                File::open(dir.join("conf"))?.sync_all()?;
                // The directory entries of sled's files must survive too.
                File::open(dir)?.sync_all()?;
                Some(DurableFiles {
                    data: File::open(dir.join("db"))?,
                    blob_dir: dir.join("blobs"),
                    synced_blobs: HashMap::new(),
                })
            }
            Durability::ProcessCrash | Durability::Buffered => None,
        };
        Ok(DiskSync { db, durable })
    }
}

impl DurableFiles {
    /// Syncs the blobs and their directory first, then `db`: sled's log messages point at
    /// blob files, and a log made durable before the blob it points at can come back after a
    /// power cut naming a blob that is not there. sled then skips that update alone, keeping
    /// the rest of its batch (a global index entry without its record), and every later open
    /// fails as corrupted.
    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_blobs()?;
        self.data.sync_data()
    }

    fn sync_blobs(&mut self) -> std::io::Result<()> {
        let entries = match std::fs::read_dir(&self.blob_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut present = HashMap::new();
        let mut new_blobs = false;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let len = entry.metadata()?.len();
            // sled writes a blob on the writer thread, which may be writing one while this
            // lists them: a blob synced part-written has grown since, and is synced again.
            if self.synced_blobs.get(&name) != Some(&len) {
                File::open(self.blob_dir.join(&name))?.sync_data()?;
                new_blobs = true;
            }
            present.insert(name, len);
        }
        if new_blobs {
            File::open(&self.blob_dir)?.sync_all()?;
        }
        // sled deletes blobs it no longer needs; forget them.
        self.synced_blobs = present;
        Ok(())
    }
}

impl SyncStep for DiskSync {
    fn sync(&mut self) -> Result<(), StoreError> {
        self.db.flush()?;
        if let Some(files) = &mut self.durable {
            files.sync()?;
        }
        Ok(())
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
    requests: std_mpsc::SyncSender<()>,
    results: std_mpsc::Receiver<Result<(), StoreError>>,
    timeout: Duration,
    stuck: Option<StoreError>,
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

/// The failure that stopped a store. After an I/O error the storage engine's state is unknown
/// (sled 0.34.7 may have applied part of a batch in memory, and its errors are sticky), so
/// like a database that stops after a failed `fsync`, the store refuses every append and read
/// from then on with [`StoreError::Failed`]; reopening it (a restart) reads what is on disk.
#[derive(Default)]
pub(crate) struct Poison {
    failure: std::sync::OnceLock<StoreError>,
    failed: tokio::sync::Notify,
}

impl Poison {
    /// Records the first failure; later ones change nothing. Wakes every appender waiting for
    /// an answer: an append stuck inside a failed engine gets the failure instead of waiting
    /// for good.
    pub(crate) fn set(&self, cause: &StoreError) {
        self.mark(cause);
        self.wake();
    }

    /// Records the first failure without waking anyone yet: the appends the failure met are
    /// answered with its own error first, then [`Poison::wake`] wakes the rest.
    pub(crate) fn mark(&self, cause: &StoreError) {
        let _ = self
            .failure
            .set(StoreError::Failed(Arc::new(cause.clone())));
    }

    /// Wakes every appender still waiting, with the failure.
    pub(crate) fn wake(&self) {
        self.failed.notify_waiters();
    }

    /// Resolves with the failure once the store has failed.
    pub(crate) async fn failed(&self) -> StoreError {
        loop {
            let notified = self.failed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(failure) = self.failure.get() {
                return failure.clone();
            }
            notified.await;
        }
    }

    /// The error every operation gets once the store has failed.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        match self.failure.get() {
            Some(failed) => Err(failed.clone()),
            None => Ok(()),
        }
    }

    pub(crate) fn is_set(&self) -> bool {
        self.failure.get().is_some()
    }
}

/// When the syncer's current sync began, for the watchdog: sled 0.34.7's flush can block
/// forever after an I/O error (a full disk, a failed `sync_file_range`), and the appends it
/// covers would wait with it. The sync runs on the syncer's own thread (a hand-off to another
/// thread for every sync cost a quarter of one conversation's throughput); a watchdog thread
/// stops the store when a sync runs past the timeout, which wakes every waiting appender with
/// the failure.
#[derive(Default)]
struct SyncWatch {
    /// Microseconds after `base` at which the running sync began; 0 when none runs.
    started: AtomicU64,
    base: std::sync::OnceLock<Instant>,
}

impl SyncWatch {
    fn now(&self) -> u64 {
        let base = self.base.get_or_init(Instant::now);
        // +1 so that a sync started at `base` is not read as "none runs".
        u64::try_from(base.elapsed().as_micros()).unwrap_or(u64::MAX - 1) + 1
    }

    fn begin(&self) {
        self.started.store(self.now(), Ordering::Release);
    }

    fn end(&self) {
        self.started.store(0, Ordering::Release);
    }

    /// How long the running sync has been running, if one is.
    fn running_for(&self) -> Option<Duration> {
        match self.started.load(Ordering::Acquire) {
            0 => None,
            started => Some(Duration::from_micros(self.now().saturating_sub(started))),
        }
    }
}

fn sync_timed_out(timeout: Duration) -> StoreError {
    StoreError::Io(Arc::new(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!(
            "the storage engine did not finish a sync within {timeout:?}; the outcome of the \
             appends it covered is unknown"
        ),
    )))
}

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

/// The free space the writer keeps on the data directory's file system.
///
/// sled 0.34.7 does not survive running out of space in the middle of its writes: after
/// `ENOSPC` its recovery can come back with part of a failed batch (a stream with a gap, a mark
/// without its record), which the store then reports as damage. So the writer stops the store
/// before sled can get there: a group that would leave less than `reserve` bytes free is not
/// applied, and the store fails with an I/O error of kind `StorageFull`.
pub(crate) struct FreeSpace {
    pub(crate) dir: PathBuf,
    pub(crate) reserve: u64,
}

impl FreeSpace {
    /// sled writes a record to its log and again as part of its page, and cleans segments:
    /// count several times the encoded bytes.
    const WRITE_AMPLIFICATION: u64 = 4;

    fn check(&self, bytes: u64) -> Result<(), StoreError> {
        let stat = rustix::fs::statvfs(&self.dir).map_err(std::io::Error::from)?;
        let available = stat.f_bavail.saturating_mul(stat.f_frsize);
        let needed = self
            .reserve
            .saturating_add(bytes.saturating_mul(Self::WRITE_AMPLIFICATION));
        if available < needed {
            return Err(StoreError::Io(Arc::new(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!(
                    "{} has {available} bytes free; appending {bytes} bytes would leave less \
                     than the {} bytes the store keeps free (StoreOptions::min_free_bytes)",
                    self.dir.display(),
                    self.reserve
                ),
            ))));
        }
        Ok(())
    }
}

/// Where the log stands when the journal starts.
pub(crate) struct Start {
    pub(crate) head: u64,
    pub(crate) last_recorded_at: RecordedAt,
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
            Durability::Durable | Durability::ProcessCrash => {
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
            tips: HashMap::new(),
            head: Arc::clone(&head),
            applied_tip: Arc::clone(&applied_tip),
            space,
            poison: Arc::clone(&poison),
            #[cfg(test)]
            handed_over: Arc::clone(&handed_over),
            counters: Arc::clone(&counters),
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

/// Locks `mutex`, also after a panic elsewhere (what it guards stays consistent: it is only
/// ever replaced whole).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, StoreError> {
    Ok(std::thread::Builder::new().name(name.to_owned()).spawn(f)?)
}

/// An append the writer has answered for, waiting for its group's sync.
struct Answer {
    reply: oneshot::Sender<AppendResult>,
    records: Appended,
    /// False for a retry answered with what its command recorded before: subscribers saw
    /// those events already.
    new: bool,
}

/// Appends applied in one sled batch, waiting for their sync.
struct Group {
    answers: Vec<Answer>,
    /// The group's last record, which the anchor names once the group is durable.
    tip: Option<AnchorPoint>,
}

enum Acks {
    /// `Buffered`: acknowledge as soon as the group is applied.
    Now(Publisher),
    /// Hand the group to the syncer.
    AfterSync(std_mpsc::SyncSender<Group>),
}

/// Acknowledges appends and hands their events to subscribers, in position order (groups reach
/// it in the order they were applied).
struct Publisher {
    live: broadcast::Sender<Arc<RecordedEvent>>,
    counters: Arc<Counters>,
}

impl Publisher {
    fn finish(&self, group: Group, outcome: &Result<(), StoreError>) {
        for Answer {
            reply,
            records,
            new,
        } in group.answers
        {
            // Subscribers get only durable events. After a failed sync the store stops
            // (`Poison`), so nothing published later can leave a gap behind these.
            let answer = match outcome {
                Ok(()) => {
                    if new {
                        for record in &records {
                            // No receiver is not an error: nobody is watching.
                            let _ = self.live.send(Arc::clone(record));
                        }
                    }
                    self.counters.acknowledged(records.len());
                    Ok(Ok(records))
                }
                Err(error) => Err(error.clone()),
            };
            // The appender may have given up waiting; the outcome is in the log either way.
            let _ = reply.send(answer);
        }
    }
}

struct Writer {
    log: sled::Tree,
    requests: mpsc::Receiver<AppendRequest>,
    acks: Acks,
    next_position: u64,
    last_recorded_at: RecordedAt,
    /// Where every stream written recently ends: its version and its last record's hash. The
    /// writer is the log's only writer, so the cache cannot go stale; a miss reads the
    /// stream's high-water mark.
    tips: HashMap<StreamId, Tip>,
    head: Arc<AtomicU64>,
    applied_tip: Arc<Mutex<Option<AnchorPoint>>>,
    space: Option<FreeSpace>,
    poison: Arc<Poison>,
    #[cfg(test)]
    handed_over: Arc<AtomicU64>,
    counters: Arc<Counters>,
}

impl Writer {
    fn run(mut self) {
        let mut pending = Vec::new();
        while let Some(first) = self.requests.blocking_recv() {
            pending.push(first);
            while pending.len() < GROUP_APPENDS_MAX {
                match self.requests.try_recv() {
                    Ok(request) => pending.push(request),
                    Err(_) => break,
                }
            }
            if let Err(failed) = self.poison.check() {
                for request in pending.drain(..) {
                    let _ = request.reply.send(Err(failed.clone()));
                }
                continue;
            }
            // sled can panic on a damaged tree; its state is then unknown, as after an I/O
            // error. The requests being applied are dropped: their appenders learn the failure.
            let applied =
                crate::sled_store::contained("appending", || Ok(self.apply(&mut pending)));
            let group = match applied {
                Ok(group) => group,
                Err(error) => {
                    warn!(%error, "the storage engine panicked; the store stops");
                    pending.clear();
                    self.poison.set(&error);
                    continue;
                }
            };
            if group.answers.is_empty() {
                continue;
            }
            // Before any acknowledgement of the group, so that `head` never trails a position
            // an appender has been given.
            let last = self.next_position - 1;
            self.head.store(last, Ordering::Release);
            self.counters.groups.fetch_add(1, Ordering::Relaxed);
            match &self.acks {
                Acks::Now(publisher) => {
                    if group.tip.is_some() {
                        *lock(&self.applied_tip) = group.tip.clone();
                    }
                    publisher.finish(group, &Ok(()));
                }
                Acks::AfterSync(syncer) => {
                    if let Err(std_mpsc::SendError(group)) = syncer.send(group) {
                        let stopped = Err(StoreError::Closed);
                        for answer in group.answers {
                            let _ = answer.reply.send(stopped.clone());
                        }
                    }
                }
            }
            #[cfg(test)]
            self.handed_over.store(last, Ordering::Release);
        }
        debug!("journal writer stopped");
    }

    /// Stops the store after an error of the engine itself (I/O, or sled's own), met while
    /// reading what an append needs: the engine's state is as unknown as after a failed apply.
    /// Damage found in the log (`Corrupted`) concerns one stream and stops nothing.
    fn stop_on_engine_failure(&self, error: &StoreError) {
        if matches!(error, StoreError::Io(_) | StoreError::Engine(_)) {
            warn!(%error, "the storage engine failed while reading; the store stops");
            self.poison.set(error);
        }
    }

    /// Where `stream` ends, from the cache or the log.
    fn tip(&mut self, stream: &StreamId) -> Result<Tip, StoreError> {
        if let Some(&tip) = self.tips.get(stream) {
            return Ok(tip);
        }
        stream_tip(&self.log, stream)
    }

    /// Checks and encodes every request in `pending` and applies the accepted ones as one sled
    /// batch. Rejected requests (a conflict, a record too large) are answered here.
    fn apply(&mut self, pending: &mut Vec<AppendRequest>) -> Group {
        let first_position = self.next_position;
        let recorded_at = RecordedAt::now().max(self.last_recorded_at);
        let mut batch = sled::Batch::default();
        let mut answers = Vec::with_capacity(pending.len());
        let mut index = IndexChunks::default();
        let mut batch_bytes = 0u64;
        let mut tip = None;
        // Commands appended in this group, so a retry queued behind its first attempt gets
        // the same answer.
        let mut commands: HashMap<(StreamId, CommandId), Appended> = HashMap::new();
        for request in pending.drain(..) {
            let AppendRequest {
                stream,
                expected,
                command,
                events,
                reply,
            } = request;
            if let Some(command) = command {
                let recorded = match commands.get(&(stream.clone(), command)) {
                    Some(records) => Ok(Some(records.clone())),
                    None => read_command(&self.log, &stream, &command).map(|found| {
                        found.map(|records| records.into_iter().map(Arc::new).collect())
                    }),
                };
                match recorded {
                    // Answered with the group, after its sync: the first attempt's records
                    // may still be waiting for theirs.
                    Ok(Some(records)) => {
                        answers.push(Answer {
                            reply,
                            records,
                            new: false,
                        });
                        continue;
                    }
                    Ok(None) => {}
                    Err(error) => {
                        let _ = reply.send(Err(error.clone()));
                        self.stop_on_engine_failure(&error);
                        continue;
                    }
                }
            }
            let stream_tip = match self.tip(&stream) {
                Ok(tip) => tip,
                Err(error) => {
                    let _ = reply.send(Err(error.clone()));
                    self.stop_on_engine_failure(&error);
                    continue;
                }
            };
            if !expected.admits(stream_tip.version) {
                let _ = reply.send(Ok(Err(Conflict {
                    expected: match expected {
                        ExpectedVersion::Exact(v) => v,
                        ExpectedVersion::NoStream | ExpectedVersion::Any => 0,
                    },
                    actual: stream_tip.version,
                })));
                continue;
            }
            if events.is_empty() {
                let _ = reply.send(Ok(Ok(Vec::new())));
                continue;
            }
            match self.encode_append(&stream, stream_tip, events, recorded_at) {
                Ok((entries, records, new_tip)) => {
                    for ((key, value), record) in entries.into_iter().zip(&records) {
                        // The index entry is the record's key without its prefix.
                        index.push(record.position, &key[1..], &mut batch);
                        batch_bytes += (key.len() + value.len()) as u64;
                        batch.insert(key, value);
                    }
                    batch.insert(mark_key(&stream), &new_tip.encode()[..]);
                    let last = &records[records.len() - 1];
                    if let Some(command) = command {
                        let count = u32::try_from(records.len()).unwrap_or(u32::MAX);
                        batch.insert(
                            command_key(&stream, &command),
                            &encode_command_entry(records[0].seq, count)[..],
                        );
                        commands.insert((stream.clone(), command), records.clone());
                    }
                    tip = Some(AnchorPoint {
                        position: last.position,
                        stream: stream.clone(),
                        seq: last.seq,
                        hash: new_tip.hash,
                    });
                    self.next_position += records.len() as u64;
                    if self.tips.len() >= VERSION_CACHE_MAX {
                        self.tips.clear();
                    }
                    self.tips.insert(stream, new_tip);
                    answers.push(Answer {
                        reply,
                        records,
                        new: true,
                    });
                }
                Err(error) => {
                    let _ = reply.send(Err(error));
                }
            }
        }
        if tip.is_none() {
            // Only retries of recorded commands: nothing to write.
            return Group { answers, tip };
        }
        index.finish(&mut batch);
        let room = match &self.space {
            Some(space) => space.check(batch_bytes),
            None => Ok(()),
        };
        let applied = room.and_then(|()| self.log.apply_batch(batch).map_err(StoreError::from));
        if let Err(error) = applied {
            // sled may have applied part of the batch in memory: nothing read from it can be
            // trusted any more, so the store stops (a reopen reads what is on disk). Short of
            // space, nothing was written, and the store stops all the same, before sled runs
            // out in the middle of a write.
            warn!(%error, appends = answers.len(), "applying a group failed; the store stops");
            self.next_position = first_position;
            for answer in answers.iter().filter(|answer| answer.new) {
                self.tips.remove(&answer.records[0].stream);
            }
            // Stopped before anything else can read the engine; the appends the failure met
            // get its own error, everything after them the stopped store's.
            self.poison.mark(&error);
            for answer in answers {
                let _ = answer.reply.send(Err(error.clone()));
            }
            self.poison.wake();
            return Group {
                answers: Vec::new(),
                tip: None,
            };
        }
        self.last_recorded_at = recorded_at;
        Group { answers, tip }
    }

    /// The records of one append, numbered after the stream's `tip` and chained to it, their
    /// encoded key/value pairs, and the stream's new tip.
    fn encode_append(
        &self,
        stream: &StreamId,
        tip: Tip,
        events: Vec<Event>,
        recorded_at: RecordedAt,
    ) -> Result<(Vec<KeyValue>, Appended, Tip), StoreError> {
        let mut entries = Vec::with_capacity(events.len());
        let mut records = Vec::with_capacity(events.len());
        let mut previous = tip.hash;
        // The events move into their records: a message's text is never copied on the way.
        for (i, event) in (0u64..).zip(events) {
            let record = RecordedEvent {
                position: self.next_position + i,
                stream: stream.clone(),
                seq: tip.version + 1 + i,
                recorded_at,
                event,
            };
            let bytes = encode(&record, &previous)?;
            previous = RecordHash::of(&bytes);
            entries.push((event_key(stream, record.seq), bytes));
            records.push(Arc::new(record));
        }
        let tip = Tip {
            version: tip.version + records.len() as u64,
            hash: previous,
        };
        Ok((entries, records, tip))
    }
}

struct Syncer {
    applied: std_mpsc::Receiver<Group>,
    sync: Box<dyn SyncStep>,
    watch: Arc<SyncWatch>,
    anchor: Option<Arc<Mutex<Anchor>>>,
    poison: Arc<Poison>,
    publisher: Publisher,
}

impl Syncer {
    fn run(mut self) {
        let mut groups = Vec::new();
        // The last durable record the anchor does not name yet.
        let mut unanchored: Option<AnchorPoint> = None;
        let mut anchored_at = Instant::now();
        loop {
            // Appends never wait for the anchor: it follows a moment after their sync, when
            // the syncer has nothing else to do, or every `ANCHOR_EVERY` under load.
            let first = if unanchored.is_some() {
                match self.applied.recv_timeout(ANCHOR_IDLE) {
                    Ok(group) => group,
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {
                        self.anchor(unanchored.take());
                        anchored_at = Instant::now();
                        continue;
                    }
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match self.applied.recv() {
                    Ok(group) => group,
                    Err(_) => break,
                }
            };
            groups.push(first);
            while let Ok(group) = self.applied.try_recv() {
                groups.push(group);
            }
            self.watch.begin();
            let outcome = crate::sled_store::contained("syncing", || self.sync.sync());
            self.watch.end();
            self.publisher
                .counters
                .syncs
                .fetch_add(1, Ordering::Relaxed);
            match &outcome {
                // A sync makes everything applied before it durable, failed groups included.
                Ok(()) => {
                    if let Some(tip) = groups.iter().rev().find_map(|group| group.tip.clone()) {
                        unanchored = Some(tip);
                    }
                }
                Err(error) => {
                    warn!(%error, groups = groups.len(), "sync failed; its appends are not acknowledged, and the store stops");
                    unanchored = None;
                    self.poison.mark(error);
                }
            }
            for group in groups.drain(..) {
                self.publisher.finish(group, &outcome);
            }
            // After the answers, so the appends the sync covered get its error itself.
            if outcome.is_err() {
                self.poison.wake();
            }
            if unanchored.is_some() && anchored_at.elapsed() >= ANCHOR_EVERY {
                self.anchor(unanchored.take());
                anchored_at = Instant::now();
            }
        }
        self.anchor(unanchored);
        debug!("journal syncer stopped");
    }

    fn anchor(&self, point: Option<AnchorPoint>) {
        if self.poison.is_set() {
            // Only what a sound engine made durable may be anchored.
            return;
        }
        if let (Some(anchor), Some(point)) = (&self.anchor, point) {
            // A failed anchor write loses nothing: the anchor lags, and the next write
            // catches up.
            if let Err(error) = lock(anchor).write(point) {
                warn!(%error, "writing the anchor failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use handover_core::{AgentName, AiAgentEvent, AiAgentId};

    use super::*;
    use crate::sled_store::stream_version;

    /// A sync step the test drives: it reports each sync as it starts and waits for the test
    /// to say how it ends.
    struct ScriptedSync {
        started: std_mpsc::Sender<()>,
        outcomes: std_mpsc::Receiver<Result<(), StoreError>>,
    }

    impl SyncStep for ScriptedSync {
        fn sync(&mut self) -> Result<(), StoreError> {
            let _ = self.started.send(());
            self.outcomes.recv().unwrap_or(Err(StoreError::Closed))
        }
    }

    struct Harness {
        journal: Journal,
        log: sled::Tree,
        started: std_mpsc::Receiver<()>,
        outcomes: std_mpsc::Sender<Result<(), StoreError>>,
        _db: sled::Db,
    }

    fn harness() -> Harness {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let log = db.open_tree("log").unwrap();
        let (started_tx, started) = std_mpsc::channel();
        let (outcomes, outcomes_rx) = std_mpsc::channel();
        let journal = Journal::start(
            log.clone(),
            Start {
                head: 0,
                last_recorded_at: RecordedAt(i64::MIN),
            },
            Durability::Durable,
            1024,
            Syncing {
                step: Box::new(ScriptedSync {
                    started: started_tx,
                    outcomes: outcomes_rx,
                }),
                timeout: Duration::from_secs(3600),
                anchor: None,
                space: None,
            },
            broadcast::channel(16).0,
        )
        .unwrap();
        Harness {
            journal,
            log,
            started,
            outcomes,
            _db: db,
        }
    }

    fn stream(n: usize) -> StreamId {
        StreamId::AiAgent(AiAgentId::new(format!("agent-{n}")).unwrap())
    }

    fn registered(stream: &StreamId) -> Event {
        let StreamId::AiAgent(agent_id) = stream else {
            unreachable!("the tests write AI-agent streams")
        };
        Event::AiAgent(AiAgentEvent::Registered {
            agent_id: agent_id.clone(),
            name: AgentName::new("bot").unwrap(),
            specialties: vec![],
        })
    }

    fn submit(
        journal: &Journal,
        stream: &StreamId,
        expected: ExpectedVersion,
    ) -> oneshot::Receiver<AppendResult> {
        let (reply, answer) = oneshot::channel();
        journal
            .submit(AppendRequest {
                stream: stream.clone(),
                expected,
                command: None,
                events: vec![registered(stream)],
                reply,
            })
            .unwrap();
        answer
    }

    /// Waits (without a time-based assertion) until the writer has handed `head` events to the
    /// syncer; the deadline only turns a hang into a failure.
    fn wait_for_head(journal: &Journal, head: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while journal.handed_over.load(Ordering::Acquire) < head {
            assert!(Instant::now() < deadline, "the writer never reached {head}");
            std::thread::yield_now();
        }
    }

    #[test]
    fn appends_waiting_during_a_sync_share_the_next_one() {
        let h = harness();
        let first = submit(&h.journal, &stream(0), ExpectedVersion::NoStream);
        h.started.recv().unwrap();
        // The first sync is under way: everything submitted now is applied and waits.
        let waiting: Vec<_> = (1..=10)
            .map(|n| submit(&h.journal, &stream(n), ExpectedVersion::NoStream))
            .collect();
        wait_for_head(&h.journal, 11);
        h.outcomes.send(Ok(())).unwrap();
        assert!(first.blocking_recv().unwrap().unwrap().is_ok());
        h.started.recv().unwrap();
        h.outcomes.send(Ok(())).unwrap();
        for answer in waiting {
            let records = answer.blocking_recv().unwrap().unwrap().unwrap();
            assert_eq!(records[0].seq, 1);
        }
        let stats = h.journal.counters.snapshot();
        assert_eq!((stats.appends, stats.events, stats.syncs), (11, 11, 2));
    }

    #[test]
    fn a_failed_sync_fails_every_append_it_covers_and_stops_the_store() {
        let h = harness();
        let first = submit(&h.journal, &stream(0), ExpectedVersion::NoStream);
        h.started.recv().unwrap();
        let covered: Vec<_> = (1..=5)
            .map(|n| submit(&h.journal, &stream(n), ExpectedVersion::NoStream))
            .collect();
        wait_for_head(&h.journal, 6);
        h.outcomes.send(Ok(())).unwrap();
        assert!(first.blocking_recv().unwrap().unwrap().is_ok());
        h.started.recv().unwrap();
        let failure = StoreError::Io(Arc::new(std::io::Error::other("disk gone")));
        h.outcomes.send(Err(failure)).unwrap();
        for answer in covered {
            let error = answer.blocking_recv().unwrap().unwrap_err();
            assert!(matches!(error, StoreError::Io(_)), "{error}");
        }
        // After a failed sync the engine's state is unknown: every later append is refused
        // with the failure that stopped the store, and nothing more is written.
        let (reply, _answer) = oneshot::channel();
        let refused = h.journal.submit(AppendRequest {
            stream: stream(1),
            expected: ExpectedVersion::Exact(1),
            command: None,
            events: vec![registered(&stream(1))],
            reply,
        });
        match refused {
            Err(StoreError::Failed(cause)) => assert!(matches!(*cause, StoreError::Io(_))),
            other => panic!("expected the store to have stopped, got {other:?}"),
        }
        assert_eq!(stream_version(&h.log, &stream(1)).unwrap(), 1);
        let stats = h.journal.counters.snapshot();
        assert_eq!((stats.appends, stats.syncs), (1, 2));
    }

    /// What sled's flush does after some I/O errors: block for good.
    struct Stuck;

    impl SyncStep for Stuck {
        fn sync(&mut self) -> Result<(), StoreError> {
            loop {
                std::thread::park();
            }
        }
    }

    #[test]
    fn a_sync_that_never_returns_stops_the_store() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let log = db.open_tree("log").unwrap();
        let journal = Journal::start(
            log,
            Start {
                head: 0,
                last_recorded_at: RecordedAt(i64::MIN),
            },
            Durability::Durable,
            16,
            Syncing {
                step: Box::new(Stuck),
                timeout: Duration::from_millis(50),
                anchor: None,
                space: None,
            },
            broadcast::channel(16).0,
        )
        .unwrap();
        let _answer = submit(&journal, &stream(0), ExpectedVersion::NoStream);
        let failure = loop {
            if let Err(failure) = journal.poison.check() {
                break failure;
            }
            std::thread::yield_now();
        };
        match failure {
            StoreError::Failed(cause) => {
                assert!(
                    matches!(&*cause, StoreError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut)
                )
            }
            other => panic!("expected the store to have stopped, got {other:?}"),
        }
        let (reply, _) = oneshot::channel();
        let refused = journal.submit(AppendRequest {
            stream: stream(1),
            expected: ExpectedVersion::NoStream,
            command: None,
            events: vec![registered(&stream(1))],
            reply,
        });
        assert!(matches!(refused, Err(StoreError::Failed(_))));
        // Closing returns although the syncer never will.
        drop(journal);
    }

    #[test]
    fn a_bounded_flush_that_never_returns_times_out() {
        let mut timed = TimedSync::new(Box::new(Stuck), Duration::from_millis(50)).unwrap();
        for _ in 0..2 {
            match timed.sync() {
                Err(StoreError::Io(error)) => {
                    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut)
                }
                other => panic!("expected a timeout, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_conflict_is_answered_without_a_sync_and_records_nothing() {
        let h = harness();
        let first = submit(&h.journal, &stream(0), ExpectedVersion::NoStream);
        h.started.recv().unwrap();
        h.outcomes.send(Ok(())).unwrap();
        first.blocking_recv().unwrap().unwrap().unwrap();
        for expected in [
            ExpectedVersion::NoStream,
            ExpectedVersion::Exact(0),
            ExpectedVersion::Exact(2),
        ] {
            let conflict = submit(&h.journal, &stream(0), expected)
                .blocking_recv()
                .unwrap()
                .unwrap()
                .unwrap_err();
            assert_eq!(conflict.actual, 1);
        }
        assert_eq!(stream_version(&h.log, &stream(0)).unwrap(), 1);
        assert_eq!(h.journal.counters.snapshot().syncs, 1);
    }

    #[test]
    fn a_full_queue_is_overloaded_and_a_closed_journal_answers_every_request() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let log = db.open_tree("log").unwrap();
        let (started_tx, started) = std_mpsc::channel();
        let (outcomes, outcomes_rx) = std_mpsc::channel();
        let journal = Journal::start(
            log,
            Start {
                head: 0,
                last_recorded_at: RecordedAt(i64::MIN),
            },
            Durability::Durable,
            1,
            Syncing {
                step: Box::new(ScriptedSync {
                    started: started_tx,
                    outcomes: outcomes_rx,
                }),
                timeout: Duration::from_secs(3600),
                anchor: None,
                space: None,
            },
            broadcast::channel(16).0,
        )
        .unwrap();
        let first = submit(&journal, &stream(0), ExpectedVersion::NoStream);
        started.recv().unwrap();
        // The writer is free again; fill its queue while it waits for the syncer.
        let mut answers = vec![first];
        let mut overloaded = None;
        for n in 1..100_000 {
            let (reply, answer) = oneshot::channel();
            let request = AppendRequest {
                stream: stream(n),
                expected: ExpectedVersion::NoStream,
                command: None,
                events: vec![registered(&stream(n))],
                reply,
            };
            match journal.submit(request) {
                Ok(()) => answers.push(answer),
                Err(error) => {
                    overloaded = Some(error);
                    break;
                }
            }
        }
        assert!(matches!(overloaded, Some(StoreError::Overloaded)));
        // Let every sync succeed, then close: each request taken gets an answer.
        outcomes.send(Ok(())).unwrap();
        std::thread::spawn(move || {
            while started.recv().is_ok() {
                if outcomes.send(Ok(())).is_err() {
                    break;
                }
            }
        });
        drop(journal);
        for answer in answers {
            assert!(answer.blocking_recv().unwrap().unwrap().is_ok());
        }
    }
}
