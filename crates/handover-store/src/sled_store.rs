//! [`SledStore`]: the event log on sled 0.34.
//!
//! One sled tree, `log`, holds two key spaces, so one `apply_batch` writes a group of appends
//! atomically:
//! - `s` + stream key + seq (u64 BE) -> the record: one stream is one range scan;
//! - `G` + first position (u64 BE) -> a chunk of the global index, the stream key and seq of
//!   each position from there (see `index.rs`): the global order is one more.
//!
//! Stream keys: `c` + the conversation's 16 UUID bytes, or `a` + the AI agent id + `0x00`
//! (ids hold no control characters, so the terminator keeps the key space prefix-free).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use handover_core::{AiAgentId, CommandId, ConversationId, Event, StreamId};
use tokio::sync::{broadcast, oneshot};
use tracing::{debug, info, warn};

use crate::anchor::{Anchor, AnchorPoint, ANCHOR_FILE};
use crate::index::{self, chunk_key, decode_chunk, CHUNK_PREFIX};
use crate::journal::{
    lock, AppendRequest, DiskSync, FreeSpace, Journal, Start, StoreStats, SyncStep, Syncing,
    TimedSync,
};
use crate::record::{decode, record_previous_hash, RecordHash, RecordedAt, RecordedEvent};
use crate::{
    Appended, Conflict, Damage, EventStore, ExpectedVersion, LogLocation, SeqRange, StoreError,
};

const STREAM_PREFIX: u8 = b's';
/// `M` + stream key -> the stream's high-water mark (see [`Tip`]).
const MARK_PREFIX: u8 = b'M';
/// `C` + stream key + command id -> the first seq and the count of the events that command
/// appended, so a retry of it is answered with them instead of appending again.
const COMMAND_PREFIX: u8 = b'C';
const MARK_FORMAT: u8 = 1;
const MARK_BYTES: usize = 1 + 4 + 8 + RecordHash::LEN;
const CONVERSATION_KIND: u8 = b'c';
const AI_AGENT_KIND: u8 = b'a';
const SUBSCRIBERS_CAPACITY: usize = 4096;
const IN_USE_POLL: Duration = Duration::from_millis(10);

/// What an acknowledged append survives. `docs/storage-format.md` gives the details.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Acknowledge after sled's flush and an `fdatasync` of every file it wrote: the append
    /// survives a power loss. Appends waiting at the same time share one sync.
    #[default]
    Durable,
    /// Acknowledge after sled's flush alone. sled writes with `sync_file_range`, so the append
    /// survives a crash of the process, but not a power loss (the drive's cache and the file's
    /// size are not flushed).
    ProcessCrash,
    /// Acknowledge once written to sled's buffers; sled flushes them on its own every
    /// `flush_every_ms`. A crash can lose the last moments. For simulations and tests.
    Buffered,
}

impl Durability {
    /// The name the CLI and reports use: `durable`, `process-crash` or `buffered`.
    pub fn name(self) -> &'static str {
        match self {
            Durability::Durable => "durable",
            Durability::ProcessCrash => "process-crash",
            Durability::Buffered => "buffered",
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How to open a [`SledStore`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// What an acknowledged append survives.
    pub durability: Durability,
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
    /// How often sled flushes on its own, in milliseconds (the bound on loss in `Buffered`).
    pub flush_every_ms: u64,
    /// How long `open` keeps trying a directory whose lock is held before it reports
    /// [`StoreError::InUse`]. sled releases the lock from a background thread a moment after
    /// the last handle is dropped, so a directory just closed in this process can read as in
    /// use for a few milliseconds.
    pub in_use_wait: Duration,
    /// Most appends waiting for the journal; beyond it an append fails at once with
    /// [`StoreError::Overloaded`] instead of queueing without bound.
    pub queue_capacity: usize,
    /// Whether `open` fails when the log is shorter than what the store acknowledged (see
    /// [`SledStore::check_acknowledged`]). On by default; an audit turns it off to run every
    /// check and report the earliest fault, then calls `check_acknowledged` itself.
    pub check_acknowledged_on_open: bool,
    /// How long the journal waits for one sync before it gives up on the storage engine: sled
    /// 0.34.7's flush can block forever after an I/O error (a full disk). The appends it
    /// covered then fail, and the store stops ([`StoreError::Failed`]).
    pub sync_timeout: Duration,
    /// Free bytes the store keeps on the data directory's file system. sled 0.34.7 does not
    /// survive running out of space in the middle of its writes (its recovery can come back
    /// with part of a failed batch), so a group that would leave less free is not written, and
    /// the store stops with an I/O error of kind `StorageFull`; free space and reopen.
    pub min_free_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Durable,
            cache_bytes: 64 * 1024 * 1024,
            flush_every_ms: 200,
            in_use_wait: Duration::from_secs(1),
            queue_capacity: 16 * 1024,
            check_acknowledged_on_open: true,
            sync_timeout: Duration::from_secs(30),
            min_free_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The event log on a sled database in one directory.
///
/// ```
/// # tokio_test_block_on(async {
/// use handover_core::{AiAgentEvent, AiAgentId, AgentName, Event, StreamId};
/// use handover_store::{EventStore, ExpectedVersion, SeqRange, SledStore, StoreOptions};
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = SledStore::open(dir.path(), StoreOptions::default()).unwrap();
/// let agent = AiAgentId::new("faq-bot").unwrap();
/// let stream = StreamId::AiAgent(agent.clone());
/// let registered = Event::AiAgent(AiAgentEvent::Registered {
///     agent_id: agent,
///     name: AgentName::new("FAQ bot").unwrap(),
///     specialties: vec![],
/// });
/// store.append(&stream, ExpectedVersion::NoStream, vec![registered]).await.unwrap().unwrap();
/// assert_eq!(store.read_stream(&stream, SeqRange::ALL).await.unwrap().len(), 1);
/// # });
/// # fn tokio_test_block_on(f: impl std::future::Future<Output = ()>) {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// sled's handles; `None` only while the store is dropped (see `Engine::close`).
    engine: Option<Engine>,
    options: StoreOptions,
    live: broadcast::Sender<Arc<RecordedEvent>>,
    /// The last durable position, outside sled.
    anchor: Arc<Mutex<Anchor>>,
    /// Why the log cannot be checked against its anchor, found at open.
    unanchored: Option<StoreError>,
    /// The log's only writer. Declared last, so it is dropped (and its threads joined) after
    /// nothing else here can queue an append.
    journal: Journal,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.inner.path)
            .field("durability", &self.inner.options.durability)
            .finish_non_exhaustive()
    }
}

