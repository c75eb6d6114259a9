//! sled's handles and what guards them: panic containment (`contained`), the conversion of
//! sled's errors, opening while another handle releases the lock, a bounded close, and the
//! removal of snapshots sled did not finish.

use std::path::{Path, PathBuf};
use std::sync::{mpsc as std_mpsc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use handover_store::{Damage, LogLocation, StoreError};
use tracing::warn;

pub(crate) const IN_USE_POLL: Duration = Duration::from_millis(10);

/// sled's handles of one store.
pub(crate) struct Engine {
    pub(crate) db: sled::Db,
    pub(crate) log: sled::Tree,
}

impl Engine {
    /// Drops sled's handles on a thread of their own and waits for it a bounded time. After an
    /// I/O failure sled 0.34.7 can panic while closing (its log's `Drop` unwraps a final
    /// `fsync`) or block in it; neither may reach the thread that drops the store.
    pub(crate) fn close(self, wait_at_most: Duration) {
        let (closed, wait) = std_mpsc::channel();
        let closer = std::thread::Builder::new()
            .name("handover-close".to_owned())
            .spawn(move || {
                drop(self);
                let _ = closed.send(());
            });
        match closer {
            Ok(_) => {
                if wait.recv_timeout(wait_at_most).is_err() && !wait_at_most.is_zero() {
                    warn!(
                        "the storage engine did not close cleanly; its files are left as they are"
                    );
                }
            }
            Err(error) => warn!(%error, "cannot start a thread to close the storage engine"),
        }
    }
}

/// How long dropping a store waits for sled to close.
pub(crate) const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Opens `config`, retrying while another handle holds the directory's lock: sled releases it
/// from a background thread a moment after the last handle in this process is dropped.
pub(crate) fn open_waiting(
    config: &sled::Config,
    path: &Path,
    in_use_wait: Duration,
) -> Result<sled::Db, StoreError> {
    let deadline = Instant::now() + in_use_wait;
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(e) if is_lock_error(&e) => {
                if Instant::now() >= deadline {
                    return Err(StoreError::InUse {
                        path: path.to_path_buf(),
                    });
                }
                std::thread::sleep(IN_USE_POLL);
            }
            Err(e) => return Err(store_error(e)),
        }
    }
}

pub(crate) fn is_lock_error(error: &sled::Error) -> bool {
    matches!(error, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"))
}

/// Removes `snap.<lsn>.generating` files: snapshots sled began and never finished (a crash or
/// an I/O error while writing one). sled 0.34.7 does not skip them when it looks for its
/// latest snapshot, and then fails every open of an intact log. A snapshot only shortens
/// recovery; sled writes a new one.
/// Creates the data directory and any missing parents. With `durable`, it then `fsync`s the
/// directory above each one it created, and the data directory's own parent in any case (an
/// earlier open may have created it and crashed before its sync): a new directory's entry is
/// in its parent, and without that sync a power cut can take the whole store away, however
/// well its files were synced.
pub(crate) fn create_data_dir(path: &Path, durable: bool) -> Result<(), StoreError> {
    let mut missing = Vec::new();
    let mut probe = Some(path);
    while let Some(dir) = probe.filter(|dir| !dir.as_os_str().is_empty() && !dir.exists()) {
        missing.push(dir.to_path_buf());
        probe = dir.parent();
    }
    std::fs::create_dir_all(path)?;
    if durable {
        let mut parents: Vec<PathBuf> = missing.iter().filter_map(|dir| parent_dir(dir)).collect();
        parents.extend(parent_dir(path));
        parents.dedup();
        for parent in parents {
            std::fs::File::open(parent)?.sync_all()?;
        }
    }
    Ok(())
}

/// The directory holding `dir`'s entry: `.` for a relative path of one component.
fn parent_dir(dir: &Path) -> Option<PathBuf> {
    match dir.parent() {
        Some(parent) if parent.as_os_str().is_empty() => Some(PathBuf::from(".")),
        Some(parent) => Some(parent.to_path_buf()),
        None => None,
    }
}

/// Makes what a crashed process left in the page cache durable before sled recovers from it:
/// every blob file and `blobs/`, then `db`, then the data directory.
///
/// sled 0.34.7 recovers from what it reads, which after a process crash includes log
/// messages written but never synced, and at every open writes a snapshot of that state
/// (`snap.<lsn>`, synced, its rename not). Once the store has synced the directory, the
/// snapshot is durable while the log tail it describes may not be; a power cut then leaves a
/// snapshot ahead of the log, or `db` naming blobs that are not on disk. Syncing first makes
/// them agree, and blobs go before `db` for the reason `DiskSync` gives. On a directory that
/// closed cleanly every one of these syncs finds nothing to write.
pub(crate) fn sync_before_recovery(path: &Path) -> Result<(), StoreError> {
    let db = path.join("db");
    if !db.exists() {
        return Ok(());
    }
    let blobs = path.join("blobs");
    match std::fs::read_dir(&blobs) {
        Ok(entries) => {
            for entry in entries {
                std::fs::File::open(entry?.path())?.sync_data()?;
            }
            std::fs::File::open(&blobs)?.sync_all()?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    std::fs::File::open(&db)?.sync_all()?;
    std::fs::File::open(path)?.sync_all()?;
    Ok(())
}

pub(crate) fn remove_unfinished_snapshots(dir: &Path) -> Result<(), StoreError> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            warn!(file = %name, "removing a snapshot sled did not finish");
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Runs `f`, turning a panic inside it into [`StoreError::Corrupted`] with
/// [`Damage::Engine`]: sled 0.34.7 panics on some damaged directories instead of returning an
/// error, while opening them and also while reading them later (a missing blob file, for one).
pub(crate) fn contained<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|message| (*message).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned());
        Err(StoreError::corrupted(
            LogLocation::default(),
            Damage::Engine,
            format!("the storage engine panicked while {what}: {message}"),
        ))
    })
}

