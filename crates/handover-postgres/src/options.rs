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
        }
    }
}
