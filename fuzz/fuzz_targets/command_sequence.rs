//! Fuzz target: conversation commands through the pure `decide`/`evolve` and the audit's
//! replay. The body is `handover_fuzzing::command_sequence`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| handover_fuzzing::command_sequence(data));
