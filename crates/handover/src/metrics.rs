//! Acknowledgement latency: how long each accepted command took from the call to its durable
//! reply, kept in a histogram so percentiles cost nothing to read and little to record.

use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::sync::lock;

/// Latencies above this (one minute) are counted as this.
const LATENCY_MICROS_MAX: u64 = 60_000_000;

/// Percentiles of the time from a command's call to its acknowledgement, over every command
/// acknowledged since the runtime started ([`crate::Handover::ack_latency`]).
///
/// ```
/// let latency = handover::AckLatency::default();
/// assert_eq!(latency.acknowledged, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AckLatency {
    /// Commands acknowledged.
    pub acknowledged: u64,
    /// Half of them were acknowledged at least this fast.
    pub p50: Duration,
    /// 99 in 100 were acknowledged at least this fast.
    pub p99: Duration,
    /// The slowest.
    pub max: Duration,
}

/// The histogram behind [`AckLatency`]: microseconds, three significant digits.
pub(crate) struct LatencyRecorder {
    histogram: Mutex<Histogram<u64>>,
}

impl LatencyRecorder {
    pub(crate) fn new() -> LatencyRecorder {
        let histogram = Histogram::new_with_bounds(1, LATENCY_MICROS_MAX, 3)
            .expect("constant bounds are valid");
        LatencyRecorder {
            histogram: Mutex::new(histogram),
        }
    }

    pub(crate) fn record(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, LATENCY_MICROS_MAX);
        lock(&self.histogram).saturating_record(micros);
    }

    pub(crate) fn summary(&self) -> AckLatency {
        let histogram = lock(&self.histogram);
        // The histogram reports the top of a value's bucket; never beyond what it can hold.
        let micros = |value: u64| Duration::from_micros(value.min(LATENCY_MICROS_MAX));
        let at = |q: f64| micros(histogram.value_at_quantile(q));
        AckLatency {
            acknowledged: histogram.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: micros(histogram.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_what_was_recorded() {
        let recorder = LatencyRecorder::new();
        assert_eq!(recorder.summary(), AckLatency::default());
        for micros in 1..=100 {
            recorder.record(Duration::from_micros(micros * 10));
        }
        let summary = recorder.summary();
        assert_eq!(summary.acknowledged, 100);
        assert_eq!(summary.p50, Duration::from_micros(500));
        assert_eq!(summary.p99, Duration::from_micros(990));
        assert_eq!(summary.max, Duration::from_micros(1000));
    }

    #[test]
    fn latencies_beyond_the_bounds_are_clamped_not_lost() {
        let recorder = LatencyRecorder::new();
        recorder.record(Duration::ZERO);
        recorder.record(Duration::from_secs(3600));
        let summary = recorder.summary();
        assert_eq!(summary.acknowledged, 2);
        assert_eq!(summary.max, Duration::from_micros(LATENCY_MICROS_MAX));
    }
}
