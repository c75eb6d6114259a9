//! The key layout of the `log` tree: prefixes, stream keys, and the keys of records, high-water
//! marks and commands, with their parsers. Every other module builds and reads keys through
//! these functions.
//!
//! Stream keys: `c` + the conversation's 16 UUID bytes, `a` + the AI agent id + `0x00`, or
//! `h` + the human id + `0x00` (ids hold no control characters, so the terminator keeps the
//! key space prefix-free).

use handover_core::{AiAgentId, CommandId, ConversationId, HumanId, StreamId};
use handover_store::LogLocation;

pub(crate) const STREAM_PREFIX: u8 = b's';

/// `M` + stream key -> the stream's high-water mark (see `tip.rs`).
pub(crate) const MARK_PREFIX: u8 = b'M';

/// The one key `K` -> the position up to which the `M` keys are current (see `tip.rs`).
pub(crate) const CHECKPOINT_KEY: [u8; 1] = [b'K'];

/// `C` + stream key + command id -> the first seq and the count of the events that command
/// appended, so a retry of it is answered with them instead of appending again.
pub(crate) const COMMAND_PREFIX: u8 = b'C';

pub(crate) const CONVERSATION_KIND: u8 = b'c';

pub(crate) const AI_AGENT_KIND: u8 = b'a';

pub(crate) const HUMAN_KIND: u8 = b'h';

pub(crate) fn push_stream_key(key: &mut Vec<u8>, stream: &StreamId) {
    match stream {
        StreamId::Conversation(id) => {
            key.push(CONVERSATION_KIND);
            key.extend_from_slice(id.as_bytes());
        }
        StreamId::AiAgent(id) => {
            key.push(AI_AGENT_KIND);
            key.extend_from_slice(id.as_str().as_bytes());
            key.push(0);
        }
        StreamId::Human(id) => {
            key.push(HUMAN_KIND);
            key.extend_from_slice(id.as_str().as_bytes());
            key.push(0);
        }
    }
}

/// Parses a stream key back, for error messages and verification.
pub(crate) fn parse_stream_key(bytes: &[u8]) -> Option<(StreamId, &[u8])> {
    match bytes.split_first()? {
        (&CONVERSATION_KIND, rest) if rest.len() >= 16 => {
            let (id, rest) = rest.split_at(16);
            let uuid = uuid::Uuid::from_slice(id).ok()?;
            Some((
                StreamId::Conversation(ConversationId::from_uuid(uuid)),
                rest,
            ))
        }
        (&AI_AGENT_KIND, rest) => {
            let end = rest.iter().position(|&b| b == 0)?;
            let id = std::str::from_utf8(&rest[..end]).ok()?;
            Some((
                StreamId::AiAgent(AiAgentId::new(id).ok()?),
                &rest[end + 1..],
            ))
        }
        (&HUMAN_KIND, rest) => {
            let end = rest.iter().position(|&b| b == 0)?;
            let id = std::str::from_utf8(&rest[..end]).ok()?;
            Some((StreamId::Human(HumanId::new(id).ok()?), &rest[end + 1..]))
        }
        _ => None,
    }
}

pub(crate) fn event_key(stream: &StreamId, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 18 + 8);
    key.push(STREAM_PREFIX);
    push_stream_key(&mut key, stream);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The key of a stream's high-water mark.
pub(crate) fn mark_key(stream: &StreamId) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 18);
    key.push(MARK_PREFIX);
    push_stream_key(&mut key, stream);
    key
}

/// The key remembering what `command` appended to `stream`.
pub(crate) fn command_key(stream: &StreamId, command: &CommandId) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 18 + 16);
    key.push(COMMAND_PREFIX);
    push_stream_key(&mut key, stream);
    key.extend_from_slice(command.as_bytes());
    key
}

/// A command's entry: the first seq it appended and how many events.
pub(crate) fn encode_command_entry(first_seq: u64, count: u32) -> [u8; 12] {
    let mut value = [0u8; 12];
    value[..8].copy_from_slice(&first_seq.to_be_bytes());
    value[8..].copy_from_slice(&count.to_be_bytes());
    value
}

pub(crate) fn decode_command_entry(value: &[u8]) -> Option<(u64, u32)> {
    if value.len() != 12 {
        return None;
    }
    let first = be_u64(value.get(..8)?)?;
    let count = u32::from_be_bytes(value.get(8..12)?.try_into().ok()?);
    // A damaged entry must not name an empty or overflowing range.
    (first >= 1 && count >= 1 && first.checked_add(u64::from(count)).is_some())
        .then_some((first, count))
}

pub(crate) fn be_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

pub(crate) fn location(stream: &StreamId, seq: u64) -> LogLocation {
    LogLocation::in_stream(stream, seq)
}
