//! The global index: which stream record holds each position, in chunks.
//!
//! A chunk covers consecutive positions and is written in the same sled batch as the records it
//! points to: key `G` + its first position (u64 BE), value
//! `[format u8 = 2][CRC-32 BE of the entries][entries]`, where each entry is a stream key (which
//! delimits itself), the seq (u64 BE), and a tail flag: 0, or 1 followed by the record's hash
//! (32 bytes) when the entry is its stream's last in the group. The journal writes one chunk
//! per group (split every [`CHUNK_POSITIONS_MAX`] positions), so the global order costs one
//! sled insert per group instead of one per event, and is still one range scan; the tails make
//! the chunk the durable record of each stream's new high-water mark (see `tip.rs`). Format 1
//! chunks, written before tails, have no flag and are still read.
//!
//! Logs written before chunks held one entry per event (`g` + position -> stream key + seq);
//! [`migrate_legacy`] rewrites them into chunks when the store opens.

use handover_core::StreamId;

use handover_store::{Damage, LogLocation, RecordHash, StoreError};

use crate::engine::OrStore;
use crate::keys::{be_u64, parse_stream_key};

/// Key prefix of index chunks.
pub(crate) const CHUNK_PREFIX: u8 = b'G';
/// Key prefix of the per-event entries of logs written before chunks.
pub(crate) const LEGACY_PREFIX: u8 = b'g';
/// Most positions in one chunk: keeps a chunk far below the size at which sled moves a value
/// out of its log into a separate blob file.
pub(crate) const CHUNK_POSITIONS_MAX: usize = 512;
/// Format 1: entries without a tail flag. Read, no longer written.
const CHUNK_FORMAT_V1: u8 = 1;
/// Format 2: every entry has a tail flag.
const CHUNK_FORMAT: u8 = 2;
const CHUNK_HEADER_BYTES: usize = 1 + 4;
const NOT_TAIL: u8 = 0;
const TAIL: u8 = 1;

/// A decoded chunk: its first position, the stream and seq of each position from there, and
/// the tails it carries (each stream's last entry in its group, with that record's hash).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub(crate) first: u64,
    pub(crate) entries: Vec<(StreamId, u64)>,
    pub(crate) tails: Vec<(StreamId, u64, RecordHash)>,
}

impl Chunk {
    /// The position after its last.
    pub(crate) fn end(&self) -> u64 {
        self.first + self.entries.len() as u64
    }
}

/// The key of the chunk whose first position is `first`.
pub(crate) fn chunk_key(first: u64) -> [u8; 9] {
    let mut key = [CHUNK_PREFIX; 9];
    key[1..].copy_from_slice(&first.to_be_bytes());
    key
}

/// Cuts the index entries of consecutive positions into chunks and puts each finished chunk
/// into a sled batch: the journal's one per group, and the migration's.
#[derive(Default)]
pub(crate) struct IndexChunks {
    first: u64,
    len: usize,
    bytes: Vec<u8>,
}

impl IndexChunks {
    /// Adds the entry of `position`: its record's stream key and seq, which is the record's
    /// key without its `s` (and what a first-layout index entry holds), and `tail`, the
    /// record's hash when it is its stream's last in the group. When the chunk is full it goes
    /// into `batch`, and this returns true.
    pub(crate) fn push(
        &mut self,
        position: u64,
        entry: &[u8],
        tail: Option<&RecordHash>,
        batch: &mut sled::Batch,
    ) -> bool {
        if self.len == 0 {
            self.first = position;
            self.bytes.extend_from_slice(&[CHUNK_FORMAT, 0, 0, 0, 0]);
        }
        self.bytes.extend_from_slice(entry);
        match tail {
            Some(hash) => {
                self.bytes.push(TAIL);
                self.bytes.extend_from_slice(hash.as_bytes());
            }
            None => self.bytes.push(NOT_TAIL),
        }
        self.len += 1;
        if self.len == CHUNK_POSITIONS_MAX {
            self.finish(batch);
            return true;
        }
        false
    }

