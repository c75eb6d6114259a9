//! Starting a runtime: the start-up projection read from the log (the roster, and which
//! conversations each AI agent holds), the actor system on threads of its own, and the
//! runtime that runs the AI agents' code.

use std::collections::HashMap;

use actix::{Arbiter, ArbiterHandle, System};
use handover_core::{
    conversation, AiAgentId, Conversation, ConversationId, Directory, Epoch, Event, HumanId,
    Roster, Settings, StreamId, Timestamp,
};
use handover_store::{EventStore, StoreError};
use tokio::sync::oneshot;

use crate::board::BoardState;
use crate::conversation_actor::evolve_record;
use crate::error::Error;

/// Events read per step when scanning the log at start.
const STARTUP_SCAN_EVENTS_MAX: usize = 10_000;

/// What the log says when the runtime starts.
pub(crate) struct Projection {
    pub(crate) roster: Roster,
    /// The version of each AI agent's registration stream.
    pub(crate) versions: HashMap<AiAgentId, u64>,
    /// Which conversations each AI agent holds, so attached agents resume them.
    pub(crate) assignments: HashMap<AiAgentId, HashMap<ConversationId, Epoch>>,
    /// Every registered human.
    pub(crate) directory: Directory,
    /// The version of each human's stream.
    pub(crate) human_versions: HashMap<HumanId, u64>,
    /// Every open conversation's controller, the loads and the queues.
    pub(crate) board: BoardState,
    /// Every conversation's line in the live queries.
    pub(crate) listing: crate::listing::Listing,
    /// Every open conversation's next deadline, to arm again.
    pub(crate) deadlines: Vec<(ConversationId, Timestamp)>,
    /// For a shared log: where the follower starts, and what it knows already.
    pub(crate) follow: Option<crate::follower::Start>,
}

impl Projection {
    pub(crate) async fn read(
        store: &dyn EventStore,
        settings: &Settings,
    ) -> Result<Projection, Error> {
        // A shared log moves while it is read: the follower starts from before the first read
        // and skips what the reads already hold (by seq).
        let from = store.head() + 1;
        let (roster, versions) = load_roster(store).await?;
        let (directory, human_versions) = load_directory(store).await?;
        let listing = crate::listing::Listing::default();
        let (states, seqs) = load_conversations(store, &listing).await?;
        let follow = store.is_shared().then(|| {
            let mut known: HashMap<StreamId, u64> = seqs
                .iter()
                .map(|(id, seq)| (StreamId::Conversation(*id), *seq))
                .collect();
            known.extend(
                versions
                    .iter()
                    .map(|(id, seq)| (StreamId::AiAgent(id.clone()), *seq)),
            );
            known.extend(
                human_versions
                    .iter()
                    .map(|(id, seq)| (StreamId::Human(id.clone()), *seq)),
            );
            crate::follower::Start {
                from,
                known,
                states: states.clone(),
            }
        });
        let mut assignments: HashMap<AiAgentId, HashMap<ConversationId, Epoch>> = HashMap::new();
        let mut board = BoardState::default();
        let mut deadlines = Vec::new();
        for (id, state) in states {
            if let Some(assignment) = state.assignment() {
                assignments
                    .entry(assignment.agent_id)
                    .or_default()
                    .insert(id, assignment.epoch);
            }
            if let Some(at) = conversation::next_deadline(&state, settings) {
                deadlines.push((id, at));
            }
            board.update(id, &state);
        }
        Ok(Projection {
            roster,
            versions,
            assignments,
            directory,
            human_versions,
            board,
            listing,
            deadlines,
            follow,
        })
    }
}

/// Folds every human stream into the directory, noting each stream's version.
async fn load_directory(
    store: &dyn EventStore,
) -> Result<(Directory, HashMap<HumanId, u64>), Error> {
    let mut directory = Directory::new();
    let mut versions = HashMap::new();
    for record in store.read_humans().await? {
        directory
            .evolve_stored(&record.event)
            .map_err(|r| StoreError::breaks_rules(&record, r))?;
        if let Event::Human(event) = &record.event {
            versions.insert(event.human_id().clone(), record.seq);
        }
    }
    Ok((directory, versions))
}

/// Folds every AI-agent stream into the roster, noting each stream's version.
async fn load_roster(store: &dyn EventStore) -> Result<(Roster, HashMap<AiAgentId, u64>), Error> {
    let mut roster = Roster::default();
    let mut versions = HashMap::new();
    for record in store.read_ai_agents().await? {
        roster
            .evolve_stored(&record.event)
            .map_err(|r| StoreError::breaks_rules(&record, r))?;
        if let Event::AiAgent(event) = &record.event {
            versions.insert(event.agent_id().clone(), record.seq);
        }
    }
    Ok((roster, versions))
}

/// Folds every conversation of the log, with the times its events were recorded at.
async fn load_conversations(
    store: &dyn EventStore,
    listing: &crate::listing::Listing,
) -> Result<
    (
        HashMap<ConversationId, Conversation>,
        HashMap<ConversationId, u64>,
    ),
    Error,
> {
    let mut states: HashMap<ConversationId, Conversation> = HashMap::new();
    let mut seqs: HashMap<ConversationId, u64> = HashMap::new();
    let mut from = 1;
    loop {
        let batch = store.read_all(from, STARTUP_SCAN_EVENTS_MAX).await?;
        let Some(last) = batch.last() else { break };
        from = last.position + 1;
        for record in &batch {
            let StreamId::Conversation(id) = record.stream else {
                continue;
            };
            let state = states.entry(id).or_default();
            *state = evolve_record(std::mem::take(state), record)?;
            listing.observe(id, state, [record]);
            seqs.insert(id, record.seq);
        }
    }
    // Closed conversations need nothing at start.
    states.retain(|_, state| matches!(state, Conversation::Open(_)));
    Ok((states, seqs))
}

/// The actor system, running on a thread of its own with `workers` arbiters.
pub(crate) struct Actors {
    pub(crate) system: System,
    pub(crate) workers: Vec<ArbiterHandle>,
    /// Resolves once the system and every arbiter have stopped.
    pub(crate) stopped: oneshot::Receiver<()>,
}

impl Actors {
    pub(crate) async fn start(workers: usize) -> Result<Actors, Error> {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name("handover-actors".to_owned())
            .spawn(move || {
                let runner = System::new();
                let arbiters: Vec<Arbiter> = (0..workers).map(|_| Arbiter::new()).collect();
                let handles = arbiters.iter().map(Arbiter::handle).collect::<Vec<_>>();
                let _ = ready_tx.send((System::current(), handles));
                let _ = runner.run();
                for arbiter in arbiters {
                    arbiter.stop();
                    let _ = arbiter.join();
                }
                let _ = done_tx.send(());
            })
            .map_err(StoreError::from)?;
        let (system, workers) = ready_rx.await.map_err(|_| Error::Stopped)?;
        Ok(Actors {
            system,
            workers,
            stopped: done_rx,
        })
    }
}

/// The runtime the AI agents' code runs on: threads of its own, never the actors' threads, so
/// a behaviour that computes for a while does not hold up conversations.
pub(crate) fn ai_runtime(workers: usize) -> Result<tokio::runtime::Runtime, Error> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("handover-ai")
        .enable_all()
        .build()
        .map_err(StoreError::from)?)
}
