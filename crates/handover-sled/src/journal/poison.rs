//! [`Poison`]: the failure that stopped a store, which every later operation gets.

use std::sync::Arc;

use handover_store::StoreError;

/// The failure that stopped a store. After an I/O error the storage engine's state is unknown
/// (sled 0.34.7 may have applied part of a batch in memory, and its errors are sticky), so
/// like a database that stops after a failed `fsync`, the store refuses every append and read
/// from then on with [`StoreError::Failed`]; reopening it (a restart) reads what is on disk.
#[derive(Default)]
pub(crate) struct Poison {
    pub(crate) failure: std::sync::OnceLock<StoreError>,
    pub(crate) failed: tokio::sync::Notify,
}

impl Poison {
    /// Records the first failure; later ones change nothing. Wakes every appender waiting for
    /// an answer: an append stuck inside a failed engine gets the failure instead of waiting
    /// for good.
    pub(crate) fn set(&self, cause: &StoreError) {
        self.mark(cause);
        self.wake();
    }

    /// Records the first failure without waking anyone yet: the appends the failure met are
    /// answered with its own error first, then [`Poison::wake`] wakes the rest.
    pub(crate) fn mark(&self, cause: &StoreError) {
        let _ = self
            .failure
            .set(StoreError::Failed(Arc::new(cause.clone())));
    }

    /// Wakes every appender still waiting, with the failure.
    pub(crate) fn wake(&self) {
        self.failed.notify_waiters();
    }

    /// Resolves with the failure once the store has failed.
    pub(crate) async fn failed(&self) -> StoreError {
        loop {
            let notified = self.failed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(failure) = self.failure.get() {
                return failure.clone();
            }
            notified.await;
        }
    }

    /// The error every operation gets once the store has failed.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        match self.failure.get() {
            Some(failed) => Err(failed.clone()),
            None => Ok(()),
        }
    }

    pub(crate) fn is_set(&self) -> bool {
        self.failure.get().is_some()
    }
}
