//! The PostgreSQL backend of Handover's event log: the same [`EventStore`] contract as the
//! embedded sled backend, on a database that several nodes share.
//!
//! - **Schema** created and migrated by the store ([`PostgresStore::connect`]), versioned,
//!   idempotent, safe when several nodes start at once.
//! - **Group commit**: the appends waiting at one moment are written in one transaction with
//!   one commit, `synchronous_commit = on` for [`Durability::Durable`].
//! - **An exact global order**: positions are dense from 1 and become visible in order, so a
//!   reader following the log from a position never skips an event that commits late and never
//!   sees one twice (see `journal.rs`).
//! - **Integrity**: the records are the sled backend's (format version, CRC-32, the hash of the
//!   previous record of the stream, a body that repeats the record's place), checked on every
//!   read; per-stream optimistic concurrency stands on a unique key.
//! - **Live feed** from any node, woken by `LISTEN`/`NOTIFY` and polling regardless.
//! - **Forwarding** to the process that holds a shard's lease ([`PostgresStore::forward`],
//!   [`PostgresStore::serve_calls`]), through the database alone.
//!
//! ```no_run
//! use std::sync::Arc;
//! use handover_postgres::{PostgresOptions, PostgresStore};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PostgresStore::connect(
//!     "postgres://handover@db.internal/contact_center",
//!     PostgresOptions::default(),
//! )
//! .await?;
//! // Hand it to the runtime: `handover::Handover::start_with_store(Arc::new(store), ..)`.
//! # let _ = Arc::new(store);
//! # Ok(())
//! # }
//! ```

mod calls;
mod cluster;
mod error;
mod feed;
mod journal;
mod keys;
mod options;
mod read;
mod schema;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use std::collections::BTreeMap;

use handover_core::placement::{opening_tenant, shard_of};
use handover_core::{CommandId, Event, StreamId, TenantId};
pub use handover_store::Durability;
use handover_store::{
    encode_events, Appended, Conflict, EncodedEvent, EventStore, ExpectedVersion, RecordedEvent,
    SeqRange, StoreError, StoreStats,
};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use uuid::Uuid;

pub use calls::IncomingCall;
pub use options::{NodeOptions, PostgresOptions};

use crate::error::{engine, pool as pool_error};
use crate::feed::Feed;
use crate::journal::{AppendRequest, Journal};

/// Appends queued beyond this are refused with [`StoreError::Overloaded`].
const QUEUE_MAX: usize = 65_536;

/// An [`EventStore`] on PostgreSQL. Cheap to clone: clones share one set of connections, one
/// journal and one feed.
///
/// The store runs its connections on a small runtime of its own, so it can be called from any
/// async runtime (the actors' included) and its I/O never waits behind theirs.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("head", &self.inner.feed.head())
            .finish_non_exhaustive()
    }
}

struct Inner {
    runtime: Option<Runtime>,
    handle: Handle,
    pool: deadpool_postgres::Pool,
    requests: mpsc::Sender<AppendRequest>,
    feed: Arc<Feed>,
    counters: Arc<Counters>,
    /// In a cluster: this node's id and the shards it holds.
    node: Option<(Uuid, watch::Receiver<cluster::Owned>)>,
    /// Calls forwarded from here, and to here.
    calls: Arc<calls::Calls>,
    /// The lease task, stopped when the node leaves.
    lease_task: Option<tokio::task::AbortHandle>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which an async caller may not do.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What the store has done, for [`EventStore::stats`].
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) appends: AtomicU64,
    pub(crate) events: AtomicU64,
    pub(crate) groups: AtomicU64,
    pub(crate) syncs: AtomicU64,
}

/// Opens connections of the store's own (the journal's, the listener's) with the store's
/// configuration.
#[derive(Clone)]
pub(crate) struct Connector {
    config: tokio_postgres::Config,
}

