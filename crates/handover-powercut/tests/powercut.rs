//! Power cuts under a `Durable` store: every acknowledged event must survive.
//!
//! Each case mounts a fresh [`Disk`] (the strict profile, or now and then the ext4-like one),
//! runs a writer child on it (`child/mod.rs`), and cuts the power at a seeded moment: after
//! the k-th write, or before or after the k-th sync request. The disk then freezes (every
//! request fails with `EIO`), the writer is killed with SIGKILL, everything unsynced is
//! dropped (in torn mode each dirty page survives with a seeded probability), and the disk is
//! unmounted and mounted afresh, so no kernel cache survives. A verifier child then opens the
//! store and reads it. The property, after every cut:
//!
//! - `lost`: acknowledged events absent, or present with other bytes or at another position:
//!   must be empty;
//! - `unexpected`: events present that no writer ever tried: must be empty;
//! - the store opens without an error and without a panic, and the audit's `verify_dir`
//!   finds the log sound (a clean prefix: contiguous streams, intact chains, the anchor met).
//!
//! Schedules, in turn: a cut under append load; a cut early in the first open of a new
//! directory (directory entries); a SIGKILL (or a first cut) and then a cut during or after
//! the reopen (sled's recovery and snapshot); appends of events over 128 KiB (sled's blob
//! files). Two controls run every time and must be caught, or the test fails: the same load
//! in `Durability::ProcessCrash` (sled's flush alone), and a writer that acknowledges before
//! the store's sync (the planted bug).
//!
//! One failure is sled 0.34.7's own and cannot be prevented from outside it (a durable log
//! message naming an unsynced blob file, see [`known_sled_blob_hole`]): it is printed with
//! its case seed and counted as "known sled blob hole", and does not fail the test.
//!
//! ```sh
//! cargo test -p handover-powercut --test powercut -- --nocapture
//! HANDOVER_POWERCUT_CUTS=600 HANDOVER_POWERCUT_SEED=20261207 cargo test -p handover-powercut --test powercut -- --nocapture
//! HANDOVER_POWERCUT_CASE=<case seed> cargo test -p handover-powercut --test powercut -- --nocapture
//! ```
//!
//! `HANDOVER_POWERCUT_SCHEDULE=load|first-open|reopen|big` runs one schedule alone, and
//! `HANDOVER_POWERCUT_VERBOSE=1` prints every case and what its verifier said.
//!
//! It needs root and `/dev/fuse`. Without them it fails when `CI` is set and is skipped
//! (with the reason printed) otherwise. A seed replays the same workload and cut point, not
//! the same thread schedule: sled's background threads decide part of what is written when.

mod child;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use handover_powercut::{
    can_mount, detach_stale_mounts, CutPoint, CutReport, Disk, Mounted, Profile,
};
use handover_store::Durability;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use child::WriterPlan;

/// Durable cases in a default run: about a minute on the 2-core VM, with the controls.
const DEFAULT_CUTS: u64 = 100;
/// Cases of each control in every run.
const CONTROL_CUTS: u64 = 6;
const DEFAULT_SEED: u64 = 20_261_206;
/// The safety net for a child that never finishes (a hang is a failure, reported as such);
/// no case comes near it.
const CHILD_DEADLINE: Duration = Duration::from_secs(120);
/// How often the parent looks at the disk and the child while waiting for the cut.
const POLL: Duration = Duration::from_millis(2);
/// The data directory, two levels below the mount point: the store creates both.
const DATA_DIR: &str = "srv/events";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Schedule {
    /// A cut under append load.
    Load,
    /// A cut among the first requests of a new directory's first open.
    FirstOpen,
    /// A SIGKILL or a first cut, then a cut during or after the reopen.
    Reopen,
    /// A cut while appending events of over 128 KiB.
    Big,
}

impl Schedule {
    fn name(self) -> &'static str {
        match self {
            Schedule::Load => "load",
            Schedule::FirstOpen => "first-open",
            Schedule::Reopen => "reopen",
            Schedule::Big => "big",
        }
    }
}

