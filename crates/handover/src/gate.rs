//! Orders the commands whose rules read state that other conversations change: one gate per
//! AI agent (deactivating it against handing conversations to it) and one per human (giving
//! them conversations against their capacity).
//!
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

use handover_core::{AiAgentId, ConversationCommand, HumanId, TransferTarget};
use tokio::sync::{
    Mutex as AsyncMutex, OwnedMutexGuard, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock,
};

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

/// A command's hold on the gate of a human it gives a conversation to.
pub(crate) type LoadPass = OwnedMutexGuard<()>;

/// What a gated command holds from before it is decided until it is durable and on the board.
/// Never read: holding it is the point, and dropping it opens the gate.
#[allow(dead_code)]
pub(crate) enum Pass {
    /// A handoff's hold on its AI agent's gate.
    Handoff(HandoffPass),
    /// A hold on the gate of the human the command gives the conversation to.
    Load(LoadPass),
}

/// Giving a human a conversation against their capacity: one gate per human.
///
/// The rule is the domain's: the router gives a conversation only to someone below their
/// capacity, reading the loads the board keeps. The board learns of a conversation's new
/// holder once its append is durable, so two commands that give the same human a conversation
/// in two different conversations could each decide on a load that does not count the other.
/// Every command that makes a human hold a conversation (assigned, accepted, transferred to,
/// reclaimed, started with) therefore holds that human's gate from before it is decided until
/// it is durable and on the board: the loads each one reads count every one before it.
#[derive(Default)]
pub(crate) struct HumanGates {
    gates: Mutex<HashMap<HumanId, Arc<AsyncMutex<()>>>>,
}

impl HumanGates {
    /// Waits for the commands giving `human` a conversation already under way, then holds the
    /// gate. Only for registered humans (the caller checks), so the map stays as small as the
    /// directory.
    pub(crate) async fn enter(&self, human: &HumanId) -> LoadPass {
        let gate = Arc::clone(lock(&self.gates).entry(human.clone()).or_default());
        gate.lock_owned().await
    }
}

/// The human `command` would make hold the conversation, if any.
pub(crate) fn load_target(command: &ConversationCommand) -> Option<&HumanId> {
    match command {
        ConversationCommand::Assign { to, .. } => Some(to),
        ConversationCommand::Accept { by } | ConversationCommand::Reclaim { by, .. } => Some(by),
        ConversationCommand::Transfer {
            to: TransferTarget::Human(to),
            ..
        } => Some(to),
        ConversationCommand::Start { human, .. } | ConversationCommand::Open { human, .. } => {
            human.as_ref()
        }
        _ => None,
    }
}
