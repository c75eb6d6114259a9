//! Watching a conversation live: its history first, then each new event, none missed and none
//! repeated at the seam.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use handover_core::ConversationId;
use handover_store::RecordedEvent;
use tokio::sync::mpsc;

use crate::Error;

/// A live view of one conversation's events, from its first.
///
/// Obtained from [`crate::Handover::watch`]. [`next`](Watch::next) yields the history, then
/// waits for each new event as soon as it is durable. A watcher that leaves more than a few
/// thousand live events unread is dropped with [`Error::WatchLagged`]; watch again to resume.
#[derive(Debug)]
pub struct Watch {
    pub(crate) conversation_id: ConversationId,
    pub(crate) history: VecDeque<Arc<RecordedEvent>>,
    pub(crate) live: mpsc::Receiver<Arc<RecordedEvent>>,
    pub(crate) lagged: Arc<AtomicBool>,
}

impl Watch {
    /// The conversation watched.
    pub fn conversation_id(&self) -> ConversationId {
        self.conversation_id
    }

    /// The next event: `Ok(None)` once the runtime has stopped.
    pub async fn next(&mut self) -> Result<Option<Arc<RecordedEvent>>, Error> {
        if let Some(record) = self.history.pop_front() {
            return Ok(Some(record));
        }
        match self.live.recv().await {
            Some(record) => Ok(Some(record)),
            None if self.lagged.load(Ordering::Acquire) => Err(Error::WatchLagged),
            None => Ok(None),
        }
    }

    /// The next event if one is ready now, without waiting.
    pub fn try_next(&mut self) -> Result<Option<Arc<RecordedEvent>>, Error> {
        if let Some(record) = self.history.pop_front() {
            return Ok(Some(record));
        }
        match self.live.try_recv() {
            Ok(record) => Ok(Some(record)),
            Err(mpsc::error::TryRecvError::Disconnected) if self.lagged.load(Ordering::Acquire) => {
                Err(Error::WatchLagged)
            }
            Err(_) => Ok(None),
        }
    }
}
