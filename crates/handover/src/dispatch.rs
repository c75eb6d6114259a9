//! The dispatcher: gives waiting conversations to humans. It runs as one task, so queues move
//! in order (oldest waiting conversation first) and one decision at a time: each assignment is
//! durable, and the board's loads count it, before the next conversation is routed.

use std::collections::HashSet;
use std::sync::Arc;

use handover_core::{ConversationCommand, Participant, SystemActor, TenantId};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use crate::runtime::Runtime;

/// How long a routing pass that failed for the system's sake waits before it runs again.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// One request to the dispatcher: route a tenant's queues, and say when that is done.
pub(crate) struct Request {
    tenant: TenantId,
    done: Option<oneshot::Sender<()>>,
}

/// Asks the dispatcher to look at a tenant's queues.
#[derive(Clone)]
pub(crate) struct Dispatch {
    requests: mpsc::UnboundedSender<Request>,
}

impl Dispatch {
    pub(crate) fn new() -> (Dispatch, mpsc::UnboundedReceiver<Request>) {
        let (requests, receiver) = mpsc::unbounded_channel();
        (Dispatch { requests }, receiver)
    }

    /// Routes `tenant`'s waiting conversations soon (requests pile up into one pass).
    pub(crate) fn request(&self, tenant: TenantId) {
        // Fails only once the dispatcher has stopped with the runtime.
        let _ = self.requests.send(Request { tenant, done: None });
    }

    /// Routes `tenant`'s waiting conversations and returns once that pass is over.
    pub(crate) async fn route_now(&self, tenant: TenantId) {
        let (done, finished) = oneshot::channel();
        let request = Request {
            tenant,
            done: Some(done),
        };
        if self.requests.send(request).is_ok() {
            let _ = finished.await;
        }
    }
}

/// Routes waiting conversations whenever asked, until the runtime stops.
pub(crate) async fn run(runtime: Arc<Runtime>, mut requests: mpsc::UnboundedReceiver<Request>) {
    while let Some(first) = requests.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = requests.try_recv() {
            batch.push(more);
        }
        let mut tenants: Vec<TenantId> = Vec::new();
        let mut seen = HashSet::new();
        for request in &batch {
            if seen.insert(request.tenant.clone()) {
                tenants.push(request.tenant.clone());
            }
        }
        for tenant in tenants {
            route_tenant(&runtime, &tenant).await;
        }
        for request in batch {
            if let Some(done) = request.done {
                let _ = done.send(());
            }
        }
    }
}

/// Offers each waiting conversation of `tenant`, oldest first, to the router.
async fn route_tenant(runtime: &Runtime, tenant: &TenantId) {
    let shared = &runtime.conversations;
    // Another node routes the tenants it owns.
    if !shared.tenure.acts_for(tenant) {
        return;
    }
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
        // leaves it waiting; the next change of presence or load routes it again. A failure
        // that recorded nothing and may pass (the runtime overloaded, the store failing) is
        // tried again shortly, since no change may come to trigger it.
        match runtime.execute(id, assign, None).await {
            Ok(_) => {}
            Err(error) if error.is_retryable() || matches!(error, crate::Error::Store(_)) => {
                debug!(conversation_id = %id, %error, "routing failed; trying again shortly");
                let dispatch = shared.dispatch.clone();
                let tenant = tenant.clone();
                runtime.ai_runtime.spawn(async move {
                    tokio::time::sleep(RETRY_AFTER).await;
                    dispatch.request(tenant);
                });
                return;
            }
            Err(error) => debug!(conversation_id = %id, %error, "routing refused"),
        }
    }
}
