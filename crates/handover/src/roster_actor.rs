//! The roster actor: the single writer of every AI agent's registration stream, and the owner
//! of the roster that handoffs consult. Deactivating an agent escalates every conversation it
//! holds before the call returns.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use handover_core::{
    agent, AiAgentCommand, AiAgentEvent, AiAgentId, Assignment, ConversationCommand,
    EscalationCause, Event, Reason, StreamId,
};
use handover_store::{ExpectedVersion, RecordedEvent, StoreError};
use tracing::{debug, info, Instrument};

use crate::reply::Reply;
use crate::shared::{lock, Shared};
use crate::Error;

#[derive(Message)]
#[rtype(result = "Result<Vec<Arc<RecordedEvent>>, Error>")]
pub(crate) struct ExecuteAgentCommand {
    pub(crate) agent_id: AiAgentId,
    pub(crate) command: AiAgentCommand,
}

/// The roster itself lives in [`Shared`], where `decide` reads it; this actor is its only
/// writer, so what it decides on is what it evolves.
pub(crate) struct RosterActor {
    shared: Arc<Shared>,
    versions: HashMap<AiAgentId, u64>,
}

impl RosterActor {
    pub(crate) fn new(shared: Arc<Shared>, versions: HashMap<AiAgentId, u64>) -> RosterActor {
        RosterActor { shared, versions }
    }
}

/// The command that hands a conversation back to humans because its AI agent was deactivated.
/// Fenced by the assignment, so it does nothing to a conversation the agent no longer holds.
pub(crate) fn deactivation_escalation(assignment: Assignment) -> ConversationCommand {
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
async fn escalate_all(shared: Arc<Shared>, agent_id: AiAgentId) {
    let held: Vec<_> = lock(&shared.assignments)
        .get(&agent_id)
        .map(|held| held.iter().map(|(id, (epoch, _))| (*id, *epoch)).collect())
        .unwrap_or_default();
    let mut pending = Vec::with_capacity(held.len());
    for (conversation_id, epoch) in held {
        let shared = Arc::clone(&shared);
        let command = Arc::new(deactivation_escalation(Assignment {
            agent_id: agent_id.clone(),
            epoch,
        }));
        pending.push(actix::spawn(async move {
            // A rejection means the assignment already ended: nothing to do.
            if let Err(error) = shared.execute(conversation_id, command, None).await {
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
            let roster = self.shared.roster();
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
        if deactivated {
            // Refuse new handoffs to the agent from now on, then let the ones already decided
            // reach the log before the deactivation does: the log never shows a handoff to an
            // agent after its deactivation.
            for event in &events {
                if let Err(rejection) = self.shared.evolve_roster(event) {
                    return Reply::Now(Err(rejection.into()));
                }
            }
        }
        let settled = {
            let shared = Arc::clone(&self.shared);
            let agent_id = msg.agent_id.clone();
            async move {
                if deactivated {
                    shared.handoffs_settled(&agent_id).await;
                }
            }
        };
        let expected = match self.versions.get(&msg.agent_id) {
            None | Some(0) => ExpectedVersion::NoStream,
            Some(&v) => ExpectedVersion::Exact(v),
        };
        let store = Arc::clone(&self.shared.store);
        let stream = StreamId::AiAgent(msg.agent_id.clone());
        let agent_id = msg.agent_id;
        let append = async move {
            settled.await;
            store.append(&stream, expected, events).await
        }
        .instrument(span.clone());
        Reply::Atomic(AtomicResponse::new(Box::pin(
            append
                .into_actor(self)
                .map(move |result, act, _| {
                    // Nothing was written (a conflict, Overloaded): the agent is active again.
                    // After an outcome-unknown failure it stays inactive in memory, the safe
                    // side, until a restart reads the log.
                    let reactivate = |act: &mut RosterActor| {
                        if deactivated {
                            let _ = act.shared.evolve_roster(&Event::AiAgent(
                                AiAgentEvent::Activated {
                                    agent_id: agent_id.clone(),
                                },
                            ));
                        }
                    };
                    let records = match result {
                        Ok(Ok(records)) => records,
                        Ok(Err(_)) => {
                            reactivate(act);
                            return Err(Error::Concurrency);
                        }
                        Err(StoreError::Overloaded) => {
                            reactivate(act);
                            return Err(Error::Overloaded);
                        }
                        Err(error) => return Err(error.into()),
                    };
                    for record in &records {
                        // A deactivation is in the roster already.
                        if !deactivated {
                            act.shared.evolve_roster(&record.event)?;
                        }
                        act.versions.insert(agent_id.clone(), record.seq);
                    }
                    span.in_scope(|| info!(deactivated, "AI agent registration changed"));
                    Ok((
                        records,
                        deactivated.then(|| (Arc::clone(&act.shared), agent_id)),
                    ))
                })
                .then(|result: Result<_, Error>, act, _| {
                    async move {
                        let (records, sweep) = result?;
                        if let Some((shared, agent_id)) = sweep {
                            escalate_all(shared, agent_id).await;
                        }
                        Ok(records)
                    }
                    .into_actor(act)
                }),
        )))
    }
}
