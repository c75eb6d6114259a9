//! On a log other processes write too (a cluster's node): their commits, folded into this
//! node's read models, so that every node answers for every tenant (the board's queues and
//! loads, the directory, the roster). The tenants this node owns are kept by its own actors
//! and writers, synchronously after each append, as on a single node; the follower leaves them
//! alone. It reads the store's feed in position order, and the log itself after a gap, and
//! skips what the start-up reads already hold, by seq, so starting early is harmless.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use handover_core::placement::shard_of;
use handover_core::{conversation, Conversation, ConversationId, Event, StreamId, TenantId};
use handover_store::RecordedEvent;
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, warn};

use crate::conversation_actor::evolve_record;
use crate::messages::{Assigned, Retire, Unassigned};
use crate::runtime::Runtime;

/// Records read per step while catching up.
const PAGE: usize = 4096;

/// Where the follower starts: the first position it reads, each stream's seq the start-up
/// reads already hold, and the open conversations' states.
pub(crate) struct Start {
    pub(crate) from: u64,
    pub(crate) known: HashMap<StreamId, u64>,
    pub(crate) states: HashMap<ConversationId, Conversation>,
}

struct Follower {
    runtime: Arc<Runtime>,
    known: HashMap<StreamId, u64>,
    states: HashMap<ConversationId, Conversation>,
}

