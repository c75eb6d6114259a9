//! The append-only event log of Handover, independent of any storage engine: the
//! [`EventStore`] trait every backend implements, the record format they store, and the types
//! of their answers and errors. The sled backend is the crate `handover-sled`.
//!
//! A store holds streams (one per conversation, one per AI agent). Each stream is a sequence of
//! events numbered from 1 (`seq`); every event also has a global `position`, strictly
//! increasing across the whole log, so the log can be replayed in the order it was written.
//!
//! Architecture invariant: the store knows the shape of events only to encode them. It holds no
//! rule of the domain; it enforces only what a log must: expected versions on append,
//! contiguity, checksums.

mod durability;
mod error;
mod record;
mod stats;

use std::sync::Arc;

use async_trait::async_trait;
pub use durability::Durability;
pub use error::{Conflict, Damage, LogLocation, StoreError};
use handover_core::{CommandId, Event, StreamId, TenantId};
pub use record::{
    decode_record, decode_record_at, encode_event, encode_events, encode_record,
    encode_record_with_event, record_previous_hash, EncodedEvent, RecordHash, RecordedAt,
    RecordedEvent, TimeSource, RECORD_BYTES_MAX, RECORD_FORMAT_VERSION,
};
pub use stats::StoreStats;
use tokio::sync::broadcast;

/// What the appender believes the stream's version (its last `seq`, 0 when empty) to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpectedVersion {
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last `seq` must be exactly this.
    Exact(u64),
    /// Append whatever the version (used only where the caller is the stream's single writer
    /// and holds no version, e.g. tooling).
    Any,
}

impl ExpectedVersion {
    /// Whether a stream at `actual` satisfies this expectation.
    pub fn admits(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => v == actual,
            ExpectedVersion::Any => true,
        }
    }

    /// The conflict to report when a stream at `actual` does not satisfy this expectation:
    /// its expected version is the one named, 0 for "no stream yet".
    ///
    /// ```
    /// use handover_store::ExpectedVersion;
    ///
    /// assert_eq!(ExpectedVersion::Exact(3).conflict(4).expected, 3);
    /// assert_eq!(ExpectedVersion::NoStream.conflict(4).expected, 0);
    /// ```
    pub fn conflict(self, actual: u64) -> Conflict {
        Conflict {
            expected: match self {
                ExpectedVersion::Exact(v) => v,
                ExpectedVersion::NoStream | ExpectedVersion::Any => 0,
            },
            actual,
        }
    }
}

/// Which part of a stream to read: `seq` from `from` to `to` inclusive, at most `max` events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeqRange {
    /// First seq to read (1 for the whole stream).
    pub from: u64,
    /// Last seq to read, inclusive.
    pub to: u64,
    /// Most events to return.
    pub max: usize,
}

impl SeqRange {
    /// The whole stream.
    pub const ALL: SeqRange = SeqRange {
        from: 1,
        to: u64::MAX,
        max: usize::MAX,
    };

    /// From `from` to the end.
    pub const fn from(from: u64) -> SeqRange {
        SeqRange {
            from,
            to: u64::MAX,
            max: usize::MAX,
        }
    }
}

/// The outcome of a successful append: the events as recorded, with their positions.
pub type Appended = Vec<Arc<RecordedEvent>>;

