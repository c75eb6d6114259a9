//! The journal's writer thread: takes every waiting append, checks expected versions and
//! command ids, assembles the records, and applies the group as one sled batch.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Mutex};

use handover_core::{CommandId, StreamId};
use handover_store::{
    encode_record_with_event, Appended, EncodedEvent, RecordHash, RecordedAt, RecordedEvent,
    StoreError,
};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::group::{Acks, Answer, AppendRequest, Group};
use super::poison::Poison;
use super::space::FreeSpace;
use super::stats::Counters;
use crate::anchor::AnchorPoint;
use crate::checked::read_command;
use crate::engine::{contained, lock, OrStore};
use crate::index::IndexChunks;
use crate::keys::{command_key, encode_command_entry, event_key, mark_key, CHECKPOINT_KEY};
use crate::tip::{
    encode_checkpoint, stream_tip, Checkpoint, Marks, Tip, CHECKPOINT_GROUPS, CHECKPOINT_STREAMS,
};

/// Most appends the writer puts in one group. Bounds the memory of one sled batch; under any
/// realistic load the queue holds fewer.
pub(crate) const GROUP_APPENDS_MAX: usize = 4096;

/// Most stream versions the writer remembers. Beyond this the cache is emptied and refilled
/// from the log, one lookup per stream, so its memory stays bounded whatever the number of
/// conversations.
pub(crate) const VERSION_CACHE_MAX: usize = 1 << 18;

/// A record's key and encoded value, ready for a sled batch.
pub(crate) type KeyValue = (Vec<u8>, Vec<u8>);

pub(crate) struct Writer {
    pub(crate) log: sled::Tree,
    pub(crate) requests: mpsc::Receiver<AppendRequest>,
    pub(crate) acks: Acks,
    pub(crate) next_position: u64,
    pub(crate) last_recorded_at: RecordedAt,
    /// `SledOptions::fixed_time` or `SledOptions::time_source`.
    pub(crate) time_source: Option<handover_store::TimeSource>,
    /// Where every stream written recently ends: its version and its last record's hash. The
    /// writer is the log's only writer, so the cache cannot go stale; a miss reads the
    /// stream's high-water mark.
    pub(crate) tips: HashMap<StreamId, Tip>,
    pub(crate) head: Arc<AtomicU64>,
    pub(crate) applied_tip: Arc<Mutex<Option<AnchorPoint>>>,
    pub(crate) space: Option<FreeSpace>,
    pub(crate) poison: Arc<Poison>,
    #[cfg(test)]
    pub(crate) handed_over: Arc<AtomicU64>,
    pub(crate) counters: Arc<Counters>,
    /// The tails written since the last checkpoint, which readers consult before `M` keys.
    pub(crate) marks: Arc<Marks>,
    /// Groups applied since the last checkpoint.
    pub(crate) groups_since_checkpoint: u32,
    /// The last checkpoint of the marks.
    pub(crate) checkpoint: Checkpoint,
}

impl Writer {
    pub(crate) fn run(mut self) {
        let mut pending = Vec::new();
        while let Some(first) = self.requests.blocking_recv() {
            pending.push(first);
            while pending.len() < GROUP_APPENDS_MAX {
                match self.requests.try_recv() {
                    Ok(request) => pending.push(request),
                    Err(_) => break,
                }
            }
            if let Err(failed) = self.poison.check() {
                for request in pending.drain(..) {
                    let _ = request.reply.send(Err(failed.clone()));
                }
                continue;
            }
            // sled can panic on a damaged tree; its state is then unknown, as after an I/O
            // error. The requests being applied are dropped: their appenders learn the failure.
            let applied = contained("appending", || Ok(self.apply(&mut pending)));
            let group = match applied {
                Ok(group) => group,
                Err(error) => {
                    warn!(%error, "the storage engine panicked; the store stops");
                    pending.clear();
                    self.poison.set(&error);
                    continue;
                }
            };
            if group.answers.is_empty() {
                continue;
            }
            // Before any acknowledgement of the group, so that `head` never trails a position
            // an appender has been given.
            let last = self.next_position - 1;
            self.head.store(last, Ordering::Release);
            self.counters.groups.fetch_add(1, Ordering::Relaxed);
            match &self.acks {
                Acks::Now(publisher) => {
                    if group.tip.is_some() {
                        *lock(&self.applied_tip) = group.tip.clone();
                    }
                    publisher.finish(group, &Ok(()));
                }
                Acks::AfterSync(syncer) => {
                    if let Err(std_mpsc::SendError(group)) = syncer.send(group) {
                        let stopped = Err(StoreError::Closed);
                        for answer in group.answers {
                            let _ = answer.reply.send(stopped.clone());
                        }
                    }
                }
            }
            #[cfg(test)]
            self.handed_over.store(last, Ordering::Release);
        }
        debug!("journal writer stopped");
    }

