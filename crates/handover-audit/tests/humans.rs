//! Humans, tenants, queues and deadlines in the audit: their export, the faults verification
//! finds in forged logs (and not in sound ones), their figures and their story.

mod common;

use std::collections::BTreeSet;

use common::*;
use handover_audit::{
    export, stats, timeline, verify_dir, ExportFormat, ExportOptions, FaultKind, Replay,
    VerifyReport,
};
use handover_core::*;
use serde_json::{json, Value};

/// The conversations of [`acme_log`].
struct Acme {
    /// Waits in billing's queue past both SLA thresholds, given to ann by the router, handed to
    /// acme-bot, escalated when it does not reply in time, accepted by ann, noted, flagged and
    /// unflagged, transferred to zed, closed by zed.
    x: ConversationId,
    /// Opened for ann, handed to acme-bot, closed by it.
    y: ConversationId,
    /// Assigned to zed by sam, transferred by zed to billing's queue, accepted by ann; open.
    w: ConversationId,
}

/// A log of tenant acme: ann (agent of billing, capacity 2), zed (agent), sam (supervisor),
/// acme-bot, and the three conversations of [`Acme`].
fn acme_log(log: &mut LogBuilder) -> Acme {
    log.register_in("acme-bot", "acme", "Acme bot");
    log.activate("acme-bot");
    log.register_human("ann", "acme", Role::Agent, &["billing"], 2);
    log.register_human("zed", "acme", Role::Agent, &["billing"], 5);
    log.register_human("sam", "acme", Role::Supervisor, &[], 5);

    let x = log.start("acme", "cust-x", Some("billing"), None);
    log.advance(70_000);
    log.tick(x);
    log.advance(240_000);
    log.tick(x);
    log.assign(x, Participant::System(SystemActor::Router), "ann");
    log.hand_off(x, "ann", "acme-bot", Some("routine"));
    log.customer_says(x, "cust-x", "Where is my invoice?");
    log.advance(31_000);
    log.tick(x);
    log.advance(4_000);
    log.accept(x, "ann");
    log.command(
        x,
        ConversationCommand::Whisper {
            by: human("ann"),
            to: NoteAudience::Staff,
            text: text("VIP customer"),
        },
    );
    log.command(
        x,
        ConversationCommand::RaiseFlag {
            by: Participant::Human(human("ann")),
        },
    );
    log.command(x, ConversationCommand::LowerFlag { by: human("sam") });
    log.say(x, Participant::Human(human("ann")), "Passing you to Zed.");
    log.command(
        x,
        ConversationCommand::Transfer {
            by: human("ann"),
            to: TransferTarget::Human(human("zed")),
            reason: Reason::new("invoices are Zed's").unwrap(),
        },
    );
    log.close(x, Participant::Human(human("zed")), Some("sent"));

    let y = log.start("acme", "cust-y", None, Some("ann"));
    log.hand_off(y, "ann", "acme-bot", None);
    let by = Participant::Ai(log.assignment(y));
    log.close(y, by, Some("answered"));

    let w = log.start("acme", "cust-w", Some("billing"), None);
    log.assign(w, Participant::Human(human("sam")), "zed");
    log.command(
        w,
        ConversationCommand::Transfer {
            by: human("zed"),
            to: TransferTarget::Team(TeamId::new("billing").unwrap()),
            reason: Reason::new("back to the queue").unwrap(),
        },
    );
    log.accept(w, "ann");
    Acme { x, y, w }
}

fn export_lines(log: &LogBuilder, format: ExportFormat) -> Vec<Value> {
    let mut out = Vec::new();
    export(
        log.store(),
        &ExportOptions {
            format,
            conversation: None,
        },
        &mut out,
    )
    .unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn rfc3339(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|t| t.len() == 27 && t.ends_with('Z') && t.as_bytes()[10] == b'T')
}

