//! Domain values built from fuzz input: identities and texts from small tables (so that
//! commands meet the same people again), or from the input's own bytes (so that validation and
//! the policy see arbitrary text). Every value built here is valid: raw text that a constructor
//! refuses falls back to the table's first entry.

use handover_core::context::Context;
use handover_core::rules::{PolicyVersion, RuleName, RuleVerdict, Rules};
use handover_core::{
    AgentName, AiAgentEvent, AiAgentId, Author, Channel, Concern, ConversationEvent,
    ConversationId, CustomerId, EscalationCause, Event, HumanEvent, HumanId, Language, MessageText,
    NoteAudience, NoticeKind, Presence, Reason, Role, Skill, SkillData, SkillName, SkillOutcome,
    Specialty, StreamId, SystemActor, TeamId, TenantId, Timestamp, TransferTarget, WaitCause,
};
use handover_store::{RecordedAt, RecordedEvent};

use crate::input::Input;

/// AI agents: `faq` and `sales` start active, `idle` registered but inactive, `ghost`
/// unregistered.
pub(crate) const AGENTS: [&str; 4] = ["faq", "sales", "idle", "ghost"];
/// Humans: `ana` (an agent of the `billing` team), `bob` (a supervisor) and `carol` (an agent)
/// of the default tenant, `dave` (an agent of `acme`), all signed in; `erin` unregistered.
pub(crate) const HUMANS: [&str; 5] = ["ana", "bob", "carol", "dave", "erin"];
/// Tenants: the default one and `acme`.
pub(crate) const TENANTS: [&str; 2] = ["default", "acme"];
pub(crate) const TEAMS: [&str; 2] = ["billing", "vip"];
pub(crate) const LANGUAGES: [&str; 4] = ["en", "pt-BR", "es", "fr"];
pub(crate) const CUSTOMERS: [&str; 3] = ["cust-1", "cust-2", "cust-3"];
pub(crate) const CHANNELS: [&str; 3] = ["web-chat", "whatsapp", "email"];
pub(crate) const NAMES: [&str; 3] = ["FAQ Bot", "Sales Bot", "Robô de Preços"];
pub(crate) const SPECIALTIES: [&str; 3] = ["faq", "pricing", "billing"];
/// Skills: two no rule gates, then `refund`, which the default policy's
/// `refunds-need-approval` makes wait for a person.
pub(crate) const SKILLS: [&str; 3] = ["lookup_price", "lookup_hours", "refund"];
/// Rule names: the default policy's, then an embedder's.
pub(crate) const RULES: [&str; 4] = [
    "guidance-concerns",
    "asked-for-a-person",
    "refunds-need-approval",
    "business-hours",
];
/// Context variables: (name, value).
pub(crate) const VARIABLES: [(&str, &str); 3] =
    [("plan", "pro"), ("order_id", "A-17"), ("amount", "120")];

/// Customer messages: ordinary ones first (so handoffs stay possible), then one of each
/// concern in the policy's three languages.
pub(crate) const PHRASES: [&str; 14] = [
    "What are your business hours?",
    "How much is the pro plan?",
    "Thanks!",
    "Obrigado, era isso.",
    "¿Cuál es el horario?",
    "line one\nline two\twith a tab",
    "Can I talk to a human?",
    "Quero falar com um ATENDENTE!",
    "Quiero hablar con una persona",
    "This is unacceptable",
    "Isso é um absurdo",
    "Can we negotiate a discount?",
    "Necesito un abogado, es urgente",
    "x",
];
pub(crate) const REASONS: [&str; 3] = ["routine question", "customer is a VIP", "done"];
pub(crate) const SKILL_DATA: [&str; 4] = [
    r#"{"plan":"pro"}"#,
    r#"{"usd":49}"#,
    "",
    r#"{"order":"A-17","amount":120}"#,
];

/// Raw text: a length (in units of 4 bytes, so up to about 1 KiB) and that many input bytes,
/// read as UTF-8 with invalid sequences replaced.
fn raw_text(input: &mut Input<'_>) -> String {
    let len = usize::from(input.byte()) * 4;
    String::from_utf8_lossy(input.take(len)).into_owned()
}

