//! `handover audit` end to end: the real binary on fresh sled directories, built through
//! `SledStore` with events the core's `decide` made.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use handover::{SledOptions, SledStore};
use handover_core::*;
use handover_store::{EventStore, ExpectedVersion};
use serde_json::Value;

/// Writes a log through `decide`, as the runtime would.
struct Log {
    store: SledStore,
    runtime: tokio::runtime::Runtime,
    roster: Roster,
    directory: Directory,
    states: HashMap<ConversationId, (Conversation, u64)>,
    next_id: u128,
}

impl Log {
    fn new(dir: &Path) -> Log {
        Log {
            store: SledStore::open(dir, SledOptions::default()).unwrap(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
            roster: Roster::default(),
            directory: Directory::new(),
            states: HashMap::new(),
            next_id: 1,
        }
    }

    fn append(&self, stream: StreamId, expected: ExpectedVersion, events: Vec<Event>) {
        self.runtime
            .block_on(self.store.append(&stream, expected, events.to_vec()))
            .unwrap()
            .unwrap();
    }

    fn agent(&mut self, id: &str, name: &str) {
        let agent_id = AiAgentId::new(id).unwrap();
        for (version, command) in (0..).zip([
            AiAgentCommand::Register {
                name: AgentName::new(name).unwrap(),
                specialties: vec![],
            },
            AiAgentCommand::Activate,
        ]) {
            let events = agent::decide(&agent_id, self.roster.get(&agent_id), &command).unwrap();
            for event in &events {
                self.roster.evolve(event).unwrap();
            }
            self.append(
                StreamId::AiAgent(agent_id.clone()),
                ExpectedVersion::Exact(version),
                events.into_iter().map(Event::AiAgent).collect(),
            );
        }
    }

    /// Registers a human of the default tenant and makes them available.
    fn human(&mut self, id: &str, role: Role) {
        let human_id = HumanId::new(id).unwrap();
        for (version, command) in (0..).zip([
            HumanCommand::Register {
                tenant: TenantId::default_tenant(),
                name: AgentName::new(id).unwrap(),
                role,
                teams: vec![],
                capacity: 10,
            },
            HumanCommand::SetPresence {
                presence: Presence::Available,
            },
        ]) {
            let events = human::decide(&human_id, self.directory.get(&human_id), &command).unwrap();
            for event in &events {
                self.directory.evolve(event).unwrap();
            }
            self.append(
                StreamId::Human(human_id.clone()),
                ExpectedVersion::Exact(version),
                events.into_iter().map(Event::Human).collect(),
            );
        }
    }

    fn open(&mut self, customer: &str, human: &str) -> ConversationId {
        let id = ConversationId::from_uuid(uuid::Uuid::from_u128(
            0x0190_f1f0_0000_7000_8000_0000_0000_0000 + self.next_id,
        ));
        self.next_id += 1;
        self.states.insert(id, (Conversation::NotOpened, 0));
        self.run(
            id,
            ConversationCommand::Open {
                customer: CustomerId::new(customer).unwrap(),
                channel: Channel::new("web-chat").unwrap(),
                human: Some(HumanId::new(human).unwrap()),
            },
        );
        id
    }

    fn run(&mut self, id: ConversationId, command: ConversationCommand) {
        let policy = DefaultPolicy::default();
        let (state, version) = self.states[&id].clone();
        let ctx = Ctx::new(&self.roster, &policy).with_directory(&self.directory);
        let (events, next) = conversation::decide_with_state(&state, &command, &ctx).unwrap();
        self.append(
            StreamId::Conversation(id),
            ExpectedVersion::Exact(version),
            events.iter().cloned().map(Event::Conversation).collect(),
        );
        self.states
            .insert(id, (next, version + events.len() as u64));
    }

    fn ai(&self, id: ConversationId) -> Assignment {
        self.states[&id].0.assignment().unwrap()
    }

    fn post(&mut self, id: ConversationId, by: Participant, text: &str) {
        self.run(
            id,
            ConversationCommand::PostMessage {
                by,
                text: MessageText::new(text).unwrap(),
            },
        );
    }

    fn hand_off(&mut self, id: ConversationId, by: &str, agent_id: &str, reason: &str) {
        self.run(
            id,
            ConversationCommand::HandOffToAi {
                by: HumanId::new(by).unwrap(),
                agent_id: AiAgentId::new(agent_id).unwrap(),
                reason: Some(Reason::new(reason).unwrap()),
            },
        );
    }
}

struct Ids {
    reclaimed: ConversationId,
    escalated: ConversationId,
}

/// Three conversations: one reclaimed after a skill, one escalated on the customer's request,
/// one closed by its AI agent; four humans (bob a supervisor). 35 events in 8 streams.
fn build_log(dir: &Path) -> Ids {
    let mut log = Log::new(dir);
    log.agent("faq-bot", "FAQ bot");
    log.human("alice", Role::Agent);
    log.human("bob", Role::Supervisor);
    log.human("carol", Role::Agent);
    log.human("dave", Role::Agent);

    let reclaimed = log.open("cust-1", "alice");
    log.post(
        reclaimed,
        Participant::Customer(CustomerId::new("cust-1").unwrap()),
        "How much is the pro plan?",
    );
    log.hand_off(
        reclaimed,
        "alice",
        "faq-bot",
        "pricing questions are routine",
    );
    let by = log.ai(reclaimed);
    log.run(
        reclaimed,
        ConversationCommand::RecordAiAction {
            by,
            skill: Skill {
                name: SkillName::new("lookup_price").unwrap(),
                input: SkillData::new(r#"{"plan":"pro"}"#).unwrap(),
                outcome: SkillOutcome::Succeeded(SkillData::new("49 USD").unwrap()),
            },
        },
    );
    let by = Participant::Ai(log.ai(reclaimed));
    log.post(reclaimed, by, "It is 49 USD a month.");
    log.run(
        reclaimed,
        ConversationCommand::Reclaim {
            by: HumanId::new("bob").unwrap(),
            reason: Some(Reason::new("VIP customer").unwrap()),
        },
    );
    log.run(
        reclaimed,
        ConversationCommand::Close {
            by: Participant::Human(HumanId::new("bob").unwrap()),
            reason: None,
        },
    );

    let escalated = log.open("cust-2", "carol");
    log.hand_off(escalated, "carol", "faq-bot", "after-hours");
    log.post(
        escalated,
        Participant::Customer(CustomerId::new("cust-2").unwrap()),
        "I want to talk to a human",
    );

    let contained = log.open("cust-3", "dave");
    log.hand_off(contained, "dave", "faq-bot", "simple FAQ");
    let by = Participant::Ai(log.ai(contained));
    log.run(contained, ConversationCommand::Close { by, reason: None });
    log.store.flush().unwrap();
    Ids {
        reclaimed,
        escalated,
    }
}

const EVENTS: usize = 35;

fn open_raw(dir: &Path) -> sled::Db {
    // A store dropped a moment ago may still hold the lock; wait as `SledStore::open` does.
    SledStore::open_raw(dir, std::time::Duration::from_secs(5)).expect("sled opens the directory")
}

fn handover(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_handover"))
        // One in the environment would count as --database-url.
        .env_remove("DATABASE_URL")
        .args(args)
        .output()
        .unwrap()
}

fn audit(subcommand: &str, dir: &Path, more: &[&str]) -> Output {
    let mut args = vec!["audit", subcommand, "--data", dir.to_str().unwrap()];
    args.extend_from_slice(more);
    handover(&args)
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn json_lines(output: &Output) -> Vec<Value> {
    assert!(output.status.success(), "{}", stderr(output));
    stdout(output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}")))
        .collect()
}

#[test]
fn export_writes_one_json_object_per_event_in_global_order() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path());
    let lines = json_lines(&audit("export", dir.path(), &[]));
    assert_eq!(lines.len(), EVENTS);

    let mut last_position = 0;
    let mut seqs: HashMap<String, u64> = HashMap::new();
    for line in &lines {
        let object = line.as_object().unwrap();
        assert_eq!(object.len(), 8, "{line}");
        assert_eq!(line["tenant"], "default", "{line}");
        let position = line["position"].as_u64().expect("position is a number");
        assert!(position > last_position, "positions strictly increase");
        last_position = position;
        let stream = line["stream"].as_str().expect("stream is a string");
        let seq = line["seq"].as_u64().expect("seq is a number");
        let previous = seqs.insert(stream.to_owned(), seq).unwrap_or(0);
        assert_eq!(seq, previous + 1, "seqs are contiguous per stream: {line}");
        match stream.strip_prefix("conversation-") {
            Some(id) => assert_eq!(line["conversation_id"].as_str(), Some(id)),
            None => assert!(line["conversation_id"].is_null()),
        }
        let recorded_at = line["recorded_at"]
            .as_str()
            .expect("recorded_at is a string");
        assert_eq!(recorded_at.len(), 27, "{recorded_at}");
        assert!(recorded_at.ends_with('Z') && recorded_at.as_bytes()[19] == b'.');
        assert!(line["type"].is_string());
        assert!(line["data"].is_object());
    }
    assert_eq!(last_position, EVENTS as u64);

    let types: BTreeSet<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        BTreeSet::from([
            "ai_agent_registered",
            "ai_agent_activated",
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
    let handoff = lines
        .iter()
        .find(|l| l["type"] == "handed_off_to_ai")
        .unwrap();
    assert_eq!(handoff["data"]["agent_id"], "faq-bot");
    assert_eq!(handoff["data"]["agent_name"], "FAQ bot");
    assert_eq!(handoff["data"]["by_human"], "alice");
    assert_eq!(handoff["data"]["reason"], "pricing questions are routine");
    assert_eq!(
        handoff["data"]["by"],
        serde_json::json!({"kind": "human", "id": "alice"})
    );
    let human = lines
        .iter()
        .find(|l| l["type"] == "human_registered")
        .unwrap();
    assert_eq!(human["stream"], "human-alice");
    assert_eq!(human["data"]["role"], "agent");
    let skill = lines
        .iter()
        .find(|l| l["type"] == "ai_action_recorded")
        .unwrap();
    assert_eq!(skill["data"]["skill"]["outcome"]["status"], "succeeded");
    let escalation = lines
        .iter()
        .find(|l| l["type"] == "escalated_to_human")
        .unwrap();
    assert_eq!(escalation["data"]["cause"], "customer_asked_for_human");
}

#[test]
fn export_as_cloudevents_has_the_required_attributes() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path());
    let events = json_lines(&audit("export", dir.path(), &["--format", "cloudevents"]));
    assert_eq!(events.len(), EVENTS);
    let mut ids = BTreeSet::new();
    for event in &events {
        for attribute in [
            "specversion",
            "id",
            "source",
            "type",
            "time",
            "datacontenttype",
        ] {
            assert!(event[attribute].is_string(), "{attribute} missing: {event}");
        }
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["datacontenttype"], "application/json");
        assert!(event["type"].as_str().unwrap().starts_with("dev.handover."));
        assert!(event["data"].is_object());
        assert!(ids.insert(event["id"].as_str().unwrap().to_owned()));
        let stream = event["stream"].as_str().unwrap();
        assert!(event["source"].as_str().unwrap().ends_with(stream));
        assert!(event["position"].as_str().unwrap().parse::<u64>().is_ok());
        assert!(event["seq"].as_str().unwrap().parse::<u64>().is_ok());
        match stream.strip_prefix("conversation-") {
            Some(id) => assert_eq!(event["subject"], id),
            None => assert!(event.get("subject").is_none()),
        }
    }
}

