//! Reads, each record checked as sled checks it: checksum and format, its place (the row's
//! position, stream and seq are the ones its body repeats), contiguity, and the stream's hash
//! chain wherever the records of a stream are read together.

use std::collections::HashMap;

use handover_core::StreamId;
use handover_store::{
    decode_record_at, record_previous_hash, Damage, LogLocation, RecordHash, RecordedEvent,
    SeqRange, StoreError,
};
use tokio_postgres::{GenericClient, Row};

use crate::error::engine;
use crate::keys::{clamp, stream_key};

const COLUMNS: &str = "position, stream_kind, stream_id, seq, record";

/// One row, decoded and checked against its place.
fn decode(row: &Row) -> Result<(RecordedEvent, RecordHash, Option<RecordHash>), StoreError> {
    let position: i64 = row.get(0);
    let kind: i16 = row.get(1);
    let id: &str = row.get(2);
    let seq: i64 = row.get(3);
    let bytes: &[u8] = row.get(4);
    let (position, seq) = (position as u64, seq as u64);
    let record = decode_record_at(bytes, || LogLocation::at_position(position))?;
    let (record_kind, record_id) = stream_key(&record.stream);
    if record.position != position || record.seq != seq || record_kind != kind || record_id != id {
        return Err(StoreError::corrupted(
            LogLocation::record(&record.stream, record.seq, record.position),
            Damage::Misplaced,
            format!(
                "the record says position {}, seq {} of {}, but is stored at position \
                 {position}, seq {seq} of stream {kind}/{id}",
                record.position, record.seq, record.stream
            ),
        ));
    }
    Ok((record, RecordHash::of(bytes), record_previous_hash(bytes)))
}

/// Checks that the records of streams follow each other: seqs without gaps, each record
/// carrying the hash of the one before it (format 1 records carry none and are not chained).
#[derive(Default)]
pub(crate) struct Chains {
    tails: HashMap<StreamId, (u64, RecordHash)>,
}

impl Chains {
    /// Starts `stream`'s chain after a known record, for a read that begins mid-stream.
    fn start_after(&mut self, stream: &StreamId, seq: u64, hash: RecordHash) {
        self.tails.insert(stream.clone(), (seq, hash));
    }

    /// Checks `record` follows its stream's last one (or opens the stream at `first_seq`).
    fn follow(
        &mut self,
        record: &RecordedEvent,
        hash: RecordHash,
        previous: Option<RecordHash>,
        first_seq: u64,
    ) -> Result<(), StoreError> {
        let at = || LogLocation::record(&record.stream, record.seq, record.position);
        let (expected_seq, expected_hash) = match self.tails.get(&record.stream) {
            Some((seq, hash)) => (seq + 1, Some(*hash)),
            None if first_seq == 1 => (1, Some(RecordHash::ZERO)),
            None => (first_seq, None),
        };
        if record.seq != expected_seq {
            return Err(StoreError::corrupted(
                at(),
                Damage::Gap,
                format!(
                    "stream {} jumps from seq {} to {}",
                    record.stream,
                    expected_seq - 1,
                    record.seq
                ),
            ));
        }
        if let (Some(carried), Some(expected)) = (previous, expected_hash) {
            if carried != expected {
                return Err(StoreError::corrupted(
                    at(),
                    Damage::Chain,
                    "the record does not carry the hash of the record before it in its stream",
                ));
            }
        }
        self.tails.insert(record.stream.clone(), (record.seq, hash));
        Ok(())
    }
}