/// A value from `table`, or (for a selector byte from 0xF0 up) from raw input bytes if
/// `make` accepts them.
pub(crate) fn pick<T, E>(
    input: &mut Input<'_>,
    table: &[&str],
    make: impl Fn(String) -> Result<T, E>,
) -> T {
    let selector = input.byte();
    if selector >= 0xF0 {
        if let Ok(value) = make(raw_text(input)) {
            return value;
        }
    }
    let entry = table[usize::from(selector) % table.len()];
    make(entry.to_owned())
        .ok()
        .expect("the tables hold valid values")
}

pub(crate) fn agent_id(input: &mut Input<'_>) -> AiAgentId {
    pick(input, &AGENTS, AiAgentId::new)
}

pub(crate) fn human_id(input: &mut Input<'_>) -> HumanId {
    pick(input, &HUMANS, HumanId::new)
}

pub(crate) fn tenant_id(input: &mut Input<'_>) -> TenantId {
    pick(input, &TENANTS, TenantId::new)
}

/// A team, or (for an even byte) none: the general queue.
pub(crate) fn team(input: &mut Input<'_>) -> Option<TeamId> {
    input.bool().then(|| pick(input, &TEAMS, TeamId::new))
}

/// A language, or (for an even byte) none.
pub(crate) fn language(input: &mut Input<'_>) -> Option<Language> {
    input.bool().then(|| pick(input, &LANGUAGES, Language::new))
}

pub(crate) fn role(input: &mut Input<'_>) -> Role {
    if input.bool() {
        Role::Supervisor
    } else {
        Role::Agent
    }
}

pub(crate) fn presence(input: &mut Input<'_>) -> Presence {
    [Presence::Available, Presence::Away, Presence::Offline][input.below(3)]
}

pub(crate) fn audience(input: &mut Input<'_>) -> NoteAudience {
    if input.bool() {
        NoteAudience::Ai
    } else {
        NoteAudience::Staff
    }
}

/// Where a transfer goes: a human or a team's queue.
pub(crate) fn transfer_target(input: &mut Input<'_>) -> TransferTarget {
    if input.bool() {
        TransferTarget::Team(pick(input, &TEAMS, TeamId::new))
    } else {
        TransferTarget::Human(human_id(input))
    }
}

pub(crate) fn customer_id(input: &mut Input<'_>) -> CustomerId {
    pick(input, &CUSTOMERS, CustomerId::new)
}

pub(crate) fn message(input: &mut Input<'_>) -> MessageText {
    pick(input, &PHRASES, MessageText::new)
}

pub(crate) fn reason(input: &mut Input<'_>) -> Reason {
    pick(input, &REASONS, Reason::new)
}

fn optional_reason(input: &mut Input<'_>) -> Option<Reason> {
    input.bool().then(|| reason(input))
}

fn author(input: &mut Input<'_>) -> Author {
    match input.below(4) {
        0 => Author::Customer(customer_id(input)),
        1 => Author::Human(human_id(input)),
        2 => Author::Ai(agent_id(input)),
        _ => Author::System(system_actor(input)),
    }
}

fn system_actor(input: &mut Input<'_>) -> SystemActor {
    [
        SystemActor::Router,
        SystemActor::Clock,
        SystemActor::Backend,
    ][input.below(3)]
}

/// A time near the fixture's, or any.
fn timestamp(input: &mut Input<'_>) -> Timestamp {
    match input.byte() {
        0xFF => Timestamp(input.u64() as i64),
        small => Timestamp::from_millis(1_720_000_000_000 + i64::from(small) * 1_000),
    }
}

/// A duration in milliseconds: small mostly, or any.
fn millis(input: &mut Input<'_>) -> u64 {
    match input.byte() {
        0xFF => input.u64(),
        small => u64::from(small) * 1_000,
    }
}

fn wait_cause(input: &mut Input<'_>) -> WaitCause {
    match input.below(5) {
        0 => WaitCause::Opened,
        1 => WaitCause::Escalated(cause(input)),
        2 => WaitCause::HumanOffline,
        3 => WaitCause::HumanRemoved,
        _ => WaitCause::Transferred,
    }
}

