//! Reads and their checks: a stream's range (checksum, place, gaps, hash chain), its tail
//! against its high-water mark, the stream-ordered scan ([`StreamScan`]) and the global-order
//! scan ([`GlobalScan`]) used by verification, and what a command appended.

use std::collections::HashMap;
use std::sync::Arc;

use handover_core::{CommandId, StreamId};
use handover_store::{
    decode_record_at, record_previous_hash, Damage, LogLocation, RecordHash, RecordedEvent,
    SeqRange, StoreError,
};

use crate::engine::{contained, store_error, OrStore};
use crate::keys::{
    be_u64, command_key, decode_command_entry, event_key, location, parse_stream_key,
};
use crate::tip::{stream_tip, Marks, Tip};

/// A stream record as stored, not yet decoded: from [`SledStore::scan_stream_records`](crate::SledStore::scan_stream_records).
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

    /// Decodes it and checks it as [`SledStore::scan_streams`](crate::SledStore::scan_streams) does: checksum, format and
    /// body, that it names the stream and seq of its key, that its stream has no gap before
    /// it, and that it carries the hash of the record before it.
    pub fn decode(&self) -> Result<RecordedEvent, StoreError> {
        let record = decode_record_at(&self.bytes, || location(&self.stream, self.seq))?;
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
/// same order beside the records; a tail written since the last checkpoint overrides its `M`
/// key.
pub(crate) struct StreamScan {
    /// The store's failure, if it stopped: the scan yields it and nothing else.
    pub(crate) failed: Option<StoreError>,
    pub(crate) log: sled::Tree,
    /// The tails written since the last checkpoint.
    pub(crate) pending: Arc<Marks>,
    pub(crate) records: sled::Iter,
    pub(crate) marks: std::iter::Peekable<sled::Iter>,
    /// The stream being read: its key, id, last seq and last record's bytes.
    pub(crate) current: Option<(Vec<u8>, StreamId, u64, sled::IVec)>,
    pub(crate) done: bool,
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
    pub(crate) fn step(&mut self) -> Option<Result<StoredRecord, StoreError>> {
        let (key, bytes) = match self.records.next() {
            None => return self.end_stream(None).err().map(Err),
            Some(Err(error)) => return Some(Err(store_error(error))),
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
    pub(crate) fn end_stream(&mut self, next: Option<&[u8]>) -> Result<(), StoreError> {
        let mut current_marked = false;
        loop {
            let (mark_key, mark_value) = match self.marks.peek() {
                None => break,
                Some(Err(error)) => return Err(store_error(error.clone())),
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
            let mark = self.pending.pending(&stream).unwrap_or(mark);
            match &self.current {
                Some((key, stream, last_seq, last_bytes)) if key.as_slice() == marked => {
                    current_marked = true;
                    let last_hash = Some(RecordHash::of(last_bytes));
                    let checked = check_tail(
                        &self.log,
                        &self.pending,
                        stream,
                        mark,
                        *last_seq,
                        last_hash,
                        u64::MAX,
                    );
                    if checked.is_err() {
                        // The mark this scan read may predate a checkpoint that rewrote it since
                        // the records were read: only a settled mark can tell damage.
                        let settled = self.pending.settled_tail(&self.log, stream)?;
                        let mark = settled.unwrap_or(mark);
                        check_tail(
                            &self.log,
                            &self.pending,
                            stream,
                            mark,
                            *last_seq,
                            last_hash,
                            u64::MAX,
                        )?;
                    }
                }
                // A mark whose stream has no records at all.
                _ => check_tail(&self.log, &self.pending, &stream, mark, 0, None, u64::MAX)?,
            }
        }
        if let Some((_, stream, last_seq, last_bytes)) = &self.current {
            if !current_marked {
                // A stream first written since the last checkpoint has no `M` key yet.
                if let Some(mark) = self.pending.settled_tail(&self.log, stream)? {
                    current_marked = true;
                    check_tail(
                        &self.log,
                        &self.pending,
                        stream,
                        mark,
                        *last_seq,
                        Some(RecordHash::of(last_bytes)),
                        u64::MAX,
                    )?;
                }
            }
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
/// The writer publishes a group's tails (in [`Marks`]) before it applies the group, and sled
/// applies a batch under its write lock and every read step under its read lock, so a mark
/// read after the records is at least as new as they are: records beyond it are damage. A
/// mark ahead of them is damage only if the next record is still missing once no group is
/// being applied; otherwise an append landed between the scan and the mark's read.
pub(crate) fn check_tail(
    log: &sled::Tree,
    marks: &Marks,
    stream: &StreamId,
    mark: Tip,
    last_seq: u64,
    last_hash: Option<RecordHash>,
    to: u64,
) -> Result<(), StoreError> {
    let next_missing = || -> Result<bool, StoreError> {
        Ok(log
            .get(event_key(stream, last_seq + 1))
            .or_store()?
            .is_none())
    };
    if last_seq < mark.version && last_seq < to && next_missing()? && {
        // The mark may belong to a group being applied: wait for it, then look again.
        let _settled = marks.settled();
        next_missing()?
    } {
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
pub(crate) fn check_link(
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
pub(crate) struct GlobalScan<'a, I> {
    pub(crate) pointers: I,
    pub(crate) log: &'a sled::Tree,
    pub(crate) marks: &'a Marks,
    pub(crate) links: ChainLinks,
    /// Once the index is read: the streams whose last record is still to be checked.
    pub(crate) tails: Option<std::vec::IntoIter<(StreamId, u64, RecordHash)>>,
    pub(crate) done: bool,
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
    pub(crate) fn step(&mut self) -> Option<Result<RecordedEvent, StoreError>> {
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
            let checked = self
                .marks
                .tail(self.log, &stream)
                .and_then(|mark| match mark {
                    // A mark ahead of what was read: appended since.
                    Some(mark) if mark.version == seq => check_tail(
                        self.log,
                        self.marks,
                        &stream,
                        mark,
                        seq,
                        Some(hash),
                        u64::MAX,
                    ),
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
pub(crate) struct ChainLinks {
    pub(crate) last: HashMap<StreamId, (u64, RecordHash)>,
}

pub(crate) const CHAIN_LINKS_MAX: usize = 1 << 20;

impl ChainLinks {
    pub(crate) fn check(
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
pub(crate) fn read_range(
    log: &sled::Tree,
    stream: &StreamId,
    range: SeqRange,
) -> Result<(Vec<RecordedEvent>, Option<RecordHash>), StoreError> {
    let first = range.from.max(1);
    let mut out = Vec::new();
    let mut previous = (first == 1).then_some(RecordHash::ZERO);
    let keys = event_key(stream, first)..=event_key(stream, range.to);
    for (expected_seq, entry) in (first..=u64::MAX).zip(log.range(keys)) {
        let (key, value) = entry.or_store()?;
        let seq = be_u64(&key[key.len() - 8..]).unwrap_or(0);
        let record = decode_record_at(&value, || location(stream, seq))?;
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

/// Reads on from `after` by key, one record at a time, up to `to` (inclusive) or `max` records,
/// with the checks [`read_range`] makes, linking the first to `previous` (the hash of the
/// record at `after`). Stops at the first seq that is not there.
///
/// A range scan that ends before a stream's high-water mark while the next record is there by
/// key means an append landed after the scan, or that sled's scan skipped a node a lookup
/// still finds (seen after a blob file went missing): either way the records are read on
/// here, checked, instead of the stream reading shorter than it is.
pub(crate) fn read_on_by_key(
    log: &sled::Tree,
    stream: &StreamId,
    after: u64,
    to: u64,
    previous: Option<RecordHash>,
    max: usize,
) -> Result<(Vec<RecordedEvent>, Option<RecordHash>), StoreError> {
    let mut out = Vec::new();
    let mut previous = previous;
    let mut seq = after;
    while seq < to && out.len() < max {
        seq += 1;
        let Some(value) = log.get(event_key(stream, seq)).or_store()? else {
            break;
        };
        let record = decode_record_at(&value, || location(stream, seq))?;
        check_place(&record, stream, seq, seq)?;
        check_link(&value, previous.as_ref(), || {
            LogLocation::record(stream, seq, record.position)
        })?;
        previous = Some(RecordHash::of(&value));
        out.push(record);
    }
    Ok((out, previous))
}

/// What `command` appended to `stream`, read back from the log, or `None`.
pub(crate) fn read_command(
    log: &sled::Tree,
    stream: &StreamId,
    command: &CommandId,
) -> Result<Option<Vec<RecordedEvent>>, StoreError> {
    let Some(entry) = log.get(command_key(stream, command)).or_store()? else {
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
pub(crate) fn stream_version(
    log: &sled::Tree,
    marks: &Marks,
    stream: &StreamId,
) -> Result<u64, StoreError> {
    Ok(stream_tip(log, marks, stream)?.version)
}

/// Checks that a record decoded from a stream key belongs there and follows its predecessor.
pub(crate) fn check_place(
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
pub(crate) fn read_pointer_bytes(
    log: &sled::Tree,
    position: u64,
    stream: &StreamId,
    seq: u64,
) -> Result<(RecordedEvent, sled::IVec), StoreError> {
    let at = || LogLocation::record(stream, seq, position);
    let value = log.get(event_key(stream, seq)).or_store()?.ok_or_else(|| {
        StoreError::corrupted(
            at(),
            Damage::Index,
            "the global index points here, but the record is missing",
        )
    })?;
    let record = decode_record_at(&value, at)?;
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