#[test]
fn export_filters_by_conversation() {
    let dir = tempfile::tempdir().unwrap();
    let ids = build_log(dir.path());
    let id = ids.escalated.to_string();
    let lines = json_lines(&audit("export", dir.path(), &["--conversation", &id]));
    assert_eq!(lines.len(), 9);
    assert!(lines.iter().all(|l| l["conversation_id"] == id.as_str()));
    assert!(lines.iter().all(|l| l["tenant"] == "default"));
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=9).collect::<Vec<_>>());

    let events = json_lines(&audit(
        "export",
        dir.path(),
        &["--format", "cloudevents", "--conversation", &id],
    ));
    assert_eq!(events.len(), 9);
    assert!(events.iter().all(|e| e["subject"] == id.as_str()));
}

#[test]
fn export_stops_quietly_when_the_reader_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut log = Log::new(dir.path());
        log.human("alice", Role::Agent);
        let id = log.open("cust-1", "alice");
        // Well over a pipe's buffer, so the export is still writing when the reader leaves.
        let long = "x".repeat(60_000);
        for _ in 0..4 {
            log.post(
                id,
                Participant::Human(HumanId::new("alice").unwrap()),
                &long,
            );
        }
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_handover"))
        // One in the environment would count as --database-url.
        .env_remove("DATABASE_URL")
        .args(["audit", "export", "--data", dir.path().to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("human_registered"));
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
}