fn notice_kind(input: &mut Input<'_>) -> NoticeKind {
    [
        NoticeKind::AiJoined,
        NoticeKind::AiLeft,
        NoticeKind::WaitingForPerson,
        NoticeKind::PersonJoined,
    ][input.below(4)]
}

/// A list of concerns as a record may hold it (duplicates and any order included).
fn concerns(input: &mut Input<'_>) -> Vec<Concern> {
    const ALL: [Concern; 4] = [
        Concern::HumanRequested,
        Concern::Complaint,
        Concern::Negotiation,
        Concern::Sensitive,
    ];
    (0..input.below(5)).map(|_| ALL[input.below(4)]).collect()
}

pub(crate) fn cause(input: &mut Input<'_>) -> EscalationCause {
    [
        EscalationCause::AgentRequested,
        EscalationCause::CustomerAskedForHuman,
        EscalationCause::AgentDeactivated,
        EscalationCause::AiTimeout,
        EscalationCause::Frustration,
        EscalationCause::GoingInCircles,
        EscalationCause::AiCouldNotAnswer,
        EscalationCause::Complaint,
    ][input.below(8)]
}

pub(crate) fn rule_name(input: &mut Input<'_>) -> RuleName {
    pick(input, &RULES, RuleName::new)
}

/// The default policy's version mostly, or any valid one.
fn policy_version(input: &mut Input<'_>) -> PolicyVersion {
    match input.byte() {
        0xFF => PolicyVersion::new(format!("{:016x}", input.u64())).expect("16 hex digits"),
        _ => Rules::default_rules().version().clone(),
    }
}

/// An embedder's rule and its reason.
pub(crate) fn verdict(input: &mut Input<'_>) -> RuleVerdict {
    RuleVerdict {
        rule: rule_name(input),
        reason: reason(input),
    }
}

/// A context: a summary, a topic and variables, each there or not; raw text may stand in for
/// the summary.
pub(crate) fn context(input: &mut Input<'_>) -> Context {
    let summary = input
        .bool()
        .then(|| pick(input, &REASONS, Ok::<String, ()>));
    let topic = input.bool().then(|| {
        let index = input.below(SPECIALTIES.len());
        SPECIALTIES[index].to_owned()
    });
    let count = input.below(VARIABLES.len() + 1);
    let variables: Vec<(&str, &str)> = VARIABLES[..count].to_vec();
    Context::new(summary, topic.clone(), variables)
        .or_else(|_| Context::new(None, topic, Vec::<(&str, &str)>::new()))
        .expect("a context of the tables is valid")
}

fn skill(input: &mut Input<'_>) -> Skill {
    let name = pick(input, &SKILLS, SkillName::new);
    let data = pick(input, &SKILL_DATA, SkillData::new);
    let outcome = pick(input, &SKILL_DATA, SkillData::new);
    Skill {
        name,
        input: data,
        outcome: if input.bool() {
            SkillOutcome::Failed(outcome)
        } else {
            SkillOutcome::Succeeded(outcome)
        },
    }
}

