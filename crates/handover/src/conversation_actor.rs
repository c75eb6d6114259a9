//! The conversation actor: one per live conversation, the single writer of its stream.
//!
//! It is rebuilt from its stream when it starts, and handles one command at a time to the end
//! (an [`AtomicResponse`]): decide on the current state, append, wait until the append is
//! durable, evolve, reply, then tell watchers and the AI agent. A rejected command replies at
//! once and records nothing. A store failure leaves the outcome unknown, so the actor stops;
//! the next command rebuilds it from the log.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use handover_core::{
    conversation, Assignment, Author, CommandId, Conversation, ConversationCommand,
    ConversationEvent, ConversationId, Ctx, Event, Loads, NoteAudience, Participant, Policy,
    Rejection, Settings, StreamId, Timestamp,
};
use handover_store::{EventStore, ExpectedVersion, RecordedEvent, SeqRange, StoreError};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn, Instrument};

use crate::actor_map::ActorMap;
use crate::agents::Agents;
use crate::assignments::Assignments;
use crate::board::Board;
use crate::clock::Clock;
use crate::dispatch::Dispatch;
use crate::error::Error;
use crate::gate::{load_target, AgentGates, HumanGates, Pass};
use crate::humans::SharedDirectory;
use crate::messages::{AddWatcher, Assigned, Delivered, Execute, GetView, Retire, Unassigned};
use crate::reply::Reply;
use crate::roster::SharedRoster;
use crate::router::Router;
use crate::timers::Timers;
use crate::view::{Activity, ConversationView, Receipt};

/// Most live events a watcher may have unread before it is dropped as lagging (it then
/// resumes from the log by itself).
pub(crate) const WATCHER_BACKLOG_EVENTS_MAX: usize = 4096;

/// Mailbox of one conversation actor; senders wait beyond it, within the in-flight bound.
const MAILBOX_CAPACITY: usize = 256;

/// What every conversation actor of one runtime shares.
pub(crate) struct Conversations {
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) policy: Arc<dyn Policy>,
    pub(crate) roster: SharedRoster,
    pub(crate) agents: Agents,
    pub(crate) assignments: Assignments,
    pub(crate) gates: AgentGates,
    /// Orders the commands that give a human a conversation (see `gate`).
    pub(crate) human_gates: HumanGates,
    pub(crate) live: ActorMap<ConversationId, ConversationActor>,
    /// Which tenants this runtime decides for (all of them, unless the log is shared).
    pub(crate) tenure: crate::tenure::Tenure,
    pub(crate) passivate_after: Option<Duration>,
    pub(crate) ai_agent_backlog_max: usize,
    /// The humans `decide` checks authority against.
    pub(crate) directory: SharedDirectory,
    /// Every open conversation's controller, the humans' loads, the queues.
    pub(crate) board: Board,
    /// What the live queries read: every conversation's controller, wait and latest message.
    pub(crate) listing: crate::listing::Listing,
    /// Every open conversation's next deadline.
    pub(crate) timers: Timers,
    /// Asks for a tenant's queues to be routed.
    pub(crate) dispatch: Dispatch,
    /// Who receives a waiting conversation.
    pub(crate) router: Arc<dyn Router>,
    /// Thresholds, deadlines and notice texts.
    pub(crate) settings: Arc<Settings>,
    /// The runtime's time.
    pub(crate) clock: Arc<dyn Clock>,
}

impl Conversations {
    /// Brings the board and the queues in line with `id`'s new state.
    pub(crate) fn track(&self, id: ConversationId, state: &Conversation) {
        let change = self.board.lock().update(id, state);
        if change.started_waiting || change.freed.is_some() {
            if let Some(tenant) = state.tenant() {
                self.dispatch.request(tenant.clone());
            }
        }
    }
}

struct Watcher {
    sender: mpsc::Sender<Arc<RecordedEvent>>,
    lagged: Arc<std::sync::atomic::AtomicBool>,
}

pub(crate) struct ConversationActor {
    id: ConversationId,
    stream: StreamId,
    shared: Arc<Conversations>,
    state: Conversation,
    activity: Activity,
    watchers: Vec<Watcher>,
    /// Why the state cannot be trusted, if it cannot: every message gets this error and the
    /// actor stops, so the next command rebuilds it from the log. Boxed: almost always empty,
    /// and every live conversation carries the field.
    failure: Option<Box<StoreError>>,
    /// When the actor last handled a message, for passivation.
    last_active: Instant,
    /// The deadline armed for this conversation, so an unchanged one costs no lock.
    armed: Option<Timestamp>,
}

