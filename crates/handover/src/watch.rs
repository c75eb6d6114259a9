//! Watching a conversation live: its history from any point, then each new event, none missed
//! and none repeated at the seam, as a [`Stream`].

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;
use handover_core::{ConversationId, StreamId};
use handover_store::{RecordedEvent, SeqRange};
use tokio::sync::mpsc;

use crate::conversation_actor::WATCHER_BACKLOG_EVENTS_MAX;
use crate::error::Error;
use crate::messages::AddWatcher;
use crate::runtime::Runtime;

/// A live view of one conversation's events, as a [`Stream`] of
/// `Result<Arc<RecordedEvent>, Error>`.
///
/// Obtained from [`crate::Handover::watch`] (from the first event) or
/// [`crate::Handover::watch_from`] (after a given seq). It yields the history, then each new
/// event as soon as it is durable, each once and in seq order. A watcher that falls behind the
/// live events (more than a few thousand unread) is not dropped: it reads what it missed from
/// the log and carries on from its last seq. The stream ends when the runtime stops.
///
/// ```no_run
/// # async fn demo(handover: handover::Handover, id: handover::ConversationId) -> Result<(), handover::Error> {
/// use handover::StreamExt as _;
///
/// let mut watch = handover.watch(id).await?;
/// while let Some(record) = watch.next().await {
///     let record = record?;
///     println!("{} {}", record.seq, record.event.type_name());
/// }
/// # Ok(()) }
/// ```
pub struct Watch {
    conversation_id: ConversationId,
    runtime: Arc<Runtime>,
    /// The seq of the last event yielded (or the point the watch started after).
    last_seq: u64,
    state: State,
}

enum State {
    Following(Following),
    /// Registering again after the live channel was closed; resolves to the events to catch
    /// up on and the new channel.
    Resuming(Pin<Box<dyn Future<Output = Result<Following, Error>> + Send>>),
    Ended,
}

struct Following {
    history: VecDeque<Arc<RecordedEvent>>,
    live: mpsc::Receiver<Arc<RecordedEvent>>,
    lagged: Arc<AtomicBool>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("conversation_id", &self.conversation_id)
            .field("last_seq", &self.last_seq)
            .finish_non_exhaustive()
    }
}

/// Registers a watcher with the conversation's actor and reads the log from `after_seq` up to
/// the version the actor gave: events after it reach the new channel. On a log other nodes
/// write too, follows the store's feed instead, which holds every node's commits.
async fn follow(
    runtime: Arc<Runtime>,
    conversation_id: ConversationId,
    after_seq: u64,
) -> Result<Following, Error> {
    if runtime.conversations.store.is_shared() {
        return follow_feed(runtime, conversation_id, after_seq).await;
    }
    let (sender, live) = mpsc::channel(WATCHER_BACKLOG_EVENTS_MAX);
    let lagged = Arc::new(AtomicBool::new(false));
    let version = runtime
        .ask(conversation_id, || AddWatcher {
            sender: sender.clone(),
            lagged: Arc::clone(&lagged),
        })
        .await??;
    let history = if version > after_seq {
        let range = SeqRange {
            from: after_seq + 1,
            to: version,
            max: usize::MAX,
        };
        let stream = StreamId::Conversation(conversation_id);
        runtime
            .conversations
            .store
            .read_stream(&stream, range)
            .await?
            .into_iter()
            .map(Arc::new)
            .collect()
    } else {
        VecDeque::new()
    };
    Ok(Following {
        history,
        live,
        lagged,
    })
}

/// Reads the stream's events after `after_seq` from the log.
async fn read_after(
    runtime: &Runtime,
    stream: &StreamId,
    after_seq: u64,
) -> Result<Vec<Arc<RecordedEvent>>, Error> {
    let range = SeqRange {
        from: after_seq + 1,
        to: u64::MAX,
        max: usize::MAX,
    };
    Ok(runtime
        .conversations
        .store
        .read_stream(stream, range)
        .await?
        .into_iter()
        .map(Arc::new)
        .collect())
}

