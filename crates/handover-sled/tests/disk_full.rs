//! A full disk: a `Durable` store on a size-limited tmpfs is appended to until the disk is
//! full. The append that meets the full disk fails with a typed I/O error (`ENOSPC`, or a sync
//! that never returns after it) and is not acknowledged; the store stops, so every later
//! append, read and flush is refused with `StoreError::Failed`; the process closes its store
//! and exits by itself. After space is freed, a restart (a new process) reopens the directory
//! and finds every acknowledged event at the position it was acknowledged with, in a log that
//! is a clean prefix of what was tried, and appends again.
//!
//! The store runs in child processes (this executable again, see `io_child`), so a panic or a
//! hang inside sled is reported as such instead of taking the test harness down. Mounting
//! needs root (as CI runs); without it the test fails and says so.
//!
//! `cargo test -p handover-store --test disk_full -- --nocapture` prints the figures.

mod io_child;

use std::path::{Path, PathBuf};
use std::process::Command;

use io_child::{
    check_clean_prefix, check_verify, child_command, child_problems, root_class, ChildPlan,
    ChildRun, History, Mode, Sizes, Transcript,
};

/// The test the children run.
const CHILD_ENTRY: &str = "child_process_entry";

/// The size of the tmpfs the store fills.
const DISK: &str = "8m";

/// What is freed before the first restart.
const FILLER_BYTES: usize = 1024 * 1024;

/// Appends each failing child tries on its stopped store after the first failure.
const AFTER_FAILURE: u64 = 5;

/// A tmpfs mounted for the test, unmounted when dropped, also when the test fails.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("the mount point");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount(8) runs");
        assert!(
            output.status.success(),
            "mounting a tmpfs at {} failed: {}. This test needs root (CI runs as root) to \
             mount a size-limited tmpfs; run it as root.",
            dir.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .status()
            .expect("mount(8) runs");
        assert!(status.success(), "remounting {} failed", self.dir.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Something still holds a file there (a killed child's last moments): detach it.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Runs one child and prints what it reported.
fn run_child(label: &str, plan: &ChildPlan) -> ChildRun {
    let run = io_child::run(child_command(None, CHILD_ENTRY, plan), None, |_| {});
    println!("{label}: {}", run.summary());
    run
}

/// Why the failures are not what a full disk must give, if they are not: at least one; the
/// first the disk's own error, `ENOSPC` (28), or a sync that never returned after it (the
/// store's `sync_timeout`); every later one the stopped store's refusal with that same cause
/// (`child_problems` checks they are `failed:`).
fn full_disk_failures(label: &str, t: &Transcript) -> Vec<String> {
    let Some(first) = t.failures.first() else {
        return vec![format!(
            "{label}: the disk never filled ({} acks)",
            t.acks.len()
        )];
    };
    let cause = root_class(&first.class);
    let mut problems = Vec::new();
    // The store's own reserve (`min_free_bytes`) normally stops it first, with StorageFull.
    if cause != "io:28" && cause != "io:StorageFull" && cause != "io:TimedOut" {
        problems.push(format!(
            "{label}: attempt {} met the full disk with {}, not ENOSPC or a sync timeout: {}",
            first.attempt, first.class, first.message
        ));
    }
    if first.class.starts_with("failed:") {
        // Typed and with its cause, but not the bare I/O error the store's contract gives the
        // append that met the failure: the appender saw the store stop before its answer.
        println!(
            "{label}: note: attempt {}, the append that met the full disk, got the stopped \
             store's {} rather than the I/O error itself",
            first.attempt, first.class
        );
    }
    for failure in &t.failures[1..] {
        if root_class(&failure.class) != cause {
            problems.push(format!(
                "{label}: attempt {} was refused with another cause ({}) than the failure \
                 that stopped the store ({})",
                failure.attempt, failure.class, first.class
            ));
        }
    }
    problems
}

#[test]
fn child_process_entry() {
    // Does nothing in an ordinary run; the tests below run it in a child process.
    if std::env::var_os(io_child::MODE_ENV).is_some() {
        io_child::run_child();
    }
}

#[test]
fn a_full_disk_fails_appends_with_a_typed_error_and_loses_no_acknowledgement() {
    let base = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&base.path().join("disk"), DISK);
    let filler = disk.dir.join("filler");
    std::fs::write(&filler, vec![0u8; FILLER_BYTES]).expect("the filler file");
    let data = disk.dir.join("data");
    let plan = |mode, first_attempt, attempts, after_failure| ChildPlan {
        dir: data.clone(),
        mode,
        first_attempt,
        attempts,
        after_failure,
        sizes: Sizes::Large,
        wait_for_go: false,
        report_socket: None,
    };

    // Every problem is collected, so that one run reports them all; the test fails at the end.
    let mut problems: Vec<String> = Vec::new();
    let mut history = History::default();

    // 1. Fill the disk; after the first failure, try a few more appends on the stopped store,
    //    then close it and exit.
    let label = "full disk";
    let first = run_child(label, &plan(Mode::Append, 0, 100_000, AFTER_FAILURE));
    problems.extend(child_problems(label, &first, Mode::Append));
    problems.extend(full_disk_failures(label, &first.transcript));
    history.merge(&first.transcript, 0);

    // 2. Free the filler and restart: the log read back holds every acknowledgement; append
    //    until the disk is full again. (Skipped when the first process did not finish.)
    std::fs::remove_file(&filler).expect("the filler is removed");
    if problems.is_empty() {
        let label = "restart after freeing 1 MiB";
        let second = run_child(label, &plan(Mode::Append, 100_000, 100_000, AFTER_FAILURE));
        problems.extend(child_problems(label, &second, Mode::Append));
        problems.extend(full_disk_failures(label, &second.transcript));
        if second.transcript.open_errors.is_empty() {
            let (found, verdict) = check_clean_prefix(&second.transcript.records, &history);
            println!("{label}, the reopened log: {verdict:?}");
            problems.extend(found.into_iter().map(|p| format!("{label}: {p}")));
        }
        history.merge(&second.transcript, 100_000);
    }

    // 3. Make the disk larger and restart: everything acknowledged is there, and the log
    //    takes new appends.
    disk.resize("64m");
    let label = "restart after growing to 64 MiB";
    let verify = plan(Mode::Verify, 200_000, 20, 0);
    let third = run_child(label, &verify);
    let (found, verdict) = check_verify(label, &third, &verify, &history);
    println!(
        "{label}, the reopened log: {verdict:?} ({} acknowledged events before it, {} appends \
         of unknown outcome, {} refused by a stopped store)",
        history.acks.len(),
        history.unknown.len(),
        history.refused.len()
    );
    problems.extend(found);
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