/// An append-only, multi-stream event log.
///
/// Every backend honours the same contract:
/// - `append` is atomic: all of the events or none; it checks the expected version and returns
///   a [`Conflict`] (not an error) when another writer got there first; it returns only after
///   the events are as durable as the store's [`Durability`] promises.
/// - reads return events in order, each stream contiguous from seq 1, and report damage as
///   [`StoreError::Corrupted`] naming the stream and seq, never as a shorter log.
/// - `subscribe` delivers every durable event once, in global position order.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` if its version admits `expected`.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<Event>,
    ) -> Result<Result<Appended, Conflict>, StoreError>;

    /// Appends `events` to `stream` once for `command`: if this store already recorded an
    /// append of `command` on `stream`, returns the events recorded then, once they are
    /// durable, and writes nothing (whatever `expected` says); otherwise behaves as
    /// [`EventStore::append`] and remembers `command` with the events, atomically. A caller
    /// that lost the answer to an append (a timeout, an I/O error whose outcome is unknown)
    /// retries with the same `command` and cannot record it twice.
    async fn append_once(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        command: CommandId,
        events: Vec<Event>,
    ) -> Result<Result<Appended, Conflict>, StoreError>;

    /// What `command` appended to `stream`, once durable, or `None` if the store has no
    /// record of it.
    async fn command_outcome(
        &self,
        stream: &StreamId,
        command: CommandId,
    ) -> Result<Option<Appended>, StoreError> {
        let found = self
            .append_once(stream, ExpectedVersion::Any, command, Vec::new())
            .await?
            .unwrap_or_default();
        Ok((!found.is_empty()).then_some(found))
    }

    /// Reads part of one stream, in seq order. An unknown stream reads as empty.
    async fn read_stream(
        &self,
        stream: &StreamId,
        range: SeqRange,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Reads the whole log from global `position` on (1 for the start), at most `max` events.
    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The stream's version: its highest seq, 0 when it has no events.
    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError>;

    /// Every event of every AI-agent stream, stream by stream: enough to build the roster
    /// without reading conversations.
    async fn read_ai_agents(&self) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Every event of every human stream, stream by stream: enough to build the directory of
    /// humans without reading conversations. The default reads the whole log; a backend that
    /// keys streams by kind answers from the human streams alone.
    async fn read_humans(&self) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut humans = Vec::new();
        let mut from = 1;
        loop {
            let page = self.read_all(from, 4096).await?;
            let Some(last) = page.last() else {
                break;
            };
            from = last.position + 1;
            humans.extend(
                page.into_iter()
                    .filter(|record| matches!(record.stream, StreamId::Human(_))),
            );
        }
        humans.sort_by(|a, b| (&a.stream, a.seq).cmp(&(&b.stream, b.seq)));
        Ok(humans)
    }

    /// The highest global position written so far (0 for an empty log).
    fn head(&self) -> u64;

    /// Live events from now on, each once, in position order, after it is durable. A receiver
    /// that falls more than its capacity behind gets `Lagged` and should re-read from the log.
    fn subscribe(&self) -> broadcast::Receiver<Arc<RecordedEvent>>;

    /// What the store has done since it was opened; zeros for a store that does not count.
    fn stats(&self) -> StoreStats {
        StoreStats::default()
    }

    /// Whether other processes write this log too (a cluster's node): the runtime then follows
    /// their commits into its read models. `false` for a store that is its log's only writer.
    fn is_shared(&self) -> bool {
        false
    }

    /// Whether this process writes `tenant`'s streams (its shard's lease, in a cluster).
    /// Always, for a store that is its log's only writer.
    fn owns(&self, tenant: &TenantId) -> bool {
        let _ = tenant;
        true
    }

    /// The last position committed to the log by any process, asked of the log itself (for a
    /// shared log, [`head`](Self::head) is what this process's feed has seen so far).
    async fn last_position(&self) -> Result<u64, StoreError> {
        Ok(self.head())
    }

    /// Lets go of what this process holds of a log other processes share (a cluster's leases),
    /// so that they take over at once rather than once it expires; its appends are refused
    /// after. Nothing for a store that is its log's only writer.
    async fn leave(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// The tenant shards ([`handover_core::placement`]) this process holds the leases of, in
    /// a cluster; empty for a store that is its log's only writer (it writes every tenant).
    fn owned_shards(&self) -> Vec<u16> {
        Vec::new()
    }

    /// The shard a stream was placed in when it was opened, for a stream this process has not
    /// seen yet (another node opened it a moment ago); `None` when the stream does not exist,
    /// or on a store that is its log's only writer.
    async fn shard_of_stream(&self, stream: &StreamId) -> Result<Option<u16>, StoreError> {
        let _ = stream;
        Ok(None)
    }
}
