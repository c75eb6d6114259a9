//! High-water marks: where each stream ends (its version and its last record's hash).
//!
//! The durable record of a stream's new end is the tail its group's index chunk carries
//! (`index.rs`), written in the same batch as the records. The `M` + stream key marks are a
//! checkpointed materialisation of those tails: the writer keeps the tails written since the
//! last checkpoint in [`Marks`] (which readers consult first), and every
//! [`CHECKPOINT_GROUPS`] groups, or once it holds [`CHECKPOINT_STREAMS`] streams, writes all of
//! them as `M` keys with the checkpoint key `K` (the position up to which `M` keys are current,
//! and the previous checkpoint's) in the same batch as that group. At open, [`replay_marks`]
//! moves every `M` key that is behind the tails of the whole index forward before anything
//! reads, checking that the chunks follow each other without a gap. So marks cost one write
//! per group, not one per append.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use handover_core::StreamId;
use handover_store::{record_previous_hash, Damage, LogLocation, RecordHash, StoreError};

use crate::engine::{lock, OrStore};
use crate::index::{chunk_key, decode_chunk, CHUNK_PREFIX};
use crate::keys::{be_u64, mark_key, push_stream_key, CHECKPOINT_KEY, STREAM_PREFIX};

/// Most groups between two checkpoints: bounds the chunks an open replays.
pub(crate) const CHECKPOINT_GROUPS: u32 = 64;

/// Most streams whose tails wait for a checkpoint: bounds [`Marks`]' memory.
pub(crate) const CHECKPOINT_STREAMS: usize = 4096;

/// Format 1 named the position alone; read as a checkpoint whose previous one is unknown.
const CHECKPOINT_FORMAT_V1: u8 = 1;
const CHECKPOINT_BYTES_V1: usize = 1 + 4 + 8;
/// Format 2: the position and the previous checkpoint's.
const CHECKPOINT_FORMAT: u8 = 2;
const CHECKPOINT_BYTES: usize = 1 + 4 + 8 + 8;

/// The tails written since the last checkpoint, shared by the writer and the readers.
#[derive(Default)]
pub(crate) struct Marks {
    /// Each stream's end, for the streams appended to since the last checkpoint: newer than
    /// their `M` keys, so readers look here first.
    pending: Mutex<HashMap<StreamId, Tip>>,
    /// Held for writing by the writer from the moment it publishes a group's tails here until
    /// the group is applied, so a reader that finds a tail ahead of the records can wait for
    /// the records instead of taking the gap for damage.
    applying: RwLock<()>,
}

impl Marks {
    /// Where `stream` ends by its mark: the tail written since the last checkpoint, or its `M`
    /// key; `None` if it has neither.
    pub(crate) fn tail(
        &self,
        log: &sled::Tree,
        stream: &StreamId,
    ) -> Result<Option<Tip>, StoreError> {
        if let Some(tip) = lock(&self.pending).get(stream) {
            return Ok(Some(*tip));
        }
        read_mark(log, stream)
    }

    /// As [`Marks::tail`], but when the stream has no mark, looks again once no group is being
    /// applied: a group publishes its tails before it is applied and a checkpoint forgets them
    /// after, so a reader that found records first and no mark after may have looked between
    /// the two. Once settled, the tails here and the `M` keys are exact.
    pub(crate) fn settled_tail(
        &self,
        log: &sled::Tree,
        stream: &StreamId,
    ) -> Result<Option<Tip>, StoreError> {
        match self.tail(log, stream)? {
            Some(tip) => Ok(Some(tip)),
            None => {
                let _settled = self.settled();
                self.tail(log, stream)
            }
        }
    }

    /// The tail written since the last checkpoint, if any.
    pub(crate) fn pending(&self, stream: &StreamId) -> Option<Tip> {
        lock(&self.pending).get(stream).copied()
    }

    /// How many streams wait for a checkpoint.
    pub(crate) fn pending_len(&self) -> usize {
        lock(&self.pending).len()
    }

