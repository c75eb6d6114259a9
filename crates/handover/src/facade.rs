//! [`Handover`]: the handle a backend holds, and the API boundary. Each call becomes a message
//! to the actor that owns the conversation or the roster; the actors run on threads of their
//! own, so the calls work from any tokio runtime.
//!
//! One convention runs through the whole API: identifiers and values are validated newtypes
//! ([`AiAgentId`], [`HumanId`], [`MessageText`], [`Reason`], ...), taken by value; events come
//! back shared, as `Arc<RecordedEvent>`; every command returns its [`Receipt`].

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use actix::Actor;
use handover_core::context::Context;
use handover_core::{
    AiAgent, AiAgentCommand, AiAgentId, AiAgentProfile, Assignment, Channel, CommandId,
    ConversationCommand, ConversationId, CustomerId, HumanId, MessageText, Participant, Reason,
    Rejection, SkillName, Specialty, StreamId,
};
use handover_sled::SledStore;
use handover_store::{EventStore, RecordedAt, RecordedEvent, SeqRange, StoreStats, TimeSource};
use tokio::sync::oneshot;
use tracing::info;
use uuid::Uuid;

use crate::actor_map::ActorMap;
use crate::agent_actor::AiAgentActor;
use crate::agents::{AgentHandle, Agents};
use crate::assignments::Assignments;
use crate::behavior::AiAgentBehavior;
use crate::board::Board;
use crate::config::{Config, RuntimeSettings};
use crate::conversation_actor::Conversations;
use crate::dispatch::{self, Dispatch};
use crate::error::Error;
use crate::gate::{AgentGates, HumanGates};
use crate::humans::{self, Humans, SharedDirectory};
use crate::listing::{LiveConversation, LiveCounts, LiveQuery};
use crate::messages::{Assigned, ExecuteAgentCommand, GetView};
use crate::metrics::{AckHistogram, AckLatency};
use crate::roster::SharedRoster;
use crate::roster_actor::RosterActor;
use crate::runtime::Runtime;
use crate::startup::{ai_runtime, Actors, Projection};
use crate::sync::lock;
use crate::timers::{self, Timers};
use crate::view::{ConversationView, Receipt};
use crate::watch::Watch;

/// A running Handover: clone it freely (it is `Send + Sync`) and call it from any async code,
/// e.g. an axum or actix-web handler. Dropping the last clone stops the runtime;
/// [`shutdown`](Handover::shutdown) also waits for it.
#[derive(Clone)]
pub struct Handover {
    owner: Arc<Owner>,
}

struct Owner {
    runtime: Arc<Runtime>,
    system: actix::System,
    stopped: Mutex<Option<oneshot::Receiver<()>>>,
    /// Runs the AI agents' code (see `Runtime::ai_runtime`).
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
        self.runtime.mark_stopping();
        self.system.stop();
        self.stop_ai_runtime();
    }
}

/// Runs a conversation command on the node that owns `shard`, once; returns once this node's
/// read models hold what it recorded.
async fn forward_execute(
    runtime: &Runtime,
    forward: &dyn crate::runtime::Forward,
    shard: u16,
    conversation_id: ConversationId,
    command_id: CommandId,
    command: ConversationCommand,
) -> Result<Receipt, Error> {
    let call = crate::wire::Call::Execute {
        conversation_id,
        command_id,
        command,
    };
    let receipt = crate::wire::into_receipt(forward_call(forward, shard, &call).await?)?;
    runtime.caught_up(last_position(&receipt)).await;
    Ok(receipt)
}

/// The position of the last event a receipt carries (0 for none).
fn last_position(receipt: &Receipt) -> u64 {
    receipt.events.last().map_or(0, |record| record.position)
}

/// Sends `call` to the node that owns `shard` and decodes its answer.
async fn forward_call(
    forward: &dyn crate::runtime::Forward,
    shard: u16,
    call: &crate::wire::Call,
) -> Result<crate::wire::Answer, Error> {
    let bytes = crate::wire::encode_call(call).map_err(|e| e.into_error())?;
    let answer = forward.forward(shard, bytes).await?;
    crate::wire::decode_answer(&answer).map_err(|e| e.into_error())
}

/// Runs a call that answers nothing on the node that owns `shard`; returns once this node's
/// read models hold what it recorded.
pub(crate) async fn forward_done(
    runtime: &Runtime,
    forward: &dyn crate::runtime::Forward,
    shard: u16,
    call: crate::wire::Call,
) -> Result<(), Error> {
    crate::wire::into_done(forward_call(forward, shard, &call).await?)?;
    runtime.caught_up_with_log().await;
    Ok(())
}

