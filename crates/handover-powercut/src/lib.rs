//! A test file system that forgets what was never synced, to prove that an acknowledged event
//! survives a power cut.
//!
//! Killing a process keeps the operating system's page cache, so the crash tests cannot tell
//! an `fsync` from its absence. This crate mounts an in-memory FUSE file system ([`Disk`])
//! that keeps, per file, the bytes written and the bytes synced, and per directory, the
//! entries made and the entries synced. A power cut ([`Disk::power_cut`]) keeps only what was
//! synced. The test in `tests/powercut.rs` runs the store in a child process on such a mount,
//! cuts the power at seeded moments, mounts what survived afresh, and checks that every
//! acknowledged event is still there. `docs/reliability.md` has the property and its figures.
//!
//! Test-only: it needs root and `/dev/fuse` ([`can_mount`]).

mod disk;
mod fs;
mod mount;

pub use disk::{Counts, CutPoint, CutReport, Disk, FsResult, Kind, Profile, PAGE_BYTES, ROOT};
pub use fs::PowerFs;
pub use mount::{can_mount, detach_stale_mounts, Mounted};

/// What mounting and unmounting can fail with.
#[derive(Debug, thiserror::Error)]
pub enum PowercutError {
    /// The kernel refused the mount (not root, no `/dev/fuse`, a busy path).
    #[error("mounting the test file system on {path}: {source}")]
    Mount {
        /// The mount point.
        path: std::path::PathBuf,
        /// What mount(2) said.
        source: std::io::Error,
    },
    /// The mount was busy; it was detached lazily instead.
    #[error("unmounting the test file system from {path}: {source}")]
    Unmount {
        /// The mount point.
        path: std::path::PathBuf,
        /// What umount(2) said.
        source: std::io::Error,
    },
}
