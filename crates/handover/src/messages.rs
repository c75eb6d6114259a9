//! Every message the runtime's actors exchange, in one place: what a conversation actor is
//! asked, and what it tells the AI agents that hold conversations.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use actix::Message;
use handover_core::{
    AiAgentCommand, AiAgentId, Assignment, CommandId, ConversationCommand, ConversationId, Epoch,
};
use handover_store::{RecordedEvent, StoreError};
use tokio::sync::mpsc;

use crate::error::Error;
use crate::view::{ConversationView, Receipt};

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
    /// The seq of the handoff, when a handoff just happened: the history the agent reads
    /// runs to it, and every later event reaches the agent as a `Delivered`. `None` when the
    /// agent takes up an assignment it already held (attached after the handoff, or after a
    /// restart): the history then runs to now.
    pub(crate) through: Option<u64>,
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

/// The history of a newly assigned conversation was read (an AI-agent actor to itself).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct HistoryRead {
    pub(crate) conversation_id: ConversationId,
    pub(crate) epoch: Epoch,
    pub(crate) history: Result<Vec<RecordedEvent>, StoreError>,
}

/// A call into the agent's code for one conversation returned, failed or panicked (an
/// AI-agent actor to itself).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct CallFinished {
    pub(crate) conversation_id: ConversationId,
    pub(crate) epoch: Epoch,
}

/// Another node now owns the conversation's tenant: the actor stops, so that its state is
/// rebuilt from the log if this node owns the tenant again.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Retire;