/// Runs [`crate::wire::Call::AcceptNext`] on the node that owns `shard`.
pub(crate) async fn forward_maybe_receipt(
    runtime: &Runtime,
    forward: &dyn crate::runtime::Forward,
    shard: u16,
    call: crate::wire::Call,
) -> Result<Option<Receipt>, Error> {
    let receipt = crate::wire::into_maybe_receipt(forward_call(forward, shard, &call).await?)?;
    if let Some(receipt) = &receipt {
        runtime.caught_up(last_position(receipt)).await;
    }
    Ok(receipt)
}

/// Forwarding through the PostgreSQL store.
#[cfg(feature = "postgres")]
struct NodeForward(Arc<crate::PostgresStore>);

/// How long a forwarded command may wait for its owner's answer.
#[cfg(feature = "postgres")]
const FORWARD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

#[cfg(feature = "postgres")]
#[async_trait::async_trait]
impl crate::runtime::Forward for NodeForward {
    async fn forward(
        &self,
        shard: u16,
        call: Vec<u8>,
    ) -> Result<Vec<u8>, handover_store::StoreError> {
        self.0.forward(shard, call, FORWARD_TIMEOUT).await
    }
}

impl std::fmt::Debug for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handover").finish_non_exhaustive()
    }
}

impl Handover {
    /// Opens (or creates) the data directory with the embedded sled store and starts the
    /// runtime.
    ///
    /// Fails with a store error if the directory is in use by another process or damaged.
    pub async fn start(config: Config) -> Result<Handover, Error> {
        let mut options = config.store;
        if options.time_source.is_none() {
            // Records are stamped by the runtime's clock, like the times the rules record.
            let clock = Arc::clone(&config.runtime.clock);
            options.time_source = Some(TimeSource::new(move || RecordedAt(clock.now().0)));
        }
        let store = SledStore::open(&config.data_dir, options)?;
        info!(data_dir = %config.data_dir.display(), "event store opened");
        Handover::start_with_store(Arc::new(store), config.runtime).await
    }

    /// Connects to PostgreSQL at `url` (creating or migrating Handover's tables) and starts the
    /// runtime on it: the backend for a Handover whose log lives in the database a backend
    /// already operates. Records are stamped by the runtime's clock unless `options` names a
    /// time source. Needs the `postgres` feature.
    ///
    /// ```no_run
    /// use handover::{Handover, PostgresOptions, RuntimeSettings};
    ///
    /// # async fn demo() -> Result<(), handover::Error> {
    /// let handover = Handover::start_on_postgres(
    ///     "postgres://handover@db.internal/contact_center",
    ///     PostgresOptions::default(),
    ///     RuntimeSettings::default(),
    /// )
    /// .await?;
    /// # drop(handover);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "postgres")]
    pub async fn start_on_postgres(
        url: &str,
        mut options: crate::PostgresOptions,
        settings: RuntimeSettings,
    ) -> Result<Handover, Error> {
        if options.time_source.is_none() {
            let clock = Arc::clone(&settings.clock);
            options.time_source = Some(TimeSource::new(move || RecordedAt(clock.now().0)));
        }
        let store = crate::PostgresStore::connect(url, options).await?;
        info!("event store connected (PostgreSQL)");
        Handover::start_with_store(Arc::new(store), settings).await
    }

    /// Starts the runtime as one node of a cluster sharing the PostgreSQL database at `url`
    /// (`options.node` set, or the defaults): it answers for every tenant, writes the tenants
    /// whose shards it holds, and forwards the commands for the others to their owner through
    /// the database. Needs the `postgres` feature.
    #[cfg(feature = "postgres")]
    pub async fn start_node(
        url: &str,
        mut options: crate::PostgresOptions,
        settings: RuntimeSettings,
    ) -> Result<Handover, Error> {
        if options.node.is_none() {
            options.node = Some(crate::NodeOptions::default());
        }
        if options.time_source.is_none() {
            let clock = Arc::clone(&settings.clock);
            options.time_source = Some(TimeSource::new(move || RecordedAt(clock.now().0)));
        }
        let store = Arc::new(crate::PostgresStore::connect(url, options).await?);
        let handover =
            Handover::start_with_store(Arc::clone(&store) as Arc<dyn EventStore>, settings).await?;
        let _ = handover
            .runtime()
            .forward
            .set(Arc::new(NodeForward(Arc::clone(&store))));
        if let Some(mut calls) = store.serve_calls() {
            let serving = handover.clone();
            handover.runtime().ai_runtime.spawn(async move {
                while let Some(call) = calls.recv().await {
                    let handover = serving.clone();
                    tokio::spawn(async move {
                        let answer = match crate::wire::decode_call(&call.call) {
                            Ok(decoded) => crate::wire::run(&handover, decoded).await,
                            Err(error) => crate::wire::Answer::Failed(error),
                        };
                        call.answer(crate::wire::encode_answer(&answer));
                    });
                }
            });
        }
        Ok(handover)
    }

