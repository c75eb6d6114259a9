//! The replay in one sequential pass: the stream records in key order
//! ([`SledStore::scan_streams`]) and the global index once ([`SledStore::scan_index`]),
//! instead of a point read of each event's record in position order.
//!
//! A stream's own rules need only its own events in seq order, which is how the stream key
//! space holds them. What spans streams is checked on the side:
//!
//! - the index and the records agree both ways: every position has exactly one record, in
//!   the stream the index names there, and every stream's records take its index entries in
//!   order (so each record's stream, seq and position are the index entry's);
//! - recorded times never go back in position order, from a time kept per position;
//! - a handoff names an AI agent registered and active at its position, from each agent's
//!   states by position. The AI-agent streams come first in key order, so every agent's
//!   states are known before the first conversation record.
//! - the directory's rules of conversation events (who may act, whom the router may assign,
//!   tenants) are judged against each human's state and load at the event's position. Human
//!   streams come last in key order, so the fold keeps what each such event needs (a few ids
//!   and flags, only for events a human or the router took part in), then judges them all once
//!   every human's states by position are known; a human's load at a position comes from the
//!   positions where conversations were given to them and taken from them.
//!
//! This pass only tells whether the log is sound. On the first thing it finds wrong (damage,
//! a broken rule, a disagreement, even an I/O error) it gives up, and the caller replays in
//! position order, which names the earliest fault exactly as a replay in position order does.
//!
//! Two threads share the work: one walks the stream records
//! ([`SledStore::scan_stream_records`]: sled's iteration and the keys) and hands them over in
//! batches; the caller's thread folds them, and reads the global index in step with the fold
//! and whenever no batch is waiting. The decoding (checksums, format, place, contiguity: [`StoredRecord::decode`]) is
//! shared: the scanning thread decodes a batch itself while the folding one has enough
//! batches waiting, and otherwise hands it over undecoded for the folding thread to decode.
//! Either way each record passes every check `scan_streams` makes, and a record that fails
//! one is a fault like any other.
//!
//! Besides the replay itself, the pass keeps 16 bytes per event while it runs (each
//! position's stream in the index, and the stream and time of the record that claimed it):
//! 16 MB for a log of a million events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, TryRecvError};

use handover_core::{AiAgent, AiAgentId, ConversationEvent, Event, Human, HumanId, StreamId};
use handover_sled::{SledStore, StoredRecord};
use handover_store::{EventStore, RecordedAt, RecordedEvent, StoreError};

use super::{authority, ConversationHistory, Replay};
use crate::progress::{Progress, Ticker};
use crate::timefmt::is_writable;

/// Records handed from the scanning thread to the folding one at a time: enough that the
/// channel costs nothing per record, few enough that a batch stays in the cache.
const BATCH_RECORDS: usize = 1024;

/// Batches in flight between the two threads: a little slack for either to run ahead.
const BATCHES_IN_FLIGHT: usize = 8;

/// Index entries the folding thread reads at a time when no batch is waiting: a fraction of
/// a millisecond, so a batch that arrives meanwhile waits no longer than that.
const INDEX_STEP: usize = 4096;

/// Index entries the folding thread may fall behind the records it has folded before it reads
/// the index up to them: the index is part of the work the two threads share (the scanning
/// thread then decodes more), and read in long runs it stays out of the fold's way in the
/// cache.
const INDEX_PACE: usize = 16 * INDEX_STEP;

/// How many batches must be waiting for the fold for the scanning thread to decode the next
/// one itself. With fewer the fold is about to run dry, so the batch goes undecoded and the
/// folding thread decodes it: each thread takes the share of the decoding that keeps both
/// busy.
const DECODE_AHEAD: usize = 1;

/// A batch of records, handed from the scanning thread to the folding one and back:
/// decoded by the scanning thread, or still as stored.
enum Batch {
    Decoded(Vec<RecordedEvent>),
    Stored(Vec<StoredRecord>),
}

/// Replays the whole log of `store` in one sequential pass, or `None` if anything in it is
/// not as it should be (or could not be read). A `Some` replay is the one
/// [`Replay::apply`] in position order would have built, and the log also has no stream
/// record the global index does not reach.
pub(super) fn replay(store: &SledStore, progress: &dyn Progress) -> Option<Replay> {
    let len = usize::try_from(store.head()).ok()?;
    let mut ticker = Ticker::start(progress, store.head());
    let waiting = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let (send, receive) = mpsc::sync_channel(BATCHES_IN_FLIGHT);
        // Room for the batches of both kinds the fold gives back.
        let (give_back, given_back) = mpsc::sync_channel(2 * BATCHES_IN_FLIGHT + 2);
        let waiting = &waiting;
        let scanner = scope.spawn(move || scan(store, &send, &given_back, waiting));
        let folded = fold_and_read_index(store, len, &receive, &give_back, waiting, &mut ticker);
        // On a fault the fold stops early; without a receiver the scan stops at its next
        // batch.
        drop(receive);
        let scanned = scanner
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let (fold, index) = folded?;
        if !scanned {
            return None;
        }
        fold.finish(&index)
    })
}

