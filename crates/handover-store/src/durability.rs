//! [`Durability`]: what an acknowledged append survives, the promise every backend keeps.

/// What an acknowledged append survives. Each backend says how it keeps the promise; for sled,
/// `docs/storage-format.md` gives the details.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Acknowledge after sled's flush and an `fdatasync` of every file it wrote: the append
    /// survives a power loss. Appends waiting at the same time share one sync.
    #[default]
    Durable,
    /// Acknowledge after sled's flush alone. sled writes with `sync_file_range`, so the append
    /// survives a crash of the process, but not a power loss (the drive's cache and the file's
    /// size are not flushed).
    ProcessCrash,
    /// Acknowledge once written to sled's buffers; sled flushes them on its own every
    /// `flush_every_ms`. A crash can lose the last moments. For simulations and tests.
    Buffered,
}

impl Durability {
    /// The name the CLI and reports use: `durable`, `process-crash` or `buffered`.
    pub fn name(self) -> &'static str {
        match self {
            Durability::Durable => "durable",
            Durability::ProcessCrash => "process-crash",
            Durability::Buffered => "buffered",
        }
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
