//! Record format v1 still reads: a checked-in log of real records, covering every event type,
//! loaded into a fresh sled tree and replayed through `SledStore`.
//!
//! The fixture `tests/fixtures/records-v1.bin` holds the raw key/value pairs of the `log` tree
//! of a store that recorded [`history`]: the 20-byte header `handover records v1\n`, then for
//! each pair a u32 big-endian key length, the key, a u32 big-endian value length, the value,
//! in key order. It is written only when `HANDOVER_REGENERATE_FIXTURES=1` is set; otherwise this
//! test checks the file as it is checked in. A released fixture is never regenerated: its
//! bytes are the evidence that old logs still read. A new event variant or a new format
//! version gets a fixture of its own beside this one.
//!
//! The fixture also holds the first layout of the global index (one `g` entry per event); the
//! store rewrites it into chunks (`G` keys) when it opens such a log, which is tested here too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use handover_core::{
    conversation, AgentName, AiAgentEvent, AiAgentId, Author, Channel, Concern, Conversation,
    ConversationEvent, ConversationId, CustomerId, EscalationCause, Event, HumanId, MessageText,
    Reason, Roster, Skill, SkillData, SkillName, SkillOutcome, Specialty, StreamId,
};
use handover_sled::{SledOptions, SledStore};
use handover_store::{
    decode_record, encode_event, encode_record, encode_record_with_event, record_previous_hash,
    EventStore, ExpectedVersion, RecordHash, RecordedAt, RecordedEvent, SeqRange,
};

const FIXTURE_HEADER: &[u8; 20] = b"handover records v1\n";
const FORMAT_VERSION_1: u8 = 1;
const REGENERATE_VARIABLE: &str = "HANDOVER_REGENERATE_FIXTURES";

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/records-v1.bin")
}

/// The same history written by format 2: hash-chained records, high-water marks, the chunked
/// index.
fn fixture_path_v2() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/records-v2.bin")
}

// ---------------------------------------------------------------------------------------------
// The recorded history.
// ---------------------------------------------------------------------------------------------

fn ai(id: &str) -> AiAgentId {
    AiAgentId::new(id).unwrap()
}

fn human(id: &str) -> HumanId {
    HumanId::new(id).unwrap()
}

fn customer(id: &str) -> CustomerId {
    CustomerId::new(id).unwrap()
}

fn reason(text: &str) -> Reason {
    Reason::new(text).unwrap()
}

fn data(text: &str) -> SkillData {
    SkillData::new(text).unwrap()
}

fn conversation_stream(n: u128) -> StreamId {
    let base = 0x0190_f1f0_0000_7000_8000_0000_0000_0000_u128;
    StreamId::Conversation(ConversationId::from_uuid(uuid::Uuid::from_u128(base + n)))
}

fn agent_stream(id: &str) -> StreamId {
    StreamId::AiAgent(ai(id))
}

fn c(event: ConversationEvent) -> Event {
    Event::Conversation(event)
}

fn a(event: AiAgentEvent) -> Event {
    Event::AiAgent(event)
}

fn said(author: Author, text: &str, concerns: &[Concern]) -> Event {
    c(ConversationEvent::MessagePosted {
        author,
        text: MessageText::new(text).unwrap(),
        concerns: concerns.to_vec(),
    })
}

fn handed_off(agent_id: &str, agent_name: &str, by: &str, why: Option<&str>) -> Event {
    c(ConversationEvent::HandedOffToAi {
        agent_id: ai(agent_id),
        agent_name: AgentName::new(agent_name).unwrap(),
        by_human: human(by),
        reason: why.map(reason),
    })
}

fn escalated(agent_id: &str, why: &str, cause: EscalationCause) -> Event {
    c(ConversationEvent::EscalatedToHuman {
        agent_id: ai(agent_id),
        reason: reason(why),
        cause,
    })
}

