//! Calls forwarded to the process that holds a shard's lease, through the database alone.
//!
//! A caller inserts a row into `handover_calls` and `NOTIFY handover_calls, '<shard>'`; the
//! shard's owner takes it (`FOR UPDATE SKIP LOCKED`), hands it to its application, writes the
//! answer and `NOTIFY handover_answers, '<id>'`; the caller reads the answer and deletes the
//! row in one statement. Notifications are only wake-ups: both sides poll regardless, since
//! they are lost while a listening connection is down.
//!
//! Who may take a call is judged by the database, as the fence is: the process named owner of
//! the call's shard in `handover_leases`, with an unexpired lease. A call taken by any other
//! process (one that died, or lost the shard, while running it) is taken again by the owner,
//! and the former taker's answer, if it ever comes, is not written. So a call may run more than
//! once: the calls carry command ids, so a re-run is recorded once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use handover_core::placement::SHARDS;
use handover_store::StoreError;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use uuid::Uuid;

use crate::cluster::Owned;
use crate::error::{engine, pool as pool_error};
use crate::{Connector, PostgresStore};

/// The channel a new call is announced on; its payload is the call's shard.
const CALLS: &str = "handover_calls";

/// The channel an answer is announced on; its payload is the call's id.
const ANSWERS: &str = "handover_answers";

/// Most calls one take claims (fewer when the receiver has less room).
const TAKE_MAX: usize = 64;

/// Calls handed to the receiver of [`PostgresStore::serve_calls`] and not yet received.
const QUEUE: usize = 256;

/// How often the serving task deletes what callers left behind.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// How long the listener waits before reconnecting after its connection ended.
const RELISTEN_AFTER: Duration = Duration::from_secs(1);

/// How many times writing an answer (or a release) is tried before it is left to the caller's
/// timeout, and how long apart.
const SETTLE_ATTEMPTS: u32 = 10;
const SETTLE_RETRY: Duration = Duration::from_millis(500);

/// Inserts a call and announces it, in one statement (the notification is sent at commit, so a
/// woken owner finds the row).
const INSERT: &str = "WITH c AS (
         INSERT INTO handover_calls (id, shard, call) VALUES ($1, $2, $3) RETURNING shard)
     SELECT pg_notify('handover_calls', shard::text) FROM c";

/// Collects the answers of the calls waiting here, deleting their rows.
const COLLECT: &str = "DELETE FROM handover_calls
     WHERE id = ANY($1) AND answer IS NOT NULL RETURNING id, answer";

/// Withdraws a call whose caller stopped waiting: never run if nobody took it yet.
const WITHDRAW: &str = "DELETE FROM handover_calls WHERE id = $1 RETURNING answer";

/// Takes the oldest unanswered calls of the shards this process holds by the database's word,
/// except those it runs already: untaken ones, and those of a taker that is not the lease
/// holder (it died or lost the shard).
const TAKE: &str = "UPDATE handover_calls SET taken_by = $1
     WHERE id IN (
         SELECT c.id FROM handover_calls c
         JOIN handover_leases l ON l.shard = c.shard
         WHERE c.answer IS NULL AND c.shard = ANY($2::int[])
           AND l.owner = $1 AND l.expires_at > now()
           AND c.taken_by IS DISTINCT FROM l.owner
         ORDER BY c.created_at
         LIMIT $3
         FOR UPDATE OF c SKIP LOCKED)
     RETURNING id, shard, call";

/// Writes an answer, unless another process took the call over meanwhile, and announces it.
const ANSWER: &str = "WITH a AS (
         UPDATE handover_calls SET answer = $3, answered_at = now()
         WHERE id = $1 AND taken_by = $2 AND answer IS NULL RETURNING id)
     SELECT pg_notify('handover_answers', id::text) FROM a";

/// Gives a call back for another try, and announces it again.
const RELEASE: &str = "WITH r AS (
         UPDATE handover_calls SET taken_by = NULL
         WHERE id = $1 AND taken_by = $2 AND answer IS NULL RETURNING shard)
     SELECT pg_notify('handover_calls', shard::text) FROM r";

/// Deletes answers nobody collected. A caller still waiting collects its answer within a poll,
/// so one kept a minute belongs to a caller that is gone.
const SWEEP: &str = "DELETE FROM handover_calls WHERE answered_at < now() - interval '1 minute'";

