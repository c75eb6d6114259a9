//! The command line on a real PostgreSQL cluster (a throwaway server per test): a simulation
//! writes through `--database-url`, and every audit reads the same database, also while a
//! simulation is still writing, which a sled directory cannot allow; `audit export --follow`
//! prints the log and then each event as it commits.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use handover_testkit::PgCluster;

/// How long a test waits for the next line of a follower, or for it to exit, before it fails:
/// a bound on a wait, never a measure of speed.
const PATIENCE: Duration = Duration::from_secs(60);

fn handover(args: &[&str], url: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_handover"));
    command
        .args(args)
        .arg("--database-url")
        .arg(url)
        .env_remove("DATABASE_URL");
    command
}

fn run(args: &[&str], url: &str) -> Output {
    let output = handover(args, url)
        .output()
        .expect("the handover binary runs");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

fn json_u64(text: &str, key: &str) -> u64 {
    let value: serde_json::Value = serde_json::from_str(text).expect("JSON");
    value[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} in {text}"))
}

#[test]
fn a_simulation_on_postgres_audits_sound_with_every_command() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("cli");
    let simulated = run(
        &[
            "simulate",
            "--conversations",
            "60",
            "--ai-agents",
            "2",
            "--humans",
            "4",
            "--seed",
            "3",
            "--json",
        ],
        &url,
    );
    let summary = stdout(&simulated);
    let events = json_u64(summary.lines().last().unwrap(), "events");
    assert!(events > 0);

    let verified = stdout(&run(&["audit", "verify"], &url));
    assert!(
        verified.starts_with(&format!("sound: {events} events")),
        "{verified}"
    );
    let stats = stdout(&run(&["audit", "stats", "--json"], &url));
    assert_eq!(json_u64(&stats, "events"), events);
    let export = stdout(&run(&["audit", "export"], &url));
    assert_eq!(export.lines().count() as u64, events);
    let positions: Vec<u64> = export
        .lines()
        .map(|line| json_u64(line, "position"))
        .collect();
    assert_eq!(positions, (1..=events).collect::<Vec<_>>());
    let listing = stdout(&run(&["audit", "conversations", "--json"], &url));
    assert_eq!(
        listing.lines().count(),
        60,
        "one JSON line per conversation"
    );
    let first: serde_json::Value = serde_json::from_str(listing.lines().next().unwrap()).unwrap();
    let id = first["id"].as_str().unwrap().to_owned();
    let timeline = stdout(&run(&["audit", "timeline", "--conversation", &id], &url));
    assert!(timeline.contains(&id), "{timeline}");
    // What-if under the policy that wrote the log: no difference.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("default.toml");
    let printed = Command::new(env!("CARGO_BIN_EXE_handover"))
        .args(["policy", "default"])
        .output()
        .expect("the handover binary runs");
    std::fs::write(&policy, printed.stdout).unwrap();
    let what_if = stdout(&run(
        &[
            "audit",
            "what-if",
            "--policy",
            policy.to_str().unwrap(),
            "--json",
        ],
        &url,
    ));
    assert_eq!(json_u64(&what_if, "differences"), 0, "{what_if}");
    assert_eq!(json_u64(&what_if, "conversations"), 60, "{what_if}");
}