#[test]
fn timeline_tells_the_handoff_and_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ids = build_log(dir.path());
    let output = audit(
        "timeline",
        dir.path(),
        &["--conversation", &ids.reclaimed.to_string()],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for expected in [
        "handed off by human alice to AI agent \"FAQ bot\" (faq-bot); reason: \"pricing questions are routine\"",
        "ran skill lookup_price",
        "reclaimed by human bob from AI agent faq-bot; reason: \"VIP customer\"",
        "closed by human bob",
        "ai-active with \"FAQ bot\" (faq-bot), handed off by alice",
    ] {
        assert!(text.contains(expected), "{expected:?} missing from:\n{text}");
    }

    let unknown = audit(
        "timeline",
        dir.path(),
        &["--conversation", "0190f1f0-0000-7000-8000-0000000000ff"],
    );
    assert!(!unknown.status.success());
    assert!(stderr(&unknown)
        .contains("conversation 0190f1f0-0000-7000-8000-0000000000ff is not in the log"));
}

#[test]
fn stats_json_has_the_expected_counts() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path());
    let output = audit("stats", dir.path(), &["--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let stats: Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(stats["events"], EVENTS as u64);
    assert_eq!(stats["conversations_opened"], 3);
    assert_eq!(stats["conversations_closed"], 2);
    assert_eq!(stats["handoffs"], 3);
    assert_eq!(stats["reclaims"], 1);
    assert_eq!(stats["escalations"]["total"], 1);
    assert_eq!(stats["escalations"]["customer_asked_for_human"], 1);
    assert_eq!(stats["escalations"]["agent_requested"], 0);
    assert_eq!(stats["closed_while_ai_active"], 1);
    assert_eq!(stats["ai_containment_rate"], 0.5);
    assert_eq!(stats["skills"]["total"], 1);
    assert_eq!(stats["messages"]["customer"], 2);
    assert_eq!(stats["messages"]["ai"], 1);
    assert_eq!(stats["messages"]["human"], 0);
    assert_eq!(stats["escalation_to_human_ms"]["count"], 0);
    assert_eq!(stats["sla_warnings"], 0);
    assert_eq!(stats["ai_reply_timeouts"], 0);
    assert_eq!(
        stats["ai_containment_by_agent"][0],
        serde_json::json!({"agent_id": "faq-bot", "handoffs": 3, "contained": 1, "escalated": 1, "reclaimed": 1, "containment_rate": 1.0 / 3.0})
    );
    assert_eq!(
        stats["human_load"][0],
        serde_json::json!({"human_id": "alice", "assignments": 1, "max_concurrent": 1})
    );
    for state in ["human_handled", "ai_active", "reclaimed"] {
        assert!(stats["time_in_state_micros"][state].as_i64().unwrap() >= 0);
    }

    let text = audit("stats", dir.path(), &[]);
    assert!(text.status.success());
    assert!(stdout(&text).contains("handoffs to AI              3"));
}

#[test]
fn verify_passes_a_sound_log_and_names_a_flipped_bit() {
    let dir = tempfile::tempdir().unwrap();
    let ids = build_log(dir.path());
    let sound = audit("verify", dir.path(), &[]);
    assert_eq!(sound.status.code(), Some(0), "{}", stderr(&sound));
    let summary = stdout(&sound);
    assert_eq!(summary.lines().count(), 1);
    assert!(
        summary.starts_with("sound: 35 events in 8 streams"),
        "{summary}"
    );

    // Flip one bit in the record of the reclaimed conversation's seq 3.
    {
        let db = open_raw(dir.path());
        let tree = db.open_tree("log").unwrap();
        let mut key = vec![b's', b'c'];
        key.extend_from_slice(ids.reclaimed.as_bytes());
        key.extend_from_slice(&3u64.to_be_bytes());
        let mut value = tree.get(&key).unwrap().unwrap().to_vec();
        let last = value.len() - 1;
        value[last] ^= 0x01;
        tree.insert(key, value).unwrap();
        tree.flush().unwrap();
    }
    let damaged = audit("verify", dir.path(), &[]);
    assert_eq!(damaged.status.code(), Some(1));
    let report = stdout(&damaged);
    let expected = format!("stream conversation-{} seq 3", ids.reclaimed);
    assert!(report.contains(&expected), "{report}");
    assert!(report.contains("checksum mismatch"), "{report}");

    // The other commands refuse the damaged record too, naming it.
    let export = audit("export", dir.path(), &[]);
    assert!(!export.status.success());
    assert!(stderr(&export).contains(&expected), "{}", stderr(&export));
}

#[test]
fn a_missing_data_directory_is_a_clear_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    for (subcommand, more) in [
        ("export", vec![]),
        ("stats", vec![]),
        (
            "timeline",
            vec!["--conversation", "0190f1f0-0000-7000-8000-000000000001"],
        ),
        ("verify", vec![]),
    ] {
        let output = audit(subcommand, &missing, &more);
        assert!(!output.status.success(), "{subcommand}");
        let message = stderr(&output);
        assert!(
            message.contains(&format!(
                "data directory {} does not exist",
                missing.display()
            )),
            "{subcommand}: {message}"
        );
        assert!(!missing.exists(), "{subcommand} created the directory");
    }
    // verify tells "could not check" apart from "found a fault".
    assert_eq!(audit("verify", &missing, &[]).status.code(), Some(2));
}

