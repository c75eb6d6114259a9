//! How to start a [`crate::Handover`] runtime.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use handover_core::{DefaultPolicy, Policy};
use handover_store::Durability;

/// Settings for [`crate::Handover::start`].
///
/// ```
/// use handover::{Config, Durability};
/// let config = Config::new("/var/lib/handover").durability(Durability::Durable);
/// assert_eq!(config.data_dir.to_str(), Some("/var/lib/handover"));
/// ```
#[derive(Clone)]
pub struct Config {
    /// The data directory; created if missing.
    pub data_dir: PathBuf,
    /// What an acknowledged command survives. Default: [`Durability::Durable`] (power loss).
    pub durability: Durability,
    /// Classifies customer messages for the handoff policy. Default: [`DefaultPolicy`].
    pub policy: Arc<dyn Policy>,
    /// Threads that run conversation and AI-agent actors. Default: one per core.
    pub workers: usize,
    /// How long a conversation actor may stay idle (no command, no watcher) before it stops;
    /// the next command or watcher rebuilds it from its stream. `None` keeps every actor.
    /// Default: 2 minutes.
    pub passivate_after: Option<Duration>,
    /// Most commands in flight at once across the runtime; beyond it a command fails at once
    /// with [`crate::Error::Overloaded`]. Default: 100,000.
    pub max_in_flight: usize,
    /// Most events queued for one AI agent that it has not started on; beyond it a customer
    /// message to a conversation it holds fails with [`crate::Error::Overloaded`] (nothing is
    /// recorded) instead of piling up. Default: 10,000.
    pub ai_agent_backlog_max: usize,
    /// Free bytes the store keeps on the data directory's file system; below it the store
    /// stops rather than let its storage engine run out of space mid-write (see
    /// `handover_sled::SledOptions::min_free_bytes`). Default: 64 MiB.
    pub min_free_bytes: u64,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("durability", &self.durability)
            .field("workers", &self.workers)
            .field("passivate_after", &self.passivate_after)
            .field("max_in_flight", &self.max_in_flight)
            .field("ai_agent_backlog_max", &self.ai_agent_backlog_max)
            .field("min_free_bytes", &self.min_free_bytes)
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
            passivate_after: Some(Duration::from_secs(120)),
            max_in_flight: 100_000,
            ai_agent_backlog_max: 10_000,
            min_free_bytes: 64 * 1024 * 1024,
        }
    }

    /// Sets the free space the store keeps.
    pub fn min_free_bytes(mut self, bytes: u64) -> Config {
        self.min_free_bytes = bytes;
        self
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

    /// Sets how long an idle conversation actor lives (`None`: forever).
    pub fn passivate_after(mut self, idle: Option<Duration>) -> Config {
        self.passivate_after = idle;
        self
    }

    /// Sets the most commands in flight at once (at least one).
    pub fn max_in_flight(mut self, commands: usize) -> Config {
        self.max_in_flight = commands.max(1);
        self
    }

    /// Sets the most events queued for one AI agent (at least one).
    pub fn ai_agent_backlog_max(mut self, events: usize) -> Config {
        self.ai_agent_backlog_max = events.max(1);
        self
    }
}
