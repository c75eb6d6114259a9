//! What every actor of one runtime shares: the store, the roster, the policy, and the maps that
//! route a message to the actor owning a conversation or running an AI agent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use actix::{Actor, Addr, ArbiterHandle, Handler, MailboxError, Message};
use handover_core::{
    AiAgentId, CommandId, ConversationCommand, ConversationId, Epoch, Event, Policy, Rejection,
    Roster,
};
use handover_store::EventStore;
use tokio::sync::Semaphore;

use crate::agent_actor::{AiAgentActor, Delivered};
use crate::conversation_actor::{ConversationActor, Execute, Receipt};
use crate::metrics::LatencyRecorder;
use crate::roster_actor::RosterActor;
use crate::Error;

/// Locks a mutex, recovering it if a panicking thread poisoned it: every map behind these
/// locks is updated in single statements, so it is never left half-changed.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How a conversation actor reaches an AI agent running in this process.
#[derive(Clone)]
pub(crate) struct AgentHandle {
    pub(crate) addr: Addr<AiAgentActor>,
    /// Events sent to the agent that it has not started on. Counted here, when sent, so that
    /// what waits in the actor's mailbox counts too; the actor takes them off.
    pub(crate) backlog: Arc<AtomicUsize>,
}

impl AgentHandle {
    /// Sends one event of a conversation the agent holds.
    pub(crate) fn deliver(&self, delivered: Delivered) {
        self.backlog.fetch_add(1, Ordering::AcqRel);
        self.addr.do_send(delivered);
    }
}

/// The limits the runtime keeps to, from [`crate::Config`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) passivate_after: Option<Duration>,
    pub(crate) ai_agent_backlog_max: usize,
    pub(crate) max_in_flight: usize,
}

/// For each AI agent, the conversations it holds: the epoch and the seq of the handoff.
pub(crate) type Assignments = HashMap<AiAgentId, HashMap<ConversationId, (Epoch, u64)>>;

pub(crate) struct Shared {
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) policy: Arc<dyn Policy>,
    /// The roster `decide` consults; the roster actor is its only writer.
    roster: RwLock<Roster>,
    conversations: Mutex<HashMap<ConversationId, Addr<ConversationActor>>>,
    /// AI agents whose implementation runs in this process.
    pub(crate) agents: Mutex<HashMap<AiAgentId, AgentHandle>>,
    /// Which conversations each AI agent holds: the epoch and the seq of the handoff. Written by conversation
    /// actors after a durable handoff or end of assignment; read by deactivation and attach.
    pub(crate) assignments: Mutex<Assignments>,
    workers: Vec<ArbiterHandle>,
    next_worker: AtomicUsize,
    pub(crate) roster_actor: OnceLock<Addr<RosterActor>>,
    pub(crate) limits: Limits,
    /// One permit per command in flight: a flood beyond it is refused, not queued.
    in_flight: Semaphore,
    /// How long acknowledged commands took.
    pub(crate) ack_latency: LatencyRecorder,
    /// Where the AI agents' code runs: threads of its own, so that a behaviour that computes
    /// for a while (or reads a long history at a handoff) never holds up the conversation
    /// actors sharing an arbiter with its agent's actor.
    pub(crate) ai_runtime: tokio::runtime::Handle,
    /// Handoffs decided but not yet appended, per AI agent: a deactivation waits for them, so
    /// that no handoff to an agent lands in the log after the agent's deactivation.
    handoffs: Mutex<HashMap<AiAgentId, usize>>,
    handoffs_settled: tokio::sync::Notify,
}

/// A handoff decided and on its way to the log; dropped when its append has an outcome.
pub(crate) struct HandoffInFlight {
    shared: Arc<Shared>,
    agent_id: AiAgentId,
}

impl Drop for HandoffInFlight {
    fn drop(&mut self) {
        let mut handoffs = lock(&self.shared.handoffs);
        if let Some(count) = handoffs.get_mut(&self.agent_id) {
            *count -= 1;
            if *count == 0 {
                handoffs.remove(&self.agent_id);
                self.shared.handoffs_settled.notify_waiters();
            }
        }
    }
}

impl Shared {
    /// Counts a handoff to `agent_id` that `decide` accepted. Called with the roster read
    /// lock held, so a deactivation (which takes the write lock) either came first, and the
    /// handoff was decided against it, or waits for this handoff's append.
    pub(crate) fn handoff_started(self: &Arc<Self>, agent_id: &AiAgentId) -> HandoffInFlight {
        *lock(&self.handoffs).entry(agent_id.clone()).or_default() += 1;
        HandoffInFlight {
            shared: Arc::clone(self),
            agent_id: agent_id.clone(),
        }
    }