impl Connector {
    pub(crate) async fn connect(&self) -> Result<tokio_postgres::Client, StoreError> {
        let (client, connection) = self
            .config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(engine)?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "a PostgreSQL connection ended");
            }
        });
        Ok(client)
    }

    pub(crate) async fn connect_listening(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            mpsc::UnboundedReceiver<(String, String)>,
        ),
        StoreError,
    > {
        let (client, connection) = self
            .config
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(engine)?;
        Ok((client, feed::forward_notifications(connection)))
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (a libpq URL or key=value string, e.g.
    /// `postgres://user:password@host:5432/db`), creates or migrates Handover's tables, and
    /// starts the journal and the live feed.
    ///
    /// Fails with [`StoreError::Engine`] when the database cannot be reached or its schema is
    /// newer than this library's.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<PostgresStore, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Engine(format!("not a PostgreSQL connection string: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("handover");
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("handover-postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Io(Arc::new(e)))?;
        let handle = runtime.handle().clone();
        let connector = Connector { config };
        let opened = {
            let connector = connector.clone();
            let options = options.clone();
            handle.spawn(async move { open(connector, options).await })
        };
        let (pool, head) = match opened.await {
            Ok(Ok(opened)) => opened,
            Ok(Err(error)) => {
                runtime.shutdown_background();
                return Err(error);
            }
            Err(_) => {
                runtime.shutdown_background();
                return Err(StoreError::Closed);
            }
        };
        let feed = Arc::new(Feed::new(head, options.subscribe_capacity));
        let counters = Arc::new(Counters::default());
        let instance = Uuid::now_v7();
        let (requests, queue) = mpsc::channel(QUEUE_MAX);
        let lease = options
            .node
            .as_ref()
            .map(|node| node.lease)
            .unwrap_or_default();
        let mut lease_task = None;
        let node = options.node.as_ref().map(|node_options| {
            let (owned, watching) = watch::channel(cluster::Owned::default());
            let id = Uuid::now_v7();
            let task = handle.spawn(
                cluster::LeaseTask {
                    connector: connector.clone(),
                    node: id,
                    lease: node_options.lease,
                    owned,
                }
                .run(),
            );
            lease_task = Some(task.abort_handle());
            (id, watching)
        });
        handle.spawn(
            Journal {
                connector: connector.clone(),
                feed: Arc::clone(&feed),
                counters: Arc::clone(&counters),
                group_max_events: options.group_max_events.max(1),
                durability: options.durability,
                time_source: options.time_source.clone(),
                instance,
                fence: node.as_ref().map(|(id, owned)| journal::Fence {
                    node: *id,
                    owned: owned.clone(),
                    lease,
                }),
            }
            .run(queue),
        );
        handle.spawn(Arc::clone(&feed).run(pool.clone(), options.poll_interval));
        handle.spawn(Arc::clone(&feed).listen(connector.clone(), instance));
        let calls = Arc::new(calls::Calls::new(
            connector,
            pool.clone(),
            options.poll_interval,
            node.clone(),
        ));
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                runtime: Some(runtime),
                handle,
                pool,
                requests,
                feed,
                counters,
                node,
                calls,
                lease_task,
            }),
        })
    }

    /// This process's id in the cluster, when it takes part in one
    /// ([`PostgresOptions::node`]).
    pub fn node_id(&self) -> Option<Uuid> {
        self.inner.node.as_ref().map(|(id, _)| *id)
    }

    /// The shards this process holds now, each with the epoch it was granted: empty outside a
    /// cluster, and until the first lease round.
    pub fn shards(&self) -> BTreeMap<u16, i64> {
        match &self.inner.node {
            Some((_, owned)) => (**owned.borrow()).clone(),
            None => BTreeMap::new(),
        }
    }

    /// Leaves the cluster: stops renewing, gives back every shard this process holds (after
    /// the appends under way, which hold those leases until they commit) and leaves the live
    /// nodes, so the others take its shards at their next round instead of after the lease.
    /// Appends after it are refused ([`StoreError::NotOwner`]). Nothing outside a cluster.
    pub async fn leave(&self) -> Result<(), StoreError> {
        let Some((id, _)) = &self.inner.node else {
            return Ok(());
        };
        if let Some(task) = &self.inner.lease_task {
            task.abort();
        }
        let id = *id;
        self.on_pooled(move |client| async move {
            client
                .execute(
                    "UPDATE handover_leases SET owner = NULL, expires_at = '-infinity'
                     WHERE owner = $1",
                    &[&id],
                )
                .await
                .map_err(engine)?;
            client
                .execute("DELETE FROM handover_nodes WHERE node = $1", &[&id])
                .await
                .map_err(engine)?;
            Ok(())
        })
        .await
    }

    /// Whether this process holds the lease of `tenant`'s shard (always, outside a cluster).
    pub fn owns(&self, tenant: &TenantId) -> bool {
        match &self.inner.node {
            Some((_, owned)) => owned.borrow().contains_key(&shard_of(tenant)),
            None => true,
        }
    }

    /// Every record in position order (positions `1..=n`, dense), read in one consistent
    /// snapshot (a repeatable-read transaction) while other nodes keep writing, with every
    /// check: checksums and format, each record's place, positions without gaps, each
    /// stream's seqs from 1 and its hash chain. Damage is [`StoreError::Corrupted`] naming
    /// where.
    pub async fn snapshot(&self) -> Result<Vec<RecordedEvent>, StoreError> {
        self.on_pooled(|client| async move {
            let mut client = client;
            let client: &mut tokio_postgres::Client = &mut client;
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(engine)?;
            let records = read::read_checked_log(&tx).await?;
            tx.commit().await.map_err(engine)?;
            Ok(records)
        })
        .await
    }

    /// Runs `work` with a pooled connection on the store's runtime.
    async fn on_pooled<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(deadpool_postgres::Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let pool = self.inner.pool.clone();
        self.inner
            .handle
            .spawn(async move {
                let client = pool.get().await.map_err(pool_error)?;
                work(client).await
            })
            .await
            .map_err(|_| StoreError::Closed)?
    }

    async fn submit(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        command: Option<CommandId>,
        events: Vec<EncodedEvent>,
    ) -> Result<Result<Appended, Conflict>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let opening_shard = events
            .first()
            .and_then(|first| opening_tenant(first.event()))
            .map(|tenant| shard_of(&tenant));
        let request = AppendRequest {
            stream: stream.clone(),
            expected,
            command,
            events,
            opening_shard,
            reply,
        };
        self.inner.requests.try_send(request).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
        })?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// Connects the pool, migrates, and reads the head.
