//! The journal's syncer thread: makes every applied group durable with one sync, then
//! acknowledges and publishes it, and moves the anchor behind what is durable.

use std::sync::atomic::Ordering;
use std::sync::{mpsc as std_mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::disk_sync::SyncStep;
use super::group::{Group, Publisher};
use super::poison::Poison;
use super::watchdog::SyncWatch;
use crate::anchor::{Anchor, AnchorPoint};
use crate::engine::{contained, lock};

/// The anchor follows acknowledged appends at most this long after them under load...
pub(crate) const ANCHOR_EVERY: Duration = Duration::from_millis(50);

/// ...and this long after the last sync when appends stop.
pub(crate) const ANCHOR_IDLE: Duration = Duration::from_millis(2);

pub(crate) struct Syncer {
    pub(crate) applied: std_mpsc::Receiver<Group>,
    pub(crate) sync: Box<dyn SyncStep>,
    pub(crate) watch: Arc<SyncWatch>,
    pub(crate) anchor: Option<Arc<Mutex<Anchor>>>,
    pub(crate) poison: Arc<Poison>,
    pub(crate) publisher: Publisher,
}

impl Syncer {
    pub(crate) fn run(mut self) {
        let mut groups = Vec::new();
        // The last durable record the anchor does not name yet.
        let mut unanchored: Option<AnchorPoint> = None;
        let mut anchored_at = Instant::now();
        loop {
            // Appends never wait for the anchor: it follows a moment after their sync, when
            // the syncer has nothing else to do, or every `ANCHOR_EVERY` under load.
            let first = if unanchored.is_some() {
                match self.applied.recv_timeout(ANCHOR_IDLE) {
                    Ok(group) => group,
                    Err(std_mpsc::RecvTimeoutError::Timeout) => {
                        self.anchor(unanchored.take());
                        anchored_at = Instant::now();
                        continue;
                    }
                    Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match self.applied.recv() {
                    Ok(group) => group,
                    Err(_) => break,
                }
            };
            groups.push(first);
            while let Ok(group) = self.applied.try_recv() {
                groups.push(group);
            }
            self.watch.begin();
            let outcome = contained("syncing", || self.sync.sync());
            self.watch.end();
            self.publisher
                .counters
                .syncs
                .fetch_add(1, Ordering::Relaxed);
            match &outcome {
                // A sync makes everything applied before it durable, failed groups included.
                Ok(()) => {
                    if let Some(tip) = groups.iter().rev().find_map(|group| group.tip.clone()) {
                        unanchored = Some(tip);
                    }
                }
                Err(error) => {
                    warn!(%error, groups = groups.len(), "sync failed; its appends are not acknowledged, and the store stops");
                    unanchored = None;
                    self.poison.mark(error);
                }
            }
            for group in groups.drain(..) {
                self.publisher.finish(group, &outcome);
            }
            // After the answers, so the appends the sync covered get its error itself.
            if outcome.is_err() {
                self.poison.wake();
            }
            if unanchored.is_some() && anchored_at.elapsed() >= ANCHOR_EVERY {
                self.anchor(unanchored.take());
                anchored_at = Instant::now();
            }
        }
        self.anchor(unanchored);
        debug!("journal syncer stopped");
    }

    pub(crate) fn anchor(&self, point: Option<AnchorPoint>) {
        if self.poison.is_set() {
            // Only what a sound engine made durable may be anchored.
            return;
        }
        if let (Some(anchor), Some(point)) = (&self.anchor, point) {
            // A failed anchor write loses nothing: the anchor lags, and the next write
            // catches up.
            if let Err(error) = lock(anchor).write(point) {
                warn!(%error, "writing the anchor failed");
            }
        }
    }
}