/// Sends every stream record to the fold in batches, decoding a batch itself when the fold
/// has `DECODE_AHEAD` batches waiting, and drops the records of the batches the fold gives
/// back; `false` if the scan stopped early (damage, an I/O error, a record that does not
/// decode, or the fold gave up).
fn scan(
    store: &SledStore,
    send: &mpsc::SyncSender<Batch>,
    given_back: &mpsc::Receiver<Batch>,
    waiting: &AtomicUsize,
) -> bool {
    let mut spare_stored: Vec<Vec<StoredRecord>> = Vec::new();
    let mut spare_decoded: Vec<Vec<RecordedEvent>> = Vec::new();
    let mut stored = Vec::with_capacity(BATCH_RECORDS);
    for record in store.scan_stream_records() {
        let Ok(record) = record else {
            return false;
        };
        stored.push(record);
        if stored.len() < BATCH_RECORDS {
            continue;
        }
        // This thread allocated the records, so it frees them too: the allocator frees
        // memory faster in the thread that took it (glibc's per-thread arenas lock on a
        // free from another thread), and the freed memory is at hand for the next ones.
        while let Ok(used) = given_back.try_recv() {
            match used {
                Batch::Decoded(mut used) => {
                    used.clear();
                    spare_decoded.push(used);
                }
                Batch::Stored(mut used) => {
                    used.clear();
                    spare_stored.push(used);
                }
            }
        }
        let batch = if waiting.load(Ordering::Relaxed) >= DECODE_AHEAD {
            let mut decoded = spare_decoded
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(BATCH_RECORDS));
            for record in stored.drain(..) {
                let Ok(record) = record.decode() else {
                    return false;
                };
                decoded.push(record);
            }
            Batch::Decoded(decoded)
        } else {
            let next = spare_stored
                .pop()
                .unwrap_or_else(|| Vec::with_capacity(BATCH_RECORDS));
            Batch::Stored(std::mem::replace(&mut stored, next))
        };
        waiting.fetch_add(1, Ordering::Relaxed);
        if send.send(batch).is_err() {
            return false;
        }
    }
    if stored.is_empty() {
        return true;
    }
    waiting.fetch_add(1, Ordering::Relaxed);
    send.send(Batch::Stored(stored)).is_ok()
}

/// Folds the batches as they arrive, decoding those the scanning thread did not, and reads
/// the global index in between; `None` on the first fault in either (a record that does not
/// decode is one).
fn fold_and_read_index(
    store: &SledStore,
    len: usize,
    receive: &mpsc::Receiver<Batch>,
    give_back: &mpsc::SyncSender<Batch>,
    waiting: &AtomicUsize,
    ticker: &mut Ticker<'_>,
) -> Option<(Fold, GlobalIndex)> {
    let mut fold = Fold::new(len);
    let mut index = GlobalIndex::with_capacity(len);
    let mut entries = store.scan_index(1);
    let mut index_read = false;
    loop {
        let batch = match receive.try_recv() {
            Ok(batch) => batch,
            Err(TryRecvError::Empty) if !index_read => {
                index_read = index.read(&mut entries, INDEX_STEP)?;
                if index_read {
                    // Room for every history at once spares copying them as the list grows.
                    fold.reserve(index.streams());
                }
                continue;
            }
            Err(TryRecvError::Empty) => match receive.recv() {
                Ok(batch) => batch,
                Err(_) => break,
            },
            Err(TryRecvError::Disconnected) => break,
        };
        waiting.fetch_sub(1, Ordering::Relaxed);
        match &batch {
            Batch::Decoded(records) => {
                for record in records {
                    fold.apply(record)?;
                }
                ticker.add(records.len() as u64);
            }
            Batch::Stored(records) => {
                for record in records {
                    fold.apply(&record.decode().ok()?)?;
                }
                ticker.add(records.len() as u64);
            }
        }
        // The index keeps pace with the fold rather than being left for the end, when the
        // scanning thread has nothing left to do.
        if !index_read {
            let behind = fold.records.saturating_sub(index.streams_by_position.len());
            if behind >= INDEX_PACE {
                index_read = index.read(&mut entries, behind)?;
                if index_read {
                    fold.reserve(index.streams());
                }
            }
        }
        // Nothing is lost if the scan has stopped or has enough spare batches: the batch is
        // then dropped here.
        let _ = give_back.try_send(batch);
    }
    while !index_read {
        index_read = index.read(&mut entries, INDEX_STEP)?;
    }
    Some((fold, index))
}