#[test]
fn audits_read_a_consistent_snapshot_while_a_simulation_writes() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("live");
    let mut writer: Child = handover(
        &[
            "simulate",
            "--conversations",
            "150",
            "--ai-agents",
            "2",
            "--humans",
            "4",
            "--seed",
            "9",
            "--json",
        ],
        &url,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("the simulation starts");
    let mut sound = Vec::new();
    let mut before = 0;
    while writer.try_wait().unwrap().is_none() {
        let output = handover(&["audit", "verify"], &url).output().unwrap();
        let text = stdout(&output);
        if output.status.code() == Some(2) && text.is_empty() {
            // The simulation has not created the tables yet.
            continue;
        }
        assert!(
            output.status.success(),
            "verify while writing: {text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let events: u64 = text
            .strip_prefix("sound: ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{text}"));
        assert!(events >= before, "a later snapshot is never shorter");
        before = events;
        sound.push(events);
    }
    let finished = writer.wait_with_output().unwrap();
    assert!(finished.status.success());
    let total = json_u64(stdout(&finished).lines().last().unwrap(), "events");
    assert!(
        sound.iter().any(|&n| n > 0 && n < total),
        "at least one audit read the log mid-simulation: {sound:?}"
    );
    let last = stdout(&run(&["audit", "verify"], &url));
    assert!(
        last.starts_with(&format!("sound: {total} events")),
        "{last}"
    );
    println!(
        "{} audits verified sound while the simulation wrote (sizes {:?} ... of {total})",
        sound.len(),
        sound.iter().take(5).collect::<Vec<_>>()
    );
}

/// `handover simulate` of `conversations` conversations into the database's log (added to it
/// with `append`); returns how many events the log then holds.
fn simulate(url: &str, conversations: u32, seed: u32, append: bool) -> u64 {
    let conversations = conversations.to_string();
    let seed = seed.to_string();
    let mut args = vec![
        "simulate",
        "--conversations",
        &conversations,
        "--ai-agents",
        "2",
        "--humans",
        "3",
        "--seed",
        &seed,
        "--json",
    ];
    if append {
        args.push("--append");
    }
    run(&args, url);
    let verified = stdout(&run(&["audit", "verify"], url));
    verified
        .strip_prefix("sound: ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{verified}"))
}

/// A running `handover audit export --follow`, its stdout read line by line on a thread of its
/// own so that every wait for a line is bounded.
struct Follower {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Follower {
    /// Starts `audit export --follow` with `args` on the database. With `keep`, the reader
    /// closes the pipe after that many lines, as `| head -n keep` does.
    fn start(args: &[&str], url: &str, keep: Option<usize>) -> Follower {
        let mut all = vec!["audit", "export", "--follow"];
        all.extend_from_slice(args);
        let mut child = handover(&all, url)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the follower starts");
        let out = child.stdout.take().expect("a piped stdout");
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            let lines = BufReader::new(out).lines().map_while(Result::ok);
            for line in lines.take(keep.unwrap_or(usize::MAX)) {
                if sender.send(line).is_err() {
                    break;
                }
            }
            // The pipe's reading end closes here.
        });
        Follower { child, lines }
    }

    /// The next line it prints; fails after PATIENCE, with what it wrote on stderr.
    fn line(&mut self) -> String {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(error) => {
                let _ = self.child.kill();
                panic!(
                    "no line from `audit export --follow` ({error}); its stderr: {}",
                    self.stderr()
                )
            }
        }
    }

    /// Waits for it to exit on its own; fails after PATIENCE.
    fn exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("the follower's status") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the follower did not exit; its stderr: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends it `signal` (`TERM`, `INT`) as `kill` does.
    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{signal}");
    }

    /// What it wrote on stderr; only once it has exited (or was killed).
    fn stderr(&mut self) -> String {
        let _ = self.child.wait();
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn export_follow_prints_the_log_then_each_event_as_it_commits_exactly_once() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("follow");
    let before = simulate(&url, 20, 5, false);
    assert!(before > 0);

    let mut follower = Follower::start(&[], &url, None);
    let mut lines: Vec<String> = (0..before).map(|_| follower.line()).collect();

    // More conversations while it follows, from a writer of its own: none of these events
    // was committed when the follower read the log.
    let after = simulate(&url, 20, 6, true);
    assert!(after > before);
    while (lines.len() as u64) < after {
        lines.push(follower.line());
    }

    let positions: Vec<u64> = lines
        .iter()
        .map(|line| json_u64(line, "position"))
        .collect();
    assert_eq!(
        positions,
        (1..=after).collect::<Vec<_>>(),
        "every position once, in order"
    );
    let export = stdout(&run(&["audit", "export"], &url));
    let exported: Vec<&str> = export.lines().collect();
    assert_eq!(exported.len() as u64, after);
    for (followed, exported) in lines.iter().zip(&exported) {
        assert_eq!(followed, exported, "a followed line is the export's line");
    }

    // One conversation's lines, as `export --conversation` prints them.
    let id = exported
        .iter()
        .rev()
        .find_map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["conversation_id"].as_str().map(str::to_owned)
        })
        .expect("a conversation's event");
    let one = stdout(&run(&["audit", "export", "--conversation", &id], &url));
    let mut only = Follower::start(&["--conversation", &id], &url, None);
    for exported in one.lines() {
        assert_eq!(only.line(), exported);
    }

    // Nothing more until another event commits; then SIGTERM stops it cleanly.
    follower.signal("TERM");
    let status = follower.exit();
    assert!(
        status.success(),
        "stopped by SIGTERM: {status}; {}",
        follower.stderr()
    );
    assert!(
        follower.lines.try_iter().next().is_none(),
        "no line after the last event"
    );
}