#[test]
fn the_acme_log_is_sound_and_replays_alike_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    acme_log(&mut log);
    let replay = Replay::from_store(log.store()).unwrap();
    assert_eq!(replay.directory().all().count(), 3);
    // ann handles w; zed's x is closed.
    assert_eq!(replay.loads().of(&human("ann")), 1);
    assert_eq!(replay.loads().of(&human("zed")), 0);
    let listing = handover_audit::conversations(log.store()).unwrap();
    assert!(listing.iter().all(|c| c.tenant == "acme"));
    let waiting = log.start("acme", "cust-v", Some("billing"), None);
    let listing = handover_audit::conversations(log.store()).unwrap();
    let waiting = listing.iter().find(|c| c.id == waiting).unwrap();
    assert_eq!(waiting.status, "awaiting-human");
    assert_eq!(waiting.human_id, None);
    let path = log.finish();
    assert!(verify_dir(&path).unwrap().is_sound());
}

#[test]
fn every_new_type_is_exported_with_its_data_and_tenant() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    let acme = acme_log(&mut log);
    let all = export_lines(&log, ExportFormat::JsonLines);
    assert!(
        all.iter().all(|l| l["tenant"] == "acme"),
        "every stream is acme's"
    );
    let types: BTreeSet<&str> = all.iter().map(|l| l["type"].as_str().unwrap()).collect();
    for expected in [
        "human_registered",
        "human_presence_changed",
        "awaiting_human",
        "human_assigned",
        "transferred",
        "sla_warning",
        "sla_breached",
        "ai_reply_overdue",
        "customer_notice",
        "internal_note",
        "flag_raised",
        "flag_lowered",
    ] {
        assert!(types.contains(expected), "no {expected}");
    }
    let of = |kind: &str, conversation: ConversationId| -> Vec<Value> {
        all.iter()
            .filter(|l| {
                l["type"] == kind && l["conversation_id"] == conversation.to_string().as_str()
            })
            .map(|l| l["data"].clone())
            .collect()
    };
    let first = |kind: &str| {
        all.iter()
            .find(|l| l["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
            .clone()
    };

    let registered = first("human_registered");
    assert_eq!(registered["stream"], "human-ann");
    assert_eq!(registered["conversation_id"], Value::Null);
    assert_eq!(
        registered["data"],
        json!({"human_id": "ann", "tenant": "acme", "name": "ann", "role": "agent", "teams": ["billing"], "capacity": 2})
    );
    assert_eq!(
        first("human_presence_changed")["data"],
        json!({"human_id": "ann", "presence": "available"})
    );
    assert_eq!(
        first("ai_agent_registered")["data"],
        json!({"agent_id": "acme-bot", "name": "Acme bot", "specialties": [], "tenant": "acme"})
    );

    let opened = &of("conversation_opened", acme.x)[0];
    assert_eq!(opened["tenant"], "acme");
    assert_eq!(opened["team"], "billing");
    assert_eq!(opened["language"], "en");
    assert!(rfc3339(&opened["at"]), "{opened}");

    let waits = of("awaiting_human", acme.x);
    assert_eq!(waits.len(), 2);
    assert_eq!(waits[0]["team"], "billing");
    assert_eq!(waits[0]["cause"], "opened");
    assert!(rfc3339(&waits[0]["since"]));
    assert_eq!(waits[1]["cause"], "ai_timeout");
    assert_eq!(
        waits[0]
            .as_object()
            .unwrap()
            .keys()
            .collect::<BTreeSet<_>>(),
        BTreeSet::from([&"team".to_owned(), &"cause".to_owned(), &"since".to_owned()])
    );

    let warning = &of("sla_warning", acme.x)[0];
    assert_eq!(warning["team"], "billing");
    assert_eq!(warning["waited_ms"], 71_000);
    assert_eq!(warning["threshold_ms"], 60_000);
    assert_eq!(warning["by"], json!({"kind": "system", "id": "clock"}));
    assert!(rfc3339(&warning["at"]));
    let breach = &of("sla_breached", acme.x)[0];
    assert_eq!(breach["waited_ms"], 312_000);
    assert_eq!(breach["threshold_ms"], 300_000);

    let assigned = of("human_assigned", acme.x);
    assert_eq!(assigned[0]["human_id"], "ann");
    assert_eq!(assigned[0]["name"], "ann");
    assert_eq!(assigned[0]["team"], "billing");
    assert_eq!(assigned[0]["by"], json!({"kind": "system", "id": "router"}));
    assert!(rfc3339(&assigned[0]["at"]));
    assert_eq!(assigned[1]["by"], json!({"kind": "human", "id": "ann"}));
    assert_eq!(assigned[2]["human_id"], "zed");

    let overdue = &of("ai_reply_overdue", acme.x)[0];
    assert_eq!(overdue["agent_id"], "acme-bot");
    assert_eq!(overdue["waited_ms"], 32_000);
    assert_eq!(overdue["deadline_ms"], 30_000);
    assert_eq!(overdue["by"], json!({"kind": "system", "id": "clock"}));
    let escalated = &of("escalated_to_human", acme.x)[0];
    assert_eq!(escalated["cause"], "ai_timeout");
    assert_eq!(escalated["by"], json!({"kind": "system", "id": "clock"}));

    let notices = of("customer_notice", acme.x);
    let kinds: BTreeSet<&str> = notices
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ai_joined",
            "ai_left",
            "waiting_for_person",
            "person_joined"
        ])
    );
    assert!(notices
        .iter()
        .all(|n| n["visible_to_customer"] == true && n["language"] == "en"));

    let note = &of("internal_note", acme.x)[0];
    assert!(rfc3339(&note["at"]));
    assert_eq!(
        note,
        &json!({"to": "staff", "text": "VIP customer", "by": {"kind": "human", "id": "ann"}, "at": note["at"], "visible_to_customer": false})
    );
    let raised = &of("flag_raised", acme.x)[0];
    assert_eq!(raised["by"], json!({"kind": "human", "id": "ann"}));
    assert!(rfc3339(&raised["at"]));
    assert_eq!(
        of("flag_lowered", acme.x)[0]["by"],
        json!({"kind": "human", "id": "sam"})
    );

    let transfer = &of("transferred", acme.x)[0];
    assert!(rfc3339(&transfer["at"]));
    assert_eq!(
        transfer,
        &json!({"to_human": "zed", "to_team": null, "reason": "invoices are Zed's", "by": {"kind": "human", "id": "ann"}, "at": transfer["at"]})
    );
    let to_team = &of("transferred", acme.w)[0];
    assert_eq!(to_team["to_human"], Value::Null);
    assert_eq!(to_team["to_team"], "billing");
    assert_eq!(of("awaiting_human", acme.w)[1]["cause"], "transferred");

    let message = all
        .iter()
        .find(|l| l["type"] == "message_posted" && l["data"]["by"]["kind"] == "human")
        .unwrap();
    assert_eq!(message["data"]["visible_to_customer"], true);
    assert_eq!(message["data"]["author"], message["data"]["by"]);
    assert_eq!(
        of("conversation_closed", acme.y)[0]["by"],
        json!({"kind": "ai", "id": "acme-bot"})
    );

    // CloudEvents carry the same data and the tenant as an extension attribute.
    let events = export_lines(&log, ExportFormat::CloudEvents);
    for (event, line) in events.iter().zip(&all) {
        assert_eq!(event["data"], line["data"]);
        assert_eq!(event["tenant"], "acme");
    }
    assert!(events
        .iter()
        .any(|e| e["source"] == "/handover/streams/human-ann"));
}

