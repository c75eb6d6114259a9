//! Test logs: real sled directories filled through `SledStore` with events the core's `decide`
//! made, plus ways to forge or damage them.

#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use handover_core::*;
use handover_sled::{SledOptions, SledStore};
use handover_store::{EventStore, ExpectedVersion};

/// A log being written: the store, the roster and each conversation's state, so commands go
/// through `decide` exactly as the runtime would send them.
pub struct LogBuilder {
    pub dir: PathBuf,
    store: SledStore,
    runtime: tokio::runtime::Runtime,
    roster: Roster,
    directory: Directory,
    pub settings: Settings,
    conversations: HashMap<ConversationId, (Conversation, u64)>,
    agents: HashMap<AiAgentId, u64>,
    humans: HashMap<HumanId, u64>,
    next_id: u128,
    /// The runtime's clock as the rules see it: one second later at each command, unless
    /// moved on with [`LogBuilder::advance`].
    pub now: Timestamp,
}

pub fn agent(id: &str) -> AiAgentId {
    AiAgentId::new(id).unwrap()
}

pub fn human(id: &str) -> HumanId {
    HumanId::new(id).unwrap()
}

pub fn customer(id: &str) -> CustomerId {
    CustomerId::new(id).unwrap()
}

pub fn reason(text: &str) -> Option<Reason> {
    Some(Reason::new(text).unwrap())
}

pub fn text(text: &str) -> MessageText {
    MessageText::new(text).unwrap()
}

impl LogBuilder {
    pub fn new(dir: &Path) -> LogBuilder {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        LogBuilder {
            dir: dir.to_path_buf(),
            store: SledStore::open(dir, SledOptions::default()).unwrap(),
            runtime,
            roster: Roster::default(),
            directory: Directory::new(),
            settings: Settings::default(),
            conversations: HashMap::new(),
            agents: HashMap::new(),
            humans: HashMap::new(),
            next_id: 1,
            now: Timestamp::from_millis(1_795_653_000_000),
        }
    }

    pub fn store(&self) -> &SledStore {
        &self.store
    }

    /// Closes the store, releasing the directory.
    pub fn finish(self) -> PathBuf {
        self.store.flush().unwrap();
        self.dir
    }

    fn append(&self, stream: &StreamId, expected: ExpectedVersion, events: &[Event]) {
        self.runtime
            .block_on(self.store.append(stream, expected, events.to_vec()))
            .unwrap()
            .unwrap();
    }

    fn agent_command(&mut self, id: &AiAgentId, command: AiAgentCommand) {
        let events = agent::decide(id, self.roster.get(id), &command).unwrap();
        let version = self.agents.entry(id.clone()).or_insert(0);
        let expected = ExpectedVersion::Exact(*version);
        *version += events.len() as u64;
        for event in &events {
            self.roster.evolve(event).unwrap();
        }
        let events: Vec<Event> = events.into_iter().map(Event::AiAgent).collect();
        self.append(&StreamId::AiAgent(id.clone()), expected, &events);
    }

    fn human_command(&mut self, id: &HumanId, command: HumanCommand) {
        let events = handover_core::human::decide(id, self.directory.get(id), &command)
            .unwrap_or_else(|rejection| panic!("{command:?} was rejected: {rejection}"));
        let version = self.humans.entry(id.clone()).or_insert(0);
        let expected = ExpectedVersion::Exact(*version);
        *version += events.len() as u64;
        for event in &events {
            self.directory.evolve(event).unwrap();
        }
        let events: Vec<Event> = events.into_iter().map(Event::Human).collect();
        self.append(&StreamId::Human(id.clone()), expected, &events);
    }

    /// Registers a human and makes them available.
    pub fn register_human(
        &mut self,
        id: &str,
        tenant: &str,
        role: Role,
        teams: &[&str],
        capacity: u32,
    ) {
        self.human_command(
            &human(id),
            HumanCommand::Register {
                tenant: TenantId::new(tenant).unwrap(),
                name: AgentName::new(id).unwrap(),
                role,
                teams: teams.iter().map(|t| TeamId::new(*t).unwrap()).collect(),
                capacity,
            },
        );
        self.presence(id, Presence::Available);
    }

