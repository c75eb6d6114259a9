//! The export contract: every field, every type, both formats, the conversation filter.

mod common;

use std::collections::{BTreeSet, HashMap};

use common::*;
use handover_audit::{export, AuditError, ExportFormat, ExportOptions};
use serde_json::{json, Value};

fn lines(log: &LogBuilder, options: ExportOptions) -> Vec<Value> {
    let mut out = Vec::new();
    let written = export(log.store(), &options, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with('\n'));
    let parsed: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(parsed.len() as u64, written);
    parsed
}

fn is_rfc3339_micros(text: &str) -> bool {
    // 2026-11-26T00:30:37.123456Z
    let bytes = text.as_bytes();
    bytes.len() == 27
        && bytes[4] == b'-'
        && bytes[10] == b'T'
        && bytes[19] == b'.'
        && bytes[26] == b'Z'
        && text[20..26].bytes().all(|b| b.is_ascii_digit())
}

#[test]
fn json_lines_carry_every_field_in_global_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    let s = standard_log(&mut log);
    let all = lines(&log, ExportOptions::default());
    assert_eq!(all.len() as u64, STANDARD_EVENTS);

    let mut seqs: HashMap<String, u64> = HashMap::new();
    for (expected_position, line) in (1u64..).zip(&all) {
        let object = line.as_object().unwrap();
        let keys: BTreeSet<&str> = object.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "position",
                "stream",
                "conversation_id",
                "seq",
                "recorded_at",
                "type",
                "data",
                "tenant"
            ])
        );
        assert_eq!(line["position"].as_u64(), Some(expected_position));
        let stream = line["stream"].as_str().unwrap().to_owned();
        let seq = seqs.entry(stream.clone()).or_insert(0);
        *seq += 1;
        assert_eq!(line["seq"].as_u64(), Some(*seq), "{line}");
        assert!(
            is_rfc3339_micros(line["recorded_at"].as_str().unwrap()),
            "{line}"
        );
        assert!(line["type"].is_string());
        assert!(line["data"].is_object());
        match stream.strip_prefix("conversation-") {
            Some(id) => assert_eq!(line["conversation_id"].as_str(), Some(id)),
            None => {
                assert!(stream.starts_with("ai-agent-") || stream.starts_with("human-"));
                assert!(line["conversation_id"].is_null());
            }
        }
        // Every stream of the standard log is the default tenant's.
        assert_eq!(line["tenant"], "default", "{line}");
    }

    let types: BTreeSet<&str> = all.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        BTreeSet::from([
            "ai_agent_registered",
            "ai_agent_activated",
            "ai_agent_deactivated",
            "conversation_opened",
            "message_posted",
            "handed_off_to_ai",
            "ai_action_recorded",
            "reclaimed",
            "escalated_to_human",
            "conversation_closed",
            "human_registered",
            "human_presence_changed",
            "human_assigned",
            "awaiting_human",
            "customer_notice",
        ])
    );

    // Each type's data, exactly.
    let first = |kind: &str| {
        all.iter()
            .find(|l| l["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))["data"]
            .clone()
    };
    assert_eq!(
        first("ai_agent_registered"),
        json!({"agent_id": "faq-bot", "name": "FAQ bot", "specialties": ["pricing", "faq"], "tenant": "default"})
    );
    assert_eq!(first("ai_agent_activated"), json!({"agent_id": "faq-bot"}));
    assert_eq!(
        first("ai_agent_deactivated"),
        json!({"agent_id": "billing-bot"})
    );
    let opened = first("conversation_opened");
    assert!(
        opened["at"].as_str().is_some_and(is_rfc3339_micros),
        "{opened}"
    );
    assert_eq!(
        opened,
        json!({"customer_id": "cust-a", "channel": "web-chat", "human_id": null, "tenant": "default", "team": null, "language": null, "at": opened["at"]})
    );
    assert_eq!(
        first("message_posted"),
        json!({"author": {"kind": "customer", "id": "cust-a"}, "text": "How much is the pro plan?", "concerns": [], "by": {"kind": "customer", "id": "cust-a"}, "visible_to_customer": true})
    );
    assert_eq!(
        first("handed_off_to_ai"),
        json!({"agent_id": "faq-bot", "agent_name": "FAQ bot", "by_human": "alice", "reason": "routine pricing question", "by": {"kind": "human", "id": "alice"}})
    );
    assert_eq!(
        first("ai_action_recorded"),
        json!({"agent_id": "faq-bot", "skill": {"name": "lookup_price", "input": "{\"plan\":\"pro\"}", "outcome": {"status": "succeeded", "detail": "49 USD/month"}}, "by": {"kind": "ai", "id": "faq-bot"}})
    );
    assert_eq!(
        first("reclaimed"),
        json!({"agent_id": "faq-bot", "by_human": "bob", "reason": "enterprise lead, sales should answer", "by": {"kind": "human", "id": "bob"}})
    );
    assert_eq!(
        first("escalated_to_human"),
        // Decided by the policy's rule: today's fields, then the rule, its policy's version
        // and when.
        json!({"agent_id": "faq-bot", "reason": "the customer asked for a human", "cause": "customer_asked_for_human", "by": {"kind": "ai", "id": "faq-bot"}, "rule": "asked-for-a-person", "policy_version": test_policy().version().as_str(), "at": "2026-11-26T00:30:15.000000Z"})
    );
    assert_eq!(
        first("conversation_closed"),
        json!({"by": {"kind": "human", "id": "bob"}, "reason": "resolved"})
    );

    assert_eq!(
        first("human_registered"),
        json!({"human_id": "bob", "tenant": "default", "name": "bob", "role": "supervisor", "teams": [], "capacity": 10})
    );
    assert_eq!(
        first("human_presence_changed"),
        json!({"human_id": "bob", "presence": "available"})
    );
    let assigned = first("human_assigned");
    assert!(
        assigned["at"].as_str().is_some_and(is_rfc3339_micros),
        "{assigned}"
    );
    assert_eq!(
        assigned,
        json!({"human_id": "alice", "name": "alice", "team": null, "by": {"kind": "system", "id": "backend"}, "at": assigned["at"]})
    );
    let awaiting = first("awaiting_human");
    assert!(
        awaiting["since"].as_str().is_some_and(is_rfc3339_micros),
        "{awaiting}"
    );
    assert_eq!(
        awaiting,
        json!({"team": null, "cause": "opened", "since": awaiting["since"]})
    );
    assert_eq!(
        first("customer_notice"),
        json!({"kind": "ai_joined", "text": "FAQ bot, an AI assistant, has joined the conversation.", "language": "en", "visible_to_customer": true})
    );

    // Nulls and the other kinds of author.
    let b_lines: Vec<&Value> = all
        .iter()
        .filter(|l| l["conversation_id"] == s.b.to_string().as_str())
        .collect();
    let b_types: Vec<&str> = b_lines
        .iter()
        .map(|l| l["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        b_types,
        [
            "conversation_opened",
            "awaiting_human",
            "customer_notice",
            "message_posted",
            "handed_off_to_ai",
            "customer_notice",
            "ai_action_recorded",
            "message_posted",
            "escalated_to_human",
            "customer_notice",
            "awaiting_human",
            "customer_notice",
            "message_posted",
            "conversation_closed"
        ]
    );
    assert_eq!(b_lines[0]["data"]["human_id"], Value::Null);
    assert_eq!(b_lines[4]["data"]["reason"], Value::Null);
    assert_eq!(b_lines[6]["data"]["skill"]["outcome"]["status"], "failed");
    assert_eq!(b_lines[7]["data"]["concerns"], json!(["human_requested"]));
    assert_eq!(b_lines[10]["data"]["cause"], "customer_asked_for_human");
    assert_eq!(b_lines[13]["data"]["reason"], Value::Null);
    let c_close = all
        .iter()
        .find(|l| {
            l["conversation_id"] == s.c.to_string().as_str() && l["type"] == "conversation_closed"
        })
        .unwrap();
    assert_eq!(
        c_close["data"]["by"],
        json!({"kind": "ai", "id": "billing-bot"})
    );
    let deactivated = all
        .iter()
        .find(|l| l["type"] == "escalated_to_human" && l["data"]["cause"] == "agent_deactivated")
        .unwrap();
    assert_eq!(
        deactivated["data"]["by"],
        json!({"kind": "system", "id": "backend"})
    );
    let causes: BTreeSet<&str> = all
        .iter()
        .filter(|l| l["type"] == "escalated_to_human")
        .map(|l| l["data"]["cause"].as_str().unwrap())
        .collect();
    assert_eq!(
        causes,
        BTreeSet::from([
            "agent_requested",
            "customer_asked_for_human",
            "agent_deactivated"
        ])
    );
}

#[test]
fn the_conversation_filter_keeps_one_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    let s = standard_log(&mut log);
    let only_a = lines(
        &log,
        ExportOptions {
            format: ExportFormat::JsonLines,
            conversation: Some(s.a),
        },
    );
    assert_eq!(only_a.len(), 14);
    assert!(only_a
        .iter()
        .all(|l| l["conversation_id"] == s.a.to_string().as_str()));
    let positions: Vec<u64> = only_a
        .iter()
        .map(|l| l["position"].as_u64().unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    let seqs: Vec<u64> = only_a.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=14).collect::<Vec<_>>());

    // The same lines as in the full export.
    let all = lines(&log, ExportOptions::default());
    let from_all: Vec<&Value> = all
        .iter()
        .filter(|l| l["conversation_id"] == s.a.to_string().as_str())
        .collect();
    assert_eq!(from_all, only_a.iter().collect::<Vec<_>>());

    let unknown = "0190f1f0-0000-7000-8000-0000000000ff".parse().unwrap();
    let error = export(
        log.store(),
        &ExportOptions {
            format: ExportFormat::JsonLines,
            conversation: Some(unknown),
        },
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(matches!(error, AuditError::UnknownConversation(_)));
}

#[test]
fn cloudevents_follow_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    let s = standard_log(&mut log);
    let plain = lines(&log, ExportOptions::default());
    let events = lines(
        &log,
        ExportOptions {
            format: ExportFormat::CloudEvents,
            conversation: None,
        },
    );
    assert_eq!(events.len(), plain.len());
    let mut ids = BTreeSet::new();
    for (event, line) in events.iter().zip(&plain) {
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["datacontenttype"], "application/json");
        assert!(
            ids.insert(event["id"].as_str().unwrap().to_owned()),
            "{event}"
        );
        assert_eq!(
            event["type"].as_str().unwrap(),
            format!("dev.handover.{}", line["type"].as_str().unwrap())
        );
        assert_eq!(event["time"], line["recorded_at"]);
        assert_eq!(event["data"], line["data"]);
        assert_eq!(
            event["source"].as_str().unwrap(),
            format!("/handover/streams/{}", line["stream"].as_str().unwrap())
        );
        assert_eq!(event["stream"], line["stream"]);
        assert_eq!(
            event["position"].as_str().unwrap(),
            line["position"].as_u64().unwrap().to_string()
        );
        assert_eq!(
            event["seq"].as_str().unwrap(),
            line["seq"].as_u64().unwrap().to_string()
        );
        match line["conversation_id"].as_str() {
            Some(id) => assert_eq!(event["subject"], id),
            None => assert!(event.get("subject").is_none()),
        }
        // Extension names: lower-case letters and digits, at most 20 characters.
        for name in event.as_object().unwrap().keys() {
            assert!(
                name.len() <= 20
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{name}"
            );
        }
    }
    assert!(events
        .iter()
        .any(|e| e["subject"] == s.a.to_string().as_str()
            && e["type"] == "dev.handover.handed_off_to_ai"));
}

#[test]
fn event_json_is_the_export_line_of_each_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    standard_log(&mut log);
    let exported = lines(&log, ExportOptions::default());
    let records: Vec<_> = log
        .store()
        .iter_all(1)
        .map(|record| record.unwrap())
        .collect();
    assert_eq!(records.len(), exported.len());
    for (record, line) in records.iter().zip(&exported) {
        assert_eq!(
            &handover_audit::event_json_in(record, line["tenant"].as_str()).unwrap(),
            line
        );
        // Alone, a record tells its tenant only if it names it.
        let alone = handover_audit::event_json(record).unwrap();
        let names_tenant = matches!(
            line["type"].as_str().unwrap(),
            "conversation_opened" | "ai_agent_registered" | "human_registered"
        );
        assert_eq!(alone["tenant"] == line["tenant"], names_tenant, "{line}");
    }
}
