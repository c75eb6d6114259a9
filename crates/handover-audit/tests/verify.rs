//! Verification: a sound log passes; damage, index disagreements and rule-breaking events are
//! reported at their stream, seq and position.

mod common;

use std::path::Path;

use common::*;
use handover_audit::{verify_dir, AuditError, Fault, FaultKind, VerifyReport};
use handover_core::*;
use handover_store::StoreError;

fn fault_of(dir: &Path) -> Fault {
    match verify_dir(dir).unwrap() {
        VerifyReport::Faulty(fault) => fault,
        sound => panic!("expected a fault, got {sound:?}"),
    }
}

/// Opens the directory's sled tree directly, as a tool that bypasses the store would.
fn with_raw_log(dir: &Path, change: impl FnOnce(&sled::Tree)) {
    let db = open_raw(dir);
    let tree = db.open_tree("log").unwrap();
    change(&tree);
    tree.flush().unwrap();
}

fn open_raw(dir: &Path) -> sled::Db {
    // A store dropped a moment ago may still hold the lock; wait as `SledStore::open` does.
    handover_sled::SledStore::open_raw(dir, std::time::Duration::from_secs(5))
        .expect("sled opens the directory")
}

fn record_key(id: ConversationId, seq: u64) -> Vec<u8> {
    let mut key = vec![b's', b'c'];
    key.extend_from_slice(id.as_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The key of the global index chunk that starts at `position`. The builder awaits each append
/// before the next, so every append is a group of its own and writes a chunk of its own.
fn global_key(position: u64) -> Vec<u8> {
    let mut key = vec![b'G'];
    key.extend_from_slice(&position.to_be_bytes());
    key
}

/// A log with one active agent and one conversation handed off to it and reclaimed.
fn reclaimed_conversation(log: &mut LogBuilder) -> ConversationId {
    log.register("faq-bot", "FAQ bot", &[]);
    log.activate("faq-bot");
    let id = log.open("cust-1", "web-chat", Some("alice"));
    log.hand_off(id, "alice", "faq-bot", Some("simple question"));
    log.ai_says(id, "Hello!");
    log.reclaim(id, "alice", Some("the customer is a VIP"));
    id
}

fn conversation_event(event: ConversationEvent) -> Vec<Event> {
    vec![Event::Conversation(event)]
}

#[test]
fn a_sound_log_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    standard_log(&mut log);
    let dir_path = log.finish();
    assert_eq!(
        verify_dir(&dir_path).unwrap(),
        VerifyReport::Sound {
            events: STANDARD_EVENTS,
            streams: 11
        }
    );
    // Verification reads only: a second run sees the same.
    assert!(verify_dir(&dir_path).unwrap().is_sound());
}

#[test]
fn an_empty_log_is_sound() {
    let dir = tempfile::tempdir().unwrap();
    let path = LogBuilder::new(dir.path()).finish();
    assert_eq!(
        verify_dir(&path).unwrap(),
        VerifyReport::Sound {
            events: 0,
            streams: 0
        }
    );
}

#[test]
fn an_ai_message_after_a_reclaim_is_reported_at_its_stream_and_seq() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    let id = reclaimed_conversation(&mut log);
    // Checksum-valid, but no decide would have let it through.
    log.forge(
        StreamId::Conversation(id),
        conversation_event(ConversationEvent::MessagePosted {
            author: Author::Ai(agent("faq-bot")),
            text: text("A late reply"),
            concerns: vec![],
        }),
    );
    let path = log.finish();
    let fault = fault_of(&path);
    assert_eq!(fault.kind, FaultKind::Rule);
    assert_eq!(fault.location.stream, Some(StreamId::Conversation(id)));
    assert_eq!(fault.location.seq, Some(9));
    assert_eq!(fault.location.position, Some(13));
    assert_eq!(
        fault.description,
        "message_posted by AI agent faq-bot breaks a rule: AI agent faq-bot is not assigned to this conversation"
    );
    assert_eq!(
        fault.to_string(),
        format!(
            "rule fault at stream conversation-{id} seq 9 (position 13): {}",
            fault.description
        )
    );
}

