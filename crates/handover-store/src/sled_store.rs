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

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use handover_core::{AiAgentId, ConversationId, Event, StreamId};
use tokio::sync::{broadcast, oneshot};
use tracing::{debug, info};

use crate::index::{self, chunk_key, decode_chunk, CHUNK_PREFIX};
use crate::journal::{AppendRequest, DiskSync, Journal, Start, StoreStats};
use crate::record::{decode, RecordedAt, RecordedEvent};
use crate::{
    Appended, Conflict, Damage, EventStore, ExpectedVersion, LogLocation, SeqRange, StoreError,
};

const STREAM_PREFIX: u8 = b's';
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
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Durable,
            cache_bytes: 64 * 1024 * 1024,
            flush_every_ms: 200,
            in_use_wait: Duration::from_secs(1),
            queue_capacity: 16 * 1024,
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
    db: sled::Db,
    log: sled::Tree,
    options: StoreOptions,
    live: broadcast::Sender<Arc<RecordedEvent>>,
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
    /// one) holds the directory for longer than [`StoreOptions::in_use_wait`].
    pub fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<SledStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        std::fs::create_dir_all(&path)?;
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
        let (head, last_recorded_at) = match log.scan_prefix([CHUNK_PREFIX]).next_back() {
            None => (0, RecordedAt(i64::MIN)),
            Some(entry) => {
                let (key, value) = entry?;
                let (first, entries) = decode_chunk(&key, &value)?;
                let (stream, seq) = entries.last().expect("chunks are never empty");
                let position = first + entries.len() as u64 - 1;
                let record = read_pointer(&log, position, stream, *seq)?;
                (position, record.recorded_at)
            }
        };
        debug!(path = %path.display(), head, durability = %options.durability, "opened event store");
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
            Box::new(sync),
            live.clone(),
        )?;
        Ok(SledStore {
            inner: Arc::new(Inner {
                path,
                db,
                log,
                options,
                live,
                journal,
            }),
        })
    }

    /// Opens the sled database in `path` directly, waiting up to `in_use_wait` for its lock as
    /// [`SledStore::open`] does. For inspection tools and for tests that damage records on
    /// purpose; everything else goes through a `SledStore`. The log lives in its tree `log`
    /// (see `docs/storage-format.md`).
    pub fn open_raw(path: &Path, in_use_wait: Duration) -> Result<sled::Db, StoreError> {
        open_waiting(&sled::Config::new().path(path), path, in_use_wait)
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
        self.inner.db.flush()?;
        Ok(())
    }

    /// What the journal has done since the store was opened: appends, events, groups, syncs.
    pub fn stats(&self) -> StoreStats {
        self.inner.journal.counters.snapshot()
    }

    /// The stream's version: its highest seq, read from the last key of its range.
    pub fn version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        stream_version(&self.inner.log, stream)
    }

    /// Reads part of a stream synchronously. See [`EventStore::read_stream`].
    pub fn read_stream_sync(
        &self,
        stream: &StreamId,
        range: SeqRange,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if range.from > range.to || range.max == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let from = event_key(stream, range.from.max(1));
        let to = event_key(stream, range.to);
        for (expected_seq, entry) in (range.from.max(1)..).zip(self.inner.log.range(from..=to)) {
            let (key, value) = entry?;
            let seq = be_u64(&key[key.len() - 8..]).unwrap_or(0);
            let record = decode(&value, || location(stream, seq))?;
            check_place(&record, stream, seq, expected_seq)?;
            out.push(record);
            if out.len() == range.max {
                break;
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
        let from = from.max(1);
        let log = &self.inner.log;
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
        until_first_error(pointers)
    }

    /// Iterates over the whole log in global order from `from`, decoding and checking each
    /// record. The iterator stops at the first error, after yielding it.
    pub fn iter_all(
        &self,
        from: u64,
    ) -> impl Iterator<Item = Result<RecordedEvent, StoreError>> + '_ {
        let log = &self.inner.log;
        until_first_error(self.scan_index(from).map(move |pointer| {
            let (position, stream, seq) = pointer?;
            read_pointer(log, position, &stream, seq)
        }))
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

    /// Undecoded records of every stream whose key starts with `prefix`.
    fn scan_stored(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<StoredRecord, StoreError>> + '_ {
        let mut previous: Option<(StreamId, u64)> = None;
        until_first_error(self.inner.log.scan_prefix(prefix).map(move |entry| {
            let (key, bytes) = entry?;
            let malformed = || {
                StoreError::corrupted(
                    LogLocation::default(),
                    Damage::Index,
                    format!("malformed event key {:?}", &key[..]),
                )
            };
            let (stream, rest) = parse_stream_key(&key[1..]).ok_or_else(malformed)?;
            let seq = be_u64(rest).ok_or_else(malformed)?;
            let expected_seq = match &previous {
                Some((last, last_seq)) if *last == stream => last_seq + 1,
                _ => 1,
            };
            previous = Some((stream.clone(), seq));
            Ok(StoredRecord {
                stream,
                seq,
                expected_seq,
                bytes,
            })
        }))
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
    /// body, that it names the stream and seq of its key, and that its stream has no gap
    /// before it.
    pub fn decode(&self) -> Result<RecordedEvent, StoreError> {
        let record = decode(&self.bytes, || location(&self.stream, self.seq))?;
        check_place(&record, &self.stream, self.seq, self.expected_seq)?;
        Ok(record)
    }
}

/// The stream's version in `log`: its highest seq, read from the last key of its range.
pub(crate) fn stream_version(log: &sled::Tree, stream: &StreamId) -> Result<u64, StoreError> {
    let mut prefix = vec![STREAM_PREFIX];
    push_stream_key(&mut prefix, stream);
    match log.scan_prefix(&prefix).next_back() {
        None => Ok(0),
        Some(entry) => {
            let (key, _) = entry?;
            be_u64(&key[prefix.len()..]).ok_or_else(|| {
                StoreError::corrupted(
                    LogLocation {
                        stream: Some(stream.clone()),
                        ..LogLocation::default()
                    },
                    Damage::Index,
                    "malformed event key",
                )
            })
        }
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

/// Follows a global index entry to its record and checks the two agree.
fn read_pointer(
    log: &sled::Tree,
    position: u64,
    stream: &StreamId,
    seq: u64,
) -> Result<RecordedEvent, StoreError> {
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
    Ok(record)
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
            events,
            reply,
        })?;
        // The journal answers every request it took, unless it stopped.
        answer.await.unwrap_or(Err(StoreError::Closed))
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
        self.inner.journal.head.load(Ordering::Acquire)
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<RecordedEvent>> {
        self.inner.live.subscribe()
    }

    fn stats(&self) -> StoreStats {
        SledStore::stats(self)
    }
}
