//! Shared setup of the criterion benchmarks: a runtime, the one payload every append bench
//! writes, and conversations to write to.
//!
//! Run them with `cargo bench -p handover-benches`.

use std::path::Path;

use handover::{
    AgentName, Author, Channel, Config, ConversationEvent, ConversationId, CustomerId, Durability,
    Event, Handover, HumanId, MessageText, NewHuman, Presence, RecordedEvent, SystemActor,
    TenantId, Timestamp,
};
use handover_core::StreamId;
use handover_sled::{SledOptions, SledStore};
use handover_store::{SeqRange, StoreStats};

/// The text of every message the append benchmarks write, through the facade or raw.
pub const PAYLOAD_TEXT: &str = "How much is the Pro plan?";

/// The customer of every benchmark conversation.
pub const CUSTOMER: &str = "bench-customer";

/// The human every benchmark conversation is given to when it opens: a supervisor of the
/// default tenant, signed in by [`start`] (and [`sign_in`]).
pub const HUMAN: &str = "bench-human";

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
    let options = SledOptions {
        durability,
        ..SledOptions::default()
    };
    Ok(SledStore::open(dir, options)?)
}

/// Starts a runtime in `dir` with `durability`.
///
/// ```
/// # handover_benches::runtime().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let handover = handover_benches::start(dir.path(), handover::Durability::Durable).await.unwrap();
/// handover.shutdown().await;
/// # });
/// ```
pub async fn start(dir: &Path, durability: Durability) -> anyhow::Result<Handover> {
    let handover = Handover::start(Config::new(dir).durability(durability)).await?;
    sign_in(&handover).await?;
    Ok(handover)
}

/// Registers [`HUMAN`] as a supervisor and signs them in, unless that is done already (the
/// runtime reopened a directory where they are).
///
/// ```
/// # handover_benches::runtime().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let handover = handover::Handover::start(handover::Config::new(dir.path())).await.unwrap();
/// handover_benches::sign_in(&handover).await.unwrap();
/// handover_benches::sign_in(&handover).await.unwrap();
/// # });
/// ```
pub async fn sign_in(handover: &Handover) -> anyhow::Result<()> {
    let id = HumanId::new(HUMAN)?;
    if handover.human(&id).is_none() {
        handover
            .register_human(NewHuman::supervisor(id.clone(), AgentName::new("Bench")?))
            .await?;
    }
    if handover.human(&id).map(|h| h.presence) != Some(Presence::Available) {
        handover.set_presence(id, Presence::Available).await?;
    }
    Ok(())
}

/// Opens `count` conversations for [`CUSTOMER`], each given to [`HUMAN`] (two events: the
/// start and the assignment).
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
                .open_conversation(customer, Channel::new("bench")?, Some(HumanId::new(HUMAN)?))
                .await?
                .conversation_id,
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

/// Writes one conversation of `events` events (at least two: the open and its assignment,
/// then customer messages) in `dir` and returns its id, with the runtime stopped and the
/// directory released.
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
    for _ in 2..events {
        post(&handover, id).await?;
    }
    handover.shutdown().await;
    Ok(id)
}

/// Reads conversation `id`'s records straight from the store.
///
/// ```no_run
/// # fn example(store: &handover_sled::SledStore, id: handover::ConversationId) -> anyhow::Result<()> {
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

/// The bytes one append of [`customer_message`] stores as its record: the same size as the
/// record the store writes, so baselines outside the store (a plain file, raw sled, SQLite)
/// write as many bytes per event as it does.
///
/// ```
/// let bytes = handover_benches::encoded_payload();
/// assert!(bytes.len() > handover_benches::PAYLOAD_TEXT.len());
/// ```
pub fn encoded_payload() -> Vec<u8> {
    let id: ConversationId = "0190f5a8-6c1e-7000-8000-000000000001"
        .parse()
        .expect("a valid id");
    handover_store::encode_record(
        &RecordedEvent {
            position: 1,
            stream: StreamId::Conversation(id),
            seq: 1,
            recorded_at: handover::RecordedAt::now(),
            event: customer_message(),
        },
        &handover_store::RecordHash::ZERO,
    )
    .expect("the record encodes")
}

/// A plain append-only file whose every append is followed by `fdatasync`: the cost of one
/// durable write on this disk, the unit the durable benchmarks compare with.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let mut file = handover_benches::SyncedFile::create(dir.path()).unwrap();
/// file.append(b"record").unwrap();
/// assert_eq!(std::fs::metadata(dir.path().join("synced.log")).unwrap().len(), 6);
/// ```
pub struct SyncedFile {
    file: std::fs::File,
}

