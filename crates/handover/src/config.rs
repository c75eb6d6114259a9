//! How to start a [`crate::Handover`]: the runtime's own settings, and, for the embedded sled
//! store, where it lives and how it is opened. The two are separate things:
//! [`crate::Handover::start_with_store`] takes only the runtime's settings, since the store it
//! is given is already open.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use handover_core::rules::{PolicyError, Rules};
use handover_core::{AiAgentId, DefaultPolicy, Policy, Settings};
use handover_store::Durability;

use crate::clock::{Clock, SystemClock};
use crate::escalation::EscalationRule;
use crate::router::{DefaultRouter, Router};
use crate::window::HistoryWindow;
use crate::SledOptions;

/// Why [`Config::policy_file`] could not set a policy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyFileError {
    /// The file could not be read.
    #[error("cannot read policy file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file's text is not a valid policy (the error locates the mistake).
    #[error("policy file {path}: {source}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, and where.
        source: PolicyError,
    },
}

/// What [`crate::Handover::start`] needs: the data directory of the embedded sled store, the
/// store's options, and the runtime's settings.
///
/// ```
/// use handover::{Config, Durability};
/// let config = Config::new("/var/lib/handover").durability(Durability::Durable).workers(4);
/// assert_eq!(config.data_dir.to_str(), Some("/var/lib/handover"));
/// assert_eq!(config.runtime.workers, 4);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// The data directory; created if missing.
    pub data_dir: PathBuf,
    /// How the sled store is opened (durability, cache, free-space reserve, ...).
    pub store: SledOptions,
    /// The runtime's own settings.
    pub runtime: RuntimeSettings,
}

impl Config {
    /// The defaults, with the data directory at `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            data_dir: data_dir.into(),
            store: SledOptions::default(),
            runtime: RuntimeSettings::default(),
        }
    }

    /// Sets what an acknowledged command survives. Default: [`Durability::Durable`] (power
    /// loss).
    pub fn durability(mut self, durability: Durability) -> Config {
        self.store.durability = durability;
        self
    }

    /// Sets the free space the store keeps on the data directory's file system; below it the
    /// store stops rather than let its storage engine run out of space mid-write. Default:
    /// 64 MiB.
    pub fn min_free_bytes(mut self, bytes: u64) -> Config {
        self.store.min_free_bytes = bytes;
        self
    }

    /// Sets the store's options as a whole.
    pub fn store(mut self, options: SledOptions) -> Config {
        self.store = options;
        self
    }

    /// Sets the handoff policy (see [`RuntimeSettings::policy`]).
    pub fn policy(mut self, policy: Arc<dyn Policy>) -> Config {
        self.runtime = self.runtime.policy(policy);
        self
    }

    /// Sets the escalation policy (see [`RuntimeSettings::escalation_policy`]).
    pub fn escalation_policy(mut self, rules: Rules) -> Config {
        self.runtime = self.runtime.escalation_policy(rules);
        self
    }

    /// Reads the escalation policy from a TOML file (the format of
    /// [`PolicySpec::parse`](crate::PolicySpec::parse); `handover policy default` prints the
    /// default one) and sets it, as [`escalation_policy`](Self::escalation_policy) does.
    ///
    /// ```no_run
    /// use handover::Config;
    ///
    /// let config = Config::new("/var/lib/handover").policy_file("/etc/handover/policy.toml")?;
    /// # Ok::<(), handover::PolicyFileError>(())
    /// ```
    pub fn policy_file(self, path: impl AsRef<Path>) -> Result<Config, PolicyFileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyFileError::Read {
            path: path.to_owned(),
            source,
        })?;
        let rules = Rules::parse(&text).map_err(|source| PolicyFileError::Invalid {
            path: path.to_owned(),
            source,
        })?;
        Ok(self.escalation_policy(rules))
    }

    /// Adds one of the embedder's escalation rules (see [`RuntimeSettings::rule`]).
    pub fn rule(mut self, rule: Arc<dyn EscalationRule>) -> Config {
        self.runtime = self.runtime.rule(rule);
        self
    }

    /// Sets how much history `agent_id` reads at a handoff (see
    /// [`RuntimeSettings::history_window`]).
    pub fn history_window(mut self, agent_id: AiAgentId, window: HistoryWindow) -> Config {
        self.runtime = self.runtime.history_window(agent_id, window);
        self
    }

    /// Sets how much history the AI agents without a window of their own read at a handoff
    /// (see [`RuntimeSettings::default_history_window`]).
    pub fn default_history_window(mut self, window: HistoryWindow) -> Config {
        self.runtime = self.runtime.default_history_window(window);
        self
    }

    /// Sets the number of actor threads (see [`RuntimeSettings::workers`]).
    pub fn workers(mut self, workers: usize) -> Config {
        self.runtime = self.runtime.workers(workers);
        self
    }

    /// Sets how long an idle conversation actor lives (see
    /// [`RuntimeSettings::passivate_after`]).
    pub fn passivate_after(mut self, idle: Option<Duration>) -> Config {
        self.runtime = self.runtime.passivate_after(idle);
        self
    }

    /// Sets the most commands in flight (see [`RuntimeSettings::max_in_flight`]).
    pub fn max_in_flight(mut self, commands: usize) -> Config {
        self.runtime = self.runtime.max_in_flight(commands);
        self
    }

    /// Sets the most events queued for one AI agent (see
    /// [`RuntimeSettings::ai_agent_backlog_max`]).
    pub fn ai_agent_backlog_max(mut self, events: usize) -> Config {
        self.runtime = self.runtime.ai_agent_backlog_max(events);
        self
    }

    /// Sets the thresholds, deadlines and notice texts (see [`RuntimeSettings::rules`]).
    pub fn rules(mut self, rules: Settings) -> Config {
        self.runtime = self.runtime.rules(rules);
        self
    }

    /// Sets the router (see [`RuntimeSettings::router`]).
    pub fn router(mut self, router: Arc<dyn Router>) -> Config {
        self.runtime = self.runtime.router(router);
        self
    }

    /// Sets the clock (see [`RuntimeSettings::clock`]); the sled store stamps its records
    /// with it too.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Config {
        self.runtime = self.runtime.clock(clock);
        self
    }
}

