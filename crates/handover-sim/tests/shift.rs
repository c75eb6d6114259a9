//! A simulated shift through the library: the same seed on fresh directories gives the same
//! summary, another seed another one, and the log holds every kind of event the floor makes.

use std::collections::BTreeSet;

use handover::{Durability, SledOptions, SledStore};
use handover_sim::{simulate, Options, Summary};

async fn run(seed: u64, conversations: usize) -> (Summary, BTreeSet<&'static str>) {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        conversations,
        seed,
        durability: Durability::Buffered,
        ..Options::default()
    };
    let summary = simulate(dir.path(), &options, |_| {}, std::future::pending())
        .await
        .unwrap();
    let store = SledStore::open(dir.path(), SledOptions::default()).unwrap();
    let types = store
        .iter_all(1)
        .map(|record| record.unwrap().event.type_name())
        .collect();
    (summary, types)
}

/// The summary without what depends on the machine.
fn counts(summary: &Summary) -> Summary {
    let mut summary = summary.clone();
    summary.elapsed_ms = 0;
    summary.events_per_s = 0;
    summary.syncs = 0;
    summary.ack_p50_us = 0;
    summary.ack_p99_us = 0;
    summary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_shift_and_every_event_type_appears() {
    let (first, types) = run(7, 200).await;
    let (second, _) = run(7, 200).await;
    assert_eq!(counts(&first), counts(&second));
    for expected in [
        "ai_agent_registered",
        "ai_agent_activated",
        "human_registered",
        "human_presence_changed",
        "conversation_opened",
        "awaiting_human",
        "human_assigned",
        "customer_notice",
        "message_posted",
        "handed_off_to_ai",
        "ai_skill_started",
        "ai_action_recorded",
        "reclaimed",
        "escalated_to_human",
        "ai_reply_overdue",
        "transferred",
        "sla_warning",
        "sla_breached",
        "internal_note",
        "flag_raised",
        "flag_lowered",
        "conversation_closed",
    ] {
        assert!(types.contains(expected), "no {expected} in {types:?}");
    }
    let (other, _) = run(8, 200).await;
    let mut other = counts(&other);
    other.seed = first.seed;
    assert_ne!(counts(&first), other);
}