const SCHEDULES: [Schedule; 4] = [
    Schedule::Load,
    Schedule::FirstOpen,
    Schedule::Reopen,
    Schedule::Big,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Control {
    /// The claim: `Durable`, acknowledging after the sync.
    None,
    /// `Durability::ProcessCrash`: must lose acknowledged events.
    ProcessCrash,
    /// Acknowledging before the store's sync: must be caught.
    Planted,
}

/// Everything one case does, derived from its seed alone.
#[derive(Clone, Debug)]
struct Case {
    seed: u64,
    control: Control,
    schedule: Schedule,
    profile: Profile,
    /// The probability a dirty page survives the cut anyway; `None` drops every one.
    torn: Option<f64>,
    cut: CutPoint,
    /// Reopen only: the acknowledgements before the first interruption.
    first_acks: u64,
    /// Reopen only: whether the first interruption is a power cut rather than a SIGKILL.
    first_is_cut: bool,
    /// Events of over 128 KiB (always in `Big`, in half of the `Reopen` cases).
    big: bool,
}

impl Case {
    fn new(seed: u64, control: Control) -> Case {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let schedule = match control {
            Control::None => SCHEDULES[(seed % SCHEDULES.len() as u64) as usize],
            Control::ProcessCrash | Control::Planted => Schedule::Load,
        };
        let profile = if control == Control::ProcessCrash || rng.gen_bool(0.2) {
            // The ProcessCrash control runs where sled's own fsync of db keeps db's entry, in
            // a data directory made durable beforehand: what it loses is then data that
            // sync_file_range wrote and nothing synced, not a directory entry.
            Profile::Ext4ish
        } else {
            Profile::Strict
        };
        let torn = rng.gen_bool(0.25).then(|| rng.gen_range(0.2..0.8));
        let cut = match (schedule, control) {
            // The controls lose what was acknowledged since the last real sync, so they cut
            // before one.
            // Mid-load: sled's flusher fsyncs db only every 200 ms, a few times a run.
            (_, Control::ProcessCrash) => CutPoint::AfterWrite(rng.gen_range(100..=400)),
            // Mid-load, where appends are queued between syncs, already acknowledged.
            (_, Control::Planted) => CutPoint::AfterWrite(rng.gen_range(20..=300)),
            (Schedule::FirstOpen, _) => match rng.gen_range(0..3) {
                0 => CutPoint::AfterWrite(rng.gen_range(1..=12)),
                1 => CutPoint::BeforeSync(rng.gen_range(1..=6)),
                _ => CutPoint::AfterSync(rng.gen_range(1..=6)),
            },
            (Schedule::Reopen, _) => match rng.gen_range(0..3) {
                0 => CutPoint::AfterWrite(rng.gen_range(1..=40)),
                1 => CutPoint::BeforeSync(rng.gen_range(1..=12)),
                _ => CutPoint::AfterSync(rng.gen_range(1..=12)),
            },
            (Schedule::Big, _) => match rng.gen_range(0..3) {
                0 => CutPoint::AfterWrite(rng.gen_range(1..=200)),
                1 => CutPoint::BeforeSync(rng.gen_range(1..=40)),
                _ => CutPoint::AfterSync(rng.gen_range(1..=40)),
            },
            (Schedule::Load, _) => match rng.gen_range(0..3) {
                0 => CutPoint::AfterWrite(rng.gen_range(1..=300)),
                1 => CutPoint::BeforeSync(rng.gen_range(1..=100)),
                _ => CutPoint::AfterSync(rng.gen_range(1..=100)),
            },
        };
        Case {
            seed,
            control,
            schedule,
            profile,
            torn,
            cut,
            first_acks: rng.gen_range(5..150),
            first_is_cut: rng.gen_bool(0.3),
            big: schedule == Schedule::Big || (schedule == Schedule::Reopen && rng.gen_bool(0.5)),
        }
    }

    fn durability(&self) -> Durability {
        match self.control {
            Control::ProcessCrash => Durability::ProcessCrash,
            Control::None | Control::Planted => Durability::Durable,
        }
    }

    fn writer(&self, generation: u64) -> WriterPlan {
        WriterPlan {
            seed: self.seed.wrapping_add(generation),
            generation,
            durability: self.durability(),
            planted: self.control == Control::Planted,
            big: self.big,
        }
    }

    fn describe(&self) -> String {
        let torn = match self.torn {
            Some(p) => format!(", torn p={p:.2}"),
            None => String::new(),
        };
        let first = match self.schedule {
            Schedule::Reopen => format!(
                ", first a {} after {} acks",
                if self.first_is_cut {
                    "power cut"
                } else {
                    "SIGKILL"
                },
                self.first_acks
            ),
            _ => String::new(),
        };
        format!(
            "case seed {} ({:?}, {:?}, {}, cut {}{torn}{first})",
            self.seed,
            self.control,
            self.schedule,
            self.profile.name(),
            self.cut
        )
    }
}

/// What the writers said: what they tried and what they acknowledged.
#[derive(Default)]
struct History {
    /// (stream, seq) -> every hash tried there (a writer after a cut may retry a seq).
    tried: BTreeMap<(String, u64), BTreeSet<String>>,
    /// (stream, seq) -> (hash, position when known).
    acked: BTreeMap<(String, u64), (String, Option<u64>)>,
}

impl History {
    fn take(&mut self, line: &str) {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["TRY", stream, seq, hash] => {
                if let Ok(seq) = seq.parse() {
                    self.tried
                        .entry(((*stream).to_owned(), seq))
                        .or_default()
                        .insert((*hash).to_owned());
                }
            }
            ["ACK", stream, seq, hash, position] => {
                if let Ok(seq) = seq.parse() {
                    self.acked.insert(
                        ((*stream).to_owned(), seq),
                        ((*hash).to_owned(), position.parse().ok()),
                    );
                }
            }
            _ => {}
        }
    }
}

