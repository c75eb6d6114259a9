//! The rules of a conversation event that need more than its own stream: who may act on it
//! (the directory of humans, their tenants and roles), whom the router may give it to (their
//! presence and load), and which AI agents may take it (their tenant). Also the SLA figures,
//! which must agree with the wait they are about.

use handover_core::conversation::{Conversation, Handler, OpenConversation};
use handover_core::{
    Author, ConversationEvent, Directory, Human, HumanId, Loads, Presence, Roster, SystemActor,
    TeamId, TenantId,
};

use super::ConversationHistory;
use crate::fault::FaultKind;

/// How a handoff to an AI agent ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AiOutcome {
    /// The conversation was closed while the AI agent held it: it contained it.
    Contained,
    /// The AI agent gave it back to humans (for any cause).
    Escalated,
    /// A human took it back.
    Reclaimed,
}

/// A stretch during which a human was a conversation's assigned human: from the position of
/// the event that gave it to them to the one that took it away (a wait, another human, an AI
/// handoff, the close); `to` is `None` while it goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HumanSpan {
    /// The human.
    pub human: HumanId,
    /// Where it began.
    pub from: u64,
    /// Where it ended.
    pub to: Option<u64>,
}

pub(crate) type Refusal = (FaultKind, String);

/// What an event's directory rules need to know of the conversation before it, so they can be
/// judged later, against the directory and the loads at the event's position.
#[derive(Clone, Debug)]
pub(crate) struct Facts {
    /// The event's position.
    pub(crate) position: u64,
    name: &'static str,
    tenant: TenantId,
    legacy: bool,
    actor: Option<Actor>,
    target: Option<Target>,
}

/// The human who acted.
#[derive(Clone, Debug)]
struct Actor {
    human: HumanId,
    /// Whether they answered for the conversation without being a supervisor: assigned,
    /// responsible while an AI agent held it, accepting it from a queue, or acting on a
    /// conversation opened before assignment with no human named.
    answerable: bool,
    /// Whose it was, for the message: its responsible human.
    responsible: Option<HumanId>,
    /// When they accept it from a team's queue: the team, which an agent must belong to.
    accepting_from: Option<TeamId>,
    /// The event needs a supervisor.
    supervisor_only: bool,
}

/// The human an assignment gives the conversation to.
#[derive(Clone, Debug)]
struct Target {
    human: HumanId,
    by_router: bool,
}

impl Facts {
    /// The router's assignment: its position and human, whose load it needs.
    pub(crate) fn router_target(&self) -> Option<&HumanId> {
        self.target
            .as_ref()
            .filter(|target| target.by_router)
            .map(|target| &target.human)
    }
}

/// Checks `event` against the directory, the roster and the loads as of the event before it;
/// `history` is the conversation before the event. Events on a conversation not open are left
/// to the state machine, which refuses them.
pub(crate) fn check(
    directory: &Directory,
    roster: &Roster,
    loads: &Loads,
    history: &ConversationHistory,
    event: &ConversationEvent,
    position: u64,
) -> Result<(), Refusal> {
    check_ai_tenant(roster, history, event)?;
    match facts(history, event, position) {
        Some(facts) => judge(&facts, |h| directory.get(h), |h| loads.of(h)),
        None => Ok(()),
    }
}

/// A handoff gives the conversation to an AI agent of its tenant (the roster's other rules are
/// checked with the roster at the handoff's position).
pub(crate) fn check_ai_tenant(
    roster: &Roster,
    history: &ConversationHistory,
    event: &ConversationEvent,
) -> Result<(), Refusal> {
    let (Conversation::Open(open), ConversationEvent::HandedOffToAi { agent_id, .. }) =
        (history.state(), event)
    else {
        return Ok(());
    };
    match roster.get(agent_id) {
        Some(agent) if agent.tenant != open.tenant => Err((
            FaultKind::Tenant,
            format!(
                "{} gives a conversation of tenant {} to AI agent {agent_id} of tenant {}",
                event.type_name(),
                open.tenant,
                agent.tenant
            ),
        )),
        _ => Ok(()),
    }
}

