//! The conversation actor: one per live conversation, the single writer of its stream.
//!
//! It is rebuilt from its stream when it starts, and handles one command at a time to the end
//! (an [`AtomicResponse`]): decide on the current state, append, wait until the append is
//! durable, evolve, reply, then tell watchers and the AI agent. A rejected command replies at
//! once and records nothing. A store failure leaves the outcome unknown, so the actor stops;
//! the next command rebuilds it from the log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use handover_core::{
    conversation, Assignment, CommandId, Conversation, ConversationCommand, ConversationEvent,
    ConversationId, Ctx, Event, Participant, Rejection, Status, StreamId,
};
use handover_store::{ExpectedVersion, RecordedEvent, SeqRange, StoreError};
use tokio::sync::mpsc;
use tracing::{debug, error, warn, Instrument};

use crate::agent_actor::{Assigned, Delivered, Unassigned};
use crate::reply::Reply;
use crate::roster_actor::deactivation_escalation;
use crate::shared::{lock, Shared};
use crate::Error;

/// Most live events a watcher may have unread before it is dropped as lagging.
pub(crate) const WATCHER_BACKLOG_EVENTS_MAX: usize = 4096;

/// The durable outcome of an accepted command.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The events the command recorded, as stored (with position, seq and time).
    pub events: Vec<Arc<RecordedEvent>>,
    /// The conversation's status after them.
    pub status: Status,
}

/// A conversation's current state, as its actor holds it.
#[derive(Debug, Clone)]
pub struct ConversationView {
    /// The conversation.
    pub id: ConversationId,
    /// The fold of its events.
    pub state: Conversation,
    /// How many events its stream holds.
    pub version: u64,
}

impl ConversationView {
    /// What the conversation header shows: human-handled, AI-active (with the agent), ...
    pub fn status(&self) -> Status {
        self.state.status()
    }
}

#[derive(Message)]
#[rtype(result = "Result<Receipt, Error>")]
pub(crate) struct Execute {
    pub(crate) command: Arc<ConversationCommand>,
    /// Set when the caller may retry: a retry is answered with what the first attempt
    /// recorded instead of being decided again.
    pub(crate) command_id: Option<CommandId>,
}

#[derive(Message)]
#[rtype(result = "Result<ConversationView, Error>")]
pub(crate) struct GetView;

/// Registers a watcher; the reply is the version up to which it must read the log itself.
#[derive(Message)]
#[rtype(result = "Result<u64, Error>")]
pub(crate) struct AddWatcher {
    pub(crate) sender: mpsc::Sender<Arc<RecordedEvent>>,
    pub(crate) lagged: Arc<AtomicBool>,
}

struct Watcher {
    sender: mpsc::Sender<Arc<RecordedEvent>>,
    lagged: Arc<AtomicBool>,
}

pub(crate) struct ConversationActor {
    id: ConversationId,
    stream: StreamId,
    shared: Arc<Shared>,
    state: Conversation,
    version: u64,
    watchers: Vec<Watcher>,
    /// Why the state cannot be trusted, if it cannot: every message gets this error and the
    /// actor stops, so the next command rebuilds it from the log. Boxed: almost always empty,
    /// and every live conversation carries the field.
    failure: Option<Box<StoreError>>,
    /// When the actor last handled a message, for passivation.
    last_active: Instant,
}

/// Folds a stream read from the store; an event that breaks the rules is damage.
fn fold_stream(records: &[RecordedEvent]) -> Result<Conversation, StoreError> {
    records
        .iter()
        .try_fold(Conversation::NotOpened, |state, record| {
            conversation::evolve_stored(state, &record.event)
                .map_err(|rejection| StoreError::breaks_rules(record, rejection))
        })
}

impl ConversationActor {
    pub(crate) fn new(id: ConversationId, shared: Arc<Shared>) -> ConversationActor {
        ConversationActor {
            id,
            stream: StreamId::Conversation(id),
            shared,
            state: Conversation::NotOpened,
            version: 0,
            watchers: Vec::new(),
            failure: None,
            last_active: Instant::now(),
        }
    }