    /// Starts the runtime over a store that is already open (sled, or any other
    /// [`EventStore`]). The store stamps records with its own time: give it the same clock as
    /// [`RuntimeSettings::clock`] (for sled, [`SledOptions::time_source`](crate::SledOptions::time_source)) when that is not the
    /// system clock.
    pub async fn start_with_store(
        store: Arc<dyn EventStore>,
        settings: RuntimeSettings,
    ) -> Result<Handover, Error> {
        let Projection {
            roster,
            versions,
            assignments,
            directory,
            human_versions,
            board,
            listing,
            deadlines,
            follow,
        } = Projection::read(&*store, &settings.rules).await?;
        let workers = settings.workers.max(1);
        let (dispatch, dispatch_requests) = Dispatch::new();
        let actors = Actors::start(workers).await?;
        let ai_runtime = ai_runtime(workers)?;
        let shared_log = store.is_shared();
        let conversations = Arc::new(Conversations {
            store,
            policy: Arc::clone(&settings.policy),
            roster: SharedRoster::new(roster),
            agents: Agents::default(),
            // On a shared log, a node takes up the AI assignments, deadlines and queues of a
            // tenant when it owns it (see `follower`), not at start.
            assignments: Assignments::new(if shared_log {
                HashMap::new()
            } else {
                assignments
            }),
            gates: AgentGates::default(),
            human_gates: HumanGates::default(),
            live: ActorMap::new(),
            tenure: crate::tenure::Tenure::new(shared_log),
            passivate_after: settings.passivate_after,
            ai_agent_backlog_max: settings.ai_agent_backlog_max,
            directory: SharedDirectory::new(directory),
            board: Board::new(board),
            listing,
            timers: Timers::default(),
            dispatch,
            router: Arc::clone(&settings.router),
            settings: Arc::new(settings.rules.clone()),
            clock: Arc::clone(&settings.clock),
        });
        if !shared_log {
            for (id, at) in deadlines {
                conversations.timers.arm(id, Some(at));
            }
        }
        let mut runtime = Runtime::new(
            conversations,
            actors.workers,
            settings.max_in_flight,
            ai_runtime.handle().clone(),
            Humans::new(human_versions),
            settings.ai_cancel_grace,
        );
        runtime.escalation_rules = settings.escalation_rules.clone();
        runtime.history_windows = (
            settings.default_history_window,
            settings.history_windows.clone(),
        );
        let runtime = Arc::new(runtime);
        ai_runtime.spawn(timers::run(Arc::clone(&runtime)));
        if let Some(start) = follow {
            ai_runtime.spawn(crate::follower::run(Arc::clone(&runtime), start));
        }
        ai_runtime.spawn(dispatch::run(Arc::clone(&runtime), dispatch_requests));
        ai_runtime.spawn(humans::reconcile(Arc::clone(&runtime)));
        let roster_runtime = Arc::clone(&runtime);
        let roster_actor = RosterActor::start_in_arbiter(runtime.next_worker(), move |_| {
            RosterActor::new(roster_runtime, versions)
        });
        let _ = runtime.roster_actor.set(roster_actor.recipient());
        info!(workers, "Handover started");
        Ok(Handover {
            owner: Arc::new(Owner {
                runtime,
                system: actors.system,
                stopped: Mutex::new(Some(actors.stopped)),
                ai_runtime: Mutex::new(Some(ai_runtime)),
            }),
        })
    }

    pub(crate) fn runtime(&self) -> &Arc<Runtime> {
        &self.owner.runtime
    }

    /// Stops the runtime and waits until every actor has stopped. Calls on other clones then
    /// fail with [`Error::Stopped`]. The data directory is released when the last clone drops.
    /// A cluster's node then gives its shards back, and the other nodes take them over at
    /// their next lease round (a node that dies instead loses them when its lease expires).
    pub async fn shutdown(self) {
        self.owner.runtime.mark_stopping();
        self.owner.system.stop();
        self.owner.stop_ai_runtime();
        let stopped = lock(&self.owner.stopped).take();
        if let Some(stopped) = stopped {
            let _ = stopped.await;
        }
        // A cluster's node gives its shards back now that its actors have stopped, so the
        // other nodes take them over at once instead of after the lease.
        if let Err(error) = self.owner.runtime.conversations.store.leave().await {
            tracing::warn!(%error, "the node could not give its shards back; they move when its lease expires");
        }
    }