/// sled's handles of one store.
struct Engine {
    db: sled::Db,
    log: sled::Tree,
}

impl Engine {
    /// Drops sled's handles on a thread of their own and waits for it a bounded time. After an
    /// I/O failure sled 0.34.7 can panic while closing (its log's `Drop` unwraps a final
    /// `fsync`) or block in it; neither may reach the thread that drops the store.
    fn close(self, wait_at_most: Duration) {
        let (closed, wait) = std_mpsc::channel();
        let closer = std::thread::Builder::new()
            .name("handover-close".to_owned())
            .spawn(move || {
                drop(self);
                let _ = closed.send(());
            });
        match closer {
            Ok(_) => {
                if wait.recv_timeout(wait_at_most).is_err() && !wait_at_most.is_zero() {
                    warn!(
                        "the storage engine did not close cleanly; its files are left as they are"
                    );
                }
            }
            Err(error) => warn!(%error, "cannot start a thread to close the storage engine"),
        }
    }
}

/// How long dropping a store waits for sled to close.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

impl Inner {
    fn engine(&self) -> &Engine {
        self.engine
            .as_ref()
            .expect("the engine is there until the store is dropped")
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.journal.close();
        let failed = self.journal.poison.is_set();
        if self.options.durability == Durability::Buffered && !failed {
            // What a `Buffered` store acknowledged is durable once closed: flush and anchor it.
            let applied = self.journal.applied_tip();
            match self.engine().db.flush() {
                Ok(_) => {
                    if let Some(point) = applied {
                        if let Err(error) = lock(&self.anchor).write(point) {
                            warn!(%error, "writing the anchor at close failed");
                        }
                    }
                }
                Err(error) => warn!(%error, "flushing at close failed"),
            }
        }
        if let Some(engine) = self.engine.take() {
            // After a failure sled may never close; the caller does not wait for it then.
            engine.close(if failed { Duration::ZERO } else { CLOSE_WAIT });
        }
    }
}

pub(crate) fn push_stream_key(key: &mut Vec<u8>, stream: &StreamId) {
    match stream {
        StreamId::Conversation(id) => {
            key.push(CONVERSATION_KIND);
            key.extend_from_slice(id.as_bytes());
        }
        StreamId::AiAgent(id) => {
            key.push(AI_AGENT_KIND);
            key.extend_from_slice(id.as_str().as_bytes());
            key.push(0);
        }
    }
}

/// Parses a stream key back, for error messages and verification.
pub(crate) fn parse_stream_key(bytes: &[u8]) -> Option<(StreamId, &[u8])> {
    match bytes.split_first()? {
        (&CONVERSATION_KIND, rest) if rest.len() >= 16 => {
            let (id, rest) = rest.split_at(16);
            let uuid = uuid::Uuid::from_slice(id).ok()?;
            Some((
                StreamId::Conversation(ConversationId::from_uuid(uuid)),
                rest,
            ))
        }
        (&AI_AGENT_KIND, rest) => {
            let end = rest.iter().position(|&b| b == 0)?;
            let id = std::str::from_utf8(&rest[..end]).ok()?;
            Some((
                StreamId::AiAgent(AiAgentId::new(id).ok()?),
                &rest[end + 1..],
            ))
        }
        _ => None,
    }
}

pub(crate) fn event_key(stream: &StreamId, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 18 + 8);
    key.push(STREAM_PREFIX);
    push_stream_key(&mut key, stream);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The key of a stream's high-water mark.
pub(crate) fn mark_key(stream: &StreamId) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 18);
    key.push(MARK_PREFIX);
    push_stream_key(&mut key, stream);
    key
}

/// The key remembering what `command` appended to `stream`.
pub(crate) fn command_key(stream: &StreamId, command: &CommandId) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 18 + 16);
    key.push(COMMAND_PREFIX);
    push_stream_key(&mut key, stream);
    key.extend_from_slice(command.as_bytes());
    key
}

/// A command's entry: the first seq it appended and how many events.
pub(crate) fn encode_command_entry(first_seq: u64, count: u32) -> [u8; 12] {
    let mut value = [0u8; 12];
    value[..8].copy_from_slice(&first_seq.to_be_bytes());
    value[8..].copy_from_slice(&count.to_be_bytes());
    value
}

pub(crate) fn decode_command_entry(value: &[u8]) -> Option<(u64, u32)> {
    if value.len() != 12 {
        return None;
    }
    let first = be_u64(value.get(..8)?)?;
    let count = u32::from_be_bytes(value.get(8..12)?.try_into().ok()?);
    // A damaged entry must not name an empty or overflowing range.
    (first >= 1 && count >= 1 && first.checked_add(u64::from(count)).is_some())
        .then_some((first, count))
}

/// Where a stream ends: its version (highest seq, 0 when empty) and the hash of its last
/// record ([`RecordHash::ZERO`] when empty). Stored as the stream's high-water mark in the same
/// batch as its records, so a stream that reads shorter than its mark lost acknowledged events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tip {
    pub(crate) version: u64,
    pub(crate) hash: RecordHash,
}

impl Tip {
    pub(crate) const EMPTY: Tip = Tip {
        version: 0,
        hash: RecordHash::ZERO,
    };

    /// `[format 1][crc32 BE over the rest][seq u64 BE][hash]`.
    pub(crate) fn encode(&self) -> [u8; MARK_BYTES] {
        let mut value = [0u8; MARK_BYTES];
        value[0] = MARK_FORMAT;
        value[5..13].copy_from_slice(&self.version.to_be_bytes());
        value[13..].copy_from_slice(self.hash.as_bytes());
        let crc = crc32fast::hash(&value[5..]);
        value[1..5].copy_from_slice(&crc.to_be_bytes());
        value
    }

    fn decode(value: &[u8], stream: &StreamId) -> Result<Tip, StoreError> {
        let damaged = |detail: &str| {
            StoreError::corrupted(
                LogLocation {
                    stream: Some(stream.clone()),
                    ..LogLocation::default()
                },
                Damage::Index,
                format!("the stream's high-water mark is damaged: {detail}"),
            )
        };
        if value.len() != MARK_BYTES || value[0] != MARK_FORMAT {
            return Err(damaged("wrong length or format"));
        }
        if crc32fast::hash(&value[5..]).to_be_bytes() != value[1..5] {
            return Err(damaged("checksum mismatch"));
        }
        Ok(Tip {
            version: be_u64(&value[5..13]).ok_or_else(|| damaged("no seq"))?,
            hash: RecordHash::from_slice(&value[13..]).ok_or_else(|| damaged("no hash"))?,
        })
    }
}

