//! The replay's fold, record by record: a refused event leaves everything as it was, and the
//! histories and streams come out in id order whatever order the log opened them in.

use handover_audit::{ConversationHistory, FaultKind, Replay};
use handover_core::{
    AgentName, AiAgentEvent, AiAgentId, Author, Channel, ConversationEvent, ConversationId,
    CustomerId, Event, HumanId, MessageText, Status, StreamId,
};
use handover_store::{RecordedAt, RecordedEvent};

fn conversation_id(n: u128) -> ConversationId {
    format!("0190f1f0-0000-7000-8000-{n:012x}").parse().unwrap()
}

fn agent() -> AiAgentId {
    AiAgentId::new("faq-bot").unwrap()
}

fn record(position: u64, stream: StreamId, seq: u64, event: Event) -> RecordedEvent {
    RecordedEvent {
        position,
        stream,
        seq,
        recorded_at: RecordedAt(1_795_653_037_000_000 + i64::try_from(position).unwrap()),
        event,
    }
}

fn conversation(
    position: u64,
    id: ConversationId,
    seq: u64,
    event: ConversationEvent,
) -> RecordedEvent {
    record(
        position,
        StreamId::Conversation(id),
        seq,
        Event::Conversation(event),
    )
}

fn opened() -> ConversationEvent {
    ConversationEvent::Opened {
        customer: CustomerId::new("cust-1").unwrap(),
        channel: Channel::new("web-chat").unwrap(),
        human: Some(HumanId::new("alice").unwrap()),
    }
}

fn message(author: Author, text: &str) -> ConversationEvent {
    ConversationEvent::MessagePosted {
        author,
        text: MessageText::new(text).unwrap(),
        concerns: Vec::new(),
    }
}

fn customer() -> Author {
    Author::Customer(CustomerId::new("cust-1").unwrap())
}

fn human() -> Author {
    Author::Human(HumanId::new("alice").unwrap())
}

fn ai() -> Author {
    Author::Ai(agent())
}

fn handed_off() -> ConversationEvent {
    ConversationEvent::HandedOffToAi {
        agent_id: agent(),
        agent_name: AgentName::new("FAQ bot").unwrap(),
        by_human: HumanId::new("alice").unwrap(),
        reason: None,
    }
}

#[test]
fn a_refused_event_leaves_the_history_as_it_was() {
    let id = conversation_id(1);
    let mut history = ConversationHistory::new(id);
    history.apply(&conversation(1, id, 1, opened())).unwrap();
    history
        .apply(&conversation(
            2,
            id,
            2,
            message(customer(), "How much is it?"),
        ))
        .unwrap();
    history
        .apply(&conversation(3, id, 3, handed_off()))
        .unwrap();

    // Humans cannot post while the AI is active.
    let before = history.clone();
    let fault = history
        .apply(&conversation(4, id, 4, message(human(), "hi")))
        .unwrap_err();
    assert_eq!(fault.kind, FaultKind::Rule);
    assert_eq!(history, before);

    // The next sound event folds on the state the refused one left.
    history
        .apply(&conversation(4, id, 4, message(ai(), "49 USD a month.")))
        .unwrap();
    assert!(matches!(history.status(), Status::AiActive { .. }));
    history
        .apply(&conversation(
            5,
            id,
            5,
            ConversationEvent::Reclaimed {
                agent_id: agent(),
                by_human: HumanId::new("bob").unwrap(),
                reason: None,
            },
        ))
        .unwrap();

    // After the reclaim the AI agent may no longer post.
    let before = history.clone();
    history
        .apply(&conversation(6, id, 6, message(ai(), "Anything else?")))
        .unwrap_err();
    assert_eq!(history, before);
    assert_eq!(history.version(), 5);
    assert!(matches!(history.status(), Status::Reclaimed { .. }));
    assert_eq!(history.messages().ai, 1);
}

#[test]
fn a_refused_first_event_leaves_no_trace_in_the_replay() {
    let agent_stream = StreamId::AiAgent(agent());
    let (first, refused, later) = (conversation_id(5), conversation_id(9), conversation_id(3));
    let mut replay = Replay::new();
    replay
        .apply(&record(
            1,
            agent_stream.clone(),
            1,
            Event::AiAgent(AiAgentEvent::Registered {
                agent_id: agent(),
                name: AgentName::new("FAQ bot").unwrap(),
                specialties: Vec::new(),
            }),
        ))
        .unwrap();
    replay
        .apply(&record(
            2,
            agent_stream.clone(),
            2,
            Event::AiAgent(AiAgentEvent::Activated { agent_id: agent() }),
        ))
        .unwrap();
    replay.apply(&conversation(3, first, 1, opened())).unwrap();

    // A conversation whose first event is not its opening.
    let fault = replay
        .apply(&conversation(4, refused, 1, message(customer(), "hello")))
        .unwrap_err();
    assert_eq!(fault.kind, FaultKind::Rule);
    assert!(replay.conversation(&refused).is_none());
    assert_eq!(replay.stream_version(&StreamId::Conversation(refused)), 0);
    assert_eq!((replay.events(), replay.head()), (3, 3));

    // The replay goes on from where it was, with a conversation whose id sorts first.
    replay.apply(&conversation(4, later, 1, opened())).unwrap();
    replay
        .apply(&conversation(5, first, 2, message(customer(), "hello")))
        .unwrap();
    replay
        .apply(&conversation(6, later, 2, handed_off()))
        .unwrap();

    let ids: Vec<ConversationId> = replay.conversations().map(|c| c.id()).collect();
    assert_eq!(ids, [later, first]);
    let streams: Vec<(StreamId, u64)> = replay
        .streams()
        .map(|(stream, version)| (stream.clone(), version))
        .collect();
    assert_eq!(
        streams,
        [
            (agent_stream.clone(), 2),
            (StreamId::Conversation(later), 2),
            (StreamId::Conversation(first), 2),
        ]
    );
    assert_eq!(replay.stream_version(&agent_stream), 2);
    assert_eq!(replay.stream_version(&StreamId::Conversation(later)), 2);
    assert!(matches!(
        replay.conversation(&later).unwrap().status(),
        Status::AiActive { .. }
    ));
    assert_eq!(replay.events(), 6);
}
