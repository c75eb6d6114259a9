//! Streams, events and small checks the properties share.

use std::sync::Arc;

use handover_core::{
    AgentName, AiAgentEvent, AiAgentId, Author, ConversationEvent, ConversationId, CustomerId,
    Event, HumanEvent, HumanId, MessageText, Presence, Role, StreamId, TenantId,
};
use handover_store::{Appended, EventStore, ExpectedVersion, RecordedEvent, SeqRange};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The seed for randomised properties: `HANDOVER_KIT_SEED`, or a fixed default so that a run
/// is reproducible without it.
pub(crate) fn seed() -> u64 {
    std::env::var("HANDOVER_KIT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6a6f_7572_6e61_6c21)
}

/// A generator seeded by [`seed`], printed so a failing run can be repeated.
pub(crate) fn rng(property: &str) -> (u64, ChaCha8Rng) {
    let seed = seed();
    println!("{property}: seed {seed} (HANDOVER_KIT_SEED={seed} repeats this run)");
    (seed, ChaCha8Rng::seed_from_u64(seed))
}

/// A number from `name` in the environment, or `default`.
pub(crate) fn env_count(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// The conversation stream numbered `n` (fixed ids, so a failure names the same stream).
pub(crate) fn conversation(n: u128) -> StreamId {
    let base = 0x0190_f1f0_0000_7000_8000_0000_0000_0000_u128;
    StreamId::Conversation(ConversationId::from_uuid(uuid::Uuid::from_u128(base + n)))
}

/// The AI-agent stream of `id`.
pub(crate) fn agent_stream(id: &str) -> StreamId {
    StreamId::AiAgent(AiAgentId::new(id).expect("a valid agent id"))
}

/// The human stream of `id`.
pub(crate) fn human_stream(id: &str) -> StreamId {
    StreamId::Human(HumanId::new(id).expect("a valid human id"))
}

/// The registration of the human `id`, an agent of the default tenant.
pub(crate) fn human_registered(id: &str) -> Event {
    Event::Human(HumanEvent::Registered {
        human_id: HumanId::new(id).expect("a valid human id"),
        tenant: TenantId::default_tenant(),
        name: AgentName::new(format!("{id} person")).expect("a valid name"),
        role: Role::Agent,
        teams: vec![],
        capacity: 5,
    })
}

/// The human `id` signing in.
pub(crate) fn human_available(id: &str) -> Event {
    Event::Human(HumanEvent::PresenceChanged {
        human_id: HumanId::new(id).expect("a valid human id"),
        presence: Presence::Available,
    })
}

/// A customer's message; the text tells events apart.
pub(crate) fn message(text: &str) -> Event {
    Event::Conversation(ConversationEvent::MessagePosted {
        author: Author::Customer(CustomerId::new("cust-1").expect("a valid customer id")),
        text: MessageText::new(text).expect("a valid message"),
        concerns: vec![],
    })
}

/// `count` messages `"<prefix> 1"`, `"<prefix> 2"`, ...
pub(crate) fn messages(prefix: &str, count: usize) -> Vec<Event> {
    (1..=count)
        .map(|i| message(&format!("{prefix} {i}")))
        .collect()
}

/// The registration of the AI agent `id`.
pub(crate) fn registered(id: &str) -> Event {
    Event::AiAgent(AiAgentEvent::Registered {
        agent_id: AiAgentId::new(id).expect("a valid agent id"),
        name: AgentName::new(format!("{id} bot")).expect("a valid name"),
        specialties: vec![],
    })
}

/// The activation of the AI agent `id`.
pub(crate) fn activated(id: &str) -> Event {
    Event::AiAgent(AiAgentEvent::Activated {
        agent_id: AiAgentId::new(id).expect("a valid agent id"),
    })
}

/// Appends and expects success: the caller knows the version.
pub(crate) async fn append(
    store: &dyn EventStore,
    stream: &StreamId,
    expected: ExpectedVersion,
    events: Vec<Event>,
) -> Appended {
    store
        .append(stream, expected, events)
        .await
        .unwrap_or_else(|e| panic!("append to {stream} failed: {e}"))
        .unwrap_or_else(|c| panic!("append to {stream} conflicted: {c}"))
}

/// The whole stream.
pub(crate) async fn read(store: &dyn EventStore, stream: &StreamId) -> Vec<RecordedEvent> {
    read_range(store, stream, SeqRange::ALL).await
}

/// Part of a stream.
pub(crate) async fn read_range(
    store: &dyn EventStore,
    stream: &StreamId,
    range: SeqRange,
) -> Vec<RecordedEvent> {
    store
        .read_stream(stream, range)
        .await
        .unwrap_or_else(|e| panic!("reading {stream} {range:?} failed: {e}"))
}

/// The whole log in position order.
pub(crate) async fn read_all(store: &dyn EventStore) -> Vec<RecordedEvent> {
    store
        .read_all(1, usize::MAX)
        .await
        .unwrap_or_else(|e| panic!("reading the log failed: {e}"))
}

/// The stream's version.
pub(crate) async fn version(store: &dyn EventStore, stream: &StreamId) -> u64 {
    store
        .stream_version(stream)
        .await
        .unwrap_or_else(|e| panic!("the version of {stream} failed: {e}"))
}

/// The records an append returned, as owned values.
pub(crate) fn owned(appended: &Appended) -> Vec<RecordedEvent> {
    appended.iter().map(|r| RecordedEvent::clone(r)).collect()
}

/// Seqs of `records`.
pub(crate) fn seqs(records: &[RecordedEvent]) -> Vec<u64> {
    records.iter().map(|r| r.seq).collect()
}

/// Positions of `records`.
pub(crate) fn positions(records: &[RecordedEvent]) -> Vec<u64> {
    records.iter().map(|r| r.position).collect()
}

/// Events of `records`.
pub(crate) fn events(records: &[RecordedEvent]) -> Vec<Event> {
    records.iter().map(|r| r.event.clone()).collect()
}

/// Drops the last handle of a store; fails if anything else still holds one, since reopening
/// the place would then not be a restart.
pub(crate) fn close(store: Arc<dyn EventStore>) {
    let others = Arc::strong_count(&store) - 1;
    assert_eq!(
        others, 0,
        "{others} other handles of the store are still alive"
    );
    drop(store);
}
