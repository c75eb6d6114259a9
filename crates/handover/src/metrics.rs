//! Acknowledgement latency: how long each accepted command took from the call to its durable
//! reply, kept in a histogram so percentiles cost nothing to read and little to record.

use std::sync::atomic::{AtomicU64, Ordering};
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

/// Acknowledgement latency as a cumulative histogram over bounds the caller chooses
/// ([`crate::Handover::ack_latency_histogram`]): what a Prometheus histogram exposes.
///
/// ```
/// let histogram = handover::AckHistogram::default();
/// assert_eq!(histogram.count, 0);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AckHistogram {
    /// For each bound asked for, in the order given: how many commands were acknowledged within
    /// it (cumulative, as Prometheus's `le` buckets are).
    pub within: Vec<(Duration, u64)>,
    /// Commands acknowledged.
    pub count: u64,
    /// Their latencies added up (each clamped to one minute, as the percentiles are).
    pub sum: Duration,
}

/// The histogram behind [`AckLatency`]: microseconds, three significant digits.
pub(crate) struct LatencyRecorder {
    histogram: Mutex<Histogram<u64>>,
    /// Kept apart from the histogram, whose buckets would only approximate it.
    sum_micros: AtomicU64,
}

impl LatencyRecorder {
    pub(crate) fn new() -> LatencyRecorder {
        let histogram = Histogram::new_with_bounds(1, LATENCY_MICROS_MAX, 3)
            .expect("constant bounds are valid");
        LatencyRecorder {
            histogram: Mutex::new(histogram),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub(crate) fn record(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, LATENCY_MICROS_MAX);
        lock(&self.histogram).saturating_record(micros);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The cumulative counts within each of `bounds`, with the count and the sum.
    pub(crate) fn cumulative(&self, bounds: &[Duration]) -> AckHistogram {
        let histogram = lock(&self.histogram);
        let within = bounds
            .iter()
            .map(|&bound| {
                let micros = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
                // The histogram counts a value in the bucket of its lowest equivalent: a
                // latency is within a bound when its bucket lies wholly under it.
                let count = if micros == 0 {
                    0
                } else {
                    histogram.count_between(0, micros)
                };
                (bound, count)
            })
            .collect();
        AckHistogram {
            within,
            count: histogram.len(),
            sum: Duration::from_micros(self.sum_micros.load(Ordering::Relaxed)),
        }
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
    fn the_cumulative_histogram_counts_each_latency_under_every_bound_above_it() {
        let recorder = LatencyRecorder::new();
        for micros in [100, 900, 5_000, 70_000] {
            recorder.record(Duration::from_micros(micros));
        }
        let bounds = [
            Duration::from_micros(500),
            Duration::from_millis(1),
            Duration::from_millis(10),
            Duration::from_secs(1),
        ];
        let histogram = recorder.cumulative(&bounds);
        let counts: Vec<u64> = histogram.within.iter().map(|&(_, n)| n).collect();
        assert_eq!(counts, [1, 2, 3, 4]);
        assert_eq!(histogram.count, 4);
        assert_eq!(histogram.sum, Duration::from_micros(76_000));
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