/// Part of one stream, in seq order, chained from the record before `range.from`.
pub(crate) async fn read_stream(
    client: &impl GenericClient,
    stream: &StreamId,
    range: SeqRange,
) -> Result<Vec<RecordedEvent>, StoreError> {
    if range.max == 0 || range.from > range.to {
        return Ok(Vec::new());
    }
    let from = range.from.max(1);
    let (kind, id) = stream_key(stream);
    // The record before the range too, for its hash.
    let before = from - 1;
    let limit = clamp(range.max as u64).saturating_add(1);
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM handover_events
                 WHERE stream_kind = $1 AND stream_id = $2 AND seq BETWEEN $3 AND $4
                 ORDER BY seq LIMIT $5"
            ),
            &[&kind, &id, &clamp(before), &clamp(range.to), &limit],
        )
        .await
        .map_err(engine)?;
    let mut chains = Chains::default();
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let (record, hash, previous) = decode(row)?;
        if record.seq == before {
            chains.start_after(stream, record.seq, hash);
            continue;
        }
        if out.is_empty() && before > 0 && record.seq == from && chains.tails.is_empty() {
            return Err(StoreError::corrupted(
                LogLocation::in_stream(stream, before),
                Damage::Gap,
                format!("stream {stream} has seq {from} but no seq {before}"),
            ));
        }
        chains.follow(&record, hash, previous, from)?;
        out.push(record);
        if out.len() == range.max {
            break;
        }
    }
    Ok(out)
}

/// The global order from `from`, at most `max` records, without gaps.
pub(crate) async fn read_all(
    client: &impl GenericClient,
    from: u64,
    max: usize,
) -> Result<Vec<RecordedEvent>, StoreError> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let from = from.max(1);
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM handover_events WHERE position >= $1
                 ORDER BY position LIMIT $2"
            ),
            &[&clamp(from), &clamp(max as u64)],
        )
        .await
        .map_err(engine)?;
    let mut out = Vec::with_capacity(rows.len());
    // Rows first: the range advances only past a row, so a `from` at the end of the number
    // space cannot overflow it.
    for (row, expected) in rows.iter().zip(from..) {
        let (record, _, _) = decode(row)?;
        if record.position != expected {
            return Err(position_gap(expected, record.position));
        }
        out.push(record);
    }
    Ok(out)
}

/// The global order skips from `expected - 1` to `found`.
fn position_gap(expected: u64, found: u64) -> StoreError {
    StoreError::corrupted(
        LogLocation::at_position(expected),
        Damage::Gap,
        format!(
            "the global order jumps from position {} to {found}",
            expected - 1
        ),
    )
}

/// Every stream of one kind, stream by stream (ids in byte order), each chained from seq 1.
pub(crate) async fn read_kind(
    client: &impl GenericClient,
    kind: i16,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM handover_events WHERE stream_kind = $1
                 ORDER BY stream_id COLLATE \"C\", seq"
            ),
            &[&kind],
        )
        .await
        .map_err(engine)?;
    let mut chains = Chains::default();
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let (record, hash, previous) = decode(row)?;
        chains.follow(&record, hash, previous, 1)?;
        out.push(record);
    }
    Ok(out)
}

/// The whole log in position order, checked entirely: positions dense from 1, every stream's
/// seqs from 1 and its hash chain. Run inside a repeatable-read transaction, it is one
/// consistent snapshot while other nodes keep writing.
pub(crate) async fn read_checked_log(
    client: &impl GenericClient,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = client
        .query(
            &format!("SELECT {COLUMNS} FROM handover_events ORDER BY position"),
            &[],
        )
        .await
        .map_err(engine)?;
    let mut chains = Chains::default();
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let (record, hash, previous) = decode(row)?;
        let expected = out.len() as u64 + 1;
        if record.position != expected {
            return Err(position_gap(expected, record.position));
        }
        chains.follow(&record, hash, previous, 1)?;
        out.push(record);
    }
    Ok(out)
}

/// A stream's version: its highest seq, 0 when it has none.
pub(crate) async fn stream_version(
    client: &impl GenericClient,
    stream: &StreamId,
) -> Result<u64, StoreError> {
    let (kind, id) = stream_key(stream);
    let row = client
        .query_one(
            "SELECT coalesce(max(seq), 0) FROM handover_events
             WHERE stream_kind = $1 AND stream_id = $2",
            &[&kind, &id],
        )
        .await
        .map_err(engine)?;
    Ok(row.get::<_, i64>(0) as u64)
}