/// What the board keeps of a conversation: when it is unchanged, the board is not touched.
fn controller(
    state: &Conversation,
) -> Option<(&handover_core::Handler, &Option<handover_core::HumanId>)> {
    match state {
        Conversation::Open(open) => Some((&open.handler, &open.handed_off_by)),
        _ => None,
    }
}

/// Folds a stream read from the store; an event that breaks the rules is damage.
fn fold_stream(records: &[RecordedEvent]) -> Result<(Conversation, Activity), StoreError> {
    let mut activity = Activity::default();
    let state = records
        .iter()
        .try_fold(Conversation::NotOpened, |state, record| {
            activity.record(record);
            evolve_record(state, record)
        })?;
    Ok((state, activity))
}

/// Applies a stored record to a conversation, with the time it was recorded at (the time of a
/// customer's message starts the AI reply deadline).
pub(crate) fn evolve_record(
    state: Conversation,
    record: &RecordedEvent,
) -> Result<Conversation, StoreError> {
    let at = Some(Timestamp(record.recorded_at.0));
    conversation::evolve_stored_at(state, &record.event, at)
        .map_err(|rejection| StoreError::breaks_rules(record, rejection))
}

/// Whether `record` is withheld from the AI agent `agent`: what it wrote itself is not sent
/// back to it, and notes meant for staff only are not sent to it.
fn written_by(record: &RecordedEvent, agent: &handover_core::AiAgentId) -> bool {
    match &record.event {
        Event::Conversation(ConversationEvent::MessagePosted {
            author: Author::Ai(author),
            ..
        }) => author == agent,
        Event::Conversation(
            ConversationEvent::AiActionRecorded { agent_id, .. }
            | ConversationEvent::AiSkillStarted { agent_id, .. }
            | ConversationEvent::SkillApprovalRequested { agent_id, .. }
            | ConversationEvent::AiCouldNotAnswer { agent_id, .. },
        ) => agent_id == agent,
        // A note for staff is not the AI agent's to read.
        Event::Conversation(ConversationEvent::InternalNote {
            to: NoteAudience::Staff,
            ..
        }) => true,
        _ => false,
    }
}

/// A command's outcome: known now, or once its append is durable.
enum Outcome {
    Now(Result<Receipt, Error>),
    Later(ResponseActFuture<ConversationActor, Result<Receipt, Error>>),
}

impl ConversationActor {
    pub(crate) fn new(id: ConversationId, shared: Arc<Conversations>) -> ConversationActor {
        ConversationActor {
            id,
            stream: StreamId::Conversation(id),
            shared,
            state: Conversation::NotOpened,
            activity: Activity::default(),
            watchers: Vec::new(),
            failure: None,
            last_active: Instant::now(),
            armed: None,
        }
    }

    fn version(&self) -> u64 {
        self.activity.events
    }

    fn passivate_if_idle(&mut self, idle: Duration, ctx: &mut Context<Self>) {
        // A watcher that was dropped without a word keeps nothing alive.
        self.watchers.retain(|watcher| !watcher.sender.is_closed());
        if self.watchers.is_empty() && self.last_active.elapsed() >= idle {
            debug!(conversation_id = %self.id, "idle conversation passivated");
            ctx.stop();
        }
    }

    /// Refuses to show a state that cannot be trusted or does not exist; the actor then stops,
    /// so it is not kept in memory for nothing.
    fn check_readable(&mut self, ctx: &mut Context<Self>) -> Result<(), Error> {
        self.check_trusted(ctx)?;
        if self.state == Conversation::NotOpened {
            ctx.stop();
            return Err(Error::UnknownConversation(self.id));
        }
        Ok(())
    }

    /// Refuses every message once a store failure left the state untrusted; the actor stops,
    /// so the next message rebuilds it from the log.
    fn check_trusted(&mut self, ctx: &mut Context<Self>) -> Result<(), Error> {
        match &self.failure {
            Some(failure) => {
                let error = Error::Store((**failure).clone());
                ctx.stop();
                Err(error)
            }
            None => Ok(()),
        }
    }