/// The global index, compacted: the stream of each position as a number.
struct GlobalIndex {
    /// Per position (from 1), the number of its stream.
    streams_by_position: Vec<u32>,
    /// Each stream's number.
    /// Looked up once per index entry: foldhash (hashbrown's own default) costs a fraction of
    /// the standard library's SipHash here and is seeded per process, so a crafted log cannot
    /// choose colliding ids.
    numbers: HashMap<StreamId, u32, foldhash::fast::RandomState>,
    /// Per stream number, how many entries the index holds of it.
    entries: Vec<u64>,
    /// The stream of the last entry read, with its number: consecutive positions often
    /// belong to one stream (an append of several events).
    last: Option<(StreamId, u32)>,
}

impl GlobalIndex {
    fn with_capacity(len: usize) -> GlobalIndex {
        GlobalIndex {
            streams_by_position: Vec::with_capacity(len),
            numbers: HashMap::default(),
            entries: Vec::new(),
            last: None,
        }
    }

    /// How many streams the entries read so far name.
    fn streams(&self) -> usize {
        self.entries.len()
    }

    /// Reads up to `most` more entries of `entries`, checking that positions run from 1
    /// without a gap and every stream's seqs from 1 without a gap: whether the index is
    /// read to its end, or `None` if it is not sound.
    fn read(
        &mut self,
        entries: &mut impl Iterator<Item = Result<(u64, StreamId, u64), StoreError>>,
        most: usize,
    ) -> Option<bool> {
        for _ in 0..most {
            let Some(entry) = entries.next() else {
                return Some(true);
            };
            let (position, stream, seq) = entry.ok()?;
            self.push(position, stream, seq)?;
        }
        Some(false)
    }

    fn push(&mut self, position: u64, stream: StreamId, seq: u64) -> Option<()> {
        if position != self.streams_by_position.len() as u64 + 1 {
            return None;
        }
        let number = match &self.last {
            Some((last, number)) if *last == stream => *number,
            _ => {
                // Looked up before inserting: most entries name a stream seen before, and
                // inserting would cost a copy of the stream id every time.
                let number = match self.numbers.get(&stream) {
                    Some(&number) => number,
                    None => {
                        let number = u32::try_from(self.entries.len()).ok()?;
                        self.numbers.insert(stream.clone(), number);
                        self.entries.push(0);
                        number
                    }
                };
                self.last = Some((stream, number));
                number
            }
        };
        let entries = &mut self.entries[number as usize];
        if seq != *entries + 1 {
            return None;
        }
        *entries = seq;
        self.streams_by_position.push(number);
        Some(())
    }
}

/// The stream being folded.
// The fold holds one of these: boxing the history would only add an allocation per
// conversation.
#[allow(clippy::large_enum_variant)]
enum Current {
    None,
    Agent {
        stream: StreamId,
        version: u64,
        last_position: u64,
    },
    Conversation {
        history: ConversationHistory,
        last_position: u64,
    },
    Human {
        stream: StreamId,
        version: u64,
        last_position: u64,
    },
}

/// The fold of the stream records in key order.
struct Fold {
    replay: Replay,
    /// Per position (from 1), the recorded time of the record that claimed it.
    recorded_at: Vec<i64>,
    /// Per position (from 1), the number of the stream whose record claimed it, from 1 in
    /// scan order; 0 while no record has. Zero-filled, so the allocation costs nothing until
    /// a page is used.
    claimed_by: Vec<u32>,
    /// Each stream scanned, in scan order (number 1 first), with its record count.
    streams: Vec<(StreamId, u64)>,
    current: Current,
    /// Each AI agent's states, by the position of the event that led to each.
    agents: HashMap<AiAgentId, Vec<(u64, AiAgent)>>,
    /// Whether a conversation record was seen: after one, the agents' states are final.
    in_conversations: bool,
    /// Whether a human's record was seen: they come last in key order.
    in_humans: bool,
    /// Each human's states, by the position of the event that led to each.
    humans: HashMap<HumanId, Vec<(u64, Human)>>,
    /// What the directory's rules of conversation events need, judged once the humans are
    /// known.
    deferred: Vec<authority::Facts>,
    records: usize,
}

impl Fold {
    fn new(len: usize) -> Fold {
        Fold {
            replay: Replay::new(),
            recorded_at: vec![0; len],
            claimed_by: vec![0; len],
            streams: Vec::new(),
            current: Current::None,
            agents: HashMap::new(),
            in_conversations: false,
            in_humans: false,
            humans: HashMap::new(),
            deferred: Vec::new(),
            records: 0,
        }
    }

