//! The board: a live summary of every open conversation's controller, kept in memory beside
//! the actors (rebuilt from the log at start, updated by each conversation actor when its
//! state changes). It answers what a single conversation cannot: each human's load, which
//! conversations wait in which queue and since when, and whose conversations a human going
//! offline leaves behind.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use handover_core::{
    AiAgentId, Conversation, ConversationId, Handler, HumanId, Loads, TeamId, TenantId, Timestamp,
    WaitCause,
};

use crate::router::Waiting;
use crate::sync::lock;

/// Who controls a conversation, as the board keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Controller {
    Ai(AiAgentId),
    Human(HumanId),
    Waiting {
        team: Option<TeamId>,
        since: Timestamp,
        cause: WaitCause,
    },
    /// Legacy human-handled with nobody named, or closed (closed entries are dropped).
    Nobody,
}

#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub(crate) tenant: TenantId,
    pub(crate) controller: Controller,
    pub(crate) handed_off_by: Option<HumanId>,
}

impl Entry {
    fn of(state: &Conversation) -> Option<Entry> {
        let Conversation::Open(open) = state else {
            return None;
        };
        let controller = match &open.handler {
            Handler::Ai { agent_id, .. } => Controller::Ai(agent_id.clone()),
            Handler::AwaitingHuman { team, since, cause } => Controller::Waiting {
                team: team.clone(),
                since: *since,
                cause: *cause,
            },
            _ => match open.assigned_human() {
                Some(human) => Controller::Human(human.clone()),
                None => Controller::Nobody,
            },
        };
        Some(Entry {
            tenant: open.tenant.clone(),
            controller,
            handed_off_by: open.handed_off_by.clone(),
        })
    }
}

/// What a change of state means for routing.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Change {
    /// The conversation now waits (and did not, or waits in another queue).
    pub(crate) started_waiting: bool,
    /// A human handles one conversation fewer: their queues may move.
    pub(crate) freed: Option<HumanId>,
}

#[derive(Default)]
pub(crate) struct BoardState {
    entries: HashMap<ConversationId, Entry>,
    pub(crate) loads: Loads,
    /// Every waiting conversation, oldest first.
    waiting: BTreeSet<(Timestamp, ConversationId)>,
    by_human: HashMap<HumanId, HashSet<ConversationId>>,
}

impl BoardState {
    /// Records `id`'s new state and says what changed for routing.
    pub(crate) fn update(&mut self, id: ConversationId, state: &Conversation) -> Change {
        let before = self.entries.remove(&id);
        let after = Entry::of(state);
        let mut change = Change::default();
        if let Some(before) = &before {
            match &before.controller {
                Controller::Human(human) => {
                    self.loads.remove(human);
                    if let Some(set) = self.by_human.get_mut(human) {
                        set.remove(&id);
                        if set.is_empty() {
                            self.by_human.remove(human);
                        }
                    }
                    let still = matches!(&after, Some(Entry { controller: Controller::Human(h), .. }) if h == human);
                    if !still {
                        change.freed = Some(human.clone());
                    }
                }
                Controller::Waiting { since, .. } => {
                    self.waiting.remove(&(*since, id));
                }
                _ => {}
            }
        }
        if let Some(after) = after {
            match &after.controller {
                Controller::Human(human) => {
                    self.loads.add(human);
                    self.by_human.entry(human.clone()).or_default().insert(id);
                }
                Controller::Waiting { since, .. } => {
                    self.waiting.insert((*since, id));
                    change.started_waiting =
                        before.map(|b| b.controller) != Some(after.controller.clone());
                }
                _ => {}
            }
            self.entries.insert(id, after);
        }
        change
    }

    /// The conversations `human` handles.
    pub(crate) fn handled_by(&self, human: &HumanId) -> Vec<ConversationId> {
        self.by_human
            .get(human)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The waiting conversations of `tenant` (every tenant's for `None`), oldest first.
    pub(crate) fn waiting(&self, tenant: Option<&TenantId>) -> Vec<Waiting> {
        self.waiting
            .iter()
            .filter_map(|(_, id)| {
                let entry = self.entries.get(id)?;
                if tenant.is_some_and(|t| *t != entry.tenant) {
                    return None;
                }
                let Controller::Waiting { team, since, cause } = &entry.controller else {
                    return None;
                };
                Some(Waiting {
                    conversation_id: *id,
                    tenant: entry.tenant.clone(),
                    team: team.clone(),
                    since: *since,
                    cause: *cause,
                    handed_off_by: entry.handed_off_by.clone(),
                })
            })
            .collect()
    }

    /// The tenants with a conversation waiting.
    /// The tenant of an open conversation the board holds.
    pub(crate) fn tenant_of(&self, id: &ConversationId) -> Option<TenantId> {
        self.entries.get(id).map(|entry| entry.tenant.clone())
    }

    pub(crate) fn waiting_tenants(&self) -> HashSet<TenantId> {
        self.waiting
            .iter()
            .filter_map(|(_, id)| self.entries.get(id).map(|e| e.tenant.clone()))
            .collect()
    }
}

/// The board behind a lock, shared by every conversation actor.
#[derive(Default)]
pub(crate) struct Board(Mutex<BoardState>);

impl Board {
    pub(crate) fn new(state: BoardState) -> Board {
        Board(Mutex::new(state))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, BoardState> {
        lock(&self.0)
    }
}
