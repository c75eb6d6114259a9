//! The bodies of Handover's fuzz targets. Each takes any byte string, interprets it, and
//! asserts properties of the code under test; a panic is a finding. The libFuzzer targets in
//! `fuzz/` call these functions, and `tests/corpus.rs` replays the kept corpus
//! (`fuzz/corpus/<target>/`) through the same functions in the normal `cargo test` run.
//!
//! - [`record_decoder`]: the store's record decoder on arbitrary bytes, and on valid records
//!   with mutations;
//! - [`command_sequence`]: conversation commands (queues, assignment, transfers, notes, flags
//!   and clock ticks included) and commands on AI agents and humans, from many identities,
//!   through the pure `decide`/`evolve`, replayed by the audit alongside;
//! - [`audit_input`]: a data directory built from the input (a real log mutated, or key/value
//!   pairs under the store's key layout) through the audit's verify, replay, export and stats.
//!
//! Binaries that want [`record_decoder`] to check how much the decoder allocates install the
//! counting allocator:
//!
//! ```ignore
//! #[global_allocator]
//! static ALLOCATOR: &handover_fuzzing::StatsAlloc<std::alloc::System> =
//!     &handover_fuzzing::INSTRUMENTED_SYSTEM;
//! ```

mod audit;
mod commands;
mod input;
mod records;
mod seeds;
mod values;

pub use audit::{run_audit_input, AuditFigures};
pub use commands::{run_sequence, SequenceFigures};
pub use records::{
    allocation_bound, run_record_decoder, DecodeOutcome, LIST_PREALLOCATION_BYTES,
    NON_MINIMAL_INTEGERS_DECODE,
};
pub use seeds::seeds;
pub use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};

/// The names of the fuzz targets, which are also the corpus directories under `fuzz/corpus/`.
pub const TARGETS: [&str; 3] = ["record_decoder", "command_sequence", "audit_input"];

/// Fuzz body: `handover_store::decode_record` on the input (the first byte chooses raw bytes
/// or a valid record with mutations); see `records.rs` for the properties.
pub fn record_decoder(data: &[u8]) {
    run_record_decoder(data);
}

/// Fuzz body: the input as a sequence of commands through `decide`/`evolve` and the audit's
/// replay; see `commands.rs` for the input format and the properties.
pub fn command_sequence(data: &[u8]) {
    run_sequence(data);
}

/// Fuzz body: a data directory built from the input through the audit; see `audit.rs`.
pub fn audit_input(data: &[u8]) {
    run_audit_input(data);
}

/// Runs the body of the target named `target` (one of [`TARGETS`]) on `data`.
pub fn run_target(target: &str, data: &[u8]) {
    match target {
        "record_decoder" => record_decoder(data),
        "command_sequence" => command_sequence(data),
        "audit_input" => audit_input(data),
        other => panic!("no fuzz target named {other}"),
    }
}
