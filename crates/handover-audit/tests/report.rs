//! The report over real logs: its figures agree with `stats`, its parts add up, it renders
//! to a self-contained page that escapes what the log holds, and the passes with progress
//! count every position once.

mod common;

use std::cell::Cell;

use common::*;
use handover_audit::{
    report, report_of, stats, verify_of_with_progress, what_if_of_with_progress, AuditLog,
    Progress, RecordLog, Replay,
};
use handover_core::rules::Rules;
use handover_core::EscalationCause;
use handover_sled::SledStore;

/// Every record of the store, in memory.
fn read_records(store: &SledStore) -> RecordLog {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(RecordLog::read(store, 1000))
        .unwrap()
}

/// Counts what a pass reports.
#[derive(Default)]
struct Counted {
    starts: Cell<u64>,
    total: Cell<u64>,
    done: Cell<u64>,
}

impl Progress for Counted {
    fn start(&self, total: u64) {
        self.starts.set(self.starts.get() + 1);
        self.total.set(total);
        self.done.set(0);
    }

    fn advance(&self, positions: u64) {
        self.done.set(self.done.get() + positions);
    }
}

fn simulated(dir: &std::path::Path, conversations: usize, seed: u64) {
    let options = handover_sim::Options {
        conversations,
        seed,
        durability: handover_store::Durability::Buffered,
        ..handover_sim::Options::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(handover_sim::simulate(
            dir,
            &options,
            |_| {},
            std::future::pending(),
        ))
        .unwrap();
}

#[test]
fn a_simulated_shift_reports_what_stats_count_and_its_parts_add_up() {
    let dir = tempfile::tempdir().unwrap();
    simulated(dir.path(), 60, 5);
    let store = handover_audit::open_data_dir(dir.path()).unwrap();
    let figures = stats(&store).unwrap();
    let made = report(&store).unwrap();
    assert_eq!(made.stats, figures);
    assert!(
        figures.handoffs > 0 && figures.escalations.total > 0,
        "{figures}"
    );

    // Over time, per agent and per team, every handoff and escalation is counted once.
    let buckets = &made.timeline.buckets;
    assert!(!buckets.is_empty() && buckets.len() <= 48);
    let sum = |f: fn(&handover_audit::TimeBucket) -> u64| buckets.iter().map(f).sum::<u64>();
    assert_eq!(sum(|b| b.handoffs), figures.handoffs);
    assert_eq!(sum(|b| b.escalations), figures.escalations.total);
    assert_eq!(sum(|b| b.contained), figures.closed_while_ai_active);
    assert_eq!(sum(|b| b.sla_warnings), figures.sla_warnings);
    assert_eq!(sum(|b| b.sla_breaches), figures.sla_breaches);
    assert_eq!(sum(|b| b.ai_reply_timeouts), figures.ai_reply_timeouts);
    assert_eq!(
        made.agents.iter().map(|a| a.handoffs).sum::<u64>(),
        figures.handoffs
    );
    let by_cause: u64 = made
        .agents
        .iter()
        .flat_map(|a| a.escalations_by_cause.values())
        .sum();
    assert_eq!(by_cause, figures.escalations.total);
    assert_eq!(
        made.teams.iter().map(|t| t.handoffs).sum::<u64>(),
        figures.handoffs
    );
    assert_eq!(
        made.teams.iter().map(|t| t.sla_breaches).sum::<u64>(),
        figures.sla_breaches
    );
    assert_eq!(
        made.teams.iter().map(|t| t.conversations).sum::<u64>(),
        figures.conversations_opened
    );
    assert_eq!(made.waits.counts.iter().sum::<u64>(), made.wait_ms.count);
    assert!(made.wait_ms.count >= figures.escalation_to_human_ms.count);
    let c = &made.containment;
    assert_eq!(c.contained + c.went_back + c.undecided, c.ai_handled);
    assert!(c.contained <= figures.closed_while_ai_active);

    // The same log gives the same report and the same page, from sled or from memory.
    let records = read_records(&store);
    let in_memory = report_of(AuditLog::Records(&records)).unwrap();
    assert_eq!(in_memory, made);
    assert_eq!(in_memory.to_html(), made.to_html());
}

#[test]
fn names_and_reasons_are_escaped_in_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    log.register("evil-bot", "<script>alert(1)</script>", &[]);
    log.activate("evil-bot");
    let id = log.open("cust-1", "web-chat", Some("alice"));
    log.hand_off(
        id,
        "alice",
        "evil-bot",
        Some("<img src=x onerror=alert(2)>"),
    );
    log.escalate(
        id,
        "<script>alert(3)</script> & more",
        EscalationCause::AgentRequested,
    );
    let html = report(log.store()).unwrap().to_html();
    assert!(!html.contains("<script"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(
        html.contains("&lt;script&gt;alert(3)&lt;/script&gt; &amp; more"),
        "{html}"
    );
}

#[test]
fn passes_with_progress_count_every_position_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    standard_log(&mut log);
    let store: &SledStore = log.store();

    let counted = Counted::default();
    Replay::from_store_with_progress(store, &counted).unwrap();
    assert_eq!(counted.starts.get(), 1);
    assert_eq!(counted.total.get(), STANDARD_EVENTS);
    assert_eq!(counted.done.get(), STANDARD_EVENTS);

    let counted = Counted::default();
    handover_audit::report_of_with_progress(AuditLog::Sled(store), &counted).unwrap();
    assert_eq!(
        (counted.total.get(), counted.done.get()),
        (STANDARD_EVENTS, STANDARD_EVENTS)
    );

    let counted = Counted::default();
    assert!(verify_of_with_progress(AuditLog::Sled(store), &counted)
        .unwrap()
        .is_sound());
    assert_eq!(
        (counted.total.get(), counted.done.get()),
        (STANDARD_EVENTS, STANDARD_EVENTS)
    );

    let counted = Counted::default();
    let mut out = Vec::new();
    handover_audit::export_of_with_progress(
        AuditLog::Sled(store),
        &handover_audit::ExportOptions::default(),
        &mut out,
        &counted,
    )
    .unwrap();
    assert_eq!(
        (counted.total.get(), counted.done.get()),
        (STANDARD_EVENTS, STANDARD_EVENTS)
    );

    let counted = Counted::default();
    let rules = Rules::parse(
        r#"
        name = "nothing"
        [[rule]]
        name = "gate"
        kind = "skill_approval"
        skills = ["launch_rocket"]
        deadline_minutes = 5
        "#,
    )
    .unwrap();
    what_if_of_with_progress(AuditLog::Sled(store), &rules, &counted).unwrap();
    assert_eq!(
        (counted.total.get(), counted.done.get()),
        (STANDARD_EVENTS, STANDARD_EVENTS)
    );

    let records = read_records(store);
    let counted = Counted::default();
    assert!(
        verify_of_with_progress(AuditLog::Records(&records), &counted)
            .unwrap()
            .is_sound()
    );
    assert_eq!(
        (counted.total.get(), counted.done.get()),
        (STANDARD_EVENTS, STANDARD_EVENTS)
    );
}

#[test]
fn an_empty_log_reports_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogBuilder::new(dir.path());
    let made = report(log.store()).unwrap();
    assert_eq!(made.stats.events, 0);
    assert!(made.timeline.buckets.is_empty());
    assert!(made.to_html().contains("an empty log"));
}