    fn fail(&mut self, error: StoreError, ctx: &mut Context<Self>) -> Error {
        error!(conversation_id = %self.id, %error, "conversation actor stops; it will be rebuilt from the log");
        let reply = Error::Store(error.clone());
        self.failure = Some(Box::new(error));
        ctx.stop();
        reply
    }

    fn receipt(&self, events: Vec<Arc<RecordedEvent>>) -> Receipt {
        Receipt {
            conversation_id: self.id,
            events,
            status: self.state.status(),
        }
    }

    /// Takes on the state `decide` folded the command's events to, now that they are durable,
    /// and tells whoever needs to know.
    fn commit(&mut self, records: Vec<Arc<RecordedEvent>>, next: Conversation) -> Receipt {
        let before = self.state.assignment();
        let previous = std::mem::replace(&mut self.state, next);
        if controller(&previous) != controller(&self.state) {
            self.shared.track(self.id, &self.state);
        }
        self.arm_deadline();
        for record in &records {
            self.activity.record(record);
        }
        self.shared
            .listing
            .observe(self.id, &self.state, records.iter().map(|r| &**r));
        self.notify_watchers(&records);
        self.notify_agents(before, &records);
        self.receipt(records)
    }

    /// Arms the conversation's next deadline, if it changed.
    /// Whether this runtime decides for the conversation's tenant (a conversation not opened
    /// yet belongs to the tenant its opening names, which the facade routed by).
    fn acting(&self) -> bool {
        self.state
            .tenant()
            .is_none_or(|tenant| self.shared.tenure.acts_for(tenant))
    }

    /// Refuses a command for a tenant another node decides for, before the rules judge it on
    /// this node's read models of that tenant, which trail the owner's; the facade forwards it
    /// to the shard the error names. The actor stops: it is not kept for a tenant not ours.
    fn check_acting(&mut self, ctx: &mut Context<Self>) -> Result<(), Error> {
        match self.state.tenant() {
            Some(tenant) if !self.shared.tenure.acts_for(tenant) => {
                let shard = handover_core::placement::shard_of(tenant);
                ctx.stop();
                Err(Error::Store(StoreError::NotOwner { shard }))
            }
            _ => Ok(()),
        }
    }

    fn arm_deadline(&mut self) {
        // Another node times the tenants it decides for.
        let next = if self.acting() {
            conversation::next_deadline(&self.state, &self.shared.settings)
        } else {
            None
        };
        if next != self.armed {
            self.armed = next;
            self.shared.timers.arm(self.id, next);
        }
    }

    fn notify_watchers(&mut self, records: &[Arc<RecordedEvent>]) {
        self.watchers.retain(|watcher| {
            for record in records {
                if let Err(error) = watcher.sender.try_send(Arc::clone(record)) {
                    if matches!(error, mpsc::error::TrySendError::Full(_)) {
                        watcher.lagged.store(true, Ordering::Release);
                    }
                    return false;
                }
            }
            true
        });
    }

    /// Keeps the AI agent's subscription in step with the assignment: subscribe at a handoff,
    /// unsubscribe at a reclaim, escalation or close, and deliver what others write in
    /// between.
    fn notify_agents(&mut self, before: Option<Assignment>, records: &[Arc<RecordedEvent>]) {
        let after = self.state.assignment();
        let shared = &self.shared;
        if before == after {
            if let Some(current) = &after {
                if let Some(agent) = shared.agents.get(&current.agent_id) {
                    for record in records {
                        if !written_by(record, &current.agent_id) {
                            agent.deliver(Delivered {
                                conversation_id: self.id,
                                epoch: current.epoch,
                                record: Arc::clone(record),
                            });
                        }
                    }
                }
            }
            return;
        }
        if let Some(ended) = before {
            shared.assignments.ended(&ended.agent_id, self.id);
            if let Some(agent) = shared.agents.get(&ended.agent_id) {
                agent.unassigned.do_send(Unassigned {
                    conversation_id: self.id,
                    epoch: ended.epoch,
                });
            }
        }
        if let Some(started) = after {
            shared
                .assignments
                .started(&started.agent_id, self.id, started.epoch);
            if let Some(agent) = shared.agents.get(&started.agent_id) {
                agent.assigned.do_send(Assigned {
                    conversation_id: self.id,
                    assignment: started,
                    through: records.last().map(|record| record.seq),
                });
            }
        }
    }

