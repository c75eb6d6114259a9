//! Fuzz target: a data directory built from the input, through the audit's verify, replay,
//! export and stats. The body is `handover_fuzzing::audit_input`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| handover_fuzzing::audit_input(data));