    pub(crate) async fn agent_command(
        &self,
        agent_id: AiAgentId,
        command: AiAgentCommand,
    ) -> Result<(), Error> {
        let runtime = self.runtime();
        let tenant = match &command {
            AiAgentCommand::RegisterIn { tenant, .. } => Some(tenant.clone()),
            AiAgentCommand::Register { .. } => Some(handover_core::TenantId::default_tenant()),
            _ => runtime
                .conversations
                .roster
                .read()
                .get(&agent_id)
                .map(|agent| agent.tenant.clone()),
        };
        let call = || match &command {
            AiAgentCommand::RegisterIn {
                tenant,
                name,
                specialties,
            } => Some(crate::wire::Call::RegisterAiAgentIn {
                tenant: tenant.clone(),
                agent_id: agent_id.clone(),
                name: name.clone(),
                specialties: specialties.clone(),
            }),
            AiAgentCommand::Register { name, specialties } => {
                Some(crate::wire::Call::RegisterAiAgent {
                    agent_id: agent_id.clone(),
                    name: name.clone(),
                    specialties: specialties.clone(),
                })
            }
            AiAgentCommand::Activate => Some(crate::wire::Call::ActivateAiAgent {
                agent_id: agent_id.clone(),
            }),
            AiAgentCommand::Deactivate => Some(crate::wire::Call::DeactivateAiAgent {
                agent_id: agent_id.clone(),
            }),
            _ => None,
        };
        if let Some(done) = self
            .forward_foreign(tenant, &StreamId::AiAgent(agent_id.clone()), call)
            .await
        {
            return done;
        }
        let local = runtime
            .agent_command(ExecuteAgentCommand {
                agent_id: agent_id.clone(),
                command: command.clone(),
            })
            .await;
        match local {
            Err(Error::Store(handover_store::StoreError::NotOwner { shard })) => {
                match (runtime.forward.get(), call()) {
                    (Some(forward), Some(call)) => {
                        forward_done(runtime, &**forward, shard, call).await
                    }
                    _ => Err(Error::Store(handover_store::StoreError::NotOwner { shard })),
                }
            }
            other => other.map(|_| ()),
        }
    }

    /// Runs `call` on the node that owns `tenant`, when that is another node: `None` when this
    /// node writes the tenant (or does not know it yet, or is no cluster's node).
    pub(crate) async fn forward_foreign(
        &self,
        tenant: Option<handover_core::TenantId>,
        stream: &StreamId,
        call: impl FnOnce() -> Option<crate::wire::Call>,
    ) -> Option<Result<(), Error>> {
        let runtime = self.runtime();
        // Settled first, even without forwarding: a shard just gained is decided for here only
        // once the runtime took it up.
        let shard = self.foreign_shard(tenant, Some(stream)).await?;
        let forward = runtime.forward.get()?;
        let call = call()?;
        Some(forward_done(runtime, &**forward, shard, call).await)
    }

    /// The shard of the node that decides for `tenant` (or, when this node does not know the
    /// stream's tenant yet, for the shard the stream was placed in), when that is another
    /// node: `None` when this node decides for it, or nobody knows the stream.
    pub(crate) async fn foreign_shard(
        &self,
        tenant: Option<handover_core::TenantId>,
        stream: Option<&StreamId>,
    ) -> Option<u16> {
        let shared = &self.runtime().conversations;
        if !shared.store.is_shared() {
            return None;
        }
        match tenant {
            Some(tenant) => (!shared.tenure.settle(&*shared.store, &tenant).await)
                .then(|| handover_core::placement::shard_of(&tenant)),
            // Opened on another node a moment ago: its commit has not reached this node yet.
            None => match shared.store.shard_of_stream(stream?).await {
                Ok(Some(shard)) => (!shared.tenure.acts_for_shard(shard)).then_some(shard),
                Ok(None) => None,
                Err(error) => {
                    tracing::debug!(%error, "cannot look up where a stream was placed");
                    None
                }
            },
        }
    }

    /// Registers an AI agent. It starts inactive: [`activate_ai_agent`](Self::activate_ai_agent)
    /// makes it selectable.
    pub async fn register_ai_agent(&self, profile: AiAgentProfile) -> Result<(), Error> {
        self.agent_command(
            profile.id,
            AiAgentCommand::Register {
                name: profile.name,
                specialties: profile.specialties,
            },
        )
        .await
    }

    /// Makes a registered AI agent selectable for handoffs.
    pub async fn activate_ai_agent(&self, agent_id: AiAgentId) -> Result<(), Error> {
        self.agent_command(agent_id, AiAgentCommand::Activate).await
    }

