//! The tables, created and migrated by the store itself.
//!
//! Each migration runs in one transaction under a transaction-scoped advisory lock, so nodes
//! that start together apply it once and the others wait, then find it applied. A
//! transaction-scoped lock is released at commit or rollback, whatever happens to the
//! session: a node that dies while migrating leaves nothing half-applied and nothing locked.

use handover_core::placement::{opening_tenant, shard_of, SHARDS};
use handover_core::TenantId;
use handover_store::decode_record;
use tokio_postgres::{Client, Transaction};

use crate::error::engine;
use handover_store::StoreError;

/// The key of the advisory lock that serializes migrations: "handover" in ASCII.
const MIGRATION_LOCK: i64 = 0x68616e646f766572;

/// The schema versions this library knows, in order. A version is never edited once
/// released: a change is a new version.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        r#"
    -- One row per event. `position` is the global order, dense from 1: it is handed out under
    -- the head row's lock and committed with it, so a position becomes visible only after every
    -- position below it (see `journal.rs`).
    CREATE TABLE handover_events (
        position    bigint   PRIMARY KEY,
        stream_kind smallint NOT NULL,
        -- Ids compare byte by byte, as sled orders its keys, and cheaper than a locale's rules.
        stream_id   text     COLLATE "C" NOT NULL,
        seq         bigint   NOT NULL,
        recorded_at bigint   NOT NULL,
        record      bytea    NOT NULL,
        -- Per-stream optimistic concurrency, enforced by the database.
        CONSTRAINT handover_events_stream_seq UNIQUE (stream_kind, stream_id, seq)
    );
    -- The last position handed out, the last time stamped, and which store wrote last: every
    -- writer locks this one row, which orders commits and keeps recorded times non-decreasing
    -- across processes; a store that finds itself the last writer knows its cached stream
    -- tails are current.
    CREATE TABLE handover_head (
        one         boolean PRIMARY KEY DEFAULT true CHECK (one),
        position    bigint  NOT NULL,
        recorded_at bigint  NOT NULL,
        writer      uuid
    );
    INSERT INTO handover_head (one, position, recorded_at) VALUES (true, 0, 0);
    -- Commands recorded by append_once: a retry is answered with the events recorded then.
    CREATE TABLE handover_commands (
        stream_kind smallint NOT NULL,
        stream_id   text     COLLATE "C" NOT NULL,
        command_id  uuid     NOT NULL,
        first_seq   bigint   NOT NULL,
        count       integer  NOT NULL,
        PRIMARY KEY (stream_kind, stream_id, command_id)
    );
    "#,
    ),
    (
        2,
        r#"
    -- Where each stream belongs when several processes share the log: its tenant's shard,
    -- named by the event that opened it (see handover_core::placement).
    CREATE TABLE handover_streams (
        stream_kind smallint NOT NULL,
        stream_id   text     COLLATE "C" NOT NULL,
        shard       integer  NOT NULL,
        PRIMARY KEY (stream_kind, stream_id)
    );
    -- One row per shard: who may write its streams, under which epoch (the fencing token),
    -- until when by the database's clock.
    CREATE TABLE handover_leases (
        shard      integer     PRIMARY KEY,
        owner      uuid,
        epoch      bigint      NOT NULL DEFAULT 0,
        expires_at timestamptz NOT NULL DEFAULT '-infinity'
    );
    -- The processes taking part, and when each last said so.
    CREATE TABLE handover_nodes (
        node         uuid        PRIMARY KEY,
        heartbeat_at timestamptz NOT NULL
    );
    "#,
    ),
    (
        3,
        r#"
    -- Calls forwarded to the process that holds a shard's lease (see calls.rs): the caller
    -- inserts one and waits for its answer; the shard's owner takes it, runs it, answers it.
    CREATE TABLE handover_calls (
        id          uuid        PRIMARY KEY,
        shard       integer     NOT NULL,
        call        bytea       NOT NULL,
        created_at  timestamptz NOT NULL DEFAULT now(),
        -- The process running it. One that is not the shard's lease holder (it died or lost
        -- the shard) does not keep it: the holder takes it again.
        taken_by    uuid,
        answer      bytea,
        answered_at timestamptz
    );
    -- What the owners look for: the unanswered calls of their shards.
    CREATE INDEX handover_calls_unanswered ON handover_calls (shard) WHERE answer IS NULL;
    "#,
    ),
];

/// The newest schema version this library writes.
pub(crate) const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Brings the database's schema to [`SCHEMA_VERSION`], applying what is missing; refuses a
/// database migrated by a newer library.
pub(crate) async fn migrate(client: &mut Client) -> Result<i32, StoreError> {
    let tx = client.transaction().await.map_err(engine)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(engine)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS handover_schema (
            version    integer     PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(engine)?;
    let current: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM handover_schema", &[])
        .await
        .map_err(engine)?
        .get(0);
    if current > SCHEMA_VERSION {
        return Err(StoreError::Engine(format!(
            "the database holds Handover schema version {current}, newer than this library's \
             {SCHEMA_VERSION}: upgrade the library before connecting it"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).await.map_err(engine)?;
        if *version == 2 {
            place_existing_streams(&tx).await?;
        }
        tx.execute(
            "INSERT INTO handover_schema (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(engine)?;
        tracing::info!(version, "applied Handover schema migration");
    }
    tx.commit().await.map_err(engine)?;
    Ok(SCHEMA_VERSION)
}

/// Fills the lease table and places the streams already in the log by their first event.
async fn place_existing_streams(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO handover_leases (shard) SELECT generate_series(0, $1::int - 1)",
        &[&i32::from(SHARDS)],
    )
    .await
    .map_err(engine)?;
    let firsts = tx
        .query(
            "SELECT stream_kind, stream_id, record FROM handover_events WHERE seq = 1",
            &[],
        )
        .await
        .map_err(engine)?;
    let mut kinds = Vec::with_capacity(firsts.len());
    let mut ids = Vec::with_capacity(firsts.len());
    let mut shards = Vec::with_capacity(firsts.len());
    for row in &firsts {
        let record = decode_record(row.get(2))?;
        let tenant = opening_tenant(&record.event).unwrap_or_else(TenantId::default_tenant);
        kinds.push(row.get::<_, i16>(0));
        ids.push(row.get::<_, &str>(1));
        shards.push(i32::from(shard_of(&tenant)));
    }
    tx.execute(
        "INSERT INTO handover_streams (stream_kind, stream_id, shard)
         SELECT * FROM unnest($1::smallint[], $2::text[], $3::int[])",
        &[&kinds, &ids, &shards],
    )
    .await
    .map_err(engine)?;
    Ok(())
}
