//! The anchor: a small file beside sled's, outside sled, naming the last position the store
//! made durable and the hash of its record.
//!
//! sled's recovery stops at the first unreadable message of its own log and opens what came
//! before without an error, so damage in the middle of sled's log comes back as a shorter log.
//! Everything inside sled (records, index, high-water marks) is cut at the same point, so
//! nothing inside sled can tell. The anchor can: on open, the record it names must be in the
//! log with the same hash, or the store reports [`Damage::Truncated`].
//!
//! The file holds two slots, written alternately, each `[magic][crc32][body]`; a write torn by
//! a crash damages one slot, and the other still holds the anchor before it. A slot only ever
//! names a position that was durable before the slot was written, so a power cut cannot leave
//! an anchor ahead of the log.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::Path;

use handover_core::StreamId;

use handover_store::{decode_record_at, Damage, LogLocation, RecordHash, StoreError};

use crate::engine::OrStore;
use crate::keys::{event_key, parse_stream_key, push_stream_key};

/// The anchor file's name in the data directory.
pub(crate) const ANCHOR_FILE: &str = "handover.anchor";

const MAGIC: &[u8; 8] = b"HOANCHR1";
/// Slots sit in separate 4 KiB pages, so one torn page write cannot damage both.
const SLOT_OFFSETS: [u64; 2] = [0, 4096];
const SLOT_BYTES: usize = 512;

/// A durable point of the log: a position, the record there, and its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AnchorPoint {
    pub(crate) position: u64,
    pub(crate) stream: StreamId,
    pub(crate) seq: u64,
    pub(crate) hash: RecordHash,
}

/// The open anchor file.
pub(crate) struct Anchor {
    file: File,
    /// Counts writes; the slot with the higher one is the current anchor.
    generation: u64,
    /// Whether to `fdatasync` after each write.
    sync: bool,
    last: Option<AnchorPoint>,
}

impl Anchor {
    /// Opens (or creates) the anchor file in `dir` and reads the current anchor, if any.
    pub(crate) fn open(dir: &Path, sync: bool) -> Result<Anchor, StoreError> {
        let path = dir.join(ANCHOR_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        // A slot of the empty log names no record.
        let mut current: Option<(u64, Option<AnchorPoint>)> = None;
        for offset in SLOT_OFFSETS {
            let mut slot = [0u8; SLOT_BYTES];
            match file.read_exact_at(&mut slot, offset) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => continue,
                Err(e) => return Err(e.into()),
            }
            // A slot that fails its checks is a torn or never-written one: the other holds the
            // anchor. Both failing means no anchor survived, which reads as none.
            if let Some((generation, point)) = decode_slot(&slot) {
                if current.as_ref().is_none_or(|(g, _)| generation > *g) {
                    current = Some((generation, point));
                }
            }
        }
        let (generation, last) = current.unwrap_or((0, None));
        Ok(Anchor {
            file,
            generation,
            sync,
            last,
        })
    }

    /// The anchor read at open or written last; `None` for an anchor of the empty log, or for
    /// a file with no readable slot (see [`Anchor::is_set`]).
    pub(crate) fn last(&self) -> Option<&AnchorPoint> {
        self.last.as_ref()
    }

    /// Whether the file holds a readable anchor (of the empty log, or of a record). A new
    /// file has none until [`Anchor::set_empty`]; an existing one only if its slots are
    /// damaged or it was emptied.
    pub(crate) fn is_set(&self) -> bool {
        self.generation > 0
    }

    /// Anchors the empty log, so that the file is set from the moment the store opens.
    pub(crate) fn set_empty(&mut self) -> Result<(), StoreError> {
        self.put(None)
    }

    /// Records `point`, which must already be durable, in the slot not holding the current
    /// anchor.
    pub(crate) fn write(&mut self, point: AnchorPoint) -> Result<(), StoreError> {
        if self.last.as_ref() == Some(&point) {
            return Ok(());
        }
        self.put(Some(point))
    }

    fn put(&mut self, point: Option<AnchorPoint>) -> Result<(), StoreError> {
        let generation = self.generation + 1;
        let slot = encode_slot(generation, point.as_ref());
        let offset = SLOT_OFFSETS[(generation % 2) as usize];
        self.file.write_all_at(&slot, offset)?;
        if self.sync {
            self.file.sync_data()?;
        }
        self.generation = generation;
        self.last = point;
        Ok(())
    }
}