/// What the directory rules of `event`, at `position`, need of the conversation before it;
/// `None` when they have nothing to check.
pub(crate) fn facts(
    history: &ConversationHistory,
    event: &ConversationEvent,
    position: u64,
) -> Option<Facts> {
    let Conversation::Open(open) = history.state() else {
        return None;
    };
    let actor = acting_human(event).map(|actor| {
        let (accepting, accepting_from) = match (event, &open.handler) {
            (
                ConversationEvent::HumanAssigned { human_id, .. },
                Handler::AwaitingHuman { team, .. },
            ) if human_id == actor => (true, team.clone()),
            _ => (false, None),
        };
        let legacy_unassigned = matches!(open.handler, Handler::Human) && open.human.is_none();
        Actor {
            human: actor.clone(),
            answerable: accepting || legacy_unassigned || open.responsible_human() == Some(actor),
            responsible: open.responsible_human().cloned(),
            accepting_from,
            supervisor_only: matches!(
                event,
                ConversationEvent::FlagLowered { .. } | ConversationEvent::PolicyOverridden { .. }
            ),
        }
    });
    let target = match event {
        ConversationEvent::HumanAssigned { human_id, by, .. } => Some(Target {
            human: human_id.clone(),
            by_router: *by == Author::System(SystemActor::Router),
        }),
        _ => None,
    };
    if actor.is_none() && target.is_none() {
        return None;
    }
    Some(Facts {
        position,
        name: event.type_name(),
        tenant: open.tenant.clone(),
        legacy: history.is_legacy(),
        actor,
        target,
    })
}

/// Judges an event's directory rules: `human` finds a human as of the event before it, `load`
/// how many open conversations they were assigned then.
pub(crate) fn judge<'d>(
    facts: &Facts,
    human: impl Fn(&HumanId) -> Option<&'d Human>,
    load: impl Fn(&HumanId) -> u32,
) -> Result<(), Refusal> {
    let name = facts.name;
    if let Some(actor) = &facts.actor {
        check_actor(facts, actor, human(&actor.human))?;
    }
    let Some(target) = &facts.target else {
        return Ok(());
    };
    let human_id = &target.human;
    let Some(human) = human(human_id) else {
        return Err((
            FaultKind::Authority,
            format!("{name} gives the conversation to human {human_id}, who was not registered at that point"),
        ));
    };
    if human.profile.tenant != facts.tenant {
        return Err((
            FaultKind::Tenant,
            format!(
                "{name} gives a conversation of tenant {} to human {human_id} of tenant {}",
                facts.tenant, human.profile.tenant
            ),
        ));
    }
    if human.removed || human.presence == Presence::Offline {
        return Err((
            FaultKind::Authority,
            format!(
                "{name} gives the conversation to human {human_id}, who was {} at that point",
                if human.removed { "removed" } else { "offline" }
            ),
        ));
    }
    if target.by_router {
        if human.presence != Presence::Available {
            return Err((
                FaultKind::Capacity,
                format!(
                    "the router gave the conversation to human {human_id}, who was {} at that point, not available",
                    human.presence.as_str()
                ),
            ));
        }
        let load = load(human_id);
        if load >= human.profile.capacity {
            return Err((
                FaultKind::Capacity,
                format!(
                    "the router gave the conversation to human {human_id}, who already handled {load} open conversations, their capacity being {}",
                    human.profile.capacity
                ),
            ));
        }
    }
    Ok(())
}

