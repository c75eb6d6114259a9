//! The disk model: what a file system has promised to keep, and what a power cut takes away.
//!
//! Every file holds two versions of itself: the bytes the writer sees (its page cache) and
//! the bytes that reached the medium. A write dirties the 4 KiB pages it touches and may grow
//! the file; only an fsync of that file (`fsync` or `fdatasync`) moves its dirty pages and its
//! size to the medium. Every directory likewise holds the entries the writer sees and the
//! entries that reached the medium; `create`, `mkdir`, `rename` and `unlink` change only the
//! former until an fsync of that directory. `sync_file_range` never reaches a FUSE daemon at
//! all, so it makes nothing durable here, which is what it promises on a real disk too.
//!
//! A power cut keeps the medium and forgets the rest: dirty pages (or, in torn mode, each
//! dirty page with a seeded probability), sizes never synced, directory entries never synced,
//! and every file or directory no longer reachable from the root through synced entries.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};

use fuser::Errno;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The unit the model tracks dirty data in, like a page of the kernel's page cache.
pub const PAGE_BYTES: u64 = 4096;

/// The root directory's inode number (FUSE's fixed root).
pub const ROOT: u64 = 1;

/// Which directory entries an fsync makes durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Only an fsync of a directory makes its entries durable, as fsync(2) promises. The
    /// claim of record: code that survives this survives any POSIX file system.
    Strict,
    /// An fsync of a file also makes the file's own entries durable, as ext4's journal
    /// usually does (it commits the entry with the inode), though nothing promises it.
    Ext4ish,
}

impl Profile {
    /// `strict` or `ext4ish`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Strict => "strict",
            Profile::Ext4ish => "ext4ish",
        }
    }
}

/// The moment the power goes: counted in requests the daemon has received since the disk was
/// armed. Writes and syncs are counted separately; a sync is an FSYNC or an FSYNCDIR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CutPoint {
    /// The k-th write is applied (to the page cache) and answered; then the disk freezes.
    AfterWrite(u64),
    /// The k-th sync freezes the disk before it makes anything durable; it fails with `EIO`.
    BeforeSync(u64),
    /// The k-th sync makes its file or directory durable and succeeds; then the disk freezes.
    AfterSync(u64),
}

impl std::fmt::Display for CutPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CutPoint::AfterWrite(k) => write!(f, "after write {k}"),
            CutPoint::BeforeSync(k) => write!(f, "before sync {k}"),
            CutPoint::AfterSync(k) => write!(f, "after sync {k}"),
        }
    }
}

/// What a power cut forgot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Dirty pages dropped.
    pub pages_lost: u64,
    /// Dirty pages that reached the medium anyway (torn mode).
    pub pages_kept: u64,
    /// Files whose size went back to the last synced one.
    pub sizes_reverted: u64,
    /// Directory entries that differed from the synced ones (created, renamed or removed
    /// since the directory's last fsync).
    pub entries_reverted: u64,
    /// Files and directories no longer reachable from the root.
    pub nodes_lost: u64,
}

/// Requests counted since the disk was armed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// WRITE requests.
    pub writes: u64,
    /// FSYNC and FSYNCDIR requests.
    pub syncs: u64,
}

/// A file or a directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
}

struct FileNode {
    /// What readers see.
    data: Vec<u8>,
    /// What is on the medium, its length the synced size.
    durable: Vec<u8>,
    /// Pages of `data` written since the last fsync.
    dirty: BTreeSet<u64>,
}

struct DirNode {
    entries: BTreeMap<OsString, u64>,
    durable: BTreeMap<OsString, u64>,
}

enum Node {
    File(FileNode),
    Dir(DirNode),
}

/// The whole file system, in memory.
pub struct Disk {
    nodes: HashMap<u64, Node>,
    next_ino: u64,
    profile: Profile,
    cut: Option<CutPoint>,
    counts: Counts,
    frozen: Option<String>,
}

/// What every operation returns: an errno for the kernel on failure.
pub type FsResult<T> = Result<T, Errno>;