impl SyncedFile {
    /// Creates (or truncates) `synced.log` in `dir`.
    pub fn create(dir: &Path) -> std::io::Result<SyncedFile> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(dir.join("synced.log"))?;
        Ok(SyncedFile { file })
    }

    /// Appends `record` and waits for `fdatasync`, which also persists the grown length.
    pub fn append(&mut self, record: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        self.file.write_all(record)?;
        self.file.sync_data()
    }
}

/// Opens `count` conversations for [`CUSTOMER`] all at once (each open is its own durable
/// append, so opening a thousand one after another would wait for a thousand syncs).
///
/// ```
/// # handover_benches::runtime().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let handover = handover_benches::start(dir.path(), handover::Durability::Buffered).await.unwrap();
/// let ids = handover_benches::open_conversations_at_once(&handover, 5).await.unwrap();
/// assert_eq!(ids.len(), 5);
/// handover.shutdown().await;
/// # });
/// ```
pub async fn open_conversations_at_once(
    handover: &Handover,
    count: usize,
) -> anyhow::Result<Vec<ConversationId>> {
    let mut opens = tokio::task::JoinSet::new();
    for _ in 0..count {
        let handover = handover.clone();
        opens.spawn(async move { open_conversations(&handover, 1).await });
    }
    let mut ids = Vec::with_capacity(count);
    while let Some(opened) = opens.join_next().await {
        ids.extend(opened??);
    }
    Ok(ids)
}

/// Events per append in [`append_conversations`]: what a busy conversation's commands write
/// between two reads is far less, but the layout on disk is the same either way.
const RAW_APPEND_EVENTS_MAX: usize = 250;

/// The id of the `n`th conversation written straight to a store by [`append_conversations`].
/// The runtime gives UUIDv7 ids; the store only needs them distinct.
///
/// ```
/// assert_ne!(
///     handover_benches::numbered_conversation_id(1),
///     handover_benches::numbered_conversation_id(2),
/// );
/// ```
pub fn numbered_conversation_id(n: u64) -> ConversationId {
    format!("00000000-0000-7000-8000-{:012x}", n & 0xffff_ffff_ffff)
        .parse()
        .expect("a well-formed UUID")
}

/// The events that open every benchmark conversation, as the runtime records them for
/// `open_conversation(CUSTOMER, "bench", Some(HUMAN))`: the start and the assignment, at a
/// fixed time.
///
/// ```
/// let opened: Vec<_> = handover_benches::opened().iter().map(|e| e.type_name()).collect();
/// assert_eq!(opened, ["conversation_opened", "human_assigned"]);
/// ```
pub fn opened() -> Vec<Event> {
    let at = Timestamp::from_millis(1_720_000_000_000);
    vec![
        Event::Conversation(ConversationEvent::Started {
            tenant: TenantId::default_tenant(),
            customer: CustomerId::new(CUSTOMER).expect("a valid id"),
            channel: Channel::new("bench").expect("a valid channel"),
            team: None,
            language: None,
            at,
        }),
        Event::Conversation(ConversationEvent::HumanAssigned {
            human_id: HumanId::new(HUMAN).expect("a valid id"),
            name: AgentName::new("Bench").expect("a valid name"),
            team: None,
            by: Author::System(SystemActor::Backend),
            at,
        }),
    ]
}

/// Writes `count` conversations of `events` events each ([`opened`], then [`customer_message`]s)
/// straight to `store`, without a runtime, and returns their ids: those of
/// [`numbered_conversation_id`] from `first` on. Much faster than going through the facade,
/// and the records are the same.
///
/// ```
/// # handover_benches::runtime().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let store = handover_benches::open_store(dir.path(), handover::Durability::Buffered).unwrap();
/// let ids = handover_benches::append_conversations(&store, 1, 2, 300).await.unwrap();
/// assert_eq!(handover_benches::read_conversation(&store, ids[1]).unwrap().len(), 300);
/// # });
/// ```
pub async fn append_conversations(
    store: &SledStore,
    first: u64,
    count: usize,
    events: usize,
) -> anyhow::Result<Vec<ConversationId>> {
    use handover_store::{EventStore, ExpectedVersion};

    let mut ids = Vec::with_capacity(count);
    for n in (first..).take(count) {
        let id = numbered_conversation_id(n);
        let stream = StreamId::Conversation(id);
        let opening = opened();
        let mut version = 0;
        while version < events {
            let batch = RAW_APPEND_EVENTS_MAX.min(events - version);
            let batch: Vec<Event> = (version..version + batch)
                .map(|seq| opening.get(seq).cloned().unwrap_or_else(customer_message))
                .collect();
            let expected = match version {
                0 => ExpectedVersion::NoStream,
                v => ExpectedVersion::Exact(v as u64),
            };
            let appended = store.append(&stream, expected, batch).await??;
            version += appended.len();
        }
        ids.push(id);
    }
    Ok(ids)
}

