//! [`SledOptions`]: how to open a [`SledStore`](crate::SledStore), the sled backend's own
//! settings.

use std::time::Duration;

use handover_store::{Durability, RecordedAt, TimeSource};

/// How to open a [`SledStore`](crate::SledStore).
#[derive(Clone, Debug)]
pub struct SledOptions {
    /// What an acknowledged append survives.
    pub durability: Durability,
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
    /// How often sled flushes on its own, in milliseconds (the bound on loss in `Buffered`);
    /// 0 for never (only the store's syncs, an explicit [`SledStore::flush`] and closing
    /// write, so the files depend on nothing but what was appended).
    ///
    /// [`SledStore::flush`]: crate::SledStore::flush
    pub flush_every_ms: u64,
    /// How long `open` keeps trying a directory whose lock is held before it reports
    /// [`StoreError::InUse`](handover_store::StoreError::InUse). sled releases the lock from a background thread a moment after
    /// the last handle is dropped, so a directory just closed in this process can read as in
    /// use for a few milliseconds.
    pub in_use_wait: Duration,
    /// Most appends waiting for the journal; beyond it an append fails at once with
    /// [`StoreError::Overloaded`](handover_store::StoreError::Overloaded) instead of queueing without bound.
    pub queue_capacity: usize,
    /// Whether `open` fails when the log is shorter than what the store acknowledged (see
    /// [`SledStore::check_acknowledged`](crate::SledStore::check_acknowledged)), or when the
    /// index chunks it replays the high-water marks from have a gap. On by default; an audit
    /// turns it off to run every check and report the earliest fault, then calls
    /// `check_acknowledged` itself.
    pub check_acknowledged_on_open: bool,
    /// How long the journal waits for one sync before it gives up on the storage engine: sled
    /// 0.34.7's flush can block forever after an I/O error (a full disk). The appends it
    /// covered then fail, and the store stops ([`StoreError::Failed`](handover_store::StoreError::Failed)).
    pub sync_timeout: Duration,
    /// Free bytes the store keeps on the data directory's file system. sled 0.34.7 does not
    /// survive running out of space in the middle of its writes (its recovery can come back
    /// with part of a failed batch), so a group that would leave less free is not written, and
    /// the store stops with an I/O error of kind `StorageFull`; free space and reopen.
    pub min_free_bytes: u64,
    /// Records every event at this time instead of the wall clock's, for a store that must
    /// come out byte for byte the same from the same appends (reproducible test stores and
    /// simulations). `None`, the default, uses the wall clock; a real log never sets it.
    pub fixed_time: Option<RecordedAt>,
    /// Where the time stamped on records comes from when it is not the wall clock (the
    /// runtime's clock: [`handover`](https://docs.rs/handover)'s `Config` sets it). Times
    /// still never decrease in position order. `fixed_time` wins over it.
    pub time_source: Option<TimeSource>,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            durability: Durability::Durable,
            cache_bytes: 64 * 1024 * 1024,
            flush_every_ms: 200,
            fixed_time: None,
            time_source: None,
            in_use_wait: Duration::from_secs(1),
            queue_capacity: 16 * 1024,
            check_acknowledged_on_open: true,
            sync_timeout: Duration::from_secs(30),
            min_free_bytes: 64 * 1024 * 1024,
        }
    }
}
