//! The corpus's seeds: meaningful inputs for each target, built in code so that they follow
//! the input formats as those change. `tests/corpus.rs` replays them with the kept corpus, and
//! writes them into `fuzz/corpus/<target>/` when `HANDOVER_FUZZ_WRITE_SEEDS=1` is set.

use std::collections::HashMap;

use handover_core::StreamId;
use handover_store::{encode_record, RecordHash, RecordedAt, RecordedEvent};

use crate::commands::{recorded_history, Script};

/// The released format-1 fixture of the store: real records of every event type.
const FIXTURE_V1: &[u8] = include_bytes!("../../handover-sled/tests/fixtures/records-v1.bin");
const FIXTURE_HEADER_BYTES: usize = 20;

/// Every seed, as (target, name, input).
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (name, script) in command_scripts() {
        seeds.push(("command_sequence", name.to_owned(), script.0));
    }
    for (name, input) in record_inputs() {
        seeds.push(("record_decoder", name, input));
    }
    for (name, input) in audit_inputs() {
        seeds.push(("audit_input", name.to_owned(), input));
    }
    seeds
}

/// The key/value pairs of the format-1 fixture.
fn fixture_pairs() -> Vec<(&'static [u8], &'static [u8])> {
    let mut rest = &FIXTURE_V1[FIXTURE_HEADER_BYTES..];
    let mut pairs = Vec::new();
    let next = |rest: &mut &'static [u8]| {
        let (len, tail) = rest.split_at(4);
        let len = u32::from_be_bytes(len.try_into().expect("four bytes")) as usize;
        let (item, tail) = tail.split_at(len);
        *rest = tail;
        item
    };
    while !rest.is_empty() {
        let key = next(&mut rest);
        let value = next(&mut rest);
        pairs.push((key, value));
    }
    pairs
}

/// Real records: every fifth record of the format-1 fixture, and the records of a real
/// sequence in format 2 with their hash chains, each as a raw input; and structured inputs of
/// several event types with mutations, forged and not.
fn record_inputs() -> Vec<(String, Vec<u8>)> {
    let mut inputs = Vec::new();
    let records = fixture_pairs()
        .into_iter()
        .filter(|(key, _)| key.first() == Some(&b's'))
        .map(|(_, value)| value);
    for (i, record) in records.enumerate().filter(|(i, _)| i % 5 == 0) {
        inputs.push((format!("v1-fixture-{i:02}"), [&[0u8][..], record].concat()));
    }
    let mut chains: HashMap<StreamId, (u64, RecordHash)> = HashMap::new();
    let mut position = 0;
    for (stream, batch) in recorded_history(&command_scripts()[1].1 .0) {
        for event in batch {
            position += 1;
            let (seq, hash) = chains
                .entry(stream.clone())
                .or_insert((0, RecordHash::ZERO));
            *seq += 1;
            let record = RecordedEvent {
                position,
                stream: stream.clone(),
                seq: *seq,
                recorded_at: RecordedAt(1_720_000_000_000_000 + position as i64),
                event,
            };
            let bytes = encode_record(&record, hash).expect("a valid record encodes");
            *hash = RecordHash::of(&bytes);
            if position % 2 == 1 {
                let input = [&[0u8][..], &bytes].concat();
                inputs.push((format!("v2-sequence-{position:02}"), input));
            }
        }
    }
    // Structured: mode 1, then the record's fields (small position, agent or conversation
    // stream, small seq, small time, event type), then mutations.
    let structured: [(&str, &[u8]); 5] = [
        ("structured-registered", &[1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 2]),
        (
            "structured-message-flip",
            &[1, 7, 2, 3, 9, 4, 0, 7, 2, 1, 0, 0, 20, 0, 3],
        ),
        (
            "structured-handoff-forged",
            &[1, 8, 3, 4, 9, 5, 1, 1, 0, 1, 0, 0, 3, 30, 0, 7, 6],
        ),
        (
            "structured-skill-truncate",
            &[1, 9, 4, 5, 9, 6, 0, 0, 0, 0, 1, 2, 1, 4, 40, 0],
        ),
        (
            "structured-closed-insert",
            &[1, 10, 5, 6, 9, 9, 2, 0, 1, 0, 0, 2, 12, 0, 251, 6],
        ),
    ];
    for (name, input) in structured {
        inputs.push((name.to_owned(), input.to_vec()));
    }
    inputs
}

/// The real log, unchanged and with one mutation of each kind; and key/value pairs under the
/// store's layout.
fn audit_inputs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("real-log", vec![0]),
        ("flip-value", vec![0, 0, 3, 0, 40, 2]),
        ("flip-key", vec![0, 1, 5, 0, 3, 1]),
        ("remove-pair", vec![0, 2, 7, 0]),
        ("copy-value", vec![0, 3, 4, 0, 6, 0]),
        ("swap-values", vec![0, 4, 4, 0, 5, 0]),
        ("truncate-value", vec![0, 5, 30, 0, 30]),
        ("remove-tail", vec![0, 2, 18, 0, 2, 37, 0]),
        (
            "add-record",
            vec![0, 6, 0, 2, 9, 0, 0, 4, 4, 0, 0, 0, 0, 0, 0],
        ),
        ("forge-seq", vec![0, 7, 10, 0, 1, 3, 0]),
        ("forge-event", vec![0, 7, 12, 0, 3, 9, 1, 0, 0]),
        ("remove-anchor", vec![0, 8, 0, 0]),
        ("flip-anchor", vec![0, 8, 0, 1, 20, 0, 3]),
        (
            "pairs",
            vec![
                1, 0, 2, 1, 0, 1, 2, 1, 1, 5, 0, 0, 1, 2, 1, 2, 1, 1, 1, 2, 1,
            ],
        ),
        (
            "legacy-index",
            vec![1, 3, 1, 1, 2, 1, 2, 1, 5, 3, 2, 9, 0, 0, 1, 0, 0, 0, 0],
        ),
    ]
}

