//! Where a sink remembers how far it has delivered, so that a restart resumes there.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// How far a sink has delivered: the global position up to which every event is acknowledged
/// by the receiver (or left out by the filter).
///
/// A sink loads it once when it starts and resumes one position after it; it saves it after
/// each batch of deliveries, whenever it has caught up with the log, and when it shuts down.
/// A save must be durable once it returns: a position saved and then lost would make the
/// restarted sink skip events. Saving less often only means more events delivered again after
/// a crash, which the receiver drops by their `webhook-id`.
///
/// The sink calls these methods on a blocking thread, never on the async runtime.
pub trait Checkpoint: Send + 'static {
    /// The position saved last, or `None` if nothing was saved yet.
    fn load(&mut self) -> io::Result<Option<u64>>;

    /// Remembers `position`, durably.
    fn save(&mut self, position: u64) -> io::Result<()>;
}

/// A checkpoint in one file holding the position in decimal digits and a newline.
///
/// Each save writes a temporary file beside it, syncs it, renames it over the checkpoint and
/// syncs the directory, so after a crash the file holds either the old position or the new
/// one, never a torn write.
///
/// ```no_run
/// use handover_webhooks::{Checkpoint, FileCheckpoint};
///
/// let mut checkpoint = FileCheckpoint::new("/var/lib/handover/webhook.checkpoint");
/// checkpoint.save(42)?;
/// assert_eq!(checkpoint.load()?, Some(42));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct FileCheckpoint {
    path: PathBuf,
}

impl FileCheckpoint {
    /// A checkpoint kept in `path`; its directory must exist. A missing file is an empty
    /// checkpoint.
    pub fn new(path: impl Into<PathBuf>) -> FileCheckpoint {
        FileCheckpoint { path: path.into() }
    }

    /// The checkpoint's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn temporary(&self) -> PathBuf {
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(".tmp");
        self.path.with_file_name(name)
    }
}

impl Checkpoint for FileCheckpoint {
    fn load(&mut self) -> io::Result<Option<u64>> {
        let text = match fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        text.trim_end_matches('\n').parse().map(Some).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} does not hold a position (decimal digits): {text:?}",
                    self.path.display()
                ),
            )
        })
    }

    fn save(&mut self, position: u64) -> io::Result<()> {
        let temporary = self.temporary();
        let mut file = File::create(&temporary)?;
        file.write_all(format!("{position}\n").as_bytes())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temporary, &self.path)?;
        sync_parent(&self.path)
    }
}

/// Makes the rename durable: the new directory entry is on disk only once the directory is.
#[cfg(unix)]
fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

/// Other systems cannot open a directory to sync it; the rename is as durable as they make it.
#[cfg(not(unix))]
fn sync_parent(_path: &Path) -> io::Result<()> {
    Ok(())
}

/// A checkpoint held in memory, shared by its clones: for a sink that need not survive its
/// process (a one-off run, a test), or to read where a sink is from elsewhere.
///
/// ```
/// use handover_webhooks::{Checkpoint, MemoryCheckpoint};
///
/// let checkpoint = MemoryCheckpoint::new();
/// assert_eq!(checkpoint.clone().load().unwrap(), None);
/// checkpoint.clone().save(7).unwrap();
/// assert_eq!(checkpoint.position(), Some(7));
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryCheckpoint {
    // 0 is "nothing saved": positions start at 1.
    position: Arc<AtomicU64>,
}

impl MemoryCheckpoint {
    /// An empty checkpoint.
    pub fn new() -> MemoryCheckpoint {
        MemoryCheckpoint::default()
    }

    /// The position saved last, if any.
    pub fn position(&self) -> Option<u64> {
        match self.position.load(Ordering::SeqCst) {
            0 => None,
            position => Some(position),
        }
    }
}

impl Checkpoint for MemoryCheckpoint {
    fn load(&mut self) -> io::Result<Option<u64>> {
        Ok(self.position())
    }

    fn save(&mut self, position: u64) -> io::Result<()> {
        self.position.store(position, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_checkpoint_keeps_the_last_position() {
        let dir = tempfile::tempdir().unwrap();
        let mut checkpoint = FileCheckpoint::new(dir.path().join("webhook.checkpoint"));
        assert_eq!(checkpoint.load().unwrap(), None);
        checkpoint.save(41).unwrap();
        checkpoint.save(42).unwrap();
        let mut again = FileCheckpoint::new(dir.path().join("webhook.checkpoint"));
        assert_eq!(again.load().unwrap(), Some(42));
        assert!(!checkpoint.temporary().exists());
    }

    #[test]
    fn a_damaged_file_checkpoint_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webhook.checkpoint");
        fs::write(&path, "forty-two").unwrap();
        let error = FileCheckpoint::new(&path).load().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }
}
