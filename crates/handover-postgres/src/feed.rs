//! The live feed: every committed event once, in position order, whichever node wrote it.
//!
//! Events this store commits are published at once when they follow the last one published;
//! anything else (another node's commits, or a gap before ours) is read from the table. A
//! `NOTIFY` from another node wakes the reader early, but the reader also polls on a timer:
//! notifications are lost while the listening connection is down, so they are a hint, never
//! the feed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use handover_store::{RecordedEvent, StoreError};
use tokio::sync::{broadcast, mpsc, Notify};
use tokio_postgres::AsyncMessage;
use uuid::Uuid;

use crate::error::pool as pool_error;
use crate::read;
use crate::Connector;

/// Most events one catch-up read fetches.
const PAGE: usize = 1024;

/// How long the listener waits before reconnecting after its connection ended.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);

/// The channel of the `NOTIFY` a group commit sends; its payload is `<store id>:<head>`.
pub(crate) const CHANNEL: &str = "handover_log";

pub(crate) struct Feed {
    /// The last position published.
    last: Mutex<u64>,
    sender: broadcast::Sender<Arc<RecordedEvent>>,
    /// The highest position this store knows committed.
    head: AtomicU64,
    /// Asks the reader to look at the table now.
    wake: Notify,
}

impl Feed {
    pub(crate) fn new(head: u64, capacity: usize) -> Feed {
        Feed {
            last: Mutex::new(head),
            sender: broadcast::channel(capacity.max(1)).0,
            head: AtomicU64::new(head),
            wake: Notify::new(),
        }
    }

    pub(crate) fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<RecordedEvent>> {
        self.sender.subscribe()
    }

    /// Publishes records this store just committed, in position order.
    pub(crate) fn publish(&self, records: &[Arc<RecordedEvent>]) {
        let Some(newest) = records.last() else {
            return;
        };
        self.head.fetch_max(newest.position, Ordering::AcqRel);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let published = *last;
        let mut fresh = records
            .iter()
            .skip_while(|r| r.position <= published)
            .peekable();
        match fresh.peek() {
            None => {}
            Some(first) if first.position == *last + 1 => {
                for record in fresh {
                    // No receiver is not an error: nobody is watching.
                    let _ = self.sender.send(Arc::clone(record));
                    *last = record.position;
                }
            }
            // Another node committed in between: the reader fetches it all in order.
            Some(_) => self.wake.notify_one(),
        }
    }

    /// Reads and publishes whatever was committed after the last position published.
    async fn catch_up(&self, pool: &deadpool_postgres::Pool) -> Result<(), StoreError> {
        let client = pool.get().await.map_err(pool_error)?;
        loop {
            let from = *self.last.lock().unwrap_or_else(|e| e.into_inner()) + 1;
            let c: &tokio_postgres::Client = &client;
            let page = read::read_all(c, from, PAGE).await?;
            let Some(newest) = page.last() else {
                return Ok(());
            };
            self.head.fetch_max(newest.position, Ordering::AcqRel);
            let full = page.len() == PAGE;
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            for record in page {
                if record.position == *last + 1 {
                    *last = record.position;
                    let _ = self.sender.send(Arc::new(record));
                }
            }
            drop(last);
            if !full {
                return Ok(());
            }
        }
    }

    /// The reader: woken by this store's journal, by another node's `NOTIFY`, or by the timer.
    pub(crate) async fn run(self: Arc<Feed>, pool: deadpool_postgres::Pool, poll: Duration) {
        let mut failing = false;
        loop {
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
            match self.catch_up(&pool).await {
                Ok(()) if failing => {
                    failing = false;
                    tracing::info!("the live feed reads the log again");
                }
                Ok(()) => {}
                // Once per outage, not once per poll.
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "the live feed cannot read the log; retrying");
                }
                Err(error) => tracing::debug!(%error, "the live feed still cannot read the log"),
            }
        }
    }

    /// Listens for other nodes' commits on a connection of its own (never a pooled one: a
    /// pooled connection is shared, and `LISTEN` belongs to a session), reconnecting when it
    /// drops, and waking the reader after every reconnect for what it missed meanwhile.
    pub(crate) async fn listen(self: Arc<Feed>, connector: Connector, instance: Uuid) {
        let own = format!("{instance}:");
        loop {
            match connector.connect_listening().await {
                Ok((client, mut notifications)) => {
                    match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                        Ok(()) => {
                            self.wake.notify_one();
                            while let Some((_, payload)) = notifications.recv().await {
                                if !payload.starts_with(&own) {
                                    self.wake.notify_one();
                                }
                            }
                        }
                        Err(error) => tracing::warn!(%error, "LISTEN failed"),
                    }
                }
                Err(error) => tracing::debug!(%error, "the feed's listener cannot connect"),
            }
            tokio::time::sleep(RELISTEN_AFTER).await;
        }
    }
}

/// Drives a listening connection, handing each notification's channel and payload on.
pub(crate) fn forward_notifications<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
) -> mpsc::UnboundedReceiver<(String, String)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(notification)) => {
                    let message = (
                        notification.channel().to_owned(),
                        notification.payload().to_owned(),
                    );
                    if tx.send(message).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, "a listening connection ended");
                    return;
                }
            }
        }
    });
    rx
}
