//! How far a long audit has got: the functions named `…_with_progress` tell a [`Progress`] how
//! many positions of the log they have gone through, so that a command can draw a progress
//! bar. The others pass [`NoProgress`].

/// Told how far a pass over the log has got. The total is the log's last position (for one
/// conversation's export, its number of events).
///
/// Calls come from the thread that called the audit function, a few thousand positions at a
/// time rather than once per record, so an implementation may be as slow as a terminal.
///
/// ```
/// use std::cell::Cell;
/// use handover_audit::Progress;
///
/// #[derive(Default)]
/// struct Count { total: Cell<u64>, done: Cell<u64> }
///
/// impl Progress for Count {
///     fn start(&self, total: u64) {
///         self.total.set(total);
///         self.done.set(0);
///     }
///     fn advance(&self, positions: u64) {
///         self.done.set(self.done.get() + positions);
///     }
/// }
///
/// let count = Count::default();
/// let log = handover_audit::RecordLog::new(Vec::new());
/// handover_audit::verify_of_with_progress((&log).into(), &count).unwrap();
/// assert_eq!((count.total.get(), count.done.get()), (0, 0));
/// ```
pub trait Progress {
    /// The pass starts, or starts over from nothing done (a verification that finds
    /// something wrong in its fast pass reads the log again in position order): `total`
    /// positions to go through.
    fn start(&self, total: u64) {
        let _ = total;
    }

    /// `positions` more positions were gone through.
    fn advance(&self, positions: u64);
}

/// Reports nothing: what the functions without `_with_progress` pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn advance(&self, _: u64) {}
}

/// Positions between two calls of [`Progress::advance`]: a call per record would cost a
/// terminal update's worth of checks a million times for a large log.
const STEP: u64 = 4096;

/// Counts records one at a time and tells a [`Progress`] every [`STEP`] of them.
pub(crate) struct Ticker<'p> {
    progress: &'p dyn Progress,
    pending: u64,
}

impl<'p> Ticker<'p> {
    /// Starts a pass of `total` positions.
    pub(crate) fn start(progress: &'p dyn Progress, total: u64) -> Ticker<'p> {
        progress.start(total);
        Ticker {
            progress,
            pending: 0,
        }
    }

    /// One more record.
    pub(crate) fn tick(&mut self) {
        self.add(1);
    }

    /// `records` more records.
    pub(crate) fn add(&mut self, records: u64) {
        self.pending += records;
        if self.pending >= STEP {
            self.flush();
        }
    }

    /// Tells what is counted and not told yet.
    pub(crate) fn flush(&mut self) {
        if self.pending > 0 {
            self.progress.advance(self.pending);
            self.pending = 0;
        }
    }
}

impl Drop for Ticker<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}