    /// Makes an AI agent unselectable, and escalates every conversation it holds to humans
    /// before returning. No handoff to it reaches the log after its deactivation.
    pub async fn deactivate_ai_agent(&self, agent_id: AiAgentId) -> Result<(), Error> {
        self.agent_command(agent_id, AiAgentCommand::Deactivate)
            .await
    }

    /// Runs `behavior` as the AI agent `agent_id` in this process: from now on it receives the
    /// conversations handed to the agent, including those it already held (after a restart).
    /// Attaching again replaces the previous behaviour.
    pub fn attach_ai_agent(
        &self,
        agent_id: AiAgentId,
        behavior: Arc<dyn AiAgentBehavior>,
    ) -> Result<(), Error> {
        let runtime = self.runtime();
        let conversations = &runtime.conversations;
        if conversations.roster.read().get(&agent_id).is_none() {
            return Err(Rejection::AiAgentNotRegistered { agent_id }.into());
        }
        let actor_runtime = Arc::clone(runtime);
        let id = agent_id.clone();
        let backlog = Arc::new(AtomicUsize::new(0));
        let actor_backlog = Arc::clone(&backlog);
        let addr = AiAgentActor::start_in_arbiter(runtime.next_worker(), move |_| {
            AiAgentActor::new(id, behavior, actor_runtime, actor_backlog)
        });
        // Publish the actor first, then announce what it already holds: a handoff racing this
        // either sees the actor or is in the index read below (the actor ignores duplicates).
        conversations.agents.attach(
            agent_id.clone(),
            AgentHandle::new(
                addr.clone().recipient(),
                addr.clone().recipient(),
                addr.clone().recipient(),
                backlog,
            ),
        );
        for (conversation_id, epoch) in conversations.assignments.held_by(&agent_id) {
            addr.do_send(Assigned {
                conversation_id,
                assignment: Assignment {
                    agent_id: agent_id.clone(),
                    epoch,
                },
                through: None,
            });
        }
        info!(agent_id = %agent_id, "AI agent attached");
        Ok(())
    }

    /// Every registered AI agent, active or not, sorted by id.
    pub fn ai_agents(&self) -> Vec<AiAgent> {
        self.runtime()
            .conversations
            .roster
            .read()
            .all()
            .cloned()
            .collect()
    }

