//! The conversations the policy benches measure: AI-active, with 8 recent customer messages,
//! and the customer messages they post (short and 1 KB, in several languages). Shared by the
//! `policy` bench and the `policy_p95` example through `#[path]`.

use handover_core::conversation::{self, OpenConversation};
use handover_core::{
    AgentName, AiAgentId, Author, Channel, Conversation, ConversationCommand, ConversationEvent,
    CustomerId, HumanId, MessageText, Participant, SystemActor, TenantId, Timestamp,
};

/// The customer of the measured conversation.
pub(crate) const CUSTOMER: &str = "cust-1";

/// Short customer messages, as they come: calm questions and frustrated ones, in English,
/// Portuguese, Spanish, French, German and Italian.
pub(crate) const SHORT: [(&str, &str); 8] = [
    ("en", "How much is the Pro plan?"),
    ("en-frustrated", "This is a waste of time, I am fed up!!"),
    ("pt", "Quanto tempo demora a entrega do meu pedido?"),
    ("es", "¿Cuál es su horario de atención los sábados?"),
    ("fr", "J'en ai marre, c'est une perte de temps !!"),
    ("de", "Wie lange dauert die Lieferung nach München?"),
    ("it", "Quali metodi di pagamento accettate?"),
    ("pt-frustrated", "Que absurdo, isso não ajuda em nada!!"),
];

/// A message of about 1 KB: `short` repeated with filler words of its language.
pub(crate) fn long(short: &str) -> String {
    let mut text = String::with_capacity(1100);
    while text.len() < 1000 {
        text.push_str(short);
        text.push(' ');
        text.push_str("and some more details about the order I placed last week; ");
    }
    let mut end = text.len().min(1024);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text
}

fn event(event: ConversationEvent, state: Conversation) -> Conversation {
    conversation::evolve(state, &event).expect("the benches' history folds")
}

fn customer_message(text: &str) -> ConversationEvent {
    ConversationEvent::MessagePosted {
        author: Author::Customer(CustomerId::new(CUSTOMER).unwrap()),
        text: MessageText::new(text).unwrap(),
        concerns: Vec::new(),
    }
}

/// An open conversation handed to the AI agent `faq`, with 8 customer messages in its recent
/// window (4 before the handoff, 4 after, each answered by the agent).
pub(crate) fn ai_active() -> Conversation {
    let human = HumanId::new("ana").unwrap();
    let mut state = Conversation::default();
    state = event(
        ConversationEvent::Started {
            tenant: TenantId::default_tenant(),
            customer: CustomerId::new(CUSTOMER).unwrap(),
            channel: Channel::new("web-chat").unwrap(),
            team: None,
            language: None,
            at: Timestamp::default(),
        },
        state,
    );
    state = event(
        ConversationEvent::HumanAssigned {
            human_id: human.clone(),
            name: AgentName::new("Ana").unwrap(),
            team: None,
            by: Author::System(SystemActor::Backend),
            at: Timestamp::default(),
        },
        state,
    );
    let before = [
        "Hi, I have a question about my order",
        "It was order A-1042, placed on Monday",
        "Quanto custa o plano Pro?",
        "And the shipping to Lisbon?",
    ];
    for text in before {
        state = event(customer_message(text), state);
    }
    state = event(
        ConversationEvent::HandedOffToAi {
            agent_id: AiAgentId::new("faq").unwrap(),
            agent_name: AgentName::new("FAQ Bot").unwrap(),
            by_human: human,
            reason: None,
        },
        state,
    );
    let after = [
        "How long does delivery take?",
        "¿Cuánto tarda el envío?",
        "Is it still not shipped?",
        "Wann kommt meine Bestellung an?",
    ];
    for text in after {
        state = event(customer_message(text), state);
        state = event(
            ConversationEvent::MessagePosted {
                author: Author::Ai(AiAgentId::new("faq").unwrap()),
                text: MessageText::new("Orders ship within one business day.").unwrap(),
                concerns: Vec::new(),
            },
            state,
        );
    }
    state
}

/// The command of the customer posting `text`.
pub(crate) fn post(text: &str) -> ConversationCommand {
    ConversationCommand::PostMessage {
        by: Participant::Customer(CustomerId::new(CUSTOMER).unwrap()),
        text: MessageText::new(text).unwrap(),
    }
}

/// `state` with the customer's `text` folded in, as the rules see it on that message.
pub(crate) fn with_message(state: &Conversation, text: &str) -> OpenConversation {
    match event(customer_message(text), state.clone()) {
        Conversation::Open(open) => open,
        other => panic!("expected an open conversation, got {other:?}"),
    }
}