    /// Puts the chunk in progress, if any, into `batch`, checksummed.
    pub(crate) fn finish(&mut self, batch: &mut sled::Batch) {
        if self.len == 0 {
            return;
        }
        let mut bytes = std::mem::take(&mut self.bytes);
        self.len = 0;
        let crc = crc32fast::hash(&bytes[CHUNK_HEADER_BYTES..]);
        bytes[1..CHUNK_HEADER_BYTES].copy_from_slice(&crc.to_be_bytes());
        batch.insert(&chunk_key(self.first)[..], bytes);
    }
}

/// Decodes a chunk stored under `key`, of format 1 or 2.
pub(crate) fn decode_chunk(key: &[u8], value: &[u8]) -> Result<Chunk, StoreError> {
    let first = key
        .get(1..)
        .and_then(be_u64)
        .ok_or_else(|| damaged(0, format!("malformed index chunk key {key:?}")))?;
    let (header, mut entries) = value
        .split_at_checked(CHUNK_HEADER_BYTES)
        .ok_or_else(|| damaged(first, "truncated index chunk".to_owned()))?;
    let format = header[0];
    if format != CHUNK_FORMAT && format != CHUNK_FORMAT_V1 {
        return Err(damaged(
            first,
            format!("index chunk of unknown format {}", header[0]),
        ));
    }
    let crc = u32::from_be_bytes(header[1..].try_into().expect("four bytes"));
    if crc32fast::hash(entries) != crc {
        return Err(damaged(first, "index chunk fails its checksum".to_owned()));
    }
    let mut out = Vec::new();
    let mut tails = Vec::new();
    while !entries.is_empty() {
        let position = first.saturating_add(out.len() as u64);
        let truncated = || damaged(position, "truncated index chunk entry".to_owned());
        let (stream, rest) = parse_stream_key(entries)
            .ok_or_else(|| damaged(position, "malformed stream key in index chunk".to_owned()))?;
        let (seq, mut rest) = rest.split_at_checked(8).ok_or_else(truncated)?;
        let seq = be_u64(seq).ok_or_else(truncated)?;
        if format == CHUNK_FORMAT {
            let (flag, after) = rest.split_first().ok_or_else(truncated)?;
            rest = after;
            match *flag {
                NOT_TAIL => {}
                TAIL => {
                    let (hash, after) = rest
                        .split_at_checked(RecordHash::LEN)
                        .ok_or_else(truncated)?;
                    rest = after;
                    let hash = RecordHash::from_slice(hash).ok_or_else(truncated)?;
                    tails.push((stream.clone(), seq, hash));
                }
                other => {
                    return Err(damaged(
                        position,
                        format!("index chunk entry with tail flag {other}"),
                    ))
                }
            }
        }
        out.push((stream, seq));
        entries = rest;
    }
    if out.is_empty() {
        return Err(damaged(first, "empty index chunk".to_owned()));
    }
    // Positions start at 1, and a damaged key must not make the caller's arithmetic overflow.
    if first == 0 || first.checked_add(out.len() as u64).is_none() {
        return Err(damaged(
            first,
            "index chunk at an impossible position".to_owned(),
        ));
    }
    Ok(Chunk {
        first,
        entries: out,
        tails,
    })
}

fn damaged(position: u64, detail: String) -> StoreError {
    StoreError::corrupted(LogLocation::at_position(position), Damage::Index, detail)
}

