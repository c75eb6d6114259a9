//! The replay's projections, the stats figures and the timeline, over a real sled log.

mod common;

use common::*;
use handover_audit::{
    open_data_dir, stats, timeline, AuditError, Holder, MessageCounts, Replay, Stats,
};
use handover_core::{EscalationCause, Status};

#[test]
fn replay_folds_every_conversation_and_the_roster() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    let s = standard_log(&mut log);
    let replay = Replay::from_store(log.store()).unwrap();

    assert_eq!(replay.events(), STANDARD_EVENTS);
    assert_eq!(replay.head(), STANDARD_EVENTS);
    assert_eq!(replay.streams().count(), 11);
    assert_eq!(replay.conversations().count(), 4);

    let faq = replay.roster().get(&agent("faq-bot")).unwrap();
    assert!(faq.active);
    assert_eq!(faq.profile.name.as_str(), "FAQ bot");
    assert!(!replay.roster().get(&agent("billing-bot")).unwrap().active);

    let a = replay.conversation(&s.a).unwrap();
    assert_eq!(a.status(), Status::Closed);
    assert_eq!(a.version(), 14);
    assert_eq!((a.handoffs(), a.reclaims()), (1, 1));
    assert_eq!(a.skills_succeeded(), 1);
    let holders: Vec<&str> = a.periods().iter().map(|p| p.holder.label()).collect();
    assert_eq!(holders, ["human-handled", "ai-active", "reclaimed"]);
    assert_eq!(
        a.periods()[0].holder,
        Holder::Human {
            human: Some(human("alice"))
        }
    );
    assert!(matches!(&a.periods()[1].holder,
        Holder::Ai { agent_id, by_human, .. } if *agent_id == agent("faq-bot") && *by_human == human("alice")));
    assert_eq!(
        a.periods()[2].holder,
        Holder::Reclaimed { by: human("bob") }
    );
    // Messages fall into the period they were written in.
    let per_period: Vec<MessageCounts> = a.periods().iter().map(|p| p.messages).collect();
    assert_eq!(
        per_period,
        [
            MessageCounts {
                customer: 1,
                human: 0,
                ai: 0
            },
            MessageCounts {
                customer: 1,
                human: 0,
                ai: 2
            },
            MessageCounts {
                customer: 0,
                human: 1,
                ai: 0
            },
        ]
    );
    assert_eq!(a.periods()[1].skills_run, 1);
    assert!(a.periods().iter().all(|p| p.ended_at.is_some()));
    assert_eq!(a.periods()[2].ended_at, a.closed_at());
    assert!(!a.closed_while_ai_active());

    let b = replay.conversation(&s.b).unwrap();
    assert_eq!(b.escalations(), [EscalationCause::CustomerAskedForHuman]);
    assert_eq!(b.skills_failed(), 1);

    let c = replay.conversation(&s.c).unwrap();
    assert!(c.closed_while_ai_active());
    assert_eq!(c.handoffs(), 2);
    assert_eq!(c.escalations(), [EscalationCause::AgentRequested]);

    let d = replay.conversation(&s.d).unwrap();
    assert!(matches!(d.status(), Status::AwaitingHuman { .. }));
    assert_eq!(d.closed_at(), None);
    assert_eq!(d.escalations(), [EscalationCause::AgentDeactivated]);
    // Back with humans, waiting in the queue: the escalation and the wait are one period.
    assert_eq!(
        d.periods().last().unwrap().holder,
        Holder::Human { human: None }
    );
    let holders: Vec<&str> = d.periods().iter().map(|p| p.holder.label()).collect();
    assert_eq!(holders, ["human-handled", "ai-active", "human-handled"]);
    assert_eq!(d.periods().last().unwrap().ended_at, None);
}

#[test]
fn stats_count_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    standard_log(&mut log);
    let figures = stats(log.store()).unwrap();

    assert_eq!(figures.events, STANDARD_EVENTS);
    assert_eq!(figures.ai_agents_registered, 2);
    assert_eq!(figures.ai_agents_active, 1);
    assert_eq!(figures.conversations_opened, 4);
    assert_eq!(figures.conversations_closed, 3);
    assert_eq!(figures.handoffs, 5);
    assert_eq!(figures.reclaims, 1);
    assert_eq!(figures.escalations.total, 3);
    assert_eq!(figures.escalations.agent_requested, 1);
    assert_eq!(figures.escalations.customer_asked_for_human, 1);
    assert_eq!(figures.escalations.agent_deactivated, 1);
    assert_eq!(figures.closed_while_ai_active, 1);
    assert_eq!(figures.ai_containment_rate, Some(1.0 / 3.0));
    assert_eq!(figures.skills.total, 2);
    assert_eq!(figures.skills.succeeded, 1);
    assert_eq!(figures.skills.failed, 1);
    assert_eq!(
        figures.messages,
        MessageCounts {
            customer: 4,
            human: 2,
            ai: 4
        }
    );

    // Time in states covers each conversation from its opening to its close, or to the last
    // event of the log for the one still open, with no gap and no overlap.
    let replay = Replay::from_store(log.store()).unwrap();
    let log_end = replay.last_recorded_at().unwrap().as_micros();
    let lifetimes: i64 = replay
        .conversations()
        .map(|c| {
            c.closed_at().map_or(log_end, |at| at.as_micros()) - c.opened_at().unwrap().as_micros()
        })
        .sum();
    let times = figures.time_in_state_micros;
    assert_eq!(
        times.human_handled + times.ai_active + times.reclaimed,
        lifetimes
    );
    assert!(times.human_handled >= 0 && times.ai_active >= 0 && times.reclaimed >= 0);

    // The text form names every figure.
    let text = figures.to_string();
    assert!(text.contains("handoffs to AI              5"), "{text}");
    assert!(
        text.contains("1 of 3 closed conversations (33.3%)"),
        "{text}"
    );
}