/// Follows the conversation in the store's feed (every node's commits, in position order),
/// whichever node decides for it, even as that changes: subscribed before the log is read, so
/// nothing committed in between is missed; by seq, so nothing is repeated; a gap or a lag is
/// read from the log.
async fn follow_feed(
    runtime: Arc<Runtime>,
    conversation_id: ConversationId,
    after_seq: u64,
) -> Result<Following, Error> {
    if runtime.is_stopping() {
        return Err(Error::Stopped);
    }
    let stream = StreamId::Conversation(conversation_id);
    let mut feed = runtime.conversations.store.subscribe();
    // From the last event seen, so that a conversation that does not exist is told apart.
    let known = read_after(&runtime, &stream, after_seq.saturating_sub(1)).await?;
    if known.is_empty() {
        return Err(Error::UnknownConversation(conversation_id));
    }
    let history: VecDeque<_> = known
        .into_iter()
        .filter(|record| record.seq > after_seq)
        .collect();
    let mut last = history.back().map_or(after_seq, |record| record.seq);
    let (sender, live) = mpsc::channel(WATCHER_BACKLOG_EVENTS_MAX);
    let lagged = Arc::new(AtomicBool::new(false));
    let following = Arc::clone(&runtime);
    runtime.ai_runtime.spawn(async move {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            let received = tokio::select! {
                received = feed.recv() => received,
                // The watch was dropped.
                () = sender.closed() => return,
            };
            let missed = match received {
                Ok(record) if record.stream != stream || record.seq <= last => continue,
                Ok(record) if record.seq == last + 1 => vec![record],
                // A gap (the feed lagged, or started after a commit): read it from the log.
                Ok(_) | Err(RecvError::Lagged(_)) => {
                    match read_after(&following, &stream, last).await {
                        Ok(records) => records,
                        // The watch resumes from the log by itself.
                        Err(_) => return,
                    }
                }
                Err(RecvError::Closed) => return,
            };
            for record in missed {
                last = record.seq;
                if sender.send(record).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(Following {
        history,
        live,
        lagged,
    })
}

impl Watch {
    pub(crate) async fn start(
        runtime: Arc<Runtime>,
        conversation_id: ConversationId,
        after_seq: u64,
    ) -> Result<Watch, Error> {
        let following = follow(Arc::clone(&runtime), conversation_id, after_seq).await?;
        Ok(Watch {
            conversation_id,
            runtime,
            last_seq: after_seq,
            state: State::Following(following),
        })
    }

    /// The conversation watched.
    pub fn conversation_id(&self) -> ConversationId {
        self.conversation_id
    }

    /// The seq of the last event this watch yielded (or the seq it started after): where a
    /// new [`crate::Handover::watch_from`] would carry on.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }
}

impl Stream for Watch {
    type Item = Result<Arc<RecordedEvent>, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Ended => return Poll::Ready(None),
                State::Resuming(resuming) => match resuming.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Ok(following)) => this.state = State::Following(following),
                    // The runtime stopped: the stream ends.
                    Poll::Ready(Err(Error::Stopped)) => this.state = State::Ended,
                    Poll::Ready(Err(error)) => {
                        this.state = State::Ended;
                        return Poll::Ready(Some(Err(error)));
                    }
                },
                State::Following(following) => {
                    let next = match following.history.pop_front() {
                        Some(record) => Some(record),
                        None => match following.live.poll_recv(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(next) => next,
                        },
                    };
                    match next {
                        // Already yielded before a resume.
                        Some(record) if record.seq <= this.last_seq => continue,
                        Some(record) => {
                            this.last_seq = record.seq;
                            return Poll::Ready(Some(Ok(record)));
                        }
                        None => {
                            // The actor dropped this watcher: it fell behind, or the actor
                            // stopped (a failure, or the runtime's end). Carry on from the
                            // last seq; a stopped runtime ends the stream.
                            tracing::debug!(
                                conversation_id = %this.conversation_id,
                                fell_behind = following.lagged.load(Ordering::Acquire),
                                last_seq = this.last_seq,
                                "watcher carries on from the log"
                            );
                            let runtime = Arc::clone(&this.runtime);
                            this.state = State::Resuming(Box::pin(follow(
                                runtime,
                                this.conversation_id,
                                this.last_seq,
                            )));
                        }
                    }
                }
            }
        }
    }
}
