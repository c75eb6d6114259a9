//! `handover audit report`, and `--quiet` on the audit's long passes, as the real binary on a
//! simulated log: the page's figures are `audit stats`'s, it references nothing outside
//! itself, it has every chart, and it is the same for the same log.

use std::path::Path;
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

#[track_caller]
fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // stderr is a pipe here: no progress bar may be drawn into it.
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn path(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// A simulated contact center's log in `dir/data`.
fn simulate(dir: &Path) -> String {
    let data = dir.join("data");
    let data = path(&data).to_owned();
    succeeded(&handover(&[
        "simulate",
        "--data",
        &data,
        "--conversations",
        "150",
        "--seed",
        "3",
        "--durability",
        "buffered",
        "--quiet",
    ]));
    data
}

/// The value of the summary row `key` in the page.
fn summary(html: &str, key: &str) -> String {
    let start = format!("<tr data-key=\"{key}\">");
    let row = html
        .split(&start)
        .nth(1)
        .unwrap_or_else(|| panic!("no row {key}"));
    let cell = row.split("<td class=\"n\">").nth(1).unwrap();
    cell.split("</td>").next().unwrap().to_owned()
}

#[test]
fn the_report_counts_what_stats_counts_and_stands_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = simulate(dir.path());
    let out = dir.path().join("report.html");
    succeeded(&handover(&[
        "audit",
        "report",
        "--data",
        &data,
        "--out",
        path(&out),
    ]));
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(!dir.path().join("report.html.partial").exists());

    let stats: Value = serde_json::from_str(&succeeded(&handover(&[
        "audit", "stats", "--data", &data, "--json",
    ])))
    .unwrap();
    for key in [
        "events",
        "conversations_opened",
        "conversations_closed",
        "handoffs",
        "reclaims",
        "sla_warnings",
        "sla_breaches",
        "ai_reply_timeouts",
    ] {
        assert_eq!(summary(&html, key), stats[key].to_string(), "{key}");
    }
    let escalations = stats["escalations"].as_object().unwrap();
    for (cause, count) in escalations {
        assert_eq!(
            summary(&html, &format!("escalations.{cause}")),
            count.to_string(),
            "escalations.{cause}"
        );
    }
    for (rule, count) in stats["escalations_by_rule"].as_object().unwrap() {
        assert_eq!(
            summary(&html, &format!("escalations_by_rule.{rule}")),
            count.to_string(),
            "escalations_by_rule.{rule}"
        );
    }
    assert!(stats["handoffs"].as_u64().unwrap() > 0);
    assert!(escalations["total"].as_u64().unwrap() > 0);

    // Nothing outside the page: no address at all, no script, no stylesheet link, no url().
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("url("));
    // One SVG per chart, each with its title.
    let charts = [
        "chart-handoffs",
        "chart-causes",
        "chart-rules",
        "chart-containment",
        "chart-agents",
        "chart-waits",
        "chart-sla",
        "chart-sla-teams",
        "chart-replies",
        "chart-timeouts",
    ];
    assert_eq!(html.matches("<svg").count(), charts.len());
    assert_eq!(html.matches("</svg>").count(), charts.len());
    for chart in charts {
        assert!(
            html.contains(&format!("<title id=\"{chart}-title\">")),
            "{chart} has no title"
        );
    }
    assert!(
        html.contains("AI containment</dt>"),
        "the definition is in the page"
    );

    // The same log, the same page.
    let again = dir.path().join("again.html");
    succeeded(&handover(&[
        "audit",
        "report",
        "--data",
        &data,
        "--out",
        path(&again),
        "--quiet",
    ]));
    assert_eq!(std::fs::read_to_string(&again).unwrap(), html);
}

#[test]
fn the_long_passes_accept_quiet_and_print_what_they_printed() {
    let dir = tempfile::tempdir().unwrap();
    let data = simulate(dir.path());

    let verified = succeeded(&handover(&["audit", "verify", "--data", &data]));
    assert!(verified.starts_with("sound: "), "{verified}");
    assert_eq!(
        succeeded(&handover(&["audit", "verify", "--data", &data, "--quiet"])),
        verified
    );

    let exported = succeeded(&handover(&["audit", "export", "--data", &data]));
    let file = dir.path().join("export.jsonl");
    let printed = succeeded(&handover(&[
        "audit",
        "export",
        "--data",
        &data,
        "--out",
        path(&file),
        "--quiet",
    ]));
    assert_eq!(printed, "");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), exported);
    succeeded(&handover(&[
        "audit",
        "export",
        "--data",
        &data,
        "--out",
        path(&file),
    ]));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), exported);

    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, succeeded(&handover(&["policy", "default"]))).unwrap();
    let what_if = succeeded(&handover(&[
        "audit",
        "what-if",
        "--data",
        &data,
        "--policy",
        path(&policy),
    ]));
    assert_eq!(
        succeeded(&handover(&[
            "audit",
            "what-if",
            "--data",
            &data,
            "--policy",
            path(&policy),
            "--quiet",
        ])),
        what_if
    );

    // --out writes a whole log; following one has no end to write.
    let refused = handover(&[
        "audit",
        "export",
        "--data",
        &data,
        "--out",
        path(&file),
        "--follow",
    ]);
    assert_eq!(refused.status.code(), Some(2));
}