    /// Makes room for `streams` histories in all.
    fn reserve(&mut self, streams: usize) {
        let more = streams.saturating_sub(self.replay.conversations.len());
        self.replay.conversations.reserve(more);
        self.replay.conversation_index.reserve(more);
    }

    /// Folds the next record in key order; `None` if anything is wrong with it.
    fn apply(&mut self, record: &RecordedEvent) -> Option<()> {
        let same_stream = match &self.current {
            Current::None => false,
            Current::Agent { stream, .. } => *stream == record.stream,
            Current::Conversation { history, .. } => history.stream == record.stream,
            Current::Human { stream, .. } => *stream == record.stream,
        };
        if !same_stream {
            self.end_stream();
            self.begin_stream(record)?;
        }
        self.claim(record)?;
        match &mut self.current {
            Current::None => return None,
            Current::Agent {
                stream,
                version,
                last_position,
            } => {
                let StreamId::AiAgent(stream_agent) = stream else {
                    return None;
                };
                let Event::AiAgent(event) = &record.event else {
                    return None;
                };
                if record.seq != *version + 1
                    || record.position <= *last_position
                    || event.agent_id() != stream_agent
                {
                    return None;
                }
                self.replay.roster.evolve(event).ok()?;
                let state = self.replay.roster.get(stream_agent)?.clone();
                self.agents
                    .entry(stream_agent.clone())
                    .or_default()
                    .push((record.position, state));
                *version = record.seq;
                *last_position = record.position;
            }
            Current::Conversation {
                history,
                last_position,
            } => {
                if record.position <= *last_position {
                    return None;
                }
                if let Event::Conversation(ConversationEvent::HandedOffToAi {
                    agent_id,
                    agent_name,
                    ..
                }) = &record.event
                {
                    // The agent's state just before the handoff: registered, active, and
                    // under this name.
                    let states = self.agents.get(agent_id)?;
                    let before = states.partition_point(|(at, _)| *at < record.position);
                    let (_, agent) = states.get(before.checked_sub(1)?)?;
                    if !agent.active || agent.profile.name != *agent_name {
                        return None;
                    }
                }
                // The directory's rules wait for the human streams, which come last in key
                // order: judged in `finish`, at the event's position.
                if let Event::Conversation(event) = &record.event {
                    authority::check_ai_tenant(&self.replay.roster, history, event).ok()?;
                    self.deferred
                        .extend(authority::facts(history, event, record.position));
                }
                history.apply_or_discard(record).ok()?;
                *last_position = record.position;
            }
            Current::Human {
                stream,
                version,
                last_position,
            } => {
                let StreamId::Human(stream_human) = stream else {
                    return None;
                };
                let Event::Human(event) = &record.event else {
                    return None;
                };
                if record.seq != *version + 1
                    || record.position <= *last_position
                    || event.human_id() != stream_human
                {
                    return None;
                }
                self.replay.directory.evolve(event).ok()?;
                let state = self.replay.directory.get(stream_human)?.clone();
                self.humans
                    .entry(stream_human.clone())
                    .or_default()
                    .push((record.position, state));
                *version = record.seq;
                *last_position = record.position;
            }
        }
        Some(())
    }

    /// Claims the record's position for its stream, with its time.
    fn claim(&mut self, record: &RecordedEvent) -> Option<()> {
        let index = usize::try_from(record.position.checked_sub(1)?).ok()?;
        let claimed_by = self.claimed_by.get_mut(index)?;
        if *claimed_by != 0 || !is_writable(record.recorded_at) {
            return None;
        }
        *claimed_by = u32::try_from(self.streams.len()).ok()?;
        self.recorded_at[index] = record.recorded_at.as_micros();
        self.records += 1;
        Some(())
    }

    fn begin_stream(&mut self, record: &RecordedEvent) -> Option<()> {
        self.current = match &record.stream {
            // Key order puts every AI-agent stream before the conversations, and the humans
            // after them.
            StreamId::AiAgent(_) | StreamId::Conversation(_) if self.in_humans => return None,
            StreamId::AiAgent(_) if self.in_conversations => return None,
            StreamId::AiAgent(_) => Current::Agent {
                stream: record.stream.clone(),
                version: 0,
                last_position: 0,
            },
            StreamId::Conversation(id) => {
                self.in_conversations = true;
                Current::Conversation {
                    history: ConversationHistory::new(*id),
                    last_position: 0,
                }
            }
            StreamId::Human(_) => {
                self.in_humans = true;
                Current::Human {
                    stream: record.stream.clone(),
                    version: 0,
                    last_position: 0,
                }
            }
        };
        self.streams.push((record.stream.clone(), 0));
        Some(())
    }

