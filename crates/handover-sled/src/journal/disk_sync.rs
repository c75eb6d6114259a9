//! What makes applied groups durable: the [`SyncStep`] the syncer calls, and [`DiskSync`],
//! sled's flush plus the `fdatasync`s `Durable` needs.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};

use handover_store::{Durability, StoreError};

use crate::engine::OrStore;

/// Makes applied groups durable. The store's is [`DiskSync`]; tests substitute failures.
pub(crate) trait SyncStep: Send + 'static {
    /// Makes everything applied so far as durable as the store promises.
    fn sync(&mut self) -> Result<(), StoreError>;
}

impl<F: FnMut() -> Result<(), StoreError> + Send + 'static> SyncStep for F {
    fn sync(&mut self) -> Result<(), StoreError> {
        self()
    }
}

/// sled's flush, and in [`Durability::Durable`] an `fdatasync` of every file it wrote.
///
/// sled 0.34.7 writes its log with `sync_file_range`, which flushes neither the drive's write
/// cache nor the file's size, and writes values too large for its log (node pages over about
/// 128 KiB) to blob files it never syncs. After sled's flush, `Durable` therefore syncs every
/// blob file not synced at its present length and the blob directory, then the data file.
pub(crate) struct DiskSync {
    pub(crate) db: sled::Db,
    pub(crate) durable: Option<DurableFiles>,
}

pub(crate) struct DurableFiles {
    pub(crate) data: File,
    pub(crate) blob_dir: PathBuf,
    /// Blob files synced, with the length they had then.
    pub(crate) synced_blobs: HashMap<OsString, u64>,
}

impl DiskSync {
    pub(crate) fn new(
        db: sled::Db,
        dir: &Path,
        durability: Durability,
    ) -> Result<DiskSync, StoreError> {
        let durable = match durability {
            Durability::ProcessCrash | Durability::Buffered => None,
            // `Durable`, and a mode this backend does not know yet: the strongest it has.
            _ => {
                // sled writes `conf` at the first open without a sync. Where a power cut can
                // keep a file's new size without its data (XFS, ext4 with data=writeback),
                // sled would read zeros there and refuse every later open.
                File::open(dir.join("conf"))?.sync_all()?;
                // The directory entries of sled's files must survive too.
                File::open(dir)?.sync_all()?;
                Some(DurableFiles {
                    data: File::open(dir.join("db"))?,
                    blob_dir: dir.join("blobs"),
                    synced_blobs: HashMap::new(),
                })
            }
        };
        Ok(DiskSync { db, durable })
    }
}

impl DurableFiles {
    /// Syncs the blobs and their directory first, then `db`: sled's log messages point at
    /// blob files, and a log made durable before the blob it points at can come back after a
    /// power cut naming a blob that is not there. sled then skips that update alone, keeping
    /// the rest of its batch (a global index entry without its record), and every later open
    /// fails as corrupted.
    pub(crate) fn sync(&mut self) -> std::io::Result<()> {
        self.sync_blobs()?;
        self.data.sync_data()
    }

    fn sync_blobs(&mut self) -> std::io::Result<()> {
        let entries = match std::fs::read_dir(&self.blob_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut present = HashMap::new();
        let mut new_blobs = false;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            // sled deletes a blob it no longer needs on its own threads, also between the
            // listing and here: one that is gone needs no sync.
            let len = match gone_is_none(entry.metadata())? {
                Some(metadata) => metadata.len(),
                None => continue,
            };
            // sled writes a blob on the writer thread, which may be writing one while this
            // lists them: a blob synced part-written has grown since, and is synced again.
            if self.synced_blobs.get(&name) != Some(&len) {
                let Some(file) = gone_is_none(File::open(self.blob_dir.join(&name)))? else {
                    continue;
                };
                file.sync_data()?;
                new_blobs = true;
            }
            present.insert(name, len);
        }
        if new_blobs {
            File::open(&self.blob_dir)?.sync_all()?;
        }
        // sled deletes blobs it no longer needs; forget them.
        self.synced_blobs = present;
        Ok(())
    }
}

/// `Ok(None)` for a file that is not there (any more), the other outcomes as they are.
fn gone_is_none<T>(result: std::io::Result<T>) -> std::io::Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl SyncStep for DiskSync {
    fn sync(&mut self) -> Result<(), StoreError> {
        self.db.flush().or_store()?;
        if let Some(files) = &mut self.durable {
            files.sync()?;
        }
        Ok(())
    }
}
