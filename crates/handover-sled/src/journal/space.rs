//! [`FreeSpace`]: the free space the writer keeps on the data directory's file system.

use std::path::PathBuf;
use std::sync::Arc;

use handover_store::StoreError;

/// The free space the writer keeps on the data directory's file system.
///
/// sled 0.34.7 does not survive running out of space in the middle of its writes: after
/// `ENOSPC` its recovery can come back with part of a failed batch (a stream with a gap, a mark
/// without its record), which the store then reports as damage. So the writer stops the store
/// before sled can get there: a group that would leave less than `reserve` bytes free is not
/// applied, and the store fails with an I/O error of kind `StorageFull`.
pub(crate) struct FreeSpace {
    pub(crate) dir: PathBuf,
    pub(crate) reserve: u64,
}

impl FreeSpace {
    /// sled writes a record to its log and again as part of its page, and cleans segments:
    /// count several times the encoded bytes.
    const WRITE_AMPLIFICATION: u64 = 4;

    pub(crate) fn check(&self, bytes: u64) -> Result<(), StoreError> {
        let stat = rustix::fs::statvfs(&self.dir).map_err(std::io::Error::from)?;
        let available = stat.f_bavail.saturating_mul(stat.f_frsize);
        let needed = self
            .reserve
            .saturating_add(bytes.saturating_mul(Self::WRITE_AMPLIFICATION));
        if available < needed {
            return Err(StoreError::Io(Arc::new(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!(
                    "{} has {available} bytes free; appending {bytes} bytes would leave less \
                     than the {} bytes the store keeps free (SledOptions::min_free_bytes)",
                    self.dir.display(),
                    self.reserve
                ),
            ))));
        }
        Ok(())
    }
}
