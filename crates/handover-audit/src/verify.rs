//! Verification: every record's checksum, the global order, every stream's contiguity, the
//! agreement of stream records and global index, and every event against the rules. The
//! report names the first fault.

use std::path::Path;

use handover_sled::SledStore;
use handover_store::{EventStore as _, StoreError};

use crate::error::AuditError;
use crate::fault::{Fault, FaultKind, Location};
use crate::log::AuditLog;
use crate::open_unchecked;
use crate::progress::{NoProgress, Progress, Ticker};
use crate::replay::Replay;

/// The outcome of [`verify_dir`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifyReport {
    /// Every check passed.
    Sound {
        /// Events in the log.
        events: u64,
        /// Streams in the log (conversations, AI agents and humans).
        streams: u64,
    },
    /// The first fault found; nothing after it was checked.
    Faulty(Fault),
}

impl VerifyReport {
    /// Whether every check passed.
    pub fn is_sound(&self) -> bool {
        matches!(self, VerifyReport::Sound { .. })
    }

    /// The report on a log whose read failed with `error`: damage the log holds
    /// ([`StoreError::Corrupted`], naming its stream, seq and position, e.g. a checksum or a
    /// hash chain that a store's snapshot found broken) is a [`VerifyReport::Faulty`], as
    /// [`verify_dir`] reports the same damage; any other error says nothing about the log
    /// (I/O, a connection) and is given back.
    ///
    /// ```
    /// use handover_audit::{FaultKind, VerifyReport};
    /// use handover_store::{Damage, LogLocation, StoreError};
    ///
    /// let damaged = StoreError::corrupted(LogLocation::at_position(3), Damage::Chain, "broken");
    /// let VerifyReport::Faulty(fault) = VerifyReport::from_read_error(damaged).unwrap() else {
    ///     panic!("damage is a fault");
    /// };
    /// assert_eq!(fault.kind, FaultKind::Damaged);
    /// assert!(VerifyReport::from_read_error(StoreError::Closed).is_err());
    /// ```
    pub fn from_read_error(error: StoreError) -> Result<VerifyReport, StoreError> {
        Fault::from_store(error, None).map(VerifyReport::Faulty)
    }
}

/// Verifies the event log in the data directory `dir`, in two passes:
///
/// 1. The global order, position by position from 1: the index has no gap; each entry leads
///    to a record whose checksum, format and body are sound and which says it is at that
///    position, stream and seq; and the record is replayed ([`Replay::apply`]): recorded
///    times never go back, every stream runs from seq 1 without a gap, and every event
///    passes the rules (AI-agent events fold with the roster, human events with the
///    directory; a handoff names an AI agent registered and active at that point, of the
///    conversation's tenant; conversation events fold with `evolve`, so AI actions come only
///    from the active agent and nothing follows a close; humans act only on conversations they
///    answer for, the router assigns only humans available and below capacity, SLA figures
///    agree with the wait, and nothing crosses tenants: [`crate::FaultKind`] names each).
/// 2. The stream records themselves, scanned without the index
///    ([`SledStore::scan_streams`]): each is sound and in its place, and none lies beyond
///    what the index holds of its stream; the totals of both agree.
///
/// The first fault of pass 1 is the earliest in log order. A sound log passes both passes'
/// checks in one sequential read of the stream records and one of the index (as
/// [`Replay::from_store`] reads it); the two passes run only when that read finds something
/// wrong, so the fault reported is the same.
///
/// The directory must not be held by another [`SledStore`] (here or in another process):
/// that is [`AuditError::Store`] with [`handover_store::StoreError::InUse`]. Errors are
/// reserved for what kept the check from running (missing directory, I/O); what is wrong in
/// the log is a [`VerifyReport::Faulty`].
pub fn verify_dir(dir: &Path) -> Result<VerifyReport, AuditError> {
    verify_dir_with_progress(dir, &NoProgress)
}

/// [`verify_dir`], telling `progress` how far it has got through the log. If the fast pass
/// finds something wrong, `progress` starts over for the pass in position order.
pub fn verify_dir_with_progress(
    dir: &Path,
    progress: &dyn Progress,
) -> Result<VerifyReport, AuditError> {
    let store = match open_unchecked(dir) {
        Ok(store) => store,
        // Files the storage engine finds damaged are a fault of the log, not a failure to
        // check it.
        Err(AuditError::Store(error)) => return Ok(VerifyReport::from_read_error(error)?),
        Err(error) => return Err(error),
    };
    verify_store(&store, progress)
}