async fn open(
    connector: Connector,
    options: PostgresOptions,
) -> Result<(deadpool_postgres::Pool, u64), StoreError> {
    let mut client = connector.connect().await?;
    schema::migrate(&mut client).await?;
    let head: i64 = client
        .query_one("SELECT position FROM handover_head WHERE one", &[])
        .await
        .map_err(engine)?
        .get(0);
    let manager = deadpool_postgres::Manager::from_config(
        connector.config.clone(),
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(options.pool_size.max(1))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(options.connect_timeout))
        .create_timeout(Some(options.connect_timeout))
        .build()
        .map_err(|e| StoreError::Engine(format!("PostgreSQL connection pool: {e}")))?;
    Ok((pool, head as u64))
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<Event>,
    ) -> Result<Result<Appended, Conflict>, StoreError> {
        self.submit(stream, expected, None, encode_events(events)?)
            .await
    }

    async fn append_once(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        command: CommandId,
        events: Vec<Event>,
    ) -> Result<Result<Appended, Conflict>, StoreError> {
        self.submit(stream, expected, Some(command), encode_events(events)?)
            .await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        range: SeqRange,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let stream = stream.clone();
        self.on_pooled(
            move |client| async move { read::read_stream(&**client, &stream, range).await },
        )
        .await
    }

    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.on_pooled(move |client| async move { read::read_all(&**client, from, max).await })
            .await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, StoreError> {
        let stream = stream.clone();
        self.on_pooled(move |client| async move { read::stream_version(&**client, &stream).await })
            .await
    }

    async fn read_ai_agents(&self) -> Result<Vec<RecordedEvent>, StoreError> {
        self.on_pooled(|client| async move { read::read_kind(&**client, keys::AI_AGENT).await })
            .await
    }

    async fn read_humans(&self) -> Result<Vec<RecordedEvent>, StoreError> {
        self.on_pooled(|client| async move { read::read_kind(&**client, keys::HUMAN).await })
            .await
    }

    fn head(&self) -> u64 {
        self.inner.feed.head()
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<RecordedEvent>> {
        self.inner.feed.subscribe()
    }

    fn is_shared(&self) -> bool {
        self.inner.node.is_some()
    }

    fn owns(&self, tenant: &TenantId) -> bool {
        PostgresStore::owns(self, tenant)
    }

    async fn leave(&self) -> Result<(), StoreError> {
        PostgresStore::leave(self).await
    }

    async fn last_position(&self) -> Result<u64, StoreError> {
        self.on_pooled(|client| async move {
            let row = client
                .query_one("SELECT position FROM handover_head", &[])
                .await
                .map_err(engine)?;
            Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
        })
        .await
    }

    fn owned_shards(&self) -> Vec<u16> {
        match &self.inner.node {
            Some((_, owned)) => owned.borrow().keys().copied().collect(),
            None => Vec::new(),
        }
    }

    async fn shard_of_stream(&self, stream: &StreamId) -> Result<Option<u16>, StoreError> {
        if self.inner.node.is_none() {
            return Ok(None);
        }
        let (kind, id) = keys::stream_key(stream);
        self.on_pooled(move |client| async move {
            let row = client
                .query_opt(
                    "SELECT shard FROM handover_streams WHERE stream_kind = $1 AND stream_id = $2",
                    &[&kind, &id],
                )
                .await
                .map_err(engine)?;
            Ok(row.and_then(|row| u16::try_from(row.get::<_, i32>(0)).ok()))
        })
        .await
    }

    fn stats(&self) -> StoreStats {
        let c = &self.inner.counters;
        StoreStats {
            appends: c.appends.load(Ordering::Relaxed),
            events: c.events.load(Ordering::Relaxed),
            groups: c.groups.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
        }
    }
}
