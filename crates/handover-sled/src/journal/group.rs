//! What travels through the journal: an append request, the answers the writer prepares for a
//! group, and the publisher that acknowledges them and hands their events to subscribers.

use std::sync::{mpsc as std_mpsc, Arc};

use handover_core::{CommandId, StreamId};
use handover_store::{
    Appended, Conflict, EncodedEvent, ExpectedVersion, RecordedEvent, StoreError,
};
use tokio::sync::{broadcast, oneshot};

use super::stats::Counters;
use crate::anchor::AnchorPoint;

/// The result an appender waits for.
pub(crate) type AppendResult = Result<Result<Appended, Conflict>, StoreError>;

/// One append on its way to the log.
pub(crate) struct AppendRequest {
    pub(crate) stream: StreamId,
    pub(crate) expected: ExpectedVersion,
    /// Set for an append that must happen once: a retry is answered with what the first
    /// attempt recorded. With no events, the request only asks what the command recorded.
    pub(crate) command: Option<CommandId>,
    /// Encoded on the appender's thread (see `SledStore::append`).
    pub(crate) events: Vec<EncodedEvent>,
    pub(crate) reply: oneshot::Sender<AppendResult>,
}

/// An append the writer has answered for, waiting for its group's sync.
pub(crate) struct Answer {
    pub(crate) reply: oneshot::Sender<AppendResult>,
    pub(crate) records: Appended,
    /// False for a retry answered with what its command recorded before: subscribers saw
    /// those events already.
    pub(crate) new: bool,
}

/// Appends applied in one sled batch, waiting for their sync.
pub(crate) struct Group {
    pub(crate) answers: Vec<Answer>,
    /// The group's last record, which the anchor names once the group is durable.
    pub(crate) tip: Option<AnchorPoint>,
}

pub(crate) enum Acks {
    /// `Buffered`: acknowledge as soon as the group is applied.
    Now(Publisher),
    /// Hand the group to the syncer.
    AfterSync(std_mpsc::SyncSender<Group>),
}

/// Acknowledges appends and hands their events to subscribers, in position order (groups reach
/// it in the order they were applied).
pub(crate) struct Publisher {
    pub(crate) live: broadcast::Sender<Arc<RecordedEvent>>,
    pub(crate) counters: Arc<Counters>,
}

impl Publisher {
    pub(crate) fn finish(&self, group: Group, outcome: &Result<(), StoreError>) {
        for Answer {
            reply,
            records,
            new,
        } in group.answers
        {
            // Subscribers get only durable events. After a failed sync the store stops
            // (`Poison`), so nothing published later can leave a gap behind these.
            let answer = match outcome {
                Ok(()) => {
                    if new {
                        for record in &records {
                            // No receiver is not an error: nobody is watching.
                            let _ = self.live.send(Arc::clone(record));
                        }
                    }
                    self.counters.acknowledged(records.len());
                    Ok(Ok(records))
                }
                Err(error) => Err(error.clone()),
            };
            // The appender may have given up waiting; the outcome is in the log either way.
            let _ = reply.send(answer);
        }
    }
}
