//! The kit's factory for [`SledStore`].

use std::sync::Arc;
use std::time::Duration;

use handover_sled::{SledOptions, SledStore};
use handover_store::{Durability, EventStore};

use crate::StoreFactory;

/// Opens a [`SledStore`] with one durability in a temporary directory per property.
#[derive(Clone, Copy, Debug)]
pub struct SledFactory {
    durability: Durability,
}

impl SledFactory {
    /// A factory for stores acknowledging appends with `durability`.
    pub fn new(durability: Durability) -> SledFactory {
        SledFactory { durability }
    }
}

impl StoreFactory for SledFactory {
    type Place = tempfile::TempDir;

    fn describe(&self) -> String {
        format!("sled ({})", self.durability)
    }

    async fn fresh(&self) -> tempfile::TempDir {
        tempfile::tempdir().expect("a temporary directory")
    }

    async fn open(&self, place: &tempfile::TempDir) -> Arc<dyn EventStore> {
        let options = SledOptions {
            durability: self.durability,
            // sled releases a directory's lock from a background thread a moment after the
            // previous store is dropped; a restart waits for it rather than failing.
            in_use_wait: Duration::from_secs(30),
            ..SledOptions::default()
        };
        match SledStore::open(place.path(), options) {
            Ok(store) => Arc::new(store),
            Err(e) => panic!("opening {} failed: {e}", place.path().display()),
        }
    }
}