    /// Waits until no handoff to `agent_id` is between its decision and its append.
    pub(crate) async fn handoffs_settled(&self, agent_id: &AiAgentId) {
        loop {
            let settled = self.handoffs_settled.notified();
            tokio::pin!(settled);
            // Registered before the check, so a drop in between still wakes this waiter.
            settled.as_mut().enable();
            if !lock(&self.handoffs).contains_key(agent_id) {
                return;
            }
            settled.await;
        }
    }

    pub(crate) fn new(
        store: Arc<dyn EventStore>,
        policy: Arc<dyn Policy>,
        roster: Roster,
        assignments: Assignments,
        workers: Vec<ArbiterHandle>,
        limits: Limits,
        ai_runtime: tokio::runtime::Handle,
    ) -> Shared {
        Shared {
            store,
            policy,
            roster: RwLock::new(roster),
            conversations: Mutex::new(HashMap::new()),
            agents: Mutex::new(HashMap::new()),
            assignments: Mutex::new(assignments),
            workers,
            next_worker: AtomicUsize::new(0),
            roster_actor: OnceLock::new(),
            limits,
            in_flight: Semaphore::new(limits.max_in_flight.min(Semaphore::MAX_PERMITS)),
            ack_latency: LatencyRecorder::new(),
            ai_runtime,
            handoffs: Mutex::new(HashMap::new()),
            handoffs_settled: tokio::sync::Notify::new(),
        }
    }

    pub(crate) fn roster(&self) -> RwLockReadGuard<'_, Roster> {
        self.roster
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies an AI-agent event to the roster (only the roster actor calls this): a durable
    /// one, or a deactivation about to be appended (see `RosterActor`).
    pub(crate) fn evolve_roster(&self, event: &Event) -> Result<(), Rejection> {
        self.roster
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .evolve_stored(event)
    }

    /// The worker thread for the next actor, round robin.
    pub(crate) fn next_worker(&self) -> &ArbiterHandle {
        let i = self.next_worker.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        &self.workers[i]
    }

    /// The actor owning `id`, started (and rebuilt from its stream) if none runs.
    pub(crate) fn conversation(self: &Arc<Self>, id: ConversationId) -> Addr<ConversationActor> {
        let mut conversations = lock(&self.conversations);
        if let Some(addr) = conversations.get(&id) {
            if addr.connected() {
                return addr.clone();
            }
        }
        let shared = Arc::clone(self);
        let addr = ConversationActor::start_in_arbiter(self.next_worker(), move |_| {
            ConversationActor::new(id, shared)
        });
        conversations.insert(id, addr.clone());
        addr
    }

    /// Forgets a stopped conversation actor, unless a newer one already took its place.
    pub(crate) fn forget_conversation(&self, id: ConversationId, addr: &Addr<ConversationActor>) {
        let mut conversations = lock(&self.conversations);
        if conversations.get(&id) == Some(addr) {
            conversations.remove(&id);
            // A map never shrinks by itself: after a peak of live conversations has been
            // passivated, give the slots back (amortized: only when a quarter or less is used).
            let live = conversations.len();
            if conversations.capacity() > 1024 && live <= conversations.capacity() / 4 {
                conversations.shrink_to(live * 2);
            }
        }
    }

    /// How many conversation actors are running.
    pub(crate) fn live_conversations(&self) -> usize {
        lock(&self.conversations).len()
    }

    /// Sends a message to the conversation's actor and waits for its reply.
    ///
    /// An actor may stop between the lookup and the send (it found its stream missing, or a
    /// store failure made it drop its state). Its address is then forgotten and the message
    /// goes to a successor rebuilt from the log.
    pub(crate) async fn ask<M>(
        self: &Arc<Self>,
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
            let addr = self.conversation(id);
            match addr.send(message()).await {
                Ok(reply) => return Ok(reply),
                Err(MailboxError::Closed) if attempt < ATTEMPTS_MAX => {
                    self.forget_conversation(id, &addr);
                    attempt += 1;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Sends a command to the conversation's actor and waits for its durable outcome.
    pub(crate) async fn execute(
        self: &Arc<Self>,
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

    pub(crate) fn agent(&self, id: &AiAgentId) -> Option<AgentHandle> {
        lock(&self.agents).get(id).cloned()
    }

    /// Whether the AI agent has more events waiting than it may.
    pub(crate) fn agent_overloaded(&self, id: &AiAgentId) -> bool {
        lock(&self.agents).get(id).is_some_and(|agent| {
            agent.backlog.load(Ordering::Acquire) >= self.limits.ai_agent_backlog_max
        })
    }
}