    /// Decides `msg` on the current state and, if accepted, appends its events. `pass` holds
    /// the chosen agent's gate for a handoff until the handoff is durable and indexed, or the
    /// gate of the human the command gives the conversation to until it is on the board.
    fn decide_and_append(
        &mut self,
        msg: Execute,
        pass: Option<Pass>,
        ctx: &mut Context<Self>,
    ) -> Outcome {
        let command = &*msg.command;
        let agent_id = match command {
            ConversationCommand::HandOffToAi { agent_id, .. }
            | ConversationCommand::HandOffToAiWith { agent_id, .. } => Some(agent_id.clone()),
            ConversationCommand::RecordAiAction { by, .. }
            | ConversationCommand::Escalate { by, .. }
            | ConversationCommand::EscalateWith { by, .. }
            | ConversationCommand::ReportCouldNotAnswer { by, .. }
            | ConversationCommand::StartSkill { by, .. }
            | ConversationCommand::PostMessage {
                by: Participant::Ai(by),
                ..
            }
            | ConversationCommand::Close {
                by: Participant::Ai(by),
                ..
            } => Some(by.agent_id.clone()),
            _ => self.state.assignment().map(|a| a.agent_id),
        };
        let span = tracing::info_span!(
            "conversation_command",
            conversation_id = %self.id,
            command = command.name(),
            agent_id = agent_id.as_ref().map_or("", |a| a.as_str()),
        );
        let decided = {
            let shared = &*self.shared;
            let roster = shared.roster.read();
            let directory = shared.directory.read();
            // Only giving a conversation to a human reads the loads: the board is locked for
            // those commands alone.
            let board = matches!(
                command,
                ConversationCommand::Assign { .. } | ConversationCommand::Accept { .. }
            )
            .then(|| shared.board.lock());
            static NO_LOADS: Loads = Loads::new();
            let loads = board.as_ref().map_or(&NO_LOADS, |board| &board.loads);
            let decide_ctx = Ctx::new(&roster, &*shared.policy)
                .with_directory(&directory)
                .with_loads(loads)
                .with_settings(&shared.settings)
                .at(shared.clock.now());
            conversation::decide_with_state(&self.state, command, &decide_ctx)
        };
        let (events, next) = match decided {
            Ok(decided) => decided,
            Err(Rejection::NotOpened) => {
                // Nothing to keep in memory for a conversation that does not exist. (One of
                // another tenant reads as not existing too, but stays: it has its watchers.)
                if self.state == Conversation::NotOpened {
                    ctx.stop();
                }
                return Outcome::Now(Err(Error::UnknownConversation(self.id)));
            }
            Err(rejection) => {
                match &rejection {
                    // A rule's refusal is a decision of the policy: kept in the operator's log
                    // with the rule and the policy's version (nothing is recorded in the event
                    // log for a refused command).
                    Rejection::RefusedByRule {
                        rule,
                        policy_version,
                        ..
                    }
                    | Rejection::HandoffLoop {
                        rule,
                        policy_version,
                        ..
                    } => span.in_scope(|| {
                        info!(%rule, %policy_version, %rejection, "handoff refused by the policy")
                    }),
                    _ => span.in_scope(|| debug!(%rejection, "command rejected")),
                }
                return match msg.command_id {
                    None => Outcome::Now(Err(Error::Rejected(rejection))),
                    Some(command_id) => Outcome::Later(self.recorded_before(command_id, rejection)),
                };
            }
        };
        if events.is_empty() {
            // A tick with nothing due: nothing to record. The timer that sent it was disarmed
            // when it fired: arm the next deadline again.
            self.armed = None;
            self.arm_deadline();
            return Outcome::Now(Ok(self.receipt(Vec::new())));
        }
        let events: Vec<Event> = events.into_iter().map(Event::Conversation).collect();
        let expected = match self.version() {
            0 => ExpectedVersion::NoStream,
            v => ExpectedVersion::Exact(v),
        };
        let store = Arc::clone(&self.shared.store);
        let stream = self.stream.clone();
        let command_id = msg.command_id;
        let append = async move {
            match command_id {
                Some(command_id) => {
                    store
                        .append_once(&stream, expected, command_id, events)
                        .await
                }
                None => store.append(&stream, expected, events).await,
            }
        }
        .instrument(span.clone());
        Outcome::Later(Box::pin(append.into_actor(self).map(
            move |result, act, ctx| {
                let _entered = span.enter();
                let outcome = match result {
                    Ok(Ok(records)) if records.first().is_some_and(|r| r.seq <= act.version()) => {
                        // A retry answered with what its first attempt recorded: the state
                        // holds those events already.
                        debug!(events = records.len(), "command was recorded before");
                        Ok(act.receipt(records))
                    }
                    Ok(Ok(records)) => {
                        debug!(events = records.len(), "command recorded");
                        Ok(act.commit(records, next))
                    }
                    Ok(Err(conflict)) => {
                        warn!(%conflict, "another writer appended to this conversation");
                        act.fail(
                            StoreError::Engine(format!("concurrent append: {conflict}")),
                            ctx,
                        );
                        Err(Error::Concurrency)
                    }
                    // Refused before it was queued: nothing was written, the state holds.
                    Err(StoreError::Overloaded) => Err(Error::Overloaded),
                    Err(error) => Err(act.fail(error, ctx)),
                };
                // The handoff is durable and indexed, the human's new load on the board (or the
                // command refused): the commands waiting at the gate may go on.
                drop(pass);
                outcome
            },
        )))
    }

