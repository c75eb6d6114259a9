//! How database failures become [`StoreError`]s.

use handover_store::StoreError;

/// A database error as the store reports it. The message keeps PostgreSQL's own words (its
/// `SQLSTATE` and detail), which say what to do better than a paraphrase would.
pub(crate) fn engine(error: tokio_postgres::Error) -> StoreError {
    let detail = match error.as_db_error() {
        Some(db) => format!(
            "PostgreSQL: {} ({}){}",
            db.message(),
            db.code().code(),
            db.detail().map(|d| format!(": {d}")).unwrap_or_default()
        ),
        None => format!("PostgreSQL: {error}"),
    };
    StoreError::Engine(detail)
}

/// A pool failure (no connection within the timeout, or the server refused one).
pub(crate) fn pool(error: deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Backend(error) => engine(error),
        other => StoreError::Engine(format!("PostgreSQL connection pool: {other}")),
    }
}
