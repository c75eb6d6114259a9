//! The fuzz corpus, replayed in the normal test run: every file under `fuzz/corpus/<target>/`,
//! the seeds built in code, and a batch of seeded random inputs go through the same body the
//! libFuzzer target runs, so each property the fuzzers checked is checked again on every
//! `cargo test`, without cargo-fuzz or a nightly compiler.
//!
//! - `HANDOVER_FUZZ_RANDOM_INPUTS=N` sets how many random inputs each target gets besides the
//!   corpus (defaults below), `HANDOVER_FUZZ_SEED=S` their seed (printed on every run);
//! - `HANDOVER_FUZZ_WRITE_SEEDS=1` also writes the seeds into `fuzz/corpus/<target>/`.

use std::alloc::System;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Mutex;

use handover_fuzzing::{DecodeOutcome, StatsAlloc, INSTRUMENTED_SYSTEM};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The record decoder's allocation check counts every allocation of the process.
#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The tests run one at a time: another test's allocations would count against a decode.
static SERIAL: Mutex<()> = Mutex::new(());

const DEFAULT_SEED: u64 = 0x4a4e_4f56_4552_2d34;

fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => value.parse().ok(),
    }
}

/// Every input of `target`: the corpus files (sorted by name), the seeds, and `random`
/// random inputs of up to `random_len` bytes from `seed`.
fn inputs(target: &str, random: u64, random_len: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let write = std::env::var_os("HANDOVER_FUZZ_WRITE_SEEDS").is_some_and(|v| v == "1");
    if write {
        std::fs::create_dir_all(&dir).expect("the corpus directory");
    }
    let mut inputs: Vec<(String, Vec<u8>)> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|entry| {
                let entry = entry.expect("a corpus entry");
                let name = format!("corpus/{}", entry.file_name().to_string_lossy());
                (name, std::fs::read(entry.path()).expect("a corpus file"))
            })
            .collect(),
        Err(error) => panic!("the corpus {} cannot be read: {error}", dir.display()),
    };
    inputs.sort();
    for (seed_target, name, data) in handover_fuzzing::seeds() {
        if seed_target == target {
            if write {
                std::fs::write(dir.join(format!("seed-{name}")), &data).expect("a seed writes");
            }
            inputs.push((format!("seed/{name}"), data));
        }
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in 0..random {
        let len = rng.gen_range(0..=random_len);
        let mut data = vec![0u8; len];
        rng.fill(&mut data[..]);
        inputs.push((format!("random/{i}"), data));
    }
    inputs
}

/// Runs `body` on every input of `target`, naming each input that panics.
fn replay(target: &str, default_random: u64, random_len: usize, mut body: impl FnMut(&[u8])) {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let seed = env_number("HANDOVER_FUZZ_SEED").unwrap_or(DEFAULT_SEED);
    let random = env_number("HANDOVER_FUZZ_RANDOM_INPUTS").unwrap_or(default_random);
    let inputs = inputs(target, random, random_len, seed);
    let corpus = inputs
        .iter()
        .filter(|(n, _)| n.starts_with("corpus/"))
        .count();
    let seeds = inputs
        .iter()
        .filter(|(n, _)| n.starts_with("seed/"))
        .count();
    let mut failed = Vec::new();
    for (name, data) in &inputs {
        if catch_unwind(AssertUnwindSafe(|| body(data))).is_err() {
            failed.push(name.clone());
        }
    }
    println!(
        "{target}: {} inputs ({corpus} corpus files, {seeds} seeds, {random} random of up to \
         {random_len} bytes from seed {seed:#x}), {} failed",
        inputs.len(),
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{target}: these inputs failed (random ones from HANDOVER_FUZZ_SEED={seed:#x}): {failed:?}"
    );
}

#[test]
fn record_decoder_corpus_keeps_every_property() {
    let (mut decoded, mut long_form, mut rejected) = (0, 0, 0);
    replay(
        "record_decoder",
        4_000,
        512,
        |data| match handover_fuzzing::run_record_decoder(data) {
            DecodeOutcome::Decoded => decoded += 1,
            DecodeOutcome::DecodedLongForm => long_form += 1,
            DecodeOutcome::Rejected => rejected += 1,
        },
    );
    println!(
        "record_decoder: {decoded} decoded and round-tripped, {long_form} decoded with integers \
         in long form, {rejected} rejected as corrupted"
    );
    assert!(
        decoded > 0 && rejected > 0,
        "the inputs reach both outcomes"
    );
}

#[test]
fn command_sequence_corpus_keeps_every_property() {
    let mut totals = handover_fuzzing::SequenceFigures::default();
    replay("command_sequence", 2_000, 256, |data| {
        let figures = handover_fuzzing::run_sequence(data);
        totals.decided += figures.decided;
        totals.accepted += figures.accepted;
        totals.events += figures.events;
    });
    println!(
        "command_sequence: {} commands decided, {} accepted, {} events replayed by the audit",
        totals.decided, totals.accepted, totals.events
    );
    assert!(totals.accepted > 0 && totals.accepted < totals.decided);
}

#[test]
fn audit_input_corpus_keeps_every_property() {
    let (mut runs, mut sound, mut replayed) = (0, 0, 0);
    replay("audit_input", 30, 96, |data| {
        let figures = handover_fuzzing::run_audit_input(data);
        runs += 1;
        sound += u64::from(figures.sound_events.is_some());
        replayed += u64::from(figures.replayed_events.is_some());
    });
    println!("audit_input: {runs} directories, {sound} verified sound, {replayed} replayed");
    assert!(sound > 0 && sound < runs, "the inputs reach both verdicts");
}