    /// A retry of a command already recorded is refused by the state it led to: answers it
    /// with what it recorded, if it was.
    fn recorded_before(
        &mut self,
        command_id: CommandId,
        rejection: Rejection,
    ) -> ResponseActFuture<Self, Result<Receipt, Error>> {
        let store = Arc::clone(&self.shared.store);
        let stream = self.stream.clone();
        let lookup = async move { store.command_outcome(&stream, command_id).await };
        Box::pin(
            lookup
                .into_actor(self)
                .map(move |result, act, ctx| match result {
                    Ok(Some(records)) => Ok(act.receipt(records)),
                    Ok(None) => Err(Error::Rejected(rejection)),
                    Err(StoreError::Overloaded) => Err(Error::Overloaded),
                    Err(error) => Err(act.fail(error, ctx)),
                }),
        )
    }
}

impl Actor for ConversationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        if let Some(idle) = self.shared.passivate_after {
            // Checked at a fraction of the idle time, so an actor lives at most 1.25 times it.
            let every = (idle / 4).max(Duration::from_millis(1));
            ctx.run_interval(every, move |act, ctx| act.passivate_if_idle(idle, ctx));
        }
        let store = Arc::clone(&self.shared.store);
        let stream = self.stream.clone();
        // `wait` holds every message until the state is rebuilt.
        ctx.wait(
            async move {
                let records = store.read_stream(&stream, SeqRange::ALL).await?;
                fold_stream(&records)
            }
            .into_actor(self)
            .map(|result, act, _ctx| match result {
                Ok((state, activity)) => {
                    debug!(conversation_id = %act.id, version = activity.events, "conversation rebuilt from its stream");
                    act.state = state;
                    act.activity = activity;
                    // The follower keeps the board for the tenants other nodes decide for.
                    if act.acting() {
                        act.shared.track(act.id, &act.state);
                    }
                    act.arm_deadline();
                }
                Err(error) => {
                    error!(conversation_id = %act.id, %error, "cannot rebuild conversation");
                    act.failure = Some(Box::new(error));
                }
            }),
        );
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        self.shared.live.forget(&self.id, &ctx.address());
    }
}

impl Handler<Execute> for ConversationActor {
    type Result = Reply<Self, Result<Receipt, Error>>;

