//! Routing: who receives a conversation that waits for a human. A [`Router`] chooses; the
//! rules check its choice (the router may only pick someone available and below capacity) and
//! record it as an assignment by the router, like any other command.

use handover_core::{
    ConversationId, Directory, HumanId, Loads, Presence, Role, TeamId, TenantId, Timestamp,
    WaitCause,
};

/// A conversation waiting in a queue, as the router sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Waiting {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Its tenant.
    pub tenant: TenantId,
    /// The queue (`None`: the tenant's general queue).
    pub team: Option<TeamId>,
    /// Since when it waits.
    pub since: Timestamp,
    /// Why.
    pub cause: WaitCause,
    /// The human who last handed it to an AI agent, if any.
    pub handed_off_by: Option<HumanId>,
}

/// Chooses the human a waiting conversation goes to. The runtime asks it whenever a
/// conversation starts waiting and whenever a human may have become free (presence changed to
/// available, a conversation of theirs ended or moved on), oldest waiting conversation first.
///
/// A backend with its own ACD implements it, or turns routing off with [`NoRouter`] and
/// assigns by command. Returning someone away, offline or at capacity is refused by the rules
/// and the conversation keeps waiting.
///
/// ```
/// use handover::{Directory, HumanId, Loads, Router, Waiting};
///
/// /// Always offers the conversation to one person.
/// struct Solo(HumanId);
///
/// impl Router for Solo {
///     fn route(&self, _: &Waiting, _: &Directory, _: &Loads) -> Option<HumanId> {
///         Some(self.0.clone())
///     }
/// }
/// ```
pub trait Router: Send + Sync + 'static {
    /// The human `waiting` should go to now, if any.
    fn route(&self, waiting: &Waiting, directory: &Directory, loads: &Loads) -> Option<HumanId>;
}

/// Routing off: conversations wait until a supervisor assigns them or a human accepts them.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRouter;

impl Router for NoRouter {
    fn route(&self, _: &Waiting, _: &Directory, _: &Loads) -> Option<HumanId> {
        None
    }
}

/// The default router: the human who handed the conversation to the AI agent, if they are
/// available and below capacity; otherwise the available human of the conversation's team (of
/// the tenant's agents, for the general queue) with the lowest load, the lowest id breaking
/// ties. Nobody away, offline or at capacity is chosen.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultRouter;

impl Router for DefaultRouter {
    fn route(&self, waiting: &Waiting, directory: &Directory, loads: &Loads) -> Option<HumanId> {
        let free = |id: &HumanId| {
            directory.get(id).is_some_and(|human| {
                !human.removed
                    && human.profile.tenant == waiting.tenant
                    && human.presence == Presence::Available
                    && loads.of(id) < human.profile.capacity
            })
        };
        if let Some(previous) = waiting.handed_off_by.as_ref().filter(|id| free(id)) {
            return Some(previous.clone());
        }
        directory
            .of_tenant(&waiting.tenant)
            .filter(|human| match &waiting.team {
                Some(team) => human.in_team(team),
                None => human.profile.role == Role::Agent,
            })
            .filter(|human| free(&human.profile.id))
            .min_by_key(|human| (loads.of(&human.profile.id), &human.profile.id))
            .map(|human| human.profile.id.clone())
    }
}