/// The stream's high-water mark, if it has one (streams written before marks existed have
/// none).
fn read_mark(log: &sled::Tree, stream: &StreamId) -> Result<Option<Tip>, StoreError> {
    match log.get(mark_key(stream))? {
        Some(value) => Ok(Some(Tip::decode(&value, stream)?)),
        None => Ok(None),
    }
}

/// Where `stream` ends: its mark, or for a stream without one its last record.
pub(crate) fn stream_tip(log: &sled::Tree, stream: &StreamId) -> Result<Tip, StoreError> {
    if let Some(tip) = read_mark(log, stream)? {
        return Ok(tip);
    }
    let mut prefix = vec![STREAM_PREFIX];
    push_stream_key(&mut prefix, stream);
    match log.scan_prefix(&prefix).next_back() {
        None => Ok(Tip::EMPTY),
        Some(entry) => {
            let (key, value) = entry?;
            let version = be_u64(&key[prefix.len()..]).ok_or_else(|| {
                StoreError::corrupted(
                    LogLocation {
                        stream: Some(stream.clone()),
                        ..LogLocation::default()
                    },
                    Damage::Index,
                    "malformed event key",
                )
            })?;
            Ok(Tip {
                version,
                hash: RecordHash::of(&value),
            })
        }
    }
}

pub(crate) fn be_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

fn location(stream: &StreamId, seq: u64) -> LogLocation {
    LogLocation::in_stream(stream, seq)
}

