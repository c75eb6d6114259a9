//! The journal test kit against [`handover_sled::SledStore`], once per durability that
//! acknowledges differently: `Durable` (a sync per group) and `Buffered` (no sync).
//!
//! `cargo test -p handover-testkit -- --nocapture` prints each property's figures;
//! `HANDOVER_KIT_RACE_ROUNDS` and `HANDOVER_KIT_SEED` make the racing and randomised properties
//! longer or different.

use handover_store::Durability;
use handover_testkit::{journal_kit, SledFactory};

journal_kit!(durable => SledFactory::new(Durability::Durable));
journal_kit!(buffered => SledFactory::new(Durability::Buffered));
