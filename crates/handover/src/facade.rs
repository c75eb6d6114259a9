//! [`Handover`]: the handle a backend holds. It owns the actor system (on threads of its own,
//! so it works from any tokio runtime) and turns each call into a message to the actor that
//! owns the conversation or the roster.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use actix::{Actor, Arbiter, System};
use handover_core::{
    conversation, AiAgent, AiAgentCommand, AiAgentId, AiAgentProfile, Channel, CommandId,
    Conversation, ConversationCommand, ConversationEvent, ConversationId, CustomerId, Event,
    HumanId, MessageText, Participant, Reason, Roster, Specialty, StreamId,
};
use handover_sled::{SledOptions, SledStore};
use handover_store::{EventStore, SeqRange, StoreError, StoreStats};
use tokio::sync::{mpsc, oneshot};
use tracing::info;
use uuid::Uuid;

use crate::agent_actor::{AiAgentActor, Assigned};
use crate::behavior::AiAgentBehavior;
use crate::config::Config;
use crate::conversation_actor::{
    AddWatcher, ConversationView, GetView, Receipt, WATCHER_BACKLOG_EVENTS_MAX,
};
use crate::metrics::AckLatency;
use crate::roster_actor::{ExecuteAgentCommand, RosterActor};
use crate::shared::{lock, AgentHandle, Assignments, Limits, Shared};
use crate::watch::Watch;
use crate::Error;

/// Events read per step when scanning the log at start.
const STARTUP_SCAN_EVENTS_MAX: usize = 10_000;

/// A running Handover: clone it freely (it is `Send + Sync`) and call it from any async code,
/// e.g. an axum or actix-web handler. Dropping the last clone stops the runtime;
/// [`shutdown`](Handover::shutdown) also waits for it.
#[derive(Clone)]
pub struct Handover {
    owner: Arc<Owner>,
}

struct Owner {
    shared: Arc<Shared>,
    system: System,
    stopped: Mutex<Option<oneshot::Receiver<()>>>,
    /// Runs the AI agents' code (see `Shared::ai_runtime`).
    ai_runtime: Mutex<Option<tokio::runtime::Runtime>>,
}

impl Owner {
    fn stop_ai_runtime(&self) {
        // Without blocking: this may run inside an async context, where a runtime must not
        // be dropped; calls in flight are cancelled, and their conversations are in the log.
        if let Some(runtime) = lock(&self.ai_runtime).take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.system.stop();
        self.stop_ai_runtime();
    }
}

impl std::fmt::Debug for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handover").finish_non_exhaustive()
    }
}

/// Folds every AI-agent stream into the roster, noting each stream's version.
async fn load_roster(store: &dyn EventStore) -> Result<(Roster, HashMap<AiAgentId, u64>), Error> {
    let mut roster = Roster::default();
    let mut versions = HashMap::new();
    for record in store.read_ai_agents().await? {
        roster
            .evolve_stored(&record.event)
            .map_err(|r| StoreError::breaks_rules(&record, r))?;
        if let Event::AiAgent(event) = &record.event {
            versions.insert(event.agent_id().clone(), record.seq);
        }
    }
    Ok((roster, versions))
}

/// Finds every AI-active conversation by folding the log, so attached agents resume them.
async fn load_assignments(store: &dyn EventStore) -> Result<Assignments, Error> {
    let mut states: HashMap<ConversationId, (Conversation, u64)> = HashMap::new();
    let mut from = 1;
    loop {
        let batch = store.read_all(from, STARTUP_SCAN_EVENTS_MAX).await?;
        let Some(last) = batch.last() else { break };
        from = last.position + 1;
        for record in &batch {
            let StreamId::Conversation(id) = record.stream else {
                continue;
            };
            let (state, handoff_seq) = states.entry(id).or_default();
            *state = conversation::evolve_stored(std::mem::take(state), &record.event)
                .map_err(|r| StoreError::breaks_rules(record, r))?;
            if matches!(
                record.event,
                Event::Conversation(ConversationEvent::HandedOffToAi { .. })
            ) {
                *handoff_seq = record.seq;
            }
        }
    }
    let mut assignments = Assignments::new();
    for (id, (state, handoff_seq)) in states {
        if let Some(assignment) = state.assignment() {
            assignments
                .entry(assignment.agent_id)
                .or_default()
                .insert(id, (assignment.epoch, handoff_seq));
        }
    }
    Ok(assignments)
}