/// Opens `config`, retrying while another handle holds the directory's lock: sled releases it
/// from a background thread a moment after the last handle in this process is dropped.
fn open_waiting(
    config: &sled::Config,
    path: &Path,
    in_use_wait: Duration,
) -> Result<sled::Db, StoreError> {
    let deadline = Instant::now() + in_use_wait;
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(e) if is_lock_error(&e) => {
                if Instant::now() >= deadline {
                    return Err(StoreError::InUse {
                        path: path.to_path_buf(),
                    });
                }
                std::thread::sleep(IN_USE_POLL);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn is_lock_error(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

impl SledStore {
    /// Opens the log in `path`, creating the directory if needed.
    ///
    /// Fails with [`StoreError::InUse`] when another process (or another open store in this
    /// one) holds the directory for longer than [`StoreOptions::in_use_wait`]. A damaged
    /// directory is [`StoreError::Corrupted`], never a panic: sled 0.34.7 panics on some
    /// damage instead of returning an error, and `open` turns such a panic into
    /// `Corrupted { damage: Damage::Engine, .. }`. A log that sled recovers shorter than what
    /// the store acknowledged (sled stops at the first unreadable message of its own log) is
    /// `Corrupted { damage: Damage::Truncated, .. }`, found with the anchor (see
    /// `docs/storage-format.md`).
    pub fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<SledStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        contained("opening the directory", || {
            SledStore::open_contained(path, options)
        })
    }

    fn open_contained(path: PathBuf, options: StoreOptions) -> Result<SledStore, StoreError> {
        create_data_dir(&path, options.durability == Durability::Durable)?;
        remove_unfinished_snapshots(&path)?;
        if options.durability == Durability::Durable {
            sync_before_recovery(&path)?;
        }
        let config = sled::Config::new()
            .path(&path)
            .cache_capacity(options.cache_bytes)
            .flush_every_ms(Some(options.flush_every_ms))
            .mode(sled::Mode::HighThroughput);
        let db = open_waiting(&config, &path, options.in_use_wait)?;
        let log = db.open_tree("log")?;
        let migrated = index::migrate_legacy(&log)?;
        if migrated > 0 {
            db.flush()?;
            info!(path = %path.display(), migrated, "rewrote the global index into chunks");
        }
        let (head, last_recorded_at, head_point) = match log.scan_prefix([CHUNK_PREFIX]).next_back()
        {
            None => (0, RecordedAt(i64::MIN), None),
            Some(entry) => {
                let (key, value) = entry?;
                let (first, entries) = decode_chunk(&key, &value)?;
                let Some((stream, seq)) = entries.last() else {
                    return Err(StoreError::corrupted(
                        LogLocation::at_position(first),
                        Damage::Index,
                        "the last chunk of the global index is empty",
                    ));
                };
                let position = first + entries.len() as u64 - 1;
                let (record, bytes) = read_pointer_bytes(&log, position, stream, *seq)?;
                let point = AnchorPoint {
                    position,
                    stream: stream.clone(),
                    seq: *seq,
                    hash: RecordHash::of(&bytes),
                };
                // Format 1 was written before anchors existed.
                let anchored_era = bytes.first() != Some(&1);
                (position, record.recorded_at, Some((point, anchored_era)))
            }
        };
        let mut anchor = Anchor::open(&path, options.durability == Durability::Durable)?;
        let mut unanchored = None;
        match (anchor.last(), head_point) {
            (Some(point), _) => {
                if options.check_acknowledged_on_open {
                    check_anchor(&log, head, point)?;
                }
            }
            // Anchored while empty: nothing was anchored since (a crash came first).
            (None, _) if anchor.is_set() => {}
            (None, None) => anchor.set_empty()?,
            // Written before anchors existed: anchor what is there.
            (None, Some((point, false))) => {
                db.flush()?;
                anchor.write(point)?;
            }
            // Written with anchors, yet none is readable: what was acknowledged is unknown, so
            // a shorter log could not be told from a sound one.
            (None, Some((point, true))) => {
                let error = StoreError::corrupted(
                    LogLocation::record(&point.stream, point.seq, point.position),
                    Damage::Truncated,
                    format!(
                        "the anchor file {ANCHOR_FILE} is missing or unreadable, so the log (which \
                         ends here) cannot be checked against what the store acknowledged"
                    ),
                );
                if options.check_acknowledged_on_open {
                    return Err(error);
                }
                unanchored = Some(error);
            }
        }
        debug!(path = %path.display(), head, durability = %options.durability, "opened event store");
        let anchor = Arc::new(Mutex::new(anchor));
        let (live, _) = broadcast::channel(SUBSCRIBERS_CAPACITY);
        let sync = DiskSync::new(db.clone(), &path, options.durability)?;
        let journal = Journal::start(
            log.clone(),
            Start {
                head,
                last_recorded_at,
            },
            options.durability,
            options.queue_capacity,
            Syncing {
                step: Box::new(sync),
                timeout: options.sync_timeout,
                anchor: Some(Arc::clone(&anchor)),
                space: Some(FreeSpace {
                    dir: path.clone(),
                    reserve: options.min_free_bytes,
                }),
            },
            live.clone(),
        )?;
        Ok(SledStore {
            inner: Arc::new(Inner {
                path,
                engine: Some(Engine { db, log }),
                options,
                live,
                anchor,
                unanchored,
                journal,
            }),
        })
    }

    /// Opens the sled database in `path` directly, waiting up to `in_use_wait` for its lock as
    /// [`SledStore::open`] does. For inspection tools and for tests that damage records on
    /// purpose; everything else goes through a `SledStore`. The log lives in its tree `log`
    /// (see `docs/storage-format.md`).
    pub fn open_raw(path: &Path, in_use_wait: Duration) -> Result<sled::Db, StoreError> {
        contained("opening the directory", || {
            open_waiting(&sled::Config::new().path(path), path, in_use_wait)
        })
    }

    /// Checks that the log holds everything the store acknowledged: the record the anchor
    /// names (the last durable position when the store was last closed or synced) is present,
    /// at its position, with the hash it had. `open` runs this unless
    /// [`StoreOptions::check_acknowledged_on_open`] is off. A failure is
    /// `Corrupted { damage: Damage::Truncated | Damage::Chain, .. }`.
    pub fn check_acknowledged(&self) -> Result<(), StoreError> {
        if let Some(error) = &self.inner.unanchored {
            return Err(error.clone());
        }
        let point = lock(&self.inner.anchor).last().cloned();
        match point {
            Some(point) => contained("reading the log", || {
                check_anchor(&self.inner.engine().log, self.head_position(), &point)
            }),
            None => Ok(()),
        }
    }

    fn head_position(&self) -> u64 {
        self.inner.journal.head.load(Ordering::Acquire)
    }

    /// Waits for the journal's answer to an append, or for the store to fail: an append held
    /// by a storage engine that stopped responding gets the failure (its outcome unknown)
    /// instead of waiting for good. The journal answers every request it took, unless it
    /// stopped.
    async fn answer(
        &self,
        answer: oneshot::Receiver<crate::journal::AppendResult>,
    ) -> Result<Result<Appended, Conflict>, StoreError> {
        let poison = &self.inner.journal.poison;
        tokio::select! {
            biased;
            answered = answer => answered.unwrap_or(Err(StoreError::Closed)),
            failed = poison.failed() => Err(failed),
        }
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The durability this store was opened with.
    pub fn durability(&self) -> Durability {
        self.inner.options.durability
    }

    /// Runs sled's flush of everything written so far (what `ProcessCrash` promises): for a
    /// `Buffered` store, or before inspecting the directory. Appends need no call: each is as
    /// durable as the store's [`Durability`] promises when it is acknowledged.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.journal.poison.check()?;
        let applied = self.inner.journal.applied_tip();
        // Bounded like the journal's syncs: sled's flush can block for good after an I/O error.
        let db = self.inner.engine().db.clone();
        let mut flush = TimedSync::new(
            Box::new(move || db.flush().map(drop).map_err(StoreError::from)),
            self.inner.options.sync_timeout,
        )?;
        if let Err(error) = flush.sync() {
            self.inner.journal.poison.set(&error);
            return Err(error);
        }
        if self.inner.options.durability == Durability::Buffered {
            // In the other modes the journal moves the anchor after each sync.
            if let Some(point) = applied {
                lock(&self.inner.anchor).write(point)?;
            }
        }
        Ok(())
    }

    /// What the journal has done since the store was opened: appends, events, groups, syncs.
    pub fn stats(&self) -> StoreStats {
        self.inner.journal.counters.snapshot()
    }

    /// The stream's version: its highest seq, from its high-water mark (or, for a stream
    /// written before marks existed, its last record).
    pub fn version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.inner.journal.poison.check()?;
        contained("reading the log", || {
            stream_version(&self.inner.engine().log, stream)
        })
    }

    /// Reads part of a stream synchronously. See [`EventStore::read_stream`].
    pub fn read_stream_sync(
        &self,
        stream: &StreamId,
        range: SeqRange,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        contained("reading the log", || {
            self.read_stream_checked(stream, range)
        })
    }

    fn read_stream_checked(
        &self,
        stream: &StreamId,
        range: SeqRange,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.journal.poison.check()?;
        if range.from > range.to || range.max == 0 {
            return Ok(Vec::new());
        }
        let log = &self.inner.engine().log;
        let first = range.from.max(1);
        let (out, last_hash) = read_range(log, stream, range)?;
        if out.len() == range.max {
            return Ok(out);
        }
        // The read went as far as the range allows: the stream must not end before its mark.
        if let Some(mark) = read_mark(log, stream)? {
            match out.last() {
                Some(last) => check_tail(log, stream, mark, last.seq, last_hash, range.to)?,
                // Nothing at or after `first`: fine past the stream's end, not before it.
                None if first <= mark.version => {
                    check_tail(log, stream, mark, first - 1, None, range.to)?
                }
                None => {}
            }
        }
        Ok(out)
    }

    /// The global index from `from` on, in position order, without reading the records: the
    /// position, stream and seq of each event. Each chunk's checksum and the contiguity of
    /// positions are checked; the iterator stops at the first error, after yielding it. With
    /// [`SledStore::scan_streams`] it lets a reader take the records in one sequential pass
    /// and still know the global order.
    pub fn scan_index(
        &self,
        from: u64,
    ) -> impl Iterator<Item = Result<(u64, StreamId, u64), StoreError>> + '_ {
        Contained(self.index_pointers(from))
    }

    /// [`SledStore::scan_index`] without containing sled's panics, for readers that contain
    /// them around more work than this.
    fn index_pointers(
        &self,
        from: u64,
    ) -> impl Iterator<Item = Result<(u64, StreamId, u64), StoreError>> + '_ {
        let failed = self.inner.journal.poison.check().err();
        let from = from.max(1);
        let log = &self.inner.engine().log;
        // Start at the chunk holding `from`: the last one that begins at or before it.
        let start = match log.range(..=chunk_key(from)).next_back() {
            Some(Ok((key, _))) if key.first() == Some(&CHUNK_PREFIX) => {
                be_u64(&key[1..]).unwrap_or(from)
            }
            _ => from,
        };
        let mut expected_position = start;
        let chunks = log.range(chunk_key(start)..=chunk_key(u64::MAX));
        let pointers = chunks.flat_map(move |chunk| {
            let decoded = chunk.map_err(StoreError::from).and_then(|(key, value)| {
                let (first, entries) = decode_chunk(&key, &value)?;
                if first != expected_position {
                    return Err(StoreError::corrupted(
                        LogLocation::at_position(expected_position),
                        Damage::Gap,
                        format!("the global index skips to position {first}"),
                    ));
                }
                expected_position = first + entries.len() as u64;
                Ok((first, entries))
            });
            let items: Vec<Result<(u64, StreamId, u64), StoreError>> = match decoded {
                Ok((first, entries)) => (first..)
                    .zip(entries)
                    .filter(|(position, _)| *position >= from)
                    .map(|(position, (stream, seq))| Ok((position, stream, seq)))
                    .collect(),
                Err(error) => vec![Err(error)],
            };
            items
        });
        until_first_error(failed.map(Err).into_iter().chain(pointers))
    }

    /// Iterates over the whole log in global order from `from`, decoding and checking each
    /// record, and each record's link to the one before it in its stream when that one was read
    /// too. The iterator stops at the first error, after yielding it.
    pub fn iter_all(
        &self,
        from: u64,
    ) -> impl Iterator<Item = Result<RecordedEvent, StoreError>> + '_ {
        let log = &self.inner.engine().log;
        GlobalScan {
            // `GlobalScan` contains sled's panics around each step, the index's included.
            pointers: self.index_pointers(from),
            log,
            links: ChainLinks::default(),
            tails: None,
            done: false,
        }
    }

    /// Every stream record in key order (stream by stream, seq by seq), read from the stream
    /// key space without the global index, each checked for its checksum, its place and its
    /// stream's contiguity from seq 1. Verification compares it with the global order to find
    /// records the index does not reach. The iterator stops at the first error, after
    /// yielding it.
    pub fn scan_streams(&self) -> impl Iterator<Item = Result<RecordedEvent, StoreError>> + '_ {
        self.scan_stream_space(&[STREAM_PREFIX])
    }

    /// Every stream record in key order, as [`SledStore::scan_streams`] reads them but not yet
    /// decoded: the key is parsed (a malformed key is an error here), and each record knows the
    /// seq its stream should have reached. [`StoredRecord::decode`] runs every check
    /// `scan_streams` runs, in the same order, so a reader can decode on several threads and
    /// still report the same damage. The iterator stops at the first error, after yielding it.
    pub fn scan_stream_records(
        &self,
    ) -> impl Iterator<Item = Result<StoredRecord, StoreError>> + '_ {
        self.scan_stored(&[STREAM_PREFIX])
    }

    /// Undecoded records of every stream whose key starts with `prefix`, each stream's end
    /// checked against its high-water mark.
    fn scan_stored(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<StoredRecord, StoreError>> + '_ {
        let mut marks_prefix = prefix.to_vec();
        marks_prefix[0] = MARK_PREFIX;
        StreamScan {
            failed: self.inner.journal.poison.check().err(),
            log: self.inner.engine().log.clone(),
            records: self.inner.engine().log.scan_prefix(prefix),
            marks: self.inner.engine().log.scan_prefix(marks_prefix).peekable(),
            current: None,
            done: false,
        }
    }

    /// Checked records of every stream whose key starts with `prefix`.
    fn scan_stream_space(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<RecordedEvent, StoreError>> + '_ {
        until_first_error(self.scan_stored(prefix).map(|stored| stored?.decode()))
    }
}

