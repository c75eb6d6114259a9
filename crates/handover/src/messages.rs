//! Every message the runtime's actors exchange, in one place: what a conversation actor is
//! asked, and what it tells the AI agents that hold conversations.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use actix::Message;
use handover_core::{
    AiAgentCommand, AiAgentId, Assignment, CommandId, ConversationCommand, ConversationId, Epoch,
};
use handover_store::RecordedEvent;
use tokio::sync::mpsc;

use crate::view::{ConversationView, Receipt};
use crate::Error;

/// Decide and record a command on the conversation.
#[derive(Message)]
#[rtype(result = "Result<Receipt, Error>")]
pub(crate) struct Execute {
    pub(crate) command: Arc<ConversationCommand>,
    /// Set when the caller may retry: a retry is answered with what the first attempt
    /// recorded instead of being decided again.
    pub(crate) command_id: Option<CommandId>,
}

/// The conversation's view.
#[derive(Message)]
#[rtype(result = "Result<ConversationView, Error>")]
pub(crate) struct GetView;

/// Registers a watcher; the reply is the version up to which it must read the log itself.
#[derive(Message)]
#[rtype(result = "Result<u64, Error>")]
pub(crate) struct AddWatcher {
    pub(crate) sender: mpsc::Sender<Arc<RecordedEvent>>,
    /// Set by the actor when it drops the watcher for falling behind.
    pub(crate) lagged: Arc<AtomicBool>,
}

/// Decide and record a command on an AI agent's registration.
#[derive(Message)]
#[rtype(result = "Result<Vec<Arc<RecordedEvent>>, Error>")]
pub(crate) struct ExecuteAgentCommand {
    pub(crate) agent_id: AiAgentId,
    pub(crate) command: AiAgentCommand,
}

/// A conversation was handed to this agent (sent after the handoff is durable).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Assigned {
    pub(crate) conversation_id: ConversationId,
    pub(crate) assignment: Assignment,
}

/// A durable event of a conversation this agent holds, written by someone else.
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
