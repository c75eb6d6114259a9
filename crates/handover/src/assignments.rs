//! Which conversations each AI agent holds, and under which epoch: written by conversation
//! actors once a handoff or the end of an assignment is durable, read when an agent is
//! attached (to resume what it holds) and when it is deactivated (to escalate what it holds).

use std::collections::HashMap;
use std::sync::Mutex;

use handover_core::{AiAgentId, ConversationId, Epoch};

use crate::sync::lock;

/// For each AI agent, the conversations it holds and the epoch of each assignment.
#[derive(Default)]
pub(crate) struct Assignments {
    held: Mutex<HashMap<AiAgentId, HashMap<ConversationId, Epoch>>>,
}

impl Assignments {
    pub(crate) fn new(held: HashMap<AiAgentId, HashMap<ConversationId, Epoch>>) -> Assignments {
        Assignments {
            held: Mutex::new(held),
        }
    }

    pub(crate) fn started(&self, agent: &AiAgentId, conversation: ConversationId, epoch: Epoch) {
        lock(&self.held)
            .entry(agent.clone())
            .or_default()
            .insert(conversation, epoch);
    }

    pub(crate) fn ended(&self, agent: &AiAgentId, conversation: ConversationId) {
        let mut held = lock(&self.held);
        if let Some(conversations) = held.get_mut(agent) {
            conversations.remove(&conversation);
            if conversations.is_empty() {
                held.remove(agent);
            }
        }
    }

    /// The conversations `agent` holds now.
    pub(crate) fn held_by(&self, agent: &AiAgentId) -> Vec<(ConversationId, Epoch)> {
        lock(&self.held)
            .get(agent)
            .map(|held| held.iter().map(|(id, epoch)| (*id, *epoch)).collect())
            .unwrap_or_default()
    }
}