/// A stream record as stored, not yet decoded: from [`SledStore::scan_stream_records`].
#[derive(Clone, Debug)]
pub struct StoredRecord {
    stream: StreamId,
    seq: u64,
    /// The seq the stream should have reached here: one more than the record before it in the
    /// same stream, or 1.
    expected_seq: u64,
    /// The stored bytes of the record before it in its stream (`None` at the stream's start),
    /// whose hash this one must carry. Hashed by `decode`, on the decoding thread.
    previous: Option<sled::IVec>,
    bytes: sled::IVec,
}

impl StoredRecord {
    /// The stream its key names.
    pub fn stream(&self) -> &StreamId {
        &self.stream
    }

    /// The seq its key names.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Decodes it and checks it as [`SledStore::scan_streams`] does: checksum, format and
    /// body, that it names the stream and seq of its key, that its stream has no gap before
    /// it, and that it carries the hash of the record before it.
    pub fn decode(&self) -> Result<RecordedEvent, StoreError> {
        let record = decode(&self.bytes, || location(&self.stream, self.seq))?;
        check_place(&record, &self.stream, self.seq, self.expected_seq)?;
        let previous = match &self.previous {
            Some(bytes) => RecordHash::of(bytes),
            None => RecordHash::ZERO,
        };
        check_link(&self.bytes, Some(&previous), || {
            LogLocation::record(&self.stream, self.seq, record.position)
        })?;
        Ok(record)
    }
}

/// Reads stream records in key order and checks, at the end of each stream, that it ends where
/// its high-water mark says. High-water marks are keyed like streams, so they are read in the
/// same order beside the records.
struct StreamScan {
    /// The store's failure, if it stopped: the scan yields it and nothing else.
    failed: Option<StoreError>,
    log: sled::Tree,
    records: sled::Iter,
    marks: std::iter::Peekable<sled::Iter>,
    /// The stream being read: its key, id, last seq and last record's bytes.
    current: Option<(Vec<u8>, StreamId, u64, sled::IVec)>,
    done: bool,
}

impl Iterator for StreamScan {
    type Item = Result<StoredRecord, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(failed) = self.failed.take() {
            self.done = true;
            return Some(Err(failed));
        }
        let item =
            contained("reading the log", || Ok(self.step())).unwrap_or_else(|e| Some(Err(e)));
        self.done = !matches!(item, Some(Ok(_)));
        item
    }
}