/// Any event of any type, with fields from the input.
pub(crate) fn event(input: &mut Input<'_>) -> Event {
    match input.below(35) {
        0 => Event::AiAgent(AiAgentEvent::Registered {
            agent_id: agent_id(input),
            name: pick(input, &NAMES, AgentName::new),
            specialties: (0..input.below(4))
                .map(|_| pick(input, &SPECIALTIES, Specialty::new))
                .collect(),
        }),
        1 => Event::AiAgent(AiAgentEvent::Activated {
            agent_id: agent_id(input),
        }),
        2 => Event::AiAgent(AiAgentEvent::Deactivated {
            agent_id: agent_id(input),
        }),
        3 => Event::Conversation(ConversationEvent::Opened {
            customer: customer_id(input),
            channel: pick(input, &CHANNELS, Channel::new),
            human: input.bool().then(|| human_id(input)),
        }),
        4 => Event::Conversation(ConversationEvent::MessagePosted {
            author: author(input),
            text: message(input),
            concerns: concerns(input),
        }),
        5 => Event::Conversation(ConversationEvent::HandedOffToAi {
            agent_id: agent_id(input),
            agent_name: pick(input, &NAMES, AgentName::new),
            by_human: human_id(input),
            reason: optional_reason(input),
        }),
        6 => Event::Conversation(ConversationEvent::AiActionRecorded {
            agent_id: agent_id(input),
            skill: skill(input),
        }),
        7 => Event::Conversation(ConversationEvent::Reclaimed {
            agent_id: agent_id(input),
            by_human: human_id(input),
            reason: optional_reason(input),
        }),
        8 => Event::Conversation(ConversationEvent::EscalatedToHuman {
            agent_id: agent_id(input),
            reason: reason(input),
            cause: cause(input),
        }),
        9 => Event::Conversation(ConversationEvent::Closed {
            by: author(input),
            reason: optional_reason(input),
        }),
        10 => Event::AiAgent(AiAgentEvent::RegisteredIn {
            agent_id: agent_id(input),
            tenant: tenant_id(input),
            name: pick(input, &NAMES, AgentName::new),
            specialties: (0..input.below(4))
                .map(|_| pick(input, &SPECIALTIES, Specialty::new))
                .collect(),
        }),
        11 => Event::Conversation(ConversationEvent::Started {
            tenant: tenant_id(input),
            customer: customer_id(input),
            channel: pick(input, &CHANNELS, Channel::new),
            team: team(input),
            language: language(input),
            at: timestamp(input),
        }),
        12 => Event::Conversation(ConversationEvent::AwaitingHuman {
            team: team(input),
            cause: wait_cause(input),
            since: timestamp(input),
        }),
        13 => Event::Conversation(ConversationEvent::HumanAssigned {
            human_id: human_id(input),
            name: pick(input, &NAMES, AgentName::new),
            team: team(input),
            by: author(input),
            at: timestamp(input),
        }),
        14 => Event::Conversation(ConversationEvent::Transferred {
            to: transfer_target(input),
            reason: reason(input),
            by: author(input),
            at: timestamp(input),
        }),
        15 => Event::Conversation(ConversationEvent::SlaWarning {
            team: team(input),
            waited_ms: millis(input),
            threshold_ms: millis(input),
            at: timestamp(input),
        }),
        16 => Event::Conversation(ConversationEvent::SlaBreached {
            team: team(input),
            waited_ms: millis(input),
            threshold_ms: millis(input),
            at: timestamp(input),
        }),
        17 => Event::Conversation(ConversationEvent::AiReplyOverdue {
            agent_id: agent_id(input),
            waited_ms: millis(input),
            deadline_ms: millis(input),
            at: timestamp(input),
        }),
        18 => Event::Conversation(ConversationEvent::CustomerNotice {
            kind: notice_kind(input),
            text: message(input),
            language: pick(input, &LANGUAGES, Language::new),
        }),
        19 => Event::Conversation(ConversationEvent::InternalNote {
            to: audience(input),
            text: message(input),
            by: author(input),
            at: timestamp(input),
        }),
        20 => Event::Conversation(ConversationEvent::FlagRaised {
            by: author(input),
            at: timestamp(input),
        }),
        21 => Event::Conversation(ConversationEvent::FlagLowered {
            by: author(input),
            at: timestamp(input),
        }),
        22 => Event::Conversation(ConversationEvent::AiSkillStarted {
            agent_id: agent_id(input),
            name: pick(input, &SKILLS, SkillName::new),
            input: pick(input, &SKILL_DATA, SkillData::new),
        }),
        23 => Event::Human(HumanEvent::Registered {
            human_id: human_id(input),
            tenant: tenant_id(input),
            name: pick(input, &NAMES, AgentName::new),
            role: role(input),
            teams: (0..input.below(3))
                .map(|_| pick(input, &TEAMS, TeamId::new))
                .collect(),
            capacity: match input.byte() {
                0xFF => input.u64() as u32,
                small => u32::from(small % 8),
            },
        }),
        24 => Event::Human(HumanEvent::PresenceChanged {
            human_id: human_id(input),
            presence: presence(input),
        }),
        25 => Event::Human(HumanEvent::Removed {
            human_id: human_id(input),
        }),
        26 => Event::Conversation(ConversationEvent::Opened {
            customer: customer_id(input),
            channel: pick(input, &CHANNELS, Channel::new),
            human: None,
        }),
        28 => Event::Conversation(ConversationEvent::EscalatedByRule {
            agent_id: agent_id(input),
            reason: reason(input),
            cause: cause(input),
            rule: rule_name(input),
            policy_version: policy_version(input),
            at: timestamp(input),
        }),
        29 => Event::Conversation(ConversationEvent::AiCouldNotAnswer {
            agent_id: agent_id(input),
            reason: optional_reason(input),
            at: timestamp(input),
        }),
        30 => Event::Conversation(ConversationEvent::PolicyOverridden {
            by: human_id(input),
            rule: rule_name(input),
            policy_version: policy_version(input),
            refusal: reason(input),
            at: timestamp(input),
        }),
        31 => Event::Conversation(ConversationEvent::SkillApprovalRequested {
            agent_id: agent_id(input),
            name: pick(input, &SKILLS, SkillName::new),
            input: pick(input, &SKILL_DATA, SkillData::new),
            rule: rule_name(input),
            policy_version: policy_version(input),
            deadline_ms: millis(input),
            at: timestamp(input),
        }),
        32 => Event::Conversation(ConversationEvent::SkillApproved {
            agent_id: agent_id(input),
            name: pick(input, &SKILLS, SkillName::new),
            by: author(input),
            rule: rule_name(input),
            policy_version: policy_version(input),
            at: timestamp(input),
        }),
        33 => Event::Conversation(ConversationEvent::SkillDenied {
            agent_id: agent_id(input),
            name: pick(input, &SKILLS, SkillName::new),
            by: author(input),
            reason: reason(input),
            rule: rule_name(input),
            policy_version: policy_version(input),
            at: timestamp(input),
        }),
        34 => Event::Conversation(ConversationEvent::ContextShared {
            by: author(input),
            context: context(input),
            at: timestamp(input),
        }),
        _ => Event::Conversation(ConversationEvent::MessagePosted {
            author: Author::System(system_actor(input)),
            text: message(input),
            concerns: vec![],
        }),
    }
}

