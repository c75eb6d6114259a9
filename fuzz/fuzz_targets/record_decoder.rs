//! Fuzz target: the store's record decoder on arbitrary bytes and on mutated valid records.
//! The body is `handover_fuzzing::record_decoder`; the counting allocator lets it check how
//! much a decode allocates.

#![no_main]

#[global_allocator]
static ALLOCATOR: &handover_fuzzing::StatsAlloc<std::alloc::System> =
    &handover_fuzzing::INSTRUMENTED_SYSTEM;

libfuzzer_sys::fuzz_target!(|data: &[u8]| handover_fuzzing::record_decoder(data));
