//! Humans: one registration stream per human (agent or supervisor), and the directory, the fold
//! of all of them, that the conversation rules consult to decide who may act.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::command::HumanCommand;
use crate::event::HumanEvent;
use crate::ids::{AgentName, HumanId, TeamId, TenantId};
use crate::limits::{HUMAN_CAPACITY_MAX, TEAMS_COUNT_MAX};
use crate::rejection::Rejection;
use crate::Event;

/// What a human may do. Closed by nature in a contact center: agents handle conversations,
/// supervisors also oversee every conversation of their tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Role {
    /// Handles the conversations assigned to them, accepts from their teams' queues.
    Agent,
    /// Everything an agent may do, on any conversation of their tenant: assume it from the AI,
    /// assign, transfer, close, lower flags.
    Supervisor,
}

impl Role {
    /// `agent` or `supervisor`, as exported.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
        }
    }
}

/// Whether a human can take conversations now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Presence {
    /// Signed in and taking conversations: the router may assign to them.
    Available,
    /// Signed in but not taking new conversations: keeps the ones they have, and the router
    /// gives them none (they may still accept one from their queues themselves).
    Away,
    /// Signed out: may not act; the conversations they handle go back to their queue.
    Offline,
}

impl Presence {
    /// `available`, `away` or `offline`, as exported.
    pub fn as_str(self) -> &'static str {
        match self {
            Presence::Available => "available",
            Presence::Away => "away",
            Presence::Offline => "offline",
        }
    }
}

/// Who a human is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HumanProfile {
    /// Their id.
    pub id: HumanId,
    /// The tenant they work for.
    pub tenant: TenantId,
    /// Their display name.
    pub name: AgentName,
    /// Agent or supervisor.
    pub role: Role,
    /// The teams whose queues they take conversations from.
    pub teams: Vec<TeamId>,
    /// The most conversations they handle at once.
    pub capacity: u32,
}

/// A registered human and their presence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Human {
    /// Who they are.
    pub profile: HumanProfile,
    /// Available, away or offline. A new registration starts offline.
    pub presence: Presence,
    /// Removed from the directory: kept so the log's names still resolve, but may not act.
    pub removed: bool,
}

impl Human {
    /// Whether the human is a supervisor.
    pub fn is_supervisor(&self) -> bool {
        self.profile.role == Role::Supervisor
    }

    /// Whether the human belongs to `team`.
    pub fn in_team(&self, team: &TeamId) -> bool {
        self.profile.teams.contains(team)
    }
}

/// Turns a command on one human's registration into events, or refuses it. `state` is `None`
/// when the human was never registered.
pub fn decide(
    human_id: &HumanId,
    state: Option<&Human>,
    command: &HumanCommand,
) -> Result<Vec<HumanEvent>, Rejection> {
    let event = match (command, state) {
        (HumanCommand::Register { .. }, Some(_)) => {
            return Err(Rejection::HumanAlreadyRegistered {
                human_id: human_id.clone(),
            })
        }
        (
            HumanCommand::Register {
                tenant,
                name,
                role,
                teams,
                capacity,
            },
            None,
        ) => {
            if teams.len() > TEAMS_COUNT_MAX {
                return Err(Rejection::TooManyTeams {
                    len: teams.len(),
                    max: TEAMS_COUNT_MAX,
                });
            }
            if *capacity == 0 || *capacity > HUMAN_CAPACITY_MAX {
                return Err(Rejection::CapacityOutOfRange {
                    capacity: *capacity,
                    max: HUMAN_CAPACITY_MAX,
                });
            }
            let mut teams = teams.clone();
            teams.sort();
            teams.dedup();
            HumanEvent::Registered {
                human_id: human_id.clone(),
                tenant: tenant.clone(),
                name: name.clone(),
                role: *role,
                teams,
                capacity: *capacity,
            }
        }
        (_, None) => {
            return Err(Rejection::UnknownHuman {
                human_id: human_id.clone(),
            })
        }
        (_, Some(human)) if human.removed => {
            return Err(Rejection::HumanRemoved {
                human_id: human_id.clone(),
            })
        }
        (HumanCommand::SetPresence { presence }, Some(_)) => HumanEvent::PresenceChanged {
            human_id: human_id.clone(),
            presence: *presence,
        },
        (HumanCommand::Remove, Some(_)) => HumanEvent::Removed {
            human_id: human_id.clone(),
        },
    };
    evolve(state.cloned(), &event)?;
    Ok(vec![event])
}

