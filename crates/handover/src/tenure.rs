//! Which tenants this runtime acts for: decides, records, routes and times.
//!
//! On a store that is its log's only writer, every tenant. On a cluster's node, the tenants
//! whose shards it has *taken up*: the store may hold a shard's lease a moment before the
//! runtime acts for it, while the follower folds the former owner's last commits into the read
//! models; acting on models without them (a human the former owner just registered, a load it
//! just added) would misjudge. So a node decides for a tenant only once the follower has caught
//! up with the log after the lease moved, and lets it go as soon as the lease is lost.

use std::collections::HashSet;
use std::sync::RwLock;
use std::time::Duration;

use handover_core::placement::shard_of;
use handover_core::TenantId;
use handover_store::EventStore;
use tokio::sync::Notify;

/// How long a command for a tenant whose lease this node just gained waits for the runtime
/// to take it up before it is forwarded like any other node's.
const TAKE_UP_WAIT: Duration = Duration::from_secs(10);

pub(crate) struct Tenure {
    /// Whether other processes write the log too; if not, every tenant is this runtime's.
    shared: bool,
    taken: RwLock<HashSet<u16>>,
    changed: Notify,
}

impl Tenure {
    pub(crate) fn new(shared: bool) -> Tenure {
        Tenure {
            shared,
            taken: RwLock::new(HashSet::new()),
            changed: Notify::new(),
        }
    }

    /// Whether this runtime decides for `tenant` now.
    pub(crate) fn acts_for(&self, tenant: &TenantId) -> bool {
        self.acts_for_shard(shard_of(tenant))
    }

    /// Whether this runtime decides for the tenants of `shard` now.
    pub(crate) fn acts_for_shard(&self, shard: u16) -> bool {
        !self.shared || self.read().contains(&shard)
    }

    /// The shards taken up.
    pub(crate) fn shards(&self) -> HashSet<u16> {
        self.read().clone()
    }

    pub(crate) fn take_up(&self, shard: u16) {
        self.write().insert(shard);
        self.changed.notify_waiters();
    }

    pub(crate) fn let_go(&self, shard: u16) {
        self.write().remove(&shard);
        self.changed.notify_waiters();
    }

    /// Whether this runtime should run a command for `tenant` itself: at once when it acts
    /// for it, `false` when another node holds the lease, and, when the store has just gained
    /// the lease, once the runtime took it up (or `false` after a while: the command is then
    /// forwarded to the shard's owner, whoever that is by then).
    pub(crate) async fn settle(&self, store: &dyn EventStore, tenant: &TenantId) -> bool {
        let deadline = tokio::time::Instant::now() + TAKE_UP_WAIT;
        loop {
            let changed = self.changed.notified();
            if self.acts_for(tenant) {
                return true;
            }
            if !store.owns(tenant) || tokio::time::Instant::now() >= deadline {
                return false;
            }
            // The follower's ownership check runs every 200 ms; a missed wake-up costs a poll.
            let _ = tokio::time::timeout(Duration::from_millis(50), changed).await;
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashSet<u16>> {
        self.taken
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashSet<u16>> {
        self.taken
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