impl Handover {
    /// Opens (or creates) the data directory and starts the runtime.
    ///
    /// Fails with a store error if the directory is in use by another process or damaged.
    pub async fn start(config: Config) -> Result<Handover, Error> {
        let options = SledOptions {
            durability: config.durability,
            min_free_bytes: config.min_free_bytes,
            ..SledOptions::default()
        };
        let store = SledStore::open(&config.data_dir, options)?;
        Handover::start_with_store(Arc::new(store), config).await
    }

    /// Starts the runtime over an already open store (`config.data_dir` and
    /// `config.durability` are then the store's business).
    pub async fn start_with_store(
        store: Arc<dyn EventStore>,
        config: Config,
    ) -> Result<Handover, Error> {
        let (roster, versions) = load_roster(&*store).await?;
        let assignments = load_assignments(&*store).await?;
        let (ready_tx, ready_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let workers = config.workers.max(1);
        std::thread::Builder::new()
            .name("handover-actors".to_owned())
            .spawn(move || {
                let runner = System::new();
                let arbiters: Vec<Arbiter> = (0..workers).map(|_| Arbiter::new()).collect();
                let handles = arbiters.iter().map(Arbiter::handle).collect::<Vec<_>>();
                let _ = ready_tx.send((System::current(), handles));
                let _ = runner.run();
                for arbiter in arbiters {
                    arbiter.stop();
                    let _ = arbiter.join();
                }
                let _ = done_tx.send(());
            })
            .map_err(StoreError::from)?;
        let (system, handles) = ready_rx.await.map_err(|_| Error::Stopped)?;
        let roster_worker = handles[0].clone();
        // The AI agents' code runs on threads of its own, never on the actors' threads: a
        // behaviour that computes for a while must not hold up conversations.
        let ai_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("handover-ai")
            .enable_all()
            .build()
            .map_err(StoreError::from)?;
        let shared = Arc::new(Shared::new(
            store,
            Arc::clone(&config.policy),
            roster,
            assignments,
            handles,
            Limits {
                passivate_after: config.passivate_after,
                ai_agent_backlog_max: config.ai_agent_backlog_max,
                max_in_flight: config.max_in_flight,
            },
            ai_runtime.handle().clone(),
        ));
        let roster_shared = Arc::clone(&shared);
        let roster_actor = RosterActor::start_in_arbiter(&roster_worker, move |_| {
            RosterActor::new(roster_shared, versions)
        });
        let _ = shared.roster_actor.set(roster_actor);
        info!(data_dir = %config.data_dir.display(), workers, "Handover started");
        Ok(Handover {
            owner: Arc::new(Owner {
                shared,
                system,
                stopped: Mutex::new(Some(done_rx)),
                ai_runtime: Mutex::new(Some(ai_runtime)),
            }),
        })
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.owner.shared
    }

    /// Stops the runtime and waits until every actor has stopped. Calls on other clones then
    /// fail with [`Error::Stopped`]. The data directory is released when the last clone drops.
    pub async fn shutdown(self) {
        self.owner.system.stop();
        self.owner.stop_ai_runtime();
        let stopped = lock(&self.owner.stopped).take();
        if let Some(stopped) = stopped {
            let _ = stopped.await;
        }
    }

    async fn agent_command(
        &self,
        agent_id: &AiAgentId,
        command: AiAgentCommand,
    ) -> Result<(), Error> {
        let roster = self
            .shared()
            .roster_actor
            .get()
            .ok_or(Error::Stopped)?
            .clone();
        roster
            .send(ExecuteAgentCommand {
                agent_id: agent_id.clone(),
                command,
            })
            .await??;
        Ok(())
    }

    /// Registers an AI agent. It starts inactive: [`activate_ai_agent`](Self::activate_ai_agent)
    /// makes it selectable.
    pub async fn register_ai_agent(&self, profile: AiAgentProfile) -> Result<(), Error> {
        let agent_id = profile.id.clone();
        self.agent_command(
            &agent_id,
            AiAgentCommand::Register {
                name: profile.name,
                specialties: profile.specialties,
            },
        )
        .await
    }

    /// Makes a registered AI agent selectable for handoffs.
    pub async fn activate_ai_agent(&self, agent_id: &AiAgentId) -> Result<(), Error> {
        self.agent_command(agent_id, AiAgentCommand::Activate).await
    }

    /// Makes an AI agent unselectable, and escalates every conversation it holds to humans
    /// before returning.
    pub async fn deactivate_ai_agent(&self, agent_id: &AiAgentId) -> Result<(), Error> {
        self.agent_command(agent_id, AiAgentCommand::Deactivate)
            .await
    }

    /// Runs `behavior` as the AI agent `agent_id` in this process: from now on it receives the
    /// conversations handed to the agent, including those it already held (after a restart).
    /// Attaching again replaces the previous behaviour.
    pub fn attach_ai_agent(
        &self,
        agent_id: &AiAgentId,
        behavior: Arc<dyn AiAgentBehavior>,
    ) -> Result<(), Error> {
        let shared = self.shared();
        if shared.roster().get(agent_id).is_none() {
            return Err(handover_core::Rejection::AiAgentNotRegistered {
                agent_id: agent_id.clone(),
            }
            .into());
        }
        let actor_shared = Arc::clone(shared);
        let id = agent_id.clone();
        let backlog = Arc::new(AtomicUsize::new(0));
        let actor_backlog = Arc::clone(&backlog);
        let addr = AiAgentActor::start_in_arbiter(shared.next_worker(), move |_| {
            AiAgentActor::new(id, behavior, actor_shared, actor_backlog)
        });
        // Publish the actor first, then announce what it already holds: a handoff racing this
        // either sees the actor or is in the map read below (the actor ignores duplicates).
        lock(&shared.agents).insert(
            agent_id.clone(),
            AgentHandle {
                addr: addr.clone(),
                backlog,
            },
        );
        let held: Vec<_> = lock(&shared.assignments)
            .get(agent_id)
            .map(|held| held.iter().map(|(id, v)| (*id, *v)).collect())
            .unwrap_or_default();
        for (conversation_id, (epoch, _)) in held {
            addr.do_send(Assigned {
                conversation_id,
                assignment: handover_core::Assignment {
                    agent_id: agent_id.clone(),
                    epoch,
                },
            });
        }
        info!(agent_id = %agent_id, "AI agent attached");
        Ok(())
    }

    /// Every registered AI agent, active or not, sorted by id.
    pub fn ai_agents(&self) -> Vec<AiAgent> {
        self.shared().roster().all().cloned().collect()
    }

    /// The active AI agents, optionally only those with `specialty`: the "select the AI agent"
    /// list of the handoff dialog.
    pub fn active_ai_agents(&self, specialty: Option<&Specialty>) -> Vec<AiAgent> {
        self.shared().roster().active(specialty).cloned().collect()
    }

    /// Runs any command on a conversation and returns its durable outcome.
    pub async fn execute(
        &self,
        conversation_id: ConversationId,
        command: ConversationCommand,
    ) -> Result<Receipt, Error> {
        self.run(conversation_id, command, None).await
    }

    /// Runs a command that the caller may send again, recording it at most once: a retry with
    /// the same `command_id` (after a timeout, a lost reply, [`Error::Overloaded`] or a store
    /// error whose outcome was unknown) gets the receipt of the events the first attempt
    /// recorded, with the conversation's status now, and records nothing. The id is the
    /// caller's (an HTTP `Idempotency-Key`, a queue message id); ids are remembered per
    /// conversation, for as long as the log.
    ///
    /// ```no_run
    /// # async fn demo(handover: handover::Handover, id: handover::ConversationId,
    /// #               command: handover::ConversationCommand) -> Result<(), handover::Error> {
    /// use handover::CommandId;
    ///
    /// let command_id = CommandId::new();
    /// let first = handover.execute_once(id, command_id, command.clone()).await;
    /// // The reply was lost: send it again. It is not recorded twice.
    /// let again = handover.execute_once(id, command_id, command).await?;
    /// # Ok(()) }
    /// ```
    pub async fn execute_once(
        &self,
        conversation_id: ConversationId,
        command_id: CommandId,
        command: ConversationCommand,
    ) -> Result<Receipt, Error> {
        self.run(conversation_id, command, Some(command_id)).await
    }

    async fn run(
        &self,
        conversation_id: ConversationId,
        command: ConversationCommand,
        command_id: Option<CommandId>,
    ) -> Result<Receipt, Error> {
        if let ConversationCommand::HandOffToAi { agent_id, .. } = &command {
            let active = self
                .shared()
                .roster()
                .get(agent_id)
                .is_some_and(|agent| agent.active);
            // Only for an agent the rules would accept: otherwise the rules say why not.
            if active && self.shared().agent(agent_id).is_none() {
                return Err(Error::AiAgentNotRunning(agent_id.clone()));
            }
        }
        self.shared()
            .execute(conversation_id, Arc::new(command), command_id)
            .await
    }

    /// Opens a conversation for `customer` on `channel`, optionally assigned to a human agent.
    /// It starts human-handled. Returns its new id (a UUID v7).
    pub async fn open_conversation(
        &self,
        customer: CustomerId,
        channel: Channel,
        human: Option<HumanId>,
    ) -> Result<ConversationId, Error> {
        let id = ConversationId::from_uuid(Uuid::now_v7());
        self.execute(
            id,
            ConversationCommand::Open {
                customer,
                channel,
                human,
            },
        )
        .await?;
        Ok(id)
    }

    /// Posts the customer's message. If an AI agent is active and the policy hears a request
    /// for a human, the conversation is escalated in the same durable step.
    pub async fn post_customer_message(
        &self,
        conversation_id: ConversationId,
        customer: CustomerId,
        text: MessageText,
    ) -> Result<Receipt, Error> {
        self.execute(
            conversation_id,
            ConversationCommand::PostMessage {
                by: Participant::Customer(customer),
                text,
            },
        )
        .await
    }

    /// Posts a human agent's message. Rejected while an AI agent is active: reclaim first.
    pub async fn post_human_message(
        &self,
        conversation_id: ConversationId,
        human: HumanId,
        text: MessageText,
    ) -> Result<Receipt, Error> {
        self.execute(
            conversation_id,
            ConversationCommand::PostMessage {
                by: Participant::Human(human),
                text,
            },
        )
        .await
    }

    /// Hands the conversation to an active AI agent, with an optional reason. The agent is
    /// told as soon as the handoff is durable and starts answering on its own.
    pub async fn hand_off_to_ai(
        &self,
        conversation_id: ConversationId,
        by: HumanId,
        agent_id: AiAgentId,
        reason: Option<Reason>,
    ) -> Result<Receipt, Error> {
        self.execute(
            conversation_id,
            ConversationCommand::HandOffToAi {
                by,
                agent_id,
                reason,
            },
        )
        .await
    }

    /// Takes the conversation back from its AI agent ("assume conversation"). From the moment
    /// this returns, nothing the AI agent sends is recorded.
    pub async fn reclaim(
        &self,
        conversation_id: ConversationId,
        by: HumanId,
        reason: Option<Reason>,
    ) -> Result<Receipt, Error> {
        self.execute(conversation_id, ConversationCommand::Reclaim { by, reason })
            .await
    }

    /// Closes the conversation; every later command on it is rejected.
    pub async fn close(
        &self,
        conversation_id: ConversationId,
        by: Participant,
        reason: Option<Reason>,
    ) -> Result<Receipt, Error> {
        self.execute(conversation_id, ConversationCommand::Close { by, reason })
            .await
    }

    /// The conversation's current state.
    pub async fn conversation(
        &self,
        conversation_id: ConversationId,
    ) -> Result<ConversationView, Error> {
        self.shared().ask(conversation_id, || GetView).await?
    }

    /// The conversation's events so far, read from the log.
    pub async fn history(
        &self,
        conversation_id: ConversationId,
    ) -> Result<Vec<handover_store::RecordedEvent>, Error> {
        let stream = StreamId::Conversation(conversation_id);
        let records = self
            .shared()
            .store
            .read_stream(&stream, SeqRange::ALL)
            .await?;
        if records.is_empty() {
            return Err(Error::UnknownConversation(conversation_id));
        }
        Ok(records)
    }

    /// Watches a conversation live: its history first, then every new event as soon as it is
    /// durable, each exactly once and in order.
    pub async fn watch(&self, conversation_id: ConversationId) -> Result<Watch, Error> {
        let (sender, live) = mpsc::channel(WATCHER_BACKLOG_EVENTS_MAX);
        let lagged = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let version = self
            .shared()
            .ask(conversation_id, || AddWatcher {
                sender: sender.clone(),
                lagged: Arc::clone(&lagged),
            })
            .await??;
        let stream = StreamId::Conversation(conversation_id);
        let range = SeqRange {
            from: 1,
            to: version,
            max: usize::MAX,
        };
        let history = self.shared().store.read_stream(&stream, range).await?;
        Ok(Watch {
            conversation_id,
            history: history.into_iter().map(Arc::new).collect(),
            live,
            lagged,
        })
    }

    /// How many conversation actors are in memory now (idle ones stop after
    /// [`Config::passivate_after`]).
    pub fn live_conversations(&self) -> usize {
        self.shared().live_conversations()
    }

    /// How long commands took from the call to their durable acknowledgement: percentiles over
    /// every command acknowledged since the runtime started, AI agents' commands included.
    pub fn ack_latency(&self) -> AckLatency {
        self.shared().ack_latency.summary()
    }

    /// What the store has done since it was opened: appends, events, group writes and syncs,
    /// the figures behind the cost of durability.
    pub fn store_stats(&self) -> StoreStats {
        self.shared().store.stats()
    }
}
