//! Where an audit reads the log from: a sled store, or every record already read into memory
//! (from a PostgreSQL snapshot, or any [`EventStore`]'s `read_all`). Every audit has one entry
//! point that takes an [`AuditLog`], so both are read by the same code.

use std::borrow::Cow;

use handover_core::StreamId;
use handover_sled::SledStore;
use handover_store::{
    Damage, EventStore, LogLocation, RecordedAt, RecordedEvent, SeqRange, StoreError,
};

/// A whole event log held in memory: every record, in position order (positions 1 to n, as
/// [`EventStore::read_all`] and a store's snapshot return them).
///
/// Building one checks nothing: the audits check what they read, as they do over a store
/// (the positions run from 1 without a gap, each stream's seqs from 1 without a gap, every
/// event against the rules). Checksums and hash chains are the store's to check while it reads.
///
/// ```
/// use handover_audit::{stats_of, AuditLog, RecordLog};
///
/// let log = RecordLog::new(Vec::new());
/// assert_eq!(log.head(), 0);
/// assert_eq!(stats_of(AuditLog::Records(&log)).unwrap().events, 0);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordLog {
    records: Vec<RecordedEvent>,
}

impl RecordLog {
    /// The log made of `records`, which should be in position order.
    pub fn new(records: Vec<RecordedEvent>) -> RecordLog {
        RecordLog { records }
    }

    /// Reads the whole log of `store` from position 1 with [`EventStore::read_all`], `page`
    /// records at a time (at least one). A store that changes during the read gives a log as
    /// of some moment during it; a store that reads in one snapshot (PostgreSQL's) serves a
    /// consistent log better.
    pub async fn read<S: EventStore + ?Sized>(
        store: &S,
        page: usize,
    ) -> Result<RecordLog, StoreError> {
        let page = page.max(1);
        let mut records: Vec<RecordedEvent> = Vec::new();
        loop {
            let from = records.last().map_or(1, |last| last.position + 1);
            let read = store.read_all(from, page).await?;
            let Some(last) = read.last() else {
                break;
            };
            // A page that does not move on would read the same records forever.
            if last.position < from {
                return Err(StoreError::corrupted(
                    LogLocation::at_position(from),
                    Damage::Index,
                    format!(
                        "reading from position {from} returned records up to position {} only",
                        last.position
                    ),
                ));
            }
            records.extend(read);
        }
        Ok(RecordLog { records })
    }

    /// Every record, in the order given.
    pub fn records(&self) -> &[RecordedEvent] {
        &self.records
    }

    /// The records, given back.
    pub fn into_records(self) -> Vec<RecordedEvent> {
        self.records
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The position of its last record (0 for an empty log).
    pub fn head(&self) -> u64 {
        self.records.last().map_or(0, |last| last.position)
    }

    /// The records in position order, each checked to be at the position after the one before
    /// it, from 1: a gap is [`Damage::Gap`] at the missing position, as a store reports it.
    fn iter_checked(&self) -> impl Iterator<Item = Result<&RecordedEvent, StoreError>> + '_ {
        let mut expected = 1u64;
        let mut failed = false;
        self.records.iter().map_while(move |record| {
            if failed {
                return None;
            }
            if record.position != expected {
                failed = true;
                return Some(Err(StoreError::corrupted(
                    LogLocation::at_position(expected),
                    Damage::Gap,
                    format!("the log skips to position {}", record.position),
                )));
            }
            expected += 1;
            Some(Ok(record))
        })
    }

    /// One stream's records, in seq order, checked to run from seq 1 without a gap (a gap is
    /// [`Damage::Gap`], as a store reports it). An unknown stream reads as empty.
    fn stream(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut out: Vec<RecordedEvent> = Vec::new();
        for record in self
            .records
            .iter()
            .filter(|record| record.stream == *stream)
        {
            let expected = out.last().map_or(1, |last| last.seq + 1);
            if record.seq != expected {
                return Err(StoreError::corrupted(
                    LogLocation::record(&record.stream, record.seq, record.position),
                    Damage::Gap,
                    format!("stream skips from seq {} to {}", expected - 1, record.seq),
                ));
            }
            out.push(record.clone());
        }
        Ok(out)
    }
}

impl From<Vec<RecordedEvent>> for RecordLog {
    fn from(records: Vec<RecordedEvent>) -> RecordLog {
        RecordLog::new(records)
    }
}

/// The log an audit reads: a sled store, or a [`RecordLog`] in memory. Every audit reads both
/// through the same code ([`crate::export_of`], [`crate::timeline_of`], [`crate::verify_of`],
/// [`crate::stats_of`], [`crate::conversations_of`], [`crate::Replay::from_log`]), so a log
/// gives the same output wherever it is kept.
///
/// ```no_run
/// # fn main() -> Result<(), handover_audit::AuditError> {
/// use handover_audit::{stats_of, AuditLog};
///
/// let store = handover_audit::open_data_dir("./data".as_ref())?;
/// println!("{}", stats_of(AuditLog::Sled(&store))?);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum AuditLog<'a> {
    /// A sled store, read in place (see [`crate::open_data_dir`]).
    Sled(&'a SledStore),
    /// Records already read into memory.
    Records(&'a RecordLog),
}

impl<'a> From<&'a SledStore> for AuditLog<'a> {
    fn from(store: &'a SledStore) -> AuditLog<'a> {
        AuditLog::Sled(store)
    }
}

impl<'a> From<&'a RecordLog> for AuditLog<'a> {
    fn from(records: &'a RecordLog) -> AuditLog<'a> {
        AuditLog::Records(records)
    }
}

/// A record read from an [`AuditLog`]: a store's is read into a value, memory's is lent.
pub(crate) type Read<'a> = Result<Cow<'a, RecordedEvent>, StoreError>;

impl<'a> AuditLog<'a> {
    /// Every record, in position order from position 1; damage (a gap included) ends it with
    /// an error.
    pub(crate) fn iter_all(self) -> Box<dyn Iterator<Item = Read<'a>> + 'a> {
        match self {
            AuditLog::Sled(store) => Box::new(store.iter_all(1).map(|read| read.map(Cow::Owned))),
            AuditLog::Records(log) => {
                Box::new(log.iter_checked().map(|read| read.map(Cow::Borrowed)))
            }
        }
    }

    /// One stream's records, in seq order; an unknown stream reads as empty.
    pub(crate) fn read_stream(self, stream: &StreamId) -> Result<Vec<RecordedEvent>, StoreError> {
        match self {
            AuditLog::Sled(store) => store.read_stream_sync(stream, SeqRange::ALL),
            AuditLog::Records(log) => log.stream(stream),
        }
    }

    /// The log's last position (0 for an empty log): the total a [`crate::Progress`] is
    /// given.
    pub(crate) fn head(self) -> u64 {
        match self {
            AuditLog::Sled(store) => store.head(),
            AuditLog::Records(log) => log.head(),
        }
    }

    /// When the last record of the log was recorded (`i64::MIN` microseconds for an empty
    /// log).
    pub(crate) fn last_recorded_at(self) -> Result<RecordedAt, StoreError> {
        let last = match self {
            AuditLog::Sled(store) => match store.iter_all(store.head()).next() {
                Some(record) => Some(record?.recorded_at),
                None => None,
            },
            AuditLog::Records(log) => log.records.last().map(|record| record.recorded_at),
        };
        Ok(last.unwrap_or(RecordedAt(i64::MIN)))
    }
}