/// The appends the fixture recorded, in order: each is one stream and its events.
fn history() -> Vec<(StreamId, Vec<Event>)> {
    let (one, two, three) = (
        conversation_stream(1),
        conversation_stream(2),
        conversation_stream(3),
    );
    vec![
        (
            agent_stream("faq"),
            vec![a(AiAgentEvent::Registered {
                agent_id: ai("faq"),
                name: AgentName::new("FAQ Bot").unwrap(),
                specialties: vec![
                    Specialty::new("faq").unwrap(),
                    Specialty::new("pricing").unwrap(),
                ],
            })],
        ),
        (
            agent_stream("faq"),
            vec![a(AiAgentEvent::Activated {
                agent_id: ai("faq"),
            })],
        ),
        (
            agent_stream("sales"),
            vec![
                a(AiAgentEvent::Registered {
                    agent_id: ai("sales"),
                    name: AgentName::new("Vendas · Sales Bot").unwrap(),
                    specialties: vec![],
                }),
                a(AiAgentEvent::Activated {
                    agent_id: ai("sales"),
                }),
            ],
        ),
        (
            one.clone(),
            vec![c(ConversationEvent::Opened {
                customer: customer("cust-1"),
                channel: Channel::new("web-chat").unwrap(),
                human: Some(human("ana")),
            })],
        ),
        (
            one.clone(),
            vec![said(
                Author::Customer(customer("cust-1")),
                "How much is the pro plan?",
                &[],
            )],
        ),
        (
            two.clone(),
            vec![c(ConversationEvent::Opened {
                customer: customer("cust-2"),
                channel: Channel::new("whatsapp").unwrap(),
                human: None,
            })],
        ),
        (
            one.clone(),
            vec![said(
                Author::Human(human("ana")),
                "Let me hand you to our assistant.\nOne moment…",
                &[],
            )],
        ),
        (
            one.clone(),
            vec![handed_off(
                "faq",
                "FAQ Bot",
                "ana",
                Some("Customer wants information about pricing and plans"),
            )],
        ),
        (
            two.clone(),
            vec![handed_off("sales", "Vendas · Sales Bot", "bob", None)],
        ),
        (
            one.clone(),
            vec![
                c(ConversationEvent::AiActionRecorded {
                    agent_id: ai("faq"),
                    skill: Skill {
                        name: SkillName::new("lookup_price").unwrap(),
                        input: data(r#"{"plan":"pro"}"#),
                        outcome: SkillOutcome::Succeeded(data(r#"{"usd":49,"per":"month"}"#)),
                    },
                }),
                said(
                    Author::Ai(ai("faq")),
                    "The pro plan is 49 USD a month. 💡",
                    &[],
                ),
            ],
        ),
        (
            two.clone(),
            vec![said(
                Author::Ai(ai("sales")),
                "Olá! Posso ajudar com o seu pedido?",
                &[],
            )],
        ),
        (
            one.clone(),
            vec![c(ConversationEvent::AiActionRecorded {
                agent_id: ai("faq"),
                skill: Skill {
                    name: SkillName::new("lookup_order").unwrap(),
                    input: data(""),
                    outcome: SkillOutcome::Failed(data("order service timed out")),
                },
            })],
        ),
        (
            one.clone(),
            vec![c(ConversationEvent::Reclaimed {
                agent_id: ai("faq"),
                by_human: human("bob"),
                reason: Some(reason("VIP customer")),
            })],
        ),
        (
            two.clone(),
            vec![escalated(
                "sales",
                "the customer needs a refund",
                EscalationCause::AgentRequested,
            )],
        ),
        (
            one.clone(),
            vec![said(Author::Human(human("bob")), "Hi, Bob here.", &[])],
        ),
        (one.clone(), vec![handed_off("faq", "FAQ Bot", "bob", None)]),
        (
            two.clone(),
            vec![handed_off(
                "sales",
                "Vendas · Sales Bot",
                "bob",
                Some("try again"),
            )],
        ),
        (
            three.clone(),
            vec![
                c(ConversationEvent::Opened {
                    customer: customer("cust-3"),
                    channel: Channel::new("web-chat").unwrap(),
                    human: Some(human("ana")),
                }),
                handed_off("faq", "FAQ Bot", "ana", None),
            ],
        ),
        (
            one.clone(),
            vec![
                said(
                    Author::Customer(customer("cust-1")),
                    "Can I talk to a human?",
                    &[Concern::HumanRequested],
                ),
                escalated(
                    "faq",
                    "the customer asked for a human",
                    EscalationCause::CustomerAskedForHuman,
                ),
            ],
        ),
        (
            agent_stream("sales"),
            vec![a(AiAgentEvent::Deactivated {
                agent_id: ai("sales"),
            })],
        ),
        (
            two.clone(),
            vec![escalated(
                "sales",
                "AI agent sales was deactivated",
                EscalationCause::AgentDeactivated,
            )],
        ),
        (
            three.clone(),
            vec![said(Author::Ai(ai("faq")), "We open at 9:00.", &[])],
        ),
        (
            one.clone(),
            vec![said(
                Author::Customer(customer("cust-1")),
                "This is unacceptable: I want a discount or I call my lawyer",
                &[Concern::Complaint, Concern::Negotiation, Concern::Sensitive],
            )],
        ),
        (
            three.clone(),
            vec![c(ConversationEvent::Closed {
                by: Author::Ai(ai("faq")),
                reason: Some(reason("answered")),
            })],
        ),
        (
            two.clone(),
            vec![c(ConversationEvent::Closed {
                by: Author::Customer(customer("cust-2")),
                reason: None,
            })],
        ),
        (
            one.clone(),
            vec![c(ConversationEvent::Closed {
                by: Author::Human(human("bob")),
                reason: Some(reason("resolved with a credit")),
            })],
        ),
    ]
}

/// The history as the log must hold it: (position, stream, seq, event).
fn expected_records() -> Vec<(u64, StreamId, u64, Event)> {
    let mut versions = std::collections::BTreeMap::<StreamId, u64>::new();
    let mut position = 0;
    let mut out = Vec::new();
    for (stream, events) in history() {
        for event in events {
            position += 1;
            let seq = versions.entry(stream.clone()).or_default();
            *seq += 1;
            out.push((position, stream.clone(), *seq, event));
        }
    }
    out
}

fn place(record: &RecordedEvent) -> (u64, StreamId, u64, Event) {
    (
        record.position,
        record.stream.clone(),
        record.seq,
        record.event.clone(),
    )
}

// ---------------------------------------------------------------------------------------------
// The fixture file.
// ---------------------------------------------------------------------------------------------

fn write_fixture(path: &Path, pairs: &[(Vec<u8>, Vec<u8>)]) {
    let mut bytes = FIXTURE_HEADER.to_vec();
    for (key, value) in pairs {
        for part in [key, value] {
            let len = u32::try_from(part.len()).expect("a record fits a u32 length");
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend_from_slice(part);
        }
    }
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn read_fixture(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {path:?}: {e}"));
    let mut rest = bytes
        .strip_prefix(FIXTURE_HEADER.as_slice())
        .expect("the fixture starts with its header");
    let take = |rest: &mut &[u8]| -> Vec<u8> {
        let (len, tail) = rest.split_at_checked(4).expect("a length prefix");
        let len = usize::try_from(u32::from_be_bytes(len.try_into().unwrap())).unwrap();
        let (part, tail) = tail
            .split_at_checked(len)
            .expect("as many bytes as announced");
        *rest = tail;
        part.to_vec()
    };
    let mut pairs = Vec::new();
    while !rest.is_empty() {
        let key = take(&mut rest);
        let value = take(&mut rest);
        pairs.push((key, value));
    }
    pairs
}

fn open_raw(dir: &Path) -> sled::Db {
    // A store dropped a moment ago may still hold the lock; wait as `SledStore::open` does.
    SledStore::open_raw(dir, Duration::from_secs(5)).expect("sled opens the directory")
}

fn open_store(dir: &Path) -> SledStore {
    SledStore::open(dir, SledOptions::default()).expect("the store opens the fixture")
}

/// Records [`history`] through the store and dumps its `log` tree into the fixture.
async fn regenerate(path: &Path) {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_store(dir.path());
        for (stream, events) in history() {
            let version = store.stream_version(&stream).await.unwrap();
            store
                .append(&stream, ExpectedVersion::Exact(version), events.to_vec())
                .await
                .unwrap()
                .unwrap();
        }
    }
    let db = open_raw(dir.path());
    let log = db.open_tree("log").unwrap();
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = log
        .iter()
        .map(|entry| {
            let (key, value) = entry.unwrap();
            (key.to_vec(), value.to_vec())
        })
        .collect();
    write_fixture(path, &pairs);
}

/// Loads the fixture's pairs into a fresh `log` tree.
fn load(dir: &Path, pairs: &[(Vec<u8>, Vec<u8>)]) {
    let db = open_raw(dir);
    let log = db.open_tree("log").unwrap();
    for (key, value) in pairs {
        log.insert(key.as_slice(), value.as_slice()).unwrap();
    }
    db.flush().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn format_v1_records_replay_to_the_events_they_recorded() {
    let pairs = read_fixture(&fixture_path());
    let expected = expected_records();

    // The raw pairs: one record and one index entry per event, every record of format v1.
    let records: Vec<&Vec<u8>> = pairs
        .iter()
        .filter(|(key, _)| key.first() == Some(&b's'))
        .map(|(_, value)| value)
        .collect();
    let index_entries = pairs
        .iter()
        .filter(|(key, _)| key.first() == Some(&b'g'))
        .count();
    assert_eq!(records.len(), expected.len());
    assert_eq!(index_entries, expected.len());
    assert_eq!(pairs.len(), 2 * expected.len());
    for value in &records {
        assert_eq!(value[0], FORMAT_VERSION_1);
    }
    // Each record decodes on its own, to one of the expected events.
    let mut decoded: Vec<(u64, StreamId, u64, Event)> = records
        .iter()
        .map(|value| place(&decode_record(value).expect("a v1 record decodes")))
        .collect();
    decoded.sort_by_key(|(position, ..)| *position);
    assert_eq!(decoded, expected);

    // Through the store: the global order, each stream, the roster streams.
    let dir = tempfile::tempdir().unwrap();
    load(dir.path(), &pairs);
    let store = open_store(dir.path());
    let all = store.read_all(1, usize::MAX).await.unwrap();
    assert_eq!(all.iter().map(place).collect::<Vec<_>>(), expected);
    assert!(all
        .windows(2)
        .all(|pair| pair[0].recorded_at <= pair[1].recorded_at));
    let head = u64::try_from(expected.len()).unwrap();
    assert_eq!(store.head(), head);

    let streams: BTreeSet<StreamId> = expected.iter().map(|(_, s, ..)| s.clone()).collect();
    for stream in &streams {
        let read: Vec<_> = store
            .read_stream(stream, SeqRange::ALL)
            .await
            .unwrap()
            .iter()
            .map(place)
            .collect();
        let want: Vec<_> = expected
            .iter()
            .filter(|(_, s, ..)| s == stream)
            .cloned()
            .collect();
        assert_eq!(read, want, "{stream}");
        let version = u64::try_from(want.len()).unwrap();
        assert_eq!(store.stream_version(stream).await.unwrap(), version);
    }
    let agents: Vec<_> = store
        .read_ai_agents()
        .await
        .unwrap()
        .iter()
        .map(place)
        .collect();
    let mut want_agents: Vec<_> = expected
        .iter()
        .filter(|(_, s, ..)| matches!(s, StreamId::AiAgent(_)))
        .cloned()
        .collect();
    want_agents.sort_by(|x, y| (&x.1, x.2).cmp(&(&y.1, y.2)));
    assert_eq!(agents, want_agents);

    // A v1 log takes new appends where it left off.
    let three = conversation_stream(3);
    let next = store
        .append(
            &agent_stream("faq"),
            ExpectedVersion::Exact(2),
            vec![a(AiAgentEvent::Deactivated {
                agent_id: ai("faq"),
            })],
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((next[0].position, next[0].seq), (head + 1, 3));
    assert_eq!(store.stream_version(&three).await.unwrap(), 4);
    // The new record is chained to the last v1 record, and every check still passes.
    assert_eq!(
        store
            .read_stream(&agent_stream("faq"), SeqRange::ALL)
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        store
            .scan_streams()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
            .len(),
        expected.len() + 1
    );
}

/// The format written today. Regenerated only with `HANDOVER_REGENERATE_FIXTURES=1`, which
/// writes this fixture and never the released v1 one.
#[tokio::test]
async fn format_v2_records_replay_with_their_hash_chains_and_marks() {
    let path = fixture_path_v2();
    if std::env::var(REGENERATE_VARIABLE).as_deref() == Ok("1") {
        regenerate(&path).await;
    }
    let pairs = read_fixture(&path);
    let expected = expected_records();
    let streams: BTreeSet<StreamId> = expected.iter().map(|(_, s, ..)| s.clone()).collect();

    let records: Vec<&Vec<u8>> = pairs
        .iter()
        .filter(|(key, _)| key.first() == Some(&b's'))
        .map(|(_, value)| value)
        .collect();
    let marks = pairs
        .iter()
        .filter(|(key, _)| key.first() == Some(&b'M'))
        .count();
    assert_eq!(records.len(), expected.len());
    assert_eq!(marks, streams.len(), "one high-water mark per stream");
    for value in &records {
        assert_eq!(value[0], 2);
    }
    // Within each stream (records are in key order), each record carries its predecessor's hash.
    let mut previous: Option<(StreamId, RecordHash)> = None;
    for value in &records {
        let record = decode_record(value).expect("a v2 record decodes");
        let expected_previous = match &previous {
            Some((stream, hash)) if *stream == record.stream => *hash,
            _ => RecordHash::ZERO,
        };
        assert_eq!(record_previous_hash(value), Some(expected_previous));
        previous = Some((record.stream.clone(), RecordHash::of(value)));
    }

    // The fixture holds the log tree alone, without the anchor file that sits beside it: a
    // format-2 log without its anchor opens only for inspection.
    let dir = tempfile::tempdir().unwrap();
    load(dir.path(), &pairs);
    assert!(SledStore::open(dir.path(), SledOptions::default()).is_err());
    let store = SledStore::open(
        dir.path(),
        SledOptions {
            check_acknowledged_on_open: false,
            ..SledOptions::default()
        },
    )
    .unwrap();
    let all = store.read_all(1, usize::MAX).await.unwrap();
    assert_eq!(all.iter().map(place).collect::<Vec<_>>(), expected);
    for stream in &streams {
        let read = store.read_stream(stream, SeqRange::ALL).await.unwrap();
        let want = expected.iter().filter(|(_, s, ..)| s == stream).count();
        assert_eq!(read.len(), want, "{stream}");
    }
    assert_eq!(
        store
            .scan_streams()
            .collect::<Result<Vec<_>, _>>()
            .unwrap()
            .len(),
        expected.len()
    );
    assert!(store.check_acknowledged().is_err());
}

#[tokio::test]
async fn a_per_event_index_is_rewritten_into_chunks_once_and_reads_the_same() {
    let pairs = read_fixture(&fixture_path());
    let expected = expected_records();
    let dir = tempfile::tempdir().unwrap();
    load(dir.path(), &pairs);
    drop(open_store(dir.path()));

    let raw: Vec<(Vec<u8>, Vec<u8>)> = {
        let db = open_raw(dir.path());
        let log = db.open_tree("log").unwrap();
        log.iter()
            .map(|entry| {
                let (key, value) = entry.unwrap();
                (key.to_vec(), value.to_vec())
            })
            .collect()
    };
    let kinds = |prefix: u8| raw.iter().filter(|(key, _)| key[0] == prefix).count();
    assert_eq!(kinds(b'g'), 0, "every per-event entry is gone");
    assert_eq!(kinds(b'G'), 1, "one chunk holds the whole small index");
    // The records themselves are untouched, byte for byte.
    let records = |pairs: &[(Vec<u8>, Vec<u8>)]| -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs
            .iter()
            .filter(|(key, _)| key[0] == b's')
            .cloned()
            .collect()
    };
    assert_eq!(records(&raw), records(&pairs));

    // Opening again finds nothing to migrate and reads the same log.
    let store = open_store(dir.path());
    let all = store.read_all(1, usize::MAX).await.unwrap();
    assert_eq!(all.iter().map(place).collect::<Vec<_>>(), expected);
    assert_eq!(
        store
            .read_all(5, 3)
            .await
            .unwrap()
            .iter()
            .map(place)
            .collect::<Vec<_>>(),
        expected[4..7]
    );
}

/// The journal encodes each event on its appender's thread and splices the bytes into the
/// record on its writer thread: for every event of the history (every event kind), at
/// positions, seqs and times of every size, the spliced record is byte for byte what
/// `encode_record` writes, and so is every record of the v2 fixture, written before splicing.
#[test]
fn spliced_records_are_the_bytes_encode_record_writes_for_every_event_kind() {
    let previous = RecordHash::of(b"the record before");
    let places = [
        (1, 1, RecordedAt(0)),
        (250, 251, RecordedAt(-1)),
        (1 << 20, 70_000, RecordedAt(1_733_000_000_000_000)),
        (u64::MAX, u64::MAX, RecordedAt(i64::MIN)),
    ];
    let mut kinds = BTreeSet::new();
    for (_, stream, _, event) in expected_records() {
        kinds.insert(
            format!("{event:?}")
                .split(['(', ' ', '{'])
                .nth(1)
                .map(str::to_owned),
        );
        let encoded = encode_event(event.clone()).unwrap();
        for (position, seq, recorded_at) in places {
            let record = RecordedEvent {
                position,
                stream: stream.clone(),
                seq,
                recorded_at,
                event: event.clone(),
            };
            let spliced =
                encode_record_with_event(position, &stream, seq, recorded_at, &encoded, &previous)
                    .unwrap();
            assert_eq!(
                spliced,
                encode_record(&record, &previous).unwrap(),
                "{record:?}"
            );
            assert_eq!(decode_record(&spliced).unwrap(), record);
        }
    }
    assert!(
        kinds.len() >= 10,
        "the history covers the event kinds: {kinds:?}"
    );
    for (key, value) in read_fixture(&fixture_path_v2()) {
        if key.first() != Some(&b's') {
            continue;
        }
        let record = decode_record(&value).unwrap();
        let previous = record_previous_hash(&value).unwrap();
        let encoded = encode_event(record.event.clone()).unwrap();
        let spliced = encode_record_with_event(
            record.position,
            &record.stream,
            record.seq,
            record.recorded_at,
            &encoded,
            &previous,
        )
        .unwrap();
        assert_eq!(spliced, value, "{record:?}");
    }
}

#[test]
fn the_recorded_history_is_a_valid_log() {
    // The fixture is a real log: every conversation and the roster fold without a rejection.
    let mut roster = Roster::default();
    let mut conversations = std::collections::BTreeMap::<StreamId, Conversation>::new();
    for (_, stream, _, event) in expected_records() {
        match &event {
            Event::AiAgent(event) => roster.evolve(event).unwrap(),
            Event::Conversation(_) => {
                let state = conversations.remove(&stream).unwrap_or_default();
                let next = conversation::evolve_stored(state, &event).unwrap();
                conversations.insert(stream, next);
            }
            other => panic!("the released fixture holds no {other:?}"),
        }
    }
    assert_eq!(conversations.len(), 3);
    assert!(conversations
        .values()
        .all(|state| matches!(state, Conversation::Closed(_))));
    assert_eq!(
        roster
            .active(None)
            .map(|a| a.profile.id.as_str())
            .collect::<Vec<_>>(),
        vec!["faq"]
    );
}

/// The name of each kind of event this released fixture can hold ([`v1_kinds`]); anything
/// newer is `other`, which belongs in a fixture of its own.
fn kind(event: &Event) -> &'static str {
    match event {
        Event::AiAgent(event) => match event {
            AiAgentEvent::Registered { .. } => "registered",
            AiAgentEvent::Activated { .. } => "activated",
            AiAgentEvent::Deactivated { .. } => "deactivated",
            _ => "other",
        },
        Event::Conversation(event) => match event {
            ConversationEvent::Opened { .. } => "opened",
            ConversationEvent::MessagePosted { author, .. } => match author {
                Author::Customer(_) => "message by customer",
                Author::Human(_) => "message by human",
                Author::Ai(_) => "message by ai",
                _ => "other",
            },
            ConversationEvent::HandedOffToAi { .. } => "handed off",
            ConversationEvent::AiActionRecorded { skill, .. } => match skill.outcome {
                SkillOutcome::Succeeded(_) => "skill succeeded",
                SkillOutcome::Failed(_) => "skill failed",
            },
            ConversationEvent::Reclaimed { .. } => "reclaimed",
            ConversationEvent::EscalatedToHuman { cause, .. } => match cause {
                EscalationCause::AgentRequested => "escalated: agent requested",
                EscalationCause::CustomerAskedForHuman => "escalated: customer asked",
                EscalationCause::AgentDeactivated => "escalated: agent deactivated",
                _ => "other",
            },
            ConversationEvent::Closed { by, .. } => match by {
                Author::Customer(_) => "closed by customer",
                Author::Human(_) => "closed by human",
                Author::Ai(_) => "closed by ai",
                _ => "other",
            },
            _ => "other",
        },
        _ => "other",
    }
}

fn v1_kinds() -> BTreeSet<&'static str> {
    [
        "registered",
        "activated",
        "deactivated",
        "opened",
        "message by customer",
        "message by human",
        "message by ai",
        "handed off",
        "skill succeeded",
        "skill failed",
        "reclaimed",
        "escalated: agent requested",
        "escalated: customer asked",
        "escalated: agent deactivated",
        "closed by customer",
        "closed by human",
        "closed by ai",
    ]
    .into_iter()
    .collect()
}

#[test]
fn the_fixture_covers_every_event_type_and_variant() {
    let events: Vec<Event> = expected_records().into_iter().map(|(.., e)| e).collect();
    let kinds: BTreeSet<&str> = events.iter().map(kind).collect();
    assert_eq!(kinds, v1_kinds());

    let concerns: BTreeSet<Concern> = events
        .iter()
        .filter_map(|event| match event {
            Event::Conversation(ConversationEvent::MessagePosted { concerns, .. }) => {
                Some(concerns.iter().copied())
            }
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(
        concerns,
        BTreeSet::from([
            Concern::HumanRequested,
            Concern::Complaint,
            Concern::Negotiation,
            Concern::Sensitive,
        ])
    );
    assert!(expected_records().len() >= 30);
}