/// The runtime's own settings, whatever store it runs on.
///
/// ```
/// use std::time::Duration;
/// use handover::RuntimeSettings;
/// let settings = RuntimeSettings::default().passivate_after(Some(Duration::from_secs(30)));
/// assert_eq!(settings.passivate_after, Some(Duration::from_secs(30)));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct RuntimeSettings {
    /// Classifies customer messages for the handoff policy, and gives the escalation rules
    /// ([`Policy::rules`]) the conversations apply. Default: [`DefaultPolicy`], with the
    /// default rules ([`Rules::default_rules`]).
    pub policy: Arc<dyn Policy>,
    /// The embedder's own escalation rules, in the order they run: after the policy's built-in
    /// rules (see [`EscalationRule`]). Default: none, and then nothing is evaluated.
    pub escalation_rules: Vec<Arc<dyn EscalationRule>>,
    /// How much history an AI agent reads at a handoff, unless
    /// [`history_windows`](Self::history_windows) names it. Default:
    /// [`HistoryWindow::Everything`].
    pub default_history_window: HistoryWindow,
    /// How much history each named AI agent reads at a handoff.
    pub history_windows: HashMap<AiAgentId, HistoryWindow>,
    /// Threads that run conversation and AI-agent actors, and threads that run the AI agents'
    /// code. Default: one per core.
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
    /// The operator's settings the rules apply: waiting thresholds per team (default 60 s to
    /// the warning, 5 min to the breach), the AI reply deadline (default 30 s), idle closing
    /// (off), and the texts of customer notices.
    pub rules: Settings,
    /// Who receives a conversation that waits for a human. Default: [`DefaultRouter`];
    /// [`crate::NoRouter`] turns routing off.
    pub router: Arc<dyn Router>,
    /// Where the runtime's time comes from. Default: [`SystemClock`]; a [`crate::ManualClock`]
    /// runs simulated time.
    pub clock: Arc<dyn Clock>,
    /// How long an AI agent's call may run on after its assignment ended (a reclaim, an
    /// escalation, a deadline, a close) before the runtime drops it. Default: 2 seconds.
    pub ai_cancel_grace: Duration,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            policy: Arc::new(DefaultPolicy::default()),
            escalation_rules: Vec::new(),
            default_history_window: HistoryWindow::default(),
            history_windows: HashMap::new(),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            passivate_after: Some(Duration::from_secs(120)),
            max_in_flight: 100_000,
            ai_agent_backlog_max: 10_000,
            rules: Settings::default(),
            router: Arc::new(DefaultRouter),
            clock: Arc::new(SystemClock),
            ai_cancel_grace: Duration::from_secs(2),
        }
    }
}

