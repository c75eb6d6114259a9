//! The AI-agent actor: runs one attached [`AiAgentBehavior`] for every conversation handed to
//! its agent.
//!
//! Each conversation it holds is a subscription with a queue: the behaviour handles one item
//! at a time per conversation, in order, while different conversations proceed concurrently.
//! An `Unassigned` (reclaim, escalation, close) drops the subscription at once; a call still in
//! flight can only produce commands that the conversation's epoch fence rejects.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use handover_core::{
    AiAgentId, Assignment, ConversationCommand, ConversationId, Epoch, EscalationCause, Reason,
    StreamId, REASON_BYTES_MAX,
};
use handover_store::{RecordedEvent, SeqRange};
use tracing::{debug, warn, Instrument};

use crate::behavior::{AiAgentBehavior, AiSession};
use crate::shared::Shared;

/// A conversation was handed to this agent (sent after the handoff is durable).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Assigned {
    pub(crate) conversation_id: ConversationId,
    pub(crate) assignment: Assignment,
}

/// A durable event of a conversation this agent holds.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Delivered {
    pub(crate) conversation_id: ConversationId,
    pub(crate) epoch: Epoch,
    pub(crate) record: Arc<RecordedEvent>,
}

/// The assignment ended: stop answering this conversation.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Unassigned {
    pub(crate) conversation_id: ConversationId,
    pub(crate) epoch: Epoch,
}

enum Work {
    /// Read the conversation's history up to now and call `on_handoff`.
    Handoff,
    Event(Arc<RecordedEvent>),
}

struct Subscription {
    epoch: Epoch,
    queue: VecDeque<Work>,
    busy: bool,
    /// The last seq of the history `on_handoff` was given: later deliveries of events up to
    /// it are skipped, since the agent saw them there.
    seen: u64,
}

impl Subscription {
    /// Events in the queue, which the agent's backlog counts.
    fn queued_events(&self) -> usize {
        self.queue
            .iter()
            .filter(|work| matches!(work, Work::Event(_)))
            .count()
    }
}

pub(crate) struct AiAgentActor {
    agent_id: AiAgentId,
    behavior: Arc<dyn AiAgentBehavior>,
    shared: Arc<Shared>,
    subscriptions: HashMap<ConversationId, Subscription>,
    /// Events sent to this agent that it has not started on (see `AgentHandle`).
    backlog: Arc<AtomicUsize>,
}

impl AiAgentActor {
    pub(crate) fn new(
        agent_id: AiAgentId,
        behavior: Arc<dyn AiAgentBehavior>,
        shared: Arc<Shared>,
        backlog: Arc<AtomicUsize>,
    ) -> AiAgentActor {
        AiAgentActor {
            agent_id,
            behavior,
            shared,
            subscriptions: HashMap::new(),
            backlog,
        }
    }

    /// Takes `events` off the backlog: started, or dropped with their subscription.
    fn taken(&self, events: usize) {
        if events > 0 {
            self.backlog.fetch_sub(events, Ordering::AcqRel);
        }
    }

    /// Drops a conversation's subscription and whatever it still had queued.
    fn unsubscribe(&mut self, conversation_id: ConversationId) {
        if let Some(subscription) = self.subscriptions.remove(&conversation_id) {
            self.taken(subscription.queued_events());
        }
    }

    /// Starts the next item of a conversation's queue unless one is running.
    fn pump(&mut self, conversation_id: ConversationId, ctx: &mut Context<Self>) {
        let Some(subscription) = self.subscriptions.get_mut(&conversation_id) else {
            return;
        };
        if subscription.busy {
            return;
        }
        let work = loop {
            match subscription.queue.pop_front() {
                None => return,
                // Already in the history `on_handoff` was given.
                Some(Work::Event(record)) if record.seq <= subscription.seen => {
                    self.backlog.fetch_sub(1, Ordering::AcqRel);
                }
                Some(work) => break work,
            }
        };
        subscription.busy = true;
        if matches!(work, Work::Event(_)) {
            self.backlog.fetch_sub(1, Ordering::AcqRel);
        }
        let epoch = subscription.epoch;
        let session = AiSession {
            shared: Arc::clone(&self.shared),
            conversation_id,
            assignment: Assignment {
                agent_id: self.agent_id.clone(),
                epoch,
            },
        };
        let behavior = Arc::clone(&self.behavior);
        let span = tracing::info_span!(
            "ai_agent",
            agent_id = %self.agent_id,
            conversation_id = %conversation_id,
            epoch = epoch.0,
        );
        let failed = session.clone();
        let run = async move {
            let mut seen = None;
            let result = match work {
                // The history up to now, not only up to the handoff: an agent resuming its
                // conversations after a restart (or attached after the handoff) then sees what
                // it answered and what is still waiting for an answer.
                Work::Handoff => {
                    let stream = StreamId::Conversation(conversation_id);
                    match session
                        .shared
                        .store
                        .read_stream(&stream, SeqRange::ALL)
                        .await
                    {
                        Ok(history) => {
                            seen = history.last().map(|record| record.seq);
                            behavior.on_handoff(&session, &history).await
                        }
                        Err(error) => Err(error.into()),
                    }
                }
                Work::Event(record) => behavior.on_event(&session, &record).await,
            };
            if let Err(error) = result {
                escalate_after_failure(&session, &error.to_string()).await;
            }
            seen
        }
        .instrument(span);
        // The call runs on the AI runtime; the actor only learns when it is over.
        // The call runs on the AI runtime and reports back with a message. It is not a future
        // spawned in this actor's context: actix polls every such future whenever the context
        // wakes, so with a thousand calls in flight each completion cost a thousand polls on
        // the arbiter the agent shares with conversation actors.
        let call = self.shared.ai_runtime.spawn(run);
        let agent = ctx.address();
        self.shared.ai_runtime.spawn(async move {
            let seen = match call.await {
                Ok(seen) => seen,
                Err(stopped) => {
                    if stopped.is_panic() {
                        escalate_after_failure(&failed, "the AI agent's code panicked").await;
                    }
                    None
                }
            };
            agent.do_send(CallFinished {
                conversation_id,
                epoch,
                seen,
            });
        });
    }
}

