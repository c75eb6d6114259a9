//! The AI-agent actor: runs one attached [`AiAgentBehavior`] for every conversation handed to
//! its agent.
//!
//! Each conversation it holds is a subscription with a queue: the behaviour handles one item
//! at a time per conversation, in order, while different conversations proceed concurrently.
//! A subscription starts by reading the conversation's history (to the handoff, for a new
//! one); every later event is delivered, and the two never overlap, so the agent's backlog
//! never counts what it is already answering. An `Unassigned` (reclaim, escalation, close)
//! drops the subscription at once; a call still in flight can only produce commands that the
//! conversation's epoch fence rejects.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use futures::FutureExt as _;
use handover_core::{
    AiAgentId, Assignment, ConversationCommand, ConversationId, Epoch, EscalationCause, Reason,
    StreamId, REASON_BYTES_MAX,
};
use handover_store::{RecordedEvent, SeqRange, StoreError};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn, Instrument};

use crate::behavior::{AgentError, AiAgentBehavior, AiSession};
use crate::messages::{Assigned, CallFinished, Delivered, HistoryRead, Unassigned};
use crate::runtime::Runtime;

struct Subscription {
    epoch: Epoch,
    queue: VecDeque<Arc<RecordedEvent>>,
    /// A call into the agent's code (or the read of the history) is under way.
    busy: bool,
    /// The last seq of the history `on_handoff` is given, once read: deliveries up to it are
    /// dropped, since the agent sees them there.
    seen: Option<u64>,
    /// Cancelled when the assignment ends: the call in flight is told, then dropped.
    cancel: CancellationToken,
    /// The context a human gave with the handoff, once the history is read.
    context: Option<Arc<handover_core::context::Context>>,
}

pub(crate) struct AiAgentActor {
    agent_id: AiAgentId,
    behavior: Arc<dyn AiAgentBehavior>,
    runtime: Arc<Runtime>,
    subscriptions: HashMap<ConversationId, Subscription>,
    /// Events sent to this agent that it has not started on (see `AgentHandle`).
    backlog: Arc<AtomicUsize>,
}

/// What one call into the agent's code does.
enum Call {
    Handoff(Result<Vec<Arc<RecordedEvent>>, StoreError>),
    Event(Arc<RecordedEvent>),
}

impl AiAgentActor {
    pub(crate) fn new(
        agent_id: AiAgentId,
        behavior: Arc<dyn AiAgentBehavior>,
        runtime: Arc<Runtime>,
        backlog: Arc<AtomicUsize>,
    ) -> AiAgentActor {
        AiAgentActor {
            agent_id,
            behavior,
            runtime,
            subscriptions: HashMap::new(),
            backlog,
        }
    }

    /// Takes `events` off the backlog: started, skipped, or dropped with their subscription.
    fn taken(&self, events: usize) {
        if events > 0 {
            self.backlog.fetch_sub(events, Ordering::AcqRel);
        }
    }

    /// Drops a conversation's subscription and whatever it still had queued, and cancels the
    /// call in flight.
    fn unsubscribe(&mut self, conversation_id: ConversationId) {
        if let Some(subscription) = self.subscriptions.remove(&conversation_id) {
            subscription.cancel.cancel();
            self.taken(subscription.queue.len());
        }
    }

    /// Starts the next queued event of a conversation unless a call is under way.
    fn pump(&mut self, conversation_id: ConversationId, ctx: &mut Context<Self>) {
        let Some(subscription) = self.subscriptions.get_mut(&conversation_id) else {
            return;
        };
        if subscription.busy {
            return;
        }
        let Some(record) = subscription.queue.pop_front() else {
            return;
        };
        subscription.busy = true;
        let epoch = subscription.epoch;
        let cancel = subscription.cancel.clone();
        let context = subscription.context.clone();
        self.taken(1);
        self.call(
            conversation_id,
            epoch,
            cancel,
            context,
            Call::Event(record),
            ctx,
        );
    }

