//! Time for the runtime: the rules are given `now` by a [`Clock`], and the timers wait on it.
//! The system clock runs in production; a [`ManualClock`] lets tests and simulations run hours
//! of contact-center time in seconds, and the same inputs then give the same log.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use handover_core::Timestamp;
use tokio::sync::watch;

/// A boxed future a [`Clock`] returns from [`Clock::sleep_until`].
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Where the runtime's time comes from: what the rules are told `now` is, what the store
/// stamps on records, and what the timers wait on.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> Timestamp;

    /// Resolves once [`now`](Clock::now) has reached `deadline`.
    fn sleep_until(&self, deadline: Timestamp) -> Sleep<'_>;
}

/// The system's wall clock, the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let micros = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
        };
        Timestamp(micros)
    }

    fn sleep_until(&self, deadline: Timestamp) -> Sleep<'_> {
        Box::pin(async move {
            loop {
                let left = deadline.0.saturating_sub(self.now().0);
                if left <= 0 {
                    return;
                }
                // Re-read the wall clock after each sleep: it may have been stepped.
                let left = Duration::from_micros(u64::try_from(left).unwrap_or(u64::MAX));
                tokio::time::sleep(left.min(Duration::from_secs(60))).await;
            }
        })
    }
}

/// A clock that moves only when told to: simulated time.
///
/// ```
/// use handover::{Clock, ManualClock, Timestamp};
///
/// let clock = ManualClock::new(Timestamp::from_millis(1_000));
/// clock.advance_millis(500);
/// assert_eq!(clock.now(), Timestamp::from_millis(1_500));
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    time: Arc<watch::Sender<Timestamp>>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock {
            time: Arc::new(watch::Sender::new(start)),
        }
    }

    /// Moves the clock forward by `millis` milliseconds, waking every sleeper it passes.
    pub fn advance_millis(&self, millis: u64) {
        self.time.send_modify(|t| *t = t.plus_millis(millis));
    }

    /// Sets the clock to `to`, if that is later than now (a clock never goes back).
    pub fn advance_to(&self, to: Timestamp) {
        self.time.send_if_modified(|t| {
            if to > *t {
                *t = to;
                true
            } else {
                false
            }
        });
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.time.borrow()
    }

    fn sleep_until(&self, deadline: Timestamp) -> Sleep<'_> {
        let mut changes = self.time.subscribe();
        Box::pin(async move {
            // The sender lives as long as `self`, so `changed` only fails once it is gone.
            let _ = changes.wait_for(|now| *now >= deadline).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_sleeper_wakes_when_the_clock_passes_its_deadline() {
        let clock = ManualClock::new(Timestamp::from_millis(0));
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(Timestamp::from_millis(100)).await })
        };
        clock.advance_millis(50);
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        clock.advance_millis(50);
        sleeper.await.unwrap();
        clock.advance_to(Timestamp::from_millis(10));
        assert_eq!(clock.now(), Timestamp::from_millis(100));
    }
}