#[test]
fn streams_of_several_tenants_are_exported_each_with_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    log.register_human("ann", "acme", Role::Agent, &[], 2);
    log.register_human("gus", "globex", Role::Agent, &[], 2);
    let a = log.start("acme", "cust-a", None, Some("ann"));
    let g = log.start("globex", "cust-g", None, Some("gus"));
    log.customer_says(a, "cust-a", "Hi from acme");
    log.customer_says(g, "cust-g", "Hi from globex");
    for line in export_lines(&log, ExportFormat::JsonLines) {
        let stream = line["stream"].as_str().unwrap();
        let expected = if stream == "human-ann" || stream == format!("conversation-{a}") {
            "acme"
        } else {
            "globex"
        };
        assert_eq!(line["tenant"], expected, "{line}");
    }
    // Each tenant's humans on their own conversations: sound.
    let path = log.finish();
    assert!(verify_dir(&path).unwrap().is_sound());
}

#[test]
fn a_human_acting_while_offline_is_an_authority_fault() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    let id = one_assigned(&mut log);
    log.presence("ann", Presence::Away);
    // Away, ann still handles her conversation: sound.
    log.say(id, Participant::Human(human("ann")), "Still here");
    log.presence("ann", Presence::Offline);
    let stream = forge(
        &mut log,
        id,
        ConversationEvent::MessagePosted {
            author: Author::Human(human("ann")),
            text: text("Signed out, yet writing"),
            concerns: vec![],
        },
    );
    assert_fault(
        log,
        FaultKind::Authority,
        stream,
        "message_posted by human ann, who was offline at that point",
    );
}