#[test]
fn a_directory_held_by_another_store_is_reported_in_use() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path());
    // Retried like `open_raw`: the store `build_log` dropped may still hold the lock a moment.
    let held = (0..100)
        .find_map(
            |_| match SledStore::open(dir.path(), SledOptions::default()) {
                Err(handover_store::StoreError::InUse { .. }) => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    None
                }
                other => Some(other.unwrap()),
            },
        )
        .expect("the directory stayed locked");
    for subcommand in ["export", "stats", "verify"] {
        let output = audit(subcommand, dir.path(), &[]);
        assert!(!output.status.success(), "{subcommand}");
        let message = stderr(&output);
        assert!(
            message.contains("is in use by another process"),
            "{subcommand}: {message}"
        );
    }
    drop(held);
    assert!(audit("verify", dir.path(), &[]).status.success());
}

#[test]
fn an_invalid_conversation_id_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path());
    for subcommand in ["export", "timeline"] {
        let output = audit(subcommand, dir.path(), &["--conversation", "not-a-uuid"]);
        assert!(!output.status.success());
        let message = stderr(&output);
        assert!(
            message.contains("\"not-a-uuid\" is not a conversation id (expected a UUID)"),
            "{message}"
        );
    }
}

#[test]
fn conversations_lists_each_with_status_events_and_times() {
    let dir = tempfile::tempdir().unwrap();
    let ids = build_log(dir.path());
    let lines = json_lines(&audit("conversations", dir.path(), &["--json"]));
    assert_eq!(lines.len(), 3);
    for line in &lines {
        for field in [
            "id",
            "customer_id",
            "channel",
            "status",
            "ai_agent_id",
            "human_id",
            "events",
            "opened_at",
            "last_activity_at",
            "tenant",
        ] {
            assert!(line.get(field).is_some(), "missing {field} in {line}");
        }
        let (opened, last) = (
            line["opened_at"].as_str().unwrap(),
            line["last_activity_at"].as_str().unwrap(),
        );
        assert!(opened.ends_with('Z') && opened <= last, "{line}");
    }
    let by_id = |id: ConversationId| {
        lines
            .iter()
            .find(|line| line["id"] == id.to_string())
            .unwrap_or_else(|| panic!("{id} is not listed"))
    };
    let reclaimed = by_id(ids.reclaimed);
    assert_eq!(reclaimed["customer_id"], "cust-1");
    assert_eq!(reclaimed["status"], "closed");
    assert_eq!(reclaimed["human_id"], "bob");
    assert_eq!(reclaimed["events"], 11);
    let escalated = by_id(ids.escalated);
    assert_eq!(escalated["status"], "awaiting-human");
    assert_eq!(escalated["events"], 9);
    assert_eq!(escalated["ai_agent_id"], Value::Null);

    let open = json_lines(&audit(
        "conversations",
        dir.path(),
        &["--json", "--status", "open"],
    ));
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["id"], ids.escalated.to_string());
    let waiting = json_lines(&audit(
        "conversations",
        dir.path(),
        &["--json", "--status", "awaiting-human"],
    ));
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0]["id"], ids.escalated.to_string());
    let closed = json_lines(&audit(
        "conversations",
        dir.path(),
        &["--json", "--status", "closed"],
    ));
    assert_eq!(closed.len(), 2);

    // The table: a header, then one line per conversation.
    let table = audit("conversations", dir.path(), &[]);
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    let mut rows = text.lines();
    let header = rows.next().unwrap();
    for column in [
        "ID",
        "CUSTOMER",
        "CHANNEL",
        "STATUS",
        "EVENTS",
        "OPENED",
        "LAST ACTIVITY",
    ] {
        assert!(header.contains(column), "{header}");
    }
    assert_eq!(rows.count(), 3, "{text}");
    assert!(text.contains(&ids.escalated.to_string()));

    let bad = audit("conversations", dir.path(), &["--status", "sleeping"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("human-handled"), "{}", stderr(&bad));
}

