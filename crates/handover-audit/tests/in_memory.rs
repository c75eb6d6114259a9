//! Every audit over a log held in memory (the records a store's `read_all` returns, as a
//! PostgreSQL snapshot holds them) gives what it gives over the sled store they were read
//! from: the same export bytes, stats, listing, timelines and verdict, and the same first fault.

mod common;

use std::path::Path;

use common::*;
use handover_audit::{
    conversations, conversations_of, export, export_of, open_data_dir, stats, stats_of, timeline,
    timeline_of, verify_dir, verify_of, AuditError, AuditLog, ExportFormat, ExportOptions,
    FaultKind, RecordLog, Replay, VerifyReport,
};
use handover_core::*;
use handover_sled::SledStore;
use handover_store::{Damage, EventStore as _, RecordedEvent, StoreError};

/// The store's records, read with `read_all` in pages of an odd size, so pages end mid-append.
fn read_records(store: &SledStore) -> RecordLog {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(RecordLog::read(store, 7))
        .unwrap()
}

fn export_bytes(log: AuditLog<'_>, options: &ExportOptions) -> Result<(u64, Vec<u8>), String> {
    let mut out = Vec::new();
    export_of(log, options, &mut out)
        .map(|lines| (lines, out))
        .map_err(|error| error.to_string())
}

/// Runs every audit over the store and over the records read from it, and compares.
fn assert_same_audits(store: &SledStore) -> RecordLog {
    let records = read_records(store);
    assert_eq!(records.head(), store.head());
    assert_eq!(records.len() as u64, store.head());
    let sled = AuditLog::Sled(store);
    let memory = AuditLog::Records(&records);

    let listing = conversations(store).unwrap();
    assert_eq!(conversations_of(memory).unwrap(), listing);
    assert_eq!(conversations_of(sled).unwrap(), listing);

    let ids: Vec<ConversationId> = listing.iter().map(|c| c.id).collect();
    let unknown = ConversationId::from_uuid(uuid::Uuid::from_u128(7));
    for format in [ExportFormat::JsonLines, ExportFormat::CloudEvents] {
        let filters = std::iter::once(None).chain(ids.iter().copied().map(Some));
        for conversation in filters.chain([Some(unknown)]) {
            let options = ExportOptions {
                format,
                conversation,
            };
            let mut from_sled = Vec::new();
            let written = export(store, &options, &mut from_sled).map_err(|e| e.to_string());
            let from_memory = export_bytes(memory, &options);
            assert_eq!(
                from_memory,
                written.map(|lines| (lines, from_sled)),
                "{options:?}"
            );
            assert_eq!(export_bytes(sled, &options), from_memory, "{options:?}");
        }
    }

    let figures = stats(store).unwrap();
    assert_eq!(stats_of(memory).unwrap(), figures);
    assert_eq!(stats_of(sled).unwrap(), figures);
    assert_eq!(
        serde_json::to_string(&stats_of(memory).unwrap()).unwrap(),
        serde_json::to_string(&figures).unwrap()
    );
    assert_eq!(stats_of(memory).unwrap().to_string(), figures.to_string());

    for &id in &ids {
        let story = timeline(store, id).unwrap();
        let in_memory = timeline_of(memory, id).unwrap();
        assert_eq!(in_memory, story);
        assert_eq!(in_memory.to_string(), story.to_string());
        assert_eq!(timeline_of(sled, id).unwrap(), story);
    }
    assert!(matches!(
        timeline_of(memory, unknown),
        Err(AuditError::UnknownConversation(id)) if id == unknown
    ));

    let verdict = verify_of(sled).unwrap();
    assert!(verdict.is_sound(), "{verdict:?}");
    assert_eq!(verify_of(memory).unwrap(), verdict);

    let replay = Replay::from_log(memory).unwrap();
    assert_eq!(replay.events(), store.head());
    assert_eq!(replay.head(), store.head());
    records
}

/// Opens a finished log's directory, runs every audit both ways, and checks that verifying
/// the directory says what verifying the records says.
fn assert_same_audits_in(dir: &Path) {
    let store = open_data_dir(dir).unwrap();
    let records = assert_same_audits(&store);
    drop(store);
    assert_eq!(
        verify_dir(dir).unwrap(),
        verify_of(AuditLog::Records(&records)).unwrap()
    );
}

#[test]
fn a_simulated_shift_audits_alike_from_sled_and_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let options = handover_sim::Options {
        conversations: 40,
        seed: 11,
        durability: handover_store::Durability::Buffered,
        ..handover_sim::Options::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let summary = runtime
        .block_on(handover_sim::simulate(
            dir.path(),
            &options,
            |_| {},
            std::future::pending(),
        ))
        .unwrap();
    assert_eq!(summary.conversations, 40);
    assert_same_audits_in(dir.path());
}

#[test]
fn the_standard_log_audits_alike_from_sled_and_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    standard_log(&mut log);
    let records = assert_same_audits(log.store());
    assert_eq!(records.len() as u64, STANDARD_EVENTS);
    assert_same_audits_in(&log.finish());
}

#[test]
fn an_empty_log_audits_alike_from_sled_and_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let log = LogBuilder::new(dir.path());
    let records = assert_same_audits(log.store());
    assert!(records.is_empty());
    assert_eq!(
        verify_of(AuditLog::Records(&records)).unwrap(),
        VerifyReport::Sound {
            events: 0,
            streams: 0
        }
    );
}