#[test]
fn export_follow_from_a_position_starts_there_and_ends_quietly_when_the_reader_goes() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("follow_from");
    let events = simulate(&url, 15, 7, false);
    let export = stdout(&run(&["audit", "export"], &url));
    // The last event of a stream that opened earlier: its line's tenant comes from an event
    // before --from, which the follower reads but does not print.
    let from = export
        .lines()
        .filter(|line| json_u64(line, "seq") > 1)
        .map(|line| json_u64(line, "position"))
        .next_back()
        .expect("a stream of more than one event");
    assert!(1 < from && from <= events);

    // The reader takes one line and goes, as `| head -n 1` does.
    let mut follower = Follower::start(&["--from", &from.to_string()], &url, Some(1));
    let first = follower.line();
    assert_eq!(json_u64(&first, "position"), from);
    let value: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert!(value["tenant"].is_string(), "{first}");
    assert_eq!(
        first,
        export.lines().nth(from as usize - 1).unwrap(),
        "the line of the whole export, tenant included, though the stream opened before --from"
    );

    // Its next write finds the pipe closed: it exits 0 without a word.
    simulate(&url, 3, 8, true);
    let status = follower.exit();
    let stderr = follower.stderr();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

#[test]
fn export_follow_is_refused_on_a_data_directory_and_from_without_follow() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_handover"))
        .args(["audit", "export", "--data", data, "--follow"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--follow reads a database (--database-url URL"),
        "{stderr}"
    );
    assert!(refused.stdout.is_empty());

    let refused = Command::new(env!("CARGO_BIN_EXE_handover"))
        .args(["audit", "export", "--data", data, "--from", "3"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--follow"), "{stderr}");
}

#[test]
fn export_follow_stops_at_a_damaged_record_after_every_line_before_it() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("follow_damage");
    let events = simulate(&url, 10, 11, false);
    assert!(events > 5);
    // A flipped bit in the body of the record at position 5.
    let flipped = Command::new("psql")
        .arg(&url)
        .args(["-v", "ON_ERROR_STOP=1", "-c"])
        .arg(
            "UPDATE handover_events SET record = set_byte(record, length(record) - 1, \
             get_byte(record, length(record) - 1) # 1) WHERE position = 5",
        )
        .output()
        .expect("psql runs");
    assert!(
        flipped.status.success(),
        "{}",
        String::from_utf8_lossy(&flipped.stderr)
    );

    let mut follower = Follower::start(&[], &url, None);
    let lines: Vec<u64> = (0..4)
        .map(|_| json_u64(&follower.line(), "position"))
        .collect();
    assert_eq!(lines, [1, 2, 3, 4]);
    let status = follower.exit();
    let stderr = follower.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: cannot read the log in the database postgres://"),
        "{stderr}"
    );
    assert!(stderr.contains("position 5"), "{stderr}");
    assert!(
        follower.lines.try_iter().next().is_none(),
        "no line past it"
    );
}