#[test]
fn handoffs_must_name_a_registered_active_agent_under_its_name() {
    let handoff = |agent_id: &str, name: &str| {
        conversation_event(ConversationEvent::HandedOffToAi {
            agent_id: agent(agent_id),
            agent_name: AgentName::new(name).unwrap(),
            by_human: human("alice"),
            reason: None,
        })
    };
    for (forged, expected) in [
        (
            handoff("ghost-bot", "Ghost"),
            "handed_off_to_ai names AI agent ghost-bot, which was not registered at that point",
        ),
        (
            handoff("sleepy-bot", "Sleepy"),
            "handed_off_to_ai names AI agent sleepy-bot, which was not active at that point",
        ),
        (
            handoff("faq-bot", "Impostor"),
            "handed_off_to_ai calls AI agent faq-bot \"Impostor\", but it was registered as \"FAQ bot\"",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogBuilder::new(dir.path());
        log.register("faq-bot", "FAQ bot", &[]);
        log.activate("faq-bot");
        log.register("sleepy-bot", "Sleepy", &[]);
        let id = log.open("cust-1", "web-chat", Some("alice"));
        log.forge(StreamId::Conversation(id), forged);
        let fault = fault_of(&log.finish());
        assert_eq!(fault.kind, FaultKind::Rule);
        assert_eq!(fault.location.seq, Some(3));
        assert_eq!(fault.location.position, Some(8));
        assert_eq!(fault.description, expected);
    }
}

#[test]
fn a_handoff_after_a_concern_is_no_fault_of_the_log() {
    // Whether a concern blocks a handoff is the configurable policy's question, asked by
    // `decide` (a supervisor may override it); the log only records the outcome.
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    log.register("faq-bot", "FAQ bot", &[]);
    log.activate("faq-bot");
    let id = log.open("cust-1", "web-chat", Some("alice"));
    log.customer_says(
        id,
        "cust-1",
        "This is unacceptable, I want to file a complaint",
    );
    log.forge(
        StreamId::Conversation(id),
        conversation_event(ConversationEvent::HandedOffToAi {
            agent_id: agent("faq-bot"),
            agent_name: AgentName::new("FAQ bot").unwrap(),
            by_human: human("alice"),
            reason: None,
        }),
    );
    match verify_dir(&log.finish()).unwrap() {
        VerifyReport::Sound { .. } => {}
        faulty => panic!("expected a sound log, got {faulty:?}"),
    }
}

#[test]
fn a_request_for_a_human_need_not_be_escalated() {
    // A policy may have no rule for it: the AI agent answers on.
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    log.register("faq-bot", "FAQ bot", &[]);
    log.activate("faq-bot");
    let id = log.open("cust-1", "web-chat", Some("alice"));
    log.hand_off(id, "alice", "faq-bot", None);
    log.forge(
        StreamId::Conversation(id),
        vec![
            Event::Conversation(ConversationEvent::MessagePosted {
                author: Author::Customer(customer("cust-1")),
                text: text("talk to a human"),
                concerns: vec![Concern::HumanRequested],
            }),
            Event::Conversation(ConversationEvent::MessagePosted {
                author: Author::Ai(agent("faq-bot")),
                text: text("I can help!"),
                concerns: vec![],
            }),
        ],
    );
    match verify_dir(&log.finish()).unwrap() {
        VerifyReport::Sound { .. } => {}
        faulty => panic!("expected a sound log, got {faulty:?}"),
    }
}

#[test]
fn an_escalation_for_a_customer_request_must_follow_that_request() {
    use handover_core::rules::{PolicyVersion, RuleName};
    let by_rule = ConversationEvent::EscalatedByRule {
        agent_id: agent("faq-bot"),
        reason: Reason::new("the customer asked for a human").unwrap(),
        cause: EscalationCause::CustomerAskedForHuman,
        rule: RuleName::new("asked-for-a-person").unwrap(),
        policy_version: PolicyVersion::new("0123456789abcdef").unwrap(),
        at: Timestamp(0),
    };
    let legacy = ConversationEvent::EscalatedToHuman {
        agent_id: agent("faq-bot"),
        reason: Reason::new("the customer asked for a human").unwrap(),
        cause: EscalationCause::CustomerAskedForHuman,
    };
    for escalation in [by_rule.clone(), legacy] {
        // After a message that asked for nothing: a fault.
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogBuilder::new(dir.path());
        log.register("faq-bot", "FAQ bot", &[]);
        log.activate("faq-bot");
        let id = log.open("cust-1", "web-chat", Some("alice"));
        log.hand_off(id, "alice", "faq-bot", None);
        log.forge(
            StreamId::Conversation(id),
            vec![
                Event::Conversation(ConversationEvent::MessagePosted {
                    author: Author::Customer(customer("cust-1")),
                    text: text("where is my parcel?"),
                    concerns: vec![],
                }),
                Event::Conversation(escalation),
            ],
        );
        let fault = fault_of(&log.finish());
        assert_eq!(fault.kind, FaultKind::Rule);
        assert_eq!(fault.location.seq, Some(6));
        assert!(
            fault
                .description
                .contains("does not follow a customer's request for a human"),
            "{fault}"
        );
    }
    // Right after the request: sound.
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    log.register("faq-bot", "FAQ bot", &[]);
    log.activate("faq-bot");
    let id = log.open("cust-1", "web-chat", Some("alice"));
    log.hand_off(id, "alice", "faq-bot", None);
    log.forge(
        StreamId::Conversation(id),
        vec![
            Event::Conversation(ConversationEvent::MessagePosted {
                author: Author::Customer(customer("cust-1")),
                text: text("talk to a human"),
                concerns: vec![Concern::HumanRequested],
            }),
            Event::Conversation(by_rule),
        ],
    );
    match verify_dir(&log.finish()).unwrap() {
        VerifyReport::Sound { .. } => {}
        faulty => panic!("expected a sound log, got {faulty:?}"),
    }
}

#[test]
fn nothing_may_follow_the_close() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    let id = log.open("cust-1", "web-chat", Some("alice"));
    log.close(id, Participant::Human(human("alice")), None);
    log.forge(
        StreamId::Conversation(id),
        conversation_event(ConversationEvent::MessagePosted {
            author: Author::Customer(customer("cust-1")),
            text: text("hello?"),
            concerns: vec![],
        }),
    );
    let fault = fault_of(&log.finish());
    assert_eq!(fault.location.seq, Some(4));
    assert!(
        fault.description.contains("conversation is closed"),
        "{fault}"
    );
}

