//! `handover simulate` under an escalation policy: the default policy's rules escalate the
//! policy scripts' conversations and ask for approvals, as the log (its audit export) says;
//! `--policy FILE` applies another policy; a bad policy file is refused before anything runs.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Map, Value};

/// A run with every policy script in it (the seed and size are fixed, so this holds on every
/// machine).
const RUN: [&str; 8] = [
    "--conversations",
    "60",
    "--seed",
    "3",
    "--durability",
    "buffered",
    "--humans",
    "5",
];

fn handover(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_handover"))
        .env_remove("DATABASE_URL")
        .args(args)
        .output()
        .expect("the handover binary runs")
}

#[track_caller]
fn simulate(dir: &Path, extra: &[&str]) -> Map<String, Value> {
    let mut args = vec!["simulate", "--data", dir.to_str().unwrap(), "--json"];
    args.extend_from_slice(&RUN);
    args.extend_from_slice(extra);
    let output = handover(&args);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "simulate failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    match serde_json::from_str(stdout.trim()).expect("the output is one JSON object") {
        Value::Object(summary) => summary,
        other => panic!("expected a JSON object, got {other}"),
    }
}

/// The audit export of the log in `dir`, one JSON object a line.
fn export(dir: &Path) -> Vec<Value> {
    let output = handover(&["audit", "export", "--data", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// What the log says: escalations by rule, and how many lines of each approval type.
struct Logged {
    by_rule: BTreeMap<String, u64>,
    by_cause: BTreeMap<String, u64>,
    escalations: u64,
    requested: u64,
    approved: u64,
    denied: u64,
}

fn logged(lines: &[Value]) -> Logged {
    let mut logged = Logged {
        by_rule: BTreeMap::new(),
        by_cause: BTreeMap::new(),
        escalations: 0,
        requested: 0,
        approved: 0,
        denied: 0,
    };
    for line in lines {
        match line["type"].as_str().unwrap() {
            "escalated_to_human" => {
                logged.escalations += 1;
                let cause = line["data"]["cause"].as_str().unwrap().to_owned();
                *logged.by_cause.entry(cause).or_default() += 1;
                if let Some(rule) = line["data"]["rule"].as_str() {
                    *logged.by_rule.entry(rule.to_owned()).or_default() += 1;
                }
            }
            "skill_approval_requested" => logged.requested += 1,
            "skill_approved" => logged.approved += 1,
            "skill_denied" => logged.denied += 1,
            _ => {}
        }
    }
    logged
}

fn map(summary: &Map<String, Value>, field: &str) -> BTreeMap<String, u64> {
    summary[field]
        .as_object()
        .unwrap_or_else(|| panic!("{field} is not an object: {summary:?}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

fn count(summary: &Map<String, Value>, field: &str) -> u64 {
    summary[field].as_u64().unwrap()
}

#[test]
fn the_default_policy_escalates_by_its_rules_and_asks_for_approvals_as_the_log_says() {
    let dir = tempfile::tempdir().unwrap();
    let summary = simulate(dir.path(), &[]);
    assert_eq!(summary["policy"], "default");
    assert_eq!(summary["policy_version"].as_str().unwrap().len(), 16);

    let log = logged(&export(dir.path()));
    let by_rule = map(&summary, "escalations_by_rule");
    for rule in ["frustrated", "going-in-circles", "ai-keeps-missing"] {
        let n = by_rule.get(rule).copied().unwrap_or(0);
        assert!(n > 0, "no escalation by {rule}: {summary:?}");
        assert_eq!(Some(&n), log.by_rule.get(rule), "{rule}");
    }
    assert_eq!(by_rule, log.by_rule);
    assert_eq!(map(&summary, "escalations_by_cause"), log.by_cause);
    assert_eq!(count(&summary, "escalations"), log.escalations);

    assert!(count(&summary, "approvals_requested") > 0, "{summary:?}");
    assert_eq!(count(&summary, "approvals_requested"), log.requested);
    assert_eq!(count(&summary, "approvals_approved"), log.approved);
    assert_eq!(count(&summary, "approvals_denied"), log.denied);
    // Every request is decided: approved, denied by a person, or denied by the clock.
    assert_eq!(log.requested, log.approved + log.denied);
    assert_eq!(count(&summary, "overrides"), 0);
}

#[test]
fn a_policy_without_the_frustration_rule_records_no_frustration_escalation() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("calm.toml");
    // The default policy without its `frustration` rule.
    let default = String::from_utf8(handover(&["policy", "default"]).stdout).unwrap();
    let without: String = default
        .split("[[rule]]")
        .filter(|rule| !rule.contains("kind = \"frustration\""))
        .collect::<Vec<_>>()
        .join("[[rule]]")
        .replace("name = \"default\"", "name = \"calm\"");
    assert!(!without.contains("frustration\""), "{without}");
    std::fs::write(&file, without).unwrap();

    let data = dir.path().join("data");
    let summary = simulate(&data, &["--policy", file.to_str().unwrap()]);
    assert_eq!(summary["policy"], "calm");
    let log = logged(&export(&data));
    assert_eq!(log.by_cause.get("frustration"), None, "{summary:?}");
    assert_eq!(log.by_rule.get("frustrated"), None, "{summary:?}");
    assert_eq!(map(&summary, "escalations_by_rule"), log.by_rule);
    // The frustrated customers still reach a person: their messages are questions the FAQ
    // agent cannot answer, so the rule on its misses escalates them instead.
    assert!(log.by_rule.get("ai-keeps-missing").copied().unwrap_or(0) > 0);

    // The same seed under the default policy escalates some by frustration.
    let default_run = tempfile::tempdir().unwrap();
    let default_summary = simulate(default_run.path(), &[]);
    assert!(map(&default_summary, "escalations_by_rule").contains_key("frustrated"));
    assert_ne!(summary["policy_version"], default_summary["policy_version"]);
}

#[test]
fn a_bad_policy_file_is_refused_with_its_line_and_column_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "name = \"p\"\n[[rule]]\nname = guard\n").unwrap();
    let data = dir.path().join("data");
    let output = handover(&[
        "simulate",
        "--data",
        data.to_str().unwrap(),
        "--conversations",
        "5",
        "--policy",
        file.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.toml"), "{stderr}");
    assert!(stderr.contains("line 3, column "), "{stderr}");
    assert!(output.stdout.is_empty(), "{output:?}");
    assert!(!data.exists(), "the run started: {}", data.display());

    // A mistake found after parsing names its rule's line.
    std::fs::write(
        &file,
        "name = \"p\"\n[[rule]]\nname = \"f\"\nkind = \"frustration\"\nover_customer_messages = 3\nthreshold = 1.5\n",
    )
    .unwrap();
    let output = handover(&[
        "simulate",
        "--data",
        data.to_str().unwrap(),
        "--policy",
        file.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains("threshold"), "{stderr}");
    assert!(!data.exists());

    // A file that is not there.
    let output = handover(&[
        "simulate",
        "--data",
        data.to_str().unwrap(),
        "--policy",
        dir.path().join("missing.toml").to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(!data.exists());
}
