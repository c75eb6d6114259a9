//! How a stream is named in the tables: a kind and an id, ordered as sled orders its keys
//! (ids compare byte by byte, hence `COLLATE "C"` in every query that sorts by id).

use handover_core::StreamId;

pub(crate) const CONVERSATION: i16 = 1;
pub(crate) const AI_AGENT: i16 = 2;
pub(crate) const HUMAN: i16 = 3;

/// `(stream_kind, stream_id)` of `stream`: a conversation's id is its UUID in lowercase
/// hyphenated form, whose order is the order of its bytes.
pub(crate) fn stream_key(stream: &StreamId) -> (i16, String) {
    match stream {
        StreamId::Conversation(id) => (CONVERSATION, id.to_string()),
        StreamId::AiAgent(id) => (AI_AGENT, id.as_str().to_owned()),
        StreamId::Human(id) => (HUMAN, id.as_str().to_owned()),
    }
}

/// `u64` arguments in the tables' `bigint`: seqs and positions never reach `i64::MAX`, and a
/// bound beyond it (`u64::MAX` for "to the end") reads as the largest `bigint`.
pub(crate) fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use handover_core::{AiAgentId, ConversationId};

    use super::*;

    #[test]
    fn uuid_text_orders_as_its_bytes() {
        let a = ConversationId::from_uuid(uuid::Uuid::now_v7());
        let b = ConversationId::from_uuid(uuid::Uuid::now_v7());
        let (_, ta) = stream_key(&StreamId::Conversation(a));
        let (_, tb) = stream_key(&StreamId::Conversation(b));
        assert_eq!(
            a.as_bytes().cmp(b.as_bytes()),
            ta.as_bytes().cmp(tb.as_bytes())
        );
    }

    #[test]
    fn kinds_are_distinct_and_bounds_clamp() {
        let agent = StreamId::AiAgent(AiAgentId::new("faq").unwrap());
        assert_eq!(stream_key(&agent), (AI_AGENT, "faq".to_owned()));
        assert_eq!(clamp(u64::MAX), i64::MAX);
        assert_eq!(clamp(7), 7);
    }
}