    /// Stops the actor if it has been idle for `idle` and nobody watches it: its state is in
    /// the log, and the next command or watcher rebuilds it. A command in progress holds the
    /// actor (it waits for the append), so this never runs in the middle of one.
    fn passivate_if_idle(&mut self, idle: Duration, ctx: &mut Context<Self>) {
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

    /// Applies durable records to the state and tells whoever needs to know.
    /// Takes on the state `decide` folded the command's events to, now that they are durable,
    /// and tells whoever needs to know.
    fn commit(
        &mut self,
        records: Vec<Arc<RecordedEvent>>,
        next: Conversation,
        ctx: &mut Context<Self>,
    ) -> Receipt {
        let before = self.state.assignment();
        self.state = next;
        if let Some(last) = records.last() {
            self.version = last.seq;
        }
        self.notify_watchers(&records);
        self.notify_agents(before, &records, ctx);
        Receipt {
            events: records,
            status: self.state.status(),
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
    /// unsubscribe at a reclaim, escalation or close, and deliver events in between.
    fn notify_agents(
        &mut self,
        before: Option<Assignment>,
        records: &[Arc<RecordedEvent>],
        ctx: &mut Context<Self>,
    ) {
        let after = self.state.assignment();
        if before == after {
            if let Some(current) = &after {
                if let Some(agent) = self.shared.agent(&current.agent_id) {
                    for record in records {
                        agent.deliver(Delivered {
                            conversation_id: self.id,
                            epoch: current.epoch,
                            record: Arc::clone(record),
                        });
                    }
                }
            }
            return;
        }
        if let Some(ended) = before {
            if let Some(held) = lock(&self.shared.assignments).get_mut(&ended.agent_id) {
                held.remove(&self.id);
            }
            if let Some(agent) = self.shared.agent(&ended.agent_id) {
                agent.addr.do_send(Unassigned {
                    conversation_id: self.id,
                    epoch: ended.epoch,
                });
            }
        }
        if let Some(started) = after {
            let handoff_seq = records
                .iter()
                .rev()
                .find(|r| {
                    matches!(
                        r.event,
                        Event::Conversation(ConversationEvent::HandedOffToAi { .. })
                    )
                })
                .map_or(self.version, |r| r.seq);
            lock(&self.shared.assignments)
                .entry(started.agent_id.clone())
                .or_default()
                .insert(self.id, (started.epoch, handoff_seq));
            if let Some(agent) = self.shared.agent(&started.agent_id) {
                agent.addr.do_send(Assigned {
                    conversation_id: self.id,
                    assignment: started.clone(),
                });
            }
            // The roster actor deactivates first and then escalates what the assignment map
            // holds; we record the assignment first and then read the roster. Whichever runs
            // second sees the other's write, so a handoff racing a deactivation is escalated.
            let still_active = self
                .shared
                .roster()
                .get(&started.agent_id)
                .is_some_and(|agent| agent.active);
            if !still_active {
                // Through the mailbox, not `ctx.notify`: actix runs a notified message as a
                // context item, and an item can start while a command that the mailbox just
                // handed over is still registering its append, so two appends of this
                // conversation would be in flight at once (found by the race simulation as a
                // version conflict). The mailbox hands over nothing while a command waits.
                ctx.address().do_send(Execute {
                    command: Arc::new(deactivation_escalation(started)),
                    command_id: None,
                });
            }
        }
    }
}

impl Actor for ConversationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(256);
        if let Some(idle) = self.shared.limits.passivate_after {
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
                let state = fold_stream(&records)?;
                Ok::<_, StoreError>((state, records.last().map_or(0, |r| r.seq)))
            }
            .into_actor(self)
            .map(|result, act, _ctx| match result {
                Ok((state, version)) => {
                    debug!(conversation_id = %act.id, version, "conversation rebuilt from its stream");
                    act.state = state;
                    act.version = version;
                }
                Err(error) => {
                    error!(conversation_id = %act.id, %error, "cannot rebuild conversation");
                    act.failure = Some(Box::new(error));
                }
            }),
        );
    }