/// A call into the agent's code for one conversation returned (or panicked).
#[derive(Message)]
#[rtype(result = "()")]
struct CallFinished {
    conversation_id: ConversationId,
    epoch: Epoch,
    /// For `on_handoff`: the last seq of the history it was given.
    seen: Option<u64>,
}

impl Handler<CallFinished> for AiAgentActor {
    type Result = ();

    fn handle(&mut self, msg: CallFinished, ctx: &mut Context<Self>) {
        if let Some(subscription) = self.subscriptions.get_mut(&msg.conversation_id) {
            if subscription.epoch == msg.epoch {
                subscription.busy = false;
                if let Some(seen) = msg.seen {
                    subscription.seen = subscription.seen.max(seen);
                }
                self.pump(msg.conversation_id, ctx);
            }
        }
    }
}

/// The agent's code failed: hand the conversation to humans rather than leave the customer
/// waiting. If the assignment already ended, the fence rejects this and nothing happens.
async fn escalate_after_failure(session: &AiSession, error: &str) {
    warn!(%error, "AI agent failed; escalating to humans");
    let mut reason = format!("the AI agent failed: {error}");
    if reason.len() > REASON_BYTES_MAX {
        let mut end = REASON_BYTES_MAX;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    let Ok(reason) = Reason::new(reason) else {
        return;
    };
    let command = ConversationCommand::Escalate {
        by: session.assignment.clone(),
        reason,
        cause: EscalationCause::AgentRequested,
    };
    if let Err(error) = session
        .shared
        .execute(session.conversation_id, Arc::new(command), None)
        .await
    {
        debug!(%error, "escalation after failure not recorded");
    }
}

impl Actor for AiAgentActor {
    type Context = Context<Self>;
}

impl Handler<Assigned> for AiAgentActor {
    type Result = ();

    fn handle(&mut self, msg: Assigned, ctx: &mut Context<Self>) {
        // Attaching the agent and a handoff can both announce the same assignment.
        if let Some(existing) = self.subscriptions.get(&msg.conversation_id) {
            if existing.epoch >= msg.assignment.epoch {
                return;
            }
        }
        debug!(agent_id = %self.agent_id, conversation_id = %msg.conversation_id, "subscribed");
        self.unsubscribe(msg.conversation_id);
        self.subscriptions.insert(
            msg.conversation_id,
            Subscription {
                epoch: msg.assignment.epoch,
                queue: VecDeque::from([Work::Handoff]),
                busy: false,
                seen: 0,
            },
        );
        self.pump(msg.conversation_id, ctx);
    }
}

impl Handler<Delivered> for AiAgentActor {
    type Result = ();

    fn handle(&mut self, msg: Delivered, ctx: &mut Context<Self>) {
        match self.subscriptions.get_mut(&msg.conversation_id) {
            Some(subscription) if subscription.epoch == msg.epoch => {
                subscription.queue.push_back(Work::Event(msg.record));
                self.pump(msg.conversation_id, ctx);
            }
            // An event of an ended assignment: nobody will start on it.
            _ => self.taken(1),
        }
    }
}

impl Handler<Unassigned> for AiAgentActor {
    type Result = ();

    fn handle(&mut self, msg: Unassigned, _: &mut Context<Self>) {
        if self
            .subscriptions
            .get(&msg.conversation_id)
            .is_some_and(|s| s.epoch == msg.epoch)
        {
            debug!(agent_id = %self.agent_id, conversation_id = %msg.conversation_id, "unsubscribed");
            self.unsubscribe(msg.conversation_id);
        }
    }
}