    /// Stops the store after an error of the engine itself (I/O, or sled's own), met while
    /// reading what an append needs: the engine's state is as unknown as after a failed apply.
    /// Damage found in the log (`Corrupted`) concerns one stream and stops nothing.
    pub(crate) fn stop_on_engine_failure(&self, error: &StoreError) {
        if matches!(error, StoreError::Io(_) | StoreError::Engine(_)) {
            warn!(%error, "the storage engine failed while reading; the store stops");
            self.poison.set(error);
        }
    }

    /// Where `stream` ends, from the cache or the log.
    pub(crate) fn tip(&mut self, stream: &StreamId) -> Result<Tip, StoreError> {
        if let Some(&tip) = self.tips.get(stream) {
            return Ok(tip);
        }
        stream_tip(&self.log, &self.marks, stream)
    }

    /// Checks and encodes every request in `pending` and applies the accepted ones as one sled
    /// batch. Rejected requests (a conflict, a record too large) are answered here.
    pub(crate) fn apply(&mut self, pending: &mut Vec<AppendRequest>) -> Group {
        let first_position = self.next_position;
        let now = self
            .time_source
            .as_ref()
            .map_or_else(RecordedAt::now, handover_store::TimeSource::now);
        let recorded_at = now.max(self.last_recorded_at);
        let mut batch = sled::Batch::default();
        let mut answers = Vec::with_capacity(pending.len());
        let mut index = IndexChunks::default();
        let mut batch_bytes = 0u64;
        let mut tip = None;
        // Each append's new tail, carried by the index chunk and published to readers.
        let mut tails: Vec<(StreamId, Tip)> = Vec::new();
        // Commands appended in this group, so a retry queued behind its first attempt gets
        // the same answer.
        let mut commands: HashMap<(StreamId, CommandId), Appended> = HashMap::new();
        for request in pending.drain(..) {
            let AppendRequest {
                stream,
                expected,
                command,
                events,
                reply,
            } = request;
            if let Some(command) = command {
                let recorded = match commands.get(&(stream.clone(), command)) {
                    Some(records) => Ok(Some(records.clone())),
                    None => read_command(&self.log, &stream, &command).map(|found| {
                        found.map(|records| records.into_iter().map(Arc::new).collect())
                    }),
                };
                match recorded {
                    // Answered with the group, after its sync: the first attempt's records
                    // may still be waiting for theirs.
                    Ok(Some(records)) => {
                        answers.push(Answer {
                            reply,
                            records,
                            new: false,
                        });
                        continue;
                    }
                    Ok(None) => {}
                    Err(error) => {
                        let _ = reply.send(Err(error.clone()));
                        self.stop_on_engine_failure(&error);
                        continue;
                    }
                }
            }
            let stream_tip = match self.tip(&stream) {
                Ok(tip) => tip,
                Err(error) => {
                    let _ = reply.send(Err(error.clone()));
                    self.stop_on_engine_failure(&error);
                    continue;
                }
            };
            if !expected.admits(stream_tip.version) {
                let _ = reply.send(Ok(Err(expected.conflict(stream_tip.version))));
                continue;
            }
            if events.is_empty() {
                let _ = reply.send(Ok(Ok(Vec::new())));
                continue;
            }
            match self.encode_append(&stream, stream_tip, events, recorded_at) {
                Ok((entries, records, new_tip)) => {
                    let count = records.len();
                    for (i, ((key, value), record)) in entries.into_iter().zip(&records).enumerate()
                    {
                        // The index entry is the record's key without its prefix; the append's
                        // last one carries the stream's new tail.
                        let tail = (i + 1 == count).then_some(&new_tip.hash);
                        index.push(record.position, &key[1..], tail, &mut batch);
                        batch_bytes += (key.len() + value.len()) as u64;
                        batch.insert(key, value);
                    }
                    tails.push((stream.clone(), new_tip));
                    let last = &records[records.len() - 1];
                    if let Some(command) = command {
                        let count = u32::try_from(records.len()).unwrap_or(u32::MAX);
                        batch.insert(
                            command_key(&stream, &command),
                            &encode_command_entry(records[0].seq, count)[..],
                        );
                        commands.insert((stream.clone(), command), records.clone());
                    }
                    tip = Some(AnchorPoint {
                        position: last.position,
                        stream: stream.clone(),
                        seq: last.seq,
                        hash: new_tip.hash,
                    });
                    self.next_position += records.len() as u64;
                    if self.tips.len() >= VERSION_CACHE_MAX {
                        self.tips.clear();
                    }
                    self.tips.insert(stream, new_tip);
                    answers.push(Answer {
                        reply,
                        records,
                        new: true,
                    });
                }
                Err(error) => {
                    let _ = reply.send(Err(error));
                }
            }
        }
        if tip.is_none() {
            // Only retries of recorded commands: nothing to write.
            return Group { answers, tip };
        }
        index.finish(&mut batch);
        // A checkpoint every `CHECKPOINT_GROUPS` groups, or once enough streams wait for one:
        // every tail written since the last becomes an `M` key, in this group's batch.
        let checkpoint = self.groups_since_checkpoint + 1 >= CHECKPOINT_GROUPS
            || self.marks.pending_len() + tails.len() >= CHECKPOINT_STREAMS;
        if checkpoint {
            let mut marks: HashMap<StreamId, Tip> =
                self.marks.pending_tails().into_iter().collect();
            marks.extend(tails.iter().cloned());
            for (stream, tip) in &marks {
                batch.insert(mark_key(stream), &tip.encode()[..]);
            }
            let next = self.checkpoint.next(self.next_position - 1);
            batch.insert(&CHECKPOINT_KEY[..], &encode_checkpoint(next)[..]);
        }
        let room = match &self.space {
            Some(space) => space.check(batch_bytes),
            None => Ok(()),
        };
        let applied = room.and_then(|()| {
            // Readers find the group's tails from the moment they are published, and wait
            // (see `check_tail`) while a tail is ahead of the records being applied.
            let _applying = self.marks.applying();
            self.marks.publish(tails);
            self.log.apply_batch(batch).or_store()?;
            if checkpoint {
                self.marks.clear();
            }
            Ok(())
        });
        if let Err(error) = applied {
            // sled may have applied part of the batch in memory: nothing read from it can be
            // trusted any more, so the store stops (a reopen reads what is on disk). Short of
            // space, nothing was written, and the store stops all the same, before sled runs
            // out in the middle of a write.
            warn!(%error, appends = answers.len(), "applying a group failed; the store stops");
            self.next_position = first_position;
            for answer in answers.iter().filter(|answer| answer.new) {
                self.tips.remove(&answer.records[0].stream);
            }
            // Stopped before anything else can read the engine; the appends the failure met
            // get its own error, everything after them the stopped store's.
            self.poison.mark(&error);
            for answer in answers {
                let _ = answer.reply.send(Err(error.clone()));
            }
            self.poison.wake();
            return Group {
                answers: Vec::new(),
                tip: None,
            };
        }
        self.last_recorded_at = recorded_at;
        self.groups_since_checkpoint = if checkpoint {
            self.checkpoint = self.checkpoint.next(self.next_position - 1);
            0
        } else {
            self.groups_since_checkpoint + 1
        };
        Group { answers, tip }
    }

