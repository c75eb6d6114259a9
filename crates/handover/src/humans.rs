//! Humans: the directory that `decide` consults (shared by every conversation actor, like the
//! roster), and its single writer. A human going offline or being removed puts the
//! conversations they handle back in their queues; a human becoming available lets the
//! queues of their tenant move.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use handover_core::{
    human, ConversationCommand, Directory, Event, HumanCommand, HumanEvent, HumanId, Presence,
    StreamId,
};
use handover_store::{ExpectedVersion, RecordedEvent, StoreError};
use tracing::{debug, info};

use crate::error::Error;
use crate::runtime::Runtime;

/// The directory behind a lock: conversation actors read it while they decide; [`Humans`] is
/// its only writer.
pub(crate) struct SharedDirectory(RwLock<Directory>);

impl SharedDirectory {
    pub(crate) fn new(directory: Directory) -> SharedDirectory {
        SharedDirectory(RwLock::new(directory))
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Directory> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Folds a human's event another node recorded (see `follower`).
    pub(crate) fn follow(
        &self,
        event: &handover_core::Event,
    ) -> Result<(), handover_core::Rejection> {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .evolve_stored(event)
    }

    fn evolve(&self, event: &HumanEvent) -> Result<(), handover_core::Rejection> {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .evolve(event)
    }
}

/// The single writer of every human's stream: commands on humans run one at a time, each
/// decided on the directory it leaves, appended, then applied.
pub(crate) struct Humans {
    versions: tokio::sync::Mutex<HashMap<HumanId, u64>>,
}

impl Humans {
    pub(crate) fn new(versions: HashMap<HumanId, u64>) -> Humans {
        Humans {
            versions: tokio::sync::Mutex::new(versions),
        }
    }
}

/// Runs a command on a human's registration, then what it implies for their conversations.
pub(crate) async fn execute(
    runtime: &Runtime,
    id: HumanId,
    command: HumanCommand,
) -> Result<Vec<Arc<RecordedEvent>>, Error> {
    let shared = &runtime.conversations;
    let records = {
        let mut versions = runtime.humans.versions.lock().await;
        let events = {
            let directory = shared.directory.read();
            human::decide(&id, directory.get(&id), &command)?
        };
        let stream = StreamId::Human(id.clone());
        let version = runtime.expected_version(&stream, versions.get(&id).copied().unwrap_or(0));
        let expected = match version {
            0 => ExpectedVersion::NoStream,
            v => ExpectedVersion::Exact(v),
        };
        let events: Vec<Event> = events.into_iter().map(Event::Human).collect();
        let records = shared
            .store
            .append(&stream, expected, events)
            .await?
            .map_err(|conflict| {
                Error::Store(StoreError::Engine(format!(
                    "another writer appended to human {id}: {conflict}"
                )))
            })?;
        for record in &records {
            if let Event::Human(event) = &record.event {
                shared
                    .directory
                    .evolve(event)
                    .map_err(|r| StoreError::breaks_rules(record, r))?;
            }
            versions.insert(id.clone(), record.seq);
        }
        records
    };
    info!(human_id = %id, events = records.len(), "human command recorded");
    after_change(runtime, &id).await;
    Ok(records)
}

/// Brings `human`'s conversations and their tenant's queues in line with their presence.
pub(crate) async fn after_change(runtime: &Runtime, human: &HumanId) {
    let shared = &runtime.conversations;
    let (tenant, signed_out) = {
        let directory = shared.directory.read();
        let Some(found) = directory.get(human) else {
            return;
        };
        (
            found.profile.tenant.clone(),
            found.removed || found.presence == Presence::Offline,
        )
    };
    if signed_out {
        let handled = shared.board.lock().handled_by(human);
        for conversation_id in handled {
            let requeue = Arc::new(ConversationCommand::Requeue {
                human: human.clone(),
            });
            if let Err(error) = runtime.execute(conversation_id, requeue, None).await {
                debug!(%conversation_id, %error, "requeue not recorded");
            }
        }
    }
    shared.dispatch.request(tenant);
}

/// At start: puts back in their queues the conversations of humans who went offline or were
/// removed before their conversations were requeued (the process stopped in between), and
/// routes every waiting conversation.
pub(crate) async fn reconcile(runtime: Arc<Runtime>) {
    let shared = &runtime.conversations;
    let signed_out: Vec<HumanId> = shared
        .directory
        .read()
        .all()
        .filter(|h| h.removed || h.presence == Presence::Offline)
        .map(|h| h.profile.id.clone())
        .collect();
    for human in signed_out {
        if !shared.board.lock().handled_by(&human).is_empty() {
            after_change(&runtime, &human).await;
        }
    }
    let tenants = shared.board.lock().waiting_tenants();
    for tenant in tenants {
        shared.dispatch.request(tenant);
    }
}