/// A slot of `point`, or of the empty log (position 0, no stream key).
fn encode_slot(generation: u64, point: Option<&AnchorPoint>) -> [u8; SLOT_BYTES] {
    let mut body = Vec::with_capacity(SLOT_BYTES);
    body.extend_from_slice(&generation.to_be_bytes());
    let mut key = Vec::with_capacity(160);
    match point {
        Some(point) => {
            body.extend_from_slice(&point.position.to_be_bytes());
            body.extend_from_slice(&point.seq.to_be_bytes());
            body.extend_from_slice(point.hash.as_bytes());
            push_stream_key(&mut key, &point.stream);
        }
        None => {
            body.extend_from_slice(&[0; 16]);
            body.extend_from_slice(RecordHash::ZERO.as_bytes());
        }
    }
    // Stream keys are at most 1 + 128 + 1 bytes (ids are bounded), far below the slot.
    body.extend_from_slice(&(key.len() as u16).to_be_bytes());
    body.extend_from_slice(&key);
    let mut slot = [0u8; SLOT_BYTES];
    slot[..8].copy_from_slice(MAGIC);
    slot[8..12].copy_from_slice(&crc32fast::hash(&body).to_be_bytes());
    slot[12..12 + 2].copy_from_slice(&(body.len() as u16).to_be_bytes());
    slot[14..14 + body.len()].copy_from_slice(&body);
    slot
}

fn decode_slot(slot: &[u8; SLOT_BYTES]) -> Option<(u64, Option<AnchorPoint>)> {
    if &slot[..8] != MAGIC {
        return None;
    }
    let crc = u32::from_be_bytes(slot[8..12].try_into().ok()?);
    let len = u16::from_be_bytes(slot[12..14].try_into().ok()?) as usize;
    let body = slot.get(14..14 + len)?;
    if crc32fast::hash(body) != crc {
        return None;
    }
    let u64_at = |at: usize| Some(u64::from_be_bytes(body.get(at..at + 8)?.try_into().ok()?));
    let generation = u64_at(0)?;
    let position = u64_at(8)?;
    let seq = u64_at(16)?;
    let hash = RecordHash::from_slice(body.get(24..56)?)?;
    let key_len = u16::from_be_bytes(body.get(56..58)?.try_into().ok()?) as usize;
    if generation == 0 {
        return None;
    }
    if key_len == 0 {
        return (position == 0).then_some((generation, None));
    }
    let (stream, rest) = parse_stream_key(body.get(58..58 + key_len)?)?;
    if !rest.is_empty() {
        return None;
    }
    Some((
        generation,
        Some(AnchorPoint {
            position,
            stream,
            seq,
            hash,
        }),
    ))
}

/// Checks that the log holds the record the anchor names, as it was acknowledged.
pub(crate) fn check_anchor(
    log: &sled::Tree,
    head: u64,
    point: &AnchorPoint,
) -> Result<(), StoreError> {
    let at = || LogLocation::record(&point.stream, point.seq, point.position);
    if head < point.position {
        return Err(StoreError::corrupted(
            at(),
            Damage::Truncated,
            format!(
                "the store acknowledged events up to position {}, but the log ends at position \
                 {head}: the storage engine lost acknowledged events",
                point.position
            ),
        ));
    }
    let Some(bytes) = log.get(event_key(&point.stream, point.seq)).or_store()? else {
        return Err(StoreError::corrupted(
            at(),
            Damage::Truncated,
            "the last acknowledged record is missing: the storage engine lost acknowledged events",
        ));
    };
    let record = decode_record_at(&bytes, at)?;
    if record.position != point.position || RecordHash::of(&bytes) != point.hash {
        return Err(StoreError::corrupted(
            at(),
            Damage::Chain,
            "the record at the last acknowledged position is not the one acknowledged there",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use handover_core::ConversationId;

    use super::*;

    fn point(position: u64) -> AnchorPoint {
        AnchorPoint {
            position,
            stream: StreamId::Conversation(ConversationId::from_uuid(uuid::Uuid::from_u128(7))),
            seq: position,
            hash: RecordHash::of(&position.to_be_bytes()),
        }
    }

    #[test]
    fn the_newest_slot_wins_and_a_torn_one_leaves_the_other() {
        let dir = tempfile::tempdir().unwrap();
        let mut anchor = Anchor::open(dir.path(), true).unwrap();
        assert_eq!(anchor.last(), None);
        assert!(!anchor.is_set());
        anchor.set_empty().unwrap();
        assert!(anchor.is_set());
        anchor.write(point(3)).unwrap();
        anchor.write(point(9)).unwrap();
        drop(anchor);
        assert_eq!(
            Anchor::open(dir.path(), true).unwrap().last(),
            Some(&point(9))
        );
        // Tear the slot holding position 9 (generation 3, the second slot).
        let file = OpenOptions::new()
            .write(true)
            .open(dir.path().join(ANCHOR_FILE))
            .unwrap();
        file.write_all_at(&[0xff; 40], SLOT_OFFSETS[1] + 20)
            .unwrap();
        assert_eq!(
            Anchor::open(dir.path(), true).unwrap().last(),
            Some(&point(3))
        );
    }
}