/// The conversation id of number `n` (a UUID v7 of the fixture's time).
pub(crate) fn conversation_id(n: u128) -> ConversationId {
    ConversationId::from_uuid(uuid::Uuid::from_u128(
        0x0190_f1f0_0000_7000_8000_0000_0000_0000 + n,
    ))
}

/// A stream: an AI agent's, a human's, one of three conversations, or a conversation of any
/// UUID.
pub(crate) fn stream(input: &mut Input<'_>) -> StreamId {
    match input.below(8) {
        0 => StreamId::AiAgent(agent_id(input)),
        1 => StreamId::Human(human_id(input)),
        7 => {
            let high = u128::from(input.u64()) << 64;
            StreamId::Conversation(ConversationId::from_uuid(uuid::Uuid::from_u128(
                high | u128::from(input.u64()),
            )))
        }
        n => StreamId::Conversation(conversation_id(n as u128 % 3 + 1)),
    }
}

/// A record of any stream, place and time, holding any event.
pub(crate) fn recorded_event(input: &mut Input<'_>) -> RecordedEvent {
    // Small numbers mostly, so records look like a real log's, but any u64 or i64 as well.
    let number = |input: &mut Input<'_>| match input.byte() {
        0xFF => input.u64(),
        small => u64::from(small),
    };
    let position = number(input);
    let stream = stream(input);
    let seq = number(input);
    let recorded_at = match input.byte() {
        0xFF => RecordedAt(input.u64() as i64),
        small => RecordedAt(1_720_000_000_000_000 + i64::from(small) * 1_000_000),
    };
    RecordedEvent {
        position,
        stream,
        seq,
        recorded_at,
        event: event(input),
    }
}