    pub fn human_command_remove(&mut self, id: &str) {
        self.human_command(&human(id), HumanCommand::Remove);
    }

    pub fn presence(&mut self, id: &str, presence: Presence) {
        self.human_command(&human(id), HumanCommand::SetPresence { presence });
    }

    /// Registers `id` as an available agent of the default tenant, unless they are registered.
    pub fn ensure_human(&mut self, id: &str) {
        if self.directory.get(&human(id)).is_none() {
            self.register_human(id, "default", Role::Agent, &[], 10);
        }
    }

    fn ensure_participant(&mut self, by: &Participant) {
        if let Participant::Human(id) = by {
            self.ensure_human(id.as_str());
        }
    }

    /// Moves the clock on by `millis` milliseconds.
    pub fn advance(&mut self, millis: u64) {
        self.now = self.now.plus_millis(millis);
    }

    pub fn directory(&self) -> &Directory {
        &self.directory
    }

    pub fn register_in(&mut self, id: &str, tenant: &str, name: &str) {
        self.agent_command(
            &agent(id),
            AiAgentCommand::RegisterIn {
                tenant: TenantId::new(tenant).unwrap(),
                name: AgentName::new(name).unwrap(),
                specialties: vec![],
            },
        );
    }

    pub fn register(&mut self, id: &str, name: &str, specialties: &[&str]) {
        let id = agent(id);
        self.agent_command(
            &id.clone(),
            AiAgentCommand::Register {
                name: AgentName::new(name).unwrap(),
                specialties: specialties
                    .iter()
                    .map(|s| Specialty::new(*s).unwrap())
                    .collect(),
            },
        );
    }

    pub fn activate(&mut self, id: &str) {
        self.agent_command(&agent(id), AiAgentCommand::Activate);
    }

    pub fn deactivate(&mut self, id: &str) {
        self.agent_command(&agent(id), AiAgentCommand::Deactivate);
    }

    /// A new conversation id, not opened yet.
    pub fn new_conversation(&mut self) -> ConversationId {
        let id = ConversationId::from_uuid(uuid::Uuid::from_u128(
            0x0190_f1f0_0000_7000_8000_0000_0000_0000 + self.next_id,
        ));
        self.next_id += 1;
        self.conversations.insert(id, (Conversation::NotOpened, 0));
        id
    }

    /// Opens a conversation in `tenant`, waiting in `team`'s queue or given to `human_id`.
    pub fn start(
        &mut self,
        tenant: &str,
        customer_id: &str,
        team: Option<&str>,
        human_id: Option<&str>,
    ) -> ConversationId {
        let id = self.new_conversation();
        self.command(
            id,
            ConversationCommand::Start {
                tenant: TenantId::new(tenant).unwrap(),
                customer: customer(customer_id),
                channel: Channel::new("web-chat").unwrap(),
                team: team.map(|t| TeamId::new(t).unwrap()),
                language: Some(Language::new("en").unwrap()),
                human: human_id.map(human),
            },
        );
        id
    }

    pub fn open(
        &mut self,
        customer_id: &str,
        channel: &str,
        human_id: Option<&str>,
    ) -> ConversationId {
        if let Some(h) = human_id {
            self.ensure_human(h);
        }
        let id = self.new_conversation();
        self.command(
            id,
            ConversationCommand::Open {
                customer: customer(customer_id),
                channel: Channel::new(channel).unwrap(),
                human: human_id.map(human),
            },
        );
        id
    }

    /// Runs `command` through `decide` under [`test_policy`] and appends what it decided.
    pub fn command(&mut self, id: ConversationId, command: ConversationCommand) {
        let policy = test_policy();
        let (state, version) = self.conversations.get(&id).cloned().unwrap();
        self.now = self.now.plus_millis(1_000);
        let loads = self.loads();
        let ctx = Ctx::new(&self.roster, &policy)
            .with_directory(&self.directory)
            .with_loads(&loads)
            .with_settings(&self.settings)
            .at(self.now);
        let (events, next) = conversation::decide_with_state(&state, &command, &ctx)
            .unwrap_or_else(|rejection| panic!("{command:?} was rejected: {rejection}"));
        let stored: Vec<Event> = events.into_iter().map(Event::Conversation).collect();
        self.append(
            &StreamId::Conversation(id),
            ExpectedVersion::Exact(version),
            &stored,
        );
        self.conversations
            .insert(id, (next, version + stored.len() as u64));
    }