#[test]
fn stats_of_an_empty_log_are_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogBuilder::new(dir.path());
    let figures = stats(log.store()).unwrap();
    assert_eq!(figures, Stats::default());
    assert!(figures.to_string().contains("no conversation closed yet"));
}

#[test]
fn timeline_tells_who_handled_it_when_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    let s = standard_log(&mut log);

    let story = timeline(log.store(), s.a).unwrap();
    assert_eq!(story.id(), s.a);
    // Messages are counted, not listed: open, handoff, skill, reclaim, close.
    let types: Vec<&str> = story
        .entries()
        .iter()
        .map(|e| e.event.type_name())
        .collect();
    assert_eq!(
        types,
        [
            "conversation_opened",
            "human_assigned",
            "handed_off_to_ai",
            "customer_notice",
            "ai_action_recorded",
            "reclaimed",
            "customer_notice",
            "customer_notice",
            "conversation_closed"
        ]
    );
    let text = story.to_string();
    for expected in [
        "customer cust-a on web-chat",
        "status: closed",
        "assigned to human alice",
        "handed off by human alice to AI agent \"FAQ bot\" (faq-bot); reason: \"routine pricing question\"",
        "ran skill lookup_price",
        "succeeded, 49 USD/month",
        "reclaimed by human bob from AI agent faq-bot; reason: \"enterprise lead, sales should answer\"",
        "closed by human bob; reason: \"resolved\"",
        "1. human-handled by alice",
        "2. ai-active with \"FAQ bot\" (faq-bot), handed off by alice",
        "3. reclaimed by bob",
        "messages 3 (customer 1, human 0, ai 2); skills run 1",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }

    let escalated = timeline(log.store(), s.b).unwrap().to_string();
    assert!(
        escalated.contains("(cause customer_asked_for_human: the customer asked for a human)"),
        "{escalated}"
    );
    assert!(
        escalated.contains(
            "handed off by human carol to AI agent \"FAQ bot\" (faq-bot); no reason given"
        ),
        "{escalated}"
    );
    assert!(escalated.contains("failed, carrier timeout"), "{escalated}");

    let open = timeline(log.store(), s.d).unwrap();
    let text = open.to_string();
    assert!(text.contains("status: awaiting-human"), "{text}");
    assert!(
        text.contains("(cause agent_deactivated: the AI agent was deactivated)"),
        "{text}"
    );
    assert!(text.contains("still going on"), "{text}");
    assert!(
        text.contains("still open at the last event of the log"),
        "{text}"
    );
}

#[test]
fn timeline_of_an_unknown_conversation_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    standard_log(&mut log);
    let unknown = "0190f1f0-0000-7000-8000-0000000000ff".parse().unwrap();
    let error = timeline(log.store(), unknown).unwrap_err();
    assert!(matches!(error, AuditError::UnknownConversation(id) if id == unknown));
    assert_eq!(
        error.to_string(),
        "conversation 0190f1f0-0000-7000-8000-0000000000ff is not in the log"
    );
}

#[test]
fn opening_never_creates_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let error = open_data_dir(&missing).unwrap_err();
    assert!(
        matches!(error, AuditError::DataDirMissing { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("does not exist"));
    assert!(!missing.exists());

    // An existing directory without a database is refused, and left empty.
    let error = open_data_dir(dir.path()).unwrap_err();
    assert!(matches!(error, AuditError::NotADataDir { .. }), "{error}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn figures_over_a_log_that_breaks_the_rules_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    let id = log.open("cust-1", "web-chat", Some("alice"));
    log.forge(
        handover_core::StreamId::Conversation(id),
        vec![handover_core::Event::Conversation(
            handover_core::ConversationEvent::Opened {
                customer: customer("cust-1"),
                channel: handover_core::Channel::new("web-chat").unwrap(),
                human: None,
            },
        )],
    );
    let error = stats(log.store()).unwrap_err();
    let AuditError::Unsound(fault) = &error else {
        panic!("expected Unsound, got {error}");
    };
    assert_eq!(fault.location.seq, Some(3));
    assert!(
        error.to_string().contains("conversation is already open"),
        "{error}"
    );
    assert!(
        error.to_string().contains("run `handover audit verify`"),
        "{error}"
    );
}