/// What one check found.
#[derive(Default)]
struct Check {
    lost: Vec<String>,
    unexpected: Vec<String>,
    problems: Vec<String>,
    /// The open failed the way sled 0.34.7's blob handling is known to make it fail (see
    /// [`known_sled_blob_hole`]): reported and counted, not a failure of the store.
    known: Option<String>,
    present: u64,
}

/// The failures the store cannot prevent from outside sled 0.34.7 (docs/storage-format.md,
/// "What sled 0.34.7 leaves open"): a log message made durable (by sled's own flusher, or by
/// the store's `fdatasync` of `db` covering a message written after it listed the blobs)
/// while the blob file it names is not. sled's recovery then skips that update and keeps the
/// rest of its batch. Two signatures, both only in cases with blob-sized events:
///
/// - the global index names a missing record, at a position past every acknowledged one
///   (the open or the first read reports it);
/// - sled panics while opening when the skipped update was the first version of a page (a
///   split's new node): unable to find that page in the tree (`cannot find pid`), or, when
///   its snapshot writes the page table, finding the page allocated but never written
///   (`tried to serialize Uninitialized`).
///
/// Anything else fails the test.
fn known_sled_blob_hole(line: &str, history: &History, big: bool) -> bool {
    if !big {
        return false;
    }
    if line.starts_with("PANIC ") {
        return (line.contains("sled-0.34.7/src/tree.rs") && line.contains("cannot find pid"))
            || (line.contains("sled-0.34.7/src/serialization.rs")
                && line.contains("tried to serialize Uninitialized"));
    }
    let Some(rest) = line
        .strip_prefix("OPEN-ERROR ")
        .or_else(|| line.strip_prefix("READ-ERROR "))
    else {
        return false;
    };
    if !rest.ends_with("the global index points here, but the record is missing") {
        return false;
    }
    let position = rest
        .split_once("(position ")
        .and_then(|(_, tail)| tail.split_once(')'))
        .and_then(|(n, _)| n.parse::<u64>().ok());
    let acked_max = history.acked.values().filter_map(|(_, p)| *p).max();
    let all_positions_known = history.acked.values().all(|(_, p)| p.is_some());
    matches!((position, acked_max), (Some(at), Some(max)) if at > max) && all_positions_known
}

impl Check {
    fn faults(&self) -> usize {
        self.lost.len() + self.unexpected.len() + self.problems.len()
    }
}