impl StreamScan {
    fn step(&mut self) -> Option<Result<StoredRecord, StoreError>> {
        let (key, bytes) = match self.records.next() {
            None => return self.end_stream(None).err().map(Err),
            Some(Err(error)) => return Some(Err(error.into())),
            Some(Ok(entry)) => entry,
        };
        let malformed = || {
            StoreError::corrupted(
                LogLocation::default(),
                Damage::Index,
                format!("malformed event key {:?}", &key[..]),
            )
        };
        let Some((stream, rest)) = parse_stream_key(&key[1..]) else {
            return Some(Err(malformed()));
        };
        let Some(seq) = be_u64(rest) else {
            return Some(Err(malformed()));
        };
        let stream_key = &key[1..key.len() - 8];
        let (expected_seq, previous) = match &mut self.current {
            // The same stream: move its end along, without copying its key again.
            Some((current, _, last_seq, last_bytes)) if current.as_slice() == stream_key => {
                let previous = std::mem::replace(last_bytes, bytes.clone());
                let expected = *last_seq + 1;
                *last_seq = seq;
                (expected, Some(previous))
            }
            _ => {
                if let Err(error) = self.end_stream(Some(stream_key)) {
                    return Some(Err(error));
                }
                self.current = Some((stream_key.to_vec(), stream.clone(), seq, bytes.clone()));
                (1, None)
            }
        };
        Some(Ok(StoredRecord {
            stream,
            seq,
            expected_seq,
            previous,
            bytes,
        }))
    }

    /// The current stream ended (the next one has key `next`, or the records ended): checks it
    /// against its mark, and that every mark before `next` belongs to a stream that has
    /// records.
    fn end_stream(&mut self, next: Option<&[u8]>) -> Result<(), StoreError> {
        let mut current_marked = false;
        loop {
            let (mark_key, mark_value) = match self.marks.peek() {
                None => break,
                Some(Err(error)) => return Err(error.clone().into()),
                Some(Ok(entry)) => entry.clone(),
            };
            let marked = &mark_key[1..];
            if next.is_some_and(|next| marked >= next) {
                break;
            }
            self.marks.next();
            let Some((stream, _)) = parse_stream_key(marked) else {
                return Err(StoreError::corrupted(
                    LogLocation::default(),
                    Damage::Index,
                    format!("malformed high-water mark key {:?}", &mark_key[..]),
                ));
            };
            let mark = Tip::decode(&mark_value, &stream)?;
            match &self.current {
                Some((key, stream, last_seq, last_bytes)) if key.as_slice() == marked => {
                    current_marked = true;
                    check_tail(
                        &self.log,
                        stream,
                        mark,
                        *last_seq,
                        Some(RecordHash::of(last_bytes)),
                        u64::MAX,
                    )?;
                }
                // A mark whose stream has no records at all.
                _ => check_tail(&self.log, &stream, mark, 0, None, u64::MAX)?,
            }
        }
        if let Some((_, stream, last_seq, last_bytes)) = &self.current {
            // Streams written before marks existed (format 1 records) have none.
            if !current_marked && record_previous_hash(last_bytes).is_some() {
                return Err(StoreError::corrupted(
                    LogLocation::in_stream(stream, *last_seq),
                    Damage::Truncated,
                    "the stream has no high-water mark: the log lost the batch that wrote it",
                ));
            }
        }
        Ok(())
    }
}

/// Checks a stream that reads up to `last_seq` (0: no records; `last_hash` the hash of that
/// record when it was read) against its high-water mark, read after the records, for a read
/// that asked for seqs up to `to`.
///
/// sled applies a batch under its write lock and every read step under its read lock, so a
/// mark read after the records is at least as new as they are: records beyond it are damage.
/// A mark ahead of them is damage only if the next record is still missing now; otherwise an
/// append landed between the scan and the mark's read.
fn check_tail(
    log: &sled::Tree,
    stream: &StreamId,
    mark: Tip,
    last_seq: u64,
    last_hash: Option<RecordHash>,
    to: u64,
) -> Result<(), StoreError> {
    if last_seq < mark.version
        && last_seq < to
        && log.get(event_key(stream, last_seq + 1))?.is_none()
    {
        return Err(StoreError::corrupted(
            LogLocation::in_stream(stream, last_seq + 1),
            Damage::Truncated,
            format!(
                "the stream's high-water mark is seq {}, but it ends at seq {last_seq}: \
                 acknowledged events are missing",
                mark.version
            ),
        ));
    }
    if last_seq > mark.version {
        return Err(StoreError::corrupted(
            LogLocation::in_stream(stream, mark.version + 1),
            Damage::Index,
            format!(
                "the stream goes on to seq {last_seq}, past its high-water mark (seq {})",
                mark.version
            ),
        ));
    }
    if last_seq == mark.version && last_hash.is_some_and(|hash| hash != mark.hash) {
        return Err(StoreError::corrupted(
            LogLocation::in_stream(stream, last_seq),
            Damage::Chain,
            "the stream's last record is not the one its high-water mark names: it was replaced",
        ));
    }
    Ok(())
}

/// Checks that a stored record carries `expected`, the hash of the record before it in its
/// stream, when that is known. Format 1 records carry none.
fn check_link(
    bytes: &[u8],
    expected: Option<&RecordHash>,
    at: impl Fn() -> LogLocation,
) -> Result<(), StoreError> {
    match (expected, record_previous_hash(bytes)) {
        (Some(expected), Some(carried)) if carried != *expected => Err(StoreError::corrupted(
            at(),
            Damage::Chain,
            "the record does not carry the hash of the record before it in its stream: a \
             record was replaced, removed, reordered or spliced in",
        )),
        _ => Ok(()),
    }
}

/// Reads the log in global order through the index, checking each record's link to the one
/// before it in its stream when that one was read too; at the end, each stream's last record
/// read is checked against the stream's high-water mark, so a replaced last record is found
/// too.
struct GlobalScan<'a, I> {
    pointers: I,
    log: &'a sled::Tree,
    links: ChainLinks,
    /// Once the index is read: the streams whose last record is still to be checked.
    tails: Option<std::vec::IntoIter<(StreamId, u64, RecordHash)>>,
    done: bool,
}

impl<I> Iterator for GlobalScan<'_, I>
where
    I: Iterator<Item = Result<(u64, StreamId, u64), StoreError>>,
{
    type Item = Result<RecordedEvent, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item =
            contained("reading the log", || Ok(self.step())).unwrap_or_else(|e| Some(Err(e)));
        if matches!(item, Some(Err(_))) {
            self.done = true;
        }
        item
    }
}