    /// How many open conversations each human is assigned.
    pub fn loads(&self) -> Loads {
        let mut loads = Loads::new();
        for (state, _) in self.conversations.values() {
            if let Conversation::Open(open) = state {
                if let Some(human) = open.assigned_human() {
                    loads.add(human);
                }
            }
        }
        loads
    }

    /// The state of a conversation.
    pub fn state(&self, id: ConversationId) -> &Conversation {
        &self.conversations[&id].0
    }

    pub fn accept(&mut self, id: ConversationId, by: &str) {
        self.ensure_human(by);
        self.command(id, ConversationCommand::Accept { by: human(by) });
    }

    pub fn assign(&mut self, id: ConversationId, by: Participant, to: &str) {
        self.command(id, ConversationCommand::Assign { by, to: human(to) });
    }

    pub fn tick(&mut self, id: ConversationId) {
        self.command(id, ConversationCommand::Tick);
    }

    /// The current assignment of an AI-active conversation.
    pub fn assignment(&self, id: ConversationId) -> Assignment {
        self.conversations[&id].0.assignment().expect("AI-active")
    }

    pub fn say(&mut self, id: ConversationId, by: Participant, words: &str) {
        self.ensure_participant(&by);
        self.command(
            id,
            ConversationCommand::PostMessage {
                by,
                text: text(words),
            },
        );
    }

    pub fn customer_says(&mut self, id: ConversationId, customer_id: &str, words: &str) {
        self.say(id, Participant::Customer(customer(customer_id)), words);
    }

    pub fn ai_says(&mut self, id: ConversationId, words: &str) {
        let by = Participant::Ai(self.assignment(id));
        self.say(id, by, words);
    }

    pub fn hand_off(&mut self, id: ConversationId, by: &str, agent_id: &str, why: Option<&str>) {
        self.ensure_human(by);
        self.command(
            id,
            ConversationCommand::HandOffToAi {
                by: human(by),
                agent_id: agent(agent_id),
                reason: why.and_then(reason),
            },
        );
    }

    pub fn skill(&mut self, id: ConversationId, name: &str, input: &str, outcome: SkillOutcome) {
        let by = self.assignment(id);
        self.command(
            id,
            ConversationCommand::RecordAiAction {
                by,
                skill: Skill {
                    name: SkillName::new(name).unwrap(),
                    input: SkillData::new(input).unwrap(),
                    outcome,
                },
            },
        );
    }

    pub fn reclaim(&mut self, id: ConversationId, by: &str, why: Option<&str>) {
        self.ensure_human(by);
        self.command(
            id,
            ConversationCommand::Reclaim {
                by: human(by),
                reason: why.and_then(reason),
            },
        );
    }

    pub fn escalate(&mut self, id: ConversationId, why: &str, cause: EscalationCause) {
        let by = self.assignment(id);
        self.command(
            id,
            ConversationCommand::Escalate {
                by,
                reason: Reason::new(why).unwrap(),
                cause,
            },
        );
    }

    pub fn close(&mut self, id: ConversationId, by: Participant, why: Option<&str>) {
        self.ensure_participant(&by);
        self.command(
            id,
            ConversationCommand::Close {
                by,
                reason: why.and_then(reason),
            },
        );
    }

    /// Appends events as they are, without `decide` and with `ExpectedVersion::Any`: a forged
    /// log whose checksums are all valid.
    pub fn forge(&mut self, stream: StreamId, events: Vec<Event>) {
        self.append(&stream, ExpectedVersion::Any, &events);
    }
}

