//! The runtime's router: it finds (or starts) the actor that owns a conversation, sends it a
//! message, and keeps the limits every command passes (commands in flight, acknowledgement
//! latency).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use actix::{Actor, Addr, ArbiterHandle, Handler, MailboxError, Message};
use handover_core::{CommandId, ConversationCommand, ConversationId, StreamId};
use tokio::sync::Semaphore;

use crate::conversation_actor::{ConversationActor, Conversations};
use crate::error::Error;
use crate::humans::Humans;
use crate::messages::{Execute, ExecuteAgentCommand};
use crate::metrics::LatencyRecorder;
use crate::view::Receipt;
use handover_store::StoreError;

/// Sends a call to the node that owns a shard and returns its answer (the PostgreSQL store's
/// forwarding, on a cluster's node).
#[async_trait::async_trait]
pub(crate) trait Forward: Send + Sync {
    async fn forward(&self, shard: u16, call: Vec<u8>) -> Result<Vec<u8>, StoreError>;
}

/// The runtime one [`crate::Handover`] runs: every actor reaches every other through it.
pub(crate) struct Runtime {
    pub(crate) conversations: Arc<Conversations>,
    workers: Vec<ArbiterHandle>,
    next_worker: AtomicUsize,
    /// One permit per command in flight: a flood beyond it is refused, not queued.
    in_flight: Semaphore,
    /// How long acknowledged commands took.
    pub(crate) ack_latency: LatencyRecorder,
    /// Where the AI agents' code runs: threads of its own, so that a behaviour that computes
    /// for a while (or reads a long history at a handoff) never holds up the conversation
    /// actors sharing an arbiter with its agent's actor.
    pub(crate) ai_runtime: tokio::runtime::Handle,
    /// The single writer of the AI-agent streams; set once, right after start.
    pub(crate) roster_actor: OnceLock<actix::Recipient<ExecuteAgentCommand>>,
    /// The single writer of the human streams.
    pub(crate) humans: Humans,
    /// How long an AI agent's call may run on after its assignment ended before it is dropped.
    pub(crate) ai_cancel_grace: std::time::Duration,
    /// On a cluster's node: how a command for a tenant another node owns reaches it; set once,
    /// right after start.
    pub(crate) forward: OnceLock<Arc<dyn Forward>>,
    /// Set once the runtime is shutting down: a closed mailbox then means the runtime stopped,
    /// not that one actor did.
    stopping: AtomicBool,
    /// On a shared log: the last position the follower has folded into the read models.
    pub(crate) followed: tokio::sync::watch::Sender<u64>,
    /// The embedder's own escalation rules, in order (see `escalation::judge`).
    pub(crate) escalation_rules: Vec<Arc<dyn crate::escalation::EscalationRule>>,
    /// How much history each AI agent reads at a handoff: the default, and per agent.
    pub(crate) history_windows: (
        crate::window::HistoryWindow,
        HashMap<handover_core::AiAgentId, crate::window::HistoryWindow>,
    ),
    /// On a shared log: the last seq the follower saw of each human's and AI agent's stream,
    /// whichever node wrote it; their writers expect at least that version, so a node that
    /// takes a tenant up writes after the former owner's last event.
    pub(crate) seen_versions: std::sync::Mutex<HashMap<StreamId, u64>>,
}

impl Runtime {
    pub(crate) fn new(
        conversations: Arc<Conversations>,
        workers: Vec<ArbiterHandle>,
        max_in_flight: usize,
        ai_runtime: tokio::runtime::Handle,
        humans: Humans,
        ai_cancel_grace: std::time::Duration,
    ) -> Runtime {
        Runtime {
            conversations,
            workers,
            next_worker: AtomicUsize::new(0),
            in_flight: Semaphore::new(max_in_flight.min(Semaphore::MAX_PERMITS)),
            ack_latency: LatencyRecorder::new(),
            ai_runtime,
            roster_actor: OnceLock::new(),
            humans,
            ai_cancel_grace,
            stopping: AtomicBool::new(false),
            forward: OnceLock::new(),
            followed: tokio::sync::watch::Sender::new(0),
            seen_versions: std::sync::Mutex::new(HashMap::new()),
            escalation_rules: Vec::new(),
            history_windows: Default::default(),
        }
    }

    /// How much history `agent_id` reads at a handoff.
    pub(crate) fn history_window(
        &self,
        agent_id: &handover_core::AiAgentId,
    ) -> crate::window::HistoryWindow {
        self.history_windows
            .1
            .get(agent_id)
            .copied()
            .unwrap_or(self.history_windows.0)
    }