#[test]
fn a_data_path_that_is_a_file_is_named_as_such_by_every_audit_command() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, "{}\n").unwrap();
    for (sub, code) in [
        ("stats", 1),
        ("export", 1),
        ("conversations", 1),
        ("verify", 2),
    ] {
        let output = audit(sub, &file, &[]);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{sub}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(&format!("{} is a file, not a directory", file.display())),
            "{sub}: {}",
            stderr(&output)
        );
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "{}\n");
}

#[test]
fn a_damaged_settings_file_is_a_fault_of_the_log_with_a_useful_message() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path());
    // sled checks its settings file with a CRC; a garbled one stops it from opening the log.
    let conf = dir.path().join("conf");
    let mut bytes = std::fs::read(&conf).unwrap();
    for byte in bytes.iter_mut().take(8) {
        *byte ^= 0x5a;
    }
    std::fs::write(&conf, bytes).unwrap();

    let verify = audit("verify", dir.path(), &[]);
    assert_eq!(verify.status.code(), Some(1), "{}", stderr(&verify));
    let line = stdout(&verify);
    assert!(line.starts_with("unsound: damaged"), "{line}");
    assert!(line.contains("conf"), "{line}");
    assert!(!line.contains("None"), "{line}");
    for sub in ["stats", "export", "conversations"] {
        let output = audit(sub, dir.path(), &[]);
        assert_eq!(output.status.code(), Some(1), "{sub}");
        let message = stderr(&output);
        assert!(message.contains("damaged"), "{sub}: {message}");
        assert!(!message.contains("None"), "{sub}: {message}");
    }
}