    /// Files the stream just folded into the replay.
    fn end_stream(&mut self) {
        let version = match std::mem::replace(&mut self.current, Current::None) {
            Current::None => return,
            Current::Agent {
                stream, version, ..
            } => {
                self.replay.agent_streams.insert(stream, version);
                version
            }
            Current::Human {
                stream, version, ..
            } => {
                self.replay.human_streams.insert(stream, version);
                version
            }
            Current::Conversation { mut history, .. } => {
                history.settle();
                let version = history.version;
                let replay = &mut self.replay;
                if let Some(human) = history.assigned_human() {
                    replay.loads.add(human);
                }
                replay
                    .conversation_index
                    .insert(history.id, replay.conversations.len());
                replay.conversations.push(history);
                version
            }
        };
        if let Some((_, records)) = self.streams.last_mut() {
            *records = version;
        }
    }

    /// Checks what spans streams against the index, and completes the replay.
    fn finish(mut self, index: &GlobalIndex) -> Option<Replay> {
        self.end_stream();
        let len = self.claimed_by.len();
        if index.streams_by_position.len() != len || self.records != len {
            return None;
        }
        // Each scanned stream's number in the index, if the index holds exactly as many
        // entries of it as the stream holds records.
        let in_index: Vec<u32> = self
            .streams
            .iter()
            .map(|(stream, records)| {
                let number = *index.numbers.get(stream)?;
                (index.entries[number as usize] == *records).then_some(number)
            })
            .collect::<Option<_>>()?;
        let mut last = i64::MIN;
        let positions = self
            .claimed_by
            .iter()
            .zip(&self.recorded_at)
            .zip(&index.streams_by_position);
        for ((&claimed_by, &recorded_at), indexed) in positions {
            let scanned = (claimed_by as usize)
                .checked_sub(1)
                .and_then(|number| in_index.get(number));
            if scanned != Some(indexed) || recorded_at < last {
                return None;
            }
            last = recorded_at;
        }
        self.judge_deferred()?;
        let replay = &mut self.replay;
        replay.events = len as u64;
        replay.head = len as u64;
        replay.first_recorded_at = self.recorded_at.first().copied().map(RecordedAt);
        replay.last_recorded_at = self.recorded_at.last().copied().map(RecordedAt);
        Some(self.replay)
    }
}

impl Fold {
    /// Judges the directory's rules of every conversation event that needs them, against each
    /// human's state and load at the event's position.
    fn judge_deferred(&self) -> Option<()> {
        // Each human's assignments, as the positions they began and ended at, sorted: the load
        // before position `p` is the number begun before `p` less the number ended before it.
        let mut began: HashMap<&HumanId, Vec<u64>> = HashMap::new();
        let mut ended: HashMap<&HumanId, Vec<u64>> = HashMap::new();
        if self
            .deferred
            .iter()
            .any(|facts| facts.router_target().is_some())
        {
            for history in &self.replay.conversations {
                for span in history.human_spans() {
                    began.entry(&span.human).or_default().push(span.from);
                    if let Some(to) = span.to {
                        ended.entry(&span.human).or_default().push(to);
                    }
                }
            }
            for positions in began.values_mut().chain(ended.values_mut()) {
                positions.sort_unstable();
            }
        }
        let before = |positions: Option<&Vec<u64>>, p: u64| {
            positions.map_or(0, |v| v.partition_point(|&at| at < p))
        };
        for facts in &self.deferred {
            let p = facts.position;
            let human = |id: &HumanId| {
                let states = self.humans.get(id)?;
                let i = states.partition_point(|(at, _)| *at < p);
                states.get(i.checked_sub(1)?).map(|(_, human)| human)
            };
            let load = |id: &HumanId| {
                let load = before(began.get(id), p) - before(ended.get(id), p);
                u32::try_from(load).unwrap_or(u32::MAX)
            };
            authority::judge(facts, human, load).ok()?;
        }
        Some(())
    }
}

/// The logs the integration tests build, for checking this pass against the position-order
/// replay.
#[cfg(test)]
#[path = "../../tests/common/mod.rs"]
mod test_log;

#[cfg(test)]
mod tests {
    use crate::progress::NoProgress;
    use std::path::Path;

    use handover_core::{
        AgentName, AiAgentEvent, Author, ConversationEvent, ConversationId, EscalationCause, Event,
        HumanId, Participant, StreamId,
    };
    use handover_sled::{SledOptions, SledStore};
    use handover_store::{encode_record, RecordHash, RecordedAt};

    use super::test_log::*;
    use super::*;
    use crate::fault::FaultKind;
    use crate::AuditError;