/// A child whose standard output is read line by line on a thread of its own.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(configure: impl FnOnce(&mut Command)) -> anyhow::Result<Running> {
        let exe = std::env::current_exe().context("the test executable")?;
        let mut command = Command::new(exe);
        command
            .args([
                "--exact",
                "powercut_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // sled's and the store's logs are not needed; panics come as lines.
            .env_remove("RUST_LOG");
        configure(&mut command);
        let mut child = command.spawn().context("starting a child")?;
        let stdout = child.stdout.take().context("the child's stdout")?;
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest prints `test powercut_child ... ` before the child's first line.
                let line = match line.rsplit_once(" ... ") {
                    Some((_, rest)) => rest.to_owned(),
                    None => line,
                };
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Running {
            child,
            lines,
            seen: Vec::new(),
        })
    }

    /// Takes the lines printed so far; false once the child has exited.
    fn pump(&mut self, history: &mut History) -> anyhow::Result<bool> {
        while let Ok(line) = self.lines.try_recv() {
            history.take(&line);
            self.seen.push(line);
        }
        Ok(self.child.try_wait()?.is_none())
    }

    fn acks(&self) -> u64 {
        self.seen.iter().filter(|l| l.starts_with("ACK ")).count() as u64
    }

    fn said(&self, word: &str) -> bool {
        self.seen.iter().any(|l| l == word)
    }

    /// SIGKILLs the child and takes every line it printed.
    fn kill(mut self, history: &mut History) -> anyhow::Result<Vec<String>> {
        let _ = self.child.kill();
        self.child.wait()?;
        // The reader thread ends at end of file, which the child's death brings.
        for line in self.lines.iter() {
            history.take(&line);
            self.seen.push(line);
        }
        Ok(std::mem::take(&mut self.seen))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A child must never outlive its case: it holds files on a mount about to go.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One case's mount: the disk, its mount point, and the mount (always taken down).
struct Rig {
    disk: Arc<Mutex<Disk>>,
    mount_point: PathBuf,
    mounted: Option<Mounted>,
    _temp: tempfile::TempDir,
}

impl Rig {
    fn new(profile: Profile) -> anyhow::Result<Rig> {
        let temp = tempfile::Builder::new()
            .prefix("handover-powercut-")
            .tempdir()?;
        let mount_point = temp.path().join("mnt");
        std::fs::create_dir(&mount_point)?;
        let disk = Arc::new(Mutex::new(Disk::new(profile)));
        let mounted = Mounted::mount(Arc::clone(&disk), &mount_point)?;
        Ok(Rig {
            disk,
            mount_point,
            mounted: Some(mounted),
            _temp: temp,
        })
    }

    fn data(&self) -> PathBuf {
        self.mount_point.join(DATA_DIR)
    }

    fn disk(&self) -> std::sync::MutexGuard<'_, Disk> {
        self.disk.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops everything unsynced and mounts what is left as a new session.
    fn power_cut(&mut self, torn: Option<(f64, u64)>) -> anyhow::Result<CutReport> {
        self.disk().freeze("power cut");
        if let Some(mounted) = self.mounted.take() {
            mounted.unmount()?;
        }
        let report = self.disk().power_cut(torn);
        self.mounted = Some(Mounted::mount(Arc::clone(&self.disk), &self.mount_point)?);
        Ok(report)
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        // Before the temporary directory goes: never leave a mount behind.
        if let Some(mounted) = self.mounted.take() {
            if let Err(error) = mounted.unmount() {
                eprintln!("{error}");
            }
        }
    }
}

/// Runs a writer until the disk freezes (or, with `stop_after_acks`, until that many
/// acknowledgements, then SIGKILL without a cut), and returns its lines.
fn run_writer(
    rig: &Rig,
    plan: &WriterPlan,
    stop_after_acks: Option<u64>,
    history: &mut History,
) -> anyhow::Result<Vec<String>> {
    let data = rig.data();
    let mut running = Running::start(|c| plan.apply(c, &data))?;
    let started = Instant::now();
    loop {
        let alive = running.pump(history)?;
        let frozen = rig.disk().frozen().is_some();
        let enough = stop_after_acks.is_some_and(|n| running.acks() >= n);
        if frozen || enough || running.said("DONE") || !alive {
            if !frozen && stop_after_acks.is_none() {
                // The writer finished its budget before the cut came: cut now, idle.
                rig.disk().freeze("power cut at idle");
            }
            return running.kill(history);
        }
        if started.elapsed() > CHILD_DEADLINE {
            let lines = running.kill(history)?;
            bail!(
                "the writer hung (no cut, no DONE within {CHILD_DEADLINE:?}); last lines: {:?}",
                lines.iter().rev().take(5).collect::<Vec<_>>()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// Runs the verifier and checks its findings against `history`.
fn verify(rig: &Rig, history: &History, big: bool) -> anyhow::Result<Check> {
    let data = rig.data();
    let mut running = Running::start(|c| child::apply_verify(c, &data))?;
    let started = Instant::now();
    let mut ignored = History::default();
    while running.pump(&mut ignored)? {
        if started.elapsed() > CHILD_DEADLINE {
            running.kill(&mut ignored)?;
            bail!("the verifier hung");
        }
        std::thread::sleep(POLL);
    }
    let status = running.child.wait()?;
    let lines = running.kill(&mut ignored)?;
    if std::env::var_os("HANDOVER_POWERCUT_VERBOSE").is_some() {
        let shown: Vec<&String> = lines.iter().filter(|l| !l.starts_with("HAVE ")).collect();
        eprintln!("verifier: {shown:?}");
    }
    let mut check = Check::default();
    if !status.success() {
        check.problems.push(format!(
            "the verifier exited with {status} (signal {:?})",
            status.signal()
        ));
    }
    let mut present: BTreeMap<(String, u64), (String, u64)> = BTreeMap::new();
    let mut verified = false;
    for line in &lines {
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["HAVE", stream, seq, hash, position] => {
                let seq: u64 = seq.parse()?;
                let position: u64 = position.parse()?;
                present.insert(((*stream).to_owned(), seq), ((*hash).to_owned(), position));
            }
            ["VERIFY", "sound", _] => verified = true,
            _ if known_sled_blob_hole(line, history, big) => check.known = Some(line.clone()),
            // The open's report of the panic just classified.
            _ if check.known.is_some()
                && (line.starts_with("OPEN-ERROR ") || line.starts_with("READ-ERROR ")) => {}
            _ if line.starts_with("VERIFY ")
                || line.starts_with("OPEN-ERROR")
                || line.starts_with("READ-ERROR")
                || line.starts_with("PANIC")
                || line.starts_with("CHILD-ERROR") =>
            {
                check.problems.push(line.clone());
            }
            _ => {}
        }
    }
    let opened = lines.iter().any(|l| l == "OPENED");
    if opened && !verified && check.problems.is_empty() && check.known.is_none() {
        check
            .problems
            .push("the verifier printed no verdict".to_owned());
    }
    if check.known.is_some() {
        // The acknowledged events are behind an open or a read that sled's recovery made
        // impossible; the case is counted as the known hole instead.
    } else if opened {
        for ((stream, seq), (hash, position)) in &history.acked {
            match present.get(&(stream.clone(), *seq)) {
                None => check.lost.push(format!("{stream} {seq} absent")),
                Some((h, _)) if h != hash => {
                    check.lost.push(format!("{stream} {seq} other bytes"));
                }
                Some((_, p)) if position.is_some_and(|want| want != *p) => {
                    check.lost.push(format!(
                        "{stream} {seq} at {p}, acknowledged at {position:?}"
                    ));
                }
                Some(_) => {}
            }
        }
        for ((stream, seq), (hash, _)) in &present {
            let tried = history
                .tried
                .get(&(stream.clone(), *seq))
                .is_some_and(|hashes| hashes.contains(hash));
            if !tried {
                check.unexpected.push(format!("{stream} {seq}"));
            }
        }
    } else if !history.acked.is_empty() {
        // Nothing could be read: every acknowledged event counts as lost.
        check.lost.extend(
            history
                .acked
                .keys()
                .map(|(stream, seq)| format!("{stream} {seq} (no open)")),
        );
    }
    check.present = present.len() as u64;
    Ok(check)
}

/// What a case saw.
struct Outcome {
    acked: u64,
    check: Check,
    report: CutReport,
    frozen_by: String,
}

fn run_case(case: &Case) -> anyhow::Result<Outcome> {
    let mut rig = Rig::new(case.profile)?;
    let mut history = History::default();
    let torn = case.torn.map(|p| (p, case.seed));
    let mut report = CutReport::default();
    let mut generation = 0;
    if case.control == Control::ProcessCrash {
        let data = rig.data();
        std::fs::create_dir_all(&data)?;
        for dir in [&rig.mount_point, &rig.mount_point.join("srv"), &data] {
            std::fs::File::open(dir)?.sync_all()?;
        }
    }
    if case.schedule == Schedule::Reopen {
        // The first interruption, with nothing armed: a SIGKILL keeps the page cache (the
        // daemon's unsynced state), a power cut does not.
        // Big appends are slow and few: stop early so the reopen has work left to do.
        let first_acks = if case.big { 5 } else { case.first_acks };
        run_writer(&rig, &case.writer(0), Some(first_acks), &mut history)?;
        if case.first_is_cut {
            rig.power_cut(torn.map(|(p, s)| (p, s ^ 1)))?;
        }
        generation = 1;
    }
    rig.disk().arm(Some(case.cut));
    run_writer(&rig, &case.writer(generation), None, &mut history)?;
    let frozen_by = rig.disk().frozen().unwrap_or("not frozen").to_owned();
    let cut = rig.power_cut(torn)?;
    report.pages_lost += cut.pages_lost;
    report.pages_kept += cut.pages_kept;
    report.entries_reverted += cut.entries_reverted;
    report.nodes_lost += cut.nodes_lost;
    report.sizes_reverted += cut.sizes_reverted;
    let check = verify(&rig, &history, case.big)?;
    Ok(Outcome {
        acked: history.acked.len() as u64,
        check,
        report,
        frozen_by,
    })
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// A case seed: a mix of the run's seed and the case's index, its low bits naming the
/// schedule so that the seed alone replays the case.
fn case_seed(run_seed: u64, index: u64) -> u64 {
    let mixed = ChaCha8Rng::seed_from_u64(run_seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .gen::<u64>()
        >> 8;
    mixed - mixed % SCHEDULES.len() as u64 + index % SCHEDULES.len() as u64
}

#[derive(Default)]
struct Totals {
    cases: u64,
    acked: u64,
    lost: u64,
    unexpected: u64,
    problems: u64,
    failing: Vec<String>,
    pages_lost: u64,
    entries_reverted: u64,
    known: Vec<String>,
}

impl Totals {
    fn add(&mut self, case: &Case, outcome: &Outcome) {
        self.cases += 1;
        self.acked += outcome.acked;
        self.lost += outcome.check.lost.len() as u64;
        self.unexpected += outcome.check.unexpected.len() as u64;
        self.problems += outcome.check.problems.len() as u64;
        self.pages_lost += outcome.report.pages_lost;
        self.entries_reverted += outcome.report.entries_reverted;
        if let Some(line) = &outcome.check.known {
            self.known.push(format!(
                "{} [{}]: {line}",
                case.describe(),
                outcome.frozen_by
            ));
        }
        if outcome.check.faults() > 0 {
            self.failing.push(format!(
                "{} [{}]: {} acknowledged, lost {} {:?}, unexpected {} {:?}, problems {:?}",
                case.describe(),
                outcome.frozen_by,
                outcome.acked,
                outcome.check.lost.len(),
                outcome.check.lost.iter().take(3).collect::<Vec<_>>(),
                outcome.check.unexpected.len(),
                outcome.check.unexpected.iter().take(3).collect::<Vec<_>>(),
                outcome.check.problems
            ));
        }
    }

    fn line(&self, label: &str) -> String {
        format!(
            "{label}: {} cuts, {} acknowledged events, lost {}, unexpected {}, other faults {}, \
             failing cuts {}, known sled blob hole {} ({} dirty pages and {} directory entries \
             dropped)",
            self.cases,
            self.acked,
            self.lost,
            self.unexpected,
            self.problems,
            self.failing.len(),
            self.known.len(),
            self.pages_lost,
            self.entries_reverted
        )
    }
}

fn run_cases(cases: &[Case]) -> anyhow::Result<Totals> {
    let mut totals = Totals::default();
    for case in cases {
        let outcome = run_case(case).with_context(|| case.describe())?;
        if std::env::var_os("HANDOVER_POWERCUT_VERBOSE").is_some() {
            eprintln!(
                "{} [{}]: {} acked, {} present, {} faults",
                case.describe(),
                outcome.frozen_by,
                outcome.acked,
                outcome.check.present,
                outcome.check.faults()
            );
        }
        totals.add(case, &outcome);
    }
    Ok(totals)
}

/// The child processes' entry point; a no-op in the test run itself.
#[test]
fn powercut_child() {
    child::run_if_child();
}

#[test]
fn power_cuts_lose_no_acknowledged_event() -> anyhow::Result<()> {
    if let Err(missing) = can_mount() {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        if ci {
            bail!(
                "the power-cut test cannot run: {missing}. CI is set, so this is a failure: run \
                 the tests as root on a machine with /dev/fuse"
            );
        }
        eprintln!(
            "SKIPPED power_cuts_lose_no_acknowledged_event: {missing}. It runs as root with \
             /dev/fuse (CI=true turns this skip into a failure)."
        );
        return Ok(());
    }
    let stale = detach_stale_mounts();
    if stale > 0 {
        eprintln!("detached {stale} stale mounts left by a killed earlier run");
    }
    if let Some(seed) = env_u64("HANDOVER_POWERCUT_CASE") {
        let case = Case::new(seed, Control::None);
        let totals = run_cases(std::slice::from_ref(&case))?;
        eprintln!("{}", totals.line("replayed case"));
        if !totals.failing.is_empty() {
            bail!("{}", totals.failing.join("\n"));
        }
        return Ok(());
    }
    let run_seed = env_u64("HANDOVER_POWERCUT_SEED").unwrap_or(DEFAULT_SEED);
    let cuts = env_u64("HANDOVER_POWERCUT_CUTS").unwrap_or(DEFAULT_CUTS);
    let started = Instant::now();
    // HANDOVER_POWERCUT_SCHEDULE=load|first-open|reopen|big runs that schedule alone.
    let only = std::env::var("HANDOVER_POWERCUT_SCHEDULE").ok();
    let durable: Vec<Case> = (0..cuts * SCHEDULES.len() as u64)
        .map(|i| Case::new(case_seed(run_seed, i), Control::None))
        .filter(|case| {
            only.as_deref()
                .is_none_or(|name| name == case.schedule.name())
        })
        .take(cuts as usize)
        .collect();
    let control = |control, salt: u64| -> Vec<Case> {
        (0..CONTROL_CUTS)
            .map(|i| Case::new(case_seed(run_seed ^ salt, i), control))
            .collect()
    };
    let process_crash = run_cases(&control(Control::ProcessCrash, 0x5052))?;
    let planted = run_cases(&control(Control::Planted, 0x504c))?;
    let claim = run_cases(&durable)?;
    let mut by_schedule = String::new();
    for schedule in SCHEDULES {
        let n = durable.iter().filter(|c| c.schedule == schedule).count();
        by_schedule.push_str(&format!(" {schedule:?} {n}"));
    }
    eprintln!(
        "power cuts, run seed {run_seed} ({:.0} s):\n  {}\n    by schedule:{by_schedule}\n  {}\n  {}",
        started.elapsed().as_secs_f64(),
        claim.line("durable"),
        process_crash.line("control process-crash"),
        planted.line("control planted ack-before-sync"),
    );
    for known in &claim.known {
        eprintln!("known sled 0.34.7 blob hole (docs/storage-format.md): {known}");
    }
    let mut failures = Vec::new();
    if !claim.failing.is_empty() {
        failures.push(format!(
            "durable cuts failed (replay one with HANDOVER_POWERCUT_CASE=<case seed>):\n{}",
            claim.failing.join("\n")
        ));
    }
    if process_crash.lost == 0 && process_crash.failing.is_empty() {
        failures.push(format!(
            "the ProcessCrash control was not caught: {} cuts lost no acknowledged event, so \
             the harness cannot tell sled's flush from a sync (run seed {run_seed})",
            process_crash.cases
        ));
    }
    if planted.failing.is_empty() {
        failures.push(format!(
            "the planted ack-before-sync fault was not caught in {} cuts (run seed {run_seed})",
            planted.cases
        ));
    }
    if !failures.is_empty() {
        return Err(anyhow!("{}", failures.join("\n")));
    }
    Ok(())
}