    /// The version a writer of `stream` expects: what it wrote last (`own`), or what the
    /// follower saw another node write after it, whichever is later.
    pub(crate) fn expected_version(&self, stream: &StreamId, own: u64) -> u64 {
        let seen = self
            .seen_versions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(stream)
            .copied()
            .unwrap_or(0);
        own.max(seen)
    }

    /// Waits until the read models hold every event committed up to `position`: a write this
    /// caller had another node make is then visible here too (read-your-writes). Bounded: a
    /// follower held up by the database is not a reason to fail the write that succeeded.
    pub(crate) async fn caught_up(&self, position: u64) {
        const CATCH_UP_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
        let mut followed = self.followed.subscribe();
        let _ = tokio::time::timeout(CATCH_UP_WAIT, followed.wait_for(|&at| at >= position)).await;
    }

    /// [`caught_up`](Self::caught_up) with the log's last position now, for a write whose
    /// position the answer does not carry.
    pub(crate) async fn caught_up_with_log(&self) {
        match self.conversations.store.last_position().await {
            Ok(position) => self.caught_up(position).await,
            Err(error) => tracing::debug!(%error, "cannot read the log's last position"),
        }
    }

    /// Whether the runtime is shutting down.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Marks the runtime as shutting down, before its actors stop.
    pub(crate) fn mark_stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// The worker thread for the next actor, round robin.
    pub(crate) fn next_worker(&self) -> &ArbiterHandle {
        let i = self.next_worker.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        &self.workers[i]
    }

    /// The actor owning `id`, started (and rebuilt from its stream) if none runs.
    fn conversation(&self, id: ConversationId) -> Addr<ConversationActor> {
        self.conversations.live.get_or_start(&id, || {
            let shared = Arc::clone(&self.conversations);
            ConversationActor::start_in_arbiter(self.next_worker(), move |_| {
                ConversationActor::new(id, shared)
            })
        })
    }

    /// Sends a message to the conversation's actor and waits for its reply.
    ///
    /// An actor may stop between the lookup and the send (it found its stream missing, or a
    /// store failure made it drop its state). Its address is then forgotten and the message
    /// goes to a successor rebuilt from the log.
    pub(crate) async fn ask<M>(
        &self,
        id: ConversationId,
        message: impl Fn() -> M,
    ) -> Result<M::Result, Error>
    where
        M: Message + Send + 'static,
        M::Result: Send,
        ConversationActor: Handler<M>,
    {
        const ATTEMPTS_MAX: usize = 3;
        let mut attempt = 1;
        loop {
            if self.stopping.load(Ordering::Acquire) {
                return Err(Error::Stopped);
            }
            let addr = self.conversation(id);
            match addr.send(message()).await {
                Ok(reply) => return Ok(reply),
                Err(MailboxError::Closed) if attempt < ATTEMPTS_MAX => {
                    self.conversations.live.forget(&id, &addr);
                    attempt += 1;
                }
                Err(_) if self.stopping.load(Ordering::Acquire) => return Err(Error::Stopped),
                // The runtime runs, but each successor stopped before it answered: it could
                // not be rebuilt from the log (the first message of each got the store's
                // error, the others a closed mailbox). The store is failing, not the runtime.
                Err(_) => {
                    self.conversations.live.forget(&id, &addr);
                    return Err(Error::Store(StoreError::Engine(format!(
                        "conversation {id} could not be rebuilt from the log in {ATTEMPTS_MAX} \
                         attempts (the event store is failing); retry once it is back"
                    ))));
                }
            }
        }
    }

    /// Sends a command to the conversation's actor and waits for its durable outcome.
    pub(crate) async fn execute(
        &self,
        id: ConversationId,
        command: Arc<ConversationCommand>,
        command_id: Option<CommandId>,
    ) -> Result<Receipt, Error> {
        let called = Instant::now();
        let _permit = self
            .in_flight
            .try_acquire()
            .map_err(|_| Error::Overloaded)?;
        let receipt = self
            .ask(id, || Execute {
                command: Arc::clone(&command),
                command_id,
            })
            .await??;
        self.ack_latency.record(called.elapsed());
        Ok(receipt)
    }

    /// Runs a command on an AI agent's registration through the roster actor.
    pub(crate) async fn agent_command(
        &self,
        command: ExecuteAgentCommand,
    ) -> Result<Vec<Arc<handover_store::RecordedEvent>>, Error> {
        let roster = self.roster_actor.get().ok_or(Error::Stopped)?;
        roster.send(command).await.map_err(|_| Error::Stopped)?
    }
}
