//! How a [`PostgresStore`](crate::PostgresStore) connects and commits.

use std::time::Duration;

use handover_store::{Durability, TimeSource};

/// Options of [`PostgresStore::connect`](crate::PostgresStore::connect).
///
/// ```
/// use std::time::Duration;
/// use handover_postgres::PostgresOptions;
///
/// let mut options = PostgresOptions::default();
/// options.poll_interval = Duration::from_millis(100);
/// assert_eq!(options.pool_size, 8);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// Connections kept for reads (the journal and the listener hold one each besides).
    pub pool_size: usize,
    /// Most events one group commit writes; appends beyond wait for the next group.
    pub group_max_events: usize,
    /// How often the live feed looks for events other nodes committed, whether or not a
    /// `NOTIFY` woke it: notifications are lost across reconnects, so they are only a hint.
    pub poll_interval: Duration,
    /// How long connecting (and waiting for a pooled connection) may take before the call
    /// fails.
    pub connect_timeout: Duration,
    /// How many live events a subscriber may fall behind before it gets `Lagged`.
    pub subscribe_capacity: usize,
    /// Where the time stamped on records comes from; the wall clock when `None`.
    pub time_source: Option<TimeSource>,
    /// When an append is acknowledged: [`Durability::Durable`] commits with
    /// `synchronous_commit = on` (the commit record is flushed to the database's disk before
    /// the answer); the other two commit with `synchronous_commit = off`, which survives a
    /// crash of this process but may lose the last commits if the database server crashes.
    pub durability: Durability,
    /// Set to take part in a cluster of processes on the database (leases and fencing);
    /// `None` (the default) for a process that is the log's only writer.
    pub node: Option<NodeOptions>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 8,
            group_max_events: 4096,
            poll_interval: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(10),
            subscribe_capacity: 65_536,
            time_source: None,
            durability: Durability::Durable,
            node: None,
        }
    }
}

/// Taking part in a cluster of processes that share the database: each shard of tenants (see
/// `handover_core::placement`) is leased to one process, and every append checks, in its own
/// transaction, that this process still holds the lease of its stream's shard under the epoch
/// it was granted (a fencing token), so a process paused past its lease cannot write after
/// another took the shard over.
///
/// ```
/// use std::time::Duration;
/// use handover_postgres::{NodeOptions, PostgresOptions};
///
/// let mut node = NodeOptions::default();
/// node.lease = Duration::from_secs(5);
/// let mut options = PostgresOptions::default();
/// options.node = Some(node);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NodeOptions {
    /// How long a lease lasts without renewal, by the database's clock. It is renewed every
    /// third of it; a process that dies loses its shards to the others after at most this.
    pub lease: Duration,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            lease: Duration::from_secs(10),
        }
    }
}
