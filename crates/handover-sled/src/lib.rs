//! The sled backend of Handover's event log: [`SledStore`], an
//! [`EventStore`](handover_store::EventStore) on one sled 0.34 tree, opened with
//! [`SledOptions`].
//!
//! One sled tree, `log`, holds every key space, so one `apply_batch` writes a group of appends
//! atomically: records under `s` + stream key + seq, the global index in chunks under `G`,
//! high-water marks under `M`, command ids under `C` (`keys.rs`, and
//! `docs/storage-format.md`). Appends go through the journal (`journal/`), the log's only
//! writer; reads check every record (`checked.rs`); the anchor (`anchor.rs`), a file outside
//! sled, catches a log that sled recovers shorter than what was acknowledged.
//!
//! Module dependencies run one way: `store` → `journal` → `checked` → `tip` → `keys`, with
//! `index`, `anchor` and `engine` below them; no module imports from one above it.

mod anchor;
mod checked;
mod engine;
mod index;
mod journal;
mod keys;
mod options;
mod store;
mod tip;

pub use checked::StoredRecord;
pub use options::SledOptions;
pub use store::SledStore;
