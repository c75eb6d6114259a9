//! [`SledStore`]: the event log on sled 0.34, and its [`EventStore`] implementation: opening
//! (sled's panics contained, the index migrated, the anchor checked), reads, and appends handed
//! to the journal.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use handover_core::{CommandId, Event, StreamId};
use handover_store::{
    encode_events, Appended, Conflict, Damage, Durability, EventStore, ExpectedVersion,
    LogLocation, RecordHash, RecordedAt, RecordedEvent, SeqRange, StoreError, StoreStats,
};
use tokio::sync::{broadcast, oneshot};
use tracing::{debug, info, warn};

use crate::anchor::{check_anchor, Anchor, AnchorPoint, ANCHOR_FILE};
use crate::checked::{
    check_tail, read_on_by_key, read_pointer_bytes, read_range, stream_version, ChainLinks,
    GlobalScan, StoredRecord, StreamScan,
};
use crate::engine::{
    contained, create_data_dir, lock, open_waiting, remove_unfinished_snapshots,
    sync_before_recovery, until_first_error, Contained, Engine, OrStore, CLOSE_WAIT,
};
use crate::index::{self, chunk_key, decode_chunk, CHUNK_PREFIX};
use crate::journal::{
    AppendRequest, AppendResult, DiskSync, FreeSpace, Journal, Start, SyncStep, Syncing, TimedSync,
};
use crate::keys::{be_u64, AI_AGENT_KIND, HUMAN_KIND, MARK_PREFIX, STREAM_PREFIX};
use crate::tip::{replay_marks, stream_tip, Marks};
use crate::SledOptions;

pub(crate) const SUBSCRIBERS_CAPACITY: usize = 4096;

/// The event log on a sled database in one directory.
///
/// ```
/// # tokio_test_block_on(async {
/// use handover_core::{AiAgentEvent, AiAgentId, AgentName, Event, StreamId};
/// use handover_sled::{SledOptions, SledStore};
/// use handover_store::{EventStore, ExpectedVersion, SeqRange};
///
/// let dir = tempfile::tempdir().unwrap();
/// let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
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

pub(crate) struct Inner {
    path: PathBuf,
    /// sled's handles; `None` only while the store is dropped (see `Engine::close`).
    engine: Option<Engine>,
    options: SledOptions,
    live: broadcast::Sender<Arc<RecordedEvent>>,
    /// The last durable position, outside sled.
    anchor: Arc<Mutex<Anchor>>,
    /// Why the log cannot be checked against its anchor, found at open.
    unanchored: Option<StoreError>,
    /// The streams' tails written since the last checkpoint, shared with the journal's writer.
    marks: Arc<Marks>,
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

impl SledStore {
    /// Opens the log in `path`, creating the directory if needed.
    ///
    /// Fails with [`StoreError::InUse`] when another process (or another open store in this
    /// one) holds the directory for longer than [`SledOptions::in_use_wait`]. A damaged
    /// directory is [`StoreError::Corrupted`], never a panic: sled 0.34.7 panics on some
    /// damage instead of returning an error, and `open` turns such a panic into
    /// `Corrupted { damage: Damage::Engine, .. }`. A log that sled recovers shorter than what
    /// the store acknowledged (sled stops at the first unreadable message of its own log) is
    /// `Corrupted { damage: Damage::Truncated, .. }`, found with the anchor (see
    /// `docs/storage-format.md`).
    pub fn open(path: impl AsRef<Path>, options: SledOptions) -> Result<SledStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        contained("opening the directory", || {
            SledStore::open_contained(path, options)
        })
    }