#[test]
fn an_agent_event_must_name_its_own_stream_agent() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    log.register("faq-bot", "FAQ bot", &[]);
    log.register("other-bot", "Other", &[]);
    log.forge(
        StreamId::AiAgent(agent("faq-bot")),
        vec![Event::AiAgent(AiAgentEvent::Activated {
            agent_id: agent("other-bot"),
        })],
    );
    let fault = fault_of(&log.finish());
    assert_eq!(
        fault.location.stream,
        Some(StreamId::AiAgent(agent("faq-bot")))
    );
    assert_eq!(fault.location.seq, Some(2));
    assert!(
        fault.description.contains("names AI agent other-bot"),
        "{fault}"
    );
}

#[test]
fn a_flipped_bit_is_a_damaged_record_at_its_stream_and_seq() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    let id = reclaimed_conversation(&mut log);
    let path = log.finish();
    with_raw_log(&path, |tree| {
        let key = record_key(id, 3);
        let mut value = tree.get(&key).unwrap().unwrap().to_vec();
        let middle = value.len() / 2;
        value[middle] ^= 0x10;
        tree.insert(key, value).unwrap();
    });
    let fault = fault_of(&path);
    assert_eq!(fault.kind, FaultKind::Damaged);
    assert_eq!(fault.location.stream, Some(StreamId::Conversation(id)));
    assert_eq!(fault.location.seq, Some(3));
    assert_eq!(fault.location.position, Some(7));
    assert_eq!(fault.description, "checksum mismatch");
}