#[test]
fn taking_from_a_team_queue_without_being_in_the_team_is_an_authority_fault() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    log.register_human("ann", "acme", Role::Agent, &["billing"], 2);
    log.register_human("zed", "acme", Role::Agent, &["sales"], 2);
    // ann, of billing, accepts from billing's queue: sound.
    let sound = log.start("acme", "cust-1", Some("billing"), None);
    log.accept(sound, "ann");
    let id = log.start("acme", "cust-2", Some("billing"), None);
    let stream = forge(
        &mut log,
        id,
        ConversationEvent::HumanAssigned {
            human_id: human("zed"),
            name: AgentName::new("zed").unwrap(),
            team: Some(TeamId::new("billing").unwrap()),
            by: Author::Human(human("zed")),
            at: Timestamp::from_millis(1_795_653_100_000),
        },
    );
    assert_fault(
        log,
        FaultKind::Authority,
        stream,
        "human_assigned by human zed, who took it from the queue of team billing without being in that team",
    );
}

#[test]
fn a_conversation_given_to_someone_offline_is_an_authority_fault() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    log.register_human("ann", "acme", Role::Agent, &[], 2);
    log.presence("ann", Presence::Offline);
    let id = log.start("acme", "cust-1", None, None);
    let stream = forge(
        &mut log,
        id,
        ConversationEvent::HumanAssigned {
            human_id: human("ann"),
            name: AgentName::new("ann").unwrap(),
            team: None,
            by: Author::System(SystemActor::Backend),
            at: Timestamp::from_millis(1_795_653_100_000),
        },
    );
    assert_fault(
        log,
        FaultKind::Authority,
        stream,
        "gives the conversation to human ann, who was offline at that point",
    );
}

#[test]
fn an_escalation_does_not_count_in_the_load_of_the_human_who_handed_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    log.register_in("acme-bot", "acme", "Acme bot");
    log.activate("acme-bot");
    log.register_human("ann", "acme", Role::Agent, &[], 2);
    let handed = log.start("acme", "cust-1", None, Some("ann"));
    log.hand_off(handed, "ann", "acme-bot", None);
    log.start("acme", "cust-2", None, Some("ann"));
    log.escalate(handed, "out of my depth", EscalationCause::AgentRequested);
    let figures = stats(log.store()).unwrap();
    assert_eq!(figures.human_load[0].max_concurrent, 1);
    assert_eq!(figures.human_load[0].assignments, 2);
    let replay = Replay::from_store(log.store()).unwrap();
    assert_eq!(replay.loads().of(&human("ann")), 1);
    // The escalation's wait, still unanswered, is not counted.
    assert_eq!(figures.escalation_to_human_ms.count, 0);
}

/// Verifies the log, expecting a fault of `kind` at its last event, the forged one, whose
/// description holds `detail`.
#[track_caller]
fn assert_fault(log: LogBuilder, kind: FaultKind, stream: StreamId, detail: &str) {
    let last = log.store().iter_all(1).map(|r| r.unwrap()).last().unwrap();
    let path = log.finish();
    let VerifyReport::Faulty(fault) = verify_dir(&path).unwrap() else {
        panic!("expected a {} fault", kind.as_str());
    };
    assert_eq!(fault.kind, kind, "{fault}");
    assert_eq!(fault.location.stream, Some(stream), "{fault}");
    assert_eq!(fault.location.seq, Some(last.seq), "{fault}");
    assert_eq!(fault.location.position, Some(last.position), "{fault}");
    assert!(fault.description.contains(detail), "{fault}");
    assert!(fault.to_string().starts_with(kind.as_str()), "{fault}");
}

fn forge(log: &mut LogBuilder, id: ConversationId, event: ConversationEvent) -> StreamId {
    let stream = StreamId::Conversation(id);
    log.forge(stream.clone(), vec![Event::Conversation(event)]);
    stream
}