/// Rewrites the per-event index entries of an older log into chunks, one sled batch per chunk
/// (each batch inserts the chunk and removes the entries it replaces, so a crash midway leaves
/// a log the next open finishes migrating). Returns how many entries were migrated.
pub(crate) fn migrate_legacy(log: &sled::Tree) -> Result<u64, StoreError> {
    let mut migrated = 0;
    let mut chunks = IndexChunks::default();
    let mut batch = sled::Batch::default();
    let mut expected = None;
    for entry in log.scan_prefix([LEGACY_PREFIX]) {
        let (key, pointer) = entry.or_store()?;
        let position = key
            .get(1..)
            .and_then(be_u64)
            .ok_or_else(|| damaged(0, "malformed legacy index key".to_owned()))?;
        if expected.is_some_and(|expected| expected != position) {
            return Err(StoreError::corrupted(
                LogLocation::at_position(expected.unwrap_or_default()),
                Damage::Gap,
                format!("the legacy global index skips to position {position}"),
            ));
        }
        let well_formed = parse_stream_key(&pointer).is_some_and(|(_, seq)| seq.len() == 8);
        if !well_formed {
            return Err(damaged(position, "malformed legacy index entry".to_owned()));
        }
        batch.remove(&key);
        expected = Some(position + 1);
        migrated += 1;
        // The records of a log indexed per event are of format 1: no tails to carry.
        if chunks.push(position, &pointer, None, &mut batch) {
            log.apply_batch(std::mem::take(&mut batch)).or_store()?;
        }
    }
    if migrated % CHUNK_POSITIONS_MAX as u64 != 0 {
        chunks.finish(&mut batch);
        log.apply_batch(batch).or_store()?;
    }
    Ok(migrated)
}

#[cfg(test)]
mod tests {
    use handover_core::{AiAgentId, ConversationId};

    use super::*;
    use crate::keys::push_stream_key;

    #[test]
    fn a_chunk_round_trips_and_detects_damage() {
        let conversation =
            StreamId::Conversation(ConversationId::from_uuid(uuid::Uuid::from_u128(7)));
        let agent = StreamId::AiAgent(AiAgentId::new("faq").unwrap());
        let mut chunks = IndexChunks::default();
        let mut batch = sled::Batch::default();
        let (agent_tail, conversation_tail) = (RecordHash::of(b"3"), RecordHash::of(b"2"));
        let mut legacy = vec![1, 0, 0, 0, 0];
        for (position, (stream, seq, tail)) in (40..).zip([
            (&conversation, 1, None),
            (&agent, 3, Some(&agent_tail)),
            (&conversation, 2, Some(&conversation_tail)),
        ]) {
            let mut entry = Vec::new();
            push_stream_key(&mut entry, stream);
            entry.extend_from_slice(&u64::to_be_bytes(seq));
            legacy.extend_from_slice(&entry);
            assert!(!chunks.push(position, &entry, tail, &mut batch));
        }
        chunks.finish(&mut batch);
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("log").unwrap();
        tree.apply_batch(batch).unwrap();
        let (key, value) = tree.first().unwrap().unwrap();
        let (key, value) = (key.to_vec(), value.to_vec());
        let chunk = decode_chunk(&key, &value).unwrap();
        assert_eq!(chunk.first, 40);
        assert_eq!(chunk.end(), 43);
        let entries = [
            (conversation.clone(), 1),
            (agent.clone(), 3),
            (conversation.clone(), 2),
        ];
        assert_eq!(chunk.entries, entries);
        assert_eq!(
            chunk.tails,
            [
                (agent, 3, agent_tail),
                (conversation.clone(), 2, conversation_tail)
            ]
        );
        // A format 1 chunk, written before tails: the same entries, no tails.
        let crc = crc32fast::hash(&legacy[5..]);
        legacy[1..5].copy_from_slice(&crc.to_be_bytes());
        let chunk = decode_chunk(&key, &legacy).unwrap();
        assert_eq!((chunk.first, &chunk.entries[..]), (40, &entries[..]));
        assert!(chunk.tails.is_empty());
        for at in 0..value.len() {
            let mut flipped = value.clone();
            flipped[at] ^= 0x10;
            assert!(decode_chunk(&key, &flipped).is_err(), "flip at {at}");
        }
        for len in 0..value.len() {
            assert!(decode_chunk(&key, &value[..len]).is_err(), "cut at {len}");
        }
    }
}
