//! How to start a [`crate::Handover`] runtime.

use std::path::PathBuf;
use std::sync::Arc;

use handover_core::{DefaultPolicy, Policy};
use handover_store::Durability;

/// Settings for [`crate::Handover::start`].
///
/// ```
/// use handover::{Config, Durability};
/// let config = Config::new("/var/lib/handover").durability(Durability::Flush);
/// assert_eq!(config.data_dir.to_str(), Some("/var/lib/handover"));
/// ```
#[derive(Clone)]
pub struct Config {
    /// The data directory; created if missing.
    pub data_dir: PathBuf,
    /// What an acknowledged command survives. Default: flushed before the reply.
    pub durability: Durability,
    /// Classifies customer messages for the handoff policy. Default: [`DefaultPolicy`].
    pub policy: Arc<dyn Policy>,
    /// Threads that run conversation and AI-agent actors. Default: one per core.
    pub workers: usize,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("durability", &self.durability)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl Config {
    /// The defaults, with the data directory at `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: data_dir.into(),
            durability: Durability::default(),
            policy: Arc::new(DefaultPolicy::default()),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }

    /// Sets the durability.
    pub fn durability(mut self, durability: Durability) -> Config {
        self.durability = durability;
        self
    }

    /// Sets the handoff policy.
    pub fn policy(mut self, policy: Arc<dyn Policy>) -> Config {
        self.policy = policy;
        self
    }

    /// Sets the number of actor threads (at least one).
    pub fn workers(mut self, workers: usize) -> Config {
        self.workers = workers.max(1);
        self
    }
}