    /// Every tail waiting for a checkpoint.
    pub(crate) fn pending_tails(&self) -> Vec<(StreamId, Tip)> {
        lock(&self.pending)
            .iter()
            .map(|(stream, tip)| (stream.clone(), *tip))
            .collect()
    }

    /// Publishes a group's tails; the caller holds [`Marks::applying`] until the group is
    /// applied.
    pub(crate) fn publish(&self, tails: impl IntoIterator<Item = (StreamId, Tip)>) {
        lock(&self.pending).extend(tails);
    }

    /// Forgets every tail: a checkpoint wrote them all as `M` keys.
    pub(crate) fn clear(&self) {
        lock(&self.pending).clear();
    }

    /// Taken by the writer while it publishes tails and applies their group.
    pub(crate) fn applying(&self) -> RwLockWriteGuard<'_, ()> {
        self.applying
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits until no group is being applied.
    pub(crate) fn settled(&self) -> RwLockReadGuard<'_, ()> {
        self.applying
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The checkpoint key's value: `[format 2][crc32 BE of the rest][position u64 BE][previous
/// u64 BE]`, the position up to which `M` keys are current and the one of the checkpoint
/// before it (0 if none).
pub(crate) fn encode_checkpoint(checkpoint: Checkpoint) -> [u8; CHECKPOINT_BYTES] {
    let mut value = [0u8; CHECKPOINT_BYTES];
    value[0] = CHECKPOINT_FORMAT;
    value[5..13].copy_from_slice(&checkpoint.position.to_be_bytes());
    value[13..].copy_from_slice(&checkpoint.previous.to_be_bytes());
    let crc = crc32fast::hash(&value[5..]);
    value[1..5].copy_from_slice(&crc.to_be_bytes());
    value
}

/// A checkpoint of the high-water marks: `M` keys are current up to `position`, and were up
/// to `previous` at the checkpoint before.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub(crate) position: u64,
    pub(crate) previous: u64,
}

impl Checkpoint {
    /// The checkpoint after this one, at `position`.
    pub(crate) fn next(self, position: u64) -> Checkpoint {
        Checkpoint {
            position,
            previous: self.position,
        }
    }
}

/// The checkpoint, if one was written.
fn read_checkpoint(log: &sled::Tree) -> Result<Option<Checkpoint>, StoreError> {
    let Some(value) = log.get(CHECKPOINT_KEY).or_store()? else {
        return Ok(None);
    };
    let sound = matches!(
        (value.first(), value.len()),
        (Some(&CHECKPOINT_FORMAT), CHECKPOINT_BYTES)
            | (Some(&CHECKPOINT_FORMAT_V1), CHECKPOINT_BYTES_V1)
    ) && crc32fast::hash(&value[5..]).to_be_bytes() == value[1..5];
    let position = value.get(5..13).and_then(be_u64);
    // Format 1 does not name the checkpoint before: replay from the start.
    let previous = match value.get(13..) {
        Some(previous) if !previous.is_empty() => be_u64(previous),
        _ => Some(0),
    };
    match (position, previous) {
        (Some(position), Some(previous)) if sound && previous <= position => {
            Ok(Some(Checkpoint { position, previous }))
        }
        _ => Err(StoreError::corrupted(
            LogLocation::default(),
            Damage::Index,
            "the high-water mark checkpoint is damaged",
        )),
    }
}