#[test]
fn a_stream_record_missing_from_the_index_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    let id = reclaimed_conversation(&mut log);
    let path = log.finish();
    // The last append's index entry is lost; its record stays.
    with_raw_log(&path, |tree| {
        tree.remove(global_key(10)).unwrap().unwrap();
    });
    let fault = fault_of(&path);
    assert_eq!(fault.kind, FaultKind::Index);
    assert_eq!(fault.location.stream, Some(StreamId::Conversation(id)));
    assert_eq!(fault.location.seq, Some(6));
    assert_eq!(fault.location.position, Some(10));
    assert!(
        fault
            .description
            .contains("missing from the global index, which holds only seqs 1 to 5"),
        "{fault}"
    );
}

#[test]
fn a_gap_in_the_index_is_an_order_fault() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    reclaimed_conversation(&mut log);
    let path = log.finish();
    with_raw_log(&path, |tree| {
        tree.remove(global_key(4)).unwrap().unwrap();
    });
    let fault = fault_of(&path);
    assert_eq!(fault.kind, FaultKind::Order);
    assert_eq!(fault.location.position, Some(4));
    assert!(fault.description.contains("skips to position 5"), "{fault}");
}

#[test]
fn a_record_copied_to_an_unindexed_stream_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    let id = reclaimed_conversation(&mut log);
    let path = log.finish();
    let stranger = ConversationId::from_uuid(uuid_like(0xff));
    with_raw_log(&path, |tree| {
        let value = tree.get(record_key(id, 1)).unwrap().unwrap();
        tree.insert(record_key(stranger, 1), value).unwrap();
    });
    let fault = fault_of(&path);
    assert_eq!(fault.kind, FaultKind::Damaged);
    assert_eq!(
        fault.location.stream,
        Some(StreamId::Conversation(stranger))
    );
    assert_eq!(fault.location.seq, Some(1));
    assert!(
        fault.description.contains("moved from another place"),
        "{fault}"
    );
}

fn uuid_like(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(0x0190_f1f0_0000_7000_8000_0000_0000_0000 + n)
}

#[test]
fn a_directory_in_use_or_missing_cannot_be_verified() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogBuilder::new(dir.path());
    let error = verify_dir(dir.path()).unwrap_err();
    assert!(
        matches!(error, AuditError::Store(StoreError::InUse { .. })),
        "{error}"
    );
    assert!(error.to_string().contains("in use by another process"));
    drop(log);

    let missing = dir.path().join("missing");
    assert!(matches!(
        verify_dir(&missing).unwrap_err(),
        AuditError::DataDirMissing { .. }
    ));
    assert!(!missing.exists());
}

#[test]
fn only_customer_messages_carry_concerns() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    let id = log.open("cust-1", "web-chat", Some("alice"));
    log.forge(
        StreamId::Conversation(id),
        conversation_event(ConversationEvent::MessagePosted {
            author: Author::Human(human("alice")),
            text: text("hello"),
            concerns: vec![Concern::Complaint],
        }),
    );
    let fault = fault_of(&log.finish());
    assert_eq!(fault.kind, FaultKind::Rule);
    assert_eq!(fault.location.seq, Some(3));
    assert!(fault.description.contains("carries concerns"), "{fault}");
}

#[test]
fn only_a_supervisor_overrides_the_policy() {
    use handover_core::rules::{PolicyVersion, RuleName};
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    log.register("faq-bot", "FAQ bot", &[]);
    log.activate("faq-bot");
    let id = log.open("cust-1", "web-chat", Some("alice"));
    log.forge(
        StreamId::Conversation(id),
        vec![
            Event::Conversation(ConversationEvent::PolicyOverridden {
                by: human("alice"),
                rule: RuleName::new("loop-guard").unwrap(),
                policy_version: PolicyVersion::new("0123456789abcdef").unwrap(),
                refusal: Reason::new("too many handoffs").unwrap(),
                at: Timestamp(0),
            }),
            Event::Conversation(ConversationEvent::HandedOffToAi {
                agent_id: agent("faq-bot"),
                agent_name: AgentName::new("FAQ bot").unwrap(),
                by_human: human("alice"),
                reason: None,
            }),
        ],
    );
    let fault = fault_of(&log.finish());
    assert_eq!(fault.kind, FaultKind::Authority, "{fault}");
    assert!(
        fault
            .description
            .contains("policy_overridden by human alice")
            && fault.description.contains("not a supervisor"),
        "{fault}"
    );
}
