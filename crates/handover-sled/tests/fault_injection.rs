//! Injected I/O failures: a child process (this executable again, under libfiu's `fiu-run`)
//! appends to a `Durable` store while its writes, or its syncs, fail at random with `EIO`.
//!
//! By the store's contract, the append that meets a failure gets the I/O error and the store
//! stops: every later append, read and flush is refused with `StoreError::Failed`. So after
//! its first failure the child tries a few more appends and reads (each must be refused),
//! closes its store and exits by itself (exit status 0, no panic reaching the caller, no
//! hang); the parent then restarts it: a new process under `fiu-run`, faults enabled again,
//! continuing with the next attempt numbers, until the attempts are used up or the restart
//! limit is reached. Every restart must find every event acknowledged or published before it
//! where it was acknowledged, and a log that is a clean prefix of what was tried: no damage,
//! no gap, each append whole or absent, no refused append, and only appends of unknown
//! outcome besides the acknowledged ones. A last clean reopen, without faults, checks the
//! same and appends again.
//!
//! Needs Debian's `fiu-utils` (`apt-get install -y fiu-utils`; `.ci/run` installs it); without
//! it the tests fail and say so. The faults are switched on with `fiu-ctrl` once the child's
//! store is open, so that opening and the test harness's own output are not hit first; libfiu
//! draws them from `FIU_PRNG_SEED`, which the test sets for each process (the round's seed
//! plus a million per restart) and prints (thread timing still varies which call meets which
//! draw).
//!
//! `cargo test -p handover-store --test fault_injection -- --nocapture` prints the figures
//! (one round of 400 appends, at most 60 restarts, per test);
//! `HANDOVER_FIU_ROUNDS=20 HANDOVER_FIU_ATTEMPTS=2000 HANDOVER_FIU_RESTARTS=400` runs longer
//! (`HANDOVER_FIU_SEED` sets the first seed, `HANDOVER_FIU_POINTS=a,b` the failure points,
//! `HANDOVER_FIU_KEEP=1` keeps the data directories).

mod io_child;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use io_child::{
    check_verify, child_command, report_socket, run_with_restarts, ChildPlan, ChildRun, Mode,
    Restarted, Sizes, Verdict,
};

/// The test the children run.
const CHILD_ENTRY: &str = "child_process_entry";

/// `EIO`, the errno every injected fault returns.
const EIO: i32 = 5;

/// Appends each child tries on its stopped store after the first failure.
const AFTER_FAILURE: u64 = 2;

/// libfiu's failure points for writes (sled's log uses `pwrite`, its blobs, snapshots and
/// configuration `write`).
const WRITE_POINTS: &[&str] = &[
    "posix/io/rw/pwrite",
    "posix/io/rw/pwritev",
    "posix/io/rw/write",
];

/// libfiu's failure points for syncs (the store's `fdatasync`, sled's `sync_file_range` after
/// each log write and its `fsync`s).
const SYNC_POINTS: &[&str] = &[
    "posix/io/sync/fdatasync",
    "posix/io/sync/fsync",
    "linux/io/sync_file_range",
];

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The path of a libfiu tool, or a failure that says how to install it.
fn fiu_tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "{name} not found: these tests inject I/O failures with libfiu. Install Debian's \
             fiu-utils (apt-get install -y --no-install-recommends fiu-utils), as .ci/run does."
        )
    })
}

/// What the faults are and how many processes a round may use.
struct Faults<'a> {
    points: &'a [&'a str],
    probability: f64,
    attempts: u64,
    processes: u64,
}

/// What one round found.
struct Round {
    restarted: Restarted,
    verdict: Verdict,
}

/// The seed libfiu draws from in process `n` of the round with `seed`.
fn process_seed(seed: u64, n: u64) -> u64 {
    seed + n * 1_000_000
}

/// Runs one child under `fiu-run`, enabling the faults once its store is open.
fn child_under_faults(
    faults: &Faults<'_>,
    plan: &ChildPlan,
    ctrl: &Path,
    socket: &std::os::unix::net::UnixDatagram,
    fiu_seed: u64,
) -> ChildRun {
    let fiu_run = fiu_tool("fiu-run").to_string_lossy().into_owned();
    let fiu_ctrl = fiu_tool("fiu-ctrl");
    let ctrl_arg = ctrl.to_string_lossy().into_owned();
    let mut command = child_command(Some(&[&fiu_run, "-x", "-f", &ctrl_arg]), CHILD_ENTRY, plan);
    command.env("FIU_PRNG_SEED", fiu_seed.to_string());
    let socket = socket.try_clone().expect("the report socket");
    io_child::run(command, Some(socket), |pid| {
        let mut ctl = Command::new(&fiu_ctrl);
        ctl.arg("-f").arg(ctrl);
        for point in faults.points {
            ctl.arg("-c").arg(format!(
                "enable_random name={point},probability={},failinfo={EIO}",
                faults.probability
            ));
        }
        let status = ctl.arg(pid.to_string()).status().expect("fiu-ctrl runs");
        assert!(status.success(), "fiu-ctrl could not enable the faults");
    })
}

