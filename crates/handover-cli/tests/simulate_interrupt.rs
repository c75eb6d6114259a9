//! `handover simulate` stopped with Ctrl-C (SIGINT sent to the real binary): it finishes the
//! conversations under way, shuts the runtime down, prints the summary of what it did, exits
//! 130, and leaves a log that verifies, in which every conversation it opened is closed.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest the test waits for the simulation to make progress before it calls the run stalled.
const STALL: Duration = Duration::from_secs(60);

fn handover(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_handover"))
        // One in the environment would count as --database-url.
        .env_remove("DATABASE_URL")
        .args(args)
        .output()
        .expect("the handover binary runs")
}

fn lines(path: &Path) -> usize {
    std::fs::read(path).map_or(0, |bytes| bytes.iter().filter(|&&b| b == b'\n').count())
}

/// Runs `handover simulate` with `args` on a new directory (and an acknowledgement file),
/// waits until `acknowledged` lines are in that file, sends SIGINT, and returns what it printed
/// and the data directory.
fn interrupted_simulation(
    dir: &Path,
    args: &[&str],
    acknowledged: usize,
) -> (std::process::Output, std::path::PathBuf) {
    let data = dir.join("data");
    let acks = dir.join("acks.txt");
    let child = Command::new(env!("CARGO_BIN_EXE_handover"))
        // One in the environment would count as --database-url.
        .env_remove("DATABASE_URL")
        .args(["simulate", "--conversations", "100000"])
        .args(args)
        .arg("--data")
        .arg(&data)
        .arg("--acks")
        .arg(&acks)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until conversations are being acknowledged, so the run is well under way.
    let started = Instant::now();
    while lines(&acks) < acknowledged {
        assert!(started.elapsed() < STALL, "the simulation made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    (child.wait_with_output().unwrap(), data)
}

#[test]
fn ctrl_c_stops_the_simulation_cleanly_and_prints_what_was_done() {
    let dir = tempfile::tempdir().unwrap();
    let (output, data) = interrupted_simulation(
        dir.path(),
        &[
            "--json",
            "--concurrency",
            "16",
            "--durability",
            "process-crash",
        ],
        200,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stdout}\n{stderr}");

    let summary: Value = serde_json::from_str(stdout.trim()).expect("one JSON summary");
    assert_eq!(summary["interrupted"], true, "{summary}");
    let conversations = summary["conversations"].as_u64().unwrap();
    assert!(conversations > 0 && conversations < 100_000, "{summary}");
    // Conversations under way were finished, not abandoned.
    assert_eq!(summary["closed"].as_u64(), Some(conversations), "{summary}");

    let data = data.to_str().unwrap();
    let verify = handover(&["audit", "verify", "--data", data]);
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(String::from_utf8_lossy(&verify.stdout).starts_with("sound: "));
    let stats = handover(&["audit", "stats", "--data", data, "--json"]);
    let stats: Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["conversations_opened"].as_u64(), Some(conversations));
    assert_eq!(stats["conversations_closed"].as_u64(), Some(conversations));
}

#[test]
fn ctrl_c_prints_the_text_summary_too() {
    let dir = tempfile::tempdir().unwrap();
    let (output, _) =
        interrupted_simulation(dir.path(), &["--quiet", "--durability", "buffered"], 50);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(130), "{stdout}");
    assert!(stdout.starts_with("interrupted after "), "{stdout}");
    assert!(stdout.contains("closed"), "{stdout}");
}
