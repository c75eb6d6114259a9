//! Locking the runtime's shared maps.

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, recovering it if a panicking thread poisoned it: every map behind these
/// locks is updated in single statements, so it is never left half-changed.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