/// A call forwarded to this process because it holds the lease of the call's shard, from
/// [`PostgresStore::serve_calls`]. Run it and [`answer`](IncomingCall::answer) it; dropped
/// unanswered, it is given back and handed out again.
///
/// ```no_run
/// # async fn serve(store: handover_postgres::PostgresStore) {
/// let mut calls = store.serve_calls().expect("a node store, served once");
/// while let Some(call) = calls.recv().await {
///     let answer = call.call.clone(); // run it; here, an echo
///     call.answer(answer);
/// }
/// # }
/// ```
pub struct IncomingCall {
    /// The call's id, the same on every try.
    pub id: Uuid,
    /// The shard it was sent to.
    pub shard: u16,
    /// What the caller sent, as it sent it.
    pub call: Vec<u8>,
    reply: oneshot::Sender<Vec<u8>>,
}

impl IncomingCall {
    /// Answers the call: the answer is written and the caller woken. Not written if the process
    /// no longer holds the call's shard and its new owner took the call over (the caller gets
    /// that owner's answer), or if the caller stopped waiting.
    pub fn answer(self, answer: Vec<u8>) {
        // A closed store has nobody to write it; the call is taken over once its lease expires.
        let _ = self.reply.send(answer);
    }
}

impl std::fmt::Debug for IncomingCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingCall")
            .field("id", &self.id)
            .field("shard", &self.shard)
            .field("call", &self.call.len())
            .finish_non_exhaustive()
    }
}

/// The store's side of forwarding: the calls it waits for, and the tasks that wake it.
pub(crate) struct Calls {
    connector: Connector,
    pool: deadpool_postgres::Pool,
    poll: Duration,
    node: Option<(Uuid, watch::Receiver<Owned>)>,
    /// Calls forwarded from here, waiting for their answers.
    waiting: Mutex<HashMap<Uuid, oneshot::Sender<Vec<u8>>>>,
    /// An answer to a call waiting here may be ready.
    answered: Notify,
    /// A call this process may take may be ready.
    called: Notify,
    /// The listener and the answer collector, started on first use: a store that never
    /// forwards nor serves keeps no connection for them.
    started: Once,
    serving: AtomicBool,
}

impl Calls {
    pub(crate) fn new(
        connector: Connector,
        pool: deadpool_postgres::Pool,
        poll: Duration,
        node: Option<(Uuid, watch::Receiver<Owned>)>,
    ) -> Calls {
        Calls {
            connector,
            pool,
            poll,
            node,
            waiting: Mutex::new(HashMap::new()),
            answered: Notify::new(),
            called: Notify::new(),
            started: Once::new(),
            serving: AtomicBool::new(false),
        }
    }

    fn start(self: &Arc<Calls>, handle: &Handle) {
        self.started.call_once(|| {
            handle.spawn(Arc::clone(self).listen());
            handle.spawn(Arc::clone(self).collect());
        });
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, oneshot::Sender<Vec<u8>>>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn holds(&self, shard: u16) -> bool {
        self.node
            .as_ref()
            .is_some_and(|(_, owned)| owned.borrow().contains_key(&shard))
    }

    /// Listens on a connection of its own (`LISTEN` belongs to a session, so never a pooled
    /// one), reconnecting when it drops and waking both sides after every reconnect for what
    /// was announced meanwhile.
    async fn listen(self: Arc<Calls>) {
        loop {
            match self.connector.connect_listening().await {
                Ok((client, mut notifications)) => {
                    match client
                        .batch_execute(&format!("LISTEN {CALLS}; LISTEN {ANSWERS}"))
                        .await
                    {
                        Ok(()) => {
                            self.answered.notify_one();
                            self.called.notify_one();
                            while let Some((channel, payload)) = notifications.recv().await {
                                // Every process hears every call and answer: wake only for ours.
                                if channel == ANSWERS {
                                    if payload
                                        .parse::<Uuid>()
                                        .is_ok_and(|id| self.waiting().contains_key(&id))
                                    {
                                        self.answered.notify_one();
                                    }
                                } else if payload.parse::<u16>().is_ok_and(|s| self.holds(s)) {
                                    self.called.notify_one();
                                }
                            }
                        }
                        Err(error) => tracing::warn!(%error, "LISTEN for forwarded calls failed"),
                    }
                }
                Err(error) => tracing::debug!(%error, "the calls' listener cannot connect"),
            }
            tokio::time::sleep(RELISTEN_AFTER).await;
        }
    }

    /// Collects answers for every call waiting here in one statement per wake-up, however many
    /// wait: woken by an answer's notification or by the timer.
    async fn collect(self: Arc<Calls>) {
        let mut failing = false;
        loop {
            tokio::select! {
                () = self.answered.notified() => {}
                () = tokio::time::sleep(self.poll) => {}
            }
            let ids: Vec<Uuid> = self.waiting().keys().copied().collect();
            if ids.is_empty() {
                continue;
            }
            let collected = async {
                let client = self.pool.get().await.map_err(pool_error)?;
                client.query(COLLECT, &[&ids]).await.map_err(engine)
            }
            .await;
            match collected {
                Ok(rows) => {
                    if failing {
                        failing = false;
                        tracing::info!("forwarded calls' answers are read again");
                    }
                    for row in rows {
                        let id: Uuid = row.get(0);
                        if let Some(waiter) = self.waiting().remove(&id) {
                            let _ = waiter.send(row.get(1));
                        }
                    }
                }
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(%error, "cannot read forwarded calls' answers; retrying");
                }
                Err(error) => tracing::debug!(%error, "still cannot read forwarded calls' answers"),
            }
        }
    }

