//! `handover bench`, run as the real binary in fresh temporary directories: its JSON report
//! and its refusals. Figures are printed, never asserted: speed belongs to the machine.

use std::process::{Command, Output};

use serde_json::Value;

fn handover(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_handover"))
        // One in the environment would count as --database-url.
        .env_remove("DATABASE_URL")
        .args(args)
        .output()
        .expect("the handover binary runs")
}

#[test]
fn a_short_bench_reports_every_figure_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bench");
    let output = handover(&[
        "bench",
        "--data",
        data.to_str().unwrap(),
        "--seconds",
        "1",
        "--conversations",
        "4",
        "--durability",
        "buffered",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let report: Value = serde_json::from_str(lines[0]).unwrap();
    for field in [
        "events_per_s",
        "syncs",
        "events",
        "ack_p50_us",
        "ack_p99_us",
        "ack_max_us",
        "fsync_us",
        "syncs_per_event",
    ] {
        assert!(report[field].is_number(), "{field} in {report}");
    }
    assert_eq!(report["durability"], "buffered");
    assert_eq!(report["conversations"], 4);
    assert_eq!(report["interrupted"], false);
    assert!(report["events"].as_u64().unwrap() > 0, "{report}");
    // Buffered acknowledges without syncing.
    assert_eq!(report["syncs"], 0);
    assert!(report["ack_p50_us"].as_u64() <= report["ack_p99_us"].as_u64());
    println!("bench: {report}");

    // The log it leaves is sound, and the probe file it synced is gone.
    let verify = handover(&["audit", "verify", "--data", data.to_str().unwrap()]);
    assert!(verify.status.success());
    assert!(!data.join("fsync-probe").exists());

    // A second run refuses the directory now that it holds a log.
    let again = handover(&["bench", "--data", data.to_str().unwrap(), "--seconds", "1"]);
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("is not empty"), "{stderr}");
}

#[test]
fn bench_refuses_bad_arguments_and_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let output = handover(&["bench", "--data", file.to_str().unwrap(), "--seconds", "1"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is a file, not a directory"));
    let data = dir.path().join("data");
    for (flag, value, message) in [
        ("--seconds", "0", "must be at least 1"),
        ("--conversations", "100001", "must be at most 100000"),
        ("--durability", "never", "possible values"),
    ] {
        let output = handover(&["bench", "--data", data.to_str().unwrap(), flag, value]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(message), "{flag} {value}: {stderr}");
    }
    assert!(!data.exists());
}
