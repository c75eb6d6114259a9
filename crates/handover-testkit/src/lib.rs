//! The journal test kit: one suite of properties that every [`EventStore`] backend must pass.
//!
//! A backend describes how to get an empty place for a log and how to open a store on it
//! ([`StoreFactory`]); the kit does the rest. Each property is one `pub async fn` taking the
//! factory, and [`journal_kit!`] expands to one `#[test]` per property, so a backend's test
//! file is a few lines:
//!
//! ```no_run
//! use handover_store::Durability;
//! use handover_testkit::{journal_kit, SledFactory};
//!
//! journal_kit!(durable => SledFactory::new(Durability::Durable));
//! journal_kit!(buffered => SledFactory::new(Durability::Buffered));
//! # fn main() {}
//! ```
//!
//! The properties:
//! - the replay contract ([`replay`]): stream ranges, the global order without gaps, versions
//!   and the head that never decrease, atomic and contiguous multi-event appends, AI-agent and
//!   human streams read apart from the rest, and a log that survives a restart unchanged and
//!   continues after it;
//! - optimistic concurrency ([`concurrency`]): expected versions, and exactly one winner per
//!   round among racing appenders;
//! - idempotent retries ([`idempotence`]): [`EventStore::append_once`] records a command once,
//!   retried in a row, concurrently, after a restart, or with a stale expected version;
//! - fencing through the real runtime ([`fencing`]): an AI reply under an ended assignment is
//!   rejected and records nothing, across re-handoffs, passivation and restarts;
//! - live subscriptions ([`subscribe`]): each appended event once, in position order.
//!
//! Each property prints what it checked (counts, rounds, seeds) on standard output, so
//! `cargo test -p handover-testkit -- --nocapture` shows the figures. Randomised properties are
//! seeded: `HANDOVER_KIT_SEED` picks the seed (printed by every run), and
//! `HANDOVER_KIT_RACE_ROUNDS` the rounds of the racing-appenders property (1,000 by default),
//! `HANDOVER_KIT_ONCE_ROUNDS` those of the concurrent-retries property (100 by default).
//!
//! For a backend on a database server, [`PgCluster`] starts a real, throwaway PostgreSQL
//! cluster per test, which a test can crash and start again ([`postgres`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use handover_store::EventStore;

pub mod concurrency;
pub mod fencing;
mod forwarding;
pub mod idempotence;
pub mod postgres;
mod postgres_store;
pub mod replay;
mod sled;
mod staff;
pub mod subscribe;
mod values;

pub use forwarding::{AppendOutcome, ForwardingStore, StoreHooks};
pub use postgres::PgCluster;
pub use postgres_store::{PostgresFactory, PostgresPlace};
pub use sled::SledFactory;
pub use staff::{agents, register, staff};

/// The backend under test: where a log lives, and how to open a store on it.
///
/// Opening the same place again is a restart: the kit drops every handle of the previous
/// store (and waits for the tasks that held one) before it calls [`StoreFactory::open`] again.
pub trait StoreFactory: Send + Sync {
    /// Where one log lives: a directory for sled, a database for a server backend. Dropping it
    /// may delete the log.
    type Place: Send + Sync;

    /// A short name for the figures the properties print, e.g. `sled (durable)`.
    fn describe(&self) -> String;

    /// A new, empty place.
    fn fresh(&self) -> impl Future<Output = Self::Place> + Send;

    /// Opens the store on `place`, holding whatever an earlier store there acknowledged.
    /// Panics if the store cannot be opened: the property fails there.
    fn open(&self, place: &Self::Place) -> impl Future<Output = Arc<dyn EventStore>> + Send;
}

/// How long one property may run before it is reported as hung. A guard that turns a hang into
/// a failure, not a measure of speed: every property finishes far sooner.
pub const HANG_GUARD: Duration = Duration::from_secs(600);

/// Runs one property on a fresh multi-threaded tokio runtime (four workers, I/O and timers
/// enabled), failing it if it hangs for longer than [`HANG_GUARD`]. The `#[test]`s that
/// [`journal_kit!`] writes call this.
pub fn run<T>(property: impl Future<Output = T>) -> T {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    runtime.block_on(async {
        match tokio::time::timeout(HANG_GUARD, property).await {
            Ok(value) => value,
            Err(_) => panic!("the property did not finish within {HANG_GUARD:?}: it hangs"),
        }
    })
}

/// Expands to one `#[test]` per property of the kit, each running against the factory the
/// expression builds (it is evaluated once per test).
///
/// `journal_kit!(factory)` writes the tests where it stands; `journal_kit!(name => factory)`
/// writes them in a module `name`, so one file can instantiate the kit several times.
#[macro_export]
macro_rules! journal_kit {
    // First: the other arms would try to read `@properties ...` as an expression.
    (@properties $factory:expr; $($module:ident :: $property:ident),* $(,)?) => {
        $(
            #[test]
            fn $property() {
                let factory = $factory;
                $crate::run($crate::$module::$property(&factory));
            }
        )*
    };
    ($module:ident => $factory:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::journal_kit!($factory);
        }
    };
    ($factory:expr) => {
        $crate::journal_kit!(@properties $factory;
            replay::read_stream_ranges,
            replay::reads_at_the_end_of_the_number_space_are_empty,
            replay::read_all_follows_positions_without_gaps,
            replay::unknown_streams_are_empty,
            replay::head_and_versions_never_decrease,
            replay::multi_event_appends_are_atomic_and_contiguous,
            replay::ai_agent_streams_read_apart,
            replay::human_streams_read_apart,
            replay::everything_survives_a_restart,
            concurrency::expected_versions_are_checked,
            concurrency::racing_appenders_have_one_winner_per_round,
            idempotence::append_once_records_a_sequential_retry_once,
            idempotence::append_once_records_concurrent_retries_once,
            idempotence::append_once_remembers_across_a_restart,
            idempotence::append_once_ignores_a_stale_expected_version_on_retry,
            idempotence::append_once_with_a_new_command_is_a_new_append,
            idempotence::append_once_conflict_records_nothing,
            fencing::an_earlier_epoch_is_rejected_and_records_nothing,
            fencing::the_same_agent_handed_the_conversation_again_is_fenced,
            fencing::a_stale_reply_after_passivation_is_rejected,
            fencing::a_stale_reply_after_a_restart_is_rejected,
            subscribe::each_appended_event_once_in_position_order,
        );
    };
}