    /// The active AI agents, optionally only those with `specialty`: the "select the AI agent"
    /// list of the handoff dialog.
    pub fn active_ai_agents(&self, specialty: Option<Specialty>) -> Vec<AiAgent> {
        self.runtime()
            .conversations
            .roster
            .read()
            .active(specialty.as_ref())
            .cloned()
            .collect()
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

    /// Runs the embedder's escalation rules on `command` (where the call happens, so their
    /// verdict travels in the command when it is forwarded), then the command.
    async fn run(
        &self,
        conversation_id: ConversationId,
        command: ConversationCommand,
        command_id: Option<CommandId>,
    ) -> Result<Receipt, Error> {
        let rules = &self.runtime().escalation_rules;
        let command = if rules.is_empty() {
            command
        } else {
            crate::escalation::judge(self, rules, conversation_id, command).await?
        };
        self.run_judged(conversation_id, command, command_id).await
    }

    /// Runs a command whose embedder's rules already ran (or need not): a command forwarded
    /// by another node carries their verdict.
    pub(crate) async fn run_judged(
        &self,
        conversation_id: ConversationId,
        command: ConversationCommand,
        command_id: Option<CommandId>,
    ) -> Result<Receipt, Error> {
        let runtime = self.runtime();
        if let ConversationCommand::HandOffToAi { agent_id, .. }
        | ConversationCommand::HandOffToAiWith { agent_id, .. } = &command
        {
            let active = runtime
                .conversations
                .roster
                .read()
                .get(agent_id)
                .is_some_and(|agent| agent.active);
            // Only for an agent the rules would accept: otherwise the rules say why not.
            if active && runtime.conversations.agents.get(agent_id).is_none() {
                return Err(Error::AiAgentNotRunning(agent_id.clone()));
            }
        }
        let shared = &runtime.conversations;
        if !shared.store.is_shared() {
            return runtime
                .execute(conversation_id, Arc::new(command), command_id)
                .await;
        }
        let tenant = match &command {
            ConversationCommand::Start { tenant, .. } => Some(tenant.clone()),
            ConversationCommand::Open { .. } => Some(handover_core::TenantId::default_tenant()),
            _ => shared.board.lock().tenant_of(&conversation_id),
        };
        // Where the tenant is decided (a shard this node just gained is settled first).
        let foreign = self.foreign_shard(tenant, None).await;
        let Some(forward) = runtime.forward.get() else {
            // A node that forwards nothing (started on a cluster's store directly) runs what
            // it is given; the fence refuses what is not its own.
            return runtime
                .execute(conversation_id, Arc::new(command), command_id)
                .await;
        };
        // On a cluster's node every command carries an id, so that wherever it ends up
        // running, it is recorded once.
        let command_id = command_id.unwrap_or_else(CommandId::new);
        let shard = match foreign {
            Some(shard) => shard,
            None => {
                // Ours, or not known here yet (the follower has not seen the conversation):
                // run it here; the fence names the owner's shard if it is not ours.
                let command = Arc::new(command);
                match runtime
                    .execute(conversation_id, Arc::clone(&command), Some(command_id))
                    .await
                {
                    Err(Error::Store(handover_store::StoreError::NotOwner { shard })) => {
                        return forward_execute(
                            runtime,
                            &**forward,
                            shard,
                            conversation_id,
                            command_id,
                            (*command).clone(),
                        )
                        .await;
                    }
                    other => return other,
                }
            }
        };
        forward_execute(
            runtime,
            &**forward,
            shard,
            conversation_id,
            command_id,
            command,
        )
        .await
    }

    /// Opens a conversation for `customer` on `channel` in the default tenant: given to
    /// `human` if named (registered in the default tenant and not offline), otherwise waiting
    /// in the tenant's general queue for the router or a human to take it. The receipt carries
    /// its new id (a UUID v7). [`start_conversation`](Self::start_conversation) opens one in
    /// any tenant, with a team and a language.
    pub async fn open_conversation(
        &self,
        customer: CustomerId,
        channel: Channel,
        human: Option<HumanId>,
    ) -> Result<Receipt, Error> {
        let id = ConversationId::from_uuid(Uuid::now_v7());
        self.execute(
            id,
            ConversationCommand::Open {
                customer,
                channel,
                human,
            },
        )
        .await
    }

    /// Posts the customer's message. If an AI agent is active and a rule of the escalation
    /// policy escalates on it (the customer asks for a person, complains, sounds frustrated,
    /// goes in circles), or then one of the embedder's [`EscalationRule`](crate::EscalationRule)s
    /// does, the conversation is escalated in the same durable step, recorded with the rule's
    /// name and the policy's version. Built-in rules run first, in the policy's order, then
    /// the embedder's, in registration order; the first that fires decides.
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

    /// Posts a human agent's message: only the human assigned to the conversation may (a
    /// supervisor assigns it to themselves first). Rejected while an AI agent is active:
    /// reclaim first.
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
    /// told as soon as the handoff is durable and starts answering on its own. A rule of the
    /// escalation policy may refuse it ([`Rejection::RefusedByRule`],
    /// [`Rejection::HandoffLoop`]), then one of the embedder's
    /// [`EscalationRule`](crate::EscalationRule)s (built-in rules first, in the policy's order,
    /// then the embedder's, in registration order).
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

    /// Hands the conversation to an AI agent with a context (summary, topic, variables) the
    /// agent reads through [`AiSession::context`](crate::AiSession::context), and, for a
    /// supervisor, past a rule of the escalation policy that refuses it: the override is
    /// recorded as `policy_overridden` with the rule and the policy's version.
    ///
    /// ```no_run
    /// # async fn demo(handover: &handover::Handover, id: handover::ConversationId) -> Result<(), Box<dyn std::error::Error>> {
    /// use handover::{AiAgentId, Context, HandOff, HumanId};
    ///
    /// let context = Context::new(Some("Wants the pro plan".into()), Some("pricing".into()), [("plan", "pro")])?;
    /// handover
    ///     .hand_off_to_ai_with(id, HandOff::new(HumanId::new("ana")?, AiAgentId::new("faq-bot")?).context(context))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn hand_off_to_ai_with(
        &self,
        conversation_id: ConversationId,
        handoff: HandOff,
    ) -> Result<Receipt, Error> {
        self.execute(
            conversation_id,
            ConversationCommand::HandOffToAiWith {
                by: handoff.by,
                agent_id: handoff.agent_id,
                reason: handoff.reason,
                context: handoff.context,
                override_policy: handoff.override_policy,
                refused_by: None,
            },
        )
        .await
    }

    /// Approves a skill the AI agent waits to run (the oldest request of that name): the
    /// human answerable for the conversation, or a supervisor. The agent's
    /// [`run_skill`](crate::AiSession::run_skill) then runs it.
    pub async fn approve_skill(
        &self,
        conversation_id: ConversationId,
        by: HumanId,
        skill: SkillName,
    ) -> Result<Receipt, Error> {
        self.execute(
            conversation_id,
            ConversationCommand::ApproveSkill { by, skill },
        )
        .await
    }

