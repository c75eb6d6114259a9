//! Leases: which process may write each shard's streams, under which epoch.
//!
//! Every process of a cluster runs one lease task. Each round (a third of the lease) it says it
//! is alive, renews the leases it holds, claims expired or free shards up to its fair share
//! (the shards divided by the live processes, rounded up) and gives back what it holds beyond
//! it, all judged by the database's clock (`now()`), never a process's. A claim raises the
//! shard's epoch: the journal's fence compares it in every append's transaction.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use handover_core::placement::SHARDS;
use handover_store::StoreError;
use tokio::sync::watch;
use uuid::Uuid;

use crate::error::engine;
use crate::Connector;

/// The shards a process holds, each with the epoch it was granted.
pub(crate) type Owned = Arc<BTreeMap<u16, i64>>;

pub(crate) struct LeaseTask {
    pub(crate) connector: Connector,
    pub(crate) node: Uuid,
    pub(crate) lease: Duration,
    pub(crate) owned: watch::Sender<Owned>,
}

impl LeaseTask {
    pub(crate) async fn run(self) {
        let mut client = None;
        let mut renewed = Instant::now();
        loop {
            let round = match client.take() {
                Some(c) => Ok(c),
                None => self.session().await,
            };
            match round {
                Ok(c) => match self.round(&c).await {
                    Ok(owned) => {
                        renewed = Instant::now();
                        self.publish(owned);
                        client = Some(c);
                    }
                    Err(error) => tracing::warn!(%error, "a lease round failed"),
                },
                Err(error) => tracing::debug!(%error, "the lease task cannot connect"),
            }
            // Unrenewed for a whole lease: another process may hold them now. The fence would
            // refuse our appends anyway; this says so before trying.
            if renewed.elapsed() >= self.lease && !self.owned.borrow().is_empty() {
                self.publish(BTreeMap::new());
            }
            tokio::time::sleep(self.lease / 3).await;
        }
    }

    /// The lease task's connection. A node paused in the middle of a round holds the rows
    /// it touched; past a lease the server ends its transaction, so the others can take its
    /// shards over. And a round never waits long on a row lock another node's round holds:
    /// it fails and the next round tries again, in time to renew its own leases.
    async fn session(&self) -> Result<tokio_postgres::Client, StoreError> {
        let client = self.connector.connect().await?;
        let lease = self.lease.as_millis().max(4);
        client
            .batch_execute(&format!(
                "SET idle_in_transaction_session_timeout = {lease}; SET lock_timeout = {}",
                lease / 4
            ))
            .await
            .map_err(engine)?;
        Ok(client)
    }

    fn publish(&self, owned: BTreeMap<u16, i64>) {
        self.owned.send_if_modified(|current| {
            if **current == owned {
                false
            } else {
                *current = Arc::new(owned);
                true
            }
        });
    }

    /// One round, in one transaction.
    async fn round(
        &self,
        client: &tokio_postgres::Client,
    ) -> Result<BTreeMap<u16, i64>, StoreError> {
        let lease = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        client.batch_execute("BEGIN").await.map_err(engine)?;
        let result = async {
            client
                .execute(
                    "INSERT INTO handover_nodes (node, heartbeat_at) VALUES ($1, now())
                     ON CONFLICT (node) DO UPDATE SET heartbeat_at = now()",
                    &[&self.node],
                )
                .await?;
            client
                .execute(
                    "DELETE FROM handover_nodes WHERE node IN (
                         SELECT node FROM handover_nodes
                         WHERE heartbeat_at < now() - 3 * $1::bigint * interval '1 millisecond'
                         FOR UPDATE SKIP LOCKED)",
                    &[&lease],
                )
                .await?;
            let live: i64 = client
                .query_one(
                    "SELECT count(*) FROM handover_nodes WHERE heartbeat_at > now() - $1::bigint * interval '1 millisecond'",
                    &[&lease],
                )
                .await?
                .get(0);
            let mut owned: BTreeMap<u16, i64> = client
                .query(
                    "UPDATE handover_leases SET expires_at = now() + $2::bigint * interval '1 millisecond'
                     WHERE owner = $1 RETURNING shard, epoch",
                    &[&self.node, &lease],
                )
                .await?
                .iter()
                .map(|row| (row.get::<_, i32>(0) as u16, row.get::<_, i64>(1)))
                .collect();
            let share = usize::from(SHARDS).div_ceil(live.max(1) as usize);
            if owned.len() < share {
                // Free or expired shards nobody is writing (SKIP LOCKED passes over a lease an
                // append still holds: the next round takes it, after that append).
                let claimed = client
                    .query(
                        "UPDATE handover_leases SET owner = $1, epoch = epoch + 1,
                                expires_at = now() + $2::bigint * interval '1 millisecond'
                         WHERE shard IN (
                             SELECT shard FROM handover_leases
                             WHERE owner IS NULL OR expires_at < now()
                             ORDER BY shard LIMIT $3
                             FOR UPDATE SKIP LOCKED)
                         RETURNING shard, epoch",
                        &[&self.node, &lease, &((share - owned.len()) as i64)],
                    )
                    .await?;
                owned.extend(
                    claimed
                        .iter()
                        .map(|row| (row.get::<_, i32>(0) as u16, row.get::<_, i64>(1))),
                );
            } else if owned.len() > share {
                // Above the fair share (a process joined): give back the highest shards.
                let excess: Vec<i32> = owned
                    .keys()
                    .rev()
                    .take(owned.len() - share)
                    .map(|&shard| i32::from(shard))
                    .collect();
                client
                    .execute(
                        "UPDATE handover_leases SET owner = NULL, expires_at = '-infinity'
                         WHERE owner = $1 AND shard = ANY($2::int[])",
                        &[&self.node, &excess],
                    )
                    .await?;
                for shard in excess {
                    owned.remove(&(shard as u16));
                }
            }
            Ok::<_, tokio_postgres::Error>(owned)
        }
        .await;
        match result {
            Ok(owned) => {
                client.batch_execute("COMMIT").await.map_err(engine)?;
                Ok(owned)
            }
            Err(error) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(engine(error))
            }
        }
    }
}