    fn in_position_order(store: &SledStore) -> Result<Replay, AuditError> {
        Replay::from_store_in_position_order(store, &NoProgress)
    }

    /// Everything a replay shows.
    fn assert_same(fast: &Replay, slow: &Replay) {
        assert_eq!(fast.roster(), slow.roster());
        assert_eq!(fast.directory(), slow.directory());
        assert_eq!(fast.loads(), slow.loads());
        assert!(fast.conversations().eq(slow.conversations()));
        assert!(fast.streams().eq(slow.streams()));
        assert_eq!((fast.events(), fast.head()), (slow.events(), slow.head()));
        assert_eq!(fast.first_recorded_at(), slow.first_recorded_at());
        assert_eq!(fast.last_recorded_at(), slow.last_recorded_at());
    }

    /// The standard log, with three more conversations whose events interleave in the
    /// global order, one of them handed off after billing-bot's reactivation.
    fn interleaved_log(log: &mut LogBuilder) {
        standard_log(log);
        let x = log.open("cust-x", "web-chat", Some("alice"));
        let y = log.open("cust-y", "email", None);
        log.customer_says(x, "cust-x", "Do you ship to Portugal?");
        log.hand_off(x, "alice", "faq-bot", None);
        log.customer_says(y, "cust-y", "Hello?");
        log.activate("billing-bot");
        let z = log.open("cust-z", "whatsapp", Some("bob"));
        log.hand_off(y, "carol", "billing-bot", Some("invoice question"));
        log.ai_says(x, "Yes, in three to five days.");
        log.ai_says(y, "Your invoice is under Billing.");
        log.say(z, Participant::Human(human("bob")), "Hi!");
        log.escalate(y, "needs a human", EscalationCause::AgentRequested);
        let by = Participant::Ai(log.assignment(x));
        log.close(x, by, None);
    }

