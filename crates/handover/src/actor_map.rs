//! The live actors of one kind, by key: the address of each one running, started on demand.
//! Generic, so the map knows nothing of what its actors do and no actor module imports the
//! runtime that owns the map.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

use actix::{Actor, Addr};

use crate::sync::lock;

/// Addresses of running actors by key.
pub(crate) struct ActorMap<K, A: Actor> {
    live: Mutex<HashMap<K, Addr<A>>>,
}

impl<K: Eq + Hash + Clone, A: Actor> ActorMap<K, A> {
    pub(crate) fn new() -> Self {
        ActorMap {
            live: Mutex::new(HashMap::new()),
        }
    }

    /// The running actor for `key`, or the one `start` starts (a stopped actor's address is
    /// replaced).
    pub(crate) fn get_or_start(&self, key: &K, start: impl FnOnce() -> Addr<A>) -> Addr<A> {
        let mut live = lock(&self.live);
        if let Some(addr) = live.get(key) {
            if addr.connected() {
                return addr.clone();
            }
        }
        let addr = start();
        live.insert(key.clone(), addr.clone());
        addr
    }

    /// Forgets a stopped actor, unless a newer one already took its place.
    pub(crate) fn forget(&self, key: &K, addr: &Addr<A>) {
        let mut live = lock(&self.live);
        if live.get(key) == Some(addr) {
            live.remove(key);
            // A map never shrinks by itself: after a peak of live actors has stopped, give the
            // slots back (amortized: only when a quarter or less is used).
            let len = live.len();
            if live.capacity() > 1024 && len <= live.capacity() / 4 {
                live.shrink_to(len * 2);
            }
        }
    }

    /// The running actor for `key`, if any.
    pub(crate) fn get(&self, key: &K) -> Option<Addr<A>> {
        lock(&self.live)
            .get(key)
            .filter(|addr| addr.connected())
            .cloned()
    }

    /// How many actors run.
    pub(crate) fn len(&self) -> usize {
        lock(&self.live).len()
    }
}
