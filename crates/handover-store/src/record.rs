//! The on-disk record: a format version, a checksum, and a bincode body that repeats the
//! record's place in the log, so a record moved to another key is detected. See
//! `docs/storage-format.md`.

use std::time::{SystemTime, UNIX_EPOCH};

use handover_core::{Event, StreamId};
use serde::{Deserialize, Serialize};

use crate::{Damage, LogLocation, StoreError};

/// The format version written today. Readers accept every version listed in
/// `docs/storage-format.md`.
pub const RECORD_FORMAT_VERSION: u8 = 1;

/// Largest encoded record, in bytes. Events are bounded by the domain's text limits
/// (64 KiB messages and skill data), so this leaves ample headroom while keeping a damaged
/// length prefix from allocating more than this much.
pub const RECORD_BYTES_MAX: usize = 256 * 1024;

const HEADER_BYTES: usize = 1 + 4;

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

/// Encodes a record: `[version u8][crc32 u32 BE][bincode body]`, the CRC over version and body.
pub(crate) fn encode(record: &RecordedEvent) -> Result<Vec<u8>, StoreError> {
    let mut bytes = vec![RECORD_FORMAT_VERSION, 0, 0, 0, 0];
    bincode::serde::encode_into_std_write(record, &mut bytes, config())
        .map_err(|e| StoreError::Engine(format!("cannot encode record: {e}")))?;
    if bytes.len() - HEADER_BYTES > RECORD_BYTES_MAX {
        return Err(StoreError::RecordTooLarge {
            len: bytes.len(),
            max: RECORD_BYTES_MAX,
        });
    }
    let crc = checksum(bytes[0], &bytes[HEADER_BYTES..]);
    bytes[1..HEADER_BYTES].copy_from_slice(&crc.to_be_bytes());
    Ok(bytes)
}

fn checksum(version: u8, body: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&[version]);
    hasher.update(body);
    hasher.finalize()
}

/// Encodes a record exactly as the store writes it: `[version][crc32][bincode body]`.
///
/// ```
/// use handover_core::{AiAgentEvent, AiAgentId, Event, StreamId};
/// use handover_store::{decode_record, encode_record, RecordedAt, RecordedEvent};
///
/// let agent_id = AiAgentId::new("faq-bot").unwrap();
/// let record = RecordedEvent {
///     position: 1,
///     stream: StreamId::AiAgent(agent_id.clone()),
///     seq: 1,
///     recorded_at: RecordedAt(0),
///     event: Event::AiAgent(AiAgentEvent::Activated { agent_id }),
/// };
/// let bytes = encode_record(&record).unwrap();
/// assert_eq!(decode_record(&bytes).unwrap(), record);
/// ```
pub fn encode_record(record: &RecordedEvent) -> Result<Vec<u8>, StoreError> {
    encode(record)
}

/// Decodes and checks a record's bytes: format version, checksum, size limit, and a body that
/// decodes completely. Damage is [`StoreError::Corrupted`], never a panic.
pub fn decode_record(bytes: &[u8]) -> Result<RecordedEvent, StoreError> {
    decode(bytes, LogLocation::default)
}

/// Decodes and checks a record read from `location` (used in error messages).
pub(crate) fn decode(
    bytes: &[u8],
    location: impl Fn() -> LogLocation,
) -> Result<RecordedEvent, StoreError> {
    let corrupted = |detail: String| StoreError::corrupted(location(), Damage::Record, detail);
    if bytes.len() < HEADER_BYTES {
        return Err(corrupted(format!(
            "record is {} bytes, shorter than its header",
            bytes.len()
        )));
    }
    if bytes.len() > RECORD_BYTES_MAX + HEADER_BYTES {
        return Err(corrupted(format!(
            "record is {} bytes, over the limit",
            bytes.len()
        )));
    }
    let version = bytes[0];
    let stored = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    let body = &bytes[HEADER_BYTES..];
    if checksum(version, body) != stored {
        return Err(corrupted("checksum mismatch".to_owned()));
    }
    match version {
        1 => {
            let (record, read): (RecordedEvent, usize) =
                bincode::serde::decode_from_slice(body, config())
                    .map_err(|e| corrupted(format!("undecodable body: {e}")))?;
            if read != body.len() {
                return Err(corrupted(format!(
                    "{} trailing bytes after the body",
                    body.len() - read
                )));
            }
            Ok(record)
        }
        other => Err(corrupted(format!("unknown record format version {other}"))),
    }
}
