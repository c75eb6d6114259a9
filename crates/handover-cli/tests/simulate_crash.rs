//! `handover simulate --acks`, killed with SIGKILL at seeded moments: every event the
//! acknowledgement file lists is in the log after the crash, and the log verifies.
//!
//! Rounds reuse one data directory and one acknowledgement file (the simulation appends to
//! it): crash, run again on the recovered log, crash again. Each round runs `durable` or
//! `process-crash`, which both survive a crash of the process. Default: 6 rounds; the long
//! run is `HANDOVER_SIM_CRASH_ROUNDS=100 cargo test -p handover-cli --test simulate_crash --
//! --nocapture`, and `HANDOVER_SIM_CRASH_SEED=<seed>` replays a kill schedule.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use handover::{SledOptions, SledStore};
use handover_core::{ConversationId, StreamId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Kill rounds of the default run.
const DEFAULT_ROUNDS: u64 = 6;
/// Longest the test waits for the acknowledgement file to grow before it calls the run stalled.
const STALL: Duration = Duration::from_secs(60);

/// The complete lines of the acknowledgement file: a last line without its newline was still
/// being written and lists nothing.
fn read_acks(path: &Path) -> Vec<(ConversationId, u64)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(end) => &text[..=end],
        None => "",
    };
    complete
        .lines()
        .map(|line| {
            let (id, seq) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("unreadable ack line {line:?}"));
            (
                id.parse()
                    .unwrap_or_else(|_| panic!("bad conversation id in {line:?}")),
                seq.parse()
                    .unwrap_or_else(|_| panic!("bad seq in {line:?}")),
            )
        })
        .collect()
}

fn count_lines(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |bytes| bytes.iter().filter(|&&b| b == b'\n').count())
}