    fn open_contained(path: PathBuf, options: SledOptions) -> Result<SledStore, StoreError> {
        let durable = options.durability == Durability::Durable;
        create_data_dir(&path, durable)?;
        remove_unfinished_snapshots(&path)?;
        if durable {
            sync_before_recovery(&path)?;
        }
        let config = sled::Config::new()
            .path(&path)
            .cache_capacity(options.cache_bytes)
            .flush_every_ms((options.flush_every_ms > 0).then_some(options.flush_every_ms))
            .mode(sled::Mode::HighThroughput);
        let db = open_waiting(&config, &path, options.in_use_wait)?;
        let log = db.open_tree("log").or_store()?;
        let migrated = index::migrate_legacy(&log)?;
        if migrated > 0 {
            db.flush().or_store()?;
            info!(path = %path.display(), migrated, "rewrote the global index into chunks");
        }
        // Before anything reads a mark: the tails of the chunks after the last checkpoint.
        let marks = Arc::new(Marks::default());
        let (replayed, checkpoint) =
            replay_marks(&log, &marks, !options.check_acknowledged_on_open)?;
        debug!(path = %path.display(), replayed, "high-water marks replayed from the index");
        let (head, last_recorded_at, head_point) = match log.scan_prefix([CHUNK_PREFIX]).next_back()
        {
            None => (0, RecordedAt(i64::MIN), None),
            Some(entry) => {
                let (key, value) = entry.or_store()?;
                let chunk = decode_chunk(&key, &value)?;
                let (first, entries) = (chunk.first, chunk.entries);
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
                db.flush().or_store()?;
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
                time_source: match options.fixed_time {
                    Some(fixed) => Some(handover_store::TimeSource::new(move || fixed)),
                    None => options.time_source.clone(),
                },
                checkpoint,
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
            Arc::clone(&marks),
        )?;
        Ok(SledStore {
            inner: Arc::new(Inner {
                path,
                engine: Some(Engine { db, log }),
                options,
                live,
                anchor,
                unanchored,
                marks,
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
    /// [`SledOptions::check_acknowledged_on_open`] is off. A failure is
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
        answer: oneshot::Receiver<AppendResult>,
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
            Box::new(move || db.flush().map(drop).or_store()),
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
            stream_version(&self.inner.engine().log, &self.inner.marks, stream)
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
        let (mut out, mut last_hash) = read_range(log, stream, range)?;
        if out.len() == range.max {
            return Ok(out);
        }
        // The read went as far as the range allows: the stream must not end before its mark.
        // Read after the records, so it is at least as new as they are. A stream of format 2
        // records without a mark is damage (`stream_tip` says so); one written before marks
        // existed is checked against its last record.
        let marks = &self.inner.marks;
        let mark = stream_tip(log, marks, stream)?;
        let last_seq = out.last().map_or(first - 1, |last| last.seq);
        if last_seq < mark.version && last_seq < range.to {
            // Records the scan did not reach but a lookup finds: read them on, checked.
            let previous = match out.is_empty() {
                true => (first == 1).then_some(RecordHash::ZERO),
                false => last_hash,
            };
            let (more, hash) = read_on_by_key(
                log,
                stream,
                last_seq,
                mark.version.min(range.to),
                previous,
                range.max - out.len(),
            )?;
            if !more.is_empty() {
                out.extend(more);
                last_hash = hash;
                if out.len() == range.max {
                    return Ok(out);
                }
            }
        }
        match out.last() {
            Some(last) => check_tail(log, marks, stream, mark, last.seq, last_hash, range.to)?,
            // Nothing at or after `first`: fine past the stream's end, not before it.
            None if first <= mark.version => {
                check_tail(log, marks, stream, mark, first - 1, None, range.to)?
            }
            None => {}
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
        // Read before the index: the index must reach at least this far.
        let head = self.head_position();
        let log = &self.inner.engine().log;
        // Start at the chunk holding `from`: the last one that begins at or before it.
        let start = match log.range(..=chunk_key(from)).next_back() {
            Some(Ok((key, _))) if key.first() == Some(&CHUNK_PREFIX) => {
                be_u64(&key[1..]).unwrap_or(from)
            }
            _ => from,
        };
        let reached = Arc::new(AtomicU64::new(start));
        let mut expected_position = start;
        let chunks = log.range(chunk_key(start)..=chunk_key(u64::MAX));
        let reached_by_chunks = Arc::clone(&reached);
        let pointers = chunks.flat_map(move |chunk| {
            let decoded = chunk.or_store().and_then(|(key, value)| {
                let chunk = decode_chunk(&key, &value)?;
                let (first, entries) = (chunk.first, chunk.entries);
                if first != expected_position {
                    return Err(StoreError::corrupted(
                        LogLocation::at_position(expected_position),
                        Damage::Gap,
                        format!("the global index skips to position {first}"),
                    ));
                }
                expected_position = first + entries.len() as u64;
                reached_by_chunks.store(expected_position, Ordering::Relaxed);
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
        // sled 0.34.7 can end an iteration early, without an error, over a damaged page of
        // its own: an index that stops before the head the store knows is damage, not the end
        // of the log.
        let ended = std::iter::once_with(move || {
            let reached = reached.load(Ordering::Relaxed);
            (reached <= head && from <= head).then(|| {
                Err(StoreError::corrupted(
                    LogLocation::at_position(reached),
                    Damage::Index,
                    format!(
                        "the global index ends before position {reached}, but the log goes on \
                         to position {head}"
                    ),
                ))
            })
        })
        .flatten();
        until_first_error(failed.map(Err).into_iter().chain(pointers).chain(ended))
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
            marks: &self.inner.marks,
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
            pending: Arc::clone(&self.inner.marks),
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
            events: encode_events(events)?,
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
            events: encode_events(events)?,
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

    async fn read_humans(&self) -> Result<Vec<RecordedEvent>, StoreError> {
        self.scan_stream_space(&[STREAM_PREFIX, HUMAN_KIND])
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
