//! The on-disk record: a format version, a checksum, the hash of the record before it in its
//! stream, and a bincode body that repeats the record's place in the log, so a record moved to
//! another key, replaced, or taken out of its stream is detected. See `docs/storage-format.md`.

use std::time::{SystemTime, UNIX_EPOCH};

use handover_core::{Event, StreamId};
use serde::{Deserialize, Serialize};

use crate::{Damage, LogLocation, StoreError};

/// The format version written today. Readers accept every version listed in
/// `docs/storage-format.md`.
pub const RECORD_FORMAT_VERSION: u8 = 2;

/// Largest encoded record, in bytes. Events are bounded by the domain's text limits
/// (64 KiB messages and skill data), so this leaves ample headroom while keeping a damaged
/// length prefix from allocating more than this much.
pub const RECORD_BYTES_MAX: usize = 256 * 1024;

/// Version 1: `[1][crc32]`, then the body.
const HEADER_BYTES_V1: usize = 1 + 4;
/// Version 2: `[2][crc32][previous record's hash]`, then the body.
const HEADER_BYTES: usize = 1 + 4 + RecordHash::LEN;

/// The BLAKE3 hash of a record's stored bytes (header included). Each record of format 2
/// carries the hash of the record before it in its stream ([`RecordHash::ZERO`] for seq 1), so
/// the records of a stream form a hash chain: changing, removing, swapping or reordering
/// records breaks it at the first record after the change.
///
/// ```
/// use handover_store::RecordHash;
///
/// let hash = RecordHash::of(b"stored bytes");
/// assert_ne!(hash, RecordHash::ZERO);
/// assert_eq!(hash.to_string().len(), 64);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordHash(pub [u8; 32]);

impl RecordHash {
    /// Its length in bytes.
    pub const LEN: usize = 32;

    /// What the first record of a stream carries as its predecessor's hash.
    pub const ZERO: RecordHash = RecordHash([0; 32]);

    /// The hash of a record's stored bytes.
    pub fn of(stored: &[u8]) -> RecordHash {
        RecordHash(*blake3::hash(stored).as_bytes())
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The hash held in `bytes`, if they are exactly [`RecordHash::LEN`] long.
    pub fn from_slice(bytes: &[u8]) -> Option<RecordHash> {
        Some(RecordHash(bytes.try_into().ok()?))
    }
}

impl std::fmt::Display for RecordHash {
    /// Lower-case hex.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for RecordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<RECORD_BYTES_MAX>()
}

/// When the store recorded an event: microseconds since the Unix epoch, UTC. The store keeps it
/// non-decreasing in position order, even if the wall clock steps back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RecordedAt(pub i64);

impl RecordedAt {
    /// The wall clock now.
    pub fn now() -> RecordedAt {
        let micros = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
        };
        RecordedAt(micros)
    }

    /// Microseconds since the Unix epoch.
    pub fn as_micros(self) -> i64 {
        self.0
    }
}

/// One event as the log holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Global position, strictly increasing across the log, from 1.
    pub position: u64,
    /// The stream it belongs to.
    pub stream: StreamId,
    /// Its number in the stream, contiguous from 1.
    pub seq: u64,
    /// When it was recorded.
    pub recorded_at: RecordedAt,
    /// What happened.
    pub event: Event,
}

/// Encodes a record: `[2][crc32 u32 BE][previous hash][bincode body]`, the CRC over
/// everything after it.
fn encode(record: &RecordedEvent, previous: &RecordHash) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES + 96);
    bytes.extend_from_slice(&[RECORD_FORMAT_VERSION, 0, 0, 0, 0]);
    bytes.extend_from_slice(previous.as_bytes());
    bincode::serde::encode_into_std_write(record, &mut bytes, config())
        .map_err(|e| StoreError::Engine(format!("cannot encode record: {e}")))?;
    seal(bytes)
}

