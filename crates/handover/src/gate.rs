//! Deactivating an AI agent against handing conversations to it: one gate per agent.
//!
//! The rule is the domain's: a handoff names an active agent (`decide` checks the roster). What
//! the runtime must add is order: no handoff to an agent may reach the log after the agent's
//! deactivation, and no conversation may stay with a deactivated agent. Each handoff holds its
//! agent's gate shared from before it is decided until it is durable and in the assignment
//! index; a deactivation holds the gate exclusively while it marks the agent inactive and
//! appends `Deactivated`. So every handoff either was durable and indexed before the
//! deactivation began (and the deactivation then escalates it), or is decided after it (and the
//! roster refuses it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use handover_core::AiAgentId;
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

use crate::sync::lock;

/// A handoff's hold on its agent's gate, released once the handoff has an outcome.
pub(crate) type HandoffPass = OwnedRwLockReadGuard<()>;

/// A deactivation's hold on its agent's gate.
pub(crate) type DeactivationPass = OwnedRwLockWriteGuard<()>;

/// One gate per registered AI agent.
#[derive(Default)]
pub(crate) struct AgentGates {
    gates: Mutex<HashMap<AiAgentId, Arc<RwLock<()>>>>,
}

impl AgentGates {
    fn gate(&self, agent: &AiAgentId) -> Arc<RwLock<()>> {
        Arc::clone(lock(&self.gates).entry(agent.clone()).or_default())
    }

    /// Waits until no deactivation of `agent` is under way, then holds the gate for a handoff.
    /// Only for registered agents (the caller checks), so the map stays as small as the roster.
    pub(crate) async fn enter_handoff(&self, agent: &AiAgentId) -> HandoffPass {
        self.gate(agent).read_owned().await
    }

    /// Waits until every handoff to `agent` already under way has an outcome, then keeps new
    /// ones waiting until the pass is dropped.
    pub(crate) async fn enter_deactivation(&self, agent: &AiAgentId) -> DeactivationPass {
        self.gate(agent).write_owned().await
    }
}