/// ann (agent) handles a conversation of acme; zed (agent) and sam (supervisor) do not.
fn one_assigned(log: &mut LogBuilder) -> ConversationId {
    log.register_human("ann", "acme", Role::Agent, &[], 1);
    log.register_human("zed", "acme", Role::Agent, &[], 1);
    log.register_human("sam", "acme", Role::Supervisor, &[], 1);
    log.start("acme", "cust-1", None, Some("ann"))
}

#[test]
fn a_message_by_a_human_not_assigned_is_an_authority_fault() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    let id = one_assigned(&mut log);
    // The assigned human and a supervisor may write: sound.
    log.say(id, Participant::Human(human("ann")), "Hello");
    log.say(id, Participant::Human(human("sam")), "Supervisor here");
    let stream = forge(
        &mut log,
        id,
        ConversationEvent::MessagePosted {
            author: Author::Human(human("zed")),
            text: text("Not mine, but hi"),
            concerns: vec![],
        },
    );
    assert_fault(
        log,
        FaultKind::Authority,
        stream,
        "message_posted by human zed, who was not the conversation's assigned human: its assigned human was ann",
    );
}

#[test]
fn a_message_by_an_unregistered_human_is_an_authority_fault() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    let id = one_assigned(&mut log);
    let stream = forge(
        &mut log,
        id,
        ConversationEvent::MessagePosted {
            author: Author::Human(human("ghost")),
            text: text("boo"),
            concerns: vec![],
        },
    );
    assert_fault(log, FaultKind::Authority, stream, "not registered");
}

fn router_gives(to: &str) -> ConversationEvent {
    ConversationEvent::HumanAssigned {
        human_id: human(to),
        name: AgentName::new(to).unwrap(),
        team: None,
        by: Author::System(SystemActor::Router),
        at: Timestamp::from_millis(1_795_653_100_000),
    }
}

#[test]
fn the_router_giving_to_someone_away_is_a_capacity_fault() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    log.register_human("ann", "acme", Role::Agent, &[], 3);
    log.presence("ann", Presence::Away);
    let id = log.start("acme", "cust-1", None, None);
    let stream = forge(&mut log, id, router_gives("ann"));
    assert_fault(
        log,
        FaultKind::Capacity,
        stream,
        "who was away at that point",
    );
}

#[test]
fn the_router_giving_to_someone_at_capacity_is_a_capacity_fault() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    log.register_human("ann", "acme", Role::Agent, &[], 2);
    // Two conversations the router gives ann, each below her capacity: sound.
    let first = log.start("acme", "cust-1", None, None);
    log.assign(first, Participant::System(SystemActor::Router), "ann");
    let second = log.start("acme", "cust-2", None, None);
    log.assign(second, Participant::System(SystemActor::Router), "ann");
    // A closed conversation no longer counts: a third after the first closes is sound too.
    log.close(first, Participant::Human(human("ann")), None);
    let third = log.start("acme", "cust-3", None, None);
    log.assign(third, Participant::System(SystemActor::Router), "ann");
    {
        let replay = Replay::from_store(log.store()).unwrap();
        assert_eq!(replay.loads().of(&human("ann")), 2);
        let figures = stats(log.store()).unwrap();
        assert_eq!(figures.human_load[0].assignments, 3);
        assert_eq!(figures.human_load[0].max_concurrent, 2);
    }
    let fourth = log.start("acme", "cust-4", None, None);
    let stream = forge(&mut log, fourth, router_gives("ann"));
    assert_fault(
        log,
        FaultKind::Capacity,
        stream,
        "who already handled 2 open conversations, their capacity being 2",
    );
}

#[test]
fn sla_figures_below_the_threshold_or_off_the_wait_are_sla_faults() {
    for (waited_ms, threshold_ms, after_ms, detail) in [
        (50_000, 60_000, 50_000, "below its threshold of 60000 ms"),
        (
            70_000,
            60_000,
            90_000,
            "but from the start of its wait to the event's time is 90000 ms",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogBuilder::new(dir.path());
        log.register_human("ann", "acme", Role::Agent, &[], 2);
        let id = log.start("acme", "cust-1", Some("billing"), None);
        let Status::AwaitingHuman { since, .. } = log.state(id).status() else {
            panic!("waiting");
        };
        let stream = forge(
            &mut log,
            id,
            ConversationEvent::SlaWarning {
                team: Some(TeamId::new("billing").unwrap()),
                waited_ms,
                threshold_ms,
                at: since.plus_millis(after_ms),
            },
        );
        assert_fault(log, FaultKind::Sla, stream, detail);
    }
}

#[test]
fn sound_sla_events_pass() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    let id = log.start("acme", "cust-1", Some("billing"), None);
    log.advance(400_000);
    log.tick(id);
    let path = log.finish();
    assert!(verify_dir(&path).unwrap().is_sound());
}

