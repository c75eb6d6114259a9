//! The command line on a real PostgreSQL cluster (a throwaway server per test): a simulation
//! writes through `--database-url`, and every audit reads the same database, also while a
//! simulation is still writing, which a sled directory cannot allow.

use std::process::{Child, Command, Output, Stdio};

use handover_testkit::PgCluster;

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
