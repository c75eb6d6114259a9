//! AI agents: one registration stream per agent, and the roster, the fold of all of them, that
//! handoffs consult.

use std::collections::BTreeMap;

use crate::command::AiAgentCommand;
use crate::event::AiAgentEvent;
use crate::ids::{AgentName, AiAgentId, Specialty, TenantId};
use crate::limits::SPECIALTIES_COUNT_MAX;
use crate::rejection::Rejection;
use crate::Event;

/// Who an AI agent is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AiAgentProfile {
    /// Its id.
    pub id: AiAgentId,
    /// Its display name.
    pub name: AgentName,
    /// What it specialises in.
    pub specialties: Vec<Specialty>,
}

/// A registered AI agent and whether it can be chosen for a handoff.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AiAgent {
    /// Who it is.
    pub profile: AiAgentProfile,
    /// Whether it appears in the "select the AI agent" list.
    pub active: bool,
    /// The tenant whose conversations it may take.
    pub tenant: TenantId,
}

/// Turns a command on one AI agent's registration into events, or refuses it.
/// `state` is `None` when the agent was never registered.
pub fn decide(
    agent_id: &AiAgentId,
    state: Option<&AiAgent>,
    command: &AiAgentCommand,
) -> Result<Vec<AiAgentEvent>, Rejection> {
    let event = match (command, state) {
        (AiAgentCommand::Register { .. }, Some(_)) => {
            return Err(Rejection::AiAgentAlreadyRegistered {
                agent_id: agent_id.clone(),
            })
        }
        (AiAgentCommand::Register { name, specialties }, None) => {
            check_specialties(specialties)?;
            AiAgentEvent::Registered {
                agent_id: agent_id.clone(),
                name: name.clone(),
                specialties: specialties.clone(),
            }
        }
        (AiAgentCommand::RegisterIn { .. }, Some(_)) => {
            return Err(Rejection::AiAgentAlreadyRegistered {
                agent_id: agent_id.clone(),
            })
        }
        (
            AiAgentCommand::RegisterIn {
                tenant,
                name,
                specialties,
            },
            None,
        ) => {
            check_specialties(specialties)?;
            AiAgentEvent::RegisteredIn {
                agent_id: agent_id.clone(),
                tenant: tenant.clone(),
                name: name.clone(),
                specialties: specialties.clone(),
            }
        }
        (_, None) => {
            return Err(Rejection::AiAgentNotRegistered {
                agent_id: agent_id.clone(),
            })
        }
        (AiAgentCommand::Activate, Some(_)) => AiAgentEvent::Activated {
            agent_id: agent_id.clone(),
        },
        (AiAgentCommand::Deactivate, Some(_)) => AiAgentEvent::Deactivated {
            agent_id: agent_id.clone(),
        },
    };
    evolve(state.cloned(), &event)?;
    Ok(vec![event])
}

fn check_specialties(specialties: &[Specialty]) -> Result<(), Rejection> {
    if specialties.len() > SPECIALTIES_COUNT_MAX {
        return Err(Rejection::TooManySpecialties {
            len: specialties.len(),
            max: SPECIALTIES_COUNT_MAX,
        });
    }
    Ok(())
}

/// Applies one event to an AI agent's registration.
pub fn evolve(state: Option<AiAgent>, event: &AiAgentEvent) -> Result<Option<AiAgent>, Rejection> {
    match (state, event) {
        (
            None,
            AiAgentEvent::Registered {
                agent_id,
                name,
                specialties,
            },
        ) => Ok(Some(AiAgent {
            profile: AiAgentProfile {
                id: agent_id.clone(),
                name: name.clone(),
                specialties: specialties.clone(),
            },
            active: false,
            tenant: TenantId::default_tenant(),
        })),
        (
            None,
            AiAgentEvent::RegisteredIn {
                agent_id,
                tenant,
                name,
                specialties,
            },
        ) => Ok(Some(AiAgent {
            profile: AiAgentProfile {
                id: agent_id.clone(),
                name: name.clone(),
                specialties: specialties.clone(),
            },
            active: false,
            tenant: tenant.clone(),
        })),
        (Some(agent), AiAgentEvent::Registered { .. } | AiAgentEvent::RegisteredIn { .. }) => {
            Err(Rejection::AiAgentAlreadyRegistered {
                agent_id: agent.profile.id,
            })
        }
        (None, other) => Err(Rejection::AiAgentNotRegistered {
            agent_id: other.agent_id().clone(),
        }),
        (Some(mut agent), AiAgentEvent::Activated { agent_id }) => {
            if agent.active {
                return Err(Rejection::AiAgentAlreadyActive {
                    agent_id: agent_id.clone(),
                });
            }
            agent.active = true;
            Ok(Some(agent))
        }
        (Some(mut agent), AiAgentEvent::Deactivated { agent_id }) => {
            if !agent.active {
                return Err(Rejection::AiAgentAlreadyInactive {
                    agent_id: agent_id.clone(),
                });
            }
            agent.active = false;
            Ok(Some(agent))
        }
    }
}

/// Every registered AI agent: the fold of all AI-agent streams.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Roster {
    agents: BTreeMap<AiAgentId, AiAgent>,
}

impl Roster {
    /// The agent with this id, if registered.
    pub fn get(&self, id: &AiAgentId) -> Option<&AiAgent> {
        self.agents.get(id)
    }

    /// Applies one event of any agent's stream.
    pub fn evolve(&mut self, event: &AiAgentEvent) -> Result<(), Rejection> {
        let id = event.agent_id();
        let next = evolve(self.agents.get(id).cloned(), event)?;
        if let Some(agent) = next {
            self.agents.insert(id.clone(), agent);
        }
        Ok(())
    }

    /// Applies a stored event if it is an AI-agent event; conversation events are ignored.
    pub fn evolve_stored(&mut self, event: &Event) -> Result<(), Rejection> {
        match event {
            Event::AiAgent(event) => self.evolve(event),
            _ => Ok(()),
        }
    }

    /// The active agents of `tenant`, optionally only those with `specialty`, sorted by id:
    /// a tenant's "select the AI agent" list.
    pub fn active_in<'a>(
        &'a self,
        tenant: &'a TenantId,
        specialty: Option<&'a Specialty>,
    ) -> impl Iterator<Item = &'a AiAgent> + 'a {
        self.active(specialty)
            .filter(move |agent| agent.tenant == *tenant)
    }

    /// The active agents, optionally only those with `specialty`, sorted by id: the
    /// "select the AI agent" list.
    pub fn active<'a>(
        &'a self,
        specialty: Option<&'a Specialty>,
    ) -> impl Iterator<Item = &'a AiAgent> + 'a {
        self.agents.values().filter(move |agent| {
            agent.active && specialty.is_none_or(|s| agent.profile.specialties.contains(s))
        })
    }

    /// Every registered agent, active or not, sorted by id.
    pub fn all(&self) -> impl Iterator<Item = &AiAgent> {
        self.agents.values()
    }
}
