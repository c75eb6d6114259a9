//! Mounting a [`Disk`] and taking it down again, without ever leaving a stale mount behind.
//!
//! A FUSE mount whose daemon is gone makes every later access of its path hang or fail, so
//! [`Mounted`] unmounts on every path out, including a panic: first a normal unmount (which
//! fails while a file is still open), and a lazy one (`MNT_DETACH`) as the last resort.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use fuser::{BackgroundSession, Config, MountOption};

use crate::disk::Disk;
use crate::fs::PowerFs;
use crate::PowercutError;

/// A [`Disk`] mounted on a directory, served by a thread of this process.
pub struct Mounted {
    session: Option<BackgroundSession>,
    path: PathBuf,
}

impl Mounted {
    /// Mounts `disk` on `path` (an existing empty directory). Needs root: without the
    /// `libfuse` feature, fuser mounts with mount(2).
    pub fn mount(disk: Arc<Mutex<Disk>>, path: &Path) -> Result<Mounted, PowercutError> {
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName(FS_NAME.to_owned()),
            MountOption::RW,
            MountOption::NoAtime,
        ];
        let session = fuser::spawn_mount(PowerFs::new(disk), path, &config).map_err(|source| {
            PowercutError::Mount {
                path: path.to_path_buf(),
                source,
            }
        })?;
        Ok(Mounted {
            session: Some(session),
            path: path.to_path_buf(),
        })
    }

    /// Where the disk is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unmounts and waits for the daemon thread. Every process using the mount must be gone.
    pub fn unmount(mut self) -> Result<(), PowercutError> {
        self.take_down()
    }

    fn take_down(&mut self) -> Result<(), PowercutError> {
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        match session.umount_and_join() {
            Ok(()) => Ok(()),
            Err(source) => {
                // Detaching never fails on a busy mount, and the daemon thread then ends when
                // the last user is gone; the path is free at once either way.
                let _ = rustix::mount::unmount(&self.path, rustix::mount::UnmountFlags::DETACH);
                Err(PowercutError::Unmount {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.session.is_some() {
            if let Err(error) = self.take_down() {
                eprintln!("handover-powercut: {error} (detached lazily)");
            }
        }
    }
}

/// The name every mount of this crate carries in `/proc/mounts`.
const FS_NAME: &str = "handover-powercut";

/// Detaches mounts of this crate whose daemon is gone, and returns how many.
///
/// A test process killed from outside (a timeout, SIGKILL) cannot run its guards; its mounts
/// stay listed and answer every access with `ENOTCONN`. A mount whose daemon still answers
/// belongs to a live run and is left alone.
pub fn detach_stale_mounts() -> usize {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else {
        return 0;
    };
    let mut detached = 0;
    for line in mounts.lines() {
        let mut fields = line.split(' ');
        let (Some(source), Some(path)) = (fields.next(), fields.next()) else {
            continue;
        };
        if source != FS_NAME {
            continue;
        }
        let path = Path::new(path);
        let dead = matches!(
            std::fs::metadata(path),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTCONN.raw_os_error())
        );
        if dead && rustix::mount::unmount(path, rustix::mount::UnmountFlags::DETACH).is_ok() {
            detached += 1;
        }
    }
    detached
}

/// Whether this process can mount a FUSE file system: root, and `/dev/fuse` present. `Err`
/// says what is missing and what to do about it.
pub fn can_mount() -> Result<(), String> {
    let mut missing = Vec::new();
    if !rustix::process::geteuid().is_root() {
        missing.push(
            "root (fuser mounts with mount(2) without libfuse; run the test as root, e.g. in \
             the CI container)",
        );
    }
    if !Path::new("/dev/fuse").exists() {
        missing.push(
            "/dev/fuse (load the fuse module; in a container pass `--device /dev/fuse \
             --cap-add SYS_ADMIN`)",
        );
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing {}", missing.join(" and ")))
    }
}