#[test]
fn a_human_of_another_tenant_assigned_is_a_tenant_fault() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    log.register_human("gus", "globex", Role::Agent, &[], 2);
    let id = log.start("acme", "cust-1", None, None);
    let stream = forge(
        &mut log,
        id,
        ConversationEvent::HumanAssigned {
            human_id: human("gus"),
            name: AgentName::new("gus").unwrap(),
            team: None,
            by: Author::System(SystemActor::Backend),
            at: Timestamp::from_millis(1_795_653_100_000),
        },
    );
    assert_fault(
        log,
        FaultKind::Tenant,
        stream,
        "gives a conversation of tenant acme to human gus of tenant globex",
    );
}

#[test]
fn a_human_of_another_tenant_acting_is_a_tenant_fault() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    let id = one_assigned(&mut log);
    log.register_human("boss", "globex", Role::Supervisor, &[], 2);
    let stream = forge(
        &mut log,
        id,
        ConversationEvent::Closed {
            by: Author::Human(human("boss")),
            reason: None,
        },
    );
    assert_fault(
        log,
        FaultKind::Tenant,
        stream,
        "conversation_closed by human boss of tenant globex on a conversation of tenant acme",
    );
}

#[test]
fn an_ai_agent_of_another_tenant_handed_a_conversation_is_a_tenant_fault() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    log.register_in("globex-bot", "globex", "Globex bot");
    log.activate("globex-bot");
    let id = one_assigned(&mut log);
    let stream = forge(
        &mut log,
        id,
        ConversationEvent::HandedOffToAi {
            agent_id: agent("globex-bot"),
            agent_name: AgentName::new("Globex bot").unwrap(),
            by_human: human("ann"),
            reason: None,
        },
    );
    assert_fault(
        log,
        FaultKind::Tenant,
        stream,
        "gives a conversation of tenant acme to AI agent globex-bot of tenant globex",
    );
}

#[test]
fn stats_sum_up_waits_sla_timeouts_loads_and_containment() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    acme_log(&mut log);
    let figures = stats(log.store()).unwrap();
    // One escalation (the AI timeout), answered by ann's accepting 4 s + 1 s later.
    assert_eq!(figures.escalation_to_human_ms.count, 1);
    assert_eq!(figures.escalation_to_human_ms.p50_ms, Some(5_000));
    assert_eq!(figures.escalation_to_human_ms.p90_ms, Some(5_000));
    assert_eq!(figures.escalation_to_human_ms.max_ms, Some(5_000));
    assert_eq!(figures.escalations.ai_timeout, 1);
    assert_eq!((figures.sla_warnings, figures.sla_breaches), (1, 1));
    assert_eq!(figures.ai_reply_timeouts, 1);
    let loads: Vec<(&str, u64, u64)> = figures
        .human_load
        .iter()
        .map(|l| (l.human_id.as_str(), l.assignments, l.max_concurrent))
        .collect();
    assert_eq!(loads, [("ann", 4, 1), ("zed", 2, 1)]);
    let bot = &figures.ai_containment_by_agent[0];
    assert_eq!(bot.agent_id, "acme-bot");
    assert_eq!(
        (bot.handoffs, bot.contained, bot.escalated, bot.reclaimed),
        (2, 1, 1, 0)
    );
    assert_eq!(bot.containment_rate, Some(0.5));

    let json = serde_json::to_value(&figures).unwrap();
    assert_eq!(
        json["escalation_to_human_ms"],
        json!({"count": 1, "p50_ms": 5000, "p90_ms": 5000, "max_ms": 5000})
    );
    assert_eq!(
        json["human_load"][0],
        json!({"human_id": "ann", "assignments": 4, "max_concurrent": 1})
    );
    let text = figures.to_string();
    for expected in [
        "escalation to a human       p50 0:00:05.000, p90 0:00:05.000, max 0:00:05.000 over 1 waits",
        "SLA                         1 warnings, 1 breaches",
        "AI reply timeouts           1",
        "4 assignments, at most 1 at once",
        "containment of AI agent acme-bot 1 of 2 handoffs contained (50.0%), 1 escalated, 0 reclaimed",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }
}