/// Real command sequences: the states the manual names, the policy, stale assignments.
fn command_scripts() -> Vec<(&'static str, Script)> {
    // Agents: 0 faq, 1 sales, 2 idle, 3 ghost. Humans: 0 ana, 1 bob, 2 carol.
    vec![
        (
            // Every escalation rule's command and event: a handoff with a context, a refund
            // that waits (approved, denied, and denied by the clock), an AI that keeps missing,
            // the loop guard's cooldown and a supervisor's override, the embedder's verdict and
            // refusal, an escalation with a context.
            "escalation-rules",
            Script::default()
                .open(0, Some(0))
                .hand_off_with(0, 0, true, false, false)
                .start_refund()
                .approve(2, 2)
                .approve(0, 2)
                .start_refund()
                .deny(1, 2)
                .start_refund()
                .tick(6)
                .tick(0)
                .report_miss(None)
                .ai_says(None, 0)
                .report_miss(None)
                .accept(0)
                .hand_off(0, 1)
                .hand_off_with(0, 1, false, true, false)
                .hand_off_with(1, 1, false, true, false)
                .judged(0, 0, 7)
                .accept(0)
                .hand_off_with(0, 0, false, false, true)
                .hand_off_with(1, 0, true, true, true)
                .customer_says(0, 9)
                .escalate_with()
                .close(0),
        ),
        (
            "handoff-reclaim-close",
            Script::default()
                .open(0, Some(0))
                .customer_says(0, 0)
                .hand_off(0, 0)
                .human_says(1)
                .ai_says(None, 0)
                .skill(None, false)
                .skill(Some(1), true)
                .reclaim(1)
                .ai_says(Some(0), 0)
                .human_says(1)
                .hand_off(1, 0)
                .ai_says(None, 5)
                .deactivate(0)
                .escalate(None, 2)
                .register(3)
                .activate(3)
                .hand_off(0, 3)
                .customer_says(1, 6)
                .close(2)
                .customer_says(0, 1),
        ),
        (
            "customer-asks-for-a-human",
            Script::default()
                .open(1, None)
                .customer_says(1, 1)
                .hand_off(2, 1)
                .ai_says(None, 0)
                .customer_says(1, 7)
                .ai_says(None, 0)
                .human_says(2)
                .hand_off(2, 1)
                .close(0),
        ),
        (
            "concerns-keep-humans",
            Script::default()
                .open(0, Some(1))
                .customer_says(0, 9)
                .hand_off(1, 0)
                .customer_says(0, 11)
                .customer_says(0, 12)
                .human_says(1)
                .escalate(Some(0), 0)
                .close(1),
        ),
        (
            "two-conversations",
            Script::default()
                .open(0, Some(0))
                .switch()
                .open(1, Some(1))
                .hand_off(1, 1)
                .switch()
                .hand_off(0, 1)
                .ai_says(None, 0)
                .switch()
                .ai_says(None, 0)
                .deactivate(1)
                .escalate(None, 2)
                .switch()
                .escalate(None, 1)
                .escalate(None, 0)
                .activate(1)
                .activate(2)
                .hand_off(0, 2)
                .ai_says(None, 6)
                .close(2),
        ),
        (
            "raw-text",
            Script::default()
                .open(2, None)
                .customer_writes(
                    2,
                    "Olá, quero falar com um atendente humano, por favor".as_bytes(),
                )
                .customer_writes(2, b"\xff\xfe not utf-8 \x07 bell")
                .hand_off(0, 0),
        ),
        (
            // Humans 0 ana (agent, billing), 1 bob (supervisor), 2 carol (agent), 3 dave
            // (agent of acme), 4 erin (unregistered).
            "queues-authority-and-deadlines",
            Script::default()
                .start(0, 0, 1, 2, None)
                .accept(2)
                .accept(0)
                .whisper(0, false)
                .raise_flag(Some(0))
                .lower_flag(0)
                .lower_flag(1)
                .hand_off(0, 0)
                .whisper(1, true)
                .start_skill()
                .raise_flag(None)
                .customer_says(0, 0)
                .tick(3)
                .skill(Some(0), false)
                .tick(4)
                .assign(None, 2)
                .transfer_to_team(2, 2)
                .assign(Some(0), 1)
                .assign(Some(1), 0)
                .transfer_to_human(0, 2)
                .set_presence(2, 2)
                .requeue(2)
                .remove_human(0)
                .register_human(4, 0, 0, 2, 3)
                .set_presence(4, 0)
                .accept(4)
                .accept(1)
                .switch()
                .start(1, 1, 0, 0, Some(3))
                .human_says(1)
                .human_says(3)
                .hand_off(3, 0)
                .tick(7)
                .human_says(3),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::command_scripts;
    use crate::commands::recorded_history;

    #[test]
    fn the_escalation_rules_seed_records_every_new_event() {
        let (_, script) = command_scripts()
            .into_iter()
            .find(|(name, _)| *name == "escalation-rules")
            .expect("the seed");
        let kinds: BTreeSet<&str> = recorded_history(&script.0)
            .iter()
            .flat_map(|(_, events)| events.iter().map(|event| event.type_name()))
            .collect();
        for kind in [
            "context_shared",
            "handed_off_to_ai",
            "skill_approval_requested",
            "skill_approved",
            "skill_denied",
            "ai_could_not_answer",
            "escalated_to_human",
            "policy_overridden",
        ] {
            assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
        }
    }
}