#[test]
fn a_forged_event_is_the_same_fault_from_sled_and_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    log.register("faq-bot", "FAQ bot", &[]);
    log.activate("faq-bot");
    let id = log.open("cust-1", "web-chat", Some("alice"));
    log.hand_off(id, "alice", "faq-bot", None);
    log.reclaim(id, "alice", None);
    // Checksum-valid, but no decide would have let it through.
    log.forge(
        StreamId::Conversation(id),
        vec![Event::Conversation(ConversationEvent::MessagePosted {
            author: Author::Ai(agent("faq-bot")),
            text: text("A late reply"),
            concerns: vec![],
        })],
    );
    let records = read_records(log.store());
    let memory = AuditLog::Records(&records);
    let VerifyReport::Faulty(fault) = verify_of(memory).unwrap() else {
        panic!("the forged event is a fault");
    };
    assert_eq!(fault.kind, FaultKind::Rule);
    assert_eq!(
        verify_of(AuditLog::Sled(log.store())).unwrap(),
        VerifyReport::Faulty(fault.clone())
    );
    let Err(AuditError::Unsound(unsound)) = stats_of(memory) else {
        panic!("stats refuse a log that does not replay");
    };
    assert_eq!(unsound, fault);
    assert!(matches!(
        conversations_of(memory),
        Err(AuditError::Unsound(f)) if f == fault
    ));
    // The export does not judge events: it writes them all, as from sled.
    let options = ExportOptions::default();
    let mut from_sled = Vec::new();
    export(log.store(), &options, &mut from_sled).unwrap();
    assert_eq!(export_bytes(memory, &options).unwrap().1, from_sled);

    let path = log.finish();
    assert_eq!(verify_dir(&path).unwrap(), VerifyReport::Faulty(fault));
}

/// The standard log's records, changed by `change`.
fn changed_standard(
    change: impl FnOnce(&mut Vec<RecordedEvent>, &Standard),
) -> (RecordLog, Standard) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = LogBuilder::new(dir.path());
    let standard = standard_log(&mut log);
    let mut records = read_records(log.store()).into_records();
    change(&mut records, &standard);
    (RecordLog::new(records), standard)
}

#[test]
fn a_missing_position_is_an_order_fault_in_memory() {
    let (records, _) = changed_standard(|records, _| {
        records.remove(20);
    });
    let memory = AuditLog::Records(&records);
    let VerifyReport::Faulty(fault) = verify_of(memory).unwrap() else {
        panic!("a gap is a fault");
    };
    assert_eq!(fault.kind, FaultKind::Order);
    assert_eq!(fault.location.position, Some(22));
    assert_eq!(fault.description, "expected position 21, found position 22");
    // The export writes what comes before the gap, then reports it as a store would.
    let mut out = Vec::new();
    let error = export_of(memory, &ExportOptions::default(), &mut out).unwrap_err();
    assert!(
        matches!(
            &error,
            AuditError::Store(StoreError::Corrupted { damage: Damage::Gap, at, .. })
                if at.position == Some(21)
        ),
        "{error:?}"
    );
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 20);
}

#[test]
fn a_missing_seq_is_an_order_fault_in_memory() {
    // Take seq 3 of a conversation out and renumber the positions after it, so that only its
    // stream has a gap.
    let (records, standard) = changed_standard(|records, standard| {
        let stream = StreamId::Conversation(standard.a);
        let at = records
            .iter()
            .position(|r| r.stream == stream && r.seq == 3)
            .unwrap();
        records.remove(at);
        for record in &mut records[at..] {
            record.position -= 1;
        }
    });
    let memory = AuditLog::Records(&records);
    let VerifyReport::Faulty(fault) = verify_of(memory).unwrap() else {
        panic!("a gap in a stream is a fault");
    };
    assert_eq!(fault.kind, FaultKind::Order);
    assert_eq!(
        fault.location.stream,
        Some(StreamId::Conversation(standard.a))
    );
    assert_eq!(fault.location.seq, Some(4));
    assert_eq!(
        fault.description,
        "expected seq 3 of this stream, found seq 4"
    );
    let options = ExportOptions {
        conversation: Some(standard.a),
        ..ExportOptions::default()
    };
    let error = export_of(memory, &options, &mut Vec::new()).unwrap_err();
    assert!(
        matches!(
            &error,
            AuditError::Store(StoreError::Corrupted { damage: Damage::Gap, at, .. })
                if at.seq == Some(4)
        ),
        "{error:?}"
    );
    assert!(matches!(
        timeline_of(memory, standard.a),
        Err(AuditError::Store(StoreError::Corrupted {
            damage: Damage::Gap,
            ..
        }))
    ));
    // The other conversations' streams are whole.
    assert!(timeline_of(memory, standard.b).is_ok());
}

#[test]
fn a_read_that_finds_damage_is_a_fault() {
    let damaged = StoreError::corrupted(
        handover_store::LogLocation::at_position(4),
        Damage::Chain,
        "the record does not carry the hash of the one before it",
    );
    let VerifyReport::Faulty(fault) = VerifyReport::from_read_error(damaged).unwrap() else {
        panic!("damage is a fault");
    };
    assert_eq!(fault.kind, FaultKind::Damaged);
    assert_eq!(fault.location.position, Some(4));
    assert!(VerifyReport::from_read_error(StoreError::Engine("down".to_owned())).is_err());
}
