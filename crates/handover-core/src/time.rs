//! Time as the rules see it: a value given to them, never read from a clock. The runtime's
//! clock (the system clock, or a manual one in tests and simulations) supplies `now` through
//! [`crate::Ctx`], and every event a deadline caused records the time it was decided at.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A point in time: microseconds since the Unix epoch, UTC (the unit of the log's
/// `recorded_at`).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// `millis` milliseconds since the Unix epoch.
    pub const fn from_millis(millis: i64) -> Timestamp {
        Timestamp(millis.saturating_mul(1000))
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// This time plus `millis` milliseconds, saturating.
    pub const fn plus_millis(self, millis: u64) -> Timestamp {
        let micros = if millis > (i64::MAX / 1000) as u64 {
            i64::MAX
        } else {
            millis as i64 * 1000
        };
        Timestamp(self.0.saturating_add(micros))
    }

    /// Whole milliseconds from `earlier` to `self`; zero when `earlier` is later.
    pub fn millis_since(self, earlier: Timestamp) -> u64 {
        u64::try_from(self.0.saturating_sub(earlier.0) / 1000).unwrap_or(0)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t+{}us", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates_and_never_goes_negative() {
        let t = Timestamp::from_millis(10);
        assert_eq!(t.plus_millis(5).millis_since(t), 5);
        assert_eq!(t.millis_since(t.plus_millis(5)), 0);
        assert_eq!(
            Timestamp(i64::MAX).plus_millis(u64::MAX),
            Timestamp(i64::MAX)
        );
        assert_eq!(
            Timestamp(i64::MAX).millis_since(Timestamp(i64::MIN)),
            (i64::MAX / 1000) as u64
        );
    }
}