    #[test]
    fn a_sound_log_replays_as_in_position_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogBuilder::new(dir.path());
        interleaved_log(&mut log);
        let fast = replay(log.store(), &NoProgress).expect("the log is sound");
        assert_same(&fast, &in_position_order(log.store()).unwrap());
        assert_eq!(fast.conversations().count(), 7);
        assert_same(&Replay::from_store(log.store()).unwrap(), &fast);
    }

    /// Humans of two tenants, a router at work, a transfer and a wait: the directory's rules
    /// are judged at each event's position in one pass too.
    fn humans_log(log: &mut LogBuilder) -> ConversationId {
        use handover_core::{ConversationCommand, Presence, Role, SystemActor, TeamId};
        log.register_human("ann", "acme", Role::Agent, &["billing"], 1);
        log.register_human("zed", "acme", Role::Agent, &[], 3);
        log.register_human("gus", "globex", Role::Supervisor, &[], 3);
        let first = log.start("acme", "cust-1", Some("billing"), None);
        log.assign(first, Participant::System(SystemActor::Router), "ann");
        let second = log.start("globex", "cust-2", None, Some("gus"));
        log.say(
            second,
            Participant::Human(human("gus")),
            "Hello from globex",
        );
        log.command(
            first,
            ConversationCommand::Transfer {
                by: human("ann"),
                to: handover_core::TransferTarget::Team(TeamId::new("billing").unwrap()),
                reason: handover_core::Reason::new("busy").unwrap(),
            },
        );
        log.presence("ann", Presence::Away);
        log.presence("ann", Presence::Available);
        let third = log.start("acme", "cust-3", None, None);
        // ann's load is back to zero: the router may give her a conversation again.
        log.assign(third, Participant::System(SystemActor::Router), "ann");
        log.assign(first, Participant::System(SystemActor::Router), "zed");
        first
    }

    #[test]
    fn a_log_with_humans_replays_as_in_position_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogBuilder::new(dir.path());
        standard_log(&mut log);
        humans_log(&mut log);
        let fast = replay(log.store(), &NoProgress).expect("the log is sound");
        assert_same(&fast, &in_position_order(log.store()).unwrap());
        assert_eq!(fast.directory().all().count(), 8);
    }

    /// The directory's rules, judged at the end of the pass, against each human's state and
    /// load at the event's position: a forged event that breaks one sends the replay back to
    /// position order, which names it.
    #[test]
    fn a_directory_fault_is_found_at_its_position() {
        use handover_core::{Presence, SystemActor, Timestamp};
        for (away, expected) in [
            (true, "who was away at that point"),
            (
                false,
                "who already handled 1 open conversations, their capacity being 1",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let mut log = LogBuilder::new(dir.path());
            let first = humans_log(&mut log);
            if away {
                log.presence("ann", Presence::Away);
            }
            // Available but at capacity (third), or away.
            let fourth = log.start("acme", "cust-4", None, None);
            log.forge(
                StreamId::Conversation(fourth),
                vec![Event::Conversation(ConversationEvent::HumanAssigned {
                    human_id: human("ann"),
                    name: AgentName::new("ann").unwrap(),
                    team: None,
                    by: Author::System(SystemActor::Router),
                    at: Timestamp::from_millis(1),
                })],
            );
            // Later events make ann available and free again: only her state at the forged
            // event's position counts.
            if away {
                log.presence("ann", Presence::Available);
            }
            log.close(first, Participant::Human(human("zed")), None);
            assert!(replay(log.store(), &NoProgress).is_none());
            let Err(AuditError::Unsound(fault)) = Replay::from_store(log.store()) else {
                panic!("the assignment is a fault");
            };
            assert_eq!(fault.kind, FaultKind::Capacity, "{fault}");
            assert!(fault.description.contains(expected), "{fault}");
            assert_eq!(fault.location.stream, Some(StreamId::Conversation(fourth)));
        }
    }

    #[test]
    fn an_empty_log_replays_as_in_position_order() {
        let dir = tempfile::tempdir().unwrap();
        let log = LogBuilder::new(dir.path());
        let fast = replay(log.store(), &NoProgress).expect("the log is sound");
        assert_same(&fast, &Replay::new());
    }

    #[test]
    fn a_replay_from_the_pass_goes_on_as_one_in_position_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogBuilder::new(dir.path());
        let s = standard_log(&mut log);
        let (mut fast, mut slow) = (
            replay(log.store(), &NoProgress).unwrap(),
            in_position_order(log.store()).unwrap(),
        );
        // A refused event restores the history as it was, then a sound one folds.
        let seq = slow.stream_version(&StreamId::Conversation(s.d)) + 1;
        let next = |seq, event| RecordedEvent {
            position: slow.head() + 1,
            stream: StreamId::Conversation(s.d),
            seq,
            recorded_at: slow.last_recorded_at().unwrap(),
            event: Event::Conversation(event),
        };
        let refused = next(
            seq,
            ConversationEvent::MessagePosted {
                author: Author::Ai(agent("billing-bot")),
                text: text("still here"),
                concerns: vec![],
            },
        );
        let sound = next(
            seq,
            ConversationEvent::MessagePosted {
                author: Author::Human(human("carol")),
                text: text("Carol here."),
                concerns: vec![],
            },
        );
        for replay in [&mut fast, &mut slow] {
            assert_eq!(replay.apply(&refused).unwrap_err().kind, FaultKind::Rule);
            replay.apply(&sound).unwrap();
        }
        assert_same(&fast, &slow);
    }

    /// A handoff to an AI agent whose registration stream says it is active, but not yet
    /// (or no longer) at the handoff's position.
    #[test]
    fn a_handoff_is_checked_against_the_agent_at_its_position() {
        for activated_first in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let mut log = LogBuilder::new(dir.path());
            log.register("faq-bot", "FAQ bot", &[]);
            if activated_first {
                log.activate("faq-bot");
            }
            let id = log.open("cust-1", "web-chat", Some("alice"));
            if activated_first {
                log.deactivate("faq-bot");
            }
            log.forge(
                StreamId::Conversation(id),
                vec![Event::Conversation(ConversationEvent::HandedOffToAi {
                    agent_id: agent("faq-bot"),
                    agent_name: AgentName::new("FAQ bot").unwrap(),
                    by_human: HumanId::new("alice").unwrap(),
                    reason: None,
                })],
            );
            if !activated_first {
                log.activate("faq-bot");
            }
            assert!(replay(log.store(), &NoProgress).is_none());
            let Err(AuditError::Unsound(fault)) = Replay::from_store(log.store()) else {
                panic!("the handoff is a fault");
            };
            assert_eq!(fault.location.seq, Some(3));
            assert!(fault.description.contains("not active"), "{fault}");
        }
    }

    /// Rewrites a stream record of the closed log in `dir` through `change`, with a valid
    /// checksum.
    fn rewrite(dir: &Path, stream: &StreamId, seq: u64, change: impl FnOnce(&mut RecordedEvent)) {
        let db = SledStore::open_raw(dir, std::time::Duration::from_secs(5)).unwrap();
        let tree = db.open_tree("log").unwrap();
        let key = tree
            .scan_prefix(b"s")
            .map(|entry| entry.unwrap())
            .find_map(|(key, value)| {
                let record = handover_store::decode_record(&value).unwrap();
                (record.stream == *stream && record.seq == seq).then_some((key, record))
            });
        let (key, mut record) = key.expect("the record is in the log");
        change(&mut record);
        tree.insert(key, encode_record(&record, &RecordHash::ZERO).unwrap())
            .unwrap();
        tree.flush().unwrap();
    }

    fn reopen(dir: &Path) -> SledStore {
        SledStore::open(
            dir,
            SledOptions {
                in_use_wait: std::time::Duration::from_secs(5),
                ..SledOptions::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn time_going_back_in_position_order_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogBuilder::new(dir.path());
        let s = standard_log(&mut log);
        let path = log.finish();
        // Conversation b's opening, back before everything else in the log.
        rewrite(&path, &StreamId::Conversation(s.b), 1, |record| {
            record.recorded_at = RecordedAt(record.recorded_at.as_micros() - 60_000_000);
        });
        let store = reopen(&path);
        assert!(replay(&store, &NoProgress).is_none());
        let Err(AuditError::Unsound(fault)) = Replay::from_store(&store) else {
            panic!("time going back is a fault");
        };
        assert_eq!(fault.kind, FaultKind::Order);
        assert_eq!(fault.location.stream, Some(StreamId::Conversation(s.b)));
        assert_eq!(fault.location.seq, Some(1));
    }

    #[test]
    fn a_record_that_names_another_position_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogBuilder::new(dir.path());
        let s = standard_log(&mut log);
        let path = log.finish();
        // Conversation a's opening claims position 1, an AI agent's.
        rewrite(&path, &StreamId::Conversation(s.a), 1, |record| {
            record.position = 1;
        });
        assert_damage_found(&path, "the index says position");
    }

    #[test]
    fn an_index_entry_without_its_record_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogBuilder::new(dir.path());
        let s = standard_log(&mut log);
        let path = log.finish();
        {
            let db = SledStore::open_raw(&path, std::time::Duration::from_secs(5)).unwrap();
            let tree = db.open_tree("log").unwrap();
            let mut key = vec![b's', b'c'];
            key.extend_from_slice(s.d.as_bytes());
            key.extend_from_slice(&2u64.to_be_bytes());
            tree.remove(key).unwrap().expect("the record was there");
            tree.flush().unwrap();
        }
        assert_damage_found(&path, "record is missing");
    }

    /// The one-pass replay gives up on the log in `path`, and the replay reports store damage
    /// whose message holds `detail`.
    #[track_caller]
    fn assert_damage_found(path: &Path, detail: &str) {
        let store = reopen(path);
        assert!(replay(&store, &NoProgress).is_none());
        let Err(AuditError::Store(error)) = Replay::from_store(&store) else {
            panic!("the damage must be reported as store damage");
        };
        assert!(error.to_string().contains(detail), "{error}");
    }

    /// A log of many batches, with one conversation of `messages` customer messages after the
    /// standard log: batches decoded by either thread.
    fn long_log(log: &mut LogBuilder, messages: usize) -> ConversationId {
        standard_log(log);
        let id = log.open("cust-long", "web-chat", Some("alice"));
        let message = Event::Conversation(ConversationEvent::MessagePosted {
            author: Author::Customer(customer("cust-long")),
            text: text("Still there?"),
            concerns: vec![],
        });
        log.forge(StreamId::Conversation(id), vec![message; messages]);
        id
    }

    #[test]
    fn a_log_of_many_batches_replays_as_in_position_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogBuilder::new(dir.path());
        long_log(&mut log, 20 * BATCH_RECORDS);
        let fast = replay(log.store(), &NoProgress).expect("the log is sound");
        assert_same(&fast, &in_position_order(log.store()).unwrap());
    }

    /// Damage in any batch, whichever thread decodes it, is a fault.
    #[test]
    fn damage_in_a_log_of_many_batches_is_found() {
        for damaged_seq in [3 * BATCH_RECORDS as u64, 19 * BATCH_RECORDS as u64] {
            let dir = tempfile::tempdir().unwrap();
            let mut log = LogBuilder::new(dir.path());
            let id = long_log(&mut log, 20 * BATCH_RECORDS);
            let path = log.finish();
            rewrite(&path, &StreamId::Conversation(id), damaged_seq, |record| {
                record.position = 1;
            });
            assert_damage_found(&path, "the index says position");
        }
    }

    #[test]
    fn an_ai_agent_event_the_roster_refuses_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = LogBuilder::new(dir.path());
        log.register("faq-bot", "FAQ bot", &[]);
        log.activate("faq-bot");
        log.forge(
            StreamId::AiAgent(agent("faq-bot")),
            vec![Event::AiAgent(AiAgentEvent::Activated {
                agent_id: agent("faq-bot"),
            })],
        );
        assert!(replay(log.store(), &NoProgress).is_none());
        assert!(matches!(
            Replay::from_store(log.store()),
            Err(AuditError::Unsound(fault)) if fault.location.seq == Some(3)
        ));
    }
}