impl<I> GlobalScan<'_, I>
where
    I: Iterator<Item = Result<(u64, StreamId, u64), StoreError>>,
{
    fn step(&mut self) -> Option<Result<RecordedEvent, StoreError>> {
        if self.done {
            return None;
        }
        if self.tails.is_none() {
            match self.pointers.next() {
                Some(pointer) => {
                    let read = pointer.and_then(|(position, stream, seq)| {
                        let (record, bytes) = read_pointer_bytes(self.log, position, &stream, seq)?;
                        self.links.check(&stream, seq, &bytes, position)?;
                        Ok(record)
                    });
                    self.done = read.is_err();
                    return Some(read);
                }
                None => {
                    let tails: Vec<_> = self
                        .links
                        .last
                        .drain()
                        .map(|(stream, (seq, hash))| (stream, seq, hash))
                        .collect();
                    self.tails = Some(tails.into_iter());
                }
            }
        }
        let tails = self.tails.as_mut()?;
        for (stream, seq, hash) in tails.by_ref() {
            let checked = read_mark(self.log, &stream).and_then(|mark| match mark {
                // A mark ahead of what was read: appended since.
                Some(mark) if mark.version == seq => {
                    check_tail(self.log, &stream, mark, seq, Some(hash), u64::MAX)
                }
                _ => Ok(()),
            });
            if let Err(error) = checked {
                self.done = true;
                return Some(Err(error));
            }
        }
        self.done = true;
        None
    }
}

/// The hash of the last record read of each stream, for checking links while reading in
/// global order. Bounded: past `CHAIN_LINKS_MAX` streams it starts over, and links to records
/// it forgot go unchecked here (stream reads and the audit check every link).
#[derive(Default)]
struct ChainLinks {
    last: HashMap<StreamId, (u64, RecordHash)>,
}

const CHAIN_LINKS_MAX: usize = 1 << 20;

impl ChainLinks {
    fn check(
        &mut self,
        stream: &StreamId,
        seq: u64,
        bytes: &[u8],
        position: u64,
    ) -> Result<(), StoreError> {
        let expected = match self.last.get(stream) {
            _ if seq == 1 => Some(RecordHash::ZERO),
            Some((last_seq, hash)) if last_seq + 1 == seq => Some(*hash),
            _ => None,
        };
        check_link(bytes, expected.as_ref(), || {
            LogLocation::record(stream, seq, position)
        })?;
        let link = (seq, RecordHash::of(bytes));
        match self.last.get_mut(stream) {
            Some(last) => *last = link,
            None => {
                if self.last.len() >= CHAIN_LINKS_MAX {
                    self.last.clear();
                }
                self.last.insert(stream.clone(), link);
            }
        }
        Ok(())
    }
}

/// Reads `range` of a stream with every check a record gets in stream order: checksum and
/// body, its place, no gap, and its link to the record before it (known from seq 1, or once
/// one record is read). Returns the records and the hash of the last one's stored bytes.
fn read_range(
    log: &sled::Tree,
    stream: &StreamId,
    range: SeqRange,
) -> Result<(Vec<RecordedEvent>, Option<RecordHash>), StoreError> {
    let first = range.from.max(1);
    let mut out = Vec::new();
    let mut previous = (first == 1).then_some(RecordHash::ZERO);
    let keys = event_key(stream, first)..=event_key(stream, range.to);
    for (expected_seq, entry) in (first..=u64::MAX).zip(log.range(keys)) {
        let (key, value) = entry?;
        let seq = be_u64(&key[key.len() - 8..]).unwrap_or(0);
        let record = decode(&value, || location(stream, seq))?;
        check_place(&record, stream, seq, expected_seq)?;
        check_link(&value, previous.as_ref(), || {
            LogLocation::record(stream, seq, record.position)
        })?;
        previous = Some(RecordHash::of(&value));
        out.push(record);
        if out.len() == range.max {
            break;
        }
    }
    let last_hash = previous.filter(|_| !out.is_empty());
    Ok((out, last_hash))
}

/// What `command` appended to `stream`, read back from the log, or `None`.
pub(crate) fn read_command(
    log: &sled::Tree,
    stream: &StreamId,
    command: &CommandId,
) -> Result<Option<Vec<RecordedEvent>>, StoreError> {
    let Some(entry) = log.get(command_key(stream, command))? else {
        return Ok(None);
    };
    let (first, count) = decode_command_entry(&entry).ok_or_else(|| {
        StoreError::corrupted(
            LogLocation {
                stream: Some(stream.clone()),
                ..LogLocation::default()
            },
            Damage::Index,
            format!("the entry of {command:?} is malformed"),
        )
    })?;
    let range = SeqRange {
        from: first,
        to: first + u64::from(count) - 1,
        max: usize::MAX,
    };
    let (records, _) = read_range(log, stream, range)?;
    if records.len() != count as usize {
        return Err(StoreError::corrupted(
            LogLocation::in_stream(stream, first + records.len() as u64),
            Damage::Truncated,
            format!("{command:?} appended {count} events from seq {first}; some are missing"),
        ));
    }
    Ok(Some(records))
}

/// The stream's version in `log`: its highest seq, from its high-water mark.
pub(crate) fn stream_version(log: &sled::Tree, stream: &StreamId) -> Result<u64, StoreError> {
    Ok(stream_tip(log, stream)?.version)
}

/// Creates the data directory and any missing parents. With `durable`, it then `fsync`s the
/// directory above each one it created, and the data directory's own parent in any case (an
/// earlier open may have created it and crashed before its sync): a new directory's entry is
/// in its parent, and without that sync a power cut can take the whole store away, however
/// well its files were synced.
fn create_data_dir(path: &Path, durable: bool) -> Result<(), StoreError> {
    let mut missing = Vec::new();
    let mut probe = Some(path);
    while let Some(dir) = probe.filter(|dir| !dir.as_os_str().is_empty() && !dir.exists()) {
        missing.push(dir.to_path_buf());
        probe = dir.parent();
    }
    std::fs::create_dir_all(path)?;
    if durable {
        let mut parents: Vec<PathBuf> = missing.iter().filter_map(|dir| parent_dir(dir)).collect();
        parents.extend(parent_dir(path));
        parents.dedup();
        for parent in parents {
            std::fs::File::open(parent)?.sync_all()?;
        }
    }
    Ok(())
}

