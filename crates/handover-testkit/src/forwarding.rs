//! [`ForwardingStore`]: an [`EventStore`] that forwards every call to another one, with hooks
//! ([`StoreHooks`]) a test uses to count, hold, fail or change one kind of call.

use std::sync::Arc;

use async_trait::async_trait;
use handover_core::{CommandId, Event, StreamId};
use handover_store::{
    Appended, Conflict, EventStore, ExpectedVersion, RecordedEvent, SeqRange, StoreError,
    StoreStats,
};
use tokio::sync::broadcast;

/// What an append answers.
pub type AppendOutcome = Result<Result<Appended, Conflict>, StoreError>;

/// The calls of a [`ForwardingStore`] a test can intercept. Each method receives the inner
/// store and, by default, forwards the call to it unchanged; a test overrides only the ones it
/// cares about.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// use handover_core::{Event, StreamId};
/// use handover_store::{EventStore, ExpectedVersion};
/// use handover_testkit::{AppendOutcome, StoreHooks};
///
/// /// Counts appends, forwards everything.
/// #[derive(Default)]
/// struct CountAppends(AtomicUsize);
///
/// #[async_trait::async_trait]
/// impl StoreHooks for CountAppends {
///     async fn append(
///         &self,
///         inner: &dyn EventStore,
///         stream: &StreamId,
///         expected: ExpectedVersion,
///         events: Vec<Event>,
///     ) -> AppendOutcome {
///         self.0.fetch_add(1, Ordering::SeqCst);
///         inner.append(stream, expected, events).await
///     }
/// }
/// ```
#[async_trait]
pub trait StoreHooks: Send + Sync + 'static {
    /// Around [`EventStore::append`].
    async fn append(
        &self,
        inner: &dyn EventStore,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<Event>,
    ) -> AppendOutcome {
        inner.append(stream, expected, events).await
    }

    /// Around [`EventStore::append_once`].
    async fn append_once(
        &self,
        inner: &dyn EventStore,
        stream: &StreamId,
        expected: ExpectedVersion,
        command: CommandId,
        events: Vec<Event>,
    ) -> AppendOutcome {
        inner.append_once(stream, expected, command, events).await
    }

    /// Around [`EventStore::command_outcome`].
    async fn command_outcome(
        &self,
        inner: &dyn EventStore,
        stream: &StreamId,
        command: CommandId,
    ) -> Result<Option<Appended>, StoreError> {
        inner.command_outcome(stream, command).await
    }

    /// Around [`EventStore::read_stream`].
    async fn read_stream(
        &self,
        inner: &dyn EventStore,
        stream: &StreamId,
        range: SeqRange,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        inner.read_stream(stream, range).await
    }
}

/// An [`EventStore`] that forwards every call to `inner`, through `hooks` for the calls
/// [`StoreHooks`] lets a test intercept.
pub struct ForwardingStore<H> {
    inner: Arc<dyn EventStore>,
    hooks: H,
}

impl<H: StoreHooks> ForwardingStore<H> {
    /// Forwards to `inner` through `hooks`.
    pub fn new(inner: Arc<dyn EventStore>, hooks: H) -> ForwardingStore<H> {
        ForwardingStore { inner, hooks }
    }

    /// The hooks, for the test to arm them or read what they counted.
    pub fn hooks(&self) -> &H {
        &self.hooks
    }

    /// The store calls are forwarded to.
    pub fn inner(&self) -> &Arc<dyn EventStore> {
        &self.inner
    }
}

#[async_trait]
impl<H: StoreHooks> EventStore for ForwardingStore<H> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<Event>,
    ) -> AppendOutcome {
        self.hooks
            .append(&*self.inner, stream, expected, events)
            .await
    }

    async fn append_once(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        command: CommandId,
        events: Vec<Event>,
    ) -> AppendOutcome {
        self.hooks
            .append_once(&*self.inner, stream, expected, command, events)
            .await
    }

    async fn command_outcome(
        &self,
        stream: &StreamId,
        command: CommandId,
    ) -> Result<Option<Appended>, StoreError> {
        self.hooks
            .command_outcome(&*self.inner, stream, command)
            .await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        range: SeqRange,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.hooks.read_stream(&*self.inner, stream, range).await
    }

    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(from, max).await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        self.inner.stream_version(stream).await
    }

    async fn read_ai_agents(&self) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_ai_agents().await
    }

    async fn read_humans(&self) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_humans().await
    }

    fn head(&self) -> u64 {
        self.inner.head()
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<RecordedEvent>> {
        self.inner.subscribe()
    }

    fn stats(&self) -> StoreStats {
        self.inner.stats()
    }
}
