//! High-water marks: where each stream ends (its version and its last record's hash), stored
//! under `M` + stream key.

use handover_core::StreamId;
use handover_store::{record_previous_hash, Damage, LogLocation, RecordHash, StoreError};

use crate::engine::OrStore;
use crate::keys::{be_u64, mark_key, push_stream_key, STREAM_PREFIX};

pub(crate) const MARK_FORMAT: u8 = 1;

pub(crate) const MARK_BYTES: usize = 1 + 4 + 8 + RecordHash::LEN;

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

    pub(crate) fn decode(value: &[u8], stream: &StreamId) -> Result<Tip, StoreError> {
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
pub(crate) fn read_mark(log: &sled::Tree, stream: &StreamId) -> Result<Option<Tip>, StoreError> {
    match log.get(mark_key(stream)).or_store()? {
        Some(value) => Ok(Some(Tip::decode(&value, stream)?)),
        None => Ok(None),
    }
}

/// Where `stream` ends: its mark, or for a stream written before marks existed (format 1
/// records) its last record. A stream whose last record is of format 2 has a mark: without one,
/// the log lost the batch that wrote it, and this is [`Damage::Truncated`].
pub(crate) fn stream_tip(log: &sled::Tree, stream: &StreamId) -> Result<Tip, StoreError> {
    if let Some(tip) = read_mark(log, stream)? {
        return Ok(tip);
    }
    let mut prefix = vec![STREAM_PREFIX];
    push_stream_key(&mut prefix, stream);
    match log.scan_prefix(&prefix).next_back() {
        None => Ok(Tip::EMPTY),
        Some(entry) => {
            let (key, value) = entry.or_store()?;
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
            if record_previous_hash(&value).is_some() {
                return Err(StoreError::corrupted(
                    LogLocation::in_stream(stream, version),
                    Damage::Truncated,
                    "the stream has no high-water mark: the log lost the batch that wrote it",
                ));
            }
            Ok(Tip {
                version,
                hash: RecordHash::of(&value),
            })
        }
    }
}