/// Makes what a crashed process left in the page cache durable before sled recovers from it:
/// every blob file and `blobs/`, then `db`, then the data directory.
///
/// sled 0.34.7 recovers from what it reads, which after a process crash includes log
/// messages written but never synced, and at every open writes a snapshot of that state
/// (`snap.<lsn>`, synced, its rename not). Once the store has synced the directory, the
/// snapshot is durable while the log tail it describes may not be; a power cut then leaves a
/// snapshot ahead of the log. Syncing first makes the two agree, and blobs go before `db`
/// for the reason [`DiskSync`] gives. On a directory that closed cleanly every one of these
/// syncs finds nothing to write.
fn sync_before_recovery(path: &Path) -> Result<(), StoreError> {
    let db = path.join("db");
    if !db.exists() {
        return Ok(());
    }
    let blobs = path.join("blobs");
    match std::fs::read_dir(&blobs) {
        Ok(entries) => {
            for entry in entries {
                std::fs::File::open(entry?.path())?.sync_data()?;
            }
            std::fs::File::open(&blobs)?.sync_all()?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    std::fs::File::open(&db)?.sync_all()?;
    std::fs::File::open(path)?.sync_all()?;
    Ok(())
}

/// The directory holding `dir`'s entry: `.` for a relative path of one component.
fn parent_dir(dir: &Path) -> Option<PathBuf> {
    match dir.parent() {
        Some(parent) if parent.as_os_str().is_empty() => Some(PathBuf::from(".")),
        Some(parent) => Some(parent.to_path_buf()),
        None => None,
    }
}

/// Removes `snap.<lsn>.generating` files: snapshots sled began and never finished (a crash or
/// an I/O error while writing one). sled 0.34.7 does not skip them when it looks for its
/// latest snapshot, and then fails every open of an intact log. A snapshot only shortens
/// recovery; sled writes a new one.
fn remove_unfinished_snapshots(dir: &Path) -> Result<(), StoreError> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            warn!(file = %name, "removing a snapshot sled did not finish");
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Runs `f`, turning a panic inside it into [`StoreError::Corrupted`] with
/// [`Damage::Engine`]: sled 0.34.7 panics on some damaged directories instead of returning an
/// error, while opening them and also while reading them later (a missing blob file, for one).
pub(crate) fn contained<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|message| (*message).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        Err(StoreError::corrupted(
            LogLocation::default(),
            Damage::Engine,
            format!("the storage engine panicked while {what}: {message}"),
        ))
    })
}

/// Checks that the log holds the record the anchor names, as it was acknowledged.
fn check_anchor(log: &sled::Tree, head: u64, point: &AnchorPoint) -> Result<(), StoreError> {
    let at = || LogLocation::record(&point.stream, point.seq, point.position);
    if head < point.position {
        return Err(StoreError::corrupted(
            at(),
            Damage::Truncated,
            format!(
                "the store acknowledged events up to position {}, but the log ends at position \
                 {head}: the storage engine lost acknowledged events",
                point.position
            ),
        ));
    }
    let Some(bytes) = log.get(event_key(&point.stream, point.seq))? else {
        return Err(StoreError::corrupted(
            at(),
            Damage::Truncated,
            "the last acknowledged record is missing: the storage engine lost acknowledged events",
        ));
    };
    let record = decode(&bytes, at)?;
    if record.position != point.position || RecordHash::of(&bytes) != point.hash {
        return Err(StoreError::corrupted(
            at(),
            Damage::Chain,
            "the record at the last acknowledged position is not the one acknowledged there",
        ));
    }
    Ok(())
}

/// An iterator over sled whose panics become an error item (see [`contained`]).
struct Contained<I>(I);

impl<T, I: Iterator<Item = Result<T, StoreError>>> Iterator for Contained<I> {
    type Item = Result<T, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        contained("reading the log", || Ok(self.0.next())).unwrap_or_else(|e| Some(Err(e)))
    }
}

/// Yields the items of `results` up to and including the first error, then stops: after
/// damage, a reader must not go on as if the log continued.
fn until_first_error<T>(
    results: impl Iterator<Item = Result<T, StoreError>>,
) -> impl Iterator<Item = Result<T, StoreError>> {
    let mut failed = false;
    results.map_while(move |result| {
        if failed {
            return None;
        }
        failed = result.is_err();
        Some(result)
    })
}

/// Checks that a record decoded from a stream key belongs there and follows its predecessor.
fn check_place(
    record: &RecordedEvent,
    stream: &StreamId,
    key_seq: u64,
    expected_seq: u64,
) -> Result<(), StoreError> {
    let at = || LogLocation::record(stream, key_seq, record.position);
    if record.stream != *stream || record.seq != key_seq {
        return Err(StoreError::corrupted(
            at(),
            Damage::Misplaced,
            format!(
                "record claims to be {} seq {}: it was moved from another place",
                record.stream, record.seq
            ),
        ));
    }
    if key_seq != expected_seq {
        return Err(StoreError::corrupted(
            at(),
            Damage::Gap,
            format!("stream skips from seq {} to {key_seq}", expected_seq - 1),
        ));
    }
    Ok(())
}

/// Follows a global index entry to its record and checks the two agree; returns the record and
/// its stored bytes.
fn read_pointer_bytes(
    log: &sled::Tree,
    position: u64,
    stream: &StreamId,
    seq: u64,
) -> Result<(RecordedEvent, sled::IVec), StoreError> {
    let at = || LogLocation::record(stream, seq, position);
    let value = log.get(event_key(stream, seq))?.ok_or_else(|| {
        StoreError::corrupted(
            at(),
            Damage::Index,
            "the global index points here, but the record is missing",
        )
    })?;
    let record = decode(&value, at)?;
    if record.position != position || record.stream != *stream || record.seq != seq {
        return Err(StoreError::corrupted(
            at(),
            Damage::Misplaced,
            format!(
                "record claims position {} ({} seq {}), the index says position {position}",
                record.position, record.stream, record.seq
            ),
        ));
    }
    Ok((record, value))
}

#[async_trait]
impl EventStore for SledStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<Event>,
    ) -> Result<Result<Appended, Conflict>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.inner.journal.submit(AppendRequest {
            stream: stream.clone(),
            expected,
            command: None,
            events,
            reply,
        })?;
        self.answer(answer).await
    }

    async fn append_once(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        command: CommandId,
        events: Vec<Event>,
    ) -> Result<Result<Appended, Conflict>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.inner.journal.submit(AppendRequest {
            stream: stream.clone(),
            expected,
            command: Some(command),
            events,
            reply,
        })?;
        self.answer(answer).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        range: SeqRange,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_sync(stream, range)
    }

    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.iter_all(from).take(max).collect()
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.version(stream)
    }

    async fn read_ai_agents(&self) -> Result<Vec<RecordedEvent>, StoreError> {
        self.scan_stream_space(&[STREAM_PREFIX, AI_AGENT_KIND])
            .collect()
    }

    fn head(&self) -> u64 {
        self.head_position()
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<RecordedEvent>> {
        self.inner.live.subscribe()
    }

    fn stats(&self) -> StoreStats {
        SledStore::stats(self)
    }
}
