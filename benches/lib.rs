//! Shared setup of the criterion benchmarks: a runtime, the one payload every append bench
//! writes, and conversations to write to.
//!
//! Run them with `cargo bench -p handover-benches`.

use std::path::Path;

use handover::{
    Author, Channel, Config, ConversationEvent, ConversationId, CustomerId, Durability, Event,
    Handover, MessageText, RecordedEvent,
};
use handover_core::StreamId;
use handover_store::{SeqRange, SledStore, StoreOptions};

/// The text of every message the append benchmarks write, through the facade or raw.
pub const PAYLOAD_TEXT: &str = "How much is the Pro plan?";

/// The customer of every benchmark conversation.
pub const CUSTOMER: &str = "bench-customer";

/// A multi-threaded tokio runtime for the async benchmarks.
///
/// ```
/// let runtime = handover_benches::runtime();
/// assert_eq!(runtime.block_on(async { 1 + 1 }), 2);
/// ```
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts")
}

/// The payload as the store holds it: the customer's message, with no concern raised (the
/// policy finds none in [`PAYLOAD_TEXT`]).
///
/// ```
/// assert_eq!(handover_benches::customer_message().type_name(), "message_posted");
/// ```
pub fn customer_message() -> Event {
    Event::Conversation(ConversationEvent::MessagePosted {
        author: Author::Customer(CustomerId::new(CUSTOMER).expect("a valid id")),
        text: MessageText::new(PAYLOAD_TEXT).expect("a valid message"),
        concerns: Vec::new(),
    })
}

/// Opens a raw store in `dir` with `durability`.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let store = handover_benches::open_store(dir.path(), handover::Durability::Buffered).unwrap();
/// assert_eq!(handover_store::EventStore::head(&store), 0);
/// ```
pub fn open_store(dir: &Path, durability: Durability) -> anyhow::Result<SledStore> {
    let options = StoreOptions {
        durability,
        ..StoreOptions::default()
    };
    Ok(SledStore::open(dir, options)?)
}

/// Starts a runtime in `dir` with `durability`.
///
/// ```
/// # handover_benches::runtime().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let handover = handover_benches::start(dir.path(), handover::Durability::Flush).await.unwrap();
/// handover.shutdown().await;
/// # });
/// ```
pub async fn start(dir: &Path, durability: Durability) -> anyhow::Result<Handover> {
    Ok(Handover::start(Config::new(dir).durability(durability)).await?)
}

/// Opens `count` conversations for [`CUSTOMER`].
///
/// ```
/// # handover_benches::runtime().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let handover = handover_benches::start(dir.path(), handover::Durability::Buffered).await.unwrap();
/// let ids = handover_benches::open_conversations(&handover, 3).await.unwrap();
/// assert_eq!(ids.len(), 3);
/// handover.shutdown().await;
/// # });
/// ```
pub async fn open_conversations(
    handover: &Handover,
    count: usize,
) -> anyhow::Result<Vec<ConversationId>> {
    let mut ids = Vec::with_capacity(count);
    for _ in 0..count {
        let customer = CustomerId::new(CUSTOMER)?;
        ids.push(
            handover
                .open_conversation(customer, Channel::new("bench")?, None)
                .await?,
        );
    }
    Ok(ids)
}

/// Posts [`PAYLOAD_TEXT`] once as the customer of conversation `id`.
///
/// ```
/// # handover_benches::runtime().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let handover = handover_benches::start(dir.path(), handover::Durability::Buffered).await.unwrap();
/// let ids = handover_benches::open_conversations(&handover, 1).await.unwrap();
/// handover_benches::post(&handover, ids[0]).await.unwrap();
/// handover.shutdown().await;
/// # });
/// ```
pub async fn post(handover: &Handover, id: ConversationId) -> anyhow::Result<()> {
    let customer = CustomerId::new(CUSTOMER)?;
    handover
        .post_customer_message(id, customer, MessageText::new(PAYLOAD_TEXT)?)
        .await?;
    Ok(())
}

/// Writes one conversation of `events` events (an open, then customer messages) in `dir`
/// and returns its id, with the runtime stopped and the directory released.
///
/// ```
/// # handover_benches::runtime().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let id = handover_benches::write_conversation(dir.path(), 10).await.unwrap();
/// let store = handover_benches::open_store(dir.path(), handover::Durability::Buffered).unwrap();
/// assert_eq!(handover_benches::read_conversation(&store, id).unwrap().len(), 10);
/// # });
/// ```
pub async fn write_conversation(dir: &Path, events: usize) -> anyhow::Result<ConversationId> {
    let handover = start(dir, Durability::Buffered).await?;
    let id = open_conversations(&handover, 1).await?[0];
    for _ in 1..events {
        post(&handover, id).await?;
    }
    handover.shutdown().await;
    Ok(id)
}

/// Reads conversation `id`'s records straight from the store.
///
/// ```no_run
/// # fn example(store: &handover_store::SledStore, id: handover::ConversationId) -> anyhow::Result<()> {
/// let records = handover_benches::read_conversation(store, id)?;
/// # Ok(())
/// # }
/// ```
pub fn read_conversation(
    store: &SledStore,
    id: ConversationId,
) -> anyhow::Result<Vec<RecordedEvent>> {
    Ok(store.read_stream_sync(&StreamId::Conversation(id), SeqRange::ALL)?)
}
