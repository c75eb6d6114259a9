//! The kit's factory for [`PostgresStore`]: each place is a throwaway cluster of its own, so a
//! property's restart is a real reconnect and nothing leaks between properties.

use std::sync::Arc;

use handover_postgres::{PostgresOptions, PostgresStore};
use handover_store::{Durability, EventStore};

use crate::{PgCluster, StoreFactory};

/// Opens a [`PostgresStore`] on a database of its own per property.
#[derive(Clone, Copy, Debug)]
pub struct PostgresFactory {
    durability: Durability,
}

impl PostgresFactory {
    /// A factory for stores acknowledging appends with `durability`.
    pub fn new(durability: Durability) -> PostgresFactory {
        PostgresFactory { durability }
    }
}

/// Where one property's log lives: a running cluster and the URL of its database.
#[derive(Debug)]
pub struct PostgresPlace {
    /// The cluster; dropping the place stops it and deletes its files.
    pub cluster: PgCluster,
    /// The database the store connects to.
    pub url: String,
}

impl StoreFactory for PostgresFactory {
    type Place = PostgresPlace;

    fn describe(&self) -> String {
        format!("PostgreSQL ({})", self.durability)
    }

    async fn fresh(&self) -> PostgresPlace {
        // Starting a server blocks for a moment: off the runtime's workers.
        tokio::task::spawn_blocking(|| {
            let cluster = PgCluster::start();
            let url = cluster.create_database("journal");
            PostgresPlace { cluster, url }
        })
        .await
        .expect("a throwaway PostgreSQL cluster starts")
    }

    async fn open(&self, place: &PostgresPlace) -> Arc<dyn EventStore> {
        let mut options = PostgresOptions::default();
        options.durability = self.durability;
        match PostgresStore::connect(&place.url, options).await {
            Ok(store) => Arc::new(store),
            Err(e) => panic!("connecting to {} failed: {e}", place.url),
        }
    }
}
