//! A tenant's window on the runtime: reads that see only that tenant's conversations, humans,
//! queues and AI agents. A conversation of another tenant reads as one that does not exist.

use std::sync::Arc;

use handover_core::{AiAgent, ConversationId, Specialty, TenantId};
use handover_store::RecordedEvent;

use crate::error::Error;
use crate::facade::Handover;
use crate::router::Waiting;
use crate::staff::{HumanQuery, HumanView};
use crate::view::ConversationView;
use crate::watch::Watch;

/// Reads scoped to one tenant, for code that serves that tenant's staff (a console, an API
/// behind the tenant's sign-in): nothing of another tenant is visible through it, not even
/// whether a conversation exists. Commands need no such handle: the rules check that the
/// human sending one belongs to the conversation's tenant.
///
/// ```no_run
/// # async fn demo(handover: handover::Handover, id: handover::ConversationId) -> Result<(), handover::Error> {
/// use handover::TenantId;
///
/// let acme = handover.tenant(TenantId::new("acme")?);
/// for waiting in acme.waiting() {
///     println!("{} waits since {:?}", waiting.conversation_id, waiting.since);
/// }
/// let view = acme.conversation(id).await?; // UnknownConversation if it is another tenant's
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct TenantHandle {
    handover: Handover,
    tenant: TenantId,
}

impl Handover {
    /// Reads scoped to `tenant`.
    pub fn tenant(&self, tenant: TenantId) -> TenantHandle {
        TenantHandle {
            handover: self.clone(),
            tenant,
        }
    }
}

impl TenantHandle {
    /// The tenant.
    pub fn id(&self) -> &TenantId {
        &self.tenant
    }

    /// The conversation, if it is this tenant's.
    pub async fn conversation(&self, id: ConversationId) -> Result<ConversationView, Error> {
        let view = self.handover.conversation(id).await?;
        if view.tenant != self.tenant {
            return Err(Error::UnknownConversation(id));
        }
        Ok(view)
    }

    /// The conversation's events so far, if it is this tenant's.
    pub async fn history(&self, id: ConversationId) -> Result<Vec<Arc<RecordedEvent>>, Error> {
        self.conversation(id).await?;
        self.handover.history(id).await
    }

    /// Watches the conversation from the event after `after_seq`, if it is this tenant's.
    pub async fn watch_from(&self, id: ConversationId, after_seq: u64) -> Result<Watch, Error> {
        self.conversation(id).await?;
        self.handover.watch_from(id, after_seq).await
    }

    /// This tenant's conversations waiting for a human, oldest first.
    pub fn waiting(&self) -> Vec<Waiting> {
        self.handover.waiting(&self.tenant)
    }

    /// This tenant's humans, with their presence and load.
    pub fn humans(&self, query: &HumanQuery) -> Vec<HumanView> {
        self.handover.humans(&self.tenant, query)
    }

    /// This tenant's active AI agents, optionally only those with `specialty`: its "select
    /// the AI agent" list.
    pub fn active_ai_agents(&self, specialty: Option<Specialty>) -> Vec<AiAgent> {
        self.handover
            .runtime()
            .conversations
            .roster
            .read()
            .active_in(&self.tenant, specialty.as_ref())
            .cloned()
            .collect()
    }
}
