//! Durable timers: each open conversation's next deadline (SLA warning or breach, the AI reply
//! deadline, idle closing), armed here by its actor and fired as a `Tick` command when the
//! runtime's clock passes it. Nothing here is stored: the deadlines are a function of the log
//! (`conversation::next_deadline`), re-armed from it at start, and the rules record each
//! deadline once however many ticks arrive.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use handover_core::{ConversationCommand, ConversationId, Timestamp};
use tokio::sync::Notify;
use tracing::debug;

use crate::runtime::Runtime;
use crate::sync::lock;

/// Ticks sent at once when many deadlines pass together.
const TICKS_IN_FLIGHT_MAX: usize = 64;

#[derive(Default)]
struct Armed {
    by_time: BTreeSet<(Timestamp, ConversationId)>,
    by_id: HashMap<ConversationId, Timestamp>,
}

/// Every armed deadline.
#[derive(Default)]
pub(crate) struct Timers {
    armed: Mutex<Armed>,
    wake: Notify,
    /// Ticks taken off the armed set and not finished yet.
    in_flight: std::sync::atomic::AtomicUsize,
    /// Woken whenever a batch of ticks finishes.
    finished: Notify,
}

impl Timers {
    /// Arms `id`'s next deadline (`None` disarms it).
    pub(crate) fn arm(&self, id: ConversationId, at: Option<Timestamp>) {
        let mut armed = lock(&self.armed);
        if let Some(old) = armed.by_id.remove(&id) {
            if Some(old) == at {
                armed.by_id.insert(id, old);
                return;
            }
            armed.by_time.remove(&(old, id));
        }
        let Some(at) = at else { return };
        let earliest = armed.by_time.first().is_none_or(|(first, _)| at < *first);
        armed.by_time.insert((at, id));
        armed.by_id.insert(id, at);
        drop(armed);
        if earliest {
            self.wake.notify_one();
        }
    }

    /// Waits until no deadline at or before `now` is armed or being fired.
    pub(crate) async fn settled(&self, now: Timestamp) {
        use std::sync::atomic::Ordering;
        loop {
            let finished = self.finished.notified();
            let due = self.next().is_some_and(|at| at <= now);
            if !due && self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            // The timer loop may not have woken for a deadline just passed yet.
            self.wake.notify_one();
            let _ = tokio::time::timeout(std::time::Duration::from_millis(50), finished).await;
        }
    }

    fn next(&self) -> Option<Timestamp> {
        lock(&self.armed).by_time.first().map(|(at, _)| *at)
    }

    /// Disarms and returns every deadline at or before `now`.
    fn take_due(&self, now: Timestamp) -> Vec<ConversationId> {
        let mut armed = lock(&self.armed);
        let mut due = Vec::new();
        while let Some(&(at, id)) = armed.by_time.first() {
            if at > now {
                break;
            }
            armed.by_time.pop_first();
            armed.by_id.remove(&id);
            due.push(id);
        }
        self.in_flight
            .fetch_add(due.len(), std::sync::atomic::Ordering::AcqRel);
        due
    }
}

/// Fires deadlines as the clock passes them, until the runtime stops.
pub(crate) async fn run(runtime: Arc<Runtime>) {
    let timers = &runtime.conversations.timers;
    let clock = Arc::clone(&runtime.conversations.clock);
    loop {
        // Registered before reading the next deadline, so an earlier one armed meanwhile
        // wakes this loop.
        let woken = timers.wake.notified();
        match timers.next() {
            None => woken.await,
            Some(at) => {
                tokio::select! {
                    () = clock.sleep_until(at) => {}
                    () = woken => continue,
                }
            }
        }
        let due = timers.take_due(clock.now());
        let fired = due.len();
        futures::stream::iter(due)
            .for_each_concurrent(TICKS_IN_FLIGHT_MAX, |id| {
                let runtime = Arc::clone(&runtime);
                async move {
                    let tick = Arc::new(ConversationCommand::Tick);
                    if let Err(error) = runtime.execute(id, tick, None).await {
                        // Tried again a second later; a conversation that no longer exists
                        // or has nothing due is simply not re-armed by its actor.
                        debug!(conversation_id = %id, %error, "tick not recorded");
                        if matches!(error, crate::Error::Overloaded | crate::Error::Store(_)) {
                            let clock = &runtime.conversations.clock;
                            runtime
                                .conversations
                                .timers
                                .arm(id, Some(clock.now().plus_millis(1_000)));
                        }
                    }
                }
            })
            .await;
        timers
            .in_flight
            .fetch_sub(fired, std::sync::atomic::Ordering::AcqRel);
        timers.finished.notify_waiters();
    }
}
