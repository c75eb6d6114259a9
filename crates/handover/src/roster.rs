//! The AI-agent roster that `decide` consults, shared by every conversation actor; the roster
//! actor is its only writer.

use std::sync::{RwLock, RwLockReadGuard};

use handover_core::{Event, Rejection, Roster};

/// The roster behind a lock: conversation actors read it while they decide, the roster actor
/// writes it.
pub(crate) struct SharedRoster(RwLock<Roster>);

impl SharedRoster {
    pub(crate) fn new(roster: Roster) -> SharedRoster {
        SharedRoster(RwLock::new(roster))
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Roster> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies an AI-agent event (a durable one, or a deactivation about to be appended).
    pub(crate) fn evolve(&self, event: &Event) -> Result<(), Rejection> {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .evolve_stored(event)
    }
}