/// Runs `handover simulate` until the acknowledgement file has grown by `after_acks` lines
/// (0: kill during start-up), waits `sleep`, and kills it with SIGKILL.
fn run_and_kill(
    data: &Path,
    acks: &Path,
    stderr: &Path,
    seed: u64,
    durability: &str,
    after_acks: usize,
    sleep: Duration,
) -> Result<(), String> {
    let before = count_lines(acks);
    let mut child = Command::new(env!("CARGO_BIN_EXE_handover"))
        // One in the environment would count as --database-url.
        .env_remove("DATABASE_URL")
        .args([
            "simulate",
            // Rounds reuse the data directory: each after the first adds to the log.
            "--append",
            "--conversations",
            "100000",
            "--concurrency",
            "32",
        ])
        .arg("--data")
        .arg(data)
        .arg("--acks")
        .arg(acks)
        .args(["--seed", &seed.to_string(), "--durability", durability])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(stderr).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("cannot start handover: {e}"))?;
    let mut failure = None;
    let mut grown_at = (before, Instant::now());
    if after_acks > 0 {
        loop {
            let lines = count_lines(acks);
            if lines >= before + after_acks {
                break;
            }
            if lines > grown_at.0 {
                grown_at = (lines, Instant::now());
            }
            if let Ok(Some(status)) = child.try_wait() {
                failure = Some(format!("simulate exited by itself ({status})"));
                break;
            }
            if grown_at.1.elapsed() > STALL {
                failure = Some(format!(
                    "the acknowledgement file did not grow for {STALL:?}: stalled"
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    std::thread::sleep(sleep);
    let _ = child.kill();
    let status = child.wait().map_err(|e| e.to_string())?;
    if failure.is_none() && status.code().is_some() {
        failure = Some(format!("simulate exited by itself ({status})"));
    }
    match failure {
        None => Ok(()),
        Some(failure) => Err(format!(
            "{failure}; its stderr:\n{}",
            std::fs::read_to_string(stderr).unwrap_or_default()
        )),
    }
}

/// Checks every listed event against the log and verifies the directory; returns how many
/// events the log holds.
fn check(data: &Path, acked: &[(ConversationId, u64)]) -> Result<u64, String> {
    let unique: HashSet<_> = acked.iter().collect();
    if unique.len() != acked.len() {
        return Err(format!(
            "the acknowledgement file lists {} events, {} of them more than once",
            acked.len(),
            acked.len() - unique.len()
        ));
    }
    let store = SledStore::open(data, SledOptions::default())
        .map_err(|e| format!("the store does not open after the crash: {e}"))?;
    // Streams are contiguous from seq 1 (the audit below checks it), so an event is present
    // when its seq is at most its stream's length.
    let mut versions: HashMap<ConversationId, u64> = HashMap::new();
    let mut events = 0;
    for record in store.iter_all(1) {
        let record = record.map_err(|e| format!("reading the log: {e}"))?;
        events += 1;
        if let StreamId::Conversation(id) = record.stream {
            versions.insert(id, record.seq);
        }
    }
    drop(store);
    let lost: Vec<String> = acked
        .iter()
        .filter(|(id, seq)| versions.get(id).copied().unwrap_or(0) < *seq)
        .map(|(id, seq)| format!("{id} seq {seq}"))
        .collect();
    if !lost.is_empty() {
        return Err(format!("{} acknowledged events lost: {lost:?}", lost.len()));
    }
    match handover_audit::verify_dir(data) {
        Ok(handover_audit::VerifyReport::Sound {
            events: audited, ..
        }) if audited == events => Ok(events),
        Ok(report) => Err(format!(
            "the audit does not find the {events} events read sound: {report:?}"
        )),
        Err(error) => Err(format!("the audit cannot verify: {error}")),
    }
}

/// `simulate --acks` killed with SIGKILL loses no event it wrote down, round after round on
/// the same directory, and leaves a log that verifies.
#[test]
fn a_killed_simulation_loses_no_acknowledged_event() {
    let rounds: u64 = std::env::var("HANDOVER_SIM_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    let seed: u64 = std::env::var("HANDOVER_SIM_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    println!(
        "simulate crash: seed {seed}, {rounds} rounds (replay: HANDOVER_SIM_CRASH_SEED={seed})"
    );
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut work = tempfile::Builder::new()
        .prefix("handover-sim-crash-")
        .tempdir()
        .expect("a temporary directory");
    let data = work.path().join("data");
    let acks = work.path().join("acks.txt");
    let mut events = 0;
    let mut startup_kills = 0;
    for round in 0..rounds {
        let durability = ["durable", "process-crash"][rng.gen_range(0..2)];
        let (after_acks, sleep) = if round > 0 && rng.gen_range(0..5) == 0 {
            startup_kills += 1;
            (0, Duration::from_millis(rng.gen_range(0..300)))
        } else {
            (
                rng.gen_range(1..=300),
                Duration::from_millis(rng.gen_range(0..=20)),
            )
        };
        let stderr = work.path().join(format!("simulate-{round}.stderr"));
        let outcome = run_and_kill(
            &data,
            &acks,
            &stderr,
            rng.gen(),
            durability,
            after_acks,
            sleep,
        )
        .and_then(|()| check(&data, &read_acks(&acks)));
        match outcome {
            Ok(held) => {
                println!(
                    "round {round}: {durability}, killed after {after_acks} acks + {sleep:?}; \
                     {} acknowledged events listed, {held} events in the log",
                    read_acks(&acks).len()
                );
                events = held;
            }
            Err(error) => {
                // Kept for a post-mortem.
                work.disable_cleanup(true);
                panic!(
                    "round {round} (seed {seed}, {durability}, after {after_acks} acks + {sleep:?}), \
                     directory kept at {}: {error}",
                    work.path().display()
                );
            }
        }
    }
    let acknowledged = read_acks(&acks).len();
    println!(
        "simulate crash: seed {seed}: {rounds} rounds ({startup_kills} killed during start-up), \
         {acknowledged} acknowledged events listed, lost 0, {events} events in the log, audit sound"
    );
}