/// Verifies any [`AuditLog`].
///
/// Over a sled store, the checks of [`verify_dir`] on a store already open (the store must
/// not be held by another [`SledStore`]; [`crate::open_data_dir`] opens one).
///
/// Over records in memory, each record in turn is replayed ([`Replay::apply`]): the positions
/// run from 1 without a gap, every stream's seqs from 1 without a gap, recorded times never go
/// back, and every event passes the rules, as in pass 1 of [`verify_dir`]. Checksums and
/// hash chains are the checks of the store that read the records; damage it found is a fault
/// too: see [`VerifyReport::from_read_error`].
///
/// The same log gives the same report either way.
pub fn verify_of(log: AuditLog<'_>) -> Result<VerifyReport, AuditError> {
    verify_of_with_progress(log, &NoProgress)
}

/// [`verify_of`], telling `progress` how far it has got through the log.
pub fn verify_of_with_progress(
    log: AuditLog<'_>,
    progress: &dyn Progress,
) -> Result<VerifyReport, AuditError> {
    match log {
        AuditLog::Sled(store) => verify_store(store, progress),
        AuditLog::Records(log) => {
            let mut ticker = Ticker::start(progress, log.head());
            let mut replay = Replay::new();
            for record in log.records() {
                if let Err(fault) = replay.apply(record) {
                    return Ok(VerifyReport::Faulty(fault));
                }
                ticker.tick();
            }
            Ok(VerifyReport::Sound {
                events: replay.events(),
                streams: replay.streams().count() as u64,
            })
        }
    }
}

/// The checks of [`verify_dir`] on an open store.
fn verify_store(store: &SledStore, progress: &dyn Progress) -> Result<VerifyReport, AuditError> {
    // A sound log passes in one sequential read; anything else is left to the two passes
    // below, which name the earliest fault.
    if let Some(replay) = Replay::from_store_sound(store, progress) {
        if let Err(error) = store.check_acknowledged() {
            return Ok(VerifyReport::Faulty(Fault::from_store(error, None)?));
        }
        return Ok(VerifyReport::Sound {
            events: replay.events(),
            streams: replay.streams().count() as u64,
        });
    }
    let replay = match replay_checked(store, progress)? {
        Ok(replay) => replay,
        Err(fault) => return Ok(VerifyReport::Faulty(fault)),
    };
    let mut scanned = 0u64;
    for item in store.scan_streams() {
        let record = match item {
            Ok(record) => record,
            Err(error) => return Ok(VerifyReport::Faulty(Fault::from_store(error, None)?)),
        };
        scanned += 1;
        let indexed = replay.stream_version(&record.stream);
        if record.seq > indexed {
            let held = match indexed {
                0 => "none of this stream".to_owned(),
                n => format!("only seqs 1 to {n} of this stream"),
            };
            return Ok(VerifyReport::Faulty(Fault::new(
                FaultKind::Index,
                Location::record(&record.stream, record.seq, record.position),
                format!("this stream record is missing from the global index, which holds {held}"),
            )));
        }
    }
    // Pass 1 read every indexed record through its stream key, and pass 2 found no stream
    // record beyond them, so the counts can only differ if the log changed in between.
    if scanned != replay.events() {
        return Ok(VerifyReport::Faulty(Fault::new(
            FaultKind::Index,
            Location::default(),
            format!(
                "the streams hold {scanned} records but the global index {}",
                replay.events()
            ),
        )));
    }
    // Everything read is sound; the log must still hold all that was acknowledged.
    if let Err(error) = store.check_acknowledged() {
        return Ok(VerifyReport::Faulty(Fault::from_store(error, None)?));
    }
    Ok(VerifyReport::Sound {
        events: replay.events(),
        streams: replay.streams().count() as u64,
    })
}

/// Pass 1: replays the global order, turning damage into a fault. The outer error is for
/// failures that say nothing about the log (I/O).
fn replay_checked(
    store: &SledStore,
    progress: &dyn Progress,
) -> Result<Result<Replay, Fault>, AuditError> {
    let mut ticker = Ticker::start(progress, store.head());
    let mut replay = Replay::new();
    for item in store.iter_all(1) {
        let fault = match item {
            Ok(record) => match replay.apply(&record) {
                Ok(()) => {
                    ticker.tick();
                    continue;
                }
                Err(fault) => fault,
            },
            Err(error) => Fault::from_store(error, Some(replay.head() + 1))?,
        };
        return Ok(Err(fault));
    }
    Ok(Ok(replay))
}