/// Posts `events` customer messages spread over the conversations, each conversation posting
/// its share one after another (one command in flight per conversation, the next sent as soon
/// as the previous is acknowledged): a closed loop with no barrier between conversations.
///
/// ```
/// # handover_benches::runtime().block_on(async {
/// let dir = tempfile::tempdir().unwrap();
/// let handover = handover_benches::start(dir.path(), handover::Durability::Buffered).await.unwrap();
/// let ids = handover_benches::open_conversations_at_once(&handover, 3).await.unwrap();
/// let before = handover.store_stats().events;
/// handover_benches::post_closed_loop(&handover, &ids, 7).await;
/// assert_eq!(handover.store_stats().events - before, 7);
/// handover.shutdown().await;
/// # });
/// ```
pub async fn post_closed_loop(handover: &Handover, ids: &[ConversationId], events: u64) {
    let conversations = ids.len() as u64;
    let mut posts = tokio::task::JoinSet::new();
    for (i, &id) in (0u64..).zip(ids) {
        let share = events / conversations + u64::from(i < events % conversations);
        if share == 0 {
            continue;
        }
        let handover = handover.clone();
        posts.spawn(async move {
            for _ in 0..share {
                post(&handover, id).await.expect("the message was posted");
            }
        });
    }
    while let Some(done) = posts.join_next().await {
        done.expect("the post task ran");
    }
}

/// Prints (stderr) how many syncs, groups and appends the store made per event between two
/// snapshots of its counters.
///
/// ```
/// let before = handover::StoreStats::default();
/// let after = handover::StoreStats { appends: 10, events: 10, groups: 2, syncs: 2 };
/// handover_benches::report_stats("example", &before, &after);
/// ```
pub fn report_stats(name: &str, before: &StoreStats, after: &StoreStats) {
    let events = after.events - before.events;
    let per_event = |count: u64| count as f64 / events.max(1) as f64;
    eprintln!(
        "{name}: {events} events, {:.3} syncs/event, {:.3} groups/event, {:.3} appends/event",
        per_event(after.syncs - before.syncs),
        per_event(after.groups - before.groups),
        per_event(after.appends - before.appends),
    );
}

/// Measures the closed loop of `ids` (see [`post_closed_loop`]) as the criterion case
/// `name/concurrent` of `group`, one element per event, and prints the events posted, the
/// events per second and the store's syncs per event, all counted over the same commands
/// (warm-up included). Returns the events per second, or `None` when a filter left the case
/// out and nothing ran.
pub fn measure_closed_loop(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    runtime: &tokio::runtime::Runtime,
    handover: &Handover,
    ids: &[ConversationId],
) -> Option<f64> {
    use std::cell::Cell;
    use std::time::{Duration, Instant};

    let (posted, timed) = (Cell::new(0u64), Cell::new(Duration::ZERO));
    let before = handover.store_stats();
    group.throughput(criterion::Throughput::Elements(1));
    group.bench_with_input(
        criterion::BenchmarkId::new(name, ids.len()),
        ids,
        |b, ids| {
            b.to_async(runtime).iter_custom(|events| {
                let (posted, timed) = (&posted, &timed);
                async move {
                    let started = Instant::now();
                    post_closed_loop(handover, ids, events).await;
                    let elapsed = started.elapsed();
                    posted.set(posted.get() + events);
                    timed.set(timed.get() + elapsed);
                    elapsed
                }
            })
        },
    );
    let after = handover.store_stats();
    if posted.get() == 0 {
        return None;
    }
    let case = format!("{name}/{}", ids.len());
    let rate = posted.get() as f64 / timed.get().as_secs_f64();
    eprintln!(
        "{case}: {} events in {:.2} s, {rate:.0} events/s",
        posted.get(),
        timed.get().as_secs_f64(),
    );
    report_stats(&case, &before, &after);
    Some(rate)
}