#[test]
fn stats_prints_every_duration_in_one_shape() {
    let dir = tempfile::tempdir().unwrap();
    build_log(dir.path());
    let output = audit("stats", dir.path(), &[]);
    assert!(output.status.success());
    let text = stdout(&output);
    let durations: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("time "))
        .map(|line| line.split_whitespace().nth(2).unwrap())
        .collect();
    assert_eq!(durations.len(), 3, "{text}");
    for duration in durations {
        // h:mm:ss.mmm
        let (hours, rest) = duration.split_once(':').unwrap();
        assert!(hours.parse::<u64>().is_ok(), "{duration}");
        let bytes = rest.as_bytes();
        assert_eq!(bytes.len(), 9, "{duration}");
        assert_eq!((bytes[2], bytes[5]), (b':', b'.'), "{duration}");
    }
}

#[test]
fn a_log_file_sled_panics_on_is_a_fault_without_a_panic_message() {
    // The start of sled's log file garbled: depending on what else its pages hold, sled 0.34
    // reads past it, finds the log short, or panics while reading it (the store contains the
    // panic and reports damage). Several fresh logs make the panic likely to be met.
    for round in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        // A log of some size: sled's first pages then hold more than a handful of records.
        let simulated = handover(&[
            "simulate",
            "--data",
            dir.path().to_str().unwrap(),
            "--conversations",
            "200",
            "--durability",
            "buffered",
        ]);
        assert!(simulated.status.success(), "{}", stderr(&simulated));
        let db = dir.path().join("db");
        let mut bytes = std::fs::read(&db).unwrap();
        for byte in bytes.iter_mut().take(64) {
            *byte = 0xff;
        }
        std::fs::write(&db, bytes).unwrap();
        let verify = Command::new(env!("CARGO_BIN_EXE_handover"))
            // One in the environment would count as --database-url.
            .env_remove("DATABASE_URL")
            .args(["audit", "verify", "--data", dir.path().to_str().unwrap()])
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap();
        let (out, err) = (stdout(&verify), stderr(&verify));
        // Whatever sled makes of it, it is never reported as a crash of the command.
        // The error may say the engine panicked; a panic report ("thread ... panicked at")
        // would mean the command itself crashed, or printed sled's.
        assert!(!err.contains("panicked at"), "round {round}: {err}");
        assert!(!err.contains("stack backtrace"), "round {round}: {err}");
        match verify.status.code() {
            Some(1) => assert!(out.starts_with("unsound: "), "{out}"),
            Some(0) => assert!(out.starts_with("sound: "), "{out}"),
            other => panic!("round {round}: verify exited {other:?}: {out}{err}"),
        }
        println!("round {round}: {}", out.trim_end());
        let stats = audit("stats", dir.path(), &[]);
        assert!(
            !stderr(&stats).contains("panicked at"),
            "{}",
            stderr(&stats)
        );
    }
}
