//! [`StoreStats`]: what a store has done since it was opened.

/// What the journal has done since the store was opened.
///
/// ```
/// let stats = handover_store::StoreStats::default();
/// assert_eq!(stats.syncs_per_event(), 0.0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Appends acknowledged.
    pub appends: u64,
    /// Events in those appends.
    pub events: u64,
    /// Groups written, each one sled batch.
    pub groups: u64,
    /// Sync calls made to make groups durable (none in `Buffered`).
    pub syncs: u64,
}

impl StoreStats {
    /// Syncs per acknowledged event: the cost of durability, 0 when nothing was written.
    pub fn syncs_per_event(&self) -> f64 {
        if self.events == 0 {
            0.0
        } else {
            self.syncs as f64 / self.events as f64
        }
    }
}
