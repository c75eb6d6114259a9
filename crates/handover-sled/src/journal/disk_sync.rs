//! What makes applied groups durable: the [`SyncStep`] the syncer calls, and [`DiskSync`],
//! sled's flush plus the `fdatasync`s `Durable` needs.

use std::collections::HashSet;
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
/// 128 KiB) to blob files it never syncs. After sled's flush, `Durable` therefore syncs the data
/// file, every blob file not synced before, and the blob directory.
pub(crate) struct DiskSync {
    pub(crate) db: sled::Db,
    pub(crate) durable: Option<DurableFiles>,
}

pub(crate) struct DurableFiles {
    pub(crate) data: File,
    pub(crate) blob_dir: PathBuf,
    pub(crate) synced_blobs: HashSet<OsString>,
}

impl DiskSync {
    pub(crate) fn new(
        db: sled::Db,
        dir: &Path,
        durability: Durability,
    ) -> Result<DiskSync, StoreError> {
        let durable = match durability {
            // A mode this backend does not know yet gets the strongest it has.
            Durability::Durable | _ => {
                // The directory entries of sled's files must survive too.
                File::open(dir)?.sync_all()?;
                Some(DurableFiles {
                    data: File::open(dir.join("db"))?,
                    blob_dir: dir.join("blobs"),
                    synced_blobs: HashSet::new(),
                })
            }
        };
        Ok(DiskSync { db, durable })
    }
}

impl DurableFiles {
    pub(crate) fn sync(&mut self) -> std::io::Result<()> {
        self.data.sync_data()?;
        let entries = match std::fs::read_dir(&self.blob_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut present = HashSet::new();
        let mut new_blobs = false;
        for entry in entries {
            let name = entry?.file_name();
            if !self.synced_blobs.contains(&name) {
                File::open(self.blob_dir.join(&name))?.sync_data()?;
                new_blobs = true;
            }
            present.insert(name);
        }
        if new_blobs {
            File::open(&self.blob_dir)?.sync_all()?;
        }
        // sled deletes blobs it no longer needs; forget them.
        self.synced_blobs = present;
        Ok(())
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