/// Makes the `M` keys current at open: reads the whole index and moves every `M` key that is
/// behind the last tail the chunks carry for its stream forward, and the checkpoint to the
/// last position, in one batch. A mark never moves back: one ahead of the index is damage for
/// the reads to report.
///
/// The whole index, not only the chunks after the checkpoint: a node of the engine's tree can
/// fall back to an older version (a damaged page of its log, a missing blob file), and when one
/// node holds a stream's records and its `M` key, both fall back together, whenever they were
/// written; the chunks, elsewhere in the tree, still name the stream's end. The chunks read
/// must follow each other without a gap: a chunk lost in the middle of the log would otherwise
/// take the only record of its streams' ends with it. With `past_gaps` (an audit's open, which
/// reports gaps itself when it reads the index), a gap does not stop the replay, but then
/// nothing is written: the tails go into `marks` for this session alone, so the damage stays as
/// visible to the next open as it was. Returns how many marks it moved and the checkpoint the
/// log is at now.
pub(crate) fn replay_marks(
    log: &sled::Tree,
    marks: &Marks,
    past_gaps: bool,
) -> Result<(usize, Checkpoint), StoreError> {
    let checkpoint = read_checkpoint(log)?;
    // The whole index: a tree node of sled's that falls back to an older version can take a
    // stream's records and its `M` key back together, whenever they were written; only the
    // index chunks, elsewhere in the tree, still name the stream's end.
    let from = 1;
    let mut expected = from;
    let mut gap = false;
    let mut tails: HashMap<StreamId, Tip> = HashMap::new();
    for entry in log.range(chunk_key(from)..=chunk_key(u64::MAX)) {
        let (key, value) = entry.or_store()?;
        if key.first() != Some(&CHUNK_PREFIX) {
            break;
        }
        let chunk = decode_chunk(&key, &value)?;
        gap |= chunk.first != expected;
        if chunk.first != expected && !past_gaps {
            return Err(StoreError::corrupted(
                LogLocation::at_position(expected),
                Damage::Gap,
                format!(
                    "the global index skips to position {} (position {expected} is missing): a \
                     chunk the high-water marks are replayed from is missing",
                    chunk.first
                ),
            ));
        }
        expected = chunk.end();
        for (stream, seq, hash) in chunk.tails {
            tails.insert(stream, Tip { version: seq, hash });
        }
    }
    let head = expected - 1;
    let now = match checkpoint {
        Some(checkpoint) if checkpoint.position >= head => checkpoint,
        Some(checkpoint) => checkpoint.next(head),
        None => Checkpoint::default().next(head),
    };
    // A mark is only ever moved forward: one ahead of the index is damage for the reads to
    // report (the index lost its end), not something to write back over.
    let mut behind = Vec::with_capacity(tails.len());
    for (stream, tip) in tails {
        let current = match log.get(mark_key(&stream)).or_store()? {
            Some(value) => Some(Tip::decode(&value, &stream)?),
            None => None,
        };
        if current.is_none_or(|current| current.version < tip.version) {
            behind.push((stream, tip));
        }
    }
    let tails = behind;
    if tails.is_empty() && checkpoint == Some(now) {
        return Ok((0, now));
    }
    if gap {
        let replayed = tails.len();
        marks.publish(tails);
        return Ok((replayed, checkpoint.unwrap_or_default()));
    }
    let mut batch = sled::Batch::default();
    let written = tails.len();
    for (stream, tip) in tails {
        batch.insert(mark_key(&stream), &tip.encode()[..]);
    }
    batch.insert(&CHECKPOINT_KEY[..], &encode_checkpoint(now)[..]);
    log.apply_batch(batch).or_store()?;
    Ok((written, now))
}

pub(crate) const MARK_FORMAT: u8 = 1;

pub(crate) const MARK_BYTES: usize = 1 + 4 + 8 + RecordHash::LEN;

/// Where a stream ends: its version (highest seq, 0 when empty) and the hash of its last
/// record ([`RecordHash::ZERO`] when empty). Carried by the index chunk written in the same
/// batch as its records, and from there kept as the stream's high-water mark, so a stream that
/// reads shorter than its mark lost acknowledged events.
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
pub(crate) fn stream_tip(
    log: &sled::Tree,
    marks: &Marks,
    stream: &StreamId,
) -> Result<Tip, StoreError> {
    if let Some(tip) = marks.tail(log, stream)? {
        return Ok(tip);
    }
    let mut prefix = vec![STREAM_PREFIX];
    push_stream_key(&mut prefix, stream);
    let last = log.scan_prefix(&prefix).next_back();
    // Records found after no mark was: look for the mark again, settled.
    if last.is_some() {
        if let Some(tip) = marks.settled_tail(log, stream)? {
            return Ok(tip);
        }
    }
    match last {
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