    async fn forward(
        &self,
        shard: u16,
        call: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, StoreError> {
        let id = Uuid::now_v7();
        let (waiter, mut answer) = oneshot::channel();
        // Waiting before the call exists, so no answer can come before anyone looks for it.
        self.waiting().insert(id, waiter);
        let sent = async {
            let client = self.pool.get().await.map_err(pool_error)?;
            client
                .execute(INSERT, &[&id, &i32::from(shard), &call])
                .await
                .map_err(engine)
        }
        .await;
        if let Err(error) = sent {
            self.waiting().remove(&id);
            return Err(error);
        }
        match tokio::time::timeout(timeout, &mut answer).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(_)) => return Err(StoreError::Closed),
            Err(_) => {}
        }
        self.waiting().remove(&id);
        // Collected between the timer and the line above.
        if let Ok(answer) = answer.try_recv() {
            return Ok(answer);
        }
        let client = self.pool.get().await.map_err(pool_error)?;
        let withdrawn = client.query_opt(WITHDRAW, &[&id]).await.map_err(engine)?;
        // Answered at the last moment: the answer is as good as any.
        if let Some(answer) = withdrawn.and_then(|row| row.get::<_, Option<Vec<u8>>>(0)) {
            return Ok(answer);
        }
        Err(StoreError::Engine(format!(
            "forwarded call {id} to shard {shard} had no answer within {timeout:?}, and was \
             withdrawn: it may have run, or be running, on the shard's owner (is a process \
             serving calls holding the shard?); retrying it with the same command id is \
             recorded once"
        )))
    }

    /// Takes the calls of this process's shards and hands them to `calls`, until the receiver
    /// is dropped; deletes the answers nobody collected once a minute.
    async fn serve(
        self: Arc<Calls>,
        node: Uuid,
        mut owned: watch::Receiver<Owned>,
        calls: mpsc::Sender<IncomingCall>,
    ) {
        let mut swept: Option<Instant> = None;
        let mut failing = false;
        let mut leases = true;
        loop {
            let room = calls.capacity().min(TAKE_MAX);
            let shards: Vec<i32> = owned.borrow().keys().map(|&s| i32::from(s)).collect();
            let mut more = false;
            if room > 0 && !shards.is_empty() {
                match self.take(node, &shards, room).await {
                    Ok(taken) => {
                        if failing {
                            failing = false;
                            tracing::info!("forwarded calls are taken again");
                        }
                        more = taken.len() == room;
                        for call in taken {
                            // Dropped with the receiver gone: its settling gives it back.
                            if calls.send(call).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(error) if !failing => {
                        failing = true;
                        tracing::warn!(%error, "cannot take forwarded calls; retrying");
                    }
                    Err(error) => tracing::debug!(%error, "still cannot take forwarded calls"),
                }
            }
            if swept.is_none_or(|at| at.elapsed() >= SWEEP_EVERY) {
                swept = Some(Instant::now());
                if let Err(error) = self.sweep().await {
                    tracing::debug!(%error, "cannot delete uncollected answers");
                }
            }
            if more {
                continue;
            }
            tokio::select! {
                () = self.called.notified() => {}
                // A shard gained: calls that waited for its owner may be there.
                changed = owned.changed(), if leases => leases = changed.is_ok(),
                () = tokio::time::sleep(self.poll) => {}
                () = calls.closed() => return,
            }
        }
    }

    async fn take(
        self: &Arc<Calls>,
        node: Uuid,
        shards: &[i32],
        room: usize,
    ) -> Result<Vec<IncomingCall>, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let rows = client
            .query(TAKE, &[&node, &shards, &(room as i64)])
            .await
            .map_err(engine)?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let (reply, answer) = oneshot::channel();
                let call = IncomingCall {
                    id: row.get(0),
                    shard: row.get::<_, i32>(1) as u16,
                    call: row.get(2),
                    reply,
                };
                tokio::spawn(Arc::clone(self).settle(node, call.id, answer));
                call
            })
            .collect())
    }

    /// Writes a taken call's answer, or gives the call back when it was dropped unanswered.
    async fn settle(self: Arc<Calls>, node: Uuid, id: Uuid, answer: oneshot::Receiver<Vec<u8>>) {
        let answer = answer.await.ok();
        for attempt in 1..=SETTLE_ATTEMPTS {
            let written = async {
                let client = self.pool.get().await.map_err(pool_error)?;
                match &answer {
                    Some(answer) => client.execute(ANSWER, &[&id, &node, answer]).await,
                    None => client.execute(RELEASE, &[&id, &node]).await,
                }
                .map_err(engine)
            }
            .await;
            match written {
                Ok(_) => return,
                Err(error) if attempt == SETTLE_ATTEMPTS => {
                    // The caller times out and withdraws it, or the next owner takes it over.
                    tracing::warn!(%error, %id, "cannot settle a forwarded call; left to its caller");
                }
                Err(error) => {
                    tracing::debug!(%error, %id, "cannot settle a forwarded call yet");
                    tokio::time::sleep(SETTLE_RETRY).await;
                }
            }
        }
    }

    async fn sweep(&self) -> Result<u64, StoreError> {
        let client = self.pool.get().await.map_err(pool_error)?;
        client.execute(SWEEP, &[]).await.map_err(engine)
    }
}