    /// Denies a skill the AI agent waits to run (the oldest request of that name), with a
    /// reason the agent is told.
    pub async fn deny_skill(
        &self,
        conversation_id: ConversationId,
        by: HumanId,
        skill: SkillName,
        reason: Reason,
    ) -> Result<Receipt, Error> {
        self.execute(
            conversation_id,
            ConversationCommand::DenySkill { by, skill, reason },
        )
        .await
    }

    /// Takes the conversation back from its AI agent ("assume conversation"): the human who
    /// handed it off, or a supervisor of its tenant. From the moment this returns, nothing the
    /// AI agent sends is recorded, and its call in flight is cancelled.
    pub async fn reclaim(
        &self,
        conversation_id: ConversationId,
        by: HumanId,
        reason: Option<Reason>,
    ) -> Result<Receipt, Error> {
        self.execute(conversation_id, ConversationCommand::Reclaim { by, reason })
            .await
    }

    /// Closes the conversation as its assigned human or a supervisor; every later command on it
    /// is rejected. (A
    /// customer or the AI agent closes through [`execute`](Self::execute) or
    /// [`crate::AiSession::close`].)
    pub async fn close(
        &self,
        conversation_id: ConversationId,
        by: HumanId,
        reason: Option<Reason>,
    ) -> Result<Receipt, Error> {
        self.execute(
            conversation_id,
            ConversationCommand::Close {
                by: Participant::Human(by),
                reason,
            },
        )
        .await
    }

    /// The conversation as a caller sees it: status, handler, counts, last activity.
    pub async fn conversation(
        &self,
        conversation_id: ConversationId,
    ) -> Result<ConversationView, Error> {
        let runtime = self.runtime();
        let shared = &runtime.conversations;
        if shared.store.is_shared() {
            let tenant = shared.board.lock().tenant_of(&conversation_id);
            if tenant.is_none_or(|tenant| !shared.tenure.acts_for(&tenant)) {
                // Another node decides for it (or this one has not seen it): the view of its
                // stream as the log holds it, without an actor here.
                if let Some(view) =
                    crate::conversation_actor::view_from_log(shared, conversation_id).await?
                {
                    return Ok(view);
                }
            }
        }
        runtime.ask(conversation_id, || GetView).await?
    }

    /// The conversation's events so far, read from the log.
    pub async fn history(
        &self,
        conversation_id: ConversationId,
    ) -> Result<Vec<Arc<RecordedEvent>>, Error> {
        let stream = StreamId::Conversation(conversation_id);
        let records = self
            .runtime()
            .conversations
            .store
            .read_stream(&stream, SeqRange::ALL)
            .await?;
        if records.is_empty() {
            return Err(Error::UnknownConversation(conversation_id));
        }
        Ok(records.into_iter().map(Arc::new).collect())
    }

    /// Watches a conversation live from its first event: its history, then every new event as
    /// soon as it is durable, each exactly once and in order (see [`Watch`]).
    pub async fn watch(&self, conversation_id: ConversationId) -> Result<Watch, Error> {
        self.watch_from(conversation_id, 0).await
    }

    /// Watches a conversation live from the event after `after_seq`: a watcher that was
    /// interrupted carries on where it left off ([`Watch::last_seq`]) instead of starting again
    /// from the first event.
    pub async fn watch_from(
        &self,
        conversation_id: ConversationId,
        after_seq: u64,
    ) -> Result<Watch, Error> {
        Watch::start(Arc::clone(self.runtime()), conversation_id, after_seq).await
    }

    /// How many conversation actors are in memory now (idle ones stop after
    /// [`RuntimeSettings::passivate_after`]).
    pub fn live_conversations(&self) -> usize {
        self.runtime().conversations.live.len()
    }

    /// How long commands took from the call to their durable acknowledgement: percentiles over
    /// every command acknowledged since the runtime started, AI agents' commands included.
    pub fn ack_latency(&self) -> AckLatency {
        self.runtime().ack_latency.summary()
    }

    /// [`ack_latency`](Handover::ack_latency) as a cumulative histogram: for each of `bounds`,
    /// the commands acknowledged within it, with their count and total time, which a metrics
    /// exporter serves as a Prometheus histogram.
    ///
    /// ```no_run
    /// # fn example(handover: &handover::Handover) {
    /// use std::time::Duration;
    /// let histogram = handover.ack_latency_histogram(&[Duration::from_millis(1), Duration::from_millis(10)]);
    /// println!("{} of {} within 10 ms", histogram.within[1].1, histogram.count);
    /// # }
    /// ```
    pub fn ack_latency_histogram(&self, bounds: &[std::time::Duration]) -> AckHistogram {
        self.runtime().ack_latency.cumulative(bounds)
    }