impl Disk {
    /// An empty disk: a root directory whose (empty) entries are durable.
    pub fn new(profile: Profile) -> Disk {
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT,
            Node::Dir(DirNode {
                entries: BTreeMap::new(),
                durable: BTreeMap::new(),
            }),
        );
        Disk {
            nodes,
            next_ino: ROOT + 1,
            profile,
            cut: None,
            counts: Counts::default(),
            frozen: None,
        }
    }

    /// The profile this disk follows.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// Sets when the power goes, and starts counting requests from zero.
    pub fn arm(&mut self, cut: Option<CutPoint>) {
        self.cut = cut;
        self.counts = Counts::default();
    }

    /// Requests counted since the disk was armed.
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// Why the disk froze, if it has: from then on every request fails with `EIO`.
    pub fn frozen(&self) -> Option<&str> {
        self.frozen.as_deref()
    }

    /// Freezes the disk now (a cut the harness decides on, not a counted request).
    pub fn freeze(&mut self, why: &str) {
        if self.frozen.is_none() {
            self.frozen = Some(why.to_owned());
        }
    }

    fn check(&self) -> FsResult<()> {
        match self.frozen {
            Some(_) => Err(Errno::EIO),
            None => Ok(()),
        }
    }

    fn dir(&self, ino: u64) -> FsResult<&DirNode> {
        match self.nodes.get(&ino) {
            Some(Node::Dir(dir)) => Ok(dir),
            Some(Node::File(_)) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn dir_mut(&mut self, ino: u64) -> FsResult<&mut DirNode> {
        match self.nodes.get_mut(&ino) {
            Some(Node::Dir(dir)) => Ok(dir),
            Some(Node::File(_)) => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    fn file_mut(&mut self, ino: u64) -> FsResult<&mut FileNode> {
        match self.nodes.get_mut(&ino) {
            Some(Node::File(file)) => Ok(file),
            Some(Node::Dir(_)) => Err(Errno::EISDIR),
            None => Err(Errno::ENOENT),
        }
    }

    /// The kind and size of `ino`.
    pub fn attr(&self, ino: u64) -> FsResult<(Kind, u64)> {
        self.check()?;
        match self.nodes.get(&ino) {
            Some(Node::File(file)) => Ok((Kind::File, file.data.len() as u64)),
            Some(Node::Dir(_)) => Ok((Kind::Dir, PAGE_BYTES)),
            None => Err(Errno::ENOENT),
        }
    }

    /// The inode `name` names in `parent`.
    pub fn lookup(&self, parent: u64, name: &OsStr) -> FsResult<u64> {
        self.check()?;
        self.dir(parent)?
            .entries
            .get(name)
            .copied()
            .ok_or(Errno::ENOENT)
    }

    fn add(&mut self, parent: u64, name: &OsStr, node: Node) -> FsResult<u64> {
        self.check()?;
        let ino = self.next_ino;
        let dir = self.dir_mut(parent)?;
        if dir.entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        dir.entries.insert(name.to_owned(), ino);
        self.next_ino += 1;
        self.nodes.insert(ino, node);
        Ok(ino)
    }

    /// Creates an empty file; its entry is not durable until `parent` is synced.
    pub fn create(&mut self, parent: u64, name: &OsStr) -> FsResult<u64> {
        self.add(
            parent,
            name,
            Node::File(FileNode {
                data: Vec::new(),
                durable: Vec::new(),
                dirty: BTreeSet::new(),
            }),
        )
    }

    /// Creates an empty directory; its entry is not durable until `parent` is synced.
    pub fn mkdir(&mut self, parent: u64, name: &OsStr) -> FsResult<u64> {
        self.add(
            parent,
            name,
            Node::Dir(DirNode {
                entries: BTreeMap::new(),
                durable: BTreeMap::new(),
            }),
        )
    }

    /// Removes a file's entry. The node stays while the kernel may still use it; a power cut
    /// collects it once nothing durable names it.
    pub fn unlink(&mut self, parent: u64, name: &OsStr) -> FsResult<()> {
        let ino = self.lookup(parent, name)?;
        if matches!(self.nodes.get(&ino), Some(Node::Dir(_))) {
            return Err(Errno::EISDIR);
        }
        self.dir_mut(parent)?.entries.remove(name);
        Ok(())
    }

    /// Removes an empty directory's entry.
    pub fn rmdir(&mut self, parent: u64, name: &OsStr) -> FsResult<()> {
        let ino = self.lookup(parent, name)?;
        if !self.dir(ino)?.entries.is_empty() {
            return Err(Errno::ENOTEMPTY);
        }
        self.dir_mut(parent)?.entries.remove(name);
        Ok(())
    }

    /// Moves an entry, replacing a file or an empty directory at the target.
    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
    ) -> FsResult<()> {
        let ino = self.lookup(parent, name)?;
        self.dir(new_parent)?;
        if let Some(&target) = self.dir(new_parent)?.entries.get(new_name) {
            if target == ino {
                return Ok(());
            }
            if let Some(Node::Dir(dir)) = self.nodes.get(&target) {
                if !dir.entries.is_empty() {
                    return Err(Errno::ENOTEMPTY);
                }
            }
        }
        self.dir_mut(parent)?.entries.remove(name);
        self.dir_mut(new_parent)?
            .entries
            .insert(new_name.to_owned(), ino);
        Ok(())
    }

    /// The entries of a directory, for `readdir`.
    pub fn list(&self, ino: u64) -> FsResult<Vec<(OsString, u64, Kind)>> {
        self.check()?;
        let dir = self.dir(ino)?;
        Ok(dir
            .entries
            .iter()
            .map(|(name, &child)| {
                let kind = match self.nodes.get(&child) {
                    Some(Node::Dir(_)) => Kind::Dir,
                    _ => Kind::File,
                };
                (name.clone(), child, kind)
            })
            .collect())
    }

    /// Reads from what the writer sees.
    pub fn read(&mut self, ino: u64, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        self.check()?;
        let file = self.file_mut(ino)?;
        let len = file.data.len() as u64;
        let start = offset.min(len);
        let end = offset.saturating_add(u64::from(size)).min(len);
        Ok(file.data[start as usize..end as usize].to_vec())
    }

    /// Writes into the page cache, dirtying the pages it touches. Counted for the cut.
    pub fn write(&mut self, ino: u64, offset: u64, bytes: &[u8]) -> FsResult<u32> {
        self.check()?;
        let written = u32::try_from(bytes.len()).map_err(|_| Errno::EINVAL)?;
        let end = offset.checked_add(u64::from(written)).ok_or(Errno::EFBIG)?;
        let end_index = usize::try_from(end).map_err(|_| Errno::EFBIG)?;
        let file = self.file_mut(ino)?;
        if file.data.len() < end_index {
            file.data.resize(end_index, 0);
        }
        file.data[end_index - bytes.len()..end_index].copy_from_slice(bytes);
        if written > 0 {
            file.dirty
                .extend(offset / PAGE_BYTES..=(end - 1) / PAGE_BYTES);
        }
        self.counts.writes += 1;
        if self.cut == Some(CutPoint::AfterWrite(self.counts.writes)) {
            self.freeze(&format!("power cut after write {}", self.counts.writes));
        }
        Ok(written)
    }

    /// Changes a file's size (a truncate), dirtying the pages between the old and new ends:
    /// a file shrunk and grown again must not bring back its old synced bytes.
    pub fn set_size(&mut self, ino: u64, size: u64) -> FsResult<()> {
        self.check()?;
        let new_len = usize::try_from(size).map_err(|_| Errno::EFBIG)?;
        let file = self.file_mut(ino)?;
        let old = file.data.len() as u64;
        if old != size {
            let (low, high) = (old.min(size), old.max(size));
            file.dirty.extend(low / PAGE_BYTES..=high / PAGE_BYTES);
        }
        file.data.resize(new_len, 0);
        Ok(())
    }

    /// Allocates space (`fallocate` mode 0): grows the file like a write of zeros.
    pub fn allocate(&mut self, ino: u64, offset: u64, length: u64) -> FsResult<()> {
        self.check()?;
        let end = offset.checked_add(length).ok_or(Errno::EFBIG)?;
        let size = self.file_mut(ino)?.data.len() as u64;
        if end > size {
            self.set_size(ino, end)?;
        }
        Ok(())
    }

    /// FSYNC or FSYNCDIR of `ino`: makes a file's data and size, or a directory's entries,
    /// durable. Counted for the cut.
    pub fn sync(&mut self, ino: u64) -> FsResult<()> {
        self.check()?;
        if !self.nodes.contains_key(&ino) {
            return Err(Errno::ENOENT);
        }
        self.counts.syncs += 1;
        let k = self.counts.syncs;
        if self.cut == Some(CutPoint::BeforeSync(k)) {
            let what = self.path_of(ino);
            self.freeze(&format!("power cut before sync {k} (of {what})"));
            return Err(Errno::EIO);
        }
        match self.nodes.get_mut(&ino) {
            Some(Node::File(file)) => {
                persist(file);
                if self.profile == Profile::Ext4ish {
                    self.persist_entries_of(ino);
                }
            }
            Some(Node::Dir(dir)) => dir.durable = dir.entries.clone(),
            None => {}
        }
        if self.cut == Some(CutPoint::AfterSync(k)) {
            let what = self.path_of(ino);
            self.freeze(&format!("power cut after sync {k} (of {what})"));
        }
        Ok(())
    }

    /// A path naming `ino` in the writer's view, for reports: `/` for the root, `?` when no
    /// entry names it (an unlinked file still open).
    pub fn path_of(&self, ino: u64) -> String {
        let mut parts = Vec::new();
        let mut current = ino;
        while current != ROOT {
            let parent = self.nodes.iter().find_map(|(&dir_ino, node)| match node {
                Node::Dir(dir) => dir
                    .entries
                    .iter()
                    .find(|(_, &child)| child == current)
                    .map(|(name, _)| (dir_ino, name.to_string_lossy().into_owned())),
                Node::File(_) => None,
            });
            match parent {
                Some((dir_ino, name)) if parts.len() < 64 => {
                    parts.push(name);
                    current = dir_ino;
                }
                _ => return "?".to_owned(),
            }
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    /// The ext4-like rule: the entries naming `ino` become durable with it.
    fn persist_entries_of(&mut self, ino: u64) {
        for node in self.nodes.values_mut() {
            if let Node::Dir(dir) = node {
                dir.durable
                    .retain(|name, &mut child| child != ino || dir.entries.get(name) == Some(&ino));
                for (name, &child) in &dir.entries {
                    if child == ino {
                        dir.durable.insert(name.clone(), ino);
                    }
                }
            }
        }
    }

    /// Cuts the power: forgets everything not durable and thaws the disk, which then holds
    /// exactly what the medium kept. `torn` is `(probability, seed)`: each dirty page inside
    /// the synced size then reaches the medium with that probability (a write-back that was
    /// under way), so a file can hold a mix of old and new pages.
    pub fn power_cut(&mut self, torn: Option<(f64, u64)>) -> CutReport {
        let mut report = CutReport::default();
        let mut rng = torn.map(|(p, seed)| (p, ChaCha8Rng::seed_from_u64(seed)));
        let mut inos: Vec<u64> = self.nodes.keys().copied().collect();
        // Seeded choices must not depend on the hash map's order.
        inos.sort_unstable();
        for ino in &inos {
            match self.nodes.get_mut(ino) {
                Some(Node::File(file)) => {
                    if file.durable.len() != file.data.len() {
                        report.sizes_reverted += 1;
                    }
                    for &page in &file.dirty {
                        let kept = match &mut rng {
                            Some((p, rng)) => rng.gen_bool(*p),
                            None => false,
                        };
                        let start = page * PAGE_BYTES;
                        let end = (start + PAGE_BYTES)
                            .min(file.durable.len() as u64)
                            .min(file.data.len() as u64);
                        if kept && start < end {
                            let (start, end) = (start as usize, end as usize);
                            file.durable[start..end].copy_from_slice(&file.data[start..end]);
                            report.pages_kept += 1;
                        } else {
                            report.pages_lost += 1;
                        }
                    }
                    file.dirty.clear();
                    file.data = file.durable.clone();
                }
                Some(Node::Dir(dir)) => {
                    let changed = dir
                        .entries
                        .iter()
                        .filter(|(name, ino)| dir.durable.get(*name) != Some(ino))
                        .count()
                        + dir
                            .durable
                            .keys()
                            .filter(|name| !dir.entries.contains_key(*name))
                            .count();
                    report.entries_reverted += changed as u64;
                    dir.entries = dir.durable.clone();
                }
                None => {}
            }
        }
        let mut reachable = BTreeSet::from([ROOT]);
        let mut queue = vec![ROOT];
        while let Some(ino) = queue.pop() {
            if let Some(Node::Dir(dir)) = self.nodes.get(&ino) {
                for &child in dir.entries.values() {
                    if reachable.insert(child) {
                        queue.push(child);
                    }
                }
            }
        }
        let before = self.nodes.len();
        self.nodes.retain(|ino, _| reachable.contains(ino));
        report.nodes_lost = (before - self.nodes.len()) as u64;
        self.frozen = None;
        self.cut = None;
        self.counts = Counts::default();
        report
    }
}

fn persist(file: &mut FileNode) {
    let len = file.data.len();
    file.durable.resize(len, 0);
    for &page in &file.dirty {
        let start = (page * PAGE_BYTES) as usize;
        if start >= len {
            continue;
        }
        let end = (start + PAGE_BYTES as usize).min(len);
        file.durable[start..end].copy_from_slice(&file.data[start..end]);
    }
    file.dirty.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> &OsStr {
        OsStr::new(s)
    }

    #[test]
    fn unsynced_data_and_entries_are_forgotten() {
        let mut disk = Disk::new(Profile::Strict);
        let a = disk.create(ROOT, name("a")).unwrap();
        disk.write(a, 0, b"hello").unwrap();
        disk.sync(a).unwrap();
        // The file's data is durable, its entry is not.
        disk.power_cut(None);
        assert_eq!(disk.lookup(ROOT, name("a")), Err(Errno::ENOENT));

        let b = disk.create(ROOT, name("b")).unwrap();
        disk.write(b, 0, b"one").unwrap();
        disk.sync(b).unwrap();
        disk.sync(ROOT).unwrap();
        disk.write(b, 3, b" two").unwrap();
        disk.set_size(b, 2).unwrap();
        let report = disk.power_cut(None);
        assert_eq!(report.pages_lost, 1);
        let b = disk.lookup(ROOT, name("b")).unwrap();
        assert_eq!(disk.read(b, 0, 100).unwrap(), b"one");
    }

    #[test]
    fn ext4ish_keeps_the_entry_of_a_synced_file_and_renames_need_the_directory() {
        let mut disk = Disk::new(Profile::Ext4ish);
        let d = disk.mkdir(ROOT, name("d")).unwrap();
        disk.sync(ROOT).unwrap();
        let f = disk.create(d, name("f.tmp")).unwrap();
        disk.write(f, 0, b"x").unwrap();
        disk.sync(f).unwrap();
        disk.rename(d, name("f.tmp"), d, name("f")).unwrap();
        disk.power_cut(None);
        assert!(disk.lookup(d, name("f.tmp")).is_ok());
        assert_eq!(disk.lookup(d, name("f")), Err(Errno::ENOENT));
    }

    #[test]
    fn a_cut_freezes_the_disk_until_the_power_comes_back() {
        let mut disk = Disk::new(Profile::Strict);
        let f = disk.create(ROOT, name("f")).unwrap();
        disk.arm(Some(CutPoint::BeforeSync(2)));
        disk.write(f, 0, b"a").unwrap();
        disk.sync(f).unwrap();
        disk.write(f, 1, b"b").unwrap();
        assert_eq!(disk.sync(f), Err(Errno::EIO));
        assert_eq!(disk.write(f, 2, b"c"), Err(Errno::EIO));
        assert!(disk.frozen().is_some());
        disk.power_cut(None);
        assert!(disk.frozen().is_none());
        // The entry was never synced.
        assert_eq!(disk.lookup(ROOT, name("f")), Err(Errno::ENOENT));
    }

    #[test]
    fn torn_pages_stay_inside_the_synced_size() {
        let mut disk = Disk::new(Profile::Strict);
        let f = disk.create(ROOT, name("f")).unwrap();
        disk.sync(ROOT).unwrap();
        disk.write(f, 0, &[1; 8192]).unwrap();
        disk.sync(f).unwrap();
        disk.write(f, 0, &[2; 16384]).unwrap();
        let report = disk.power_cut(Some((1.0, 7)));
        assert_eq!(report.pages_kept, 2);
        let data = disk.read(f, 0, 20000).unwrap();
        assert_eq!(data, vec![2; 8192]);
    }
}