impl PostgresStore {
    /// Sends `call` to the process that holds the lease of `shard` and waits up to `timeout`
    /// for its answer: the call is written to the database (`handover_calls`), the owner's
    /// [`serve_calls`](PostgresStore::serve_calls) hands it to its application, and the answer
    /// comes back the same way. Neither side needs to know where the other is; a caller may be
    /// any store on the database, in a cluster or not.
    ///
    /// The owner is the database's lease holder at the time: if it dies or loses the shard while
    /// running the call, the new owner runs it again. Put a command id in `call` and record it
    /// once (`append_once`), so a call run twice is recorded once.
    ///
    /// Fails with [`StoreError::Engine`] when the database cannot be reached, when `shard` is
    /// not a shard, and when no answer came within `timeout`. Then the call is withdrawn (never
    /// run if nobody had taken it yet), but it may have run, or still be running, on the owner:
    /// retry with the same command id and it is recorded once.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # async fn run(store: handover_postgres::PostgresStore) -> Result<(), Box<dyn std::error::Error>> {
    /// use handover_core::placement::shard_of;
    /// use handover_core::TenantId;
    ///
    /// let tenant = TenantId::new("acme")?;
    /// if !store.owns(&tenant) {
    ///     let answer = store
    ///         .forward(shard_of(&tenant), b"a serialized command".to_vec(), Duration::from_secs(10))
    ///         .await?;
    /// #   let _ = answer;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn forward(
        &self,
        shard: u16,
        call: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, StoreError> {
        if shard >= SHARDS {
            return Err(StoreError::Engine(format!(
                "cannot forward a call to shard {shard}: shards are 0 to {}",
                SHARDS - 1
            )));
        }
        let calls = Arc::clone(&self.inner.calls);
        calls.start(&self.inner.handle);
        // On the store's runtime, so its timer and connections work whoever calls, and an
        // abandoned call is still withdrawn at its timeout.
        self.inner
            .handle
            .spawn(async move { calls.forward(shard, call, timeout).await })
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Serves the calls [`forward`](PostgresStore::forward)ed to the shards this process holds:
    /// a task takes them from the database (woken by `NOTIFY handover_calls`, polling every
    /// [`poll_interval`](crate::PostgresOptions::poll_interval) regardless) and hands each to
    /// the receiver as an [`IncomingCall`]. As shards come and go with the leases, so do their
    /// calls, including those a former owner took and never answered.
    ///
    /// `None` outside a cluster ([`PostgresOptions::node`](crate::PostgresOptions::node)) and
    /// when called before: one receiver per store. Dropping the receiver stops the serving;
    /// calls it held are given back. While a process holds shards and does not serve, their
    /// calls wait, and their callers time out.
    ///
    /// ```no_run
    /// # async fn run(store: handover_postgres::PostgresStore) {
    /// let mut calls = store.serve_calls().expect("a node store, served once");
    /// tokio::spawn(async move {
    ///     while let Some(call) = calls.recv().await {
    ///         let answer = [b"done: ".as_slice(), &call.call].concat();
    ///         call.answer(answer);
    ///     }
    /// });
    /// # }
    /// ```
    pub fn serve_calls(&self) -> Option<mpsc::Receiver<IncomingCall>> {
        let calls = &self.inner.calls;
        let (node, owned) = calls.node.clone()?;
        if calls.serving.swap(true, Ordering::AcqRel) {
            return None;
        }
        calls.start(&self.inner.handle);
        let (sender, receiver) = mpsc::channel(QUEUE);
        self.inner
            .handle
            .spawn(Arc::clone(calls).serve(node, owned, sender));
        Some(receiver)
    }
}
