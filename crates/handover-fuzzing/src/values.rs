//! Domain values built from fuzz input: identities and texts from small tables (so that
//! commands meet the same people again), or from the input's own bytes (so that validation and
//! the policy see arbitrary text). Every value built here is valid: raw text that a constructor
//! refuses falls back to the table's first entry.

use handover_core::{
    AgentName, AiAgentEvent, AiAgentId, Author, Channel, Concern, ConversationEvent,
    ConversationId, CustomerId, EscalationCause, Event, HumanId, MessageText, Reason, Skill,
    SkillData, SkillName, SkillOutcome, Specialty, StreamId,
};
use handover_store::{RecordedAt, RecordedEvent};

use crate::input::Input;

/// AI agents: `faq` and `sales` start active, `idle` registered but inactive, `ghost`
/// unregistered.
pub(crate) const AGENTS: [&str; 4] = ["faq", "sales", "idle", "ghost"];
pub(crate) const HUMANS: [&str; 3] = ["ana", "bob", "carol"];
pub(crate) const CUSTOMERS: [&str; 3] = ["cust-1", "cust-2", "cust-3"];
pub(crate) const CHANNELS: [&str; 3] = ["web-chat", "whatsapp", "email"];
pub(crate) const NAMES: [&str; 3] = ["FAQ Bot", "Sales Bot", "Robô de Preços"];
pub(crate) const SPECIALTIES: [&str; 3] = ["faq", "pricing", "billing"];
pub(crate) const SKILLS: [&str; 2] = ["lookup_price", "lookup_hours"];

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
pub(crate) const SKILL_DATA: [&str; 3] = [r#"{"plan":"pro"}"#, r#"{"usd":49}"#, ""];

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
    match input.below(3) {
        0 => Author::Customer(customer_id(input)),
        1 => Author::Human(human_id(input)),
        _ => Author::Ai(agent_id(input)),
    }
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

fn cause(input: &mut Input<'_>) -> EscalationCause {
    [
        EscalationCause::AgentRequested,
        EscalationCause::CustomerAskedForHuman,
        EscalationCause::AgentDeactivated,
    ][input.below(3)]
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
    match input.below(10) {
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
        _ => Event::Conversation(ConversationEvent::Closed {
            by: author(input),
            reason: optional_reason(input),
        }),
    }
}

/// The conversation id of number `n` (a UUID v7 of the fixture's time).
pub(crate) fn conversation_id(n: u128) -> ConversationId {
    ConversationId::from_uuid(uuid::Uuid::from_u128(
        0x0190_f1f0_0000_7000_8000_0000_0000_0000 + n,
    ))
}

/// A stream: an AI agent's, one of three conversations, or a conversation of any UUID.
pub(crate) fn stream(input: &mut Input<'_>) -> StreamId {
    match input.below(8) {
        0 | 1 => StreamId::AiAgent(agent_id(input)),
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