    fn stopped(&mut self, ctx: &mut Context<Self>) {
        self.shared.forget_conversation(self.id, &ctx.address());
    }
}

impl Handler<Execute> for ConversationActor {
    type Result = Reply<Self, Result<Receipt, Error>>;

    fn handle(&mut self, msg: Execute, ctx: &mut Context<Self>) -> Self::Result {
        let ready = Reply::Now;
        self.last_active = Instant::now();
        if let Err(error) = self.check_trusted(ctx) {
            return ready(Err(error));
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
            if self.shared.agent_overloaded(&assignment.agent_id) {
                return ready(Err(Error::Overloaded));
            }
        }
        let agent_id = match command {
            ConversationCommand::HandOffToAi { agent_id, .. } => Some(agent_id.clone()),
            ConversationCommand::RecordAiAction { by, .. }
            | ConversationCommand::Escalate { by, .. }
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
        let (decided, handoff_in_flight) = {
            let roster = self.shared.roster();
            let decide_ctx = Ctx {
                roster: &roster,
                policy: &*self.shared.policy,
            };
            let decided = conversation::decide_with_state(&self.state, command, &decide_ctx);
            // Counted under the roster's read lock: see `Shared::handoff_started`.
            let in_flight = match (&decided, command) {
                (Ok(_), ConversationCommand::HandOffToAi { agent_id, .. }) => {
                    Some(self.shared.handoff_started(agent_id))
                }
                _ => None,
            };
            (decided, in_flight)
        };
        let (events, next) = match decided {
            Ok(decided) => decided,
            Err(Rejection::NotOpened) => {
                // Nothing to keep in memory for a conversation that does not exist.
                ctx.stop();
                return ready(Err(Error::UnknownConversation(self.id)));
            }
            Err(rejection) => {
                span.in_scope(|| debug!(%rejection, "command rejected"));
                let Some(command_id) = msg.command_id else {
                    return ready(Err(Error::Rejected(rejection)));
                };
                // A retry of a command already recorded is refused by the state it led to:
                // answer it with what it recorded, if it was.
                let store = Arc::clone(&self.shared.store);
                let stream = self.stream.clone();
                let lookup = async move { store.command_outcome(&stream, command_id).await };
                return Reply::Atomic(AtomicResponse::new(Box::pin(lookup.into_actor(self).map(
                    move |result, act, ctx| match result {
                        Ok(Some(records)) => Ok(Receipt {
                            events: records,
                            status: act.state.status(),
                        }),
                        Ok(None) => Err(Error::Rejected(rejection)),
                        Err(StoreError::Overloaded) => Err(Error::Overloaded),
                        Err(error) => Err(act.fail(error, ctx)),
                    },
                ))));
            }
        };
        let events: Vec<Event> = events.into_iter().map(Event::Conversation).collect();
        let expected = match self.version {
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
        Reply::Atomic(AtomicResponse::new(Box::pin(append.into_actor(self).map(
            move |result, act, ctx| {
                let _entered = span.enter();
                // The handoff's append has an outcome: a deactivation may go ahead.
                let _handoff_settled = handoff_in_flight;
                match result {
                    Ok(Ok(records)) if records.first().is_some_and(|r| r.seq <= act.version) => {
                        // A retry answered with what its first attempt recorded: the state
                        // holds those events already.
                        debug!(events = records.len(), "command was recorded before");
                        Ok(Receipt {
                            events: records,
                            status: act.state.status(),
                        })
                    }
                    Ok(Ok(records)) => {
                        debug!(events = records.len(), "command recorded");
                        Ok(act.commit(records, next, ctx))
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
                }
            },
        ))))
    }
}

impl Handler<GetView> for ConversationActor {
    type Result = Result<ConversationView, Error>;

    fn handle(&mut self, _: GetView, ctx: &mut Context<Self>) -> Self::Result {
        self.last_active = Instant::now();
        self.check_readable(ctx)?;
        Ok(ConversationView {
            id: self.id,
            state: self.state.clone(),
            version: self.version,
        })
    }
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
        Ok(self.version)
    }
}
