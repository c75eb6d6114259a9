//! The journal test kit against [`handover_postgres::PostgresStore`], each property on a
//! throwaway cluster of its own (Debian's `postgresql` package; see `PgCluster`).
//!
//! The same properties as on sled: `cargo test -p handover-testkit --test postgres --
//! --nocapture` prints their figures.

use handover_store::Durability;
use handover_testkit::{journal_kit, PostgresFactory};

journal_kit!(durable => PostgresFactory::new(Durability::Durable));
