//! The roster actor: the single writer of every AI agent's registration stream, and of the
//! roster that handoffs consult. Deactivating an agent escalates every conversation it holds
//! before the call returns.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use handover_core::{
    agent, AiAgentEvent, AiAgentId, Assignment, ConversationCommand, EscalationCause, Event,
    Reason, StreamId,
};
use handover_store::{ExpectedVersion, RecordedEvent, StoreError};
use tracing::{debug, info, Instrument};

use crate::error::Error;
use crate::messages::ExecuteAgentCommand;
use crate::reply::Reply;
use crate::runtime::Runtime;

/// The roster itself lives with the conversations, where `decide` reads it; this actor is its
/// only writer, so what it decides on is what it evolves.
pub(crate) struct RosterActor {
    runtime: Arc<Runtime>,
    versions: HashMap<AiAgentId, u64>,
}

impl RosterActor {
    pub(crate) fn new(runtime: Arc<Runtime>, versions: HashMap<AiAgentId, u64>) -> RosterActor {
        RosterActor { runtime, versions }
    }
}

/// The command that hands a conversation back to humans because its AI agent was deactivated.
/// Fenced by the assignment, so it does nothing to a conversation the agent no longer holds.
fn deactivation_escalation(assignment: Assignment) -> ConversationCommand {
    ConversationCommand::Escalate {
        by: assignment,
        reason: Reason::new("the AI agent was deactivated").expect("a constant reason is valid"),
        cause: EscalationCause::AgentDeactivated,
    }
}

impl Actor for RosterActor {
    type Context = Context<Self>;
}

/// Escalates every conversation `agent_id` holds and waits until each is settled.
async fn escalate_all(runtime: Arc<Runtime>, agent_id: AiAgentId) {
    let held = runtime.conversations.assignments.held_by(&agent_id);
    let mut pending = Vec::with_capacity(held.len());
    for (conversation_id, epoch) in held {
        let runtime = Arc::clone(&runtime);
        let command = Arc::new(deactivation_escalation(Assignment {
            agent_id: agent_id.clone(),
            epoch,
        }));
        pending.push(actix::spawn(async move {
            // A rejection means the assignment already ended: nothing to do.
            if let Err(error) = runtime.execute(conversation_id, command, None).await {
                debug!(%conversation_id, %error, "no escalation needed");
            }
        }));
    }
    for task in pending {
        let _ = task.await;
    }
}

impl Handler<ExecuteAgentCommand> for RosterActor {
    type Result = Reply<Self, Result<Vec<Arc<RecordedEvent>>, Error>>;

    fn handle(&mut self, msg: ExecuteAgentCommand, _: &mut Context<Self>) -> Self::Result {
        let span = tracing::info_span!("ai_agent_command", agent_id = %msg.agent_id);
        let decided = {
            let roster = self.runtime.conversations.roster.read();
            agent::decide(&msg.agent_id, roster.get(&msg.agent_id), &msg.command)
        };
        let events = match decided {
            Ok(events) => events,
            Err(rejection) => return Reply::Now(Err(rejection.into())),
        };
        let deactivated = events
            .iter()
            .any(|e| matches!(e, AiAgentEvent::Deactivated { .. }));
        let events: Vec<Event> = events.into_iter().map(Event::AiAgent).collect();
        let stream = StreamId::AiAgent(msg.agent_id.clone());
        let own = self.versions.get(&msg.agent_id).copied().unwrap_or(0);
        let expected = match self.runtime.expected_version(&stream, own) {
            0 => ExpectedVersion::NoStream,
            v => ExpectedVersion::Exact(v),
        };
        let runtime = Arc::clone(&self.runtime);
        let agent_id = msg.agent_id;
        let gate_agent = agent_id.clone();
        let append = async move {
            let conversations = &runtime.conversations;
            // A deactivation holds the agent's gate: handoffs already decided reach the log
            // and the assignment index first, and handoffs not yet decided wait and then see
            // the agent inactive (see `gate`).
            let pass = match deactivated {
                true => Some(conversations.gates.enter_deactivation(&gate_agent).await),
                false => None,
            };
            if deactivated {
                for event in &events {
                    conversations.roster.evolve(event)?;
                }
            }
            let appended = conversations.store.append(&stream, expected, events).await;
            let nothing_written = matches!(appended, Ok(Err(_)) | Err(StoreError::Overloaded));
            if deactivated && nothing_written {
                // The agent is active again. After an outcome-unknown failure it stays
                // inactive in memory, the safe side, until a restart reads the log.
                let _ = conversations
                    .roster
                    .evolve(&Event::AiAgent(AiAgentEvent::Activated {
                        agent_id: gate_agent.clone(),
                    }));
            }
            drop(pass);
            Ok::<_, Error>(appended?)
        }
        .instrument(span.clone());
        Reply::Atomic(AtomicResponse::new(Box::pin(
            append
                .into_actor(self)
                .map(move |result, act, _| {
                    let records = match result? {
                        Ok(records) => records,
                        Err(_conflict) => return Err(Error::Concurrency),
                    };
                    for record in &records {
                        // A deactivation is in the roster already.
                        if !deactivated {
                            act.runtime.conversations.roster.evolve(&record.event)?;
                        }
                        act.versions.insert(agent_id.clone(), record.seq);
                    }
                    span.in_scope(|| info!(deactivated, "AI agent registration changed"));
                    Ok((
                        records,
                        deactivated.then(|| (Arc::clone(&act.runtime), agent_id)),
                    ))
                })
                .then(|result: Result<_, Error>, act, _| {
                    async move {
                        let (records, sweep) = result?;
                        if let Some((runtime, agent_id)) = sweep {
                            escalate_all(runtime, agent_id).await;
                        }
                        Ok(records)
                    }
                    .into_actor(act)
                }),
        )))
    }
}
