//! The dispatcher: gives waiting conversations to humans. It runs as one task, so queues move
//! in order (oldest waiting conversation first) and one decision at a time: each assignment is
//! durable, and the board's loads count it, before the next conversation is routed.

use std::collections::HashSet;
use std::sync::Arc;

use handover_core::{ConversationCommand, Participant, SystemActor, TenantId};
use tokio::sync::mpsc;
use tracing::debug;

use crate::runtime::Runtime;

/// Asks the dispatcher to look at a tenant's queues.
#[derive(Clone)]
pub(crate) struct Dispatch {
    requests: mpsc::UnboundedSender<TenantId>,
}

impl Dispatch {
    pub(crate) fn new() -> (Dispatch, mpsc::UnboundedReceiver<TenantId>) {
        let (requests, receiver) = mpsc::unbounded_channel();
        (Dispatch { requests }, receiver)
    }

    /// Routes `tenant`'s waiting conversations soon (requests pile up into one pass).
    pub(crate) fn request(&self, tenant: TenantId) {
        // Fails only once the dispatcher has stopped with the runtime.
        let _ = self.requests.send(tenant);
    }
}

/// Routes waiting conversations whenever asked, until the runtime stops.
pub(crate) async fn run(runtime: Arc<Runtime>, mut requests: mpsc::UnboundedReceiver<TenantId>) {
    while let Some(first) = requests.recv().await {
        let mut tenants = HashSet::from([first]);
        while let Ok(more) = requests.try_recv() {
            tenants.insert(more);
        }
        for tenant in tenants {
            route_tenant(&runtime, &tenant).await;
        }
    }
}

/// Offers each waiting conversation of `tenant`, oldest first, to the router.
async fn route_tenant(runtime: &Runtime, tenant: &TenantId) {
    let shared = &runtime.conversations;
    let waiting = shared.board.lock().waiting(Some(tenant));
    for conversation in waiting {
        let choice = {
            let directory = shared.directory.read();
            let board = shared.board.lock();
            shared.router.route(&conversation, &directory, &board.loads)
        };
        let Some(human) = choice else { continue };
        let assign = Arc::new(ConversationCommand::Assign {
            by: Participant::System(SystemActor::Router),
            to: human,
        });
        let id = conversation.conversation_id;
        // A refusal (the router chose someone away or full, or the conversation moved on)
        // leaves it waiting; the next change of presence or load routes it again.
        if let Err(error) = runtime.execute(id, assign, None).await {
            debug!(conversation_id = %id, %error, "routing refused");
        }
    }
}