impl std::fmt::Debug for RuntimeSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeSettings")
            .field("workers", &self.workers)
            .field("passivate_after", &self.passivate_after)
            .field("max_in_flight", &self.max_in_flight)
            .field("ai_agent_backlog_max", &self.ai_agent_backlog_max)
            .field("escalation_rules", &self.escalation_rules.len())
            .field("default_history_window", &self.default_history_window)
            .field("history_windows", &self.history_windows)
            .finish_non_exhaustive()
    }
}

impl RuntimeSettings {
    /// Sets the handoff policy.
    pub fn policy(mut self, policy: Arc<dyn Policy>) -> RuntimeSettings {
        self.policy = policy;
        self
    }

    /// Sets the escalation policy: the named rules, read from TOML ([`Rules::parse`]), that
    /// the conversations apply at a handoff, on a customer's message, on an AI's "could not
    /// answer" and before a skill, each decision recorded with the rule's name and the
    /// policy's version. Concerns are recognised by the built-in lexicon. Replaces
    /// [`policy`](Self::policy).
    ///
    /// ```
    /// use handover::{RuntimeSettings, Rules};
    ///
    /// let rules = Rules::parse(
    ///     r#"
    ///     name = "no-person-on-request"
    ///     [[rule]]
    ///     name = "ai-keeps-missing"
    ///     kind = "ai_could_not_answer"
    ///     in_a_row = 3
    ///     "#,
    /// )?;
    /// let settings = RuntimeSettings::default().escalation_policy(rules);
    /// assert_eq!(settings.policy.rules().name(), "no-person-on-request");
    /// # Ok::<(), handover::PolicyError>(())
    /// ```
    pub fn escalation_policy(self, rules: Rules) -> RuntimeSettings {
        self.policy(Arc::new(rules))
    }

    /// Adds one of the embedder's own escalation rules; they run in the order added, after
    /// the policy's built-in rules (see [`EscalationRule`]).
    pub fn rule(mut self, rule: Arc<dyn EscalationRule>) -> RuntimeSettings {
        self.escalation_rules.push(rule);
        self
    }

    /// Sets how much history `agent_id` reads at a handoff (see [`HistoryWindow`]).
    pub fn history_window(mut self, agent_id: AiAgentId, window: HistoryWindow) -> RuntimeSettings {
        self.history_windows.insert(agent_id, window);
        self
    }

    /// Sets how much history the AI agents without a window of their own read at a handoff.
    pub fn default_history_window(mut self, window: HistoryWindow) -> RuntimeSettings {
        self.default_history_window = window;
        self
    }

    /// How much history `agent_id` reads at a handoff.
    pub fn history_window_of(&self, agent_id: &AiAgentId) -> HistoryWindow {
        self.history_windows
            .get(agent_id)
            .copied()
            .unwrap_or(self.default_history_window)
    }

    /// Sets the number of actor threads (at least one).
    pub fn workers(mut self, workers: usize) -> RuntimeSettings {
        self.workers = workers.max(1);
        self
    }

    /// Sets how long an idle conversation actor lives (`None`: forever).
    pub fn passivate_after(mut self, idle: Option<Duration>) -> RuntimeSettings {
        self.passivate_after = idle;
        self
    }

    /// Sets the most commands in flight at once (at least one).
    pub fn max_in_flight(mut self, commands: usize) -> RuntimeSettings {
        self.max_in_flight = commands.max(1);
        self
    }

    /// Sets the most events queued for one AI agent (at least one).
    pub fn ai_agent_backlog_max(mut self, events: usize) -> RuntimeSettings {
        self.ai_agent_backlog_max = events.max(1);
        self
    }

    /// Sets the thresholds, deadlines and notice texts the rules apply.
    pub fn rules(mut self, rules: Settings) -> RuntimeSettings {
        self.rules = rules;
        self
    }

    /// Sets the router ([`crate::NoRouter`] turns routing off).
    pub fn router(mut self, router: Arc<dyn Router>) -> RuntimeSettings {
        self.router = router;
        self
    }

    /// Sets the clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> RuntimeSettings {
        self.clock = clock;
        self
    }

    /// Sets how long an AI agent's call may run on after its assignment ended.
    pub fn ai_cancel_grace(mut self, grace: Duration) -> RuntimeSettings {
        self.ai_cancel_grace = grace;
        self
    }
}
