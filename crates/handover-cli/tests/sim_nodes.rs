//! `handover simulate --nodes N` on a real PostgreSQL cluster (a throwaway server per test):
//! the contact center spread over node processes on one database, with and without nodes
//! killed (`--chaos`). With one node its counts are those of a sled run with the same seed;
//! with several, every conversation ends, every acknowledged event is in the log, and the
//! audit finds the log sound.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Output};

use handover_testkit::PgCluster;
use serde_json::{Map, Value};

fn handover(args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_handover"))
        .args(args)
        // One in the environment would count as --database-url.
        .env_remove("DATABASE_URL")
        .output()
        .expect("the handover binary runs");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn summary(output: &Output) -> Map<String, Value> {
    let text = String::from_utf8(output.stdout.clone()).expect("UTF-8 output");
    let line = text.lines().last().expect("a summary line");
    match serde_json::from_str(line).expect("JSON") {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn count(summary: &Map<String, Value>, field: &str) -> u64 {
    summary[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} is not a count: {}", summary[field]))
}

/// The summary without what depends on timing or on where the log is.
fn counts(summary: &Map<String, Value>) -> Map<String, Value> {
    let mut summary = summary.clone();
    for other in [
        "elapsed_ms",
        "events_per_s",
        "syncs",
        "ack_p50_us",
        "ack_p99_us",
        "durability",
    ] {
        summary.remove(other);
    }
    summary
}

/// Every event listed in the acknowledgement file is in the database's log; returns how many
/// lines it has.
fn every_ack_in_the_log(acks: &Path, url: &str) -> usize {
    let export = handover(&["audit", "export", "--database-url", url]);
    let mut versions: HashMap<String, u64> = HashMap::new();
    for line in String::from_utf8(export.stdout).unwrap().lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        if let (Some(id), Some(seq)) = (record["conversation_id"].as_str(), record["seq"].as_u64())
        {
            let version = versions.entry(id.to_owned()).or_default();
            *version = (*version).max(seq);
        }
    }
    let text = std::fs::read_to_string(acks).expect("the acknowledgement file");
    assert!(text.is_empty() || text.ends_with('\n'), "a torn last line");
    let mut seen = HashSet::new();
    for line in text.lines() {
        let (id, seq) = line.split_once(' ').expect("<id> <seq>");
        let seq: u64 = seq.parse().expect("a seq");
        assert!(seen.insert(line), "{line} listed twice");
        assert!(
            versions.get(id).copied().unwrap_or(0) >= seq,
            "acknowledged but not in the log: {line}"
        );
    }
    seen.len()
}

fn verify_sound(url: &str, events: Option<u64>) {
    let verified = handover(&["audit", "verify", "--database-url", url]);
    let text = String::from_utf8(verified.stdout).unwrap();
    assert!(text.starts_with("sound: "), "{text}");
    if let Some(events) = events {
        assert!(
            text.starts_with(&format!("sound: {events} events")),
            "{text}"
        );
    }
}

#[test]
fn one_node_gives_the_counts_of_a_sled_run_with_the_same_seed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sim");
    let common = ["--conversations", "60", "--seed", "4", "--json"];
    let mut args = vec!["simulate", "--data", data.to_str().unwrap()];
    args.extend(common);
    let on_sled = summary(&handover(&args));

    let cluster = PgCluster::start();
    let url = cluster.create_database("one_node");
    let mut args = vec!["simulate", "--database-url", &url, "--nodes", "1"];
    args.extend(common);
    let on_one_node = summary(&handover(&args));

    assert_eq!(count(&on_one_node, "nodes"), 1);
    assert_eq!(count(&on_sled, "conversations"), 60);
    // The counts, not the waits in simulated time: under load a node's assignment has once
    // landed a step later than the same run's on sled (wait p90 10 s instead of 0), with every
    // count equal.
    let without_waits = |summary: &Map<String, Value>| {
        let mut summary = counts(summary);
        summary.retain(|key, _| !key.starts_with("wait_"));
        summary
    };
    assert_eq!(without_waits(&on_one_node), without_waits(&on_sled));
    verify_sound(&url, Some(count(&on_one_node, "events")));
}

#[test]
fn three_nodes_end_every_conversation_and_keep_every_acknowledged_event() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("three_nodes");
    let dir = tempfile::tempdir().unwrap();
    let acks = dir.path().join("acks.txt");
    let run = summary(&handover(&[
        "simulate",
        "--database-url",
        &url,
        "--nodes",
        "3",
        "--conversations",
        "40",
        "--shift-minutes",
        "60",
        "--seed",
        "8",
        "--acks",
        acks.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(count(&run, "nodes"), 3);
    assert_eq!(count(&run, "conversations"), 40);
    assert_eq!(count(&run, "closed"), 40);
    assert_eq!(count(&run, "kills"), 0);
    assert!(every_ack_in_the_log(&acks, &url) > 0);
    verify_sound(&url, Some(count(&run, "events")));
}

#[test]
fn three_nodes_killed_now_and_then_lose_no_acknowledged_event() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("chaos");
    let dir = tempfile::tempdir().unwrap();
    let acks = dir.path().join("acks.txt");
    let run = summary(&handover(&[
        "simulate",
        "--database-url",
        &url,
        "--nodes",
        "3",
        "--chaos",
        "--conversations",
        "40",
        "--shift-minutes",
        "60",
        "--seed",
        "2",
        "--acks",
        acks.to_str().unwrap(),
        "--json",
    ]));
    let kills = count(&run, "kills");
    assert!(kills >= 1, "no node was killed: {run:?}");
    assert_eq!(count(&run, "takeovers"), kills);
    assert!(count(&run, "takeover_max_ms") >= count(&run, "takeover_p50_ms"));
    assert_eq!(
        count(&run, "conversations")
            + count(&run, "interrupted_by_chaos")
            + count(&run, "disturbed_by_chaos"),
        40,
        "every conversation finished or was interrupted by a kill: {run:?}"
    );
    assert!(every_ack_in_the_log(&acks, &url) > 0);
    verify_sound(&url, None);
    println!(
        "{kills} kills, takeover p50 {} ms, max {} ms",
        count(&run, "takeover_p50_ms"),
        count(&run, "takeover_max_ms")
    );
}

#[test]
fn nodes_need_a_database_and_chaos_needs_two() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sim");
    let refused = Command::new(env!("CARGO_BIN_EXE_handover"))
        .args(["simulate", "--data", data.to_str().unwrap(), "--nodes", "2"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("--database-url"), "{stderr}");
    assert!(!data.exists(), "nothing was simulated");
    let refused = Command::new(env!("CARGO_BIN_EXE_handover"))
        .args([
            "simulate",
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
            "--nodes",
            "1",
            "--chaos",
        ])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("chaos needs at least 2 nodes"), "{stderr}");
}

/// The processes whose parent is `parent`, from `/proc`.
fn children_of(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`: the command name may hold spaces, not a `)`.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let ppid = after.split_whitespace().nth(1).and_then(|p| p.parse().ok());
        if ppid == Some(parent) {
            children.push(pid);
        }
    }
    children
}

#[test]
fn a_node_that_dies_unexpectedly_fails_the_run_and_shows_its_stderr() {
    let cluster = PgCluster::start();
    let url = cluster.create_database("dies");
    let dir = tempfile::tempdir().unwrap();
    let acks = dir.path().join("acks.txt");
    let mut run = Command::new(env!("CARGO_BIN_EXE_handover"))
        .args(["simulate", "--database-url", &url, "--nodes", "2"])
        .args(["--conversations", "200", "--seed", "5", "--acks"])
        .arg(&acks)
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the conversations run, kill a node behind the coordinator's back.
    while std::fs::metadata(&acks).map_or(0, |m| m.len()) == 0 {
        assert!(run.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut nodes = children_of(run.id());
    assert_eq!(nodes.len(), 2, "two node processes");
    nodes.sort_unstable();
    let killed = Command::new("kill")
        .args(["-9", &nodes[1].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = run.wait_with_output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        // The coordinator notices on its next message or its next read, whichever comes first.
        (stderr.contains("ended before it could") || stderr.contains("stopped taking messages"))
            && stderr.contains("signal: 9")
            && stderr.contains("its stderr:"),
        "{stderr}"
    );
}

#[test]
fn every_node_applies_the_policy_file_of_the_run() {
    let dir = tempfile::tempdir().unwrap();
    // The default policy without its `frustration` rule, under another name.
    let default = String::from_utf8(handover(&["policy", "default"]).stdout).unwrap();
    let calm: String = default
        .split("[[rule]]")
        .filter(|rule| !rule.contains("kind = \"frustration\""))
        .collect::<Vec<_>>()
        .join("[[rule]]")
        .replace("name = \"default\"", "name = \"calm\"");
    let file = dir.path().join("calm.toml");
    std::fs::write(&file, calm).unwrap();

    let cluster = PgCluster::start();
    let url = cluster.create_database("policy_nodes");
    let run = summary(&handover(&[
        "simulate",
        "--database-url",
        &url,
        "--nodes",
        "2",
        "--conversations",
        "60",
        "--seed",
        "3",
        "--policy",
        file.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(count(&run, "nodes"), 2);
    assert_eq!(run["policy"], "calm");
    let by_rule = run["escalations_by_rule"].as_object().unwrap();
    assert!(!by_rule.contains_key("frustrated"), "{run:?}");
    assert!(by_rule.contains_key("ai-keeps-missing"), "{run:?}");

    // Every escalation a rule decided, on whichever node, names a rule of that policy.
    let export = handover(&["audit", "export", "--database-url", &url]);
    let mut versions = HashSet::new();
    for line in String::from_utf8(export.stdout).unwrap().lines() {
        let record: Value = serde_json::from_str(line).unwrap();
        if let Some(rule) = record["data"]["rule"].as_str() {
            assert_ne!(rule, "frustrated", "{record}");
            versions.insert(
                record["data"]["policy_version"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    assert_eq!(
        versions,
        HashSet::from([run["policy_version"].as_str().unwrap().to_owned()])
    );
    verify_sound(&url, Some(count(&run, "events")));
}