    /// The records of one append, numbered after the stream's `tip` and chained to it, their
    /// encoded key/value pairs, and the stream's new tip.
    pub(crate) fn encode_append(
        &self,
        stream: &StreamId,
        tip: Tip,
        events: Vec<EncodedEvent>,
        recorded_at: RecordedAt,
    ) -> Result<(Vec<KeyValue>, Appended, Tip), StoreError> {
        let mut entries = Vec::with_capacity(events.len());
        let mut records = Vec::with_capacity(events.len());
        let mut previous = tip.hash;
        // Each event was encoded on its appender's thread; only the record's header fields,
        // its checksum and its hash are computed here, on the log's single writer. The events
        // move into their records: a message's text is never copied on the way.
        for (i, event) in (0u64..).zip(events) {
            let position = self.next_position + i;
            let seq = tip.version + 1 + i;
            let bytes =
                encode_record_with_event(position, stream, seq, recorded_at, &event, &previous)?;
            let record = RecordedEvent {
                position,
                stream: stream.clone(),
                seq,
                recorded_at,
                event: event.into_event(),
            };
            previous = RecordHash::of(&bytes);
            entries.push((event_key(stream, record.seq), bytes));
            records.push(Arc::new(record));
        }
        let tip = Tip {
            version: tip.version + records.len() as u64,
            hash: previous,
        };
        Ok((entries, records, tip))
    }
}
