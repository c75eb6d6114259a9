//! The AI agents whose implementation runs in this process, as conversation actors reach them:
//! where to send an agent its work, and how much of it the agent has not started on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use actix::Recipient;
use handover_core::AiAgentId;

use crate::messages::{Assigned, Delivered, Unassigned};
use crate::sync::lock;

/// How a conversation actor reaches an AI agent running in this process.
#[derive(Clone)]
pub(crate) struct AgentHandle {
    pub(crate) assigned: Recipient<Assigned>,
    delivered: Recipient<Delivered>,
    pub(crate) unassigned: Recipient<Unassigned>,
    /// Events sent to the agent that it has not started on. Counted here, when sent, so that
    /// what waits in the actor's mailbox counts too; the actor takes them off.
    backlog: Arc<AtomicUsize>,
}

impl AgentHandle {
    pub(crate) fn new(
        assigned: Recipient<Assigned>,
        delivered: Recipient<Delivered>,
        unassigned: Recipient<Unassigned>,
        backlog: Arc<AtomicUsize>,
    ) -> AgentHandle {
        AgentHandle {
            assigned,
            delivered,
            unassigned,
            backlog,
        }
    }

    /// Sends one event of a conversation the agent holds.
    pub(crate) fn deliver(&self, delivered: Delivered) {
        self.backlog.fetch_add(1, Ordering::AcqRel);
        self.delivered.do_send(delivered);
    }
}

/// The attached AI agents.
#[derive(Default)]
pub(crate) struct Agents {
    attached: Mutex<HashMap<AiAgentId, AgentHandle>>,
}

impl Agents {
    pub(crate) fn get(&self, id: &AiAgentId) -> Option<AgentHandle> {
        lock(&self.attached).get(id).cloned()
    }

    /// Publishes an agent's handle, replacing the one attached before.
    pub(crate) fn attach(&self, id: AiAgentId, handle: AgentHandle) {
        lock(&self.attached).insert(id, handle);
    }

    /// Whether the agent has `max` or more events waiting.
    pub(crate) fn overloaded(&self, id: &AiAgentId, max: usize) -> bool {
        lock(&self.attached)
            .get(id)
            .is_some_and(|agent| agent.backlog.load(Ordering::Acquire) >= max)
    }
}