/// An iterator over sled whose panics become an error item (see [`contained`]).
pub(crate) struct Contained<I>(pub(crate) I);

impl<T, I: Iterator<Item = Result<T, StoreError>>> Iterator for Contained<I> {
    type Item = Result<T, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        contained("reading the log", || Ok(self.0.next())).unwrap_or_else(|e| Some(Err(e)))
    }
}

/// Yields the items of `results` up to and including the first error, then stops: after
/// damage, a reader must not go on as if the log continued.
pub(crate) fn until_first_error<T>(
    results: impl Iterator<Item = Result<T, StoreError>>,
) -> impl Iterator<Item = Result<T, StoreError>> {
    let mut failed = false;
    results.map_while(move |result| {
        if failed {
            return None;
        }
        failed = result.is_err();
        Some(result)
    })
}

/// Locks `mutex`, also after a panic elsewhere (what it guards stays consistent: it is only
/// ever replaced whole).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn spawn(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, StoreError> {
    Ok(std::thread::Builder::new().name(name.to_owned()).spawn(f)?)
}

/// sled's error as the store's: I/O errors keep their kind, damage sled found in its own pages
/// is [`Damage::Engine`]. A function, not a `From` impl: neither type is this crate's.
pub(crate) fn store_error(error: sled::Error) -> StoreError {
    match error {
        sled::Error::Io(io) => io.into(),
        sled::Error::Corruption { at, .. } => StoreError::corrupted(
            LogLocation::default(),
            Damage::Engine,
            match at {
                Some(at) => format!("sled found a damaged page in its log file `db` ({at:?})"),
                // sled gives no place when its settings file fails its checksum or a snapshot
                // does not parse: say which files, not "offset None".
                None => "sled found its files damaged (the settings file `conf`, a snapshot or \
                         the log file `db` failed a checksum) and cannot open them"
                    .to_owned(),
            },
        ),
        other => StoreError::Engine(other.to_string()),
    }
}

/// `.or_store()?` on a sled result: [`store_error`] where `?` alone would need a `From` impl.
pub(crate) trait OrStore<T> {
    /// The result with sled's error turned into the store's.
    fn or_store(self) -> Result<T, StoreError>;
}

impl<T> OrStore<T> for Result<T, sled::Error> {
    fn or_store(self) -> Result<T, StoreError> {
        self.map_err(store_error)
    }
}