/// One round: children append under faults, restarting after each failure, then a clean
/// child reopens and checks.
fn round(faults: &Faults<'_>, seed: u64) -> Round {
    let base = tempfile::tempdir().unwrap();
    let data = base.path().join("data");
    let base_path = base.path().to_path_buf();
    let _base = if std::env::var_os("HANDOVER_FIU_KEEP").is_some() {
        println!(
            "seed {seed}: the data directory is kept at {}",
            data.display()
        );
        let _ = base.keep();
        None
    } else {
        Some(base)
    };
    let ctrl = base_path.join("fiu-ctrl");
    let (socket, socket_path) = report_socket(&base_path);
    let plan = ChildPlan {
        dir: data.clone(),
        mode: Mode::Append,
        first_attempt: 0,
        attempts: faults.attempts,
        after_failure: AFTER_FAILURE,
        sizes: Sizes::Small,
        wait_for_go: true,
        report_socket: Some(socket_path),
    };
    println!(
        "seed {seed}: process n runs with FIU_PRNG_SEED={seed} + n * 1000000 (process 1: {})",
        process_seed(seed, 1)
    );
    let restarted = run_with_restarts(
        &format!("seed {seed}"),
        &plan,
        faults.processes,
        |plan, n| child_under_faults(faults, plan, &ctrl, &socket, process_seed(seed, n)),
    );
    if !restarted.problems.is_empty() {
        let stderr = restarted
            .runs
            .last()
            .map(|run| run.stderr.as_str())
            .unwrap_or("");
        panic!(
            "seed {seed}: the store broke its contract under injected faults:\n{}\n\
             the last process's standard error:\n{stderr}",
            restarted.problems.join("\n")
        );
    }

    // A clean reopen, without faults: read everything back, then append a few more.
    let verify = ChildPlan {
        dir: data,
        mode: Mode::Verify,
        first_attempt: 1_000_000,
        attempts: 5,
        after_failure: 0,
        sizes: Sizes::Small,
        wait_for_go: false,
        report_socket: None,
    };
    let check = io_child::run(child_command(None, CHILD_ENTRY, &verify), None, |_| {});
    let label = format!("seed {seed}: the clean reopen");
    println!("{label}: {}", check.summary());
    let (problems, verdict) = check_verify(&label, &check, &verify, &restarted.history);
    println!("{label}: {verdict:?}");
    assert!(
        problems.is_empty(),
        "seed {seed}: the log after injected faults is not a clean prefix:\n{}\n{}",
        problems.join("\n"),
        check.stderr
    );
    Round { restarted, verdict }
}

/// Runs the rounds and checks what every round must show: faults were injected and surfaced
/// as typed errors, every process ended by itself without a panic reaching the caller, and
/// (in `round`) every reopen found a sound log.
fn rounds(label: &str, points: &[&str], probability: f64) {
    let chosen = std::env::var("HANDOVER_FIU_POINTS").ok();
    let points: Vec<&str> = match &chosen {
        Some(list) => list.split(',').collect(),
        None => points.to_vec(),
    };
    let faults = Faults {
        points: &points,
        probability,
        attempts: env_u64("HANDOVER_FIU_ATTEMPTS", 400),
        processes: env_u64("HANDOVER_FIU_RESTARTS", 60) + 1,
    };
    let count = env_u64("HANDOVER_FIU_ROUNDS", 1);
    let first_seed = env_u64("HANDOVER_FIU_SEED", 20_261_126);
    let mut processes = 0usize;
    let mut tried = 0u64;
    let mut acked = 0usize;
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    let (mut unknown_present, mut unknown_absent, mut refused, mut published) = (0, 0, 0, 0);
    let (mut contained, mut close_ms_max) = (0usize, 0u64);
    // Appends that met the failure yet got the stopped store's `Failed(cause)`, not the cause.
    let mut first_as_failed = 0usize;
    for seed in first_seed..first_seed + count {
        let Round { restarted, verdict } = round(&faults, seed);
        let failures: usize = restarted
            .runs
            .iter()
            .map(|r| r.transcript.failures.len())
            .sum();
        assert!(
            failures > 0,
            "seed {seed}: no append failed: the injected faults did not reach the store (is \
             libfiu's preload working?)"
        );
        processes += restarted.runs.len();
        tried += restarted.next_attempt;
        acked += restarted
            .history
            .acks
            .iter()
            .map(|a| a.attempt)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        for (class, n) in restarted.failure_classes() {
            *classes.entry(class).or_insert(0) += n;
        }
        unknown_present += verdict.unknown_present;
        unknown_absent += verdict.unknown_absent;
        refused += verdict.refused;
        published += verdict.published;
        for run in &restarted.runs {
            contained += run.contained_panics();
            close_ms_max = close_ms_max.max(run.transcript.closed_ms.unwrap_or(0));
            let first = run.transcript.failures.first();
            if first.is_some_and(|f| f.class.starts_with("failed:")) {
                first_as_failed += 1;
            }
        }
    }
    println!(
        "{label} {points:?}, p={probability}: {count} rounds from seed {first_seed}, {processes} \
         processes ({} restarts at most per round): appends tried {tried}, acknowledged \
         {acked}, failed {classes:?} (the append that met the failure got `failed:` {first_as_failed} \
         times); of unknown outcome {unknown_present} present and \
         {unknown_absent} absent after the restarts, {refused} refused by a stopped store (none \
         present), {published} events published (none lost); sled panics contained on the \
         store's close thread {contained}; the longest close {close_ms_max} ms",
        faults.processes - 1
    );
}

#[test]
fn child_process_entry() {
    // Does nothing in an ordinary run; the tests below run it in a child process.
    if std::env::var_os(io_child::MODE_ENV).is_some() {
        io_child::run_child();
    }
}

#[test]
fn acknowledged_appends_survive_failing_writes_and_restarts() {
    rounds("write faults", WRITE_POINTS, 0.02);
}

#[test]
fn acknowledged_appends_survive_failing_syncs_and_restarts() {
    rounds("sync faults", SYNC_POINTS, 0.05);
}
