//! The PostgreSQL side of the commands that take `--database-url`: connecting, naming the
//! database without its password, and whether it already holds a log.

use anyhow::Context as _;
use handover::EventStore as _;
use handover_postgres::{PostgresOptions, PostgresStore};
use handover_sim::LogPlace;

/// The database as messages name it: `database postgres://user:***@host/db`.
pub(crate) fn name(url: &str) -> String {
    LogPlace::Database(url.to_owned()).to_string()
}

/// Connects to the database at `url`; a failure names it, without its password.
pub(crate) async fn connect(url: &str, options: PostgresOptions) -> anyhow::Result<PostgresStore> {
    PostgresStore::connect(url, options)
        .await
        .with_context(|| format!("cannot connect to the {}", name(url)))
}

/// Whether the database already holds at least one record.
pub(crate) async fn holds_a_log(store: &PostgresStore, url: &str) -> anyhow::Result<bool> {
    let first = store
        .read_all(1, 1)
        .await
        .with_context(|| format!("cannot read the log in the {}", name(url)))?;
    Ok(!first.is_empty())
}