/// Checks the size of an encoded record and writes its checksum into the header.
fn seal(mut bytes: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    if bytes.len() - HEADER_BYTES > RECORD_BYTES_MAX {
        return Err(StoreError::RecordTooLarge {
            len: bytes.len(),
            max: RECORD_BYTES_MAX,
        });
    }
    let crc = checksum(bytes[0], &bytes[HEADER_BYTES_V1..]);
    bytes[1..HEADER_BYTES_V1].copy_from_slice(&crc.to_be_bytes());
    Ok(bytes)
}

/// An event encoded on its own, ready to be spliced into a record by
/// [`encode_record_with_event`]: a backend encodes events on the appender's thread and leaves
/// only the record's small header fields, checksum and hash to its single writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedEvent {
    event: Event,
    bytes: Vec<u8>,
}

impl EncodedEvent {
    /// The event.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// Its bincode encoding, as it appears at the end of a record's body.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The event, for the record that holds it.
    pub fn into_event(self) -> Event {
        self.event
    }
}

/// Encodes `event` as the last field of a record's body, checking the size limit.
pub fn encode_event(event: Event) -> Result<EncodedEvent, StoreError> {
    let bytes = bincode::serde::encode_to_vec(&event, config())
        .map_err(|e| StoreError::Engine(format!("cannot encode event: {e}")))?;
    if bytes.len() > RECORD_BYTES_MAX {
        return Err(StoreError::RecordTooLarge {
            len: bytes.len(),
            max: RECORD_BYTES_MAX,
        });
    }
    Ok(EncodedEvent { event, bytes })
}

/// Encodes each of `events` with [`encode_event`]: what a backend does on the appender's
/// thread, so its single writer only adds the records' header fields, checksums and hashes.
/// An event too large fails here, before anything is queued.
pub fn encode_events(events: Vec<Event>) -> Result<Vec<EncodedEvent>, StoreError> {
    events.into_iter().map(encode_event).collect()
}

/// Encodes the record of `event` at `position`, `stream` and `seq`, exactly as
/// [`encode_record`] encodes the same [`RecordedEvent`], without encoding the event again:
/// bincode's serde encoding of a struct is the concatenation of its fields' encodings in
/// order (position, stream, seq, recorded_at, event), so the event's bytes are spliced after
/// the header fields.
///
/// ```
/// use handover_core::{AiAgentEvent, AiAgentId, Event, StreamId};
/// use handover_store::{encode_event, encode_record, encode_record_with_event, RecordHash};
/// use handover_store::{RecordedAt, RecordedEvent};
///
/// let agent_id = AiAgentId::new("faq-bot").unwrap();
/// let stream = StreamId::AiAgent(agent_id.clone());
/// let event = Event::AiAgent(AiAgentEvent::Activated { agent_id });
/// let encoded = encode_event(event.clone()).unwrap();
/// let spliced =
///     encode_record_with_event(7, &stream, 2, RecordedAt(5), &encoded, &RecordHash::ZERO)
///         .unwrap();
/// let record = RecordedEvent { position: 7, stream, seq: 2, recorded_at: RecordedAt(5), event };
/// assert_eq!(spliced, encode_record(&record, &RecordHash::ZERO).unwrap());
/// ```
pub fn encode_record_with_event(
    position: u64,
    stream: &StreamId,
    seq: u64,
    recorded_at: RecordedAt,
    event: &EncodedEvent,
    previous: &RecordHash,
) -> Result<Vec<u8>, StoreError> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES + 48 + event.bytes.len());
    bytes.extend_from_slice(&[RECORD_FORMAT_VERSION, 0, 0, 0, 0]);
    bytes.extend_from_slice(previous.as_bytes());
    bincode::serde::encode_into_std_write(
        (position, stream, seq, recorded_at),
        &mut bytes,
        config(),
    )
    .map_err(|e| StoreError::Engine(format!("cannot encode record: {e}")))?;
    bytes.extend_from_slice(&event.bytes);
    seal(bytes)
}

fn checksum(version: u8, body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[version]);
    hasher.update(body);
    hasher.finalize()
}