/// How often the follower compares the leases with the tenants it acts for.
const OWNERSHIP_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// Follows the log until the store closes.
pub(crate) async fn run(runtime: Arc<Runtime>, start: Start) {
    let store = Arc::clone(&runtime.conversations.store);
    let mut live = store.subscribe();
    let mut follower = Follower {
        runtime,
        known: start.known,
        states: start.states,
    };
    let mut ownership = tokio::time::interval(OWNERSHIP_EVERY);
    let mut next = start.from;
    loop {
        // From the log, up to its end.
        loop {
            let page = match store.read_all(next, PAGE).await {
                Ok(page) => page,
                Err(error) => {
                    warn!(%error, "the follower cannot read the log; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            for record in &page {
                follower.apply(record);
                next = record.position + 1;
            }
            follower.runtime.followed.send_replace(next - 1);
            if page.len() < PAGE {
                break;
            }
        }
        // Caught up with the log: the tenants gained or lost since are taken up or let go
        // on states that hold every event the former owner committed before its lease moved.
        follower.reconcile();
        // Then live, as long as nothing is missed.
        loop {
            let received = tokio::select! {
                received = live.recv() => received,
                _ = ownership.tick() => {
                    // A shard gained or lost: read the log to its end first (the database's,
                    // not the feed's idea of it), so a gained tenant is taken up on states
                    // that hold every commit of its former owner.
                    if follower.ownership_changed() {
                        break;
                    }
                    continue;
                }
            };
            match received {
                Ok(record) if record.position < next => {}
                Ok(record) if record.position == next => {
                    follower.apply(&record);
                    follower.runtime.followed.send_replace(next);
                    next += 1;
                }
                // A gap (the feed started later than the log's end, or lagged): read it.
                Ok(_) | Err(RecvError::Lagged(_)) => break,
                Err(RecvError::Closed) => return,
            }
        }
    }
}

impl Follower {
    /// Whether the leases the store holds differ from the shards the runtime acts for.
    fn ownership_changed(&self) -> bool {
        let shared = &self.runtime.conversations;
        let owned: HashSet<u16> = shared.store.owned_shards().into_iter().collect();
        owned != shared.tenure.shards()
    }

    /// Takes up the shards this node now holds and lets go of the ones it no longer does.
    /// Called only once the follower has read the log to its end.
    fn reconcile(&mut self) {
        let shared = &self.runtime.conversations;
        let owned: HashSet<u16> = shared.store.owned_shards().into_iter().collect();
        let taken = shared.tenure.shards();
        let lost: HashSet<u16> = taken.difference(&owned).copied().collect();
        let gained: HashSet<u16> = owned.difference(&taken).copied().collect();
        if !lost.is_empty() {
            debug!(shards = lost.len(), "another node now owns these shards");
            // First stop deciding, then stop the actors and timers of those tenants.
            for &shard in &lost {
                shared.tenure.let_go(shard);
            }
            self.let_go(&lost);
        }
        if !gained.is_empty() {
            debug!(shards = gained.len(), "this node now owns these shards");
            self.take_up(&gained);
            for &shard in &gained {
                shared.tenure.take_up(shard);
            }
        }
    }

    fn in_shards<'a>(
        &'a self,
        shards: &'a HashSet<u16>,
    ) -> impl Iterator<Item = (&'a ConversationId, &'a Conversation, &'a TenantId)> + 'a {
        self.states.iter().filter_map(move |(id, state)| {
            let tenant = state.tenant()?;
            shards
                .contains(&shard_of(tenant))
                .then_some((id, state, tenant))
        })
    }

    fn take_up(&self, shards: &HashSet<u16>) {
        let shared = &self.runtime.conversations;
        let mut tenants = HashSet::new();
        for (id, state, tenant) in self.in_shards(shards) {
            tenants.insert(tenant.clone());
            // `decide(Tick)` records each deadline once: one the former owner recorded is not
            // recorded again.
            shared
                .timers
                .arm(*id, conversation::next_deadline(state, &shared.settings));
            if let Some(assignment) = state.assignment() {
                shared
                    .assignments
                    .started(&assignment.agent_id, *id, assignment.epoch);
                if let Some(agent) = shared.agents.get(&assignment.agent_id) {
                    agent.assigned.do_send(Assigned {
                        conversation_id: *id,
                        assignment,
                        through: None,
                    });
                }
            }
        }
        for tenant in tenants {
            shared.dispatch.request(tenant);
        }
    }

    fn let_go(&self, shards: &HashSet<u16>) {
        let shared = &self.runtime.conversations;
        for (id, state, _) in self.in_shards(shards) {
            shared.timers.arm(*id, None);
            if let Some(assignment) = state.assignment() {
                shared.assignments.ended(&assignment.agent_id, *id);
                if let Some(agent) = shared.agents.get(&assignment.agent_id) {
                    agent.unassigned.do_send(Unassigned {
                        conversation_id: *id,
                        epoch: assignment.epoch,
                    });
                }
            }
            if let Some(actor) = shared.live.get(id) {
                actor.do_send(Retire);
            }
        }
    }

    fn apply(&mut self, record: &RecordedEvent) {
        let known = self.known.entry(record.stream.clone()).or_default();
        if record.seq <= *known {
            return;
        }
        *known = record.seq;
        if matches!(record.stream, StreamId::Human(_) | StreamId::AiAgent(_)) {
            self.runtime
                .seen_versions
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .insert(record.stream.clone(), record.seq);
        }
        let shared = &self.runtime.conversations;
        match &record.stream {
            StreamId::Conversation(id) => {
                let state = self.states.remove(id).unwrap_or_default();
                let state = match evolve_record(state, record) {
                    Ok(state) => state,
                    Err(error) => {
                        warn!(conversation_id = %id, %error, "the follower cannot fold a record");
                        return;
                    }
                };
                if let Some(tenant) = state.tenant() {
                    if !shared.tenure.acts_for(tenant) {
                        shared.track(*id, &state);
                        shared.listing.observe(*id, &state, [record]);
                    }
                }
                if matches!(state, Conversation::Open(_)) {
                    self.states.insert(*id, state);
                }
            }
            StreamId::Human(id) => {
                let tenant = shared
                    .directory
                    .read()
                    .get(id)
                    .map(|human| human.profile.tenant.clone())
                    .or_else(|| opening_tenant(&record.event));
                if tenant.is_some_and(|tenant| !shared.tenure.acts_for(&tenant)) {
                    if let Err(rejection) = shared.directory.follow(&record.event) {
                        warn!(human = %id, %rejection, "the follower cannot fold a record");
                    }
                }
            }
            StreamId::AiAgent(id) => {
                let tenant = shared
                    .roster
                    .read()
                    .get(id)
                    .map(|agent| agent.tenant.clone())
                    .or_else(|| opening_tenant(&record.event));
                if tenant.is_some_and(|tenant| !shared.tenure.acts_for(&tenant)) {
                    if let Err(rejection) = shared.roster.evolve(&record.event) {
                        warn!(agent = %id, %rejection, "the follower cannot fold a record");
                    }
                }
            }
        }
    }
}

fn opening_tenant(event: &Event) -> Option<TenantId> {
    handover_core::placement::opening_tenant(event)
}