#[test]
fn percentiles_take_the_nearest_rank() {
    let p = handover_audit::Percentiles::of((1..=10).rev().collect());
    assert_eq!(
        (p.count, p.p50_ms, p.p90_ms, p.max_ms),
        (10, Some(5), Some(9), Some(10))
    );
    assert_eq!(
        handover_audit::Percentiles::of(vec![]),
        handover_audit::Percentiles::default()
    );
}

#[test]
fn the_timeline_tells_waits_assignments_deadlines_notes_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    let acme = acme_log(&mut log);
    let text = timeline(log.store(), acme.x).unwrap().to_string();
    for expected in [
        "opened for customer cust-x on web-chat in tenant acme, queue the queue of team billing, language en",
        "waiting for a human in the queue of team billing (cause opened: opened without a human)",
        "SLA warning in the queue of team billing: waited 1m 11s, past the warning threshold of 1m 00s",
        "SLA breached in the queue of team billing: waited 5m 12s, past the breach threshold of 5m 00s",
        "assigned to human ann (\"ann\") by the router, from the queue of team billing",
        "AI agent acme-bot did not reply in time: the customer waited 32.0s, the deadline being 30.0s",
        "(cause ai_timeout: the AI agent did not reply in time)",
        "assigned to human ann (\"ann\") by human ann",
        "internal note for staff by human ann (internal, not shown to the customer): \"VIP customer\"",
        "needs-help flag raised by human ann",
        "needs-help flag lowered by human sam",
        "transferred by human ann to human zed; reason: \"invoices are Zed's\"",
        "assigned to human zed (\"zed\") by human ann",
        "notice to the customer (person_joined, en): \"zed has joined the conversation.\"",
        "closed by human zed",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }
    let w = timeline(log.store(), acme.w).unwrap().to_string();
    assert!(
        w.contains("transferred by human zed to the queue of team billing"),
        "{w}"
    );
    assert!(
        w.contains("(cause transferred: transferred to this queue)"),
        "{w}"
    );
}

#[test]
fn a_skill_started_before_a_reclaim_and_finished_after_it_is_sound_and_exported() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    log.register_in("acme-bot", "acme", "Acme bot");
    log.activate("acme-bot");
    log.register_human("ann", "acme", Role::Agent, &["billing"], 2);
    let id = log.start("acme", "cust-r", None, Some("ann"));
    log.hand_off(id, "ann", "acme-bot", None);
    let by = log.assignment(id);
    log.command(
        id,
        ConversationCommand::StartSkill {
            by: by.clone(),
            name: SkillName::new("issue_refund").unwrap(),
            input: SkillData::new("order A-1").unwrap(),
        },
    );
    log.reclaim(id, "ann", None);
    log.command(
        id,
        ConversationCommand::RecordAiAction {
            by,
            skill: Skill::new("issue_refund", "order A-1", Ok("refunded".to_owned())).unwrap(),
        },
    );
    let lines = export_lines(&log, ExportFormat::JsonLines);
    let started = lines
        .iter()
        .find(|l| l["type"] == "ai_skill_started")
        .expect("exported");
    assert_eq!(
        started["data"],
        json!({"agent_id": "acme-bot", "skill": {"name": "issue_refund", "input": "order A-1"}, "by": {"kind": "ai", "id": "acme-bot"}})
    );
    assert_eq!(started["tenant"], "acme");
    let types: Vec<&str> = lines.iter().filter_map(|l| l["type"].as_str()).collect();
    let reclaimed = types.iter().position(|t| *t == "reclaimed").unwrap();
    let outcome = types
        .iter()
        .position(|t| *t == "ai_action_recorded")
        .unwrap();
    assert!(outcome > reclaimed);
    let path = log.finish();
    assert!(verify_dir(&path).unwrap().is_sound());
}