    /// Runs one call into the agent's code on the AI runtime, as one task that reports back
    /// with a message. It is not a future spawned in this actor's context: actix polls every
    /// such future whenever the context wakes, so with a thousand calls in flight each
    /// completion cost a thousand polls on the arbiter the agent shares with conversation
    /// actors.
    fn call(
        &self,
        conversation_id: ConversationId,
        epoch: Epoch,
        cancel: CancellationToken,
        context: Option<Arc<handover_core::context::Context>>,
        call: Call,
        ctx: &mut Context<Self>,
    ) {
        let session = AiSession {
            runtime: Arc::clone(&self.runtime),
            conversation_id,
            assignment: Assignment {
                agent_id: self.agent_id.clone(),
                epoch,
            },
            cancel: cancel.clone(),
            context,
        };
        let grace = self.runtime.ai_cancel_grace;
        let behavior = Arc::clone(&self.behavior);
        let span = tracing::info_span!(
            "ai_agent",
            agent_id = %self.agent_id,
            conversation_id = %conversation_id,
            epoch = epoch.0,
        );
        let agent = ctx.address();
        let task = async move {
            let run = async {
                match call {
                    Call::Handoff(Ok(history)) => behavior.on_handoff(&session, &history).await,
                    Call::Handoff(Err(error)) => Err(AgentError::from(error)),
                    Call::Event(record) => behavior.on_event(&session, &record).await,
                }
            };
            // Once the assignment has ended, the behaviour has `grace` to stop by itself;
            // then its call is dropped, which cancels whatever it was awaiting.
            let dropped = async {
                cancel.cancelled().await;
                tokio::time::sleep(grace).await;
            };
            tokio::select! {
                outcome = AssertUnwindSafe(run).catch_unwind() => match outcome {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => escalate_after_failure(&session, &error.to_string()).await,
                    Err(_panic) => {
                        escalate_after_failure(&session, "the AI agent's code panicked").await
                    }
                },
                () = dropped => debug!("AI agent call dropped after its assignment ended"),
            }
            agent.do_send(CallFinished {
                conversation_id,
                epoch,
            });
        }
        .instrument(span);
        self.runtime.ai_runtime.spawn(task);
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
        .runtime
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
        let conversation_id = msg.conversation_id;
        let epoch = msg.assignment.epoch;
        // Attaching the agent and a handoff can both announce the same assignment.
        if let Some(existing) = self.subscriptions.get(&conversation_id) {
            if existing.epoch >= epoch {
                return;
            }
        }
        debug!(agent_id = %self.agent_id, %conversation_id, "subscribed");
        self.unsubscribe(conversation_id);
        self.subscriptions.insert(
            conversation_id,
            Subscription {
                epoch,
                queue: VecDeque::new(),
                busy: true,
                seen: None,
                cancel: CancellationToken::new(),
                context: None,
            },
        );
        // A new handoff's history runs to the handoff, and every later event is delivered:
        // the two never overlap, so the backlog never counts an event the agent is already
        // answering from its history. An assignment taken up again (after a restart, or
        // attached after the handoff) reads to now instead, so the agent sees what it
        // answered and what is still waiting; deliveries that race that read are dropped by
        // seq when it is in.
        let store = Arc::clone(&self.runtime.conversations.store);
        let agent = ctx.address();
        let range = SeqRange {
            from: 1,
            to: msg.through.unwrap_or(u64::MAX),
            max: usize::MAX,
        };
        self.runtime.ai_runtime.spawn(async move {
            let stream = StreamId::Conversation(conversation_id);
            let history = store.read_stream(&stream, range).await;
            agent.do_send(HistoryRead {
                conversation_id,
                epoch,
                history,
            });
        });
    }
}

impl Handler<HistoryRead> for AiAgentActor {
    type Result = ();

    fn handle(&mut self, msg: HistoryRead, ctx: &mut Context<Self>) {
        let Some(subscription) = self.subscriptions.get_mut(&msg.conversation_id) else {
            return;
        };
        if subscription.epoch != msg.epoch {
            return;
        }
        let cancel = subscription.cancel.clone();
        let history = msg
            .history
            .map(|history| history.into_iter().map(Arc::new).collect::<Vec<_>>());
        let window = self.runtime.history_window(&self.agent_id);
        let history = match history {
            Ok(history) => {
                let seen = history.last().map_or(0, |record| record.seq);
                subscription.seen = Some(seen);
                subscription.context =
                    crate::window::handoff_context(&history, msg.epoch).map(Arc::new);
                // Delivered while the history was read, and in it.
                let before = subscription.queue.len();
                subscription.queue.retain(|record| record.seq > seen);
                let skipped = before - subscription.queue.len();
                self.taken(skipped);
                Ok(window.apply(history, msg.epoch))
            }
            Err(error) => Err(error),
        };
        let context = self
            .subscriptions
            .get(&msg.conversation_id)
            .and_then(|subscription| subscription.context.clone());
        self.call(
            msg.conversation_id,
            msg.epoch,
            cancel,
            context,
            Call::Handoff(history),
            ctx,
        );
    }
}

impl Handler<CallFinished> for AiAgentActor {
    type Result = ();

    fn handle(&mut self, msg: CallFinished, ctx: &mut Context<Self>) {
        if let Some(subscription) = self.subscriptions.get_mut(&msg.conversation_id) {
            if subscription.epoch == msg.epoch {
                subscription.busy = false;
                self.pump(msg.conversation_id, ctx);
            }
        }
    }
}

impl Handler<Delivered> for AiAgentActor {
    type Result = ();

    fn handle(&mut self, msg: Delivered, ctx: &mut Context<Self>) {
        match self.subscriptions.get_mut(&msg.conversation_id) {
            Some(subscription) if subscription.epoch == msg.epoch => {
                if subscription.seen.is_some_and(|seen| msg.record.seq <= seen) {
                    // Already in the history `on_handoff` was given.
                    self.taken(1);
                    return;
                }
                subscription.queue.push_back(msg.record);
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