/// Applies one event to a human's registration.
pub fn evolve(state: Option<Human>, event: &HumanEvent) -> Result<Option<Human>, Rejection> {
    match (state, event) {
        (
            None,
            HumanEvent::Registered {
                human_id,
                tenant,
                name,
                role,
                teams,
                capacity,
            },
        ) => Ok(Some(Human {
            profile: HumanProfile {
                id: human_id.clone(),
                tenant: tenant.clone(),
                name: name.clone(),
                role: *role,
                teams: teams.clone(),
                capacity: *capacity,
            },
            presence: Presence::Offline,
            removed: false,
        })),
        (Some(_), HumanEvent::Registered { human_id, .. }) => {
            Err(Rejection::HumanAlreadyRegistered {
                human_id: human_id.clone(),
            })
        }
        (None, other) => Err(Rejection::UnknownHuman {
            human_id: other.human_id().clone(),
        }),
        (Some(human), other) if human.removed => Err(Rejection::HumanRemoved {
            human_id: other.human_id().clone(),
        }),
        (Some(mut human), HumanEvent::PresenceChanged { human_id, presence }) => {
            if human.presence == *presence {
                return Err(Rejection::PresenceUnchanged {
                    human_id: human_id.clone(),
                    presence: *presence,
                });
            }
            human.presence = *presence;
            Ok(Some(human))
        }
        (Some(mut human), HumanEvent::Removed { .. }) => {
            human.removed = true;
            human.presence = Presence::Offline;
            Ok(Some(human))
        }
    }
}

/// Every registered human: the fold of all human streams, as the [`crate::Roster`] is for AI
/// agents. The conversation rules read it to decide who may act.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Directory {
    humans: BTreeMap<HumanId, Human>,
}

impl Directory {
    /// An empty directory.
    pub const fn new() -> Directory {
        Directory {
            humans: BTreeMap::new(),
        }
    }

    /// The human with this id, if registered (removed ones included).
    pub fn get(&self, id: &HumanId) -> Option<&Human> {
        self.humans.get(id)
    }

    /// Applies one event of any human's stream.
    pub fn evolve(&mut self, event: &HumanEvent) -> Result<(), Rejection> {
        let id = event.human_id();
        if let Some(human) = evolve(self.humans.get(id).cloned(), event)? {
            self.humans.insert(id.clone(), human);
        }
        Ok(())
    }

    /// Applies a stored event if it is a human's; other events are ignored.
    pub fn evolve_stored(&mut self, event: &Event) -> Result<(), Rejection> {
        match event {
            Event::Human(event) => self.evolve(event),
            _ => Ok(()),
        }
    }

    /// Every registered human, removed ones included, sorted by id.
    pub fn all(&self) -> impl Iterator<Item = &Human> {
        self.humans.values()
    }

    /// The humans of `tenant` who are not removed, sorted by id.
    pub fn of_tenant<'a>(&'a self, tenant: &'a TenantId) -> impl Iterator<Item = &'a Human> + 'a {
        self.humans
            .values()
            .filter(move |h| !h.removed && h.profile.tenant == *tenant)
    }
}

/// How many conversations each human handles now: the open conversations whose controller is
/// that human. The runtime keeps it beside the directory and gives it to the rules, so "the
/// router never assigns someone at capacity" is checked where every rule is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loads {
    counts: BTreeMap<HumanId, u32>,
}

impl Loads {
    /// No load for anyone.
    pub const fn new() -> Loads {
        Loads {
            counts: BTreeMap::new(),
        }
    }

    /// The number of conversations `human` handles.
    pub fn of(&self, human: &HumanId) -> u32 {
        self.counts.get(human).copied().unwrap_or(0)
    }

    /// Sets `human`'s load.
    pub fn set(&mut self, human: HumanId, load: u32) {
        if load == 0 {
            self.counts.remove(&human);
        } else {
            self.counts.insert(human, load);
        }
    }

    /// One more conversation for `human`.
    pub fn add(&mut self, human: &HumanId) {
        *self.counts.entry(human.clone()).or_insert(0) += 1;
    }

    /// One conversation fewer for `human`.
    pub fn remove(&mut self, human: &HumanId) {
        if let Some(count) = self.counts.get_mut(human) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.counts.remove(human);
            }
        }
    }
}