/// The conversations of [`standard_log`].
pub struct Standard {
    /// Reclaimed by bob after a skill, closed by bob.
    pub a: ConversationId,
    /// Escalated because the customer asked for a human, closed by carol.
    pub b: ConversationId,
    /// Escalated by faq-bot, handed to billing-bot, closed by billing-bot while AI-active.
    pub c: ConversationId,
    /// Handed to billing-bot, escalated when it was deactivated; still open.
    pub d: ConversationId,
}

/// Events in [`standard_log`].
pub const STANDARD_EVENTS: u64 = 66;

/// A log with two AI agents and four conversations covering every event type.
pub fn standard_log(log: &mut LogBuilder) -> Standard {
    log.register("faq-bot", "FAQ bot", &["pricing", "faq"]);
    log.activate("faq-bot");
    log.register("billing-bot", "Billing bot", &["billing"]);
    log.activate("billing-bot");
    // Supervisors may act on any conversation of their tenant; the others are agents,
    // registered when they first act.
    log.register_human("bob", "default", Role::Supervisor, &[], 10);
    log.register_human("carol", "default", Role::Supervisor, &[], 10);

    let a = log.open("cust-a", "web-chat", Some("alice"));
    log.customer_says(a, "cust-a", "How much is the pro plan?");
    log.hand_off(a, "alice", "faq-bot", Some("routine pricing question"));
    log.ai_says(a, "Let me look that up.");
    log.skill(
        a,
        "lookup_price",
        r#"{"plan":"pro"}"#,
        SkillOutcome::Succeeded(SkillData::new("49 USD/month").unwrap()),
    );
    log.ai_says(a, "The pro plan is 49 USD a month.");
    log.customer_says(a, "cust-a", "Thanks, and what about teams?");
    log.reclaim(a, "bob", Some("enterprise lead, sales should answer"));
    log.say(
        a,
        Participant::Human(human("bob")),
        "I can help with teams.",
    );
    log.close(a, Participant::Human(human("bob")), Some("resolved"));

    let b = log.open("cust-b", "whatsapp", None);
    log.customer_says(b, "cust-b", "Where is my order?");
    log.hand_off(b, "carol", "faq-bot", None);
    log.skill(
        b,
        "track_order",
        r#"{"order":"42"}"#,
        SkillOutcome::Failed(SkillData::new("carrier timeout").unwrap()),
    );
    // The policy recognises the request, and decide escalates in the same append.
    log.customer_says(b, "cust-b", "I want to talk to a human");
    log.say(b, Participant::Human(human("carol")), "Hi, Carol here.");
    log.close(b, Participant::Human(human("carol")), None);

    let c = log.open("cust-c", "web-chat", Some("dave"));
    log.hand_off(c, "dave", "faq-bot", Some("first-line questions"));
    log.ai_says(c, "Hello!");
    log.escalate(
        c,
        "needs a refund decision",
        EscalationCause::AgentRequested,
    );
    log.accept(c, "dave");
    log.hand_off(c, "dave", "billing-bot", Some("refunds are billing's"));
    log.ai_says(c, "Your refund is on its way.");
    let by = Participant::Ai(log.assignment(c));
    log.close(c, by, Some("refund issued"));

    let d = log.open("cust-d", "email", Some("erin"));
    log.hand_off(d, "erin", "billing-bot", None);
    log.deactivate("billing-bot");
    log.escalate(
        d,
        "billing-bot was deactivated",
        EscalationCause::AgentDeactivated,
    );
    Standard { a, b, c, d }
}

/// The policy the builder's `decide` applies: the default one without the loop guard's
/// cooldown (the logs hand a conversation back to AI a second after an escalation, as a
/// supervisor's override would) and without gating `issue_refund` (the logs run it as a plain
/// skill).
pub fn test_policy() -> handover_core::rules::Rules {
    let text = handover_core::rules::DEFAULT_POLICY_TOML
        .replace("cooldown_minutes = 10", "cooldown_minutes = 0")
        .replace(
            r#"skills = ["refund", "issue_refund", "cancel_subscription"]"#,
            r#"skills = ["refund", "cancel_subscription"]"#,
        );
    handover_core::rules::Rules::parse(&text).expect("the test policy is sound")
}