/// The human an event says acted, if one did.
fn acting_human(event: &ConversationEvent) -> Option<&HumanId> {
    match event {
        ConversationEvent::MessagePosted { author: by, .. }
        | ConversationEvent::Closed { by, .. }
        | ConversationEvent::Transferred { by, .. }
        | ConversationEvent::InternalNote { by, .. }
        | ConversationEvent::FlagRaised { by, .. }
        | ConversationEvent::FlagLowered { by, .. }
        | ConversationEvent::HumanAssigned { by, .. }
        | ConversationEvent::SkillApproved { by, .. }
        | ConversationEvent::SkillDenied { by, .. }
        | ConversationEvent::ContextShared { by, .. } => match by {
            Author::Human(human) => Some(human),
            _ => None,
        },
        ConversationEvent::HandedOffToAi { by_human, .. }
        | ConversationEvent::Reclaimed { by_human, .. }
        | ConversationEvent::PolicyOverridden { by: by_human, .. } => Some(by_human),
        _ => None,
    }
}

/// A human acting on a conversation: registered (unless the conversation was opened before
/// humans were registered), not removed or offline, of its tenant, and answerable for it
/// (assigned, responsible while an AI agent holds it, or a supervisor).
fn check_actor(facts: &Facts, actor: &Actor, human: Option<&Human>) -> Result<(), Refusal> {
    let (name, id) = (facts.name, &actor.human);
    let Some(human) = human else {
        if facts.legacy {
            return Ok(());
        }
        return Err((
            FaultKind::Authority,
            format!("{name} by human {id}, who was not registered at that point"),
        ));
    };
    if human.profile.tenant != facts.tenant {
        return Err((
            FaultKind::Tenant,
            format!(
                "{name} by human {id} of tenant {} on a conversation of tenant {}",
                human.profile.tenant, facts.tenant
            ),
        ));
    }
    if human.removed || human.presence == Presence::Offline {
        return Err((
            FaultKind::Authority,
            format!(
                "{name} by human {id}, who was {} at that point",
                if human.removed { "removed" } else { "offline" }
            ),
        ));
    }
    if human.is_supervisor() {
        return Ok(());
    }
    if actor.supervisor_only {
        return Err((
            FaultKind::Authority,
            format!("{name} by human {id}, who is not a supervisor"),
        ));
    }
    if let Some(team) = actor.accepting_from.as_ref().filter(|t| !human.in_team(t)) {
        return Err((
            FaultKind::Authority,
            format!("{name} by human {id}, who took it from the queue of team {team} without being in that team"),
        ));
    }
    if actor.answerable {
        return Ok(());
    }
    let assigned = match &actor.responsible {
        Some(human) => format!("its assigned human was {human}"),
        None => "it had no assigned human".to_owned(),
    };
    Err((
        FaultKind::Authority,
        format!("{name} by human {id}, who was not the conversation's assigned human: {assigned} at that point"),
    ))
}

/// An SLA event's figures: at least the threshold, and the time from the current wait's start
/// to the event's `at`.
pub(crate) fn check_sla(open: &OpenConversation, event: &ConversationEvent) -> Result<(), Refusal> {
    let (waited_ms, threshold_ms, at) = match event {
        ConversationEvent::SlaWarning {
            waited_ms,
            threshold_ms,
            at,
            ..
        }
        | ConversationEvent::SlaBreached {
            waited_ms,
            threshold_ms,
            at,
            ..
        } => (*waited_ms, *threshold_ms, *at),
        _ => return Ok(()),
    };
    let name = event.type_name();
    if waited_ms < threshold_ms {
        return Err((
            FaultKind::Sla,
            format!("{name} says the conversation waited {waited_ms} ms, below its threshold of {threshold_ms} ms"),
        ));
    }
    // Outside a wait the state machine refuses the event.
    if let Handler::AwaitingHuman { since, .. } = &open.handler {
        let measured = at.millis_since(*since);
        if measured != waited_ms {
            return Err((
                FaultKind::Sla,
                format!("{name} says the conversation waited {waited_ms} ms, but from the start of its wait to the event's time is {measured} ms"),
            ));
        }
    }
    Ok(())
}