    /// The last global position of the log this process knows of (0 for an empty log; on a
    /// cluster's node, the last its feed has seen). A consumer of
    /// [`read_events`](Handover::read_events) measures how far behind it is against it.
    pub fn log_head(&self) -> u64 {
        self.runtime().conversations.store.head()
    }

    /// The whole log, every tenant's and every stream's events, from global position `from`
    /// (1 for the start), at most `max` of them, in position order: with
    /// [`subscribe_events`](Handover::subscribe_events), what a process-wide consumer (metrics,
    /// an export) follows. Not scoped to a tenant: keep it out of a tenant's reach.
    ///
    /// ```no_run
    /// # async fn example(handover: &handover::Handover) -> Result<(), handover::Error> {
    /// let mut next = 1;
    /// loop {
    ///     let page = handover.read_events(next, 1024).await?;
    ///     let Some(last) = page.last() else { break };
    ///     next = last.position + 1;
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read_events(&self, from: u64, max: usize) -> Result<Vec<RecordedEvent>, Error> {
        Ok(self
            .runtime()
            .conversations
            .store
            .read_all(from, max)
            .await?)
    }

    /// Every event recorded from now on, once durable, in position order, across every tenant.
    /// A receiver that falls too far behind gets `Lagged` and reads the gap with
    /// [`read_events`](Handover::read_events); one that subscribes before reading misses
    /// nothing.
    pub fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<Arc<RecordedEvent>> {
        self.runtime().conversations.store.subscribe()
    }

    /// What the store has done since it was opened: appends, events, group writes and syncs,
    /// the figures behind the cost of durability.
    pub fn store_stats(&self) -> StoreStats {
        self.runtime().conversations.store.stats()
    }

    /// `tenant`'s conversations the query admits, from memory (no read of the log): the ones
    /// waiting for a human first, longest wait first, then the others, latest activity first.
    /// Open conversations and those closed within [`crate::CLOSED_RECENTLY`]; on several nodes,
    /// every node lists every conversation. Humans' presence and load:
    /// [`Handover::humans`].
    ///
    /// ```no_run
    /// # async fn example(handover: &handover::Handover) {
    /// use handover::{LiveQuery, LiveStatus, TenantId};
    /// let tenant = TenantId::new("acme").unwrap();
    /// for waiting in handover.list_conversations(&tenant, &LiveQuery::new().status(LiveStatus::AwaitingHuman)) {
    ///     println!("{} has waited {:?}", waiting.id, waiting.wait);
    /// }
    /// # }
    /// ```
    pub fn list_conversations(
        &self,
        tenant: &handover_core::TenantId,
        query: &LiveQuery,
    ) -> Vec<LiveConversation> {
        let shared = &self.runtime().conversations;
        let now = shared.clock.now();
        let directory = shared.directory.read();
        shared.listing.list(tenant, query, now, |human| {
            directory.get(human).map(|h| h.profile.name.clone())
        })
    }

    /// `tenant`'s conversations counted by status, and its queues with their depth and longest
    /// wait, from memory.
    pub fn conversation_counts(&self, tenant: &handover_core::TenantId) -> LiveCounts {
        let shared = &self.runtime().conversations;
        shared.listing.counts(tenant, shared.clock.now())
    }

    /// A counter that moves whenever a conversation's line in [`Handover::list_conversations`]
    /// changes: a console waits on it (`changed().await`) to refresh its list.
    pub fn listing_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.runtime().conversations.listing.changes()
    }
}

/// A handoff to an AI agent with what it carries: see [`Handover::hand_off_to_ai_with`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HandOff {
    /// The human handing it off.
    pub by: HumanId,
    /// The AI agent.
    pub agent_id: AiAgentId,
    /// Why, if they say.
    pub reason: Option<Reason>,
    /// What the agent should know.
    pub context: Option<Context>,
    /// Hand it off even if a rule of the policy refuses (supervisors only; recorded).
    pub override_policy: bool,
}

impl HandOff {
    /// A handoff by `by` to `agent_id`, with no reason, no context, no override.
    pub fn new(by: HumanId, agent_id: AiAgentId) -> HandOff {
        HandOff {
            by,
            agent_id,
            reason: None,
            context: None,
            override_policy: false,
        }
    }

    /// With a reason.
    pub fn reason(mut self, reason: Reason) -> HandOff {
        self.reason = Some(reason);
        self
    }

    /// With a context.
    pub fn context(mut self, context: Context) -> HandOff {
        self.context = Some(context);
        self
    }

    /// Overriding a rule that refuses it (a supervisor's decision, recorded).
    pub fn override_policy(mut self) -> HandOff {
        self.override_policy = true;
        self
    }
}
