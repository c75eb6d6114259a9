//! The escalation rules end to end with the real binary: the export of the events they
//! record (a log written through `decide` under the default policy), `handover policy test`,
//! and `handover audit what-if` on a simulated shift, its expected figures derived from the
//! log's own export.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

use handover::{SledOptions, SledStore};
use handover_core::context::Context;
use handover_core::rules::Rules;
use handover_core::*;
use handover_store::{EventStore, ExpectedVersion};
use serde_json::{json, Value};

fn handover(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_handover"))
        // One in the environment would count as --database-url.
        .env_remove("DATABASE_URL")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn json_of(output: &Output) -> Value {
    assert!(output.status.success(), "{}", stderr(output));
    serde_json::from_str(&stdout(output)).unwrap_or_else(|e| panic!("{}: {e}", stdout(output)))
}

fn export(dir: &Path) -> Vec<Value> {
    let output = handover(&["audit", "export", "--data", dir.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    stdout(&output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Writes a log through `decide` under the default policy, with a clock.
struct Log {
    store: SledStore,
    runtime: tokio::runtime::Runtime,
    roster: Roster,
    directory: Directory,
    states: HashMap<ConversationId, (Conversation, u64)>,
    now: Timestamp,
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
            now: Timestamp::from_millis(1_795_653_000_000),
        }
    }

    fn append(&self, stream: StreamId, expected: ExpectedVersion, events: Vec<Event>) {
        self.runtime
            .block_on(self.store.append(&stream, expected, events))
            .unwrap()
            .unwrap();
    }

    fn agent(&mut self, id: &str) {
        let agent_id = AiAgentId::new(id).unwrap();
        for (version, command) in (0..).zip([
            AiAgentCommand::Register {
                name: AgentName::new(id).unwrap(),
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

    fn open(&mut self, n: u128, customer: &str, human: &str) -> ConversationId {
        let id = ConversationId::from_uuid(uuid::Uuid::from_u128(
            0x0190_f1f0_0000_7000_8000_0000_0000_0000 + n,
        ));
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
        self.now = self.now.plus_millis(1_000);
        let (state, version) = self.states[&id].clone();
        let ctx = Ctx::new(&self.roster, Rules::default_rules())
            .with_directory(&self.directory)
            .at(self.now);
        let (events, next) = conversation::decide_with_state(&state, &command, &ctx)
            .unwrap_or_else(|rejection| panic!("{command:?} was rejected: {rejection}"));
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

    fn start_refund(&mut self, id: ConversationId) {
        let by = self.ai(id);
        self.run(
            id,
            ConversationCommand::StartSkill {
                by,
                name: SkillName::new("refund").unwrap(),
                input: SkillData::new(r#"{"order":"A-17","amount":120}"#).unwrap(),
            },
        );
    }

    fn hand_off_with(
        &mut self,
        id: ConversationId,
        by: &str,
        context: Option<Context>,
        over: bool,
    ) {
        self.run(
            id,
            ConversationCommand::HandOffToAiWith {
                by: HumanId::new(by).unwrap(),
                agent_id: AiAgentId::new("faq-bot").unwrap(),
                reason: None,
                context,
                override_policy: over,
                refused_by: None,
            },
        );
    }
}

/// One conversation through every event the rules record: a handoff with context, a skill
/// approved, one denied by a person, one denied by the clock, two misses and the rule's
/// escalation, a handoff the loop guard refuses and a supervisor overrides, an escalation
/// with context.
fn rules_log(dir: &Path) -> ConversationId {
    let mut log = Log::new(dir);
    log.agent("faq-bot");
    log.human("alice", Role::Agent);
    log.human("sam", Role::Supervisor);
    let id = log.open(1, "cust-1", "alice");
    let context = Context::new(
        Some("wants a refund".to_owned()),
        Some("billing".to_owned()),
        [("plan", "pro"), ("order", "A-17")],
    )
    .unwrap();
    log.hand_off_with(id, "alice", Some(context), false);
    log.start_refund(id);
    log.run(
        id,
        ConversationCommand::ApproveSkill {
            by: HumanId::new("alice").unwrap(),
            skill: SkillName::new("refund").unwrap(),
        },
    );
    log.start_refund(id);
    log.run(
        id,
        ConversationCommand::DenySkill {
            by: HumanId::new("alice").unwrap(),
            skill: SkillName::new("refund").unwrap(),
            reason: Reason::new("already refunded").unwrap(),
        },
    );
    log.start_refund(id);
    log.now = log.now.plus_millis(11 * 60_000);
    log.run(id, ConversationCommand::Tick);
    for _ in 0..2 {
        let by = log.ai(id);
        log.run(
            id,
            ConversationCommand::ReportCouldNotAnswer {
                by,
                reason: Some(Reason::new("no article covers it").unwrap()),
            },
        );
    }
    // Escalated a second ago: the loop guard's cooldown refuses a handoff; a supervisor
    // overrides it.
    log.hand_off_with(id, "sam", None, true);
    let by = log.ai(id);
    log.run(
        id,
        ConversationCommand::EscalateWith {
            by,
            reason: Reason::new("needs a person").unwrap(),
            context: Context::new(Some("tried the FAQ".to_owned()), None, [("tries", "2")])
                .unwrap(),
        },
    );
    log.store.flush().unwrap();
    id
}

#[test]
fn the_rules_events_are_exported_with_their_own_type_and_data() {
    let dir = tempfile::tempdir().unwrap();
    rules_log(dir.path());
    let version = Rules::default_rules().version().as_str().to_owned();
    let lines = export(dir.path());
    let of = |kind: &str| -> Vec<Value> {
        lines
            .iter()
            .filter(|l| l["type"] == kind)
            .map(|l| {
                let mut data = l["data"].clone();
                // Times are the test clock's; checked for shape only.
                if let Some(at) = data.as_object_mut().and_then(|d| d.remove("at")) {
                    assert!(at.as_str().is_some_and(|at| at.ends_with('Z')), "{l}");
                }
                data
            })
            .collect()
    };
    assert_eq!(
        of("context_shared"),
        vec![
            json!({"by": {"kind": "human", "id": "alice"}, "summary": "wants a refund", "topic": "billing", "variables": {"order": "A-17", "plan": "pro"}}),
            json!({"by": {"kind": "ai", "id": "faq-bot"}, "summary": "tried the FAQ", "topic": null, "variables": {"tries": "2"}}),
        ]
    );
    let requested = json!({"agent_id": "faq-bot", "skill": "refund", "input": "{\"order\":\"A-17\",\"amount\":120}", "rule": "refunds-need-approval", "policy_version": version, "deadline_ms": 600000, "by": {"kind": "ai", "id": "faq-bot"}});
    assert_eq!(
        of("skill_approval_requested"),
        vec![requested.clone(), requested.clone(), requested]
    );
    assert_eq!(
        of("skill_approved"),
        vec![
            json!({"agent_id": "faq-bot", "skill": "refund", "by": {"kind": "human", "id": "alice"}, "rule": "refunds-need-approval", "policy_version": version})
        ]
    );
    let denied = of("skill_denied");
    assert_eq!(denied.len(), 2);
    assert_eq!(
        denied[0],
        json!({"agent_id": "faq-bot", "skill": "refund", "by": {"kind": "human", "id": "alice"}, "reason": "already refunded", "rule": "refunds-need-approval", "policy_version": version})
    );
    assert_eq!(denied[1]["by"], json!({"kind": "system", "id": "clock"}));
    assert_eq!(denied[1]["rule"], "refunds-need-approval");
    assert!(denied[1]["reason"].is_string());
    let miss = json!({"agent_id": "faq-bot", "reason": "no article covers it", "by": {"kind": "ai", "id": "faq-bot"}});
    assert_eq!(of("ai_could_not_answer"), vec![miss.clone(), miss]);
    let escalations = of("escalated_to_human");
    assert_eq!(escalations.len(), 2);
    assert_eq!(escalations[0]["cause"], "ai_could_not_answer");
    assert_eq!(escalations[0]["rule"], "ai-keeps-missing");
    assert_eq!(escalations[0]["policy_version"], version.as_str());
    assert_eq!(escalations[0]["by"], json!({"kind": "ai", "id": "faq-bot"}));
    // An escalation the AI agent asked for has no rule.
    assert_eq!(
        escalations[1],
        json!({"agent_id": "faq-bot", "reason": "needs a person", "cause": "agent_requested", "by": {"kind": "ai", "id": "faq-bot"}})
    );
    let overridden = of("policy_overridden");
    assert_eq!(overridden.len(), 1);
    assert_eq!(overridden[0]["by"], json!({"kind": "human", "id": "sam"}));
    assert_eq!(overridden[0]["rule"], "loop-guard");
    assert_eq!(overridden[0]["policy_version"], version.as_str());
    assert!(overridden[0]["refusal"]
        .as_str()
        .unwrap()
        .contains("minutes ago"));
    // The override directly precedes its handoff.
    let at = lines
        .iter()
        .position(|l| l["type"] == "policy_overridden")
        .unwrap();
    assert_eq!(lines[at + 1]["type"], "handed_off_to_ai");
    assert_eq!(lines[at + 1]["data"]["by_human"], "sam");

    // CloudEvents carry the same data under the prefixed type.
    let cloud = handover(&[
        "audit",
        "export",
        "--data",
        dir.path().to_str().unwrap(),
        "--format",
        "cloudevents",
    ]);
    assert!(cloud.status.success(), "{}", stderr(&cloud));
    let cloud: Vec<Value> = stdout(&cloud)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(cloud.len(), lines.len());
    for (event, line) in cloud.iter().zip(&lines) {
        assert_eq!(
            event["type"],
            format!("dev.handover.{}", line["type"].as_str().unwrap())
        );
        assert_eq!(event["data"], line["data"]);
    }

    // The log verifies, and stats count what the rules did.
    let verify = handover(&["audit", "verify", "--data", dir.path().to_str().unwrap()]);
    assert!(
        verify.status.success(),
        "{}{}",
        stdout(&verify),
        stderr(&verify)
    );
    let stats = json_of(&handover(&[
        "audit",
        "stats",
        "--data",
        dir.path().to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(stats["escalations"]["total"], 2);
    assert_eq!(stats["escalations"]["ai_could_not_answer"], 1);
    assert_eq!(stats["escalations"]["agent_requested"], 1);
    assert_eq!(stats["escalations_by_rule"], json!({"ai-keeps-missing": 1}));
    assert_eq!(
        stats["approvals"],
        json!({"requested": 3, "granted": 1, "denied": 2, "denied_by_person": 1, "denied_by_clock": 1})
    );
    assert_eq!(stats["overrides"], 1);
    assert_eq!(stats["overrides_by_rule"], json!({"loop-guard": 1}));
    assert_eq!(stats["ai_could_not_answer"], 2);
    let text = stdout(&handover(&[
        "audit",
        "stats",
        "--data",
        dir.path().to_str().unwrap(),
    ]));
    assert!(
        text.contains("3 requested, 1 granted, 2 denied (1 by a person, 1 by the clock)"),
        "{text}"
    );
    assert!(
        text.contains("escalations by rule ai-keeps-missing"),
        "{text}"
    );
}

#[test]
fn the_timeline_tells_what_the_rules_did() {
    let dir = tempfile::tempdir().unwrap();
    let id = rules_log(dir.path());
    let output = handover(&[
        "audit",
        "timeline",
        "--data",
        dir.path().to_str().unwrap(),
        "--conversation",
        &id.to_string(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    for expected in [
        "context shared by human alice: topic billing",
        "waits for approval (rule refunds-need-approval",
        "approved by human alice",
        "denied by human alice",
        "could not answer",
        "by rule ai-keeps-missing",
        "supervisor sam overrode rule loop-guard",
    ] {
        assert!(text.contains(expected), "{expected:?} in\n{text}");
    }
}

fn policy_test(args: &[&str]) -> Value {
    let mut all = vec!["policy", "test", "--json"];
    all.extend_from_slice(args);
    json_of(&handover(&all))
}

#[test]
fn policy_test_says_which_rules_a_message_fires() {
    let asked = policy_test(&["--message", "I want to talk to a human"]);
    let object = asked.as_object().unwrap();
    for key in [
        "escalate",
        "cause",
        "rule",
        "rules",
        "concerns",
        "frustration",
        "policy",
        "policy_version",
    ] {
        assert!(object.contains_key(key), "{key} in {asked}");
    }
    assert_eq!(asked["escalate"], true);
    assert_eq!(asked["rule"], "asked-for-a-person");
    assert_eq!(asked["cause"], "customer_asked_for_human");
    assert_eq!(asked["policy"], "default");
    assert_eq!(
        asked["policy_version"],
        Rules::default_rules().version().as_str()
    );
    assert_eq!(asked["concerns"], json!(["human_requested"]));
    assert!(asked["frustration"].is_number());

    // French and German.
    let french = policy_test(&["--message", "Je veux parler à un conseiller"]);
    assert_eq!(french["rule"], "asked-for-a-person", "{french}");
    let german = policy_test(&["--message", "Ich möchte mit einem Menschen sprechen"]);
    assert_eq!(german["rule"], "asked-for-a-person", "{german}");

    // A complaint, in French, asking for a person too: both rules fire, in the policy's order.
    let both = policy_test(&[
        "--message",
        "Je veux parler à un conseiller, c'est inadmissible",
    ]);
    let rules: Vec<&str> = both["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        ["asked-for-a-person", "complaint-while-ai"],
        "{both}"
    );
    assert_eq!(both["rules"][1]["cause"], "complaint");

    // A calm question fires nothing.
    let calm = policy_test(&["--message", "What are your opening hours?"]);
    assert_eq!(calm["escalate"], false);
    assert!(calm["rule"].is_null() && calm["cause"].is_null());
    assert_eq!(calm["rules"], json!([]));
    assert_eq!(calm["concerns"], json!([]));

    // Text.
    let text = stdout(&handover(&[
        "policy",
        "test",
        "--message",
        "I want to talk to a human",
    ]));
    assert!(
        text.contains("escalates: yes, by rule asked-for-a-person"),
        "{text}"
    );
    assert!(text.contains("concerns: human_requested"), "{text}");
}

#[test]
fn policy_test_reads_a_custom_policy() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("strict.toml");
    std::fs::write(
        &file,
        r#"
name = "touchy"

[[rule]]
name = "any-frustration"
kind = "frustration"
over_customer_messages = 1
threshold = 0.1
"#,
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let angry = policy_test(&[
        "--policy",
        file,
        "--message",
        "This is RIDICULOUS!!! Useless!!!",
    ]);
    assert_eq!(angry["policy"], "touchy");
    assert_eq!(angry["escalate"], true, "{angry}");
    assert_eq!(angry["rule"], "any-frustration");
    assert_eq!(angry["cause"], "frustration");
    assert!(angry["frustration"].as_f64().unwrap() >= 0.1, "{angry}");
    // This policy has no rule for a request for a human: the lexicon still hears it.
    let asked = policy_test(&["--policy", file, "--message", "I want to talk to a human"]);
    assert_eq!(asked["escalate"], false, "{asked}");
    assert_eq!(asked["concerns"], json!(["human_requested"]));

    // A policy file with a mistake: exit 1, its line named.
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"bad\"\n[[rule]]\nname = \"x\"\nkind = \"nope\"\n",
    )
    .unwrap();
    let output = handover(&[
        "policy",
        "test",
        "--policy",
        bad.to_str().unwrap(),
        "--message",
        "hi",
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("bad.toml"), "{}", stderr(&output));
}

/// What `what-if` under [`STRICT`] must find on a log, derived from its export.
#[derive(Debug, Default)]
struct Expected {
    customer_messages: u64,
    handoffs: u64,
    refused: u64,
    skills: u64,
    gated: u64,
    no_longer_gated: u64,
    misses: u64,
    no_longer_escalated: u64,
    same: u64,
    earlier: u64,
    new: u64,
}

/// Every customer message while AI-active fires; a second handoff is refused; `search_faq`
/// waits for approval.
const STRICT: &str = r#"
name = "strict"

[[rule]]
name = "one-handoff"
kind = "loop_guard"
max_handoffs = 1
cooldown_minutes = 0

[[rule]]
name = "always"
kind = "frustration"
over_customer_messages = 1
threshold = 0.0

[[rule]]
name = "gate-faq"
kind = "skill_approval"
skills = ["search_faq"]
deadline_minutes = 10
"#;

fn expected_under_strict(lines: &[Value]) -> (Expected, u64) {
    #[derive(Default)]
    struct Conv {
        active: bool,
        messages: u32,
        handoffs: u32,
        pending: Option<u32>,
        recorded_first: Option<u32>,
        other_first: Option<u32>,
        started: Vec<(String, String)>,
        miss_pending: bool,
    }
    let mut expected = Expected::default();
    let mut conversations: HashMap<String, Conv> = HashMap::new();
    let mut rule_escalations_on_messages = 0;
    for line in lines {
        let Some(id) = line["conversation_id"].as_str() else {
            continue;
        };
        let conv = conversations.entry(id.to_owned()).or_default();
        let kind = line["type"].as_str().unwrap();
        let data = &line["data"];
        if let Some(message) = conv.pending.take() {
            if kind == "escalated_to_human" && data["rule"].is_string() {
                conv.recorded_first.get_or_insert(message);
                rule_escalations_on_messages += 1;
            }
        }
        // The strict policy has no rule on the AI's misses: every escalation a miss led to is
        // one it would not make.
        if std::mem::take(&mut conv.miss_pending)
            && kind == "escalated_to_human"
            && data["rule"] == "ai-keeps-missing"
        {
            expected.no_longer_escalated += 1;
        }
        match kind {
            "handed_off_to_ai" => {
                expected.handoffs += 1;
                if conv.handoffs >= 1 {
                    expected.refused += 1;
                }
                conv.handoffs += 1;
                conv.active = true;
            }
            "message_posted" if conv.active && data["author"]["kind"] == "customer" => {
                expected.customer_messages += 1;
                conv.messages += 1;
                conv.pending = Some(conv.messages);
                conv.other_first.get_or_insert(conv.messages);
            }
            "escalated_to_human" | "reclaimed" | "conversation_closed" => conv.active = false,
            // A skill started is a moment; its outcome, recorded later, is not.
            "ai_skill_started" => {
                expected.skills += 1;
                if data["skill"]["name"] == "search_faq" {
                    expected.gated += 1;
                }
                let skill = (
                    data["agent_id"].to_string(),
                    data["skill"]["name"].to_string(),
                );
                conv.started.push(skill);
            }
            "ai_action_recorded" => {
                let skill = (
                    data["agent_id"].to_string(),
                    data["skill"]["name"].to_string(),
                );
                match conv.started.iter().position(|started| *started == skill) {
                    Some(at) => {
                        conv.started.remove(at);
                    }
                    None => {
                        expected.skills += 1;
                        if data["skill"]["name"] == "search_faq" {
                            expected.gated += 1;
                        }
                    }
                }
            }
            // The default policy gates refunds, the strict one does not.
            "skill_approval_requested" => {
                expected.skills += 1;
                assert_eq!(data["rule"], "refunds-need-approval", "{line}");
                expected.no_longer_gated += 1;
            }
            // An approved skill's outcome is no moment of its own.
            "skill_approved" => conv
                .started
                .push((data["agent_id"].to_string(), data["skill"].to_string())),
            "ai_could_not_answer" => {
                expected.misses += 1;
                conv.miss_pending = true;
            }
            _ => {}
        }
    }
    for conv in conversations.values() {
        match (conv.recorded_first, conv.other_first) {
            (Some(recorded), Some(other)) if other == recorded => expected.same += 1,
            (Some(recorded), Some(other)) if other < recorded => expected.earlier += 1,
            (None, Some(_)) => expected.new += 1,
            (None, None) => {}
            other => panic!("the strict policy fires on every message: {other:?}"),
        }
    }
    (expected, rule_escalations_on_messages)
}

fn finding_count(report: &Value, moment: &str, kind: &str, rule: &str) -> u64 {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["moment"] == moment && f["kind"] == kind && f["rule"] == rule)
        .map(|f| f["count"].as_u64().unwrap())
        .sum()
}

#[test]
fn what_if_finds_no_difference_under_the_log_s_own_policy_and_the_known_ones_under_another() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let simulated = handover(&["simulate", "--data", data.to_str().unwrap(), "--quiet"]);
    assert!(simulated.status.success(), "{}", stderr(&simulated));
    let lines = export(&data);
    let (expected, rule_escalations) = expected_under_strict(&lines);
    assert!(
        expected.customer_messages > 0
            && expected.gated > 0
            && expected.no_longer_gated > 0
            && expected.no_longer_escalated > 0
            && rule_escalations > 0,
        "the simulation exercises the rules: {expected:?}"
    );

    // The policy that wrote the log: `handover policy default`.
    let default = dir.path().join("default.toml");
    let printed = handover(&["policy", "default"]);
    std::fs::write(&default, &printed.stdout).unwrap();
    let what_if = |policy: &Path, json: bool| {
        let mut args = vec![
            "audit",
            "what-if",
            "--data",
            data.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ];
        if json {
            args.push("--json");
        }
        handover(&args)
    };
    let same = json_of(&what_if(&default, true));
    assert_eq!(same["differences"], 0, "{same:#}");
    assert_eq!(same["conversations_with_differences"], 0);
    assert_eq!(same["policy"], "default");
    assert_eq!(
        same["recorded_policy_versions"],
        json!([Rules::default_rules().version().as_str()])
    );
    assert_eq!(
        same["compared"]["customer_messages"],
        expected.customer_messages
    );
    assert_eq!(same["compared"]["handoffs"], expected.handoffs);
    assert_eq!(same["compared"]["skills"], expected.skills);
    assert_eq!(same["compared"]["ai_misses"], expected.misses);
    for finding in same["findings"].as_array().unwrap() {
        assert_eq!(finding["kind"], "same", "{finding}");
    }
    let text = stdout(&what_if(&default, false));
    assert!(text.contains("\nno difference\n"), "{text}");

    // A stricter policy.
    let strict = dir.path().join("strict.toml");
    std::fs::write(&strict, STRICT).unwrap();
    let report = json_of(&what_if(&strict, true));
    assert_eq!(report["policy"], "strict");
    let count = |moment, kind, rule| finding_count(&report, moment, kind, rule);
    assert_eq!(count("customer_message", "same", "always"), expected.same);
    assert_eq!(
        count("customer_message", "earlier", "always"),
        expected.earlier
    );
    assert_eq!(count("customer_message", "new", "always"), expected.new);
    assert_eq!(
        count("handoff", "newly_refused", "one-handoff"),
        expected.refused
    );
    assert_eq!(count("skill", "newly_gated", "gate-faq"), expected.gated);
    assert_eq!(
        count("skill", "no_longer_gated", "refunds-need-approval"),
        expected.no_longer_gated
    );
    assert_eq!(
        count("ai_miss", "no_longer_escalated", "ai-keeps-missing"),
        expected.no_longer_escalated
    );
    assert_eq!(
        report["differences"],
        expected.earlier
            + expected.new
            + expected.refused
            + expected.gated
            + expected.no_longer_gated
            + expected.no_longer_escalated,
        "{report:#}"
    );
    for finding in report["findings"].as_array().unwrap() {
        let examples = finding["examples"].as_array().unwrap();
        assert!(!examples.is_empty() && examples.len() <= 5, "{finding}");
    }
    let text = stdout(&what_if(&strict, false));
    assert!(text.contains("newly_gated"), "{text}");
    assert!(text.contains("gate-faq"), "{text}");

    // A policy file with a mistake is refused, its line named.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = 3\n").unwrap();
    let output = what_if(&bad, false);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("bad.toml"), "{}", stderr(&output));
}