    fn handle(&mut self, msg: Execute, ctx: &mut Context<Self>) -> Self::Result {
        self.last_active = Instant::now();
        if let Err(error) = self
            .check_trusted(ctx)
            .and_then(|()| self.check_acting(ctx))
        {
            return Reply::Now(Err(error));
        }
        let command = &*msg.command;
        if let (
            ConversationCommand::PostMessage {
                by: Participant::Customer(_),
                ..
            },
            Some(assignment),
        ) = (command, self.state.assignment())
        {
            // The agent would get this message after everything it has not started on.
            if self
                .shared
                .agents
                .overloaded(&assignment.agent_id, self.shared.ai_agent_backlog_max)
            {
                return Reply::Now(Err(Error::Overloaded));
            }
        }
        // Only a registered agent or human has a gate; the rules refuse the others.
        let gated = match command {
            ConversationCommand::HandOffToAi { agent_id, .. }
            | ConversationCommand::HandOffToAiWith { agent_id, .. }
                if self.state != Conversation::NotOpened
                    && self.shared.roster.read().get(agent_id).is_some() =>
            {
                Some(Gate::Agent(agent_id.clone()))
            }
            _ => load_target(command)
                .filter(|human| self.shared.directory.read().get(human).is_some())
                .map(|human| Gate::Human(human.clone())),
        };
        let outcome = match gated {
            None => self.decide_and_append(msg, None, ctx),
            Some(gate) => {
                // Wait out a deactivation of the agent, or the commands giving the human a
                // conversation, under way; then decide on what they left (see `gate`).
                let shared = Arc::clone(&self.shared);
                let enter = async move {
                    match gate {
                        Gate::Agent(agent_id) => {
                            Pass::Handoff(shared.gates.enter_handoff(&agent_id).await)
                        }
                        Gate::Human(human) => Pass::Load(shared.human_gates.enter(&human).await),
                    }
                };
                Outcome::Later(Box::pin(enter.into_actor(self).then(
                    move |pass, act, ctx| match act.decide_and_append(msg, Some(pass), ctx) {
                        Outcome::Now(result) => {
                            Box::pin(fut::ready(result)) as ResponseActFuture<Self, _>
                        }
                        Outcome::Later(later) => later,
                    },
                )))
            }
        };
        match outcome {
            Outcome::Now(result) => Reply::Now(result),
            Outcome::Later(later) => Reply::Atomic(AtomicResponse::new(later)),
        }
    }
}

/// The gate a command waits at before it is decided.
enum Gate {
    Agent(handover_core::AiAgentId),
    Human(handover_core::HumanId),
}

impl Handler<Retire> for ConversationActor {
    type Result = ();

    fn handle(&mut self, _: Retire, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<GetView> for ConversationActor {
    type Result = Result<ConversationView, Error>;

    fn handle(&mut self, _: GetView, ctx: &mut Context<Self>) -> Self::Result {
        self.last_active = Instant::now();
        self.check_readable(ctx)?;
        view_of(&self.shared, self.id, &self.state, &self.activity)
    }
}

/// The caller's view of a conversation's state.
fn view_of(
    shared: &Conversations,
    id: ConversationId,
    state: &Conversation,
    activity: &Activity,
) -> Result<ConversationView, Error> {
    let mut view = activity
        .view(id, state)
        .ok_or(Error::UnknownConversation(id))?;
    if let (None, Some(human)) = (&view.assigned_human_name, &view.assigned_human) {
        // Reclaimed: the name is the directory's.
        view.assigned_human_name = shared
            .directory
            .read()
            .get(human)
            .map(|h| h.profile.name.clone());
    }
    Ok(view)
}

/// The view of a conversation another node decides for, folded from its stream as the log
/// holds it; `None` when this node decides for it after all (its actor answers then).
pub(crate) async fn view_from_log(
    shared: &Conversations,
    id: ConversationId,
) -> Result<Option<ConversationView>, Error> {
    let records = shared
        .store
        .read_stream(&StreamId::Conversation(id), SeqRange::ALL)
        .await?;
    let (state, activity) = fold_stream(&records)?;
    if state
        .tenant()
        .is_some_and(|tenant| shared.tenure.acts_for(tenant))
    {
        return Ok(None);
    }
    view_of(shared, id, &state, &activity).map(Some)
}

impl Handler<AddWatcher> for ConversationActor {
    type Result = Result<u64, Error>;

    fn handle(&mut self, msg: AddWatcher, ctx: &mut Context<Self>) -> Self::Result {
        self.last_active = Instant::now();
        self.check_readable(ctx)?;
        // The watcher reads the log up to this version itself; everything after reaches it
        // through the channel. The actor handles one message at a time, so no event falls
        // between the two and none is in both.
        self.watchers.push(Watcher {
            sender: msg.sender,
            lagged: msg.lagged,
        });
        Ok(self.version())
    }
}