/// Encodes a record exactly as the store writes it: `[version][crc32][previous hash][bincode
/// body]`, `previous` being the [`RecordHash`] of the stream's record before it
/// ([`RecordHash::ZERO`] for seq 1).
///
/// ```
/// use handover_core::{AiAgentEvent, AiAgentId, Event, StreamId};
/// use handover_store::{decode_record, encode_record, RecordHash, RecordedAt, RecordedEvent};
///
/// let agent_id = AiAgentId::new("faq-bot").unwrap();
/// let record = RecordedEvent {
///     position: 1,
///     stream: StreamId::AiAgent(agent_id.clone()),
///     seq: 1,
///     recorded_at: RecordedAt(0),
///     event: Event::AiAgent(AiAgentEvent::Activated { agent_id }),
/// };
/// let bytes = encode_record(&record, &RecordHash::ZERO).unwrap();
/// assert_eq!(decode_record(&bytes).unwrap(), record);
/// ```
pub fn encode_record(record: &RecordedEvent, previous: &RecordHash) -> Result<Vec<u8>, StoreError> {
    encode(record, previous)
}

/// The hash of the previous record that a stored record carries: `None` for format 1, which
/// has none. Reads only the header: the record's checksum is checked by [`decode_record`].
pub fn record_previous_hash(bytes: &[u8]) -> Option<RecordHash> {
    match bytes.first() {
        Some(2) => RecordHash::from_slice(bytes.get(HEADER_BYTES_V1..HEADER_BYTES)?),
        _ => None,
    }
}

/// Decodes and checks a record's bytes: format version, checksum, size limit, and a body that
/// decodes completely. Damage is [`StoreError::Corrupted`], never a panic.
pub fn decode_record(bytes: &[u8]) -> Result<RecordedEvent, StoreError> {
    decode_record_at(bytes, LogLocation::default)
}

/// Decodes and checks a record read from `location`, which names the place in error messages;
/// otherwise as [`decode_record`].
pub fn decode_record_at(
    bytes: &[u8],
    location: impl Fn() -> LogLocation,
) -> Result<RecordedEvent, StoreError> {
    let corrupted = |detail: String| StoreError::corrupted(location(), Damage::Record, detail);
    let header = match bytes.first() {
        Some(1) => HEADER_BYTES_V1,
        _ => HEADER_BYTES,
    };
    if bytes.len() < header {
        return Err(corrupted(format!(
            "record is {} bytes, shorter than its header",
            bytes.len()
        )));
    }
    if bytes.len() > RECORD_BYTES_MAX + header {
        return Err(corrupted(format!(
            "record is {} bytes, over the limit",
            bytes.len()
        )));
    }
    let version = bytes[0];
    let stored = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    if checksum(version, &bytes[HEADER_BYTES_V1..]) != stored {
        return Err(corrupted("checksum mismatch".to_owned()));
    }
    if version != 1 && version != 2 {
        return Err(corrupted(format!(
            "unknown record format version {version}"
        )));
    }
    let body = &bytes[header..];
    let (record, read): (RecordedEvent, usize) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| corrupted(format!("undecodable body: {e}")))?;
    if read != body.len() {
        return Err(corrupted(format!(
            "{} trailing bytes after the body",
            body.len() - read
        )));
    }
    Ok(record)
}

/// Where a store takes the time it stamps on records from, when it is not the wall clock: the
/// runtime's clock, so that simulated time and recorded time agree.
///
/// ```
/// use handover_store::{RecordedAt, TimeSource};
///
/// let fixed = TimeSource::new(|| RecordedAt(42));
/// assert_eq!(fixed.now(), RecordedAt(42));
/// ```
#[derive(Clone)]
pub struct TimeSource(std::sync::Arc<dyn Fn() -> RecordedAt + Send + Sync>);

impl TimeSource {
    /// A source that asks `now` for the time.
    pub fn new(now: impl Fn() -> RecordedAt + Send + Sync + 'static) -> TimeSource {
        TimeSource(std::sync::Arc::new(now))
    }

    /// The time now, by this source.
    pub fn now(&self) -> RecordedAt {
        (self.0)()
    }
}

impl std::fmt::Debug for TimeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TimeSource").field(&self.now()).finish()
    }
}
